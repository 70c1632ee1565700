//! The PostgreSQL dialect: the system of record. A batch costs a fixed
//! number of statements whatever its size (arrays through `unnest`).

use std::str::FromStr;

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Postgres, Row, Transaction};
use tracing::instrument;

use crate::domain::accounts::{AccountCode, Totals};
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
pub struct PgStore {
    pool: PgPool,
    clock: Clock,
}

const ENTRY_COLUMNS: &str = "e.institution_id, e.seq, e.client_id, e.kind, e.currency, e.occurred_at, \
     e.recorded_at, e.external_ref, e.enrollment_id, e.hours, e.refers_to_seq, e.rule_pack, e.flags, \
     e.request_hash, e.prev_hash, e.hash";

fn entry_row(r: &sqlx::postgres::PgRow, with_referred_by: bool) -> Result<EntryRow> {
    Ok(EntryRow {
        institution_id: r.try_get("institution_id")?,
        seq: r.try_get("seq")?,
        client_id: r.try_get("client_id")?,
        kind: r.try_get("kind")?,
        currency: r.try_get("currency")?,
        occurred_at: r.try_get("occurred_at")?,
        recorded_at: r.try_get("recorded_at")?,
        external_ref: r.try_get("external_ref")?,
        enrollment_id: r.try_get("enrollment_id")?,
        hours: r.try_get::<Option<i32>, _>("hours")?.map(i64::from),
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

fn posting_row(r: &sqlx::postgres::PgRow) -> Result<PostingRow> {
    Ok(PostingRow {
        institution_id: r.try_get("institution_id")?,
        seq: r.try_get("seq")?,
        account_code: r.try_get("account_code")?,
        side: r.try_get("side")?,
        amount_minor: r.try_get("amount_minor")?,
    })
}

fn totals_of(r: &sqlx::postgres::PgRow, suffix: &str) -> Result<Totals> {
    Ok(rows::totals([
        r.try_get(format!("posted_debits{suffix}").as_str())?,
        r.try_get(format!("posted_credits{suffix}").as_str())?,
        r.try_get(format!("pending_debits{suffix}").as_str())?,
        r.try_get(format!("pending_credits{suffix}").as_str())?,
    ]))
}

fn institution_row(r: &sqlx::postgres::PgRow) -> Result<Institution> {
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

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.code().as_deref() == Some("23505"))
}

fn is_fk_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.code().as_deref() == Some("23503"))
}

/// A transaction for reads that share the batch loaders (rolled back on drop).
pub(crate) async fn read_tx(store: &PgStore) -> Result<PgTx<'static>> {
    Ok(PgTx {
        tx: store.pool.begin().await?,
    })
}

pub(crate) struct PgTx<'a> {
    tx: Transaction<'a, Postgres>,
}

