//! CSV exports (Chinese banks' host-to-host files and the like) with a
//! per-bank column mapping: configuration, not code. UTF-8, GBK or GB18030,
//! with or without a byte-order mark. An `.xlsx` export (the first sheet)
//! is read with the same mapping: its rows become delimited text first.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::Deserialize;

use crate::model::{Balance, Format, Line, LineStatus, ParseOutput, SourceRef, Statement};
use crate::parse::{FileContext, ParseError};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CsvEncoding {
    #[default]
    Utf8,
    Gbk,
    Gb18030,
}

/// How the amount of a row is written.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "style", rename_all = "snake_case", deny_unknown_fields)]
pub enum AmountColumns {
    /// One signed column: negative is a debit.
    Signed { amount: String },
    /// Separate debit and credit columns, one of them filled per row.
    DebitCredit { debit: String, credit: String },
    /// An unsigned amount and a direction column (e.g. 借/贷, D/C).
    Direction {
        amount: String,
        direction: String,
        credit_values: Vec<String>,
        debit_values: Vec<String>,
    },
}

/// A bank's CSV layout. Columns are named by their header text.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsvMapping {
    pub bank: String,
    #[serde(default)]
    pub encoding: CsvEncoding,
    #[serde(default = "comma")]
    pub delimiter: char,
    /// Lines before the header row (titles, account banners).
    #[serde(default)]
    pub skip_lines: usize,
    /// chrono format of the date columns, e.g. `%Y-%m-%d` or `%Y%m%d`.
    pub date_format: String,
    /// Stripped from amounts before parsing (e.g. ','), if the bank uses one.
    #[serde(default)]
    pub thousands_separator: Option<char>,
    /// The account: a column, or fixed for the whole file.
    #[serde(default)]
    pub account_column: Option<String>,
    #[serde(default)]
    pub account: Option<String>,
    #[serde(default)]
    pub currency_column: Option<String>,
    #[serde(default)]
    pub currency: Option<String>,
    pub booking_date: String,
    #[serde(default)]
    pub value_date: Option<String>,
    pub amount: AmountColumns,
    /// Balance after the row, when the export has it: gives opening and
    /// closing balances.
    #[serde(default)]
    pub balance_after: Option<String>,
    #[serde(default)]
    pub bank_ref: Option<String>,
    #[serde(default)]
    pub end_to_end_id: Option<String>,
    #[serde(default)]
    pub remittance: Option<String>,
    #[serde(default)]
    pub counterparty_name: Option<String>,
    #[serde(default)]
    pub counterparty_account: Option<String>,
}

fn comma() -> char {
    ','
}

fn err(at: impl Into<String>, message: impl Into<String>) -> ParseError {
    ParseError::malformed(Format::Csv, at, message)
}

/// The GB18030 encoding of U+FEFF, which some exports start with.
const GB18030_BOM: &[u8] = b"\x84\x31\x95\x33";

/// Decodes the export. A byte order mark decides over the mapping (a UTF-8
/// BOM is UTF-8, a GB18030 BOM is GB18030: Excel's "CSV UTF-8" of a sheet
/// the bank sent as GBK is still UTF-8); without one the mapping decides.
fn decode(bytes: &[u8], encoding: CsvEncoding) -> Result<String, ParseError> {
    let (enc, bytes) = if let Some(rest) = bytes.strip_prefix(b"\xEF\xBB\xBF") {
        (encoding_rs::UTF_8, rest)
    } else if let Some(rest) = bytes.strip_prefix(GB18030_BOM) {
        (encoding_rs::GB18030, rest)
    } else {
        let enc = match encoding {
            CsvEncoding::Utf8 => encoding_rs::UTF_8,
            CsvEncoding::Gbk => encoding_rs::GBK,
            CsvEncoding::Gb18030 => encoding_rs::GB18030,
        };
        (enc, bytes)
    };
    match enc.decode_without_bom_handling_and_without_replacement(bytes) {
        Some(text) => Ok(text.into_owned()),
        None => {
            let (lossy, _) = enc.decode_without_bom_handling(bytes);
            let line = lossy
                .split('\n')
                .position(|l| l.contains('\u{FFFD}'))
                .map_or(1, |i| i + 1);
            Err(ParseError::Encoding {
                at: format!("csv line {line}"),
                message: format!(
                    "bytes that are not valid {}; check the mapping's encoding",
                    enc.name()
                ),
            })
        }
    }
}

