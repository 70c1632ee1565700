//! The small SWIFT shapes MT940/MT942 fields are built from: `YYMMDD`
//! dates, comma-decimal amounts, currency codes, balances. Each function
//! returns what it expected on failure; the caller adds the line.

use chrono::{Datelike, NaiveDate};
use rust_decimal::Decimal;

/// Digits in a SWIFT amount (`15d` includes the comma); 18 still fits an
/// `i64` mantissa exactly, so a sloppy but honest bank is not refused.
const MAX_AMOUNT_DIGITS: usize = 18;

/// The input as shown in an error: bounded, so a garbage line does not
/// become a megabyte error message.
pub(super) fn shown(s: &str) -> String {
    let mut out: String = s.chars().take(40).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

/// `n` ASCII digits at the start of `s`, as a number.
pub(super) fn digits(s: &str, n: usize) -> Option<u32> {
    let part = s.as_bytes().get(..n)?;
    part.iter().try_fold(0u32, |acc, c| {
        c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
    })
}

/// `YYMMDD`. SWIFT years have two digits: 80–99 are read as 19xx, 00–79 as
/// 20xx (the usual pivot; statements before 1980 or after 2079 are not ours).
pub(super) fn date(s: &str) -> Result<NaiveDate, String> {
    let (Some(yy), Some(mm), Some(dd)) = (
        digits(s, 2),
        s.get(2..).and_then(|r| digits(r, 2)),
        s.get(4..).and_then(|r| digits(r, 2)),
    ) else {
        return Err(format!("expected a date YYMMDD, found '{}'", shown(s)));
    };
    let year = if yy >= 80 { 1900 + yy } else { 2000 + yy };
    NaiveDate::from_ymd_opt(year as i32, mm, dd).ok_or_else(|| {
        format!(
            "'{}' is not a real date (YYMMDD)",
            shown(s.get(..6).unwrap_or(s))
        )
    })
}

/// The last day of the month of a `YYMMDD` whose day does not exist in
/// that month (30 February, 31 April) but is at most 31: the anchor for a
/// bank's interest-day quirk. `None` for any other date or non-date.
pub(super) fn month_end(s: &str) -> Option<NaiveDate> {
    let (yy, mm, dd) = (
        digits(s, 2)?,
        s.get(2..).and_then(|r| digits(r, 2))?,
        s.get(4..).and_then(|r| digits(r, 2))?,
    );
    let year = if yy >= 80 { 1900 + yy } else { 2000 + yy } as i32;
    if !(1..=12).contains(&mm)
        || !(1..=31).contains(&dd)
        || NaiveDate::from_ymd_opt(year, mm, dd).is_some()
    {
        return None;
    }
    let first_of_next = if mm == 12 {
        NaiveDate::from_ymd_opt(year + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(year, mm.checked_add(1)?, 1)
    }?;
    first_of_next.pred_opt()
}

/// The entry (booking) date `MMDD` of a `:61:`, which has no year: the year
/// that puts it closest to the value date, so a December value date booked
/// on 2 January is booked next year, and the reverse.
pub(super) fn entry_date(value: NaiveDate, month: u32, day: u32) -> Option<NaiveDate> {
    let year = value.year();
    [year - 1, year, year + 1]
        .into_iter()
        .filter_map(|y| NaiveDate::from_ymd_opt(y, month, day))
        .min_by_key(|d| (*d - value).num_days().abs())
}

/// A SWIFT amount: digits, one comma, optional decimals (`1234,56`,
/// `1234,`). Exact; a dot, a missing comma, a sign or too many digits is an
/// error, never a guess.
pub(super) fn amount(s: &str) -> Result<Decimal, String> {
    let s = s.trim();
    if s.contains('.') {
        return Err(format!(
            "amount '{}' uses a dot: expected a comma decimal separator like 1234,56",
            shown(s)
        ));
    }
    let Some((whole, fraction)) = s.split_once(',') else {
        return Err(format!(
            "amount '{}' has no decimal comma: expected an amount like 1234,56 or 1234,",
            shown(s)
        ));
    };
    let all_digits = |p: &str| p.bytes().all(|c| c.is_ascii_digit());
    if whole.is_empty() || !all_digits(whole) || !all_digits(fraction) {
        return Err(format!(
            "amount '{}' is not digits with one decimal comma: expected an amount like 1234,56",
            shown(s)
        ));
    }
    if whole.len() + fraction.len() > MAX_AMOUNT_DIGITS {
        return Err(format!(
            "amount '{}' has more than {MAX_AMOUNT_DIGITS} digits",
            shown(s)
        ));
    }
    let mantissa = whole
        .bytes()
        .chain(fraction.bytes())
        .fold(0i64, |acc, c| acc * 10 + i64::from(c - b'0'));
    Decimal::try_new(mantissa, fraction.len() as u32)
        .map_err(|e| format!("amount '{}' cannot be represented: {e}", shown(s)))
}

/// An ISO 4217 code: three ASCII capital letters.
pub(super) fn currency(s: &str) -> Result<&str, String> {
    match s.get(..3) {
        Some(c) if c.bytes().all(|b| b.is_ascii_uppercase()) => Ok(c),
        _ => Err(format!(
            "expected a three-letter ISO 4217 currency code, found '{}'",
            shown(s)
        )),
    }
}

/// A balance field (`:60F:`, `:62F:`, `:64:`, `:65:`): `C` or `D`, `YYMMDD`,
/// currency, amount. Signed: a debit balance is negative.
pub(super) struct BalanceField<'a> {
    pub amount: Decimal,
    pub date: NaiveDate,
    pub currency: &'a str,
}

pub(super) fn balance(s: &str) -> Result<BalanceField<'_>, String> {
    let s = s.trim();
    let negative = match s.as_bytes().first() {
        Some(b'C') => false,
        Some(b'D') => true,
        _ => {
            return Err(format!(
                "expected the mark C or D, a date YYMMDD, a currency and an amount like C260901CNY1234,56; found '{}'",
                shown(s)
            ))
        }
    };
    let date = date(s.get(1..).unwrap_or(""))?;
    let rest = s.get(7..).unwrap_or("");
    let currency = currency(rest)?;
    let amount = amount(rest.get(3..).unwrap_or(""))?;
    Ok(BalanceField {
        amount: if negative { -amount } else { amount },
        date,
        currency,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_exact_and_only_take_a_comma() {
        let ok = [
            ("1234,56", "1234.56"),
            ("1234,", "1234"),
            ("0,5", "0.5"),
            (" 7,00 ", "7.00"),
        ];
        for (input, want) in ok {
            assert_eq!(
                amount(input).map(|d| d.to_string()),
                Ok(want.to_string()),
                "{input}"
            );
        }
        for bad in [
            "12.34",
            "1234",
            ",5",
            "-1,0",
            "1,2,3",
            "",
            "1a,0",
            "1234567890123456789,0",
        ] {
            assert!(amount(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn entry_dates_roll_over_the_year_towards_the_value_date() {
        let d = |y, m, day| NaiveDate::from_ymd_opt(y, m, day);
        let dec = d(2026, 12, 31).unwrap_or_default();
        assert_eq!(entry_date(dec, 1, 2), d(2027, 1, 2));
        let jan = d(2027, 1, 1).unwrap_or_default();
        assert_eq!(entry_date(jan, 12, 30), d(2026, 12, 30));
        let mid = d(2026, 6, 15).unwrap_or_default();
        assert_eq!(entry_date(mid, 6, 16), d(2026, 6, 16));
        assert_eq!(entry_date(mid, 2, 30), None);
    }

    #[test]
    fn impossible_dates_are_refused() {
        assert!(date("261301").is_err());
        assert!(date("260230").is_err());
        assert!(date("2609").is_err());
        assert_eq!(date("991231").ok(), NaiveDate::from_ymd_opt(1999, 12, 31));
    }

    #[test]
    fn debit_balances_are_negative() {
        let b = balance("D260901EUR10,5").map(|b| (b.amount.to_string(), b.currency));
        assert_eq!(b, Ok(("-10.5".to_string(), "EUR")));
    }
}
