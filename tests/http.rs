//! The HTTP service end to end: a real server on 127.0.0.1:0, a real
//! database (both backends), a real HTTP client.

#[path = "support/scratch_pg.rs"]
mod scratch_pg;
#[macro_use]
#[path = "http/support.rs"]
mod support;

use api::access::{Role, Scope};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use support::*;

const CNY_STATEMENT: &[u8] =
    include_bytes!("../crates/bank-adapter/tests/fixtures/mt940/chinese_cny.sta");

/// One county with one institution, its enrollment and the tokens of each
/// role scoped to it.
struct County {
    admin: String,
    officer: String,
    platform: String,
    school: String,
    institution: ledger_core::InstitutionId,
}

async fn county(server: &Server) -> County {
    jurisdictions(&server.store).await;
    let institution = institution(&server.store, "INS-A", "410922").await;
    enrollment(&server.store, &institution, "E-1", 40, 400_000).await;
    County {
        admin: server.admin().await,
        officer: server
            .token(Role::Officer, Scope::Jurisdiction(code("410922")))
            .await,
        platform: server
            .token(Role::Platform, Scope::Jurisdiction(code("410900")))
            .await,
        school: server
            .token(Role::Institution, Scope::Institution(institution.clone()))
            .await,
        institution,
    }
}

