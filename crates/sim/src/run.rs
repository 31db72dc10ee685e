//! One simulated run of the database: build a cluster from a seed, run the
//! workload through a fault phase, heal, require progress within a bound
//! (the liveness phase), read every key back, and check everything.

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;
use synod_check::sessions::{check_sessions, ObsKind, Observation};
use synod_check::{history::Pending, Op, Recorder, Verdict};
use synod_node::{HostBug, HostConfig, KeyRange, NodeConfig, RangeDesc, ShardId, SplitBug};
use synod_raft::{
    ConfChange, ConfChangeSingle, ConfChangeTransition, Config as RaftConfig, NodeId, PlantedBug,
    ReadOnlyOption,
};
use synod_simnet::{
    ClockConfig, FaultSet, NemesisAction, NemesisConfig, NetConfig, ProcId, Sim, Time, Trace,
    MILLIS, SECONDS,
};

use crate::aim::{Aim, AimAction};
use crate::cluster::{proc_of, Storage};
use crate::cluster::{split, Client, ClientEvent, Proc, Server, ServerTiming, Workload};
use crate::invariants::Invariants;

/// Everything that defines a run. Together with the seed it is the replay key.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// The seed: it picks latencies, the fault schedule, the workload, everything.
    pub seed: u64,
    /// Servers.
    pub nodes: usize,
    /// Workload clients.
    pub clients: usize,
    /// Operations over all clients.
    pub ops: u64,
    /// Keys the workload touches.
    pub keys: u32,
    /// Faults allowed; with `swarm`, each seed switches a random subset of them on.
    pub faults: FaultSet,
    /// Swarm testing: let the seed choose which of `faults` are on.
    pub swarm: bool,
    /// A deliberate bug, to show the checkers catch it.
    pub bug: Option<Bug>,
    /// Serve linearizable reads from the leader lease instead of ReadIndex rounds.
    pub lease_reads: bool,
    /// Record a full trace (for a failing seed's report).
    pub trace: bool,
    /// Faults stop (everything heals) at this virtual time.
    pub fault_end: Time,
    /// Leaders send appends before their own fdatasync; `None`: the seed picks.
    pub parallel_leader_append: Option<bool>,
    /// Mean time between fault actions; `None`: the seed picks 20 ms, 50 ms
    /// or a twentieth of the fault phase.
    pub fault_interval: Option<Time>,
    /// After healing, the cluster must answer the final reads within this bound.
    pub liveness_bound: Time,
    /// Membership changes under faults: the last server starts outside the
    /// group (as a member joining a running cluster does), is added as a
    /// learner and promoted during the fault phase, and server 1 is removed.
    pub joiner: bool,
    /// Servers sync every Ready that writes anything, a commit index alone
    /// included (the schedule before etcd's MustSync rule).
    pub sync_every_ready: bool,
    /// Raft groups per server: the workload's keys split into this many
    /// key ranges (a static split), every server hosting every group.
    pub groups: usize,
    /// Ranges split once they hold more than this many keys (`None`: never).
    pub split_keys: Option<u64>,
}

impl RunConfig {
    /// Defaults for `seed`: 3 nodes, every fault kind in the swarm.
    pub fn new(seed: u64) -> Self {
        RunConfig {
            seed,
            nodes: 3,
            clients: 4,
            ops: 200,
            keys: 4,
            faults: FaultSet::all(),
            swarm: true,
            bug: None,
            lease_reads: false,
            trace: false,
            fault_end: 5 * SECONDS,
            fault_interval: None,
            parallel_leader_append: None,
            liveness_bound: 5 * SECONDS,
            joiner: false,
            sync_every_ready: false,
            groups: 1,
            split_keys: None,
        }
    }

    /// The faults this seed actually runs with.
    pub fn active_faults(&self) -> FaultSet {
        if self.swarm {
            self.faults.swarm_subset(self.seed)
        } else {
            self.faults.clone()
        }
    }

    /// The `synod sim` command line that replays this run.
    pub fn replay_command(&self) -> String {
        let faults: Vec<&str> = self.faults.iter().map(|f| f.name()).collect();
        let mut s = format!(
            "synod sim --seed {} --nodes {} --clients {} --ops {} --faults {}",
            self.seed,
            self.nodes,
            self.clients,
            self.ops,
            if faults.is_empty() {
                "none".to_string()
            } else {
                faults.join(",")
            }
        );
        if !self.swarm {
            s.push_str(" --no-swarm");
        }
        if let Some(i) = self.fault_interval {
            s.push_str(&format!(" --fault-interval-ms {}", i / MILLIS));
        }
        if let Some(p) = self.parallel_leader_append {
            s.push_str(&format!(" --parallel-leader-append {p}"));
        }
        if self.lease_reads {
            s.push_str(" --lease-reads");
        }
        if self.sync_every_ready {
            s.push_str(" --sync-every-ready");
        }
        if self.joiner {
            s.push_str(" --joiner");
        }
        if self.groups != 1 {
            s.push_str(&format!(" --groups {}", self.groups));
        }
        if self.keys != RunConfig::new(0).keys {
            s.push_str(&format!(" --keys {}", self.keys));
        }
        if let Some(k) = self.split_keys {
            s.push_str(&format!(" --split-keys {k}"));
        }
        if let Some(b) = self.bug {
            s.push_str(&format!(" --planted-bug {}", bug_name(b)));
        }
        s
    }
}

