//! Outbound webhooks in the store, both dialects: subscriptions, the
//! events read from the records that say what happened (never copied
//! first), the deliveries queued per subscription and event (their primary
//! key makes queueing twice a no-op), claimed with a lease, and the
//! append-only delivery log.

use chrono::{DateTime, Duration, Utc};

use crate::domain::ids::InstitutionId;
use crate::domain::webhooks::{
    Attempt, Delivery, DeliveryState, Event, EventType, Subscription, SubscriptionScope,
};
use crate::store::rows::{corrupt, corrupt_as};
use crate::store::{DbTime, Result, Store, StoreError};

#[derive(sqlx::FromRow)]
struct SubscriptionRow {
    subscription_id: String,
    url: String,
    secret: String,
    events: String,
    scope_kind: String,
    scope_id: String,
    created_by: String,
    created_at: DbTime,
}

impl TryFrom<SubscriptionRow> for Subscription {
    type Error = StoreError;
    fn try_from(r: SubscriptionRow) -> Result<Self> {
        let events = r
            .events
            .split(',')
            .map(|e| EventType::parse(e).ok_or_else(|| corrupt("webhook event type", e)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Subscription {
            id: r.subscription_id,
            url: r.url,
            secret: r.secret,
            events,
            scope: SubscriptionScope::parse(&r.scope_kind, &r.scope_id)
                .map_err(corrupt_as("webhook scope"))?,
            created_by: r.created_by,
            created_at: r.created_at.utc(),
        })
    }
}

const SUBSCRIPTION_COLUMNS: &str = "select subscription_id, url, secret, events, scope_kind, \
    scope_id, created_by, created_at from webhook_subscriptions";

#[derive(sqlx::FromRow)]
struct EventRow {
    institution_id: String,
    subject: String,
    seq: Option<i64>,
    at: DbTime,
    state: String,
    detail: Option<String>,
}

impl EventRow {
    fn into_event(self, kind: EventType) -> Result<Event> {
        Ok(Event {
            kind,
            institution: InstitutionId::parse(self.institution_id)
                .map_err(corrupt_as("webhook event"))?,
            subject: self.subject,
            seq: self.seq,
            at: self.at.utc(),
            state: self.state,
            detail: self.detail,
        })
    }
}

/// Each kind of event, read from its records recorded in `($1, $2]`.
const EVENT_SOURCES: [(EventType, &str); 4] = [
    (
        EventType::RedAlert,
        "select e.institution_id, e.alert_key as subject, cast(e.seq as bigint) as seq, e.at, \
           e.action as state, a.summary as detail \
         from alert_events e join alerts a \
           on a.institution_id = e.institution_id and a.alert_key = e.alert_key \
         where a.severity = 'red' and e.action in ('raised', 'reopened') \
           and e.at > $1 and e.at <= $2",
    ),
    (
        EventType::RefundStateChanged,
        "select institution_id, refund_id as subject, cast(seq as bigint) as seq, at, state, detail \
         from refund_events where at > $1 and at <= $2",
    ),
    (
        EventType::LessonsAwaitingConfirmation,
        "select institution_id, lesson_id as subject, cast(null as bigint) as seq, \
           recorded_at as at, cast('pending' as text) as state, \
           'enrollment ' || enrollment_id || ': ' || cast(hours as text) || ' hours on ' || \
           cast(occurred_on as text) || ', answer by ' || cast(answer_by as text) as detail \
         from lessons where recorded_at > $1 and recorded_at <= $2",
    ),
    (
        EventType::ReleaseExecuted,
        "select institution_id, instruction_id as subject, cast(null as bigint) as seq, \
           updated_at as at, state, bank_ref as detail \
         from outbox where kind = 'release_instructed' and state = 'executed' \
           and updated_at > $1 and updated_at <= $2",
    ),
];

const DELIVERY_COLUMNS: &str = "institution_id, subscription_id, event_id, event_type, \
    occurred_at, payload, state, cast(attempts as bigint) as attempts, next_attempt_at, delivered_at";

#[derive(sqlx::FromRow)]
struct DeliveryRow {
    institution_id: String,
    subscription_id: String,
    event_id: String,
    event_type: String,
    occurred_at: DbTime,
    payload: String,
    state: String,
    attempts: i64,
    next_attempt_at: DbTime,
    delivered_at: Option<DbTime>,
}

impl TryFrom<DeliveryRow> for Delivery {
    type Error = StoreError;
    fn try_from(r: DeliveryRow) -> Result<Self> {
        Ok(Delivery {
            institution: InstitutionId::parse(r.institution_id)
                .map_err(corrupt_as("webhook delivery"))?,
            subscription: r.subscription_id,
            event_id: r.event_id,
            event_type: EventType::parse(&r.event_type)
                .ok_or_else(|| corrupt("webhook event type", &r.event_type))?,
            occurred_at: r.occurred_at.utc(),
            payload: r.payload,
            state: DeliveryState::parse(&r.state)
                .ok_or_else(|| corrupt("webhook delivery state", &r.state))?,
            attempts: u32::try_from(r.attempts).map_err(corrupt_as("webhook attempts"))?,
            next_attempt_at: r.next_attempt_at.utc(),
            delivered_at: r.delivered_at.map(DbTime::utc),
        })
    }
}

#[derive(sqlx::FromRow)]
struct AttemptRow {
    attempt: i64,
    at: DbTime,
    status: Option<i64>,
    error: Option<String>,
    replayed_by: Option<String>,
}

impl TryFrom<AttemptRow> for Attempt {
    type Error = StoreError;
    fn try_from(r: AttemptRow) -> Result<Self> {
        Ok(Attempt {
            attempt: u32::try_from(r.attempt).map_err(corrupt_as("webhook attempt"))?,
            at: r.at.utc(),
            status: r
                .status
                .map(u16::try_from)
                .transpose()
                .map_err(corrupt_as("webhook attempt status"))?,
            error: r.error,
            replayed_by: r.replayed_by,
        })
    }
}

/// A delivery queued: the event's payload, ready to sign.
pub struct QueuedEvent<'a> {
    pub event: &'a Event,
    pub payload: String,
}

