//! From parsed statements to what the ledger stores: exact conversion of the
//! bank's decimals into minor units of the statement's currency (extra
//! digits are an error, never a rounding), and which formats are provisional.

use ledger_core::domain::feeds::{FeedLine, FeedStatement};
use ledger_core::domain::money::decimal_to_minor;
use ledger_core::{Currency, LedgerError};

use crate::model::{Format, LineStatus, Statement};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("statement {statement} of account {account}{}: {error}", line.map(|l| format!(", line {l}")).unwrap_or_default())]
pub struct ConvertError {
    pub account: String,
    pub statement: String,
    pub line: Option<usize>,
    pub error: Box<LedgerError>,
}

impl ConvertError {
    pub fn code(&self) -> &'static str {
        self.error.code()
    }
}

/// Intraday reports and notifications are provisional until an end-of-day
/// statement confirms them.
pub fn is_provisional(format: Format) -> bool {
    matches!(format, Format::Camt052 | Format::Camt054 | Format::Mt942)
}

pub fn to_feed(bank: &str, s: &Statement) -> Result<FeedStatement, Box<ConvertError>> {
    let fail = |line: Option<usize>, error: LedgerError| {
        Box::new(ConvertError {
            account: s.account.clone(),
            statement: s.statement_id.clone(),
            line,
            error: Box::new(error),
        })
    };
    let currency: Currency = s.currency.parse().map_err(|e| fail(None, e))?;
    let minor =
        |line: Option<usize>, value| decimal_to_minor(value, currency).map_err(|e| fail(line, e));
    // Dates outside the business window (bounds.rs) would become an
    // account's latest closing, or a day reconciliation keeps, for ever.
    let day = |line: Option<usize>, field: &'static str, d: Option<chrono::NaiveDate>| {
        d.map_or(Ok(()), |d| {
            ledger_core::domain::bounds::check_day(field, d).map_err(|e| fail(line, e))
        })
    };
    let balance = |b: &Option<crate::model::Balance>,
                   field: &'static str|
     -> Result<Option<(i64, chrono::NaiveDate)>, Box<ConvertError>> {
        b.as_ref()
            .map(|b| {
                day(None, field, Some(b.date))?;
                Ok((minor(None, b.amount)?, b.date))
            })
            .transpose()
    };
    let mut lines = Vec::with_capacity(s.lines.len());
    for (i, l) in s.lines.iter().enumerate() {
        day(Some(i), "booking_date", l.booking_date)?;
        day(Some(i), "value_date", l.value_date)?;
        let details = serde_json::json!({ "children": l.children, "structured": l.structured });
        lines.push(FeedLine {
            amount_minor: minor(Some(i), l.amount)?,
            booking_date: l.booking_date,
            value_date: l.value_date,
            status: match l.status {
                LineStatus::Booked => ledger_core::domain::feeds::LineStatus::Booked,
                LineStatus::Pending => ledger_core::domain::feeds::LineStatus::Pending,
                LineStatus::Info => ledger_core::domain::feeds::LineStatus::Info,
            },
            bank_ref: l.bank_ref.clone(),
            end_to_end_id: l.end_to_end_id.clone(),
            remittance: l.remittance.clone(),
            counterparty_name: l.counterparty_name.clone(),
            counterparty_account: l.counterparty_account.clone(),
            bank_tx_code: l.bank_tx_code.clone(),
            reversal: l.reversal,
            return_reason: l.return_reason.clone(),
            details: details.to_string(),
            source_line: l.source.line,
            source_path: l.source.path.clone(),
        });
    }
    Ok(FeedStatement {
        bank: bank.to_string(),
        account_no: s.account.clone(),
        format: s.format.code().to_string(),
        statement_id: s.statement_id.clone(),
        sequence: s.sequence.clone(),
        currency,
        provisional: is_provisional(s.format),
        opening: balance(&s.opening_balance, "opening_date")?,
        closing: balance(&s.closing_balance, "closing_date")?,
        lines,
        file_sha256: s.source.file_sha256.clone(),
        message: s.source.message,
    })
}
