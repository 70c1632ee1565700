//! Bank feeds in the store: banks, supervised accounts, and the statements
//! and lines the banks report, ingested idempotently per file and per
//! statement, both dialects.

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::Row;

use crate::domain::chain::{statement_digest, statement_key, truncate_to_micros};
use crate::domain::error::LedgerError;
use crate::domain::feeds::{AccountKind, BankAccount, FeedStatement, IngestReport};
use crate::domain::ids::InstitutionId;
use crate::domain::money::Currency;
use crate::domain::statements::StatementBalances;
use crate::store::{Result, Store, StoreError};

/// The closing balance of the newest final statement stored for an account.
type LastClosing = Option<(String, i64, NaiveDate)>;

/// One stored bank line, as reconciliation reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredLine {
    pub statement_key: String,
    pub line_no: i64,
    pub amount_minor: i64,
    pub booking_date: Option<NaiveDate>,
    pub value_date: Option<NaiveDate>,
    pub status: String,
    pub bank_ref: Option<String>,
    pub end_to_end_id: Option<String>,
    pub remittance: Option<String>,
    pub counterparty_name: Option<String>,
    pub counterparty_account: Option<String>,
    pub reversal: bool,
}

/// An account's end-of-day lines and its latest closing balance
/// (statement key, minor units, date), the balances of every end-of-day
/// statement (for the chain check and the per-day figures), and the lines
/// of intraday reports (provisional until an end-of-day statement confirms
/// them).
#[derive(Debug, Clone, Default)]
pub struct StatementLines {
    pub lines: Vec<StoredLine>,
    pub closing: LastClosing,
    pub statements: Vec<StatementBalances>,
    pub intraday: Vec<StoredLine>,
}

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

impl Store {
    pub async fn register_bank(&self, bank: &str, name: &str) -> Result<()> {
        if bank.trim().is_empty() || bank.len() > 64 {
            return Err(LedgerError::InvalidField {
                field: "bank",
                reason: "1 to 64 characters".into(),
            }
            .into());
        }
        let now = self.now();
        let existing: Option<String> = match self {
            Store::Postgres(s) => {
                sqlx::query("insert into banks (bank_id, name, created_at) values ($1, $2, $3) on conflict do nothing")
                    .bind(bank).bind(name).bind(now).execute(s.pool()).await?;
                sqlx::query_scalar("select name from banks where bank_id = $1")
                    .bind(bank)
                    .fetch_optional(s.pool())
                    .await?
            }
            Store::Sqlite(s) => {
                sqlx::query("insert into banks (bank_id, name, created_at) values (?, ?, ?) on conflict do nothing")
                    .bind(bank).bind(name).bind(now.timestamp_micros()).execute(s.pool()).await?;
                sqlx::query_scalar("select name from banks where bank_id = ?")
                    .bind(bank)
                    .fetch_optional(s.pool())
                    .await?
            }
        };
        if existing.as_deref() != Some(name) {
            return Err(LedgerError::ExistsWithDifferentFields {
                what: "bank",
                id: bank.to_string(),
            }
            .into());
        }
        Ok(())
    }

    /// Registers a supervised account (idempotent). An account number at a
    /// bank belongs to one institution.
    pub async fn register_bank_account(&self, a: &BankAccount) -> Result<()> {
        a.validate()?;
        let institution = self.institution(&a.institution).await?;
        if institution.currency != a.currency {
            return Err(LedgerError::CurrencyMismatch {
                expected: institution.currency,
                found: a.currency,
            }
            .into());
        }
        if !self.bank_exists(&a.bank).await? {
            return Err(LedgerError::UnknownBank {
                bank: a.bank.clone(),
            }
            .into());
        }
        match self.bank_account(&a.bank, &a.account_no).await? {
            Some(existing) if existing == *a => return Ok(()),
            Some(existing) if existing.institution != a.institution => {
                return Err(LedgerError::BankAccountTaken {
                    bank: a.bank.clone(),
                    account: a.account_no.clone(),
                    institution: existing.institution.to_string(),
                }
                .into())
            }
            Some(_) => {
                return Err(LedgerError::ExistsWithDifferentFields {
                    what: "bank account",
                    id: format!("{}/{}", a.bank, a.account_no),
                }
                .into())
            }
            None => {}
        }
        let now = truncate_to_micros(self.now());
        match self {
            Store::Postgres(s) => {
                sqlx::query("insert into bank_accounts (institution_id, bank_id, account_no, kind, currency, created_at) values ($1, $2, $3, $4, $5, $6)")
                    .bind(a.institution.as_str()).bind(&a.bank).bind(&a.account_no).bind(a.kind.code()).bind(a.currency.code()).bind(now)
                    .execute(s.pool()).await?;
            }
            Store::Sqlite(s) => {
                sqlx::query("insert into bank_accounts (institution_id, bank_id, account_no, kind, currency, created_at) values (?, ?, ?, ?, ?, ?)")
                    .bind(a.institution.as_str()).bind(&a.bank).bind(&a.account_no).bind(a.kind.code()).bind(a.currency.code()).bind(now.timestamp_micros())
                    .execute(s.pool()).await?;
            }
        }
        Ok(())
    }

