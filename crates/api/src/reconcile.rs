//! `escrow-ledger reconcile`: for each supervised account and each
//! statement day, the three figures (the bank's closing balance, the
//! ledger's balance at the end of that day, what the books say is owed),
//! and every bank line matched to the ledger, suggested, or left unmatched
//! with its reason. Statements that do not chain quarantine the account
//! from the missing day on; intraday lines are matched provisionally until
//! the end-of-day statement confirms them. The report records nothing;
//! `--record` keeps the matches (claims), confirms what the bank executed,
//! voids what it returned and books unattributed credits to suspense, from
//! end-of-day lines outside quarantine only.

use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;

use bank_adapter::reconcile::{self, ledger, MatchConfig};
use chrono::NaiveDate;
use ledger_core::domain::feeds::{AccountKind, BankAccount};
use ledger_core::domain::money::format_minor;
use ledger_core::domain::replay::BooksOn;
use ledger_core::domain::statements::{self, ChainBreak};
use ledger_core::store::{ReconDay, StoredLine};
use ledger_core::{Entry, InstitutionId, Store};
use serde_json::{json, Value};

pub async fn all_entries(store: &Store, id: &InstitutionId) -> anyhow::Result<Vec<Entry>> {
    let mut entries = Vec::new();
    let mut after = 0;
    loop {
        let page = store.entries(id, after, 1_000).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        entries.extend(page);
    }
    Ok(entries)
}

fn line_day(l: &StoredLine) -> Option<NaiveDate> {
    l.booking_date.or(l.value_date)
}

/// One account's stored lines matched against the institution's entries,
/// as they stood at the end of `until` (everything, without it).
pub struct Matched {
    pub stored: ledger_core::store::StatementLines,
    pub undated: Vec<usize>,
    pub outcome: reconcile::ReconcileOutcome,
    /// Where the statements stop chaining, and the statements from there on.
    pub quarantine: Option<(ChainBreak, BTreeSet<String>)>,
    /// Intraday lines of days no end-of-day statement covers yet, matched
    /// against what the end-of-day lines left open.
    pub provisional: Vec<StoredLine>,
    pub provisional_outcome: reconcile::ReconcileOutcome,
}

impl Matched {
    pub fn quarantined(&self, line: &StoredLine) -> bool {
        in_quarantine(self.quarantine.as_ref(), line)
    }
}

/// A line waits in quarantine when its statement comes after the break, or
/// when it is dated on or after the first missing day (a statement without
/// balances cannot be placed in the chain, but its days can).
fn in_quarantine(q: Option<&(ChainBreak, BTreeSet<String>)>, line: &StoredLine) -> bool {
    q.is_some_and(|(b, keys)| {
        keys.contains(&line.statement_key)
            || line_day(line).is_some_and(|d| d >= b.quarantined_from)
    })
}

fn run_matcher(
    lines: &[StoredLine],
    entries: &[&Entry],
    kind: AccountKind,
) -> anyhow::Result<(Vec<usize>, reconcile::ReconcileOutcome)> {
    let (bank, undated) = ledger::bank_lines(lines);
    let owned: Vec<Entry> = entries.iter().map(|e| (*e).clone()).collect();
    let transfers = ledger::transfers(&owned, kind);
    let outcome = reconcile::reconcile(&bank, &transfers, &MatchConfig::default())
        .map_err(|e| anyhow::anyhow!("[{}] {e}", e.code()))?;
    Ok((undated, outcome))
}

/// The first break in an account's statement chain and the statements
/// from it on (issue order), which wait in quarantine.
fn quarantine(
    list: &[ledger_core::domain::statements::StatementBalances],
) -> Option<(ChainBreak, BTreeSet<String>)> {
    let b = statements::first_break(list)?;
    let mut ordered = list.to_vec();
    statements::in_order(&mut ordered);
    let from = ordered.iter().position(|s| s.key == b.before).unwrap_or(0);
    let keys = ordered[from..].iter().map(|s| s.key.clone()).collect();
    Some((b, keys))
}