impl BatchTx for PgTx<'_> {
    async fn lock_institutions(&mut self, ids: &[InstitutionId]) -> Result<Vec<LockedInstitution>> {
        let ids: Vec<&str> = ids.iter().map(|i| i.as_str()).collect();
        // Locks are taken in institution id order, so two batches over
        // overlapping institutions can never deadlock.
        let rows = sqlx::query(
            "select i.*, h.last_seq, h.last_hash, h.last_recorded_at \
             from chain_heads h join institutions i on i.institution_id = h.institution_id \
             where h.institution_id = any($1) order by h.institution_id for update of h",
        )
        .bind(&ids)
        .fetch_all(&mut *self.tx)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            out.push(LockedInstitution {
                institution: institution_row(r)?,
                created_at: r.try_get("created_at")?,
                head: ChainHead {
                    last_seq: r.try_get("last_seq")?,
                    last_hash: r.try_get("last_hash")?,
                    last_recorded_at: r.try_get("last_recorded_at")?,
                },
            });
        }
        Ok(out)
    }

    async fn load_accounts(
        &mut self,
        keys: &[(InstitutionId, String)],
    ) -> Result<Vec<(InstitutionId, AccountCode, Totals)>> {
        let (inst, codes): (Vec<&str>, Vec<&str>) =
            keys.iter().map(|(i, c)| (i.as_str(), c.as_str())).unzip();
        let found = sqlx::query(
            "select a.* from accounts a \
             join unnest($1::text[], $2::text[]) as k(institution_id, account_code) \
               on a.institution_id = k.institution_id and a.account_code = k.account_code",
        )
        .bind(&inst)
        .bind(&codes)
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
        let (inst, ids): (Vec<&str>, Vec<&str>) =
            keys.iter().map(|(i, e)| (i.as_str(), e.as_str())).unzip();
        let found = sqlx::query(
            "select e.* from enrollments e \
             join unnest($1::text[], $2::text[]) as k(institution_id, enrollment_id) \
               on e.institution_id = k.institution_id and e.enrollment_id = k.enrollment_id",
        )
        .bind(&inst)
        .bind(&ids)
        .fetch_all(&mut *self.tx)
        .await?;
        found.iter().map(enrollment_row).collect()
    }

    async fn load_entries(
        &mut self,
        keys: &[(InstitutionId, ClientId)],
    ) -> Result<Vec<KnownEntry>> {
        let (inst, ids): (Vec<&str>, Vec<&str>) =
            keys.iter().map(|(i, c)| (i.as_str(), c.as_str())).unzip();
        let found = sqlx::query(&format!(
            "select {ENTRY_COLUMNS}, \
               (select r.kind from entries r where r.institution_id = e.institution_id \
                  and r.refers_to_seq = e.seq) as referred_by \
             from entries e \
             join unnest($1::text[], $2::text[]) as k(institution_id, client_id) \
               on e.institution_id = k.institution_id and e.client_id = k.client_id"
        ))
        .bind(&inst)
        .bind(&ids)
        .fetch_all(&mut *self.tx)
        .await?;
        if found.is_empty() {
            return Ok(vec![]);
        }
        let rows = found
            .iter()
            .map(|r| entry_row(r, true))
            .collect::<Result<Vec<_>>>()?;
        let (pi, ps): (Vec<&str>, Vec<i64>) = rows
            .iter()
            .map(|r| (r.institution_id.as_str(), r.seq))
            .unzip();
        let postings = sqlx::query(
            "select p.institution_id, p.seq, p.account_code, p.side, p.amount_minor from postings p \
             join unnest($1::text[], $2::bigint[]) as k(institution_id, seq) \
               on p.institution_id = k.institution_id and p.seq = k.seq \
             order by p.institution_id, p.seq, p.leg",
        )
        .bind(&pi)
        .bind(&ps)
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
               select code, code, parent_code, 0 from jurisdictions where code = any($1) \
               union all \
               select up.start, j.code, j.parent_code, up.depth + 1 \
               from jurisdictions j join up on j.code = up.parent_code \
             ) select up.start, up.code, p.jurisdiction_code, p.version, p.effective_from, p.params \
               from up left join rule_packs p on p.jurisdiction_code = up.code \
               order by up.start, up.depth desc",
        )
        .bind(&codes)
        .fetch_all(&mut *self.tx)
        .await?;
        let rows = rows
            .iter()
            .map(|r| {
                let pack = match r.try_get::<Option<i32>, _>("version")? {
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
             values ($1, $2, $3, $4, $5, 'pending', 0, $6, $6, $6)",
            )
            .bind(e.institution.as_str())
            .bind(e.client_id.as_str())
            .bind(e.kind.code())
            .bind(e.postings.first().map_or(0, |p| p.amount_minor))
            .bind(e.currency.code())
            .bind(e.recorded_at)
            .execute(&mut *self.tx)
            .await?;
        }
        let e = &c.entries;
        sqlx::query(
            "insert into entries (institution_id, seq, client_id, kind, currency, occurred_at, \
               recorded_at, external_ref, enrollment_id, hours, refers_to_seq, rule_pack, flags, \
               request_hash, prev_hash, hash) \
             select * from unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], \
               $6::timestamptz[], $7::timestamptz[], $8::text[], $9::text[], $10::int[], \
               $11::bigint[], $12::text[], $13::text[], $14::text[], $15::text[], $16::text[])",
        )
        .bind(e.iter().map(|x| x.institution.as_str()).collect::<Vec<_>>())
        .bind(e.iter().map(|x| x.seq).collect::<Vec<_>>())
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
        .execute(&mut *self.tx)
        .await?;

        let p = &c.postings;
        if !p.is_empty() {
            let posting = |(i, leg, _): &(usize, usize, Totals)| &e[*i].postings[*leg];
            sqlx::query(
                "insert into postings (institution_id, seq, leg, account_code, side, amount_minor, \
                   posted_debits_after_minor, posted_credits_after_minor, \
                   pending_debits_after_minor, pending_credits_after_minor) \
                 select * from unnest($1::text[], $2::bigint[], $3::smallint[], $4::text[], \
                   $5::bpchar[], $6::bigint[], $7::bigint[], $8::bigint[], $9::bigint[], $10::bigint[])",
            )
            .bind(p.iter().map(|(i, _, _)| e[*i].institution.as_str()).collect::<Vec<_>>())
            .bind(p.iter().map(|(i, _, _)| e[*i].seq).collect::<Vec<_>>())
            .bind(p.iter().map(|(_, leg, _)| *leg as i16).collect::<Vec<_>>())
            .bind(p.iter().map(|x| posting(x).account.as_str()).collect::<Vec<_>>())
            .bind(p.iter().map(|x| posting(x).side.code()).collect::<Vec<_>>())
            .bind(p.iter().map(|x| posting(x).amount_minor).collect::<Vec<_>>())
            .bind(p.iter().map(|(_, _, t)| t.posted_debits_minor).collect::<Vec<_>>())
            .bind(p.iter().map(|(_, _, t)| t.posted_credits_minor).collect::<Vec<_>>())
            .bind(p.iter().map(|(_, _, t)| t.pending_debits_minor).collect::<Vec<_>>())
            .bind(p.iter().map(|(_, _, t)| t.pending_credits_minor).collect::<Vec<_>>())
            .execute(&mut *self.tx)
            .await?;
        }

        let a = &c.accounts;
        if !a.is_empty() {
            sqlx::query(
                "update accounts a set posted_debits_minor = u.pd, posted_credits_minor = u.pc, \
                   pending_debits_minor = u.qd, pending_credits_minor = u.qc \
                 from unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[]) \
                   as u(institution_id, account_code, pd, pc, qd, qc) \
                 where a.institution_id = u.institution_id and a.account_code = u.account_code",
            )
            .bind(a.iter().map(|(i, _, _)| i.as_str()).collect::<Vec<_>>())
            .bind(a.iter().map(|(_, code, _)| code.to_string()).collect::<Vec<_>>())
            .bind(a.iter().map(|(_, _, t)| t.posted_debits_minor).collect::<Vec<_>>())
            .bind(a.iter().map(|(_, _, t)| t.posted_credits_minor).collect::<Vec<_>>())
            .bind(a.iter().map(|(_, _, t)| t.pending_debits_minor).collect::<Vec<_>>())
            .bind(a.iter().map(|(_, _, t)| t.pending_credits_minor).collect::<Vec<_>>())
            .execute(&mut *self.tx)
            .await?;
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
        sqlx::query(
            "update chain_heads h set last_seq = u.seq, last_hash = u.hash, last_recorded_at = u.at \
             from unnest($1::text[], $2::bigint[], $3::text[], $4::timestamptz[]) \
               as u(institution_id, seq, hash, at) \
             where h.institution_id = u.institution_id",
        )
        .bind(h.iter().map(|x| x.0.as_str()).collect::<Vec<_>>())
        .bind(h.iter().map(|x| x.1.last_seq).collect::<Vec<_>>())
        .bind(h.iter().map(|x| x.1.last_hash.as_str()).collect::<Vec<_>>())
        .bind(h.iter().map(|x| x.1.last_recorded_at).collect::<Vec<_>>())
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }
}