    async fn bank_exists(&self, bank: &str) -> Result<bool> {
        let n: i64 = match self {
            Store::Postgres(s) => {
                sqlx::query_scalar("select count(*) from banks where bank_id = $1")
                    .bind(bank)
                    .fetch_one(s.pool())
                    .await?
            }
            Store::Sqlite(s) => {
                sqlx::query_scalar("select count(*) from banks where bank_id = ?")
                    .bind(bank)
                    .fetch_one(s.pool())
                    .await?
            }
        };
        Ok(n > 0)
    }

    /// The supervised account with this number at this bank, if registered.
    pub async fn bank_account(&self, bank: &str, account_no: &str) -> Result<Option<BankAccount>> {
        let sql = "select institution_id, kind, currency from bank_accounts where bank_id = $1 and account_no = $2";
        let row = match self {
            Store::Postgres(s) => sqlx::query(sql)
                .bind(bank)
                .bind(account_no)
                .fetch_optional(s.pool())
                .await?
                .map(|r| {
                    (
                        r.try_get::<String, _>(0),
                        r.try_get::<String, _>(1),
                        r.try_get::<String, _>(2),
                    )
                }),
            Store::Sqlite(s) => sqlx::query(sql)
                .bind(bank)
                .bind(account_no)
                .fetch_optional(s.pool())
                .await?
                .map(|r| {
                    (
                        r.try_get::<String, _>(0),
                        r.try_get::<String, _>(1),
                        r.try_get::<String, _>(2),
                    )
                }),
        };
        let Some((institution, kind, currency)) = row else {
            return Ok(None);
        };
        Ok(Some(BankAccount {
            institution: InstitutionId::parse(institution?).map_err(corrupt)?,
            bank: bank.to_string(),
            account_no: account_no.to_string(),
            kind: AccountKind::parse(&kind?).map_err(corrupt)?,
            currency: currency?.parse::<Currency>().map_err(corrupt)?,
        }))
    }

    /// Stores one file's statements in one transaction: a file seen before
    /// changes nothing; a statement already held with the same content is
    /// skipped, with other content refused.
    pub async fn ingest_file(
        &self,
        bank: &str,
        file_sha256: &str,
        format: &str,
        byte_len: u64,
        statements: &[FeedStatement],
    ) -> Result<IngestReport> {
        if !self.bank_exists(bank).await? {
            return Err(LedgerError::UnknownBank {
                bank: bank.to_string(),
            }
            .into());
        }
        // Resolve every account first: an unknown one refuses the file.
        let mut owners = Vec::with_capacity(statements.len());
        for (i, s) in statements.iter().enumerate() {
            let at = |error| StoreError::Rejected {
                index: Some(i),
                error,
            };
            let account = self
                .bank_account(bank, &s.account_no)
                .await?
                .ok_or_else(|| {
                    at(LedgerError::UnknownBankAccount {
                        bank: bank.to_string(),
                        account: s.account_no.clone(),
                    })
                })?;
            if account.currency != s.currency {
                return Err(at(LedgerError::CurrencyMismatch {
                    expected: account.currency,
                    found: s.currency,
                }));
            }
            owners.push(account.institution);
        }
        let now = self.now();
        match self {
            Store::Postgres(s) => {
                postgres_ingest(
                    s.pool(),
                    bank,
                    file_sha256,
                    format,
                    byte_len,
                    statements,
                    &owners,
                    now,
                )
                .await
            }
            Store::Sqlite(s) => {
                sqlite_ingest(
                    s.pool(),
                    bank,
                    file_sha256,
                    format,
                    byte_len,
                    statements,
                    &owners,
                    now,
                )
                .await
            }
        }
    }

