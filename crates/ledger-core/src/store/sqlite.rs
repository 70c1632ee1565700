//! The SQLite dialect: the embedded default. One connection writes (SQLite
//! allows one writer; a second would only wait), batches run inside
//! `BEGIN IMMEDIATE`, and times are stored as microseconds since the epoch.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Row, Sqlite, Transaction};
use tracing::instrument;

use crate::domain::accounts::{AccountCode, AccountType, Totals};
use crate::domain::books::{ChainHead, EnrollmentBook, KnownEntry};
use crate::domain::chain::GENESIS_HASH;
use crate::domain::entry::{Entry, Phase, Request};
use crate::domain::error::LedgerError;
use crate::domain::ids::{ClientId, EnrollmentId, InstitutionId, JurisdictionCode};
use crate::domain::policy::RulePack;
use crate::domain::registry::{Enrollment, Institution, Jurisdiction};
use crate::store::report::{AccountBalance, BalanceSheet};
use crate::store::rows::{self, EnrollmentRow, EntryRow, InstitutionRow, PostingRow};
use crate::store::{
    run_batch, BatchTx, Chains, Changes, Clock, LockedInstitution, Result, StoreError,
};

#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    clock: Clock,
    /// The database file (none for an in-memory database).
    file: Option<std::path::PathBuf>,
}

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

fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

/// A time as SQLite stores it (integer microseconds), back; every store
/// module reads SQLite times through this.
pub(crate) fn from_micros(us: i64) -> Result<DateTime<Utc>> {
    DateTime::from_timestamp_micros(us)
        .ok_or_else(|| StoreError::Corrupt(format!("timestamp {us} is out of range")))
}

fn time(r: &SqliteRow, column: &str) -> Result<DateTime<Utc>> {
    from_micros(r.try_get(column)?)
}

fn opt_time(r: &SqliteRow, column: &str) -> Result<Option<DateTime<Utc>>> {
    r.try_get::<Option<i64>, _>(column)?
        .map(from_micros)
        .transpose()
}

/// A list of key pairs as a JSON array, for `json_each` joins (SQLite has
/// no arrays to bind).
fn pairs<A: AsRef<str>>(keys: impl Iterator<Item = (A, String)>) -> String {
    let list: Vec<(String, String)> = keys.map(|(a, b)| (a.as_ref().to_string(), b)).collect();
    serde_json::to_string(&list).expect("strings always serialize")
}

const ENTRY_COLUMNS: &str = "e.institution_id, e.seq, e.client_id, e.kind, e.currency, e.occurred_at, \
     e.recorded_at, e.external_ref, e.enrollment_id, e.hours, e.refers_to_seq, e.rule_pack, e.flags, \
     e.request_hash, e.prev_hash, e.hash";

fn entry_row(r: &SqliteRow, with_referred_by: bool) -> Result<EntryRow> {
    Ok(EntryRow {
        institution_id: r.try_get("institution_id")?,
        seq: r.try_get("seq")?,
        client_id: r.try_get("client_id")?,
        kind: r.try_get("kind")?,
        currency: r.try_get("currency")?,
        occurred_at: time(r, "occurred_at")?,
        recorded_at: time(r, "recorded_at")?,
        external_ref: r.try_get("external_ref")?,
        enrollment_id: r.try_get("enrollment_id")?,
        hours: r.try_get("hours")?,
        refers_to_seq: r.try_get("refers_to_seq")?,
        rule_pack: r.try_get("rule_pack")?,
        flags: r.try_get("flags")?,
        request_hash: r.try_get("request_hash")?,
        prev_hash: r.try_get("prev_hash")?,
        hash: r.try_get("hash")?,
        referred_by: if with_referred_by {
            r.try_get("referred_by")?
        } else {
            None
        },
    })
}

fn posting_row(r: &SqliteRow) -> Result<PostingRow> {
    Ok(PostingRow {
        institution_id: r.try_get("institution_id")?,
        seq: r.try_get("seq")?,
        account_code: r.try_get("account_code")?,
        side: r.try_get("side")?,
        amount_minor: r.try_get("amount_minor")?,
    })
}

