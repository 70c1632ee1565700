//! Reconciliation, pure: which bank lines settle which ledger transfers
//! (the matcher, [`reconcile`]), and the decisions around it: which
//! statements wait in quarantine and what the bank had reported by a day
//! ([`account`]), each statement day's three figures ([`days`]), and what a
//! recording run books ([`booking`]: matches kept, credits to suspense,
//! instructions confirmed or voided). No database, no clock, no network;
//! deterministic: the same lines and transfers in any order give the same
//! outcome.
//!
//! The application layer loads one supervised account's stored lines and
//! the institution's entries, calls [`account::match_account`] (or the
//! booking functions), and persists what they decide.
//!
//! # Passes, in order
//! Each line and each transfer is claimed at most once, by a match or a
//! suggestion; a later pass only sees what earlier passes left. Only booked,
//! non-zero, non-duplicate, non-reversal lines take part in passes 1–5.
//!
//! 0. [`Pass::Reversal`]: a reversal line and the line it reverses (opposite
//!    amount, same end-to-end id or bank reference, booked no later) cancel
//!    out: automatic. The transfer the original would have settled stays
//!    open and, if nothing else settles it, is reported
//!    [`Reason::Returned`] (the bank returned it: void it and alert).
//! 1. [`Pass::Identifier`]: the line's end-to-end id or bank reference,
//!    trimmed, equals one of the transfer's references, and the signed
//!    amounts are equal. No date window: the identifier is the evidence.
//! 2. [`Pass::Reference`]: a normalized token of the remittance text (or of
//!    the end-to-end id or bank reference) equals a normalized transfer
//!    reference, equal amount, within the window.
//! 3. [`Pass::Counterparty`]: equal amount, within the window, and the
//!    normalized counterparty name or account equals the transfer's.
//! 4. [`Pass::Grouped`]: one line equal to the exact sum of 2 to
//!    `max_group_size` transfers of the same sign within the window (a
//!    batched release), or several lines equal to one transfer. Bounded
//!    search; always a suggestion. Items that have an exact 1:1 amount
//!    partner in the window are left out of it (a single payment of the
//!    amount is more plausible than a combination, and is pass 5's).
//! 5. [`Pass::AmountDate`]: equal amount within the window and nothing else:
//!    a suggestion, and only when the pair is the only candidate on both
//!    sides. With several candidates the engine proposes nothing and says
//!    [`Reason::Ambiguous`]: identical tuition payments are common and a
//!    guess would hide a real discrepancy.
//!
//! In passes 1–3 a pair that is the only candidate on both sides is
//! automatic; pairs in a tie become suggestions chosen by an assignment
//! (most pairs, then least total working-day distance, then id order), and
//! whatever the assignment leaves out is [`Reason::Ambiguous`].
//!
//! # Decisions
//! - The window is measured from the line's booking date (the day the bank
//!   moved the money; value dates can be back-dated). Value dates are shown
//!   in explanations only.
//! - Duplicates: lines with the same bank reference, amount and reversal flag
//!   are one bank line reported twice (an intraday notification and the
//!   end-of-day statement). The booked one (then the smallest id) takes part;
//!   the others are [`Reason::Duplicate`]. Lines without a usable bank
//!   reference are never deduplicated: two parents paying the same fee on the
//!   same day are two lines. So callers may pass intraday and end-of-day lines
//!   together, provided the bank keeps its reference; otherwise pass final
//!   lines only.
//! - An unmatched booked debit with no candidate at all is
//!   [`Reason::UnmatchedDebit`]: money left the supervised account and no
//!   instruction of ours explains it (an unauthorized outflow downstream).
//! - The amounts compared are signed from the supervised account's view, so
//!   a refund (out) never settles a receipt (in) of the same size.
//! - Pass 1 reads the identifier fields only. A reference typed into the
//!   remittance is the payer's free text: it goes through pass 2, normalized
//!   and within the window.
//! - Reasons have a precedence: for a line, reference-amount mismatch, then
//!   ambiguous, then unmatched debit / no candidate; for a transfer,
//!   returned, mismatch, ambiguous, no candidate. So a debit with a tie or a
//!   mismatching reference is reported as that, not as an unmatched debit;
//!   it still needs an officer.
//! - Bounds: a line with more than 64 candidates in one pass is noted
//!   ambiguous rather than assigned; ties larger than 64 × 64 are paired
//!   greedily by distance instead of exactly (see `assign`); the grouped
//!   pass stops at its step budgets and lists what it did not finish in
//!   [`GroupSearchReport`].

pub mod account;
mod assign;
pub mod booking;
pub mod days;
mod engine;
mod group;
mod normalize;
pub mod transfers;

use chrono::NaiveDate;
use serde::Serialize;

use crate::domain::money::Currency;
pub use crate::domain::policy::Calendar;

pub use crate::domain::feeds::LineStatus;

/// The widest window accepted: a year of working days is already far more
/// than any bank takes to book a payment.
pub const MAX_WINDOW_WORKING_DAYS: u32 = 260;

