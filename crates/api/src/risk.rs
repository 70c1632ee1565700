//! `escrow-ledger risk`: fills each institution's risk snapshot from the
//! store (books, bank statements, the reconciliation outcome) and evaluates
//! it; prints the jurisdiction's institutions riskiest first.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::process::ExitCode;

use chrono::{Duration, NaiveDate};
use ledger_core::domain::feeds::{AccountKind, BankAccount};
use ledger_core::domain::policy::ResolvedRules;
use ledger_core::domain::refunds::{Refund, RefundEvent};
use ledger_core::domain::replay::BooksOn;
use ledger_core::domain::risk::{
    self, schedule, Assessment, BankLine, CapFlag, Closing, DayFigures, EntryRef, LedgerFigures,
    RiskInput, Severity, SupervisedAccount,
};
use ledger_core::store::{EventRow, StatementLines};
use ledger_core::{Entry, EntryKind, Institution, JurisdictionCode, Store};
use serde_json::json;

use crate::reconcile::{all_entries, match_stored};

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

/// What the bank showed of one supervised account up to `as_of`.
struct AccountSeen {
    account: SupervisedAccount,
    /// Entries a bank line settles (matched or suggested): tuition that
    /// arrived, instructions executed.
    settled: BTreeSet<i64>,
    debits: Vec<BankLine>,
    unauthorized: Vec<BankLine>,
    /// (date, debits, credits) of each bank line.
    movements: Vec<(NaiveDate, i64)>,
    mismatch: Option<risk::BalanceMismatch>,
}

fn account_seen(
    account: &BankAccount,
    stored: &StatementLines,
    entries: &[Entry],
    as_of: NaiveDate,
) -> anyhow::Result<AccountSeen> {
    let matched = match_stored(stored.clone(), account.kind, entries, Some(as_of))?;
    let lines = &matched.stored.lines;
    // The balance before each line: its statement's opening plus the lines
    // before it on that statement (lines come in statement order).
    let openings: BTreeMap<&str, i64> = matched
        .stored
        .statements
        .iter()
        .filter_map(|s| s.opening.map(|(minor, _)| (s.key.as_str(), minor)))
        .collect();
    let mut running: BTreeMap<&str, i64> = BTreeMap::new();
    let mut before = Vec::with_capacity(lines.len());
    for l in lines {
        let start = openings.get(l.statement_key.as_str()).copied();
        let so_far = running.entry(l.statement_key.as_str()).or_insert(0);
        before.push(start.map(|o| o + *so_far));
        *so_far += l.amount_minor;
    }
    let line_of = |i: usize| -> Option<BankLine> {
        let l = lines.get(i)?;
        Some(BankLine {
            line_id: format!("{}/{}#{}", account.account_no, l.statement_key, l.line_no),
            account: account.kind,
            bank_ref: l.bank_ref.clone(),
            date: l.booking_date.or(l.value_date)?,
            amount_minor: -l.amount_minor,
            balance_before_minor: before.get(i).copied().flatten(),
        })
    };
    let mut seen = AccountSeen {
        account: SupervisedAccount {
            kind: account.kind,
            account_no: account.account_no.clone(),
            closings: matched
                .stored
                .statements
                .iter()
                .filter_map(|s| s.closing)
                .map(|(balance_minor, date)| Closing {
                    date,
                    balance_minor,
                })
                .collect(),
            chain_break: matched.quarantine.as_ref().map(|(b, _)| b.clone()),
            registered_on: None,
        },
        settled: matched
            .outcome
            .matches
            .iter()
            .chain(&matched.outcome.suggestions)
            .flat_map(|m| m.transfers.iter().map(|t| *t as i64))
            .collect(),
        debits: Vec::new(),
        unauthorized: Vec::new(),
        movements: Vec::new(),
        mismatch: None,
    };
    for (i, l) in lines.iter().enumerate() {
        let Some(date) = l.booking_date.or(l.value_date) else {
            continue;
        };
        seen.movements.push((date, l.amount_minor));
        if l.amount_minor < 0 {
            seen.debits.extend(line_of(i));
        }
    }
    for (id, reason) in &matched.outcome.unmatched_lines {
        if reason.is_unauthorized_outflow() {
            seen.unauthorized.extend(line_of(*id as usize));
        }
    }
    // The latest statement day, against the ledger at the end of that day.
    if let Some((_, bank, date)) = &matched.stored.closing {
        let books = BooksOn::replay(entries, *date);
        let ledger = match account.kind {
            AccountKind::Escrow => books.balance("escrow_cash"),
            AccountKind::Deposit => books.balance("deposit_cash"),
        };
        if *bank != ledger {
            seen.mismatch = Some(risk::BalanceMismatch {
                account: account.kind,
                account_no: account.account_no.clone(),
                date: *date,
                bank_closing_minor: *bank,
                ledger_balance_minor: ledger,
            });
        }
    }
    Ok(seen)
}

