//! The store: the books on PostgreSQL (system of record) or SQLite (embedded
//! default), chosen by URL scheme. One batch is one database transaction:
//! lock the chain heads of its institutions in id order, load the slice of the
//! books it touches, run the pure domain over it, write back what changed.

/// Runs `$body` in one transaction of either dialect, with `$now` the
/// store's clock as a [`DbTime`] (bound the same way on both) and, when
/// asked for, `$dialect` the dialect's marker (see `on_pool!`). The body is
/// written once and compiled once per dialect. SQLite transactions begin
/// IMMEDIATE so that a read-then-write cannot deadlock. Defined before the
/// modules so that every store module uses this one.
macro_rules! in_tx {
    ($store:expr, |$tx:ident, $now:ident| $body:block) => {
        in_tx!($store, |$tx, $now, _dialect| $body)
    };
    ($store:expr, |$tx:ident, $now:ident, $dialect:ident| $body:block) => {
        match $store {
            $crate::store::Store::Postgres(s) => {
                let $now = $crate::store::DbTime::from(s.clock().now());
                let $dialect = $crate::store::postgres::Pg;
                let mut $tx = s.pool().begin().await?;
                let out = $body;
                $tx.commit().await?;
                out
            }
            $crate::store::Store::Sqlite(s) => {
                let $now = $crate::store::DbTime::from(s.clock().now());
                let $dialect = $crate::store::sqlite::Lite;
                let mut $tx = s.pool().begin_with("BEGIN IMMEDIATE").await?;
                let out = $body;
                $tx.commit().await?;
                out
            }
        }
    };
}

/// Runs `$body` (an expression, written once, compiled once per dialect)
/// with `$pool` the dialect's pool and, when asked for, `$dialect` its
/// [`Dialect`] marker for the few fragments of SQL text that differ.
macro_rules! on_pool {
    ($store:expr, |$pool:ident $(, $dialect:ident)?| $body:expr) => {
        on_connections!($store, pool, |$pool $(, $dialect)?| $body)
    };
}

/// [`on_pool!`] for a body that only reads: `$pool` is the dialect's
/// readers. On SQLite those are connections of their own, so that a read
/// (a long scan, a page of the console, a request's lookups) neither waits
/// for the one writing connection nor holds it up; they refuse to write
/// (`query_only`), so a write sent here by mistake fails loudly. On
/// PostgreSQL the readers are the pool.
macro_rules! on_reader {
    ($store:expr, |$pool:ident $(, $dialect:ident)?| $body:expr) => {
        on_connections!($store, reader, |$pool $(, $dialect)?| $body)
    };
}

/// `on_pool!` and `on_reader!`: `$which` names the `Pooled` method that
/// gives the connections.
macro_rules! on_connections {
    ($store:expr, $which:ident, |$pool:ident| $body:expr) => {
        on_connections!($store, $which, |$pool, _dialect| $body)
    };
    ($store:expr, $which:ident, |$pool:ident, $dialect:ident| $body:expr) => {
        match $store {
            $crate::store::Store::Postgres(s) => {
                let $pool = s.$which();
                let $dialect = $crate::store::postgres::Pg;
                $body
            }
            $crate::store::Store::Sqlite(s) => {
                let $pool = s.$which();
                let $dialect = $crate::store::sqlite::Lite;
                $body
            }
        }
    };
}

/// Binds a span's ends to a query whose SQL `bulk::within` wrote (nothing
/// without one).
macro_rules! bind_span {
    ($q:expr, $span:expr) => {
        match $span {
            Some(s) => $q.bind(s.first).bind(s.last),
            None => $q,
        }
    };
}

