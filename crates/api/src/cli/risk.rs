//! `escrow-ledger risk`: renders the risk scan (`app::risk`) for the
//! command line: the jurisdiction's institutions riskiest first, and what
//! keeping the signals as alerts did; `--fail-on` gates a pipeline on it.

use std::process::ExitCode;

use chrono::NaiveDate;
use ledger_core::domain::risk::{Assessment, Severity};
use ledger_core::{JurisdictionCode, Store};
use serde_json::json;

use crate::app::risk::{self, Scan};
use crate::app::Kind;

pub async fn run(
    store: &Store,
    jurisdiction: Option<String>,
    as_of: Option<NaiveDate>,
    json_out: bool,
) -> anyhow::Result<ExitCode> {
    run_and_record(store, jurisdiction, as_of, json_out, false, None).await
}

/// The severity from which `risk --fail-on` makes the command fail, so a
/// cron job or a pipeline can gate on the scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FailOn {
    /// Fail if any institution has a red signal.
    Red,
    /// Fail if any institution has a red or yellow signal.
    Yellow,
}

/// The exit code of a scan that found what `--fail-on` names.
pub const FOUND_EXIT_CODE: u8 = 3;

fn gate(ranked: &[Assessment], fail_on: Option<FailOn>) -> ExitCode {
    let found = |severity: Severity| {
        ranked
            .iter()
            .flat_map(|a| &a.signals)
            .any(|s| s.severity == severity)
    };
    let failed = match fail_on {
        None => false,
        Some(FailOn::Red) => found(Severity::Red),
        Some(FailOn::Yellow) => found(Severity::Red) || found(Severity::Yellow),
    };
    if failed {
        ExitCode::from(FOUND_EXIT_CODE)
    } else {
        ExitCode::SUCCESS
    }
}

pub async fn run_and_record(
    store: &Store,
    jurisdiction: Option<String>,
    as_of: Option<NaiveDate>,
    json_out: bool,
    record: bool,
    fail_on: Option<FailOn>,
) -> anyhow::Result<ExitCode> {
    let code = jurisdiction.map(JurisdictionCode::parse).transpose()?;
    let scan = match risk::scan(store, code, as_of, record).await {
        Ok(scan) => scan,
        Err(e) if e.kind() == Kind::NotFound => {
            anyhow::bail!("{e} (`escrow-ledger jurisdiction list` shows those that do)")
        }
        Err(e) => return Err(e.into()),
    };
    if json_out {
        print_json(&scan, record)?;
    } else {
        print_text(&scan);
    }
    Ok(gate(&scan.ranked, fail_on))
}

/// `--json`: the assessments as the engine made them (amounts in minor
/// units), keys in alphabetical order as always.
fn print_json(scan: &Scan, record: bool) -> anyhow::Result<()> {
    let institutions: Vec<_> = scan
        .ranked
        .iter()
        .map(|a| {
            json!({
                "id": a.institution, "name": a.name, "jurisdiction": a.jurisdiction,
                "score": a.score,
                "coverage_ratio": a.coverage_bp.and_then(|bp| i64::try_from(bp).ok())
                    .map(|bp| rust_decimal::Decimal::new(bp, 4).to_string()),
                "signals": a.signals.iter().map(|s| json!({
                    "kind": s.kind.code(), "severity": s.severity, "summary": s.summary,
                    "evidence": s.evidence, "rule_pack": s.rule_pack,
                })).collect::<Vec<_>>(),
                "not_evaluated": a.not_evaluated,
            })
        })
        .collect();
    let mut doc = json!({ "as_of": scan.as_of, "institutions": institutions });
    if record {
        doc["recorded"] = json!(scan
            .recorded
            .iter()
            .map(|(i, r)| json!({ "institution": i, "alerts": r }))
            .collect::<Vec<_>>());
    }
    println!("{}", serde_json::to_string_pretty(&doc)?);
    Ok(())
}

fn print_text(scan: &Scan) {
    println!(
        "risk as of {}, jurisdiction {}, riskiest first",
        scan.as_of, scan.scope
    );
    for a in &scan.ranked {
        let coverage = a
            .coverage_bp
            .and_then(|bp| i64::try_from(bp).ok())
            .map_or("-".to_string(), |bp| {
                format!("{}%", rust_decimal::Decimal::new(bp, 2))
            });
        println!(
            "{:>3}  {} {}  (coverage {coverage})",
            a.score, a.institution, a.name
        );
        for s in &a.signals {
            println!("       {:?} {}: {}", s.severity, s.kind.code(), s.summary);
        }
        if !a.not_evaluated.is_empty() {
            println!(
                "       ({} checks could not run for lack of data; --json says which and why)",
                a.not_evaluated.len()
            );
        }
    }
    for (institution, r) in &scan.recorded {
        if (r.raised + r.updated + r.reopened) > 0 {
            println!(
                "alerts of {institution}: {} raised, {} updated, {} reopened, {} unchanged",
                r.raised, r.updated, r.reopened, r.unchanged
            );
        }
    }
}
