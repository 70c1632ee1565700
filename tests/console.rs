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
    let server = Server::start(backend).await;
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

#[tokio::test]
async fn every_form_refuses_a_post_without_its_csrf_token() {
    let server = demo_server(Backend::Sqlite).await;
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
    // Sign-out wants it too.
    let (status, _) = v.post("/sign-out", &[]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = v.get("/overview").await;
    assert_eq!(status, StatusCode::OK, "a refused sign-out signed out");
    server.stop().await;
}

#[tokio::test]
async fn signing_in_makes_a_new_session_and_signing_out_ends_it() {
    let server = demo_server(Backend::Sqlite).await;
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

#[tokio::test]
async fn a_county_officer_reaching_another_countys_institution_gets_404() {
    let server = demo_server(Backend::Sqlite).await;
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

async fn shoot(c: &Client, name: &str) {
    let png = c.screenshot().await.unwrap();
    std::fs::write(screenshots().join(format!("{name}.png")), png).unwrap();
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
        .click()
        .await
        .unwrap();
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

    // Search by licence number.
    let q = c.find(Locator::Id("q")).await.unwrap();
    q.send_keys("JY410922-002").await.unwrap();
    c.find(Locator::Css("form.filters button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
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
        .click()
        .await
        .unwrap();
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
    let evidence = c.find(Locator::Css("a.evidence-line")).await.unwrap();
    let line_id = evidence.text().await.unwrap();
    evidence.click().await.unwrap();
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

    // Acknowledge the first open alert.
    c.back().await.unwrap();
    c.wait()
        .for_element(Locator::Css("table#alerts"))
        .await
        .unwrap();
    c.find(Locator::Css("table#alerts tbody tr button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
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
        .click()
        .await
        .unwrap();
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

    // Signing out.
    c.find(Locator::Css("header form button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
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
        .click()
        .await
        .unwrap();
    let row = c
        .wait()
        .for_element(Locator::Id(&format!("refund-{}", refund.id)))
        .await
        .unwrap();
    let text = row.text().await.unwrap();
    assert!(text.contains("¥100.00"), "{text}");
    assert!(text.contains("officer wang"), "{text}");
    shoot(c, "06-decisions").await;
    row.find(Locator::Css("button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
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

#[tokio::test]
async fn an_officer_finds_the_institution_at_risk_and_its_bank_line_in_chromium() {
    let server = demo_server(Backend::Sqlite).await;
    let driver = driver().await;
    let c = browser(&driver).await;
    let walk = tokio::time::timeout(Duration::from_secs(120), async {
        officer_walk(&server, &c).await;
        refund_walk(&server, &c).await;
    })
    .await;
    let _ = c.close().await;
    drop(driver);
    server.stop().await;
    walk.expect("the browser walk took over 120 s");
}
