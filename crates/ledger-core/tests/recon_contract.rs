//! Reconciliation claims in the store, the same bodies on PostgreSQL and
//! SQLite: a bank line and an entry are matched at most once, enforced by
//! the database, and a re-run keeps what it kept.

mod support {
    pub mod county;
    pub mod db;
}

use chrono::NaiveDate;
use ledger_core::domain::feeds::{AccountKind, BankAccount, FeedLine, FeedStatement};
use ledger_core::store::MatchRecord;
use ledger_core::Currency;
use support::county::*;
use support::db::TestDb;

contract!(
    a_match_is_kept_once_and_claims_its_line_and_entry,
    a_second_match_cannot_claim_what_another_holds,
    officers_confirm_or_reject_suggestions_once_and_the_decision_is_kept,
);

async fn with_a_statement(db: &TestDb) -> String {
    let s = &db.store;
    seeded(s).await;
    s.execute(req("I1", "pay-1", pay("E1", 10_000)))
        .await
        .unwrap();
    s.register_bank("B", "Bank").await.unwrap();
    s.register_bank_account(&BankAccount {
        institution: iid("I1"),
        bank: "B".into(),
        account_no: "A1".into(),
        kind: AccountKind::Escrow,
        currency: Currency::Cny,
    })
    .await
    .unwrap();
    let date: NaiveDate = day("2026-09-01");
    let line = |amount_minor| FeedLine {
        amount_minor,
        booking_date: Some(date),
        value_date: Some(date),
        status: ledger_core::domain::feeds::LineStatus::Booked,
        bank_ref: None,
        end_to_end_id: None,
        remittance: Some("pay-1".into()),
        counterparty_name: None,
        counterparty_account: None,
        bank_tx_code: None,
        reversal: false,
        return_reason: None,
        details: "{}".into(),
        source_line: None,
        source_path: None,
    };
    let st = FeedStatement {
        bank: "B".into(),
        account_no: "A1".into(),
        format: "mt940".into(),
        statement_id: "S1".into(),
        sequence: None,
        currency: Currency::Cny,
        provisional: false,
        opening: Some((0, date)),
        closing: Some((20_000, date)),
        lines: vec![line(10_000), line(10_000)],
        file_sha256: "f".into(),
        message: 0,
    };
    s.ingest_file("B", "f", "mt940", 1, std::slice::from_ref(&st))
        .await
        .unwrap();
    st.key()
}

fn record(id: &str, key: &str, line: i64, entries: Vec<i64>) -> MatchRecord {
    MatchRecord {
        match_id: id.into(),
        bank: "B".into(),
        account_no: "A1".into(),
        pass: "reference".into(),
        automatic: true,
        explanation: "test".into(),
        lines: vec![(key.to_string(), line)],
        entries,
    }
}

async fn a_match_is_kept_once_and_claims_its_line_and_entry(db: &TestDb) {
    let key = with_a_statement(db).await;
    let s = &db.store;
    let m = record("B/A1/S1#0", &key, 0, vec![1]);
    let r = s
        .record_matches(&iid("I1"), std::slice::from_ref(&m))
        .await
        .unwrap();
    assert_eq!((r.stored, r.already_held), (1, 0));
    let r = s.record_matches(&iid("I1"), &[m]).await.unwrap();
    assert_eq!((r.stored, r.already_held), (0, 1));
    let (lines, entries) = s.claimed(&iid("I1"), "B", "A1").await.unwrap();
    assert!(lines.contains(&(key.clone(), 0)) && !lines.contains(&(key, 1)));
    assert!(entries.contains(&1));
}

async fn a_second_match_cannot_claim_what_another_holds(db: &TestDb) {
    let key = with_a_statement(db).await;
    let s = &db.store;
    s.record_matches(&iid("I1"), &[record("B/A1/S1#0", &key, 0, vec![1])])
        .await
        .unwrap();
    let before = db.dump().await;
    // The other line of the same amount, but the same entry: refused whole.
    let err = s
        .record_matches(&iid("I1"), &[record("B/A1/S1#1", &key, 1, vec![1])])
        .await
        .unwrap_err();
    assert_eq!(err.code(), "already_claimed");
    assert!(err.to_string().contains("entry 1"), "{err}");
    // The same line again under another match id: refused too.
    let err = s
        .record_matches(&iid("I1"), &[record("B/A1/S1#0-again", &key, 0, vec![])])
        .await
        .unwrap_err();
    assert_eq!(err.code(), "already_claimed");
    assert_eq!(db.dump().await, before);
}

async fn officers_confirm_or_reject_suggestions_once_and_the_decision_is_kept(db: &TestDb) {
    let key = with_a_statement(db).await;
    let s = &db.store;
    let mut first = record("B/A1/S1#0", &key, 0, vec![1]);
    first.automatic = false;
    let mut second = record("B/A1/S1#1", &key, 1, vec![1]);
    second.automatic = false;
    s.record_matches(&iid("I1"), &[first, second])
        .await
        .unwrap();
    assert_eq!(s.suggestions(&iid("I1")).await.unwrap().len(), 2);
    assert!(
        s.claimed(&iid("I1"), "B", "A1").await.unwrap().1.is_empty(),
        "suggestions claim nothing"
    );

    s.decide_suggestion(
        &iid("I1"),
        "B/A1/S1#0",
        true,
        "officer-wang",
        Some("same order"),
    )
    .await
    .unwrap();
    assert!(s
        .claimed(&iid("I1"), "B", "A1")
        .await
        .unwrap()
        .1
        .contains(&1));
    let before = db.dump().await;
    // The other suggestion wants the same entry: confirming it is refused.
    let err = s
        .decide_suggestion(&iid("I1"), "B/A1/S1#1", true, "officer-li", None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "already_claimed");
    let err = s
        .decide_suggestion(&iid("I1"), "B/A1/S1#0", false, "officer-li", None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "suggestion_decided");
    let err = s
        .decide_suggestion(&iid("I1"), "nope", true, "officer-li", None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "unknown_suggestion");
    let err = s
        .decide_suggestion(&iid("I1"), "B/A1/S1#1", false, "", None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "invalid_field");
    assert_eq!(db.dump().await, before);
    s.decide_suggestion(
        &iid("I1"),
        "B/A1/S1#1",
        false,
        "officer-li",
        Some("not ours"),
    )
    .await
    .unwrap();
    assert!(s.suggestions(&iid("I1")).await.unwrap().is_empty());
}
