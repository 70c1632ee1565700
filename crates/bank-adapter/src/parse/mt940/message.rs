//! One MT940/MT942 message: its fields in file order, assembled into
//! statements. The money checks that need a line number (amounts parse,
//! every currency is the statement's, control totals match) happen here,
//! where the line is still known; parse.rs checks the arithmetic after.

use std::collections::BTreeMap;

use rust_decimal::Decimal;

use super::{fields, information, statement_line, Notes};
use crate::model::{Balance, Format, Line, LineStatus, SourceRef, Statement};
use crate::parse::{FileContext, ParseError};

/// The first field that named the statement's currency, for error messages.
struct Currency {
    code: String,
    at: String,
}

/// `:90D:`/`:90C:`: the bank's own count and total of debits or credits.
struct Control {
    debit: bool,
    count: usize,
    total: Decimal,
    at: String,
}

pub(super) struct Message<'c> {
    format: Format,
    ctx: &'c FileContext,
    index: u32,
    start_line: u32,
    /// Where the statement being read starts: its `:20:`, or the `:25:` of
    /// a second statement inside the message.
    statement_line: u32,
    last_line: u32,
    statement_id: String,
    account: Option<String>,
    sequence: Option<String>,
    currency: Option<Currency>,
    opening: Option<Balance>,
    closing: Option<Balance>,
    lines: Vec<Line>,
    controls: Vec<Control>,
    /// The previous field was a `:61:` still without its `:86:`.
    awaiting_information: bool,
    done: Vec<Statement>,
}

impl<'c> Message<'c> {
    pub(super) fn new(format: Format, ctx: &'c FileContext, index: u32, start_line: u32) -> Self {
        Message {
            format,
            ctx,
            index,
            start_line,
            statement_line: start_line,
            last_line: start_line,
            statement_id: String::new(),
            account: None,
            sequence: None,
            currency: None,
            opening: None,
            closing: None,
            lines: Vec::new(),
            controls: Vec::new(),
            awaiting_information: false,
            done: Vec::new(),
        }
    }

    fn error(&self, at: &str, message: impl Into<String>) -> ParseError {
        ParseError::malformed(self.format, at, message)
    }

    /// Takes one field: its tag, the line it starts on, the rest of that
    /// line and any continuation lines.
    pub(super) fn field(
        &mut self,
        tag: &str,
        line: u32,
        first: &str,
        more: &[&str],
        notes: &mut Notes,
    ) -> Result<(), ParseError> {
        let at = format!("line {line} (:{tag}:)");
        self.last_line = line;
        let awaiting_information = std::mem::take(&mut self.awaiting_information);
        let continuation_is_content = matches!(tag, "61" | "86");
        if !continuation_is_content && more.iter().any(|m| !m.trim().is_empty()) {
            notes.warn(
                at.clone(),
                format!(
                    "{} continuation line(s) after :{tag}: were ignored",
                    more.len()
                ),
            );
        }
        if matches!(tag, "20" | "25" | "28C" | "28") && self.has_content() {
            // A second statement inside one message: the statement read so
            // far is closed under its own identity before the next one's
            // :25:/:28C: can replace it.
            self.close_statement()?;
            self.statement_line = line;
            self.account = None;
            self.sequence = None;
            self.currency = None;
        }
        match tag {
            "20" => self.statement_id = first.trim().to_owned(),
            "25" => {
                let account = first.trim();
                if account.is_empty() {
                    return Err(self.error(&at, "expected the account identification after :25:"));
                }
                self.account = Some(account.to_owned());
            }
            "28C" | "28" => self.sequence = Some(first.trim().to_owned()).filter(|s| !s.is_empty()),
            "60F" | "60M" => {
                if self.closing.is_some() {
                    // A second statement inside one message (some exports
                    // do this instead of starting a new :20:).
                    self.close_statement()?;
                    self.statement_line = line;
                }
                if self.opening.is_some() {
                    return Err(self.error(
                        &at,
                        "a second opening balance: expected one :60F:/:60M: per statement",
                    ));
                }
                self.opening = Some(self.balance(first, &at)?);
            }
            "62F" | "62M" => {
                if self.closing.is_some() {
                    return Err(self.error(
                        &at,
                        "a second closing balance: expected one :62F:/:62M: per statement",
                    ));
                }
                self.closing = Some(self.balance(first, &at)?);
            }
            // Available balances: the model has no place for them, but
            // their money is checked like any other.
            "64" | "65" => {
                self.balance(first, &at)?;
            }
            "61" => {
                if self.closing.is_some() {
                    return Err(self.error(&at, "a :61: after the closing balance: expected :61: lines between :60F: and :62F:"));
                }
                let entry = statement_line::parse(first).map_err(|m| self.error(&at, m))?;
                if let Some(raw) = entry.value_date_raw {
                    notes.warn(
                        at.clone(),
                        format!(
                            "value date '{raw}' is not a real date (a savings-bank interest day); the entry date {} is used and the raw value kept",
                            entry.value_date
                        ),
                    );
                }
                let line = self.line(line, entry, more);
                self.lines.push(line);
                self.awaiting_information = true;
            }
            "86" => {
                // A :86: after anything but a :61: is information about the
                // whole statement, which the model does not carry.
                if let Some(last) = self.lines.last_mut().filter(|_| awaiting_information) {
                    let mut raw = String::with_capacity(
                        first.len() + more.iter().map(|m| m.len()).sum::<usize>(),
                    );
                    raw.push_str(first);
                    // SWIFT line breaks inside a field are layout, not
                    // content: banks (and our renderer) break mid-word.
                    for m in more.iter().filter(|m| !m.trim().is_empty()) {
                        raw.push_str(m);
                    }
                    information::attach(last, &raw);
                }
            }
            "34F" => self.floor_limit(first, &at)?,
            "90D" | "90C" => self.control(tag == "90D", first, &at)?,
            "21" | "13" | "13D" | "NS" => {}
            _ => notes.warn(
                at,
                format!(":{tag}: is not an MT940/MT942 field and was ignored"),
            ),
        }
        Ok(())
    }