/// What became of one attempt.
pub struct AttemptOutcome<'a> {
    pub status: Option<u16>,
    pub error: Option<&'a str>,
    /// `None`: delivered. `Some(Some(d))`: try again after `d`.
    /// `Some(None)`: no more attempts (failed, until replayed).
    pub retry_after: Option<Option<Duration>>,
}

impl Store {
    /// Records a subscription; its events are those recorded from now on.
    pub async fn create_subscription(&self, s: &Subscription) -> Result<()> {
        let events: Vec<&str> = s.events.iter().map(|e| e.code()).collect();
        let events = events.join(",");
        let at = DbTime::from(s.created_at);
        on_pool!(self, |pool| {
            sqlx::query(
            "insert into webhook_subscriptions (subscription_id, url, secret, events, scope_kind, \
               scope_id, created_by, created_at, scanned_to) values ($1, $2, $3, $4, $5, $6, $7, $8, $8)"
        )
        .bind(&s.id)
        .bind(&s.url)
        .bind(&s.secret)
        .bind(&events)
        .bind(s.scope.kind())
        .bind(s.scope.id())
        .bind(&s.created_by)
        .bind(at)
        .execute(pool)
        .await
        .map(|_| ())
        })?;
        Ok(())
    }

    /// Every subscription, oldest first.
    pub async fn subscriptions(&self) -> Result<Vec<Subscription>> {
        let sql = format!("{SUBSCRIPTION_COLUMNS} order by created_at, subscription_id");
        let rows: Vec<SubscriptionRow> =
            on_reader!(self, |pool| sqlx::query_as(&sql).fetch_all(pool).await?);
        crate::store::rows::convert(rows)
    }

    /// Up to where a subscription's events are queued.
    pub async fn subscription_scanned_to(&self, id: &str) -> Result<Option<DateTime<Utc>>> {
        let at: Option<DbTime> = on_reader!(self, |pool| sqlx::query_scalar(
            "select scanned_to from webhook_subscriptions where subscription_id = $1"
        )
        .bind(id)
        .fetch_optional(pool)
        .await?);
        Ok(at.map(DbTime::utc))
    }

