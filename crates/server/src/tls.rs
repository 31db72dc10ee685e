//! TLS on the client and peer ports, with etcd's flags and meanings, on
//! rustls (ring as the crypto provider).
//!
//! [`TlsSettings`] is what the flags say for one port (validated by
//! `config.rs`: files, `--client-cert-auth`, `--auto-tls`, and the
//! `--cipher-suites`, `--tls-min-version`, `--tls-max-version` shared by
//! both ports). At start the server turns it into a [`ServerTls`] (the
//! client port) or a [`PeerTls`] (the peer port: accepting and dialing).
//! Both rebuild their rustls configuration when one of its files changed
//! (modification time, length or inode), checked once per new connection —
//! a rotated certificate is used by the next connection, without restart,
//! and a file that does not load keeps the last good configuration (and is
//! logged). Plaintext connections never reach this module.
//!
//! What etcd does and this follows: a URL's scheme decides (an `http://`
//! listener ignores the certificate flags); `--auto-tls` makes a
//! self-signed certificate when no `--cert-file` is given, and a peer with
//! `--peer-auto-tls` does not verify the certificates of the peers it
//! dials; `--client-cert-auth` requires a client certificate signed by
//! `--trusted-ca-file`; `--cipher-suites` takes Go's names and restricts
//! TLS 1.2 only (Go does not let TLS 1.3's suites be chosen).
//!
//! [`client_common_name`] gives the common name of a client's verified
//! certificate (etcd's user for `--client-cert-auth`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{RootCertStore, SupportedCipherSuite, SupportedProtocolVersion};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("{flag} {path}: {err}")]
    Read {
        /// The flag that names it.
        flag: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        err: std::io::Error,
    },
    /// A file is not what the flag wants.
    #[error("{flag} {path}: {why}")]
    Content {
        /// The flag that names it.
        flag: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// rustls refused the certificate, key or settings.
    #[error("{what}: {err}")]
    Rustls {
        /// What was being set up.
        what: &'static str,
        /// rustls's reason.
        err: rustls::Error,
    },
    /// The client-certificate verifier could not be built.
    #[error("{flag}: {why}")]
    Verifier {
        /// The flag whose CA it was.
        flag: &'static str,
        /// Why.
        why: String,
    },
    /// `--auto-tls` could not make a certificate.
    #[error("{flag}: cannot make a self-signed certificate: {err}")]
    AutoTls {
        /// `--auto-tls` or `--peer-auto-tls`.
        flag: &'static str,
        /// rcgen's reason.
        err: rcgen::Error,
    },
    /// A flag's value is not one etcd (or rustls) takes.
    #[error("{flag}: {why}")]
    Flag {
        /// The flag.
        flag: &'static str,
        /// Why.
        why: String,
    },
}

/// A TLS protocol version, by etcd's name (`TLS1.2`, `TLS1.3`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    /// TLS 1.2.
    Tls12,
    /// TLS 1.3.
    Tls13,
}

impl TlsVersion {
    /// Parses etcd's name for a version (`flag` names it in the error).
    /// TLS 1.0 and 1.1 are known but refused: rustls does not speak them.
    pub fn parse(flag: &'static str, s: &str) -> Result<TlsVersion, TlsError> {
        match s {
            "TLS1.2" => Ok(TlsVersion::Tls12),
            "TLS1.3" => Ok(TlsVersion::Tls13),
            "TLS1.0" | "TLS1.1" => Err(TlsError::Flag {
                flag,
                why: format!("{s} is not supported (rustls speaks TLS1.2 and TLS1.3 only)"),
            }),
            other => Err(TlsError::Flag {
                flag,
                why: format!("unknown TLS version {other:?} (known: TLS1.2, TLS1.3)"),
            }),
        }
    }

    fn rustls(self) -> &'static SupportedProtocolVersion {
        match self {
            TlsVersion::Tls12 => &rustls::version::TLS12,
            TlsVersion::Tls13 => &rustls::version::TLS13,
        }
    }
}

