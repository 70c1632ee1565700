//! The job runner's passes: statements pulled, accounts reconciled, the
//! daily risk scan, and the refund workflow with its outbox, each repeated
//! by the runner. Every pass reads its work from the database and is safe
//! to run from several processes at once and again after a crash anywhere.
//!
//! request → approve (officer, or deemed when unanswered past the rule
//! pack's working days) → ledger: refund approved + payment instructed
//! (pending; its outbox row in the same transaction) → the bank is sent the
//! instruction → the bank executes (entry confirmed, refund paid) or rejects
//! (entry voided, refund returned, alert) → unpaid past the deadline: alert.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration as StdDuration;

use chrono::{NaiveDate, Utc};
use ledger_core::domain::alerts::{AlertKind, Finding, Severity};
use ledger_core::domain::refunds::RefundState;
use ledger_core::{InstitutionId, Store};

use crate::app::banks::BankDirectory;
use crate::app::evidence::{self, Evidence};
use crate::app::refunds::{instruct, Instructed};
use crate::app::{outbox, AppResult};

/// Which jobs a runner does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    /// Lessons unanswered past the rule pack's window deemed confirmed, and
    /// earned lessons posted into the books.
    Lessons,
    /// Confirmed earnings released on each institution's cadence: one
    /// instruction per institution and cycle, to the payee on file.
    Release,
    /// Signed outbound webhooks: events queued per subscription, due
    /// deliveries sent (after the other jobs, so a pass tells of what it did).
    Webhooks,
}

impl Job {
    pub const ALL: [Job; 7] = [
        Job::Pull,
        Job::Lessons,
        Job::Release,
        Job::Workflow,
        Job::Risk,
        Job::Reconcile,
        Job::Webhooks,
    ];

    /// The job's name in the configuration, the CLI and the traces.
    pub fn name(self) -> &'static str {
        match self {
            Job::Workflow => "workflow",
            Job::Risk => "risk",
            Job::Reconcile => "reconcile",
            Job::Pull => "pull",
            Job::Lessons => "lessons",
            Job::Release => "release",
            Job::Webhooks => "webhooks",
        }
    }
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
    /// Lesson records the family left unanswered past their day.
    pub lessons_deemed_confirmed: u32,
    /// Earned lesson records posted into the books.
    pub lessons_posted: u32,
    /// Earned lesson records the books still refuse (tried again).
    pub lessons_not_posted: u32,
    /// Release instructions made by the release job (one per institution
    /// and cycle).
    pub releases_instructed: u32,
    /// Webhook deliveries queued (one per subscription and event).
    pub webhooks_queued: u32,
    /// Webhook deliveries the receiver took.
    pub webhooks_delivered: u32,
    /// Webhook attempts that failed (retried with backoff).
    pub webhook_failures: u32,
    /// Approvals cut short between their claim and their decision, whose
    /// effect this pass completed and recorded.
    pub approvals_completed: u32,
}

/// One pass of every job.
pub async fn tick(store: &Store, banks: &BankDirectory) -> AppResult<Tick> {
    tick_jobs(store, banks, &Job::ALL).await
}

