//! The run-off risk engine (DESIGN.md, "Run-off risk signals"): pure
//! functions from one institution's snapshot on one day ([`RiskInput`]) to
//! the signals it shows, each with its evidence and rule pack version, a
//! score, and a jurisdiction's ranking.
//!
//! What every signal obeys:
//! - thresholds come from the resolved rule pack; a threshold the pack
//!   leaves unset turns that check off (bureau presets), it never defaults;
//! - bank-confirmed figures come first: balances are the banks' closings,
//!   never the ledger's idea of them; missing bank data is a finding (feed
//!   silence) and the checks that need it are listed in `not_evaluated`,
//!   never computed on a zero;
//! - nothing dated after `as_of` counts, so a signal fires on the first day
//!   its evidence exists and not the day before;
//! - thresholds are compared exactly on integers (cross-multiplied in
//!   `i128`); percentages in summaries are display only.

pub mod confirmations;
pub mod coverage;
mod duties;
mod flows;
mod funds;
mod input;
mod leading;
mod leaving;
pub mod schedule;
pub mod snapshot;
mod text;

use std::collections::BTreeMap;

use chrono::{Days, NaiveDate};
use serde::Serialize;

pub use confirmations::{ConfirmationFacts, ReleaseAsk};
pub use input::{
    BalanceMismatch, BankLine, CapFlag, Closing, DayFigures, EntryRef, EventKind, FamilyCounts,
    InstitutionEvent, LedgerFigures, PackageCounts, PeerStat, Peers, PendingInstruction,
    RefundRequest, ReleaseFinding, ReleaseIssue, RiskInput, SupervisedAccount,
};
pub use leading::{peer_figures, peer_stats, PeerFigures};
pub use leaving::family_counts;
pub use text::{amount as format_amount, percent as format_percent};

use crate::domain::feeds::AccountKind;
use crate::domain::ids::{EnrollmentId, InstitutionId, JurisdictionCode};
use crate::domain::money::Currency;
use crate::domain::policy::RuleParams;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SignalKind {
    Shortfall,
    UnauthorizedOutflow,
    DepositBelowFloor,
    BalanceMismatch,
    DivertedCollection,
    CollectionSpike,
    ReleaseAheadOfDelivery,
    DeliveryStall,
    RefundBacklog,
    CapBreach,
    OutflowWarning,
    FeedSilence,
    InstitutionEvent,
    ConfirmationRateFalling,
    DisputesRising,
    DeemedCrowdingOut,
    LessonsAheadOfTimetable,
    ReleaseBeyondEarned,
    LiabilityMonths,
    InstructionUnexecuted,
    FamiliesLeaving,
    Escalation,
}

impl SignalKind {
    pub const ALL: [SignalKind; 22] = [
        SignalKind::Shortfall,
        SignalKind::UnauthorizedOutflow,
        SignalKind::DepositBelowFloor,
        SignalKind::BalanceMismatch,
        SignalKind::DivertedCollection,
        SignalKind::CollectionSpike,
        SignalKind::ReleaseAheadOfDelivery,
        SignalKind::DeliveryStall,
        SignalKind::RefundBacklog,
        SignalKind::CapBreach,
        SignalKind::OutflowWarning,
        SignalKind::FeedSilence,
        SignalKind::InstitutionEvent,
        SignalKind::ConfirmationRateFalling,
        SignalKind::DisputesRising,
        SignalKind::DeemedCrowdingOut,
        SignalKind::LessonsAheadOfTimetable,
        SignalKind::ReleaseBeyondEarned,
        SignalKind::LiabilityMonths,
        SignalKind::InstructionUnexecuted,
        SignalKind::FamiliesLeaving,
        SignalKind::Escalation,
    ];

