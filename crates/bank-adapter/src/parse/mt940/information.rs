//! The `:86:` information to the account owner: kept raw in `remittance`
//! always, and read into `Line::structured` when it follows a convention we
//! recognise: the German `?NN` subfields (GVC code, `?00` posting text,
//! `?20`–`?29` remittance, `?30`–`?33` counterparty, SEPA `EREF+` and
//! friends) or the Dutch `/TRTP/…/IBAN/…/NAME/…/REMI/…/EREF/…` keywords.

use std::collections::BTreeMap;

use crate::model::Line;

/// What an end-to-end id says when there is none.
const NOT_PROVIDED: &str = "NOTPROVIDED";

/// SEPA identifiers German banks put into the `?20`–`?29` remittance.
const SEPA_KEYS: [&str; 10] = [
    "EREF", "KREF", "MREF", "CRED", "DEBT", "SVWZ", "ABWA", "ABWE", "IBAN", "BIC",
];

/// Dutch keywords (ABN AMRO, ING, Rabobank). A `/WORD/` that is not one of
/// these is part of a value, so a name like `A/B BV` survives.
const DUTCH_KEYS: [&str; 23] = [
    "TRTP", "IBAN", "BIC", "NAME", "REMI", "EREF", "MARF", "CSID", "CNTP", "RTRN", "PREF", "ORDP",
    "BENM", "ID", "ADDR", "PURP", "ULTC", "ULTD", "CHGS", "EXCH", "OAMT", "FX", "ISDT",
];

/// Attaches `:86:` text (continuation lines already joined) to its line.
pub(super) fn attach(line: &mut Line, raw: &str) {
    let raw = raw.trim();
    if raw.is_empty() {
        return;
    }
    let structured = german(raw).or_else(|| dutch(raw));
    line.remittance = Some(raw.to_owned());
    let Some(fields) = structured else {
        return;
    };
    let get = |k: &str| fields.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
    if let Some(name) = get("name") {
        line.counterparty_name = Some(name.to_owned());
    }
    if let Some(account) = get("account").or_else(|| get("iban")) {
        line.counterparty_account = Some(account.to_owned());
    }
    // The :86: end-to-end id is the full SEPA one; the :61: customer
    // reference is often the same id cut to 16 characters, or NONREF.
    if let Some(eref) = get("eref").filter(|e| !e.eq_ignore_ascii_case(NOT_PROVIDED)) {
        line.end_to_end_id = Some(eref.to_owned());
    }
    if let Some(reason) = get("rtrn") {
        line.return_reason = Some(reason.to_owned());
    }
    line.structured.extend(fields);
}

/// `166?00GUTSCHRIFT?20EREF+…?30BANK?31ACCOUNT?32NAME`: a three-digit GVC
/// code, then `?` and two digits before every subfield.
fn german(raw: &str) -> Option<BTreeMap<String, String>> {
    let b = raw.as_bytes();
    let gvc = raw
        .get(..3)
        .filter(|g| g.bytes().all(|c| c.is_ascii_digit()))?;
    if b.get(3) != Some(&b'?') {
        return None;
    }
    let mut fields = BTreeMap::new();
    fields.insert("gvc".to_owned(), gvc.to_owned());
    let (mut remittance, mut name) = (String::new(), String::new());
    for (code, value) in subfields(&raw[3..]) {
        match code {
            "00" => put(&mut fields, "posting_text", value),
            "10" => put(&mut fields, "primanota", value),
            "20" | "21" | "22" | "23" | "24" | "25" | "26" | "27" | "28" | "29" | "60" | "61"
            | "62" | "63" => remittance.push_str(value),
            "30" => put(&mut fields, "bank_code", value),
            "31" => put(&mut fields, "account", value),
            "32" | "33" => name.push_str(value),
            "34" => put(&mut fields, "text_key_extension", value),
            other => put(&mut fields, &format!("?{other}"), value),
        }
    }
    for (key, value) in sepa(&remittance) {
        put(&mut fields, &key.to_ascii_lowercase(), value);
    }
    put(&mut fields, "remittance", &remittance);
    put(&mut fields, "name", &name);
    Some(fields)
}

/// `?NNvalue?NNvalue…` → `(NN, value)` pairs; a `?` not followed by two
/// digits is text.
fn subfields(s: &str) -> impl Iterator<Item = (&str, &str)> {
    let b = s.as_bytes();
    let starts: Vec<usize> = (0..b.len())
        .filter(|&i| {
            b[i] == b'?'
                && b.get(i + 1).is_some_and(u8::is_ascii_digit)
                && b.get(i + 2).is_some_and(u8::is_ascii_digit)
        })
        .collect();
    let ends: Vec<usize> = starts.iter().skip(1).copied().chain([b.len()]).collect();
    starts
        .into_iter()
        .zip(ends)
        .map(move |(start, end)| (&s[start + 1..start + 3], &s[start + 3..end]))
}

