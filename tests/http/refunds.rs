//! The refund workflow end to end: HTTP requests and decisions, the job
//! runner, a real (fake) bank that fails and recovers, and crashes between
//! every step (the runner's state dropped and a fresh one started).

use api::access::{Role, Scope};
use api::app::banks::BankDirectory;
use api::app::jobs::{tick_jobs, Job, Tick};
use bank_adapter::fake_bank::{Failure, FakeBank, DEFAULT_CREDENTIAL};
use bank_adapter::instruction::InstructionStatus;
use chrono::{DateTime, Duration, TimeZone, Utc};
use ledger_core::domain::refunds::{OutboxState, RefundState};
use ledger_core::store::Clock;
use ledger_core::{ClientId, Command, Currency, EntryKind, InstitutionId, Request};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::*;

struct Setup {
    server: Server,
    clock: Clock,
    bank: FakeBank,
    school: String,
    officer: String,
    institution: InstitutionId,
}

fn start_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 9, 1, 0, 0, 0).unwrap()
}

/// INS-A sold E-1 (40 hours, 4,000.00), was paid in full and taught 10
/// hours: 3,000.00 is refundable. Its escrow account is at the fake bank.
async fn setup(backend: Backend) -> Setup {
    let clock = Clock::manual(start_time());
    let server = Server::start_clocked(backend, clock.clone()).await;
    jurisdictions(&server.store).await;
    let institution = institution(&server.store, "INS-A", "410922").await;
    enrollment(&server.store, &institution, "E-1", 40, 400_000).await;
    clock.set(Utc.with_ymd_and_hms(2026, 9, 2, 9, 0, 0).unwrap());
    pay(&server.store, &institution, "E-1", "pay-1", 400_000).await;
    server
        .store
        .execute(Request {
            institution: institution.clone(),
            client_id: ClientId::parse("use-1").unwrap(),
            currency: Currency::Cny,
            occurred_at: Utc.with_ymd_and_hms(2026, 9, 2, 10, 0, 0).unwrap(),
            external_ref: None,
            command: Command::ConsumeLessons {
                enrollment: ledger_core::EnrollmentId::parse("E-1").unwrap(),
                hours: 10,
            },
        })
        .await
        .unwrap();
    bank_account(&server.store, "FAKE", &institution, "6222000000000001").await;
    // Tuesday 15 September 2026.
    clock.set(Utc.with_ymd_and_hms(2026, 9, 15, 9, 0, 0).unwrap());
    let bank = FakeBank::start().await;
    let school = server
        .token(Role::Institution, Scope::Institution(institution.clone()))
        .await;
    let officer = server
        .token(Role::Officer, Scope::Jurisdiction(code("410922")))
        .await;
    Setup {
        server,
        clock,
        bank,
        school,
        officer,
        institution,
    }
}

impl Setup {
    /// A job runner as a freshly started process would build it.
    fn runner(&self) -> BankDirectory {
        let mut banks = BankDirectory::default();
        banks
            .add("FAKE", self.bank.url(), DEFAULT_CREDENTIAL, Some(500))
            .unwrap();
        banks
    }

    /// One pass of the refund workflow and the outbox.
    async fn tick(&self) -> Tick {
        tick_jobs(&self.server.store, &self.runner(), &[Job::Workflow])
            .await
            .unwrap()
    }

    fn later(&self, by: Duration) {
        self.clock.set(self.server.store.now() + by);
    }

    async fn request(&self) -> Value {
        let (status, body) = self
            .server
            .post(&self.school, "/v1/institutions/INS-A/refunds", "rf-1", json!({
                "enrollment": "E-1",
                "payee": {"name": "Zhang San", "account": "6214830100123456", "bank": "CMBCCNBS"},
                "reason": "moving away"
            }))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body
    }

