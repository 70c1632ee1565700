//! Parsing: bytes in, normalized statements out. Format detection by
//! content, the checks that are ours rather than the bank's (a statement's
//! lines add up; consecutive statements chain), and one error type that says
//! what, where and why. Parsers are pure functions over bytes.

pub mod camt;
pub mod csv;
pub mod mt940;

use std::io::BufRead;

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
    /// For camt: the document's text encoding, overriding its XML
    /// declaration (`--encoding`); `None` decodes by the declaration.
    pub encoding: Option<&'static encoding_rs::Encoding>,
}

/// The formats this crate reads, for messages that refuse a file.
pub const SUPPORTED: &str = "supported: camt.052, camt.053 and camt.054 (versions 001.02 to 001.13), MT940, MT942, and CSV or .xlsx exports with the bank's column mapping (--mapping)";

/// What a file that is none of ours looks like, from its first bytes, or
/// `None` when it could still be one of ours.
fn recognise_foreign(head: &[u8], text: &str) -> Option<String> {
    if csv::is_xlsx(head) {
        return None;
    }
    let seen = if head.is_empty() {
        "an empty file"
    } else if head.starts_with(b"PK\x03\x04") {
        "a zip archive (zipped statements?): unpack it first"
    } else if head.starts_with(b"\x1f\x8b") {
        "a gzip archive: unpack it first"
    } else if head.starts_with(b"%PDF") {
        "a PDF document: banks' PDF statements cannot be read; ask for camt.053 or MT940"
    } else if head.starts_with(b"\xD0\xCF\x11\xE0") {
        "a legacy Excel (.xls) workbook: export the sheet as CSV"
    } else if text.starts_with("01,") && text.lines().any(|l| l.starts_with("02,")) {
        "a BAI2 cash-management file (records 01, 02, 03): BAI2 is not supported"
    } else if head.contains(&0) {
        "binary data (NUL bytes)"
    } else {
        return None;
    };
    Some(seen.to_owned())
}

