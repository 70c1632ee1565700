//! Exactly once at the edge: concurrent repeats of every kind of POST act
//! once, and a repeat after a crash that lost the answer (the effect done,
//! the answer never kept) finds the first attempt's effect instead of
//! making a second.

use api::access::{Role, Scope};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::*;

fn row_count(counts: &[(String, i64)], table: &str) -> i64 {
    counts
        .iter()
        .find(|(t, _)| t == table)
        .map(|(_, n)| *n)
        .unwrap_or_else(|| panic!("{table} is not counted"))
}

/// The rows of the tables a POST may add to.
async fn effects(store: &ledger_core::Store) -> Vec<(String, i64)> {
    let mut out = counts(store).await;
    for t in [
        "refunds",
        "refund_events",
        "institution_events",
        "rule_packs",
    ] {
        let sql = format!("select cast(count(*) as bigint) from {t}");
        let n: i64 = match store {
            ledger_core::Store::Postgres(s) => {
                sqlx::query_scalar(&sql).fetch_one(s.pool()).await.unwrap()
            }
            ledger_core::Store::Sqlite(s) => {
                sqlx::query_scalar(&sql).fetch_one(s.pool()).await.unwrap()
            }
        };
        out.push((t.to_string(), n));
    }
    out
}

/// Sends the same POST under one key eight times at once, then once more
/// after they all answered; returns the answer every attempt agreed on.
async fn eight_at_once(server: &Server, token: &str, path: &str, key: &str, body: Value) -> Value {
    let mut sent = Vec::new();
    for _ in 0..8 {
        let r = server
            .request(Method::POST, Some(token), path)
            .header("Idempotency-Key", key)
            .json(&body);
        sent.push(tokio::spawn(send(r)));
    }
    let mut answers = Vec::new();
    for s in sent {
        let (status, body) = s.await.unwrap();
        if status == StatusCode::CONFLICT && body["code"] == "request_in_progress" {
            // Allowed by the contract: told to retry, nothing done.
            continue;
        }
        assert!(status.is_success(), "{path} {key}: {status} {body}");
        answers.push(body);
    }
    assert!(!answers.is_empty(), "{path}: no attempt answered");
    let (status, last) = server.post(token, path, key, body).await;
    assert!(status.is_success(), "{path}: {status} {last}");
    // A secret shown once (a new enrollment's family token) is shown to the
    // attempt that made it; every other attempt sees it redacted, as kept.
    let shown_once = |v: &Value| {
        let mut v = v.clone();
        if let Some(t) = v.get_mut("family_token") {
            assert!(t.is_string(), "{path}: {t}");
            *t = Value::Null;
        }
        v
    };
    let made = answers
        .iter()
        .filter(|a| {
            a["family_token"]
                .as_str()
                .is_some_and(|t| t.starts_with("el_"))
        })
        .count();
    assert!(made <= 1, "{path}: a secret shown more than once");
    for a in &answers {
        assert_eq!(
            shown_once(a),
            shown_once(&last),
            "{path}: the attempts answered differently"
        );
    }
    last
}

