//! A batch on SQLite, set-wise: each read and each write covers every
//! institution of the batch in one statement (the keys and rows bound as
//! multi-row `values`, up to [`ROWS`] rows a statement), where statement by
//! statement a batch paid a dozen statements per entry. SQLite runs in the
//! process, but each statement still costs a trip to the connection's
//! thread and a parse; on the embedded default every write of the
//! service goes through its one writing connection, so that is the bill.
//! No row locks: `BEGIN IMMEDIATE` holds the database's one write lock.

use sqlx::{Sqlite, SqliteConnection};

use crate::domain::accounts::{AccountCode, Totals};
use crate::domain::books::{EnrollmentBook, KnownEntry};
use crate::domain::entry::{Entry, Phase};
use crate::domain::ids::{ClientId, EnrollmentId, InstitutionId};
use crate::store::batch::{ENTRY_WRITE_COLUMNS, POSTING_WRITE_COLUMNS};
use crate::store::figures::{self, FiguresRow, KeptFigures, FIGURES_COLUMNS};
use crate::store::rows::{self, AccountRow, EnrollmentRow, EntryRow, LockedRow, PostingRow};
use crate::store::{Changes, DbTime, LockedInstitution, Result};

/// Rows per statement: well under SQLite's 32,766 bound parameters at the
/// widest row (an entry's 16 columns).
const ROWS: usize = 500;

/// `(?, …), (?, …)`: `rows` tuples of `columns` parameters.
fn values(rows: usize, columns: usize) -> String {
    let one = format!("({})", vec!["?"; columns].join(", "));
    vec![one; rows].join(", ")
}

type LiteQuery<'q> = sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments<'q>>;

/// The batch's connection, inside its transaction.
pub(crate) struct LiteSetWise<'t> {
    pub tx: &'t mut SqliteConnection,
}

