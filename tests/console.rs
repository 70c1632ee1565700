//! The officers' console end to end: the demo county on a real server, in
//! a real headless Chromium driven over WebDriver (Debian's `chromium` and
//! `chromium-driver`; scripts/test installs them), and its security over
//! plain HTTP. Screenshots of each page go to target/console-screenshots/.

#[path = "support/scratch_pg.rs"]
mod scratch_pg;
#[allow(dead_code, unused_macros, unused_imports)]
#[macro_use]
#[path = "http/support.rs"]
mod support;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use api::access::{Role, Scope};
use api::app::officers::{self, NewOfficer};
use fantoccini::{Client, ClientBuilder, Locator};
use reqwest::StatusCode;
use support::{code, Backend, Server};

const PASSWORD: &str = "correct horse battery";
const OTHER_PASSWORD: &str = "staple gun trombone";

/// The demo county as `serve --demo` leaves it (its risk run as of its last
/// statement day kept as alerts), a second county with one institution,
/// and console accounts: two officers of the demo county, one of the other.
async fn demo_server(backend: Backend) -> Server {
    demo_server_at(backend, ledger_core::store::Clock::System).await
}

/// The same, on a server whose store reads the time from `clock`.
async fn demo_server_at(backend: Backend, clock: ledger_core::store::Clock) -> Server {
    let server = Server::start_clocked(backend, clock).await;
    let store = &server.store;
    api::demo::build(store).await.unwrap();
    let county = code(api::demo::COUNTY);
    let (y, m, d) = api::demo::LAST_DAY;
    let last_day = chrono::NaiveDate::from_ymd_opt(y, m, d).unwrap();
    let ranked = api::app::risk::assess(store, &county, last_day)
        .await
        .unwrap();
    api::app::risk::record_alerts(store, &ranked, last_day)
        .await
        .unwrap();
    for (c, name, parent) in [
        ("420000", "Hubei", Some("000000")),
        ("420900", "Xiaogan", Some("420000")),
        ("420922", "Dawu", Some("420900")),
    ] {
        api::app::jurisdictions::register(
            store,
            api::app::jurisdictions::NewJurisdiction {
                code: code(c),
                name: name.into(),
                parent: parent.map(code),
            },
        )
        .await
        .unwrap();
    }
    support::institution(store, "INS-420922-001", "420922").await;
    for (login, name, county, password) in [
        ("wang", "王丽", "410922", PASSWORD),
        ("zhao", "赵强", "410922", OTHER_PASSWORD),
        ("hu", "胡敏", "420922", PASSWORD),
    ] {
        officers::add(
            store,
            NewOfficer {
                login: login.into(),
                name: name.into(),
                role: Role::Officer,
                scope: Scope::Jurisdiction(code(county)),
            },
            password,
        )
        .await
        .unwrap();
    }
    server
}

// ---- plain HTTP: sessions, CSRF, scope, lockout ----

/// A browser without a browser: keeps cookies, follows no redirects.
struct Visitor {
    base: String,
    client: reqwest::Client,
    cookies: HashMap<String, String>,
}

