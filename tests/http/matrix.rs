//! The authorization matrix: every endpoint × every role × a target in the
//! token's scope and one outside it, generated from two tables written down
//! from the specification (who may do what; who can see what), not from the
//! code. Outside the scope must look exactly like absent (404), and a
//! refused write leaves every table as it was.

use api::access::{Role, Scope};
use ledger_core::domain::alerts::Finding;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::*;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Target {
    Institution,
    Jurisdiction,
    /// A city (new jurisdictions are registered below one).
    City,
    Bank,
    /// Lists: filtered by scope, never refused for it.
    Nothing,
}

struct Endpoint {
    name: &'static str,
    method: Method,
    /// `{i}` institution, `{j}` jurisdiction or city, `{b}` bank, `{n}` a
    /// number unique to the case, `{l}` a pending lesson record, `{r}` a
    /// requested refund.
    path: &'static str,
    target: Target,
    /// The roles the specification lets do this.
    allowed: &'static [Role],
    body: fn(&Fixture, usize) -> Option<Value>,
    success: StatusCode,
}

use Role::*;

const READERS: &[Role] = &[Officer, Platform, Institution, Admin];
/// Those who read one enrollment's account: the readers, and its family.
const FAMILY_READERS: &[Role] = &[Officer, Platform, Institution, Admin, Family];

/// Pending lesson records of E-FAM per institution: one for each use of
/// `{l}` (every role, inside and out, of the two endpoints that answer).
const LESSONS_PER_INSTITUTION: usize = 2 * 6;

/// Requested refunds of E-FAM per institution: one for each use of `{r}`
/// (every role of the three refund endpoints), so that each case meets a
/// refund waiting for its decision.
const REFUNDS_PER_INSTITUTION: usize = 3 * 6;

/// The `k`-th requested refund of an institution.
fn refund_id(institution: &str, k: usize) -> ledger_core::RefundId {
    api::app::refunds::refund_id_for("matrix-setup", &format!("{institution}-{k}")).unwrap()
}

