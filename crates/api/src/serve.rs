//! `escrow-ledger serve`: opens the store, optionally seeds the demo county,
//! listens, and shuts down gracefully on Ctrl-C or SIGTERM.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use ledger_core::JurisdictionCode;

use crate::access::{Role, Scope};
use crate::app::banks::BankDirectory;
use crate::app::jobs::{self, Job};
use crate::http::{self, AppState, Config};

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0: any free port, printed at start)
    /// [default: 127.0.0.1:8080; config http.listen].
    #[arg(long, env = "ESCROW_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Seed the demo county if it is not there yet and print an officer
    /// token and a first request to try.
    #[arg(long)]
    pub demo: bool,
    /// Give up on a request after this many seconds (answers 408)
    /// [default: 30; config http.request_timeout_secs].
    #[arg(long)]
    pub request_timeout_secs: Option<u64>,
    /// Refuse JSON request bodies larger than this many bytes (answers 413)
    /// [default: 16 MiB; config http.max_body_bytes].
    #[arg(long)]
    pub max_body_bytes: Option<usize>,
    /// Refuse statement files (`POST /v1/feeds`, bank pushes) larger than
    /// this many bytes (answers 413): room for a busy account's month-end
    /// [default: 256 MiB; config http.max_feed_bytes].
    #[arg(long)]
    pub max_feed_bytes: Option<usize>,
    /// Run jobs inside this process: `--jobs` for all, or a list
    /// (`--jobs pull,workflow,risk,reconcile`). Several processes on one database share
    /// the work and never do the same job twice.
    #[arg(long, value_enum, value_delimiter = ',', num_args = 0..)]
    pub jobs: Option<Vec<JobArg>>,
    /// How to reach the supervising banks (a JSON file): connections for
    /// the jobs, push secrets for signed notifications [config banks.file].
    #[arg(long)]
    pub banks: Option<std::path::PathBuf>,
    /// Seconds between job passes [default: 5; config jobs.every_secs].
    #[arg(long)]
    pub jobs_every_secs: Option<u64>,
    /// Serve HTTPS with this certificate chain (PEM), reloaded on SIGHUP;
    /// needs --tls-key [config tls.cert_file].
    #[arg(long, env = "ESCROW_TLS_CERT_FILE")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// The certificate's private key (PEM) [config tls.key_file].
    #[arg(long, env = "ESCROW_TLS_KEY_FILE")]
    pub tls_key: Option<std::path::PathBuf>,
}

/// Which jobs a runner does (`--only`, `serve --jobs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum JobArg {
    /// Refunds (deemed approvals, into the books, overdue) and the outbox.
    Workflow,
    /// The daily risk scan of every institution, recorded as alerts.
    Risk,
    /// The hourly reconciliation of every supervised account, recorded.
    Reconcile,
    /// New statements pulled from the banks that offer them (each bank at
    /// most once a minute).
    Pull,
    /// Lessons unanswered past the rule pack's window deemed confirmed;
    /// earned lessons posted.
    Lessons,
    /// Confirmed earnings released on the rule pack's cadence.
    Release,
    /// Signed webhooks: new events queued, due deliveries sent.
    Webhooks,
}

impl JobArg {
    /// The jobs named, or all of them when none is.
    pub fn jobs(args: &[JobArg]) -> Vec<Job> {
        if args.is_empty() {
            return Job::ALL.to_vec();
        }
        args.iter()
            .map(|a| match a {
                JobArg::Workflow => Job::Workflow,
                JobArg::Risk => Job::Risk,
                JobArg::Reconcile => Job::Reconcile,
                JobArg::Pull => Job::Pull,
                JobArg::Lessons => Job::Lessons,
                JobArg::Release => Job::Release,
                JobArg::Webhooks => Job::Webhooks,
            })
            .collect()
    }
}

/// The holder named on the officer token `serve --demo` prints.
pub const DEMO_TOKEN_NAME: &str = "demo county officer";
/// The holder named on the family token `serve --demo` prints.
pub const DEMO_FAMILY_TOKEN_NAME: &str = "demo county family";

