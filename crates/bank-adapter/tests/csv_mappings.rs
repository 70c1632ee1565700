//! The CSV mappings shipped for Chinese supervising banks' daily exports
//! (`mappings/`), each over an export written the way such a bank writes
//! it: GBK or GB18030, with or without a byte order mark. Every fixture
//! parses to exactly its golden JSON (`UPDATE_GOLDEN=1` rewrites them).

use std::path::{Path, PathBuf};

use bank_adapter::parse::csv::{CsvEncoding, CsvMapping};
use bank_adapter::parse::{parse, ParseOptions};
use bank_adapter::{Format, ParseError, ParseOutput};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn mapping(name: &str) -> CsvMapping {
    let path = dir().join("mappings").join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn read(fixture: &str, mapping: CsvMapping) -> Result<ParseOutput, ParseError> {
    let bytes = std::fs::read(dir().join("tests/fixtures/csv").join(fixture))
        .unwrap_or_else(|e| panic!("{fixture}: {e}"));
    let options = ParseOptions {
        format: Some(Format::Csv),
        csv: Some(mapping),
        ..ParseOptions::default()
    };
    parse(&bytes, &options)
}

#[track_caller]
fn check(fixture: &str, mapping_file: &str) -> ParseOutput {
    let out = read(fixture, mapping(mapping_file)).unwrap_or_else(|e| panic!("{fixture}: {e}"));
    let json = serde_json::to_string_pretty(&out).unwrap_or_default() + "\n";
    let golden = dir()
        .join("tests/golden/csv")
        .join(Path::new(fixture).with_extension("json"));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden, &json).unwrap_or_else(|e| panic!("{}: {e}", golden.display()));
    }
    let want = std::fs::read_to_string(&golden)
        .unwrap_or_else(|e| panic!("{}: {e} (run with UPDATE_GOLDEN=1)", golden.display()));
    assert_eq!(
        json,
        want,
        "{fixture} no longer matches {}",
        golden.display()
    );
    out
}

/// (account, opening, closing, line amounts, first counterparty).
fn summary(out: &ParseOutput) -> (String, String, String, Vec<String>, String) {
    let s = &out.statements[0];
    let bal = |b: &Option<bank_adapter::Balance>| {
        b.as_ref().map(|b| b.amount.to_string()).unwrap_or_default()
    };
    (
        s.account.clone(),
        bal(&s.opening_balance),
        bal(&s.closing_balance),
        s.lines.iter().map(|l| l.amount.to_string()).collect(),
        s.lines[0].counterparty_name.clone().unwrap_or_default(),
    )
}

#[test]
fn a_debit_and_credit_columns_export_in_gbk_reads_with_its_mapping() {
    let out = check("cn_debit_credit_gbk.csv", "cn-debit-credit.json");
    assert_eq!(
        summary(&out),
        (
            "1711020109200012345".to_owned(),
            "100000.00".to_owned(),
            "100599.50".to_owned(),
            vec![
                "4800.00".to_owned(),
                "-1200.50".to_owned(),
                "-3000.00".to_owned()
            ],
            "张三".to_owned()
        )
    );
}

#[test]
fn the_same_export_in_gb18030_with_its_byte_order_mark_reads_the_same() {
    let gbk = check("cn_debit_credit_gbk.csv", "cn-debit-credit.json");
    let bom = check("cn_debit_credit_gb18030_bom.csv", "cn-debit-credit.json");
    assert_eq!(summary(&gbk), summary(&bom));
}

#[test]
fn a_signed_amount_export_in_gb18030_reads_characters_gbk_does_not_have() {
    let out = check("cn_signed_amount_gb18030.csv", "cn-signed-amount.json");
    assert_eq!(
        summary(&out).3,
        ["6800.00", "-1500.00", "4200.00"].map(str::to_owned)
    );
    let last = out.statements[0].lines[2].remittance.as_deref();
    assert_eq!(last, Some("2026秋季学费 𠀀"));
}

#[test]
fn a_direction_column_export_reads_借_and_贷_with_or_without_a_bom() {
    let gbk = check("cn_direction_gbk.csv", "cn-direction.json");
    assert_eq!(
        summary(&gbk).3,
        ["2400.00", "-400.00", "1000.00"].map(str::to_owned)
    );
    // Excel's "CSV UTF-8" of the same sheet: the BOM says UTF-8 whatever
    // the mapping says.
    let utf8 = check("cn_direction_utf8_bom.csv", "cn-direction.json");
    assert_eq!(summary(&gbk), summary(&utf8));
}

#[test]
fn a_gbk_export_read_with_a_utf8_mapping_is_refused_naming_the_line() {
    let mut m = mapping("cn-direction.json");
    m.encoding = CsvEncoding::Utf8;
    let err = read("cn_direction_gbk.csv", m).expect_err("GBK is not UTF-8");
    assert_eq!(err.code(), "bad_encoding", "{err}");
    assert!(err.to_string().contains("csv line 1"), "{err}");
}

