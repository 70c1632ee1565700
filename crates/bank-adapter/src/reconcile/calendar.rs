//! The working-day calendar behind the matcher's date window: Saturdays and
//! Sundays off, public holidays off, and the weekends China moves working
//! days to (调休) on.

use std::collections::BTreeSet;

use chrono::{Datelike, NaiveDate, Weekday};

use super::ReconcileError;

/// Working days: Monday to Friday unless a holiday, plus the listed
/// make-up weekends. Holidays that fall on a weekend change nothing and are
/// accepted (official notices list whole holiday spans).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Calendar {
    /// Holidays on Monday to Friday, sorted: each removes one working day.
    weekday_holidays: Vec<NaiveDate>,
    /// Sorted; each adds one working day.
    working_weekends: Vec<NaiveDate>,
}

fn is_weekend(date: NaiveDate) -> bool {
    matches!(date.weekday(), Weekday::Sat | Weekday::Sun)
}

/// Monday-to-Friday days among the first `days` days counted from Monday
/// 0001-01-01 (day 1 of the proleptic Gregorian count); Euclidean division
/// keeps it right before that day too.
fn weekdays_through(days: i64) -> i64 {
    5 * days.div_euclid(7) + days.rem_euclid(7).min(5)
}

impl Calendar {
    pub fn new(
        holidays: BTreeSet<NaiveDate>,
        working_weekends: BTreeSet<NaiveDate>,
    ) -> Result<Self, ReconcileError> {
        for &date in &working_weekends {
            if !is_weekend(date) {
                return Err(ReconcileError::WorkingWeekendNotOnWeekend { date });
            }
            if holidays.contains(&date) {
                return Err(ReconcileError::HolidayIsAlsoWorkingDay { date });
            }
        }
        Ok(Calendar {
            weekday_holidays: holidays.into_iter().filter(|d| !is_weekend(*d)).collect(),
            working_weekends: working_weekends.into_iter().collect(),
        })
    }

    pub fn is_working_day(&self, date: NaiveDate) -> bool {
        if is_weekend(date) {
            self.working_weekends.binary_search(&date).is_ok()
        } else {
            self.weekday_holidays.binary_search(&date).is_err()
        }
    }

    /// Working days from a fixed origin up to and including `date`. Only
    /// differences mean anything; O(log holidays), no walking day by day.
    fn ordinal(&self, date: NaiveDate) -> i64 {
        let weekdays = weekdays_through(i64::from(date.num_days_from_ce()));
        let holidays = self.weekday_holidays.partition_point(|d| *d <= date);
        let extra = self.working_weekends.partition_point(|d| *d <= date);
        // Both counts are at most the length of a Vec: they fit an i64.
        weekdays - holidays as i64 + extra as i64
    }

    /// Working days in the half-open span between the two dates: for
    /// `a <= b`, the working days `d` with `a < d <= b`; symmetric. Friday to
    /// the next Monday is 1, Friday to Sunday is 0, a day to itself is 0.
    pub fn working_days_between(&self, a: NaiveDate, b: NaiveDate) -> u64 {
        (self.ordinal(b) - self.ordinal(a)).unsigned_abs()
    }

    /// The dates at most `working_days` working days from `date`, as the
    /// inclusive range `(first, last)`: a contiguous range, because the
    /// ordinal never decreases.
    pub(crate) fn window(&self, date: NaiveDate, working_days: u32) -> (NaiveDate, NaiveDate) {
        let limit = i64::from(working_days);
        let here = self.ordinal(date);
        let mut first = date;
        while let Some(prev) = first.pred_opt() {
            if here - self.ordinal(prev) > limit {
                break;
            }
            first = prev;
        }
        let mut last = date;
        while let Some(next) = last.succ_opt() {
            if self.ordinal(next) - here > limit {
                break;
            }
            last = next;
        }
        (first, last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").expect("test date")
    }

    /// China's 2025 National Day: 1–8 October off, Sunday 28 September and
    /// Saturday 11 October worked.
    fn national_day_2025() -> Calendar {
        let holidays = (1..=8).map(|d| day(&format!("2025-10-{d:02}"))).collect();
        let weekends = [day("2025-09-28"), day("2025-10-11")].into_iter().collect();
        Calendar::new(holidays, weekends).expect("valid calendar")
    }

    #[track_caller]
    fn check(calendar: &Calendar, a: &str, b: &str, expected: u64) {
        assert_eq!(
            calendar.working_days_between(day(a), day(b)),
            expected,
            "{a} .. {b}"
        );
        assert_eq!(
            calendar.working_days_between(day(b), day(a)),
            expected,
            "{b} .. {a}"
        );
    }

    #[test]
    fn plain_weeks_count_monday_to_friday() {
        let plain = Calendar::default();
        check(&plain, "2026-03-06", "2026-03-06", 0);
        check(&plain, "2026-03-06", "2026-03-09", 1);
        check(&plain, "2026-03-06", "2026-03-08", 0);
        check(&plain, "2026-03-02", "2026-03-16", 10);
        check(&plain, "1999-12-31", "2000-01-03", 1);
    }

    #[test]
    fn a_holiday_week_counts_as_no_working_days() {
        let calendar = national_day_2025();
        check(&calendar, "2025-09-30", "2025-10-09", 1);
        check(&Calendar::default(), "2025-09-30", "2025-10-09", 7);
    }

    #[test]
    fn a_make_up_saturday_counts_as_a_working_day() {
        let calendar = national_day_2025();
        check(&calendar, "2025-10-10", "2025-10-13", 2);
        check(&calendar, "2025-09-26", "2025-09-29", 2);
        check(&Calendar::default(), "2025-10-10", "2025-10-13", 1);
        assert!(calendar.is_working_day(day("2025-10-11")));
        assert!(!calendar.is_working_day(day("2025-10-08")));
    }

    #[test]
    fn the_ordinal_steps_exactly_on_working_days() {
        let calendar = national_day_2025();
        let mut date = day("2025-09-01");
        while date < day("2025-11-01") {
            let next = date.succ_opt().expect("in range");
            let step = calendar.ordinal(next) - calendar.ordinal(date);
            assert_eq!(step, i64::from(calendar.is_working_day(next)), "{next}");
            date = next;
        }
    }

    #[test]
    fn the_window_spans_the_holiday() {
        let calendar = national_day_2025();
        assert_eq!(
            calendar.window(day("2025-09-30"), 1),
            (day("2025-09-29"), day("2025-10-09"))
        );
        assert_eq!(
            Calendar::default().window(day("2026-03-06"), 0),
            (day("2026-03-06"), day("2026-03-08"))
        );
    }

    #[test]
    fn a_calendar_that_contradicts_itself_is_refused() {
        let date = day("2025-10-11");
        let both = Calendar::new([date].into(), [date].into());
        assert_eq!(both, Err(ReconcileError::HolidayIsAlsoWorkingDay { date }));
        let friday = day("2025-10-10");
        let weekday = Calendar::new(BTreeSet::new(), [friday].into());
        assert_eq!(
            weekday,
            Err(ReconcileError::WorkingWeekendNotOnWeekend { date: friday })
        );
        assert_eq!(
            weekday.map_err(|e| e.code()),
            Err("working_weekend_not_on_weekend")
        );
    }
}
