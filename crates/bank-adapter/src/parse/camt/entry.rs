//! One camt entry (`Ntry`) being read, with its transaction details
//! (`TxDtls`), and how it becomes a normalized line: a single transaction's
//! references are lifted onto the line, a batch's transactions become its
//! children.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use rust_decimal::Decimal;

use super::statement::AccountCurrency;
use super::value::{self, Direction};
use super::{Here, Warnings};
use crate::model::{Line, LineDetail, LineStatus, SourceRef, Warning};
use crate::parse::ParseError;

/// The bank's placeholder for "the payer gave no end-to-end id": not an id.
const NOT_PROVIDED: &str = "NOTPROVIDED";

/// Names of the `Line.structured` keys this parser fills.
pub mod keys {
    /// `NtryDtls/Btch/NbOfTxs`: how many transactions a batch entry holds.
    pub const BATCH_COUNT: &str = "batch_count";
    /// `NtryRef`: the bank's reference of the entry within the statement.
    pub const ENTRY_REF: &str = "entry_ref";
    /// `AddtlNtryInf`: the bank's free text about the entry.
    pub const ADDITIONAL_INFO: &str = "additional_info";
    /// The counterparty's bank (`RltdAgts/DbtrAgt` or `CdtrAgt`, `BIC` or `BICFI`).
    pub const COUNTERPARTY_BIC: &str = "counterparty_bic";
}

#[derive(Default, Clone)]
struct Party {
    name: Option<String>,
    account: Option<String>,
    bic: Option<String>,
}

/// One finished `TxDtls`.
struct Transaction {
    /// Unsigned, in the account's currency, when the bank gave it so.
    amount: Option<Decimal>,
    direction: Option<Direction>,
    end_to_end_id: Option<String>,
    bank_ref: Option<String>,
    remittance: Option<String>,
    debtor: Party,
    creditor: Party,
    return_reason: Option<String>,
}

impl Transaction {
    /// The party that is not the account holder. For a credit that is the
    /// debtor. A reversal (`RvslInd`) books the opposite direction of the
    /// original transaction but repeats its parties, so it flips the side.
    fn counterparty(&self, credit: bool, reversal: bool) -> &Party {
        if credit != reversal {
            &self.debtor
        } else {
            &self.creditor
        }
    }
}

/// One `TxDtls` element being read.
pub(super) struct TxBuilder {
    pub(super) level: usize,
    end_to_end_id: Option<String>,
    bank_ref: Option<String>,
    amount: Option<(Decimal, String)>,
    direction: Option<Direction>,
    booked_amount: Option<(Decimal, String)>,
    debtor: Party,
    creditor: Party,
    unstructured: Vec<String>,
    creditor_ref: Option<String>,
    return_reason: Option<String>,
}

fn keep(slot: &mut Option<String>, text: &str) {
    if slot.is_none() {
        *slot = Some(text.to_owned());
    }
}

/// Reads an amount element and its `Ccy`, which must be there and well formed.
fn amount_with_currency(
    text: &str,
    ccy: Option<&str>,
    here: &Here<'_>,
) -> Result<(Decimal, String), ParseError> {
    let amount = value::amount(text).map_err(|m| here.error(m))?;
    let ccy = ccy.ok_or_else(|| {
        here.error("the amount has no Ccy attribute: expected Ccy=\"CNY\" or another ISO 4217 code")
    })?;
    let ccy = value::currency(ccy).map_err(|m| here.error(m))?;
    Ok((amount, ccy))
}

impl TxBuilder {
    pub(super) fn new(level: usize) -> Self {
        TxBuilder {
            level,
            end_to_end_id: None,
            bank_ref: None,
            amount: None,
            direction: None,
            booked_amount: None,
            debtor: Party::default(),
            creditor: Party::default(),
            unstructured: Vec::new(),
            creditor_ref: None,
            return_reason: None,
        }
    }

