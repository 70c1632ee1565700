//! SWIFT MT940 rendering: one message per statement (`:20: :25: :28C: :60F:
//! :61: :86: :62F:`), CRLF line endings, `-` after each message.
//!
//! Parsing the result gives back the statement's account, currency,
//! statement id, sequence, balances and, per line, amount, reversal flag,
//! value and booking dates, bank reference, end-to-end id, transaction type
//! and remittance. What MT940 cannot carry, and so does not come back:
//! - `source` (it describes the file that was parsed, not this one);
//! - lines that are not booked (MT940 has no pending or info lines: they
//!   are left out, so the balances still add up);
//! - `counterparty_*`, `return_reason`, `children` and `structured` (except
//!   `supplementary_details`, written as the `:61:` second line), unless the
//!   remittance itself carries them in a convention the parser recognises;
//! - remittance beyond 6 lines of 65 characters (cut), line breaks inside it
//!   (written as spaces), leading and trailing whitespace (trimmed);
//! - a missing `end_to_end_id` or `bank_tx_code` comes back as `NONREF`
//!   (read as `None`) and `NMSC` (read as `Some("NMSC")`); a missing
//!   `sequence` as `1`; references longer than SWIFT's 16 characters are
//!   written whole, and one containing `//` does not survive;
//! - a booking date more than half a year from the value date, or any date
//!   outside 1980–2079 (MT dates have two-digit years, entry dates none);
//! - a statement with neither balance is written without `:60F:`/`:62F:`
//!   (not valid MT940); with one balance, the other is derived from the
//!   booked lines, exactly.

use chrono::{Datelike, NaiveDate};
use rust_decimal::Decimal;

use crate::model::{Balance, Line, LineStatus, Statement};

const CRLF: &str = "\r\n";
/// SWIFT's `:86:` is 6 lines of 65 characters.
const INFORMATION_LINE_CHARS: usize = 65;
const INFORMATION_LINES: usize = 6;

/// Renders statements as MT940 text, one message each.
pub fn mt940(statements: &[Statement]) -> String {
    let mut out = String::new();
    for s in statements {
        statement(&mut out, s);
    }
    out
}

fn statement(out: &mut String, s: &Statement) {
    let id = if s.statement_id.trim().is_empty() {
        "NONREF"
    } else {
        s.statement_id.as_str()
    };
    field(out, ":20:", id);
    field(out, ":25:", &s.account);
    field(out, ":28C:", s.sequence.as_deref().unwrap_or("1"));
    let booked: Vec<&Line> = s
        .lines
        .iter()
        .filter(|l| l.status == LineStatus::Booked)
        .collect();
    let total: Decimal = booked.iter().map(|l| l.amount).sum();
    let (opening, closing) = match (&s.opening_balance, &s.closing_balance) {
        (Some(o), Some(c)) => (Some(o.clone()), Some(c.clone())),
        (Some(o), None) => (
            Some(o.clone()),
            Some(Balance {
                amount: o.amount + total,
                date: o.date,
            }),
        ),
        (None, Some(c)) => (
            Some(Balance {
                amount: c.amount - total,
                date: c.date,
            }),
            Some(c.clone()),
        ),
        (None, None) => (None, None),
    };
    if let Some(b) = &opening {
        balance(out, ":60F:", b, &s.currency);
    }
    let fallback_date = closing
        .as_ref()
        .or(opening.as_ref())
        .map(|b| b.date)
        .unwrap_or_default();
    for line in booked {
        statement_line(out, line, fallback_date);
    }
    if let Some(b) = &closing {
        balance(out, ":62F:", b, &s.currency);
    }
    out.push('-');
    out.push_str(CRLF);
}

fn field(out: &mut String, tag: &str, value: &str) {
    out.push_str(tag);
    out.push_str(&one_line(value));
    out.push_str(CRLF);
}

/// A value on one line: a line break inside would start a new field.
fn one_line(value: &str) -> String {
    value.trim().replace(['\r', '\n'], " ")
}

fn balance(out: &mut String, tag: &str, b: &Balance, currency: &str) {
    out.push_str(tag);
    out.push(if b.amount < Decimal::ZERO { 'D' } else { 'C' });
    out.push_str(&yymmdd(b.date));
    out.push_str(currency);
    out.push_str(&amount(b.amount));
    out.push_str(CRLF);
}

