//! The text layer of an MT940/MT942 file: decoding, splitting into numbered
//! lines, and telling each line apart (a tag, a continuation, the end of a
//! message, envelope noise), whatever envelope the bank wrapped around it.

use std::borrow::Cow;

use crate::model::Warning;

/// What one physical line of the file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Row<'a> {
    /// `:TAG:` (tag without the colons) and the rest of the line, untrimmed.
    Tag { tag: &'a str, value: &'a str },
    /// A line that continues the previous field (`:61:` supplementary
    /// details, `:86:` text), untrimmed.
    More(&'a str),
    /// `-`, `-}` (with or without a `{5:` trailer) or `$`: the message ends.
    End,
    /// Blank, or a SWIFT envelope block (`{1:`, `{2:`, `{3:`, `{5:`) that
    /// carries nothing of the statement.
    Skip,
}

/// Decodes the file. Valid UTF-8 (ASCII included) is borrowed, not copied;
/// anything else is decoded lossily and said so, because a replaced byte in a
/// name or reference is something an officer should know about.
pub(super) fn decode(bytes: &[u8]) -> (Cow<'_, str>, Option<Warning>) {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    match std::str::from_utf8(bytes) {
        Ok(text) => (Cow::Borrowed(text), None),
        Err(e) => {
            let valid = bytes.get(..e.valid_up_to()).unwrap_or_default();
            let line = valid.iter().filter(|b| **b == b'\n').count() + 1;
            let warning = Warning {
                at: format!("line {line} (byte {})", e.valid_up_to()),
                message: "the file is not valid UTF-8: undecodable bytes were replaced with U+FFFD"
                    .into(),
            };
            (String::from_utf8_lossy(bytes), Some(warning))
        }
    }
}

/// The file's lines with their 1-based numbers, without line terminators.
/// LF and CRLF files split on LF; a file with CR alone (old host exports)
/// splits on CR, so its line numbers still match what an editor shows.
pub(super) fn lines(text: &str) -> impl Iterator<Item = (u32, &str)> {
    let separator = if !text.contains('\n') && text.contains('\r') {
        '\r'
    } else {
        '\n'
    };
    text.split(separator).zip(1u32..).map(|(line, number)| {
        let line = line.strip_suffix('\r').unwrap_or(line);
        (number, line)
    })
}

/// Classifies one line. Tags are recognised even after stray leading
/// whitespace (sloppy exports indent them); `-` and `$` only when they are
/// the whole line, so free text starting with a dash stays free text.
pub(super) fn classify(line: &str) -> Row<'_> {
    let trimmed = line.trim_matches(|c: char| c.is_whitespace() || c == '\u{1a}');
    if trimmed.is_empty() {
        return Row::Skip;
    }
    if trimmed == "-" || trimmed == "$" || trimmed.starts_with("-}") {
        return Row::End;
    }
    if let Some(rest) = envelope(trimmed) {
        // `{1:…}{2:…}{4:` may carry the first field on the same line.
        return match rest {
            Some(content) if !content.trim().is_empty() => classify(content),
            _ => Row::Skip,
        };
    }
    // A SUB (Ctrl-Z, 0x1A) some bank systems write between statements is
    // noise before a tag, like leading whitespace.
    if let Some((tag, value)) =
        tag(line.trim_start_matches(|c: char| c.is_whitespace() || c == '\u{1a}'))
    {
        return Row::Tag { tag, value };
    }
    Row::More(line)
}

/// A SWIFT block line: `Some(Some(text after "{4:"))` when block 4 opens on
/// it, `Some(None)` for header or trailer blocks only, `None` for anything
/// else.
fn envelope(line: &str) -> Option<Option<&str>> {
    let b = line.as_bytes();
    let is_block = b.len() >= 3 && b[0] == b'{' && matches!(b[1], b'1'..=b'5') && b[2] == b':';
    if !is_block {
        return None;
    }
    Some(line.find("{4:").map(|i| &line[i + 3..]))
}

/// `:61:rest` → `("61", "rest")`. A tag is two digits and an optional
/// letter, or the non-standard `NS`; anything else starting with a colon is
/// text.
fn tag(line: &str) -> Option<(&str, &str)> {
    let b = line.as_bytes();
    if b.first() != Some(&b':') {
        return None;
    }
    let end = b.iter().skip(1).take(4).position(|c| *c == b':')? + 1;
    let name = &b[1..end];
    let ok = match name {
        [a, b] => (a.is_ascii_digit() && b.is_ascii_digit()) || name == b"NS",
        [a, b, c] => a.is_ascii_digit() && b.is_ascii_digit() && c.is_ascii_uppercase(),
        _ => false,
    };
    ok.then(|| (&line[1..end], &line[end + 1..]))
}

/// Lines some banks put before the first `:20:` of each message (ABN AMRO
/// writes its BIC and `940`): short words of letters and digits, skipped
/// without a warning.
pub(super) fn is_preamble(line: &str) -> bool {
    let t = line.trim();
    t.len() <= 12 && t.bytes().all(|c| c.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_classified_by_what_they_start_with() {
        let table: &[(&str, Row)] = &[
            (
                ":20:REF",
                Row::Tag {
                    tag: "20",
                    value: "REF",
                },
            ),
            (
                "  :61:2609",
                Row::Tag {
                    tag: "61",
                    value: "2609",
                },
            ),
            (
                ":28C:1/1",
                Row::Tag {
                    tag: "28C",
                    value: "1/1",
                },
            ),
            (
                ":NS:22x",
                Row::Tag {
                    tag: "NS",
                    value: "22x",
                },
            ),
            (":ab:text", Row::More(":ab:text")),
            (":2:text", Row::More(":2:text")),
            ("-", Row::End),
            (" - ", Row::End),
            ("-}{5:{CHK:123}}", Row::End),
            ("$", Row::End),
            ("-payment", Row::More("-payment")),
            ("{1:F01BANK}{2:O940}{4:", Row::Skip),
            (
                "{1:F01BANK}{4::20:X",
                Row::Tag {
                    tag: "20",
                    value: "X",
                },
            ),
            ("{5:{CHK:1}}", Row::Skip),
            ("{not a block", Row::More("{not a block")),
            ("", Row::Skip),
            ("\u{1a}", Row::Skip),
            (
                "\u{1a}:20:B",
                Row::Tag {
                    tag: "20",
                    value: "B",
                },
            ),
        ];
        for (line, want) in table {
            assert_eq!(classify(line), *want, "{line:?}");
        }
    }

    #[test]
    fn line_numbers_ignore_the_kind_of_line_ending() {
        let lf: Vec<_> = lines("a\nb\n").collect();
        let crlf: Vec<_> = lines("a\r\nb\r\n").collect();
        let cr: Vec<_> = lines("a\rb\r").collect();
        assert_eq!(lf, vec![(1, "a"), (2, "b"), (3, "")]);
        assert_eq!(crlf, lf);
        assert_eq!(cr, lf);
    }
}