/// Appends the link of a record just written to its institution's record
/// chain, in the writer's transaction `$tx` (either dialect): moves the
/// institution's record head (its row lock serialises the chain), chains the
/// record's digest to the previous link, writes the link.
macro_rules! seal_record {
    ($tx:ident, $institution:expr, $kind:expr, $key:expr, $digest:expr) => {{
        let institution: &str = $institution;
        let kind: &str = $kind;
        let key: &str = &$key;
        let digest: &str = &$digest;
        sqlx::query(
            "insert into record_heads (institution_id, last_seq, last_hash) values ($1, 0, $2) \
             on conflict (institution_id) do nothing",
        )
        .bind(institution)
        .bind($crate::domain::chain::GENESIS_HASH)
        .execute(&mut *$tx)
        .await?;
        let (seq, prev): (i64, String) = sqlx::query_as(
            "update record_heads set last_seq = last_seq + 1 where institution_id = $1 \
             returning last_seq, last_hash",
        )
        .bind(institution)
        .fetch_one(&mut *$tx)
        .await?;
        let hash = $crate::domain::chain::link_hash(&prev, institution, seq, kind, key, digest);
        sqlx::query(
            "insert into record_links (institution_id, seq, kind, record_key, digest, prev_hash, hash) \
             values ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(institution)
        .bind(seq)
        .bind(kind)
        .bind(key)
        .bind(digest)
        .bind(&prev)
        .bind(&hash)
        .execute(&mut *$tx)
        .await?;
        sqlx::query("update record_heads set last_hash = $2 where institution_id = $1")
            .bind(institution)
            .bind(&hash)
            .execute(&mut *$tx)
            .await?;
    }};
}

mod access;
#[macro_use]
mod alerts;
mod approvals;
#[macro_use]
mod batch;
mod bulk;
mod claims;
mod clock;
#[macro_use]
mod coverage;
mod delivery;
#[macro_use]
mod figures;
mod feeds;
mod group;
mod hosts;
mod ledger;
mod lesson_sums;
mod lessons;
mod lite_setwise;
mod notices;
mod officers;
mod open_transfers;
mod pg_setwise;
mod postgres;
mod recon;
mod registry;
mod report;
mod rows;
mod rule_cache;
mod seal;
mod sqlite;
mod time;
mod unreleased;
mod webhooks;
mod workflow;

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tracing::instrument;

use crate::domain::chain;
use crate::domain::checkpoint::{Heads, InstitutionHeads};
use crate::domain::entry::{Entry, Request};
use crate::domain::error::LedgerError;
use crate::domain::registry::Institution;

pub use access::{AuditRecord, KeptAnswer, TokenRecord};
pub use batch::BatchStatements;
pub(crate) use batch::{
    run_batch, run_batch_each, BatchOn, BatchTx, Chains, Changes, LockedInstitution,
};
pub use bulk::{AccountKey, EventRow, IdSpan};
pub use claims::KeyClaim;
pub use clock::Clock;
pub use coverage::CoverageFacts;
pub use figures::{
    AlertLevel, FiguresPage, FiguresQuery, FiguresSort, FiguresStamp, FiguresTotals, KeptFigures,
    KEPT_AS_OF,
};
pub use group::{EachOutcome, Flush, KeepWith};
pub use hosts::{mask_password, with_encoded_password};
pub use lesson_sums::KeptLessonSums;
pub use lessons::{FreezeRecord, LessonsRead, NewLesson};
pub use notices::{ListChange, NewNotice, NoticeAnswer, NoticeRecord};
pub use officers::{OfficerRecord, SessionRecord};
pub use open_transfers::KeptOpenTransfers;
pub use postgres::PgStore;
pub use recon::{Claimed, MatchRecord, ReconDay, RecordedDay, RecordedMatches, Watermark};
pub use report::{AccountBalance, BalanceSheet, VerifyFailure, VerifyReport};
pub use sqlite::SqliteStore;
pub(crate) use time::DbTime;
pub use unreleased::EarningRow;
pub use webhooks::{AttemptOutcome, QueuedEvent};

pub const DEFAULT_DATABASE_URL: &str = "sqlite://escrow-ledger.db";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A rule of the ledger refused the request; `index` is its position in
    /// the batch, when it came in one.
    #[error("{}{error}", index.map(|i| format!("request {i} of the batch: ")).unwrap_or_default())]
    Rejected {
        index: Option<usize>,
        error: LedgerError,
    },
    #[error("database URL {url:?} is not supported: use postgres://… or sqlite://…")]
    UnsupportedUrl { url: String },
    #[error("stored data is not what this version can read: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// The writer's queue is full, or the service is stopping: nothing was
    /// done; the same request may be sent again after `retry_after_secs`.
    #[error("{detail}")]
    Busy {
        detail: String,
        retry_after_secs: u64,
    },
}

