//! What a recording run of reconciliation books, decided from the matcher's
//! outcome: the matches it keeps (their claims make a re-run skip what is
//! settled), the credits nobody can attribute (booked to suspense), the
//! pending instructions the bank executed (confirmed) or returned (voided,
//! with a red alert: the money is still owed). Only end-of-day lines
//! outside quarantine are booked from.
//!
//! Every request has a client id fixed by what it books (the line, the
//! entry), so a run repeated after a crash replays instead of booking twice.

use std::collections::{BTreeMap, BTreeSet};

use sha2::{Digest, Sha256};

use crate::domain::alerts::Finding;
use crate::domain::entry::{Command, Entry, EntryKind, Request};
use crate::domain::error::LedgerError;
use crate::domain::feeds::{AccountKind, BankAccount};
use crate::domain::ids::ClientId;
use crate::domain::money::format_minor;
use crate::domain::recon::account::{quarantined, Quarantine, StatementLine};
use crate::domain::recon::{LineStatus, Match, Reason, ReconcileOutcome};

/// A match to keep: its claims on bank lines and entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptMatch {
    /// Deterministic (from its bank lines), so a re-run finds it again.
    pub match_id: String,
    /// The matcher's pass, or `suspense`.
    pub pass: &'static str,
    /// Automatic, or a suggestion for an officer.
    pub automatic: bool,
    pub explanation: String,
    /// (statement key, line number)
    pub lines: Vec<(String, i64)>,
    /// Entry seqs.
    pub entries: Vec<i64>,
}

/// The lines a recording run may book from: not claimed by a kept match,
/// not waiting in quarantine.
pub fn open_lines(
    lines: &[StatementLine],
    claimed: &BTreeSet<(String, i64)>,
    quarantine: Option<&Quarantine>,
) -> Vec<StatementLine> {
    lines
        .iter()
        .filter(|l| !claimed.contains(&(l.statement_key.clone(), l.line_no)))
        .filter(|l| !quarantined(quarantine, l))
        .cloned()
        .collect()
}

/// The matches and suggestions of an outcome over `open_lines`, to keep.
pub fn kept_matches(
    account: &BankAccount,
    open_lines: &[StatementLine],
    outcome: &ReconcileOutcome,
) -> Vec<KeptMatch> {
    let key = |id: u64| {
        let l = &open_lines[id as usize];
        (l.statement_key.clone(), l.line_no)
    };
    let kept = |m: &Match, automatic: bool| {
        let lines: Vec<(String, i64)> = m.lines.iter().map(|i| key(*i)).collect();
        let ids: Vec<String> = lines.iter().map(|(k, n)| format!("{k}#{n}")).collect();
        KeptMatch {
            match_id: format!("{}/{}/{}", account.bank, account.account_no, ids.join(",")),
            pass: m.pass.code(),
            automatic,
            explanation: m.explanation.clone(),
            lines,
            entries: m.transfers.iter().map(|t| *t as i64).collect(),
        }
    };
    outcome
        .matches
        .iter()
        .map(|m| kept(m, true))
        .chain(outcome.suggestions.iter().map(|m| kept(m, false)))
        .collect()
}

/// A credit booked to suspense, and the line it claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuspenseReceipt {
    pub request: Request,
    /// `bank/account/statement#line`: the kept match's id.
    pub line_key: String,
    pub statement_key: String,
    pub line_no: i64,
}

impl SuspenseReceipt {
    /// The match that claims the line for the entry the receipt booked.
    pub fn kept(&self, entry: &Entry) -> KeptMatch {
        KeptMatch {
            match_id: self.line_key.clone(),
            pass: "suspense",
            automatic: true,
            explanation: format!(
                "no entry matches this credit: booked to unidentified as {}",
                entry.client_id
            ),
            lines: vec![(self.statement_key.clone(), self.line_no)],
            entries: vec![entry.seq],
        }
    }
}

/// Whether an unmatched line is a credit nobody can attribute: booked
/// money in with no candidate at all, on the supervised (escrow) account.
/// It is still money held for families, so it goes to suspense.
pub fn goes_to_suspense(kind: AccountKind, line: &StatementLine, reason: &Reason) -> bool {
    kind == AccountKind::Escrow
        && matches!(reason, Reason::NoCandidate)
        && line.amount_minor > 0
        && line.status == LineStatus::Booked
}

