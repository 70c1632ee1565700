//! The console's people in the store, both dialects: officer accounts,
//! their password hashes (the latest counts), sign-in attempts and
//! server-side sessions. All append-only: a reset is a new password row, a
//! sign-out a session end row. Hashing, lockout and scopes are the
//! application's business; here they are plain text and instants.

use chrono::{DateTime, Utc};

use crate::store::{DbTime, Result, Store};

/// An officer account as stored: never its password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfficerRecord {
    pub login: String,
    pub name: String,
    /// `officer` or `admin`.
    pub role: String,
    /// `jurisdiction` or `all`.
    pub scope_kind: String,
    pub scope_id: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// A session as stored (the cookie's value is kept only as a hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub login: String,
    pub csrf_token: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    /// The session's officer, read with it (every console page asks for
    /// both: one round trip, not two).
    pub officer: OfficerRecord,
}

#[derive(sqlx::FromRow)]
struct OfficerRow {
    login: String,
    name: String,
    role: String,
    scope_kind: String,
    scope_id: Option<String>,
    created_at: DbTime,
}

#[derive(sqlx::FromRow)]
struct SessionRow {
    login: String,
    csrf_token: String,
    created_at: DbTime,
    expires_at: DbTime,
    ended_at: Option<DbTime>,
    name: String,
    role: String,
    scope_kind: String,
    scope_id: Option<String>,
    officer_created_at: DbTime,
}

impl Store {
    /// Keeps a new officer account and its first password hash together;
    /// `false` if the login is taken (nothing is written then).
    pub async fn create_officer(
        &self,
        officer: &OfficerRecord,
        password_hash: &str,
    ) -> Result<bool> {
        let insert = "insert into officer_accounts \
                      (login, name, role, scope_kind, scope_id, created_at) \
                      values ($1, $2, $3, $4, $5, $6) on conflict (login) do nothing";
        let password = "insert into officer_passwords (login, password_hash, set_at) \
                        values ($1, $2, $3)";
        let created = in_tx!(self, |tx, now| {
            let n = sqlx::query(insert)
                .bind(&officer.login)
                .bind(&officer.name)
                .bind(&officer.role)
                .bind(&officer.scope_kind)
                .bind(&officer.scope_id)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if n == 1 {
                sqlx::query(password)
                    .bind(&officer.login)
                    .bind(password_hash)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
            }
            n == 1
        });
        Ok(created)
    }

    /// Keeps a new password hash for an account; `false` if there is no
    /// such account.
    pub async fn set_officer_password(&self, login: &str, password_hash: &str) -> Result<bool> {
        if self.officer(login).await?.is_none() {
            return Ok(false);
        }
        let sql =
            "insert into officer_passwords (login, password_hash, set_at) values ($1, $2, $3)";
        let now = DbTime::from(self.now());
        on_pool!(self, |pool| sqlx::query(sql)
            .bind(login)
            .bind(password_hash)
            .bind(now)
            .execute(pool)
            .await
            .map(|_| ()))?;
        Ok(true)
    }

    pub async fn officer(&self, login: &str) -> Result<Option<OfficerRecord>> {
        let sql = "select login, name, role, scope_kind, scope_id, created_at \
                   from officer_accounts where login = $1";
        let row: Option<OfficerRow> = on_reader!(self, |pool| sqlx::query_as(sql)
            .bind(login)
            .fetch_optional(pool)
            .await?);
        Ok(row.map(|r| OfficerRecord {
            login: r.login,
            name: r.name,
            role: r.role,
            scope_kind: r.scope_kind,
            scope_id: r.scope_id,
            created_at: r.created_at.utc(),
        }))
    }

    /// The account's current password hash (the latest set).
    pub async fn officer_password(&self, login: &str) -> Result<Option<String>> {
        let sql = "select password_hash from officer_passwords where login = $1 \
                   order by seq desc limit 1";
        Ok(on_reader!(self, |pool| sqlx::query_scalar(sql)
            .bind(login)
            .fetch_optional(pool)
            .await?))
    }

    pub async fn record_sign_in_attempt(&self, login: &str, succeeded: bool) -> Result<()> {
        let sql = "insert into sign_in_attempts (login, at, succeeded) values ($1, $2, $3)";
        let now = DbTime::from(self.now());
        on_pool!(self, |pool| sqlx::query(sql)
            .bind(login)
            .bind(now)
            .bind(i32::from(succeeded))
            .execute(pool)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// The login's attempts since `since`, newest first: (when, succeeded).
    pub async fn sign_in_attempts(
        &self,
        login: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<(DateTime<Utc>, bool)>> {
        let sql = "select at, succeeded from sign_in_attempts where login = $1 and at >= $2 \
                   order by seq desc";
        let since = DbTime::from(since);
        let rows: Vec<(DbTime, i32)> = on_reader!(self, |pool| sqlx::query_as(sql)
            .bind(login)
            .bind(since)
            .fetch_all(pool)
            .await?);
        Ok(rows
            .into_iter()
            .map(|(at, ok)| (at.utc(), ok == 1))
            .collect())
    }

    pub async fn create_session(
        &self,
        session_hash: &str,
        login: &str,
        csrf_token: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<()> {
        let sql = "insert into console_sessions \
                   (session_hash, login, csrf_token, created_at, expires_at) \
                   values ($1, $2, $3, $4, $5)";
        let now = DbTime::from(self.now());
        let expires_at = DbTime::from(expires_at);
        on_pool!(self, |pool| sqlx::query(sql)
            .bind(session_hash)
            .bind(login)
            .bind(csrf_token)
            .bind(now)
            .bind(expires_at)
            .execute(pool)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    pub async fn session(&self, session_hash: &str) -> Result<Option<SessionRecord>> {
        let sql = "select s.login, s.csrf_token, s.created_at, s.expires_at, e.ended_at, \
                   o.name, o.role, o.scope_kind, o.scope_id, o.created_at as officer_created_at \
                   from console_sessions s \
                   join officer_accounts o on o.login = s.login \
                   left join console_session_ends e on e.session_hash = s.session_hash \
                   where s.session_hash = $1";
        let row: Option<SessionRow> = on_reader!(self, |pool| sqlx::query_as(sql)
            .bind(session_hash)
            .fetch_optional(pool)
            .await?);
        Ok(row.map(|r| SessionRecord {
            officer: OfficerRecord {
                login: r.login.clone(),
                name: r.name,
                role: r.role,
                scope_kind: r.scope_kind,
                scope_id: r.scope_id,
                created_at: r.officer_created_at.utc(),
            },
            login: r.login,
            csrf_token: r.csrf_token,
            created_at: r.created_at.utc(),
            expires_at: r.expires_at.utc(),
            ended_at: r.ended_at.map(DbTime::utc),
        }))
    }

    /// Ends a session (signing out); ending it twice keeps the first end.
    pub async fn end_session(&self, session_hash: &str) -> Result<()> {
        let sql = "insert into console_session_ends (session_hash, ended_at) \
                   select session_hash, $2 from console_sessions where session_hash = $1 \
                   on conflict (session_hash) do nothing";
        let now = DbTime::from(self.now());
        on_pool!(self, |pool| sqlx::query(sql)
            .bind(session_hash)
            .bind(now)
            .execute(pool)
            .await
            .map(|_| ()))?;
        Ok(())
    }
}
