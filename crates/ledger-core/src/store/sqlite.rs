//! The SQLite dialect: the embedded default. Only what SQLite does its own
//! way lives here: connecting (one connection writes: SQLite allows one
//! writer, a second would only wait; batches run inside `BEGIN IMMEDIATE`;
//! reads have read-only connections of their own, WAL lets them run beside
//! the writer),
//! taking turns at migrating one file, key sets bound as JSON (`json_each`;
//! SQLite has no arrays), and a batch written set-wise with multi-row
//! `values` (`lite_setwise.rs`); every other query is written once for
//! both dialects.

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, Transaction};
use tracing::instrument;

use crate::domain::accounts::{AccountCode, Totals};
use crate::domain::entry::{Entry, Request};
use crate::domain::ids::{EnrollmentId, InstitutionId};
use crate::store::feeds::{LinesOf, BANK_LINE_COLUMNS};
use crate::store::lite_setwise::LiteSetWise;
use crate::store::workflow::{OutboxClaim, OutboxRow, OUTBOX_FIELDS};
use crate::store::{
    run_batch, BatchOn, BatchStatements, BatchTx, Changes, Clock, Pooled, Result, StoreError,
};

/// The SQLite backend: its pool, the store's clock, and the database file.
#[derive(Clone)]
pub struct SqliteStore {
    pooled: Pooled<Sqlite>,
    /// The database file (none for an in-memory database).
    file: Option<std::sync::Arc<std::path::Path>>,
}

impl std::ops::Deref for SqliteStore {
    type Target = Pooled<Sqlite>;
    fn deref(&self) -> &Pooled<Sqlite> {
        &self.pooled
    }
}

/// What a query written once says the SQLite way (see `on_pool!`).
#[derive(Clone, Copy)]
pub(crate) struct Lite;

impl Lite {
    /// What makes a text column compare by bytes (the order Rust and the
    /// API's cursors compare in): SQLite's default collation already does.
    pub fn bytewise(self) -> &'static str {
        ""
    }

    /// Begins a transaction that only reads, at one instant (deferred: the first read takes the WAL snapshot every later one sees).
    pub fn read_snapshot(self) -> &'static str {
        "begin"
    }

    /// Claims the outbox items `c` names; the immediate transaction is the
    /// lock (one writer at a time).
    pub async fn claim_outbox(
        self,
        pool: &sqlx::SqlitePool,
        c: &OutboxClaim<'_>,
    ) -> Result<Vec<OutboxRow>> {
        let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
        let due: Vec<OutboxRow> = sqlx::query_as(&format!(
            "select {OUTBOX_FIELDS} from outbox where state = $1 and next_attempt_at <= $2 \
               and (lease_until is null or lease_until <= $2) order by next_attempt_at limit $3"
        ))
        .bind(c.state)
        .bind(c.now)
        .bind(c.limit)
        .fetch_all(&mut *tx)
        .await?;
        for item in &due {
            sqlx::query(
                "update outbox set lease_until = $1 \
                 where institution_id = $2 and instruction_id = $3",
            )
            .bind(c.until)
            .bind(item.institution_id())
            .bind(item.instruction_id())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(due)
    }

    /// Membership in the list bound at `$n` (by [`Lite::list`]).
    pub fn in_list(self, n: usize) -> String {
        format!("in (select value from json_each(${n}))")
    }

    /// A list of texts as SQLite binds it: a JSON array.
    pub fn list<'a>(self, items: impl Iterator<Item = &'a str>) -> String {
        json(&items.collect::<Vec<_>>())
    }

    /// Writes a statement's lines, row by row (one writer, no arrays).
    pub async fn insert_bank_lines(
        self,
        tx: &mut Transaction<'_, Sqlite>,
        lines: &LinesOf<'_>,
    ) -> Result<()> {
        let insert = format!(
            "insert into bank_lines ({BANK_LINE_COLUMNS}) \
             values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        );
        for (n, x) in lines.statement.lines.iter().enumerate() {
            sqlx::query(&insert)
                .bind(lines.account.0)
                .bind(lines.account.1)
                .bind(lines.account.2)
                .bind(lines.statement.key())
                .bind(i64::try_from(n).unwrap_or(i64::MAX))
                .bind(x.amount_minor)
                .bind(x.booking_date)
                .bind(x.value_date)
                .bind(x.status.code())
                .bind(&x.bank_ref)
                .bind(&x.end_to_end_id)
                .bind(&x.remittance)
                .bind(&x.counterparty_name)
                .bind(&x.counterparty_account)
                .bind(&x.bank_tx_code)
                .bind(x.reversal)
                .bind(&x.return_reason)
                .bind(&x.details)
                .bind(x.source_line.map(i64::from))
                .bind(&x.source_path)
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }

    /// Serialises the requests under one (caller, Idempotency-Key): the
    /// immediate transaction already does.
    pub async fn lock_key(self, _: &mut Transaction<'_, Sqlite>, _: &str, _: &str) -> Result<()> {
        Ok(())
    }

    /// SQLite in WAL mode with `synchronous = NORMAL` never waits for a
    /// flush at commit: nothing to change.
    pub async fn commit_without_flush_wait(self, _: &mut Transaction<'_, Sqlite>) -> Result<()> {
        Ok(())
    }

    /// A one-row source for `insert … select … from` (a commit here never
    /// waits for a flush).
    pub fn unflushed_source(self) -> &'static str {
        "(select 1 as setting) as unflushed"
    }

    /// Holds kept state for one keeper reading one instant: the immediate
    /// transaction already does both.
    pub async fn hold_keeping(
        self,
        _: &mut Transaction<'_, Sqlite>,
        _marks: &'static str,
    ) -> Result<()> {
        Ok(())
    }

    /// Whether a writer locks the rows it reads: no, `BEGIN IMMEDIATE`
    /// already holds the database's one write lock.
    pub fn takes_row_locks(self) -> bool {
        false
    }

    /// Each account of institution `$1` with its totals after its last
    /// posting recorded by `$2` (zeros before its first). No `lateral`:
    /// the last posting is found by rowid.
    pub fn balances_at_sql(self) -> &'static str {
        "with upto(seq) as (select coalesce(max(seq), 0) from entries \
                            where institution_id = $1 and recorded_at <= $2) \
         select a.institution_id, a.account_code, \
           coalesce(p.posted_debits_after_minor, 0) as posted_debits_minor, \
           coalesce(p.posted_credits_after_minor, 0) as posted_credits_minor, \
           coalesce(p.pending_debits_after_minor, 0) as pending_debits_minor, \
           coalesce(p.pending_credits_after_minor, 0) as pending_credits_minor \
         from accounts a left join postings p on p.rowid = ( \
           select q.rowid from postings q where q.institution_id = a.institution_id \
              and q.account_code = a.account_code and q.seq <= (select seq from upto) \
            order by q.seq desc, q.leg desc limit 1) \
         where a.institution_id = $1 and a.created_at <= $2 order by a.account_code"
    }
}

