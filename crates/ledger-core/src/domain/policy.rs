//! Rule packs: the supervision rules of a jurisdiction as data, effective
//! from a date, inherited down the jurisdiction tree (national defaults, then
//! province, city, county overrides), and the charge-cap checks they drive.

mod calendar;
pub mod floors;

use chrono::{Months, NaiveDate};
use serde::{Deserialize, Serialize};

use crate::domain::error::LedgerError;
use crate::domain::ids::JurisdictionCode;
use crate::domain::registry::{Category, Enrollment};
pub use calendar::Calendar;

/// What a breached cap does to the charge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CapAction {
    /// The charge is refused (`charge_exceeds_cap`).
    Reject,
    /// The charge is booked and the breach recorded on the entry.
    Flag,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cap<T> {
    pub limit: T,
    pub action: CapAction,
}

/// The parameters one rule pack sets; `None` inherits from the parent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleParams {
    /// Months of teaching one charge may cover (course start to end).
    pub max_months_per_charge: Option<Cap<u32>>,
    /// Class hours one charge may cover, bonus hours included.
    pub max_hours_per_charge: Option<Cap<u32>>,
    /// Largest single charge in minor units.
    pub max_amount_per_charge_minor: Option<Cap<i64>>,
    /// Whether the amount cap also binds subject training (many places do).
    pub amount_cap_applies_to_subject: Option<bool>,
    /// Earliest charge: at most this many months before the course starts.
    pub earliest_charge_months_before_start: Option<Cap<u32>>,
    /// The risk deposit must cover this many months of fees.
    pub deposit_floor_months: Option<u32>,

    // Risk thresholds (domain/risk.rs). Ratios are basis points (10000 =
    // 100%) or whole percents, amounts minor units, spans days: no floats.
    /// Windows: the recent window (`lookback_days`, ending on the day
    /// assessed) and the baseline window just before it (`baseline_days`).
    pub lookback_days: Option<u32>,
    pub baseline_days: Option<u32>,
    /// Shortfall: bank-confirmed escrow + deposit must cover at least this
    /// share of what families are owed (10000: all of it) ...
    pub coverage_min_bp: Option<u32>,
    /// ... and below this share the shortfall is red.
    pub coverage_red_bp: Option<u32>,
    /// Minimum balance as a share of the last 12 months' collections.
    pub min_balance_share_bp: Option<u32>,
    /// Minimum balance as a fixed amount set by the bureau (the larger of
    /// the two minimums applies).
    pub min_balance_fixed_minor: Option<i64>,
    /// Deposit below floor turns red below this share of the floor.
    pub deposit_floor_red_bp: Option<u32>,
    /// Diverted collection: reported sales may take this many days to
    /// arrive in escrow ...
    pub diverted_grace_days: Option<u32>,
    /// ... and a missing share above this is yellow ...
    pub diverted_tolerance_bp: Option<u32>,
    /// ... above this red.
    pub diverted_red_bp: Option<u32>,
    /// Collection spike: the recent daily rate of collections at least this
    /// percentage of the baseline daily rate (300: three times).
    pub collection_spike_multiple_pct: Option<u32>,
    /// Collection spike: the share of packages sold at the caps rose by at
    /// least this many basis points over the baseline ...
    pub cap_share_spike_bp: Option<u32>,
    /// ... counted only once this many packages were sold recently.
    pub cap_share_min_packages: Option<u32>,
    /// ... and a rise of the share of packages sold at the caps
    /// counts only when it is this many tenths of a standard error above
    /// chance (a two-proportion z-score: 40 is z ≥ 4), so that the share
    /// of a few dozen packages, which wanders by chance, is not a spike.
    /// The bar is high because the test is made every day on every
    /// school: over a term's thousands of tests, z ≥ 3 (one in 740 by
    /// chance) still flagged healthy schools; a pre-sell drive of 16 of 20
    /// packages at the caps against a quarter is z ≈ 5.7.
    #[serde(default)]
    pub cap_share_min_z_tenths: Option<u32>,
    /// Delivery stall: the recent daily rate of consumed hours fell by at
    /// least this percentage of the baseline rate.
    pub delivery_stall_drop_pct: Option<u32>,
    /// Refunds: a request unanswered this many working days is overdue (and
    /// deemed agreed) ...
    pub refund_answer_working_days: Option<u32>,
    /// ... and an approved (or deemed agreed) refund unpaid this many
    /// working days after approval is overdue.
    pub refund_pay_working_days: Option<u32>,
    /// Outflow warning: bank debits over this many days ...
    pub outflow_period_days: Option<u32>,
    /// ... above this amount are yellow ...
    pub outflow_period_yellow_minor: Option<i64>,
    /// ... above this one red.
    pub outflow_period_red_minor: Option<i64>,
    /// Outflow warning: one debit above this share of the balance before it.
    pub single_debit_share_bp: Option<u32>,
    /// Feed silence: no statement for more than this many days is yellow ...
    pub feed_silence_days: Option<u32>,
    /// ... for more than this many red.
    pub feed_silence_red_days: Option<u32>,
    /// Public holidays, for working-day deadlines (refunds); a pack that
    /// sets the list replaces its parent's whole.
    pub holidays: Option<Vec<NaiveDate>>,
    /// Weekend days worked instead of a holiday (调休), likewise.
    pub makeup_working_days: Option<Vec<NaiveDate>>,
    /// Maker–checker: a refund above this many minor units needs a second,
    /// different officer's approval (none set: one officer decides).
    #[serde(default)]
    pub refund_two_officers_above_minor: Option<i64>,
    /// Lessons recorded and not answered by the family within this many
    /// working days are deemed confirmed (15 nationally, 7 in places).
    pub lesson_confirm_working_days: Option<u32>,
    /// When confirmed earnings are released (per lesson, weekly, or N
    /// working days after confirmation).
    pub release_cadence: Option<crate::domain::lessons::ReleaseCadence>,
    /// Kept in escrow beyond what families are owed: this share of unearned
    /// tuition (basis points) is never released.
    pub release_reserve_bp: Option<u32>,
    /// Risk (families' answers): rates are judged over at least this many
    /// lesson records.
    #[serde(default)]
    pub confirmation_min_records: Option<u32>,
    /// The share of records families confirm themselves falling this far
    /// (basis points) below its baseline is a signal.
    #[serde(default)]
    pub confirmation_rate_drop_bp: Option<u32>,
    /// More than this share of the records recorded recently disputed.
    #[serde(default)]
    pub dispute_rate_max_bp: Option<u32>,
    /// More than this share of the records earned recently deemed
    /// confirmed by silence.
    #[serde(default)]
    pub deemed_share_max_bp: Option<u32>,
    /// Hours recorded beyond what the enrollment's timetable allows this
    /// many days later.
    #[serde(default)]
    pub lessons_ahead_days: Option<u32>,
    /// Open manual release requests beyond confirmed, unreleased earnings
    /// plus this share of them (0: any excess).
    #[serde(default)]
    pub release_request_excess_bp: Option<u32>,

    // Detection (issue 15; DETECTION.md says how each was measured).
    /// Deposit below floor: the institution has this many days to top its
    /// deposit up after its fees rise (the floor is the lower of today's
    /// and the one this many days ago).
    #[serde(default)]
    pub deposit_topup_grace_days: Option<u32>,
    /// Release ahead of delivery: consumption counts as ahead of an
    /// enrollment's schedule only beyond this percentage of the even pace
    /// (200: twice as fast; intensive courses teach twice a week).
    #[serde(default)]
    pub schedule_pace_max_pct: Option<u32>,
    /// Release ahead of delivery: more class hours than this recorded for
    /// one enrollment on one day is beyond any timetable.
    #[serde(default)]
    pub max_hours_per_enrollment_day: Option<u32>,
    /// Collection spike against peers: the multiple must also exceed the
    /// peers' median by this many median absolute deviations.
    #[serde(default)]
    pub peer_mad_multiple: Option<u32>,
    /// Instruction unexecuted: a release, refund or deposit-return
    /// instruction the bank has not executed this many working days after
    /// it was sent, while its statements run past that day.
    #[serde(default)]
    pub instruction_execute_working_days: Option<u32>,
    /// Liability months: unearned tuition above this many months (bp) of the
    /// recent delivery rate is yellow (and, with peers, above twice their
    /// median) ...
    #[serde(default)]
    pub liability_months_max_bp: Option<u32>,
    /// ... and, with peers, below this percentage of their median is yellow
    /// too (consumption reported far faster than peers teach).
    #[serde(default)]
    pub liability_peer_low_pct: Option<u32>,
    /// Peers: figures of at least this many peers are compared with.
    #[serde(default)]
    pub peer_min_count: Option<u32>,
    /// Escalation: this many independent signs at once (yellow or red,
    /// different kinds among the leading ones) make a red escalation.
    #[serde(default)]
    pub escalation_min_signs: Option<u32>,
    /// Refund backlog: this many families' refund requests unanswered past
    /// `refund_answer_working_days` at once are red, not yellow: one can be
    /// a slip of the office, several are refunds refused by silence.
    #[serde(default)]
    pub refund_unanswered_red_count: Option<u32>,
    /// Families leaving: the share of families expected to ask for their
    /// money back in a recent window is never taken below this (bp), so that
    /// peers who saw nobody leave this month do not make one family a run.
    #[serde(default)]
    pub families_leaving_floor_bp: Option<u32>,
    /// ... at least this many families must have asked ...
    #[serde(default)]
    pub families_leaving_min_count: Option<u32>,
    /// ... and their share must stand this many tenths of a standard error
    /// above the expected share (the highest of the floor, the own baseline
    /// and the peers' median).
    #[serde(default)]
    pub families_leaving_min_z_tenths: Option<u32>,
}

