//! The refund workflow and the outbox dispatcher, as steps a job runner
//! repeats. Every step reads its work from the database and is safe to run
//! again after a crash at any point: ledger entries carry client ids fixed
//! by the refund (a repeat is a replay), state moves are conditional (a
//! repeat moves nothing), and an instruction goes to the bank under its
//! idempotency key (a resend is answered with the original receipt).
//!
//! request → approve (officer, or deemed when unanswered past the rule
//! pack's working days) → ledger: refund approved + payment instructed
//! (pending; its outbox row in the same transaction) → the bank is sent the
//! instruction → the bank executes (entry confirmed, refund paid) or rejects
//! (entry voided, refund returned, alert) → unpaid past the deadline: alert.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration as StdDuration;

use anyhow::Context;
use bank_adapter::client::{BankClient, BankConfig, ClientError, RetryPolicy, Secret};
use bank_adapter::instruction::{
    Creditor, Instruction, InstructionId, InstructionKind, InstructionSpec, InstructionStatus,
};
use chrono::{Duration, NaiveDate, Utc};
use ledger_core::domain::alerts::Finding;
use ledger_core::domain::feeds::AccountKind;
use ledger_core::domain::refunds::{retry_delay, OutboxItem, OutboxState, Refund, RefundState};
use ledger_core::{
    Amount, ClientId, Command, Currency, Entry, Institution, InstitutionId, RefundSource, Request,
    Store,
};
use serde::Deserialize;

/// How to reach each supervising bank, from a JSON file:
/// `[{"bank": "PYB", "url": "https://…", "credential": "…"}]`.
/// A bank's `push_secret`, when given, is the HMAC key its pushed
/// notifications are signed with (see `bank_adapter::signature`).
#[derive(Default)]
pub struct BankDirectory {
    clients: BTreeMap<String, BankClient>,
    push_secrets: BTreeMap<String, Secret>,
    /// Banks whose statements the runner pulls: the connection (its
    /// accounts filled in at each pull) and the checkpoint file.
    pulls: BTreeMap<String, (BankConfig, std::path::PathBuf)>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BankEntry {
    bank: String,
    url: String,
    credential: String,
    #[serde(default)]
    timeout_ms: Option<u64>,
    #[serde(default)]
    push_secret: Option<String>,
    /// Pull this bank's statements, remembering progress in this file.
    #[serde(default)]
    checkpoint: Option<std::path::PathBuf>,
}

impl BankDirectory {
    pub fn load(path: &Path) -> anyhow::Result<BankDirectory> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the bank directory {}", path.display()))?;
        let entries: Vec<BankEntry> = serde_json::from_str(&text)
            .with_context(|| format!("{}: not a bank directory", path.display()))?;
        let mut dir = BankDirectory::default();
        for e in entries {
            dir.add(&e.bank, &e.url, &e.credential, e.timeout_ms)?;
            if let Some(secret) = e.push_secret {
                dir.set_push_secret(&e.bank, &secret);
            }
            if let Some(checkpoint) = e.checkpoint {
                dir.pull_from(&e.bank, &e.url, &e.credential, e.timeout_ms, checkpoint);
            }
        }
        Ok(dir)
    }

    pub fn add(
        &mut self,
        bank: &str,
        url: &str,
        credential: &str,
        timeout_ms: Option<u64>,
    ) -> anyhow::Result<()> {
        let mut config = BankConfig::new(bank, url, Secret::new(credential.to_string()));
        config.timeout = StdDuration::from_millis(timeout_ms.unwrap_or(10_000));
        // The job runner retries on its own schedule (outbox backoff), so a
        // bank that is down does not hold the runner up.
        config.retry = RetryPolicy {
            max_retries: 0,
            ..RetryPolicy::default()
        };
        let client = BankClient::new(config).map_err(|e| anyhow::anyhow!("[{}] {e}", e.code()))?;
        self.clients.insert(bank.to_string(), client);
        Ok(())
    }

