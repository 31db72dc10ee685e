//! TLS on the client and peer ports (issue 17, items 1 and 4): etcdctl 3.4
//! with `--cacert --cert --key` against synod and against a real etcd 3.4
//! run with the same certificates, step by step; client-certificate auth
//! refusing a client without a certificate; `--auto-tls`; a rotated
//! certificate used by the next connection; the JSON gateway, `/health` and
//! `/metrics` over the client port's TLS; synod's own client with the same
//! flags; a three-member cluster over https peer URLs with mTLS, and
//! strangers on its peer port (plain TCP, a certificate from another CA, no
//! certificate) refused while the cluster carries on.
//!
//! Every certificate is made here with rcgen: no openssl needed.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use synod_proto::etcdserverpb::{PutRequest, RangeRequest};
use synod_server::tls::{TlsProtocol, TlsSettings};
use synod_server::wire::{read_frame, write_frame, Hello, HelloReply, MAGIC, PROTOCOL_VERSION};
use synod_server::RawConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A CA and the certificates it signed, as PEM files in a directory.
struct Ca {
    params: rcgen::CertificateParams,
    key: rcgen::KeyPair,
    dir: PathBuf,
    name: String,
}

/// A certificate's and its key's files.
#[derive(Clone)]
struct Pair {
    cert: PathBuf,
    key: PathBuf,
}

impl Ca {
    fn new(dir: &Path, name: &str) -> Ca {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, format!("{name} CA"));
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        std::fs::write(dir.join(format!("{name}-ca.pem")), cert.pem()).unwrap();
        Ca {
            params,
            key,
            dir: dir.to_path_buf(),
            name: name.to_string(),
        }
    }

    fn ca_file(&self) -> PathBuf {
        self.dir.join(format!("{}-ca.pem", self.name))
    }

    /// A certificate for both server and client use, for 127.0.0.1 and
    /// localhost, with common name `cn`, written as `<file>.pem` and
    /// `<file>-key.pem`.
    fn issue(&self, cn: &str, file: &str) -> Pair {
        self.issue_named(Some(cn), file)
    }

    /// The same with common name `cn`, or none at all.
    fn issue_named(&self, cn: Option<&str>, file: &str) -> Pair {
        let mut params =
            rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
                .unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        match cn {
            Some(cn) => params
                .distinguished_name
                .push(rcgen::DnType::CommonName, cn),
            None => params
                .distinguished_name
                .push(rcgen::DnType::OrganizationName, "synod tests"),
        }
        params.extended_key_usages = vec![
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = rcgen::KeyPair::generate().unwrap();
        let issuer = rcgen::Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(&key, &issuer).unwrap();
        let pair = Pair {
            cert: self.dir.join(format!("{file}.pem")),
            key: self.dir.join(format!("{file}-key.pem")),
        };
        std::fs::write(&pair.cert, cert.pem()).unwrap();
        std::fs::write(&pair.key, key.serialize_pem()).unwrap();
        pair
    }
}

fn settings(pair: Option<&Pair>, ca: Option<&Path>, auth: bool, auto: bool) -> TlsSettings {
    TlsSettings {
        cert_file: pair.map(|p| p.cert.clone()),
        key_file: pair.map(|p| p.key.clone()),
        trusted_ca_file: ca.map(Path::to_path_buf),
        client_cert_auth: auth,
        auto_tls: auto,
        auto_hosts: vec!["127.0.0.1".into()],
        protocol: TlsProtocol::default(),
    }
}

/// What a cluster's TLS is.
struct Tls {
    client: Option<TlsSettings>,
    peer: Option<TlsSettings>,
}

