//! Maker–checker over HTTP against a real server: no one person moves
//! money out alone. Every rule is refused for the same person (and for an
//! institution, an administrator, an officer elsewhere) with the books
//! unchanged, and allowed for two different officers; a county cannot
//! loosen a national floor; a province loosens its own limit with two.

use api::access::{Role, Scope};
use ledger_core::{ClientId, Command, Currency, EnrollmentId, InstitutionId, Request};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::*;

struct Officers {
    server: Server,
    institution: InstitutionId,
    /// Li Wei, county officer: asks.
    maker: String,
    /// Another token of Li Wei's.
    maker_again: String,
    /// Wang Fang, county officer: checks.
    checker: String,
    /// Zhao Min, city officer (above the county).
    city: String,
    /// An officer of another province's county.
    elsewhere: String,
    school: String,
    admin: String,
}

/// INS-A (county 410922) sold E-1 (40 hours, 4,000.00), was paid in full
/// and taught 10 hours: 1,000.00 is releasable, 3,000.00 refundable.
async fn setup(backend: Backend) -> Officers {
    let server = Server::start(backend).await;
    jurisdictions(&server.store).await;
    let institution = institution(&server.store, "INS-A", "410922").await;
    enrollment(&server.store, &institution, "E-1", 40, 400_000).await;
    pay(&server.store, &institution, "E-1", "pay-1", 400_000).await;
    server
        .store
        .execute(Request {
            institution: institution.clone(),
            client_id: ClientId::parse("use-1").unwrap(),
            currency: Currency::Cny,
            occurred_at: chrono::Utc::now(),
            external_ref: None,
            command: Command::ConsumeLessons {
                enrollment: EnrollmentId::parse("E-1").unwrap(),
                hours: 10,
            },
        })
        .await
        .unwrap();
    let county = || Scope::Jurisdiction(code("410922"));
    Officers {
        maker: server.token_named(Role::Officer, county(), "Li Wei").await,
        maker_again: server.token_named(Role::Officer, county(), "Li Wei").await,
        checker: server
            .token_named(Role::Officer, county(), "Wang Fang")
            .await,
        city: server
            .token_named(
                Role::Officer,
                Scope::Jurisdiction(code("410900")),
                "Zhao Min",
            )
            .await,
        elsewhere: server
            .token_named(
                Role::Officer,
                Scope::Jurisdiction(code("420922")),
                "Qian Jun",
            )
            .await,
        school: server
            .token(Role::Institution, Scope::Institution(institution.clone()))
            .await,
        admin: server.admin().await,
        server,
        institution,
    }
}

