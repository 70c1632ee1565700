//! The books read back, both dialects: balances now and at a past instant,
//! entries with their postings, running totals and chain heads.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};

use crate::domain::accounts::{AccountCode, Totals};
use crate::domain::books::ChainHead;
use crate::domain::entry::{Entry, EntryKind};
use crate::domain::error::LedgerError;
use crate::domain::ids::InstitutionId;
use crate::domain::registry::Institution;
use crate::domain::replay::BooksOn;
use crate::store::bulk::within;
use crate::store::coverage::{add_to, ACCOUNT_GROUP};
use crate::store::report::{AccountBalance, BalanceSheet};
use crate::store::rows::{
    self, AccountRow, EntryPostingsRow, EntryRow, HeadRow, InstitutionRow, PostingRow, TotalsRow,
    ENTRY_COLUMNS, ENTRY_COLUMNS_UNCHAINED,
};
use crate::store::{DbTime, IdSpan, Result, Store};

/// An institution joined with one of its accounts (none for an institution
/// without accounts).
#[derive(sqlx::FromRow)]
struct InstitutionAccountRow {
    #[sqlx(flatten)]
    institution: InstitutionRow,
    account_code: Option<String>,
    #[sqlx(flatten)]
    totals: TotalsRow,
}

/// Whether an entry `e` is listed one by one: every entry but the lessons
/// consumed before the instant bound to `$param` (all of them when it is
/// null).
fn listed(param: usize) -> String {
    format!(
        "(${param} is null or e.kind <> '{lessons}' or e.occurred_at >= ${param})",
        lessons = EntryKind::LessonsConsumed.code()
    )
}

/// A posting's running totals, by its place in the chain.
#[derive(sqlx::FromRow)]
struct SnapshotRow {
    seq: i64,
    leg: i16,
    #[sqlx(flatten)]
    totals: TotalsRow,
}

const POSTING_COLUMNS: &str = "institution_id, seq, account_code, side, amount_minor";

impl Store {
    /// Current balances of every account of an institution.
    pub async fn balances(&self, id: &InstitutionId) -> Result<BalanceSheet> {
        let institution = self.institution(id).await?;
        let accounts = self.account_rows_of(std::slice::from_ref(id)).await?;
        Ok(BalanceSheet {
            institution: id.clone(),
            currency: institution.currency,
            as_of: None,
            accounts: accounts
                .iter()
                .map(|(_, c, t)| AccountBalance::new(c, *t))
                .collect(),
        })
    }

    /// One account's current balances (all zero when it has no postings
    /// yet): one row, where [`Store::balances`] reads them all.
    pub async fn account(
        &self,
        institution: &InstitutionId,
        account: &AccountCode,
    ) -> Result<AccountBalance> {
        let found: Option<AccountRow> = on_reader!(self, |pool| sqlx::query_as(
            "select * from accounts where institution_id = $1 and account_code = $2",
        )
        .bind(institution.as_str())
        .bind(account.to_string())
        .fetch_optional(pool)
        .await?);
        Ok(match found {
            Some(row) => {
                let (_, code, totals) = <(InstitutionId, AccountCode, Totals)>::try_from(row)?;
                AccountBalance::new(&code, totals)
            }
            None => AccountBalance::new(account, Totals::default()),
        })
    }

