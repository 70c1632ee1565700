//! The files under deploy/: systemd units verified by systemd itself, the
//! container file, compose and Kubernetes manifests checked statically and
//! their probes asked of a real server.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::{repo, run, serve, sqlite_url, stderr, stdout};

/// A YAML file of the repository as JSON values.
pub fn yaml(relative: &str) -> Value {
    let text = std::fs::read_to_string(repo().join(relative)).unwrap();
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{relative}: {e}"))
}

/// Every unit is checked by `systemd-analyze verify` with its `ExecStart`
/// pointed at the binary just built (verify insists the program exists);
/// any warning fails.
#[test]
fn the_systemd_units_pass_systemd_analyze_verify() {
    let analyze = std::path::Path::new("/usr/bin/systemd-analyze");
    if !analyze.exists() {
        eprintln!("SKIPPED: /usr/bin/systemd-analyze is absent (apt-get install systemd)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let units = [
        "escrow-ledger.service",
        "escrow-ledger-jobs.service",
        "escrow-ledger-jobs.timer",
    ];
    for unit in units {
        let text = std::fs::read_to_string(repo().join("deploy/systemd").join(unit)).unwrap();
        if unit.ends_with(".service") {
            assert!(text.contains("ExecStart=/usr/local/bin/escrow-ledger --config /etc/escrow-ledger/escrow-ledger.toml"), "{unit}");
            for hardening in [
                "DynamicUser=yes",
                "ProtectSystem=strict",
                "NoNewPrivileges=yes",
                "StateDirectory=escrow-ledger",
            ] {
                assert!(text.contains(hardening), "{unit} lacks {hardening}");
            }
        }
        let text = text.replace(
            "/usr/local/bin/escrow-ledger",
            env!("CARGO_BIN_EXE_escrow-ledger"),
        );
        std::fs::write(dir.path().join(unit), text).unwrap();
    }
    let service =
        std::fs::read_to_string(repo().join("deploy/systemd/escrow-ledger.service")).unwrap();
    assert!(service.contains("Type=notify") && service.contains("Restart=on-failure"));
    let out = std::process::Command::new(analyze)
        .arg("verify")
        .arg("--man=no")
        .args(units.iter().map(|u| dir.path().join(u)))
        .output()
        .unwrap();
    assert!(
        out.status.success() && stderr(&out).trim().is_empty() && stdout(&out).trim().is_empty(),
        "systemd-analyze verify: {}{}",
        stdout(&out),
        stderr(&out)
    );
}

#[test]
fn the_containerfile_is_multi_stage_non_root_minimal_and_checks_its_health() {
    let text = std::fs::read_to_string(repo().join("deploy/container/Containerfile")).unwrap();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect();
    let froms: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.starts_with("FROM "))
        .collect();
    assert!(froms.len() >= 2, "multi-stage: {froms:?}");
    assert!(
        froms.last().unwrap().contains("distroless"),
        "a minimal runtime: {froms:?}"
    );
    let last_stage = text.rsplit("\nFROM ").next().unwrap();
    let user = last_stage
        .lines()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("the runtime stage names a user");
    assert!(
        !user.starts_with("root") && !user.starts_with("0"),
        "USER {user}"
    );
    assert!(
        last_stage.contains("COPY --from=build"),
        "only the binary is copied"
    );
    let health = last_stage
        .lines()
        .skip_while(|l| !l.starts_with("HEALTHCHECK"))
        .take(2)
        .collect::<String>();
    assert!(
        health.contains("\"probe\"") && health.contains("/readyz"),
        "{health}"
    );
    // What the build stage copies exists in the repository.
    for l in lines
        .iter()
        .filter(|l| l.starts_with("COPY ") && !l.contains("--from"))
    {
        let parts: Vec<&str> = l.split_whitespace().collect();
        for source in &parts[1..parts.len() - 1] {
            assert!(
                repo().join(source).exists(),
                "COPY {source}: not in the repository"
            );
        }
    }
    let ignore = std::fs::read_to_string(repo().join(".containerignore")).unwrap();
    assert!(
        ignore.lines().any(|l| l == "target"),
        "the build context leaves target/ out"
    );
}

