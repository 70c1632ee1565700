//! Payment instructions we send to a supervising bank: releases (拨付) to the
//! institution and refunds (退费) to families, checked once at construction
//! so that the JSON sent over HTTP and the pain.001 file can trust them.

pub mod pain001;

use std::fmt;

use chrono::NaiveDate;
use ledger_core::{Amount, Currency, InstitutionId};
use serde::{Deserialize, Serialize};

pub use pain001::pain001;

/// ISO 20022 Max35Text: EndToEndId, MsgId.
const MAX_ID_LEN: usize = 35;
/// ISO 20022 `Othr/Id` of an account is Max34Text.
const MAX_ACCOUNT_LEN: usize = 34;
/// ISO 20022 Max140Text: names and unstructured remittance.
const MAX_TEXT_CHARS: usize = 140;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InstructionError {
    #[error("instruction {id}: field {field} {reason}")]
    InvalidField {
        id: String,
        field: &'static str,
        reason: String,
    },
    #[error("instruction id {value:?} {reason}")]
    InvalidId { value: String, reason: &'static str },
    #[error("pain.001 message id {value:?} {reason}")]
    InvalidMessageId { value: String, reason: &'static str },
    #[error("pain.001 needs at least one instruction")]
    EmptyBatch,
    #[error("pain.001: instruction {id} appears twice in one batch")]
    DuplicateInBatch { id: String },
    #[error("pain.001 control sum overflows")]
    SumOverflow,
}

impl InstructionError {
    pub fn code(&self) -> &'static str {
        match self {
            InstructionError::InvalidField { .. } => "invalid_instruction_field",
            InstructionError::InvalidId { .. } => "invalid_instruction_id",
            InstructionError::InvalidMessageId { .. } => "invalid_message_id",
            InstructionError::EmptyBatch => "empty_batch",
            InstructionError::DuplicateInBatch { .. } => "duplicate_instruction_in_batch",
            InstructionError::SumOverflow => "control_sum_overflow",
        }
    }
}

/// Our idempotency key for an instruction, also its EndToEndId. Restricted
/// to letters, digits, '-' and '.' because it travels through payment rails
/// with restricted character sets, and sits in a URL path.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct InstructionId(String);

impl InstructionId {
    pub fn parse(value: impl Into<String>) -> Result<Self, InstructionError> {
        let value = value.into();
        check_max35(&value).map_err(|reason| InstructionError::InvalidId {
            value: value.clone(),
            reason,
        })?;
        Ok(InstructionId(value))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

pub(crate) fn check_max35(value: &str) -> Result<(), &'static str> {
    if value.is_empty() {
        return Err("is empty");
    }
    if value.len() > MAX_ID_LEN {
        return Err("is longer than 35 characters");
    }
    if !value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.'))
    {
        return Err("may only hold ASCII letters, digits, '-' and '.'");
    }
    Ok(())
}

impl TryFrom<String> for InstructionId {
    type Error = InstructionError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        InstructionId::parse(value)
    }
}

impl From<InstructionId> for String {
    fn from(id: InstructionId) -> String {
        id.0
    }
}

impl fmt::Display for InstructionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InstructionKind {
    /// 拨付: earned tuition to the institution.
    Release,
    /// 退费: unconsumed tuition back to a family.
    Refund,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Creditor {
    pub name: String,
    pub account: String,
    /// The creditor's bank: a BIC, or a domestic code such as a CNAPS number.
    pub bank: String,
}

impl Creditor {
    /// Whether the creditor fits a pain.001 and our HTTP contract: the
    /// field that does not (`name`, `account`, `bank`) and why. The same
    /// rules [`Instruction::new`] applies, so that a payee can be refused
    /// when it is given rather than when its instruction is built.
    pub fn check(&self) -> Result<(), (&'static str, &'static str)> {
        check_text(&self.name).map_err(|r| ("name", r))?;
        check_account(&self.account).map_err(|r| ("account", r))?;
        check_bank(&self.bank).map_err(|r| ("bank", r))?;
        Ok(())
    }
}

/// Everything needed to build an [`Instruction`]; plain data, unchecked.
#[derive(Debug, Clone)]
pub struct InstructionSpec {
    pub id: InstructionId,
    pub kind: InstructionKind,
    pub institution: InstitutionId,
    /// The supervised account (监管账户) the money leaves.
    pub debtor_account: String,
    pub creditor: Creditor,
    pub amount: Amount,
    pub currency: Currency,
    pub requested_date: NaiveDate,
    pub remittance: Option<String>,
}

/// A checked instruction: every field fits ISO 20022 and our HTTP contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    id: InstructionId,
    kind: InstructionKind,
    institution: InstitutionId,
    debtor_account: String,
    creditor: Creditor,
    amount: Amount,
    currency: Currency,
    requested_date: NaiveDate,
    remittance: Option<String>,
}

impl Instruction {
    pub fn new(spec: InstructionSpec) -> Result<Self, InstructionError> {
        let invalid = |field: &'static str, reason: &str| InstructionError::InvalidField {
            id: spec.id.to_string(),
            field,
            reason: reason.to_string(),
        };
        // pain.001 carries the institution as Dbtr/Id/OrgId/Othr/Id, Max35Text,
        // while our institution ids may be longer.
        if spec.institution.as_str().len() > MAX_ID_LEN {
            return Err(invalid("institution", "is longer than 35 characters"));
        }
        check_account(&spec.debtor_account).map_err(|r| invalid("debtor_account", r))?;
        spec.creditor.check().map_err(|(field, r)| {
            invalid(
                match field {
                    "name" => "creditor.name",
                    "account" => "creditor.account",
                    _ => "creditor.bank",
                },
                r,
            )
        })?;
        if let Some(remittance) = &spec.remittance {
            check_text(remittance).map_err(|r| invalid("remittance", r))?;
        }
        Ok(Instruction {
            id: spec.id,
            kind: spec.kind,
            institution: spec.institution,
            debtor_account: spec.debtor_account,
            creditor: spec.creditor,
            amount: spec.amount,
            currency: spec.currency,
            requested_date: spec.requested_date,
            remittance: spec.remittance,
        })
    }

    pub fn id(&self) -> &InstructionId {
        &self.id
    }
    pub fn kind(&self) -> InstructionKind {
        self.kind
    }
    pub fn institution(&self) -> &InstitutionId {
        &self.institution
    }
    pub fn debtor_account(&self) -> &str {
        &self.debtor_account
    }
    pub fn creditor(&self) -> &Creditor {
        &self.creditor
    }
    pub fn amount(&self) -> Amount {
        self.amount
    }
    pub fn currency(&self) -> Currency {
        self.currency
    }
    pub fn requested_date(&self) -> NaiveDate {
        self.requested_date
    }
    pub fn remittance(&self) -> Option<&str> {
        self.remittance.as_deref()
    }

    /// The JSON body of `POST /v1/instructions`. Field order is fixed, so the
    /// same instruction always produces the same bytes.
    pub(crate) fn wire_body(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(&WireInstruction {
            id: self.id.as_str(),
            kind: self.kind,
            institution: self.institution.as_str(),
            debtor_account: &self.debtor_account,
            creditor: &self.creditor,
            amount: decimal_from_minor(i128::from(self.amount.minor()), self.currency.exponent()),
            currency: self.currency.code(),
            requested_date: self.requested_date,
            remittance: self.remittance.as_deref(),
        })
    }
}

