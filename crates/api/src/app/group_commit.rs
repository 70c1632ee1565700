//! Group commit: concurrent single ledger writes gathered into one database
//! transaction. Institutions are spread over partitions by a hash of their
//! id; each partition has one writer task fed by a bounded queue, so one
//! institution's requests are written in the order they were taken. A
//! batch closes when it holds `max_batch` requests or `max_wait` after its
//! first one arrived; it is written with [`Store::execute_each_unflushed`],
//! so each request keeps its own outcome (a refused one changes nothing
//! and delays no other), and each caller hears its answer only once the
//! commit is durable (on one PostgreSQL server after the flush that
//! follows it, while the writer already writes the next batch).
//!
//! A full queue refuses at once (`service_busy`, which the HTTP API
//! answers `503` with `Retry-After`): memory stays bounded. `drain` stops
//! taking requests and lets the writers finish what is queued.

use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ledger_core::store::{EachOutcome, Flush, KeepWith, SingleWriter};
use ledger_core::{Entry, InstitutionId, Request, Store, StoreError};
use tokio::sync::{mpsc, oneshot, watch, Semaphore};
use tokio::task::JoinHandle;

use crate::app::AppResult;

/// How batches are formed (`[group_commit]` in the configuration file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupSettings {
    /// Requests in one transaction at most.
    pub max_batch: usize,
    /// How long a batch waits for more requests after its first one.
    pub max_wait: Duration,
    /// Requests waiting per partition at most; beyond, `503`.
    pub queue_depth: usize,
    /// Writer tasks (institutions are spread over them by id). SQLite has
    /// one writer whatever this says.
    pub partitions: usize,
}

impl Default for GroupSettings {
    fn default() -> Self {
        GroupSettings {
            max_batch: 256,
            max_wait: Duration::from_millis(2),
            queue_depth: 4096,
            partitions: 4,
        }
    }
}

/// Batches of one partition committed and awaiting their flush at most,
/// while its writer goes on (each holds a connection for its flush).
const FLUSHES_IN_FLIGHT: usize = 2;

/// What a full queue asks the caller to wait before trying again.
const RETRY_AFTER_SECS: u64 = 1;

struct Job {
    request: Request,
    keep: Option<KeepWith>,
    reply: oneshot::Sender<EachOutcome>,
}

/// The committer: cheap to clone; writers stop when the last clone is
/// dropped or after [`GroupCommit::drain`].
#[derive(Clone)]
pub struct GroupCommit {
    inner: Arc<Inner>,
}

struct Inner {
    queues: Vec<mpsc::Sender<Job>>,
    closing: watch::Sender<bool>,
    writers: Mutex<Vec<JoinHandle<()>>>,
}

impl GroupCommit {
    /// Starts the writers (needs a Tokio runtime).
    pub fn start(store: Store, settings: GroupSettings) -> GroupCommit {
        let partitions = match store {
            Store::Sqlite(_) => 1,
            Store::Postgres(_) => settings.partitions.max(1),
        };
        let settings = GroupSettings {
            max_batch: settings.max_batch.max(1),
            queue_depth: settings.queue_depth.max(1),
            partitions,
            ..settings
        };
        let (closing, closed) = watch::channel(false);
        let mut queues = Vec::with_capacity(partitions);
        let mut writers = Vec::with_capacity(partitions);
        for _ in 0..partitions {
            let (tx, rx) = mpsc::channel(settings.queue_depth);
            queues.push(tx);
            writers.push(tokio::spawn(write(
                store.clone(),
                rx,
                settings,
                closed.clone(),
            )));
        }
        GroupCommit {
            inner: Arc::new(Inner {
                queues,
                closing,
                writers: Mutex::new(writers),
            }),
        }
    }

    /// Records one request in the next batch of its institution's
    /// partition, with the answer to keep for it (written with its entry);
    /// answers once the batch has committed.
    pub async fn record(&self, request: Request, keep: Option<KeepWith>) -> AppResult<Entry> {
        Ok(self.submit(request, keep).await?)
    }

    async fn submit(&self, request: Request, keep: Option<KeepWith>) -> Result<Entry, StoreError> {
        if *self.inner.closing.borrow() {
            return Err(busy("the service is stopping"));
        }
        let queue = &self.inner.queues[partition(&request.institution, self.inner.queues.len())];
        let (reply, answer) = oneshot::channel();
        queue
            .try_send(Job {
                request,
                keep,
                reply,
            })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => {
                    busy("too many writes are waiting; nothing was done")
                }
                mpsc::error::TrySendError::Closed(_) => busy("the service is stopping"),
            })?;
        match answer.await {
            Ok(outcome) => outcome,
            // The writer went away without answering (the runtime is
            // shutting down): whether it was written is unknown, and a
            // retry with the same key finds out.
            Err(_) => Err(busy("the service stopped before answering")),
        }
    }

    /// Stops taking requests and waits until every queued one is written
    /// and answered.
    pub async fn drain(&self) {
        self.inner.closing.send_replace(true);
        let writers = std::mem::take(
            &mut *self
                .inner
                .writers
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        );
        for w in writers {
            if let Err(e) = w.await {
                tracing::error!(error = %e, "a group commit writer failed");
            }
        }
    }
}