/// Plain data as a JSON text, for `json_each` (SQLite has no arrays to bind).
fn json(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).expect("strings and integers always serialize")
}

/// Rows the connection's thread may read ahead of their reader.
const ROW_CHANNEL: usize = 1024;

/// Read-only connections beside the writer: enough that a long scan and a
/// page of the console leave room for the service's lookups.
const READERS: u32 = 4;

/// An exclusive lock on a file beside the database (`<db>-migrate.lock`),
/// held until the returned file is dropped: how processes opening one
/// database file take turns at creating and migrating it.
async fn lock_beside(db: &std::path::Path) -> Result<std::fs::File> {
    let mut name = db.to_path_buf().into_os_string();
    name.push("-migrate.lock");
    let io = |e: std::io::Error| StoreError::Database(sqlx::Error::Io(e));
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&name)
        .map_err(io)?;
    tokio::task::spawn_blocking(move || lock.lock().map(|()| lock))
        .await
        .map_err(|e| io(std::io::Error::other(e)))?
        .map_err(io)
}

/// SQLite writes every batch set-wise (`lite_setwise.rs`): its one
/// writer has no shards to route to.
impl BatchTx for BatchOn<'_, Sqlite> {
    async fn lock_institutions(
        &mut self,
        ids: &[InstitutionId],
    ) -> Result<Vec<crate::store::LockedInstitution>> {
        self.set_wise().lock_institutions(ids).await
    }

    async fn load_accounts(
        &mut self,
        keys: &[(InstitutionId, String)],
    ) -> Result<Vec<(InstitutionId, AccountCode, Totals)>> {
        self.set_wise().load_accounts(keys).await
    }

    async fn load_enrollments(
        &mut self,
        keys: &[(InstitutionId, EnrollmentId)],
    ) -> Result<Vec<crate::domain::books::EnrollmentBook>> {
        self.set_wise().load_enrollments(keys).await
    }

    async fn load_entries(
        &mut self,
        keys: &[(InstitutionId, crate::domain::ids::ClientId)],
    ) -> Result<Vec<crate::domain::books::KnownEntry>> {
        self.set_wise().load_entries(keys).await
    }

    async fn load_rules(
        &mut self,
        jurisdictions: &[crate::domain::ids::JurisdictionCode],
    ) -> Result<(crate::store::Chains, Vec<crate::domain::policy::RulePack>)> {
        let found: Vec<crate::store::rows::RuleContextRow> =
            sqlx::query_as(&crate::store::batch::rules_sql(&Lite.in_list(1)))
                .bind(Lite.list(jurisdictions.iter().map(|j| j.as_str())))
                .fetch_all(&mut *self.tx)
                .await?;
        crate::store::rows::rule_context(found)
    }

    async fn rule_pack_generation(&mut self) -> Result<i64> {
        Ok(
            sqlx::query_scalar(crate::store::batch::RULE_PACK_GENERATION_SQL)
                .fetch_one(&mut *self.tx)
                .await?,
        )
    }

    async fn write(&mut self, c: &Changes) -> Result<()> {
        self.set_wise().write(c).await
    }

    async fn load_figures(
        &mut self,
        ids: &[InstitutionId],
    ) -> Result<Vec<crate::store::figures::KeptFigures>> {
        self.set_wise().load_figures(ids).await
    }

    async fn write_figures(
        &mut self,
        rows: &[crate::store::figures::KeptFigures],
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<()> {
        self.set_wise().write_figures(rows, now).await
    }
}

