//! Working days, the one calendar of the rule pack: Saturdays and Sundays
//! off, public holidays off, and the weekends China moves working days to
//! (调休) on. The matcher's date window and the risk engine's deadlines
//! (refunds answered and paid within so many working days) both count on it.

use std::collections::BTreeSet;

use chrono::{Datelike, NaiveDate, Weekday};

use crate::domain::error::LedgerError;

/// Working days: Monday to Friday unless a holiday, plus the listed
/// make-up weekends. A holiday on a weekend and a make-up day on a weekday
/// change nothing and are accepted (official notices list whole spans).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Calendar {
    /// Holidays on Monday to Friday, sorted: each removes one working day.
    weekday_holidays: Vec<NaiveDate>,
    /// Make-up days on Saturday or Sunday, sorted: each adds one working day.
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
    /// A day cannot be both a holiday and a make-up working day: one of
    /// the two lists is wrong, and guessing which would move deadlines and
    /// windows.
    pub fn new(
        holidays: impl IntoIterator<Item = NaiveDate>,
        makeup_working_days: impl IntoIterator<Item = NaiveDate>,
    ) -> Result<Self, LedgerError> {
        let holidays: BTreeSet<NaiveDate> = holidays.into_iter().collect();
        let makeup: BTreeSet<NaiveDate> = makeup_working_days.into_iter().collect();
        if let Some(day) = holidays.intersection(&makeup).next() {
            return Err(LedgerError::InvalidField {
                field: "holiday_calendar",
                reason: format!("{day} is both a holiday and a make-up working day"),
            });
        }
        Ok(Calendar {
            weekday_holidays: holidays.into_iter().filter(|d| !is_weekend(*d)).collect(),
            working_weekends: makeup.into_iter().filter(|d| is_weekend(*d)).collect(),
        })
    }

    pub fn is_working_day(&self, date: NaiveDate) -> bool {
        if is_weekend(date) {
            self.working_weekends.binary_search(&date).is_ok()
        } else {
            self.weekday_holidays.binary_search(&date).is_err()
        }
    }

    /// The `n`th working day after `start` (`start` itself never counts: a
    /// request made on Friday has its first working day on Monday). `None`
    /// only past the end of the calendar's date range.
    pub fn add_working_days(&self, start: NaiveDate, n: u32) -> Option<NaiveDate> {
        let mut day = start;
        let mut left = n;
        while left > 0 {
            day = day.succ_opt()?;
            if self.is_working_day(day) {
                left -= 1;
            }
        }
        Some(day)
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
        let holidays = (1..=8).map(|d| day(&format!("2025-10-{d:02}")));
        Calendar::new(holidays, [day("2025-09-28"), day("2025-10-11")]).expect("valid calendar")
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
    fn a_calendar_that_contradicts_itself_is_refused_and_a_no_op_day_is_not() {
        let date = day("2025-10-11");
        let both = Calendar::new([date], [date]);
        assert_eq!(both.map_err(|e| e.code()), Err("invalid_field"));
        let friday = day("2025-10-10");
        let weekday = Calendar::new([], [friday]).expect("accepted");
        assert_eq!(
            weekday,
            Calendar::default(),
            "a make-up friday changes nothing"
        );
    }

    /// Shaped like China's 2026 National Day: 1–7 October off, Sunday 20
    /// September and Saturday 10 October worked instead.
    fn national_day_2026() -> Calendar {
        let holidays = (1..=7).map(|d| day(&format!("2026-10-{d:02}")));
        Calendar::new(holidays, [day("2026-09-20"), day("2026-10-10")]).expect("valid calendar")
    }

    #[track_caller]
    fn check_after(start: &str, n: u32, expected: &str) {
        assert_eq!(
            national_day_2026().add_working_days(day(start), n),
            Some(day(expected)),
            "{n} working days after {start}"
        );
    }

    #[test]
    fn deadlines_skip_weekends_and_holidays_and_count_make_up_days() {
        check_after("2026-09-14", 0, "2026-09-14");
        check_after("2026-09-14", 1, "2026-09-15"); // Monday → Tuesday
        check_after("2026-09-18", 1, "2026-09-20"); // Friday → the make-up Sunday
        check_after("2026-09-18", 2, "2026-09-21");
        check_after("2026-09-25", 5, "2026-10-09"); // 28, 29, 30 Sep, then 8 and 9 Oct
        check_after("2026-09-25", 6, "2026-10-10"); // the make-up Saturday counts
        check_after("2026-09-25", 7, "2026-10-12");
        check_after("2026-09-30", 1, "2026-10-08"); // over the holiday
        check_after("2026-10-03", 1, "2026-10-08"); // from inside the holiday
        check_after("2026-10-09", 1, "2026-10-10"); // Friday → the make-up Saturday
        check_after("2026-10-16", 1, "2026-10-19"); // an ordinary weekend
    }

    #[test]
    fn deadlines_and_windows_count_the_same_days() {
        let calendar = national_day_2026();
        let start = day("2026-09-25");
        for n in 0..12 {
            let end = calendar.add_working_days(start, n).expect("in range");
            assert_eq!(
                calendar.working_days_between(start, end),
                u64::from(n),
                "{n}"
            );
        }
    }

    #[test]
    fn with_an_empty_calendar_only_weekends_are_off() {
        let plain = Calendar::default();
        assert!(plain.is_working_day(day("2026-10-01")));
        assert!(!plain.is_working_day(day("2026-10-03")));
        assert_eq!(
            plain.add_working_days(day("2026-10-02"), 1),
            Some(day("2026-10-05"))
        );
    }
}