    /// An officer approves the refund; its state afterwards.
    async fn approve(&self, id: &str) -> Value {
        let path = format!("/v1/refunds/{id}/approve");
        let (status, body) = self
            .server
            .post(&self.officer, &path, "ok-1", json!({}))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    async fn refund(&self, id: &str) -> Value {
        let (status, body) = self
            .server
            .get(&self.officer, &format!("/v1/refunds/{id}"))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    async fn kinds(&self) -> Vec<EntryKind> {
        self.server
            .store
            .entries(&self.institution, 0, 1000)
            .await
            .unwrap()
            .iter()
            .map(|e| e.kind)
            .collect()
    }

    async fn balance(&self, account: &str) -> String {
        let (_, b) = self
            .server
            .get(&self.officer, "/v1/institutions/INS-A/balances")
            .await;
        b["figures"][account].as_str().unwrap().to_string()
    }

    async fn stop(self) {
        self.bank.stop().await;
        self.server.stop().await;
    }
}

fn states(refund: &Value) -> Vec<String> {
    refund["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["state"].as_str().unwrap().to_string())
        .collect()
}

async fn a_refund_is_paid_once_through_a_failing_bank(backend: Backend) {
    let s = setup(backend).await;
    let requested = s.request().await;
    assert_eq!(requested["state"], "requested");
    assert_eq!(requested["answer_by"], "2026-09-22", "five working days");
    let id = requested["id"].as_str().unwrap().to_string();

    let (status, approved) = s
        .server
        .post(
            &s.officer,
            &format!("/v1/refunds/{id}/approve"),
            "ok-1",
            json!({"comment": "documents checked"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{approved}");
    assert_eq!(approved["state"], "instructed");
    assert_eq!(approved["pay_by"], "2026-10-06", "fifteen working days");
    let instruction = approved["instruction_id"].as_str().unwrap().to_string();
    assert_eq!(s.balance("refund_payable").await, "3000.00");
    // The instruction waits in the outbox, written with its entry.
    let outbox = s.server.store.outbox(None).await.unwrap();
    assert_eq!(outbox.len(), 1);
    assert_eq!(
        (outbox[0].instruction_id.as_str(), outbox[0].state),
        (instruction.as_str(), OutboxState::Pending)
    );
    assert_eq!(outbox[0].amount_minor, 300_000);

    // The bank is down: nothing is paid, the runner will try again.
    s.bank.fail_next(1, Failure::Status(503));
    let t = s.tick().await;
    assert_eq!((t.sent, t.send_failures), (0, 1));
    assert!(s.bank.payments().is_empty());
    let item = &s.server.store.outbox(None).await.unwrap()[0];
    assert_eq!((item.state, item.attempts), (OutboxState::Pending, 1));
    assert!(
        item.last_error.as_deref().unwrap().contains("503"),
        "{item:?}"
    );
    // Not before the back-off has passed.
    assert_eq!(s.tick().await, Tick::default());

    // The bank takes it but the answer never arrives: it paid, we do not know.
    s.later(Duration::seconds(6));
    s.bank.fail_next(1, Failure::Timeout);
    let t = s.tick().await;
    assert_eq!(t.send_failures, 1);
    assert_eq!(s.bank.payments().len(), 1);
    // The resend carries the same key: the bank answers with its receipt.
    s.later(Duration::seconds(11));
    let t = s.tick().await;
    assert_eq!(t.sent, 1, "{t:?}");
    assert_eq!(s.bank.payments().len(), 1, "paid twice");
    assert_eq!(s.bank.payments()[0].instruction_id, instruction);
    assert_eq!(s.bank.payments()[0].amount, "3000.00");
    assert_eq!(
        s.server.store.outbox(None).await.unwrap()[0].state,
        OutboxState::Accepted
    );

    // Executed at the bank: the books and the refund follow.
    s.later(Duration::seconds(31));
    assert_eq!(
        s.tick().await,
        Tick::default(),
        "the bank has not executed it yet"
    );
    assert!(s
        .bank
        .set_instruction_status(&instruction, InstructionStatus::Executed, None));
    s.later(Duration::seconds(31));
    let t = s.tick().await;
    assert_eq!(t.executed, 1, "{t:?}");
    let paid = s.refund(&id).await;
    assert_eq!(paid["state"], "paid");
    assert_eq!(
        states(&paid),
        ["requested", "approved", "instructed", "paid"]
    );
    assert!(paid["history"][1]["actor"]
        .as_str()
        .unwrap()
        .contains("officer"));
    assert_eq!(paid["history"][1]["detail"], "documents checked");
    assert_eq!(s.balance("refund_payable").await, "0.00");
    assert_eq!(s.balance("escrow").await, "1000.00");
    assert_eq!(
        s.kinds().await,
        [
            EntryKind::TuitionPaid,
            EntryKind::LessonsConsumed,
            EntryKind::RefundApproved,
            EntryKind::RefundPaymentInstructed,
            EntryKind::PendingConfirmed
        ]
    );
    // Nothing left to do, and doing nothing twice pays nothing twice.
    s.later(Duration::hours(1));
    assert_eq!(s.tick().await, Tick::default());
    assert_eq!(s.bank.payments().len(), 1);
    s.stop().await;
}
both!(a_refund_is_paid_once_through_a_failing_bank);

/// The last step the previous process finished before it died.
#[derive(Debug, Clone, Copy)]
enum Crash {
    Approval,
    RefundEntry,
    PaymentEntry,
    Sending,
}

async fn a_crash_anywhere_is_picked_up_by_the_next_runner(backend: Backend) {
    for crash in [
        Crash::Approval,
        Crash::RefundEntry,
        Crash::PaymentEntry,
        Crash::Sending,
    ] {
        let s = setup(backend).await;
        let id = s.request().await["id"].as_str().unwrap().to_string();
        let refund = s
            .server
            .store
            .refund(&s.institution, &id)
            .await
            .unwrap()
            .unwrap();
        // Redo, by hand, the steps the dead process had completed.
        s.server
            .store
            .move_refund(
                &s.institution,
                &id,
                RefundState::Requested,
                RefundState::Approved,
                "officer",
                None,
                None,
                None,
            )
            .await
            .unwrap();
        let entry = |client_id: String, command: Command| Request {
            institution: s.institution.clone(),
            client_id: ClientId::parse(client_id).unwrap(),
            currency: Currency::Cny,
            occurred_at: s.server.store.now(),
            external_ref: Some(id.clone()),
            command,
        };
        if !matches!(crash, Crash::Approval) {
            s.server
                .store
                .execute(entry(
                    refund.approval_client_id(),
                    Command::ApproveRefund {
                        enrollment: refund.enrollment.clone(),
                        amount: None,
                    },
                ))
                .await
                .unwrap();
        }
        if matches!(crash, Crash::PaymentEntry | Crash::Sending) {
            s.server
                .store
                .execute(entry(
                    refund.instruction_client_id(),
                    Command::InstructRefundPayment {
                        amount: ledger_core::Amount::from_minor(300_000).unwrap(),
                        source: ledger_core::RefundSource::Escrow,
                    },
                ))
                .await
                .unwrap();
        }
        if matches!(crash, Crash::Sending) {
            // The first runner got as far as the bank, then died.
            let t = s.tick().await;
            assert_eq!(t.sent, 1, "{crash:?}");
            s.server
                .store
                .update_outbox(
                    &s.institution,
                    &refund.instruction_client_id(),
                    OutboxState::Pending,
                    None,
                    Some("runner killed"),
                    None,
                )
                .await
                .unwrap();
        }
        // A fresh runner, started some minutes later, finishes the job.
        s.later(Duration::minutes(5));
        let t = s.tick().await;
        assert_eq!(t.sent, 1, "{crash:?}: {t:?}");
        assert!(s.bank.set_instruction_status(
            &refund.instruction_client_id(),
            InstructionStatus::Executed,
            None
        ));
        s.later(Duration::seconds(31));
        assert_eq!(s.tick().await.executed, 1, "{crash:?}");
        assert_eq!(s.refund(&id).await["state"], "paid", "{crash:?}");
        assert_eq!(s.bank.payments().len(), 1, "{crash:?}: paid twice");
        let kinds = s.kinds().await;
        for once in [
            EntryKind::RefundApproved,
            EntryKind::RefundPaymentInstructed,
            EntryKind::PendingConfirmed,
        ] {
            assert_eq!(
                kinds.iter().filter(|k| **k == once).count(),
                1,
                "{crash:?}: {kinds:?}"
            );
        }
        s.stop().await;
    }
}
both!(a_crash_anywhere_is_picked_up_by_the_next_runner);

async fn a_returned_refund_is_voided_and_raises_an_alert(backend: Backend) {
    let s = setup(backend).await;
    let id = s.request().await["id"].as_str().unwrap().to_string();
    let approved = s.approve(&id).await;
    let instruction = approved["instruction_id"].as_str().unwrap().to_string();
    assert_eq!(s.tick().await.sent, 1);
    s.bank.set_instruction_status(
        &instruction,
        InstructionStatus::Rejected,
        Some("payee account closed"),
    );
    s.later(Duration::seconds(31));
    assert_eq!(s.tick().await.returned, 1);
    let returned = s.refund(&id).await;
    assert_eq!(returned["state"], "returned");
    assert!(returned["history"][3]["detail"]
        .as_str()
        .unwrap()
        .contains("payee account closed"));
    // Still owed to the family; the escrow was never debited.
    assert_eq!(s.balance("refund_payable").await, "3000.00");
    assert_eq!(s.balance("escrow").await, "4000.00");
    let (_, alerts) = s.server.get(&s.officer, "/v1/alerts?severity=red").await;
    let alert = &alerts["items"][0];
    assert_eq!(alert["kind"], "instruction_returned", "{alerts}");
    assert!(alert["summary"]
        .as_str()
        .unwrap()
        .contains("payee account closed"));
    s.stop().await;
}
both!(a_returned_refund_is_voided_and_raises_an_alert);

async fn silence_is_approval_and_late_payment_is_flagged(backend: Backend) {
    let s = setup(backend).await;
    let id = s.request().await["id"].as_str().unwrap().to_string();
    // Answer deadline (22 Sep) not yet passed.
    s.later(Duration::days(7));
    assert_eq!(s.tick().await.deemed_approved, 0);
    s.later(Duration::days(1));
    let t = tick_jobs(&s.server.store, &BankDirectory::default(), &[Job::Workflow])
        .await
        .unwrap();
    assert_eq!(
        (t.deemed_approved, t.instructed, t.send_failures),
        (1, 1, 1),
        "{t:?}"
    );
    let refund = s.refund(&id).await;
    assert_eq!(states(&refund), ["requested", "approved", "instructed"]);
    assert!(refund["history"][1]["detail"]
        .as_str()
        .unwrap()
        .starts_with("deemed approved"));
    let item = &s.server.store.outbox(None).await.unwrap()[0];
    assert!(item
        .last_error
        .as_deref()
        .unwrap()
        .contains("no connection is configured for bank \"FAKE\""));
    // Fifteen working days on, still unpaid: a red alert, once.
    s.later(Duration::days(25));
    let t = tick_jobs(&s.server.store, &BankDirectory::default(), &[Job::Workflow])
        .await
        .unwrap();
    assert_eq!(t.overdue_alerts, 1);
    let t = tick_jobs(&s.server.store, &BankDirectory::default(), &[Job::Workflow])
        .await
        .unwrap();
    assert_eq!(t.overdue_alerts, 0, "the same condition updates its alert");
    let (_, alerts) = s.server.get(&s.officer, "/v1/alerts?severity=red").await;
    assert_eq!(alerts["items"][0]["kind"], "refund_overdue", "{alerts}");
    // The risk engine sees the same backlog, from the workflow's dates.
    let today = s.server.store.now().date_naive();
    let ranked = api::app::risk::assess(&s.server.store, &code("410922"), today)
        .await
        .unwrap();
    let backlog = ranked[0]
        .signals
        .iter()
        .find(|x| x.kind.code() == "refund_backlog")
        .expect("a refund backlog signal");
    assert!(
        backlog.summary.contains("approved and unpaid"),
        "{}",
        backlog.summary
    );
    assert!(backlog.summary.contains("3,000.00"), "{}", backlog.summary);
    s.stop().await;
}
both!(silence_is_approval_and_late_payment_is_flagged);

async fn only_the_right_people_move_a_refund(backend: Backend) {
    let s = setup(backend).await;
    let id = s.request().await["id"].as_str().unwrap().to_string();
    let bank = s.server.token(Role::Bank, Scope::Bank("FAKE".into())).await;
    let elsewhere = s
        .server
        .token(Role::Officer, Scope::Jurisdiction(code("420922")))
        .await;
    let approve = format!("/v1/refunds/{id}/approve");
    let (status, p) = s.server.post(&s.school, &approve, "x1", json!({})).await;
    assert_eq!(
        (status, p["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden")),
        "{p}"
    );
    let (status, _) = s.server.post(&elsewhere, &approve, "x2", json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = s.server.get(&elsewhere, &format!("/v1/refunds/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = s
        .server
        .post(
            &bank,
            "/v1/institutions/INS-A/refunds",
            "x3",
            json!({"enrollment": "E-1", "payee": {"name": "a", "account": "b", "bank": "c"}}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, p) = s
        .server
        .post(
            &s.school,
            "/v1/institutions/INS-A/refunds",
            "x4",
            json!({"enrollment": "E-404", "payee": {"name": "a", "account": "b", "bank": "c"}}),
        )
        .await;
    assert_eq!(
        (status, p["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("unknown_enrollment")),
        "{p}"
    );
    let (status, p) = s
        .server
        .post(
            &s.school,
            "/v1/institutions/INS-A/refunds",
            "x5",
            json!({"enrollment": "E-1", "payee": {"name": " ", "account": "b", "bank": "c"}}),
        )
        .await;
    assert_eq!(
        (status, p["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("payee.name")),
        "{p}"
    );
    // More than E-1 can get back (3,000.00 paid and not consumed), or an
    // account a pain.001 cannot carry: refused when asked, nothing kept
    // (an open request would stop the enrollment's releases).
    let before = s.server.store.refunds(None, None).await.unwrap();
    for (key, amount, account, field, says) in [
        (
            "x8",
            "99999999.00",
            "6214830100123456",
            "amount",
            "is more than enrollment E-1 can get back now: 3000.00 CNY",
        ),
        ("x9", "3000.01", "6214830100123456", "amount", "3000.00 CNY"),
        (
            "x10",
            "100.00",
            "6214 8301 0012 3456",
            "payee.account",
            "may only hold ASCII letters and digits",
        ),
    ] {
        let (status, p) = s
            .server
            .post(
                &s.school,
                "/v1/institutions/INS-A/refunds",
                key,
                json!({"enrollment": "E-1", "amount": amount,
                       "payee": {"name": "Zhang San", "account": account, "bank": "CMBCCNBS"}}),
            )
            .await;
        assert_eq!(
            (status, p["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some(field)),
            "{p}"
        );
        assert!(p["detail"].as_str().unwrap().contains(says), "{p}");
    }
    assert_eq!(s.server.store.refunds(None, None).await.unwrap(), before);
    let (status, p) = s
        .server
        .post(
            &s.officer,
            &format!("/v1/refunds/{id}/decline"),
            "x6-bare",
            json!({"comment": " "}),
        )
        .await;
    assert_eq!(
        (status, p["code"].as_str(), p["field"].as_str()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("reason_required"),
            Some("comment")
        ),
        "{p}"
    );
    let (status, declined) = s
        .server
        .post(
            &s.officer,
            &format!("/v1/refunds/{id}/decline"),
            "x6",
            json!({"comment": "course already finished"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(declined["state"], "declined");
    let (status, p) = s.server.post(&s.officer, &approve, "x7", json!({})).await;
    assert_eq!(
        (status, p["code"].as_str()),
        (StatusCode::CONFLICT, Some("refund_already_decided")),
        "{p}"
    );
    assert_eq!(s.tick().await, Tick::default());
    assert!(s.server.store.outbox(None).await.unwrap().is_empty());
    s.stop().await;
}
both!(only_the_right_people_move_a_refund);

async fn two_runners_never_do_the_same_job_twice(backend: Backend) {
    let s = setup(backend).await;
    let id = s.request().await["id"].as_str().unwrap().to_string();
    s.approve(&id).await;
    // A second process on the same database.
    let other = ledger_core::Store::connect_with(&s.server.url, s.clock.clone())
        .await
        .unwrap();
    let (a, b) = (s.runner(), s.runner());
    let (one, two) = tokio::join!(
        tick_jobs(&s.server.store, &a, &Job::ALL),
        tick_jobs(&other, &b, &Job::ALL)
    );
    let (one, two) = (one.unwrap(), two.unwrap());
    assert_eq!(one.risk_scans + two.risk_scans, 1, "{one:?} {two:?}");
    assert_eq!(
        one.reconciled_accounts + two.reconciled_accounts,
        1,
        "{one:?} {two:?}"
    );
    assert_eq!(one.sent + two.sent, 1, "{one:?} {two:?}");
    assert_eq!(s.bank.payments().len(), 1);
    // The same day and hour again: nothing to do for either.
    let again = tick_jobs(&other, &s.runner(), &[Job::Risk, Job::Reconcile])
        .await
        .unwrap();
    assert_eq!(again, Tick::default());
    // The next day, the scan runs again, once.
    s.later(Duration::days(1));
    let (one, two) = tokio::join!(
        tick_jobs(&s.server.store, &a, &[Job::Risk]),
        tick_jobs(&other, &b, &[Job::Risk])
    );
    assert_eq!(one.unwrap().risk_scans + two.unwrap().risk_scans, 1);
    other.close().await;
    s.stop().await;
}
both!(two_runners_never_do_the_same_job_twice);

async fn a_release_is_paid_to_the_payee_on_file(backend: Backend) {
    let s = setup(backend).await;
    let path = "/v1/institutions/INS-A/releases";
    let (status, p) = s
        .server
        .post(&s.officer, path, "REL-1", json!({"amount": "500.00"}))
        .await;
    assert_eq!(
        (status, p["code"].as_str()),
        (StatusCode::CONFLICT, Some("no_payee_on_file")),
        "{p}"
    );
    let payee = json!({"name": "INS-A School", "account": "6222000011112222", "bank": "CMBCCNBS"});
    let put = |token: &str| {
        send(
            s.server
                .request(
                    reqwest::Method::PUT,
                    Some(token),
                    "/v1/institutions/INS-A/payee",
                )
                .json(&payee),
        )
    };
    let (status, _) = put(&s.school).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // A new payee waits for a second, different officer.
    let (status, asked) = put(&s.officer).await;
    assert_eq!(
        (status, asked["state"].as_str()),
        (StatusCode::ACCEPTED, Some("pending")),
        "{asked}"
    );
    let checker = s.server.second_officer().await;
    let approve = |token: String, id: String, key: &'static str| {
        let path = format!("/v1/approvals/{id}/approve");
        let server = &s.server;
        async move { server.post(&token, &path, key, json!({})).await }
    };
    let (status, done) = approve(
        checker.clone(),
        asked["id"].as_str().unwrap().to_string(),
        "ok-payee",
    )
    .await;
    assert_eq!(
        (status, done["state"].as_str()),
        (StatusCode::OK, Some("approved")),
        "{done}"
    );
    // The account on file, put again, is no change.
    let (status, set) = put(&s.officer).await;
    assert_eq!((status, &set), (StatusCode::OK, &payee));
    let (status, got) = s
        .server
        .get(&s.school, "/v1/institutions/INS-A/payee")
        .await;
    assert_eq!((status, &got), (StatusCode::OK, &payee));

    let (status, p) = s
        .server
        .post(&s.officer, path, "REL:1", json!({"amount": "500.00"}))
        .await;
    assert_eq!(
        (status, p["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("Idempotency-Key")),
        "{p}"
    );
    // More than is releasable: refused when asked for, with the figures
    // (and checked again when a second officer approves).
    let (status, too_much) = s
        .server
        .post(&s.officer, path, "REL-2", json!({"amount": "1000.01"}))
        .await;
    assert_eq!(
        (status, too_much["code"].as_str()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("release_exceeds_releasable")
        ),
        "{too_much}"
    );
    let (status, asked) = s
        .server
        .post(&s.officer, path, "REL-1", json!({"amount": "500.00"}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{asked}");
    assert_eq!(asked["kind"], "release");
    assert_eq!(
        s.tick().await.sent,
        0,
        "nothing leaves before the second officer"
    );
    let (status, done) = approve(
        checker.clone(),
        asked["id"].as_str().unwrap().to_string(),
        "ok-rel-1",
    )
    .await;
    assert_eq!(
        (status, done["state"].as_str()),
        (StatusCode::OK, Some("approved")),
        "{done}"
    );

    assert_eq!(s.tick().await.sent, 1);
    let paid = s.bank.payments();
    assert_eq!(paid.len(), 1);
    assert_eq!(
        (paid[0].instruction_id.as_str(), paid[0].amount.as_str()),
        ("REL-1", "500.00")
    );
    assert!(
        paid[0].body.to_string().contains("6222000011112222"),
        "{:?}",
        paid[0].body
    );
    assert!(s
        .bank
        .set_instruction_status("REL-1", InstructionStatus::Executed, None));
    s.later(Duration::seconds(31));
    assert_eq!(s.tick().await.executed, 1);
    assert_eq!(s.balance("releasable").await, "500.00");
    assert_eq!(s.balance("escrow").await, "3500.00");
    s.stop().await;
}
both!(a_release_is_paid_to_the_payee_on_file);

async fn the_runner_pulls_new_statements_once(backend: Backend) {
    use ledger_core::domain::feeds::{AccountKind, BankAccount};
    let s = setup(backend).await;
    let statement: &[u8] =
        include_bytes!("../../crates/bank-adapter/tests/fixtures/mt940/chinese_cny.sta");
    // Its own bank id: the fake bank knows only the accounts it has statements for.
    s.server
        .store
        .register_bank("FAKE2", "FAKE2 bank")
        .await
        .unwrap();
    let account = account_of("FAKE2", statement);
    s.server
        .store
        .register_bank_account(&BankAccount {
            institution: s.institution.clone(),
            bank: "FAKE2".into(),
            account_no: account.clone(),
            kind: AccountKind::Deposit,
            currency: Currency::Cny,
        })
        .await
        .unwrap();
    s.bank
        .add_statement(&account, bank_adapter::Format::Mt940, statement.to_vec());
    let dir = tempfile::tempdir().unwrap();
    let mut banks = s.runner();
    banks.pull_from(
        "FAKE2",
        s.bank.url(),
        DEFAULT_CREDENTIAL,
        Some(500),
        dir.path().join("fake.json"),
    );
    let pull = || tick_jobs(&s.server.store, &banks, &[Job::Pull]);
    let t = pull().await.unwrap();
    assert_eq!((t.feeds_pulled, t.pull_failures), (1, 0), "{t:?}");
    assert_eq!(
        s.server
            .store
            .bank_line_count(&s.institution)
            .await
            .unwrap(),
        4
    );
    // At most once a minute per bank, and nothing twice.
    assert_eq!(pull().await.unwrap(), Tick::default());
    s.later(Duration::seconds(61));
    assert_eq!(pull().await.unwrap(), Tick::default());
    // A bank that is down: the pass says so and the next one resumes.
    s.bank.fail_next(10, Failure::Status(503));
    s.later(Duration::seconds(61));
    assert_eq!(pull().await.unwrap().pull_failures, 1);
    assert_eq!(
        s.server
            .store
            .bank_line_count(&s.institution)
            .await
            .unwrap(),
        4
    );
    // An account the bank does not know holds up no other account.
    s.bank.clear_failures();
    s.server
        .store
        .register_bank_account(&BankAccount {
            institution: s.institution.clone(),
            bank: "FAKE2".into(),
            account_no: "6222000000000000".into(),
            kind: AccountKind::Escrow,
            currency: Currency::Cny,
        })
        .await
        .unwrap();
    s.bank
        .add_statement(&account, bank_adapter::Format::Mt940, statement.to_vec());
    s.later(Duration::seconds(61));
    let t = pull().await.unwrap();
    assert_eq!((t.feeds_pulled, t.pull_failures), (1, 1), "{t:?}");
    s.stop().await;
}
both!(the_runner_pulls_new_statements_once);

async fn a_deposit_return_goes_out_of_the_deposit_account(backend: Backend) {
    use ledger_core::domain::feeds::{AccountKind, BankAccount};
    let s = setup(backend).await;
    s.server
        .store
        .register_bank_account(&BankAccount {
            institution: s.institution.clone(),
            bank: "FAKE".into(),
            account_no: "6222000000000009".into(),
            kind: AccountKind::Deposit,
            currency: Currency::Cny,
        })
        .await
        .unwrap();
    let request = |client_id: &str, command: Command| Request {
        institution: s.institution.clone(),
        client_id: ClientId::parse(client_id).unwrap(),
        currency: Currency::Cny,
        occurred_at: s.server.store.now(),
        external_ref: None,
        command,
    };
    s.server
        .store
        .execute(request(
            "dep-in",
            Command::PayInDeposit {
                amount: ledger_core::Amount::from_minor(100_000).unwrap(),
            },
        ))
        .await
        .unwrap();
    s.server
        .store
        .execute(request(
            "DEP-RET-1",
            Command::InstructDepositReturn {
                amount: ledger_core::Amount::from_minor(40_000).unwrap(),
            },
        ))
        .await
        .unwrap();
    // Without the institution's account on file it cannot go anywhere.
    let t = s.tick().await;
    assert_eq!(t.send_failures, 1);
    let error = s.server.store.outbox(None).await.unwrap()[0]
        .last_error
        .clone()
        .unwrap();
    assert!(error.contains("no payee account is on file"), "{error}");
    // A payee the instruction cannot carry (kept before payees were checked
    // as strictly as pain.001 needs; the API refuses it now) is noted on
    // the item and tried again later: the pass goes on.
    let kept_before = ledger_core::domain::refunds::Payee {
        name: "INS-A School".into(),
        account: "6222 0000 1111 2222".into(),
        bank: "CMBCCNBS".into(),
    };
    s.server
        .store
        .set_payee(&s.institution, &kept_before, "officer")
        .await
        .unwrap();
    s.later(Duration::seconds(6));
    let t = s.tick().await;
    assert_eq!((t.sent, t.send_failures), (0, 1), "{t:?}");
    let error = s.server.store.outbox(None).await.unwrap()[0]
        .last_error
        .clone()
        .unwrap();
    assert!(
        error.contains("creditor.account may only hold ASCII letters and digits"),
        "{error}"
    );
    assert!(s.bank.payments().is_empty());
    let payee = ledger_core::domain::refunds::Payee {
        name: "INS-A School".into(),
        account: "6222000011112222".into(),
        bank: "CMBCCNBS".into(),
    };
    s.server
        .store
        .set_payee(&s.institution, &payee, "officer")
        .await
        .unwrap();
    // The second failure waits 10 s.
    s.later(Duration::seconds(11));
    assert_eq!(s.tick().await.sent, 1);
    let paid = s.bank.payments();
    assert_eq!((paid.len(), paid[0].amount.as_str()), (1, "400.00"));
    let body = paid[0].body.to_string();
    assert!(
        body.contains("6222000000000009") && body.contains("6222000011112222"),
        "{body}"
    );
    s.stop().await;
}
both!(a_deposit_return_goes_out_of_the_deposit_account);

async fn deadlines_skip_the_rule_packs_holidays(backend: Backend) {
    let s = setup(backend).await;
    // The county names two holidays right after the request.
    let (status, p) = s
        .server
        .post(&s.officer, "/v1/jurisdictions/410922/rule-packs", "hol-1", json!({
            "version": 1, "effective_from": "2026-09-01",
            "params": {"holidays": ["2026-09-16", "2026-09-17"], "makeup_working_days": ["2026-09-19"]}
        }))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{p}");
    let (status, p) = s
        .server
        .post(
            &s.officer,
            "/v1/jurisdictions/410922/rule-packs",
            "hol-2",
            json!({
                "version": 2, "effective_from": "2026-09-01",
                "params": {"holidays": ["2026-09-19"], "makeup_working_days": ["2026-09-19"]}
            }),
        )
        .await;
    assert_eq!(
        (status, p["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_rule_pack")),
        "{p}"
    );
    // Tuesday 15 September + 5 working days: 18 (Fri), 19 (Sat, worked),
    // 21, 22, 23; 16 and 17 are holidays.
    let requested = s.request().await;
    assert_eq!(requested["answer_by"], "2026-09-23");
    s.stop().await;
}
both!(deadlines_skip_the_rule_packs_holidays);

/// A refund escrow cannot pay (a deposit-mode school holds the tuition
/// itself) once stopped every later refund: the pass aborted on it every
/// day. Now it is set aside with a red alert that names it and says why,
/// the pass goes on, and the alert clears once the refund moves on.
async fn a_refund_that_cannot_be_paid_holds_up_no_other(backend: Backend) {
    let s = setup(backend).await;
    let store = &s.server.store;
    let deposit_school = deposit_school(store).await;
    enrollment(store, &deposit_school, "E-D", 20, 200_000).await;
    store
        .execute(Request {
            institution: deposit_school.clone(),
            client_id: ClientId::parse("collect-d").unwrap(),
            currency: Currency::Cny,
            occurred_at: Utc.with_ymd_and_hms(2026, 9, 3, 9, 0, 0).unwrap(),
            external_ref: None,
            command: Command::CollectOutsideEscrow {
                enrollment: ledger_core::EnrollmentId::parse("E-D").unwrap(),
                amount: ledger_core::Amount::from_minor(200_000).unwrap(),
            },
        })
        .await
        .unwrap();
    let d_token = s
        .server
        .token(
            Role::Institution,
            Scope::Institution(deposit_school.clone()),
        )
        .await;
    // The deposit school's refund is asked first, so it comes first.
    let (status, blocked) = s
        .server
        .post(
            &d_token,
            "/v1/institutions/INS-D/refunds",
            "rf-d",
            json!({
                "enrollment": "E-D",
                "payee": {"name": "Wang Wu", "account": "6222020200112233445", "bank": "ICBKCNBJ"}
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{blocked}");
    let blocked_id = blocked["id"].as_str().unwrap().to_string();
    let (status, p) = s
        .server
        .post(
            &s.officer,
            &format!("/v1/refunds/{blocked_id}/approve"),
            "ok-d",
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{p}");
    assert_eq!(p["state"], "approved", "escrow cannot pay it: {p}");
    let id = s.request().await["id"].as_str().unwrap().to_string();
    // Unanswered for eight days: deemed approved, then instructed.
    s.later(Duration::days(8));
    let t = s.tick().await;
    assert_eq!(
        (t.deemed_approved, t.instructed, t.set_aside),
        (1, 1, 1),
        "{t:?}"
    );
    assert_eq!(s.refund(&id).await["state"], "instructed");
    assert_eq!(s.refund(&blocked_id).await["state"], "approved");
    let key = format!("refund_blocked:{blocked_id}");
    let alert = store
        .alerts(Some(&deposit_school), None)
        .await
        .unwrap()
        .into_iter()
        .find(|a| a.key == key)
        .expect("a red alert for the refund set aside");
    assert_eq!(alert.severity, ledger_core::domain::alerts::Severity::Red);
    for says in [
        blocked_id.as_str(),
        "2000.00 CNY",
        "would_overdraw",
        "deposit mode",
        "risk deposit",
    ] {
        assert!(alert.summary.contains(says), "{says}: {}", alert.summary);
    }
    // The next pass tries it again and does not duplicate the alert.
    let t = s.tick().await;
    assert_eq!(t.set_aside, 1, "{t:?}");
    assert_eq!(
        store
            .alert_trail(&deposit_school, &key)
            .await
            .unwrap()
            .len(),
        1,
        "raised once"
    );
    // Money reaches escrow (the school pays a family's tuition into the
    // supervised account, as the bureau ordered): the refund can be paid,
    // and its alert resolves itself, with a trail entry.
    enrollment(store, &deposit_school, "E-D2", 20, 200_000).await;
    pay(store, &deposit_school, "E-D2", "pay-d2", 200_000).await;
    let t = s.tick().await;
    assert_eq!((t.set_aside, t.instructed), (0, 1), "{t:?}");
    assert_eq!(s.refund(&blocked_id).await["state"], "instructed");
    let alert = store
        .alerts(Some(&deposit_school), None)
        .await
        .unwrap()
        .into_iter()
        .find(|a| a.key == key)
        .unwrap();
    assert_eq!(alert.status.code(), "resolved");
    let trail = store.alert_trail(&deposit_school, &key).await.unwrap();
    let last = trail.last().unwrap();
    assert_eq!((last.1.as_str(), last.2.as_str()), ("workflow", "resolved"));
    assert!(
        last.3.as_deref().unwrap().contains("no longer held up"),
        "{last:?}"
    );
    s.stop().await;
}
both!(a_refund_that_cannot_be_paid_holds_up_no_other);

/// A deposit-mode school's refunds are paid where the money is: by the
/// school itself (recorded with the bank's reference, out of what it
/// collected) or, by an officer's decision, from its risk deposit through
/// the bank. Either way at most once, and never by the wrong people.
async fn a_set_aside_refund_is_paid_where_the_money_is(backend: Backend) {
    use ledger_core::domain::feeds::{AccountKind, BankAccount};
    let s = setup(backend).await;
    let store = &s.server.store;
    let d = deposit_school(store).await;
    store
        .register_bank_account(&BankAccount {
            institution: d.clone(),
            bank: "FAKE".into(),
            account_no: "6222000000000077".into(),
            kind: AccountKind::Deposit,
            currency: Currency::Cny,
        })
        .await
        .unwrap();
    let run = |client_id: &str, command: Command| Request {
        institution: d.clone(),
        client_id: ClientId::parse(client_id).unwrap(),
        currency: Currency::Cny,
        occurred_at: Utc.with_ymd_and_hms(2026, 9, 3, 9, 0, 0).unwrap(),
        external_ref: None,
        command,
    };
    for (e, collect) in [("E-D1", "collect-1"), ("E-D2", "collect-2")] {
        enrollment(store, &d, e, 20, 200_000).await;
        store
            .execute(run(
                collect,
                Command::CollectOutsideEscrow {
                    enrollment: ledger_core::EnrollmentId::parse(e).unwrap(),
                    amount: ledger_core::Amount::from_minor(200_000).unwrap(),
                },
            ))
            .await
            .unwrap();
    }
    store
        .execute(run(
            "dep-in",
            Command::PayInDeposit {
                amount: ledger_core::Amount::from_minor(500_000).unwrap(),
            },
        ))
        .await
        .unwrap();
    let school = s
        .server
        .token(Role::Institution, Scope::Institution(d.clone()))
        .await;
    let other_school = s.school.clone();
    let mut ids = Vec::new();
    for (n, e) in ["E-D1", "E-D2"].iter().enumerate() {
        let (status, r) = s
            .server
            .post(&school, "/v1/institutions/INS-D/refunds", &format!("rq-{n}"), json!({
                "enrollment": e, "amount": "500.00",
                "payee": {"name": "Wang Wu", "account": "6222020200112233445", "bank": "ICBKCNBJ"}
            }))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{r}");
        let id = r["id"].as_str().unwrap().to_string();
        let (status, r) = s
            .server
            .post(
                &s.officer,
                &format!("/v1/refunds/{id}/approve"),
                &format!("ok-{n}"),
                json!({}),
            )
            .await;
        assert_eq!(
            (status, r["state"].as_str()),
            (StatusCode::OK, Some("approved")),
            "{r}"
        );
        ids.push(id);
    }
    let held_before = held_by_institution(store, &d).await;

    // Bad or misplaced requests change nothing.
    let before = counts(store).await;
    let paid_path = format!("/v1/refunds/{}/paid-by-institution", ids[0]);
    for (token, key, body, status, code) in [
        (
            &school,
            "bad-1",
            json!({"bank_ref": " "}),
            422,
            "invalid_field",
        ),
        (&school, "bad-2", json!({}), 422, "invalid_body"),
        (
            &other_school,
            "bad-3",
            json!({"bank_ref": "X"}),
            404,
            "not_found",
        ),
    ] {
        let (got, p) = s.server.post(token, &paid_path, key, body).await;
        assert_eq!(
            (got.as_u16(), p["code"].as_str()),
            (status, Some(code)),
            "{key}: {p}"
        );
    }
    let (got, p) = s
        .server
        .post(
            &school,
            &format!("/v1/refunds/{}/pay-from-deposit", ids[1]),
            "bad-4",
            json!({}),
        )
        .await;
    assert_eq!(
        got,
        StatusCode::FORBIDDEN,
        "only an officer decides to use the deposit: {p}"
    );
    assert_eq!(counts(store).await, before);
    // A custody school's refund is paid from escrow, never recorded as paid.
    let custody = s.request().await["id"].as_str().unwrap().to_string();
    let before_custody = counts(store).await;
    let (got, p) = s
        .server
        .post(
            &s.school,
            &format!("/v1/refunds/{custody}/paid-by-institution"),
            "bad-5",
            json!({"bank_ref": "X"}),
        )
        .await;
    assert_eq!(
        (got, p["code"].as_str()),
        (StatusCode::CONFLICT, Some("refund_paid_from_escrow")),
        "{p}"
    );
    assert_eq!(counts(store).await, before_custody);

    // The school paid the family itself: recorded, the refund is paid.
    let (status, r) = s
        .server
        .post(
            &school,
            &paid_path,
            "paid-1",
            json!({"bank_ref": "CMB20260916-0042"}),
        )
        .await;
    assert_eq!(
        (status, r["state"].as_str()),
        (StatusCode::OK, Some("paid")),
        "{r}"
    );
    assert!(r["history"].as_array().unwrap().last().unwrap()["detail"]
        .as_str()
        .unwrap()
        .contains("CMB20260916-0042"));
    assert_eq!(held_by_institution(store, &d).await, held_before - 50_000);
    // Once: the same refund cannot be paid again, either way.
    let (status, p) = s
        .server
        .post(
            &s.officer,
            &format!("/v1/refunds/{}/pay-from-deposit", ids[0]),
            "again",
            json!({}),
        )
        .await;
    assert_eq!(
        (status, p["code"].as_str()),
        (StatusCode::CONFLICT, Some("refund_not_awaiting_payment")),
        "{p}"
    );

    // The other one an officer pays from the deposit: the bank is told to
    // pay it out of the deposit account.
    let (status, r) = s
        .server
        .post(
            &s.officer,
            &format!("/v1/refunds/{}/pay-from-deposit", ids[1]),
            "dep-1",
            json!({}),
        )
        .await;
    assert_eq!(
        (status, r["state"].as_str()),
        (StatusCode::OK, Some("instructed")),
        "{r}"
    );
    s.later(Duration::seconds(6));
    s.tick().await;
    let paid: Vec<_> = s
        .bank
        .payments()
        .into_iter()
        .filter(|p| p.body.to_string().contains("6222000000000077"))
        .collect();
    assert_eq!(paid.len(), 1, "one payment out of the deposit account");
    assert_eq!(paid[0].amount, "500.00");
    let report = store.verify().await.unwrap();
    assert!(report.ok(), "{report:?}");
    s.stop().await;
}
both!(a_set_aside_refund_is_paid_where_the_money_is);

/// What the institution holds of the tuition it collected itself.
async fn held_by_institution(store: &ledger_core::Store, i: &InstitutionId) -> i64 {
    let institution = store.institution(i).await.unwrap();
    store
        .balance_sheets(&[institution])
        .await
        .unwrap()
        .remove(i)
        .unwrap()
        .balance("held_by_institution")
}

/// A bank that takes payment files: the runner writes the refund as a
/// pain.001.001.09 file into the bank's drop folder (valid against ISO
/// 20022's schema), and the bank's statement, reconciled, confirms it as
/// it does for a bank with an API: the refund is paid, once.
async fn a_drop_folder_bank_gets_a_valid_file_and_its_statement_confirms_it(backend: Backend) {
    use bank_adapter::model::{Balance, Format, Line, SourceRef, Statement};
    use ledger_core::domain::money::minor_to_decimal;
    let s = setup(backend).await;
    let folder = tempfile::tempdir().unwrap();
    let runner = || {
        let mut banks = BankDirectory::default();
        banks.drop_to("FAKE", folder.path().to_path_buf());
        banks
    };
    let id = s.request().await["id"].as_str().unwrap().to_string();
    s.approve(&id).await;
    let store = &s.server.store;
    let tick = |banks: BankDirectory| async move {
        tick_jobs(store, &banks, &[Job::Workflow]).await.unwrap()
    };
    assert_eq!(tick(runner()).await.sent, 1);
    let outbox = store.outbox(None).await.unwrap();
    let instruction = outbox[0].instruction_id.clone();
    let file = folder.path().join(format!("{instruction}.xml"));
    let xml = std::fs::read_to_string(&file).unwrap();
    assert!(
        xml.contains("<InstdAmt Ccy=\"CNY\">3000.00</InstdAmt>"),
        "{xml}"
    );
    assert!(
        xml.contains("Zhang San") && xml.contains(&instruction),
        "{xml}"
    );
    let schema = std::process::Command::new(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/iso20022-xsd"),
    )
    .output()
    .unwrap();
    assert!(
        schema.status.success(),
        "{}",
        String::from_utf8_lossy(&schema.stderr)
    );
    let checked = std::process::Command::new("xmllint")
        .args(["--noout", "--schema"])
        .arg(String::from_utf8(schema.stdout).unwrap().trim())
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        checked.status.success(),
        "{}",
        String::from_utf8_lossy(&checked.stderr)
    );
    // Nothing to ask a folder: the instruction waits for the statement,
    // and a second pass writes no second file.
    let again = tick(runner()).await;
    assert_eq!((again.sent, again.executed), (0, 0), "{again:?}");
    assert_eq!(std::fs::read_dir(folder.path()).unwrap().count(), 1);

    // The bank's statement of the day: 4,000.00 held, 3,000.00 out to the family.
    let day = store.now().date_naive();
    let statement = Statement {
        format: Format::Camt053,
        account: "6222000000000001".into(),
        currency: "CNY".into(),
        statement_id: "0001-260915".into(),
        sequence: Some("1/1".into()),
        opening_balance: Some(Balance {
            amount: minor_to_decimal(400_000, Currency::Cny),
            date: day,
        }),
        closing_balance: Some(Balance {
            amount: minor_to_decimal(100_000, Currency::Cny),
            date: day,
        }),
        lines: vec![Line::booked_transfer(
            minor_to_decimal(-300_000, Currency::Cny),
            day,
            Some(instruction.clone()),
            "B-OUT-1".into(),
            "退费 Zhang San".into(),
        )],
        source: SourceRef::unwritten(),
    };
    let bytes = bank_adapter::render::camt053::camt053(&[statement]);
    api::app::feeds::ingest_bytes(store, "FAKE", bytes.as_bytes())
        .await
        .unwrap();
    let account = store
        .supervised_accounts(&s.institution)
        .await
        .unwrap()
        .remove(0);
    api::app::reconcile::record_account(store, &account, None)
        .await
        .unwrap();
    s.later(Duration::seconds(31));
    assert_eq!(tick(runner()).await.executed, 1);
    let (_, r) = s.server.get(&s.officer, &format!("/v1/refunds/{id}")).await;
    assert_eq!(r["state"], "paid", "{r}");
    assert_eq!(s.balance("escrow").await, "1000.00");
    assert_eq!(tick(runner()).await, Tick::default());
    s.stop().await;
}
both!(a_drop_folder_bank_gets_a_valid_file_and_its_statement_confirms_it);

/// A bank that takes payment files over its API: the runner uploads the
/// refund as a pain.001.001.09 file (`POST /v1/payments/pain001`,
/// `application/xml`, the instruction id as Idempotency-Key and MsgId);
/// the bank is down at first, then takes the file but its answer is lost,
/// and the resend is answered from its idempotency record: paid exactly
/// once, and the bank's status, asked by EndToEndId, settles it.
async fn a_pain001_file_uploaded_to_a_failing_bank_is_paid_exactly_once(backend: Backend) {
    let s = setup(backend).await;
    let runner = || {
        let mut banks = s.runner();
        banks.upload_pain001_to("FAKE");
        banks
    };
    let tick = || async {
        tick_jobs(&s.server.store, &runner(), &[Job::Workflow])
            .await
            .unwrap()
    };
    let id = s.request().await["id"].as_str().unwrap().to_string();
    let instruction = s.approve(&id).await["instruction_id"]
        .as_str()
        .unwrap()
        .to_string();

    // The bank is down: nothing is paid, the runner will try again.
    s.bank.fail_next(1, Failure::Status(503));
    let t = tick().await;
    assert_eq!((t.sent, t.send_failures), (0, 1), "{t:?}");
    assert!(s.bank.payments().is_empty());
    let item = &s.server.store.outbox(None).await.unwrap()[0];
    assert_eq!((item.state, item.attempts), (OutboxState::Pending, 1));
    assert!(
        item.last_error.as_deref().unwrap().contains("503"),
        "{item:?}"
    );
    assert_eq!(tick().await, Tick::default(), "not before the back-off");

    // The bank takes the file, but its answer never arrives.
    s.later(Duration::seconds(6));
    s.bank.fail_next(1, Failure::Timeout);
    assert_eq!(tick().await.send_failures, 1);
    assert_eq!(s.bank.payments().len(), 1);
    // The resend is the same file under the same key: the bank's receipt.
    s.later(Duration::seconds(11));
    let t = tick().await;
    assert_eq!(t.sent, 1, "{t:?}");
    let payments = s.bank.payments();
    assert_eq!(payments.len(), 1, "paid twice: {payments:?}");
    assert_eq!(payments[0].instruction_id, instruction);
    assert_eq!(
        (payments[0].amount.as_str(), payments[0].currency.as_str()),
        ("3000.00", "CNY")
    );
    let uploads: Vec<_> = s
        .bank
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path == "/v1/payments/pain001")
        .collect();
    assert_eq!(uploads.len(), 3, "{uploads:?}");
    assert!(uploads
        .iter()
        .all(|r| r.idempotency_key.as_deref() == Some(instruction.as_str())));
    assert_eq!(
        s.bank.count_requests("POST", "/v1/instructions"),
        0,
        "no JSON"
    );
    // The file the bank kept is valid pain.001.001.09 (ISO 20022's schema).
    let files = s.bank.pain001_files();
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].0, instruction);
    let xml = String::from_utf8(files[0].1.clone()).unwrap();
    assert!(
        xml.contains("<InstdAmt Ccy=\"CNY\">3000.00</InstdAmt>") && xml.contains("Zhang San"),
        "{xml}"
    );
    let folder = tempfile::tempdir().unwrap();
    let file = folder.path().join("upload.xml");
    std::fs::write(&file, &xml).unwrap();
    let schema = std::process::Command::new(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/iso20022-xsd"),
    )
    .output()
    .unwrap();
    assert!(
        schema.status.success(),
        "{}",
        String::from_utf8_lossy(&schema.stderr)
    );
    let checked = std::process::Command::new("xmllint")
        .args(["--noout", "--schema"])
        .arg(String::from_utf8(schema.stdout).unwrap().trim())
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        checked.status.success(),
        "{}",
        String::from_utf8_lossy(&checked.stderr)
    );

    // Executed at the bank: asked by the instruction's EndToEndId, the
    // books and the refund follow.
    s.later(Duration::seconds(31));
    assert_eq!(tick().await, Tick::default(), "not executed yet");
    assert!(s
        .bank
        .set_instruction_status(&instruction, InstructionStatus::Executed, None));
    s.later(Duration::seconds(31));
    assert_eq!(tick().await.executed, 1);
    let paid = s.refund(&id).await;
    assert_eq!(paid["state"], "paid", "{paid}");
    assert_eq!(s.balance("refund_payable").await, "0.00");
    assert_eq!(s.balance("escrow").await, "1000.00");
    s.later(Duration::hours(1));
    assert_eq!(tick().await, Tick::default());
    assert_eq!(s.bank.payments().len(), 1);
    s.stop().await;
}
both!(a_pain001_file_uploaded_to_a_failing_bank_is_paid_exactly_once);
