//! Bank feeds in the store: banks, supervised accounts, and the statements
//! and lines the banks report, ingested idempotently per file and per
//! statement, both dialects.

use chrono::NaiveDate;

use crate::domain::chain::{statement_digest, statement_key};
use crate::domain::error::LedgerError;
use crate::domain::feeds::{AccountKind, BankAccount, FeedStatement, IngestReport, LineStatus};
use crate::domain::ids::InstitutionId;
use crate::domain::money::Currency;
use crate::domain::recon::account::{AccountStatements, LastClosing, StatementLine};
use crate::domain::statements::StatementBalances;
use crate::store::rows::corrupt_as;
use crate::store::{DbTime, Result, Store, StoreError};

/// The closing balance of the newest final statement stored for an
/// account: (statement key, minor units, date).
type ClosingRow = Option<(String, i64, NaiveDate)>;

/// The columns of a bank line as ingest writes them (each dialect binds
/// them its own way: arrays through `unnest`, or row by row).
pub(crate) const BANK_LINE_COLUMNS: &str = "institution_id, bank_id, account_no, statement_key, \
    line_no, amount_minor, booking_date, value_date, status, bank_ref, end_to_end_id, remittance, \
    counterparty_name, counterparty_account, bank_tx_code, reversal, return_reason, details, \
    source_line, source_path";

/// A statement's lines to write, with the account they belong to
/// (institution, bank, account number).
pub(crate) struct LinesOf<'a> {
    pub account: (&'a str, &'a str, &'a str),
    pub statement: &'a FeedStatement,
}

/// The columns of a stored line (`l`) as reconciliation reads it, with its
/// statement's (`s`) provisional flag.
pub(crate) const LINE_COLUMNS: &str =
    "l.statement_key, l.line_no, l.amount_minor, l.booking_date, \
    l.value_date, l.status, l.bank_ref, l.end_to_end_id, l.remittance, l.counterparty_name, \
    l.counterparty_account, l.reversal, s.provisional";

#[derive(sqlx::FromRow)]
pub(crate) struct LineRow {
    statement_key: String,
    line_no: i32,
    amount_minor: i64,
    booking_date: Option<NaiveDate>,
    value_date: Option<NaiveDate>,
    status: String,
    bank_ref: Option<String>,
    end_to_end_id: Option<String>,
    remittance: Option<String>,
    counterparty_name: Option<String>,
    counterparty_account: Option<String>,
    reversal: bool,
    pub provisional: bool,
}

