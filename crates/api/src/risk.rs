//! `escrow-ledger risk`: fills each institution's risk snapshot from the
//! store (books, bank statements, the reconciliation outcome) and evaluates
//! it; prints the jurisdiction's institutions riskiest first.

use std::collections::BTreeMap;
use std::process::ExitCode;

use chrono::{Duration, NaiveDate};
use ledger_core::domain::feeds::AccountKind;
use ledger_core::domain::risk::{
    self, Assessment, BankLine, CapFlag, Closing, DayFigures, EntryRef, LedgerFigures, RiskInput,
    SupervisedAccount,
};
use ledger_core::{Entry, EntryKind, Institution, JurisdictionCode, Store};
use serde_json::json;

use crate::reconcile::{all_entries, match_account};

fn amount_to(entry: &Entry, account: &str) -> i64 {
    entry
        .postings
        .iter()
        .filter(|p| {
            p.account == account || (account == "prepaid/" && p.account.starts_with("prepaid/"))
        })
        .map(|p| p.amount_minor)
        .sum()
}

/// One account's totals, signed, for books replayed by occurred date.
#[derive(Default)]
struct Replayed {
    posted_debits: i64,
    posted_credits: i64,
    pending_debits: i64,
}

impl Replayed {
    fn balance(&self, account: &str) -> i64 {
        match ledger_core::AccountCode::parse(account).map(|c| c.account_type()) {
            Ok(ledger_core::AccountType::Asset) => self.posted_debits - self.posted_credits,
            _ => self.posted_credits - self.posted_debits,
        }
    }
}

/// The books replayed from the entries that happened on or before `day`.
fn books_on(entries: &[Entry], day: NaiveDate) -> BTreeMap<String, Replayed> {
    use ledger_core::Phase;
    let mut books: BTreeMap<String, Replayed> = BTreeMap::new();
    for e in entries.iter().filter(|e| e.occurred_at.date_naive() <= day) {
        for p in &e.postings {
            let t = books.entry(p.account.clone()).or_default();
            let debit = p.side == ledger_core::Side::Debit;
            let amount = p.amount_minor;
            match (e.kind.phase(), debit) {
                (Phase::Posted, true) => t.posted_debits += amount,
                (Phase::Posted, false) => t.posted_credits += amount,
                (Phase::Pending, true) => t.pending_debits += amount,
                (Phase::Pending, false) => {}
                (Phase::PostPending, true) => {
                    t.pending_debits -= amount;
                    t.posted_debits += amount;
                }
                (Phase::PostPending, false) => t.posted_credits += amount,
                (Phase::VoidPending, true) => t.pending_debits -= amount,
                (Phase::VoidPending, false) => {}
            }
        }
    }
    books
}

