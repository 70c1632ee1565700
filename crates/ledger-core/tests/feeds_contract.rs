//! Bank feeds in the store, the same bodies on PostgreSQL and SQLite:
//! registration, idempotent ingestion, refusals that store nothing.

mod support {
    pub mod county;
    pub mod db;
}

use chrono::NaiveDate;
use ledger_core::domain::feeds::{AccountKind, BankAccount, FeedLine, FeedStatement};
use ledger_core::Currency;
use support::county::*;
use support::db::TestDb;

contract!(
    a_file_ingested_twice_changes_nothing_the_second_time,
    the_same_statement_in_two_files_is_held_once_and_other_content_is_refused,
    statements_of_unregistered_accounts_or_currencies_store_nothing,
    a_statement_that_does_not_continue_the_last_one_is_reported,
    an_account_number_belongs_to_one_institution,
    an_intraday_report_and_the_end_of_day_statement_are_both_kept_apart,
);

fn line(amount_minor: i64, e2e: &str) -> FeedLine {
    FeedLine {
        amount_minor,
        booking_date: Some(day("2026-09-01")),
        value_date: Some(day("2026-09-01")),
        status: ledger_core::domain::feeds::LineStatus::Booked,
        bank_ref: Some(format!("B-{e2e}")),
        end_to_end_id: Some(e2e.into()),
        remittance: Some("学费 tuition".into()),
        counterparty_name: Some("张三".into()),
        counterparty_account: None,
        bank_tx_code: None,
        reversal: false,
        return_reason: None,
        details: "{}".into(),
        source_line: Some(7),
        source_path: None,
    }
}

fn statement(id: &str, opening: i64, amounts: &[i64], on: &str) -> FeedStatement {
    let date: NaiveDate = day(on);
    FeedStatement {
        bank: "ICBC-PY".into(),
        account_no: "6222-0001".into(),
        format: "camt053".into(),
        statement_id: id.into(),
        sequence: None,
        currency: Currency::Cny,
        provisional: false,
        opening: Some((opening, date)),
        closing: Some((opening + amounts.iter().sum::<i64>(), date)),
        lines: amounts
            .iter()
            .enumerate()
            .map(|(i, a)| line(*a, &format!("{id}-{i}")))
            .collect(),
        file_sha256: format!("sha-of-file-with-{id}"),
        message: 0,
    }
}

async fn registered(db: &TestDb) {
    seeded(&db.store).await;
    db.store
        .register_bank("ICBC-PY", "ICBC Puyang")
        .await
        .unwrap();
    db.store
        .register_bank_account(&BankAccount {
            institution: iid("I1"),
            bank: "ICBC-PY".into(),
            account_no: "6222-0001".into(),
            kind: AccountKind::Escrow,
            currency: Currency::Cny,
        })
        .await
        .unwrap();
}

async fn a_file_ingested_twice_changes_nothing_the_second_time(db: &TestDb) {
    registered(db).await;
    let s = &db.store;
    let st = vec![statement("S1", 0, &[480_000, -1_000], "2026-09-01")];
    let first = s
        .ingest_file("ICBC-PY", "f1", "camt053", 100, &st)
        .await
        .unwrap();
    assert_eq!(
        (
            first.statements_stored,
            first.lines_stored,
            first.file_seen_before
        ),
        (1, 2, false)
    );
    let before = db.dump().await;
    let again = s
        .ingest_file("ICBC-PY", "f1", "camt053", 100, &st)
        .await
        .unwrap();
    assert!(again.file_seen_before);
    assert_eq!(again.statements_stored, 0);
    assert_eq!(db.dump().await, before);
    assert_eq!(s.bank_line_count(&iid("I1")).await.unwrap(), 2);
}

async fn the_same_statement_in_two_files_is_held_once_and_other_content_is_refused(db: &TestDb) {
    registered(db).await;
    let s = &db.store;
    s.ingest_file(
        "ICBC-PY",
        "f1",
        "camt053",
        100,
        &[statement("S1", 0, &[500], "2026-09-01")],
    )
    .await
    .unwrap();
    // The same statement again inside a larger file, with a new one.
    let report = s
        .ingest_file(
            "ICBC-PY",
            "f2",
            "camt053",
            200,
            &[
                statement("S1", 0, &[500], "2026-09-01"),
                statement("S2", 500, &[700], "2026-09-02"),
            ],
        )
        .await
        .unwrap();
    assert_eq!(
        (report.statements_stored, report.statements_already_held),
        (1, 1)
    );
    assert_eq!(s.bank_line_count(&iid("I1")).await.unwrap(), 2);
    // A bank that resends S1 with other figures is refused, whole file.
    let before = db.dump().await;
    let err = s
        .ingest_file(
            "ICBC-PY",
            "f3",
            "camt053",
            300,
            &[
                statement("S3", 1_200, &[1], "2026-09-03"),
                statement("S1", 0, &[501], "2026-09-01"),
            ],
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), "exists_with_different_fields");
    assert!(err.to_string().contains("S1"), "{err}");
    assert_eq!(db.dump().await, before);
    // S1 re-sent under a new reference (and another format's key): what
    // the bank said is held already, so its lines are not stored twice.
    let mut resent = statement("S1", 0, &[500], "2026-09-01");
    resent.statement_id = "S1-RESENT".into();
    resent.format = "mt940".into();
    let report = s
        .ingest_file("ICBC-PY", "f4", "mt940", 100, &[resent])
        .await
        .unwrap();
    assert_eq!(
        (
            report.statements_stored,
            report.statements_already_held,
            report.lines_stored
        ),
        (0, 1, 0)
    );
    assert_eq!(s.bank_line_count(&iid("I1")).await.unwrap(), 2);
}

