//! A group commit's batch, both dialects: many callers' single requests in
//! one transaction, each with its own outcome. Every request is checked
//! against the books as the requests before it left them (`run_batch_each`);
//! a refused one is kept out of the write and answered with its refusal.
//! The answer a request's caller keeps under its Idempotency-Key, and that
//! request's audit record, are written in the same transaction as its
//! entry, so an acknowledged request has all three or none.

use chrono::{DateTime, Utc};

use crate::domain::chain::{audit_digest, link_hash, AuditFields, AUDIT_SCOPE};
use crate::domain::entry::{Entry, Request};
use crate::domain::error::LedgerError;
use crate::store::{
    run_batch_each, AuditRecord, BatchOn, BatchStatements, BatchTx, DbTime, KeptAnswer, Result,
    Store, StoreError,
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

/// Rows per multi-row insert (well under either dialect's bind limit).
const ROWS_PER_INSERT: usize = 500;

/// `($1, …, $k), ($k+1, …)`: `rows` tuples of `columns` placeholders.
fn placeholders(rows: usize, columns: usize) -> String {
    (0..rows)
        .map(|r| {
            let cols: Vec<String> = (1..=columns)
                .map(|c| format!("${}", r * columns + c))
                .collect();
            format!("({})", cols.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The first of `$1` audit sequence numbers reserved for this batch, the
/// audit head being locked: PostgreSQL takes them from the column's
/// sequence in one step (consecutive: nobody else draws while the head is
/// locked).
const FIRST_AUDIT_SEQ_PG: &str = "select setval(pg_get_serial_sequence('audit_log', 'seq'),      nextval(pg_get_serial_sequence('audit_log', 'seq')) + $1 - 1) - $1 + 1";
/// SQLite: the one writer continues after the highest number used (the
/// log is append-only; `$1`, always positive, is bound for the same shape).
const FIRST_AUDIT_SEQ_LITE: &str = "select max(coalesce((select max(seq) from audit_log), 0),      coalesce((select seq from sqlite_sequence where name = 'audit_log'), 0)) + 1 where $1 > 0";

/// Writes the kept answers and the audit records (and their links in the
/// audit chain) of the accepted requests, in the batch's transaction `$tx`
/// (either dialect), a few statements for the whole batch: the audit head
/// is locked once, the sequence numbers reserved at once (`$first_seq`,
/// the dialect's query), the chain computed here.
macro_rules! write_kept {
    ($tx:ident, $now:ident, $kept:expr, $first_seq:expr) => {
        let kept: &[(&KeepWith, KeptAnswer)] = $kept;
        // A key answered twice in one batch (a repeat that met its first
        // attempt there) is kept once; each attempt keeps its audit record.
        let mut seen = std::collections::BTreeSet::new();
        let answers: Vec<&(&KeepWith, KeptAnswer)> = kept
            .iter()
            .filter(|(keep, _)| seen.insert((keep.token_id.as_str(), keep.key.as_str())))
            .collect();
        for chunk in answers.chunks(ROWS_PER_INSERT) {
            let sql = format!(
                "insert into idempotent_answers \
                   (token_id, idem_key, request_hash, status, body, created_at) \
                 values {} on conflict (token_id, idem_key) do nothing",
                placeholders(chunk.len(), 6)
            );
            let mut q = sqlx::query(&sql);
            for &(keep, answer) in chunk {
                q = q
                    .bind(&keep.token_id)
                    .bind(&keep.key)
                    .bind(&answer.request_hash)
                    .bind(i32::from(answer.status))
                    .bind(&answer.body)
                    .bind($now);
            }
            q.execute(&mut *$tx).await?;
        }
        if !kept.is_empty() {
            let n = i64::try_from(kept.len()).unwrap_or(i64::MAX);
            let mut prev: String = sqlx::query_scalar(
                "update audit_head set last_seq = last_seq where id = 1 returning last_hash",
            )
            .fetch_one(&mut *$tx)
            .await?;
            let first: i64 = sqlx::query_scalar($first_seq)
                .bind(n)
                .fetch_one(&mut *$tx)
                .await?;
            // (seq, digest, prev_hash, hash) of each record, in order.
            let mut links = Vec::with_capacity(kept.len());
            for (i, (keep, _)) in kept.iter().enumerate() {
                let seq = first + i64::try_from(i).unwrap_or(i64::MAX);
                let r = &keep.audit;
                let digest = audit_digest(&AuditFields {
                    seq,
                    at_micros: $now.micros(),
                    request_id: &r.request_id,
                    token_id: r.token_id.as_deref(),
                    role: r.role.as_deref(),
                    method: &r.method,
                    path: &r.path,
                    status: i64::from(r.status),
                    outcome: &r.outcome,
                });
                let hash = link_hash(&prev, AUDIT_SCOPE, seq, "audit", &seq.to_string(), &digest);
                links.push((
                    seq,
                    digest,
                    std::mem::replace(&mut prev, hash.clone()),
                    hash,
                ));
            }
            for (chunk, rows) in kept
                .chunks(ROWS_PER_INSERT)
                .zip(links.chunks(ROWS_PER_INSERT))
            {
                let sql = format!(
                    "insert into audit_log \
                       (seq, at, request_id, token_id, role, method, path, status, outcome) \
                     values {}",
                    placeholders(chunk.len(), 9)
                );
                let mut q = sqlx::query(&sql);
                for ((keep, _), (seq, _, _, _)) in chunk.iter().zip(rows) {
                    let r = &keep.audit;
                    q = q
                        .bind(*seq)
                        .bind($now)
                        .bind(&r.request_id)
                        .bind(&r.token_id)
                        .bind(&r.role)
                        .bind(&r.method)
                        .bind(&r.path)
                        .bind(i32::from(r.status))
                        .bind(&r.outcome);
                }
                q.execute(&mut *$tx).await?;
                let sql = format!(
                    "insert into audit_links (seq, digest, prev_hash, hash) values {}",
                    placeholders(rows.len(), 4)
                );
                let mut q = sqlx::query(&sql);
                for (seq, digest, prev_hash, hash) in rows {
                    q = q.bind(*seq).bind(digest).bind(prev_hash).bind(hash);
                }
                q.execute(&mut *$tx).await?;
            }
            let last = links.last().map(|l| (l.0, l.3.clone())).unwrap_or_default();
            sqlx::query("update audit_head set last_seq = $1, last_hash = $2 where id = 1")
                .bind(last.0)
                .bind(&last.1)
                .execute(&mut *$tx)
                .await?;
        }
    };
}

/// Turns into replays the requests refused as `exists_with_different_fields`
/// that are in fact a repeat of the request that made the entry: the same
/// caller, Idempotency-Key and request (hash) as an answer kept with that
/// entry, or as an accepted request earlier in this batch `$b`. Such a
/// repeat differs only in what the server filled in on its own (the
/// `occurred_at` of an attempt whose claim on the key was lost while the
/// first attempt still waited to be written, as when the database fails
/// over): it is the same request and gets the first attempt's entry.
macro_rules! settle_repeats {
    ($b:ident, $requests:expr, $keeps:expr, $answers:expr) => {
        let requests: &[Request] = $requests;
        let keeps: &[Option<&KeepWith>] = $keeps;
        let answers: &mut Vec<std::result::Result<Entry, LedgerError>> = $answers;
        let mut in_batch: std::collections::BTreeMap<(&str, &str), (&str, Entry)> =
            std::collections::BTreeMap::new();
        for i in 0..answers.len() {
            let Some(keep) = keeps[i] else { continue };
            let id = (keep.token_id.as_str(), keep.key.as_str());
            match &answers[i] {
                Ok(entry) => {
                    in_batch
                        .entry(id)
                        .or_insert_with(|| (keep.request_hash.as_str(), entry.clone()));
                }
                Err(LedgerError::ExistsWithDifferentFields { what: "entry", .. }) => {
                    let first = match in_batch.get(&id) {
                        Some((hash, entry)) => (*hash == keep.request_hash).then(|| entry.clone()),
                        None => {
                            let kept: Option<String> = sqlx::query_scalar(
                                "select request_hash from idempotent_answers \
                                 where token_id = $1 and idem_key = $2",
                            )
                            .bind(&keep.token_id)
                            .bind(&keep.key)
                            .fetch_optional(&mut *$b.tx)
                            .await?;
                            if kept.as_deref() == Some(keep.request_hash.as_str()) {
                                let r = &requests[i];
                                $b.load_entries(&[(r.institution.clone(), r.client_id.clone())])
                                    .await?
                                    .into_iter()
                                    .next()
                                    .map(|k| k.entry)
                            } else {
                                None
                            }
                        }
                    };
                    if let Some(entry) = first {
                        answers[i] = Ok(entry);
                    }
                }
                Err(_) => {}
            }
        }
    };
}

/// Whether a committed batch is durable yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flush {
    /// Its commit waited for its flush (or needs none).
    Done,
    /// It committed without waiting (one PostgreSQL server: the chain and
    /// audit heads are let go at once); [`Store::flush_log`] makes it
    /// durable, and nobody may be answered before.
    Owed,
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
        let (outcomes, flush) = self.execute_each_unflushed(items).await?;
        if flush == Flush::Owed {
            self.flush_log().await?;
        }
        Ok(outcomes)
    }

    /// [`Store::execute_each`] up to its commit: when the answer is
    /// [`Flush::Owed`] the batch is committed but not yet known durable,
    /// and its callers may be answered only after [`Store::flush_log`].
    /// What a group committer uses to write its next batch while this one's
    /// flush is under way.
    pub async fn execute_each_unflushed(
        &self,
        items: &[(Request, Option<KeepWith>)],
    ) -> Result<(Vec<EachOutcome>, Flush)> {
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
        let (answers, flush) = if requests.is_empty() {
            (vec![], Flush::Done)
        } else {
            self.run_each(&requests, &keeps).await?
        };
        let mut answers = answers.into_iter();
        let outcomes = outcomes
            .into_iter()
            .map(|o| match o {
                Some(refused) => refused,
                None => answers
                    .next()
                    .expect("one answer per valid request")
                    .map_err(StoreError::from),
            })
            .collect();
        Ok((outcomes, flush))
    }

    async fn run_each(
        &self,
        requests: &[Request],
        keeps: &[Option<&KeepWith>],
    ) -> Result<(Vec<std::result::Result<Entry, LedgerError>>, Flush)> {
        match self {
            Store::Postgres(s) => loop {
                let now: DateTime<Utc> = s.clock().now();
                let db_now = DbTime::from(now);
                let mut b = BatchOn::new(s.pool().begin().await?, s.batch_statements());
                match run_batch_each(&mut b, s.rule_cache(), requests, now).await {
                    Ok(mut answers) => {
                        settle_repeats!(b, requests, keeps, &mut answers);
                        let kept = kept(&answers, keeps);
                        let mut tx = b.tx;
                        write_kept!(tx, db_now, &kept, FIRST_AUDIT_SEQ_PG);
                        // Every batch locks the audit chain's head, so a
                        // commit that waited for its flush holding it made
                        // the batches take turns through the disk. On one
                        // server the commit lets go at once and the flush
                        // is awaited after (`Flush::Owed`), before anyone
                        // is answered: concurrent batches then share
                        // flushes, and a group committer writes its next
                        // batch while this one's flush is under way. Another
                        // reader may see the batch before it is durable,
                        // as it may any unacknowledged write; nothing acts
                        // on it outside the database unflushed (a repeat's
                        // kept answer and the outbox's claims flush first).
                        let early = self.commits_before_flush();
                        if early {
                            crate::store::postgres::Pg
                                .commit_without_flush_wait(&mut tx)
                                .await?;
                        }
                        tx.commit().await?;
                        let flush = if early { Flush::Owed } else { Flush::Done };
                        return Ok((answers, flush));
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
                let mut b = BatchOn::new(
                    s.pool().begin_with("BEGIN IMMEDIATE").await?,
                    BatchStatements::SetWise,
                );
                let mut answers = run_batch_each(&mut b, s.rule_cache(), requests, now).await?;
                settle_repeats!(b, requests, keeps, &mut answers);
                let kept = kept(&answers, keeps);
                let mut tx = b.tx;
                write_kept!(tx, db_now, &kept, FIRST_AUDIT_SEQ_LITE);
                tx.commit().await?;
                Ok((answers, Flush::Done))
            }
        }
    }
}