    pub(super) fn field(
        &mut self,
        rel: &[&str],
        text: &str,
        ccy: Option<&str>,
        here: &Here<'_>,
    ) -> Result<(), ParseError> {
        if text.is_empty() {
            return Ok(());
        }
        match rel {
            ["Refs", "EndToEndId"] if text != NOT_PROVIDED => keep(&mut self.end_to_end_id, text),
            ["Refs", "AcctSvcrRef"] => keep(&mut self.bank_ref, text),
            // From .03 the transaction carries its own amount and direction;
            // before that only `AmtDtls/TxAmt` does.
            ["Amt"] => self.amount = Some(amount_with_currency(text, ccy, here)?),
            ["AmtDtls", "TxAmt", "Amt"] => {
                self.booked_amount = Some(amount_with_currency(text, ccy, here)?)
            }
            ["CdtDbtInd"] => {
                self.direction = Some(value::direction(text).map_err(|m| here.error(m))?)
            }
            // `Dbtr/Nm` up to .07, `Dbtr/Pty/Nm` from .08.
            ["RltdPties", "Dbtr", "Nm"] | ["RltdPties", "Dbtr", "Pty", "Nm"] => {
                keep(&mut self.debtor.name, text)
            }
            ["RltdPties", "Cdtr", "Nm"] | ["RltdPties", "Cdtr", "Pty", "Nm"] => {
                keep(&mut self.creditor.name, text)
            }
            ["RltdPties", "DbtrAcct", "Id", "IBAN"]
            | ["RltdPties", "DbtrAcct", "Id", "Othr", "Id"] => keep(&mut self.debtor.account, text),
            ["RltdPties", "CdtrAcct", "Id", "IBAN"]
            | ["RltdPties", "CdtrAcct", "Id", "Othr", "Id"] => {
                keep(&mut self.creditor.account, text)
            }
            // `BIC` up to .06, `BICFI` from .07.
            ["RltdAgts", "DbtrAgt", "FinInstnId", "BIC" | "BICFI"] => {
                keep(&mut self.debtor.bic, text)
            }
            ["RltdAgts", "CdtrAgt", "FinInstnId", "BIC" | "BICFI"] => {
                keep(&mut self.creditor.bic, text)
            }
            ["RmtInf", "Ustrd"] => self.unstructured.push(text.to_owned()),
            ["RmtInf", "Strd", "CdtrRefInf", "Ref"] => keep(&mut self.creditor_ref, text),
            ["RtrInf", "Rsn", "Cd"] | ["RtrInf", "Rsn", "Prtry"] => {
                keep(&mut self.return_reason, text)
            }
            _ => {}
        }
        Ok(())
    }

    /// Picks the amount in the account's currency: `Amt` when it is, else
    /// the booked `AmtDtls/TxAmt`. A transaction quoted only in another
    /// currency keeps no amount rather than a number in the wrong unit.
    fn finish(
        self,
        currency: &AccountCurrency,
        here: &Here<'_>,
        warnings: &mut Warnings,
    ) -> Transaction {
        let in_account = |a: &Option<(Decimal, String)>| match (a, currency.code()) {
            (Some((amount, ccy)), Some(account)) if ccy == account => Some(*amount),
            (Some((amount, _)), None) => Some(*amount),
            _ => None,
        };
        let amount = in_account(&self.amount).or_else(|| in_account(&self.booked_amount));
        if amount.is_none() {
            if let Some((_, ccy)) = self.amount.as_ref().or(self.booked_amount.as_ref()) {
                warnings.push(Warning {
                    at: here.path(),
                    message: format!(
                        "the transaction amount is in {ccy}, not the account's {}: its amount is left out",
                        currency.code().unwrap_or_default()
                    ),
                });
            }
        }
        let remittance = if self.unstructured.is_empty() {
            self.creditor_ref
        } else {
            Some(self.unstructured.join(" "))
        };
        Transaction {
            amount,
            direction: self.direction,
            end_to_end_id: self.end_to_end_id,
            bank_ref: self.bank_ref,
            remittance,
            debtor: self.debtor,
            creditor: self.creditor,
            return_reason: self.return_reason,
        }
    }
}