impl RuleParams {
    /// The national floors (2021 rules), the root of every inheritance chain.
    pub fn national_defaults() -> Self {
        RuleParams {
            max_months_per_charge: Some(Cap {
                limit: 3,
                action: CapAction::Reject,
            }),
            max_hours_per_charge: Some(Cap {
                limit: 60,
                action: CapAction::Reject,
            }),
            max_amount_per_charge_minor: Some(Cap {
                limit: 500_000,
                action: CapAction::Reject,
            }),
            amount_cap_applies_to_subject: Some(false),
            earliest_charge_months_before_start: None,
            deposit_floor_months: Some(3),
            lookback_days: Some(30),
            baseline_days: Some(90),
            coverage_min_bp: Some(10_000),
            coverage_red_bp: Some(8_000),
            min_balance_share_bp: Some(500),
            // A fixed minimum and outflow presets are set by a bureau, never
            // nationally: there is no amount that fits every institution.
            min_balance_fixed_minor: None,
            deposit_floor_red_bp: Some(5_000),
            diverted_grace_days: Some(3),
            diverted_tolerance_bp: Some(200),
            diverted_red_bp: Some(2_000),
            collection_spike_multiple_pct: Some(200),
            cap_share_spike_bp: Some(2_000),
            cap_share_min_z_tenths: Some(40),
            cap_share_min_packages: Some(20),
            delivery_stall_drop_pct: Some(50),
            refund_answer_working_days: Some(5),
            refund_pay_working_days: Some(15),
            outflow_period_days: Some(30),
            outflow_period_yellow_minor: None,
            outflow_period_red_minor: None,
            single_debit_share_bp: Some(1_000),
            feed_silence_days: Some(3),
            feed_silence_red_days: Some(7),
            // Weekends only, until a pack names its holidays.
            holidays: None,
            makeup_working_days: None,
            refund_two_officers_above_minor: None,
            lesson_confirm_working_days: Some(15),
            release_cadence: Some(crate::domain::lessons::ReleaseCadence::Weekly),
            release_reserve_bp: None,
            confirmation_min_records: Some(10),
            confirmation_rate_drop_bp: Some(2_000),
            dispute_rate_max_bp: Some(1_000),
            deemed_share_max_bp: Some(5_000),
            lessons_ahead_days: Some(14),
            release_request_excess_bp: Some(0),
            deposit_topup_grace_days: Some(7),
            schedule_pace_max_pct: Some(300),
            max_hours_per_enrollment_day: Some(4),
            peer_mad_multiple: Some(3),
            instruction_execute_working_days: Some(3),
            liability_months_max_bp: Some(30_000),
            liability_peer_low_pct: Some(40),
            peer_min_count: Some(5),
            escalation_min_signs: Some(2),
            refund_unanswered_red_count: Some(3),
            // About one family in a hundred leaves a school in a month for
            // its own reasons; three at least, four standard errors above.
            families_leaving_floor_bp: Some(100),
            families_leaving_min_count: Some(3),
            families_leaving_min_z_tenths: Some(40),
        }
    }

