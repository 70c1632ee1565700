//! High availability on PostgreSQL with pg_auto_failover (Debian's
//! `postgresql-15-auto-failover` and `pg-auto-failover-cli`, installed here
//! when missing): a monitor, a primary and a synchronous secondary on free
//! loopback ports in a scratch directory, `serve` on a multi-host URL,
//! payments under load from several clients, the primary killed (SIGKILL to
//! its keeper and its postgres), then: the service writes on the promoted
//! node, `/readyz` said so (the outage, then the recovery), every
//! acknowledged payment is in the books once, and `verify` passes. Every
//! process is stopped and the directory removed, even when the test fails.

use std::collections::BTreeSet;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::{Connection, Executor, PgConnection};

use crate::{run, serve, stderr, stdout};

const INSTITUTION: &str = "INS-410922-001";
const WRITERS: usize = 4;

/// pg_autoctl and the PostgreSQL it runs: where they are and as whom.
struct Tools {
    /// `…/bin` of the PostgreSQL version the extension is built for.
    bindir: PathBuf,
    /// Run as this uid/gid (pg_autoctl refuses root; the tests may run as root).
    as_user: Option<(u32, u32)>,
    /// The superuser role of the clusters it creates (the OS user's name).
    role: String,
}

fn output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The PostgreSQL bin directory that has the pgautofailover extension.
fn extension_bindir() -> Option<PathBuf> {
    let mut versions: Vec<u32> = std::fs::read_dir("/usr/share/postgresql")
        .ok()?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|v| {
            Path::new(&format!(
                "/usr/share/postgresql/{v}/extension/pgautofailover.control"
            ))
            .exists()
        })
        .collect();
    versions.sort();
    let bindir = PathBuf::from(format!("/usr/lib/postgresql/{}/bin", versions.pop()?));
    bindir.join("pg_ctl").exists().then_some(bindir)
}