    /// The supervised accounts of an institution, by bank and number.
    pub async fn supervised_accounts(
        &self,
        institution: &InstitutionId,
    ) -> Result<Vec<BankAccount>> {
        let sql = "select bank_id, account_no, kind, currency from bank_accounts \
                   where institution_id = $1 order by bank_id, account_no";
        let rows: Vec<(String, String, String, String)> = match self {
            Store::Postgres(s) => {
                sqlx::query_as(sql)
                    .bind(institution.as_str())
                    .fetch_all(s.pool())
                    .await?
            }
            Store::Sqlite(s) => {
                sqlx::query_as(sql)
                    .bind(institution.as_str())
                    .fetch_all(s.pool())
                    .await?
            }
        };
        rows.into_iter()
            .map(|(bank, account_no, kind, currency)| {
                Ok(BankAccount {
                    institution: institution.clone(),
                    bank,
                    account_no,
                    kind: AccountKind::parse(&kind).map_err(corrupt)?,
                    currency: currency.parse::<Currency>().map_err(corrupt)?,
                })
            })
            .collect()
    }

    /// The lines of an account's end-of-day statements, oldest first, with
    /// the latest closing balance and every statement's balances; the lines
    /// of intraday reports apart.
    pub async fn statement_lines(&self, account: &BankAccount) -> Result<StatementLines> {
        let args = (
            account.institution.as_str(),
            account.bank.as_str(),
            account.account_no.as_str(),
        );
        let lines_sql = "select l.statement_key, l.line_no, l.amount_minor, l.booking_date, l.value_date, l.status, \
               l.bank_ref, l.end_to_end_id, l.remittance, l.counterparty_name, l.counterparty_account, \
               l.reversal, s.provisional from bank_lines l join bank_statements s on s.institution_id = l.institution_id \
               and s.bank_id = l.bank_id and s.account_no = l.account_no and s.statement_key = l.statement_key \
             where l.institution_id = $1 and l.bank_id = $2 and l.account_no = $3 \
             order by s.provisional, s.closing_date, l.statement_key, l.line_no";
        let statements_sql =
            "select statement_key, opening_minor, opening_date, closing_minor, closing_date \
             from bank_statements where institution_id = $1 and bank_id = $2 and account_no = $3 \
               and provisional = $4 order by closing_date, statement_key";
        let closing_sql = "select statement_key, closing_minor, closing_date from bank_statements \
             where institution_id = $1 and bank_id = $2 and account_no = $3 and provisional = $4 \
               and closing_minor is not null order by closing_date desc, received_at desc limit 1";
        macro_rules! fetch {
            ($pool:expr) => {{
                let rows = sqlx::query(lines_sql)
                    .bind(args.0)
                    .bind(args.1)
                    .bind(args.2)
                    .fetch_all($pool)
                    .await?;
                let mut lines = Vec::with_capacity(rows.len());
                let mut intraday = Vec::new();
                for r in rows {
                    let provisional: bool = r.try_get(12)?;
                    let into = if provisional {
                        &mut intraday
                    } else {
                        &mut lines
                    };
                    into.push(StoredLine {
                        statement_key: r.try_get(0)?,
                        line_no: r
                            .try_get::<i32, _>(1)
                            .map(i64::from)
                            .or_else(|_| r.try_get::<i64, _>(1))?,
                        amount_minor: r.try_get(2)?,
                        booking_date: r.try_get(3)?,
                        value_date: r.try_get(4)?,
                        status: r.try_get(5)?,
                        bank_ref: r.try_get(6)?,
                        end_to_end_id: r.try_get(7)?,
                        remittance: r.try_get(8)?,
                        counterparty_name: r.try_get(9)?,
                        counterparty_account: r.try_get(10)?,
                        reversal: r.try_get(11)?,
                    });
                }
                let closing = sqlx::query(closing_sql)
                    .bind(args.0)
                    .bind(args.1)
                    .bind(args.2)
                    .bind(false)
                    .fetch_optional($pool)
                    .await?
                    .map(|r| -> Result<(String, i64, NaiveDate)> {
                        Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?))
                    })
                    .transpose()?;
                let mut statements = Vec::new();
                for r in sqlx::query(statements_sql)
                    .bind(args.0)
                    .bind(args.1)
                    .bind(args.2)
                    .bind(false)
                    .fetch_all($pool)
                    .await?
                {
                    let pair = |minor: Option<i64>, date: Option<NaiveDate>| minor.zip(date);
                    statements.push(StatementBalances {
                        key: r.try_get(0)?,
                        opening: pair(r.try_get(1)?, r.try_get(2)?),
                        closing: pair(r.try_get(3)?, r.try_get(4)?),
                    });
                }
                StatementLines {
                    lines,
                    closing,
                    statements,
                    intraday,
                }
            }};
        }
        Ok(match self {
            Store::Postgres(s) => fetch!(s.pool()),
            Store::Sqlite(s) => fetch!(s.pool()),
        })
    }

    /// Number of bank lines held for an institution (all its accounts).
    pub async fn bank_line_count(&self, institution: &InstitutionId) -> Result<i64> {
        Ok(match self {
            Store::Postgres(s) => {
                sqlx::query_scalar("select count(*) from bank_lines where institution_id = $1")
                    .bind(institution.as_str())
                    .fetch_one(s.pool())
                    .await?
            }
            Store::Sqlite(s) => {
                sqlx::query_scalar("select count(*) from bank_lines where institution_id = ?")
                    .bind(institution.as_str())
                    .fetch_one(s.pool())
                    .await?
            }
        })
    }
}

