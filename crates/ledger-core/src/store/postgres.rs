//! The PostgreSQL dialect: the system of record. Only what PostgreSQL does
//! its own way lives here: connecting, the batch's row locks
//! (`for update`), key sets bound as arrays (`unnest`, `= any`), and a
//! batch's statements, which come two ways (see [`BatchStatements`]): on
//! one server set-wise (`pg_setwise.rs`, a fixed number of statements per
//! batch), on a sharded one a fixed number per institution, each filtering
//! that one institution by equality (the rule that lets Citus route it to
//! one shard, see ARCHITECTURE.md). Every other query is written once for
//! both dialects.

use std::collections::BTreeMap;
use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Postgres, Transaction};
use tracing::instrument;

use crate::domain::accounts::{AccountCode, Totals};
use crate::domain::books::ChainHead;
use crate::domain::entry::{Entry, Request};
use crate::domain::ids::{EnrollmentId, InstitutionId};
use crate::store::batch::{ENTRY_WRITE_COLUMNS, POSTING_WRITE_COLUMNS};
use crate::store::feeds::{LinesOf, BANK_LINE_COLUMNS};
use crate::store::hosts::{accepts_writes, Hosts};
use crate::store::pg_setwise::{
    bind_account_columns, bind_entry_columns, bind_posting_columns, SetWise,
};
use crate::store::workflow::{OutboxClaim, OutboxRow, OUTBOX_FIELDS};
use crate::store::{
    run_batch, BatchOn, BatchStatements, BatchTx, Changes, Clock, Pooled, Result, StoreError,
};

/// The PostgreSQL backend: its pool and the store's clock.
pub type PgStore = Pooled<Postgres>;

/// What a query written once says the PostgreSQL way (see `on_pool!`).
#[derive(Clone, Copy)]
pub(crate) struct Pg;

