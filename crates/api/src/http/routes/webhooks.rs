//! Signed outbound webhooks over HTTP: an officer or a platform subscribes
//! a receiver to events of a jurisdiction it covers or one institution it
//! sees (scoped like its token), reads the delivery log, and replays a
//! delivery. A subscription outside the caller's scope is 404, as if absent.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use ledger_core::domain::webhooks::{
    Attempt, Delivery, EventType, Subscription, SubscriptionScope,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::access::{permits, Action, Caller, Scope};
use crate::app::webhooks::{self, SubscriptionAsk};
use crate::http::problem::{ApiError, ApiResult, Json, Problem};
use crate::http::{guard, AppState};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(subscribe, list_subscriptions))
        .routes(routes!(list_deliveries))
        .routes(routes!(replay_delivery))
}

fn actor(caller: &Caller) -> String {
    format!(
        "{} ({} token {})",
        caller.name,
        caller.role.as_str(),
        caller.token_id
    )
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSubscription {
    /// Where deliveries are POSTed (http or https).
    #[schema(example = "https://platform.example.cn/hooks/escrow")]
    pub url: String,
    /// alert.red, refund.state_changed, lessons.awaiting_confirmation,
    /// release.executed.
    pub events: Vec<String>,
    /// A jurisdiction the caller covers (and everything below it) …
    pub jurisdiction: Option<String>,
    /// … or one institution the caller sees: exactly one of the two.
    pub institution: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriptionView {
    #[schema(example = "WH-3f2a9c01b7d4")]
    pub id: String,
    pub url: String,
    pub events: Vec<String>,
    /// jurisdiction or institution.
    pub scope_kind: String,
    pub scope_id: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    /// The HMAC-SHA256 key: only in the answer that created it.
    /// Deliveries carry `X-Escrow-Timestamp` and `X-Escrow-Signature:
    /// sha256=<hex of HMAC(secret, timestamp + "." + body)>`.
    pub secret: Option<String>,
}

fn view(s: &Subscription, with_secret: bool) -> SubscriptionView {
    SubscriptionView {
        id: s.id.clone(),
        url: s.url.clone(),
        events: s.events.iter().map(|e| e.code().to_string()).collect(),
        scope_kind: s.scope.kind().to_string(),
        scope_id: s.scope.id().to_string(),
        created_by: s.created_by.clone(),
        created_at: s.created_at,
        secret: with_secret.then(|| s.secret.clone()),
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriptionList {
    pub items: Vec<SubscriptionView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptView {
    pub attempt: u32,
    pub at: DateTime<Utc>,
    /// The receiver's HTTP status, when it answered.
    pub status: Option<u16>,
    pub error: Option<String>,
    /// Set on the log row of a replay: who asked.
    pub replayed_by: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryView {
    pub event_id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub institution: String,
    pub occurred_at: DateTime<Utc>,
    /// pending, delivered or failed (every scheduled attempt failed).
    pub state: String,
    pub attempts: u32,
    pub next_attempt_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
    /// The body sent, exactly as signed.
    pub payload: String,
    pub log: Vec<AttemptView>,
}

fn delivery_view(d: &Delivery, log: &[Attempt]) -> DeliveryView {
    DeliveryView {
        event_id: d.event_id.clone(),
        event_type: d.event_type.code().to_string(),
        institution: d.institution.to_string(),
        occurred_at: d.occurred_at,
        state: d.state.code().to_string(),
        attempts: d.attempts,
        next_attempt_at: d.next_attempt_at,
        delivered_at: d.delivered_at,
        payload: d.payload.clone(),
        log: log
            .iter()
            .map(|a| AttemptView {
                attempt: a.attempt,
                at: a.at,
                status: a.status,
                error: a.error.clone(),
                replayed_by: a.replayed_by.clone(),
            })
            .collect(),
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryList {
    pub items: Vec<DeliveryView>,
}

/// Whether the caller sees the subscription: its jurisdiction, or the
/// jurisdiction of its institution, is covered by the caller's, and the
/// caller may read every kind of event it carries.
async fn sees(state: &AppState, caller: &Caller, s: &Subscription) -> ApiResult<bool> {
    // Red alerts' deliveries carry what only the bureau reads.
    if s.events.contains(&EventType::RedAlert) && !permits(caller.role, Action::Oversee) {
        return Ok(false);
    }
    Ok(match (&caller.scope, &s.scope) {
        (Scope::All, _) => true,
        (Scope::Jurisdiction(mine), SubscriptionScope::Jurisdiction(theirs)) => mine.covers(theirs),
        (Scope::Jurisdiction(mine), SubscriptionScope::Institution(i)) => {
            match state.store.institution(i).await {
                Ok(i) => mine.covers(&i.jurisdiction),
                Err(_) => false,
            }
        }
        _ => false,
    })
}

/// A subscription the caller may manage (404 when out of scope, as absent).
async fn visible(state: &AppState, caller: &Caller, id: &str) -> ApiResult<Subscription> {
    let not_found = || ApiError::not_found(format!("webhook subscription {id:?}"));
    let s = webhooks::subscription(&state.store, id)
        .await
        .map_err(|_| not_found())?;
    if !sees(state, caller, &s).await? {
        return Err(not_found());
    }
    guard::permitted(caller, Action::ManageWebhooks)?;
    Ok(s)
}

/// Subscribe a receiver to events of a jurisdiction (and below) or of one
/// institution. The answer carries the signing secret, once.
#[utoipa::path(post, path = "/v1/webhooks", tag = "webhooks",
    request_body = NewSubscription,
    params(("Idempotency-Key" = String, Header, description = "Repeats get the first answer")),
    responses((status = 201, body = SubscriptionView), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn subscribe(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<NewSubscription>,
) -> ApiResult<(StatusCode, Json<SubscriptionView>)> {
    let red = |e: &String| EventType::parse(e) == Some(EventType::RedAlert);
    if body.events.iter().any(red) && !permits(caller.role, Action::Oversee) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "a {} token may not subscribe to alert.red: a red alert is the bureau's to verify and act on (GET /v1/alerts is an officer's too); refund.state_changed, lessons.awaiting_confirmation and release.executed are open to it",
                caller.role.as_str()
            ),
        )
        .on_field("events"));
    }
    let scope = match (&body.jurisdiction, &body.institution) {
        (Some(code), None) => {
            let j = guard::jurisdiction(&state, &caller, code, Action::ManageWebhooks).await?;
            SubscriptionScope::Jurisdiction(j.code)
        }
        (None, Some(id)) => {
            let i = guard::institution(&state, &caller, id, Action::ManageWebhooks).await?;
            SubscriptionScope::Institution(i.id)
        }
        _ => {
            return Err(ApiError::invalid(
                "jurisdiction",
                "give exactly one of jurisdiction and institution",
            ))
        }
    };
    let s = webhooks::subscribe(
        &state.store,
        SubscriptionAsk {
            url: body.url,
            events: body.events,
            scope,
        },
        &actor(&caller),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(view(&s, true))))
}

/// The subscriptions the caller can see (without their secrets).
#[utoipa::path(get, path = "/v1/webhooks", tag = "webhooks",
    responses((status = 200, body = SubscriptionList), (status = 403, body = Problem)))]
async fn list_subscriptions(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<SubscriptionList>> {
    guard::may(&caller, Action::ManageWebhooks)?;
    let mut items = Vec::new();
    for s in webhooks::subscriptions(&state.store).await? {
        if sees(&state, &caller, &s).await? {
            items.push(view(&s, false));
        }
    }
    Ok(Json(SubscriptionList { items }))
}

/// A subscription's delivery log: every event queued for it, with each
/// attempt (when, the receiver's status or why it did not answer) and
/// each replay (who asked).
#[utoipa::path(get, path = "/v1/webhooks/{id}/deliveries", tag = "webhooks",
    params(("id" = String, Path, description = "Subscription id")),
    responses((status = 200, body = DeliveryList), (status = 404, body = Problem)))]
async fn list_deliveries(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<DeliveryList>> {
    let s = visible(&state, &caller, &id).await?;
    let items = webhooks::deliveries(&state.store, &s)
        .await?
        .iter()
        .map(|(d, log)| delivery_view(d, log))
        .collect();
    Ok(Json(DeliveryList { items }))
}

/// Send one delivery again, under the same event id (the receiver dedupes
/// on it): due at once, whatever became of it before.
#[utoipa::path(post, path = "/v1/webhooks/{id}/deliveries/{event}/replay", tag = "webhooks",
    params(("id" = String, Path, description = "Subscription id"),
           ("event" = String, Path, description = "Event id"),
           ("Idempotency-Key" = String, Header, description = "Repeats get the first answer")),
    responses((status = 202, body = DeliveryList), (status = 404, body = Problem)))]
async fn replay_delivery(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, event)): Path<(String, String)>,
) -> ApiResult<(StatusCode, Json<DeliveryList>)> {
    let s = visible(&state, &caller, &id).await?;
    webhooks::replay(&state.store, &s, &event, &actor(&caller)).await?;
    let items = webhooks::deliveries(&state.store, &s)
        .await?
        .iter()
        .filter(|(d, _)| d.event_id == event)
        .map(|(d, log)| delivery_view(d, log))
        .collect();
    Ok((StatusCode::ACCEPTED, Json(DeliveryList { items })))
}
