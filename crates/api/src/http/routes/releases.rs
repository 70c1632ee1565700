//! Releases (拨付): earned tuition paid out of escrow to the institution,
//! through the same outbox as refunds, to the account an officer put on file.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Extension;
use ledger_core::domain::refunds::Payee;
use ledger_core::{Amount, ClientId, Command, Request};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::access::{Action, Caller};
use crate::http::problem::{ApiError, ApiResult, Json, Problem};
use crate::http::record::Accepted;
use crate::http::views::EntryView;
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
    let p = state
        .store
        .payee(&i.id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("a payee account of {id}")))?;
    Ok(Json(PayeeView {
        name: p.name,
        account: p.account,
        bank: p.bank,
    }))
}

/// Put the institution's payee account on file (a new version; the old
/// ones are kept). Repeating the current one changes nothing.
#[utoipa::path(put, path = "/v1/institutions/{id}/payee", tag = "flows", request_body = PayeeView,
    params(("id" = String, Path, description = "Institution id")),
    responses((status = 200, body = PayeeView), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn set_payee(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(body): Json<PayeeView>,
) -> ApiResult<Json<PayeeView>> {
    let i = guard::institution(&state, &caller, &id, Action::Release).await?;
    for (field, value) in [
        ("name", &body.name),
        ("account", &body.account),
        ("bank", &body.bank),
    ] {
        if value.trim().is_empty() || value.len() > 70 {
            return Err(ApiError::invalid(
                field,
                format!("{field} must be 1 to 70 characters"),
            ));
        }
    }
    let payee = Payee {
        name: body.name.clone(),
        account: body.account.clone(),
        bank: body.bank.clone(),
    };
    if state.store.payee(&i.id).await?.as_ref() != Some(&payee) {
        let by = format!(
            "{} ({} token {})",
            caller.name,
            caller.role.as_str(),
            caller.token_id
        );
        state.store.set_payee(&i.id, &payee, &by).await?;
    }
    Ok(Json(body))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRelease {
    /// Of the tuition already earned (releasable), a decimal string.
    #[schema(example = "1200.00")]
    pub amount: String,
}

/// Release earned tuition to the institution: a pending entry whose bank
/// instruction the job runner sends. The Idempotency-Key becomes the
/// instruction's end-to-end id, so it must suit payment rails: at most 35
/// letters, digits, '-' or '.'.
#[utoipa::path(post, path = "/v1/institutions/{id}/releases", tag = "flows", request_body = NewRelease,
    params(("id" = String, Path, description = "Institution id"),
           ("Idempotency-Key" = String, Header, description = "Also the bank instruction's id")),
    responses((status = 201, body = EntryView), (status = 404, body = Problem),
              (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn release(
    State(state): State<AppState>,
    caller: Caller,
    Extension(key): Extension<ClientId>,
    Extension(accepted): Extension<Accepted>,
    Path(id): Path<String>,
    Json(body): Json<NewRelease>,
) -> ApiResult<(StatusCode, Json<EntryView>)> {
    let i = guard::institution(&state, &caller, &id, Action::Release).await?;
    let k = key.as_str();
    if k.len() > 35
        || !k
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
    {
        return Err(ApiError::invalid(
            "Idempotency-Key",
            "a release's Idempotency-Key is its bank instruction id: at most 35 letters, digits, '-' or '.'",
        ));
    }
    if state.store.payee(&i.id).await?.is_none() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "no_payee_on_file",
            format!(
                "{} has no payee account on file: PUT /v1/institutions/{}/payee first",
                i.name, i.id
            ),
        ));
    }
    let amount_minor = Amount::parse(&body.amount, i.currency)
        .map_err(|e| ApiError::from(e).on_field("amount"))?
        .minor();
    let entry = state
        .store
        .execute(
            Request {
                institution: i.id.clone(),
                client_id: key,
                currency: i.currency,
                occurred_at: accepted.at,
                external_ref: None,
                command: Command::InstructRelease { amount_minor },
            }
            .validated()?,
        )
        .await?;
    state.metrics.entries_posted(1);
    Ok((StatusCode::CREATED, Json(EntryView::from(&entry))))
}