/// `EREF+abc SVWZ+text` → `[("EREF", "abc "), ("SVWZ", "text")]`.
fn sepa(s: &str) -> Vec<(&'static str, &str)> {
    let mut found: Vec<(usize, &'static str)> = SEPA_KEYS
        .iter()
        .flat_map(|key| {
            s.match_indices(key)
                .filter(|(i, k)| s.as_bytes().get(i + k.len()) == Some(&b'+'))
                .map(move |(i, _)| (i, *key))
        })
        .collect();
    found.sort_unstable();
    let ends: Vec<usize> = found
        .iter()
        .skip(1)
        .map(|(i, _)| *i)
        .chain([s.len()])
        .collect();
    found
        .into_iter()
        .zip(ends)
        .map(|((start, key), end)| (key, s.get(start + key.len() + 1..end).unwrap_or("")))
        .collect()
}

/// `/TRTP/SEPA OVERBOEKING/IBAN/NL…/NAME/…/REMI/…/EREF/…`: keyword between
/// slashes, value up to the next keyword.
fn dutch(raw: &str) -> Option<BTreeMap<String, String>> {
    let keys = dutch_keys(raw);
    if keys.first().map(|(start, _, _)| *start) != Some(0) {
        return None;
    }
    let mut fields = BTreeMap::new();
    let ends: Vec<usize> = keys
        .iter()
        .skip(1)
        .map(|(s, _, _)| *s)
        .chain([raw.len()])
        .collect();
    for ((_, key, value_start), end) in keys.into_iter().zip(ends) {
        let value = raw
            .get(value_start..end)
            .unwrap_or("")
            .trim_end_matches('/')
            .trim();
        let value = value.strip_prefix("USTD//").unwrap_or(value);
        if key == "CNTP" {
            // ING: /CNTP/account/BIC/name/city/
            let mut parts = value.split('/');
            put(&mut fields, "iban", parts.next().unwrap_or(""));
            put(&mut fields, "bic", parts.next().unwrap_or(""));
            put(&mut fields, "name", parts.next().unwrap_or(""));
        }
        put(&mut fields, &key.to_ascii_lowercase(), value);
    }
    Some(fields)
}

/// Where each `/KEY/` starts, its key, and where its value starts.
fn dutch_keys(raw: &str) -> Vec<(usize, &'static str, usize)> {
    let b = raw.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'/' {
            let word_len = b[i + 1..]
                .iter()
                .take_while(|c| c.is_ascii_uppercase())
                .count();
            let close = i + 1 + word_len;
            if word_len > 0 && b.get(close) == Some(&b'/') {
                if let Some(key) = DUTCH_KEYS.iter().find(|k| k.as_bytes() == &b[i + 1..close]) {
                    out.push((i, *key, close + 1));
                    i = close;
                    continue;
                }
            }
        }
        i += 1;
    }
    out
}

/// Keeps a non-empty field; a later duplicate (a second `?31`) does not
/// overwrite the first.
fn put(fields: &mut BTreeMap<String, String>, key: &str, value: &str) {
    let value = value.trim();
    if !value.is_empty() && !fields.contains_key(key) {
        fields.insert(key.to_owned(), value.to_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field<'a>(f: &'a BTreeMap<String, String>, k: &str) -> Option<&'a str> {
        f.get(k).map(String::as_str)
    }

    #[test]
    fn german_subfields_are_read_into_named_fields() {
        let raw = "166?00SEPA-GUTSCHRIFT?109310?20EREF+INV-2026-0042?21SVWZ+Kurs Herbst?22 2026?30COBADEFFXXX?31DE89370400440532013000?32Musterfrau, Erika?33 und Max";
        let f = german(raw).unwrap_or_default();
        assert_eq!(field(&f, "gvc"), Some("166"));
        assert_eq!(field(&f, "posting_text"), Some("SEPA-GUTSCHRIFT"));
        assert_eq!(field(&f, "eref"), Some("INV-2026-0042"));
        assert_eq!(field(&f, "svwz"), Some("Kurs Herbst 2026"));
        assert_eq!(field(&f, "account"), Some("DE89370400440532013000"));
        assert_eq!(field(&f, "name"), Some("Musterfrau, Erika und Max"));
    }

    #[test]
    fn dutch_keywords_split_only_on_known_words() {
        let raw = "/TRTP/SEPA OVERBOEKING/IBAN/NL46ABNA0625805417/BIC/ABNANL2A/NAME/A/B BV/REMI/Lesgeld/EREF/NOTPROVIDED";
        let f = dutch(raw).unwrap_or_default();
        assert_eq!(field(&f, "trtp"), Some("SEPA OVERBOEKING"));
        assert_eq!(field(&f, "name"), Some("A/B BV"));
        assert_eq!(field(&f, "remi"), Some("Lesgeld"));
        let ing = "/EREF/E2E-7//CNTP/NL08INGB0000000555/INGBNL2A/Klant BV/AMSTERDAM//REMI/USTD//Factuur 12/";
        let f = dutch(ing).unwrap_or_default();
        assert_eq!(field(&f, "eref"), Some("E2E-7"));
        assert_eq!(field(&f, "iban"), Some("NL08INGB0000000555"));
        assert_eq!(field(&f, "name"), Some("Klant BV"));
        assert_eq!(field(&f, "remi"), Some("Factuur 12"));
    }

    #[test]
    fn free_text_is_not_mistaken_for_a_convention() {
        for raw in ["Tuition 2026 ?20 class", "12?ab", "/unknown/x", "学费?20"] {
            assert_eq!(german(raw).or_else(|| dutch(raw)), None, "{raw}");
        }
    }
}