    /// Pulls this bank's statements on every pass of the `pull` job.
    pub fn pull_from(
        &mut self,
        bank: &str,
        url: &str,
        credential: &str,
        timeout_ms: Option<u64>,
        checkpoint: std::path::PathBuf,
    ) {
        let mut config = BankConfig::new(bank, url, Secret::new(credential.to_string()));
        config.timeout = StdDuration::from_millis(timeout_ms.unwrap_or(10_000));
        config.retry = RetryPolicy {
            max_retries: 1,
            ..RetryPolicy::default()
        };
        self.pulls.insert(bank.to_string(), (config, checkpoint));
    }

    pub fn set_push_secret(&mut self, bank: &str, secret: &str) {
        self.push_secrets
            .insert(bank.to_string(), Secret::new(secret.to_string()));
    }

    pub fn push_secret(&self, bank: &str) -> Option<&Secret> {
        self.push_secrets.get(bank)
    }

    fn get(&self, bank: &str) -> Option<&BankClient> {
        self.clients.get(bank)
    }
}

/// Which jobs a runner does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Job {
    /// Refunds (deemed approvals, into the books, overdue) and the outbox.
    Workflow,
    /// The daily risk scan of every institution, recorded as alerts.
    Risk,
    /// The hourly reconciliation of every supervised account, recorded.
    Reconcile,
    /// New statements pulled from the banks that offer them (each bank at
    /// most once a minute).
    Pull,
}

impl Job {
    pub const ALL: [Job; 4] = [Job::Pull, Job::Workflow, Job::Risk, Job::Reconcile];
}

/// What one pass of the runner did, for logs and tests.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Tick {
    /// New statement feeds pulled from the banks and stored.
    pub feeds_pulled: u32,
    /// Banks whose pull stopped early (it resumes from its checkpoint).
    pub pull_failures: u32,
    /// The daily risk scan ran in this pass (1) or not (0).
    pub risk_scans: u32,
    /// Supervised accounts reconciled and recorded in this pass.
    pub reconciled_accounts: u32,
    /// What the recorded reconciliation did, by outcome (matches kept,
    /// instructions confirmed or voided, credits to suspense, unauthorized
    /// outflows seen).
    pub reconcile_outcomes: BTreeMap<String, u64>,
    pub deemed_approved: u32,
    pub instructed: u32,
    pub declined_by_books: u32,
    pub sent: u32,
    pub send_failures: u32,
    pub executed: u32,
    pub returned: u32,
    pub overdue_alerts: u32,
    /// Approved refunds escrow cannot pay now: each has a red alert and is
    /// tried again on the next pass.
    pub set_aside: u32,
}

/// Working days by the rule pack's calendar: weekends, the pack's public
/// holidays and its make-up working days.
fn working_days_after(
    rules: &ledger_core::domain::policy::ResolvedRules,
    day: NaiveDate,
    n: u32,
) -> anyhow::Result<NaiveDate> {
    rules
        .params
        .calendar()?
        .add_working_days(day, n)
        .context("working-day arithmetic ran off the calendar")
}

/// The day a request is deemed approved if nobody answers.
pub async fn answer_by(
    store: &Store,
    institution: &Institution,
    day: NaiveDate,
) -> anyhow::Result<NaiveDate> {
    let rules = store.rules_for(institution, day).await?;
    let n = rules.params.refund_answer_working_days.unwrap_or(5);
    working_days_after(&rules, day, n)
}

/// A refund's id, derived from who asked and their Idempotency-Key: the
/// same request always names the same refund, so no retry can make two.
/// 80 bits of SHA-256, "RF" and 20 hex digits.
pub fn refund_id_for(token_id: &str, key: &str) -> String {
    format!(
        "RF{}",
        request_key(token_id, key)[..20].to_ascii_uppercase()
    )
}

/// What names one caller's request across its attempts: the SHA-256 of
/// the caller's token id and the request's Idempotency-Key, in hex. Records
/// that are not ledger entries (events) keep it, so a retry finds them.
pub fn request_key(token_id: &str, key: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(
        Sha256::new()
            .chain_update(token_id.as_bytes())
            .chain_update(b"\0")
            .chain_update(key.as_bytes())
            .finalize(),
    )
}

