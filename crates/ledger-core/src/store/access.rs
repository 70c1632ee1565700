//! API access in the store, both dialects: bearer tokens (only a hash of the
//! secret is kept), the append-only audit log of mutating requests, and the
//! answers kept for `Idempotency-Key` replays. Roles and scopes are the API's
//! business; here they are plain text the table's checks constrain.

use chrono::{DateTime, Utc};

use crate::domain::chain::{audit_digest, link_hash, AuditFields, AUDIT_SCOPE};
use crate::domain::ids::JurisdictionCode;
use crate::domain::registry::Jurisdiction;
use crate::store::rows::{corrupt, corrupt_as};
use crate::store::{DbTime, Result, Store, StoreError};

/// A token as stored: never its secret.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TokenRecord {
    pub id: String,
    pub name: String,
    pub role: String,
    pub scope_kind: String,
    pub scope_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// One mutating request, as the audit log keeps it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AuditRecord {
    pub request_id: String,
    pub token_id: Option<String>,
    pub role: Option<String>,
    pub method: String,
    pub path: String,
    pub status: u16,
    /// `ok`, or the stable code of the error answered.
    pub outcome: String,
}

/// The answer given to the first request with an idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptAnswer {
    /// A hash of what was asked (method, path, body): a key reused for a
    /// different request is refused, not replayed.
    pub request_hash: String,
    pub status: u16,
    pub body: String,
}

#[derive(sqlx::FromRow)]
struct TokenRow {
    token_id: String,
    name: String,
    role: String,
    scope_kind: String,
    scope_id: Option<String>,
    created_at: DbTime,
    revoked_at: Option<DbTime>,
}

impl From<TokenRow> for TokenRecord {
    fn from(r: TokenRow) -> Self {
        TokenRecord {
            id: r.token_id,
            name: r.name,
            role: r.role,
            scope_kind: r.scope_kind,
            scope_id: r.scope_id,
            created_at: r.created_at.utc(),
            revoked_at: r.revoked_at.map(DbTime::utc),
        }
    }
}

#[derive(sqlx::FromRow)]
struct AuditRow {
    seq: i64,
    at: DbTime,
    request_id: String,
    token_id: Option<String>,
    role: Option<String>,
    method: String,
    path: String,
    status: i32,
    outcome: String,
}

/// A stored HTTP status back (100 to 999 fit a `u16`).
fn status(stored: i32) -> Result<u16> {
    u16::try_from(stored).map_err(|e| corrupt("status", format!("{stored}: {e}")))
}

const TOKEN_COLUMNS: &str =
    "select token_id, name, role, scope_kind, scope_id, created_at, revoked_at from api_tokens";

/// Migrations applied; a database never migrated has none (and no table).
macro_rules! applied {
    ($pool:expr) => {
        match sqlx::query_scalar::<_, i64>(
            "select cast(count(*) as bigint) from _sqlx_migrations where success",
        )
        .fetch_one($pool)
        .await
        {
            Ok(n) => n,
            Err(sqlx::Error::Database(e)) if e.message().contains("_sqlx_migrations") => 0,
            Err(e) => return Err(e.into()),
        }
    };
}

/// Appends one record to the audit log and its chain, inside the caller's
/// transaction (`tx`, `now` as `in_tx!` gives them).
macro_rules! append_audit {
    ($tx:ident, $now:ident, $record:expr) => {{
        let record: &AuditRecord = $record;
        let tx = &mut $tx;
        let now = $now;
            let prev: String = sqlx::query_scalar(
                "update audit_head set last_seq = last_seq where id = 1 returning last_hash",
            )
            .fetch_one(&mut **tx)
            .await?;
            let seq: i64 = sqlx::query_scalar(
                "insert into audit_log (at, request_id, token_id, role, method, path, status, outcome) \
                 values ($1, $2, $3, $4, $5, $6, $7, $8) returning seq",
            )
            .bind(now)
            .bind(&record.request_id)
            .bind(&record.token_id)
            .bind(&record.role)
            .bind(&record.method)
            .bind(&record.path)
            .bind(i32::from(record.status))
            .bind(&record.outcome)
            .fetch_one(&mut **tx)
            .await?;
            let digest = audit_digest(&AuditFields {
                seq,
                at_micros: now.micros(),
                request_id: &record.request_id,
                token_id: record.token_id.as_deref(),
                role: record.role.as_deref(),
                method: &record.method,
                path: &record.path,
                status: i64::from(record.status),
                outcome: &record.outcome,
            });
            let hash = link_hash(&prev, AUDIT_SCOPE, seq, "audit", &seq.to_string(), &digest);
            sqlx::query(
                "insert into audit_links (seq, digest, prev_hash, hash) values ($1, $2, $3, $4)",
            )
            .bind(seq)
            .bind(&digest)
            .bind(&prev)
            .bind(&hash)
            .execute(&mut **tx)
            .await?;
            sqlx::query("update audit_head set last_seq = $1, last_hash = $2 where id = 1")
                .bind(seq)
                .bind(&hash)
                .execute(&mut **tx)
                .await?;
    }};
}

