//! The benchmark harness, its own target so that none of it is compiled
//! into the product: `cargo bench -p api --bench bench -- <benchmark>
//! [--database-url URL] [options]`. Benchmarks: `post` (entries per second through the ledger against a
//! raw-SQL baseline) and `bench parse` (statement parsing throughput and
//! memory against a plain scan of the same bytes), `bench reconcile` (the
//! matcher against a plain hash join), `bench reconcile-stored` and `bench
//! risk-stored` (the jobs against a database, against the matcher alone and
//! against loading one institution at a time), `bench http` (the service
//! under load, against ledger-core directly).
mod http;
mod overview;
mod parse;
mod post;
mod recon;
mod stored;

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use ledger_core::Store;
use sqlx::Executor;

pub use post::PostArgs;

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Entries per second through the ledger and through raw SQL.
    Post(PostArgs),
    /// The HTTP service under load: balance and overview queries from
    /// concurrent clients, batched payments against ledger-core directly.
    Http(http::HttpArgs),
    /// Parsing throughput and peak memory for large MT940 and camt.053 files.
    Parse {
        /// Transaction lines per generated file.
        #[arg(long, default_value_t = 1_000_000)]
        lines: usize,
        /// Where to write the generated files (default: the temp folder).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// The reconciliation matcher on N generated bank lines and transfers.
    Reconcile {
        /// How many bank lines to generate.
        #[arg(long, default_value_t = 1_000_000)]
        lines: usize,
    },
    /// `reconcile --record` of N stored bank lines against N stored entries,
    /// against the matcher alone on the same data.
    ReconcileStored(stored::ReconcileStoredArgs),
    /// The set-wise risk scan of N stored institutions, against loading
    /// one institution at a time.
    RiskStored(stored::RiskStoredArgs),
    /// The jurisdiction overview of a province of N stored institutions,
    /// p50/p99 over R requests, against a plain read of the institutions.
    Overview(overview::OverviewArgs),
    /// The risk engine on N generated institutions, one snapshot at a time.
    Risk {
        /// How many institutions to generate.
        #[arg(long, default_value_t = 100_000)]
        institutions: usize,
    },
    /// (internal) Parse one file and report timings and peak memory as JSON.
    #[command(hide = true)]
    ParseFile {
        /// The statement file to parse.
        file: PathBuf,
        /// Its format (default: detected from the content).
        #[arg(long)]
        format: String,
    },
}

/// `--per-institution`, for every store the benchmarks open.
static PER_INSTITUTION: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The store at `url`, writing batches the way `--per-institution` says.
pub async fn connect(url: &str) -> anyhow::Result<Store> {
    let store = Store::connect(url).await?;
    Ok(match store {
        Store::Postgres(pg) if PER_INSTITUTION.load(std::sync::atomic::Ordering::Relaxed) => {
            eprintln!("batches written one institution per statement (--per-institution)");
            Store::Postgres(
                pg.with_batch_statements(ledger_core::store::BatchStatements::PerInstitution),
            )
        }
        other => other,
    })
}

/// A scratch store for a benchmark: schema `name` on PostgreSQL (dropped
/// and made afresh), a sibling file `<db>.<name>` on SQLite.
pub async fn scratch(url: &str, name: &str) -> anyhow::Result<Store> {
    let store = connect(&scratch_url(url, name).await?).await?;
    store.migrate().await?;
    Ok(store)
}

/// Refreshes the planner's statistics of a scratch schema's tables on
/// PostgreSQL (nothing on SQLite): what autovacuum does on a server that
/// has run a while. Without it, on a server with autovacuum off (as on the
/// machines these figures come from), a connection plans its statements,
/// and PostgreSQL its foreign-key checks, for the empty tables the bench
/// started with, and keeps those plans while the tables grow.
pub async fn analyze_schema(url: &str, schema: &str) -> anyhow::Result<()> {
    if !url.starts_with("postgres") {
        return Ok(());
    }
    let admin = sqlx::PgPool::connect(url.split('?').next().unwrap_or(url)).await?;
    let tables: Vec<String> = sqlx::query_scalar(
        "select format('analyze %I.%I', schemaname, relname) from pg_stat_user_tables \
         where schemaname = $1",
    )
    .bind(schema)
    .fetch_all(&admin)
    .await?;
    for analyze in tables {
        admin.execute(analyze.as_str()).await?;
    }
    admin.close().await;
    Ok(())
}

