//! What every mutating request leaves behind: an audit record (who, what,
//! when, outcome) and, for POSTs, the answer kept under its Idempotency-Key
//! so that a repeat gets the same answer and changes nothing.

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ledger_core::store::{AuditRecord, KeptAnswer};
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

/// Appends every mutating request to the audit log, whatever its outcome.
pub async fn audit(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if !mutating(request.method()) {
        return next.run(request).await;
    }
    let method = request.method().to_string();
    let path = request.uri().path().to_string();
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let response = next.run(request).await;
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
    let bytes = to_bytes(body, state.config.max_body_bytes)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!(
                    "the body is larger than {} bytes",
                    state.config.max_body_bytes
                ),
            )
        })?;
    let mut hasher = Sha256::new();
    hasher.update(parts.method.as_str());
    hasher.update(b"\n");
    hasher.update(parts.uri.to_string());
    hasher.update(b"\n");
    hasher.update(&bytes);
    let request_hash = hex::encode(hasher.finalize());

    if let Some(kept) = state
        .store
        .kept_answer(&caller.token_id, key.as_str())
        .await?
    {
        return replay(kept, &request_hash, key.as_str(), &caller);
    }
    let mut request = Request::from_parts(parts, Body::from(bytes));
    request.extensions_mut().insert(key.clone());
    let response = next.run(request).await;
    let status = response.status();
    // Only what was done is kept: a refusal changed nothing, so the same
    // request may be corrected and sent again under the same key.
    if !status.is_success() {
        return Ok(response);
    }
    let (mut parts, body) = response.into_parts();
    let body = to_bytes(body, usize::MAX).await.map_err(|e| {
        tracing::error!(error = %e, "response body could not be read");
        ApiError::internal()
    })?;
    let answer = KeptAnswer {
        request_hash: request_hash.clone(),
        status: status.as_u16(),
        body: String::from_utf8_lossy(&body).into_owned(),
    };
    let kept = state
        .store
        .keep_answer(&caller.token_id, key.as_str(), &answer)
        .await?;
    if kept != answer {
        // Another request with this key answered first: its answer stands.
        return replay(kept, &request_hash, key.as_str(), &caller);
    }
    parts.extensions.insert(caller);
    Ok(Response::from_parts(parts, Body::from(body)))
}

fn replay(
    kept: KeptAnswer,
    request_hash: &str,
    key: &str,
    caller: &Caller,
) -> Result<Response, ApiError> {
    if kept.request_hash != request_hash {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "idempotency_key_reused",
            format!("Idempotency-Key {key:?} was used before for a different request; use a new key for a new request"),
        )
        .on_field("Idempotency-Key"));
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
