//! Lesson records (课消确认): lessons an institution says it delivered are a
//! request until the family confirms them, or until the rule pack's window
//! of working days passes in silence (deemed confirmed). A dispute holds the
//! enrollment's release until an officer upholds it (the lessons are never
//! earned) or rejects it (they are). Only a confirmed record becomes a
//! `LessonsConsumed` entry. Also: what a release may pay out, from the
//! confirmed earnings, the freezes and the reserve the rule pack keeps.
//! Pure: the caller passes the dates in.

use std::collections::BTreeSet;

use chrono::{DateTime, Datelike, Days, NaiveDate, Utc, Weekday};
use serde::{Deserialize, Serialize};

use crate::domain::error::LedgerError;
use crate::domain::ids::{EnrollmentId, InstitutionId};
use crate::domain::policy::Calendar;

/// Where a lesson record stands: the last step of its trail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LessonState {
    /// Recorded by the institution; the family has not answered.
    Pending,
    /// The family confirmed it.
    Confirmed,
    /// Nobody answered within the window: confirmed by the rule.
    DeemedConfirmed,
    /// The family disputed it; an officer decides.
    Disputed,
    /// An officer upheld the dispute: the lessons are not earned, ever.
    Upheld,
    /// An officer rejected the dispute: the lessons are earned.
    DisputeRejected,
}

impl LessonState {
    pub const ALL: [LessonState; 6] = [
        LessonState::Pending,
        LessonState::Confirmed,
        LessonState::DeemedConfirmed,
        LessonState::Disputed,
        LessonState::Upheld,
        LessonState::DisputeRejected,
    ];

    pub fn code(self) -> &'static str {
        match self {
            LessonState::Pending => "pending",
            LessonState::Confirmed => "confirmed",
            LessonState::DeemedConfirmed => "deemed_confirmed",
            LessonState::Disputed => "disputed",
            LessonState::Upheld => "upheld",
            LessonState::DisputeRejected => "dispute_rejected",
        }
    }

    pub fn parse(code: &str) -> Result<LessonState, LedgerError> {
        LessonState::ALL
            .into_iter()
            .find(|s| s.code() == code)
            .ok_or_else(|| LedgerError::InvalidField {
                field: "lesson_state",
                reason: format!("{code:?} is not a lesson state"),
            })
    }

    /// Whether the lessons are earned (and so belong in the books).
    pub fn is_earned(self) -> bool {
        matches!(
            self,
            LessonState::Confirmed | LessonState::DeemedConfirmed | LessonState::DisputeRejected
        )
    }

    /// Whether the record holds its enrollment's release.
    pub fn freezes_enrollment(self) -> bool {
        self == LessonState::Disputed
    }
}

/// A step someone takes on a lesson record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LessonStep {
    /// The family confirms.
    Confirm,
    /// The family disputes.
    Dispute,
    /// The window passed in silence (the job).
    Deem,
    /// An officer upholds the dispute.
    Uphold,
    /// An officer rejects the dispute.
    Reject,
}

impl LessonStep {
    fn verb(self) -> &'static str {
        match self {
            LessonStep::Confirm => "confirmed",
            LessonStep::Dispute => "disputed",
            LessonStep::Deem => "deemed confirmed",
            LessonStep::Uphold => "upheld",
            LessonStep::Reject => "rejected",
        }
    }
}

/// The state machine: the state a step leads to, or why it cannot be
/// taken. Confirming and disputing are for a pending record only (a second
/// answer, or one after the window closed, is refused); an officer decides
/// only a disputed one.
pub fn step(from: LessonState, step: LessonStep) -> Result<LessonState, LedgerError> {
    use LessonState::*;
    use LessonStep::*;
    let to = match (from, step) {
        (Pending, Confirm) => Confirmed,
        (Pending, Dispute) => Disputed,
        (Pending, Deem) => DeemedConfirmed,
        (Disputed, Uphold) => Upheld,
        (Disputed, Reject) => DisputeRejected,
        (from, step) => {
            let why = match (from, step) {
                (Disputed, Confirm | Dispute | Deem) => {
                    "it is disputed and waits for an officer's decision"
                }
                (Pending, Uphold | Reject) => "it is not disputed",
                _ => "it was answered already",
            };
            return Err(LedgerError::LessonStepRefused {
                step: step.verb(),
                state: from.code(),
                reason: why.to_string(),
            });
        }
    };
    Ok(to)
}

