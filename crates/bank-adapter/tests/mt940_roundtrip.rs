//! Render and parse back: generated statements rendered as MT940 and parsed
//! again give the same statements, field for field, for every field MT940
//! carries (the limits are listed in `render/mt940.rs`).

use chrono::{Days, NaiveDate};
use proptest::prelude::*;
use rust_decimal::Decimal;

use bank_adapter::parse::{parse, ParseOptions};
use bank_adapter::render::mt940::mt940;
use bank_adapter::{Balance, Format, Line, LineStatus, SourceRef, Statement};

fn source() -> SourceRef {
    SourceRef {
        file_sha256: String::new(),
        message: 0,
        line: None,
        path: None,
    }
}

/// Up to 10^11 in minor units, both signs, 0 to 2 decimals.
fn amount() -> impl Strategy<Value = Decimal> {
    (-100_000_000_000i64..100_000_000_000, 0u32..=2).prop_map(|(m, scale)| Decimal::new(m, scale))
}

/// A SWIFT `x` reference as SWIFT allows it in `:61:`: at most 16
/// characters, no spaces, no `//`, not starting or ending with `/`.
fn reference() -> impl Strategy<Value = String> {
    "[A-Za-z0-9/?:().,'+-]{1,16}".prop_filter("SWIFT reference rules", |r| {
        !r.starts_with('/')
            && !r.ends_with('/')
            && !r.contains("//")
            && !r.eq_ignore_ascii_case("NONREF")
    })
}

/// Free text from the SWIFT character set, starting with a letter (so it is
/// not read as German `?NN` or Dutch `/TRTP/` fields), trimmed.
fn remittance() -> impl Strategy<Value = String> {
    "[A-Za-z][A-Za-z0-9/?:().,'+ -]{0,299}".prop_map(|r| r.trim_end().to_owned())
}

fn line(base: NaiveDate) -> impl Strategy<Value = Line> {
    (
        amount(),
        0u64..5,
        proptest::option::of(-3i64..=3),
        any::<bool>(),
        "[NFS][A-Z]{3}",
        proptest::option::of(reference()),
        proptest::option::of(reference()),
        proptest::option::of(remittance()),
    )
        .prop_map(
            move |(
                amount,
                value_offset,
                booking_offset,
                reversal,
                code,
                e2e,
                bank_ref,
                remittance,
            )| {
                let value_date = base + Days::new(value_offset);
                let booking_date = booking_offset.map(|o| {
                    if o < 0 {
                        value_date - Days::new(o.unsigned_abs())
                    } else {
                        value_date + Days::new(o.unsigned_abs())
                    }
                });
                Line {
                    amount,
                    booking_date,
                    value_date: Some(value_date),
                    status: LineStatus::Booked,
                    bank_ref,
                    end_to_end_id: e2e,
                    remittance,
                    counterparty_name: None,
                    counterparty_account: None,
                    bank_tx_code: Some(code),
                    reversal,
                    return_reason: None,
                    children: Vec::new(),
                    structured: Default::default(),
                    source: source(),
                }
            },
        )
}

fn statement() -> impl Strategy<Value = Statement> {
    (
        0u64..20_000,
        "[A-Z]{4}CNBJ/[0-9]{8,19}",
        prop::sample::select(vec!["CNY", "EUR", "USD", "HKD"]),
        "[A-Z0-9]{1,16}",
        "[0-9]{1,5}/[0-9]{1,3}",
        amount(),
    )
        .prop_flat_map(|(day, account, currency, id, sequence, opening)| {
            let base = NaiveDate::from_ymd_opt(1990, 1, 1).unwrap_or_default() + Days::new(day);
            proptest::collection::vec(line(base), 1..=50).prop_map(move |lines| {
                let total: Decimal = lines.iter().map(|l| l.amount).sum();
                Statement {
                    format: Format::Mt940,
                    account: account.clone(),
                    currency: currency.to_owned(),
                    statement_id: id.clone(),
                    sequence: Some(sequence.clone()),
                    opening_balance: Some(Balance {
                        amount: opening,
                        date: base,
                    }),
                    closing_balance: Some(Balance {
                        amount: opening + total,
                        date: base + Days::new(5),
                    }),
                    lines,
                    source: source(),
                }
            })
        })
}

