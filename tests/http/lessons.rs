//! A term where families confirm, dispute and stay silent, over HTTP
//! against a real server, with the job runner and a real (fake) bank: only
//! confirmed lessons are earned, silence is a confirmation on the right
//! working day (a holiday week and two make-up days in the window), weekly
//! releases pay confirmed earnings to the fen, a dispute holds exactly its
//! enrollment, a frozen institution releases nothing, and every refusal
//! path says what and why.

use api::access::{Role, Scope};
use api::app::banks::BankDirectory;
use api::app::jobs::{tick_jobs, Job, Tick};
use bank_adapter::fake_bank::{FakeBank, DEFAULT_CREDENTIAL};
use chrono::{DateTime, TimeZone, Utc};
use ledger_core::domain::lessons::ReleaseCadence;
use ledger_core::domain::refunds::Payee;
use ledger_core::store::Clock;
use ledger_core::{
    ClientId, Command, Currency, EnrollmentId, EntryKind, InstitutionId, Request, RulePack,
    RuleParams,
};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::*;

fn at(m: u32, d: u32, h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, m, d, h, 0, 0).unwrap()
}

struct Term {
    server: Server,
    clock: Clock,
    bank: FakeBank,
    school: String,
    officer: String,
    /// The family tokens of E-1, E-2, E-3, as enrollment handed them out.
    family: Vec<String>,
    institution: InstitutionId,
}

impl Term {
    fn runner(&self) -> BankDirectory {
        let mut banks = BankDirectory::default();
        banks
            .add("FAKE", self.bank.url(), DEFAULT_CREDENTIAL, Some(500))
            .unwrap();
        banks
    }

    async fn jobs(&self) -> Tick {
        tick_jobs(
            &self.server.store,
            &self.runner(),
            &[Job::Lessons, Job::Release, Job::Workflow],
        )
        .await
        .unwrap()
    }

