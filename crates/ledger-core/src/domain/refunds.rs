//! The refund workflow's states and the outbox of bank instructions. Pure:
//! which moves are allowed, and how long to wait before trying a bank again.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::Serialize;

use crate::domain::error::LedgerError;
use crate::domain::ids::{EnrollmentId, InstitutionId, RefundId};

/// requested → approved → instructed → paid | returned; requested → declined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RefundState {
    /// Waiting for an officer (or for the answer deadline to pass).
    Requested,
    /// Approved (or deemed approved); the ledger entries come next.
    Approved,
    /// The refund is owed in the books and the instruction is in the outbox.
    Instructed,
    /// The bank paid it.
    Paid,
    /// The bank rejected or returned it: the pending entry was voided.
    Returned,
    /// An officer declined the request.
    Declined,
}

impl RefundState {
    pub const ALL: [RefundState; 6] = [
        RefundState::Requested,
        RefundState::Approved,
        RefundState::Instructed,
        RefundState::Paid,
        RefundState::Returned,
        RefundState::Declined,
    ];

    pub fn code(self) -> &'static str {
        match self {
            RefundState::Requested => "requested",
            RefundState::Approved => "approved",
            RefundState::Instructed => "instructed",
            RefundState::Paid => "paid",
            RefundState::Returned => "returned",
            RefundState::Declined => "declined",
        }
    }

    pub fn parse(text: &str) -> Result<Self, LedgerError> {
        RefundState::ALL
            .into_iter()
            .find(|s| s.code() == text)
            .ok_or_else(|| LedgerError::InvalidField {
                field: "state",
                reason: format!("{text:?} is not a refund state"),
            })
    }

    /// The moves the workflow may make.
    pub fn may_become(self, next: RefundState) -> bool {
        use RefundState::*;
        matches!(
            (self, next),
            (Requested, Approved)
                | (Requested, Declined)
                | (Approved, Instructed)
                // The books refused it (nothing left to refund).
                | (Approved, Declined)
                // Paid by the institution itself (deposit mode).
                | (Approved, Paid)
                | (Instructed, Paid)
                | (Instructed, Returned)
        )
    }
}

/// Who the money goes back to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Payee {
    pub name: String,
    pub account: String,
    /// The payee's bank: a BIC or a domestic code (CNAPS).
    pub bank: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Refund {
    pub institution: InstitutionId,
    pub id: RefundId,
    pub enrollment: EnrollmentId,
    /// `None`: everything not yet consumed.
    pub amount_minor: Option<i64>,
    pub payee: Payee,
    pub reason: Option<String>,
    pub requested_by: String,
    pub requested_on: NaiveDate,
    /// Deemed approved if nobody answers by the end of this day.
    pub answer_by: NaiveDate,
    pub state: RefundState,
    /// Overdue if not paid by the end of this day.
    pub pay_by: Option<NaiveDate>,
    /// The pending ledger entry's client id, also the bank's idempotency key.
    pub instruction_id: Option<String>,
}

impl Refund {
    /// The client ids of the refund's ledger entries: fixed by its id, so a
    /// workflow step repeated after a crash is a replay, never a second
    /// refund. At most 35 characters (the bank's end-to-end id).
    pub fn approval_client_id(&self) -> String {
        format!("{}-A", self.id)
    }

    pub fn instruction_client_id(&self) -> String {
        format!("{}-P", self.id)
    }
}

/// One move of a refund, as its trail keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RefundEvent {
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub state: String,
    pub detail: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OutboxState {
    /// Not yet accepted by the bank (never sent, or every try failed).
    Pending,
    /// The bank acknowledged it; waiting to hear it was executed.
    Accepted,
    /// Executed: the pending entry was confirmed.
    Executed,
    /// Rejected or returned: the pending entry was voided.
    Rejected,
}

impl OutboxState {
    pub fn code(self) -> &'static str {
        match self {
            OutboxState::Pending => "pending",
            OutboxState::Accepted => "accepted",
            OutboxState::Executed => "executed",
            OutboxState::Rejected => "rejected",
        }
    }

    pub fn parse(text: &str) -> Result<Self, LedgerError> {
        [
            OutboxState::Pending,
            OutboxState::Accepted,
            OutboxState::Executed,
            OutboxState::Rejected,
        ]
        .into_iter()
        .find(|s| s.code() == text)
        .ok_or_else(|| LedgerError::InvalidField {
            field: "state",
            reason: format!("{text:?} is not an outbox state"),
        })
    }
}

/// An instruction the bank must carry out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutboxItem {
    pub institution: InstitutionId,
    /// The pending entry's client id; the bank's idempotency key.
    pub instruction_id: String,
    /// The entry kind: release_instructed, refund_payment_instructed, …
    pub kind: String,
    pub amount_minor: i64,
    pub currency: String,
    pub state: OutboxState,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub bank_ref: Option<String>,
    pub last_error: Option<String>,
}

/// How long to wait after the `attempts`-th failure: doubling from 5 s,
/// capped at 15 minutes, so a bank that is down is not hammered and one that
/// recovers is retried soon.
pub fn retry_delay(attempts: i32) -> Duration {
    let exponent = u32::try_from(attempts.clamp(1, 16) - 1).unwrap_or(0);
    let seconds = 5i64.saturating_mul(1i64 << exponent.min(10));
    Duration::seconds(seconds.min(15 * 60))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refund_moves_forward_only() {
        use RefundState::*;
        assert!(Requested.may_become(Approved));
        assert!(Approved.may_become(Instructed));
        assert!(Instructed.may_become(Returned));
        assert!(!Paid.may_become(Returned));
        assert!(!Declined.may_become(Approved));
        assert!(!Requested.may_become(Paid));
        for s in RefundState::ALL {
            assert_eq!(RefundState::parse(s.code()).unwrap(), s);
            assert!(!s.may_become(s));
        }
    }

    #[test]
    fn retries_back_off_and_stop_growing() {
        assert_eq!(retry_delay(1), Duration::seconds(5));
        assert_eq!(retry_delay(2), Duration::seconds(10));
        assert_eq!(retry_delay(4), Duration::seconds(40));
        assert_eq!(retry_delay(30), Duration::minutes(15));
    }
}
