//! Reconciliation over HTTP: each supervised account's three figures (the
//! bank's closing balance, the ledger's, what is owed) with every bank line
//! matched, suggested or unmatched and why; and the suggestions an officer
//! confirms or rejects (each decision kept with who and when); and the
//! statement days as recorded, with every version of a day whose figures
//! changed after they were first kept.

use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::access::{Action, Caller};
use crate::app::reconcile::{self, AccountReconciliation, Decision, RecordedDayView, Suggestion};
use crate::http::problem::{ApiResult, Json, Problem, Query};
use crate::http::{guard, AppState};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(reconciliation))
        .routes(routes!(recorded_days))
        .routes(routes!(suggestions))
        .routes(routes!(decide))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Reconciliation {
    pub institution: String,
    /// One report per supervised account.
    pub accounts: Vec<AccountReconciliation>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReconciliationQuery {
    /// Reconcile as things stood at the end of this day (YYYY-MM-DD):
    /// statements, lines and entries after it are left out.
    pub date: Option<chrono::NaiveDate>,
}

/// The institution's supervised accounts reconciled against its books,
/// statement day by statement day (a report: it records nothing).
#[utoipa::path(get, path = "/v1/institutions/{id}/reconciliation", tag = "oversight",
    params(("id" = String, Path, description = "Institution id"), ReconciliationQuery),
    responses((status = 200, body = Reconciliation), (status = 400, body = Problem), (status = 404, body = Problem),
              (status = 422, body = Problem)))]
async fn reconciliation(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<ReconciliationQuery>,
) -> ApiResult<Json<Reconciliation>> {
    let i = guard::institution(&state, &caller, &id, Action::Oversee).await?;
    let accounts = reconcile::report(&state.store, Some(&i.id), q.date).await?;
    Ok(Json(Reconciliation {
        institution: i.id.to_string(),
        accounts,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RecordedDaysQuery {
    /// `true`: every version of each day, oldest first; default: the
    /// latest version of each day only.
    pub history: Option<bool>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RecordedDays {
    pub institution: String,
    /// By account, then day; a day's versions oldest first.
    pub days: Vec<RecordedDayView>,
}

/// The statement days reconciliation has recorded (`reconcile --record`,
/// or the hourly job): what the bank, the ledger and the books said each
/// day when it was kept. Append-only: a day whose figures changed later has
/// a new version, and `history=true` shows the old ones too.
#[utoipa::path(get, path = "/v1/institutions/{id}/reconciliation/days", tag = "oversight",
    params(("id" = String, Path, description = "Institution id"), RecordedDaysQuery),
    responses((status = 200, body = RecordedDays), (status = 400, body = Problem), (status = 404, body = Problem)))]
async fn recorded_days(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<RecordedDaysQuery>,
) -> ApiResult<Json<RecordedDays>> {
    let i = guard::institution(&state, &caller, &id, Action::Oversee).await?;
    let days = reconcile::recorded_days(&state.store, &i.id, q.history == Some(true)).await?;
    Ok(Json(RecordedDays {
        institution: i.id.to_string(),
        days,
    }))
}

/// Matches reconciliation only suggested, waiting for an officer.
#[utoipa::path(get, path = "/v1/institutions/{id}/suggestions", tag = "oversight",
    params(("id" = String, Path, description = "Institution id")),
    responses((status = 200, body = Vec<Suggestion>), (status = 404, body = Problem)))]
async fn suggestions(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<Suggestion>>> {
    let i = guard::institution(&state, &caller, &id, Action::Oversee).await?;
    Ok(Json(reconcile::suggestions(&state.store, &i.id).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SuggestionDecision {
    /// `confirm` (the match claims its lines and entries) or `reject`.
    pub decision: String,
    pub comment: Option<String>,
}

/// Confirm or reject a suggested match.
#[utoipa::path(post, path = "/v1/institutions/{id}/suggestions/{match_id}", tag = "oversight",
    request_body = SuggestionDecision,
    params(("id" = String, Path, description = "Institution id"),
           ("match_id" = String, Path, description = "Suggestion id"),
           ("Idempotency-Key" = String, Header, description = "Repeats get the first answer")),
    responses((status = 200, body = Vec<Suggestion>, description = "The suggestions still waiting"),
              (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn decide(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, match_id)): Path<(String, String)>,
    Json(body): Json<SuggestionDecision>,
) -> ApiResult<Json<Vec<Suggestion>>> {
    let i = guard::institution(&state, &caller, &id, Action::WorkAlerts).await?;
    let decision = Decision::parse(&body.decision)?;
    let actor = format!(
        "{} ({} token {})",
        caller.name,
        caller.role.as_str(),
        caller.token_id
    );
    reconcile::decide(
        &state.store,
        &i.id,
        &match_id,
        decision,
        &actor,
        body.comment.as_deref(),
    )
    .await?;
    Ok(Json(reconcile::suggestions(&state.store, &i.id).await?))
}