pub async fn match_account(
    store: &Store,
    account: &BankAccount,
    entries: &[Entry],
    until: Option<NaiveDate>,
) -> anyhow::Result<Matched> {
    let stored = store.statement_lines(account).await?;
    match_stored(stored, account.kind, entries, until)
}

/// What the bank had reported by the end of `day`: lines booked by then;
/// statements opened by then (one that closes later keeps its opening for
/// the chain check, but its closing is not known yet).
fn cut_at(stored: &mut ledger_core::store::StatementLines, day: NaiveDate) {
    let known = |l: &StoredLine| line_day(l).is_none_or(|d| d <= day);
    stored.lines.retain(known);
    stored.intraday.retain(known);
    stored
        .statements
        .retain(|s| s.opening.or(s.closing).is_none_or(|(_, d)| d <= day));
    for s in &mut stored.statements {
        s.closing = s.closing.filter(|(_, d)| *d <= day);
    }
    if stored.closing.as_ref().is_some_and(|c| c.2 > day) {
        stored.closing = stored
            .statements
            .iter()
            .filter_map(|s| s.closing.map(|(minor, date)| (s.key.clone(), minor, date)))
            .max_by_key(|c| c.2);
    }
}

/// [`match_account`] on lines already loaded.
pub fn match_stored(
    mut stored: ledger_core::store::StatementLines,
    kind: AccountKind,
    entries: &[Entry],
    until: Option<NaiveDate>,
) -> anyhow::Result<Matched> {
    if let Some(day) = until {
        cut_at(&mut stored, day);
    }
    let entries: Vec<&Entry> = entries
        .iter()
        .filter(|e| until.is_none_or(|d| e.occurred_at.date_naive() <= d))
        .collect();
    let (undated, outcome) = run_matcher(&stored.lines, &entries, kind)?;

    let quarantine = quarantine(&stored.statements);

    // Days an end-of-day statement covers supersede their intraday lines.
    let covered_through = stored
        .statements
        .iter()
        .filter_map(|s| s.closing.map(|c| c.1))
        .max();
    let provisional: Vec<StoredLine> = stored
        .intraday
        .iter()
        .filter(|l| line_day(l).is_some_and(|d| covered_through.is_none_or(|c| d > c)))
        .cloned()
        .collect();
    let settled: BTreeSet<u64> = outcome
        .matches
        .iter()
        .chain(&outcome.suggestions)
        .flat_map(|m| m.transfers.iter().copied())
        .collect();
    let open: Vec<&Entry> = entries
        .iter()
        .copied()
        .filter(|e| !settled.contains(&(e.seq as u64)))
        .collect();
    let (_, provisional_outcome) = run_matcher(&provisional, &open, kind)?;
    Ok(Matched {
        stored,
        undated,
        outcome,
        quarantine,
        provisional,
        provisional_outcome,
    })
}

/// Each end-of-day statement's day: the bank's closing, the ledger's
/// balance of that account at the end of the day, what the books owed, and
/// whether the day can be trusted (quarantined from a chain break on).
fn statement_days(
    kind: AccountKind,
    statements_held: &[ledger_core::domain::statements::StatementBalances],
    quarantined: &BTreeSet<String>,
    entries: &[Entry],
) -> Vec<ReconDay> {
    let mut ordered = statements_held.to_vec();
    statements::in_order(&mut ordered);
    let closing: Vec<_> = ordered
        .iter()
        .filter_map(|s| s.closing.map(|(minor, date)| (s, minor, date)))
        .collect();
    let days: Vec<NaiveDate> = closing.iter().map(|c| c.2).collect();
    let figures = BooksOn::at_each(entries, &days, |books| match kind {
        AccountKind::Escrow => (books.balance("escrow_cash"), books.owed_from_escrow()),
        AccountKind::Deposit => (
            books.balance("deposit_cash"),
            books.balance("deposit_payable"),
        ),
    });
    closing
        .into_iter()
        .zip(figures)
        .map(|((s, bank, day), (ledger_minor, owed))| {
            let status = if quarantined.contains(&s.key) {
                "quarantined"
            } else if bank == ledger_minor {
                "agrees"
            } else {
                "differs"
            };
            ReconDay {
                statement_key: s.key.clone(),
                day,
                bank_closing_minor: bank,
                ledger_balance_minor: ledger_minor,
                owed_minor: owed,
                status: status.into(),
            }
        })
        .collect()
}

