//! The bank client against the fake supervising bank over loopback: every
//! failure the fake can produce, and what must hold afterwards (nothing
//! lost, nothing duplicated, checkpoint correct, paid exactly once).

use std::collections::BTreeSet;
use std::time::Duration;

use bank_adapter::client::{
    BankClient, BankConfig, Checkpoint, ClientError, FeedSink, FetchedFeed, FileCheckpoint,
    MemoryCheckpoint, RetryPolicy, Secret,
};
use bank_adapter::fake_bank::{Failure, FakeBank};
use bank_adapter::instruction::{
    Creditor, Instruction, InstructionId, InstructionKind, InstructionSpec, InstructionStatus,
};
use bank_adapter::Format;
use chrono::NaiveDate;
use ledger_core::{Amount, Currency, InstitutionId};

const BANK: &str = "fake-icbc";
const ACCOUNT: &str = "6222020200001234";
const OTHER_ACCOUNT: &str = "6222020200005678";

/// Short everything, so the whole file runs in a few seconds.
fn config(bank: &FakeBank, accounts: &[&str]) -> BankConfig {
    let mut config = BankConfig::new(BANK, bank.url(), bank.credential());
    config.accounts = accounts.iter().map(|a| a.to_string()).collect();
    // Short, yet far above a loopback round trip on a busy CI machine.
    config.timeout = Duration::from_millis(300);
    config.retry = RetryPolicy {
        max_retries: 2,
        initial_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
    };
    config.page_size = 2;
    config
}

fn client(bank: &FakeBank, accounts: &[&str]) -> BankClient {
    BankClient::new(config(bank, accounts)).expect("valid config")
}

/// Statement bodies are opaque bytes to the client; some are not UTF-8
/// (GBK exports), which must arrive byte for byte.
fn body(n: usize) -> Vec<u8> {
    let mut bytes = format!(":20:STMT{n:04}\r\n:25:{ACCOUNT}\r\n").into_bytes();
    bytes.extend_from_slice(&[0xD5, 0xC5, 0xC8, 0xFD, n as u8]);
    bytes
}

fn add_statements(bank: &FakeBank, account: &str, range: std::ops::Range<usize>) -> Vec<String> {
    range
        .map(|n| bank.add_statement(account, Format::Mt940, body(n)))
        .collect()
}

fn ids(feeds: &[FetchedFeed]) -> Vec<String> {
    feeds.iter().map(|f| f.id.clone()).collect()
}

#[track_caller]
fn assert_each_exactly_once(feeds: &[FetchedFeed], expected: &[String]) {
    let got = ids(feeds);
    let unique: BTreeSet<&String> = got.iter().collect();
    assert_eq!(unique.len(), got.len(), "duplicates delivered: {got:?}");
    let expected_set: BTreeSet<&String> = expected.iter().collect();
    assert_eq!(
        unique, expected_set,
        "delivered {got:?}, expected {expected:?}"
    );
}

#[tokio::test]
async fn statements_are_fetched_page_by_page_byte_for_byte_and_a_rerun_fetches_nothing() {
    let bank = FakeBank::start().await;
    let mut expected = add_statements(&bank, ACCOUNT, 0..5);
    expected.extend(add_statements(&bank, OTHER_ACCOUNT, 5..8));
    let client = client(&bank, &[ACCOUNT, OTHER_ACCOUNT]);
    let mut checkpoint = MemoryCheckpoint::default();

    let feeds = client
        .fetch_statements(&mut checkpoint)
        .await
        .expect("fetch");
    assert_eq!(ids(&feeds), expected, "in bank order, per account");
    for (n, feed) in feeds.iter().enumerate() {
        assert_eq!(feed.content, body(n));
        assert_eq!(feed.format, Some(Format::Mt940));
        assert_eq!(feed.bank_id, BANK);
    }
    assert_eq!(feeds[5].account, OTHER_ACCOUNT);

    let again = client
        .fetch_statements(&mut checkpoint)
        .await
        .expect("rerun");
    assert!(again.is_empty(), "rerun delivered {:?}", ids(&again));

    let late = bank.add_statement(ACCOUNT, Format::Camt053, b"<Document/>".to_vec());
    let third = client
        .fetch_statements(&mut checkpoint)
        .await
        .expect("third run");
    assert_eq!(ids(&third), vec![late]);
    assert_eq!(third[0].format, Some(Format::Camt053));
}

