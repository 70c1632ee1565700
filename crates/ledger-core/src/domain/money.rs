//! Money: exact amounts in integer minor units of one currency, and the only
//! conversions to and from `rust_decimal` at the edges.

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::domain::error::LedgerError;

/// A currency the ledger books, with its fixed minor-unit exponent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Currency {
    #[serde(rename = "CNY")]
    Cny,
    #[serde(rename = "HKD")]
    Hkd,
    #[serde(rename = "USD")]
    Usd,
}

impl Currency {
    /// Digits after the decimal point (CNY: fen, 2).
    pub fn exponent(self) -> u32 {
        match self {
            Currency::Cny | Currency::Hkd | Currency::Usd => 2,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Currency::Cny => "CNY",
            Currency::Hkd => "HKD",
            Currency::Usd => "USD",
        }
    }
}

impl FromStr for Currency {
    type Err = LedgerError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "CNY" => Ok(Currency::Cny),
            "HKD" => Ok(Currency::Hkd),
            "USD" => Ok(Currency::Usd),
            other => Err(LedgerError::UnsupportedCurrency {
                currency: other.to_string(),
            }),
        }
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A strictly positive amount in minor units: what every posting moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "i64")]
pub struct Amount(i64);

impl TryFrom<i64> for Amount {
    type Error = LedgerError;
    fn try_from(minor: i64) -> Result<Self, Self::Error> {
        Amount::from_minor(minor)
    }
}

impl From<Amount> for i64 {
    fn from(amount: Amount) -> i64 {
        amount.0
    }
}

impl Amount {
    pub fn from_minor(minor: i64) -> Result<Self, LedgerError> {
        if minor <= 0 {
            return Err(LedgerError::AmountMustBePositive {
                amount: minor.to_string(),
            });
        }
        Ok(Amount(minor))
    }

    /// Exact conversion from a decimal in major units; more digits than the
    /// currency allows is an error, never a rounding.
    pub fn from_decimal(value: Decimal, currency: Currency) -> Result<Self, LedgerError> {
        let minor = decimal_to_minor(value, currency)?;
        Amount::from_minor(minor).map_err(|_| LedgerError::AmountMustBePositive {
            amount: value.to_string(),
        })
    }

    /// Parses a decimal string such as `"1234.50"` (the JSON and CLI form).
    pub fn parse(text: &str, currency: Currency) -> Result<Self, LedgerError> {
        let value = parse_decimal(text)?;
        Amount::from_decimal(value, currency)
    }

    pub fn minor(self) -> i64 {
        self.0
    }

    pub fn checked_add(self, other: Amount) -> Result<Amount, LedgerError> {
        self.0
            .checked_add(other.0)
            .map(Amount)
            .ok_or(LedgerError::AmountOverflow)
    }
}

/// Parses a decimal string strictly: no exponent, no thousands separators,
/// no surrounding whitespace.
pub fn parse_decimal(text: &str) -> Result<Decimal, LedgerError> {
    let invalid = || LedgerError::InvalidAmount {
        text: text.to_string(),
    };
    let body = text.strip_prefix('-').unwrap_or(text);
    let well_formed = !body.is_empty()
        && body.chars().all(|c| c.is_ascii_digit() || c == '.')
        && body.chars().filter(|c| *c == '.').count() <= 1
        && !body.starts_with('.')
        && !body.ends_with('.');
    if !well_formed {
        return Err(invalid());
    }
    Decimal::from_str(text).map_err(|_| invalid())
}

/// Exact decimal → signed minor units.
pub fn decimal_to_minor(value: Decimal, currency: Currency) -> Result<i64, LedgerError> {
    let exponent = currency.exponent();
    let normalized = value.normalize();
    if normalized.scale() > exponent {
        return Err(LedgerError::TooManyDecimals {
            amount: value.to_string(),
            currency,
            allowed: exponent,
        });
    }
    let scaled = normalized
        .checked_mul(Decimal::from(10_i64.pow(exponent)))
        .ok_or(LedgerError::AmountOverflow)?;
    // scale is now 0: the mantissa is the integer value.
    let scaled = scaled.normalize();
    let mantissa = scaled.mantissa();
    debug_assert_eq!(scaled.scale(), 0);
    i64::try_from(mantissa).map_err(|_| LedgerError::AmountOverflow)
}

/// Signed minor units → decimal with exactly the currency's scale (`"12.50"`).
pub fn minor_to_decimal(minor: i64, currency: Currency) -> Decimal {
    Decimal::new(minor, currency.exponent())
}

/// Formats signed minor units as a decimal string with the currency's scale.
pub fn format_minor(minor: i64, currency: Currency) -> String {
    minor_to_decimal(minor, currency).to_string()
}

/// Checked signed addition on minor units.
pub fn add_minor(a: i64, b: i64) -> Result<i64, LedgerError> {
    a.checked_add(b).ok_or(LedgerError::AmountOverflow)
}

/// Checked signed subtraction on minor units.
pub fn sub_minor(a: i64, b: i64) -> Result<i64, LedgerError> {
    a.checked_sub(b).ok_or(LedgerError::AmountOverflow)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(text: &str, expected: Result<i64, &str>) {
        let got = Amount::parse(text, Currency::Cny).map(Amount::minor);
        match expected {
            Ok(minor) => assert_eq!(got, Ok(minor), "parsing {text:?}"),
            Err(code) => assert_eq!(got.map_err(|e| e.code()), Err(code), "parsing {text:?}"),
        }
    }

    #[test]
    fn decimal_strings_convert_exactly_or_are_rejected() {
        check("1234.50", Ok(123_450));
        check("1234.5", Ok(123_450));
        check("0.01", Ok(1));
        check("5000", Ok(500_000));
        check("5000.000", Ok(500_000));
        check("0.001", Err("too_many_decimals"));
        check("10.005", Err("too_many_decimals"));
        check("0", Err("amount_must_be_positive"));
        check("-3.00", Err("amount_must_be_positive"));
        check("", Err("invalid_amount"));
        check("1e5", Err("invalid_amount"));
        check("1,000.00", Err("invalid_amount"));
        check(" 12.00", Err("invalid_amount"));
        check("12.", Err("invalid_amount"));
        check("abc", Err("invalid_amount"));
        check("99999999999999999999999", Err("amount_overflow"));
    }

    #[test]
    fn minor_units_format_with_the_currency_scale() {
        assert_eq!(format_minor(123_450, Currency::Cny), "1234.50");
        assert_eq!(format_minor(-1, Currency::Cny), "-0.01");
        assert_eq!(format_minor(0, Currency::Cny), "0.00");
    }

    #[test]
    fn unknown_currencies_are_rejected() {
        assert_eq!(
            "EUR".parse::<Currency>().map_err(|e| e.code()),
            Err("unsupported_currency")
        );
    }
}
