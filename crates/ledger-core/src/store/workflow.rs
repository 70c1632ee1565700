//! The refund workflow and the outbox in the store, both dialects. Every
//! move is a conditional update (`where state = <from>`): when two job
//! runners race, exactly one makes it, the other sees zero rows and moves on.
//! Outbox items are claimed with a lease, so two runners never send the same
//! instruction at once (and if one dies mid-send, the lease runs out and the
//! other sends it again under the same idempotency key).

use chrono::{DateTime, Duration, NaiveDate, Utc};

use crate::domain::chain::{payee_digest, refund_digest};
use crate::domain::error::LedgerError;
use crate::domain::ids::{EnrollmentId, InstitutionId};
use crate::domain::refunds::{OutboxItem, OutboxState, Payee, Refund, RefundEvent, RefundState};
use crate::store::time::from_micros;
use crate::store::{Result, Store, StoreError};

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

macro_rules! refund_event {
    ($tx:ident, $now:ident, $institution:expr, $refund:expr, $actor:expr, $state:expr, $detail:expr) => {{
        let seq: i64 = sqlx::query_scalar(
            "select cast(coalesce(max(seq), 0) + 1 as bigint) from refund_events \
             where institution_id = $1 and refund_id = $2",
        )
        .bind($institution)
        .bind($refund)
        .fetch_one(&mut *$tx)
        .await?;
        sqlx::query(
            "insert into refund_events (institution_id, refund_id, seq, at, actor, state, detail) \
             values ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind($institution)
        .bind($refund)
        .bind(seq as i32)
        .bind($now)
        .bind($actor)
        .bind($state)
        .bind($detail)
        .execute(&mut *$tx)
        .await?;
        let digest = $crate::domain::chain::refund_event_digest(
            $institution,
            $refund,
            seq,
            $now.micros(),
            $actor,
            $state,
            $detail,
        );
        seal_record!(
            $tx,
            $institution,
            "refund_event",
            $crate::domain::chain::refund_event_key($refund, seq),
            digest
        );
    }};
}

const REFUND_COLUMNS: &str = "select institution_id, refund_id, enrollment_id, amount_minor, \
    payee_name, payee_account, payee_bank, reason, requested_by, requested_on, answer_by, state, \
    pay_by, instruction_id from refunds";

type RefundRow = (
    String,
    String,
    String,
    Option<i64>,
    String,
    String,
    String,
    Option<String>,
    String,
    NaiveDate,
    NaiveDate,
    String,
    Option<NaiveDate>,
    Option<String>,
);

fn refund(r: RefundRow) -> Result<Refund> {
    Ok(Refund {
        institution: InstitutionId::parse(r.0).map_err(corrupt)?,
        id: r.1,
        enrollment: EnrollmentId::parse(r.2).map_err(corrupt)?,
        amount_minor: r.3,
        payee: Payee {
            name: r.4,
            account: r.5,
            bank: r.6,
        },
        reason: r.7,
        requested_by: r.8,
        requested_on: r.9,
        answer_by: r.10,
        state: RefundState::parse(&r.11).map_err(corrupt)?,
        pay_by: r.12,
        instruction_id: r.13,
    })
}

const OUTBOX_COLUMNS: &str =
    "select institution_id, instruction_id, kind, amount_minor, currency, \
    state, attempts, next_attempt_at, bank_ref, last_error from outbox";

type OutboxRow<T> = (
    String,
    String,
    String,
    i64,
    String,
    String,
    i32,
    T,
    Option<String>,
    Option<String>,
);

fn outbox_item(r: OutboxRow<DateTime<Utc>>) -> Result<OutboxItem> {
    Ok(OutboxItem {
        institution: InstitutionId::parse(r.0).map_err(corrupt)?,
        instruction_id: r.1,
        kind: r.2,
        amount_minor: r.3,
        currency: r.4,
        state: OutboxState::parse(&r.5).map_err(corrupt)?,
        attempts: r.6,
        next_attempt_at: r.7,
        bank_ref: r.8,
        last_error: r.9,
    })
}

fn sqlite_outbox(r: OutboxRow<i64>) -> Result<OutboxItem> {
    outbox_item((
        r.0,
        r.1,
        r.2,
        r.3,
        r.4,
        r.5,
        r.6,
        from_micros(r.7)?,
        r.8,
        r.9,
    ))
}

impl Store {
    /// Records a refund request (state `requested`) and its first event.
    pub async fn create_refund(&self, r: &Refund) -> Result<()> {
        self.institution(&r.institution).await?;
        let institution = r.institution.as_str();
        in_tx!(self, |tx, now| {
            let inserted = sqlx::query(
                "insert into refunds (institution_id, refund_id, enrollment_id, amount_minor, \
                   payee_name, payee_account, payee_bank, reason, requested_by, requested_on, \
                   answer_by, state, updated_at) \
                 values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'requested', $12)",
            )
            .bind(institution)
            .bind(&r.id)
            .bind(r.enrollment.as_str())
            .bind(r.amount_minor)
            .bind(&r.payee.name)
            .bind(&r.payee.account)
            .bind(&r.payee.bank)
            .bind(&r.reason)
            .bind(&r.requested_by)
            .bind(r.requested_on)
            .bind(r.answer_by)
            .bind(now)
            .execute(&mut *tx)
            .await;
            match inserted {
                Err(sqlx::Error::Database(e)) if e.is_foreign_key_violation() => {
                    return Err(LedgerError::UnknownEnrollment {
                        institution: institution.to_string(),
                        enrollment: r.enrollment.to_string(),
                    }
                    .into())
                }
                other => other?,
            };
            seal_record!(tx, institution, "refund", r.id, refund_digest(r));
            refund_event!(
                tx,
                now,
                institution,
                &r.id,
                &r.requested_by,
                "requested",
                r.reason.as_deref()
            );
        });
        Ok(())
    }

    pub async fn refund(&self, institution: &InstitutionId, id: &str) -> Result<Option<Refund>> {
        let sql = format!("{REFUND_COLUMNS} where institution_id = $1 and refund_id = $2");
        let row: Option<RefundRow> = match self {
            Store::Postgres(s) => {
                sqlx::query_as(&sql)
                    .bind(institution.as_str())
                    .bind(id)
                    .fetch_optional(s.pool())
                    .await?
            }
            Store::Sqlite(s) => {
                sqlx::query_as(&sql)
                    .bind(institution.as_str())
                    .bind(id)
                    .fetch_optional(s.pool())
                    .await?
            }
        };
        row.map(refund).transpose()
    }

    /// A refund by its id alone (ids are unique across institutions).
    pub async fn refund_by_id(&self, id: &str) -> Result<Option<Refund>> {
        let sql = format!("{REFUND_COLUMNS} where refund_id = $1");
        let row: Option<RefundRow> = match self {
            Store::Postgres(s) => {
                sqlx::query_as(&sql)
                    .bind(id)
                    .fetch_optional(s.pool())
                    .await?
            }
            Store::Sqlite(s) => {
                sqlx::query_as(&sql)
                    .bind(id)
                    .fetch_optional(s.pool())
                    .await?
            }
        };
        row.map(refund).transpose()
    }

    /// Refunds in a state, of one institution or all, oldest first.
    pub async fn refunds(
        &self,
        institution: Option<&InstitutionId>,
        state: Option<RefundState>,
    ) -> Result<Vec<Refund>> {
        let sql = format!(
            "{REFUND_COLUMNS} where ($1 is null or institution_id = $1) and ($2 is null or state = $2) \
             order by requested_on, institution_id, refund_id"
        );
        let i = institution.map(|i| i.as_str().to_string());
        let st = state.map(|s| s.code());
        let rows: Vec<RefundRow> = match self {
            Store::Postgres(s) => {
                sqlx::query_as(&sql)
                    .bind(i)
                    .bind(st)
                    .fetch_all(s.pool())
                    .await?
            }
            Store::Sqlite(s) => {
                sqlx::query_as(&sql)
                    .bind(i)
                    .bind(st)
                    .fetch_all(s.pool())
                    .await?
            }
        };
        rows.into_iter().map(refund).collect()
    }

    /// Moves a refund from `from` to `to` with an event; `false` when it was
    /// not in `from` any more (another runner, or an officer, got there first).
    #[allow(clippy::too_many_arguments)]
    pub async fn move_refund(
        &self,
        institution: &InstitutionId,
        id: &str,
        from: RefundState,
        to: RefundState,
        actor: &str,
        detail: Option<&str>,
        pay_by: Option<NaiveDate>,
        instruction_id: Option<&str>,
    ) -> Result<bool> {
        if !from.may_become(to) {
            return Err(LedgerError::InvalidField {
                field: "state",
                reason: format!("a {} refund cannot become {}", from.code(), to.code()),
            }
            .into());
        }
        let institution = institution.as_str();
        Ok(in_tx!(self, |tx, now| {
            let moved = sqlx::query(
                "update refunds set state = $3, updated_at = $4, \
                   pay_by = coalesce($5, pay_by), instruction_id = coalesce($6, instruction_id) \
                 where institution_id = $1 and refund_id = $2 and state = $7",
            )
            .bind(institution)
            .bind(id)
            .bind(to.code())
            .bind(now)
            .bind(pay_by)
            .bind(instruction_id)
            .bind(from.code())
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            if moved {
                refund_event!(tx, now, institution, id, actor, to.code(), detail);
            }
            moved
        }))
    }

    /// Every move of a refund, oldest first.
    pub async fn refund_trail(
        &self,
        institution: &InstitutionId,
        id: &str,
    ) -> Result<Vec<RefundEvent>> {
        let sql = "select cast(seq as bigint), at, actor, state, detail from refund_events \
                   where institution_id = $1 and refund_id = $2 order by seq";
        match self {
            Store::Postgres(s) => {
                sqlx::query_as::<_, (i64, DateTime<Utc>, String, String, Option<String>)>(sql)
                    .bind(institution.as_str())
                    .bind(id)
                    .fetch_all(s.pool())
                    .await?
                    .into_iter()
                    .map(|r| {
                        Ok(RefundEvent {
                            seq: r.0,
                            at: r.1,
                            actor: r.2,
                            state: r.3,
                            detail: r.4,
                        })
                    })
                    .collect()
            }
            Store::Sqlite(s) => {
                sqlx::query_as::<_, (i64, i64, String, String, Option<String>)>(sql)
                    .bind(institution.as_str())
                    .bind(id)
                    .fetch_all(s.pool())
                    .await?
                    .into_iter()
                    .map(|r| {
                        Ok(RefundEvent {
                            seq: r.0,
                            at: from_micros(r.1)?,
                            actor: r.2,
                            state: r.3,
                            detail: r.4,
                        })
                    })
                    .collect()
            }
        }
    }

    /// Claims up to `limit` outbox items in `state` that are due, for
    /// `lease`: nobody else claims them until it runs out.
    pub async fn claim_outbox(
        &self,
        state: OutboxState,
        limit: i64,
        lease: Duration,
    ) -> Result<Vec<OutboxItem>> {
        match self {
            Store::Postgres(s) => {
                let now = s.clock().now();
                let sql = format!(
                    "update outbox set lease_until = $1 where (institution_id, instruction_id) in ( \
                       select institution_id, instruction_id from outbox \
                       where state = $2 and next_attempt_at <= $3 and (lease_until is null or lease_until <= $3) \
                       order by next_attempt_at limit $4 for update skip locked) \
                     returning {}",
                    OUTBOX_COLUMNS.trim_start_matches("select ").split(" from ").next().unwrap_or("*")
                );
                sqlx::query_as::<_, OutboxRow<DateTime<Utc>>>(&sql)
                    .bind(now + lease)
                    .bind(state.code())
                    .bind(now)
                    .bind(limit)
                    .fetch_all(s.pool())
                    .await?
                    .into_iter()
                    .map(outbox_item)
                    .collect()
            }
            Store::Sqlite(s) => {
                // One writer at a time: the immediate transaction is the lock.
                let now = s.clock().now().timestamp_micros();
                let mut tx = s.pool().begin_with("BEGIN IMMEDIATE").await?;
                let rows: Vec<OutboxRow<i64>> = sqlx::query_as(&format!(
                    "{OUTBOX_COLUMNS} where state = $1 and next_attempt_at <= $2 \
                     and (lease_until is null or lease_until <= $2) order by next_attempt_at limit $3"
                ))
                .bind(state.code())
                .bind(now)
                .bind(limit)
                .fetch_all(&mut *tx)
                .await?;
                for r in &rows {
                    sqlx::query("update outbox set lease_until = $1 where institution_id = $2 and instruction_id = $3")
                        .bind(now + lease.num_microseconds().unwrap_or(i64::MAX / 2))
                        .bind(&r.0)
                        .bind(&r.1)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                rows.into_iter().map(sqlite_outbox).collect()
            }
        }
    }

    /// Records what came of an attempt: the new state, the bank's reference,
    /// an error and when to try next. Releases the lease.
    pub async fn update_outbox(
        &self,
        institution: &InstitutionId,
        instruction_id: &str,
        state: OutboxState,
        bank_ref: Option<&str>,
        error: Option<&str>,
        retry_after: Option<Duration>,
    ) -> Result<()> {
        let sql =
            "update outbox set state = $3, bank_ref = coalesce($4, bank_ref), last_error = $5, \
                     attempts = attempts + case when $5 is null then 0 else 1 end, \
                     next_attempt_at = $6, lease_until = null, updated_at = $7 \
                   where institution_id = $1 and instruction_id = $2";
        match self {
            Store::Postgres(s) => {
                let now = s.clock().now();
                sqlx::query(sql)
                    .bind(institution.as_str())
                    .bind(instruction_id)
                    .bind(state.code())
                    .bind(bank_ref)
                    .bind(error)
                    .bind(now + retry_after.unwrap_or_else(Duration::zero))
                    .bind(now)
                    .execute(s.pool())
                    .await?;
            }
            Store::Sqlite(s) => {
                let now = s.clock().now();
                sqlx::query(sql)
                    .bind(institution.as_str())
                    .bind(instruction_id)
                    .bind(state.code())
                    .bind(bank_ref)
                    .bind(error)
                    .bind((now + retry_after.unwrap_or_else(Duration::zero)).timestamp_micros())
                    .bind(now.timestamp_micros())
                    .execute(s.pool())
                    .await?;
            }
        }
        Ok(())
    }

    /// Records where the institution's releases are paid from now on (a new
    /// version; earlier ones stay). The payee already on file again is no
    /// change: its version is returned.
    pub async fn set_payee(
        &self,
        institution: &InstitutionId,
        payee: &Payee,
        by: &str,
    ) -> Result<i64> {
        self.institution(institution).await?;
        let id = institution.as_str();
        Ok(in_tx!(self, |tx, now| {
            // Setting the payee on file again is no change: a repeated PUT
            // makes no new version.
            let latest: Option<(i64, String, String, String)> = sqlx::query_as(
                "select cast(version as bigint), name, account, bank from institution_payees \
                 where institution_id = $1 order by version desc limit 1",
            )
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some((version, name, account, bank)) = latest {
                if (name.as_str(), account.as_str(), bank.as_str())
                    == (
                        payee.name.as_str(),
                        payee.account.as_str(),
                        payee.bank.as_str(),
                    )
                {
                    return Ok(version);
                }
            }
            let version: i64 = sqlx::query_scalar(
                "select cast(coalesce(max(version), 0) + 1 as bigint) from institution_payees \
                 where institution_id = $1",
            )
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
            sqlx::query(
                "insert into institution_payees (institution_id, version, name, account, bank, set_by, set_at) \
                 values ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(id)
            .bind(version as i32)
            .bind(&payee.name)
            .bind(&payee.account)
            .bind(&payee.bank)
            .bind(by)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            let digest = payee_digest(id, version, payee, by, now.micros());
            seal_record!(tx, id, "payee", version.to_string(), digest);
            version
        }))
    }

    /// Where the institution's releases are paid, if an officer has said.
    pub async fn payee(&self, institution: &InstitutionId) -> Result<Option<Payee>> {
        let sql = "select name, account, bank from institution_payees where institution_id = $1 \
                   order by version desc limit 1";
        let row: Option<(String, String, String)> = match self {
            Store::Postgres(s) => {
                sqlx::query_as(sql)
                    .bind(institution.as_str())
                    .fetch_optional(s.pool())
                    .await?
            }
            Store::Sqlite(s) => {
                sqlx::query_as(sql)
                    .bind(institution.as_str())
                    .fetch_optional(s.pool())
                    .await?
            }
        };
        Ok(row.map(|(name, account, bank)| Payee {
            name,
            account,
            bank,
        }))
    }

    /// The supervised cash account an instruction pays out of
    /// (`escrow_cash` or `deposit_cash`): the account its pending entry
    /// credits. A refund is paid from escrow, or from the risk deposit by an
    /// officer's decision; the outbox must debit the right bank account.
    pub async fn paying_account(
        &self,
        institution: &InstitutionId,
        client_id: &str,
    ) -> Result<Option<String>> {
        let sql = "select p.account_code from postings p join entries e \
                     on e.institution_id = p.institution_id and e.seq = p.seq \
                   where e.institution_id = $1 and e.client_id = $2 and p.side = 'C' \
                     and p.account_code in ('escrow_cash', 'deposit_cash')";
        Ok(match self {
            Store::Postgres(s) => {
                sqlx::query_scalar(sql)
                    .bind(institution.as_str())
                    .bind(client_id)
                    .fetch_optional(s.pool())
                    .await?
            }
            Store::Sqlite(s) => {
                sqlx::query_scalar(sql)
                    .bind(institution.as_str())
                    .bind(client_id)
                    .fetch_optional(s.pool())
                    .await?
            }
        })
    }

    /// Records an event of the institution (`kind` as the table allows).
    /// With a `request_key`, an event already recorded under that key is
    /// found and its number returned instead of recording it again.
    pub async fn record_event(
        &self,
        institution: &InstitutionId,
        kind: &str,
        occurred_on: NaiveDate,
        note: Option<&str>,
        by: &str,
        request_key: Option<&str>,
    ) -> Result<i64> {
        self.institution(institution).await?;
        let id = institution.as_str();
        Ok(in_tx!(self, |tx, now| {
            let recorded: Option<i64> = match request_key {
                Some(k) => {
                    sqlx::query_scalar(
                        "select cast(seq as bigint) from institution_events \
                         where institution_id = $1 and request_key = $2",
                    )
                    .bind(id)
                    .bind(k)
                    .fetch_optional(&mut *tx)
                    .await?
                }
                None => None,
            };
            if let Some(seq) = recorded {
                return Ok(seq);
            }
            let seq: i64 = sqlx::query_scalar(
                "select cast(coalesce(max(seq), 0) + 1 as bigint) from institution_events \
                 where institution_id = $1",
            )
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
            sqlx::query(
                "insert into institution_events \
                 (institution_id, seq, kind, occurred_on, note, recorded_by, recorded_at, request_key) \
                 values ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(id)
            .bind(seq as i32)
            .bind(kind)
            .bind(occurred_on)
            .bind(note)
            .bind(by)
            .bind(now)
            .bind(request_key)
            .execute(&mut *tx)
            .await?;
            seq
        }))
    }

    /// The institution's events, in the order recorded:
    /// (seq, kind, occurred on, note, recorded by).
    pub async fn events(
        &self,
        institution: &InstitutionId,
    ) -> Result<Vec<(i64, String, NaiveDate, Option<String>, String)>> {
        let sql = "select cast(seq as bigint), kind, occurred_on, note, recorded_by \
                   from institution_events where institution_id = $1 order by seq";
        Ok(match self {
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
        })
    }

    /// Claims a scheduled job's run for a slot (a day, an hour); `false` if
    /// another process (or an earlier pass) already has it.
    pub async fn claim_job_run(&self, job: &str, slot: &str, by: &str) -> Result<bool> {
        let sql =
            "insert into job_runs (job, slot, claimed_by, claimed_at) values ($1, $2, $3, $4) \
                   on conflict (job, slot) do nothing";
        let n = match self {
            Store::Postgres(s) => sqlx::query(sql)
                .bind(job)
                .bind(slot)
                .bind(by)
                .bind(s.clock().now())
                .execute(s.pool())
                .await?
                .rows_affected(),
            Store::Sqlite(s) => sqlx::query(sql)
                .bind(job)
                .bind(slot)
                .bind(by)
                .bind(s.clock().now().timestamp_micros())
                .execute(s.pool())
                .await?
                .rows_affected(),
        };
        Ok(n == 1)
    }

    /// Outbox items, of one institution or all, by instruction id.
    pub async fn outbox(&self, institution: Option<&InstitutionId>) -> Result<Vec<OutboxItem>> {
        let sql = format!(
            "{OUTBOX_COLUMNS} where ($1 is null or institution_id = $1) order by institution_id, instruction_id"
        );
        let i = institution.map(|i| i.as_str().to_string());
        match self {
            Store::Postgres(s) => sqlx::query_as::<_, OutboxRow<DateTime<Utc>>>(&sql)
                .bind(i)
                .fetch_all(s.pool())
                .await?
                .into_iter()
                .map(outbox_item)
                .collect(),
            Store::Sqlite(s) => sqlx::query_as::<_, OutboxRow<i64>>(&sql)
                .bind(i)
                .fetch_all(s.pool())
                .await?
                .into_iter()
                .map(sqlite_outbox)
                .collect(),
        }
    }
}
