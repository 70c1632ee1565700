//! Renders normalized statements as one camt.053.001.08 document, the way a
//! supervising bank would send them: for the fake bank, for round-trip tests,
//! and for anyone who needs a statement file back. Parsing the result gives
//! the same statements (apart from where they came from).

use chrono::NaiveDate;
use rust_decimal::Decimal;

use crate::model::{Balance, Line, LineDetail, LineStatus, Statement};
use crate::parse::camt::keys;

const NAMESPACE: &str = "urn:iso:std:iso:20022:tech:xsd:camt.053.001.08";

/// Renders `statements` as a camt.053.001.08 document. Amounts are written
/// with the digits their `Decimal` carries; nothing is rounded.
pub fn camt053(statements: &[Statement]) -> String {
    let mut w = Writer::default();
    w.out
        .push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    w.out.push_str("<Document xmlns=\"");
    w.out.push_str(NAMESPACE);
    w.out.push_str("\">\n");
    w.depth = 1;
    w.open("BkToCstmrStmt");
    w.open("GrpHdr");
    let msg_id = statements
        .first()
        .map_or("EMPTY", |s| s.statement_id.as_str());
    w.leaf("MsgId", &msg_id.chars().take(35).collect::<String>());
    w.leaf("CreDtTm", &created(statements.iter()));
    w.close("GrpHdr");
    for s in statements {
        statement(&mut w, s);
    }
    w.close("BkToCstmrStmt");
    w.close("Document");
    w.out
}

/// Rendering is pure, so the creation time is not the clock's: it is the
/// latest day the statements speak of.
fn created<'a>(statements: impl Iterator<Item = &'a Statement>) -> String {
    let latest = statements
        .flat_map(|s| {
            let balances = [&s.opening_balance, &s.closing_balance]
                .into_iter()
                .flatten()
                .map(|b| b.date);
            let lines = s
                .lines
                .iter()
                .flat_map(|l| [l.booking_date, l.value_date])
                .flatten();
            balances.chain(lines).collect::<Vec<NaiveDate>>()
        })
        .max();
    match latest {
        Some(day) => format!("{day}T00:00:00"),
        None => "1970-01-01T00:00:00".to_owned(),
    }
}

fn statement(w: &mut Writer, s: &Statement) {
    w.open("Stmt");
    w.leaf("Id", &s.statement_id);
    let (seq, page) = sequence(s.sequence.as_deref());
    if let Some(page) = page {
        w.open("StmtPgntn");
        w.leaf("PgNb", page);
        w.leaf("LastPgInd", "true");
        w.close("StmtPgntn");
    }
    if let Some(seq) = seq {
        w.leaf("ElctrncSeqNb", seq);
    }
    w.leaf("CreDtTm", &created(std::iter::once(s)));
    w.open("Acct");
    w.open("Id");
    if is_iban(&s.account) {
        w.leaf("IBAN", &s.account);
    } else {
        w.open("Othr");
        w.leaf("Id", &s.account);
        w.close("Othr");
    }
    w.close("Id");
    w.leaf("Ccy", &s.currency);
    w.close("Acct");
    for (code, balance) in [("OPBD", &s.opening_balance), ("CLBD", &s.closing_balance)] {
        if let Some(balance) = balance {
            bal(w, code, balance, &s.currency);
        }
    }
    for line in &s.lines {
        entry(w, line, &s.currency);
    }
    w.close("Stmt");
}

/// `42/1` → (`ElctrncSeqNb` 42, `PgNb` 1). Both are numbers in the schema;
/// a sequence of another shape (an MT940 `:28C:` with letters) has no
/// place in camt and is left out.
fn sequence(sequence: Option<&str>) -> (Option<&str>, Option<&str>) {
    let numeric = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    match sequence.map(|s| s.split_once('/').map_or((s, None), |(a, b)| (a, Some(b)))) {
        Some((seq, page)) if numeric(seq) && page.is_none_or(numeric) => (Some(seq), page),
        _ => (None, None),
    }
}

/// Two capital letters, two check digits, 11 to 30 letters or digits.
fn is_iban(account: &str) -> bool {
    let b = account.as_bytes();
    (15..=34).contains(&b.len())
        && b.iter().take(2).all(u8::is_ascii_uppercase)
        && b.iter().skip(2).take(2).all(u8::is_ascii_digit)
        && b.iter()
            .skip(4)
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

fn indicator(amount: Decimal) -> &'static str {
    if amount.is_sign_negative() && !amount.is_zero() {
        "DBIT"
    } else {
        "CRDT"
    }
}

fn bal(w: &mut Writer, code: &str, balance: &Balance, ccy: &str) {
    w.open("Bal");
    w.open("Tp");
    w.open("CdOrPrtry");
    w.leaf("Cd", code);
    w.close("CdOrPrtry");
    w.close("Tp");
    w.amount("Amt", balance.amount, ccy);
    w.leaf("CdtDbtInd", indicator(balance.amount));
    w.open("Dt");
    w.leaf("Dt", &balance.date.to_string());
    w.close("Dt");
    w.close("Bal");
}