fn enrollment_row(r: &sqlx::postgres::PgRow) -> Result<EnrollmentBook> {
    EnrollmentRow {
        institution_id: r.try_get("institution_id")?,
        enrollment_id: r.try_get("enrollment_id")?,
        student_ref: r.try_get("student_ref")?,
        hours_bought: i64::from(r.try_get::<i32, _>("hours_bought")?),
        bonus_hours: i64::from(r.try_get::<i32, _>("bonus_hours")?),
        price_minor: r.try_get("price_minor")?,
        currency: r.try_get("currency")?,
        course_start: r.try_get("course_start")?,
        course_end: r.try_get("course_end")?,
        hours_consumed: i64::from(r.try_get::<i32, _>("hours_consumed")?),
        paid_minor: r.try_get("paid_minor")?,
        created_at: r.try_get("created_at")?,
    }
    .try_into()
}

fn rule_pack_row(r: &sqlx::postgres::PgRow) -> Result<RulePack> {
    let code: String = r.try_get("jurisdiction_code")?;
    let params: String = r.try_get("params")?;
    Ok(RulePack {
        jurisdiction: JurisdictionCode::parse(code)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?,
        version: u32::try_from(r.try_get::<i32, _>("version")?)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?,
        effective_from: r.try_get("effective_from")?,
        params: serde_json::from_str(&params)
            .map_err(|e| StoreError::Corrupt(format!("rule pack params: {e}")))?,
    })
}