/// Installs the packages when missing (as root, quietly, once); `Err` says
/// why the test cannot run here.
fn tools() -> Result<Tools, String> {
    let root = output("id", &["-u"]).as_deref() == Some("0");
    if output("pg_autoctl", &["--version"]).is_none() || extension_bindir().is_none() {
        if !root {
            return Err(
                "pg_auto_failover is not installed and this user cannot install it: \
                 apt-get install postgresql-15-auto-failover pg-auto-failover-cli"
                    .into(),
            );
        }
        eprintln!(
            "installing pg_auto_failover (postgresql-15-auto-failover, pg-auto-failover-cli) ..."
        );
        let installed = Command::new("timeout")
            .args(["300", "apt-get", "install", "-y", "-qq"])
            .args(["postgresql-15-auto-failover", "pg-auto-failover-cli"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(Stdio::null())
            .output()
            .map_err(|e| format!("apt-get: {e}"))?;
        if !installed.status.success() {
            return Err(format!(
                "apt-get could not install pg_auto_failover: {}",
                String::from_utf8_lossy(&installed.stderr).trim()
            ));
        }
    }
    let bindir = extension_bindir().ok_or("no PostgreSQL with the pgautofailover extension")?;
    if root {
        let uid = output("id", &["-u", "postgres"]).ok_or("no postgres user to run as")?;
        let gid = output("id", &["-g", "postgres"]).ok_or("no postgres group")?;
        Ok(Tools {
            bindir,
            as_user: Some((uid.parse().unwrap(), gid.parse().unwrap())),
            role: "postgres".into(),
        })
    } else {
        Ok(Tools {
            bindir,
            as_user: None,
            role: output("id", &["-un"]).ok_or("who am I?")?,
        })
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One `pg_autoctl … --run` process: the keeper and the PostgreSQL it
/// starts, in a process group of their own.
struct Keeper {
    name: String,
    child: Child,
    port: u16,
}

/// The formation; dropping it stops every keeper (SIGTERM, then SIGKILL)
/// and removes the directory.
struct Cluster {
    keepers: Vec<Keeper>,
    tools: Tools,
    dir: tempfile::TempDir,
    monitor_port: u16,
}

impl Cluster {
    fn new(tools: Tools) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        if let Some((uid, gid)) = tools.as_user {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).unwrap();
        }
        Cluster {
            keepers: Vec::new(),
            tools,
            dir,
            monitor_port: free_port(),
        }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    fn monitor_url(&self) -> String {
        format!(
            "postgres://autoctl_node@127.0.0.1:{}/pg_auto_failover?sslmode=disable",
            self.monitor_port
        )
    }

    /// A superuser connection to a node's (or the monitor's) database.
    fn url(&self, port: u16, db: &str) -> String {
        format!("postgres://{}@127.0.0.1:{port}/{db}", self.tools.role)
    }

    fn start(&mut self, name: &str, port: u16, args: &[&str]) {
        let log = std::fs::File::create(self.dir.path().join(format!("{name}.log"))).unwrap();
        let path = format!(
            "{}:{}",
            self.tools.bindir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut c = Command::new("pg_autoctl");
        c.args(args)
            .args(["--pgdata", &self.path(name), "--pgport", &port.to_string()])
            .args([
                "--hostname",
                "127.0.0.1",
                "--auth",
                "trust",
                "--no-ssl",
                "--run",
            ])
            .env("PATH", path)
            .env("HOME", self.dir.path())
            .env("XDG_CONFIG_HOME", self.path("config"))
            .env("XDG_DATA_HOME", self.path("data"))
            .env("XDG_RUNTIME_DIR", self.path("run"))
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0);
        if let Some((uid, gid)) = self.tools.as_user {
            c.uid(uid).gid(gid);
        }
        let child = c.spawn().unwrap();
        self.keepers.push(Keeper {
            name: name.to_string(),
            child,
            port,
        });
    }

    /// The monitor, with health checks tightened so that a lost primary is
    /// noticed in seconds (the defaults take about 20 s), and the wait for
    /// a lost primary to demote itself before the standby takes writes
    /// shortened (30 s by default).
    async fn start_monitor(&mut self) {
        self.start("monitor", self.monitor_port, &["create", "monitor"]);
        let url = self.url(self.monitor_port, "pg_auto_failover");
        let mut conn = self.connect(&url).await;
        for (setting, value) in [
            ("health_check_period", "1000"),
            ("health_check_retry_delay", "500"),
            ("health_check_timeout", "2000"),
            ("health_check_max_retries", "1"),
            // Wide enough that a keeper slowed by a busy machine (the
            // whole suite runs at once) is not taken for lost.
            ("node_considered_unhealthy_timeout", "5000"),
            ("primary_demote_timeout", "3000"),
        ] {
            conn.execute(format!("alter system set pgautofailover.{setting} = {value}").as_str())
                .await
                .unwrap();
        }
        conn.execute("select pg_reload_conf()").await.unwrap();
        conn.close().await.unwrap();
    }

    fn start_node(&mut self, name: &str) -> u16 {
        let port = free_port();
        let monitor = self.monitor_url();
        self.start(
            name,
            port,
            &[
                "create",
                "postgres",
                "--listen",
                "127.0.0.1",
                "--monitor",
                &monitor,
                "--dbname",
                "escrow",
                "--name",
                name,
            ],
        );
        port
    }

    /// Connects, retrying while the server starts (bounded).
    async fn connect(&self, url: &str) -> PgConnection {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match PgConnection::connect(url).await {
                Ok(c) => return c,
                Err(e) => {
                    self.check_running();
                    assert!(Instant::now() < deadline, "{url}: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }

    /// Every keeper still runs (a keeper that exited failed to start).
    fn check_running(&self) {
        for k in &self.keepers {
            // `try_wait` needs `&mut`; a signal 0 asks the same.
            let alive = Command::new("kill")
                .args(["-0", &k.child.id().to_string()])
                .stderr(Stdio::null())
                .status()
                .unwrap()
                .success();
            assert!(alive, "pg_autoctl {} exited (see its log below)", k.name);
        }
    }

    /// The monitor's view: `name:reported/goal` per node, in node order.
    async fn states(&self) -> String {
        let Ok(mut conn) = PgConnection::connect(&self.monitor_url()).await else {
            return "monitor unreachable".into();
        };
        let states: Option<String> = sqlx::query_scalar(
            "select string_agg(nodename || ':' || reportedstate || '/' || goalstate, ' ' order by nodeid) \
               from pgautofailover.node",
        )
        .fetch_one(&mut conn)
        .await
        .unwrap_or(None);
        let _ = conn.close().await;
        states.unwrap_or_default()
    }

    /// Waits until the monitor's view is `want` (bounded), running `poke`
    /// between looks.
    async fn wait_for(&self, want: &str, mut poke: impl AsyncFnMut()) {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let now = self.states().await;
            if now == want {
                return;
            }
            self.check_running();
            assert!(
                Instant::now() < deadline,
                "the formation is {now:?}, not {want:?}"
            );
            poke().await;
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// SIGKILL to a keeper's process group: pg_autoctl and its postgres die
    /// at once, as when the machine is lost.
    fn kill(&mut self, name: &str) {
        let k = self.keepers.iter_mut().find(|k| k.name == name).unwrap();
        assert!(signal_group("KILL", &k.child), "no keeper {name} to kill");
        k.child.wait().unwrap();
    }
}

/// Sends `signal` to the child's process group; whether the group had a
/// process to receive it.
fn signal_group(signal: &str, child: &Child) -> bool {
    Command::new("kill")
        .args([&format!("-{signal}"), "--", &format!("-{}", child.id())])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for k in &self.keepers {
                let log = std::fs::read_to_string(self.dir.path().join(format!("{}.log", k.name)))
                    .unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(15).collect();
                eprintln!("--- pg_autoctl {} (port {}), last lines:", k.name, k.port);
                for line in tail.iter().rev() {
                    eprintln!("{line}");
                }
            }
        }
        // Nodes first, the monitor last.
        for k in self.keepers.iter_mut().rev() {
            if let Ok(None) = k.child.try_wait() {
                signal_group("TERM", &k.child);
                let deadline = Instant::now() + Duration::from_secs(10);
                while matches!(k.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
            // Whatever of the group is left (a postgres that outlived it),
            // until nothing of it is left (bounded).
            for _ in 0..100 {
                if !signal_group("KILL", &k.child) {
                    break;
                }
                let _ = k.child.try_wait();
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = k.child.wait();
        }
    }
}

/// Waits until `done` (bounded).
async fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "waited 60 s for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_survives_losing_its_primary_with_no_acknowledged_payment_lost() {
    let tools = match tools() {
        Ok(t) => t,
        Err(why) => {
            eprintln!("SKIPPED the pg_auto_failover test: {why}");
            return;
        }
    };
    let mut cluster = Cluster::new(tools);
    cluster.start_monitor().await;
    let first = cluster.start_node("node1");
    cluster.wait_for("node1:single/single", async || {}).await;
    let second = cluster.start_node("node2");
    // The standby's base backup waits for a checkpoint on the primary,
    // which PostgreSQL spreads over minutes unless one is asked for.
    let primary = cluster.url(first, "escrow");
    cluster
        .wait_for(
            "node1:primary/primary node2:secondary/secondary",
            async || {
                if let Ok(mut c) = PgConnection::connect(&primary).await {
                    let _ = c.execute("checkpoint").await;
                    let _ = c.close().await;
                }
            },
        )
        .await;
    let mut conn = cluster.connect(&primary).await;
    let sync: String = sqlx::query_scalar("show synchronous_standby_names")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(!sync.is_empty(), "the secondary is synchronous");
    conn.close().await.unwrap();

    // A URL whose only host is the standby is refused, naming why: the
    // store never writes through a read-only session.
    let standby_only = format!(
        "postgres://{}@127.0.0.1:{second}/escrow?target_session_attrs=read-write",
        cluster.tools.role
    );
    let out = run(&["--database-url", &standby_only, "verify"], &[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("a standby (read-only)"),
        "{}",
        stderr(&out)
    );

    // The service sees both nodes through one URL.
    let url = format!(
        "postgres://{}@127.0.0.1:{first},127.0.0.1:{second}/escrow?target_session_attrs=read-write",
        cluster.tools.role
    );
    let out = run(&["--database-url", &url, "demo"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let token = crate::demo_token(&url, "platform");
    // A request cut off by the loss holds its Idempotency-Key for the
    // request timeout: a short one keeps the test short.
    let served = serve(
        &["--database-url", &url, "serve", "--listen", "127.0.0.1:0"],
        &[("ESCROW_REQUEST_TIMEOUT_SECS", "5")],
    );
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let base = format!("http://{}/v1/institutions/{INSTITUTION}", served.addr);
    for w in 0..WRITERS {
        let r = client
            .post(format!("{base}/enrollments"))
            .bearer_auth(&token)
            .header("Idempotency-Key", format!("ha-enr-{w}"))
            .json(
                &serde_json::json!({"id": format!("E-HA-{w}"), "student_ref": format!("S-HA-{w}"),
                "hours_bought": 40, "price": "4000.00",
                "course_start": "2026-09-01", "course_end": "2026-11-30"}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), reqwest::StatusCode::CREATED);
    }

    // Readiness, asked every 100 ms: each answer's status (0: no answer).
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let readiness: Arc<Mutex<Vec<u16>>> = Arc::default();
    let prober = {
        let (client, url, readiness, stopped) = (
            client.clone(),
            format!("http://{}/readyz", served.addr),
            readiness.clone(),
            stopped.clone(),
        );
        tokio::spawn(async move {
            while !*stopped.borrow() {
                let status = match client.get(&url).send().await {
                    Ok(r) => r.status().as_u16(),
                    Err(_) => 0,
                };
                readiness.lock().unwrap().push(status);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    // The writers: payments of 1.00, one after another per client; a
    // payment not acknowledged (no answer, or a 5xx while the database is
    // away) is sent again with the same key until it is, as a careful
    // client does. A 4xx is a bug.
    let acknowledged: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let (client, token, base, acknowledged, stopped) = (
            client.clone(),
            token.clone(),
            base.clone(),
            acknowledged.clone(),
            stopped.clone(),
        );
        writers.push(tokio::spawn(async move {
            let mut sent = BTreeSet::new();
            for n in 0..10_000 {
                if *stopped.borrow() {
                    break;
                }
                let key = format!("ha-pay-{w}-{n}");
                sent.insert(key.clone());
                let deadline = Instant::now() + Duration::from_secs(60);
                loop {
                    let answer = client
                        .post(format!("{base}/payments"))
                        .bearer_auth(&token)
                        .header("Idempotency-Key", &key)
                        .json(&serde_json::json!({"enrollment": format!("E-HA-{w}"), "amount": "1.00"}))
                        .send()
                        .await;
                    match answer {
                        Ok(r) if r.status().is_success() => break,
                        // Cut off by the request timeout while the
                        // database was away (408), or the attempt cut off
                        // still holds the key until its lease ends (409
                        // request_in_progress): repeat, as the answer says.
                        Ok(r) if r.status().is_client_error() => {
                            let status = r.status();
                            let body = r.text().await.unwrap_or_default();
                            assert!(
                                status == reqwest::StatusCode::REQUEST_TIMEOUT
                                    || status == reqwest::StatusCode::CONFLICT
                                        && body.contains("request_in_progress"),
                                "{key}: {status} {body}"
                            );
                        }
                        _ => {}
                    }
                    assert!(Instant::now() < deadline, "{key}: never acknowledged");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                acknowledged.lock().unwrap().push(key);
            }
            sent
        }));
    }
    let count = || acknowledged.lock().unwrap().len();
    wait_until("the first payments", || count() >= 40).await;

    // The primary is lost.
    assert_eq!(
        cluster.states().await,
        "node1:primary/primary node2:secondary/secondary",
        "no failover before the loss"
    );
    let at_kill = count();
    let ready_at_kill = readiness.lock().unwrap().len();
    assert!(
        readiness.lock().unwrap().iter().all(|s| *s == 200),
        "ready before the loss: {:?}",
        readiness.lock().unwrap()
    );
    cluster.kill("node1");
    // Readiness says so, then says it is back; the payments go on.
    let outage_then_recovery = || {
        let seen = readiness.lock().unwrap();
        let after = &seen[ready_at_kill..];
        after
            .iter()
            .position(|s| *s != 200)
            .is_some_and(|down| after[down..].contains(&200))
    };
    wait_until(
        "/readyz to report the outage and the recovery",
        outage_then_recovery,
    )
    .await;
    wait_until("payments after the failover", || count() >= at_kill + 40).await;
    let _ = stop.send(true);
    {
        let seen = readiness.lock().unwrap();
        let down = seen[ready_at_kill..].iter().filter(|s| **s != 200).count();
        eprintln!(
            "failover: {at_kill} payments acknowledged before the loss, {} in all; \
             /readyz not ready for {down} of its answers after the loss",
            count()
        );
    }
    let mut sent = BTreeSet::new();
    for w in writers {
        sent.extend(w.await.unwrap());
    }
    prober.await.unwrap();
    assert!(served.terminate().success());
    let states = cluster.states().await;
    assert!(
        states.contains("node2:wait_primary/") || states.contains("node2:primary/"),
        "node2 was promoted: {states}"
    );

    // The books, read on the promoted node: every acknowledged payment
    // once, with its money, and nothing never sent.
    let acknowledged = acknowledged.lock().unwrap().clone();
    let mut books = cluster.connect(&cluster.url(second, "escrow")).await;
    let kept: Vec<String> =
        sqlx::query_scalar("select client_id from entries where client_id like 'ha-pay-%'")
            .fetch_all(&mut books)
            .await
            .unwrap();
    let kept_set: BTreeSet<String> = kept.iter().cloned().collect();
    assert_eq!(kept.len(), kept_set.len(), "a payment booked twice");
    let lost: Vec<&String> = acknowledged
        .iter()
        .filter(|k| !kept_set.contains(*k))
        .collect();
    assert!(
        lost.is_empty(),
        "acknowledged and lost in the failover: {lost:?}"
    );
    assert!(kept_set.is_subset(&sent), "payments never sent");
    let money: i64 = sqlx::query_scalar(
        "select coalesce(sum(p.amount_minor), 0)::bigint from postings p join entries e \
           on e.institution_id = p.institution_id and e.seq = p.seq \
           where e.client_id like 'ha-pay-%' and p.side = 'D'",
    )
    .fetch_one(&mut books)
    .await
    .unwrap();
    assert_eq!(
        money,
        kept.len() as i64 * 100,
        "the money of each payment once"
    );
    books.close().await.unwrap();

    // The record chains and the books check out on the surviving node,
    // reached through the same URL with its first host gone.
    let out = run(&["--database-url", &url, "verify"], &[]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    drop(cluster);
}