async fn every_post_acts_once_under_concurrent_repeats(backend: Backend) {
    let server = Server::start(backend).await;
    jurisdictions(&server.store).await;
    let institution = institution(&server.store, "INS-A", "410922").await;
    enrollment(&server.store, &institution, "E-1", 40, 400_000).await;
    let admin = server.admin().await;
    let officer = server
        .token(Role::Officer, Scope::Jurisdiction(code("410922")))
        .await;
    let platform = server
        .token(Role::Platform, Scope::Jurisdiction(code("410900")))
        .await;
    let school = server
        .token(Role::Institution, Scope::Institution(institution.clone()))
        .await;
    let (status, p) = send(
        server
            .request(Method::PUT, Some(&officer), "/v1/institutions/INS-A/payee")
            .json(&json!({"name": "INS-A", "account": "6222000000000009", "bank": "CMBCCNBS"})),
    )
    .await;
    // A new payee waits for a second officer.
    assert_eq!(status, StatusCode::ACCEPTED, "{p}");
    let checker = server.second_officer().await;
    let (status, done) = server
        .post(
            &checker,
            &format!("/v1/approvals/{}/approve", p["id"].as_str().unwrap()),
            "ok-payee",
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    // Putting the same payee on file again makes no new version.
    let payees = || async {
        let sql = "select cast(count(*) as bigint) from institution_payees";
        match &server.store {
            ledger_core::Store::Postgres(s) => sqlx::query_scalar::<_, i64>(sql)
                .fetch_one(s.pool())
                .await
                .unwrap(),
            ledger_core::Store::Sqlite(s) => sqlx::query_scalar::<_, i64>(sql)
                .fetch_one(s.pool())
                .await
                .unwrap(),
        }
    };
    let versions = payees().await;
    let (status, p) = send(
        server
            .request(Method::PUT, Some(&officer), "/v1/institutions/INS-A/payee")
            .json(&json!({"name": "INS-A", "account": "6222000000000009", "bank": "CMBCCNBS"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{p}");
    assert_eq!(payees().await, versions, "a repeated PUT is no change");

    // (token, path, key, body, table, rows one effect adds)
    let cases: Vec<(&str, &str, &str, Value, &str, i64)> = vec![
        (
            &admin,
            "/v1/jurisdictions",
            "j-1",
            json!({"code": "410923", "name": "Nanle", "parent": "410900"}),
            "jurisdictions",
            1,
        ),
        (
            &officer,
            "/v1/institutions",
            "i-1",
            json!({"id": "INS-B", "name": "B school", "licence_no": "L-B", "jurisdiction": "410922",
                "mode": "custody", "category": "subject"}),
            "institutions",
            1,
        ),
        (
            &officer,
            "/v1/jurisdictions/410922/rule-packs",
            "rp-1",
            json!({"version": 1, "effective_from": "2026-09-01", "params": {}}),
            "rule_packs",
            1,
        ),
        (
            &school,
            "/v1/institutions/INS-A/enrollments",
            "e-2",
            json!({"id": "E-2", "student_ref": "S-2", "hours_bought": 10, "price": "1000.00",
                "course_start": "2026-09-01", "course_end": "2026-11-30"}),
            "enrollments",
            1,
        ),
        // No occurred_at: the server fills it in once, at acceptance.
        (
            &platform,
            "/v1/institutions/INS-A/payments",
            "p-1",
            json!({"enrollment": "E-1", "amount": "4000.00"}),
            "entries",
            1,
        ),
        (
            &platform,
            "/v1/institutions/INS-A/consumptions",
            "c-1",
            json!({"enrollment": "E-1", "hours": 10}),
            "entries",
            1,
        ),
        (
            &platform,
            "/v1/batches",
            "b-1",
            json!({"items": [
             {"institution": "INS-A", "client_id": "b-1-a", "op": "pay_tuition", "enrollment": "E-2",
              "amount": "500.00", "occurred_at": "2026-09-05T08:00:00Z"},
             {"institution": "INS-A", "client_id": "b-1-b", "op": "consume_lessons", "enrollment": "E-2",
              "hours": 1, "occurred_at": "2026-09-05T09:00:00Z"}]}),
            "entries",
            2,
        ),
        (
            &officer,
            "/v1/institutions/INS-A/releases",
            "rel-1",
            json!({"amount": "100.00"}),
            "approvals",
            1,
        ),
        (
            &school,
            "/v1/institutions/INS-A/refunds",
            "rf-1",
            json!({"enrollment": "E-1", "amount": "200.00",
                "payee": {"name": "Zhang San", "account": "6214830100123456", "bank": "CMBCCNBS"}}),
            "refunds",
            1,
        ),
        (
            &officer,
            "/v1/institutions/INS-A/events",
            "ev-1",
            json!({"kind": "legal_representative_change", "occurred_on": "2026-09-10"}),
            "institution_events",
            1,
        ),
    ];
    let mut refund_id = None;
    for (token, path, key, body, table, rows) in cases {
        let before = effects(&server.store).await;
        let answer = eight_at_once(&server, token, path, key, body).await;
        let after = effects(&server.store).await;
        assert_eq!(
            row_count(&after, table) - row_count(&before, table),
            rows,
            "{path}: eight attempts under one key"
        );
        if table == "refunds" {
            refund_id = answer["id"].as_str().map(str::to_string);
        }
    }

    // A decision repeated at once is taken once.
    let refund = refund_id.expect("the refund's id");
    let before = effects(&server.store).await;
    let approved = eight_at_once(
        &server,
        &officer,
        &format!("/v1/refunds/{refund}/approve"),
        "ap-1",
        json!({"comment": "checked"}),
    )
    .await;
    assert_eq!(approved["state"], "instructed", "{approved}");
    let after = effects(&server.store).await;
    let steps = approved["history"].as_array().unwrap().len() as i64;
    assert_eq!(
        row_count(&after, "refund_events") - row_count(&before, "refund_events"),
        steps - 1,
        "one decision and what follows it, once"
    );
    // Every answer given is in the audit log: the first with its kept
    // answer (one transaction), each repeat on its own.
    let log = server.store.audit_log(0, 10_000).await.unwrap();
    for path in [
        "/v1/jurisdictions",
        "/v1/institutions/INS-A/payments",
        "/v1/batches",
    ] {
        let ok = log
            .iter()
            .filter(|(_, _, r)| r.path == path && r.status < 300 && r.outcome == "ok")
            .count();
        assert!(ok >= 2, "{path}: {ok} audit records of answers given");
    }
    let report = server.store.verify().await.unwrap();
    assert!(report.ok(), "{report:?}");
    server.stop().await;
}
both!(every_post_acts_once_under_concurrent_repeats);

/// Puts the database in the state a crash between a request's effect and
/// its kept answer leaves: the effect committed, the claim on the key still
/// held by the dead attempt (its lease now run out), no answer kept. It
/// goes past the append-only trigger on kept answers, as only a test may.
async fn lose_the_answer(store: &ledger_core::Store, key: &str) {
    let delete = "delete from idempotent_answers where idem_key = $1";
    let expire = "update idempotent_claims set lease_until = accepted_at where idem_key = $1";
    // Past the trigger: PostgreSQL by replication role, SQLite by dropping
    // it (the test's database is thrown away afterwards).
    let bypass = match store {
        ledger_core::Store::Postgres(_) => "set local session_replication_role = replica",
        ledger_core::Store::Sqlite(_) => "drop trigger if exists idempotent_answers_no_delete",
    };
    macro_rules! lose {
        ($pool:expr) => {{
            let mut tx = $pool.begin().await.unwrap();
            sqlx::query(bypass).execute(&mut *tx).await.unwrap();
            sqlx::query(delete)
                .bind(key)
                .execute(&mut *tx)
                .await
                .unwrap();
            let n = sqlx::query(expire)
                .bind(key)
                .execute(&mut *tx)
                .await
                .unwrap()
                .rows_affected();
            tx.commit().await.unwrap();
            n
        }};
    }
    let expired = match store {
        ledger_core::Store::Postgres(s) => lose!(s.pool()),
        ledger_core::Store::Sqlite(s) => lose!(s.pool()),
    };
    assert_eq!(expired, 1, "the first attempt's claim on {key}");
}

async fn a_retry_after_a_lost_answer_finds_the_first_effect(backend: Backend) {
    let server = Server::start(backend).await;
    jurisdictions(&server.store).await;
    let institution = institution(&server.store, "INS-A", "410922").await;
    enrollment(&server.store, &institution, "E-1", 40, 400_000).await;
    pay(&server.store, &institution, "E-1", "seed", 400_000).await;
    let school = server
        .token(Role::Institution, Scope::Institution(institution.clone()))
        .await;
    let platform = server
        .token(Role::Platform, Scope::Jurisdiction(code("410900")))
        .await;
    let officer = server
        .token(Role::Officer, Scope::Jurisdiction(code("410922")))
        .await;
    let cases: Vec<(&str, &str, &str, Value, &str)> = vec![
        (
            &school,
            "/v1/institutions/INS-A/refunds",
            "lost-rf",
            json!({"enrollment": "E-1", "payee": {"name": "Li Si", "account": "6222020200112233445", "bank": "ICBKCNBJ"}}),
            "refunds",
        ),
        // occurred_at left to the server: the retry must not see a
        // different instant and call it a different request.
        (
            &platform,
            "/v1/institutions/INS-A/consumptions",
            "lost-c",
            json!({"enrollment": "E-1", "hours": 2}),
            "entries",
        ),
        (
            &officer,
            "/v1/institutions/INS-A/events",
            "lost-ev",
            json!({"kind": "closure_notice", "occurred_on": "2026-10-01", "note": "posted on the door"}),
            "institution_events",
        ),
    ];
    for (token, path, key, body, table) in cases {
        let (status, first) = server.post(token, path, key, body.clone()).await;
        assert_eq!(status, StatusCode::CREATED, "{path}: {first}");
        let before = effects(&server.store).await;
        lose_the_answer(&server.store, key).await;
        let (status, again) = server.post(token, path, key, body).await;
        assert_eq!(status, StatusCode::CREATED, "{path}: {again}");
        assert_eq!(
            again, first,
            "{path}: the retry must answer as the first did"
        );
        let after = effects(&server.store).await;
        assert_eq!(
            row_count(&after, table),
            row_count(&before, table),
            "{path}: the retry made a second {table} row"
        );
    }
    let report = server.store.verify().await.unwrap();
    assert!(report.ok(), "{report:?}");
    server.stop().await;
}
both!(a_retry_after_a_lost_answer_finds_the_first_effect);

/// Runs one statement on the test's database, past the service.
async fn run_sql(store: &ledger_core::Store, sql: &str, key: &str) -> u64 {
    match store {
        ledger_core::Store::Postgres(s) => sqlx::query(sql)
            .bind(key)
            .execute(s.pool())
            .await
            .unwrap()
            .rows_affected(),
        ledger_core::Store::Sqlite(s) => sqlx::query(sql)
            .bind(key)
            .execute(s.pool())
            .await
            .unwrap()
            .rows_affected(),
    }
}

/// A key is claimed in one statement when seen for the first time, and its
/// kept answer is looked for only when it was claimed before: a repeat long
/// after the first answer (the claim's lease run out, so the repeat takes
/// the claim over) must still get that answer and act no more, also for a
/// write no ledger key would catch a second time (an institution event).
async fn a_repeat_after_the_claims_lease_ran_out_gets_the_kept_answer(backend: Backend) {
    let server = Server::start(backend).await;
    jurisdictions(&server.store).await;
    let institution = institution(&server.store, "INS-A", "410922").await;
    enrollment(&server.store, &institution, "E-1", 40, 400_000).await;
    let officer = server
        .token(Role::Officer, Scope::Jurisdiction(code("410922")))
        .await;
    let admin = server.admin().await;
    let cases: Vec<(&str, &str, &str, Value, &str)> = vec![
        (
            &officer,
            "/v1/institutions/INS-A/events",
            "late-ev",
            json!({"kind": "closure_notice", "occurred_on": "2026-10-01", "note": "posted on the door"}),
            "institution_events",
        ),
        (
            &admin,
            "/v1/institutions/INS-A/payments",
            "late-pay",
            json!({"enrollment": "E-1", "amount": "100.00"}),
            "entries",
        ),
    ];
    for (token, path, key, body, table) in cases {
        let (status, first) = server.post(token, path, key, body.clone()).await;
        assert_eq!(status, StatusCode::CREATED, "{path}: {first}");
        let before = effects(&server.store).await;
        let expire = "update idempotent_claims set lease_until = accepted_at where idem_key = $1";
        assert_eq!(
            run_sql(&server.store, expire, key).await,
            1,
            "{key}'s claim"
        );
        let r = server
            .request(Method::POST, Some(token), path)
            .header("Idempotency-Key", key)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.headers().get("idempotent-replayed").map(|v| v.as_bytes()),
            Some(&b"true"[..]),
            "{path}: the kept answer, not a second run of the handler"
        );
        let status = r.status();
        let again: Value = r.json().await.unwrap();
        assert_eq!(status, StatusCode::CREATED, "{path}: {again}");
        assert_eq!(again, first, "{path}: the repeat answers as the first did");
        let after = effects(&server.store).await;
        assert_eq!(
            row_count(&after, table),
            row_count(&before, table),
            "{path}: the repeat acted a second time"
        );
        // The key stays bound to its first request.
        let mut other = body.clone();
        other["note"] = json!("another request");
        other["amount"] = json!("1.00");
        let (status, refused) = server.post(token, path, key, other).await;
        assert_eq!(status, StatusCode::CONFLICT, "{path}: {refused}");
        assert_eq!(refused["code"], "idempotency_key_reused", "{refused}");
    }
    let report = server.store.verify().await.unwrap();
    assert!(report.ok(), "{report:?}");
    server.stop().await;
}
both!(a_repeat_after_the_claims_lease_ran_out_gets_the_kept_answer);
