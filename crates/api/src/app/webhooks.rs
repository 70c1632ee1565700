//! Signed outbound webhooks (item 7 of issue 16): the systems that need to
//! know (a platform, a parents' app, a bureau's own tools) subscribe to red
//! alerts, refund state changes, lessons awaiting a family's confirmation
//! and releases executed, scoped like tokens (a jurisdiction and below, or
//! one institution). The webhook job reads new events from the records
//! that say what happened, queues one delivery per subscription and event
//! (durably: a delivery is a row before anything is sent), and sends each
//! signed exactly as banks sign their pushes to us
//! (`bank_adapter::signature`: HMAC-SHA256 over `timestamp.body`), retrying
//! with exponential backoff and jitter (the bank client's `RetryPolicy`
//! schedule) until the receiver answers 2xx or the attempts run out. Every
//! attempt is logged; a replay makes a delivery due again. The event id
//! (`X-Escrow-Event-Id`, and `id` in the body) is fixed by the record, so a
//! receiver dedupes on it whatever was sent twice.

use std::collections::BTreeMap;
use std::time::Duration as StdDuration;

use bank_adapter::client::RetryPolicy;
use bank_adapter::secret::Secret;
use bank_adapter::signature;
use chrono::{DateTime, Duration, Utc};
use ledger_core::domain::webhooks::{
    Attempt, Delivery, Event, EventType, Subscription, SubscriptionScope,
};
use ledger_core::store::{AttemptOutcome, QueuedEvent};
use ledger_core::{InstitutionId, JurisdictionCode, Store};

use crate::app::{AppError, AppResult};

pub const EVENT_ID_HEADER: &str = "X-Escrow-Event-Id";
pub const EVENT_TYPE_HEADER: &str = "X-Escrow-Event-Type";

/// Attempts before a delivery is given up (a replay revives it).
pub const MAX_ATTEMPTS: u32 = 10;
/// Events are read again this far behind the last scan: a transaction that
/// committed late with an earlier time is still found (queueing twice is a
/// no-op).
const RESCAN: Duration = Duration::minutes(10);
const SEND_TIMEOUT: StdDuration = StdDuration::from_secs(10);
const LEASE: Duration = Duration::minutes(2);

/// The backoff between attempts: 30 seconds doubling to an hour, with
/// jitter (each delay between half and all of its step).
fn schedule() -> RetryPolicy {
    RetryPolicy {
        max_retries: MAX_ATTEMPTS - 1,
        initial_delay: StdDuration::from_secs(30),
        max_delay: StdDuration::from_secs(3600),
    }
}

/// What a caller asks to subscribe to.
#[derive(Debug, Clone)]
pub struct SubscriptionAsk {
    pub url: String,
    pub events: Vec<String>,
    pub scope: SubscriptionScope,
}

/// Records a subscription. Its secret is in the answer (the receiver
/// checks signatures with it); events from now on are delivered.
pub async fn subscribe(store: &Store, ask: SubscriptionAsk, by: &str) -> AppResult<Subscription> {
    let url = url::Url::parse(ask.url.trim()).map_err(|e| {
        AppError::invalid(
            "invalid_url",
            "url",
            format!("url {:?} is not a URL: {e}", ask.url),
        )
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(AppError::invalid(
            "invalid_url",
            "url",
            format!("url {:?} must be http:// or https:// with a host", ask.url),
        ));
    }
    if ask.events.is_empty() {
        return Err(AppError::invalid(
            "no_events",
            "events",
            "events must name at least one event type",
        ));
    }
    let mut events = Vec::new();
    for (i, e) in ask.events.iter().enumerate() {
        let t = EventType::parse(e).ok_or_else(|| {
            let known: Vec<&str> = EventType::ALL.iter().map(|t| t.code()).collect();
            AppError::invalid(
                "unknown_event_type",
                format!("events[{i}]"),
                format!("{e:?} is not an event type (one of {})", known.join(", ")),
            )
        })?;
        if !events.contains(&t) {
            events.push(t);
        }
    }
    match &ask.scope {
        SubscriptionScope::Institution(i) => {
            store.institution(i).await?;
        }
        SubscriptionScope::Jurisdiction(c) => {
            if !store.jurisdictions().await?.iter().any(|j| j.code == *c) {
                return Err(AppError::not_found(format!("jurisdiction {c}")));
            }
        }
    }
    let subscription = Subscription {
        id: format!("WH-{}", hex::encode(rand::random::<[u8; 6]>())),
        url: url.to_string(),
        secret: format!("whsec_{}", hex::encode(rand::random::<[u8; 32]>())),
        events,
        scope: ask.scope,
        created_by: by.to_string(),
        created_at: store.now(),
    };
    store.create_subscription(&subscription).await?;
    Ok(subscription)
}

/// Every subscription (the edges filter by what the caller sees).
pub async fn subscriptions(store: &Store) -> AppResult<Vec<Subscription>> {
    Ok(store.subscriptions().await?)
}

/// One subscription.
pub async fn subscription(store: &Store, id: &str) -> AppResult<Subscription> {
    store
        .subscriptions()
        .await?
        .into_iter()
        .find(|s| s.id == id)
        .ok_or_else(|| AppError::not_found(format!("webhook subscription {id:?}")))
}

/// A subscription's delivery log: each delivery with its attempts.
pub async fn deliveries(
    store: &Store,
    subscription: &Subscription,
) -> AppResult<Vec<(Delivery, Vec<Attempt>)>> {
    Ok(store.deliveries(&subscription.id).await?)
}

/// Makes one delivery due now again (the receiver lost it, or every
/// attempt failed); the next webhook pass sends it, under the same event id.
pub async fn replay(
    store: &Store,
    subscription: &Subscription,
    event_id: &str,
    by: &str,
) -> AppResult<()> {
    if store
        .replay_delivery(&subscription.id, event_id, by)
        .await?
    {
        Ok(())
    } else {
        Err(AppError::not_found(format!(
            "delivery of event {event_id:?} to webhook subscription {:?}",
            subscription.id
        )))
    }
}

/// What the body of a delivery says.
#[derive(serde::Serialize)]
struct Payload<'a> {
    /// The event id: the same whenever it is sent (dedupe on it).
    id: String,
    #[serde(rename = "type")]
    kind: &'static str,
    subscription: &'a str,
    institution: &'a str,
    /// The alert key, refund id, lesson record id or instruction id.
    subject: &'a str,
    /// The step of the subject's trail, when it has one.
    step: Option<i64>,
    occurred_at: DateTime<Utc>,
    state: &'a str,
    detail: Option<&'a str>,
}