/// Detects the format by content (never by file name).
pub fn detect(bytes: &[u8]) -> Result<Format, ParseError> {
    let head = &bytes[..bytes.len().min(4096)];
    if let Some(seen) = recognise_foreign(head, &String::from_utf8_lossy(head)) {
        return Err(ParseError::UnknownFormat {
            reason: format!("{seen}; {SUPPORTED}"),
        });
    }
    let text = String::from_utf8_lossy(head);
    let trimmed = text.trim_start_matches('\u{feff}').trim_start();
    if csv::is_xlsx(head) {
        // A spreadsheet export: read with the bank's mapping, like CSV.
        return Ok(Format::Csv);
    }
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
        let root = trimmed
            .split('<')
            .map(|t| t.trim_start_matches('/'))
            .find(|t| !t.is_empty() && !t.starts_with(['?', '!']))
            .and_then(|t| t.split(|c: char| c.is_whitespace() || c == '>').next())
            .unwrap_or("");
        return Err(ParseError::UnknownFormat {
            reason: format!(
                "an XML document whose root element is <{}> and which is not camt.052, camt.053 or camt.054; {SUPPORTED}",
                root.chars().take(60).collect::<String>()
            ),
        });
    }
    // Lines may end in LF, CRLF or CR alone (old host exports).
    let has = |tag: &str| {
        text.contains(&format!("\n{tag}"))
            || text.contains(&format!("\r{tag}"))
            || trimmed.starts_with(tag)
    };
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
    let tags = [":20:", ":25:", ":28C:", ":60F:", ":61:", ":62F:", ":86:"];
    if tags.iter().any(|t| has(t)) {
        return Err(ParseError::UnknownFormat {
            reason: format!("SWIFT MT fields without a :20: transaction reference and a :25: account (a fragment of a statement?); {SUPPORTED}"),
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
    let first: String = first_line.chars().take(40).collect();
    Err(ParseError::UnknownFormat {
        reason: format!("text whose first line is {first:?}: neither XML, SWIFT MT fields nor a delimited export; {SUPPORTED}"),
    })
}

/// Why a delimited export cannot be read without a mapping: the encoding
/// it appears to be in, and what to pass.
fn csv_needs_mapping(head: &[u8]) -> ParseError {
    if csv::is_xlsx(head) {
        return ParseError::UnknownFormat {
            reason: format!("an .xlsx workbook (a spreadsheet export) needs the bank's column mapping: pass --mapping with the bank's mapping file (see README, bank feeds); {SUPPORTED}"),
        };
    }
    let body = head.strip_prefix(b"\xEF\xBB\xBF");
    let encoding = match body {
        Some(_) => "UTF-8 with a byte order mark".to_owned(),
        None => match std::str::from_utf8(head) {
            Ok(_) => "UTF-8".to_owned(),
            // A cut at the end of the sniffed head may split a character.
            Err(e) if e.error_len().is_none() => "UTF-8".to_owned(),
            Err(_) => {
                let (_, _, bad) = encoding_rs::GB18030.decode(head);
                if bad {
                    "an encoding that is neither UTF-8 nor GBK/GB18030".to_owned()
                } else {
                    "GBK/GB18030 (a Chinese bank export; say --encoding gbk or gb18030 if the mapping does not)".to_owned()
                }
            }
        },
    };
    ParseError::UnknownFormat {
        reason: format!(
            "a delimited text export in {encoding} needs the bank's column mapping: pass --mapping with the bank's mapping file (see README, bank feeds); {SUPPORTED}"
        ),
    }
}

/// Parses a file in memory into normalized statements and checks them.
pub fn parse(bytes: &[u8], options: &ParseOptions) -> Result<ParseOutput, ParseError> {
    let ctx = FileContext::of(bytes);
    let mut statements = Vec::new();
    let warnings = parse_stream(bytes, &ctx, options, &mut |s| {
        statements.push(s);
        Ok(())
    })?;
    Ok(ParseOutput {
        statements,
        warnings,
    })
}

/// Parses a file from a reader, handing each checked statement to `sink` as
/// soon as it is complete, so memory does not grow with the file (camt and
/// MT are streamed; a CSV export is read whole). A statement is handed out
/// whole, so one statement is held at a time. `ctx` carries the file's
/// SHA-256, which the caller computes (e.g. in a first pass over the file).
pub fn parse_stream<R: BufRead>(
    mut reader: R,
    ctx: &FileContext,
    options: &ParseOptions,
    sink: &mut dyn FnMut(Statement) -> Result<(), ParseError>,
) -> Result<Vec<Warning>, ParseError> {
    let format = match options.format {
        Some(f) => f,
        None => detect(reader.fill_buf().map_err(read_error)?)?,
    };
    let csv_head = if format == Format::Csv && options.csv.is_none() {
        let head = reader.fill_buf().map_err(read_error)?;
        Some(head[..head.len().min(4096)].to_vec())
    } else {
        None
    };
    let mut chain = ChainCheck::default();
    let mut chain_warnings = Vec::new();
    let mut emit = |s: Statement| -> Result<(), ParseError> {
        check_adds_up(&s)?;
        chain_warnings.extend(chain.next(&s));
        sink(s)
    };
    let mut warnings = match format {
        Format::Camt052 | Format::Camt053 | Format::Camt054 => {
            camt::parse_reader_in(reader, format, ctx, options.encoding, &mut emit)?
        }
        Format::Mt940 | Format::Mt942 => mt940_stream(reader, format, ctx, &mut emit)?,
        Format::Csv => {
            let mapping = options
                .csv
                .as_ref()
                .ok_or_else(|| csv_needs_mapping(csv_head.as_deref().unwrap_or_default()))?;
            let mut bytes = Vec::new();
            reader.read_to_end(&mut bytes).map_err(read_error)?;
            let out = csv::parse(&bytes, mapping, ctx)?;
            for s in out.statements {
                emit(s)?;
            }
            out.warnings
        }
    };
    warnings.extend(chain_warnings);
    Ok(warnings)
}

fn read_error(e: std::io::Error) -> ParseError {
    ParseError::Encoding {
        at: "file".into(),
        message: format!("cannot be read: {e}"),
    }
}

/// Size of the parts an MT file is cut into (at message boundaries).
const MT_PART_BYTES: usize = 1 << 20;
/// Warnings kept per file.
const MAX_WARNINGS: usize = 200;

/// Feeds an MT940/MT942 file to the parser in parts of a few MiB, each cut
/// right before a line that starts a message (`:20:` or a SWIFT `{1:`
/// block), so no message is ever split.
fn mt940_stream<R: BufRead>(
    mut reader: R,
    format: Format,
    ctx: &FileContext,
    emit: &mut dyn FnMut(Statement) -> Result<(), ParseError>,
) -> Result<Vec<Warning>, ParseError> {
    let mut warnings = Vec::new();
    let mut dropped = 0usize;
    let mut part: Vec<u8> = Vec::new();
    let mut line: Vec<u8> = Vec::new();
    let mut at = mt940::Offsets::default();
    let mut lines_in_part = 0u32;
    let mut any = false;
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line).map_err(read_error)?;
        let starts_message = {
            let t = line.trim_ascii_start();
            t.starts_with(b":20:") || t.starts_with(b"{1:")
        };
        if n == 0 || (part.len() >= MT_PART_BYTES && starts_message) {
            if !part.iter().all(u8::is_ascii_whitespace) {
                let mut last_message = at.message;
                let part_warnings = mt940::parse_part_into(&part, format, ctx, at, &mut |s| {
                    last_message = last_message.max(s.source.message);
                    emit(s)
                })?;
                at.message = last_message;
                for w in part_warnings {
                    if warnings.len() < MAX_WARNINGS {
                        warnings.push(w);
                    } else {
                        dropped += 1;
                    }
                }
                any = true;
            }
            at.line = at.line.saturating_add(lines_in_part);
            lines_in_part = 0;
            part.clear();
            if n == 0 {
                break;
            }
        }
        part.extend_from_slice(&line);
        lines_in_part = lines_in_part.saturating_add(1);
    }
    if !any {
        // The parser's own words for a file without a message.
        mt940::parse_part(b"", format, ctx, mt940::Offsets::default())?;
    }
    if dropped > 0 {
        warnings.push(Warning {
            at: "file".into(),
            message: format!("{dropped} more warnings were not recorded"),
        });
    }
    Ok(warnings)
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
/// opening balance equals the previous closing balance, and sequence numbers
/// continue. A break is reported, never papered over.
pub fn check_chain(statements: &[Statement]) -> Vec<Warning> {
    let mut check = ChainCheck::default();
    statements.iter().flat_map(|s| check.next(s)).collect()
}

/// What the chain check remembers of each account's last statement: only
/// its id, closing balance and sequence, so streaming stays small.
#[derive(Default)]
pub struct ChainCheck {
    /// Per (account, currency).
    last: std::collections::HashMap<(String, String), LastStatement>,
}

struct LastStatement {
    id: String,
    closing: Option<Decimal>,
    sequence: Option<String>,
}

impl ChainCheck {
    pub fn next(&mut self, s: &Statement) -> Vec<Warning> {
        let mut warnings = Vec::new();
        let key = (s.account.clone(), s.currency.clone());
        let at = || format!("statement {} of account {}", s.statement_id, s.account);
        if let Some(LastStatement {
            id: prev_id,
            closing: prev_closing,
            sequence: prev_sequence,
        }) = self.last.get(&key)
        {
            if let (Some(closing), Some(opening)) = (prev_closing, &s.opening_balance) {
                if *closing != opening.amount {
                    warnings.push(Warning {
                        at: at(),
                        message: format!(
                            "opening balance {} does not continue the previous statement {prev_id}'s closing balance {closing}: a statement is missing or wrong",
                            opening.amount
                        ),
                    });
                }
            }
            if let (Some(a), Some(next)) = (
                prev_sequence.as_deref().and_then(sequence),
                s.sequence.as_deref(),
            ) {
                if let Some(b) = sequence(next) {
                    let continues = b == (a.0, a.1 + 1) || (b.0 == a.0 + 1 && b.1 <= 1);
                    if !continues {
                        warnings.push(Warning {
                            at: at(),
                            message: format!(
                                "sequence {next} does not follow {}: a statement or page is missing",
                                prev_sequence.as_deref().unwrap_or("")
                            ),
                        });
                    }
                }
            }
        }
        self.last.insert(
            key,
            LastStatement {
                id: s.statement_id.clone(),
                closing: s.closing_balance.as_ref().map(|b| b.amount),
                sequence: s.sequence.clone(),
            },
        );
        warnings
    }
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