fn chain_warning(s: &FeedStatement, last: LastClosing) -> Option<String> {
    let (opening, _) = s.opening?;
    let (prev_key, closing, date) = last?;
    (opening != closing).then(|| {
        format!(
            "account {}: statement {} opens at {opening} (minor units) but the last statement held, {prev_key} closing on {date}, closed at {closing}: a statement is missing or wrong",
            s.account_no,
            s.key()
        )
    })
}

fn duplicate(s: &FeedStatement) -> StoreError {
    LedgerError::ExistsWithDifferentFields {
        what: "bank statement",
        id: format!("{} of account {}", s.key(), s.account_no),
    }
    .into()
}

#[allow(clippy::too_many_arguments)]
async fn postgres_ingest(
    pool: &sqlx::PgPool,
    bank: &str,
    sha: &str,
    format: &str,
    byte_len: u64,
    statements: &[FeedStatement],
    owners: &[InstitutionId],
    now: DateTime<Utc>,
) -> Result<IngestReport> {
    let mut report = IngestReport::default();
    let mut tx = pool.begin().await?;
    let inserted = sqlx::query(
        "insert into feed_files (bank_id, file_sha256, format, byte_len, statements, received_at) \
         values ($1, $2, $3, $4, $5, $6) on conflict do nothing",
    )
    .bind(bank)
    .bind(sha)
    .bind(format)
    .bind(i64::try_from(byte_len).unwrap_or(i64::MAX))
    .bind(i32::try_from(statements.len()).unwrap_or(i32::MAX))
    .bind(now)
    .execute(&mut *tx)
    .await?;
    if inserted.rows_affected() == 0 {
        report.file_seen_before = true;
        return Ok(report);
    }
    // Lock the record chains this file extends in institution id order
    // first, so two files naming the same institutions in other orders
    // cannot deadlock on them.
    let mut chains: Vec<&str> = owners.iter().map(InstitutionId::as_str).collect();
    chains.sort_unstable();
    chains.dedup();
    for id in chains {
        sqlx::query(
            "insert into record_heads (institution_id, last_seq, last_hash) values ($1, 0, $2) \
             on conflict (institution_id) do nothing",
        )
        .bind(id)
        .bind(crate::domain::chain::GENESIS_HASH)
        .execute(&mut *tx)
        .await?;
        sqlx::query("select 1 from record_heads where institution_id = $1 for update")
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    for (s, owner) in statements.iter().zip(owners) {
        // Serialise ingests of one account so the chain check sees its predecessor.
        sqlx::query("select 1 from bank_accounts where institution_id = $1 and bank_id = $2 and account_no = $3 for update")
            .bind(owner.as_str()).bind(bank).bind(&s.account_no).execute(&mut *tx).await?;
        let hash = s.content_hash();
        let held: Option<String> = sqlx::query_scalar(
            "select content_hash from bank_statements where institution_id = $1 and bank_id = $2 and account_no = $3 and statement_key = $4",
        )
        .bind(owner.as_str()).bind(bank).bind(&s.account_no).bind(s.key())
        .fetch_optional(&mut *tx).await?;
        match held {
            Some(h) if h == hash => {
                report.statements_already_held += 1;
                continue;
            }
            Some(_) => return Err(duplicate(s)),
            None => {}
        }
        if !s.provisional {
            let last = sqlx::query(
                "select statement_key, closing_minor, closing_date from bank_statements \
                 where institution_id = $1 and bank_id = $2 and account_no = $3 and not provisional \
                   and closing_minor is not null and closing_date <= $4 \
                 order by closing_date desc, received_at desc limit 1",
            )
            .bind(owner.as_str()).bind(bank).bind(&s.account_no)
            .bind(s.opening.map(|o| o.1).unwrap_or(NaiveDate::MAX))
            .fetch_optional(&mut *tx).await?
            .map(|r| -> Result<(String, i64, NaiveDate)> { Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)) })
            .transpose()?;
            report.warnings.extend(chain_warning(s, last));
        }
        sqlx::query(
            "insert into bank_statements (institution_id, bank_id, account_no, statement_key, statement_id, sequence, \
               format, currency, provisional, opening_minor, opening_date, closing_minor, closing_date, line_count, \
               content_hash, file_sha256, message, received_at) \
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)",
        )
        .bind(owner.as_str()).bind(bank).bind(&s.account_no).bind(s.key()).bind(&s.statement_id).bind(&s.sequence)
        .bind(&s.format).bind(s.currency.code()).bind(s.provisional)
        .bind(s.opening.map(|o| o.0)).bind(s.opening.map(|o| o.1))
        .bind(s.closing.map(|o| o.0)).bind(s.closing.map(|o| o.1))
        .bind(i32::try_from(s.lines.len()).unwrap_or(i32::MAX)).bind(&hash).bind(&s.file_sha256)
        .bind(i32::try_from(s.message).unwrap_or(i32::MAX)).bind(now)
        .execute(&mut *tx).await?;
        let l = &s.lines;
        if !l.is_empty() {
            sqlx::query(
                "insert into bank_lines (institution_id, bank_id, account_no, statement_key, line_no, amount_minor, \
                   booking_date, value_date, status, bank_ref, end_to_end_id, remittance, counterparty_name, \
                   counterparty_account, bank_tx_code, reversal, return_reason, details, source_line, source_path) \
                 select $1, $2, $3, $4, * from unnest($5::int[], $6::bigint[], $7::date[], $8::date[], $9::text[], \
                   $10::text[], $11::text[], $12::text[], $13::text[], $14::text[], $15::text[], $16::bool[], \
                   $17::text[], $18::text[], $19::int[], $20::text[])",
            )
            .bind(owner.as_str()).bind(bank).bind(&s.account_no).bind(s.key())
            .bind((0..l.len()).map(|i| i32::try_from(i).unwrap_or(i32::MAX)).collect::<Vec<_>>())
            .bind(l.iter().map(|x| x.amount_minor).collect::<Vec<_>>())
            .bind(l.iter().map(|x| x.booking_date).collect::<Vec<_>>())
            .bind(l.iter().map(|x| x.value_date).collect::<Vec<_>>())
            .bind(l.iter().map(|x| x.status.as_str()).collect::<Vec<_>>())
            .bind(l.iter().map(|x| x.bank_ref.as_deref()).collect::<Vec<_>>())
            .bind(l.iter().map(|x| x.end_to_end_id.as_deref()).collect::<Vec<_>>())
            .bind(l.iter().map(|x| x.remittance.as_deref()).collect::<Vec<_>>())
            .bind(l.iter().map(|x| x.counterparty_name.as_deref()).collect::<Vec<_>>())
            .bind(l.iter().map(|x| x.counterparty_account.as_deref()).collect::<Vec<_>>())
            .bind(l.iter().map(|x| x.bank_tx_code.as_deref()).collect::<Vec<_>>())
            .bind(l.iter().map(|x| x.reversal).collect::<Vec<_>>())
            .bind(l.iter().map(|x| x.return_reason.as_deref()).collect::<Vec<_>>())
            .bind(l.iter().map(|x| x.details.as_str()).collect::<Vec<_>>())
            .bind(l.iter().map(|x| x.source_line.and_then(|v| i32::try_from(v).ok())).collect::<Vec<_>>())
            .bind(l.iter().map(|x| x.source_path.as_deref()).collect::<Vec<_>>())
            .execute(&mut *tx).await?;
        }
        let digest = statement_digest(owner.as_str(), bank, s, now.timestamp_micros());
        seal_record!(
            tx,
            owner.as_str(),
            "statement",
            statement_key(bank, &s.account_no, &s.key()),
            digest
        );
        report.statements_stored += 1;
        report.lines_stored += l.len() as u64;
    }
    tx.commit().await?;
    Ok(report)
}

