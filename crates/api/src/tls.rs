//! `serve` over TLS (rustls, through axum-server): the certificate and key
//! files from the configuration (`tls.cert_file`, `tls.key_file`), read
//! again on SIGHUP without closing the listener (connections already open
//! keep the certificate they shook hands with; new ones get the new one),
//! and on every answer the `Strict-Transport-Security` header. Behind TLS
//! the request says so (`X-Forwarded-Proto: https`, set here and never
//! taken from the client), so the console's cookies are `Secure`.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::http::{HeaderName, HeaderValue};
use axum_server::tls_rustls::RustlsConfig;

use crate::http::AppState;

/// One year, as browsers' preload lists ask for; no `includeSubDomains`,
/// as a county's other hosts are not ours to vouch for.
pub const HSTS: &str = "max-age=31536000";

/// Where the certificate (PEM, leaf first, then the chain) and its private
/// key (PEM, PKCS#8, PKCS#1 or SEC1) are.
#[derive(Debug, Clone)]
pub struct Files {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("tls: the certificate file {cert} and the key file {key} do not make a server certificate: {source}")]
    Unusable {
        cert: String,
        key: String,
        source: std::io::Error,
    },
    #[error("tls: {0} is set but {1} is not: give both, or neither for plain HTTP")]
    HalfConfigured(&'static str, &'static str),
}

impl Files {
    /// Both files or neither: half a TLS configuration is an error, never a
    /// silent fall back to plain HTTP.
    pub fn from_parts(
        cert: Option<PathBuf>,
        key: Option<PathBuf>,
    ) -> Result<Option<Files>, TlsError> {
        match (cert, key) {
            (Some(cert), Some(key)) => Ok(Some(Files { cert, key })),
            (None, None) => Ok(None),
            (Some(_), None) => Err(TlsError::HalfConfigured("tls.cert_file", "tls.key_file")),
            (None, Some(_)) => Err(TlsError::HalfConfigured("tls.key_file", "tls.cert_file")),
        }
    }

    /// Reads and checks both files (the key must match the certificate).
    pub async fn load(&self) -> Result<RustlsConfig, TlsError> {
        RustlsConfig::from_pem_file(&self.cert, &self.key)
            .await
            .map_err(|source| self.unusable(source))
    }

    async fn reload(&self, config: &RustlsConfig) -> Result<(), TlsError> {
        config
            .reload_from_pem_file(&self.cert, &self.key)
            .await
            .map_err(|source| self.unusable(source))
    }

    fn unusable(&self, source: std::io::Error) -> TlsError {
        TlsError::Unusable {
            cert: show(&self.cert),
            key: show(&self.key),
            source,
        }
    }
}

fn show(path: &Path) -> String {
    path.display().to_string()
}

/// Serves `state` over TLS on `listener` until `shutdown` resolves, then
/// finishes the requests in flight (up to `grace`). SIGHUP reads the files
/// again; a pair that does not load is logged and the old one kept.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    files: Files,
    config: RustlsConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<()> {
    let app = crate::http::router(state).layer(axum::middleware::from_fn(over_tls));
    let handle = axum_server::Handle::new();
    let stopping = handle.clone();
    tokio::spawn(async move {
        shutdown.await;
        stopping.graceful_shutdown(Some(grace));
    });
    let reloads = tokio::spawn(reload_on_hangup(files, config.clone()));
    let served = axum_server::from_tcp_rustls(listener.into_std()?, config)?
        .handle(handle)
        .serve(app.into_make_service())
        .await;
    reloads.abort();
    served
}

/// Each SIGHUP: the certificate and key files again.
async fn reload_on_hangup(files: Files, config: RustlsConfig) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hangups = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP: the certificate is not reloaded");
                return;
            }
        };
        while hangups.recv().await.is_some() {
            match files.reload(&config).await {
                Ok(()) => {
                    tracing::info!(cert = %files.cert.display(), "SIGHUP: certificate reloaded")
                }
                Err(e) => {
                    tracing::error!(error = %e, "SIGHUP: certificate not reloaded, the previous one stays")
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (files, config);
    }
}

/// Says on the request that it came over TLS (overwriting whatever the
/// client claimed) and asks browsers to come back only over HTTPS.
async fn over_tls(
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    request.headers_mut().insert(
        HeaderName::from_static("x-forwarded-proto"),
        HeaderValue::from_static("https"),
    );
    let mut response = next.run(request).await;
    response.headers_mut().insert(
        axum::http::header::STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static(HSTS),
    );
    response
}

/// A client configuration that trusts exactly the server certificate in
/// `cert_file` (its first PEM certificate) and nothing else, whatever name
/// it was issued for: `probe` asks the service on loopback, where a
/// certificate for the public name would not match, and pinning is
/// stricter than any name check.
pub fn pinned_client(cert_file: &Path) -> Result<rustls::ClientConfig, TlsError> {
    use rustls::pki_types::pem::PemObject;
    let unusable = |why: String| TlsError::Unusable {
        cert: show(cert_file),
        key: "(not needed by the probe)".into(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, why),
    };
    let pinned = rustls::pki_types::CertificateDer::from_pem_file(cert_file)
        .map_err(|e| unusable(format!("no PEM certificate: {e}")))?;
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Pinned {
        pinned: pinned.into_owned(),
        provider: provider.clone(),
    };
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| unusable(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(std::sync::Arc::new(verifier))
        .with_no_client_auth())
}

#[derive(Debug)]
struct Pinned {
    pinned: rustls::pki_types::CertificateDer<'static>,
    provider: std::sync::Arc<rustls::crypto::CryptoProvider>,
}

impl rustls::client::danger::ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.pinned.as_ref() {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(
                "the server's certificate is not the one tls.cert_file holds (renewed without SIGHUP?)"
                    .into(),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
