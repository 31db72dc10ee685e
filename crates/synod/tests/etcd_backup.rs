//! Backups move both ways between synod and a real etcd, both 3.4
//! (Debian bookworm's etcd-server and etcd-client, on the PATH) and 3.5
//! (Debian trixie's 3.5.16, which `.ci/run` unpacks into
//! `/opt/etcd-3.5/usr/bin`, or the directory `SYNOD_ETCD35_BIN` names; its
//! status and restore go through `etcdutl`, as 3.5 advises). A test fails
//! if its etcd is missing.
//!
//! The same history runs on each side: puts, an overwrite, a lease with a
//! key on it, a delete, a compaction, and three transactions of a hundred
//! puts each (enough keys for a B+tree several pages deep, and sub
//! revisions up to 99). Then:
//! * synod to etcd: `etcdctl snapshot save` and `synod snapshot save`
//!   against synod both give files `etcdctl snapshot status` accepts;
//!   `etcdctl snapshot restore` makes a data dir a real etcd starts from and
//!   serves the same keys (values, create and mod revisions, versions,
//!   leases), the same revision, the same lease with its key, the same
//!   compaction; its next write takes the next revision.
//! * etcd to synod: `synod snapshot status` prints what `etcdctl snapshot
//!   status` prints for etcd's own snapshot; `synod snapshot restore` makes
//!   a data dir synod starts from and serves the same, and so on.
//!
//! Users, roles and authentication travel too, in etcd's `auth`,
//! `authUsers` and `authRoles` buckets: with authentication on, a backup
//! made on one side and restored on the other lists the same users, roles
//! and permissions, takes the same passwords, and allows and refuses the
//! same reads and writes.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{free_ports, synod_ok, Cluster, Plan, ScratchDir};
use serde_json::Value;

/// One etcd release: its server, its etcdctl, and the tool that reads
/// and restores snapshot files (etcdctl in 3.4, etcdutl from 3.5).
struct Release {
    etcd: PathBuf,
    etcdctl: PathBuf,
    etcdutl: Option<PathBuf>,
}

impl Release {
    /// Debian's etcd 3.4 on the PATH.
    fn v34() -> Release {
        let r = Release {
            etcd: "etcd".into(),
            etcdctl: "etcdctl".into(),
            etcdutl: None,
        };
        r.require("3.4.");
        r
    }

    /// etcd 3.5, unpacked where `.ci/run` puts it.
    fn v35() -> Release {
        let dir = std::env::var_os("SYNOD_ETCD35_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/opt/etcd-3.5/usr/bin"));
        let r = Release {
            etcd: dir.join("etcd"),
            etcdctl: dir.join("etcdctl"),
            etcdutl: Some(dir.join("etcdutl")),
        };
        r.require("3.5.");
        r
    }

    /// The server, etcdctl and etcdutl run and are of this release.
    fn require(&self, version: &str) {
        let tools = [(&self.etcd, "--version"), (&self.etcdctl, "version")]
            .into_iter()
            .chain(self.etcdutl.as_ref().map(|u| (u, "version")));
        for (tool, arg) in tools {
            let o = Command::new(tool).arg(arg).output();
            let said = o
                .as_ref()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            assert!(
                said.contains(version),
                "{} does not run as etcd {version}x ({said:?}): this test needs Debian's etcd-server and etcd-client 3.4 and trixie's 3.5 (.ci/run installs them)",
                tool.display()
            );
        }
    }

    /// The tool that reads and restores snapshot files.
    fn snapshot_tool(&self) -> Command {
        match &self.etcdutl {
            Some(u) => Command::new(u),
            None => {
                let mut c = Command::new(&self.etcdctl);
                c.env("ETCDCTL_API", "3");
                c
            }
        }
    }
}

