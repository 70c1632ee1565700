//! Refunds over HTTP: a request (by the institution, the platform or an
//! officer), an officer's approval or refusal, and the refund with every
//! state it passed through. The job runner does the rest (see `workflow`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use chrono::{DateTime, NaiveDate, Utc};
use ledger_core::domain::money::format_minor;
use ledger_core::domain::refunds::{Payee, Refund};
use ledger_core::{ClientId, Currency};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::access::{Action, Caller};
use crate::app::jobs;
use crate::app::refunds::{self, Settlement};
use crate::http::problem::{ApiError, ApiResult, Json, Problem};
use crate::http::record::Accepted;
use crate::http::{guard, AppState};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(request_refund))
        .routes(routes!(get_refund))
        .routes(routes!(approve_refund))
        .routes(routes!(decline_refund))
        .routes(routes!(paid_by_institution))
        .routes(routes!(pay_from_deposit))
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PayeeBody {
    /// The family member the money goes back to.
    pub name: String,
    pub account: String,
    /// Their bank: a BIC or a domestic code (CNAPS).
    pub bank: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRefund {
    #[schema(example = "ENR-0001")]
    pub enrollment: String,
    /// A decimal string; omit to refund everything not yet consumed.
    pub amount: Option<String>,
    pub payee: PayeeBody,
    pub reason: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RefundStep {
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    /// requested, approved, instructed, paid, returned or declined.
    pub state: String,
    pub detail: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RefundView {
    #[schema(example = "RF0123456789AB")]
    pub id: String,
    pub institution: String,
    pub enrollment: String,
    /// Null: everything not yet consumed.
    pub amount: Option<String>,
    pub currency: String,
    pub payee: PayeeBody,
    pub reason: Option<String>,
    pub state: String,
    pub requested_by: String,
    pub requested_on: NaiveDate,
    /// Deemed approved if not answered by the end of this day.
    pub answer_by: NaiveDate,
    /// Overdue if not paid by the end of this day.
    pub pay_by: Option<NaiveDate>,
    /// The bank instruction's id (its idempotency key and end-to-end id).
    pub instruction_id: Option<String>,
    /// Every state it passed through, oldest first.
    pub history: Vec<RefundStep>,
}

async fn view(state: &AppState, r: &Refund, currency: Currency) -> ApiResult<RefundView> {
    let history = state
        .store
        .refund_trail(&r.institution, r.id.as_str())
        .await?
        .into_iter()
        .map(|e| RefundStep {
            seq: e.seq,
            at: e.at,
            actor: e.actor,
            state: e.state,
            detail: e.detail,
        })
        .collect();
    Ok(RefundView {
        id: r.id.to_string(),
        institution: r.institution.to_string(),
        enrollment: r.enrollment.to_string(),
        amount: r.amount_minor.map(|m| format_minor(m, currency)),
        currency: currency.code().to_string(),
        payee: PayeeBody {
            name: r.payee.name.clone(),
            account: r.payee.account.clone(),
            bank: r.payee.bank.clone(),
        },
        reason: r.reason.clone(),
        state: r.state.code().to_string(),
        requested_by: r.requested_by.clone(),
        requested_on: r.requested_on,
        answer_by: r.answer_by,
        pay_by: r.pay_by,
        instruction_id: r.instruction_id.clone(),
        history,
    })
}

fn actor(caller: &Caller) -> String {
    format!(
        "{} ({} token {})",
        caller.name,
        caller.role.as_str(),
        caller.token_id
    )
}

/// Ask for a refund of unconsumed tuition.
#[utoipa::path(post, path = "/v1/institutions/{id}/refunds", tag = "refunds", request_body = NewRefund,
    params(("id" = String, Path, description = "Institution id"),
           ("Idempotency-Key" = String, Header, description = "Repeats get the first answer")),
    responses((status = 201, body = RefundView), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn request_refund(
    State(state): State<AppState>,
    caller: Caller,
    Extension(key): Extension<ClientId>,
    Extension(accepted): Extension<Accepted>,
    Path(id): Path<String>,
    Json(body): Json<NewRefund>,
) -> ApiResult<(StatusCode, Json<RefundView>)> {
    let i = guard::institution(&state, &caller, &id, Action::RequestRefund).await?;
    // A family asks only for its own enrollment; another is not there.
    guard::enrollment_in_scope(&caller, &body.enrollment)?;
    let ask = refunds::RefundAsk {
        enrollment: body.enrollment,
        amount: body.amount,
        payee: Payee {
            name: body.payee.name,
            account: body.payee.account,
            bank: body.payee.bank,
        },
        reason: body.reason,
    };
    let refund = refunds::request(
        &state.store,
        &i,
        ask,
        refunds::refund_id_for(&caller.token_id, key.as_str())?,
        actor(&caller),
        accepted.at.date_naive(),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(view(&state, &refund, i.currency).await?),
    ))
}

async fn find(
    state: &AppState,
    caller: &Caller,
    id: &str,
    action: Action,
) -> ApiResult<(Refund, Currency)> {
    let not_found = || ApiError::not_found(format!("refund {id:?}"));
    let r = refunds::find(&state.store, id).await?;
    if !caller.sees_enrollment(&r.enrollment) {
        return Err(not_found());
    }
    let i = guard::institution(state, caller, r.institution.as_str(), action)
        .await
        .map_err(|e| {
            if e.status == StatusCode::NOT_FOUND {
                not_found()
            } else {
                e
            }
        })?;
    Ok((r, i.currency))
}

/// A refund and every state it passed through.
#[utoipa::path(get, path = "/v1/refunds/{id}", tag = "refunds",
    params(("id" = String, Path, description = "Refund id")),
    responses((status = 200, body = RefundView), (status = 404, body = Problem)))]
async fn get_refund(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<RefundView>> {
    let (r, currency) = find(&state, &caller, &id, Action::ReadBooks).await?;
    Ok(Json(view(&state, &r, currency).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    /// Why: required to decline (the family reads it), optional to approve.
    pub comment: Option<String>,
}

/// Approve a requested refund: it enters the books and the bank is
/// instructed by the job runner.
#[utoipa::path(post, path = "/v1/refunds/{id}/approve", tag = "refunds", request_body = Decision,
    params(("id" = String, Path, description = "Refund id"),
           ("Idempotency-Key" = String, Header, description = "Repeats get the first answer")),
    responses((status = 200, body = RefundView),
              (status = 202, body = crate::http::routes::approvals::ApprovalView),
              (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn approve_refund(
    State(state): State<AppState>,
    caller: Caller,
    Extension(key): Extension<ClientId>,
    Path(id): Path<String>,
    Json(body): Json<Decision>,
) -> ApiResult<Response> {
    decide(
        &state,
        &caller,
        &id,
        refunds::Decision::Approve,
        body,
        key.as_str(),
    )
    .await
}

/// Decline a requested refund, with the reason.
#[utoipa::path(post, path = "/v1/refunds/{id}/decline", tag = "refunds", request_body = Decision,
    params(("id" = String, Path, description = "Refund id"),
           ("Idempotency-Key" = String, Header, description = "Repeats get the first answer")),
    responses((status = 200, body = RefundView), (status = 404, body = Problem), (status = 409, body = Problem),
              (status = 422, body = Problem)))]
async fn decline_refund(
    State(state): State<AppState>,
    caller: Caller,
    Extension(key): Extension<ClientId>,
    Path(id): Path<String>,
    Json(body): Json<Decision>,
) -> ApiResult<Response> {
    decide(
        &state,
        &caller,
        &id,
        refunds::Decision::Decline,
        body,
        key.as_str(),
    )
    .await
}

/// An officer's answer to a refund; an approval obeys maker–checker
/// (`app::approvals::approve_refund`).
async fn decide(
    state: &AppState,
    caller: &Caller,
    id: &str,
    decision: refunds::Decision,
    body: Decision,
    key: &str,
) -> ApiResult<Response> {
    let (r, currency) = find(state, caller, id, Action::ApproveRefund).await?;
    let today = jobs::today(&state.store);
    if decision == refunds::Decision::Approve {
        let by = crate::http::routes::approvals::party(caller);
        return match crate::app::approvals::approve_refund(
            &state.store,
            &r,
            &by,
            body.comment.as_deref(),
            key,
            today,
        )
        .await?
        {
            crate::app::approvals::RefundApproval::Decided(decided) => {
                Ok(Json(view(state, &decided, currency).await?).into_response())
            }
            crate::app::approvals::RefundApproval::Waiting(a) => {
                Ok(crate::http::routes::approvals::waiting(&a).into_response())
            }
        };
    }
    let decided = refunds::decide(
        &state.store,
        &r,
        decision,
        &actor(caller),
        body.comment.as_deref(),
        today,
    )
    .await?;
    Ok(Json(view(state, &decided, currency).await?).into_response())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InstitutionPayment {
    /// The bank's reference of the institution's payment to the family.
    #[schema(example = "CMB20261105-000731")]
    pub bank_ref: String,
}

/// An approved refund escrow cannot pay (a deposit-mode institution holds
/// the tuition itself), recorded as paid by the institution, with the
/// bank's reference of its payment. The refund is then paid.
#[utoipa::path(post, path = "/v1/refunds/{id}/paid-by-institution", tag = "refunds",
    request_body = InstitutionPayment,
    params(("id" = String, Path, description = "Refund id"),
           ("Idempotency-Key" = String, Header, description = "Repeats get the first answer")),
    responses((status = 200, body = RefundView), (status = 404, body = Problem),
              (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn paid_by_institution(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(body): Json<InstitutionPayment>,
) -> ApiResult<Json<RefundView>> {
    let (r, currency) = find(&state, &caller, &id, Action::SettleRefund).await?;
    settle(
        &state,
        &caller,
        r,
        currency,
        Settlement::PaidByInstitution {
            bank_ref: body.bank_ref,
        },
    )
    .await
}

/// An officer's decision to pay an approved refund escrow cannot pay from
/// the institution's risk deposit: instructed to the bank from the deposit
/// account.
#[utoipa::path(post, path = "/v1/refunds/{id}/pay-from-deposit", tag = "refunds",
    request_body = Decision,
    params(("id" = String, Path, description = "Refund id"),
           ("Idempotency-Key" = String, Header, description = "Repeats get the first answer")),
    responses((status = 200, body = RefundView), (status = 404, body = Problem),
              (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn pay_from_deposit(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(_body): Json<Decision>,
) -> ApiResult<Json<RefundView>> {
    let (r, currency) = find(&state, &caller, &id, Action::ApproveRefund).await?;
    settle(&state, &caller, r, currency, Settlement::FromDeposit).await
}

async fn settle(
    state: &AppState,
    caller: &Caller,
    r: Refund,
    currency: Currency,
    how: Settlement,
) -> ApiResult<Json<RefundView>> {
    let today = jobs::today(&state.store);
    let settled = refunds::settle(&state.store, &r, how, &actor(caller), today).await?;
    Ok(Json(view(state, &settled, currency).await?))
}