fn payload(subscription: &Subscription, e: &Event) -> AppResult<String> {
    serde_json::to_string(&Payload {
        id: e.id(),
        kind: e.kind.code(),
        subscription: &subscription.id,
        institution: e.institution.as_str(),
        subject: &e.subject,
        step: e.seq,
        occurred_at: e.at,
        state: &e.state,
        detail: e.detail.as_deref(),
    })
    .map_err(|e| AppError::invalid("unencodable_event", "payload", e.to_string()))
}

/// What one webhook pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WebhookPass {
    /// Deliveries newly queued.
    pub queued: u32,
    /// Deliveries the receiver took (2xx).
    pub delivered: u32,
    /// Attempts that failed (to be tried again, or given up).
    pub failed_attempts: u32,
}

/// One pass: queue new events for every subscription, then send what is due.
pub async fn pass(store: &Store) -> AppResult<WebhookPass> {
    let mut out = WebhookPass::default();
    let subscriptions = store.subscriptions().await?;
    if subscriptions.is_empty() {
        return Ok(out);
    }
    let now = store.now();
    let mut marks = Vec::with_capacity(subscriptions.len());
    for s in &subscriptions {
        let mark = store.subscription_scanned_to(&s.id).await?.unwrap_or(now);
        marks.push(mark - RESCAN);
    }
    let from = marks.iter().copied().min().unwrap_or(now);
    let events = store.webhook_events(from, now).await?;
    if !events.is_empty() {
        let jurisdictions: BTreeMap<InstitutionId, JurisdictionCode> = store
            .institutions()
            .await?
            .into_iter()
            .map(|i| (i.id, i.jurisdiction))
            .collect();
        for (s, mark) in subscriptions.iter().zip(&marks) {
            let mut queued = Vec::new();
            for e in events.iter().filter(|e| e.at > *mark) {
                let Some(j) = jurisdictions.get(&e.institution) else {
                    continue;
                };
                if s.wants(e, j) {
                    queued.push(QueuedEvent {
                        event: e,
                        payload: payload(s, e)?,
                    });
                }
            }
            out.queued += store.queue_deliveries(&s.id, &queued, now).await?;
        }
    } else {
        for s in &subscriptions {
            out.queued += store.queue_deliveries(&s.id, &[], now).await?;
        }
    }
    let due = store.claim_deliveries(100, LEASE).await?;
    if due.is_empty() {
        return Ok(out);
    }
    let client = reqwest::Client::builder()
        .timeout(SEND_TIMEOUT)
        .build()
        .map_err(|e| AppError::Unavailable {
            code: "webhook_client",
            detail: format!("the webhook client could not start: {e}"),
        })?;
    for d in due {
        let Some(s) = subscriptions.iter().find(|s| s.id == d.subscription) else {
            continue;
        };
        let (status, error) = send(&client, store, s, &d).await;
        let ok = status.is_some_and(|s| (200..300).contains(&s));
        let retry_after = if ok {
            None
        } else if d.attempts + 1 >= MAX_ATTEMPTS {
            Some(None)
        } else {
            let delay = schedule()
                .delays()
                .nth(d.attempts as usize)
                .unwrap_or(StdDuration::from_secs(3600));
            Some(Some(
                Duration::from_std(delay).unwrap_or(Duration::hours(1)),
            ))
        };
        if ok {
            out.delivered += 1;
        } else {
            out.failed_attempts += 1;
            tracing::warn!(subscription = %s.id, event = %d.event_id, ?status, ?error,
                attempts = d.attempts + 1, "webhook delivery failed");
        }
        let error = match (&error, status) {
            (Some(e), _) => Some(e.clone()),
            (None, Some(code)) if !ok => Some(format!("the receiver answered {code}")),
            _ => None,
        };
        store
            .record_attempt(
                &d,
                &AttemptOutcome {
                    status,
                    error: error.as_deref(),
                    retry_after,
                },
            )
            .await?;
    }
    Ok(out)
}

/// One signed POST: the receiver's status, or why there was none.
async fn send(
    client: &reqwest::Client,
    store: &Store,
    s: &Subscription,
    d: &Delivery,
) -> (Option<u16>, Option<String>) {
    let timestamp = store.now().timestamp();
    let body = d.payload.clone().into_bytes();
    let signed = signature::sign(&Secret::new(s.secret.clone()), timestamp, &body);
    let sent = client
        .post(&s.url)
        .header("content-type", "application/json")
        .header(signature::TIMESTAMP_HEADER, timestamp.to_string())
        .header(signature::SIGNATURE_HEADER, signed)
        .header(EVENT_ID_HEADER, &d.event_id)
        .header(EVENT_TYPE_HEADER, d.event_type.code())
        .body(body)
        .send()
        .await;
    match sent {
        Ok(answer) => (Some(answer.status().as_u16()), None),
        Err(e) => (None, Some(format!("no answer from the receiver: {e}"))),
    }
}
