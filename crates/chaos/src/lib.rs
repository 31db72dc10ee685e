//! `synod chaos`: real clusters under faults injected from outside the
//! processes, in the manner of Jepsen. The harness builds a network of
//! namespaces ([`net`]), starts the shipped binary in each ([`cluster`]),
//! runs a recorded client workload from the host ([`workload`]), and on a
//! schedule drawn from the seed breaks the network, kills and pauses
//! members, heals, and measures how long the cluster takes to serve again
//! through every member. At the end it reads every key, checks that no
//! acknowledged write was lost and that the history is linearizable, and
//! writes a report ([`Report`]).

pub mod cli;
pub mod cluster;
pub mod disk;
pub mod lock;
pub mod net;
pub mod set;
pub mod timeline;
pub mod watchers;
pub mod workload;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use synod_check::{check, check_lost, write_jsonl, Config, OpKind, Verdict};
use synod_client::{Client, ClientOptions};
use synod_proto::etcdserverpb::{PutRequest, RangeRequest};

use crate::cluster::{Cluster, Target};
use crate::lock::{LockReport, Lockers};
use crate::net::Net;
use crate::set::{Adders, SetReport};
use crate::watchers::{WatchReport, Watchers};
use crate::workload::{Rng, Workload, WorkloadConfig};

/// Why a run could not be carried out (as opposed to a check that failed,
/// which the report says).
#[derive(Debug, thiserror::Error)]
pub enum ChaosError {
    /// Building the network, starting a process or writing a file failed.
    #[error("setup: {0}")]
    Setup(String),
    /// The cluster never elected a leader at the start.
    #[error("no leader within {0:?} of the start; member logs:\n{1}")]
    NoLeader(Duration, String),
}

/// The faults the harness injects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Fault {
    /// The members split into a random minority and majority.
    Partition,
    /// The leader cut off from every other member.
    IsolateLeader,
    /// One member's messages to the others dropped, theirs to it delivered.
    OneWay,
    /// Two halves that only one member (the bridge) sees both of.
    Bridge,
    /// SIGKILL of a member (the leader half of the time), restarted at heal.
    Kill,
    /// SIGSTOP of a member (the leader half of the time) for the whole
    /// fault, SIGCONT at heal.
    Pause,
    /// SIGKILL of every member at once (a power cut, as far as what the
    /// processes held in memory goes), all restarted at heal.
    KillAll,
    /// Each member hears only its two neighbours on a ring (with 3 members
    /// everyone is a neighbour: no cut).
    Ring,
    /// A member's data dir (a tmpfs of its own, 1 GiB) filled to the last
    /// byte while it runs: it must keep its acknowledged writes, and either
    /// go on or stop naming the full disk; at heal the ballast goes and a
    /// stopped member is restarted.
    DiskFull,
    /// SIGKILL of a member and damage to its files (the newest WAL segment
    /// cut short or a byte flipped, or a byte of the store flipped),
    /// restarted at heal: it must serve again or refuse to start saying
    /// why, and then it is replaced by a new member with an empty data dir.
    DiskDamage,
    /// A member removed from the cluster (`member remove`), its data dir
    /// wiped, added back as a new member (`member add`) and, at heal,
    /// started to join with `--initial-cluster-state existing`.
    Replace,
    /// Every member drops 10-40% of what the others send it, at random
    /// (nftables; this kernel has no netem for delay, duplication or
    /// reordering).
    Loss,
    /// A member's link (the leader's half the time) slowed to 256 kbit/s-2
    /// Mbit/s behind a queue of 200 ms-2 s (a token bucket filter, tc tbf):
    /// its packets wait in the queue, and what overflows it is dropped.
    SlowLink,
    /// 20-60% of what each member sends to the others is sent twice
    /// (nftables dup).
    Duplicate,
    /// A member's wall clock (the leader's half the time, through
    /// libfaketime) strobes: it jumps between true time and an offset of up
    /// to a minute ahead, back and forth, staying 50 ms to 1.5 s at each,
    /// until heal. Its monotonic clock is left alone: no machine steps
    /// that one (moved with it, every timer set while the clock was ahead
    /// stalls until true time catches up). synod only: etcd's Go runtime reads the clock without
    /// libc.
    ClockStrobe,
}

impl Fault {
    /// Every fault.
    pub const ALL: [Fault; 15] = [
        Fault::Partition,
        Fault::IsolateLeader,
        Fault::OneWay,
        Fault::Bridge,
        Fault::Kill,
        Fault::Pause,
        Fault::KillAll,
        Fault::Ring,
        Fault::DiskDamage,
        Fault::DiskFull,
        Fault::Replace,
        Fault::Loss,
        Fault::SlowLink,
        Fault::Duplicate,
        Fault::ClockStrobe,
    ];
}