    /// Whether the statement being read has anything past its identity
    /// fields (`:20:`, `:25:`, `:28C:`).
    fn has_content(&self) -> bool {
        self.opening.is_some()
            || self.closing.is_some()
            || !self.lines.is_empty()
            || !self.controls.is_empty()
            || self.currency.is_some()
    }

    fn balance(&mut self, value: &str, at: &str) -> Result<Balance, ParseError> {
        let b = fields::balance(value).map_err(|m| self.error(at, m))?;
        self.check_currency(b.currency, at)?;
        Ok(Balance {
            amount: b.amount,
            date: b.date,
        })
    }

    /// The first currency seen is the statement's; every later one must
    /// agree, because one statement is one account in one currency.
    fn check_currency(&mut self, code: &str, at: &str) -> Result<(), ParseError> {
        match &self.currency {
            None => {
                self.currency = Some(Currency {
                    code: code.to_owned(),
                    at: at.to_owned(),
                });
                Ok(())
            }
            Some(c) if c.code == code => Ok(()),
            Some(c) => Err(self.error(
                at,
                format!(
                    "currency {code} differs from the statement's currency {} set at {}",
                    c.code, c.at
                ),
            )),
        }
    }

    /// `:34F:CNYD100,` (MT942 floor limit): currency, optional mark, amount.
    fn floor_limit(&mut self, value: &str, at: &str) -> Result<(), ParseError> {
        let value = value.trim();
        let code = fields::currency(value).map_err(|m| self.error(at, m))?;
        let rest = value.get(3..).unwrap_or("");
        let rest = rest.strip_prefix(['C', 'D']).unwrap_or(rest).trim();
        // A floor limit is a threshold, not money that moves: banks write
        // `PLN0` as well as `PLN0,`. Whole digits are read as such.
        let whole =
            !rest.is_empty() && rest.len() <= 15 && rest.bytes().all(|c| c.is_ascii_digit());
        if !whole {
            fields::amount(rest).map_err(|m| self.error(at, m))?;
        }
        self.check_currency(code, at)
    }

    /// `:90D:3EUR1234,56`: number of entries, currency, total.
    fn control(&mut self, debit: bool, value: &str, at: &str) -> Result<(), ParseError> {
        let value = value.trim();
        let n = value.bytes().take_while(u8::is_ascii_digit).count();
        let count = value.get(..n).and_then(|c| c.parse().ok()).ok_or_else(|| {
            self.error(at, format!("expected the number of entries, a currency and a total like 3EUR1234,56; found '{}'", fields::shown(value)))
        })?;
        let rest = value.get(n..).unwrap_or("");
        let code = fields::currency(rest).map_err(|m| self.error(at, m))?;
        let total = fields::amount(rest.get(3..).unwrap_or("")).map_err(|m| self.error(at, m))?;
        self.check_currency(code, at)?;
        self.controls.push(Control {
            debit,
            count,
            total,
            at: at.to_owned(),
        });
        Ok(())
    }

