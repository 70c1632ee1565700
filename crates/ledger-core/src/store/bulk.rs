//! Set-wise reads for jobs that look at every institution at once (the
//! daily risk scan): one query per kind of record for the whole store,
//! grouped by institution in memory, instead of a dozen round trips per
//! institution. Both dialects; the SQL is shared.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::Row;

use crate::domain::feeds::{AccountKind, BankAccount};
use crate::domain::ids::InstitutionId;
use crate::domain::money::Currency;
use crate::domain::refunds::RefundEvent;
use crate::domain::statements::StatementBalances;
use crate::store::feeds::{StatementLines, StoredLine};
use crate::store::{Result, Store, StoreError};

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

/// (institution, bank, account number)
pub type AccountKey = (String, String, String);

/// An institution's events: (seq, kind, day, note, recorded by).
pub type EventRow = (i64, String, NaiveDate, Option<String>, String);

macro_rules! fetch_all {
    ($store:expr, $sql:expr) => {
        match $store {
            Store::Postgres(s) => sqlx::query($sql)
                .fetch_all(s.pool())
                .await?
                .into_iter()
                .map(|r| row!(r))
                .collect::<Result<Vec<_>>>()?,
            Store::Sqlite(s) => sqlx::query($sql)
                .fetch_all(s.pool())
                .await?
                .into_iter()
                .map(|r| row!(r))
                .collect::<Result<Vec<_>>>()?,
        }
    };
}

impl Store {
    /// Every supervised account, by institution, bank and number.
    pub async fn supervised_accounts_all(&self) -> Result<Vec<BankAccount>> {
        let sql = "select institution_id, bank_id, account_no, kind, currency from bank_accounts \
                   order by institution_id, bank_id, account_no";
        macro_rules! row {
            ($r:expr) => {{
                let r = $r;
                Ok(BankAccount {
                    institution: InstitutionId::parse(r.try_get::<String, _>(0)?)
                        .map_err(corrupt)?,
                    bank: r.try_get(1)?,
                    account_no: r.try_get(2)?,
                    kind: AccountKind::parse(&r.try_get::<String, _>(3)?).map_err(corrupt)?,
                    currency: r
                        .try_get::<String, _>(4)?
                        .parse::<Currency>()
                        .map_err(corrupt)?,
                })
            }};
        }
        Ok(fetch_all!(self, sql))
    }

    /// The day each supervised account was registered, by (institution,
    /// bank, account number): the start of the grace a new account has
    /// before its first statement is missing.
    pub async fn account_registrations(
        &self,
        institution: Option<&InstitutionId>,
    ) -> Result<HashMap<AccountKey, NaiveDate>> {
        let all = "select institution_id, bank_id, account_no, created_at from bank_accounts";
        let one = "select institution_id, bank_id, account_no, created_at from bank_accounts \
                   where institution_id = $1";
        let sql = if institution.is_some() { one } else { all };
        // Bound only when the statement names it.
        macro_rules! query {
            ($row:ty) => {{
                let q = sqlx::query_as::<_, $row>(sql);
                match institution {
                    Some(i) => q.bind(i.as_str()),
                    None => q,
                }
            }};
        }
        Ok(match self {
            Store::Postgres(s) => query!((String, String, String, DateTime<Utc>))
                .fetch_all(s.pool())
                .await?
                .into_iter()
                .map(|(i, b, a, at)| ((i, b, a), at.date_naive()))
                .collect(),
            Store::Sqlite(s) => query!((String, String, String, i64))
                .fetch_all(s.pool())
                .await?
                .into_iter()
                .map(|(i, b, a, at)| {
                    Ok(((i, b, a), crate::store::time::from_micros(at)?.date_naive()))
                })
                .collect::<Result<HashMap<_, _>>>()?,
        })
    }

