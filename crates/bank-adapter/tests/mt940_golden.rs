//! Golden tests of the MT940/MT942 parser: every good fixture in
//! `tests/fixtures/mt940` parses (with the format given and detected) to
//! exactly the JSON in `tests/golden/mt940`; every broken one fails with the
//! right code and names where. `UPDATE_GOLDEN=1` rewrites the golden files;
//! read the diff before committing it.

use std::fs;
use std::path::{Path, PathBuf};

use bank_adapter::parse::{parse, ParseOptions};
use bank_adapter::{Format, ParseOutput};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests")
}

fn fixture(name: &str) -> Vec<u8> {
    let path = dir().join("fixtures/mt940").join(name);
    fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn parse_as(bytes: &[u8], format: Option<Format>) -> ParseOutput {
    let options = ParseOptions {
        format,
        ..ParseOptions::default()
    };
    parse(bytes, &options).unwrap_or_else(|e| panic!("{format:?}: {e}"))
}

/// Parses a good fixture both ways and compares with its golden JSON.
#[track_caller]
fn check(name: &str, format: Format) -> ParseOutput {
    let bytes = fixture(name);
    let explicit = parse_as(&bytes, Some(format));
    let detected = parse_as(&bytes, None);
    assert_eq!(
        explicit, detected,
        "{name}: detection chose another reading"
    );
    let json = serde_json::to_string_pretty(&explicit).unwrap_or_default() + "\n";
    let golden = dir()
        .join("golden/mt940")
        .join(Path::new(name).with_extension("json"));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        fs::write(&golden, &json).unwrap_or_else(|e| panic!("{}: {e}", golden.display()));
    }
    let want = fs::read_to_string(&golden).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with UPDATE_GOLDEN=1 to create it)",
            golden.display()
        )
    });
    assert_eq!(json, want, "{name} no longer matches {}", golden.display());
    explicit
}

/// A broken fixture fails with `code`, and the message names `at` and says
/// `says`.
#[track_caller]
fn check_broken(name: &str, format: Format, code: &str, at: &str, says: &str) {
    let options = ParseOptions {
        format: Some(format),
        ..ParseOptions::default()
    };
    match parse(&fixture(name), &options) {
        Ok(out) => panic!("{name} parsed: {out:?}"),
        Err(e) => {
            assert_eq!(e.code(), code, "{name}: {e}");
            assert!(
                e.to_string().contains(at),
                "{name}: '{e}' does not name {at}"
            );
            assert!(
                e.to_string().contains(says),
                "{name}: '{e}' does not say {says}"
            );
        }
    }
}

#[test]
fn a_chinese_bank_statement_in_cny_matches_its_golden_file() {
    check("chinese_cny.sta", Format::Mt940);
}

#[test]
fn german_question_mark_subfields_are_read_into_counterparty_and_eref() {
    let out = check("german_nn.sta", Format::Mt940);
    let line = &out.statements[0].lines[0];
    assert_eq!(line.end_to_end_id.as_deref(), Some("KURS-2026-HERBST-0042"));
    assert_eq!(line.counterparty_name.as_deref(), Some("Muster, Erika"));
}

#[test]
fn dutch_trtp_fields_are_read_into_counterparty_and_eref() {
    let out = check("dutch_trtp.sta", Format::Mt940);
    let line = &out.statements[0].lines[1];
    assert_eq!(line.end_to_end_id.as_deref(), Some("INC-2026-09-0033"));
    assert_eq!(
        line.counterparty_account.as_deref(),
        Some("NL91ABNA0417164300")
    );
}

#[test]
fn a_multi_page_statement_is_one_statement_per_page() {
    let out = check("multi_page.sta", Format::Mt940);
    let sequences: Vec<_> = out
        .statements
        .iter()
        .map(|s| s.sequence.as_deref())
        .collect();
    assert_eq!(sequences, [Some("42/1"), Some("42/2"), Some("42/3")]);
    assert!(out.warnings.is_empty(), "{:?}", out.warnings);
}

#[test]
fn three_messages_with_different_end_markers_are_three_statements() {
    let out = check("three_messages.sta", Format::Mt940);
    assert_eq!(out.statements.len(), 3);
}

