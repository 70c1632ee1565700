//! Journal entries and the requests (typed operations) that produce them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::accounts::{AccountCode, Side};
use crate::domain::error::LedgerError;
use crate::domain::ids::{ClientId, EnrollmentId, InstitutionId};
use crate::domain::money::{Amount, Currency};

/// What an entry records. The kind fixes its phase and its postings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    TuitionPaid,
    TuitionCollectedOutside,
    LessonsConsumed,
    ReleaseInstructed,
    RefundApproved,
    RefundPaymentInstructed,
    RefundPaidByInstitution,
    UnidentifiedReceipt,
    ReceiptAttributed,
    DepositPaidIn,
    DepositReturnInstructed,
    PendingConfirmed,
    PendingVoided,
    Reversal,
}

/// How an entry moves the account totals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Single-phase: straight into the posted totals.
    Posted,
    /// Waits on the bank: into the pending totals (counted against floors).
    Pending,
    /// The bank confirmed a pending entry: its amounts move pending → posted.
    PostPending,
    /// The bank rejected a pending entry: its amounts leave the pending totals.
    VoidPending,
}

impl EntryKind {
    pub const ALL: [EntryKind; 14] = [
        EntryKind::TuitionPaid,
        EntryKind::TuitionCollectedOutside,
        EntryKind::LessonsConsumed,
        EntryKind::ReleaseInstructed,
        EntryKind::RefundApproved,
        EntryKind::RefundPaymentInstructed,
        EntryKind::RefundPaidByInstitution,
        EntryKind::UnidentifiedReceipt,
        EntryKind::ReceiptAttributed,
        EntryKind::DepositPaidIn,
        EntryKind::DepositReturnInstructed,
        EntryKind::PendingConfirmed,
        EntryKind::PendingVoided,
        EntryKind::Reversal,
    ];

    pub fn phase(self) -> Phase {
        match self {
            EntryKind::ReleaseInstructed
            | EntryKind::RefundPaymentInstructed
            | EntryKind::DepositReturnInstructed => Phase::Pending,
            EntryKind::PendingConfirmed => Phase::PostPending,
            EntryKind::PendingVoided => Phase::VoidPending,
            _ => Phase::Posted,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            EntryKind::TuitionPaid => "tuition_paid",
            EntryKind::TuitionCollectedOutside => "tuition_collected_outside",
            EntryKind::LessonsConsumed => "lessons_consumed",
            EntryKind::ReleaseInstructed => "release_instructed",
            EntryKind::RefundApproved => "refund_approved",
            EntryKind::RefundPaymentInstructed => "refund_payment_instructed",
            EntryKind::RefundPaidByInstitution => "refund_paid_by_institution",
            EntryKind::UnidentifiedReceipt => "unidentified_receipt",
            EntryKind::ReceiptAttributed => "receipt_attributed",
            EntryKind::DepositPaidIn => "deposit_paid_in",
            EntryKind::DepositReturnInstructed => "deposit_return_instructed",
            EntryKind::PendingConfirmed => "pending_confirmed",
            EntryKind::PendingVoided => "pending_voided",
            EntryKind::Reversal => "reversal",
        }
    }

    pub fn parse(text: &str) -> Option<EntryKind> {
        EntryKind::ALL.into_iter().find(|k| k.code() == text)
    }
}

/// Where a refund is paid from (the original route).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefundSource {
    Escrow,
    Deposit,
}

/// The typed operations: callers say what happened, the ledger derives the
/// postings, so nobody hand-writes postings for the ordinary flows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Command {
    /// Tuition paid into the supervised account.
    PayTuition {
        enrollment: EnrollmentId,
        #[serde(rename = "amount_minor")]
        amount: Amount,
    },
    /// Tuition the institution collected itself (risk-deposit mode).
    CollectOutsideEscrow {
        enrollment: EnrollmentId,
        #[serde(rename = "amount_minor")]
        amount: Amount,
    },
    /// 课消: lessons delivered; earns tuition at the price actually paid.
    ConsumeLessons {
        enrollment: EnrollmentId,
        hours: u32,
    },
    /// 拨付: instruct the bank to release earned tuition (pending).
    InstructRelease {
        #[serde(rename = "amount_minor")]
        amount: Amount,
    },
    /// 退费: approve a refund of unconsumed tuition; `None` refunds all of it.
    ApproveRefund {
        enrollment: EnrollmentId,
        #[serde(rename = "amount_minor")]
        amount: Option<Amount>,
    },
    /// Instruct the bank to pay an approved refund (pending).
    InstructRefundPayment {
        #[serde(rename = "amount_minor")]
        amount: Amount,
        source: RefundSource,
    },
    /// An approved refund the institution paid the family itself, out of
    /// the tuition it collected outside escrow (deposit mode): posted at
    /// once, nothing for the supervising bank to move.
    RecordRefundPaidByInstitution {
        #[serde(rename = "amount_minor")]
        amount: Amount,
    },
    /// A bank receipt nobody can attribute yet (suspense).
    RecordUnidentifiedReceipt {
        #[serde(rename = "amount_minor")]
        amount: Amount,
    },
    /// Attribute (part of) a suspense receipt to an enrollment.
    AttributeReceipt {
        enrollment: EnrollmentId,
        #[serde(rename = "amount_minor")]
        amount: Amount,
    },
    /// The institution pays in its risk deposit.
    PayInDeposit {
        #[serde(rename = "amount_minor")]
        amount: Amount,
    },
    /// Instruct the bank to return (part of) the deposit (pending).
    InstructDepositReturn {
        #[serde(rename = "amount_minor")]
        amount: Amount,
    },
    /// The bank executed a pending entry.
    ConfirmPending { pending: ClientId },
    /// The bank rejected or returned a pending entry.
    VoidPending { pending: ClientId },
    /// Undo a posted entry by its mirror image.
    Reverse { entry: ClientId },
}

