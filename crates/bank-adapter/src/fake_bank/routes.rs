//! The fake bank's HTTP side: the statement and instruction routes, with the
//! request recording, credential check and failure injection they share.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::client::pull::{StatementItem, StatementPage};
use crate::fake_bank::{
    BankState, Failure, Payment, RecordedRequest, Shared, StoredFile, StoredInstruction,
};
use crate::instruction::{InstructionReceipt, InstructionStatus, Pain001Receipt};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;

pub(crate) fn app(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/accounts/{account}/statements", get(list_statements))
        .route("/v1/instructions", post(create_instruction))
        .route("/v1/instructions/{id}", get(get_instruction))
        .route("/v1/payments/pain001", post(upload_pain001))
        .with_state(shared)
}

#[derive(Deserialize)]
struct ListParams {
    limit: Option<usize>,
    after: Option<String>,
}

const MAX_LIMIT: usize = 100;

async fn list_statements(
    State(shared): State<Arc<Shared>>,
    Path(account): Path<String>,
    Query(params): Query<ListParams>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let failure = match admit(&shared, &method, &uri, &headers) {
        Ok(failure) => failure,
        Err((status, code)) => return error(status, code),
    };
    let limit = params.limit.unwrap_or(MAX_LIMIT).clamp(1, MAX_LIMIT);
    let page = {
        let state = shared.lock();
        page_of(
            &state,
            &account,
            params.after.as_deref(),
            limit,
            failure.as_ref(),
        )
    };
    match page {
        Ok(page) => match serde_json::to_vec(&page) {
            Ok(body) => finish(&shared, failure, StatusCode::OK, body).await,
            Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "serialization_failed"),
        },
        Err((status, code)) => error(status, code),
    }
}

/// Where a cursor points. `o{n}`: items from offset n. `b{n}`: the page at
/// offset n that an out-of-order answer skipped; after it, paging resumes
/// past the page that was served early.
enum Cursor {
    From(usize),
    Back(usize),
}

fn parse_cursor(after: Option<&str>) -> Option<Cursor> {
    match after {
        None => Some(Cursor::From(0)),
        Some(text) => {
            let (kind, number) = text.split_at_checked(1)?;
            let offset = number.parse().ok()?;
            match kind {
                "o" => Some(Cursor::From(offset)),
                "b" => Some(Cursor::Back(offset)),
                _ => None,
            }
        }
    }
}

fn page_of(
    state: &BankState,
    account: &str,
    after: Option<&str>,
    limit: usize,
    failure: Option<&Failure>,
) -> Result<StatementPage, (StatusCode, &'static str)> {
    let items = state
        .statements
        .get(account)
        .ok_or((StatusCode::NOT_FOUND, "unknown_account"))?;
    let cursor = parse_cursor(after).ok_or((StatusCode::BAD_REQUEST, "invalid_cursor"))?;
    let len = items.len();
    let end = |from: usize| from.saturating_add(limit).min(len);
    let (start, next) = match cursor {
        Cursor::From(offset)
            if failure == Some(&Failure::OutOfOrderPages) && offset + limit < len =>
        {
            (offset + limit, Some(format!("b{offset}")))
        }
        Cursor::From(offset) => (
            offset,
            (offset + limit < len).then(|| format!("o{}", offset + limit)),
        ),
        Cursor::Back(offset) => (
            offset,
            (offset + 2 * limit < len).then(|| format!("o{}", offset + 2 * limit)),
        ),
    };
    let start = start.min(len);
    let mut served: Vec<usize> = (start..end(start)).collect();
    if failure == Some(&Failure::DuplicateDelivery) {
        if start > 0 {
            served.insert(0, start - 1);
        } else if let Some(first) = served.first().copied() {
            served.push(first);
        }
    }
    let items = served
        .into_iter()
        .map(|index| {
            let item = &items[index];
            StatementItem {
                id: item.id.clone(),
                account: account.to_string(),
                format: Some(item.format.code().to_string()),
                content_base64: BASE64.encode(&item.content),
                sha256: Some(hex::encode(Sha256::digest(&item.content))),
            }
        })
        .collect();
    Ok(StatementPage { items, next })
}

