//! Set-wise reads for jobs that look at many institutions at once (the
//! daily risk scan): one query per kind of record for the whole store, or
//! for a span of institution ids (a streamed scan reads one span at a
//! time), grouped by institution in memory, instead of a dozen round trips
//! per institution. Both dialects; the SQL is shared.

use std::collections::HashMap;

use chrono::NaiveDate;
use sqlx::Row;

use crate::domain::feeds::{AccountKind, BankAccount};
use crate::domain::ids::InstitutionId;
use crate::domain::money::Currency;
use crate::domain::recon::account::{AccountStatements, LastClosing, StatementLine};
use crate::domain::refunds::RefundEvent;
use crate::domain::risk::snapshot::KeptAccount;
use crate::domain::statements::StatementBalances;
use crate::store::feeds::{BalancesRow, LineRow, LINE_COLUMNS};
use crate::store::rows::corrupt_as;
use crate::store::{DbTime, Result, Store};

/// A row of an account's: its key, and the rest as `T` reads it.
#[derive(sqlx::FromRow)]
struct Keyed<T> {
    institution_id: String,
    bank_id: String,
    account_no: String,
    #[sqlx(flatten)]
    row: T,
}

impl<T> Keyed<T> {
    fn key(&self) -> AccountKey {
        (
            self.institution_id.clone(),
            self.bank_id.clone(),
            self.account_no.clone(),
        )
    }
}

/// (institution, bank, account number)
pub type AccountKey = (String, String, String);

/// A line as [`Store::statement_lines_kept_in`] reads it: whether a kept
/// match claims it, and whether that match settles entries.
#[derive(sqlx::FromRow)]
struct KeptLineRow {
    #[sqlx(flatten)]
    line: Keyed<LineRow>,
    claimed: bool,
    settles: bool,
}

/// An institution's events: (seq, kind, day, note, recorded by).
pub type EventRow = (i64, String, NaiveDate, Option<String>, String);

/// The institutions whose ids lie between `first` and `last`, both
/// included, in the database's order of ids (the order
/// [`Store::institutions`] lists them in; PostgreSQL's collation need not
/// be Rust's): the slice of the store a streamed scan reads at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdSpan<'a> {
    pub first: &'a str,
    pub last: &'a str,
}

impl<'a> IdSpan<'a> {
    /// One institution's records.
    pub fn one(id: &'a InstitutionId) -> Self {
        IdSpan {
            first: id.as_str(),
            last: id.as_str(),
        }
    }
}

/// The condition that keeps `column` within a span (binding `$n` and
/// `$n + 1`), prefixed by `glue` (`where`, `and`); nothing without one.
pub(crate) fn within(span: Option<IdSpan<'_>>, glue: &str, column: &str, n: usize) -> String {
    match span {
        Some(_) => format!(" {glue} {column} between ${n} and ${}", n + 1),
        None => String::new(),
    }
}

/// Runs `$sql` on either dialect, the span's ends bound, and reads each
/// row with the `row!` macro in scope.
macro_rules! fetch_all {
    ($store:expr, $sql:expr, $span:expr) => {
        on_pool!($store, |pool| bind_span!(sqlx::query($sql), $span)
            .fetch_all(pool)
            .await?
            .into_iter()
            .map(|r| row!(r))
            .collect::<Result<Vec<_>>>()?)
    };
}

impl Store {
    /// Every supervised account (of a span, or all), by institution, bank
    /// and number.
    pub async fn supervised_accounts_in(
        &self,
        span: Option<IdSpan<'_>>,
    ) -> Result<Vec<BankAccount>> {
        let sql = format!(
            "select institution_id, bank_id, account_no, kind, currency from bank_accounts{} \
             order by institution_id, bank_id, account_no",
            within(span, "where", "institution_id", 1)
        );
        macro_rules! row {
            ($r:expr) => {{
                let r = $r;
                Ok(BankAccount {
                    institution: InstitutionId::parse(r.try_get::<String, _>(0)?)
                        .map_err(corrupt_as("bank account"))?,
                    bank: r.try_get(1)?,
                    account_no: r.try_get(2)?,
                    kind: AccountKind::parse(&r.try_get::<String, _>(3)?)
                        .map_err(corrupt_as("bank account"))?,
                    currency: r
                        .try_get::<String, _>(4)?
                        .parse::<Currency>()
                        .map_err(corrupt_as("bank account"))?,
                })
            }};
        }
        Ok(fetch_all!(self, &sql, span))
    }

    /// The day each supervised account was registered, by (institution,
    /// bank, account number): the start of the grace a new account has
    /// before its first statement is missing.
    pub async fn account_registrations(
        &self,
        span: Option<IdSpan<'_>>,
    ) -> Result<HashMap<AccountKey, NaiveDate>> {
        let sql = format!(
            "select institution_id, bank_id, account_no, created_at from bank_accounts{}",
            within(span, "where", "institution_id", 1)
        );
        let rows: Vec<(String, String, String, DbTime)> = on_reader!(self, |pool| {
            bind_span!(sqlx::query_as(&sql), span)
                .fetch_all(pool)
                .await?
        });
        Ok(rows
            .into_iter()
            .map(|(i, b, a, at)| ((i, b, a), at.utc().date_naive()))
            .collect())
    }