impl Store {
    /// Keeps a new token; `secret_hash` is the SHA-256 of the whole token.
    pub async fn create_token(&self, token: &TokenRecord, secret_hash: &str) -> Result<()> {
        let sql = "insert into api_tokens \
                   (token_id, name, role, scope_kind, scope_id, secret_hash, created_at) \
                   values ($1, $2, $3, $4, $5, $6, $7)";
        let created_at = DbTime::from(token.created_at);
        on_pool!(self, |pool| sqlx::query(sql)
            .bind(&token.id)
            .bind(&token.name)
            .bind(&token.role)
            .bind(&token.scope_kind)
            .bind(&token.scope_id)
            .bind(secret_hash)
            .bind(created_at)
            .execute(pool)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// The token whose secret hashes to `secret_hash`, revoked or not.
    pub async fn token_by_hash(&self, secret_hash: &str) -> Result<Option<TokenRecord>> {
        let sql = format!("{TOKEN_COLUMNS} where secret_hash = $1");
        Ok(self.tokens_where(&sql, Some(secret_hash)).await?.pop())
    }

    /// Every token, oldest first.
    pub async fn tokens(&self) -> Result<Vec<TokenRecord>> {
        let sql = format!("{TOKEN_COLUMNS} order by created_at, token_id");
        self.tokens_where(&sql, None).await
    }

    /// The tokens of one scope not revoked (`kind` and `id` as
    /// [`TokenRecord`] keeps them), oldest first.
    pub async fn live_tokens_of(&self, kind: &str, id: &str) -> Result<Vec<TokenRecord>> {
        let rows: Vec<TokenRow> = on_reader!(self, |pool| {
            sqlx::query_as(&format!(
                "{TOKEN_COLUMNS} where scope_kind = $1 and scope_id = $2 and revoked_at is null \
                 order by created_at, token_id"
            ))
            .bind(kind)
            .bind(id)
            .fetch_all(pool)
            .await?
        });
        Ok(rows.into_iter().map(TokenRecord::from).collect())
    }

    async fn tokens_where(&self, sql: &str, arg: Option<&str>) -> Result<Vec<TokenRecord>> {
        let rows: Vec<TokenRow> = on_reader!(self, |pool| {
            let mut q = sqlx::query_as(sql);
            if let Some(arg) = arg {
                q = q.bind(arg);
            }
            q.fetch_all(pool).await?
        });
        Ok(rows.into_iter().map(TokenRecord::from).collect())
    }

    /// Revokes a token; `false` if there is no such token or it was revoked
    /// already (the first revocation time stands).
    pub async fn revoke_token(&self, id: &str) -> Result<bool> {
        let sql =
            "update api_tokens set revoked_at = $2 where token_id = $1 and revoked_at is null";
        let now = DbTime::from(self.now());
        let done = on_pool!(self, |pool| sqlx::query(sql)
            .bind(id)
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(done == 1)
    }

    /// Appends one mutating request to the audit log, and its link to the
    /// audit log's hash chain in the same transaction (the chain's head row
    /// serialises audit writes).
    pub async fn append_audit(&self, record: &AuditRecord) -> Result<()> {
        let early = self.commits_before_flush();
        in_tx!(self, |tx, now, dialect| {
            if early {
                dialect.commit_without_flush_wait(&mut tx).await?;
            }
            append_audit!(tx, now, record);
        });
        if early {
            self.flush_log().await?;
        }
        Ok(())
    }

    /// The audit log after sequence number `after`, oldest first.
    pub async fn audit_log(
        &self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<(i64, DateTime<Utc>, AuditRecord)>> {
        let sql = "select seq, at, request_id, token_id, role, method, path, status, outcome \
                   from audit_log where seq > $1 order by seq limit $2";
        let rows: Vec<AuditRow> = on_reader!(self, |pool| sqlx::query_as(sql)
            .bind(after)
            .bind(limit)
            .fetch_all(pool)
            .await?);
        rows.into_iter()
            .map(|r| {
                Ok((
                    r.seq,
                    r.at.utc(),
                    AuditRecord {
                        request_id: r.request_id,
                        token_id: r.token_id,
                        role: r.role,
                        method: r.method,
                        path: r.path,
                        status: status(r.status)?,
                        outcome: r.outcome,
                    },
                ))
            })
            .collect()
    }

    /// The answer kept for this caller's key, if any, once it is durable:
    /// where writes commit before their flush ([`Store::commits_before_flush`])
    /// an answer is visible before it is durable, and a repeat must not be
    /// told of a write a crash could still undo.
    pub async fn kept_answer(&self, token_id: &str, key: &str) -> Result<Option<KeptAnswer>> {
        let sql = "select request_hash, status, body from idempotent_answers \
                   where token_id = $1 and idem_key = $2";
        let row: Option<(String, i32, String)> = on_reader!(self, |pool| sqlx::query_as(sql)
            .bind(token_id)
            .bind(key)
            .fetch_optional(pool)
            .await?);
        if row.is_some() && self.commits_before_flush() {
            self.flush_log().await?;
        }
        row.map(|(request_hash, stored, body)| {
            Ok(KeptAnswer {
                request_hash,
                status: status(stored)?,
                body,
            })
        })
        .transpose()
    }

    /// Keeps the answer to a key's first request. When two requests with one
    /// key race, the first kept answer wins and is returned to both.
    pub async fn keep_answer(
        &self,
        token_id: &str,
        key: &str,
        answer: &KeptAnswer,
        audit: &AuditRecord,
    ) -> Result<KeptAnswer> {
        let sql = "insert into idempotent_answers \
                   (token_id, idem_key, request_hash, status, body, created_at) \
                   values ($1, $2, $3, $4, $5, $6) on conflict (token_id, idem_key) do nothing";
        // The answer and the audit record of the request that earned it
        // commit together: one is never kept without the other. The head
        // is let go at the commit where the server allows it; the answer
        // is read back below once durable.
        let early = self.commits_before_flush();
        in_tx!(self, |tx, now, dialect| {
            if early {
                dialect.commit_without_flush_wait(&mut tx).await?;
            }
            sqlx::query(sql)
                .bind(token_id)
                .bind(key)
                .bind(&answer.request_hash)
                .bind(i32::from(answer.status))
                .bind(&answer.body)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            append_audit!(tx, now, audit);
        });
        self.kept_answer(token_id, key)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("answer for key {key:?} vanished")))
    }

    /// Migrations this build knows that the database has not applied (an
    /// error if the database cannot be reached).
    pub async fn pending_migrations(&self) -> Result<usize> {
        let known = match self {
            Store::Postgres(_) => sqlx::migrate!("../../migrations/postgres").iter().count(),
            Store::Sqlite(_) => sqlx::migrate!("../../migrations/sqlite").iter().count(),
        };
        let applied: i64 = on_pool!(self, |pool| applied!(pool));
        Ok(known.saturating_sub(usize::try_from(applied).unwrap_or(0)))
    }

    /// How far behind its primary a streaming standby's replay is, in
    /// milliseconds (0 when it has replayed all it received); `None` for a
    /// primary and for SQLite, which lag behind nothing.
    pub async fn replay_lag_ms(&self) -> Result<Option<i64>> {
        let Store::Postgres(s) = self else {
            return Ok(None);
        };
        // PostgreSQL only: the standby's own view of its replay.
        let sql = "select case when not pg_is_in_recovery() then null \
                     when pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() \
                       or pg_last_xact_replay_timestamp() is null then 0 \
                     else greatest(0, cast(extract(epoch from clock_timestamp() \
                       - pg_last_xact_replay_timestamp()) * 1000 as bigint)) end";
        Ok(sqlx::query_scalar(sql).fetch_one(s.pool()).await?)
    }

    /// The ids of every registered bank.
    pub async fn banks(&self) -> Result<Vec<String>> {
        let sql = "select bank_id from banks order by bank_id";
        Ok(on_reader!(self, |pool| sqlx::query_scalar(sql)
            .fetch_all(pool)
            .await?))
    }

    /// Every jurisdiction, by code.
    pub async fn jurisdictions(&self) -> Result<Vec<Jurisdiction>> {
        let sql = "select code, name, parent_code from jurisdictions order by code";
        let rows: Vec<(String, String, Option<String>)> =
            on_reader!(self, |pool| sqlx::query_as(sql).fetch_all(pool).await?);
        rows.into_iter().map(jurisdiction_of).collect()
    }

    /// One jurisdiction by its code (a country has thousands: a request
    /// about one reads one).
    pub async fn jurisdiction(&self, code: &JurisdictionCode) -> Result<Option<Jurisdiction>> {
        let sql = "select code, name, parent_code from jurisdictions where code = $1";
        let row: Option<(String, String, Option<String>)> = on_reader!(self, |pool| {
            sqlx::query_as(sql)
                .bind(code.as_str())
                .fetch_optional(pool)
                .await?
        });
        row.map(jurisdiction_of).transpose()
    }
}

fn jurisdiction_of((code, name, parent): (String, String, Option<String>)) -> Result<Jurisdiction> {
    Ok(Jurisdiction {
        code: JurisdictionCode::parse(code).map_err(corrupt_as("jurisdiction"))?,
        name,
        parent: parent
            .map(JurisdictionCode::parse)
            .transpose()
            .map_err(corrupt_as("jurisdiction"))?,
    })
}