impl Command {
    pub fn enrollment(&self) -> Option<&EnrollmentId> {
        match self {
            Command::PayTuition { enrollment, .. }
            | Command::CollectOutsideEscrow { enrollment, .. }
            | Command::ConsumeLessons { enrollment, .. }
            | Command::ApproveRefund { enrollment, .. }
            | Command::AttributeReceipt { enrollment, .. } => Some(enrollment),
            _ => None,
        }
    }

    /// The earlier entry this command acts on, if any.
    pub fn refers_to(&self) -> Option<&ClientId> {
        match self {
            Command::ConfirmPending { pending } | Command::VoidPending { pending } => Some(pending),
            Command::Reverse { entry } => Some(entry),
            _ => None,
        }
    }

    /// The institution-level accounts this command posts to (its
    /// `prepaid/{enrollment}` aside; commands acting on an earlier entry post
    /// to that entry's accounts).
    pub fn fixed_accounts(&self) -> &'static [AccountCode] {
        use AccountCode::*;
        match self {
            Command::PayTuition { .. } => &[EscrowCash],
            Command::CollectOutsideEscrow { .. } => &[HeldByInstitution],
            Command::AttributeReceipt { .. } => &[Unidentified],
            Command::ConsumeLessons { .. } => &[Releasable],
            Command::InstructRelease { .. } => &[Releasable, EscrowCash],
            Command::ApproveRefund { .. } => &[RefundPayable],
            Command::InstructRefundPayment { .. } => &[RefundPayable, EscrowCash, DepositCash],
            Command::RecordRefundPaidByInstitution { .. } => &[RefundPayable, HeldByInstitution],
            Command::RecordUnidentifiedReceipt { .. } => &[EscrowCash, Unidentified],
            Command::PayInDeposit { .. } | Command::InstructDepositReturn { .. } => {
                &[DepositCash, DepositPayable]
            }
            Command::ConfirmPending { .. }
            | Command::VoidPending { .. }
            | Command::Reverse { .. } => &[],
        }
    }

    pub fn is_charge(&self) -> bool {
        matches!(
            self,
            Command::PayTuition { .. } | Command::CollectOutsideEscrow { .. }
        )
    }
}

/// One request to the ledger: a command with its identity and context.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub institution: InstitutionId,
    /// The idempotency key: a replay with the same content returns the
    /// original entry; with other content it is refused.
    pub client_id: ClientId,
    pub currency: Currency,
    /// When it happened in the world (a payment's value time, a lesson's end).
    pub occurred_at: DateTime<Utc>,
    /// Bank reference, platform order number, instruction id.
    pub external_ref: Option<String>,
    pub command: Command,
}

