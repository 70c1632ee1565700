//! What `/metrics` exports, through the Prometheus project's client crate
//! (`prometheus-client`: a registry value owned by the service, no global
//! state), in the Prometheus text format 0.0.4. Counters of what this
//! process did (requests, latencies, entries posted, feed lines,
//! reconciliation outcomes) and gauges of the books read at scrape time
//! (open alerts; per jurisdiction, what families are owed, what the
//! supervised and deposit accounts hold, the coverage in basis points and
//! open alerts). Money stays integer minor units; only latency, which the
//! client observes as seconds, is handed over as a duration in seconds.

use std::collections::BTreeMap;
use std::time::Duration;

use ledger_core::domain::alerts::Severity;
use ledger_core::{Institution, Store};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

pub use prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
    method: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SeverityLabels {
    severity: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
struct JurisdictionLabels {
    jurisdiction: String,
    currency: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JurisdictionSeverityLabels {
    jurisdiction: String,
    severity: String,
}

/// Latency buckets, in seconds: 1 ms to 10 s.
fn latency_histogram() -> Histogram {
    Histogram::new([
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
    ])
}

pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram, fn() -> Histogram>,
    entries_posted: Counter,
    feed_lines_ingested: Counter,
    reconciliation: Family<OutcomeLabels, Counter>,
    open_alerts: Family<SeverityLabels, Gauge>,
    owed: Family<JurisdictionLabels, Gauge>,
    held: Family<JurisdictionLabels, Gauge>,
    coverage: Family<JurisdictionLabels, Gauge>,
    institutions: Family<JurisdictionLabels, Gauge>,
    short: Family<JurisdictionLabels, Gauge>,
    open_alerts_by_jurisdiction: Family<JurisdictionSeverityLabels, Gauge>,
    /// Absent until a read replica is measured.
    replica_lag: Family<Vec<(String, String)>, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let m = Metrics {
            requests: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
            entries_posted: Counter::default(),
            feed_lines_ingested: Counter::default(),
            reconciliation: Family::default(),
            open_alerts: Family::default(),
            owed: Family::default(),
            held: Family::default(),
            coverage: Family::default(),
            institutions: Family::default(),
            short: Family::default(),
            open_alerts_by_jurisdiction: Family::default(),
            replica_lag: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "http_requests",
            "HTTP requests by route, method and status",
            m.requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by route and method",
            m.latency.clone(),
        );
        registry.register(
            "ledger_entries_posted",
            "Journal entries posted through this process",
            m.entries_posted.clone(),
        );
        registry.register(
            "feed_lines_ingested",
            "Bank statement lines stored through this process",
            m.feed_lines_ingested.clone(),
        );
        registry.register(
            "reconciliation_outcomes",
            "Reconciliation outcomes recorded by this process",
            m.reconciliation.clone(),
        );
        registry.register(
            "open_alerts",
            "Alerts not yet resolved, by severity",
            m.open_alerts.clone(),
        );
        registry.register(
            "jurisdiction_owed_to_families_minor",
            "Unearned tuition and approved unpaid refunds of the institutions registered in a jurisdiction, in minor units",
            m.owed.clone(),
        );
        registry.register(
            "jurisdiction_held_minor",
            "Supervised (escrow) and risk-deposit balances of the institutions registered in a jurisdiction, in minor units, as the ledger knows them",
            m.held.clone(),
        );
        registry.register(
            "jurisdiction_coverage_basis_points",
            "Held (as the ledger knows it) over owed to families, in basis points rounded down (10000 is fully covered); absent when nothing is owed. A books ratio for the whole jurisdiction: an institution's coverage, confirmed by its bank, is on the overview and in risk",
            m.coverage.clone(),
        );
        registry.register(
            "jurisdiction_institutions",
            "Institutions registered in a jurisdiction",
            m.institutions.clone(),
        );
        registry.register(
            "jurisdiction_institutions_not_fully_covered",
            "Institutions of a jurisdiction whose escrow and deposit hold less than they owe families",
            m.short.clone(),
        );
        registry.register(
            "open_alerts_by_jurisdiction",
            "Alerts not yet resolved, by the jurisdiction the institution is registered in and severity",
            m.open_alerts_by_jurisdiction.clone(),
        );
        registry.register(
            "read_replica_lag_ms",
            "Replay lag of the read replica officers' reads go to, in milliseconds, measured at the scrape; absent without a replica",
            m.replica_lag.clone(),
        );
        Metrics { registry, ..m }
    }
}

