//! `bench http`: the service under load over loopback, with the direct
//! ledger-core rate in the same run as the baseline. The load generator runs
//! in the same process as the server (they share the machine's cores, as a
//! sidecar would); every figure is printed with its conditions.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use ledger_core::{
    Amount, Category, ClientId, Command, Currency, Enrollment, EnrollmentId, Institution,
    InstitutionId, InstitutionStatus, JurisdictionCode, Request, Store, SupervisionMode,
};
use serde_json::json;

use api::access::{Role, Scope};
use api::http::{AppState, Config};

#[derive(Debug, clap::Args)]
pub struct HttpArgs {
    /// Concurrent clients for the query phases.
    #[arg(long, default_value_t = 64)]
    pub clients: usize,
    /// Seconds per query phase.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// The paced phase's target rate (requests per second, all clients).
    #[arg(long, default_value_t = 2_000)]
    pub rate: u64,
    /// Payment batches posted (over HTTP, and directly for the baseline).
    #[arg(long, default_value_t = 20)]
    pub batches: usize,
    /// Payments per batch.
    #[arg(long, default_value_t = 1_000)]
    pub batch: usize,
    /// Institutions the payments spread over (per side).
    #[arg(long, default_value_t = 200)]
    pub institutions: usize,
    /// Seconds per single-request posting phase (one payment per request,
    /// every request its own Idempotency-Key); 0 skips them.
    #[arg(long, default_value_t = 10)]
    pub single_seconds: u64,
    /// Concurrent connections of the single-request phases.
    #[arg(long, value_delimiter = ',', default_values_t = vec![16, 64])]
    pub connections: Vec<usize>,
    /// Institutions the spread single requests go over (the hot phase uses
    /// one of them).
    #[arg(long, default_value_t = 1_000)]
    pub single_institutions: usize,
    /// Entries of the raw-SQL baseline (one entry per transaction, 16
    /// writers), measured in the same run.
    #[arg(long, default_value_t = 5_000)]
    pub baseline_entries: usize,
    /// Only the single-request phases and their baseline.
    #[arg(long)]
    pub single_only: bool,
    /// Only the overview phases (after the balances' paced phase, the
    /// baseline of the same run).
    #[arg(long)]
    pub overview_only: bool,
    /// Payments per second a writer posts to the county during the
    /// "overview while payments arrive" phase.
    #[arg(long, default_value_t = 50)]
    pub overview_writes: u64,
    /// Payments per second a writer posts during the "balances while
    /// posting" phase (as many as it manages, one at a time, below that).
    #[arg(long, default_value_t = 200)]
    pub posting_writes: u64,
    /// Group commit: requests per transaction at most.
    #[arg(long)]
    pub max_batch: Option<usize>,
    /// Group commit: microseconds a batch waits for more requests.
    #[arg(long)]
    pub max_wait_us: Option<u64>,
    /// Group commit: writer partitions.
    #[arg(long)]
    pub partitions: Option<usize>,
}

/// The scratch schema on PostgreSQL.
const HTTP_SCHEMA: &str = "bench_http";

/// Entries whose client id starts with `prefix`: what was written, whatever
/// the status codes said.
async fn entries_like(store: &Store, prefix: &str) -> anyhow::Result<i64> {
    let sql = "select cast(count(*) as bigint) from entries where client_id like $1";
    let pattern = format!("{prefix}%");
    Ok(match store {
        Store::Postgres(s) => {
            sqlx::query_scalar(sql)
                .bind(pattern)
                .fetch_one(s.pool())
                .await?
        }
        Store::Sqlite(s) => {
            sqlx::query_scalar(sql)
                .bind(pattern)
                .fetch_one(s.pool())
                .await?
        }
    })
}

