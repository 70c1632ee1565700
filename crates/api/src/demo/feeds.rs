//! The demo county's supervising bank: it registers every supervised
//! account and sends one end-of-term statement per account, built from what
//! really moved through it (receipts, confirmed releases and refunds,
//! deposits), as real MT940 and camt.053 files that go through the same
//! parse and ingest path as any bank's. Golden Path's bank also shows what
//! its books do not: money moved out of escrow that nobody instructed.

use std::collections::BTreeMap;

use bank_adapter::model::{Balance, Format, Line, SourceRef, Statement};
use chrono::NaiveDate;
use ledger_core::domain::feeds::{AccountKind, BankAccount};
use ledger_core::domain::money::minor_to_decimal;
use ledger_core::{AccountCode, Currency, Entry, EntryKind, Side, Store, SupervisionMode};

pub const BANK: &str = "PYB-DEMO";

/// The run-off: 30,000.00 moved out of Golden Path's escrow on 2026-11-05
/// (as the story is written).
const DIVERTED: (&str, i64, (i32, u32, u32)) = ("INS-410922-004", 3_000_000, (2026, 11, 5));

/// A written date of the story, as it happens (see `Story`).
type Days<'a> = &'a dyn Fn(i32, u32, u32) -> NaiveDate;

fn day(days: Days<'_>, (y, m, d): (i32, u32, u32)) -> NaiveDate {
    days(y, m, d)
}

fn account_no(institution: &str, kind: AccountKind) -> String {
    let n = &institution[institution.len().saturating_sub(3)..];
    match kind {
        AccountKind::Escrow => format!("62220409220{n}01"),
        AccountKind::Deposit => format!("62220409220{n}02"),
    }
}

fn line(
    amount_minor: i64,
    date: NaiveDate,
    e2e: Option<String>,
    bank_ref: String,
    remittance: &str,
) -> Line {
    Line::booked_transfer(
        minor_to_decimal(amount_minor, Currency::Cny),
        date,
        e2e,
        bank_ref,
        remittance.to_string(),
    )
}

/// What the bank saw on one account, from the ledger's own entries.
fn movements(
    entries: &[Entry],
    kind: AccountKind,
) -> Vec<(NaiveDate, i64, Option<String>, String)> {
    let cash = match kind {
        AccountKind::Escrow => AccountCode::EscrowCash,
        AccountKind::Deposit => AccountCode::DepositCash,
    };
    let by_seq: BTreeMap<i64, &Entry> = entries.iter().map(|e| (e.seq, e)).collect();
    let mut out = Vec::new();
    for e in entries {
        let Some(p) = e.postings.iter().find(|p| p.account == cash) else {
            continue;
        };
        let signed = if p.side == Side::Debit {
            p.amount.minor()
        } else {
            -p.amount.minor()
        };
        let date = e.occurred_at.date_naive();
        match e.kind {
            // A family's transfer names the order in its remittance text.
            EntryKind::TuitionPaid => {
                out.push((date, signed, None, format!("学费 tuition {}", e.client_id)))
            }
            EntryKind::DepositPaidIn => out.push((
                date,
                signed,
                Some(e.client_id.to_string()),
                "风险保证金 deposit".into(),
            )),
            // The bank executes our instruction: its id comes back as end-to-end id.
            EntryKind::PendingConfirmed => {
                let Some(target) = e.refers_to_seq.and_then(|s| by_seq.get(&s)) else {
                    continue;
                };
                let text = match target.kind {
                    EntryKind::ReleaseInstructed => "拨付 release",
                    _ => "退费 refund",
                };
                out.push((
                    date,
                    signed,
                    Some(target.client_id.to_string()),
                    text.into(),
                ));
            }
            _ => {}
        }
    }
    out.sort_by_key(|m| m.0);
    out
}

fn statement(
    days: Days<'_>,
    institution: &str,
    kind: AccountKind,
    moves: &[(NaiveDate, i64, Option<String>, String)],
) -> Statement {
    let opening = day(days, (2026, 8, 1));
    let mut total = 0;
    let mut lines = Vec::new();
    for (i, (date, amount, e2e, text)) in moves.iter().enumerate() {
        total += amount;
        lines.push(line(
            *amount,
            *date,
            e2e.clone(),
            format!("PYB{:08}", i + 1),
            text,
        ));
    }
    let mut extra = 0;
    if kind == AccountKind::Escrow && institution == DIVERTED.0 {
        extra = -DIVERTED.1;
        lines.push(line(
            extra,
            day(days, DIVERTED.2),
            None,
            "PYB99000001".into(),
            "转账 transfer",
        ));
    }
    let account = account_no(institution, kind);
    Statement {
        format: Format::Mt940,
        account: account.clone(),
        currency: "CNY".into(),
        statement_id: format!("{}-TERM", &account[account.len() - 5..]),
        sequence: Some("1/1".into()),
        opening_balance: Some(Balance {
            amount: minor_to_decimal(0, Currency::Cny),
            date: opening,
        }),
        closing_balance: Some(Balance {
            amount: minor_to_decimal(total + extra, Currency::Cny),
            date: day(days, super::LAST_DAY),
        }),
        lines,
        source: SourceRef::unwritten(),
    }
}

