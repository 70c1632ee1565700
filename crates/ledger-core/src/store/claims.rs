//! Claims on Idempotency-Keys, both dialects: the one request that may act
//! under a (caller, key) pair at a time. A claim is taken before the effect
//! and outlives a crash by its lease; the answer itself is kept in
//! `idempotent_answers` (see `access.rs`).

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::store::{DbTime, Result, Store, StoreError};

/// What a request gets when it asks to act under a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyClaim {
    /// This request holds the key and may act. `accepted_at` is when the
    /// key was first accepted: earlier than now when an attempt that died
    /// (crash, timeout) is taken over, so that defaults the server fills in
    /// are the same on every attempt. `attempt` counts from 1.
    Held {
        accepted_at: DateTime<Utc>,
        attempt: i32,
    },
    /// Another request holds the key until `lease_until`; `request_hash`
    /// says whether it is the same request (a repeat) or a different one.
    Busy {
        request_hash: String,
        lease_until: DateTime<Utc>,
    },
}

/// Asks per statement of [`Store::claim_fresh_keys`] (three bound values
/// each, with SQLite's limit of 32,766 far off).
const CLAIMS_PER_STATEMENT: usize = 1_000;

fn lease_end(now: DateTime<Utc>, lease: Duration) -> Result<DateTime<Utc>> {
    chrono::Duration::from_std(lease)
        .ok()
        .and_then(|d| now.checked_add_signed(d))
        .ok_or_else(|| StoreError::Corrupt(format!("lease {lease:?} is out of range")))
}

impl Store {
    /// Claims `key` for `token_id`'s request `request_hash` for `lease`, or
    /// says who holds it. A claim whose lease ran out is taken over by the
    /// same request only: a different request under that key is a reuse,
    /// whatever became of the first.
    pub async fn claim_key(
        &self,
        token_id: &str,
        key: &str,
        request_hash: &str,
        lease: Duration,
    ) -> Result<KeyClaim> {
        // A key seen for the first time (nearly every request) is claimed
        // by one statement, a round trip where the transaction below takes
        // five; only a key already claimed needs the lock and the read.
        let now = DbTime::from(self.now());
        let until = DbTime::from(lease_end(now.utc(), lease)?);
        let inserted = on_pool!(self, |pool, dialect| sqlx::query(&format!(
            "insert into idempotent_claims \
               (token_id, idem_key, request_hash, accepted_at, lease_until) \
             select $1, $2, $3, $4, $5 from {} where unflushed.setting is not null \
             on conflict (token_id, idem_key) do nothing",
            dialect.unflushed_source()
        ))
        .bind(token_id)
        .bind(key)
        .bind(request_hash)
        .bind(now)
        .bind(until)
        .execute(pool)
        .await?
        .rows_affected());
        if inserted == 1 {
            return Ok(KeyClaim::Held {
                accepted_at: now.utc(),
                attempt: 1,
            });
        }
        let (now, existing, took_over) = in_tx!(self, |tx, now, dialect| {
            let until = DbTime::from(lease_end(now.utc(), lease)?);
            // The row lock taken by a failed insert's conflict check is not
            // held (PostgreSQL); lock the key explicitly before deciding.
            dialect.lock_key(&mut tx, token_id, key).await?;
            // A claim need not wait for its own flush to disk: whatever is
            // done under it (an entry, a kept answer) commits later and
            // durably, and flushing that commit flushes the log up to it,
            // the claim included. A claim lost in a crash or a failover is
            // free again, though the service may still hold its request in
            // a write queue: the retry that claims it afresh meets the first
            // attempt's entry and kept answer, and a group commit answers it
            // as a repeat (`settle_repeats` in `group.rs`).
            dialect.commit_without_flush_wait(&mut tx).await?;
            let inserted = sqlx::query(
                "insert into idempotent_claims \
                   (token_id, idem_key, request_hash, accepted_at, lease_until) \
                 values ($1, $2, $3, $4, $5) on conflict (token_id, idem_key) do nothing",
            )
            .bind(token_id)
            .bind(key)
            .bind(request_hash)
            .bind(now)
            .bind(until)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if inserted == 1 {
                (now, None, false)
            } else {
                let (hash, accepted_at, lease_until, attempts): (String, DbTime, DbTime, i32) =
                    sqlx::query_as(
                        "select request_hash, accepted_at, lease_until, attempts \
                         from idempotent_claims where token_id = $1 and idem_key = $2",
                    )
                    .bind(token_id)
                    .bind(key)
                    .fetch_one(&mut *tx)
                    .await?;
                // The same request whose holder's lease ran out: ours.
                let take = hash == request_hash && lease_until <= now;
                if take {
                    sqlx::query(
                        "update idempotent_claims set lease_until = $3, attempts = attempts + 1 \
                         where token_id = $1 and idem_key = $2",
                    )
                    .bind(token_id)
                    .bind(key)
                    .bind(until)
                    .execute(&mut *tx)
                    .await?;
                }
                (
                    now,
                    Some((hash, accepted_at.utc(), lease_until.utc(), attempts)),
                    take,
                )
            }
        });
        Ok(match existing {
            None => KeyClaim::Held {
                accepted_at: now.utc(),
                attempt: 1,
            },
            Some((_, accepted_at, _, attempts)) if took_over => KeyClaim::Held {
                accepted_at,
                attempt: attempts.saturating_add(1),
            },
            Some((request_hash, _, lease_until, _)) => KeyClaim::Busy {
                request_hash,
                lease_until,
            },
        })
    }

