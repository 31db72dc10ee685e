//! A real cluster on 127.0.0.1 for tests: every member on its own tokio
//! runtime (so a member can be killed by dropping its runtime), test-chosen
//! ephemeral ports, data in a temporary directory; and `etcdctl` runs.

#![allow(dead_code)]

use std::net::TcpListener;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use synod_server::cli::local_cluster;
use synod_server::{start, Running, ServerConfig};

/// Ports nobody is using right now (bound then released).
pub fn free_ports(n: usize) -> Vec<u16> {
    let ls: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port"))
        .collect();
    ls.iter().map(|l| l.local_addr().unwrap().port()).collect()
}

/// One member: its runtime and the running server.
pub struct Member {
    pub rt: tokio::runtime::Runtime,
    pub running: Option<Running>,
}

pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub cfgs: Vec<ServerConfig>,
    pub members: Vec<Option<Member>>,
}

fn verbose() -> bool {
    std::env::var_os("SYNOD_TEST_LOG").is_some()
}

impl Cluster {
    /// Starts `n` members with small timings (tick 50 ms, election 10 ticks).
    pub fn start(n: usize) -> Cluster {
        Cluster::start_with(n, |_| {})
    }

    /// The configurations and slots of `n` members, none running yet.
    fn start_stopped(n: usize) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let ports = free_ports(2 * n);
        let pairs: Vec<(u16, u16)> = (0..n).map(|i| (ports[2 * i], ports[2 * i + 1])).collect();
        let mut cfgs = local_cluster(dir.path(), &pairs, "synod-test");
        for c in &mut cfgs {
            c.tick = Duration::from_millis(50);
            c.wal_segment_bytes = 8 << 20;
            c.snapshot_every = 200;
        }
        Cluster {
            dir,
            cfgs,
            members: (0..n).map(|_| None).collect(),
        }
    }

    /// Starts (or restarts) member `i` from its data dir.
    pub fn boot(&mut self, i: usize) {
        assert!(self.members[i].is_none(), "member {i} is running");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let cfg = self.cfgs[i].clone();
        let running = rt.block_on(async {
            // The port may linger briefly after a kill: retry the bind.
            let t0 = Instant::now();
            loop {
                match start(cfg.clone(), verbose()).await {
                    Ok(r) => return r,
                    Err(e) if t0.elapsed() < Duration::from_secs(5) => {
                        eprintln!("retrying start of member {i}: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    Err(e) => panic!("member {i} does not start: {e}"),
                }
            }
        });
        self.members[i] = Some(Member {
            rt,
            running: Some(running),
        });
    }

    /// Kills member `i` at once: its runtime is dropped, tasks abandoned mid-flight.
    pub fn kill(&mut self, i: usize) {
        let m = self.members[i].take().expect("member is running");
        drop(m.running);
        m.rt.shutdown_background();
        // Let the disk thread finish the write it was doing.
        std::thread::sleep(Duration::from_millis(100));
    }

    /// Stops member `i` cleanly.
    pub fn stop(&mut self, i: usize) {
        let mut m = self.members[i].take().expect("member is running");
        let r = m.running.take().unwrap();
        m.rt.block_on(r.stop()).unwrap();
        m.rt.shutdown_timeout(Duration::from_secs(2));
    }

    pub fn endpoint(&self, i: usize) -> String {
        self.cfgs[i].client_addr.to_string()
    }

    /// Every member's endpoint, comma-separated.
    pub fn endpoints(&self) -> String {
        (0..self.cfgs.len())
            .map(|i| self.endpoint(i))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Endpoints of the running members.
    pub fn live_endpoints(&self) -> String {
        (0..self.cfgs.len())
            .filter(|&i| self.members[i].is_some())
            .map(|i| self.endpoint(i))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The member id of member `i`.
    pub fn id(&self, i: usize) -> u64 {
        self.cfgs[i].id
    }

    /// The leader all running members agree on, waiting up to `limit`.
    pub fn wait_leader(&self, limit: Duration) -> Option<usize> {
        let t0 = Instant::now();
        while t0.elapsed() < limit {
            let seen: Vec<u64> = self
                .members
                .iter()
                .flatten()
                .map(|m| m.running.as_ref().unwrap().shared().groups.home().leader())
                .collect();
            if let Some(&l) = seen.first() {
                if l != 0 && seen.iter().all(|&x| x == l) {
                    if let Some(i) = self.cfgs.iter().position(|c| c.id == l) {
                        if self.members[i].is_some() {
                            return Some(i);
                        }
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Cluster {
    /// Starts a member added at runtime, as etcdctl's `member add` tells
    /// one to: `--initial-cluster-state existing` and the printed
    /// `--initial-cluster`, data in a fresh directory. Returns its index.
    pub fn join(&mut self, name: &str, ports: (u16, u16), initial_cluster: &str) -> usize {
        let (c, p) = ports;
        let mut cfg = synod_server::RawConfig {
            name: name.to_string(),
            data_dir: self.dir.path().join(name),
            listen_client_urls: format!("http://127.0.0.1:{c}"),
            advertise_client_urls: format!("http://127.0.0.1:{c}"),
            listen_peer_urls: format!("http://127.0.0.1:{p}"),
            initial_advertise_peer_urls: format!("http://127.0.0.1:{p}"),
            initial_cluster: initial_cluster.to_string(),
            initial_cluster_state: "existing".into(),
            initial_cluster_token: "synod-test".into(),
            ..synod_server::RawConfig::default()
        }
        .validate()
        .expect("the joining member's flags are valid");
        cfg.tick = Duration::from_millis(50);
        cfg.wal_segment_bytes = 8 << 20;
        cfg.snapshot_every = 200;
        self.cfgs.push(cfg);
        self.members.push(None);
        let i = self.cfgs.len() - 1;
        self.boot(i);
        // The member learned its id and the cluster's from its peers.
        let s = self.members[i]
            .as_ref()
            .unwrap()
            .running
            .as_ref()
            .unwrap()
            .shared();
        self.cfgs[i].id = s.cfg.id;
        self.cfgs[i].cluster_id = s.cfg.cluster_id;
        i
    }

    /// The running server of member `i`.
    pub fn running(&self, i: usize) -> &Running {
        self.members[i]
            .as_ref()
            .expect("member is running")
            .running
            .as_ref()
            .unwrap()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for m in self.members.iter_mut() {
            if let Some(m) = m.take() {
                drop(m.running);
                m.rt.shutdown_background();
            }
        }
    }
}

/// Whether `tool arg` runs and succeeds; prints a notice naming the Debian
/// package to install when not. Under CI (`CI` set, as `.ci/run` runs),
/// which installs every such tool, a missing one fails the test instead of
/// skipping it.
pub fn have(tool: &str, arg: &str, package: &str) -> bool {
    let ok = Command::new(tool)
        .arg(arg)
        .env("ETCDCTL_API", "3")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "{tool} does not run, and CI must run this test: .ci/run installs Debian's {package}"
        );
        eprintln!("NOTICE: {tool} not found; skipping (install Debian's {package})");
    }
    ok
}

/// Whether etcdctl is installed; prints a notice when not.
pub fn have_etcdctl() -> bool {
    have("etcdctl", "version", "etcd-client")
}

/// Result of one etcdctl run.
pub struct Ctl {
    pub ok: bool,
    pub out: String,
    pub err: String,
}

impl std::fmt::Debug for Ctl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ok={} out={:?} err={:?}", self.ok, self.out, self.err)
    }
}

/// Runs etcdctl against `endpoints` with a command timeout.
pub fn ctl(endpoints: &str, args: &[&str]) -> Ctl {
    ctl_stdin(endpoints, args, None)
}

/// Runs etcdctl, feeding `stdin` if given.
pub fn ctl_stdin(endpoints: &str, args: &[&str], stdin: Option<&str>) -> Ctl {
    use std::io::Write;
    let mut cmd = Command::new("etcdctl");
    cmd.env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoints}"))
        .arg("--command-timeout=10s")
        .arg("--dial-timeout=3s")
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("etcdctl runs");
    if let Some(s) = stdin {
        child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
    }
    let o: Output = child.wait_with_output().unwrap();
    Ctl {
        ok: o.status.success(),
        out: String::from_utf8_lossy(&o.stdout).into_owned(),
        err: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// Runs etcdctl and insists it succeeds; returns stdout.
pub fn ctl_ok(endpoints: &str, args: &[&str]) -> String {
    let r = ctl(endpoints, args);
    assert!(r.ok, "etcdctl {args:?} failed: {r:?}");
    r.out
}

/// A long-running etcdctl (watch, lock, elect) whose stdout lines arrive on a channel.
pub struct Spawned {
    pub child: std::process::Child,
    pub lines: std::sync::mpsc::Receiver<String>,
    /// Its stderr lines, as they arrive.
    pub errs: std::sync::mpsc::Receiver<String>,
}

/// Starts etcdctl in the background.
pub fn spawn_ctl(endpoints: &str, args: &[&str]) -> Spawned {
    use std::io::BufRead;
    let mut child = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoints}"))
        .arg("--dial-timeout=3s")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("etcdctl runs");
    let (tx, rx) = std::sync::mpsc::channel();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines() {
            let Ok(l) = line else { return };
            if tx.send(l).is_err() {
                return;
            }
        }
    });
    let err = child.stderr.take().unwrap();
    let (etx, erx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(err).lines() {
            let Ok(l) = line else { return };
            eprintln!("etcdctl stderr: {l}");
            let _ = etx.send(l);
        }
    });
    Spawned {
        child,
        lines: rx,
        errs: erx,
    }
}

impl Spawned {
    /// The next `n` lines, or panics after `limit`.
    pub fn take(&self, n: usize, limit: Duration) -> Vec<String> {
        let t0 = Instant::now();
        let mut got = Vec::new();
        while got.len() < n {
            let left = limit.saturating_sub(t0.elapsed());
            match self.lines.recv_timeout(left) {
                Ok(l) => got.push(l),
                Err(_) => panic!("wanted {n} lines, got {got:?}"),
            }
        }
        got
    }

    /// Up to `n` lines, waiting at most `limit` in all (fewer on time-out).
    pub fn take_upto(&self, n: usize, limit: Duration) -> Vec<String> {
        let t0 = Instant::now();
        let mut got = Vec::new();
        while got.len() < n {
            match self.lines.recv_timeout(limit.saturating_sub(t0.elapsed())) {
                Ok(l) => got.push(l),
                Err(_) => break,
            }
        }
        got
    }

    /// Waits up to `limit` for the process to exit on its own; then its
    /// exit code (None: still running, or killed by a signal).
    pub fn exit_within(&mut self, limit: Duration) -> Option<i32> {
        let t0 = Instant::now();
        while t0.elapsed() < limit {
            if let Ok(Some(s)) = self.child.try_wait() {
                return s.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Lines until none arrives for `idle` (at most 10 000).
    pub fn drain_for_idle(&self, idle: Duration) -> Vec<String> {
        let mut got = Vec::new();
        while got.len() < 10_000 {
            match self.lines.recv_timeout(idle) {
                Ok(l) => got.push(l),
                Err(_) => break,
            }
        }
        got
    }

    /// Lines that arrive within `wait` (none expected, usually).
    pub fn drain_for(&self, wait: Duration) -> Vec<String> {
        let t0 = Instant::now();
        let mut got = Vec::new();
        while let Ok(l) = self.lines.recv_timeout(wait.saturating_sub(t0.elapsed())) {
            got.push(l);
        }
        got
    }

    /// Sends SIGINT (etcdctl then closes its session and revokes its lease).
    pub fn interrupt(&mut self) {
        let _ = Command::new("kill")
            .arg("-INT")
            .arg(self.child.id().to_string())
            .status();
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether the `etcd` server binary is installed; prints a notice when not.
pub fn have_etcd() -> bool {
    have("etcd", "--version", "etcd-server")
}

/// A real etcd cluster (Debian's etcd-server, 3.4) on loopback ephemeral
/// ports: members named n1, n2, … like [`Cluster`]'s, data in a temporary
/// directory, every process killed on drop.
pub struct Etcd3 {
    pub dir: tempfile::TempDir,
    children: Vec<std::process::Child>,
    /// Client addresses (`127.0.0.1:port`), by member.
    pub clients: Vec<String>,
    /// Peer URLs (`http://127.0.0.1:port`), by member.
    pub peers: Vec<String>,
}

impl Etcd3 {
    /// Starts `n` members with the timings [`Cluster`] uses (heartbeat
    /// 50 ms, election 500 ms) and waits until every member is healthy.
    pub fn start(n: usize) -> Etcd3 {
        Etcd3::start_with_args(n, &[])
    }

    /// Like [`Etcd3::start`], with `extra` flags for every member.
    pub fn start_with_args(n: usize, extra: &[&str]) -> Etcd3 {
        let dir = tempfile::tempdir().unwrap();
        let ports = free_ports(2 * n);
        let clients: Vec<String> = (0..n)
            .map(|i| format!("127.0.0.1:{}", ports[2 * i]))
            .collect();
        let peers: Vec<String> = (0..n)
            .map(|i| format!("http://127.0.0.1:{}", ports[2 * i + 1]))
            .collect();
        let initial: Vec<String> = peers
            .iter()
            .enumerate()
            .map(|(i, p)| format!("n{}={p}", i + 1))
            .collect();
        let initial = initial.join(",");
        let mut e = Etcd3 {
            dir,
            children: Vec::new(),
            clients,
            peers,
        };
        for i in 0..n {
            let name = format!("n{}", i + 1);
            let client = format!("http://{}", e.clients[i]);
            let log = std::fs::File::create(e.dir.path().join(format!("{name}.log")))
                .expect("create etcd's log file");
            let child = Command::new("etcd")
                .args(["--name", &name, "--data-dir"])
                .arg(e.dir.path().join(&name))
                .args(["--listen-client-urls", &client])
                .args(["--advertise-client-urls", &client])
                .args(["--listen-peer-urls", &e.peers[i]])
                .args(["--initial-advertise-peer-urls", &e.peers[i]])
                .args(["--initial-cluster", &initial])
                .args(["--initial-cluster-token", "etcd-test"])
                .args(["--heartbeat-interval", "50", "--election-timeout", "500"])
                .args(extra)
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("etcd runs");
            e.children.push(child);
        }
        let all = e.clients.join(",");
        let t0 = Instant::now();
        loop {
            let h = ctl(&all, &["endpoint", "health"]);
            // etcdctl 3.4 prints the health lines on stderr.
            if h.ok && h.err.matches("is healthy").count() == n {
                return e;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "etcd did not become healthy: {h:?} (logs in {:?})",
                e.dir.path()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Etcd3 {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Cluster {
    /// Like [`Cluster::start`], with every member's configuration passed
    /// through `adjust` first.
    pub fn start_with(n: usize, adjust: impl Fn(&mut ServerConfig)) -> Cluster {
        let mut cl = Cluster::start_stopped(n);
        for c in &mut cl.cfgs {
            adjust(c);
        }
        for i in 0..n {
            cl.boot(i);
        }
        cl
    }
}