/// One line of a bank statement, in minor units of the account's currency.
/// A plain input record: [`reconcile`] checks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BankLine {
    /// The caller's handle, unique among the lines of one call.
    pub id: u64,
    /// Signed: credit (money in) positive, debit negative.
    pub amount_minor: i64,
    pub booking_date: NaiveDate,
    pub value_date: Option<NaiveDate>,
    /// Only booked lines are matched; pending and info lines are reported.
    pub status: LineStatus,
    pub end_to_end_id: Option<String>,
    pub bank_ref: Option<String>,
    pub remittance: Option<String>,
    pub counterparty_name: Option<String>,
    pub counterparty_account: Option<String>,
    /// The line reverses an earlier one (camt `RvslInd`, MT940 `RC`/`RD`);
    /// its amount is the direction the money moved back.
    pub reversal: bool,
}

/// What a transfer is, which fixes its sign.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferKind {
    /// Tuition or a deposit paid in: positive.
    Receipt,
    /// 拨付, release to the institution: negative.
    Release,
    /// 退费, refund to a family: negative.
    Refund,
    /// The risk deposit paid back to the institution: negative.
    DepositReturn,
}

impl TransferKind {
    pub fn code(self) -> &'static str {
        match self {
            TransferKind::Receipt => "receipt",
            TransferKind::Release => "release",
            TransferKind::Refund => "refund",
            TransferKind::DepositReturn => "deposit_return",
        }
    }

    fn is_inflow(self) -> bool {
        matches!(self, TransferKind::Receipt)
    }
}

/// A money movement the ledger expects on the supervised account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerTransfer {
    /// The caller's handle, unique among the transfers of one call.
    pub id: u64,
    /// Signed from the supervised account's view: money in positive,
    /// releases and refunds negative. Never zero.
    pub amount_minor: i64,
    pub date: NaiveDate,
    /// Our instruction id (sent as end-to-end id), the platform's order
    /// number, a bank reference we were told.
    pub references: Vec<String>,
    /// The payer or payee, by name or account.
    pub counterparty: Option<String>,
    pub kind: TransferKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchConfig {
    /// Lines and transfers at most this many working days apart can match
    /// in passes 2–5 (see [`Calendar::working_days_between`]).
    pub window_working_days: u32,
    pub calendar: Calendar,
    /// The most members a grouped match may have.
    pub max_group_size: usize,
    /// Steps for the whole grouped pass (candidate scans and search nodes).
    pub max_group_search_steps: usize,
    /// Steps for one target, so that one pathological line cannot starve
    /// the others.
    pub max_group_search_steps_per_target: usize,
    /// Only for writing amounts in explanations.
    pub currency: Currency,
}

impl Default for MatchConfig {
    fn default() -> Self {
        MatchConfig {
            window_working_days: 3,
            calendar: Calendar::default(),
            max_group_size: 6,
            max_group_search_steps: 2_000_000,
            max_group_search_steps_per_target: 20_000,
            currency: Currency::Cny,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Pass {
    Reversal,
    Identifier,
    Reference,
    Counterparty,
    Grouped,
    AmountDate,
}

impl Pass {
    pub fn code(self) -> &'static str {
        match self {
            Pass::Reversal => "reversal",
            Pass::Identifier => "identifier",
            Pass::Reference => "reference",
            Pass::Counterparty => "counterparty",
            Pass::Grouped => "grouped",
            Pass::AmountDate => "amount_date",
        }
    }
}

/// Lines and transfers that go together, with the evidence in words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Match {
    /// Sorted ids.
    pub lines: Vec<u64>,
    /// Sorted ids; empty for a reversal pair.
    pub transfers: Vec<u64>,
    pub pass: Pass,
    pub explanation: String,
}

/// Why a line or transfer is not in any match or suggestion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum Reason {
    /// Line: pending or info; only booked lines are matched.
    NotBooked { status: LineStatus },
    /// Line: moves no money.
    ZeroAmount,
    /// Line: the same bank line (bank reference, amount) reported again.
    Duplicate { of: u64 },
    /// Line: a reversal whose original is not among the lines given (an
    /// earlier statement); `transfers` are those its identifiers name.
    Reversal { transfers: Vec<u64> },
    /// Transfer: its bank line came and was reversed (returned) by the bank.
    Returned { lines: Vec<u64> },
    /// An exact identifier links it to these counterparts, but the amounts
    /// differ (partial execution, fees deducted, a typo).
    ReferenceAmountMismatch { counterparts: Vec<u64> },
    /// Several candidates and no evidence to choose: an officer decides.
    /// At most ten ids are listed; `total` counts them all.
    Ambiguous { candidates: Vec<u64>, total: usize },
    /// Line: a booked debit that no transfer could explain — money left the
    /// supervised account without an instruction of ours.
    UnmatchedDebit,
    /// A credit line (unidentified receipt, for suspense) or a transfer the
    /// bank has not shown.
    NoCandidate,
}