/// The last day a family may answer: `window` working days after the day
/// the lessons were recorded (that day not counted). Deemed confirmed on
/// the next day.
pub fn answer_by(calendar: &Calendar, recorded_on: NaiveDate, window: u32) -> Option<NaiveDate> {
    calendar.add_working_days(recorded_on, window)
}

/// Whether a pending record is deemed confirmed `today`: its answer-by day
/// has passed.
pub fn is_due(answer_by: NaiveDate, today: NaiveDate) -> bool {
    answer_by < today
}

/// Lessons an institution recorded for one enrollment: a request until the
/// family confirms them. Never changed once written; its trail says where
/// it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LessonRecord {
    pub institution: InstitutionId,
    /// `L1`, `L2`, … per institution, in the order recorded.
    pub id: String,
    pub enrollment: EnrollmentId,
    pub hours: u32,
    /// The day the lessons were given.
    pub occurred_on: NaiveDate,
    pub recorded_by: String,
    pub recorded_at: DateTime<Utc>,
    /// The last day the family may answer; silent past it, deemed confirmed.
    pub answer_by: NaiveDate,
}

/// One step of a lesson record's trail: who, when, why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LessonEvent {
    pub seq: i64,
    pub at: DateTime<Utc>,
    /// The business day of the step (what release cycles count from).
    pub on_day: NaiveDate,
    pub actor: String,
    pub state: LessonState,
    pub reason: Option<String>,
}

/// A record with its trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lesson {
    pub record: LessonRecord,
    pub trail: Vec<LessonEvent>,
}

impl Lesson {
    pub fn state(&self) -> LessonState {
        self.trail.last().map_or(LessonState::Pending, |e| e.state)
    }

    /// The seq of the last step (0: none yet): the next step is this + 1.
    pub fn last_seq(&self) -> i64 {
        self.trail.last().map_or(0, |e| e.seq)
    }

    /// The day the lessons became earned, if they did.
    pub fn earned_on(&self) -> Option<NaiveDate> {
        self.trail
            .iter()
            .rev()
            .find(|e| e.state.is_earned())
            .map(|e| e.on_day)
    }

    /// The client id of its `LessonsConsumed` entry.
    pub fn client_id(&self) -> String {
        lesson_client_id(&self.record.id)
    }
}

/// The client id of the entry an earned lesson record posts: fixed by the
/// record, so posting it again is a replay.
pub fn lesson_client_id(lesson_id: &str) -> String {
    format!("lesson-{lesson_id}")
}

/// When earned tuition is released (一课一消 / 一周一结 / N days after).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReleaseCadence {
    /// Every day, whatever was confirmed up to that day.
    PerLesson,
    /// Every Monday, what was confirmed up to the Sunday before.
    Weekly,
    /// Every day, what was confirmed at least this many working days ago.
    WorkingDaysAfterConfirmation(u32),
}

impl ReleaseCadence {
    /// The release cycle `today` belongs to, and the last confirmation day
    /// it pays for; `None` when today is no release day (weekly, not a
    /// Monday). The cycle names the instruction, so a second run of the
    /// same cycle makes nothing new.
    pub fn cycle(self, calendar: &Calendar, today: NaiveDate) -> Option<(String, CutOff)> {
        match self {
            ReleaseCadence::PerLesson => Some((format!("D{today}"), CutOff::Day(today))),
            ReleaseCadence::Weekly => (today.weekday() == Weekday::Mon).then(|| {
                let sunday = today.checked_sub_days(Days::new(1)).unwrap_or(today);
                (format!("W{today}"), CutOff::Day(sunday))
            }),
            ReleaseCadence::WorkingDaysAfterConfirmation(n) => Some((
                format!("D{today}"),
                CutOff::WorkingDays {
                    calendar: calendar.clone(),
                    n,
                    today,
                },
            )),
        }
    }
}