#[tokio::test]
async fn a_run_that_dies_on_page_three_loses_nothing_and_the_next_client_fetches_only_the_rest() {
    let bank = FakeBank::start().await;
    let expected = add_statements(&bank, ACCOUNT, 0..7);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("fake-icbc.checkpoint.json");

    // Pages 1 and 2 are served, page 3 fails for good.
    bank.pass_next(2);
    bank.fail_next(100, Failure::Status(503));
    let first_client = client(&bank, &[ACCOUNT]);
    let mut first_run = Vec::new();
    let error = first_client
        .fetch_statements_into(&mut FileCheckpoint::new(&path), &mut first_run)
        .await
        .expect_err("page 3 never succeeds");
    assert_eq!(error.code(), "bank_unavailable");
    assert_eq!(ids(&first_run), expected[..4].to_vec());
    drop(first_client);

    // What the file says is exactly what was handed over.
    let saved = FileCheckpoint::new(&path).load().expect("checkpoint");
    let cursor = &saved.accounts[ACCOUNT];
    assert_eq!(Vec::from(cursor.seen.clone()), expected[..4].to_vec());
    assert_eq!(saved.bank_id.as_deref(), Some(BANK));

    bank.clear_failures();
    let requests_before = bank.requests().len();
    let second_client = client(&bank, &[ACCOUNT]);
    let second_run = second_client
        .fetch_statements(&mut FileCheckpoint::new(&path))
        .await
        .expect("resume");
    assert_eq!(ids(&second_run), expected[4..].to_vec());

    // It resumed where the first stopped instead of starting over.
    let resumed = &bank.requests()[requests_before];
    assert_eq!(
        resumed.query.as_deref(),
        cursor
            .after
            .as_deref()
            .map(|c| format!("limit=2&after={c}"))
            .as_deref()
    );

    let mut all = first_run;
    all.extend(second_run);
    assert_each_exactly_once(&all, &expected);
}

#[tokio::test]
async fn server_errors_are_retried_and_then_the_statements_arrive() {
    let bank = FakeBank::start().await;
    let expected = add_statements(&bank, ACCOUNT, 0..3);
    bank.fail_next(2, Failure::Status(500));
    let feeds = client(&bank, &[ACCOUNT])
        .fetch_statements(&mut MemoryCheckpoint::default())
        .await
        .expect("third attempt succeeds");
    assert_each_exactly_once(&feeds, &expected);
    // 2 failures + page 1 + page 2.
    assert_eq!(bank.count_requests("GET", "/v1/accounts"), 4);
}

#[tokio::test]
async fn a_timeout_is_retried_and_then_the_statements_arrive() {
    let bank = FakeBank::start().await;
    let expected = add_statements(&bank, ACCOUNT, 0..2);
    bank.fail_next(1, Failure::Timeout);
    let feeds = client(&bank, &[ACCOUNT])
        .fetch_statements(&mut MemoryCheckpoint::default())
        .await
        .expect("retry succeeds");
    assert_each_exactly_once(&feeds, &expected);
    assert_eq!(bank.count_requests("GET", "/v1/accounts"), 2);
}

#[tokio::test]
async fn a_truncated_body_is_retried_like_a_transient_failure() {
    let bank = FakeBank::start().await;
    let expected = add_statements(&bank, ACCOUNT, 0..4);
    bank.pass_next(1);
    bank.fail_next(1, Failure::TruncatedBody);
    let mut checkpoint = MemoryCheckpoint::default();
    let feeds = client(&bank, &[ACCOUNT])
        .fetch_statements(&mut checkpoint)
        .await
        .expect("retry succeeds");
    assert_each_exactly_once(&feeds, &expected);
    assert_eq!(bank.count_requests("GET", "/v1/accounts"), 3);
}

