//! Figures and dates as a bureau writes them: yuan with thousands
//! separators from integer fen (no floats anywhere), dates as 2026年12月5日.

use chrono::{Datelike, NaiveDate};

use crate::console::Lang;

/// Fen as yuan: `¥1,234,567.89`, a minus sign before a negative figure.
pub fn yuan(minor: i64) -> String {
    let abs = minor.unsigned_abs();
    let whole = (abs / 100).to_string();
    let fen = abs % 100;
    let mut grouped = String::with_capacity(whole.len() + whole.len() / 3);
    for (n, c) in whole.chars().enumerate() {
        if n > 0 && (whole.len() - n).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(c);
    }
    let sign = if minor < 0 { "-" } else { "" };
    format!("{sign}¥{grouped}.{fen:02}")
}

/// A decimal string of yuan at two places (`"-1234.50"`, as the
/// application layer writes amounts) as [`yuan`] writes it; anything else
/// is shown as it came.
pub fn yuan_text(text: &str) -> String {
    match text.split_once('.') {
        Some((whole, fen)) if fen.len() == 2 => format!("{whole}{fen}")
            .parse::<i64>()
            .map(yuan)
            .unwrap_or_else(|_| text.to_string()),
        _ => text.to_string(),
    }
}

/// Basis points as a percentage with two decimals: `87.53%`.
pub fn percent(bp: i64) -> String {
    let sign = if bp < 0 { "-" } else { "" };
    let abs = bp.unsigned_abs();
    format!("{sign}{}.{:02}%", abs / 100, abs % 100)
}

/// 2026年12月5日 in Chinese, 2026-12-05 in English.
pub fn date(lang: Lang, d: NaiveDate) -> String {
    match lang {
        Lang::Zh => format!("{}年{}月{}日", d.year(), d.month(), d.day()),
        Lang::En => d.format("%Y-%m-%d").to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yuan_groups_thousands_from_fen() {
        assert_eq!(yuan(0), "¥0.00");
        assert_eq!(yuan(5), "¥0.05");
        assert_eq!(yuan(99_999), "¥999.99");
        assert_eq!(yuan(100_000), "¥1,000.00");
        assert_eq!(yuan(123_456_789), "¥1,234,567.89");
        assert_eq!(yuan(-123_456_789), "-¥1,234,567.89");
        assert_eq!(yuan(i64::MIN), "-¥92,233,720,368,547,758.08");
    }

    #[test]
    fn percent_and_dates() {
        assert_eq!(percent(8753), "87.53%");
        assert_eq!(percent(5), "0.05%");
        assert_eq!(percent(-120), "-1.20%");
        let d = NaiveDate::from_ymd_opt(2026, 12, 5).unwrap();
        assert_eq!(date(Lang::Zh, d), "2026年12月5日");
        assert_eq!(date(Lang::En, d), "2026-12-05");
    }
}
