//! One supervised account as the bank reported it, and what follows from
//! its statements alone: what was known by the end of a day, where the
//! statement chain breaks (and which statements wait in quarantine from
//! there), which intraday lines are still provisional; and the account's
//! lines matched against the institution's entries.

use std::collections::BTreeSet;

use chrono::NaiveDate;

use crate::domain::entry::Entry;
use crate::domain::feeds::AccountKind;
use crate::domain::recon::{
    reconcile, transfers, LineStatus, MatchConfig, ReconcileError, ReconcileOutcome,
};
use crate::domain::statements::{self, ChainBreak, StatementBalances};

/// One stored line of a statement, in minor units of the account's currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatementLine {
    pub statement_key: String,
    pub line_no: i64,
    /// Signed: credit (money in) positive.
    pub amount_minor: i64,
    pub booking_date: Option<NaiveDate>,
    pub value_date: Option<NaiveDate>,
    pub status: LineStatus,
    pub bank_ref: Option<String>,
    pub end_to_end_id: Option<String>,
    pub remittance: Option<String>,
    pub counterparty_name: Option<String>,
    pub counterparty_account: Option<String>,
    pub reversal: bool,
}

impl StatementLine {
    /// The day the line counts on: its booking date, else its value date.
    pub fn day(&self) -> Option<NaiveDate> {
        self.booking_date.or(self.value_date)
    }
}

/// The latest closing balance an account's statements report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastClosing {
    pub statement_key: String,
    pub balance_minor: i64,
    pub date: NaiveDate,
}

/// What the bank reported of one supervised account.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountStatements {
    /// End-of-day lines, in statement order.
    pub lines: Vec<StatementLine>,
    pub closing: Option<LastClosing>,
    /// Every end-of-day statement's balances (the chain check, the days).
    pub statements: Vec<StatementBalances>,
    /// Lines of intraday reports: provisional until an end-of-day
    /// statement confirms them.
    pub intraday: Vec<StatementLine>,
}

impl AccountStatements {
    /// What the bank had reported by the end of `day`: lines booked by
    /// then; statements opened by then (one that closes later keeps its
    /// opening for the chain check, but its closing is not known yet).
    pub fn cut_at(&mut self, day: NaiveDate) {
        let known = |l: &StatementLine| l.day().is_none_or(|d| d <= day);
        self.lines.retain(known);
        self.intraday.retain(known);
        self.statements
            .retain(|s| s.opening.or(s.closing).is_none_or(|(_, d)| d <= day));
        for s in &mut self.statements {
            s.closing = s.closing.filter(|(_, d)| *d <= day);
        }
        if self.closing.as_ref().is_some_and(|c| c.date > day) {
            self.closing = self
                .statements
                .iter()
                .filter_map(|s| {
                    s.closing.map(|(minor, date)| LastClosing {
                        statement_key: s.key.clone(),
                        balance_minor: minor,
                        date,
                    })
                })
                .max_by_key(|c| c.date);
        }
    }
}

/// Where an account's statement chain first breaks, and the statements
/// from there on (issue order), which wait in quarantine: nothing is
/// booked from them until the missing statement arrives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quarantine {
    pub chain_break: ChainBreak,
    pub statements: BTreeSet<String>,
}

impl Quarantine {
    /// The quarantine of an account's statements, if their chain breaks.
    pub fn of(list: &[StatementBalances]) -> Option<Quarantine> {
        let chain_break = statements::first_break(list)?;
        let mut ordered = list.to_vec();
        statements::in_order(&mut ordered);
        let from = ordered
            .iter()
            .position(|s| s.key == chain_break.before)
            .unwrap_or(0);
        let statements = ordered[from..].iter().map(|s| s.key.clone()).collect();
        Some(Quarantine {
            chain_break,
            statements,
        })
    }

    /// A line waits in quarantine when its statement comes after the
    /// break, or when it is dated on or after the first missing day (a
    /// statement without balances cannot be placed in the chain, but its
    /// days can).
    pub fn holds(&self, line: &StatementLine) -> bool {
        self.statements.contains(&line.statement_key)
            || line
                .day()
                .is_some_and(|d| d >= self.chain_break.quarantined_from)
    }
}

/// Whether a line waits in quarantine (never, without one).
pub fn quarantined(q: Option<&Quarantine>, line: &StatementLine) -> bool {
    q.is_some_and(|q| q.holds(line))
}

/// One account's lines matched against the institution's entries, as they
/// stood at the end of a day (or with everything).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matched {
    /// What the bank had reported by then; the outcome's line ids index
    /// `statements.lines`.
    pub statements: AccountStatements,
    /// Lines with neither booking nor value date, by index.
    pub undated: Vec<usize>,
    pub outcome: ReconcileOutcome,
    pub quarantine: Option<Quarantine>,
    /// Intraday lines of days no end-of-day statement covers yet, matched
    /// against what the end-of-day lines left open; the provisional
    /// outcome's line ids index this.
    pub provisional: Vec<StatementLine>,
    pub provisional_outcome: ReconcileOutcome,
}

impl Matched {
    pub fn quarantined(&self, line: &StatementLine) -> bool {
        quarantined(self.quarantine.as_ref(), line)
    }
}

/// Runs the matcher over some lines of an account and some entries.
pub fn run_matcher<'a>(
    lines: &[StatementLine],
    entries: impl IntoIterator<Item = &'a Entry> + Clone,
    kind: AccountKind,
) -> Result<(Vec<usize>, ReconcileOutcome), ReconcileError> {
    let (bank, undated) = transfers::bank_lines(lines);
    let open = transfers::transfers(entries, kind);
    let outcome = reconcile(&bank, &open, &MatchConfig::default())?;
    Ok((undated, outcome))
}