/// Each enrollment sold (its first charge) and whether at the caps.
fn packages_sold(
    institution: &Institution,
    rules: &ledger_core::domain::policy::ResolvedRules,
    enrollments: &[ledger_core::Enrollment],
    entries: &[Entry],
) -> Vec<schedule::PackageSold> {
    let mut first_charge: BTreeMap<&str, NaiveDate> = BTreeMap::new();
    for e in entries {
        if matches!(
            e.kind,
            EntryKind::TuitionPaid | EntryKind::TuitionCollectedOutside
        ) {
            if let Some(id) = &e.enrollment {
                let day = e.occurred_at.date_naive();
                first_charge
                    .entry(id.as_str())
                    .and_modify(|d| *d = (*d).min(day))
                    .or_insert(day);
            }
        }
    }
    enrollments
        .iter()
        .filter_map(|en| {
            Some(schedule::PackageSold {
                date: *first_charge.get(en.id.as_str())?,
                at_caps: ledger_core::domain::policy::at_caps(rules, en, institution.category),
            })
        })
        .collect()
}

/// The ledger's figures at the end of `day` (entries by occurred date).
fn ledger_figures(entries: &[Entry], day: NaiveDate) -> LedgerFigures {
    let books = BooksOn::replay(entries, day);
    let year_before = day - Duration::days(365);
    let collections_12m = entries
        .iter()
        .filter(|e| {
            let on = e.occurred_at.date_naive();
            on > year_before && on <= day
        })
        .filter(|e| {
            matches!(
                e.kind,
                EntryKind::TuitionPaid
                    | EntryKind::ReceiptAttributed
                    | EntryKind::TuitionCollectedOutside
            )
        })
        .map(|e| amount_to(e, "prepaid/"))
        .sum();
    LedgerFigures {
        unearned_prepaid_minor: books.prepaid(),
        refund_payable_minor: books.balance("refund_payable"),
        releasable_minor: books.balance("releasable"),
        unidentified_minor: books.balance("unidentified"),
        escrow_cash_minor: books.balance("escrow_cash"),
        deposit_cash_minor: books.balance("deposit_cash"),
        held_by_institution_minor: books.balance("held_by_institution"),
        pending_release_minor: books.pending_debits("releasable"),
        pending_refund_minor: books.pending_debits("refund_payable"),
        collections_12m_minor: collections_12m,
    }
}

fn account_key(a: &BankAccount) -> ledger_core::store::AccountKey {
    (
        a.institution.to_string(),
        a.bank.clone(),
        a.account_no.clone(),
    )
}

/// Everything the risk engine reads about one institution, loaded either
/// one institution at a time or set-wise for a whole scan.
pub struct Records {
    pub institution: Institution,
    pub entries: Vec<Entry>,
    /// Each supervised account, its stored statements and the day it was
    /// registered.
    pub accounts: Vec<(BankAccount, StatementLines, Option<NaiveDate>)>,
    pub enrollments: Vec<ledger_core::Enrollment>,
    pub refunds: Vec<(Refund, Vec<RefundEvent>)>,
    pub events: Vec<EventRow>,
    pub rules: ResolvedRules,
}