/// One `Ntry` element being read.
pub(super) struct EntryBuilder {
    pub(super) level: usize,
    path: String,
    line: u32,
    amount: Option<Decimal>,
    direction: Option<Direction>,
    reversal: bool,
    status: Option<LineStatus>,
    booking_date: Option<NaiveDate>,
    value_date: Option<NaiveDate>,
    bank_ref: Option<String>,
    domain: Option<String>,
    family: Option<String>,
    sub_family: Option<String>,
    proprietary_code: Option<String>,
    batch_count: Option<String>,
    entry_ref: Option<String>,
    additional_info: Option<String>,
    transactions: Vec<Transaction>,
}

impl EntryBuilder {
    pub(super) fn new(level: usize, path: String, line: u32) -> Self {
        EntryBuilder {
            level,
            path,
            line,
            amount: None,
            direction: None,
            reversal: false,
            status: None,
            booking_date: None,
            value_date: None,
            bank_ref: None,
            domain: None,
            family: None,
            sub_family: None,
            proprietary_code: None,
            batch_count: None,
            entry_ref: None,
            additional_info: None,
            transactions: Vec::new(),
        }
    }

    pub(super) fn field(
        &mut self,
        rel: &[&str],
        text: &str,
        ccy: Option<&str>,
        currency: &mut AccountCurrency,
        here: &Here<'_>,
    ) -> Result<(), ParseError> {
        if text.is_empty() {
            return Ok(());
        }
        let fail = |m: String| here.error(m);
        match rel {
            ["Amt"] => {
                self.amount = Some(value::amount(text).map_err(fail)?);
                currency.check_amount(ccy, here)?;
            }
            ["CdtDbtInd"] => self.direction = Some(value::direction(text).map_err(fail)?),
            ["RvslInd"] => self.reversal = value::yes_no(text).map_err(fail)?,
            // A plain code up to .06, `Sts/Cd` from .07.
            ["Sts"] | ["Sts", "Cd"] | ["Sts", "Prtry"] => {
                self.status = Some(value::status(text).map_err(fail)?)
            }
            ["BookgDt", "Dt"] | ["BookgDt", "DtTm"] => {
                self.booking_date = Some(value::date(text).map_err(fail)?)
            }
            ["ValDt", "Dt"] | ["ValDt", "DtTm"] => {
                self.value_date = Some(value::date(text).map_err(fail)?)
            }
            ["AcctSvcrRef"] => keep(&mut self.bank_ref, text),
            ["NtryRef"] => keep(&mut self.entry_ref, text),
            ["AddtlNtryInf"] => keep(&mut self.additional_info, text),
            ["BkTxCd", "Domn", "Cd"] => keep(&mut self.domain, text),
            ["BkTxCd", "Domn", "Fmly", "Cd"] => keep(&mut self.family, text),
            ["BkTxCd", "Domn", "Fmly", "SubFmlyCd"] => keep(&mut self.sub_family, text),
            ["BkTxCd", "Prtry", "Cd"] => keep(&mut self.proprietary_code, text),
            ["NtryDtls", "Btch", "NbOfTxs"] => keep(&mut self.batch_count, text),
            _ => {}
        }
        Ok(())
    }

    pub(super) fn push_transaction(
        &mut self,
        tx: TxBuilder,
        currency: &AccountCurrency,
        here: &Here<'_>,
        warnings: &mut Warnings,
    ) {
        self.transactions.push(tx.finish(currency, here, warnings));
    }

    fn bank_tx_code(&mut self) -> Option<String> {
        match (
            self.domain.take(),
            self.family.take(),
            self.sub_family.take(),
        ) {
            (Some(d), Some(f), Some(s)) => Some(format!("{d}/{f}/{s}")),
            (Some(d), Some(f), None) => Some(format!("{d}/{f}")),
            (Some(d), None, _) => Some(d),
            _ => self.proprietary_code.take(),
        }
    }

