//! Backups: a SQLite backup taken while the service writes restores to
//! books that verify and hold every write acknowledged before it began; a
//! backup never overwrites; PostgreSQL is pointed at its own tools.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::{run, serve, sqlite_url, stderr, stdout};

const INSTITUTION: &str = "INS-410922-001";

/// The restore drill: the demo county served on SQLite, a client paying
/// tuition as fast as it is answered, `backup` run in the middle of it,
/// then the copy opened on its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_while_the_service_writes_verifies_and_holds_every_acknowledged_payment() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(dir.path(), "live.db");
    let out = run(&["--database-url", &url, "demo"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run(
        &[
            "--database-url",
            &url,
            "token",
            "create",
            "--role",
            "platform",
            "--jurisdiction",
            "410922",
            "--json",
        ],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let token: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let token = token["token"].as_str().unwrap().to_string();
    let served = serve(
        &["--database-url", &url, "serve", "--listen", "127.0.0.1:0"],
        &[],
    );
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let base = format!("http://{}/v1/institutions/{INSTITUTION}", served.addr);
    for e in 0..4 {
        let r = client
            .post(format!("{base}/enrollments"))
            .bearer_auth(&token)
            .header("Idempotency-Key", format!("drill-enr-{e}"))
            .json(
                &serde_json::json!({"id": format!("E-DRILL-{e}"), "student_ref": format!("S-{e}"),
                "hours_bought": 40, "price": "4000.00",
                "course_start": "2026-09-01", "course_end": "2026-11-30"}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), reqwest::StatusCode::CREATED);
    }

    // The writer: one payment of 1.00 after another, each acknowledged
    // payment's key kept; bounded by a count and by the stop flag.
    let acknowledged: Arc<Mutex<Vec<String>>> = Arc::default();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let writer = {
        let (client, token, base, acknowledged) = (
            client.clone(),
            token.clone(),
            base.clone(),
            acknowledged.clone(),
        );
        tokio::spawn(async move {
            let mut sent = BTreeSet::new();
            for n in 0..4000 {
                if *stopped.borrow() {
                    break;
                }
                let key = format!("drill-pay-{n}");
                sent.insert(key.clone());
                let r = client
                    .post(format!("{base}/payments"))
                    .bearer_auth(&token)
                    .header("Idempotency-Key", &key)
                    .json(&serde_json::json!({"enrollment": format!("E-DRILL-{}", n % 4), "amount": "1.00"}))
                    .send()
                    .await
                    .unwrap();
                assert!(r.status().is_success(), "{key}: {}", r.status());
                acknowledged.lock().unwrap().push(key);
            }
            sent
        })
    };
    let count = || acknowledged.lock().unwrap().len();
    let wait_for = |n: usize| {
        let deadline = Instant::now() + Duration::from_secs(30);
        async move {
            while count() < n {
                assert!(
                    Instant::now() < deadline,
                    "the writer is stuck at {}",
                    count()
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    wait_for(30).await;
    let before: Vec<String> = acknowledged.lock().unwrap().clone();
    let backup_file = dir.path().join("backup.db");
    let backup = {
        let (url, to) = (url.clone(), backup_file.display().to_string());
        tokio::task::spawn_blocking(move || {
            run(&["--database-url", &url, "backup", "--to", &to], &[])
        })
    };
    let out = backup.await.unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("integrity ok"), "{}", stdout(&out));
    // The service kept writing through the backup and after it.
    wait_for(before.len() + 10).await;
    let _ = stop.send(true);
    let sent = writer.await.unwrap();
    assert!(served.terminate().success());

    // The restore: the copy is a database of its own that verifies …
    let copy = sqlite_url(dir.path(), "backup.db");
    let out = run(&["--database-url", &copy, "verify"], &[]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    // … and holds every payment acknowledged before the backup began, each
    // once with its money, and nothing that was never sent.
    let pool = sqlx::SqlitePool::connect(&format!("{copy}?mode=ro"))
        .await
        .unwrap();
    let kept: Vec<String> =
        sqlx::query_scalar("select client_id from entries where client_id like 'drill-pay-%'")
            .fetch_all(&pool)
            .await
            .unwrap();
    let kept_set: BTreeSet<String> = kept.iter().cloned().collect();
    assert_eq!(kept.len(), kept_set.len(), "a payment twice");
    for key in &before {
        assert!(
            kept_set.contains(key),
            "{key} was acknowledged before the backup and is not in it"
        );
    }
    assert!(
        kept_set.is_subset(&sent),
        "the copy holds payments never sent"
    );
    let money: i64 = sqlx::query_scalar(
        "select cast(coalesce(sum(p.amount_minor), 0) as bigint) from postings p join entries e \
           on e.institution_id = p.institution_id and e.seq = p.seq \
           where e.client_id like 'drill-pay-%' and p.side = 'D'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        money,
        kept.len() as i64 * 100,
        "the money of each payment once"
    );
    pool.close().await;
}

#[test]
fn a_backup_never_overwrites_and_postgres_is_pointed_at_its_own_tools() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(dir.path(), "live.db");
    assert!(run(&["--database-url", &url, "migrate"], &[])
        .status
        .success());
    let taken = dir.path().join("taken.db");
    std::fs::write(&taken, "precious").unwrap();
    let out = run(
        &[
            "--database-url",
            &url,
            "backup",
            "--to",
            taken.to_str().unwrap(),
        ],
        &[],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("never overwrites"),
        "{}",
        stderr(&out)
    );
    assert_eq!(std::fs::read_to_string(&taken).unwrap(), "precious");
    // A database that does not exist is not created to be backed up.
    let out = run(
        &[
            "--database-url",
            &sqlite_url(dir.path(), "missing.db"),
            "backup",
            "--to",
            dir.path().join("b.db").to_str().unwrap(),
        ],
        &[],
    );
    assert!(!out.status.success());
    assert!(!dir.path().join("missing.db").exists());
    assert!(!dir.path().join("b.db").exists());
    // PostgreSQL: said plainly, nothing written, no connection needed.
    let out = run(
        &[
            "--database-url",
            "postgres://escrow:hunter2@127.0.0.1:1/escrow",
            "backup",
            "--to",
            dir.path().join("pg.db").to_str().unwrap(),
        ],
        &[],
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("pg_dump") && err.contains("deploy/README.md") && !err.contains("hunter2"),
        "{err}"
    );
    assert!(!dir.path().join("pg.db").exists());
}