    /// An institution and its current balances, in one round trip.
    pub async fn institution_with_balances(
        &self,
        id: &InstitutionId,
    ) -> Result<(Institution, BalanceSheet)> {
        let found: Vec<InstitutionAccountRow> = on_reader!(self, |pool| sqlx::query_as(
            "select i.*, a.account_code, \
               coalesce(a.posted_debits_minor, 0) as posted_debits_minor, \
               coalesce(a.posted_credits_minor, 0) as posted_credits_minor, \
               coalesce(a.pending_debits_minor, 0) as pending_debits_minor, \
               coalesce(a.pending_credits_minor, 0) as pending_credits_minor \
             from institutions i left join accounts a on a.institution_id = i.institution_id \
             where i.institution_id = $1 order by a.account_code",
        )
        .bind(id.as_str())
        .fetch_all(pool)
        .await?);
        let mut institution = None;
        let mut accounts = Vec::with_capacity(found.len());
        for r in found {
            if let Some(code) = &r.account_code {
                accounts.push(AccountBalance::new(
                    &rows::account_code(code)?,
                    r.totals.into(),
                ));
            }
            if institution.is_none() {
                institution = Some(Institution::try_from(r.institution)?);
            }
        }
        let institution = institution.ok_or_else(|| LedgerError::UnknownInstitution {
            institution: id.to_string(),
        })?;
        let sheet = BalanceSheet {
            institution: id.clone(),
            currency: institution.currency,
            as_of: None,
            accounts,
        };
        Ok((institution, sheet))
    }

    /// Current balances of institutions already loaded, in one round trip.
    pub async fn balance_sheets(
        &self,
        institutions: &[Institution],
    ) -> Result<BTreeMap<InstitutionId, BalanceSheet>> {
        let ids: Vec<InstitutionId> = institutions.iter().map(|i| i.id.clone()).collect();
        let mut sheets: BTreeMap<InstitutionId, BalanceSheet> = institutions
            .iter()
            .map(|i| {
                (
                    i.id.clone(),
                    BalanceSheet {
                        institution: i.id.clone(),
                        currency: i.currency,
                        as_of: None,
                        accounts: Vec::new(),
                    },
                )
            })
            .collect();
        for (id, code, totals) in self.account_rows_of(&ids).await? {
            if let Some(sheet) = sheets.get_mut(&id) {
                sheet.accounts.push(AccountBalance::new(&code, totals));
            }
        }
        Ok(sheets)
    }