impl StoreError {
    pub fn code(&self) -> &'static str {
        match self {
            StoreError::Rejected { error, .. } => error.code(),
            StoreError::UnsupportedUrl { .. } => "unsupported_database_url",
            StoreError::Corrupt(_) => "corrupt_data",
            StoreError::Database(_) | StoreError::Migration(_) => "database_error",
            StoreError::Busy { .. } => "service_busy",
        }
    }

    /// The ledger rule that refused the request, if that is what happened.
    pub fn rejection(&self) -> Option<&LedgerError> {
        match self {
            StoreError::Rejected { error, .. } => Some(error),
            _ => None,
        }
    }
}

impl From<LedgerError> for StoreError {
    fn from(error: LedgerError) -> Self {
        StoreError::Rejected { index: None, error }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// One backend's connection pool and the store's clock: what every query
/// of that dialect runs on (`PgStore` is this for PostgreSQL; `SqliteStore`
/// adds its file).
pub struct Pooled<DB: sqlx::Database> {
    pool: sqlx::Pool<DB>,
    /// Where reads go (`on_reader!`): the pool itself, or on a SQLite file
    /// read-only connections beside its one writer.
    readers: sqlx::Pool<DB>,
    clock: Clock,
    /// Where [`Store::execute`] sends single requests, when a service
    /// gathers them into shared transactions (group commit).
    writer: Option<Arc<dyn SingleWriter>>,
    /// How a batch's statements address its institutions on PostgreSQL
    /// (SQLite always writes set-wise).
    statements: BatchStatements,
    /// Rule packs kept between batches (`rule_cache.rs`).
    rules: Arc<rule_cache::RuleCache>,
}

impl<DB: sqlx::Database> Clone for Pooled<DB> {
    fn clone(&self) -> Self {
        Pooled {
            pool: self.pool.clone(),
            readers: self.readers.clone(),
            clock: self.clock.clone(),
            writer: self.writer.clone(),
            statements: self.statements,
            rules: self.rules.clone(),
        }
    }
}

/// Writes single requests on a store's behalf: a group committer, which
/// gathers concurrent callers' requests into one transaction and answers
/// each with its own outcome (`Store::execute_each` on a store without a
/// writer). [`Store::execute`] goes through it when one is attached.
pub trait SingleWriter: Send + Sync {
    fn write(
        &self,
        request: Request,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Entry>> + Send + '_>>;
}

impl<DB: sqlx::Database> Pooled<DB> {
    pub(crate) fn new(pool: sqlx::Pool<DB>, clock: Clock) -> Pooled<DB> {
        Pooled {
            readers: pool.clone(),
            pool,
            clock,
            writer: None,
            statements: BatchStatements::default(),
            rules: Arc::default(),
        }
    }

    /// The rule packs this store's batches and reads keep.
    pub(crate) fn rule_cache(&self) -> &rule_cache::RuleCache {
        &self.rules
    }

    pub fn pool(&self) -> &sqlx::Pool<DB> {
        &self.pool
    }

    /// The connections reads go to (see `on_reader!`).
    pub fn reader(&self) -> &sqlx::Pool<DB> {
        &self.readers
    }

    /// Sends reads to `readers` instead of the pool.
    pub(crate) fn with_readers(mut self, readers: sqlx::Pool<DB>) -> Self {
        self.readers = readers;
        self
    }

    /// How this store's batches address their institutions.
    pub fn batch_statements(&self) -> BatchStatements {
        self.statements
    }

    /// Writes batches the way given: [`BatchStatements::PerInstitution`]
    /// for a sharded PostgreSQL (found by itself at connect), or to prove
    /// both ways on one server.
    pub fn with_batch_statements(mut self, statements: BatchStatements) -> Self {
        self.statements = statements;
        self
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }
}

/// The ledger's storage, on one of two backends.
#[derive(Clone)]
pub enum Store {
    Postgres(PgStore),
    Sqlite(SqliteStore),
}

macro_rules! dispatch {
    ($self:ident, $s:ident => $body:expr) => {
        match $self {
            Store::Postgres($s) => $body,
            Store::Sqlite($s) => $body,
        }
    };
}

impl Store {
    /// Connects by URL scheme; a SQLite file is created if missing. Does not
    /// migrate: call [`Store::migrate`].
    pub async fn connect(url: &str) -> Result<Store> {
        Self::connect_with(url, Clock::System).await
    }

    pub async fn connect_with(url: &str, clock: Clock) -> Result<Store> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Store::Postgres(PgStore::connect(url, clock).await?))
        } else if url.starts_with("sqlite:") {
            Ok(Store::Sqlite(SqliteStore::connect(url, clock).await?))
        } else {
            Err(StoreError::UnsupportedUrl {
                url: url.to_string(),
            })
        }
    }