/// Column positions resolved against the header.
struct Columns<'m> {
    index: BTreeMap<&'m str, usize>,
}

impl<'m> Columns<'m> {
    fn get<'r>(&self, record: &'r ::csv::StringRecord, name: &str) -> Option<&'r str> {
        self.index
            .get(name)
            .and_then(|i| record.get(*i))
            .map(str::trim)
            .filter(|v| !v.is_empty())
    }
}

fn parse_amount(
    text: &str,
    mapping: &CsvMapping,
    at: &str,
    column: &str,
) -> Result<Decimal, ParseError> {
    let mut clean: String = text.trim().to_string();
    if let Some(sep) = mapping.thousands_separator {
        clean.retain(|c| c != sep);
    }
    let clean = clean.strip_prefix('+').unwrap_or(&clean);
    ledger_core::domain::money::parse_decimal(clean).map_err(|_| {
        err(
            at,
            format!("column {column:?}: {text:?} is not an amount (digits with an optional '.')"),
        )
    })
}

fn parse_date(
    text: &str,
    mapping: &CsvMapping,
    at: &str,
    column: &str,
) -> Result<NaiveDate, ParseError> {
    NaiveDate::parse_from_str(text.trim(), &mapping.date_format).map_err(|_| {
        err(
            at,
            format!(
                "column {column:?}: {text:?} is not a date in the format {}",
                mapping.date_format
            ),
        )
    })
}

/// One statement's rows: its lines, and (balance after, date, amount) per
/// row when the export has a running balance.
type Group = (Vec<Line>, Vec<(Decimal, NaiveDate, Decimal)>);

/// Whether the bytes are an `.xlsx` workbook (a zip archive whose entries
/// name the workbook parts).
pub fn is_xlsx(bytes: &[u8]) -> bool {
    let head = &bytes[..bytes.len().min(8192)];
    head.starts_with(b"PK\x03\x04")
        && (head.windows(3).any(|w| w == b"xl/")
            || head.windows(19).any(|w| w == b"[Content_Types].xml"))
}

/// The first sheet of an `.xlsx` workbook as delimited UTF-8 text, one row
/// per line. Numbers are written as the shortest text that reads back as
/// the same number (what the workbook stores), never computed with; dates
/// are written in the mapping's date format.
fn xlsx_rows(bytes: &[u8], mapping: &CsvMapping) -> Result<String, ParseError> {
    use calamine::{Data, Reader};
    let fail = |at: &str, m: String| ParseError::malformed(Format::Csv, at, m);
    let mut book = calamine::Xlsx::new(std::io::Cursor::new(bytes))
        .map_err(|e| fail("workbook", format!("not a readable .xlsx workbook: {e}")))?;
    let sheet = book
        .worksheet_range_at(0)
        .ok_or_else(|| fail("workbook", "the workbook has no sheet".into()))?
        .map_err(|e| fail("sheet 1", format!("cannot be read: {e}")))?;
    let delimiter = u8::try_from(mapping.delimiter)
        .map_err(|_| err("mapping", "the delimiter must be an ASCII character"))?;
    let mut out = ::csv::WriterBuilder::new()
        .delimiter(delimiter)
        .flexible(true)
        .from_writer(Vec::new());
    for (r, row) in sheet.rows().enumerate() {
        let mut cells = Vec::with_capacity(row.len());
        for (c, cell) in row.iter().enumerate() {
            let text = match cell {
                Data::Empty => String::new(),
                Data::String(s) | Data::DateTimeIso(s) | Data::DurationIso(s) => s.clone(),
                Data::Int(i) => i.to_string(),
                Data::Float(f) => f.to_string(),
                Data::Bool(b) => b.to_string(),
                Data::DateTime(d) => match d.as_datetime() {
                    Some(t) => t.format(&mapping.date_format).to_string(),
                    None => {
                        return Err(fail(
                            &format!("sheet 1 row {} column {}", r + 1, c + 1),
                            "a date cell outside the calendar".into(),
                        ))
                    }
                },
                Data::Error(e) => {
                    return Err(fail(
                        &format!("sheet 1 row {} column {}", r + 1, c + 1),
                        format!("the cell holds a spreadsheet error ({e})"),
                    ))
                }
            };
            cells.push(text);
        }
        out.write_record(&cells)
            .map_err(|e| fail("sheet 1", format!("cannot be converted: {e}")))?;
    }
    let bytes = out
        .into_inner()
        .map_err(|e| fail("sheet 1", format!("cannot be converted: {e}")))?;
    String::from_utf8(bytes).map_err(|e| fail("sheet 1", format!("cannot be converted: {e}")))
}

