//! Signed outbound webhooks over HTTP against a real server, the job runner,
//! a (fake) bank and a real receiving HTTP server that fails its first
//! attempts: every event (a lesson awaiting the family, refund state
//! changes, a red alert, a release executed) reaches the receiver exactly
//! once, signed as banks sign their pushes (checked by the receiver with the
//! secret the subscription answered with), after retries with backoff; the
//! delivery log shows each attempt; a replay sends one again under the same
//! id; a subscription scoped to another institution hears nothing of this
//! one; and refusals say what and why.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use api::access::{Role, Scope};
use api::app::banks::BankDirectory;
use api::app::jobs::{tick_jobs, Job, Tick};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use bank_adapter::fake_bank::{FakeBank, DEFAULT_CREDENTIAL};
use bank_adapter::instruction::InstructionStatus;
use bank_adapter::secret::Secret;
use bank_adapter::signature;
use chrono::{DateTime, Duration, TimeZone, Utc};
use ledger_core::domain::alerts::{AlertKind, Finding, Severity};
use ledger_core::domain::lessons::ReleaseCadence;
use ledger_core::domain::refunds::Payee;
use ledger_core::store::Clock;
use ledger_core::{RulePack, RuleParams};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::*;

fn at(m: u32, d: u32, h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, m, d, h, 0, 0).unwrap()
}

/// What the receiver saw.
#[derive(Default)]
struct Seen {
    /// The secret to check signatures with (known once subscribed).
    secret: Option<String>,
    /// Requests to fail (500) before answering 200.
    fail_first: usize,
    requests: usize,
    /// Accepted deliveries by event id: how many times, and the body.
    accepted: BTreeMap<String, (usize, Value)>,
    /// Deliveries whose signature did not check, with why.
    bad: Vec<String>,
}

struct Receiver {
    url: String,
    seen: Arc<Mutex<Seen>>,
}

