//! A group commit's batch, both dialects: many callers' single requests in
//! one transaction, each with its own outcome. Every request is checked
//! against the books as the requests before it left them (`run_batch_each`);
//! a refused one is kept out of the write and answered with its refusal.
//! The answer a request's caller keeps under its Idempotency-Key, and that
//! request's audit record, are written in the same transaction as its
//! entry, so an acknowledged request has all three or none.

use chrono::{DateTime, Utc};

use crate::domain::entry::{Entry, Request};
use crate::domain::error::LedgerError;
use crate::store::{
    run_batch_each, AuditRecord, BatchOn, DbTime, KeptAnswer, Result, Store, StoreError,
};

/// What to keep for a request once its entry is known: the answer under
/// (`token_id`, `key`) and its audit record. `body` renders the answer
/// from the entry (a replay answers with the original entry).
pub struct KeepWith {
    pub token_id: String,
    pub key: String,
    pub request_hash: String,
    pub status: u16,
    pub audit: AuditRecord,
    pub body: Box<dyn Fn(&Entry) -> String + Send + Sync>,
}

impl std::fmt::Debug for KeepWith {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeepWith")
            .field("token_id", &self.token_id)
            .field("key", &self.key)
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

/// One request's outcome in a group: its entry (new or the original of a
/// replay) or the rule that refused it.
pub type EachOutcome = std::result::Result<Entry, StoreError>;

/// Writes the kept answers and audit records of the accepted requests, in
/// the batch's transaction `$tx` (either dialect).
macro_rules! write_kept {
    ($tx:ident, $now:ident, $kept:expr) => {
        for (keep, answer) in $kept {
            sqlx::query(
                "insert into idempotent_answers \
                   (token_id, idem_key, request_hash, status, body, created_at) \
                 values ($1, $2, $3, $4, $5, $6) on conflict (token_id, idem_key) do nothing",
            )
            .bind(&keep.token_id)
            .bind(&keep.key)
            .bind(&answer.request_hash)
            .bind(i32::from(answer.status))
            .bind(&answer.body)
            .bind($now)
            .execute(&mut *$tx)
            .await?;
        }
        for (keep, _) in $kept {
            append_audit!($tx, $now, &keep.audit);
        }
    };
}

/// The answers to keep: one per accepted request that has a `KeepWith`.
fn kept<'a>(
    answers: &[std::result::Result<Entry, LedgerError>],
    keeps: &[Option<&'a KeepWith>],
) -> Vec<(&'a KeepWith, KeptAnswer)> {
    answers
        .iter()
        .zip(keeps.iter().copied())
        .filter_map(|(answer, keep)| {
            let (Ok(entry), Some(keep)) = (answer, keep) else {
                return None;
            };
            Some((
                keep,
                KeptAnswer {
                    request_hash: keep.request_hash.clone(),
                    status: keep.status,
                    body: (keep.body)(entry),
                },
            ))
        })
        .collect()
}

impl Store {
    /// Records many callers' requests in one transaction, each on its own:
    /// one outcome per request, in order. A refused request (bad input, a
    /// ledger rule) changes nothing and does not affect the others; the
    /// accepted ones, their kept answers and audit records commit together.
    /// An `Err` is the database's: nothing of the batch was written.
    pub async fn execute_each(
        &self,
        items: &[(Request, Option<KeepWith>)],
    ) -> Result<Vec<EachOutcome>> {
        let mut outcomes: Vec<Option<EachOutcome>> = Vec::with_capacity(items.len());
        let mut requests = Vec::with_capacity(items.len());
        let mut keeps = Vec::with_capacity(items.len());
        for (request, keep) in items {
            match request.clone().validated() {
                Ok(r) => {
                    outcomes.push(None);
                    requests.push(r);
                    keeps.push(keep.as_ref());
                }
                Err(error) => outcomes.push(Some(Err(error.into()))),
            }
        }
        let answers = if requests.is_empty() {
            vec![]
        } else {
            self.run_each(&requests, &keeps).await?
        };
        let mut answers = answers.into_iter();
        Ok(outcomes
            .into_iter()
            .map(|o| match o {
                Some(refused) => refused,
                None => answers
                    .next()
                    .expect("one answer per valid request")
                    .map_err(StoreError::from),
            })
            .collect())
    }

    async fn run_each(
        &self,
        requests: &[Request],
        keeps: &[Option<&KeepWith>],
    ) -> Result<Vec<std::result::Result<Entry, LedgerError>>> {
        match self {
            Store::Postgres(s) => loop {
                let now: DateTime<Utc> = s.clock().now();
                let db_now = DbTime::from(now);
                let mut b = BatchOn {
                    tx: s.pool().begin().await?,
                };
                match run_batch_each(&mut b, requests, now).await {
                    Ok(answers) => {
                        let kept = kept(&answers, keeps);
                        let mut tx = b.tx;
                        write_kept!(tx, db_now, &kept);
                        tx.commit().await?;
                        return Ok(answers);
                    }
                    // A concurrent first write of the same client id raced
                    // us past the lock-free registration paths: retry sees it.
                    Err(StoreError::Database(e))
                        if crate::store::registry::violates(
                            &e,
                            sqlx::error::ErrorKind::UniqueViolation,
                        ) =>
                    {
                        continue
                    }
                    Err(e) => return Err(e),
                }
            },
            Store::Sqlite(s) => {
                let now: DateTime<Utc> = s.clock().now();
                let db_now = DbTime::from(now);
                let mut b = BatchOn {
                    tx: s.pool().begin_with("BEGIN IMMEDIATE").await?,
                };
                let answers = run_batch_each(&mut b, requests, now).await?;
                let kept = kept(&answers, keeps);
                let mut tx = b.tx;
                write_kept!(tx, db_now, &kept);
                tx.commit().await?;
                Ok(answers)
            }
        }
    }
}