/// `Domn/Fmly/SubFmly` when the code has that shape (three ISO codes of up
/// to four characters), else the bank's proprietary code.
fn bank_tx_code(w: &mut Writer, code: Option<&str>) {
    let Some(code) = code else {
        // BkTxCd is mandatory; both of its parts are optional.
        w.empty("BkTxCd");
        return;
    };
    let parts: Vec<&str> = code.split('/').collect();
    let iso = |p: &&str| (1..=4).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric());
    w.open("BkTxCd");
    if let [domain, family, sub_family] = parts.as_slice() {
        if parts.iter().all(iso) {
            w.open("Domn");
            w.leaf("Cd", domain);
            w.open("Fmly");
            w.leaf("Cd", family);
            w.leaf("SubFmlyCd", sub_family);
            w.close("Fmly");
            w.close("Domn");
            w.close("BkTxCd");
            return;
        }
    }
    w.open("Prtry");
    w.leaf("Cd", code);
    w.close("Prtry");
    w.close("BkTxCd");
}

fn entry(w: &mut Writer, line: &Line, ccy: &str) {
    let structured = |key: &str| line.structured.get(key).map(String::as_str);
    w.open("Ntry");
    if let Some(entry_ref) = structured(keys::ENTRY_REF) {
        w.leaf("NtryRef", entry_ref);
    }
    w.amount("Amt", line.amount, ccy);
    w.leaf("CdtDbtInd", indicator(line.amount));
    if line.reversal {
        w.leaf("RvslInd", "true");
    }
    w.open("Sts");
    w.leaf(
        "Cd",
        match line.status {
            LineStatus::Booked => "BOOK",
            LineStatus::Pending => "PDNG",
            LineStatus::Info => "INFO",
        },
    );
    w.close("Sts");
    for (name, date) in [("BookgDt", line.booking_date), ("ValDt", line.value_date)] {
        if let Some(date) = date {
            w.open(name);
            w.leaf("Dt", &date.to_string());
            w.close(name);
        }
    }
    if let Some(bank_ref) = &line.bank_ref {
        w.leaf("AcctSvcrRef", bank_ref);
    }
    bank_tx_code(w, line.bank_tx_code.as_deref());

    let batch_count = structured(keys::BATCH_COUNT);
    let single = Tx {
        amount: Some(line.amount),
        end_to_end_id: line.end_to_end_id.as_deref(),
        remittance: line.remittance.as_deref(),
        counterparty_name: line.counterparty_name.as_deref(),
        counterparty_account: line.counterparty_account.as_deref(),
        counterparty_bic: structured(keys::COUNTERPARTY_BIC),
        return_reason: line.return_reason.as_deref(),
    };
    let has_single = line.children.is_empty() && single.has_details();
    let line_credit = indicator(line.amount) == "CRDT";
    if batch_count.is_some() || has_single || !line.children.is_empty() {
        w.open("NtryDtls");
        if let Some(count) = batch_count {
            w.open("Btch");
            w.leaf("NbOfTxs", count);
            w.close("Btch");
        }
        if has_single {
            transaction(w, &single, line_credit, line.reversal, ccy);
        }
        for (i, child) in line.children.iter().enumerate() {
            // The parser reads a batch's return reason from its first
            // transaction that has one.
            let reason = if i == 0 {
                line.return_reason.as_deref()
            } else {
                None
            };
            transaction(
                w,
                &Tx::of_child(child, reason),
                line_credit,
                line.reversal,
                ccy,
            );
        }
        w.close("NtryDtls");
    }
    if let Some(info) = structured(keys::ADDITIONAL_INFO) {
        w.leaf("AddtlNtryInf", info);
    }
    w.close("Ntry");
}

/// What one `TxDtls` says.
struct Tx<'a> {
    amount: Option<Decimal>,
    end_to_end_id: Option<&'a str>,
    remittance: Option<&'a str>,
    counterparty_name: Option<&'a str>,
    counterparty_account: Option<&'a str>,
    counterparty_bic: Option<&'a str>,
    return_reason: Option<&'a str>,
}

impl<'a> Tx<'a> {
    fn of_child(child: &'a LineDetail, return_reason: Option<&'a str>) -> Self {
        Tx {
            amount: child.amount,
            end_to_end_id: child.end_to_end_id.as_deref(),
            remittance: child.remittance.as_deref(),
            counterparty_name: child.counterparty_name.as_deref(),
            counterparty_account: child.counterparty_account.as_deref(),
            counterparty_bic: None,
            return_reason,
        }
    }

    fn has_details(&self) -> bool {
        self.end_to_end_id.is_some()
            || self.remittance.is_some()
            || self.counterparty_name.is_some()
            || self.counterparty_account.is_some()
            || self.counterparty_bic.is_some()
            || self.return_reason.is_some()
    }
}