fn postings_amount(entry: &Entry) -> i64 {
    entry.postings.first().map_or(0, |p| p.amount_minor)
}

/// What became of an approved refund when the workflow took it up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Instructed {
    /// In the books and the outbox: the bank will be told to pay.
    Yes,
    /// The books refused the refund itself (nothing left to refund): it is
    /// declined, with the reason on its trail.
    DeclinedByBooks,
    /// Owed, but it cannot be paid from escrow now (escrow does not hold
    /// the money): left approved, to be tried again on the next pass.
    SetAside { reason: String },
}

/// Approved → instructed: the refund enters the books (approved, then the
/// payment instructed from escrow, pending) and so the outbox.
pub async fn instruct(
    store: &Store,
    refund: &Refund,
    today: NaiveDate,
) -> anyhow::Result<Instructed> {
    instruct_from(store, refund, today, RefundSource::Escrow).await
}

/// How an approved refund escrow could not pay is settled another way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settlement {
    /// The institution paid the family itself; `bank_ref` is the bank's
    /// reference of that payment.
    PaidByInstitution { bank_ref: String },
    /// An officer decided to pay it from the risk deposit: instructed to
    /// the bank from the deposit account.
    FromDeposit,
}

/// Settles an approved refund that escrow cannot pay (see
/// [`Instructed::SetAside`]): its payment entry takes the client id the
/// escrow instruction would have had, so a refund is paid at most once
/// whichever way it goes.
pub async fn settle_set_aside(
    store: &Store,
    refund: &Refund,
    how: Settlement,
    actor: &str,
    today: NaiveDate,
) -> anyhow::Result<Instructed> {
    let bank_ref = match how {
        Settlement::FromDeposit => {
            return instruct_from(store, refund, today, RefundSource::Deposit).await
        }
        Settlement::PaidByInstitution { bank_ref } => bank_ref,
    };
    let institution = store.institution(&refund.institution).await?;
    let Some(approved) = approval_entry(store, refund, &institution).await? else {
        return Ok(Instructed::DeclinedByBooks);
    };
    let paid = store
        .execute(Request {
            institution: refund.institution.clone(),
            client_id: ClientId::parse(refund.instruction_client_id())?,
            currency: institution.currency,
            occurred_at: store.now(),
            external_ref: Some(bank_ref.clone()),
            command: Command::RecordRefundPaidByInstitution {
                amount_minor: postings_amount(&approved),
            },
        })
        .await;
    let paid = match paid {
        Ok(p) => p,
        Err(e) if e.rejection().is_some() => {
            return Ok(Instructed::SetAside {
                reason: format!(
                    "refund {} cannot be recorded as paid by {}: [{}] {e}",
                    refund.id,
                    institution.name,
                    e.code()
                ),
            })
        }
        Err(e) => return Err(e.into()),
    };
    store
        .move_refund(
            &refund.institution,
            &refund.id,
            RefundState::Approved,
            RefundState::Paid,
            actor,
            Some(&format!(
                "paid by {} itself ({} {}), bank reference {bank_ref}",
                institution.name,
                ledger_core::domain::money::format_minor(
                    postings_amount(&paid),
                    institution.currency
                ),
                institution.currency.code()
            )),
            None,
            Some(paid.client_id.as_str()),
        )
        .await?;
    Ok(Instructed::Yes)
}

