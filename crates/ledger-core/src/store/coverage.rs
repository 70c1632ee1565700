//! Set-wise reads for coverage (the one definition,
//! [`crate::domain::risk::coverage`]) of many institutions at once, in a
//! fixed number of queries whatever their number: the supervised accounts
//! with each one's latest closing on or before the day (one query), and
//! the ledger figures coverage reads, summed by the database (one query,
//! plus one for the postings after the day the banks reported through,
//! which are taken off again). The figures are exactly those the risk
//! snapshot replays from the entries: postings by the day the money moved
//! (`occurred_at`), each entry's phase applied as [`BooksOn`] applies it.

use std::collections::HashMap;

use chrono::NaiveDate;

use crate::domain::accounts::Side;
use crate::domain::entry::EntryKind;
use crate::domain::ids::InstitutionId;
use crate::domain::replay::BooksOn;
use crate::domain::risk::coverage::{AccountClosing, OwedFigures};
use crate::store::rows::corrupt_as;
use crate::store::{DbTime, Result, Store};

/// What one institution's coverage on a day is computed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoverageFacts {
    /// Its supervised accounts (by bank and number) with their latest
    /// closings on or before the day.
    pub accounts: Vec<AccountClosing>,
    /// The day what is owed is read on (the day the banks reported
    /// through, when before the day assessed).
    pub owed_on: NaiveDate,
    /// The ledger's figures at the end of `owed_on`.
    pub figures: OwedFigures,
}

/// The instant a day ends (UTC), where entries of the next day begin.
pub(crate) fn end_of(day: NaiveDate) -> Option<DbTime> {
    Some(DbTime::from(
        day.succ_opt()?.and_hms_opt(0, 0, 0)?.and_utc(),
    ))
}

/// The accounts coverage reads, every `prepaid/{enrollment}` as one (the
/// smallest code stands for them all: their balances add up alike).
pub(crate) const FIGURE_ACCOUNTS: &str = "(p.account_code like 'prepaid/%' \
     or p.account_code in ('refund_payable', 'releasable', 'held_by_institution'))";
pub(crate) const ACCOUNT_GROUP: &str =
    "case when p.account_code like 'prepaid/%' then 'prepaid/' else p.account_code end";

/// (institution, entry kind, side, account, summed amount)
pub(crate) type SumRow = (String, String, String, String, i64);

pub(crate) fn add_to(
    books: &mut BooksOn,
    kind: &str,
    side: &str,
    account: &str,
    amount: i64,
) -> Result<()> {
    let phase = EntryKind::parse(kind)
        .ok_or_else(|| corrupt_as("entry")(format!("unknown kind {kind}")))?
        .phase();
    let side = Side::parse(side).ok_or_else(|| corrupt_as("posting")(format!("side {side}")))?;
    books.add(account, phase, side, amount);
    Ok(())
}