fn kinds(mode: SupervisionMode) -> &'static [AccountKind] {
    match mode {
        SupervisionMode::Custody => &[AccountKind::Escrow],
        SupervisionMode::Deposit => &[AccountKind::Deposit],
        SupervisionMode::Both => &[AccountKind::Escrow, AccountKind::Deposit],
    }
}

fn bank_account(institution: &ledger_core::InstitutionId, kind: AccountKind) -> BankAccount {
    BankAccount {
        institution: institution.clone(),
        bank: BANK.into(),
        account_no: account_no(institution.as_str(), kind),
        kind,
        currency: Currency::Cny,
    }
}

/// Half the accounts report in MT940, half in camt.053.
fn file(s: Statement, k: usize) -> Vec<u8> {
    if k.is_multiple_of(2) {
        bank_adapter::render::mt940::mt940(&[s])
    } else {
        bank_adapter::render::camt053::camt053(&[Statement {
            format: Format::Camt053,
            ..s
        }])
    }
    .into_bytes()
}

/// The day the story already held in the store ends on: the closing date
/// of the first account's term statement; none before the demo is built.
pub async fn story_end(store: &Store) -> anyhow::Result<Option<NaiveDate>> {
    let first = ledger_core::InstitutionId::parse(super::PLANS[0].id)?;
    if !store.institutions().await?.iter().any(|i| i.id == first) {
        return Ok(None);
    }
    let held = store
        .statement_lines(&bank_account(&first, AccountKind::Escrow))
        .await?;
    Ok(held
        .statements
        .first()
        .and_then(|s| s.closing)
        .map(|(_, date)| date))
}

/// Brings every demo account's statements up to `through` with one
/// statement without movements each, from its last closing; returns how
/// many accounts it brought up to date.
pub async fn send_quiet_days(store: &Store, through: NaiveDate) -> anyhow::Result<usize> {
    let mut sent = 0;
    for institution in store.institutions().await? {
        if institution.jurisdiction.as_str() != super::COUNTY {
            continue;
        }
        for (k, kind) in kinds(institution.mode).iter().enumerate() {
            let account = bank_account(&institution.id, *kind);
            let Some(last) = store.statement_lines(&account).await?.closing else {
                continue;
            };
            if last.date >= through {
                continue;
            }
            let balance = |date| {
                Some(Balance {
                    amount: minor_to_decimal(last.balance_minor, Currency::Cny),
                    date,
                })
            };
            let no = account.account_no.clone();
            let quiet = Statement {
                format: Format::Mt940,
                account: no.clone(),
                currency: "CNY".into(),
                statement_id: format!("{}-{}", &no[no.len() - 5..], through.format("%Y%m%d")),
                sequence: Some("1/1".into()),
                opening_balance: balance(last.date),
                closing_balance: balance(through),
                lines: Vec::new(),
                source: SourceRef::unwritten(),
            };
            crate::app::feeds::ingest_bytes(store, BANK, &file(quiet, k))
                .await
                .map_err(|e| anyhow::anyhow!("demo statement of {}: {e}", institution.id))?;
            sent += 1;
        }
    }
    Ok(sent)
}

pub async fn send(store: &Store, days: impl Fn(i32, u32, u32) -> NaiveDate) -> anyhow::Result<()> {
    crate::app::feeds::register_bank(store, BANK, "Puyang Bank (demo)").await?;
    for institution in store.institutions().await? {
        let kinds = kinds(institution.mode);
        let mut entries = Vec::new();
        let mut after = 0;
        loop {
            let page = store.entries(&institution.id, after, 1_000).await?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            entries.extend(page);
        }
        for (k, kind) in kinds.iter().enumerate() {
            let account = bank_account(&institution.id, *kind);
            crate::app::feeds::register_account(store, &account).await?;
            let s = statement(
                &days,
                institution.id.as_str(),
                *kind,
                &movements(&entries, *kind),
            );
            crate::app::feeds::ingest_bytes(store, BANK, &file(s, k))
                .await
                .map_err(|e| anyhow::anyhow!("demo statement of {}: {e}", institution.id))?;
        }
    }
    Ok(())
}
