//! A real etcd for the client's tests: one member on loopback with
//! test-chosen ports and a temporary data directory, killed on drop. Tests
//! call [`Etcd::start`] and skip (with a notice) when `etcd` is not installed.

#![allow(dead_code)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use synod_client::cli::{ClientCommand, ConnArgs};
use synod_client::{Client, ClientOptions};

/// A running single-member etcd.
pub struct Etcd {
    child: Child,
    _dir: tempfile::TempDir,
    /// `127.0.0.1:PORT` of its client listener.
    pub endpoint: String,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind loopback")
        .local_addr()
        .unwrap()
        .port()
}

fn installed(bin: &str, arg: &str) -> bool {
    Command::new(bin)
        .env("ETCDCTL_API", "3")
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl Etcd {
    /// Starts etcd, or returns None (after a notice) if etcd or etcdctl is missing.
    pub async fn start(test: &str) -> Option<Etcd> {
        Etcd::start_cluster(test, 1).await.map(|mut v| v.remove(0))
    }

    /// Starts an etcd cluster of `n` members (None if etcd is missing).
    pub async fn start_cluster(test: &str, n: usize) -> Option<Vec<Etcd>> {
        if !installed("etcd", "--version") || !installed("etcdctl", "version") {
            eprintln!(
                "SKIP {test}: etcd/etcdctl not installed (apt-get install etcd-server etcd-client)"
            );
            return None;
        }
        let ports: Vec<(u16, u16)> = (0..n).map(|_| (free_port(), free_port())).collect();
        let cluster: Vec<String> = ports
            .iter()
            .enumerate()
            .map(|(i, (_, pp))| format!("t{i}=http://127.0.0.1:{pp}"))
            .collect();
        let cluster = cluster.join(",");
        let mut members = Vec::with_capacity(n);
        for (i, (cp, pp)) in ports.iter().enumerate() {
            let dir = tempfile::tempdir().expect("temp dir");
            let client_url = format!("http://127.0.0.1:{cp}");
            let peer_url = format!("http://127.0.0.1:{pp}");
            let child = Command::new("etcd")
                .args(["--name", &format!("t{i}"), "--data-dir"])
                .arg(dir.path().join("data"))
                .args(["--listen-client-urls", &client_url])
                .args(["--advertise-client-urls", &client_url])
                .args(["--listen-peer-urls", &peer_url])
                .args(["--initial-advertise-peer-urls", &peer_url])
                .args(["--initial-cluster", &cluster])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn etcd");
            members.push(Etcd {
                child,
                _dir: dir,
                endpoint: format!("127.0.0.1:{cp}"),
            });
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        for etcd in &members {
            loop {
                let opts = ClientOptions {
                    dial_timeout: Duration::from_millis(500),
                    ..ClientOptions::default()
                };
                if let Ok(c) = Client::connect(std::slice::from_ref(&etcd.endpoint), opts).await {
                    if c.status_of(0, Duration::from_secs(1))
                        .await
                        .is_ok_and(|s| s.leader != 0)
                    {
                        break;
                    }
                }
                assert!(Instant::now() < deadline, "etcd did not come up in 30 s");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Some(members)
    }

    /// Stops this member (kill) and waits for it to exit.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// A client on this etcd.
    pub async fn client(&self) -> Client {
        Client::connect(
            std::slice::from_ref(&self.endpoint),
            ClientOptions::default(),
        )
        .await
        .expect("connect to etcd")
    }

    /// Runs etcdctl with `args`; returns (exit code, stdout).
    pub fn etcdctl(&self, args: &[&str]) -> (i32, Vec<u8>) {
        self.etcdctl_stdin(args, None)
    }

    /// Runs etcdctl with `args` and `stdin`; returns (exit code, stdout).
    pub fn etcdctl_stdin(&self, args: &[&str], stdin: Option<&str>) -> (i32, Vec<u8>) {
        use std::io::Write;
        let mut child = Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", self.endpoint))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn etcdctl");
        let mut input = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).unwrap();
        }
        drop(input);
        let out = child.wait_with_output().expect("etcdctl output");
        (out.status.code().unwrap_or(-1), out.stdout)
    }

    /// Runs a synod client command in-process; returns (exit code, stdout).
    pub async fn synod(&self, args: &[&str]) -> (u8, Vec<u8>) {
        let argv = ["synod", "--endpoints", &self.endpoint]
            .into_iter()
            .chain(args.iter().copied());
        let cli = TestCli::try_parse_from(argv).unwrap_or_else(|e| panic!("{args:?}: {e}"));
        let mut out = Vec::new();
        match synod_client::cli::execute(&cli.conn, cli.cmd, &mut out).await {
            Ok(code) => (code, out),
            Err(e) => {
                out.extend_from_slice(format!("Error: {e}\n").as_bytes());
                (1, out)
            }
        }
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The top level of `synod` as far as the client commands go.
#[derive(Parser)]
struct TestCli {
    #[command(flatten)]
    conn: ConnArgs,
    #[command(subcommand)]
    cmd: ClientCommand,
}

/// A JSON document with every number set to 0 and every string to "": what
/// is left is its shape (field names, nesting, array lengths).
pub fn shape(v: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::Number(_) => Value::from(0),
        Value::String(_) => Value::from(""),
        Value::Array(a) => Value::Array(a.iter().map(shape).collect()),
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), shape(v))).collect()),
        other => other.clone(),
    }
}

/// Parses output as one JSON document.
pub fn json(out: &[u8]) -> serde_json::Value {
    serde_json::from_slice(out)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(out)))
}

/// Text of output, for assertion messages.
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}
