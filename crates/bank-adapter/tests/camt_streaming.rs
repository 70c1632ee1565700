//! The camt parser streams: a document generated on the fly, far larger
//! than the memory the parse may use, goes through `parse_reader` one
//! statement at a time, with every figure and line number intact.

use std::io::{self, BufRead, Read};

use bank_adapter::parse::camt;
use bank_adapter::parse::{check_adds_up, FileContext};
use bank_adapter::{Format, LineStatus};
use rust_decimal::Decimal;

/// Statements in the generated document, and entries in each: the bulk
/// case, many statements of one account rather than one huge statement.
const STATEMENTS: u32 = 200;
const ENTRIES_PER_STATEMENT: u32 = 1_000;
const OPENING_MINOR: i64 = 100_000_000;

const HEADER: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08">
<BkToCstmrStmt>
<GrpHdr><MsgId>STREAM-1</MsgId><CreDtTm>2024-06-30T18:00:00</CreDtTm></GrpHdr>
"#;
const FOOTER: &str = "</BkToCstmrStmt>\n</Document>\n";
/// Lines each generated `<Ntry>` takes, and the lines before a statement's
/// first entry; they give the line numbers the parser must report.
const ENTRY_LINES: u32 = 12;
const STATEMENT_HEAD_LINES: u32 = 4;

/// The signed amount of entry `n` of the document, in minor units: every
/// third a debit, the amounts varied so that a lost or repeated entry shows.
fn amount_minor(n: u64) -> i64 {
    let size = i64::try_from(n % 97_001).expect("below 97001") + 1;
    if n.is_multiple_of(3) {
        -size
    } else {
        size
    }
}

fn decimal(minor: i64) -> Decimal {
    Decimal::new(minor, 2)
}

/// `1234.5` as `1234.50`, the sign left to `CdtDbtInd`.
fn plain(minor: i64) -> String {
    let abs = minor.unsigned_abs();
    format!("{}.{:02}", abs / 100, abs % 100)
}

fn direction(minor: i64) -> &'static str {
    if minor < 0 {
        "DBIT"
    } else {
        "CRDT"
    }
}

/// A camt.053 document written piece by piece as it is read: it holds one
/// element's text at a time, never the document.
struct Generator {
    piece: Vec<u8>,
    at: usize,
    statement: u32,
    entry: u32,
    /// Entries written so far over all statements.
    written: u64,
    balance_minor: i64,
    state: State,
    /// Fail with an I/O error once this many statements are written.
    fail_after: Option<u32>,
    /// Bytes of the document produced so far.
    produced: u64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Header,
    StatementHead,
    Entry,
    StatementFoot,
    Footer,
    Done,
}

impl Generator {
    fn new() -> Self {
        Generator {
            piece: Vec::new(),
            at: 0,
            statement: 0,
            entry: 0,
            written: 0,
            balance_minor: OPENING_MINOR,
            state: State::Header,
            fail_after: None,
            produced: 0,
        }
    }

    /// The sum of the entries of statement `k`, computed without writing it.
    fn statement_sum_minor(k: u32) -> i64 {
        let first = u64::from(k) * u64::from(ENTRIES_PER_STATEMENT);
        (first..first + u64::from(ENTRIES_PER_STATEMENT))
            .map(amount_minor)
            .sum()
    }