    /// The working-day calendar these rules set (weekends, the holidays,
    /// the make-up working days).
    pub fn calendar(&self) -> Result<Calendar, LedgerError> {
        Calendar::new(
            self.holidays.clone().unwrap_or_default(),
            self.makeup_working_days.clone().unwrap_or_default(),
        )
    }

    fn overlay(&mut self, child: &RuleParams) {
        macro_rules! take {
            ($($field:ident),+) => { $( if child.$field.is_some() { self.$field = child.$field; } )+ };
        }
        take!(
            max_months_per_charge,
            max_hours_per_charge,
            max_amount_per_charge_minor,
            amount_cap_applies_to_subject,
            earliest_charge_months_before_start,
            deposit_floor_months,
            lookback_days,
            baseline_days,
            coverage_min_bp,
            coverage_red_bp,
            min_balance_share_bp,
            min_balance_fixed_minor,
            deposit_floor_red_bp,
            diverted_grace_days,
            diverted_tolerance_bp,
            diverted_red_bp,
            collection_spike_multiple_pct,
            cap_share_spike_bp,
            cap_share_min_z_tenths,
            cap_share_min_packages,
            delivery_stall_drop_pct,
            refund_answer_working_days,
            refund_pay_working_days,
            outflow_period_days,
            outflow_period_yellow_minor,
            outflow_period_red_minor,
            single_debit_share_bp,
            feed_silence_days,
            feed_silence_red_days,
            refund_two_officers_above_minor,
            lesson_confirm_working_days,
            release_cadence,
            release_reserve_bp,
            confirmation_min_records,
            confirmation_rate_drop_bp,
            dispute_rate_max_bp,
            deemed_share_max_bp,
            lessons_ahead_days,
            release_request_excess_bp,
            deposit_topup_grace_days,
            schedule_pace_max_pct,
            max_hours_per_enrollment_day,
            peer_mad_multiple,
            instruction_execute_working_days,
            liability_months_max_bp,
            liability_peer_low_pct,
            peer_min_count,
            escalation_min_signs,
            refund_unanswered_red_count,
            families_leaving_floor_bp,
            families_leaving_min_count,
            families_leaving_min_z_tenths
        );
        if child.holidays.is_some() {
            self.holidays.clone_from(&child.holidays);
        }
        if child.makeup_working_days.is_some() {
            self.makeup_working_days
                .clone_from(&child.makeup_working_days);
        }
    }