/// The probe paths of the manifests, asked of a real server, and the
/// `probe` command the container and compose health checks run.
#[test]
fn every_probe_in_the_manifests_answers_on_a_real_server() {
    let deployment = yaml("deploy/k8s/deployment.yaml");
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    let mut paths = BTreeSet::new();
    for probe in ["startupProbe", "livenessProbe", "readinessProbe"] {
        let path = container[probe]["httpGet"]["path"]
            .as_str()
            .unwrap_or_else(|| panic!("{probe} has an httpGet path"));
        paths.insert(path.to_string());
    }
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(dir.path(), "probe.db");
    let served = serve(
        &["--database-url", &url, "serve", "--listen", "127.0.0.1:0"],
        &[],
    );
    for path in &paths {
        let out = run(
            &["probe", "--url", &format!("http://{}{path}", served.addr)],
            &[],
        );
        assert!(out.status.success(), "{path}: {}", stderr(&out));
    }
    let out = run(
        &["probe", "--url", &format!("http://{}/nope", served.addr)],
        &[],
    );
    assert!(!out.status.success(), "probe fails on a 404");
    assert!(served.terminate().success());
    let out = run(
        &[
            "probe",
            "--url",
            "http://127.0.0.1:1/readyz",
            "--timeout-secs",
            "1",
        ],
        &[],
    );
    assert!(!out.status.success(), "probe fails when nothing answers");
    assert!(stderr(&out).contains("nothing answers"), "{}", stderr(&out));
}

