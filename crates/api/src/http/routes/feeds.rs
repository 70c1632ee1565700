//! A bank uploads a statement file (camt.052/053/054, MT940/942) for the
//! accounts it holds. The file is parsed whole and stored whole, or refused
//! whole with where and why; the same file twice changes nothing.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use bank_adapter::parse::ParseOptions;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::access::{Action, Caller, Scope};
use crate::app;
use crate::app::feeds::{FeedReceipt, StatementFile};
use crate::http::problem::{ApiError, ApiResult, Json, Problem, Query};
use crate::http::{guard, AppState};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(upload))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FeedQuery {
    /// The sending bank; a bank token's own bank by default.
    pub bank: Option<String>,
}

/// Upload a statement file; the body is the file itself.
#[utoipa::path(post, path = "/v1/feeds", tag = "feeds", params(FeedQuery,
        ("Idempotency-Key" = String, Header, description = "Repeats get the first answer")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream",
                 description = "camt.052/053/054 XML or MT940/MT942 text, detected by content"),
    responses((status = 201, body = FeedReceipt), (status = 404, body = Problem),
              (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn upload(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<FeedQuery>,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<FeedReceipt>)> {
    let bank = match (q.bank, &caller.scope) {
        (Some(b), _) => b,
        (None, Scope::Bank(b)) => b.clone(),
        (None, _) => {
            return Err(ApiError::invalid(
                "bank",
                "name the sending bank with ?bank=…",
            ))
        }
    };
    guard::bank(&state, &caller, &bank, Action::SendFeeds).await?;
    Ok((
        StatusCode::CREATED,
        Json(ingest(&state, bank, &body).await?),
    ))
}

/// Parses a whole file and stores it whole, or refuses it whole.
async fn ingest(state: &AppState, bank: String, body: &[u8]) -> ApiResult<FeedReceipt> {
    if body.is_empty() {
        return Err(ApiError::invalid(
            "body",
            "the body is empty: send the statement file",
        ));
    }
    if let Some(at) = body.iter().position(|b| *b == 0) {
        return Err(ApiError::invalid(
            "body",
            format!("byte {at} of the file is NUL: statement files are text (camt XML, MT940/942); nothing was stored"),
        ));
    }
    let options = ParseOptions::default();
    let receipt = app::feeds::ingest(&state.store, StatementFile::received(&bank, body, &options))
        .await
        .map_err(|e| {
            let mut e = ApiError::from(e);
            e.field.get_or_insert_with(|| "body".to_string());
            e
        })?;
    state.metrics.feed_lines_ingested(receipt.lines_stored);
    Ok(receipt)
}

/// The bank-push routes: authenticated by the bank's signature, not a token.
pub fn pushed() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(notification))
}

/// A bank pushes a notification or intraday report (camt.054/052, MT942),
/// signed: `X-Escrow-Timestamp` (unix seconds) and `X-Escrow-Signature:
/// sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>`, within five
/// minutes of our clock. Stored like an upload; the same file twice changes
/// nothing.
#[utoipa::path(post, path = "/v1/banks/{bank}/notifications", tag = "feeds", security(()),
    params(("bank" = String, Path, description = "The pushing bank"),
           ("X-Escrow-Timestamp" = String, Header, description = "Unix seconds"),
           ("X-Escrow-Signature" = String, Header, description = "sha256=<64 hex>")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 201, body = FeedReceipt), (status = 401, body = Problem),
              (status = 404, body = Problem), (status = 409, body = Problem),
              (status = 413, body = Problem), (status = 422, body = Problem)))]
async fn notification(
    State(state): State<AppState>,
    axum::extract::Path(bank): axum::extract::Path<String>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<FeedReceipt>)> {
    let secret = state
        .banks
        .push_secret(&bank)
        .ok_or_else(|| ApiError::not_found(format!("bank {bank:?}")))?;
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    bank_adapter::signature::verify(
        secret,
        header(bank_adapter::signature::TIMESTAMP_HEADER),
        header(bank_adapter::signature::SIGNATURE_HEADER),
        &body,
        state.store.now(),
    )
    .map_err(|e| ApiError::new(StatusCode::UNAUTHORIZED, e.code(), e.to_string()))?;
    Ok((
        StatusCode::CREATED,
        Json(ingest(&state, bank, &body).await?),
    ))
}
