//! Outbound webhooks: what the systems outside are told (event types), who
//! asked to be told (a subscription, scoped like a token), the events as
//! they are read from the records that say what happened, and a delivery's
//! states. Pure: the store reads and writes them, the application layer
//! signs and sends.

use chrono::{DateTime, Utc};

use crate::domain::ids::{InstitutionId, JurisdictionCode};

/// What a subscription can be told about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EventType {
    /// A red alert raised or reopened (the risk engine, the workflow).
    RedAlert,
    /// A refund moved: requested, approved, instructed, paid, returned,
    /// declined (each step of its trail).
    RefundStateChanged,
    /// An institution recorded lessons that now wait for the family's
    /// confirmation (or its silence).
    LessonsAwaitingConfirmation,
    /// The bank executed a release instruction.
    ReleaseExecuted,
}

impl EventType {
    pub const ALL: [EventType; 4] = [
        EventType::RedAlert,
        EventType::RefundStateChanged,
        EventType::LessonsAwaitingConfirmation,
        EventType::ReleaseExecuted,
    ];

    pub fn code(self) -> &'static str {
        match self {
            EventType::RedAlert => "alert.red",
            EventType::RefundStateChanged => "refund.state_changed",
            EventType::LessonsAwaitingConfirmation => "lessons.awaiting_confirmation",
            EventType::ReleaseExecuted => "release.executed",
        }
    }

    pub fn parse(s: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|t| t.code() == s)
    }
}

/// Whose events a subscription is told: a jurisdiction's (and everything
/// below it) or one institution's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscriptionScope {
    Jurisdiction(JurisdictionCode),
    Institution(InstitutionId),
}

impl SubscriptionScope {
    pub fn kind(&self) -> &'static str {
        match self {
            SubscriptionScope::Jurisdiction(_) => "jurisdiction",
            SubscriptionScope::Institution(_) => "institution",
        }
    }

    pub fn id(&self) -> &str {
        match self {
            SubscriptionScope::Jurisdiction(c) => c.as_str(),
            SubscriptionScope::Institution(i) => i.as_str(),
        }
    }

    pub fn parse(kind: &str, id: &str) -> Result<SubscriptionScope, String> {
        match kind {
            "jurisdiction" => JurisdictionCode::parse(id)
                .map(SubscriptionScope::Jurisdiction)
                .map_err(|e| e.to_string()),
            "institution" => InstitutionId::parse(id)
                .map(SubscriptionScope::Institution)
                .map_err(|e| e.to_string()),
            other => Err(format!("{other:?} is not a subscription scope")),
        }
    }

    /// Whether an event of `institution` (in `jurisdiction`) is in scope.
    pub fn covers(&self, institution: &InstitutionId, jurisdiction: &JurisdictionCode) -> bool {
        match self {
            SubscriptionScope::Jurisdiction(c) => c.covers(jurisdiction),
            SubscriptionScope::Institution(i) => i == institution,
        }
    }
}

/// A system that asked to be told, where, and about what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub id: String,
    pub url: String,
    /// The HMAC-SHA256 key deliveries are signed with.
    pub secret: String,
    pub events: Vec<EventType>,
    pub scope: SubscriptionScope,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

impl Subscription {
    pub fn wants(&self, event: &Event, jurisdiction: &JurisdictionCode) -> bool {
        event.at >= self.created_at
            && self.events.contains(&event.kind)
            && self.scope.covers(&event.institution, jurisdiction)
    }
}

/// One thing that happened, as read from its record. Its id is fixed by
/// the record, so reading it again finds the same event: the receiver
/// dedupes on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub kind: EventType,
    pub institution: InstitutionId,
    /// The alert key, refund id, lesson record id or instruction id.
    pub subject: String,
    /// The step within the subject's trail, when it has one.
    pub seq: Option<i64>,
    pub at: DateTime<Utc>,
    /// raised or reopened; the refund's new state; pending; executed.
    pub state: String,
    pub detail: Option<String>,
}

impl Event {
    /// `<type>:<institution>:<subject>[:<step>]`.
    pub fn id(&self) -> String {
        let base = format!("{}:{}:{}", self.kind.code(), self.institution, self.subject);
        match self.seq {
            Some(seq) => format!("{base}:{seq}"),
            None => base,
        }
    }
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryState {
    /// Waiting for its (next) attempt.
    Pending,
    /// The receiver answered 2xx.
    Delivered,
    /// Every scheduled attempt failed; a replay tries again.
    Failed,
}

impl DeliveryState {
    pub fn code(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<DeliveryState> {
        [
            DeliveryState::Pending,
            DeliveryState::Delivered,
            DeliveryState::Failed,
        ]
        .into_iter()
        .find(|d| d.code() == s)
    }
}

/// One event queued for one subscription, with its log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub institution: InstitutionId,
    pub subscription: String,
    pub event_id: String,
    pub event_type: EventType,
    pub occurred_at: DateTime<Utc>,
    /// The body sent, exactly (the signature covers these bytes).
    pub payload: String,
    pub state: DeliveryState,
    pub attempts: u32,
    pub next_attempt_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
}

/// One attempt of the delivery log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub attempt: u32,
    pub at: DateTime<Utc>,
    /// The receiver's HTTP status, when it answered.
    pub status: Option<u16>,
    pub error: Option<String>,
    /// Who asked for this attempt, when it was a replay.
    pub replayed_by: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_types_parse_back_from_their_codes_and_nothing_else() {
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.code()), Some(t));
        }
        assert_eq!(EventType::parse("alert"), None);
    }

    #[test]
    fn a_county_subscription_covers_its_institutions_and_an_institution_one_only_itself() {
        let county = JurisdictionCode::parse("410922").unwrap();
        let other = JurisdictionCode::parse("410923").unwrap();
        let a = InstitutionId::parse("INS-A").unwrap();
        let b = InstitutionId::parse("INS-B").unwrap();
        let by_county = SubscriptionScope::Jurisdiction(county.clone());
        assert!(by_county.covers(&a, &county));
        assert!(!by_county.covers(&a, &other));
        let by_school = SubscriptionScope::Institution(a.clone());
        assert!(by_school.covers(&a, &county));
        assert!(!by_school.covers(&b, &county));
    }
}
