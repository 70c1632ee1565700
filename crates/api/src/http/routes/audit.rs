//! The audit log over HTTP, for admins: every mutating request with who,
//! what, when and the outcome, oldest first, a page at a time.

use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::access::{Action, Caller};
use crate::http::problem::{ApiError, ApiResult, Json, Problem, Query};
use crate::http::views::PageParams;
use crate::http::{guard, AppState};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(audit_log))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditView {
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub request_id: String,
    /// The token used (its id, never its secret); null when there was none.
    pub token_id: Option<String>,
    pub role: Option<String>,
    pub method: String,
    pub path: String,
    pub status: u16,
    /// `ok`, or the code of the error answered.
    pub outcome: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    pub items: Vec<AuditView>,
    pub next_cursor: Option<String>,
}

/// The audit log (admins only).
#[utoipa::path(get, path = "/v1/audit", tag = "oversight", params(PageParams),
    responses((status = 200, body = AuditPage), (status = 403, body = Problem)))]
async fn audit_log(
    State(state): State<AppState>,
    caller: Caller,
    Query(page): Query<PageParams>,
) -> ApiResult<Json<AuditPage>> {
    guard::may(&caller, Action::ReadAudit)?;
    let limit = page.limit()?;
    let after: i64 = match page.cursor.as_deref() {
        None => 0,
        Some(c) => c.parse().ok().filter(|n: &i64| *n >= 0).ok_or_else(|| {
            ApiError::invalid(
                "cursor",
                format!("cursor {c:?} is not one this API gave out"),
            )
        })?,
    };
    let mut rows = state.store.audit_log(after, limit as i64 + 1).await?;
    let next_cursor = (rows.len() > limit).then(|| rows[limit - 1].0.to_string());
    rows.truncate(limit);
    Ok(Json(AuditPage {
        items: rows
            .into_iter()
            .map(|(seq, at, r)| AuditView {
                seq,
                at,
                request_id: r.request_id,
                token_id: r.token_id,
                role: r.role,
                method: r.method,
                path: r.path,
                status: r.status,
                outcome: r.outcome,
            })
            .collect(),
        next_cursor,
    }))
}