/// Which confirmations a cycle pays for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CutOff {
    /// Confirmed on or before this day.
    Day(NaiveDate),
    /// Confirmed at least `n` working days before `today`.
    WorkingDays {
        calendar: Calendar,
        n: u32,
        today: NaiveDate,
    },
}

impl CutOff {
    pub fn admits(&self, confirmed_on: NaiveDate) -> bool {
        match self {
            CutOff::Day(d) => confirmed_on <= *d,
            CutOff::WorkingDays { calendar, n, today } => calendar
                .add_working_days(confirmed_on, *n)
                .is_some_and(|d| d <= *today),
        }
    }
}

/// Earned tuition of one enrollment, in the order it was earned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Earning {
    pub enrollment: EnrollmentId,
    pub amount_minor: i64,
    /// The day the lessons were confirmed (or imported as confirmed).
    pub confirmed_on: NaiveDate,
}

/// What one institution may be paid now, and why not more.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Releasable {
    /// Earned and not yet released (or instructed).
    pub unreleased_minor: i64,
    /// Of that, held by a dispute or a refund request of its enrollment.
    pub frozen_minor: i64,
    /// Of the rest, confirmed too recently for this cycle.
    pub not_yet_due_minor: i64,
    /// Kept in escrow by the rule pack's reserve (a share of unearned tuition).
    pub reserve_minor: i64,
    /// What may be released: unreleased − frozen − not yet due, less what
    /// the reserve keeps, never below zero; zero when the institution is frozen.
    pub releasable_minor: i64,
    /// The institution is frozen by an officer: nothing is released.
    pub institution_frozen: bool,
}

/// The inputs of [`releasable`].
#[derive(Debug, Clone)]
pub struct ReleaseInput<'a> {
    /// Every earning of the institution, oldest first.
    pub earnings: &'a [Earning],
    /// Everything released or instructed so far (pending included).
    pub released_minor: i64,
    /// The institution's `releasable` account as the books hold it now,
    /// less pending releases: a release never exceeds it.
    pub available_minor: i64,
    /// Enrollments whose release is held (a dispute, a refund request).
    pub frozen: &'a BTreeSet<EnrollmentId>,
    pub cutoff: &'a CutOff,
    /// Unearned tuition (the sum of prepaid balances).
    pub unearned_minor: i64,
    /// The reserve, in basis points of unearned tuition.
    pub reserve_bp: u32,
    pub institution_frozen: bool,
}

/// The reserve kept back from releases: `bp` basis points of unearned
/// tuition, rounded up to the fen (the reserve is never short).
pub fn reserve_minor(unearned_minor: i64, bp: u32) -> i64 {
    let n = i128::from(unearned_minor.max(0)) * i128::from(bp);
    i64::try_from((n + 9_999) / 10_000).unwrap_or(i64::MAX)
}