    /// [`Store::statement_lines`] of every account at once.
    pub async fn statement_lines_all(&self) -> Result<HashMap<AccountKey, StatementLines>> {
        let lines_sql = "select l.institution_id, l.bank_id, l.account_no, l.statement_key, \
               cast(l.line_no as bigint), l.amount_minor, l.booking_date, l.value_date, l.status, \
               l.bank_ref, l.end_to_end_id, l.remittance, l.counterparty_name, l.counterparty_account, \
               l.reversal, s.provisional from bank_lines l join bank_statements s on s.institution_id = l.institution_id \
               and s.bank_id = l.bank_id and s.account_no = l.account_no and s.statement_key = l.statement_key \
             order by l.institution_id, l.bank_id, l.account_no, s.provisional, s.closing_date, l.statement_key, l.line_no";
        let statements_sql = "select institution_id, bank_id, account_no, statement_key, opening_minor, \
               opening_date, closing_minor, closing_date from bank_statements where not provisional \
             order by institution_id, bank_id, account_no, closing_date, received_at, statement_key";
        let mut all: HashMap<AccountKey, StatementLines> = HashMap::new();
        macro_rules! row {
            ($r:expr) => {{
                let r = $r;
                let key: AccountKey = (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?);
                let line = StoredLine {
                    statement_key: r.try_get(3)?,
                    line_no: r.try_get(4)?,
                    amount_minor: r.try_get(5)?,
                    booking_date: r.try_get(6)?,
                    value_date: r.try_get(7)?,
                    status: r.try_get(8)?,
                    bank_ref: r.try_get(9)?,
                    end_to_end_id: r.try_get(10)?,
                    remittance: r.try_get(11)?,
                    counterparty_name: r.try_get(12)?,
                    counterparty_account: r.try_get(13)?,
                    reversal: r.try_get(14)?,
                };
                Ok((key, line, r.try_get::<bool, _>(15)?))
            }};
        }
        let lines: Vec<(AccountKey, StoredLine, bool)> = fetch_all!(self, lines_sql);
        for (key, line, provisional) in lines {
            let s = all.entry(key).or_default();
            if provisional {
                s.intraday.push(line);
            } else {
                s.lines.push(line);
            }
        }
        macro_rules! row {
            ($r:expr) => {{
                let r = $r;
                let key: AccountKey = (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?);
                let pair = |minor: Option<i64>, date: Option<NaiveDate>| minor.zip(date);
                Ok((
                    key,
                    StatementBalances {
                        key: r.try_get(3)?,
                        opening: pair(r.try_get(4)?, r.try_get(5)?),
                        closing: pair(r.try_get(6)?, r.try_get(7)?),
                    },
                ))
            }};
        }
        let statements: Vec<(AccountKey, StatementBalances)> = fetch_all!(self, statements_sql);
        for (key, statement) in statements {
            let s = all.entry(key).or_default();
            // Ordered by closing date then arrival: the last one with a
            // closing is the latest closing, as `statement_lines` says.
            if let Some((minor, date)) = statement.closing {
                s.closing = Some((statement.key.clone(), minor, date));
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

    /// Every refund's moves, by (institution, refund id), oldest first.
    pub async fn refund_trails_all(&self) -> Result<HashMap<(String, String), Vec<RefundEvent>>> {
        let sql =
            "select institution_id, refund_id, cast(seq as bigint), at, actor, state, detail \
                   from refund_events order by institution_id, refund_id, seq";
        macro_rules! event {
            ($r:expr, $at:expr) => {{
                let r = $r;
                Ok((
                    (r.try_get::<String, _>(0)?, r.try_get::<String, _>(1)?),
                    RefundEvent {
                        seq: r.try_get(2)?,
                        at: $at,
                        actor: r.try_get(4)?,
                        state: r.try_get(5)?,
                        detail: r.try_get(6)?,
                    },
                ))
            }};
        }
        let rows: Vec<((String, String), RefundEvent)> = match self {
            Store::Postgres(s) => sqlx::query(sql)
                .fetch_all(s.pool())
                .await?
                .into_iter()
                .map(|r| event!(&r, r.try_get::<DateTime<Utc>, _>(3)?))
                .collect::<Result<_>>()?,
            Store::Sqlite(s) => sqlx::query(sql)
                .fetch_all(s.pool())
                .await?
                .into_iter()
                .map(|r| {
                    event!(
                        &r,
                        crate::store::time::from_micros(r.try_get::<i64, _>(3)?)?
                    )
                })
                .collect::<Result<_>>()?,
        };
        let mut all: HashMap<(String, String), Vec<RefundEvent>> = HashMap::new();
        for (key, event) in rows {
            all.entry(key).or_default().push(event);
        }
        Ok(all)
    }

    /// Every institution's events, by institution, oldest first.
    pub async fn events_all(&self) -> Result<HashMap<String, Vec<EventRow>>> {
        let sql =
            "select institution_id, cast(seq as bigint), kind, occurred_on, note, recorded_by \
                   from institution_events order by institution_id, seq";
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
        let rows: Vec<(String, EventRow)> = fetch_all!(self, sql);
        let mut all: HashMap<String, Vec<EventRow>> = HashMap::new();
        for (institution, event) in rows {
            all.entry(institution).or_default().push(event);
        }
        Ok(all)
    }
}