impl TryFrom<LineRow> for StatementLine {
    type Error = StoreError;
    fn try_from(r: LineRow) -> Result<Self> {
        Ok(StatementLine {
            statement_key: r.statement_key,
            line_no: i64::from(r.line_no),
            amount_minor: r.amount_minor,
            booking_date: r.booking_date,
            value_date: r.value_date,
            status: LineStatus::parse(&r.status).map_err(corrupt_as("bank line status"))?,
            bank_ref: r.bank_ref,
            end_to_end_id: r.end_to_end_id,
            remittance: r.remittance,
            counterparty_name: r.counterparty_name,
            counterparty_account: r.counterparty_account,
            reversal: r.reversal,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct BalancesRow {
    statement_key: String,
    opening_minor: Option<i64>,
    opening_date: Option<NaiveDate>,
    closing_minor: Option<i64>,
    closing_date: Option<NaiveDate>,
}

impl From<BalancesRow> for StatementBalances {
    fn from(r: BalancesRow) -> Self {
        StatementBalances {
            key: r.statement_key,
            opening: r.opening_minor.zip(r.opening_date),
            closing: r.closing_minor.zip(r.closing_date),
        }
    }
}

/// The newest final statement held for an account closing on or before a
/// day: (statement key, closing minor units, closing date).
const LAST_CLOSING: &str =
    "select statement_key, closing_minor, closing_date from bank_statements \
    where institution_id = $1 and bank_id = $2 and account_no = $3 and not provisional \
      and closing_minor is not null and closing_date <= $4 \
    order by closing_date desc, received_at desc limit 1";

impl Store {
    pub async fn register_bank(&self, bank: &str, name: &str) -> Result<()> {
        if bank.trim().is_empty() || bank.len() > 64 {
            return Err(LedgerError::InvalidField {
                field: "bank",
                reason: "1 to 64 characters".into(),
            }
            .into());
        }
        let now = DbTime::from(self.now());
        let existing: Option<String> = on_pool!(self, |pool| {
            sqlx::query(
                "insert into banks (bank_id, name, created_at) values ($1, $2, $3) \
                 on conflict do nothing",
            )
            .bind(bank)
            .bind(name)
            .bind(now)
            .execute(pool)
            .await?;
            sqlx::query_scalar("select name from banks where bank_id = $1")
                .bind(bank)
                .fetch_optional(pool)
                .await?
        });
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
        in_tx!(self, |tx, now, dialect| {
            sqlx::query(
                "insert into bank_accounts (institution_id, bank_id, account_no, kind, currency, \
                   created_at) values ($1, $2, $3, $4, $5, $6)",
            )
            .bind(a.institution.as_str())
            .bind(&a.bank)
            .bind(&a.account_no)
            .bind(a.kind.code())
            .bind(a.currency.code())
            .bind(now)
            .execute(&mut *tx)
            .await?;
            // A new account the mode requires leaves coverage unconfirmed
            // until it reports.
            refresh_figures!(tx, dialect, now, std::slice::from_ref(&a.institution));
        });
        Ok(())
    }

    async fn bank_exists(&self, bank: &str) -> Result<bool> {
        let n: i64 = on_reader!(self, |pool| sqlx::query_scalar(
            "select count(*) from banks where bank_id = $1"
        )
        .bind(bank)
        .fetch_one(pool)
        .await?);
        Ok(n > 0)
    }

    /// The supervised account with this number at this bank, if registered.
    pub async fn bank_account(&self, bank: &str, account_no: &str) -> Result<Option<BankAccount>> {
        let row: Option<(String, String, String)> = on_reader!(self, |pool| sqlx::query_as(
            "select institution_id, kind, currency from bank_accounts \
             where bank_id = $1 and account_no = $2",
        )
        .bind(bank)
        .bind(account_no)
        .fetch_optional(pool)
        .await?);
        let Some((institution, kind, currency)) = row else {
            return Ok(None);
        };
        Ok(Some(BankAccount {
            institution: InstitutionId::parse(institution).map_err(corrupt_as("bank account"))?,
            bank: bank.to_string(),
            account_no: account_no.to_string(),
            kind: AccountKind::parse(&kind).map_err(corrupt_as("bank account"))?,
            currency: currency
                .parse::<Currency>()
                .map_err(corrupt_as("bank account"))?,
        }))
    }

    /// Stores one file's statements in one transaction: a file seen before
    /// changes nothing; a statement already held with the same content
    /// (under its own key or another) is skipped, its key held with other
    /// content refused.
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
        let mut report = IngestReport::default();
        in_tx!(self, |tx, now, dialect| {
            let inserted = sqlx::query(
                "insert into feed_files (bank_id, file_sha256, format, byte_len, statements, \
                   received_at) values ($1, $2, $3, $4, $5, $6) on conflict do nothing",
            )
            .bind(bank)
            .bind(file_sha256)
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
            if dialect.takes_row_locks() {
                // Lock the record chains this file extends in institution id
                // order first, so two files naming the same institutions in
                // other orders cannot deadlock on them.
                let mut chains: Vec<&str> = owners.iter().map(InstitutionId::as_str).collect();
                chains.sort_unstable();
                chains.dedup();
                for id in chains {
                    sqlx::query(
                        "insert into record_heads (institution_id, last_seq, last_hash) \
                         values ($1, 0, $2) on conflict (institution_id) do nothing",
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
            }
            for (s, owner) in statements.iter().zip(&owners) {
                let account = (owner.as_str(), bank, s.account_no.as_str());
                if dialect.takes_row_locks() {
                    // Serialise ingests of one account so the chain check
                    // sees its predecessor.
                    sqlx::query(
                        "select 1 from bank_accounts \
                         where institution_id = $1 and bank_id = $2 and account_no = $3 for update",
                    )
                    .bind(account.0)
                    .bind(account.1)
                    .bind(account.2)
                    .execute(&mut *tx)
                    .await?;
                }
                let hash = s.content_hash();
                let held: Option<String> = sqlx::query_scalar(
                    "select content_hash from bank_statements where institution_id = $1 \
                       and bank_id = $2 and account_no = $3 and statement_key = $4",
                )
                .bind(account.0)
                .bind(account.1)
                .bind(account.2)
                .bind(s.key())
                .fetch_optional(&mut *tx)
                .await?;
                match held {
                    Some(h) if h == hash => {
                        report.statements_already_held += 1;
                        continue;
                    }
                    Some(_) => return Err(duplicate(s)),
                    None => {}
                }
                // The same statement under another id or page (a bank that
                // re-sends a day with a new reference): held already, its
                // lines not stored twice. Only of its own kind: an end of
                // day that says what the intraday report said still
                // confirms it, and is kept.
                let same: Option<String> = sqlx::query_scalar(
                    "select statement_key from bank_statements where institution_id = $1 \
                       and bank_id = $2 and account_no = $3 and content_hash = $4 \
                       and provisional = $5 limit 1",
                )
                .bind(account.0)
                .bind(account.1)
                .bind(account.2)
                .bind(&hash)
                .bind(s.provisional)
                .fetch_optional(&mut *tx)
                .await?;
                if same.is_some() {
                    report.statements_already_held += 1;
                    continue;
                }
                if !s.provisional {
                    let last: ClosingRow = sqlx::query_as(LAST_CLOSING)
                        .bind(account.0)
                        .bind(account.1)
                        .bind(account.2)
                        .bind(s.opening.map(|o| o.1).unwrap_or(NaiveDate::MAX))
                        .fetch_optional(&mut *tx)
                        .await?;
                    report.warnings.extend(chain_warning(s, last));
                }
                sqlx::query(
                    "insert into bank_statements (institution_id, bank_id, account_no, \
                       statement_key, statement_id, sequence, format, currency, provisional, \
                       opening_minor, opening_date, closing_minor, closing_date, line_count, \
                       content_hash, file_sha256, message, received_at) \
                     values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, \
                       $16, $17, $18)",
                )
                .bind(account.0)
                .bind(account.1)
                .bind(account.2)
                .bind(s.key())
                .bind(&s.statement_id)
                .bind(&s.sequence)
                .bind(&s.format)
                .bind(s.currency.code())
                .bind(s.provisional)
                .bind(s.opening.map(|o| o.0))
                .bind(s.opening.map(|o| o.1))
                .bind(s.closing.map(|o| o.0))
                .bind(s.closing.map(|o| o.1))
                .bind(i32::try_from(s.lines.len()).unwrap_or(i32::MAX))
                .bind(&hash)
                .bind(&s.file_sha256)
                .bind(i32::try_from(s.message).unwrap_or(i32::MAX))
                .bind(now)
                .execute(&mut *tx)
                .await?;
                if !s.lines.is_empty() {
                    let lines = LinesOf {
                        account,
                        statement: s,
                    };
                    dialect.insert_bank_lines(&mut tx, &lines).await?;
                }
                let digest = statement_digest(owner.as_str(), bank, s, now.micros());
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
            // The overview's coverage moves with the banks' closings.
            let mut touched: Vec<InstitutionId> = owners.clone();
            touched.sort_unstable();
            touched.dedup();
            refresh_figures!(tx, dialect, now, &touched);
        });
        Ok(report)
    }

    /// The supervised accounts of an institution, by bank and number.
    pub async fn supervised_accounts(
        &self,
        institution: &InstitutionId,
    ) -> Result<Vec<BankAccount>> {
        let rows: Vec<(String, String, String, String)> = on_reader!(self, |pool| {
            sqlx::query_as(
                "select bank_id, account_no, kind, currency from bank_accounts \
                 where institution_id = $1 order by bank_id, account_no",
            )
            .bind(institution.as_str())
            .fetch_all(pool)
            .await?
        });
        rows.into_iter()
            .map(|(bank, account_no, kind, currency)| {
                Ok(BankAccount {
                    institution: institution.clone(),
                    bank,
                    account_no,
                    kind: AccountKind::parse(&kind).map_err(corrupt_as("bank account"))?,
                    currency: currency
                        .parse::<Currency>()
                        .map_err(corrupt_as("bank account"))?,
                })
            })
            .collect()
    }

    /// The lines of an account's end-of-day statements, oldest first, with
    /// the latest closing balance and every statement's balances; the lines
    /// of intraday reports apart.
    pub async fn statement_lines(&self, account: &BankAccount) -> Result<AccountStatements> {
        let key = (
            account.institution.as_str(),
            account.bank.as_str(),
            account.account_no.as_str(),
        );
        let mut held = self.statement_balances(account, None).await?;
        let found: Vec<LineRow> = on_reader!(self, |pool| {
            sqlx::query_as(&format!(
                "select {LINE_COLUMNS} from bank_lines l join bank_statements s \
                   on s.institution_id = l.institution_id and s.bank_id = l.bank_id \
                   and s.account_no = l.account_no and s.statement_key = l.statement_key \
                 where l.institution_id = $1 and l.bank_id = $2 and l.account_no = $3 \
                 order by s.provisional, s.closing_date, l.statement_key, l.line_no"
            ))
            .bind(key.0)
            .bind(key.1)
            .bind(key.2)
            .fetch_all(pool)
            .await?
        });
        let (intraday, lines): (Vec<LineRow>, Vec<LineRow>) =
            found.into_iter().partition(|l| l.provisional);
        held.lines = lines
            .into_iter()
            .map(StatementLine::try_from)
            .collect::<Result<_>>()?;
        held.intraday = intraday
            .into_iter()
            .map(StatementLine::try_from)
            .collect::<Result<_>>()?;
        Ok(held)
    }

    /// What a recording run of reconciliation reads of an account: the
    /// lines of its end-of-day statements no kept match claims (in the
    /// order of [`Store::statement_lines`]), the statements' balances (the
    /// chain check and the days: one row a statement) issued on or after
    /// `from` (every one without it) and the latest closing; no intraday
    /// lines (nothing is booked from them).
    pub async fn open_statement_lines(
        &self,
        account: &BankAccount,
        from: Option<NaiveDate>,
    ) -> Result<AccountStatements> {
        let key = (
            account.institution.as_str(),
            account.bank.as_str(),
            account.account_no.as_str(),
        );
        let mut held = self.statement_balances(account, from).await?;
        // The claim is probed line by line through its primary key (a
        // scalar subquery with a limit, which no planner turns into a
        // join): as `not exists`, PostgreSQL without statistics joined
        // every line of the account with every claim of it (BENCHMARKS.md,
        // "The statement chain settled", on PostgreSQL).
        let found: Vec<LineRow> = on_reader!(self, |pool| {
            sqlx::query_as(&format!(
                "select {LINE_COLUMNS} from bank_lines l join bank_statements s \
                   on s.institution_id = l.institution_id and s.bank_id = l.bank_id \
                   and s.account_no = l.account_no and s.statement_key = l.statement_key \
                 where l.institution_id = $1 and l.bank_id = $2 and l.account_no = $3 \
                   and not s.provisional \
                   and (select 1 from recon_line_claims c \
                     where c.institution_id = l.institution_id and c.bank_id = l.bank_id \
                       and c.account_no = l.account_no and c.statement_key = l.statement_key \
                       and c.line_no = l.line_no limit 1) is null \
                 order by s.provisional, s.closing_date, l.statement_key, l.line_no"
            ))
            .bind(key.0)
            .bind(key.1)
            .bind(key.2)
            .fetch_all(pool)
            .await?
        });
        held.lines = found
            .into_iter()
            .map(StatementLine::try_from)
            .collect::<Result<_>>()?;
        Ok(held)
    }

    /// An account's latest closing and the balances of its end-of-day
    /// statements issued on or after `from` (by
    /// [`StatementBalances::issue_day`]; every one without it), without
    /// lines.
    pub async fn statement_balances(
        &self,
        account: &BankAccount,
        from: Option<NaiveDate>,
    ) -> Result<AccountStatements> {
        let key = (
            account.institution.as_str(),
            account.bank.as_str(),
            account.account_no.as_str(),
        );
        // A statement's issue day is its closing date, else its opening
        // date: ingest stores each balance's amount and date together.
        let (closing_from, issued_from) = match from {
            Some(_) => (
                " and closing_date >= $4",
                " and (closing_date >= $4 or (closing_date is null and opening_date >= $4))",
            ),
            None => ("", ""),
        };
        on_reader!(self, |pool| {
            let closing_sql = format!(
                "select statement_key, closing_minor, closing_date from bank_statements \
                 where institution_id = $1 and bank_id = $2 and account_no = $3 \
                   and not provisional and closing_minor is not null{closing_from} \
                 order by closing_date desc, received_at desc limit 1",
            );
            let mut closing = sqlx::query_as(&closing_sql)
                .bind(key.0)
                .bind(key.1)
                .bind(key.2);
            let statements_sql = format!(
                "select statement_key, opening_minor, opening_date, closing_minor, closing_date \
                 from bank_statements where institution_id = $1 and bank_id = $2 \
                   and account_no = $3 and not provisional{issued_from} \
                 order by closing_date, statement_key",
            );
            let mut statements = sqlx::query_as(&statements_sql)
                .bind(key.0)
                .bind(key.1)
                .bind(key.2);
            if let Some(day) = from {
                closing = closing.bind(day);
                statements = statements.bind(day);
            }
            let closing: ClosingRow = closing.fetch_optional(pool).await?;
            let statements: Vec<BalancesRow> = statements.fetch_all(pool).await?;
            Ok(AccountStatements {
                lines: Vec::new(),
                closing: closing.map(last_closing),
                statements: statements
                    .into_iter()
                    .map(StatementBalances::from)
                    .collect(),
                intraday: Vec::new(),
            })
        })
    }

    /// How many end-of-day statements of an account are issued on or
    /// before a day (those without balances included): what a settled
    /// chain counted when it was kept.
    pub async fn statements_issued_through(
        &self,
        account: &BankAccount,
        day: NaiveDate,
    ) -> Result<i64> {
        Ok(on_reader!(self, |pool| sqlx::query_scalar(
            "select count(*) from bank_statements \
             where institution_id = $1 and bank_id = $2 and account_no = $3 and not provisional \
               and (closing_date <= $4 \
                 or (closing_date is null and (opening_date is null or opening_date <= $4)))"
        )
        .bind(account.institution.as_str())
        .bind(account.bank.as_str())
        .bind(account.account_no.as_str())
        .bind(day)
        .fetch_one(pool)
        .await?))
    }

    /// Number of bank lines held for an institution (all its accounts).
    pub async fn bank_line_count(&self, institution: &InstitutionId) -> Result<i64> {
        Ok(on_reader!(self, |pool| sqlx::query_scalar(
            "select count(*) from bank_lines where institution_id = $1"
        )
        .bind(institution.as_str())
        .fetch_one(pool)
        .await?))
    }
}

fn last_closing((statement_key, balance_minor, date): (String, i64, NaiveDate)) -> LastClosing {
    LastClosing {
        statement_key,
        balance_minor,
        date,
    }
}

fn chain_warning(s: &FeedStatement, last: ClosingRow) -> Option<String> {
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
