//! The HTTP client that talks to one supervising bank: pulls statement
//! feeds page by page behind a checkpoint, sends payment instructions with
//! an idempotency key, and retries what is worth retrying.
//!
//! # The bank API contract
//!
//! Every call carries `Authorization: Bearer <credential>` and
//! `Accept: application/json`; paths are relative to the bank's base URL
//! (which may have a path prefix). Error bodies, when JSON, look like
//! `{"code": "...", "message": "..."}`; only `code` is ever quoted back.
//!
//! **Pull statements**, one supervised account at a time:
//!
//! ```text
//! GET /v1/accounts/{account}/statements?limit={n}[&after={cursor}]
//! 200 {"items": [{"id": "stmt-0042",              bank-unique, stable across re-deliveries
//!                 "account": "6222020200001234",  must equal {account}
//!                 "format": "camt053",            camt052|camt053|camt054|mt940|mt942|csv, optional
//!                 "content_base64": "PD94bWwg…",  the statement file, byte for byte
//!                 "sha256": "9f86d0…"}],          optional hex digest of the decoded content
//!      "next": "opaque-cursor" | null}
//! ```
//!
//! `after` is omitted on the first request. `next` is the cursor for the
//! following page, `null` when there is nothing more for now. At the end of
//! a run the cursor of the last page is kept, so the next run re-reads that
//! page (where a bank appends new items) and skips the ids it has seen.
//!
//! **Send an instruction** (a release or refund out of the supervised account):
//!
//! ```text
//! POST /v1/instructions
//! Idempotency-Key: {instruction id}
//! Content-Type: application/json
//! {"id", "kind": "release"|"refund", "institution", "debtor_account",
//!  "creditor": {"name", "account", "bank"}, "amount": "1234.50", "currency": "CNY",
//!  "requested_date": "2026-01-05", "remittance": "..." | null}
//! 201 {"instruction_id", "bank_ref", "status": "accepted"|"executed"|"rejected", "reason"}  first time
//! 200 (same receipt)                      the same key with the same body again
//! 409 {"code": "idempotency_key_reused"}  the same key with a different body
//!
//! GET /v1/instructions/{id}   200 receipt | 404
//! ```
//!
//! **Upload a pain.001 file** (the same instructions as an ISO 20022
//! pain.001.001.09 payment file, for a bank that takes files over its API):
//!
//! ```text
//! POST /v1/payments/pain001
//! Idempotency-Key: {GrpHdr/MsgId}
//! Content-Type: application/xml
//! <Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.001.001.09">…
//! 201 {"message_id", "bank_ref", "instructions": [receipt, …]}  first time, a
//!     receipt (as above) per CdtTrfTxInf, keyed by its EndToEndId
//! 200 (same answer)                       the same key with the same file again
//! 409 {"code": "idempotency_key_reused"}  the same key with a different file
//! 400 {"code": "invalid_pain001"}         not a pain.001 the bank can read
//! ```
//!
//! Each instruction of the file is then asked after by its EndToEndId with
//! `GET /v1/instructions/{id}`.
//!
//! # Retries
//!
//! Timeouts, connection errors, 5xx and unreadable success bodies (truncated
//! JSON, bad base64, a digest that does not match) are retried with
//! exponential backoff and jitter, up to the policy's limit; then the error
//! names the bank, the call (method and path, never the query or the
//! credential) and the last cause. 4xx are never retried: the bank has
//! answered, and asking again would only repeat the answer. Posting an
//! instruction again is safe because the bank keys it by `Idempotency-Key`.

pub mod checkpoint;
pub mod error;
pub mod pull;
pub mod retry;
pub mod send;

use std::time::Duration;

use backon::Retryable;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, ACCEPT, CONTENT_TYPE};
use reqwest::{Method, StatusCode, Url};
use tracing::{instrument, warn};

use crate::model::Format;
pub use crate::secret::Secret;