/// The credits of an outcome over `open_lines` to book to suspense
/// (unidentified), each under a client id derived from its line.
pub fn suspense_receipts(
    account: &BankAccount,
    open_lines: &[StatementLine],
    outcome: &ReconcileOutcome,
) -> Result<Vec<SuspenseReceipt>, LedgerError> {
    let mut out = Vec::new();
    for (id, reason) in &outcome.unmatched_lines {
        let l = &open_lines[*id as usize];
        if !goes_to_suspense(account.kind, l, reason) {
            continue;
        }
        let line_key = format!(
            "{}/{}/{}#{}",
            account.bank, account.account_no, l.statement_key, l.line_no
        );
        let digest = hex::encode(Sha256::digest(line_key.as_bytes()));
        out.push(SuspenseReceipt {
            request: Request {
                institution: account.institution.clone(),
                client_id: ClientId::parse(format!("suspense-{}", &digest[..32]))?,
                currency: account.currency,
                occurred_at: l
                    .day()
                    .unwrap_or_default()
                    .and_hms_opt(0, 0, 0)
                    .unwrap_or_default()
                    .and_utc(),
                external_ref: l.bank_ref.clone().or(l.end_to_end_id.clone()),
                command: Command::RecordUnidentifiedReceipt {
                    amount_minor: l.amount_minor,
                },
            },
            line_key,
            statement_key: l.statement_key.clone(),
            line_no: l.line_no,
        });
    }
    Ok(out)
}

/// A pending instruction (release, refund, deposit return) that no entry
/// has confirmed or voided yet.
fn unresolved_instruction(e: &Entry, resolved: &BTreeSet<i64>) -> bool {
    matches!(
        e.kind,
        EntryKind::ReleaseInstructed
            | EntryKind::RefundPaymentInstructed
            | EntryKind::DepositReturnInstructed
    ) && !resolved.contains(&e.seq)
}

fn resolved(entries: &[Entry]) -> BTreeSet<i64> {
    entries
        .iter()
        .filter(|e| {
            matches!(
                e.kind,
                EntryKind::PendingConfirmed | EntryKind::PendingVoided
            )
        })
        .filter_map(|e| e.refers_to_seq)
        .collect()
}

/// What the bank executed: each unresolved pending instruction in an
/// automatic match is confirmed, on the day of its bank line.
pub fn confirmations(
    account: &BankAccount,
    open_lines: &[StatementLine],
    outcome: &ReconcileOutcome,
    entries: &[Entry],
) -> Result<Vec<Request>, LedgerError> {
    let resolved = resolved(entries);
    let by_seq: BTreeMap<i64, &Entry> = entries.iter().map(|e| (e.seq, e)).collect();
    let mut out = Vec::new();
    for m in &outcome.matches {
        let date = m
            .lines
            .first()
            .and_then(|i| open_lines[*i as usize].booking_date);
        for t in &m.transfers {
            let Some(e) = by_seq.get(&(*t as i64)) else {
                continue;
            };
            if !unresolved_instruction(e, &resolved) {
                continue;
            }
            let on = date.unwrap_or_else(|| e.occurred_at.date_naive());
            out.push(Request {
                institution: account.institution.clone(),
                client_id: ClientId::parse(format!("recon-confirm-{}", e.seq))?,
                currency: account.currency,
                occurred_at: on.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc(),
                external_ref: None,
                command: Command::ConfirmPending {
                    pending: e.client_id.clone(),
                },
            });
        }
    }
    Ok(out)
}

/// What the bank returned (the line came and was reversed): the
/// instruction did not execute, so its pending entry is voided.
pub fn voids(
    account: &BankAccount,
    outcome: &ReconcileOutcome,
    entries: &[Entry],
) -> Result<Vec<Request>, LedgerError> {
    let resolved = resolved(entries);
    let by_seq: BTreeMap<i64, &Entry> = entries.iter().map(|e| (e.seq, e)).collect();
    let mut out = Vec::new();
    for (t, reason) in &outcome.unmatched_transfers {
        if !matches!(reason, Reason::Returned { .. }) {
            continue;
        }
        let Some(e) = by_seq.get(&(*t as i64)) else {
            continue;
        };
        if unresolved_instruction(e, &resolved) {
            out.push(Request {
                institution: account.institution.clone(),
                client_id: ClientId::parse(format!("recon-void-{}", e.seq))?,
                currency: account.currency,
                occurred_at: e.occurred_at,
                external_ref: None,
                command: Command::VoidPending {
                    pending: e.client_id.clone(),
                },
            });
        }
    }
    Ok(out)
}

/// A returned instruction still owes its money: a red alert for each void
/// (the same alert the refund workflow raises when the bank rejects an
/// instruction).
pub fn returned_findings(
    account: &BankAccount,
    voids: &[Request],
    entries: &[Entry],
) -> Vec<Finding> {
    let mut out = Vec::new();
    for v in voids {
        let Command::VoidPending { pending } = &v.command else {
            continue;
        };
        let e = entries.iter().find(|e| &e.client_id == pending);
        let amount = e
            .and_then(|e| e.postings.first())
            .map_or(0, |p| p.amount_minor);
        out.push(Finding {
            key: format!("instruction_returned:{pending}"),
            kind: "instruction_returned".into(),
            severity: "red".into(),
            summary: format!(
                "the bank returned {} {pending} ({} {}) on account {}: the pending entry was voided, the money is still owed",
                e.map_or("instruction", |e| e.kind.code()),
                format_minor(amount, account.currency),
                account.currency.code(),
                account.account_no
            ),
            evidence: serde_json::json!([{ "type": "instruction", "id": pending.as_str(),
                                           "account": account.account_no }])
            .to_string(),
            rule_pack: "reconciliation".into(),
        });
    }
    out
}
