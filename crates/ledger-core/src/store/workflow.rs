//! The refund workflow and the outbox in the store, both dialects. Every
//! move is a conditional update (`where state = <from>`): when two job
//! runners race, exactly one makes it, the other sees zero rows and moves on.
//! Outbox items are claimed with a lease, so two runners never send the same
//! instruction at once (and if one dies mid-send, the lease runs out and the
//! other sends it again under the same idempotency key).

use chrono::{Duration, NaiveDate};

use crate::domain::chain::{payee_digest, refund_digest};
use crate::domain::error::LedgerError;
use crate::domain::ids::{EnrollmentId, InstitutionId, RefundId};
use crate::domain::refunds::{OutboxItem, OutboxState, Payee, Refund, RefundEvent, RefundState};
use crate::store::bulk::within;
use crate::store::rows::corrupt_as;
use crate::store::{DbTime, IdSpan, Result, Store, StoreError};

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

#[derive(sqlx::FromRow)]
struct RefundRow {
    institution_id: String,
    refund_id: String,
    enrollment_id: String,
    amount_minor: Option<i64>,
    payee_name: String,
    payee_account: String,
    payee_bank: String,
    reason: Option<String>,
    requested_by: String,
    requested_on: NaiveDate,
    answer_by: NaiveDate,
    state: String,
    pay_by: Option<NaiveDate>,
    instruction_id: Option<String>,
}

impl TryFrom<RefundRow> for Refund {
    type Error = StoreError;
    fn try_from(r: RefundRow) -> Result<Self> {
        Ok(Refund {
            institution: InstitutionId::parse(r.institution_id).map_err(corrupt_as("refund"))?,
            id: RefundId::parse(r.refund_id).map_err(corrupt_as("refund"))?,
            enrollment: EnrollmentId::parse(r.enrollment_id).map_err(corrupt_as("refund"))?,
            amount_minor: r.amount_minor,
            payee: Payee {
                name: r.payee_name,
                account: r.payee_account,
                bank: r.payee_bank,
            },
            reason: r.reason,
            requested_by: r.requested_by,
            requested_on: r.requested_on,
            answer_by: r.answer_by,
            state: RefundState::parse(&r.state).map_err(corrupt_as("refund state"))?,
            pay_by: r.pay_by,
            instruction_id: r.instruction_id,
        })
    }
}

/// The columns of an outbox item.
pub(crate) const OUTBOX_FIELDS: &str = "institution_id, instruction_id, kind, amount_minor, \
    currency, state, attempts, next_attempt_at, bank_ref, last_error";

#[derive(sqlx::FromRow)]
pub(crate) struct OutboxRow {
    institution_id: String,
    instruction_id: String,
    kind: String,
    amount_minor: i64,
    currency: String,
    state: String,
    attempts: i32,
    next_attempt_at: DbTime,
    bank_ref: Option<String>,
    last_error: Option<String>,
}

impl OutboxRow {
    pub fn institution_id(&self) -> &str {
        &self.institution_id
    }

    pub fn instruction_id(&self) -> &str {
        &self.instruction_id
    }
}

impl TryFrom<OutboxRow> for OutboxItem {
    type Error = StoreError;
    fn try_from(r: OutboxRow) -> Result<Self> {
        Ok(OutboxItem {
            institution: InstitutionId::parse(r.institution_id)
                .map_err(corrupt_as("outbox item"))?,
            instruction_id: r.instruction_id,
            kind: r.kind,
            amount_minor: r.amount_minor,
            currency: r.currency,
            state: OutboxState::parse(&r.state).map_err(corrupt_as("outbox state"))?,
            attempts: r.attempts,
            next_attempt_at: r.next_attempt_at.utc(),
            bank_ref: r.bank_ref,
            last_error: r.last_error,
        })
    }
}

/// Which outbox items a runner claims: up to `limit` in `state` that are
/// due at `now`, leased until `until`.
pub(crate) struct OutboxClaim<'a> {
    pub state: &'a str,
    pub now: DbTime,
    pub until: DbTime,
    pub limit: i64,
}

