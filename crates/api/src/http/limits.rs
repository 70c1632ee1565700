//! How much a request may send, and how long it may take, answered as
//! problems like every other refusal. Statement files have their own, larger
//! limit: a month-end camt.053 of a busy account is many megabytes, a JSON
//! request never is.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::http::problem::ApiError;
use crate::http::AppState;

/// Routes whose body is a bank's statement file.
fn carries_a_statement_file(path: &str) -> bool {
    path == "/v1/feeds" || (path.starts_with("/v1/banks/") && path.ends_with("/notifications"))
}

/// The body limit of this request's route, enforced on the declared length
/// at once and on the bytes as they arrive (a body without a length, or one
/// that lies about it).
pub async fn limit_body(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let limit = if carries_a_statement_file(request.uri().path()) {
        state.config.max_feed_bytes
    } else {
        state.config.max_body_bytes
    };
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return too_large(limit).into_response();
    }
    let request = request.map(|body| Body::new(http_body_util::Limited::new(body, limit)));
    next.run(request).await
}

pub fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        format!("the body is larger than this route's limit of {limit} bytes; nothing was done"),
    )
    .on_field("body")
}

/// Answers that the framework's layers make themselves (a timeout's 408, a
/// 413 from a body read past its limit, a 405) carry no problem document;
/// give them one, so every refusal reads the same.
pub async fn problem_bodies(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/problem+json"));
    let made_by_the_framework = matches!(
        status,
        StatusCode::REQUEST_TIMEOUT
            | StatusCode::PAYLOAD_TOO_LARGE
            | StatusCode::METHOD_NOT_ALLOWED
    );
    if !made_by_the_framework || is_problem {
        return response;
    }
    let (code, detail) = match status {
        StatusCode::REQUEST_TIMEOUT => (
            "request_timeout",
            "the request took longer than the service allows and was cut off; if it was a POST, repeat it with the same Idempotency-Key to learn its outcome".to_string(),
        ),
        StatusCode::PAYLOAD_TOO_LARGE => (
            "body_too_large",
            "the body is larger than this route's limit; nothing was done".to_string(),
        ),
        _ => (
            "method_not_allowed",
            "this route does not take that method".to_string(),
        ),
    };
    let mut answer = ApiError::new(status, code, detail).into_response();
    for name in [header::ALLOW, header::RETRY_AFTER] {
        if let Some(v) = response.headers().get(&name) {
            answer.headers_mut().insert(name, v.clone());
        }
    }
    answer
}
