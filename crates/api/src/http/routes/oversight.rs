//! Oversight: the ranked risk list of a jurisdiction, and alerts with their
//! lifecycle (acknowledge, request rectification by a date, resolve), each
//! action with who, when and a comment in the alert's trail.

use axum::extract::{Path, State};
use chrono::NaiveDate;
use ledger_core::domain::alerts::{Alert, AlertAction, AlertStatus, Severity};
use ledger_core::JurisdictionCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::access::{Action, Caller};
use crate::app::risk::{self, RiskList};
use crate::http::problem::{ApiError, ApiResult, Json, Problem, Query};
use crate::http::views::{evidence_json, PageParams};
use crate::http::{guard, AppState};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(risk))
        .routes(routes!(list_alerts))
        .routes(routes!(get_alert))
        .routes(routes!(act_on_alert))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RiskQuery {
    /// The day assessed; default today.
    pub as_of: Option<NaiveDate>,
}

/// Every institution of the jurisdiction (and below) evaluated against its
/// rule pack, riskiest first.
#[utoipa::path(get, path = "/v1/jurisdictions/{code}/risk", tag = "oversight",
    params(("code" = String, Path, description = "Jurisdiction code"), RiskQuery),
    responses((status = 200, body = RiskList), (status = 404, body = Problem),
              (status = 422, body = Problem)))]
