//! `escrow-ledger serve`: the HTTP service. The router, the middleware stack
//! (request id, logs, metrics, timeout, body limit, authentication, audit,
//! idempotency) and the server's lifecycle live here; handlers live in
//! `routes`, scope in `guard`, errors in `problem`.

pub mod auth;
pub mod guard;
pub mod limits;
pub mod openapi;
pub mod problem;
pub mod record;
pub mod routes;
pub mod views;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderName, Request};
use axum::middleware::from_fn_with_state;
use axum::Router;
use ledger_core::Store;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use utoipa_axum::router::OpenApiRouter;

pub use crate::telemetry::metrics::Metrics;

#[derive(Debug, Clone)]
pub struct Config {
    pub request_timeout: Duration,
    /// The largest body of a JSON request.
    pub max_body_bytes: usize,
    /// The largest statement file (`POST /v1/feeds`, bank pushes).
    pub max_feed_bytes: usize,
    /// How single ledger writes are gathered into transactions.
    pub group: crate::app::group_commit::GroupSettings,
    /// How long a verified bearer token is taken on trust (zero: checked
    /// on every request); a revocation takes effect within this.
    pub token_cache: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            request_timeout: Duration::from_secs(30),
            max_body_bytes: 16 * 1024 * 1024,
            max_feed_bytes: 256 * 1024 * 1024,
            group: Default::default(),
            token_cache: Duration::from_secs(2),
        }
    }
}

/// What every handler and middleware is given: one shared [`Services`]
/// (axum clones the state for each extractor of each request, so the
/// clone is one reference count, not one per service).
#[derive(Clone)]
pub struct AppState {
    services: Arc<Services>,
}

impl std::ops::Deref for AppState {
    type Target = Services;
    fn deref(&self) -> &Services {
        &self.services
    }
}

#[derive(Clone)]
pub struct Services {
    /// The system of record: every write, and every read that decides one.
    pub store: Store,
    /// Where officers' reads go (overview, balances, entries, risk,
    /// alerts, the public lists: [`REPLICA_ROUTES`]): a read replica when `database.read_url` is set, else the
    /// same store. Never written to.
    pub reads: Store,
    /// Whether `reads` is a read replica (then its answers say its lag).
    pub replica: bool,
    pub metrics: Arc<Metrics>,
    pub config: Arc<Config>,
    /// The banks' push secrets (and connections, for the jobs).
    pub banks: Arc<crate::app::banks::BankDirectory>,
    /// Single ledger writes go through it (group commit).
    pub group: crate::app::group_commit::GroupCommit,
    /// Bearer tokens verified lately.
    pub tokens: Arc<auth::TokenCache>,
    /// The overview pages answered lately (shared with the console).
    pub overviews: Arc<crate::app::oversight::OverviewPages>,
    /// Jurisdictions as read once (they never change).
    pub jurisdictions: Arc<crate::app::jurisdictions::KnownJurisdictions>,
    /// Institutions as read once (they never change).
    pub institutions: Arc<crate::app::registry::KnownInstitutions>,
    /// Idempotency-Key claims of concurrent requests, gathered.
    pub claims: crate::app::key_claims::KeyClaims,
}

impl AppState {
    pub fn new(store: Store, config: Config) -> AppState {
        AppState::with_banks(store, config, Default::default())
    }

    pub fn with_banks(
        store: Store,
        config: Config,
        banks: crate::app::banks::BankDirectory,
    ) -> AppState {
        let group = crate::app::group_commit::GroupCommit::start(store.clone(), config.group);
        let services = Services {
            tokens: Arc::new(auth::TokenCache::new(config.token_cache)),
            overviews: Arc::default(),
            jurisdictions: Arc::default(),
            institutions: Arc::default(),
            claims: crate::app::key_claims::KeyClaims::start(store.clone()),
            reads: store.clone(),
            replica: false,
            // Every single ledger write the service makes goes through
            // group commit, not only the routes that keep their answer in
            // the batch.
            store: store.with_writer(Arc::new(group.clone())),
            group,
            metrics: Arc::new(Metrics::default()),
            config: Arc::new(config),
            banks: Arc::new(banks),
        };
        AppState {
            services: Arc::new(services),
        }
    }
}

impl AppState {
    /// Officers' reads go to `reads` (a read replica).
    pub fn with_reads(mut self, reads: Store) -> AppState {
        let services = Arc::make_mut(&mut self.services);
        services.reads = reads;
        services.replica = true;
        self
    }
}

/// The routes whose reads come from `AppState::reads` (a read replica when
/// one is configured); their answers carry the replica's lag.
pub const REPLICA_ROUTES: &[&str] = &[
    "/v1/jurisdictions/{code}/overview",
    "/v1/institutions/{id}/balances",
    "/v1/institutions/{id}/entries",
    "/v1/jurisdictions/{code}/risk",
    "/v1/alerts",
    "/overview",
    "/lists",
    "/lists.json",
    "/lists.csv",
];