/// `serve`'s settings: each flag given wins over the configuration
/// (environment, then file, then defaults).
pub async fn run(
    database: &crate::config::DatabaseUrl,
    read_replica: Option<&crate::config::DatabaseUrl>,
    args: ServeArgs,
    config: &crate::config::Settings,
) -> anyhow::Result<()> {
    let http = &config.http;
    let listen = args.listen.unwrap_or(http.listen);
    let request_timeout_secs = args
        .request_timeout_secs
        .unwrap_or(http.request_timeout_secs.get());
    let max_body_bytes = args
        .max_body_bytes
        .unwrap_or(usize::try_from(http.max_body_bytes.get()).context("http.max_body_bytes")?);
    let max_feed_bytes = args
        .max_feed_bytes
        .unwrap_or(usize::try_from(http.max_feed_bytes.get()).context("http.max_feed_bytes")?);
    let jobs_every_secs = args.jobs_every_secs.unwrap_or(config.jobs.every_secs.get());
    let jobs_to_run = match &args.jobs {
        Some(named) => Some(JobArg::jobs(named)),
        None => config.jobs.in_serve.then(|| config.jobs.run.clone()),
    };
    let banks = args.banks.clone().or_else(|| config.banks.file.clone());
    let tls = crate::tls::Files::from_parts(
        args.tls_cert
            .clone()
            .or_else(|| config.tls.cert_file.clone()),
        args.tls_key.clone().or_else(|| config.tls.key_file.clone()),
    )?;
    // A certificate that does not load stops the start, before the store.
    let tls = match tls {
        Some(files) => {
            let loaded = files.load().await?;
            Some((files, loaded))
        }
        None => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let url = database.expose();
    let store = crate::app::open_store(url, config.database.batch_statements).await?;
    // The replica is a standby: connected to, never migrated (the primary's
    // migrations reach it by replication).
    let reads = match read_replica {
        Some(replica) => Some(
            ledger_core::Store::connect(replica.expose())
                .await
                .with_context(|| format!("cannot open the read replica at {replica}"))?,
        ),
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr()?;
    if args.demo {
        // The story ends yesterday (or on the day it was first told, for a
        // database that already holds it; its bank then catches up).
        let today = store.now().date_naive();
        let yesterday = today.pred_opt().context("no day before today")?;
        crate::demo::build_ending(&store, yesterday).await?;
        crate::demo::keep_alive(&store, yesterday).await?;
        let county = JurisdictionCode::parse(crate::demo::COUNTY)?;
        // A token is shown once, so a restart cannot show the last one
        // again: it revokes the tokens earlier starts handed out and mints
        // one, so that only the token printed below opens the demo.
        for t in store.tokens().await? {
            if (t.name == DEMO_TOKEN_NAME || t.name == DEMO_FAMILY_TOKEN_NAME)
                && t.revoked_at.is_none()
            {
                store.revoke_token(&t.id).await?;
            }
        }
        let (token, _) = crate::token::create(
            &store,
            Role::Officer,
            Scope::Jurisdiction(county.clone()),
            Some(DEMO_TOKEN_NAME.into()),
        )
        .await?;
        // A family of the demo, whose last lessons wait for its answer.
        let (institution, enrollment) = crate::demo::FAMILY;
        let (family, _) = crate::token::create(
            &store,
            Role::Family,
            Scope::Enrollment(
                ledger_core::InstitutionId::parse(institution)?,
                ledger_core::EnrollmentId::parse(enrollment)?,
            ),
            Some(DEMO_FAMILY_TOKEN_NAME.into()),
        )
        .await?;
        // The officer's first look: today's risk run, kept as alerts.
        crate::app::risk::scan(&store, Some(county.clone()), Some(today), true).await?;
        tokio::spawn(demo_bank_keeps_sending(store.clone()));
        println!("demo county {county} is ready on {database}");
        println!("officer token (shown once): {token}");
        println!("try:");
        println!("  curl -s -H 'Authorization: Bearer {token}' {scheme}://{addr}/v1/jurisdictions/{county}/overview");
        println!("  curl -s -H 'Authorization: Bearer {token}' '{scheme}://{addr}/v1/jurisdictions/{county}/risk'");
        println!(
            "  curl -s -H 'Authorization: Bearer {token}' '{scheme}://{addr}/v1/alerts?severity=red'"
        );
        println!("family token of enrollment {enrollment} (shown once): {family}");
        println!("  curl -s -H 'Authorization: Bearer {family}' {scheme}://{addr}/v1/institutions/{institution}/enrollments/{enrollment}/account");
        if let Some(pending) = crate::demo::awaiting_family(&store).await? {
            println!("  curl -s -X POST -H 'Authorization: Bearer {family}' -H 'Idempotency-Key: try-1' -H 'Content-Type: application/json' -d '{{}}' {scheme}://{addr}/v1/institutions/{institution}/lessons/{pending}/confirm");
        }
        println!("API documentation: {scheme}://{addr}/docs");
    }
    println!("listening on {scheme}://{addr}");
    tracing::info!(%addr, backend = store.backend(), "serving");
    crate::app::warn_if_statistics_go_stale(&store).await;
    if let Some(replica) = read_replica {
        tracing::info!(%replica, "officers' reads go to the read replica");
    }
    let directory = || -> anyhow::Result<BankDirectory> {
        Ok(match &banks {
            Some(path) => BankDirectory::load(path)?,
            None => BankDirectory::default(),
        })
    };
    let state = AppState::with_banks(
        store.clone(),
        Config {
            request_timeout: Duration::from_secs(request_timeout_secs),
            max_body_bytes,
            max_feed_bytes,
            group: config.group_commit.settings(),
            token_cache: Duration::from_millis(http.token_cache_ms),
        },
        directory()?,
    );
    let group = state.group.clone();
    // The jobs write through the service's group commit too.
    let writes = state.store.clone();
    let state = match &reads {
        Some(replica) => state.with_reads(replica.clone()),
        None => state,
    };
    let (stop_jobs, stopped) = tokio::sync::watch::channel(false);
    let jobs = if let Some(jobs) = jobs_to_run {
        let banks = directory()?;
        let metrics = state.metrics.clone();
        Some(tokio::spawn(jobs::run(
            writes,
            banks,
            jobs,
            Duration::from_secs(jobs_every_secs.max(1)),
            move |pass| {
                for (outcome, n) in &pass.reconcile_outcomes {
                    metrics.reconciled(outcome, *n);
                }
            },
            stopped,
        )))
    } else {
        None
    };
    // Under systemd (`Type=notify`): ready once the schema is migrated and
    // the socket listens.
    crate::systemd::notify("READY=1");
    match tls {
        Some((files, loaded)) => {
            crate::tls::serve(
                listener,
                state,
                files,
                loaded,
                http::shutdown_signal(),
                Duration::from_secs(request_timeout_secs),
            )
            .await?
        }
        None => http::serve(listener, state, http::shutdown_signal()).await?,
    }
    crate::systemd::notify("STOPPING=1");
    // The jobs stop first (their writes go through the group), then what
    // is still queued is written.
    let _ = stop_jobs.send(true);
    if let Some(jobs) = jobs {
        let _ = jobs.await;
    }
    group.drain().await;
    store.close().await;
    if let Some(replica) = reads {
        replica.close().await;
    }
    Ok(())
}

/// While `serve --demo` runs, the demo bank sends each new day's
/// statements (hourly it checks whether yesterday is in), so the healthy
/// institutions never look silent; a failure is logged and tried again.
async fn demo_bank_keeps_sending(store: ledger_core::Store) {
    let mut hourly = tokio::time::interval(Duration::from_secs(3600));
    hourly.tick().await;
    loop {
        hourly.tick().await;
        let Some(yesterday) = store.now().date_naive().pred_opt() else {
            continue;
        };
        match crate::demo::keep_alive(&store, yesterday).await {
            Ok(0) => {}
            Ok(sent) => tracing::info!(sent, %yesterday, "demo bank sent the day's statements"),
            Err(e) => tracing::warn!(error = %e, "demo bank could not send the day's statements"),
        }
    }
}
