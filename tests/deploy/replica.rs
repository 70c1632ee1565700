//! A read replica for officers' reads: a scratch PostgreSQL primary
//! (`initdb` on a free loopback port) and a streaming standby made from it
//! with `pg_basebackup -R`, in a scratch directory; `serve` writes to the
//! primary and reads balances and overviews from the standby
//! (`database.read_url`). With the standby's replay paused, a payment is
//! acknowledged (the primary has it) while the balances served still lack
//! it; resumed, they show it. The standby refuses writes. Both servers are
//! stopped and the directory removed, even when the test fails.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sqlx::{Connection, Executor, PgConnection};

use crate::{run, serve, stderr, stdout};

const INSTITUTION: &str = "INS-410922-001";

/// The newest PostgreSQL installed (`…/bin` with initdb, pg_ctl and
/// pg_basebackup).
fn bindir() -> PathBuf {
    let mut versions: Vec<u32> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL's server binaries (/usr/lib/postgresql) are needed")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|v| Path::new(&format!("/usr/lib/postgresql/{v}/bin/pg_basebackup")).exists())
        .collect();
    versions.sort();
    PathBuf::from(format!(
        "/usr/lib/postgresql/{}/bin",
        versions.pop().expect("no PostgreSQL with pg_basebackup")
    ))
}

fn id(args: &[&str]) -> Option<u32> {
    let out = Command::new("id").args(args).output().ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A primary and its standby; dropping it stops both (immediate) and
/// removes the directory.
pub struct Pair {
    dir: tempfile::TempDir,
    bin: PathBuf,
    /// PostgreSQL refuses to run as root: as `postgres` then.
    as_user: Option<(u32, u32)>,
    started: Vec<&'static str>,
    pub primary_port: u16,
    standby_port: u16,
}

impl Pair {
    pub fn new() -> Pair {
        let dir = tempfile::tempdir().unwrap();
        let as_user = (id(&["-u"]) == Some(0))
            .then(|| Some((id(&["-u", "postgres"])?, id(&["-g", "postgres"])?)))
            .map(|u| u.expect("running as root, and no postgres user to run PostgreSQL as"));
        if let Some((uid, gid)) = as_user {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).unwrap();
        }
        Pair {
            dir,
            bin: bindir(),
            as_user,
            started: Vec::new(),
            primary_port: free_port(),
            standby_port: free_port(),
        }
    }

    pub fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// Runs one of PostgreSQL's programs (bounded), as the user it needs.
    pub fn tool(&self, program: &str, args: &[&str]) {
        let mut c = Command::new("timeout");
        c.arg("120")
            .arg(self.bin.join(program))
            .args(args)
            .current_dir(self.dir.path())
            .stdin(Stdio::null());
        if let Some((uid, gid)) = self.as_user {
            c.uid(uid).gid(gid);
        }
        let out = c.output().unwrap();
        assert!(
            out.status.success(),
            "{program} {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn start(&mut self, name: &'static str, port: u16, extra: &str) {
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off {extra}",
            self.dir.path().display()
        );
        let (data, log) = (self.path(name), self.path(&format!("{name}.log")));
        self.tool(
            "pg_ctl",
            &["-D", &data, "-o", &options, "-l", &log, "-w", "start"],
        );
        self.started.push(name);
    }

    /// Stops `name` as a crash would (`-m immediate`: every process quits
    /// at once, nothing more is written, what was only in shared memory,
    /// the log's unwritten tail included, is gone); [`Pair::start`] again
    /// recovers it from what reached the files.
    pub fn crash(&self, name: &str) {
        self.tool(
            "pg_ctl",
            &["-D", &self.path(name), "-m", "immediate", "-w", "stop"],
        );
    }

    /// `initdb` of the primary (trust on loopback, UTF-8, no locale).
    pub fn init_primary(&self) {
        let primary_dir = self.path("primary");
        self.tool(
            "initdb",
            &[
                "-D",
                &primary_dir,
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-locale",
                "--no-sync",
            ],
        );
    }

    fn url(port: u16, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{port}/{db}")
    }

    pub fn primary(&self, db: &str) -> String {
        Pair::url(self.primary_port, db)
    }

    fn standby(&self, db: &str) -> String {
        Pair::url(self.standby_port, db)
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        for name in self.started.iter().rev() {
            let mut c = Command::new(self.bin.join("pg_ctl"));
            c.args(["-D", &self.path(name), "-m", "immediate", "-w", "stop"])
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            if let Some((uid, gid)) = self.as_user {
                c.uid(uid).gid(gid);
            }
            let _ = c.status();
        }
    }
}

