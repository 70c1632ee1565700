//! Logging: pretty on a terminal, JSON otherwise; `RUST_LOG` filters.
//! Traces: when `telemetry.otlp_endpoint` is set (`serve` and `jobs`
//! only), the service's spans (requests, job passes, ledger batches) go to
//! an OpenTelemetry collector over OTLP/HTTP, batched on a thread of their
//! own, so that a slow or absent collector never holds up a request: spans
//! that do not fit the queue are dropped, a failed export is a warning.
//! The metrics `/metrics` exports live in `metrics`.

pub mod metrics;

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use opentelemetry_sdk::Resource;
use tracing::Level;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// How long one export may take before it counts as failed.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);

/// What must be done at exit: the spans still queued sent.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

/// Sets up logging and, with `otlp_endpoint` (a collector's base URL),
/// traces. A collector that cannot be set up is a warning, never a reason
/// not to serve.
pub fn init(otlp_endpoint: Option<&str>) -> Telemetry {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = if std::io::stderr().is_terminal() {
        fmt.boxed()
    } else {
        fmt.json().boxed()
    };
    let (provider, failed) = match otlp_endpoint.map(provider) {
        Some(Ok(p)) => (Some(p), None),
        Some(Err(e)) => (None, Some(e)),
        None => (None, None),
    };
    // Our own spans only, at INFO: the exporter's HTTP client must not
    // trace its own exports.
    let otel = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer("escrow-ledger"))
            .with_filter(
                Targets::new()
                    .with_target("api", Level::INFO)
                    .with_target("ledger_core", Level::INFO),
            )
    });
    tracing_subscriber::registry()
        .with(fmt.with_filter(filter))
        .with(otel)
        .init();
    if let Some(error) = failed {
        tracing::warn!(%error, "traces are not exported: the OTLP exporter could not be set up");
    }
    Telemetry { provider }
}

impl Telemetry {
    /// Sends what is still queued (bounded by the export timeout) and
    /// stops the exporter.
    pub async fn shutdown(self) {
        if let Some(provider) = self.provider {
            // It blocks on the exporter's thread: not on the runtime's.
            let done = tokio::task::spawn_blocking(move || provider.shutdown()).await;
            if let Ok(Err(error)) = done {
                tracing::warn!(%error, "traces still queued at exit were not all exported");
            }
        }
    }
}

fn provider(endpoint: &str) -> anyhow::Result<SdkTracerProvider> {
    // The blocking client, as the batch processor exports from a thread of
    // its own (no async runtime there); made off the runtime, which a
    // blocking client may not be created or dropped on.
    let client = std::thread::spawn(|| {
        reqwest::blocking::Client::builder()
            .timeout(EXPORT_TIMEOUT)
            .build()
    })
    .join()
    .map_err(|_| anyhow::anyhow!("the HTTP client for OTLP could not be made"))??;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(client)
        .with_protocol(Protocol::HttpJson)
        .with_endpoint(format!("{endpoint}/v1/traces"))
        .with_timeout(EXPORT_TIMEOUT)
        .build()?;
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(Warned {
            inner: exporter,
            failing: AtomicBool::new(false),
            endpoint: endpoint.to_string(),
        })
        .with_resource(
            Resource::builder()
                .with_service_name("escrow-ledger")
                .build(),
        )
        .build())
}

/// The OTLP exporter, saying once when the collector stops taking spans
/// and once when it takes them again (not at every batch).
#[derive(Debug)]
struct Warned<E> {
    inner: E,
    failing: AtomicBool,
    endpoint: String,
}

impl<E: SpanExporter> SpanExporter for Warned<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let result = self.inner.export(batch).await;
        match &result {
            Err(error) if !self.failing.swap(true, Ordering::Relaxed) => tracing::warn!(
                target: "escrow_ledger::traces",
                endpoint = %self.endpoint,
                %error,
                "the OTLP collector did not take the spans; serving goes on, spans are dropped until it does"
            ),
            Ok(()) if self.failing.swap(false, Ordering::Relaxed) => tracing::warn!(
                target: "escrow_ledger::traces",
                endpoint = %self.endpoint,
                "the OTLP collector takes spans again"
            ),
            _ => {}
        }
        result
    }

    fn shutdown_with_timeout(&mut self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&mut self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}
