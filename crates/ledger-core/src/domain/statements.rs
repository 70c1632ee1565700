//! Whether an account's end-of-day statements chain: each one must open
//! where the one before it closed. A statement that does not is evidence
//! that one in between is missing (or wrong), so everything the bank
//! reported from the missing day on cannot be trusted to be complete: the
//! account is quarantined from that day until the chain is whole again.

use chrono::NaiveDate;
use serde::Serialize;

/// A final statement's balances (minor units), as the store holds them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatementBalances {
    pub key: String,
    pub opening: Option<(i64, NaiveDate)>,
    pub closing: Option<(i64, NaiveDate)>,
}

impl StatementBalances {
    /// The day that places the statement in the chain: its closing day,
    /// else its opening day (none for a statement without balances).
    pub fn issue_day(&self) -> Option<NaiveDate> {
        self.closing.map(|c| c.1).or(self.opening.map(|o| o.1))
    }
}

/// The first place the chain breaks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainBreak {
    /// The last statement before the gap and its closing balance.
    pub after: String,
    pub after_closing_minor: i64,
    pub after_closing_date: NaiveDate,
    /// The first statement after the gap and the balance it opens with.
    pub before: String,
    pub opening_minor: i64,
    pub opening_date: NaiveDate,
    /// The first day whose statement is missing: quarantine starts here.
    pub quarantined_from: NaiveDate,
}

/// Statements in the order the bank issued them: by closing date, then
/// key with its numbers compared as numbers (page 10 after page 2).
pub fn in_order(statements: &mut [StatementBalances]) {
    statements.sort_by(|a, b| {
        a.issue_day()
            .cmp(&b.issue_day())
            .then_with(|| natural(&a.key).cmp(&natural(&b.key)))
    });
}

/// A key cut into runs of other text, each followed by the number after it.
fn natural(key: &str) -> Vec<(String, u128)> {
    let mut parts = Vec::new();
    let mut text = String::new();
    let mut digits = String::new();
    for c in key.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
        } else {
            if !digits.is_empty() {
                parts.push((
                    std::mem::take(&mut text),
                    digits.parse().unwrap_or(u128::MAX),
                ));
                digits.clear();
            }
            text.push(c);
        }
    }
    parts.push((text, digits.parse().unwrap_or(0)));
    parts
}

/// The first break in the chain of `statements` (taken in issue order), if
/// any. A statement without an opening or closing balance cannot be
/// checked against its neighbours and is passed over.
pub fn first_break(statements: &[StatementBalances]) -> Option<ChainBreak> {
    let mut ordered = statements.to_vec();
    in_order(&mut ordered);
    let mut previous: Option<&StatementBalances> = None;
    for s in &ordered {
        if let (Some(p), Some((opening, opening_date))) = (previous, s.opening) {
            if let Some((closing, closing_date)) = p.closing {
                if opening != closing {
                    return Some(ChainBreak {
                        after: p.key.clone(),
                        after_closing_minor: closing,
                        after_closing_date: closing_date,
                        before: s.key.clone(),
                        opening_minor: opening,
                        opening_date,
                        quarantined_from: closing_date.succ_opt().unwrap_or(closing_date),
                    });
                }
            }
        }
        if s.closing.is_some() {
            previous = Some(s);
        }
    }
    None
}

/// The last day through which the chain of `statements` is whole: the
/// closing day of the last statement before its first break, or of the
/// latest statement when it does not break; `None` when no statement
/// closes.
pub fn whole_through(statements: &[StatementBalances]) -> Option<NaiveDate> {
    match first_break(statements) {
        Some(b) => Some(b.after_closing_date),
        None => statements
            .iter()
            .filter_map(|s| s.closing.map(|c| c.1))
            .max(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 5, d).unwrap()
    }

    fn s(key: &str, open: (i64, u32), close: (i64, u32)) -> StatementBalances {
        StatementBalances {
            key: key.into(),
            opening: Some((open.0, day(open.1))),
            closing: Some((close.0, day(close.1))),
        }
    }

    #[test]
    fn consecutive_statements_that_chain_have_no_break_in_any_order() {
        let chain = vec![
            s("S3", (150, 3), (90, 3)),
            s("S1", (0, 1), (100, 1)),
            s("S2", (100, 2), (150, 2)),
        ];
        assert_eq!(first_break(&chain), None);
    }

    #[test]
    fn days_without_a_statement_are_no_gap_when_the_balance_carries_over() {
        // No statement over the weekend: Friday's closing is Monday's opening.
        let chain = vec![s("FRI", (0, 1), (100, 1)), s("MON", (100, 4), (120, 4))];
        assert_eq!(first_break(&chain), None);
    }

    #[test]
    fn a_missing_statement_breaks_the_chain_from_the_day_after_the_last_good_one() {
        let chain = vec![
            s("S1", (0, 1), (100, 1)),
            // S2 (100 → 40) never arrived.
            s("S3", (40, 3), (60, 3)),
            s("S4", (60, 4), (70, 4)),
        ];
        let b = first_break(&chain).unwrap();
        assert_eq!((b.after.as_str(), b.before.as_str()), ("S1", "S3"));
        assert_eq!(whole_through(&chain), Some(day(1)));
        assert_eq!((b.after_closing_minor, b.opening_minor), (100, 40));
        assert_eq!(b.quarantined_from, day(2));
        // Filling the gap heals the chain.
        let mut filled = chain.clone();
        filled.push(s("S2", (100, 2), (40, 2)));
        assert_eq!(first_break(&filled), None);
        assert_eq!(whole_through(&filled), Some(day(4)));
    }

    #[test]
    fn pages_of_one_day_chain_in_page_order_not_text_order() {
        let mut pages: Vec<StatementBalances> = (1..=11)
            .map(|page| s(&format!("mt940:REF#42/{page}"), (page - 1, 1), (page, 1)))
            .collect();
        pages.reverse();
        assert_eq!(first_break(&pages), None);
        in_order(&mut pages);
        assert_eq!(pages[1].key, "mt940:REF#42/2");
        assert_eq!(pages[10].key, "mt940:REF#42/11");
    }

    #[test]
    fn statements_without_balances_are_passed_over() {
        let mut bare = s("S2", (0, 2), (0, 2));
        bare.opening = None;
        bare.closing = None;
        let chain = vec![s("S1", (0, 1), (100, 1)), bare, s("S3", (100, 3), (10, 3))];
        assert_eq!(first_break(&chain), None);
    }
}