fn totals_of(r: &SqliteRow, suffix: &str) -> Result<Totals> {
    let get =
        |c: String| -> Result<i64> { Ok(r.try_get::<Option<i64>, _>(c.as_str())?.unwrap_or(0)) };
    Ok(rows::totals([
        get(format!("posted_debits{suffix}"))?,
        get(format!("posted_credits{suffix}"))?,
        get(format!("pending_debits{suffix}"))?,
        get(format!("pending_credits{suffix}"))?,
    ]))
}

fn institution_row(r: &SqliteRow) -> Result<Institution> {
    InstitutionRow {
        institution_id: r.try_get("institution_id")?,
        name: r.try_get("name")?,
        licence_no: r.try_get("licence_no")?,
        jurisdiction_code: r.try_get("jurisdiction_code")?,
        mode: r.try_get("mode")?,
        category: r.try_get("category")?,
        status: r.try_get("status")?,
        currency: r.try_get("currency")?,
    }
    .try_into()
}

fn enrollment_row(r: &SqliteRow) -> Result<EnrollmentBook> {
    EnrollmentRow {
        institution_id: r.try_get("institution_id")?,
        enrollment_id: r.try_get("enrollment_id")?,
        student_ref: r.try_get("student_ref")?,
        hours_bought: r.try_get("hours_bought")?,
        bonus_hours: r.try_get("bonus_hours")?,
        price_minor: r.try_get("price_minor")?,
        currency: r.try_get("currency")?,
        course_start: r.try_get("course_start")?,
        course_end: r.try_get("course_end")?,
        hours_consumed: r.try_get("hours_consumed")?,
        paid_minor: r.try_get("paid_minor")?,
        created_at: time(r, "created_at")?,
    }
    .try_into()
}

fn rule_pack_row(r: &SqliteRow) -> Result<RulePack> {
    let code: String = r.try_get("jurisdiction_code")?;
    let params: String = r.try_get("params")?;
    Ok(RulePack {
        jurisdiction: JurisdictionCode::parse(code)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?,
        version: u32::try_from(r.try_get::<i64, _>("version")?)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?,
        effective_from: r.try_get("effective_from")?,
        params: serde_json::from_str(&params)
            .map_err(|e| StoreError::Corrupt(format!("rule pack params: {e}")))?,
    })
}

fn constraint(e: &sqlx::Error, code: &str) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.code().as_deref() == Some(code))
}
// SQLite extended result codes.
const FOREIGN_KEY: &str = "787";
const CHECK: &str = "275";

/// A transaction for reads that share the batch loaders (rolled back on drop).
pub(crate) async fn read_tx(store: &SqliteStore) -> Result<SqliteTx<'static>> {
    Ok(SqliteTx {
        tx: store.pool.begin().await?,
    })
}

pub(crate) struct SqliteTx<'a> {
    tx: Transaction<'a, Sqlite>,
}

