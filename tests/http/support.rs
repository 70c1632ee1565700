//! A real server on 127.0.0.1:0 over a real database (a SQLite file or a
//! fresh PostgreSQL database), and a client that speaks to it.

use std::time::Duration;

use crate::scratch_pg::ScratchPg;
use api::access::{Role, Scope};
use api::http::{AppState, Config};
use chrono::{NaiveDate, TimeZone, Utc};
use ledger_core::domain::feeds::{AccountKind, BankAccount};
use ledger_core::{
    Amount, Category, ClientId, Command, Currency, Enrollment, EnrollmentId, Institution,
    InstitutionId, InstitutionStatus, Jurisdiction, JurisdictionCode, Request, Store,
    SupervisionMode,
};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::Value;

#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct Server {
    pub base: String,
    /// The database the server runs on.
    pub url: String,
    pub store: Store,
    client: reqwest::Client,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    _dir: tempfile::TempDir,
    pg: Option<ScratchPg>,
}

/// A database of the backend, not yet migrated.
pub async fn database(backend: Backend, dir: &std::path::Path) -> (String, Option<ScratchPg>) {
    match backend {
        Backend::Sqlite => (format!("sqlite://{}", dir.join("http.db").display()), None),
        Backend::Postgres => {
            let pg = ScratchPg::create(format!(
                "el_test_http_{}_{}",
                std::process::id(),
                rand::random::<u32>()
            ))
            .await;
            (pg.url.clone(), Some(pg))
        }
    }
}

impl Server {
    pub async fn start(backend: Backend) -> Server {
        Server::start_with(backend, Config::default(), true).await
    }

    pub async fn start_with(backend: Backend, config: Config, migrate: bool) -> Server {
        Server::start_full(
            backend,
            config,
            migrate,
            ledger_core::store::Clock::System,
            Default::default(),
        )
        .await
    }

    /// A server that knows these banks (push secrets, connections).
    pub async fn start_with_banks(
        backend: Backend,
        banks: api::app::banks::BankDirectory,
    ) -> Server {
        Server::start_full(
            backend,
            Config::default(),
            true,
            ledger_core::store::Clock::System,
            banks,
        )
        .await
    }

    /// A server whose store reads the time from `clock` (a test moves it).
    pub async fn start_clocked(backend: Backend, clock: ledger_core::store::Clock) -> Server {
        Server::start_full(backend, Config::default(), true, clock, Default::default()).await
    }