    /// Claims many keys seen for the first time in one statement: what
    /// [`Store::claim_key`] does first, for a group of concurrent requests
    /// (`asks`: token id, key, request hash). Each ask whose key was free
    /// is held from now, attempt 1 (`Some(accepted_at)`); `None` for a key
    /// already claimed, and for a key asked twice in the group past its
    /// first ask: those go through [`Store::claim_key`], which says who
    /// holds them.
    pub async fn claim_fresh_keys(
        &self,
        asks: &[(&str, &str, &str)],
        lease: Duration,
    ) -> Result<Vec<Option<DateTime<Utc>>>> {
        let now = DbTime::from(self.now());
        let until = DbTime::from(lease_end(now.utc(), lease)?);
        let mut first = std::collections::HashSet::new();
        let fresh: Vec<usize> = (0..asks.len())
            .filter(|&i| first.insert((asks[i].0, asks[i].1)))
            .collect();
        let mut held = std::collections::HashSet::new();
        // Within SQLite's limit on bound values (three per ask).
        for chunk in fresh.chunks(CLAIMS_PER_STATEMENT) {
            let rows: Vec<(String, String)> = match self {
                Store::Postgres(s) => {
                    sqlx::query_as(&format!(
                        "insert into idempotent_claims \
                           (token_id, idem_key, request_hash, accepted_at, lease_until) \
                         select u.token_id, u.idem_key, u.request_hash, $4, $5 \
                         from unnest($1::text[], $2::text[], $3::text[]) \
                           as u(token_id, idem_key, request_hash), {} \
                         where unflushed.setting is not null \
                         on conflict (token_id, idem_key) do nothing \
                         returning token_id, idem_key",
                        crate::store::postgres::Pg.unflushed_source()
                    ))
                    .bind(chunk.iter().map(|&i| asks[i].0).collect::<Vec<_>>())
                    .bind(chunk.iter().map(|&i| asks[i].1).collect::<Vec<_>>())
                    .bind(chunk.iter().map(|&i| asks[i].2).collect::<Vec<_>>())
                    .bind(now)
                    .bind(until)
                    .fetch_all(s.pool())
                    .await?
                }
                Store::Sqlite(s) => {
                    let values = vec!["(?, ?, ?)"; chunk.len()].join(", ");
                    let sql = format!(
                        "insert into idempotent_claims \
                           (token_id, idem_key, request_hash, accepted_at, lease_until) \
                         select u.column1, u.column2, u.column3, ?, ? \
                         from (values {values}) as u, {} \
                         where unflushed.setting is not null \
                         on conflict (token_id, idem_key) do nothing \
                         returning token_id, idem_key",
                        crate::store::sqlite::Lite.unflushed_source()
                    );
                    let mut q = sqlx::query_as(&sql).bind(now).bind(until);
                    for &i in chunk {
                        q = q.bind(asks[i].0).bind(asks[i].1).bind(asks[i].2);
                    }
                    q.fetch_all(s.pool()).await?
                }
            };
            held.extend(rows);
        }
        let mut answered = std::collections::HashSet::new();
        Ok(asks
            .iter()
            .map(|(token, key, _)| {
                let pair = (token.to_string(), key.to_string());
                // Only the first ask of a key holds it.
                (held.contains(&pair) && answered.insert(pair)).then(|| now.utc())
            })
            .collect())
    }

    /// Gives a claim back after a refusal (which changed nothing), so the
    /// corrected request may use the key. Only the request that holds it
    /// can give it back.
    pub async fn release_key(&self, token_id: &str, key: &str, request_hash: &str) -> Result<()> {
        on_pool!(self, |pool| sqlx::query(
            "delete from idempotent_claims \
             where token_id = $1 and idem_key = $2 and request_hash = $3",
        )
        .bind(token_id)
        .bind(key)
        .bind(request_hash)
        .execute(pool)
        .await
        .map(|_| ()))?;
        Ok(())
    }
}
