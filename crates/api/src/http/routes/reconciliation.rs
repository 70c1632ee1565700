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
use crate::http::problem::{ApiError, ApiResult, Json, Problem, Query};
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
    /// One report per supervised account: `bank_closing`, `ledger_balance`,
    /// `owed`, `bank_minus_ledger`, `days` (each statement day's bank
    /// closing, ledger balance at that day's end, owed, difference and
    /// status `agrees`, `differs` or `quarantined`), `quarantine` (where the
    /// statement chain breaks, or null), `provisional` (intraday lines
    /// matched but not booked), `matches`, `suggestions`, `unmatched_lines`
    /// (with `unauthorized_outflow`), `unmatched_entries`.
    #[schema(value_type = Vec<Object>)]
    pub accounts: Vec<serde_json::Value>,
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
    responses((status = 200, body = Reconciliation), (status = 400, body = Problem), (status = 404, body = Problem)))]
async fn reconciliation(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<ReconciliationQuery>,
) -> ApiResult<Json<Reconciliation>> {
    let i = guard::institution(&state, &caller, &id, Action::Oversee).await?;
    let mut accounts = Vec::new();
    for account in state.store.supervised_accounts(&i.id).await? {
        accounts.push(crate::reconcile::account_report(&state.store, &account, q.date).await?);
    }
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

/// One statement day as reconciliation recorded it.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecordedDayView {
    pub bank: String,
    pub account: String,
    /// `escrow` or `deposit`.
    pub kind: String,
    pub date: chrono::NaiveDate,
    pub statement: String,
    /// 1 when the day was first kept; each change of its figures adds one.
    pub version: i64,
    /// Whether a later version of this day exists.
    pub superseded: bool,
    pub recorded_at: chrono::DateTime<chrono::Utc>,
    /// The bank's closing balance that day (decimal string).
    pub bank_closing: String,
    /// The ledger's balance of the account at the end of that day.
    pub ledger_balance: String,
    /// What the books said was owed at the end of that day.
    pub owed: String,
    pub bank_minus_ledger: String,
    /// `agrees`, `differs` or `quarantined`.
    pub status: String,
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
    let accounts = state.store.supervised_accounts(&i.id).await?;
    let history = state.store.recon_day_history(&i.id).await?;
    let mut days = Vec::with_capacity(history.len());
    for (n, r) in history.iter().enumerate() {
        let superseded = history.get(n + 1).is_some_and(|next| {
            (&next.bank, &next.account_no, &next.day.statement_key)
                == (&r.bank, &r.account_no, &r.day.statement_key)
        });
        if superseded && q.history != Some(true) {
            continue;
        }
        // A recorded day always belongs to a supervised account (foreign
        // key to its statement); the account gives currency and kind.
        let account = accounts
            .iter()
            .find(|a| a.bank == r.bank && a.account_no == r.account_no)
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "recorded day of {} at {} has no supervised account",
                    r.account_no,
                    r.bank
                )
            })?;
        let money = |minor: i64| ledger_core::domain::money::format_minor(minor, account.currency);
        days.push(RecordedDayView {
            bank: r.bank.clone(),
            account: r.account_no.clone(),
            kind: account.kind.code().to_string(),
            date: r.day.day,
            statement: r.day.statement_key.clone(),
            version: r.version,
            superseded,
            recorded_at: r.recorded_at,
            bank_closing: money(r.day.bank_closing_minor),
            ledger_balance: money(r.day.ledger_balance_minor),
            owed: money(r.day.owed_minor),
            bank_minus_ledger: money(r.day.bank_closing_minor - r.day.ledger_balance_minor),
            status: r.day.status.clone(),
        });
    }
    Ok(Json(RecordedDays {
        institution: i.id.to_string(),
        days,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Suggestion {
    /// The match's id, for confirm or reject.
    pub id: String,
    /// The matching pass that suggested it.
    pub pass: String,
    pub explanation: String,
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
    Ok(Json(
        state
            .store
            .suggestions(&i.id)
            .await?
            .into_iter()
            .map(|(id, pass, explanation)| Suggestion {
                id,
                pass,
                explanation,
            })
            .collect(),
    ))
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
    let confirm = match body.decision.as_str() {
        "confirm" => true,
        "reject" => false,
        other => {
            return Err(ApiError::invalid(
                "decision",
                format!("{other:?} is not confirm or reject"),
            ))
        }
    };
    let actor = format!(
        "{} ({} token {})",
        caller.name,
        caller.role.as_str(),
        caller.token_id
    );
    state
        .store
        .decide_suggestion(&i.id, &match_id, confirm, &actor, body.comment.as_deref())
        .await?;
    suggestions(State(state), caller, Path(id)).await
}
