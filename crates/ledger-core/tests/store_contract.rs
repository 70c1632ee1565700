//! The store contract: the same test bodies on PostgreSQL and on SQLite.

mod support {
    pub mod county;
    pub mod db;
}

use ledger_core::store::StoreError;
use ledger_core::{
    Cap, CapAction, Command, Currency, EntryKind, RefundSource, Request, RulePack, RuleParams,
};
use support::county::*;
use support::db::{Backend, TestDb};

contract!(
    payments_lessons_and_releases_move_money_through_the_books,
    lesson_consumption_releases_tuition_at_the_price_actually_paid,
    refunds_return_the_unconsumed_part_and_never_the_bonus_hours,
    pending_releases_count_against_the_floor_until_confirmed_or_voided,
    replays_return_the_original_and_conflicting_reuse_is_refused,
    every_rejection_names_its_rule_and_changes_nothing,
    a_batch_is_all_or_nothing,
    registration_is_idempotent_and_conflicts_are_refused,
    rule_packs_flag_or_reject_charges_and_entries_record_the_version,
    a_rule_pack_added_through_another_process_binds_the_next_charge,
    balances_at_past_instants_are_exact_and_never_invented,
    verify_passes_on_sound_books_and_names_a_tampered_entry,
    reversals_mirror_the_original_and_happen_once,
    unidentified_receipts_wait_in_suspense_until_attributed,
    entries_page_in_chain_order,
    enrollments_page_by_byte_order_of_their_ids,
    malformed_wire_requests_are_refused_before_the_books,
    keys_claimed_together_are_each_held_by_one_request,
    lessons_before_a_day_are_read_summed_as_the_domain_sums_them,
    kept_lesson_sums_read_as_the_sums_of_every_lesson_booked_late_or_not,
    a_read_in_progress_neither_holds_up_a_write_nor_sees_it,
    lesson_records_at_rest_are_read_summed_as_the_domain_splits_them,
    an_enrollments_hours_used_count_its_records_not_upheld_and_lessons_posted_directly,
    the_lessons_job_reads_the_records_waiting_for_an_answer_and_numbers_come_from_a_kept_count,
);

async fn payments_lessons_and_releases_move_money_through_the_books(db: &TestDb) {
    let s = &db.store;
    seeded(s).await;
    s.execute(req("I1", "pay-1", pay("E1", 400_000)))
        .await
        .unwrap();
    s.execute(req("I1", "pay-2", pay("E2", 100_000)))
        .await
        .unwrap();
    s.execute(req("I1", "les-1", consume("E1", 10)))
        .await
        .unwrap();
    let release = s
        .execute(req(
            "I1",
            "rel-1",
            Command::InstructRelease {
                amount: ledger_core::Amount::from_minor(100_000).unwrap(),
            },
        ))
        .await
        .unwrap();
    assert_eq!(release.kind, EntryKind::ReleaseInstructed);
    s.execute(req(
        "I1",
        "rel-1-ok",
        Command::ConfirmPending {
            pending: cid("rel-1"),
        },
    ))
    .await
    .unwrap();

    let b = s.balances(&iid("I1")).await.unwrap();
    assert_eq!(b.balance("escrow_cash"), 400_000);
    assert_eq!(b.balance("prepaid/E1"), 300_000);
    assert_eq!(b.balance("prepaid/E2"), 100_000);
    assert_eq!(b.balance("releasable"), 0);
    assert_eq!(b.owed_to_families_minor(), 400_000);
    assert_eq!(b.escrow_minor() + b.deposit_minor(), 400_000);
    assert_eq!(b.imbalance_minor(), 0);
    assert!(s.verify().await.unwrap().ok());
    // An entry looked up by its client id, in its institution only.
    assert!(s.has_entry(&iid("I1"), "rel-1").await.unwrap());
    assert!(!s.has_entry(&iid("I1"), "rel-2").await.unwrap());
    assert!(!s.has_entry(&iid("I2"), "rel-1").await.unwrap());
}

async fn lesson_consumption_releases_tuition_at_the_price_actually_paid(db: &TestDb) {
    let s = &db.store;
    seeded(s).await;
    // 1,000.00 for 3 paid hours: 333.33, 333.33, 333.34 (cumulative floor).
    let mut e = enrollment("I1", "E3", 100_000);
    e.hours_bought = 3;
    e.bonus_hours = 1;
    s.create_enrollment(&e).await.unwrap();
    s.execute(req("I1", "p", pay("E3", 100_000))).await.unwrap();
    let mut released = vec![];
    for h in 1..=4 {
        let entry = s
            .execute(req("I1", &format!("l{h}"), consume("E3", 1)))
            .await
            .unwrap();
        assert_eq!(entry.hours, Some(1));
        released.push(entry.postings.first().map_or(0, |p| p.amount.minor()));
    }
    assert_eq!(
        released,
        vec![33_333, 33_333, 33_334, 0],
        "the bonus hour earns nothing"
    );
    let err = s
        .execute(req("I1", "l5", consume("E3", 1)))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "enrollment_hours_exhausted");
    assert_eq!(
        s.balances(&iid("I1")).await.unwrap().balance("releasable"),
        100_000
    );
}