/// The header that says how far behind the primary an answer read from
/// the replica may be, in milliseconds.
pub const REPLICA_LAG_HEADER: &str = "x-replica-lag-ms";

/// The `/v1` API (token-authenticated, and signature-authenticated bank
/// pushes) with its OpenAPI document, collected from the handlers.
pub fn api() -> (Router<AppState>, Router<AppState>, utoipa::openapi::OpenApi) {
    let (pushed, pushed_doc) = OpenApiRouter::new()
        .merge(routes::feeds::pushed())
        .split_for_parts();
    let (router, mut doc) = OpenApiRouter::with_openapi(openapi::base())
        .merge(routes::registry::router())
        .merge(routes::books::router())
        .merge(routes::flows::router())
        .merge(routes::oversight::router())
        .merge(routes::feeds::router())
        .merge(routes::refunds::router())
        .merge(routes::events::router())
        .merge(routes::audit::router())
        .merge(routes::releases::router())
        .merge(routes::approvals::router())
        .merge(routes::lessons::router())
        .merge(routes::webhooks::router())
        .merge(routes::reconciliation::router())
        .split_for_parts();
    doc.merge(pushed_doc);
    openapi::common_answers(&mut doc);
    (router, pushed, doc)
}

pub fn router(state: AppState) -> Router {
    let (api, pushed, doc) = api();
    let doc = Arc::new(doc);
    // Innermost first: idempotency sees the caller authentication found;
    // audit sees the caller and the outcome on the response.
    let api = api
        .layer(from_fn_with_state(state.clone(), record::idempotent))
        .layer(from_fn_with_state(state.clone(), auth::authenticate))
        .layer(from_fn_with_state(state.clone(), record::audit));
    // Bank pushes are authenticated by their signature, not a token.
    let pushed = pushed.layer(from_fn_with_state(state.clone(), record::audit));
    let request_id = HeaderName::from_static("x-request-id");
    Router::new()
        .merge(routes::ops::router(doc))
        .merge(crate::console::router(
            state.store.clone(),
            state.reads.clone(),
            state.overviews.clone(),
        ))
        .merge(api)
        .merge(pushed)
        .fallback(routes::ops::not_found)
        .layer(axum::middleware::from_fn(problem::refuse_nul_in_uri))
        .layer(from_fn_with_state(state.clone(), track))
        .layer(from_fn_with_state(state.clone(), replica_lag))
        .layer(from_fn_with_state(state.clone(), limits::limit_body))
        // The route limits above replace the extractors' own 2 MiB default.
        .layer(axum::extract::DefaultBodyLimit::disable())
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            state.config.request_timeout,
        ))
        .layer(axum::middleware::from_fn(limits::problem_bodies))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|request: &Request<_>| {
                    let id = request
                        .headers()
                        .get("x-request-id")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("");
                    // The route template, not the path: one name for all
                    // the institutions' payments (a trace backend groups
                    // by it; ids stay out of span names).
                    let route = request
                        .extensions()
                        .get::<axum::extract::MatchedPath>()
                        .map_or("(no route)", |m| m.as_str());
                    let method = request.method();
                    tracing::info_span!(
                        "request",
                        otel.name = %format_args!("{method} {route}"),
                        otel.kind = "server",
                        http.request.method = %method,
                        http.route = route,
                        http.response.status_code = tracing::field::Empty,
                        method = %method,
                        path = %request.uri().path(),
                        request_id = %id,
                    )
                })
                .on_response(
                    |response: &axum::http::Response<_>,
                     _: std::time::Duration,
                     span: &tracing::Span| {
                        span.record("http.response.status_code", response.status().as_u16());
                    },
                ),
        )
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .with_state(state)
}

/// Serves until `shutdown` resolves, then finishes the requests in flight.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

/// Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
    tracing::info!("shutting down: finishing requests in flight");
}

/// On answers read from a read replica, its lag (measured after the read,
/// so the data are at most that old plus the read's own time).
async fn replica_lag(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let from_replica = state.replica
        && request.method() == axum::http::Method::GET
        && request
            .extensions()
            .get::<axum::extract::MatchedPath>()
            .is_some_and(|p| REPLICA_ROUTES.contains(&p.as_str()));
    let mut response = next.run(request).await;
    if from_replica && response.status().is_success() {
        match state.reads.replay_lag_ms().await {
            Ok(Some(lag)) => {
                response.headers_mut().insert(
                    HeaderName::from_static(REPLICA_LAG_HEADER),
                    axum::http::HeaderValue::from(lag),
                );
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "the read replica's lag is unreadable"),
        }
    }
    response
}

/// Counts and times every request by its route template (never the raw
/// path: ids would explode the label set).
async fn track(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let method = request.method().to_string();
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    state.metrics.observe(
        &route,
        &method,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}