    pub fn code(self) -> &'static str {
        match self {
            SignalKind::Shortfall => "shortfall",
            SignalKind::UnauthorizedOutflow => "unauthorized_outflow",
            SignalKind::DepositBelowFloor => "deposit_below_floor",
            SignalKind::BalanceMismatch => "balance_mismatch",
            SignalKind::DivertedCollection => "diverted_collection",
            SignalKind::CollectionSpike => "collection_spike",
            SignalKind::ReleaseAheadOfDelivery => "release_ahead_of_delivery",
            SignalKind::DeliveryStall => "delivery_stall",
            SignalKind::RefundBacklog => "refund_backlog",
            SignalKind::CapBreach => "cap_breach",
            SignalKind::OutflowWarning => "outflow_warning",
            SignalKind::FeedSilence => "feed_silence",
            SignalKind::InstitutionEvent => "institution_event",
            SignalKind::ConfirmationRateFalling => "confirmation_rate_falling",
            SignalKind::DisputesRising => "disputes_rising",
            SignalKind::DeemedCrowdingOut => "deemed_crowding_out",
            SignalKind::LessonsAheadOfTimetable => "lessons_ahead_of_timetable",
            SignalKind::ReleaseBeyondEarned => "release_beyond_earned",
            SignalKind::LiabilityMonths => "liability_months",
            SignalKind::InstructionUnexecuted => "instruction_unexecuted",
            SignalKind::FamiliesLeaving => "families_leaving",
            SignalKind::Escalation => "escalation",
        }
    }
}

pub use crate::domain::alerts::Severity;

