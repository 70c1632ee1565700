//! The configuration file: `config check`, precedence (flags, then the
//! environment, then the file, then the defaults), bad values, secrets
//! refused in the file and masked everywhere.

use std::path::Path;

use crate::{run, serve, sqlite_url, stderr, stdout};

const PASSWORD: &str = "pw-Zq81/x@y";
const CREDENTIAL: &str = "bank-credential-7731";
const PUSH_SECRET: &str = "push-secret-5512";

/// A configuration file in `dir` with a password file and a banks file
/// beside it; its path.
fn good_file(dir: &Path) -> String {
    std::fs::write(dir.join("db-password"), format!("{PASSWORD}\n")).unwrap();
    std::fs::write(
        dir.join("banks.json"),
        format!(
            r#"[{{"bank": "PYB-DEMO", "url": "http://127.0.0.1:9/", "credential": "{CREDENTIAL}", "push_secret": "{PUSH_SECRET}"}}]"#
        ),
    )
    .unwrap();
    let text = format!(
        r#"
[database]
url = "postgres://escrow@db.internal:5432/escrow?sslmode=require"
password_file = "{dir}/db-password"

[http]
listen = "0.0.0.0:9090"
request_timeout_secs = 20

[jobs]
in_serve = true
run = ["workflow", "risk"]

[banks]
file = "{dir}/banks.json"
"#,
        dir = dir.display()
    );
    let path = dir.join("escrow-ledger.toml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// The line of `config check`'s output that sets `key`.
fn line<'a>(out: &'a str, key: &str) -> &'a str {
    out.lines()
        .find(|l| l.starts_with(&format!("{key} = ")))
        .unwrap_or_else(|| panic!("no {key} in {out}"))
}