fn endpoints() -> Vec<Endpoint> {
    let none = |_: &Fixture, _: usize| None;
    vec![
        Endpoint {
            name: "get institution",
            method: Method::GET,
            path: "/v1/institutions/{i}",
            target: Target::Institution,
            allowed: READERS,
            body: none,
            success: StatusCode::OK,
        },
        Endpoint {
            name: "balances",
            method: Method::GET,
            path: "/v1/institutions/{i}/balances",
            target: Target::Institution,
            allowed: READERS,
            body: none,
            success: StatusCode::OK,
        },
        Endpoint {
            name: "journal",
            method: Method::GET,
            path: "/v1/institutions/{i}/journal",
            target: Target::Institution,
            allowed: READERS,
            body: none,
            success: StatusCode::OK,
        },
        Endpoint {
            name: "entries",
            method: Method::GET,
            path: "/v1/institutions/{i}/entries",
            target: Target::Institution,
            allowed: READERS,
            body: none,
            success: StatusCode::OK,
        },
        Endpoint {
            name: "list institutions",
            method: Method::GET,
            path: "/v1/institutions",
            target: Target::Nothing,
            allowed: READERS,
            body: none,
            success: StatusCode::OK,
        },
        Endpoint {
            name: "reissue a family token",
            method: Method::POST,
            path: "/v1/institutions/{i}/enrollments/E-PAY/family-token",
            target: Target::Institution,
            allowed: &[Institution, Platform, Admin],
            body: |_, _| Some(json!({})),
            success: StatusCode::CREATED,
        },
        Endpoint {
            name: "enrollments",
            method: Method::GET,
            path: "/v1/institutions/{i}/enrollments",
            target: Target::Institution,
            allowed: READERS,
            body: none,
            success: StatusCode::OK,
        },
        Endpoint {
            name: "enroll",
            method: Method::POST,
            path: "/v1/institutions/{i}/enrollments",
            target: Target::Institution,
            allowed: &[Institution, Platform, Admin],
            body: |_, n| {
                Some(
                    json!({"id": format!("E-M{n}"), "student_ref": "S", "hours_bought": 10, "price": "100.00",
                                     "course_start": "2026-09-01", "course_end": "2026-11-30"}),
                )
            },
            success: StatusCode::CREATED,
        },
        Endpoint {
            name: "pay",
            method: Method::POST,
            path: "/v1/institutions/{i}/payments",
            target: Target::Institution,
            allowed: &[Platform, Bank, Admin],
            body: |_, _| Some(json!({"enrollment": "E-PAY", "amount": "1.00"})),
            success: StatusCode::CREATED,
        },
        Endpoint {
            name: "consume",
            method: Method::POST,
            path: "/v1/institutions/{i}/consumptions",
            target: Target::Institution,
            // Lessons confirmed elsewhere, straight into the books: the
            // platform's imports only (institutions record lessons for the
            // family to confirm).
            allowed: &[Platform, Admin],
            body: |_, _| Some(json!({"enrollment": "E-USE", "hours": 1})),
            success: StatusCode::CREATED,
        },
        Endpoint {
            name: "reconciliation",
            method: Method::GET,
            path: "/v1/institutions/{i}/reconciliation",
            target: Target::Institution,
            allowed: &[Officer, Admin],
            body: none,
            success: StatusCode::OK,
        },
        Endpoint {
            name: "recorded reconciliation days",
            method: Method::GET,
            path: "/v1/institutions/{i}/reconciliation/days",
            target: Target::Institution,
            allowed: &[Officer, Admin],
            body: none,
            success: StatusCode::OK,
        },
        Endpoint {
            name: "suggestions",
            method: Method::GET,
            path: "/v1/institutions/{i}/suggestions",
            target: Target::Institution,
            allowed: &[Officer, Admin],
            body: none,
            success: StatusCode::OK,
        },
        Endpoint {
            name: "set rule pack",
            method: Method::POST,
            path: "/v1/jurisdictions/{j}/rule-packs",
            target: Target::Jurisdiction,
            allowed: &[Officer, Admin],
            body: |_, n| Some(json!({"version": n, "effective_from": "2027-01-01", "params": {}})),
            success: StatusCode::CREATED,
        },
        Endpoint {
            name: "set payee",
            method: Method::PUT,
            path: "/v1/institutions/{i}/payee",
            target: Target::Institution,
            allowed: &[Officer, Admin],
            body: |_, _| {
                Some(json!({"name": "School", "account": "6222000011112222", "bank": "CMBCCNBS"}))
            },
            // The payee already on file (see setup): no change, no approval.
            success: StatusCode::OK,
        },
        Endpoint {
            name: "release",
            method: Method::POST,
            path: "/v1/institutions/{i}/releases",
            target: Target::Institution,
            allowed: &[Officer, Admin],
            body: |_, _| Some(json!({"amount": "1.00"})),
            // Every manual release waits for a second officer.
            success: StatusCode::ACCEPTED,
        },
        Endpoint {
            name: "approvals waiting for a second officer",
            method: Method::GET,
            path: "/v1/approvals",
            target: Target::Nothing,
            allowed: &[Officer, Admin],
            body: none,
            success: StatusCode::OK,
        },
        Endpoint {
            name: "audit log",
            method: Method::GET,
            path: "/v1/audit",
            target: Target::Nothing,
            allowed: &[Admin],
            body: none,
            success: StatusCode::OK,
        },
        Endpoint {
            name: "list events",
            method: Method::GET,
            path: "/v1/institutions/{i}/events",
            target: Target::Institution,
            allowed: READERS,
            body: none,
            success: StatusCode::OK,
        },
        Endpoint {
            name: "report event",
            method: Method::POST,
            path: "/v1/institutions/{i}/events",
            target: Target::Institution,
            allowed: &[Officer, Platform, Admin],
            body: |_, _| {
                Some(json!({"kind": "legal_representative_change", "occurred_on": "2026-11-01"}))
            },
            success: StatusCode::CREATED,
        },
        Endpoint {
            name: "request refund",
            method: Method::POST,
            path: "/v1/institutions/{i}/refunds",
            target: Target::Institution,
            allowed: &[Officer, Platform, Institution, Admin, Family],
            body: |_, _| {
                Some(
                    json!({"enrollment": "E-FAM", "payee": {"name": "Li", "account": "6222", "bank": "CMBCCNBS"}}),
                )
            },
            success: StatusCode::CREATED,
        },
        Endpoint {
            name: "get refund",
            method: Method::GET,
            path: "/v1/refunds/{r}",
            target: Target::Institution,
            allowed: READERS,
            body: none,
            success: StatusCode::OK,
        },
        Endpoint {
            name: "approve refund",
            method: Method::POST,
            path: "/v1/refunds/{r}/approve",
            target: Target::Institution,
            allowed: &[Officer, Admin],
            body: |_, _| Some(json!({})),
            success: StatusCode::OK,
        },
        Endpoint {
            name: "decline refund",
            method: Method::POST,
            path: "/v1/refunds/{r}/decline",
            target: Target::Institution,
            allowed: &[Officer, Admin],
            body: |_, _| Some(json!({"comment": "the course was given in full"})),
            success: StatusCode::OK,
        },
        Endpoint {
            name: "batch",
            method: Method::POST,
            path: "/v1/batches",
            target: Target::Institution,
            allowed: &[Platform, Bank, Admin],
            body: |f, n| {
                Some(
                    json!({"items": [{"institution": f.target_institution, "client_id": format!("b-{n}"),
                "op": "pay_tuition", "enrollment": "E-PAY", "amount": "1.00", "occurred_at": "2026-09-10T00:00:00Z"}]}),
                )
            },
            success: StatusCode::CREATED,
        },
        Endpoint {
            name: "overview",
            method: Method::GET,
            path: "/v1/jurisdictions/{j}/overview",
            target: Target::Jurisdiction,
            allowed: &[Officer, Admin],
            body: none,
            success: StatusCode::OK,
        },
        Endpoint {
            name: "risk",
            method: Method::GET,
            path: "/v1/jurisdictions/{j}/risk?as_of=2026-11-01",
            target: Target::Jurisdiction,
            allowed: &[Officer, Admin],
            body: none,
            success: StatusCode::OK,
        },
        Endpoint {
            name: "list alerts",
            method: Method::GET,
            path: "/v1/alerts",
            target: Target::Nothing,
            allowed: &[Officer, Admin],
            body: none,
            success: StatusCode::OK,
        },
        Endpoint {
            name: "get alert",
            method: Method::GET,
            path: "/v1/institutions/{i}/alerts/m-{n}",
            target: Target::Institution,
            allowed: &[Officer, Admin],
            body: none,
            success: StatusCode::OK,
        },
        Endpoint {
            name: "act on alert",
            method: Method::POST,
            path: "/v1/institutions/{i}/alerts/m-{n}/actions",
            target: Target::Institution,
            allowed: &[Officer, Admin],
            body: |_, _| Some(json!({"action": "acknowledge", "comment": "seen"})),
            success: StatusCode::OK,
        },
        Endpoint {
            name: "register institution",
            method: Method::POST,
            path: "/v1/institutions",
            target: Target::Jurisdiction,
            allowed: &[Officer, Admin],
            body: |f, n| {
                Some(
                    json!({"id": format!("INS-M{n}"), "name": "M", "licence_no": "L", "jurisdiction": f.target_jurisdiction,
                                     "mode": "custody", "category": "subject"}),
                )
            },
            success: StatusCode::CREATED,
        },
        Endpoint {
            name: "register jurisdiction",
            method: Method::POST,
            path: "/v1/jurisdictions",
            target: Target::City,
            allowed: &[Officer, Admin],
            body: |f, n| {
                Some(
                    json!({"code": format!("{}{:02}", &f.target_city[..4], 30 + n % 60), "name": "New county", "parent": f.target_city}),
                )
            },
            success: StatusCode::CREATED,
        },
        Endpoint {
            name: "record lessons",
            method: Method::POST,
            path: "/v1/institutions/{i}/lessons",
            target: Target::Institution,
            allowed: &[Institution, Platform, Admin],
            body: |_, _| {
                Some(json!({"enrollment": "E-USE", "hours": 1, "occurred_on": "2026-11-01"}))
            },
            success: StatusCode::CREATED,
        },
        Endpoint {
            name: "list lessons",
            method: Method::GET,
            path: "/v1/institutions/{i}/lessons",
            target: Target::Institution,
            allowed: FAMILY_READERS,
            body: none,
            success: StatusCode::OK,
        },
        Endpoint {
            name: "enrollment account",
            method: Method::GET,
            path: "/v1/institutions/{i}/enrollments/E-FAM/account",
            target: Target::Institution,
            allowed: FAMILY_READERS,
            body: none,
            success: StatusCode::OK,
        },
        Endpoint {
            name: "confirm lessons",
            method: Method::POST,
            path: "/v1/institutions/{i}/lessons/{l}/confirm",
            target: Target::Institution,
            allowed: &[Family, Admin],
            body: |_, _| Some(json!({})),
            success: StatusCode::OK,
        },
        Endpoint {
            name: "dispute lessons",
            method: Method::POST,
            path: "/v1/institutions/{i}/lessons/{l}/dispute",
            target: Target::Institution,
            allowed: &[Family, Admin],
            body: |_, _| Some(json!({"reason": "no class that day"})),
            success: StatusCode::OK,
        },
        Endpoint {
            name: "freeze releases",
            method: Method::POST,
            path: "/v1/institutions/{i}/freezes",
            target: Target::Institution,
            allowed: &[Officer, Admin],
            body: |_, _| Some(json!({"action": "freeze", "reason": "rectification"})),
            success: StatusCode::CREATED,
        },
        Endpoint {
            name: "list freezes",
            method: Method::GET,
            path: "/v1/institutions/{i}/freezes",
            target: Target::Institution,
            allowed: READERS,
            body: none,
            success: StatusCode::OK,
        },
        Endpoint {
            name: "releasable",
            method: Method::GET,
            path: "/v1/institutions/{i}/releasable",
            target: Target::Institution,
            allowed: READERS,
            body: none,
            success: StatusCode::OK,
        },
        Endpoint {
            name: "subscribe webhooks to an institution",
            method: Method::POST,
            path: "/v1/webhooks",
            target: Target::Institution,
            allowed: &[Officer, Platform, Admin],
            body: |f, _| {
                Some(
                    json!({"url": "http://127.0.0.1:9/hooks", "events": ["release.executed"],
                            "institution": f.target_institution}),
                )
            },
            success: StatusCode::CREATED,
        },
        Endpoint {
            name: "subscribe webhooks to a jurisdiction",
            method: Method::POST,
            path: "/v1/webhooks",
            target: Target::Jurisdiction,
            allowed: &[Officer, Platform, Admin],
            body: |f, _| {
                Some(
                    json!({"url": "http://127.0.0.1:9/hooks", "events": ["refund.state_changed"],
                            "jurisdiction": f.target_jurisdiction}),
                )
            },
            success: StatusCode::CREATED,
        },
        Endpoint {
            name: "list webhooks",
            method: Method::GET,
            path: "/v1/webhooks",
            target: Target::Nothing,
            allowed: &[Officer, Platform, Admin],
            body: |_, _| None,
            success: StatusCode::OK,
        },
        Endpoint {
            name: "upload feed",
            method: Method::POST,
            path: "/v1/feeds?bank={b}",
            target: Target::Bank,
            allowed: &[Bank, Admin],
            body: |_, _| None,
            success: StatusCode::CREATED,
        },
    ]
}