/// A deliberate bug, in Raft or in the host's decisions around it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bug {
    /// In Raft.
    Raft(PlantedBug),
    /// In the host (forwarding, failover, held replies).
    Host(HostBug),
    /// In range splits.
    Split(SplitBug),
}

/// Every planted bug, with its command-line name and what it breaks.
pub const BUGS: [(&str, Bug, &str); 9] = [
    (
        "vote-without-log-check",
        Bug::Raft(PlantedBug::VoteWithoutLogCheck),
        "Raft grants votes without the up-to-date log check",
    ),
    (
        "commit-old-term",
        Bug::Raft(PlantedBug::CommitOldTermByCounting),
        "a leader commits an old term's entry by counting replicas (Raft's figure 8)",
    ),
    (
        "reply-before-apply",
        Bug::Host(HostBug::ReplyBeforeApply),
        "a follower answers a forwarded write before its own state machine applied it",
    ),
    (
        "forward-without-session",
        Bug::Host(HostBug::ForwardWithoutSession),
        "a follower forwards writes under its own session, so a retry after failover applies twice",
    ),
    (
        "stale-reads",
        Bug::Host(HostBug::StaleReads),
        "a follower answers linearizable reads from its own state",
    ),
    (
        "ack-before-sync",
        Bug::Host(HostBug::AckBeforeSync),
        "members acknowledge writes before their log is durable, syncing lazily",
    ),
    (
        "split-without-range-check",
        Bug::Split(SplitBug::NoRangeCheck),
        "a write routed to a range before a split moved its key away applies there anyway (use with --split-keys)",
    ),
    (
        "split-local-revisions",
        Bug::Split(SplitBug::LocalRevisions),
        "after a split each range numbers its writes with its own revisions instead of drawing them from the cluster's revision oracle (use with --split-keys)",
    ),
    (
        "read-at-without-closing",
        Bug::Split(SplitBug::ReadAtWithoutClosing),
        "a range serves its piece of a read over several ranges without closing itself at the read's revision (use with --split-keys)",
    ),
];

/// The command-line name of a planted bug.
pub fn bug_name(b: Bug) -> &'static str {
    BUGS.iter()
        .find(|(_, x, _)| *x == b)
        .map(|(n, _, _)| *n)
        .expect("every bug is listed")
}

/// Parses a planted bug's command-line name.
pub fn parse_bug(s: &str) -> Option<Bug> {
    BUGS.iter().find(|(n, _, _)| *n == s).map(|(_, b, _)| *b)
}

/// What a run found.
#[derive(Debug)]
pub struct RunReport {
    /// The configuration it ran.
    pub config: RunConfig,
    /// The faults this seed switched on.
    pub active: FaultSet,
    /// Every violation found (empty: the run passed).
    pub violations: Vec<String>,
    /// The client history.
    pub history: Vec<Op>,
    /// The linearizability verdict.
    pub verdict: Verdict,
    /// Virtual time the run took.
    pub sim_time: Time,
    /// Simulator events processed.
    pub events: u64,
    /// Messages delivered.
    pub delivered: u64,
    /// Committed entries seen.
    pub committed: usize,
    /// Terms that had a leader.
    pub leader_terms: usize,
    /// Server crashes.
    pub crashes: u64,
    /// Operations with a known outcome.
    pub completed_ops: usize,
    /// Hash of every event: equal for equal seeds (determinism).
    pub trace_hash: u64,
    /// Raft groups (ranges) at the end: the static ones and those splits made.
    pub groups: usize,
    /// The full trace, when asked for.
    pub trace: Option<Trace>,
}

impl RunReport {
    /// Whether every check held.
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }
}

/// What applying one key operation costs a simulated server, in nanoseconds.
pub const APPLY_OP_NANOS: u64 = 20_000;

/// A run that needs more simulator events than this is stuck in a message
/// storm or livelock (a normal run takes about 15 000): it stops and fails.
pub const MAX_EVENTS: u64 = 3_000_000;