    /// The accounts of many institutions in one round trip, by institution
    /// and code.
    async fn account_rows_of(
        &self,
        ids: &[InstitutionId],
    ) -> Result<Vec<(InstitutionId, AccountCode, Totals)>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let found: Vec<AccountRow> = on_reader!(self, |pool, dialect| {
            sqlx::query_as(&format!(
                "select * from accounts where institution_id {} \
                 order by institution_id, account_code",
                dialect.in_list(1)
            ))
            .bind(dialect.list(ids.iter().map(InstitutionId::as_str)))
            .fetch_all(pool)
            .await?
        });
        rows::convert(found)
    }

    /// Balances as the books stood at instant `at` (by recorded time).
    pub async fn balances_at(&self, id: &InstitutionId, at: DateTime<Utc>) -> Result<BalanceSheet> {
        let institution = self.institution(id).await?;
        let created_at: DbTime = on_reader!(self, |pool| sqlx::query_scalar(
            "select created_at from institutions where institution_id = $1"
        )
        .bind(id.as_str())
        .fetch_one(pool)
        .await?);
        if DbTime::from(at) < created_at {
            return Err(LedgerError::BeforeInstitutionExisted {
                institution: id.to_string(),
                at: at.to_rfc3339(),
                created_at: created_at.utc().to_rfc3339(),
            }
            .into());
        }
        // Each account's totals after its last posting recorded by `at`.
        let found: Vec<AccountRow> = on_reader!(self, |pool, dialect| {
            sqlx::query_as(dialect.balances_at_sql())
                .bind(id.as_str())
                .bind(DbTime::from(at))
                .fetch_all(pool)
                .await?
        });
        let accounts = found
            .into_iter()
            .map(|r| {
                Ok(AccountBalance::new(
                    &rows::account_code(&r.account_code)?,
                    r.totals.into(),
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(BalanceSheet {
            institution: id.clone(),
            currency: institution.currency,
            as_of: Some(at),
            accounts,
        })
    }

    /// A page of every institution's entries (of a span, or all) in
    /// (institution, seq) order, after the given institution and seq (from
    /// the span's start, or the store's, without one). With `lessons_from`,
    /// lessons consumed that occurred before it are left out (the risk
    /// scan reads them summed, [`Store::lessons_summed_in`]). The entries
    /// come without their request and chain hashes (empty): what the risk
    /// engine judges, not what `verify` checks.
    pub async fn entries_in(
        &self,
        span: Option<IdSpan<'_>>,
        after: Option<(&str, i64)>,
        limit: i64,
        lessons_from: Option<DateTime<Utc>>,
    ) -> Result<Vec<Entry>> {
        // Seqs start at 1: (first, 0) precedes the span's first entry.
        let start = span.map_or(("", 0), |s| (s.first, 0));
        let (from_id, from_seq) = after.unwrap_or(start);
        let from = lessons_from.map(DbTime::from);
        // Without the chain's hashes, which nothing the risk engine reads
        // looks at: three 64-character strings an entry, most of a row
        // that has to cross from the database into the process. SQLite
        // hands each row from its connection's thread to ours, a cost per
        // row that dominated this read (two postings an entry on average):
        // there each entry brings its postings along, one JSON array in leg
        // order. PostgreSQL reads them after, as a range of their key.
        let postings_json = match self {
            Store::Sqlite(_) => {
                ", (select json_group_array(json_array(p.account_code, p.side, p.amount_minor) \
                     order by p.leg) \
                   from postings p where p.institution_id = e.institution_id \
                     and p.seq = e.seq) as postings_json"
            }
            Store::Postgres(_) => "",
        };
        let sql = format!(
            "select {ENTRY_COLUMNS_UNCHAINED}{postings_json} from entries e \
             where (e.institution_id, e.seq) > ($1, $2) \
             and {} {} order by e.institution_id, e.seq limit $3",
            listed(4),
            within(span, "and", "e.institution_id", 5)
        );
        macro_rules! page {
            ($row:ty, $pool:expr) => {
                bind_span!(
                    sqlx::query_as::<_, $row>(&sql)
                        .bind(from_id)
                        .bind(from_seq)
                        .bind(limit)
                        .bind(from),
                    span
                )
                .fetch_all($pool)
                .await?
            };
        }
        let pool = match self {
            Store::Sqlite(lite) => {
                return page!(EntryPostingsRow, lite.reader())
                    .into_iter()
                    .map(EntryPostingsRow::into_entry)
                    .collect();
            }
            Store::Postgres(pg) => pg.reader(),
        };
        let found = page!(EntryRow, pool);
        let Some(last) = found.last() else {
            return Ok(vec![]);
        };
        let postings: Vec<PostingRow> = match from {
            None => {
                sqlx::query_as(&format!(
                    "select {POSTING_COLUMNS} from postings \
                     where (institution_id, seq) > ($1, $2) and (institution_id, seq) <= ($3, $4) \
                     order by institution_id, seq, leg"
                ))
                .bind(from_id)
                .bind(from_seq)
                .bind(&last.institution_id)
                .bind(last.seq)
                .fetch_all(pool)
                .await?
            }
            Some(_) => {
                // The page's range on both sides of the join: with it
                // on the postings alone, PostgreSQL hashed every entry
                // of the store for each page (BENCHMARKS.md, "The old
                // lessons' sums kept").
                sqlx::query_as(&format!(
                    "select p.institution_id, p.seq, p.account_code, p.side, p.amount_minor \
                     from postings p join entries e \
                       on e.institution_id = p.institution_id and e.seq = p.seq \
                     where (p.institution_id, p.seq) > ($1, $2) \
                       and (p.institution_id, p.seq) <= ($3, $4) \
                       and (e.institution_id, e.seq) > ($1, $2) \
                       and (e.institution_id, e.seq) <= ($3, $4) and {} \
                     order by p.institution_id, p.seq, p.leg",
                    listed(5)
                ))
                .bind(from_id)
                .bind(from_seq)
                .bind(&last.institution_id)
                .bind(last.seq)
                .bind(from)
                .fetch_all(pool)
                .await?
            }
        };
        rows::assemble(found, postings, |r, p| r.into_entry(p))
    }

    /// Whether any lesson consumed before `before` is stored (of a span of
    /// institutions, or all): whether [`Store::lessons_summed_in`] has
    /// anything to sum, without summing it.
    pub async fn lessons_before_exist(
        &self,
        span: Option<IdSpan<'_>>,
        before: DateTime<Utc>,
    ) -> Result<bool> {
        let sql = format!(
            "select exists (select 1 from entries e \
               where e.kind = '{}' and e.occurred_at < $1 {})",
            EntryKind::LessonsConsumed.code(),
            within(span, "and", "e.institution_id", 2)
        );
        let before = DbTime::from(before);
        Ok(on_reader!(self, |pool| bind_span!(
            sqlx::query_scalar::<_, bool>(&sql).bind(before),
            span
        )
        .fetch_one(pool)
        .await?))
    }

    /// Whether the institution's books hold an entry under `client_id`
    /// (one probe of the client ids' unique key).
    pub async fn has_entry(&self, institution: &InstitutionId, client_id: &str) -> Result<bool> {
        Ok(on_reader!(self, |pool| sqlx::query_scalar::<_, i64>(
            "select cast(1 as bigint) from entries where institution_id = $1 and client_id = $2"
        )
        .bind(institution.as_str())
        .bind(client_id)
        .fetch_optional(pool)
        .await?)
        .is_some())
    }

    /// An institution's entries in chain order, after `after_seq`, at most `limit`.
    pub async fn entries(
        &self,
        id: &InstitutionId,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<Entry>> {
        on_reader!(self, |pool| {
            let found: Vec<EntryRow> = sqlx::query_as(&format!(
                "select {ENTRY_COLUMNS} from entries e where e.institution_id = $1 and e.seq > $2 \
                 order by e.seq limit $3"
            ))
            .bind(id.as_str())
            .bind(after_seq)
            .bind(limit)
            .fetch_all(pool)
            .await?;
            let last = found.last().map_or(after_seq, |r| r.seq);
            let postings: Vec<PostingRow> = sqlx::query_as(&format!(
                "select {POSTING_COLUMNS} from postings \
                 where institution_id = $1 and seq > $2 and seq <= $3 order by seq, leg"
            ))
            .bind(id.as_str())
            .bind(after_seq)
            .bind(last)
            .fetch_all(pool)
            .await?;
            rows::assemble(found, postings, |r, p| r.into_entry(p))
        })
    }

    /// An institution's entries a condition on `e` selects (binding `$1`
    /// to the institution and, with `since`, `$2` to that instant), in
    /// chain order, with their postings.
    async fn entries_where(
        &self,
        id: &InstitutionId,
        condition: &str,
        since: Option<DbTime>,
    ) -> Result<Vec<Entry>> {
        on_reader!(self, |pool| {
            let sql = format!(
                "select {ENTRY_COLUMNS} from entries e where e.institution_id = $1 and ({condition}) \
                 order by e.seq"
            );
            let query = sqlx::query_as(&sql).bind(id.as_str());
            let query = match since {
                Some(t) => query.bind(t),
                None => query,
            };
            let found: Vec<EntryRow> = query.fetch_all(pool).await?;
            let sql = format!(
                "select {POSTING_COLUMNS} from postings \
                 where institution_id = $1 and seq in \
                   (select e.seq from entries e where e.institution_id = $1 and ({condition})) \
                 order by seq, leg"
            );
            let query = sqlx::query_as(&sql).bind(id.as_str());
            let query = match since {
                Some(t) => query.bind(t),
                None => query,
            };
            let postings: Vec<PostingRow> = query.fetch_all(pool).await?;
            rows::assemble(found, postings, |r, p| r.into_entry(p))
        })
    }

    /// An institution's entries that occurred on or after `day` (UTC), in
    /// chain order.
    pub async fn entries_occurred_from(
        &self,
        id: &InstitutionId,
        day: NaiveDate,
    ) -> Result<Vec<Entry>> {
        let Some(from) = day.and_hms_opt(0, 0, 0) else {
            return Ok(vec![]);
        };
        let from = DbTime::from(from.and_utc());
        self.entries_where(id, "e.occurred_at >= $2", Some(from))
            .await
    }

    /// The greatest seq of an institution's entries (0 before any): every
    /// entry up to it is committed, since entries are chained in seq order
    /// under the chain head's lock.
    pub async fn last_seq(&self, id: &InstitutionId) -> Result<i64> {
        Ok(on_reader!(self, |pool| sqlx::query_scalar(
            "select cast(coalesce(max(seq), 0) as bigint) from entries where institution_id = $1"
        )
        .bind(id.as_str())
        .fetch_one(pool)
        .await?))
    }

    /// The earliest day (UTC) an entry after `after_seq` occurred on.
    pub async fn earliest_occurred_after(
        &self,
        id: &InstitutionId,
        after_seq: i64,
    ) -> Result<Option<NaiveDate>> {
        // The entries after the seq first (a range of the primary key),
        // then their earliest day: asked for `min(occurred_at)` directly,
        // PostgreSQL walks the institution's entries by day from the first
        // one until it meets a seq past the watermark, which is nearly
        // every entry once the history is long.
        let at: Option<DbTime> = on_reader!(self, |pool| sqlx::query_scalar(
            "with since as materialized (select occurred_at from entries \
               where institution_id = $1 and seq > $2) \
             select min(occurred_at) from since"
        )
        .bind(id.as_str())
        .bind(after_seq)
        .fetch_one(pool)
        .await?);
        Ok(at.map(|t| t.utc().date_naive()))
    }

    /// The books at the end of the day before `day` (by the day the money
    /// moved), summed by the database: what [`BooksOn::replay`] gives from
    /// every entry, every `prepaid/{enrollment}` as one.
    pub async fn books_before(&self, id: &InstitutionId, day: NaiveDate) -> Result<BooksOn> {
        let mut books = BooksOn::default();
        let Some(from) = day.and_hms_opt(0, 0, 0) else {
            return Ok(books);
        };
        let sql = format!(
            "select e.kind, p.side, min(p.account_code), cast(sum(p.amount_minor) as bigint) \
             from postings p join entries e \
               on e.institution_id = p.institution_id and e.seq = p.seq \
             where e.institution_id = $1 and e.occurred_at < $2 \
             group by e.kind, p.side, {ACCOUNT_GROUP}"
        );
        let sums: Vec<(String, String, String, i64)> =
            on_reader!(self, |pool| sqlx::query_as(&sql)
                .bind(id.as_str())
                .bind(DbTime::from(from.and_utc()))
                .fetch_all(pool)
                .await?);
        for (kind, side, account, amount) in sums {
            add_to(&mut books, &kind, &side, &account, amount)?;
        }
        Ok(books)
    }

    /// Each posting's running totals (seq, leg, totals after it) of the
    /// entries after `after_seq`, at most `limit` entries.
    pub(crate) async fn posting_snapshots(
        &self,
        id: &InstitutionId,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<(i64, i64, Totals)>> {
        let found: Vec<SnapshotRow> = on_reader!(self, |pool| sqlx::query_as(
            "select seq, leg, posted_debits_after_minor as posted_debits_minor, \
               posted_credits_after_minor as posted_credits_minor, \
               pending_debits_after_minor as pending_debits_minor, \
               pending_credits_after_minor as pending_credits_minor from postings \
             where institution_id = $1 and seq > $2 and seq <= $3 order by seq, leg",
        )
        .bind(id.as_str())
        .bind(after_seq)
        .bind(after_seq + limit)
        .fetch_all(pool)
        .await?);
        Ok(found
            .into_iter()
            .map(|r| (r.seq, i64::from(r.leg), r.totals.into()))
            .collect())
    }

    pub(crate) async fn head(&self, id: &InstitutionId) -> Result<ChainHead> {
        let head: HeadRow = on_reader!(self, |pool| sqlx::query_as(
            "select last_seq, last_hash, last_recorded_at from chain_heads \
             where institution_id = $1"
        )
        .bind(id.as_str())
        .fetch_one(pool)
        .await?);
        Ok(head.into())
    }
}