/// One piece of evidence behind a signal, typed so that the API and the
/// dashboard can link it (entries, bank lines) or show it (figures).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Evidence {
    /// A figure in minor units of the institution's currency.
    Amount {
        name: &'static str,
        minor: i128,
    },
    /// A ratio in basis points (10000 = 100%), rounded down.
    Ratio {
        name: &'static str,
        bp: i128,
    },
    Count {
        name: &'static str,
        value: u64,
    },
    Date {
        name: &'static str,
        date: NaiveDate,
    },
    /// A threshold of the rule pack, in the unit its name ends with.
    Rule {
        name: &'static str,
        value: i64,
    },
    Entry {
        entry: EntryRef,
    },
    BankLine {
        line: BankLine,
    },
    Account {
        kind: AccountKind,
        account_no: String,
    },
    Mismatch {
        mismatch: BalanceMismatch,
    },
    Release {
        finding: ReleaseFinding,
    },
    Refund {
        request: RefundRequest,
        /// `unanswered` or `unpaid`.
        overdue: &'static str,
        deadline: NaiveDate,
    },
    CapFlag {
        flag: CapFlag,
    },
    Event {
        event: InstitutionEvent,
    },
    Enrollment {
        id: EnrollmentId,
    },
    /// An instruction of ours the bank had not executed by its deadline.
    Instruction {
        instruction: PendingInstruction,
        deadline: NaiveDate,
    },
    /// One of the signs an escalation combines, as that signal said it.
    Sign {
        kind: SignalKind,
        severity: Severity,
        key: String,
        summary: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Signal {
    pub kind: SignalKind,
    pub severity: Severity,
    /// Identifies the condition across runs (e.g. `unauthorized_outflow:L-9`),
    /// so the same condition tomorrow updates its open alert.
    pub key: String,
    /// A sentence an officer can act on, with the figures.
    pub summary: String,
    pub evidence: Vec<Evidence>,
    /// The rule pack version chain the thresholds came from.
    pub rule_pack: String,
}

/// A check that could not run, and why (missing data, a short history).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NotEvaluated {
    pub kind: SignalKind,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Assessment {
    pub institution: InstitutionId,
    pub name: String,
    pub jurisdiction: JurisdictionCode,
    pub as_of: NaiveDate,
    /// Coverage in basis points ([`coverage`]: the banks' closings less
    /// releases in flight over what families are owed, rounded down);
    /// `None` when nothing is owed or the banks have not confirmed it.
    pub coverage_bp: Option<i128>,
    /// 0 (nothing found) to 100; see [`score`].
    pub score: u32,
    /// Red first, then by kind, then by key.
    pub signals: Vec<Signal>,
    pub not_evaluated: Vec<NotEvaluated>,
}

/// The points one kind of signal adds to the score at a severity. A
/// shortfall and an unauthorized outflow are money already gone, so they
/// weigh more than the signs that it may go.
pub fn weight(kind: SignalKind, severity: Severity) -> u32 {
    match (kind, severity) {
        (SignalKind::Shortfall | SignalKind::UnauthorizedOutflow, Severity::Red) => 60,
        (SignalKind::Shortfall | SignalKind::UnauthorizedOutflow, Severity::Yellow) => 20,
        (_, Severity::Red) => 40,
        (_, Severity::Yellow) => 10,
    }
}

/// The risk score: each kind of signal counts once, at its worst severity
/// (so ten single-debit warnings do not outweigh one shortfall), the
/// weights of [`weight`] are added, and the sum is capped at 100.
pub fn score(signals: &[Signal]) -> u32 {
    let mut worst: BTreeMap<SignalKind, Severity> = BTreeMap::new();
    for s in signals {
        let e = worst.entry(s.kind).or_insert(s.severity);
        *e = (*e).max(s.severity);
    }
    worst
        .into_iter()
        .map(|(kind, severity)| weight(kind, severity))
        .sum::<u32>()
        .min(100)
}

/// Evaluates every signal of DESIGN.md for one institution on one day,
/// against the peers the snapshot carries.
pub fn evaluate(input: &RiskInput) -> Assessment {
    evaluate_before_peers(input).with_peers(input.peers.as_ref())
}

/// An institution's assessment before the checks that compare it with its
/// peers (the collection spike, liability months, families leaving) and the escalation that
/// reads them: every other check done, and the few figures those need.
/// A scan that must see every peer before it can judge one (a streamed
/// national scan) keeps this instead of the snapshot.
#[derive(Debug, Clone)]
pub struct BeforePeers {
    institution: InstitutionId,
    name: String,
    jurisdiction: JurisdictionCode,
    as_of: NaiveDate,
    coverage_bp: Option<i128>,
    out: Out,
    rules: leading::PeerRules,
    currency: Currency,
    spike: Option<flows::SpikeFigures>,
    liability: Option<leading::LiabilityFigures>,
    leaving: Option<leaving::LeavingFigures>,
    packages: PackageCounts,
}

/// Every check of [`evaluate`] that needs no peers.
pub fn evaluate_before_peers(input: &RiskInput) -> BeforePeers {
    let ctx = Ctx::new(input);
    let mut out = Out {
        signals: Vec::new(),
        not_evaluated: Vec::new(),
        rule_pack: input.rules.version.clone(),
    };
    funds::shortfall(&ctx, &mut out);
    funds::deposit_below_floor(&ctx, &mut out);
    funds::unauthorized_outflow(&ctx, &mut out);
    funds::balance_mismatch(&ctx, &mut out);
    funds::outflow_warning(&ctx, &mut out);
    flows::diverted_collection(&ctx, &mut out);
    // Judged with the peers; a history too short is said here, in order.
    let spike = match flows::SpikeFigures::of(&ctx) {
        Some(Ok(figures)) => Some(figures),
        Some(Err(reason)) => {
            out.skip(SignalKind::CollectionSpike, reason);
            None
        }
        None => None,
    };
    flows::release_ahead_of_delivery(&ctx, &mut out);
    flows::delivery_stall(&ctx, &mut out);
    duties::refund_backlog(&ctx, &mut out);
    duties::cap_breach(&ctx, &mut out);
    duties::feed_silence(&ctx, &mut out);
    duties::institution_event(&ctx, &mut out);
    confirmations::evaluate(&ctx, &mut out);
    leading::instruction_unexecuted(&ctx, &mut out);
    BeforePeers {
        institution: input.institution.id.clone(),
        name: input.institution.name.clone(),
        jurisdiction: input.institution.jurisdiction.clone(),
        as_of: input.as_of,
        coverage_bp: coverage::coverage(input)
            .ok()
            .and_then(|c| c.basis_points()),
        out,
        rules: leading::PeerRules::of(ctx.p),
        currency: ctx.currency,
        spike,
        liability: leading::LiabilityFigures::of(&ctx),
        leaving: leaving::LeavingFigures::of(&ctx),
        packages: input.packages,
    }
}

impl BeforePeers {
    /// The figures this institution adds to its peers' statistics: the
    /// same as [`peer_figures`] of its snapshot.
    pub fn peer_figures(&self) -> PeerFigures {
        PeerFigures::of(
            self.spike.as_ref(),
            self.liability.as_ref(),
            self.leaving.as_ref(),
            self.packages,
            &self.rules,
        )
    }

    /// The assessment, the peers' statistics given (`None`: judged alone).
    /// Each check adds at most one signal of its own kind, and the
    /// escalation counts kinds, so judging these three last changes nothing.
    pub fn with_peers(self, peers: Option<&Peers>) -> Assessment {
        let mut out = self.out;
        if let Some(f) = &self.spike {
            flows::collection_spike(f, &self.rules, self.currency, peers, &mut out);
        }
        if let Some(f) = &self.liability {
            leading::liability_months(f, &self.rules, self.currency, peers, &mut out);
        }
        if let Some(f) = &self.leaving {
            leaving::families_leaving(f, &self.rules, peers, &mut out);
        }
        // Last: it reads what the others found.
        leading::escalation(self.rules.escalation_min_signs, &mut out);

        let mut signals = out.signals;
        signals.sort_by(|a, b| (b.severity, a.kind, &a.key).cmp(&(a.severity, b.kind, &b.key)));
        Assessment {
            institution: self.institution,
            name: self.name,
            jurisdiction: self.jurisdiction,
            as_of: self.as_of,
            coverage_bp: self.coverage_bp,
            score: score(&signals),
            signals,
            not_evaluated: out.not_evaluated,
        }
    }
}

/// A jurisdiction's institutions, riskiest first: score descending, then
/// institution id ascending (so equal scores list in a stable order).
pub fn rank(mut assessments: Vec<Assessment>) -> Vec<Assessment> {
    assessments.sort_by(|a, b| {
        b.score
            .cmp(&a.score)
            .then_with(|| a.institution.cmp(&b.institution))
    });
    assessments
}

/// A run of days, both ends included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Window {
    first: NaiveDate,
    last: NaiveDate,
    days: u32,
}