#[test]
fn the_kubernetes_manifests_hang_together() {
    let kustomization = yaml("deploy/k8s/kustomization.yaml");
    let listed: BTreeSet<String> = kustomization["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_string())
        .collect();
    let on_disk: BTreeSet<String> = std::fs::read_dir(repo().join("deploy/k8s"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml") && n != "kustomization.yaml")
        .collect();
    assert_eq!(listed, on_disk, "kustomization.yaml lists every manifest");
    let mut kinds = BTreeSet::new();
    for file in &on_disk {
        let doc = yaml(&format!("deploy/k8s/{file}"));
        assert!(
            doc["apiVersion"].is_string() && doc["metadata"]["name"].is_string(),
            "{file}"
        );
        kinds.insert(doc["kind"].as_str().unwrap().to_string());
    }
    for kind in [
        "Deployment",
        "Service",
        "ConfigMap",
        "PodDisruptionBudget",
        "CronJob",
    ] {
        assert!(kinds.contains(kind), "no {kind}: {kinds:?}");
    }

    let deployment = yaml("deploy/k8s/deployment.yaml");
    let pod = &deployment["spec"]["template"];
    let labels = &pod["metadata"]["labels"];
    let matches = |selector: &Value| {
        selector
            .as_object()
            .unwrap()
            .iter()
            .all(|(k, v)| &labels[k] == v)
    };
    assert_eq!(deployment["spec"]["selector"]["matchLabels"], *labels);
    assert!(matches(
        &yaml("deploy/k8s/service.yaml")["spec"]["selector"]
    ));
    assert!(matches(
        &yaml("deploy/k8s/pdb.yaml")["spec"]["selector"]["matchLabels"]
    ));
    let container = &pod["spec"]["containers"][0];
    assert_eq!(
        container["securityContext"]["allowPrivilegeEscalation"],
        false
    );
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(pod["spec"]["securityContext"]["runAsNonRoot"], true);

    // The port the configuration listens on is the port the probes ask.
    let configmap = yaml("deploy/k8s/configmap.yaml");
    let toml_text = configmap["data"]["escrow-ledger.toml"].as_str().unwrap();
    let config: toml::Table = toml::from_str(toml_text).unwrap();
    let listen = config["http"]["listen"].as_str().unwrap();
    let port: u64 = listen.rsplit(':').next().unwrap().parse().unwrap();
    assert_eq!(container["ports"][0]["containerPort"].as_u64(), Some(port));
    assert_eq!(container["ports"][0]["name"], "http");

    // The files the configuration names are mounted from the Secret and
    // the ConfigMap, in the Deployment and in the CronJob alike.
    let cronjob = yaml("deploy/k8s/cronjob.yaml");
    let job_pod = &cronjob["spec"]["jobTemplate"]["spec"]["template"];
    assert_eq!(cronjob["spec"]["concurrencyPolicy"], "Forbid");
    assert_eq!(job_pod["spec"]["containers"][0]["args"][0], "jobs");
    assert_eq!(
        config["jobs"]["in_serve"].as_bool(),
        Some(false),
        "the CronJob runs the jobs"
    );
    for (what, spec) in [("Deployment", &pod["spec"]), ("CronJob", &job_pod["spec"])] {
        let mounts = spec["containers"][0]["volumeMounts"].as_array().unwrap();
        let mounted = |file: &str| -> Option<(String, String)> {
            mounts.iter().find_map(|m| {
                let dir = m["mountPath"].as_str().unwrap();
                let name = file.strip_prefix(&format!("{dir}/"))?;
                Some((m["name"].as_str().unwrap().to_string(), name.to_string()))
            })
        };
        let volume = |name: &str| {
            spec["volumes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|v| v["name"] == name)
                .unwrap_or_else(|| panic!("{what}: no volume {name}"))
                .clone()
        };
        let config_path = spec["containers"][0]["env"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == "ESCROW_CONFIG")
            .unwrap()["value"]
            .as_str()
            .unwrap()
            .to_string();
        let (vol, key) = mounted(&config_path).expect("the configuration is mounted");
        assert_eq!(
            volume(&vol)["configMap"]["name"],
            configmap["metadata"]["name"]
        );
        assert!(
            configmap["data"][&key].is_string(),
            "{what}: ConfigMap has no {key}"
        );
        for file in [
            config["database"]["password_file"].as_str().unwrap(),
            config["banks"]["file"].as_str().unwrap(),
        ] {
            let (vol, key) =
                mounted(file).unwrap_or_else(|| panic!("{what}: {file} is not mounted"));
            let secret = volume(&vol)["secret"].clone();
            assert_eq!(secret["secretName"], "escrow-ledger", "{what}");
            assert!(
                secret["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|i| i["key"] == key && i["path"] == key),
                "{what}: the Secret's {key} is not mounted"
            );
        }
    }
}

#[test]
fn the_compose_file_runs_the_service_on_postgres_through_the_pooler() {
    let compose = yaml("deploy/compose.yaml");
    let services = &compose["services"];
    for name in ["ledger", "postgres", "pgbouncer"] {
        assert!(services[name].is_object(), "no service {name}");
    }
    let ledger = &services["ledger"];
    let env = &ledger["environment"];
    let url = env["ESCROW_DATABASE_URL"].as_str().unwrap();
    assert!(
        url.starts_with("postgres://escrow@pgbouncer:"),
        "through the pooler: {url}"
    );
    assert!(
        !url.contains(':') || !url.split('@').next().unwrap().contains("escrow:"),
        "no password in the URL"
    );
    assert_eq!(
        env["ESCROW_DATABASE_PASSWORD_FILE"],
        "/run/secrets/db-password"
    );
    let declared: BTreeSet<&str> = compose["secrets"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for s in ledger["secrets"].as_array().unwrap() {
        assert!(
            declared.contains(s.as_str().unwrap()),
            "secret {s} is not declared"
        );
    }
    let test: Vec<&str> = ledger["healthcheck"]["test"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        test.contains(&"probe") && test.iter().any(|t| t.ends_with(":8080/readyz")),
        "{test:?}"
    );
    assert_eq!(
        ledger["build"]["dockerfile"],
        "deploy/container/Containerfile"
    );
    assert!(repo()
        .join("deploy")
        .join(ledger["build"]["context"].as_str().unwrap())
        .join("deploy/container/Containerfile")
        .exists());
    assert_eq!(services["pgbouncer"]["environment"]["POOL_MODE"], "session");
}