    pub fn validate(&self) -> Result<(), LedgerError> {
        let bad = |reason: &str| LedgerError::InvalidRulePack {
            reason: reason.to_string(),
        };
        if let Err(LedgerError::InvalidField { reason, .. }) = self.calendar() {
            return Err(bad(&reason));
        }
        if matches!(self.max_months_per_charge, Some(c) if c.limit == 0) {
            return Err(bad("max_months_per_charge must be positive"));
        }
        if matches!(self.max_hours_per_charge, Some(c) if c.limit == 0) {
            return Err(bad("max_hours_per_charge must be positive"));
        }
        if matches!(self.max_amount_per_charge_minor, Some(c) if c.limit <= 0) {
            return Err(bad("max_amount_per_charge_minor must be positive"));
        }
        // Spans are bounded so that the risk engine's exact rational
        // comparisons (i128) can never overflow: ten years of days.
        for (name, days) in [
            ("lookback_days", self.lookback_days),
            ("baseline_days", self.baseline_days),
            ("outflow_period_days", self.outflow_period_days),
        ] {
            if matches!(days, Some(d) if d == 0 || d > 3_660) {
                return Err(bad(&format!("{name} must be 1 to 3660")));
            }
        }
        for (name, bp) in [
            ("coverage_min_bp", self.coverage_min_bp),
            ("coverage_red_bp", self.coverage_red_bp),
            ("min_balance_share_bp", self.min_balance_share_bp),
            ("deposit_floor_red_bp", self.deposit_floor_red_bp),
            ("diverted_tolerance_bp", self.diverted_tolerance_bp),
            ("diverted_red_bp", self.diverted_red_bp),
            ("cap_share_spike_bp", self.cap_share_spike_bp),
            ("single_debit_share_bp", self.single_debit_share_bp),
        ] {
            if matches!(bp, Some(b) if b == 0 || b > 1_000_000) {
                return Err(bad(&format!("{name} must be 1 to 1000000 basis points")));
            }
        }
        if matches!(self.lesson_confirm_working_days, Some(n) if n == 0 || n > 366) {
            return Err(bad("lesson_confirm_working_days must be 1 to 366"));
        }
        if matches!(
            self.release_cadence,
            Some(crate::domain::lessons::ReleaseCadence::WorkingDaysAfterConfirmation(n)) if n > 366
        ) {
            return Err(bad(
                "release_cadence: working_days_after_confirmation must be 0 to 366",
            ));
        }
        for (name, bp) in [
            ("confirmation_rate_drop_bp", self.confirmation_rate_drop_bp),
            ("dispute_rate_max_bp", self.dispute_rate_max_bp),
            ("deemed_share_max_bp", self.deemed_share_max_bp),
        ] {
            if matches!(bp, Some(b) if b == 0 || b > 10_000) {
                return Err(bad(&format!("{name} must be 1 to 10000 basis points")));
            }
        }
        if matches!(self.release_request_excess_bp, Some(b) if b > 10_000) {
            return Err(bad(
                "release_request_excess_bp must be 0 to 10000 basis points",
            ));
        }
        if matches!(self.lessons_ahead_days, Some(d) if d > 3_660) {
            return Err(bad("lessons_ahead_days must be 0 to 3660"));
        }
        if matches!(self.confirmation_min_records, Some(n) if n == 0 || n > 100_000) {
            return Err(bad("confirmation_min_records must be 1 to 100000"));
        }
        if matches!(self.release_reserve_bp, Some(b) if b > 10_000) {
            return Err(bad("release_reserve_bp must be 0 to 10000 basis points"));
        }
        if matches!(self.schedule_pace_max_pct, Some(p) if !(100..=100_000).contains(&p)) {
            return Err(bad("schedule_pace_max_pct must be 100 to 100000"));
        }
        if matches!(self.max_hours_per_enrollment_day, Some(0)) {
            return Err(bad("max_hours_per_enrollment_day must be positive"));
        }
        if matches!(self.cap_share_min_z_tenths, Some(z) if z == 0 || z > 100) {
            return Err(bad("cap_share_min_z_tenths must be 1 to 100"));
        }
        if matches!(self.liability_peer_low_pct, Some(p) if p == 0 || p > 100) {
            return Err(bad("liability_peer_low_pct must be 1 to 100"));
        }
        if matches!(self.escalation_min_signs, Some(n) if n < 2) {
            return Err(bad("escalation_min_signs must be at least 2"));
        }
        if matches!(self.refund_unanswered_red_count, Some(n) if !(2..=1_000).contains(&n)) {
            return Err(bad("refund_unanswered_red_count must be 2 to 1000"));
        }
        if matches!(self.families_leaving_floor_bp, Some(b) if b == 0 || b >= 10_000) {
            return Err(bad(
                "families_leaving_floor_bp must be 1 to 9999 basis points",
            ));
        }
        if matches!(self.families_leaving_min_count, Some(n) if n == 0 || n > 100_000) {
            return Err(bad("families_leaving_min_count must be 1 to 100000"));
        }
        if matches!(self.families_leaving_min_z_tenths, Some(z) if z == 0 || z > 100) {
            return Err(bad("families_leaving_min_z_tenths must be 1 to 100"));
        }
        if matches!(self.deposit_topup_grace_days, Some(d) if d > 366) {
            return Err(bad("deposit_topup_grace_days must be 0 to 366"));
        }
        if matches!(self.instruction_execute_working_days, Some(d) if d == 0 || d > 366) {
            return Err(bad("instruction_execute_working_days must be 1 to 366"));
        }
        if matches!(self.liability_months_max_bp, Some(b) if b == 0 || b > 1_200_000) {
            return Err(bad("liability_months_max_bp must be 1 to 1200000"));
        }
        if matches!(self.delivery_stall_drop_pct, Some(p) if p == 0 || p > 100) {
            return Err(bad("delivery_stall_drop_pct must be 1 to 100"));
        }
        if matches!(self.collection_spike_multiple_pct, Some(p) if p <= 100 || p > 100_000) {
            return Err(bad("collection_spike_multiple_pct must be 101 to 100000"));
        }
        let in_order = |lower: Option<u32>, upper: Option<u32>| match (lower, upper) {
            (Some(l), Some(u)) => l <= u,
            _ => true,
        };
        if !in_order(self.coverage_red_bp, self.coverage_min_bp) {
            return Err(bad("coverage_red_bp must not exceed coverage_min_bp"));
        }
        if !in_order(self.diverted_tolerance_bp, self.diverted_red_bp) {
            return Err(bad("diverted_tolerance_bp must not exceed diverted_red_bp"));
        }
        if !in_order(self.feed_silence_days, self.feed_silence_red_days) {
            return Err(bad(
                "feed_silence_days must not exceed feed_silence_red_days",
            ));
        }
        for (name, minor) in [
            ("min_balance_fixed_minor", self.min_balance_fixed_minor),
            (
                "outflow_period_yellow_minor",
                self.outflow_period_yellow_minor,
            ),
            ("outflow_period_red_minor", self.outflow_period_red_minor),
            (
                "refund_two_officers_above_minor",
                self.refund_two_officers_above_minor,
            ),
        ] {
            if matches!(minor, Some(m) if m <= 0) {
                return Err(bad(&format!("{name} must be positive")));
            }
        }
        if let (Some(y), Some(r)) = (
            self.outflow_period_yellow_minor,
            self.outflow_period_red_minor,
        ) {
            if y > r {
                return Err(bad(
                    "outflow_period_yellow_minor must not exceed outflow_period_red_minor",
                ));
            }
        }
        Ok(())
    }
}

