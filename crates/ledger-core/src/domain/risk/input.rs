//! The snapshot the risk engine reads: one institution on one day, as the
//! store (ledger, reconciliation, feeds) knows it. Filling it is the
//! store's job; every field says what it must hold.
//!
//! Conventions: amounts are minor units of the institution's currency;
//! dated items after `as_of` are ignored (the engine never looks ahead, so a
//! snapshot may safely carry more than it needs); absent data is `None` or
//! an empty list and is reported as such, never read as zero.

use chrono::NaiveDate;
use serde::Serialize;

use crate::domain::feeds::AccountKind;
use crate::domain::ids::{ClientId, EnrollmentId};
use crate::domain::policy::Calendar;
use crate::domain::policy::ResolvedRules;
use crate::domain::registry::Institution;
use crate::domain::statements::ChainBreak;

/// Everything the risk engine knows about one institution on one day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RiskInput {
    /// The day assessed (end of day); the engine never reads the clock.
    pub as_of: NaiveDate,
    /// Id, name, jurisdiction, status, supervision mode, category, currency.
    pub institution: Institution,
    /// The rule pack in force on `as_of` and its version chain.
    pub rules: ResolvedRules,
    /// The rule pack's working-day calendar (`RuleParams::calendar`).
    pub calendar: Calendar,
    /// The first day the ledger has figures for this institution (its first
    /// day of business, or the first day the store kept): days before it
    /// are unknown, so baselines reaching back before it are not evaluated.
    pub history_from: NaiveDate,
    pub ledger: LedgerFigures,
    /// The ledger at the end of the day the banks' latest closings cover
    /// (the oldest latest closing of the escrow accounts, or of the deposit
    /// accounts when there is no escrow account), when that is before
    /// `as_of`: what the closings are compared with.
    pub ledger_at_statements: Option<(NaiveDate, LedgerFigures)>,
    /// Supervised accounts on file with what their banks reported.
    pub accounts: Vec<SupervisedAccount>,
    /// Daily figures covering at least `baseline_days + lookback_days`
    /// before `as_of`; a day absent here had no activity in the ledger.
    pub days: Vec<DayFigures>,
    pub packages: PackageCounts,
    /// Families who asked for their money back, and the families who could
    /// have, in the recent and the baseline windows.
    pub families: FamilyCounts,
    /// Individual bank debits on supervised accounts over at least the
    /// outflow period (for the single-debit warning).
    pub bank_debits: Vec<BankLine>,
    /// Bank debits that reconciliation matched to no instruction of ours,
    /// still unresolved.
    pub unauthorized_outflows: Vec<BankLine>,
    /// The latest reconciled statement day of each account whose bank
    /// closing differs from the ledger (none when they agree).
    pub balance_mismatches: Vec<BalanceMismatch>,
    /// Releases executed without a (deemed) confirmation or ahead of the
    /// enrollment's schedule, over at least the recent window.
    pub release_findings: Vec<ReleaseFinding>,
    /// Refund requests not yet paid on `as_of` (paid ones may be included).
    pub refund_requests: Vec<RefundRequest>,
    /// Cap breaches recorded on entries (caps the rule pack flags), over at
    /// least the recent window.
    pub cap_flags: Vec<CapFlag>,
    pub events: Vec<InstitutionEvent>,
    /// The families' answers to lesson records, the enrollments' timetables
    /// and manual release requests (`risk/confirmations.rs`).
    pub confirmations: super::ConfirmationFacts,
    /// Bank debit lines (`BankLine::line_id`) that reconciliation matched
    /// to an instruction of ours (a release, a refund, a deposit return):
    /// the ledger's own actions, never a suspicious outflow.
    pub instructed_debits: Vec<String>,
    /// Release, refund and deposit-return instructions sent to the bank and
    /// neither confirmed nor voided by `as_of`.
    pub pending_instructions: Vec<PendingInstruction>,
    /// How the institution's peers (same jurisdiction and category) stand on
    /// the same day, when the caller assessed them together; `None` leaves
    /// the institution judged against its own history only.
    pub peers: Option<Peers>,
}

/// An instruction of ours the bank has not executed yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PendingInstruction {
    pub entry: EntryRef,
    /// `release`, `refund` or `deposit_return`.
    pub what: &'static str,
    pub date: NaiveDate,
    pub amount_minor: i64,
}

/// Robust statistics (median and median absolute deviation) of a figure
/// over the peers assessed on the same day, with how many peers had it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PeerStat {
    pub median: i128,
    pub mad: i128,
    pub count: u32,
}

/// The peers' figures the engine compares an institution with; see
/// [`super::peer_figures`] for what each one is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Peers {
    /// Recent collections rate against the own baseline rate, in bp.
    pub collections_multiple_bp: PeerStat,
    /// Unearned tuition in months of the recent delivery rate, in bp.
    pub liability_months_bp: PeerStat,
    /// Share of the recent window's packages sold at the caps, in bp.
    pub cap_share_bp: PeerStat,
    /// Families who asked for a refund in the recent window, in bp of the
    /// families who could have.
    pub families_leaving_bp: PeerStat,
}