#[test]
fn a_direction_that_is_neither_debit_nor_credit_is_refused() {
    let mut m = mapping("cn-direction.json");
    if let bank_adapter::parse::csv::AmountColumns::Direction { credit_values, .. } = &mut m.amount
    {
        credit_values.retain(|v| v != "收入");
    }
    let err = read("cn_direction_gbk.csv", m).expect_err("收入 is no longer a credit");
    assert_eq!(err.code(), "malformed_feed", "{err}");
    assert!(err.to_string().contains("收入"), "{err}");
}

#[test]
fn an_xlsx_export_reads_with_the_same_mapping_as_its_csv() {
    let csv = check("cn_direction_gbk.csv", "cn-direction.json");
    let xlsx = check("cn_direction.xlsx", "cn-direction.json");
    let amounts: Vec<_> = xlsx.statements[0]
        .lines
        .iter()
        .map(|l| l.amount.to_string())
        .collect();
    // The workbook stores numbers (2400, 1000.5), not text: read exactly.
    assert_eq!(amounts, ["2400", "-400", "1000.5"]);
    let dates = |o: &ParseOutput| -> Vec<_> {
        o.statements[0]
            .lines
            .iter()
            .map(|l| l.booking_date)
            .collect()
    };
    assert_eq!(dates(&xlsx), dates(&csv));
    assert_eq!(
        xlsx.statements[0].lines[0].counterparty_name,
        csv.statements[0].lines[0].counterparty_name
    );
    // Detected by content, not by name.
    assert_eq!(
        bank_adapter::parse::detect(
            &std::fs::read(dir().join("tests/fixtures/csv/cn_direction.xlsx")).unwrap_or_default()
        ),
        Ok(Format::Csv)
    );
}

#[test]
fn a_damaged_xlsx_workbook_is_refused_saying_so() {
    let mut bytes =
        std::fs::read(dir().join("tests/fixtures/csv/cn_direction.xlsx")).unwrap_or_default();
    bytes.truncate(bytes.len() / 2);
    let options = ParseOptions {
        format: Some(Format::Csv),
        csv: Some(mapping("cn-direction.json")),
        ..ParseOptions::default()
    };
    let err = parse(&bytes, &options).expect_err("half a workbook");
    assert_eq!(err.code(), "malformed_feed", "{err}");
    assert!(err.to_string().contains("workbook"), "{err}");
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// A damaged workbook is refused or read, never a panic (the fuzz target
    /// parse_csv runs this far longer).
    #[test]
    fn mutated_xlsx_workbooks_never_panic_the_reader(
        edits in proptest::collection::vec((proptest::prelude::any::<proptest::sample::Index>(), proptest::prelude::any::<u8>()), 1..16),
    ) {
        let mut bytes = std::fs::read(dir().join("tests/fixtures/csv/cn_direction.xlsx")).unwrap_or_default();
        for (at, byte) in edits {
            let i = at.index(bytes.len());
            bytes[i] = byte;
        }
        let options = ParseOptions {
            format: Some(Format::Csv),
            csv: Some(mapping("cn-direction.json")),
            ..ParseOptions::default()
        };
        if let Err(e) = parse(&bytes, &options) {
            proptest::prop_assert!(!e.to_string().is_empty());
        }
    }
}

fn read_bytes(bytes: &[u8], mapping: CsvMapping) -> Result<ParseOutput, ParseError> {
    let options = ParseOptions {
        format: Some(Format::Csv),
        csv: Some(mapping),
        ..ParseOptions::default()
    };
    parse(bytes, &options)
}

fn utf8_fixture() -> String {
    std::fs::read_to_string(dir().join("tests/fixtures/csv/cn_direction_utf8_bom.csv")).unwrap()
}

#[test]
fn an_export_of_no_rows_is_refused_not_kept_as_a_file_seen() {
    let text = utf8_fixture();
    let header_only: String = text.split_inclusive('\n').take(2).collect();
    let err = read_bytes(header_only.as_bytes(), mapping("cn-direction.json"))
        .expect_err("a header is not a statement");
    assert_eq!(err.code(), "malformed_feed", "{err}");
    assert!(err.to_string().contains("no rows"), "{err}");
}

#[test]
fn a_row_dated_outside_the_business_dates_is_refused_when_it_becomes_a_feed() {
    let text = utf8_fixture().replacen("2026/09/01", "2999/09/01", 1);
    let out = read_bytes(text.as_bytes(), mapping("cn-direction.json")).unwrap();
    let err = bank_adapter::ingest::to_feed("PYRCB", &out.statements[0])
        .expect_err("2999 is no business date");
    assert_eq!(err.code(), "invalid_field", "{err}");
    let said = err.to_string();
    assert!(
        said.contains("booking_date") && said.contains("2999-09-01"),
        "{said}"
    );
    // The export as it was is a feed.
    let out = read_bytes(utf8_fixture().as_bytes(), mapping("cn-direction.json")).unwrap();
    assert!(bank_adapter::ingest::to_feed("PYRCB", &out.statements[0]).is_ok());
}