async fn statements_of_unregistered_accounts_or_currencies_store_nothing(db: &TestDb) {
    registered(db).await;
    let s = &db.store;
    let before = db.dump().await;
    let mut stranger = statement("S1", 0, &[5], "2026-09-01");
    stranger.account_no = "9999".into();
    let err = s
        .ingest_file("ICBC-PY", "f1", "camt053", 1, &[stranger])
        .await
        .unwrap_err();
    assert_eq!(err.code(), "unknown_bank_account");
    let mut hkd = statement("S1", 0, &[5], "2026-09-01");
    hkd.currency = Currency::Hkd;
    let err = s
        .ingest_file("ICBC-PY", "f1", "camt053", 1, &[hkd])
        .await
        .unwrap_err();
    assert_eq!(err.code(), "currency_mismatch");
    let err = s
        .ingest_file(
            "NO-BANK",
            "f1",
            "camt053",
            1,
            &[statement("S1", 0, &[5], "2026-09-01")],
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), "unknown_bank");
    assert_eq!(db.dump().await, before);
}

async fn a_statement_that_does_not_continue_the_last_one_is_reported(db: &TestDb) {
    registered(db).await;
    let s = &db.store;
    s.ingest_file(
        "ICBC-PY",
        "f1",
        "camt053",
        1,
        &[statement("S1", 0, &[500], "2026-09-01")],
    )
    .await
    .unwrap();
    let ok = s
        .ingest_file(
            "ICBC-PY",
            "f2",
            "camt053",
            1,
            &[statement("S2", 500, &[1], "2026-09-02")],
        )
        .await
        .unwrap();
    assert!(ok.warnings.is_empty(), "{:?}", ok.warnings);
    // S3 opens at 900, but S2 closed at 501: a statement is missing.
    let gap = s
        .ingest_file(
            "ICBC-PY",
            "f3",
            "camt053",
            1,
            &[statement("S3", 900, &[1], "2026-09-04")],
        )
        .await
        .unwrap();
    assert_eq!(gap.statements_stored, 1, "stored, and the gap said");
    assert_eq!(gap.warnings.len(), 1);
    assert!(gap.warnings[0].contains("missing"), "{:?}", gap.warnings);
}

async fn an_account_number_belongs_to_one_institution(db: &TestDb) {
    registered(db).await;
    let s = &db.store;
    s.create_institution(&institution("I2")).await.unwrap();
    let mut other = BankAccount {
        institution: iid("I2"),
        bank: "ICBC-PY".into(),
        account_no: "6222-0001".into(),
        kind: AccountKind::Escrow,
        currency: Currency::Cny,
    };
    assert_eq!(
        s.register_bank_account(&other).await.unwrap_err().code(),
        "bank_account_taken"
    );
    other.account_no = "6222-0002".into();
    other.bank = "NOPE".into();
    assert_eq!(
        s.register_bank_account(&other).await.unwrap_err().code(),
        "unknown_bank"
    );
    other.bank = "ICBC-PY".into();
    s.register_bank_account(&other).await.unwrap();
    s.register_bank_account(&other).await.unwrap();
    other.kind = AccountKind::Deposit;
    assert_eq!(
        s.register_bank_account(&other).await.unwrap_err().code(),
        "exists_with_different_fields"
    );
}

async fn an_intraday_report_and_the_end_of_day_statement_are_both_kept_apart(db: &TestDb) {
    registered(db).await;
    let s = &db.store;
    s.ingest_file(
        "ICBC-PY",
        "f0",
        "camt053",
        1,
        &[statement("S0", 0, &[100], "2026-08-31")],
    )
    .await
    .unwrap();
    // 10:00 an intraday report with the first payment, provisional.
    let mut intraday = statement("RPT-0901-1", 100, &[480_000], "2026-09-01");
    intraday.format = "camt052".into();
    intraday.provisional = true;
    intraday.opening = None;
    intraday.closing = None;
    let r = s
        .ingest_file("ICBC-PY", "f1", "camt052", 1, &[intraday.clone()])
        .await
        .unwrap();
    assert_eq!(r.statements_stored, 1);
    // The same report delivered again in another file is held once.
    let r = s
        .ingest_file("ICBC-PY", "f1-again", "camt052", 1, &[intraday])
        .await
        .unwrap();
    assert_eq!((r.statements_stored, r.statements_already_held), (0, 1));
    // End of day: the statement confirms it and continues the chain from
    // S0; the provisional report does not count as a link of the chain.
    let eod = s
        .ingest_file(
            "ICBC-PY",
            "f2",
            "camt053",
            1,
            &[statement("S1", 100, &[480_000, -2_000], "2026-09-01")],
        )
        .await
        .unwrap();
    assert_eq!(eod.statements_stored, 1);
    assert!(eod.warnings.is_empty(), "{:?}", eod.warnings);
    assert_eq!(s.bank_line_count(&iid("I1")).await.unwrap(), 1 + 1 + 2);
    // An end of day that says exactly what a report said (the same
    // content) is not the report held again: it is what confirms it.
    let mut report = statement("RPT-0902-1", 478_100, &[700], "2026-09-02");
    report.format = "camt052".into();
    report.provisional = true;
    let mut confirming = report.clone();
    confirming.format = "camt053".into();
    confirming.provisional = false;
    confirming.statement_id = "S2".into();
    s.ingest_file("ICBC-PY", "f3", "camt052", 1, &[report])
        .await
        .unwrap();
    let r = s
        .ingest_file("ICBC-PY", "f4", "camt053", 1, &[confirming])
        .await
        .unwrap();
    assert_eq!((r.statements_stored, r.statements_already_held), (1, 0));
}
