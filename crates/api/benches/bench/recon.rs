//! `bench reconcile` and `bench risk`: the pure engines on
//! generated data, each against a baseline in the same run. Reconciliation:
//! N bank lines against N ledger transfers (mostly exact end-to-end ids,
//! some order numbers in remittance text, some unmatched), against a plain
//! hash join on the end-to-end id. Risk: the signals of N institutions
//! against building their snapshots (the floor any evaluation sits on).

use std::collections::HashMap;
use std::time::Instant;

use chrono::{Days, NaiveDate};
use ledger_core::domain::recon::{
    self, BankLine, LedgerTransfer, LineStatus, MatchConfig, TransferKind,
};

/// A figure of /proc/self/status (`VmHWM`, `VmRSS`), in MiB.
fn status_mib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.strip_prefix(field).is_some_and(|r| r.starts_with(':')))
                .and_then(|l| {
                    l.split_whitespace()
                        .nth(1)
                        .and_then(|v| v.parse::<u64>().ok())
                })
        })
        .unwrap_or(0)
        / 1024
}

/// The process's peak resident memory since it started, or since
/// [`reset_peak_rss`].
pub(super) fn peak_rss_mib() -> u64 {
    status_mib("VmHWM")
}

/// The process's resident memory now.
pub(super) fn rss_mib() -> u64 {
    status_mib("VmRSS")
}

/// Starts the peak over from the memory resident now (Linux: "5" written
/// to /proc/self/clear_refs), so a phase's own peak can be read; false
/// where the kernel does not allow it.
pub(super) fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

pub(super) fn rate(n: usize, micros: u128) -> u128 {
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
    let outcome = recon::reconcile(&lines, &transfers, &MatchConfig::default())
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

/// One generated institution's snapshot: 120 days of activity, both
/// supervised accounts reporting daily, 1 in 100 with money gone uninstructed.
fn risk_input(n: usize, as_of: NaiveDate) -> anyhow::Result<ledger_core::domain::risk::RiskInput> {
    use ledger_core::domain::feeds::AccountKind;
    use ledger_core::domain::risk::{
        BankLine as RiskLine, Closing, DayFigures, LedgerFigures, PackageCounts, RiskInput,
        SupervisedAccount,
    };
    use ledger_core::{
        Category, Currency, Institution, InstitutionId, InstitutionStatus, JurisdictionCode,
        SupervisionMode,
    };
    let daily = 100_000 + (n % 50) as i64 * 1_000;
    let escrow = 40_000_000;
    let first = as_of - Days::new(119);
    let days: Vec<DayFigures> = (0..120)
        .map(|k| DayFigures {
            date: first + Days::new(k),
            collections_reported_minor: daily,
            collections_into_escrow_minor: daily,
            consumed_minor: daily,
            consumed_hours: 40,
            released_minor: daily,
            refunds_paid_minor: 0,
            bank_debits_minor: daily,
            bank_credits_minor: daily,
        })
        .collect();
    let closings = |balance_minor| {
        vec![Closing {
            date: as_of,
            balance_minor,
        }]
    };
    let chain = [JurisdictionCode::national()];
    Ok(RiskInput {
        as_of,
        institution: Institution {
            id: InstitutionId::parse(format!("BENCH-{n:06}"))?,
            name: format!("Bench {n}"),
            licence_no: "L".into(),
            jurisdiction: JurisdictionCode::parse("410922")?,
            mode: SupervisionMode::Both,
            category: Category::NonSubject,
            status: InstitutionStatus::Active,
            currency: Currency::Cny,
        },
        rules: ledger_core::domain::policy::resolve(&chain, &[], as_of),
        calendar: ledger_core::domain::policy::Calendar::default(),
        history_from: first,
        ledger: LedgerFigures {
            unearned_prepaid_minor: 30_000_000,
            releasable_minor: 1_000_000,
            escrow_cash_minor: escrow,
            deposit_cash_minor: 20_000_000,
            collections_12m_minor: 365 * daily,
            ..Default::default()
        },
        ledger_at_statements: None,
        accounts: vec![
            SupervisedAccount {
                kind: AccountKind::Escrow,
                account_no: "E".into(),
                closings: closings(escrow),
                chain_break: None,
                registered_on: None,
            },
            SupervisedAccount {
                kind: AccountKind::Deposit,
                account_no: "D".into(),
                closings: closings(20_000_000),
                chain_break: None,
                registered_on: None,
            },
        ],
        days,
        packages: PackageCounts {
            recent_sold: 100,
            recent_at_cap: 10,
            baseline_sold: 300,
            baseline_at_cap: 30,
        },
        families: Default::default(),
        bank_debits: vec![],
        unauthorized_outflows: if n % 100 == 7 {
            vec![RiskLine {
                line_id: format!("L-{n}"),
                account: AccountKind::Escrow,
                bank_ref: None,
                date: as_of,
                amount_minor: 3_000_000,
                balance_before_minor: Some(escrow),
            }]
        } else {
            vec![]
        },
        balance_mismatches: vec![],
        release_findings: vec![],
        refund_requests: vec![],
        cap_flags: vec![],
        events: vec![],
        confirmations: Default::default(),
        instructed_debits: vec![],
        pending_instructions: vec![],
        peers: None,
    })
}

pub fn risk_bench(n: usize) -> anyhow::Result<()> {
    let as_of = NaiveDate::from_ymd_opt(2026, 11, 7).unwrap_or_default();
    let (mut build, mut evaluate) = (0u128, 0u128);
    let mut flagged = 0usize;
    let mut signals = 0usize;
    for i in 0..n {
        let started = Instant::now();
        let input = risk_input(i, as_of)?;
        build += started.elapsed().as_nanos();
        let started = Instant::now();
        let a = ledger_core::domain::risk::evaluate(&input);
        evaluate += started.elapsed().as_nanos();
        flagged += usize::from(a.score > 0);
        signals += a.signals.len();
    }
    println!("| institutions | flagged | signals | evaluate seconds | institutions/s | build snapshot seconds | evaluate / build | peak RSS MiB |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {n} | {flagged} | {signals} | {}.{:03} | {} | {}.{:03} | {}% | {} |",
        evaluate / 1_000_000_000,
        (evaluate / 1_000_000) % 1_000,
        rate(n, evaluate / 1_000),
        build / 1_000_000_000,
        (build / 1_000_000) % 1_000,
        evaluate * 100 / build.max(1),
        peak_rss_mib()
    );
    Ok(())
}
