//! The Grafana dashboard (deploy/grafana/escrow-ledger.json) charts only
//! what the service exports: every metric name in its queries is on a
//! running service's `/metrics`.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::{repo, serve, sqlite_url};

/// PromQL words that are not metric names.
const KEYWORDS: [&str; 12] = [
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
    "inf",
];

/// The metric names a PromQL expression reads: identifiers outside label
/// matchers, ranges, strings and `by (…)` lists that do not call a
/// function. Grafana's `label_values(metric, label)` names its metric first.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let expr = match expr.trim().strip_prefix("label_values(") {
        Some(rest) => rest.split([',', ')']).next().unwrap_or("").to_string(),
        None => expr.to_string(),
    };
    // Blank out what is not an expression: {…}, […], "…", and the
    // parenthesised label list after by/without.
    let mut plain = String::new();
    let mut skip_until: Option<char> = None;
    for c in expr.chars() {
        match skip_until {
            Some(end) if c == end => {
                skip_until = None;
                plain.push(' ');
            }
            Some(_) => {}
            None => match c {
                '{' => skip_until = Some('}'),
                '[' => skip_until = Some(']'),
                '"' => skip_until = Some('"'),
                _ => plain.push(c),
            },
        }
    }
    for word in [
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ] {
        let mut from = 0;
        while let Some(at) = find_word(&plain[from..], word).map(|i| i + from) {
            let after = &plain[at + word.len()..];
            match after.trim_start().starts_with('(') {
                true => {
                    let close = after.find(')').expect("a closed label list");
                    plain.replace_range(at..at + word.len() + close + 1, " ");
                    from = at;
                }
                false => from = at + word.len(),
            }
        }
    }
    let mut names = BTreeSet::new();
    let mut rest = plain.as_str();
    while let Some(start) = rest.find(|c: char| c.is_ascii_alphabetic() || c == '_') {
        let from_start = &rest[start..];
        let end = from_start
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(from_start.len());
        let word = &from_start[..end];
        let preceded_by_digit = rest[..start]
            .chars()
            .last()
            .is_some_and(|c| c.is_ascii_digit() || c == '.');
        let calls = from_start[end..].trim_start().starts_with('(');
        if !calls && !preceded_by_digit && !KEYWORDS.contains(&word.to_lowercase().as_str()) {
            names.insert(word.to_string());
        }
        rest = &from_start[end..];
    }
    names
}

fn find_word(text: &str, word: &str) -> Option<usize> {
    text.match_indices(word).map(|(i, _)| i).find(|&i| {
        let before = text[..i].chars().last();
        let after = text[i + word.len()..].chars().next();
        !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
            && !after.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
    })
}

#[test]
fn metric_names_are_read_out_of_promql() {
    assert_eq!(
        metric_names(
            r#"histogram_quantile(0.95, sum by (le, route) (rate(http_request_duration_seconds_bucket{status=~"5.."}[5m])))"#
        ),
        BTreeSet::from(["http_request_duration_seconds_bucket".to_string()])
    );
    assert_eq!(
        metric_names("a_total / 100 + sum without (x) (b) or on(j) group_left c offset 1h"),
        BTreeSet::from(["a_total", "b", "c"].map(String::from))
    );
    assert_eq!(
        metric_names("label_values(jurisdiction_institutions, jurisdiction)"),
        BTreeSet::from(["jurisdiction_institutions".to_string()])
    );
}

/// Every query of the dashboard: the panels' targets and the variables'.
fn queries(dashboard: &serde_json::Value) -> Vec<String> {
    let mut out = Vec::new();
    let mut panels: Vec<&serde_json::Value> = Vec::new();
    for p in dashboard["panels"].as_array().unwrap() {
        panels.push(p);
        panels.extend(p["panels"].as_array().into_iter().flatten());
    }
    for p in panels {
        for t in p["targets"].as_array().into_iter().flatten() {
            out.push(
                t["expr"]
                    .as_str()
                    .expect("a target has an expr")
                    .to_string(),
            );
        }
    }
    for v in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if v["type"] == "query" {
            let q = &v["query"];
            out.push(q["query"].as_str().or(q.as_str()).unwrap().to_string());
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_charts_only_metrics_the_service_exports() {
    let text = std::fs::read_to_string(repo().join("deploy/grafana/escrow-ledger.json")).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).unwrap();
    let queries = queries(&dashboard);
    assert!(queries.len() >= 10, "{queries:?}");
    let wanted: BTreeSet<String> = queries.iter().flat_map(|q| metric_names(q)).collect();
    assert!(
        wanted.contains("jurisdiction_coverage_basis_points"),
        "{wanted:?}"
    );

    // The demo county served with reconciliation running, asked once so
    // that the request series exist.
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(dir.path(), "grafana.db");
    let served = serve(
        &[
            "--database-url",
            &url,
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--demo",
            "--jobs",
            "reconcile",
        ],
        &[],
    );
    let client = reqwest::Client::new();
    let base = format!("http://{}", served.addr);
    client.get(format!("{base}/healthz")).send().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let missing = loop {
        let body = client
            .get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let exported: BTreeSet<String> = body
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .map(|l| l.split(['{', ' ']).next().unwrap().to_string())
            .collect();
        let missing: Vec<&String> = wanted.difference(&exported).collect();
        // Reconciliation outcomes appear once the first job pass is done.
        if missing.is_empty() || Instant::now() > deadline {
            break format!("{missing:?} not in /metrics: {exported:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(missing.starts_with("[]"), "{missing}");
    assert!(served.terminate().success());
}