#[tokio::test]
async fn bodies_that_stay_truncated_give_up_after_a_bounded_number_of_attempts() {
    let bank = FakeBank::start().await;
    add_statements(&bank, ACCOUNT, 0..2);
    bank.fail_next(100, Failure::TruncatedBody);
    let mut checkpoint = MemoryCheckpoint::default();
    let error = client(&bank, &[ACCOUNT])
        .fetch_statements(&mut checkpoint)
        .await
        .expect_err("never readable");
    match &error {
        ClientError::GaveUp {
            attempts, cause, ..
        } => {
            assert_eq!(*attempts, 3);
            assert!(cause.contains("invalid statement page"), "{cause}");
        }
        other => panic!("expected GaveUp, got {other:?}"),
    }
    assert_eq!(bank.count_requests("GET", "/v1/accounts"), 3);
    assert!(
        checkpoint.state.accounts.is_empty(),
        "nothing was delivered, nothing may be checkpointed"
    );
}

#[tokio::test]
async fn items_delivered_twice_within_a_page_or_across_pages_come_out_once() {
    let bank = FakeBank::start().await;
    let expected = add_statements(&bank, ACCOUNT, 0..6);
    bank.fail_next(1, Failure::DuplicateDelivery); // page 1 holds its first item twice
    bank.fail_next(1, Failure::DuplicateDelivery); // page 2 repeats page 1's last item
    bank.pass_next(1);
    let feeds = client(&bank, &[ACCOUNT])
        .fetch_statements(&mut MemoryCheckpoint::default())
        .await
        .expect("fetch");
    assert_each_exactly_once(&feeds, &expected);
}

#[tokio::test]
async fn pages_served_out_of_order_lose_nothing_and_duplicate_nothing() {
    let bank = FakeBank::start().await;
    let expected = add_statements(&bank, ACCOUNT, 0..7);
    bank.fail_next(1, Failure::OutOfOrderPages);
    bank.pass_next(1);
    bank.fail_next(1, Failure::OutOfOrderPages);
    let mut checkpoint = MemoryCheckpoint::default();
    let client = client(&bank, &[ACCOUNT]);
    let feeds = client
        .fetch_statements(&mut checkpoint)
        .await
        .expect("fetch");
    assert_each_exactly_once(&feeds, &expected);
    assert_ne!(
        ids(&feeds),
        expected,
        "the bank really did serve pages out of order"
    );

    let rerun = client
        .fetch_statements(&mut checkpoint)
        .await
        .expect("rerun");
    assert!(rerun.is_empty(), "rerun delivered {:?}", ids(&rerun));
}

#[tokio::test]
async fn a_rejected_credential_is_not_retried() {
    let bank = FakeBank::start().await;
    add_statements(&bank, ACCOUNT, 0..2);
    let mut config = config(&bank, &[ACCOUNT]);
    config.credential = Secret::new("wrong-credential-value");
    let error = BankClient::new(config)
        .expect("config")
        .fetch_statements(&mut MemoryCheckpoint::default())
        .await
        .expect_err("401");
    assert_eq!(error.code(), "bank_credential_rejected");
    assert!(
        !error.to_string().contains("wrong-credential-value"),
        "{error}"
    );
    assert_eq!(bank.requests().len(), 1);
}

#[tokio::test]
async fn client_errors_are_not_retried() {
    for status in [400, 404, 422] {
        let bank = FakeBank::start().await;
        add_statements(&bank, ACCOUNT, 0..2);
        bank.fail_next(5, Failure::Status(status));
        let error = client(&bank, &[ACCOUNT])
            .fetch_statements(&mut MemoryCheckpoint::default())
            .await
            .expect_err("4xx");
        match &error {
            ClientError::Rejected { status: got, .. } => assert_eq!(*got, status),
            other => panic!("expected Rejected for {status}, got {other:?}"),
        }
        assert_eq!(bank.requests().len(), 1, "http {status} was retried");
    }
}

#[tokio::test]
async fn an_account_the_bank_does_not_know_is_a_404_named_in_the_error() {
    let bank = FakeBank::start().await;
    let error = client(&bank, &["6222999999999999"])
        .fetch_statements(&mut MemoryCheckpoint::default())
        .await
        .expect_err("unknown account");
    assert_eq!(error.code(), "bank_rejected_request");
    let message = error.to_string();
    assert!(
        message.contains("http 404") && message.contains("unknown_account"),
        "{message}"
    );
    assert_eq!(bank.requests().len(), 1);
}