impl Window {
    /// The `days` days ending on `last`.
    fn ending(last: NaiveDate, days: u32) -> Option<Window> {
        let first = last.checked_sub_days(Days::new(u64::from(days.checked_sub(1)?)))?;
        Some(Window { first, last, days })
    }

    fn contains(&self, day: NaiveDate) -> bool {
        self.first <= day && day <= self.last
    }

    /// The engine's two windows ending on `as_of`, as the rule pack sets
    /// them: `lookback_days` ending on it (recent), and `baseline_days`
    /// ending the day before that starts (none without the recent one).
    fn of_engine(as_of: NaiveDate, p: &RuleParams) -> (Option<Window>, Option<Window>) {
        let recent = p.lookback_days.and_then(|days| Window::ending(as_of, days));
        let baseline = match (recent, p.baseline_days) {
            (Some(r), Some(days)) => r
                .first
                .pred_opt()
                .and_then(|last| Window::ending(last, days)),
            _ => None,
        };
        (recent, baseline)
    }
}

/// What every check reads: the input, its rules and the windows.
struct Ctx<'a> {
    input: &'a RiskInput,
    p: &'a RuleParams,
    as_of: NaiveDate,
    currency: Currency,
    /// `lookback_days` ending on `as_of`.
    recent: Option<Window>,
    /// `baseline_days` ending the day before `recent` starts.
    baseline: Option<Window>,
}