    /// The events of every kind recorded in `(from, to]`, oldest first.
    pub async fn webhook_events(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<Event>> {
        let (from, to) = (DbTime::from(from), DbTime::from(to));
        let mut out = Vec::new();
        for (kind, sql) in EVENT_SOURCES {
            let rows: Vec<EventRow> = on_reader!(self, |pool| sqlx::query_as(sql)
                .bind(from)
                .bind(to)
                .fetch_all(pool)
                .await?);
            for r in rows {
                out.push(r.into_event(kind)?);
            }
        }
        out.sort_by_key(|e| (e.at, e.id()));
        Ok(out)
    }

    /// Queues `events` for subscription `id` (an event queued before is
    /// left as it is) and moves its scan mark to `scanned_to`, in one
    /// transaction. Returns how many were new.
    pub async fn queue_deliveries(
        &self,
        id: &str,
        events: &[QueuedEvent<'_>],
        scanned_to: DateTime<Utc>,
    ) -> Result<u32> {
        let scanned_to = DbTime::from(scanned_to);
        let queued = in_tx!(self, |tx, now| {
            let mut queued = 0u32;
            for q in events {
                let done = sqlx::query(
                    "insert into webhook_deliveries (institution_id, subscription_id, event_id, \
                       event_type, occurred_at, payload, state, attempts, next_attempt_at, created_at) \
                     values ($1, $2, $3, $4, $5, $6, 'pending', 0, $7, $7) \
                     on conflict (institution_id, subscription_id, event_id) do nothing",
                )
                .bind(q.event.institution.as_str())
                .bind(id)
                .bind(q.event.id())
                .bind(q.event.kind.code())
                .bind(DbTime::from(q.event.at))
                .bind(&q.payload)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() > 0 {
                    queued += 1;
                }
            }
            sqlx::query(
                "update webhook_subscriptions set scanned_to = $2 \
                 where subscription_id = $1 and scanned_to < $2",
            )
            .bind(id)
            .bind(scanned_to)
            .execute(&mut *tx)
            .await?;
            queued
        });
        Ok(queued)
    }

    /// Claims up to `limit` deliveries that are due, for `lease`: nobody
    /// else claims them until it runs out. One statement on both dialects:
    /// the outer condition is checked again on the row an update waited
    /// for (PostgreSQL), and SQLite has one writer.
    pub async fn claim_deliveries(&self, limit: i64, lease: Duration) -> Result<Vec<Delivery>> {
        let now = self.now();
        let (at, until) = (DbTime::from(now), DbTime::from(now + lease));
        let sql = format!(
            "update webhook_deliveries set lease_until = $1 \
             where state = 'pending' and next_attempt_at <= $2 \
               and (lease_until is null or lease_until <= $2) \
               and (institution_id, subscription_id, event_id) in ( \
                 select institution_id, subscription_id, event_id from webhook_deliveries \
                 where state = 'pending' and next_attempt_at <= $2 \
                   and (lease_until is null or lease_until <= $2) \
                 order by next_attempt_at limit $3) \
             returning {DELIVERY_COLUMNS}"
        );
        let rows: Vec<DeliveryRow> = on_pool!(self, |pool| sqlx::query_as(&sql)
            .bind(until)
            .bind(at)
            .bind(limit)
            .fetch_all(pool)
            .await?);
        let mut out: Vec<Delivery> = crate::store::rows::convert(rows)?;
        out.sort_by_key(|d| d.next_attempt_at);
        Ok(out)
    }

    /// Logs an attempt and moves the delivery on, in one transaction;
    /// releases the lease.
    pub async fn record_attempt(&self, d: &Delivery, outcome: &AttemptOutcome<'_>) -> Result<()> {
        let (state, next) = match outcome.retry_after {
            None => (DeliveryState::Delivered, None),
            Some(Some(after)) => (DeliveryState::Pending, Some(after)),
            Some(None) => (DeliveryState::Failed, None),
        };
        let now_utc = self.now();
        let next_at = DbTime::from(now_utc + next.unwrap_or_else(Duration::zero));
        in_tx!(self, |tx, now| {
            let attempt: i64 = sqlx::query_scalar(
                "select cast(coalesce(max(attempt), 0) + 1 as bigint) from webhook_attempts \
                 where institution_id = $1 and subscription_id = $2 and event_id = $3",
            )
            .bind(d.institution.as_str())
            .bind(&d.subscription)
            .bind(&d.event_id)
            .fetch_one(&mut *tx)
            .await?;
            sqlx::query(
                "insert into webhook_attempts (institution_id, subscription_id, event_id, attempt, \
                   at, status, error) values ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(d.institution.as_str())
            .bind(&d.subscription)
            .bind(&d.event_id)
            .bind(attempt)
            .bind(now)
            .bind(outcome.status.map(i64::from))
            .bind(outcome.error)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "update webhook_deliveries set state = $4, attempts = attempts + 1, \
                   next_attempt_at = $5, lease_until = null, \
                   delivered_at = case when $4 = 'delivered' then $6 else delivered_at end \
                 where institution_id = $1 and subscription_id = $2 and event_id = $3",
            )
            .bind(d.institution.as_str())
            .bind(&d.subscription)
            .bind(&d.event_id)
            .bind(state.code())
            .bind(next_at)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        });
        Ok(())
    }

    /// A subscription's deliveries, newest event first, with their logs.
    pub async fn deliveries(&self, subscription: &str) -> Result<Vec<(Delivery, Vec<Attempt>)>> {
        let sql = format!(
            "select {DELIVERY_COLUMNS} from webhook_deliveries where subscription_id = $1 \
             order by occurred_at desc, event_id"
        );
        let rows: Vec<DeliveryRow> = on_reader!(self, |pool| sqlx::query_as(&sql)
            .bind(subscription)
            .fetch_all(pool)
            .await?);
        let deliveries: Vec<Delivery> = crate::store::rows::convert(rows)?;
        let attempts: Vec<(String, String, AttemptRow)> = {
            #[derive(sqlx::FromRow)]
            struct Row {
                institution_id: String,
                event_id: String,
                #[sqlx(flatten)]
                attempt: AttemptRow,
            }
            let rows: Vec<Row> = on_reader!(self, |pool| sqlx::query_as(
                "select institution_id, event_id, cast(attempt as bigint) as attempt, at, \
                   cast(status as bigint) as status, error, replayed_by \
                 from webhook_attempts where subscription_id = $1 order by attempt"
            )
            .bind(subscription)
            .fetch_all(pool)
            .await?);
            rows.into_iter()
                .map(|r| (r.institution_id, r.event_id, r.attempt))
                .collect()
        };
        let mut out = Vec::with_capacity(deliveries.len());
        for d in deliveries {
            out.push((d, Vec::new()));
        }
        for (institution, event, row) in attempts {
            if let Some((_, log)) = out
                .iter_mut()
                .find(|(d, _)| d.institution.as_str() == institution && d.event_id == event)
            {
                log.push(Attempt::try_from(row)?);
            }
        }
        Ok(out)
    }

    /// Makes a delivery due now again, whatever became of it (the receiver
    /// lost it, or every scheduled attempt failed), and logs who asked (a
    /// log row with `replayed_by`, numbered with the attempts). `false`
    /// when there is no such delivery.
    pub async fn replay_delivery(
        &self,
        subscription: &str,
        event_id: &str,
        by: &str,
    ) -> Result<bool> {
        let found = in_tx!(self, |tx, now| {
            let institution: Option<String> = sqlx::query_scalar(
                "select institution_id from webhook_deliveries \
                 where subscription_id = $1 and event_id = $2",
            )
            .bind(subscription)
            .bind(event_id)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(institution) = &institution {
                sqlx::query(
                    "update webhook_deliveries set state = 'pending', next_attempt_at = $4, \
                       lease_until = null \
                     where institution_id = $1 and subscription_id = $2 and event_id = $3",
                )
                .bind(institution)
                .bind(subscription)
                .bind(event_id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "insert into webhook_attempts (institution_id, subscription_id, event_id, \
                       attempt, at, replayed_by) \
                     select $1, $2, $3, coalesce(max(attempt), 0) + 1, $4, $5 from webhook_attempts \
                     where institution_id = $1 and subscription_id = $2 and event_id = $3",
                )
                .bind(institution)
                .bind(subscription)
                .bind(event_id)
                .bind(now)
                .bind(by)
                .execute(&mut *tx)
                .await?;
            }
            institution.is_some()
        });
        Ok(found)
    }
}