/// Go's names of the cipher suites rustls offers (etcd's `--cipher-suites`
/// takes Go's names), with rustls's own. Go's legacy names for the
/// ChaCha20 suites (without `_SHA256`) are accepted too.
const SUITES: &[(&str, rustls::CipherSuite)] = {
    use rustls::CipherSuite as C;
    &[
        (
            "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
            C::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        ),
        (
            "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
            C::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        ),
        (
            "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
            C::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        ),
        (
            "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305",
            C::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        ),
        (
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
            C::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        ),
        (
            "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
            C::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        ),
        (
            "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
            C::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        ),
        (
            "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305",
            C::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        ),
        ("TLS_AES_128_GCM_SHA256", C::TLS13_AES_128_GCM_SHA256),
        ("TLS_AES_256_GCM_SHA384", C::TLS13_AES_256_GCM_SHA384),
        (
            "TLS_CHACHA20_POLY1305_SHA256",
            C::TLS13_CHACHA20_POLY1305_SHA256,
        ),
    ]
};

/// Suites Go (and so etcd) knows that rustls does not offer: named apart
/// so the error says why rather than "unknown".
const GO_ONLY_SUITES: &[&str] = &[
    "TLS_RSA_WITH_RC4_128_SHA",
    "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA256",
    "TLS_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_RC4_128_SHA",
    "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
];

/// The protocol settings both ports share: `--cipher-suites`,
/// `--tls-min-version`, `--tls-max-version`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsProtocol {
    /// The TLS 1.2 suites allowed (rustls's ids); empty: rustls's defaults.
    pub cipher_suites: Vec<rustls::CipherSuite>,
    /// Lowest version spoken.
    pub min_version: TlsVersion,
    /// Highest version spoken.
    pub max_version: TlsVersion,
}

impl Default for TlsProtocol {
    fn default() -> Self {
        TlsProtocol {
            cipher_suites: Vec::new(),
            min_version: TlsVersion::Tls12,
            max_version: TlsVersion::Tls13,
        }
    }
}

impl TlsProtocol {
    /// Reads the three flags as etcd does: comma-separated Go suite names,
    /// versions `TLS1.2`/`TLS1.3` (empty: the defaults, TLS1.2 to TLS1.3).
    pub fn parse(suites: &str, min: &str, max: &str) -> Result<TlsProtocol, TlsError> {
        let mut out = TlsProtocol::default();
        if !min.is_empty() {
            out.min_version = TlsVersion::parse("--tls-min-version", min)?;
        }
        if !max.is_empty() {
            out.max_version = TlsVersion::parse("--tls-max-version", max)?;
        }
        if out.min_version > out.max_version {
            return Err(TlsError::Flag {
                flag: "--tls-min-version",
                why: format!("{min} is above --tls-max-version {max}"),
            });
        }
        let names: Vec<&str> = suites
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        for name in &names {
            match SUITES.iter().find(|(n, _)| n == name) {
                Some((_, id)) => {
                    if !out.cipher_suites.contains(id) {
                        out.cipher_suites.push(*id);
                    }
                }
                None if GO_ONLY_SUITES.contains(name) => {
                    return Err(TlsError::Flag {
                        flag: "--cipher-suites",
                        why: format!(
                            "{name} is not supported (rustls offers only the ECDHE AEAD suites)"
                        ),
                    })
                }
                None => {
                    let known: Vec<&str> = SUITES.iter().map(|(n, _)| *n).collect();
                    return Err(TlsError::Flag {
                        flag: "--cipher-suites",
                        why: format!(
                            "unknown cipher suite {name:?} (known: {})",
                            known.join(", ")
                        ),
                    });
                }
            }
        }
        // As etcd: TLS 1.3's suites cannot be chosen.
        if !names.is_empty() && out.min_version == TlsVersion::Tls13 {
            return Err(TlsError::Flag {
                flag: "--cipher-suites",
                why: "cipher suites cannot be configured when only TLS1.3 is enabled".into(),
            });
        }
        Ok(out)
    }