async fn operations_answer(backend: Backend) {
    let server = Server::start(backend).await;
    let c = county(&server).await;
    let (status, body) = send(server.request(Method::GET, None, "/healthz")).await;
    assert_eq!((status, body), (StatusCode::OK, json!("ok\n")));
    let (status, _) = send(server.request(Method::GET, None, "/readyz")).await;
    assert_eq!(status, StatusCode::OK);

    // Requests are counted by route template, never by raw path.
    let (status, _) = server
        .get(&c.officer, "/v1/institutions/INS-A/balances")
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, metrics) = send(server.request(Method::GET, None, "/metrics")).await;
    let metrics = metrics.as_str().unwrap().to_string();
    assert!(
        metrics.contains(r#"http_requests_total{route="/v1/institutions/{id}/balances",method="GET",status="200"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains("http_request_duration_seconds_bucket{route=\"/v1/institutions/{id}/balances\",method=\"GET\",le=\"+Inf\"} 1"));
    assert!(metrics.contains("open_alerts{severity=\"red\"} 0"));
    assert!(metrics.contains("ledger_entries_posted_total 0"));

    // The document lists every /v1 route the router serves.
    let (status, doc) = send(server.request(Method::GET, None, "/openapi.json")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths: Vec<&str> = doc["paths"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for p in [
        "/v1/jurisdictions",
        "/v1/jurisdictions/{code}/overview",
        "/v1/jurisdictions/{code}/risk",
        "/v1/institutions",
        "/v1/institutions/{id}",
        "/v1/institutions/{id}/balances",
        "/v1/institutions/{id}/entries",
        "/v1/institutions/{id}/enrollments",
        "/v1/institutions/{id}/payments",
        "/v1/institutions/{id}/consumptions",
        "/v1/batches",
        "/v1/feeds",
        "/v1/banks/{bank}/notifications",
        "/v1/alerts",
        "/v1/institutions/{id}/reconciliation",
        "/v1/institutions/{id}/reconciliation/days",
        "/v1/institutions/{id}/suggestions",
        "/v1/jurisdictions/{code}/rule-packs",
        "/v1/refunds/{id}",
        "/v1/approvals",
        "/v1/approvals/{id}",
        "/v1/approvals/{id}/approve",
        "/v1/approvals/{id}/reject",
        "/v1/institutions/{id}/alerts/{key}",
        "/v1/institutions/{id}/alerts/{key}/actions",
        "/v1/institutions/{id}/journal",
    ] {
        assert!(paths.contains(&p), "{p} missing from {paths:?}");
    }
    // Every schema a response names exists.
    let text = doc.to_string();
    for reference in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
        let name = reference.split('"').next().unwrap();
        assert!(
            doc["components"]["schemas"].get(name).is_some(),
            "schema {name} missing"
        );
    }
    // Reconciliation and risk answers are described field by field: no
    // schema they reach is a free-form object.
    for root in ["Reconciliation", "RecordedDays", "Suggestion", "RiskList"] {
        typed_all_the_way_down(&doc, root);
    }
    // /docs is Swagger UI, every file of it served from the binary and
    // pointed at this document.
    let (status, page) = send(server.request(Method::GET, None, "/docs")).await;
    assert_eq!(status, StatusCode::OK);
    let page = page.as_str().unwrap();
    assert!(page.contains("swagger-ui"), "{page}");
    assert!(!page.contains("https://"), "nothing fetched from elsewhere");
    for (file, kind) in [
        ("swagger-ui.css", "text/css"),
        ("swagger-ui-bundle.js", "javascript"),
        ("swagger-ui-standalone-preset.js", "javascript"),
        ("swagger-initializer.js", "javascript"),
    ] {
        let r = server
            .request(Method::GET, None, &format!("/docs/{file}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{file}");
        let ty = r.headers()["content-type"].to_str().unwrap().to_string();
        assert!(ty.contains(kind), "{file}: {ty}");
        let text = r.text().await.unwrap();
        assert!(text.len() > 100, "{file}");
        if file == "swagger-initializer.js" {
            assert!(text.contains("\"/openapi.json\""), "{text}");
            assert!(text.contains("\"validatorUrl\": \"none\""), "{text}");
        }
    }
    // The plain reference keeps every operation on one page.
    let (status, page) = send(server.request(Method::GET, None, "/docs/reference")).await;
    assert_eq!(status, StatusCode::OK);
    let page = page.as_str().unwrap();
    assert!(page.contains("/v1/institutions/{id}/balances"));
    // Every operation that takes a body shows it, field by field.
    let with_body = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|item| item.as_object().unwrap().values())
        .filter(|op| op.get("requestBody").is_some())
        .count();
    assert!(with_body >= 20, "{with_body}");
    assert_eq!(page.matches("<b>Request body</b>").count(), with_body);
    let approve = page
        .split("<code>/v1/approvals/{id}/reject</code>")
        .nth(1)
        .unwrap();
    let approve = approve.split("<h3>").next().unwrap();
    assert!(
        approve.contains("<td><code>reason</code></td>"),
        "the reject body's fields: {approve}"
    );
    assert!(page.contains("id=\"schema-ApprovalAnswer\""));

    let (status, body) = send(server.request(Method::GET, None, "/v2/nothing")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["code"], "no_such_route");
    server.stop().await;
}

/// Fails on any schema reachable from `root` that says nothing of its
/// fields (`{}` or a bare `{"type": "object"}`), e.g. a `serde_json::Value`.
fn typed_all_the_way_down(doc: &serde_json::Value, root: &str) {
    let schemas = &doc["components"]["schemas"];
    let mut todo = vec![(root.to_string(), schemas[root].clone())];
    let mut seen = std::collections::BTreeSet::new();
    while let Some((at, node)) = todo.pop() {
        if let Some(name) = node["$ref"].as_str() {
            let name = name.trim_start_matches("#/components/schemas/").to_string();
            if seen.insert(name.clone()) {
                assert!(schemas.get(&name).is_some(), "{at}: {name} missing");
                todo.push((name.clone(), schemas[&name].clone()));
            }
            continue;
        }
        let object = node.as_object().unwrap_or_else(|| panic!("{at}: {node}"));
        let composed = ["oneOf", "allOf", "anyOf"]
            .iter()
            .any(|k| object.contains_key(*k));
        let typed = object.contains_key("type") || composed;
        assert!(typed, "{at} says nothing of its shape: {node}");
        let is_object = node["type"] == "object"
            || node["type"]
                .as_array()
                .is_some_and(|t| t.contains(&json!("object")));
        if is_object && !composed {
            assert!(
                object.contains_key("properties"),
                "{at} is a free-form object: {node}"
            );
        }
        for (field, inner) in object
            .get("properties")
            .and_then(|p| p.as_object())
            .into_iter()
            .flatten()
        {
            todo.push((format!("{at}.{field}"), inner.clone()));
        }
        if let Some(items) = object.get("items") {
            todo.push((format!("{at}[]"), items.clone()));
        }
        for k in ["oneOf", "allOf", "anyOf"] {
            for (n, inner) in object
                .get(k)
                .and_then(|v| v.as_array())
                .into_iter()
                .flatten()
                .enumerate()
            {
                todo.push((format!("{at}/{k}{n}"), inner.clone()));
            }
        }
    }
}
both!(operations_answer);

#[tokio::test]
async fn a_request_that_takes_too_long_is_cut_off() {
    let server = Server::start_with(
        Backend::Sqlite,
        api::http::Config {
            request_timeout: std::time::Duration::from_millis(1),
            ..Default::default()
        },
        true,
    )
    .await;
    api::demo::build(&server.store).await.unwrap();
    let officer = server.admin().await;
    let (status, _) = server
        .get(&officer, "/v1/jurisdictions/410922/risk?as_of=2026-11-07")
        .await;
    assert_eq!(status, StatusCode::REQUEST_TIMEOUT);
    // It says so as a problem, like every refusal.
    let response = server
        .request(
            Method::GET,
            Some(&officer),
            "/v1/jurisdictions/410922/risk?as_of=2026-11-07",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let p: Value = response.json().await.unwrap();
    assert_eq!(p["code"], "request_timeout", "{p}");
    server.stop().await;
}

#[tokio::test]
async fn not_ready_until_migrated() {
    let server = Server::start_with(Backend::Sqlite, Default::default(), false).await;
    let (status, body) = send(server.request(Method::GET, None, "/readyz")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        body.as_str().unwrap().contains("migrations not applied"),
        "{body}"
    );
    server.store.migrate().await.unwrap();
    let (status, _) = send(server.request(Method::GET, None, "/readyz")).await;
    assert_eq!(status, StatusCode::OK);
    server.stop().await;
}

async fn tokens_are_checked_and_revocable(backend: Backend) {
    // Tokens checked on every request (no cache): a revocation is seen at
    // once. With the cache, see `a_revoked_token_stops_working_within_the_cache_bound`.
    let server = Server::start_with(
        backend,
        api::http::Config {
            token_cache: std::time::Duration::ZERO,
            ..Default::default()
        },
        true,
    )
    .await;
    let c = county(&server).await;
    let path = "/v1/institutions/INS-A";
    let (status, body) = send(server.request(Method::GET, None, path)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["code"], "unauthorized");
    let (status, _) = send(server.request(Method::GET, Some("el_nope_nope"), path)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = server.get(&c.officer, path).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["name"], "INS-A School");

    let id = c.officer.split('_').nth(1).unwrap();
    assert!(server.store.revoke_token(id).await.unwrap());
    let (status, body) = server.get(&c.officer, path).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        body["detail"].as_str().unwrap().contains("revoked"),
        "{body}"
    );

    // Mutating requests are audited whatever their outcome, with who.
    let (status, _) = server
        .post(
            &c.officer,
            "/v1/institutions/INS-A/payments",
            "k-1",
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = server
        .post(
            &c.school,
            "/v1/institutions/INS-A/lessons",
            "k-2",
            json!({"enrollment": "E-1", "hours": 0, "occurred_on": "2026-09-10"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let log = server.store.audit_log(0, 100).await.unwrap();
    let outcomes: Vec<_> = log
        .iter()
        .map(|(_, _, r)| {
            (
                r.method.as_str(),
                r.path.as_str(),
                r.status,
                r.outcome.as_str(),
                r.role.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        vec![
            (
                "POST",
                "/v1/institutions/INS-A/payments",
                401,
                "unauthorized",
                None
            ),
            (
                "POST",
                "/v1/institutions/INS-A/lessons",
                422,
                "hours_must_be_positive",
                Some("institution")
            ),
        ]
    );
    assert!(log.iter().all(|(_, _, r)| !r.request_id.is_empty()));
    // Admins read it over HTTP too, a page at a time; nobody else does.
    let (status, page) = server.get(&c.admin, "/v1/audit?limit=1").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["items"][0]["outcome"], "unauthorized");
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, rest) = server
        .get(&c.admin, &format!("/v1/audit?cursor={cursor}"))
        .await;
    assert_eq!(rest["items"][0]["role"], "institution");
    assert_eq!(rest["next_cursor"], Value::Null);
    let (status, _) = server.get(&c.school, "/v1/audit").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    server.stop().await;
}
both!(tokens_are_checked_and_revocable);

/// A verified token is trusted for `token_cache` at most: revoked, it may
/// still open a request within that bound, and never after it.
async fn a_revoked_token_stops_working_within_the_cache_bound(backend: Backend) {
    let bound = std::time::Duration::from_millis(1500);
    let server = Server::start_with(
        backend,
        api::http::Config {
            token_cache: bound,
            ..Default::default()
        },
        true,
    )
    .await;
    let c = county(&server).await;
    let path = "/v1/institutions/INS-A";
    let (status, _) = server.get(&c.officer, path).await;
    assert_eq!(status, StatusCode::OK);
    let id = c.officer.split('_').nth(1).unwrap();
    assert!(server.store.revoke_token(id).await.unwrap());
    let revoked = std::time::Instant::now();
    // Within the bound the cached verification stands (no database
    // round trip): the cache is in use.
    let (status, _) = server.get(&c.officer, path).await;
    if revoked.elapsed() < bound / 2 {
        assert_eq!(status, StatusCode::OK);
    }
    // Past the bound it is refused, and stays refused.
    let rest = bound.saturating_sub(revoked.elapsed()) + std::time::Duration::from_millis(50);
    tokio::time::sleep(rest).await;
    for _ in 0..3 {
        let (status, body) = server.get(&c.officer, path).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert!(
            body["detail"].as_str().unwrap().contains("revoked"),
            "{body}"
        );
    }
    // An unknown token is never cached as valid.
    let (status, _) = send(server.request(Method::GET, Some("el_nope_nope"), path)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    server.stop().await;
}

both!(a_revoked_token_stops_working_within_the_cache_bound);

async fn teaching_and_payments_reach_the_books(backend: Backend) {
    let server = Server::start(backend).await;
    let c = county(&server).await;
    // An officer registers an institution; the institution records a sale,
    // the platform the payment, the institution the lessons.
    let (status, body) = server
        .post(
            &c.officer,
            "/v1/institutions",
            "reg-1",
            json!({
                "id": "INS-NEW", "name": "Maple Art", "licence_no": "L-9", "jurisdiction": "410922",
                "mode": "custody", "category": "non_subject"
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let school = server
        .token(
            Role::Institution,
            Scope::Institution(ledger_core::InstitutionId::parse("INS-NEW").unwrap()),
        )
        .await;
    let (status, body) = server
        .post(
            &school,
            "/v1/institutions/INS-NEW/enrollments",
            "enr-1",
            json!({
                "id": "E-7", "student_ref": "S-7", "hours_bought": 30, "bonus_hours": 2,
                "price": "3000.00", "course_start": "2026-09-01", "course_end": "2026-11-30"
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["price"], "3000.00");
    let (status, paid) = server
        .post(
            &c.platform,
            "/v1/institutions/INS-NEW/payments",
            "pay-1",
            json!({
                "enrollment": "E-7", "amount": "3000.00", "occurred_at": "2026-09-01T09:00:00Z",
                "external_ref": "ORDER-77"
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{paid}");
    assert_eq!(paid["kind"], "tuition_paid");
    assert_eq!(paid["client_id"], "pay-1");
    assert_eq!(paid["seq"], 1);
    let after_payment = paid["recorded_at"].as_str().unwrap().to_string();
    let (status, used) = server
        .post(
            &c.platform,
            "/v1/institutions/INS-NEW/consumptions",
            "use-1",
            json!({"enrollment": "E-7", "hours": 3}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{used}");
    assert_eq!(used["postings"][0]["amount"], "300.00");

    let (status, b) = server
        .get(&c.officer, "/v1/institutions/INS-NEW/balances")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(b["figures"]["owed_to_families"], "2700.00");
    assert_eq!(b["figures"]["escrow"], "3000.00");
    assert_eq!(b["figures"]["releasable"], "300.00");
    // Coverage is the bank-confirmed figure (the overview's), not the books'.
    assert!(b["figures"].get("coverage_ratio").is_none(), "{b}");
    // The books as they stood right after the payment.
    let (status, then) = server
        .get(
            &c.officer,
            &format!(
                "/v1/institutions/INS-NEW/balances?at={}",
                after_payment.replace('+', "%2B")
            ),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{then}");
    assert_eq!(then["figures"]["owed_to_families"], "3000.00");
    let (status, p) = server
        .get(&c.admin, "/v1/institutions/INS-404/balances")
        .await;
    assert_eq!(
        (status, p["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found")),
        "{p}"
    );
    let (status, csv) = server
        .get(&c.officer, "/v1/institutions/INS-NEW/balances?format=csv")
        .await;
    assert_eq!(status, StatusCode::OK);
    let csv = csv.as_str().unwrap();
    assert!(csv.starts_with("institution,currency,account,"), "{csv}");
    assert!(
        csv.contains("INS-NEW,CNY,escrow_cash,asset,3000.00,"),
        "{csv}"
    );

    // Enrollments a page at a time, by id in byte order ("E-10" < "E-7").
    let (status, body) = server
        .post(
            &school,
            "/v1/institutions/INS-NEW/enrollments",
            "enr-2",
            json!({
                "id": "E-10", "student_ref": "S-10", "hours_bought": 10,
                "price": "900.00", "course_start": "2026-09-01", "course_end": "2026-11-30"
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, page1) = server
        .get(&c.officer, "/v1/institutions/INS-NEW/enrollments?limit=1")
        .await;
    assert_eq!(status, StatusCode::OK, "{page1}");
    assert_eq!(
        (
            &page1["items"][0]["id"],
            &page1["items"][0]["price"],
            page1["items"].as_array().unwrap().len()
        ),
        (&json!("E-10"), &json!("900.00"), 1),
        "{page1}"
    );
    let cursor = page1["next_cursor"].as_str().unwrap();
    let (_, page2) = server
        .get(
            &school,
            &format!("/v1/institutions/INS-NEW/enrollments?limit=1&cursor={cursor}"),
        )
        .await;
    assert_eq!(page2["items"][0]["id"], "E-7", "{page2}");
    assert_eq!(page2["items"][0]["bonus_hours"], 2, "{page2}");
    assert_eq!(page2["next_cursor"], Value::Null, "{page2}");
    let (_, whole) = server
        .get(&c.platform, "/v1/institutions/INS-NEW/enrollments")
        .await;
    assert_eq!(whole["items"].as_array().unwrap().len(), 2, "{whole}");

    // Entries a page at a time, and filtered.
    let (_, page1) = server
        .get(&school, "/v1/institutions/INS-NEW/entries?limit=1")
        .await;
    assert_eq!(page1["items"].as_array().unwrap().len(), 1);
    assert_eq!(page1["items"][0]["kind"], "tuition_paid");
    let cursor = page1["next_cursor"].as_str().unwrap();
    let (_, page2) = server
        .get(
            &school,
            &format!("/v1/institutions/INS-NEW/entries?limit=1&cursor={cursor}"),
        )
        .await;
    assert_eq!(page2["items"][0]["kind"], "lessons_consumed");
    assert_eq!(page2["next_cursor"], Value::Null);
    let (_, only) = server
        .get(
            &school,
            "/v1/institutions/INS-NEW/entries?kind=lessons_consumed",
        )
        .await;
    assert_eq!(only["items"].as_array().unwrap().len(), 1);
    let (status, csv) = server
        .get(&school, "/v1/institutions/INS-NEW/entries?format=csv")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(csv.as_str().unwrap().lines().count(), 1 + 2 + 2, "{csv}");

    // Lists: filtered by jurisdiction and paged.
    let (_, list) = server.get(&c.officer, "/v1/institutions?limit=1").await;
    assert_eq!(list["items"][0]["id"], "INS-A");
    let (_, list2) = server
        .get(
            &c.officer,
            &format!(
                "/v1/institutions?limit=1&cursor={}",
                list["next_cursor"].as_str().unwrap()
            ),
        )
        .await;
    assert_eq!(list2["items"][0]["id"], "INS-NEW");
    assert_eq!(list2["next_cursor"], Value::Null);
    let (_, none) = server
        .get(&c.admin, "/v1/institutions?jurisdiction=420000")
        .await;
    assert_eq!(none["items"], json!([]));

    let (_, metrics) = send(server.request(Method::GET, None, "/metrics")).await;
    assert!(metrics
        .as_str()
        .unwrap()
        .contains("ledger_entries_posted_total 2"));
    server.stop().await;
}
both!(teaching_and_payments_reach_the_books);

async fn a_repeat_gets_the_first_answer_and_changes_nothing(backend: Backend) {
    let server = Server::start(backend).await;
    let c = county(&server).await;
    let path = "/v1/institutions/INS-A/payments";
    let body =
        json!({"enrollment": "E-1", "amount": "100.00", "occurred_at": "2026-09-03T10:00:00Z"});
    let first = server
        .request(Method::POST, Some(&c.platform), path)
        .header("Idempotency-Key", "pay-42")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), StatusCode::CREATED);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first: Value = first.json().await.unwrap();
    let before = counts(&server.store).await;

    // Eight repeats at once: one entry, the same answer to each.
    let mut repeats = Vec::new();
    for _ in 0..8 {
        repeats.push(
            server
                .request(Method::POST, Some(&c.platform), path)
                .header("Idempotency-Key", "pay-42")
                .json(&body)
                .send(),
        );
    }
    for r in futures_join(repeats).await {
        assert_eq!(r.status(), StatusCode::CREATED);
        assert_eq!(r.headers()["idempotent-replayed"], "true");
        let again: Value = r.json().await.unwrap();
        assert_eq!(again, first);
    }
    assert_eq!(counts(&server.store).await, before);

    // The same key for something else is refused, and changes nothing.
    let (status, problem) = server
        .post(
            &c.platform,
            path,
            "pay-42",
            json!({"enrollment": "E-1", "amount": "999.00"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(problem["code"], "idempotency_key_reused");
    assert_eq!(problem["field"], "Idempotency-Key");
    assert_eq!(counts(&server.store).await, before);

    // New keys racing for one new payment: each its own entry.
    let (s1, a) = server.post(&c.platform, path, "pay-43", body.clone()).await;
    let (s2, b) = server.post(&c.platform, path, "pay-44", body.clone()).await;
    assert_eq!((s1, s2), (StatusCode::CREATED, StatusCode::CREATED));
    assert_ne!(a["seq"], b["seq"]);
    server.stop().await;
}
both!(a_repeat_gets_the_first_answer_and_changes_nothing);

async fn futures_join(
    requests: Vec<
        impl std::future::Future<Output = reqwest::Result<reqwest::Response>> + Send + 'static,
    >,
) -> Vec<reqwest::Response> {
    let handles: Vec<_> = requests.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap().unwrap());
    }
    out
}

/// What is wrong, path, idempotency key, body, status, code, field.
type BadCase = (
    &'static str,
    &'static str,
    Option<&'static str>,
    Value,
    u16,
    &'static str,
    Option<&'static str>,
);

async fn bad_input_is_refused_precisely_and_changes_nothing(backend: Backend) {
    let server = Server::start_with(
        backend,
        api::http::Config {
            max_body_bytes: 64 * 1024,
            ..Default::default()
        },
        true,
    )
    .await;
    let c = county(&server).await;
    pay(&server.store, &c.institution, "E-1", "seed-pay", 400_000).await;
    let before = counts(&server.store).await;
    let pay_path = "/v1/institutions/INS-A/payments";
    // (what, path, key, body, status, code, field)
    let cases: Vec<BadCase> = vec![
        (
            "too many decimals",
            pay_path,
            Some("b1"),
            json!({"enrollment": "E-1", "amount": "10.005"}),
            422,
            "too_many_decimals",
            Some("amount"),
        ),
        (
            "not a number",
            pay_path,
            Some("b2"),
            json!({"enrollment": "E-1", "amount": "ten"}),
            422,
            "invalid_amount",
            Some("amount"),
        ),
        (
            "negative",
            pay_path,
            Some("b3"),
            json!({"enrollment": "E-1", "amount": "-5.00"}),
            422,
            "amount_must_be_positive",
            Some("amount"),
        ),
        (
            "a float, not a string",
            pay_path,
            Some("b4"),
            json!({"enrollment": "E-1", "amount": 10.5}),
            422,
            "invalid_body",
            Some("amount"),
        ),
        (
            "missing amount",
            pay_path,
            Some("b5"),
            json!({"enrollment": "E-1"}),
            422,
            "invalid_body",
            Some("amount"),
        ),
        (
            "unknown field",
            pay_path,
            Some("b6"),
            json!({"enrollment": "E-1", "amount": "1.00", "amonut": "1.00"}),
            422,
            "invalid_body",
            Some("amonut"),
        ),
        (
            "unknown enrollment",
            pay_path,
            Some("b7"),
            json!({"enrollment": "E-404", "amount": "1.00"}),
            404,
            "unknown_enrollment",
            None,
        ),
        (
            "paid beyond the price",
            pay_path,
            Some("b8"),
            json!({"enrollment": "E-1", "amount": "0.01"}),
            422,
            "payment_exceeds_price",
            None,
        ),
        (
            "no idempotency key",
            pay_path,
            None,
            json!({"enrollment": "E-1", "amount": "1.00"}),
            400,
            "missing_idempotency_key",
            Some("Idempotency-Key"),
        ),
        (
            "bad idempotency key",
            pay_path,
            Some("spaces are not allowed"),
            json!({"enrollment": "E-1", "amount": "1.00"}),
            400,
            "invalid_idempotency_key",
            Some("Idempotency-Key"),
        ),
        (
            "unknown institution",
            "/v1/institutions/INS-404/payments",
            Some("b9"),
            json!({"enrollment": "E-1", "amount": "1.00"}),
            404,
            "not_found",
            None,
        ),
        (
            "too many hours",
            "/v1/institutions/INS-A/consumptions",
            Some("b10"),
            json!({"enrollment": "E-1", "hours": 41}),
            422,
            "enrollment_hours_exhausted",
            None,
        ),
        (
            "zero hours",
            "/v1/institutions/INS-A/consumptions",
            Some("b11"),
            json!({"enrollment": "E-1", "hours": 0}),
            422,
            "invalid_field",
            Some("hours"),
        ),
        (
            "bad price",
            "/v1/institutions/INS-A/enrollments",
            Some("b12"),
            json!({"id": "E-2", "student_ref": "S", "hours_bought": 10, "price": "1,000.00", "course_start": "2026-09-01", "course_end": "2026-12-01"}),
            422,
            "invalid_amount",
            Some("price"),
        ),
        (
            "course ends before it starts",
            "/v1/institutions/INS-A/enrollments",
            Some("b13"),
            json!({"id": "E-2", "student_ref": "S", "hours_bought": 10, "price": "1000.00", "course_start": "2026-09-01", "course_end": "2026-08-01"}),
            422,
            "invalid_enrollment",
            None,
        ),
        (
            "bad mode",
            "/v1/institutions",
            Some("b14"),
            json!({"id": "INS-Z", "name": "Z", "licence_no": "L", "jurisdiction": "410922", "mode": "cash", "category": "subject"}),
            422,
            "invalid_field",
            Some("mode"),
        ),
        (
            "empty batch",
            "/v1/batches",
            Some("b15"),
            json!({"items": []}),
            422,
            "invalid_field",
            Some("items"),
        ),
        (
            "NUL in text",
            pay_path,
            Some("b16"),
            json!({"enrollment": "E-1", "amount": "1.00", "external_ref": "A\u{0}B"}),
            422,
            "invalid_text",
            Some("external_ref"),
        ),
        // Numbers and dates out of range: the same refusal on both backends
        // (once a 500 on PostgreSQL and a 201 on SQLite).
        (
            "hours bought that would wrap an integer column",
            "/v1/institutions/INS-A/enrollments",
            Some("b17"),
            json!({"id": "E-9", "student_ref": "S", "hours_bought": 2147483648u64, "price": "100.00", "course_start": "2026-09-01", "course_end": "2026-12-01"}),
            422,
            "invalid_field",
            Some("hours_bought"),
        ),
        (
            "bonus hours that would wrap an integer column",
            "/v1/institutions/INS-A/enrollments",
            Some("b18"),
            json!({"id": "E-9", "student_ref": "S", "hours_bought": 10, "bonus_hours": 4294967295u64, "price": "100.00", "course_start": "2026-09-01", "course_end": "2026-12-01"}),
            422,
            "invalid_field",
            Some("bonus_hours"),
        ),
        (
            "a course that starts in year 0",
            "/v1/institutions/INS-A/enrollments",
            Some("b19"),
            json!({"id": "E-9", "student_ref": "S", "hours_bought": 10, "price": "100.00", "course_start": "0000-09-01", "course_end": "2026-12-01"}),
            422,
            "invalid_field",
            Some("course_start"),
        ),
        (
            "a course that ends in 9999",
            "/v1/institutions/INS-A/enrollments",
            Some("b20"),
            json!({"id": "E-9", "student_ref": "S", "hours_bought": 10, "price": "100.00", "course_start": "2026-09-01", "course_end": "9999-12-01"}),
            422,
            "invalid_field",
            Some("course_end"),
        ),
        (
            "a payment at the edge of what the date type holds",
            pay_path,
            Some("b21"),
            json!({"enrollment": "E-1", "amount": "1.00", "occurred_at": "-262143-01-01T00:00:00Z"}),
            422,
            "invalid_field",
            Some("occurred_at"),
        ),
        (
            "a payment in year 1",
            pay_path,
            Some("b22"),
            json!({"enrollment": "E-1", "amount": "1.00", "occurred_at": "0001-01-01T00:00:00Z"}),
            422,
            "invalid_field",
            Some("occurred_at"),
        ),
        (
            "a payment at the Unix epoch",
            pay_path,
            Some("b23"),
            json!({"enrollment": "E-1", "amount": "1.00", "occurred_at": "1970-01-01T00:00:00Z"}),
            422,
            "invalid_field",
            Some("occurred_at"),
        ),
        (
            "a payment in 9999",
            pay_path,
            Some("b24"),
            json!({"enrollment": "E-1", "amount": "1.00", "occurred_at": "9999-12-31T23:59:59Z"}),
            422,
            "invalid_field",
            Some("occurred_at"),
        ),
        (
            "a payment on a leap second",
            pay_path,
            Some("b25"),
            json!({"enrollment": "E-1", "amount": "1.00", "occurred_at": "2026-06-30T23:59:60Z"}),
            422,
            "invalid_field",
            Some("occurred_at"),
        ),
        (
            "lessons beyond any package",
            "/v1/institutions/INS-A/consumptions",
            Some("b26"),
            json!({"enrollment": "E-1", "hours": 3000000000u64}),
            422,
            "invalid_field",
            Some("hours"),
        ),
        (
            "an external reference over 256 characters",
            pay_path,
            Some("b27"),
            json!({"enrollment": "E-1", "amount": "1.00", "external_ref": "R".repeat(257)}),
            422,
            "invalid_id",
            Some("external_ref"),
        ),
        (
            "a control character in text",
            pay_path,
            Some("b30"),
            json!({"enrollment": "E-1", "amount": "1.00", "external_ref": "A\u{7}B"}),
            422,
            "invalid_text",
            Some("external_ref"),
        ),
        (
            "a reason longer than any text kept",
            "/v1/institutions/INS-A/refunds",
            Some("b31"),
            json!({"enrollment": "E-1", "reason": "x".repeat(2001),
                   "payee": {"name": "Zhang San", "account": "6214830100123456", "bank": "CMBCCNBS"}}),
            422,
            "invalid_text",
            Some("reason"),
        ),
        (
            "a control character deep in a batch",
            "/v1/batches",
            Some("b32"),
            json!({"items": [{"institution": "INS-A", "client_id": "c1", "op": "pay_tuition",
                              "enrollment": "E-1", "amount": "1.00", "external_ref": "\u{c}"}]}),
            422,
            "invalid_text",
            Some("items[0].external_ref"),
        ),
        (
            "a student reference over 128 characters",
            "/v1/institutions/INS-A/enrollments",
            Some("b33"),
            json!({"id": "E-9", "student_ref": "S".repeat(129), "hours_bought": 10, "price": "100.00", "course_start": "2026-09-01", "course_end": "2026-12-01"}),
            422,
            "invalid_enrollment",
            None,
        ),
        (
            "lessons given in year 1",
            "/v1/institutions/INS-A/lessons",
            Some("b28"),
            json!({"enrollment": "E-1", "hours": 2, "occurred_on": "0001-01-01"}),
            422,
            "invalid_field",
            Some("occurred_on"),
        ),
        (
            "a refund of more than was paid",
            "/v1/institutions/INS-A/refunds",
            Some("b29"),
            json!({"enrollment": "E-1", "amount": "4000.01",
                   "payee": {"name": "Zhang San", "account": "6214830100123456", "bank": "CMBCCNBS"}}),
            422,
            "refund_exceeds_refundable",
            Some("amount"),
        ),
    ];
    for (what, path, key, body, status, code, field) in cases {
        let token = if path == "/v1/institutions" {
            &c.officer
        } else if path.ends_with("payments") || path.ends_with("consumptions") {
            &c.platform
        } else {
            &c.school
        };
        let mut r = server.request(Method::POST, Some(token), path).json(&body);
        if let Some(k) = key {
            r = r.header("Idempotency-Key", k);
        }
        let (got, problem) = send(r).await;
        assert_eq!(got.as_u16(), status, "{what}: {problem}");
        assert_eq!(problem["code"], code, "{what}: {problem}");
        assert_eq!(problem["field"].as_str(), field, "{what}: {problem}");
        assert_eq!(problem["status"], status, "{what}");
        assert!(!problem["detail"].as_str().unwrap().is_empty(), "{what}");
        let text = problem.to_string().to_lowercase();
        assert!(
            !text.contains("sqlx") && !text.contains("select ") && !text.contains("insert "),
            "{what}: {problem}"
        );
    }
    // Malformed JSON, the wrong media type, an oversized body, a bad query.
    let raw = |body: &'static str, content_type: &'static str| {
        server
            .request(Method::POST, Some(&c.platform), pay_path)
            .header("Idempotency-Key", format!("raw-{}", body.len()))
            .header("content-type", content_type)
            .body(body)
    };
    let (status, p) = send(raw("{\"enrollment\": ", "application/json")).await;
    assert_eq!(
        (status, p["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("malformed_json")),
        "{p}"
    );
    let (status, p) = send(raw("enrollment=E-1", "application/x-www-form-urlencoded")).await;
    assert_eq!(
        (status, p["code"].as_str()),
        (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Some("unsupported_media_type")
        ),
        "{p}"
    );
    // The server answers 413 from the Content-Length and closes without
    // reading the rest; the client may see that as a reset while it still
    // sends, so it tries until it reads the answer. It uses a client of
    // its own that keeps no connection: one the server is closing must not
    // go back to the shared pool and fail the next request.
    let big = "x".repeat(100 * 1024);
    let once = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let mut answered = None;
    for _ in 0..10 {
        let sent = once
            .post(format!("{}{pay_path}", server.base))
            .bearer_auth(&c.platform)
            .header("Idempotency-Key", "big")
            .header("content-type", "application/json")
            .body(big.clone())
            .send()
            .await;
        if let Ok(response) = sent {
            answered = Some(response.status());
            break;
        }
    }
    assert_eq!(answered, Some(StatusCode::PAYLOAD_TOO_LARGE));
    for (path, field) in [
        // Filters that could match nothing, and days outside the business
        // dates.
        ("/v1/institutions/INS-A/entries?kind=tuition_payd", "kind"),
        (
            "/v1/institutions/INS-A/entries?enrollment=a%20b",
            "enrollment",
        ),
        (
            "/v1/institutions/INS-A/entries?from=2026-09-02T00:00:00Z&to=2026-09-01T00:00:00Z",
            "to",
        ),
        (
            "/v1/institutions/INS-A/lessons?enrollment=a%20b",
            "enrollment",
        ),
        ("/v1/jurisdictions/410922/risk?as_of=0001-01-01", "as_of"),
        ("/v1/jurisdictions/410922/risk?as_of=9999-12-31", "as_of"),
        (
            "/v1/institutions/INS-A/reconciliation?date=0001-01-01",
            "date",
        ),
        ("/v1/institutions?cursor=a%20b", "cursor"),
        ("/v1/approvals?cursor=AP-not-ours", "cursor"),
        ("/v1/institutions?limit=0", "limit"),
        ("/v1/institutions?status=open", "status"),
        ("/v1/institutions/INS-A/entries?cursor=abc", "cursor"),
        ("/v1/institutions/INS-A/enrollments?cursor=a%20b", "cursor"),
        ("/v1/institutions/INS-A/enrollments?limit=501", "limit"),
        ("/v1/institutions/INS-A/balances?format=xml", "format"),
        (
            "/v1/institutions/INS-A/balances?at=2020-01-01T00:00:00Z",
            "at",
        ),
    ] {
        let (status, p) = server.get(&c.officer, path).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{path}: {p}");
        assert_eq!(p["field"], field, "{path}: {p}");
    }
    for (path, field) in [
        ("/v1/institutions/INS-A/entries?enrollment=%00", "query"),
        ("/v1/institutions/INS-A/suggestions/M%00", "path"),
    ] {
        let (status, p) = server.get(&c.officer, path).await;
        assert_eq!(
            (status, p["code"].as_str(), p["field"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_uri"), Some(field)),
            "{path}: {p}"
        );
    }
    let (status, p) = server
        .post(
            &c.officer,
            "/v1/institutions/INS-A/suggestions/M%00",
            "nul",
            json!({"decision": "reject"}),
        )
        .await;
    assert_eq!(
        (status, p["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_uri")),
        "{p}"
    );
    let (status, p) = server
        .get(&c.officer, "/v1/institutions/INS-A/balances?at=yesterday")
        .await;
    assert_eq!(
        (status, p["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_query")),
        "{p}"
    );
    assert_eq!(
        counts(&server.store).await,
        before,
        "bad input changed the database"
    );
    server.stop().await;
}
both!(bad_input_is_refused_precisely_and_changes_nothing);

/// A month-end statement file of a busy account, as MT940: more than the
/// framework's 2 MiB default and the JSON limit.
fn month_end_statement(lines: usize) -> Vec<u8> {
    let mut text = String::from(
        ":20:CMB20260930001\n:25:CMBCCNBS/755912345610801\n:28C:00275/00001\n:60F:C260929CNY1250000,00\n",
    );
    for n in 0..lines {
        text.push_str(&format!(
            ":61:2609300930C100,00NTRFXF2026093{n:07}//CMB093{n:07}\n:86:付款人:家长{n} 用途:2026秋季学费 订单号XF2026093{n:07} 备注:按月结算\n"
        ));
    }
    let closing = 1_250_000 + 100 * lines;
    text.push_str(&format!(":62F:C260930CNY{closing},00\n-\n"));
    text.into_bytes()
}

async fn limits_hold_and_answer_as_problems(backend: Backend) {
    let server = Server::start(backend).await;
    let c = county(&server).await;
    let file = month_end_statement(20_000);
    assert!(file.len() > 2_200_000, "{} bytes", file.len());
    bank_account(
        &server.store,
        "CMB",
        &c.institution,
        &account_of("CMB", &file),
    )
    .await;
    let cmb = server.token(Role::Bank, Scope::Bank("CMB".into())).await;
    let (status, receipt) = send(
        server
            .request(Method::POST, Some(&cmb), "/v1/feeds")
            .header("Idempotency-Key", "month-end")
            .header("content-type", "application/octet-stream")
            .body(file.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{receipt}");
    assert_eq!(receipt["lines_stored"], 20_000);

    // A JSON body of 10 MB is read whole (the JSON limit is 16 MiB) and
    // refused for what it says (a text over 2,000 characters), not for
    // its size.
    let (status, p) = server
        .post(
            &c.platform,
            "/v1/institutions/INS-A/payments",
            "ten-mb",
            json!({"enrollment": "E-1", "amount": "1.00", "external_ref": "R".repeat(10 << 20)}),
        )
        .await;
    assert_eq!(
        (status, p["code"].as_str(), p["field"].as_str()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("invalid_text"),
            Some("external_ref")
        ),
        "{p}"
    );
    server.stop().await;

    // Below the file's size, the feed limit refuses it as a problem.
    let server = Server::start_with(
        backend,
        api::http::Config {
            max_feed_bytes: 1 << 20,
            ..Default::default()
        },
        true,
    )
    .await;
    let c = county(&server).await;
    let admin = c.admin.clone();
    // The server answers 413 and closes while the client may still be
    // writing the rest of the file: on a busy machine the client then sees
    // its write fail (broken pipe) before it reads the answer. That is the
    // transport, not the refusal under test: ask again, a few times.
    let mut attempts = 0;
    let response = loop {
        attempts += 1;
        let sent = server
            .request(Method::POST, Some(&admin), "/v1/feeds?bank=CMB")
            .header("Idempotency-Key", "too-big")
            .header("content-type", "application/octet-stream")
            .body(file.clone())
            .send()
            .await;
        match sent {
            Ok(response) => break response,
            Err(e) if e.is_request() && attempts < 5 => continue,
            Err(e) => panic!("no answer after {attempts} attempts: {e:?}"),
        }
    };
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let p: Value = response.json().await.unwrap();
    assert_eq!(p["code"], "body_too_large", "{p}");
    assert!(p["detail"].as_str().unwrap().contains("1048576"), "{p}");
    server.stop().await;
}
both!(limits_hold_and_answer_as_problems);

/// An alert reflects the present: "has never sent a statement", raised
/// once the grace after registration has passed, resolves itself with a
/// trail entry once the statements come; before, it stayed open for months.
async fn an_alert_whose_condition_ends_resolves_itself(backend: Backend) {
    use chrono::TimeZone;
    // The account is registered on 20 August, twelve days before the scan.
    let clock = ledger_core::store::Clock::manual(
        chrono::Utc.with_ymd_and_hms(2026, 8, 20, 9, 0, 0).unwrap(),
    );
    let server = Server::start_clocked(backend, clock).await;
    let c = county(&server).await;
    let account = account_of("CMB", CNY_STATEMENT);
    bank_account(&server.store, "CMB", &c.institution, &account).await;
    let county_code = code("410922");
    let scan = |day: chrono::NaiveDate| {
        let store = server.store.clone();
        let county_code = county_code.clone();
        async move {
            let ranked = api::app::risk::assess(&store, &county_code, day)
                .await
                .unwrap();
            api::app::risk::record_alerts(&store, &ranked, day)
                .await
                .unwrap();
        }
    };
    let key = format!("feed_silence:{account}");
    let status_of = || async {
        server
            .store
            .alerts(Some(&c.institution), None)
            .await
            .unwrap()
            .into_iter()
            .find(|a| a.key == key)
            .map(|a| (a.severity.code().to_string(), a.status.code().to_string()))
    };
    scan(day(2026, 9, 1)).await;
    assert_eq!(
        status_of().await,
        Some(("red".to_string(), "open".to_string()))
    );
    let cmb = server.token(Role::Bank, Scope::Bank("CMB".into())).await;
    let (status, receipt) = send(
        server
            .request(Method::POST, Some(&cmb), "/v1/feeds")
            .header("Idempotency-Key", "first-statement")
            .header("content-type", "application/octet-stream")
            .body(CNY_STATEMENT),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{receipt}");
    scan(day(2026, 9, 2)).await;
    assert_eq!(
        status_of().await.map(|(_, s)| s),
        Some("resolved".to_string())
    );
    let trail = server
        .store
        .alert_trail(&c.institution, &key)
        .await
        .unwrap();
    let last = trail.last().unwrap();
    assert_eq!(
        (last.1.as_str(), last.2.as_str()),
        ("risk-engine", "resolved")
    );
    assert!(
        last.3.as_deref().unwrap().contains("2026-09-02"),
        "when: {last:?}"
    );
    server.stop().await;
}
both!(an_alert_whose_condition_ends_resolves_itself);

/// Registering jurisdictions over HTTP from an empty database: the nation
/// by an admin only, then each division directly below the one its code
/// names (once a 404: the nation could not be created).
async fn jurisdictions_are_registered_from_the_nation_down(backend: Backend) {
    let server = Server::start(backend).await;
    let admin = server.admin().await;
    let (status, p) = server
        .post(
            &admin,
            "/v1/jurisdictions",
            "nation",
            json!({"code": "000000", "name": "中华人民共和国"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{p}");
    assert_eq!(p["parent"], Value::Null);
    let (status, p) = server
        .post(
            &admin,
            "/v1/jurisdictions",
            "henan",
            json!({"code": "410000", "name": "河南省", "parent": "000000"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{p}");
    let officer = server
        .token(Role::Officer, Scope::Jurisdiction(code("410000")))
        .await;
    let (status, p) = server
        .post(
            &officer,
            "/v1/jurisdictions",
            "nation-by-officer",
            json!({"code": "000000", "name": "Nation"}),
        )
        .await;
    assert_eq!(
        (status, p["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found")),
        "{p}"
    );
    // The province's officer registers below it; the parent defaults to
    // the division the code names.
    let (status, p) = server
        .post(
            &officer,
            "/v1/jurisdictions",
            "puyang",
            json!({"code": "410900", "name": "濮阳市"}),
        )
        .await;
    assert_eq!(
        (status, p["parent"].as_str()),
        (StatusCode::CREATED, Some("410000")),
        "{p}"
    );
    let before = counts(&server.store).await;
    for (key, body, field, says) in [
        (
            "bad-1",
            json!({"code": "990000", "name": "X"}),
            "code",
            "no province",
        ),
        (
            "bad-2",
            json!({"code": "410022", "name": "X"}),
            "code",
            "city digits",
        ),
        (
            "bad-3",
            json!({"code": "410922", "name": "X", "parent": "410000"}),
            "parent",
            "directly below 410900",
        ),
        (
            "bad-4",
            json!({"code": "410922", "name": " "}),
            "name",
            "1 to 100 characters",
        ),
    ] {
        let (status, p) = server.post(&admin, "/v1/jurisdictions", key, body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{key}: {p}");
        assert_eq!(p["field"], field, "{key}: {p}");
        assert!(p["detail"].as_str().unwrap().contains(says), "{key}: {p}");
    }
    assert_eq!(counts(&server.store).await, before);
    server.stop().await;
}
both!(jurisdictions_are_registered_from_the_nation_down);

async fn a_batch_is_all_or_nothing(backend: Backend) {
    let server = Server::start(backend).await;
    let c = county(&server).await;
    enrollment(&server.store, &c.institution, "E-2", 10, 100_000).await;
    let item = |id: &str, op: &str, enrollment: &str, amount: Option<&str>, hours: Option<i64>| {
        json!({"institution": "INS-A", "client_id": id, "op": op, "enrollment": enrollment,
               "amount": amount, "hours": hours, "occurred_at": "2026-09-05T08:00:00Z"})
    };
    let before = counts(&server.store).await;
    let (status, p) = server
        .post(
            &c.platform,
            "/v1/batches",
            "batch-1",
            json!({"items": [
                item("i1", "pay_tuition", "E-1", Some("100.00"), None),
                item("i2", "pay_tuition", "E-2", Some("100.00"), None),
                item("i3", "pay_tuition", "E-2", Some("1000.00"), None),
            ]}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{p}");
    assert_eq!(p["code"], "payment_exceeds_price");
    assert_eq!(p["field"], "items[2]");
    assert_eq!(counts(&server.store).await, before);
    let (status, p) = server
        .post(
            &c.platform,
            "/v1/batches",
            "batch-2",
            json!({"items": [
                item("i1", "pay_tuition", "E-1", Some("100.00"), None),
                item("i2", "refund", "E-2", Some("100.00"), None),
            ]}),
        )
        .await;
    assert_eq!(
        (status, p["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("items[1].op")),
        "{p}"
    );

    let (status, done) = server
        .post(
            &c.platform,
            "/v1/batches",
            "batch-3",
            json!({"items": [
                item("i1", "pay_tuition", "E-1", Some("100.00"), None),
                item("i2", "pay_tuition", "E-2", Some("1000.00"), None),
                item("i3", "consume_lessons", "E-2", None, Some(2)),
            ]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{done}");
    let kinds: Vec<_> = done["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kinds, ["tuition_paid", "tuition_paid", "lessons_consumed"]);
    let (_, b) = server
        .get(&c.officer, "/v1/institutions/INS-A/balances")
        .await;
    assert_eq!(b["figures"]["escrow"], "1100.00");
    assert_eq!(b["figures"]["releasable"], "200.00");
    // An institution may record lessons but not payments, even in a batch.
    let (status, p) = server
        .post(
            &c.school,
            "/v1/batches",
            "batch-4",
            json!({"items": [item("i9", "pay_tuition", "E-1", Some("1.00"), None)]}),
        )
        .await;
    assert_eq!(
        (status, p["field"].as_str()),
        (StatusCode::FORBIDDEN, Some("items[0]")),
        "{p}"
    );
    server.stop().await;
}
both!(a_batch_is_all_or_nothing);

async fn a_bank_uploads_statements_for_its_own_accounts(backend: Backend) {
    let server = Server::start(backend).await;
    let c = county(&server).await;
    let account = account_of("CMB", CNY_STATEMENT);
    bank_account(&server.store, "CMB", &c.institution, &account).await;
    server
        .store
        .register_bank("ICBC", "ICBC bank")
        .await
        .unwrap();
    let cmb = server.token(Role::Bank, Scope::Bank("CMB".into())).await;
    let icbc = server.token(Role::Bank, Scope::Bank("ICBC".into())).await;
    let upload = |token: &str, path: &str, key: &str, body: &'static [u8]| {
        send(
            server
                .request(Method::POST, Some(token), path)
                .header("Idempotency-Key", key)
                .header("content-type", "application/octet-stream")
                .body(body),
        )
    };
    let (status, receipt) = upload(&cmb, "/v1/feeds", "f1", CNY_STATEMENT).await;
    assert_eq!(status, StatusCode::CREATED, "{receipt}");
    assert_eq!(receipt["format"], "mt940");
    assert_eq!(receipt["lines_stored"], 4);
    assert_eq!(receipt["file_seen_before"], false);
    let (status, again) = upload(&cmb, "/v1/feeds", "f2", CNY_STATEMENT).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(again["file_seen_before"], true);
    assert_eq!(again["lines_stored"], 0);
    let (_, metrics) = send(server.request(Method::GET, None, "/metrics")).await;
    assert!(
        metrics
            .as_str()
            .unwrap()
            .contains("feed_lines_ingested_total 4\n"),
        "{metrics}"
    );

    let before = counts(&server.store).await;
    // Another bank cannot send for CMB, nor for an account it does not hold.
    let (status, p) = upload(&icbc, "/v1/feeds?bank=CMB", "f3", CNY_STATEMENT).await;
    assert_eq!(
        (status, p["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found")),
        "{p}"
    );
    let (status, p) = upload(&icbc, "/v1/feeds", "f4", CNY_STATEMENT).await;
    assert_eq!(
        (status, p["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("unknown_bank_account")),
        "{p}"
    );
    // A damaged file is refused whole, with where and why.
    let broken: &'static [u8] =
        include_bytes!("../crates/bank-adapter/tests/fixtures/mt940/broken_unbalanced.sta");
    let (status, p) = upload(&cmb, "/v1/feeds", "f5", broken).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{p}");
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("nothing from this file was stored"),
        "{p}"
    );
    let (status, p) = upload(&cmb, "/v1/feeds", "f8", b":20:X\0\n").await;
    assert_eq!(
        (status, p["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("body")),
        "{p}"
    );
    let (status, p) = upload(&cmb, "/v1/feeds", "f6", b"").await;
    assert_eq!(
        (status, p["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("body")),
        "{p}"
    );
    // Officers read; they do not send feeds.
    let (status, _) = upload(&c.officer, "/v1/feeds?bank=CMB", "f7", CNY_STATEMENT).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(counts(&server.store).await, before);
    server.stop().await;
}
both!(a_bank_uploads_statements_for_its_own_accounts);

async fn a_bank_pushes_signed_notifications(backend: Backend) {
    use bank_adapter::secret::Secret;
    use bank_adapter::signature::{sign, SIGNATURE_HEADER, TIMESTAMP_HEADER};
    let mut banks = api::app::banks::BankDirectory::default();
    banks.set_push_secret("CMB", "push-secret-of-cmb");
    let server = Server::start_with_banks(backend, banks).await;
    let c = county(&server).await;
    let account = account_of("CMB", CNY_STATEMENT);
    bank_account(&server.store, "CMB", &c.institution, &account).await;
    let secret = Secret::new("push-secret-of-cmb".to_string());
    let now = chrono::Utc::now().timestamp();
    let push = |path: &str, timestamp: Option<i64>, signature: Option<String>| {
        let mut r = server
            .request(Method::POST, None, path)
            .header("content-type", "application/octet-stream")
            .body(CNY_STATEMENT);
        if let Some(t) = timestamp {
            r = r.header(TIMESTAMP_HEADER, t.to_string());
        }
        if let Some(s) = signature {
            r = r.header(SIGNATURE_HEADER, s);
        }
        send(r)
    };
    let path = "/v1/banks/CMB/notifications";
    let before = counts(&server.store).await;
    for (what, timestamp, signature, code) in [
        ("unsigned", None, None, "missing_timestamp"),
        (
            "signed with another secret",
            Some(now),
            Some(sign(&Secret::new("guess"), now, CNY_STATEMENT)),
            "bad_signature",
        ),
        (
            "signed over another body",
            Some(now),
            Some(sign(&secret, now, b"other")),
            "bad_signature",
        ),
        (
            "replayed ten minutes late",
            Some(now - 600),
            Some(sign(&secret, now - 600, CNY_STATEMENT)),
            "timestamp_outside_window",
        ),
    ] {
        let (status, p) = push(path, timestamp, signature).await;
        assert_eq!(
            (status, p["code"].as_str()),
            (StatusCode::UNAUTHORIZED, Some(code)),
            "{what}: {p}"
        );
    }
    let (status, p) = push(
        "/v1/banks/ICBC/notifications",
        Some(now),
        Some(sign(&secret, now, CNY_STATEMENT)),
    )
    .await;
    assert_eq!(
        (status, p["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found")),
        "{p}"
    );
    assert_eq!(counts(&server.store).await, before);

    let (status, receipt) = push(path, Some(now), Some(sign(&secret, now, CNY_STATEMENT))).await;
    assert_eq!(status, StatusCode::CREATED, "{receipt}");
    assert_eq!(receipt["lines_stored"], 4);
    let (status, again) = push(path, Some(now), Some(sign(&secret, now, CNY_STATEMENT))).await;
    assert_eq!(
        (status, again["file_seen_before"].as_bool()),
        (StatusCode::CREATED, Some(true))
    );
    let log = server.store.audit_log(0, 100).await.unwrap();
    let outcomes: Vec<_> = log
        .iter()
        .map(|(_, _, r)| (r.status, r.outcome.as_str()))
        .collect();
    assert_eq!(
        outcomes,
        [
            (401, "missing_timestamp"),
            (401, "bad_signature"),
            (401, "bad_signature"),
            (401, "timestamp_outside_window"),
            (404, "not_found"),
            (201, "ok"),
            (201, "ok")
        ]
    );
    server.stop().await;
}
both!(a_bank_pushes_signed_notifications);

async fn officers_reconcile_and_set_rules(backend: Backend) {
    let server = Server::start(backend).await;
    api::demo::build(&server.store).await.unwrap();
    let officer = server
        .token(Role::Officer, Scope::Jurisdiction(code("410922")))
        .await;
    let platform = server
        .token(Role::Platform, Scope::Jurisdiction(code("410922")))
        .await;
    let (status, recon) = server
        .get(&officer, "/v1/institutions/INS-410922-004/reconciliation")
        .await;
    assert_eq!(status, StatusCode::OK, "{recon}");
    let accounts = recon["accounts"].as_array().unwrap();
    assert_eq!(accounts.len(), 2, "escrow and deposit");
    let outflows: Vec<&Value> = accounts
        .iter()
        .flat_map(|a| a["unmatched_lines"].as_array().unwrap())
        .filter(|l| l["unauthorized_outflow"] == json!(true))
        .collect();
    assert_eq!(outflows.len(), 1, "{recon}");
    // Statement day by statement day: the escrow closing of 7 November is
    // 30,000.00 short of the ledger at the end of that day.
    let escrow = accounts.iter().find(|a| a["kind"] == "escrow").unwrap();
    let closing_day = &escrow["days"][0];
    assert_eq!(
        (
            &closing_day["date"],
            &closing_day["status"],
            &closing_day["bank_minus_ledger"]
        ),
        (&json!("2026-11-07"), &json!("differs"), &json!("-30000.00")),
        "{escrow}"
    );
    // As it stood on 31 October no statement had come yet.
    let (status, past) = server
        .get(
            &officer,
            "/v1/institutions/INS-410922-004/reconciliation?date=2026-10-31",
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{past}");
    assert_eq!(past["accounts"][0]["days"], json!([]));
    assert_eq!(past["accounts"][0]["bank_closing"], Value::Null);
    let (status, p) = server
        .get(
            &officer,
            "/v1/institutions/INS-410922-004/reconciliation?date=31-10-2026",
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{p}");
    let (status, _) = server
        .get(&platform, "/v1/institutions/INS-410922-004/reconciliation")
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let (status, list) = server
        .get(&officer, "/v1/institutions/INS-410922-004/suggestions")
        .await;
    assert_eq!((status, list.is_array()), (StatusCode::OK, true), "{list}");
    let (status, p) = server
        .post(
            &officer,
            "/v1/institutions/INS-410922-004/suggestions/M-404",
            "s1",
            json!({"decision": "confirm"}),
        )
        .await;
    assert_eq!(
        (status, p["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("unknown_suggestion")),
        "{p}"
    );
    let (status, p) = server
        .post(
            &officer,
            "/v1/institutions/INS-410922-004/suggestions/M-404",
            "s2",
            json!({"decision": "maybe"}),
        )
        .await;
    assert_eq!(
        (status, p["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("decision")),
        "{p}"
    );

    // A new version of the county's rule pack; versions never change.
    let pack = json!({"version": 2, "effective_from": "2027-01-01", "params": {"refund_answer_working_days": 7}});
    let (status, set) = server
        .post(&officer, "/v1/jurisdictions/410922/rule-packs", "r1", pack)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{set}");
    assert_eq!(set["params"]["refund_answer_working_days"], 7);
    let (status, p) = server
        .post(&officer, "/v1/jurisdictions/410922/rule-packs", "r2",
              json!({"version": 2, "effective_from": "2027-01-01", "params": {"refund_answer_working_days": 9}}))
        .await;
    assert_eq!(
        (status, p["code"].as_str()),
        (StatusCode::CONFLICT, Some("exists_with_different_fields")),
        "{p}"
    );
    let (status, p) = server
        .post(&officer, "/v1/jurisdictions/410922/rule-packs", "r3",
              json!({"version": 3, "effective_from": "2027-01-01", "params": {"refund_answer_days": 9}}))
        .await;
    assert_eq!(
        (status, p["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("params")),
        "{p}"
    );
    assert!(
        p["detail"].as_str().unwrap().contains("refund_answer_days"),
        "{p}"
    );
    let (status, _) = server
        .post(
            &platform,
            "/v1/jurisdictions/410922/rule-packs",
            "r4",
            json!({"version": 3, "effective_from": "2027-01-01", "params": {}}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let institution = server
        .store
        .institution(&ledger_core::InstitutionId::parse("INS-410922-001").unwrap())
        .await
        .unwrap();
    let rules = server
        .store
        .rules_for(&institution, day(2027, 1, 2))
        .await
        .unwrap();
    assert_eq!(rules.params.refund_answer_working_days, Some(7));
    server.stop().await;
}
both!(officers_reconcile_and_set_rules);

/// Reconciliation as it was recorded, day by day: nothing before a run; the
/// recorded figures of each statement day after one; and when a payment
/// reported late changes a recorded day's ledger balance and what was owed,
/// a second version beside the first, which is kept.
async fn officers_read_the_recorded_statement_days(backend: Backend) {
    let server = Server::start(backend).await;
    api::demo::build(&server.store).await.unwrap();
    let officer = server
        .token(Role::Officer, Scope::Jurisdiction(code("410922")))
        .await;
    let platform = server
        .token(Role::Platform, Scope::Jurisdiction(code("410922")))
        .await;
    let path = "/v1/institutions/INS-410922-004/reconciliation/days";
    let (status, none) = server.get(&officer, path).await;
    assert_eq!(status, StatusCode::OK, "{none}");
    assert_eq!(none["days"], json!([]), "nothing recorded yet");

    let id = ledger_core::InstitutionId::parse("INS-410922-004").unwrap();
    let record = || async {
        for account in server.store.supervised_accounts(&id).await.unwrap() {
            api::app::reconcile::record_account(&server.store, &account, None)
                .await
                .unwrap();
        }
    };
    record().await;
    let (status, kept) = server.get(&officer, path).await;
    assert_eq!(status, StatusCode::OK, "{kept}");
    // The same figures the report computes, now kept.
    let (_, report) = server
        .get(&officer, "/v1/institutions/INS-410922-004/reconciliation")
        .await;
    let escrow = report["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["kind"] == "escrow")
        .unwrap();
    let computed = &escrow["days"][0];
    let days = kept["days"].as_array().unwrap();
    let escrow_day = days.iter().find(|d| d["kind"] == "escrow").unwrap();
    for field in [
        "date",
        "statement",
        "bank_closing",
        "ledger_balance",
        "owed",
        "bank_minus_ledger",
        "status",
    ] {
        assert_eq!(
            escrow_day[field], computed[field],
            "{field}: {escrow_day} vs {computed}"
        );
    }
    assert_eq!(
        (
            &escrow_day["bank_minus_ledger"],
            &escrow_day["version"],
            &escrow_day["superseded"]
        ),
        (&json!("-30000.00"), &json!(1), &json!(false)),
        "{escrow_day}"
    );
    let count = days.len();

    // A payment into escrow on 6 November, reported late: the ledger's
    // balance and what was owed at the end of 7 November change, so the
    // next run keeps a second version of that day beside the first.
    let (status, enrolled) = server
        .post(
            &platform,
            "/v1/institutions/INS-410922-004/enrollments",
            "late-enrollment",
            json!({"id": "E-LATE", "student_ref": "S-LATE", "hours_bought": 10, "price": "100.00",
                   "course_start": "2026-09-01", "course_end": "2026-11-30"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{enrolled}");
    let (status, paid) = server
        .post(
            &platform,
            "/v1/institutions/INS-410922-004/payments",
            "late-payment",
            json!({"enrollment": "E-LATE", "amount": "100.00", "occurred_at": "2026-11-06T10:00:00Z"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{paid}");
    record().await;
    record().await; // unchanged figures add nothing
    let (_, latest) = server.get(&officer, path).await;
    assert_eq!(latest["days"].as_array().unwrap().len(), count, "{latest}");
    let now = latest["days"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["kind"] == "escrow")
        .unwrap();
    assert_eq!(
        (&now["version"], &now["superseded"]),
        (&json!(2), &json!(false)),
        "{now}"
    );
    assert_eq!(
        (
            &now["bank_closing"],
            &now["ledger_balance"],
            &now["bank_minus_ledger"]
        ),
        (
            &escrow_day["bank_closing"],
            &json!("37583.32"),
            &json!("-30100.00")
        ),
        "{now}"
    );
    assert_ne!(now["owed"], escrow_day["owed"], "{now} vs {escrow_day}");
    let (status, history) = server.get(&officer, &format!("{path}?history=true")).await;
    assert_eq!(status, StatusCode::OK, "{history}");
    let versions: Vec<(&Value, &Value, &Value)> = history["days"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["kind"] == "escrow" && d["date"] == escrow_day["date"])
        .map(|d| (&d["version"], &d["superseded"], &d["owed"]))
        .collect();
    assert_eq!(
        versions,
        [
            (&json!(1), &json!(true), &escrow_day["owed"]),
            (&json!(2), &json!(false), &now["owed"])
        ]
    );

    let (status, p) = server
        .get(&officer, &format!("{path}?history=perhaps"))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{p}");
    let (status, _) = server.get(&platform, path).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, p) = server
        .get(
            &officer,
            "/v1/institutions/INS-410100-001/reconciliation/days",
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{p}");
    server.stop().await;
}
both!(officers_read_the_recorded_statement_days);

async fn officers_see_risk_and_work_alerts(backend: Backend) {
    let server = Server::start(backend).await;
    api::demo::build(&server.store).await.unwrap();
    let county = code(api::demo::COUNTY);
    let officer = server
        .token(Role::Officer, Scope::Jurisdiction(county.clone()))
        .await;
    let as_of = day(2026, 11, 7);
    let (status, risk) = server
        .get(&officer, "/v1/jurisdictions/410922/risk?as_of=2026-11-07")
        .await;
    assert_eq!(status, StatusCode::OK, "{risk}");
    let ranked = risk["institutions"].as_array().unwrap();
    assert_eq!(ranked.len(), 4);
    assert_eq!(ranked[0]["id"], "INS-410922-004");
    let shortfall = ranked[0]["signals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["kind"] == "shortfall")
        .expect("a shortfall signal");
    assert_eq!(shortfall["severity"], "red");
    // Evidence amounts are decimal strings like every amount on the wire.
    let evidence = shortfall["evidence"].to_string();
    assert!(!evidence.contains("\"minor\""), "{evidence}");
    let closing = shortfall["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "bank_escrow_closing")
        .and_then(|e| e["amount"].as_str())
        .expect("the bank's escrow closing");
    let (units, cents) = closing.split_once('.').expect("a decimal string");
    assert!(
        units.parse::<i64>().is_ok() && cents.len() == 2 && cents.parse::<u8>().is_ok(),
        "{evidence}"
    );

    let ranked_core = api::app::risk::assess(&server.store, &county, as_of)
        .await
        .unwrap();
    api::app::risk::record_alerts(&server.store, &ranked_core, as_of)
        .await
        .unwrap();
    let (status, alerts) = server
        .get(&officer, "/v1/alerts?severity=red&limit=500")
        .await;
    assert_eq!(status, StatusCode::OK);
    let red = alerts["items"].as_array().unwrap();
    assert!(!red.is_empty());
    assert!(
        red.iter().all(|a| a["institution"] == "INS-410922-004"),
        "{alerts}"
    );
    let key = red[0]["key"].as_str().unwrap().to_string();
    let alert_path = format!(
        "/v1/institutions/INS-410922-004/alerts/{}",
        key.replace(':', "%3A")
    );

    let (status, p) = server
        .post(
            &officer,
            &format!("{alert_path}/actions"),
            "a1",
            json!({"action": "request_rectification"}),
        )
        .await;
    assert_eq!(
        (status, p["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("due")),
        "{p}"
    );
    // A due day already past, or beyond the business dates, is refused.
    let today = server.store.now().date_naive();
    for (key, due, code) in [
        (
            "a1-past",
            (today - chrono::Duration::days(1)).to_string(),
            "due_in_the_past",
        ),
        ("a1-far", "9999-12-31".to_string(), "invalid_field"),
    ] {
        let (status, p) = server
            .post(
                &officer,
                &format!("{alert_path}/actions"),
                key,
                json!({"action": "request_rectification", "due": due}),
            )
            .await;
        assert_eq!(
            (status, p["code"].as_str(), p["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some(code), Some("due")),
            "{p}"
        );
    }
    let due = (today + chrono::Duration::days(30)).to_string();
    let (status, acted) = server
        .post(
            &officer,
            &format!("{alert_path}/actions"),
            "a2",
            json!({"action": "request_rectification", "due": due, "comment": "top up escrow"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{acted}");
    assert_eq!(acted["alert"]["status"], "rectification_requested");
    assert_eq!(acted["alert"]["rectification_due"], due.as_str());
    let last = acted["trail"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["action"], "rectification_requested");
    assert_eq!(last["comment"], "top up escrow");
    assert!(
        last["actor"].as_str().unwrap().contains("officer"),
        "{last}"
    );
    let (status, _) = server
        .post(
            &officer,
            &format!("{alert_path}/actions"),
            "a3",
            json!({"action": "resolve"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, p) = server
        .post(
            &officer,
            &format!("{alert_path}/actions"),
            "a4",
            json!({"action": "acknowledge"}),
        )
        .await;
    assert_eq!(
        (status, p["code"].as_str()),
        (StatusCode::CONFLICT, Some("invalid_alert_transition")),
        "{p}"
    );
    let (status, detail) = server.get(&officer, &alert_path).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(detail["alert"]["status"], "resolved");

    // A closure notice, reported by the officer, puts a healthy school in red.
    let (status, p) = server
        .post(
            &officer,
            "/v1/institutions/INS-410922-001/events",
            "ev0",
            json!({"kind": "bankruptcy", "occurred_on": "2026-11-05"}),
        )
        .await;
    assert_eq!(
        (status, p["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("kind")),
        "{p}"
    );
    let (status, event) = server
        .post(&officer, "/v1/institutions/INS-410922-001/events", "ev1",
              json!({"kind": "closure_notice", "occurred_on": "2026-11-05", "note": "notice posted at the door"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{event}");
    let (_, events) = server
        .get(&officer, "/v1/institutions/INS-410922-001/events")
        .await;
    assert_eq!(events[0]["kind"], "closure_notice");
    let (_, risk) = server
        .get(&officer, "/v1/jurisdictions/410922/risk?as_of=2026-11-07")
        .await;
    let sunrise = risk["institutions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "INS-410922-001")
        .unwrap();
    assert!(
        sunrise["signals"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["kind"] == "institution_event" && s["severity"] == "red"),
        "{sunrise}"
    );

    let (status, overview) = server
        .get(&officer, "/v1/jurisdictions/410922/overview")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(overview["institutions"].as_array().unwrap().len(), 4);
    assert_eq!(overview["totals"][0]["currency"], "CNY");
    let golden = overview["institutions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["institution"]["id"] == "INS-410922-004")
        .unwrap();
    assert!(golden["red_alerts"].as_u64().unwrap() >= 1, "{golden}");
    let (_, metrics) = send(server.request(Method::GET, None, "/metrics")).await;
    assert!(!metrics
        .as_str()
        .unwrap()
        .contains("open_alerts{severity=\"red\"} 0"));
    server.stop().await;
}
both!(officers_see_risk_and_work_alerts);

both!(the_overview_pages_sorted_by_coverage_with_the_totals_of_every_page);
async fn the_overview_pages_sorted_by_coverage_with_the_totals_of_every_page(backend: Backend) {
    let server = Server::start(backend).await;
    api::demo::build(&server.store).await.unwrap();
    let county = code(api::demo::COUNTY);
    let officer = server
        .token(Role::Officer, Scope::Jurisdiction(county.clone()))
        .await;
    let (status, all) = server
        .get(
            &officer,
            "/v1/jurisdictions/410922/overview?sort=coverage&limit=500",
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{all}");
    assert_eq!(all["matched"], 4);
    assert_eq!(all["next_cursor"], serde_json::Value::Null);
    let rows = all["institutions"].as_array().unwrap();
    // Lowest coverage first; none (unconfirmed, nothing owed) last.
    let ratios: Vec<Option<rust_decimal::Decimal>> = rows
        .iter()
        .map(|r| r["coverage"]["ratio"].as_str().map(|s| s.parse().unwrap()))
        .collect();
    let mut sorted = ratios.clone();
    sorted.sort_by_key(|r| (r.is_none(), *r));
    assert_eq!(ratios, sorted, "{all}");
    assert!(ratios[0].is_some(), "{all}");

    // One a page: the same institutions in the same order, each page
    // carrying the totals of all of them.
    let mut paged = Vec::new();
    let mut cursor: Option<String> = None;
    while paged.len() < 10 {
        let path = match &cursor {
            Some(c) => {
                format!("/v1/jurisdictions/410922/overview?sort=coverage&limit=1&cursor={c}")
            }
            None => "/v1/jurisdictions/410922/overview?sort=coverage&limit=1".to_string(),
        };
        let (status, page) = server.get(&officer, &path).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert_eq!(page["institutions"].as_array().unwrap().len(), 1, "{page}");
        assert_eq!(page["totals"], all["totals"]);
        assert_eq!(page["matched"], 4);
        paged.push(page["institutions"][0]["institution"]["id"].clone());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    let ids: Vec<_> = rows
        .iter()
        .map(|r| r["institution"]["id"].clone())
        .collect();
    assert_eq!(paged, ids);

    // A search reaches beyond the first page; a filter narrows the totals.
    let last = &rows[3];
    let licence = last["institution"]["licence_no"]
        .as_str()
        .unwrap()
        .to_lowercase();
    let (status, found) = server
        .get(
            &officer,
            &format!("/v1/jurisdictions/410922/overview?sort=coverage&limit=1&q={licence}"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{found}");
    assert_eq!(found["matched"], 1);
    assert_eq!(
        found["institutions"][0]["institution"]["id"],
        last["institution"]["id"]
    );
    assert_eq!(
        found["totals"][0]["owed_to_families"],
        last["figures"]["owed_to_families"]
    );

    for (query, field) in [
        ("sort=riskiest", "sort"),
        ("level=orange", "level"),
        ("cursor=abc", "cursor"),
        ("limit=0", "limit"),
    ] {
        let (status, problem) = server
            .get(
                &officer,
                &format!("/v1/jurisdictions/410922/overview?{query}"),
            )
            .await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{query}: {problem}"
        );
        assert_eq!(problem["code"], "invalid_field", "{problem}");
        assert!(problem.to_string().contains(field), "{query}: {problem}");
    }
    server.stop().await;
}

both!(the_overview_shows_every_write_at_once_whoever_made_it);
/// The overview answers a repeated page from what it kept (issue 18's
/// aim for 64 officers at once), so it must see every write at once: the
/// service's own, and another process's on the same database (a
/// command-line ingest, a second instance), which no in-process signal
/// would reach.
async fn the_overview_shows_every_write_at_once_whoever_made_it(backend: Backend) {
    let server = Server::start(backend).await;
    jurisdictions(&server.store).await;
    let a = institution(&server.store, "INS-A", "410922").await;
    enrollment(&server.store, &a, "E-1", 40, 400_000).await;
    let officer = server
        .token(Role::Officer, Scope::Jurisdiction(code("410922")))
        .await;
    let page = "/v1/jurisdictions/410922/overview?sort=coverage&limit=10";
    let owed = |overview: &Value| {
        (
            overview["matched"].as_u64().unwrap(),
            overview["totals"][0]["owed_to_families"]
                .as_str()
                .unwrap_or("none")
                .to_string(),
        )
    };
    let (status, before) = server.get(&officer, page).await;
    assert_eq!(status, StatusCode::OK, "{before}");
    assert_eq!(owed(&before), (1, "0.00".to_string()), "{before}");
    // Asked again, unchanged.
    let (_, again) = server.get(&officer, page).await;
    assert_eq!(again, before);

    // The service's own write (group commit).
    let admin = server.admin().await;
    let (status, body) = server
        .post(
            &admin,
            "/v1/institutions/INS-A/payments",
            "pay-1",
            json!({"enrollment": "E-1", "amount": "100.00"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (_, after) = server.get(&officer, page).await;
    assert_eq!(owed(&after), (1, "100.00".to_string()), "{after}");

    // Another process's writes: a payment, then a new institution.
    let other = ledger_core::Store::connect(&server.url).await.unwrap();
    pay(&other, &a, "E-1", "elsewhere-1", 5_000).await;
    let (_, after) = server.get(&officer, page).await;
    assert_eq!(owed(&after), (1, "150.00".to_string()), "{after}");
    institution(&other, "INS-B", "410922").await;
    let (_, after) = server.get(&officer, page).await;
    assert_eq!(owed(&after), (2, "150.00".to_string()), "{after}");
    let ids: Vec<&str> = after["institutions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["institution"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["INS-A", "INS-B"], "{after}");
    server.stop().await;
}

#[path = "http/approvals.rs"]
mod approvals;
#[path = "http/exactly_once.rs"]
mod exactly_once;
#[path = "http/group.rs"]
mod group;
#[path = "http/lessons.rs"]
mod lessons;
#[path = "http/matrix.rs"]
mod matrix;
#[path = "http/refunds.rs"]
mod refunds;
#[path = "http/webhooks.rs"]
mod webhooks;
