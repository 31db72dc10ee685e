//! A second, independent client: the Python etcd v3 client `aetcd` (gRPC, from
//! PyPI, pinned in tests/python/requirements.txt) runs the put/get, txn,
//! lease, watch and lock scenario of tests/python/scenario.py against a
//! 3-member cluster of real `synod server` processes on loopback ports chosen
//! here. The scenario passes against etcd 3.4 too, so a failure is synod's.
//!
//! Skipped, with a notice, when python3 or aetcd cannot be imported
//! (`pip install -r tests/python/requirements.txt`).

use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const MEMBERS: usize = 3;
/// A member must report a leader on /health within this.
const HEALTHY_WITHIN: Duration = Duration::from_secs(15);
/// The whole Python scenario must finish within this (it runs ~2 s).
const SCENARIO_LIMIT: Duration = Duration::from_secs(60);
/// Fresh ports are tried this many times when a member cannot bind its own.
const START_TRIES: usize = 3;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn scenario_script() -> PathBuf {
    repo_root().join("tests/python/scenario.py")
}

/// Whether python3 can import aetcd; prints the skip notice when not.
fn python_client_available() -> bool {
    let probe = Command::new("python3")
        .args(["-c", "import aetcd"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output();
    match probe {
        Ok(o) if o.status.success() => true,
        Ok(o) => {
            eprintln!(
                "NOTICE: skipping the Python client test: aetcd is not importable ({}); \
                 install it with `pip install -r tests/python/requirements.txt`",
                String::from_utf8_lossy(&o.stderr)
                    .lines()
                    .last()
                    .unwrap_or("no message")
            );
            false
        }
        Err(e) => {
            eprintln!("NOTICE: skipping the Python client test: python3 does not run ({e})");
            false
        }
    }
}

/// A directory removed when dropped.
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new(tag: &str) -> ScratchDir {
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
fn free_ports(n: usize) -> Vec<u16> {
    let ls: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port"))
        .collect();
    ls.iter()
        .map(|l| l.local_addr().expect("a bound address").port())
        .collect()
}

/// A cluster of `synod server` processes, killed when dropped.
struct Cluster {
    children: Vec<Child>,
    client_ports: Vec<u16>,
    logs: Vec<PathBuf>,
    // Declared last: the directory goes after the processes that use it.
    dir: ScratchDir,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

enum StartError {
    /// A member exited during start-up (most likely a port taken since it was chosen).
    Exited(String),
    /// Every member runs but no leader was reported in time.
    NoLeader(String),
}

impl Cluster {
    fn start(n: usize) -> Result<Cluster, StartError> {
        let dir = ScratchDir::new("synod-pyclient");
        let ports = free_ports(2 * n);
        let peer = |i: usize| format!("http://127.0.0.1:{}", ports[2 * i + 1]);
        let initial = (0..n)
            .map(|i| format!("n{}={}", i + 1, peer(i)))
            .collect::<Vec<_>>()
            .join(",");
        let token = format!(
            "pyclient-{}",
            dir.0.file_name().unwrap_or_default().to_string_lossy()
        );
        let mut cl = Cluster {
            children: Vec::new(),
            client_ports: (0..n).map(|i| ports[2 * i]).collect(),
            logs: Vec::new(),
            dir,
        };
        for i in 0..n {
            let name = format!("n{}", i + 1);
            let client = format!("http://127.0.0.1:{}", cl.client_ports[i]);
            let log_path = cl.dir.0.join(format!("{name}.log"));
            let log = File::create(&log_path).expect("create a member log");
            let child = Command::new(env!("CARGO_BIN_EXE_synod"))
                .arg("server")
                .args(["--name", &name])
                .arg("--data-dir")
                .arg(cl.dir.0.join(&name))
                .args(["--listen-client-urls", &client])
                .args(["--advertise-client-urls", &client])
                .args(["--listen-peer-urls", &peer(i)])
                .args(["--initial-advertise-peer-urls", &peer(i)])
                .args(["--initial-cluster", &initial])
                .args(["--initial-cluster-token", &token])
                .args(["--heartbeat-interval", "50", "--election-timeout", "500"])
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
                *h = *h || has_leader(cl.client_ports[i]);
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

    fn endpoints(&self) -> String {
        self.client_ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Every member's log, for failure messages.
    fn member_logs(&self) -> String {
        let mut out = String::new();
        for p in &self.logs {
            let text = std::fs::read_to_string(p).unwrap_or_else(|e| format!("(unreadable: {e})"));
            out.push_str(&format!("--- {}\n{text}", p.display()));
        }
        out
    }
}

/// etcd's `/health` on the client port says `"health":"true"` once a leader is known.
fn has_leader(port: u16) -> bool {
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

/// Runs the scenario against `endpoints`; its exit status (None if it had to
/// be killed at the limit) and everything it printed.
fn run_scenario(endpoints: &str, which: &str, scratch: &Path) -> (Option<ExitStatus>, String) {
    let out_path = scratch.join(format!("scenario-{which}.out"));
    let out = File::create(&out_path).expect("create the scenario's output file");
    let mut child = Command::new("python3")
        .arg(scenario_script())
        .args(["--endpoints", endpoints, "--scenario", which])
        .env("PYTHONUNBUFFERED", "1")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::from(
            out.try_clone().expect("clone an output handle"),
        ))
        .stderr(Stdio::from(out))
        .spawn()
        .expect("python3 starts");
    let t0 = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break Some(st),
            Ok(None) if t0.elapsed() < SCENARIO_LIMIT => {
                std::thread::sleep(Duration::from_millis(50))
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let text = std::fs::read_to_string(&out_path).unwrap_or_default();
    (status, text)
}

/// A running 3-member cluster, or a panic saying why there is none.
fn start_cluster() -> Cluster {
    let mut failures = Vec::new();
    for _ in 0..START_TRIES {
        match Cluster::start(MEMBERS) {
            Ok(c) => return c,
            Err(StartError::Exited(why)) => failures.push(why),
            Err(StartError::NoLeader(why)) => panic!("the cluster elects no leader:\n{why}"),
        }
    }
    panic!(
        "the cluster did not start in {START_TRIES} tries:\n{}",
        failures.join("\n")
    )
}

/// Runs one scenario of tests/python/scenario.py against a fresh cluster and
/// fails with the script's output and the members' logs if it fails.
fn check_scenario(which: &str) {
    if !python_client_available() {
        return;
    }
    let cluster = start_cluster();
    let t0 = Instant::now();
    let (status, output) = run_scenario(&cluster.endpoints(), which, &cluster.dir.0);
    let took = t0.elapsed();
    match status {
        Some(st) if st.success() => {
            assert!(
                output.lines().any(|l| l.starts_with("PASS")),
                "the scenario exited 0 without its PASS line:\n{output}"
            );
            eprintln!("aetcd scenario {which} passed against synod in {took:.1?}");
        }
        Some(st) if st.code() == Some(3) => {
            eprintln!("NOTICE: skipping: the scenario could not import aetcd:\n{output}");
        }
        Some(st) => panic!(
            "the aetcd scenario {which} failed ({st}) after {took:.1?}:\n{output}\n\
             == synod member logs ==\n{}",
            cluster.member_logs()
        ),
        None => panic!(
            "the aetcd scenario {which} did not finish within {SCENARIO_LIMIT:?}:\n{output}\n\
             == synod member logs ==\n{}",
            cluster.member_logs()
        ),
    }
}

/// put/get (prefix, delete), txn (value/version compares, both branches,
/// nested), lease (grant, attach, time-to-live, keep-alive, revoke, expiry),
/// watch (across connections, prev_kv, history, prefix) and lock (exclusion,
/// hand-over, contention), with the two connections on different members.
#[test]
fn aetcd_scenario_against_a_three_member_cluster() {
    check_scenario("main");
}

/// Read-your-writes through one member, as etcd gives it: a member answers a
/// write only once it has applied it itself. (This found that followers
/// answered forwarded writes on the leader's reply, before applying them; the
/// server now holds such a reply until its own store reaches the revision.)
#[test]
fn aetcd_own_writes_are_visible_on_the_member_that_acknowledged_them() {
    check_scenario("own-writes");
}
