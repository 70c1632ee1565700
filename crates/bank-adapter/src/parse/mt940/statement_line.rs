//! The `:61:` statement line, subfield by subfield: value date, optional
//! entry date, D/C/RD/RC mark, optional funds code, amount, transaction
//! type, customer reference, bank reference.

use chrono::NaiveDate;
use rust_decimal::Decimal;

use super::fields::{self, shown};

/// What came instead of the expected subfield; a truncated line says so.
fn found(rest: &str) -> String {
    if rest.trim().is_empty() {
        "but the line ends there (truncated?)".to_owned()
    } else {
        format!("found '{}'", shown(rest))
    }
}

/// One `:61:` first line, read. Borrowed from the file; the caller copies
/// what it keeps.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Entry<'a> {
    pub value_date: NaiveDate,
    pub entry_date: Option<NaiveDate>,
    /// Signed: credit positive. RC (reversal of a credit) is a debit, RD a
    /// credit.
    pub amount: Decimal,
    pub reversal: bool,
    pub funds_code: Option<&'a str>,
    /// `N`/`F`/`S` and three characters, e.g. `NTRF` (or two, when the
    /// bank padded a short code with a space).
    pub tx_type: &'a str,
    /// The type as written, when it was not the SWIFT form (` NTRF`, `NOV `).
    pub tx_type_raw: Option<&'a str>,
    /// The value date as written, when it is not a real date (`YYMMDD` of a
    /// 30 February); `value_date` is then the entry date.
    pub value_date_raw: Option<&'a str>,
    /// Up to `//`; `NONREF` and empty are `None`.
    pub customer_ref: Option<&'a str>,
    pub bank_ref: Option<&'a str>,
}

pub(super) fn parse(s: &str) -> Result<Entry<'_>, String> {
    let s = s.trim();
    let b = s.as_bytes();
    if fields::digits(s, 6).is_none() {
        return Err(format!(
            "expected the value date YYMMDD at the start of :61:, {}",
            found(s)
        ));
    }
    let mut pos = 6;
    let mmdd = s.get(6..).and_then(|r| fields::digits(r, 4));
    let (value_date, value_date_raw) = match fields::date(s) {
        Ok(d) => (d, None),
        Err(e) => {
            // German savings banks write value dates such as 30 February
            // (interest days of a 30/360 month). Such a day-of-month inside
            // a real month is kept raw and the entry date stands in for it;
            // anything else is refused.
            let quirk = fields::month_end(s)
                .zip(mmdd)
                .and_then(|(end, mmdd)| fields::entry_date(end, mmdd / 100, mmdd % 100));
            match quirk {
                Some(entry) => (entry, s.get(..6)),
                None => return Err(format!("value date: {e}")),
            }
        }
    };
    let mut entry_date = None;
    if let Some(mmdd) = mmdd {
        let (month, day) = (mmdd / 100, mmdd % 100);
        entry_date = Some(fields::entry_date(value_date, month, day).ok_or_else(|| {
            format!(
                "entry date '{mmdd:04}' (MMDD) is not a real date near the value date {value_date}"
            )
        })?);
        pos = 10;
    }
    let (negative, reversal, mark_len) = match (b.get(pos), b.get(pos + 1)) {
        (Some(b'R'), Some(b'C')) => (true, true, 2),
        (Some(b'R'), Some(b'D')) => (false, true, 2),
        (Some(b'C'), _) => (false, false, 1),
        (Some(b'D'), _) => (true, false, 1),
        _ => {
            return Err(format!(
                "expected the mark D, C, RD or RC after the date(s), {}",
                found(s.get(pos..).unwrap_or(""))
            ))
        }
    };
    pos += mark_len;
    // The funds code is the third letter of a currency code; amounts never
    // start with a letter, so a letter here can only be that.
    let mut funds_code = None;
    if b.get(pos).is_some_and(|c| c.is_ascii_alphabetic()) {
        funds_code = s.get(pos..pos + 1);
        pos += 1;
    }
    let amount_len = b
        .get(pos..)
        .unwrap_or_default()
        .iter()
        .take_while(|c| c.is_ascii_digit() || **c == b',' || **c == b'.')
        .count();
    if amount_len == 0 {
        return Err(format!(
            "expected an amount like 1234,56 after the mark, {}",
            found(s.get(pos..).unwrap_or(""))
        ));
    }
    let amount = fields::amount(s.get(pos..pos + amount_len).unwrap_or(""))?;
    pos += amount_len;
    let Some((tx_type, tx_type_raw, after)) = transaction_type(s, pos) else {
        return Err(format!(
            "expected the transaction type (N, F or S and three characters, e.g. NTRF) after the amount, {}",
            found(s.get(pos..).unwrap_or(""))
        ));
    };
    let references = s.get(after..).unwrap_or("");
    let (customer, bank) = match references.split_once("//") {
        Some((c, b)) => (c, Some(b)),
        None => (references, None),
    };
    let customer_ref =
        Some(customer.trim()).filter(|c| !c.is_empty() && !c.eq_ignore_ascii_case("NONREF"));
    let bank_ref = bank.map(str::trim).filter(|b| !b.is_empty());
    Ok(Entry {
        value_date,
        entry_date,
        amount: if negative { -amount } else { amount },
        reversal,
        funds_code,
        tx_type,
        tx_type_raw,
        value_date_raw,
        customer_ref,
        bank_ref,
    })
}