#[allow(clippy::too_many_arguments)]
async fn sqlite_ingest(
    pool: &sqlx::SqlitePool,
    bank: &str,
    sha: &str,
    format: &str,
    byte_len: u64,
    statements: &[FeedStatement],
    owners: &[InstitutionId],
    now: DateTime<Utc>,
) -> Result<IngestReport> {
    let mut report = IngestReport::default();
    let now = now.timestamp_micros();
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let inserted = sqlx::query(
        "insert into feed_files (bank_id, file_sha256, format, byte_len, statements, received_at) \
         values (?, ?, ?, ?, ?, ?) on conflict do nothing",
    )
    .bind(bank)
    .bind(sha)
    .bind(format)
    .bind(i64::try_from(byte_len).unwrap_or(i64::MAX))
    .bind(i64::try_from(statements.len()).unwrap_or(i64::MAX))
    .bind(now)
    .execute(&mut *tx)
    .await?;
    if inserted.rows_affected() == 0 {
        report.file_seen_before = true;
        return Ok(report);
    }
    for (s, owner) in statements.iter().zip(owners) {
        let hash = s.content_hash();
        let held: Option<String> = sqlx::query_scalar(
            "select content_hash from bank_statements where institution_id = ? and bank_id = ? and account_no = ? and statement_key = ?",
        )
        .bind(owner.as_str()).bind(bank).bind(&s.account_no).bind(s.key())
        .fetch_optional(&mut *tx).await?;
        match held {
            Some(h) if h == hash => {
                report.statements_already_held += 1;
                continue;
            }
            Some(_) => return Err(duplicate(s)),
            None => {}
        }
        if !s.provisional {
            let last = sqlx::query(
                "select statement_key, closing_minor, closing_date from bank_statements \
                 where institution_id = ? and bank_id = ? and account_no = ? and provisional = 0 \
                   and closing_minor is not null and closing_date <= ? \
                 order by closing_date desc, received_at desc limit 1",
            )
            .bind(owner.as_str())
            .bind(bank)
            .bind(&s.account_no)
            .bind(s.opening.map(|o| o.1).unwrap_or(NaiveDate::MAX))
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| -> Result<(String, i64, NaiveDate)> {
                Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?))
            })
            .transpose()?;
            report.warnings.extend(chain_warning(s, last));
        }
        sqlx::query(
            "insert into bank_statements (institution_id, bank_id, account_no, statement_key, statement_id, sequence, \
               format, currency, provisional, opening_minor, opening_date, closing_minor, closing_date, line_count, \
               content_hash, file_sha256, message, received_at) \
             values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(owner.as_str()).bind(bank).bind(&s.account_no).bind(s.key()).bind(&s.statement_id).bind(&s.sequence)
        .bind(&s.format).bind(s.currency.code()).bind(s.provisional)
        .bind(s.opening.map(|o| o.0)).bind(s.opening.map(|o| o.1))
        .bind(s.closing.map(|o| o.0)).bind(s.closing.map(|o| o.1))
        .bind(i64::try_from(s.lines.len()).unwrap_or(i64::MAX)).bind(&hash).bind(&s.file_sha256)
        .bind(i64::from(s.message)).bind(now)
        .execute(&mut *tx).await?;
        for (n, x) in s.lines.iter().enumerate() {
            sqlx::query(
                "insert into bank_lines (institution_id, bank_id, account_no, statement_key, line_no, amount_minor, \
                   booking_date, value_date, status, bank_ref, end_to_end_id, remittance, counterparty_name, \
                   counterparty_account, bank_tx_code, reversal, return_reason, details, source_line, source_path) \
                 values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(owner.as_str()).bind(bank).bind(&s.account_no).bind(s.key())
            .bind(i64::try_from(n).unwrap_or(i64::MAX)).bind(x.amount_minor)
            .bind(x.booking_date).bind(x.value_date).bind(&x.status).bind(&x.bank_ref).bind(&x.end_to_end_id)
            .bind(&x.remittance).bind(&x.counterparty_name).bind(&x.counterparty_account).bind(&x.bank_tx_code)
            .bind(x.reversal).bind(&x.return_reason).bind(&x.details)
            .bind(x.source_line.map(i64::from)).bind(&x.source_path)
            .execute(&mut *tx).await?;
        }
        let digest = statement_digest(owner.as_str(), bank, s, now);
        seal_record!(
            tx,
            owner.as_str(),
            "statement",
            statement_key(bank, &s.account_no, &s.key()),
            digest
        );
        report.statements_stored += 1;
        report.lines_stored += s.lines.len() as u64;
    }
    tx.commit().await?;
    Ok(report)
}
