//! `escrow-ledger bench reconcile` and `bench risk`: the pure engines on
//! generated data, each against a baseline in the same run. Reconciliation:
//! N bank lines against N ledger transfers (mostly exact end-to-end ids,
//! some order numbers in remittance text, some unmatched), against a plain
//! hash join on the end-to-end id. Risk: the signals of N institutions
//! against building their snapshots (the floor any evaluation sits on).

use std::collections::HashMap;
use std::time::Instant;

use bank_adapter::reconcile::{
    self, BankLine, LedgerTransfer, LineStatus, MatchConfig, TransferKind,
};
use chrono::{Days, NaiveDate};

fn peak_rss_mib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<u64>().ok())
            })
        })
        .unwrap_or(0)
        / 1024
}

fn rate(n: usize, micros: u128) -> u128 {
    n as u128 * 1_000_000 / micros.max(1)
}

pub fn reconcile_bench(n: usize) -> anyhow::Result<()> {
    let start = NaiveDate::from_ymd_opt(2026, 9, 1).unwrap_or_default();
    let mut lines = Vec::with_capacity(n);
    let mut transfers = Vec::with_capacity(n);
    for i in 0..n {
        let date = start + Days::new((i % 60) as u64);
        let order = format!("ORD{:09}", i);
        let (amount, kind) = if i % 3 == 0 {
            (-((i % 40_000) as i64 + 100), TransferKind::Release)
        } else {
            ((i % 480_000) as i64 + 100, TransferKind::Receipt)
        };
        transfers.push(LedgerTransfer {
            id: i as u64,
            amount_minor: amount,
            date,
            references: vec![format!("E2E-{i:010}"), order.clone()],
            counterparty: None,
            kind,
        });
        // 90% exact ids, 8% the order number in remittance text, 2% nothing.
        let (e2e, remittance) = match i % 50 {
            0 => (None, Some("TRANSFER".to_string())),
            1..=4 => (None, Some(format!("TUITION {order} AUTUMN"))),
            _ => (Some(format!("E2E-{i:010}")), None),
        };
        lines.push(BankLine {
            id: i as u64,
            amount_minor: amount,
            booking_date: date,
            value_date: Some(date),
            status: LineStatus::Booked,
            end_to_end_id: e2e,
            bank_ref: Some(format!("B{i:012}")),
            remittance,
            counterparty_name: None,
            counterparty_account: None,
            reversal: false,
        });
    }
    let started = Instant::now();
    let by_id: HashMap<&str, &LedgerTransfer> = transfers
        .iter()
        .map(|t| (t.references[0].as_str(), t))
        .collect();
    let joined = lines
        .iter()
        .filter(|l| {
            l.end_to_end_id
                .as_deref()
                .and_then(|id| by_id.get(id))
                .is_some_and(|t| t.amount_minor == l.amount_minor)
        })
        .count();
    let join = started.elapsed().as_micros();
    std::hint::black_box(joined);

    let started = Instant::now();
    let outcome = reconcile::reconcile(&lines, &transfers, &MatchConfig::default())
        .map_err(|e| anyhow::anyhow!("[{}] {e}", e.code()))?;
    let took = started.elapsed().as_micros();
    let matched: usize = outcome.matches.iter().map(|m| m.lines.len()).sum();
    println!("| lines | transfers | matched automatically | suggested | unmatched lines | seconds | lines/s | hash-join lines/s | engine / join | peak RSS MiB (inputs included) |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {n} | {n} | {matched} | {} | {} | {}.{:03} | {} | {} | {}% | {} |",
        outcome.suggestions.len(),
        outcome.unmatched_lines.len(),
        took / 1_000_000,
        (took / 1_000) % 1_000,
        rate(n, took),
        rate(n, join),
        join * 100 / took.max(1),
        peak_rss_mib()
    );
    Ok(())
}
