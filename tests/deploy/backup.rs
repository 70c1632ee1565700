//! Backups: a SQLite backup (`backup`) and a PostgreSQL dump (`pg_dump`)
//! taken while the service writes restore to books that verify and hold
//! every write acknowledged before it began; a backup never overwrites;
//! PostgreSQL is pointed at its own tools.

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::{Connection, PgConnection};

use crate::scratch_pg::ScratchPg;
use crate::{run, serve, sqlite_url, stderr, stdout};

const INSTITUTION: &str = "INS-410922-001";

/// The restore drill: the demo county served on SQLite, a client paying
/// tuition as fast as it is answered, `backup` run in the middle of it,
/// then the copy opened on its own.
/// A platform token for the demo county on `url`, and four enrollments
/// to pay into (through the service at `addr`).
async fn prepare(url: &str, client: &reqwest::Client, addr: &str) -> (String, String) {
    let token = crate::demo_token(url, "platform");
    let base = format!("http://{addr}/v1/institutions/{INSTITUTION}");
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
    (token, base)
}

/// The writer: one payment of 1.00 after another, each acknowledged
/// payment's key kept; bounded by a count and by the stop flag.
struct Writer {
    acknowledged: Arc<Mutex<Vec<String>>>,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<BTreeSet<String>>,
}