    /// [`Store::statement_lines`] of every account (of a span, or all) at
    /// once.
    pub async fn statement_lines_in(
        &self,
        span: Option<IdSpan<'_>>,
    ) -> Result<HashMap<AccountKey, AccountStatements>> {
        let lines_sql = format!(
            "select l.institution_id, l.bank_id, l.account_no, {LINE_COLUMNS} \
             from bank_lines l join bank_statements s \
               on s.institution_id = l.institution_id and s.bank_id = l.bank_id \
               and s.account_no = l.account_no and s.statement_key = l.statement_key{} \
             order by l.institution_id, l.bank_id, l.account_no, s.provisional, \
               s.closing_date, l.statement_key, l.line_no",
            within(span, "where", "l.institution_id", 1)
        );
        let lines: Vec<Keyed<LineRow>> =
            on_reader!(self, |pool| bind_span!(sqlx::query_as(&lines_sql), span)
                .fetch_all(pool)
                .await?);
        let mut all = self.statement_balances_in(span).await?;
        for l in lines {
            let s = all.entry(l.key()).or_default();
            if l.row.provisional {
                s.intraday.push(StatementLine::try_from(l.row)?);
            } else {
                s.lines.push(StatementLine::try_from(l.row)?);
            }
        }
        Ok(all)
    }

    /// Every end-of-day statement's balances and the latest closing of
    /// every account (of a span, or all) with statements, without lines.
    pub async fn statement_balances_in(
        &self,
        span: Option<IdSpan<'_>>,
    ) -> Result<HashMap<AccountKey, AccountStatements>> {
        let statements_sql = format!(
            "select institution_id, bank_id, account_no, statement_key, opening_minor, \
               opening_date, closing_minor, closing_date from bank_statements \
             where not provisional{} \
             order by institution_id, bank_id, account_no, closing_date, received_at, \
               statement_key",
            within(span, "and", "institution_id", 1)
        );
        let statements: Vec<Keyed<BalancesRow>> = on_reader!(self, |pool| bind_span!(
            sqlx::query_as(&statements_sql),
            span
        )
        .fetch_all(pool)
        .await?);
        let mut all: HashMap<AccountKey, AccountStatements> = HashMap::new();
        for b in statements {
            let s = all.entry(b.key()).or_default();
            let statement = StatementBalances::from(b.row);
            // Ordered by closing date then arrival: the last one with a
            // closing is the latest closing, as `statement_lines` says.
            if let Some((minor, date)) = statement.closing {
                s.closing = Some(LastClosing {
                    statement_key: statement.key.clone(),
                    balance_minor: minor,
                    date,
                });
            }
            s.statements.push(statement);
        }
        for s in all.values_mut() {
            s.statements.sort_by(|a, b| {
                let day = |x: &StatementBalances| x.closing.map(|c| c.1);
                day(a).cmp(&day(b)).then_with(|| a.key.cmp(&b.key))
            });
        }
        Ok(all)
    }

