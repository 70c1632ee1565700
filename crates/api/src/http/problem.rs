//! Errors as `application/problem+json` (RFC 9457) with the stable `code`
//! from the domain, a human message and, for validation errors, the field.
//! Bad input is never a 500, and a 500 never carries SQL or internals: those
//! go to the log under the request id.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use ledger_core::domain::bounds::{note_refusal, MAX_NOTE_CHARS};
use ledger_core::domain::error::ErrorKind;
use ledger_core::{LedgerError, StoreError};
use serde::Serialize;
use utoipa::ToSchema;

use crate::app::{AppError, Kind};

/// The code an error answered with, left on the response for the audit log
/// and the metrics.
#[derive(Debug, Clone, Copy)]
pub struct ErrorCode(pub &'static str);

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub detail: String,
    pub field: Option<String>,
    /// Seconds after which a retry may succeed (`Retry-After`).
    pub retry_after: Option<u64>,
}

/// An error, as every endpoint reports it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem (`urn:escrow-ledger:problem:<code>`).
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    /// Stable, machine-readable: branch on this.
    pub code: String,
    /// What went wrong, where and why, for a person.
    pub detail: String,
    /// The request field at fault, for validation errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            detail: detail.into(),
            field: None,
            retry_after: None,
        }
    }

    pub fn retry_after(mut self, seconds: u64) -> ApiError {
        self.retry_after = Some(seconds);
        self
    }

    pub fn on_field(mut self, field: impl Into<String>) -> ApiError {
        self.field = Some(field.into());
        self
    }

    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, detail)
    }

    pub fn invalid(field: &str, detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", detail).on_field(field)
    }

    /// Out of scope and absent look the same.
    pub fn not_found(what: impl std::fmt::Display) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} does not exist or is not yours to see"),
        )
    }

    pub fn forbidden(role: &str, action: &str) -> ApiError {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("a {role} token may not {action}"),
        )
    }

    pub fn unauthorized(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
    }

    pub fn internal() -> ApiError {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "the service could not complete the request; the log has the details under this request's id",
        )
    }

    pub fn problem(&self) -> Problem {
        Problem {
            kind: format!("urn:escrow-ledger:problem:{}", self.code),
            title: self
                .status
                .canonical_reason()
                .unwrap_or("Error")
                .to_string(),
            status: self.status.as_u16(),
            code: self.code.to_string(),
            detail: self.detail.clone(),
            field: self.field.clone(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.problem()).unwrap_or_default();
        let mut response = (self.status, body).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response.extensions_mut().insert(ErrorCode(self.code));
        response
    }
}

/// The status a refusal of the ledger answers with.
fn ledger_status(error: &LedgerError) -> StatusCode {
    match error.kind() {
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::Forbidden => StatusCode::FORBIDDEN,
        ErrorKind::Invalid => StatusCode::UNPROCESSABLE_ENTITY,
    }
}

fn ledger_field(error: &LedgerError) -> Option<String> {
    match error {
        LedgerError::MissingField { field, .. } | LedgerError::InvalidField { field, .. } => {
            Some(field.to_string())
        }
        LedgerError::InvalidId {
            what: "external reference",
            ..
        } => Some("external_ref".to_string()),
        _ => None,
    }
}

