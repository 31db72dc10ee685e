//! A real etcd user on synod: Patroni (PostgreSQL high availability,
//! Debian's `patroni` with `python3-etcd`, over PostgreSQL 15), which talks
//! to etcd through the JSON gateway (`/v3/kv/…`, `/v3/lease/…`,
//! `/v3/watch`). Two Patroni nodes on a three-member synod cluster go
//! through an election, a write on the leader read on the replica, a
//! switchover, and a failover after the leader (Patroni and its PostgreSQL)
//! is killed with SIGKILL; the new leader takes writes. The tools are
//! required: the test fails without them (.ci/run installs them).
//!
//! PostgreSQL refuses to run as root, so as root Patroni runs as the
//! `postgres` user the package creates, in a scratch directory it owns.
//!
//! Patroni's DCS settings are short (ttl 10 s, loop_wait 1 s,
//! retry_timeout 3 s) so a failover, which waits for the dead leader's key
//! to expire with its lease, takes about ten seconds. The ignored test
//! `failover_time_synod_vs_etcd` runs the same harness over one synod
//! member and over one etcd 3.4 member and prints each phase's time.

mod common;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_ports, Cluster, ScratchDir};

/// The longest any one phase may take.
const PHASE: Duration = Duration::from_secs(45);

fn sh(cmd: &str, args: &[&str]) -> (bool, String) {
    match Command::new(cmd).args(args).output() {
        Ok(o) => (
            o.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
        ),
        Err(e) => (false, e.to_string()),
    }
}

/// PostgreSQL's binaries (Debian keeps them per major version).
fn pg_bin() -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|rd| rd.flatten().map(|e| e.path().join("bin")).collect())
        .unwrap_or_default();
    dirs.retain(|d| d.join("postgres").is_file());
    dirs.sort();
    dirs.pop()
        .expect("PostgreSQL is not installed: .ci/run installs Debian's postgresql")
}

fn require_tools() {
    for (tool, arg, package) in [
        ("patroni", "--version", "patroni"),
        ("psql", "--version", "postgresql-client"),
        ("curl", "--version", "curl"),
    ] {
        let (ok, out) = sh(tool, &[arg]);
        assert!(
            ok,
            "{tool} does not run ({out}): .ci/run installs Debian's {package}"
        );
    }
    let (ok, out) = sh("/usr/bin/python3", &["-c", "import etcd"]);
    assert!(
        ok,
        "Patroni's etcd module is missing ({out}): .ci/run installs python3-etcd"
    );
    pg_bin();
}

/// The user Patroni runs as: (uid, gid), `None` to stay who we are.
fn run_as() -> Option<(u32, u32)> {
    let (_, me) = sh("id", &["-u"]);
    if me.trim() != "0" {
        return None;
    }
    let id = |flag: &str| -> u32 {
        let (ok, out) = sh("id", &[flag, "postgres"]);
        assert!(ok, "no postgres user to run PostgreSQL as: {out}");
        out.trim().parse().unwrap()
    };
    Some((id("-u"), id("-g")))
}

/// HTTP status of a GET (0: no answer).
fn http_status(url: &str) -> u16 {
    let (_, out) = sh(
        "curl",
        &[
            "-s",
            "-m",
            "2",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            url,
        ],
    );
    out.trim().parse().unwrap_or(0)
}

fn psql(port: u16, sql: &str) -> (bool, String) {
    sh(
        "psql",
        &[
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-Atc",
            sql,
        ],
    )
}

/// One Patroni node.
struct Node {
    name: String,
    rest: u16,
    pg: u16,
    config: PathBuf,
    data: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl Node {
    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{path}", self.rest)
    }

    fn is(&self, role: &str) -> bool {
        http_status(&self.url(role)) == 200
    }