/// `connections` clients each POST one payment per request (0.01, its own
/// Idempotency-Key) for `seconds`, to `institutions` (ids `BS-00000`…)
/// round-robin: the latencies of the 201s, and the new entries counted in
/// the books.
async fn single_requests(
    base: &str,
    token: &str,
    store: &Store,
    tag: &str,
    institutions: usize,
    connections: usize,
    seconds: u64,
) -> anyhow::Result<(Latencies, i64)> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .build()?;
    let before = entries_like(store, tag).await?;
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for c in 0..connections {
        let client = client.clone();
        let base = base.to_string();
        let token = token.to_string();
        let tag = tag.to_string();
        tasks.push(tokio::spawn(async move {
            let mut micros = Vec::new();
            let mut errors = 0usize;
            let mut k = 0usize;
            while Instant::now() < deadline {
                let n = (c + k * connections) % institutions;
                k += 1;
                let sent = Instant::now();
                let ok = client
                    .post(format!("{base}/v1/institutions/BS-{n:05}/payments"))
                    .bearer_auth(&token)
                    .header("Idempotency-Key", format!("{tag}-{c}-{k}"))
                    .json(&json!({"enrollment": "E", "amount": "0.01"}))
                    .send()
                    .await
                    .map(|r| r.status() == reqwest::StatusCode::CREATED)
                    .unwrap_or(false);
                if ok {
                    micros.push(u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX));
                } else {
                    errors += 1;
                }
            }
            (micros, errors)
        }));
    }
    let mut all = Latencies {
        micros: Vec::new(),
        errors: 0,
        elapsed: Duration::ZERO,
    };
    for t in tasks {
        let (m, e) = t.await?;
        all.micros.extend(m);
        all.errors += e;
    }
    all.elapsed = started.elapsed();
    all.micros.sort_unstable();
    let written = entries_like(store, tag).await? - before;
    Ok((all, written))
}

/// The single-request phases: each connection count, spread over the
/// institutions and all on one, then the raw-SQL baseline.
async fn single_phases(
    args: &HttpArgs,
    url: &str,
    base: &str,
    token: &str,
    store: &Store,
) -> anyhow::Result<()> {
    if args.single_seconds == 0 {
        return Ok(());
    }
    println!();
    println!(
        "| single payments, {} s per phase | connections | institutions | new entries (books) | entries/s | non-201 | p50 | p99 |",
        args.single_seconds
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    let mut spread_64 = 0;
    for &connections in &args.connections {
        for (what, institutions) in [("spread", args.single_institutions), ("one institution", 1)] {
            let tag = format!("s{connections}-{institutions}");
            super::analyze_schema(url, HTTP_SCHEMA).await?;
            let (l, written) = single_requests(
                base,
                token,
                store,
                &tag,
                institutions,
                connections,
                args.single_seconds,
            )
            .await?;
            let rate = u64::try_from(written).unwrap_or(0) * 1000
                / u64::try_from(l.elapsed.as_millis().max(1)).unwrap_or(1);
            if institutions > 1 {
                spread_64 = spread_64.max(rate);
            }
            println!(
                "| {what} | {connections} | {institutions} | {written} | {rate}/s | {} | {} | {} |",
                l.errors,
                l.quantile(50),
                l.quantile(99)
            );
        }
    }
    // The raw-SQL baseline: one entry per transaction, 16 writers, the
    // same rows the ledger writes (bench post's baseline).
    let scratch = super::post::scratch(url).await?;
    super::post::setup(&scratch.baseline, "raw", args.single_institutions).await?;
    super::analyze_schema(url, super::post::BASELINE_SCHEMA).await?;
    let took = super::post::run_baseline(
        &scratch.baseline,
        "raw",
        args.baseline_entries,
        args.single_institutions,
        1,
        16,
    )
    .await?;
    let raw = super::post::per_second(args.baseline_entries, took);
    println!(
        "| raw SQL, one entry per transaction (baseline) | 16 writers | {} | {} | {raw}/s | - | - | - |",
        args.single_institutions, args.baseline_entries
    );
    println!(
        "\nbest spread single-request rate / raw-SQL baseline: {}.{:02}×",
        spread_64 / raw.max(1),
        (spread_64 * 100 / raw.max(1)) % 100
    );
    scratch.ledger.close().await;
    scratch.baseline.close().await;
    Ok(())
}

async fn payees(store: &Store, prefix: &str, n: usize) -> anyhow::Result<()> {
    for k in 0..n {
        let id = InstitutionId::parse(format!("{prefix}-{k:05}"))?;
        store
            .create_institution(&Institution {
                id: id.clone(),
                name: format!("bench {prefix} {k}"),
                licence_no: format!("B-{prefix}-{k}"),
                jurisdiction: JurisdictionCode::parse(api::demo::COUNTY)?,
                mode: SupervisionMode::Custody,
                category: Category::NonSubject,
                status: InstitutionStatus::Active,
                currency: Currency::Cny,
            })
            .await?;
        store
            .create_enrollment(&Enrollment {
                institution: id,
                id: EnrollmentId::parse("E")?,
                student_ref: "S".into(),
                hours_bought: 60,
                bonus_hours: 0,
                price: Amount::from_minor(500_000)?,
                currency: Currency::Cny,
                course_start: chrono::NaiveDate::from_ymd_opt(2026, 9, 1).unwrap_or_default(),
                course_end: chrono::NaiveDate::from_ymd_opt(2026, 11, 30).unwrap_or_default(),
            })
            .await?;
    }
    Ok(())
}

struct Latencies {
    micros: Vec<u64>,
    errors: usize,
    elapsed: Duration,
}

impl Latencies {
    fn quantile(&self, q: usize) -> String {
        if self.micros.is_empty() {
            return "-".into();
        }
        let i = (self.micros.len() * q / 100).min(self.micros.len() - 1);
        let us = self.micros[i];
        format!("{}.{:02} ms", us / 1000, (us % 1000) / 10)
    }

    fn rate(&self) -> u64 {
        let ms = self.elapsed.as_millis().max(1) as u64;
        self.micros.len() as u64 * 1000 / ms
    }
}

/// `clients` tasks GET `paths` round-robin for `seconds`; `pace` spaces
/// each client's requests (None: as fast as answers come).
/// How a load phase's requests say who asks: an API token, or the
/// console's session cookie (`el_session=…`).
#[derive(Debug, Clone)]
enum Auth {
    Bearer(String),
    Cookie(String),
}

async fn load(
    base: &str,
    auth: impl Into<Auth>,
    paths: &[String],
    clients: usize,
    seconds: u64,
    pace: Option<Duration>,
) -> anyhow::Result<Latencies> {
    // A redirect (to the console's sign-in page) is a failure, not a
    // page.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let paths = Arc::new(paths.to_vec());
    let auth: Auth = auth.into();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for c in 0..clients {
        let client = client.clone();
        let paths = paths.clone();
        let base = base.to_string();
        let auth = auth.clone();
        tasks.push(tokio::spawn(async move {
            let mut micros = Vec::new();
            let mut errors = 0usize;
            let mut k = c;
            // Paced clients start spread over one period, as people do,
            // not all in the same instant.
            let mut ticker = pace.map(|p| {
                let spread = p.checked_div(clients as u32).unwrap_or_default() * c as u32;
                let mut t = tokio::time::interval_at(tokio::time::Instant::now() + spread, p);
                t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                t
            });
            while Instant::now() < deadline {
                if let Some(t) = ticker.as_mut() {
                    t.tick().await;
                }
                let path = &paths[k % paths.len()];
                k += 1;
                let sent = Instant::now();
                let request = client.get(format!("{base}{path}"));
                let request = match &auth {
                    Auth::Bearer(token) => request.bearer_auth(token),
                    Auth::Cookie(cookie) => request.header(reqwest::header::COOKIE, cookie),
                };
                // The whole answer is read, as a browser or a client
                // would (and a body left unread costs the connection).
                let ok = match request.send().await {
                    Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                    Err(_) => false,
                };
                if ok {
                    micros.push(u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX));
                } else {
                    errors += 1;
                }
            }
            (micros, errors)
        }));
    }
    let mut all = Latencies {
        micros: Vec::new(),
        errors: 0,
        elapsed: Duration::ZERO,
    };
    for t in tasks {
        let (m, e) = t.await?;
        all.micros.extend(m);
        all.errors += e;
    }
    all.elapsed = started.elapsed();
    all.micros.sort_unstable();
    Ok(all)
}

