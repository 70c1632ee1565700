//! A crash of PostgreSQL right after single requests were acknowledged
//! loses none of them. A group commit's batch commits without waiting for
//! its flush, so that the next batch need not wait for the disk to take
//! the audit chain's head, and its callers are answered only once a later
//! synchronous commit has flushed the log past it (`store/group.rs`).
//!
//! The scratch server's log writer is told to wake only every 10 s: what
//! a commit leaves in the log's last, partly filled page then stays in
//! shared memory until somebody flushes it. An immediate stop drops it,
//! as a power cut drops what the disk had not been told to keep; had the
//! service answered before the flush, the batch written last would be
//! missing after recovery. The same holds for a request written outside
//! group commit (its kept answer and audit record) and for the audit record
//! of a refusal. Each kind is crashed right after its own answer, so that
//! no later write's flush covers for it (an earlier version ended the
//! payments with an enrollment, whose flush hid a batch answered unflushed;
//! the group committer's own flush is now what this test holds).
//! The group committer answers a batch from a task of its own once its
//! flush returns, while the writer goes on to the next batch.

use std::time::Duration;

use sqlx::{Connection, Executor, PgConnection};

use crate::replica::Pair;
use crate::{run, serve, stderr, stdout};

const INSTITUTION: &str = "INS-410922-001";
const PAYMENTS: usize = 48;

/// Enrolls `id` (20 hours for 2,000.00, its id as its Idempotency-Key)
/// at the institution's API `base`, acknowledged.
async fn enroll(client: &reqwest::Client, base: &str, token: &str, id: &str) {
    let enrolled = client
        .post(format!("{base}/enrollments"))
        .bearer_auth(token)
        .header("Idempotency-Key", id)
        .json(
            &serde_json::json!({"id": id, "student_ref": format!("S-{id}"),
            "hours_bought": 20, "price": "2000.00",
            "course_start": "2026-09-01", "course_end": "2026-11-30"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(enrolled.status(), reqwest::StatusCode::CREATED, "{id}");
}

/// An immediate stop of the scratch server and a restart; the service
/// (whose connections died with it) is started again by the caller.
fn crash_and_restart(pair: &mut Pair, served: crate::Served, settings: &str) {
    pair.crash("primary");
    served.kill();
    pair.start("primary", pair.primary_port, settings);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_payments_survive_a_crash_of_the_database() {
    let mut pair = Pair::new();
    pair.init_primary();
    let lazy_log_writer = "-c wal_writer_delay=10000";
    pair.start("primary", pair.primary_port, lazy_log_writer);
    let mut admin = PgConnection::connect(&pair.primary("postgres"))
        .await
        .unwrap();
    admin.execute("create database escrow").await.unwrap();
    admin.close().await.unwrap();
    let url = pair.primary("escrow");
    let out = run(&["--database-url", &url, "demo"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let token = crate::demo_token(&url, "platform");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let serve_here = || {
        let served = serve(
            &["--database-url", &url, "serve", "--listen", "127.0.0.1:0"],
            &[],
        );
        let base = format!("http://{}/v1/institutions/{INSTITUTION}", served.addr);
        (served, base)
    };

    // 1. Payments through group commit, the crash as soon as the last is
    // acknowledged: nothing written after them flushes the log for them.
    let (served, base) = serve_here();
    enroll(&client, &base, &token, "E-CRASH").await;
    let mut sent = tokio::task::JoinSet::new();
    for n in 0..PAYMENTS {
        let (client, token, base) = (client.clone(), token.clone(), base.clone());
        sent.spawn(async move {
            let r = client
                .post(format!("{base}/payments"))
                .bearer_auth(&token)
                .header("Idempotency-Key", format!("crash-pay-{n}"))
                .json(&serde_json::json!({"enrollment": "E-CRASH", "amount": "10.00"}))
                .send()
                .await
                .unwrap();
            (n, r.status())
        });
    }
    let mut acknowledged = Vec::new();
    while let Some(done) = sent.join_next().await {
        let (n, status) = done.unwrap();
        assert_eq!(status, reqwest::StatusCode::CREATED, "payment {n}");
        acknowledged.push(format!("crash-pay-{n}"));
    }
    crash_and_restart(&mut pair, served, lazy_log_writer);
    let mut books = PgConnection::connect(&url).await.unwrap();
    let kept: Vec<String> = sqlx::query_scalar(
        "select client_id from entries where client_id like 'crash-pay-%' order by client_id",
    )
    .fetch_all(&mut books)
    .await
    .unwrap();
    acknowledged.sort();
    assert_eq!(
        kept, acknowledged,
        "every acknowledged payment is in the books after the crash"
    );
    books.close().await.unwrap();

    // 2. A refused payment: its audit record, the only thing it writes.
    let (served, base) = serve_here();
    let refused = client
        .post(format!("{base}/payments"))
        .bearer_auth(&token)
        .header("Idempotency-Key", "crash-pay-unknown")
        .json(&serde_json::json!({"enrollment": "E-NOBODY", "amount": "10.00"}))
        .send()
        .await
        .unwrap();
    assert!(refused.status().is_client_error(), "{}", refused.status());
    let refused_status = i32::from(refused.status().as_u16());
    crash_and_restart(&mut pair, served, lazy_log_writer);
    let mut books = PgConnection::connect(&url).await.unwrap();
    let refusals: i64 = sqlx::query_scalar(
        "select count(*) from audit_log where path like '%/payments' and status = $1",
    )
    .bind(refused_status)
    .fetch_one(&mut books)
    .await
    .unwrap();
    assert_eq!(refusals, 1, "the refusal answered is in the audit log");
    books.close().await.unwrap();

    // 3. An enrollment, answered outside group commit: it and its kept
    // answer.
    let (served, base) = serve_here();
    enroll(&client, &base, &token, "E-CRASH-3").await;
    crash_and_restart(&mut pair, served, lazy_log_writer);
    let mut books = PgConnection::connect(&url).await.unwrap();
    let enrolled: i64 =
        sqlx::query_scalar("select count(*) from enrollments where enrollment_id = 'E-CRASH-3'")
            .fetch_one(&mut books)
            .await
            .unwrap();
    assert_eq!(enrolled, 1, "the acknowledged enrollment is kept");
    let kept: i64 = sqlx::query_scalar(
        "select count(*) from idempotent_answers where idem_key = 'E-CRASH-3' and status = 201",
    )
    .fetch_one(&mut books)
    .await
    .unwrap();
    assert_eq!(kept, 1, "the acknowledged enrollment's answer is kept");
    books.close().await.unwrap();
    let out = run(&["--database-url", &url, "verify"], &[]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
}