#[tokio::test]
async fn giving_up_names_the_bank_the_call_and_the_last_cause_but_no_secret() {
    let bank = FakeBank::start().await;
    add_statements(&bank, ACCOUNT, 0..2);
    bank.fail_next(100, Failure::Status(503));
    let error = client(&bank, &[ACCOUNT])
        .fetch_statements(&mut MemoryCheckpoint::default())
        .await
        .expect_err("gives up");
    let message = error.to_string();
    assert_eq!(error.code(), "bank_unavailable");
    assert!(message.contains(BANK), "{message}");
    assert!(
        message.contains(&format!("GET /v1/accounts/{ACCOUNT}/statements")),
        "{message}"
    );
    assert!(message.contains("3 attempts"), "{message}");
    assert!(message.contains("http 503: injected_failure"), "{message}");
    assert!(!message.contains(bank.credential().expose()), "{message}");
    assert!(
        !message.contains("limit="),
        "the query is not part of the call name: {message}"
    );
}

#[tokio::test]
async fn a_bank_that_is_down_is_retried_then_reported_as_a_connection_failure() {
    // A bound port that nobody listens on refuses connections, and stays
    // ours for the whole test, so no other test's server can take it.
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind("127.0.0.1:0".parse().expect("addr"))
        .expect("bind");
    let address = socket.local_addr().expect("address");
    let mut config = BankConfig::new(BANK, format!("http://{address}"), Secret::new("t"));
    config.accounts = vec![ACCOUNT.to_string()];
    config.timeout = Duration::from_millis(300);
    config.retry = RetryPolicy {
        max_retries: 2,
        initial_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
    };
    let error = BankClient::new(config)
        .expect("config")
        .fetch_statements(&mut MemoryCheckpoint::default())
        .await
        .expect_err("nobody listens");
    match &error {
        ClientError::GaveUp {
            attempts, cause, ..
        } => {
            assert_eq!(*attempts, 3);
            assert!(cause.contains("connection failed"), "{cause}");
        }
        other => panic!("expected GaveUp, got {other:?}"),
    }
}

#[derive(Debug, thiserror::Error)]
#[error("disk full")]
struct DiskFull;

struct FailingSink;

impl FeedSink for FailingSink {
    type Error = DiskFull;
    async fn accept(&mut self, _feeds: Vec<FetchedFeed>) -> Result<(), DiskFull> {
        Err(DiskFull)
    }
}

#[tokio::test]
async fn when_storing_a_page_fails_the_checkpoint_stays_and_the_page_comes_again() {
    let bank = FakeBank::start().await;
    let expected = add_statements(&bank, ACCOUNT, 0..3);
    let client = client(&bank, &[ACCOUNT]);
    let mut checkpoint = MemoryCheckpoint::default();
    let error = client
        .fetch_statements_into(&mut checkpoint, &mut FailingSink)
        .await
        .expect_err("sink fails");
    assert_eq!(error.code(), "feed_sink_failed");
    assert!(checkpoint.state.accounts.is_empty());

    let feeds = client
        .fetch_statements(&mut checkpoint)
        .await
        .expect("fetch");
    assert_each_exactly_once(&feeds, &expected);
}

#[tokio::test]
async fn a_checkpoint_of_another_bank_is_refused() {
    let bank = FakeBank::start().await;
    add_statements(&bank, ACCOUNT, 0..1);
    let mut checkpoint = MemoryCheckpoint::default();
    checkpoint.state.bank_id = Some("some-other-bank".into());
    let error = client(&bank, &[ACCOUNT])
        .fetch_statements(&mut checkpoint)
        .await
        .expect_err("wrong bank");
    assert_eq!(error.code(), "checkpoint_failed");
    assert!(bank.requests().is_empty());
}