/// The refund's approval in the books (a replay after the first time), or
/// none when the books refuse it: then the refund is declined, with why.
async fn approval_entry(
    store: &Store,
    refund: &Refund,
    institution: &Institution,
) -> anyhow::Result<Option<Entry>> {
    // The entries occur when the refund was approved: a step repeated after
    // a crash, however much later, is then the same request (a replay).
    let approved_at = store
        .refund_trail(&refund.institution, &refund.id)
        .await?
        .into_iter()
        .rev()
        .find(|e| e.state == RefundState::Approved.code())
        .map_or_else(|| store.now(), |e| e.at);
    let approved = store
        .execute(Request {
            institution: refund.institution.clone(),
            client_id: ClientId::parse(refund.approval_client_id())?,
            currency: institution.currency,
            occurred_at: approved_at,
            external_ref: Some(refund.id.clone()),
            command: Command::ApproveRefund {
                enrollment: refund.enrollment.clone(),
                amount_minor: refund.amount_minor,
            },
        })
        .await;
    match approved {
        Ok(e) => Ok(Some(e)),
        Err(e) if e.rejection().is_some() => {
            store
                .move_refund(
                    &refund.institution,
                    &refund.id,
                    RefundState::Approved,
                    RefundState::Declined,
                    "ledger",
                    Some(&format!("the books refused the refund: [{}] {e}", e.code())),
                    None,
                    None,
                )
                .await?;
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// Approved → instructed, paid from `source`.
async fn instruct_from(
    store: &Store,
    refund: &Refund,
    today: NaiveDate,
    source: RefundSource,
) -> anyhow::Result<Instructed> {
    let institution = store.institution(&refund.institution).await?;
    let Some(approved) = approval_entry(store, refund, &institution).await? else {
        return Ok(Instructed::DeclinedByBooks);
    };
    let approved_at = approved.occurred_at;
    let request = |client_id: String, command: Command| -> anyhow::Result<Request> {
        Ok(Request {
            institution: refund.institution.clone(),
            client_id: ClientId::parse(client_id)?,
            currency: institution.currency,
            occurred_at: approved_at,
            external_ref: Some(refund.id.clone()),
            command,
        })
    };
    let payment = store
        .execute(request(
            refund.instruction_client_id(),
            Command::InstructRefundPayment {
                amount_minor: postings_amount(&approved),
                source,
            },
        )?)
        .await;
    let payment = match payment {
        Ok(p) => p,
        Err(e) if e.rejection().is_some() => {
            let owed = ledger_core::domain::money::format_minor(
                postings_amount(&approved),
                institution.currency,
            );
            let whose = match institution.mode {
                ledger_core::SupervisionMode::Custody => {
                    "the supervised account must be put right before it can be paid".to_string()
                }
                mode => format!(
                    "{} collects in {} mode and holds the tuition itself: it must pay the family and record it (POST /v1/refunds/{}/paid-by-institution with the bank's reference), or an officer decides to pay it from the risk deposit (POST /v1/refunds/{}/pay-from-deposit)",
                    institution.name,
                    mode.code(),
                    refund.id,
                    refund.id
                ),
            };
            let from = match source {
                RefundSource::Escrow => "escrow",
                RefundSource::Deposit => "the risk deposit",
            };
            return Ok(Instructed::SetAside {
                reason: format!(
                    "refund {} of {owed} {} is approved but {from} cannot pay it: [{}] {e}; {whose}",
                    refund.id,
                    institution.currency.code(),
                    e.code()
                ),
            });
        }
        Err(e) => return Err(e.into()),
    };
    let rules = store.rules_for(&institution, today).await?;
    let pay_by = working_days_after(
        &rules,
        today,
        rules.params.refund_pay_working_days.unwrap_or(15),
    )?;
    store
        .move_refund(
            &refund.institution,
            &refund.id,
            RefundState::Approved,
            RefundState::Instructed,
            "workflow",
            Some(&format!(
                "refund of {} {} owed; payment instruction {} queued for the bank",
                ledger_core::domain::money::format_minor(
                    postings_amount(&payment),
                    institution.currency
                ),
                institution.currency.code(),
                payment.client_id
            )),
            Some(pay_by),
            Some(payment.client_id.as_str()),
        )
        .await?;
    Ok(Instructed::Yes)
}

/// The supervised account an instruction is paid out of: the one its
/// pending entry credits (a refund goes out of the deposit account when an
/// officer decided to pay it from there).
async fn paying_account(store: &Store, item: &OutboxItem) -> anyhow::Result<AccountKind> {
    let code = store
        .paying_account(&item.institution, &item.instruction_id)
        .await?;
    Ok(match code.as_deref() {
        Some("deposit_cash") => AccountKind::Deposit,
        Some(_) => AccountKind::Escrow,
        None if item.kind == "deposit_return_instructed" => AccountKind::Deposit,
        None => AccountKind::Escrow,
    })
}

/// Sends one due instruction to its bank.
async fn send(
    store: &Store,
    banks: &BankDirectory,
    item: &OutboxItem,
    today: NaiveDate,
) -> anyhow::Result<Result<(), String>> {
    let institution = store.institution(&item.institution).await?;
    let kind = paying_account(store, item).await?;
    let Some(account) = store
        .supervised_accounts(&item.institution)
        .await?
        .into_iter()
        .find(|a| a.kind == kind)
    else {
        return Ok(Err(format!(
            "{} has no supervised {kind:?} account on file",
            item.institution
        )));
    };
    let Some(client) = banks.get(&account.bank) else {
        return Ok(Err(format!(
            "no connection is configured for bank {:?} (--banks)",
            account.bank
        )));
    };
    let (instruction_kind, creditor) = match item.kind.as_str() {
        "refund_payment_instructed" => {
            let refund = store
                .refunds(Some(&item.institution), None)
                .await?
                .into_iter()
                .find(|r| r.instruction_id.as_deref() == Some(item.instruction_id.as_str()));
            match refund {
                Some(r) => (
                    InstructionKind::Refund,
                    Creditor {
                        name: r.payee.name,
                        account: r.payee.account,
                        bank: r.payee.bank,
                    },
                ),
                None => {
                    return Ok(Err(format!(
                    "refund payment {} was not made through the refund workflow: no payee on file",
                    item.instruction_id
                )))
                }
            }
        }
        // Released tuition and a returned deposit both go to the
        // institution's own account on file.
        "release_instructed" | "deposit_return_instructed" => {
            match store.payee(&item.institution).await? {
                Some(p) => (
                    InstructionKind::Release,
                    Creditor {
                        name: p.name,
                        account: p.account,
                        bank: p.bank,
                    },
                ),
                None => {
                    return Ok(Err(format!(
                        "{} {}: no payee account is on file for {} (PUT /v1/institutions/{}/payee)",
                        item.kind, item.instruction_id, institution.name, item.institution
                    )))
                }
            }
        }
        other => {
            return Ok(Err(format!(
                "{other} {}: not an instruction kind the runner sends",
                item.instruction_id
            )))
        }
    };
    let currency: Currency = item.currency.parse()?;
    let instruction = Instruction::new(InstructionSpec {
        id: InstructionId::parse(item.instruction_id.clone())
            .map_err(|e| anyhow::anyhow!("{e}"))?,
        kind: instruction_kind,
        institution: item.institution.clone(),
        debtor_account: account.account_no.clone(),
        creditor,
        amount: Amount::from_minor(item.amount_minor)?,
        currency,
        requested_date: today,
        remittance: Some(format!("{} {}", item.kind, item.instruction_id)),
    })
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    match client.send_instruction(&instruction).await {
        Ok(receipt) => {
            let state = match receipt.status {
                InstructionStatus::Rejected => {
                    settle(store, item, false, receipt.reason.as_deref()).await?;
                    return Ok(Ok(()));
                }
                _ => OutboxState::Accepted,
            };
            store
                .update_outbox(&item.institution, &item.instruction_id, state, Some(&receipt.bank_ref), None, None)
                .await?;
            Ok(Ok(()))
        }
        Err(e @ ClientError::InstructionConflict { .. }) => Ok(Err(format!(
            "[{}] {e}: the bank holds different content under this id; nothing was paid twice, a person must look",
            e.code()
        ))),
        Err(e) => Ok(Err(format!("[{}] {e}", e.code()))),
    }
}

/// The bank executed (`true`) or rejected/returned (`false`) an instruction:
/// the books follow, then the refund, then (on a return) an alert.
async fn settle(
    store: &Store,
    item: &OutboxItem,
    executed: bool,
    reason: Option<&str>,
) -> anyhow::Result<()> {
    let institution = store.institution(&item.institution).await?;
    let pending = ClientId::parse(item.instruction_id.clone())?;
    let (suffix, command) = if executed {
        ("C", Command::ConfirmPending { pending })
    } else {
        ("V", Command::VoidPending { pending })
    };
    let result = store
        .execute(Request {
            institution: item.institution.clone(),
            client_id: ClientId::parse(format!("{}-{suffix}", item.instruction_id))?,
            currency: institution.currency,
            occurred_at: store.now(),
            external_ref: item.bank_ref.clone(),
            command,
        })
        .await;
    match result {
        Ok(_) => {}
        // Reconciliation of the bank's statement got there first, or a
        // runner that died after this entry (at another time) did.
        Err(e)
            if matches!(
                e.code(),
                "already_resolved" | "exists_with_different_fields"
            ) => {}
        Err(e) => return Err(e.into()),
    }
    let state = if executed {
        OutboxState::Executed
    } else {
        OutboxState::Rejected
    };
    store
        .update_outbox(
            &item.institution,
            &item.instruction_id,
            state,
            None,
            reason,
            None,
        )
        .await?;
    let refund = store
        .refunds(Some(&item.institution), Some(RefundState::Instructed))
        .await?
        .into_iter()
        .find(|r| r.instruction_id.as_deref() == Some(item.instruction_id.as_str()));
    if let Some(r) = refund {
        let (to, detail) = if executed {
            (
                RefundState::Paid,
                format!(
                    "the bank paid it (ref {})",
                    item.bank_ref.as_deref().unwrap_or("-")
                ),
            )
        } else {
            (
                RefundState::Returned,
                format!(
                    "the bank rejected or returned it: {}",
                    reason.unwrap_or("no reason given")
                ),
            )
        };
        store
            .move_refund(
                &r.institution,
                &r.id,
                RefundState::Instructed,
                to,
                "bank",
                Some(&detail),
                None,
                None,
            )
            .await?;
    }
    if !executed {
        let finding = Finding {
            key: format!("instruction_returned:{}", item.instruction_id),
            kind: "instruction_returned".into(),
            severity: "red".into(),
            summary: format!(
                "the bank rejected or returned {} {} ({} {}): {}; the pending entry was voided, the money is still owed",
                item.kind,
                item.instruction_id,
                ledger_core::domain::money::format_minor(item.amount_minor, institution.currency),
                item.currency,
                reason.unwrap_or("no reason given")
            ),
            evidence: serde_json::json!([{"type": "instruction", "id": item.instruction_id, "bank_ref": item.bank_ref}]).to_string(),
            rule_pack: "workflow".into(),
        };
        store
            .record_findings(&item.institution, store.now().date_naive(), &[finding])
            .await?;
    }
    Ok(())
}

/// One pass of every job.
pub async fn tick(store: &Store, banks: &BankDirectory) -> anyhow::Result<Tick> {
    tick_jobs(store, banks, &Job::ALL).await
}

/// One pass over everything due, for the given jobs. Safe to run from
/// several processes at once and again after a crash anywhere.
pub async fn tick_jobs(store: &Store, banks: &BankDirectory, jobs: &[Job]) -> anyhow::Result<Tick> {
    let mut t = Tick::default();
    let today = store.now().date_naive();
    let me = format!("pid {}", std::process::id());
    if jobs.contains(&Job::Pull) {
        let minute = store.now().format("%Y-%m-%dT%H:%M").to_string();
        for (bank, (config, checkpoint)) in &banks.pulls {
            if !store
                .claim_job_run(&format!("pull:{bank}"), &minute, &me)
                .await?
            {
                continue;
            }
            let mut accounts = Vec::new();
            for i in store.institutions().await? {
                for a in store.supervised_accounts(&i.id).await? {
                    if a.bank == *bank {
                        accounts.push(a.account_no);
                    }
                }
            }
            // One account at a time: an account the bank refuses does not
            // hold up the others (the checkpoint keeps a cursor per account).
            for account in accounts {
                let mut config = config.clone();
                config.accounts = vec![account.clone()];
                let (stored, result) =
                    crate::feed::pull_into_store(store, config, checkpoint, None).await?;
                for line in stored {
                    tracing::info!(%bank, "{line}");
                }
                match result {
                    Ok(n) => t.feeds_pulled += u32::try_from(n).unwrap_or(u32::MAX),
                    Err(error) => {
                        t.pull_failures += 1;
                        tracing::warn!(%bank, %account, %error, "pull stopped; the next pass resumes from the checkpoint");
                    }
                }
            }
        }
    }
    if jobs.contains(&Job::Reconcile) {
        let hour = store.now().format("%Y-%m-%dT%H").to_string();
        if store.claim_job_run("reconcile", &hour, &me).await? {
            for i in store.institutions().await? {
                for account in store.supervised_accounts(&i.id).await? {
                    let report =
                        crate::app::reconcile::record_account(store, &account, None).await?;
                    t.reconciled_accounts += 1;
                    for (outcome, n) in report.outcomes() {
                        if n > 0 {
                            *t.reconcile_outcomes.entry(outcome.to_string()).or_default() += n;
                        }
                    }
                }
            }
        }
    }
    if jobs.contains(&Job::Risk)
        && store
            .claim_job_run("risk_scan", &today.to_string(), &me)
            .await?
    {
        let national = ledger_core::JurisdictionCode::national();
        let ranked = crate::app::risk::assess(store, &national, today).await?;
        crate::app::risk::record_alerts(store, &ranked, today).await?;
        t.risk_scans = 1;
    }
    if !jobs.contains(&Job::Workflow) {
        return Ok(t);
    }

    // Deemed approvals: unanswered past the deadline.
    for r in store.refunds(None, Some(RefundState::Requested)).await? {
        if r.answer_by < today
            && store
                .move_refund(
                    &r.institution,
                    &r.id,
                    RefundState::Requested,
                    RefundState::Approved,
                    "workflow",
                    Some(&format!("deemed approved: not answered by {}", r.answer_by)),
                    None,
                    None,
                )
                .await?
        {
            t.deemed_approved += 1;
        }
    }
    // Approved refunds enter the books (and the outbox). One that cannot
    // be paid now is set aside with a red alert naming it and why; the
    // pass goes on with the rest, and tries it again next time.
    let mut blocked: BTreeSet<(InstitutionId, String)> = BTreeSet::new();
    for r in store.refunds(None, Some(RefundState::Approved)).await? {
        // An item that fails in a way of its own is set aside too; a store
        // that is down fails the alert as well, and so the pass.
        let outcome = instruct(store, &r, today)
            .await
            .unwrap_or_else(|e| Instructed::SetAside {
                reason: format!("refund {} could not be taken up: {e:#}", r.id),
            });
        match outcome {
            Instructed::Yes => t.instructed += 1,
            Instructed::DeclinedByBooks => t.declined_by_books += 1,
            Instructed::SetAside { reason } => {
                t.set_aside += 1;
                tracing::warn!(refund = %r.id, %reason, "refund set aside");
                let key = format!("refund_blocked:{}", r.id);
                let finding = Finding {
                    key: key.clone(),
                    kind: "refund_blocked".into(),
                    severity: "red".into(),
                    summary: reason,
                    evidence: serde_json::json!([{"type": "refund", "id": r.id, "enrollment": r.enrollment.as_str()}])
                        .to_string(),
                    rule_pack: "workflow".into(),
                };
                store
                    .record_findings(&r.institution, today, &[finding])
                    .await?;
                blocked.insert((r.institution.clone(), key));
            }
        }
    }
    store
        .resolve_cleared(
            &["refund_blocked"],
            today,
            "workflow",
            "the refund is no longer held up: it was instructed or decided",
            |i, key| blocked.contains(&(i.clone(), key.to_string())),
        )
        .await?;
    // Instructions to send.
    let lease = Duration::seconds(60);
    for item in store.claim_outbox(OutboxState::Pending, 100, lease).await? {
        match send(store, banks, &item, today).await? {
            Ok(()) => t.sent += 1,
            Err(error) => {
                t.send_failures += 1;
                tracing::warn!(instruction = %item.instruction_id, %error, "instruction not sent");
                store
                    .update_outbox(
                        &item.institution,
                        &item.instruction_id,
                        OutboxState::Pending,
                        None,
                        Some(&error),
                        Some(retry_delay(item.attempts + 1)),
                    )
                    .await?;
            }
        }
    }
    // Instructions the bank accepted: has it carried them out?
    for item in store
        .claim_outbox(OutboxState::Accepted, 100, lease)
        .await?
    {
        let status = match outcome(store, banks, &item).await? {
            Ok(s) => s,
            Err(error) => {
                store
                    .update_outbox(
                        &item.institution,
                        &item.instruction_id,
                        OutboxState::Accepted,
                        None,
                        Some(&error),
                        Some(retry_delay(item.attempts + 1)),
                    )
                    .await?;
                continue;
            }
        };
        match status.0 {
            InstructionStatus::Executed => {
                settle(store, &item, true, None).await?;
                t.executed += 1;
            }
            InstructionStatus::Rejected => {
                settle(store, &item, false, status.1.as_deref()).await?;
                t.returned += 1;
            }
            InstructionStatus::Accepted => {
                // Not yet: look again shortly.
                store
                    .update_outbox(
                        &item.institution,
                        &item.instruction_id,
                        OutboxState::Accepted,
                        None,
                        None,
                        Some(Duration::seconds(30)),
                    )
                    .await?;
            }
        }
    }
    // Refunds past their payment deadline.
    let mut overdue: BTreeSet<(InstitutionId, String)> = BTreeSet::new();
    for r in store.refunds(None, Some(RefundState::Instructed)).await? {
        if let Some(pay_by) = r.pay_by.filter(|d| *d < today) {
            overdue.insert((r.institution.clone(), format!("refund_overdue:{}", r.id)));
            let finding = Finding {
                key: format!("refund_overdue:{}", r.id),
                kind: "refund_overdue".into(),
                severity: "red".into(),
                summary: format!(
                    "refund {} of enrollment {} was due to be paid by {pay_by} and is not",
                    r.id, r.enrollment
                ),
                evidence: serde_json::json!([{"type": "refund", "id": r.id, "pay_by": pay_by}])
                    .to_string(),
                rule_pack: "refund_pay_working_days".into(),
            };
            let report = store
                .record_findings(&r.institution, today, &[finding])
                .await?;
            t.overdue_alerts += report.raised + report.reopened;
        }
    }
    store
        .resolve_cleared(
            &["refund_overdue"],
            today,
            "workflow",
            "the refund is no longer overdue: the bank paid it or returned it",
            |i, key| overdue.contains(&(i.clone(), key.to_string())),
        )
        .await?;
    Ok(t)
}

async fn outcome(
    store: &Store,
    banks: &BankDirectory,
    item: &OutboxItem,
) -> anyhow::Result<Result<(InstructionStatus, Option<String>), String>> {
    let kind = paying_account(store, item).await?;
    let Some(account) = store
        .supervised_accounts(&item.institution)
        .await?
        .into_iter()
        .find(|a| a.kind == kind)
    else {
        return Ok(Err("no supervised account on file".into()));
    };
    let Some(client) = banks.get(&account.bank) else {
        return Ok(Err(format!(
            "no connection is configured for bank {:?}",
            account.bank
        )));
    };
    let id =
        InstructionId::parse(item.instruction_id.clone()).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(match client.instruction_status(&id).await {
        Ok(r) => Ok((r.status, r.reason)),
        Err(e) => Err(format!("[{}] {e}", e.code())),
    })
}

/// Runs `tick_jobs` every `every` until `stop` resolves.
pub async fn run(
    store: Store,
    banks: BankDirectory,
    jobs: Vec<Job>,
    every: StdDuration,
    metrics: Option<std::sync::Arc<crate::http::Metrics>>,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut stop = stop;
    loop {
        match tick_jobs(&store, &banks, &jobs).await {
            Ok(t) if t != Tick::default() => {
                if let Some(m) = &metrics {
                    for (outcome, n) in &t.reconcile_outcomes {
                        m.reconciled(outcome, *n);
                    }
                }
                tracing::info!(?t, "jobs")
            }
            Ok(_) => {}
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "job pass failed; next pass retries")
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Today's date by the store's clock, for handlers.
pub fn today(store: &Store) -> NaiveDate {
    store.now().with_timezone(&Utc).date_naive()
}