    async fn start_full(
        backend: Backend,
        config: Config,
        migrate: bool,
        clock: ledger_core::store::Clock,
        banks: api::app::banks::BankDirectory,
    ) -> Server {
        // The service's logs go with the test's output (shown on failure).
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
            )
            .with_test_writer()
            .try_init();
        let dir = tempfile::tempdir().unwrap();
        let (url, pg) = database(backend, dir.path()).await;
        let store = Store::connect_with(&url, clock).await.unwrap();
        if migrate {
            store.migrate().await.unwrap();
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let state = AppState::with_banks(store.clone(), config, banks);
        let task = tokio::spawn(async move {
            api::http::serve(listener, state, async {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        Server {
            base,
            url,
            store,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
            shutdown: Some(tx),
            task: Some(task),
            _dir: dir,
            pg,
        }
    }

    pub async fn token(&self, role: Role, scope: Scope) -> String {
        api::token::create(&self.store, role, scope, None)
            .await
            .unwrap()
            .0
    }

    /// A token held by a named person (maker–checker tells people apart by
    /// token and by name).
    pub async fn token_named(&self, role: Role, scope: Scope, name: &str) -> String {
        api::token::create(&self.store, role, scope, Some(name.to_string()))
            .await
            .unwrap()
            .0
    }

    /// An officer of county 410922 other than the one who asks: the
    /// checker maker–checker needs.
    pub async fn second_officer(&self) -> String {
        self.token_named(
            Role::Officer,
            Scope::Jurisdiction(code("410922")),
            "Wang Fang",
        )
        .await
    }

    pub async fn admin(&self) -> String {
        self.token(Role::Admin, Scope::All).await
    }

    pub fn request(&self, method: Method, token: Option<&str>, path: &str) -> RequestBuilder {
        let mut r = self.client.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r
    }

    pub async fn get(&self, token: &str, path: &str) -> (StatusCode, Value) {
        send(self.request(Method::GET, Some(token), path)).await
    }

    pub async fn post(
        &self,
        token: &str,
        path: &str,
        key: &str,
        body: Value,
    ) -> (StatusCode, Value) {
        send(
            self.request(Method::POST, Some(token), path)
                .header("Idempotency-Key", key)
                .json(&body),
        )
        .await
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
        self.store.close().await;
        if let Some(pg) = self.pg.take() {
            pg.drop().await;
        }
    }
}

/// Sends and reads the body as JSON (`Value::String` of the text if it is
/// not JSON).
pub async fn send(request: RequestBuilder) -> (StatusCode, Value) {
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, value)
}

pub fn code(c: &str) -> JurisdictionCode {
    JurisdictionCode::parse(c).unwrap()
}

pub fn day(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

/// Two provinces, a city and a county in each:
/// 410000 ⊃ 410900 ⊃ 410922 and 420000 ⊃ 420900 ⊃ 420922.
pub async fn jurisdictions(store: &Store) {
    for (c, name, parent) in [
        ("000000", "Nation", None),
        ("410000", "Henan", Some("000000")),
        ("410900", "Puyang", Some("410000")),
        ("410922", "Qingfeng", Some("410900")),
        ("420000", "Hubei", Some("000000")),
        ("420900", "Xiaogan", Some("420000")),
        ("420922", "Dawu", Some("420900")),
    ] {
        store
            .create_jurisdiction(&Jurisdiction {
                code: code(c),
                name: name.into(),
                parent: parent.map(code),
            })
            .await
            .unwrap();
    }
}

pub async fn institution(store: &Store, id: &str, county: &str) -> InstitutionId {
    institution_in_mode(store, id, county, SupervisionMode::Custody).await
}

/// INS-D, a school of county 410922 in risk-deposit mode: it collects
/// tuition itself, escrow holds none of it.
pub async fn deposit_school(store: &Store) -> InstitutionId {
    institution_in_mode(store, "INS-D", "410922", SupervisionMode::Deposit).await
}

pub async fn institution_in_mode(
    store: &Store,
    id: &str,
    county: &str,
    mode: SupervisionMode,
) -> InstitutionId {
    let id = InstitutionId::parse(id).unwrap();
    store
        .create_institution(&Institution {
            id: id.clone(),
            name: format!("{id} School"),
            licence_no: format!("L-{id}"),
            jurisdiction: code(county),
            mode,
            category: Category::NonSubject,
            status: InstitutionStatus::Active,
            currency: Currency::Cny,
        })
        .await
        .unwrap();
    id
}

pub async fn enrollment(
    store: &Store,
    institution: &InstitutionId,
    id: &str,
    hours: u32,
    price_minor: i64,
) {
    store
        .create_enrollment(&Enrollment {
            institution: institution.clone(),
            id: EnrollmentId::parse(id).unwrap(),
            student_ref: format!("S-{id}"),
            hours_bought: hours,
            bonus_hours: 0,
            price: Amount::from_minor(price_minor).unwrap(),
            currency: Currency::Cny,
            course_start: day(2026, 9, 1),
            course_end: day(2026, 11, 30),
        })
        .await
        .unwrap();
}

pub async fn pay(
    store: &Store,
    institution: &InstitutionId,
    enrollment: &str,
    client_id: &str,
    minor: i64,
) {
    store
        .execute(Request {
            institution: institution.clone(),
            client_id: ClientId::parse(client_id).unwrap(),
            currency: Currency::Cny,
            occurred_at: Utc.with_ymd_and_hms(2026, 9, 2, 8, 0, 0).unwrap(),
            external_ref: None,
            command: Command::PayTuition {
                enrollment: EnrollmentId::parse(enrollment).unwrap(),
                amount: ledger_core::Amount::from_minor(minor).unwrap(),
            },
        })
        .await
        .unwrap();
}

pub async fn bank_account(
    store: &Store,
    bank: &str,
    institution: &InstitutionId,
    account_no: &str,
) {
    store
        .register_bank(bank, &format!("{bank} bank"))
        .await
        .unwrap();
    store
        .register_bank_account(&BankAccount {
            institution: institution.clone(),
            bank: bank.into(),
            account_no: account_no.into(),
            kind: AccountKind::Escrow,
            currency: Currency::Cny,
        })
        .await
        .unwrap();
}

/// The account number the bank adapter reads from a statement file.
pub fn account_of(bank: &str, file: &[u8]) -> String {
    let ctx = bank_adapter::parse::FileContext::of(file);
    let options = bank_adapter::parse::ParseOptions {
        format: None,
        csv: None,
        ..bank_adapter::parse::ParseOptions::default()
    };
    let mut accounts = Vec::new();
    bank_adapter::parse::parse_stream(file, &ctx, &options, &mut |s| {
        accounts.push(bank_adapter::ingest::to_feed(bank, &s).unwrap().account_no);
        Ok(())
    })
    .unwrap();
    accounts.dedup();
    assert_eq!(accounts.len(), 1, "{accounts:?}");
    accounts.remove(0)
}

/// Every table's row count: "changes nothing" is checked against this.
pub async fn counts(store: &Store) -> Vec<(String, i64)> {
    let tables = [
        "jurisdictions",
        "institutions",
        "enrollments",
        "entries",
        "postings",
        "accounts",
        "bank_accounts",
        "bank_statements",
        "bank_lines",
        "feed_files",
        "alerts",
        "alert_events",
        "idempotent_answers",
        "api_tokens",
        "institution_payees",
        "approvals",
        "approval_claims",
        "approval_decisions",
        "refunds",
        "refund_events",
        "lessons",
        "lesson_events",
        "lessons_unanswered",
        "institution_events",
        "institution_freezes",
        "rule_packs",
        "outbox",
        "webhook_subscriptions",
        "rectification_notices",
    ];
    let mut out = Vec::new();
    for t in tables {
        let sql = format!("select cast(count(*) as bigint) from {t}");
        let n: i64 = match store {
            Store::Postgres(s) => sqlx::query_scalar(&sql).fetch_one(s.pool()).await.unwrap(),
            Store::Sqlite(s) => sqlx::query_scalar(&sql).fetch_one(s.pool()).await.unwrap(),
        };
        out.push((t.to_string(), n));
    }
    out
}

/// Runs a test body on both backends.
#[macro_export]
macro_rules! both {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::support::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name($crate::support::Backend::Postgres).await
            }
        }
    };
}
