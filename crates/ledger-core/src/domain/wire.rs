//! The wire form of a request, as banks, platforms and files send it: flat
//! JSON with amounts as decimal strings in major units (`"1234.50"`). Parsing
//! is exact and names the field that is wrong; nothing here rounds.

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::domain::entry::{Command, RefundSource, Request};
use crate::domain::error::LedgerError;
use crate::domain::ids::{ClientId, EnrollmentId, InstitutionId};
use crate::domain::money::{Amount, Currency};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireRequest {
    pub institution: String,
    pub client_id: String,
    pub currency: String,
    pub occurred_at: DateTime<Utc>,
    #[serde(default)]
    pub external_ref: Option<String>,
    /// pay_tuition, collect_outside_escrow, consume_lessons, instruct_release,
    /// approve_refund, instruct_refund_payment, record_unidentified_receipt,
    /// attribute_receipt, pay_in_deposit, instruct_deposit_return,
    /// confirm_pending, void_pending, reverse
    pub op: String,
    #[serde(default)]
    pub enrollment: Option<String>,
    #[serde(default)]
    pub amount: Option<String>,
    #[serde(default)]
    pub hours: Option<i64>,
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub pending: Option<String>,
    #[serde(default)]
    pub entry: Option<String>,
}

fn required<'a>(
    op: &str,
    field: &'static str,
    value: &'a Option<String>,
) -> Result<&'a str, LedgerError> {
    value.as_deref().ok_or(LedgerError::MissingField {
        op: op.to_string(),
        field,
    })
}

impl WireRequest {
    pub fn parse(self) -> Result<Request, LedgerError> {
        let currency: Currency = self.currency.parse()?;
        let op = self.op.as_str();
        let amount = |value: &Option<String>| -> Result<Amount, LedgerError> {
            Amount::parse(required(op, "amount", value)?, currency)
        };
        let enrollment = || EnrollmentId::parse(required(op, "enrollment", &self.enrollment)?);
        let command = match op {
            "pay_tuition" => Command::PayTuition {
                enrollment: enrollment()?,
                amount: amount(&self.amount)?,
            },
            "collect_outside_escrow" => Command::CollectOutsideEscrow {
                enrollment: enrollment()?,
                amount: amount(&self.amount)?,
            },
            "consume_lessons" => {
                let hours = self.hours.ok_or(LedgerError::MissingField {
                    op: op.to_string(),
                    field: "hours",
                })?;
                let hours = u32::try_from(hours)
                    .ok()
                    .filter(|h| *h > 0)
                    .ok_or(LedgerError::HoursMustBePositive { hours })?;
                Command::ConsumeLessons {
                    enrollment: enrollment()?,
                    hours,
                }
            }
            "instruct_release" => Command::InstructRelease {
                amount: amount(&self.amount)?,
            },
            "approve_refund" => Command::ApproveRefund {
                enrollment: enrollment()?,
                amount: match &self.amount {
                    Some(_) => Some(amount(&self.amount)?),
                    None => None,
                },
            },
            "instruct_refund_payment" => Command::InstructRefundPayment {
                amount: amount(&self.amount)?,
                source: match self.source.as_deref().unwrap_or("escrow") {
                    "escrow" => RefundSource::Escrow,
                    "deposit" => RefundSource::Deposit,
                    other => {
                        return Err(LedgerError::InvalidField {
                            field: "source",
                            reason: format!("{other:?} is not escrow or deposit"),
                        })
                    }
                },
            },
            "record_refund_paid_by_institution" => Command::RecordRefundPaidByInstitution {
                amount: amount(&self.amount)?,
            },
            "record_unidentified_receipt" => Command::RecordUnidentifiedReceipt {
                amount: amount(&self.amount)?,
            },
            "attribute_receipt" => Command::AttributeReceipt {
                enrollment: enrollment()?,
                amount: amount(&self.amount)?,
            },
            "pay_in_deposit" => Command::PayInDeposit {
                amount: amount(&self.amount)?,
            },
            "instruct_deposit_return" => Command::InstructDepositReturn {
                amount: amount(&self.amount)?,
            },
            "confirm_pending" => Command::ConfirmPending {
                pending: ClientId::parse(required(op, "pending", &self.pending)?)?,
            },
            "void_pending" => Command::VoidPending {
                pending: ClientId::parse(required(op, "pending", &self.pending)?)?,
            },
            "reverse" => Command::Reverse {
                entry: ClientId::parse(required(op, "entry", &self.entry)?)?,
            },
            other => {
                return Err(LedgerError::InvalidField {
                    field: "op",
                    reason: format!("{other:?} is not an operation"),
                })
            }
        };
        Request {
            institution: InstitutionId::parse(self.institution)?,
            client_id: ClientId::parse(self.client_id)?,
            currency,
            occurred_at: self.occurred_at,
            external_ref: self.external_ref,
            command,
        }
        .validated()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Request, &'static str> {
        let wire: WireRequest = serde_json::from_str(json).map_err(|_| "json")?;
        wire.parse().map_err(|e| e.code())
    }

    const HEAD: &str = r#""institution":"I1","client_id":"c1","currency":"CNY","occurred_at":"2026-09-01T10:00:00Z""#;

    #[track_caller]
    fn check(rest: &str, expected: Result<Command, &str>) {
        let got = parse(&format!("{{{HEAD},{rest}}}")).map(|r| r.command);
        assert_eq!(got, expected, "{rest}");
    }

    #[test]
    fn wire_requests_parse_exactly_or_name_what_is_wrong() {
        let e = || EnrollmentId::parse("E1").unwrap();
        check(
            r#""op":"pay_tuition","enrollment":"E1","amount":"1234.50""#,
            Ok(Command::PayTuition {
                enrollment: e(),
                amount: crate::Amount::from_minor(123_450).unwrap(),
            }),
        );
        check(
            r#""op":"pay_tuition","enrollment":"E1","amount":"12.345""#,
            Err("too_many_decimals"),
        );
        check(
            r#""op":"pay_tuition","enrollment":"E1","amount":"12,00""#,
            Err("invalid_amount"),
        );
        check(
            r#""op":"pay_tuition","enrollment":"E1","amount":"-5""#,
            Err("amount_must_be_positive"),
        );
        check(
            r#""op":"pay_tuition","enrollment":"E1""#,
            Err("missing_field"),
        );
        check(
            r#""op":"consume_lessons","enrollment":"E1","hours":-2"#,
            Err("hours_must_be_positive"),
        );
        check(
            r#""op":"consume_lessons","enrollment":"E1","hours":0"#,
            Err("hours_must_be_positive"),
        );
        check(
            r#""op":"consume_lessons","enrollment":"E1","hours":3"#,
            Ok(Command::ConsumeLessons {
                enrollment: e(),
                hours: 3,
            }),
        );
        check(r#""op":"teleport""#, Err("invalid_field"));
        check(
            r#""op":"instruct_refund_payment","amount":"1","source":"cash""#,
            Err("invalid_field"),
        );
        check(r#""op":"reverse","entry":"a/b""#, Err("invalid_id"));
        assert_eq!(
            parse(r#"{"institution":"I1","client_id":"c1","currency":"EUR","occurred_at":"2026-09-01T10:00:00Z","op":"pay_in_deposit","amount":"1"}"#)
                .map(|r| r.command),
            Err("unsupported_currency")
        );
        assert_eq!(
            parse(&format!(
                "{{{HEAD},\"op\":\"pay_in_deposit\",\"amount\":\"1\",\"colour\":\"red\"}}"
            ))
            .map(|r| r.command),
            Err("json")
        );
    }
}
