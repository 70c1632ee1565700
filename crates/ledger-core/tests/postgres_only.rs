//! What only PostgreSQL has to prove: many concurrent writers, and a schema
//! that distributes by institution.

mod support {
    pub mod county;
    pub mod db;
}

use std::collections::BTreeSet;
use std::time::Duration;

use ledger_core::{Command, Store};
use support::county::*;
use support::db::{Backend, TestDb};

const TASKS: usize = 16;
const ROUNDS: usize = 25;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_lose_nothing_duplicate_nothing_and_keep_every_floor() {
    concurrent_writers(Backend::Postgres).await;
}

/// The same writers with each batch statement naming one institution (a
/// sharded server's statements): no deadlock, nothing lost either.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_per_institution_lose_nothing_and_never_deadlock() {
    concurrent_writers(Backend::PostgresPerInstitution).await;
}

async fn concurrent_writers(backend: Backend) {
    let db = TestDb::new(backend).await;
    let s = db.store.clone();
    county(&s).await;
    s.create_institution(&institution("HOT")).await.unwrap();
    s.create_enrollment(&enrollment("HOT", "E", 500_000))
        .await
        .unwrap();
    for t in 0..TASKS {
        let i = format!("I{t}");
        s.create_institution(&institution(&i)).await.unwrap();
        s.create_enrollment(&enrollment(&i, "E", 500_000))
            .await
            .unwrap();
    }

    let work = (0..TASKS).map(|t| {
        let s: Store = s.clone();
        tokio::spawn(async move {
            let own = format!("I{t}");
            for round in 0..ROUNDS {
                // Everyone retries the same shared ids at once: one must win,
                // the rest must get the original back.
                // Everyone races to consume the hot enrollment: floors hold.
                // Both in one group commit (`execute_each`): each its own
                // outcome, whatever the other's.
                let shared = req("HOT", &format!("shared-{round}"), pay("E", 1_000));
                let consume = req("HOT", &format!("c-{t}-{round}"), consume("E", 1));
                let mut each = s
                    .execute_each(&[(shared, None), (consume, None)])
                    .await
                    .unwrap();
                assert_eq!(each.len(), 2);
                let entry = each.remove(0).unwrap();
                assert_eq!(entry.client_id.as_str(), format!("shared-{round}"));
                // Batches over two institutions, locked in either order.
                let (a, b) = if round % 2 == 0 {
                    ("HOT", own.as_str())
                } else {
                    (own.as_str(), "HOT")
                };
                s.execute_batch(vec![
                    req(
                        a,
                        &format!("b-{t}-{round}-a"),
                        if a == "HOT" {
                            Command::PayInDeposit {
                                amount: ledger_core::Amount::from_minor(7).unwrap(),
                            }
                        } else {
                            pay("E", 500)
                        },
                    ),
                    req(
                        b,
                        &format!("b-{t}-{round}-b"),
                        if b == "HOT" {
                            Command::PayInDeposit {
                                amount: ledger_core::Amount::from_minor(7).unwrap(),
                            }
                        } else {
                            pay("E", 500)
                        },
                    ),
                ])
                .await
                .unwrap();
                let _ = s
                    .execute(req(
                        &own,
                        &format!("r-{t}-{round}"),
                        Command::InstructRelease {
                            amount: ledger_core::Amount::from_minor(100).unwrap(),
                        },
                    ))
                    .await;
            }
        })
    });
    let all = futures_join(work.collect()).await;
    tokio::time::timeout(Duration::from_secs(120), all)
        .await
        .expect("writers finished (no deadlock)");

    // Replays created nothing twice.
    let Store::Postgres(pg) = &s else {
        unreachable!()
    };
    let shared: i64 = sqlx::query_scalar(
        "select count(*) from entries where institution_id = 'HOT' and client_id like 'shared-%'",
    )
    .fetch_one(pg.pool())
    .await
    .unwrap();
    assert_eq!(shared, ROUNDS as i64);

    // Stored totals equal the sum of postings, chains verify, floors hold.
    let report = s.verify().await.unwrap();
    assert!(report.ok(), "{report:?}");
    let hot = s.balances(&iid("HOT")).await.unwrap();
    assert_eq!(hot.balance("escrow_cash"), ROUNDS as i64 * 1_000);
    assert_eq!(hot.deposit_minor(), (TASKS * ROUNDS) as i64 * 7);
    let consumed = hot.balance("releasable");
    assert_eq!(
        consumed % 12_500,
        0,
        "each hour of 5,000.00 for 40 hours earns exactly 125.00"
    );
    assert!(consumed > 0, "some lessons were consumed");
    assert!(
        consumed <= ROUNDS as i64 * 1_000,
        "no more consumed than was paid"
    );
    for t in 0..TASKS {
        let sheet = s.balances(&iid(&format!("I{t}"))).await.unwrap();
        assert_eq!(
            sheet.balance("escrow_cash")
                + sheet
                    .accounts
                    .iter()
                    .find(|a| a.account == "escrow_cash")
                    .unwrap()
                    .totals
                    .pending_credits_minor,
            ROUNDS as i64 * 500
        );
        for a in sheet.accounts.iter().chain(hot.accounts.iter()) {
            assert!(a.available_minor >= 0, "{} broke its floor", a.account);
        }
    }
    db.cleanup().await;
}