fn transaction(w: &mut Writer, tx: &Tx<'_>, line_credit: bool, reversal: bool, ccy: &str) {
    w.open("TxDtls");
    if let Some(id) = tx.end_to_end_id {
        w.open("Refs");
        w.leaf("EndToEndId", id);
        w.close("Refs");
    }
    if let Some(amount) = tx.amount {
        w.amount("Amt", amount, ccy);
        w.leaf("CdtDbtInd", indicator(amount));
    }
    // The counterparty of a credit is its debtor; a reversal repeats the
    // original transaction's parties, so it sits on the other side.
    // A transaction without its own amount goes the entry's way.
    let credit = tx.amount.map_or(line_credit, |a| indicator(a) == "CRDT");
    let (party, account, agent) = if credit != reversal {
        ("Dbtr", "DbtrAcct", "DbtrAgt")
    } else {
        ("Cdtr", "CdtrAcct", "CdtrAgt")
    };
    if tx.counterparty_name.is_some() || tx.counterparty_account.is_some() {
        w.open("RltdPties");
        if let Some(name) = tx.counterparty_name {
            w.open(party);
            w.open("Pty");
            w.leaf("Nm", name);
            w.close("Pty");
            w.close(party);
        }
        if let Some(id) = tx.counterparty_account {
            w.open(account);
            w.open("Id");
            if is_iban(id) {
                w.leaf("IBAN", id);
            } else {
                w.open("Othr");
                w.leaf("Id", id);
                w.close("Othr");
            }
            w.close("Id");
            w.close(account);
        }
        w.close("RltdPties");
    }
    if let Some(bic) = tx.counterparty_bic {
        w.open("RltdAgts");
        w.open(agent);
        w.open("FinInstnId");
        w.leaf("BICFI", bic);
        w.close("FinInstnId");
        w.close(agent);
        w.close("RltdAgts");
    }
    if let Some(text) = tx.remittance {
        w.open("RmtInf");
        w.leaf("Ustrd", text);
        w.close("RmtInf");
    }
    if let Some(reason) = tx.return_reason {
        // ISO return reasons are codes of up to four characters; anything
        // else is the bank's own.
        let iso = reason.len() <= 4 && reason.bytes().all(|b| b.is_ascii_alphanumeric());
        w.open("RtrInf");
        w.open("Rsn");
        w.leaf(if iso { "Cd" } else { "Prtry" }, reason);
        w.close("Rsn");
        w.close("RtrInf");
    }
    w.close("TxDtls");
}

/// An indenting XML writer that escapes every text it is given.
#[derive(Default)]
struct Writer {
    out: String,
    depth: usize,
}

impl Writer {
    fn indent(&mut self) {
        for _ in 0..self.depth {
            self.out.push_str("  ");
        }
    }

    fn open(&mut self, name: &str) {
        self.indent();
        self.out.push('<');
        self.out.push_str(name);
        self.out.push_str(">\n");
        self.depth += 1;
    }

    fn close(&mut self, name: &str) {
        self.depth = self.depth.saturating_sub(1);
        self.indent();
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push_str(">\n");
    }

    fn empty(&mut self, name: &str) {
        self.indent();
        self.out.push('<');
        self.out.push_str(name);
        self.out.push_str("/>\n");
    }

    fn leaf(&mut self, name: &str, text: &str) {
        self.indent();
        self.out.push('<');
        self.out.push_str(name);
        self.out.push('>');
        escape_into(&mut self.out, text);
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push_str(">\n");
    }

    /// camt amounts are unsigned; the sign travels in `CdtDbtInd`.
    fn amount(&mut self, name: &str, amount: Decimal, ccy: &str) {
        self.indent();
        self.out.push('<');
        self.out.push_str(name);
        self.out.push_str(" Ccy=\"");
        escape_into(&mut self.out, ccy);
        self.out.push_str("\">");
        self.out.push_str(&amount.abs().to_string());
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push_str(">\n");
    }
}

/// Escapes text for element content and attribute values. A carriage
/// return is written as a reference because parsers turn a literal one into
/// a newline; characters XML 1.0 cannot carry at all become U+FFFD.
fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\r' => out.push_str("&#13;"),
            '\t' | '\n' => out.push(c),
            c if c < ' ' || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_so_markup_in_a_reference_stays_text() {
        let mut out = String::new();
        escape_into(&mut out, "a<b>&\"c'\r\u{1}");
        assert_eq!(out, "a&lt;b&gt;&amp;&quot;c&apos;&#13;\u{FFFD}");
    }

    #[test]
    fn sequences_split_into_number_and_page_only_when_numeric() {
        assert_eq!(sequence(Some("42/1")), (Some("42"), Some("1")));
        assert_eq!(sequence(Some("42")), (Some("42"), None));
        assert_eq!(sequence(Some("42A/1")), (None, None));
        assert_eq!(sequence(None), (None, None));
    }

    #[test]
    fn ibans_are_told_apart_from_local_account_numbers() {
        assert!(is_iban("DE89370400440532013000"));
        assert!(!is_iban("6222021234567890123"));
        assert!(!is_iban("de89370400440532013000"));
    }
}
