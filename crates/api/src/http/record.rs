//! What every mutating request leaves behind: an audit record (who, what,
//! when, outcome) and, for POSTs, the answer kept under its Idempotency-Key
//! so that a repeat gets the same answer and changes nothing. A key is
//! claimed before the handler acts, so a concurrent repeat never acts a
//! second time (it waits for the answer or is told to retry).

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::time::Duration;

use chrono::{DateTime, Utc};
use ledger_core::store::{AuditRecord, KeepWith, KeptAnswer, KeyClaim};
use ledger_core::ClientId;
use sha2::{Digest, Sha256};

use crate::access::Caller;
use crate::http::problem::{ApiError, ErrorCode};
use crate::http::AppState;

pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
pub const REPLAYED: &str = "idempotent-replayed";

fn mutating(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

fn request_id_of(headers: &axum::http::HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

/// Appends every mutating request to the audit log, whatever its outcome
/// (a POST that succeeded has it written with its kept answer).
pub async fn audit(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if !mutating(request.method()) {
        return next.run(request).await;
    }
    let method = request.method().to_string();
    let path = request.uri().path().to_string();
    let request_id = request_id_of(request.headers());
    let response = next.run(request).await;
    if response.extensions().get::<AuditKept>().is_some() {
        return response;
    }
    let caller = response.extensions().get::<Caller>();
    let record = AuditRecord {
        request_id,
        token_id: caller.map(|c| c.token_id.clone()),
        role: caller.map(|c| c.role.as_str().to_string()),
        method,
        path,
        status: response.status().as_u16(),
        outcome: response
            .extensions()
            .get::<ErrorCode>()
            .map_or("ok", |c| c.0)
            .to_string(),
    };
    if let Err(e) = state.store.append_audit(&record).await {
        tracing::error!(error = %e, ?record, "the audit log could not be written");
    }
    response
}

/// POSTs need an Idempotency-Key; the first answer to a key is kept and
/// repeated, a key reused for a different request is refused.
pub async fn idempotent(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if request.method() != Method::POST {
        return next.run(request).await;
    }
    match idempotent_inner(state, request, next).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn idempotent_inner(
    state: AppState,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let caller = request
        .extensions()
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| ApiError::unauthorized("this route needs a bearer token"))?;
    let key = request
        .headers()
        .get(IDEMPOTENCY_KEY)
        .ok_or_else(|| {
            ApiError::bad_request(
                "missing_idempotency_key",
                "every POST needs an Idempotency-Key header (1 to 128 characters: letters, digits, - _ . :); a repeat with the same key gets the same answer",
            )
            .on_field("Idempotency-Key")
        })?
        .to_str()
        .ok()
        .and_then(|k| ClientId::parse(k).ok())
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_idempotency_key",
                "the Idempotency-Key must be 1 to 128 characters: letters, digits, - _ . :",
            )
            .on_field("Idempotency-Key")
        })?;
    let (parts, body) = request.into_parts();
    let request_id = request_id_of(&parts.headers);
    let method = parts.method.to_string();
    let path = parts.uri.path().to_string();
    // The body arrives through the route's limit (see `limits`): reading
    // past it is the only way this read fails for a well-formed request.
    let bytes = to_bytes(body, usize::MAX).await.map_err(|e| {
        let limit = if parts.uri.path() == "/v1/feeds" {
            state.config.max_feed_bytes
        } else {
            state.config.max_body_bytes
        };
        tracing::info!(error = %e, "request body not read");
        crate::http::limits::too_large(limit)
    })?;
    let mut hasher = Sha256::new();
    hasher.update(parts.method.as_str());
    hasher.update(b"\n");
    hasher.update(parts.uri.to_string());
    hasher.update(b"\n");
    hasher.update(&bytes);
    let request_hash = hex::encode(hasher.finalize());

    let accepted_at = match claim(&state, &caller, &key, &request_hash).await? {
        Claimed::Held(at) => at,
        Claimed::Answered(kept) => return replay(kept, &request_hash, key.as_str(), &caller),
    };
    let mut request = Request::from_parts(parts, Body::from(bytes));
    request.extensions_mut().insert(key.clone());
    request
        .extensions_mut()
        .insert(Accepted { at: accepted_at });
    request.extensions_mut().insert(Keeping {
        token_id: caller.token_id.clone(),
        key: key.as_str().to_string(),
        request_hash: request_hash.clone(),
        audit: AuditRecord {
            request_id: request_id.clone(),
            token_id: Some(caller.token_id.clone()),
            role: Some(caller.role.as_str().to_string()),
            method: method.clone(),
            path: path.clone(),
            status: 0,
            outcome: "ok".to_string(),
        },
    });
    let mut response = next.run(request).await;
    let status = response.status();
    // A write that went through the group committer kept its answer and
    // audit record in its batch's transaction, with its entry.
    if status.is_success() && response.extensions().get::<KeptInBatch>().is_some() {
        response.extensions_mut().insert(caller);
        response.extensions_mut().insert(AuditKept);
        return Ok(response);
    }
    // Only what was done is kept: a refusal changed nothing, so the same
    // request may be corrected and sent again under the same key.
    if !status.is_success() {
        state
            .store
            .release_key(&caller.token_id, key.as_str(), &request_hash)
            .await?;
        return Ok(response);
    }
    let (mut parts, body) = response.into_parts();
    let body = to_bytes(body, usize::MAX).await.map_err(|e| {
        tracing::error!(error = %e, "response body could not be read");
        ApiError::internal()
    })?;
    let mut kept_body = String::from_utf8_lossy(&body).into_owned();
    // A secret shown once is not kept in plain text: a repeat shows it redacted.
    if let Some(ShownOnce(secret)) = parts.extensions.get::<ShownOnce>() {
        kept_body = kept_body.replace(secret.as_str(), REDACTED);
    }
    let answer = KeptAnswer {
        request_hash: request_hash.clone(),
        status: status.as_u16(),
        body: kept_body,
    };
    let audit = AuditRecord {
        request_id: request_id.clone(),
        token_id: Some(caller.token_id.clone()),
        role: Some(caller.role.as_str().to_string()),
        method: method.clone(),
        path: path.clone(),
        status: status.as_u16(),
        outcome: "ok".to_string(),
    };
    let kept = state
        .store
        .keep_answer(&caller.token_id, key.as_str(), &answer, &audit)
        .await?;
    if kept != answer {
        // Only one request holds a key at a time, so this is an attempt
        // whose lease ran out while it worked and that another attempt
        // finished first: that answer stands (this request's audit record
        // was written all the same).
        return replay(kept, &request_hash, key.as_str(), &caller).map(|mut r| {
            r.extensions_mut().insert(AuditKept);
            r
        });
    }
    parts.extensions.insert(caller);
    parts.extensions.insert(AuditKept);
    Ok(Response::from_parts(parts, Body::from(body)))
}