#[derive(sqlx::FromRow)]
struct RefundEventRow {
    seq: i64,
    at: DbTime,
    actor: String,
    state: String,
    detail: Option<String>,
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
            .bind(r.id.as_str())
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
            seal_record!(tx, institution, "refund", r.id.as_str(), refund_digest(r));
            refund_event!(
                tx,
                now,
                institution,
                r.id.as_str(),
                &r.requested_by,
                "requested",
                r.reason.as_deref()
            );
        });
        Ok(())
    }

    pub async fn refund(&self, institution: &InstitutionId, id: &str) -> Result<Option<Refund>> {
        let row: Option<RefundRow> = on_reader!(self, |pool| sqlx::query_as(&format!(
            "{REFUND_COLUMNS} where institution_id = $1 and refund_id = $2"
        ))
        .bind(institution.as_str())
        .bind(id)
        .fetch_optional(pool)
        .await?);
        row.map(Refund::try_from).transpose()
    }

    /// A refund by its id alone (ids are unique across institutions).
    pub async fn refund_by_id(&self, id: &str) -> Result<Option<Refund>> {
        let row: Option<RefundRow> = on_reader!(self, |pool| sqlx::query_as(&format!(
            "{REFUND_COLUMNS} where refund_id = $1"
        ))
        .bind(id)
        .fetch_optional(pool)
        .await?);
        row.map(Refund::try_from).transpose()
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
        let rows: Vec<RefundRow> = on_reader!(self, |pool| sqlx::query_as(&sql)
            .bind(i)
            .bind(st)
            .fetch_all(pool)
            .await?);
        crate::store::rows::convert(rows)
    }

    /// One enrollment's refunds, oldest first.
    pub async fn refunds_of(
        &self,
        institution: &InstitutionId,
        enrollment: &EnrollmentId,
    ) -> Result<Vec<Refund>> {
        let sql = format!(
            "{REFUND_COLUMNS} where institution_id = $1 and enrollment_id = $2 \
             order by requested_on, refund_id"
        );
        let rows: Vec<RefundRow> = on_reader!(self, |pool| sqlx::query_as(&sql)
            .bind(institution.as_str())
            .bind(enrollment.as_str())
            .fetch_all(pool)
            .await?);
        crate::store::rows::convert(rows)
    }

    /// Every refund (of a span's institutions, or all), oldest first.
    pub async fn refunds_in(&self, span: Option<IdSpan<'_>>) -> Result<Vec<Refund>> {
        let sql = format!(
            "{REFUND_COLUMNS}{} order by requested_on, institution_id, refund_id",
            within(span, "where", "institution_id", 1)
        );
        let rows: Vec<RefundRow> = on_reader!(self, |pool| bind_span!(sqlx::query_as(&sql), span)
            .fetch_all(pool)
            .await?);
        crate::store::rows::convert(rows)
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
        let rows: Vec<RefundEventRow> = on_reader!(self, |pool| sqlx::query_as(
            "select cast(seq as bigint) as seq, at, actor, state, detail from refund_events \
             where institution_id = $1 and refund_id = $2 order by seq",
        )
        .bind(institution.as_str())
        .bind(id)
        .fetch_all(pool)
        .await?);
        Ok(rows
            .into_iter()
            .map(|r| RefundEvent {
                seq: r.seq,
                at: r.at.utc(),
                actor: r.actor,
                state: r.state,
                detail: r.detail,
            })
            .collect())
    }

    /// Claims up to `limit` outbox items in `state` that are due, for
    /// `lease`: nobody else claims them until it runs out.
    pub async fn claim_outbox(
        &self,
        state: OutboxState,
        limit: i64,
        lease: Duration,
    ) -> Result<Vec<OutboxItem>> {
        let now = self.now();
        let claim = OutboxClaim {
            state: state.code(),
            now: DbTime::from(now),
            until: DbTime::from(now + lease),
            limit,
        };
        // The one query each dialect writes its own way: PostgreSQL skips
        // the rows another runner locked, SQLite's one writer is the lock.
        let rows: Vec<OutboxRow> = on_pool!(self, |pool, dialect| dialect
            .claim_outbox(pool, &claim)
            .await?);
        crate::store::rows::convert(rows)
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
        let now = self.now();
        let next_attempt_at = DbTime::from(now + retry_after.unwrap_or_else(Duration::zero));
        let now = DbTime::from(now);
        on_pool!(self, |pool| sqlx::query(sql)
            .bind(institution.as_str())
            .bind(instruction_id)
            .bind(state.code())
            .bind(bank_ref)
            .bind(error)
            .bind(next_attempt_at)
            .bind(now)
            .execute(pool)
            .await
            .map(|_| ()))?;
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
        let row: Option<(String, String, String)> = on_reader!(self, |pool| sqlx::query_as(sql)
            .bind(institution.as_str())
            .fetch_optional(pool)
            .await?);
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
        Ok(on_reader!(self, |pool| sqlx::query_scalar(sql)
            .bind(institution.as_str())
            .bind(client_id)
            .fetch_optional(pool)
            .await?))
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
        Ok(on_reader!(self, |pool| sqlx::query_as(sql)
            .bind(institution.as_str())
            .fetch_all(pool)
            .await?))
    }

    /// Claims a scheduled job's run for a slot (a day, an hour); `false` if
    /// another process (or an earlier pass) already has it.
    pub async fn claim_job_run(&self, job: &str, slot: &str, by: &str) -> Result<bool> {
        let sql =
            "insert into job_runs (job, slot, claimed_by, claimed_at) values ($1, $2, $3, $4) \
                   on conflict (job, slot) do nothing";
        let now = DbTime::from(self.now());
        let n = on_pool!(self, |pool| sqlx::query(sql)
            .bind(job)
            .bind(slot)
            .bind(by)
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(n == 1)
    }

    /// Outbox items, of one institution or all, by instruction id.
    pub async fn outbox(&self, institution: Option<&InstitutionId>) -> Result<Vec<OutboxItem>> {
        let i = institution.map(|i| i.as_str().to_string());
        let rows: Vec<OutboxRow> = on_reader!(self, |pool| sqlx::query_as(&format!(
            "select {OUTBOX_FIELDS} from outbox where ($1 is null or institution_id = $1) \
             order by institution_id, instruction_id"
        ))
        .bind(i)
        .fetch_all(pool)
        .await?);
        crate::store::rows::convert(rows)
    }
}
