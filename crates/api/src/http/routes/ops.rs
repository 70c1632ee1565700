//! Operations: liveness, readiness, metrics, the API document, Swagger UI
//! over it (/docs) and a plain reference page (/docs/reference).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use utoipa::openapi::OpenApi;

use crate::http::problem::ApiError;
use crate::http::{openapi, AppState};

pub fn router(doc: Arc<OpenApi>) -> Router<AppState> {
    let json = serde_json::to_string_pretty(&*doc).unwrap_or_default();
    let page = openapi::page(&doc);
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route(
            "/openapi.json",
            get(move || {
                let json = json.clone();
                async move { ([(header::CONTENT_TYPE, "application/json")], json) }
            }),
        )
        .route(
            "/docs/reference",
            get(move || {
                let page = page.clone();
                async move { Html(page) }
            }),
        )
        .merge(swagger_ui())
}

/// Swagger UI at /docs (its files embedded in the binary by
/// utoipa-swagger-ui's `vendored` feature), reading the same /openapi.json;
/// "Authorize" takes a bearer token and "Try it out" sends it. The
/// validator badge is off: it would fetch from validator.swagger.io, and
/// the service must work with no way out of a bureau's network.
fn swagger_ui<S: Clone + Send + Sync + 'static>() -> Router<S> {
    use utoipa_swagger_ui::{Config, SwaggerUi};
    SwaggerUi::new("/docs")
        .config(
            Config::new(["/openapi.json"])
                .validator_url("none")
                .try_it_out_enabled(true)
                .display_request_duration(true),
        )
        .into()
}

/// How long readiness waits for the database: probes give up after a
/// second (Kubernetes' default), and a database that does not answer in
/// that time is an outage to report, not to wait out.
const READY_WITHIN: std::time::Duration = std::time::Duration::from_millis(900);

/// Ready when the database answers (within [`READY_WITHIN`]) and every
/// migration is applied.
async fn readyz(State(state): State<AppState>) -> Response {
    let Ok(pending) = tokio::time::timeout(READY_WITHIN, state.store.pending_migrations()).await
    else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: the database does not answer\n",
        )
            .into_response();
    };
    match pending {
        Ok(0) => (StatusCode::OK, "ready\n").into_response(),
        Ok(n) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {n} migrations not applied (escrow-ledger migrate)\n"),
        )
            .into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "readiness: database unreachable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "not ready: the database does not answer\n",
            )
                .into_response()
        }
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    state.metrics.refresh_books(&state.store).await;
    if state.replica {
        match state.reads.replay_lag_ms().await {
            Ok(Some(lag)) => state.metrics.replica_lag(lag),
            Ok(None) => tracing::warn!("metrics: the read replica is not a standby"),
            Err(e) => tracing::warn!(error = %e, "metrics: the read replica does not answer"),
        }
    }
    (
        [(
            header::CONTENT_TYPE,
            crate::telemetry::metrics::CONTENT_TYPE,
        )],
        state.metrics.render(),
    )
        .into_response()
}

pub async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no_such_route",
        "no such route: see /openapi.json or /docs for the API",
    )
}
