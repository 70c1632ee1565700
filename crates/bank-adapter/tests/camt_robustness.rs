//! A bounded fuzz run of the camt parser inside the normal test suite:
//! arbitrary bytes, and fixtures with bytes flipped, cut, dropped and
//! repeated, must come back as a statement or an error, never a panic.

use bank_adapter::parse::camt;
use bank_adapter::parse::FileContext;
use bank_adapter::Format;
use proptest::prelude::*;

const FORMATS: [Format; 3] = [Format::Camt052, Format::Camt053, Format::Camt054];

fn fixtures() -> Vec<Vec<u8>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/camt");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("fixtures directory")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "xml"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| std::fs::read(p).expect("fixture"))
        .collect()
}

/// Parses with every camt format; only a panic fails the test.
fn parse_all_ways(bytes: &[u8]) {
    let ctx = FileContext::of(bytes);
    for format in FORMATS {
        let _ = camt::parse(bytes, format, &ctx);
    }
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip { at: usize, byte: u8 },
    Cut { at: usize },
    Drop { at: usize, len: usize },
    Repeat { at: usize, len: usize },
    Insert { at: usize, text: &'static str },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let markup = prop_oneof![
        Just("<"),
        Just(">"),
        Just("</Ntry>"),
        Just("<Ntry>"),
        Just("<TxDtls>"),
        Just("&"),
        Just("&#0;"),
        Just("&bogus;"),
        Just("<![CDATA["),
        Just("\u{0}"),
        Just("\u{FEFF}"),
        Just("<Amt Ccy=\"CNY\">-1</Amt>"),
        Just("<Bal><Tp><CdOrPrtry><Cd>CLBD</Cd></CdOrPrtry></Tp></Bal>"),
    ];
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Flip { at, byte }),
        any::<usize>().prop_map(|at| Mutation::Cut { at }),
        (any::<usize>(), 1usize..64).prop_map(|(at, len)| Mutation::Drop { at, len }),
        (any::<usize>(), 1usize..256).prop_map(|(at, len)| Mutation::Repeat { at, len }),
        (any::<usize>(), markup).prop_map(|(at, text)| Mutation::Insert { at, text }),
    ]
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    if bytes.is_empty() {
        return;
    }
    let n = bytes.len();
    match *m {
        Mutation::Flip { at, byte } => bytes[at % n] = byte,
        Mutation::Cut { at } => bytes.truncate(at % n),
        Mutation::Drop { at, len } => {
            let at = at % n;
            bytes.drain(at..(at + len).min(n));
        }
        Mutation::Repeat { at, len } => {
            let at = at % n;
            let slice = bytes[at..(at + len).min(n)].to_vec();
            bytes.splice(at..at, slice);
        }
        Mutation::Insert { at, text } => {
            let at = at % n;
            bytes.splice(at..at, text.bytes());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn arbitrary_bytes_never_panic_the_camt_parser(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        parse_all_ways(&bytes);
    }

    #[test]
    fn xml_shaped_noise_never_panics_the_camt_parser(
        text in "(<[A-Za-z:]{1,12}( Ccy=\"[A-Z]{0,4}\")?>|</[A-Za-z:]{1,12}>|[0-9.,-]{0,8}|&[a-z#0-9]{0,5};?){0,60}"
    ) {
        let doc = format!("<Document><BkToCstmrStmt><Stmt>{text}");
        parse_all_ways(doc.as_bytes());
    }

    /// Any declared encoding and any bytes after the declaration: decoded
    /// or refused, never a panic (issue 13's prolog decoding).
    #[test]
    fn any_declared_encoding_never_panics_the_camt_parser(
        label in prop::sample::select(vec!["UTF-8", "ISO-8859-1", "GBK", "GB18030", "windows-1252", "UTF-16", "x-unknown", ""]),
        quote in prop::sample::select(vec!['"', '\'']),
        body in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        let mut doc = format!("<?xml version=\"1.0\" encoding={quote}{label}{quote}?><Document><BkToCstmrStmt><Stmt>").into_bytes();
        doc.extend_from_slice(&body);
        parse_all_ways(&doc);
    }

    #[test]
    fn mutated_fixtures_never_panic_the_camt_parser(
        pick in any::<prop::sample::Index>(),
        mutations in proptest::collection::vec(mutation(), 1..6),
    ) {
        let fixtures = fixtures();
        let mut bytes = pick.get(&fixtures).clone();
        for m in &mutations {
            apply(&mut bytes, m);
        }
        parse_all_ways(&bytes);
    }
}

#[test]
fn a_document_nested_far_deeper_than_camt_is_refused_without_recursing() {
    let depth = 100_000;
    let mut doc = String::from("<Document><BkToCstmrStmt><Stmt>");
    doc.push_str(&"<a>".repeat(depth));
    doc.push_str(&"</a>".repeat(depth));
    let err = camt::parse(
        doc.as_bytes(),
        Format::Camt053,
        &FileContext::of(doc.as_bytes()),
    )
    .expect_err("a document this deep is refused");
    assert!(err.to_string().contains("nested deeper than"), "{err}");
}

#[test]
fn an_entity_the_document_defines_itself_is_refused() {
    let doc = r#"<?xml version="1.0"?>
<!DOCTYPE Document [<!ENTITY lol "lollollollollollol">]>
<Document><BkToCstmrStmt><Stmt><Id>&lol;</Id></Stmt></BkToCstmrStmt></Document>"#;
    let err = camt::parse(
        doc.as_bytes(),
        Format::Camt053,
        &FileContext::of(doc.as_bytes()),
    )
    .expect_err("custom entities are refused");
    assert!(err.to_string().contains("unknown entity &lol;"), "{err}");
}
