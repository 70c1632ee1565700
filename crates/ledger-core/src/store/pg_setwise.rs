//! A batch on one PostgreSQL server, set-wise: each read and each write
//! covers every institution of the batch in one statement, the key sets
//! bound as parallel arrays (`unnest`), so a batch costs about ten round
//! trips whatever the number of institutions it touches. The same rows,
//! locks and lock order as the statements one institution at a time
//! (`postgres.rs`, for a sharded server): the chain heads, then the kept
//! figures, each locked in institution id order, so two batches over
//! overlapping institutions still cannot deadlock.

use sqlx::PgConnection;

use crate::domain::accounts::{AccountCode, Totals};
use crate::domain::books::{EnrollmentBook, KnownEntry};
use crate::domain::entry::{Entry, Phase};
use crate::domain::ids::{ClientId, EnrollmentId, InstitutionId};
use crate::store::batch::{ENTRY_WRITE_COLUMNS, POSTING_WRITE_COLUMNS};
use crate::store::figures::{self, FiguresRow, KeptFigures, FIGURES_COLUMNS};
use crate::store::rows::{self, AccountRow, EnrollmentRow, EntryRow, LockedRow, PostingRow};
use crate::store::{Changes, LockedInstitution, Result};

/// The batch's connection, inside its transaction.
pub(crate) struct SetWise<'t> {
    pub tx: &'t mut PgConnection,
}

/// The first and second members of each key, as two parallel arrays.
fn columns<'a, A: 'a, B: 'a>(
    keys: &'a [(A, B)],
    first: impl Fn(&'a A) -> &'a str,
    second: impl Fn(&'a B) -> &'a str,
) -> (Vec<&'a str>, Vec<&'a str>) {
    keys.iter().map(|(a, b)| (first(a), second(b))).unzip()
}

/// A statement with its parameters bound so far (PostgreSQL).
pub(crate) type PgQuery<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

/// Binds the columns of `e` after the institution (`seq` … `hash`, as
/// [`ENTRY_WRITE_COLUMNS`] lists them), one array each: the entries insert
/// of either mode.
pub(crate) fn bind_entry_columns<'q>(q: PgQuery<'q>, e: &[&'q Entry]) -> PgQuery<'q> {
    q.bind(e.iter().map(|x| x.seq).collect::<Vec<_>>())
        .bind(e.iter().map(|x| x.client_id.as_str()).collect::<Vec<_>>())
        .bind(e.iter().map(|x| x.kind.code()).collect::<Vec<_>>())
        .bind(e.iter().map(|x| x.currency.code()).collect::<Vec<_>>())
        .bind(e.iter().map(|x| x.occurred_at).collect::<Vec<_>>())
        .bind(e.iter().map(|x| x.recorded_at).collect::<Vec<_>>())
        .bind(
            e.iter()
                .map(|x| x.external_ref.as_deref())
                .collect::<Vec<_>>(),
        )
        .bind(
            e.iter()
                .map(|x| x.enrollment.as_ref().map(|v| v.as_str()))
                .collect::<Vec<_>>(),
        )
        .bind(
            e.iter()
                .map(|x| x.hours.map(|h| h as i32))
                .collect::<Vec<_>>(),
        )
        .bind(e.iter().map(|x| x.refers_to_seq).collect::<Vec<_>>())
        .bind(e.iter().map(|x| x.rule_pack.as_deref()).collect::<Vec<_>>())
        .bind(e.iter().map(|x| x.flags.join(",")).collect::<Vec<_>>())
        .bind(
            e.iter()
                .map(|x| x.request_hash.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(e.iter().map(|x| x.prev_hash.as_str()).collect::<Vec<_>>())
        .bind(e.iter().map(|x| x.hash.as_str()).collect::<Vec<_>>())
}

/// Binds the columns of the postings `p` (index into `all`, leg, totals
/// after) after the institution (`seq` … `pending_credits_after_minor`, as
/// [`POSTING_WRITE_COLUMNS`] lists them): the postings insert of either
/// mode.
pub(crate) fn bind_posting_columns<'q>(
    q: PgQuery<'q>,
    p: &[&(usize, usize, Totals)],
    all: &'q [Entry],
) -> PgQuery<'q> {
    let posting = |(i, leg, _): &&(usize, usize, Totals)| &all[*i].postings[*leg];
    q.bind(p.iter().map(|(i, _, _)| all[*i].seq).collect::<Vec<_>>())
        .bind(p.iter().map(|(_, leg, _)| *leg as i16).collect::<Vec<_>>())
        .bind(
            p.iter()
                .map(|x| posting(x).account.to_string())
                .collect::<Vec<_>>(),
        )
        .bind(p.iter().map(|x| posting(x).side.code()).collect::<Vec<_>>())
        .bind(
            p.iter()
                .map(|x| posting(x).amount.minor())
                .collect::<Vec<_>>(),
        )
        .bind(
            p.iter()
                .map(|(_, _, t)| t.posted_debits_minor)
                .collect::<Vec<_>>(),
        )
        .bind(
            p.iter()
                .map(|(_, _, t)| t.posted_credits_minor)
                .collect::<Vec<_>>(),
        )
        .bind(
            p.iter()
                .map(|(_, _, t)| t.pending_debits_minor)
                .collect::<Vec<_>>(),
        )
        .bind(
            p.iter()
                .map(|(_, _, t)| t.pending_credits_minor)
                .collect::<Vec<_>>(),
        )
}

/// Binds each account's code and totals (after its institution), one
/// array each: the accounts update of either mode.
pub(crate) fn bind_account_columns<'q>(
    q: PgQuery<'q>,
    a: &[&(InstitutionId, AccountCode, Totals)],
) -> PgQuery<'q> {
    q.bind(
        a.iter()
            .map(|(_, code, _)| code.to_string())
            .collect::<Vec<_>>(),
    )
    .bind(
        a.iter()
            .map(|(_, _, t)| t.posted_debits_minor)
            .collect::<Vec<_>>(),
    )
    .bind(
        a.iter()
            .map(|(_, _, t)| t.posted_credits_minor)
            .collect::<Vec<_>>(),
    )
    .bind(
        a.iter()
            .map(|(_, _, t)| t.pending_debits_minor)
            .collect::<Vec<_>>(),
    )
    .bind(
        a.iter()
            .map(|(_, _, t)| t.pending_credits_minor)
            .collect::<Vec<_>>(),
    )
}