/// The rows of everything a request or an approval could change: the
/// books, payees, rule packs, refunds and the approvals themselves.
async fn books(store: &ledger_core::Store) -> Vec<(String, i64)> {
    let mut out = Vec::new();
    for t in [
        "entries",
        "postings",
        "institution_payees",
        "rule_packs",
        "refunds",
        "refund_events",
        "approvals",
        "approval_claims",
        "approval_decisions",
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

impl Officers {
    async fn answer(
        &self,
        token: &str,
        id: &str,
        verb: &str,
        key: &str,
        body: Value,
    ) -> (StatusCode, Value) {
        self.server
            .post(token, &format!("/v1/approvals/{id}/{verb}"), key, body)
            .await
    }

    /// Each of the people who may not approve `id` is refused with its
    /// code, and nothing changes.
    async fn nobody_but_a_second_officer(&self, id: &str, tag: &str) {
        let before = books(&self.server.store).await;
        let cases: [(&str, &str, StatusCode, &str); 5] = [
            (
                &self.maker,
                "maker",
                StatusCode::FORBIDDEN,
                "same_person_cannot_approve",
            ),
            (
                &self.maker_again,
                "maker-again",
                StatusCode::FORBIDDEN,
                "same_person_cannot_approve",
            ),
            (&self.school, "school", StatusCode::FORBIDDEN, "forbidden"),
            (
                &self.admin,
                "admin",
                StatusCode::FORBIDDEN,
                "approver_not_an_officer",
            ),
            (
                &self.elsewhere,
                "elsewhere",
                StatusCode::NOT_FOUND,
                "not_found",
            ),
        ];
        for (token, who, status, code) in cases {
            let (got, p) = self
                .answer(token, id, "approve", &format!("{tag}-{who}"), json!({}))
                .await;
            assert_eq!(
                (got, p["code"].as_str()),
                (status, Some(code)),
                "{who}: {p}"
            );
            let (got, p) = self
                .answer(
                    token,
                    id,
                    "reject",
                    &format!("{tag}-{who}-r"),
                    json!({"reason": "no"}),
                )
                .await;
            assert_eq!(
                (got, p["code"].as_str()),
                (status, Some(code)),
                "{who} rejecting: {p}"
            );
        }
        assert_eq!(
            books(&self.server.store).await,
            before,
            "a refusal changed the books"
        );
    }

    async fn put_payee(&self, token: &str, account: &str) -> (StatusCode, Value) {
        send(
            self.server
                .request(Method::PUT, Some(token), "/v1/institutions/INS-A/payee")
                .json(&json!({"name": "INS-A School", "account": account, "bank": "CMBCCNBS"})),
        )
        .await
    }
}

async fn a_payee_and_a_release_need_a_second_different_officer(backend: Backend) {
    let o = setup(backend).await;
    let store = &o.server.store;

    // A payee change waits; nothing is on file until a second officer says so.
    let (status, asked) = o.put_payee(&o.maker, "6222000011112222").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{asked}");
    assert_eq!(
        (asked["kind"].as_str(), asked["state"].as_str()),
        (Some("payee_change"), Some("pending"))
    );
    assert!(
        asked["requested_by"]
            .as_str()
            .unwrap()
            .starts_with("Li Wei"),
        "{asked}"
    );
    let payee_id = asked["id"].as_str().unwrap().to_string();
    let (status, _) = o
        .server
        .get(&o.school, "/v1/institutions/INS-A/payee")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    o.nobody_but_a_second_officer(&payee_id, "payee").await;
    assert!(store.payee(&o.institution).await.unwrap().is_none());

    // The pending list, scoped by jurisdiction and paged.
    let (status, page) = o.server.get(&o.checker, "/v1/approvals").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["items"].as_array().unwrap().len(), 1, "{page}");
    let (_, page) = o.server.get(&o.city, "/v1/approvals?limit=1").await;
    assert_eq!(page["items"][0]["id"], payee_id.as_str());
    let (_, page) = o.server.get(&o.elsewhere, "/v1/approvals").await;
    assert_eq!(page["items"].as_array().unwrap().len(), 0, "{page}");
    let (status, _) = o.server.get(&o.school, "/v1/approvals").await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let (status, done) = o
        .answer(&o.checker, &payee_id, "approve", "ok-payee", json!({}))
        .await;
    assert_eq!(
        (status, done["state"].as_str()),
        (StatusCode::OK, Some("approved")),
        "{done}"
    );
    assert!(
        done["decided_by"]
            .as_str()
            .unwrap()
            .starts_with("Wang Fang"),
        "{done}"
    );
    let (status, got) = o
        .server
        .get(&o.school, "/v1/institutions/INS-A/payee")
        .await;
    assert_eq!(
        (status, got["account"].as_str()),
        (StatusCode::OK, Some("6222000011112222"))
    );
    // Decided once: a second answer, even from an officer who may, is refused.
    let (status, p) = o
        .answer(&o.city, &payee_id, "approve", "ok-payee-2", json!({}))
        .await;
    assert_eq!(
        (status, p["code"].as_str()),
        (StatusCode::CONFLICT, Some("approval_already_decided")),
        "{p}"
    );
    // The account on file, put again, needs no one.
    let (status, _) = o.put_payee(&o.maker, "6222000011112222").await;
    assert_eq!(status, StatusCode::OK);

    // A manual release waits too: no entry until the second officer.
    let before = books(store).await;
    let (status, asked) = o
        .server
        .post(
            &o.maker,
            "/v1/institutions/INS-A/releases",
            "REL-1",
            json!({"amount": "600.00"}),
        )
        .await;
    assert_eq!(
        (status, asked["kind"].as_str()),
        (StatusCode::ACCEPTED, Some("release")),
        "{asked}"
    );
    let release_id = asked["id"].as_str().unwrap().to_string();
    let after = books(store).await;
    assert_eq!(
        after.iter().find(|(t, _)| t == "entries"),
        before.iter().find(|(t, _)| t == "entries"),
        "a release asked for is not in the books"
    );
    o.nobody_but_a_second_officer(&release_id, "release").await;
    let (status, done) = o
        .answer(&o.city, &release_id, "approve", "ok-rel", json!({}))
        .await;
    assert_eq!(
        (status, done["state"].as_str()),
        (StatusCode::OK, Some("approved")),
        "{done}"
    );
    let sheet = store.balances(&o.institution).await.unwrap();
    let releasable = sheet
        .accounts
        .iter()
        .find(|a| a.account == "releasable")
        .unwrap();
    assert_eq!(
        releasable.available_minor, 40_000,
        "600.00 of 1,000.00 on its way: {releasable:?}"
    );
    let entries = store.entries(&o.institution, 0, 100).await.unwrap();
    assert_eq!(
        entries
            .iter()
            .filter(|e| e.client_id.as_str() == "REL-1")
            .count(),
        1,
        "the release is in the books once"
    );

    // A rejection says why, and nothing happens, ever.
    let (_, asked) = o
        .server
        .post(
            &o.maker,
            "/v1/institutions/INS-A/releases",
            "REL-2",
            json!({"amount": "100.00"}),
        )
        .await;
    let id = asked["id"].as_str().unwrap().to_string();
    let (status, p) = o.answer(&o.checker, &id, "reject", "no-1", json!({})).await;
    assert_eq!(
        (status, p["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("reason")),
        "{p}"
    );
    let before = books(store).await;
    let (status, done) = o
        .answer(
            &o.checker,
            &id,
            "reject",
            "no-2",
            json!({"reason": "not yet taught"}),
        )
        .await;
    assert_eq!(
        (status, done["state"].as_str()),
        (StatusCode::OK, Some("rejected")),
        "{done}"
    );
    assert_eq!(done["reason"], "not yet taught");
    let (status, p) = o
        .answer(&o.city, &id, "approve", "ok-late", json!({}))
        .await;
    assert_eq!(
        (status, p["code"].as_str()),
        (StatusCode::CONFLICT, Some("approval_already_decided")),
        "{p}"
    );
    let after = books(store).await;
    let entries = |b: &[(String, i64)]| b.iter().find(|(t, _)| t == "entries").unwrap().1;
    assert_eq!(
        entries(&after),
        entries(&before),
        "a rejected release moved money"
    );
    let (_, page) = o.server.get(&o.checker, "/v1/approvals?state=all").await;
    let states: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["state"].as_str().unwrap())
        .collect();
    assert_eq!(states.len(), 3, "{page}");
    let report = store.verify().await.unwrap();
    assert!(report.ok(), "{report:?}");
    o.server.stop().await;
}
both!(a_payee_and_a_release_need_a_second_different_officer);

async fn a_refund_is_never_approved_by_who_asked_and_above_the_threshold_needs_two(
    backend: Backend,
) {
    let o = setup(backend).await;
    let store = &o.server.store;
    // The county asks for a second officer above 1,000.00: a new limit
    // where none was, so it tightens and is in force at once.
    let (status, p) = o
        .server
        .post(
            &o.maker,
            "/v1/jurisdictions/410922/rule-packs",
            "rp-1",
            json!({
                "version": 1, "effective_from": "2026-01-01",
                "params": {"refund_two_officers_above_minor": 100000}
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{p}");
    let refund =
        |token: String, key: &'static str, amount: &'static str| {
            let server = &o.server;
            async move {
                let (status, r) = server
                .post(&token, "/v1/institutions/INS-A/refunds", key, json!({
                    "enrollment": "E-1", "amount": amount,
                    "payee": {"name": "张三", "account": "6214830100123456", "bank": "CMBCCNBS"}
                }))
                .await;
                assert_eq!(status, StatusCode::CREATED, "{r}");
                r["id"].as_str().unwrap().to_string()
            }
        };

    // At or below the threshold one officer decides, but never the one who asked.
    let small = refund(o.maker.clone(), "rf-small", "500.00").await;
    let before = books(store).await;
    for (token, key) in [(&o.maker, "a1"), (&o.maker_again, "a2")] {
        let (status, p) = o
            .server
            .post(
                token,
                &format!("/v1/refunds/{small}/approve"),
                key,
                json!({}),
            )
            .await;
        assert_eq!(
            (status, p["code"].as_str()),
            (StatusCode::FORBIDDEN, Some("same_person_cannot_approve")),
            "{p}"
        );
    }
    assert_eq!(books(store).await, before, "a refusal changed the books");
    let (status, r) = o
        .server
        .post(
            &o.checker,
            &format!("/v1/refunds/{small}/approve"),
            "a3",
            json!({}),
        )
        .await;
    assert_eq!(
        (status, r["state"].as_str()),
        (StatusCode::OK, Some("instructed")),
        "{r}"
    );

    // Above it: the first officer's approval waits for a second.
    let large = refund(o.maker.clone(), "rf-large", "2000.00").await;
    let (status, asked) = o
        .server
        .post(
            &o.checker,
            &format!("/v1/refunds/{large}/approve"),
            "b1",
            json!({"comment": "family moved"}),
        )
        .await;
    assert_eq!(
        (status, asked["kind"].as_str()),
        (StatusCode::ACCEPTED, Some("refund")),
        "{asked}"
    );
    let id = asked["id"].as_str().unwrap().to_string();
    let (_, r) = o
        .server
        .get(&o.checker, &format!("/v1/refunds/{large}"))
        .await;
    assert_eq!(r["state"], "requested", "{r}");
    let before = books(store).await;
    // The first approver may not be the second; nor may the refund's own
    // requester (Li Wei), by either token.
    for (token, key) in [(&o.checker, "b2"), (&o.maker, "b3"), (&o.maker_again, "b4")] {
        let (status, p) = o.answer(token, &id, "approve", key, json!({})).await;
        assert_eq!(
            (status, p["code"].as_str()),
            (StatusCode::FORBIDDEN, Some("same_person_cannot_approve")),
            "{p}"
        );
    }
    let (status, p) = o.answer(&o.school, &id, "approve", "b5", json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{p}");
    assert_eq!(books(store).await, before, "a refusal changed the books");
    let (status, done) = o.answer(&o.city, &id, "approve", "b6", json!({})).await;
    assert_eq!(
        (status, done["state"].as_str()),
        (StatusCode::OK, Some("approved")),
        "{done}"
    );
    let (_, r) = o
        .server
        .get(&o.checker, &format!("/v1/refunds/{large}"))
        .await;
    assert_eq!(r["state"], "instructed", "{r}");
    let sheet = store.balances(&o.institution).await.unwrap();
    let payable = sheet
        .accounts
        .iter()
        .find(|a| a.account == "refund_payable")
        .unwrap();
    assert_eq!(
        payable.balance_minor, 250_000,
        "500.00 + 2,000.00 approved: {payable:?}"
    );
    o.server.stop().await;
}
both!(a_refund_is_never_approved_by_who_asked_and_above_the_threshold_needs_two);

async fn a_county_cannot_loosen_a_national_floor_and_a_province_loosens_its_own_with_two(
    backend: Backend,
) {
    let o = setup(backend).await;
    let store = &o.server.store;
    let province = |name: &'static str| {
        o.server
            .token_named(Role::Officer, Scope::Jurisdiction(code("410000")), name)
    };
    let (sun, zhou) = (province("Sun Li").await, province("Zhou Xun").await);
    let rules = || async {
        let i = store.institution(&o.institution).await.unwrap();
        store.rules_for(&i, day(2026, 12, 1)).await.unwrap().params
    };

    // The county lifts the national caps (a 10-year course, 900,000.00).
    let before = books(store).await;
    let (status, p) = o
        .server
        .post(
            &o.maker,
            "/v1/jurisdictions/410922/rule-packs",
            "lift",
            json!({
                "version": 1, "effective_from": "2026-01-01",
                "params": {
                    "max_months_per_charge": {"limit": 120, "action": "reject"},
                    "max_amount_per_charge_minor": {"limit": 90000000, "action": "reject"}
                }
            }),
        )
        .await;
    assert_eq!(
        (status, p["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("loosens_floor")),
        "{p}"
    );
    let detail = p["detail"].as_str().unwrap();
    for part in [
        "max_months_per_charge",
        "120 (reject)",
        "3 (reject)",
        "national defaults",
    ] {
        assert!(detail.contains(part), "{part:?} not in {detail}");
    }
    // Nor may a second officer approve it into force: there is nothing to approve.
    let (_, page) = o.server.get(&o.checker, "/v1/approvals").await;
    assert_eq!(page["items"].as_array().unwrap().len(), 0, "{page}");
    assert_eq!(
        books(store).await,
        before,
        "a refused pack changed something"
    );
    assert_eq!(rules().await.max_months_per_charge.unwrap().limit, 3);

    // The province tightens: in force at once.
    let (status, p) = o
        .server
        .post(
            &sun,
            "/v1/jurisdictions/410000/rule-packs",
            "p1",
            json!({
                "version": 1, "effective_from": "2026-01-01",
                "params": {"max_hours_per_charge": {"limit": 40, "action": "reject"}}
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{p}");
    assert_eq!(rules().await.max_hours_per_charge.unwrap().limit, 40);
    // The county may not loosen what the province set.
    let (status, p) = o
        .server
        .post(
            &o.maker,
            "/v1/jurisdictions/410922/rule-packs",
            "c50",
            json!({
                "version": 1, "effective_from": "2026-01-01",
                "params": {"max_hours_per_charge": {"limit": 50, "action": "reject"}}
            }),
        )
        .await;
    assert_eq!(
        (status, p["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("loosens_floor")),
        "{p}"
    );
    assert!(p["detail"].as_str().unwrap().contains("410000@1"), "{p}");

    // The province loosens its own limit back within the national floor:
    // it waits for a second province officer.
    let before = books(store).await;
    let (status, asked) = o
        .server
        .post(
            &sun,
            "/v1/jurisdictions/410000/rule-packs",
            "p2",
            json!({
                "version": 2, "effective_from": "2026-01-01",
                "params": {"max_hours_per_charge": {"limit": 60, "action": "reject"}}
            }),
        )
        .await;
    assert_eq!(
        (status, asked["kind"].as_str()),
        (StatusCode::ACCEPTED, Some("rule_pack")),
        "{asked}"
    );
    assert_eq!(asked["subject"], "410000@2");
    let id = asked["id"].as_str().unwrap().to_string();
    assert_eq!(
        rules().await.max_hours_per_charge.unwrap().limit,
        40,
        "not before approval"
    );
    let (status, p) = o.answer(&sun, &id, "approve", "s1", json!({})).await;
    assert_eq!(
        (status, p["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("same_person_cannot_approve")),
        "{p}"
    );
    // A county officer cannot even see the province's request.
    let (status, _) = o.answer(&o.checker, &id, "approve", "s2", json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let after = books(store).await;
    let packs = |b: &[(String, i64)]| b.iter().find(|(t, _)| t == "rule_packs").unwrap().1;
    assert_eq!(packs(&after), packs(&before));
    let (status, done) = o.answer(&zhou, &id, "approve", "z1", json!({})).await;
    assert_eq!(
        (status, done["state"].as_str()),
        (StatusCode::OK, Some("approved")),
        "{done}"
    );
    assert_eq!(rules().await.max_hours_per_charge.unwrap().limit, 60);
    // Above the national floor, even the province is refused.
    let (status, p) = o
        .server
        .post(
            &zhou,
            "/v1/jurisdictions/410000/rule-packs",
            "p3",
            json!({
                "version": 3, "effective_from": "2026-01-01",
                "params": {"max_hours_per_charge": {"limit": 61, "action": "reject"}}
            }),
        )
        .await;
    assert_eq!(
        (status, p["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("loosens_floor")),
        "{p}"
    );
    o.server.stop().await;
}
both!(a_county_cannot_loosen_a_national_floor_and_a_province_loosens_its_own_with_two);

/// A refund nobody answered by its day is deemed approved by the workflow;
/// above the rule pack's two-officer threshold that is only the first
/// approval: the refund waits, as the workflow's request, for an officer.
async fn a_deemed_refund_above_the_threshold_waits_for_an_officer(backend: Backend) {
    use api::app::jobs::{tick_jobs, Job};
    use ledger_core::domain::refunds::{Payee, Refund, RefundState};
    let o = setup(backend).await;
    let store = &o.server.store;
    let (status, p) = o
        .server
        .post(
            &o.maker,
            "/v1/jurisdictions/410922/rule-packs",
            "rp-1",
            json!({
                "version": 1, "effective_from": "2026-01-01",
                "params": {"refund_two_officers_above_minor": 100000}
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{p}");
    // Two requests from the family, long unanswered.
    for (id, amount_minor) in [("RFSMALL", 50_000), ("RFLARGE", 200_000)] {
        store
            .create_refund(&Refund {
                institution: o.institution.clone(),
                id: ledger_core::domain::ids::RefundId::parse(id).unwrap(),
                enrollment: EnrollmentId::parse("E-1").unwrap(),
                amount_minor: Some(amount_minor),
                payee: Payee {
                    name: "张三".into(),
                    account: "6214830100123456".into(),
                    bank: "CMBCCNBS".into(),
                },
                reason: None,
                requested_by: "family".into(),
                requested_on: day(2026, 1, 5),
                answer_by: day(2026, 1, 12),
                state: RefundState::Requested,
                pay_by: None,
                instruction_id: None,
            })
            .await
            .unwrap();
    }
    let banks = api::app::banks::BankDirectory::default();
    for _ in 0..2 {
        tick_jobs(store, &banks, &[Job::Workflow]).await.unwrap();
    }
    let state = |id: &'static str| {
        let server = &o.server;
        let token = o.checker.clone();
        async move {
            let (_, r) = server.get(&token, &format!("/v1/refunds/{id}")).await;
            r["state"].as_str().unwrap_or("?").to_string()
        }
    };
    assert_eq!(state("RFSMALL").await, "instructed");
    assert_eq!(state("RFLARGE").await, "requested");
    // One request of the workflow's, whatever the number of passes.
    let (status, list) = o.server.get(&o.checker, "/v1/approvals").await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let waiting: Vec<&Value> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["kind"] == "refund" && a["state"] == "pending")
        .collect();
    assert_eq!(waiting.len(), 1, "{list}");
    assert!(
        waiting[0]["summary"]
            .as_str()
            .unwrap()
            .contains("deemed approved: not answered by 2026-01-12"),
        "{list}"
    );
    let id = waiting[0]["id"].as_str().unwrap().to_string();
    let (status, p) = o.answer(&o.school, &id, "approve", "d1", json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{p}");
    let (status, done) = o.answer(&o.checker, &id, "approve", "d2", json!({})).await;
    assert_eq!(
        (status, done["state"].as_str()),
        (StatusCode::OK, Some("approved")),
        "{done}"
    );
    assert_eq!(state("RFLARGE").await, "instructed");
    o.server.stop().await;
}
both!(a_deemed_refund_above_the_threshold_waits_for_an_officer);

impl Officers {
    /// The payee on file (two officers), then a release of `amount` asked
    /// for by Li Wei under `instruction`: the request's id.
    async fn payee_and_release(&self, instruction: &str, amount: &str) -> String {
        if self
            .server
            .store
            .payee(&self.institution)
            .await
            .unwrap()
            .is_none()
        {
            let (_, asked) = self.put_payee(&self.maker, "6222000011112222").await;
            let id = asked["id"].as_str().unwrap().to_string();
            let (status, done) = self
                .answer(&self.checker, &id, "approve", "payee-ok", json!({}))
                .await;
            assert_eq!(status, StatusCode::OK, "{done}");
        }
        let (status, asked) = self
            .server
            .post(
                &self.maker,
                "/v1/institutions/INS-A/releases",
                instruction,
                json!({"amount": amount}),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{asked}");
        asked["id"].as_str().unwrap().to_string()
    }

    async fn entries_under(&self, instruction: &str) -> usize {
        self.server
            .store
            .entries(&self.institution, 0, i64::MAX)
            .await
            .unwrap()
            .iter()
            .filter(|e| e.client_id.as_str() == instruction)
            .count()
    }

    async fn state(&self, id: &str) -> Value {
        let (status, a) = self
            .server
            .get(&self.checker, &format!("/v1/approvals/{id}"))
            .await;
        assert_eq!(status, StatusCode::OK, "{a}");
        a
    }
}

/// Two eligible officers answer one release at once, several times each
/// (Wang Fang approving, Zhao Min rejecting, every call its own key):
/// exactly one decision wins, its taker gets it, every call of the other
/// is a 409 naming the winner, and the release is in the books once or
/// not at all.
async fn concurrent_approvals_and_rejections_have_exactly_one_winner(backend: Backend) {
    let o = setup(backend).await;
    let store = &o.server.store;
    let id = o.payee_and_release("REL-RACE", "600.00").await;
    let approve = |i: u32| {
        let id = id.clone();
        let o = &o;
        async move {
            o.answer(
                &o.checker,
                &id,
                "approve",
                &format!("race-a-{i}"),
                json!({}),
            )
            .await
        }
    };
    let reject = |i: u32| {
        let id = id.clone();
        let o = &o;
        async move {
            o.answer(
                &o.city,
                &id,
                "reject",
                &format!("race-r-{i}"),
                json!({"reason": "not yet taught"}),
            )
            .await
        }
    };
    let (a1, r1, a2, r2, a3, r3) = tokio::join!(
        approve(1),
        reject(1),
        approve(2),
        reject(2),
        approve(3),
        reject(3)
    );
    let approvals = [a1, a2, a3];
    let rejections = [r1, r2, r3];
    let decided = o.state(&id).await;
    let (won, lost, winner, loser_calls) = match decided["state"].as_str() {
        Some("approved") => (&approvals, &rejections, "Wang Fang", "rejecting"),
        Some("rejected") => (&rejections, &approvals, "Zhao Min", "approving"),
        other => panic!("the approval is {other:?} after every answer: {decided}"),
    };
    // The winner's own calls get the decision, or (a repeat arriving
    // while the effect of the first runs) a 409 saying it is under way.
    for (status, body) in won {
        assert!(
            (*status == StatusCode::OK && body["state"] == decided["state"])
                || (*status == StatusCode::CONFLICT
                    && body["code"] == "approval_being_decided"
                    && body.to_string().contains(winner)),
            "{winner}'s call: {status} {body}"
        );
    }
    assert!(
        won.iter().any(|(status, _)| *status == StatusCode::OK),
        "{won:?}"
    );
    for (status, body) in lost {
        let code = body["code"].as_str().unwrap_or_default();
        assert!(
            *status == StatusCode::CONFLICT
                && ["approval_already_decided", "approval_being_decided"].contains(&code),
            "{loser_calls} after {winner} won: {status} {body}"
        );
        assert!(
            body["detail"].as_str().unwrap_or_default().contains(winner),
            "the 409 names the winner {winner}: {body}"
        );
    }
    let expected = usize::from(decided["state"] == "approved");
    assert_eq!(
        o.entries_under("REL-RACE").await,
        expected,
        "the release is in the books {expected} time(s): {decided}"
    );
    let counts = books(store).await;
    let count = |t: &str| counts.iter().find(|(n, _)| n == t).unwrap().1;
    // The payee's approval and this one: one claim and one decision each.
    assert_eq!(
        (count("approval_claims"), count("approval_decisions")),
        (2, 2)
    );
    let report = store.verify().await.unwrap();
    assert!(report.ok(), "{:#?}", report.failures);
    o.server.stop().await;
}
both!(concurrent_approvals_and_rejections_have_exactly_one_winner);

/// An approval cut short between its claim and its effect (the claim is
/// taken behind the server's back, as a crash right after it would leave
/// it) shows as approving, refuses a rejection naming who is approving,
/// and is completed once by the workflow job: the release is in the
/// books once, and a second pass finds nothing to do.
async fn an_approval_cut_short_after_its_claim_is_completed_once_and_never_rejected(
    backend: Backend,
) {
    let o = setup(backend).await;
    let store = &o.server.store;
    let id = o.payee_and_release("REL-CUT", "300.00").await;
    let at = chrono::Utc::now();
    let (claimed, lease) = store
        .claim_approval(
            &id,
            &ledger_core::domain::approvals::Claim {
                approved: true,
                by: "Wang Fang (officer token cut)".into(),
                token: "cut".into(),
                at,
            },
            at - chrono::Duration::minutes(2),
        )
        .await
        .unwrap();
    assert_eq!((claimed.state(), lease.is_some()), ("approving", true));
    let seen = o.state(&id).await;
    assert_eq!(
        (seen["state"].as_str(), seen["claimed_by"].as_str()),
        (Some("approving"), Some("Wang Fang (officer token cut)")),
        "{seen}"
    );
    assert_eq!(o.entries_under("REL-CUT").await, 0);
    let before = books(store).await;
    let (status, p) = o
        .answer(
            &o.city,
            &id,
            "reject",
            "cut-r",
            json!({"reason": "changed my mind"}),
        )
        .await;
    assert_eq!(
        (status, p["code"].as_str()),
        (StatusCode::CONFLICT, Some("approval_being_decided")),
        "{p}"
    );
    assert!(p.to_string().contains("Wang Fang"), "{p}");
    assert_eq!(
        books(store).await,
        before,
        "a refused rejection changed something"
    );
    // Not yet stalled: the job leaves a live approver alone.
    assert_eq!(
        api::app::approvals::complete_stalled(store, chrono::Duration::hours(1))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        api::app::approvals::complete_stalled(store, chrono::Duration::zero())
            .await
            .unwrap(),
        1
    );
    let done = o.state(&id).await;
    assert_eq!(done["state"], "approved", "{done}");
    assert!(done["decided_by"]
        .as_str()
        .unwrap()
        .starts_with("Wang Fang"));
    assert_eq!(o.entries_under("REL-CUT").await, 1);
    assert_eq!(
        api::app::approvals::complete_stalled(store, chrono::Duration::zero())
            .await
            .unwrap(),
        0
    );
    assert_eq!(o.entries_under("REL-CUT").await, 1);
    let report = store.verify().await.unwrap();
    assert!(report.ok(), "{:#?}", report.failures);
    o.server.stop().await;
}
both!(an_approval_cut_short_after_its_claim_is_completed_once_and_never_rejected);

/// Two releases asked for while 1,000.00 was releasable, 800.00 each: the
/// first approved is released; the second, approved after, is refused by
/// the books with nothing changed (no entry, no claim, no decision) and
/// stays pending, to be rejected.
async fn an_approval_the_books_refuse_stays_pending_and_changes_nothing(backend: Backend) {
    let o = setup(backend).await;
    let store = &o.server.store;
    let first = o.payee_and_release("REL-A", "800.00").await;
    let second = o.payee_and_release("REL-B", "800.00").await;
    let (status, done) = o
        .answer(&o.checker, &first, "approve", "a-ok", json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    let before = books(store).await;
    let (status, p) = o
        .answer(&o.checker, &second, "approve", "b-ok", json!({}))
        .await;
    assert_eq!(
        (status, p["code"].as_str()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("release_exceeds_releasable")
        ),
        "{p}"
    );
    assert_eq!(
        books(store).await,
        before,
        "a refused approval changed something"
    );
    assert_eq!(o.state(&second).await["state"], "pending");
    assert_eq!(o.entries_under("REL-B").await, 0);
    // Pending, so another officer may still reject it.
    let (status, done) = o
        .answer(
            &o.city,
            &second,
            "reject",
            "b-no",
            json!({"reason": "nothing left to release"}),
        )
        .await;
    assert_eq!(
        (status, done["state"].as_str()),
        (StatusCode::OK, Some("rejected")),
        "{done}"
    );
    assert_eq!(o.entries_under("REL-A").await, 1);
    let report = store.verify().await.unwrap();
    assert!(report.ok(), "{:#?}", report.failures);
    o.server.stop().await;
}
both!(an_approval_the_books_refuse_stays_pending_and_changes_nothing);

/// A refund's second approval cut short after the refund moved (a crash
/// between its effect and its decision): the retry (here the workflow
/// job) sees the move this approval made and records the decision, rather
/// than taking the approved refund for a refusal; the refund moved once.
async fn a_refund_approval_cut_short_after_its_move_is_recorded_not_refused(backend: Backend) {
    use ledger_core::domain::refunds::RefundState;
    let o = setup(backend).await;
    let store = &o.server.store;
    let (status, p) = o
        .server
        .post(
            &o.maker,
            "/v1/jurisdictions/410922/rule-packs",
            "rp-1",
            json!({
                "version": 1, "effective_from": "2026-01-01",
                "params": {"refund_two_officers_above_minor": 100000}
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{p}");
    let (status, r) = o
        .server
        .post(
            &o.maker,
            "/v1/institutions/INS-A/refunds",
            "rf-large",
            json!({
                "enrollment": "E-1", "amount": "2000.00",
                "payee": {"name": "张三", "account": "6214830100123456", "bank": "CMBCCNBS"}
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{r}");
    let refund = r["id"].as_str().unwrap().to_string();
    let (status, asked) = o
        .server
        .post(
            &o.checker,
            &format!("/v1/refunds/{refund}/approve"),
            "b1",
            json!({"comment": "family moved"}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{asked}");
    let id = asked["id"].as_str().unwrap().to_string();
    let by = "Zhao Min (officer token cut)";
    let at = chrono::Utc::now();
    let (_, lease) = store
        .claim_approval(
            &id,
            &ledger_core::domain::approvals::Claim {
                approved: true,
                by: by.into(),
                token: "cut".into(),
                at,
            },
            at - chrono::Duration::minutes(2),
        )
        .await
        .unwrap();
    assert!(lease.is_some());
    // The effect, as the approval makes it, and then the crash.
    assert!(store
        .move_refund(
            &o.institution,
            &refund,
            RefundState::Requested,
            RefundState::Approved,
            by,
            Some(&format!(
                "family moved; approved first by {} (approval {id})",
                asked["requested_by"].as_str().unwrap()
            )),
            None,
            None,
        )
        .await
        .unwrap());
    assert_eq!(
        api::app::approvals::complete_stalled(store, chrono::Duration::zero())
            .await
            .unwrap(),
        1
    );
    let done = o.state(&id).await;
    assert_eq!(
        (done["state"].as_str(), done["decided_by"].as_str()),
        (Some("approved"), Some(by)),
        "{done}"
    );
    let trail = store.refund_trail(&o.institution, &refund).await.unwrap();
    assert_eq!(
        trail.iter().filter(|e| e.state == "approved").count(),
        1,
        "{trail:?}"
    );
    let report = store.verify().await.unwrap();
    assert!(report.ok(), "{:#?}", report.failures);
    o.server.stop().await;
}
both!(a_refund_approval_cut_short_after_its_move_is_recorded_not_refused);