#[test]
fn crlf_and_lf_files_give_the_same_statements() {
    let mut lf = check("simple_lf.sta", Format::Mt940);
    let crlf = check("simple_crlf.sta", Format::Mt940);
    for s in &mut lf.statements {
        s.source
            .file_sha256
            .clone_from(&crlf.statements[0].source.file_sha256);
        for l in &mut s.lines {
            l.source
                .file_sha256
                .clone_from(&crlf.statements[0].source.file_sha256);
        }
    }
    assert_eq!(lf, crlf);
}

#[test]
fn a_swift_block_envelope_is_read_through() {
    let out = check("swift_envelope.sta", Format::Mt940);
    assert_eq!(out.statements.len(), 2);
}

#[test]
fn reversals_are_flagged_and_signed_against_what_they_reverse() {
    check("reversals.sta", Format::Mt940);
}

#[test]
fn entry_dates_across_new_year_get_the_right_year() {
    check("year_rollover.sta", Format::Mt940);
}

#[test]
fn an_mt942_interim_report_has_booked_lines_and_no_balances() {
    let out = check("mt942_interim.sta", Format::Mt942);
    assert_eq!(out.statements[0].opening_balance, None);
}

#[test]
fn a_file_that_is_not_utf8_is_read_with_a_warning() {
    let out = check("latin1_umlaut.sta", Format::Mt940);
    assert_eq!(out.warnings.len(), 1, "{:?}", out.warnings);
}

#[test]
fn an_amount_with_a_dot_is_refused_with_its_line() {
    check_broken(
        "broken_amount_dot.sta",
        Format::Mt940,
        "malformed_feed",
        "line 5 (:61:)",
        "uses a dot",
    );
}

#[test]
fn a_balance_in_another_currency_is_refused_with_its_line() {
    check_broken(
        "broken_currency_mismatch.sta",
        Format::Mt940,
        "malformed_feed",
        "line 6 (:62F:)",
        "differs from the statement's currency CNY",
    );
}

#[test]
fn a_statement_that_does_not_add_up_is_refused_with_the_statement() {
    check_broken(
        "broken_unbalanced.sta",
        Format::Mt940,
        "statement_does_not_add_up",
        "statement BAD0903",
        "closing balance is 112.35",
    );
}

#[test]
fn a_message_without_an_account_is_refused_with_its_line() {
    check_broken(
        "broken_missing_25.sta",
        Format::Mt940,
        "malformed_feed",
        "line 1 (:20:)",
        "no :25:",
    );
}

#[test]
fn a_truncated_statement_line_is_refused_with_its_line() {
    check_broken(
        "broken_truncated_61.sta",
        Format::Mt940,
        "malformed_feed",
        "line 5 (:61:)",
        "line ends there",
    );
}

/// (account, statement id, sequence, line amounts) of each statement.
fn identities(out: &ParseOutput) -> Vec<(String, String, Option<String>, Vec<String>)> {
    out.statements
        .iter()
        .map(|s| {
            (
                s.account.clone(),
                s.statement_id.clone(),
                s.sequence.clone(),
                s.lines.iter().map(|l| l.amount.to_string()).collect(),
            )
        })
        .collect()
}

#[test]
fn a_second_statement_in_one_message_keeps_each_statements_own_account() {
    let out = check("two_statements_one_message.sta", Format::Mt940);
    let owned = |a: &str, id: &str, seq: &str, lines: &[&str]| {
        (
            a.to_owned(),
            id.to_owned(),
            Some(seq.to_owned()),
            lines.iter().map(|l| (*l).to_owned()).collect::<Vec<_>>(),
        )
    };
    assert_eq!(
        identities(&out),
        [
            owned(
                "ABOCCNBJ/11223344556677",
                "TWOINONE0906",
                "8/1",
                &["500.00"]
            ),
            owned(
                "ABOCCNBJ/99887766554433",
                "TWOINONE0906",
                "3/1",
                &["-300.00"]
            ),
        ]
    );
    assert_eq!(out.statements[1].source.line, Some(8));
}