impl Records {
    /// One institution's records, a few queries each.
    pub async fn of(
        store: &Store,
        institution: &Institution,
        as_of: NaiveDate,
    ) -> anyhow::Result<Records> {
        let mut accounts = Vec::new();
        let registered = store.account_registrations(Some(&institution.id)).await?;
        for account in store.supervised_accounts(&institution.id).await? {
            let lines = store.statement_lines(&account).await?;
            let on = registered.get(&account_key(&account)).copied();
            accounts.push((account, lines, on));
        }
        let mut refunds = Vec::new();
        for r in store.refunds(Some(&institution.id), None).await? {
            let trail = store.refund_trail(&r.institution, &r.id).await?;
            refunds.push((r, trail));
        }
        Ok(Records {
            institution: institution.clone(),
            entries: all_entries(store, &institution.id).await?,
            accounts,
            enrollments: store.enrollments(&institution.id).await?,
            refunds,
            events: store.events(&institution.id).await?,
            rules: store.rules_for(institution, as_of).await?,
        })
    }

    /// The records of every institution given, set-wise: one query per
    /// kind of record for the whole store, whatever the number of
    /// institutions (the national daily scan).
    pub async fn all(
        store: &Store,
        institutions: Vec<Institution>,
        as_of: NaiveDate,
    ) -> anyhow::Result<Vec<Records>> {
        let wanted: HashMap<String, usize> = institutions
            .iter()
            .enumerate()
            .map(|(n, i)| (i.id.to_string(), n))
            .collect();
        let mut rules: HashMap<String, ResolvedRules> = HashMap::new();
        let mut records = Vec::with_capacity(institutions.len());
        for institution in institutions {
            let code = institution.jurisdiction.to_string();
            if !rules.contains_key(&code) {
                rules.insert(code.clone(), store.rules_for(&institution, as_of).await?);
            }
            records.push(Records {
                rules: rules[&code].clone(),
                institution,
                entries: Vec::new(),
                accounts: Vec::new(),
                enrollments: Vec::new(),
                refunds: Vec::new(),
                events: Vec::new(),
            });
        }
        let slot = |id: &str| wanted.get(id).copied();
        let mut after: Option<(String, i64)> = None;
        loop {
            let page = store
                .entries_all(after.as_ref().map(|(i, s)| (i.as_str(), *s)), 50_000)
                .await?;
            let Some(last) = page.last() else { break };
            after = Some((last.institution.to_string(), last.seq));
            for e in page {
                if let Some(n) = slot(e.institution.as_str()) {
                    records[n].entries.push(e);
                }
            }
        }
        let mut lines = store.statement_lines_all().await?;
        let registered = store.account_registrations(None).await?;
        for account in store.supervised_accounts_all().await? {
            if let Some(n) = slot(account.institution.as_str()) {
                let key = (
                    account.institution.to_string(),
                    account.bank.clone(),
                    account.account_no.clone(),
                );
                let stored = lines.remove(&key).unwrap_or_default();
                let on = registered.get(&key).copied();
                records[n].accounts.push((account, stored, on));
            }
        }
        for e in store.enrollments_all().await? {
            if let Some(n) = slot(e.institution.as_str()) {
                records[n].enrollments.push(e);
            }
        }
        let mut trails = store.refund_trails_all().await?;
        for r in store.refunds(None, None).await? {
            if let Some(n) = slot(r.institution.as_str()) {
                let trail = trails
                    .remove(&(r.institution.to_string(), r.id.clone()))
                    .unwrap_or_default();
                records[n].refunds.push((r, trail));
            }
        }
        for (institution, events) in store.events_all().await? {
            if let Some(n) = slot(&institution) {
                records[n].events = events;
            }
        }
        Ok(records)
    }
}