impl From<&String> for Auth {
    fn from(token: &String) -> Auth {
        Auth::Bearer(token.clone())
    }
}

/// A writer posting `per_second` single payments to the county's "BD"
/// institutions (directly, as a bank's batch job would) until stopped, on
/// a thread and runtime of its own (so that the load generator's tasks do
/// not starve it), and how many it wrote. `tag` begins the payments'
/// client ids, so that two phases never post the same one.
fn paced_payments(
    store: &Store,
    tag: &'static str,
    per_second: u64,
    institutions: usize,
) -> (
    Arc<std::sync::atomic::AtomicBool>,
    Arc<std::sync::atomic::AtomicU64>,
) {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let written = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let (count, stopped) = (written.clone(), stop.clone());
    let store = store.clone();
    std::thread::spawn(move || {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        runtime.block_on(async move {
            let mut tick =
                tokio::time::interval(Duration::from_micros(1_000_000 / per_second.max(1)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            for n in 0usize.. {
                tick.tick().await;
                if stopped.load(Ordering::Relaxed) {
                    return;
                }
                let (institution, _) = payment("BD", 0, n, institutions);
                let Ok(request) = (|| -> anyhow::Result<Request> {
                    Ok(Request {
                        institution: InstitutionId::parse(institution)?,
                        client_id: ClientId::parse(format!("{tag}-{n}"))?,
                        currency: Currency::Cny,
                        occurred_at: Utc::now(),
                        external_ref: None,
                        command: Command::PayTuition {
                            enrollment: EnrollmentId::parse("E")?,
                            amount: ledger_core::Amount::from_minor(100)?,
                        },
                    })
                })() else {
                    return;
                };
                if store.execute(request).await.is_ok() {
                    count.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    });
    (stop, written)
}

fn payment(prefix: &str, b: usize, i: usize, institutions: usize) -> (String, String) {
    let n = (b * 7919 + i) % institutions;
    (format!("{prefix}-{n:05}"), format!("b{b}-i{i}"))
}

pub async fn run(args: HttpArgs, url: &str) -> anyhow::Result<()> {
    let store = super::scratch(url, HTTP_SCHEMA).await?;
    api::demo::build(&store).await?;
    payees(&store, "BH", args.institutions).await?;
    payees(&store, "BD", args.institutions).await?;
    if args.single_seconds > 0 {
        payees(&store, "BS", args.single_institutions).await?;
    }
    let (token, _) =
        api::token::create(&store, Role::Admin, Scope::All, Some("bench".into())).await?;
    super::analyze_schema(url, HTTP_SCHEMA).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(api::http::serve(
        listener,
        AppState::new(
            store.clone(),
            Config {
                group: group_settings(&args),
                ..Config::default()
            },
        ),
        async {
            let _ = stopped.await;
        },
    ));
    println!(
        "bench http on {} ({} cores), {} clients, {} s per phase",
        store.backend(),
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        args.clients,
        args.seconds
    );
    let institutions: Vec<String> = store
        .institutions()
        .await?
        .into_iter()
        .filter(|i| i.id.as_str().starts_with("INS-"))
        .map(|i| format!("/v1/institutions/{}/balances", i.id))
        .collect();
    let overview = vec![format!("/v1/jurisdictions/{}/overview", api::demo::COUNTY)];

    println!("group commit: {:?}", group_settings(&args));
    if args.single_only {
        single_phases(&args, url, &base, &token, &store).await?;
        let report = store.verify().await?;
        anyhow::ensure!(report.ok(), "the scratch books do not verify: {report:?}");
        let _ = stop.send(());
        let _ = server.await;
        return Ok(());
    }
    println!("| phase | requests | errors | throughput | p50 | p99 |");
    println!("|---|---|---|---|---|---|");
    let row = |name: &str, l: &Latencies| {
        println!(
            "| {name} | {} | {} | {}/s | {} | {} |",
            l.micros.len(),
            l.errors,
            l.rate(),
            l.quantile(50),
            l.quantile(99)
        );
    };
    let pace = Duration::from_micros(1_000_000 * args.clients as u64 / args.rate.max(1));
    let paced = load(
        &base,
        &token,
        &institutions,
        args.clients,
        args.seconds,
        Some(pace),
    )
    .await?;
    row(&format!("balances, paced at {}/s", args.rate), &paced);
    let open = load(
        &base,
        &token,
        &institutions,
        args.clients,
        args.seconds,
        None,
    )
    .await?;
    row("balances, as fast as answered", &open);
    // The paced balances again while payments are being posted: the
    // institution's page a family or a bank looks at during a busy day.
    let (writes, written) = paced_payments(&store, "bw", args.posting_writes, args.institutions);
    let posting = load(
        &base,
        &token,
        &institutions,
        args.clients,
        args.seconds,
        Some(pace),
    )
    .await?;
    writes.store(true, std::sync::atomic::Ordering::Relaxed);
    row(
        &format!(
            "balances, paced at {}/s, while payments are posted ({} written in {} s, aimed at {}/s)",
            args.rate,
            written.load(std::sync::atomic::Ordering::Relaxed),
            args.seconds,
            args.posting_writes
        ),
        &posting,
    );
    let ov = load(&base, &token, &overview, args.clients, args.seconds, None).await?;
    let county = store.institutions().await?.len();
    row(
        &format!("overview of a {county}-institution county, as fast as answered"),
        &ov,
    );
    // The same while a bank pushes payments to the county: every payment
    // changes the county's figures, so the pages kept are read afresh
    // after each.
    let (writes, written) = paced_payments(&store, "ow", args.overview_writes, args.institutions);
    let busy = load(&base, &token, &overview, args.clients, args.seconds, None).await?;
    writes.store(true, std::sync::atomic::Ordering::Relaxed);
    row(
        &format!(
            "overview of the county while {} payments/s arrive ({} written), as fast as answered",
            args.overview_writes,
            written.load(std::sync::atomic::Ordering::Relaxed)
        ),
        &busy,
    );
    let paced_overview = load(
        &base,
        &token,
        &overview,
        args.clients,
        args.seconds,
        Some(Duration::from_secs(1)),
    )
    .await?;
    row(
        &format!(
            "overview of the county, {} officers each asking once a second",
            args.clients
        ),
        &paced_overview,
    );
    // The console's overview page, signed in as a county officer: the
    // session read, the page rendered as HTML.
    let login = "bench-officer";
    let password = "bench-officer-password-1";
    api::app::officers::add(
        &store,
        api::app::officers::NewOfficer {
            login: login.into(),
            name: "Bench Officer".into(),
            role: Role::Officer,
            scope: Scope::Jurisdiction(JurisdictionCode::parse(api::demo::COUNTY)?),
        },
        password,
    )
    .await?;
    let session = api::app::officers::sign_in(&store, login, password).await?;
    let signed_in = Auth::Cookie(format!(
        "{}={}",
        api::console::SESSION_COOKIE,
        session.session_id
    ));
    let page = load(
        &base,
        signed_in.clone(),
        &["/overview".to_string()],
        args.clients,
        args.seconds,
        None,
    )
    .await?;
    row(
        "console overview page of the county (HTML, signed in), as fast as answered",
        &page,
    );
    let paced_page = load(
        &base,
        signed_in.clone(),
        &["/overview".to_string()],
        args.clients,
        args.seconds,
        Some(Duration::from_secs(1)),
    )
    .await?;
    row(
        &format!(
            "console overview page of the county, {} officers each asking once a second",
            args.clients
        ),
        &paced_page,
    );
    if args.overview_only {
        let _ = stop.send(());
        let _ = server.await;
        return Ok(());
    }

    // Batched payments: directly through ledger-core, then over HTTP.
    let occurred = Utc
        .with_ymd_and_hms(2026, 9, 10, 9, 0, 0)
        .single()
        .unwrap_or_default();
    let started = Instant::now();
    for b in 0..args.batches {
        let mut requests = Vec::with_capacity(args.batch);
        for i in 0..args.batch {
            let (institution, client_id) = payment("BD", b, i, args.institutions);
            requests.push(Request {
                institution: InstitutionId::parse(institution)?,
                client_id: ClientId::parse(client_id)?,
                currency: Currency::Cny,
                occurred_at: occurred,
                external_ref: None,
                command: Command::PayTuition {
                    enrollment: EnrollmentId::parse("E")?,
                    amount: ledger_core::Amount::from_minor(100)?,
                },
            });
        }
        store.execute_batch(requests).await?;
    }
    let direct = started.elapsed();
    let client = reqwest::Client::new();
    let started = Instant::now();
    for b in 0..args.batches {
        let items: Vec<_> = (0..args.batch)
            .map(|i| {
                let (institution, client_id) = payment("BH", b, i, args.institutions);
                json!({"institution": institution, "client_id": client_id, "op": "pay_tuition",
                       "enrollment": "E", "amount": "1.00", "occurred_at": occurred})
            })
            .collect();
        let response = client
            .post(format!("{base}/v1/batches"))
            .bearer_auth(&token)
            .header("Idempotency-Key", format!("bench-{b}"))
            .json(&json!({ "items": items }))
            .send()
            .await?;
        anyhow::ensure!(
            response.status().is_success(),
            "batch {b}: {} {}",
            response.status(),
            response.text().await.unwrap_or_default()
        );
    }
    let over_http = started.elapsed();
    let entries = (args.batches * args.batch) as u128;
    let per_s = |d: Duration| entries * 1000 / d.as_millis().max(1);
    println!();
    println!(
        "| payments, {} batches of {} | entries/s |",
        args.batches, args.batch
    );
    println!("|---|---|");
    println!(
        "| ledger-core `execute_batch` (baseline) | {} |",
        per_s(direct)
    );
    println!("| HTTP `POST /v1/batches` | {} |", per_s(over_http));
    println!(
        "| HTTP / baseline | {}% |",
        per_s(over_http) * 100 / per_s(direct).max(1)
    );
    single_phases(&args, url, &base, &token, &store).await?;
    let report = store.verify().await?;
    anyhow::ensure!(report.ok(), "the scratch books do not verify: {report:?}");
    let _ = stop.send(());
    let _ = server.await;
    Ok(())
}

/// The group commit settings a run uses (defaults, overridden by flags).
fn group_settings(args: &HttpArgs) -> api::app::group_commit::GroupSettings {
    let mut g = api::app::group_commit::GroupSettings::default();
    if let Some(n) = args.max_batch {
        g.max_batch = n;
    }
    if let Some(us) = args.max_wait_us {
        g.max_wait = Duration::from_micros(us);
    }
    if let Some(n) = args.partitions {
        g.partitions = n;
    }
    g
}
