//! An institution's books as tables, the header row first: the API's
//! `format=csv` answers and the console's spreadsheet exports write these
//! same rows, so a spreadsheet and the API never disagree. Amounts are
//! decimal strings in the institution's currency, codes as the API spells
//! them.

use ledger_core::domain::money::format_minor;
use ledger_core::store::BalanceSheet;
use ledger_core::Entry;

/// A value's wire spelling (`tuition_paid`, `debit`, `asset`).
fn code<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn header(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| n.to_string()).collect()
}

/// Entries as one row per posting.
pub fn entries<'a>(entries: impl IntoIterator<Item = &'a Entry>) -> Vec<Vec<String>> {
    let mut rows = vec![header(&[
        "seq",
        "client_id",
        "kind",
        "occurred_at",
        "recorded_at",
        "enrollment",
        "hours",
        "account",
        "side",
        "amount",
        "currency",
        "hash",
    ])];
    for e in entries {
        for p in &e.postings {
            rows.push(vec![
                e.seq.to_string(),
                e.client_id.to_string(),
                code(&e.kind),
                e.occurred_at.to_rfc3339(),
                e.recorded_at.to_rfc3339(),
                e.enrollment
                    .as_ref()
                    .map(|x| x.to_string())
                    .unwrap_or_default(),
                e.hours.map(|h| h.to_string()).unwrap_or_default(),
                p.account.to_string(),
                code(&p.side),
                format_minor(p.amount.minor(), e.currency),
                e.currency.code().to_string(),
                e.hash.clone(),
            ]);
        }
    }
    rows
}

/// A balance sheet as one row per account.
pub fn balances(sheet: &BalanceSheet) -> Vec<Vec<String>> {
    let c = sheet.currency;
    let mut rows = vec![header(&[
        "institution",
        "currency",
        "account",
        "account_type",
        "balance",
        "available",
        "posted_debits",
        "posted_credits",
        "pending_debits",
        "pending_credits",
    ])];
    for a in &sheet.accounts {
        rows.push(vec![
            sheet.institution.to_string(),
            c.code().to_string(),
            a.account.clone(),
            code(&a.account_type),
            format_minor(a.balance_minor, c),
            format_minor(a.available_minor, c),
            format_minor(a.totals.posted_debits_minor, c),
            format_minor(a.totals.posted_credits_minor, c),
            format_minor(a.totals.pending_debits_minor, c),
            format_minor(a.totals.pending_credits_minor, c),
        ]);
    }
    rows
}