    /// ring's provider with the suites allowed.
    fn provider(&self) -> Arc<CryptoProvider> {
        let mut p = ring_provider();
        if !self.cipher_suites.is_empty() {
            let keep = |s: &SupportedCipherSuite| {
                matches!(s, SupportedCipherSuite::Tls13(_))
                    || self.cipher_suites.contains(&s.suite())
            };
            p.cipher_suites.retain(keep);
        }
        Arc::new(p)
    }

    fn versions(&self) -> Vec<&'static SupportedProtocolVersion> {
        [TlsVersion::Tls12, TlsVersion::Tls13]
            .into_iter()
            .filter(|v| (self.min_version..=self.max_version).contains(v))
            .map(TlsVersion::rustls)
            .collect()
    }
}

/// rustls's ring provider. rustls 0.23.48 deprecates it because ring has
/// no post-quantum key exchange (aws-lc-rs does); ring builds without cmake
/// or a C toolchain of its own, and etcd 3.4's Go offers no post-quantum
/// exchange either, so a client of etcd loses nothing here.
#[allow(deprecated)]
pub fn ring_provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// The TLS flags of one port, validated (`config.rs`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsSettings {
    /// `--cert-file` / `--peer-cert-file`.
    pub cert_file: Option<PathBuf>,
    /// `--key-file` / `--peer-key-file`.
    pub key_file: Option<PathBuf>,
    /// `--trusted-ca-file` / `--peer-trusted-ca-file`.
    pub trusted_ca_file: Option<PathBuf>,
    /// `--client-cert-auth` / `--peer-client-cert-auth`.
    pub client_cert_auth: bool,
    /// `--auto-tls` / `--peer-auto-tls` (used only without a cert file).
    pub auto_tls: bool,
    /// Host names and addresses a self-signed certificate is made for.
    pub auto_hosts: Vec<String>,
    /// Suites and versions.
    pub protocol: TlsProtocol,
}

/// One port's TLS flags as given (empty: not given).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortFlags {
    /// `--cert-file` / `--peer-cert-file`.
    pub cert_file: String,
    /// `--key-file` / `--peer-key-file`.
    pub key_file: String,
    /// `--trusted-ca-file` / `--peer-trusted-ca-file`.
    pub trusted_ca_file: String,
    /// `--client-cert-auth` / `--peer-client-cert-auth`.
    pub client_cert_auth: bool,
    /// `--auto-tls` / `--peer-auto-tls`.
    pub auto_tls: bool,
}

/// The flag names of one port, for errors.
#[derive(Clone, Copy, Debug)]
pub struct Flags {
    /// `--cert-file`
    pub cert: &'static str,
    /// `--key-file`
    pub key: &'static str,
    /// `--trusted-ca-file`
    pub ca: &'static str,
    /// `--client-cert-auth`
    pub client_cert_auth: &'static str,
    /// `--auto-tls`
    pub auto: &'static str,
}

/// The client port's flags.
pub const CLIENT_FLAGS: Flags = Flags {
    cert: "--cert-file",
    key: "--key-file",
    ca: "--trusted-ca-file",
    client_cert_auth: "--client-cert-auth",
    auto: "--auto-tls",
};

/// The peer port's flags.
pub const PEER_FLAGS: Flags = Flags {
    cert: "--peer-cert-file",
    key: "--peer-key-file",
    ca: "--peer-trusted-ca-file",
    client_cert_auth: "--peer-client-cert-auth",
    auto: "--peer-auto-tls",
};