pub fn parse(
    bytes: &[u8],
    mapping: &CsvMapping,
    ctx: &FileContext,
) -> Result<ParseOutput, ParseError> {
    let text = if is_xlsx(bytes) {
        xlsx_rows(bytes, mapping)?
    } else {
        decode(bytes, mapping.encoding)?
    };
    let body: String = text
        .split_inclusive('\n')
        .skip(mapping.skip_lines)
        .collect();
    let delimiter = u8::try_from(mapping.delimiter)
        .map_err(|_| err("mapping", "the delimiter must be an ASCII character"))?;
    let mut reader = ::csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .flexible(true)
        .from_reader(body.as_bytes());
    let header = reader
        .headers()
        .map_err(|e| {
            err(
                format!("line {}", mapping.skip_lines + 1),
                format!("unreadable header: {e}"),
            )
        })?
        .clone();
    let mut index = BTreeMap::new();
    for (i, h) in header.iter().enumerate() {
        index.insert(h.trim(), i);
    }
    let columns = Columns { index };
    let mut required: Vec<&str> = vec![mapping.booking_date.as_str()];
    match &mapping.amount {
        AmountColumns::Signed { amount } => required.push(amount),
        AmountColumns::DebitCredit { debit, credit } => {
            required.extend([debit.as_str(), credit.as_str()])
        }
        AmountColumns::Direction {
            amount, direction, ..
        } => required.extend([amount.as_str(), direction.as_str()]),
    }
    for optional in [
        &mapping.value_date,
        &mapping.balance_after,
        &mapping.account_column,
        &mapping.currency_column,
        &mapping.bank_ref,
        &mapping.end_to_end_id,
        &mapping.remittance,
        &mapping.counterparty_name,
        &mapping.counterparty_account,
    ]
    .into_iter()
    .flatten()
    {
        required.push(optional);
    }
    for name in required {
        if !columns.index.contains_key(name) {
            return Err(err(
                format!("line {} (header)", mapping.skip_lines + 1),
                format!(
                    "no column {name:?}; the header has {:?}",
                    header.iter().collect::<Vec<_>>()
                ),
            ));
        }
    }

    // Statements per (account, currency), in order of first appearance.
    let mut order: Vec<(String, String)> = Vec::new();
    let mut groups: BTreeMap<(String, String), Group> = BTreeMap::new();
    for record in reader.records() {
        let record = record.map_err(|e| err("csv", format!("unreadable row: {e}")))?;
        let line_no = record.position().map_or(0, |p| p.line()) as usize + mapping.skip_lines;
        let at = format!("line {line_no}");
        if record.iter().all(|f| f.trim().is_empty()) {
            continue;
        }
        let account = match (&mapping.account_column, &mapping.account) {
            (Some(col), _) => columns
                .get(&record, col)
                .ok_or_else(|| err(&at, format!("column {col:?} (account) is empty")))?
                .to_string(),
            (None, Some(fixed)) => fixed.clone(),
            (None, None) => return Err(err("mapping", "set account_column or account")),
        };
        let currency = match (&mapping.currency_column, &mapping.currency) {
            (Some(col), _) => columns
                .get(&record, col)
                .ok_or_else(|| err(&at, format!("column {col:?} (currency) is empty")))?
                .to_string(),
            (None, Some(fixed)) => fixed.clone(),
            (None, None) => return Err(err("mapping", "set currency_column or currency")),
        };
        let booking_text = columns.get(&record, &mapping.booking_date).ok_or_else(|| {
            err(
                &at,
                format!("column {:?} (booking date) is empty", mapping.booking_date),
            )
        })?;
        let booking_date = parse_date(booking_text, mapping, &at, &mapping.booking_date)?;
        let value_date = match &mapping.value_date {
            Some(col) => columns
                .get(&record, col)
                .map(|v| parse_date(v, mapping, &at, col))
                .transpose()?,
            None => None,
        };
        let amount = match &mapping.amount {
            AmountColumns::Signed { amount } => {
                let v = columns
                    .get(&record, amount)
                    .ok_or_else(|| err(&at, format!("column {amount:?} is empty")))?;
                parse_amount(v, mapping, &at, amount)?
            }
            AmountColumns::DebitCredit { debit, credit } => {
                let d = columns
                    .get(&record, debit)
                    .map(|v| parse_amount(v, mapping, &at, debit))
                    .transpose()?;
                let c = columns
                    .get(&record, credit)
                    .map(|v| parse_amount(v, mapping, &at, credit))
                    .transpose()?;
                match (d.filter(|v| !v.is_zero()), c.filter(|v| !v.is_zero())) {
                    (Some(d), None) => -d,
                    (None, Some(c)) => c,
                    (None, None) => {
                        return Err(err(
                            &at,
                            format!("neither {debit:?} nor {credit:?} has an amount"),
                        ))
                    }
                    (Some(_), Some(_)) => {
                        return Err(err(
                            &at,
                            format!("both {debit:?} and {credit:?} have an amount"),
                        ))
                    }
                }
            }
            AmountColumns::Direction {
                amount,
                direction,
                credit_values,
                debit_values,
            } => {
                let v = columns
                    .get(&record, amount)
                    .ok_or_else(|| err(&at, format!("column {amount:?} is empty")))?;
                let v = parse_amount(v, mapping, &at, amount)?;
                let dir = columns.get(&record, direction).unwrap_or("");
                if credit_values.iter().any(|c| c == dir) {
                    v
                } else if debit_values.iter().any(|d| d == dir) {
                    -v
                } else {
                    return Err(err(
                        &at,
                        format!("column {direction:?}: {dir:?} is neither a credit ({credit_values:?}) nor a debit ({debit_values:?})"),
                    ));
                }
            }
        };
        let balance_after = match &mapping.balance_after {
            Some(col) => columns
                .get(&record, col)
                .map(|v| parse_amount(v, mapping, &at, col))
                .transpose()?,
            None => None,
        };
        let field = |col: &Option<String>| {
            col.as_ref()
                .and_then(|c| columns.get(&record, c))
                .map(str::to_string)
        };
        let line = Line {
            amount,
            booking_date: Some(booking_date),
            value_date,
            status: LineStatus::Booked,
            bank_ref: field(&mapping.bank_ref),
            end_to_end_id: field(&mapping.end_to_end_id),
            remittance: field(&mapping.remittance),
            counterparty_name: field(&mapping.counterparty_name),
            counterparty_account: field(&mapping.counterparty_account),
            bank_tx_code: None,
            reversal: false,
            return_reason: None,
            children: vec![],
            structured: BTreeMap::new(),
            source: SourceRef {
                file_sha256: ctx.sha256.clone(),
                message: 0,
                line: u32::try_from(line_no).ok(),
                path: None,
            },
        };
        let key = (account, currency);
        if !groups.contains_key(&key) {
            order.push(key.clone());
        }
        let group = groups.entry(key).or_default();
        if let Some(b) = balance_after {
            group.1.push((b, booking_date, amount));
        }
        group.0.push(line);
    }

    if order.is_empty() {
        // An export of no rows says nothing about any account: refused as
        // an empty camt or MT940 file is, rather than kept as a file seen.
        return Err(err(
            "file",
            "the export holds no rows (only its header): nothing to ingest",
        ));
    }
    let mut out = ParseOutput::default();
    for (n, key) in order.into_iter().enumerate() {
        let Some((mut lines, balances)) = groups.remove(&key) else {
            continue;
        };
        // With a running balance column the opening is the first balance
        // before its row, the closing the last; every row must agree.
        let (opening, closing) = match (balances.first(), balances.last()) {
            (Some(first), Some(last)) if balances.len() == lines.len() => (
                Some(Balance {
                    amount: first.0 - first.2,
                    date: first.1,
                }),
                Some(Balance {
                    amount: last.0,
                    date: last.1,
                }),
            ),
            _ => (None, None),
        };
        for pair in balances.windows(2) {
            if pair[0].0 + pair[1].2 != pair[1].0 {
                return Err(err(
                    format!("account {} on {}", key.0, pair[1].1),
                    format!(
                        "running balance {} + amount {} = {}, but the row says {}",
                        pair[0].0,
                        pair[1].2,
                        pair[0].0 + pair[1].2,
                        pair[1].0
                    ),
                ));
            }
        }
        // Statements (one per account and currency) are numbered from 1,
        // like lines.
        let number = u32::try_from(n).unwrap_or(u32::MAX).saturating_add(1);
        for l in &mut lines {
            l.source.message = number;
        }
        let first_date = lines.first().and_then(|l| l.booking_date);
        let last_date = lines.last().and_then(|l| l.booking_date);
        out.statements.push(Statement {
            format: Format::Csv,
            account: key.0.clone(),
            currency: key.1.clone(),
            statement_id: format!(
                "{}-{}-{}",
                mapping.bank,
                first_date.map_or(String::new(), |d| d.format("%Y%m%d").to_string()),
                last_date.map_or(String::new(), |d| d.format("%Y%m%d").to_string())
            ),
            sequence: None,
            opening_balance: opening,
            closing_balance: closing,
            lines,
            source: SourceRef {
                file_sha256: ctx.sha256.clone(),
                message: number,
                line: None,
                path: None,
            },
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn icbc_like() -> CsvMapping {
        serde_json::from_str(
            r#"{
              "bank": "demo-bank",
              "encoding": "gbk",
              "skip_lines": 1,
              "date_format": "%Y%m%d",
              "thousands_separator": ",",
              "account": "6222000011112222",
              "currency": "CNY",
              "booking_date": "交易日期",
              "amount": {"style": "debit_credit", "debit": "借方发生额", "credit": "贷方发生额"},
              "balance_after": "余额",
              "bank_ref": "流水号",
              "remittance": "摘要",
              "counterparty_name": "对方户名"
            }"#,
        )
        .unwrap()
    }

    const TEXT: &str = "账户明细查询\n交易日期,流水号,摘要,对方户名,借方发生额,贷方发生额,余额\n\
        20260901,A001,学费,张三,,\"4,800.00\",\"10,800.00\"\n\
        20260902,A002,拨付,青峰音乐,1200.50,,9599.50\n";

    fn gbk(text: &str) -> Vec<u8> {
        encoding_rs::GBK.encode(text).0.into_owned()
    }

    fn run(bytes: &[u8], mapping: &CsvMapping) -> Result<ParseOutput, ParseError> {
        parse(bytes, mapping, &FileContext::of(bytes))
    }

    #[test]
    fn a_gbk_export_parses_into_one_statement_with_running_balances() {
        let out = run(&gbk(TEXT), &icbc_like()).unwrap();
        let s = &out.statements[0];
        assert_eq!(s.lines.len(), 2);
        assert_eq!(s.lines[0].amount, Decimal::new(480_000, 2));
        assert_eq!(s.lines[1].amount, Decimal::new(-120_050, 2));
        assert_eq!(s.lines[0].counterparty_name.as_deref(), Some("张三"));
        assert_eq!(s.lines[1].source.line, Some(4));
        assert_eq!(
            s.opening_balance.as_ref().unwrap().amount,
            Decimal::new(600_000, 2)
        );
        assert_eq!(
            s.closing_balance.as_ref().unwrap().amount,
            Decimal::new(959_950, 2)
        );
    }

    #[test]
    fn utf8_with_a_bom_and_gb18030_read_the_same() {
        let mut utf8 = icbc_like();
        utf8.encoding = CsvEncoding::Utf8;
        let mut bom = b"\xEF\xBB\xBF".to_vec();
        bom.extend_from_slice(TEXT.as_bytes());
        let a = run(&bom, &utf8).unwrap();
        let mut g = icbc_like();
        g.encoding = CsvEncoding::Gb18030;
        let b = run(&encoding_rs::GB18030.encode(TEXT).0, &g).unwrap();
        assert_eq!(a.statements[0].lines.len(), b.statements[0].lines.len());
        assert_eq!(
            a.statements[0].lines[0].remittance,
            b.statements[0].lines[0].remittance
        );
    }

    #[track_caller]
    fn refused(text: &str, mapping: &CsvMapping, needle: &str) {
        let e = run(&gbk(text), mapping).unwrap_err();
        assert!(e.to_string().contains(needle), "{e}");
    }

    #[test]
    fn bad_rows_are_refused_with_their_line_and_column() {
        let m = icbc_like();
        refused(
            &TEXT.replace("1200.50", "12O0.50"),
            &m,
            "line 4: column \"借方发生额\"",
        );
        refused(&TEXT.replace("20260902", "2026-09-02"), &m, "is not a date");
        refused(&TEXT.replace(",1200.50,,", ",1200.50,5.00,"), &m, "both");
        refused(&TEXT.replace("9599.50", "9599.51"), &m, "running balance");
        refused(
            &TEXT.replace("对方户名", "户名"),
            &m,
            "no column \"对方户名\"",
        );
        let utf8_bytes = TEXT.as_bytes();
        let e = run(utf8_bytes, &m).unwrap_err();
        assert_eq!(e.code(), "bad_encoding", "{e}");
    }
}