    /// The same database (the same pool) with another clock: what the
    /// demo tells its story through, on the story's own dates.
    pub fn with_clock(&self, clock: Clock) -> Store {
        match self {
            Store::Postgres(s) => Store::Postgres(Pooled { clock, ..s.clone() }),
            Store::Sqlite(s) => Store::Sqlite(s.with_clock(clock)),
        }
    }

    /// The same store, its batches on PostgreSQL written the way given
    /// (found by itself at connect: per institution on a sharded server,
    /// set-wise otherwise). SQLite, one writer and no shards, always writes
    /// set-wise, so it is the same store there.
    pub fn with_batch_statements(self, statements: BatchStatements) -> Store {
        match self {
            Store::Postgres(s) => Store::Postgres(s.with_batch_statements(statements)),
            sqlite => sqlite,
        }
    }

    /// Whether a transaction that locks the audit chain's head commits
    /// without waiting for its flush, its caller awaiting
    /// [`Store::flush_log`] after, before it answers anyone: on one
    /// PostgreSQL server, so that the head is not held through the disk's
    /// answer and concurrent writers share their flushes. A sharded
    /// server's commit spans its nodes' logs, which one flush does not
    /// cover; SQLite has one writer, nobody to share with.
    pub fn commits_before_flush(&self) -> bool {
        matches!(self, Store::Postgres(s) if s.batch_statements() == BatchStatements::SetWise)
    }

    /// Returns once everything committed before the call is durable
    /// (PostgreSQL: [`postgres::Pg::flush_log`]; SQLite's commits always
    /// are).
    pub async fn flush_log(&self) -> Result<()> {
        match self {
            Store::Postgres(s) => postgres::Pg.flush_log(s.pool()).await,
            Store::Sqlite(_) => Ok(()),
        }
    }

    /// Whether the server keeps its planner statistics by itself: `false`
    /// when PostgreSQL runs with autovacuum off (SQLite: always `true`,
    /// its planner does without). Plans made while a table was empty are
    /// then kept by every pooled connection while the table grows, the
    /// foreign-key checks' included: one hot institution's batches were
    /// 2.5 times slower for it (BENCHMARKS.md, "Plans made for empty
    /// tables"). `serve` and `jobs` warn about it at start.
    pub async fn keeps_planner_statistics(&self) -> Result<bool> {
        match self {
            Store::Postgres(s) => {
                let on: bool = sqlx::query_scalar(
                    "select current_setting('autovacuum') = 'on' \
                       and current_setting('track_counts') = 'on'",
                )
                .fetch_one(s.pool())
                .await?;
                Ok(on)
            }
            Store::Sqlite(_) => Ok(true),
        }
    }

    /// The same store, its single requests ([`Store::execute`]) written by
    /// `writer` (a group committer over this store without one).
    pub fn with_writer(&self, writer: Arc<dyn SingleWriter>) -> Store {
        match self {
            Store::Postgres(s) => Store::Postgres(Pooled {
                writer: Some(writer),
                ..s.clone()
            }),
            Store::Sqlite(s) => Store::Sqlite(s.with_writer(writer)),
        }
    }

