//! The MT940/MT942 parser never panics: arbitrary bytes, SWIFT-shaped
//! garbage and mutated fixtures go in, and an answer (statements or an
//! error) always comes out. Bounded, so it runs in the normal test suite;
//! the long runs belong to the fuzz target.

use std::fs;
use std::path::Path;

use proptest::prelude::*;

use bank_adapter::parse::{mt940, parse, FileContext, ParseOptions};
use bank_adapter::Format;

fn fixtures() -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mt940");
    let mut files: Vec<_> = fs::read_dir(&dir)
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    let out: Vec<Vec<u8>> = files.iter().filter_map(|p| fs::read(p).ok()).collect();
    assert!(out.len() >= 10, "fixtures missing in {}", dir.display());
    out
}

/// Every reading of the bytes answers; whatever is returned points at real
/// lines of the input.
fn answers(bytes: &[u8]) -> Result<(), TestCaseError> {
    let ctx = FileContext::of(bytes);
    // Lines as the parser counts them: split on LF, or on CR in CR-only files.
    let count = |sep: u8| bytes.split(|b| *b == sep).count();
    let lines = u32::try_from(count(b'\n').max(count(b'\r'))).unwrap_or(u32::MAX);
    for format in [Format::Mt940, Format::Mt942] {
        if let Ok(out) = mt940::parse(bytes, format, &ctx) {
            for l in out.statements.iter().flat_map(|s| &s.lines) {
                let n = l.source.line.unwrap_or(0);
                prop_assert!(n >= 1 && n <= lines, "line {n} of {lines}");
            }
        }
        let options = ParseOptions {
            format: Some(format),
            ..ParseOptions::default()
        };
        if let Err(e) = parse(bytes, &options) {
            prop_assert!(!e.to_string().is_empty());
        }
    }
    Ok(())
}

/// A line of SWIFT-looking text: a known tag with random content, or a
/// bare continuation, end marker or envelope line.
fn swift_line() -> impl Strategy<Value = String> {
    let tag = prop::sample::select(vec![
        ":20:",
        ":21:",
        ":25:",
        ":28C:",
        ":60F:",
        ":60M:",
        ":61:",
        ":86:",
        ":62F:",
        ":62M:",
        ":64:",
        ":65:",
        ":34F:",
        ":13D:",
        ":90D:",
        ":90C:",
        "-",
        "-}",
        "$",
        "{1:X}{4:",
        "",
        ":61:2609010901",
        ":60F:C260901CNY",
        ":61:261231",
        // The quirks real banks write (issue 13): SUB before a tag, a dash
        // line inside :86:, odd transaction types, 30 February, a floor
        // limit without a comma.
        "\u{1a}:20:",
        "\u{1a}",
        " - ",
        ":61:2602300302C1,",
        ":61:260901C1, NTRF",
        ":61:260901C1,NOV ",
        ":34F:PLN",
    ]);
    (tag, "[ -~?é学,.CDR0-9]{0,40}").prop_map(|(t, rest)| format!("{t}{rest}"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(80))]

    #[test]
    fn arbitrary_bytes_never_panic_the_parser(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        answers(&bytes)?;
    }

    #[test]
    fn swift_shaped_garbage_never_panics_the_parser(
        lines in proptest::collection::vec(swift_line(), 0..60),
        crlf in any::<bool>(),
    ) {
        let text = lines.join(if crlf { "\r\n" } else { "\n" });
        answers(text.as_bytes())?;
        // The same lines ended by CR alone (old host exports).
        let text = lines.join("\r");
        answers(text.as_bytes())?;
    }

    #[test]
    fn mutated_fixtures_never_panic_the_parser(
        which in any::<prop::sample::Index>(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), 0u8..4, any::<u8>()), 1..8),
    ) {
        let all = fixtures();
        let mut bytes = all[which.index(all.len())].clone();
        for (at, op, byte) in edits {
            if bytes.is_empty() {
                break;
            }
            let i = at.index(bytes.len());
            match op {
                0 => bytes[i] = byte,
                1 => { bytes.remove(i); }
                2 => bytes.insert(i, byte),
                _ => bytes.truncate(i),
            }
        }
        answers(&bytes)?;
    }
}