/// `n` members on loopback with https client URLs (when `tls.client`) and
/// https peer URLs (when `tls.peer`), not started.
fn tls_cluster(n: usize, tls: &Tls) -> Cluster {
    let dir = tempfile::tempdir().unwrap();
    let ports = free_ports(2 * n);
    let cs = if tls.client.is_some() {
        "https"
    } else {
        "http"
    };
    let ps = if tls.peer.is_some() { "https" } else { "http" };
    let initial: Vec<String> = (0..n)
        .map(|i| format!("n{}={ps}://127.0.0.1:{}", i + 1, ports[2 * i + 1]))
        .collect();
    let initial = initial.join(",");
    let cfgs = (0..n)
        .map(|i| {
            let name = format!("n{}", i + 1);
            let (c, p) = (ports[2 * i], ports[2 * i + 1]);
            let mut cfg = RawConfig {
                data_dir: dir.path().join(&name),
                name,
                listen_client_urls: format!("{cs}://127.0.0.1:{c}"),
                advertise_client_urls: format!("{cs}://127.0.0.1:{c}"),
                listen_peer_urls: format!("{ps}://127.0.0.1:{p}"),
                initial_advertise_peer_urls: format!("{ps}://127.0.0.1:{p}"),
                initial_cluster: initial.clone(),
                initial_cluster_token: "synod-tls".into(),
                client_tls: synod_server::tls::PortFlags {
                    auto_tls: tls.client.is_some(),
                    ..Default::default()
                },
                peer_tls: synod_server::tls::PortFlags {
                    auto_tls: tls.peer.is_some(),
                    ..Default::default()
                },
                ..RawConfig::default()
            }
            .validate()
            .expect("valid flags");
            // The certificates the test made, in place of the auto ones.
            cfg.client_tls = tls.client.clone();
            cfg.peer_tls = tls.peer.clone();
            cfg.tick = Duration::from_millis(50);
            cfg.wal_segment_bytes = 8 << 20;
            cfg
        })
        .collect();
    Cluster {
        dir,
        cfgs,
        members: (0..n).map(|_| None).collect(),
    }
}

fn boot_all(cl: &mut Cluster) {
    for i in 0..cl.cfgs.len() {
        cl.boot(i);
    }
    cl.wait_leader(Duration::from_secs(15)).expect("a leader");
}

fn https(cl: &Cluster, i: usize) -> String {
    format!("https://{}", cl.endpoint(i))
}

fn tls_args(ca: &Path, pair: Option<&Pair>) -> Vec<String> {
    let mut a = vec![format!("--cacert={}", ca.display())];
    if let Some(p) = pair {
        a.push(format!("--cert={}", p.cert.display()));
        a.push(format!("--key={}", p.key.display()));
    }
    a
}

fn ctl_tls(endpoint: &str, tls: &[String], args: &[&str]) -> Ctl {
    let mut all: Vec<&str> = tls.iter().map(String::as_str).collect();
    all.extend_from_slice(args);
    ctl(endpoint, &all)
}

/// A one-member etcd 3.4 serving clients over https with these flags.
struct EtcdTls {
    _dir: tempfile::TempDir,
    child: std::process::Child,
    endpoint: String,
}

