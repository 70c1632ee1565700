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

use crate::domain::alerts::{AlertKind, Finding, Severity};
use crate::domain::entry::{Command, Entry, EntryKind, Request};
use crate::domain::error::LedgerError;
use crate::domain::feeds::{AccountKind, BankAccount};
use crate::domain::ids::ClientId;
use crate::domain::money::{format_minor, Amount};
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
                    amount: Amount::from_minor(l.amount_minor)?,
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
            .map_or(0, |p| p.amount.minor());
        out.push(Finding {
            key: format!("instruction_returned:{pending}"),
            kind: AlertKind::InstructionReturned,
            severity: Severity::Red,
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

#[cfg(test)]
mod tests {
    use chrono::{NaiveDate, TimeZone, Utc};

    use super::*;
    use crate::domain::accounts::Side;
    use crate::domain::entry::Posting;
    use crate::domain::ids::InstitutionId;
    use crate::domain::money::Currency;
    use crate::domain::recon::Pass;

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 5, d).unwrap()
    }

    fn account(kind: AccountKind) -> BankAccount {
        BankAccount {
            institution: InstitutionId::parse("INS-1".to_string()).unwrap(),
            bank: "B".into(),
            account_no: "A1".into(),
            kind,
            currency: Currency::Cny,
        }
    }

    fn line(no: i64, amount_minor: i64, status: LineStatus) -> StatementLine {
        StatementLine {
            statement_key: "S1".into(),
            line_no: no,
            amount_minor,
            booking_date: Some(day(4)),
            value_date: None,
            status,
            bank_ref: Some(format!("REF{no}")),
            end_to_end_id: None,
            remittance: None,
            counterparty_name: None,
            counterparty_account: None,
            reversal: false,
        }
    }

    fn entry(seq: i64, kind: EntryKind, refers_to_seq: Option<i64>) -> Entry {
        Entry {
            institution: InstitutionId::parse("INS-1".to_string()).unwrap(),
            seq,
            client_id: ClientId::parse(format!("c-{seq}")).unwrap(),
            kind,
            currency: Currency::Cny,
            occurred_at: Utc.with_ymd_and_hms(2026, 5, 1, 9, 0, 0).unwrap(),
            recorded_at: Utc.with_ymd_and_hms(2026, 5, 1, 9, 0, 0).unwrap(),
            external_ref: None,
            enrollment: None,
            hours: None,
            refers_to_seq,
            rule_pack: None,
            flags: vec![],
            postings: vec![Posting {
                account: crate::AccountCode::EscrowCash,
                side: Side::Credit,
                amount: crate::Amount::from_minor(500).unwrap(),
            }],
            request_hash: String::new(),
            prev_hash: String::new(),
            hash: String::new(),
        }
    }

    fn matched(lines: &[u64], transfers: &[u64]) -> Match {
        Match {
            lines: lines.to_vec(),
            transfers: transfers.to_vec(),
            pass: Pass::Identifier,
            explanation: "same id".into(),
        }
    }

    #[track_caller]
    fn check_suspense(
        kind: AccountKind,
        amount: i64,
        status: LineStatus,
        reason: Reason,
        to_suspense: bool,
    ) {
        let l = line(1, amount, status);
        assert_eq!(
            goes_to_suspense(kind, &l, &reason),
            to_suspense,
            "{kind:?} {amount} {status:?} {reason:?}"
        );
    }

    #[test]
    fn only_a_booked_escrow_credit_with_no_candidate_goes_to_suspense() {
        use AccountKind::{Deposit, Escrow};
        use LineStatus::{Booked, Info, Pending};
        check_suspense(Escrow, 500, Booked, Reason::NoCandidate, true);
        check_suspense(Deposit, 500, Booked, Reason::NoCandidate, false);
        check_suspense(Escrow, -500, Booked, Reason::NoCandidate, false);
        check_suspense(Escrow, 0, Booked, Reason::NoCandidate, false);
        check_suspense(Escrow, 500, Pending, Reason::NoCandidate, false);
        check_suspense(Escrow, 500, Info, Reason::NoCandidate, false);
        let tie = Reason::Ambiguous {
            candidates: vec![1, 2],
            total: 2,
        };
        check_suspense(Escrow, 500, Booked, tie, false);
        check_suspense(Escrow, 500, Booked, Reason::Duplicate { of: 0 }, false);
    }

    #[test]
    fn a_suspense_receipt_is_keyed_by_its_line_so_a_rerun_replays_it() {
        let lines = [line(7, 500, LineStatus::Booked)];
        let outcome = ReconcileOutcome {
            unmatched_lines: vec![(0, Reason::NoCandidate)],
            ..Default::default()
        };
        let a = account(AccountKind::Escrow);
        let first = suspense_receipts(&a, &lines, &outcome).unwrap();
        let again = suspense_receipts(&a, &lines, &outcome).unwrap();
        assert_eq!(first, again);
        assert_eq!(first.len(), 1);
        let r = &first[0];
        assert_eq!(r.line_key, "B/A1/S1#7");
        assert!(r.request.client_id.as_str().starts_with("suspense-"));
        assert_eq!(r.request.external_ref.as_deref(), Some("REF7"));
        assert_eq!(
            r.request.command,
            Command::RecordUnidentifiedReceipt {
                amount: Amount::from_minor(500).unwrap()
            }
        );
        let kept = r.kept(&entry(9, EntryKind::UnidentifiedReceipt, None));
        assert_eq!(
            (kept.pass, kept.automatic, kept.entries),
            ("suspense", true, vec![9])
        );
        assert!(
            suspense_receipts(&account(AccountKind::Deposit), &lines, &outcome)
                .unwrap()
                .is_empty()
        );
    }

    #[track_caller]
    fn check_confirmed(kind: EntryKind, resolved_by: Option<EntryKind>, confirmed: bool) {
        let mut entries = vec![entry(1, kind, None)];
        if let Some(k) = resolved_by {
            entries.push(entry(2, k, Some(1)));
        }
        let outcome = ReconcileOutcome {
            matches: vec![matched(&[0], &[1])],
            ..Default::default()
        };
        let lines = [line(0, -500, LineStatus::Booked)];
        let out = confirmations(&account(AccountKind::Escrow), &lines, &outcome, &entries).unwrap();
        assert_eq!(
            !out.is_empty(),
            confirmed,
            "{kind:?} resolved by {resolved_by:?}"
        );
        if confirmed {
            assert_eq!(out[0].client_id.as_str(), "recon-confirm-1");
            assert_eq!(
                out[0].occurred_at.date_naive(),
                day(4),
                "the bank line's day"
            );
            assert_eq!(
                out[0].command,
                Command::ConfirmPending {
                    pending: entries[0].client_id.clone()
                }
            );
        }
    }

    #[test]
    fn an_automatic_match_confirms_only_an_unresolved_instruction() {
        use EntryKind::*;
        check_confirmed(ReleaseInstructed, None, true);
        check_confirmed(RefundPaymentInstructed, None, true);
        check_confirmed(DepositReturnInstructed, None, true);
        check_confirmed(ReleaseInstructed, Some(PendingConfirmed), false);
        check_confirmed(ReleaseInstructed, Some(PendingVoided), false);
        check_confirmed(TuitionPaid, None, false);
        check_confirmed(UnidentifiedReceipt, None, false);
    }

    #[test]
    fn a_suggestion_confirms_nothing() {
        let entries = [entry(1, EntryKind::ReleaseInstructed, None)];
        let outcome = ReconcileOutcome {
            suggestions: vec![matched(&[0], &[1])],
            ..Default::default()
        };
        let lines = [line(0, -500, LineStatus::Booked)];
        let out = confirmations(&account(AccountKind::Escrow), &lines, &outcome, &entries);
        assert_eq!(out, Ok(vec![]));
    }

    #[track_caller]
    fn check_voided(kind: EntryKind, reason: Reason, voided: bool) {
        let entries = [entry(3, kind, None)];
        let outcome = ReconcileOutcome {
            unmatched_transfers: vec![(3, reason.clone())],
            ..Default::default()
        };
        let a = account(AccountKind::Escrow);
        let out = voids(&a, &outcome, &entries).unwrap();
        assert_eq!(!out.is_empty(), voided, "{kind:?} {reason:?}");
        let findings = returned_findings(&a, &out, &entries);
        assert_eq!(findings.len(), out.len());
        if voided {
            assert_eq!(out[0].client_id.as_str(), "recon-void-3");
            assert_eq!(findings[0].key, "instruction_returned:c-3");
            assert_eq!(findings[0].severity, Severity::Red);
            assert!(
                findings[0].summary.contains("5.00 CNY"),
                "{}",
                findings[0].summary
            );
        }
    }

    #[test]
    fn a_returned_instruction_is_voided_with_a_red_alert_and_nothing_else_is() {
        use EntryKind::*;
        let returned = Reason::Returned { lines: vec![0, 1] };
        check_voided(ReleaseInstructed, returned.clone(), true);
        check_voided(RefundPaymentInstructed, returned.clone(), true);
        check_voided(TuitionPaid, returned, false);
        check_voided(ReleaseInstructed, Reason::NoCandidate, false);
    }

    #[test]
    fn kept_matches_are_named_by_their_lines_and_claimed_lines_are_not_open() {
        let lines = vec![
            line(0, -500, LineStatus::Booked),
            line(1, 300, LineStatus::Booked),
        ];
        let claimed = [("S1".to_string(), 1)].into();
        let open = open_lines(&lines, &claimed, None);
        assert_eq!(open, lines[..1]);
        let outcome = ReconcileOutcome {
            matches: vec![matched(&[0], &[4])],
            suggestions: vec![Match {
                pass: Pass::AmountDate,
                ..matched(&[0], &[5])
            }],
            ..Default::default()
        };
        let kept = kept_matches(&account(AccountKind::Escrow), &open, &outcome);
        let seen: Vec<_> = kept
            .iter()
            .map(|k| (k.match_id.as_str(), k.pass, k.automatic, k.entries.clone()))
            .collect();
        assert_eq!(
            seen,
            [
                ("B/A1/S1#0", "identifier", true, vec![4]),
                ("B/A1/S1#0", "amount_date", false, vec![5]),
            ]
        );
    }
}
