//! The ranges every business date and count must fall in. They are checked
//! at the edge, before anything is stored, so that PostgreSQL and SQLite see
//! only values both can keep exactly: a number that would wrap an `integer`
//! column on one and fit on the other, or a date one backend cannot encode,
//! never reaches either.

use chrono::{DateTime, Datelike, NaiveDate, Timelike, Utc};

use crate::domain::error::LedgerError;

/// The first business day the ledger accepts. Off-campus training
/// supervision began long after; anything earlier is a typo or a test.
pub const EARLIEST_YEAR: i32 = 2000;
/// The last business year the ledger accepts: far beyond any course sold
/// today, well inside what both databases encode.
pub const LATEST_YEAR: i32 = 2099;
/// The most class hours one enrollment or one lesson record may carry:
/// thousands of times any real package, and far below `i32::MAX`, the
/// width of the hours columns.
pub const MAX_HOURS: u32 = 100_000;

/// The most characters any one free text (a reason, a comment, a note,
/// any text of a request) may hold: far beyond what an officer or a family
/// writes, far below what would make every listing that shows it heavy.
pub const MAX_NOTE_CHARS: usize = 2_000;

/// Why a free text cannot be kept as given, if it cannot: NUL (no database
/// holds it), another control character (none is text; line breaks and
/// tabs are), or more than [`MAX_NOTE_CHARS`].
pub fn note_refusal(value: &str) -> Option<String> {
    if value.contains('\0') {
        Some("text may not contain NUL (\\u0000) characters".into())
    } else if value
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        Some("text may not contain control characters other than line breaks and tabs".into())
    } else if value.chars().count() > MAX_NOTE_CHARS {
        Some(format!(
            "text may not be longer than {MAX_NOTE_CHARS} characters"
        ))
    } else {
        None
    }
}

/// Why a short text (a name, a reference) cannot be kept: a control
/// character, or more than `max` characters. `None` when it can.
pub fn text_refusal(value: &str, max: usize) -> Option<String> {
    if value.chars().any(char::is_control) {
        Some("contains a control character".into())
    } else if value.chars().count() > max {
        Some(format!("is longer than {max} characters"))
    } else {
        None
    }
}

fn window() -> String {
    format!("{EARLIEST_YEAR}-01-01 to {LATEST_YEAR}-12-31")
}

/// A business day (a course start, a rule pack's effective date).
pub fn check_day(field: &'static str, day: NaiveDate) -> Result<(), LedgerError> {
    if (EARLIEST_YEAR..=LATEST_YEAR).contains(&day.year()) {
        Ok(())
    } else {
        Err(LedgerError::InvalidField {
            field,
            reason: format!(
                "{day} is outside the business dates this ledger accepts ({})",
                window()
            ),
        })
    }
}

/// A business instant (when money moved or lessons were given): inside the
/// window and not a leap second, which one backend keeps and the other
/// refuses.
pub fn check_instant(field: &'static str, at: DateTime<Utc>) -> Result<(), LedgerError> {
    if at.nanosecond() >= 1_000_000_000 {
        return Err(LedgerError::InvalidField {
            field,
            reason: format!(
                "{} is a leap second; give 23:59:59 or the next day's 00:00:00",
                at.format("%Y-%m-%dT%H:%M:%S")
            ),
        });
    }
    check_day(field, at.date_naive())
}

/// A count of class hours; zero is allowed here (bonus hours), the callers
/// that need a positive count say so themselves.
pub fn check_hours(field: &'static str, hours: u32) -> Result<(), LedgerError> {
    if hours <= MAX_HOURS {
        Ok(())
    } else {
        Err(LedgerError::InvalidField {
            field,
            reason: format!(
                "{hours} class hours is more than the {MAX_HOURS} one record may carry"
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn the_window_includes_its_ends_and_nothing_beyond() {
        assert!(check_day("d", day("2000-01-01")).is_ok());
        assert!(check_day("d", day("2099-12-31")).is_ok());
        for outside in [
            "1999-12-31",
            "2100-01-01",
            "0001-01-01",
            "1970-01-01",
            "9999-12-31",
        ] {
            let e = check_day("course_start", day(outside)).unwrap_err();
            assert_eq!(e.code(), "invalid_field", "{outside}");
            assert!(e.to_string().contains(outside), "{e}");
        }
    }

    #[test]
    fn a_leap_second_is_refused_and_the_second_before_it_is_not() {
        let leap = "2026-06-30T23:59:60Z".parse::<DateTime<Utc>>().unwrap();
        let e = check_instant("occurred_at", leap).unwrap_err();
        assert!(e.to_string().contains("leap second"), "{e}");
        let before = "2026-06-30T23:59:59Z".parse::<DateTime<Utc>>().unwrap();
        assert!(check_instant("occurred_at", before).is_ok());
    }

    #[test]
    fn hours_stop_at_the_documented_maximum() {
        assert!(check_hours("hours", MAX_HOURS).is_ok());
        assert!(check_hours("hours", 0).is_ok());
        assert!(check_hours("hours", MAX_HOURS + 1).is_err());
        assert!(check_hours("hours", 1 << 31).is_err());
    }
}