/// Left on a POST by the idempotency middleware: what a handler whose
/// write goes through the group committer needs to keep the answer (and
/// the audit record) in the write's own transaction.
#[derive(Debug, Clone)]
pub struct Keeping {
    pub token_id: String,
    pub key: String,
    pub request_hash: String,
    /// The audit record, but for the status (the handler's).
    pub audit: AuditRecord,
}

impl Keeping {
    /// What the store keeps when the write succeeds with `status`, its
    /// body rendered from the entry by `body`.
    pub fn keep_with(
        self,
        status: StatusCode,
        body: Box<dyn Fn(&ledger_core::Entry) -> String + Send + Sync>,
    ) -> KeepWith {
        KeepWith {
            token_id: self.token_id,
            key: self.key,
            request_hash: self.request_hash,
            status: status.as_u16(),
            audit: AuditRecord {
                status: status.as_u16(),
                ..self.audit
            },
            body,
        }
    }
}

/// Left on a response whose answer and audit record were kept with its
/// entry (group commit): the middleware keeps nothing more.
#[derive(Debug, Clone, Copy)]
pub struct KeptInBatch;

/// Left on a response by a handler whose answer holds a secret shown once
/// (a new family token): the kept answer has it redacted.
#[derive(Debug, Clone)]
pub struct ShownOnce(pub String);

/// What a repeat shows in place of a secret shown once.
pub const REDACTED: &str = "(shown once, not kept)";

