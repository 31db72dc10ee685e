//! TLS to https endpoints, with etcdctl's flags: `--cacert` (the CA that
//! signs the servers' certificates; the system's bundle without it),
//! `--cert` and `--key` (a client certificate, for servers run with
//! `--client-cert-auth`), `--insecure-skip-tls-verify` (no check of the
//! server's certificate, for `--auto-tls` servers).
//!
//! tonic dials through [`connector`]: TCP, then a rustls handshake (ALPN
//! `h2`) checked against the endpoint's host; plaintext endpoints never
//! come here.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio::net::TcpStream;

use crate::error::{Error, Result};

/// How to reach TLS endpoints.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// `--cacert`: PEM CA certificates that sign the servers' certificates.
    pub cacert: Option<PathBuf>,
    /// `--cert`: a PEM client certificate (chain).
    pub cert: Option<PathBuf>,
    /// `--key`: the PEM key of `--cert`.
    pub key: Option<PathBuf>,
    /// `--insecure-skip-tls-verify`: do not check the server's certificate.
    pub insecure_skip_verify: bool,
}

fn tls_err(what: impl std::fmt::Display) -> Error {
    Error::Tls(what.to_string())
}

fn read(flag: &str, path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| tls_err(format!("{flag} {}: {e}", path.display())))
}

fn certs(flag: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let bytes = read(flag, path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| {
            tls_err(format!(
                "{flag} {}: not PEM certificates: {e}",
                path.display()
            ))
        })?;
    if certs.is_empty() {
        return Err(tls_err(format!(
            "{flag} {}: holds no PEM certificate",
            path.display()
        )));
    }
    Ok(certs)
}

impl TlsOptions {
    /// The options, or `None` when no flag was given.
    pub fn given(
        cacert: Option<PathBuf>,
        cert: Option<PathBuf>,
        key: Option<PathBuf>,
        insecure_skip_verify: bool,
    ) -> Option<TlsOptions> {
        let o = TlsOptions {
            cacert,
            cert,
            key,
            insecure_skip_verify,
        };
        (o != TlsOptions::default()).then_some(o)
    }

    /// The rustls configuration these options make (files read now).
    pub fn config(&self) -> Result<Arc<rustls::ClientConfig>> {
        let provider = Arc::new(ring_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(tls_err)?;
        let builder = if self.insecure_skip_verify {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
        } else {
            let mut roots = rustls::RootCertStore::empty();
            match &self.cacert {
                Some(ca) => {
                    for c in certs("--cacert", ca)? {
                        roots.add(c).map_err(|e| {
                            tls_err(format!(
                                "--cacert {}: not a CA certificate: {e}",
                                ca.display()
                            ))
                        })?;
                    }
                }
                None => {
                    let bundle = std::env::var_os("SSL_CERT_FILE")
                        .map(PathBuf::from)
                        .unwrap_or_else(|| PathBuf::from("/etc/ssl/certs/ca-certificates.crt"));
                    let found = certs("the system's CA bundle", &bundle)
                        .map_err(|e| tls_err(format!("no --cacert given, and {e}")))?;
                    let _ = roots.add_parsable_certificates(found);
                }
            }
            builder.with_root_certificates(roots)
        };
        let mut cfg = match (&self.cert, &self.key) {
            (Some(c), Some(k)) => {
                let chain = certs("--cert", c)?;
                let key = PrivateKeyDer::from_pem_slice(&read("--key", k)?).map_err(|e| {
                    tls_err(format!("--key {}: no PEM private key: {e}", k.display()))
                })?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| tls_err(format!("--cert/--key: {e}")))?
            }
            (None, None) => builder.with_no_client_auth(),
            _ => {
                return Err(Error::InvalidArgument(
                    "--cert and --key go together".into(),
                ))
            }
        };
        cfg.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Arc::new(cfg))
    }
}

/// rustls's ring provider (deprecated in rustls 0.23.48 only for lacking
/// post-quantum key exchange, which etcd 3.4 servers do not offer either;
/// ring needs no cmake to build, unlike aws-lc-rs).
#[allow(deprecated)]
fn ring_provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// The name a server's certificate must carry: the endpoint's host.
pub fn server_name(host: &str) -> Result<ServerName<'static>> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_string())
        .map_err(|e| tls_err(format!("{host:?} is not a host name for TLS: {e}")))
}

/// A connector for tonic that opens TCP to the URI's authority and TLS
/// over it, checking the certificate against `name`.
pub fn connector(
    cfg: Arc<rustls::ClientConfig>,
    name: ServerName<'static>,
    dial_timeout: Duration,
) -> impl tower::Service<
    tonic::transport::Uri,
    Response = TokioIo<tokio_rustls::client::TlsStream<TcpStream>>,
    Error = std::io::Error,
    Future = impl Send,
> + Clone
       + Send
       + 'static {
    tower::service_fn(move |uri: tonic::transport::Uri| {
        let cfg = cfg.clone();
        let name = name.clone();
        async move {
            let other = |e: String| std::io::Error::other(e);
            let host = uri.host().ok_or_else(|| other(format!("{uri}: no host")))?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let port = uri.port_u16().unwrap_or(2379);
            let tcp = tokio::time::timeout(dial_timeout, TcpStream::connect((host, port)))
                .await
                .map_err(|_| other(format!("connect to {host}:{port} timed out")))??;
            tcp.set_nodelay(true)?;
            let tls = tokio::time::timeout(
                dial_timeout,
                tokio_rustls::TlsConnector::from(cfg).connect(name, tcp),
            )
            .await
            .map_err(|_| other(format!("TLS handshake with {host}:{port} timed out")))??;
            Ok(TokioIo::new(tls))
        }
    })
}

/// Takes any server certificate (still checking the handshake's
/// signatures): `--insecure-skip-tls-verify`.
#[derive(Debug)]
struct NoVerify(Arc<CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_given_only_when_a_flag_is() {
        assert_eq!(TlsOptions::given(None, None, None, false), None);
        assert!(TlsOptions::given(None, None, None, true).is_some());
        let half = TlsOptions {
            cert: Some("c.pem".into()),
            insecure_skip_verify: true,
            ..TlsOptions::default()
        };
        assert!(matches!(half.config(), Err(Error::InvalidArgument(_))));
        let missing = TlsOptions {
            cacert: Some("/nonexistent/ca.pem".into()),
            ..TlsOptions::default()
        };
        let e = missing.config().unwrap_err().to_string();
        assert!(e.contains("--cacert"), "{e}");
        assert!(server_name("127.0.0.1").is_ok());
        assert!(server_name("[::1]").is_ok());
    }
}
