//! Leaf values of a camt document: amounts, currency codes, dates, and the
//! closed code lists (credit/debit, entry status, yes/no). Strict wherever
//! money depends on the value; each failure says what was expected.

use std::str::FromStr;

use chrono::NaiveDate;
use rust_decimal::Decimal;

use crate::model::LineStatus;

/// ISO 20022 amounts have at most 18 digits, 5 of them after the point.
const MAX_DIGITS: usize = 18;
const MAX_FRACTION_DIGITS: usize = 5;

/// Direction of an amount (`CdtDbtInd`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Direction {
    Credit,
    Debit,
}

impl Direction {
    /// Signs an unsigned camt amount: credit positive, debit negative. Zero
    /// stays plain zero rather than becoming a negative zero.
    pub(super) fn sign(self, amount: Decimal) -> Decimal {
        match self {
            Direction::Debit if !amount.is_zero() => -amount,
            _ => amount,
        }
    }
}

/// Quotes what the bank sent, cut short so an error stays one readable line.
pub(super) fn shown(text: &str) -> String {
    let cut: String = text.chars().take(40).collect();
    if cut.len() < text.len() {
        format!("{cut:?}…")
    } else {
        format!("{cut:?}")
    }
}

/// An amount as the schema allows it: `xs:decimal` (an optional sign,
/// digits with an optional point, `8.`, `.8`, surrounding whitespace
/// collapsed) restricted to at least zero, 18 digits and 5 after the point.
/// We check the shape ourselves because `Decimal::from_str` also accepts
/// underscores and exponents, which the schema refuses.
pub(super) fn amount(text: &str) -> Result<Decimal, String> {
    let expected = || {
        format!(
            "expected an unsigned decimal amount such as 1234.50, found {}",
            shown(text)
        )
    };
    let trimmed = text.trim_matches(|c| matches!(c, ' ' | '\t' | '\r' | '\n'));
    let (negative, unsigned) = match trimmed.as_bytes().first() {
        Some(b'+') => (false, &trimmed[1..]),
        Some(b'-') => (true, &trimmed[1..]),
        _ => (false, trimmed),
    };
    let (int, frac) = match unsigned.split_once('.') {
        Some((int, frac)) => (int, frac),
        None => (unsigned, ""),
    };
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (int.is_empty() && frac.is_empty()) || !digits(int) || !digits(frac) {
        return Err(expected());
    }
    // The schema's totalDigits and fractionDigits count the value's digits:
    // leading zeros and trailing zeros after the point are not digits of it.
    let int = int.trim_start_matches('0');
    let frac_digits = frac.trim_end_matches('0');
    if frac_digits.len() > MAX_FRACTION_DIGITS || int.len() + frac_digits.len() > MAX_DIGITS {
        return Err(format!(
            "expected at most {MAX_DIGITS} digits with at most {MAX_FRACTION_DIGITS} after the point, found {}",
            shown(text)
        ));
    }
    // The decimals as written (1234.50 stays 1234.50), but zeros beyond the
    // fifth carry nothing.
    let frac = frac
        .get(..frac.len().min(MAX_FRACTION_DIGITS).max(frac_digits.len()))
        .unwrap_or(frac);
    let int = if int.is_empty() { "0" } else { int };
    let value = if frac.is_empty() {
        Decimal::from_str(int)
    } else {
        Decimal::from_str(&format!("{int}.{frac}"))
    }
    .map_err(|_| expected())?;
    if negative && !value.is_zero() {
        return Err(format!(
            "expected an unsigned amount (the direction is CdtDbtInd), found {}",
            shown(text)
        ));
    }
    // `-0` is zero; never a negative zero.
    Ok(value.abs())
}

/// An ISO 4217 code: three capital letters.
pub(super) fn currency(text: &str) -> Result<String, String> {
    if text.len() == 3 && text.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(text.to_owned())
    } else {
        Err(format!(
            "expected an ISO 4217 currency code such as CNY in the Ccy attribute, found {}",
            shown(text)
        ))
    }
}

/// An ISO date, or the date part of an ISO date-time as the bank wrote it
/// (banks give local times; converting to UTC would move a late booking to
/// another day).
pub(super) fn date(text: &str) -> Result<NaiveDate, String> {
    let expected = || format!("expected a date such as 2024-03-31, found {}", shown(text));
    let head = text.get(..10).ok_or_else(expected)?;
    let rest = text.get(10..).unwrap_or("");
    // After the date only a time (`T…`) or a zone (`Z`, `+08:00`) may follow.
    if !(rest.is_empty() || rest.starts_with(['T', 'Z', '+', '-'])) {
        return Err(expected());
    }
    NaiveDate::parse_from_str(head, "%Y-%m-%d").map_err(|_| expected())
}

