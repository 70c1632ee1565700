//! Streaming MT940: a file larger than one part is cut at message
//! boundaries, and the result is exactly what one pass over the whole file
//! gives, line numbers and message indexes included.

use bank_adapter::model::{Balance, Format, Line, LineStatus, SourceRef, Statement};
use bank_adapter::parse::{mt940, parse, parse_stream, FileContext, ParseOptions};
use chrono::NaiveDate;
use rust_decimal::Decimal;

fn statement(n: usize) -> Statement {
    let date = NaiveDate::from_ymd_opt(2026, 9, 1).unwrap();
    let source = SourceRef {
        file_sha256: String::new(),
        message: 0,
        line: None,
        path: None,
    };
    let lines: Vec<Line> = (0..200)
        .map(|i| Line {
            amount: Decimal::new((n * 1000 + i) as i64 + 1, 2),
            booking_date: Some(date),
            value_date: Some(date),
            status: LineStatus::Booked,
            bank_ref: Some(format!("B{n}x{i}")),
            end_to_end_id: Some(format!("ORD{n}x{i}")),
            remittance: Some(format!("TUITION {n} {i} AUTUMN TERM")),
            counterparty_name: None,
            counterparty_account: None,
            bank_tx_code: Some("NTRF".into()),
            reversal: false,
            return_reason: None,
            children: vec![],
            structured: Default::default(),
            source: source.clone(),
        })
        .collect();
    let total: Decimal = lines.iter().map(|l| l.amount).sum();
    Statement {
        format: Format::Mt940,
        account: "6222020200112233".into(),
        currency: "CNY".into(),
        statement_id: format!("ST{n}"),
        sequence: Some(format!("{}/1", n + 1)),
        opening_balance: Some(Balance {
            amount: Decimal::ZERO,
            date,
        }),
        closing_balance: Some(Balance {
            amount: total,
            date,
        }),
        lines,
        source,
    }
}

#[test]
fn a_file_of_many_parts_parses_exactly_as_one_pass_does() {
    let mut text = String::new();
    let mut n = 0;
    while text.len() < 9 << 20 {
        text.push_str(&bank_adapter::render::mt940::mt940(&[statement(n)]));
        n += 1;
    }
    let bytes = text.as_bytes();
    let ctx = FileContext::of(bytes);
    let whole = mt940::parse(bytes, Format::Mt940, &ctx).unwrap();
    let options = ParseOptions {
        format: Some(Format::Mt940),
        csv: None,
        ..ParseOptions::default()
    };
    let streamed = parse(bytes, &options).unwrap();
    assert_eq!(streamed.statements.len(), n);
    assert_eq!(streamed.statements, whole.statements);
    assert_eq!(
        streamed.statements.last().unwrap().source.message as usize,
        n,
        "messages are numbered from 1"
    );

    // Through a reader, statement by statement, with nothing kept.
    let mut count = 0;
    let mut lines = 0;
    let warnings = parse_stream(std::io::BufReader::new(bytes), &ctx, &options, &mut |s| {
        count += 1;
        lines += s.lines.len();
        Ok(())
    })
    .unwrap();
    assert_eq!((count, lines), (n, n * 200));
    // Each statement opens at zero: the chain check says so, every time.
    assert_eq!(warnings.len(), n - 1);
}

#[test]
fn an_error_in_a_later_part_names_its_line_in_the_whole_file() {
    let mut text = String::new();
    let mut n = 0;
    while text.len() < 5 << 20 {
        text.push_str(&bank_adapter::render::mt940::mt940(&[statement(n)]));
        n += 1;
    }
    // Break the last statement's last amount.
    let at = text.rfind(":61:").unwrap();
    let comma = at + text[at..].find(',').unwrap();
    text.replace_range(comma..comma + 1, ".");
    let line = text[..at].matches('\n').count() + 1;
    let options = ParseOptions {
        format: Some(Format::Mt940),
        csv: None,
        ..ParseOptions::default()
    };
    let err = parse(text.as_bytes(), &options).unwrap_err();
    assert!(
        err.to_string().contains(&format!("line {line}")),
        "{err} (expected line {line})"
    );
}
