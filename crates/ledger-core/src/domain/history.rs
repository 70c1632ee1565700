//! An institution day by day, for the chart on its page: what families are
//! owed, what escrow holds in the books, what its bank closed at, and the
//! money that moved in and out of escrow, from the entries (by the day the
//! money moved) and the banks' end-of-day closings. Pure: no clock, no I/O.

use chrono::{Days, NaiveDate};

use crate::domain::entry::Entry;
use crate::domain::replay::BooksOn;

/// One day's figures (minor units).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayPoint {
    pub date: NaiveDate,
    /// Unearned tuition plus approved, unpaid refunds at the end of the day.
    pub owed_minor: i64,
    /// `escrow_cash` as the books have it at the end of the day.
    pub escrow_minor: i64,
    /// The sum of every escrow account's latest closing on or before the
    /// day; `None` until each has sent one.
    pub bank_minor: Option<i64>,
    /// Money posted into escrow that day (its debits).
    pub inflow_minor: i64,
    /// Money posted out of escrow that day (its credits).
    pub outflow_minor: i64,
}

/// The days from `first` to `last` (both included; none when `first` is
/// after `last`). `closings` holds each escrow account's closings (date,
/// balance), any order.
pub fn daily(
    entries: &[Entry],
    closings: &[Vec<(NaiveDate, i64)>],
    first: NaiveDate,
    last: NaiveDate,
) -> Vec<DayPoint> {
    let mut days = Vec::new();
    let mut d = first;
    while d <= last {
        days.push(d);
        match d.checked_add_days(Days::new(1)) {
            Some(next) => d = next,
            None => break,
        }
    }
    // The day before the first, for the first day's movements.
    let before = first.pred_opt().unwrap_or(first);
    let (mut debits, mut credits) = BooksOn::replay(entries, before).posted("escrow_cash");
    let books = BooksOn::at_each(entries, &days, |b| {
        (
            b.prepaid() + b.balance("refund_payable"),
            b.balance("escrow_cash"),
            b.posted("escrow_cash"),
        )
    });
    days.iter()
        .zip(books)
        .map(|(day, (owed, escrow, (dr, cr)))| {
            let point = DayPoint {
                date: *day,
                owed_minor: owed,
                escrow_minor: escrow,
                bank_minor: bank_on(closings, *day),
                inflow_minor: dr - debits,
                outflow_minor: cr - credits,
            };
            (debits, credits) = (dr, cr);
            point
        })
        .collect()
}

fn bank_on(closings: &[Vec<(NaiveDate, i64)>], day: NaiveDate) -> Option<i64> {
    if closings.is_empty() {
        return None;
    }
    closings
        .iter()
        .map(|account| {
            account
                .iter()
                .filter(|(d, _)| *d <= day)
                .max_by_key(|(d, _)| *d)
                .map(|(_, b)| *b)
        })
        .try_fold(0_i64, |sum, b| sum.checked_add(b?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, day).unwrap_or_default()
    }

    #[test]
    fn the_bank_figure_waits_for_every_escrow_account_and_carries_forward() {
        let closings = vec![vec![(d(2), 100), (d(4), 80)], vec![(d(3), 5)]];
        let points = daily(&[], &closings, d(1), d(5));
        let bank: Vec<Option<i64>> = points.iter().map(|p| p.bank_minor).collect();
        assert_eq!(bank, [None, None, Some(105), Some(85), Some(85)]);
        assert!(points
            .iter()
            .all(|p| p.owed_minor == 0 && p.inflow_minor == 0));
        assert!(daily(&[], &[], d(5), d(1)).is_empty());
        assert_eq!(daily(&[], &[], d(1), d(1))[0].bank_minor, None);
    }
}