fn day_json(d: &ReconDay, c: ledger_core::Currency) -> Value {
    let money = |minor: i64| format_minor(minor, c);
    json!({ "date": d.day, "statement": d.statement_key, "bank_closing": money(d.bank_closing_minor),
            "ledger_balance": money(d.ledger_balance_minor), "owed": money(d.owed_minor),
            "bank_minus_ledger": money(d.bank_closing_minor - d.ledger_balance_minor),
            "status": d.status })
}

pub async fn account_report(
    store: &Store,
    account: &BankAccount,
    until: Option<NaiveDate>,
) -> anyhow::Result<Value> {
    let c = account.currency;
    let money = |minor: i64| format_minor(minor, c);
    let entries = all_entries(store, &account.institution).await?;
    let matched = match_account(store, account, &entries, until).await?;
    let quarantined = matched
        .quarantine
        .as_ref()
        .map(|(_, keys)| keys.clone())
        .unwrap_or_default();
    let days: Vec<Value> = statement_days(
        account.kind,
        &matched.stored.statements,
        &quarantined,
        &entries,
    )
    .iter()
    .map(|d| day_json(d, c))
    .collect();
    let Matched {
        stored,
        undated,
        outcome,
        quarantine,
        provisional,
        provisional_outcome,
    } = matched;

    let by_seq: BTreeMap<i64, &Entry> = entries.iter().map(|e| (e.seq, e)).collect();
    let line = |id: u64| {
        let l = &stored.lines[id as usize];
        json!({ "statement": l.statement_key, "line": l.line_no, "amount": money(l.amount_minor),
                "date": l.booking_date, "end_to_end_id": l.end_to_end_id, "bank_ref": l.bank_ref })
    };
    let entry = |id: u64| {
        let e = by_seq.get(&(id as i64));
        json!({ "seq": id, "client_id": e.map(|e| e.client_id.to_string()), "kind": e.map(|e| e.kind.code()) })
    };
    let matches = |list: &[reconcile::Match]| -> Vec<Value> {
        list.iter()
            .map(|m| {
                json!({ "pass": m.pass.code(), "lines": m.lines.iter().map(|i| line(*i)).collect::<Vec<_>>(),
                        "entries": m.transfers.iter().map(|i| entry(*i)).collect::<Vec<_>>(),
                        "explanation": m.explanation })
            })
            .collect()
    };
    let books = BooksOn::replay(&entries, until.unwrap_or(NaiveDate::MAX));
    let (cash, owed) = match account.kind {
        AccountKind::Escrow => (books.balance("escrow_cash"), books.owed_from_escrow()),
        AccountKind::Deposit => (
            books.balance("deposit_cash"),
            books.balance("deposit_payable"),
        ),
    };
    let provisional_line = |id: u64| {
        let l = &provisional[id as usize];
        json!({ "statement": l.statement_key, "line": l.line_no, "amount": money(l.amount_minor),
                "date": l.booking_date, "end_to_end_id": l.end_to_end_id, "bank_ref": l.bank_ref })
    };
    let bank = stored.closing.as_ref().map(
        |(key, minor, date)| json!({ "statement": key, "amount": money(*minor), "date": date }),
    );
    Ok(json!({
        "institution": account.institution,
        "bank": account.bank,
        "account": account.account_no,
        "kind": account.kind.code(),
        "bank_closing": bank,
        "ledger_balance": money(cash),
        "owed": money(owed),
        "bank_minus_ledger": stored.closing.as_ref().map(|(_, minor, _)| money(minor - cash)),
        "days": days,
        "quarantine": quarantine.as_ref().map(|(b, _)| json!({
            "from": b.quarantined_from,
            "explanation": format!(
                "statement {} opens at {} on {} but the statement before it, {}, closed at {} on {}: a statement is missing or wrong, so nothing the bank reported from {} on is booked until the gap is filled",
                b.before, money(b.opening_minor), b.opening_date, b.after,
                money(b.after_closing_minor), b.after_closing_date, b.quarantined_from),
            "after": b.after, "before": b.before,
        })),
        "provisional": {
            "note": "intraday lines of days no end-of-day statement covers yet: nothing is booked from them until the statement confirms them",
            "matches": provisional_outcome.matches.iter().chain(&provisional_outcome.suggestions).map(|m| json!({
                "pass": m.pass.code(),
                "lines": m.lines.iter().map(|i| provisional_line(*i)).collect::<Vec<_>>(),
                "entries": m.transfers.iter().map(|i| entry(*i)).collect::<Vec<_>>(),
                "explanation": m.explanation })).collect::<Vec<_>>(),
            "unmatched_lines": provisional_outcome.unmatched_lines.iter().map(|(id, reason)| {
                let mut v = provisional_line(*id);
                v["reason"] = json!(reason.code());
                v["unauthorized_outflow"] = json!(reason.is_unauthorized_outflow());
                v
            }).collect::<Vec<_>>(),
        },
        "matches": matches(&outcome.matches),
        "suggestions": matches(&outcome.suggestions),
        "unmatched_lines": outcome.unmatched_lines.iter().map(|(id, reason)| {
            let mut v = line(*id);
            v["reason"] = json!(reason.code());
            v["unauthorized_outflow"] = json!(reason.is_unauthorized_outflow());
            v["quarantined"] = json!(in_quarantine(quarantine.as_ref(), &stored.lines[*id as usize]));
            v
        }).chain(undated.iter().map(|i| {
            let mut v = line(*i as u64);
            v["reason"] = json!("undated");
            v["unauthorized_outflow"] = json!(false);
            v
        })).collect::<Vec<_>>(),
        "unmatched_entries": outcome.unmatched_transfers.iter().map(|(id, reason)| {
            let mut v = entry(*id);
            v["reason"] = json!(reason.code());
            v
        }).collect::<Vec<_>>(),
    }))
}