pub use checkpoint::{
    AccountCursor, Checkpoint, CheckpointState, FileCheckpoint, MemoryCheckpoint,
};
pub use error::ClientError;
pub use pull::{FeedSink, FetchedFeed};
pub use retry::RetryPolicy;

/// Bodies larger than this are refused rather than buffered: a statement
/// file of a supervised account is megabytes, not gigabytes.
const MAX_RESPONSE_BYTES: usize = 128 * 1024 * 1024;

/// Where and how to reach one supervising bank.
#[derive(Debug, Clone)]
pub struct BankConfig {
    /// Our name for the bank, e.g. `icbc-hangzhou`; appears in errors and logs.
    pub bank_id: String,
    pub base_url: String,
    pub credential: Secret,
    /// Supervised accounts held at this bank, pulled in this order.
    pub accounts: Vec<String>,
    /// The bank's feed format when its items do not say; `None`: detect by content.
    pub format: Option<Format>,
    /// Whole-request timeout (connect, send, read the body).
    pub timeout: Duration,
    pub retry: RetryPolicy,
    /// Items per page asked of the bank.
    pub page_size: u32,
}

impl BankConfig {
    /// A configuration with production defaults (30 s timeout, 4 retries).
    pub fn new(
        bank_id: impl Into<String>,
        base_url: impl Into<String>,
        credential: Secret,
    ) -> Self {
        BankConfig {
            bank_id: bank_id.into(),
            base_url: base_url.into(),
            credential,
            accounts: Vec::new(),
            format: None,
            timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
            page_size: 100,
        }
    }
}

/// A client for one bank. Cheap to clone (the connection pool is shared).
#[derive(Debug, Clone)]
pub struct BankClient {
    config: BankConfig,
    base_url: Url,
    http: reqwest::Client,
}

/// One attempt's failure: worth another try, or final.
pub(crate) enum AttemptError {
    Transient(String),
    Final(ClientError),
}

/// A call as errors and logs name it: method and path, no query, no secrets.
pub(crate) struct Call {
    method: Method,
    url: Url,
    name: String,
}