impl Reason {
    pub fn code(&self) -> &'static str {
        match self {
            Reason::NotBooked { .. } => "not_booked",
            Reason::ZeroAmount => "zero_amount",
            Reason::Duplicate { .. } => "duplicate",
            Reason::Reversal { .. } => "reversal",
            Reason::Returned { .. } => "returned",
            Reason::ReferenceAmountMismatch { .. } => "reference_amount_mismatch",
            Reason::Ambiguous { .. } => "ambiguous",
            Reason::UnmatchedDebit => "unmatched_debit",
            Reason::NoCandidate => "no_candidate",
        }
    }

    /// The line is money out that no instruction explains.
    pub fn is_unauthorized_outflow(&self) -> bool {
        matches!(self, Reason::UnmatchedDebit)
    }
}

/// How the grouped pass spent its budget.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GroupSearchReport {
    pub steps: usize,
    /// Some search stopped for lack of budget: a group may have been missed.
    pub cut: bool,
    /// Lines and transfers whose grouped search was cut or never started.
    pub cut_lines: Vec<u64>,
    pub cut_transfers: Vec<u64>,
}

/// Every line and every transfer appears exactly once: in one match, in one
/// suggestion, or unmatched with a reason.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReconcileOutcome {
    /// Automatic, sorted by their first line id (then first transfer id).
    pub matches: Vec<Match>,
    /// For an officer to confirm or reject, sorted the same way.
    pub suggestions: Vec<Match>,
    /// Sorted by id.
    pub unmatched_lines: Vec<(u64, Reason)>,
    /// Sorted by id.
    pub unmatched_transfers: Vec<(u64, Reason)>,
    pub group_search: GroupSearchReport,
}

/// Refusals of the inputs. Precedence, first broken rule reported: the
/// window, repeated line ids, line amounts, repeated transfer ids, then
/// transfer amounts and signs; within each, the smallest id. (The calendar
/// is checked where it is made, [`Calendar::new`].)
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReconcileError {
    #[error("match config: a window of {working_days} working days exceeds the maximum of {max}")]
    WindowTooWide { working_days: u32, max: u32 },
    #[error("bank line {id} appears more than once")]
    DuplicateLineId { id: u64 },
    #[error("bank line {id}: amount {amount_minor} is out of range")]
    LineAmountOutOfRange { id: u64, amount_minor: i64 },
    #[error("ledger transfer {id} appears more than once")]
    DuplicateTransferId { id: u64 },
    #[error("ledger transfer {id}: a {} must be {}, got {amount_minor}", kind.code(), if kind.is_inflow() { "positive" } else { "negative" })]
    SignDisagreesWithKind {
        id: u64,
        kind: TransferKind,
        amount_minor: i64,
    },
    #[error("ledger transfer {id}: amount {amount_minor} is out of range")]
    TransferAmountOutOfRange { id: u64, amount_minor: i64 },
}

impl ReconcileError {
    pub fn code(&self) -> &'static str {
        match self {
            ReconcileError::WindowTooWide { .. } => "window_too_wide",
            ReconcileError::DuplicateLineId { .. } => "duplicate_line_id",
            ReconcileError::LineAmountOutOfRange { .. } => "line_amount_out_of_range",
            ReconcileError::DuplicateTransferId { .. } => "duplicate_transfer_id",
            ReconcileError::SignDisagreesWithKind { .. } => "sign_disagrees_with_kind",
            ReconcileError::TransferAmountOutOfRange { .. } => "transfer_amount_out_of_range",
        }
    }
}

/// Matches `lines` (of one supervised account) against `transfers`.
pub fn reconcile(
    lines: &[BankLine],
    transfers: &[LedgerTransfer],
    config: &MatchConfig,
) -> Result<ReconcileOutcome, ReconcileError> {
    if config.window_working_days > MAX_WINDOW_WORKING_DAYS {
        return Err(ReconcileError::WindowTooWide {
            working_days: config.window_working_days,
            max: MAX_WINDOW_WORKING_DAYS,
        });
    }
    let mut lines: Vec<&BankLine> = lines.iter().collect();
    lines.sort_unstable_by_key(|l| l.id);
    for pair in lines.windows(2) {
        if pair[0].id == pair[1].id {
            return Err(ReconcileError::DuplicateLineId { id: pair[0].id });
        }
    }
    if let Some(l) = lines.iter().find(|l| l.amount_minor == i64::MIN) {
        return Err(ReconcileError::LineAmountOutOfRange {
            id: l.id,
            amount_minor: l.amount_minor,
        });
    }
    let mut transfers: Vec<&LedgerTransfer> = transfers.iter().collect();
    transfers.sort_unstable_by_key(|t| t.id);
    for pair in transfers.windows(2) {
        if pair[0].id == pair[1].id {
            return Err(ReconcileError::DuplicateTransferId { id: pair[0].id });
        }
    }
    for t in &transfers {
        if t.amount_minor == i64::MIN {
            return Err(ReconcileError::TransferAmountOutOfRange {
                id: t.id,
                amount_minor: t.amount_minor,
            });
        }
        let right_sign = if t.kind.is_inflow() {
            t.amount_minor > 0
        } else {
            t.amount_minor < 0
        };
        if !right_sign {
            return Err(ReconcileError::SignDisagreesWithKind {
                id: t.id,
                kind: t.kind,
                amount_minor: t.amount_minor,
            });
        }
    }
    Ok(engine::run(lines, transfers, config))
}