/// The transaction type starting at `pos`: `(code, raw, end)`. The SWIFT
/// form is a letter and three letters or digits (`NTRF`); real exports also
/// write a space before it (` NTRF`) or a three-character code padded with a
/// space (`NOV `, `NIC `). What is unambiguous is read, with the raw text
/// kept when it was not the SWIFT form; anything else is `None`.
fn transaction_type(s: &str, pos: usize) -> Option<(&str, Option<&str>, usize)> {
    let b = s.as_bytes();
    let start = pos + b.get(pos..)?.iter().take_while(|c| **c == b' ').count();
    let first = *b.get(start)?;
    if !first.is_ascii_uppercase() {
        return None;
    }
    let more = b
        .get(start + 1..)?
        .iter()
        .take(3)
        .take_while(|c| c.is_ascii_alphanumeric())
        .count();
    let end = start + 1 + more;
    let code = s.get(start..end)?;
    let padded = more == 2 && matches!(b.get(end), None | Some(b' '));
    if more == 3 && start == pos {
        return Some((code, None, end));
    }
    if more == 3 || padded {
        let raw_end = if padded { (end + 1).min(s.len()) } else { end };
        return Some((code, s.get(pos..raw_end), raw_end));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap_or_default()
    }

    #[test]
    fn a_full_statement_line_is_read_subfield_by_subfield() {
        let e = parse("2612310102RCR1234,5NTRFE2E-1//BANK 9");
        assert_eq!(
            e,
            Ok(Entry {
                value_date: date(2026, 12, 31),
                entry_date: Some(date(2027, 1, 2)),
                amount: Decimal::new(-12345, 1),
                reversal: true,
                funds_code: Some("R"),
                tx_type: "NTRF",
                tx_type_raw: None,
                value_date_raw: None,
                customer_ref: Some("E2E-1"),
                bank_ref: Some("BANK 9"),
            })
        );
    }

    #[test]
    fn optional_subfields_may_be_missing() {
        let e = parse("260901D10,NMSCNONREF");
        assert_eq!(e.as_ref().map(|e| e.amount), Ok(Decimal::new(-10, 0)));
        assert_eq!(
            e.as_ref()
                .map(|e| (e.entry_date, e.customer_ref, e.bank_ref)),
            Ok((None, None, None))
        );
        let rd = parse("260901RD5,00FCHGREF");
        assert_eq!(
            rd.map(|e| (e.amount, e.reversal)),
            Ok((Decimal::new(500, 2), true))
        );
    }

    #[test]
    fn transaction_types_as_real_banks_write_them_are_read_and_kept_raw() {
        let table = [
            ("260901C1,NTRFREF", "NTRF", None, Some("REF")),
            ("260901C1, NTRFREF", "NTRF", Some(" NTRF"), Some("REF")),
            ("260901C1,NOV REF", "NOV", Some("NOV "), Some("REF")),
            ("260901C1,NIC ", "NIC", Some("NIC"), None),
            ("260901C1,NIC", "NIC", Some("NIC"), None),
            ("260901C1,NMSC123456//B1", "NMSC", None, Some("123456")),
        ];
        for (input, code, raw, customer) in table {
            let e = parse(input).map(|e| (e.tx_type, e.tx_type_raw, e.customer_ref));
            assert_eq!(e, Ok((code, raw, customer)), "{input}");
        }
    }

    #[test]
    fn a_value_date_of_30_february_takes_the_entry_date_and_is_kept_raw() {
        let e = parse("2602300302C1,NTRF").map(|e| (e.value_date, e.entry_date, e.value_date_raw));
        assert_eq!(
            e,
            Ok((date(2026, 3, 2), Some(date(2026, 3, 2)), Some("260230")))
        );
        // Without an entry date there is nothing to stand in: refused.
        assert!(parse("260230C1,NTRF").is_err());
    }

    #[test]
    fn broken_statement_lines_say_what_was_expected() {
        let table = [
            ("2609", "value date"),
            ("261301C1,NTRF", "not a real date"),
            ("2609010230C1,NTRF", "entry date"),
            ("260901X1,NTRF", "mark"),
            ("260901C", "amount"),
            ("260901C12.34NTRF", "dot"),
            ("260901C12,34", "transaction type"),
            ("260901C12,34N1", "transaction type"),
            ("260901C12,34 N", "transaction type"),
            ("260901C12,34 ", "transaction type"),
            ("260901C12,34nTRF", "transaction type"),
            ("260230C12,34NTRF", "not a real date"),
            ("261331C12,34NTRF", "not a real date"),
            ("260901C12,34é", "transaction type"),
        ];
        for (input, want) in table {
            match parse(input) {
                Err(message) => assert!(message.contains(want), "{input}: {message}"),
                Ok(e) => panic!("{input} parsed as {e:?}"),
            }
        }
    }
}
