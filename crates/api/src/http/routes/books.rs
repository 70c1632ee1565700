//! An institution's books: balances now or at any past instant, and its
//! journal entries in chain order; JSON, or CSV with `format=csv`.

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::access::{Action, Caller};
use crate::http::problem::{ApiError, ApiResult, Json, Problem, Query};
use crate::http::views::{BalancesView, EntryPage, EntryView, PageParams};
use crate::http::{guard, AppState};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(balances))
        .routes(routes!(entries))
        .routes(routes!(journal))
}

/// The institution's books as a plain-text double-entry journal (hledger
/// format): one transaction per entry; `hledger -f FILE bal --cleared`
/// gives the posted balances of `GET …/balances`.
#[utoipa::path(get, path = "/v1/institutions/{id}/journal", tag = "books",
    params(("id" = String, Path, description = "Institution id")),
    responses((status = 200, body = String, content_type = "text/plain", description = "hledger journal"),
              (status = 404, body = Problem)))]
async fn journal(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let i = guard::institution(&state, &caller, &id, Action::ReadBooks).await?;
    let text = crate::app::books::journal(&state.store, &i).await?;
    Ok((
        [
            (
                header::CONTENT_TYPE,
                "text/plain; charset=utf-8".to_string(),
            ),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{}.journal\"", i.id),
            ),
        ],
        text,
    )
        .into_response())
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BalancesQuery {
    /// The books as they stood at this instant (RFC 3339, by recorded time).
    pub at: Option<DateTime<Utc>>,
    /// `json` (default) or `csv`.
    pub format: Option<String>,
}

fn wants_csv(format: &Option<String>) -> ApiResult<bool> {
    match format.as_deref() {
        None | Some("json") => Ok(false),
        Some("csv") => Ok(true),
        Some(other) => Err(ApiError::invalid(
            "format",
            format!("format {other:?} is not json or csv"),
        )),
    }
}

fn csv_response(filename: &str, body: Vec<u8>) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{filename}\""),
            ),
        ],
        body,
    )
        .into_response()
}

fn csv_error(e: impl std::fmt::Display) -> ApiError {
    tracing::error!(error = %e, "csv rendering");
    ApiError::internal()
}

