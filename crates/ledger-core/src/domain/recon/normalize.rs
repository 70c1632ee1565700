//! Reference and counterparty normalization: what two spellings of the same
//! identifier have in common (full-width forms, case, separators, leading
//! zeros), and the candidate tokens hidden in free remittance text.

/// Shorter normalized tokens collide too often (`2026`, `0042`) to be evidence.
pub(crate) const MIN_TOKEN_CHARS: usize = 4;

/// How many adjacent words of one chain are glued into a token: enough for
/// `XF 2026 0042` or `RL-2026-10`, few enough to keep a remittance linear.
const MAX_JOINED_WORDS: usize = 4;

/// Values banks put in reference fields to mean "no reference": matching on
/// them would pair unrelated lines.
const PLACEHOLDERS: [&str; 4] = ["NONREF", "NOTPROVIDED", "NOT PROVIDED", "NONE"];

/// Full-width ASCII (U+FF01..U+FF5E, as Chinese input methods type it) and
/// the ideographic space to their ASCII forms, then ASCII upper case.
pub(crate) fn fold_char(c: char) -> char {
    let c = match c {
        '\u{FF01}'..='\u{FF5E}' => char::from_u32(u32::from(c) - 0xFEE0).unwrap_or(c),
        '\u{3000}' => ' ',
        _ => c,
    };
    c.to_ascii_uppercase()
}

/// An identifier field as given, trimmed, or `None` when it is empty or a
/// placeholder. Exact matching (pass 1) compares these.
pub(crate) fn usable_identifier(raw: Option<&str>) -> Option<&str> {
    let value = raw?.trim();
    if value.is_empty() || PLACEHOLDERS.iter().any(|p| value.eq_ignore_ascii_case(p)) {
        return None;
    }
    Some(value)
}

/// A reference reduced to what survives retyping: folded, every character
/// that is not a letter or digit removed, leading zeros of an all-digit
/// value removed; `None` when shorter than [`MIN_TOKEN_CHARS`] or a
/// placeholder.
pub(crate) fn normalize_reference(raw: &str) -> Option<String> {
    usable_identifier(Some(raw))?;
    let folded: String = raw
        .chars()
        .map(fold_char)
        .filter(|c| c.is_alphanumeric())
        .collect();
    finish_token(folded)
}

fn finish_token(token: String) -> Option<String> {
    let token = if !token.is_empty() && token.bytes().all(|b| b.is_ascii_digit()) {
        token.trim_start_matches('0').to_string()
    } else {
        token
    };
    if token.chars().count() < MIN_TOKEN_CHARS {
        return None;
    }
    Some(token)
}

/// Candidate reference tokens in free text. Words are runs of ASCII letters
/// and digits (after folding); words separated only by `-`, `_`, `/` or
/// whitespace form a chain, and every run of up to [`MAX_JOINED_WORDS`]
/// adjacent words of a chain is a token too, so `XF-2026-0042`,
/// `xf 2026 0042` and `ＸＦ２０２６００４２` all yield `XF20260042`. Anything
/// else (CJK text, `:`, `#`, `.`) ends a chain. Sorted, without repeats.
pub(crate) fn remittance_tokens(text: &str) -> Vec<String> {
    let mut chains: Vec<Vec<String>> = vec![];
    let mut chain: Vec<String> = vec![];
    let mut word = String::new();
    for c in text.chars().map(fold_char) {
        if c.is_ascii_alphanumeric() {
            word.push(c);
        } else if matches!(c, '-' | '_' | '/') || c.is_whitespace() {
            if !word.is_empty() {
                chain.push(std::mem::take(&mut word));
            }
        } else {
            if !word.is_empty() {
                chain.push(std::mem::take(&mut word));
            }
            if !chain.is_empty() {
                chains.push(std::mem::take(&mut chain));
            }
        }
    }
    if !word.is_empty() {
        chain.push(word);
    }
    if !chain.is_empty() {
        chains.push(chain);
    }
    let mut tokens = vec![];
    for chain in &chains {
        for start in 0..chain.len() {
            let mut joined = String::new();
            for word in chain.iter().skip(start).take(MAX_JOINED_WORDS) {
                joined.push_str(word);
                if let Some(token) = finish_token(joined.clone()) {
                    tokens.push(token);
                }
            }
        }
    }
    tokens.sort();
    tokens.dedup();
    tokens
}

/// A counterparty name or account reduced to its letters and digits (CJK
/// included), folded; `None` when fewer than two remain (a one-character
/// name says nothing).
pub(crate) fn normalize_party(raw: &str) -> Option<String> {
    let folded: String = raw
        .chars()
        .map(fold_char)
        .filter(|c| c.is_alphanumeric())
        .collect();
    (folded.chars().count() >= 2).then_some(folded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check_reference(raw: &str, expected: Option<&str>) {
        assert_eq!(
            normalize_reference(raw).as_deref(),
            expected,
            "reference {raw:?}"
        );
    }

    #[test]
    fn references_lose_width_case_separators_and_leading_zeros() {
        check_reference("ＸＦ２０２６", Some("XF2026"));
        check_reference("xf-2026_00/42", Some("XF20260042"));
        check_reference(" RL 2026 10 ", Some("RL202610"));
        check_reference("000123456", Some("123456"));
        check_reference("0000", None);
        check_reference("AB-1", None);
        check_reference("NONREF", None);
        check_reference("notprovided", None);
        check_reference("订单２０２６", Some("订单2026"));
    }

    #[track_caller]
    fn check_tokens(text: &str, must_contain: &[&str], must_not_contain: &[&str]) {
        let tokens = remittance_tokens(text);
        for t in must_contain {
            assert!(
                tokens.iter().any(|x| x == t),
                "{text:?} gave {tokens:?}, missing {t}"
            );
        }
        for t in must_not_contain {
            assert!(
                !tokens.iter().any(|x| x == t),
                "{text:?} gave {tokens:?}, has {t}"
            );
        }
    }

    #[test]
    fn remittance_tokens_find_references_however_they_are_typed() {
        check_tokens(
            "学费 XF-2026-0042 张三",
            &["XF20260042", "XF2026", "20260042"],
            &["42"],
        );
        check_tokens("学费ＸＦ２０２６００４２张三", &["XF20260042"], &[]);
        check_tokens(
            "order no: xf 2026 0042.",
            &["XF20260042", "ORDER"],
            &["NOXF2026"],
        );
        check_tokens("REF:00098765", &["98765"], &["00098765", "REF98765"]);
        check_tokens("", &[], &["XF2026"]);
    }

    #[test]
    fn identifiers_that_mean_nothing_are_not_usable() {
        assert_eq!(usable_identifier(Some("  ")), None);
        assert_eq!(usable_identifier(Some("NONREF")), None);
        assert_eq!(usable_identifier(None), None);
        assert_eq!(usable_identifier(Some(" RL-1 ")), Some("RL-1"));
    }

    #[test]
    fn parties_compare_on_letters_and_digits() {
        assert_eq!(
            normalize_party("张三（北京）培训"),
            normalize_party("张三(北京)培训")
        );
        assert_eq!(
            normalize_party("6222 0200-1234"),
            Some("622202001234".into())
        );
        assert_eq!(normalize_party("李"), None);
    }
}
