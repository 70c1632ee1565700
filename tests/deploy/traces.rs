//! Traces over OTLP/HTTP (`telemetry.otlp_endpoint`): the real binary
//! serving, a collector made here (a loopback HTTP server keeping the
//! bodies POSTed to /v1/traces), requests, SIGTERM, and the spans the
//! collector got, decoded from OTLP's JSON encoding. And with no collector
//! listening, the service answers all the same.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::routing::post;

use crate::{serve, sqlite_url};

/// A collector: what it was sent, and where it listens.
struct Collector {
    bodies: Arc<Mutex<Vec<serde_json::Value>>>,
    addr: std::net::SocketAddr,
}

async fn collector() -> Collector {
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let kept = bodies.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        post(move |body: axum::body::Bytes| {
            let kept = kept.clone();
            async move {
                let json: serde_json::Value = serde_json::from_slice(&body)
                    .unwrap_or_else(|e| panic!("not OTLP JSON ({e}): {body:?}"));
                kept.lock().unwrap().push(json);
                ([("content-type", "application/json")], "{}")
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Collector { bodies, addr }
}

/// Each span received: its name and its attributes (`key=value`).
fn spans(bodies: &[serde_json::Value]) -> Vec<(String, Vec<String>)> {
    let mut found = Vec::new();
    for body in bodies {
        for resource in body["resourceSpans"].as_array().into_iter().flatten() {
            for scope in resource["scopeSpans"].as_array().into_iter().flatten() {
                for span in scope["spans"].as_array().into_iter().flatten() {
                    let attributes = span["attributes"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|a| {
                            let v = &a["value"];
                            let value = v["stringValue"]
                                .as_str()
                                .map(str::to_string)
                                .or_else(|| v["intValue"].as_str().map(str::to_string))
                                .or_else(|| v["intValue"].as_i64().map(|n| n.to_string()))
                                .unwrap_or_else(|| v.to_string());
                            format!("{}={value}", a["key"].as_str().unwrap_or(""))
                        })
                        .collect();
                    found.push((span["name"].as_str().unwrap_or("").to_string(), attributes));
                }
            }
        }
    }
    found
}

async fn requests(client: &reqwest::Client, addr: &str) {
    for (path, status) in [
        ("/healthz", 200),
        ("/readyz", 200),
        // No token: refused, on a matched route.
        ("/v1/institutions/INS-TRACE-1/balances", 401),
    ] {
        let r = client
            .get(format!("http://{addr}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), status, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_exports_its_request_spans_to_the_otlp_collector_and_flushes_them_at_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(dir.path(), "traces.db");
    let collector = collector().await;
    let endpoint = format!("http://{}", collector.addr);
    let served = serve(
        &["--database-url", &url, "serve", "--listen", "127.0.0.1:0"],
        &[("ESCROW_OTLP_ENDPOINT", &endpoint)],
    );
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    requests(&client, &served.addr).await;
    // The batch exporter sends every 5 s: what is still queued goes at
    // SIGTERM.
    assert!(served.terminate().success());
    let bodies = collector.bodies.lock().unwrap().clone();
    let spans = spans(&bodies);
    let named = |name: &str| {
        spans
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no span {name:?} among {spans:#?}"))
    };
    for (name, route, status) in [
        ("GET /healthz", "/healthz", "200"),
        ("GET /readyz", "/readyz", "200"),
        (
            "GET /v1/institutions/{id}/balances",
            "/v1/institutions/{id}/balances",
            "401",
        ),
    ] {
        let (_, attributes) = named(name);
        for wanted in [
            "http.request.method=GET".to_string(),
            format!("http.route={route}"),
            format!("http.response.status_code={status}"),
        ] {
            assert!(
                attributes.contains(&wanted),
                "{name}: no {wanted} in {attributes:?}"
            );
        }
    }
    let service = bodies.iter().any(|b| {
        b["resourceSpans"][0]["resource"]["attributes"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|a| a["key"] == "service.name" && a["value"]["stringValue"] == "escrow-ledger")
    });
    assert!(
        service,
        "no service.name=escrow-ledger resource: {bodies:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_collector_listening_the_service_answers_and_stops_as_usual() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(dir.path(), "traces.db");
    // A port nobody listens on any more: every export is refused.
    let nobody = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let served = serve(
        &["--database-url", &url, "serve", "--listen", "127.0.0.1:0"],
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", &format!("http://{nobody}"))],
    );
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    for _ in 0..3 {
        requests(&client, &served.addr).await;
    }
    // Bounded (10 s): the queued spans' last export attempt is refused at
    // once.
    assert!(served.terminate().success());
}