/// The address of an empty scratch store `name` beside `url`'s (a schema
/// on PostgreSQL, a file on SQLite), emptied first.
pub async fn scratch_url(url: &str, name: &str) -> anyhow::Result<String> {
    Ok(if url.starts_with("postgres") {
        let admin = sqlx::PgPool::connect(url).await?;
        admin
            .execute(format!("drop schema if exists {name} cascade").as_str())
            .await?;
        admin
            .execute(format!("create schema {name}").as_str())
            .await?;
        admin.close().await;
        let sep = if url.contains('?') { '&' } else { '?' };
        format!("{url}{sep}options=-c%20search_path%3D{name}")
    } else {
        let path = url
            .trim_start_matches("sqlite://")
            .trim_start_matches("sqlite:")
            .split('?')
            .next()
            .unwrap_or("escrow-ledger.db")
            .to_string();
        let file = format!("{path}.{name}");
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{file}{suffix}"));
        }
        format!("sqlite://{file}")
    })
}

/// `cargo bench -p api --bench bench -- <benchmark> [options]`; figures and
/// the command that made them are recorded in BENCHMARKS.md.
#[derive(Debug, Parser)]
#[command(
    name = "bench",
    about = "escrow-ledger's benchmarks (see BENCHMARKS.md)"
)]
struct Args {
    /// The database the stored benchmarks work in (each in scratch space:
    /// its own schema on PostgreSQL, a sibling file on SQLite).
    #[arg(
        long,
        global = true,
        env = "ESCROW_DATABASE_URL",
        default_value = ledger_core::store::DEFAULT_DATABASE_URL
    )]
    database_url: String,
    /// PostgreSQL: write each batch one institution per statement, as on a
    /// sharded server (Citus), instead of set-wise: the two side by side.
    #[arg(long, global = true)]
    per_institution: bool,
    /// Passed by `cargo bench`; nothing to do with us.
    #[arg(long, global = true, hide = true)]
    bench: bool,
    #[command(subcommand)]
    what: Option<BenchCommand>,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let Some(what) = args.what else {
        // `cargo test --all-targets` runs every target, this one too: it
        // is built (so it cannot rot) but measures nothing unasked.
        println!("no benchmark named: cargo bench -p api --bench bench -- --help");
        return std::process::ExitCode::SUCCESS;
    };
    PER_INSTITUTION.store(args.per_institution, std::sync::atomic::Ordering::Relaxed);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(what, &args.database_url)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(command: BenchCommand, url: &str) -> anyhow::Result<()> {
    match command {
        BenchCommand::Post(args) => post::run(args, url).await,
        BenchCommand::Http(args) => http::run(args, url).await,
        BenchCommand::Parse { lines, dir } => parse::run(lines, dir),
        BenchCommand::Reconcile { lines } => recon::reconcile_bench(lines),
        BenchCommand::Risk { institutions } => recon::risk_bench(institutions),
        BenchCommand::ReconcileStored(args) => stored::reconcile_stored(args, url).await,
        BenchCommand::RiskStored(args) => stored::risk_stored(args, url).await,
        BenchCommand::Overview(args) => overview::run(args, url).await,
        BenchCommand::ParseFile { file, format } => {
            let format = match format.as_str() {
                "mt940" => bank_adapter::Format::Mt940,
                "camt053" => bank_adapter::Format::Camt053,
                other => anyhow::bail!("no benchmark for format {other}"),
            };
            parse::parse_file(&file, format)
        }
    }
}
