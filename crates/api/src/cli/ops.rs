//! Running it: `config check FILE` (the effective configuration, secrets
//! masked) and `probe` (is the service ready? for container health checks
//! where no curl exists).

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Subcommand;

use crate::app::banks::BankDirectory;
use crate::config::{self, Loaded};

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate a configuration file with the environment over it: every
    /// key, the files it names (password file, banks file, key file), no
    /// secret in the file; print the effective configuration with secrets
    /// masked and where each value came from. Exit 1 naming the file, the
    /// key and why if anything is wrong.
    Check {
        /// The TOML file (see deploy/escrow-ledger.toml).
        file: PathBuf,
    },
}

pub fn run(what: ConfigCommand) -> anyhow::Result<ExitCode> {
    let ConfigCommand::Check { file } = what;
    let loaded = config::load(Some(&file))?;
    let database = loaded.database_url(None)?;
    let replica = loaded.read_database_url()?;
    let s = &loaded.settings;
    let banks = match &s.banks.file {
        Some(path) => {
            let dir = BankDirectory::load(path).map_err(|e| {
                anyhow::anyhow!("{}: key banks.file: {e}", loaded.source_of("banks.file"))
            })?;
            Some(dir.banks().map(str::to_string).collect::<Vec<_>>())
        }
        None => None,
    };
    if let Some(key) = &s.attest.key_file {
        std::fs::metadata(key).with_context(|| {
            format!(
                "{}: key attest.key_file: cannot read {}",
                loaded.source_of("attest.key_file"),
                key.display()
            )
        })?;
    }
    crate::tls::Files::from_parts(s.tls.cert_file.clone(), s.tls.key_file.clone())?;
    for (key, file) in [
        ("tls.cert_file", &s.tls.cert_file),
        ("tls.key_file", &s.tls.key_file),
    ] {
        if let Some(file) = file {
            std::fs::metadata(file).with_context(|| {
                format!(
                    "{}: key {key}: cannot read {}",
                    loaded.source_of(key),
                    file.display()
                )
            })?;
        }
    }
    let line = |key: &str, value: String| {
        let source = loaded.source_of(key);
        let name = key.rsplit('.').next().unwrap_or(key);
        println!("{:<48} # {source}", format!("{name} = {value}"));
    };
    let text = |v: &str| format!("{v:?}");
    let path = |p: &Option<PathBuf>| {
        p.as_deref()
            .map_or("(none)".into(), |p| text(&p.display().to_string()))
    };
    println!(
        "# effective configuration: defaults, then {}, then the environment; flags on the command line win over all",
        file.display()
    );
    println!("[database]");
    line("database.url", text(&database.to_string()));
    line("database.password_file", path(&s.database.password_file));
    line(
        "database.read_url",
        replica.map_or("(none)".into(), |r| text(&r.to_string())),
    );
    line(
        "database.batch_statements",
        s.database
            .batch_statements
            .map_or("(none: found at start)".into(), |b| text(b.code())),
    );
    if s.database.password.is_some() {
        line("database.password", "\"********\"".into());
    }
    println!("\n[http]");
    line("http.listen", text(&s.http.listen.to_string()));
    line(
        "http.request_timeout_secs",
        s.http.request_timeout_secs.to_string(),
    );
    line("http.max_body_bytes", s.http.max_body_bytes.to_string());
    line("http.max_feed_bytes", s.http.max_feed_bytes.to_string());
    line("http.token_cache_ms", s.http.token_cache_ms.to_string());
    println!("\n[group_commit]");
    let g = &s.group_commit;
    line("group_commit.max_batch", g.max_batch.to_string());
    line("group_commit.max_wait_us", g.max_wait_us.to_string());
    line("group_commit.queue_depth", g.queue_depth.to_string());
    line("group_commit.partitions", g.partitions.to_string());
    println!("\n[jobs]");
    line("jobs.in_serve", s.jobs.in_serve.to_string());
    let names: Vec<String> = s.jobs.run.iter().map(|j| text(j.name())).collect();
    line("jobs.run", format!("[{}]", names.join(", ")));
    line("jobs.every_secs", s.jobs.every_secs.to_string());
    println!("\n[banks]");
    line("banks.file", path(&s.banks.file));
    if let Some(banks) = banks {
        println!(
            "# {} bank(s): {} (credentials and push secrets not shown)",
            banks.len(),
            banks.join(", ")
        );
    }
    println!("\n[attest]");
    line("attest.key_file", path(&s.attest.key_file));
    println!("\n[tls]");
    line("tls.cert_file", path(&s.tls.cert_file));
    line("tls.key_file", path(&s.tls.key_file));
    if s.tls.cert_file.is_none() {
        println!("# plain HTTP: TLS ends at a reverse proxy in front (see deploy/README.md)");
    }
    println!("\n[telemetry]");
    line(
        "telemetry.otlp_endpoint",
        s.telemetry
            .otlp_endpoint
            .as_deref()
            .map_or("(none: traces off)".into(), text),
    );
    eprintln!("configuration {} is valid", file.display());
    Ok(ExitCode::SUCCESS)
}