    /// What the daily scan reads of the banks' records beside
    /// reconciliation's kept matches ([`KeptAccount`]), for every account
    /// (of a span, or all): the lines of the statements that are intraday,
    /// that close on or after `from`, or that hold a line no kept match
    /// claims (each of them whole); which of those lines a kept match
    /// claims, and whether that match settles entries; and the entries on
    /// or after `from` a kept match on the account claims. Claimed lines of
    /// statements closing before `from` stay in the database. The
    /// statements' balances are [`Store::statement_balances_in`]'s: the
    /// lines come without them.
    pub async fn statement_lines_kept_in(
        &self,
        span: Option<IdSpan<'_>>,
        from: NaiveDate,
    ) -> Result<HashMap<AccountKey, (AccountStatements, KeptAccount)>> {
        let line_of = |t: &str, l: &str| {
            format!(
                "{t}.institution_id = {l}.institution_id and {t}.bank_id = {l}.bank_id \
                 and {t}.account_no = {l}.account_no and {t}.statement_key = {l}.statement_key"
            )
        };
        let lines_sql = format!(
            "with open_statements as (\
               select distinct o.institution_id, o.bank_id, o.account_no, o.statement_key \
               from bank_lines o where not exists (select 1 from recon_line_claims oc \
                 where {oc_o} and oc.line_no = o.line_no){span_o}) \
             select l.institution_id, l.bank_id, l.account_no, {LINE_COLUMNS}, \
               c.match_id is not null as claimed, \
               (c.match_id is not null and exists (select 1 from recon_entry_claims ec \
                 where ec.institution_id = c.institution_id and ec.match_id = c.match_id)) \
                 as settles \
             from bank_lines l join bank_statements s on {s_l} \
               left join recon_line_claims c on {c_l} and c.line_no = l.line_no \
             where (s.provisional or s.closing_date is null or s.closing_date >= $1 \
               or exists (select 1 from open_statements os where {os_l})){span_l} \
             order by l.institution_id, l.bank_id, l.account_no, s.provisional, \
               s.closing_date, l.statement_key, l.line_no",
            oc_o = line_of("oc", "o"),
            s_l = line_of("s", "l"),
            c_l = line_of("c", "l"),
            os_l = line_of("os", "l"),
            span_o = within(span, "and", "o.institution_id", 2),
            span_l = within(span, "and", "l.institution_id", 2),
        );
        let settled_sql = format!(
            "select e.institution_id, m.bank_id, m.account_no, e.seq from entries e \
               join recon_entry_claims c on c.institution_id = e.institution_id \
                 and c.entry_seq = e.seq \
               join recon_matches m on m.institution_id = c.institution_id \
                 and m.match_id = c.match_id \
             where e.occurred_at >= $1{}",
            within(span, "and", "e.institution_id", 2)
        );
        let since = DbTime::from(from.and_time(chrono::NaiveTime::MIN).and_utc());
        // (institution, bank, account number, entry seq)
        type SettledRow = (String, String, String, i64);
        // Planned afresh for their parameters on each run (`persistent(false)`,
        // as every read of the daily scan that joins kept matches or sums):
        // run once a day, a plan cached on a connection while the tables
        // were small is kept as long as no ANALYZE invalidates it, and on
        // PostgreSQL took seconds a statement (BENCHMARKS.md, "The old
        // lessons' sums kept").
        let (lines, settled): (Vec<KeptLineRow>, Vec<SettledRow>) = on_reader!(self, |pool| (
            bind_span!(
                sqlx::query_as(&lines_sql).persistent(false).bind(from),
                span
            )
            .fetch_all(pool)
            .await?,
            bind_span!(
                sqlx::query_as(&settled_sql).persistent(false).bind(since),
                span
            )
            .fetch_all(pool)
            .await?,
        ));
        let mut all: HashMap<AccountKey, (AccountStatements, KeptAccount)> = HashMap::new();
        for l in lines {
            let (s, kept) = all.entry(l.line.key()).or_default();
            let provisional = l.line.row.provisional;
            let line = StatementLine::try_from(l.line.row)?;
            if l.claimed {
                let key = (line.statement_key.clone(), line.line_no);
                if l.settles && line.amount_minor < 0 {
                    kept.instructed.insert(key.clone());
                }
                kept.claimed.insert(key);
            }
            if provisional {
                s.intraday.push(line);
            } else {
                s.lines.push(line);
            }
        }
        for (institution, bank, account_no, seq) in settled {
            let (_, kept) = all.entry((institution, bank, account_no)).or_default();
            kept.settled.insert(seq);
        }
        Ok(all)
    }

    /// Every refund's moves (of a span's institutions, or all), by
    /// (institution, refund id), oldest first.
    pub async fn refund_trails_in(
        &self,
        span: Option<IdSpan<'_>>,
    ) -> Result<HashMap<(String, String), Vec<RefundEvent>>> {
        let sql = format!(
            "select institution_id, refund_id, cast(seq as bigint), at, actor, state, detail \
             from refund_events{} order by institution_id, refund_id, seq",
            within(span, "where", "institution_id", 1)
        );
        type Row = (String, String, i64, DbTime, String, String, Option<String>);
        let rows: Vec<Row> = on_reader!(self, |pool| bind_span!(sqlx::query_as(&sql), span)
            .fetch_all(pool)
            .await?);
        let rows = rows.into_iter().map(|r| {
            (
                (r.0, r.1),
                RefundEvent {
                    seq: r.2,
                    at: r.3.utc(),
                    actor: r.4,
                    state: r.5,
                    detail: r.6,
                },
            )
        });
        let mut all: HashMap<(String, String), Vec<RefundEvent>> = HashMap::new();
        for (key, event) in rows {
            all.entry(key).or_default().push(event);
        }
        Ok(all)
    }

    /// Every institution's events (of a span, or all), by institution,
    /// oldest first.
    pub async fn events_in(
        &self,
        span: Option<IdSpan<'_>>,
    ) -> Result<HashMap<String, Vec<EventRow>>> {
        let sql = format!(
            "select institution_id, cast(seq as bigint), kind, occurred_on, note, recorded_by \
             from institution_events{} order by institution_id, seq",
            within(span, "where", "institution_id", 1)
        );
        macro_rules! row {
            ($r:expr) => {{
                let r = $r;
                Ok((
                    r.try_get::<String, _>(0)?,
                    (
                        r.try_get(1)?,
                        r.try_get(2)?,
                        r.try_get(3)?,
                        r.try_get(4)?,
                        r.try_get(5)?,
                    ),
                ))
            }};
        }
        let rows: Vec<(String, EventRow)> = fetch_all!(self, &sql, span);
        let mut all: HashMap<String, Vec<EventRow>> = HashMap::new();
        for (institution, event) in rows {
            all.entry(institution).or_default().push(event);
        }
        Ok(all)
    }
}