/// One version of a jurisdiction's rule pack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RulePack {
    pub jurisdiction: JurisdictionCode,
    pub version: u32,
    pub effective_from: NaiveDate,
    pub params: RuleParams,
}

/// The rules in force for one institution on one day, and which rule pack
/// versions they came from (recorded on every decision).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResolvedRules {
    pub params: RuleParams,
    /// E.g. `national@builtin>410000@2>410922@1`.
    pub version: String,
}

/// Resolves the rules in force on `day` for a jurisdiction whose ancestry
/// (root first, the jurisdiction itself last) is `chain`, from the rule packs
/// of those jurisdictions (any order, any effective dates).
pub fn resolve(chain: &[JurisdictionCode], packs: &[RulePack], day: NaiveDate) -> ResolvedRules {
    let mut params = RuleParams::national_defaults();
    let mut version = String::from("national@builtin");
    for code in chain {
        let in_force = packs
            .iter()
            .filter(|p| &p.jurisdiction == code && p.effective_from <= day)
            .max_by_key(|p| (p.effective_from, p.version));
        if let Some(pack) = in_force {
            params.overlay(&pack.params);
            version.push_str(&format!(">{}@{}", pack.jurisdiction, pack.version));
        }
    }
    ResolvedRules { params, version }
}

/// A cap the charge breaks but that the rule pack only flags.
pub type Flag = &'static str;