fn refund(id: &str, minor: i64) -> Instruction {
    Instruction::new(InstructionSpec {
        id: InstructionId::parse(id).expect("id"),
        kind: InstructionKind::Refund,
        institution: InstitutionId::parse("INS-410922-0001").expect("institution"),
        debtor_account: ACCOUNT.into(),
        creditor: Creditor {
            name: "王小明家长".into(),
            account: "6217000010001234567".into(),
            bank: "ICBKCNBJ".into(),
        },
        amount: Amount::from_minor(minor).expect("amount"),
        currency: Currency::Cny,
        requested_date: NaiveDate::from_ymd_opt(2026, 1, 5).expect("date"),
        remittance: Some("refund E-77".into()),
    })
    .expect("valid instruction")
}

#[tokio::test]
async fn an_instruction_is_paid_once_and_its_receipt_says_so() {
    let bank = FakeBank::start().await;
    let receipt = client(&bank, &[])
        .send_instruction(&refund("RF-0001", 123_450))
        .await
        .expect("sent");
    assert_eq!(receipt.instruction_id, "RF-0001");
    assert_eq!(receipt.status, InstructionStatus::Accepted);
    assert!(!receipt.replayed);
    let payments = bank.payments();
    assert_eq!(payments.len(), 1);
    assert_eq!(payments[0].amount, "1234.50");
    assert_eq!(payments[0].currency, "CNY");
    assert_eq!(
        bank.requests()[0].idempotency_key.as_deref(),
        Some("RF-0001")
    );
}

#[tokio::test]
async fn an_instruction_retried_after_a_client_timeout_is_paid_exactly_once() {
    let bank = FakeBank::start().await;
    let client = client(&bank, &[]);
    let instruction = refund("RF-0002", 50_000);
    // The bank makes the payment, then the answer never reaches us in time.
    bank.fail_next(1, Failure::Timeout);
    let receipt = client
        .send_instruction(&instruction)
        .await
        .expect("retry finds it");
    assert!(
        receipt.replayed,
        "the retry must be answered from the bank's idempotency record"
    );
    assert_eq!(bank.count_requests("POST", "/v1/instructions"), 2);
    assert!(bank
        .requests()
        .iter()
        .all(|r| r.idempotency_key.as_deref() == Some("RF-0002")));

    // The outbox sending it once more (after a crash, say) changes nothing.
    let again = client.send_instruction(&instruction).await.expect("replay");
    assert_eq!(again.bank_ref, receipt.bank_ref);
    assert_eq!(
        bank.payments().len(),
        1,
        "paid more than once: {:?}",
        bank.payments()
    );

    // The first request is still held inside the fake bank; stopping it
    // must cut the hold short rather than wait it out.
    let started = std::time::Instant::now();
    bank.stop().await;
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "stop waited {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn the_same_instruction_id_with_a_different_body_is_a_conflict_and_not_paid() {
    let bank = FakeBank::start().await;
    let client = client(&bank, &[]);
    client
        .send_instruction(&refund("RF-0003", 10_000))
        .await
        .expect("first");
    let error = client
        .send_instruction(&refund("RF-0003", 99_900))
        .await
        .expect_err("changed amount under the same key");
    assert_eq!(error.code(), "instruction_conflict");
    assert!(
        matches!(error, ClientError::InstructionConflict { ref instruction_id, .. } if instruction_id == "RF-0003")
    );
    assert_eq!(bank.payments().len(), 1);
    assert_eq!(bank.payments()[0].amount, "100.00");
    assert_eq!(
        bank.count_requests("POST", "/v1/instructions"),
        2,
        "a 409 is not retried"
    );
}

#[tokio::test]
async fn an_instruction_post_that_keeps_failing_gives_up_naming_the_call() {
    let bank = FakeBank::start().await;
    bank.fail_next(100, Failure::Status(502));
    let error = client(&bank, &[])
        .send_instruction(&refund("RF-0004", 100))
        .await
        .expect_err("gives up");
    assert!(
        error
            .to_string()
            .contains("POST /v1/instructions failed after 3 attempts"),
        "{error}"
    );
    assert!(bank.payments().is_empty());
}