impl Pg {
    /// What makes a text column compare by bytes (the order Rust and the
    /// API's cursors compare in): the C collation; the database's own may differ.
    pub fn bytewise(self) -> &'static str {
        " collate \"C\""
    }

    /// Begins a transaction that only reads, at one instant (repeatable read, so that each statement sees the instant of the first).
    pub fn read_snapshot(self) -> &'static str {
        "begin isolation level repeatable read, read only"
    }

    /// Membership in the list bound at `$n` (by [`Pg::list`]).
    pub fn in_list(self, n: usize) -> String {
        format!("= any(${n})")
    }

    /// A list of texts as PostgreSQL binds it: an array.
    pub fn list<'a>(self, items: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
        items.collect()
    }

    /// The row locks a batch takes on the rows of `alias`.
    pub fn lock_rows_of(self, alias: &str) -> String {
        format!(" for update of {alias}")
    }

    /// A list of integers as PostgreSQL binds it: an array.
    pub fn seqs(self, items: impl Iterator<Item = i64>) -> Vec<i64> {
        items.collect()
    }

    /// Serialises the requests under one (caller, Idempotency-Key) until
    /// the transaction ends.
    pub async fn lock_key(
        self,
        tx: &mut Transaction<'_, Postgres>,
        token_id: &str,
        key: &str,
    ) -> Result<()> {
        sqlx::query("select pg_advisory_xact_lock(hashtextextended($1 || chr(31) || $2, 0))")
            .bind(token_id)
            .bind(key)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// This transaction's commit does not wait for the write-ahead log to
    /// reach the disk (`synchronous_commit = off`, for it alone): a later
    /// synchronous commit's flush covers it, the log being written in
    /// order.
    pub async fn commit_without_flush_wait(self, tx: &mut Transaction<'_, Postgres>) -> Result<()> {
        sqlx::query("set local synchronous_commit = off")
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// Returns once the write-ahead log is on disk at least up to where it
    /// stood when called, so every commit made before (one that did not
    /// wait for its flush included): a transaction of its own writes one
    /// record (a logical message nobody decodes) and commits waiting for
    /// its flush, and the log is flushed in order. (A transaction that
    /// writes nothing commits without a flush, hence the record.) Under
    /// synchronous replication the commit also waits for the standby,
    /// which receives the log in the same order.
    pub async fn flush_log(self, pool: &sqlx::PgPool) -> Result<()> {
        sqlx::query("select pg_logical_emit_message(true, 'escrow-ledger/flush', '')")
            .execute(pool)
            .await?;
        Ok(())
    }

    /// A one-row source for `insert … select … from` whose statement, run
    /// on its own, commits without waiting for the flush (as
    /// [`Pg::commit_without_flush_wait`], in the statement's own
    /// transaction).
    pub fn unflushed_source(self) -> &'static str {
        "(select set_config('synchronous_commit', 'off', true) as setting) as unflushed"
    }

    /// Holds kept state (lesson sums, open transfers) for one keeper
    /// reading one instant: the lock on its marks table (the mode
    /// conflicts with itself) waits for any other keeper, and the
    /// snapshot, taken at the first query after it, holds for every
    /// statement of the keeping: what is added and the marks moved then
    /// stand for the same booked entries.
    pub async fn hold_keeping(
        self,
        tx: &mut Transaction<'_, Postgres>,
        marks: &'static str,
    ) -> Result<()> {
        sqlx::query("set transaction isolation level repeatable read")
            .execute(&mut **tx)
            .await?;
        sqlx::query(&format!("lock table {marks} in share row exclusive mode"))
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// Whether a writer locks the rows it reads (`for update`).
    pub fn takes_row_locks(self) -> bool {
        true
    }

    /// Writes a statement's lines (at least one) in one statement.
    pub async fn insert_bank_lines(
        self,
        tx: &mut Transaction<'_, Postgres>,
        lines: &LinesOf<'_>,
    ) -> Result<()> {
        let l = &lines.statement.lines;
        sqlx::query(&format!(
            "insert into bank_lines ({BANK_LINE_COLUMNS}) \
             select $1, $2, $3, $4, * from unnest($5::int[], $6::bigint[], $7::date[], \
               $8::date[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], \
               $14::text[], $15::text[], $16::bool[], $17::text[], $18::text[], $19::int[], \
               $20::text[])"
        ))
        .bind(lines.account.0)
        .bind(lines.account.1)
        .bind(lines.account.2)
        .bind(lines.statement.key())
        .bind(
            (0..l.len())
                .map(|i| i32::try_from(i).unwrap_or(i32::MAX))
                .collect::<Vec<_>>(),
        )
        .bind(l.iter().map(|x| x.amount_minor).collect::<Vec<_>>())
        .bind(l.iter().map(|x| x.booking_date).collect::<Vec<_>>())
        .bind(l.iter().map(|x| x.value_date).collect::<Vec<_>>())
        .bind(l.iter().map(|x| x.status.code()).collect::<Vec<_>>())
        .bind(l.iter().map(|x| x.bank_ref.as_deref()).collect::<Vec<_>>())
        .bind(
            l.iter()
                .map(|x| x.end_to_end_id.as_deref())
                .collect::<Vec<_>>(),
        )
        .bind(
            l.iter()
                .map(|x| x.remittance.as_deref())
                .collect::<Vec<_>>(),
        )
        .bind(
            l.iter()
                .map(|x| x.counterparty_name.as_deref())
                .collect::<Vec<_>>(),
        )
        .bind(
            l.iter()
                .map(|x| x.counterparty_account.as_deref())
                .collect::<Vec<_>>(),
        )
        .bind(
            l.iter()
                .map(|x| x.bank_tx_code.as_deref())
                .collect::<Vec<_>>(),
        )
        .bind(l.iter().map(|x| x.reversal).collect::<Vec<_>>())
        .bind(
            l.iter()
                .map(|x| x.return_reason.as_deref())
                .collect::<Vec<_>>(),
        )
        .bind(l.iter().map(|x| x.details.as_str()).collect::<Vec<_>>())
        .bind(
            l.iter()
                .map(|x| x.source_line.and_then(|v| i32::try_from(v).ok()))
                .collect::<Vec<_>>(),
        )
        .bind(
            l.iter()
                .map(|x| x.source_path.as_deref())
                .collect::<Vec<_>>(),
        )
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Claims the outbox items `c` names, skipping the rows another runner
    /// holds: institution by institution (those with the oldest due items
    /// first), each claim locking and leasing one institution's items by
    /// equality. Only finding which institutions have due items reads
    /// across institutions, without locking anything.
    pub async fn claim_outbox(
        self,
        pool: &sqlx::PgPool,
        c: &OutboxClaim<'_>,
    ) -> Result<Vec<OutboxRow>> {
        let due: Vec<String> = sqlx::query_scalar(
            "select institution_id from outbox where state = $1 and next_attempt_at <= $2 \
               and (lease_until is null or lease_until <= $2) \
             group by institution_id order by min(next_attempt_at), institution_id limit $3",
        )
        .bind(c.state)
        .bind(c.now)
        .bind(c.limit)
        .fetch_all(pool)
        .await?;
        let mut claimed: Vec<OutboxRow> = Vec::new();
        for institution in &due {
            let left = c.limit - i64::try_from(claimed.len()).unwrap_or(i64::MAX);
            if left <= 0 {
                break;
            }
            // The CTE is materialized so that its `limit … for update skip
            // locked` runs once: as `in (subquery)` a planner may re-run
            // it per row and claim more than the limit.
            claimed.extend(
                sqlx::query_as::<_, OutboxRow>(&format!(
                    "with due as materialized ( \
                       select instruction_id as due_id from outbox \
                       where institution_id = $1 and state = $2 and next_attempt_at <= $3 \
                         and (lease_until is null or lease_until <= $3) \
                       order by next_attempt_at limit $4 for update skip locked) \
                     update outbox set lease_until = $5 from due \
                     where institution_id = $1 and instruction_id = due.due_id \
                     returning {OUTBOX_FIELDS}"
                ))
                .bind(institution)
                .bind(c.state)
                .bind(c.now)
                .bind(left)
                .bind(c.until)
                .fetch_all(pool)
                .await?,
            );
        }
        Ok(claimed)
    }

    /// Each account of institution `$1` with its totals after its last
    /// posting recorded by `$2` (zeros before its first).
    pub fn balances_at_sql(self) -> &'static str {
        "select a.institution_id, a.account_code, \
           coalesce(p.posted_debits_after_minor, 0) as posted_debits_minor, \
           coalesce(p.posted_credits_after_minor, 0) as posted_credits_minor, \
           coalesce(p.pending_debits_after_minor, 0) as pending_debits_minor, \
           coalesce(p.pending_credits_after_minor, 0) as pending_credits_minor \
         from accounts a left join lateral ( \
           select * from postings p where p.institution_id = a.institution_id \
             and p.account_code = a.account_code \
             and p.seq <= (select coalesce(max(seq), 0) from entries \
                           where institution_id = $1 and recorded_at <= $2) \
           order by p.seq desc, p.leg desc limit 1) p on true \
         where a.institution_id = $1 and a.created_at <= $2 order by a.account_code"
    }
}

impl<'c> BatchOn<'c, Postgres> {
    /// The set-wise statements, when the store writes that way and the
    /// rows at hand are of more than one institution: for one, the
    /// statement with the institution bound once is the cheaper (measured:
    /// BENCHMARKS.md, "Set-wise batches on one server").
    fn set_wise<'k>(
        &mut self,
        mut institutions: impl Iterator<Item = &'k str>,
    ) -> Option<SetWise<'_>> {
        let first = institutions.next();
        let several = institutions.any(|i| Some(i) != first);
        (self.statements == BatchStatements::SetWise && several)
            .then(|| SetWise { tx: &mut self.tx })
    }

    fn per_institution(&mut self) -> PerInstitution<'_> {
        PerInstitution { tx: &mut self.tx }
    }
}