impl LiteSetWise<'_> {
    pub async fn lock_institutions(
        &mut self,
        ids: &[InstitutionId],
    ) -> Result<Vec<LockedInstitution>> {
        let mut found: Vec<LockedRow> = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(ROWS) {
            let sql = format!(
                "with k(institution_id) as (values {}) \
                 select i.*, h.last_seq, h.last_hash, h.last_recorded_at, \
                   (select generation from rule_pack_generation where only_row = 1) \
                     as rule_pack_generation \
                 from k join chain_heads h on h.institution_id = k.institution_id \
                   join institutions i on i.institution_id = h.institution_id",
                values(chunk.len(), 1)
            );
            let mut q = sqlx::query_as(&sql);
            for id in chunk {
                q = q.bind(id.as_str());
            }
            found.extend(q.fetch_all(&mut *self.tx).await?);
        }
        rows::convert(found)
    }

    /// The rows `sql` selects for each key pair: `sql` is given the
    /// `values` list and names it `k(…, …)` (two columns).
    async fn by_pairs<R>(
        &mut self,
        keys: &[(&str, &str)],
        sql: impl Fn(&str) -> String,
    ) -> Result<Vec<R>>
    where
        R: for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow> + Send + Unpin,
    {
        let mut found = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(ROWS) {
            let sql = sql(&values(chunk.len(), 2));
            let mut q = sqlx::query_as(&sql);
            for (a, b) in chunk {
                q = q.bind(*a).bind(*b);
            }
            found.extend(q.fetch_all(&mut *self.tx).await?);
        }
        Ok(found)
    }

    pub async fn load_accounts(
        &mut self,
        keys: &[(InstitutionId, String)],
    ) -> Result<Vec<(InstitutionId, AccountCode, Totals)>> {
        let keys: Vec<(&str, &str)> = keys.iter().map(|(i, c)| (i.as_str(), c.as_str())).collect();
        let found: Vec<AccountRow> = self
            .by_pairs(&keys, |values| {
                format!(
                    "with k(institution_id, account_code) as (values {values}) \
                     select a.* from k join accounts a \
                       on a.institution_id = k.institution_id and a.account_code = k.account_code"
                )
            })
            .await?;
        rows::convert(found)
    }

    pub async fn load_enrollments(
        &mut self,
        keys: &[(InstitutionId, EnrollmentId)],
    ) -> Result<Vec<EnrollmentBook>> {
        let keys: Vec<(&str, &str)> = keys.iter().map(|(i, e)| (i.as_str(), e.as_str())).collect();
        let found: Vec<EnrollmentRow> = self
            .by_pairs(&keys, |values| {
                format!(
                    "with k(institution_id, enrollment_id) as (values {values}) \
                     select e.* from k join enrollments e \
                       on e.institution_id = k.institution_id and e.enrollment_id = k.enrollment_id"
                )
            })
            .await?;
        rows::convert(found)
    }

    pub async fn load_entries(
        &mut self,
        keys: &[(InstitutionId, ClientId)],
    ) -> Result<Vec<KnownEntry>> {
        let keys: Vec<(&str, &str)> = keys.iter().map(|(i, c)| (i.as_str(), c.as_str())).collect();
        let found: Vec<EntryRow> = self
            .by_pairs(&keys, |values| {
                format!(
                    "with k(institution_id, client_id) as (values {values}) \
                     select {}, \
                       (select r.kind from entries r where r.institution_id = e.institution_id \
                          and r.refers_to_seq = e.seq) as referred_by \
                     from k join entries e \
                       on e.institution_id = k.institution_id and e.client_id = k.client_id",
                    rows::ENTRY_COLUMNS,
                )
            })
            .await?;
        let mut postings: Vec<PostingRow> = Vec::new();
        for chunk in found.chunks(ROWS) {
            let sql = format!(
                "with k(institution_id, seq) as (values {}) \
                 select p.institution_id, p.seq, p.account_code, p.side, p.amount_minor \
                 from k join postings p on p.institution_id = k.institution_id and p.seq = k.seq \
                 order by p.institution_id, p.seq, p.leg",
                values(chunk.len(), 2)
            );
            let mut q = sqlx::query_as(&sql);
            for r in chunk {
                q = q.bind(r.institution_id.as_str()).bind(r.seq);
            }
            postings.extend(q.fetch_all(&mut *self.tx).await?);
        }
        rows::assemble(found, postings, |r, p| r.into_known(p))
    }

    pub async fn load_figures(&mut self, ids: &[InstitutionId]) -> Result<Vec<KeptFigures>> {
        let mut found: Vec<FiguresRow> = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(ROWS) {
            let sql = format!(
                "with k(institution_id) as (values {}) \
                 select {FIGURES_COLUMNS} from institution_figures \
                 where institution_id in (select institution_id from k) order by institution_id",
                values(chunk.len(), 1)
            );
            let mut q = sqlx::query_as(&sql);
            for id in chunk {
                q = q.bind(id.as_str());
            }
            found.extend(q.fetch_all(&mut *self.tx).await?);
        }
        rows::convert(found)
    }

    /// Only what a batch changes of the kept rows (the books now, the
    /// ledger side, coverage), as on PostgreSQL.
    pub async fn write_figures(
        &mut self,
        rows: &[KeptFigures],
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<()> {
        for chunk in rows.chunks(ROWS) {
            let sql = format!(
                "update institution_figures set {}, updated_at = ?, revision = revision + 1 \
                 from (values {}) as u where institution_figures.institution_id = u.column1",
                figures::batch_assignments(|i, _| format!("u.column{}", i + 2)),
                values(chunk.len(), figures::BATCH_COLUMNS.len() + 1)
            );
            let mut q = sqlx::query(&sql).bind(DbTime::from(now));
            for k in chunk {
                q = q.bind(k.institution.as_str());
                for v in k.batch_values() {
                    q = q.bind(v);
                }
            }
            q.execute(&mut *self.tx).await?;
        }
        Ok(())
    }

    /// Every change of the batch, a statement per table and [`ROWS`] rows.
    pub async fn write(&mut self, c: &Changes) -> Result<()> {
        let pending: Vec<&Entry> = c
            .entries
            .iter()
            .filter(|e| e.kind.phase() == Phase::Pending)
            .collect();
        for chunk in pending.chunks(ROWS) {
            let sql = format!(
                "insert into outbox (institution_id, instruction_id, kind, amount_minor, \
                   currency, state, attempts, next_attempt_at, created_at, updated_at) \
                 select column1, column2, column3, column4, column5, 'pending', 0, column6, \
                   column6, column6 from (values {})",
                values(chunk.len(), 6)
            );
            let mut q = sqlx::query(&sql);
            for e in chunk {
                q = q
                    .bind(e.institution.as_str())
                    .bind(e.client_id.as_str())
                    .bind(e.kind.code())
                    .bind(e.postings.first().map_or(0, |p| p.amount.minor()))
                    .bind(e.currency.code())
                    .bind(DbTime::from(e.recorded_at));
            }
            q.execute(&mut *self.tx).await?;
        }
        for chunk in c.entries.chunks(ROWS) {
            let sql = format!(
                "insert into entries ({ENTRY_WRITE_COLUMNS}) values {}",
                values(chunk.len(), 16)
            );
            let mut q = sqlx::query(&sql);
            for e in chunk {
                q = bind_entry(q, e);
            }
            q.execute(&mut *self.tx).await?;
        }
        for chunk in c.postings.chunks(ROWS) {
            let sql = format!(
                "insert into postings ({POSTING_WRITE_COLUMNS}) values {}",
                values(chunk.len(), 10)
            );
            let mut q = sqlx::query(&sql);
            for (i, leg, t) in chunk {
                let e = &c.entries[*i];
                let p = &e.postings[*leg];
                q = q
                    .bind(e.institution.as_str())
                    .bind(e.seq)
                    .bind(*leg as i64)
                    .bind(p.account.to_string())
                    .bind(p.side.code())
                    .bind(p.amount.minor())
                    .bind(t.posted_debits_minor)
                    .bind(t.posted_credits_minor)
                    .bind(t.pending_debits_minor)
                    .bind(t.pending_credits_minor);
            }
            q.execute(&mut *self.tx).await?;
        }
        for chunk in c.accounts.chunks(ROWS) {
            let sql = format!(
                "update accounts set posted_debits_minor = u.column3, \
                   posted_credits_minor = u.column4, pending_debits_minor = u.column5, \
                   pending_credits_minor = u.column6 \
                 from (values {}) as u \
                 where accounts.institution_id = u.column1 and accounts.account_code = u.column2",
                values(chunk.len(), 6)
            );
            let mut q = sqlx::query(&sql);
            for (i, code, t) in chunk {
                q = q
                    .bind(i.as_str())
                    .bind(code.to_string())
                    .bind(t.posted_debits_minor)
                    .bind(t.posted_credits_minor)
                    .bind(t.pending_debits_minor)
                    .bind(t.pending_credits_minor);
            }
            q.execute(&mut *self.tx).await?;
        }
        for chunk in c.enrollments.chunks(ROWS) {
            let sql = format!(
                "update enrollments set hours_consumed = u.column3, paid_minor = u.column4 \
                 from (values {}) as u \
                 where enrollments.institution_id = u.column1 \
                   and enrollments.enrollment_id = u.column2",
                values(chunk.len(), 4)
            );
            let mut q = sqlx::query(&sql);
            for (i, e, hours, paid) in chunk {
                q = q
                    .bind(i.as_str())
                    .bind(e.as_str())
                    .bind(i64::from(*hours))
                    .bind(*paid);
            }
            q.execute(&mut *self.tx).await?;
        }
        for chunk in c.heads.chunks(ROWS) {
            let sql = format!(
                "update chain_heads set last_seq = u.column2, last_hash = u.column3, \
                   last_recorded_at = u.column4 \
                 from (values {}) as u where chain_heads.institution_id = u.column1",
                values(chunk.len(), 4)
            );
            let mut q = sqlx::query(&sql);
            for (i, head) in chunk {
                q = q
                    .bind(i.as_str())
                    .bind(head.last_seq)
                    .bind(&head.last_hash)
                    .bind(head.last_recorded_at.map(DbTime::from));
            }
            q.execute(&mut *self.tx).await?;
        }
        Ok(())
    }
}

/// An entry's columns, as [`ENTRY_WRITE_COLUMNS`] lists them.
fn bind_entry<'q>(q: LiteQuery<'q>, e: &'q Entry) -> LiteQuery<'q> {
    q.bind(e.institution.as_str())
        .bind(e.seq)
        .bind(e.client_id.as_str())
        .bind(e.kind.code())
        .bind(e.currency.code())
        .bind(DbTime::from(e.occurred_at))
        .bind(DbTime::from(e.recorded_at))
        .bind(e.external_ref.as_deref())
        .bind(e.enrollment.as_ref().map(|v| v.as_str()))
        .bind(e.hours.map(i64::from))
        .bind(e.refers_to_seq)
        .bind(e.rule_pack.as_deref())
        .bind(e.flags.join(","))
        .bind(&e.request_hash)
        .bind(&e.prev_hash)
        .bind(&e.hash)
}