impl TlsSettings {
    /// Settings from one port's flags, or `None` when they set up no
    /// certificate (neither a cert/key pair nor auto TLS). A cert without
    /// its key (or the other way), or client-certificate auth without a CA,
    /// is refused.
    pub fn from_flags(
        flags: Flags,
        given: &PortFlags,
        auto_hosts: Vec<String>,
        protocol: &TlsProtocol,
    ) -> Result<Option<TlsSettings>, TlsError> {
        let (client_cert_auth, auto_tls) = (given.client_cert_auth, given.auto_tls);
        let (cert, key, ca) = (&given.cert_file, &given.key_file, &given.trusted_ca_file);
        let path = |s: &str| (!s.is_empty()).then(|| PathBuf::from(s));
        let (cert_file, key_file, trusted_ca_file) = (path(cert), path(key), path(ca));
        if cert_file.is_some() != key_file.is_some() {
            return Err(TlsError::Flag {
                flag: if cert_file.is_some() {
                    flags.key
                } else {
                    flags.cert
                },
                why: format!("{} and {} go together", flags.cert, flags.key),
            });
        }
        if client_cert_auth && trusted_ca_file.is_none() {
            return Err(TlsError::Flag {
                flag: flags.client_cert_auth,
                why: format!(
                    "needs {} (the CA that signs the client certificates)",
                    flags.ca
                ),
            });
        }
        if cert_file.is_none() && !auto_tls {
            if client_cert_auth {
                return Err(TlsError::Flag {
                    flag: flags.client_cert_auth,
                    why: format!("needs {} and {}, or {}", flags.cert, flags.key, flags.auto),
                });
            }
            return Ok(None);
        }
        Ok(Some(TlsSettings {
            auto_tls: auto_tls && cert_file.is_none(),
            cert_file,
            key_file,
            trusted_ca_file,
            client_cert_auth,
            auto_hosts,
            protocol: protocol.clone(),
        }))
    }

    /// The files whose change rebuilds the configuration.
    fn files(&self) -> Vec<PathBuf> {
        [&self.cert_file, &self.key_file, &self.trusted_ca_file]
            .into_iter()
            .flatten()
            .cloned()
            .collect()
    }
}

/// A certificate chain and its key.
struct Identity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl Identity {
    fn load(s: &TlsSettings, flags: Flags) -> Result<Identity, TlsError> {
        match (&s.cert_file, &s.key_file) {
            (Some(c), Some(k)) => Ok(Identity {
                chain: load_certs(flags.cert, c)?,
                key: load_key(flags.key, k)?,
            }),
            _ => Err(TlsError::Flag {
                flag: flags.cert,
                why: "no certificate".into(),
            }),
        }
    }

    fn self_signed(flag: &'static str, hosts: &[String]) -> Result<Identity, TlsError> {
        let err = |err| TlsError::AutoTls { flag, err };
        let mut names: Vec<String> = hosts.to_vec();
        for h in ["localhost", "127.0.0.1"] {
            if !names.iter().any(|n| n == h) {
                names.push(h.to_string());
            }
        }
        let mut params = rcgen::CertificateParams::new(names).map_err(err)?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "synod auto-tls");
        params.extended_key_usages = vec![
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = rcgen::KeyPair::generate().map_err(err)?;
        let cert = params.self_signed(&key).map_err(err)?;
        Ok(Identity {
            chain: vec![cert.der().clone()],
            key: PrivateKeyDer::try_from(key.serialize_der()).map_err(|why| TlsError::Flag {
                flag,
                why: why.to_string(),
            })?,
        })
    }

    fn clone_key(&self) -> Identity {
        Identity {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

fn read(flag: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|err| TlsError::Read {
        flag,
        path: path.to_path_buf(),
        err,
    })
}

/// Every certificate of a PEM file (at least one).
pub fn load_certs(
    flag: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(flag, path)?;
    let bad = |why: String| TlsError::Content {
        flag,
        path: path.to_path_buf(),
        why,
    };
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(format!("not PEM certificates: {e}")))?;
    if certs.is_empty() {
        return Err(bad("holds no PEM certificate".into()));
    }
    Ok(certs)
}

/// The private key of a PEM file (PKCS#8, PKCS#1 or SEC1).
pub fn load_key(flag: &'static str, path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read(flag, path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| TlsError::Content {
        flag,
        path: path.to_path_buf(),
        why: format!("no PEM private key: {e}"),
    })
}

fn roots(flag: &'static str, path: &Path) -> Result<RootCertStore, TlsError> {
    let mut store = RootCertStore::empty();
    for c in load_certs(flag, path)? {
        store.add(c).map_err(|e| TlsError::Content {
            flag,
            path: path.to_path_buf(),
            why: format!("not a usable CA certificate: {e}"),
        })?;
    }
    Ok(store)
}