async fn create_instruction(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let failure = match admit(&shared, &method, &uri, &headers) {
        Ok(failure) => failure,
        Err((status, code)) => return error(status, code),
    };
    let Some(key) = idempotency_key(&headers) else {
        return error(StatusCode::BAD_REQUEST, "missing_idempotency_key");
    };
    let Ok(body) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return error(StatusCode::BAD_REQUEST, "invalid_json");
    };
    if body.get("id").and_then(|v| v.as_str()) != Some(key.as_str()) {
        return error(StatusCode::BAD_REQUEST, "idempotency_key_does_not_match_id");
    }
    // The work happens before any injected delay: a timeout seen by the
    // client does not mean the bank did nothing.
    let (status, receipt) = {
        let mut state = shared.lock();
        match state.instructions.get(&key) {
            Some(stored) if stored.body == body => (StatusCode::OK, stored.receipt.clone()),
            Some(_) => return error(StatusCode::CONFLICT, "idempotency_key_reused"),
            None => {
                let bank_ref = format!("FB{:06}", state.payments.len() + 1);
                let receipt = InstructionReceipt {
                    instruction_id: key.clone(),
                    bank_ref: bank_ref.clone(),
                    status: InstructionStatus::Accepted,
                    reason: None,
                    replayed: false,
                };
                let text = |field: &str| {
                    body.get(field)
                        .and_then(|v| v.as_str())
                        .unwrap_or_default()
                        .to_string()
                };
                state.payments.push(Payment {
                    instruction_id: key.clone(),
                    bank_ref,
                    amount: text("amount"),
                    currency: text("currency"),
                    body: body.clone(),
                });
                state.instructions.insert(
                    key,
                    StoredInstruction {
                        body,
                        receipt: receipt.clone(),
                    },
                );
                (StatusCode::CREATED, receipt)
            }
        }
    };
    match serde_json::to_vec(&receipt) {
        Ok(bytes) => finish(&shared, failure, status, bytes).await,
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "serialization_failed"),
    }
}

/// A pain.001 file over the API: read enough of it to pay each
/// CdtTrfTxInf once (by its EndToEndId), keyed by the file's MsgId.
async fn upload_pain001(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let failure = match admit(&shared, &method, &uri, &headers) {
        Ok(failure) => failure,
        Err((status, code)) => return error(status, code),
    };
    let Some(key) = idempotency_key(&headers) else {
        return error(StatusCode::BAD_REQUEST, "missing_idempotency_key");
    };
    let xml_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/xml"));
    if !xml_type {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "expected_application_xml",
        );
    }
    let Some(file) = read_pain001(&body) else {
        return error(StatusCode::BAD_REQUEST, "invalid_pain001");
    };
    if file.message_id != key {
        return error(
            StatusCode::BAD_REQUEST,
            "idempotency_key_does_not_match_msg_id",
        );
    }
    // As for JSON instructions, the work happens before any injected delay.
    let (status, receipt) = {
        let mut state = shared.lock();
        match state.files.get(&key) {
            Some(stored) if stored.content == body.as_ref() => {
                (StatusCode::OK, stored.receipt.clone())
            }
            Some(_) => return error(StatusCode::CONFLICT, "idempotency_key_reused"),
            None => {
                if file
                    .transactions
                    .iter()
                    .any(|t| state.instructions.contains_key(&t.end_to_end_id))
                {
                    return error(StatusCode::CONFLICT, "end_to_end_id_reused");
                }
                let mut receipts = Vec::new();
                for t in file.transactions {
                    let bank_ref = format!("FB{:06}", state.payments.len() + 1);
                    let receipt = InstructionReceipt {
                        instruction_id: t.end_to_end_id.clone(),
                        bank_ref: bank_ref.clone(),
                        status: InstructionStatus::Accepted,
                        reason: None,
                        replayed: false,
                    };
                    let body = serde_json::json!({
                        "message_id": key,
                        "end_to_end_id": t.end_to_end_id,
                        "amount": t.amount,
                        "currency": t.currency,
                    });
                    state.payments.push(Payment {
                        instruction_id: t.end_to_end_id.clone(),
                        bank_ref,
                        amount: t.amount,
                        currency: t.currency,
                        body: body.clone(),
                    });
                    state.instructions.insert(
                        t.end_to_end_id,
                        StoredInstruction {
                            body,
                            receipt: receipt.clone(),
                        },
                    );
                    receipts.push(receipt);
                }
                let receipt = Pain001Receipt {
                    message_id: key.clone(),
                    bank_ref: format!("FBF{:06}", state.files.len() + 1),
                    instructions: receipts,
                    replayed: false,
                };
                state.files.insert(
                    key,
                    StoredFile {
                        content: body.to_vec(),
                        receipt: receipt.clone(),
                    },
                );
                (StatusCode::CREATED, receipt)
            }
        }
    };
    match serde_json::to_vec(&receipt) {
        Ok(bytes) => finish(&shared, failure, status, bytes).await,
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "serialization_failed"),
    }
}

struct Pain001File {
    message_id: String,
    transactions: Vec<Pain001Transaction>,
}

struct Pain001Transaction {
    end_to_end_id: String,
    amount: String,
    currency: String,
}