/// Balances of every account, with what families are owed and the coverage.
#[utoipa::path(get, path = "/v1/institutions/{id}/balances", tag = "books",
    params(("id" = String, Path, description = "Institution id"), BalancesQuery),
    responses((status = 200, body = BalancesView, description = "JSON, or text/csv with format=csv"),
              (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn balances(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<BalancesQuery>,
) -> ApiResult<Response> {
    let csv = wants_csv(&q.format)?;
    let (i, sheet) = match q.at {
        Some(at) => {
            let i = guard::institution(&state, &caller, &id, Action::ReadBooks).await?;
            let sheet = state
                .reads
                .balances_at(&i.id, at)
                .await
                .map_err(|e| ApiError::from(e).on_field("at"))?;
            (i, sheet)
        }
        None => guard::institution_with_balances(&state, &caller, &id, Action::ReadBooks).await?,
    };
    let view = BalancesView::from(&sheet);
    if !csv {
        return Ok(Json(view).into_response());
    }
    let mut w = csv::Writer::from_writer(Vec::new());
    for row in crate::app::tables::balances(&sheet) {
        w.write_record(&row).map_err(csv_error)?;
    }
    let body = w.into_inner().map_err(csv_error)?;
    Ok(csv_response(&format!("{}-balances.csv", i.id), body))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EntriesQuery {
    /// Only entries of this kind (e.g. tuition_paid, lessons_consumed).
    pub kind: Option<String>,
    /// Only entries of this enrollment.
    pub enrollment: Option<String>,
    /// Only entries that occurred at or after this instant.
    pub from: Option<DateTime<Utc>>,
    /// Only entries that occurred before this instant.
    pub to: Option<DateTime<Utc>>,
    /// `json` (default) or `csv`.
    pub format: Option<String>,
    pub cursor: Option<String>,
    /// 1 to 500; default 50.
    pub limit: Option<u32>,
}

/// Journal entries in chain order, filtered, a page at a time.
#[utoipa::path(get, path = "/v1/institutions/{id}/entries", tag = "books",
    params(("id" = String, Path, description = "Institution id"), EntriesQuery),
    responses((status = 200, body = EntryPage, description = "JSON, or text/csv with format=csv"),
              (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn entries(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<EntriesQuery>,
) -> ApiResult<Response> {
    let csv = wants_csv(&q.format)?;
    let limit = PageParams {
        cursor: None,
        limit: q.limit,
    }
    .limit()?;
    let mut after: i64 = match q.cursor.as_deref() {
        None => 0,
        Some(c) => c.parse().ok().filter(|n: &i64| *n >= 0).ok_or_else(|| {
            ApiError::invalid(
                "cursor",
                format!("cursor {c:?} is not one this API gave out"),
            )
        })?,
    };
    // A filter that could match nothing is a mistake to point at, not an
    // empty page (reached after scanning the whole chain).
    let kind: Option<ledger_core::EntryKind> = q
        .kind
        .as_deref()
        .map(|k| {
            serde_json::from_value(serde_json::Value::String(k.to_string())).map_err(|_| {
                ApiError::invalid(
                    "kind",
                    format!("{k:?} is not an entry kind (e.g. tuition_paid, lessons_consumed)"),
                )
            })
        })
        .transpose()?;
    let enrollment = q
        .enrollment
        .as_deref()
        .map(|x| {
            ledger_core::EnrollmentId::parse(x)
                .map_err(|e| ApiError::from(e).on_field("enrollment"))
        })
        .transpose()?;
    if let (Some(from), Some(to)) = (q.from, q.to) {
        if from >= to {
            return Err(ApiError::invalid(
                "to",
                format!("to ({to}) must be after from ({from}): no instant lies between them"),
            ));
        }
    }
    let i = guard::institution(&state, &caller, &id, Action::ReadBooks).await?;
    let keep = |e: &ledger_core::Entry| {
        kind.is_none_or(|k| e.kind == k)
            && enrollment
                .as_ref()
                .is_none_or(|x| e.enrollment.as_ref() == Some(x))
            && q.from.is_none_or(|f| e.occurred_at >= f)
            && q.to.is_none_or(|t| e.occurred_at < t)
    };
    // Filters are applied while scanning the chain, so a page is full
    // unless the chain ends; the cursor is the last sequence scanned.
    let mut items = Vec::new();
    let mut kept = Vec::new();
    let mut exhausted = false;
    while items.len() < limit {
        let batch = state.reads.entries(&i.id, after, 500).await?;
        if batch.is_empty() {
            exhausted = true;
            break;
        }
        for e in &batch {
            after = e.seq;
            if keep(e) {
                items.push(EntryView::from(e));
                if csv {
                    kept.push(e.clone());
                }
                if items.len() == limit {
                    break;
                }
            }
        }
    }
    let next_cursor = (!exhausted && !state.reads.entries(&i.id, after, 1).await?.is_empty())
        .then(|| after.to_string());
    if !csv {
        return Ok(Json(EntryPage { items, next_cursor }).into_response());
    }
    let mut w = csv::Writer::from_writer(Vec::new());
    for row in crate::app::tables::entries(&kept) {
        w.write_record(&row).map_err(csv_error)?;
    }
    let body = w.into_inner().map_err(csv_error)?;
    let mut response = csv_response(&format!("{}-entries.csv", i.id), body);
    if let Some(c) = next_cursor {
        if let Ok(v) = header::HeaderValue::from_str(&c) {
            response.headers_mut().insert("x-next-cursor", v);
        }
    }
    Ok(response)
}