/// The system's CA bundle (Debian's path, or `SSL_CERT_FILE`), for a
/// dialer given no CA of its own.
fn system_roots(flag: &'static str) -> Result<RootCertStore, TlsError> {
    let path = std::env::var_os("SSL_CERT_FILE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/etc/ssl/certs/ca-certificates.crt"));
    let mut store = RootCertStore::empty();
    let certs = load_certs(flag, &path).map_err(|e| TlsError::Flag {
        flag,
        why: format!("not given, and the system's CA bundle does not load: {e}"),
    })?;
    let (_, _) = store.add_parsable_certificates(certs);
    Ok(store)
}

fn rustls_err(what: &'static str) -> impl Fn(rustls::Error) -> TlsError {
    move |err| TlsError::Rustls { what, err }
}

/// A server configuration from settings and an identity.
fn server_config(
    s: &TlsSettings,
    flags: Flags,
    id: Identity,
    alpn: &[&[u8]],
) -> Result<rustls::ServerConfig, TlsError> {
    let provider = s.protocol.provider();
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&s.protocol.versions())
        .map_err(rustls_err("--tls-min-version/--tls-max-version"))?;
    let builder = if s.client_cert_auth {
        let ca = s
            .trusted_ca_file
            .as_deref()
            .expect("validated: auth has a CA");
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots(flags.ca, ca)?),
            provider,
        )
        .build()
        .map_err(|e| TlsError::Verifier {
            flag: flags.ca,
            why: e.to_string(),
        })?;
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let mut cfg = builder
        .with_single_cert(id.chain, id.key)
        .map_err(rustls_err(flags.cert))?;
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(cfg)
}

/// A configuration rebuilt when one of its files changes.
struct Reloading<T> {
    files: Vec<PathBuf>,
    build: Box<dyn Fn() -> Result<T, TlsError> + Send + Sync>,
    current: Mutex<(Vec<Option<Stamp>>, Arc<T>)>,
}

/// What tells a file's versions apart.
type Stamp = (SystemTime, u64, u64);

fn stamps(files: &[PathBuf]) -> Vec<Option<Stamp>> {
    use std::os::unix::fs::MetadataExt;
    files
        .iter()
        .map(|f| {
            let m = std::fs::metadata(f).ok()?;
            Some((m.modified().ok()?, m.len(), m.ino()))
        })
        .collect()
}

impl<T> Reloading<T> {
    /// Builds the first configuration (its error stops the start).
    fn new(
        files: Vec<PathBuf>,
        build: impl Fn() -> Result<T, TlsError> + Send + Sync + 'static,
    ) -> Result<Reloading<T>, TlsError> {
        let now = stamps(&files);
        let first = build()?;
        Ok(Reloading {
            files,
            build: Box::new(build),
            current: Mutex::new((now, Arc::new(first))),
        })
    }

    /// The configuration for a new connection: rebuilt first if a file
    /// changed since the last build; when the rebuild fails, the last good
    /// one, with the error (tried again at the next change).
    fn get(&self) -> (Arc<T>, Option<TlsError>) {
        let now = stamps(&self.files);
        let mut cur = self.current.lock().expect("tls config lock");
        if cur.0 == now {
            return (cur.1.clone(), None);
        }
        cur.0 = now;
        match (self.build)() {
            Ok(c) => {
                cur.1 = Arc::new(c);
                (cur.1.clone(), None)
            }
            Err(e) => (cur.1.clone(), Some(e)),
        }
    }
}

/// TLS on the client port.
pub struct ServerTls {
    config: Reloading<rustls::ServerConfig>,
    client_cert_auth: bool,
}

impl ServerTls {
    /// Loads (or with `--auto-tls`, makes) the client port's certificate.
    pub fn new(s: &TlsSettings) -> Result<ServerTls, TlsError> {
        let flags = CLIENT_FLAGS;
        let auto = if s.auto_tls {
            Some(Identity::self_signed(flags.auto, &s.auto_hosts)?)
        } else {
            None
        };
        let settings = s.clone();
        let config = Reloading::new(s.files(), move || {
            let id = match &auto {
                Some(id) => id.clone_key(),
                None => Identity::load(&settings, flags)?,
            };
            // The JSON gateway, /metrics and /health share the port over HTTP/1.1.
            server_config(&settings, flags, id, &[b"h2", b"http/1.1"])
        })?;
        Ok(ServerTls {
            config,
            client_cert_auth: s.client_cert_auth,
        })
    }
}

