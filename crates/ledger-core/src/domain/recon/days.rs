//! Statement days: for each end-of-day statement, the bank's closing, the
//! ledger's balance of that account at the end of the day, what the books
//! owed, and whether the day agrees, differs or cannot be trusted
//! (quarantined from a chain break on).

use std::collections::{BTreeMap, BTreeSet};

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

/// Each end-of-day statement's day, in issue order, every figure replayed
/// from `entries` (all of them).
pub fn statement_days(
    kind: AccountKind,
    statements_held: &[StatementBalances],
    quarantined: &BTreeSet<String>,
    entries: &[Entry],
) -> Vec<StatementDay> {
    let nothing_before = BooksOn::default();
    let window = Window {
        from: NaiveDate::MIN,
        books_before: &nothing_before,
        figures_before: (0, 0),
        entries,
    };
    statement_days_since(
        kind,
        statements_held,
        quarantined,
        &BTreeMap::new(),
        Some(&window),
    )
}

/// A statement day's ledger figures as a recording run kept them (the
/// latest version of the day).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeptFigures {
    pub day: NaiveDate,
    pub ledger_balance_minor: i64,
    pub owed_minor: i64,
}

/// How far an account's statement chain is settled, as a recording run
/// keeps it with its watermark: every statement issued on or before
/// `through` (by [`StatementBalances::issue_day`]) chains to the one
/// before it and has its day kept, and `statements` of them (those
/// without balances included) were held when it was kept. While the store
/// still holds that many, and no entry written since the watermark moved
/// money before `through`, a run reads the statements and kept days from
/// `through` on: the chain breaks, and the days change, only after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SettledChain {
    pub through: NaiveDate,
    pub statements: i64,
}

impl SettledChain {
    /// The chain a run leaves settled: whole through the last day before
    /// the first break in the statements it took (`taken`, cut at the
    /// day it runs to), counted over the statements it read (`read`, as
    /// the store holds them: those issued from `since`'s day on, or every
    /// one without it). `None` when nothing closes.
    pub fn after_run(
        since: Option<SettledChain>,
        read: &[StatementBalances],
        taken: &[StatementBalances],
    ) -> Option<SettledChain> {
        let through = statements::whole_through(taken)?;
        let issued = |s: &&StatementBalances| s.issue_day().is_none_or(|d| d <= through);
        let statements = match since {
            Some(c) => {
                let later = |s: &&StatementBalances| s.issue_day().is_some_and(|d| d > c.through);
                c.statements + count(read.iter().filter(later).filter(issued))
            }
            None => count(read.iter().filter(issued)),
        };
        Some(SettledChain {
            through,
            statements,
        })
    }
}

fn count<T>(items: impl Iterator<Item = T>) -> i64 {
    i64::try_from(items.count()).unwrap_or(i64::MAX)
}

/// The first day whose ledger figures a recording run must compute
/// afresh: the earliest of the day of a closed statement with no kept
/// figures (new, or closed since), and `changed_from`, the earliest day an
/// entry written since the figures were kept moved money on (an entry
/// booked late for an earlier day moves it back). `None`: the figures kept
/// for every day still hold. Figures depend only on the entries that
/// occurred by their day, so a day before this one reads as it was kept.
pub fn recompute_from(
    statements_held: &[StatementBalances],
    kept: &BTreeMap<String, KeptFigures>,
    changed_from: Option<NaiveDate>,
) -> Option<NaiveDate> {
    statements_held
        .iter()
        .filter_map(|s| {
            let (_, day) = s.closing?;
            let held = kept.get(&s.key).is_some_and(|k| k.day == day);
            (!held).then_some(day)
        })
        .chain(changed_from)
        .min()
}

/// What a recording run recomputes: the days from `from` on, with the
/// books at the end of the day before it and the entries that occurred on
/// or after it. The figures are linear in the postings, so the books
/// before may also be left empty and the figures at the end of the day
/// before given instead (`figures_before`: ledger balance and owed, as a
/// kept day holds them).
#[derive(Debug, Clone, Copy)]
pub struct Window<'a> {
    pub from: NaiveDate,
    pub books_before: &'a BooksOn,
    pub figures_before: (i64, i64),
    pub entries: &'a [Entry],
}