async fn refunds_return_the_unconsumed_part_and_never_the_bonus_hours(db: &TestDb) {
    let s = &db.store;
    seeded(s).await;
    s.execute(req("I1", "p", pay("E1", 400_000))).await.unwrap();
    s.execute(req("I1", "l", consume("E1", 30))).await.unwrap();
    // refund = paid − consumed × price per hour = 4,000 − 30 × 100 = 1,000
    let approved = s
        .execute(req(
            "I1",
            "r",
            Command::ApproveRefund {
                enrollment: eid("E1"),
                amount: None,
            },
        ))
        .await
        .unwrap();
    assert_eq!(approved.postings[0].amount.minor(), 100_000);
    s.execute(req(
        "I1",
        "r-pay",
        Command::InstructRefundPayment {
            amount: ledger_core::Amount::from_minor(100_000).unwrap(),
            source: RefundSource::Escrow,
        },
    ))
    .await
    .unwrap();
    s.execute(req(
        "I1",
        "r-paid",
        Command::ConfirmPending {
            pending: cid("r-pay"),
        },
    ))
    .await
    .unwrap();
    let b = s.balances(&iid("I1")).await.unwrap();
    assert_eq!(b.balance("prepaid/E1"), 0);
    assert_eq!(b.balance("refund_payable"), 0);
    assert_eq!(b.balance("escrow_cash"), 300_000);
    assert_eq!(b.balance("releasable"), 300_000);
    // The 4 bonus hours and the remaining 10 paid hours are gone as money.
    let err = s
        .execute(req(
            "I1",
            "r2",
            Command::ApproveRefund {
                enrollment: eid("E1"),
                amount: Some(ledger_core::Amount::from_minor(1).unwrap()),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "refund_exceeds_refundable");
}

async fn pending_releases_count_against_the_floor_until_confirmed_or_voided(db: &TestDb) {
    let s = &db.store;
    seeded(s).await;
    s.execute(req("I1", "p", pay("E1", 400_000))).await.unwrap();
    s.execute(req("I1", "l", consume("E1", 40))).await.unwrap();
    s.execute(req(
        "I1",
        "rel-a",
        Command::InstructRelease {
            amount: ledger_core::Amount::from_minor(300_000).unwrap(),
        },
    ))
    .await
    .unwrap();
    // Only 1,000.00 of releasable is not already promised.
    let err = s
        .execute(req(
            "I1",
            "rel-b",
            Command::InstructRelease {
                amount: ledger_core::Amount::from_minor(100_001).unwrap(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "would_overdraw");
    let b = s.balances(&iid("I1")).await.unwrap();
    assert_eq!(b.balance("escrow_cash"), 400_000, "pending is not posted");
    let escrow = b
        .accounts
        .iter()
        .find(|a| a.account == "escrow_cash")
        .unwrap();
    assert_eq!(escrow.available_minor, 100_000);

    s.execute(req(
        "I1",
        "rel-a-void",
        Command::VoidPending {
            pending: cid("rel-a"),
        },
    ))
    .await
    .unwrap();
    let err = s
        .execute(req(
            "I1",
            "rel-a-ok",
            Command::ConfirmPending {
                pending: cid("rel-a"),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "already_resolved");
    s.execute(req(
        "I1",
        "rel-c",
        Command::InstructRelease {
            amount: ledger_core::Amount::from_minor(400_000).unwrap(),
        },
    ))
    .await
    .unwrap();
    s.execute(req(
        "I1",
        "rel-c-ok",
        Command::ConfirmPending {
            pending: cid("rel-c"),
        },
    ))
    .await
    .unwrap();
    let b = s.balances(&iid("I1")).await.unwrap();
    assert_eq!(b.balance("escrow_cash"), 0);
    assert_eq!(b.balance("releasable"), 0);
    let err = s
        .execute(req(
            "I1",
            "x",
            Command::ConfirmPending { pending: cid("p") },
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "not_pending");
}

async fn replays_return_the_original_and_conflicting_reuse_is_refused(db: &TestDb) {
    let s = &db.store;
    seeded(s).await;
    let first = s
        .execute(req("I1", "pay-1", pay("E1", 100_000)))
        .await
        .unwrap();
    db.advance(60);
    let again = s
        .execute(req("I1", "pay-1", pay("E1", 100_000)))
        .await
        .unwrap();
    assert_eq!(
        first, again,
        "a replay returns the original entry, recorded time included"
    );
    let before = db.dump().await;
    let err = s
        .execute(req("I1", "pay-1", pay("E1", 100_001)))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "exists_with_different_fields");
    assert_eq!(db.dump().await, before);
    assert_eq!(
        s.balances(&iid("I1")).await.unwrap().balance("escrow_cash"),
        100_000
    );
}

async fn every_rejection_names_its_rule_and_changes_nothing(db: &TestDb) {
    let s = &db.store;
    seeded(s).await;
    s.create_institution(&{
        let mut i = institution("I-CLOSED");
        i.status = ledger_core::InstitutionStatus::Closed;
        i
    })
    .await
    .unwrap();
    s.execute(req("I1", "p", pay("E1", 100_000))).await.unwrap();
    s.execute(req(
        "I1",
        "rel",
        Command::InstructRelease {
            amount: ledger_core::Amount::from_minor(1).unwrap(),
        },
    ))
    .await
    .unwrap_err();
    let before = db.dump().await;

    let mut hkd = req("I1", "c1", pay("E1", 100));
    hkd.currency = Currency::Hkd;
    let cases: Vec<(&str, ledger_core::Request)> = vec![
        // A command's amount is an `Amount`, positive by its type: zero
        // and negative amounts are refused where text becomes one (see
        // `malformed_wire_requests_are_refused_before_the_books`).
        ("currency_mismatch", hkd),
        ("unknown_enrollment", req("I1", "c4", pay("NOPE", 100))),
        ("unknown_institution", req("I-NOPE", "c5", pay("E1", 100))),
        ("hours_must_be_positive", req("I1", "c6", consume("E1", 0))),
        (
            "enrollment_hours_exhausted",
            req("I1", "c7", consume("E1", 45)),
        ),
        ("would_overdraw", req("I1", "c8", consume("E2", 1))),
        (
            "would_overdraw",
            req(
                "I1",
                "c9",
                Command::InstructRelease {
                    amount: ledger_core::Amount::from_minor(1).unwrap(),
                },
            ),
        ),
        (
            "exists_with_different_fields",
            req("I1", "p", pay("E1", 99)),
        ),
        (
            "payment_exceeds_price",
            req("I1", "c10", pay("E1", 300_001)),
        ),
        (
            "refund_exceeds_refundable",
            req(
                "I1",
                "c11",
                Command::ApproveRefund {
                    enrollment: eid("E1"),
                    amount: Some(ledger_core::Amount::from_minor(100_001).unwrap()),
                },
            ),
        ),
        (
            "unknown_entry",
            req(
                "I1",
                "c12",
                Command::ConfirmPending {
                    pending: cid("nope"),
                },
            ),
        ),
        (
            "not_pending",
            req("I1", "c13", Command::VoidPending { pending: cid("p") }),
        ),
        (
            "cannot_reverse",
            req(
                "I1",
                "c14",
                Command::Reverse {
                    entry: cid("p-missing"),
                },
            ),
        ),
        (
            "institution_not_active",
            req("I-CLOSED", "c15", pay("E1", 1)),
        ),
    ];
    for (code, request) in cases {
        let client_id = request.client_id.to_string();
        let err = s.execute(request).await.unwrap_err();
        let expected = if client_id == "c14" {
            "unknown_entry"
        } else {
            code
        };
        assert_eq!(err.code(), expected, "request {client_id}: {err}");
        assert!(!err.to_string().is_empty());
        assert_eq!(
            db.dump().await,
            before,
            "request {client_id} changed the books"
        );
    }
}

async fn a_batch_is_all_or_nothing(db: &TestDb) {
    let s = &db.store;
    seeded(s).await;
    let before = db.dump().await;
    let err = s
        .execute_batch(vec![
            req("I1", "b1", pay("E1", 100_000)),
            req("I1", "b2", consume("E1", 10)),
            req("I1", "b3", consume("E2", 1)), // nothing paid for E2
        ])
        .await
        .unwrap_err();
    assert_eq!(err.code(), "would_overdraw");
    assert!(
        matches!(err, StoreError::Rejected { index: Some(2), .. }),
        "{err}"
    );
    assert_eq!(db.dump().await, before);

    let entries = s
        .execute_batch(vec![
            req("I1", "b1", pay("E1", 100_000)),
            req("I1", "b2", consume("E1", 10)),
            req("I1", "b1", pay("E1", 100_000)), // a replay inside the batch
        ])
        .await
        .unwrap();
    assert_eq!(entries.len(), 3);
    assert_eq!(entries[0], entries[2]);
    assert_eq!(entries[1].seq, 2);
    assert_eq!(
        s.balances(&iid("I1")).await.unwrap().balance("releasable"),
        100_000
    );
}

async fn registration_is_idempotent_and_conflicts_are_refused(db: &TestDb) {
    let s = &db.store;
    seeded(s).await;
    s.create_institution(&institution("I1")).await.unwrap();
    s.create_enrollment(&enrollment("I1", "E1", 400_000))
        .await
        .unwrap();
    let before = db.dump().await;
    let mut renamed = institution("I1");
    renamed.name = "Another".into();
    assert_eq!(
        s.create_institution(&renamed).await.unwrap_err().code(),
        "exists_with_different_fields"
    );
    assert_eq!(
        s.create_enrollment(&enrollment("I1", "E1", 400_001))
            .await
            .unwrap_err()
            .code(),
        "exists_with_different_fields"
    );
    assert_eq!(
        s.create_enrollment(&enrollment("I-NOPE", "E1", 1))
            .await
            .unwrap_err()
            .code(),
        "unknown_institution"
    );
    let mut lost = institution("I9");
    lost.jurisdiction = jc("999999");
    assert_eq!(
        s.create_institution(&lost).await.unwrap_err().code(),
        "unknown_jurisdiction"
    );
    let mut hkd = enrollment("I1", "E9", 1);
    hkd.currency = Currency::Hkd;
    assert_eq!(
        s.create_enrollment(&hkd).await.unwrap_err().code(),
        "currency_mismatch"
    );
    let mut empty = enrollment("I1", "E9", 1);
    empty.hours_bought = 0;
    assert_eq!(
        s.create_enrollment(&empty).await.unwrap_err().code(),
        "invalid_enrollment"
    );
    assert_eq!(db.dump().await, before);
}

/// The county's pack `version`: a 5,000.00 cap per charge from
/// 2026-08-01, acted on by `action`.
fn county_charge_cap(version: u32, action: CapAction) -> RulePack {
    RulePack {
        jurisdiction: jc(COUNTY),
        version,
        effective_from: day("2026-08-01"),
        params: RuleParams {
            max_amount_per_charge_minor: Some(Cap {
                limit: 500_000,
                action,
            }),
            ..Default::default()
        },
    }
}

async fn rule_packs_flag_or_reject_charges_and_entries_record_the_version(db: &TestDb) {
    let s = &db.store;
    seeded(s).await;
    // Nationally the 5,000 cap binds only non-subject training: 6,000 is refused.
    s.create_enrollment(&enrollment("I1", "BIG", 600_000))
        .await
        .unwrap();
    let err = s
        .execute(req("I1", "big-1", pay("BIG", 100)))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "charge_exceeds_cap");
    assert!(err.to_string().contains("national@builtin"), "{err}");

    // The county relaxes it to a flag from 2026-08-01.
    s.put_rule_pack(&county_charge_cap(1, CapAction::Flag))
        .await
        .unwrap();
    let entry = s
        .execute(req("I1", "big-2", pay("BIG", 100)))
        .await
        .unwrap();
    assert_eq!(entry.flags, vec!["max_amount_per_charge"]);
    assert_eq!(
        entry.rule_pack.as_deref(),
        Some("national@builtin>410922@1")
    );

    // A rule pack version is never rewritten.
    let err = s
        .put_rule_pack(&RulePack {
            jurisdiction: jc(COUNTY),
            version: 1,
            effective_from: day("2026-09-01"),
            params: RuleParams::default(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), "exists_with_different_fields");
}

/// Batches keep the rule packs they read; a pack added by another
/// service process on the same database must bind this process's very
/// next charge all the same.
async fn a_rule_pack_added_through_another_process_binds_the_next_charge(db: &TestDb) {
    let s = &db.store;
    seeded(s).await;
    s.create_enrollment(&enrollment("I1", "BIG", 600_000))
        .await
        .unwrap();
    // This batch reads the national rules (and keeps them).
    let err = s
        .execute(req("I1", "big-1", pay("BIG", 100)))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "charge_exceeds_cap");
    let other = ledger_core::Store::connect_with(&db.url, db.clock.clone())
        .await
        .unwrap();
    other
        .put_rule_pack(&county_charge_cap(1, CapAction::Flag))
        .await
        .unwrap();
    let entry = s
        .execute(req("I1", "big-2", pay("BIG", 100)))
        .await
        .unwrap();
    assert_eq!(entry.flags, vec!["max_amount_per_charge"]);
    assert_eq!(
        entry.rule_pack.as_deref(),
        Some("national@builtin>410922@1")
    );
    // The next version takes over from the one just kept.
    other
        .put_rule_pack(&county_charge_cap(2, CapAction::Reject))
        .await
        .unwrap();
    let err = s
        .execute(req("I1", "big-3", pay("BIG", 100)))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "charge_exceeds_cap");
    assert!(err.to_string().contains("410922@2"), "{err}");
    // Reads of the rules in force see it too.
    let institution = s.institution(&iid("I1")).await.unwrap();
    let rules = s.rules_for(&institution, day("2026-08-02")).await.unwrap();
    assert_eq!(rules.version, "national@builtin>410922@2");
    other.close().await;
}

async fn balances_at_past_instants_are_exact_and_never_invented(db: &TestDb) {
    let s = &db.store;
    seeded(s).await;
    let t0 = db.advance(10);
    db.advance(10);
    s.execute(req("I1", "p1", pay("E1", 100_000)))
        .await
        .unwrap();
    let t1 = db.advance(10);
    db.advance(10);
    s.execute(req("I1", "p2", pay("E1", 50_000))).await.unwrap();
    db.advance(10);
    s.execute(req("I1", "l1", consume("E1", 5))).await.unwrap();

    let i1 = iid("I1");
    let at = |t| s.balances_at(&i1, t);
    assert_eq!(at(t0).await.unwrap().balance("escrow_cash"), 0);
    assert_eq!(at(t1).await.unwrap().balance("escrow_cash"), 100_000);
    let now = at(db.clock.now()).await.unwrap();
    assert_eq!(now.balance("escrow_cash"), 150_000);
    assert_eq!(now.balance("releasable"), 50_000);
    assert_eq!(now.accounts, s.balances(&iid("I1")).await.unwrap().accounts);

    let before = "2020-01-01T00:00:00Z".parse().unwrap();
    assert_eq!(
        at(before).await.unwrap_err().code(),
        "before_institution_existed"
    );
    assert_eq!(
        s.balances_at(&iid("NOPE"), t1).await.unwrap_err().code(),
        "unknown_institution"
    );
}

async fn verify_passes_on_sound_books_and_names_a_tampered_entry(db: &TestDb) {
    let s = &db.store;
    seeded(s).await;
    s.execute(req("I1", "p1", pay("E1", 100_000)))
        .await
        .unwrap();
    s.execute(req("I1", "p2", pay("E2", 100_000)))
        .await
        .unwrap();
    s.execute(req("I1", "l1", consume("E1", 4))).await.unwrap();
    let report = s.verify().await.unwrap();
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.entries, 3);

    // The database itself refuses edits ...
    let refused = match &s {
        ledger_core::Store::Postgres(p) => {
            sqlx::query("update postings set amount_minor = 1 where seq = 2")
                .execute(p.pool())
                .await
                .is_err()
        }
        ledger_core::Store::Sqlite(q) => {
            sqlx::query("update postings set amount_minor = 1 where seq = 2")
                .execute(q.pool())
                .await
                .is_err()
        }
    };
    assert!(refused, "postings are append-only in the database");
    // ... so the tamperer removes the guard first, and verify still finds it.
    match db.backend {
        Backend::Postgres | Backend::PostgresPerInstitution => {
            db.raw("alter table postings disable trigger postings_append_only")
                .await;
            db.raw("update postings set amount_minor = 99999 where institution_id = 'I1' and seq = 2 and leg = 0").await;
        }
        Backend::Sqlite => {
            db.raw("drop trigger postings_no_update").await;
            db.raw("update postings set amount_minor = 99999 where institution_id = 'I1' and seq = 2 and leg = 0").await;
        }
    }
    let report = s.verify().await.unwrap();
    assert_eq!(report.failures.len(), 1, "{report:?}");
    let failure = &report.failures[0];
    assert_eq!(failure.seq, Some(2));
    assert_eq!(failure.client_id.as_deref(), Some("p2"));
    assert!(failure.reason.contains("hash"), "{}", failure.reason);
}

async fn reversals_mirror_the_original_and_happen_once(db: &TestDb) {
    let s = &db.store;
    seeded(s).await;
    s.execute(req("I1", "p1", pay("E1", 100_000)))
        .await
        .unwrap();
    s.execute(req("I1", "l1", consume("E1", 1))).await.unwrap();
    let rev = s
        .execute(req("I1", "p1-undo", Command::Reverse { entry: cid("p1") }))
        .await;
    // Lessons were consumed from that payment: reversing it would overdraw.
    assert_eq!(rev.unwrap_err().code(), "would_overdraw");
    s.execute(req("I1", "p2", pay("E2", 50_000))).await.unwrap();
    let rev = s
        .execute(req("I1", "p2-undo", Command::Reverse { entry: cid("p2") }))
        .await
        .unwrap();
    assert_eq!(rev.kind, EntryKind::Reversal);
    assert_eq!(rev.refers_to_seq, Some(3));
    assert_eq!(rev.postings[0].side, ledger_core::Side::Credit);
    let again = s
        .execute(req(
            "I1",
            "p2-undo-2",
            Command::Reverse { entry: cid("p2") },
        ))
        .await
        .unwrap_err();
    assert_eq!(again.code(), "cannot_reverse");
    let lesson = s
        .execute(req("I1", "l1-undo", Command::Reverse { entry: cid("l1") }))
        .await
        .unwrap_err();
    assert_eq!(lesson.code(), "cannot_reverse");
    // The reversed payment no longer counts towards the price.
    s.execute(req("I1", "p3", pay("E2", 300_000)))
        .await
        .unwrap();
    assert_eq!(
        s.balances(&iid("I1")).await.unwrap().balance("prepaid/E2"),
        300_000
    );
}

async fn unidentified_receipts_wait_in_suspense_until_attributed(db: &TestDb) {
    let s = &db.store;
    seeded(s).await;
    s.execute(req(
        "I1",
        "u1",
        Command::RecordUnidentifiedReceipt {
            amount: ledger_core::Amount::from_minor(70_000).unwrap(),
        },
    ))
    .await
    .unwrap();
    s.execute(req(
        "I1",
        "a1",
        Command::AttributeReceipt {
            enrollment: eid("E2"),
            amount: ledger_core::Amount::from_minor(50_000).unwrap(),
        },
    ))
    .await
    .unwrap();
    let err = s
        .execute(req(
            "I1",
            "a2",
            Command::AttributeReceipt {
                enrollment: eid("E1"),
                amount: ledger_core::Amount::from_minor(20_001).unwrap(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "would_overdraw");
    let b = s.balances(&iid("I1")).await.unwrap();
    assert_eq!(b.balance("unidentified"), 20_000);
    assert_eq!(b.balance("prepaid/E2"), 50_000);
    assert_eq!(b.balance("escrow_cash"), 70_000);

    // The risk deposit: paid in, returned through the bank.
    s.execute(req(
        "I1",
        "d1",
        Command::PayInDeposit {
            amount: ledger_core::Amount::from_minor(1_000_000).unwrap(),
        },
    ))
    .await
    .unwrap();
    s.execute(req(
        "I1",
        "d2",
        Command::InstructDepositReturn {
            amount: ledger_core::Amount::from_minor(400_000).unwrap(),
        },
    ))
    .await
    .unwrap();
    s.execute(req(
        "I1",
        "d2-ok",
        Command::ConfirmPending { pending: cid("d2") },
    ))
    .await
    .unwrap();
    let b = s.balances(&iid("I1")).await.unwrap();
    assert_eq!(b.deposit_minor(), 600_000);
    assert_eq!(b.balance("deposit_payable"), 600_000);
    assert_eq!(b.imbalance_minor(), 0);
}

async fn entries_page_in_chain_order(db: &TestDb) {
    let s = &db.store;
    seeded(s).await;
    let batch = (0..25)
        .map(|i| req("I1", &format!("p{i}"), pay("E1", 1_000)))
        .collect();
    s.execute_batch(batch).await.unwrap();
    let mut seen = vec![];
    let mut after = 0;
    loop {
        let page = s.entries(&iid("I1"), after, 10).await.unwrap();
        if page.is_empty() {
            break;
        }
        after = page.last().unwrap().seq;
        seen.extend(page.into_iter().map(|e| e.client_id.to_string()));
    }
    let expected: Vec<String> = (0..25).map(|i| format!("p{i}")).collect();
    assert_eq!(seen, expected);
}

async fn enrollments_page_by_byte_order_of_their_ids(db: &TestDb) {
    let s = &db.store;
    seeded(s).await;
    s.create_institution(&institution("I2")).await.unwrap();
    s.create_enrollment(&enrollment("I2", "E-0", 1_000))
        .await
        .unwrap();
    // Ids whose order differs between bytes and a language's collation:
    // case, punctuation, digits compared as text.
    for id in ["E-10", "E-7", "e-2", "E_5", "E.9", "Z1"] {
        s.create_enrollment(&enrollment("I1", id, 1_000))
            .await
            .unwrap();
    }
    let mut seen: Vec<String> = vec![];
    let mut after: Option<ledger_core::EnrollmentId> = None;
    let mut pages = 0;
    loop {
        let page = s
            .enrollments_page(&iid("I1"), after.as_ref(), 3)
            .await
            .unwrap();
        assert!(page.len() <= 3);
        pages += 1;
        let Some(last) = page.last() else { break };
        after = Some(last.id.clone());
        seen.extend(page.iter().map(|e| e.id.to_string()));
    }
    let mut expected: Vec<String> = ["E1", "E2", "E-10", "E-7", "e-2", "E_5", "E.9", "Z1"]
        .map(String::from)
        .to_vec();
    expected.sort();
    assert_eq!(seen, expected);
    assert_eq!(pages, 4, "three full pages, then an empty one");
    assert!(s
        .enrollments_page(&iid("I1"), Some(&eid("e-2")), 10)
        .await
        .unwrap()
        .is_empty());
    assert!(s
        .enrollments_page(&iid("I9"), None, 10)
        .await
        .unwrap()
        .is_empty());
}

async fn malformed_wire_requests_are_refused_before_the_books(db: &TestDb) {
    use ledger_core::domain::wire::WireRequest;
    let s = &db.store;
    seeded(s).await;
    s.execute(req("I1", "p", pay("E1", 100_000))).await.unwrap();
    let before = db.dump().await;
    let head = r#""institution":"I1","client_id":"w1","occurred_at":"2026-08-25T10:00:00Z""#;
    let cases = [
        (
            r#""currency":"CNY","op":"pay_tuition","enrollment":"E1","amount":"12.345""#,
            "too_many_decimals",
        ),
        (
            r#""currency":"CNY","op":"pay_tuition","enrollment":"E1","amount":"12.3.4""#,
            "invalid_amount",
        ),
        (
            r#""currency":"CNY","op":"pay_tuition","enrollment":"E1","amount":"-1.00""#,
            "amount_must_be_positive",
        ),
        (
            r#""currency":"CNY","op":"pay_tuition","enrollment":"E1","amount":"0.00""#,
            "amount_must_be_positive",
        ),
        (
            r#""currency":"CNY","op":"pay_tuition","enrollment":"E404","amount":"1.00""#,
            "unknown_enrollment",
        ),
        (
            r#""currency":"CNY","op":"consume_lessons","enrollment":"E1","hours":-1"#,
            "hours_must_be_positive",
        ),
        (
            r#""currency":"USD","op":"pay_tuition","enrollment":"E1","amount":"1.00""#,
            "currency_mismatch",
        ),
        (
            r#""currency":"XYZ","op":"pay_tuition","enrollment":"E1","amount":"1.00""#,
            "unsupported_currency",
        ),
        (
            r#""currency":"CNY","op":"pay_tuition","amount":"1.00""#,
            "missing_field",
        ),
    ];
    for (rest, code) in cases {
        let wire: WireRequest = serde_json::from_str(&format!("{{{head},{rest}}}")).unwrap();
        let got = match wire.parse() {
            Err(e) => e.code(),
            Ok(request) => s.execute(request).await.unwrap_err().code(),
        };
        assert_eq!(got, code, "{rest}");
        assert_eq!(db.dump().await, before, "{rest} changed the books");
    }
}

/// Concurrent requests' Idempotency-Keys are claimed in one statement: each
/// free key is held by the first request that asks for it, and nothing
/// else is held (a key already claimed, or asked for twice at once, is left
/// to `claim_key`, which says who holds it).
async fn keys_claimed_together_are_each_held_by_one_request(db: &TestDb) {
    use ledger_core::store::KeyClaim;
    let s = &db.store;
    let lease = std::time::Duration::from_secs(30);
    assert!(matches!(
        s.claim_key("t1", "k0", "h0", lease).await.unwrap(),
        KeyClaim::Held { attempt: 1, .. }
    ));
    let asks = [
        ("t1", "k1", "h1"),
        ("t1", "k2", "h2"),
        // Another caller's key of the same name is its own.
        ("t2", "k1", "h9"),
        // The same key asked twice at once: the first ask holds it.
        ("t1", "k1", "h1"),
        // Claimed before, alone.
        ("t1", "k0", "h0"),
    ];
    let got = s.claim_fresh_keys(&asks, lease).await.unwrap();
    let now = db.clock.now();
    assert_eq!(got, vec![Some(now), Some(now), Some(now), None, None]);
    // The second ask of k1 then learns that the first holds it.
    match s.claim_key("t1", "k1", "h1", lease).await.unwrap() {
        KeyClaim::Busy { request_hash, .. } => assert_eq!(request_hash, "h1"),
        other => panic!("{other:?}"),
    }
    // Held keys stay held: asking again holds nothing.
    let again = s.claim_fresh_keys(&asks[..3], lease).await.unwrap();
    assert_eq!(again, vec![None, None, None]);
    // Each held by its own request.
    for (token, key, hash) in [("t1", "k2", "h2"), ("t2", "k1", "h9")] {
        match s.claim_key(token, key, "another", lease).await.unwrap() {
            KeyClaim::Busy { request_hash, .. } => assert_eq!(request_hash, hash),
            other => panic!("{token} {key}: {other:?}"),
        }
    }
}

/// An institution's records with only its entries, under the national
/// rules on `on`: what the domain sums lessons from.
fn entries_only(
    id: &str,
    entries: Vec<ledger_core::Entry>,
    on: chrono::NaiveDate,
) -> ledger_core::domain::risk::snapshot::Records {
    ledger_core::domain::risk::snapshot::Records {
        institution: institution(id),
        entries,
        accounts: vec![],
        enrollments: vec![],
        refunds: vec![],
        events: vec![],
        rules: ledger_core::domain::policy::resolve(&[jc("000000")], &[], on),
        lessons: vec![],
        release_asks: vec![],
        lessons_summed: vec![],
        lessons_at_rest: vec![],
        open_entries: None,
    }
}

/// The risk scan's read of lessons consumed before a day: the store leaves
/// them out of the entries and sums them per enrollment, exactly as
/// `snapshot::sum_lessons_before` sums the entries listed (hours, postings
/// by account and side, the first instant and seq), a bonus hour (no
/// posting) and an institution outside the span included.
async fn lessons_before_a_day_are_read_summed_as_the_domain_sums_them(db: &TestDb) {
    use ledger_core::domain::risk::snapshot::sum_lessons_before;
    use ledger_core::store::IdSpan;
    let s = &db.store;
    seeded(s).await;
    s.create_institution(&institution("I2")).await.unwrap();
    let mut e3 = enrollment("I1", "E3", 100_000);
    e3.hours_bought = 2;
    e3.bonus_hours = 1;
    s.create_enrollment(&e3).await.unwrap();
    s.create_enrollment(&enrollment("I2", "E1", 400_000))
        .await
        .unwrap();
    let on = |r: Request, d: &str| Request {
        occurred_at: format!("{d}T10:00:00Z").parse().unwrap(),
        ..r
    };
    let mut batch = vec![
        on(req("I1", "p1", pay("E1", 400_000)), "2026-08-01"),
        on(req("I1", "p2", pay("E2", 300_000)), "2026-08-01"),
        on(req("I1", "p3", pay("E3", 100_000)), "2026-08-01"),
        on(req("I2", "p1", pay("E1", 400_000)), "2026-08-01"),
    ];
    for (n, d) in ["2026-08-03", "2026-08-09", "2026-08-10", "2026-08-20"]
        .iter()
        .enumerate()
    {
        batch.push(on(req("I1", &format!("a{n}"), consume("E1", 2)), d));
        batch.push(on(req("I1", &format!("b{n}"), consume("E2", 1)), d));
        batch.push(on(req("I2", &format!("a{n}"), consume("E1", 3)), d));
    }
    // E3: two paid hours, then the bonus hour (no posting), all early.
    for (n, d) in ["2026-08-02", "2026-08-04", "2026-08-05"]
        .iter()
        .enumerate()
    {
        batch.push(on(req("I1", &format!("c{n}"), consume("E3", 1)), d));
    }
    s.execute_batch(batch).await.unwrap();

    let before = day("2026-08-10");
    let instant = before.and_hms_opt(0, 0, 0).unwrap().and_utc();
    let i1 = iid("I1");
    let span = IdSpan::one(&i1);
    let all = s.entries_in(Some(span), None, 1_000, None).await.unwrap();
    // The scan's read brings each entry as the chain's own read does, its
    // postings in leg order, without the hashes nothing there reads.
    let chained: Vec<_> = s
        .entries(&i1, 0, 1_000)
        .await
        .unwrap()
        .into_iter()
        .map(|e| ledger_core::Entry {
            request_hash: String::new(),
            prev_hash: String::new(),
            hash: String::new(),
            ..e
        })
        .collect();
    assert!(chained.iter().any(|e| e.postings.len() > 1));
    assert_eq!(all, chained, "the scan's read of the entries");
    let mut listed = entries_only("I1", all, before);
    sum_lessons_before(&mut listed, before);
    // Paged, as the scan reads: pages of 3 cross the left-out lessons.
    let mut entries = vec![];
    loop {
        let after = entries
            .last()
            .map(|e: &ledger_core::Entry| (e.institution.as_str().to_string(), e.seq));
        let page = s
            .entries_in(
                Some(span),
                after.as_ref().map(|(i, n)| (i.as_str(), *n)),
                3,
                Some(instant),
            )
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        entries.extend(page);
    }
    assert_eq!(entries, listed.entries, "the entries left listed");
    let summed: Vec<_> = s
        .lessons_summed_in(Some(span), instant)
        .await
        .unwrap()
        .into_iter()
        .map(|(institution, sum)| {
            assert_eq!(institution, iid("I1"), "a lesson of another institution");
            sum
        })
        .collect();
    assert_eq!(summed, listed.lessons_summed);
    let hours: Vec<_> = summed
        .iter()
        .map(|l| {
            (
                l.enrollment.as_ref().unwrap().to_string(),
                l.hours,
                l.postings.len(),
            )
        })
        .collect();
    assert_eq!(
        hours,
        [
            ("E1".into(), 4, 2),
            ("E2".into(), 2, 2),
            ("E3".into(), 3, 2)
        ],
        "(enrollment, hours, postings by account and side) before {before}"
    );
    // The whole store: the other institution's are summed too.
    let everyone = s.lessons_summed_in(None, instant).await.unwrap();
    assert_eq!(everyone.len(), 4);
    // Whether there is anything to sum, asked before reading the sums.
    let first = day("2026-08-02").and_hms_opt(0, 0, 0).unwrap().and_utc();
    let exist = |span, at| s.lessons_before_exist(span, at);
    assert!(exist(Some(span), instant).await.unwrap());
    assert!(exist(None, instant).await.unwrap());
    assert!(
        !exist(Some(span), first).await.unwrap(),
        "nothing was taught before 2026-08-02"
    );
}

/// The lesson sums the daily job keeps: a read on top of them equals the
/// sums of every lesson before the day (as `sum_lessons_before` sums the
/// entries), whatever was booked after the mark, back-dated before it or
/// not; keeping again (the same day, a later one, an earlier one) changes
/// no read; a read before the mark sums the history afresh.
async fn kept_lesson_sums_read_as_the_sums_of_every_lesson_booked_late_or_not(db: &TestDb) {
    use ledger_core::domain::risk::snapshot::sum_lessons_before;
    use ledger_core::store::IdSpan;
    let s = &db.store;
    seeded(s).await;
    s.create_institution(&institution("I2")).await.unwrap();
    s.create_enrollment(&enrollment("I2", "E1", 400_000))
        .await
        .unwrap();
    let on = |r: Request, d: &str| Request {
        occurred_at: format!("{d}T10:00:00Z").parse().unwrap(),
        ..r
    };
    let at = |d: &str| day(d).and_hms_opt(0, 0, 0).unwrap().and_utc();
    let mut batch = vec![
        on(req("I1", "p1", pay("E1", 400_000)), "2026-08-01"),
        on(req("I1", "p2", pay("E2", 300_000)), "2026-08-01"),
        on(req("I2", "p1", pay("E1", 400_000)), "2026-08-01"),
    ];
    for (n, d) in ["2026-08-03", "2026-08-06", "2026-08-09"]
        .iter()
        .enumerate()
    {
        batch.push(on(req("I1", &format!("a{n}"), consume("E1", 2)), d));
        batch.push(on(req("I2", &format!("a{n}"), consume("E1", 3)), d));
    }
    s.execute_batch(batch).await.unwrap();
    // What the domain sums from every entry, per institution.
    let expected = |before: &str| {
        let before = day(before);
        async move {
            let mut all = vec![];
            for i in ["I1", "I2"] {
                let entries = s
                    .entries_in(Some(IdSpan::one(&iid(i))), None, 1_000, None)
                    .await
                    .unwrap();
                let mut r = entries_only(i, entries, before);
                sum_lessons_before(&mut r, before);
                all.extend(r.lessons_summed.into_iter().map(|l| (iid(i), l)));
            }
            all
        }
    };
    let read = |before: &str| s.lessons_summed_in(None, at(before));

    let kept = s.keep_lesson_sums(None, at("2026-08-05")).await.unwrap();
    assert_eq!(kept.marked, 2, "both institutions marked");
    assert_eq!(
        read("2026-08-10").await.unwrap(),
        expected("2026-08-10").await
    );
    // Booked after the mark: one back-dated before it, one after it.
    s.execute_batch(vec![
        on(req("I1", "late-1", consume("E1", 1)), "2026-08-02"),
        on(req("I1", "late-2", consume("E2", 4)), "2026-08-07"),
    ])
    .await
    .unwrap();
    let want = expected("2026-08-10").await;
    assert_eq!(
        want.iter().map(|(_, l)| l.hours).collect::<Vec<_>>(),
        [7, 4, 9],
        "(I1 E1, I1 E2, I2 E1) hours before 2026-08-10"
    );
    assert_eq!(
        read("2026-08-10").await.unwrap(),
        want,
        "late lessons on top of the kept sums"
    );
    for keep in ["2026-08-08", "2026-08-08", "2026-08-04"] {
        s.keep_lesson_sums(None, at(keep)).await.unwrap();
        assert_eq!(
            read("2026-08-10").await.unwrap(),
            want,
            "after keeping at {keep}"
        );
        assert_eq!(
            read("2026-08-08").await.unwrap(),
            expected("2026-08-08").await,
            "on the mark, after keeping at {keep}"
        );
    }
    // Before the mark: summed afresh.
    assert_eq!(
        read("2026-08-04").await.unwrap(),
        expected("2026-08-04").await
    );
    // One institution's span reads its own, kept or not.
    let i2 = iid("I2");
    let own = s
        .lessons_summed_in(Some(IdSpan::one(&i2)), at("2026-08-10"))
        .await
        .unwrap();
    assert_eq!(
        own,
        want.into_iter()
            .filter(|(i, _)| *i == i2)
            .collect::<Vec<_>>()
    );
    // The read stands on the kept sums (it does not sum the history
    // afresh): an hour added to them by hand shows in it.
    db.raw("update lesson_sums set hours = hours + 1 where institution_id = 'I2'")
        .await;
    let hours: Vec<u32> = read("2026-08-10")
        .await
        .unwrap()
        .into_iter()
        .map(|(_, l)| l.hours)
        .collect();
    assert_eq!(hours, [7, 4, 10]);
}

/// A long read (the daily scan, a page of the console) holds its
/// connection for a while. On SQLite, where one connection writes, a read
/// used to hold up every write behind it. Now a write goes ahead while a
/// read is open, the open read keeps the instant it began at, the next
/// read sees the acknowledged write, and the readers refuse to write.
async fn a_read_in_progress_neither_holds_up_a_write_nor_sees_it(db: &TestDb) {
    use std::time::Duration;
    let s = &db.store;
    seeded(s).await;
    s.execute(req("I1", "pay-1", pay("E1", 400_000)))
        .await
        .unwrap();
    let count = "select count(*) from entries where institution_id = 'I1'";

    macro_rules! while_reading {
        ($reader:expr, $isolation:expr) => {{
            let mut reading = $reader.begin().await.unwrap();
            if let Some(isolation) = $isolation {
                sqlx::query(isolation).execute(&mut *reading).await.unwrap();
            }
            let before: i64 = sqlx::query_scalar(count)
                .fetch_one(&mut *reading)
                .await
                .unwrap();
            let written = tokio::time::timeout(
                Duration::from_secs(10),
                s.execute(req("I1", "pay-2", pay("E2", 100_000))),
            )
            .await
            .expect("a write waited for a read in progress")
            .unwrap();
            assert_eq!(written.seq, 2);
            let during: i64 = sqlx::query_scalar(count)
                .fetch_one(&mut *reading)
                .await
                .unwrap();
            assert_eq!((before, during), (1, 1), "an open read sees one instant");
            reading.rollback().await.unwrap();
        }};
    }
    match s {
        ledger_core::Store::Postgres(pg) => {
            while_reading!(
                pg.reader(),
                Some("set transaction isolation level repeatable read")
            )
        }
        ledger_core::Store::Sqlite(lite) => {
            while_reading!(lite.reader(), None::<&str>);
            let refused = sqlx::query("delete from entries")
                .execute(lite.reader())
                .await;
            let e = refused.expect_err("a reader refuses to write").to_string();
            assert!(e.contains("readonly"), "{e}");
        }
    }
    let b = s.balances(&iid("I1")).await.unwrap();
    assert_eq!(
        b.balance("prepaid/E2"),
        100_000,
        "the next read sees the write"
    );
    assert_eq!(s.entries(&iid("I1"), 0, 10).await.unwrap().len(), 2);
    assert!(s.verify().await.unwrap().ok());
}

/// The risk scan's read of the families' lesson records leaves those at
/// rest in the database, summed per enrollment (`Store::lessons_in` with a
/// day): on both dialects, for every day they may rest from, it lists and
/// sums exactly what the domain's split of every record does
/// (`confirmations::split_at_rest`, the reference the risk tests hold to
/// the whole read), for one institution's span and for all.
async fn lesson_records_at_rest_are_read_summed_as_the_domain_splits_them(db: &TestDb) {
    use chrono::{Days, NaiveDate};
    use ledger_core::domain::lessons::LessonState::{self, *};
    use ledger_core::domain::risk::confirmations::split_at_rest;
    use ledger_core::store::{IdSpan, NewLesson};
    let s = &db.store;
    seeded(s).await;
    let start = NaiveDate::from_ymd_opt(2026, 3, 2).unwrap();
    let day = |n: u64| start.checked_add_days(Days::new(n)).unwrap();
    for n in 0..42u64 {
        db.clock
            .set(day(n).and_hms_opt(10, 0, 0).unwrap().and_utc());
        let due = day(n + if n % 7 == 3 { 30 } else { 5 });
        let record = s
            .record_lesson(
                &NewLesson {
                    institution: iid("I1"),
                    enrollment: eid(if n % 2 == 0 { "E1" } else { "E2" }),
                    hours: 1 + (n % 3) as u32,
                    occurred_on: day(n),
                    recorded_by: "school".into(),
                    answer_by: due,
                },
                None,
            )
            .await
            .unwrap();
        let steps: Vec<(LessonState, NaiveDate)> = match n % 6 {
            0 => vec![(Confirmed, day(n))],
            1 => vec![(Confirmed, day(n + 3))],
            2 => vec![(Disputed, day(n + 1)), (Upheld, day(n + 20))],
            3 => vec![(Disputed, day(n + 1))],
            4 => vec![],
            _ => vec![(DeemedConfirmed, due.succ_opt().unwrap())],
        };
        for (k, (state, on)) in steps.into_iter().enumerate() {
            assert!(s
                .append_lesson_event(
                    &iid("I1"),
                    &record.id,
                    k as i64,
                    state,
                    "family",
                    Some("why"),
                    on
                )
                .await
                .unwrap());
        }
    }
    let every = s.lessons_in(None, None).await.unwrap();
    assert!(every["I1"].at_rest.is_empty());
    assert_eq!(every["I1"].listed.len(), 42);
    let (mut listed_and_summed, mut upheld_left_out) = (0, false);
    for n in 0..90 {
        let from = day(n);
        let (listed, at_rest) = split_at_rest(every["I1"].listed.clone(), from);
        for span in [None, Some(IdSpan::one(&iid("I1")))] {
            let read = s.lessons_in(span, Some(from)).await.unwrap();
            let read = read.get("I1").cloned().unwrap_or_default();
            assert_eq!(read.listed, listed, "listed, at rest from {from}");
            assert_eq!(read.at_rest, at_rest, "summed, at rest from {from}");
        }
        if !listed.is_empty() && !at_rest.is_empty() {
            listed_and_summed += 1;
        }
        let recorded: u64 = every["I1"]
            .listed
            .iter()
            .filter(|l| ledger_core::domain::risk::confirmations::at_rest(l, from))
            .map(|l| u64::from(l.record.hours))
            .sum();
        upheld_left_out |= at_rest.iter().map(|r| r.hours).sum::<u64>() < recorded;
    }
    // Days on which the read both listed and summed, and sums that left an
    // upheld dispute's hours out: the comparison held something.
    assert!(listed_and_summed > 30, "{listed_and_summed}");
    assert!(upheld_left_out);
}

/// What recording a lesson counts against the package, read from the
/// enrollment's own rows: its records not upheld (pending, disputed,
/// confirmed) and its lessons posted straight into the books; neither a
/// record's own posted entry (`lesson-` client id, counted as the record)
/// nor another enrollment's records or lessons. And what the lessons job
/// posts: earned records without their entry, until it is written.
async fn an_enrollments_hours_used_count_its_records_not_upheld_and_lessons_posted_directly(
    db: &TestDb,
) {
    use chrono::NaiveDate;
    use ledger_core::domain::lessons::LessonState;
    use ledger_core::store::NewLesson;
    let s = &db.store;
    seeded(s).await;
    s.execute(req("I1", "pay-1", pay("E1", 400_000)))
        .await
        .unwrap();
    s.execute(req("I1", "pay-2", pay("E2", 300_000)))
        .await
        .unwrap();
    let on = NaiveDate::from_ymd_opt(2026, 8, 25).unwrap();
    let mut ids = Vec::new();
    for (enrollment, hours) in [("E1", 1), ("E1", 2), ("E1", 4), ("E1", 8), ("E2", 16)] {
        let r = s
            .record_lesson(
                &NewLesson {
                    institution: iid("I1"),
                    enrollment: eid(enrollment),
                    hours,
                    occurred_on: on,
                    recorded_by: "school".into(),
                    answer_by: on,
                },
                None,
            )
            .await
            .unwrap();
        ids.push(r.id);
    }
    // E1: 1 h pending, 2 h confirmed, 4 h disputed, 8 h disputed then upheld.
    let step = |id: &str, seq: i64, state: LessonState| {
        let id = id.to_string();
        async move {
            assert!(s
                .append_lesson_event(&iid("I1"), &id, seq, state, "family", Some("why"), on)
                .await
                .unwrap());
        }
    };
    step(&ids[1], 0, LessonState::Confirmed).await;
    step(&ids[2], 0, LessonState::Disputed).await;
    step(&ids[3], 0, LessonState::Disputed).await;
    step(&ids[3], 1, LessonState::Upheld).await;
    assert_eq!(
        s.lesson_hours_recorded(&iid("I1"), &eid("E1"))
            .await
            .unwrap(),
        7
    );
    assert_eq!(
        s.lesson_hours_recorded(&iid("I1"), &eid("E2"))
            .await
            .unwrap(),
        16
    );
    // What the lessons job posts: the one earned record, with its trail.
    let unposted = s.earned_lessons_unposted().await.unwrap();
    let earned: Vec<_> = unposted["I1"]
        .iter()
        .map(|l| (l.record.id.clone(), l.state()))
        .collect();
    assert_eq!(earned, [(ids[1].clone(), LessonState::Confirmed)]);
    // The confirmed record posted under its own client id, and 3 + 5
    // hours posted directly (one of them to E2).
    let posted = format!("lesson-{}", ids[1]);
    s.execute(req("I1", &posted, consume("E1", 2)))
        .await
        .unwrap();
    assert!(s.earned_lessons_unposted().await.unwrap().is_empty());
    s.execute(req("I1", "les-1", consume("E1", 3)))
        .await
        .unwrap();
    s.execute(req("I1", "les-2", consume("E2", 5)))
        .await
        .unwrap();
    assert_eq!(
        s.lesson_hours_posted_directly(&iid("I1"), &eid("E1"))
            .await
            .unwrap(),
        3
    );
    assert_eq!(
        s.lesson_hours_posted_directly(&iid("I1"), &eid("E2"))
            .await
            .unwrap(),
        5
    );
    assert_eq!(
        s.lesson_hours_recorded(&iid("I1"), &eid("E1"))
            .await
            .unwrap(),
        7
    );
}

/// The lessons job reads the records no family has answered from a queue
/// they enter when recorded and leave at their first step (migration
/// 0040): on both dialects that is exactly the records whose trail is
/// empty and whose answer-by day has passed, whichever step came first and
/// whoever took it, across institutions, in the order recorded. Records are numbered from a kept
/// count: in order, one number each, none taken by a replay or by a record
/// the store refuses.
async fn the_lessons_job_reads_the_records_waiting_for_an_answer_and_numbers_come_from_a_kept_count(
    db: &TestDb,
) {
    use chrono::NaiveDate;
    use ledger_core::domain::lessons::LessonState::*;
    use ledger_core::store::NewLesson;
    let s = &db.store;
    seeded(s).await;
    s.create_institution(&institution("I2")).await.unwrap();
    s.create_enrollment(&enrollment("I2", "E9", 300_000))
        .await
        .unwrap();
    let on = NaiveDate::from_ymd_opt(2026, 8, 25).unwrap();
    let new = |institution: &str, enrollment: &str| NewLesson {
        institution: iid(institution),
        enrollment: eid(enrollment),
        hours: 1,
        occurred_on: on,
        recorded_by: "school".into(),
        answer_by: on,
    };
    let mut ids = Vec::new();
    for (k, (i, e)) in [
        ("I1", "E1"),
        ("I1", "E2"),
        ("I2", "E9"),
        ("I1", "E1"),
        ("I1", "E2"),
        ("I2", "E9"),
    ]
    .into_iter()
    .enumerate()
    {
        let key = format!("rec-{k}");
        let r = s.record_lesson(&new(i, e), Some(&key)).await.unwrap();
        // A repeat of the request is the same record, with no new number.
        let again = s.record_lesson(&new(i, e), Some(&key)).await.unwrap();
        assert_eq!(again.id, r.id);
        ids.push((i, r.id));
    }
    // A record for an enrollment the institution does not have is refused
    // and takes no number.
    let refused = s.record_lesson(&new("I1", "E9"), None).await;
    assert!(refused.is_err(), "{refused:?}");
    // Its family has a week longer to answer.
    let mut longer = new("I1", "E1");
    longer.answer_by = on + chrono::Duration::days(7);
    let later = s.record_lesson(&longer, None).await.unwrap();
    ids.push(("I1", later.id));
    let numbers: Vec<(&str, &str)> = ids.iter().map(|(i, id)| (*i, id.as_str())).collect();
    assert_eq!(
        numbers,
        [
            ("I1", "L1"),
            ("I1", "L2"),
            ("I2", "L1"),
            ("I1", "L3"),
            ("I1", "L4"),
            ("I2", "L2"),
            ("I1", "L5")
        ]
    );
    // Steps: the family confirms, disputes (then an officer upholds), the
    // job deems one confirmed; a racing second first step writes nothing.
    for (i, id, state) in [
        ("I1", "L1", Confirmed),
        ("I1", "L3", Disputed),
        ("I2", "L2", DeemedConfirmed),
    ] {
        assert!(s
            .append_lesson_event(&iid(i), id, 0, state, "family", Some("why"), on)
            .await
            .unwrap());
    }
    assert!(!s
        .append_lesson_event(&iid("I1"), "L1", 0, Disputed, "family", Some("late"), on)
        .await
        .unwrap());
    assert!(s
        .append_lesson_event(&iid("I1"), "L3", 1, Upheld, "officer", Some("ok"), on)
        .await
        .unwrap());
    // The reference: every record whose trail is empty, from the whole
    // read, and past its answer-by day on the day the job runs.
    let every = s.lessons_in(None, None).await.unwrap();
    for today in [
        on,
        on + chrono::Duration::days(1),
        on + chrono::Duration::days(8),
    ] {
        let waiting: Vec<(String, String)> = s
            .unanswered_lessons(today)
            .await
            .unwrap()
            .into_iter()
            .map(|r| (r.institution.to_string(), r.id))
            .collect();
        let mut due: Vec<(String, String)> = Vec::new();
        for i in ["I1", "I2"] {
            for l in &every[i].listed {
                if l.trail.is_empty() && l.record.answer_by < today {
                    due.push((i.to_string(), l.record.id.clone()));
                }
            }
        }
        assert_eq!(waiting, due, "on {today}");
    }
    let waiting: Vec<(String, String)> = s
        .unanswered_lessons(on + chrono::Duration::days(1))
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.institution.to_string(), r.id))
        .collect();
    let waiting: Vec<(&str, &str)> = waiting
        .iter()
        .map(|(i, id)| (i.as_str(), id.as_str()))
        .collect();
    // L5's family still has a week.
    assert_eq!(waiting, [("I1", "L2"), ("I1", "L4"), ("I2", "L1")]);
    assert!(s.unanswered_lessons(on).await.unwrap().is_empty());
}
