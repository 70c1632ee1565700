//! The configuration file (`--config FILE`, `ESCROW_CONFIG`): one TOML file
//! for what `serve` and `jobs` take, environment variables over it, and
//! command-line flags over both. Secrets never live in the file: a database
//! password comes from a file (`database.password_file`) or the environment
//! (`ESCROW_DATABASE_PASSWORD`, or the URL in `ESCROW_DATABASE_URL`); bank
//! credentials and push secrets live in the banks file; signing keys in key
//! files.
//!
//! Precedence, highest first: a flag on the command line (clap's own `env`
//! attributes, e.g. `ESCROW_LISTEN`, count as the environment), then the
//! environment (see [`ENV`]), then the file, then the defaults below.

use std::fmt;
use std::net::SocketAddr;
use std::num::NonZeroU64;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Deserializer, Serialize};

use crate::app::jobs::Job;

/// Environment variables and the key each one sets.
pub const ENV: &[(&str, &str)] = &[
    ("ESCROW_DATABASE_URL", "database.url"),
    ("ESCROW_DATABASE_PASSWORD", "database.password"),
    ("ESCROW_DATABASE_PASSWORD_FILE", "database.password_file"),
    ("ESCROW_READ_DATABASE_URL", "database.read_url"),
    ("ESCROW_BATCH_STATEMENTS", "database.batch_statements"),
    ("ESCROW_LISTEN", "http.listen"),
    ("ESCROW_REQUEST_TIMEOUT_SECS", "http.request_timeout_secs"),
    ("ESCROW_MAX_BODY_BYTES", "http.max_body_bytes"),
    ("ESCROW_MAX_FEED_BYTES", "http.max_feed_bytes"),
    ("ESCROW_JOBS_IN_SERVE", "jobs.in_serve"),
    ("ESCROW_JOBS", "jobs.run"),
    ("ESCROW_JOBS_EVERY_SECS", "jobs.every_secs"),
    ("ESCROW_TOKEN_CACHE_MS", "http.token_cache_ms"),
    ("ESCROW_GROUP_MAX_BATCH", "group_commit.max_batch"),
    ("ESCROW_GROUP_MAX_WAIT_US", "group_commit.max_wait_us"),
    ("ESCROW_GROUP_QUEUE_DEPTH", "group_commit.queue_depth"),
    ("ESCROW_GROUP_PARTITIONS", "group_commit.partitions"),
    ("ESCROW_BANKS_FILE", "banks.file"),
    ("ESCROW_ATTEST_KEY", "attest.key_file"),
    ("ESCROW_TLS_CERT_FILE", "tls.cert_file"),
    ("ESCROW_TLS_KEY_FILE", "tls.key_file"),
    ("ESCROW_OTLP_ENDPOINT", "telemetry.otlp_endpoint"),
];

/// The OpenTelemetry SDKs' own variable for the collector's base URL:
/// honoured too, under `ESCROW_OTLP_ENDPOINT`.
pub const OTEL_ENDPOINT_ENV: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";

/// Keys that would hold a secret: refused in the file, wherever they are.
const SECRET_KEYS: &[&str] = &[
    "password",
    "credential",
    "credentials",
    "push_secret",
    "secret",
    "token",
    "private_key",
    "api_key",
];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the configuration file {path}: {source}")]
    Unreadable {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: not TOML: {message}")]
    NotToml { path: String, message: String },
    #[error("{path}: key {key} {why}")]
    EmbeddedSecret {
        path: String,
        key: String,
        why: String,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("{key}: cannot read the secret file {path}: {source}")]
    SecretFileUnreadable {
        key: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("database: {0}")]
    Database(String),
}

/// A secret: never printed, never logged.
#[derive(Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(********)")
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    pub database: Database,
    pub http: Http,
    pub jobs: Jobs,
    pub group_commit: GroupCommit,
    pub banks: Banks,
    pub attest: Attest,
    pub tls: Tls,
    pub telemetry: Telemetry,
}

