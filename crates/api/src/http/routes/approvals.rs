//! Maker–checker over HTTP: the requests waiting for a second officer
//! (scoped by jurisdiction, paged), and their approval or rejection.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use ledger_core::domain::approvals::{Approval, Party};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::access::{Action, Caller};
use crate::app::approvals;
use crate::http::problem::{ApiError, ApiResult, Json, Problem, Query};
use crate::http::{guard, AppState};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_approvals))
        .routes(routes!(get_approval))
        .routes(routes!(approve))
        .routes(routes!(reject))
}

/// The caller as the approval rules see it.
pub fn party(caller: &Caller) -> Party {
    approvals::party(caller)
}

/// A request waiting for (or given) a second officer's answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApprovalView {
    #[schema(example = "AP3F2A9C0D1E2B3C4D5E6F")]
    pub id: String,
    /// release, payee_change, refund or rule_pack.
    pub kind: String,
    /// pending, approving (an approval claimed, its effect under way or
    /// cut short and completed by a retry or the workflow job), approved
    /// or rejected.
    pub state: String,
    pub jurisdiction: String,
    pub institution: Option<String>,
    /// An institution, a refund, or `code@version` of a rule pack.
    pub subject: String,
    pub summary: String,
    pub requested_by: String,
    pub requested_at: chrono::DateTime<chrono::Utc>,
    /// Who took the decision and when, before its effect ran (while
    /// approving: who is approving it).
    pub claimed_by: Option<String>,
    pub claimed_at: Option<chrono::DateTime<chrono::Utc>>,
    pub decided_by: Option<String>,
    pub decided_at: Option<chrono::DateTime<chrono::Utc>>,
    pub reason: Option<String>,
}

impl From<&Approval> for ApprovalView {
    fn from(a: &Approval) -> Self {
        ApprovalView {
            id: a.id.clone(),
            kind: a.kind.code().to_string(),
            state: a.state().to_string(),
            jurisdiction: a.jurisdiction.to_string(),
            institution: a.institution.as_ref().map(|i| i.to_string()),
            subject: a.subject.clone(),
            summary: a.summary.clone(),
            requested_by: a.requested_by.clone(),
            requested_at: a.requested_at,
            claimed_by: a.claim.as_ref().map(|c| c.by.clone()),
            claimed_at: a.claim.as_ref().map(|c| c.at),
            decided_by: a.decision.as_ref().map(|d| d.by.clone()),
            decided_at: a.decision.as_ref().map(|d| d.at),
            reason: a.decision.as_ref().and_then(|d| d.reason.clone()),
        }
    }
}

/// The answer to a request that waits for a second officer: 202.
pub fn waiting(a: &Approval) -> (StatusCode, Json<ApprovalView>) {
    (StatusCode::ACCEPTED, Json(ApprovalView::from(a)))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApprovalPage {
    pub items: Vec<ApprovalView>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ApprovalQuery {
    /// `pending` (the default) or `all`.
    pub state: Option<String>,
    /// Opaque: the `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// 1 to 500; default 50.
    pub limit: Option<u32>,
}

/// Requests in the caller's jurisdiction, oldest first.
#[utoipa::path(get, path = "/v1/approvals", tag = "approvals", params(ApprovalQuery),
    responses((status = 200, body = ApprovalPage), (status = 403, body = Problem), (status = 422, body = Problem)))]
async fn list_approvals(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ApprovalQuery>,
) -> ApiResult<Json<ApprovalPage>> {
    guard::may(&caller, Action::Approve)?;
    let pending_only = match q.state.as_deref() {
        None | Some("pending") => true,
        Some("all") => false,
        Some(other) => {
            return Err(ApiError::invalid(
                "state",
                format!("state {other:?} is not pending or all"),
            ))
        }
    };
    let limit = crate::http::views::PageParams {
        cursor: None,
        limit: q.limit,
    }
    .limit()?;
    let (items, next_cursor) = approvals::list(
        &state.store,
        |code| caller.sees_jurisdiction(code),
        pending_only,
        q.cursor.as_deref(),
        limit,
    )
    .await?;
    Ok(Json(ApprovalPage {
        items: items.iter().map(ApprovalView::from).collect(),
        next_cursor,
    }))
}

async fn find(state: &AppState, caller: &Caller, id: &str) -> ApiResult<Approval> {
    guard::may(caller, Action::Approve)?;
    let a = approvals::find(&state.store, id).await?;
    if !caller.sees_jurisdiction(&a.jurisdiction) {
        return Err(ApiError::not_found(format!("approval {id:?}")));
    }
    Ok(a)
}

/// One request and its decision.
#[utoipa::path(get, path = "/v1/approvals/{id}", tag = "approvals",
    params(("id" = String, Path, description = "Approval id")),
    responses((status = 200, body = ApprovalView), (status = 404, body = Problem)))]
async fn get_approval(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<ApprovalView>> {
    Ok(Json(ApprovalView::from(&find(&state, &caller, &id).await?)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApprovalAnswer {
    /// Why (required to reject).
    pub reason: Option<String>,
}

/// Approve another officer's request: its effect (the release, the payee,
/// the refund, the rule pack) happens now, once. The decision is claimed
/// first: an answer crossing another gets 409 naming the winner
/// (`approval_being_decided`, `approval_already_decided`); an effect the
/// books refuse changes nothing and leaves the request pending.
#[utoipa::path(post, path = "/v1/approvals/{id}/approve", tag = "approvals", request_body = ApprovalAnswer,
    params(("id" = String, Path, description = "Approval id"),
           ("Idempotency-Key" = String, Header, description = "Repeats get the first answer")),
    responses((status = 200, body = ApprovalView), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn approve(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(_body): Json<ApprovalAnswer>,
) -> ApiResult<Json<ApprovalView>> {
    let a = find(&state, &caller, &id).await?;
    let decided = approvals::approve(&state.store, &a, &party(&caller)).await?;
    Ok(Json(ApprovalView::from(&decided)))
}

/// Reject another officer's request, with the reason: nothing happens.
/// Refused with 409 once an approval is claimed or recorded.
#[utoipa::path(post, path = "/v1/approvals/{id}/reject", tag = "approvals", request_body = ApprovalAnswer,
    params(("id" = String, Path, description = "Approval id"),
           ("Idempotency-Key" = String, Header, description = "Repeats get the first answer")),
    responses((status = 200, body = ApprovalView), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn reject(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(body): Json<ApprovalAnswer>,
) -> ApiResult<Json<ApprovalView>> {
    let a = find(&state, &caller, &id).await?;
    let reason = body.reason.unwrap_or_default();
    let decided = approvals::reject(&state.store, &a, &party(&caller), &reason).await?;
    Ok(Json(ApprovalView::from(&decided)))
}