async fn receive(
    State((seen, clock)): State<(Arc<Mutex<Seen>>, Clock)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> AxumStatus {
    let mut s = seen.lock().unwrap();
    s.requests += 1;
    if s.requests <= s.fail_first {
        return AxumStatus::INTERNAL_SERVER_ERROR;
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let Some(secret) = s.secret.clone() else {
        s.bad
            .push("a delivery before the subscription was answered".into());
        return AxumStatus::BAD_REQUEST;
    };
    if let Err(e) = signature::verify(
        &Secret::new(secret),
        header(signature::TIMESTAMP_HEADER),
        header(signature::SIGNATURE_HEADER),
        &body,
        clock.now(),
    ) {
        s.bad.push(e.to_string());
        return AxumStatus::UNAUTHORIZED;
    }
    let value: Value = serde_json::from_slice(&body).unwrap();
    let id = value["id"].as_str().unwrap().to_string();
    assert_eq!(header("X-Escrow-Event-Id"), Some(id.as_str()));
    assert_eq!(header("X-Escrow-Event-Type"), value["type"].as_str());
    s.accepted.entry(id).or_insert((0, value)).0 += 1;
    AxumStatus::OK
}

async fn receiver(clock: Clock, fail_first: usize) -> Receiver {
    let seen = Arc::new(Mutex::new(Seen {
        fail_first,
        ..Seen::default()
    }));
    let app = axum::Router::new()
        .route("/hooks", axum::routing::post(receive))
        .with_state((seen.clone(), clock));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Receiver { url, seen }
}

async fn webhooks_reach_a_failing_receiver_once_per_event_signed(backend: Backend) {
    let clock = Clock::manual(at(9, 1, 8));
    let server = Server::start_clocked(backend, clock.clone()).await;
    jurisdictions(&server.store).await;
    server
        .store
        .put_rule_pack(&RulePack {
            jurisdiction: code("410922"),
            version: 1,
            effective_from: day(2026, 1, 1),
            params: RuleParams {
                lesson_confirm_working_days: Some(7),
                release_cadence: Some(ReleaseCadence::PerLesson),
                ..RuleParams::default()
            },
        })
        .await
        .unwrap();
    let institution = institution(&server.store, "INS-A", "410922").await;
    let other = institution_b(&server).await;
    let school = server
        .token(Role::Institution, Scope::Institution(institution.clone()))
        .await;
    let officer = server
        .token(Role::Officer, Scope::Jurisdiction(code("410922")))
        .await;
    let stranger = server
        .token(Role::Officer, Scope::Jurisdiction(code("420922")))
        .await;
    let receiver = receiver(clock.clone(), 3).await;
    let quiet = receiver_quiet(clock.clone()).await;

    // Refusals first: out of scope is absent, a school may not subscribe,
    // and bad input names its field.
    let all = [
        "alert.red",
        "refund.state_changed",
        "lessons.awaiting_confirmation",
        "release.executed",
    ];
    let (status, body) = server
        .post(
            &stranger,
            "/v1/webhooks",
            "wh-x",
            json!({"url": receiver.url, "events": all, "jurisdiction": "410922"}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = server
        .post(
            &school,
            "/v1/webhooks",
            "wh-s",
            json!({"url": receiver.url, "events": all, "institution": "INS-A"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body) = server
        .post(&officer, "/v1/webhooks", "wh-e",
              json!({"url": receiver.url, "events": ["alert.red", "alert.green"], "jurisdiction": "410922"}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(
        (body["code"].as_str(), body["field"].as_str()),
        (Some("unknown_event_type"), Some("events[1]")),
        "{body}"
    );
    let (status, body) = server
        .post(
            &officer,
            "/v1/webhooks",
            "wh-u",
            json!({"url": "ftp://example.org/x", "events": all, "jurisdiction": "410922"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["code"], "invalid_url", "{body}");
    let (status, body) = server
        .post(&officer, "/v1/webhooks", "wh-b",
              json!({"url": receiver.url, "events": all, "jurisdiction": "410922", "institution": "INS-A"}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");

    // The county's subscription to everything, and one to INS-B only.
    let (status, sub) = server
        .post(
            &officer,
            "/v1/webhooks",
            "wh-1",
            json!({"url": receiver.url, "events": all, "jurisdiction": "410922"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{sub}");
    let secret = sub["secret"].as_str().unwrap().to_string();
    receiver.seen.lock().unwrap().secret = Some(secret);
    // Red alerts are the bureau's: a platform token may neither subscribe
    // to them nor see a subscription that carries them.
    let platform = server
        .token(Role::Platform, Scope::Jurisdiction(code("410922")))
        .await;
    let (status, body) = server
        .post(
            &platform,
            "/v1/webhooks",
            "wh-p",
            json!({"url": receiver.url, "events": ["refund.state_changed", "alert.red"], "jurisdiction": "410922"}),
        )
        .await;
    assert_eq!(
        (status, body["field"].as_str()),
        (StatusCode::FORBIDDEN, Some("events")),
        "{body}"
    );
    assert!(
        body["detail"].as_str().unwrap().contains("alert.red"),
        "{body}"
    );
    let (status, list) = server.get(&platform, "/v1/webhooks").await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["items"], json!([]), "{list}");
    let sub_id = sub["id"].as_str().unwrap();
    let (status, _) = server
        .get(&platform, &format!("/v1/webhooks/{sub_id}/deliveries"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let sub_id = sub["id"].as_str().unwrap().to_string();
    let (status, sub_b) = server
        .post(
            &officer,
            "/v1/webhooks",
            "wh-2",
            json!({"url": quiet.url, "events": all, "institution": other}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{sub_b}");
    quiet.seen.lock().unwrap().secret = sub_b["secret"].as_str().map(str::to_string);
    // The list shows no secrets, and nothing to another county.
    let (status, list) = server.get(&officer, "/v1/webhooks").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["items"].as_array().unwrap().len(), 2, "{list}");
    assert!(list["items"][0]["secret"].is_null(), "{list}");
    let (_, list) = server.get(&stranger, "/v1/webhooks").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 0, "{list}");
    let (status, _) = server
        .get(&stranger, &format!("/v1/webhooks/{sub_id}/deliveries"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The term: an enrollment paid, lessons recorded and confirmed, a
    // release paid by the bank, a refund asked for, a red alert.
    let (status, e) = server
        .post(
            &school,
            "/v1/institutions/INS-A/enrollments",
            "enr-1",
            json!({"id": "E-1", "student_ref": "S-1", "hours_bought": 40, "price": "4000.00",
                     "course_start": "2026-09-01", "course_end": "2026-11-30"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{e}");
    let family = e["family_token"].as_str().unwrap().to_string();
    pay(&server.store, &institution, "E-1", "pay-1", 400_000).await;
    bank_account(&server.store, "FAKE", &institution, "6222000000000001").await;
    let payee = Payee {
        name: "INS-A School".into(),
        account: "6222000011112222".into(),
        bank: "CMBCCNBS".into(),
    };
    server
        .store
        .set_payee(&institution, &payee, "setup")
        .await
        .unwrap();
    let bank = FakeBank::start().await;
    let mut banks = BankDirectory::default();
    banks
        .add("FAKE", bank.url(), DEFAULT_CREDENTIAL, Some(500))
        .unwrap();

    clock.set(at(9, 18, 17));
    let (status, l1) = server
        .post(
            &school,
            "/v1/institutions/INS-A/lessons",
            "l-1",
            json!({"enrollment": "E-1", "hours": 2, "occurred_on": "2026-09-18"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{l1}");
    let (status, c) = server
        .post(
            &family,
            "/v1/institutions/INS-A/lessons/L1/confirm",
            "c-1",
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{c}");
    clock.set(at(9, 19, 6));
    let tick: Tick = run_jobs(&server.store, &banks).await;
    assert_eq!((tick.releases_instructed, tick.sent), (1, 1), "{tick:?}");
    let instruction = bank.payments()[0].instruction_id.clone();
    assert!(bank.set_instruction_status(&instruction, InstructionStatus::Executed, None));
    let (status, rf) = server
        .post(&family, "/v1/institutions/INS-A/refunds", "rf-1",
              json!({"enrollment": "E-1", "reason": "moving away",
                     "payee": {"name": "Zhang San", "account": "6214830100123456", "bank": "CMBCCNBS"}}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{rf}");
    let refund = rf["id"].as_str().unwrap().to_string();
    server
        .store
        .record_findings(
            &institution,
            day(2026, 9, 19),
            &[Finding {
                key: "test:red".into(),
                kind: AlertKind::RefundBlocked,
                severity: Severity::Red,
                summary: "a red alert for the webhook".into(),
                evidence: "[]".into(),
                rule_pack: "test".into(),
            }],
        )
        .await
        .unwrap();

    // The runner goes on, the clock with it: the receiver fails three
    // requests, the deliveries are tried again after their backoff.
    let expected = [
        "lessons.awaiting_confirmation:INS-A:L1".to_string(),
        format!("refund.state_changed:INS-A:{refund}:1"),
        "alert.red:INS-A:test:red:1".to_string(),
        format!("release.executed:INS-A:{instruction}"),
    ];
    let mut failures = tick.webhook_failures;
    for step in 0..12 {
        clock.set(at(9, 19, 6) + Duration::minutes(5 * (step + 1)));
        let t = run_jobs(&server.store, &banks).await;
        failures += t.webhook_failures;
        let seen = receiver.seen.lock().unwrap();
        if expected.iter().all(|e| seen.accepted.contains_key(e)) {
            break;
        }
    }
    assert_eq!(failures, 3);
    {
        let seen = receiver.seen.lock().unwrap();
        assert!(seen.bad.is_empty(), "{:?}", seen.bad);
        for e in &expected {
            let (times, body) = seen
                .accepted
                .get(e)
                .unwrap_or_else(|| panic!("{e} not delivered; got {:?}", seen.accepted.keys()));
            assert_eq!(*times, 1, "{e} delivered {times} times");
            assert_eq!(body["subscription"], sub_id.as_str());
            assert_eq!(body["institution"], "INS-A");
        }
        // Every refund step of INS-A, once each.
        assert!(seen.accepted.values().all(|(n, _)| *n == 1));
        let (_, lesson) = &seen.accepted[&expected[0]];
        assert_eq!(lesson["type"], "lessons.awaiting_confirmation");
        assert_eq!(
            lesson["detail"], "enrollment E-1: 2 hours on 2026-09-18, answer by 2026-09-29",
            "{lesson}"
        );
    }
    // More passes send nothing again.
    clock.set(at(9, 20, 6));
    let before = receiver.seen.lock().unwrap().requests;
    let t = run_jobs(&server.store, &banks).await;
    assert_eq!((t.webhooks_queued, t.webhooks_delivered), (0, 0), "{t:?}");
    assert_eq!(receiver.seen.lock().unwrap().requests, before);

    // The delivery log: the failed attempts with the receiver's status.
    let (status, log) = server
        .get(&officer, &format!("/v1/webhooks/{sub_id}/deliveries"))
        .await;
    assert_eq!(status, StatusCode::OK, "{log}");
    let items = log["items"].as_array().unwrap();
    assert!(items.iter().all(|d| d["state"] == "delivered"), "{log}");
    let failed: usize = items
        .iter()
        .flat_map(|d| d["log"].as_array().unwrap())
        .filter(|a| a["status"] == 500)
        .count();
    assert_eq!(failed, 3, "{log}");

    // A replay sends one again, under the same id (the receiver's dedupe
    // sees it twice), and names who asked.
    let event = &expected[0];
    let (status, replayed) = server
        .post(
            &officer,
            &format!("/v1/webhooks/{sub_id}/deliveries/{event}/replay"),
            "rp-1",
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{replayed}");
    assert_eq!(replayed["items"][0]["state"], "pending");
    let t = run_jobs(&server.store, &banks).await;
    assert_eq!(t.webhooks_delivered, 1, "{t:?}");
    assert_eq!(receiver.seen.lock().unwrap().accepted[event].0, 2);
    let (_, log) = server
        .get(&officer, &format!("/v1/webhooks/{sub_id}/deliveries"))
        .await;
    let entry = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["event_id"] == event.as_str())
        .unwrap()
        .clone();
    assert!(
        entry["log"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["replayed_by"]
                .as_str()
                .is_some_and(|b| b.contains("officer"))),
        "{entry}"
    );
    let (status, none) = server
        .post(
            &officer,
            &format!("/v1/webhooks/{sub_id}/deliveries/nothing:here/replay"),
            "rp-2",
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{none}");

    // INS-B's subscription heard nothing of INS-A.
    assert_eq!(quiet.seen.lock().unwrap().requests, 0);
    let (_, log_b) = server
        .get(
            &officer,
            &format!("/v1/webhooks/{}/deliveries", sub_b["id"].as_str().unwrap()),
        )
        .await;
    assert_eq!(log_b["items"].as_array().unwrap().len(), 0, "{log_b}");
    bank.stop().await;
    server.stop().await;
}

async fn run_jobs(store: &ledger_core::Store, banks: &BankDirectory) -> Tick {
    tick_jobs(
        store,
        banks,
        &[Job::Lessons, Job::Release, Job::Workflow, Job::Webhooks],
    )
    .await
    .unwrap()
}

async fn institution_b(server: &Server) -> String {
    institution(&server.store, "INS-B", "410922")
        .await
        .to_string()
}

async fn receiver_quiet(clock: Clock) -> Receiver {
    receiver(clock, 0).await
}

crate::both!(webhooks_reach_a_failing_receiver_once_per_event_signed);