/// One pass over everything due, for the given jobs. Safe to run from
/// several processes at once and again after a crash anywhere.
#[tracing::instrument(name = "jobs", skip_all, fields(
    otel.name = "jobs pass",
    jobs = %jobs.iter().map(|j| j.name()).collect::<Vec<_>>().join(","),
))]
pub async fn tick_jobs(store: &Store, banks: &BankDirectory, jobs: &[Job]) -> AppResult<Tick> {
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
                let outcome = crate::app::feeds::pull(
                    store,
                    config,
                    checkpoint,
                    bank_adapter::parse::ParseOptions::default(),
                )
                .await?;
                for item in &outcome.stored {
                    tracing::info!(%bank, "{item}");
                }
                match outcome.ended {
                    Ok(n) => t.feeds_pulled += u32::try_from(n).unwrap_or(u32::MAX),
                    Err(error) => {
                        t.pull_failures += 1;
                        tracing::warn!(%bank, %account, %error, "pull stopped; the next pass resumes from the checkpoint");
                    }
                }
            }
        }
    }
    if jobs.contains(&Job::Lessons) {
        let pass = crate::app::lessons::deem_and_post(store, today).await?;
        t.lessons_deemed_confirmed += pass.deemed_confirmed;
        t.lessons_posted += pass.posted;
        t.lessons_not_posted += pass.not_posted;
    }
    // Releases follow the lessons just deemed and posted; the outbox
    // (the workflow job) sends them.
    if jobs.contains(&Job::Release) {
        let now = store.now();
        for i in store.institutions().await? {
            if i.status != ledger_core::InstitutionStatus::Active {
                continue;
            }
            match crate::app::lessons::release_cycle(store, &i, today, now).await {
                Ok(Some(_)) => t.releases_instructed += 1,
                Ok(None) => {}
                // One institution's refusal does not hold up the others.
                Err(e @ crate::app::AppError::Refused { .. })
                | Err(e @ crate::app::AppError::Invalid { .. })
                | Err(e @ crate::app::AppError::Conflict { .. }) => {
                    tracing::warn!(institution = %i.id, error = %e, "release cycle refused");
                }
                Err(e) => return Err(e),
            }
        }
    }
    if jobs.contains(&Job::Reconcile) {
        let hour = store.now().format("%Y-%m-%dT%H").to_string();
        if store.claim_job_run("reconcile", &hour, &me).await? {
            // The same use case as `reconcile --record`: every account,
            // then the open transfers kept.
            for report in crate::app::reconcile::record(store, None, None).await? {
                t.reconciled_accounts += 1;
                for (outcome, n) in report.outcomes() {
                    if n > 0 {
                        *t.reconcile_outcomes.entry(outcome.to_string()).or_default() += n;
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
        // The same use case as `risk --record`: alerts kept, lesson sums
        // moved on.
        crate::app::risk::scan(store, None, Some(today), true).await?;
        t.risk_scans = 1;
    }
    if jobs.contains(&Job::Workflow) {
        workflow(store, banks, today, &mut t).await?;
    }
    if jobs.contains(&Job::Webhooks) {
        let pass = crate::app::webhooks::pass(store).await?;
        t.webhooks_queued += pass.queued;
        t.webhooks_delivered += pass.delivered;
        t.webhook_failures += pass.failed_attempts;
    }
    Ok(t)
}

/// The refund workflow and the outbox.
async fn workflow(
    store: &Store,
    banks: &BankDirectory,
    today: NaiveDate,
    t: &mut Tick,
) -> AppResult<()> {
    // Approvals cut short between their claim and their decision, first:
    // a refund they approve is taken up below in the same pass.
    t.approvals_completed += crate::app::approvals::complete_stalled(
        store,
        crate::app::approvals::APPROVAL_STALLED_AFTER,
    )
    .await?;
    // Deemed approvals: unanswered past the deadline.
    for r in store.refunds(None, Some(RefundState::Requested)).await? {
        if r.answer_by >= today {
            continue;
        }
        // Above the two-officer threshold the deemed approval is the first
        // of two: it waits for an officer (a request, once).
        if crate::app::approvals::deemed_refund_needs_officer(store, &r, today)
            .await?
            .is_some()
        {
            continue;
        }
        if store
            .move_refund(
                &r.institution,
                r.id.as_str(),
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
                    kind: AlertKind::RefundBlocked,
                    severity: Severity::Red,
                    summary: reason,
                    evidence: evidence::text(&[Evidence::Refund {
                        id: r.id.as_str(),
                        enrollment: Some(r.enrollment.as_str()),
                        pay_by: None,
                    }]),
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
            &[AlertKind::RefundBlocked],
            today,
            "workflow",
            "the refund is no longer held up: it was instructed or decided",
            |i, key| blocked.contains(&(i.clone(), key.to_string())),
        )
        .await?;
    outbox::dispatch(store, banks, today, t).await?;
    // Refunds past their payment deadline.
    let mut overdue: BTreeSet<(InstitutionId, String)> = BTreeSet::new();
    for r in store.refunds(None, Some(RefundState::Instructed)).await? {
        if let Some(pay_by) = r.pay_by.filter(|d| *d < today) {
            overdue.insert((r.institution.clone(), format!("refund_overdue:{}", r.id)));
            let finding = Finding {
                key: format!("refund_overdue:{}", r.id),
                kind: AlertKind::RefundOverdue,
                severity: Severity::Red,
                summary: format!(
                    "refund {} of enrollment {} was due to be paid by {pay_by} and is not",
                    r.id, r.enrollment
                ),
                evidence: evidence::text(&[Evidence::Refund {
                    id: r.id.as_str(),
                    enrollment: None,
                    pay_by: Some(pay_by),
                }]),
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
            &[AlertKind::RefundOverdue],
            today,
            "workflow",
            "the refund is no longer overdue: the bank paid it or returned it",
            |i, key| overdue.contains(&(i.clone(), key.to_string())),
        )
        .await?;
    Ok(())
}

/// Runs `tick_jobs` every `every` until `stop` resolves.
pub async fn run(
    store: Store,
    banks: BankDirectory,
    jobs: Vec<Job>,
    every: StdDuration,
    on_pass: impl Fn(&Tick) + Send,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut stop = stop;
    loop {
        match tick_jobs(&store, &banks, &jobs).await {
            Ok(t) if t != Tick::default() => {
                on_pass(&t);
                tracing::info!(?t, "jobs")
            }
            Ok(_) => {}
            Err(e) => {
                tracing::error!(error = %e, "job pass failed; next pass retries")
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