pub(super) fn direction(text: &str) -> Result<Direction, String> {
    match text {
        "CRDT" => Ok(Direction::Credit),
        "DBIT" => Ok(Direction::Debit),
        _ => Err(format!("expected CRDT or DBIT, found {}", shown(text))),
    }
}

/// Entry status. FUTR (from .07) is a booking announced for a later day:
/// not booked yet, so it must not count towards the closing balance.
pub(super) fn status(text: &str) -> Result<LineStatus, String> {
    match text {
        "BOOK" => Ok(LineStatus::Booked),
        "PDNG" | "FUTR" => Ok(LineStatus::Pending),
        "INFO" => Ok(LineStatus::Info),
        _ => Err(format!(
            "expected an entry status BOOK, PDNG, INFO or FUTR, found {}",
            shown(text)
        )),
    }
}

/// An XML Schema boolean.
pub(super) fn yes_no(text: &str) -> Result<bool, String> {
    match text {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(format!("expected true or false, found {}", shown(text))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_keep_the_digits_the_bank_wrote() {
        assert_eq!(
            amount("1234.50").map(|d| d.to_string()),
            Ok("1234.50".to_owned())
        );
        assert_eq!(amount("0").map(|d| d.to_string()), Ok("0".to_owned()));
        assert_eq!(
            amount("000000000000000000001.5").map(|d| d.to_string()),
            Ok("1.5".to_owned())
        );
    }

    #[test]
    fn amounts_in_every_lexical_form_the_schema_allows_are_read() {
        for (input, want) in [
            (".8", "0.8"),
            ("8.", "8"),
            ("+8.50", "8.50"),
            (" 8.50\n", "8.50"),
            ("0.12345", "0.12345"),
            ("-0", "0"),
            ("-0.00", "0.00"),
            ("1.50000000", "1.50000"),
            ("007.5", "7.5"),
        ] {
            assert_eq!(
                amount(input).map(|d| d.to_string()),
                Ok(want.to_owned()),
                "{input:?}"
            );
        }
    }

    #[test]
    fn amounts_the_schema_refuses_are_rejected() {
        for bad in [
            "",
            ".",
            "+",
            "-1.00",
            "+-1",
            "1,50",
            "1e3",
            "1_000",
            "1.2.3",
            "1.123456",
            "1.1234501",
            "1234567890123456789",
            "NaN",
            "1 000",
        ] {
            assert!(amount(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    proptest::proptest! {
        /// What the schema's grammar allows (sign, digits, point, at most
        /// 18 digits and 5 decimals, not negative) is read exactly; nothing
        /// else is.
        #[test]
        fn amounts_are_read_exactly_when_the_schema_allows_them(
            sign in "[+-]?",
            int in "[0-9]{0,20}",
            point in proptest::bool::ANY,
            frac in "[0-9]{0,7}",
        ) {
            let frac = if point { frac.as_str() } else { "" };
            let text = format!("{sign}{int}{}{frac}", if point { "." } else { "" });
            let digits = !(int.is_empty() && frac.is_empty());
            let frac_digits = frac.trim_end_matches('0').len();
            let significant = int.trim_start_matches('0').len() + frac_digits;
            let value = format!("{}.{}", if int.is_empty() { "0" } else { &int }, if frac.is_empty() { "0" } else { frac });
            let zero = value.bytes().all(|b| b == b'0' || b == b'.');
            let allowed = digits && frac_digits <= 5
                && significant <= 18 && (sign != "-" || zero);
            match amount(&text) {
                Ok(d) => {
                    proptest::prop_assert!(allowed, "{text:?} was read as {d}");
                    let want = Decimal::from_str(&value).map_err(|e| proptest::test_runner::TestCaseError::fail(e.to_string()))?;
                    proptest::prop_assert_eq!(d, want, "{:?}", text);
                }
                Err(_) => proptest::prop_assert!(!allowed, "{text:?} was refused"),
            }
        }
    }

    #[test]
    fn dates_accept_a_time_or_zone_after_the_day_and_nothing_else() {
        let d = NaiveDate::from_ymd_opt(2024, 3, 31);
        assert_eq!(date("2024-03-31").ok(), d);
        assert_eq!(date("2024-03-31T23:59:59+08:00").ok(), d);
        assert_eq!(date("2024-03-31+08:00").ok(), d);
        assert!(date("2024-03-3").is_err());
        assert!(date("2024-02-30").is_err());
        assert!(date("2024-03-31x").is_err());
        assert!(date("二〇二四年三月").is_err());
    }

    #[test]
    fn debit_zero_stays_a_plain_zero() {
        assert_eq!(Direction::Debit.sign(Decimal::ZERO).to_string(), "0");
        assert_eq!(
            Direction::Debit.sign(Decimal::new(150, 2)).to_string(),
            "-1.50"
        );
    }
}
