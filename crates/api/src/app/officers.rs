//! People who sign in to the console: officer accounts with Argon2id
//! password hashes, created and reset by an admin on the command line;
//! sign-in with lockout after repeated failures; server-side sessions
//! (the cookie carries a random id, the store only its hash) with a CSRF
//! token each. An account carries the same role and scope as an API
//! officer token.

use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use chrono::{DateTime, Duration, Utc};
use ledger_core::store::OfficerRecord;
use ledger_core::{JurisdictionCode, Store};
use sha2::{Digest, Sha256};

use crate::access::{Caller, Role, Scope};
use crate::app::{AppError, AppResult};

/// Failed attempts in a row (since the last success, within
/// [`LOCKOUT_MINUTES`]) after which the account is locked.
pub const MAX_FAILURES: usize = 5;
/// How long a lockout lasts after the last failure.
pub const LOCKOUT_MINUTES: i64 = 15;
/// How long a session lasts (a working day).
pub const SESSION_HOURS: i64 = 10;
/// The shortest password an admin may set.
pub const MIN_PASSWORD_CHARS: usize = 12;

/// A console account: who, and what they may see and do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Officer {
    pub login: String,
    pub name: String,
    pub role: Role,
    pub scope: Scope,
}

impl Officer {
    /// The caller the permission table and the scopes know.
    pub fn caller(&self) -> Caller {
        Caller {
            token_id: format!("console:{}", self.login),
            name: self.name.clone(),
            role: self.role,
            scope: self.scope.clone(),
        }
    }

    /// The jurisdiction the account oversees (`None` for an admin).
    pub fn jurisdiction(&self) -> Option<&JurisdictionCode> {
        match &self.scope {
            Scope::Jurisdiction(c) => Some(c),
            _ => None,
        }
    }
}

/// A new account: an officer of a jurisdiction, or an admin.
#[derive(Debug, Clone)]
pub struct NewOfficer {
    pub login: String,
    pub name: String,
    pub role: Role,
    pub scope: Scope,
}

fn check_login(login: &str) -> AppResult<()> {
    let ok = (2..=64).contains(&login.len())
        && login
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if ok {
        Ok(())
    } else {
        Err(AppError::invalid(
            "invalid_login",
            "login",
            format!("login {login:?}: 2 to 64 letters, digits or . _ - @"),
        ))
    }
}

fn check_password(password: &str) -> AppResult<()> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(AppError::invalid(
            "weak_password",
            "password",
            format!("a password has at least {MIN_PASSWORD_CHARS} characters"),
        ));
    }
    if password.len() > 1024 {
        return Err(AppError::invalid(
            "invalid_password",
            "password",
            "a password has at most 1024 bytes",
        ));
    }
    Ok(())
}

fn hash_password(password: &str) -> AppResult<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AppError::invalid("invalid_password", "password", e.to_string()))
}

fn password_matches(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

fn officer_of(r: OfficerRecord) -> AppResult<Officer> {
    let corrupt = |what: String| {
        AppError::Store(ledger_core::StoreError::Corrupt(format!(
            "officer account {}: {what}",
            r.login
        )))
    };
    let role = Role::parse(&r.role).ok_or_else(|| corrupt(format!("role {:?}", r.role)))?;
    let scope = Scope::parse(&r.scope_kind, r.scope_id.as_deref()).map_err(corrupt)?;
    Ok(Officer {
        login: r.login,
        name: r.name,
        role,
        scope,
    })
}

/// Creates an account with its first password. Only officers (scoped to a
/// jurisdiction that exists) and admins (everything) sign in to the console.
pub async fn add(store: &Store, new: NewOfficer, password: &str) -> AppResult<Officer> {
    check_login(&new.login)?;
    let name = new.name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(AppError::invalid(
            "invalid_name",
            "name",
            "the name must be 1 to 100 characters, no control characters",
        ));
    }
    match (new.role, &new.scope) {
        (Role::Officer, Scope::Jurisdiction(code)) => {
            if !store.jurisdictions().await?.iter().any(|j| &j.code == code) {
                return Err(AppError::not_found(format!("jurisdiction {code}")));
            }
        }
        (Role::Admin, Scope::All) => {}
        (role, scope) => {
            return Err(AppError::invalid(
                "invalid_scope",
                "role",
                format!(
                    "a console account is an officer of a jurisdiction or an admin of all, not a {} scoped by {}",
                    role.as_str(),
                    scope.kind()
                ),
            ))
        }
    }
    check_password(password)?;
    let hash = hash_password(password)?;
    let record = OfficerRecord {
        login: new.login.clone(),
        name: name.to_string(),
        role: new.role.as_str().to_string(),
        scope_kind: new.scope.kind().to_string(),
        scope_id: new.scope.id(),
        created_at: store.now(),
    };
    if !store.create_officer(&record, &hash).await? {
        return Err(AppError::conflict(
            "login_taken",
            format!("an account with login {:?} exists", new.login),
        ));
    }
    officer_of(record)
}