#[derive(Serialize)]
struct WireInstruction<'a> {
    id: &'a str,
    kind: InstructionKind,
    institution: &'a str,
    debtor_account: &'a str,
    creditor: &'a Creditor,
    /// Decimal string in major units ("1234.50"), never a JSON number.
    amount: String,
    currency: &'a str,
    requested_date: NaiveDate,
    remittance: Option<&'a str>,
}

/// What the bank says about an instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InstructionStatus {
    Accepted,
    Executed,
    Rejected,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstructionReceipt {
    pub instruction_id: String,
    /// The bank's own reference for the payment.
    pub bank_ref: String,
    pub status: InstructionStatus,
    /// Why the bank rejected it, when it did.
    #[serde(default)]
    pub reason: Option<String>,
    /// True when the bank answered from its idempotency record (HTTP 200)
    /// rather than creating the payment (HTTP 201). Not part of the body.
    #[serde(skip)]
    pub replayed: bool,
}

/// A bank's answer to an uploaded pain.001 file: its reference for the
/// file and a receipt per instruction in it (by EndToEndId).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pain001Receipt {
    pub message_id: String,
    pub bank_ref: String,
    pub instructions: Vec<InstructionReceipt>,
    /// True when the bank answered from its idempotency record (HTTP 200).
    #[serde(skip)]
    pub replayed: bool,
}

/// Formats minor units as a decimal string with exactly `exponent` digits
/// after the point, from the integer alone.
pub(crate) fn decimal_from_minor(minor: i128, exponent: u32) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    let magnitude = minor.unsigned_abs();
    if exponent == 0 {
        return format!("{sign}{magnitude}");
    }
    let unit = 10_u128.pow(exponent);
    let width = exponent as usize;
    format!("{sign}{}.{:0width$}", magnitude / unit, magnitude % unit)
}