/// A plain server gets the set-wise statements; the same requests written
/// set-wise and one institution at a time leave the very same rows (books,
/// chains, outbox, kept figures) and the same answers, refusals included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_wise_and_per_institution_batches_write_the_same_rows() {
    let set_wise = TestDb::new(Backend::Postgres).await;
    let Store::Postgres(pg) = &set_wise.store else {
        unreachable!()
    };
    assert_eq!(
        pg.batch_statements(),
        ledger_core::store::BatchStatements::SetWise,
        "no citus extension here"
    );
    let per_institution = TestDb::new(Backend::PostgresPerInstitution).await;
    let mut answers = Vec::new();
    let mut rows = Vec::new();
    for db in [&set_wise, &per_institution] {
        answers.push(mixed_batches(db).await);
        let Store::Postgres(pg) = &db.store else {
            unreachable!()
        };
        let mut all = db.dump().await;
        for table in ["outbox", "institution_figures", "chain_heads"] {
            let more: Vec<String> =
                sqlx::query_scalar(&format!("select t::text from {table} t order by 1"))
                    .fetch_all(pg.pool())
                    .await
                    .unwrap();
            all.extend(more.into_iter().map(|r| format!("{table}: {r}")));
        }
        rows.push(all);
    }
    assert_eq!(answers[0], answers[1], "the same answers");
    assert!(
        rows[0].iter().any(|r| r.starts_with("outbox: ")),
        "an instruction was written"
    );
    assert_eq!(rows[0].len(), rows[1].len());
    for (a, b) in rows[0].iter().zip(&rows[1]) {
        assert_eq!(a, b, "the same rows");
    }
    for db in [set_wise, per_institution] {
        assert!(db.store.verify().await.unwrap().ok());
        db.cleanup().await;
    }
}

/// Batches over several institutions at once, all or nothing and each its
/// own outcome, with a replay, refusals, a consumption, a release
/// instruction and its confirmation; each answer as text.
async fn mixed_batches(db: &TestDb) -> Vec<String> {
    let s = &db.store;
    county(s).await;
    for i in ["A", "B", "C"] {
        s.create_institution(&institution(i)).await.unwrap();
        s.create_enrollment(&enrollment(i, "E", 400_000))
            .await
            .unwrap();
    }
    let text = |r: Result<ledger_core::Entry, ledger_core::store::StoreError>| match r {
        Ok(e) => format!("{} {} {}", e.institution, e.seq, e.hash),
        Err(e) => format!("refused: {e}"),
    };
    let mut out = Vec::new();
    db.advance(60);
    let batch = s
        .execute_batch(vec![
            req("C", "p-c", pay("E", 400_000)),
            req("A", "p-a", pay("E", 200_000)),
            req("B", "p-b", pay("E", 100_000)),
            req("A", "c-a", consume("E", 4)),
        ])
        .await;
    out.extend(batch.unwrap().into_iter().map(|e| text(Ok(e))));
    db.advance(60);
    let refused = s
        .execute_batch(vec![
            req("B", "p-b2", pay("E", 1_000)),
            req("B", "c-b", consume("E", 400)),
        ])
        .await;
    out.push(text(
        refused.map(|_| unreachable!("all or nothing: one is refused")),
    ));
    db.advance(60);
    let release = |i: &str, id: &str| {
        req(
            i,
            id,
            Command::InstructRelease {
                amount: ledger_core::Amount::from_minor(5_000).unwrap(),
            },
        )
    };
    let each = s
        .execute_each(&[
            (req("A", "p-a", pay("E", 200_000)), None),
            (release("A", "r-a"), None),
            (req("B", "c-b2", consume("E", 2)), None),
            (req("C", "c-c", consume("E", 999)), None),
            (req("Z", "p-z", pay("E", 1)), None),
            (release("B", "r-b"), None),
        ])
        .await
        .unwrap();
    out.extend(each.into_iter().map(text));
    db.advance(60);
    let confirmed = s
        .execute(req(
            "A",
            "ok-r-a",
            Command::ConfirmPending {
                pending: cid("r-a"),
            },
        ))
        .await;
    out.push(text(confirmed));
    out
}