fn derive(seed: u64, stream: u64) -> u64 {
    let mut x = seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

struct Harness {
    cfg: RunConfig,
    sim: Sim<Proc>,
    recorder: Recorder,
    /// What members showed each client (read-your-writes, monotonic reads).
    sessions: Vec<Observation>,
    /// Requests over several groups that were served, not refused.
    span_served: u64,
    /// Acknowledged puts with their revisions (the revision-order checker).
    puts: Vec<crate::revisions::Put>,
    /// Reads of every key at one revision (checked against `puts`).
    scans: Vec<crate::revisions::Scan>,
    /// Each client's running operation: its key and when it was invoked.
    invoked: BTreeMap<ProcId, (String, u64)>,
    /// Answers clients got that belonged to another kind of request.
    wrong_answers: u64,
    /// The groups' key ranges.
    ranges: Vec<(KeyRange, ShardId)>,
    /// Raft's invariants, per group.
    invs: BTreeMap<ShardId, Invariants>,
    pending: BTreeMap<ProcId, Pending>,
    incarnation: Vec<u64>,
    crash_rng: Pcg64Mcg,
    /// Decides when the nemesis aims at the current leader instead of the
    /// process its schedule named.
    aim_rng: Pcg64Mcg,
    /// Crashes redirected at a leader: scheduled process → process crashed,
    /// so the schedule's restart of the former restarts the latter.
    crash_alias: BTreeMap<ProcId, ProcId>,
    /// Membership changes of a `joiner` run, in order: not before this time, this change.
    membership: Vec<(Time, ConfChangeSingle)>,
    /// How many of them the leader has applied.
    membership_done: usize,
    last_conf_proposal: Option<Time>,
    crashes: u64,
    timing: ServerTiming,
    /// Faults aimed at leaders right after they append.
    aim: Aim,
}

impl Harness {
    fn node_config(&self, i: usize) -> NodeConfig {
        // The seed also picks the replication shape: small messages (one
        // entry each) and a short pipeline make followers acknowledge entries
        // one at a time, which the commit rule must survive.
        let mut shape = Pcg64Mcg::seed_from_u64(derive(self.cfg.seed, 6));
        let max_msg_bytes = [64 << 10, 1 << 10, 1][shape.random_range(0..3)];
        let max_inflight_msgs = [16, 4, 1][shape.random_range(0..3)];
        let drawn = shape.random_bool(0.5);
        let parallel_leader_append = self.cfg.parallel_leader_append.unwrap_or(drawn);
        // Half the seeds build snapshot images on demand (Raft holds one
        // only while sending it).
        let lazy_snapshot_data = shape.random_bool(0.5);
        let raft = RaftConfig {
            election_tick: 10,
            heartbeat_tick: 2,
            max_inflight_msgs,
            max_msg_bytes,
            read_only: if self.cfg.lease_reads {
                ReadOnlyOption::LeaseBased
            } else {
                ReadOnlyOption::Safe
            },
            lease_drift_ticks: 2,
            snapshot_chunk_bytes: 512,
            lazy_snapshot_data,
            planted_bug: match self.cfg.bug {
                Some(Bug::Raft(b)) => Some(b),
                _ => None,
            },
            ..RaftConfig::default()
        };
        NodeConfig {
            id: i as NodeId + 1,
            raft,
            seed: derive(self.cfg.seed, 1000 + i as u64 * 7919 + self.incarnation[i]),
            snapshot_every: 50,
            max_sessions: 1000,
            max_pending: 1000,
            ticks_per_second: 100,
            parallel_leader_append,
            split_max_keys: self.cfg.split_keys,
            split_bug: match self.cfg.bug {
                Some(Bug::Split(b)) => Some(b),
                _ => None,
            },
            ..NodeConfig::default()
        }
    }

    fn host_config(&self, i: usize) -> HostConfig {
        // The seed picks how often the store commits (the memory engine of
        // the simulator has nothing to make durable, but the schedule runs).
        let mut shape = Pcg64Mcg::seed_from_u64(derive(self.cfg.seed, 8));
        HostConfig {
            name: format!("s{}", i + 1),
            client_urls: Vec::new(),
            store_commit_ticks: [1, 10, 100][shape.random_range(0..3)],
            store_commit_entries: [1, 50, 50_000][shape.random_range(0..3)],
            bug: match self.cfg.bug {
                Some(Bug::Host(b)) => Some(b),
                _ => None,
            },
        }
    }

    /// The initial voters (all servers, but the joiner of a `joiner` run).
    fn voters(&self) -> Vec<NodeId> {
        let n = self.cfg.nodes as NodeId - NodeId::from(self.cfg.joiner);
        (1..=n).collect()
    }

    /// What server `p` bootstraps with when its disk is blank: the joiner
    /// starts with nothing and learns the group from its leader.
    fn boot_voters(&self, p: ProcId) -> Vec<NodeId> {
        if self.cfg.joiner && p + 1 == self.cfg.nodes {
            Vec::new()
        } else {
            self.voters()
        }
    }

    /// Proposes the next membership change on the current leader until that
    /// leader has applied it (retrying through crashes and lost proposals).
    fn drive_membership(&mut self) {
        let Some(&(at, change)) = self.membership.get(self.membership_done) else {
            return;
        };
        let now = self.sim.now();
        if now < at {
            return;
        }
        let Some(l) = self.current_leader() else {
            return;
        };
        let Some(conf) = self
            .sim
            .proc(l)
            .server()
            .and_then(|s| s.node().raft(crate::cluster::SHARD))
            .map(|r| r.conf_state().clone())
        else {
            return;
        };
        let done = !conf.is_joint()
            && match change {
                ConfChangeSingle::AddLearner(id) => conf.learners.contains(&id),
                ConfChangeSingle::AddVoter(id) => conf.voters.contains(&id),
                ConfChangeSingle::Remove(id) => !conf.members().contains(&id),
            };
        if done {
            self.membership_done += 1;
            return;
        }
        if self
            .last_conf_proposal
            .is_some_and(|t| now < t + 100 * MILLIS)
        {
            return;
        }
        self.last_conf_proposal = Some(now);
        if let Some(s) = self.sim.proc_mut(l).server_mut() {
            let cc = ConfChange {
                changes: vec![change],
                transition: ConfChangeTransition::Auto,
            };
            // Refused while another change is pending: tried again later.
            let _ = s
                .host
                .node_mut()
                .propose_conf_change(crate::cluster::SHARD, cc);
        }
    }

    fn drain_clients(&mut self) {
        let now_ns = self.sim.now() * 1000;
        for i in self.cfg.nodes..self.sim.len() {
            let Some(c) = self.sim.proc_mut(i).client_mut() else {
                continue;
            };
            if c.outbox.is_empty() {
                continue;
            }
            let events = std::mem::take(&mut c.outbox);
            for ev in events {
                match ev {
                    ClientEvent::Invoke {
                        client,
                        op,
                        key,
                        value,
                        expected,
                    } => {
                        self.invoked.insert(i, (key.clone(), now_ns));
                        let p = self
                            .recorder
                            .invoke(client, op, &key, value, expected, now_ns);
                        self.pending.insert(i, p);
                    }
                    ClientEvent::Complete { ok, read } => {
                        let p = self
                            .pending
                            .remove(&i)
                            .expect("completion of an invoked op");
                        self.recorder.complete(p, ok, read, now_ns);
                    }
                    ClientEvent::Session {
                        member,
                        key,
                        incarnation,
                        write,
                        revision,
                    } => {
                        // The group that served it, as the member routes the
                        // key now; with splits, a member that went down since
                        // cannot say (another's table may name a newer group
                        // with its own revisions), so the observation is left
                        // out rather than filed under the wrong group.
                        let Some(group) = self.group_of(member, &key) else {
                            continue;
                        };
                        self.sessions.push(Observation {
                            client: i as u64,
                            member,
                            group,
                            incarnation,
                            kind: if write { ObsKind::Write } else { ObsKind::Read },
                            revision,
                        });
                    }
                    ClientEvent::Wrote { revision } => {
                        if let Some((key, call)) = self.invoked.get(&i) {
                            self.puts.push(crate::revisions::Put {
                                call: *call,
                                ret: now_ns,
                                revision,
                                key: key.clone(),
                            });
                        }
                    }
                    ClientEvent::ScanBegins => {
                        self.invoked.insert(i, ("*".into(), now_ns));
                    }
                    ClientEvent::Scanned { at, kvs } => {
                        if let Some((_, call)) = self.invoked.get(&i) {
                            self.scans.push(crate::revisions::Scan {
                                call: *call,
                                ret: now_ns,
                                at,
                                kvs,
                            });
                        }
                    }
                    ClientEvent::SpanServed => self.span_served += 1,
                    ClientEvent::WrongAnswer => self.wrong_answers += 1,
                    ClientEvent::Unknown => {
                        let p = self.pending.remove(&i).expect("outcome of an invoked op");
                        self.recorder.complete_unknown(p);
                    }
                }
            }
        }
    }

    fn observe(&mut self) {
        let now = self.sim.now();
        for i in 0..self.cfg.nodes {
            if self.sim.is_up(i) {
                if let Some(s) = self.sim.proc(i).server() {
                    // Groups a split created are checked from when they appear.
                    for shard in s.node().shards() {
                        self.invs
                            .entry(shard)
                            .or_insert_with(|| Invariants::new(shard));
                    }
                    for inv in self.invs.values_mut() {
                        inv.observe(s.node(), now);
                    }
                }
            }
        }
    }

    fn over_budget(&self) -> bool {
        self.sim.stats().events > MAX_EVENTS
    }

    fn step(&mut self) -> bool {
        let more = self.sim.step();
        self.observe();
        if self.aim.is_on() && self.sim.now() < self.cfg.fault_end {
            let leader = self.current_leader().and_then(|l| {
                let r = self
                    .sim
                    .proc(l)
                    .server()?
                    .node()
                    .raft(crate::cluster::SHARD)?;
                Some((l, r.term(), r.last_index(), r.commit()))
            });
            self.aim.observe(self.sim.now(), leader);
        }
        self.drain_clients();
        self.drive_membership();
        more
    }

    /// The up server that leads the highest term, if any.
    fn current_leader(&self) -> Option<ProcId> {
        (0..self.cfg.nodes)
            .filter(|&i| self.sim.is_up(i))
            .filter_map(|i| {
                let raft = self
                    .sim
                    .proc(i)
                    .server()?
                    .node()
                    .raft(crate::cluster::SHARD)?;
                (raft.role() == synod_raft::Role::Leader).then_some((raft.term(), i))
            })
            .max()
            .map(|(_, i)| i)
    }

    fn apply(&mut self, action: &NemesisAction) {
        // Half of the crashes and partitions aim at the current leader: the
        // schedules that break Raft (figure 8) need leaders to fail right
        // after they replicate, which uniform choice makes rare.
        let aim = self.aim_rng.random_bool(0.5);
        match action {
            NemesisAction::Crash(p) => {
                let p = *p;
                let mut target = p;
                if aim {
                    if let Some(l) = self.current_leader() {
                        target = l;
                    }
                }
                if !self.sim.is_up(target) {
                    target = p;
                }
                if !self.sim.is_up(target) {
                    match (0..self.cfg.nodes).find(|&i| self.sim.is_up(i)) {
                        Some(i) => target = i,
                        None => return,
                    }
                }
                self.crash_alias.insert(p, target);
                self.sim.crash(target);
                self.crashes += 1;
            }
            NemesisAction::Restart(p) => {
                let target = self.crash_alias.remove(p).unwrap_or(*p);
                self.restart(target)
            }
            NemesisAction::Partition(groups) => {
                let isolated;
                let groups = match self.current_leader() {
                    Some(l) if aim => {
                        let rest: Vec<ProcId> = (0..self.cfg.nodes).filter(|&i| i != l).collect();
                        isolated = vec![vec![l], rest];
                        &isolated
                    }
                    _ => groups,
                };
                // Split the servers only: clients keep reaching every side.
                for (gi, a) in groups.iter().enumerate() {
                    for b in groups.iter().skip(gi + 1) {
                        for &x in a {
                            for &y in b {
                                self.sim.block(x, y);
                                self.sim.block(y, x);
                            }
                        }
                    }
                }
            }
            other => {
                self.sim.apply(other);
            }
        }
    }

    /// Carries out the aimed actions due now.
    fn fire_aimed(&mut self) {
        let now = self.sim.now();
        while let Some(a) = self.aim.pop_due(now) {
            match a {
                AimAction::Crash(p) => {
                    if self.sim.is_up(p) {
                        self.sim.crash(p);
                        self.crashes += 1;
                    }
                }
                AimAction::Restart(p) => self.restart(p),
                AimAction::Isolate(p) | AimAction::Rejoin(p) => {
                    for q in (0..self.cfg.nodes).filter(|&q| q != p) {
                        if matches!(a, AimAction::Isolate(_)) {
                            self.sim.block(p, q);
                            self.sim.block(q, p);
                        } else {
                            self.sim.unblock(p, q);
                            self.sim.unblock(q, p);
                        }
                    }
                }
            }
            let leader = self.current_leader();
            self.aim.done(now, a, leader);
        }
    }

    fn restart(&mut self, p: ProcId) {
        if self.sim.is_up(p) {
            return;
        }
        let Some(old) = self.sim.proc(p).server() else {
            return;
        };
        let storage = old.storage.clone();
        storage.vfs.crash(&mut self.crash_rng);
        self.incarnation[p] += 1;
        let mut server = Server::boot(
            self.node_config(p),
            self.host_config(p),
            self.boot_voters(p),
            &self.ranges,
            storage,
            self.timing.clone(),
        );
        server.incarnation = self.incarnation[p];
        for inv in self.invs.values_mut() {
            inv.restarted(p as NodeId + 1);
        }
        self.sim.restart(p, Proc::Server(Box::new(server)));
    }

    /// The group that holds `key` as `member` routes it now (the static
    /// ranges, or another up server's table if the member is down).
    fn group_of(&self, member: NodeId, key: &[u8]) -> Option<ShardId> {
        let routed = |i: ProcId| self.sim.proc(i).server()?.node().shard_for(key);
        let member = proc_of(member);
        if member < self.cfg.nodes && self.sim.is_up(member) {
            if let Some(s) = routed(member) {
                return Some(s);
            }
        }
        if self.cfg.split_keys.is_some() {
            return None;
        }
        Some(
            (0..self.cfg.nodes)
                .filter(|&i| self.sim.is_up(i))
                .find_map(routed)
                .unwrap_or(0),
        )
    }

    /// The group that owns `key`: of the groups the up servers route it
    /// to, the one of the highest generation (a server that has not applied
    /// a split yet still routes the key to the range it left); with it, the
    /// up server whose replica of it applied the most.
    fn owner_of(&self, key: &[u8]) -> Option<(ShardId, ProcId)> {
        (0..self.cfg.nodes)
            .filter(|&i| self.sim.is_up(i))
            .filter_map(|i| {
                let node = self.sim.proc(i).server()?.node();
                let shard = node.shard_for(key)?;
                let gen = node.range_of(shard)?.generation;
                Some(((gen, node.applied(shard)?), shard, i))
            })
            .max()
            .map(|(_, shard, i)| (shard, i))
    }

    /// Checks that the ranges partition the keyspace: each group's range as
    /// its most advanced up replica knows it, over every group, covers
    /// every key exactly once; and that no replica holds a key outside its
    /// group's range.
    fn check_ranges(&self) -> Vec<String> {
        let mut out = Vec::new();
        // Each group's range by its most advanced up replica.
        let mut best: BTreeMap<ShardId, (u64, RangeDesc)> = BTreeMap::new();
        for i in (0..self.cfg.nodes).filter(|&i| self.sim.is_up(i)) {
            let Some(s) = self.sim.proc(i).server() else {
                continue;
            };
            let node = s.node();
            for shard in node.shards() {
                let (Some(desc), Some(applied)) = (node.range_of(shard), node.applied(shard))
                else {
                    continue;
                };
                if best.get(&shard).is_none_or(|(a, _)| applied > *a) {
                    best.insert(shard, (applied, desc.clone()));
                }
                // Data: every key the replica holds lies in its range.
                if let Some(sm) = node.state_machine(shard) {
                    let all = synod_kv::RangeRequest {
                        key: vec![0],
                        range_end: vec![0],
                        keys_only: true,
                        ..Default::default()
                    };
                    if let Ok(r) = sm.kv().range(&all) {
                        if let Some(kv) = r.kvs.iter().find(|kv| !desc.range.contains(&kv.key)) {
                            out.push(format!(
                                "ranges: server {} holds key {:?} in group {shard}, whose range is {:?}",
                                i + 1,
                                String::from_utf8_lossy(&kv.key),
                                desc.range
                            ));
                        }
                    }
                }
            }
        }
        let mut ranges: Vec<(KeyRange, ShardId)> = best
            .into_iter()
            .map(|(shard, (_, d))| (d.range, shard))
            .collect();
        ranges.sort();
        let mut next: Vec<u8> = Vec::new();
        for (r, shard) in &ranges {
            if r.start != next {
                out.push(format!(
                    "ranges: group {shard} starts at {:?} where {:?} was expected: the ranges {}",
                    String::from_utf8_lossy(&r.start),
                    String::from_utf8_lossy(&next),
                    if r.start < next {
                        "overlap"
                    } else {
                        "leave a gap"
                    }
                ));
            }
            next = r.end.clone();
            if next.is_empty() {
                break;
            }
        }
        if ranges.last().is_some_and(|(r, _)| !r.end.is_empty()) {
            out.push("ranges: no range reaches the end of the keyspace".into());
        }
        out
    }

    /// Every workload key's value on the up replica whose group for that
    /// key applied the most.
    fn final_values(&self) -> Option<BTreeMap<String, Option<String>>> {
        let mut out = BTreeMap::new();
        for k in 0..self.cfg.keys.max(1) {
            let key = format!("k{k}");
            let (shard, i) = self.owner_of(key.as_bytes())?;
            let sm = self.sim.proc(i).server()?.node().state_machine(shard)?;
            let r = sm
                .kv()
                .range(&synod_kv::RangeRequest::key(key.clone().into_bytes()))
                .expect("a current-revision read of one key cannot fail");
            let v = r
                .kvs
                .first()
                .map(|kv| String::from_utf8_lossy(&kv.value).into_owned());
            out.insert(key, v);
        }
        Some(out)
    }

    fn clients_done(&self) -> bool {
        (self.cfg.nodes..self.sim.len()).all(|i| match self.sim.proc(i) {
            Proc::Client(c) => c.finished() || c.is_probe(),
            Proc::Server(_) => true,
        })
    }

    fn run_until(&mut self, limit: Time, mut done: impl FnMut(&Harness) -> bool) -> bool {
        while !done(self) {
            if self.over_budget() {
                return false;
            }
            match self.sim.next_event_time() {
                Some(t) if t <= limit => {
                    self.step();
                }
                _ => return false,
            }
        }
        true
    }
}

/// Runs one seed and checks it.
pub fn run(cfg: RunConfig) -> RunReport {
    assert!(cfg.nodes >= 1 && cfg.nodes <= 64, "1..=64 nodes");
    let active = cfg.active_faults();
    let timing = ServerTiming {
        tick: 10 * MILLIS,
        sync_min: 100,
        sync_max: 2 * MILLIS,
        sync_every_ready: cfg.sync_every_ready,
        // About what the server's disk store takes per key written.
        apply_op_nanos: APPLY_OP_NANOS,
    };
    let mut net = NetConfig::reliable();
    net.latency_min = 200;
    net.latency_max = 3 * MILLIS;
    net.fifo = false;
    let clocks = ClockConfig {
        max_skew: 50 * MILLIS,
        max_drift_ppm: 200,
    };
    let mut setup = Pcg64Mcg::seed_from_u64(derive(cfg.seed, 1));
    let clients = cfg.clients.max(1);
    let per_client = cfg.ops.div_ceil(clients as u64);
    let work = Workload {
        ops: per_client,
        keys: cfg.keys.max(1),
        op_timeout: 2 * SECONDS,
        attempt_timeout: 400 * MILLIS,
        think_max: setup.random_range(1..=20) * MILLIS,
        // With splits the ranges move under the workload: which spans lie
        // in one range is not known ahead.
        spans: cfg.groups > 1 && cfg.split_keys.is_none(),
        scans: cfg.split_keys.is_some(),
    };

    let mut h = Harness {
        sim: Sim::new(derive(cfg.seed, 2), Vec::new(), net.clone(), clocks),
        recorder: Recorder::new(),
        sessions: Vec::new(),
        span_served: 0,
        puts: Vec::new(),
        scans: Vec::new(),
        invoked: BTreeMap::new(),
        wrong_answers: 0,
        ranges: split(cfg.keys, cfg.groups),
        invs: split(cfg.keys, cfg.groups)
            .into_iter()
            .map(|(_, s)| (s, Invariants::new(s)))
            .collect(),
        pending: BTreeMap::new(),
        incarnation: vec![0; cfg.nodes],
        crash_rng: Pcg64Mcg::seed_from_u64(derive(cfg.seed, 3)),
        aim_rng: Pcg64Mcg::seed_from_u64(derive(cfg.seed, 5)),
        crash_alias: BTreeMap::new(),
        membership: Vec::new(),
        membership_done: 0,
        last_conf_proposal: None,
        crashes: 0,
        timing: timing.clone(),
        aim: {
            // The seed picks how hard to aim: never, now and then, or often.
            let mut r = Pcg64Mcg::seed_from_u64(derive(cfg.seed, 9));
            let chance = [0.0, 0.1, 0.3, 0.6][r.random_range(0..4)];
            Aim::new(
                Pcg64Mcg::seed_from_u64(derive(cfg.seed, 10)),
                chance,
                active.contains(synod_simnet::Fault::Crash),
                active.contains(synod_simnet::Fault::Partition),
                cfg.nodes,
            )
        },
        cfg: cfg.clone(),
    };
    if cfg.joiner {
        assert!(
            cfg.nodes >= 3,
            "a joiner run needs two initial voters and the joiner"
        );
        let j = cfg.nodes as NodeId;
        let f = cfg.fault_end;
        h.membership = vec![
            (f / 5, ConfChangeSingle::AddLearner(j)),
            (2 * f / 5, ConfChangeSingle::AddVoter(j)),
            (3 * f / 5, ConfChangeSingle::Remove(1)),
        ];
    }
    let mut procs = Vec::new();
    for i in 0..cfg.nodes {
        procs.push(Proc::Server(Box::new(Server::boot(
            h.node_config(i),
            h.host_config(i),
            h.boot_voters(i),
            &h.ranges,
            Storage::new(h.node_config(i).max_sessions),
            timing.clone(),
        ))));
    }
    for c in 0..clients {
        procs.push(Proc::Client(Box::new(Client::new(
            c as u64,
            cfg.nodes,
            work.clone(),
        ))));
    }
    // The probe of the liveness phase: dormant until everything has healed.
    let probe = procs.len();
    let probe_work = Workload {
        ops: cfg.keys.max(1) as u64,
        keys: cfg.keys.max(1),
        op_timeout: cfg.liveness_bound,
        attempt_timeout: 400 * MILLIS,
        think_max: MILLIS,
        spans: false,
        scans: false,
    };
    procs.push(Proc::Client(Box::new(Client::probe(
        clients as u64,
        cfg.nodes,
        probe_work,
    ))));
    h.sim = Sim::new(derive(cfg.seed, 2), procs, net, clocks);
    h.sim.set_tracing(cfg.trace);

    // Fault phase: the nemesis acts on the servers only.
    let mut ncfg = NemesisConfig::new(cfg.nodes, 300 * MILLIS, cfg.fault_end);
    ncfg.max_jump = 30 * MILLIS;
    // Swarm over intensity too: unless told, the seed picks how often the
    // nemesis acts (frequent crash-restart cycles found bugs that a gentle
    // schedule never did).
    ncfg.mean_interval = match cfg.fault_interval {
        Some(i) => i.max(1),
        None => {
            let mut r = Pcg64Mcg::seed_from_u64(derive(cfg.seed, 7));
            [20 * MILLIS, 50 * MILLIS, ncfg.mean_interval][r.random_range(0..3)]
        }
    };
    let schedule = if active.is_empty() {
        Vec::new()
    } else {
        synod_simnet::Nemesis::new(derive(cfg.seed, 4), active.clone(), cfg.nodes, ncfg).schedule()
    };
    let max_time = cfg.fault_end + 60 * SECONDS;
    let mut next = 0;
    loop {
        let t_action = schedule.get(next).map(|(t, _)| *t);
        let t_aim = h.aim.next_time();
        let t_fault = match (t_action, t_aim) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let t_event = h.sim.next_event_time();
        match (t_fault, t_event) {
            (Some(tf), te) if te.is_none_or(|te| tf <= te) => {
                h.sim.run_until(tf);
                if t_action == Some(tf) {
                    let action = schedule[next].1.clone();
                    h.apply(&action);
                    next += 1;
                } else {
                    h.fire_aimed();
                }
            }
            (_, Some(te)) if te <= max_time => {
                h.step();
            }
            _ => break,
        }
        if next >= schedule.len() && h.sim.now() >= cfg.fault_end && h.clients_done() {
            break;
        }
        if h.over_budget() {
            break;
        }
    }
    let mut violations = Vec::new();
    if h.over_budget() {
        violations.push(format!(
            "livelock: more than {MAX_EVENTS} simulator events by t={}ms",
            h.sim.now() / MILLIS
        ));
    }
    if !h.clients_done() && !h.over_budget() {
        violations.push(format!(
            "liveness: the workload did not finish by t={}s",
            max_time / SECONDS
        ));
    }

    h.aim.stop();
    // Liveness phase: everything is healed; restart whoever is down, then a
    // probe client must read every key back within the bound.
    h.sim.heal();
    h.sim.unclog_all();
    for p in 0..cfg.nodes {
        h.restart(p);
    }
    let healed_at = h.sim.now();
    h.sim.with_ctx(probe, |p, ctx| {
        if let Proc::Client(c) = p {
            c.wake(ctx)
        }
    });
    h.drain_clients();
    let deadline = healed_at + cfg.liveness_bound;
    let probed = h.run_until(deadline, |h| match h.sim.proc(probe) {
        Proc::Client(c) => c.finished(),
        Proc::Server(_) => true,
    });
    if !probed && !h.over_budget() {
        violations.push(format!(
            "liveness: after healing at t={}ms the cluster did not answer linearizable reads of every key within {}ms",
            healed_at / MILLIS,
            cfg.liveness_bound / MILLIS
        ));
    }
    // Let followers catch up, then compare replicas.
    h.run_until(h.sim.now() + SECONDS, |_| false);
    h.drain_clients();

    if cfg.joiner {
        if h.membership_done < h.membership.len() {
            violations.push(format!(
                "liveness: {} of {} membership changes applied by the end",
                h.membership_done,
                h.membership.len()
            ));
        } else {
            // The joiner caught up (by log or snapshot) with the group.
            let j = cfg.nodes - 1;
            let applied = |i: ProcId| {
                h.sim
                    .proc(i)
                    .server()
                    .and_then(|s| s.node().applied(crate::cluster::SHARD))
                    .unwrap_or(0)
            };
            let best = (1..cfg.nodes).map(applied).max().unwrap_or(0);
            if applied(j) < best {
                violations.push(format!(
                    "liveness: the joiner applied {} of {best} entries",
                    applied(j)
                ));
            }
        }
    }
    for inv in h.invs.values() {
        violations.extend(inv.violations.iter().cloned());
    }
    if cfg.split_keys.is_some() || cfg.groups > 1 {
        violations.extend(h.check_ranges());
    }
    // One sequence of revisions for every range (a static split's groups,
    // `--groups`, number their own).
    if cfg.groups == 1 {
        violations.extend(crate::revisions::check(&h.puts));
        violations.extend(crate::revisions::check_scans(&h.puts, &h.scans));
    }
    if h.span_served > 0 {
        violations.push(format!(
            "routing: {} requests over several groups' keys were served instead of refused",
            h.span_served
        ));
    }
    if h.wrong_answers > 0 {
        violations.push(format!(
            "answers: {} requests got the answer to another kind of request",
            h.wrong_answers
        ));
    }
    for v in check_sessions(&h.sessions) {
        violations.push(format!("session: {}", v.detail));
    }
    let history = std::mem::take(&mut h.recorder).into_history();
    let verdict = synod_check::check(
        &history,
        &synod_check::linear::Config {
            time_limit: Some(std::time::Duration::from_secs(60)),
            threads: 1,
            ..Default::default()
        },
    )
    .verdict;
    match &verdict {
        Verdict::Linearizable => {}
        Verdict::NotLinearizable { key, detail } => {
            violations.push(format!("linearizability: key {key}: {detail}"))
        }
        // Inconclusive, not a violation; reported so a person can look.
        Verdict::Undecided { key } => {
            violations.push(format!("linearizability undecided on key {key} within 60s"))
        }
    }
    // No acknowledged write lost: the most advanced replica's final state
    // must be explained by the history.
    if let Some(final_values) = h.final_values() {
        for lost in synod_check::check_lost(&history, &final_values) {
            violations.push(format!("lost write: {lost}"));
        }
    } else {
        violations.push("no replica is up at the end".to_string());
    }
    let completed_ops = history.iter().filter(|o| o.ok.is_some()).count();
    let stats = h.sim.stats();
    RunReport {
        active,
        violations,
        verdict,
        sim_time: h.sim.now(),
        events: stats.events,
        delivered: stats.delivered,
        committed: h.invs.values().map(Invariants::committed).sum(),
        leader_terms: h.invs.values().map(Invariants::leader_terms).sum(),
        crashes: h.crashes,
        completed_ops,
        trace_hash: h.sim.trace_hash(),
        groups: h.invs.len(),
        trace: if cfg.trace {
            Some(h.sim.take_trace())
        } else {
            None
        },
        history,
        config: cfg,
    }
}