impl Drop for EtcdTls {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn etcd_tls(flags: &[String], probe: &[String]) -> EtcdTls {
    let dir = tempfile::tempdir().unwrap();
    let ports = free_ports(2);
    let client = format!("https://127.0.0.1:{}", ports[0]);
    let peer = format!("http://127.0.0.1:{}", ports[1]);
    let log = std::fs::File::create(dir.path().join("etcd.log")).unwrap();
    let child = Command::new("etcd")
        .args(["--name", "e1", "--data-dir"])
        .arg(dir.path().join("e1"))
        .args(["--listen-client-urls", &client])
        .args(["--advertise-client-urls", &client])
        .args(["--listen-peer-urls", &peer])
        .args(["--initial-advertise-peer-urls", &peer])
        .args(["--initial-cluster", &format!("e1={peer}")])
        .args(["--heartbeat-interval", "50", "--election-timeout", "500"])
        .args(flags)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("etcd runs");
    let e = EtcdTls {
        _dir: dir,
        child,
        endpoint: client,
    };
    let t0 = Instant::now();
    loop {
        let h = ctl_tls(&e.endpoint, probe, &["endpoint", "health"]);
        if h.ok {
            return e;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "etcd with TLS did not become healthy: {h:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// etcdctl against synod and against etcd 3.4, both serving clients over
/// TLS with the same certificates and `--client-cert-auth`: the same
/// answers with a client certificate, and the same refusals without one or
/// with a CA that did not sign the server's.
#[test]
fn etcdctl_over_mtls_matches_etcd_step_by_step() {
    if !have_etcdctl() || !have_etcd() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let ca = Ca::new(d.path(), "main");
    let other = Ca::new(d.path(), "other");
    let server = ca.issue("server", "server");
    let alice = ca.issue("alice", "alice");
    let mallory = other.issue("mallory", "mallory");
    let mut cl = tls_cluster(
        1,
        &Tls {
            client: Some(settings(Some(&server), Some(&ca.ca_file()), true, false)),
            peer: None,
        },
    );
    boot_all(&mut cl);
    let good = tls_args(&ca.ca_file(), Some(&alice));
    let etcd = etcd_tls(
        &[
            format!("--cert-file={}", server.cert.display()),
            format!("--key-file={}", server.key.display()),
            format!("--trusted-ca-file={}", ca.ca_file().display()),
            "--client-cert-auth".into(),
        ],
        &good,
    );
    let ours = https(&cl, 0);
    let steps: &[&[&str]] = &[
        &["put", "k", "v"],
        &["get", "k"],
        &["put", "k2", "v2"],
        &["get", "k", "--prefix", "--keys-only"],
        &["del", "k2"],
        &["get", "k2"],
    ];
    for step in steps {
        let theirs = ctl_tls(&etcd.endpoint, &good, step);
        let mine = ctl_tls(&ours, &good, step);
        assert!(theirs.ok, "etcd: {step:?}: {theirs:?}");
        assert!(mine.ok, "synod: {step:?}: {mine:?}");
        assert_eq!(mine.out, theirs.out, "{step:?}");
    }
    let health = ctl_tls(&ours, &good, &["endpoint", "health"]);
    assert!(health.ok && health.err.contains("is healthy"), "{health:?}");
    // No client certificate: both refuse.
    let no_cert = tls_args(&ca.ca_file(), None);
    for ep in [&etcd.endpoint, &ours] {
        let r = ctl_tls(ep, &no_cert, &["get", "k"]);
        assert!(!r.ok, "{ep} served a client without a certificate: {r:?}");
    }
    // A client certificate from another CA: both refuse.
    let stranger = tls_args(&ca.ca_file(), Some(&mallory));
    for ep in [&etcd.endpoint, &ours] {
        let r = ctl_tls(ep, &stranger, &["get", "k"]);
        assert!(!r.ok, "{ep} served another CA's client: {r:?}");
    }
    // The client does not trust a server its CA did not sign: both fail.
    let wrong_ca = tls_args(&other.ca_file(), Some(&alice));
    for ep in [&etcd.endpoint, &ours] {
        let r = ctl_tls(ep, &wrong_ca, &["get", "k"]);
        assert!(!r.ok, "{ep} was trusted without its CA: {r:?}");
    }
    // Plaintext to the TLS port: both fail.
    for ep in [&etcd.endpoint, &ours] {
        let plain = ep.replace("https://", "http://");
        let r = ctl(&plain, &["get", "k"]);
        assert!(!r.ok, "{ep} answered plaintext: {r:?}");
    }
    // The cluster served on throughout.
    assert_eq!(
        ctl_tls(&ours, &good, &["get", "k", "--print-value-only"]).out,
        "v\n"
    );
}

/// `--auto-tls`: a self-signed certificate; etcdctl reaches it with
/// `--insecure-transport=false --insecure-skip-tls-verify`, and not without
/// the second (nothing it trusts signed it).
#[test]
fn auto_tls_serves_clients_that_skip_verification() {
    if !have_etcdctl() {
        return;
    }
    let mut cl = tls_cluster(
        1,
        &Tls {
            client: Some(settings(None, None, false, true)),
            peer: None,
        },
    );
    boot_all(&mut cl);
    let ep = https(&cl, 0);
    // etcdctl 3.4 speaks TLS without a --cacert/--cert only when told to.
    let skip = [
        "--insecure-transport=false".to_string(),
        "--insecure-skip-tls-verify".to_string(),
    ];
    let r = ctl_tls(&ep, &skip, &["put", "a", "1"]);
    assert!(r.ok, "{r:?}");
    assert_eq!(
        ctl_tls(&ep, &skip, &["get", "a", "--print-value-only"]).out,
        "1\n"
    );
    let verify = ctl(&ep, &["--insecure-transport=false", "get", "a"]);
    assert!(
        !verify.ok,
        "an unverifiable certificate was trusted: {verify:?}"
    );
}

/// A certificate file replaced while the server runs is used by the next
/// connection, without a restart: a client that trusts only the new CA
/// fails before and succeeds after.
#[test]
fn a_rotated_certificate_is_used_by_the_next_connection() {
    if !have_etcdctl() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let old_ca = Ca::new(d.path(), "old");
    let new_ca = Ca::new(d.path(), "new");
    let live = old_ca.issue("server", "live");
    let mut cl = tls_cluster(
        1,
        &Tls {
            client: Some(settings(Some(&live), None, false, false)),
            peer: None,
        },
    );
    boot_all(&mut cl);
    let ep = https(&cl, 0);
    let trusts_old = tls_args(&old_ca.ca_file(), None);
    let trusts_new = tls_args(&new_ca.ca_file(), None);
    assert!(ctl_tls(&ep, &trusts_old, &["put", "r", "1"]).ok);
    assert!(!ctl_tls(&ep, &trusts_new, &["get", "r"]).ok);
    // Rotate: the new CA's certificate and key replace the files.
    let fresh = new_ca.issue("server", "fresh");
    std::fs::copy(&fresh.key, &live.key).unwrap();
    std::fs::copy(&fresh.cert, &live.cert).unwrap();
    let r = ctl_tls(&ep, &trusts_new, &["get", "r", "--print-value-only"]);
    assert!(r.ok, "the rotated certificate was not used: {r:?}");
    assert_eq!(r.out, "1\n");
    assert!(!ctl_tls(&ep, &trusts_old, &["get", "r"]).ok);
    // A broken file keeps the last good certificate.
    std::fs::write(&live.cert, "not a certificate").unwrap();
    assert!(ctl_tls(&ep, &trusts_new, &["get", "r"]).ok);
}

/// A rustls client configuration trusting `ca`, presenting `pair`.
fn client_config(ca: &Path, pair: Option<&Pair>, alpn: &[u8]) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let b =
        rustls::ClientConfig::builder_with_provider(Arc::new(synod_server::tls::ring_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
    let mut cfg = match pair {
        Some(p) => {
            let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&p.cert)
                .unwrap()
                .map(Result::unwrap)
                .collect();
            let key = PrivateKeyDer::from_pem_file(&p.key).unwrap();
            b.with_client_auth_cert(chain, key).unwrap()
        }
        None => b.with_no_client_auth(),
    };
    if !alpn.is_empty() {
        cfg.alpn_protocols = vec![alpn.to_vec()];
    }
    Arc::new(cfg)
}

/// One HTTP/1.1 request over TLS; the whole response.
async fn https_request(
    addr: &str,
    cfg: Arc<rustls::ClientConfig>,
    request: &str,
) -> std::io::Result<String> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let mut s = tokio_rustls::TlsConnector::from(cfg)
        .connect(name, tcp)
        .await?;
    s.write_all(request.as_bytes()).await?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).await?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// The JSON gateway, `/health` and `/metrics` share the client port, and
/// so its TLS: served over https to a client with a certificate, not in
/// plaintext, not to a client without a certificate.
#[test]
fn the_gateway_health_and_metrics_follow_the_client_ports_tls() {
    let d = tempfile::tempdir().unwrap();
    let ca = Ca::new(d.path(), "main");
    let server = ca.issue("server", "server");
    let alice = ca.issue("alice", "alice");
    let mut cl = tls_cluster(
        1,
        &Tls {
            client: Some(settings(Some(&server), Some(&ca.ca_file()), true, false)),
            peer: None,
        },
    );
    boot_all(&mut cl);
    let addr = cl.endpoint(0);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let cfg = client_config(&ca.ca_file(), Some(&alice), b"http/1.1");
        let get = |path: &str| {
            format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        };
        let h = https_request(&addr, cfg.clone(), &get("/health"))
            .await
            .unwrap();
        assert!(h.starts_with("HTTP/1.1 200"), "{h}");
        assert!(h.contains(r#"{"health":"true","reason":""}"#), "{h}");
        let m = https_request(&addr, cfg.clone(), &get("/metrics"))
            .await
            .unwrap();
        assert!(m.contains("synod_server_has_leader 1"), "{m}");
        // The gateway: a put ("a" = "b", base64), then a range.
        let body = r#"{"key":"YQ==","value":"Yg=="}"#;
        let put = format!(
            "POST /v3/kv/put HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let r = https_request(&addr, cfg.clone(), &put).await.unwrap();
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");
        let body = r#"{"key":"YQ=="}"#;
        let range = format!(
            "POST /v3/kv/range HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let r = https_request(&addr, cfg.clone(), &range).await.unwrap();
        assert!(r.contains(r#""value":"Yg==""#), "{r}");
        // Without a client certificate: refused.
        let anon = client_config(&ca.ca_file(), None, b"http/1.1");
        let r = https_request(&addr, anon, &get("/health")).await;
        assert!(
            r.is_err(),
            "a client without a certificate was served: {r:?}"
        );
        // Plaintext HTTP: no answer in HTTP.
        let mut s = TcpStream::connect(&addr).await.unwrap();
        s.write_all(get("/health").as_bytes()).await.unwrap();
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
        assert!(
            !String::from_utf8_lossy(&out).contains("health"),
            "plaintext was answered: {out:?}"
        );
    });
}

/// A gateway call over HTTP/1.1 and TLS, with curl's `Accept: */*`: the
/// status code and the body.
async fn gateway_call(
    addr: &str,
    cfg: Arc<rustls::ClientConfig>,
    path: &str,
    body: &str,
    token: Option<&str>,
) -> (u16, String) {
    let auth = token
        .map(|t| format!("Authorization: {t}\r\n"))
        .unwrap_or_default();
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: */*\r\n\
         Content-Type: application/json\r\n{auth}Content-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    let raw = https_request(addr, cfg, &req).await.unwrap();
    let (head, rest) = raw.split_once("\r\n\r\n").expect("an HTTP response");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    if !chunked {
        return (status, rest.to_string());
    }
    let mut body = String::new();
    let mut rest = rest;
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap();
        if n == 0 {
            break;
        }
        body.push_str(&tail[..n]);
        rest = tail[n..].trim_start_matches("\r\n");
    }
    (status, body)
}

/// A gateway body with what differs between two servers left out: the
/// response header (ids, term) and a token's value.
fn comparable(body: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(mut m)) => {
            m.remove("header");
            if m.contains_key("token") {
                m.insert("token".into(), "<token>".into());
            }
            serde_json::Value::Object(m).to_string()
        }
        _ => body.to_string(),
    }
}

/// With `--client-cert-auth` etcd 3.4's JSON gateway never takes the
/// client certificate's common name as the user: while authentication is
/// on it refuses, with 400 and a text of its own, every `/v3` request whose
/// certificate has a common name, and a certificate without one gets
/// nothing but what an `Authorization` token grants. gRPC meanwhile takes
/// the same common name as the user. synod and etcd 3.4, with the same
/// certificates, users and roles, answer each gateway call alike.
#[test]
fn the_gateway_never_takes_the_common_name_as_the_user_as_etcd() {
    if !have_etcdctl() || !have_etcd() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let ca = Ca::new(d.path(), "main");
    let server = ca.issue("server", "server");
    let alice = ca.issue("alice", "alice");
    let anon = ca.issue_named(None, "anon");
    let mut cl = tls_cluster(
        1,
        &Tls {
            client: Some(settings(Some(&server), Some(&ca.ca_file()), true, false)),
            peer: None,
        },
    );
    boot_all(&mut cl);
    let as_alice = tls_args(&ca.ca_file(), Some(&alice));
    let etcd = etcd_tls(
        &[
            format!("--cert-file={}", server.cert.display()),
            format!("--key-file={}", server.key.display()),
            format!("--trusted-ca-file={}", ca.ca_file().display()),
            "--client-cert-auth".into(),
        ],
        &as_alice,
    );
    let ours = cl.endpoint(0);
    let theirs = etcd.endpoint.trim_start_matches("https://").to_string();
    let named = client_config(&ca.ca_file(), Some(&alice), b"http/1.1");
    let unnamed = client_config(&ca.ca_file(), Some(&anon), b"http/1.1");
    let rt = tokio::runtime::Runtime::new().unwrap();
    // Both sides answer alike; what synod answered.
    let same =
        |cfg: &Arc<rustls::ClientConfig>, path: &str, body: &str, token: [Option<&str>; 2]| {
            let mine = rt.block_on(gateway_call(&ours, cfg.clone(), path, body, token[0]));
            let etcds = rt.block_on(gateway_call(&theirs, cfg.clone(), path, body, token[1]));
            assert_eq!(
                mine.0, etcds.0,
                "{path} {body}: {mine:?} vs etcd's {etcds:?}"
            );
            assert_eq!(comparable(&mine.1), comparable(&etcds.1), "{path} {body}");
            (mine, etcds)
        };
    let a1 = r#"{"key":"YTE="}"#;
    let z1 = r#"{"key":"ejE="}"#;
    // Authentication off: a named certificate is served.
    for body in [
        r#"{"key":"YTE=","value":"MQ=="}"#,
        r#"{"key":"ejE=","value":"Mg=="}"#,
    ] {
        assert_eq!(same(&named, "/v3/kv/put", body, [None, None]).0 .0, 200);
    }
    // Users and roles over gRPC; alice reads the prefix "a" only.
    for ep in [https(&cl, 0), etcd.endpoint.clone()] {
        for step in [
            &["user", "add", "root:rootpw"][..],
            &["role", "add", "root"],
            &["user", "grant-role", "root", "root"],
            &["user", "add", "alice:apw"],
            &["role", "add", "r"],
            &[
                "role",
                "grant-permission",
                "r",
                "read",
                "a",
                "--prefix=true",
            ],
            &["user", "grant-role", "alice", "r"],
            &["auth", "enable"],
        ] {
            let r = ctl_tls(&ep, &as_alice, step);
            assert!(r.ok, "{ep}: {step:?}: {r:?}");
        }
    }
    // gRPC takes the common name as the user: alice's read allowed, the
    // other denied.
    for ep in [https(&cl, 0), etcd.endpoint.clone()] {
        let r = ctl_tls(&ep, &as_alice, &["get", "a1", "--print-value-only"]);
        assert_eq!(r.out, "1\n", "{ep}: {r:?}");
        let r = ctl_tls(&ep, &as_alice, &["get", "z1"]);
        assert!(!r.ok && r.err.contains("permission denied"), "{ep}: {r:?}");
    }
    // The gateway refuses the named certificate, allowed key or not, under
    // both prefixes and on paths it does not serve.
    for (path, body) in [
        ("/v3/kv/range", a1),
        ("/v3/kv/range", z1),
        ("/v3beta/kv/range", a1),
        (
            "/v3/auth/authenticate",
            r#"{"name":"alice","password":"apw"}"#,
        ),
        ("/v3/no/such/route", "{}"),
    ] {
        let ((status, text), _) = same(&named, path, body, [None, None]);
        assert_eq!(status, 400, "{path}");
        assert_eq!(
            text,
            "CommonName of client sending a request against gateway will be ignored and not used \
             as expected\n",
            "{path}"
        );
    }
    // An unnamed certificate without a token is no one.
    let ((status, text), _) = same(&unnamed, "/v3/kv/range", a1, [None, None]);
    assert_eq!(status, 400);
    assert!(text.contains("etcdserver: user name is empty"), "{text}");
    // With alice's token: her prefix readable, the rest and writes denied.
    let ((status, mine), (_, etcds)) = same(
        &unnamed,
        "/v3/auth/authenticate",
        r#"{"name":"alice","password":"apw"}"#,
        [None, None],
    );
    assert_eq!(status, 200);
    let token = |b: &str| {
        let v: serde_json::Value = serde_json::from_str(b).unwrap();
        v["token"].as_str().unwrap().to_string()
    };
    let tokens = [token(&mine), token(&etcds)];
    let t = [Some(tokens[0].as_str()), Some(tokens[1].as_str())];
    let ((status, text), _) = same(&unnamed, "/v3/kv/range", a1, t);
    assert_eq!(status, 200);
    assert!(text.contains(r#""value":"MQ==""#), "{text}");
    for (path, body) in [
        ("/v3/kv/range", z1),
        ("/v3/kv/put", r#"{"key":"YTE=","value":"Mw=="}"#),
    ] {
        let ((status, text), _) = same(&unnamed, path, body, t);
        assert_eq!(status, 403, "{path} {body}");
        assert!(text.contains("etcdserver: permission denied"), "{text}");
    }
    // Outside the gateway a named certificate is served as before.
    let get = "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    for addr in [&ours, &theirs] {
        let h = rt
            .block_on(https_request(addr, named.clone(), get))
            .unwrap();
        assert!(h.starts_with("HTTP/1.1 200"), "{addr}: {h}");
    }
}

/// synod's own client with etcdctl's flags: `--cacert --cert --key`
/// against `--client-cert-auth`, refused without the certificate, and
/// `--insecure-skip-tls-verify` against `--auto-tls`.
#[test]
fn synods_client_speaks_tls_with_etcdctls_flags() {
    use synod_client::tls::TlsOptions;
    use synod_client::{Client, ClientOptions};
    let d = tempfile::tempdir().unwrap();
    let ca = Ca::new(d.path(), "main");
    let server = ca.issue("server", "server");
    let alice = ca.issue("alice", "alice");
    let mut cl = tls_cluster(
        1,
        &Tls {
            client: Some(settings(Some(&server), Some(&ca.ca_file()), true, false)),
            peer: None,
        },
    );
    boot_all(&mut cl);
    let mut auto = tls_cluster(
        1,
        &Tls {
            client: Some(settings(None, None, false, true)),
            peer: None,
        },
    );
    boot_all(&mut auto);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let opts = |tls: TlsOptions| ClientOptions {
            tls: Some(tls),
            dial_timeout: Duration::from_secs(2),
            max_attempts: 1,
            ..ClientOptions::default()
        };
        let full = TlsOptions {
            cacert: Some(ca.ca_file()),
            cert: Some(alice.cert.clone()),
            key: Some(alice.key.clone()),
            insecure_skip_verify: false,
        };
        // A bare HOST:PORT with TLS flags is dialed over TLS, as etcdctl does.
        for ep in [https(&cl, 0), cl.endpoint(0)] {
            let c = Client::connect(std::slice::from_ref(&ep), opts(full.clone()))
                .await
                .unwrap_or_else(|e| panic!("{ep}: {e}"));
            c.put(put(b"k", b"v")).await.unwrap();
            let r = c
                .range(RangeRequest {
                    key: b"k".to_vec(),
                    ..Default::default()
                })
                .await
                .unwrap();
            assert_eq!(r.kvs[0].value, b"v");
        }
        let no_cert = TlsOptions {
            cert: None,
            key: None,
            ..full.clone()
        };
        assert!(
            Client::connect(&[https(&cl, 0)], opts(no_cert))
                .await
                .is_err(),
            "served without a client certificate"
        );
        let skip = TlsOptions {
            insecure_skip_verify: true,
            ..TlsOptions::default()
        };
        let c = Client::connect(&[https(&auto, 0)], opts(skip))
            .await
            .unwrap();
        c.put(put(b"a", b"1")).await.unwrap();
        let verify = TlsOptions {
            cacert: Some(ca.ca_file()),
            ..TlsOptions::default()
        };
        assert!(Client::connect(&[https(&auto, 0)], opts(verify))
            .await
            .is_err());
    });
}

fn put(k: &[u8], v: &[u8]) -> PutRequest {
    PutRequest {
        key: k.to_vec(),
        value: v.to_vec(),
        ..Default::default()
    }
}

/// A file that does not load stops the start, naming the flag and file.
#[test]
fn a_missing_certificate_stops_the_start_with_the_flag_named() {
    let d = tempfile::tempdir().unwrap();
    let missing = Pair {
        cert: d.path().join("nope.pem"),
        key: d.path().join("nope-key.pem"),
    };
    let cl = tls_cluster(
        1,
        &Tls {
            client: Some(settings(Some(&missing), None, false, false)),
            peer: None,
        },
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let e = match rt.block_on(synod_server::start(cl.cfgs[0].clone(), false)) {
        Ok(_) => panic!("started without its certificate"),
        Err(e) => e.to_string(),
    };
    assert!(e.contains("--cert-file") && e.contains("nope.pem"), "{e}");
}

/// Three members over https peer URLs with `--peer-client-cert-auth`: they
/// form, elect and replicate. Then strangers on a peer port are refused —
/// plain TCP with a valid hello, a certificate from another CA, no
/// certificate at all — and the cluster carries on under the same leader.
#[test]
fn a_cluster_over_mtls_peers_forms_and_refuses_strangers() {
    if !have_etcdctl() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let ca = Ca::new(d.path(), "peers");
    let other = Ca::new(d.path(), "other");
    let peer = ca.issue("peer", "peer");
    let rogue = other.issue("peer", "rogue");
    let mut cl = tls_cluster(
        3,
        &Tls {
            client: None,
            peer: Some(settings(Some(&peer), Some(&ca.ca_file()), true, false)),
        },
    );
    boot_all(&mut cl);
    for (i, c) in cl.cfgs.iter().enumerate() {
        assert!(c.peer_listen_tls, "member {i}");
        assert!(c.members.iter().all(|m| m.peer_url.starts_with("https://")));
    }
    let all = cl.endpoints();
    assert_eq!(ctl_ok(&all, &["put", "x", "1"]), "OK\n");
    for i in 0..3 {
        let t0 = Instant::now();
        loop {
            let r = ctl_ok(
                &cl.endpoint(i),
                &["get", "x", "--print-value-only", "--consistency=s"],
            );
            if r == "1\n" {
                break;
            }
            assert!(t0.elapsed() < Duration::from_secs(10), "member {i}: {r:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let members = ctl_ok(&all, &["member", "list"]);
    assert_eq!(
        members.matches("https://127.0.0.1:").count(),
        3,
        "{members}"
    );
    let leader = cl.wait_leader(Duration::from_secs(5)).unwrap();
    let term = cl.running(leader).shared().groups.home().term();
    let target = cl.cfgs[0].peer_addr;
    let hello = Hello {
        magic: MAGIC,
        version: PROTOCOL_VERSION,
        cluster_id: cl.cfgs[0].cluster_id,
        from: cl.id(1),
        to: cl.id(0),
        name: "n2".into(),
        client_urls: cl.cfgs[1].advertise_client_urls.clone(),
        peer_urls: cl.cfgs[1]
            .members
            .iter()
            .map(|m| m.peer_url.clone())
            .collect(),
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        // Plain TCP posing as member n2, with a hello that would pass every
        // check of the plaintext handshake: no welcome.
        let mut s = TcpStream::connect(target).await.unwrap();
        write_frame(&mut s, &hello).await.unwrap();
        let r = tokio::time::timeout(Duration::from_secs(5), read_frame::<HelloReply, _>(&mut s))
            .await
            .expect("the stranger's connection is closed");
        assert!(r.is_err(), "a plaintext stranger got a reply: {r:?}");
        let name = ServerName::try_from("127.0.0.1").unwrap();
        // A certificate from another CA, and none: no welcome either.
        for who in [Some(&rogue), None] {
            let cfg = client_config(&ca.ca_file(), who, b"");
            let tcp = TcpStream::connect(target).await.unwrap();
            let outcome = async {
                let mut s = tokio_rustls::TlsConnector::from(cfg)
                    .connect(name.clone(), tcp)
                    .await?;
                write_frame(&mut s, &hello).await?;
                read_frame::<HelloReply, _>(&mut s)
                    .await
                    .map_err(|e| std::io::Error::other(e.to_string()))
            };
            let r = tokio::time::timeout(Duration::from_secs(5), outcome)
                .await
                .expect("the handshake ends");
            assert!(
                r.is_err(),
                "a peer with {} was answered: {r:?}",
                if who.is_some() {
                    "another CA's certificate"
                } else {
                    "no certificate"
                }
            );
        }
        // The right certificate gets through the handshake (and then the
        // hello's own checks: n2 is already connected, so it is welcomed
        // as a redial).
        let cfg = client_config(&ca.ca_file(), Some(&peer), b"");
        let tcp = TcpStream::connect(target).await.unwrap();
        let mut s = tokio_rustls::TlsConnector::from(cfg)
            .connect(name, tcp)
            .await
            .unwrap();
        write_frame(&mut s, &hello).await.unwrap();
        let r = read_frame::<HelloReply, _>(&mut s).await.unwrap();
        assert!(matches!(r, HelloReply::Welcome { .. }), "{r:?}");
    });
    // The cluster is unaffected: same leader and term, writes go on.
    assert_eq!(ctl_ok(&all, &["put", "x", "2"]), "OK\n");
    assert_eq!(cl.wait_leader(Duration::from_secs(5)), Some(leader));
    assert_eq!(cl.running(leader).shared().groups.home().term(), term);
    assert_eq!(ctl_ok(&all, &["get", "x", "--print-value-only"]), "2\n");
}