/// What a client connection over TLS tells each of its requests (tonic
/// puts it in every request's extensions).
#[derive(Clone, Debug)]
pub struct ClientTlsInfo {
    /// The client's address.
    pub remote_addr: Option<SocketAddr>,
    /// The common name of the client's certificate, when
    /// `--client-cert-auth` verified one.
    pub common_name: Option<String>,
}

/// The common name of the verified certificate the client of `req`
/// presented: `Some` only on a TLS connection to a server run with
/// `--client-cert-auth` (etcd then takes it as the user name).
pub fn client_common_name<T>(req: &tonic::Request<T>) -> Option<String> {
    req.extensions().get::<ClientTlsInfo>()?.common_name.clone()
}

/// The same for an HTTP request (the JSON gateway's).
pub fn http_common_name(ext: &axum::http::Extensions) -> Option<String> {
    ext.get::<ClientTlsInfo>()?.common_name.clone()
}

/// The first common name in a certificate's subject.
pub fn common_name(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let cn = cert.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_owned)
}

/// A client connection over TLS, as tonic serves it.
pub struct TlsConn {
    io: tokio_rustls::server::TlsStream<TcpStream>,
    info: ClientTlsInfo,
}

impl AsyncRead for TlsConn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

impl tonic::transport::server::Connected for TlsConn {
    type ConnectInfo = ClientTlsInfo;

    fn connect_info(&self) -> ClientTlsInfo {
        self.info.clone()
    }
}

/// Longest a TLS handshake may take before the connection is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Most TLS handshakes in progress at once on one port; further
/// connections wait to be accepted.
pub const MAX_HANDSHAKES: usize = 256;
/// Handshaken connections waiting for the server to take them.
const ACCEPTED_QUEUE: usize = 64;

