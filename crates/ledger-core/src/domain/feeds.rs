//! What a supervising bank reports, as the ledger keeps it: statements of
//! supervised accounts and their lines, in minor units of the account's
//! currency. bank-adapter parses the bank's formats into these.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::domain::error::LedgerError;
use crate::domain::ids::InstitutionId;
use crate::domain::money::Currency;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountKind {
    /// The supervised account (监管账户): `escrow_cash` in the books.
    Escrow,
    /// The risk-deposit account (风险保证金): `deposit_cash` in the books.
    Deposit,
}

impl AccountKind {
    pub fn code(self) -> &'static str {
        match self {
            AccountKind::Escrow => "escrow",
            AccountKind::Deposit => "deposit",
        }
    }

    pub fn parse(text: &str) -> Result<Self, LedgerError> {
        match text {
            "escrow" => Ok(AccountKind::Escrow),
            "deposit" => Ok(AccountKind::Deposit),
            other => Err(LedgerError::InvalidField {
                field: "kind",
                reason: format!("{other:?} is not escrow or deposit"),
            }),
        }
    }
}

/// A supervised account at a bank and the institution it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BankAccount {
    pub institution: InstitutionId,
    pub bank: String,
    pub account_no: String,
    pub kind: AccountKind,
    pub currency: Currency,
}

impl BankAccount {
    pub fn validate(&self) -> Result<(), LedgerError> {
        for (field, value) in [("bank", &self.bank), ("account_no", &self.account_no)] {
            if value.trim().is_empty() || value.len() > 64 || value.chars().any(char::is_control) {
                return Err(LedgerError::InvalidField {
                    field,
                    reason: "1 to 64 printable characters".into(),
                });
            }
        }
        Ok(())
    }
}

/// Where a bank line stands: only booked lines settle anything; pending
/// lines (intraday) wait for the end-of-day statement; information lines
/// move no money.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LineStatus {
    Booked,
    Pending,
    Info,
}

impl LineStatus {
    pub const ALL: [LineStatus; 3] = [LineStatus::Booked, LineStatus::Pending, LineStatus::Info];

    pub fn code(self) -> &'static str {
        match self {
            LineStatus::Booked => "booked",
            LineStatus::Pending => "pending",
            LineStatus::Info => "info",
        }
    }

    /// A stored status; anything else is not a status this version wrote.
    pub fn parse(code: &str) -> Result<LineStatus, LedgerError> {
        LineStatus::ALL
            .into_iter()
            .find(|s| s.code() == code)
            .ok_or_else(|| LedgerError::InvalidField {
                field: "status",
                reason: format!("{code:?} is not booked, pending or info"),
            })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedLine {
    /// Signed: credit (money in) positive.
    pub amount_minor: i64,
    pub booking_date: Option<NaiveDate>,
    pub value_date: Option<NaiveDate>,
    pub status: LineStatus,
    pub bank_ref: Option<String>,
    pub end_to_end_id: Option<String>,
    pub remittance: Option<String>,
    pub counterparty_name: Option<String>,
    pub counterparty_account: Option<String>,
    pub bank_tx_code: Option<String>,
    pub reversal: bool,
    pub return_reason: Option<String>,
    /// Batch children and structured fields, as JSON.
    pub details: String,
    pub source_line: Option<u32>,
    pub source_path: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedStatement {
    pub bank: String,
    pub account_no: String,
    pub format: String,
    pub statement_id: String,
    pub sequence: Option<String>,
    pub currency: Currency,
    /// Intraday reports and notifications, until end of day confirms them.
    pub provisional: bool,
    pub opening: Option<(i64, NaiveDate)>,
    pub closing: Option<(i64, NaiveDate)>,
    pub lines: Vec<FeedLine>,
    pub file_sha256: String,
    pub message: u32,
}

impl FeedStatement {
    /// Unique per account: the statement id and its page.
    pub fn key(&self) -> String {
        match &self.sequence {
            Some(seq) => format!("{}:{}#{}", self.format, self.statement_id, seq),
            None => format!("{}:{}", self.format, self.statement_id),
        }
    }

    /// SHA-256 of what the bank said (not where it came from): the same
    /// statement in two files hashes the same.
    pub fn content_hash(&self) -> String {
        let content = serde_json::json!({
            "account": self.account_no,
            "currency": self.currency.code(),
            "opening": self.opening,
            "closing": self.closing,
            "lines": self.lines.iter().map(|l| serde_json::json!([
                l.amount_minor, l.booking_date, l.value_date, l.status, l.bank_ref,
                l.end_to_end_id, l.remittance, l.counterparty_name, l.counterparty_account,
                l.bank_tx_code, l.reversal, l.return_reason, l.details,
            ])).collect::<Vec<_>>(),
        });
        hex::encode(Sha256::digest(content.to_string().as_bytes()))
    }
}

/// What one file's ingestion did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IngestReport {
    /// The file had been ingested before: nothing was stored.
    pub file_seen_before: bool,
    pub statements_stored: u32,
    /// Statements already held (from another file) with the same content.
    pub statements_already_held: u32,
    pub lines_stored: u64,
    /// Chain breaks against what is already stored, said not hidden.
    pub warnings: Vec<String>,
}