impl From<LedgerError> for ApiError {
    fn from(error: LedgerError) -> ApiError {
        ApiError {
            status: ledger_status(&error),
            code: error.code(),
            field: ledger_field(&error),
            detail: error.to_string(),
            retry_after: None,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> ApiError {
        match error {
            StoreError::Rejected { index, error } => {
                let mut e = ApiError::from(error);
                if let Some(i) = index {
                    e.detail = format!("item {i} of the batch: {}", e.detail);
                    e.field = Some(match e.field {
                        Some(f) => format!("items[{i}].{f}"),
                        None => format!("items[{i}]"),
                    });
                }
                e
            }
            other => {
                tracing::error!(error = %other, "store failure");
                ApiError::internal()
            }
        }
    }
}

impl From<AppError> for ApiError {
    fn from(error: AppError) -> ApiError {
        let status = match error.kind() {
            Kind::Invalid => StatusCode::UNPROCESSABLE_ENTITY,
            Kind::NotFound => StatusCode::NOT_FOUND,
            Kind::Conflict => StatusCode::CONFLICT,
            Kind::Forbidden => StatusCode::FORBIDDEN,
            Kind::Unavailable => StatusCode::BAD_GATEWAY,
            Kind::Busy => StatusCode::SERVICE_UNAVAILABLE,
            Kind::Internal => {
                tracing::error!(error = %error, "store failure");
                return ApiError::internal();
            }
        };
        let detail = match &error {
            AppError::NotFound { what } => format!("{what} does not exist or is not yours to see"),
            other => other.to_string(),
        };
        let retry_after = match &error {
            AppError::Busy {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            _ => None,
        };
        ApiError {
            status,
            code: error.code(),
            field: error.field(),
            detail,
            retry_after,
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> ApiError {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                "the body is larger than this route's limit; nothing was done",
            )
            .on_field("body");
        }
        let code = match &rejection {
            JsonRejection::MissingJsonContentType(_) => "unsupported_media_type",
            JsonRejection::JsonSyntaxError(_) => "malformed_json",
            JsonRejection::JsonDataError(_) => "invalid_body",
            _ => "unreadable_body",
        };
        let status = match code {
            "unsupported_media_type" => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "invalid_body" => StatusCode::UNPROCESSABLE_ENTITY,
            _ => StatusCode::BAD_REQUEST,
        };
        let detail = rejection.body_text();
        let mut e = ApiError::new(status, code, detail.clone());
        // serde names the field first: "…: missing field `amount` at line 1 column 2".
        if let Some(field) = detail
            .split('`')
            .nth(1)
            .filter(|_| detail.contains("field `"))
        {
            e.field = Some(field.to_string());
        } else if let Some((path, _)) = detail
            .split_once(": ")
            .and_then(|(_, rest)| rest.split_once(": "))
        {
            if !path.contains(' ') {
                e.field = Some(path.to_string());
            }
        }
        e
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> ApiError {
        ApiError::bad_request("invalid_query", rejection.body_text())
    }
}

/// `axum::Json`, with refusals as problems, and text that cannot be kept
/// (`bounds::note_refusal`: NUL, control characters, over-long) refused with
/// where it was.
#[derive(Debug)]
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        let json = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|v| v.trim().to_ascii_lowercase())
            .is_some_and(|v| v == "application/json" || v.ends_with("+json"));
        if !json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "the body must be JSON, sent with `Content-Type: application/json`",
            ));
        }
        let bytes = axum::body::Bytes::from_request(request, state)
            .await
            .map_err(|e| ApiError::bad_request("unreadable_body", e.body_text()))?;
        // Only a body with an escaped control character, or long enough to
        // hold an over-long string, is read twice.
        let suspect = bytes.len() > MAX_NOTE_CHARS
            || [&b"\\u00"[..], b"\\b", b"\\f"]
                .iter()
                .any(|escape| bytes.windows(escape.len()).any(|w| w == *escape));
        let bad = suspect
            .then(|| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
            .flatten()
            .and_then(|v| bad_text(&v, String::new()));
        if let Some((field, why)) = bad {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_text",
                format!("{field}: {why}"),
            )
            .on_field(field));
        }
        axum::Json::<T>::from_bytes(&bytes)
            .map(|axum::Json(v)| Json(v))
            .map_err(ApiError::from)
    }
}

/// Where in a JSON document a text (a value or a key) cannot be kept, and
/// why (`bounds::note_refusal`).
fn bad_text(value: &serde_json::Value, at: String) -> Option<(String, String)> {
    use serde_json::Value;
    match value {
        Value::String(s) => note_refusal(s).map(|why| (at, why)),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| bad_text(v, format!("{at}[{i}]"))),
        Value::Object(fields) => fields.iter().find_map(|(k, v)| {
            let path = if at.is_empty() {
                k.clone()
            } else {
                format!("{at}.{k}")
            };
            match note_refusal(k) {
                Some(why) => Some((path, why)),
                None => bad_text(v, path),
            }
        }),
        _ => None,
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// `axum::extract::Query`, with refusals as problems.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);

pub type ApiResult<T> = Result<T, ApiError>;

/// A NUL character (`%00`) anywhere in the path or query is refused before
/// any handler runs: no database can hold it, and no id of ours contains it.
pub async fn refuse_nul_in_uri(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let uri = request.uri().to_string();
    if uri.to_ascii_lowercase().contains("%00") {
        let field = if request.uri().path().contains("%00") {
            "path"
        } else {
            "query"
        };
        return ApiError::bad_request(
            "invalid_uri",
            format!("the {field} contains a NUL character (%00)"),
        )
        .on_field(field)
        .into_response();
    }
    next.run(request).await
}
