//! A fake supervising bank: a real axum server on loopback that speaks the
//! contract in the `client` module docs (JSON instructions and pain.001
//! files uploaded over the API), remembers every request, and can be
//! told to misbehave the way real banks do. Test support, behind the
//! `fake-bank` feature.

mod routes;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::instruction::{InstructionReceipt, InstructionStatus};
use crate::model::Format;
use crate::secret::Secret;

/// The credential the fake bank accepts unless told otherwise.
pub const DEFAULT_CREDENTIAL: &str = "fake-bank-credential";

/// Something the fake bank does to the next request instead of behaving.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Answer with this status and a JSON error body (500, 503, 401, 404 …).
    Status(u16),
    /// Do the work, then hold the response longer than any client timeout
    /// (the bank processed it; the client never hears back).
    Timeout,
    /// Answer 200 with only the first half of the body.
    TruncatedBody,
    /// Serve an already delivered item again on this page (or twice on the
    /// first page).
    DuplicateDelivery,
    /// Serve the page after next first, then come back for the skipped one.
    OutOfOrderPages,
}

/// A request as the fake bank saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub idempotency_key: Option<String>,
}

/// A payment the fake bank made: one per accepted idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    pub instruction_id: String,
    pub bank_ref: String,
    pub amount: String,
    pub currency: String,
    pub body: serde_json::Value,
}

#[derive(Debug, Clone)]
pub struct FakeBankOptions {
    pub credential: Secret,
    /// How long `Failure::Timeout` holds a response; cut short on shutdown.
    pub hold: Duration,
}

impl Default for FakeBankOptions {
    fn default() -> Self {
        FakeBankOptions {
            credential: Secret::new(DEFAULT_CREDENTIAL),
            hold: Duration::from_secs(5),
        }
    }
}

pub(crate) struct StoredItem {
    pub id: String,
    pub format: Format,
    pub content: Vec<u8>,
}

pub(crate) struct StoredInstruction {
    pub body: serde_json::Value,
    pub receipt: InstructionReceipt,
}

/// A pain.001 file uploaded over the API, with the bank's answer.
pub(crate) struct StoredFile {
    pub content: Vec<u8>,
    pub receipt: crate::instruction::Pain001Receipt,
}

#[derive(Default)]
pub(crate) struct BankState {
    pub statements: BTreeMap<String, Vec<StoredItem>>,
    pub next_item: u64,
    /// `None` entries let a request through untouched.
    pub failures: VecDeque<Option<Failure>>,
    pub requests: Vec<RecordedRequest>,
    pub instructions: HashMap<String, StoredInstruction>,
    pub payments: Vec<Payment>,
    /// pain.001 files uploaded, by message id.
    pub files: BTreeMap<String, StoredFile>,
}

pub(crate) struct Shared {
    pub state: Mutex<BankState>,
    pub credential: Secret,
    pub hold: Duration,
    pub shutdown: watch::Receiver<bool>,
}

impl Shared {
    /// A panicking test thread must not turn every later assertion into a
    /// poison error; the state is plain data, still consistent.
    pub fn lock(&self) -> MutexGuard<'_, BankState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A running fake bank. Stops when dropped or on [`FakeBank::stop`].
pub struct FakeBank {
    url: String,
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl FakeBank {
    pub async fn start() -> FakeBank {
        FakeBank::start_with(FakeBankOptions::default()).await
    }

    /// # Panics
    /// If no loopback port can be bound: the test cannot run at all then.
    pub async fn start_with(options: FakeBankOptions) -> FakeBank {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("fake bank: cannot bind 127.0.0.1:0");
        let address = listener
            .local_addr()
            .expect("fake bank: bound socket has no address");
        let (shutdown, receiver) = watch::channel(false);
        let shared = Arc::new(Shared {
            state: Mutex::new(BankState::default()),
            credential: options.credential,
            hold: options.hold,
            shutdown: receiver.clone(),
        });
        let app = routes::app(shared.clone());
        let mut signal = receiver;
        let task = tokio::spawn(async move {
            let server = axum::serve(listener, app).with_graceful_shutdown(async move {
                // Either a stop or the handle being dropped ends the server.
                let _ = signal.wait_for(|stopped| *stopped).await;
            });
            if let Err(error) = server.await {
                tracing::error!(%error, "fake bank server failed");
            }
        });
        FakeBank {
            url: format!("http://{address}"),
            shared,
            shutdown,
            task: Some(task),
        }
    }

    /// Base URL, e.g. `http://127.0.0.1:38211`.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn credential(&self) -> Secret {
        self.shared.credential.clone()
    }

    /// Adds a statement file to an account's feed; returns its item id.
    pub fn add_statement(
        &self,
        account: &str,
        format: Format,
        content: impl Into<Vec<u8>>,
    ) -> String {
        let mut state = self.shared.lock();
        state.next_item += 1;
        let id = format!("stmt-{:05}", state.next_item);
        state
            .statements
            .entry(account.to_string())
            .or_default()
            .push(StoredItem {
                id: id.clone(),
                format,
                content: content.into(),
            });
        id
    }

    /// The next `n` requests (after any already queued failures) fail this way.
    pub fn fail_next(&self, n: usize, failure: Failure) {
        let mut state = self.shared.lock();
        state.failures.extend(std::iter::repeat_n(Some(failure), n));
    }

    /// The next `n` requests (after those already queued) behave; lets a test
    /// place a failure on, say, the third page.
    pub fn pass_next(&self, n: usize) {
        let mut state = self.shared.lock();
        state.failures.extend(std::iter::repeat_n(None, n));
    }

    pub fn clear_failures(&self) {
        self.shared.lock().failures.clear();
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().requests.clone()
    }

    /// Requests with this method whose path starts with `path_prefix`.
    pub fn count_requests(&self, method: &str, path_prefix: &str) -> usize {
        self.shared
            .lock()
            .requests
            .iter()
            .filter(|r| r.method == method && r.path.starts_with(path_prefix))
            .count()
    }

    /// The pain.001 files uploaded over the API, by message id, as sent.
    pub fn pain001_files(&self) -> Vec<(String, Vec<u8>)> {
        self.shared
            .lock()
            .files
            .iter()
            .map(|(id, f)| (id.clone(), f.content.clone()))
            .collect()
    }

    pub fn payments(&self) -> Vec<Payment> {
        self.shared.lock().payments.clone()
    }

    /// Moves an instruction along (executed, rejected with a reason).
    /// Returns false when the bank does not know the instruction.
    pub fn set_instruction_status(
        &self,
        id: &str,
        status: InstructionStatus,
        reason: Option<&str>,
    ) -> bool {
        let mut state = self.shared.lock();
        match state.instructions.get_mut(id) {
            Some(stored) => {
                stored.receipt.status = status;
                stored.receipt.reason = reason.map(str::to_owned);
                true
            }
            None => false,
        }
    }

    /// Stops the server and waits for it (held responses are cut short).
    pub async fn stop(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(task) = self.task.take() {
            // Bounded: a connection that will not close must not hang a test.
            let _ = tokio::time::timeout(Duration::from_secs(2), task).await;
        }
    }
}

impl Drop for FakeBank {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}
