//! Idempotency-Key claims of concurrent requests, gathered: every POST
//! claims its key before it acts (`http/record.rs`), and nearly every key is
//! new. One claim per statement made the claim a round trip per request,
//! which on SQLite is a turn at the one writing connection (and two
//! thread hand-offs). A single task takes the claims waiting when it is
//! free and claims the new keys among them in one statement
//! ([`Store::claim_fresh_keys`]); nothing waits for company, so a lone
//! request pays no delay. A key already claimed, or asked twice at once, is
//! decided by [`Store::claim_key`] as before (a repeat, a reuse, a lease
//! taken over).

use std::time::Duration;

use ledger_core::store::KeyClaim;
use ledger_core::{Store, StoreError};
use tokio::sync::{mpsc, oneshot};

/// Claims gathered into one statement at most.
const MAX_GROUP: usize = 256;
/// Claims waiting at most; a caller beyond waits for room.
const QUEUE_DEPTH: usize = 4096;

struct Ask {
    token_id: String,
    key: String,
    request_hash: String,
    lease: Duration,
    reply: oneshot::Sender<Result<KeyClaim, StoreError>>,
}

/// The claimer: cheap to clone; its task ends when the last clone is
/// dropped.
#[derive(Clone)]
pub struct KeyClaims {
    queue: mpsc::Sender<Ask>,
}

impl KeyClaims {
    /// Starts the claiming task (needs a Tokio runtime).
    pub fn start(store: Store) -> KeyClaims {
        let (queue, asks) = mpsc::channel(QUEUE_DEPTH);
        tokio::spawn(claim(store, asks));
        KeyClaims { queue }
    }

    /// What [`Store::claim_key`] answers for this request, claimed with
    /// whatever other requests are waiting.
    pub async fn claim(
        &self,
        token_id: &str,
        key: &str,
        request_hash: &str,
        lease: Duration,
    ) -> Result<KeyClaim, StoreError> {
        let (reply, answer) = oneshot::channel();
        let ask = Ask {
            token_id: token_id.to_string(),
            key: key.to_string(),
            request_hash: request_hash.to_string(),
            lease,
            reply,
        };
        let stopped = || StoreError::Busy {
            detail: "the service is stopping".to_string(),
            retry_after_secs: 1,
        };
        self.queue.send(ask).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

async fn claim(store: Store, mut asks: mpsc::Receiver<Ask>) {
    let mut group = Vec::with_capacity(MAX_GROUP);
    while asks.recv_many(&mut group, MAX_GROUP).await > 0 {
        // One lease for the group: the longest asked (all ask the same,
        // the request timeout and its margin).
        let lease = group.iter().map(|a| a.lease).max().unwrap_or_default();
        let keys: Vec<(&str, &str, &str)> = group
            .iter()
            .map(|a| (a.token_id.as_str(), a.key.as_str(), a.request_hash.as_str()))
            .collect();
        let fresh = match store.claim_fresh_keys(&keys, lease).await {
            Ok(fresh) => fresh,
            Err(e) => {
                // Each ask then goes its own way and meets its own error.
                tracing::warn!(error = %e, claims = group.len(), "claiming keys together failed");
                vec![None; group.len()]
            }
        };
        drop(keys);
        // A caller that went away (its request cut off) needs no answer:
        // its claim stands until its lease runs out, as before.
        for (ask, fresh) in group.drain(..).zip(fresh) {
            match fresh {
                Some(accepted_at) => {
                    let _ = ask.reply.send(Ok(KeyClaim::Held {
                        accepted_at,
                        attempt: 1,
                    }));
                }
                // Decided on its own (it may wait on a lock), so that the
                // claims behind it are not held up.
                None => {
                    let store = store.clone();
                    tokio::spawn(async move {
                        let answer = store
                            .claim_key(&ask.token_id, &ask.key, &ask.request_hash, ask.lease)
                            .await;
                        let _ = ask.reply.send(answer);
                    });
                }
            }
        }
    }
}