    fn next_piece(&mut self) -> io::Result<()> {
        self.piece.clear();
        self.at = 0;
        let text = match self.state {
            State::Header => {
                self.state = State::StatementHead;
                HEADER.to_owned()
            }
            State::StatementHead => {
                if self.fail_after == Some(self.statement) {
                    return Err(io::Error::other("the disk went away"));
                }
                self.state = State::Entry;
                let k = self.statement;
                let closing = self.balance_minor + Self::statement_sum_minor(k);
                format!(
                    "<Stmt>\n<Id>STMT-{k}</Id><ElctrncSeqNb>{seq}</ElctrncSeqNb>\n\
                     <Acct><Id><IBAN>CN0012345678901234</IBAN></Id><Ccy>CNY</Ccy></Acct>\n\
                     <Bal><Tp><CdOrPrtry><Cd>OPBD</Cd></CdOrPrtry></Tp><Amt Ccy=\"CNY\">{open}</Amt><CdtDbtInd>{open_dir}</CdtDbtInd><Dt><Dt>2024-06-30</Dt></Dt></Bal>\
                     <Bal><Tp><CdOrPrtry><Cd>CLBD</Cd></CdOrPrtry></Tp><Amt Ccy=\"CNY\">{close}</Amt><CdtDbtInd>{close_dir}</CdtDbtInd><Dt><Dt>2024-06-30</Dt></Dt></Bal>\n",
                    seq = k + 1,
                    open = plain(self.balance_minor),
                    open_dir = direction(self.balance_minor),
                    close = plain(closing),
                    close_dir = direction(closing),
                )
            }
            State::Entry => {
                let n = self.written;
                let amount = amount_minor(n);
                self.balance_minor += amount;
                self.written += 1;
                self.entry += 1;
                if self.entry == ENTRIES_PER_STATEMENT {
                    self.state = State::StatementFoot;
                }
                format!(
                    "<Ntry>\n<NtryRef>{n}</NtryRef>\n<Amt Ccy=\"CNY\">{amt}</Amt>\n\
                     <CdtDbtInd>{dir}</CdtDbtInd>\n<Sts><Cd>BOOK</Cd></Sts>\n\
                     <BookgDt><Dt>2024-06-30</Dt></BookgDt>\n<ValDt><Dt>2024-06-30</Dt></ValDt>\n\
                     <AcctSvcrRef>REF{n:012}</AcctSvcrRef>\n\
                     <BkTxCd><Domn><Cd>PMNT</Cd><Fmly><Cd>RCDT</Cd><SubFmlyCd>ESCT</SubFmlyCd></Fmly></Domn></BkTxCd>\n\
                     <NtryDtls><TxDtls><Refs><EndToEndId>E2E-{n}</EndToEndId></Refs>\
                     <RltdPties><Dbtr><Nm>Payer number {n}</Nm></Dbtr><DbtrAcct><Id><IBAN>CN99PAYER{n:010}</IBAN></Id></DbtrAcct></RltdPties>\
                     <RmtInf><Ustrd>Tuition for the spring term, invoice {n}</Ustrd></RmtInf></TxDtls></NtryDtls>\n\
                     <AddtlNtryInf>generated</AddtlNtryInf>\n</Ntry>\n",
                    amt = plain(amount),
                    dir = direction(amount),
                )
            }
            State::StatementFoot => {
                self.statement += 1;
                self.entry = 0;
                self.state = if self.statement == STATEMENTS {
                    State::Footer
                } else {
                    State::StatementHead
                };
                "</Stmt>\n".to_owned()
            }
            State::Footer => {
                self.state = State::Done;
                FOOTER.to_owned()
            }
            State::Done => String::new(),
        };
        self.piece.extend_from_slice(text.as_bytes());
        self.produced += u64::try_from(text.len()).expect("a short piece");
        Ok(())
    }
}

impl Read for Generator {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(out.len());
        out[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl BufRead for Generator {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        while self.at >= self.piece.len() && self.state != State::Done {
            self.next_piece()?;
        }
        Ok(&self.piece[self.at..])
    }

    fn consume(&mut self, amt: usize) {
        self.at = (self.at + amt).min(self.piece.len());
    }
}

/// Peak resident memory of this process so far (Linux `VmHWM`), in KiB.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("a VmHWM line in kB")
}

/// The line of entry `n`'s `<Ntry>` in the generated document.
fn line_of_entry(n: u64) -> u32 {
    let header_lines = u32::try_from(HEADER.lines().count()).expect("a short header");
    let k = u32::try_from(n / u64::from(ENTRIES_PER_STATEMENT)).expect("few statements");
    let j = u32::try_from(n % u64::from(ENTRIES_PER_STATEMENT)).expect("few entries");
    let per_statement = STATEMENT_HEAD_LINES + ENTRIES_PER_STATEMENT * ENTRY_LINES + 1;
    header_lines + k * per_statement + STATEMENT_HEAD_LINES + j * ENTRY_LINES + 1
}

