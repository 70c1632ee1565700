//! End to end: running it for real. The configuration file through the real
//! binary (`config check`, precedence, secrets refused and masked), a
//! backup taken while the service writes and restored, and the files under
//! deploy/ (TLS in `serve` with a certificate reloaded on SIGHUP, systemd units through `systemd-analyze verify`, the container
//! file, compose and Kubernetes manifests checked against the real routes).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

#[path = "deploy/backup.rs"]
mod backup;
#[path = "deploy/citus.rs"]
mod citus;
#[path = "deploy/config.rs"]
mod config;
#[path = "deploy/crash.rs"]
mod crash;
#[path = "deploy/failover.rs"]
mod failover;
#[path = "deploy/files.rs"]
mod files;
#[path = "deploy/grafana.rs"]
mod grafana;
#[path = "deploy/replica.rs"]
mod replica;
#[path = "support/scratch_pg.rs"]
mod scratch_pg;
#[path = "support/served.rs"]
mod served;
#[path = "deploy/tls.rs"]
mod tls;
#[path = "deploy/traces.rs"]
mod traces;
pub use served::Served;

/// The binary with no `ESCROW_*` variable of the caller's environment.
pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_escrow-ledger"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("ESCROW_") {
            c.env_remove(name);
        }
    }
    // (The OpenTelemetry SDKs' variable would turn traces on.)
    c.env_remove("OTEL_EXPORTER_OTLP_ENDPOINT");
    c.env("RUST_LOG", "error");
    c
}

pub fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = bin();
    for (k, v) in env {
        c.env(k, v);
    }
    c.args(args).output().unwrap()
}

/// A new API token of `role` scoped to the demo county (410922), made
/// with the CLI against `url`.
pub fn demo_token(url: &str, role: &str) -> String {
    let out = run(
        &[
            "--database-url",
            url,
            "token",
            "create",
            "--role",
            role,
            "--jurisdiction",
            "410922",
            "--json",
        ],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let token: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    token["token"].as_str().unwrap().to_string()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn sqlite_url(dir: &Path, name: &str) -> String {
    format!("sqlite://{}", dir.join(name).display())
}

pub fn serve(args: &[&str], env: &[(&str, &str)]) -> Served {
    let mut c = bin();
    for (k, v) in env {
        c.env(k, v);
    }
    c.args(args);
    served::start(c)
}