impl BankClient {
    pub fn new(config: BankConfig) -> Result<Self, ClientError> {
        let invalid = |reason: String| ClientError::InvalidConfig {
            bank: config.bank_id.clone(),
            reason,
        };
        if config.bank_id.is_empty()
            || !config
                .bank_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(invalid(
                "bank id must be non-empty ASCII letters, digits, '-', '_' or '.'".into(),
            ));
        }
        let base_url = Url::parse(&config.base_url)
            .map_err(|error| invalid(format!("base url does not parse: {error}")))?;
        if !matches!(base_url.scheme(), "http" | "https") || base_url.cannot_be_a_base() {
            return Err(invalid("base url must be an http or https url".into()));
        }
        // Credentials belong in `credential`, where they are redacted; a URL
        // ends up in error messages and logs.
        if !base_url.username().is_empty() || base_url.password().is_some() {
            return Err(invalid("base url must not carry user info".into()));
        }
        if base_url.query().is_some() || base_url.fragment().is_some() {
            return Err(invalid("base url must not have a query or fragment".into()));
        }
        if config.credential.is_empty() {
            return Err(invalid("credential is empty".into()));
        }
        if config.accounts.iter().any(|a| a.trim().is_empty()) {
            return Err(invalid("an account number is empty".into()));
        }
        if config.page_size == 0 {
            return Err(invalid("page size must be at least 1".into()));
        }
        if config.timeout.is_zero() {
            return Err(invalid("timeout must be positive".into()));
        }
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            // A bank API does not redirect; following one could carry our
            // request somewhere we did not configure.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!(
                "escrow-ledger-bank-adapter/",
                env!("CARGO_PKG_VERSION")
            ))
            .build()
            .map_err(|error| invalid(format!("cannot build the http client: {error}")))?;
        Ok(BankClient {
            config,
            base_url,
            http,
        })
    }

    pub fn config(&self) -> &BankConfig {
        &self.config
    }

    pub(crate) fn bank_id(&self) -> &str {
        &self.config.bank_id
    }

    pub(crate) fn call(&self, method: Method, segments: &[&str]) -> Call {
        let mut url = self.base_url.clone();
        // Cannot fail: `new` refused cannot-be-a-base urls. Segments are
        // percent-encoded, so an account number cannot escape its segment.
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        let name = format!("{method} {}", url.path());
        Call { method, url, name }
    }

    /// Runs one call with retries. `decode` turns a 2xx body into the result;
    /// its error counts as a transient failure (a truncated or corrupt body).
    /// `on_client_error` maps a 4xx to a specific error, else a generic one.
    #[instrument(skip_all, fields(bank = %self.config.bank_id, call = %call.name))]
    pub(crate) async fn execute<T>(
        &self,
        call: &Call,
        query: &[(&str, String)],
        headers: &HeaderMap,
        body: Option<&[u8]>,
        decode: impl Fn(StatusCode, &[u8]) -> Result<T, String>,
        on_client_error: impl Fn(StatusCode) -> Option<ClientError>,
    ) -> Result<T, ClientError> {
        let mut attempts: u32 = 0;
        let outcome = (|| {
            attempts = attempts.saturating_add(1);
            self.attempt(call, query, headers, body, &decode, &on_client_error)
        })
        .retry(self.config.retry.delays())
        .when(|error| matches!(error, AttemptError::Transient(_)))
        .notify(|error, delay| {
            if let AttemptError::Transient(cause) = error {
                warn!(delay_ms = delay.as_millis() as u64, %cause, "bank call failed, retrying");
            }
        })
        .await;
        outcome.map_err(|error| match error {
            AttemptError::Final(error) => error,
            AttemptError::Transient(cause) => ClientError::GaveUp {
                bank: self.config.bank_id.clone(),
                call: call.name.clone(),
                attempts,
                cause,
            },
        })
    }

    async fn attempt<T>(
        &self,
        call: &Call,
        query: &[(&str, String)],
        headers: &HeaderMap,
        body: Option<&[u8]>,
        decode: &impl Fn(StatusCode, &[u8]) -> Result<T, String>,
        on_client_error: &impl Fn(StatusCode) -> Option<ClientError>,
    ) -> Result<T, AttemptError> {
        let mut request = self
            .http
            .request(call.method.clone(), call.url.clone())
            .bearer_auth(self.config.credential.expose())
            .header(ACCEPT, "application/json")
            .headers(headers.clone());
        if !query.is_empty() {
            request = request.query(query);
        }
        if let Some(body) = body {
            // JSON unless the call names its own type (a pain.001 upload).
            if !headers.contains_key(CONTENT_TYPE) {
                request = request.header(CONTENT_TYPE, "application/json");
            }
            request = request.body(body.to_vec());
        }
        let mut response = request
            .send()
            .await
            .map_err(|error| AttemptError::Transient(describe(error)))?;
        let status = response.status();
        if status.is_server_error() {
            let detail = read_capped(&mut response)
                .await
                .map(|bytes| error_code_of(&bytes))
                .unwrap_or_default();
            return Err(AttemptError::Transient(format!(
                "http {}{detail}",
                status.as_u16()
            )));
        }
        if !status.is_success() {
            let detail = read_capped(&mut response)
                .await
                .map(|bytes| error_code_of(&bytes))
                .unwrap_or_default();
            return Err(AttemptError::Final(
                on_client_error(status).unwrap_or_else(|| self.client_error(call, status, detail)),
            ));
        }
        let bytes = read_capped(&mut response)
            .await
            .map_err(AttemptError::Transient)?;
        decode(status, &bytes).map_err(AttemptError::Transient)
    }

    fn client_error(&self, call: &Call, status: StatusCode, detail: String) -> ClientError {
        let bank = self.config.bank_id.clone();
        let call = call.name.clone();
        let status = status.as_u16();
        if matches!(status, 401 | 403) {
            return ClientError::CredentialRejected { bank, call, status };
        }
        let detail = detail.trim_start_matches(": ").to_string();
        ClientError::Rejected {
            bank,
            call,
            status,
            detail: if detail.is_empty() {
                "no error code given".into()
            } else {
                detail
            },
        }
    }
}