impl BatchTx for SqliteTx<'_> {
    async fn lock_institutions(&mut self, ids: &[InstitutionId]) -> Result<Vec<LockedInstitution>> {
        // BEGIN IMMEDIATE already holds the database's one write lock.
        let list = serde_json::to_string(&ids.iter().map(|i| i.as_str()).collect::<Vec<_>>())
            .expect("strings always serialize");
        let rows = sqlx::query(
            "select i.*, h.last_seq, h.last_hash, h.last_recorded_at \
             from chain_heads h join institutions i on i.institution_id = h.institution_id \
             where h.institution_id in (select value from json_each(?)) order by h.institution_id",
        )
        .bind(list)
        .fetch_all(&mut *self.tx)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(LockedInstitution {
                    institution: institution_row(r)?,
                    created_at: time(r, "created_at")?,
                    head: ChainHead {
                        last_seq: r.try_get("last_seq")?,
                        last_hash: r.try_get("last_hash")?,
                        last_recorded_at: opt_time(r, "last_recorded_at")?,
                    },
                })
            })
            .collect()
    }

    async fn load_accounts(
        &mut self,
        keys: &[(InstitutionId, String)],
    ) -> Result<Vec<(InstitutionId, AccountCode, Totals)>> {
        let found = sqlx::query(
            "select a.* from json_each(?) k join accounts a \
               on a.institution_id = json_extract(k.value, '$[0]') \
              and a.account_code = json_extract(k.value, '$[1]')",
        )
        .bind(pairs(keys.iter().map(|(i, c)| (i.as_str(), c.clone()))))
        .fetch_all(&mut *self.tx)
        .await?;
        found
            .iter()
            .map(|r| {
                let id: String = r.try_get("institution_id")?;
                Ok((
                    InstitutionId::parse(id).map_err(|e| StoreError::Corrupt(e.to_string()))?,
                    rows::account_code(r.try_get("account_code")?)?,
                    totals_of(r, "_minor")?,
                ))
            })
            .collect()
    }

    async fn load_enrollments(
        &mut self,
        keys: &[(InstitutionId, EnrollmentId)],
    ) -> Result<Vec<EnrollmentBook>> {
        let found = sqlx::query(
            "select e.* from json_each(?) k join enrollments e \
               on e.institution_id = json_extract(k.value, '$[0]') \
              and e.enrollment_id = json_extract(k.value, '$[1]')",
        )
        .bind(pairs(keys.iter().map(|(i, e)| (i.as_str(), e.to_string()))))
        .fetch_all(&mut *self.tx)
        .await?;
        found.iter().map(enrollment_row).collect()
    }

    async fn load_entries(
        &mut self,
        keys: &[(InstitutionId, ClientId)],
    ) -> Result<Vec<KnownEntry>> {
        let found = sqlx::query(&format!(
            "select {ENTRY_COLUMNS}, \
               (select r.kind from entries r where r.institution_id = e.institution_id \
                  and r.refers_to_seq = e.seq) as referred_by \
             from json_each(?) k join entries e \
               on e.institution_id = json_extract(k.value, '$[0]') \
              and e.client_id = json_extract(k.value, '$[1]')"
        ))
        .bind(pairs(keys.iter().map(|(i, c)| (i.as_str(), c.to_string()))))
        .fetch_all(&mut *self.tx)
        .await?;
        if found.is_empty() {
            return Ok(vec![]);
        }
        let rows = found
            .iter()
            .map(|r| entry_row(r, true))
            .collect::<Result<Vec<_>>>()?;
        let postings = sqlx::query(
            "select p.institution_id, p.seq, p.account_code, p.side, p.amount_minor \
             from json_each(?) k join postings p \
               on p.institution_id = json_extract(k.value, '$[0]') \
              and p.seq = json_extract(k.value, '$[1]') \
             order by p.institution_id, p.seq, p.leg",
        )
        .bind(
            serde_json::to_string(
                &rows
                    .iter()
                    .map(|r| (r.institution_id.as_str(), r.seq))
                    .collect::<Vec<_>>(),
            )
            .expect("plain data serializes"),
        )
        .fetch_all(&mut *self.tx)
        .await?;
        let postings = postings
            .iter()
            .map(posting_row)
            .collect::<Result<Vec<_>>>()?;
        rows::assemble(rows, postings, |r, p| r.into_known(p))
    }

    async fn load_rules(
        &mut self,
        jurisdictions: &[JurisdictionCode],
    ) -> Result<(Chains, Vec<RulePack>)> {
        let codes: Vec<&str> = jurisdictions.iter().map(|j| j.as_str()).collect();
        // Ancestries and their rule packs in one round trip.
        let rows = sqlx::query(
            "with recursive up(start, code, parent_code, depth) as ( \
               select code, code, parent_code, 0 from jurisdictions where code in (select value from json_each(?)) \
               union all \
               select up.start, j.code, j.parent_code, up.depth + 1 \
               from jurisdictions j join up on j.code = up.parent_code \
             ) select up.start, up.code, p.jurisdiction_code, p.version, p.effective_from, p.params \
               from up left join rule_packs p on p.jurisdiction_code = up.code \
               order by up.start, up.depth desc",
        )
        .bind(serde_json::to_string(&codes).expect("strings serialize"))
        .fetch_all(&mut *self.tx)
        .await?;
        let rows = rows
            .iter()
            .map(|r| {
                let pack = match r.try_get::<Option<i64>, _>("version")? {
                    Some(_) => Some(rule_pack_row(r)?),
                    None => None,
                };
                Ok((
                    r.try_get::<String, _>("start")?,
                    r.try_get::<String, _>("code")?,
                    pack,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        rows::rule_context(rows)
    }

    async fn write(&mut self, c: &Changes) -> Result<()> {
        // Money the bank must move goes into the outbox with its entry.
        for e in c
            .entries
            .iter()
            .filter(|e| e.kind.phase() == Phase::Pending)
        {
            sqlx::query(
                "insert into outbox (institution_id, instruction_id, kind, amount_minor, currency, state, \
               attempts, next_attempt_at, created_at, updated_at) \
             values (?, ?, ?, ?, ?, 'pending', 0, ?, ?, ?)",
            )
            .bind(e.institution.as_str())
            .bind(e.client_id.as_str())
            .bind(e.kind.code())
            .bind(e.postings.first().map_or(0, |p| p.amount_minor))
            .bind(e.currency.code())
            .bind(micros(e.recorded_at)).bind(micros(e.recorded_at)).bind(micros(e.recorded_at))
            .execute(&mut *self.tx)
            .await?;
        }
        for e in &c.entries {
            sqlx::query(
                "insert into entries (institution_id, seq, client_id, kind, currency, occurred_at, \
                   recorded_at, external_ref, enrollment_id, hours, refers_to_seq, rule_pack, flags, \
                   request_hash, prev_hash, hash) \
                 values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(e.institution.as_str())
            .bind(e.seq)
            .bind(e.client_id.as_str())
            .bind(e.kind.code())
            .bind(e.currency.code())
            .bind(micros(e.occurred_at))
            .bind(micros(e.recorded_at))
            .bind(e.external_ref.as_deref())
            .bind(e.enrollment.as_ref().map(|v| v.as_str()))
            .bind(e.hours.map(i64::from))
            .bind(e.refers_to_seq)
            .bind(e.rule_pack.as_deref())
            .bind(e.flags.join(","))
            .bind(&e.request_hash)
            .bind(&e.prev_hash)
            .bind(&e.hash)
            .execute(&mut *self.tx)
            .await?;
        }
        for (i, leg, t) in &c.postings {
            let e = &c.entries[*i];
            let p = &e.postings[*leg];
            sqlx::query(
                "insert into postings (institution_id, seq, leg, account_code, side, amount_minor, \
                   posted_debits_after_minor, posted_credits_after_minor, \
                   pending_debits_after_minor, pending_credits_after_minor) \
                 values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(e.institution.as_str())
            .bind(e.seq)
            .bind(*leg as i64)
            .bind(&p.account)
            .bind(p.side.code())
            .bind(p.amount_minor)
            .bind(t.posted_debits_minor)
            .bind(t.posted_credits_minor)
            .bind(t.pending_debits_minor)
            .bind(t.pending_credits_minor)
            .execute(&mut *self.tx)
            .await?;
        }
        for (i, code, t) in &c.accounts {
            sqlx::query(
                "update accounts set posted_debits_minor = ?, posted_credits_minor = ?, \
                   pending_debits_minor = ?, pending_credits_minor = ? \
                 where institution_id = ? and account_code = ?",
            )
            .bind(t.posted_debits_minor)
            .bind(t.posted_credits_minor)
            .bind(t.pending_debits_minor)
            .bind(t.pending_credits_minor)
            .bind(i.as_str())
            .bind(code.to_string())
            .execute(&mut *self.tx)
            .await?;
        }
        for (i, e, hours, paid) in &c.enrollments {
            sqlx::query(
                "update enrollments set hours_consumed = ?, paid_minor = ? \
                 where institution_id = ? and enrollment_id = ?",
            )
            .bind(i64::from(*hours))
            .bind(*paid)
            .bind(i.as_str())
            .bind(e.as_str())
            .execute(&mut *self.tx)
            .await?;
        }
        for (i, head) in &c.heads {
            sqlx::query(
                "update chain_heads set last_seq = ?, last_hash = ?, last_recorded_at = ? \
                 where institution_id = ?",
            )
            .bind(head.last_seq)
            .bind(&head.last_hash)
            .bind(head.last_recorded_at.map(micros))
            .bind(i.as_str())
            .execute(&mut *self.tx)
            .await?;
        }
        Ok(())
    }
}

impl SqliteStore {
    pub async fn connect(url: &str, clock: Clock) -> Result<SqliteStore> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let file = options.get_filename();
        let file = (!file.as_os_str().is_empty() && file != std::path::Path::new(":memory:"))
            .then(|| file.to_path_buf());
        // The first connection creates the file and switches it to WAL,
        // which SQLite refuses (busy, without waiting) while another
        // process is doing the same: take turns.
        let _held = match &file {
            Some(db) => Some(lock_beside(db).await?),
            None => None,
        };
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await?;
        Ok(SqliteStore { pool, clock, file })
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
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
        sqlx::migrate!("../../migrations/sqlite")
            .run(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    pub async fn create_jurisdiction(&self, j: &Jurisdiction) -> Result<()> {
        let inserted = sqlx::query(
            "insert into jurisdictions (code, name, parent_code, created_at) values (?, ?, ?, ?) \
             on conflict (code) do nothing",
        )
        .bind(j.code.as_str())
        .bind(&j.name)
        .bind(j.parent.as_ref().map(|p| p.as_str()))
        .bind(micros(self.clock.now()))
        .execute(&self.pool)
        .await;
        match inserted {
            Err(e) if constraint(&e, FOREIGN_KEY) => {
                return Err(LedgerError::UnknownJurisdiction {
                    code: j.parent.as_ref().map(|p| p.to_string()).unwrap_or_default(),
                }
                .into())
            }
            Err(e) if constraint(&e, CHECK) => {
                return Err(LedgerError::InvalidInstitution {
                    reason: format!("jurisdiction {}: only 000000 is the root", j.code),
                }
                .into())
            }
            other => other?,
        };
        let row = sqlx::query("select name, parent_code from jurisdictions where code = ?")
            .bind(j.code.as_str())
            .fetch_one(&self.pool)
            .await?;
        let same = row.try_get::<String, _>("name")? == j.name
            && row.try_get::<Option<String>, _>("parent_code")?.as_deref()
                == j.parent.as_ref().map(|p| p.as_str());
        if !same {
            return Err(LedgerError::ExistsWithDifferentFields {
                what: "jurisdiction",
                id: j.code.to_string(),
            }
            .into());
        }
        Ok(())
    }

    pub async fn put_rule_pack(&self, pack: &RulePack) -> Result<()> {
        let params =
            serde_json::to_string(&pack.params).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let inserted = sqlx::query(
            "insert into rule_packs (jurisdiction_code, version, effective_from, params, created_at) \
             values (?, ?, ?, ?, ?) on conflict do nothing",
        )
        .bind(pack.jurisdiction.as_str())
        .bind(i64::from(pack.version))
        .bind(pack.effective_from)
        .bind(&params)
        .bind(micros(self.clock.now()))
        .execute(&self.pool)
        .await;
        match inserted {
            Err(e) if constraint(&e, FOREIGN_KEY) => {
                return Err(LedgerError::UnknownJurisdiction {
                    code: pack.jurisdiction.to_string(),
                }
                .into())
            }
            other => other?,
        };
        let row = sqlx::query(
            "select jurisdiction_code, version, effective_from, params from rule_packs \
             where jurisdiction_code = ? and version = ?",
        )
        .bind(pack.jurisdiction.as_str())
        .bind(i64::from(pack.version))
        .fetch_one(&self.pool)
        .await?;
        if &rule_pack_row(&row)? != pack {
            return Err(LedgerError::ExistsWithDifferentFields {
                what: "rule pack",
                id: format!("{}@{}", pack.jurisdiction, pack.version),
            }
            .into());
        }
        Ok(())
    }

    pub async fn create_institution(&self, i: &Institution) -> Result<()> {
        let now = micros(self.clock.now());
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let inserted = sqlx::query(
            "insert into institutions (institution_id, name, licence_no, jurisdiction_code, mode, \
               category, status, currency, created_at) values (?, ?, ?, ?, ?, ?, ?, ?, ?) \
             on conflict (institution_id) do nothing",
        )
        .bind(i.id.as_str())
        .bind(&i.name)
        .bind(&i.licence_no)
        .bind(i.jurisdiction.as_str())
        .bind(i.mode.code())
        .bind(i.category.code())
        .bind(i.status.code())
        .bind(i.currency.code())
        .bind(now)
        .execute(&mut *tx)
        .await;
        let inserted = match inserted {
            Err(e) if constraint(&e, FOREIGN_KEY) => {
                return Err(LedgerError::UnknownJurisdiction {
                    code: i.jurisdiction.to_string(),
                }
                .into())
            }
            other => other?,
        };
        if inserted.rows_affected() == 0 {
            drop(tx);
            let existing = self.institution(&i.id).await?;
            if &existing != i {
                return Err(LedgerError::ExistsWithDifferentFields {
                    what: "institution",
                    id: i.id.to_string(),
                }
                .into());
            }
            return Ok(());
        }
        for code in AccountCode::FIXED {
            sqlx::query(
                "insert into accounts (institution_id, account_code, account_type, currency, created_at) \
                 values (?, ?, ?, ?, ?)",
            )
            .bind(i.id.as_str())
            .bind(code.to_string())
            .bind(match code.account_type() {
                AccountType::Asset => "asset",
                AccountType::Liability => "liability",
            })
            .bind(i.currency.code())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(
            "insert into chain_heads (institution_id, last_seq, last_hash, last_recorded_at) \
             values (?, 0, ?, null)",
        )
        .bind(i.id.as_str())
        .bind(GENESIS_HASH)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn create_enrollment(&self, e: &Enrollment) -> Result<()> {
        let institution = self.institution(&e.institution).await?;
        if institution.currency != e.currency {
            return Err(LedgerError::CurrencyMismatch {
                expected: institution.currency,
                found: e.currency,
            }
            .into());
        }
        let now = micros(self.clock.now());
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let inserted = sqlx::query(
            "insert into enrollments (institution_id, enrollment_id, student_ref, hours_bought, \
               bonus_hours, price_minor, currency, course_start, course_end, created_at) \
             values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) on conflict do nothing",
        )
        .bind(e.institution.as_str())
        .bind(e.id.as_str())
        .bind(&e.student_ref)
        .bind(i64::from(e.hours_bought))
        .bind(i64::from(e.bonus_hours))
        .bind(e.price.minor())
        .bind(e.currency.code())
        .bind(e.course_start)
        .bind(e.course_end)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 0 {
            let row = sqlx::query(
                "select * from enrollments where institution_id = ? and enrollment_id = ?",
            )
            .bind(e.institution.as_str())
            .bind(e.id.as_str())
            .fetch_one(&mut *tx)
            .await?;
            if &enrollment_row(&row)?.state.enrollment != e {
                return Err(LedgerError::ExistsWithDifferentFields {
                    what: "enrollment",
                    id: e.id.to_string(),
                }
                .into());
            }
            return Ok(());
        }
        sqlx::query(
            "insert into accounts (institution_id, account_code, account_type, currency, created_at) \
             values (?, ?, 'liability', ?, ?)",
        )
        .bind(e.institution.as_str())
        .bind(AccountCode::Prepaid(e.id.clone()).to_string())
        .bind(e.currency.code())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let digest = crate::domain::chain::enrollment_record_digest(e, now);
        seal_record!(
            tx,
            e.institution.as_str(),
            "enrollment",
            e.id.to_string(),
            digest
        );
        tx.commit().await?;
        Ok(())
    }

    pub async fn institution(&self, id: &InstitutionId) -> Result<Institution> {
        let row = sqlx::query("select * from institutions where institution_id = ?")
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| LedgerError::UnknownInstitution {
                institution: id.to_string(),
            })?;
        institution_row(&row)
    }

    /// An institution and its current balances in one round trip.
    pub async fn institution_with_balances(
        &self,
        id: &InstitutionId,
    ) -> Result<(Institution, BalanceSheet)> {
        let rows = sqlx::query(
            "select i.*, a.account_code, a.posted_debits_minor, a.posted_credits_minor, \
               a.pending_debits_minor, a.pending_credits_minor \
             from institutions i left join accounts a on a.institution_id = i.institution_id \
             where i.institution_id = ? order by a.account_code",
        )
        .bind(id.as_str())
        .fetch_all(&self.pool)
        .await?;
        let first = rows
            .first()
            .ok_or_else(|| LedgerError::UnknownInstitution {
                institution: id.to_string(),
            })?;
        let institution = institution_row(first)?;
        let mut accounts = Vec::new();
        for r in &rows {
            if let Some(code) = r.try_get::<Option<String>, _>("account_code")? {
                accounts.push(AccountBalance::new(
                    &rows::account_code(&code)?,
                    totals_of(r, "_minor")?,
                ));
            }
        }
        let sheet = BalanceSheet {
            institution: id.clone(),
            currency: institution.currency,
            as_of: None,
            accounts,
        };
        Ok((institution, sheet))
    }

    pub async fn enrollments(&self, id: &InstitutionId) -> Result<Vec<Enrollment>> {
        let rows = sqlx::query(
            "select * from enrollments where institution_id = ? order by enrollment_id",
        )
        .bind(id.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok(enrollment_row(r)?.state.enrollment))
            .collect()
    }

    pub async fn institutions(&self) -> Result<Vec<Institution>> {
        let rows = sqlx::query("select * from institutions order by institution_id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(institution_row).collect()
    }

    #[instrument(skip_all, fields(requests = requests.len()))]
    pub async fn execute_batch(&self, requests: &[Request]) -> Result<Vec<Entry>> {
        let tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let mut tx = SqliteTx { tx };
        let entries = run_batch(&mut tx, requests, self.clock.now()).await?;
        tx.tx.commit().await?;
        Ok(entries)
    }

    pub async fn balances(&self, id: &InstitutionId) -> Result<BalanceSheet> {
        let institution = self.institution(id).await?;
        let accounts = self.account_rows(id).await?;
        Ok(BalanceSheet {
            institution: id.clone(),
            currency: institution.currency,
            as_of: None,
            accounts: accounts
                .iter()
                .map(|(c, t)| AccountBalance::new(c, *t))
                .collect(),
        })
    }

    /// The accounts of many institutions in one round trip.
    pub async fn account_rows_of(
        &self,
        ids: &[InstitutionId],
    ) -> Result<Vec<(InstitutionId, AccountCode, Totals)>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let marks = vec!["?"; ids.len()].join(", ");
        let sql = format!(
            "select * from accounts where institution_id in ({marks}) order by institution_id, account_code"
        );
        let mut query = sqlx::query(&sql);
        for id in ids {
            query = query.bind(id.as_str());
        }
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                Ok((
                    InstitutionId::parse(r.try_get::<String, _>("institution_id")?)
                        .map_err(|e| StoreError::Corrupt(e.to_string()))?,
                    rows::account_code(r.try_get("account_code")?)?,
                    totals_of(r, "_minor")?,
                ))
            })
            .collect()
    }

    pub async fn account_rows(&self, id: &InstitutionId) -> Result<Vec<(AccountCode, Totals)>> {
        let rows =
            sqlx::query("select * from accounts where institution_id = ? order by account_code")
                .bind(id.as_str())
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    rows::account_code(r.try_get("account_code")?)?,
                    totals_of(r, "_minor")?,
                ))
            })
            .collect()
    }

    pub async fn balances_at(&self, id: &InstitutionId, at: DateTime<Utc>) -> Result<BalanceSheet> {
        let institution = self.institution(id).await?;
        let created_at: i64 =
            sqlx::query_scalar("select created_at from institutions where institution_id = ?")
                .bind(id.as_str())
                .fetch_one(&self.pool)
                .await?;
        if micros(at) < created_at {
            return Err(LedgerError::BeforeInstitutionExisted {
                institution: id.to_string(),
                at: at.to_rfc3339(),
                created_at: from_micros(created_at)?.to_rfc3339(),
            }
            .into());
        }
        let rows = sqlx::query(
            "with upto(seq) as (select coalesce(max(seq), 0) from entries \
                                where institution_id = ?1 and recorded_at <= ?2) \
             select a.account_code, \
               (select p.posted_debits_after_minor || ',' || p.posted_credits_after_minor || ',' || \
                       p.pending_debits_after_minor || ',' || p.pending_credits_after_minor \
                  from postings p where p.institution_id = a.institution_id \
                   and p.account_code = a.account_code and p.seq <= (select seq from upto) \
                 order by p.seq desc, p.leg desc limit 1) as snapshot \
             from accounts a where a.institution_id = ?1 and a.created_at <= ?2 \
             order by a.account_code",
        )
        .bind(id.as_str())
        .bind(micros(at))
        .fetch_all(&self.pool)
        .await?;
        let accounts = rows
            .iter()
            .map(|r| {
                let code = rows::account_code(r.try_get("account_code")?)?;
                let snapshot: Option<String> = r.try_get("snapshot")?;
                let totals = match snapshot {
                    None => Totals::default(),
                    Some(text) => {
                        let v: Vec<i64> = text
                            .split(',')
                            .map(|x| x.parse::<i64>())
                            .collect::<Result<_, _>>()
                            .map_err(|e| StoreError::Corrupt(format!("posting snapshot: {e}")))?;
                        let v: [i64; 4] = v
                            .try_into()
                            .map_err(|_| StoreError::Corrupt("posting snapshot".into()))?;
                        rows::totals(v)
                    }
                };
                Ok(AccountBalance::new(&code, totals))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(BalanceSheet {
            institution: id.clone(),
            currency: institution.currency,
            as_of: Some(at),
            accounts,
        })
    }

    /// A page of every institution's entries, in (institution, seq) order,
    /// after `after` (an institution id and seq).
    pub async fn entries_all(&self, after: Option<(&str, i64)>, limit: i64) -> Result<Vec<Entry>> {
        let (from_id, from_seq) = after.unwrap_or(("", 0));
        let found = sqlx::query(&format!(
            "select {ENTRY_COLUMNS} from entries e where (e.institution_id, e.seq) > (?1, ?2) \
             order by e.institution_id, e.seq limit ?3"
        ))
        .bind(from_id)
        .bind(from_seq)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let rows = found
            .iter()
            .map(|r| entry_row(r, false))
            .collect::<Result<Vec<_>>>()?;
        let Some(last) = rows.last() else {
            return Ok(vec![]);
        };
        let postings = sqlx::query(
            "select institution_id, seq, account_code, side, amount_minor from postings \
             where (institution_id, seq) > (?1, ?2) and (institution_id, seq) <= (?3, ?4) \
             order by institution_id, seq, leg",
        )
        .bind(from_id)
        .bind(from_seq)
        .bind(last.institution_id.clone())
        .bind(last.seq)
        .fetch_all(&self.pool)
        .await?;
        let postings = postings
            .iter()
            .map(posting_row)
            .collect::<Result<Vec<_>>>()?;
        rows::assemble(rows, postings, |r, p| r.into_entry(p))
    }

    /// Every institution's enrollments, by institution and id.
    pub async fn enrollments_all(&self) -> Result<Vec<Enrollment>> {
        let rows = sqlx::query("select * from enrollments order by institution_id, enrollment_id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok(enrollment_row(r)?.state.enrollment))
            .collect()
    }

    pub async fn entries(
        &self,
        id: &InstitutionId,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<Entry>> {
        let found = sqlx::query(&format!(
            "select {ENTRY_COLUMNS} from entries e where e.institution_id = ? and e.seq > ? \
             order by e.seq limit ?"
        ))
        .bind(id.as_str())
        .bind(after_seq)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let rows = found
            .iter()
            .map(|r| entry_row(r, false))
            .collect::<Result<Vec<_>>>()?;
        let last = rows.last().map_or(after_seq, |r| r.seq);
        let postings = sqlx::query(
            "select institution_id, seq, account_code, side, amount_minor from postings \
             where institution_id = ? and seq > ? and seq <= ? order by seq, leg",
        )
        .bind(id.as_str())
        .bind(after_seq)
        .bind(last)
        .fetch_all(&self.pool)
        .await?;
        let postings = postings
            .iter()
            .map(posting_row)
            .collect::<Result<Vec<_>>>()?;
        rows::assemble(rows, postings, |r, p| r.into_entry(p))
    }

    pub async fn posting_snapshots(
        &self,
        id: &InstitutionId,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<(i64, i64, Totals)>> {
        let rows = sqlx::query(
            "select seq, leg, posted_debits_after_minor, posted_credits_after_minor, \
               pending_debits_after_minor, pending_credits_after_minor from postings \
             where institution_id = ? and seq > ? and seq <= ? order by seq, leg",
        )
        .bind(id.as_str())
        .bind(after_seq)
        .bind(after_seq + limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("seq")?,
                    r.try_get("leg")?,
                    totals_of(r, "_after_minor")?,
                ))
            })
            .collect()
    }

    pub async fn head(&self, id: &InstitutionId) -> Result<ChainHead> {
        let r = sqlx::query("select * from chain_heads where institution_id = ?")
            .bind(id.as_str())
            .fetch_one(&self.pool)
            .await?;
        Ok(ChainHead {
            last_seq: r.try_get("last_seq")?,
            last_hash: r.try_get("last_hash")?,
            last_recorded_at: opt_time(&r, "last_recorded_at")?,
        })
    }
}
