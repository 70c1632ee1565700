//! Statement files into the books: the one pipeline every file takes,
//! whether uploaded over HTTP, pushed by a bank, pulled from its API or
//! given on the command line. Parse whole → convert to minor units → store
//! whole, or refuse whole with where and why; the same file twice changes
//! nothing and says so.

use bank_adapter::parse::{FileContext, ParseOptions};
use bank_adapter::{ParseError, Statement};
use ledger_core::domain::feeds::{BankAccount, FeedStatement};
use ledger_core::{Store, StoreError};
use serde::Serialize;

use crate::app::{AppError, AppResult};

/// A statement file as the bank sent it. `bytes` are what the parser reads
/// (a legacy-encoded MT file transcoded to UTF-8 by the caller); the file
/// is known by `sha256` and `len` of what was received.
pub struct StatementFile<'a> {
    pub bank: &'a str,
    pub bytes: &'a [u8],
    pub sha256: String,
    pub len: u64,
    pub options: &'a ParseOptions,
}

impl<'a> StatementFile<'a> {
    /// A file parsed as received, its format detected.
    pub fn received(bank: &'a str, bytes: &'a [u8], options: &'a ParseOptions) -> Self {
        StatementFile {
            bank,
            bytes,
            sha256: FileContext::of(bytes).sha256,
            len: bytes.len() as u64,
            options,
        }
    }
}

/// What storing one file did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FeedReceipt {
    pub bank: String,
    /// SHA-256 of the file as received.
    pub sha256: String,
    /// The format of its statements (`empty` when it holds none).
    pub format: String,
    /// The file had been received before: nothing was stored.
    pub file_seen_before: bool,
    pub statements_stored: u32,
    /// Statements already held (from another file) with the same content.
    pub statements_already_held: u32,
    pub lines_stored: u64,
    /// Layout oddities the parser tolerated and balance-chain breaks
    /// against what is stored, said, not hidden.
    pub warnings: Vec<String>,
}

/// A file refused by the parser, as the use case reports it.
pub fn refused_file(e: &ParseError) -> AppError {
    AppError::Invalid {
        code: e.code(),
        field: None,
        detail: format!("{e}; nothing from this file was stored"),
    }
}

/// Parses a whole file and stores it whole, or refuses it whole.
pub async fn ingest(store: &Store, file: StatementFile<'_>) -> AppResult<FeedReceipt> {
    let ctx = FileContext {
        sha256: file.sha256.clone(),
    };
    let mut statements: Vec<Statement> = Vec::new();
    let parse_warnings =
        bank_adapter::parse::parse_stream(file.bytes, &ctx, file.options, &mut |s| {
            statements.push(s);
            Ok(())
        })
        .map_err(|e| refused_file(&e))?;
    let feed = statements
        .iter()
        .map(|s| bank_adapter::ingest::to_feed(file.bank, s))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| AppError::Invalid {
            code: e.code(),
            field: None,
            detail: format!("{e}; nothing from this file was stored"),
        })?;
    let format = statements.first().map_or("empty", |s| s.format.code());
    let report = store
        .ingest_file(file.bank, &file.sha256, format, file.len, &feed)
        .await
        .map_err(|e| refused_statement(e, &feed))?;
    let mut warnings: Vec<String> = parse_warnings
        .iter()
        .map(|w| format!("{}: {}", w.at, w.message))
        .collect();
    warnings.extend(report.warnings);
    Ok(FeedReceipt {
        bank: file.bank.to_string(),
        sha256: file.sha256,
        format: format.to_string(),
        file_seen_before: report.file_seen_before,
        statements_stored: report.statements_stored,
        statements_already_held: report.statements_already_held,
        lines_stored: report.lines_stored,
        warnings,
    })
}

/// One file the bank sent (any supported format, detected), stored: the
/// path every generated statement takes.
pub async fn ingest_bytes(store: &Store, bank: &str, bytes: &[u8]) -> AppResult<FeedReceipt> {
    let options = ParseOptions::default();
    ingest(store, StatementFile::received(bank, bytes, &options)).await
}