/// Left on a response whose audit record was already written, with its
/// kept answer in one transaction.
#[derive(Debug, Clone, Copy)]
struct AuditKept;

/// When a request was first accepted under its Idempotency-Key: the instant
/// server-filled defaults (`occurred_at`, the day a refund was requested)
/// are taken from, the same on every attempt of that request.
#[derive(Debug, Clone, Copy)]
pub struct Accepted {
    pub at: DateTime<Utc>,
}

enum Claimed {
    Held(DateTime<Utc>),
    Answered(KeptAnswer),
}

/// Holds the key for this request, or waits a little for the request that
/// holds it to answer. A repeat never acts while another attempt may still
/// be acting: it gets the first answer, or `409 request_in_progress` with
/// `Retry-After`.
async fn claim(
    state: &AppState,
    caller: &Caller,
    key: &ClientId,
    request_hash: &str,
) -> Result<Claimed, ApiError> {
    let lease = state.config.request_timeout + CLAIM_MARGIN;
    // Wait well inside the request timeout, so the repeat hears 409 with
    // Retry-After rather than a bare 408.
    let patience = (state.config.request_timeout / 2).min(REPEAT_PATIENCE);
    let started = tokio::time::Instant::now();
    loop {
        match state
            .claims
            .claim(&caller.token_id, key.as_str(), request_hash, lease)
            .await?
        {
            // Claimed afresh: every kept answer has its claim (migration
            // 0032), so none is kept for this key.
            KeyClaim::Held {
                accepted_at,
                attempt: 1,
            } => return Ok(Claimed::Held(accepted_at)),
            // Claimed before, its lease run out: the earlier attempt may
            // have answered after all.
            KeyClaim::Held {
                accepted_at,
                attempt,
            } => {
                if let Some(kept) = state
                    .store
                    .kept_answer(&caller.token_id, key.as_str())
                    .await?
                {
                    return Ok(Claimed::Answered(kept));
                }
                tracing::warn!(
                    key = key.as_str(),
                    attempt,
                    "an Idempotency-Key whose earlier attempt did not answer is taken over"
                );
                return Ok(Claimed::Held(accepted_at));
            }
            KeyClaim::Busy {
                request_hash: held,
                lease_until,
            } => {
                if held != request_hash {
                    return Err(reused(key.as_str()));
                }
                if let Some(kept) = state
                    .store
                    .kept_answer(&caller.token_id, key.as_str())
                    .await?
                {
                    return Ok(Claimed::Answered(kept));
                }
                if started.elapsed() >= patience {
                    let wait = (lease_until - state.store.now()).num_seconds().clamp(1, 60);
                    return Err(ApiError::new(
                        StatusCode::CONFLICT,
                        "request_in_progress",
                        format!("a request with Idempotency-Key {:?} is still being processed; retry after {wait} s to get its answer", key.as_str()),
                    )
                    .on_field("Idempotency-Key")
                    .retry_after(u64::try_from(wait).unwrap_or(1)));
                }
                tokio::time::sleep(REPEAT_POLL).await;
            }
        }
    }
}

/// How long a claim outlives the request timeout: a request cut off by the
/// timeout stops acting, and its key may be taken over after this margin.
const CLAIM_MARGIN: Duration = Duration::from_secs(1);
/// How long a repeat waits for the request holding its key to answer.
const REPEAT_PATIENCE: Duration = Duration::from_secs(5);
const REPEAT_POLL: Duration = Duration::from_millis(25);

fn reused(key: &str) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "idempotency_key_reused",
        format!("Idempotency-Key {key:?} was used before for a different request; use a new key for a new request"),
    )
    .on_field("Idempotency-Key")
}

fn replay(
    kept: KeptAnswer,
    request_hash: &str,
    key: &str,
    caller: &Caller,
) -> Result<Response, ApiError> {
    if kept.request_hash != request_hash {
        return Err(reused(key));
    }
    let status = StatusCode::from_u16(kept.status).map_err(|_| ApiError::internal())?;
    let mut response = (status, kept.body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
        .headers_mut()
        .insert(REPLAYED, HeaderValue::from_static("true"));
    response.extensions_mut().insert(caller.clone());
    Ok(response)
}
