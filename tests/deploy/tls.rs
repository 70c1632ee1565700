//! TLS in `serve`: a certificate made here (rcgen) served by the real
//! binary to a client that trusts only it; HSTS and `Secure` cookies over
//! TLS; the certificate replaced and SIGHUP sent, new connections get the
//! new one from the same listener while a connection opened before keeps
//! serving; `probe` over TLS trusts only the configured certificate; half a
//! configuration and a key that is not a key stop the start with the files
//! named.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::{run, serve, sqlite_url, stderr};

/// A self-signed certificate for `localhost` and 127.0.0.1, written as
/// `cert.pem` and `key.pem` in `dir`; its PEM returned for the client.
fn make_certificate(dir: &Path) -> String {
    let made =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let pem = made.cert.pem();
    // Written to a side file and renamed, as an operator's renewal tool
    // does: the server never reads half a file.
    for (name, text) in [
        ("cert.pem", pem.clone()),
        ("key.pem", made.signing_key.serialize_pem()),
    ] {
        let side = dir.join(format!("{name}.new"));
        std::fs::write(&side, text).unwrap();
        std::fs::rename(&side, dir.join(name)).unwrap();
    }
    pem
}

/// A client that trusts `pem` and nothing else (no system roots), and
/// opens a new connection for every request.
fn trusting(pem: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).unwrap())
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_terminates_tls_with_hsts_and_secure_cookies_and_takes_a_new_certificate_on_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(dir.path(), "tls.db");
    let first = make_certificate(dir.path());
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    // The files from the configuration file, as deployed.
    let config = dir.path().join("escrow-ledger.toml");
    std::fs::write(
        &config,
        format!(
            "[tls]\ncert_file = {:?}\nkey_file = {:?}\n",
            cert.display().to_string(),
            key.display().to_string()
        ),
    )
    .unwrap();
    let served = serve(
        &[
            "--config",
            config.to_str().unwrap(),
            "--database-url",
            &url,
            "serve",
            "--listen",
            "127.0.0.1:0",
        ],
        &[],
    );
    assert_eq!(served.scheme, "https", "{:?}", served.printed);
    let base = format!("https://{}", served.addr);

    let answer = trusting(&first)
        .get(format!("{base}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), reqwest::StatusCode::OK);
    assert_eq!(
        answer.headers()["strict-transport-security"],
        "max-age=31536000"
    );
    // The console's cookies are Secure over TLS, whatever the client says.
    let sign_in = trusting(&first)
        .get(format!("{base}/sign-in"))
        .header("X-Forwarded-Proto", "http")
        .send()
        .await
        .unwrap();
    assert_eq!(sign_in.status(), reqwest::StatusCode::OK);
    let cookies: Vec<&str> = sign_in
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert!(!cookies.is_empty());
    assert!(
        cookies.iter().all(|c| c.contains("; Secure")),
        "{cookies:?}"
    );
    // Plain HTTP on the TLS port gets no answer from the service.
    let plain = reqwest::Client::new()
        .get(format!("http://{}/healthz", served.addr))
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    assert!(
        plain.as_ref().map_or(true, |r| !r.status().is_success()),
        "{plain:?}"
    );

    // `probe` (the container's health check) over TLS trusts exactly the
    // configured certificate.
    let readyz = format!("{base}/readyz");
    let probe = || {
        run(
            &[
                "--config",
                config.to_str().unwrap(),
                "probe",
                "--url",
                &readyz,
            ],
            &[],
        )
    };
    let out = probe();
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run(&["probe", "--url", &readyz], &[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("trusts the certificate of tls.cert_file"),
        "{}",
        stderr(&out)
    );

    // Renewal: new files, SIGHUP; the listener stays, new connections get
    // the new certificate (bounded wait for the reload to land). Before
    // the SIGHUP the probe says the served certificate is not the file's.
    // A client that keeps its connection open across the reload.
    let kept = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(first.as_bytes()).unwrap())
        .pool_idle_timeout(Duration::from_secs(60))
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let r = kept.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::OK);
    r.bytes().await.unwrap();
    let second = make_certificate(dir.path());
    let out = probe();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("not the one tls.cert_file holds"),
        "{}",
        stderr(&out)
    );
    served.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match trusting(&second)
            .get(format!("{base}/healthz"))
            .send()
            .await
        {
            Ok(r) => {
                assert_eq!(r.status(), reqwest::StatusCode::OK);
                break;
            }
            Err(e) => assert!(
                Instant::now() < deadline,
                "the new certificate was not served within 10 s of SIGHUP: {e:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let old = trusting(&first).get(format!("{base}/healthz")).send().await;
    assert!(old.is_err(), "the old certificate is still served: {old:?}");
    let out = probe();
    assert!(out.status.success(), "{}", stderr(&out));
    // The connection opened before the reload still serves (it keeps the
    // certificate it began with; a new one with it is refused above).
    let r = kept.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::OK);

    // A broken pair on SIGHUP keeps the certificate that works.
    std::fs::write(&key, "not a key").unwrap();
    served.signal("HUP");
    for _ in 0..5 {
        let r = trusting(&second)
            .get(format!("{base}/healthz"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), reqwest::StatusCode::OK);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(served.terminate().success());
}

#[test]
fn plain_http_serves_without_hsts_and_trusts_the_proxy_for_secure_cookies() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(dir.path(), "plain.db");
    let served = serve(
        &["--database-url", &url, "serve", "--listen", "127.0.0.1:0"],
        &[],
    );
    assert_eq!(served.scheme, "http");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let client = reqwest::Client::new();
        let r = client
            .get(format!("http://{}/healthz", served.addr))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), reqwest::StatusCode::OK);
        assert!(r.headers().get("strict-transport-security").is_none());
        for (proto, secure) in [(None, false), (Some("https"), true)] {
            let mut get = client.get(format!("http://{}/sign-in", served.addr));
            if let Some(p) = proto {
                get = get.header("X-Forwarded-Proto", p);
            }
            let r = get.send().await.unwrap();
            let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
            assert_eq!(cookie.contains("; Secure"), secure, "{proto:?}: {cookie}");
        }
    });
    assert!(served.terminate().success());
}

#[test]
fn serve_refuses_half_a_tls_configuration_and_a_key_that_is_not_one() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(dir.path(), "refused.db");
    make_certificate(dir.path());
    let cert = dir.path().join("cert.pem");
    let cert = cert.to_str().unwrap();
    let out = run(
        &[
            "--database-url",
            &url,
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--tls-cert",
            cert,
        ],
        &[],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("tls: tls.cert_file is set but tls.key_file is not"),
        "{}",
        stderr(&out)
    );
    let bad_key = dir.path().join("bad.pem");
    std::fs::write(&bad_key, "not a key").unwrap();
    let out = run(
        &[
            "--database-url",
            &url,
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--tls-cert",
            cert,
            "--tls-key",
            bad_key.to_str().unwrap(),
        ],
        &[],
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("do not make a server certificate") && err.contains("bad.pem"),
        "{err}"
    );
    // Nothing was opened: the start stopped before the store.
    assert!(!dir.path().join("refused.db").exists());
}