/// The supervised accounts of one institution (which must exist) or of all.
async fn accounts_in_scope(
    store: &Store,
    institution: Option<String>,
) -> anyhow::Result<Vec<BankAccount>> {
    let ids = match institution {
        Some(id) => vec![InstitutionId::parse(id)?],
        None => store
            .institutions()
            .await?
            .into_iter()
            .map(|i| i.id)
            .collect(),
    };
    let mut accounts = Vec::new();
    for id in &ids {
        store.institution(id).await?;
        accounts.extend(store.supervised_accounts(id).await?);
    }
    Ok(accounts)
}

pub async fn run(
    store: &Store,
    institution: Option<String>,
    until: Option<NaiveDate>,
    json_out: bool,
) -> anyhow::Result<ExitCode> {
    let mut reports = Vec::new();
    for account in accounts_in_scope(store, institution).await? {
        reports.push(account_report(store, &account, until).await?);
    }
    if json_out {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({ "accounts": reports }))?
        );
        return Ok(ExitCode::SUCCESS);
    }
    if reports.is_empty() {
        println!("no supervised accounts registered (see `escrow-ledger bank account`)");
    }
    for r in &reports {
        println!(
            "{} {} account {} at {}: bank closing {} | ledger {} | owed {} | bank - ledger {}",
            r["institution"].as_str().unwrap_or(""),
            r["kind"].as_str().unwrap_or(""),
            r["account"].as_str().unwrap_or(""),
            r["bank"].as_str().unwrap_or(""),
            r["bank_closing"]["amount"]
                .as_str()
                .map_or("none received".to_string(), |a| {
                    format!(
                        "{a} on {}",
                        r["bank_closing"]["date"].as_str().unwrap_or("")
                    )
                }),
            r["ledger_balance"].as_str().unwrap_or(""),
            r["owed"].as_str().unwrap_or(""),
            r["bank_minus_ledger"].as_str().unwrap_or("-"),
        );
        if let Some(q) = r["quarantine"]["explanation"].as_str() {
            println!(
                "  QUARANTINED from {}: {q}",
                r["quarantine"]["from"].as_str().unwrap_or("")
            );
        }
        for d in r["days"].as_array().into_iter().flatten() {
            println!(
                "  {} bank {:>14} | ledger {:>14} | owed {:>14} | bank - ledger {:>12}  {}",
                d["date"].as_str().unwrap_or(""),
                d["bank_closing"].as_str().unwrap_or(""),
                d["ledger_balance"].as_str().unwrap_or(""),
                d["owed"].as_str().unwrap_or(""),
                d["bank_minus_ledger"].as_str().unwrap_or(""),
                d["status"].as_str().unwrap_or("")
            );
        }
        for m in r["provisional"]["matches"].as_array().into_iter().flatten() {
            println!(
                "  provisional [{}] {} (until the end-of-day statement confirms it)",
                m["pass"].as_str().unwrap_or(""),
                m["explanation"].as_str().unwrap_or("")
            );
        }
        for (label, list) in [("matched", &r["matches"]), ("suggested", &r["suggestions"])] {
            for m in list.as_array().into_iter().flatten() {
                println!(
                    "  {label:<9} [{}] {}",
                    m["pass"].as_str().unwrap_or(""),
                    m["explanation"].as_str().unwrap_or("")
                );
            }
        }
        for l in r["unmatched_lines"].as_array().into_iter().flatten() {
            let flag = if l["unauthorized_outflow"] == json!(true) {
                "  << UNAUTHORIZED OUTFLOW"
            } else {
                ""
            };
            println!(
                "  unmatched line {} #{} {} on {}: {}{flag}",
                l["statement"].as_str().unwrap_or(""),
                l["line"],
                l["amount"].as_str().unwrap_or(""),
                l["date"].as_str().unwrap_or("-"),
                l["reason"].as_str().unwrap_or("")
            );
        }
        for e in r["unmatched_entries"].as_array().into_iter().flatten() {
            println!(
                "  no bank line yet for entry {} ({}): {}",
                e["client_id"].as_str().unwrap_or(""),
                e["kind"].as_str().unwrap_or(""),
                e["reason"].as_str().unwrap_or("")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `reconcile --record`: keeps each account's automatic matches (their
/// claims make a re-run skip what is settled), its suggestions for an
/// officer, and posts what the bank confirmed: a pending release, refund or
/// deposit return matched automatically to a bank debit is confirmed.
pub async fn record_account(
    store: &Store,
    account: &BankAccount,
    until: Option<NaiveDate>,
) -> anyhow::Result<Value> {
    use ledger_core::store::MatchRecord;
    use ledger_core::{ClientId, Command, EntryKind, Request};
    let entries: Vec<Entry> = all_entries(store, &account.institution)
        .await?
        .into_iter()
        .filter(|e| until.is_none_or(|d| e.occurred_at.date_naive() <= d))
        .collect();
    let (claimed_lines, claimed_entries) = store
        .claimed(&account.institution, &account.bank, &account.account_no)
        .await?;
    let mut stored = store.statement_lines(account).await?;
    if let Some(day) = until {
        cut_at(&mut stored, day);
    }
    // Lines from a chain break on wait in quarantine: nothing is booked
    // from them until the missing statement arrives.
    let held = quarantine(&stored.statements);
    let quarantined = held
        .as_ref()
        .map(|(_, keys)| keys.clone())
        .unwrap_or_default();
    let open_lines: Vec<_> = stored
        .lines
        .iter()
        .filter(|l| !claimed_lines.contains(&(l.statement_key.clone(), l.line_no)))
        .filter(|l| !in_quarantine(held.as_ref(), l))
        .cloned()
        .collect();
    let open_entries: Vec<Entry> = entries
        .iter()
        .filter(|e| !claimed_entries.contains(&e.seq))
        .cloned()
        .collect();
    let (lines, _) = ledger::bank_lines(&open_lines);
    let transfers = ledger::transfers(&open_entries, account.kind);
    let outcome = reconcile::reconcile(&lines, &transfers, &MatchConfig::default())
        .map_err(|e| anyhow::anyhow!("[{}] {e}", e.code()))?;
    let key = |id: u64| {
        let l = &open_lines[id as usize];
        (l.statement_key.clone(), l.line_no)
    };
    let record = |m: &reconcile::Match, automatic: bool| {
        let lines: Vec<(String, i64)> = m.lines.iter().map(|i| key(*i)).collect();
        let ids: Vec<String> = lines.iter().map(|(k, n)| format!("{k}#{n}")).collect();
        MatchRecord {
            match_id: format!("{}/{}/{}", account.bank, account.account_no, ids.join(",")),
            bank: account.bank.clone(),
            account_no: account.account_no.clone(),
            pass: m.pass.code().to_string(),
            automatic,
            explanation: m.explanation.clone(),
            lines,
            entries: m.transfers.iter().map(|t| *t as i64).collect(),
        }
    };
    let records: Vec<MatchRecord> = outcome
        .matches
        .iter()
        .map(|m| record(m, true))
        .chain(outcome.suggestions.iter().map(|m| record(m, false)))
        .collect();
    let mut records = records;

    // A credit nobody can attribute is still money held for families: it
    // is booked to suspense (unidentified) and its line claimed by that entry.
    let mut receipts = Vec::new();
    let mut suspense_lines = Vec::new();
    for (id, reason) in &outcome.unmatched_lines {
        let l = &open_lines[*id as usize];
        let unattributed = matches!(reason, reconcile::Reason::NoCandidate)
            && l.amount_minor > 0
            && l.status == "booked";
        if !unattributed || account.kind != AccountKind::Escrow {
            continue;
        }
        let line_key = format!(
            "{}/{}/{}#{}",
            account.bank, account.account_no, l.statement_key, l.line_no
        );
        let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(line_key.as_bytes()));
        receipts.push(Request {
            institution: account.institution.clone(),
            client_id: ClientId::parse(format!("suspense-{}", &digest[..32]))?,
            currency: account.currency,
            occurred_at: l
                .booking_date
                .or(l.value_date)
                .unwrap_or_default()
                .and_hms_opt(0, 0, 0)
                .unwrap_or_default()
                .and_utc(),
            external_ref: l.bank_ref.clone().or(l.end_to_end_id.clone()),
            command: Command::RecordUnidentifiedReceipt {
                amount: ledger_core::Amount::from_minor(l.amount_minor)?,
            },
        });
        suspense_lines.push((line_key, l.statement_key.clone(), l.line_no));
    }
    let suspended = receipts.len();
    // What this run books, for the day figures kept at the end.
    let mut booked: Vec<Entry> = Vec::new();
    if !receipts.is_empty() {
        let posted = store.execute_batch(receipts).await?;
        booked.extend(posted.iter().cloned());
        for (entry, (line_key, statement_key, line_no)) in posted.iter().zip(suspense_lines) {
            records.push(MatchRecord {
                match_id: line_key,
                bank: account.bank.clone(),
                account_no: account.account_no.clone(),
                pass: "suspense".into(),
                automatic: true,
                explanation: format!(
                    "no entry matches this credit: booked to unidentified as {}",
                    entry.client_id
                ),
                lines: vec![(statement_key, line_no)],
                entries: vec![entry.seq],
            });
        }
    }
    let kept = store.record_matches(&account.institution, &records).await?;

    // What the bank executed: confirm the pending instructions it settled.
    let resolved: std::collections::BTreeSet<i64> = entries
        .iter()
        .filter(|e| {
            matches!(
                e.kind,
                EntryKind::PendingConfirmed | EntryKind::PendingVoided
            )
        })
        .filter_map(|e| e.refers_to_seq)
        .collect();
    let by_seq: BTreeMap<i64, &Entry> = entries.iter().map(|e| (e.seq, e)).collect();
    let mut confirmations = Vec::new();
    for m in &outcome.matches {
        let date = m
            .lines
            .first()
            .map(|i| open_lines[*i as usize].booking_date);
        for t in &m.transfers {
            let Some(e) = by_seq.get(&(*t as i64)) else {
                continue;
            };
            let pending = matches!(
                e.kind,
                EntryKind::ReleaseInstructed
                    | EntryKind::RefundPaymentInstructed
                    | EntryKind::DepositReturnInstructed
            );
            if pending && !resolved.contains(&e.seq) {
                let on = date.flatten().unwrap_or_else(|| e.occurred_at.date_naive());
                confirmations.push(Request {
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
    }
    // What the bank returned (the line came and was reversed): the
    // instruction did not execute, so its pending entry is voided.
    let mut voids = Vec::new();
    for (t, reason) in &outcome.unmatched_transfers {
        if !matches!(reason, reconcile::Reason::Returned { .. }) {
            continue;
        }
        let Some(e) = by_seq.get(&(*t as i64)) else {
            continue;
        };
        let pending = matches!(
            e.kind,
            EntryKind::ReleaseInstructed
                | EntryKind::RefundPaymentInstructed
                | EntryKind::DepositReturnInstructed
        );
        if pending && !resolved.contains(&e.seq) {
            voids.push(Request {
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
    let voided = voids.len();
    // A returned instruction still owes its money: say so, loudly (the same
    // alert the refund workflow raises when the bank rejects an instruction).
    let mut returned = Vec::new();
    for v in &voids {
        if let Command::VoidPending { pending } = &v.command {
            let e = entries.iter().find(|e| &e.client_id == pending);
            let amount = e
                .and_then(|e| e.postings.first())
                .map_or(0, |p| p.amount_minor);
            returned.push(ledger_core::domain::alerts::Finding {
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
                evidence: json!([{ "type": "instruction", "id": pending.as_str(),
                                   "account": account.account_no }])
                .to_string(),
                rule_pack: "reconciliation".into(),
            });
        }
    }
    confirmations.extend(voids);
    let confirmed = confirmations.len() - voided;
    // The alert first: if the run died after the voids, the next run would
    // no longer see them as returned and the alert would never be raised.
    if !returned.is_empty() {
        store
            .record_findings(&account.institution, store.now().date_naive(), &returned)
            .await?;
    }
    if !confirmations.is_empty() {
        booked.extend(store.execute_batch(confirmations).await?);
    }
    // Each statement day's figures, with the books as this run leaves them.
    let mut after = entries.clone();
    after.extend(booked);
    let days_recorded = store
        .record_days(
            &account.institution,
            &account.bank,
            &account.account_no,
            &statement_days(account.kind, &stored.statements, &quarantined, &after),
        )
        .await?;
    Ok(json!({
        "institution": account.institution,
        "bank": account.bank,
        "account": account.account_no,
        "matches_kept": kept.stored,
        "matches_already_kept": kept.already_held,
        "instructions_confirmed": confirmed,
        "credits_to_suspense": suspended,
        "instructions_voided_as_returned": voided,
        "unauthorized_outflows": outcome.unmatched_lines.iter().filter(|(_, r)| r.is_unauthorized_outflow()).count(),
        "quarantined_from": held.map(|(b, _)| b.quarantined_from),
        "days_recorded": days_recorded,
    }))
}

pub async fn record(
    store: &Store,
    institution: Option<String>,
    until: Option<NaiveDate>,
    json_out: bool,
) -> anyhow::Result<ExitCode> {
    let mut reports = Vec::new();
    for account in accounts_in_scope(store, institution).await? {
        reports.push(record_account(store, &account, until).await?);
    }
    if json_out {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({ "accounts": reports }))?
        );
    } else {
        for r in &reports {
            println!(
                "{} account {} at {}: {} matches kept ({} kept before), {} instructions confirmed by the bank, {} credits booked to suspense, {} unauthorized outflows",
                r["institution"].as_str().unwrap_or(""),
                r["account"].as_str().unwrap_or(""),
                r["bank"].as_str().unwrap_or(""),
                r["matches_kept"],
                r["matches_already_kept"],
                r["instructions_confirmed"],
                r["credits_to_suspense"],
                r["unauthorized_outflows"]
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger_core::domain::statements::StatementBalances;
    use ledger_core::store::StatementLines;

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 5, d).unwrap()
    }

    fn line(statement: &str, no: i64, on: u32) -> StoredLine {
        StoredLine {
            statement_key: statement.into(),
            line_no: no,
            amount_minor: 10,
            booking_date: Some(day(on)),
            value_date: None,
            status: "booked".into(),
            bank_ref: None,
            end_to_end_id: None,
            remittance: None,
            counterparty_name: None,
            counterparty_account: None,
            reversal: false,
        }
    }

    fn statement(
        key: &str,
        open: Option<(i64, u32)>,
        close: Option<(i64, u32)>,
    ) -> StatementBalances {
        StatementBalances {
            key: key.into(),
            opening: open.map(|(m, d)| (m, day(d))),
            closing: close.map(|(m, d)| (m, day(d))),
        }
    }

    #[test]
    fn a_statement_closing_after_the_cutoff_keeps_its_opening_for_the_chain_check() {
        // S1 closes at 100 on 1 May; S3 (3 to 6 May) opens at 40: one is missing.
        let mut stored = StatementLines {
            lines: vec![
                line("S1", 0, 1),
                line("S3", 0, 3),
                line("S3", 1, 4),
                line("S3", 2, 6),
            ],
            closing: Some(("S3".into(), 60, day(6))),
            statements: vec![
                statement("S1", Some((0, 1)), Some((100, 1))),
                statement("S3", Some((40, 3)), Some((60, 6))),
            ],
            intraday: vec![],
        };
        cut_at(&mut stored, day(4));
        assert_eq!(stored.lines.len(), 3, "lines up to the 4th");
        assert_eq!(stored.closing, Some(("S1".into(), 100, day(1))));
        assert_eq!(
            stored.statements[1].closing, None,
            "S3's closing is not known on the 4th"
        );
        let q = quarantine(&stored.statements);
        assert_eq!(q.as_ref().map(|(b, _)| b.quarantined_from), Some(day(2)));
        let held: Vec<bool> = stored
            .lines
            .iter()
            .map(|l| in_quarantine(q.as_ref(), l))
            .collect();
        assert_eq!(held, [false, true, true]);
    }

    #[test]
    fn a_statement_without_balances_is_quarantined_by_its_days() {
        let statements = vec![
            statement("S1", Some((0, 1)), Some((100, 1))),
            statement("S2-CSV", None, None),
            statement("S3", Some((40, 3)), Some((60, 3))),
        ];
        let q = quarantine(&statements);
        assert!(in_quarantine(q.as_ref(), &line("S2-CSV", 0, 3)));
        assert!(!in_quarantine(q.as_ref(), &line("S1", 0, 1)));
    }
}