fn etcdctl(r: &Release, ep: &str, args: &[&str], stdin: Option<&str>) -> Output {
    use std::io::Write;
    let mut c = Command::new(&r.etcdctl)
        .env("ETCDCTL_API", "3")
        .args(["--endpoints", ep, "--command-timeout", "10s"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("etcdctl runs");
    let mut pipe = c.stdin.take().expect("stdin piped");
    pipe.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(pipe);
    c.wait_with_output().unwrap()
}

fn etcdctl_ok(r: &Release, ep: &str, args: &[&str]) -> String {
    let o = etcdctl(r, ep, args, None);
    assert!(
        o.status.success(),
        "etcdctl {args:?} against {ep}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

fn json(s: &str) -> Value {
    serde_json::from_str(s.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

/// The history, through etcdctl; the lease id granted.
fn history(r: &Release, ep: &str) -> String {
    etcdctl_ok(r, ep, &["put", "a", "1"]);
    etcdctl_ok(r, ep, &["put", "b", "2"]);
    etcdctl_ok(r, ep, &["put", "a", "3"]);
    let grant = json(&etcdctl_ok(r, ep, &["lease", "grant", "600", "-w", "json"]));
    let lease = format!("{:x}", grant["ID"].as_i64().unwrap());
    etcdctl_ok(r, ep, &["put", "--lease", &lease, "c", "4"]);
    etcdctl_ok(r, ep, &["del", "b"]);
    etcdctl_ok(r, ep, &["compact", "3"]);
    for t in 0..3 {
        let puts: String = (0..100)
            .map(|i| format!("put t{t}/k{i:03} {}\n", "v".repeat(40 + i)))
            .collect();
        let o = etcdctl(r, ep, &["txn"], Some(&format!("\n{puts}\n\n")));
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    etcdctl_ok(r, ep, &["put", "d", "5"]);
    lease
}

/// What a client sees: the revision, every key as `get --prefix` shows
/// it, the lease with its TTL and keys, and whether a read at revision 2
/// is refused as compacted.
fn view(r: &Release, ep: &str, lease: &str) -> Value {
    let all = json(&etcdctl_ok(r, ep, &["get", "", "--prefix", "-w", "json"]));
    let ttl = json(&etcdctl_ok(
        r,
        ep,
        &["lease", "timetolive", lease, "--keys", "-w", "json"],
    ));
    let old = etcdctl(r, ep, &["get", "a", "--rev", "2"], None);
    serde_json::json!({
        "revision": all["header"]["revision"],
        "kvs": all["kvs"],
        "count": all["count"],
        "lease": {"id": ttl["id"], "granted": ttl["grantedTTL"], "keys": ttl["keys"]},
        "rev 2": String::from_utf8_lossy(&old.stderr).contains("required revision has been compacted"),
    })
}

struct Etcd {
    child: Child,
    ep: String,
    log: std::path::PathBuf,
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A one-member etcd on `data_dir` (new, or restored by etcdctl with the
/// same name and peer URL), up when it answers.
fn etcd(r: &Release, dir: &Path, data_dir: &Path, name: &str, ports: (u16, u16)) -> Etcd {
    let c = format!("http://127.0.0.1:{}", ports.0);
    let p = format!("http://127.0.0.1:{}", ports.1);
    let log = dir.join(format!("{name}.log"));
    let child = Command::new(&r.etcd)
        .args(["--name", name, "--data-dir"])
        .arg(data_dir)
        .args(["--listen-client-urls", &c, "--advertise-client-urls", &c])
        .args([
            "--listen-peer-urls",
            &p,
            "--initial-advertise-peer-urls",
            &p,
        ])
        .args(["--initial-cluster", &format!("{name}={p}")])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("etcd starts");
    let e = Etcd {
        child,
        ep: format!("127.0.0.1:{}", ports.0),
        log,
    };
    // Up once it names a leader (`endpoint status`, unlike `endpoint
    // health`, answers without a user when authentication is on).
    let has_leader = || {
        let o = etcdctl(r, &e.ep, &["endpoint", "status", "-w", "json"], None);
        o.status.success()
            && serde_json::from_slice::<Value>(&o.stdout)
                .is_ok_and(|v| v[0]["Status"]["leader"].as_u64().is_some_and(|l| l != 0))
    };
    let t0 = Instant::now();
    while !has_leader() {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "etcd did not start:\n{}",
            std::fs::read_to_string(&e.log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    e
}

/// What the release's `snapshot status -w json` says of `file`: hash,
/// revision, key count and size (etcdutl 3.5 adds the storage version,
/// which synod's file does not record and synod does not print).
fn status(r: &Release, file: &Path) -> Value {
    let o = r
        .snapshot_tool()
        .args(["snapshot", "status", "-w", "json"])
        .arg(file)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "snapshot status {}: {}",
        file.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    let all = json(&String::from_utf8_lossy(&o.stdout));
    let mut out = serde_json::Map::new();
    for f in ["hash", "revision", "totalKey", "totalSize"] {
        assert!(all.get(f).is_some(), "no {f} in {all}");
        out.insert(f.to_string(), all[f].clone());
    }
    Value::Object(out)
}

/// A real etcd started on a data dir its own `snapshot restore` made from
/// `file`.
fn etcd_restored(r: &Release, dir: &Path, file: &Path) -> Etcd {
    let restored = dir.join("e1.etcd");
    let ports = free_ports(2);
    let ports = (ports[0], ports[1]);
    let peer = format!("http://127.0.0.1:{}", ports.1);
    let o = r
        .snapshot_tool()
        .args(["snapshot", "restore"])
        .arg(file)
        .args(["--name", "e1", "--data-dir"])
        .arg(&restored)
        .args(["--initial-cluster", &format!("e1={peer}")])
        .args(["--initial-advertise-peer-urls", &peer])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "snapshot restore: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    etcd(r, dir, &restored, "e1", ports)
}

/// A one-member synod started on a data dir `synod snapshot restore`
/// made from `file`, and what the restore printed.
fn synod_restored(dir: &Path, file: &Path) -> (Cluster, String) {
    let dst = dir.join("dst");
    std::fs::create_dir_all(&dst).unwrap();
    let plan = Plan::new(1, &dst);
    let out = synod_ok(&[
        "snapshot",
        "restore",
        file.to_str().unwrap(),
        "--name",
        &plan.names[0],
        "--data-dir",
        plan.data_dir(&dst, 0).to_str().unwrap(),
        "--initial-cluster",
        &plan.initial_cluster(),
        "--initial-cluster-token",
        &plan.token,
        "--initial-advertise-peer-urls",
        &plan.peer_url(0),
    ]);
    let s = Cluster::start(plan, &dst).unwrap_or_else(|_| panic!("the restored synod starts"));
    (s, out)
}

#[test]
fn a_synod_backup_restores_a_real_etcd() {
    run_a_synod_backup_restores_a_real_etcd(&Release::v34());
}

#[test]
fn a_synod_backup_restores_a_real_etcd_35() {
    run_a_synod_backup_restores_a_real_etcd(&Release::v35());
}

fn run_a_synod_backup_restores_a_real_etcd(r: &Release) {
    let scratch = ScratchDir::new("synod-to-etcd");
    let dir = &scratch.0;
    std::fs::create_dir_all(dir.join("synod")).unwrap();
    let src = Cluster::start_fresh(1, &dir.join("synod"));
    let ep = src.endpoints();
    let lease = history(r, &ep);
    let before = view(r, &ep, &lease);

    let theirs = dir.join("etcdctl.db");
    etcdctl_ok(r, &ep, &["snapshot", "save", theirs.to_str().unwrap()]);
    let ours = dir.join("synod.db");
    synod_ok(&[
        "--endpoints",
        &ep,
        "snapshot",
        "save",
        ours.to_str().unwrap(),
    ]);
    drop(src);
    let (s1, s2) = (status(r, &theirs), status(r, &ours));
    assert_eq!(s1["revision"], before["revision"], "{s1}");
    assert_eq!(s2["revision"], before["revision"], "{s2}");
    // synod's own status agrees with etcdctl's, to the hash.
    let mine = json(&synod_ok(&[
        "snapshot",
        "status",
        ours.to_str().unwrap(),
        "-w",
        "json",
    ]));
    assert_eq!(mine, s2);

    let e = etcd_restored(r, dir, &theirs);
    let after = view(r, &e.ep, &lease);
    assert_eq!(after, before, "etcd restored from synod's backup");
    let put = json(&etcdctl_ok(r, &e.ep, &["put", "after", "x", "-w", "json"]));
    assert_eq!(
        put["header"]["revision"].as_i64(),
        before["revision"].as_i64().map(|r| r + 1)
    );
}

#[test]
fn an_etcd_backup_restores_synod() {
    run_an_etcd_backup_restores_synod(&Release::v34());
}

#[test]
fn an_etcd_backup_restores_synod_35() {
    run_an_etcd_backup_restores_synod(&Release::v35());
}

fn run_an_etcd_backup_restores_synod(r: &Release) {
    let scratch = ScratchDir::new("etcd-to-synod");
    let dir = &scratch.0;
    let ports = free_ports(2);
    let e = etcd(r, dir, &dir.join("src.etcd"), "src", (ports[0], ports[1]));
    let lease = history(r, &e.ep);
    let before = view(r, &e.ep, &lease);
    let file = dir.join("etcd.db");
    etcdctl_ok(r, &e.ep, &["snapshot", "save", file.to_str().unwrap()]);
    drop(e);
    let file_s = file.to_str().unwrap();
    let mine = json(&synod_ok(&["snapshot", "status", file_s, "-w", "json"]));
    assert_eq!(
        mine,
        status(r, &file),
        "synod and etcdctl read etcd's file alike"
    );

    let (s, out) = synod_restored(dir, &file);
    assert!(
        out.starts_with(&format!("restored revision {} into ", before["revision"])),
        "{out}"
    );
    let ep = s.endpoints();
    let after = view(r, &ep, &lease);
    assert_eq!(after, before, "synod restored from etcd's backup");
    let put = json(&etcdctl_ok(r, &ep, &["put", "after", "x", "-w", "json"]));
    assert_eq!(
        put["header"]["revision"].as_i64(),
        before["revision"].as_i64().map(|r| r + 1)
    );
}

/// Users and roles through etcdctl, then authentication on: root (root
/// role), alice (role `app`: read and write under `a`, read of `b`), bob
/// (no role), and keys a1, b and z.
fn auth_setup(r: &Release, ep: &str) {
    for args in [
        &["put", "a1", "1"][..],
        &["put", "b", "2"],
        &["put", "z", "3"],
        &["user", "add", "root:rootpw"],
        &["role", "add", "root"],
        &["user", "grant-role", "root", "root"],
        &["user", "add", "alice:alicepw"],
        &["user", "add", "bob:bobpw"],
        &["role", "add", "app"],
        &[
            "role",
            "grant-permission",
            "app",
            "readwrite",
            "a",
            "--prefix=true",
        ],
        &["role", "grant-permission", "app", "read", "b"],
        &["user", "grant-role", "alice", "app"],
        &["auth", "enable"],
    ] {
        etcdctl_ok(r, ep, args);
    }
}

/// What etcdctl answers, step by step, with authentication on: the users,
/// roles and permissions root lists, and which reads and writes each user
/// (with a right or wrong password, or none) is allowed.
fn auth_view(r: &Release, ep: &str) -> Vec<String> {
    let root = "root:rootpw";
    let alice = "alice:alicepw";
    let steps: &[(Option<&str>, &[&str])] = &[
        (Some(root), &["user", "list"]),
        (Some(root), &["role", "list"]),
        (Some(root), &["user", "get", "root"]),
        (Some(root), &["user", "get", "alice"]),
        (Some(root), &["user", "get", "bob"]),
        (Some(root), &["role", "get", "root"]),
        (Some(root), &["role", "get", "app"]),
        (Some(root), &["get", "z", "--print-value-only"]),
        (Some(alice), &["get", "a1", "--print-value-only"]),
        (Some(alice), &["get", "b", "--print-value-only"]),
        (Some(alice), &["get", "z"]),
        (Some(alice), &["put", "a2", "x"]),
        (Some(alice), &["put", "b", "x"]),
        (Some(alice), &["user", "list"]),
        (Some("alice:wrong"), &["get", "a1"]),
        (Some("bob:bobpw"), &["get", "a1"]),
        (None, &["get", "a1"]),
    ];
    steps
        .iter()
        .map(|(user, args)| {
            let mut all: Vec<&str> = Vec::new();
            if let Some(u) = user {
                all.extend(["--user", u]);
            }
            all.extend_from_slice(args);
            let o = etcdctl(r, ep, &all, None);
            let said = if o.status.success() {
                String::from_utf8_lossy(&o.stdout).into_owned()
            } else {
                // etcdctl's own line, not its client's timestamped logs.
                String::from_utf8_lossy(&o.stderr)
                    .lines()
                    .filter(|l| l.starts_with("Error:"))
                    .collect::<Vec<_>>()
                    .join("\n")
            };
            format!("{user:?} {args:?}: {} {said}", o.status.success())
        })
        .collect()
}

#[test]
fn users_roles_and_authentication_travel_from_synod_to_etcd() {
    run_users_roles_and_authentication_travel_from_synod_to_etcd(&Release::v34());
}

#[test]
fn users_roles_and_authentication_travel_from_synod_to_etcd_35() {
    run_users_roles_and_authentication_travel_from_synod_to_etcd(&Release::v35());
}

fn run_users_roles_and_authentication_travel_from_synod_to_etcd(r: &Release) {
    let scratch = ScratchDir::new("synod-auth-to-etcd");
    let dir = &scratch.0;
    std::fs::create_dir_all(dir.join("synod")).unwrap();
    let src = Cluster::start_fresh(1, &dir.join("synod"));
    let ep = src.endpoints();
    auth_setup(r, &ep);
    let before = auth_view(r, &ep);
    let file = dir.join("synod.db");
    etcdctl_ok(
        r,
        &ep,
        &[
            "--user",
            "root:rootpw",
            "snapshot",
            "save",
            file.to_str().unwrap(),
        ],
    );
    drop(src);
    let e = etcd_restored(r, dir, &file);
    let after = auth_view(r, &e.ep);
    assert_eq!(after, before, "etcd restored from synod's backup");
    // The picture is the one expected, not just the same twice.
    let joined = after.join("\n");
    for want in [
        r#"["user", "list"]: true alice
bob
root"#,
        r#"Some("alice:alicepw") ["get", "z"]: false Error: etcdserver: permission denied"#,
        r#"Some("alice:alicepw") ["put", "a2", "x"]: true OK"#,
        r#"Some("alice:wrong") ["get", "a1"]: false Error: etcdserver: authentication failed"#,
        r#"None ["get", "a1"]: false Error: etcdserver: user name is empty"#,
    ] {
        assert!(joined.contains(want), "{want} not in:\n{joined}");
    }
}

#[test]
fn users_roles_and_authentication_travel_from_etcd_to_synod() {
    run_users_roles_and_authentication_travel_from_etcd_to_synod(&Release::v34());
}

#[test]
fn users_roles_and_authentication_travel_from_etcd_to_synod_35() {
    run_users_roles_and_authentication_travel_from_etcd_to_synod(&Release::v35());
}

fn run_users_roles_and_authentication_travel_from_etcd_to_synod(r: &Release) {
    let scratch = ScratchDir::new("etcd-auth-to-synod");
    let dir = &scratch.0;
    let ports = free_ports(2);
    let e = etcd(r, dir, &dir.join("src.etcd"), "src", (ports[0], ports[1]));
    auth_setup(r, &e.ep);
    let before = auth_view(r, &e.ep);
    let file = dir.join("etcd.db");
    etcdctl_ok(
        r,
        &e.ep,
        &[
            "--user",
            "root:rootpw",
            "snapshot",
            "save",
            file.to_str().unwrap(),
        ],
    );
    drop(e);
    let (s, out) = synod_restored(dir, &file);
    assert!(!out.contains("not carried over"), "{out}");
    let after = auth_view(r, &s.endpoints());
    assert_eq!(after, before, "synod restored from etcd's backup");
}
