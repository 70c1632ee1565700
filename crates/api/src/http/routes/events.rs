//! Institution events outside the books that bear on run-off risk: a change
//! of legal representative, a notice of closure. Reported by officers or the
//! platform; the risk engine reads them.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Extension;
use chrono::NaiveDate;
use ledger_core::ClientId;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::access::{Action, Caller};
use crate::http::problem::{ApiError, ApiResult, Json, Problem};
use crate::http::{guard, AppState};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_events, report_event))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEvent {
    /// `legal_representative_change` or `closure_notice`.
    pub kind: String,
    pub occurred_on: NaiveDate,
    pub note: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventView {
    pub seq: i64,
    pub kind: String,
    pub occurred_on: NaiveDate,
    pub note: Option<String>,
    pub recorded_by: String,
}

/// The institution's reported events, oldest first.
#[utoipa::path(get, path = "/v1/institutions/{id}/events", tag = "oversight",
    params(("id" = String, Path, description = "Institution id")),
    responses((status = 200, body = Vec<EventView>), (status = 404, body = Problem)))]
async fn list_events(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<EventView>>> {
    let i = guard::institution(&state, &caller, &id, Action::ReadBooks).await?;
    Ok(Json(
        state
            .store
            .events(&i.id)
            .await?
            .into_iter()
            .map(|(seq, kind, occurred_on, note, recorded_by)| EventView {
                seq,
                kind,
                occurred_on,
                note,
                recorded_by,
            })
            .collect(),
    ))
}

/// Report an event of the institution.
#[utoipa::path(post, path = "/v1/institutions/{id}/events", tag = "oversight", request_body = NewEvent,
    params(("id" = String, Path, description = "Institution id"),
           ("Idempotency-Key" = String, Header, description = "Repeats get the first answer")),
    responses((status = 201, body = EventView), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn report_event(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Extension(key): Extension<ClientId>,
    Json(body): Json<NewEvent>,
) -> ApiResult<(StatusCode, Json<EventView>)> {
    let i = guard::institution(&state, &caller, &id, Action::ReportEvents).await?;
    ledger_core::domain::bounds::check_day("occurred_on", body.occurred_on)?;
    if !matches!(
        body.kind.as_str(),
        "legal_representative_change" | "closure_notice"
    ) {
        return Err(ApiError::invalid(
            "kind",
            format!(
                "{:?} is not legal_representative_change or closure_notice",
                body.kind
            ),
        ));
    }
    let by = format!(
        "{} ({} token {})",
        caller.name,
        caller.role.as_str(),
        caller.token_id
    );
    let seq = state
        .store
        .record_event(
            &i.id,
            &body.kind,
            body.occurred_on,
            body.note.as_deref(),
            &by,
            Some(&crate::app::refunds::request_key(
                &caller.token_id,
                key.as_str(),
            )),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(EventView {
            seq,
            kind: body.kind,
            occurred_on: body.occurred_on,
            note: body.note,
            recorded_by: by,
        }),
    ))
}
