//! Parsing: bytes in, normalized statements out. Format detection by
//! content, the checks that are ours rather than the bank's (a statement's
//! lines add up; consecutive statements chain), and one error type that says
//! what, where and why. Parsers are pure functions over bytes.

pub mod camt;
pub mod csv;
pub mod mt940;

use rust_decimal::Decimal;
use sha2::{Digest, Sha256};

use crate::model::{Format, LineStatus, ParseOutput, Statement, Warning};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("cannot tell the format of this file: {reason}")]
    UnknownFormat { reason: String },
    #[error("{format} {at}: {message}")]
    Malformed {
        format: &'static str,
        at: String,
        message: String,
    },
    #[error("{format} {at}: opening balance {opening} + booked lines {lines} = {computed}, but the closing balance is {closing}")]
    DoesNotAddUp {
        format: &'static str,
        at: String,
        opening: Decimal,
        lines: Decimal,
        computed: Decimal,
        closing: Decimal,
    },
    #[error("{at}: {message}")]
    Encoding { at: String, message: String },
}

impl ParseError {
    pub fn code(&self) -> &'static str {
        match self {
            ParseError::UnknownFormat { .. } => "unknown_format",
            ParseError::Malformed { .. } => "malformed_feed",
            ParseError::DoesNotAddUp { .. } => "statement_does_not_add_up",
            ParseError::Encoding { .. } => "bad_encoding",
        }
    }

    pub fn malformed(format: Format, at: impl Into<String>, message: impl Into<String>) -> Self {
        ParseError::Malformed {
            format: format.code(),
            at: at.into(),
            message: message.into(),
        }
    }
}

/// What a parser needs to know about the file beyond its bytes.
#[derive(Debug, Clone)]
pub struct FileContext {
    pub sha256: String,
}