/// The ledger's balances at the end of `as_of` (posted, minor units).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LedgerFigures {
    /// Sum of every `prepaid/{enrollment}`: unearned tuition.
    pub unearned_prepaid_minor: i64,
    pub refund_payable_minor: i64,
    pub releasable_minor: i64,
    pub unidentified_minor: i64,
    pub escrow_cash_minor: i64,
    pub deposit_cash_minor: i64,
    pub held_by_institution_minor: i64,
    /// Releases instructed and not yet confirmed by the bank: money already
    /// promised to the institution, so not available to families.
    pub pending_release_minor: i64,
    /// Refunds instructed and not yet confirmed by the bank.
    pub pending_refund_minor: i64,
    /// Tuition collected (everywhere) over the 365 days ending on `as_of`:
    /// the base of the minimum-balance rule.
    pub collections_12m_minor: i64,
}

/// A supervised account (escrow or risk deposit) and the closing balances
/// its bank sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupervisedAccount {
    pub kind: AccountKind,
    pub account_no: String,
    /// End-of-day closings the bank reported, any order. Must include the
    /// latest one on or before `as_of` however old it is: an account with
    /// none is an account that has never sent a statement.
    pub closings: Vec<Closing>,
    /// Where its statements stop chaining (a statement missing or wrong):
    /// from that day on the bank's picture of the account is incomplete.
    pub chain_break: Option<ChainBreak>,
    /// The day the account was registered with the ledger, when known: a
    /// new account's first statement is not missing before the rule pack's
    /// grace (`feed_silence_days`) has passed.
    pub registered_on: Option<NaiveDate>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Closing {
    pub date: NaiveDate,
    pub balance_minor: i64,
}

/// One day of activity (minor units, consumed hours).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DayFigures {
    pub date: NaiveDate,
    /// Tuition the platform or institution reported collected that day.
    pub collections_reported_minor: i64,
    /// Of the tuition reported collected that day, the part the bank has
    /// confirmed arriving in the supervised account by `as_of`. Attributed to
    /// the day of the report, not of arrival, so that settlement lag never
    /// hides (or fakes) a missing payment.
    pub collections_into_escrow_minor: i64,
    /// Tuition earned by lessons consumed that day.
    pub consumed_minor: i64,
    pub consumed_hours: u32,
    pub released_minor: i64,
    pub refunds_paid_minor: i64,
    /// Bank-confirmed debits and credits on the supervised accounts.
    pub bank_debits_minor: i64,
    pub bank_credits_minor: i64,
}

/// Packages (charges) sold, and how many of them at a cap (months, hours or
/// amount), in the recent and the baseline windows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PackageCounts {
    pub recent_sold: u32,
    pub recent_at_cap: u32,
    pub baseline_sold: u32,
    pub baseline_at_cap: u32,
}

/// Families leaving: in each window, the enrollments whose family first
/// asked for a refund in it (through the refund workflow, or by an approval
/// entry where no request came first), of the enrollments whose family
/// could have (sold by the window's last day, course not ended before its
/// first, no refund asked before it). An enrollment is one family.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FamilyCounts {
    /// The recent window's leaving families, by enrollment id.
    pub recent_leaving: Vec<EnrollmentId>,
    pub recent_live: u32,
    pub baseline_leaving: u32,
    pub baseline_live: u32,
}

/// One bank statement line that took money out of a supervised account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BankLine {
    pub line_id: String,
    pub account: AccountKind,
    pub bank_ref: Option<String>,
    pub date: NaiveDate,
    /// Positive: the amount debited.
    pub amount_minor: i64,
    /// The account's balance just before this debit, when the bank says.
    pub balance_before_minor: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BalanceMismatch {
    pub account: AccountKind,
    pub account_no: String,
    pub date: NaiveDate,
    pub bank_closing_minor: i64,
    pub ledger_balance_minor: i64,
}

/// A journal entry, as an officer can look it up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EntryRef {
    pub seq: i64,
    pub client_id: ClientId,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReleaseIssue {
    /// Released with neither the parent's confirmation nor the deemed one.
    Unconfirmed,
    /// Consumed (and released) faster than the enrollment's schedule allows.
    AheadOfSchedule,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReleaseFinding {
    pub entry: EntryRef,
    pub date: NaiveDate,
    pub amount_minor: i64,
    pub issue: ReleaseIssue,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RefundRequest {
    pub enrollment: EnrollmentId,
    pub amount_minor: i64,
    pub requested_on: NaiveDate,
    pub approved_on: Option<NaiveDate>,
    pub paid_on: Option<NaiveDate>,
    /// The approval entry, once there is one.
    pub entry: Option<EntryRef>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CapFlag {
    pub entry: EntryRef,
    pub date: NaiveDate,
    /// The cap broken, as recorded on the entry (e.g. `max_amount_per_charge`).
    pub rule: String,
    pub enrollment: Option<EnrollmentId>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    LegalRepresentativeChange,
    ClosureNotice,
}

impl EventKind {
    pub fn code(self) -> &'static str {
        match self {
            EventKind::LegalRepresentativeChange => "legal_representative_change",
            EventKind::ClosureNotice => "closure_notice",
        }
    }

    /// The kinds the engine reads; other institution events are not risk
    /// evidence.
    pub fn from_code(code: &str) -> Option<EventKind> {
        match code {
            "legal_representative_change" => Some(EventKind::LegalRepresentativeChange),
            "closure_notice" => Some(EventKind::ClosureNotice),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstitutionEvent {
    pub kind: EventKind,
    pub date: NaiveDate,
}