impl Visitor {
    fn new(server: &Server) -> Visitor {
        Visitor {
            base: server.base.clone(),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            cookies: HashMap::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn keep(&mut self, response: &reqwest::Response) -> Vec<String> {
        let mut set = Vec::new();
        for v in response.headers().get_all("set-cookie") {
            let text = v.to_str().unwrap().to_string();
            let pair = text.split(';').next().unwrap();
            let (k, val) = pair.split_once('=').unwrap();
            if text.contains("Max-Age=0") {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_string(), val.to_string());
            }
            set.push(text);
        }
        set
    }

    async fn get(&mut self, path: &str) -> (StatusCode, String) {
        let r = self
            .client
            .get(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .send()
            .await
            .unwrap();
        self.keep(&r);
        (r.status(), r.text().await.unwrap())
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> (StatusCode, String) {
        let r = self
            .client
            .post(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .form(form)
            .send()
            .await
            .unwrap();
        self.keep(&r);
        (r.status(), r.text().await.unwrap())
    }

    /// The sign-in form's token, from a fresh sign-in page.
    async fn form_token(&mut self) -> String {
        let (status, page) = self.get("/sign-in").await;
        assert_eq!(status, StatusCode::OK);
        hidden(&page, "csrf")
    }

    async fn sign_in(&mut self, login: &str, password: &str) -> StatusCode {
        let token = self.form_token().await;
        let (status, _) = self
            .post(
                "/sign-in",
                &[("csrf", &token), ("login", login), ("password", password)],
            )
            .await;
        status
    }
}

/// The value of the first hidden input of that name on a page.
fn hidden(page: &str, name: &str) -> String {
    let at = page
        .find(&format!("name=\"{name}\" value=\""))
        .unwrap_or_else(|| panic!("no {name} field on the page: {page}"));
    let rest = &page[at + name.len() + 15..];
    rest[..rest.find('"').unwrap()].to_string()
}

both!(every_form_refuses_a_post_without_its_csrf_token);
async fn every_form_refuses_a_post_without_its_csrf_token(backend: Backend) {
    let server = demo_server(backend).await;
    let mut v = Visitor::new(&server);
    // Sign-in: the token must match the one in the form's cookie.
    v.form_token().await;
    let (status, _) = v
        .post("/sign-in", &[("login", "wang"), ("password", PASSWORD)])
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = v
        .post(
            "/sign-in",
            &[("csrf", "0000"), ("login", "wang"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(!v.cookies.contains_key("el_session"));
    assert_eq!(v.sign_in("wang", PASSWORD).await, StatusCode::SEE_OTHER);
    // Acting on an alert without the session's token changes nothing.
    let (_, page) = v.get("/institutions/INS-410922-004").await;
    let csrf = hidden(&page, "csrf");
    let alerts = server
        .store
        .alerts(
            Some(&ledger_core::InstitutionId::parse("INS-410922-004").unwrap()),
            None,
        )
        .await
        .unwrap();
    let key = alerts[0].key.clone();
    let path = format!("/institutions/INS-410922-004/alerts/{key}");
    let (status, _) = v.post(&path, &[("action", "acknowledge")]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = v
        .post(
            &path,
            &[("csrf", "f".repeat(64).as_str()), ("action", "acknowledge")],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let after = server
        .store
        .alerts(Some(&alerts[0].institution), None)
        .await
        .unwrap();
    assert_eq!(
        after[0].status, alerts[0].status,
        "a refused form changed the alert"
    );
    // With it, the alert is acknowledged.
    let (status, _) = v
        .post(&path, &[("csrf", &csrf), ("action", "acknowledge")])
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let after = server
        .store
        .alerts(Some(&alerts[0].institution), None)
        .await
        .unwrap();
    assert_eq!(after[0].status.code(), "acknowledged");
    // Deciding a refund wants it, before anything is looked up.
    let (status, _) = v
        .post("/refunds/RF0123456789/decide", &[("decision", "approve")])
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // So do a suggested match's and a second officer's decisions.
    let (status, _) = v
        .post(
            "/suggestions/INS-410922-004/M-1/decide",
            &[("decision", "confirm")],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = v
        .post(
            "/approvals/AP0123456789ABCDEF0123/decide",
            &[("decision", "approve")],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Sign-out wants it too.
    let (status, _) = v.post("/sign-out", &[]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = v.get("/overview").await;
    assert_eq!(status, StatusCode::OK, "a refused sign-out signed out");
    server.stop().await;
}

both!(signing_in_makes_a_new_session_and_signing_out_ends_it);
async fn signing_in_makes_a_new_session_and_signing_out_ends_it(backend: Backend) {
    let server = demo_server(backend).await;
    let mut v = Visitor::new(&server);
    // An attacker's chosen session id, planted before sign-in, is never
    // adopted: sign-in sets a new one, and the planted one opens nothing.
    let planted = "ab".repeat(32);
    v.cookies.insert("el_session".into(), planted.clone());
    let token = v.form_token().await;
    let r = v
        .client
        .post(format!("{}/sign-in", v.base))
        .header("cookie", v.cookie_header())
        .form(&[
            ("csrf", token.as_str()),
            ("login", "wang"),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let set = v.keep(&r);
    let session = set
        .iter()
        .find(|c| c.starts_with("el_session="))
        .expect("sign-in sets the session cookie");
    assert!(session.contains("HttpOnly"), "{session}");
    assert!(session.contains("SameSite=Strict"), "{session}");
    let first = v.cookies["el_session"].clone();
    assert_ne!(first, planted);
    assert_eq!(first.len(), 64);
    let (status, page) = v.get("/overview").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("Golden Path Education"));

    let mut attacker = Visitor::new(&server);
    attacker.cookies.insert("el_session".into(), planted);
    let (status, _) = attacker.get("/overview").await;
    assert_eq!(
        status,
        StatusCode::SEE_OTHER,
        "the planted id opened a session"
    );

    // Signing in again gives another id.
    assert_eq!(v.sign_in("wang", PASSWORD).await, StatusCode::SEE_OTHER);
    assert_ne!(v.cookies["el_session"], first);

    // Signing out ends the session on the server: its id opens nothing.
    let ended = v.cookies["el_session"].clone();
    let (_, page) = v.get("/overview").await;
    let csrf = hidden(&page, "csrf");
    let (status, _) = v.post("/sign-out", &[("csrf", &csrf)]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(!v.cookies.contains_key("el_session"));
    v.cookies.insert("el_session".into(), ended);
    let (status, _) = v.get("/overview").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    // Behind TLS the cookie is Secure.
    let token = v.form_token().await;
    let r = v
        .client
        .post(format!("{}/sign-in", v.base))
        .header("cookie", v.cookie_header())
        .header("x-forwarded-proto", "https")
        .form(&[
            ("csrf", token.as_str()),
            ("login", "wang"),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    let set = v.keep(&r);
    assert!(
        set.iter()
            .any(|c| c.starts_with("el_session=") && c.contains("; Secure")),
        "{set:?}"
    );
    server.stop().await;
}

both!(the_overview_page_is_each_officers_own_in_her_language_and_shows_writes_at_once);
/// The console keeps the overview's table of a page once per language
/// (issue 18's aim for 64 officers): the officer's name and form token are
/// still her own on every request, each language still its own, and a
/// write anyone makes shows at once.
async fn the_overview_page_is_each_officers_own_in_her_language_and_shows_writes_at_once(
    backend: Backend,
) {
    let server = demo_server(backend).await;
    let mut wang = Visitor::new(&server);
    let mut zhao = Visitor::new(&server);
    assert_eq!(wang.sign_in("wang", PASSWORD).await, StatusCode::SEE_OTHER);
    assert_eq!(
        zhao.sign_in("zhao", OTHER_PASSWORD).await,
        StatusCode::SEE_OTHER
    );

    let (status, first) = wang.get("/overview").await;
    assert_eq!(status, StatusCode::OK);
    assert!(first.contains("王丽") && first.contains("辖区总览"));
    let (status, other) = zhao.get("/overview").await;
    assert_eq!(status, StatusCode::OK);
    assert!(other.contains("赵强"), "zhao's own name");
    assert!(!other.contains("王丽"), "not the first officer's page");
    assert_ne!(hidden(&other, "csrf"), hidden(&first, "csrf"));
    // zhao's token is the one his forms are checked against: signing out
    // with it works.
    let csrf = hidden(&other, "csrf");

    // The same page in English, then again in Chinese for the other.
    let (_, english) = wang.get("/overview?lang=en").await;
    assert!(
        english.contains("Jurisdiction overview"),
        "English asked for"
    );
    assert!(!english.contains("辖区总览"));
    let (_, chinese) = zhao.get("/overview").await;
    assert!(chinese.contains("辖区总览"), "zhao did not switch language");
    assert!(!chinese.contains("Jurisdiction overview"));

    // A write from another process shows on the next request.
    let other_store = ledger_core::Store::connect(&server.url).await.unwrap();
    assert!(!chinese.contains("INS-410922-099 School"));
    support::institution(&other_store, "INS-410922-099", "410922").await;
    let (_, after) = zhao.get("/overview").await;
    assert!(
        after.contains("INS-410922-099 School"),
        "the new institution"
    );
    let (_, after) = wang.get("/overview?lang=en").await;
    assert!(after.contains("INS-410922-099 School"), "in English too");

    let (status, _) = zhao.post("/sign-out", &[("csrf", &csrf)]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (status, _) = zhao.get("/overview").await;
    assert_eq!(status, StatusCode::SEE_OTHER, "signed out");
    server.stop().await;
}

both!(a_county_officer_reaching_another_countys_institution_gets_404);
async fn a_county_officer_reaching_another_countys_institution_gets_404(backend: Backend) {
    let server = demo_server(backend).await;
    let mut wang = Visitor::new(&server);
    assert_eq!(wang.sign_in("wang", PASSWORD).await, StatusCode::SEE_OTHER);
    let (status, _) = wang.get("/institutions/INS-410922-004").await;
    assert_eq!(status, StatusCode::OK);
    for path in [
        "/institutions/INS-420922-001",
        "/institutions/INS-420922-001/bank-lines",
        "/institutions/INS-NOPE",
    ] {
        let (status, _) = wang.get(path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
    // The other county's officer sees it, and not the demo county.
    let mut hu = Visitor::new(&server);
    assert_eq!(hu.sign_in("hu", PASSWORD).await, StatusCode::SEE_OTHER);
    let (status, _) = hu.get("/institutions/INS-420922-001").await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = hu.get("/institutions/INS-410922-004").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, page) = hu.get("/overview").await;
    assert!(page.contains("INS-420922-001"));
    assert!(!page.contains("Golden Path Education"));
    server.stop().await;
}

#[tokio::test]
async fn five_failed_sign_ins_lock_the_account_for_fifteen_minutes() {
    let start = chrono::Utc::now();
    let clock = ledger_core::store::Clock::manual(start);
    let server = Server::start_clocked(Backend::Sqlite, clock.clone()).await;
    api::app::jurisdictions::register(
        &server.store,
        api::app::jurisdictions::NewJurisdiction {
            code: code("000000"),
            name: "Nation".into(),
            parent: None,
        },
    )
    .await
    .unwrap();
    for login in ["wang", "zhao"] {
        officers::add(
            &server.store,
            NewOfficer {
                login: login.into(),
                name: login.into(),
                role: Role::Officer,
                scope: Scope::Jurisdiction(code("000000")),
            },
            PASSWORD,
        )
        .await
        .unwrap();
    }
    let mut v = Visitor::new(&server);
    for _ in 0..officers::MAX_FAILURES {
        assert_eq!(
            v.sign_in("wang", "wrong password!").await,
            StatusCode::UNAUTHORIZED
        );
    }
    // Locked: even the right password is refused, and says why.
    let token = v.form_token().await;
    let (status, page) = v
        .post(
            "/sign-in",
            &[("csrf", &token), ("login", "wang"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(page.contains("锁定"), "{page}");
    assert!(!v.cookies.contains_key("el_session"));
    // Another account is not.
    assert_eq!(v.sign_in("zhao", PASSWORD).await, StatusCode::SEE_OTHER);
    // Fourteen minutes on, still locked; sixteen, open again.
    clock.set(start + chrono::Duration::minutes(14));
    assert_eq!(
        v.sign_in("wang", PASSWORD).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    clock.set(start + chrono::Duration::minutes(30));
    assert_eq!(v.sign_in("wang", PASSWORD).await, StatusCode::SEE_OTHER);
    server.stop().await;
}

both!(notices_are_numbered_per_jurisdiction_and_year_and_fall_overdue);
async fn notices_are_numbered_per_jurisdiction_and_year_and_fall_overdue(backend: Backend) {
    use api::app::rectification::{self, NoticeDraft};
    let server = demo_server(backend).await;
    let store = &server.store;
    let i = |id: &str| ledger_core::InstitutionId::parse(id).unwrap();
    let golden = store.institution(&i("INS-410922-004")).await.unwrap();
    let sunrise = store.institution(&i("INS-410922-001")).await.unwrap();
    let dawu = store.institution(&i("INS-420922-001")).await.unwrap();
    let today = support::day(2026, 12, 5);
    let draft = |due| NoticeDraft {
        alert_key: None,
        finding: "资金缺口".into(),
        required_action: "补足".into(),
        due_on: due,
    };
    let before = store.notices().await.unwrap().len();
    // Refused: a due date already past, an empty finding, an alert that is
    // not the institution's; nothing is written.
    let e = rectification::issue(store, &golden, draft(support::day(2026, 12, 4)), "t", today)
        .await
        .unwrap_err();
    assert_eq!(e.code(), "due_in_the_past");
    let mut empty = draft(today);
    empty.finding = "  ".into();
    let e = rectification::issue(store, &golden, empty, "t", today)
        .await
        .unwrap_err();
    assert_eq!(
        (e.code(), e.to_string().contains("finding")),
        ("invalid_field", true)
    );
    // A due day beyond the business dates would never fall due; a NUL in
    // a finding no database keeps alike.
    let e = rectification::issue(
        store,
        &golden,
        draft(support::day(9999, 12, 31)),
        "t",
        today,
    )
    .await
    .unwrap_err();
    assert_eq!(
        (e.code(), e.field().as_deref()),
        ("invalid_field", Some("due_on"))
    );
    let mut nul = draft(today);
    nul.finding = "资金\u{0}缺口".into();
    let e = rectification::issue(store, &golden, nul, "t", today)
        .await
        .unwrap_err();
    assert_eq!(
        (e.code(), e.field().as_deref()),
        ("invalid_text", Some("finding"))
    );
    let mut foreign = draft(today);
    foreign.alert_key = Some("no such alert".into());
    assert!(rectification::issue(store, &golden, foreign, "t", today)
        .await
        .is_err());
    assert_eq!(store.notices().await.unwrap().len(), before);
    // Atomic with the alert it answers: a resolved alert cannot be asked
    // to be rectified, so no notice is written and the alert stays resolved.
    let resolved = store
        .alerts(Some(&golden.id), None)
        .await
        .unwrap()
        .into_iter()
        .next()
        .unwrap();
    store
        .act_on_alert(
            &golden.id,
            &resolved.key,
            &ledger_core::domain::alerts::AlertAction::Resolve,
            "t",
            None,
        )
        .await
        .unwrap();
    let mut on_resolved = draft(today);
    on_resolved.alert_key = Some(resolved.key.clone());
    let e = rectification::issue(store, &golden, on_resolved, "t", today)
        .await
        .unwrap_err();
    assert_eq!(e.code(), "invalid_alert_transition");
    assert_eq!(store.notices().await.unwrap().len(), before);
    let after = store.alerts(Some(&golden.id), None).await.unwrap();
    let same = after.iter().find(|a| a.key == resolved.key).unwrap();
    assert_eq!(same.status.code(), "resolved");

    let first = rectification::issue(
        store,
        &golden,
        draft(support::day(2026, 12, 10)),
        "t",
        today,
    )
    .await
    .unwrap();
    let second = rectification::issue(
        store,
        &sunrise,
        draft(support::day(2026, 12, 20)),
        "t",
        today,
    )
    .await
    .unwrap();
    let other = rectification::issue(store, &dawu, draft(support::day(2026, 12, 20)), "t", today)
        .await
        .unwrap();
    let next_year = rectification::issue(
        store,
        &golden,
        draft(support::day(2027, 1, 20)),
        "t",
        support::day(2027, 1, 4),
    )
    .await
    .unwrap();
    assert_eq!(first.record.notice_no, "410922-2026-001");
    assert_eq!(second.record.notice_no, "410922-2026-002");
    assert_eq!(other.record.notice_no, "420922-2026-001");
    assert_eq!(next_year.record.notice_no, "410922-2027-001");

    // On the 11th the first is overdue and listed first; answered, it is not.
    let on_11th = rectification::all(store, support::day(2026, 12, 11))
        .await
        .unwrap();
    assert_eq!(on_11th[0].record.notice_no, "410922-2026-001");
    assert!(on_11th[0].overdue);
    assert_eq!(on_11th.iter().filter(|n| n.overdue).count(), 1);
    let e = rectification::answer(store, "410922-2026-001", " ", "t")
        .await
        .unwrap_err();
    assert_eq!(e.code(), "invalid_field");
    let e = rectification::answer(store, "410922-2026-099", "done", "t")
        .await
        .unwrap_err();
    assert_eq!(e.code(), "not_found");
    rectification::answer(store, "410922-2026-001", "已整改", "t")
        .await
        .unwrap();
    let found = rectification::find(store, "410922-2026-001", support::day(2026, 12, 11))
        .await
        .unwrap();
    assert!(!found.overdue);
    assert_eq!(found.answers[0].answer, "已整改");
    server.stop().await;
}

both!(the_lists_are_published_in_versions_and_read_without_signing_in);
async fn the_lists_are_published_in_versions_and_read_without_signing_in(backend: Backend) {
    let server = demo_server(backend).await;
    let mut wang = Visitor::new(&server);
    assert_eq!(wang.sign_in("wang", PASSWORD).await, StatusCode::SEE_OTHER);
    let (_, page) = wang.get("/institutions/INS-410922-004").await;
    let csrf = hidden(&page, "csrf");
    let path = "/institutions/INS-410922-004/list";
    // Refused: no reason, a list that is not one, no CSRF token.
    let (status, _) = wang
        .post(path, &[("csrf", &csrf), ("list", "black"), ("reason", " ")])
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = wang
        .post(path, &[("csrf", &csrf), ("list", "grey"), ("reason", "x")])
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = wang.post(path, &[("list", "black"), ("reason", "x")]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Another county's officer cannot reach it.
    let mut hu = Visitor::new(&server);
    assert_eq!(hu.sign_in("hu", PASSWORD).await, StatusCode::SEE_OTHER);
    let (_, page) = hu.get("/overview").await;
    let hu_csrf = hidden(&page, "csrf");
    let (status, _) = hu
        .post(
            path,
            &[("csrf", &hu_csrf), ("list", "white"), ("reason", "x")],
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(server.store.list_changes().await.unwrap().is_empty());

    for (id, list, reason) in [
        ("INS-410922-001", "white", "按期开课,资金足额监管"),
        ("INS-410922-004", "white", "首次公布"),
        ("INS-410922-004", "black", "挪用监管资金"),
    ] {
        let (status, _) = wang
            .post(
                &format!("/institutions/{id}/list"),
                &[("csrf", &csrf), ("list", list), ("reason", reason)],
            )
            .await;
        assert_eq!(status, StatusCode::SEE_OTHER);
    }
    let mut public = Visitor::new(&server);
    let (status, body) = public.get("/lists.json").await;
    assert_eq!(status, StatusCode::OK);
    let lists: serde_json::Value = serde_json::from_str(&body).unwrap();
    let county = &lists[0];
    assert_eq!(county["jurisdiction"], "410922");
    let ids = |k: &str| {
        county[k]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["institution"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids("black"), ["INS-410922-004"]);
    assert_eq!(ids("white"), ["INS-410922-001"]);
    let versions: Vec<i64> = county["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["version"].as_i64().unwrap())
        .collect();
    assert_eq!(versions, [1, 2, 3]);
    let r = public
        .client
        .get(format!("{}/lists.csv", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let bytes = r.bytes().await.unwrap();
    assert_eq!(&bytes[..3], b"\xEF\xBB\xBF", "a UTF-8 BOM for Excel");
    let text = std::str::from_utf8(&bytes[3..]).unwrap();
    assert!(text.starts_with("jurisdiction,version,"), "{text}");
    assert!(
        text.contains(
            "410922,3,INS-410922-004,Golden Path Education,JY410922-004,black,挪用监管资金,"
        ),
        "{text}"
    );
    assert_eq!(text.lines().count(), 4);
    let (status, page) = public.get("/lists").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("挪用监管资金"));
    server.stop().await;
}

both!(the_overview_and_the_alerts_export_as_csv_for_excel);
async fn the_overview_and_the_alerts_export_as_csv_for_excel(backend: Backend) {
    let server = demo_server(backend).await;
    let mut v = Visitor::new(&server);
    let (status, _) = v.get("/overview.csv").await;
    assert_eq!(
        status,
        StatusCode::SEE_OTHER,
        "no export without signing in"
    );
    assert_eq!(v.sign_in("wang", PASSWORD).await, StatusCode::SEE_OTHER);
    let read = |text: String| {
        let bytes = text.into_bytes();
        assert_eq!(&bytes[..3], b"\xEF\xBB\xBF", "a UTF-8 BOM for Excel");
        let mut r = csv::Reader::from_reader(&bytes[3..]);
        let header: Vec<String> = r.headers().unwrap().iter().map(String::from).collect();
        let rows: Vec<Vec<String>> = r
            .records()
            .map(|x| x.unwrap().iter().map(String::from).collect())
            .collect();
        (header, rows)
    };
    let (status, text) = v.get("/overview.csv").await;
    assert_eq!(status, StatusCode::OK);
    let (header, rows) = read(text);
    assert_eq!(
        header[..5],
        [
            "institution",
            "name",
            "licence_no",
            "jurisdiction",
            "owed_to_families"
        ]
    );
    assert_eq!(rows.len(), 4, "the demo county only: {rows:?}");
    assert_eq!(rows[0][0], "INS-410922-004");
    assert_eq!(rows[0][4], "183380.22");
    assert_eq!(rows[0][7], "9.29", "coverage, the bank-confirmed figure");
    // The same overview as an Excel workbook, read back.
    let r = v
        .client
        .get(format!("{}/overview.xlsx", v.base))
        .header("cookie", v.cookie_header())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.headers()["content-type"],
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    );
    let bytes = r.bytes().await.unwrap().to_vec();
    let sheet = {
        use calamine::Reader;
        let mut book = calamine::Xlsx::new(std::io::Cursor::new(bytes)).unwrap();
        assert_eq!(book.sheet_names(), ["overview-410922"]);
        book.worksheet_range("overview-410922").unwrap()
    };
    let cells: Vec<Vec<String>> = sheet
        .rows()
        .map(|r| r.iter().map(|c| c.to_string()).collect())
        .collect();
    assert_eq!(cells[0], header, "the same columns as the CSV");
    assert_eq!(cells[1..], rows[..], "the same rows as the CSV");
    let (status, text) = v.get("/alerts.csv").await;
    assert_eq!(status, StatusCode::OK);
    let (_, rows) = read(text);
    assert!(!rows.is_empty());
    assert!(
        rows.iter().all(|r| r[0].starts_with("INS-410922-")),
        "{rows:?}"
    );
    assert!(rows.iter().any(|r| r[4] == "red"));
    server.stop().await;
}

/// A download's body, after a UTF-8 BOM check for CSV: (header, rows).
fn csv_table(bytes: &[u8]) -> (Vec<String>, Vec<Vec<String>>) {
    assert_eq!(&bytes[..3], b"\xEF\xBB\xBF", "a UTF-8 BOM for Excel");
    let mut r = csv::Reader::from_reader(&bytes[3..]);
    let header = r.headers().unwrap().iter().map(String::from).collect();
    let rows = r
        .records()
        .map(|x| x.unwrap().iter().map(String::from).collect())
        .collect();
    (header, rows)
}

/// The only sheet of a workbook, read back with calamine: (header, rows).
fn xlsx_table(bytes: Vec<u8>, sheet: &str) -> (Vec<String>, Vec<Vec<String>>) {
    use calamine::Reader;
    let mut book = calamine::Xlsx::new(std::io::Cursor::new(bytes)).unwrap();
    assert_eq!(book.sheet_names(), [sheet]);
    let range = book.worksheet_range(sheet).unwrap();
    let mut cells: Vec<Vec<String>> = range
        .rows()
        .map(|r| r.iter().map(|c| c.to_string()).collect())
        .collect();
    let header = cells.remove(0);
    (header, cells)
}

impl Visitor {
    /// A download: status, content type and body.
    async fn download(&mut self, path: &str) -> (StatusCode, String, Vec<u8>) {
        let r = self
            .client
            .get(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .send()
            .await
            .unwrap();
        let status = r.status();
        let ty = r
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        (status, ty, r.bytes().await.unwrap().to_vec())
    }

    /// An institution's export as CSV and as .xlsx, checked to hold the
    /// same table: (header, rows).
    async fn export(&mut self, id: &str, what: &str) -> (Vec<String>, Vec<Vec<String>>) {
        let (status, ty, bytes) = self
            .download(&format!("/institutions/{id}/export/{what}.csv"))
            .await;
        assert_eq!(
            (status, ty.as_str()),
            (StatusCode::OK, "text/csv; charset=utf-8")
        );
        let csv = csv_table(&bytes);
        let (status, ty, bytes) = self
            .download(&format!("/institutions/{id}/export/{what}.xlsx"))
            .await;
        assert_eq!(
            (status, ty.as_str()),
            (
                StatusCode::OK,
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
            )
        );
        let sheet: String = format!("{id}-{what}").chars().take(31).collect();
        assert_eq!(
            xlsx_table(bytes, &sheet),
            csv,
            "{what}: the workbook holds the CSV's table"
        );
        csv
    }
}

both!(an_institutions_entries_balances_and_notices_export_for_excel);
async fn an_institutions_entries_balances_and_notices_export_for_excel(backend: Backend) {
    use api::app::rectification::{self, NoticeDraft};
    let server = demo_server(backend).await;
    let store = &server.store;
    let golden_id = "INS-410922-004";
    let golden = store
        .institution(&ledger_core::InstitutionId::parse(golden_id).unwrap())
        .await
        .unwrap();
    let today = api::app::jobs::today(store);
    let notice = rectification::issue(
        store,
        &golden,
        NoticeDraft {
            alert_key: None,
            finding: "监管账户资金不足,缺口 16.6 万元".into(),
            required_action: "补足监管资金".into(),
            due_on: today + chrono::Days::new(10),
        },
        "王丽",
        today,
    )
    .await
    .unwrap();
    let token = server
        .token(Role::Officer, Scope::Jurisdiction(code("410922")))
        .await;
    let mut v = Visitor::new(&server);
    let (status, _, _) = v
        .download(&format!("/institutions/{golden_id}/export/balances.csv"))
        .await;
    assert_eq!(
        status,
        StatusCode::SEE_OTHER,
        "no export without signing in"
    );
    assert_eq!(v.sign_in("wang", PASSWORD).await, StatusCode::SEE_OTHER);

    // Balances: every account's figures as the API answers them.
    let (header, rows) = v.export(golden_id, "balances").await;
    let (status, api) = server
        .get(&token, &format!("/v1/institutions/{golden_id}/balances"))
        .await;
    assert_eq!(status, StatusCode::OK);
    let accounts = api["accounts"].as_array().unwrap();
    assert_eq!(rows.len(), accounts.len());
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    for a in accounts {
        let row = rows
            .iter()
            .find(|r| r[col("account")] == a["account"].as_str().unwrap())
            .unwrap_or_else(|| panic!("{a} missing from {rows:?}"));
        for field in ["balance", "available", "posted_debits", "posted_credits"] {
            assert_eq!(
                row[col(field)],
                a[field].as_str().unwrap(),
                "{field} of {a}"
            );
        }
    }
    assert!(
        rows.iter().any(|r| r[col("balance")] != "0.00"),
        "the demo's books are not empty: {rows:?}"
    );

    // Entries: one row per posting, every posting the API lists.
    let (header, rows) = v.export(golden_id, "entries").await;
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let exported: Vec<(String, String, String, String)> = rows
        .iter()
        .map(|r| {
            (
                r[col("seq")].clone(),
                r[col("account")].clone(),
                r[col("side")].clone(),
                r[col("amount")].clone(),
            )
        })
        .collect();
    let mut listed = Vec::new();
    let mut cursor = String::new();
    loop {
        let (status, page) = server
            .get(
                &token,
                &format!("/v1/institutions/{golden_id}/entries?limit=500{cursor}"),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        for e in page["items"].as_array().unwrap() {
            for p in e["postings"].as_array().unwrap() {
                listed.push((
                    e["seq"].to_string(),
                    p["account"].as_str().unwrap().to_string(),
                    p["side"].as_str().unwrap().to_string(),
                    p["amount"].as_str().unwrap().to_string(),
                ));
            }
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => break,
        }
    }
    assert!(listed.len() > 10, "{listed:?}");
    assert_eq!(
        exported, listed,
        "the export's postings are the API's, in order"
    );

    // Notices: the one issued, with its finding and due date.
    let (header, rows) = v.export(golden_id, "notices").await;
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0][col("notice_no")], notice.record.notice_no);
    assert_eq!(rows[0][col("finding")], "监管账户资金不足,缺口 16.6 万元");
    assert_eq!(
        rows[0][col("due_on")],
        (today + chrono::Days::new(10)).to_string()
    );
    assert_eq!(rows[0][col("overdue")], "false");
    let (header, rows) = v.export("INS-410922-001", "notices").await;
    assert_eq!(
        (header.len(), rows.len()),
        (13, 0),
        "another school's notices are not this one's"
    );

    // The institution page links every export.
    let (_, page) = v.get(&format!("/institutions/{golden_id}")).await;
    for what in ["entries", "balances", "notices"] {
        for ext in ["xlsx", "csv"] {
            let link = format!("href=\"/institutions/{golden_id}/export/{what}.{ext}\"");
            assert!(page.contains(&link), "{link}");
        }
    }
    // Another county's school, an unknown table, an unknown format: 404.
    for path in [
        "/institutions/INS-420922-001/export/entries.csv",
        "/institutions/INS-410922-004/export/secrets.csv",
        "/institutions/INS-410922-004/export/entries.pdf",
        "/institutions/INS-410922-004/export/entries",
    ] {
        let (status, _, _) = v.download(path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
    server.stop().await;
}

both!(coverage_is_one_figure_on_the_command_line_the_api_the_console_and_in_risk);
async fn coverage_is_one_figure_on_the_command_line_the_api_the_console_and_in_risk(
    backend: Backend,
) {
    let server = demo_server(backend).await;
    let today = api::app::jobs::today(&server.store).to_string();
    let cli = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_escrow-ledger"))
            .env_remove("ESCROW_DATABASE_URL")
            .env("RUST_LOG", "error")
            .arg("--database-url")
            .arg(&server.url)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let by_id = |list: &serde_json::Value, id: &str| -> serde_json::Value {
        list.as_array()
            .unwrap()
            .iter()
            .find(|i| i["id"] == id || i["institution"]["id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("{id} not in {list}"))
    };
    // The command line: `balances` (every institution and one) and `risk`.
    let balances = cli(&["balances", "--json"]);
    let one = cli(&["balances", "--institution", "INS-410922-004", "--json"]);
    let risk = cli(&["risk", "--as-of", &today, "--json"]);
    // The API's overview and the console's (page and export).
    let officer = server
        .token(Role::Officer, Scope::Jurisdiction(code("410922")))
        .await;
    let (status, overview) = server
        .get(&officer, "/v1/jurisdictions/410922/overview")
        .await;
    assert_eq!(status, StatusCode::OK, "{overview}");
    let (status, api_risk) = server
        .get(
            &officer,
            &format!("/v1/jurisdictions/410922/risk?as_of={today}"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{api_risk}");
    let mut v = Visitor::new(&server);
    assert_eq!(v.sign_in("wang", PASSWORD).await, StatusCode::SEE_OTHER);
    let (status, text) = v.get("/overview.csv").await;
    assert_eq!(status, StatusCode::OK);
    let bytes = text.into_bytes();
    let mut r = csv::Reader::from_reader(&bytes[3..]);
    let at = r
        .headers()
        .unwrap()
        .iter()
        .position(|h| h == "coverage_percent")
        .unwrap();
    let csv_rows: Vec<Vec<String>> = r
        .records()
        .map(|x| x.unwrap().iter().map(String::from).collect())
        .collect();
    let mut seen = Vec::new();
    for id in [
        "INS-410922-001",
        "INS-410922-002",
        "INS-410922-003",
        "INS-410922-004",
    ] {
        let ratio = by_id(&balances["institutions"], id)["coverage_ratio"].clone();
        let Some(ratio) = ratio.as_str().map(str::to_string) else {
            // A deposit-mode school owes nothing from supervised money
            // (its tuition is outside escrow by design; the deposit's own
            // rule judges it): no ratio, the same everywhere.
            assert_eq!(
                by_id(&balances["institutions"], id)["mode"],
                "deposit",
                "{id}: {balances}"
            );
            assert!(by_id(&risk["institutions"], id)["coverage_ratio"].is_null());
            assert!(by_id(&api_risk["institutions"], id)["coverage_bp"].is_null());
            assert!(by_id(&overview["institutions"], id)["coverage"]["ratio"].is_null());
            seen.push(String::new());
            continue;
        };
        assert_eq!(
            by_id(&risk["institutions"], id)["coverage_ratio"],
            ratio,
            "risk, {id}"
        );
        let bp: rust_decimal::Decimal =
            ratio.parse::<rust_decimal::Decimal>().unwrap() * rust_decimal::Decimal::from(10_000);
        assert_eq!(
            by_id(&api_risk["institutions"], id)["coverage_bp"].to_string(),
            bp.normalize().to_string(),
            "the API's risk, {id}"
        );
        assert_eq!(
            by_id(&overview["institutions"], id)["coverage"]["ratio"],
            ratio,
            "the API, {id}"
        );
        let percent: rust_decimal::Decimal =
            ratio.parse::<rust_decimal::Decimal>().unwrap() * rust_decimal::Decimal::ONE_HUNDRED;
        let row = csv_rows.iter().find(|r| r[0] == id).unwrap();
        assert_eq!(
            row[at],
            format!("{percent:.2}"),
            "the console's export, {id}"
        );
        let (status, page) = v.get(&format!("/institutions/{id}?lang=en")).await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            page.contains(&format!("{:.2}%", percent)),
            "the console's page, {id}: {percent}"
        );
        seen.push(ratio);
    }
    assert_eq!(one["coverage_ratio"], seen[3]);
    // The running-off school's figure is the one its shortfall alert gives.
    assert_eq!(seen[3], "0.0929");
    let signals = &by_id(&risk["institutions"], "INS-410922-004")["signals"];
    let shortfall = signals
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["kind"] == "shortfall")
        .unwrap();
    assert!(
        shortfall["summary"]
            .as_str()
            .unwrap()
            .contains("cover 9.29%"),
        "{shortfall}"
    );
    assert!(
        shortfall["evidence"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "coverage" && e["bp"] == 929),
        "{shortfall}"
    );
    // The books as a journal: the API's is the command line's.
    let journal = Command::new(env!("CARGO_BIN_EXE_escrow-ledger"))
        .env_remove("ESCROW_DATABASE_URL")
        .args([
            "--database-url",
            &server.url,
            "journal",
            "--institution",
            "INS-410922-004",
        ])
        .output()
        .unwrap();
    assert!(journal.status.success());
    let r = server
        .request(
            reqwest::Method::GET,
            Some(&officer),
            "/v1/institutions/INS-410922-004/journal",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    assert_eq!(
        r.text().await.unwrap(),
        String::from_utf8(journal.stdout).unwrap()
    );
    // The overview page says what coverage is.
    let (_, page) = v.get("/overview?lang=en").await;
    assert!(page.contains("money the bank confirms"), "{page}");
    server.stop().await;
}

both!(notices_issued_at_once_take_consecutive_numbers);
async fn notices_issued_at_once_take_consecutive_numbers(backend: Backend) {
    use api::app::rectification::{self, NoticeDraft};
    let server = demo_server(backend).await;
    let store = server.store.clone();
    let today = support::day(2026, 12, 5);
    let mut tasks = Vec::new();
    for n in 0..12 {
        let store = store.clone();
        let id = format!("INS-410922-00{}", n % 4 + 1);
        tasks.push(tokio::spawn(async move {
            let institution = store
                .institution(&ledger_core::InstitutionId::parse(&id).unwrap())
                .await
                .unwrap();
            let draft = NoticeDraft {
                alert_key: None,
                finding: format!("finding {n}"),
                required_action: "补足".into(),
                due_on: support::day(2026, 12, 20),
            };
            rectification::issue(&store, &institution, draft, "t", today)
                .await
                .map(|n| n.record.seq)
        }));
    }
    let mut seqs = Vec::new();
    for t in tasks {
        seqs.push(
            t.await
                .unwrap()
                .expect("no issue fails for another's number"),
        );
    }
    seqs.sort_unstable();
    assert_eq!(
        seqs,
        (1..=12).collect::<Vec<i32>>(),
        "neither collide nor skip"
    );
    server.stop().await;
}

both!(an_officer_cannot_approve_in_the_console_a_refund_she_asked_for);
async fn an_officer_cannot_approve_in_the_console_a_refund_she_asked_for(backend: Backend) {
    let server = demo_server(backend).await;
    let store = &server.store;
    let school = store
        .institution(&ledger_core::InstitutionId::parse("INS-410922-001").unwrap())
        .await
        .unwrap();
    let wang = api::access::Caller {
        token_id: "console:wang".into(),
        name: "王丽".into(),
        role: Role::Officer,
        scope: Scope::Jurisdiction(code("410922")),
    };
    let refund = api::app::refunds::request(
        store,
        &school,
        api::app::refunds::RefundAsk {
            enrollment: "410922-001-E003".into(),
            amount: Some("100.00".into()),
            payee: ledger_core::domain::refunds::Payee {
                name: "张伟".into(),
                account: "6214830100123456".into(),
                bank: "CMBCCNBS".into(),
            },
            reason: Some("搬家".into()),
        },
        api::app::refunds::refund_id_for("console-test", "own-refund").unwrap(),
        api::app::approvals::party(&wang).describe(),
        api::app::jobs::today(store),
    )
    .await
    .unwrap();
    let path = format!("/refunds/{}/decide", refund.id);
    let trail_before = store
        .refund_trail(&school.id, refund.id.as_str())
        .await
        .unwrap();

    // The console takes the same maker–checker path as the API: the
    // officer who asked is refused, and nothing is decided.
    let mut v = Visitor::new(&server);
    assert_eq!(v.sign_in("wang", PASSWORD).await, StatusCode::SEE_OTHER);
    let csrf = csrf_of(&mut v).await;
    let (status, page) = v
        .post(&path, &[("csrf", &csrf), ("decision", "approve")])
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{page}");
    let still = api::app::refunds::find(store, refund.id.as_str())
        .await
        .unwrap();
    assert_eq!(still.state.code(), "requested");
    assert_eq!(
        store
            .refund_trail(&school.id, refund.id.as_str())
            .await
            .unwrap(),
        trail_before
    );

    // Another officer of the county may.
    let mut z = Visitor::new(&server);
    assert_eq!(
        z.sign_in("zhao", OTHER_PASSWORD).await,
        StatusCode::SEE_OTHER
    );
    let csrf = csrf_of(&mut z).await;
    // A decline says why (the family reads it): without a reason it is
    // refused and nothing moves.
    let (status, page) = z
        .post(
            &path,
            &[("csrf", &csrf), ("decision", "decline"), ("reason", "  ")],
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{page}");
    assert!(
        page.contains("reason") || page.contains("comment"),
        "{page}"
    );
    let (status, page) = z
        .post(
            &path,
            &[
                ("csrf", &csrf),
                ("decision", "decline"),
                ("reason", "no\u{0}"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{page}");
    assert_eq!(
        api::app::refunds::find(store, refund.id.as_str())
            .await
            .unwrap()
            .state
            .code(),
        "requested"
    );
    let (status, _) = z
        .post(&path, &[("csrf", &csrf), ("decision", "approve")])
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let decided = api::app::refunds::find(store, refund.id.as_str())
        .await
        .unwrap();
    assert!(
        !["requested", "declined"].contains(&decided.state.code()),
        "{decided:?}"
    );
    server.stop().await;
}

both!(a_payee_change_waits_for_a_second_officer_in_the_console);
async fn a_payee_change_waits_for_a_second_officer_in_the_console(backend: Backend) {
    let server = demo_server(backend).await;
    let store = &server.store;
    let school = store
        .institution(&ledger_core::InstitutionId::parse("INS-410922-001").unwrap())
        .await
        .unwrap();
    let before = store.payee(&school.id).await.unwrap();
    // 王丽 (wang) asks, as her console account.
    let wang = api::access::Caller {
        token_id: "console:wang".into(),
        name: "王丽".into(),
        role: Role::Officer,
        scope: Scope::Jurisdiction(code("410922")),
    };
    let payee = ledger_core::domain::refunds::Payee {
        name: "Sunrise Music School".into(),
        account: "6222000099998888".into(),
        bank: "ICBKCNBJ".into(),
    };
    let asked = api::app::approvals::request_payee_change(
        store,
        &school,
        payee.clone(),
        &api::app::approvals::party(&wang),
        chrono::Utc::now(),
    )
    .await
    .unwrap();
    let api::app::approvals::PayeeChange::Waiting(approval) = asked else {
        panic!("the change waits for a second officer: {asked:?}")
    };
    let row = format!("approval-{}", approval.id);
    let path = format!("/approvals/{}/decide", approval.id);

    // She sees it waiting, and cannot answer her own request.
    let mut v = Visitor::new(&server);
    assert_eq!(v.sign_in("wang", PASSWORD).await, StatusCode::SEE_OTHER);
    let (status, page) = v.get("/decisions").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains(&row), "{page}");
    let csrf = hidden(&page, "csrf");
    let (status, _) = v
        .post(&path, &[("csrf", &csrf), ("decision", "approve")])
        .await;
    assert!(status.is_client_error(), "{status}");
    assert_eq!(store.payee(&school.id).await.unwrap(), before);

    // A rejection without a reason is refused; 赵强 (zhao) approves.
    let mut z = Visitor::new(&server);
    assert_eq!(
        z.sign_in("zhao", OTHER_PASSWORD).await,
        StatusCode::SEE_OTHER
    );
    let (_, page) = z.get("/decisions").await;
    let csrf = hidden(&page, "csrf");
    let (status, _) = z
        .post(
            &path,
            &[("csrf", &csrf), ("decision", "reject"), ("reason", " ")],
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = z
        .post(&path, &[("csrf", &csrf), ("decision", "approve")])
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(store.payee(&school.id).await.unwrap(), Some(payee));
    let decided = api::app::approvals::find(store, &approval.id)
        .await
        .unwrap();
    let decision = decided.decision.expect("decided");
    assert!(decision.approved);
    assert!(decision.by.contains("赵强"), "{}", decision.by);
    let (_, page) = z.get("/decisions").await;
    assert!(!page.contains(&row), "no longer waiting");
    // A county officer elsewhere never sees it (404, as if absent).
    let mut h = Visitor::new(&server);
    assert_eq!(h.sign_in("hu", PASSWORD).await, StatusCode::SEE_OTHER);
    let (_, page) = h.get("/decisions").await;
    let csrf = hidden(&page, "csrf");
    let (status, _) = h
        .post(&path, &[("csrf", &csrf), ("decision", "approve")])
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // An unknown suggestion is a precise 404 and changes nothing.
    let csrf = csrf_of(&mut z).await;
    let (status, page) = z
        .post(
            "/suggestions/INS-410922-004/M-404/decide",
            &[("csrf", &csrf), ("decision", "confirm")],
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{page}");
    server.stop().await;
}

async fn csrf_of(v: &mut Visitor) -> String {
    let (_, page) = v.get("/decisions").await;
    hidden(&page, "csrf")
}

// ---- the browser ----

fn screenshots() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/console-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// chromedriver on a free port of 127.0.0.1, ended when dropped.
struct Driver {
    child: Child,
    url: String,
    _profile: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn driver() -> Driver {
    let chromedriver = ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect(
            "chromedriver is missing: scripts/test installs it \
             (apt-get install -y chromium chromium-driver)",
        );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(chromedriver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let url = format!("http://127.0.0.1:{port}");
    let driver = Driver {
        child,
        url: url.clone(),
        _profile: tempfile::tempdir().unwrap(),
    };
    let http = reqwest::Client::new();
    for _ in 0..100 {
        if let Ok(r) = http.get(format!("{url}/status")).send().await {
            if r.status().is_success() {
                return driver;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("chromedriver did not answer on {url} within 10 s");
}

async fn browser(driver: &Driver) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-background-networking",
                "--disable-component-update",
                "--no-first-run",
                "--window-size=1280,1000",
                format!("--user-data-dir={}", driver._profile.path().display()),
            ]
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a headless Chromium session")
}

/// Clicking what leads to another page, and waiting until that page has
/// replaced this one (an element of the same name on the old page must not
/// be mistaken for the new one's).
trait Follow {
    async fn follow(self, c: &Client);
}

impl Follow for fantoccini::elements::Element {
    async fn follow(self, c: &Client) {
        c.execute("window.__leaving = true;", vec![]).await.unwrap();
        self.click().await.unwrap();
        for _ in 0..300 {
            let gone = c
                .execute(
                    "return window.__leaving === undefined && document.readyState === 'complete';",
                    vec![],
                )
                .await
                .map(|v| v.as_bool() == Some(true))
                .unwrap_or(false);
            if gone {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the click led to no new page within 30 s");
    }
}

async fn shoot(c: &Client, name: &str) {
    let png = c.screenshot().await.unwrap();
    std::fs::write(screenshots().join(format!("{name}.png")), png).unwrap();
}

/// axe.min.js of the pinned axe-core (scripts/axe-core fetches it from
/// npm on first use, checked by its SHA-256), read once.
fn axe_source() -> &'static str {
    static SOURCE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SOURCE.get_or_init(|| {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/axe-core");
        let out = Command::new(&script)
            .stderr(Stdio::inherit())
            .output()
            .expect("run scripts/axe-core");
        assert!(out.status.success(), "scripts/axe-core failed");
        let path = String::from_utf8(out.stdout).unwrap();
        std::fs::read_to_string(path.trim()).unwrap()
    })
}

/// axe-core's violations of WCAG 2 A and AA (2.0, 2.1 and 2.2) and of its
/// best practices on the page the browser shows: (rule, impact, help,
/// elements with what fails in each).
async fn axe_violations(c: &Client) -> Vec<(String, String, String, Vec<String>)> {
    c.execute(&format!("{}\nreturn true;", axe_source()), vec![])
        .await
        .unwrap();
    let found = c
        .execute_async(
            r#"const done = arguments[arguments.length - 1];
            axe.run(document, {
                runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa', 'best-practice']},
                resultTypes: ['violations'],
            }).then(r => done(r.violations.map(v => ({
                id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.map(n => n.target.join(' ') + ': ' + n.failureSummary),
            })))).catch(e => done([{id: 'axe-error', impact: 'critical', help: String(e), nodes: []}]));"#,
            vec![],
        )
        .await
        .unwrap();
    let text = |v: &serde_json::Value| v.as_str().unwrap_or("").replace('\n', " ");
    found
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                text(&v["id"]),
                text(&v["impact"]),
                text(&v["help"]),
                v["nodes"].as_array().unwrap().iter().map(text).collect(),
            )
        })
        .collect()
}

/// The accessibility pass of the page the browser shows: every violation
/// axe-core finds is printed; one of impact serious or critical fails the
/// test with its rule, help and elements.
async fn axe(c: &Client, page: &str) {
    let mut grave = Vec::new();
    for (id, impact, help, nodes) in axe_violations(c).await {
        let line = format!(
            "{page}: {id} ({impact}): {help}\n    {}",
            nodes.join("\n    ")
        );
        eprintln!("axe: {line}");
        if matches!(impact.as_str(), "serious" | "critical") {
            grave.push(line);
        }
    }
    assert!(
        grave.is_empty(),
        "accessibility violations (axe-core, WCAG 2 A/AA):\n{}",
        grave.join("\n")
    );
}

/// The pass sees what it should: an unlabelled field and text too faint
/// to read, added to the page, are reported as serious or worse.
async fn axe_sees_a_faulty_page(c: &Client) {
    c.execute(
        "document.querySelector('main').insertAdjacentHTML('beforeend', \
         '<input type=\"text\" name=\"x\"><p style=\"color:#ddd;background:#fff\">faint</p>'); \
         return true;",
        vec![],
    )
    .await
    .unwrap();
    let found = axe_violations(c).await;
    for rule in ["label", "color-contrast"] {
        assert!(
            found.iter().any(|(id, impact, _, _)| id == rule
                && matches!(impact.as_str(), "serious" | "critical")),
            "axe-core missed {rule}: {found:?}"
        );
    }
    c.refresh().await.unwrap();
}

async fn sign_in_in_browser(c: &Client, base: &str, login: &str, password: &str) {
    c.goto(&format!("{base}/sign-in")).await.unwrap();
    c.find(Locator::Id("login"))
        .await
        .unwrap()
        .send_keys(login)
        .await
        .unwrap();
    c.find(Locator::Id("password"))
        .await
        .unwrap()
        .send_keys(password)
        .await
        .unwrap();
    c.find(Locator::Css("form.stack button[type=submit]"))
        .await
        .unwrap()
        .follow(c)
        .await;
}

/// The officer's walk: sign in, see the institution running off first and
/// red, open its evidence down to the bank line, acknowledge an alert,
/// switch to English, sign out.
async fn officer_walk(server: &Server, c: &Client) {
    let base = &server.base;
    c.goto(&format!("{base}/sign-in")).await.unwrap();
    let label = c.find(Locator::Css("label[for=login]")).await.unwrap();
    assert_eq!(label.text().await.unwrap().trim(), "账号");
    shoot(c, "01-sign-in").await;
    axe(c, "sign-in").await;
    axe_sees_a_faulty_page(c).await;

    sign_in_in_browser(c, base, "wang", PASSWORD).await;
    c.wait()
        .for_element(Locator::Css("table#overview"))
        .await
        .unwrap();
    assert_eq!(c.current_url().await.unwrap().path(), "/overview");
    let first = c
        .find(Locator::Css("table#overview tbody tr"))
        .await
        .unwrap();
    assert_eq!(first.attr("class").await.unwrap().as_deref(), Some("red"));
    let text = first.text().await.unwrap();
    assert!(text.contains("Golden Path Education"), "{text}");
    assert!(text.contains("红色预警"), "{text}");
    assert!(text.contains("¥183,380.22"), "{text}");
    let rows = c
        .find_all(Locator::Css("table#overview tbody tr"))
        .await
        .unwrap();
    assert_eq!(rows.len(), 4);
    for row in &rows[1..] {
        assert_eq!(row.attr("class").await.unwrap().as_deref(), Some("green"));
    }
    shoot(c, "02-overview").await;
    axe(c, "overview").await;

    // Search by licence number.
    let q = c.find(Locator::Id("q")).await.unwrap();
    q.send_keys("JY410922-002").await.unwrap();
    c.find(Locator::Css("form.filters button"))
        .await
        .unwrap()
        .follow(c)
        .await;
    c.wait()
        .for_url(
            &url::Url::parse(&format!("{base}/overview?q=JY410922-002&level=&sort=risk")).unwrap(),
        )
        .await
        .unwrap();
    let rows = c
        .find_all(Locator::Css("table#overview tbody tr"))
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert!(rows[0]
        .text()
        .await
        .unwrap()
        .contains("Inkstone Calligraphy"));

    // The institution and its evidence.
    c.goto(&format!("{base}/overview")).await.unwrap();
    c.find(Locator::LinkText("Golden Path Education"))
        .await
        .unwrap()
        .follow(c)
        .await;
    c.wait()
        .for_element(Locator::Css("table#alerts"))
        .await
        .unwrap();
    assert_eq!(
        c.current_url().await.unwrap().path(),
        "/institutions/INS-410922-004"
    );
    let h1 = c
        .find(Locator::Css("h1"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(h1, "Golden Path Education");
    shoot(c, "03-institution").await;
    // The alerts table fits the window and its buttons keep their labels
    // on one line (a squeezed column used to break "确认知悉" character
    // by character, and a long line id pushed the table off the page).
    let layout = c
        .execute(
            "const page = document.documentElement; \
             const broken = [...document.querySelectorAll('table#alerts button')] \
               .filter(b => b.getBoundingClientRect().height > 2 * parseFloat(getComputedStyle(b).lineHeight)) \
               .map(b => b.textContent); \
             return [page.scrollWidth <= page.clientWidth, broken];",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        layout,
        serde_json::json!([true, []]),
        "[fits the window, buttons whose label wraps]"
    );
    let alerts = c.find(Locator::Css("table#alerts")).await.unwrap();
    std::fs::write(
        screenshots().join("03c-alerts.png"),
        alerts.screenshot().await.unwrap(),
    )
    .unwrap();
    axe(c, "institution").await;
    let chart = c.find(Locator::Css("figure#chart")).await.unwrap();
    std::fs::write(
        screenshots().join("03a-chart.png"),
        chart.screenshot().await.unwrap(),
    )
    .unwrap();
    // The chart: owed, escrow in the books and the bank's closings as
    // lines, each day's movements as bars, the figures as a table too.
    for series in ["owed", "escrow", "bank"] {
        c.find(Locator::Css(&format!(
            "figure#chart svg polyline.series.{series}"
        )))
        .await
        .unwrap_or_else(|_| panic!("no {series} line in the chart"));
    }
    // Its axes: a yuan scale from ¥0 with thousands separators, dates
    // beneath, and the bank's last closing written at the end of its line.
    let mut ticks = Vec::new();
    for t in c
        .find_all(Locator::Css("figure#chart svg text.tick"))
        .await
        .unwrap()
    {
        ticks.push(t.text().await.unwrap());
    }
    assert!(ticks.contains(&"¥0".to_string()), "{ticks:?}");
    assert!(
        ticks.iter().any(|t| t.starts_with('¥') && t.contains(',')),
        "{ticks:?}"
    );
    assert!(
        ticks.iter().filter(|t| t.ends_with('日')).count() >= 3,
        "{ticks:?}"
    );
    let bank_end = c
        .find(Locator::Css("figure#chart svg text.end.bank"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        bank_end, "银行 ¥7,483.32",
        "the escrow account's last closing"
    );
    assert!(!c
        .find_all(Locator::Css("figure#chart svg rect.inflow"))
        .await
        .unwrap()
        .is_empty());
    assert!(!c
        .find_all(Locator::Css("figure#chart svg rect.outflow"))
        .await
        .unwrap()
        .is_empty());
    let table_rows = c
        .find_all(Locator::Css("table#chart-table tbody tr"))
        .await
        .unwrap();
    assert!(table_rows.len() > 30, "{} days", table_rows.len());
    // Reconciliation days with their differences: the 30,000.00 outflow.
    let recon = c
        .find(Locator::Css("table#recon"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(recon.contains("-¥30,000.00"), "{recon}");
    assert!(recon.contains("不一致"), "{recon}");
    let moves = c
        .find(Locator::Css("table#money-moves"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        moves.contains("拨付") && moves.contains("银行已确认"),
        "{moves}"
    );
    // The books behind the figures: every entry, anchored by its seq (the
    // target of an entry in an alert's evidence).
    c.find(Locator::LinkText("账簿分录"))
        .await
        .unwrap()
        .follow(c)
        .await;
    c.wait()
        .for_element(Locator::Css("table#entries"))
        .await
        .unwrap();
    assert_eq!(
        c.current_url().await.unwrap().path(),
        "/institutions/INS-410922-004/entries"
    );
    let row = c.find(Locator::Id("entry-1")).await.unwrap();
    let first_cell = row
        .find(Locator::Css("td"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(first_cell, "1");
    shoot(c, "03b-entries").await;
    axe(c, "entries").await;
    c.back().await.unwrap();
    c.wait()
        .for_element(Locator::Css("table#alerts"))
        .await
        .unwrap();
    let evidence = c.find(Locator::Css("a.evidence-line")).await.unwrap();
    let line_id = evidence.text().await.unwrap();
    evidence.follow(c).await;
    c.wait()
        .for_element(Locator::Css("table#bank-lines"))
        .await
        .unwrap();
    let url = c.current_url().await.unwrap();
    assert_eq!(url.path(), "/institutions/INS-410922-004/bank-lines");
    let anchor = url.fragment().unwrap().to_string();
    let line = c.find(Locator::Id(&anchor)).await.unwrap();
    let first_cell = line
        .find(Locator::Css("td"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        first_cell, line_id,
        "the evidence link reaches its bank line"
    );
    shoot(c, "04-bank-line").await;
    axe(c, "bank lines").await;

    // Acknowledge the first open alert.
    c.back().await.unwrap();
    c.wait()
        .for_element(Locator::Css("table#alerts"))
        .await
        .unwrap();
    c.find(Locator::Css("table#alerts tbody tr button"))
        .await
        .unwrap()
        .follow(c)
        .await;
    c.wait()
        .for_element(Locator::Css("table#alerts"))
        .await
        .unwrap();
    let status = c
        .find(Locator::Css("table#alerts tbody tr td:nth-child(3)"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        ["已知悉", "待处理"].contains(&status.as_str()),
        "unexpected status {status}"
    );
    let acknowledged = server
        .store
        .alerts(
            Some(&ledger_core::InstitutionId::parse("INS-410922-004").unwrap()),
            None,
        )
        .await
        .unwrap()
        .iter()
        .filter(|a| a.status.code() == "acknowledged")
        .count();
    assert_eq!(acknowledged, 1);

    // English, kept while browsing.
    c.find(Locator::Css("a.lang"))
        .await
        .unwrap()
        .follow(c)
        .await;
    c.wait()
        .for_element(Locator::Css("table#alerts"))
        .await
        .unwrap();
    c.goto(&format!("{base}/overview")).await.unwrap();
    let h1 = c
        .find(Locator::Css("h1"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(h1.contains("Jurisdiction overview"), "{h1}");
    shoot(c, "05-overview-en").await;
    axe(c, "overview (English)").await;

    // Signing out.
    c.find(Locator::Css("header form button"))
        .await
        .unwrap()
        .follow(c)
        .await;
    c.wait().for_element(Locator::Id("login")).await.unwrap();
    c.goto(&format!("{base}/overview")).await.unwrap();
    assert_eq!(c.current_url().await.unwrap().path(), "/sign-in");
}

/// A refund one officer requested, decided in the browser by another.
async fn refund_walk(server: &Server, c: &Client) {
    let base = &server.base;
    let store = &server.store;
    let institution = store
        .institution(&ledger_core::InstitutionId::parse("INS-410922-001").unwrap())
        .await
        .unwrap();
    let refund = api::app::refunds::request(
        store,
        &institution,
        api::app::refunds::RefundAsk {
            enrollment: "410922-001-E003".into(),
            amount: Some("100.00".into()),
            payee: ledger_core::domain::refunds::Payee {
                name: "张伟".into(),
                account: "6214830100123456".into(),
                bank: "CMBCCNBS".into(),
            },
            reason: Some("搬家".into()),
        },
        api::app::refunds::refund_id_for("console-test", "refund-1").unwrap(),
        "officer wang".into(),
        api::app::jobs::today(store),
    )
    .await
    .unwrap();
    sign_in_in_browser(c, base, "zhao", OTHER_PASSWORD).await;
    c.wait()
        .for_element(Locator::Css("table#overview"))
        .await
        .unwrap();
    // The walk before left the browser in English.
    c.find(Locator::Css("nav a[href='/decisions']"))
        .await
        .unwrap()
        .follow(c)
        .await;
    let row = c
        .wait()
        .for_element(Locator::Id(&format!("refund-{}", refund.id)))
        .await
        .unwrap();
    let text = row.text().await.unwrap();
    assert!(text.contains("¥100.00"), "{text}");
    assert!(text.contains("officer wang"), "{text}");
    shoot(c, "06-decisions").await;
    axe(c, "decisions").await;
    row.find(Locator::Css("button[type=submit]"))
        .await
        .unwrap()
        .follow(c)
        .await;
    c.wait().for_element(Locator::Css("main h1")).await.unwrap();
    assert_eq!(c.current_url().await.unwrap().path(), "/decisions");
    assert!(c
        .find_all(Locator::Id(&format!("refund-{}", refund.id)))
        .await
        .unwrap()
        .is_empty());
    let decided = api::app::refunds::find(store, refund.id.as_str())
        .await
        .unwrap();
    assert_ne!(decided.state.code(), "requested");
    assert_ne!(decided.state.code(), "declined");
    let trail = store
        .refund_trail(&decided.institution, decided.id.as_str())
        .await
        .unwrap();
    assert!(
        format!("{trail:?}").contains("console:zhao"),
        "the approval names the second officer: {trail:?}"
    );
}

/// A rectification notice issued in the browser, listed as pending, then
/// overdue once its due date has passed, then answered.
async fn notice_walk(server: &Server, c: &Client, clock: &ledger_core::store::Clock) {
    let base = &server.base;
    sign_in_in_browser(c, base, "wang", PASSWORD).await;
    c.wait()
        .for_element(Locator::Css("table#overview"))
        .await
        .unwrap();
    c.goto(&format!("{base}/institutions/INS-410922-004?lang=zh"))
        .await
        .unwrap();
    let due = (clock.now() + chrono::Duration::days(7)).date_naive();
    c.find(Locator::Id("finding"))
        .await
        .unwrap()
        .send_keys("监管账户于11月5日被转出30,000元,无拨付指令。")
        .await
        .unwrap();
    c.find(Locator::Id("required_action"))
        .await
        .unwrap()
        .send_keys("7日内将30,000元退回监管账户并书面说明。")
        .await
        .unwrap();
    c.execute(
        "document.getElementById('due_on').value = arguments[0]; \
         document.getElementById('alert_key').selectedIndex = 1;",
        vec![serde_json::json!(due.format("%Y-%m-%d").to_string())],
    )
    .await
    .unwrap();
    c.find(Locator::Css("form[action$='/notices'] button[type=submit]"))
        .await
        .unwrap()
        .follow(c)
        .await;
    c.wait()
        .for_element(Locator::Css("article.notice"))
        .await
        .unwrap();
    let url = c.current_url().await.unwrap();
    let year = chrono::Datelike::year(&clock.now().date_naive());
    assert_eq!(url.path(), format!("/notices/410922-{year}-001"));
    let article = c
        .find(Locator::Css("article.notice"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(article.contains("整改通知书"), "{article}");
    assert!(
        article.contains(&format!("410922教整〔{year}〕1号")),
        "{article}"
    );
    assert!(article.contains("30,000元退回"), "{article}");
    shoot(c, "07-notice").await;
    axe(c, "notice").await;
    // The alert it answers now waits for rectification by that date.
    let alerts = server
        .store
        .alerts(
            Some(&ledger_core::InstitutionId::parse("INS-410922-004").unwrap()),
            None,
        )
        .await
        .unwrap();
    assert!(alerts
        .iter()
        .any(|a| a.status.code() == "rectification_requested" && a.rectification_due == Some(due)));

    let row_class = |c: &Client| {
        let c = c.clone();
        async move {
            c.goto(&format!("{base}/notices")).await.unwrap();
            let id = format!("notice-410922-{year}-001");
            let row = match c.wait().for_element(Locator::Id(&id)).await {
                Ok(row) => row,
                Err(e) => {
                    shoot(&c, "failed-notices").await;
                    let url = c.current_url().await.unwrap();
                    let page = c.source().await.unwrap_or_default();
                    panic!("no {id} on {url}: {e}\n{page}");
                }
            };
            (
                row.attr("class").await.unwrap().unwrap_or_default(),
                row.text().await.unwrap(),
            )
        }
    };
    let (class, text) = row_class(c).await;
    assert_eq!(class, "yellow", "{text}");
    assert!(text.contains("整改中"), "{text}");

    // Eight days on, unanswered: overdue, red, and counted.
    clock.set(clock.now() + chrono::Duration::days(8));
    sign_in_in_browser(c, base, "wang", PASSWORD).await;
    c.wait()
        .for_element(Locator::Css("table#overview"))
        .await
        .unwrap();
    let (class, text) = row_class(c).await;
    assert_eq!(class, "red", "{text}");
    assert!(text.contains("已逾期"), "{text}");
    let banner = c
        .find(Locator::Css("p.error"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(banner.contains('1'), "{banner}");
    shoot(c, "08-notices-overdue").await;
    axe(c, "notices").await;

    // The institution's answer, recorded: no longer overdue.
    c.find(Locator::LinkText(&format!("410922教整〔{year}〕1号")))
        .await
        .unwrap()
        .follow(c)
        .await;
    c.find(Locator::Id("answer"))
        .await
        .unwrap()
        .send_keys("已于12月14日退回30,000元,附银行回单。")
        .await
        .unwrap();
    c.find(Locator::Css("form[action$='/answer'] button[type=submit]"))
        .await
        .unwrap()
        .follow(c)
        .await;
    c.wait()
        .for_element(Locator::Css("article.notice"))
        .await
        .unwrap();
    let (class, _) = row_class(c).await;
    assert_eq!(class, "green");
}

/// A blacklisting published in the browser, read on the public page by a
/// browser that has signed out.
async fn lists_walk(server: &Server, c: &Client) {
    let base = &server.base;
    sign_in_in_browser(c, base, "wang", PASSWORD).await;
    c.wait()
        .for_element(Locator::Css("table#overview"))
        .await
        .unwrap();
    c.goto(&format!("{base}/institutions/INS-410922-004?lang=zh"))
        .await
        .unwrap();
    c.find(Locator::Id("reason"))
        .await
        .unwrap()
        .send_keys("挪用监管资金30,000元,逾期未整改。")
        .await
        .unwrap();
    c.find(Locator::Css("form[action$='/list'] button[type=submit]"))
        .await
        .unwrap()
        .follow(c)
        .await;
    assert_eq!(c.current_url().await.unwrap().path(), "/lists");
    c.find(Locator::Css("header form button"))
        .await
        .unwrap()
        .follow(c)
        .await;
    // Signed out: the public page still shows it.
    c.goto(&format!("{base}/lists")).await.unwrap();
    assert_eq!(c.current_url().await.unwrap().path(), "/lists");
    let black = c
        .find(Locator::Id("black-410922"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(black.contains("Golden Path Education"), "{black}");
    assert!(black.contains("挪用监管资金"), "{black}");
    let white = c
        .find(Locator::Id("white-410922"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!white.contains("Golden Path Education"), "{white}");
    assert!(c
        .find_all(Locator::Css("header form"))
        .await
        .unwrap()
        .is_empty());
    shoot(c, "09-public-lists").await;
    axe(c, "public lists").await;
}

/// The element `css` once it shows, within 20 s.
async fn shown(c: &Client, css: &str) -> fantoccini::elements::Element {
    c.wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css} did not show within 20 s: {e}"))
}

/// A developer tries a call in /docs (Swagger UI, served from the binary):
/// authorizes with a bearer token, executes GET /v1/institutions and sees
/// its 200 answer with the county's institutions.
async fn docs_walk(server: &Server, c: &Client) {
    let token = server
        .token(Role::Officer, Scope::Jurisdiction(code("410922")))
        .await;
    c.goto(&format!("{}/docs", server.base)).await.unwrap();
    shown(c, ".swagger-ui .information-container .title").await;
    shown(c, ".scheme-container button.authorize")
        .await
        .click()
        .await
        .unwrap();
    shown(c, ".dialog-ux .auth-container input")
        .await
        .send_keys(&token)
        .await
        .unwrap();
    shown(c, ".dialog-ux .auth-btn-wrapper button.authorize")
        .await
        .click()
        .await
        .unwrap();
    shown(c, ".dialog-ux button.btn-done")
        .await
        .click()
        .await
        .unwrap();
    let operation = ".opblock-get:has(.opblock-summary-path[data-path='/v1/institutions'])";
    shown(c, &format!("{operation} .opblock-summary-control"))
        .await
        .click()
        .await
        .unwrap();
    shown(c, &format!("{operation} button.execute"))
        .await
        .click()
        .await
        .unwrap();
    let status = shown(
        c,
        &format!("{operation} .live-responses-table .response .response-col_status"),
    )
    .await
    .text()
    .await
    .unwrap();
    assert_eq!(status.trim(), "200", "GET /v1/institutions from /docs");
    let body = shown(
        c,
        &format!("{operation} .live-responses-table .response-col_description pre"),
    )
    .await
    .text()
    .await
    .unwrap();
    assert!(body.contains("INS-410922-004"), "{body}");
    assert!(
        !body.contains("INS-420922-001"),
        "the token's county only: {body}"
    );
    c.execute(
        "document.querySelector(arguments[0]).scrollIntoView({block: 'center'}); return true;",
        vec![serde_json::json!(format!(
            "{operation} .live-responses-table"
        ))],
    )
    .await
    .unwrap();
    shoot(c, "10-docs-try-a-call").await;
}

#[tokio::test]
async fn an_officer_finds_the_institution_at_risk_and_its_bank_line_in_chromium() {
    let clock = ledger_core::store::Clock::manual(chrono::Utc::now());
    let server = demo_server_at(Backend::Sqlite, clock.clone()).await;
    let driver = driver().await;
    let c = browser(&driver).await;
    let walk = tokio::time::timeout(Duration::from_secs(240), async {
        officer_walk(&server, &c).await;
        refund_walk(&server, &c).await;
        notice_walk(&server, &c, &clock).await;
        lists_walk(&server, &c).await;
        docs_walk(&server, &c).await;
    })
    .await;
    let _ = c.close().await;
    drop(driver);
    server.stop().await;
    walk.expect("the browser walk took over 240 s");
}

/// A generated county beside the demo's: custody, deposit and both modes,
/// statements closing on several days, a release still in flight, tuition
/// recorded after the banks' last statement and one back-dated before it,
/// an account with no statement yet and a mode missing its account.
async fn generated_county(store: &ledger_core::Store) -> chrono::NaiveDate {
    use chrono::{Days, NaiveDate, TimeZone, Utc};
    use ledger_core::domain::feeds::{AccountKind, BankAccount, FeedLine, FeedStatement};
    use ledger_core::{
        Amount, Category, ClientId, Command as Cmd, Currency, Enrollment, EnrollmentId,
        Institution, InstitutionId, InstitutionStatus, Request, SupervisionMode,
    };
    let bank = "GENBANK";
    store.register_bank(bank, "Generated Bank").await.unwrap();
    let day0 = NaiveDate::from_ymd_opt(2026, 9, 1).unwrap();
    let on = |d: u64| day0 + Days::new(d);
    let line = |amount_minor: i64, day: NaiveDate, n: String| FeedLine {
        amount_minor,
        booking_date: Some(day),
        value_date: Some(day),
        status: ledger_core::domain::feeds::LineStatus::Booked,
        bank_ref: Some(n),
        end_to_end_id: None,
        remittance: None,
        counterparty_name: None,
        counterparty_account: None,
        bank_tx_code: Some("NTRF".into()),
        reversal: false,
        return_reason: None,
        details: "{}".into(),
        source_line: None,
        source_path: None,
    };
    let mut requests = Vec::new();
    let mut feeds = Vec::new();
    for k in 0..9usize {
        let id = InstitutionId::parse(format!("GEN-{k:02}")).unwrap();
        let mode = [
            SupervisionMode::Custody,
            SupervisionMode::Deposit,
            SupervisionMode::Both,
        ][k % 3];
        store
            .create_institution(&Institution {
                id: id.clone(),
                name: format!("generated {k}"),
                licence_no: format!("L-GEN-{k}"),
                jurisdiction: code(api::demo::COUNTY),
                mode,
                category: Category::Subject,
                status: InstitutionStatus::Active,
                currency: Currency::Cny,
            })
            .await
            .unwrap();
        let escrow = mode != SupervisionMode::Deposit;
        // GEN-05 (both) has no deposit account on file.
        let deposit = mode != SupervisionMode::Custody && k != 5;
        for (kind, wanted) in [
            (AccountKind::Escrow, escrow),
            (AccountKind::Deposit, deposit),
        ] {
            if wanted {
                store
                    .register_bank_account(&BankAccount {
                        institution: id.clone(),
                        bank: bank.into(),
                        account_no: format!("{}-{id}", kind.code()),
                        kind,
                        currency: Currency::Cny,
                    })
                    .await
                    .unwrap();
            }
        }
        store
            .create_enrollment(&Enrollment {
                institution: id.clone(),
                id: EnrollmentId::parse("E").unwrap(),
                student_ref: "S".into(),
                hours_bought: 60,
                bonus_hours: 0,
                price: Amount::from_minor(480_000).unwrap(),
                currency: Currency::Cny,
                course_start: day0,
                course_end: on(80),
            })
            .await
            .unwrap();
        let e = || EnrollmentId::parse("E").unwrap();
        let amount = |m: i64| Amount::from_minor(m).unwrap();
        let mut req = |client: &str, day: NaiveDate, command: Cmd| {
            requests.push(Request {
                institution: id.clone(),
                client_id: ClientId::parse(client).unwrap(),
                currency: Currency::Cny,
                occurred_at: Utc.from_utc_datetime(&day.and_hms_opt(10, 0, 0).unwrap()),
                external_ref: None,
                command,
            })
        };
        let paid = if escrow {
            Cmd::PayTuition {
                enrollment: e(),
                amount: amount(300_000),
            }
        } else {
            Cmd::CollectOutsideEscrow {
                enrollment: e(),
                amount: amount(300_000),
            }
        };
        req("PAY", on(1), paid);
        if deposit {
            req(
                "DEP",
                on(1),
                Cmd::PayInDeposit {
                    amount: amount(200_000),
                },
            );
        }
        req(
            "LES",
            on(3),
            Cmd::ConsumeLessons {
                enrollment: e(),
                hours: 6,
            },
        );
        if escrow {
            req(
                "REL",
                on(3),
                Cmd::InstructRelease {
                    amount: amount(20_000),
                },
            );
            // Every other institution's release is still in flight.
            if k % 2 == 0 {
                req(
                    "REL-OK",
                    on(4),
                    Cmd::ConfirmPending {
                        pending: ClientId::parse("REL").unwrap(),
                    },
                );
            }
            req(
                "PAY2",
                on(7),
                Cmd::PayTuition {
                    enrollment: e(),
                    amount: amount(100_000),
                },
            );
        } else {
            req(
                "OUT2",
                on(7),
                Cmd::CollectOutsideEscrow {
                    enrollment: e(),
                    amount: amount(100_000),
                },
            );
        }
        // Recorded last, occurred before the statements' days.
        req(
            "LATE",
            on(2),
            Cmd::ConsumeLessons {
                enrollment: e(),
                hours: 2,
            },
        );
        // GEN-06 has an escrow account that has sent nothing yet.
        if k == 6 {
            continue;
        }
        let mut chain = |account_no: String, days: Vec<(u64, u64, i64)>| {
            let mut balance = 0;
            for (n, (line_day, closing_day, amount_minor)) in days.into_iter().enumerate() {
                let opening = balance;
                balance += amount_minor;
                feeds.push(FeedStatement {
                    bank: bank.into(),
                    account_no: account_no.clone(),
                    format: "mt940".into(),
                    statement_id: format!("S{n}"),
                    sequence: Some(format!("{}/1", n + 1)),
                    currency: Currency::Cny,
                    provisional: false,
                    opening: Some((opening, on(line_day))),
                    closing: Some((balance, on(closing_day))),
                    lines: vec![line(
                        amount_minor,
                        on(line_day),
                        format!("{account_no}-{n}"),
                    )],
                    file_sha256: String::new(),
                    message: n as u32,
                });
            }
        };
        if escrow {
            // Statements closing on days 2, 4 and (every third) 6.
            let mut days = vec![(1, 2, 300_000), (4, 4, -20_000)];
            if k % 3 == 0 {
                days.push((6, 6, 1_000));
            }
            chain(format!("escrow-{id}"), days);
        }
        if deposit {
            chain(format!("deposit-{id}"), vec![(1, 3, 200_000)]);
        }
    }
    store.execute_batch(requests).await.unwrap();
    store
        .ingest_file(bank, "generated", "mt940", 0, &feeds)
        .await
        .unwrap();
    day0
}

both!(the_overview_computes_coverage_set_wise_exactly_as_each_institution_alone);
async fn the_overview_computes_coverage_set_wise_exactly_as_each_institution_alone(
    backend: Backend,
) {
    let server = Server::start(backend).await;
    let store = &server.store;
    api::demo::build(store).await.unwrap();
    let day0 = generated_county(store).await;
    let (y, m, d) = api::demo::LAST_DAY;
    let last_day = chrono::NaiveDate::from_ymd_opt(y, m, d).unwrap();
    let institutions = store.institutions().await.unwrap();
    assert!(institutions.len() >= 13, "{}", institutions.len());
    let mut days: Vec<chrono::NaiveDate> = (0..10).map(|n| day0 + chrono::Days::new(n)).collect();
    days.extend([
        last_day - chrono::Days::new(3),
        last_day,
        api::app::jobs::today(store),
    ]);
    let mut seen = std::collections::BTreeSet::new();
    let checked_days = days.clone();
    for day in days {
        let set_wise = api::app::oversight::coverages(store, &institutions, day)
            .await
            .unwrap();
        assert_eq!(set_wise.len(), institutions.len());
        for i in &institutions {
            let alone = api::app::oversight::coverage_of(store, i, day)
                .await
                .unwrap();
            assert_eq!(set_wise[&i.id], alone, "{} on {day}", i.id);
            seen.insert(match &alone {
                Ok(c) if c.owed_on < day => "owed read on the statements' day",
                Ok(c) if c.in_flight_minor > 0 => "release in flight",
                Ok(c) if c.outside_minor > 0 => "collected outside escrow",
                Ok(_) => "confirmed",
                Err(e) => e.code(),
            });
        }
    }
    // The cases the comparison must have met.
    for case in [
        "owed read on the statements' day",
        "confirmed",
        "no_bank_statement",
        "no_supervised_account",
    ] {
        assert!(seen.contains(case), "{case} not met: {seen:?}");
    }
    // The overview's kept rows, written by the same batch and ingest: on
    // every day from the banks' latest closing on they give the same
    // coverage (without the closings, which they do not carry), and on a
    // day before it they say they cannot.
    let ids: Vec<_> = institutions.iter().map(|i| i.id.clone()).collect();
    let kept = store.kept_figures(&ids).await.unwrap();
    assert_eq!(kept.len(), institutions.len());
    let mut valid = 0;
    for day in &checked_days {
        let set_wise = api::app::oversight::coverages(store, &institutions, *day)
            .await
            .unwrap();
        for i in &institutions {
            let k = &kept[&i.id];
            match k.coverage_on(i.mode, *day) {
                Some(c) => {
                    valid += 1;
                    assert_eq!(c, without_closings(&set_wise[&i.id]), "{} on {day}", i.id);
                }
                None => assert!(k.closings_through.is_some_and(|d| d > *day), "{}", i.id),
            }
        }
    }
    let today = api::app::jobs::today(store);
    assert!(institutions
        .iter()
        .all(|i| kept[&i.id].coverage_on(i.mode, today).is_some()));
    assert!(valid > institutions.len(), "{valid}");
    server.stop().await;
}

fn without_closings(c: &api::app::oversight::CoverageOf) -> api::app::oversight::CoverageOf {
    c.clone().map(|mut c| {
        c.closings.clear();
        c
    })
}

/// Every kept row equals its rebuild from the set-wise read, its books
/// equal the balance sheet's and its coverage today the set-wise one.
async fn kept_rows_agree(store: &ledger_core::Store, seed: u64, round: usize) {
    let institutions = store.institutions().await.unwrap();
    let ids: Vec<_> = institutions.iter().map(|i| i.id.clone()).collect();
    let kept = store.kept_figures(&ids).await.unwrap();
    let sheets = store.balance_sheets(&institutions).await.unwrap();
    let today = api::app::jobs::today(store);
    let set_wise = api::app::oversight::coverages(store, &institutions, today)
        .await
        .unwrap();
    for i in &institutions {
        let k = kept
            .get(&i.id)
            .unwrap_or_else(|| panic!("{} has no row", i.id));
        let s = &sheets[&i.id];
        assert_eq!(
            (k.owed_minor, k.escrow_minor, k.deposit_minor),
            (
                s.owed_to_families_minor(),
                s.escrow_minor(),
                s.deposit_minor()
            ),
            "seed {seed} round {round}: {} books",
            i.id
        );
        assert_eq!(
            k.coverage_on(i.mode, today),
            Some(without_closings(&set_wise[&i.id])),
            "seed {seed} round {round}: {} coverage",
            i.id
        );
    }
    store.rebuild_figures(None).await.unwrap();
    let rebuilt = store.kept_figures(&ids).await.unwrap();
    for i in &institutions {
        assert_eq!(
            kept[&i.id], rebuilt[&i.id],
            "seed {seed} round {round}: {} kept differs from its rebuild",
            i.id
        );
    }
}

both!(the_kept_figures_follow_a_random_mix_of_writes_exactly_as_a_rebuild);
async fn the_kept_figures_follow_a_random_mix_of_writes_exactly_as_a_rebuild(backend: Backend) {
    use chrono::{Days, TimeZone, Utc};
    use ledger_core::domain::alerts::{AlertAction, AlertKind, Finding, Severity};
    use ledger_core::domain::feeds::{FeedLine, FeedStatement};
    use ledger_core::domain::risk::SignalKind;
    use ledger_core::{
        Amount, ClientId, Command as Cmd, Currency, EnrollmentId, InstitutionId, Request,
        SupervisionMode,
    };
    use rand::{Rng, SeedableRng};
    let seed: u64 = std::env::var("KEPT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::thread_rng().gen());
    println!("seed {seed} (KEPT_SEED={seed} repeats it)");
    let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
    let server = Server::start(backend).await;
    let store = &server.store;
    api::demo::build(store).await.unwrap();
    let day0 = generated_county(store).await;
    kept_rows_agree(store, seed, 0).await;
    let institutions: Vec<_> = store
        .institutions()
        .await
        .unwrap()
        .into_iter()
        .filter(|i| i.id.as_str().starts_with("GEN-"))
        .collect();
    let mut n = 0u32;
    let mut closing: HashMap<String, (i64, u64)> = HashMap::new();
    for round in 1..=6 {
        let mut requests = Vec::new();
        let mut feeds = Vec::new();
        for _ in 0..12 {
            n += 1;
            let i = &institutions[rng.gen_range(0..institutions.len())];
            let escrow = i.mode != SupervisionMode::Deposit;
            let e = EnrollmentId::parse("E").unwrap();
            let amount = |m: i64| Amount::from_minor(m).unwrap();
            let command = match rng.gen_range(0..8) {
                0 | 1 if escrow => Cmd::PayTuition {
                    enrollment: e,
                    amount: amount(rng.gen_range(1..40) * 1_000),
                },
                0 | 1 => Cmd::CollectOutsideEscrow {
                    enrollment: e,
                    amount: amount(rng.gen_range(1..40) * 1_000),
                },
                2 => Cmd::ConsumeLessons {
                    enrollment: e,
                    hours: rng.gen_range(1..4),
                },
                3 => Cmd::InstructRelease {
                    amount: amount(rng.gen_range(1..10) * 1_000),
                },
                4 => Cmd::ConfirmPending {
                    pending: ClientId::parse(format!("X{}", rng.gen_range(1..n.max(2)))).unwrap(),
                },
                5 => Cmd::ApproveRefund {
                    enrollment: e,
                    amount: Some(amount(rng.gen_range(1..5) * 1_000)),
                },
                6 => Cmd::VoidPending {
                    pending: ClientId::parse(format!("X{}", rng.gen_range(1..n.max(2)))).unwrap(),
                },
                _ => {
                    // A statement: the next closing of one of its accounts.
                    let kind = if escrow { "escrow" } else { "deposit" };
                    let account_no = format!("{kind}-{}", i.id);
                    let (balance, last) = closing.get(&account_no).copied().unwrap_or((0, 6));
                    let day = last + rng.gen_range(0..3);
                    let moved = rng.gen_range(-20..40) * 1_000;
                    closing.insert(account_no.clone(), (balance + moved, day));
                    let on = day0 + Days::new(day);
                    feeds.push(FeedStatement {
                        bank: "GENBANK".into(),
                        account_no: account_no.clone(),
                        format: "mt940".into(),
                        statement_id: format!("R{n}"),
                        sequence: Some(format!("{n}/1")),
                        currency: Currency::Cny,
                        provisional: false,
                        opening: Some((balance, on)),
                        closing: Some((balance + moved, on)),
                        lines: vec![FeedLine {
                            amount_minor: moved,
                            booking_date: Some(on),
                            value_date: Some(on),
                            status: ledger_core::domain::feeds::LineStatus::Booked,
                            bank_ref: Some(format!("R{n}")),
                            end_to_end_id: None,
                            remittance: None,
                            counterparty_name: None,
                            counterparty_account: None,
                            bank_tx_code: Some("NTRF".into()),
                            reversal: false,
                            return_reason: None,
                            details: "{}".into(),
                            source_line: None,
                            source_path: None,
                        }],
                        file_sha256: String::new(),
                        message: 0,
                    });
                    continue;
                }
            };
            // Some occurred before the banks' closings, some after.
            let day = day0 + Days::new(rng.gen_range(0..14));
            requests.push(Request {
                institution: i.id.clone(),
                client_id: ClientId::parse(format!("X{n}")).unwrap(),
                currency: Currency::Cny,
                occurred_at: Utc.from_utc_datetime(&day.and_hms_opt(9, 0, 0).unwrap()),
                external_ref: None,
                command,
            });
        }
        // Through each path that writes entries: group commit (each on its
        // own), an all-or-nothing batch, one by one.
        let split = requests.len() / 3;
        let rest = requests.split_off(split);
        let (batch, singles) = rest.split_at(rest.len() / 2);
        let each: Vec<_> = requests.into_iter().map(|r| (r, None)).collect();
        store.execute_each(&each).await.unwrap();
        let _ = store.execute_batch(batch.to_vec()).await;
        for r in singles {
            let _ = store.execute(r.clone()).await;
        }
        if !feeds.is_empty() {
            store
                .ingest_file("GENBANK", &format!("round-{round}"), "mt940", 0, &feeds)
                .await
                .unwrap();
        }
        // Alerts raised, resolved by an officer, cleared by a run.
        let i = &institutions[rng.gen_range(0..institutions.len())];
        let severity = if rng.gen_bool(0.5) {
            Severity::Red
        } else {
            Severity::Yellow
        };
        store
            .record_findings(
                &i.id,
                day0,
                &[Finding {
                    key: format!("shortfall:{round}"),
                    kind: AlertKind::Signal(SignalKind::Shortfall),
                    severity,
                    summary: format!("round {round}"),
                    evidence: "{}".into(),
                    rule_pack: "test".into(),
                }],
            )
            .await
            .unwrap();
        if round % 2 == 0 {
            store
                .act_on_alert(
                    &i.id,
                    &format!("shortfall:{round}"),
                    &AlertAction::Resolve,
                    "officer",
                    None,
                )
                .await
                .unwrap();
        }
        if round == 5 {
            store
                .resolve_cleared(
                    &[AlertKind::Signal(SignalKind::Shortfall)],
                    day0,
                    "risk-engine",
                    "cleared",
                    |id: &InstitutionId, _| id.as_str() != "GEN-00",
                )
                .await
                .unwrap();
        }
        kept_rows_agree(store, seed, round).await;
    }
    // The check finds no drift, then finds a row that drifted, and the
    // rebuild repairs it.
    let figures_failures = |r: &Vec<ledger_core::store::VerifyFailure>| {
        r.iter()
            .filter(|f| f.chain == "figures")
            .map(|f| f.institution.clone().unwrap_or_default())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        figures_failures(&store.verify_figures().await.unwrap()),
        Vec::<String>::new()
    );
    let drift = "update institution_figures set owed_minor = owed_minor + 1 \
                 where institution_id = 'GEN-01'";
    match store {
        ledger_core::Store::Postgres(s) => sqlx::query(drift).execute(s.pool()).await.map(|_| ()),
        ledger_core::Store::Sqlite(s) => sqlx::query(drift).execute(s.pool()).await.map(|_| ()),
    }
    .unwrap();
    assert_eq!(
        figures_failures(&store.verify_figures().await.unwrap()),
        vec!["GEN-01".to_string()]
    );
    store.rebuild_figures(None).await.unwrap();
    assert_eq!(
        figures_failures(&store.verify_figures().await.unwrap()),
        Vec::<String>::new()
    );
    server.stop().await;
}