impl Metrics {
    pub fn observe(&self, route: &str, method: &str, status: u16, elapsed: Duration) {
        self.requests
            .get_or_create(&RequestLabels {
                route: route.to_string(),
                method: method.to_string(),
                status,
            })
            .inc();
        self.latency
            .get_or_create(&RouteLabels {
                route: route.to_string(),
                method: method.to_string(),
            })
            .observe(elapsed.as_secs_f64());
    }

    pub fn entries_posted(&self, n: usize) {
        self.entries_posted
            .inc_by(u64::try_from(n).unwrap_or(u64::MAX));
    }

    pub fn feed_lines_ingested(&self, n: u64) {
        self.feed_lines_ingested.inc_by(n);
    }

    pub fn reconciled(&self, outcome: &str, n: u64) {
        self.reconciliation
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_string(),
            })
            .inc_by(n);
    }

    /// The read replica's lag, as measured now.
    pub fn replica_lag(&self, lag_ms: i64) {
        self.replica_lag.get_or_create(&Vec::new()).set(lag_ms);
    }

    /// Reads the gauges of the books (three queries: institutions, their
    /// accounts, alerts); what cannot be read is left as it was and logged.
    pub async fn refresh_books(&self, store: &Store) {
        match store.alerts(None, None).await {
            Ok(alerts) => {
                let institutions = match store.institutions().await {
                    Ok(list) => list,
                    Err(e) => {
                        tracing::warn!(error = %e, "metrics: institutions unreadable");
                        return;
                    }
                };
                let open: Vec<_> = alerts
                    .iter()
                    .filter(|a| a.status.code() != "resolved")
                    .collect();
                for severity in Severity::ALL {
                    let n = open.iter().filter(|a| a.severity == severity).count();
                    self.open_alerts
                        .get_or_create(&SeverityLabels {
                            severity: severity.code().to_string(),
                        })
                        .set(i64::try_from(n).unwrap_or(i64::MAX));
                }
                let jurisdiction_of: BTreeMap<_, _> = institutions
                    .iter()
                    .map(|i| (i.id.clone(), i.jurisdiction.to_string()))
                    .collect();
                let mut by: BTreeMap<(String, &'static str), i64> = BTreeMap::new();
                for a in &open {
                    if let Some(j) = jurisdiction_of.get(&a.institution) {
                        *by.entry((j.clone(), a.severity.code())).or_default() += 1;
                    }
                }
                self.open_alerts_by_jurisdiction.clear();
                for j in jurisdiction_of.values() {
                    for severity in Severity::ALL {
                        let n = by.get(&(j.clone(), severity.code())).copied();
                        self.open_alerts_by_jurisdiction
                            .get_or_create(&JurisdictionSeverityLabels {
                                jurisdiction: j.clone(),
                                severity: severity.code().to_string(),
                            })
                            .set(n.unwrap_or(0));
                    }
                }
                self.refresh_coverage(store, &institutions).await;
            }
            Err(e) => tracing::warn!(error = %e, "metrics: alerts unreadable"),
        }
    }

    async fn refresh_coverage(&self, store: &Store, institutions: &[Institution]) {
        let sheets = match store.balance_sheets(institutions).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "metrics: balances unreadable");
                return;
            }
        };
        // Per jurisdiction and currency: owed, held, institutions, short.
        let mut sums: BTreeMap<JurisdictionLabels, [i128; 4]> = BTreeMap::new();
        for i in institutions {
            let Some(sheet) = sheets.get(&i.id) else {
                continue;
            };
            let owed = i128::from(sheet.owed_to_families_minor());
            let held = i128::from(sheet.escrow_minor()) + i128::from(sheet.deposit_minor());
            let s = sums
                .entry(JurisdictionLabels {
                    jurisdiction: i.jurisdiction.to_string(),
                    currency: i.currency.to_string(),
                })
                .or_default();
            s[0] += owed;
            s[1] += held;
            s[2] += 1;
            s[3] += i128::from(held < owed);
        }
        for family in [
            &self.owed,
            &self.held,
            &self.coverage,
            &self.institutions,
            &self.short,
        ] {
            family.clear();
        }
        let gauge = |v: i128| i64::try_from(v).unwrap_or(i64::MAX);
        for (labels, [owed, held, count, short]) in sums {
            self.owed.get_or_create(&labels).set(gauge(owed));
            self.held.get_or_create(&labels).set(gauge(held));
            self.institutions.get_or_create(&labels).set(gauge(count));
            self.short.get_or_create(&labels).set(gauge(short));
            if owed > 0 {
                // Rounded down: never overstating cover.
                self.coverage
                    .get_or_create(&labels)
                    .set(gauge(held * 10_000 / owed));
            }
        }
    }

    /// The text exposition (Prometheus 0.0.4, [`CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(e) =
            prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
        {
            tracing::error!(error = %e, "metrics: encoding failed");
        }
        out
    }
}