/// Each batch statement goes where [`BatchOn::statements`] says: set-wise
/// (`pg_setwise.rs`) or one institution at a time ([`PerInstitution`]).
impl BatchTx for BatchOn<'_, Postgres> {
    async fn lock_institutions(
        &mut self,
        ids: &[InstitutionId],
    ) -> Result<Vec<crate::store::LockedInstitution>> {
        match self.set_wise(ids.iter().map(|i| i.as_str())) {
            Some(mut s) => s.lock_institutions(ids).await,
            None => self.per_institution().lock_institutions(ids).await,
        }
    }

    async fn load_accounts(
        &mut self,
        keys: &[(InstitutionId, String)],
    ) -> Result<Vec<(InstitutionId, AccountCode, Totals)>> {
        match self.set_wise(keys.iter().map(|k| k.0.as_str())) {
            Some(mut s) => s.load_accounts(keys).await,
            None => self.per_institution().load_accounts(keys).await,
        }
    }

    async fn load_enrollments(
        &mut self,
        keys: &[(InstitutionId, EnrollmentId)],
    ) -> Result<Vec<crate::domain::books::EnrollmentBook>> {
        match self.set_wise(keys.iter().map(|k| k.0.as_str())) {
            Some(mut s) => s.load_enrollments(keys).await,
            None => self.per_institution().load_enrollments(keys).await,
        }
    }

    async fn load_entries(
        &mut self,
        keys: &[(InstitutionId, crate::domain::ids::ClientId)],
    ) -> Result<Vec<crate::domain::books::KnownEntry>> {
        match self.set_wise(keys.iter().map(|k| k.0.as_str())) {
            Some(mut s) => s.load_entries(keys).await,
            None => self.per_institution().load_entries(keys).await,
        }
    }

    async fn load_rules(
        &mut self,
        jurisdictions: &[crate::domain::ids::JurisdictionCode],
    ) -> Result<(crate::store::Chains, Vec<crate::domain::policy::RulePack>)> {
        // One statement either way.
        self.per_institution().load_rules(jurisdictions).await
    }

    async fn rule_pack_generation(&mut self) -> Result<i64> {
        self.per_institution().rule_pack_generation().await
    }

    async fn write(&mut self, c: &Changes) -> Result<()> {
        match self.set_wise(c.entries.iter().map(|e| e.institution.as_str())) {
            Some(mut s) => s.write(c).await,
            None => self.per_institution().write(c).await,
        }
    }

    async fn load_figures(
        &mut self,
        ids: &[InstitutionId],
    ) -> Result<Vec<crate::store::figures::KeptFigures>> {
        match self.set_wise(ids.iter().map(|i| i.as_str())) {
            Some(mut s) => s.load_figures(ids).await,
            None => self.per_institution().load_figures(ids).await,
        }
    }

    async fn write_figures(
        &mut self,
        rows: &[crate::store::figures::KeptFigures],
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<()> {
        match self.set_wise(rows.iter().map(|r| r.institution.as_str())) {
            Some(mut s) => s.write_figures(rows, now).await,
            None => self.per_institution().write_figures(rows, now).await,
        }
    }
}

