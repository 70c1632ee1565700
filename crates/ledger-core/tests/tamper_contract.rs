//! Tamper evidence, the same bodies on PostgreSQL and SQLite: each tampering
//! issue 12 lists, done as a database superuser would (PostgreSQL with
//! `session_replication_role = replica`, SQLite with its triggers dropped),
//! is named by `verify`, or where the rows left are consistent, by `verify`
//! against the heads of a checkpoint taken before; and untouched books that
//! grew since the checkpoint extend it.

mod support {
    pub mod county;
    pub mod db;
}

use chrono::NaiveDate;
use ledger_core::domain::chain::{entry_hash, GENESIS_HASH};
use ledger_core::domain::checkpoint::Heads;
use ledger_core::domain::feeds::{AccountKind, BankAccount, FeedLine, FeedStatement};
use ledger_core::domain::refunds::{Payee, Refund, RefundState};
use ledger_core::store::{AuditRecord, VerifyReport};
use ledger_core::{Currency, Store};
use sqlx::{Connection, Executor};
use support::county::*;
use support::db::{Backend, TestDb};

contract!(
    untouched_books_that_grew_since_the_checkpoint_extend_it,
    emptying_the_entries_with_their_heads_and_totals_is_named_by_the_checkpoint,
    deleting_the_last_entries_with_their_totals_and_head_is_named_by_the_checkpoint,
    a_removed_institution_is_named_by_the_checkpoint,
    edited_enrollment_counters_are_named,
    edited_account_totals_and_stray_postings_are_named,
    a_bank_line_amount_edited_with_triggers_off_is_named,
    a_refund_payee_changed_to_another_account_is_named,
    a_deleted_audit_log_is_named_and_with_its_links_by_the_checkpoint,
    a_history_rewritten_with_consistent_hashes_is_named_by_the_checkpoint,
    records_written_before_the_chains_are_linked_once_at_migration,
    entries_and_records_written_while_verify_runs_are_never_taken_for_tampering,
    lesson_records_their_answers_and_freezes_edited_are_named,
    approval_requests_and_their_decisions_edited_are_named,
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

fn statement(id: &str, opening: i64, amounts: &[i64]) -> FeedStatement {
    let date: NaiveDate = day("2026-09-01");
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

fn audit(n: u32) -> AuditRecord {
    AuditRecord {
        request_id: format!("req-{n}"),
        token_id: Some("tok-1".into()),
        role: Some("officer".into()),
        method: "POST".into(),
        path: "/v1/institutions/I1/refunds".into(),
        status: 201,
        outcome: "ok".into(),
    }
}

/// Two institutions with entries, a bank statement, a payee, a refund with
/// a move, and an audit log; returns the heads `attest` would sign.
async fn books(db: &TestDb) -> Heads {
    let s = &db.store;
    seeded(s).await;
    s.create_institution(&institution("I2")).await.unwrap();
    s.create_enrollment(&enrollment("I2", "E9", 200_000))
        .await
        .unwrap();
    s.execute(req("I1", "p1", pay("E1", 400_000)))
        .await
        .unwrap();
    s.execute(req("I1", "p2", pay("E2", 100_000)))
        .await
        .unwrap();
    s.execute(req("I1", "l1", consume("E1", 10))).await.unwrap();
    s.execute(req("I1", "p3", pay("E2", 50_000))).await.unwrap();
    s.execute(req("I2", "q1", pay("E9", 200_000)))
        .await
        .unwrap();
    s.register_bank("ICBC-PY", "ICBC Puyang").await.unwrap();
    s.register_bank_account(&BankAccount {
        institution: iid("I1"),
        bank: "ICBC-PY".into(),
        account_no: "6222-0001".into(),
        kind: AccountKind::Escrow,
        currency: Currency::Cny,
    })
    .await
    .unwrap();
    s.ingest_file(
        "ICBC-PY",
        "f1",
        "camt053",
        100,
        &[statement("S1", 0, &[400_000, 100_000])],
    )
    .await
    .unwrap();
    let payee = Payee {
        name: "青峰音乐".into(),
        account: "6222-9999".into(),
        bank: "ICBKCNBJ".into(),
    };
    s.set_payee(&iid("I1"), &payee, "officer-1").await.unwrap();
    s.create_refund(&Refund {
        institution: iid("I1"),
        id: ledger_core::RefundId::parse("RF1").unwrap(),
        enrollment: eid("E2"),
        amount_minor: Some(20_000),
        payee: Payee {
            name: "李四".into(),
            account: "6217-0000-1111".into(),
            bank: "ICBKCNBJ".into(),
        },
        reason: Some("moving away".into()),
        requested_by: "parent".into(),
        requested_on: day("2026-09-02"),
        answer_by: day("2026-09-09"),
        state: RefundState::Requested,
        pay_by: None,
        instruction_id: None,
    })
    .await
    .unwrap();
    s.move_refund(
        &iid("I1"),
        "RF1",
        RefundState::Requested,
        RefundState::Approved,
        "officer-1",
        None,
        None,
        None,
    )
    .await
    .unwrap();
    for n in 1..=3 {
        s.append_audit(&audit(n)).await.unwrap();
    }
    let report = s.verify().await.unwrap();
    assert!(report.ok(), "{report:?}");
    report.heads
}

/// Runs SQL as a superuser who switched the guards off: on PostgreSQL with
/// triggers (and foreign keys) disabled for the session, on SQLite with
/// every trigger dropped and foreign keys off.
async fn as_superuser(db: &TestDb, sql: &str) {
    match db.backend {
        Backend::Postgres | Backend::PostgresPerInstitution => {
            let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
            conn.execute(format!("set session_replication_role = replica; {sql}").as_str())
                .await
                .unwrap();
            conn.close().await.unwrap();
        }
        Backend::Sqlite => {
            let Store::Sqlite(lite) = &db.store else {
                unreachable!()
            };
            let triggers: Vec<String> =
                sqlx::query_scalar("select name from sqlite_master where type = 'trigger'")
                    .fetch_all(lite.pool())
                    .await
                    .unwrap();
            for t in triggers {
                db.raw(&format!("drop trigger {t}")).await;
            }
            lite.pool()
                .execute(
                    format!("pragma foreign_keys = off; {sql}; pragma foreign_keys = on;").as_str(),
                )
                .await
                .unwrap();
        }
    }
}

/// Runs SQL with the guards on; the error text when refused.
async fn refused(db: &TestDb, sql: &str) -> Option<String> {
    let result = match &db.store {
        Store::Postgres(p) => p.pool().execute(sql).await.map(|_| ()),
        Store::Sqlite(q) => q.pool().execute(sql).await.map(|_| ()),
    };
    result.err().map(|e| e.to_string())
}

#[track_caller]
fn named(report: &VerifyReport, chain: &str, checkpoint: bool, needle: &str) {
    assert!(
        report
            .failures
            .iter()
            .any(|f| f.chain == chain && f.checkpoint == checkpoint && f.reason.contains(needle)),
        "no {chain} failure (checkpoint: {checkpoint}) saying {needle:?} in {:#?}",
        report.failures
    );
}

async fn verify_against(db: &TestDb, heads: &Heads) -> VerifyReport {
    db.store.verify_against(Some(heads)).await.unwrap()
}

/// Puts accounts, heads and counters back in line with the entries left,
/// as a careful superuser would (so that only a checkpoint can tell).
const MAKE_CONSISTENT: &str = "
    update accounts set
      posted_debits_minor = coalesce((select p.posted_debits_after_minor from postings p where p.institution_id = accounts.institution_id and p.account_code = accounts.account_code order by p.seq desc, p.leg desc limit 1), 0),
      posted_credits_minor = coalesce((select p.posted_credits_after_minor from postings p where p.institution_id = accounts.institution_id and p.account_code = accounts.account_code order by p.seq desc, p.leg desc limit 1), 0),
      pending_debits_minor = coalesce((select p.pending_debits_after_minor from postings p where p.institution_id = accounts.institution_id and p.account_code = accounts.account_code order by p.seq desc, p.leg desc limit 1), 0),
      pending_credits_minor = coalesce((select p.pending_credits_after_minor from postings p where p.institution_id = accounts.institution_id and p.account_code = accounts.account_code order by p.seq desc, p.leg desc limit 1), 0);
    update chain_heads set
      last_seq = coalesce((select max(e.seq) from entries e where e.institution_id = chain_heads.institution_id), 0),
      last_hash = coalesce((select e.hash from entries e where e.institution_id = chain_heads.institution_id order by e.seq desc limit 1), '0000000000000000000000000000000000000000000000000000000000000000');
    update enrollments set
      hours_consumed = coalesce((select sum(e.hours) from entries e where e.institution_id = enrollments.institution_id and e.enrollment_id = enrollments.enrollment_id and e.kind = 'lessons_consumed'), 0),
      paid_minor = coalesce((select sum(p.amount_minor) from entries e join postings p on p.institution_id = e.institution_id and p.seq = e.seq and p.side = 'D' where e.institution_id = enrollments.institution_id and e.enrollment_id = enrollments.enrollment_id and e.kind = 'tuition_paid'), 0);
";

async fn untouched_books_that_grew_since_the_checkpoint_extend_it(db: &TestDb) {
    let heads = books(db).await;
    let s = &db.store;
    s.execute(req("I1", "p4", pay("E2", 1))).await.unwrap();
    s.execute(req("I2", "q2", consume("E9", 1))).await.unwrap();
    s.ingest_file(
        "ICBC-PY",
        "f2",
        "camt053",
        100,
        &[statement("S2", 500_000, &[-1_000])],
    )
    .await
    .unwrap();
    s.move_refund(
        &iid("I1"),
        "RF1",
        RefundState::Approved,
        RefundState::Instructed,
        "jobs",
        None,
        Some(day("2026-09-20")),
        Some("refund-R1"),
    )
    .await
    .unwrap();
    // The audit log's seqs may skip (a rolled-back request burns one),
    // here past a page of the walk.
    match db.backend {
        Backend::Postgres | Backend::PostgresPerInstitution => {
            db.raw("select setval(pg_get_serial_sequence('audit_log', 'seq'), 25000)")
                .await
        }
        Backend::Sqlite => {
            db.raw("update sqlite_sequence set seq = 25000 where name = 'audit_log'")
                .await
        }
    }
    s.append_audit(&audit(4)).await.unwrap();
    // An institution that came after the checkpoint is simply new.
    s.create_institution(&institution("I3")).await.unwrap();
    let report = verify_against(db, &heads).await;
    assert!(report.ok(), "{:#?}", report.failures);
    assert_eq!(report.audit_entries, 4);
    // The checkpoint of an empty database is extended by anything.
    assert!(verify_against(db, &Heads::default()).await.ok());
}

async fn emptying_the_entries_with_their_heads_and_totals_is_named_by_the_checkpoint(db: &TestDb) {
    let heads = books(db).await;
    if db.backend == Backend::Postgres {
        // A plain TRUNCATE is refused, cascaded or not.
        for sql in ["truncate entries cascade", "truncate postings"] {
            let error = refused(db, sql).await.expect("TRUNCATE is refused");
            assert!(error.contains("TRUNCATE refused"), "{error}");
        }
        as_superuser(db, "truncate entries cascade").await;
    } else {
        as_superuser(db, "delete from postings; delete from entries;").await;
    }
    as_superuser(db, MAKE_CONSISTENT).await;
    let plain = db.store.verify().await.unwrap();
    assert!(plain.ok(), "{:#?}", plain.failures);
    let report = verify_against(db, &heads).await;
    named(
        &report,
        "entries",
        true,
        "the checkpoint has sequence 4 hash",
    );
    named(&report, "entries", true, "the database ends at 0");
    assert!(report
        .failures
        .iter()
        .any(|f| f.institution.as_deref() == Some("I2")));
}

async fn deleting_the_last_entries_with_their_totals_and_head_is_named_by_the_checkpoint(
    db: &TestDb,
) {
    let heads = books(db).await;
    let error = refused(
        db,
        "delete from entries where institution_id = 'I1' and seq >= 3",
    )
    .await
    .expect("DELETE is refused");
    assert!(error.contains("append-only"), "{error}");
    as_superuser(
        db,
        "delete from postings where institution_id = 'I1' and seq >= 3; \
         delete from entries where institution_id = 'I1' and seq >= 3;",
    )
    .await;
    // Left alone, the totals, the head and the counters give it away.
    let plain = db.store.verify().await.unwrap();
    assert!(!plain.ok());
    as_superuser(db, MAKE_CONSISTENT).await;
    let plain = db.store.verify().await.unwrap();
    assert!(plain.ok(), "{:#?}", plain.failures);
    let report = verify_against(db, &heads).await;
    assert_eq!(report.failures.len(), 1, "{:#?}", report.failures);
    let f = &report.failures[0];
    assert_eq!(f.institution.as_deref(), Some("I1"));
    named(
        &report,
        "entries",
        true,
        "the checkpoint has sequence 4 hash",
    );
    named(&report, "entries", true, "the database ends at 2");
}

async fn a_removed_institution_is_named_by_the_checkpoint(db: &TestDb) {
    let heads = books(db).await;
    let error = refused(db, "delete from institutions where institution_id = 'I2'")
        .await
        .expect("an institution is never deleted");
    assert!(error.contains("DELETE refused"), "{error}");
    as_superuser(
        db,
        "delete from postings where institution_id = 'I2'; \
         delete from entries where institution_id = 'I2'; \
         delete from accounts where institution_id = 'I2'; \
         delete from enrollments where institution_id = 'I2'; \
         delete from chain_heads where institution_id = 'I2'; \
         delete from record_heads where institution_id = 'I2'; \
         delete from institutions where institution_id = 'I2';",
    )
    .await;
    let plain = db.store.verify().await.unwrap();
    assert!(plain.ok(), "{:#?}", plain.failures);
    let report = verify_against(db, &heads).await;
    assert_eq!(report.failures.len(), 1, "{:#?}", report.failures);
    named(
        &report,
        "institutions",
        true,
        "institution I2 is in the checkpoint (entries to 1, records to 1) but missing from the database",
    );
}

async fn edited_enrollment_counters_are_named(db: &TestDb) {
    let heads = books(db).await;
    // Counters are updated in place by design, so no trigger stands guard:
    // verify recomputes them from the entries.
    db.raw("update enrollments set hours_consumed = 2 where institution_id = 'I1' and enrollment_id = 'E1'")
        .await;
    db.raw("update enrollments set paid_minor = 1 where institution_id = 'I1' and enrollment_id = 'E2'")
        .await;
    let report = db.store.verify().await.unwrap();
    named(
        &report,
        "enrollments",
        false,
        "enrollment E1 says 2 hours consumed and 400000 paid (minor units), its entries imply 10 hours and 400000",
    );
    named(
        &report,
        "enrollments",
        false,
        "enrollment E2 says 0 hours consumed and 1 paid",
    );
    // The contract itself is fixed.
    let error = refused(
        db,
        "update enrollments set price_minor = 1 where enrollment_id = 'E1'",
    )
    .await
    .expect("an enrollment's terms are fixed");
    assert!(error.contains("keeps the terms"), "{error}");
    // A superuser who changes it anyway is named by the record chain.
    as_superuser(
        db,
        "update enrollments set price_minor = 500000 where enrollment_id = 'E1'",
    )
    .await;
    named(
        &db.store.verify().await.unwrap(),
        "records",
        false,
        "enrollment E1 no longer matches the digest linked at record 1: its contract (hours, price, dates) was changed",
    );
    assert!(!verify_against(db, &heads).await.ok());
}

async fn edited_account_totals_and_stray_postings_are_named(db: &TestDb) {
    books(db).await;
    db.raw("update accounts set posted_debits_minor = 1 where institution_id = 'I1' and account_code = 'escrow_cash'")
        .await;
    let report = db.store.verify().await.unwrap();
    assert_eq!(report.failures.len(), 1, "{:#?}", report.failures);
    named(&report, "entries", false, "account escrow_cash totals are");
    named(&report, "entries", false, "its last posting left");
    as_superuser(
        db,
        "update accounts set posted_debits_minor = 550000 where institution_id = 'I1' and account_code = 'escrow_cash'; \
         delete from entries where institution_id = 'I2';",
    )
    .await;
    named(
        &db.store.verify().await.unwrap(),
        "entries",
        false,
        "chain head says seq 1, the entries end at 0",
    );
    as_superuser(db, "update chain_heads set last_seq = 0, last_hash = '0000000000000000000000000000000000000000000000000000000000000000' where institution_id = 'I2'")
        .await;
    named(
        &db.store.verify().await.unwrap(),
        "entries",
        false,
        "postings belong to no entry",
    );
}

async fn a_bank_line_amount_edited_with_triggers_off_is_named(db: &TestDb) {
    let heads = books(db).await;
    assert!(refused(db, "update bank_lines set amount_minor = 1")
        .await
        .is_some());
    as_superuser(
        db,
        "update bank_lines set amount_minor = 1 where statement_key = 'camt053:S1' and line_no = 1",
    )
    .await;
    let report = db.store.verify().await.unwrap();
    assert_eq!(report.failures.len(), 1, "{:#?}", report.failures);
    named(
        &report,
        "records",
        false,
        "bank statement ICBC-PY/6222-0001/camt053:S1: its 2 stored lines hash to",
    );
    named(
        &report,
        "records",
        false,
        "a line was edited, added or removed",
    );
    // Rewriting the statement's content hash to what the edited lines hash
    // to does not help: the record chain holds the digest of the original.
    let mut edited = statement("S1", 0, &[400_000, 100_000]);
    edited.lines[1].amount_minor = 1;
    as_superuser(
        db,
        &format!(
            "update bank_statements set content_hash = '{}'",
            edited.content_hash()
        ),
    )
    .await;
    named(
        &db.store.verify().await.unwrap(),
        "records",
        false,
        "no longer matches the digest linked at record 3: its row was edited",
    );
    assert!(!verify_against(db, &heads).await.ok());
}

async fn a_refund_payee_changed_to_another_account_is_named(db: &TestDb) {
    let heads = books(db).await;
    let error = refused(
        db,
        "update refunds set payee_account = '6217-6666' where refund_id = 'RF1'",
    )
    .await
    .expect("a refund's payee is fixed");
    assert!(error.contains("keeps the terms"), "{error}");
    as_superuser(
        db,
        "update refunds set payee_account = '6217-6666' where refund_id = 'RF1'",
    )
    .await;
    let report = db.store.verify().await.unwrap();
    assert_eq!(report.failures.len(), 1, "{:#?}", report.failures);
    named(
        &report,
        "records",
        false,
        "refund RF1 no longer matches the digest linked at record 5: its terms (payee, amount, enrollment) were changed",
    );
    // A payee version changed the same way is named too.
    as_superuser(db, "update institution_payees set account = '6217-6666'").await;
    named(
        &db.store.verify().await.unwrap(),
        "records",
        false,
        "payee version 1 no longer matches",
    );
    assert!(!verify_against(db, &heads).await.ok());
}

async fn a_deleted_audit_log_is_named_and_with_its_links_by_the_checkpoint(db: &TestDb) {
    let heads = books(db).await;
    assert!(refused(db, "delete from audit_log").await.is_some());
    as_superuser(db, "delete from audit_log where seq = 2").await;
    let report = db.store.verify().await.unwrap();
    assert_eq!(report.failures.len(), 1, "{:#?}", report.failures);
    named(
        &report,
        "audit",
        false,
        "audit log entry 2 is missing (its link remains)",
    );
    // Deleting the links and resetting the head too leaves a consistent,
    // empty audit log: only the checkpoint remembers it.
    as_superuser(
        db,
        "delete from audit_log; delete from audit_links; \
         update audit_head set last_seq = 0, last_hash = '0000000000000000000000000000000000000000000000000000000000000000';",
    )
    .await;
    assert!(db.store.verify().await.unwrap().ok());
    let report = verify_against(db, &heads).await;
    assert_eq!(report.failures.len(), 1, "{:#?}", report.failures);
    named(
        &report,
        "audit",
        true,
        "the checkpoint has audit log entry 3 hash",
    );
    named(&report, "audit", true, "the database ends at 0");
}

async fn a_history_rewritten_with_consistent_hashes_is_named_by_the_checkpoint(db: &TestDb) {
    let heads = books(db).await;
    // The superuser edits entry 2 and recomputes every hash after it, and
    // the head: every stored hash matches its row again.
    let mut entries = db.store.entries(&iid("I1"), 0, 100).await.unwrap();
    entries[1].external_ref = Some("rewritten".into());
    let mut prev = GENESIS_HASH.to_string();
    let mut sql = String::new();
    for e in &mut entries {
        e.prev_hash = prev.clone();
        e.hash = entry_hash(&prev, e);
        sql.push_str(&format!(
            "update entries set external_ref = {}, prev_hash = '{}', hash = '{}' \
             where institution_id = 'I1' and seq = {};",
            e.external_ref
                .as_deref()
                .map_or("null".to_string(), |r| format!("'{r}'")),
            e.prev_hash,
            e.hash,
            e.seq
        ));
        prev = e.hash.clone();
    }
    sql.push_str(&format!(
        "update chain_heads set last_hash = '{prev}' where institution_id = 'I1';"
    ));
    as_superuser(db, &sql).await;
    let plain = db.store.verify().await.unwrap();
    assert!(plain.ok(), "{:#?}", plain.failures);
    let report = verify_against(db, &heads).await;
    assert_eq!(report.failures.len(), 1, "{:#?}", report.failures);
    named(&report, "entries", true, "sequence 4 recomputes to");
    named(&report, "entries", true, "what it covers was rewritten");
}

async fn records_written_before_the_chains_are_linked_once_at_migration(db: &TestDb) {
    books(db).await;
    // As a database from before migration 0012 would be.
    as_superuser(
        db,
        "delete from record_links; delete from record_heads; delete from audit_links; \
         update audit_head set last_seq = 0, last_hash = '0000000000000000000000000000000000000000000000000000000000000000'; \
         delete from record_backfill;",
    )
    .await;
    let report = db.store.verify().await.unwrap();
    named(&report, "records", false, "refund RF1 has no record link");
    named(&report, "audit", false, "3 audit log entries have no link");
    db.store.migrate().await.unwrap();
    let report = db.store.verify().await.unwrap();
    assert!(report.ok(), "{:#?}", report.failures);
    assert_eq!((report.records, report.audit_entries), (8, 3));
    // Only once: a record added behind the application's back later stays
    // unlinked, and named.
    as_superuser(
        db,
        "insert into institution_payees (institution_id, version, name, account, bank, set_by, set_at) \
         select institution_id, 2, name, '6217-6666', bank, set_by, set_at from institution_payees where version = 1",
    )
    .await;
    db.store.migrate().await.unwrap();
    named(
        &db.store.verify().await.unwrap(),
        "records",
        false,
        "payee version 2 has no record link: it was written outside the application",
    );
}

async fn entries_and_records_written_while_verify_runs_are_never_taken_for_tampering(db: &TestDb) {
    books(db).await;
    let writer = db.store.clone();
    let writing = tokio::spawn(async move {
        for n in 0..40 {
            writer.append_audit(&audit(100 + n)).await.unwrap();
            let payee = Payee {
                name: format!("payee {n}"),
                account: format!("6222-{n:04}"),
                bank: "ICBKCNBJ".into(),
            };
            writer
                .set_payee(&iid("I1"), &payee, "officer-1")
                .await
                .unwrap();
            writer
                .execute(req(
                    "I1",
                    &format!("deposit-{n}"),
                    ledger_core::Command::PayInDeposit {
                        amount: ledger_core::Amount::from_minor(100).unwrap(),
                    },
                ))
                .await
                .unwrap();
        }
    });
    while !writing.is_finished() {
        let report = db.store.verify().await.unwrap();
        assert!(report.ok(), "{:#?}", report.failures);
    }
    writing.await.unwrap();
    let report = db.store.verify().await.unwrap();
    assert!(report.ok(), "{:#?}", report.failures);
    assert_eq!(report.audit_entries, 43);
}

#[tokio::test]
async fn every_append_only_table_refuses_truncate_on_postgres() {
    let db = TestDb::new(Backend::Postgres).await;
    for table in [
        "entries",
        "postings",
        "bank_statements",
        "bank_lines",
        "alert_events",
        "recon_decisions",
        "audit_log",
        "idempotent_answers",
        "refund_events",
        "institution_payees",
        "institution_events",
        "recon_days",
        "record_links",
        "audit_links",
        "institutions",
        "chain_heads",
        "enrollments",
        "accounts",
        "refunds",
        "record_heads",
        "audit_head",
        "approvals",
        "approval_decisions",
        "lessons",
        "lesson_events",
        "institution_freezes",
        "webhook_attempts",
    ] {
        let error = refused(&db, &format!("truncate {table} cascade"))
            .await
            .unwrap_or_else(|| panic!("{table} was truncated"));
        assert!(error.contains("TRUNCATE refused"), "{table}: {error}");
    }
    db.cleanup().await;
}

/// A lesson record of I1's E1, a family's answer to it and a freeze.
async fn lessons(db: &TestDb) {
    let s = &db.store;
    s.record_lesson(
        &ledger_core::store::NewLesson {
            institution: iid("I1"),
            enrollment: ledger_core::EnrollmentId::parse("E1").unwrap(),
            hours: 2,
            occurred_on: NaiveDate::from_ymd_opt(2026, 9, 18).unwrap(),
            recorded_by: "school".into(),
            answer_by: NaiveDate::from_ymd_opt(2026, 10, 9).unwrap(),
        },
        None,
    )
    .await
    .unwrap();
    assert!(s
        .append_lesson_event(
            &iid("I1"),
            "L1",
            0,
            ledger_core::domain::lessons::LessonState::Confirmed,
            "family",
            None,
            NaiveDate::from_ymd_opt(2026, 9, 19).unwrap(),
        )
        .await
        .unwrap());
    // A second answer to the same step is not written, nor linked.
    assert!(!s
        .append_lesson_event(
            &iid("I1"),
            "L1",
            0,
            ledger_core::domain::lessons::LessonState::Disputed,
            "family",
            Some("no lesson that day"),
            NaiveDate::from_ymd_opt(2026, 9, 19).unwrap(),
        )
        .await
        .unwrap());
    s.record_freeze(&iid("I1"), true, "rectification", "officer")
        .await
        .unwrap();
}

async fn lesson_records_their_answers_and_freezes_edited_are_named(db: &TestDb) {
    books(db).await;
    lessons(db).await;
    let report = db.store.verify().await.unwrap();
    assert!(report.ok(), "{:#?}", report.failures);
    // As a database from before migration 0026: every link gone, linked
    // again at the next migrate (both backfills), lessons included.
    as_superuser(
        db,
        "delete from record_links; delete from record_heads; delete from audit_links; \
         update audit_head set last_seq = 0, last_hash = '0000000000000000000000000000000000000000000000000000000000000000'; \
         delete from record_backfill; delete from record_backfill_lessons;",
    )
    .await;
    named(
        &db.store.verify().await.unwrap(),
        "records",
        false,
        "lesson record L1 has no record link",
    );
    db.store.migrate().await.unwrap();
    let report = db.store.verify().await.unwrap();
    assert!(report.ok(), "{:#?}", report.failures);
    // The family's confirmation turned into a dispute, behind the
    // application's back.
    as_superuser(
        db,
        "update lesson_events set state = 'disputed' where lesson_id = 'L1'",
    )
    .await;
    let report = db.store.verify().await.unwrap();
    assert_eq!(report.failures.len(), 1, "{:#?}", report.failures);
    named(
        &report,
        "records",
        false,
        "lesson record step L1#1 no longer matches the digest linked at record",
    );
    as_superuser(db, "update lessons set hours = 20 where lesson_id = 'L1'").await;
    named(
        &db.store.verify().await.unwrap(),
        "records",
        false,
        "lesson record L1 no longer matches",
    );
    as_superuser(db, "delete from institution_freezes").await;
    named(
        &db.store.verify().await.unwrap(),
        "records",
        false,
        "freeze 1 (record link",
    );
}

/// A release request of I1's, approved by a second officer; and a rule
/// pack's request (no institution's, so in no record chain).
async fn approvals(db: &TestDb) {
    use ledger_core::domain::approvals::{Approval, ApprovalKind, Claim, Decision};
    let s = &db.store;
    let asked = |id: &str, kind, institution: Option<&str>| Approval {
        id: id.into(),
        kind,
        jurisdiction: s_jurisdiction(),
        institution: institution.map(iid),
        subject: institution.unwrap_or("410922@7").into(),
        payload: r#"{"instruction_id":"REL-1","amount":"600.00"}"#.into(),
        summary: "release 600.00 CNY of I1 to its payee on file".into(),
        requested_by: "Li Wei (officer token t1)".into(),
        requested_token: "t1".into(),
        requested_name: "Li Wei".into(),
        requested_at: at(),
        claim: None,
        decision: None,
    };
    s.create_approval(&asked(
        "AP0000000000000000000A",
        ApprovalKind::Release,
        Some("I1"),
    ))
    .await
    .unwrap();
    s.create_approval(&asked(
        "AP0000000000000000000B",
        ApprovalKind::RulePack,
        None,
    ))
    .await
    .unwrap();
    let claim = Claim {
        approved: true,
        by: "Wang Fang (officer token t2)".into(),
        token: "t2".into(),
        at: at(),
    };
    let (_, lease) = s
        .claim_approval("AP0000000000000000000A", &claim, at())
        .await
        .unwrap();
    assert!(lease.is_some());
    let decided = s
        .decide_approval(
            "AP0000000000000000000A",
            &Decision {
                approved: true,
                by: claim.by.clone(),
                token: claim.token.clone(),
                reason: None,
                at: at(),
            },
        )
        .await
        .unwrap();
    assert_eq!(decided.state(), "approved");
}

fn s_jurisdiction() -> ledger_core::JurisdictionCode {
    institution("I1").jurisdiction
}

async fn approval_requests_and_their_decisions_edited_are_named(db: &TestDb) {
    books(db).await;
    approvals(db).await;
    let report = db.store.verify().await.unwrap();
    assert!(report.ok(), "{:#?}", report.failures);
    // As a database from before migration 0027: the approvals' links gone
    // (with every other), linked again at the next migrate.
    as_superuser(
        db,
        "delete from record_links; delete from record_heads; delete from audit_links; \
         update audit_head set last_seq = 0, last_hash = '0000000000000000000000000000000000000000000000000000000000000000'; \
         delete from record_backfill; delete from record_backfill_lessons; \
         delete from record_backfill_approvals;",
    )
    .await;
    let report = db.store.verify().await.unwrap();
    named(
        &report,
        "records",
        false,
        "approval request AP0000000000000000000A has no record link",
    );
    named(
        &report,
        "records",
        false,
        "approval decision AP0000000000000000000A has no record link",
    );
    db.store.migrate().await.unwrap();
    let report = db.store.verify().await.unwrap();
    assert!(report.ok(), "{:#?}", report.failures);
    // The decider changed behind the application's back.
    as_superuser(
        db,
        "update approval_decisions set decided_by = 'Li Wei (officer token t1)' \
         where approval_id = 'AP0000000000000000000A'",
    )
    .await;
    let report = db.store.verify().await.unwrap();
    assert_eq!(report.failures.len(), 1, "{:#?}", report.failures);
    named(
        &report,
        "records",
        false,
        "approval decision AP0000000000000000000A no longer matches the digest linked at record",
    );
    // And the amount asked for.
    as_superuser(
        db,
        "update approvals set payload = replace(payload, '600.00', '6000.00') \
         where approval_id = 'AP0000000000000000000A'",
    )
    .await;
    named(
        &db.store.verify().await.unwrap(),
        "records",
        false,
        "approval request AP0000000000000000000A no longer matches the digest linked at record",
    );
    // A decision removed is named by its link.
    as_superuser(db, "delete from approval_decisions").await;
    named(
        &db.store.verify().await.unwrap(),
        "records",
        false,
        "approval decision AP0000000000000000000A (record link",
    );
}
