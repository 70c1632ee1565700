//! The application layer: each use case once, typed in and typed out, over
//! the store. The command line and the HTTP service are thin adapters that
//! parse, call a use case and render; nothing here knows clap, axum,
//! `println!`, `serde_json::Value` or `anyhow`.
//!
//! Use cases move here one by one (see ARCHITECTURE.md).

pub mod alerts;
pub mod approvals;
pub mod banks;
pub mod books;
pub mod error;
pub mod evidence;
pub mod feeds;
pub mod group_commit;
pub mod jobs;
pub mod jurisdictions;
pub mod key_claims;
pub mod lessons;
pub mod lists;
pub mod officers;
pub mod outbox;
pub mod oversight;
pub mod reconcile;
pub mod rectification;
pub mod refunds;
pub mod registry;
pub mod releases;
pub mod risk;
pub mod tables;
pub mod webhooks;

pub use error::{AppError, AppResult, Kind};

/// Opens the store at `url` and brings its schema up to date; its batches
/// are written the way `statements` says, or as the server calls for
/// (`Store::connect`) when it says nothing.
pub async fn open_store(
    url: &str,
    statements: Option<ledger_core::store::BatchStatements>,
) -> AppResult<ledger_core::Store> {
    let unavailable = |what: String| AppError::Unavailable {
        code: "database_unavailable",
        detail: what,
    };
    let store = ledger_core::Store::connect(url).await.map_err(|e| {
        unavailable(format!(
            "cannot open the database at {}: {e}",
            without_password(url)
        ))
    })?;
    store
        .migrate()
        .await
        .map_err(|e| unavailable(format!("cannot migrate the database: {e}")))?;
    Ok(match statements {
        Some(statements) => store.with_batch_statements(statements),
        None => store,
    })
}

/// Warns when the database does not keep its planner statistics by itself
/// (PostgreSQL with autovacuum off): the long-running commands' pooled
/// connections would keep plans made for tables as small as they were at
/// start. Says what to do; a failed check is only logged.
pub async fn warn_if_statistics_go_stale(store: &ledger_core::Store) {
    match store.keeps_planner_statistics().await {
        Ok(true) => {}
        Ok(false) => tracing::warn!(
            "PostgreSQL runs with autovacuum (or track_counts) off: the planner's statistics \
             will not follow the tables as they grow, and plans made for small tables stay in \
             use (a hot institution's writes were 2.5 times slower for it). Turn autovacuum on, \
             or run ANALYZE after loads and regularly (deploy/README.md)"
        ),
        Err(e) => tracing::debug!(error = %e, "could not read the server's autovacuum setting"),
    }
}

/// A URL as it may be shown: its password (if any) replaced by stars.
fn without_password(text: &str) -> String {
    ledger_core::store::mask_password(text)
}
