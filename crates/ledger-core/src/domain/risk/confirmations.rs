//! Risk signals from the families' answers (issue 16, "Risk signals from
//! the new facts"): the confirmation rate falling against its baseline,
//! disputes rising, deemed confirmations crowding out real ones (families
//! no longer answering), lessons recorded far ahead of the enrollment's
//! timetable, and release requests beyond confirmed earnings. Each reads
//! its facts as they stood at the end of `as_of` (a record recorded, a step
//! taken, a request asked or decided after it does not count), takes its
//! thresholds from the rule pack (unset: the check is off), and compares
//! exactly on integers.
//!
//! Rates are judged only over at least `confirmation_min_records` records,
//! so that one disputed lesson of a new school is not a trend.

use std::collections::BTreeMap;

use chrono::{Days, NaiveDate};

use crate::domain::ids::EnrollmentId;
use crate::domain::lessons::{Lesson, LessonState};
use crate::domain::registry::Enrollment;
use crate::domain::risk::schedule::scheduled_hours;
use crate::domain::risk::{rule, Ctx, Evidence, Out, Severity, SignalKind, Window};

/// What the families' answers and the officers' release requests say, for
/// one institution.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfirmationFacts {
    /// The lesson records with their trails (later ones are ignored):
    /// every one, or those not [`at_rest`] when `at_rest` sums the rest.
    pub lessons: Vec<Lesson>,
    /// The records at rest ([`at_rest`]) summed per enrollment, when the
    /// read left them out of `lessons`.
    pub at_rest: Vec<RecordsAtRest>,
    /// The enrollments the records are for (their timetables).
    pub enrollments: Vec<Enrollment>,
    /// Manual release requests (maker–checker), with their decision day.
    pub release_asks: Vec<ReleaseAsk>,
}

/// One enrollment's lesson records at rest ([`at_rest`]), summed: all that
/// any check still reads of them is the hours they count against the
/// enrollment's timetable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordsAtRest {
    pub enrollment: EnrollmentId,
    /// How many records the sum stands for.
    pub records: u64,
    /// Their hours, less those of disputes upheld (not given, ever).
    pub hours: u64,
}

/// Whether a lesson record is at rest from `from` on: recorded, due and
/// every step of its trail taken before that day. A check on a day whose
/// windows start on or after `from` then reads nothing of it but its hours,
/// whatever the day: the rates read records due, recorded or answered
/// within the windows, and the timetable check counts a record's hours by
/// its last step by the day, which is then its last step of all. The store
/// sums such records in the database ([`RecordsAtRest`]) rather than bring
/// every record ever kept into the scan.
pub fn at_rest(l: &Lesson, from: NaiveDate) -> bool {
    l.record.recorded_at.date_naive() < from
        && l.record.answer_by < from
        && l.trail.iter().all(|e| e.on_day < from)
}

/// What [`at_rest`] makes of an institution's records: those still read
/// one by one, and the rest summed per enrollment (the sums in enrollment
/// order). The store computes the same split in SQL; this is its
/// reference.
pub fn split_at_rest(lessons: Vec<Lesson>, from: NaiveDate) -> (Vec<Lesson>, Vec<RecordsAtRest>) {
    let mut sums: BTreeMap<EnrollmentId, (u64, u64)> = BTreeMap::new();
    let mut listed = Vec::new();
    for l in lessons {
        if at_rest(&l, from) {
            let sum = sums.entry(l.record.enrollment.clone()).or_default();
            sum.0 += 1;
            if l.state() != LessonState::Upheld {
                sum.1 += u64::from(l.record.hours);
            }
        } else {
            listed.push(l);
        }
    }
    let sums = sums
        .into_iter()
        .map(|(enrollment, (records, hours))| RecordsAtRest {
            enrollment,
            records,
            hours,
        })
        .collect();
    (listed, sums)
}

/// A manual release asked for, waiting for a second officer until decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseAsk {
    pub id: String,
    pub asked_on: NaiveDate,
    pub decided_on: Option<NaiveDate>,
    pub amount_minor: i64,
}

/// A record's state at the end of `day`, and the day it got there.
fn state_on(l: &Lesson, day: NaiveDate) -> Option<(LessonState, NaiveDate)> {
    if l.record.recorded_at.date_naive() > day {
        return None;
    }
    Some(l.trail.iter().rfind(|e| e.on_day <= day).map_or(
        (LessonState::Pending, l.record.recorded_at.date_naive()),
        |e| (e.state, e.on_day),
    ))
}

/// Whether the family itself confirmed the record by the end of `day`.
fn family_confirmed(l: &Lesson, day: NaiveDate) -> bool {
    l.trail
        .iter()
        .any(|e| e.on_day <= day && e.state == LessonState::Confirmed)
}

fn disputed(l: &Lesson, day: NaiveDate) -> bool {
    l.trail
        .iter()
        .any(|e| e.on_day <= day && e.state == LessonState::Disputed)
}