/// A batch's statements one institution at a time, each filtering it by
/// equality (the Citus rule), for a sharded server.
struct PerInstitution<'t> {
    tx: &'t mut sqlx::PgConnection,
}

impl PerInstitution<'_> {
    batch_reads!(Pg);
    async fn write_figures(
        &mut self,
        rows: &[crate::store::figures::KeptFigures],
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<()> {
        // One statement per institution, bound by equality (the Citus rule:
        // routed to its shard): only what a batch changes (the books now,
        // the ledger side, coverage).
        static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
            format!(
                "update institution_figures set {}, updated_at = $2, revision = revision + 1 \
                 where institution_id = $1",
                crate::store::figures::batch_assignments(|i, _| format!("${}", i + 3)),
            )
        });
        for k in rows {
            let mut q = sqlx::query(SQL.as_str())
                .bind(k.institution.as_str())
                .bind(crate::store::DbTime::from(now));
            for v in k.batch_values() {
                q = q.bind(v);
            }
            q.execute(&mut *self.tx).await?;
        }
        Ok(())
    }

    async fn write(&mut self, c: &Changes) -> Result<()> {
        insert_outbox!(self.tx, c.entries);
        // Institution by institution, each statement with its institution
        // bound once (`$1`) and its rows as arrays: a fixed number of
        // statements per institution whatever the batch's size, and each
        // one routed to that institution's shard on Citus.
        let e = &c.entries;
        let mut of = BTreeMap::<&str, Of<'_>>::new();
        for x in e {
            of.entry(x.institution.as_str())
                .or_default()
                .entries
                .push(x);
        }
        for x in &c.postings {
            of.entry(e[x.0].institution.as_str())
                .or_default()
                .postings
                .push(x);
        }
        for x in &c.accounts {
            of.entry(x.0.as_str()).or_default().accounts.push(x);
        }
        for x in &c.enrollments {
            of.entry(x.0.as_str()).or_default().enrollments.push(x);
        }
        for x in &c.heads {
            of.entry(x.0.as_str()).or_default().head = Some(&x.1);
        }
        for (institution, one) in &of {
            one.write(&mut *self.tx, institution, e).await?;
        }
        Ok(())
    }
}