#[test]
fn a_good_configuration_file_is_valid_and_says_where_each_value_came_from() {
    let dir = tempfile::tempdir().unwrap();
    let file = good_file(dir.path());
    let out = run(&["config", "check", &file], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(line(&text, "listen").contains("\"0.0.0.0:9090\""), "{text}");
    assert!(
        line(&text, "listen").ends_with(&format!("# {file}")),
        "{text}"
    );
    assert!(line(&text, "request_timeout_secs").contains("20"), "{text}");
    assert!(
        line(&text, "max_body_bytes").ends_with("# default"),
        "{text}"
    );
    assert!(
        line(&text, "run").contains(r#"["workflow", "risk"]"#),
        "{text}"
    );
    assert!(text.contains("1 bank(s): PYB-DEMO"), "{text}");
    assert!(stderr(&out).contains("is valid"), "{}", stderr(&out));
}

#[test]
fn secrets_are_masked_in_the_effective_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let file = good_file(dir.path());
    let out = run(&["config", "check", &file], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let all = stdout(&out) + &stderr(&out);
    assert!(
        line(&stdout(&out), "url")
            .contains("postgres://escrow:********@db.internal:5432/escrow?sslmode=require"),
        "{all}"
    );
    for secret in [PASSWORD, "pw-Zq81", CREDENTIAL, PUSH_SECRET] {
        assert!(!all.contains(secret), "{secret} shown: {all}");
    }
    // A URL with its password given in the environment is masked too.
    let plain = dir.path().join("plain.toml");
    std::fs::write(&plain, "[http]\nlisten = \"127.0.0.1:8080\"\n").unwrap();
    let out = run(
        &["config", "check", plain.to_str().unwrap()],
        &[(
            "ESCROW_DATABASE_URL",
            "postgres://escrow:env-secret-99@db/escrow",
        )],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(!text.contains("env-secret-99"), "{text}");
    assert!(
        line(&text, "url").contains("escrow:********@db/escrow"),
        "{text}"
    );
    assert!(
        line(&text, "url").ends_with("# ESCROW_DATABASE_URL"),
        "{text}"
    );
}

#[test]
fn the_environment_overrides_the_file_and_flags_override_both() {
    let dir = tempfile::tempdir().unwrap();
    let file = good_file(dir.path());
    let out = run(
        &["config", "check", &file],
        &[
            ("ESCROW_LISTEN", "127.0.0.1:7000"),
            ("ESCROW_JOBS", "reconcile,pull"),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        line(&text, "listen").contains("\"127.0.0.1:7000\"")
            && line(&text, "listen").ends_with("# ESCROW_LISTEN"),
        "{text}"
    );
    assert!(
        line(&text, "run").contains(r#"["reconcile", "pull"]"#),
        "{text}"
    );

    // The commands themselves: the file names one database, the
    // environment another, a flag a third; each wins over the one before.
    let cfg = dir.path().join("sqlite.toml");
    let in_file = sqlite_url(dir.path(), "file.db");
    let in_env = sqlite_url(dir.path(), "env.db");
    let in_flag = sqlite_url(dir.path(), "flag.db");
    std::fs::write(
        &cfg,
        format!("[database]\nurl = \"{in_file}\"\n[http]\nlisten = \"127.0.0.1:1\"\n"),
    )
    .unwrap();
    let cfg = cfg.to_str().unwrap();
    let migrated = |args: &[&str], env: &[(&str, &str)]| {
        let out = run(args, env);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        stdout(&out)
    };
    assert!(migrated(&["--config", cfg, "migrate"], &[]).contains(&in_file));
    assert!(
        migrated(&["migrate"], &[("ESCROW_CONFIG", cfg)]).contains(&in_file),
        "ESCROW_CONFIG names the file"
    );
    assert!(migrated(
        &["--config", cfg, "migrate"],
        &[("ESCROW_DATABASE_URL", &in_env)]
    )
    .contains(&in_env));
    assert!(migrated(
        &["--config", cfg, "--database-url", &in_flag, "migrate"],
        &[("ESCROW_DATABASE_URL", &in_env)]
    )
    .contains(&in_flag));
    // The file says port 1; the flag wins and serve listens where it says.
    let served = serve(&["--config", cfg, "serve", "--listen", "127.0.0.1:0"], &[]);
    assert!(!served.addr.ends_with(":1"), "{}", served.addr);
    let url = format!("http://{}/readyz", served.addr);
    assert!(run(&["probe", "--url", &url], &[]).status.success());
    assert!(served.terminate().success());
}

#[test]
fn a_bad_value_is_refused_naming_the_file_the_key_and_why() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[http]\nrequest_timeout_secs = \"soon\"\n").unwrap();
    let bad = bad.to_str().unwrap();
    for args in [
        vec!["config", "check", bad],
        vec!["--config", bad, "migrate"],
    ] {
        let out = run(&args, &[]);
        assert!(!out.status.success(), "{args:?} accepted a bad value");
        let err = stderr(&out);
        assert!(
            err.contains(bad)
                && err.contains("http.request_timeout_secs")
                && err.contains("expected a nonzero u64"),
            "{err}"
        );
    }
    let cases = [
        ("[http]\nlisten = \"everywhere\"\n", "http.listen"),
        ("[http]\nlisten_port = 80\n", "unknown field"),
        (
            "[jobs]\nrun = [\"workflow\", \"payroll\"]\n",
            "unknown job \"payroll\"",
        ),
        ("[http\nlisten = 1\n", "not TOML"),
    ];
    for (text, expected) in cases {
        std::fs::write(dir.path().join("case.toml"), text).unwrap();
        let path = dir.path().join("case.toml").display().to_string();
        let out = run(&["config", "check", &path], &[]);
        assert!(!out.status.success(), "{text} accepted");
        let err = stderr(&out);
        assert!(
            err.contains(&path) && err.contains(expected),
            "{text}: {err}"
        );
    }
    // A bad value in the environment names the variable.
    let good = good_file(dir.path());
    let out = run(
        &["config", "check", &good],
        &[("ESCROW_REQUEST_TIMEOUT_SECS", "0")],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("ESCROW_REQUEST_TIMEOUT_SECS: key http.request_timeout_secs"),
        "{}",
        stderr(&out)
    );
    // A file the configuration names that is not there.
    let out = run(
        &["config", "check", &good],
        &[("ESCROW_DATABASE_PASSWORD_FILE", "/nonexistent/db-password")],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(
            "database.password_file: cannot read the secret file /nonexistent/db-password"
        ),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_configuration_that_embeds_a_secret_is_refused_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "[database]\nurl = \"postgres://escrow:hunter2@db/escrow\"\n",
            "key database.url has a password",
        ),
        (
            "[database]\npassword = \"hunter2\"\n",
            "key database.password holds a secret",
        ),
        (
            "[banks]\nfile = \"b.json\"\ncredential = \"hunter2\"\n",
            "key banks.credential holds a secret",
        ),
        (
            "[banks.PYB]\npush_secret = \"hunter2\"\n",
            "key banks.PYB.push_secret holds a secret",
        ),
    ];
    for (text, expected) in cases {
        let path = dir.path().join("secret.toml");
        std::fs::write(&path, text).unwrap();
        let path = path.display().to_string();
        let out = run(&["config", "check", &path], &[]);
        assert!(!out.status.success(), "{text} accepted");
        let err = stderr(&out);
        assert!(
            err.contains(&format!("{path}: {expected}"))
                && err.contains("never go in the configuration file"),
            "{text}: {err}"
        );
        assert!(!err.contains("hunter2"), "the secret is repeated: {err}");
    }
}

/// deploy/escrow-ledger.toml and the Kubernetes ConfigMap's file, with the
/// files they name pointed at scratch copies.
#[test]
fn the_shipped_configuration_files_are_valid() {
    let dir = tempfile::tempdir().unwrap();
    good_file(dir.path());
    let env = [
        (
            "ESCROW_DATABASE_PASSWORD_FILE",
            dir.path().join("db-password").display().to_string(),
        ),
        (
            "ESCROW_BANKS_FILE",
            dir.path().join("banks.json").display().to_string(),
        ),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let example = crate::repo().join("deploy/escrow-ledger.toml");
    let out = run(&["config", "check", example.to_str().unwrap()], &env);
    assert!(out.status.success(), "{}", stderr(&out));
    let configmap = crate::files::yaml("deploy/k8s/configmap.yaml");
    let text = configmap["data"]["escrow-ledger.toml"].as_str().unwrap();
    let path = dir.path().join("k8s.toml");
    std::fs::write(&path, text).unwrap();
    let out = run(&["config", "check", path.to_str().unwrap()], &env);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(line(&stdout(&out), "listen").contains("0.0.0.0:8080"));
}

#[test]
fn a_read_replica_takes_the_primary_password_masked_and_must_be_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let file = good_file(dir.path());
    let replica = "postgres://escrow@replica.internal:5432/escrow";
    let out = run(
        &["config", "check", &file],
        &[("ESCROW_READ_DATABASE_URL", replica)],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let read = line(&text, "read_url");
    assert!(
        read.contains("postgres://escrow:********@replica.internal:5432/escrow"),
        "{read}"
    );
    assert!(read.contains("# ESCROW_READ_DATABASE_URL"), "{read}");
    assert!(!text.contains(PASSWORD));
    // A SQLite file is no replica; a password in the file's URL is a secret.
    let out = run(
        &["config", "check", &file],
        &[("ESCROW_READ_DATABASE_URL", "sqlite://copy.db")],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(
            "database.read_url is sqlite://copy.db: a read replica is a PostgreSQL standby"
        ),
        "{}",
        stderr(&out)
    );
    let embedded = dir.path().join("embedded.toml");
    std::fs::write(
        &embedded,
        "[database]\nread_url = \"postgres://escrow:hunter2@replica/escrow\"\n",
    )
    .unwrap();
    let out = run(&["config", "check", embedded.to_str().unwrap()], &[]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("key database.read_url has a password"),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");
}

#[test]
fn the_otlp_endpoint_comes_from_the_file_or_either_variable_and_a_bad_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let good = good_file(dir.path());
    let out = run(&["config", "check", &good], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        line(&stdout(&out), "otlp_endpoint").contains("(none: traces off)"),
        "off by default: {}",
        stdout(&out)
    );
    let file = dir.path().join("traced.toml");
    std::fs::write(
        &file,
        "[telemetry]\notlp_endpoint = \"http://collector.internal:4318/\"\n",
    )
    .unwrap();
    let file = file.to_str().unwrap();
    let check = |env: &[(&str, &str)]| {
        let out = run(&["config", "check", file], env);
        assert!(out.status.success(), "{}", stderr(&out));
        line(&stdout(&out), "otlp_endpoint").to_string()
    };
    let from_file = check(&[]);
    assert!(
        from_file.contains("\"http://collector.internal:4318\"") && from_file.ends_with(file),
        "{from_file}"
    );
    let standard = check(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://otel:4318")]);
    assert!(
        standard.contains("\"http://otel:4318\"")
            && standard.ends_with("# OTEL_EXPORTER_OTLP_ENDPOINT"),
        "{standard}"
    );
    let ours = check(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://otel:4318"),
        ("ESCROW_OTLP_ENDPOINT", "https://ours:4318"),
    ]);
    assert!(
        ours.contains("\"https://ours:4318\"") && ours.ends_with("# ESCROW_OTLP_ENDPOINT"),
        "ours wins over the standard variable: {ours}"
    );

    for (value, why) in [
        ("collector:4318", "not an http:// or https:// URL"),
        ("grpc://collector:4317", "not an http:// or https:// URL"),
        ("http://", "is not a URL"),
    ] {
        let out = run(
            &["config", "check", &good],
            &[("ESCROW_OTLP_ENDPOINT", value)],
        );
        assert!(!out.status.success(), "{value} accepted");
        let err = stderr(&out);
        assert!(
            err.contains("ESCROW_OTLP_ENDPOINT: key telemetry.otlp_endpoint") && err.contains(why),
            "{value}: {err}"
        );
        // `serve` refuses it the same way, before listening.
        let out = run(
            &[
                "--database-url",
                &sqlite_url(dir.path(), "refused.db"),
                "serve",
                "--listen",
                "127.0.0.1:0",
            ],
            &[("ESCROW_OTLP_ENDPOINT", value)],
        );
        assert!(!out.status.success(), "serve took {value}");
        assert!(
            stderr(&out).contains("telemetry.otlp_endpoint"),
            "{}",
            stderr(&out)
        );
    }
}

#[test]
fn batch_statements_come_from_the_environment_and_a_bad_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = good_file(dir.path());
    let out = run(
        &["config", "check", &file],
        &[("ESCROW_BATCH_STATEMENTS", "per-institution")],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let line = line(&text, "batch_statements");
    assert!(
        line.contains("\"per-institution\"") && line.ends_with("# ESCROW_BATCH_STATEMENTS"),
        "{line}"
    );
    let out = run(
        &["config", "check", &file],
        &[("ESCROW_BATCH_STATEMENTS", "sharded")],
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("ESCROW_BATCH_STATEMENTS: key database.batch_statements")
            && err.contains("set-wise")
            && err.contains("per-institution"),
        "{err}"
    );
}
