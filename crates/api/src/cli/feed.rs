//! `escrow-ledger feed …` and `escrow-ledger bank …`: read a bank's files,
//! store them, and register the banks and supervised accounts they report on.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use bank_adapter::parse::csv::{CsvEncoding, CsvMapping};
use bank_adapter::parse::ParseOptions;
use bank_adapter::Format;
use clap::{Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use ledger_core::domain::feeds::IngestReport;
use ledger_core::domain::feeds::{AccountKind, BankAccount};
use ledger_core::{Currency, InstitutionId, Store};

use crate::app;
use crate::app::feeds::StatementFile;

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
        /// The statement file (camt XML, MT940/MT942, CSV or .xlsx).
        file: PathBuf,
        /// Its format (default: detected from the content).
        #[arg(long, value_enum, default_value = "auto")]
        format: FormatArg,
        /// The bank's CSV column mapping (JSON), for CSV exports.
        #[arg(long)]
        mapping: Option<PathBuf>,
        /// The file's text encoding when it is not UTF-8 (e.g. a GBK
        /// host-to-host export); for CSV it overrides the mapping's.
        #[arg(long, value_enum)]
        encoding: Option<EncodingArg>,
        /// Print JSON instead of text (a refusal too, as a JSON error).
        #[arg(long)]
        json: bool,
    },
    /// Pull new statements from a bank's API and store them; a checkpoint
    /// file makes a re-run fetch nothing twice and a crash lose nothing.
    Pull {
        /// Our id of the bank (registered with `bank add`).
        #[arg(long)]
        bank: String,
        /// The bank API's base URL.
        #[arg(long)]
        url: String,
        /// The bank API credential.
        #[arg(long, env = "ESCROW_BANK_CREDENTIAL", hide_env_values = true)]
        credential: String,
        /// Supervised accounts to pull, in order.
        #[arg(long = "account", required = true)]
        accounts: Vec<String>,
        /// The file that remembers what was pulled (created if missing;
        /// replaced atomically), so a re-run fetches nothing twice.
        #[arg(long)]
        checkpoint: PathBuf,
        /// Give up on one call to the bank after this many milliseconds.
        #[arg(long, default_value_t = 30_000)]
        timeout_ms: u64,
        /// Retries of a call that timed out or failed on the bank's side.
        #[arg(long, default_value_t = 4)]
        retries: u32,
        /// For CSV feeds: the bank's column mapping.
        #[arg(long)]
        mapping: Option<PathBuf>,
    },
    /// Store statement files of one bank (idempotent: the same file or the
    /// same statement twice changes nothing, and says so).
    Ingest {
        /// Our id of the sending bank (registered with `bank add`).
        #[arg(long)]
        bank: String,
        /// The statement files, stored in the order given.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Their format (default: detected from each file's content).
        #[arg(long, value_enum, default_value = "auto")]
        format: FormatArg,
        /// The bank's CSV column mapping (JSON), for CSV and .xlsx exports.
        #[arg(long)]
        mapping: Option<PathBuf>,
        /// The files' text encoding when it is not UTF-8; for CSV it
        /// overrides the mapping's.
        #[arg(long, value_enum)]
        encoding: Option<EncodingArg>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum EncodingArg {
    Utf8,
    Gbk,
    Gb18030,
}

impl EncodingArg {
    fn csv(self) -> CsvEncoding {
        match self {
            EncodingArg::Utf8 => CsvEncoding::Utf8,
            EncodingArg::Gbk => CsvEncoding::Gbk,
            EncodingArg::Gb18030 => CsvEncoding::Gb18030,
        }
    }
}

/// The bytes a parser sees: CSV decodes by its mapping; any other format in
/// a legacy encoding is transcoded to UTF-8 first, refusing bytes that are
/// not valid in it.
fn transcode(
    bytes: Vec<u8>,
    encoding: Option<EncodingArg>,
    options: &ParseOptions,
) -> anyhow::Result<Vec<u8>> {
    let is_csv = options.format == Some(Format::Csv)
        || (options.format.is_none()
            && bank_adapter::parse::detect(&bytes).ok() == Some(Format::Csv));
    let enc = match encoding {
        Some(EncodingArg::Gbk) if !is_csv => encoding_rs::GBK,
        Some(EncodingArg::Gb18030) if !is_csv => encoding_rs::GB18030,
        _ => return Ok(bytes),
    };
    match enc.decode_without_bom_handling_and_without_replacement(&bytes) {
        Some(text) => Ok(text.into_owned().into_bytes()),
        None => anyhow::bail!(
            "[bad_encoding] the file has bytes that are not valid {}",
            enc.name()
        ),
    }
}

#[derive(Debug, Subcommand)]
pub enum BankCommand {
    /// Register a supervising bank (idempotent).
    Add {
        /// Our id of the bank (e.g. its BIC or a short name: CMB).
        #[arg(long)]
        id: String,
        /// Its name, e.g. 招商银行.
        #[arg(long)]
        name: String,
    },
    /// Register a supervised account of an institution at a bank (idempotent).
    Account {
        /// The bank that holds it (registered with `bank add`).
        #[arg(long)]
        bank: String,
        /// The account number as the bank writes it in its statements.
        #[arg(long)]
        account: String,
        /// The institution whose money it holds.
        #[arg(long)]
        institution: String,
        /// escrow (the supervised account) or deposit (the risk deposit).
        #[arg(long, default_value = "escrow")]
        kind: String,
        /// Its currency.
        #[arg(long, default_value = "CNY")]
        currency: String,
    },
}

fn options(
    format: FormatArg,
    mapping: &Option<PathBuf>,
    encoding: Option<EncodingArg>,
) -> anyhow::Result<ParseOptions> {
    let mut csv = match mapping {
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
    if let (Some(m), Some(e)) = (csv.as_mut(), encoding) {
        m.encoding = e.csv();
    }
    // A camt document in a legacy encoding is transcoded to UTF-8 before it
    // is parsed (see `transcode`), so its declaration no longer applies.
    let camt_encoding = encoding.map(|_| encoding_rs::UTF_8);
    Ok(ParseOptions {
        format: format.format(),
        csv,
        encoding: camt_encoding,
    })
}

/// Exit codes of `feed parse` (documented in the README): the file was read;
/// it could not be read or the command was wrong; it was refused. Clap's own
/// usage errors exit with 2.
pub const EXIT_READ: u8 = 0;
pub const EXIT_CANNOT_RUN: u8 = 1;
pub const EXIT_REFUSED: u8 = 3;

/// Why `feed parse` stopped: the file was refused (a parse error with its
/// code), or the command could not run at all.
enum ParseFailure {
    Refused(bank_adapter::ParseError),
    CannotRun(anyhow::Error),
}

impl From<std::io::Error> for ParseFailure {
    fn from(e: std::io::Error) -> Self {
        ParseFailure::CannotRun(e.into())
    }
}

impl From<serde_json::Error> for ParseFailure {
    fn from(e: serde_json::Error) -> Self {
        ParseFailure::CannotRun(e.into())
    }
}

/// A refused file as JSON: the error's code and message, where (the
/// line, the element path, or the statement), and the line number when the
/// error names one.
fn error_json(e: &bank_adapter::ParseError) -> serde_json::Value {
    use bank_adapter::ParseError as E;
    let at = match e {
        E::Malformed { at, .. } | E::DoesNotAddUp { at, .. } | E::Encoding { at, .. } => {
            Some(at.as_str())
        }
        E::UnknownFormat { .. } => None,
    };
    let text = e.to_string();
    let line = line_named(at.unwrap_or("")).or_else(|| line_named(&text));
    // An element path has no spaces (`Document/BkToCstmrStmt/Stmt[0]/Amt`).
    let path = at.filter(|a| a.contains('/') && !a.contains(' '));
    let offset = at.and_then(|a| {
        let i = a.find("(byte ")?;
        a[i + 6..].split(')').next()?.parse::<u64>().ok()
    });
    serde_json::json!({
        "code": e.code(),
        "message": text,
        "at": at,
        "line": line,
        "path": path,
        "offset": offset,
    })
}

/// The number after the first "line " in `text`.
fn line_named(text: &str) -> Option<u64> {
    let i = text.find("line ")?;
    let digits: String = text[i + 5..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// `feed parse`: reads the file as a stream and prints each statement as
/// soon as it is read, so memory does not grow with the file. With `--json`
/// stdout is one JSON document, `{"file_sha256", "statements": [...],
/// "warnings": [...]}`, or with `"error"` in place of `"warnings"` when the
/// file is refused after some statements; the file's hash is named once.
pub async fn parse(
    file: PathBuf,
    format: FormatArg,
    mapping: Option<PathBuf>,
    encoding: Option<EncodingArg>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let mut opened = false;
    let result = options(format, &mapping, encoding)
        .map_err(ParseFailure::CannotRun)
        .and_then(|options| parse_streaming(&file, &options, encoding, json, &mut opened));
    match result {
        Ok(()) => Ok(ExitCode::from(EXIT_READ)),
        Err(ParseFailure::Refused(e)) => {
            let message = format!("{}: [{}] {e}", file.display(), e.code());
            if json {
                let error = serde_json::to_string(&error_json(&e))?;
                if opened {
                    println!("],\n\"error\": {error}}}");
                } else {
                    println!("{{\"error\": {error}}}");
                }
            }
            eprintln!("error: {message}");
            Ok(ExitCode::from(EXIT_REFUSED))
        }
        Err(ParseFailure::CannotRun(e)) => {
            if json {
                let error = serde_json::json!({"code": "cannot_run", "message": format!("{e:#}")});
                if opened {
                    println!("],\n\"error\": {error}}}");
                } else {
                    println!("{}", serde_json::json!({ "error": error }));
                }
            }
            eprintln!("error: {e:#}");
            Ok(ExitCode::from(EXIT_CANNOT_RUN))
        }
    }
}

fn parse_streaming(
    file: &std::path::Path,
    options: &ParseOptions,
    encoding: Option<EncodingArg>,
    json: bool,
    opened: &mut bool,
) -> Result<(), ParseFailure> {
    use sha2::{Digest, Sha256};
    use std::io::{BufRead, Read, Write};

    let open = || {
        std::fs::File::open(file)
            .with_context(|| format!("cannot read {}", file.display()))
            .map_err(ParseFailure::CannotRun)
    };
    // First pass: the file is known by what the bank sent.
    let mut hasher = Sha256::new();
    let mut reader = std::io::BufReader::with_capacity(1 << 16, open()?);
    loop {
        let chunk = reader.fill_buf()?;
        if chunk.is_empty() {
            break;
        }
        hasher.update(chunk);
        let n = chunk.len();
        reader.consume(n);
    }
    let ctx = bank_adapter::parse::FileContext {
        sha256: hex::encode(hasher.finalize()),
    };
    let mut head = Vec::with_capacity(4096);
    open()?.take(4096).read_to_end(&mut head)?;
    let detected = options
        .format
        .map_or_else(|| bank_adapter::parse::detect(&head).ok(), Some);
    let legacy = matches!(encoding, Some(EncodingArg::Gbk | EncodingArg::Gb18030));
    let is_camt = matches!(
        detected,
        Some(Format::Camt052 | Format::Camt053 | Format::Camt054)
    );
    let mut options = options.clone();
    // A legacy-encoded MT file is transcoded whole (MT reads UTF-8); camt
    // decodes as it streams; CSV decodes by its mapping.
    let transcoded = if legacy && is_camt {
        options.encoding = Some(match encoding {
            Some(EncodingArg::Gb18030) => encoding_rs::GB18030,
            _ => encoding_rs::GBK,
        });
        None
    } else if legacy && detected != Some(Format::Csv) {
        let raw = std::fs::read(file)?;
        Some(transcode(raw, encoding, &options).map_err(ParseFailure::CannotRun)?)
    } else {
        None
    };

    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if json {
        write!(
            out,
            "{{\"file_sha256\": \"{}\",\n\"statements\": [",
            ctx.sha256
        )?;
        *opened = true;
    }
    let mut count = 0usize;
    let mut print = |mut s: bank_adapter::Statement| -> Result<(), bank_adapter::ParseError> {
        let written = if json {
            // Named once at the top, not on every line.
            s.source.file_sha256.clear();
            for l in &mut s.lines {
                l.source.file_sha256.clear();
            }
            if count == 0 {
                writeln!(out).map(|_| ())
            } else {
                writeln!(out, ",").map(|_| ())
            }
            .and_then(|_| serde_json::to_writer(&mut out, &s).map_err(std::io::Error::from))
        } else {
            print_statement(&mut out, &s)
        };
        count += 1;
        written.map_err(|e| bank_adapter::ParseError::Encoding {
            at: "stdout".into(),
            message: format!("cannot be written: {e}"),
        })
    };
    let warnings = match &transcoded {
        Some(bytes) => bank_adapter::parse::parse_stream(&bytes[..], &ctx, &options, &mut print),
        None => bank_adapter::parse::parse_stream(
            std::io::BufReader::with_capacity(1 << 16, open()?),
            &ctx,
            &options,
            &mut print,
        ),
    };
    let warnings = match warnings {
        Ok(w) => w,
        Err(e) => {
            out.flush()?;
            return Err(ParseFailure::Refused(e));
        }
    };
    if json {
        writeln!(
            out,
            "],\n\"warnings\": {}}}",
            serde_json::to_string(&warnings)?
        )?;
    } else {
        for w in &warnings {
            writeln!(out, "warning: {}: {}", w.at, w.message)?;
        }
    }
    out.flush()?;
    Ok(())
}

fn print_statement(
    out: &mut impl std::io::Write,
    s: &bank_adapter::Statement,
) -> std::io::Result<()> {
    let bal = |b: &Option<bank_adapter::Balance>| {
        b.as_ref()
            .map_or("-".to_string(), |b| format!("{} on {}", b.amount, b.date))
    };
    writeln!(
        out,
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
    )?;
    for l in &s.lines {
        writeln!(
            out,
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
        )?;
    }
    Ok(())
}

pub async fn ingest(
    store: &Store,
    bank: &str,
    files: Vec<PathBuf>,
    format: FormatArg,
    mapping: Option<PathBuf>,
    encoding: Option<EncodingArg>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let options = options(format, &mapping, encoding)?;
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
        let stored = async {
            let raw =
                std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
            // The file is known by what the bank sent, before any transcoding.
            let sha256 = bank_adapter::parse::FileContext::of(&raw).sha256;
            let len = raw.len() as u64;
            let bytes = transcode(raw, encoding, &options).map_err(|e| {
                anyhow::anyhow!("{}: {e}; nothing from this file was stored", file.display())
            })?;
            let receipt = app::feeds::ingest(
                store,
                StatementFile {
                    bank,
                    bytes: &bytes,
                    sha256,
                    len,
                    options: &options,
                },
            )
            .await
            .map_err(|e| anyhow::anyhow!("{}: [{}] {e}", file.display(), e.code()))?;
            anyhow::Ok((receipt, len))
        }
        .await;
        let (receipt, len) = match stored {
            Ok(stored) => stored,
            Err(e) => {
                // The files before this one are stored: say so before the
                // refusal, in JSON as in text (which printed them already).
                bar.finish_and_clear();
                if json {
                    println!("{}", serde_json::to_string_pretty(&reports)?);
                }
                return Err(e);
            }
        };
        bar.inc(len);
        if !json {
            bar.suspend(|| {
                if receipt.file_seen_before {
                    println!(
                        "{}: already ingested (same content), nothing changed",
                        file.display()
                    );
                } else {
                    println!(
                        "{}: {} statements stored ({} lines), {} already held",
                        file.display(),
                        receipt.statements_stored,
                        receipt.lines_stored,
                        receipt.statements_already_held
                    );
                }
                for w in &receipt.warnings {
                    println!("  warning: {w}");
                }
            });
        }
        reports.push(IngestedFile {
            file: file.clone(),
            report: IngestReport {
                file_seen_before: receipt.file_seen_before,
                statements_stored: receipt.statements_stored,
                statements_already_held: receipt.statements_already_held,
                lines_stored: receipt.lines_stored,
                warnings: receipt.warnings.clone(),
            },
            warnings: receipt.warnings,
        });
    }
    bar.finish_and_clear();
    if json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
    }
    Ok(ExitCode::SUCCESS)
}

/// One file of `feed ingest --json`.
#[derive(serde::Serialize)]
struct IngestedFile {
    file: PathBuf,
    report: IngestReport,
    warnings: Vec<String>,
}

pub async fn bank(store: &Store, command: BankCommand) -> anyhow::Result<ExitCode> {
    match command {
        BankCommand::Add { id, name } => {
            app::feeds::register_bank(store, &id, &name).await?;
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
            app::feeds::register_account(store, &a).await?;
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

/// What `feed pull` was asked to do.
pub struct Pull {
    pub bank: String,
    pub url: String,
    pub credential: String,
    pub accounts: Vec<String>,
    pub checkpoint: PathBuf,
    pub timeout_ms: u64,
    pub retries: u32,
    pub mapping: Option<PathBuf>,
}

pub async fn pull(store: &Store, pull: Pull) -> anyhow::Result<ExitCode> {
    let Pull {
        bank,
        url,
        credential,
        accounts,
        checkpoint,
        timeout_ms,
        retries,
        mapping,
    } = pull;
    use bank_adapter::client::{BankConfig, RetryPolicy, Secret};
    let mut config = BankConfig::new(bank.clone(), url, Secret::new(credential));
    config.accounts = accounts;
    config.timeout = std::time::Duration::from_millis(timeout_ms);
    config.retry = RetryPolicy {
        max_retries: retries,
        ..RetryPolicy::default()
    };
    let options = options(FormatArg::Auto, &mapping, None)?;
    let outcome = app::feeds::pull(store, config, &checkpoint, options).await?;
    for item in &outcome.stored {
        println!("{item}");
    }
    match outcome.ended {
        Ok(n) => {
            println!("{n} new feeds pulled");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => Err(anyhow::anyhow!(
            "{e}; what was stored above is kept, the rest comes next run"
        )),
    }
}