/// A refusal of the store names the statement it was about.
fn refused_statement(e: StoreError, feed: &[FeedStatement]) -> AppError {
    match e {
        StoreError::Rejected { index, error } => {
            let which = index
                .and_then(|i| feed.get(i))
                .map(|s| format!("statement {} of account {}: ", s.statement_id, s.account_no))
                .unwrap_or_default();
            AppError::RefusedWithin {
                at: which,
                error,
                consequence: "nothing from this file was stored",
            }
        }
        other => other.into(),
    }
}

/// Registers a supervising bank (idempotent).
pub async fn register_bank(store: &Store, id: &str, name: &str) -> AppResult<()> {
    Ok(store.register_bank(id, name).await?)
}

/// Registers a supervised account of an institution at a bank (idempotent;
/// an account another institution holds is refused).
pub async fn register_account(store: &Store, account: &BankAccount) -> AppResult<()> {
    Ok(store.register_bank_account(account).await?)
}

/// One item a bank's API handed over, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PulledItem {
    pub account: String,
    pub id: String,
    pub receipt: FeedReceipt,
}

impl std::fmt::Display for PulledItem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let r = &self.receipt;
        write!(
            f,
            "{} item {}: {} statements stored ({} lines), {} already held{}",
            self.account,
            self.id,
            r.statements_stored,
            r.lines_stored,
            r.statements_already_held,
            if r.file_seen_before {
                ", file seen before"
            } else {
                ""
            }
        )?;
        for w in &r.warnings {
            write!(f, "\n  warning: {w}")?;
        }
        Ok(())
    }
}

/// What a pull stored, and how it ended: the number of new feeds, or why it
/// stopped (what was stored is kept; the checkpoint resumes the rest).
pub struct PullOutcome {
    pub stored: Vec<PulledItem>,
    pub ended: Result<usize, String>,
}

/// Stores each pulled page before the checkpoint moves past it: a feed that
/// cannot be parsed or stored fails the page, so it comes again next run.
struct StoreSink<'a> {
    store: &'a Store,
    bank: String,
    options: ParseOptions,
    stored: Vec<PulledItem>,
}

#[derive(Debug, thiserror::Error)]
#[error("item {item} of account {account}: [{code}] {detail}")]
struct SinkError {
    item: String,
    account: String,
    code: &'static str,
    detail: String,
}

impl bank_adapter::client::FeedSink for StoreSink<'_> {
    type Error = SinkError;

    async fn accept(
        &mut self,
        feeds: Vec<bank_adapter::client::FetchedFeed>,
    ) -> Result<(), SinkError> {
        for feed in feeds {
            let mut options = self.options.clone();
            options.format = options.format.or(feed.format);
            let file = StatementFile {
                bank: &self.bank,
                bytes: &feed.content,
                sha256: feed.sha256.clone(),
                len: feed.content.len() as u64,
                options: &options,
            };
            let receipt = ingest(self.store, file).await.map_err(|e| SinkError {
                item: feed.id.clone(),
                account: feed.account.clone(),
                code: e.code(),
                detail: e.to_string(),
            })?;
            self.stored.push(PulledItem {
                account: feed.account,
                id: feed.id,
                receipt,
            });
        }
        Ok(())
    }
}

/// Pulls a bank's new statements into the store, page by page, the
/// checkpoint moving only past what is stored.
pub async fn pull(
    store: &Store,
    config: bank_adapter::client::BankConfig,
    checkpoint: &std::path::Path,
    options: ParseOptions,
) -> AppResult<PullOutcome> {
    use bank_adapter::client::{BankClient, FileCheckpoint};
    let bank = config.bank_id.clone();
    let client = BankClient::new(config).map_err(|e| AppError::Invalid {
        code: e.code(),
        field: None,
        detail: e.to_string(),
    })?;
    let mut checkpoint = FileCheckpoint::new(checkpoint.to_path_buf());
    let mut sink = StoreSink {
        store,
        bank,
        options,
        stored: Vec::new(),
    };
    let ended = client
        .fetch_statements_into(&mut checkpoint, &mut sink)
        .await
        .map_err(|e| format!("[{}] {e}", e.code()));
    Ok(PullOutcome {
        stored: sink.stored,
        ended,
    })
}
