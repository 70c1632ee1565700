//! Round trips through the camt.053 renderer: generated statements, and
//! every good fixture, rendered as camt.053.001.08 and parsed back must be
//! exactly what went in (apart from `source`, which says where a statement
//! was read from).

use std::collections::BTreeMap;

use bank_adapter::parse::{parse, ParseOptions};
use bank_adapter::render::camt053::camt053;
use bank_adapter::{Balance, Format, Line, LineDetail, LineStatus, SourceRef, Statement};
use chrono::NaiveDate;
use proptest::prelude::*;
use rust_decimal::Decimal;

fn no_source() -> SourceRef {
    SourceRef {
        file_sha256: String::new(),
        message: 0,
        line: None,
        path: None,
    }
}

/// The parts of a statement a round trip must keep.
fn without_source(mut statements: Vec<Statement>) -> Vec<Statement> {
    for s in &mut statements {
        s.source = no_source();
        for line in &mut s.lines {
            line.source = no_source();
        }
    }
    statements
}

fn parse_camt053(xml: &str) -> Vec<Statement> {
    let options = ParseOptions {
        format: Some(Format::Camt053),
        ..ParseOptions::default()
    };
    match parse(xml.as_bytes(), &options) {
        Ok(out) => out.statements,
        Err(e) => panic!("the rendered document does not parse: {e}\n{xml}"),
    }
}

/// Free text as banks send it: markup characters, quotes, Chinese. Never
/// blank at either end, because the parser trims what banks pad.
fn text() -> impl Strategy<Value = String> {
    "[A-Za-z0-9 <>&\"'/.,:退费学费课时拨付李王张阳光教育]{1,40}"
        .prop_map(|s| s.trim().to_owned())
        .prop_filter("not blank", |s| !s.is_empty())
}

fn maybe_text() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(text())
}

/// Up to 2 decimals, both signs, up to ten million.
fn amount() -> impl Strategy<Value = Decimal> {
    (-1_000_000_000i64..=1_000_000_000, 0u32..=2).prop_map(|(n, scale)| Decimal::new(n, scale))
}

fn date() -> impl Strategy<Value = NaiveDate> {
    (0i64..730).prop_map(|d| {
        NaiveDate::from_ymd_opt(2024, 1, 1).unwrap_or_default() + chrono::Duration::days(d)
    })
}

fn account() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9]{10,20}",
        Just("GB29NWBK60161331926819".to_owned()),
        "[A-Z0-9]{4}-[0-9]{6}",
    ]
}

fn child() -> impl Strategy<Value = LineDetail> {
    (
        proptest::option::of(amount()),
        maybe_text(),
        maybe_text(),
        maybe_text(),
        proptest::option::of("[0-9]{16,19}"),
    )
        .prop_map(
            |(amount, end_to_end_id, remittance, counterparty_name, counterparty_account)| {
                LineDetail {
                    amount,
                    end_to_end_id,
                    remittance,
                    counterparty_name,
                    counterparty_account,
                }
            },
        )
}

fn line() -> impl Strategy<Value = Line> {
    let status = prop_oneof![
        6 => Just(LineStatus::Booked),
        1 => Just(LineStatus::Pending),
        1 => Just(LineStatus::Info),
    ];
    let code = proptest::option::of(prop_oneof![
        Just("PMNT/RCDT/ESCT".to_owned()),
        Just("PMNT/ICDT/DMCT".to_owned()),
        Just("TRF".to_owned()),
        Just("PMNT/RCDT".to_owned()),
        Just("VERY/LONG/PROPRIETARY".to_owned()),
    ]);
    let reason = proptest::option::of(prop_oneof![
        Just("AC04".to_owned()),
        Just("closed by holder".to_owned())
    ]);
    let refs = (
        maybe_text(),
        maybe_text(),
        maybe_text(),
        maybe_text(),
        proptest::option::of("[0-9]{16,19}"),
    );
    let extras = (
        proptest::option::of("[0-9]{4}"),
        maybe_text(),
        proptest::option::of("[0-9]{1,3}"),
        proptest::option::of("[A-Z]{6}[A-Z0-9]{2}"),
    );
    let children =
        prop_oneof![3 => Just(Vec::new()), 1 => proptest::collection::vec(child(), 2..6)];
    (
        (
            amount(),
            status,
            proptest::option::of(date()),
            proptest::option::of(date()),
            code,
            any::<bool>(),
            reason,
        ),
        refs,
        extras,
        children,
    )
        .prop_map(
            |(
                (amount, status, booking_date, value_date, bank_tx_code, reversal, return_reason),
                (bank_ref, e2e, remittance, name, account),
                (entry_ref, info, batch_count, bic),
                children,
            )| {
                let batch = !children.is_empty();
                let mut structured = BTreeMap::new();
                for (key, value) in [
                    ("entry_ref", entry_ref),
                    ("additional_info", info),
                    ("batch_count", batch_count),
                    // A batch's transactions each have their own bank.
                    ("counterparty_bic", bic.filter(|_| !batch)),
                ] {
                    if let Some(value) = value {
                        structured.insert(key.to_owned(), value);
                    }
                }
                // A batch carries its references on its transactions.
                let single = |v: Option<String>| v.filter(|_| !batch);
                Line {
                    amount,
                    booking_date,
                    value_date,
                    status,
                    bank_ref,
                    end_to_end_id: single(e2e),
                    remittance: single(remittance),
                    counterparty_name: single(name),
                    counterparty_account: single(account),
                    bank_tx_code,
                    reversal,
                    return_reason,
                    children,
                    structured,
                    source: no_source(),
                }
            },
        )
}