/// Waits until `check` holds (bounded).
async fn eventually<F: std::future::Future<Output = bool>>(
    what: &str,
    mut check: impl FnMut() -> F,
) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !check().await {
        assert!(Instant::now() < deadline, "waited 60 s for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether the standby has replayed everything the primary wrote so far.
async fn caught_up(primary: &str, standby: &str) -> bool {
    let mut p = PgConnection::connect(primary).await.unwrap();
    let lsn: String = sqlx::query_scalar("select pg_current_wal_lsn()::text")
        .fetch_one(&mut p)
        .await
        .unwrap();
    let Ok(mut s) = PgConnection::connect(standby).await else {
        return false;
    };
    sqlx::query_scalar::<_, bool>("select pg_last_wal_replay_lsn() >= $1::pg_lsn")
        .bind(lsn)
        .fetch_one(&mut s)
        .await
        .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn officers_reads_come_from_the_read_replica_and_writes_from_the_primary() {
    let mut pair = Pair::new();
    pair.init_primary();
    pair.start("primary", pair.primary_port, "");
    let standby_dir = pair.path("standby");
    let primary_port = pair.primary_port.to_string();
    pair.tool(
        "pg_basebackup",
        &[
            "-h",
            "127.0.0.1",
            "-p",
            &primary_port,
            "-U",
            "postgres",
            "-D",
            &standby_dir,
            "-R",
            "-X",
            "stream",
            "--no-sync",
        ],
    );
    pair.start("standby", pair.standby_port, "");

    let mut admin = PgConnection::connect(&pair.primary("postgres"))
        .await
        .unwrap();
    admin.execute("create database escrow").await.unwrap();
    let (primary, standby) = (pair.primary("escrow"), pair.standby("escrow"));
    // The demo county on the primary, with a platform token and an
    // enrollment to pay into.
    let out = run(&["--database-url", &primary, "demo"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let token_for = |role: &str| crate::demo_token(&primary, role);
    // The platform writes (enrollments, payments); the officer reads.
    let (token, officer) = (token_for("platform"), token_for("officer"));
    eventually("the standby to catch up", || caught_up(&primary, &standby)).await;

    let served = serve(
        &[
            "--database-url",
            &primary,
            "serve",
            "--listen",
            "127.0.0.1:0",
        ],
        &[("ESCROW_READ_DATABASE_URL", &standby)],
    );
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let base = format!("http://{}/v1", served.addr);
    let get = |path: String| {
        let (client, token) = (client.clone(), officer.clone());
        async move {
            let r = client.get(path).bearer_auth(&token).send().await.unwrap();
            assert_eq!(r.status(), reqwest::StatusCode::OK);
            r.text().await.unwrap()
        }
    };
    let enrolled = client
        .post(format!("{base}/institutions/{INSTITUTION}/enrollments"))
        .bearer_auth(&token)
        .header("Idempotency-Key", "replica-enr")
        .json(&serde_json::json!({"id": "E-REPLICA", "student_ref": "S-R",
            "hours_bought": 40, "price": "4000.00",
            "course_start": "2026-09-01", "course_end": "2026-11-30"}))
        .send()
        .await
        .unwrap();
    assert_eq!(enrolled.status(), reqwest::StatusCode::CREATED);
    eventually("the standby to catch up", || caught_up(&primary, &standby)).await;
    let balances = format!("{base}/institutions/{INSTITUTION}/balances");
    let overview = format!("{base}/jurisdictions/410922/overview");
    let (balances_before, overview_before) =
        (get(balances.clone()).await, get(overview.clone()).await);

    // The standby stops replaying: what it serves stands still.
    let mut replica = PgConnection::connect(&standby).await.unwrap();
    replica
        .execute("select pg_wal_replay_pause()")
        .await
        .unwrap();
    eventually("the standby's replay to pause", || {
        let standby = standby.clone();
        async move {
            let mut c = PgConnection::connect(&standby).await.unwrap();
            sqlx::query_scalar::<_, String>("select pg_get_wal_replay_pause_state()")
                .fetch_one(&mut c)
                .await
                .unwrap()
                == "paused"
        }
    })
    .await;
    let paid = client
        .post(format!("{base}/institutions/{INSTITUTION}/payments"))
        .bearer_auth(&token)
        .header("Idempotency-Key", "replica-pay")
        .json(&serde_json::json!({"enrollment": "E-REPLICA", "amount": "1000.00"}))
        .send()
        .await
        .unwrap();
    assert_eq!(paid.status(), reqwest::StatusCode::CREATED);
    // The write went to the primary …
    let mut books = PgConnection::connect(&primary).await.unwrap();
    let on_primary: i64 =
        sqlx::query_scalar("select count(*) from entries where client_id = 'replica-pay'")
            .fetch_one(&mut books)
            .await
            .unwrap();
    assert_eq!(on_primary, 1);
    // … and the officers' reads come from the standby, which lacks it.
    assert_eq!(get(balances.clone()).await, balances_before);
    assert_eq!(get(overview.clone()).await, overview_before);
    // Their answers say how far behind the standby is, and so does
    // /metrics; a write's answer does not.
    assert!(paid.headers().get("x-replica-lag-ms").is_none());
    let read = client
        .get(&balances)
        .bearer_auth(&officer)
        .send()
        .await
        .unwrap();
    let lag: i64 = read.headers()["x-replica-lag-ms"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        lag > 0,
        "replay is paused behind a payment, and the lag is {lag}"
    );
    // The public white and black lists are read there too.
    let lists = client
        .get(format!("http://{}/lists.json", served.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(lists.status(), reqwest::StatusCode::OK);
    assert!(lists.headers().get("x-replica-lag-ms").is_some());
    let metrics = client
        .get(format!("http://{}/metrics", served.addr))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let gauge = metrics
        .lines()
        .find(|l| l.starts_with("read_replica_lag_ms "))
        .unwrap_or_else(|| panic!("no read_replica_lag_ms in /metrics"));
    assert!(
        gauge.ends_with(|c: char| c.is_ascii_digit()) && !gauge.ends_with(" 0"),
        "{gauge}"
    );

    // Replay resumes: the reads catch up.
    replica
        .execute("select pg_wal_replay_resume()")
        .await
        .unwrap();
    eventually("the balances served to show the payment", || {
        let (get, balances, before) = (&get, balances.clone(), balances_before.clone());
        async move { get(balances).await != before }
    })
    .await;
    assert_ne!(get(overview.clone()).await, overview_before);

    // The standby refuses writes: nothing the service could send it by
    // mistake would land there.
    let refused = replica
        .execute("create table replica_probe (x int)")
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.contains("read-only transaction"), "{refused}");
    replica.close().await.unwrap();
    assert!(served.terminate().success());
    let out = run(&["--database-url", &primary, "verify"], &[]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    books.close().await.unwrap();
    admin.close().await.unwrap();
}
