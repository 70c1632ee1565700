//! Releases (拨付): earned tuition paid out of escrow to the institution,
//! through the same outbox as refunds, to the account an officer put on file.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Extension;
use ledger_core::domain::refunds::Payee;
use ledger_core::ClientId;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::access::{Action, Caller};
use axum::response::{IntoResponse, Response};

use crate::app::{approvals, releases};
use crate::http::problem::{ApiResult, Json, Problem};
use crate::http::record::Accepted;
use crate::http::routes::approvals::{party, waiting, ApprovalView};
use crate::http::{guard, AppState};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_payee, set_payee))
        .routes(routes!(release))
}

#[derive(Debug, Deserialize, Serialize, ToSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PayeeView {
    /// The account holder (the institution).
    pub name: String,
    pub account: String,
    /// The payee's bank: a BIC or a domestic code (CNAPS).
    pub bank: String,
}

/// Where the institution's releases are paid.
#[utoipa::path(get, path = "/v1/institutions/{id}/payee", tag = "flows",
    params(("id" = String, Path, description = "Institution id")),
    responses((status = 200, body = PayeeView), (status = 404, body = Problem)))]
async fn get_payee(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<PayeeView>> {
    let i = guard::institution(&state, &caller, &id, Action::ReadBooks).await?;
    let p = releases::payee(&state.store, &i).await?;
    Ok(Json(PayeeView {
        name: p.name,
        account: p.account,
        bank: p.bank,
    }))
}

/// Put a new payee account on file. It takes effect only when a second,
/// different officer approves (202, with the approval); the account
/// already on file, put again, is no change (200).
#[utoipa::path(put, path = "/v1/institutions/{id}/payee", tag = "flows", request_body = PayeeView,
    params(("id" = String, Path, description = "Institution id")),
    responses((status = 200, body = PayeeView), (status = 202, body = ApprovalView),
              (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn set_payee(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(body): Json<PayeeView>,
) -> ApiResult<Response> {
    let i = guard::institution(&state, &caller, &id, Action::Release).await?;
    let payee = Payee {
        name: body.name,
        account: body.account,
        bank: body.bank,
    };
    let at = state.store.now();
    match approvals::request_payee_change(&state.store, &i, payee, &party(&caller), at).await? {
        approvals::PayeeChange::Unchanged(p) => Ok(Json(PayeeView {
            name: p.name,
            account: p.account,
            bank: p.bank,
        })
        .into_response()),
        approvals::PayeeChange::Waiting(a) => Ok(waiting(&a).into_response()),
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRelease {
    /// Of the tuition already earned (releasable), a decimal string.
    #[schema(example = "1200.00")]
    pub amount: String,
}

/// Ask to release earned tuition to the institution. Every manual release
/// waits for a second, different officer (202, with the approval); on
/// approval it becomes a pending entry whose bank instruction the job
/// runner sends. The Idempotency-Key becomes the instruction's end-to-end
/// id, so it must suit payment rails: at most 35 letters, digits, '-' or '.'.
#[utoipa::path(post, path = "/v1/institutions/{id}/releases", tag = "flows", request_body = NewRelease,
    params(("id" = String, Path, description = "Institution id"),
           ("Idempotency-Key" = String, Header, description = "Also the bank instruction's id")),
    responses((status = 202, body = ApprovalView), (status = 404, body = Problem),
              (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn release(
    State(state): State<AppState>,
    caller: Caller,
    Extension(key): Extension<ClientId>,
    Extension(accepted): Extension<Accepted>,
    Path(id): Path<String>,
    Json(body): Json<NewRelease>,
) -> ApiResult<(StatusCode, Json<ApprovalView>)> {
    let i = guard::institution(&state, &caller, &id, Action::Release).await?;
    let a = approvals::request_release(
        &state.store,
        &i,
        key,
        &body.amount,
        &party(&caller),
        accepted.at,
    )
    .await?;
    Ok(waiting(&a))
}
