//! Golden tests of the camt parsers: every fixture under
//! `tests/fixtures/camt` is parsed (with its format given, and detected)
//! and compared with its reviewed JSON under `tests/golden/camt`. Run with
//! `UPDATE_GOLDEN=1` to rewrite the JSON, then read every changed file: the
//! review is the test. Broken fixtures must fail with the right error code
//! and name the element the bank got wrong.

use std::path::PathBuf;

use bank_adapter::parse::{parse, ParseOptions};
use bank_adapter::{Format, LineStatus, ParseError, ParseOutput};

fn tests_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests")
}

fn fixture(name: &str) -> Vec<u8> {
    let path = tests_dir().join("fixtures/camt").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn parse_as(bytes: &[u8], format: Option<Format>) -> Result<ParseOutput, ParseError> {
    parse(
        bytes,
        &ParseOptions {
            format,
            ..ParseOptions::default()
        },
    )
}

/// Parses `name.xml` as `format` and by detection, and compares the output
/// with `name.json`.
#[track_caller]
fn check_golden(name: &str, format: Format) -> ParseOutput {
    let bytes = fixture(&format!("{name}.xml"));
    let given = parse_as(&bytes, Some(format))
        .unwrap_or_else(|e| panic!("{name} as {}: {e}", format.code()));
    let detected = parse_as(&bytes, None).unwrap_or_else(|e| panic!("{name} detected: {e}"));
    assert_eq!(
        given, detected,
        "{name}: detecting the format gives another result"
    );
    let json = serde_json::to_string_pretty(&given).expect("the model serializes") + "\n";
    let golden = tests_dir().join("golden/camt").join(format!("{name}.json"));
    if std::env::var("UPDATE_GOLDEN").as_deref() == Ok("1") {
        std::fs::create_dir_all(golden.parent().expect("golden files live in a directory"))
            .expect("create golden dir");
        std::fs::write(&golden, &json).expect("write golden file");
        return given;
    }
    let expected = std::fs::read_to_string(&golden).unwrap_or_else(|_| {
        panic!(
            "no golden file {}: run with UPDATE_GOLDEN=1 and review it",
            golden.display()
        )
    });
    assert!(
        json == expected,
        "{name}: the output differs from {}; if the change is intended, run with UPDATE_GOLDEN=1 and review the diff\n--- got ---\n{json}",
        golden.display()
    );
    given
}

/// The broken fixture must fail with `code`, and the message must name
/// `at` (the element path, or the statement) and say `what`.
#[track_caller]
fn check_broken(name: &str, format: Format, code: &str, at: &str, what: &str) {
    let bytes = fixture(&format!("{name}.xml"));
    let err = parse_as(&bytes, Some(format)).expect_err("a broken fixture must not parse");
    let message = err.to_string();
    assert_eq!(err.code(), code, "{name}: {message}");
    assert!(
        message.contains(at),
        "{name}: the message should name {at:?}: {message}"
    );
    assert!(
        message.contains(what),
        "{name}: the message should say {what:?}: {message}"
    );
    // Detection must reach the same verdict.
    assert_eq!(
        parse_as(&bytes, None).map_err(|e| e.code()),
        Err(code),
        "{name} detected"
    );
}

#[test]
fn a_camt053_001_02_statement_with_plain_status_and_tx_amounts_in_amt_dtls_matches_its_golden_file()
{
    let out = check_golden("camt053_001_02", Format::Camt053);
    let s = &out.statements[0];
    assert_eq!(s.sequence.as_deref(), Some("64/1"));
    // NOTPROVIDED is the bank's placeholder, not an id.
    assert_eq!(s.lines[1].end_to_end_id, None);
    assert_eq!(
        s.lines[0].remittance.as_deref(),
        Some("Tuition spring term enrollment ENR-2024-0117")
    );
}

#[test]
fn a_camt053_001_04_statement_with_a_previous_closing_opening_and_a_debit_closing_balance_matches_its_golden_file(
) {
    let out = check_golden("camt053_001_04", Format::Camt053);
    let s = &out.statements[0];
    assert_eq!(
        s.opening_balance.as_ref().map(|b| b.amount.to_string()),
        Some("800.00".into())
    );
    assert_eq!(
        s.closing_balance.as_ref().map(|b| b.amount.to_string()),
        Some("-350.00".into())
    );
    assert_eq!(s.lines[0].remittance.as_deref(), Some("INV-0402-77"));
}

#[test]
fn a_camt053_001_06_statement_with_chinese_text_and_a_returned_release_matches_its_golden_file() {
    let out = check_golden("camt053_001_06", Format::Camt053);
    let reversal = &out.statements[0].lines[2];
    assert!(reversal.reversal);
    assert_eq!(reversal.return_reason.as_deref(), Some("AC04"));
    // A returned release comes back as a credit; the counterparty is still
    // the institution it was sent to, not the escrow account itself.
    assert_eq!(
        reversal.counterparty_name.as_deref(),
        Some("阳光教育培训学校")
    );
}

#[test]
fn a_camt053_001_08_statement_with_prefixed_elements_a_batch_and_unbooked_entries_matches_its_golden_file(
) {
    let out = check_golden("camt053_001_08", Format::Camt053);
    let lines = &out.statements[0].lines;
    assert_eq!(lines[0].children.len(), 3);
    assert_eq!(lines[1].bank_ref.as_deref(), Some("CCB20240628000231"));
    assert_eq!(lines[2].status, LineStatus::Pending);
    assert_eq!(lines[3].status, LineStatus::Info);
}

#[test]
fn a_camt053_001_13_file_with_two_chained_statements_matches_its_golden_file_without_warnings() {
    let out = check_golden("camt053_001_13_two_statements", Format::Camt053);
    assert_eq!(out.statements.len(), 2);
    assert_eq!(out.statements[1].source.message, 2);
    assert!(out.warnings.is_empty(), "{:?}", out.warnings);
}

#[test]
fn a_camt054_001_02_notification_with_a_batch_of_twelve_transactions_matches_its_golden_file() {
    let out = check_golden("camt054_001_02_batch", Format::Camt054);
    let s = &out.statements[0];
    assert_eq!(s.opening_balance, None);
    assert_eq!(s.lines[0].children.len(), 12);
    assert!(out.warnings.is_empty(), "{:?}", out.warnings);
}

#[test]
fn a_camt054_001_08_notification_announcing_a_batch_without_details_matches_its_golden_file() {
    let out = check_golden("camt054_001_08_batch_announced", Format::Camt054);
    let batch = &out.statements[0].lines[0];
    assert!(batch.children.is_empty());
    assert_eq!(
        batch.structured.get("batch_count").map(String::as_str),
        Some("240")
    );
}

#[test]
fn a_camt052_001_08_report_with_pending_and_future_entries_matches_its_golden_file() {
    let out = check_golden("camt052_001_08_pending", Format::Camt052);
    let s = &out.statements[0];
    // No CLBD in an intraday report: the interim booked balance closes it.
    assert_eq!(
        s.closing_balance.as_ref().map(|b| b.amount.to_string()),
        Some("49500.00".into())
    );
    assert_eq!(s.lines[3].status, LineStatus::Pending);
}

#[test]
fn an_entry_amount_that_is_not_a_decimal_is_refused_naming_the_element() {
    check_broken(
        "broken_bad_amount",
        Format::Camt053,
        "malformed_feed",
        "Document/BkToCstmrStmt/Stmt[0]/Ntry[1]/Amt",
        "expected an unsigned decimal amount",
    );
}

#[test]
fn a_balance_amount_without_currency_is_refused_naming_the_element() {
    check_broken(
        "broken_missing_ccy",
        Format::Camt053,
        "malformed_feed",
        "Document/BkToCstmrStmt/Stmt[0]/Bal[1]/Amt",
        "no Ccy attribute",
    );
}

#[test]
fn an_entry_in_another_currency_than_the_account_is_refused_naming_the_element() {
    check_broken(
        "broken_wrong_currency",
        Format::Camt053,
        "malformed_feed",
        "Document/BkToCstmrStmt/Stmt[0]/Ntry[1]/Amt",
        "is in USD but the account's currency is CNY",
    );
}

#[test]
fn a_statement_whose_lines_do_not_add_up_to_its_closing_balance_is_refused_naming_the_statement() {
    check_broken(
        "broken_unbalanced",
        Format::Camt053,
        "statement_does_not_add_up",
        "statement STMT-20241101 of account 31001234567800000001",
        "closing balance is 1300.00",
    );
}

#[test]
fn a_credit_debit_indicator_that_is_neither_credit_nor_debit_is_refused_naming_the_element() {
    check_broken(
        "broken_credit_debit",
        Format::Camt053,
        "malformed_feed",
        "Document/BkToCstmrStmt/Stmt[0]/Ntry[0]/CdtDbtInd",
        "expected CRDT or DBIT, found \"CRED\"",
    );
}

#[test]
fn a_mismatched_closing_tag_is_refused_naming_the_open_element() {
    check_broken(
        "broken_mismatched_tag",
        Format::Camt053,
        "malformed_feed",
        "Document/BkToCstmrStmt/Stmt[0]/Ntry[0]/AcctSvcrRef",
        "not well formed",
    );
}

#[test]
fn a_truncated_file_is_refused_naming_the_element_it_stops_in() {
    check_broken(
        "broken_truncated",
        Format::Camt053,
        "malformed_feed",
        "Document/BkToCstmrStmt/Stmt[0]/Ntry[1]/Sts/Cd",
        "truncated",
    );
}

#[test]
fn a_report_read_as_a_statement_is_refused_saying_what_it_is() {
    let bytes = fixture("camt052_001_08_pending.xml");
    let err = parse_as(&bytes, Some(Format::Camt053)).expect_err("a camt.052 is not a camt.053");
    assert_eq!(err.code(), "malformed_feed");
    let message = err.to_string();
    assert!(message.contains("Document/BkToCstmrAcctRpt"), "{message}");
    assert!(message.contains("this is a camt.052 document"), "{message}");
}

#[test]
fn a_document_declared_iso_8859_1_is_decoded_by_its_declaration() {
    let out = check_golden("camt053_latin1_declared", Format::Camt053);
    let names: Vec<_> = out.statements[0]
        .lines
        .iter()
        .filter_map(|l| l.counterparty_name.as_deref())
        .collect();
    assert!(names.contains(&"Jürgen Müller"), "{names:?}");
}

#[test]
fn documents_declared_gb18030_or_gbk_are_decoded_by_their_declaration() {
    let gb18030 = check_golden("camt053_gb18030_declared", Format::Camt053);
    let names: Vec<_> = gb18030.statements[0]
        .lines
        .iter()
        .filter_map(|l| l.counterparty_name.as_deref())
        .collect();
    assert!(
        names.contains(&"李伟") && names.contains(&"张敏"),
        "{names:?}"
    );
    let gbk = check_golden("camt053_gbk_declared", Format::Camt053);
    assert!(
        gbk.statements[0]
            .lines
            .iter()
            .any(|l| l.counterparty_name.as_deref() == Some("王芳")),
        "{gbk:?}"
    );
}

#[test]
fn an_encoding_override_wins_over_the_declaration() {
    // The Latin-1 document read as UTF-8 (what `--encoding utf8` says) is
    // refused: its ü is not UTF-8.
    let bytes = fixture("camt053_latin1_declared.xml");
    let options = ParseOptions {
        format: Some(Format::Camt053),
        encoding: Some(encoding_rs::UTF_8),
        ..ParseOptions::default()
    };
    let err = parse(&bytes, &options).expect_err("ü in Latin-1 is not UTF-8");
    assert_eq!(err.code(), "bad_encoding", "{err}");
}

#[test]
fn a_gbk_document_with_bytes_that_are_not_gbk_is_refused_as_bad_encoding() {
    let mut bytes = fixture("camt053_gbk_declared.xml");
    let at = bytes
        .windows(7)
        .position(|w| w == b"Li Wei<")
        .expect("the fixture names Li Wei");
    bytes[at] = 0x81; // a lead byte followed by a space: not GBK
    bytes[at + 1] = b' ';
    let err = parse_as(&bytes, Some(Format::Camt053)).expect_err("not GBK");
    assert_eq!(err.code(), "bad_encoding", "{err}");
    assert!(err.to_string().contains("GBK"), "{err}");
}

#[test]
fn an_undecodable_declared_encoding_is_refused_naming_it() {
    let xml = String::from_utf8(fixture("camt053_001_02.xml"))
        .expect("utf-8 fixture")
        .replace("encoding=\"UTF-8\"", "encoding=\"EBCDIC-XYZ\"");
    let err = parse_as(xml.as_bytes(), Some(Format::Camt053)).expect_err("unknown encoding");
    assert_eq!(err.code(), "bad_encoding", "{err}");
    assert!(err.to_string().contains("EBCDIC-XYZ"), "{err}");
}

#[test]
fn amounts_in_every_lexical_form_of_xs_decimal_are_read_exactly() {
    let out = check_golden("camt053_decimal_forms", Format::Camt053);
    let s = &out.statements[0];
    assert_eq!(
        s.opening_balance.as_ref().map(|b| b.amount.to_string()),
        Some("125000".to_owned())
    );
    let amounts: Vec<_> = s.lines.iter().map(|l| l.amount.to_string()).collect();
    assert_eq!(amounts, ["4800.00", "3600.00", "-2500.00", "-1200.0"]);
}

#[test]
fn a_camt052_001_01_report_is_refused_naming_the_supported_versions() {
    check_broken(
        "broken_camt052_001_01",
        Format::Camt052,
        "malformed_feed",
        "camt.052.001.01 is not a supported version",
        "versions 001.02 to 001.13",
    );
    let err = parse_as(&fixture("broken_camt052_001_01.xml"), None).expect_err("unsupported");
    assert!(err.to_string().contains("001.02 to 001.13"), "{err}");
}