/// One institution's share of a batch's changes.
#[derive(Default)]
struct Of<'a> {
    entries: Vec<&'a Entry>,
    postings: Vec<&'a (usize, usize, Totals)>,
    accounts: Vec<&'a (InstitutionId, AccountCode, Totals)>,
    enrollments: Vec<&'a (InstitutionId, EnrollmentId, u32, i64)>,
    head: Option<&'a ChainHead>,
}

impl Of<'_> {
    async fn write(
        &self,
        tx: &mut sqlx::PgConnection,
        institution: &str,
        all: &[Entry],
    ) -> Result<()> {
        let e = &self.entries;
        if !e.is_empty() {
            let sql = format!(
                "insert into entries ({ENTRY_WRITE_COLUMNS}) \
                 select $1, * from unnest($2::bigint[], $3::text[], $4::text[], $5::text[], \
                   $6::timestamptz[], $7::timestamptz[], $8::text[], $9::text[], $10::int[], \
                   $11::bigint[], $12::text[], $13::text[], $14::text[], $15::text[], $16::text[])"
            );
            bind_entry_columns(sqlx::query(&sql).bind(institution), e)
                .execute(&mut *tx)
                .await?;
        }

        let p = &self.postings;
        if !p.is_empty() {
            let sql = format!(
                "insert into postings ({POSTING_WRITE_COLUMNS}) \
                 select $1, * from unnest($2::bigint[], $3::smallint[], $4::text[], \
                   $5::bpchar[], $6::bigint[], $7::bigint[], $8::bigint[], $9::bigint[], $10::bigint[])"
            );
            bind_posting_columns(sqlx::query(&sql).bind(institution), p, all)
                .execute(&mut *tx)
                .await?;
        }

        let a = &self.accounts;
        if !a.is_empty() {
            let q = sqlx::query(
                "update accounts a set posted_debits_minor = u.pd, posted_credits_minor = u.pc, \
                   pending_debits_minor = u.qd, pending_credits_minor = u.qc \
                 from unnest($2::text[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[]) \
                   as u(account_code, pd, pc, qd, qc) \
                 where a.institution_id = $1 and a.account_code = u.account_code",
            )
            .bind(institution);
            bind_account_columns(q, a).execute(&mut *tx).await?;
        }

        let n = &self.enrollments;
        if !n.is_empty() {
            sqlx::query(
                "update enrollments e set hours_consumed = u.hours, paid_minor = u.paid \
                 from unnest($2::text[], $3::int[], $4::bigint[]) as u(enrollment_id, hours, paid) \
                 where e.institution_id = $1 and e.enrollment_id = u.enrollment_id",
            )
            .bind(institution)
            .bind(n.iter().map(|x| x.1.as_str()).collect::<Vec<_>>())
            .bind(n.iter().map(|x| x.2 as i32).collect::<Vec<_>>())
            .bind(n.iter().map(|x| x.3).collect::<Vec<_>>())
            .execute(&mut *tx)
            .await?;
        }

        if let Some(h) = self.head {
            sqlx::query(
                "update chain_heads set last_seq = $2, last_hash = $3, last_recorded_at = $4 \
                 where institution_id = $1",
            )
            .bind(institution)
            .bind(h.last_seq)
            .bind(h.last_hash.as_str())
            .bind(h.last_recorded_at)
            .execute(&mut *tx)
            .await?;
        }
        Ok(())
    }
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    crate::store::registry::violates(e, sqlx::error::ErrorKind::UniqueViolation)
}