/// The client port's connections, each after its TLS handshake (done on
/// its own task, so a slow or silent client holds no one else up). Ends
/// when the receiving side is dropped. `log` hears failed handshakes.
pub fn incoming(
    listener: TcpListener,
    tls: Arc<ServerTls>,
    log: impl Fn(std::fmt::Arguments<'_>) + Send + Sync + 'static,
) -> tokio_stream::wrappers::ReceiverStream<std::io::Result<TlsConn>> {
    let (tx, rx) = mpsc::channel(ACCEPTED_QUEUE);
    let log = Arc::new(log);
    tokio::spawn(async move {
        let slots = Arc::new(Semaphore::new(MAX_HANDSHAKES));
        loop {
            let permit = tokio::select! {
                p = slots.clone().acquire_owned() => p.expect("never closed"),
                _ = tx.closed() => return,
            };
            let (tcp, addr) = tokio::select! {
                a = listener.accept() => match a {
                    Ok(x) => x,
                    Err(e) => {
                        log(format_args!("client accept failed: {e}"));
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                _ = tx.closed() => return,
            };
            let _ = tcp.set_nodelay(true);
            let (cfg, reload_err) = tls.config.get();
            if let Some(e) = reload_err {
                log(format_args!(
                    "client TLS: a changed certificate file does not load, keeping the last good one: {e}"
                ));
            }
            let tx = tx.clone();
            let log = log.clone();
            let auth = tls.client_cert_auth;
            tokio::spawn(async move {
                let acceptor = tokio_rustls::TlsAcceptor::from(cfg);
                let shake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await;
                drop(permit);
                let io = match shake {
                    Ok(Ok(io)) => io,
                    Ok(Err(e)) => {
                        log(format_args!("client TLS handshake from {addr} failed: {e}"));
                        return;
                    }
                    Err(_) => {
                        log(format_args!("client TLS handshake from {addr} timed out"));
                        return;
                    }
                };
                let common_name = if auth {
                    io.get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|c| c.first())
                        .and_then(|c| common_name(c))
                } else {
                    None
                };
                let info = ClientTlsInfo {
                    remote_addr: Some(addr),
                    common_name,
                };
                let _ = tx.send(Ok(TlsConn { io, info })).await;
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

/// TLS on the peer port: what it accepts and how it dials.
pub struct PeerTls {
    server: Reloading<rustls::ServerConfig>,
    client: Reloading<rustls::ClientConfig>,
}

impl PeerTls {
    /// Loads (or with `--peer-auto-tls`, makes) the peer certificate; the
    /// same serves both ways, as etcd's does.
    pub fn new(s: &TlsSettings) -> Result<PeerTls, TlsError> {
        let flags = PEER_FLAGS;
        let auto = if s.auto_tls {
            Some(Arc::new(Identity::self_signed(flags.auto, &s.auto_hosts)?))
        } else {
            None
        };
        let (settings, a) = (s.clone(), auto.clone());
        let server = Reloading::new(s.files(), move || {
            let id = match &a {
                Some(id) => id.clone_key(),
                None => Identity::load(&settings, flags)?,
            };
            server_config(&settings, flags, id, &[])
        })?;
        let settings = s.clone();
        let client = Reloading::new(s.files(), move || {
            let id = match &auto {
                Some(id) => id.clone_key(),
                None => Identity::load(&settings, flags)?,
            };
            let provider = settings.protocol.provider();
            let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
                .with_protocol_versions(&settings.protocol.versions())
                .map_err(rustls_err("--tls-min-version/--tls-max-version"))?;
            let builder = match &settings.trusted_ca_file {
                Some(ca) => builder.with_root_certificates(roots(flags.ca, ca)?),
                // etcd's peers with self-signed certificates do not verify each other.
                None if settings.auto_tls => builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(NoVerify(provider))),
                None => builder.with_root_certificates(system_roots(flags.ca)?),
            };
            builder
                .with_client_auth_cert(id.chain, id.key)
                .map_err(rustls_err(flags.cert))
        })?;
        Ok(PeerTls { server, client })
    }

    /// The acceptor for a new inbound peer connection (and the error of a
    /// changed file that did not load, if any).
    pub fn acceptor(&self) -> (tokio_rustls::TlsAcceptor, Option<TlsError>) {
        let (c, e) = self.server.get();
        (tokio_rustls::TlsAcceptor::from(c), e)
    }

    /// The connector for a new outbound peer connection.
    pub fn connector(&self) -> (tokio_rustls::TlsConnector, Option<TlsError>) {
        let (c, e) = self.client.get();
        (tokio_rustls::TlsConnector::from(c), e)
    }
}

/// The name a dialer checks a peer's certificate against: the host of its
/// URL (an IP address, or a DNS name).
pub fn server_name(url: &str) -> Option<ServerName<'static>> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let hostport = rest.split('/').next()?;
    let host = match hostport.strip_prefix('[') {
        Some(v6) => v6.split(']').next()?,
        None => hostport.rsplit_once(':').map_or(hostport, |(h, _)| h),
    };
    ServerName::try_from(host.to_string()).ok()
}

/// A verifier that takes any certificate (still checking the handshake's
/// signatures): `--peer-auto-tls` peers dial each other so, as etcd's do.
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
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
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
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
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
    fn versions_and_suites_take_etcds_names_and_refuse_others() {
        let p = TlsProtocol::parse(
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305",
            "TLS1.2",
            "TLS1.3",
        )
        .unwrap();
        assert_eq!(p.cipher_suites.len(), 2);
        assert_eq!(p.versions().len(), 2);
        let only13 = TlsProtocol::parse("", "TLS1.3", "").unwrap();
        assert_eq!(only13.versions(), vec![&rustls::version::TLS13]);
        let e = TlsProtocol::parse("TLS_RSA_WITH_AES_128_CBC_SHA", "", "").unwrap_err();
        assert!(e.to_string().contains("not supported"), "{e}");
        let e = TlsProtocol::parse("TLS_BOGUS", "", "").unwrap_err();
        assert!(e.to_string().contains("unknown cipher suite"), "{e}");
        let e = TlsProtocol::parse("", "TLS1.1", "").unwrap_err();
        assert!(e.to_string().contains("--tls-min-version"), "{e}");
        let e = TlsProtocol::parse("", "", "SSL3").unwrap_err();
        assert!(e.to_string().contains("unknown TLS version"), "{e}");
        let e = TlsProtocol::parse("", "TLS1.3", "TLS1.2").unwrap_err();
        assert!(e.to_string().contains("above"), "{e}");
        let e =
            TlsProtocol::parse("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLS1.3", "").unwrap_err();
        assert!(e.to_string().contains("only TLS1.3"), "{e}");
        // The suites kept: every TLS 1.3 one, and the TLS 1.2 ones named.
        let kept = p.provider().cipher_suites.clone();
        assert!(kept
            .iter()
            .all(|s| matches!(s, SupportedCipherSuite::Tls13(_))
                || p.cipher_suites.contains(&s.suite())));
        assert_eq!(
            kept.iter()
                .filter(|s| matches!(s, SupportedCipherSuite::Tls12(_)))
                .count(),
            2
        );
    }

    #[test]
    fn flags_that_do_not_go_together_are_refused() {
        let p = TlsProtocol::default();
        let f = |cert: &str, key: &str, ca: &str, auth: bool, auto: bool| {
            let given = PortFlags {
                cert_file: cert.into(),
                key_file: key.into(),
                trusted_ca_file: ca.into(),
                client_cert_auth: auth,
                auto_tls: auto,
            };
            TlsSettings::from_flags(CLIENT_FLAGS, &given, vec![], &p)
        };
        assert!(f("", "", "", false, false).unwrap().is_none());
        assert!(f("c", "", "", false, false)
            .unwrap_err()
            .to_string()
            .contains("--key-file"));
        assert!(f("c", "k", "", true, false)
            .unwrap_err()
            .to_string()
            .contains("--trusted-ca-file"));
        let s = f("c", "k", "ca", true, true).unwrap().unwrap();
        assert!(!s.auto_tls, "a cert file wins over --auto-tls");
        assert!(f("", "", "", false, true).unwrap().unwrap().auto_tls);
    }

    #[test]
    fn server_names_come_from_urls() {
        assert_eq!(
            server_name("https://127.0.0.1:2380"),
            Some(ServerName::try_from("127.0.0.1").unwrap())
        );
        assert_eq!(
            server_name("https://node1.example:2380/"),
            Some(ServerName::try_from("node1.example").unwrap())
        );
        assert_eq!(
            server_name("https://[::1]:2380"),
            Some(ServerName::try_from("::1").unwrap())
        );
    }

    #[test]
    fn a_changed_file_rebuilds_and_a_broken_one_keeps_the_last_good() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("x");
        std::fs::write(&f, "1").unwrap();
        let path = f.clone();
        let r = Reloading::new(vec![f.clone()], move || {
            let t = std::fs::read_to_string(&path).unwrap();
            t.parse::<u32>().map_err(|e| TlsError::Flag {
                flag: "--x",
                why: e.to_string(),
            })
        })
        .unwrap();
        assert_eq!(*r.get().0, 1);
        std::fs::write(&f, "22").unwrap();
        assert_eq!(*r.get().0, 22);
        std::fs::write(&f, "bad").unwrap();
        let (v, e) = r.get();
        assert_eq!(*v, 22);
        assert!(e.is_some());
        // Not retried until the file changes again.
        assert!(r.get().1.is_none());
    }

    #[test]
    fn auto_tls_makes_a_certificate_with_a_common_name() {
        let id = Identity::self_signed("--auto-tls", &["node1".into()]).unwrap();
        assert_eq!(common_name(&id.chain[0]).as_deref(), Some("synod auto-tls"));
        let given = PortFlags {
            auto_tls: true,
            ..PortFlags::default()
        };
        let s = TlsSettings::from_flags(
            CLIENT_FLAGS,
            &given,
            vec!["node1".into()],
            &TlsProtocol::default(),
        )
        .unwrap()
        .unwrap();
        assert!(ServerTls::new(&s).is_ok());
        assert!(PeerTls::new(&s).is_ok());
    }
}