/// Checks one charge (a payment towards `enrollment` on `day`) against the
/// caps. Returns the flags to record, or the first rejecting breach (in the
/// order months, hours, amount, earliest charge).
pub fn check_charge(
    rules: &ResolvedRules,
    enrollment: &Enrollment,
    category: Category,
    day: NaiveDate,
) -> Result<Vec<Flag>, LedgerError> {
    let p = &rules.params;
    let mut flags = Vec::new();
    let mut breach = |rule: Flag, action: CapAction, detail: String| match action {
        CapAction::Reject => Err(LedgerError::ChargeExceedsCap {
            rule,
            rule_pack: rules.version.clone(),
            detail,
        }),
        CapAction::Flag => {
            flags.push(rule);
            Ok(())
        }
    };
    if let Some(cap) = p.max_months_per_charge {
        let limit_end = enrollment
            .course_start
            .checked_add_months(Months::new(cap.limit));
        if limit_end.is_some_and(|end| enrollment.course_end > end) {
            breach(
                "max_months_per_charge",
                cap.action,
                format!(
                    "course runs {} to {}, more than {} months",
                    enrollment.course_start, enrollment.course_end, cap.limit
                ),
            )?;
        }
    }
    if let Some(cap) = p.max_hours_per_charge {
        if enrollment.total_hours() > cap.limit {
            breach(
                "max_hours_per_charge",
                cap.action,
                format!(
                    "{} class hours (bonus included), more than {}",
                    enrollment.total_hours(),
                    cap.limit
                ),
            )?;
        }
    }
    if let Some(cap) = p.max_amount_per_charge_minor {
        let applies =
            category == Category::NonSubject || p.amount_cap_applies_to_subject.unwrap_or(false);
        if applies && enrollment.price.minor() > cap.limit {
            breach(
                "max_amount_per_charge",
                cap.action,
                format!(
                    "price {} minor units, more than {}",
                    enrollment.price.minor(),
                    cap.limit
                ),
            )?;
        }
    }
    if let Some(cap) = p.earliest_charge_months_before_start {
        let earliest = enrollment
            .course_start
            .checked_sub_months(Months::new(cap.limit));
        if earliest.is_some_and(|earliest| day < earliest) {
            breach(
                "earliest_charge",
                cap.action,
                format!(
                    "charged on {day}, more than {} months before the course starts on {}",
                    cap.limit, enrollment.course_start
                ),
            )?;
        }
    }
    Ok(flags)
}