    /// Kills Patroni and its PostgreSQL with SIGKILL, as a crash would.
    fn crash(&mut self) {
        let postmaster = std::fs::read_to_string(self.data.join("postmaster.pid"))
            .ok()
            .and_then(|s| s.lines().next().map(str::to_owned));
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Some(pid) = postmaster {
            let _ = sh("kill", &["-9", pid.trim()]);
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.crash();
    }
}

struct Patroni {
    dir: PathBuf,
    nodes: Vec<Node>,
    user: Option<(u32, u32)>,
}

impl Patroni {
    fn new(dir: &Path, dcs_hosts: &str) -> Patroni {
        let user = run_as();
        if let Some((uid, gid)) = user {
            let (ok, out) = sh(
                "chown",
                &["-R", &format!("{uid}:{gid}"), dir.to_str().unwrap()],
            );
            assert!(ok, "{out}");
        }
        let ports = free_ports(4);
        let bin = pg_bin();
        let nodes = (0..2)
            .map(|i| {
                let name = format!("pg{}", i + 1);
                let (rest, pg) = (ports[2 * i], ports[2 * i + 1]);
                let data = dir.join(&name);
                let yaml = format!(
                    "scope: synod-patroni
name: {name}
restapi:
  listen: 127.0.0.1:{rest}
  connect_address: 127.0.0.1:{rest}
etcd3:
  hosts: {dcs_hosts}
bootstrap:
  dcs:
    ttl: 10
    loop_wait: 1
    retry_timeout: 3
    maximum_lag_on_failover: 1048576
    postgresql:
      use_pg_rewind: false
      parameters:
        wal_level: replica
        hot_standby: 'on'
        max_wal_senders: 5
        max_replication_slots: 5
  initdb:
  - encoding: UTF8
postgresql:
  listen: 127.0.0.1:{pg}
  connect_address: 127.0.0.1:{pg}
  data_dir: {data}
  bin_dir: {bin}
  pgpass: {dir}/{name}.pgpass
  authentication:
    replication:
      username: replicator
      password: rep
    superuser:
      username: postgres
      password: pw
  pg_hba:
  - local all all trust
  - host all all 127.0.0.1/32 trust
  - host replication all 127.0.0.1/32 trust
  parameters:
    unix_socket_directories: {dir}
",
                    data = data.display(),
                    bin = bin.display(),
                    dir = dir.display()
                );
                let config = dir.join(format!("{name}.yml"));
                std::fs::write(&config, yaml).unwrap();
                Node {
                    log: dir.join(format!("{name}.log")),
                    name,
                    rest,
                    pg,
                    config,
                    data,
                    child: None,
                }
            })
            .collect();
        Patroni {
            dir: dir.to_path_buf(),
            nodes,
            user,
        }
    }

    fn start(&mut self, i: usize) {
        let n = &mut self.nodes[i];
        let mut cmd = Command::new("patroni");
        cmd.arg(&n.config)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&n.log).unwrap());
        if let Some((uid, gid)) = self.user {
            cmd.uid(uid).gid(gid).env("HOME", &self.dir);
        }
        n.child = Some(cmd.spawn().expect("patroni starts"));
    }

    fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(|n| {
                let log = std::fs::read_to_string(&n.log).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(30).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                format!("--- {} ---\n{}\n", n.name, tail.join("\n"))
            })
            .collect()
    }

    /// Waits for `cond`; the time it took.
    fn wait(&self, what: &str, cond: impl Fn(&Patroni) -> bool) -> Duration {
        let t0 = Instant::now();
        while !cond(self) {
            assert!(
                t0.elapsed() < PHASE,
                "{what}: not within {PHASE:?}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        t0.elapsed()
    }
}

/// Seconds each phase took.
struct Phases {
    election: f64,
    replica: f64,
    switchover: f64,
    failover: f64,
}

impl std::fmt::Display for Phases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "election {:.1} s, replica up {:.1} s, switchover {:.1} s, failover {:.1} s",
            self.election, self.replica, self.switchover, self.failover
        )
    }
}

