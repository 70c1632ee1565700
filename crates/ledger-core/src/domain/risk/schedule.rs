//! What the contracts say, as the risk engine reads them: how fast an
//! enrollment's lessons may be delivered (its schedule), and how many
//! packages were sold at the caps in the engine's windows. Pure functions
//! the store's snapshot calls to fill [`RiskInput`](super::RiskInput).

use std::collections::BTreeMap;

use chrono::{Days, NaiveDate};

use crate::domain::entry::{Entry, EntryKind};
use crate::domain::ids::EnrollmentId;
use crate::domain::policy::RuleParams;
use crate::domain::registry::Enrollment;
use crate::domain::risk::{EntryRef, PackageCounts, ReleaseFinding, ReleaseIssue, Window};

/// Slack before consumption counts as ahead of schedule: lessons are
/// weekly, so a week's worth of lessons early is normal teaching.
pub const SCHEDULE_SLACK_DAYS: u64 = 7;

/// A release counts as ahead for this many days after an enrollment was
/// booked beyond any timetable on one day.
pub const BEYOND_TIMETABLE_DAYS: u64 = 30;

/// Class hours (bonus included) the schedule allows delivered by the end of
/// `day`: spread evenly from the course start to its end, rounded up.
pub fn scheduled_hours(enrollment: &Enrollment, day: NaiveDate) -> u32 {
    let total = enrollment.total_hours();
    if day < enrollment.course_start {
        return 0;
    }
    let span = (enrollment.course_end - enrollment.course_start).num_days() + 1;
    let elapsed = ((day - enrollment.course_start).num_days() + 1).min(span);
    let allowed = (i64::from(total) * elapsed + span - 1) / span;
    u32::try_from(allowed).unwrap_or(total)
}

/// Releases instructed while some enrollment had been consumed more than a
/// week ahead of `pace_pct` percent of its even schedule (200: twice the
/// even pace, what an intensive course of two lessons a week reaches): the
/// tuition they release was earned on paper faster than lessons can be
/// taught. Entries in any order; lesson reversals are not netted (they
/// only make consumption look faster).
///
/// An enrollment with more than `max_day_hours` class hours recorded on
/// one day (lessons booked far ahead of any timetable) counts as ahead from
/// that day on, whatever its schedule says.
pub fn releases_ahead_of_schedule(
    enrollments: &[Enrollment],
    entries: &[Entry],
    pace_pct: u32,
    max_day_hours: Option<u32>,
) -> Vec<ReleaseFinding> {
    let by_id: BTreeMap<&EnrollmentId, &Enrollment> =
        enrollments.iter().map(|e| (&e.id, e)).collect();
    let mut ordered: Vec<&Entry> = entries.iter().collect();
    ordered.sort_by_key(|e| (e.occurred_at, e.seq));
    let mut consumed: BTreeMap<&EnrollmentId, u32> = BTreeMap::new();
    let mut on_day: BTreeMap<(&EnrollmentId, NaiveDate), u32> = BTreeMap::new();
    // The last day some enrollment was booked beyond any timetable.
    let mut beyond_timetable: Option<NaiveDate> = None;
    let mut findings = Vec::new();
    for e in ordered {
        let day = e.occurred_at.date_naive();
        match e.kind {
            EntryKind::LessonsConsumed => {
                if let Some(id) = &e.enrollment {
                    *consumed.entry(id).or_default() += e.hours.unwrap_or(0);
                    let today = on_day.entry((id, day)).or_default();
                    *today += e.hours.unwrap_or(0);
                    if max_day_hours.is_some_and(|max| *today > max) {
                        beyond_timetable = Some(day);
                    }
                }
            }
            EntryKind::ReleaseInstructed => {
                let slack = day.checked_add_days(Days::new(SCHEDULE_SLACK_DAYS));
                let recently_beyond = beyond_timetable
                    .zip(day.checked_sub_days(Days::new(BEYOND_TIMETABLE_DAYS)))
                    .is_some_and(|(last, since)| last >= since);
                let ahead = recently_beyond
                    || consumed.iter().any(|(id, hours)| {
                        by_id.get(id).zip(slack).is_some_and(|(en, by)| {
                            u64::from(*hours) * 100
                                > u64::from(scheduled_hours(en, by)) * u64::from(pace_pct)
                        })
                    });
                if ahead {
                    findings.push(ReleaseFinding {
                        entry: EntryRef {
                            seq: e.seq,
                            client_id: e.client_id.clone(),
                        },
                        date: day,
                        amount_minor: e.postings.first().map_or(0, |p| p.amount.minor()),
                        issue: ReleaseIssue::AheadOfSchedule,
                    });
                }
            }
            _ => {}
        }
    }
    findings
}

