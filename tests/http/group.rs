//! Group commit: concurrent single writes gathered into one transaction,
//! each with its own outcome. Requests refused by a rule (a cap, an unknown
//! enrollment, a floor, a price already paid by an earlier request of the
//! same batch) are absent from the books with their own error, and change
//! nothing for the others; every accepted one is in the books once, with
//! its kept answer and audit record; one institution's requests keep the
//! order they were taken in.

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use api::app::group_commit::{GroupCommit, GroupSettings};
use api::http::Config;
use ledger_core::{Amount, ClientId, Command, Currency, EnrollmentId, InstitutionId, Request};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::*;

/// Batches that wait long enough for every request a test sends at once.
fn patient() -> GroupSettings {
    GroupSettings {
        max_batch: 1_000,
        max_wait: Duration::from_millis(300),
        ..GroupSettings::default()
    }
}

/// Runs the futures to completion, polling them in order: the first poll of
/// each (which queues its request) happens in the order given.
async fn in_order<T>(mut futures: Vec<Pin<Box<dyn Future<Output = T> + Send + '_>>>) -> Vec<T> {
    let mut out: Vec<Option<T>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, slot) in futures.iter_mut().zip(out.iter_mut()) {
            if slot.is_none() {
                match f.as_mut().poll(cx) {
                    Poll::Ready(v) => *slot = Some(v),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    out.into_iter()
        .map(|v| v.expect("every future done"))
        .collect()
}

fn payment(institution: &str, key: &str, enrollment: &str, amount_minor: i64) -> Request {
    Request {
        institution: InstitutionId::parse(institution).unwrap(),
        client_id: ClientId::parse(key).unwrap(),
        currency: Currency::Cny,
        occurred_at: chrono::Utc::now(),
        external_ref: None,
        command: Command::PayTuition {
            enrollment: EnrollmentId::parse(enrollment).unwrap(),
            amount: Amount::from_minor(amount_minor).unwrap(),
        },
    }
}

async fn one_institutions_requests_keep_their_order_and_refusals_stay_their_own(backend: Backend) {
    let server = Server::start(backend).await;
    jurisdictions(&server.store).await;
    let a = institution(&server.store, "INS-A", "410922").await;
    let b = institution(&server.store, "INS-B", "410922").await;
    enrollment(&server.store, &a, "E-1", 40, 400_000).await;
    enrollment(&server.store, &b, "E-1", 40, 400_000).await;
    let group = GroupCommit::start(server.store.clone(), patient());
    // 30 payments of 150.00 towards a 4,000.00 price, in this order: the
    // first 26 fit (3,900.00), the rest would pay more than the price. The
    // other institution's payments and a request for an institution that
    // does not exist are in the same batch.
    let mut futures: Vec<Pin<Box<dyn Future<Output = _> + Send>>> = Vec::new();
    for n in 0..30 {
        let g = group.clone();
        futures.push(Box::pin(async move {
            g.record(payment("INS-A", &format!("a-{n}"), "E-1", 15_000), None)
                .await
        }));
        if n % 10 == 0 {
            let group = group.clone();
            futures.push(Box::pin(async move {
                group
                    .record(payment("INS-B", &format!("b-{n}"), "E-1", 1_000), None)
                    .await
            }));
        }
    }
    let group2 = group.clone();
    futures.push(Box::pin(async move {
        group2
            .record(payment("INS-NOPE", "nope-1", "E-1", 1_000), None)
            .await
    }));
    let outcomes = in_order(futures).await;
    let mut a_seqs = vec![];
    let mut recorded = std::collections::BTreeSet::new();
    let mut k = 0;
    for n in 0..30 {
        let outcome = &outcomes[k];
        k += 1;
        if n < 26 {
            let entry = outcome.as_ref().expect("fits the price");
            assert_eq!(entry.client_id.as_str(), format!("a-{n}"));
            a_seqs.push(entry.seq);
            recorded.insert(entry.recorded_at);
        } else {
            let e = outcome.as_ref().expect_err("beyond the price");
            assert_eq!(e.code(), "payment_exceeds_price", "a-{n}: {e}");
        }
        if n % 10 == 0 {
            let entry = outcomes[k].as_ref().expect("another institution's payment");
            k += 1;
            assert_eq!(entry.institution, b);
        }
    }
    assert_eq!(
        outcomes[k].as_ref().unwrap_err().code(),
        "unknown_institution"
    );
    // In the order taken, with nothing in between: seqs 1..=26.
    assert_eq!(a_seqs, (1..=26).collect::<Vec<i64>>());
    // (INS-B may be another partition's: another batch.)
    assert_eq!(recorded.len(), 1, "INS-A's in one batch: {recorded:?}");
    let entries = server.store.entries(&a, 0, 100).await.unwrap();
    assert_eq!(entries.len(), 26);
    let report = server.store.verify().await.unwrap();
    assert!(report.ok(), "{report:?}");
    group.drain().await;
    server.stop().await;
}

both!(one_institutions_requests_keep_their_order_and_refusals_stay_their_own);

async fn concurrent_single_requests_with_refusals_each_get_their_own_answer(backend: Backend) {
    let server = Server::start_with(
        backend,
        Config {
            group: patient(),
            ..Config::default()
        },
        true,
    )
    .await;
    jurisdictions(&server.store).await;
    let a = institution(&server.store, "INS-A", "410922").await;
    let b = institution(&server.store, "INS-B", "410922").await;
    let c = institution(&server.store, "INS-C", "410922").await;
    enrollment(&server.store, &a, "E-1", 40, 400_000).await;
    // 6,000.00 in one charge: beyond the national 5,000 cap.
    enrollment(&server.store, &a, "E-BIG", 40, 600_000).await;
    enrollment(&server.store, &b, "E-1", 40, 400_000).await;
    enrollment(&server.store, &c, "E-1", 40, 400_000).await;
    let token = server.admin().await;

    // (path, key, body, expected: None for 201, Some(code) for a refusal)
    let mut sends: Vec<(String, String, Value, Option<&str>)> = vec![
        (
            "/v1/institutions/INS-A/payments".into(),
            "big-1".into(),
            json!({"enrollment": "E-BIG", "amount": "100.00"}),
            Some("charge_exceeds_cap"),
        ),
        (
            "/v1/institutions/INS-A/payments".into(),
            "nope-1".into(),
            json!({"enrollment": "E-NOPE", "amount": "100.00"}),
            Some("unknown_enrollment"),
        ),
        // Nothing paid at INS-B: the lesson would overdraw its prepaid
        // tuition (a floor).
        (
            "/v1/institutions/INS-B/consumptions".into(),
            "floor-1".into(),
            json!({"enrollment": "E-1", "hours": 1}),
            Some("would_overdraw"),
        ),
    ];
    for n in 0..12 {
        sends.push((
            "/v1/institutions/INS-C/payments".into(),
            format!("c-{n}"),
            json!({"enrollment": "E-1", "amount": "10.00"}),
            None,
        ));
    }
    // Two payments of 2,500.00 towards 4,000.00: whichever the batch takes
    // first is accepted, the other would pay more than the price.
    for n in 0..2 {
        sends.push((
            "/v1/institutions/INS-A/payments".into(),
            format!("half-{n}"),
            json!({"enrollment": "E-1", "amount": "2500.00"}),
            Some("payment_exceeds_price?"),
        ));
    }
    let answers = futures_all(&server, &token, &sends).await;
    let mut halves_accepted = 0;
    for ((_, key, _, expected), (status, body)) in sends.iter().zip(&answers) {
        match expected {
            None => assert_eq!(*status, StatusCode::CREATED, "{key}: {body}"),
            Some("payment_exceeds_price?") => {
                if *status == StatusCode::CREATED {
                    halves_accepted += 1;
                } else {
                    assert_eq!(body["code"], "payment_exceeds_price", "{key}: {body}");
                }
            }
            Some(code) => {
                assert!(status.is_client_error(), "{key}: {status} {body}");
                assert_eq!(body["code"], *code, "{key}: {body}");
            }
        }
    }
    assert_eq!(halves_accepted, 1, "{answers:?}");

    // In the books: every accepted one once, no refused one.
    let mut keys = vec![];
    for i in [&a, &b, &c] {
        for e in server.store.entries(i, 0, 1_000).await.unwrap() {
            keys.push(e.client_id.to_string());
        }
    }
    keys.sort();
    let mut expected: Vec<String> = (0..12).map(|n| format!("c-{n}")).collect();
    expected.extend(
        sends
            .iter()
            .zip(&answers)
            .filter(|((_, k, _, _), (s, _))| k.starts_with("half-") && *s == StatusCode::CREATED)
            .map(|((_, k, _, _), _)| k.clone()),
    );
    expected.sort();
    assert_eq!(keys, expected);

    // Each accepted request's answer was kept with its entry: a repeat
    // gets it again, marked as a replay, and changes nothing.
    let (status, first) = (answers[3].0, answers[3].1.clone());
    assert_eq!(status, StatusCode::CREATED);
    let repeat = server
        .request(reqwest::Method::POST, Some(&token), &sends[3].0)
        .header("Idempotency-Key", &sends[3].1)
        .json(&sends[3].2)
        .send()
        .await
        .unwrap();
    assert_eq!(repeat.status(), StatusCode::CREATED);
    assert_eq!(
        repeat
            .headers()
            .get("idempotent-replayed")
            .map(|v| v.to_str().unwrap()),
        Some("true")
    );
    assert_eq!(repeat.json::<Value>().await.unwrap(), first);
    // ... and each has one audit record (with its status); each refusal
    // has its own with its code.
    let log = server.store.audit_log(0, 1_000).await.unwrap();
    let created = log
        .iter()
        .filter(|(_, _, r)| r.status == 201 && r.outcome == "ok")
        .count();
    // The twelve, the accepted half, and the repeat (a replay is audited too).
    assert_eq!(created, 12 + 1 + 1, "{log:?}");
    for code in [
        "charge_exceeds_cap",
        "unknown_enrollment",
        "would_overdraw",
        "payment_exceeds_price",
    ] {
        assert_eq!(
            log.iter().filter(|(_, _, r)| r.outcome == code).count(),
            1,
            "{code}: {log:?}"
        );
    }
    // A refused key is free again: corrected, it is taken.
    let (status, body) = server
        .post(
            &token,
            "/v1/institutions/INS-A/payments",
            "nope-1",
            json!({"enrollment": "E-1", "amount": "100.00"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let report = server.store.verify().await.unwrap();
    assert!(report.ok(), "{report:?}");
    server.stop().await;
}

both!(concurrent_single_requests_with_refusals_each_get_their_own_answer);

/// Sends every request at once; the answers in the order sent.
async fn futures_all(
    server: &Server,
    token: &str,
    sends: &[(String, String, Value, Option<&str>)],
) -> Vec<(StatusCode, Value)> {
    let mut tasks = tokio::task::JoinSet::new();
    for (i, (path, key, body, _)) in sends.iter().enumerate() {
        let request = server
            .request(reqwest::Method::POST, Some(token), path)
            .header("Idempotency-Key", key)
            .json(body);
        tasks.spawn(async move { (i, send(request).await) });
    }
    let mut out: Vec<Option<(StatusCode, Value)>> = sends.iter().map(|_| None).collect();
    while let Some(done) = tasks.join_next().await {
        let (i, answer) = done.unwrap();
        out[i] = Some(answer);
    }
    out.into_iter().map(Option::unwrap).collect()
}

/// Holds the writer of INS-A's partition: PostgreSQL, a lock on its chain
/// head; SQLite, the store's one connection. Dropped, it lets go.
#[allow(dead_code)] // held, never read
enum Hold {
    Pg(sqlx::Transaction<'static, sqlx::Postgres>),
    Lite(sqlx::pool::PoolConnection<sqlx::Sqlite>),
}

async fn hold_writer(store: &ledger_core::Store) -> Hold {
    match store {
        ledger_core::Store::Postgres(s) => {
            let mut tx = s.pool().begin().await.unwrap();
            sqlx::query(
                "select last_seq from chain_heads where institution_id = 'INS-A' for update",
            )
            .fetch_one(&mut *tx)
            .await
            .unwrap();
            Hold::Pg(tx)
        }
        ledger_core::Store::Sqlite(s) => Hold::Lite(s.pool().acquire().await.unwrap()),
    }
}

/// A full queue refuses at once (`Busy`, which the API answers 503): with
/// the writer held and a queue of one, of five requests at most two are
/// taken (one in the writer's hands, one queued) and the others are
/// refused without waiting; let go, the taken ones are written.
async fn a_full_write_queue_refuses_at_once_and_the_taken_are_written(backend: Backend) {
    let server = Server::start(backend).await;
    jurisdictions(&server.store).await;
    let a = institution(&server.store, "INS-A", "410922").await;
    enrollment(&server.store, &a, "E-1", 40, 400_000).await;
    let group = GroupCommit::start(
        server.store.clone(),
        GroupSettings {
            max_batch: 1,
            max_wait: Duration::ZERO,
            queue_depth: 1,
            partitions: 1,
        },
    );
    let hold = hold_writer(&server.store).await;
    let mut futures: Vec<Pin<Box<dyn Future<Output = _> + Send>>> = Vec::new();
    for n in 0..5 {
        let group = group.clone();
        futures.push(Box::pin(async move {
            group
                .record(payment("INS-A", &format!("q-{n}"), "E-1", 100), None)
                .await
        }));
    }
    let (released, outcomes) = tokio::join!(
        async {
            // Long enough for the refusals, which do not wait for the writer.
            tokio::time::sleep(Duration::from_millis(300)).await;
            drop(hold);
        },
        in_order(futures)
    );
    let () = released;
    let busy = outcomes
        .iter()
        .filter(|o| matches!(o, Err(api::app::AppError::Busy { .. })))
        .count();
    let taken = outcomes.iter().filter(|o| o.is_ok()).count();
    assert!(busy >= 3, "{outcomes:?}");
    assert_eq!(busy + taken, 5, "{outcomes:?}");
    assert_eq!(server.store.entries(&a, 0, 100).await.unwrap().len(), taken);
    group.drain().await;
    // Drained: it takes no more.
    assert!(matches!(
        group
            .record(payment("INS-A", "late", "E-1", 100), None)
            .await,
        Err(api::app::AppError::Busy { .. })
    ));
    server.stop().await;
}

both!(a_full_write_queue_refuses_at_once_and_the_taken_are_written);

/// Over HTTP a full queue is a 503 problem with Retry-After, and the
/// refused request changed nothing: sent again, it is taken. (PostgreSQL:
/// its writer can be held while the API still answers.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_write_queue_answers_503_with_retry_after_over_http() {
    let server = Server::start_with(
        Backend::Postgres,
        Config {
            group: GroupSettings {
                max_batch: 1,
                max_wait: Duration::ZERO,
                queue_depth: 1,
                partitions: 1,
            },
            ..Config::default()
        },
        true,
    )
    .await;
    jurisdictions(&server.store).await;
    let a = institution(&server.store, "INS-A", "410922").await;
    enrollment(&server.store, &a, "E-1", 40, 400_000).await;
    let token = server.admin().await;
    let hold = hold_writer(&server.store).await;
    let body = json!({"enrollment": "E-1", "amount": "1.00"});
    let path = "/v1/institutions/INS-A/payments";
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..5 {
        let request = server
            .request(reqwest::Method::POST, Some(&token), path)
            .header("Idempotency-Key", format!("q-{n}"))
            .json(&body);
        tasks.spawn(async move {
            let r = request.send().await.unwrap();
            let status = r.status();
            let header = |name: &str| {
                r.headers()
                    .get(name)
                    .map(|v| v.to_str().unwrap().to_string())
            };
            let (retry_after, content_type) = (header("retry-after"), header("content-type"));
            let body: Value = r.json().await.unwrap();
            (n, status, retry_after, content_type, body)
        });
    }
    // At least three are refused while the writer is held.
    let mut busy = vec![];
    while busy.len() < 3 {
        let (n, status, retry_after, content_type, body) =
            tasks.join_next().await.unwrap().unwrap();
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_eq!(body["code"], "service_busy", "{body}");
        assert_eq!(retry_after.as_deref(), Some("1"));
        assert_eq!(content_type.as_deref(), Some("application/problem+json"));
        busy.push(n);
    }
    drop(hold);
    let mut taken = 0;
    while let Some(done) = tasks.join_next().await {
        let (n, status, _, _, body) = done.unwrap();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            busy.push(n);
        } else {
            assert_eq!(status, StatusCode::CREATED, "{body}");
            taken += 1;
        }
    }
    assert_eq!(server.store.entries(&a, 0, 100).await.unwrap().len(), taken);
    for n in busy {
        let (status, answer) = server
            .post(&token, path, &format!("q-{n}"), body.clone())
            .await;
        assert_eq!(status, StatusCode::CREATED, "q-{n}: {answer}");
    }
    assert_eq!(server.store.entries(&a, 0, 100).await.unwrap().len(), 5);
    server.stop().await;
}

/// What an HTTP request keeps under `key` (caller `platform-token`), with
/// `hash` standing for its body's hash.
fn keep(key: &str, hash: &str) -> ledger_core::store::KeepWith {
    ledger_core::store::KeepWith {
        token_id: "platform-token".to_string(),
        key: key.to_string(),
        request_hash: hash.to_string(),
        status: 201,
        audit: ledger_core::store::AuditRecord {
            request_id: format!("req-{key}-{hash}"),
            token_id: Some("platform-token".to_string()),
            role: Some("platform".to_string()),
            method: "POST".to_string(),
            path: "/v1/institutions/INS-A/payments".to_string(),
            status: 201,
            outcome: "ok".to_string(),
        },
        body: Box::new(|e| format!("{}@{}", e.client_id, e.occurred_at.to_rfc3339())),
    }
}

/// When the database fails over, a claim on an Idempotency-Key (written
/// without waiting for its flush) can be lost while its request still waits
/// in the write queue. The client's retry then claims the key afresh, and
/// the server fills in a later `occurred_at`: the same request (the same
/// caller, key and body), but for that instant. It must get the first
/// attempt's entry, not `409 exists_with_different_fields`, whether it
/// meets the first attempt in the same batch or in a later one; a different
/// body under that key is still refused.
async fn a_retry_that_lost_its_claim_gets_the_first_attempts_entry(backend: Backend) {
    let server = Server::start(backend).await;
    jurisdictions(&server.store).await;
    let a = institution(&server.store, "INS-A", "410922").await;
    enrollment(&server.store, &a, "E-1", 40, 400_000).await;
    let first_at = chrono::Utc::now() - chrono::Duration::seconds(30);
    let attempt = |key: &str, seconds_later: i64| Request {
        occurred_at: first_at + chrono::Duration::seconds(seconds_later),
        ..payment("INS-A", key, "E-1", 10_000)
    };
    for (settings, key) in [
        (patient(), "same-batch"),
        (
            GroupSettings {
                max_batch: 1,
                max_wait: Duration::ZERO,
                partitions: 1,
                ..GroupSettings::default()
            },
            "later-batch",
        ),
    ] {
        let group = GroupCommit::start(server.store.clone(), settings);
        // The first attempt waits behind a held writer, as behind a lost
        // primary; the retry and a different request under the key queue
        // behind it.
        let hold = hold_writer(&server.store).await;
        let mut futures: Vec<Pin<Box<dyn Future<Output = _> + Send>>> = Vec::new();
        for (later, hash) in [(0, "body-1"), (6, "body-1"), (7, "body-2")] {
            let (group, request) = (group.clone(), attempt(key, later));
            futures.push(Box::pin(async move {
                group.record(request, Some(keep(key, hash))).await
            }));
        }
        let ((), outcomes) = tokio::join!(
            async {
                tokio::time::sleep(Duration::from_millis(200)).await;
                drop(hold);
            },
            in_order(futures)
        );
        let first = outcomes[0].as_ref().expect("the first attempt");
        assert_eq!(
            first.occurred_at,
            ledger_core::domain::chain::truncate_to_micros(first_at)
        );
        let retry = outcomes[1].as_ref().expect("the retry is the same request");
        assert_eq!(
            retry, first,
            "{key}: the retry answers with the first entry"
        );
        let other = outcomes[2].as_ref().expect_err("a different body");
        assert_eq!(
            other.code(),
            "exists_with_different_fields",
            "{key}: {other}"
        );
        let kept = server
            .store
            .kept_answer("platform-token", key)
            .await
            .unwrap()
            .expect("an answer kept");
        assert_eq!(kept.request_hash, "body-1");
        assert_eq!(
            kept.body,
            format!("{key}@{}", first.occurred_at.to_rfc3339())
        );
        group.drain().await;
    }
    let entries = server.store.entries(&a, 0, 100).await.unwrap();
    assert_eq!(entries.len(), 2, "one entry per key: {entries:?}");
    let report = server.store.verify().await.unwrap();
    assert!(report.ok(), "{report:?}");
    server.stop().await;
}

both!(a_retry_that_lost_its_claim_gets_the_first_attempts_entry);

/// The service's store sends every single write (`Store::execute`: the
/// releases, refund steps, lessons and outbox confirmations of the use
/// cases, over HTTP and from the jobs) through group commit: with the
/// writer held and a queue of one, a third write is refused at once as
/// busy and changes nothing; let go, the two taken are written in order.
async fn the_services_single_writes_all_go_through_group_commit(backend: Backend) {
    let server = Server::start(backend).await;
    jurisdictions(&server.store).await;
    let a = institution(&server.store, "INS-A", "410922").await;
    enrollment(&server.store, &a, "E-1", 40, 400_000).await;
    let state = api::http::AppState::new(
        server.store.clone(),
        Config {
            group: GroupSettings {
                max_batch: 1,
                max_wait: Duration::ZERO,
                queue_depth: 1,
                partitions: 1,
            },
            ..Config::default()
        },
    );
    let hold = hold_writer(&server.store).await;
    let mut futures: Vec<Pin<Box<dyn Future<Output = _> + Send>>> = Vec::new();
    for n in 0..3u64 {
        let store = state.store.clone();
        futures.push(Box::pin(async move {
            // One after another, so that the writer has taken the first
            // (and waits on the hold) when the second is queued.
            tokio::time::sleep(Duration::from_millis(200 * n)).await;
            store
                .execute(payment("INS-A", &format!("w-{n}"), "E-1", 100))
                .await
        }));
    }
    let ((), outcomes) = tokio::join!(
        async {
            tokio::time::sleep(Duration::from_millis(900)).await;
            drop(hold);
        },
        in_order(futures)
    );
    let refused = outcomes[2].as_ref().expect_err("the queue was full");
    assert_eq!(refused.code(), "service_busy", "{refused}");
    let seqs: Vec<i64> = outcomes[..2]
        .iter()
        .map(|o| o.as_ref().expect("taken").seq)
        .collect();
    assert_eq!(seqs, vec![1, 2]);
    let entries = server.store.entries(&a, 0, 100).await.unwrap();
    assert_eq!(entries.len(), 2, "the refused write changed nothing");
    state.group.drain().await;
    server.stop().await;
}

both!(the_services_single_writes_all_go_through_group_commit);