/// Each end-of-day statement's day, in issue order: the ledger figures of
/// a day before the window (every day, without one) as `kept` holds them,
/// those of a day in it from the window's books moved on by its entries.
/// The status is decided afresh for every day (a gap filled or opened
/// changes it without any entry). `kept` must hold every day before the
/// window, as [`recompute_from`] chooses it.
pub fn statement_days_since(
    kind: AccountKind,
    statements_held: &[StatementBalances],
    quarantined: &BTreeSet<String>,
    kept: &BTreeMap<String, KeptFigures>,
    window: Option<&Window<'_>>,
) -> Vec<StatementDay> {
    let mut ordered = statements_held.to_vec();
    statements::in_order(&mut ordered);
    let closing: Vec<_> = ordered
        .iter()
        .filter_map(|s| s.closing.map(|(minor, date)| (s, minor, date)))
        .collect();
    let in_window = |day: NaiveDate| window.is_some_and(|w| day >= w.from);
    let mut days: Vec<NaiveDate> = closing
        .iter()
        .map(|c| c.2)
        .filter(|d| in_window(*d))
        .collect();
    days.sort_unstable();
    days.dedup();
    let computed: BTreeMap<NaiveDate, (i64, i64)> = match window {
        Some(w) => days
            .iter()
            .copied()
            .zip(w.books_before.clone().moved_on(w.entries, &days, |books| {
                let (ledger, owed) = figures(books, kind);
                (ledger + w.figures_before.0, owed + w.figures_before.1)
            }))
            .collect(),
        None => BTreeMap::new(),
    };
    closing
        .into_iter()
        .map(|(s, bank, day)| {
            let (ledger_minor, owed) = if in_window(day) {
                computed.get(&day).copied()
            } else {
                kept.get(&s.key)
                    .filter(|k| k.day == day)
                    .map(|k| (k.ledger_balance_minor, k.owed_minor))
            }
            .unwrap_or_else(|| {
                panic!(
                    "statement {} of {day}: no figures kept before the window",
                    s.key
                )
            });
            StatementDay {
                statement_key: s.key.clone(),
                day,
                bank_closing_minor: bank,
                ledger_balance_minor: ledger_minor,
                owed_minor: owed,
                status: DayStatus::of(quarantined.contains(&s.key), bank, ledger_minor),
            }
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
    fn closed(key: &str, on: u32) -> StatementBalances {
        let d = NaiveDate::from_ymd_opt(2026, 5, on).unwrap();
        StatementBalances {
            key: key.into(),
            opening: Some((0, d)),
            closing: Some((0, d)),
        }
    }

    #[track_caller]
    fn check_from(kept: &[(&str, u32)], changed_from: Option<u32>, expected: Option<u32>) {
        let d = |n| NaiveDate::from_ymd_opt(2026, 5, n).unwrap();
        let held = vec![closed("S1", 1), closed("S2", 2), closed("S3", 3)];
        let kept = kept
            .iter()
            .map(|(key, on)| {
                let figures = KeptFigures {
                    day: d(*on),
                    ledger_balance_minor: 0,
                    owed_minor: 0,
                };
                (key.to_string(), figures)
            })
            .collect();
        assert_eq!(
            recompute_from(&held, &kept, changed_from.map(d)),
            expected.map(d)
        );
    }

    #[test]
    fn a_run_recomputes_from_the_first_day_not_kept_or_moved_by_a_new_entry() {
        let all = [("S1", 1), ("S2", 2), ("S3", 3)];
        check_from(&all, None, None);
        check_from(&all, Some(2), Some(2));
        check_from(&all[..2], None, Some(3));
        check_from(&all[..2], Some(1), Some(1));
        // A statement that arrived late for an earlier day.
        check_from(&[("S1", 1), ("S3", 3)], None, Some(2));
        check_from(&[], Some(3), Some(1));
        // Kept under another day: recomputed.
        check_from(&[("S1", 1), ("S2", 3), ("S3", 3)], None, Some(2));
    }

    #[test]
    fn a_chain_is_settled_through_the_last_day_before_its_break_and_counted_as_read() {
        let d = |n| NaiveDate::from_ymd_opt(2026, 5, n).unwrap();
        let bare = StatementBalances {
            key: "BARE".into(),
            opening: None,
            closing: None,
        };
        let mut s4 = closed("S4", 4);
        s4.opening = Some((9, d(4)));
        let whole = vec![bare, closed("S1", 1), closed("S2", 2), closed("S3", 3)];
        // Read whole: every statement through the last day is counted, the
        // one without balances too.
        let first = SettledChain::after_run(None, &whole, &whole).unwrap();
        assert_eq!((first.through, first.statements), (d(3), 4));
        // Read from day 3 on: what was counted before, plus the statements
        // after day 3 up to the new end; S4 breaks the chain, so it stays
        // at day 3 and S4 is not counted.
        let from_3 = vec![closed("S3", 3), s4.clone()];
        let next = SettledChain::after_run(Some(first), &from_3, &from_3).unwrap();
        assert_eq!((next.through, next.statements), (d(3), 4));
        let healed = vec![closed("S3", 3), closed("S4", 4), closed("S5", 5)];
        let next = SettledChain::after_run(Some(first), &healed, &healed).unwrap();
        assert_eq!((next.through, next.statements), (d(5), 6));
        // A run cut at day 4 settles through day 4 and counts by what the
        // store holds, not by the cut.
        let cut = &healed[..2];
        let next = SettledChain::after_run(Some(first), &healed, cut).unwrap();
        assert_eq!((next.through, next.statements), (d(4), 5));
        assert_eq!(SettledChain::after_run(None, &[], &[]), None);
    }

    #[test]
    fn days_before_the_window_read_as_kept_and_their_status_is_decided_afresh() {
        let d = |n| NaiveDate::from_ymd_opt(2026, 5, n).unwrap();
        let mut held = vec![closed("S1", 1), closed("S2", 2)];
        held[0].closing = Some((70, d(1)));
        let kept = [(
            "S1".to_string(),
            KeptFigures {
                day: d(1),
                ledger_balance_minor: 70,
                owed_minor: 65,
            },
        )]
        .into();
        let books = BooksOn::default();
        let window = Window {
            from: d(2),
            books_before: &books,
            figures_before: (0, 0),
            entries: &[],
        };
        let quarantined = ["S1".to_string()].into();
        let days = statement_days_since(
            AccountKind::Escrow,
            &held,
            &quarantined,
            &kept,
            Some(&window),
        );
        let seen: Vec<(i64, i64, DayStatus)> = days
            .iter()
            .map(|d| (d.ledger_balance_minor, d.owed_minor, d.status))
            .collect();
        assert_eq!(
            seen,
            [(70, 65, DayStatus::Quarantined), (0, 0, DayStatus::Agrees)]
        );
    }
}