fn statement() -> impl Strategy<Value = Statement> {
    let sequence = proptest::option::of(prop_oneof!["[0-9]{1,5}", "[0-9]{1,5}/[0-9]{1,3}"]);
    (
        account(),
        prop_oneof![Just("CNY"), Just("EUR"), Just("USD")],
        "[A-Za-z0-9-]{1,35}",
        sequence,
        amount(),
        date(),
        proptest::collection::vec(line(), 1..=50),
    )
        .prop_map(
            |(account, currency, statement_id, sequence, opening, day, lines)| {
                let booked: Decimal = lines
                    .iter()
                    .filter(|l| l.status == LineStatus::Booked)
                    .map(|l| l.amount)
                    .sum();
                Statement {
                    format: Format::Camt053,
                    account,
                    currency: currency.to_owned(),
                    statement_id,
                    sequence,
                    opening_balance: Some(Balance {
                        amount: opening,
                        date: day,
                    }),
                    closing_balance: Some(Balance {
                        amount: opening + booked,
                        date: day,
                    }),
                    lines,
                    source: no_source(),
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn generated_statements_survive_a_camt053_render_and_parse(statements in proptest::collection::vec(statement(), 1..=3)) {
        let xml = camt053(&statements);
        let back = without_source(parse_camt053(&xml));
        prop_assert_eq!(back, without_source(statements));
    }
}

#[test]
fn every_good_fixture_survives_a_camt053_render_and_parse() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/camt");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("fixtures directory") {
        let path = entry.expect("fixture entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        if !name.starts_with("camt") || !name.ends_with(".xml") {
            continue;
        }
        let bytes = std::fs::read(&path).expect("fixture");
        let original = parse(&bytes, &ParseOptions::default())
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .statements;
        let xml = camt053(&original);
        // A report or notification comes back as a statement; nothing else changes.
        let mut expected = without_source(original);
        for s in &mut expected {
            s.format = Format::Camt053;
        }
        assert_eq!(without_source(parse_camt053(&xml)), expected, "{name}");
        seen += 1;
    }
    assert!(seen >= 8, "expected the good fixtures, found {seen}");
}

#[test]
fn the_rendered_document_names_the_camt053_001_08_namespace_and_escapes_text() {
    let mut line = Line {
        amount: Decimal::new(-12345, 2),
        booking_date: None,
        value_date: None,
        status: LineStatus::Booked,
        bank_ref: Some("A<&>B".to_owned()),
        end_to_end_id: None,
        remittance: None,
        counterparty_name: None,
        counterparty_account: None,
        bank_tx_code: None,
        reversal: false,
        return_reason: None,
        children: Vec::new(),
        structured: BTreeMap::new(),
        source: no_source(),
    };
    line.remittance = Some("学费 \"spring\"".to_owned());
    let s = Statement {
        format: Format::Camt053,
        account: "6222021001123456789".to_owned(),
        currency: "CNY".to_owned(),
        statement_id: "S-1".to_owned(),
        sequence: Some("7/2".to_owned()),
        opening_balance: None,
        closing_balance: None,
        lines: vec![line],
        source: no_source(),
    };
    let xml = camt053(std::slice::from_ref(&s));
    assert!(xml.contains("xmlns=\"urn:iso:std:iso:20022:tech:xsd:camt.053.001.08\""));
    assert!(xml.contains("<AcctSvcrRef>A&lt;&amp;&gt;B</AcctSvcrRef>"));
    assert!(xml.contains("<Amt Ccy=\"CNY\">123.45</Amt>"));
    assert!(xml.contains("<CdtDbtInd>DBIT</CdtDbtInd>"));
    assert!(xml.contains("<Ustrd>学费 &quot;spring&quot;</Ustrd>"));
}
