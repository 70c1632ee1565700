//! Working days for deadlines: weekends and holidays are off, and China's
//! adjusted working weekends (调休) are on.

use std::collections::BTreeSet;

use chrono::{Datelike, NaiveDate, Weekday};

use crate::domain::error::LedgerError;

/// The holidays and make-up working days of a rule pack.
///
/// It travels in the risk input for now; it belongs in the rule pack (as
/// data, effective-dated like the rest) once the store keeps it there.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HolidayCalendar {
    holidays: BTreeSet<NaiveDate>,
    makeup_working_days: BTreeSet<NaiveDate>,
}

impl HolidayCalendar {
    /// A day cannot be both a holiday and a make-up working day: one of
    /// the two lists is wrong, and guessing which would move deadlines.
    pub fn new(
        holidays: impl IntoIterator<Item = NaiveDate>,
        makeup_working_days: impl IntoIterator<Item = NaiveDate>,
    ) -> Result<Self, LedgerError> {
        let holidays: BTreeSet<NaiveDate> = holidays.into_iter().collect();
        let makeup_working_days: BTreeSet<NaiveDate> = makeup_working_days.into_iter().collect();
        if let Some(day) = holidays.intersection(&makeup_working_days).next() {
            return Err(LedgerError::InvalidField {
                field: "holiday_calendar",
                reason: format!("{day} is both a holiday and a make-up working day"),
            });
        }
        Ok(HolidayCalendar {
            holidays,
            makeup_working_days,
        })
    }

    pub fn is_working_day(&self, day: NaiveDate) -> bool {
        if self.makeup_working_days.contains(&day) {
            return true;
        }
        let weekend = matches!(day.weekday(), Weekday::Sat | Weekday::Sun);
        !weekend && !self.holidays.contains(&day)
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    /// Shaped like China's 2026 National Day: 1–7 October off, Sunday 20
    /// September and Saturday 10 October worked instead.
    fn national_day() -> HolidayCalendar {
        let holidays = (1..=7).map(|d| NaiveDate::from_ymd_opt(2026, 10, d).unwrap());
        HolidayCalendar::new(holidays, [day("2026-09-20"), day("2026-10-10")]).unwrap()
    }

    #[track_caller]
    fn check(start: &str, n: u32, expected: &str) {
        assert_eq!(
            national_day().add_working_days(day(start), n),
            Some(day(expected)),
            "{n} working days after {start}"
        );
    }

    #[test]
    fn working_days_skip_weekends_and_holidays_and_count_make_up_days() {
        check("2026-09-14", 0, "2026-09-14");
        check("2026-09-14", 1, "2026-09-15"); // Monday → Tuesday
        check("2026-09-18", 1, "2026-09-20"); // Friday → the make-up Sunday
        check("2026-09-18", 2, "2026-09-21");
        check("2026-09-25", 5, "2026-10-09"); // 28, 29, 30 Sep, then 8 and 9 Oct
        check("2026-09-25", 6, "2026-10-10"); // the make-up Saturday counts
        check("2026-09-25", 7, "2026-10-12");
        check("2026-09-30", 1, "2026-10-08"); // over the holiday
        check("2026-10-03", 1, "2026-10-08"); // from inside the holiday
        check("2026-10-09", 1, "2026-10-10"); // Friday → the make-up Saturday
        check("2026-10-16", 1, "2026-10-19"); // an ordinary weekend
    }

    #[test]
    fn a_day_cannot_be_both_a_holiday_and_a_make_up_working_day() {
        let clash = HolidayCalendar::new([day("2026-10-10")], [day("2026-10-10")]);
        assert_eq!(clash.map_err(|e| e.code()), Err("invalid_field"));
    }

    #[test]
    fn with_an_empty_calendar_only_weekends_are_off() {
        let plain = HolidayCalendar::default();
        assert!(plain.is_working_day(day("2026-10-01")));
        assert!(!plain.is_working_day(day("2026-10-03")));
        assert_eq!(
            plain.add_working_days(day("2026-10-02"), 1),
            Some(day("2026-10-05"))
        );
    }
}
