//! Statement days: for each end-of-day statement, the bank's closing, the
//! ledger's balance of that account at the end of the day, what the books
//! owed, and whether the day agrees, differs or cannot be trusted
//! (quarantined from a chain break on).

use std::collections::BTreeSet;

use chrono::NaiveDate;
use serde::Serialize;

use crate::domain::entry::Entry;
use crate::domain::feeds::AccountKind;
use crate::domain::replay::BooksOn;
use crate::domain::statements::{self, StatementBalances};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DayStatus {
    /// The bank's closing equals the ledger's balance at the day's end.
    Agrees,
    Differs,
    /// The statement comes after a break in the chain: its figures wait.
    Quarantined,
}

impl DayStatus {
    pub fn code(self) -> &'static str {
        match self {
            DayStatus::Agrees => "agrees",
            DayStatus::Differs => "differs",
            DayStatus::Quarantined => "quarantined",
        }
    }

    /// The decision: quarantine first, then the two balances compared.
    pub fn of(quarantined: bool, bank_closing_minor: i64, ledger_balance_minor: i64) -> DayStatus {
        if quarantined {
            DayStatus::Quarantined
        } else if bank_closing_minor == ledger_balance_minor {
            DayStatus::Agrees
        } else {
            DayStatus::Differs
        }
    }
}

/// One statement day's three figures (minor units).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatementDay {
    pub statement_key: String,
    pub day: NaiveDate,
    pub bank_closing_minor: i64,
    pub ledger_balance_minor: i64,
    pub owed_minor: i64,
    pub status: DayStatus,
}

/// The ledger's side of an account in the books of one day: the cash the
/// account should hold and what is owed from it (escrow: what families
/// are owed; deposit: the deposit payable back).
pub fn figures(books: &BooksOn, kind: AccountKind) -> (i64, i64) {
    match kind {
        AccountKind::Escrow => (books.balance("escrow_cash"), books.owed_from_escrow()),
        AccountKind::Deposit => (
            books.balance("deposit_cash"),
            books.balance("deposit_payable"),
        ),
    }
}

/// Each end-of-day statement's day, in issue order.
pub fn statement_days(
    kind: AccountKind,
    statements_held: &[StatementBalances],
    quarantined: &BTreeSet<String>,
    entries: &[Entry],
) -> Vec<StatementDay> {
    let mut ordered = statements_held.to_vec();
    statements::in_order(&mut ordered);
    let closing: Vec<_> = ordered
        .iter()
        .filter_map(|s| s.closing.map(|(minor, date)| (s, minor, date)))
        .collect();
    let days: Vec<NaiveDate> = closing.iter().map(|c| c.2).collect();
    let figures = BooksOn::at_each(entries, &days, |books| figures(books, kind));
    closing
        .into_iter()
        .zip(figures)
        .map(|((s, bank, day), (ledger_minor, owed))| StatementDay {
            statement_key: s.key.clone(),
            day,
            bank_closing_minor: bank,
            ledger_balance_minor: ledger_minor,
            owed_minor: owed,
            status: DayStatus::of(quarantined.contains(&s.key), bank, ledger_minor),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(quarantined: bool, bank: i64, ledger: i64, expected: DayStatus) {
        assert_eq!(DayStatus::of(quarantined, bank, ledger), expected);
    }

    #[test]
    fn a_day_is_quarantined_first_then_agrees_or_differs() {
        check(false, 100, 100, DayStatus::Agrees);
        check(false, 100, 90, DayStatus::Differs);
        check(false, -5, 0, DayStatus::Differs);
        check(true, 100, 100, DayStatus::Quarantined);
        check(true, 100, 90, DayStatus::Quarantined);
    }

    #[test]
    fn days_come_in_issue_order_and_only_for_closed_statements() {
        let d = |n| NaiveDate::from_ymd_opt(2026, 5, n).unwrap();
        let held = vec![
            StatementBalances {
                key: "S2".into(),
                opening: Some((0, d(2))),
                closing: Some((0, d(2))),
            },
            StatementBalances {
                key: "S1".into(),
                opening: Some((0, d(1))),
                closing: Some((5, d(1))),
            },
            StatementBalances {
                key: "S3".into(),
                opening: Some((0, d(3))),
                closing: None,
            },
        ];
        let quarantined = ["S2".to_string()].into();
        let days = statement_days(AccountKind::Escrow, &held, &quarantined, &[]);
        let seen: Vec<(&str, DayStatus)> = days
            .iter()
            .map(|d| (d.statement_key.as_str(), d.status))
            .collect();
        assert_eq!(
            seen,
            [("S1", DayStatus::Differs), ("S2", DayStatus::Quarantined)]
        );
    }
}