impl<'a> Ctx<'a> {
    fn new(input: &'a RiskInput) -> Self {
        let p = &input.rules.params;
        let (recent, baseline) = Window::of_engine(input.as_of, p);
        Ctx {
            input,
            p,
            as_of: input.as_of,
            currency: input.institution.currency,
            recent,
            baseline,
        }
    }

    fn money(&self, minor: i64) -> String {
        text::amount(minor, self.currency)
    }

    fn money_wide(&self, minor: i128) -> String {
        text::amount_wide(minor, self.currency)
    }

    /// Sums one daily figure over a window (in `i128`: no overflow).
    fn sum(&self, window: Window, figure: impl Fn(&DayFigures) -> i128) -> i128 {
        self.input
            .days
            .iter()
            .filter(|d| window.contains(d.date) && d.date <= self.as_of)
            .map(figure)
            .sum()
    }

    /// The baseline clipped to the history (see `leading::own_baseline`).
    fn own_baseline(&self) -> Option<Window> {
        leading::own_baseline(self)
    }

    /// Whether the ledger's history reaches back over the whole window.
    fn knows(&self, window: Window) -> bool {
        self.input.history_from <= window.first
    }

    fn mode_requires(&self, kind: AccountKind) -> bool {
        coverage::mode_requires(self.input.institution.mode, kind)
    }

    /// The bank-confirmed balance of one kind of account: the sum of each
    /// account's latest closing on or before `as_of`.
    fn confirmed(&self, kind: AccountKind) -> Confirmed {
        let mut total: i128 = 0;
        let mut any = false;
        for account in self.input.accounts.iter().filter(|a| a.kind == kind) {
            any = true;
            match latest_closing(account, self.as_of) {
                Some(c) => total += i128::from(c.balance_minor),
                None => return Confirmed::Missing(account.account_no.clone()),
            }
        }
        if any {
            Confirmed::Known { total }
        } else {
            Confirmed::NoAccount
        }
    }
}

enum Confirmed {
    Known {
        total: i128,
    },
    /// No account of this kind is on file.
    NoAccount,
    /// This account has no closing on or before `as_of`.
    Missing(String),
}

pub(crate) fn latest_closing(account: &SupervisedAccount, as_of: NaiveDate) -> Option<Closing> {
    account
        .closings
        .iter()
        .filter(|c| c.date <= as_of)
        .max_by_key(|c| c.date)
        .copied()
}

/// Where the checks put what they find.
#[derive(Debug, Clone)]
struct Out {
    signals: Vec<Signal>,
    not_evaluated: Vec<NotEvaluated>,
    rule_pack: String,
}

impl Out {
    fn signal(
        &mut self,
        kind: SignalKind,
        severity: Severity,
        key: String,
        summary: String,
        evidence: Vec<Evidence>,
    ) {
        self.signals.push(Signal {
            kind,
            severity,
            key,
            summary,
            evidence,
            rule_pack: self.rule_pack.clone(),
        });
    }

    fn skip(&mut self, kind: SignalKind, reason: String) {
        self.not_evaluated.push(NotEvaluated { kind, reason });
    }
}

/// `a₁ × a₂ × … < b₁ × b₂ × …`, exactly; `None` when a product leaves `i128`
/// (impossible with validated rule packs, reported rather than guessed).
fn less(lhs: &[i128], rhs: &[i128]) -> Option<bool> {
    Some(product(lhs)? < product(rhs)?)
}

fn product(factors: &[i128]) -> Option<i128> {
    factors
        .iter()
        .try_fold(1_i128, |acc, f| acc.checked_mul(*f))
}

fn rule(name: &'static str, value: impl Into<i64>) -> Evidence {
    Evidence::Rule {
        name,
        value: value.into(),
    }
}
