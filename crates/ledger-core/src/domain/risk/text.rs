//! How figures read in a summary an officer acts on: amounts with thousands
//! separators at the currency's scale, ratios as percentages with two
//! decimals. Integer arithmetic only; nothing here rounds an amount.

use crate::domain::money::Currency;

/// `3178978` fen → `"31,789.78"`; negative amounts keep their sign.
pub fn amount(minor: i64, currency: Currency) -> String {
    amount_wide(i128::from(minor), currency)
}

/// The same for sums that may exceed an `i64`.
pub fn amount_wide(minor: i128, currency: Currency) -> String {
    let exponent = currency.exponent();
    let unit = 10_u128.pow(exponent);
    let magnitude = minor.unsigned_abs();
    let whole = (magnitude / unit).to_string();
    let mut grouped = String::with_capacity(whole.len() + whole.len() / 3);
    for (i, digit) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    let sign = if minor < 0 { "-" } else { "" };
    if exponent == 0 {
        return format!("{sign}{grouped}");
    }
    let fraction = magnitude % unit;
    let width = exponent as usize;
    format!("{sign}{grouped}.{fraction:0width$}")
}

/// Basis points → `"22.54%"` (10000 bp = 100%).
pub fn percent(bp: i128) -> String {
    let sign = if bp < 0 { "-" } else { "" };
    let magnitude = bp.unsigned_abs();
    format!("{sign}{}.{:02}%", magnitude / 100, magnitude % 100)
}

/// `a / b` in basis points, rounded down (towards the more alarming figure
/// only in display: thresholds are compared exactly, never on this).
pub fn ratio_bp(numerator: i128, denominator: i128) -> Option<i128> {
    numerator.checked_mul(10_000)?.checked_div(denominator)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(minor: i64, expected: &str) {
        assert_eq!(amount(minor, Currency::Cny), expected);
    }

    #[test]
    fn amounts_read_with_thousands_separators_and_two_decimals() {
        check(0, "0.00");
        check(5, "0.05");
        check(100, "1.00");
        check(99_999, "999.99");
        check(100_000, "1,000.00");
        check(3_178_978, "31,789.78");
        check(18_338_022, "183,380.22");
        check(100_000_000_000, "1,000,000,000.00");
        check(-123_456, "-1,234.56");
        check(i64::MIN, "-92,233,720,368,547,758.08");
    }

    #[test]
    fn basis_points_read_as_percentages() {
        assert_eq!(percent(2_254), "22.54%");
        assert_eq!(percent(10_000), "100.00%");
        assert_eq!(percent(5), "0.05%");
        assert_eq!(percent(-150), "-1.50%");
        assert_eq!(ratio_bp(3_178_978, 18_338_022), Some(1_733));
        assert_eq!(ratio_bp(1, 0), None);
    }
}
