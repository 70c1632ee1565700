//! An institution's books as a plain-text double-entry journal in hledger's
//! format, for auditors: one transaction per entry, dated the day the money
//! moved, each posting signed as hledger reads it (debits positive, credits
//! negative) with the currency code as commodity. Instructions the bank has
//! not yet confirmed (and instructions voided) move no posted balance, so
//! they are written pending (`!`) with their postings as comments; every
//! other entry is cleared (`*`). `hledger bal --cleared` therefore gives the
//! ledger's posted balances, account by account. Pure: a string from entries.

use std::fmt::Write as _;

use crate::domain::accounts::{AccountCode, AccountType, Side};
use crate::domain::entry::{Entry, Phase};
use crate::domain::money::{format_minor, Currency};

/// The hledger account name of a ledger account: its type as the top
/// level, `/` as `:` (`prepaid/E1` → `liabilities:prepaid:E1`).
pub fn account_name(account: &AccountCode) -> String {
    let top = match account.account_type() {
        AccountType::Asset => "assets",
        AccountType::Liability => "liabilities",
    };
    format!("{top}:{}", account.to_string().replace('/', ":"))
}

/// hledger keeps no `;` or newline inside a description: they would start
/// a comment or a new line.
fn clean(text: &str) -> String {
    text.chars()
        .map(|c| {
            if matches!(c, ';' | '(' | ')') || c.is_control() {
                ' '
            } else {
                c
            }
        })
        .collect()
}

/// The journal of `entries` (by seq), headed by the institution's name.
pub fn hledger(title: &str, currency: Currency, entries: &[Entry]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "; {}", clean(title));
    let _ = writeln!(
        out,
        "; cleared (*) transactions are the posted books; pending (!) ones are \
         instructions the bank has not confirmed (or voided), their postings commented\n"
    );
    let _ = writeln!(out, "commodity 1,000.00 {}\n", currency.code());
    let mut ordered: Vec<&Entry> = entries.iter().collect();
    ordered.sort_by_key(|e| e.seq);
    for e in ordered {
        let moves_posted = matches!(e.kind.phase(), Phase::Posted | Phase::PostPending);
        let _ = writeln!(
            out,
            "{} {} ({}) {}  ; seq:{}",
            e.occurred_at.date_naive().format("%Y-%m-%d"),
            if moves_posted { '*' } else { '!' },
            clean(e.client_id.as_str()),
            e.kind.code(),
            e.seq
        );
        for p in &e.postings {
            let minor = match p.side {
                Side::Debit => p.amount.minor(),
                Side::Credit => -p.amount.minor(),
            };
            let line = format!(
                "{:<48}  {:>14} {}",
                account_name(&p.account),
                format_minor(minor, e.currency),
                e.currency.code()
            );
            if moves_posted {
                let _ = writeln!(out, "    {line}");
            } else {
                let _ = writeln!(out, "    ; {line}");
            }
        }
        if !moves_posted {
            // A transaction needs postings: a pending one balances at zero
            // on an account of its own.
            let _ = writeln!(out, "    equity:pending  0 {}", e.currency.code());
        }
        out.push('\n');
    }
    out
}