/// The scenario over a DCS at `hosts` (etcd's `host:port,…`).
fn scenario(dir: &Path, hosts: &str) -> Phases {
    let mut p = Patroni::new(dir, hosts);
    // pg1 bootstraps the cluster and leads; pg2 joins as its replica.
    p.start(0);
    let election = p.wait("pg1 leads", |p| p.nodes[0].is("primary"));
    p.start(1);
    let replica = p.wait("pg2 replicates", |p| p.nodes[1].is("replica"));

    // A write on the leader is read on the replica.
    let (ok, out) = psql(
        p.nodes[0].pg,
        "CREATE TABLE t (x int); INSERT INTO t VALUES (42)",
    );
    assert!(ok, "write on the leader: {out}");
    p.wait("the replica reads the write", |p| {
        psql(p.nodes[1].pg, "SELECT x FROM t").1.trim() == "42"
    });

    // Switchover: pg2 leads, pg1 follows it.
    // Patroni answers the request once the switchover is done: timed from
    // before it.
    let t0 = Instant::now();
    let body = r#"{"leader": "pg1", "candidate": "pg2"}"#;
    let (ok, out) = sh(
        "curl",
        &[
            "-s",
            "-m",
            "20",
            "-X",
            "POST",
            "-d",
            body,
            &p.nodes[0].url("switchover"),
        ],
    );
    assert!(ok, "switchover request: {out}\n{}", p.logs());
    p.wait("pg2 leads and takes writes after the switchover", |p| {
        p.nodes[1].is("primary") && psql(p.nodes[1].pg, "INSERT INTO t VALUES (43)").0
    });
    let switchover = t0.elapsed();
    p.wait("pg1 follows pg2", |p| p.nodes[0].is("replica"));
    p.wait("pg1 reads it", |p| {
        psql(p.nodes[0].pg, "SELECT count(*) FROM t").1.trim() == "2"
    });

    // Failover: the leader crashes; pg1 takes over once its key expires,
    // and the failover is over when pg1 takes a write.
    p.nodes[1].crash();
    let failover = p.wait("pg1 takes writes after pg2 was killed", |p| {
        p.nodes[0].is("primary") && psql(p.nodes[0].pg, "INSERT INTO t VALUES (44)").0
    });
    let (_, out) = psql(p.nodes[0].pg, "SELECT count(*) FROM t");
    assert_eq!(out.trim(), "3", "{out}");
    Phases {
        election: election.as_secs_f64(),
        replica: replica.as_secs_f64(),
        switchover: switchover.as_secs_f64(),
        failover: failover.as_secs_f64(),
    }
}

#[test]
fn patroni_elects_replicates_switches_over_and_fails_over_on_synod() {
    require_tools();
    let scratch = ScratchDir::new("synod-patroni");
    let synod_dir = scratch.0.join("synod");
    std::fs::create_dir_all(&synod_dir).unwrap();
    let cluster = Cluster::start_fresh(3, &synod_dir);
    let pg_dir = scratch.0.join("pg");
    std::fs::create_dir_all(&pg_dir).unwrap();
    let phases = scenario(&pg_dir, &cluster.endpoints());
    eprintln!("patroni on 3 synod members: {phases}");
    // The failover waits for the dead leader's 10 s lease; it must not
    // take much longer than that.
    assert!(phases.failover < 25.0, "{phases}");
}

/// A one-member etcd 3.4 (Debian's etcd-server) on fresh ports.
fn etcd(dir: &Path) -> (Child, String) {
    let p = free_ports(2);
    let (c, peer) = (
        format!("http://127.0.0.1:{}", p[0]),
        format!("http://127.0.0.1:{}", p[1]),
    );
    let child = Command::new("etcd")
        .args(["--name", "e1", "--data-dir"])
        .arg(dir.join("e1.etcd"))
        .args(["--listen-client-urls", &c, "--advertise-client-urls", &c])
        .args([
            "--listen-peer-urls",
            &peer,
            "--initial-advertise-peer-urls",
            &peer,
        ])
        .args(["--initial-cluster", &format!("e1={peer}")])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("etcd.log")).unwrap())
        .spawn()
        .expect("etcd starts (Debian's etcd-server)");
    let t0 = Instant::now();
    while http_status(&format!("{c}/health")) != 200 {
        assert!(t0.elapsed() < Duration::from_secs(20), "etcd did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    (child, format!("127.0.0.1:{}", p[0]))
}

/// The same harness over one synod member and one etcd 3.4 member, for
/// the figures in the issue: `cargo test -p synod --test patroni --
/// --ignored --nocapture`.
#[test]
#[ignore]
fn failover_time_synod_vs_etcd() {
    require_tools();
    let scratch = ScratchDir::new("patroni-compare");
    for round in 0..2 {
        let d = scratch.0.join(format!("synod{round}"));
        std::fs::create_dir_all(d.join("s")).unwrap();
        std::fs::create_dir_all(d.join("pg")).unwrap();
        let cluster = Cluster::start_fresh(1, &d.join("s"));
        let phases = scenario(&d.join("pg"), &cluster.endpoints());
        eprintln!("synod, 1 member, round {round}: {phases}");
        drop(cluster);

        let d = scratch.0.join(format!("etcd{round}"));
        std::fs::create_dir_all(d.join("pg")).unwrap();
        let (mut e, ep) = etcd(&d);
        let phases = scenario(&d.join("pg"), &ep);
        eprintln!("etcd 3.4, 1 member, round {round}: {phases}");
        let _ = e.kill();
        let _ = e.wait();
    }
}