impl Writer {
    fn start(client: &reqwest::Client, token: &str, base: &str) -> Writer {
        let acknowledged: Arc<Mutex<Vec<String>>> = Arc::default();
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let task = {
            let (client, token, base, acknowledged) = (
                client.clone(),
                token.to_string(),
                base.to_string(),
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
        Writer {
            acknowledged,
            stop,
            task,
        }
    }

    fn acknowledged(&self) -> Vec<String> {
        self.acknowledged.lock().unwrap().clone()
    }

    /// Until `n` payments are acknowledged (bounded).
    async fn wait_for(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let count = self.acknowledged.lock().unwrap().len();
            if count >= n {
                return;
            }
            assert!(Instant::now() < deadline, "the writer is stuck at {count}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops it; every payment it sent.
    async fn finish(self) -> BTreeSet<String> {
        let _ = self.stop.send(true);
        self.task.await.unwrap()
    }
}

/// What a restored copy must hold: every payment acknowledged before the
/// backup began, each once with its money, and nothing never sent.
fn check_kept(kept: &[String], money_minor: i64, before: &[String], sent: &BTreeSet<String>) {
    let kept_set: BTreeSet<String> = kept.iter().cloned().collect();
    assert_eq!(kept.len(), kept_set.len(), "a payment twice");
    for key in before {
        assert!(
            kept_set.contains(key),
            "{key} was acknowledged before the backup and is not in it"
        );
    }
    assert!(
        kept_set.is_subset(sent),
        "the copy holds payments never sent"
    );
    assert_eq!(
        money_minor,
        kept.len() as i64 * 100,
        "the money of each payment once"
    );
}

const KEPT: &str = "select client_id from entries where client_id like 'drill-pay-%'";
const MONEY: &str =
    "select cast(coalesce(sum(p.amount_minor), 0) as bigint) from postings p join entries e \
       on e.institution_id = p.institution_id and e.seq = p.seq \
       where e.client_id like 'drill-pay-%' and p.side = 'D'";

/// The restore drill: the demo county served on SQLite, a client paying
/// tuition as fast as it is answered, `backup` run in the middle of it,
/// then the copy opened on its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_while_the_service_writes_verifies_and_holds_every_acknowledged_payment() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(dir.path(), "live.db");
    let out = run(&["--database-url", &url, "demo"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let served = serve(
        &["--database-url", &url, "serve", "--listen", "127.0.0.1:0"],
        &[],
    );
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let (token, base) = prepare(&url, &client, &served.addr).await;
    let writer = Writer::start(&client, &token, &base);
    writer.wait_for(30).await;
    let before = writer.acknowledged();
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
    writer.wait_for(before.len() + 10).await;
    let sent = writer.finish().await;
    assert!(served.terminate().success());

    // The restore: the copy is a database of its own that verifies …
    let copy = sqlite_url(dir.path(), "backup.db");
    let out = run(&["--database-url", &copy, "verify"], &[]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    // … and holds every payment acknowledged before the backup began.
    let pool = sqlx::SqlitePool::connect(&format!("{copy}?mode=ro"))
        .await
        .unwrap();
    let kept: Vec<String> = sqlx::query_scalar(KEPT).fetch_all(&pool).await.unwrap();
    let money: i64 = sqlx::query_scalar(MONEY).fetch_one(&pool).await.unwrap();
    check_kept(&kept, money, &before, &sent);
    pool.close().await;
}

/// The same drill on PostgreSQL with its own tools: `pg_dump` (custom
/// format) while the service writes, `pg_restore` into a new database,
/// `verify` there, the payments and the row counts checked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pg_dump_taken_while_the_service_writes_restores_to_books_that_verify() {
    let live = ScratchPg::create(format!("drill_live_{}", std::process::id())).await;
    let restored = ScratchPg::create(format!("drill_restored_{}", std::process::id())).await;
    let out = run(&["--database-url", &live.url, "demo"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let served = serve(
        &[
            "--database-url",
            &live.url,
            "serve",
            "--listen",
            "127.0.0.1:0",
        ],
        &[],
    );
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let (token, base) = prepare(&live.url, &client, &served.addr).await;
    let writer = Writer::start(&client, &token, &base);
    writer.wait_for(30).await;
    let before = writer.acknowledged();
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("escrow.dump");
    let taken = {
        let (url, dump) = (live.url.clone(), dump.clone());
        tokio::task::spawn_blocking(move || {
            Command::new("pg_dump")
                .args(["--format=custom", "--file"])
                .arg(&dump)
                .arg(&url)
                .output()
                .unwrap()
        })
    }
    .await
    .unwrap();
    assert!(taken.status.success(), "{}", stderr(&taken));
    writer.wait_for(before.len() + 10).await;
    let sent = writer.finish().await;
    assert!(served.terminate().success());

    let out = Command::new("pg_restore")
        .args(["--no-owner", "--exit-on-error", "--dbname", &restored.url])
        .arg(&dump)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run(&["--database-url", &restored.url, "verify"], &[]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let mut copy = PgConnection::connect(&restored.url).await.unwrap();
    let kept: Vec<String> = sqlx::query_scalar(KEPT).fetch_all(&mut copy).await.unwrap();
    let money: i64 = sqlx::query_scalar(MONEY)
        .fetch_one(&mut copy)
        .await
        .unwrap();
    check_kept(&kept, money, &before, &sent);
    // Every table came back, each with the rows of one instant: as many
    // entries as the live books held up to the last payment the copy has.
    let mut books = PgConnection::connect(&live.url).await.unwrap();
    let tables = "select count(*) from information_schema.tables where table_schema = 'public'";
    let (live_tables, copy_tables): (i64, i64) = (
        sqlx::query_scalar(tables)
            .fetch_one(&mut books)
            .await
            .unwrap(),
        sqlx::query_scalar(tables)
            .fetch_one(&mut copy)
            .await
            .unwrap(),
    );
    assert_eq!(live_tables, copy_tables);
    let entries_in_copy: i64 = sqlx::query_scalar("select count(*) from entries")
        .fetch_one(&mut copy)
        .await
        .unwrap();
    let live_entries: i64 = sqlx::query_scalar(
        "select count(*) from entries where client_id is null or client_id not like 'drill-pay-%' \
           or client_id = any($1)",
    )
    .bind(&kept)
    .fetch_one(&mut books)
    .await
    .unwrap();
    assert_eq!(entries_in_copy, live_entries);
    copy.close().await.unwrap();
    books.close().await.unwrap();
    live.drop().await;
    restored.drop().await;
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