impl PgStore {
    pub async fn connect(url: &str, clock: Clock) -> Result<PgStore> {
        if let Some(hosts) = Hosts::parse(url)? {
            return Self::connect_to_one_of(hosts, clock).await;
        }
        let options = PgConnectOptions::from_str(url)?;
        // One direct attempt first: a server that is down or refuses us
        // answers at once, where the pool would keep retrying for its whole
        // acquire timeout (30 s) before saying the same thing.
        {
            use sqlx::Connection;
            let first = tokio::time::timeout(
                std::time::Duration::from_secs(10),
                sqlx::PgConnection::connect_with(&options),
            )
            .await
            .map_err(|_| {
                sqlx::Error::Io(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "no answer from the server within 10 s",
                ))
            })??;
            first.close().await?;
        }
        let pool = PgPoolOptions::new()
            .max_connections(32)
            .connect_with(options)
            .await?;
        Self::for_layout(pool, clock).await
    }

    /// The store over `pool`, its batches addressing institutions one by
    /// one when the database is sharded (the `citus` extension installed),
    /// set-wise otherwise.
    async fn for_layout(pool: sqlx::PgPool, clock: Clock) -> Result<PgStore> {
        let sharded: bool = sqlx::query_scalar(
            "select exists (select 1 from pg_extension where extname = 'citus')",
        )
        .fetch_one(&pool)
        .await?;
        let statements = if sharded {
            BatchStatements::PerInstitution
        } else {
            BatchStatements::SetWise
        };
        Ok(Pooled::new(pool, clock).with_batch_statements(statements))
    }

    /// A multi-host URL (see [`Hosts`]): the pool starts on the first
    /// usable server and follows a failover; with `read-write`, a new
    /// connection that lands on a standby is refused (and retried).
    async fn connect_to_one_of(hosts: Hosts, clock: Clock) -> Result<PgStore> {
        let current = hosts.pick().await.map_err(|why| {
            sqlx::Error::Io(std::io::Error::new(
                std::io::ErrorKind::NotConnected,
                format!("no usable server among {}: {why}", hosts.described()),
            ))
        })?;
        let read_write = hosts.read_write();
        let pool = PgPoolOptions::new()
            .max_connections(32)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if read_write && !accepts_writes(conn).await? {
                        return Err(sqlx::Error::Protocol(
                            "connected to a standby where target_session_attrs=read-write".into(),
                        ));
                    }
                    Ok(())
                })
            })
            .connect_with(hosts.options(current).clone())
            .await?;
        hosts.watch(pool.clone(), current);
        Self::for_layout(pool, clock).await
    }

    pub async fn migrate(&self) -> Result<()> {
        Ok(sqlx::migrate!("../../migrations/postgres")
            .run(&self.pool)
            .await?)
    }

    #[instrument(skip_all, fields(requests = requests.len()))]
    pub(crate) async fn execute_batch(&self, requests: &[Request]) -> Result<Vec<Entry>> {
        loop {
            let tx = self.pool.begin().await?;
            let mut tx = BatchOn::new(tx, self.batch_statements());
            match run_batch(&mut tx, self.rule_cache(), requests, self.clock.now()).await {
                Ok(entries) => match tx.tx.commit().await {
                    Ok(()) => return Ok(entries),
                    Err(e) => return Err(e.into()),
                },
                // A concurrent first write of the same client id raced us
                // past the lock-free registration paths: retry sees it.
                Err(StoreError::Database(e)) if is_unique_violation(&e) => continue,
                Err(e) => return Err(e),
            }
        }
    }
}