    pub(super) fn finish(
        mut self,
        message: u32,
        file_sha256: &str,
        here: &Here<'_>,
        warnings: &mut Warnings,
    ) -> Result<Line, ParseError> {
        let unsigned = self.amount.ok_or_else(|| {
            here.error("the entry has no Amt: expected its amount with a Ccy attribute")
        })?;
        let direction = self
            .direction
            .ok_or_else(|| here.error("the entry has no CdtDbtInd: expected CRDT or DBIT"))?;
        let status = self
            .status
            .ok_or_else(|| here.error("the entry has no Sts: expected BOOK, PDNG or INFO"))?;
        let amount = direction.sign(unsigned);
        let credit = direction == Direction::Credit;
        let bank_tx_code = self.bank_tx_code();

        let mut structured = BTreeMap::new();
        for (key, value) in [
            (keys::BATCH_COUNT, self.batch_count.take()),
            (keys::ENTRY_REF, self.entry_ref.take()),
            (keys::ADDITIONAL_INFO, self.additional_info.take()),
        ] {
            if let Some(value) = value {
                structured.insert(key.to_owned(), value);
            }
        }
        if let Some(count) = structured.get(keys::BATCH_COUNT) {
            let sent = self.transactions.len();
            if sent > 1 && count.parse::<usize>().ok() != Some(sent) {
                warnings.push(Warning {
                    at: self.path.clone(),
                    message: format!("NtryDtls/Btch/NbOfTxs says {count} transactions but {sent} TxDtls were sent"),
                });
            }
        }

        let return_reason = self
            .transactions
            .iter()
            .find_map(|t| t.return_reason.clone());
        let mut line = Line {
            amount,
            booking_date: self.booking_date,
            value_date: self.value_date,
            status,
            bank_ref: self.bank_ref.take(),
            end_to_end_id: None,
            remittance: None,
            counterparty_name: None,
            counterparty_account: None,
            bank_tx_code,
            reversal: self.reversal,
            return_reason,
            children: Vec::new(),
            structured,
            source: SourceRef {
                file_sha256: file_sha256.to_owned(),
                message,
                line: Some(self.line),
                path: Some(self.path),
            },
        };
        let reversal = self.reversal;
        let mut transactions = self.transactions;
        if transactions.len() == 1 {
            // One transaction: its references are the line's own.
            if let Some(tx) = transactions.pop() {
                let party = tx.counterparty(credit, reversal).clone();
                line.bank_ref = line.bank_ref.or(tx.bank_ref);
                line.end_to_end_id = tx.end_to_end_id;
                line.remittance = tx.remittance;
                line.counterparty_name = party.name;
                line.counterparty_account = party.account;
                if let Some(bic) = party.bic {
                    line.structured
                        .insert(keys::COUNTERPARTY_BIC.to_owned(), bic);
                }
            }
        } else {
            line.children = transactions
                .into_iter()
                .map(|tx| {
                    let direction = tx.direction.unwrap_or(direction);
                    let party = tx
                        .counterparty(direction == Direction::Credit, reversal)
                        .clone();
                    LineDetail {
                        amount: tx.amount.map(|a| direction.sign(a)),
                        end_to_end_id: tx.end_to_end_id,
                        remittance: tx.remittance,
                        counterparty_name: party.name,
                        counterparty_account: party.account,
                    }
                })
                .collect();
            let amounts: Option<Vec<Decimal>> = line.children.iter().map(|c| c.amount).collect();
            let total = amounts.and_then(|a| {
                a.iter()
                    .try_fold(Decimal::ZERO, |sum, x| sum.checked_add(*x))
            });
            if let Some(total) = total {
                if !line.children.is_empty() && total != amount {
                    warnings.push(Warning {
                        at: line.source.path.clone().unwrap_or_default(),
                        message: format!(
                            "the batch's {} transactions add up to {total}, not the entry's {amount}",
                            line.children.len()
                        ),
                    });
                }
            }
        }
        Ok(line)
    }
}