/// Awaits every task, propagating a panic from any of them.
async fn futures_join(
    handles: Vec<tokio::task::JoinHandle<()>>,
) -> impl std::future::Future<Output = ()> {
    async move {
        for h in handles {
            h.await.expect("writer task panicked");
        }
    }
}

#[tokio::test]
async fn every_institution_table_is_keyed_by_institution_first_and_never_spans_two() {
    let db = TestDb::new(Backend::Postgres).await;
    let Store::Postgres(pg) = &db.store else {
        unreachable!()
    };
    // Reference data: replicated to every node, not distributed.
    let reference: BTreeSet<&str> = [
        "jurisdictions",
        "rule_packs",
        // The count of rule-pack changes that kept rule packs are checked
        // against (one row, moved with `rule_packs`).
        "rule_pack_generation",
        "banks",
        "feed_files",
        // API access: tokens, the audit log, kept idempotent answers and the
        // claims on keys (keyed by caller, not by institution).
        "api_tokens",
        "audit_log",
        "idempotent_answers",
        "idempotent_claims",
        // The audit log's hash chain, and the one-time linking of records
        // written before the record chains.
        "audit_head",
        "audit_links",
        "record_backfill",
        "record_backfill_lessons",
        "record_backfill_approvals",
        // Scheduled job runs: deployment-wide, not any institution's.
        "job_runs",
        // Maker–checker requests and decisions: a jurisdiction's (a rule
        // pack is no institution's), few, read by officers across a tree.
        "approvals",
        "approval_claims",
        "approval_decisions",
        // The console's people: accounts, passwords, sign-in attempts and
        // sessions (keyed by login or session, not by institution).
        "officer_accounts",
        "officer_passwords",
        "sign_in_attempts",
        "console_sessions",
        "console_session_ends",
        // Rectification notices are numbered per jurisdiction and year (the
        // number is the key), their answers by notice.
        "rectification_notices",
        "rectification_answers",
        // The white and black lists: versions per jurisdiction.
        "list_changes",
        // Webhook subscriptions: a jurisdiction's or a platform's, scoped
        // like tokens (their deliveries are keyed by institution).
        "webhook_subscriptions",
        "_sqlx_migrations",
    ]
    .into();
    let tables: Vec<String> = sqlx::query_scalar(
        "select table_name::text from information_schema.tables \
         where table_schema = 'public' and table_type = 'BASE TABLE' order by 1",
    )
    .fetch_all(pg.pool())
    .await
    .unwrap();
    let mut checked = 0;
    for table in tables.iter().filter(|t| !reference.contains(t.as_str())) {
        // The primary key leads with institution_id.
        let pk: Vec<String> = sqlx::query_scalar(
            "select a.attname::text from pg_index i \
             join pg_attribute a on a.attrelid = i.indrelid and a.attnum = any(i.indkey) \
             where i.indrelid = $1::regclass and i.indisprimary \
             order by array_position(i.indkey::int2[], a.attnum)",
        )
        .bind(table)
        .fetch_all(pg.pool())
        .await
        .unwrap();
        assert_eq!(
            pk.first().map(String::as_str),
            Some("institution_id"),
            "{table} primary key {pk:?}"
        );
        // Every unique index includes institution_id (a distributed engine
        // can only enforce uniqueness within one shard).
        let uniques: Vec<String> = sqlx::query_scalar(
            "select c.relname::text from pg_index i join pg_class c on c.oid = i.indexrelid \
             where i.indrelid = $1::regclass and i.indisunique and not exists ( \
               select 1 from pg_attribute a where a.attrelid = i.indrelid \
                 and a.attnum = any(i.indkey) and a.attname = 'institution_id')",
        )
        .bind(table)
        .fetch_all(pg.pool())
        .await
        .unwrap();
        assert!(
            uniques.is_empty(),
            "{table}: unique indexes without institution_id: {uniques:?}"
        );
        // Foreign keys to other institution tables go through institution_id.
        let fks: Vec<(String, String, Vec<String>)> = sqlx::query_as(
            "select c.conname::text, c.confrelid::regclass::text, \
               array(select a.attname::text from unnest(c.conkey) k join pg_attribute a \
                     on a.attrelid = c.conrelid and a.attnum = k) \
             from pg_constraint c where c.contype = 'f' and c.conrelid = $1::regclass",
        )
        .bind(table)
        .fetch_all(pg.pool())
        .await
        .unwrap();
        for (name, target, columns) in fks {
            if reference.contains(target.as_str()) {
                continue;
            }
            assert!(
                columns.first().map(String::as_str) == Some("institution_id"),
                "{table}.{name} -> {target} does not lead with institution_id: {columns:?}"
            );
        }
        checked += 1;
    }
    assert!(
        checked >= 6,
        "only {checked} institution tables found: {tables:?}"
    );
    db.cleanup().await;
}