/// The body of [`Store::coverage_facts`] on `$exec` (a pool, or `&mut
/// *tx` inside a writer's transaction) with `$dialect` the dialect's
/// marker: written once, expanded wherever the facts are read, so the
/// overview's kept figures are refreshed by exactly the set-wise read.
macro_rules! coverage_facts_on {
    ($exec:expr, $dialect:expr, $institutions:expr, $as_of:expr) => {
        async {
            use std::collections::HashMap;
            use chrono::NaiveDate;
            use $crate::domain::feeds::AccountKind;
            use $crate::domain::ids::InstitutionId;
            use $crate::domain::replay::BooksOn;
            use $crate::domain::risk::coverage::{statements_through, AccountClosing, OwedFigures};
            use $crate::domain::risk::Closing;
            use $crate::store::coverage::{
                add_to, end_of, CoverageFacts, SumRow, ACCOUNT_GROUP, FIGURE_ACCOUNTS,
            };
            use $crate::store::rows::corrupt_as;
            use $crate::store::DbTime;
            let dialect = $dialect;
            let institutions: &[InstitutionId] = $institutions;
            let as_of: NaiveDate = $as_of;
            let mut out: HashMap<InstitutionId, CoverageFacts> = institutions
                .iter()
                .map(|id| {
                    let facts = CoverageFacts {
                        accounts: Vec::new(),
                        owed_on: as_of,
                        figures: OwedFigures::default(),
                    };
                    (id.clone(), facts)
                })
                .collect();
            if institutions.is_empty() {
                return Ok::<_, $crate::store::StoreError>(out);
            }
            let Some(day_ends) = end_of(as_of) else {
                return Ok(out);
            };
            let ids = || institutions.iter().map(InstitutionId::as_str);

            // Each supervised account and its latest final closing by `as_of`
            // (on one day, the greatest statement key: the last one the
            // per-account read orders by day and key).
            type AccountRow = (String, String, String, Option<i64>, Option<NaiveDate>);
            let accounts: Vec<AccountRow> = {
                sqlx::query_as(&format!(
                    "select a.institution_id, a.account_no, a.kind, s.closing_minor, s.closing_date \
                     from bank_accounts a left join ( \
                       select institution_id, bank_id, account_no, closing_minor, closing_date, \
                         row_number() over (partition by institution_id, bank_id, account_no \
                           order by closing_date desc, statement_key desc) as latest \
                       from bank_statements \
                       where institution_id {list} and not provisional \
                         and closing_minor is not null and closing_date is not null \
                         and closing_date <= $2 \
                     ) s on s.institution_id = a.institution_id and s.bank_id = a.bank_id \
                       and s.account_no = a.account_no and s.latest = 1 \
                     where a.institution_id {list} \
                     order by a.institution_id, a.bank_id, a.account_no",
                    list = dialect.in_list(1)
                ))
                .bind(dialect.list(ids()))
                .bind(as_of)
                .fetch_all($exec)
                .await?
            };
            for (institution, account_no, kind, minor, date) in accounts {
                let id = InstitutionId::parse(institution).map_err(corrupt_as("bank account"))?;
                let kind = AccountKind::parse(&kind).map_err(corrupt_as("bank account"))?;
                let latest = minor.zip(date).map(|(balance_minor, date)| Closing {
                    date,
                    balance_minor,
                });
                if let Some(facts) = out.get_mut(&id) {
                    facts.accounts.push(AccountClosing {
                        kind,
                        account_no,
                        latest,
                    });
                }
            }
            for facts in out.values_mut() {
                if let Some(day) = statements_through(as_of, &facts.accounts) {
                    facts.owed_on = day;
                }
            }

            // The books at the end of `as_of`, summed by the database.
            let sums: Vec<SumRow> = {
                sqlx::query_as(&format!(
                    "select e.institution_id, e.kind, p.side, min(p.account_code), \
                       cast(sum(p.amount_minor) as bigint) \
                     from postings p join entries e \
                       on e.institution_id = p.institution_id and e.seq = p.seq \
                     where e.institution_id {list} and e.occurred_at < $2 and {FIGURE_ACCOUNTS} \
                     group by e.institution_id, e.kind, p.side, {ACCOUNT_GROUP}",
                    list = dialect.in_list(1)
                ))
                .bind(dialect.list(ids()))
                .bind(day_ends)
                .fetch_all($exec)
                .await?
            };
            let mut books: HashMap<String, BooksOn> = HashMap::new();
            for (institution, kind, side, account, amount) in sums {
                add_to(
                    books.entry(institution).or_default(),
                    &kind,
                    &side,
                    &account,
                    amount,
                )?;
            }

            // Less what occurred after the day the banks reported through,
            // for the institutions whose owed figures are read on that day.
            let behind: Vec<&str> = out
                .iter()
                .filter(|(_, f)| f.owed_on < as_of)
                .map(|(id, _)| id.as_str())
                .collect();
            let earliest = out.values().map(|f| f.owed_on).min().and_then(end_of);
            if let (false, Some(from)) = (behind.is_empty(), earliest) {
                type TailRow = (String, String, String, String, DbTime, i64);
                let tail: Vec<TailRow> = {
                    sqlx::query_as(&format!(
                        "select e.institution_id, e.kind, p.side, min(p.account_code), \
                           e.occurred_at, cast(sum(p.amount_minor) as bigint) \
                         from postings p join entries e \
                           on e.institution_id = p.institution_id and e.seq = p.seq \
                         where e.institution_id {list} and e.occurred_at >= $2 \
                           and e.occurred_at < $3 and {FIGURE_ACCOUNTS} \
                         group by e.institution_id, e.kind, p.side, {ACCOUNT_GROUP}, \
                           e.occurred_at",
                        list = dialect.in_list(1)
                    ))
                    .bind(dialect.list(behind.iter().copied()))
                    .bind(from)
                    .bind(day_ends)
                    .fetch_all($exec)
                    .await?
                };
                for (institution, kind, side, account, at, amount) in tail {
                    let id = InstitutionId::parse(institution.clone()).map_err(corrupt_as("entry"))?;
                    let Some(facts) = out.get(&id) else { continue };
                    if at.utc().date_naive() > facts.owed_on {
                        add_to(
                            books.entry(institution).or_default(),
                            &kind,
                            &side,
                            &account,
                            -amount,
                        )?;
                    }
                }
            }
            for (id, facts) in out.iter_mut() {
                if let Some(b) = books.get(id.as_str()) {
                    facts.figures = OwedFigures::of_books(b);
                }
            }
            Ok::<_, $crate::store::StoreError>(out)
        }
    };
}

impl Store {
    /// The facts of the coverage on `as_of` of each institution given (all
    /// of them present in the answer): three queries in all.
    pub async fn coverage_facts(
        &self,
        institutions: &[InstitutionId],
        as_of: NaiveDate,
    ) -> Result<HashMap<InstitutionId, CoverageFacts>> {
        on_reader!(self, |pool, dialect| coverage_facts_on!(
            pool,
            dialect,
            institutions,
            as_of
        )
        .await)
    }

    /// The open (not resolved) alerts of each institution given, by
    /// severity: (institution, red, yellow), counted by the database
    /// (institutions without any are left out).
    pub async fn open_alert_counts(
        &self,
        institutions: &[InstitutionId],
    ) -> Result<HashMap<InstitutionId, (u32, u32)>> {
        if institutions.is_empty() {
            return Ok(HashMap::new());
        }
        let rows: Vec<(String, i64, i64)> = on_reader!(self, |pool, dialect| {
            sqlx::query_as(&format!(
                "select institution_id, \
                   cast(sum(case when severity = 'red' then 1 else 0 end) as bigint), \
                   cast(sum(case when severity = 'yellow' then 1 else 0 end) as bigint) \
                 from alerts where institution_id {} and status <> 'resolved' \
                 group by institution_id",
                dialect.in_list(1)
            ))
            .bind(dialect.list(institutions.iter().map(InstitutionId::as_str)))
            .fetch_all(pool)
            .await?
        });
        rows.into_iter()
            .map(|(id, red, yellow)| {
                let id = InstitutionId::parse(id).map_err(corrupt_as("alert"))?;
                let count = |n: i64| u32::try_from(n).unwrap_or(u32::MAX);
                Ok((id, (count(red), count(yellow))))
            })
            .collect()
    }
}