impl Request {
    /// Checks what can be checked without the books: positive amounts and
    /// hours, a sane external reference. Times are truncated to microseconds,
    /// the precision both databases keep.
    pub fn validated(mut self) -> Result<Self, LedgerError> {
        // Amounts are positive by their type; hours are checked here.
        match &self.command {
            Command::ConsumeLessons { hours: 0, .. } => {
                return Err(LedgerError::HoursMustBePositive { hours: 0 })
            }
            Command::ConsumeLessons { hours, .. } => {
                crate::domain::bounds::check_hours("hours", *hours)?
            }
            _ => {}
        }
        crate::domain::bounds::check_instant("occurred_at", self.occurred_at)?;
        if let Some(r) = &self.external_ref {
            if r.len() > 256 || r.chars().any(char::is_control) {
                return Err(LedgerError::InvalidId {
                    what: "external reference",
                    value: r.chars().take(64).collect(),
                    reason: "at most 256 characters, no control characters",
                });
            }
        }
        self.occurred_at = crate::domain::chain::truncate_to_micros(self.occurred_at);
        Ok(self)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Posting {
    pub account: AccountCode,
    pub side: Side,
    /// Strictly positive by construction (the wire keeps `amount_minor`).
    #[serde(rename = "amount_minor")]
    pub amount: Amount,
}

impl Posting {
    pub fn new(account: &AccountCode, side: Side, amount: Amount) -> Self {
        Posting {
            account: account.clone(),
            side,
            amount,
        }
    }
}

/// Checks invariant 1 on a set of postings: at least two, debits equal
/// credits, no account on both sides (amounts are positive by their type).
pub fn check_balanced(postings: &[Posting]) -> Result<(), LedgerError> {
    if postings.is_empty() {
        return Err(LedgerError::EntryHasNoPostings);
    }
    let mut debits: i64 = 0;
    let mut credits: i64 = 0;
    for p in postings {
        let total = match p.side {
            Side::Debit => &mut debits,
            Side::Credit => &mut credits,
        };
        *total = total
            .checked_add(p.amount.minor())
            .ok_or(LedgerError::AmountOverflow)?;
        if postings
            .iter()
            .any(|q| q.account == p.account && q.side != p.side)
        {
            return Err(LedgerError::AccountsMustDiffer {
                account: p.account.to_string(),
            });
        }
    }
    if debits != credits {
        return Err(LedgerError::EntryUnbalanced {
            debits_minor: debits,
            credits_minor: credits,
        });
    }
    Ok(())
}

/// A recorded journal entry, as stored and as hashed into the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub institution: InstitutionId,
    /// Position in the institution's chain, from 1.
    pub seq: i64,
    pub client_id: ClientId,
    pub kind: EntryKind,
    pub currency: Currency,
    pub occurred_at: DateTime<Utc>,
    pub recorded_at: DateTime<Utc>,
    pub external_ref: Option<String>,
    pub enrollment: Option<EnrollmentId>,
    /// Class hours consumed (lesson consumption only).
    pub hours: Option<u32>,
    /// The entry this one confirms, voids or reverses.
    pub refers_to_seq: Option<i64>,
    /// The rule pack versions a decision used.
    pub rule_pack: Option<String>,
    /// Caps the rule pack flags but does not reject.
    pub flags: Vec<String>,
    pub postings: Vec<Posting>,
    /// SHA-256 of the request, to tell a replay from a conflicting reuse.
    pub request_hash: String,
    pub prev_hash: String,
    pub hash: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(account: &str, side: Side, amount_minor: i64) -> Posting {
        Posting {
            account: AccountCode::parse(account).unwrap(),
            side,
            amount: Amount::from_minor(amount_minor).unwrap(),
        }
    }

    #[track_caller]
    fn check(postings: &[Posting], expected: Result<(), &str>) {
        assert_eq!(check_balanced(postings).map_err(|e| e.code()), expected);
    }

    #[test]
    fn a_posting_of_nothing_or_less_cannot_be_read() {
        let wire = serde_json::to_string(&p("escrow_cash", Side::Debit, 5)).unwrap();
        assert!(wire.contains(r#""amount_minor":5"#), "{wire}");
        assert!(serde_json::from_str::<Posting>(&wire).is_ok());
        for bad in ["0", "-5"] {
            let refused = serde_json::from_str::<Posting>(
                &wire.replace(r#""amount_minor":5"#, &format!(r#""amount_minor":{bad}"#)),
            )
            .unwrap_err();
            assert!(
                refused.to_string().contains("amount_must_be_positive")
                    || refused.to_string().contains("positive"),
                "{refused}"
            );
        }
    }

    #[test]
    fn postings_must_balance_and_touch_distinct_accounts() {
        use Side::*;
        check(
            &[p("escrow_cash", Debit, 5), p("prepaid/E", Credit, 5)],
            Ok(()),
        );
        check(
            &[
                p("escrow_cash", Debit, 5),
                p("prepaid/E", Credit, 3),
                p("prepaid/F", Credit, 2),
            ],
            Ok(()),
        );
        check(&[], Err("entry_has_no_postings"));
        check(
            &[p("escrow_cash", Debit, 5), p("prepaid/E", Credit, 4)],
            Err("entry_unbalanced"),
        );
        check(
            &[p("escrow_cash", Debit, 5), p("escrow_cash", Credit, 5)],
            Err("accounts_must_differ"),
        );
        check(
            &[
                p("escrow_cash", Debit, i64::MAX),
                p("deposit_cash", Debit, 1),
                p("releasable", Credit, 1),
            ],
            Err("amount_overflow"),
        );
    }

    #[test]
    fn kinds_round_trip_through_their_codes() {
        for kind in EntryKind::ALL {
            assert_eq!(EntryKind::parse(kind.code()), Some(kind));
        }
    }
}