impl FileContext {
    pub fn of(bytes: &[u8]) -> Self {
        FileContext {
            sha256: hex::encode(Sha256::digest(bytes)),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct ParseOptions {
    /// `None`: detect by content.
    pub format: Option<Format>,
    /// For CSV: the bank's column mapping and encoding.
    pub csv: Option<csv::CsvMapping>,
}

/// Detects the format by content (never by file name).
pub fn detect(bytes: &[u8]) -> Result<Format, ParseError> {
    let head = &bytes[..bytes.len().min(4096)];
    let text = String::from_utf8_lossy(head);
    let trimmed = text.trim_start_matches('\u{feff}').trim_start();
    if trimmed.starts_with('<') {
        // The message element names the message, whatever its prefix; a
        // namespace mentioned in free text must not decide.
        for (element, format) in [
            ("BkToCstmrStmt", Format::Camt053),
            ("BkToCstmrDbtCdtNtfctn", Format::Camt054),
            ("BkToCstmrAcctRpt", Format::Camt052),
        ] {
            if text.contains(&format!("<{element}")) || text.contains(&format!(":{element}")) {
                return Ok(format);
            }
        }
        for (namespace, format) in [
            (":camt.053.", Format::Camt053),
            (":camt.054.", Format::Camt054),
            (":camt.052.", Format::Camt052),
        ] {
            if text.contains(namespace) {
                return Ok(format);
            }
        }
        return Err(ParseError::UnknownFormat {
            reason: "an XML document that is not camt.052, camt.053 or camt.054".into(),
        });
    }
    let has = |tag: &str| text.contains(&format!("\n{tag}")) || trimmed.starts_with(tag);
    if has(":20:") && (has(":25:") || has(":28C:")) {
        // MT942 has a floor limit (:34F:) and no opening balance (:60F:).
        if has(":34F:") || (!has(":60F:") && !has(":60M:")) {
            return Ok(Format::Mt942);
        }
        return Ok(Format::Mt940);
    }
    if trimmed.starts_with("{1:") || trimmed.starts_with("{4:") {
        return Ok(if has(":34F:") {
            Format::Mt942
        } else {
            Format::Mt940
        });
    }
    let first_line = trimmed.lines().next().unwrap_or("");
    if first_line.contains(',') || first_line.contains(';') || first_line.contains('\t') {
        return Ok(Format::Csv);
    }
    // GBK/GB18030 exports are not UTF-8; their separators are still ASCII.
    if head.iter().any(|b| *b >= 0x80) && head.iter().any(|b| matches!(b, b',' | b';' | b'\t')) {
        return Ok(Format::Csv);
    }
    Err(ParseError::UnknownFormat {
        reason: "neither XML (camt), SWIFT MT (:20: and :25: tags) nor a delimited export".into(),
    })
}

/// Parses a file into normalized statements and checks them.
pub fn parse(bytes: &[u8], options: &ParseOptions) -> Result<ParseOutput, ParseError> {
    let format = match options.format {
        Some(f) => f,
        None => detect(bytes)?,
    };
    let ctx = FileContext::of(bytes);
    let mut out = match format {
        Format::Camt052 | Format::Camt053 | Format::Camt054 => camt::parse(bytes, format, &ctx)?,
        Format::Mt940 | Format::Mt942 => mt940::parse(bytes, format, &ctx)?,
        Format::Csv => {
            let mapping = options
                .csv
                .as_ref()
                .ok_or_else(|| ParseError::UnknownFormat {
                    reason: "a CSV export needs the bank's column mapping (--mapping)".into(),
                })?;
            csv::parse(bytes, mapping, &ctx)?
        }
    };
    for s in &out.statements {
        check_adds_up(s)?;
    }
    let chain = check_chain(&out.statements);
    out.warnings.extend(chain);
    Ok(out)
}

/// Ours, not the bank's: opening + booked lines = closing, exactly.
pub fn check_adds_up(s: &Statement) -> Result<(), ParseError> {
    let (Some(opening), Some(closing)) = (&s.opening_balance, &s.closing_balance) else {
        return Ok(());
    };
    let lines: Decimal = s
        .lines
        .iter()
        .filter(|l| l.status == LineStatus::Booked)
        .map(|l| l.amount)
        .sum();
    let computed = opening.amount + lines;
    if computed != closing.amount {
        return Err(ParseError::DoesNotAddUp {
            format: s.format.code(),
            at: format!(
                "statement {} of account {}{}",
                s.statement_id,
                s.account,
                s.source
                    .line
                    .map(|l| format!(" (line {l})"))
                    .or_else(|| s.source.path.as_ref().map(|p| format!(" ({p})")))
                    .unwrap_or_default()
            ),
            opening: opening.amount,
            lines,
            computed,
            closing: closing.amount,
        });
    }
    Ok(())
}

/// Consecutive statements of one account in one file must chain: each
/// opening balance equals the previous closing balance. A break is reported,
/// never papered over.
pub fn check_chain(statements: &[Statement]) -> Vec<Warning> {
    let mut warnings = Vec::new();
    let mut last: std::collections::HashMap<(&str, &str), &Statement> = Default::default();
    for s in statements {
        let key = (s.account.as_str(), s.currency.as_str());
        if let (Some(prev), Some(opening)) = (last.get(&key), &s.opening_balance) {
            if let Some(closing) = &prev.closing_balance {
                if closing.amount != opening.amount {
                    warnings.push(Warning {
                        at: format!("statement {} of account {}", s.statement_id, s.account),
                        message: format!(
                            "opening balance {} does not continue the previous statement {}'s closing balance {}: a statement is missing or wrong",
                            opening.amount, prev.statement_id, closing.amount
                        ),
                    });
                }
            }
        }
        if let (Some(prev), Some(next)) = (last.get(&key), s.sequence.as_deref()) {
            if let (Some(a), Some(b)) =
                (prev.sequence.as_deref().and_then(sequence), sequence(next))
            {
                let continues = b == (a.0, a.1 + 1) || (b.0 == a.0 + 1 && b.1 <= 1);
                if !continues {
                    warnings.push(Warning {
                        at: format!("statement {} of account {}", s.statement_id, s.account),
                        message: format!(
                            "sequence {next} does not follow {}: a statement or page is missing",
                            prev.sequence.as_deref().unwrap_or("")
                        ),
                    });
                }
            }
        }
        last.insert(key, s);
    }
    warnings
}

/// A statement sequence "N" or "N/P" as (number, page); page 0 when absent.
fn sequence(text: &str) -> Option<(u64, u64)> {
    let (n, p) = match text.split_once('/') {
        Some((n, p)) => (n, Some(p)),
        None => (text, None),
    };
    let n = n.trim().parse().ok()?;
    let p = match p {
        Some(p) => p.trim().parse().ok()?,
        None => 0,
    };
    Some((n, p))
}
