//! One camt statement (`Stmt`), report (`Rpt`) or notification (`Ntfctn`)
//! being read: its header fields, its balances, which balance is the opening
//! and which the closing, and the account currency every amount must be in.

use rust_decimal::Decimal;

use super::value::{self, Direction};
use super::{Here, Warnings};
use crate::model::{Balance, Format, Line, SourceRef, Statement, Warning};
use crate::parse::ParseError;

/// The account's currency: `Acct/Ccy` when the bank gives it, otherwise the
/// currency of the first amount; every other amount must be in it.
#[derive(Default)]
pub(super) struct AccountCurrency {
    code: Option<String>,
    from_account: bool,
}

impl AccountCurrency {
    pub(super) fn code(&self) -> Option<&str> {
        self.code.as_deref()
    }

    /// Checks the `Ccy` attribute of an amount element.
    pub(super) fn check_amount(
        &mut self,
        ccy: Option<&str>,
        here: &Here<'_>,
    ) -> Result<(), ParseError> {
        let ccy = ccy.ok_or_else(|| {
            here.error(
                "the amount has no Ccy attribute: expected Ccy=\"CNY\" or another ISO 4217 code",
            )
        })?;
        let ccy = value::currency(ccy).map_err(|m| here.error(m))?;
        match &self.code {
            None => {
                self.code = Some(ccy);
                Ok(())
            }
            Some(account) if *account == ccy => Ok(()),
            Some(account) => Err(here.error(format!(
                "the amount is in {ccy} but the account's currency is {account}{}: expected every balance and entry in the account's currency",
                if self.from_account { " (Acct/Ccy)" } else { " (its first amount)" }
            ))),
        }
    }

    /// `Acct/Ccy`; schema order puts it before any amount, but a bank that
    /// reorders elements is still held to one currency.
    fn declare(&mut self, text: &str, here: &Here<'_>) -> Result<(), ParseError> {
        let ccy = value::currency(text).map_err(|m| here.error(m))?;
        match &self.code {
            Some(seen) if *seen != ccy => Err(here.error(format!(
                "the account's currency is {ccy} but amounts before it are in {seen}: expected one currency per account"
            ))),
            _ => {
                self.code = Some(ccy);
                self.from_account = true;
                Ok(())
            }
        }
    }
}

/// The balance codes we read; others (available, forward, interim
/// available…) are not the booked opening or closing balance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BalanceCode {
    /// OPBD: opening booked.
    Opening,
    /// PRCD: previous closing booked, the opening when OPBD is absent.
    PreviousClosing,
    /// CLBD: closing booked.
    Closing,
    /// ITBD: interim booked, the closing of an intraday report (camt.052).
    Interim,
}

impl BalanceCode {
    fn of(code: &str) -> Option<Self> {
        match code {
            "OPBD" => Some(BalanceCode::Opening),
            "PRCD" => Some(BalanceCode::PreviousClosing),
            "CLBD" => Some(BalanceCode::Closing),
            "ITBD" => Some(BalanceCode::Interim),
            _ => None,
        }
    }
}

/// One `Bal` element being read.
pub(super) struct BalanceBuilder {
    pub(super) level: usize,
    code: Option<String>,
    amount: Option<Decimal>,
    direction: Option<Direction>,
    date: Option<chrono::NaiveDate>,
}

impl BalanceBuilder {
    pub(super) fn new(level: usize) -> Self {
        BalanceBuilder {
            level,
            code: None,
            amount: None,
            direction: None,
            date: None,
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
        match rel {
            ["Tp", "CdOrPrtry", "Cd"] => self.code = Some(text.to_owned()),
            ["Amt"] => {
                self.amount = Some(value::amount(text).map_err(|m| here.error(m))?);
                currency.check_amount(ccy, here)?;
            }
            ["CdtDbtInd"] => {
                self.direction = Some(value::direction(text).map_err(|m| here.error(m))?)
            }
            ["Dt", "Dt"] | ["Dt", "DtTm"] => {
                self.date = Some(value::date(text).map_err(|m| here.error(m))?)
            }
            _ => {}
        }
        Ok(())
    }
}

pub(super) struct StatementBuilder {
    pub(super) level: usize,
    message: u32,
    path: String,
    line: u32,
    id: Option<String>,
    electronic_seq: Option<String>,
    legal_seq: Option<String>,
    page: Option<String>,
    iban: Option<String>,
    other_id: Option<String>,
    pub(super) currency: AccountCurrency,
    balances: Vec<(BalanceCode, Balance, String)>,
    pub(super) lines: Vec<Line>,
}

impl StatementBuilder {
    pub(super) fn new(level: usize, message: u32, path: String, line: u32) -> Self {
        StatementBuilder {
            level,
            message,
            path,
            line,
            id: None,
            electronic_seq: None,
            legal_seq: None,
            page: None,
            iban: None,
            other_id: None,
            currency: AccountCurrency::default(),
            balances: Vec::new(),
            lines: Vec::new(),
        }
    }