impl PgStore {
    pub async fn connect(url: &str, clock: Clock) -> Result<PgStore> {
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
        Ok(PgStore { pool, clock })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    pub async fn migrate(&self) -> Result<()> {
        sqlx::migrate!("../../migrations/postgres")
            .run(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    pub async fn create_jurisdiction(&self, j: &Jurisdiction) -> Result<()> {
        let inserted = sqlx::query(
            "insert into jurisdictions (code, name, parent_code, created_at) values ($1, $2, $3, $4) \
             on conflict (code) do nothing",
        )
        .bind(j.code.as_str())
        .bind(&j.name)
        .bind(j.parent.as_ref().map(|p| p.as_str()))
        .bind(self.clock.now())
        .execute(&self.pool)
        .await;
        match inserted {
            Err(e) if is_fk_violation(&e) => {
                return Err(LedgerError::UnknownJurisdiction {
                    code: j.parent.as_ref().map(|p| p.to_string()).unwrap_or_default(),
                }
                .into())
            }
            Err(sqlx::Error::Database(d)) if d.code().as_deref() == Some("23514") => {
                return Err(LedgerError::InvalidInstitution {
                    reason: format!("jurisdiction {}: only 000000 is the root", j.code),
                }
                .into())
            }
            other => other?,
        };
        let row = sqlx::query("select name, parent_code from jurisdictions where code = $1")
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
             values ($1, $2, $3, $4, $5) on conflict do nothing",
        )
        .bind(pack.jurisdiction.as_str())
        .bind(pack.version as i32)
        .bind(pack.effective_from)
        .bind(&params)
        .bind(self.clock.now())
        .execute(&self.pool)
        .await;
        match inserted {
            Err(e) if is_fk_violation(&e) => {
                return Err(LedgerError::UnknownJurisdiction {
                    code: pack.jurisdiction.to_string(),
                }
                .into())
            }
            other => other?,
        };
        let row = sqlx::query(
            "select jurisdiction_code, version, effective_from, params from rule_packs \
             where jurisdiction_code = $1 and version = $2",
        )
        .bind(pack.jurisdiction.as_str())
        .bind(pack.version as i32)
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
        let now = self.clock.now();
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(
            "insert into institutions (institution_id, name, licence_no, jurisdiction_code, mode, \
               category, status, currency, created_at) values ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
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
            Err(e) if is_fk_violation(&e) => {
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
        let codes: Vec<String> = AccountCode::FIXED.iter().map(|c| c.to_string()).collect();
        let types: Vec<&str> = AccountCode::FIXED
            .iter()
            .map(|c| match c.account_type() {
                crate::domain::accounts::AccountType::Asset => "asset",
                crate::domain::accounts::AccountType::Liability => "liability",
            })
            .collect();
        sqlx::query(
            "insert into accounts (institution_id, account_code, account_type, currency, created_at) \
             select $1, code, kind, $4, $5 from unnest($2::text[], $3::text[]) as u(code, kind)",
        )
        .bind(i.id.as_str())
        .bind(&codes)
        .bind(&types)
        .bind(i.currency.code())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "insert into chain_heads (institution_id, last_seq, last_hash, last_recorded_at) \
             values ($1, 0, $2, null)",
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
        let now = crate::domain::chain::truncate_to_micros(self.clock.now());
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(
            "insert into enrollments (institution_id, enrollment_id, student_ref, hours_bought, \
               bonus_hours, price_minor, currency, course_start, course_end, created_at) \
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) on conflict do nothing",
        )
        .bind(e.institution.as_str())
        .bind(e.id.as_str())
        .bind(&e.student_ref)
        .bind(e.hours_bought as i32)
        .bind(e.bonus_hours as i32)
        .bind(e.price.minor())
        .bind(e.currency.code())
        .bind(e.course_start)
        .bind(e.course_end)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 0 {
            let row = sqlx::query(
                "select * from enrollments where institution_id = $1 and enrollment_id = $2",
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
             values ($1, $2, 'liability', $3, $4)",
        )
        .bind(e.institution.as_str())
        .bind(AccountCode::Prepaid(e.id.clone()).to_string())
        .bind(e.currency.code())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let digest = crate::domain::chain::enrollment_record_digest(e, now.timestamp_micros());
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
        let row = sqlx::query("select * from institutions where institution_id = $1")
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
             where i.institution_id = $1 order by a.account_code",
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
            "select * from enrollments where institution_id = $1 order by enrollment_id",
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
        loop {
            let tx = self.pool.begin().await?;
            let mut tx = PgTx { tx };
            match run_batch(&mut tx, requests, self.clock.now()).await {
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
        let ids: Vec<&str> = ids.iter().map(InstitutionId::as_str).collect();
        let rows = sqlx::query(
            "select * from accounts where institution_id = any($1) order by institution_id, account_code",
        )
        .bind(ids)
        .fetch_all(&self.pool)
        .await?;
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
            sqlx::query("select * from accounts where institution_id = $1 order by account_code")
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
        let created_at: DateTime<Utc> =
            sqlx::query_scalar("select created_at from institutions where institution_id = $1")
                .bind(id.as_str())
                .fetch_one(&self.pool)
                .await?;
        if at < created_at {
            return Err(LedgerError::BeforeInstitutionExisted {
                institution: id.to_string(),
                at: at.to_rfc3339(),
                created_at: created_at.to_rfc3339(),
            }
            .into());
        }
        let rows = sqlx::query(
            "select a.account_code, p.posted_debits_after_minor, p.posted_credits_after_minor, \
               p.pending_debits_after_minor, p.pending_credits_after_minor \
             from accounts a left join lateral ( \
               select * from postings p where p.institution_id = a.institution_id \
                 and p.account_code = a.account_code \
                 and p.seq <= (select coalesce(max(seq), 0) from entries \
                               where institution_id = $1 and recorded_at <= $2) \
               order by p.seq desc, p.leg desc limit 1) p on true \
             where a.institution_id = $1 and a.created_at <= $2 order by a.account_code",
        )
        .bind(id.as_str())
        .bind(at)
        .fetch_all(&self.pool)
        .await?;
        let accounts = rows
            .iter()
            .map(|r| {
                let code = rows::account_code(r.try_get("account_code")?)?;
                let get =
                    |c: &str| -> Result<i64> { Ok(r.try_get::<Option<i64>, _>(c)?.unwrap_or(0)) };
                let totals = rows::totals([
                    get("posted_debits_after_minor")?,
                    get("posted_credits_after_minor")?,
                    get("pending_debits_after_minor")?,
                    get("pending_credits_after_minor")?,
                ]);
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
            "select {ENTRY_COLUMNS} from entries e where (e.institution_id, e.seq) > ($1, $2) \
             order by e.institution_id, e.seq limit $3"
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
             where (institution_id, seq) > ($1, $2) and (institution_id, seq) <= ($3, $4) \
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
            "select {ENTRY_COLUMNS} from entries e where e.institution_id = $1 and e.seq > $2 \
             order by e.seq limit $3"
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
             where institution_id = $1 and seq > $2 and seq <= $3 order by seq, leg",
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
             where institution_id = $1 and seq > $2 and seq <= $3 order by seq, leg",
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
                    i64::from(r.try_get::<i16, _>("leg")?),
                    totals_of(r, "_after_minor")?,
                ))
            })
            .collect()
    }

    pub async fn head(&self, id: &InstitutionId) -> Result<ChainHead> {
        let r = sqlx::query("select * from chain_heads where institution_id = $1")
            .bind(id.as_str())
            .fetch_one(&self.pool)
            .await?;
        Ok(ChainHead {
            last_seq: r.try_get("last_seq")?,
            last_hash: r.try_get("last_hash")?,
            last_recorded_at: r.try_get("last_recorded_at")?,
        })
    }
}
