//! Ready to shard by institution (deploy/citus/): the statements the hot
//! path runs — a payment posted over HTTP, the balances and the entries
//! read, a batch over two institutions — are captured from a real
//! PostgreSQL (a scratch cluster with `pg_stat_statements`), and each one
//! that touches a distributed table (one whose primary key leads with
//! `institution_id`) must filter one institution by equality
//! (`institution_id = $n`), or insert rows of the one institution bound as
//! a parameter, so that Citus routes it to one shard; the reads' generic
//! plans must find that institution through an index. There are no
//! exceptions: a statement of any other shape fails.
//!
//! The service is told to write as on a sharded server
//! (`ESCROW_BATCH_STATEMENTS=per-institution`, what it picks by itself
//! where the `citus` extension is installed); on one server a batch over
//! several institutions is written set-wise, statements the rule does not
//! allow.

use std::collections::BTreeSet;
use std::time::Duration;

use sqlx::{Connection, Executor, PgConnection};

use crate::replica::Pair;
use crate::{run, serve, stderr};

const INSTITUTION: &str = "INS-410922-001";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hot_statements_filter_one_institution_by_equality_through_its_index() {
    let mut pg = Pair::new();
    pg.init_primary();
    pg.start(
        "primary",
        pg.primary_port,
        "-c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=all",
    );
    let mut admin = PgConnection::connect(&pg.primary("postgres"))
        .await
        .unwrap();
    admin.execute("create database escrow").await.unwrap();
    let url = pg.primary("escrow");
    let mut db = PgConnection::connect(&url).await.unwrap();
    db.execute("create extension pg_stat_statements")
        .await
        .unwrap();
    let out = run(&["--database-url", &url, "demo"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let token_for = |role: &str| crate::demo_token(&url, role);
    let (platform, officer) = (token_for("platform"), token_for("officer"));
    let served = serve(
        &["--database-url", &url, "serve", "--listen", "127.0.0.1:0"],
        &[("ESCROW_BATCH_STATEMENTS", "per-institution")],
    );
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let base = format!("http://{}/v1/institutions/{INSTITUTION}", served.addr);
    let enrolled = client
        .post(format!("{base}/enrollments"))
        .bearer_auth(&platform)
        .header("Idempotency-Key", "citus-enr")
        .json(&serde_json::json!({"id": "E-CITUS", "student_ref": "S-C",
            "hours_bought": 40, "price": "4000.00",
            "course_start": "2026-09-01", "course_end": "2026-11-30"}))
        .send()
        .await
        .unwrap();
    assert_eq!(enrolled.status(), reqwest::StatusCode::CREATED);
    let other = format!("http://{}/v1/institutions/INS-410922-002", served.addr);
    let enrolled = client
        .post(format!("{other}/enrollments"))
        .bearer_auth(&platform)
        .header("Idempotency-Key", "citus-enr-2")
        .json(
            &serde_json::json!({"id": "E-CITUS-2", "student_ref": "S-C2",
            "hours_bought": 40, "price": "4000.00",
            "course_start": "2026-09-01", "course_end": "2026-11-30"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(enrolled.status(), reqwest::StatusCode::CREATED);
    // From here on: the hot path only.
    db.execute("select pg_stat_statements_reset()")
        .await
        .unwrap();
    for n in 0..3 {
        let paid = client
            .post(format!("{base}/payments"))
            .bearer_auth(&platform)
            .header("Idempotency-Key", format!("citus-pay-{n}"))
            .json(&serde_json::json!({"enrollment": "E-CITUS", "amount": "100.00"}))
            .send()
            .await
            .unwrap();
        assert_eq!(paid.status(), reqwest::StatusCode::CREATED);
        for read in ["balances", "entries"] {
            let r = client
                .get(format!("{base}/{read}"))
                .bearer_auth(&officer)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), reqwest::StatusCode::OK);
        }
    }
    // A batch over two institutions (a feed job's), which one server
    // writes set-wise but for the setting.
    let batch = client
        .post(format!("http://{}/v1/batches", served.addr))
        .bearer_auth(&platform)
        .header("Idempotency-Key", "citus-batch")
        .json(&serde_json::json!({"items": [
            {"institution": INSTITUTION, "client_id": "citus-b1", "op": "pay_tuition",
             "enrollment": "E-CITUS", "amount": "1.00", "occurred_at": "2026-09-01T10:00:00Z"},
            {"institution": "INS-410922-002", "client_id": "citus-b2", "op": "pay_tuition",
             "enrollment": "E-CITUS-2", "amount": "1.00", "occurred_at": "2026-09-01T10:00:00Z"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        batch.status(),
        reqwest::StatusCode::CREATED,
        "{:?}",
        batch.text().await
    );
    assert!(served.terminate().success());

    let distributed: BTreeSet<String> = sqlx::query_scalar(
        "select c.relname::text from pg_index i join pg_class c on c.oid = i.indrelid \
         join pg_attribute a on a.attrelid = i.indrelid and a.attnum = i.indkey[0] \
         join pg_namespace n on n.oid = c.relnamespace \
         where i.indisprimary and n.nspname = 'public' and a.attname = 'institution_id'",
    )
    .fetch_all(&mut db)
    .await
    .unwrap()
    .into_iter()
    .collect();
    let statements: Vec<String> = sqlx::query_scalar(
        "select query from pg_stat_statements s join pg_database d on d.oid = s.dbid \
         where d.datname = 'escrow' order by query",
    )
    .fetch_all(&mut db)
    .await
    .unwrap();
    let mut routed = Vec::new();
    for statement in &statements {
        let lower = statement.to_lowercase();
        let touched: Vec<&str> = distributed
            .iter()
            .map(String::as_str)
            .filter(|t| {
                lower
                    .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .any(|w| w == *t)
            })
            .collect();
        if touched.is_empty() {
            continue;
        }
        assert!(
            filters_one_institution(&lower) || inserts_for_one_institution(&lower),
            "{touched:?} without an equality on institution_id: Citus would send it to \
             every shard (or refuse it):\n{statement}"
        );
        routed.push(statement.clone());
    }
    eprintln!("{} statements, each routed to one shard", routed.len());
    assert!(
        routed.len() >= 5,
        "the hot path ran too few statements to judge: {statements:#?}"
    );

    // The reads among them find their institution through an index: the
    // generic plan (what a prepared statement runs with any institution),
    // sequential scans discouraged, shows an index condition on
    // institution_id for every scan of a distributed table.
    db.execute("set plan_cache_mode = force_generic_plan")
        .await
        .unwrap();
    db.execute("set enable_seqscan = off").await.unwrap();
    let mut explained = 0;
    for statement in routed
        .iter()
        .filter(|s| s.trim_start().to_lowercase().starts_with("select"))
    {
        db.execute(format!("prepare hot as {statement}").as_str())
            .await
            .unwrap_or_else(|e| panic!("cannot prepare {statement}: {e}"));
        let params: i32 = sqlx::query_scalar(
            "select coalesce(array_length(parameter_types, 1), 0) from pg_prepared_statements \
             where name = 'hot'",
        )
        .fetch_one(&mut db)
        .await
        .unwrap();
        let nulls = vec!["null"; usize::try_from(params).unwrap()].join(", ");
        let execute = if params == 0 {
            "explain execute hot".to_string()
        } else {
            format!("explain execute hot({nulls})")
        };
        let plan: Vec<String> = sqlx::query_scalar(&execute)
            .fetch_all(&mut db)
            .await
            .unwrap_or_else(|e| panic!("cannot explain {statement}: {e}"));
        db.execute("deallocate hot").await.unwrap();
        let plan = plan.join("\n");
        for line in plan.lines().filter(|l| l.contains("Scan")) {
            let Some(table) = distributed
                .iter()
                .find(|t| line.contains(&format!(" on {t}")))
            else {
                continue;
            };
            assert!(
                !line.contains("Seq Scan"),
                "{table} is scanned whole:\n{statement}\n{plan}"
            );
        }
        assert!(
            plan.contains("institution_id = $"),
            "no index condition on institution_id:\n{statement}\n{plan}"
        );
        explained += 1;
    }
    assert!(explained >= 3, "too few reads explained: {routed:#?}");
    db.close().await.unwrap();
    admin.close().await.unwrap();
}

/// `institution_id = $n` (as written, or as PostgreSQL's foreign-key
/// checks spell it): one institution, by equality, from a parameter.
fn filters_one_institution(lower: &str) -> bool {
    let mut rest = lower;
    while let Some(at) = rest.find("institution_id") {
        let after = rest[at + "institution_id".len()..]
            .trim_start_matches('"')
            .trim_start();
        let after = after
            .strip_prefix("operator(pg_catalog.=)")
            .or_else(|| after.strip_prefix('='))
            .map(str::trim_start);
        if after.is_some_and(|a| a.starts_with('$')) {
            return true;
        }
        rest = &rest[at + 1..];
    }
    false
}

/// `insert into t (institution_id, …) values ($n, …)` or `… select $n,
/// …`: every row the statement inserts is of the one institution bound at
/// `$n`, so Citus writes it to that institution's shard.
fn inserts_for_one_institution(lower: &str) -> bool {
    let Some(rest) = lower.trim_start().strip_prefix("insert into") else {
        return false;
    };
    let Some((_, columns)) = rest.split_once('(') else {
        return false;
    };
    if !columns.trim_start().starts_with("institution_id") {
        return false;
    }
    let Some((_, rows)) = columns.split_once(')') else {
        return false;
    };
    let rows = rows.trim_start();
    let first = if let Some(values) = rows.strip_prefix("values") {
        values.trim_start().strip_prefix('(')
    } else {
        rows.strip_prefix("select")
    };
    let Some(first) = first.map(str::trim_start) else {
        return false;
    };
    if !first.starts_with('$') {
        return false;
    }
    // A multi-row `values` whose rows bind different institutions would
    // span shards: each row's first value must be that same parameter.
    let first_of = |row: &str| -> String {
        row.trim_start()
            .trim_start_matches("values")
            .trim_start()
            .trim_start_matches('(')
            .chars()
            .take_while(|c| !matches!(c, ',' | ')'))
            .collect::<String>()
            .trim()
            .to_string()
    };
    let param = first_of(first);
    !rows.starts_with("values") || rows.split("),").all(|row| first_of(row) == param)
}

#[test]
fn the_insert_rule_accepts_one_institution_and_refuses_a_mix() {
    assert!(inserts_for_one_institution(
        "insert into entries (institution_id, seq) select $1, * from unnest($2::bigint[])"
    ));
    assert!(inserts_for_one_institution(
        "insert into outbox (institution_id, instruction_id) values ($1, $2)"
    ));
    assert!(inserts_for_one_institution(
        "insert into lessons (institution_id, id) values ($1, $2), ($1, $3)"
    ));
    assert!(!inserts_for_one_institution(
        "insert into lessons (institution_id, id) values ($1, $2), ($3, $4)"
    ));
    assert!(!inserts_for_one_institution(
        "insert into entries (institution_id, seq) select * from unnest($1::text[], $2::bigint[])"
    ));
    assert!(!inserts_for_one_institution(
        "insert into entries (seq, institution_id) values ($1, $2)"
    ));
}
