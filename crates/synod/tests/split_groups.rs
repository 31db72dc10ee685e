//! Issue 13, item 3, with real processes: three `synod server` members whose
//! keyspace is split statically into three Raft groups
//! (`--experimental-initial-split-keys g,p`). etcdctl writes and reads keys
//! of every group through any member; a request whose keys lie in several
//! groups is refused whole with InvalidArgument; after every member is
//! killed (SIGKILL) and restarted, every acknowledged key is back; a member
//! down leaves every group writable; and each member keeps one WAL for all
//! groups beside one store file per group.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Cluster, Plan, ScratchDir};

const SPLIT: &str = "g,p";
/// Keys in each of the three groups: [..g), [g..p), [p..).
const PREFIXES: [&str; 3] = ["apple", "kiwi", "zucchini"];
const PER_GROUP: usize = 40;

fn etcdctl(endpoints: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args(["--endpoints", endpoints, "--command-timeout", "10s"])
        .args(args)
        .output()
        .expect("etcdctl runs (CI installs etcd-client)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn ok(endpoints: &str, args: &[&str]) -> String {
    let (good, text) = etcdctl(endpoints, args);
    assert!(good, "etcdctl {args:?} failed: {text}");
    text
}

/// Retries while the cluster settles (an election after a restart).
fn ok_soon(endpoints: &str, args: &[&str]) -> String {
    let t0 = Instant::now();
    loop {
        let (good, text) = etcdctl(endpoints, args);
        if good {
            return text;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "etcdctl {args:?} kept failing: {text}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn key(g: usize, i: usize) -> String {
    format!("{}/{i:03}", PREFIXES[g])
}

fn start(plan: Plan, dir: &Path) -> Cluster {
    match Cluster::start(plan, dir) {
        Ok(c) => c,
        Err(common::StartError::Exited(why) | common::StartError::NoLeader(why)) => {
            panic!("the split cluster did not start:\n{why}")
        }
    }
}

/// Every key of every group reads back its value through member `m`.
fn check_all(cl: &Cluster, m: usize, round: usize) {
    let ep = format!("127.0.0.1:{}", cl.plan.client_ports[m]);
    for (g, prefix) in PREFIXES.iter().enumerate() {
        // A prefix read stays inside its group.
        let out = ok_soon(
            &ep,
            &["get", "--prefix", &format!("{prefix}/"), "--keys-only"],
        );
        let got = out.lines().filter(|l| !l.is_empty()).count();
        assert_eq!(
            got, PER_GROUP,
            "group {g}'s keys through member {m}:\n{out}"
        );
        let v = ok_soon(&ep, &["get", &key(g, 7), "--print-value-only"]);
        assert_eq!(v.trim(), format!("v{round}-{g}-7"));
    }
}

#[test]
fn three_groups_on_three_members_serve_etcdctl_survive_kills_and_refuse_spans() {
    let scratch = ScratchDir::new("synod-split");
    let dir = &scratch.0;
    let mut plan = Plan::new(3, dir);
    plan.extra_args = vec!["--experimental-initial-split-keys".into(), SPLIT.into()];
    let again = plan.again();
    let cl = start(plan, dir);
    let all = cl.endpoints();

    // Writes to every group through every member.
    for g in 0..3 {
        for i in 0..PER_GROUP {
            let ep = format!("127.0.0.1:{}", cl.plan.client_ports[i % 3]);
            ok(&ep, &["put", &key(g, i), &format!("v0-{g}-{i}")]);
        }
    }
    for m in 0..3 {
        check_all(&cl, m, 0);
    }

    // Spanning requests are refused whole, never routed by their first key.
    let (good, text) = etcdctl(&all, &["get", "apple", "zzz"]);
    assert!(!good && text.contains("InvalidArgument"), "{text}");
    let (good, text) = etcdctl(&all, &["del", "--prefix", ""]);
    assert!(!good && text.contains("spans several key ranges"), "{text}");
    let txn = "\nput apple/x 1\nput zucchini/x 1\n\n";
    let mut child = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args(["--endpoints", &all, "txn"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("etcdctl runs");
    std::io::Write::write_all(child.stdin.as_mut().expect("stdin"), txn.as_bytes())
        .expect("write the txn");
    let out = child.wait_with_output().expect("etcdctl txn ends");
    assert!(!out.status.success(), "a txn over two groups was served");
    // Nothing of it was applied.
    for k in ["apple/x", "zucchini/x"] {
        assert_eq!(ok(&all, &["get", k, "--print-value-only"]).trim(), "");
    }

    // A backup of one group would be a partial one: refused.
    let one = format!("127.0.0.1:{}", cl.plan.client_ports[0]);
    let snap = dir.join("split.db");
    let (good, text) = etcdctl(&one, &["snapshot", "save", snap.to_str().unwrap()]);
    assert!(!good && text.contains("several Raft groups"), "{text}");

    // One WAL for every group, one store per group.
    for m in 0..3 {
        let d = cl.plan.data_dir(dir, m);
        let stores: Vec<String> = std::fs::read_dir(d.join("member"))
            .expect("member dir")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".redb"))
            .collect();
        assert_eq!(stores.len(), 3, "member {m} stores: {stores:?}");
        assert!(d.join("wal").is_dir());
    }

    // Every member killed at once, then restarted on the same data.
    drop(cl);
    let cl = start(again.again(), dir);
    for m in 0..3 {
        check_all(&cl, m, 0);
    }

    // One member down: every group still takes writes (two of three).
    let mut cl = cl;
    cl.children[0].kill().expect("kill member 1");
    let _ = cl.children[0].wait();
    let rest = format!(
        "127.0.0.1:{},127.0.0.1:{}",
        cl.plan.client_ports[1], cl.plan.client_ports[2]
    );
    for g in 0..3 {
        for i in 0..PER_GROUP {
            ok_soon(&rest, &["put", &key(g, i), &format!("v1-{g}-{i}")]);
        }
    }
    check_all(&cl, 1, 1);
    check_all(&cl, 2, 1);
    drop(cl);

    // The flags must name the groups the data holds.
    let out = Command::new(env!("CARGO_BIN_EXE_synod"))
        .arg("server")
        .args(["--name", "n1"])
        .arg("--data-dir")
        .arg(dir.join("n1"))
        .args(["--initial-cluster", &again.initial_cluster()])
        .args(["--initial-advertise-peer-urls", &again.peer_url(0)])
        .args(["--listen-peer-urls", &again.peer_url(0)])
        .args(["--listen-client-urls", &again.client_url(0)])
        .output()
        .expect("synod runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("holds group"), "{err}");
}
