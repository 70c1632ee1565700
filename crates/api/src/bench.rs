//! Benchmarks: `bench post` (entries per second through the ledger against a
//! raw-SQL baseline) and `bench parse` (statement parsing throughput and
//! memory against a plain scan of the same bytes), `bench reconcile` (the
//! matcher against a plain hash join), `bench http` (the service under load,
//! against ledger-core directly).
mod http;
mod parse;
mod post;
mod recon;

use std::path::PathBuf;

use clap::Subcommand;

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
        #[arg(long, default_value_t = 1_000_000)]
        lines: usize,
    },
    /// The risk engine on N generated institutions, one snapshot at a time.
    Risk {
        #[arg(long, default_value_t = 100_000)]
        institutions: usize,
    },
    /// (internal) Parse one file and report timings and peak memory as JSON.
    #[command(hide = true)]
    ParseFile {
        file: PathBuf,
        #[arg(long)]
        format: String,
    },
}

pub async fn run(command: BenchCommand, url: &str) -> anyhow::Result<()> {
    match command {
        BenchCommand::Post(args) => post::run(args, url).await,
        BenchCommand::Http(args) => http::run(args, url).await,
        BenchCommand::Parse { lines, dir } => parse::run(lines, dir),
        BenchCommand::Reconcile { lines } => recon::reconcile_bench(lines),
        BenchCommand::Risk { institutions } => recon::risk_bench(institutions),
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