/// An account's statements matched against the institution's entries as
/// they stood at the end of `until` (everything, without it).
pub fn match_account(
    mut statements: AccountStatements,
    kind: AccountKind,
    entries: &[Entry],
    until: Option<NaiveDate>,
) -> Result<Matched, ReconcileError> {
    if let Some(day) = until {
        statements.cut_at(day);
    }
    let entries: Vec<&Entry> = entries
        .iter()
        .filter(|e| until.is_none_or(|d| e.occurred_at.date_naive() <= d))
        .collect();
    let (undated, outcome) = run_matcher(&statements.lines, entries.iter().copied(), kind)?;
    let quarantine = Quarantine::of(&statements.statements);

    // Days an end-of-day statement covers supersede their intraday lines.
    let covered_through = statements
        .statements
        .iter()
        .filter_map(|s| s.closing.map(|c| c.1))
        .max();
    let provisional: Vec<StatementLine> = statements
        .intraday
        .iter()
        .filter(|l| {
            l.day()
                .is_some_and(|d| covered_through.is_none_or(|c| d > c))
        })
        .cloned()
        .collect();
    let settled: BTreeSet<u64> = outcome
        .matches
        .iter()
        .chain(&outcome.suggestions)
        .flat_map(|m| m.transfers.iter().copied())
        .collect();
    let open = entries
        .iter()
        .copied()
        .filter(|e| !settled.contains(&(e.seq as u64)));
    let (_, provisional_outcome) = run_matcher(&provisional, open, kind)?;
    Ok(Matched {
        statements,
        undated,
        outcome,
        quarantine,
        provisional,
        provisional_outcome,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 5, d).unwrap()
    }

    fn line(statement: &str, no: i64, on: u32) -> StatementLine {
        StatementLine {
            statement_key: statement.into(),
            line_no: no,
            amount_minor: 10,
            booking_date: Some(day(on)),
            value_date: None,
            status: LineStatus::Booked,
            bank_ref: None,
            end_to_end_id: None,
            remittance: None,
            counterparty_name: None,
            counterparty_account: None,
            reversal: false,
        }
    }

    fn statement(
        key: &str,
        open: Option<(i64, u32)>,
        close: Option<(i64, u32)>,
    ) -> StatementBalances {
        StatementBalances {
            key: key.into(),
            opening: open.map(|(m, d)| (m, day(d))),
            closing: close.map(|(m, d)| (m, day(d))),
        }
    }

    fn closing(key: &str, minor: i64, on: u32) -> Option<LastClosing> {
        Some(LastClosing {
            statement_key: key.into(),
            balance_minor: minor,
            date: day(on),
        })
    }

    #[test]
    fn a_statement_closing_after_the_cutoff_keeps_its_opening_for_the_chain_check() {
        // S1 closes at 100 on 1 May; S3 (3 to 6 May) opens at 40: one is missing.
        let mut stored = AccountStatements {
            lines: vec![
                line("S1", 0, 1),
                line("S3", 0, 3),
                line("S3", 1, 4),
                line("S3", 2, 6),
            ],
            closing: closing("S3", 60, 6),
            statements: vec![
                statement("S1", Some((0, 1)), Some((100, 1))),
                statement("S3", Some((40, 3)), Some((60, 6))),
            ],
            intraday: vec![],
        };
        stored.cut_at(day(4));
        assert_eq!(stored.lines.len(), 3, "lines up to the 4th");
        assert_eq!(stored.closing, closing("S1", 100, 1));
        assert_eq!(
            stored.statements[1].closing, None,
            "S3's closing is not known on the 4th"
        );
        let q = Quarantine::of(&stored.statements);
        assert_eq!(
            q.as_ref().map(|q| q.chain_break.quarantined_from),
            Some(day(2))
        );
        let held: Vec<bool> = stored
            .lines
            .iter()
            .map(|l| quarantined(q.as_ref(), l))
            .collect();
        assert_eq!(held, [false, true, true]);
    }

    #[test]
    fn a_statement_without_balances_is_quarantined_by_its_days() {
        let statements = vec![
            statement("S1", Some((0, 1)), Some((100, 1))),
            statement("S2-CSV", None, None),
            statement("S3", Some((40, 3)), Some((60, 3))),
        ];
        let q = Quarantine::of(&statements);
        assert!(quarantined(q.as_ref(), &line("S2-CSV", 0, 3)));
        assert!(!quarantined(q.as_ref(), &line("S1", 0, 1)));
    }

    #[test]
    fn a_chain_without_a_break_quarantines_nothing() {
        let statements = vec![
            statement("S1", Some((0, 1)), Some((100, 1))),
            statement("S2", Some((100, 2)), Some((60, 2))),
        ];
        assert_eq!(Quarantine::of(&statements), None);
        assert!(!quarantined(None, &line("S2", 0, 2)));
    }

    #[test]
    fn intraday_lines_of_a_day_a_statement_covers_are_not_provisional() {
        let mut intraday = line("I2", 0, 2);
        intraday.status = LineStatus::Pending;
        let later = line("I3", 0, 3);
        let stored = AccountStatements {
            lines: vec![line("S2", 0, 2)],
            closing: closing("S2", 10, 2),
            statements: vec![statement("S2", Some((0, 2)), Some((10, 2)))],
            intraday: vec![intraday, later.clone()],
        };
        let matched = match_account(stored, AccountKind::Escrow, &[], None).unwrap();
        assert_eq!(matched.provisional, vec![later]);
        assert_eq!(matched.quarantine, None);
    }
}