/// Every single request a store with this writer records
/// ([`Store::execute`]: releases, refund steps, lessons, the outbox's
/// confirmations, over HTTP and from the jobs) goes through group commit.
impl SingleWriter for GroupCommit {
    fn write(
        &self,
        request: Request,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Entry, StoreError>> + Send + '_>>
    {
        Box::pin(self.submit(request, None))
    }
}

fn busy(detail: &str) -> StoreError {
    StoreError::Busy {
        detail: detail.to_string(),
        retry_after_secs: RETRY_AFTER_SECS,
    }
}

/// The partition of an institution: a fixed hash of its id (the same in
/// every process), so its requests always meet in one queue.
fn partition(institution: &InstitutionId, partitions: usize) -> usize {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    institution.as_str().hash(&mut h);
    usize::try_from(h.finish() % u64::try_from(partitions).unwrap_or(1)).unwrap_or(0)
}

/// One partition's writer: takes a batch, writes it, answers each caller.
async fn write(
    store: Store,
    mut queue: mpsc::Receiver<Job>,
    settings: GroupSettings,
    mut closed: watch::Receiver<bool>,
) {
    let flushes = Arc::new(Semaphore::new(FLUSHES_IN_FLIGHT));
    let mut closing = false;
    loop {
        let first = if closing {
            queue.recv().await
        } else {
            tokio::select! {
                job = queue.recv() => job,
                _ = closed.wait_for(|c| *c) => {
                    // Take no more; what is queued is still written.
                    closing = true;
                    queue.close();
                    continue;
                }
            }
        };
        let Some(first) = first else { break };
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + settings.max_wait;
        while batch.len() < settings.max_batch {
            match queue.try_recv() {
                Ok(job) => {
                    batch.push(job);
                    continue;
                }
                Err(mpsc::error::TryRecvError::Disconnected) => break,
                Err(mpsc::error::TryRecvError::Empty) => {}
            }
            if settings.max_wait.is_zero() {
                break;
            }
            match tokio::time::timeout_at(deadline, queue.recv()).await {
                Ok(Some(job)) => batch.push(job),
                Ok(None) | Err(_) => break,
            }
        }
        commit(&store, batch, &flushes).await;
    }
    // Every batch answered before the writer is done (`drain`).
    let _ = flushes.acquire_many(FLUSHES_IN_FLIGHT as u32).await;
}

/// Writes one batch and answers its callers. If the database fails the
/// batch as a whole, each request is tried alone, so that one request's
/// failure is only its own.
///
/// A batch committed before its flush (one PostgreSQL server) is answered
/// by a task of its own once [`Store::flush_log`] returns, and the writer
/// goes on to its next batch meanwhile: one partition's batches (a hot
/// institution's) then follow each other at the speed of their statements,
/// not of the disk. The flushes in flight are bounded by `flushes`; a
/// later batch's flush also covers the earlier ones (the log is flushed in
/// order), and each caller hears only after its own batch is durable.
async fn commit(store: &Store, batch: Vec<Job>, flushes: &Arc<Semaphore>) {
    let (items, replies): (Vec<_>, Vec<_>) = batch
        .into_iter()
        .map(|j| ((j.request, j.keep), j.reply))
        .unzip();
    match store.execute_each_unflushed(&items).await {
        Ok((outcomes, Flush::Done)) => answer(replies, outcomes),
        Ok((outcomes, Flush::Owed)) => {
            let permit = flushes
                .clone()
                .acquire_owned()
                .await
                .expect("the flush semaphore is never closed");
            let store = store.clone();
            tokio::spawn(async move {
                match store.flush_log().await {
                    Ok(()) => answer(replies, outcomes),
                    Err(e) => {
                        // Committed, but not known durable: a retry under
                        // the same key finds the kept answer if it is.
                        tracing::error!(error = %e, requests = replies.len(), "a batch's flush failed");
                        for reply in replies {
                            let _ = reply.send(Err(busy(
                                "the write was not confirmed durable; retry with the same Idempotency-Key to learn its outcome",
                            )));
                        }
                    }
                }
                drop(permit);
            });
        }
        Err(e) if items.len() == 1 => {
            if let Some(reply) = replies.into_iter().next() {
                let _ = reply.send(Err(e));
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, requests = items.len(), "a batch failed: writing its requests one by one");
            for (item, reply) in items.into_iter().zip(replies) {
                let outcome = match store.execute_each(std::slice::from_ref(&item)).await {
                    Ok(mut one) => one.pop().unwrap_or_else(|| {
                        Err(StoreError::Corrupt("a batch of one had no answer".into()))
                    }),
                    Err(e) => Err(e),
                };
                let _ = reply.send(outcome);
            }
        }
    }
}

fn answer(replies: Vec<oneshot::Sender<EachOutcome>>, outcomes: Vec<EachOutcome>) {
    for (reply, outcome) in replies.into_iter().zip(outcomes) {
        // A caller that gave up (timed out) finds its answer kept.
        let _ = reply.send(outcome);
    }
}
