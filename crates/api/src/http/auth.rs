//! Bearer tokens in, a `Caller` out. Runs before every `/v1` handler; the
//! caller is also left on the response for the audit log. A token found
//! valid is taken on trust for a short, bounded time (`TokenCache`, the
//! `http.token_cache_ms` setting), so that a burst of requests costs one
//! database round trip, not one each; a revocation takes effect within
//! that time.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::header;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ledger_core::store::TokenRecord;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::access::{Caller, Role, Scope};
use crate::http::problem::ApiError;
use crate::http::AppState;
use crate::token;

pub async fn authenticate(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let caller = match caller(&state, request.headers()).await {
        Ok(caller) => caller,
        Err(e) => return e.into_response(),
    };
    request.extensions_mut().insert(caller.clone());
    let mut response = next.run(request).await;
    response.extensions_mut().insert(caller);
    response
}

async fn caller(state: &AppState, headers: &axum::http::HeaderMap) -> Result<Caller, ApiError> {
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| ApiError::unauthorized("no Authorization header: send `Authorization: Bearer <token>` (escrow-ledger token create)"))?;
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            ApiError::unauthorized("the Authorization header is not `Bearer <token>`")
        })?;
    let hash = token::hash(token);
    let record = match state.tokens.get(&hash) {
        Some(record) => record,
        None => {
            let record = state
                .store
                .token_by_hash(&hash)
                .await?
                .ok_or_else(|| ApiError::unauthorized("the bearer token is not known"))?;
            if record.revoked_at.is_some() {
                return Err(ApiError::unauthorized(format!(
                    "the bearer token {} was revoked",
                    record.id
                )));
            }
            state.tokens.put(hash, record.clone());
            record
        }
    };
    let corrupt = |what: String| {
        tracing::error!(token = %record.id, "{what}");
        ApiError::internal()
    };
    let role =
        Role::parse(&record.role).ok_or_else(|| corrupt(format!("role {:?}", record.role)))?;
    let scope = Scope::parse(&record.scope_kind, record.scope_id.as_deref()).map_err(corrupt)?;
    Ok(Caller {
        token_id: record.id,
        name: record.name,
        role,
        scope,
    })
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| ApiError::unauthorized("this route needs a bearer token"))
    }
}

/// Tokens found valid lately, by the hash of their secret, each trusted
/// until `ttl` after it was read from the database. Bounded: when full,
/// expired tokens are dropped, and if that is not enough, all of them.
pub struct TokenCache {
    ttl: Duration,
    verified: Mutex<HashMap<String, (Instant, TokenRecord)>>,
}

/// Tokens held at most (a few MiB).
const TOKEN_CACHE_MAX: usize = 10_000;

impl TokenCache {
    /// `ttl` zero: nothing is cached, every request reads the database.
    pub fn new(ttl: Duration) -> TokenCache {
        TokenCache {
            ttl,
            verified: Mutex::new(HashMap::new()),
        }
    }

    fn get(&self, hash: &str) -> Option<TokenRecord> {
        if self.ttl.is_zero() {
            return None;
        }
        let verified = self.verified.lock().unwrap_or_else(|p| p.into_inner());
        verified
            .get(hash)
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, record)| record.clone())
    }

    /// Drops the tokens `ids` names: revoked by this process, they stop
    /// working here at once (elsewhere within `ttl`).
    pub fn forget(&self, ids: &[String]) {
        let mut verified = self.verified.lock().unwrap_or_else(|p| p.into_inner());
        verified.retain(|_, (_, record)| !ids.contains(&record.id));
    }

    fn put(&self, hash: String, record: TokenRecord) {
        if self.ttl.is_zero() {
            return;
        }
        let mut verified = self.verified.lock().unwrap_or_else(|p| p.into_inner());
        if verified.len() >= TOKEN_CACHE_MAX {
            verified.retain(|_, (at, _)| at.elapsed() < self.ttl);
            if verified.len() >= TOKEN_CACHE_MAX {
                verified.clear();
            }
        }
        verified.insert(hash, (Instant::now(), record));
    }
}