fn statement_line(out: &mut String, line: &Line, fallback_date: NaiveDate) {
    let value_date = line
        .value_date
        .or(line.booking_date)
        .unwrap_or(fallback_date);
    out.push_str(":61:");
    out.push_str(&yymmdd(value_date));
    if let Some(booked) = line.booking_date {
        out.push_str(&format!("{:02}{:02}", booked.month(), booked.day()));
    }
    let debit = line.amount < Decimal::ZERO;
    out.push_str(match (line.reversal, debit) {
        (true, true) => "RC",
        (true, false) => "RD",
        (false, true) => "D",
        (false, false) => "C",
    });
    out.push_str(&amount(line.amount));
    let code = line
        .bank_tx_code
        .as_deref()
        .filter(|c| is_tx_type(c))
        .unwrap_or("NMSC");
    out.push_str(code);
    let customer = line
        .end_to_end_id
        .as_deref()
        .map(one_line)
        .filter(|r| !r.is_empty());
    out.push_str(customer.as_deref().unwrap_or("NONREF"));
    if let Some(bank) = line
        .bank_ref
        .as_deref()
        .map(one_line)
        .filter(|r| !r.is_empty())
    {
        out.push_str("//");
        out.push_str(&bank);
    }
    out.push_str(CRLF);
    if let Some(details) = line
        .structured
        .get("supplementary_details")
        .map(|d| one_line(d))
    {
        if !details.is_empty() && safe_start(&details) {
            out.push_str(&details);
            out.push_str(CRLF);
        }
    }
    if let Some(remittance) = &line.remittance {
        information(out, remittance);
    }
}

/// `N`/`F`/`S`-style type: a capital letter and three letters or digits.
fn is_tx_type(code: &str) -> bool {
    let b = code.as_bytes();
    b.len() == 4 && b[0].is_ascii_uppercase() && b[1..].iter().all(u8::is_ascii_alphanumeric)
}

/// `:86:` wrapped at 65 characters (not bytes: remittance may be Chinese),
/// at most 6 lines. A continuation line never starts with something a
/// reader takes for structure (`:` a tag, `-` an end marker, `{` an
/// envelope, `$` a separator) or with whitespace (a blank line would be
/// skipped), so the break moves left until it does not.
fn information(out: &mut String, remittance: &str) {
    let flat = one_line(remittance);
    let mut rest = flat.as_str();
    for i in 0..INFORMATION_LINES {
        if rest.is_empty() {
            break;
        }
        let mut cut = rest
            .char_indices()
            .nth(INFORMATION_LINE_CHARS)
            .map_or(rest.len(), |(b, _)| b);
        let mut candidate = cut;
        while candidate > 0 && candidate < rest.len() && !safe_start(&rest[candidate..]) {
            candidate = rest[..candidate]
                .char_indices()
                .next_back()
                .map_or(0, |(b, _)| b);
        }
        if candidate > 0 {
            cut = candidate;
        }
        out.push_str(if i == 0 { ":86:" } else { "" });
        out.push_str(&rest[..cut]);
        out.push_str(CRLF);
        rest = &rest[cut..];
    }
}

fn safe_start(s: &str) -> bool {
    s.chars()
        .next()
        .is_some_and(|c| !c.is_whitespace() && !matches!(c, ':' | '-' | '{' | '$'))
}

/// `YYMMDD`: two-digit year, as SWIFT writes it.
fn yymmdd(d: NaiveDate) -> String {
    format!(
        "{:02}{:02}{:02}",
        d.year().rem_euclid(100),
        d.month(),
        d.day()
    )
}

/// Unsigned, with a decimal comma (`1234,5`, `1234,`); the sign is the
/// D/C mark.
fn amount(a: Decimal) -> String {
    let s = a.abs().to_string();
    if s.contains('.') {
        s.replace('.', ",")
    } else {
        s + ","
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_written_with_a_comma_and_without_a_sign() {
        assert_eq!(amount(Decimal::new(-123450, 2)), "1234,50");
        assert_eq!(amount(Decimal::new(7, 0)), "7,");
    }

    #[test]
    fn information_is_wrapped_without_lines_that_look_like_structure() {
        let text = format!("{}:20:X", "a".repeat(65));
        let mut out = String::new();
        information(&mut out, &text);
        assert_eq!(out, format!(":86:{}\r\na:20:X\r\n", "a".repeat(64)));
        let long = "x".repeat(1000);
        let mut out = String::new();
        information(&mut out, &long);
        assert_eq!(out.lines().count(), INFORMATION_LINES);
    }
}