/// What each role's token can see, in scope: the specification's scopes.
fn sees_in_scope(role: Role, target: Target) -> bool {
    match target {
        Target::Nothing => true,
        // A bank sees the institutions whose supervised accounts it holds.
        Target::Institution => true,
        Target::Jurisdiction | Target::City => matches!(role, Officer | Platform | Admin),
        Target::Bank => matches!(role, Bank | Admin),
    }
}

/// What a case targets, per side of the scope line.
struct Fixture {
    target_institution: &'static str,
    target_jurisdiction: &'static str,
    target_city: &'static str,
    target_bank: &'static str,
}

const INSIDE: Fixture = Fixture {
    target_institution: "INS-IN",
    target_jurisdiction: "410922",
    target_city: "410900",
    target_bank: "BANK-IN",
};
const OUTSIDE: Fixture = Fixture {
    target_institution: "INS-OUT",
    target_jurisdiction: "420922",
    target_city: "420900",
    target_bank: "BANK-OUT",
};

const IN_FILE: &[u8] =
    include_bytes!("../../crates/bank-adapter/tests/fixtures/mt940/chinese_cny.sta");
const OUT_FILE: &[u8] =
    include_bytes!("../../crates/bank-adapter/tests/fixtures/mt940/simple_lf.sta");

async fn setup(server: &Server, cases: usize) -> Vec<(Role, String)> {
    jurisdictions(&server.store).await;
    for (f, county, file) in [(&INSIDE, "410922", IN_FILE), (&OUTSIDE, "420922", OUT_FILE)] {
        let id = institution(&server.store, f.target_institution, county).await;
        enrollment(&server.store, &id, "E-PAY", 10, 500_000).await;
        enrollment(&server.store, &id, "E-USE", 60, 500_000).await;
        enrollment(&server.store, &id, "E-FAM", 60, 500_000).await;
        for _ in 0..LESSONS_PER_INSTITUTION {
            server
                .store
                .record_lesson(
                    &ledger_core::store::NewLesson {
                        institution: id.clone(),
                        enrollment: ledger_core::EnrollmentId::parse("E-FAM").unwrap(),
                        hours: 1,
                        occurred_on: day(2026, 10, 8),
                        recorded_by: "setup".into(),
                        answer_by: day(2026, 10, 29),
                    },
                    None,
                )
                .await
                .unwrap();
        }
        pay(&server.store, &id, "E-USE", "prepay", 500_000).await;
        // Paid, so that its family has something to ask back.
        pay(&server.store, &id, "E-FAM", "prepay-fam", 500_000).await;
        let school = server.store.institution(&id).await.unwrap();
        for k in 1..=REFUNDS_PER_INSTITUTION {
            api::app::refunds::request(
                &server.store,
                &school,
                api::app::refunds::RefundAsk {
                    enrollment: "E-FAM".into(),
                    amount: Some("1.00".into()),
                    payee: ledger_core::domain::refunds::Payee {
                        name: "Li".into(),
                        account: "6222".into(),
                        bank: "CMBCCNBS".into(),
                    },
                    reason: None,
                },
                refund_id(f.target_institution, k),
                "setup".into(),
                server.store.now().date_naive(),
            )
            .await
            .unwrap();
        }
        let taught = ledger_core::Request {
            institution: id.clone(),
            client_id: ledger_core::ClientId::parse("taught").unwrap(),
            currency: ledger_core::Currency::Cny,
            occurred_at: chrono::Utc::now(),
            external_ref: None,
            command: ledger_core::Command::ConsumeLessons {
                enrollment: ledger_core::EnrollmentId::parse("E-USE").unwrap(),
                hours: 6,
            },
        };
        server.store.execute(taught).await.unwrap();
        let payee = ledger_core::domain::refunds::Payee {
            name: "School".into(),
            account: "6222000011112222".into(),
            bank: "CMBCCNBS".into(),
        };
        server.store.set_payee(&id, &payee, "setup").await.unwrap();
        bank_account(
            &server.store,
            f.target_bank,
            &id,
            &account_of(f.target_bank, file),
        )
        .await;
        let findings: Vec<Finding> = (0..=cases)
            .map(|n| Finding {
                key: format!("m-{n}"),
                kind: ledger_core::domain::alerts::AlertKind::Signal(
                    ledger_core::domain::risk::SignalKind::FeedSilence,
                ),
                severity: ledger_core::domain::alerts::Severity::Yellow,
                summary: "no statement".into(),
                evidence: "[]".into(),
                rule_pack: "national".into(),
            })
            .collect();
        server
            .store
            .record_findings(&id, day(2026, 11, 1), &findings)
            .await
            .unwrap();
    }
    let inside = ledger_core::InstitutionId::parse(INSIDE.target_institution).unwrap();
    let mut tokens = Vec::new();
    for (role, scope) in [
        (Officer, Scope::Jurisdiction(code("410900"))),
        (Platform, Scope::Jurisdiction(code("410900"))),
        (Institution, Scope::Institution(inside.clone())),
        (Bank, Scope::Bank(INSIDE.target_bank.into())),
        (Admin, Scope::All),
        (
            Family,
            Scope::Enrollment(inside, ledger_core::EnrollmentId::parse("E-FAM").unwrap()),
        ),
    ] {
        tokens.push((role, server.token(role, scope).await));
    }
    tokens
}