#[test]
fn a_ctrl_z_before_20_starts_a_new_statement_with_its_own_identity() {
    let out = check("sub_between_statements.sta", Format::Mt940);
    let ids: Vec<_> = identities(&out)
        .into_iter()
        .map(|(a, id, _, lines)| (a, id, lines.len()))
        .collect();
    assert_eq!(
        ids,
        [
            (
                "ABOCCNBJ/11223344556677".to_owned(),
                "SUB0907A".to_owned(),
                1
            ),
            (
                "ABOCCNBJ/99887766554433".to_owned(),
                "SUB0907B".to_owned(),
                1
            ),
            (
                "ABOCCNBJ/55555555555555".to_owned(),
                "SUB0907C".to_owned(),
                0
            ),
        ]
    );
    assert!(out.warnings.is_empty(), "{:?}", out.warnings);
}

#[test]
fn a_dash_line_inside_86_text_is_text_not_the_end_of_the_message() {
    let out = check("rabobank_dash_in_86.sta", Format::Mt940);
    assert_eq!(out.statements.len(), 2);
    let remittance = out.statements[0].lines[0].remittance.as_deref();
    assert!(
        remittance.is_some_and(|r| r.contains("termijn 1 van 3")),
        "{remittance:?}"
    );
    assert_eq!(out.statements[0].lines.len(), 2);
}

#[test]
fn a_dash_line_inside_86_text_followed_by_the_next_message_still_ends_it() {
    // `-` then :20: (or the end of the file, or a `{1:` header) ends the
    // message even right after :86: text.
    let text = ":20:A\n:25:X\n:28C:1\n:34F:EUR0,\n:61:260901C1,NTRF\n:86:text\n-\n:20:B\n:25:Y\n:28C:2\n:34F:EUR0,\n:61:260901C2,NTRF\n:86:more\n-\n";
    let out = parse_as(text.as_bytes(), Some(Format::Mt942));
    let accounts: Vec<_> = out.statements.iter().map(|s| s.account.as_str()).collect();
    assert_eq!(accounts, ["X", "Y"]);
    assert_eq!(
        out.statements[0].lines[0].remittance.as_deref(),
        Some("text")
    );
}

#[test]
fn irregular_transaction_type_codes_are_read_and_kept_raw() {
    let out = check("irregular_tx_types.sta", Format::Mt940);
    let codes: Vec<_> = out.statements[0]
        .lines
        .iter()
        .map(|l| {
            (
                l.bank_tx_code.as_deref(),
                l.structured.get("transaction_type_raw").map(String::as_str),
            )
        })
        .collect();
    assert_eq!(
        codes,
        [
            (Some("NOV"), Some("NOV ")),
            (Some("NTRF"), Some(" NTRF")),
            (Some("NIC"), Some("NIC ")),
            (Some("NMSC"), None),
        ]
    );
}

#[test]
fn a_file_with_cr_only_line_endings_is_detected_as_mt940() {
    let out = check("cr_only.sta", Format::Mt940);
    assert_eq!(out.statements[0].lines.len(), 1);
    assert_eq!(out.statements[0].lines[0].source.line, Some(5));
}

#[test]
fn a_value_date_of_30_february_uses_the_booking_date_and_warns() {
    let out = check("german_30_february.sta", Format::Mt940);
    let line = &out.statements[0].lines[0];
    assert_eq!(line.value_date, line.booking_date);
    assert_eq!(
        line.structured.get("value_date_raw").map(String::as_str),
        Some("260230")
    );
    assert_eq!(out.warnings.len(), 1, "{:?}", out.warnings);
    assert!(out.warnings[0].message.contains("260230"));
}

#[test]
fn a_floor_limit_without_a_decimal_comma_is_read() {
    let out = check("mt942_floor_without_comma.sta", Format::Mt942);
    assert_eq!(out.statements[0].currency, "PLN");
    // A floor limit that is not a number is still refused.
    let bad = String::from_utf8(fixture("mt942_floor_without_comma.sta"))
        .unwrap_or_default()
        .replace(":34F:PLN0", ":34F:PLNX0");
    let options = ParseOptions {
        format: Some(Format::Mt942),
        ..ParseOptions::default()
    };
    let err = parse(bad.as_bytes(), &options).expect_err("PLNX0 is no floor limit");
    assert!(err.to_string().contains("line 4 (:34F:)"), "{err}");
}