/// Whether a package sells at (or within a tenth of) a cap: class hours
/// or price at least nine tenths of the cap, or a course within ten days of
/// the longest period one charge may cover. A rising share of such
/// packages is how pre-selling before a run-off shows in the contracts.
pub fn at_caps(rules: &ResolvedRules, enrollment: &Enrollment, category: Category) -> bool {
    let p = &rules.params;
    let near = |value: i64, limit: i64| value * 10 >= limit * 9;
    let months = p.max_months_per_charge.is_some_and(|cap| {
        enrollment
            .course_start
            .checked_add_months(Months::new(cap.limit))
            .and_then(|end| end.checked_sub_days(chrono::Days::new(10)))
            .is_some_and(|near_end| enrollment.course_end >= near_end)
    });
    let hours = p
        .max_hours_per_charge
        .is_some_and(|cap| near(i64::from(enrollment.total_hours()), i64::from(cap.limit)));
    let amount = p.max_amount_per_charge_minor.is_some_and(|cap| {
        (category == Category::NonSubject || p.amount_cap_applies_to_subject.unwrap_or(false))
            && near(enrollment.price.minor(), cap.limit)
    });
    months || hours || amount
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_pack_that_names_holidays_replaces_its_parents_and_shapes_working_days() {
        let d = |s: &str| s.parse::<NaiveDate>().unwrap();
        let mut rules = RuleParams::national_defaults();
        rules.overlay(&RuleParams {
            holidays: Some(vec![d("2026-10-01"), d("2026-10-02"), d("2026-10-05")]),
            makeup_working_days: Some(vec![d("2026-10-10")]),
            ..Default::default()
        });
        let cal = rules.calendar().unwrap();
        // Wednesday 30 September + 2 working days: 1, 2 and 5 October are
        // holidays, 3 and 4 a weekend.
        assert_eq!(
            cal.add_working_days(d("2026-09-30"), 2),
            Some(d("2026-10-07"))
        );
        assert!(cal.is_working_day(d("2026-10-10")));
        rules.overlay(&RuleParams {
            holidays: Some(vec![]),
            ..Default::default()
        });
        assert_eq!(
            rules
                .calendar()
                .unwrap()
                .add_working_days(d("2026-09-30"), 2),
            Some(d("2026-10-02"))
        );
        let both = RuleParams {
            holidays: Some(vec![d("2026-10-10")]),
            makeup_working_days: Some(vec![d("2026-10-10")]),
            ..Default::default()
        };
        assert_eq!(both.validate().unwrap_err().code(), "invalid_rule_pack");
    }

    use super::*;
    use crate::domain::ids::{EnrollmentId, InstitutionId};
    use crate::domain::money::{Amount, Currency};

    fn code(c: &str) -> JurisdictionCode {
        JurisdictionCode::parse(c).unwrap()
    }
    fn day(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }
    fn enrollment(price: i64, hours: u32, start: &str, end: &str) -> Enrollment {
        Enrollment {
            institution: InstitutionId::parse("I").unwrap(),
            id: EnrollmentId::parse("E").unwrap(),
            student_ref: "S".into(),
            hours_bought: hours,
            bonus_hours: 0,
            price: Amount::from_minor(price).unwrap(),
            currency: Currency::Cny,
            course_start: day(start),
            course_end: day(end),
        }
    }

    #[track_caller]
    fn check(
        rules: &ResolvedRules,
        e: &Enrollment,
        category: Category,
        on: &str,
        expected: Result<Vec<Flag>, &str>,
    ) {
        let got = check_charge(rules, e, category, day(on));
        match expected {
            Ok(flags) => assert_eq!(got, Ok(flags)),
            Err(rule) => match got {
                Err(LedgerError::ChargeExceedsCap { rule: r, .. }) => assert_eq!(r, rule),
                other => panic!("expected {rule} breach, got {other:?}"),
            },
        }
    }

    #[test]
    fn national_caps_reject_long_large_and_heavy_charges() {
        let rules = resolve(&[code("000000")], &[], day("2026-09-01"));
        let ok = enrollment(500_000, 60, "2026-09-01", "2026-12-01");
        check(&rules, &ok, Category::NonSubject, "2026-08-01", Ok(vec![]));
        let long = enrollment(100_000, 10, "2026-09-01", "2026-12-02");
        check(
            &rules,
            &long,
            Category::Subject,
            "2026-08-01",
            Err("max_months_per_charge"),
        );
        let heavy = enrollment(100_000, 61, "2026-09-01", "2026-10-01");
        check(
            &rules,
            &heavy,
            Category::Subject,
            "2026-08-01",
            Err("max_hours_per_charge"),
        );
        let dear = enrollment(500_001, 10, "2026-09-01", "2026-10-01");
        check(
            &rules,
            &dear,
            Category::NonSubject,
            "2026-08-01",
            Err("max_amount_per_charge"),
        );
        // the amount cap binds only non-subject training nationally
        check(&rules, &dear, Category::Subject, "2026-08-01", Ok(vec![]));
    }

    #[test]
    fn local_packs_override_down_the_tree_from_their_effective_date() {
        let packs = vec![
            RulePack {
                jurisdiction: code("410000"),
                version: 1,
                effective_from: day("2026-01-01"),
                params: RuleParams {
                    amount_cap_applies_to_subject: Some(true),
                    ..Default::default()
                },
            },
            RulePack {
                jurisdiction: code("410922"),
                version: 2,
                effective_from: day("2026-10-01"),
                params: RuleParams {
                    max_amount_per_charge_minor: Some(Cap {
                        limit: 300_000,
                        action: CapAction::Flag,
                    }),
                    earliest_charge_months_before_start: Some(Cap {
                        limit: 1,
                        action: CapAction::Reject,
                    }),
                    ..Default::default()
                },
            },
        ];
        let chain = [
            code("000000"),
            code("410000"),
            code("410900"),
            code("410922"),
        ];
        let before = resolve(&chain, &packs, day("2026-09-30"));
        assert_eq!(before.version, "national@builtin>410000@1");
        let after = resolve(&chain, &packs, day("2026-10-01"));
        assert_eq!(after.version, "national@builtin>410000@1>410922@2");

        let e = enrollment(400_000, 10, "2026-11-01", "2026-12-01");
        check(&before, &e, Category::Subject, "2026-10-15", Ok(vec![]));
        check(
            &after,
            &e,
            Category::Subject,
            "2026-10-15",
            Ok(vec!["max_amount_per_charge"]),
        );
        check(
            &after,
            &e,
            Category::Subject,
            "2026-09-30",
            Err("earliest_charge"),
        );
    }

    #[test]
    fn rule_packs_with_zero_limits_are_invalid() {
        let params = RuleParams {
            max_hours_per_charge: Some(Cap {
                limit: 0,
                action: CapAction::Reject,
            }),
            ..Default::default()
        };
        assert_eq!(
            params.validate().map_err(|e| e.code()),
            Err("invalid_rule_pack")
        );
    }

    #[test]
    fn national_defaults_set_every_risk_threshold_but_the_bureau_presets() {
        let p = RuleParams::national_defaults();
        assert_eq!(p.validate(), Ok(()));
        assert_eq!(p.coverage_min_bp, Some(10_000));
        assert_eq!(p.coverage_red_bp, Some(8_000));
        assert_eq!(p.refund_answer_working_days, Some(5));
        assert_eq!(p.refund_pay_working_days, Some(15));
        assert_eq!(p.min_balance_fixed_minor, None);
        assert_eq!(p.outflow_period_yellow_minor, None);
        assert_eq!(p.outflow_period_red_minor, None);
    }

    #[test]
    fn risk_thresholds_are_inherited_down_the_tree_like_the_caps() {
        let packs = vec![
            RulePack {
                jurisdiction: code("410000"),
                version: 3,
                effective_from: day("2026-01-01"),
                params: RuleParams {
                    refund_answer_working_days: Some(7),
                    outflow_period_yellow_minor: Some(1_000_000),
                    ..Default::default()
                },
            },
            RulePack {
                jurisdiction: code("410922"),
                version: 1,
                effective_from: day("2026-01-01"),
                params: RuleParams {
                    outflow_period_red_minor: Some(5_000_000),
                    ..Default::default()
                },
            },
        ];
        let chain = [code("000000"), code("410000"), code("410922")];
        let rules = resolve(&chain, &packs, day("2026-10-01"));
        assert_eq!(rules.params.refund_answer_working_days, Some(7));
        assert_eq!(rules.params.refund_pay_working_days, Some(15));
        assert_eq!(rules.params.outflow_period_yellow_minor, Some(1_000_000));
        assert_eq!(rules.params.outflow_period_red_minor, Some(5_000_000));
        assert_eq!(rules.params.feed_silence_days, Some(3));
    }

    #[test]
    fn release_cadences_read_as_a_bureau_writes_them() {
        use crate::domain::lessons::ReleaseCadence;
        for (json, cadence) in [
            (r#""per_lesson""#, ReleaseCadence::PerLesson),
            (r#""weekly""#, ReleaseCadence::Weekly),
            (
                r#"{"working_days_after_confirmation": 3}"#,
                ReleaseCadence::WorkingDaysAfterConfirmation(3),
            ),
        ] {
            let params: RuleParams =
                serde_json::from_str(&format!(r#"{{"release_cadence": {json}}}"#)).unwrap();
            assert_eq!(params.release_cadence, Some(cadence));
        }
        assert!(serde_json::from_str::<RuleParams>(r#"{"release_cadence": "monthly"}"#).is_err());
        let national = RuleParams::national_defaults();
        assert_eq!(national.lesson_confirm_working_days, Some(15));
        assert_eq!(national.release_cadence, Some(ReleaseCadence::Weekly));
    }

    #[test]
    fn rule_packs_with_out_of_range_or_inverted_risk_thresholds_are_invalid() {
        #[track_caller]
        fn check(params: RuleParams, reason: &str) {
            match params.validate() {
                Err(LedgerError::InvalidRulePack { reason: r }) => assert_eq!(r, reason),
                other => panic!("expected {reason:?}, got {other:?}"),
            }
        }
        check(
            RuleParams {
                lookback_days: Some(0),
                ..Default::default()
            },
            "lookback_days must be 1 to 3660",
        );
        check(
            RuleParams {
                coverage_min_bp: Some(8_000),
                coverage_red_bp: Some(9_000),
                ..Default::default()
            },
            "coverage_red_bp must not exceed coverage_min_bp",
        );
        check(
            RuleParams {
                delivery_stall_drop_pct: Some(101),
                ..Default::default()
            },
            "delivery_stall_drop_pct must be 1 to 100",
        );
        check(
            RuleParams {
                lesson_confirm_working_days: Some(0),
                ..Default::default()
            },
            "lesson_confirm_working_days must be 1 to 366",
        );
        check(
            RuleParams {
                release_cadence: Some(
                    crate::domain::lessons::ReleaseCadence::WorkingDaysAfterConfirmation(367),
                ),
                ..Default::default()
            },
            "release_cadence: working_days_after_confirmation must be 0 to 366",
        );
        check(
            RuleParams {
                release_reserve_bp: Some(10_001),
                ..Default::default()
            },
            "release_reserve_bp must be 0 to 10000 basis points",
        );
        check(
            RuleParams {
                cap_share_min_z_tenths: Some(0),
                ..Default::default()
            },
            "cap_share_min_z_tenths must be 1 to 100",
        );
        check(
            RuleParams {
                cap_share_min_z_tenths: Some(101),
                ..Default::default()
            },
            "cap_share_min_z_tenths must be 1 to 100",
        );
        check(
            RuleParams {
                collection_spike_multiple_pct: Some(100),
                ..Default::default()
            },
            "collection_spike_multiple_pct must be 101 to 100000",
        );
        check(
            RuleParams {
                outflow_period_yellow_minor: Some(2),
                outflow_period_red_minor: Some(1),
                ..Default::default()
            },
            "outflow_period_yellow_minor must not exceed outflow_period_red_minor",
        );
        check(
            RuleParams {
                feed_silence_days: Some(8),
                feed_silence_red_days: Some(7),
                ..Default::default()
            },
            "feed_silence_days must not exceed feed_silence_red_days",
        );
        check(
            RuleParams {
                min_balance_fixed_minor: Some(0),
                ..Default::default()
            },
            "min_balance_fixed_minor must be positive",
        );
        for n in [1, 1_001] {
            check(
                RuleParams {
                    refund_unanswered_red_count: Some(n),
                    ..Default::default()
                },
                "refund_unanswered_red_count must be 2 to 1000",
            );
        }
        for (params, message) in [
            (
                RuleParams {
                    families_leaving_floor_bp: Some(10_000),
                    ..Default::default()
                },
                "families_leaving_floor_bp must be 1 to 9999 basis points",
            ),
            (
                RuleParams {
                    families_leaving_min_count: Some(0),
                    ..Default::default()
                },
                "families_leaving_min_count must be 1 to 100000",
            ),
            (
                RuleParams {
                    families_leaving_min_z_tenths: Some(0),
                    ..Default::default()
                },
                "families_leaving_min_z_tenths must be 1 to 100",
            ),
        ] {
            check(params, message);
        }
    }
}