async fn snapshot(
    store: &Store,
    institution: &Institution,
    as_of: NaiveDate,
) -> anyhow::Result<RiskInput> {
    let entries = all_entries(store, &institution.id).await?;
    let by_seq: BTreeMap<i64, &Entry> = entries.iter().map(|e| (e.seq, e)).collect();
    // The books as they stand for what happened up to the end of the day
    // assessed (by occurred date, so a past day reads as it was lived).
    let books = books_on(&entries, as_of);
    let balance = |account: &str| books.get(account).map_or(0, |t| t.balance(account));
    let prepaid: i64 = books
        .iter()
        .filter(|(a, _)| a.starts_with("prepaid/"))
        .map(|(a, t)| t.balance(a))
        .sum();
    let pending = |account: &str| books.get(account).map_or(0, |t| t.pending_debits);
    let mut days: BTreeMap<NaiveDate, DayFigures> = BTreeMap::new();
    let mut collections_12m = 0i64;
    let mut cap_flags = Vec::new();
    for e in &entries {
        let date = e.occurred_at.date_naive();
        if date > as_of {
            continue;
        }
        let day = days.entry(date).or_insert_with(|| DayFigures {
            date,
            ..Default::default()
        });
        match e.kind {
            EntryKind::TuitionPaid | EntryKind::ReceiptAttributed => {
                let amount = amount_to(e, "prepaid/");
                day.collections_reported_minor += amount;
                day.collections_into_escrow_minor += amount;
                if date > as_of - Duration::days(365) {
                    collections_12m += amount;
                }
            }
            EntryKind::TuitionCollectedOutside => {
                let amount = amount_to(e, "prepaid/");
                day.collections_reported_minor += amount;
                if date > as_of - Duration::days(365) {
                    collections_12m += amount;
                }
            }
            EntryKind::LessonsConsumed => {
                day.consumed_minor += amount_to(e, "releasable");
                day.consumed_hours += e.hours.unwrap_or(0);
            }
            EntryKind::PendingConfirmed => {
                let target = e.refers_to_seq.and_then(|s| by_seq.get(&s));
                match target.map(|t| t.kind) {
                    Some(EntryKind::ReleaseInstructed) => {
                        day.released_minor += amount_to(e, "releasable")
                    }
                    Some(EntryKind::RefundPaymentInstructed) => {
                        day.refunds_paid_minor += amount_to(e, "refund_payable")
                    }
                    _ => {}
                }
            }
            _ => {}
        }
        for rule in &e.flags {
            cap_flags.push(CapFlag {
                entry: EntryRef {
                    seq: e.seq,
                    client_id: e.client_id.clone(),
                },
                date,
                rule: rule.clone(),
                enrollment: e.enrollment.clone(),
            });
        }
    }

    let mut accounts = Vec::new();
    let mut bank_debits = Vec::new();
    let mut unauthorized_outflows = Vec::new();
    let mut balance_mismatches = Vec::new();
    for account in store.supervised_accounts(&institution.id).await? {
        let matched = match_account(store, &account, &entries).await?;
        let lines = &matched.stored.lines;
        let line_of = |i: usize, amount: i64| -> Option<BankLine> {
            let l = lines.get(i)?;
            Some(BankLine {
                line_id: format!("{}/{}#{}", account.account_no, l.statement_key, l.line_no),
                account: account.kind,
                bank_ref: l.bank_ref.clone(),
                date: l.booking_date.or(l.value_date)?,
                amount_minor: amount,
                balance_before_minor: None,
            })
        };
        for (i, l) in lines.iter().enumerate() {
            let Some(date) = l.booking_date.or(l.value_date) else {
                continue;
            };
            if date > as_of {
                continue;
            }
            let day = days.entry(date).or_insert_with(|| DayFigures {
                date,
                ..Default::default()
            });
            if l.amount_minor < 0 {
                day.bank_debits_minor += -l.amount_minor;
                bank_debits.extend(line_of(i, -l.amount_minor));
            } else {
                day.bank_credits_minor += l.amount_minor;
            }
        }
        for (id, reason) in &matched.outcome.unmatched_lines {
            if reason.is_unauthorized_outflow() {
                let i = *id as usize;
                if let Some(l) = lines.get(i) {
                    unauthorized_outflows.extend(line_of(i, -l.amount_minor));
                }
            }
        }
        let closings: Vec<Closing> = matched
            .stored
            .closing
            .iter()
            .map(|(_, minor, date)| Closing {
                date: *date,
                balance_minor: *minor,
            })
            .collect();
        let ledger_cash = match account.kind {
            AccountKind::Escrow => balance("escrow_cash"),
            AccountKind::Deposit => balance("deposit_cash"),
        };
        if let Some((_, minor, date)) = &matched.stored.closing {
            if *minor != ledger_cash && *date <= as_of {
                balance_mismatches.push(risk::BalanceMismatch {
                    account: account.kind,
                    account_no: account.account_no.clone(),
                    date: *date,
                    bank_closing_minor: *minor,
                    ledger_balance_minor: ledger_cash,
                });
            }
        }
        accounts.push(SupervisedAccount {
            kind: account.kind,
            account_no: account.account_no.clone(),
            closings,
        });
    }
    let history_from = entries
        .iter()
        .map(|e| e.occurred_at.date_naive())
        .min()
        .unwrap_or(as_of);
    let refund_requests = refund_requests(store, institution, &entries).await?;
    let rules = store.rules_for(institution, as_of).await?;
    let events = store
        .events(&institution.id)
        .await?
        .into_iter()
        .filter_map(|(_, kind, date, _, _)| {
            let kind = match kind.as_str() {
                "legal_representative_change" => risk::EventKind::LegalRepresentativeChange,
                "closure_notice" => risk::EventKind::ClosureNotice,
                _ => return None,
            };
            Some(risk::InstitutionEvent { kind, date })
        })
        .collect();
    Ok(RiskInput {
        as_of,
        institution: institution.clone(),
        calendar: rules.params.calendar()?,
        rules,
        history_from,
        ledger: LedgerFigures {
            unearned_prepaid_minor: prepaid,
            refund_payable_minor: balance("refund_payable"),
            releasable_minor: balance("releasable"),
            unidentified_minor: balance("unidentified"),
            escrow_cash_minor: balance("escrow_cash"),
            deposit_cash_minor: balance("deposit_cash"),
            held_by_institution_minor: balance("held_by_institution"),
            pending_release_minor: pending("releasable"),
            pending_refund_minor: pending("refund_payable"),
            collections_12m_minor: collections_12m,
        },
        accounts,
        days: days.into_values().collect(),
        packages: Default::default(),
        bank_debits,
        unauthorized_outflows,
        balance_mismatches,
        release_findings: vec![],
        refund_requests,
        cap_flags,
        events,
    })
}