    pub(super) fn message(&self) -> u32 {
        self.message
    }

    pub(super) fn field(
        &mut self,
        rel: &[&str],
        text: &str,
        here: &Here<'_>,
    ) -> Result<(), ParseError> {
        if text.is_empty() {
            return Ok(());
        }
        let keep = |slot: &mut Option<String>| {
            if slot.is_none() {
                *slot = Some(text.to_owned());
            }
        };
        match rel {
            ["Id"] => keep(&mut self.id),
            ["ElctrncSeqNb"] => keep(&mut self.electronic_seq),
            ["LglSeqNb"] => keep(&mut self.legal_seq),
            ["StmtPgntn" | "RptPgntn" | "NtfctnPgntn", "PgNb"] => keep(&mut self.page),
            ["Acct", "Id", "IBAN"] => keep(&mut self.iban),
            ["Acct", "Id", "Othr", "Id"] => keep(&mut self.other_id),
            ["Acct", "Ccy"] => self.currency.declare(text, here)?,
            _ => {}
        }
        Ok(())
    }

    /// A finished `Bal`. Only the balances we use must be complete; a
    /// broken amount anywhere was already refused while reading it.
    pub(super) fn push_balance(
        &mut self,
        bal: BalanceBuilder,
        here: &Here<'_>,
        warnings: &mut Warnings,
    ) -> Result<(), ParseError> {
        let Some(code) = bal.code.as_deref().and_then(BalanceCode::of) else {
            return Ok(());
        };
        let amount = bal
            .amount
            .ok_or_else(|| here.error("the balance has no Amt: expected an amount with its Ccy"))?;
        let direction = bal
            .direction
            .ok_or_else(|| here.error("the balance has no CdtDbtInd: expected CRDT or DBIT"))?;
        let date = bal.date.ok_or_else(|| {
            here.error("the balance has no Dt/Dt or Dt/DtTm: expected the date it applies to")
        })?;
        let balance = Balance {
            amount: direction.sign(amount),
            date,
        };
        let path = here.path();
        if let Some((_, first, first_path)) = self.balances.iter().find(|(c, _, _)| *c == code) {
            // Two balances of one kind (some banks repeat CLBD per value
            // date): the first is the statement's; say so rather than pick silently.
            warnings.push(Warning {
                at: path.clone(),
                message: format!(
                    "a second {} balance ({} on {}); the first one at {first_path} ({} on {}) is used",
                    bal.code.as_deref().unwrap_or_default(),
                    balance.amount,
                    balance.date,
                    first.amount,
                    first.date
                ),
            });
            return Ok(());
        }
        self.balances.push((code, balance, path));
        Ok(())
    }

    fn balance(&self, code: BalanceCode) -> Option<Balance> {
        self.balances
            .iter()
            .find(|(c, _, _)| *c == code)
            .map(|(_, b, _)| b.clone())
    }

    pub(super) fn finish(
        self,
        format: Format,
        file_sha256: &str,
        here: &Here<'_>,
    ) -> Result<Statement, ParseError> {
        let id = self.id.clone().ok_or_else(|| {
            here.error("the statement has no Id: expected the bank's statement identification")
        })?;
        let account = self.iban.clone().or_else(|| self.other_id.clone()).ok_or_else(|| {
            here.error("the statement has no Acct/Id/IBAN or Acct/Id/Othr/Id: expected the account it reports on")
        })?;
        let currency = self.currency.code().map(str::to_owned).ok_or_else(|| {
            here.error("cannot tell the account's currency: expected Acct/Ccy or a Ccy attribute on a balance or entry amount")
        })?;
        let sequence = match (
            self.electronic_seq.as_ref().or(self.legal_seq.as_ref()),
            &self.page,
        ) {
            (Some(seq), Some(page)) => Some(format!("{seq}/{page}")),
            (Some(seq), None) => Some(seq.clone()),
            (None, _) => None,
        };
        let opening = self
            .balance(BalanceCode::Opening)
            .or_else(|| self.balance(BalanceCode::PreviousClosing));
        let closing = self.balance(BalanceCode::Closing).or_else(|| match format {
            Format::Camt052 => self.balance(BalanceCode::Interim),
            _ => None,
        });
        Ok(Statement {
            format,
            account,
            currency,
            statement_id: id,
            sequence,
            opening_balance: opening,
            closing_balance: closing,
            lines: self.lines,
            source: SourceRef {
                file_sha256: file_sha256.to_owned(),
                message: self.message,
                line: Some(self.line),
                path: Some(self.path),
            },
        })
    }
}