impl BatchOn<'_, Sqlite> {
    fn set_wise(&mut self) -> LiteSetWise<'_> {
        LiteSetWise { tx: &mut self.tx }
    }
}

impl SqliteStore {
    /// The same database and pool, read through another clock.
    pub(crate) fn with_clock(&self, clock: Clock) -> SqliteStore {
        SqliteStore {
            pooled: Pooled {
                clock,
                ..self.pooled.clone()
            },
            file: self.file.clone(),
        }
    }

    /// The same database and pool, its single requests written by `writer`.
    pub(crate) fn with_writer(
        &self,
        writer: std::sync::Arc<dyn crate::store::SingleWriter>,
    ) -> SqliteStore {
        SqliteStore {
            pooled: Pooled {
                writer: Some(writer),
                ..self.pooled.clone()
            },
            file: self.file.clone(),
        }
    }

    pub async fn connect(url: &str, clock: Clock) -> Result<SqliteStore> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            // The connection's thread hands rows over through a channel of
            // this many; when it is full the thread sleeps until the task
            // reading them wakes, then the task sleeps until it is woken:
            // a batch's loads over many institutions (hundreds of rows)
            // paid those hand-offs several times over at the default 50.
            .row_buffer_size(ROW_CHANNEL);
        let file = options.get_filename();
        let file = (!file.as_os_str().is_empty() && file != std::path::Path::new(":memory:"))
            .then(|| std::sync::Arc::from(file));
        // The first connection creates the file and switches it to WAL,
        // which SQLite refuses (busy, without waiting) while another
        // process is doing the same: take turns.
        let _held = match &file {
            Some(db) => Some(lock_beside(db).await?),
            None => None,
        };
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await?;
        let mut pooled = Pooled::new(pool, clock);
        // WAL lets readers work beside the writer, each on the last commit
        // it saw. An in-memory database is private to its connection:
        // there the one connection reads too.
        if file.is_some() {
            let readers = SqlitePoolOptions::new()
                .max_connections(READERS)
                .connect_lazy_with(options.pragma("query_only", "ON"));
            pooled = pooled.with_readers(readers);
        }
        Ok(SqliteStore { pooled, file })
    }

    /// Applies the migrations this build knows. SQLite has no advisory
    /// lock for the migrator to take, so two processes opening one new file
    /// at once would both create its tables; an exclusive lock on a file
    /// beside the database makes the second wait and then find them made.
    pub async fn migrate(&self) -> Result<()> {
        let _held = match &self.file {
            Some(db) => Some(lock_beside(db).await?),
            None => None,
        };
        Ok(sqlx::migrate!("../../migrations/sqlite")
            .run(&self.pool)
            .await?)
    }

    #[instrument(skip_all, fields(requests = requests.len()))]
    pub(crate) async fn execute_batch(&self, requests: &[Request]) -> Result<Vec<Entry>> {
        let tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let mut tx = BatchOn::new(tx, BatchStatements::SetWise);
        let entries = run_batch(&mut tx, self.rule_cache(), requests, self.clock.now()).await?;
        tx.tx.commit().await?;
        Ok(entries)
    }
}
