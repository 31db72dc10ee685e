//! `defrag` gives the space of compacted writes back, as on etcd: after
//! writing 3000 values of 2 kB, deleting them and compacting, `etcdctl
//! defrag` shrinks the store file, `endpoint status` shows the smaller DB
//! SIZE, and the member serves and restarts as before. Needs Debian's
//! etcd-client (etcdctl); fails without it.

mod common;

use std::process::{Command, Stdio};

use common::{Cluster, ScratchDir};

fn etcdctl(ep: &str, args: &[&str], stdin: &str) -> String {
    use std::io::Write;
    let mut c = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args(["--endpoints", ep, "--command-timeout", "30s"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("etcdctl runs (.ci/run installs Debian's etcd-client)");
    let mut pipe = c.stdin.take().expect("stdin piped");
    pipe.write_all(stdin.as_bytes()).unwrap();
    drop(pipe);
    let o = c.wait_with_output().unwrap();
    assert!(
        o.status.success(),
        "etcdctl {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

fn db_size(ep: &str) -> u64 {
    let v = json(&etcdctl(ep, &["endpoint", "status", "-w", "json"], ""));
    v[0]["Status"]["dbSize"].as_u64().unwrap()
}

#[test]
fn defrag_shrinks_the_file_after_a_compaction() {
    let scratch = ScratchDir::new("synod-defrag");
    let dir = scratch.0.clone();
    let cluster = Cluster::start_fresh(1, &dir);
    let ep = cluster.endpoints();
    let value = "x".repeat(2000);
    for t in 0..30 {
        let puts: String = (0..100)
            .map(|i| format!("put k{t}/{i} {value}\n"))
            .collect();
        etcdctl(&ep, &["txn"], &format!("\n{puts}\n\n"));
    }
    etcdctl(&ep, &["del", "k", "--prefix"], "");
    let rev = json(&etcdctl(&ep, &["get", "none", "-w", "json"], ""))["header"]["revision"]
        .as_i64()
        .unwrap();
    etcdctl(&ep, &["compact", &rev.to_string()], "");
    let before = db_size(&ep);
    assert!(before > 6_000_000, "3000 values of 2 kB: {before} bytes");
    let out = etcdctl(&ep, &["defrag"], "");
    assert!(out.contains("Finished defragmenting"), "{out}");
    let after = db_size(&ep);
    assert!(
        after < before / 20,
        "DB SIZE {before} bytes before the defrag, {after} after"
    );
    // It serves and restarts as before; the revision carries on.
    etcdctl(&ep, &["put", "after", "defrag"], "");
    let plan = cluster.plan.again();
    drop(cluster);
    let cluster = Cluster::start(plan, &dir).unwrap_or_else(|_| panic!("the member restarts"));
    let ep = cluster.endpoints();
    let got = json(&etcdctl(&ep, &["get", "", "--prefix", "-w", "json"], ""));
    assert_eq!(got["count"], 1, "{got}");
    assert_eq!(got["header"]["revision"].as_i64(), Some(rev + 1), "{got}");
}