#[test]
fn a_document_far_larger_than_the_memory_allowed_is_parsed_one_statement_at_a_time() {
    let ctx = FileContext {
        sha256: "0".repeat(64),
    };
    let before_kib = peak_rss_kib();
    let mut statements = 0u32;
    let mut lines = 0u64;
    let mut sum = Decimal::ZERO;
    let mut last_closing = None;
    let mut generator = Generator::new();
    let warnings = camt::parse_reader(&mut generator, Format::Camt053, &ctx, &mut |s| {
        check_adds_up(&s)?;
        let first_n = u64::from(statements) * u64::from(ENTRIES_PER_STATEMENT);
        assert_eq!(s.statement_id, format!("STMT-{statements}"));
        assert_eq!(
            s.lines.first().and_then(|l| l.source.line),
            Some(line_of_entry(first_n)),
            "the line of statement {statements}'s first entry"
        );
        for line in &s.lines {
            assert_eq!(line.status, LineStatus::Booked);
            sum = sum.checked_add(line.amount).expect("no overflow");
        }
        lines += u64::try_from(s.lines.len()).expect("a small count");
        last_closing = s.closing_balance.map(|b| b.amount);
        statements += 1;
        // The statement is dropped here: only the figures are kept.
        Ok(())
    })
    .expect("the generated document parses");
    let after_kib = peak_rss_kib();

    let total_entries = u64::from(STATEMENTS) * u64::from(ENTRIES_PER_STATEMENT);
    let expected_sum: i64 = (0..total_entries).map(amount_minor).sum();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(statements, STATEMENTS);
    assert_eq!(lines, total_entries);
    assert_eq!(sum, decimal(expected_sum));
    assert_eq!(last_closing, Some(decimal(OPENING_MINOR + expected_sum)));

    let growth_kib = after_kib.saturating_sub(before_kib);
    let document_kib = generator.produced / 1024;
    eprintln!(
        "{total_entries} entries in {STATEMENTS} statements, {document_kib} KiB of XML: peak memory grew by {growth_kib} KiB ({before_kib} KiB before, {after_kib} KiB after)"
    );
    // Otherwise holding the whole document would pass too.
    assert!(
        document_kib > 64 * 1024,
        "only {document_kib} KiB generated"
    );
    assert!(
        growth_kib < 64 * 1024,
        "peak memory grew by {growth_kib} KiB while streaming"
    );
}

#[test]
fn a_statement_reaches_the_sink_before_the_rest_of_the_file_is_read() {
    let ctx = FileContext {
        sha256: "0".repeat(64),
    };
    let mut generator = Generator::new();
    generator.fail_after = Some(1);
    let mut seen = Vec::new();
    let err = camt::parse_reader(generator, Format::Camt053, &ctx, &mut |s| {
        seen.push(s.statement_id);
        Ok(())
    })
    .expect_err("the read fails after the first statement");
    assert_eq!(seen, ["STMT-0"]);
    assert!(err.to_string().contains("the disk went away"), "{err}");
}

#[test]
fn warnings_beyond_the_first_two_hundred_are_counted_rather_than_kept() {
    // Each entry's transaction is quoted in USD only: one warning per entry.
    let entry = r#"<Ntry><Amt Ccy="CNY">1.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts>
<NtryDtls><TxDtls><Amt Ccy="USD">0.14</Amt></TxDtls></NtryDtls></Ntry>
"#;
    let doc = format!(
        "{HEADER}<Stmt><Id>S</Id><Acct><Id><IBAN>CN00</IBAN></Id><Ccy>CNY</Ccy></Acct>\n{}</Stmt>\n{FOOTER}",
        entry.repeat(250)
    );
    let out = camt::parse(
        doc.as_bytes(),
        Format::Camt053,
        &FileContext::of(doc.as_bytes()),
    )
    .expect("the document parses");
    assert_eq!(out.statements[0].lines.len(), 250);
    assert_eq!(out.warnings.len(), 201);
    assert!(
        out.warnings[0].message.contains("in USD"),
        "{:?}",
        out.warnings[0]
    );
    assert_eq!(
        out.warnings[200].message,
        "50 more warnings were not recorded"
    );
}