/// The snapshot of one institution on one day, from its records.
pub fn snapshot(records: &Records, as_of: NaiveDate) -> anyhow::Result<RiskInput> {
    let institution = &records.institution;
    // Nothing after the day assessed: a past day reads as it was lived.
    let entries: Vec<Entry> = records
        .entries
        .iter()
        .filter(|e| e.occurred_at.date_naive() <= as_of)
        .cloned()
        .collect();
    let by_seq: BTreeMap<i64, &Entry> = entries.iter().map(|e| (e.seq, e)).collect();

    let mut accounts = Vec::new();
    let mut bank_debits = Vec::new();
    let mut unauthorized_outflows = Vec::new();
    let mut balance_mismatches = Vec::new();
    let mut arrived = BTreeSet::new();
    let mut movements = Vec::new();
    // The day through which the escrow accounts (the deposit accounts for
    // an institution without one) have reported: what families are owed is
    // compared as of then. A deposit account that moves rarely and reports
    // late must not hold back the comparison of the escrow account.
    let mut through: [Option<NaiveDate>; 2] = [None, None];
    for (account, stored, registered_on) in &records.accounts {
        let mut seen = account_seen(account, stored, &entries, as_of)?;
        seen.account.registered_on = *registered_on;
        if let Some(latest) = seen.account.closings.iter().map(|c| c.date).max() {
            let slot = &mut through[usize::from(account.kind == AccountKind::Deposit)];
            *slot = Some(slot.map_or(latest, |d| d.min(latest)));
        }
        if account.kind == AccountKind::Escrow {
            arrived.extend(seen.settled);
        }
        accounts.push(seen.account);
        bank_debits.extend(seen.debits);
        unauthorized_outflows.extend(seen.unauthorized);
        balance_mismatches.extend(seen.mismatch);
        movements.extend(seen.movements);
    }

    let mut days: BTreeMap<NaiveDate, DayFigures> = BTreeMap::new();
    fn day(days: &mut BTreeMap<NaiveDate, DayFigures>, date: NaiveDate) -> &mut DayFigures {
        days.entry(date).or_insert_with(|| DayFigures {
            date,
            ..Default::default()
        })
    }
    for (date, amount) in movements {
        if amount < 0 {
            day(&mut days, date).bank_debits_minor += -amount;
        } else {
            day(&mut days, date).bank_credits_minor += amount;
        }
    }
    let mut cap_flags = Vec::new();
    for e in &entries {
        let date = e.occurred_at.date_naive();
        let d = day(&mut days, date);
        match e.kind {
            EntryKind::TuitionPaid | EntryKind::ReceiptAttributed => {
                let amount = amount_to(e, "prepaid/");
                d.collections_reported_minor += amount;
                // Attributed receipts arrived as bank credits already.
                if e.kind == EntryKind::ReceiptAttributed || arrived.contains(&e.seq) {
                    d.collections_into_escrow_minor += amount;
                }
            }
            EntryKind::TuitionCollectedOutside => {
                let amount = amount_to(e, "prepaid/");
                d.collections_reported_minor += amount;
            }
            EntryKind::LessonsConsumed => {
                d.consumed_minor += amount_to(e, "releasable");
                d.consumed_hours += e.hours.unwrap_or(0);
            }
            EntryKind::PendingConfirmed => {
                let target = e.refers_to_seq.and_then(|s| by_seq.get(&s));
                match target.map(|t| t.kind) {
                    Some(EntryKind::ReleaseInstructed) => {
                        d.released_minor += amount_to(e, "releasable")
                    }
                    Some(EntryKind::RefundPaymentInstructed) => {
                        d.refunds_paid_minor += amount_to(e, "refund_payable")
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

    let history_from = entries
        .iter()
        .map(|e| e.occurred_at.date_naive())
        .min()
        .unwrap_or(as_of);
    let refund_requests = refund_requests(&records.refunds, &entries);
    let rules = records.rules.clone();
    let enrollments = &records.enrollments;
    let packages = schedule::package_counts(
        &packages_sold(institution, &rules, enrollments, &entries),
        as_of,
        &rules.params,
    );
    let release_findings = schedule::releases_ahead_of_schedule(enrollments, &entries);
    let events = records
        .events
        .iter()
        .filter_map(|(_, kind, date, _, _)| {
            let kind = match kind.as_str() {
                "legal_representative_change" => risk::EventKind::LegalRepresentativeChange,
                "closure_notice" => risk::EventKind::ClosureNotice,
                _ => return None,
            };
            Some(risk::InstitutionEvent { kind, date: *date })
        })
        .collect();
    Ok(RiskInput {
        as_of,
        institution: institution.clone(),
        calendar: rules.params.calendar()?,
        rules,
        history_from,
        ledger: ledger_figures(&entries, as_of),
        ledger_at_statements: through[0]
            .or(through[1])
            .filter(|day| *day < as_of)
            .map(|day| (day, ledger_figures(&entries, day))),
        accounts,
        days: days.into_values().collect(),
        packages,
        bank_debits,
        unauthorized_outflows,
        balance_mismatches,
        release_findings,
        refund_requests,
        cap_flags,
        events,
    })
}

/// The refund workflow's requests as the risk engine sees them: when each
/// was asked, approved (or deemed approved) and paid. Declined requests owe
/// nothing; a returned one is still owed.
fn refund_requests(
    refunds: &[(Refund, Vec<RefundEvent>)],
    entries: &[Entry],
) -> Vec<risk::RefundRequest> {
    use ledger_core::domain::refunds::RefundState;
    let mut out = Vec::new();
    for (r, trail) in refunds {
        if r.state == RefundState::Declined {
            continue;
        }
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
    out
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
    let mut seen: std::collections::BTreeMap<&ledger_core::InstitutionId, BTreeSet<String>> =
        Default::default();
    for a in ranked {
        let found = findings(a)?;
        seen.insert(
            &a.institution,
            found.iter().map(|f| f.key.clone()).collect(),
        );
        let report = store.record_findings(&a.institution, as_of, &found).await?;
        recorded.push((a.institution.clone(), report));
    }
    // What the engine no longer finds in the institutions it assessed is
    // over; the institutions it did not assess keep their alerts.
    let kinds: Vec<&str> = ledger_core::domain::risk::SignalKind::ALL
        .iter()
        .map(|k| k.code())
        .collect();
    store
        .resolve_cleared(
            &kinds,
            as_of,
            "risk-engine",
            "the risk engine no longer finds this condition",
            |institution, key| seen.get(institution).is_none_or(|keys| keys.contains(key)),
        )
        .await?;
    Ok(recorded)
}

/// Every institution in `scope` (and below it) evaluated as of a day,
/// riskiest first.
pub async fn assess(
    store: &Store,
    scope: &JurisdictionCode,
    as_of: NaiveDate,
) -> anyhow::Result<Vec<Assessment>> {
    let institutions: Vec<Institution> = store
        .institutions()
        .await?
        .into_iter()
        .filter(|i| scope.covers(&i.jurisdiction))
        .collect();
    let loading = if institutions.len() > SET_WISE_FROM {
        Loading::SetWise
    } else {
        Loading::PerInstitution
    };
    assess_loaded(store, institutions, as_of, loading).await
}

/// Beyond this many institutions a scan loads set-wise: a few queries for
/// the whole store instead of a dozen per institution.
pub const SET_WISE_FROM: usize = 50;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loading {
    PerInstitution,
    SetWise,
}

/// The institutions given, evaluated as of a day, riskiest first, their
/// records loaded as asked (both ways give the same answer).
pub async fn assess_loaded(
    store: &Store,
    institutions: Vec<Institution>,
    as_of: NaiveDate,
    loading: Loading,
) -> anyhow::Result<Vec<Assessment>> {
    let records = match loading {
        Loading::SetWise => Records::all(store, institutions, as_of).await?,
        Loading::PerInstitution => {
            let mut records = Vec::with_capacity(institutions.len());
            for institution in &institutions {
                records.push(Records::of(store, institution, as_of).await?);
            }
            records
        }
    };
    let mut assessments = Vec::with_capacity(records.len());
    for r in &records {
        assessments.push(risk::evaluate(&snapshot(r, as_of)?));
    }
    Ok(risk::rank(assessments))
}

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
    let as_of = as_of.unwrap_or_else(|| store.now().date_naive());
    let scope = match jurisdiction {
        Some(code) => {
            let code = JurisdictionCode::parse(code)?;
            if !store.jurisdictions().await?.iter().any(|j| j.code == code) {
                anyhow::bail!(
                    "jurisdiction {code} does not exist (`escrow-ledger jurisdiction list` shows those that do)"
                );
            }
            code
        }
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
        return Ok(gate(&ranked, fail_on));
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
    Ok(gate(&ranked, fail_on))
}