pub(crate) fn header(name: &'static str, value: &str) -> Result<HeaderMap, String> {
    let mut headers = HeaderMap::new();
    let value =
        HeaderValue::from_str(value).map_err(|_| format!("{name} is not a valid header value"))?;
    headers.insert(HeaderName::from_static(name), value);
    Ok(headers)
}

/// Reads the body, refusing one larger than [`MAX_RESPONSE_BYTES`].
async fn read_capped(response: &mut reqwest::Response) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if bytes.len().saturating_add(chunk.len()) > MAX_RESPONSE_BYTES {
                    return Err(format!("response body exceeds {MAX_RESPONSE_BYTES} bytes"));
                }
                bytes.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(bytes),
            Err(error) => return Err(describe(error)),
        }
    }
}

/// The bank's own error code from a JSON error body, as `": code"`, bounded
/// and printable; never the whole body, which may echo account data.
fn error_code_of(bytes: &[u8]) -> String {
    let code = serde_json::from_slice::<serde_json::Value>(bytes)
        .ok()
        .and_then(|value| {
            value
                .get("code")
                .and_then(|c| c.as_str())
                .map(str::to_owned)
        });
    match code {
        Some(code) => {
            let clean: String = code
                .chars()
                .filter(|c| c.is_ascii_graphic())
                .take(64)
                .collect();
            format!(": {clean}")
        }
        None => String::new(),
    }
}

/// A transport error as one line, without the URL (which carries the cursor)
/// and with its causes, e.g. "timed out" or "connection refused".
fn describe(error: reqwest::Error) -> String {
    let error = error.without_url();
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "connection failed"
    } else if error.is_body() || error.is_decode() {
        "body could not be read"
    } else {
        "request failed"
    };
    let mut text = format!("{kind}: {error}");
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(base_url: &str) -> BankConfig {
        BankConfig::new("test-bank", base_url, Secret::new("token"))
    }

    #[track_caller]
    fn check_rejected(config: BankConfig, fragment: &str) {
        match BankClient::new(config) {
            Ok(_) => panic!("config should be rejected ({fragment})"),
            Err(error) => {
                assert_eq!(error.code(), "invalid_bank_config");
                assert!(error.to_string().contains(fragment), "{error}");
                assert!(!error.to_string().contains("token"), "{error}");
            }
        }
    }

    #[test]
    fn configurations_that_would_leak_or_misroute_are_rejected() {
        check_rejected(config("ftp://bank.example"), "http or https");
        check_rejected(config("not a url"), "does not parse");
        check_rejected(config("https://user:pw@bank.example"), "user info");
        check_rejected(config("https://bank.example/?k=v"), "query");
        check_rejected(
            BankConfig::new("", "https://b.example", Secret::new("t")),
            "bank id",
        );
        check_rejected(
            BankConfig::new("b", "https://b.example", Secret::new("")),
            "credential",
        );
        let mut zero_page = config("https://bank.example");
        zero_page.page_size = 0;
        check_rejected(zero_page, "page size");
    }

    #[test]
    fn calls_are_named_by_method_and_path_with_segments_encoded() {
        let client = BankClient::new(config("https://bank.example/api/")).expect("config");
        let call = client.call(Method::GET, &["v1", "accounts", "62 22/01", "statements"]);
        assert_eq!(call.name, "GET /api/v1/accounts/62%2022%2F01/statements");
    }

    #[test]
    fn the_credential_does_not_appear_in_debug_output() {
        let client = BankClient::new(config("https://bank.example")).expect("config");
        assert!(!format!("{client:?}").contains("\"token\""));
    }
}