    pub fn backend(&self) -> &'static str {
        dispatch!(self, _s => if matches!(self, Store::Postgres(_)) { "postgres" } else { "sqlite" })
    }

    /// Migrates the schema; the first time after the record chains came,
    /// links the records written before them.
    pub async fn migrate(&self) -> Result<()> {
        dispatch!(self, s => s.migrate().await)?;
        self.link_records_written_before_chains().await?;
        self.keep_figures_written_before().await
    }

    pub async fn close(&self) {
        dispatch!(self, s => {
            s.reader().close().await;
            s.pool().close().await;
        })
    }

    /// Records one request (a batch of one).
    pub async fn execute(&self, request: Request) -> Result<Entry> {
        if let Some(writer) = dispatch!(self, s => s.writer.clone()) {
            return writer.write(request).await;
        }
        let mut entries = self
            .execute_batch(vec![request])
            .await
            .map_err(|e| match e {
                StoreError::Rejected { error, .. } => StoreError::Rejected { index: None, error },
                other => other,
            })?;
        Ok(entries.remove(0))
    }

    /// Records many requests in one database transaction: all or nothing.
    /// Returns one entry per request (the original one for a replay).
    #[instrument(skip_all, fields(backend = self.backend(), requests = requests.len()))]
    pub async fn execute_batch(&self, requests: Vec<Request>) -> Result<Vec<Entry>> {
        let requests = requests
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                r.validated().map_err(|error| StoreError::Rejected {
                    index: Some(i),
                    error,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        dispatch!(self, s => s.execute_batch(&requests).await)
    }

    /// Recomputes every chain from the rows (each institution's entries,
    /// running totals, account totals and enrollment counters, its record
    /// chain; the audit log's chain) and reports every chain's first break.
    pub async fn verify(&self) -> Result<VerifyReport> {
        self.verify_against(None).await
    }

    /// [`Store::verify`], and with the heads of a checkpoint (its signature
    /// checked by the caller), that every chain still extends them: a chain
    /// that ends before its checkpoint position, or reaches it with another
    /// hash, and an institution the checkpoint has and the database lacks,
    /// are failures.
    pub async fn verify_against(&self, checkpoint: Option<&Heads>) -> Result<VerifyReport> {
        let mut report = VerifyReport {
            institutions: 0,
            entries: 0,
            records: 0,
            audit_entries: 0,
            checkpoint_attested_at: checkpoint.map(|c| c.attested_at),
            failures: vec![],
            heads: Heads {
                attested_at: chain::truncate_to_micros(self.now()),
                ..Heads::default()
            },
        };
        let mut wanted: BTreeMap<&str, &InstitutionHeads> = checkpoint
            .map(|c| {
                c.institutions
                    .iter()
                    .map(|i| (i.institution.as_str(), i))
                    .collect()
            })
            .unwrap_or_default();
        for institution in self.institutions().await? {
            let heads = wanted.remove(institution.id.as_str());
            report::verify_institution(self, &institution.id, heads, &mut report).await?;
        }
        for (id, heads) in wanted {
            report.failures.push(VerifyFailure {
                institution: Some(id.to_string()),
                chain: "institutions".into(),
                seq: None,
                client_id: None,
                reason: format!(
                    "institution {id} is in the checkpoint (entries to {}, records to {}) but missing from the database",
                    heads.entries.seq, heads.records.seq
                ),
                checkpoint: true,
            });
        }
        let audit = self
            .verify_audit(checkpoint.map(|c| c.audit.seq), &mut report.failures)
            .await?;
        report.audit_entries = audit.links;
        if let Some(c) = checkpoint {
            report::against_checkpoint(
                None,
                "audit",
                "audit log entry",
                &c.audit,
                &audit,
                &mut report,
            );
        }
        report.heads.audit = audit.end;
        Ok(report)
    }

    /// The rules in force for an institution on a day (its jurisdiction's
    /// rule packs down from the national defaults).
    pub async fn rules_for(
        &self,
        institution: &Institution,
        day: chrono::NaiveDate,
    ) -> Result<crate::domain::policy::ResolvedRules> {
        let jurisdictions = vec![institution.jurisdiction.clone()];
        let (chains, packs) = self.rule_context_of(&jurisdictions).await?;
        let chain = chains
            .get(&institution.jurisdiction)
            .cloned()
            .unwrap_or_default();
        Ok(crate::domain::policy::resolve(&chain, &packs, day))
    }

    /// What a batch's [`BatchTx::load_rules`] answers, through the kept
    /// rule packs, in a read transaction of its own.
    pub(crate) async fn rule_context_of(
        &self,
        jurisdictions: &[crate::domain::ids::JurisdictionCode],
    ) -> Result<(Chains, Vec<crate::domain::policy::RulePack>)> {
        Ok(dispatch!(self, s => {
            let mut read = BatchOn::new(s.pool().begin().await?, Default::default());
            s.rule_cache().load(&mut read, None, jurisdictions).await?
        }))
    }

    /// The store's clock (the system clock, or a test's).
    pub fn now(&self) -> DateTime<Utc> {
        dispatch!(self, s => s.clock().now())
    }
}