    fn line(&self, number: u32, entry: statement_line::Entry<'_>, more: &[&str]) -> Line {
        let mut structured = BTreeMap::new();
        let supplementary: String = more.iter().map(|m| m.trim()).collect();
        if !supplementary.is_empty() {
            structured.insert("supplementary_details".to_owned(), supplementary);
        }
        if let Some(raw) = entry.tx_type_raw {
            structured.insert("transaction_type_raw".to_owned(), raw.to_owned());
        }
        if let Some(raw) = entry.value_date_raw {
            structured.insert("value_date_raw".to_owned(), raw.to_owned());
        }
        if let Some(code) = entry.funds_code {
            structured.insert("funds_code".to_owned(), code.to_owned());
        }
        Line {
            amount: entry.amount,
            booking_date: entry.entry_date,
            value_date: Some(entry.value_date),
            // MT942 lines are interim, but booked: the bank has posted them.
            status: LineStatus::Booked,
            bank_ref: entry.bank_ref.map(str::to_owned),
            end_to_end_id: entry.customer_ref.map(str::to_owned),
            remittance: None,
            counterparty_name: None,
            counterparty_account: None,
            bank_tx_code: Some(entry.tx_type.to_owned()),
            reversal: entry.reversal,
            return_reason: None,
            children: Vec::new(),
            structured,
            source: self.source(number),
        }
    }

    fn source(&self, line: u32) -> SourceRef {
        SourceRef {
            file_sha256: self.ctx.sha256.clone(),
            message: self.index,
            line: Some(line),
            path: None,
        }
    }

    /// Ends the statement being read: checks what must be there and moves
    /// it to `done`.
    fn close_statement(&mut self) -> Result<(), ParseError> {
        let start = if self.statement_line == self.start_line {
            format!("line {} (:20:)", self.start_line)
        } else {
            format!(
                "line {} (statement {} of message {})",
                self.statement_line,
                self.done.len() + 1,
                self.index
            )
        };
        let end = format!("line {} (end of message {})", self.last_line, self.index);
        let Some(account) = self.account.clone() else {
            return Err(self.error(
                &start,
                format!(
                    "message {} has no :25: account identification: expected :25: after :20:",
                    self.index
                ),
            ));
        };
        if self.format == Format::Mt940 {
            if self.opening.is_none() {
                return Err(self.error(
                    &end,
                    "the statement has no opening balance: expected :60F: or :60M:",
                ));
            }
            if self.closing.is_none() {
                return Err(self.error(&end, "the statement has no closing balance: expected :62F: or :62M: (is the file truncated?)"));
            }
        }
        let Some(currency) = self.currency.as_ref().map(|c| c.code.clone()) else {
            return Err(self.error(
                &end,
                "the statement names no currency: expected :34F: or a balance such as :60F:",
            ));
        };
        let lines = std::mem::take(&mut self.lines);
        for c in std::mem::take(&mut self.controls) {
            let matching = lines
                .iter()
                .filter(|l| (l.amount < Decimal::ZERO) == c.debit);
            let (count, total) = matching.fold((0usize, Decimal::ZERO), |(n, t), l| {
                (n + 1, t + l.amount.abs())
            });
            if count != c.count || total != c.total {
                let kind = if c.debit { "debit" } else { "credit" };
                return Err(self.error(
                    &c.at,
                    format!("the bank's control total says {} {kind} entries of {}, but the message has {count} of {total}", c.count, c.total),
                ));
            }
        }
        self.done.push(Statement {
            format: self.format,
            account,
            currency,
            statement_id: self.statement_id.clone(),
            sequence: self.sequence.clone(),
            opening_balance: self.opening.take(),
            closing_balance: self.closing.take(),
            lines,
            source: self.source(self.statement_line),
        });
        Ok(())
    }

    /// The message has ended (end marker, next `:20:` or end of file).
    pub(super) fn finish(mut self) -> Result<Vec<Statement>, ParseError> {
        self.close_statement()?;
        Ok(self.done)
    }
}