/// What the fake bank reads of a pain.001: `GrpHdr/MsgId`, and each
/// `CdtTrfTxInf`'s `PmtId/EndToEndId` and `Amt/InstdAmt` (with `@Ccy`).
/// `None` for anything it cannot read (or a file with no transaction).
fn read_pain001(bytes: &[u8]) -> Option<Pain001File> {
    use quick_xml::events::Event;
    let text = std::str::from_utf8(bytes).ok()?;
    let mut reader = quick_xml::Reader::from_str(text);
    let mut path: Vec<String> = Vec::new();
    let mut value = String::new();
    let mut message_id = None;
    let mut transactions = Vec::new();
    let mut current: Option<Pain001Transaction> = None;
    loop {
        match reader.read_event().ok()? {
            Event::Start(e) => {
                let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                if name == "CdtTrfTxInf" {
                    current = Some(Pain001Transaction {
                        end_to_end_id: String::new(),
                        amount: String::new(),
                        currency: String::new(),
                    });
                }
                if name == "InstdAmt" {
                    let ccy = e
                        .attributes()
                        .flatten()
                        .find(|a| a.key.as_ref() == b"Ccy")
                        .map(|a| String::from_utf8_lossy(&a.value).into_owned());
                    if let (Some(t), Some(ccy)) = (current.as_mut(), ccy) {
                        t.currency = ccy;
                    }
                }
                path.push(name);
                value.clear();
            }
            Event::Text(t) => value.push_str(&t.decode().ok()?),
            Event::End(_) => {
                let joined = path.join("/");
                let v = value.trim().to_string();
                if joined.ends_with("GrpHdr/MsgId") {
                    message_id = Some(v);
                } else if joined.ends_with("CdtTrfTxInf/PmtId/EndToEndId") {
                    current.as_mut()?.end_to_end_id = v;
                } else if joined.ends_with("CdtTrfTxInf/Amt/InstdAmt") {
                    current.as_mut()?.amount = v;
                } else if joined.ends_with("CdtTrfTxInf") {
                    let t = current.take()?;
                    if t.end_to_end_id.is_empty() || t.amount.is_empty() || t.currency.is_empty() {
                        return None;
                    }
                    transactions.push(t);
                }
                value.clear();
                path.pop();
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if transactions.is_empty() {
        return None;
    }
    Some(Pain001File {
        message_id: message_id?,
        transactions,
    })
}

async fn get_instruction(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let failure = match admit(&shared, &method, &uri, &headers) {
        Ok(failure) => failure,
        Err((status, code)) => return error(status, code),
    };
    let receipt = shared
        .lock()
        .instructions
        .get(&id)
        .map(|s| s.receipt.clone());
    match receipt.map(|r| serde_json::to_vec(&r)) {
        Some(Ok(bytes)) => finish(&shared, failure, StatusCode::OK, bytes).await,
        Some(Err(_)) => error(StatusCode::INTERNAL_SERVER_ERROR, "serialization_failed"),
        None => error(StatusCode::NOT_FOUND, "unknown_instruction"),
    }
}

/// Records the request, checks the credential, and takes the next queued
/// failure. `Err` is the status and error code to answer with instead.
fn admit(
    shared: &Shared,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<Option<Failure>, (StatusCode, &'static str)> {
    let mut state = shared.lock();
    state.requests.push(RecordedRequest {
        method: method.to_string(),
        path: uri.path().to_string(),
        query: uri.query().map(str::to_owned),
        idempotency_key: idempotency_key(headers),
    });
    let expected = format!("Bearer {}", shared.credential.expose());
    let presented = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok());
    if presented != Some(expected.as_str()) {
        return Err((StatusCode::UNAUTHORIZED, "unauthorized"));
    }
    match state.failures.pop_front().flatten() {
        Some(Failure::Status(code)) => Err((
            StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            "injected_failure",
        )),
        other => Ok(other),
    }
}

/// Sends the response the way the queued failure says.
async fn finish(
    shared: &Shared,
    failure: Option<Failure>,
    status: StatusCode,
    body: Vec<u8>,
) -> Response {
    match failure {
        Some(Failure::Timeout) => {
            let mut stopped = shared.shutdown.clone();
            tokio::select! {
                _ = tokio::time::sleep(shared.hold) => {}
                _ = stopped.wait_for(|stopped| *stopped) => {}
            }
            json(status, body)
        }
        Some(Failure::TruncatedBody) => {
            let half = body.len() / 2;
            json(status, body[..half].to_vec())
        }
        _ => json(status, body),
    }
}

fn idempotency_key(headers: &HeaderMap) -> Option<String> {
    headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn json(status: StatusCode, body: Vec<u8>) -> Response {
    (status, [(CONTENT_TYPE, "application/json")], body).into_response()
}

fn error(status: StatusCode, code: &'static str) -> Response {
    let body = serde_json::json!({ "code": code, "message": format!("fake bank: {code}") });
    json(status, body.to_string().into_bytes())
}