/// Records whose answer window closed within `w` by `as_of`: how many, and
/// how many of them the family confirmed itself.
fn answered(lessons: &[Lesson], w: Window, as_of: NaiveDate) -> (i128, i128) {
    let closed: Vec<&Lesson> = lessons
        .iter()
        .filter(|l| l.record.recorded_at.date_naive() <= as_of)
        .filter(|l| w.contains(l.record.answer_by) && l.record.answer_by < as_of)
        .collect();
    let confirmed = closed
        .iter()
        .filter(|l| family_confirmed(l, l.record.answer_by))
        .count();
    (closed.len() as i128, confirmed as i128)
}

pub(super) fn evaluate(ctx: &Ctx, out: &mut Out) {
    confirmation_rate_falling(ctx, out);
    disputes_rising(ctx, out);
    deemed_crowding_out(ctx, out);
    lessons_ahead_of_timetable(ctx, out);
    release_beyond_earned(ctx, out);
}

fn min_records(ctx: &Ctx) -> i128 {
    i128::from(ctx.p.confirmation_min_records.unwrap_or(1).max(1))
}

/// The share of records families confirmed themselves, among those whose
/// window closed in the recent window, fell more than
/// `confirmation_rate_drop_bp` below the baseline window's share.
fn confirmation_rate_falling(ctx: &Ctx, out: &mut Out) {
    let kind = SignalKind::ConfirmationRateFalling;
    let (Some(drop), Some(recent), Some(baseline)) =
        (ctx.p.confirmation_rate_drop_bp, ctx.recent, ctx.baseline)
    else {
        return;
    };
    let lessons = &ctx.input.confirmations.lessons;
    let (rn, rc) = answered(lessons, recent, ctx.as_of);
    let (bn, bc) = answered(lessons, baseline, ctx.as_of);
    let min = min_records(ctx);
    if rn < min || bn < min {
        return;
    }
    // rc/rn < bc/bn − drop/10000, cross-multiplied.
    let lhs = rc * bn * 10_000;
    let rhs = bc * rn * 10_000 - i128::from(drop) * rn * bn;
    if lhs >= rhs {
        return;
    }
    let (recent_bp, baseline_bp) = (rc * 10_000 / rn, bc * 10_000 / bn);
    out.signal(
        kind,
        Severity::Yellow,
        kind.code().to_string(),
        format!(
            "families confirmed {rc} of {rn} lesson records due in the last {} days ({}), against {bc} of {bn} before ({}): a drop beyond {}",
            recent.days,
            super::text::percent(recent_bp),
            super::text::percent(baseline_bp),
            super::text::percent(i128::from(drop)),
        ),
        vec![
            Evidence::Count { name: "recent_due", value: rn as u64 },
            Evidence::Count { name: "recent_confirmed", value: rc as u64 },
            Evidence::Ratio { name: "recent_rate", bp: recent_bp },
            Evidence::Count { name: "baseline_due", value: bn as u64 },
            Evidence::Count { name: "baseline_confirmed", value: bc as u64 },
            Evidence::Ratio { name: "baseline_rate", bp: baseline_bp },
            rule("confirmation_rate_drop_bp", drop),
        ],
    );
}

/// Of the records recorded in the recent window, more than
/// `dispute_rate_max_bp` were disputed by the family.
fn disputes_rising(ctx: &Ctx, out: &mut Out) {
    let kind = SignalKind::DisputesRising;
    let (Some(max), Some(recent)) = (ctx.p.dispute_rate_max_bp, ctx.recent) else {
        return;
    };
    let recorded: Vec<&Lesson> = ctx
        .input
        .confirmations
        .lessons
        .iter()
        .filter(|l| recent.contains(l.record.recorded_at.date_naive()))
        .collect();
    let n = recorded.len() as i128;
    if n < min_records(ctx) {
        return;
    }
    let d = recorded.iter().filter(|l| disputed(l, ctx.as_of)).count() as i128;
    // d/n > max/10000
    if d * 10_000 <= i128::from(max) * n {
        return;
    }
    out.signal(
        kind,
        Severity::Yellow,
        kind.code().to_string(),
        format!(
            "families disputed {d} of {n} lesson records recorded in the last {} days ({}), above {}",
            recent.days,
            super::text::percent(d * 10_000 / n),
            super::text::percent(i128::from(max)),
        ),
        vec![
            Evidence::Count { name: "recorded", value: n as u64 },
            Evidence::Count { name: "disputed", value: d as u64 },
            Evidence::Ratio { name: "dispute_rate", bp: d * 10_000 / n },
            rule("dispute_rate_max_bp", max),
        ],
    );
}