    async fn record(&self, key: &str, enrollment: &str, hours: i64, on: &str) -> Value {
        let (status, body) = self
            .server
            .post(
                &self.school,
                "/v1/institutions/INS-A/lessons",
                key,
                json!({"enrollment": enrollment, "hours": hours, "occurred_on": on}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(body["state"], "pending");
        body
    }

    async fn step(
        &self,
        token: &str,
        lesson: &str,
        what: &str,
        key: &str,
        body: Value,
    ) -> (StatusCode, Value) {
        self.server
            .post(
                token,
                &format!("/v1/institutions/INS-A/lessons/{lesson}/{what}"),
                key,
                body,
            )
            .await
    }

    async fn releasable(&self) -> Value {
        let (status, body) = self
            .server
            .get(&self.officer, "/v1/institutions/INS-A/releasable")
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    /// A second officer of the county approves a pending request (a
    /// manual release waits for one).
    async fn approve_as_second_officer(&self, pending: &Value, key: &str) {
        let checker = self.server.second_officer().await;
        let (status, done) = self
            .server
            .post(
                &checker,
                &format!("/v1/approvals/{}/approve", pending["id"].as_str().unwrap()),
                key,
                json!({}),
            )
            .await;
        assert_eq!(
            (status, done["state"].as_str()),
            (StatusCode::OK, Some("approved")),
            "{done}"
        );
    }

    /// Amounts of the lessons_consumed entries in the books, in fen.
    async fn earned_minor(&self) -> i64 {
        self.server
            .store
            .entries(&self.institution, 0, 1000)
            .await
            .unwrap()
            .iter()
            .filter(|e| e.kind == EntryKind::LessonsConsumed)
            .map(|e| e.postings[0].amount.minor())
            .sum()
    }
}

/// INS-A in county 410922, whose rule pack gives families 7 working days
/// and releases weekly; the calendar has the National Day week (1–7
/// October) off and Sunday 27 September and Saturday 10 October worked.
/// Three enrollments made over HTTP (each answer carries its family's
/// token), paid in full.
async fn term(backend: Backend) -> Term {
    let clock = Clock::manual(at(9, 1, 8));
    let server = Server::start_clocked(backend, clock.clone()).await;
    jurisdictions(&server.store).await;
    server
        .store
        .put_rule_pack(&RulePack {
            jurisdiction: code("410922"),
            version: 1,
            effective_from: day(2026, 1, 1),
            params: RuleParams {
                holidays: Some((1..=7).map(|d| day(2026, 10, d)).collect()),
                makeup_working_days: Some(vec![day(2026, 9, 27), day(2026, 10, 10)]),
                lesson_confirm_working_days: Some(7),
                release_cadence: Some(ReleaseCadence::Weekly),
                ..RuleParams::default()
            },
        })
        .await
        .unwrap();
    let institution = institution(&server.store, "INS-A", "410922").await;
    let school = server
        .token(Role::Institution, Scope::Institution(institution.clone()))
        .await;
    let officer = server
        .token(Role::Officer, Scope::Jurisdiction(code("410922")))
        .await;
    let mut family = Vec::new();
    for (e, price) in [("E-1", "4000.00"), ("E-2", "4000.00"), ("E-3", "3333.33")] {
        let (status, body) = server
            .post(
                &school,
                "/v1/institutions/INS-A/enrollments",
                &format!("enr-{e}"),
                json!({"id": e, "student_ref": format!("S-{e}"), "hours_bought": 40,
                       "price": price, "course_start": "2026-09-01", "course_end": "2026-11-30"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        family.push(body["family_token"].as_str().unwrap().to_string());
        let minor = ledger_core::Amount::parse(price, ledger_core::Currency::Cny)
            .unwrap()
            .minor();
        pay(&server.store, &institution, e, &format!("pay-{e}"), minor).await;
    }
    bank_account(&server.store, "FAKE", &institution, "6222000000000001").await;
    let payee = Payee {
        name: "INS-A School".into(),
        account: "6222000011112222".into(),
        bank: "CMBCCNBS".into(),
    };
    server
        .store
        .set_payee(&institution, &payee, "setup")
        .await
        .unwrap();
    let bank = FakeBank::start().await;
    Term {
        server,
        clock,
        bank,
        school,
        officer,
        family,
        institution,
    }
}

async fn families_confirm_dispute_and_stay_silent_and_releases_follow(backend: Backend) {
    let t = term(backend).await;

    // A repeat of the enrollment request shows the family token redacted:
    // the secret is kept only as a hash.
    let (status, again) = t
        .server
        .post(
            &t.school,
            "/v1/institutions/INS-A/enrollments",
            "enr-E-1",
            json!({"id": "E-1", "student_ref": "S-E-1", "hours_bought": 40,
                   "price": "4000.00", "course_start": "2026-09-01", "course_end": "2026-11-30"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_ne!(again["family_token"], t.family[0].as_str(), "{again}");
    // The same enrollment under a new key is refused: no second family
    // token, which would be one more key to the family's money.
    let tokens = t.server.store.tokens().await.unwrap().len();
    let (status, p) = t
        .server
        .post(
            &t.school,
            "/v1/institutions/INS-A/enrollments",
            "enr-E-1-again",
            json!({"id": "E-1", "student_ref": "S-E-1", "hours_bought": 40,
                   "price": "4000.00", "course_start": "2026-09-01", "course_end": "2026-11-30"}),
        )
        .await;
    assert_eq!(
        (status, p["code"].as_str()),
        (StatusCode::CONFLICT, Some("enrollment_exists")),
        "{p}"
    );
    assert!(p.get("family_token").is_none(), "{p}");
    assert_eq!(t.server.store.tokens().await.unwrap().len(), tokens);

    // Friday 18 September: lessons of E-1 and E-2, both confirmed.
    t.clock.set(at(9, 18, 17));
    let l1 = t.record("l-1", "E-1", 2, "2026-09-18").await;
    assert_eq!(l1["id"], "L1");
    // Nothing is earned before the family answers.
    assert_eq!(t.earned_minor().await, 0);
    let l2 = t.record("l-2", "E-2", 2, "2026-09-18").await;
    let (status, c1) = t
        .step(&t.family[0], "L1", "confirm", "c-1", json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{c1}");
    assert_eq!(c1["lesson"]["state"], "confirmed");
    assert_eq!(c1["entry"]["kind"], "lessons_consumed");
    assert_eq!(c1["entry"]["postings"][0]["amount"], "200.00");
    let (status, c2) = t
        .step(&t.family[1], "L2", "confirm", "c-2", json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{c2}");
    assert_eq!(l2["id"], "L2");

    // Refusals, each with its code and nothing changed.
    let (status, again) = t
        .step(&t.family[0], "L1", "confirm", "c-1b", json!({}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{again}");
    assert_eq!(again["code"], "lesson_step_refused");
    let (status, other) = t
        .step(&t.family[0], "L2", "confirm", "c-x", json!({}))
        .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "another family's lesson: {other}"
    );
    let (status, unknown) = t
        .step(&t.family[0], "L99", "confirm", "c-99", json!({}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{unknown}");
    assert_eq!(unknown["code"], "unknown_lesson");
    for (hours, key) in [(0, "h-0"), (-2, "h-neg")] {
        let (status, bad) = t
            .server
            .post(
                &t.school,
                "/v1/institutions/INS-A/lessons",
                key,
                json!({"enrollment": "E-1", "hours": hours, "occurred_on": "2026-09-18"}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
        assert_eq!(bad["code"], "hours_must_be_positive");
        assert_eq!(bad["field"], "hours", "{bad}");
    }
    let (status, future) = t
        .server
        .post(
            &t.school,
            "/v1/institutions/INS-A/lessons",
            "h-future",
            json!({"enrollment": "E-1", "hours": 1, "occurred_on": "2026-09-19"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{future}");
    assert_eq!(future["code"], "lessons_in_the_future");
    let (status, beyond) = t
        .server
        .post(
            &t.school,
            "/v1/institutions/INS-A/lessons",
            "h-beyond",
            json!({"enrollment": "E-1", "hours": 39, "occurred_on": "2026-09-18"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{beyond}");
    assert_eq!(beyond["code"], "enrollment_hours_exhausted");
    // A family reads its own account only, and records no lessons.
    let (status, _) = t
        .server
        .get(
            &t.family[0],
            "/v1/institutions/INS-A/enrollments/E-2/account",
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = t
        .server
        .post(
            &t.family[0],
            "/v1/institutions/INS-A/lessons",
            "f-rec",
            json!({"enrollment": "E-1", "hours": 1, "occurred_on": "2026-09-18"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Friday 25 September: E-3's lessons (its family stays silent) and more
    // of E-2's, which its family disputes.
    t.clock.set(at(9, 25, 17));
    let l3 = t.record("l-3", "E-3", 2, "2026-09-25").await;
    // 7 working days: Sun 27 (worked), 28, 29, 30 September; 1–7 October
    // off; 8, 9 and Saturday 10 October (worked).
    assert_eq!(l3["answer_by"], "2026-10-10");
    t.record("l-4", "E-2", 3, "2026-09-25").await;
    let (status, bare) = t
        .step(&t.family[1], "L4", "dispute", "d-0", json!({}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bare}");
    assert_eq!(bare["code"], "reason_required");
    let (status, d4) = t
        .step(
            &t.family[1],
            "L4",
            "dispute",
            "d-4",
            json!({"reason": "the child was ill that day"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{d4}");
    assert_eq!(d4["lesson"]["state"], "disputed");
    assert!(d4["entry"].is_null());
    let (status, account) = t
        .server
        .get(
            &t.family[1],
            "/v1/institutions/INS-A/enrollments/E-2/account",
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{account}");
    assert_eq!(account["paid"], "4000.00");
    assert_eq!(account["refundable"], "3800.00");
    assert_eq!(
        (
            account["hours_confirmed"].as_u64(),
            account["hours_disputed"].as_u64()
        ),
        (Some(2), Some(3))
    );
    assert_eq!(account["release_frozen"], true);
    // The dispute holds E-2's earnings, and only E-2's.
    let r = t.releasable().await;
    assert_eq!(
        (
            r["unreleased"].as_str(),
            r["frozen"].as_str(),
            r["releasable"].as_str()
        ),
        (Some("400.00"), Some("200.00"), Some("200.00")),
        "{r}"
    );

    // Monday 28 September: the weekly release pays last week's confirmed,
    // unfrozen earnings: E-1's 200.00.
    t.clock.set(at(9, 28, 6));
    let tick = t.jobs().await;
    assert_eq!(tick.releases_instructed, 1, "{tick:?}");
    assert_eq!(tick.sent, 1, "{tick:?}");
    let paid = t.bank.payments();
    assert_eq!(paid.len(), 1);
    assert_eq!(paid[0].amount, "200.00");
    // The cycle names the instruction; the institution makes it unique at
    // the bank.
    let id = &paid[0].instruction_id;
    assert!(
        id.starts_with("REL-") && id.ends_with("-W2026-09-28"),
        "{id}"
    );
    assert!(id.len() <= 35, "{id}");
    // Run again: the cycle has its instruction; nothing new.
    let tick = t.jobs().await;
    assert_eq!(tick.releases_instructed, 0, "{tick:?}");
    assert_eq!(t.bank.payments().len(), 1);

    // Saturday 10 October is the last day to answer: not deemed yet.
    t.clock.set(at(10, 10, 23));
    let tick = t.jobs().await;
    assert_eq!(tick.lessons_deemed_confirmed, 0, "{tick:?}");
    // Sunday 11 October: deemed confirmed, and earned.
    t.clock.set(at(10, 11, 6));
    let tick = t.jobs().await;
    assert_eq!(
        (tick.lessons_deemed_confirmed, tick.lessons_posted),
        (1, 1),
        "{tick:?}"
    );
    let (status, l3) = t
        .server
        .get(&t.family[2], "/v1/institutions/INS-A/lessons/L3")
        .await;
    assert_eq!(status, StatusCode::OK, "{l3}");
    assert_eq!(l3["state"], "deemed_confirmed");
    assert_eq!(l3["trail"][0]["actor"], "workflow");
    assert_eq!(l3["trail"][0]["on_day"], "2026-10-11");
    let (status, late) = t
        .step(
            &t.family[2],
            "L3",
            "dispute",
            "d-3",
            json!({"reason": "too late?"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{late}");
    assert_eq!(late["code"], "lesson_step_refused");

    // An officer upholds the dispute: L4 is never earned, E-2 is free.
    let (status, family_decides) = t
        .step(
            &t.family[1],
            "L4",
            "decision",
            "u-f",
            json!({"outcome": "uphold", "reason": "mine"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{family_decides}");
    let (status, up) = t
        .step(
            &t.officer,
            "L4",
            "decision",
            "u-4",
            json!({"outcome": "uphold", "reason": "no attendance record"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{up}");
    assert_eq!(up["lesson"]["state"], "upheld");
    assert!(up["entry"].is_null());
    assert_eq!(up["lesson"]["trail"][1]["reason"], "no attendance record");

    // Monday 12 October: E-2's 200.00 and E-3's 166.66 (2 of 40 hours of
    // 3,333.33, rounded down to the fen).
    t.clock.set(at(10, 12, 6));
    let tick = t.jobs().await;
    assert_eq!(tick.releases_instructed, 1, "{tick:?}");
    let paid = t.bank.payments();
    assert_eq!(paid.len(), 2);
    assert_eq!(paid[1].amount, "366.66");
    // Everything released is exactly what was confirmed, to the fen.
    assert_eq!(t.earned_minor().await, 56_666);
    let r = t.releasable().await;
    assert_eq!(r["unreleased"], "0.00", "{r}");

    // An officer freezes the institution: nothing is released, however
    // much is confirmed.
    let (status, bare) = t
        .server
        .post(
            &t.officer,
            "/v1/institutions/INS-A/freezes",
            "fz-0",
            json!({"action": "freeze", "reason": " "}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bare}");
    let (status, fz) = t
        .server
        .post(
            &t.officer,
            "/v1/institutions/INS-A/freezes",
            "fz-1",
            json!({"action": "freeze", "reason": "rectification notice 2026-17"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{fz}");
    assert_eq!(fz["frozen"], true);
    t.record("l-5", "E-1", 2, "2026-10-12").await;
    let (status, _) = t
        .step(&t.family[0], "L5", "confirm", "c-5", json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    t.clock.set(at(10, 19, 6));
    let tick = t.jobs().await;
    assert_eq!(tick.releases_instructed, 0, "{tick:?}");
    assert_eq!(t.bank.payments().len(), 2);
    let (status, refused) = t
        .server
        .post(
            &t.officer,
            "/v1/institutions/INS-A/releases",
            "REL-M1",
            json!({"amount": "1.00"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert_eq!(refused["code"], "institution_frozen");

    // Lifted: manual releases are capped by what may be released.
    let (status, lifted) = t
        .server
        .post(
            &t.officer,
            "/v1/institutions/INS-A/freezes",
            "fz-2",
            json!({"action": "lift", "reason": "rectified"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{lifted}");
    assert_eq!(lifted["frozen"], false);
    assert_eq!(lifted["items"].as_array().unwrap().len(), 2);
    let (status, listed) = t
        .server
        .get(&t.school, "/v1/institutions/INS-A/freezes")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed["items"][0]["reason"], "rectification notice 2026-17");
    let (status, over) = t
        .server
        .post(
            &t.officer,
            "/v1/institutions/INS-A/releases",
            "REL-M2",
            json!({"amount": "200.01"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{over}");
    assert_eq!(over["code"], "release_exceeds_releasable");
    assert!(
        over["detail"].as_str().unwrap().contains("200.00"),
        "{over}"
    );
    // Within what is releasable, a manual release waits for a second
    // officer, and happens when approved.
    let (status, part) = t
        .server
        .post(
            &t.officer,
            "/v1/institutions/INS-A/releases",
            "REL-M3",
            json!({"amount": "50.00"}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{part}");
    t.approve_as_second_officer(&part, "ok-rel-m3").await;

    // The family asks for a refund: the rest of E-1's earnings are held
    // until it is decided.
    let (status, rf) = t
        .server
        .post(
            &t.family[0],
            "/v1/institutions/INS-A/refunds",
            "rf-1",
            json!({
                "enrollment": "E-1",
                "payee": {"name": "Zhang San", "account": "6214830100123456", "bank": "CMBCCNBS"},
                "reason": "moving away"
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{rf}");
    let (status, not_theirs) = t
        .server
        .post(
            &t.family[0],
            "/v1/institutions/INS-A/refunds",
            "rf-2",
            json!({
                "enrollment": "E-2",
                "payee": {"name": "Zhang San", "account": "6214830100123456", "bank": "CMBCCNBS"}
            }),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{not_theirs}");
    let r = t.releasable().await;
    assert_eq!(
        (r["frozen"].as_str(), r["releasable"].as_str()),
        (Some("150.00"), Some("0.00")),
        "{r}"
    );
    let (status, held) = t
        .server
        .post(
            &t.officer,
            "/v1/institutions/INS-A/releases",
            "REL-M4",
            json!({"amount": "0.01"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{held}");
    let (status, account) = t
        .server
        .get(
            &t.family[0],
            "/v1/institutions/INS-A/enrollments/E-1/account",
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(account["refunds"][0]["state"], "requested");
    assert_eq!(account["release_frozen"], true);

    let sheet = t.server.store.balances(&t.institution).await.unwrap();
    assert_eq!(sheet.imbalance_minor(), 0);
    t.bank.stop().await;
    t.server.stop().await;
}
crate::both!(families_confirm_dispute_and_stay_silent_and_releases_follow);

/// A family that lost its token gets a new one from its school, and the
/// old one stops working; nobody else's token moves.
async fn a_family_that_lost_its_token_gets_a_new_one_and_the_old_stops(backend: Backend) {
    let t = term(backend).await;
    let account = |e: &str| format!("/v1/institutions/INS-A/enrollments/{e}/account");
    let path = "/v1/institutions/INS-A/enrollments/E-1/family-token";
    assert_eq!(
        t.server.get(&t.family[0], &account("E-1")).await.0,
        StatusCode::OK
    );
    // A family may not mint tokens; an enrollment the school lacks is absent.
    let (status, p) = t.server.post(&t.family[0], path, "ft-0", json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{p}");
    let (status, p) = t
        .server
        .post(
            &t.school,
            "/v1/institutions/INS-A/enrollments/E-404/family-token",
            "ft-404",
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{p}");
    let tokens = t.server.store.tokens().await.unwrap().len();

    let (status, body) = t.server.post(&t.school, path, "ft-1", json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let new = body["family_token"].as_str().unwrap().to_string();
    assert_eq!(body["revoked"].as_array().unwrap().len(), 1, "{body}");
    assert_eq!(t.server.store.tokens().await.unwrap().len(), tokens + 1);
    // The old token stops at once in this process; the new one reads the
    // account; the other family's token is untouched.
    let (status, p) = t.server.get(&t.family[0], &account("E-1")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{p}");
    assert_eq!(t.server.get(&new, &account("E-1")).await.0, StatusCode::OK);
    assert_eq!(
        t.server.get(&t.family[1], &account("E-2")).await.0,
        StatusCode::OK
    );
    // The new token is for its enrollment only.
    assert_eq!(
        t.server.get(&new, &account("E-2")).await.0,
        StatusCode::NOT_FOUND
    );
    // A repeat of the request shows the secret redacted and mints nothing.
    let (status, again) = t.server.post(&t.school, path, "ft-1", json!({})).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_ne!(again["family_token"], new.as_str(), "{again}");
    assert_eq!(t.server.store.tokens().await.unwrap().len(), tokens + 1);
    t.bank.stop().await;
    t.server.stop().await;
}
crate::both!(a_family_that_lost_its_token_gets_a_new_one_and_the_old_stops);

/// A family's account is its enrollment's own rows: the counters the
/// books keep for it (tuition paid net of a reversed payment, hours
/// consumed, imported ones included), its prepaid balance and its own
/// refunds, whatever else the school's books hold.
async fn a_family_account_shows_its_own_books_net_of_a_reversed_payment(backend: Backend) {
    let t = term(backend).await;
    let (status, body) = t
        .server
        .post(
            &t.school,
            "/v1/institutions/INS-A/enrollments",
            "enr-E-4",
            json!({"id": "E-4", "student_ref": "S-E-4", "hours_bought": 40,
                   "price": "4000.00", "course_start": "2026-09-01", "course_end": "2026-11-30"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let family = body["family_token"].as_str().unwrap().to_string();
    let store = &t.server.store;
    pay(store, &t.institution, "E-4", "pay-E-4a", 100_000).await;
    pay(store, &t.institution, "E-4", "pay-E-4b", 50_000).await;
    let request = |client_id: &str, command: Command| Request {
        institution: t.institution.clone(),
        client_id: ClientId::parse(client_id).unwrap(),
        currency: Currency::Cny,
        occurred_at: at(9, 3, 8),
        external_ref: None,
        command,
    };
    // The second payment bounced; three hours taught before the families'
    // flow came in were imported straight into the books.
    for r in [
        request(
            "rev-E-4b",
            Command::Reverse {
                entry: ClientId::parse("pay-E-4b").unwrap(),
            },
        ),
        request(
            "imp-E-4",
            Command::ConsumeLessons {
                enrollment: EnrollmentId::parse("E-4").unwrap(),
                hours: 3,
            },
        ),
    ] {
        store.execute(r).await.unwrap();
    }
    // Another family asks for its money back: not E-4's refund.
    let (status, rf) = t
        .server
        .post(
            &t.family[0],
            "/v1/institutions/INS-A/refunds",
            "rf-E-1",
            json!({
                "enrollment": "E-1",
                "payee": {"name": "Zhang San", "account": "6214830100123456", "bank": "CMBCCNBS"}
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{rf}");
    let (status, account) = t
        .server
        .get(&family, "/v1/institutions/INS-A/enrollments/E-4/account")
        .await;
    assert_eq!(status, StatusCode::OK, "{account}");
    // 3 of 40 hours of 4,000.00 earned 300.00 of the 1,000.00 paid.
    assert_eq!(
        (
            account["paid"].as_str(),
            account["refundable"].as_str(),
            account["hours_consumed"].as_u64()
        ),
        (Some("1000.00"), Some("700.00"), Some(3)),
        "{account}"
    );
    assert_eq!(account["refunds"], json!([]), "{account}");
    assert_eq!(account["release_frozen"], false, "{account}");
    let (_, e1) = t
        .server
        .get(
            &t.family[0],
            "/v1/institutions/INS-A/enrollments/E-1/account",
        )
        .await;
    assert_eq!(e1["refunds"][0]["state"], "requested", "{e1}");
    assert_eq!(e1["paid"], "4000.00", "{e1}");
    t.bank.stop().await;
    t.server.stop().await;
}
crate::both!(a_family_account_shows_its_own_books_net_of_a_reversed_payment);

/// What may be released, as the release job reads it (the unreleased
/// earnings only, newest first until they cover the `releasable`
/// account), equals the oldest-first walk over every earning of the
/// institution that it replaced: after imported lessons, confirmed,
/// disputed, pending and deemed ones, a manual release that covers part
/// of an earning, a refund request, the job's weekly release, for two
/// cut-offs, reading the earnings one, two and five hundred at a time.
async fn what_may_be_released_is_read_from_the_unreleased_earnings_alone(backend: Backend) {
    let t = term(backend).await;
    let store = &t.server.store;
    let institution = store.institution(&t.institution).await.unwrap();
    let check = |label: &'static str| same_releasable(&t, &institution, label);
    let nothing = check("before any lesson").await;
    assert_eq!(nothing.unreleased_minor, 0);
    // Lessons taught before the families' flow, imported straight into
    // the books: 3 hours of E-1 (300.00).
    t.clock.set(at(9, 14, 17));
    store
        .execute(Request {
            institution: t.institution.clone(),
            client_id: ClientId::parse("imp-E-1").unwrap(),
            currency: Currency::Cny,
            occurred_at: at(9, 11, 17),
            external_ref: None,
            command: Command::ConsumeLessons {
                enrollment: EnrollmentId::parse("E-1").unwrap(),
                hours: 3,
            },
        })
        .await
        .unwrap();
    check("imported").await;
    // Friday 18 September: E-1 and E-2 confirm 2 hours each, E-2 disputes
    // an hour, E-3's 2 hours wait for an answer.
    t.clock.set(at(9, 18, 17));
    t.record("r-1", "E-1", 2, "2026-09-18").await;
    t.record("r-2", "E-2", 2, "2026-09-18").await;
    t.record("r-3", "E-2", 1, "2026-09-18").await;
    t.record("r-4", "E-3", 2, "2026-09-18").await;
    for (family, lesson, what, body) in [
        (0, "L1", "confirm", json!({})),
        (1, "L2", "confirm", json!({})),
        (1, "L3", "dispute", json!({"reason": "no lesson that day"})),
    ] {
        let (status, body) = t
            .step(
                &t.family[family],
                lesson,
                what,
                &format!("s-{lesson}"),
                body,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let held = check("a dispute holds E-2").await;
    assert!(held.frozen_minor > 0, "{held:?}");
    // A manual release of 250.00 pays for most of the imported 300.00.
    t.clock.set(at(9, 21, 10));
    let (status, body) = t
        .server
        .post(
            &t.officer,
            "/v1/institutions/INS-A/releases",
            "REL-M1",
            json!({"amount": "250.00"}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    t.approve_as_second_officer(&body, "ok-rel-m1").await;
    let partly = check("part of an earning released").await;
    assert!(partly.unreleased_minor > 0, "{partly:?}");
    // E-3's family asks for its money back; E-1 records more, confirmed.
    let (status, rf) = t
        .server
        .post(
            &t.family[2],
            "/v1/institutions/INS-A/refunds",
            "rf-E-3",
            json!({
                "enrollment": "E-3",
                "payee": {"name": "Li Si", "account": "6214830100654321", "bank": "CMBCCNBS"}
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{rf}");
    t.clock.set(at(9, 25, 17));
    t.record("r-5", "E-1", 2, "2026-09-25").await;
    let (status, body) = t
        .step(&t.family[0], "L5", "confirm", "s-L5", json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    check("a refund request holds E-3").await;
    // The weeks go by: E-3's silence is deemed a confirmation, the job
    // releases the cycle's confirmed earnings.
    for day in [28, 29, 30] {
        t.clock.set(at(9, day, 10));
        t.jobs().await;
        check("the jobs ran").await;
    }
    // From October the county keeps a tenth of unearned tuition back.
    store
        .put_rule_pack(&RulePack {
            jurisdiction: code("410922"),
            version: 2,
            effective_from: day(2026, 10, 1),
            params: RuleParams {
                holidays: Some((1..=7).map(|d| day(2026, 10, d)).collect()),
                makeup_working_days: Some(vec![day(2026, 9, 27), day(2026, 10, 10)]),
                lesson_confirm_working_days: Some(7),
                release_cadence: Some(ReleaseCadence::Weekly),
                release_reserve_bp: Some(1_000),
                ..RuleParams::default()
            },
        })
        .await
        .unwrap();
    for d in [8, 12, 13] {
        t.clock.set(at(10, d, 10));
        t.jobs().await;
        let r = check("the jobs ran, a reserve kept").await;
        assert!(r.reserve_minor > 0, "{r:?}");
    }
    // The manual release and the job's cycles were instructed on the way.
    let releases = store
        .entries(&t.institution, 0, 1000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == EntryKind::ReleaseInstructed)
        .count();
    assert!(releases >= 2, "{releases} releases");
    t.bank.stop().await;
    t.server.stop().await;
}
crate::both!(what_may_be_released_is_read_from_the_unreleased_earnings_alone);

/// What may be released, read from the unreleased earnings (one, two and
/// five hundred a page), equals the walk over every earning, for two
/// cut-offs; the walk's answer for today.
async fn same_releasable(
    t: &Term,
    institution: &ledger_core::Institution,
    label: &str,
) -> ledger_core::domain::lessons::Releasable {
    use api::app::lessons::{releasable_from_every_earning, releasable_paged};
    use ledger_core::domain::lessons::CutOff;
    let store = &t.server.store;
    let today = t.clock.now().date_naive();
    for cutoff in [
        CutOff::Day(today),
        CutOff::Day(today - chrono::Duration::days(3)),
    ] {
        let whole = releasable_from_every_earning(store, institution, &cutoff, today)
            .await
            .unwrap();
        for page in [1, 2, 500] {
            let read = releasable_paged(store, institution, &cutoff, today, page)
                .await
                .unwrap();
            assert_eq!(read, whole, "{label}, {cutoff:?}, {page} a page");
        }
    }
    releasable_from_every_earning(store, institution, &CutOff::Day(today), today)
        .await
        .unwrap()
}

/// Per-lesson cadence with a 10% reserve: an officer rejecting a dispute
/// earns the lessons; of two answers racing on one record exactly one is
/// taken; the release keeps the reserve out, to the fen.
async fn a_rejected_dispute_is_earned_and_the_reserve_stays_in_escrow(backend: Backend) {
    let clock = Clock::manual(at(9, 1, 8));
    let server = Server::start_clocked(backend, clock.clone()).await;
    jurisdictions(&server.store).await;
    server
        .store
        .put_rule_pack(&RulePack {
            jurisdiction: code("410922"),
            version: 1,
            effective_from: day(2026, 1, 1),
            params: RuleParams {
                release_cadence: Some(ReleaseCadence::PerLesson),
                release_reserve_bp: Some(1_000),
                ..RuleParams::default()
            },
        })
        .await
        .unwrap();
    let institution = institution(&server.store, "INS-B", "410922").await;
    let school = server
        .token(Role::Institution, Scope::Institution(institution.clone()))
        .await;
    let officer = server
        .token(Role::Officer, Scope::Jurisdiction(code("410922")))
        .await;
    let (status, e1) = server
        .post(
            &school,
            "/v1/institutions/INS-B/enrollments",
            "enr-1",
            json!({"id": "E-1", "student_ref": "S-1", "hours_bought": 40, "price": "4000.00",
                   "course_start": "2026-09-01", "course_end": "2026-11-30"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{e1}");
    let family = e1["family_token"].as_str().unwrap().to_string();
    pay(&server.store, &institution, "E-1", "pay-1", 400_000).await;
    bank_account(&server.store, "FAKE", &institution, "6222000000000009").await;
    let payee = Payee {
        name: "INS-B School".into(),
        account: "6222000011113333".into(),
        bank: "CMBCCNBS".into(),
    };
    server
        .store
        .set_payee(&institution, &payee, "setup")
        .await
        .unwrap();
    let bank = FakeBank::start().await;
    let mut banks = BankDirectory::default();
    banks
        .add("FAKE", bank.url(), DEFAULT_CREDENTIAL, Some(500))
        .unwrap();

    clock.set(at(9, 15, 17));
    for (key, hours) in [("l-1", 10), ("l-2", 2)] {
        let (status, body) = server
            .post(
                &school,
                "/v1/institutions/INS-B/lessons",
                key,
                json!({"enrollment": "E-1", "hours": hours, "occurred_on": "2026-09-15"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    // A confirmation and a dispute of L1 at once: one is taken.
    let (a, b) = tokio::join!(
        server.post(
            &family,
            "/v1/institutions/INS-B/lessons/L1/confirm",
            "race-c",
            json!({})
        ),
        server.post(
            &family,
            "/v1/institutions/INS-B/lessons/L1/dispute",
            "race-d",
            json!({"reason": "raced"})
        ),
    );
    let taken = [&a, &b]
        .iter()
        .filter(|(s, _)| *s == StatusCode::OK)
        .count();
    assert_eq!(taken, 1, "{a:?} {b:?}");
    let lost = if a.0 == StatusCode::OK { &b } else { &a };
    assert_eq!(lost.0, StatusCode::CONFLICT, "{lost:?}");
    assert_eq!(lost.1["code"], "lesson_step_refused");
    let (_, l1) = server
        .get(&family, "/v1/institutions/INS-B/lessons/L1")
        .await;
    assert_eq!(l1["trail"].as_array().unwrap().len(), 1, "{l1}");
    let decide = |lesson: &'static str, key: &'static str| {
        server.post(
            &officer,
            if lesson == "L1" {
                "/v1/institutions/INS-B/lessons/L1/decision"
            } else {
                "/v1/institutions/INS-B/lessons/L2/decision"
            },
            key,
            json!({"outcome": "reject", "reason": "the attendance sheet is signed"}),
        )
    };
    if l1["state"] == "disputed" {
        let (status, body) = decide("L1", "r-1").await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (status, d2) = server
        .post(
            &family,
            "/v1/institutions/INS-B/lessons/L2/dispute",
            "d-2",
            json!({"reason": "we left early"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{d2}");
    let (status, r2) = decide("L2", "r-2").await;
    assert_eq!(status, StatusCode::OK, "{r2}");
    assert_eq!(r2["lesson"]["state"], "dispute_rejected");
    assert_eq!(r2["entry"]["postings"][0]["amount"], "200.00");
    let (status, again) = decide("L2", "r-2b").await;
    assert_eq!(status, StatusCode::CONFLICT, "{again}");

    // Earned 1,200.00; unearned 2,800.00 keeps a 280.00 reserve.
    let tick = tick_jobs(&server.store, &banks, &[Job::Release, Job::Workflow])
        .await
        .unwrap();
    assert_eq!(tick.releases_instructed, 1, "{tick:?}");
    assert_eq!(bank.payments().len(), 1);
    assert_eq!(bank.payments()[0].amount, "920.00");
    let id = &bank.payments()[0].instruction_id;
    assert!(id.ends_with("-D2026-09-15"), "{id}");
    // Another institution's release of the same cycle has another id.
    let other = ledger_core::Institution {
        id: ledger_core::InstitutionId::parse("INS-C").unwrap(),
        ..server.store.institution(&institution).await.unwrap()
    };
    assert_ne!(
        api::app::lessons::cycle_instruction_id(&other, "D2026-09-15"),
        *id
    );
    let tick = tick_jobs(&server.store, &banks, &[Job::Release, Job::Workflow])
        .await
        .unwrap();
    assert_eq!(tick.releases_instructed, 0, "{tick:?}");
    let (_, r) = server
        .get(&officer, "/v1/institutions/INS-B/releasable")
        .await;
    assert_eq!(
        (
            r["unreleased"].as_str(),
            r["reserve"].as_str(),
            r["releasable"].as_str()
        ),
        (Some("280.00"), Some("280.00"), Some("0.00")),
        "{r}"
    );
    bank.stop().await;
    server.stop().await;
}
crate::both!(a_rejected_dispute_is_earned_and_the_reserve_stays_in_escrow);

/// The release job computes what may be released only where a release
/// could be made. A school in deposit mode keeps its families' tuition
/// itself: its lessons fill `releasable`, and there is no escrow cash to
/// pay them from. Its release day passes with no instruction and no
/// refusal, and nothing is computed (it would read every earning it ever
/// made). A custody school with escrow and earnings is computed and
/// released on the same day.
async fn a_school_without_escrow_cash_is_not_computed_on_its_release_day(backend: Backend) {
    use api::app::lessons::{may_release, release_cycle};
    let t = term(backend).await;
    let store = &t.server.store;
    let deposit = deposit_school(store).await;
    enrollment(store, &deposit, "D-1", 40, 400_000).await;
    let payee = Payee {
        name: "INS-D School".into(),
        account: "6222000011114444".into(),
        bank: "CMBCCNBS".into(),
    };
    store.set_payee(&deposit, &payee, "setup").await.unwrap();
    let request = |institution: &InstitutionId, client_id: &str, command: Command| Request {
        institution: institution.clone(),
        client_id: ClientId::parse(client_id).unwrap(),
        currency: Currency::Cny,
        occurred_at: at(9, 21, 17),
        external_ref: None,
        command,
    };
    for r in [
        request(
            &deposit,
            "out-D-1",
            Command::CollectOutsideEscrow {
                enrollment: EnrollmentId::parse("D-1").unwrap(),
                amount: ledger_core::Amount::from_minor(400_000).unwrap(),
            },
        ),
        request(
            &deposit,
            "les-D-1",
            Command::ConsumeLessons {
                enrollment: EnrollmentId::parse("D-1").unwrap(),
                hours: 4,
            },
        ),
        request(
            &t.institution,
            "les-E-1",
            Command::ConsumeLessons {
                enrollment: EnrollmentId::parse("E-1").unwrap(),
                hours: 4,
            },
        ),
    ] {
        store.execute(r).await.unwrap();
    }
    // Monday 28 September, a release day of the weekly cadence.
    t.clock.set(at(9, 28, 10));
    let today = t.clock.now().date_naive();
    let custody = store.institution(&t.institution).await.unwrap();
    let deposit = store.institution(&deposit).await.unwrap();
    assert!(may_release(store, &custody).await.unwrap());
    assert!(!may_release(store, &deposit).await.unwrap());
    let none = release_cycle(store, &deposit, today, t.clock.now()).await;
    assert!(matches!(none, Ok(None)), "{none:?}");
    let made = release_cycle(store, &custody, today, t.clock.now())
        .await
        .unwrap()
        .expect("the custody school's cycle is instructed");
    assert_eq!(made.kind, EntryKind::ReleaseInstructed);
    assert_eq!(
        made.postings[0].amount.minor(),
        40_000,
        "4 of 40 hours of 4,000.00"
    );
    t.bank.stop().await;
    t.server.stop().await;
}
crate::both!(a_school_without_escrow_cash_is_not_computed_on_its_release_day);
