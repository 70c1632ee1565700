//! The normalized statement model every format parses into. Amounts are
//! exact decimals as the bank wrote them (this is the edge); ingestion turns
//! them into minor units of the account's currency, refusing extra digits.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    Camt052,
    Camt053,
    Camt054,
    Mt940,
    Mt942,
    Csv,
}

impl Format {
    pub fn code(self) -> &'static str {
        match self {
            Format::Camt052 => "camt052",
            Format::Camt053 => "camt053",
            Format::Camt054 => "camt054",
            Format::Mt940 => "mt940",
            Format::Mt942 => "mt942",
            Format::Csv => "csv",
        }
    }
}

/// Where a statement or line came from, precisely enough to show an officer
/// the bank's own line behind any finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceRef {
    /// SHA-256 of the whole file, hex; empty (and not serialized) when the
    /// output names the file once, as `feed parse --json` does.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub file_sha256: String,
    /// Number of the message (MT), statement/report/notification (camt) or
    /// account (CSV) in the file, from 1 like lines.
    pub message: u32,
    /// 1-based line number in the file, where the format has lines.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    /// Element path in an XML document, e.g. `Document/BkToCstmrStmt/Stmt[0]/Ntry[3]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

impl SourceRef {
    /// A statement built in memory, not read from a file (yet).
    pub fn unwritten() -> SourceRef {
        SourceRef {
            file_sha256: String::new(),
            message: 0,
            line: None,
            path: None,
        }
    }
}

/// A balance: signed (credit positive), with its date.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Balance {
    #[serde(with = "rust_decimal::serde::str")]
    pub amount: Decimal,
    pub date: NaiveDate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LineStatus {
    Booked,
    Pending,
    Info,
}

/// One transaction inside a batch entry (camt `TxDtls`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct LineDetail {
    #[serde(with = "rust_decimal::serde::str_option")]
    pub amount: Option<Decimal>,
    pub end_to_end_id: Option<String>,
    pub remittance: Option<String>,
    pub counterparty_name: Option<String>,
    pub counterparty_account: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Line {
    /// Signed: credit (money in) positive, debit negative.
    #[serde(with = "rust_decimal::serde::str")]
    pub amount: Decimal,
    pub booking_date: Option<NaiveDate>,
    pub value_date: Option<NaiveDate>,
    pub status: LineStatus,
    /// The bank's own reference for the line (camt AcctSvcrRef, MT :61: bank reference).
    pub bank_ref: Option<String>,
    /// The customer's reference / end-to-end id (our instruction id when we sent it).
    pub end_to_end_id: Option<String>,
    pub remittance: Option<String>,
    pub counterparty_name: Option<String>,
    pub counterparty_account: Option<String>,
    /// Bank transaction code (camt BkTxCd Domn/Fmly/SubFmly or Prtry, MT :61: type code).
    pub bank_tx_code: Option<String>,
    /// A reversal (camt RvslInd, MT RC/RD).
    pub reversal: bool,
    /// Return reason code, when the bank gives one.
    pub return_reason: Option<String>,
    /// Transactions of a batch entry; empty when the bank sent none.
    pub children: Vec<LineDetail>,
    /// Structured fields recognised in free text (MT :86: `?20`, `/TRTP/` …).
    pub structured: BTreeMap<String, String>,
    pub source: SourceRef,
}

impl Line {
    /// A booked transfer (`NTRF`) as a statement generator writes it (the
    /// demo's banks, scenario tests, benchmarks): booked and valued the
    /// same day, from no file yet.
    pub fn booked_transfer(
        amount: Decimal,
        date: NaiveDate,
        end_to_end_id: Option<String>,
        bank_ref: String,
        remittance: String,
    ) -> Line {
        Line {
            amount,
            booking_date: Some(date),
            value_date: Some(date),
            status: LineStatus::Booked,
            bank_ref: Some(bank_ref),
            end_to_end_id,
            remittance: Some(remittance),
            counterparty_name: None,
            counterparty_account: None,
            bank_tx_code: Some("NTRF".into()),
            reversal: false,
            return_reason: None,
            children: vec![],
            structured: BTreeMap::new(),
            source: SourceRef::unwritten(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Statement {
    pub format: Format,
    /// Account identifier as the bank gives it (IBAN, local number).
    pub account: String,
    /// ISO 4217 code.
    pub currency: String,
    pub statement_id: String,
    /// Statement sequence and page, e.g. `42/1` (MT :28C:, camt ElctrncSeqNb/LglSeqNb + Pgntn).
    pub sequence: Option<String>,
    pub opening_balance: Option<Balance>,
    pub closing_balance: Option<Balance>,
    pub lines: Vec<Line>,
    pub source: SourceRef,
}

/// Something odd but survivable in a file, said rather than hidden.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    pub at: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct ParseOutput {
    pub statements: Vec<Statement>,
    pub warnings: Vec<Warning>,
}