async fn every_endpoint_by_every_role_in_and_out_of_scope(backend: Backend) {
    let server = Server::start(backend).await;
    let endpoints = endpoints();
    let cases = endpoints.len() * Role::ALL.len() * 2;
    let tokens = setup(&server, cases).await;
    let mut n = 0;
    // The next pending lesson record of each institution, for `{l}`, and
    // the next requested refund, for `{r}`.
    let mut lesson = [0usize; 2];
    let mut refund = [0usize; 2];
    let mut failures = Vec::new();
    for e in &endpoints {
        for (role, token) in &tokens {
            for (inside, f) in [(true, &INSIDE), (false, &OUTSIDE)] {
                n += 1;
                let path = e
                    .path
                    .replace("{i}", f.target_institution)
                    .replace(
                        "{j}",
                        if e.target == Target::City {
                            f.target_city
                        } else {
                            f.target_jurisdiction
                        },
                    )
                    .replace("{b}", f.target_bank)
                    .replace("{n}", &n.to_string());
                let path = if path.contains("{l}") {
                    let next = &mut lesson[usize::from(!inside)];
                    *next += 1;
                    assert!(*next <= LESSONS_PER_INSTITUTION);
                    path.replace("{l}", &format!("L{next}"))
                } else {
                    path
                };
                let path = if path.contains("{r}") {
                    let next = &mut refund[usize::from(!inside)];
                    *next += 1;
                    assert!(*next <= REFUNDS_PER_INSTITUTION);
                    path.replace("{r}", refund_id(f.target_institution, *next).as_str())
                } else {
                    path
                };
                let mut request = server.request(e.method.clone(), Some(token), &path);
                if e.method != Method::GET {
                    request = request.header("Idempotency-Key", format!("m-{n}"));
                    request = match (e.body)(f, n) {
                        Some(body) => request.json(&body),
                        None => request
                            .header("content-type", "application/octet-stream")
                            .body(if inside { IN_FILE } else { OUT_FILE }),
                    };
                }
                let refusable = e.method != Method::GET;
                let before = if refusable {
                    Some(counts(&server.store).await)
                } else {
                    None
                };
                let (status, body) = send(request).await;
                let visible = *role == Admin
                    || e.target == Target::Nothing
                    || (inside && sees_in_scope(*role, e.target));
                let expected = if !visible {
                    StatusCode::NOT_FOUND
                } else if e.allowed.contains(role) {
                    e.success
                } else {
                    StatusCode::FORBIDDEN
                };
                if status != expected {
                    failures.push(format!(
                        "{} as {role:?} {}: expected {expected}, got {status}: {body}",
                        e.name,
                        if inside { "inside" } else { "outside" }
                    ));
                }
                if let Some(before) = before.filter(|_| status.is_client_error()) {
                    // A refusal leaves everything as it was.
                    let after = counts(&server.store).await;
                    if after != before {
                        let changed: Vec<_> =
                            before.iter().zip(&after).filter(|(b, a)| b != a).collect();
                        failures.push(format!(
                            "{} as {role:?} {}: refused with {status} but changed {changed:?}",
                            e.name,
                            if inside { "inside" } else { "outside" }
                        ));
                    }
                }
                if status == StatusCode::NOT_FOUND {
                    // Out of scope says nothing an absent thing would not.
                    assert!(
                        body["detail"]
                            .as_str()
                            .unwrap_or("")
                            .contains("does not exist or is not yours to see"),
                        "{} as {role:?}: {body}",
                        e.name
                    );
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {n} cases wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(n, cases);
    server.stop().await;
}
crate::both!(every_endpoint_by_every_role_in_and_out_of_scope);