/// Traces: `serve` and `jobs` export their spans (requests with method,
/// route and status; job passes) over OTLP/HTTP to a collector when
/// `otlp_endpoint` is set; off by default.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Telemetry {
    /// The collector's base URL (`http://collector:4318`); spans go to
    /// `/v1/traces` under it, as the OpenTelemetry SDKs do with
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`.
    #[serde(deserialize_with = "http_url")]
    pub otlp_endpoint: Option<String>,
}

/// An `http://` or `https://` URL with a host, or nothing (an empty text
/// from the environment is nothing).
fn http_url<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let Some(text) = Option::<String>::deserialize(d)? else {
        return Ok(None);
    };
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let parsed = url::Url::parse(text).map_err(|e| {
        serde::de::Error::custom(format!(
            "{text:?} is not a URL ({e}): give the collector's base URL, e.g. http://collector:4318"
        ))
    })?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(serde::de::Error::custom(format!(
            "{text:?} is not an http:// or https:// URL with a host: OTLP is exported over HTTP, \
             e.g. http://collector:4318"
        )));
    }
    Ok(Some(text.trim_end_matches('/').to_string()))
}

/// Group commit: how `serve` gathers single ledger writes (payments,
/// lessons) into transactions. A batch closes when it holds `max_batch`
/// requests or `max_wait_us` after its first; each of `partitions` writers
/// (one on SQLite) has a queue of `queue_depth`, beyond which a write is
/// answered `503` with `Retry-After`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct GroupCommit {
    pub max_batch: NonZeroU64,
    pub max_wait_us: u64,
    pub queue_depth: NonZeroU64,
    pub partitions: NonZeroU64,
}

impl Default for GroupCommit {
    fn default() -> Self {
        let d = crate::app::group_commit::GroupSettings::default();
        let nz = |n: usize| NonZeroU64::new(u64::try_from(n).unwrap_or(1)).expect("non-zero");
        GroupCommit {
            max_batch: nz(d.max_batch),
            max_wait_us: u64::try_from(d.max_wait.as_micros()).unwrap_or(0),
            queue_depth: nz(d.queue_depth),
            partitions: nz(d.partitions),
        }
    }
}