/// The fields MT940 carries, and nothing else.
fn carried(s: &Statement) -> impl PartialEq + std::fmt::Debug + '_ {
    let lines: Vec<_> = s
        .lines
        .iter()
        .map(|l| {
            (
                l.amount,
                l.value_date,
                l.booking_date,
                l.status,
                l.reversal,
                &l.bank_ref,
                &l.end_to_end_id,
                &l.bank_tx_code,
                &l.remittance,
            )
        })
        .collect();
    (
        s.format,
        &s.account,
        &s.currency,
        &s.statement_id,
        &s.sequence,
        &s.opening_balance,
        &s.closing_balance,
        lines,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn statements_rendered_as_mt940_parse_back_to_the_same_statements(
        statements in proptest::collection::vec(statement(), 1..=3)
    ) {
        let text = mt940(&statements);
        let parsed = parse(text.as_bytes(), &ParseOptions::default())
            .map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert_eq!(parsed.statements.len(), statements.len());
        for (want, got) in statements.iter().zip(&parsed.statements) {
            prop_assert_eq!(carried(want), carried(got), "{}", text);
        }
    }
}

/// How statements are put together into one file, as banks do it.
#[derive(Debug, Clone, Copy)]
enum Joint {
    /// Each statement its own message, ended by `-`.
    Messages,
    /// All statements in one message, each starting at its own `:20:`.
    OneMessage,
    /// All statements in one message, the later ones without a `:20:` (a
    /// second `:25:`/`:28C:` group).
    OneMessageWithout20,
}

/// Renders `statements` joined the way `joint` says, with a SUB (0x1A)
/// and/or blank lines before each later statement when asked.
fn joined(statements: &[Statement], joint: Joint, sub: bool, blank: bool) -> String {
    let mut out = String::new();
    for (i, s) in statements.iter().enumerate() {
        let mut one = mt940(std::slice::from_ref(s));
        if !matches!(joint, Joint::Messages) {
            one = one.strip_suffix("-\r\n").unwrap_or(&one).to_owned();
        }
        if i > 0 {
            if matches!(joint, Joint::OneMessageWithout20) {
                one = one
                    .split_once("\r\n")
                    .map(|(_, r)| r.to_owned())
                    .unwrap_or(one);
            }
            if blank {
                out.push_str("\r\n\r\n");
            }
            if sub {
                out.push('\u{1a}');
            }
        }
        out.push_str(&one);
    }
    if !matches!(joint, Joint::Messages) {
        out.push_str("-\r\n");
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The silent bug of issue 13: a second statement inside one message
    /// (or after a SUB) must not move the first statement's lines under the
    /// second statement's account.
    #[test]
    fn statements_in_one_message_or_several_parse_to_the_same_statements(
        statements in proptest::collection::vec(statement(), 1..=4),
        joint in prop::sample::select(vec![Joint::Messages, Joint::OneMessage, Joint::OneMessageWithout20]),
        sub in any::<bool>(),
        blank in any::<bool>(),
    ) {
        let text = joined(&statements, joint, sub, blank);
        let parsed = parse(text.as_bytes(), &ParseOptions::default())
            .map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert_eq!(parsed.statements.len(), statements.len(), "{}", text);
        for (want, got) in statements.iter().zip(&parsed.statements) {
            if matches!(joint, Joint::OneMessageWithout20) {
                // Without its own :20: a statement carries the message's
                // reference; everything else is its own.
                let mut want = want.clone();
                want.statement_id.clone_from(&got.statement_id);
                prop_assert_eq!(carried(&want), carried(got), "{}", text);
            } else {
                prop_assert_eq!(carried(want), carried(got), "{}", text);
            }
        }
    }
}