/// Of the records earned in the recent window (confirmed by the family or
/// deemed confirmed), more than `deemed_share_max_bp` were deemed: the
/// families stopped answering.
fn deemed_crowding_out(ctx: &Ctx, out: &mut Out) {
    let kind = SignalKind::DeemedCrowdingOut;
    let (Some(max), Some(recent)) = (ctx.p.deemed_share_max_bp, ctx.recent) else {
        return;
    };
    let mut earned = 0i128;
    let mut deemed = 0i128;
    for l in &ctx.input.confirmations.lessons {
        for e in l.trail.iter().filter(|e| e.on_day <= ctx.as_of) {
            if recent.contains(e.on_day) {
                match e.state {
                    LessonState::Confirmed => earned += 1,
                    LessonState::DeemedConfirmed => {
                        earned += 1;
                        deemed += 1;
                    }
                    _ => {}
                }
            }
        }
    }
    if earned < min_records(ctx) || deemed * 10_000 <= i128::from(max) * earned {
        return;
    }
    out.signal(
        kind,
        Severity::Yellow,
        kind.code().to_string(),
        format!(
            "{deemed} of {earned} lesson records earned in the last {} days were deemed confirmed by silence ({}), above {}: families are no longer answering",
            recent.days,
            super::text::percent(deemed * 10_000 / earned),
            super::text::percent(i128::from(max)),
        ),
        vec![
            Evidence::Count { name: "earned", value: earned as u64 },
            Evidence::Count { name: "deemed", value: deemed as u64 },
            Evidence::Ratio { name: "deemed_share", bp: deemed * 10_000 / earned },
            rule("deemed_share_max_bp", max),
        ],
    );
}

/// An enrollment whose recorded hours (records recorded by `as_of`, not
/// upheld disputes) exceed what its timetable allows `lessons_ahead_days`
/// after `as_of`, at the pace the rule pack allows beyond the even one
/// (`schedule_pace_max_pct`, as the release pace is judged: an intensive
/// course teaches twice a week what its term spreads over one lesson).
fn lessons_ahead_of_timetable(ctx: &Ctx, out: &mut Out) {
    let kind = SignalKind::LessonsAheadOfTimetable;
    let Some(ahead) = ctx.p.lessons_ahead_days else {
        return;
    };
    let Some(horizon) = ctx.as_of.checked_add_days(Days::new(u64::from(ahead))) else {
        return;
    };
    let pace = ctx.p.schedule_pace_max_pct.unwrap_or(100);
    let facts = &ctx.input.confirmations;
    let mut recorded: BTreeMap<&EnrollmentId, u64> = facts
        .at_rest
        .iter()
        .map(|r| (&r.enrollment, r.hours))
        .collect();
    for l in &facts.lessons {
        match state_on(l, ctx.as_of) {
            None | Some((LessonState::Upheld, _)) => {}
            Some(_) => {
                *recorded.entry(&l.record.enrollment).or_default() += u64::from(l.record.hours)
            }
        }
    }
    for e in &ctx.input.confirmations.enrollments {
        let Some(hours) = recorded.get(&e.id).copied() else {
            continue;
        };
        let allowed = u64::from(scheduled_hours(e, horizon));
        // hours > allowed × pace / 100, exactly.
        if hours * 100 <= allowed * u64::from(pace) {
            continue;
        }
        out.signal(
            kind,
            Severity::Yellow,
            format!("{}:{}", kind.code(), e.id),
            format!(
                "enrollment {}: {hours} hours recorded by {}, beyond {pace}% of the {allowed} its timetable ({} to {}) allows even {ahead} days later",
                e.id, ctx.as_of, e.course_start, e.course_end
            ),
            vec![
                Evidence::Enrollment { id: e.id.clone() },
                Evidence::Count { name: "hours_recorded", value: hours },
                Evidence::Count { name: "hours_scheduled", value: allowed },
                Evidence::Date { name: "horizon", date: horizon },
                rule("lessons_ahead_days", ahead),
                rule("schedule_pace_max_pct", pace),
            ],
        );
    }
}

/// Manual release requests open at the end of `as_of` ask for more than
/// the confirmed, unreleased earnings (plus `release_request_excess_bp` of
/// them): money asked for that the families have not confirmed earning.
fn release_beyond_earned(ctx: &Ctx, out: &mut Out) {
    let kind = SignalKind::ReleaseBeyondEarned;
    let Some(excess) = ctx.p.release_request_excess_bp else {
        return;
    };
    let open: Vec<&ReleaseAsk> = ctx
        .input
        .confirmations
        .release_asks
        .iter()
        .filter(|a| a.asked_on <= ctx.as_of && a.decided_on.is_none_or(|d| d > ctx.as_of))
        .collect();
    if open.is_empty() {
        return;
    }
    let asked: i128 = open.iter().map(|a| i128::from(a.amount_minor)).sum();
    let earned = i128::from(ctx.input.ledger.releasable_minor.max(0));
    // asked > earned × (10000 + excess) / 10000, exactly.
    if asked * 10_000 <= earned * (10_000 + i128::from(excess)) {
        return;
    }
    let mut evidence = vec![
        Evidence::Amount {
            name: "requested_open",
            minor: asked,
        },
        Evidence::Amount {
            name: "confirmed_unreleased",
            minor: earned,
        },
        rule("release_request_excess_bp", excess),
    ];
    for a in &open {
        evidence.push(Evidence::Date {
            name: "asked_on",
            date: a.asked_on,
        });
    }
    out.signal(
        kind,
        Severity::Red,
        kind.code().to_string(),
        format!(
            "{} open release request(s) ask for {}, beyond the {} of confirmed, unreleased earnings",
            open.len(),
            ctx.money_wide(asked),
            ctx.money_wide(earned),
        ),
        evidence,
    );
}