/// What may be released. Earnings are released oldest first: everything
/// released so far paid for the oldest earnings, so the rest are the
/// unreleased ones, each still attributed to its enrollment (and so held
/// when that enrollment is frozen).
pub fn releasable(input: &ReleaseInput<'_>) -> Releasable {
    let mut paid = input.released_minor.max(0);
    let mut out = Releasable {
        institution_frozen: input.institution_frozen,
        ..Releasable::default()
    };
    let mut eligible: i64 = 0;
    for e in input.earnings {
        let covered = paid.min(e.amount_minor);
        paid -= covered;
        let open = e.amount_minor - covered;
        if open == 0 {
            continue;
        }
        out.unreleased_minor = out.unreleased_minor.saturating_add(open);
        if input.frozen.contains(&e.enrollment) {
            out.frozen_minor = out.frozen_minor.saturating_add(open);
        } else if !input.cutoff.admits(e.confirmed_on) {
            out.not_yet_due_minor = out.not_yet_due_minor.saturating_add(open);
        } else {
            eligible = eligible.saturating_add(open);
        }
    }
    out.reserve_minor = reserve_minor(input.unearned_minor, input.reserve_bp);
    // The reserve is kept out of what the institution earned and was not
    // paid: everything unreleased beyond it is free.
    let beyond_reserve = input.available_minor.max(0) - out.reserve_minor;
    out.releasable_minor = if input.institution_frozen {
        0
    } else {
        eligible.min(beyond_reserve).max(0)
    };
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[track_caller]
    fn check(from: LessonState, s: LessonStep, want: Result<LessonState, &str>) {
        match (step(from, s), want) {
            (Ok(got), Ok(want)) => assert_eq!(got, want),
            (Err(e), Err(code)) => assert_eq!(e.code(), code, "{e}"),
            (got, want) => panic!("{from:?} {s:?}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn a_pending_record_is_answered_once_and_a_dispute_decided_once() {
        use LessonState::*;
        use LessonStep::*;
        check(Pending, Confirm, Ok(Confirmed));
        check(Pending, Dispute, Ok(Disputed));
        check(Pending, Deem, Ok(DeemedConfirmed));
        check(Disputed, Uphold, Ok(Upheld));
        check(Disputed, Reject, Ok(DisputeRejected));
        let refused = Err("lesson_step_refused");
        for from in [Confirmed, DeemedConfirmed, Upheld, DisputeRejected] {
            for s in [Confirm, Dispute, Deem, Uphold, Reject] {
                check(from, s, refused);
            }
        }
        check(Pending, Uphold, refused);
        check(Pending, Reject, refused);
        check(Disputed, Confirm, refused);
        check(Disputed, Deem, refused);
        check(Disputed, Dispute, refused);
    }

    #[test]
    fn only_confirmed_records_are_earned_and_only_disputes_freeze() {
        for s in LessonState::ALL {
            assert_eq!(LessonState::parse(s.code()).unwrap(), s);
        }
        let earned: Vec<_> = LessonState::ALL
            .into_iter()
            .filter(|s| s.is_earned())
            .collect();
        assert_eq!(
            earned,
            [
                LessonState::Confirmed,
                LessonState::DeemedConfirmed,
                LessonState::DisputeRejected
            ]
        );
        assert!(LessonState::Disputed.freezes_enrollment());
        assert!(!LessonState::Pending.freezes_enrollment());
        assert!(LessonState::parse("done").is_err());
    }

    #[test]
    fn the_answer_window_counts_working_days_with_holidays_and_makeup_days() {
        // 2026: National Day holiday 1–7 October (Thu 1 … Wed 7), Sunday
        // 27 September and Saturday 10 October worked instead.
        let holidays = (1..=7).map(|n| d(2026, 10, n));
        let cal = Calendar::new(holidays, [d(2026, 9, 27), d(2026, 10, 10)]).unwrap();
        // Recorded Friday 25 September: Sun 27 (make-up), Mon 28, Tue 29,
        // Wed 30 are working days 1–4; 1–7 October are off; Thu 8, Fri 9,
        // Sat 10 (make-up) are 5–7.
        assert_eq!(answer_by(&cal, d(2026, 9, 25), 4), Some(d(2026, 9, 30)));
        assert_eq!(answer_by(&cal, d(2026, 9, 25), 5), Some(d(2026, 10, 8)));
        assert_eq!(answer_by(&cal, d(2026, 9, 25), 7), Some(d(2026, 10, 10)));
        // Weekends only: 15 working days from Monday 2 November is Monday 23.
        let plain = Calendar::default();
        assert_eq!(answer_by(&plain, d(2026, 11, 2), 15), Some(d(2026, 11, 23)));
        // Deemed the day after the last day to answer, not on it.
        assert!(!is_due(d(2026, 11, 23), d(2026, 11, 23)));
        assert!(is_due(d(2026, 11, 23), d(2026, 11, 24)));
    }

    #[test]
    fn a_weekly_cycle_runs_on_mondays_for_the_week_before() {
        let cal = Calendar::default();
        assert_eq!(ReleaseCadence::Weekly.cycle(&cal, d(2026, 11, 10)), None);
        let (cycle, cutoff) = ReleaseCadence::Weekly.cycle(&cal, d(2026, 11, 9)).unwrap();
        assert_eq!(cycle, "W2026-11-09");
        assert!(cutoff.admits(d(2026, 11, 8)));
        assert!(!cutoff.admits(d(2026, 11, 9)));
        let (_, cutoff) = ReleaseCadence::WorkingDaysAfterConfirmation(2)
            .cycle(&cal, d(2026, 11, 10))
            .unwrap();
        // Friday 6 + 2 working days = Tuesday 10.
        assert!(cutoff.admits(d(2026, 11, 6)));
        assert!(!cutoff.admits(d(2026, 11, 9)));
        let (cycle, cutoff) = ReleaseCadence::PerLesson
            .cycle(&cal, d(2026, 11, 10))
            .unwrap();
        assert_eq!(cycle, "D2026-11-10");
        assert!(cutoff.admits(d(2026, 11, 10)));
    }

    fn earning(e: &str, amount_minor: i64, day: u32) -> Earning {
        Earning {
            enrollment: EnrollmentId::parse(e).unwrap(),
            amount_minor,
            confirmed_on: d(2026, 11, day),
        }
    }

    #[test]
    fn a_release_pays_oldest_earnings_first_and_holds_frozen_and_recent_ones() {
        let earnings = [
            earning("E-1", 10_000, 2),
            earning("E-2", 20_000, 3),
            earning("E-1", 5_000, 4),
            earning("E-3", 7_000, 10),
        ];
        let frozen: BTreeSet<_> = [EnrollmentId::parse("E-2").unwrap()].into();
        let cutoff = CutOff::Day(d(2026, 11, 8));
        let input = ReleaseInput {
            earnings: &earnings,
            released_minor: 12_000,
            available_minor: 30_000,
            frozen: &frozen,
            cutoff: &cutoff,
            unearned_minor: 0,
            reserve_bp: 0,
            institution_frozen: false,
        };
        let r = releasable(&input);
        // 12,000 released paid E-1's 10,000 and 2,000 of E-2's.
        assert_eq!(r.unreleased_minor, 30_000);
        assert_eq!(r.frozen_minor, 18_000);
        assert_eq!(r.not_yet_due_minor, 7_000);
        assert_eq!(r.releasable_minor, 5_000);
        // A reserve of 5% of 80,000.01 unearned is 4,000.0005 → 4,000.01.
        let r = releasable(&ReleaseInput {
            unearned_minor: 8_000_001,
            reserve_bp: 500,
            ..input.clone()
        });
        assert_eq!(r.reserve_minor, 400_001);
        assert_eq!(r.releasable_minor, 0);
        let r = releasable(&ReleaseInput {
            unearned_minor: 500_000,
            reserve_bp: 500,
            ..input.clone()
        });
        assert_eq!(r.reserve_minor, 25_000);
        assert_eq!(r.releasable_minor, 5_000);
        let r = releasable(&ReleaseInput {
            institution_frozen: true,
            ..input
        });
        assert_eq!(r.releasable_minor, 0);
        assert!(r.institution_frozen);
    }

    #[test]
    fn reserve_rounds_up_to_the_fen() {
        assert_eq!(reserve_minor(0, 500), 0);
        assert_eq!(reserve_minor(1, 1), 1);
        assert_eq!(reserve_minor(10_000, 500), 500);
        assert_eq!(reserve_minor(10_001, 500), 501);
        assert_eq!(reserve_minor(-5, 500), 0);
    }
}
