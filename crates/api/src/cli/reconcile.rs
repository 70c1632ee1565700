//! `escrow-ledger reconcile`: renders the reconciliation use cases
//! (`app::reconcile`) for the command line. For each supervised account and
//! each statement day, the three figures (the bank's closing balance, the
//! ledger's balance at the end of that day, what the books say is owed),
//! and every bank line matched to the ledger, suggested, or left unmatched
//! with its reason. `--record` keeps the matches, confirms what the bank
//! executed, voids what it returned and books unattributed credits to
//! suspense.

use std::process::ExitCode;

use chrono::NaiveDate;
use ledger_core::InstitutionId;
use ledger_core::Store;
use serde::Serialize;

use crate::app::reconcile::{self, AccountReconciliation, RecordedAccount};

/// `--json`: `{"accounts": [...]}`, keys in alphabetical order as always.
fn print_accounts<T: Serialize>(accounts: &[T]) -> anyhow::Result<()> {
    let doc = serde_json::json!({ "accounts": serde_json::to_value(accounts)? });
    println!("{}", serde_json::to_string_pretty(&doc)?);
    Ok(())
}

fn scope(institution: Option<String>) -> anyhow::Result<Option<InstitutionId>> {
    Ok(institution.map(InstitutionId::parse).transpose()?)
}

pub async fn run(
    store: &Store,
    institution: Option<String>,
    until: Option<NaiveDate>,
    json_out: bool,
) -> anyhow::Result<ExitCode> {
    let reports = reconcile::report(store, scope(institution)?.as_ref(), until).await?;
    if json_out {
        print_accounts(&reports)?;
        return Ok(ExitCode::SUCCESS);
    }
    if reports.is_empty() {
        println!("no supervised accounts registered (see `escrow-ledger bank account`)");
    }
    for r in &reports {
        print_report(r);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_report(r: &AccountReconciliation) {
    println!(
        "{} {} account {} at {}: bank closing {} | ledger {} | owed {} | bank - ledger {}",
        r.institution,
        r.kind,
        r.account,
        r.bank,
        r.bank_closing
            .as_ref()
            .map_or("none received".to_string(), |c| format!(
                "{} on {}",
                c.amount, c.date
            )),
        r.ledger_balance,
        r.owed,
        r.bank_minus_ledger.as_deref().unwrap_or("-"),
    );
    if let Some(q) = &r.quarantine {
        println!("  QUARANTINED from {}: {}", q.from, q.explanation);
    }
    for d in &r.days {
        println!(
            "  {} bank {:>14} | ledger {:>14} | owed {:>14} | bank - ledger {:>12}  {}",
            d.date, d.bank_closing, d.ledger_balance, d.owed, d.bank_minus_ledger, d.status
        );
    }
    for m in &r.provisional.matches {
        println!(
            "  provisional [{}] {} (until the end-of-day statement confirms it)",
            m.pass, m.explanation
        );
    }
    for (label, list) in [("matched", &r.matches), ("suggested", &r.suggestions)] {
        for m in list {
            println!("  {label:<9} [{}] {}", m.pass, m.explanation);
        }
    }
    for l in &r.unmatched_lines {
        let flag = if l.unauthorized_outflow {
            "  << UNAUTHORIZED OUTFLOW"
        } else {
            ""
        };
        println!(
            "  unmatched line {} #{} {} on {}: {}{flag}",
            l.statement,
            l.line,
            l.amount,
            l.date.map_or("-".to_string(), |d| d.to_string()),
            l.reason
        );
    }
    for e in &r.unmatched_entries {
        println!(
            "  no bank line yet for entry {} ({}): {}",
            e.client_id.as_deref().unwrap_or(""),
            e.kind.as_deref().unwrap_or(""),
            e.reason
        );
    }
}

/// `reconcile --record`.
pub async fn record(
    store: &Store,
    institution: Option<String>,
    until: Option<NaiveDate>,
    json_out: bool,
) -> anyhow::Result<ExitCode> {
    let reports = reconcile::record(store, scope(institution)?.as_ref(), until).await?;
    if json_out {
        print_accounts(&reports)?;
        return Ok(ExitCode::SUCCESS);
    }
    for r in &reports {
        print_recorded(r);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_recorded(r: &RecordedAccount) {
    println!(
        "{} account {} at {}: {} matches kept ({} kept before), {} instructions confirmed by the bank, {} credits booked to suspense, {} unauthorized outflows",
        r.institution,
        r.account,
        r.bank,
        r.matches_kept,
        r.matches_already_kept,
        r.instructions_confirmed,
        r.credits_to_suspense,
        r.unauthorized_outflows
    );
}
