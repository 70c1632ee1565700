//! Fresh, real databases for tests: a new PostgreSQL database or a new
//! SQLite file per test, migrated, dropped afterwards.

#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, TimeZone, Utc};
use ledger_core::store::Clock;
use ledger_core::Store;
use sqlx::{Connection, Executor, PgConnection};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    /// PostgreSQL with each batch statement naming one institution, as on
    /// a sharded server (`BatchStatements::PerInstitution`).
    PostgresPerInstitution,
    Sqlite,
}

pub fn admin_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

pub fn start_of_term() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 8, 20, 8, 0, 0).unwrap()
}

pub struct TestDb {
    pub backend: Backend,
    pub store: Store,
    pub clock: Clock,
    pub url: String,
    pg_name: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

impl TestDb {
    pub async fn new(backend: Backend) -> TestDb {
        let clock = Clock::manual(start_of_term());
        let (url, pg_name, dir) = match backend {
            Backend::Postgres | Backend::PostgresPerInstitution => {
                let name = format!(
                    "el_test_{}_{}",
                    std::process::id(),
                    COUNTER.fetch_add(1, Ordering::SeqCst)
                );
                let mut admin = PgConnection::connect(&admin_url())
                    .await
                    .expect("PostgreSQL is reachable (scripts/test starts it)");
                admin
                    .execute(format!("drop database if exists {name}").as_str())
                    .await
                    .unwrap();
                admin
                    .execute(format!("create database {name}").as_str())
                    .await
                    .unwrap();
                let base = admin_url();
                let root = base.rsplit_once('/').map(|(r, _)| r).unwrap();
                (format!("{root}/{name}"), Some(name), None)
            }
            Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let path = dir.path().join("ledger.db");
                (format!("sqlite://{}", path.display()), None, Some(dir))
            }
        };
        let mut store = Store::connect_with(&url, clock.clone()).await.unwrap();
        if backend == Backend::PostgresPerInstitution {
            let Store::Postgres(pg) = store else {
                unreachable!("a PostgreSQL url")
            };
            store = Store::Postgres(
                pg.with_batch_statements(ledger_core::store::BatchStatements::PerInstitution),
            );
        }
        store.migrate().await.unwrap();
        TestDb {
            backend,
            store,
            clock,
            url,
            pg_name,
            _dir: dir,
        }
    }

    pub fn advance(&self, seconds: i64) -> DateTime<Utc> {
        let t = self.clock.now() + chrono::Duration::seconds(seconds);
        self.clock.set(t);
        t
    }

    /// Every row of every table, as text: for "changed nothing" checks.
    pub async fn dump(&self) -> Vec<String> {
        let tables = [
            "jurisdictions",
            "rule_packs",
            "institutions",
            "chain_heads",
            "enrollments",
            "accounts",
            "entries",
            "postings",
            "banks",
            "bank_accounts",
            "feed_files",
            "bank_statements",
            "bank_lines",
            "alerts",
            "alert_events",
            "recon_matches",
            "recon_line_claims",
            "recon_entry_claims",
            "recon_decisions",
        ];
        let mut out = Vec::new();
        for table in tables {
            let rows: Vec<String> = match &self.store {
                Store::Postgres(s) => {
                    sqlx::query_scalar(&format!("select t::text from {table} t order by 1"))
                        .fetch_all(s.pool())
                        .await
                        .unwrap()
                }
                Store::Sqlite(s) => {
                    let columns: Vec<String> = sqlx::query_scalar(&format!(
                        "select name from pragma_table_info('{table}')"
                    ))
                    .fetch_all(s.pool())
                    .await
                    .unwrap();
                    let expr = columns
                        .iter()
                        .map(|c| format!("quote({c})"))
                        .collect::<Vec<_>>()
                        .join(" || '|' || ");
                    sqlx::query_scalar(&format!("select {expr} from {table} order by 1"))
                        .fetch_all(s.pool())
                        .await
                        .unwrap()
                }
            };
            out.extend(rows.into_iter().map(|r| format!("{table}: {r}")));
        }
        out
    }

    /// Runs raw SQL, bypassing the ledger (for tampering tests).
    pub async fn raw(&self, sql: &str) {
        match &self.store {
            Store::Postgres(s) => {
                s.pool().execute(sql).await.unwrap();
            }
            Store::Sqlite(s) => {
                s.pool().execute(sql).await.unwrap();
            }
        }
    }

    pub async fn cleanup(self) {
        self.store.close().await;
        if let Some(name) = self.pg_name {
            let mut admin = PgConnection::connect(&admin_url()).await.unwrap();
            admin
                .execute(format!("drop database if exists {name} with (force)").as_str())
                .await
                .unwrap();
        }
    }
}

/// Runs each named async test body against a fresh PostgreSQL database and a
/// fresh SQLite file: one contract, two backends.
#[macro_export]
macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = $crate::support::db::TestDb::new($crate::support::db::Backend::Postgres).await;
                    super::$name(&db).await;
                    db.cleanup().await;
                }
            )*
        }
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = $crate::support::db::TestDb::new($crate::support::db::Backend::Sqlite).await;
                    super::$name(&db).await;
                    db.cleanup().await;
                }
            )*
        }
    };
}