/// The readiness URL of a service listening on `listen` (an unspecified
/// address is probed on loopback).
pub fn readiness_url(loaded: &Loaded) -> String {
    let mut addr = loaded.settings.http.listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    let scheme = if loaded.settings.tls.cert_file.is_some() {
        "https"
    } else {
        "http"
    };
    format!("{scheme}://{addr}/readyz")
}

/// GET `url` (within `timeout`): success when it answers 200. Over
/// `https://` it trusts only the certificate in `cert_file` (the
/// configuration's `tls.cert_file`).
pub fn probe(
    url: &str,
    timeout: Duration,
    cert_file: Option<&std::path::Path>,
) -> anyhow::Result<ExitCode> {
    let (rest, tls) = match (url.strip_prefix("http://"), url.strip_prefix("https://")) {
        (Some(rest), _) => (rest, None),
        (None, Some(rest)) => {
            let cert = cert_file.context(
                "probe over https:// trusts the certificate of tls.cert_file: give --config with [tls]",
            )?;
            (rest, Some(crate::tls::pinned_client(cert)?))
        }
        (None, None) => bail!("probe takes an http:// or https:// URL, not {url:?}"),
    };
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr = std::net::ToSocketAddrs::to_socket_addrs(host)
        .with_context(|| format!("cannot resolve {host}"))?
        .next()
        .with_context(|| format!("{host} has no address"))?;
    let tcp = std::net::TcpStream::connect_timeout(&addr, timeout)
        .with_context(|| format!("{url}: nothing answers"))?;
    tcp.set_read_timeout(Some(timeout))?;
    tcp.set_write_timeout(Some(timeout))?;
    let mut stream: Box<dyn ReadWrite> = match tls {
        None => Box::new(tcp),
        Some(config) => {
            // The name is not checked (the certificate is pinned), but
            // rustls sends it: the host as the URL gives it.
            let name = host.rsplit_once(':').map_or(host, |(h, _)| h);
            let name =
                rustls::pki_types::ServerName::try_from(name.trim_matches(['[', ']']).to_string())
                    .with_context(|| format!("{url}: {name} is no server name"))?;
            let connection = rustls::ClientConnection::new(std::sync::Arc::new(config), name)
                .with_context(|| format!("{url}: TLS"))?;
            Box::new(rustls::StreamOwned::new(connection, tcp))
        }
    };
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: escrow-ledger-probe\r\n\r\n"
    )?;
    let mut answer = Vec::new();
    // A TLS server may close without close_notify after the answer: what
    // arrived is kept and judged.
    let _ = (&mut stream)
        .take(64 * 1024)
        .read_to_end(&mut answer)
        .map_err(|e| anyhow::anyhow!("{url}: no answer: {e}"))
        .or_else(|e| if answer.is_empty() { Err(e) } else { Ok(0) })?;
    let answer = String::from_utf8_lossy(&answer);
    let status = answer.lines().next().unwrap_or("");
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or("").trim();
    if status.split_whitespace().nth(1) == Some("200") {
        println!("{url}: {body}");
        return Ok(ExitCode::SUCCESS);
    }
    bail!("{url}: {status}: {body}")
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}