/// One package (enrollment) sold: the day of its first charge and whether
/// it sold at the caps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackageSold {
    pub date: NaiveDate,
    pub at_caps: bool,
}

/// The packages sold in the engine's recent and baseline windows ending on
/// `as_of` (windows as the rule pack sets them; none without them).
pub fn package_counts(sold: &[PackageSold], as_of: NaiveDate, p: &RuleParams) -> PackageCounts {
    let (recent, baseline) = Window::of_engine(as_of, p);
    let mut counts = PackageCounts::default();
    for s in sold {
        if recent.is_some_and(|w| w.contains(s.date)) {
            counts.recent_sold += 1;
            counts.recent_at_cap += u32::from(s.at_caps);
        } else if baseline.is_some_and(|w| w.contains(s.date)) {
            counts.baseline_sold += 1;
            counts.baseline_at_cap += u32::from(s.at_caps);
        }
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::InstitutionId;
    use crate::domain::money::{Amount, Currency};

    fn day(m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, m, d).unwrap()
    }

    fn enrollment(hours: u32, start: NaiveDate, end: NaiveDate) -> Enrollment {
        Enrollment {
            institution: InstitutionId::parse("INS-1").unwrap(),
            id: EnrollmentId::parse("E-1").unwrap(),
            student_ref: "s".into(),
            hours_bought: hours,
            bonus_hours: 0,
            price: Amount::parse("2400.00", Currency::Cny).unwrap(),
            currency: Currency::Cny,
            course_start: start,
            course_end: end,
        }
    }

    #[test]
    fn the_schedule_spreads_hours_evenly_and_rounds_up() {
        // 24 hours over 84 days (12 weeks): two a week.
        let e = enrollment(24, day(3, 2), day(5, 24));
        assert_eq!(scheduled_hours(&e, day(3, 1)), 0);
        assert_eq!(scheduled_hours(&e, day(3, 2)), 1);
        assert_eq!(scheduled_hours(&e, day(3, 8)), 2);
        assert_eq!(scheduled_hours(&e, day(3, 9)), 3);
        assert_eq!(scheduled_hours(&e, day(5, 24)), 24);
        assert_eq!(scheduled_hours(&e, day(9, 1)), 24);
    }

    #[test]
    fn package_counts_follow_the_engine_windows() {
        let p = RuleParams {
            lookback_days: Some(14),
            baseline_days: Some(42),
            ..RuleParams::default()
        };
        let sold = [
            PackageSold {
                date: day(5, 31),
                at_caps: true,
            }, // recent (last day)
            PackageSold {
                date: day(5, 18),
                at_caps: false,
            }, // recent (first day)
            PackageSold {
                date: day(5, 17),
                at_caps: true,
            }, // baseline (last day)
            PackageSold {
                date: day(4, 6),
                at_caps: false,
            }, // baseline (first day)
            PackageSold {
                date: day(4, 5),
                at_caps: true,
            }, // before both
            PackageSold {
                date: day(6, 1),
                at_caps: true,
            }, // after as_of
        ];
        let c = package_counts(&sold, day(5, 31), &p);
        assert_eq!(
            (
                c.recent_sold,
                c.recent_at_cap,
                c.baseline_sold,
                c.baseline_at_cap
            ),
            (2, 1, 2, 1)
        );
    }
}
