//! The command line: one subcommand per job, `--database-url` on all of them.

pub mod alerts;
pub mod attest;
pub mod backup;
pub mod feed;
pub mod officer;
pub mod ops;
pub mod reconcile;
pub mod report;
pub mod risk;
pub mod webhook;

use std::process::ExitCode;

use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};
use ledger_core::domain::wire::WireRequest;
use ledger_core::{InstitutionId, Store};

use crate::app::banks::BankDirectory;
use crate::app::jobs;
use crate::serve::JobArg;
use crate::{app, demo};

#[derive(Debug, Parser)]
#[command(
    name = "escrow-ledger",
    version,
    about = "Supervised prepaid-tuition escrow ledger"
)]
pub struct Cli {
    /// postgres://… or sqlite://… (created if missing) [default:
    /// sqlite://escrow-ledger.db; config database.url].
    #[arg(long, global = true, env = "ESCROW_DATABASE_URL")]
    pub database_url: Option<String>,

    /// A configuration file (TOML, see deploy/escrow-ledger.toml); flags
    /// win over the environment, which wins over the file.
    #[arg(long, global = true, env = "ESCROW_CONFIG")]
    pub config: Option<std::path::PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create or upgrade the schema.
    Migrate,
    /// Build the demo county (idempotent) and print its summary.
    Demo {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Per-institution summary, or one institution's accounts.
    Balances {
        /// Show every account of this institution.
        #[arg(long)]
        institution: Option<String>,
        /// The books as they stood at this instant (RFC 3339, e.g.
        /// 2026-11-07T18:00:00+08:00), by recorded time.
        #[arg(long, value_parser = parse_instant)]
        at: Option<DateTime<Utc>>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// One institution's books as a plain-text double-entry journal
    /// (hledger format; `hledger -f FILE bal --cleared` gives its posted
    /// balances).
    Journal {
        /// The institution (its id, e.g. INS-410922-001).
        #[arg(long)]
        institution: String,
    },
    /// Record requests from a JSON-lines file ("-" for stdin) in one
    /// all-or-nothing batch; amounts are decimal strings ("1234.50").
    Post {
        /// The JSON-lines file, or "-" for stdin.
        file: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Recompute every hash chain (entries, records, audit log), running
    /// total and enrollment counter from the rows; with a signed checkpoint,
    /// also prove the database still extends it. Exit 1 on any mismatch.
    Verify {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// A checkpoint written by `attest` (its signature is checked first).
        #[arg(long, requires = "public_key")]
        checkpoint: Option<std::path::PathBuf>,
        /// The public key of whoever signed the checkpoint (64 hex digits).
        #[arg(long, requires = "checkpoint")]
        public_key: Option<std::path::PathBuf>,
    },
    /// Sign a checkpoint of every chain head (after verifying them), for a
    /// bureau or auditor to keep outside the database; `attest keygen`
    /// makes the key pair.
    Attest(attest::AttestArgs),
    /// Match each supervised account's bank lines against the ledger and
    /// show the bank's, the ledger's and the owed figures (a report; it
    /// records nothing unless --record).
    Reconcile {
        /// Only this institution (its id, e.g. INS-410922-001).
        #[arg(long)]
        institution: Option<String>,
        /// Reconcile as things stood at the end of this day (YYYY-MM-DD):
        /// statements, lines and entries after it are left out.
        #[arg(long, value_parser = parse_day)]
        date: Option<chrono::NaiveDate>,
        /// Keep the matches (each bank line and entry claimed once) and
        /// confirm the pending instructions the bank settled.
        #[arg(long)]
        record: bool,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Evaluate the run-off risk signals of every institution in a
    /// jurisdiction (and below it), riskiest first.
    Risk {
        /// A jurisdiction code (default: national, everything).
        #[arg(long)]
        jurisdiction: Option<String>,
        /// The day assessed (default: today).
        #[arg(long, value_parser = parse_day)]
        as_of: Option<chrono::NaiveDate>,
        /// Record the signals as alerts (the same condition updates its
        /// alert; one that no longer holds is resolved).
        #[arg(long)]
        record: bool,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// Exit with code 3 if any institution has a signal this severe
        /// (red; yellow means red or yellow), for cron and pipelines.
        #[arg(long, value_enum)]
        fail_on: Option<risk::FailOn>,
    },
    /// Simulate a county day by day (healthy institutions and one of each
    /// run-off pattern) through ingest, reconciliation and the risk scan,
    /// in a scratch SQLite database, and print how early each run-off
    /// turned red and how often the healthy were flagged (markdown).
    Simulate(SimulateArgs),
    /// Reconciliation suggestions: list them, confirm or reject them.
    Suggestion {
        #[command(subcommand)]
        what: SuggestionCommand,
    },
    /// Alerts: list them, act on them.
    Alert {
        #[command(subcommand)]
        what: alerts::AlertCommand,
    },
    /// Bank statement files: parse, ingest.
    Feed {
        #[command(subcommand)]
        what: feed::FeedCommand,
    },
    /// Supervising banks and the supervised accounts they hold.
    Bank {
        #[command(subcommand)]
        what: feed::BankCommand,
    },
    /// Run the HTTP service (see /docs once it is up).
    Serve(crate::serve::ServeArgs),
    /// Background jobs, one pass (for cron) or on a loop: the refund
    /// workflow and the outbox (deemed approvals, refunds into the books,
    /// instructions sent and followed up, overdue refunds flagged), the
    /// daily risk scan and the hourly reconciliation, each recorded.
    Jobs {
        /// How to reach the supervising banks (a JSON file) [config
        /// banks.file].
        #[arg(long)]
        banks: Option<std::path::PathBuf>,
        /// Repeat every this many seconds instead of one pass.
        #[arg(long)]
        every_secs: Option<u64>,
        /// Only these jobs [default: all; config jobs.run].
        #[arg(long, value_enum, value_delimiter = ',')]
        only: Vec<JobArg>,
    },
    /// Jurisdictions (GB/T 2260 divisions): register the nation, provinces,
    /// cities and counties; list them.
    Jurisdiction {
        #[command(subcommand)]
        what: JurisdictionCommand,
    },
    /// The configuration file: check it and print what it amounts to.
    Config {
        #[command(subcommand)]
        what: ops::ConfigCommand,
    },
    /// Copy a SQLite database consistently while the service writes (never
    /// overwriting); PostgreSQL: see deploy/README.md (pg_dump, PITR).
    Backup {
        /// The file to write (must not exist).
        #[arg(long)]
        to: std::path::PathBuf,
    },
    /// Ask a running service whether it is ready (exit 0 when /readyz
    /// answers 200): a health check for containers without curl.
    Probe {
        /// The URL to ask [default: /readyz on config http.listen].
        #[arg(long)]
        url: Option<String>,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 3)]
        timeout_secs: u64,
    },
    /// Console accounts for people: add (password from stdin or a file),
    /// reset-password.
    Officer {
        #[command(subcommand)]
        what: crate::cli::officer::OfficerCommand,
    },
    /// Signed outbound webhooks: list subscriptions, a delivery log, replay
    /// a delivery.
    Webhook {
        #[command(subcommand)]
        what: crate::cli::webhook::WebhookCommand,
    },
    /// API tokens: create (shown once), revoke, list.
    Token {
        #[command(subcommand)]
        what: crate::token::TokenCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum JurisdictionCommand {
    /// Register a jurisdiction directly below the division its code names:
    /// start a new deployment with the nation (`000000`), then provinces
    /// (`410000`), cities (`410900`), counties (`410922`). Idempotent.
    Add {
        /// Six digits, a GB/T 2260 administrative division code.
        code: String,
        /// Its name, e.g. 清丰县.
        name: String,
        /// The division directly above it (default: the one its code names).
        #[arg(long)]
        parent: Option<String>,
    },
    /// Every jurisdiction, by code.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum SuggestionCommand {
    /// The suggestions of an institution waiting for an officer.
    List {
        /// Only this institution (its id, e.g. INS-410922-001).
        #[arg(long)]
        institution: String,
    },
    /// Confirm a suggestion: it claims its bank lines and entries.
    Confirm {
        /// Only this institution (its id, e.g. INS-410922-001).
        #[arg(long)]
        institution: String,
        /// The suggestion's id, as `suggestion list` shows it.
        #[arg(long = "match")]
        match_id: String,
        /// Who decides: recorded with the decision.
        #[arg(long)]
        actor: String,
        /// Why, recorded with the decision.
        #[arg(long)]
        comment: Option<String>,
    },
    /// Reject a suggestion.
    Reject {
        /// Only this institution (its id, e.g. INS-410922-001).
        #[arg(long)]
        institution: String,
        /// The suggestion's id, as `suggestion list` shows it.
        #[arg(long = "match")]
        match_id: String,
        /// Who decides: recorded with the decision.
        #[arg(long)]
        actor: String,
        /// Why, recorded with the decision.
        #[arg(long)]
        comment: Option<String>,
    },
}

/// `--at`: an instant as RFC 3339 says, with its offset.
pub fn parse_instant(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            format!("{text:?} is not an RFC 3339 instant ({e}); write e.g. 2026-11-07T18:00:00+08:00 or 2026-11-07T10:00:00Z")
        })
}

/// `--as-of`, `--date`, `--due`: a calendar day.
pub fn parse_day(text: &str) -> Result<chrono::NaiveDate, String> {
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|e| {
        format!("{text:?} is not a day ({e}); write it as YYYY-MM-DD, e.g. 2026-11-07")
    })
}

/// An error and its causes on one line, each said once: database errors
/// repeat their cause in their own message, and "a: b: b" helps nobody.
pub fn error_chain(error: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// `--windows L,B`: two whole numbers of days, each at least 1.
fn windows_arg(text: &str) -> Result<(u32, u32), String> {
    let days = |part: &str| match part.trim().parse::<u32>() {
        Ok(d) if d >= 1 => Ok(d),
        _ => Err(format!("{part:?} is not a number of days (1 or more)")),
    };
    match text.split_once(',') {
        Some((recent, baseline)) => Ok((days(recent)?, days(baseline)?)),
        None => Err(format!(
            "{text:?}: give the recent and the baseline window in days, as in 7,14"
        )),
    }
}

/// What `simulate` was asked for, as its flags give it.
#[derive(Debug, clap::Args)]
pub struct SimulateArgs {
    /// RNG seeds, one run each (e.g. --seed 1 --seed 2 --seed 3).
    #[arg(long = "seed", default_values_t = [1_u64])]
    seeds: Vec<u64>,
    /// Healthy institutions (one run-off per pattern comes on top).
    #[arg(long, default_value_t = 32)]
    healthy: usize,
    /// Days measured, after 60 days of warm-up from 2026-01-05.
    #[arg(long, default_value_t = 240)]
    days: u32,
    /// Only these run-off patterns (by number, 1 to 8, in DETECTION.md's
    /// order; default: all).
    #[arg(long = "pattern")]
    patterns: Vec<usize>,
    /// Keep the simulated county in this database instead of a
    /// scratch SQLite file (one seed only).
    #[arg(long)]
    into: Option<String>,
    /// Level sales all year (no summer surge) and no run-offs unless
    /// --pattern names some: a county whose daily activity stops
    /// growing once its courses are under way, to time the daily jobs
    /// against the length of history alone.
    #[arg(long)]
    steady: bool,
    /// Each day, read every institution's records both whole and as
    /// the daily scan reads them (windowed, with reconciliation's kept
    /// matches) and stop at the first day they assess differently.
    #[arg(long)]
    check_reads: bool,
    /// The county's recent and baseline windows in days (default: the
    /// national 30 and 90), e.g. `7,14`: narrowed, most of a run lies
    /// before them, which is what --check-reads wants to see.
    #[arg(long, value_parser = windows_arg)]
    windows: Option<(u32, u32)>,
    /// Lessons go through the families' confirmation: recorded by the
    /// school, confirmed by the family the same day; at a healthy school
    /// one in 25 an hour not given, disputed and upheld two weeks later.
    #[arg(long)]
    families_confirm: bool,
}

async fn simulate(run: SimulateArgs) -> anyhow::Result<ExitCode> {
    let SimulateArgs {
        seeds,
        healthy,
        days,
        patterns,
        into,
        steady,
        check_reads,
        windows,
        families_confirm,
    } = run;
    let all = crate::simulate::Pattern::ALL;
    let chosen = patterns
        .iter()
        .map(|n| {
            n.checked_sub(1)
                .and_then(|k| all.get(k).copied())
                .ok_or_else(|| {
                    anyhow::anyhow!("--pattern {n}: patterns are numbered 1 to {}", all.len())
                })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    if into.is_some() && seeds.len() != 1 {
        anyhow::bail!("--into keeps one simulated county: give one --seed");
    }
    for seed in seeds {
        let scratch = std::env::temp_dir().join(format!(
            "escrow-ledger-simulate-{}-{seed}.db",
            std::process::id()
        ));
        let url = match &into {
            Some(url) => url.clone(),
            None => format!("sqlite://{}", scratch.display()),
        };
        let mut options = crate::simulate::Options::new(seed);
        options.healthy = healthy;
        options.days = days;
        options.check_reads = check_reads;
        options.windows = windows;
        options.families_confirm = families_confirm;
        if steady {
            options.seasons = false;
            options.patterns.clone_from(&chosen);
        } else if !chosen.is_empty() {
            options.patterns.clone_from(&chosen);
        }
        // Before any database is opened: a refused run leaves none behind.
        options.check()?;
        let (store, clock) = crate::simulate::open(&url, &options).await?;
        let started = std::time::Instant::now();
        let report = crate::simulate::run(&store, &clock, &options).await;
        drop(store);
        if into.is_none() {
            for suffix in ["", "-wal", "-shm", "-migrate.lock"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", scratch.display()));
            }
        }
        let report = report?;
        print!("{}", report.markdown());
        if check_reads {
            let c = report.reads_checked;
            println!(
                "\nreads checked: {} institution-days assessed the same whole and windowed \
                 ({} with reconciliation's kept matches, {} bank lines and {} lesson records \
                 left in the database)",
                c.assessments, c.with_kept_matches, c.lines_left_out, c.lesson_records_left_out
            );
        }
        println!("\n({} s)\n", started.elapsed().as_secs());
        println!(
            "daily jobs' cost (seed {seed}):\n\n{}",
            report.costs_markdown()
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn open(url: &str, settings: &crate::config::Settings) -> anyhow::Result<Store> {
    Ok(crate::app::open_store(url, settings.database.batch_statements).await?)
}

/// Where `serve` and `jobs` send their traces (`telemetry.otlp_endpoint`),
/// before logging is set up. Other commands trace nothing; a configuration
/// that does not load is reported by [`run`].
pub fn otlp_endpoint(cli: &Cli) -> Option<String> {
    if !matches!(cli.command, Command::Serve(_) | Command::Jobs { .. }) {
        return None;
    }
    crate::config::load(cli.config.as_deref())
        .ok()?
        .settings
        .telemetry
        .otlp_endpoint
}

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if let Command::Config { what } = cli.command {
        return ops::run(what);
    }
    if let Command::Simulate(run) = cli.command {
        return simulate(run).await;
    }
    let config = crate::config::load(cli.config.as_deref())?;
    let database = config.database_url(cli.database_url.as_deref())?;
    let url = database.expose();
    match cli.command {
        Command::Config { .. } | Command::Simulate(_) => unreachable!("handled above"),
        Command::Backup { to } => backup::run(&database, &to).await?,
        Command::Probe { url, timeout_secs } => {
            let url = url.unwrap_or_else(|| ops::readiness_url(&config));
            return ops::probe(
                &url,
                std::time::Duration::from_secs(timeout_secs.max(1)),
                config.settings.tls.cert_file.as_deref(),
            );
        }
        Command::Migrate => {
            open(url, &config.settings).await?;
            println!("database at {database} is migrated");
        }
        Command::Demo { json } => {
            let store = open(url, &config.settings).await?;
            demo::build(&store).await?;
            report::summary(&store, None, json).await?;
            if !json {
                let (y, m, d) = demo::LAST_DAY;
                let last_day = chrono::NaiveDate::from_ymd_opt(y, m, d);
                println!();
                risk::run(&store, Some(demo::COUNTY.to_string()), last_day, false).await?;
                println!("\ndatabase: {database}; try `escrow-ledger reconcile --institution INS-410922-004`, `escrow-ledger risk --as-of {y}-{m:02}-{d:02} --json` or `escrow-ledger verify` (this demo keeps its written dates; `serve --demo` tells it up to yesterday)");
            }
        }
        Command::Balances {
            institution,
            at,
            json,
        } => {
            let store = open(url, &config.settings).await?;
            match institution {
                Some(id) => {
                    let id = InstitutionId::parse(id)?;
                    report::accounts(&store, &id, at, json).await?;
                }
                None => report::summary(&store, at, json).await?,
            }
        }
        Command::Journal { institution } => {
            let store = open(url, &config.settings).await?;
            let institution = store
                .institution(&InstitutionId::parse(&institution)?)
                .await?;
            print!(
                "{}",
                crate::app::books::journal(&store, &institution).await?
            );
        }
        Command::Post { file, json } => {
            let store = open(url, &config.settings).await?;
            return post(&store, &file, json).await;
        }
        Command::Verify {
            json,
            checkpoint,
            public_key,
        } => {
            let store = open(url, &config.settings).await?;
            let given = checkpoint.as_deref().zip(public_key.as_deref());
            return attest::verify(&store, given, json).await;
        }
        Command::Attest(args) => {
            return match (args.what, args.key) {
                (Some(attest::AttestCommand::Keygen { out }), _) => attest::keygen(&out),
                (None, Some(key)) => {
                    let store = open(url, &config.settings).await?;
                    attest::attest(&store, &key, args.out.as_deref()).await
                }
                (None, None) if config.settings.attest.key_file.is_some() => {
                    let key = config.settings.attest.key_file.clone().unwrap_or_default();
                    let store = open(url, &config.settings).await?;
                    attest::attest(&store, &key, args.out.as_deref()).await
                }
                (None, None) => {
                    anyhow::bail!(
                        "attest needs --key KEY (make one with `attest keygen --out KEY`)"
                    )
                }
            };
        }
        Command::Serve(args) => {
            let reads = config.read_database_url()?;
            crate::serve::run(&database, reads.as_ref(), args, &config.settings).await?
        }
        Command::Jobs {
            banks,
            every_secs,
            only,
        } => {
            let only = if only.is_empty() {
                config.settings.jobs.run.clone()
            } else {
                JobArg::jobs(&only)
            };
            let store = open(url, &config.settings).await?;
            crate::app::warn_if_statistics_go_stale(&store).await;
            let banks = match banks.or_else(|| config.settings.banks.file.clone()) {
                Some(path) => BankDirectory::load(&path)?,
                None => BankDirectory::default(),
            };
            match every_secs {
                None => {
                    let t = jobs::tick_jobs(&store, &banks, &only).await?;
                    println!("{}", serde_json::to_string(&t)?);
                }
                Some(secs) => {
                    let (stop, stopped) = tokio::sync::watch::channel(false);
                    let runner = tokio::spawn(jobs::run(
                        store.clone(),
                        banks,
                        only,
                        std::time::Duration::from_secs(secs.max(1)),
                        |_| {},
                        stopped,
                    ));
                    crate::http::shutdown_signal().await;
                    let _ = stop.send(true);
                    let _ = runner.await;
                }
            }
        }
        Command::Officer { what } => {
            let store = open(url, &config.settings).await?;
            return crate::cli::officer::run(&store, what).await;
        }
        Command::Webhook { what } => {
            let store = open(url, &config.settings).await?;
            return crate::cli::webhook::run(&store, what).await;
        }
        Command::Token { what } => {
            let store = open(url, &config.settings).await?;
            return crate::token::run(&store, what).await;
        }
        Command::Jurisdiction { what } => {
            let store = open(url, &config.settings).await?;
            match what {
                JurisdictionCommand::Add { code, name, parent } => {
                    let new = crate::app::jurisdictions::NewJurisdiction {
                        code: ledger_core::JurisdictionCode::parse(code)?,
                        name,
                        parent: parent
                            .map(ledger_core::JurisdictionCode::parse)
                            .transpose()?,
                    };
                    let j = crate::app::jurisdictions::register(&store, new).await?;
                    match &j.parent {
                        Some(p) => {
                            println!("jurisdiction {} {} is registered below {p}", j.code, j.name)
                        }
                        None => println!(
                            "jurisdiction {} {} (the nation) is registered",
                            j.code, j.name
                        ),
                    }
                }
                JurisdictionCommand::List { json } => {
                    let all = store.jurisdictions().await?;
                    if json {
                        let rows: Vec<_> = all
                            .iter()
                            .map(|j| serde_json::json!({"code": j.code.as_str(), "name": j.name, "parent": j.parent.as_ref().map(|p| p.as_str())}))
                            .collect();
                        println!("{}", serde_json::to_string_pretty(&rows)?);
                    } else {
                        for j in &all {
                            println!(
                                "{}  {}  {}",
                                j.code,
                                j.parent.as_ref().map_or("------", |p| p.as_str()),
                                j.name
                            );
                        }
                    }
                }
            }
        }
        Command::Feed { what } => {
            return match what {
                feed::FeedCommand::Parse {
                    file,
                    format,
                    mapping,
                    encoding,
                    json,
                } => feed::parse(file, format, mapping, encoding, json).await,
                feed::FeedCommand::Pull {
                    bank,
                    url: bank_url,
                    credential,
                    accounts,
                    checkpoint,
                    timeout_ms,
                    retries,
                    mapping,
                } => {
                    let store = open(url, &config.settings).await?;
                    let pull = feed::Pull {
                        bank,
                        url: bank_url,
                        credential,
                        accounts,
                        checkpoint,
                        timeout_ms,
                        retries,
                        mapping,
                    };
                    feed::pull(&store, pull).await
                }
                feed::FeedCommand::Ingest {
                    bank,
                    files,
                    format,
                    mapping,
                    encoding,
                    json,
                } => {
                    let store = open(url, &config.settings).await?;
                    feed::ingest(&store, &bank, files, format, mapping, encoding, json).await
                }
            };
        }
        Command::Reconcile {
            institution,
            date,
            record,
            json,
        } => {
            let store = open(url, &config.settings).await?;
            return if record {
                reconcile::record(&store, institution, date, json).await
            } else {
                reconcile::run(&store, institution, date, json).await
            };
        }
        Command::Risk {
            jurisdiction,
            as_of,
            record,
            json,
            fail_on,
        } => {
            let store = open(url, &config.settings).await?;
            return risk::run_and_record(&store, jurisdiction, as_of, json, record, fail_on).await;
        }
        Command::Suggestion { what } => {
            let store = open(url, &config.settings).await?;
            let (institution, match_id, actor, comment, confirm) = match what {
                SuggestionCommand::List { institution } => {
                    let id = InstitutionId::parse(institution)?;
                    for s in app::reconcile::suggestions(&store, &id).await? {
                        println!("{} [{}] {}", s.id, s.pass, s.explanation);
                    }
                    return Ok(ExitCode::SUCCESS);
                }
                SuggestionCommand::Confirm {
                    institution,
                    match_id,
                    actor,
                    comment,
                } => (institution, match_id, actor, comment, true),
                SuggestionCommand::Reject {
                    institution,
                    match_id,
                    actor,
                    comment,
                } => (institution, match_id, actor, comment, false),
            };
            let id = InstitutionId::parse(institution)?;
            let decision = if confirm {
                app::reconcile::Decision::Confirm
            } else {
                app::reconcile::Decision::Reject
            };
            app::reconcile::decide(&store, &id, &match_id, decision, &actor, comment.as_deref())
                .await
                .map_err(|e| anyhow::anyhow!("[{}] {e}", e.code()))?;
            println!(
                "suggestion {match_id} {}",
                if confirm { "confirmed" } else { "rejected" }
            );
        }
        Command::Alert { what } => {
            let store = open(url, &config.settings).await?;
            return alerts::run(&store, what).await;
        }
        Command::Bank { what } => {
            let store = open(url, &config.settings).await?;
            return feed::bank(&store, what).await;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Reads a JSON-lines file of wire requests and records them as one batch.
async fn post(store: &Store, file: &str, json: bool) -> anyhow::Result<ExitCode> {
    let text = if file == "-" {
        std::io::read_to_string(std::io::stdin()).context("cannot read stdin")?
    } else {
        std::fs::read_to_string(file).with_context(|| format!("cannot read {file}"))?
    };
    let mut lines = Vec::new();
    let mut requests = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = format!("{file} line {}", n + 1);
        let wire: WireRequest = serde_json::from_str(line)
            .map_err(|e| anyhow::anyhow!("{at}: [malformed_json] {e}"))?;
        let request = wire
            .parse()
            .map_err(|e| anyhow::anyhow!("{at}: [{}] {e}", e.code()))?;
        lines.push(n + 1);
        requests.push(request);
    }
    anyhow::ensure!(!requests.is_empty(), "{file}: no requests");
    let entries = match crate::app::books::record_batch(store, requests).await {
        Ok(entries) => entries,
        Err(crate::app::AppError::Refused { index, error }) => {
            let line = index
                .and_then(|i| lines.get(i))
                .map_or(String::new(), |l| format!(" line {l}"));
            anyhow::bail!(
                "{file}{line}: [{}] {error}; nothing was recorded",
                error.code()
            );
        }
        Err(e) => return Err(e.into()),
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&entries)?);
    } else {
        for e in &entries {
            println!(
                "{} #{} {} {}",
                e.institution,
                e.seq,
                e.client_id,
                e.kind.code()
            );
        }
        println!(
            "{} requests recorded (replays return the original entry)",
            entries.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}
#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Every flag and argument of every command says what it is for in
    /// `--help`.
    #[test]
    fn every_argument_has_help_text() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&super::Cli::command(), "escrow-ledger", &mut missing);
        assert!(missing.is_empty(), "no help text: {missing:#?}");
    }

    /// `simulate --windows` takes the recent and the baseline window in
    /// days and refuses anything else with what was wrong.
    #[test]
    fn simulate_windows_are_two_numbers_of_days() {
        use clap::Parser;
        let parse = |w: &str| {
            super::Cli::try_parse_from(["escrow-ledger", "simulate", "--windows", w])
                .map(|cli| match cli.command {
                    super::Command::Simulate(run) => run.windows,
                    _ => None,
                })
                .map_err(|e| e.to_string())
        };
        assert_eq!(parse("7,14"), Ok(Some((7, 14))));
        assert_eq!(parse(" 30 , 90 "), Ok(Some((30, 90))));
        for (bad, says) in [
            ("7", "give the recent and the baseline window in days"),
            ("0,14", "\"0\" is not a number of days"),
            ("7,-1", "\"-1\" is not a number of days"),
            ("a,b", "\"a\" is not a number of days"),
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }
}