async fn risk(
    State(state): State<AppState>,
    caller: Caller,
    Path(code): Path<String>,
    Query(q): Query<RiskQuery>,
) -> ApiResult<Json<RiskList>> {
    let j = guard::jurisdiction(&state, &caller, &code, Action::Oversee).await?;
    let as_of = q.as_of.unwrap_or_else(|| state.store.now().date_naive());
    Ok(Json(risk::risk_list(&state.reads, &j.code, as_of).await?))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AlertView {
    pub institution: String,
    /// Identifies the condition across runs.
    pub key: String,
    pub kind: String,
    pub severity: String,
    pub summary: String,
    #[schema(value_type = Vec<Object>)]
    pub evidence: serde_json::Value,
    pub rule_pack: String,
    /// open, acknowledged, rectification_requested or resolved.
    pub status: String,
    pub rectification_due: Option<NaiveDate>,
    pub first_seen_on: NaiveDate,
    pub last_seen_on: NaiveDate,
}

impl AlertView {
    fn new(a: &Alert, currency: ledger_core::Currency) -> Self {
        AlertView {
            institution: a.institution.to_string(),
            key: a.key.clone(),
            kind: a.kind.code().to_string(),
            severity: a.severity.code().to_string(),
            summary: a.summary.clone(),
            evidence: evidence_json(
                serde_json::from_str(&a.evidence)
                    .unwrap_or(serde_json::Value::String(a.evidence.clone())),
                currency,
            ),
            rule_pack: a.rule_pack.clone(),
            status: a.status.code().to_string(),
            rectification_due: a.rectification_due,
            first_seen_on: a.first_seen_on,
            last_seen_on: a.last_seen_on,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AlertPage {
    pub items: Vec<AlertView>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AlertFilter {
    /// Only this jurisdiction and below.
    pub jurisdiction: Option<String>,
    pub institution: Option<String>,
    /// open, acknowledged, rectification_requested or resolved.
    pub status: Option<String>,
    /// yellow or red.
    pub severity: Option<String>,
    pub cursor: Option<String>,
    /// 1 to 500; default 50.
    pub limit: Option<u32>,
}

/// Alerts of the institutions the caller oversees.
#[utoipa::path(get, path = "/v1/alerts", tag = "oversight", params(AlertFilter),
    responses((status = 200, body = AlertPage), (status = 422, body = Problem)))]
async fn list_alerts(
    State(state): State<AppState>,
    caller: Caller,
    Query(f): Query<AlertFilter>,
) -> ApiResult<Json<AlertPage>> {
    guard::may(&caller, Action::Oversee)?;
    let limit = PageParams {
        cursor: None,
        limit: f.limit,
    }
    .limit()?;
    let status = f
        .status
        .as_deref()
        .map(|s| AlertStatus::parse(s).map_err(|e| ApiError::from(e).on_field("status")))
        .transpose()?;
    let jurisdiction = f
        .jurisdiction
        .as_deref()
        .map(|c| JurisdictionCode::parse(c).map_err(|e| ApiError::from(e).on_field("jurisdiction")))
        .transpose()?;
    let severity = f
        .severity
        .as_deref()
        .map(|s| Severity::parse(s).map_err(|e| ApiError::from(e).on_field("severity")))
        .transpose()?;
    let visible: std::collections::BTreeMap<String, ledger_core::Institution> =
        guard::visible_institutions(&state, &caller)
            .await?
            .into_iter()
            .map(|i| (i.id.to_string(), i))
            .collect();
    // The cursor is "<institution> <key>" of the last alert given.
    let after = f
        .cursor
        .as_deref()
        .map(|c| c.split_once(' ').unwrap_or((c, "")));
    let mut items: Vec<AlertView> = state
        .reads
        .alerts(None, status)
        .await?
        .iter()
        .filter(|a| {
            visible.get(a.institution.as_str()).is_some_and(|i| {
                jurisdiction
                    .as_ref()
                    .is_none_or(|j| j.covers(&i.jurisdiction))
            })
        })
        .filter(|a| {
            f.institution
                .as_deref()
                .is_none_or(|i| a.institution.as_str() == i)
        })
        .filter(|a| severity.is_none_or(|s| a.severity == s))
        .filter(|a| after.is_none_or(|(i, k)| (a.institution.as_str(), a.key.as_str()) > (i, k)))
        .map(|a| {
            let currency = visible.get(a.institution.as_str()).map(|i| i.currency);
            AlertView::new(a, currency.unwrap_or(ledger_core::Currency::Cny))
        })
        .collect();
    items.sort_by(|a, b| (&a.institution, &a.key).cmp(&(&b.institution, &b.key)));
    let next_cursor = (items.len() > limit)
        .then(|| format!("{} {}", items[limit - 1].institution, items[limit - 1].key));
    items.truncate(limit);
    Ok(Json(AlertPage { items, next_cursor }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AlertEvent {
    pub seq: i64,
    pub actor: String,
    pub action: String,
    pub comment: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AlertDetail {
    pub alert: AlertView,
    /// Every change, oldest first.
    pub trail: Vec<AlertEvent>,
}

async fn detail(
    state: &AppState,
    a: &Alert,
    currency: ledger_core::Currency,
) -> ApiResult<AlertDetail> {
    let trail = state
        .store
        .alert_trail(&a.institution, &a.key)
        .await?
        .into_iter()
        .map(|(seq, actor, action, comment)| AlertEvent {
            seq,
            actor,
            action,
            comment,
        })
        .collect();
    Ok(AlertDetail {
        alert: AlertView::new(a, currency),
        trail,
    })
}

async fn find_alert(
    state: &AppState,
    caller: &Caller,
    id: &str,
    key: &str,
    action: Action,
) -> ApiResult<(Alert, ledger_core::Currency)> {
    let i = guard::institution(state, caller, id, action).await?;
    let alert = state
        .store
        .alerts(Some(&i.id), None)
        .await?
        .into_iter()
        .find(|a| a.key == key)
        .ok_or_else(|| ApiError::not_found(format!("alert {key:?} of {id}")))?;
    Ok((alert, i.currency))
}

/// One alert with its trail.
#[utoipa::path(get, path = "/v1/institutions/{id}/alerts/{key}", tag = "oversight",
    params(("id" = String, Path, description = "Institution id"), ("key" = String, Path, description = "Alert key")),
    responses((status = 200, body = AlertDetail), (status = 404, body = Problem)))]
async fn get_alert(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, key)): Path<(String, String)>,
) -> ApiResult<Json<AlertDetail>> {
    let (a, currency) = find_alert(&state, &caller, &id, &key, Action::Oversee).await?;
    Ok(Json(detail(&state, &a, currency).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertActionRequest {
    /// acknowledge, request_rectification or resolve.
    pub action: String,
    /// For request_rectification: the day it is due.
    pub due: Option<NaiveDate>,
    pub comment: Option<String>,
}

/// Move an alert along its lifecycle; the trail records who, when, why.
#[utoipa::path(post, path = "/v1/institutions/{id}/alerts/{key}/actions", tag = "oversight",
    request_body = AlertActionRequest,
    params(("id" = String, Path, description = "Institution id"), ("key" = String, Path, description = "Alert key"),
           ("Idempotency-Key" = String, Header, description = "Repeats get the first answer")),
    responses((status = 200, body = AlertDetail), (status = 404, body = Problem),
              (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn act_on_alert(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, key)): Path<(String, String)>,
    Json(body): Json<AlertActionRequest>,
) -> ApiResult<Json<AlertDetail>> {
    let (a, currency) = find_alert(&state, &caller, &id, &key, Action::WorkAlerts).await?;
    let action = match (body.action.as_str(), body.due) {
        ("acknowledge", None) => AlertAction::Acknowledge,
        ("resolve", None) => AlertAction::Resolve,
        ("request_rectification", Some(due)) => AlertAction::RequestRectification { due },
        ("request_rectification", None) => {
            return Err(ApiError::invalid(
                "due",
                "request_rectification needs a due date",
            ))
        }
        ("acknowledge" | "resolve", Some(_)) => {
            return Err(ApiError::invalid(
                "due",
                "only request_rectification takes a due date",
            ))
        }
        (other, _) => {
            return Err(ApiError::invalid(
                "action",
                format!("{other:?} is not acknowledge, request_rectification or resolve"),
            ))
        }
    };
    let actor = format!(
        "{} ({} token {})",
        caller.name,
        caller.role.as_str(),
        caller.token_id
    );
    let updated = crate::app::alerts::act(
        &state.store,
        &a.institution,
        &a.key,
        &action,
        &actor,
        body.comment.as_deref(),
    )
    .await?;
    Ok(Json(detail(&state, &updated, currency).await?))
}