/// The refund workflow's requests as the risk engine sees them: when each
/// was asked, approved (or deemed approved) and paid. Declined requests owe
/// nothing; a returned one is still owed.
async fn refund_requests(
    store: &Store,
    institution: &Institution,
    entries: &[Entry],
) -> anyhow::Result<Vec<risk::RefundRequest>> {
    use ledger_core::domain::refunds::RefundState;
    let mut out = Vec::new();
    for r in store.refunds(Some(&institution.id), None).await? {
        if r.state == RefundState::Declined {
            continue;
        }
        let trail = store.refund_trail(&r.institution, &r.id).await?;
        let on = |state: RefundState| {
            trail
                .iter()
                .find(|e| e.state == state.code())
                .map(|e| e.at.date_naive())
        };
        let approval = entries
            .iter()
            .find(|e| e.client_id.as_str() == r.approval_client_id());
        out.push(risk::RefundRequest {
            enrollment: r.enrollment.clone(),
            amount_minor: approval
                .map(|e| e.postings.first().map_or(0, |p| p.amount_minor))
                .or(r.amount_minor)
                .unwrap_or(0),
            requested_on: r.requested_on,
            approved_on: on(RefundState::Approved),
            paid_on: on(RefundState::Paid),
            entry: approval.map(|e| EntryRef {
                seq: e.seq,
                client_id: e.client_id.clone(),
            }),
        });
    }
    Ok(out)
}

/// The alerts a run leaves: each signal as a finding keyed by its condition.
fn findings(a: &Assessment) -> anyhow::Result<Vec<ledger_core::domain::alerts::Finding>> {
    a.signals
        .iter()
        .map(|s| {
            Ok(ledger_core::domain::alerts::Finding {
                key: s.key.clone(),
                kind: s.kind.code().to_string(),
                severity: serde_json::to_value(s.severity)?
                    .as_str()
                    .unwrap_or("red")
                    .to_string(),
                summary: s.summary.clone(),
                evidence: serde_json::to_string(&s.evidence)?,
                rule_pack: s.rule_pack.clone(),
            })
        })
        .collect()
}

/// Keeps each assessment's signals as alerts (the same condition updates
/// its alert).
pub async fn record_alerts(
    store: &Store,
    ranked: &[Assessment],
    as_of: NaiveDate,
) -> anyhow::Result<
    Vec<(
        ledger_core::InstitutionId,
        ledger_core::domain::alerts::RecordReport,
    )>,
> {
    let mut recorded = Vec::new();
    for a in ranked {
        let report = store
            .record_findings(&a.institution, as_of, &findings(a)?)
            .await?;
        recorded.push((a.institution.clone(), report));
    }
    Ok(recorded)
}

/// Every institution in `scope` (and below it) evaluated as of a day,
/// riskiest first.
pub async fn assess(
    store: &Store,
    scope: &JurisdictionCode,
    as_of: NaiveDate,
) -> anyhow::Result<Vec<Assessment>> {
    let mut assessments: Vec<Assessment> = Vec::new();
    for institution in store.institutions().await? {
        if scope.covers(&institution.jurisdiction) {
            assessments.push(risk::evaluate(&snapshot(store, &institution, as_of).await?));
        }
    }
    Ok(risk::rank(assessments))
}

pub async fn run(
    store: &Store,
    jurisdiction: Option<String>,
    as_of: Option<NaiveDate>,
    json_out: bool,
) -> anyhow::Result<ExitCode> {
    run_and_record(store, jurisdiction, as_of, json_out, false).await
}

pub async fn run_and_record(
    store: &Store,
    jurisdiction: Option<String>,
    as_of: Option<NaiveDate>,
    json_out: bool,
    record: bool,
) -> anyhow::Result<ExitCode> {
    let as_of = as_of.unwrap_or_else(|| store.now().date_naive());
    let scope = match jurisdiction {
        Some(code) => JurisdictionCode::parse(code)?,
        None => JurisdictionCode::national(),
    };
    let ranked = assess(store, &scope, as_of).await?;
    let mut recorded = Vec::new();
    if record {
        recorded = record_alerts(store, &ranked, as_of).await?;
    }
    if json_out {
        let institutions: Vec<_> = ranked
            .iter()
            .map(|a| {
                json!({
                    "id": a.institution, "name": a.name, "jurisdiction": a.jurisdiction,
                    "score": a.score,
                    "signals": a.signals.iter().map(|s| json!({
                        "kind": s.kind.code(), "severity": s.severity, "summary": s.summary,
                        "evidence": s.evidence, "rule_pack": s.rule_pack,
                    })).collect::<Vec<_>>(),
                    "not_evaluated": a.not_evaluated,
                })
            })
            .collect();
        let mut doc = json!({ "as_of": as_of, "institutions": institutions });
        if record {
            doc["recorded"] = json!(recorded
                .iter()
                .map(|(i, r)| json!({ "institution": i, "alerts": r }))
                .collect::<Vec<_>>());
        }
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("risk as of {as_of}, jurisdiction {scope}, riskiest first");
    for a in &ranked {
        println!("{:>3}  {} {}", a.score, a.institution, a.name);
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
    for (institution, r) in &recorded {
        if !json_out && (r.raised + r.updated + r.reopened) > 0 {
            println!(
                "alerts of {institution}: {} raised, {} updated, {} reopened, {} unchanged",
                r.raised, r.updated, r.reopened, r.unchanged
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