fn check_account(value: &str) -> Result<(), &'static str> {
    if value.is_empty() {
        return Err("is empty");
    }
    if value.len() > MAX_ACCOUNT_LEN {
        return Err("is longer than 34 characters");
    }
    if !value.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err("may only hold ASCII letters and digits");
    }
    Ok(())
}

fn check_bank(value: &str) -> Result<(), &'static str> {
    if value.is_empty() {
        return Err("is empty");
    }
    if value.len() > MAX_ID_LEN {
        return Err("is longer than 35 characters");
    }
    if !value.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err("may only hold ASCII letters and digits");
    }
    Ok(())
}

/// Free text: Chinese names are fine; control characters cannot be put in
/// XML 1.0 at all, so they are refused here rather than mangled later.
fn check_text(value: &str) -> Result<(), &'static str> {
    if value.trim().is_empty() {
        return Err("is empty");
    }
    if value.chars().count() > MAX_TEXT_CHARS {
        return Err("is longer than 140 characters");
    }
    if value.chars().any(char::is_control) {
        return Err("contains control characters");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn spec(id: &str, minor: i64) -> InstructionSpec {
        InstructionSpec {
            id: InstructionId::parse(id).expect("test id"),
            kind: InstructionKind::Refund,
            institution: InstitutionId::parse("INS-410922-0001").expect("institution"),
            debtor_account: "6222020200001234".into(),
            creditor: Creditor {
                name: "张三".into(),
                account: "6217000010001234567".into(),
                bank: "ICBKCNBJ".into(),
            },
            amount: Amount::from_minor(minor).expect("amount"),
            currency: Currency::Cny,
            requested_date: NaiveDate::from_ymd_opt(2026, 1, 5).expect("date"),
            remittance: Some("refund enrollment E-1".into()),
        }
    }

    #[test]
    fn minor_units_format_with_exactly_the_currency_decimals() {
        assert_eq!(decimal_from_minor(123_450, 2), "1234.50");
        assert_eq!(decimal_from_minor(1, 2), "0.01");
        assert_eq!(decimal_from_minor(100, 2), "1.00");
        assert_eq!(decimal_from_minor(-5, 2), "-0.05");
        assert_eq!(decimal_from_minor(7, 0), "7");
        assert_eq!(
            decimal_from_minor(i128::from(i64::MAX), 2),
            "92233720368547758.07"
        );
    }

    #[test]
    fn instruction_ids_that_would_not_survive_payment_rails_are_rejected() {
        for bad in ["", "has space", "a/b", "under_score", &"x".repeat(36)] {
            assert_eq!(
                InstructionId::parse(bad).map_err(|e| e.code()),
                Err("invalid_instruction_id"),
                "{bad:?}"
            );
        }
        assert!(InstructionId::parse("RF-2026.0001").is_ok());
    }

    /// A field name and how to break it.
    type Breakage = (&'static str, Box<dyn Fn(&mut InstructionSpec)>);

    #[test]
    fn each_invalid_field_is_named() {
        let cases: Vec<Breakage> = vec![
            (
                "institution",
                Box::new(|s| {
                    s.institution = InstitutionId::parse("I".repeat(36)).expect("valid ledger id")
                }),
            ),
            (
                "debtor_account",
                Box::new(|s| s.debtor_account = "62-22".into()),
            ),
            (
                "creditor.account",
                Box::new(|s| s.creditor.account = String::new()),
            ),
            (
                "creditor.name",
                Box::new(|s| s.creditor.name = "a\u{0}b".into()),
            ),
            (
                "creditor.name",
                Box::new(|s| s.creditor.name = "名".repeat(141)),
            ),
            (
                "creditor.bank",
                Box::new(|s| s.creditor.bank = "ICBK CNBJ".into()),
            ),
            ("remittance", Box::new(|s| s.remittance = Some("  ".into()))),
        ];
        for (field, mutate) in cases {
            let mut spec = spec("RF-1", 100);
            mutate(&mut spec);
            match Instruction::new(spec) {
                Err(InstructionError::InvalidField { field: got, .. }) => assert_eq!(got, field),
                other => panic!("expected {field} to be rejected, got {other:?}"),
            }
        }
    }

    #[test]
    fn the_wire_body_carries_the_amount_as_a_decimal_string() {
        let instruction = Instruction::new(spec("RF-1", 123_450)).expect("valid");
        let body: serde_json::Value =
            serde_json::from_slice(&instruction.wire_body().expect("json")).expect("parse");
        assert_eq!(body["amount"], "1234.50");
        assert_eq!(body["currency"], "CNY");
        assert_eq!(body["kind"], "refund");
        assert_eq!(body["requested_date"], "2026-01-05");
    }
}