impl SetWise<'_> {
    /// Locks the chain heads of `ids` in id order (`order by` is applied
    /// before the rows are locked).
    pub async fn lock_institutions(
        &mut self,
        ids: &[InstitutionId],
    ) -> Result<Vec<LockedInstitution>> {
        let found: Vec<LockedRow> = sqlx::query_as(
            "select i.*, h.last_seq, h.last_hash, h.last_recorded_at, \
               (select generation from rule_pack_generation where only_row = 1) \
                 as rule_pack_generation \
             from chain_heads h join institutions i on i.institution_id = h.institution_id \
             where h.institution_id = any($1) order by h.institution_id for update of h",
        )
        .bind(ids.iter().map(|i| i.as_str()).collect::<Vec<_>>())
        .fetch_all(&mut *self.tx)
        .await?;
        rows::convert(found)
    }

    pub async fn load_accounts(
        &mut self,
        keys: &[(InstitutionId, String)],
    ) -> Result<Vec<(InstitutionId, AccountCode, Totals)>> {
        let (institutions, codes) = columns(keys, |i| i.as_str(), |c| c.as_str());
        let found: Vec<AccountRow> = sqlx::query_as(
            "select a.* from accounts a \
             join unnest($1::text[], $2::text[]) as k(institution_id, account_code) \
               on a.institution_id = k.institution_id and a.account_code = k.account_code",
        )
        .bind(institutions)
        .bind(codes)
        .fetch_all(&mut *self.tx)
        .await?;
        rows::convert(found)
    }

    pub async fn load_enrollments(
        &mut self,
        keys: &[(InstitutionId, EnrollmentId)],
    ) -> Result<Vec<EnrollmentBook>> {
        let (institutions, ids) = columns(keys, |i| i.as_str(), |e| e.as_str());
        let found: Vec<EnrollmentRow> = sqlx::query_as(
            "select e.* from enrollments e \
             join unnest($1::text[], $2::text[]) as k(institution_id, enrollment_id) \
               on e.institution_id = k.institution_id and e.enrollment_id = k.enrollment_id",
        )
        .bind(institutions)
        .bind(ids)
        .fetch_all(&mut *self.tx)
        .await?;
        rows::convert(found)
    }

    /// The entries of `keys` that exist (with the kind of the entry that
    /// settled each), and their postings: two statements.
    pub async fn load_entries(
        &mut self,
        keys: &[(InstitutionId, ClientId)],
    ) -> Result<Vec<KnownEntry>> {
        let (institutions, clients) = columns(keys, |i| i.as_str(), |c| c.as_str());
        let found: Vec<EntryRow> = sqlx::query_as(&format!(
            "select {}, \
               (select r.kind from entries r where r.institution_id = e.institution_id \
                  and r.refers_to_seq = e.seq) as referred_by \
             from entries e \
             join unnest($1::text[], $2::text[]) as k(institution_id, client_id) \
               on e.institution_id = k.institution_id and e.client_id = k.client_id",
            rows::ENTRY_COLUMNS,
        ))
        .bind(institutions)
        .bind(clients)
        .fetch_all(&mut *self.tx)
        .await?;
        if found.is_empty() {
            return Ok(Vec::new());
        }
        let postings: Vec<PostingRow> = sqlx::query_as(
            "select p.institution_id, p.seq, p.account_code, p.side, p.amount_minor \
             from postings p \
             join unnest($1::text[], $2::bigint[]) as k(institution_id, seq) \
               on p.institution_id = k.institution_id and p.seq = k.seq \
             order by p.institution_id, p.seq, p.leg",
        )
        .bind(
            found
                .iter()
                .map(|r| r.institution_id.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(found.iter().map(|r| r.seq).collect::<Vec<_>>())
        .fetch_all(&mut *self.tx)
        .await?;
        rows::assemble(found, postings, |r, p| r.into_known(p))
    }

    /// The overview's kept rows of `ids`, locked in id order (after the
    /// chain heads, as a statement's refresh locks only these rows).
    pub async fn load_figures(&mut self, ids: &[InstitutionId]) -> Result<Vec<KeptFigures>> {
        let found: Vec<FiguresRow> = sqlx::query_as(&format!(
            "select {FIGURES_COLUMNS} from institution_figures \
             where institution_id = any($1) order by institution_id for update"
        ))
        .bind(ids.iter().map(|i| i.as_str()).collect::<Vec<_>>())
        .fetch_all(&mut *self.tx)
        .await?;
        rows::convert(found)
    }

    /// Only what a batch changes of the kept rows: the books now, the
    /// ledger side, coverage.
    pub async fn write_figures(
        &mut self,
        rows: &[KeptFigures],
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<()> {
        // One array per column, unnested side by side.
        static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
            format!(
                "update institution_figures f set {}, updated_at = $2, \
                   revision = f.revision + 1 \
                 from unnest($1::text[], {}) as u(institution_id, {}) \
                 where f.institution_id = u.institution_id",
                figures::batch_assignments(|_, c| format!("u.{c}")),
                (0..figures::BATCH_COLUMNS.len())
                    .map(|i| format!("${}::bigint[]", i + 3))
                    .collect::<Vec<_>>()
                    .join(", "),
                figures::BATCH_COLUMNS.join(", "),
            )
        });
        let values: Vec<_> = rows.iter().map(KeptFigures::batch_values).collect();
        let mut q = sqlx::query(SQL.as_str())
            .bind(
                rows.iter()
                    .map(|k| k.institution.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(crate::store::DbTime::from(now));
        for i in 0..figures::BATCH_COLUMNS.len() {
            q = q.bind(values.iter().map(|v| v[i]).collect::<Vec<_>>());
        }
        q.execute(&mut *self.tx).await?;
        Ok(())
    }

    /// Every change of the batch, one statement per table.
    pub async fn write(&mut self, c: &Changes) -> Result<()> {
        self.write_outbox(&c.entries).await?;
        self.write_entries(&c.entries).await?;
        self.write_postings(c).await?;
        let a: Vec<_> = c.accounts.iter().collect();
        if !a.is_empty() {
            let q = sqlx::query(
                "update accounts a set posted_debits_minor = u.pd, posted_credits_minor = u.pc, \
                   pending_debits_minor = u.qd, pending_credits_minor = u.qc \
                 from unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[], \
                     $6::bigint[]) as u(institution_id, account_code, pd, pc, qd, qc) \
                 where a.institution_id = u.institution_id and a.account_code = u.account_code",
            )
            .bind(a.iter().map(|(i, _, _)| i.as_str()).collect::<Vec<_>>());
            bind_account_columns(q, &a).execute(&mut *self.tx).await?;
        }
        let n = &c.enrollments;
        if !n.is_empty() {
            sqlx::query(
                "update enrollments e set hours_consumed = u.hours, paid_minor = u.paid \
                 from unnest($1::text[], $2::text[], $3::int[], $4::bigint[]) \
                   as u(institution_id, enrollment_id, hours, paid) \
                 where e.institution_id = u.institution_id and e.enrollment_id = u.enrollment_id",
            )
            .bind(n.iter().map(|x| x.0.as_str()).collect::<Vec<_>>())
            .bind(n.iter().map(|x| x.1.as_str()).collect::<Vec<_>>())
            .bind(n.iter().map(|x| x.2 as i32).collect::<Vec<_>>())
            .bind(n.iter().map(|x| x.3).collect::<Vec<_>>())
            .execute(&mut *self.tx)
            .await?;
        }
        let h = &c.heads;
        if !h.is_empty() {
            sqlx::query(
                "update chain_heads c set last_seq = u.seq, last_hash = u.hash, \
                   last_recorded_at = u.at \
                 from unnest($1::text[], $2::bigint[], $3::text[], $4::timestamptz[]) \
                   as u(institution_id, seq, hash, at) \
                 where c.institution_id = u.institution_id",
            )
            .bind(h.iter().map(|(i, _)| i.as_str()).collect::<Vec<_>>())
            .bind(h.iter().map(|(_, h)| h.last_seq).collect::<Vec<_>>())
            .bind(
                h.iter()
                    .map(|(_, h)| h.last_hash.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(
                h.iter()
                    .map(|(_, h)| h.last_recorded_at)
                    .collect::<Vec<_>>(),
            )
            .execute(&mut *self.tx)
            .await?;
        }
        Ok(())
    }

    /// The money the bank must move (pending entries) into the outbox.
    async fn write_outbox(&mut self, entries: &[Entry]) -> Result<()> {
        let pending: Vec<&Entry> = entries
            .iter()
            .filter(|e| e.kind.phase() == Phase::Pending)
            .collect();
        if pending.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "insert into outbox (institution_id, instruction_id, kind, amount_minor, currency, \
               state, attempts, next_attempt_at, created_at, updated_at) \
             select u.institution_id, u.instruction_id, u.kind, u.amount_minor, u.currency, \
               'pending', 0, u.at, u.at, u.at \
             from unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], \
                 $6::timestamptz[]) as u(institution_id, instruction_id, kind, amount_minor, \
                 currency, at)",
        )
        .bind(
            pending
                .iter()
                .map(|e| e.institution.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            pending
                .iter()
                .map(|e| e.client_id.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(pending.iter().map(|e| e.kind.code()).collect::<Vec<_>>())
        .bind(
            pending
                .iter()
                .map(|e| e.postings.first().map_or(0, |p| p.amount.minor()))
                .collect::<Vec<_>>(),
        )
        .bind(
            pending
                .iter()
                .map(|e| e.currency.code())
                .collect::<Vec<_>>(),
        )
        .bind(pending.iter().map(|e| e.recorded_at).collect::<Vec<_>>())
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn write_entries(&mut self, e: &[Entry]) -> Result<()> {
        if e.is_empty() {
            return Ok(());
        }
        let e: Vec<&Entry> = e.iter().collect();
        let sql = format!(
            "insert into entries ({ENTRY_WRITE_COLUMNS}) \
             select * from unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], \
               $6::timestamptz[], $7::timestamptz[], $8::text[], $9::text[], $10::int[], \
               $11::bigint[], $12::text[], $13::text[], $14::text[], $15::text[], $16::text[])"
        );
        let q =
            sqlx::query(&sql).bind(e.iter().map(|x| x.institution.as_str()).collect::<Vec<_>>());
        bind_entry_columns(q, &e).execute(&mut *self.tx).await?;
        Ok(())
    }

    async fn write_postings(&mut self, c: &Changes) -> Result<()> {
        if c.postings.is_empty() {
            return Ok(());
        }
        let all = &c.entries;
        let p: Vec<&(usize, usize, Totals)> = c.postings.iter().collect();
        let sql = format!(
            "insert into postings ({POSTING_WRITE_COLUMNS}) \
             select * from unnest($1::text[], $2::bigint[], $3::smallint[], $4::text[], \
               $5::bpchar[], $6::bigint[], $7::bigint[], $8::bigint[], $9::bigint[], $10::bigint[])"
        );
        let q = sqlx::query(&sql).bind(
            p.iter()
                .map(|(i, _, _)| all[*i].institution.as_str())
                .collect::<Vec<_>>(),
        );
        bind_posting_columns(q, &p, all)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }
}