/// Sets a new password (the old one stops working at once; sessions
/// already open stay open until they end).
pub async fn reset_password(store: &Store, login: &str, password: &str) -> AppResult<()> {
    check_password(password)?;
    let hash = hash_password(password)?;
    if !store.set_officer_password(login, &hash).await? {
        return Err(AppError::not_found(format!("officer account {login:?}")));
    }
    Ok(())
}

/// A signed-in session: the id goes into the cookie (shown once, kept only
/// as a hash), the CSRF token into every form.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub session_id: String,
    pub csrf_token: String,
    pub officer: Officer,
    pub expires_at: DateTime<Utc>,
}

fn random_token() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

fn session_hash(session_id: &str) -> String {
    hex::encode(Sha256::digest(session_id.as_bytes()))
}

/// Whether the login is locked now: [`MAX_FAILURES`] failures in a row
/// (since its last success) of which the last is under
/// [`LOCKOUT_MINUTES`] old.
async fn locked(store: &Store, login: &str, now: DateTime<Utc>) -> AppResult<bool> {
    let since = now - Duration::minutes(LOCKOUT_MINUTES * 4);
    let attempts = store.sign_in_attempts(login, since).await?;
    let failures: Vec<DateTime<Utc>> = attempts
        .iter()
        .take_while(|(_, ok)| !ok)
        .map(|(at, _)| *at)
        .collect();
    Ok(failures.len() >= MAX_FAILURES
        && failures
            .first()
            .is_some_and(|last| now - *last < Duration::minutes(LOCKOUT_MINUTES)))
}

/// Signs in: a new session every time (never one the browser brought, so
/// no fixation). A wrong login or password is one answer for both
/// (`wrong_credentials`); a locked account is `account_locked` whatever
/// the password.
pub async fn sign_in(store: &Store, login: &str, password: &str) -> AppResult<SignedIn> {
    let now = store.now();
    let refused = || {
        AppError::invalid(
            "wrong_credentials",
            "password",
            "the login or the password is wrong",
        )
    };
    if login.is_empty() || login.len() > 64 || password.len() > 1024 {
        return Err(refused());
    }
    if locked(store, login, now).await? {
        store.record_sign_in_attempt(login, false).await?;
        return Err(AppError::conflict(
            "account_locked",
            format!(
                "after {MAX_FAILURES} failed sign-ins the account is locked for {LOCKOUT_MINUTES} minutes"
            ),
        ));
    }
    let (Some(record), Some(stored)) = (
        store.officer(login).await?,
        store.officer_password(login).await?,
    ) else {
        // Hash anyway, so that an unknown login takes as long as a known one.
        let _ = password_matches(password, dummy_hash());
        store.record_sign_in_attempt(login, false).await?;
        return Err(refused());
    };
    if !password_matches(password, &stored) {
        store.record_sign_in_attempt(login, false).await?;
        return Err(refused());
    }
    store.record_sign_in_attempt(login, true).await?;
    let officer = officer_of(record)?;
    let session_id = random_token();
    let csrf_token = random_token();
    let expires_at = now + Duration::hours(SESSION_HOURS);
    store
        .create_session(&session_hash(&session_id), login, &csrf_token, expires_at)
        .await?;
    Ok(SignedIn {
        session_id,
        csrf_token,
        officer,
        expires_at,
    })
}

/// The Argon2id hash of a password nobody has (an unknown login is checked
/// against it, so that it costs the same time as a known one).
fn dummy_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| hash_password(&random_token()).unwrap_or_default())
}

/// The officer and CSRF token of a live session (not ended, not expired).
pub async fn session(store: &Store, session_id: &str) -> AppResult<Option<(Officer, String)>> {
    if session_id.len() != 64 {
        return Ok(None);
    }
    let Some(s) = store.session(&session_hash(session_id)).await? else {
        return Ok(None);
    };
    if s.ended_at.is_some() || s.expires_at <= store.now() {
        return Ok(None);
    }
    Ok(Some((officer_of(s.officer)?, s.csrf_token)))
}

/// Ends a session: its cookie opens nothing any more.
pub async fn sign_out(store: &Store, session_id: &str) -> AppResult<()> {
    if session_id.len() == 64 {
        store.end_session(&session_hash(session_id)).await?;
    }
    Ok(())
}

/// A random token for a form shown before sign-in (the sign-in form's
/// CSRF token, kept in a cookie of its own and compared on submit).
pub fn form_token() -> String {
    random_token()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_verifies_against_its_argon2id_hash_only() {
        let h = hash_password("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(password_matches("correct horse battery", &h));
        assert!(!password_matches("correct horse battery!", &h));
        assert!(!password_matches("anything", "not a hash"));
    }

    #[test]
    fn short_passwords_and_odd_logins_are_refused() {
        assert_eq!(check_password("short").unwrap_err().code(), "weak_password");
        assert!(check_password("twelve chars").is_ok());
        assert_eq!(check_login("a b").unwrap_err().code(), "invalid_login");
        assert!(check_login("wang.li@qingfeng").is_ok());
    }
}