impl Fault {
    /// The faults a `--nemesis` name stands for: one of the groups
    /// INTERFACES.md names (`partition`, `netem`, `pause`, `kill`, `clock`,
    /// `disk`, `membership`, `split`, `all`) or one fault's own name.
    /// `split` needs a sharded cluster, which synod does not have yet.
    pub fn nemesis(name: &str) -> Result<Vec<Fault>, String> {
        use clap::ValueEnum;
        Ok(match name {
            "partition" => vec![
                Fault::Partition,
                Fault::IsolateLeader,
                Fault::OneWay,
                Fault::Bridge,
                Fault::Ring,
            ],
            // This kernel has no sch_netem: loss and duplication come from
            // nftables, a slow queueing link from a token bucket filter;
            // reordering has no stand-in.
            "netem" => vec![Fault::Loss, Fault::SlowLink, Fault::Duplicate],
            "pause" => vec![Fault::Pause],
            "kill" => vec![Fault::Kill, Fault::KillAll],
            "clock" => vec![Fault::ClockStrobe],
            "disk" => vec![Fault::DiskDamage, Fault::DiskFull],
            "membership" => vec![Fault::Replace],
            "all" => Fault::ALL.to_vec(),
            "split" => {
                return Err(
                    "nemesis split needs a sharded cluster: synod has one range today".into(),
                )
            }
            other => match Fault::from_str(other, true) {
                Ok(f) => vec![f],
                Err(_) => {
                    return Err(format!(
                        "unknown nemesis {other:?}: partition, netem, pause, kill, clock, disk, \
                         membership, split, all, or one fault's name ({})",
                        Fault::ALL
                            .iter()
                            .map(|f| f
                                .to_possible_value()
                                .expect("no skipped faults")
                                .get_name()
                                .to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                }
            },
        })
    }
}

/// The workloads a run can carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum WorkloadKind {
    /// Reads, writes and compare-and-sets on a few keys, checked for
    /// linearizability (and for acknowledged writes lost).
    Register,
    /// Adds of fresh keys: every acknowledged add present at the end.
    Set,
    /// One watcher per member over the register's keys: each sees every
    /// event once, in revision order, the same sequence (runs the register
    /// workload's writers too).
    Watch,
    /// Holders of one lock writing under its fencing token, some frozen
    /// past their lease: no write under a lost lock may land after a newer
    /// holder's.
    Lock,
    /// Transfers between accounts in transactions (waits for cross-range
    /// transactions).
    Bank,
    /// Every workload that exists: register, set, watch and lock.
    All,
}

impl WorkloadKind {
    /// The workloads `names` asks for, `All` spelled out; refuses those that
    /// do not exist yet.
    pub fn expand(names: &[WorkloadKind]) -> Result<Vec<WorkloadKind>, String> {
        let mut out = Vec::new();
        for &w in names {
            match w {
                WorkloadKind::All => out.extend([
                    WorkloadKind::Register,
                    WorkloadKind::Set,
                    WorkloadKind::Watch,
                    WorkloadKind::Lock,
                ]),
                WorkloadKind::Bank => {
                    return Err(
                        "workload bank waits for cross-range transactions (issue 15)".into(),
                    )
                }
                w => out.push(w),
            }
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }
}

/// One run's settings.
#[derive(Clone, Debug)]
pub struct ChaosConfig {
    /// Members (3 or 5 make sense).
    pub nodes: usize,
    /// Seed of the fault schedule and of the clients' choices.
    pub seed: u64,
    /// Length of the faulty part of the run.
    pub duration: Duration,
    /// Run each fault of `faults` once, in order, instead of drawing them
    /// until `duration` has passed.
    pub each_once: bool,
    /// Faults drawn from.
    pub faults: Vec<Fault>,
    /// Workloads run (no `All`, `Lock` or `Bank`; see [`WorkloadKind::expand`]).
    pub workloads: Vec<WorkloadKind>,
    /// How long each fault lasts.
    pub fault_for: Duration,
    /// Quiet time between a recovery and the next fault.
    pub quiet: Duration,
    /// The bound on time to recover after each heal (a check).
    pub recover_within: Duration,
    /// What the members run.
    pub target: Target,
    /// The executable (synod's or etcd's).
    pub binary: PathBuf,
    /// Data dirs, logs, the history and the report go here.
    pub dir: PathBuf,
    /// Names the network (1..=250): runs at once need different tags.
    pub tag: u32,
    /// Print each phase as it happens.
    pub progress: bool,
    /// A deliberate bug for synod members (`--experimental-planted-bug`),
    /// to show the checks catch it.
    pub planted_bug: Option<String>,
}

/// One injected fault and what followed.
#[derive(Clone, Debug, Serialize)]
pub struct FaultRecord {
    /// Which fault.
    pub fault: Fault,
    /// Whom it hit, in words.
    pub detail: String,
    /// Seconds from the start of the workload to the fault.
    pub start_s: f64,
    /// Seconds from the start to the heal.
    pub heal_s: f64,
    /// Seconds from the heal until every member answered a linearizable
    /// read; `None`: not within the bound.
    pub recovered_after_s: Option<f64>,
}

/// Share of operations that succeeded, by phase.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Availability {
    /// Operations invoked while a fault was in force.
    pub during_faults_ops: usize,
    /// Share of those that succeeded (an unknown outcome is a failure).
    pub during_faults: f64,
    /// Operations invoked with no fault in force (healed, or before any).
    pub healed_ops: usize,
    /// Share of those that succeeded.
    pub healed: f64,
}

/// What a run found.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// The database under test.
    pub target: Target,
    /// Members.
    pub nodes: usize,
    /// The seed.
    pub seed: u64,
    /// The workloads run.
    pub workloads: Vec<WorkloadKind>,
    /// The faults drawn from.
    pub nemesis: Vec<Fault>,
    /// Seconds from the workload's start to its stop.
    pub duration_s: f64,
    /// Each fault, in order.
    pub faults: Vec<FaultRecord>,
    /// Operations recorded (final reads included).
    pub ops: usize,
    /// Acknowledged writes.
    pub acked_writes: usize,
    /// Operations whose outcome is unknown.
    pub unknown: usize,
    /// Operations that succeeded (a compare-and-set whose comparison
    /// failed included: it observed the value).
    pub ok_ops: usize,
    /// Availability by phase.
    pub availability: Availability,
    /// The linearizability verdict: "linearizable", "not linearizable: …",
    /// "undecided: …" or "not run: …".
    pub verdict: String,
    /// Acknowledged writes missing from the final state, in words.
    pub lost: Vec<String>,
    /// Members that exited on their own, in words.
    pub crashed: Vec<String>,
    /// The watchers' checks (`None`: the watch workload did not run).
    pub watch: Option<WatchReport>,
    /// The set workload's check (`None`: it did not run).
    pub set: Option<SetReport>,
    /// The lock workload's check (`None`: it did not run).
    pub lock: Option<LockReport>,
    /// The longest recovery, in seconds.
    pub max_recovery_s: Option<f64>,
    /// Whether every check passed.
    pub passed: bool,
    /// The history file (JSON lines, `synod check`'s format).
    pub history: PathBuf,
}

fn say(cfg: &ChaosConfig, t0: Instant, msg: impl std::fmt::Display) {
    if cfg.progress {
        eprintln!("[{:>6.1}s] {msg}", t0.elapsed().as_secs_f64());
    }
}

/// A client of the whole cluster or of one member.
pub(crate) async fn client(endpoints: &[String], timeout: Duration, attempts: u32) -> Client {
    Client::connect(
        endpoints,
        ClientOptions {
            dial_timeout: Duration::from_millis(500),
            request_timeout: timeout,
            max_attempts: attempts,
            probe: false,
            ..ClientOptions::default()
        },
    )
    .await
    .expect("endpoints parse")
}

/// The index of the member every answering member names as leader, if
/// they agree.
async fn leader(endpoints: &[String]) -> Option<usize> {
    let c = client(endpoints, Duration::from_millis(700), 1).await;
    let mut ids = BTreeMap::new();
    let mut named = Vec::new();
    for (i, (_, st)) in c.status_all().await.into_iter().enumerate() {
        if let Ok(st) = st {
            if let Some(h) = &st.header {
                ids.insert(h.member_id, i);
            }
            named.push(st.leader);
        }
    }
    let first = *named.first()?;
    if first == 0 || named.iter().any(|&l| l != first) {
        return None;
    }
    ids.get(&first).copied()
}

/// Whether member endpoint `ep` answers a linearizable read within 500 ms.
async fn serves(ep: &str) -> bool {
    let c = client(&[ep.to_string()], Duration::from_millis(500), 1).await;
    c.range(RangeRequest {
        key: b"chaos-probe".to_vec(),
        ..Default::default()
    })
    .await
    .is_ok()
}

/// Waits until every member answers a linearizable read on its own
/// endpoint; the time it took, or `None` past `limit`.
async fn recovery(endpoints: &[String], limit: Duration) -> Option<Duration> {
    let t0 = Instant::now();
    let mut ok = vec![false; endpoints.len()];
    while t0.elapsed() < limit {
        for (i, ep) in endpoints.iter().enumerate() {
            if ok[i] {
                continue;
            }
            ok[i] = serves(ep).await;
        }
        if ok.iter().all(|&o| o) {
            return Some(t0.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

/// Waits until member `i` answers a linearizable read on its endpoint
/// `ep` (`None`) or its process exits (`Some` of the last lines of its
/// log), at most `limit`.
async fn serves_or_exits(cl: &mut Cluster, i: usize, ep: &str, limit: Duration) -> Option<String> {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if !cl.running(i) {
            return Some(cl.log_tail(i, 3));
        }
        if let Some((_, st)) = cl.exited().into_iter().find(|(m, _)| *m == i) {
            return Some(format!("exit {st}: {}", cl.log_tail(i, 3)));
        }
        if serves(ep).await {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

/// Takes member `v` out of the cluster (`member remove` through the
/// others), stops it, wipes its data dir and adds its peer URL back as a
/// new member (started later with [`Cluster::join`]).
async fn remove_and_add(
    endpoints: &[String],
    net: &Net,
    cl: &mut Cluster,
    v: usize,
) -> Result<(), String> {
    let others: Vec<String> = (0..endpoints.len())
        .filter(|&i| i != v)
        .map(|i| endpoints[i].clone())
        .collect();
    let c = client(&others, Duration::from_secs(3), 5).await;
    let url = Cluster::peer_url(net, v);
    let list = c
        .member_list()
        .await
        .map_err(|e| format!("member list: {e}"))?;
    if let Some(m) = list.members.iter().find(|m| m.peer_ur_ls.contains(&url)) {
        // etcd refuses to remove a member while another one has been
        // connected only briefly ("unhealthy cluster"): retry, as an
        // operator would.
        let mut tries = 0;
        while let Err(e) = c.member_remove(m.id).await {
            // An attempt whose answer was lost (a timeout) may have removed
            // it: then the retry hears "member not found", which is success.
            if tries > 0 && e.to_string().contains("member not found") {
                break;
            }
            tries += 1;
            if tries == 20 {
                return Err(format!("member remove m{v}: {e}"));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    cl.kill(v).map_err(|e| e.to_string())?;
    cl.wipe(v).map_err(|e| e.to_string())?;
    // A removed leader's successor may take a moment to be elected.
    let mut last = String::new();
    for _ in 0..20 {
        match c.member_add(vec![url.clone()], false).await {
            Ok(_) => return Ok(()),
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Err(format!("member add m{v}: {last}"))
}

/// Runs one chaos run and reports it. An `Err` means the run could not be
/// carried out; a failed check is a report with `passed: false`.
pub fn run(cfg: &ChaosConfig) -> Result<Report, ChaosError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| ChaosError::Setup(format!("tokio runtime: {e}")))?;
    rt.block_on(run_async(cfg))
}

/// Picks `k` distinct members out of `n`.
fn pick(rng: &mut Rng, n: usize, k: usize) -> Vec<usize> {
    let mut all: Vec<usize> = (0..n).collect();
    for i in 0..all.len() {
        let j = i + rng.below((all.len() - i) as u64) as usize;
        all.swap(i, j);
    }
    all.truncate(k);
    all.sort_unstable();
    all
}

/// The lock workload's planted bug: writes without the fencing guard.
pub const UNFENCED_LOCK: &str = "unfenced-lock";

/// The size of each member's data dir when a run may fill one up.
const DATA_DIR_QUOTA: u64 = 1 << 30;

/// What a member that stopped on a full disk may say (synod's and etcd's).
const DISK_FULL_WORDS: [&str; 3] = ["no space left", "enospc", "disk full"];

/// What a fault needs undone at heal.
enum Undo {
    Net,
    Clock(usize, tokio::task::JoinHandle<()>, Arc<AtomicBool>),
    Restart(usize),
    RestartAll,
    RestartDamaged(usize),
    Unfill(usize),
    Join(usize),
    Resume(usize),
}

async fn run_async(cfg: &ChaosConfig) -> Result<Report, ChaosError> {
    assert!(!cfg.faults.is_empty(), "at least one fault");
    std::fs::create_dir_all(&cfg.dir)
        .map_err(|e| ChaosError::Setup(format!("{}: {e}", cfg.dir.display())))?;
    let t_boot = Instant::now();
    let mut net = Net::create(cfg.tag, cfg.nodes)?;
    // The planted bug of the lock workload is the client's (writes without
    // the fencing guard); the others are the server's.
    let unfenced = cfg.planted_bug.as_deref() == Some(UNFENCED_LOCK);
    let server_bug = cfg.planted_bug.as_ref().filter(|_| !unfenced);
    let extra: Vec<String> = match (server_bug, cfg.target) {
        (Some(b), Target::Synod) => vec!["--experimental-planted-bug".into(), b.clone()],
        (Some(_), Target::Etcd) => {
            return Err(ChaosError::Setup("a planted bug is synod's only".into()))
        }
        (None, _) => Vec::new(),
    };
    let faketime = if cfg.faults.contains(&Fault::ClockStrobe) {
        if cfg.target == Target::Etcd {
            return Err(ChaosError::Setup(
                "clock faults are synod's only: etcd's Go runtime reads the clock without libc, \
                 so libfaketime cannot move it"
                    .into(),
            ));
        }
        Some(cluster::faketime_lib()?)
    } else {
        None
    };
    // A disk-full fault fills a member's data dir: each is a tmpfs of its own.
    let quota = cfg
        .faults
        .contains(&Fault::DiskFull)
        .then_some(DATA_DIR_QUOTA);
    let mut cl = Cluster::start(
        &net,
        cfg.target,
        &cfg.binary,
        &cfg.dir,
        &extra,
        faketime,
        quota,
    )?;
    let endpoints = Cluster::endpoints(&net);
    say(
        cfg,
        t_boot,
        format_args!("{} members of {:?} started", cfg.nodes, cfg.target),
    );
    let boot_limit = Duration::from_secs(30);
    while leader(&endpoints).await.is_none() {
        if t_boot.elapsed() > boot_limit {
            let logs = (0..cfg.nodes)
                .map(|i| format!("--- m{i}\n{}", cl.log_tail(i, 20)))
                .collect::<Vec<_>>()
                .join("\n");
            return Err(ChaosError::NoLeader(boot_limit, logs));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut rng = Rng(cfg.seed);
    let head = client(&endpoints, Duration::from_secs(3), 10).await;
    let from = head
        .range(RangeRequest {
            key: b"chaos-probe".to_vec(),
            ..Default::default()
        })
        .await
        .map_err(|e| ChaosError::Setup(format!("the first read: {e}")))?
        .header
        .map_or(0, |h| h.revision)
        + 1;
    let runs = |w: WorkloadKind| cfg.workloads.contains(&w);
    let watchers =
        runs(WorkloadKind::Watch).then(|| Watchers::start(&endpoints, "chaos/", from, cfg.nodes));
    let adders =
        runs(WorkloadKind::Set).then(|| Adders::start(&endpoints, "chaos-set/", cfg.nodes));
    let lockers =
        runs(WorkloadKind::Lock).then(|| Lockers::start(&endpoints, 3, cfg.seed, !unfenced));
    // The watchers watch the register's keys: its writers run for either.
    let registers = runs(WorkloadKind::Register) || runs(WorkloadKind::Watch);
    let mut wl = Workload::start(
        &endpoints,
        WorkloadConfig {
            workers: if registers { 6 } else { 0 },
            keys: 6,
            prefix: "chaos/".into(),
            op_timeout: Duration::from_secs(2),
        },
        cfg.seed,
    );
    let clock = &wl.shared().clock;
    let t0 = Instant::now();
    let start_ns = clock.now();
    say(cfg, t0, "workload started");
    let mut faults = Vec::new();
    // Fault windows in the history's clock: [fault, heal).
    let mut windows: Vec<(u64, u64)> = Vec::new();
    let mut crashed = Vec::new();
    let mut round = 0;
    loop {
        let fault = if cfg.each_once {
            match cfg.faults.get(round) {
                Some(&f) => f,
                None => break,
            }
        } else if t0.elapsed() < cfg.duration {
            cfg.faults[rng.below(cfg.faults.len() as u64) as usize]
        } else {
            break;
        };
        round += 1;
        tokio::time::sleep(cfg.quiet).await;
        let n = cfg.nodes;
        let lead = leader(&endpoints).await;
        let victim = |rng: &mut Rng| match lead {
            Some(l) if rng.below(2) == 0 => l,
            _ => rng.below(n as u64) as usize,
        };
        let (detail, undo) = match fault {
            Fault::Partition => {
                let minority = pick(&mut rng, n, (n - 1) / 2);
                let rest: Vec<usize> = (0..n).filter(|i| !minority.contains(i)).collect();
                net.partition(&minority, &rest)?;
                (format!("{minority:?} | {rest:?}"), Undo::Net)
            }
            Fault::IsolateLeader => {
                let l = lead.unwrap_or_else(|| rng.below(n as u64) as usize);
                let rest: Vec<usize> = (0..n).filter(|&i| i != l).collect();
                net.partition(&[l], &rest)?;
                (format!("leader m{l} isolated"), Undo::Net)
            }
            Fault::OneWay => {
                let v = victim(&mut rng);
                for o in (0..n).filter(|&o| o != v) {
                    net.cut(v, o)?;
                }
                (format!("m{v} cannot send to the others"), Undo::Net)
            }
            Fault::Bridge => {
                let order = pick(&mut rng, n, n);
                let b = order[0];
                let half = (n - 1) / 2;
                let (a, c) = order[1..].split_at(half);
                net.partition(a, c)?;
                (format!("{a:?} | {c:?}, m{b} bridges"), Undo::Net)
            }
            Fault::Kill => {
                let v = victim(&mut rng);
                cl.kill(v)?;
                (format!("m{v} killed"), Undo::Restart(v))
            }
            Fault::Pause => {
                let v = victim(&mut rng);
                cl.pause(v)?;
                (format!("m{v} paused"), Undo::Resume(v))
            }
            Fault::KillAll => {
                for v in 0..n {
                    cl.kill(v)?;
                }
                ("every member killed".to_string(), Undo::RestartAll)
            }
            Fault::DiskDamage => {
                let v = victim(&mut rng);
                cl.kill(v)?;
                let (_, what) = disk::damage(cfg.target, &cl.data_dir(v), &mut rng)?;
                (format!("m{v} killed; {what}"), Undo::RestartDamaged(v))
            }
            Fault::DiskFull => {
                let v = victim(&mut rng);
                let bytes = cl.fill(v)?;
                (
                    format!("m{v}'s data dir filled ({} MiB of ballast)", bytes >> 20),
                    Undo::Unfill(v),
                )
            }
            Fault::Replace => {
                let v = victim(&mut rng);
                match remove_and_add(&endpoints, &net, &mut cl, v).await {
                    Ok(()) => (format!("m{v} removed, wiped and added back"), Undo::Join(v)),
                    Err(e) => {
                        crashed.push(format!("membership change failed: {e}"));
                        (format!("m{v} not replaced: {e}"), Undo::Join(v))
                    }
                }
            }
            Fault::SlowLink => {
                let v = victim(&mut rng);
                let kbit = 256 << rng.below(4) as u32;
                let queue_ms = 200 + 100 * rng.below(19) as u32;
                net.slow(v, kbit, queue_ms)?;
                (
                    format!("m{v}'s link at {kbit} kbit/s, queue {queue_ms} ms"),
                    Undo::Net,
                )
            }
            Fault::Duplicate => {
                let percent = 20 + rng.below(41) as u32;
                for i in 0..n {
                    net.duplicate(i, percent)?;
                }
                (
                    format!("{percent}% of packets between members sent twice"),
                    Undo::Net,
                )
            }
            Fault::Loss => {
                let percent = 10 + rng.below(31) as u32;
                for to in 0..n {
                    net.lossy(to, percent)?;
                }
                (
                    format!("{percent}% of packets between members lost"),
                    Undo::Net,
                )
            }
            Fault::ClockStrobe => {
                let v = victim(&mut rng);
                let ahead = 1 + rng.below(60) as i64;
                let file = cl.clock_file(v);
                let stop = Arc::new(AtomicBool::new(false));
                let flag = stop.clone();
                let mut dwell = Rng(rng.below(u64::MAX));
                let task = tokio::spawn(async move {
                    let mut on = true;
                    while !flag.load(Ordering::Relaxed) {
                        let _ = cluster::set_clock(&file, if on { ahead } else { 0 });
                        on = !on;
                        tokio::time::sleep(dwell.millis(50, 1500)).await;
                    }
                });
                (
                    format!("m{v}'s clock strobes between +0 s and +{ahead} s"),
                    Undo::Clock(v, task, stop),
                )
            }
            Fault::Ring => {
                let order = pick(&mut rng, n, n);
                for (k, &a) in order.iter().enumerate() {
                    for (j, &b) in order.iter().enumerate() {
                        let d = k.abs_diff(j);
                        if d > 1 && d < n - 1 {
                            net.cut(b, a)?;
                        }
                    }
                }
                (
                    format!(
                        "ring {}",
                        order
                            .iter()
                            .map(|i| format!("m{i}"))
                            .collect::<Vec<_>>()
                            .join("-")
                    ),
                    Undo::Net,
                )
            }
        };
        let start_s = t0.elapsed().as_secs_f64();
        let w0 = clock.now();
        say(cfg, t0, format_args!("fault {fault:?}: {detail}"));
        tokio::time::sleep(cfg.fault_for).await;
        match undo {
            Undo::Net => net.heal()?,
            Undo::Clock(v, task, stop) => {
                stop.store(true, Ordering::Relaxed);
                let _ = task.await;
                cluster::set_clock(&cl.clock_file(v), 0)?;
            }
            Undo::Restart(v) => cl.restart(&net, v)?,
            Undo::RestartAll => {
                for v in 0..n {
                    cl.restart(&net, v)?;
                }
            }
            Undo::Join(v) => {
                if !cl.running(v) {
                    cl.join(&net, v)?;
                }
            }
            Undo::RestartDamaged(v) => {
                cl.restart(&net, v)?;
                if let Some(why) =
                    serves_or_exits(&mut cl, v, &endpoints[v], cfg.recover_within).await
                {
                    let refused = ["corrupt", "checksum", "damaged", "crc", "mismatch"]
                        .iter()
                        .any(|w| why.to_lowercase().contains(w));
                    if !refused {
                        crashed.push(format!(
                            "m{v} exited after disk damage without naming it: {why}"
                        ));
                    }
                    say(
                        cfg,
                        t0,
                        format_args!("m{v} refused to start: {why}; replacing it"),
                    );
                    match remove_and_add(&endpoints, &net, &mut cl, v).await {
                        Ok(()) => cl.join(&net, v)?,
                        Err(e) => crashed.push(format!("membership change failed: {e}")),
                    }
                }
            }
            Undo::Unfill(v) => {
                cl.unfill(v)?;
                if let Some(st) = cl.exited_one(v) {
                    let why = cl.log_tail(v, 5);
                    let named = DISK_FULL_WORDS
                        .iter()
                        .any(|w| why.to_lowercase().contains(w));
                    if named {
                        say(
                            cfg,
                            t0,
                            format_args!("m{v} stopped on the full disk ({st}); restarting it"),
                        );
                    } else {
                        crashed.push(format!(
                            "m{v} exited ({st}) on a full disk without naming it: {why}"
                        ));
                    }
                    cl.restart(&net, v)?;
                }
            }
            Undo::Resume(v) => cl.resume(v)?,
        }
        windows.push((w0, clock.now()));
        let heal_s = t0.elapsed().as_secs_f64();
        let rec = recovery(&endpoints, cfg.recover_within).await;
        say(
            cfg,
            t0,
            format_args!(
                "healed; {}",
                match rec {
                    Some(d) => format!("every member serves again after {:.2} s", d.as_secs_f64()),
                    None => format!("NOT recovered within {:?}", cfg.recover_within),
                }
            ),
        );
        for (m, st) in cl.exited() {
            crashed.push(format!("m{m} exited ({st}): {}", cl.log_tail(m, 5)));
        }
        faults.push(FaultRecord {
            fault,
            detail,
            start_s,
            heal_s,
            recovered_after_s: rec.map(|d| d.as_secs_f64()),
        });
    }
    wl.stop().await;
    let duration_s = t0.elapsed().as_secs_f64();
    let adders = match adders {
        Some(a) => Some(a.stop().await),
        None => None,
    };
    say(
        cfg,
        t0,
        format_args!(
            "workload stopped; {} writes acknowledged",
            wl.shared().acked_writes()
        ),
    );
    let reader = client(&endpoints, Duration::from_secs(3), 10).await;
    let finals = wl.final_reads(&reader).await;
    let ops = wl.history();
    let lock = match lockers {
        Some(l) => {
            let lock = l.finish(&reader).await;
            say(
                cfg,
                t0,
                format_args!(
                    "lock checked: {} holdings ({} frozen), {} writes acknowledged, {} fenced off, {} problems",
                    lock.acquired,
                    lock.frozen,
                    lock.acked,
                    lock.refused,
                    lock.problems.len()
                ),
            );
            Some(lock)
        }
        None => None,
    };
    let set = match adders {
        Some(a) => {
            let set = a.check(&reader).await;
            say(
                cfg,
                t0,
                format_args!(
                    "set checked: {} adds acknowledged, {} present, {} problems",
                    set.acked,
                    set.present,
                    set.problems.len()
                ),
            );
            Some(set)
        }
        None => None,
    };
    // A last write under the watched prefix: every watcher must reach it.
    let last_rev = reader
        .put(PutRequest {
            key: b"chaos/~end".to_vec(),
            value: b"end".to_vec(),
            ..Default::default()
        })
        .await
        .ok()
        .and_then(|r| r.header)
        .map_or(0, |h| h.revision);
    let watch = match watchers {
        Some(w) => {
            let watch = w.finish(last_rev, Duration::from_secs(30), &ops).await;
            say(
                cfg,
                t0,
                format_args!(
                    "watchers checked: {} events, {} resumptions, {} problems",
                    watch.events,
                    watch.resumed,
                    watch.problems.len()
                ),
            );
            Some(watch)
        }
        None => None,
    };
    let history = cfg.dir.join("history.jsonl");
    let file = std::fs::File::create(&history)
        .map_err(|e| ChaosError::Setup(format!("{}: {e}", history.display())))?;
    write_jsonl(std::io::BufWriter::new(file), &ops)
        .map_err(|e| ChaosError::Setup(format!("{}: {e}", history.display())))?;

    let (mut lost, verdict) = match &finals {
        Err(e) => (Vec::new(), format!("not run: {e}")),
        Ok(_) if !registers => (Vec::new(), "not run: no register workload".to_string()),
        Ok(finals) => {
            let lost: Vec<String> = check_lost(&ops, finals)
                .iter()
                .map(|l| l.to_string())
                .collect();
            let report = check(
                &ops,
                &Config {
                    time_limit: Some(Duration::from_secs(60)),
                    ..Config::default()
                },
            );
            let verdict = match report.verdict {
                Verdict::Linearizable => "linearizable".to_string(),
                Verdict::NotLinearizable { key, detail } => {
                    format!("not linearizable: key {key}: {detail}")
                }
                Verdict::Undecided { key } => format!("undecided: key {key}"),
            };
            (lost, verdict)
        }
    };
    lost.truncate(20);
    let in_fault = |t: u64| windows.iter().any(|&(a, b)| t >= a && t < b);
    let mut av = Availability::default();
    let (mut f_ok, mut h_ok) = (0usize, 0usize);
    for op in ops.iter().filter(|o| o.call >= start_ns) {
        let ok = op.ok == Some(true) || (op.op == OpKind::Cas && op.ok == Some(false));
        if in_fault(op.call) {
            av.during_faults_ops += 1;
            f_ok += usize::from(ok);
        } else {
            av.healed_ops += 1;
            h_ok += usize::from(ok);
        }
    }
    let share = |a: usize, b: usize| if b == 0 { 1.0 } else { a as f64 / b as f64 };
    av.during_faults = share(f_ok, av.during_faults_ops);
    av.healed = share(h_ok, av.healed_ops);
    let max_recovery_s = faults
        .iter()
        .filter_map(|f| f.recovered_after_s)
        .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))));
    let all_recovered = faults.iter().all(|f| f.recovered_after_s.is_some());
    let count = |f: &dyn Fn(&synod_check::Op) -> bool| ops.iter().filter(|o| f(o)).count();
    let report = Report {
        target: cfg.target,
        nodes: cfg.nodes,
        seed: cfg.seed,
        ops: ops.len(),
        acked_writes: count(&|o| o.op != OpKind::Get && o.ok == Some(true)),
        unknown: count(&|o| o.ok.is_none()),
        ok_ops: count(&|o| o.ok == Some(true) || (o.op == OpKind::Cas && o.ok == Some(false))),
        availability: av,
        passed: (verdict == "linearizable" || !registers)
            && lost.is_empty()
            && crashed.is_empty()
            && all_recovered
            && watch.as_ref().is_none_or(|w| w.problems.is_empty())
            && set.as_ref().is_none_or(|s| s.problems.is_empty())
            && lock.as_ref().is_none_or(|l| l.problems.is_empty()),
        workloads: cfg.workloads.clone(),
        nemesis: cfg.faults.clone(),
        duration_s,
        verdict,
        lost,
        crashed,
        watch,
        set,
        lock,
        max_recovery_s,
        faults,
        history,
    };
    let picture = cfg.dir.join("timeline.svg");
    let title = format!(
        "synod chaos: {:?}, {} members, seed {}: {}",
        cfg.target, cfg.nodes, cfg.seed, report.verdict
    );
    std::fs::write(
        &picture,
        timeline::svg(&ops, &report.faults, start_ns, &title),
    )
    .map_err(|e| ChaosError::Setup(format!("{}: {e}", picture.display())))?;
    let path = cfg.dir.join("report.json");
    let json = serde_json::to_string_pretty(&report).expect("a report serializes");
    std::fs::write(&path, json)
        .map_err(|e| ChaosError::Setup(format!("{}: {e}", path.display())))?;
    Ok(report)
}

impl Report {
    /// Every check that did not hold, in words (empty when the run passed).
    pub fn anomalies(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.verdict != "linearizable" && !self.verdict.starts_with("not run: no register") {
            out.push(format!("history: {}", self.verdict));
        }
        out.extend(self.lost.iter().map(|l| format!("lost: {l}")));
        out.extend(self.crashed.iter().map(|c| format!("crashed: {c}")));
        for f in self.faults.iter().filter(|f| f.recovered_after_s.is_none()) {
            out.push(format!(
                "not recovered: {:?} at {:.1}s ({}) not served again by every member within the bound",
                f.fault, f.start_s, f.detail
            ));
        }
        if let Some(w) = &self.watch {
            out.extend(w.problems.iter().map(|p| format!("watch: {p}")));
        }
        if let Some(s) = &self.set {
            out.extend(s.problems.iter().map(|p| format!("set: {p}")));
        }
        if let Some(l) = &self.lock {
            out.extend(l.problems.iter().map(|p| format!("lock: {p}")));
        }
        out
    }

    /// The one JSON object `synod chaos -w json` prints (INTERFACES.md),
    /// `report` naming the full report's file.
    pub fn summary_json(&self, report: &std::path::Path) -> serde_json::Value {
        // An add that failed is counted unknown: it may have taken effect.
        let failed = self.ops - self.ok_ops - self.unknown;
        let unknown = self.unknown + self.set.as_ref().map_or(0, |s| s.unknown);
        let ok = self.ok_ops + self.set.as_ref().map_or(0, |s| s.acked);
        let names: Vec<String> = self
            .workloads
            .iter()
            .map(|w| {
                serde_json::to_value(w)
                    .expect("names serialize")
                    .as_str()
                    .expect("a name")
                    .to_string()
            })
            .collect();
        serde_json::json!({
            "seed": self.seed,
            "nodes": self.nodes,
            "target": self.target,
            "workload": names.join(","),
            "nemesis": self.nemesis,
            "duration_s": self.duration_s,
            "ops": {"ok": ok, "failed": failed, "unknown": unknown},
            "faults": self.faults.len(),
            "valid": self.passed,
            "anomalies": self.anomalies(),
            "availability": self.availability,
            "max_recovery_s": self.max_recovery_s,
            "report": report,
        })
    }
}

/// The report in a few lines.
pub fn summary(r: &Report) -> String {
    let mut s = format!(
        "{:?}, {} members, seed {}: {} ops ({} writes acknowledged, {} unknown)\n",
        r.target, r.nodes, r.seed, r.ops, r.acked_writes, r.unknown
    );
    for f in &r.faults {
        s += &format!(
            "  {:>6.1}s {:<15} {:<40} recovered {}\n",
            f.start_s,
            format!("{:?}", f.fault),
            f.detail,
            f.recovered_after_s
                .map_or("NOT within the bound".to_string(), |x| format!(
                    "after {x:.2} s"
                ))
        );
    }
    s += &format!(
        "availability: {:.1}% during faults ({} ops), {:.1}% otherwise ({} ops)\n",
        100.0 * r.availability.during_faults,
        r.availability.during_faults_ops,
        100.0 * r.availability.healed,
        r.availability.healed_ops
    );
    s += &format!("history: {}\n", r.verdict);
    if !r.lost.is_empty() {
        s += &format!("lost acknowledged writes: {}\n", r.lost.join("; "));
    }
    for c in &r.crashed {
        s += &format!("crashed: {c}\n");
    }
    if let Some(set) = &r.set {
        s += &format!(
            "set: {} adds acknowledged, {} unknown, {} present: {}\n",
            set.acked,
            set.unknown,
            set.present,
            if set.problems.is_empty() {
                "every acknowledged add is there".to_string()
            } else {
                set.problems.join("; ")
            }
        );
    }
    if let Some(watch) = &r.watch {
        s += &format!(
            "watch: {} watchers, {} events, resumed {} times: {}\n",
            watch.watchers,
            watch.events,
            watch.resumed,
            if watch.problems.is_empty() {
                "every watcher saw every event once, in order".to_string()
            } else {
                watch.problems.join("; ")
            }
        );
    }
    if let Some(l) = &r.lock {
        s += &format!(
            "lock: {} holdings ({} frozen past their lease), {} {}writes acknowledged, {} fenced off: {}\n",
            l.acquired,
            l.frozen,
            l.acked,
            if l.fenced { "fenced " } else { "UNFENCED " },
            l.refused,
            if l.problems.is_empty() {
                "no write under a lost lock landed after a newer holder's".to_string()
            } else {
                l.problems.join("; ")
            }
        );
    }
    s += if r.passed { "PASS" } else { "FAIL" };
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nemesis_names_stand_for_their_faults() {
        assert_eq!(
            Fault::nemesis("kill").unwrap(),
            vec![Fault::Kill, Fault::KillAll]
        );
        assert_eq!(Fault::nemesis("membership").unwrap(), vec![Fault::Replace]);
        assert_eq!(Fault::nemesis("one-way").unwrap(), vec![Fault::OneWay]);
        assert_eq!(Fault::nemesis("all").unwrap(), Fault::ALL.to_vec());
        assert!(Fault::nemesis("partition").unwrap().contains(&Fault::Ring));
        assert!(Fault::nemesis("split").unwrap_err().contains("sharded"));
        assert!(Fault::nemesis("gremlins")
            .unwrap_err()
            .contains("unknown nemesis"));
        // Every fault is in some group other than `all`.
        let groups = [
            "partition",
            "netem",
            "pause",
            "kill",
            "clock",
            "disk",
            "membership",
        ];
        for f in Fault::ALL {
            assert!(
                groups
                    .iter()
                    .any(|g| Fault::nemesis(g).unwrap().contains(&f)),
                "{f:?} in no group"
            );
        }
    }

    #[test]
    fn workloads_expand_and_refuse_what_does_not_exist_yet() {
        use WorkloadKind::*;
        assert_eq!(
            WorkloadKind::expand(&[All]).unwrap(),
            vec![Register, Set, Watch, Lock]
        );
        assert_eq!(
            WorkloadKind::expand(&[Watch, Set, Watch]).unwrap(),
            vec![Set, Watch]
        );
        assert_eq!(WorkloadKind::expand(&[Lock]).unwrap(), vec![Lock]);
        assert!(WorkloadKind::expand(&[Register, Bank]).is_err());
        assert!(WorkloadKind::expand(&[Bank]).is_err());
    }
}
