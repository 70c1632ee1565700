//! `escrow-ledger reconcile`: for each supervised account, the three figures
//! (the bank's closing balance, the ledger's balance, what the books say is
//! owed) and every bank line matched to the ledger, suggested, or left
//! unmatched with its reason. The report records nothing; `--record` keeps
//! the matches (claims), confirms what the bank executed, voids what it
//! returned and books unattributed credits to suspense.

use std::collections::BTreeMap;
use std::process::ExitCode;

use bank_adapter::reconcile::{self, ledger, MatchConfig};
use ledger_core::domain::feeds::{AccountKind, BankAccount};
use ledger_core::domain::money::format_minor;
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

/// One account's stored lines matched against the institution's entries.
pub struct Matched {
    pub stored: ledger_core::store::StatementLines,
    pub undated: Vec<usize>,
    pub outcome: reconcile::ReconcileOutcome,
}

pub async fn match_account(
    store: &Store,
    account: &BankAccount,
    entries: &[Entry],
) -> anyhow::Result<Matched> {
    let stored = store.statement_lines(account).await?;
    let (lines, undated) = ledger::bank_lines(&stored.lines);
    let transfers = ledger::transfers(entries, account.kind);
    let outcome = reconcile::reconcile(&lines, &transfers, &MatchConfig::default())
        .map_err(|e| anyhow::anyhow!("[{}] {e}", e.code()))?;
    Ok(Matched {
        stored,
        undated,
        outcome,
    })
}

pub async fn account_report(store: &Store, account: &BankAccount) -> anyhow::Result<Value> {
    let c = account.currency;
    let money = |minor: i64| format_minor(minor, c);
    let entries = all_entries(store, &account.institution).await?;
    let Matched {
        stored,
        undated,
        outcome,
    } = match_account(store, account, &entries).await?;

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
    let sheet = store.balances(&account.institution).await?;
    let (cash, owed) = match account.kind {
        AccountKind::Escrow => (
            sheet.escrow_minor(),
            sheet.prepaid_minor()
                + sheet.balance("releasable")
                + sheet.balance("refund_payable")
                + sheet.balance("unidentified"),
        ),
        AccountKind::Deposit => (sheet.deposit_minor(), sheet.balance("deposit_payable")),
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
        "matches": matches(&outcome.matches),
        "suggestions": matches(&outcome.suggestions),
        "unmatched_lines": outcome.unmatched_lines.iter().map(|(id, reason)| {
            let mut v = line(*id);
            v["reason"] = json!(reason.code());
            v["unauthorized_outflow"] = json!(reason.is_unauthorized_outflow());
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
    json_out: bool,
) -> anyhow::Result<ExitCode> {
    let mut reports = Vec::new();
    for account in accounts_in_scope(store, institution).await? {
        reports.push(account_report(store, &account).await?);
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
pub async fn record_account(store: &Store, account: &BankAccount) -> anyhow::Result<Value> {
    use ledger_core::store::MatchRecord;
    use ledger_core::{ClientId, Command, EntryKind, Request};
    let entries = all_entries(store, &account.institution).await?;
    let (claimed_lines, claimed_entries) = store
        .claimed(&account.institution, &account.bank, &account.account_no)
        .await?;
    let stored = store.statement_lines(account).await?;
    let open_lines: Vec<_> = stored
        .lines
        .iter()
        .filter(|l| !claimed_lines.contains(&(l.statement_key.clone(), l.line_no)))
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
                amount_minor: l.amount_minor,
            },
        });
        suspense_lines.push((line_key, l.statement_key.clone(), l.line_no));
    }
    let suspended = receipts.len();
    if !receipts.is_empty() {
        let posted = store.execute_batch(receipts).await?;
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
    confirmations.extend(voids);
    let confirmed = confirmations.len() - voided;
    if !confirmations.is_empty() {
        store.execute_batch(confirmations).await?;
    }
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
    }))
}

pub async fn record(
    store: &Store,
    institution: Option<String>,
    json_out: bool,
) -> anyhow::Result<ExitCode> {
    let mut reports = Vec::new();
    for account in accounts_in_scope(store, institution).await? {
        reports.push(record_account(store, &account).await?);
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
