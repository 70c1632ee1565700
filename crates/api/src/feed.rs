//! `escrow-ledger feed …` and `escrow-ledger bank …`: read a bank's files,
//! store them, and register the banks and supervised accounts they report on.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use bank_adapter::parse::csv::CsvMapping;
use bank_adapter::parse::ParseOptions;
use bank_adapter::Format;
use clap::{Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use ledger_core::domain::feeds::{AccountKind, BankAccount};
use ledger_core::{Currency, InstitutionId, Store, StoreError};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum FormatArg {
    Auto,
    Camt052,
    Camt053,
    Camt054,
    Mt940,
    Mt942,
    Csv,
}

impl FormatArg {
    fn format(self) -> Option<Format> {
        match self {
            FormatArg::Auto => None,
            FormatArg::Camt052 => Some(Format::Camt052),
            FormatArg::Camt053 => Some(Format::Camt053),
            FormatArg::Camt054 => Some(Format::Camt054),
            FormatArg::Mt940 => Some(Format::Mt940),
            FormatArg::Mt942 => Some(Format::Mt942),
            FormatArg::Csv => Some(Format::Csv),
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum FeedCommand {
    /// Parse a statement file and print the normalized statements.
    Parse {
        file: PathBuf,
        #[arg(long, value_enum, default_value = "auto")]
        format: FormatArg,
        /// The bank's CSV column mapping (JSON), for CSV exports.
        #[arg(long)]
        mapping: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Store statement files of one bank (idempotent: the same file or the
    /// same statement twice changes nothing, and says so).
    Ingest {
        #[arg(long)]
        bank: String,
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[arg(long, value_enum, default_value = "auto")]
        format: FormatArg,
        #[arg(long)]
        mapping: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum BankCommand {
    /// Register a supervising bank (idempotent).
    Add {
        #[arg(long)]
        id: String,
        #[arg(long)]
        name: String,
    },
    /// Register a supervised account of an institution at a bank (idempotent).
    Account {
        #[arg(long)]
        bank: String,
        #[arg(long)]
        account: String,
        #[arg(long)]
        institution: String,
        #[arg(long, default_value = "escrow")]
        kind: String,
        #[arg(long, default_value = "CNY")]
        currency: String,
    },
}

fn options(format: FormatArg, mapping: &Option<PathBuf>) -> anyhow::Result<ParseOptions> {
    let csv = match mapping {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            Some(
                serde_json::from_str::<CsvMapping>(&text)
                    .with_context(|| format!("{}: not a CSV mapping", path.display()))?,
            )
        }
        None => None,
    };
    Ok(ParseOptions {
        format: format.format(),
        csv,
    })
}

pub async fn parse(
    file: PathBuf,
    format: FormatArg,
    mapping: Option<PathBuf>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let bytes = std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
    let out = bank_adapter::parse(&bytes, &options(format, &mapping)?)
        .map_err(|e| anyhow::anyhow!("{}: [{}] {e}", file.display(), e.code()))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(ExitCode::SUCCESS);
    }
    for s in &out.statements {
        let bal = |b: &Option<bank_adapter::Balance>| {
            b.as_ref()
                .map_or("-".to_string(), |b| format!("{} on {}", b.amount, b.date))
        };
        println!(
            "{} statement {}{} of account {} ({}): opening {}, closing {}, {} lines",
            s.format.code(),
            s.statement_id,
            s.sequence
                .as_deref()
                .map(|q| format!(" [{q}]"))
                .unwrap_or_default(),
            s.account,
            s.currency,
            bal(&s.opening_balance),
            bal(&s.closing_balance),
            s.lines.len()
        );
        for l in &s.lines {
            println!(
                "  {:>14} {} {:?}{} {} {}",
                l.amount.to_string(),
                l.booking_date
                    .map_or("----------".into(), |d| d.to_string()),
                l.status,
                if l.reversal { " REVERSAL" } else { "" },
                l.end_to_end_id
                    .as_deref()
                    .or(l.bank_ref.as_deref())
                    .unwrap_or("-"),
                l.remittance.as_deref().unwrap_or("")
            );
        }
    }
    for w in &out.warnings {
        println!("warning: {}: {}", w.at, w.message);
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn ingest(
    store: &Store,
    bank: &str,
    files: Vec<PathBuf>,
    format: FormatArg,
    mapping: Option<PathBuf>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let options = options(format, &mapping)?;
    let total: u64 = files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{spinner} {bytes}/{total_bytes} [{bar:30}] {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut reports = Vec::new();
    for file in &files {
        bar.set_message(file.display().to_string());
        let bytes =
            std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
        let parsed = bank_adapter::parse(&bytes, &options).map_err(|e| {
            anyhow::anyhow!(
                "{}: [{}] {e}; nothing from this file was stored",
                file.display(),
                e.code()
            )
        })?;
        let statements = parsed
            .statements
            .iter()
            .map(|s| bank_adapter::ingest::to_feed(bank, s))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| {
                anyhow::anyhow!(
                    "{}: [{}] {e}; nothing from this file was stored",
                    file.display(),
                    e.code()
                )
            })?;
        let format = parsed
            .statements
            .first()
            .map_or("empty", |s| s.format.code());
        let sha = bank_adapter::parse::FileContext::of(&bytes).sha256;
        let report = match store
            .ingest_file(bank, &sha, format, bytes.len() as u64, &statements)
            .await
        {
            Ok(r) => r,
            Err(StoreError::Rejected { index, error }) => {
                let which = index
                    .and_then(|i| statements.get(i))
                    .map(|s| format!(" statement {} of account {}", s.statement_id, s.account_no))
                    .unwrap_or_default();
                anyhow::bail!(
                    "{}{which}: [{}] {error}; nothing from this file was stored",
                    file.display(),
                    error.code()
                );
            }
            Err(e) => return Err(e.into()),
        };
        bar.inc(bytes.len() as u64);
        let mut warnings: Vec<String> = parsed
            .warnings
            .iter()
            .map(|w| format!("{}: {}", w.at, w.message))
            .collect();
        warnings.extend(report.warnings.iter().cloned());
        if !json {
            bar.suspend(|| {
                if report.file_seen_before {
                    println!(
                        "{}: already ingested (same content), nothing changed",
                        file.display()
                    );
                } else {
                    println!(
                        "{}: {} statements stored ({} lines), {} already held",
                        file.display(),
                        report.statements_stored,
                        report.lines_stored,
                        report.statements_already_held
                    );
                }
                for w in &warnings {
                    println!("  warning: {w}");
                }
            });
        }
        reports.push(serde_json::json!({ "file": file, "report": report, "warnings": warnings }));
    }
    bar.finish_and_clear();
    if json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn bank(store: &Store, command: BankCommand) -> anyhow::Result<ExitCode> {
    match command {
        BankCommand::Add { id, name } => {
            store.register_bank(&id, &name).await?;
            println!("bank {id} ({name}) is registered");
        }
        BankCommand::Account {
            bank,
            account,
            institution,
            kind,
            currency,
        } => {
            let a = BankAccount {
                institution: InstitutionId::parse(institution)?,
                bank,
                account_no: account,
                kind: AccountKind::parse(&kind)?,
                currency: currency.parse::<Currency>()?,
            };
            store.register_bank_account(&a).await?;
            println!(
                "account {} at bank {} is {}'s {} account",
                a.account_no,
                a.bank,
                a.institution,
                a.kind.code()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
