//! A cluster of real `synod server` processes on loopback ports chosen here,
//! for the binary's end-to-end tests: planned first (ports, names, data
//! dirs, so a test can prepare data dirs), then started and waited on until
//! every member reports a leader on /health. Killed when dropped.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A member must report a leader on /health within this.
pub const HEALTHY_WITHIN: Duration = Duration::from_secs(15);
/// Fresh ports are tried this many times when a member cannot bind its own.
pub const START_TRIES: usize = 3;

/// A directory removed when dropped.
pub struct ScratchDir(pub PathBuf);

impl ScratchDir {
    pub fn new(tag: &str) -> ScratchDir {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let p = std::env::temp_dir().join(format!("{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&p).expect("create a scratch directory");
        ScratchDir(p)
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Ports nobody is using right now (bound to port 0, then released).
pub fn free_ports(n: usize) -> Vec<u16> {
    let ls: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port"))
        .collect();
    ls.iter()
        .map(|l| l.local_addr().expect("a bound address").port())
        .collect()
}

/// Where each member of a cluster-to-be will live.
pub struct Plan {
    pub names: Vec<String>,
    pub client_ports: Vec<u16>,
    pub peer_ports: Vec<u16>,
    pub token: String,
    /// More flags for every member.
    pub extra_args: Vec<String>,
}

impl Plan {
    /// `n` members named n1, n2, … with fresh ports and a token unique to `dir`.
    pub fn new(n: usize, dir: &Path) -> Plan {
        let ports = free_ports(2 * n);
        Plan {
            names: (0..n).map(|i| format!("n{}", i + 1)).collect(),
            client_ports: (0..n).map(|i| ports[2 * i]).collect(),
            peer_ports: (0..n).map(|i| ports[2 * i + 1]).collect(),
            token: format!(
                "test-{}",
                dir.file_name().unwrap_or_default().to_string_lossy()
            ),
            extra_args: Vec::new(),
        }
    }

    /// The same members on the same ports (to restart them).
    pub fn again(&self) -> Plan {
        Plan {
            names: self.names.clone(),
            client_ports: self.client_ports.clone(),
            peer_ports: self.peer_ports.clone(),
            token: self.token.clone(),
            extra_args: self.extra_args.clone(),
        }
    }

    pub fn peer_url(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.peer_ports[i])
    }

    pub fn client_url(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.client_ports[i])
    }

    /// `--initial-cluster`.
    pub fn initial_cluster(&self) -> String {
        (0..self.names.len())
            .map(|i| format!("{}={}", self.names[i], self.peer_url(i)))
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn data_dir(&self, dir: &Path, i: usize) -> PathBuf {
        dir.join(&self.names[i])
    }

    pub fn endpoints(&self) -> String {
        self.client_ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// A running cluster of `synod server` processes, killed when dropped.
pub struct Cluster {
    pub children: Vec<Child>,
    pub plan: Plan,
    pub logs: Vec<PathBuf>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub enum StartError {
    /// A member exited during start-up (most likely a port taken since it was chosen).
    Exited(String),
    /// Every member runs but no leader was reported in time.
    NoLeader(String),
}

impl Cluster {
    /// Starts every member of `plan` with its data dir under `dir`.
    pub fn start(plan: Plan, dir: &Path) -> Result<Cluster, StartError> {
        let n = plan.names.len();
        let initial = plan.initial_cluster();
        let mut cl = Cluster {
            children: Vec::new(),
            logs: Vec::new(),
            plan,
        };
        for i in 0..n {
            let p = &cl.plan;
            let name = &p.names[i];
            let log_path = dir.join(format!("{name}.log"));
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log_path)
                .expect("create a member log");
            let child = Command::new(env!("CARGO_BIN_EXE_synod"))
                .arg("server")
                .args(["--name", name])
                .arg("--data-dir")
                .arg(p.data_dir(dir, i))
                .args(["--listen-client-urls", &p.client_url(i)])
                .args(["--advertise-client-urls", &p.client_url(i)])
                .args(["--listen-peer-urls", &p.peer_url(i)])
                .args(["--initial-advertise-peer-urls", &p.peer_url(i)])
                .args(["--initial-cluster", &initial])
                .args(["--initial-cluster-token", &p.token])
                .args(["--heartbeat-interval", "50", "--election-timeout", "500"])
                .args(&p.extra_args)
                .stdin(Stdio::null())
                .stdout(Stdio::from(log.try_clone().expect("clone a log handle")))
                .stderr(Stdio::from(log))
                .spawn()
                .expect("the synod binary starts");
            cl.children.push(child);
            cl.logs.push(log_path);
        }
        let t0 = Instant::now();
        let mut healthy = vec![false; n];
        while t0.elapsed() < HEALTHY_WITHIN {
            for (i, c) in cl.children.iter_mut().enumerate() {
                if let Ok(Some(st)) = c.try_wait() {
                    return Err(StartError::Exited(format!(
                        "member n{} exited with {st}\n{}",
                        i + 1,
                        cl.member_logs()
                    )));
                }
            }
            for (i, h) in healthy.iter_mut().enumerate() {
                *h = *h || has_leader(cl.plan.client_ports[i]);
            }
            if healthy.iter().all(|&h| h) {
                return Ok(cl);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(StartError::NoLeader(format!(
            "members reporting a leader on /health after {HEALTHY_WITHIN:?}: {healthy:?}\n{}",
            cl.member_logs()
        )))
    }

    /// A fresh `n`-member cluster under `dir`, retried on fresh ports when a
    /// member could not bind; panics saying why there is none.
    pub fn start_fresh(n: usize, dir: &Path) -> Cluster {
        let mut failures = Vec::new();
        for _ in 0..START_TRIES {
            match Cluster::start(Plan::new(n, dir), dir) {
                Ok(c) => return c,
                Err(StartError::Exited(why)) => failures.push(why),
                Err(StartError::NoLeader(why)) => panic!("the cluster elects no leader:\n{why}"),
            }
            // A member that failed may have left a data dir behind.
            for i in 0..n {
                let _ = std::fs::remove_dir_all(dir.join(format!("n{}", i + 1)));
            }
        }
        panic!(
            "the cluster did not start in {START_TRIES} tries:\n{}",
            failures.join("\n")
        )
    }

    pub fn endpoints(&self) -> String {
        self.plan.endpoints()
    }

    /// Every member's log, for failure messages.
    pub fn member_logs(&self) -> String {
        let mut out = String::new();
        for p in &self.logs {
            let text = std::fs::read_to_string(p).unwrap_or_else(|e| format!("(unreadable: {e})"));
            out.push_str(&format!("--- {}\n{text}", p.display()));
        }
        out
    }
}

/// etcd's `/health` on the client port says `"health":"true"` once a leader is known.
pub fn has_leader(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(2)));
    let req = "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut resp = Vec::new();
    let _ = s.take(64 * 1024).read_to_end(&mut resp);
    let resp = String::from_utf8_lossy(&resp);
    resp.starts_with("HTTP/1.1 200") && resp.contains(r#""health":"true""#)
}

/// Runs the synod binary with `args`; its output.
pub fn synod(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_synod"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("the synod binary runs")
}

/// Runs the synod binary and returns its stdout, panicking with stderr on failure.
pub fn synod_ok(args: &[&str]) -> String {
    let o = synod(args);
    assert!(
        o.status.success(),
        "synod {args:?} failed ({}):\n{}{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).expect("UTF-8 output")
}
