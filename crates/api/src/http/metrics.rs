//! `/metrics` in the Prometheus text format. Hand-rendered on purpose: the
//! Prometheus client crates observe latencies as floating-point seconds, and
//! this workspace keeps floats out altogether (see the architecture test);
//! here latencies are integer microseconds, rendered as exact decimals.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;

use crate::http::AppState;

/// Latency bucket bounds, in microseconds.
const BUCKETS_US: [u64; 12] = [
    1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000,
    10_000_000,
];

#[derive(Default)]
struct Histogram {
    buckets: [u64; BUCKETS_US.len()],
    count: u64,
    sum_us: u64,
}

#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    latency: Mutex<BTreeMap<(String, String), Histogram>>,
    entries_posted: AtomicU64,
    feed_lines_ingested: AtomicU64,
    reconciliation: Mutex<BTreeMap<String, u64>>,
}

/// Seconds as an exact decimal from microseconds.
fn seconds(us: u64) -> String {
    format!("{}.{:06}", us / 1_000_000, us % 1_000_000)
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    pub fn observe(&self, route: &str, method: &str, status: u16, elapsed_us: u64) {
        if let Ok(mut m) = self.requests.lock() {
            *m.entry((route.to_string(), method.to_string(), status))
                .or_default() += 1;
        }
        if let Ok(mut m) = self.latency.lock() {
            let h = m
                .entry((route.to_string(), method.to_string()))
                .or_default();
            for (i, bound) in BUCKETS_US.iter().enumerate() {
                if elapsed_us <= *bound {
                    h.buckets[i] += 1;
                }
            }
            h.count += 1;
            h.sum_us += elapsed_us;
        }
    }

    pub fn entries_posted(&self, n: usize) {
        self.entries_posted.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub fn feed_lines_ingested(&self, n: u64) {
        self.feed_lines_ingested.fetch_add(n, Ordering::Relaxed);
    }

    pub fn reconciled(&self, outcome: &str, n: u64) {
        if let Ok(mut m) = self.reconciliation.lock() {
            *m.entry(outcome.to_string()).or_default() += n;
        }
    }

    /// The text exposition; `open_alerts` is read from the store at scrape.
    pub fn render(&self, open_alerts: &BTreeMap<String, i64>) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP http_requests_total HTTP requests by route, method and status."
        );
        let _ = writeln!(out, "# TYPE http_requests_total counter");
        if let Ok(m) = self.requests.lock() {
            for ((route, method, status), n) in m.iter() {
                let _ = writeln!(
                    out,
                    "http_requests_total{{route=\"{}\",method=\"{method}\",status=\"{status}\"}} {n}",
                    escape(route)
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP http_request_duration_seconds HTTP request latency by route and method."
        );
        let _ = writeln!(out, "# TYPE http_request_duration_seconds histogram");
        if let Ok(m) = self.latency.lock() {
            for ((route, method), h) in m.iter() {
                let labels = format!("route=\"{}\",method=\"{method}\"", escape(route));
                for (i, bound) in BUCKETS_US.iter().enumerate() {
                    let _ = writeln!(
                        out,
                        "http_request_duration_seconds_bucket{{{labels},le=\"{}\"}} {}",
                        seconds(*bound),
                        h.buckets[i]
                    );
                }
                let _ = writeln!(
                    out,
                    "http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                    h.count
                );
                let _ = writeln!(
                    out,
                    "http_request_duration_seconds_sum{{{labels}}} {}",
                    seconds(h.sum_us)
                );
                let _ = writeln!(
                    out,
                    "http_request_duration_seconds_count{{{labels}}} {}",
                    h.count
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP ledger_entries_posted_total Journal entries posted through this process."
        );
        let _ = writeln!(out, "# TYPE ledger_entries_posted_total counter");
        let _ = writeln!(
            out,
            "ledger_entries_posted_total {}",
            self.entries_posted.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP feed_lines_ingested_total Bank statement lines stored through this process."
        );
        let _ = writeln!(out, "# TYPE feed_lines_ingested_total counter");
        let _ = writeln!(
            out,
            "feed_lines_ingested_total {}",
            self.feed_lines_ingested.load(Ordering::Relaxed)
        );
        let _ = writeln!(out, "# HELP reconciliation_outcomes_total Reconciliation outcomes recorded by this process.");
        let _ = writeln!(out, "# TYPE reconciliation_outcomes_total counter");
        if let Ok(m) = self.reconciliation.lock() {
            for (outcome, n) in m.iter() {
                let _ = writeln!(
                    out,
                    "reconciliation_outcomes_total{{outcome=\"{}\"}} {n}",
                    escape(outcome)
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP open_alerts Alerts not yet resolved, by severity."
        );
        let _ = writeln!(out, "# TYPE open_alerts gauge");
        for severity in ["red", "yellow"] {
            let _ = writeln!(
                out,
                "open_alerts{{severity=\"{severity}\"}} {}",
                open_alerts.get(severity).copied().unwrap_or(0)
            );
        }
        out
    }
}

/// Counts and times every request by its route template (never the raw
/// path: ids would explode the label set).
pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let method = request.method().to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    let elapsed = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    state
        .metrics
        .observe(&route, &method, response.status().as_u16(), elapsed);
    response
}