#[tokio::test]
async fn instruction_status_follows_the_bank_and_unknown_ids_are_named() {
    let bank = FakeBank::start().await;
    let client = client(&bank, &[]);
    let instruction = refund("RF-0005", 700);
    client.send_instruction(&instruction).await.expect("sent");

    let status = client
        .instruction_status(instruction.id())
        .await
        .expect("status");
    assert_eq!(status.status, InstructionStatus::Accepted);
    assert!(!status.replayed);

    assert!(bank.set_instruction_status(
        "RF-0005",
        InstructionStatus::Rejected,
        Some("AC04 closed account")
    ));
    let status = client
        .instruction_status(instruction.id())
        .await
        .expect("status");
    assert_eq!(status.status, InstructionStatus::Rejected);
    assert_eq!(status.reason.as_deref(), Some("AC04 closed account"));

    let unknown = InstructionId::parse("RF-9999").expect("id");
    let error = client
        .instruction_status(&unknown)
        .await
        .expect_err("unknown");
    assert_eq!(error.code(), "unknown_instruction");
    assert!(error.to_string().contains("RF-9999"), "{error}");
}

fn pain001_of(instructions: &[Instruction], message_id: &str) -> String {
    let at = chrono::DateTime::from_timestamp(1_790_000_000, 0).expect("valid time");
    bank_adapter::instruction::pain001(instructions, message_id, at).expect("valid pain.001")
}

#[tokio::test]
async fn a_pain001_file_uploaded_twice_pays_each_instruction_once_by_its_end_to_end_id() {
    let bank = FakeBank::start().await;
    let client = client(&bank, &[]);
    let xml = pain001_of(
        &[refund("RF-0101", 12_345), refund("RF-0102", 50_000)],
        "MSG-0001",
    );
    // The bank takes the file, then the answer never reaches us in time:
    // the client's retry is answered from the bank's idempotency record.
    bank.fail_next(1, Failure::Timeout);
    let receipt = client.upload_pain001("MSG-0001", &xml).await.expect("sent");
    assert!(receipt.replayed);
    assert_eq!(receipt.message_id, "MSG-0001");
    let ids: Vec<&str> = receipt
        .instructions
        .iter()
        .map(|r| r.instruction_id.as_str())
        .collect();
    assert_eq!(ids, ["RF-0101", "RF-0102"]);
    let paid: Vec<(String, String)> = bank
        .payments()
        .into_iter()
        .map(|p| (p.instruction_id, p.amount))
        .collect();
    assert_eq!(
        paid,
        [
            ("RF-0101".to_string(), "123.45".to_string()),
            ("RF-0102".to_string(), "500.00".to_string())
        ]
    );
    assert_eq!(bank.count_requests("POST", "/v1/payments/pain001"), 2);
    // Each instruction is asked after by its EndToEndId.
    let status = client
        .instruction_status(&InstructionId::parse("RF-0102").expect("id"))
        .await
        .expect("known");
    assert_eq!(status.status, InstructionStatus::Accepted);
    bank.stop().await;
}

#[tokio::test]
async fn a_pain001_upload_the_bank_cannot_take_is_refused_precisely_and_pays_nothing() {
    let bank = FakeBank::start().await;
    let client = client(&bank, &[]);
    let xml = pain001_of(&[refund("RF-0201", 10_000)], "MSG-0201");
    // Not a pain.001 at all.
    let error = client
        .upload_pain001("MSG-0200", "<Document/>")
        .await
        .expect_err("no transaction");
    assert!(error.to_string().contains("invalid_pain001"), "{error}");
    // The key is not the file's MsgId.
    let error = client
        .upload_pain001("MSG-OTHER", &xml)
        .await
        .expect_err("key and MsgId differ");
    assert!(
        error
            .to_string()
            .contains("idempotency_key_does_not_match_msg_id"),
        "{error}"
    );
    assert!(bank.payments().is_empty());
    // The same MsgId with a different file: a conflict, not a payment.
    client
        .upload_pain001("MSG-0201", &xml)
        .await
        .expect("first");
    let changed = pain001_of(&[refund("RF-0201", 99_900)], "MSG-0201");
    let error = client
        .upload_pain001("MSG-0201", &changed)
        .await
        .expect_err("changed file under the same key");
    assert_eq!(error.code(), "instruction_conflict");
    assert_eq!(bank.payments().len(), 1);
    assert_eq!(bank.payments()[0].amount, "100.00");
    bank.stop().await;
}