impl GroupCommit {
    /// The settings the committer takes.
    pub fn settings(&self) -> crate::app::group_commit::GroupSettings {
        let n = |v: NonZeroU64| usize::try_from(v.get()).unwrap_or(usize::MAX);
        crate::app::group_commit::GroupSettings {
            max_batch: n(self.max_batch),
            max_wait: std::time::Duration::from_micros(self.max_wait_us),
            queue_depth: n(self.queue_depth),
            partitions: n(self.partitions),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Database {
    /// `postgres://user@host/db` (no password) or `sqlite://file`.
    pub url: Option<String>,
    /// A file holding the PostgreSQL password (its first line).
    pub password_file: Option<PathBuf>,
    /// Only from the environment (`ESCROW_DATABASE_PASSWORD`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    /// A read replica (PostgreSQL streaming standby) for officers' reads:
    /// overview, balances, entries, risk, alerts, the console's overview,
    /// the public lists. Same user and password as `url`. Writes always go to `url`.
    pub read_url: Option<String>,
    /// PostgreSQL: how a batch's statements address its institutions,
    /// `set-wise` (one server) or `per-institution` (a sharded server).
    /// Unset: found at start, `per-institution` where the `citus`
    /// extension is installed.
    pub batch_statements: Option<ledger_core::store::BatchStatements>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Http {
    pub listen: SocketAddr,
    pub request_timeout_secs: NonZeroU64,
    pub max_body_bytes: NonZeroU64,
    pub max_feed_bytes: NonZeroU64,
    /// How long a verified bearer token is trusted without asking the
    /// database again (0: every request asks): a revoked token stops
    /// working within this.
    pub token_cache_ms: u64,
}

impl Default for Http {
    fn default() -> Self {
        Http {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            request_timeout_secs: NonZeroU64::new(30).expect("30"),
            max_body_bytes: NonZeroU64::new(16 * 1024 * 1024).expect("16 MiB"),
            max_feed_bytes: NonZeroU64::new(256 * 1024 * 1024).expect("256 MiB"),
            token_cache_ms: 2000,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Jobs {
    /// `serve` runs the jobs itself (like `serve --jobs`); otherwise run
    /// `escrow-ledger jobs` from a timer or a CronJob.
    pub in_serve: bool,
    /// Which jobs (`jobs` and `serve` alike); default all.
    #[serde(deserialize_with = "job_list", serialize_with = "job_names")]
    pub run: Vec<Job>,
    /// Seconds between `serve`'s job passes.
    pub every_secs: NonZeroU64,
}

impl Default for Jobs {
    fn default() -> Self {
        Jobs {
            in_serve: false,
            run: Job::ALL.to_vec(),
            every_secs: NonZeroU64::new(5).expect("5"),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Banks {
    /// The banks file (JSON; it holds credentials and push secrets, so keep
    /// it readable by the service only).
    pub file: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Attest {
    /// The private key `attest` signs with when `--key` is not given.
    pub key_file: Option<PathBuf>,
}

/// `serve` terminates TLS itself when both files are given (reloaded on
/// SIGHUP); without them it speaks plain HTTP, for a reverse proxy in front.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Tls {
    /// The certificate chain (PEM, the server's certificate first).
    pub cert_file: Option<PathBuf>,
    /// Its private key (PEM; keep it readable by the service only).
    pub key_file: Option<PathBuf>,
}

fn job_names<S: serde::Serializer>(jobs: &[Job], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(jobs.iter().map(|j| j.name()))
}

/// `["workflow", "risk"]` in the file, `workflow,risk` in the environment.
fn job_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Job>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Names {
        List(Vec<String>),
        Text(String),
    }
    let names = match Names::deserialize(d)? {
        Names::List(l) => l,
        Names::Text(t) => t.split(',').map(|s| s.trim().to_string()).collect(),
    };
    let mut jobs = Vec::new();
    for name in names.iter().filter(|n| !n.is_empty()) {
        let job = Job::ALL
            .into_iter()
            .find(|j| j.name() == name.to_ascii_lowercase())
            .ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "unknown job {name:?}: the jobs are workflow, risk, reconcile, pull, lessons, release and webhooks"
                ))
            })?;
        if !jobs.contains(&job) {
            jobs.push(job);
        }
    }
    if jobs.is_empty() {
        return Err(serde::de::Error::custom(
            "no jobs named: leave the key out for all of them",
        ));
    }
    Ok(jobs)
}

/// The settings as loaded, with where each value came from.
pub struct Loaded {
    pub settings: Settings,
    pub file: Option<PathBuf>,
    figment: Figment,
}

/// Reads `file` (if any), then the environment, over the defaults.
pub fn load(file: Option<&Path>) -> Result<Loaded, ConfigError> {
    let mut figment = Figment::from(Serialized::defaults(Settings::default()));
    if let Some(path) = file {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Unreadable {
            path: shown.clone(),
            source,
        })?;
        let table: toml::Table = toml::from_str(&text).map_err(|e| ConfigError::NotToml {
            path: shown.clone(),
            message: e.message().to_string()
                + &e.span()
                    .map(|s| format!(" (line {})", line_of(&text, s.start)))
                    .unwrap_or_default(),
        })?;
        refuse_secrets(&shown, "", &table)?;
        figment = figment.merge(Toml::file_exact(path));
    }
    let env = Env::raw().filter_map(|k| {
        ENV.iter()
            .find(|(name, _)| k == *name)
            .map(|(_, key)| (*key).into())
    });
    // The standard variable first, so that ours wins when both are set.
    figment = figment.merge(
        Env::raw()
            .only(&[OTEL_ENDPOINT_ENV])
            .map(|_| "telemetry.otlp_endpoint".into()),
    );
    figment = figment.merge(env);
    let settings: Settings = figment.extract().map_err(|e| invalid(e, file))?;
    Ok(Loaded {
        settings,
        file: file.map(Path::to_path_buf),
        figment,
    })
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

fn refuse_secrets(path: &str, prefix: &str, table: &toml::Table) -> Result<(), ConfigError> {
    for (key, value) in table {
        let full = format!("{prefix}{key}");
        if SECRET_KEYS.contains(&key.to_ascii_lowercase().as_str()) {
            let hint = match full.as_str() {
                "database.password" => {
                    "database.password_file, ESCROW_DATABASE_PASSWORD or ESCROW_DATABASE_URL"
                }
                _ => "a file the key names (the banks file, a key file) or the environment",
            };
            return Err(ConfigError::EmbeddedSecret {
                path: path.into(),
                key: full,
                why: format!(
                    "holds a secret, and secrets never go in the configuration file: use {hint}"
                ),
            });
        }
        match value {
            toml::Value::Table(inner) => refuse_secrets(path, &format!("{full}."), inner)?,
            toml::Value::String(text)
                if (full == "database.url" || full == "database.read_url")
                    && ledger_core::store::mask_password(text) != *text =>
            {
                return Err(ConfigError::EmbeddedSecret {
                    path: path.into(),
                    key: full,
                    why: "has a password, and secrets never go in the configuration file: \
                          leave it out of the URL and use database.password_file, \
                          ESCROW_DATABASE_PASSWORD or ESCROW_DATABASE_URL"
                        .into(),
                });
            }
            _ => {}
        }
    }
    Ok(())
}

/// Every error figment found, each as `source: key: why`.
fn invalid(error: figment::Error, file: Option<&Path>) -> ConfigError {
    let lines: Vec<String> = error
        .into_iter()
        .map(|e| {
            let key = e.path.join(".");
            let source = match &e.metadata {
                Some(m) if m.name.contains("environment") => ENV
                    .iter()
                    .find(|(_, k)| *k == key)
                    .map_or("the environment".to_string(), |(name, _)| name.to_string()),
                Some(m) if m.name.contains("TOML") => file
                    .map(|f| f.display().to_string())
                    .unwrap_or_else(|| "the file".into()),
                _ => "the configuration".into(),
            };
            let key = if key.is_empty() {
                String::new()
            } else {
                format!("key {key}: ")
            };
            format!("{source}: {key}{}", e.kind)
        })
        .collect();
    ConfigError::Invalid(lines.join("; "))
}

/// Where a value came from: a flag, an environment variable, the file, or
/// the defaults.
impl Loaded {
    pub fn source_of(&self, key: &str) -> String {
        match self.figment.find_metadata(key) {
            Some(m)
                if m.name.contains("environment")
                    && key == "telemetry.otlp_endpoint"
                    && std::env::var_os("ESCROW_OTLP_ENDPOINT").is_none() =>
            {
                OTEL_ENDPOINT_ENV.into()
            }
            Some(m) if m.name.contains("environment") => ENV
                .iter()
                .find(|(_, k)| *k == key)
                .map_or("environment".to_string(), |(name, _)| name.to_string()),
            Some(m) if m.name.contains("TOML") => self
                .file
                .as_deref()
                .map_or("file".into(), |f| f.display().to_string()),
            _ => "default".into(),
        }
    }

    /// The database URL to connect to: the flag (or `ESCROW_DATABASE_URL`
    /// through it), else the configuration, else the SQLite default; with
    /// the password from `password_file` or `ESCROW_DATABASE_PASSWORD`.
    pub fn database_url(&self, flag: Option<&str>) -> Result<DatabaseUrl, ConfigError> {
        let url = flag
            .map(str::to_string)
            .or_else(|| self.settings.database.url.clone())
            .unwrap_or_else(|| ledger_core::store::DEFAULT_DATABASE_URL.to_string());
        self.with_password(url)
    }

    /// The read replica's URL (`database.read_url`), if one is configured,
    /// with the same password as the primary's.
    pub fn read_database_url(&self) -> Result<Option<DatabaseUrl>, ConfigError> {
        let Some(url) = self.settings.database.read_url.clone() else {
            return Ok(None);
        };
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(ConfigError::Database(format!(
                "database.read_url is {}: a read replica is a PostgreSQL standby (postgres://…)",
                mask_url(&url)
            )));
        }
        self.with_password(url).map(Some)
    }

    /// `url` with the password from `password_file` or
    /// `ESCROW_DATABASE_PASSWORD` put in (if one is given).
    fn with_password(&self, url: String) -> Result<DatabaseUrl, ConfigError> {
        let db = &self.settings.database;
        let password =
            match (&db.password, &db.password_file) {
                (Some(_), Some(_)) => return Err(ConfigError::Database(
                    "both ESCROW_DATABASE_PASSWORD and database.password_file are set: choose one"
                        .into(),
                )),
                (Some(p), None) => Some(p.clone()),
                (None, Some(path)) => Some(read_secret_file("database.password_file", path)?),
                (None, None) => None,
            };
        let Some(password) = password else {
            return Ok(DatabaseUrl(url));
        };
        if let Some(spliced) = with_password_multi_host(&url, &password)? {
            return Ok(DatabaseUrl(spliced));
        }
        let mut parsed = url::Url::parse(&url)
            .map_err(|e| ConfigError::Database(format!("the URL does not parse: {e}")))?;
        if !matches!(parsed.scheme(), "postgres" | "postgresql") {
            return Err(ConfigError::Database(format!(
                "a password is given but the URL is {}: only PostgreSQL takes one",
                parsed.scheme()
            )));
        }
        if parsed.password().is_some() {
            return Err(ConfigError::Database(
                "the URL has a password and another is given (password file or ESCROW_DATABASE_PASSWORD): choose one".into(),
            ));
        }
        parsed
            .set_password(Some(password.expose()))
            .map_err(|()| ConfigError::Database("the URL cannot take a password".into()))?;
        Ok(DatabaseUrl(parsed.to_string()))
    }
}

/// A multi-host PostgreSQL URL (`postgres://escrow@db1:5432,db2:5432/…`,
/// which `url` does not parse) with the password put in; `None` for any
/// other URL.
fn with_password_multi_host(url: &str, password: &Secret) -> Result<Option<String>, ConfigError> {
    let multi_host = (url.starts_with("postgres://") || url.starts_with("postgresql://"))
        && url.split_once("://").is_some_and(|(_, rest)| {
            rest[..rest.find(['/', '?']).unwrap_or(rest.len())].contains(',')
        });
    if !multi_host {
        return Ok(None);
    }
    // The password percent-encoded as a URL's userinfo wants it.
    let mut encoder = url::Url::parse("postgres://user@host/")
        .map_err(|e| ConfigError::Database(format!("the URL does not parse: {e}")))?;
    encoder
        .set_password(Some(password.expose()))
        .map_err(|()| ConfigError::Database("the URL cannot take a password".into()))?;
    let encoded = encoder.password().unwrap_or_default();
    ledger_core::store::with_encoded_password(url, encoded)
        .map(Some)
        .ok_or_else(|| {
            ConfigError::Database(
                "the URL has a password and another is given (password file or ESCROW_DATABASE_PASSWORD), \
                 or no user name to give it to: choose one, name the user"
                    .into(),
            )
        })
}

/// The first line of a secret file, without its line ending.
pub fn read_secret_file(key: &'static str, path: &Path) -> Result<Secret, ConfigError> {
    let text =
        std::fs::read_to_string(path).map_err(|source| ConfigError::SecretFileUnreadable {
            key,
            path: path.display().to_string(),
            source,
        })?;
    let line = text.lines().next().unwrap_or("").to_string();
    if line.is_empty() {
        return Err(ConfigError::SecretFileUnreadable {
            key,
            path: path.display().to_string(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, "the file is empty"),
        });
    }
    Ok(Secret(line))
}

/// A database URL that may carry a password: `Display` masks it.
#[derive(Clone)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    /// The URL to connect with, password included.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&mask_url(&self.0))
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({self})")
    }
}

/// A URL with its password (if any) replaced by `********`.
/// (Multi-host URLs included, which `url` does not parse.)
pub fn mask_url(text: &str) -> String {
    ledger_core::store::mask_password(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_multi_host_url_takes_the_password_from_the_file_encoded() {
        let spliced = with_password_multi_host(
            "postgres://escrow@db1:5432,db2:5432/escrow?target_session_attrs=read-write",
            &Secret("pw/x@y".into()),
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            spliced,
            "postgres://escrow:pw%2Fx%40y@db1:5432,db2:5432/escrow?target_session_attrs=read-write"
        );
        assert_eq!(
            mask_url(&spliced),
            "postgres://escrow:********@db1:5432,db2:5432/escrow?target_session_attrs=read-write"
        );
        // One host is left to the URL parser; two passwords are refused.
        assert!(
            with_password_multi_host("postgres://escrow@db/x", &Secret("p".into()))
                .unwrap()
                .is_none()
        );
        assert!(
            with_password_multi_host("postgres://escrow:a@db1,db2/x", &Secret("p".into())).is_err()
        );
    }

    #[test]
    fn a_password_in_a_url_is_masked_and_nothing_else_changes() {
        assert_eq!(
            mask_url("postgres://escrow:s3cr%2Ft@db:5432/escrow?sslmode=require"),
            "postgres://escrow:********@db:5432/escrow?sslmode=require"
        );
        assert_eq!(mask_url("sqlite://escrow.db"), "sqlite://escrow.db");
        assert_eq!(mask_url("postgres://escrow@db/x"), "postgres://escrow@db/x");
    }

    #[test]
    fn a_secret_debugs_as_stars() {
        assert_eq!(
            format!("{:?}", Secret("hunter2".into())),
            "Secret(********)"
        );
    }
}
