//! A second, independent client: the Python etcd v3 client `aetcd` (gRPC, from
//! PyPI, pinned in tests/python/requirements.txt) runs the put/get, txn,
//! lease, watch and lock scenario of tests/python/scenario.py against a
//! 3-member cluster of real `synod server` processes on loopback ports chosen
//! here. The scenario passes against etcd 3.4 too, so a failure is synod's.
//!
//! Skipped, with a notice, when python3 or aetcd cannot be imported
//! (`pip install -r tests/python/requirements.txt`).

mod common;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::{Cluster, ScratchDir};

const MEMBERS: usize = 3;
/// The whole Python scenario must finish within this (it runs ~2 s).
const SCENARIO_LIMIT: Duration = Duration::from_secs(60);

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

/// Runs one scenario of tests/python/scenario.py against a fresh cluster and
/// fails with the script's output and the members' logs if it fails.
fn check_scenario(which: &str) {
    if !python_client_available() {
        return;
    }
    let dir = ScratchDir::new("synod-pyclient");
    let cluster = Cluster::start_fresh(MEMBERS, &dir.0);
    let t0 = Instant::now();
    let (status, output) = run_scenario(&cluster.endpoints(), which, &dir.0);
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
