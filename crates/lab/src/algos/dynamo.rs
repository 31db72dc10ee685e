//! Dynamo-style replication: N replicas per key on a hash ring, R and W
//! quorums, a sloppy quorum with hinted handoff when home replicas do not
//! answer, read repair, and Merkle-tree anti-entropy.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use rand::{Rng, SeedableRng};
use synod_simnet::{ClockConfig, Ctx, Fault, NetConfig, Pcg64Mcg, ProcId, Process, Sim, Time};

use crate::algos::consistent_hashing::mix;
use crate::algos::gossip_common::sim_options;
use crate::harness::{fault_schedule, net_for};
use crate::registry::{Algorithm, FaultModel};
use crate::report::{Check, Cost, LabOptions, LabReport, LabRun};

/// The registry entry.
pub const ALGORITHM: Algorithm = Algorithm {
    name: "dynamo",
    family: "replication",
    summary: "N, R, W quorums; sloppy quorum, hinted handoff, read repair, Merkle anti-entropy",
    description: "Dynamo (DeCandia et al. 2007). Nodes own 8 tokens each on a 64-bit ring; a key's\n\
preference list is the first N = 3 distinct nodes clockwise from its hash, then the\n\
next ones as fallbacks. Any node coordinates a request. put: the version is the\n\
coordinator's clock and id (last writer wins); Store goes to the N home replicas and\n\
the put succeeds on W acks. get: Fetch from the N home replicas, answer the newest of\n\
the first R replies, then read repair: the newest version to every replier that was\n\
behind. Sloppy quorum: a home replica silent for 150 ms (latency 1-40 ms) is replaced by the next\n\
fallback, which keeps the write with a hint naming the home and hands it off when the\n\
home answers again (every 100 ms). Anti-entropy (every 200 ms): a node and a random\n\
co-replica compare a Merkle tree (16 leaves) of the keys both hold and exchange only\n\
the keys of differing leaves.\n\
Defaults R = W = 2. Stale read: a read returning a version older than a write acked\n\
before the read began. With R + W > N every read quorum meets every write quorum, so\n\
a read served and written by home replicas only is never stale; the run also repeats\n\
the workload for other R, W and reports each stale count beside R + W against N.\n\
Guarantees checked: strict-quorum reads are fresh; every acked write survives; after\n\
the faults heal, handoff and anti-entropy bring every key's home replicas to its\n\
newest version.\n\
Cost: N Stores per put and N Fetches per get without failures; anti-entropy sends\n\
16 hashes per exchange and only the keys of differing leaves.",
    variants: &[
        (
            "r1w1",
            "weaker setting: R = W = 1 (R + W ≤ N): strict-quorum reads can be stale",
        ),
        (
            "no-repair",
            "planted bug: no hinted handoff, read repair or anti-entropy: missed writes stay missing",
        ),
    ],
    default_nodes: 8,
    nodes: (3, 5_000),
    faults: FaultModel {
        tolerates: &[
            Fault::Loss,
            Fault::Duplicate,
            Fault::Reorder,
            Fault::Partition,
            Fault::OneWay,
            Fault::Clog,
            Fault::Crash,
        ],
        outside: &[],
        refused: "versions are the coordinators' clocks (last writer wins), so clock skew reorders writes; that is ntp's and hlc's subject",
    },
    run,
};

/// A version: (coordinator's clock, coordinator), ordered.
pub type Version = (Time, ProcId);

/// Dynamo messages.
#[derive(Clone, Debug)]
pub enum DynMsg {
    /// Keep `key` at `version`; `hint` names the home replica it stands in for.
    Store {
        /// The request.
        op: u64,
        /// The key.
        key: u32,
        /// The version.
        version: Version,
        /// The home replica this copy is for, if a fallback.
        hint: Option<ProcId>,
    },
    /// Stored.
    StoreAck(u64),
    /// What version of `key` do you hold?
    Fetch(u64, u32),
    /// This one.
    FetchReply(u64, Option<Version>),
    /// A hinted copy handed to its home.
    Handoff(u32, Version),
    /// The home has it.
    HandoffAck(u32, Version),
    /// Anti-entropy: my Merkle leaves for the keys we share.
    Merkle([u64; 16]),
    /// Anti-entropy: my versions of the keys in the leaves that differ;
    /// `reply` asks for yours in return.
    Entries(Vec<(u32, Option<Version>)>, bool),
}

#[derive(Clone, Debug)]
struct Op {
    key: u32,
    put: Option<Version>,
    targets: Vec<ProcId>,
    answered: BTreeSet<ProcId>,
    replies: Vec<(ProcId, Option<Version>)>,
    next_fallback: usize,
    strict: bool,
    done: bool,
    start: Time,
}

/// A finished client request, for the checker.
#[derive(Clone, Copy, Debug)]
pub struct Done {
    /// The key.
    pub key: u32,
    /// A put's version, or a get's answer.
    pub version: Option<Version>,
    /// A put (true) or a get.
    pub put: bool,
    /// Start and end, true time (clocks are perfect).
    pub span: (Time, Time),
    /// Served by home replicas only.
    pub strict: bool,
}

/// The ring, shared by all nodes: tokens sorted.
#[derive(Debug)]
pub struct Ring {
    tokens: Vec<(u64, ProcId)>,
    n: usize,
    /// Each key's N home replicas.
    homes: Vec<Vec<ProcId>>,
    /// Each node's keys (those it is a home replica of).
    owned: Vec<Vec<u32>>,
}

impl Ring {
    fn new(nodes: usize, seed: u64, keys: u32) -> Self {
        let mut tokens: Vec<(u64, ProcId)> = (0..nodes)
            .flat_map(|p| (0..8u64).map(move |t| (mix(seed ^ mix((p as u64) << 8 | t)), p)))
            .collect();
        tokens.sort_unstable();
        let mut ring = Ring {
            tokens,
            n: nodes,
            homes: vec![],
            owned: vec![vec![]; nodes],
        };
        ring.homes = (0..keys).map(|k| ring.preference(k, N)).collect();
        for (k, h) in ring.homes.iter().enumerate() {
            for &p in h {
                ring.owned[p].push(k as u32);
            }
        }
        ring
    }

    /// The first `count` distinct nodes clockwise from `key`'s hash.
    pub fn preference(&self, key: u32, count: usize) -> Vec<ProcId> {
        let h = mix(u64::from(key) ^ 0x006b_6579);
        let start = self.tokens.partition_point(|&(t, _)| t < h);
        let mut out = vec![];
        for i in 0..self.tokens.len() {
            let p = self.tokens[(start + i) % self.tokens.len()].1;
            if !out.contains(&p) {
                out.push(p);
                if out.len() == count.min(self.n) {
                    break;
                }
            }
        }
        out
    }
}

/// One node: store, hints, and the requests it coordinates.
#[derive(Clone, Debug)]
pub struct Node {
    ring: Arc<Ring>,
    r: usize,
    w: usize,
    repair: bool,
    /// The store.
    pub store: BTreeMap<u32, Version>,
    /// Hinted copies: (home, key) → version.
    pub hinted: BTreeMap<(ProcId, u32), Version>,
    ops: BTreeMap<u64, Op>,
    next_op: u64,
    /// Finished requests.
    pub done: Vec<Done>,
    /// Keys sent by anti-entropy.
    pub ae_keys: u64,
    /// Anti-entropy exchanges started.
    pub ae_rounds: u64,
}

/// Replicas per key.
pub const N: usize = 3;
const OP_TIMEOUT: Time = 150_000;
const HANDOFF: u64 = 1;
const ENTROPY: u64 = 2;
const OP_BASE: u64 = 1 << 32;

fn merge(store: &mut BTreeMap<u32, Version>, key: u32, v: Version) -> bool {
    match store.get(&key) {
        Some(&old) if old >= v => false,
        _ => {
            store.insert(key, v);
            true
        }
    }
}

impl Node {
    fn home(&self, key: u32) -> Vec<ProcId> {
        self.ring.homes[key as usize].clone()
    }

    /// Keys whose home replicas include both `a` and `b`.
    fn shared(&self, a: ProcId, b: ProcId) -> Vec<u32> {
        self.ring.owned[a]
            .iter()
            .copied()
            .filter(|&k| self.ring.homes[k as usize].contains(&b))
            .collect()
    }

    fn leaves(&self, keys: &[u32]) -> [u64; 16] {
        let mut l = [0u64; 16];
        for &k in keys {
            let v = self.store.get(&k).copied().unwrap_or((0, 0));
            let h = mix(u64::from(k) ^ mix(v.0 ^ mix(v.1 as u64)));
            l[(mix(u64::from(k)) % 16) as usize] ^= h;
        }
        l
    }

    /// Starts a client request at this coordinator.
    pub fn request(&mut self, ctx: &mut Ctx<'_, DynMsg>, key: u32, put: bool) {
        let id = self.next_op;
        self.next_op += 1;
        let targets = self.home(key);
        let version = put.then(|| (ctx.now(), ctx.id()));
        for &t in &targets {
            let msg = match version {
                Some(v) => DynMsg::Store {
                    op: id,
                    key,
                    version: v,
                    hint: None,
                },
                None => DynMsg::Fetch(id, key),
            };
            ctx.send(t, msg);
        }
        self.ops.insert(
            id,
            Op {
                key,
                put: version,
                targets,
                answered: BTreeSet::new(),
                replies: vec![],
                next_fallback: N,
                strict: true,
                done: false,
                start: ctx.now(),
            },
        );
        ctx.set_timer(OP_TIMEOUT, OP_BASE + id);
    }

    fn answered(&mut self, ctx: &mut Ctx<'_, DynMsg>, id: u64, from: ProcId, v: Option<Version>) {
        let Some(op) = self.ops.get_mut(&id) else {
            return;
        };
        if !op.answered.insert(from) {
            return;
        }
        if !self.ring.homes[op.key as usize].contains(&from) {
            op.strict = false;
        }
        op.replies.push((from, v));
        let need = if op.put.is_some() { self.w } else { self.r };
        if !op.done && op.replies.len() >= need {
            op.done = true;
            let version = match op.put {
                Some(v) => Some(v),
                None => op.replies.iter().filter_map(|r| r.1).max(),
            };
            let d = Done {
                key: op.key,
                version,
                put: op.put.is_some(),
                span: (op.start, ctx.now()),
                strict: op.strict,
            };
            self.done.push(d);
        }
        let op = &self.ops[&id];
        if op.replies.len() == op.targets.len() {
            if op.put.is_none() {
                self.read_repair(ctx, id);
            } else {
                self.ops.remove(&id);
            }
        }
    }

    fn read_repair(&mut self, ctx: &mut Ctx<'_, DynMsg>, id: u64) {
        let Some(op) = self.ops.remove(&id) else {
            return;
        };
        if !self.repair {
            return;
        }
        let Some(newest) = op.replies.iter().filter_map(|r| r.1).max() else {
            return;
        };
        for &(p, v) in &op.replies {
            if v < Some(newest) {
                ctx.send(
                    p,
                    DynMsg::Store {
                        op: u64::MAX,
                        key: op.key,
                        version: newest,
                        hint: None,
                    },
                );
            }
        }
    }

    /// A request's timer: home replicas that did not answer are replaced
    /// by fallbacks (sloppy quorum), or a finished read is repaired.
    fn op_timeout(&mut self, ctx: &mut Ctx<'_, DynMsg>, id: u64) {
        let Some(op) = self.ops.get(&id) else {
            return;
        };
        if op.done && op.put.is_none() {
            self.read_repair(ctx, id);
            return;
        }
        if op.done {
            self.ops.remove(&id);
            return;
        }
        let ext = self.ring.preference(op.key, self.ring.n);
        let silent: Vec<ProcId> = op
            .targets
            .iter()
            .copied()
            .filter(|t| !op.answered.contains(t))
            .collect();
        let (key, put) = (op.key, op.put);
        let mut next = op.next_fallback;
        let mut sent = vec![];
        for home in silent {
            let Some(&f) = ext.get(next) else { break };
            next += 1;
            let msg = match put {
                Some(v) => DynMsg::Store {
                    op: id,
                    key,
                    version: v,
                    hint: self.home(key).contains(&home).then_some(home),
                },
                None => DynMsg::Fetch(id, key),
            };
            ctx.send(f, msg);
            sent.push(f);
        }
        let op = self.ops.get_mut(&id).expect("still pending");
        op.next_fallback = next;
        op.targets.extend(sent);
        if next < ext.len() + N {
            ctx.set_timer(OP_TIMEOUT, OP_BASE + id);
        }
    }
}

impl Process for Node {
    type Msg = DynMsg;

    fn on_start(&mut self, ctx: &mut Ctx<'_, DynMsg>) {
        if self.repair {
            let a = ctx.rng().random_range(1..100_000);
            let b = ctx.rng().random_range(1..200_000);
            ctx.set_timer(a, HANDOFF);
            ctx.set_timer(b, ENTROPY);
        }
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_, DynMsg>, tag: u64) {
        match tag {
            HANDOFF => {
                for (&(home, key), &v) in &self.hinted {
                    ctx.send(home, DynMsg::Handoff(key, v));
                }
                ctx.set_timer(100_000, HANDOFF);
            }
            ENTROPY => {
                let me = ctx.id();
                // A random co-replica: a home replica of a random key of ours.
                let mine: Vec<u32> = self.store.keys().copied().collect();
                if !mine.is_empty() {
                    let k = mine[ctx.rng().random_range(0..mine.len())];
                    let peers: Vec<ProcId> =
                        self.home(k).into_iter().filter(|&p| p != me).collect();
                    if !peers.is_empty() {
                        let peer = peers[ctx.rng().random_range(0..peers.len())];
                        let l = self.leaves(&self.shared(me, peer));
                        self.ae_rounds += 1;
                        ctx.send(peer, DynMsg::Merkle(l));
                    }
                }
                ctx.set_timer(200_000, ENTROPY);
            }
            t if t >= OP_BASE => self.op_timeout(ctx, t - OP_BASE),
            _ => {}
        }
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, DynMsg>, from: ProcId, msg: DynMsg) {
        let me = ctx.id();
        match msg {
            DynMsg::Store {
                op,
                key,
                version,
                hint,
            } => {
                match hint {
                    Some(h) if h != me => {
                        let e = self.hinted.entry((h, key)).or_insert(version);
                        *e = (*e).max(version);
                    }
                    _ => {
                        merge(&mut self.store, key, version);
                    }
                }
                if op != u64::MAX {
                    ctx.send(from, DynMsg::StoreAck(op));
                }
            }
            DynMsg::StoreAck(op) => self.answered(ctx, op, from, None),
            DynMsg::Fetch(op, key) => {
                let v = self.store.get(&key).copied();
                ctx.send(from, DynMsg::FetchReply(op, v));
            }
            DynMsg::FetchReply(op, v) => self.answered(ctx, op, from, v),
            DynMsg::Handoff(key, v) => {
                merge(&mut self.store, key, v);
                ctx.send(from, DynMsg::HandoffAck(key, v));
            }
            DynMsg::HandoffAck(key, v) => {
                if self.hinted.get(&(from, key)) == Some(&v) {
                    self.hinted.remove(&(from, key));
                }
            }
            DynMsg::Merkle(theirs) => {
                let keys = self.shared(me, from);
                let mine = self.leaves(&keys);
                let differ: Vec<(u32, Option<Version>)> = keys
                    .iter()
                    .filter(|&&k| {
                        let b = (mix(u64::from(k)) % 16) as usize;
                        mine[b] != theirs[b]
                    })
                    .map(|&k| (k, self.store.get(&k).copied()))
                    .collect();
                if !differ.is_empty() {
                    self.ae_keys += differ.len() as u64;
                    ctx.send(from, DynMsg::Entries(differ, true));
                }
            }
            DynMsg::Entries(entries, reply) => {
                let mut back = vec![];
                for (k, v) in entries {
                    let mine = self.store.get(&k).copied();
                    match (v, mine) {
                        (Some(v), _) if Some(v) > mine => {
                            merge(&mut self.store, k, v);
                        }
                        (_, Some(m)) if Some(m) > v => back.push((k, Some(m))),
                        _ => {}
                    }
                }
                if reply && !back.is_empty() {
                    self.ae_keys += back.len() as u64;
                    ctx.send(from, DynMsg::Entries(back, false));
                }
            }
        }
    }

    fn msg_bytes(msg: &DynMsg) -> usize {
        match msg {
            DynMsg::Merkle(_) => 128,
            DynMsg::Entries(e, _) => 16 * e.len() + 8,
            _ => 32,
        }
    }

    fn msg_label(msg: &DynMsg) -> String {
        match msg {
            DynMsg::Store { key, hint, .. } => match hint {
                Some(h) => format!("Store(k{key} for P{h})"),
                None => format!("Store(k{key})"),
            },
            DynMsg::StoreAck(_) => "StoreAck".into(),
            DynMsg::Fetch(_, k) => format!("Fetch(k{k})"),
            DynMsg::FetchReply(..) => "FetchReply".into(),
            DynMsg::Handoff(k, _) => format!("Handoff(k{k})"),
            DynMsg::HandoffAck(k, _) => format!("HandoffAck(k{k})"),
            DynMsg::Merkle(_) => "Merkle".into(),
            DynMsg::Entries(e, _) => format!("Entries({})", e.len()),
        }
    }
}

/// What one run of the workload yields.
struct Outcome {
    sim: Sim<Node>,
    done: Vec<Done>,
}

const UNTIL: Time = 6_000_000;

fn workload(opts: &LabOptions, r: usize, w: usize, repair: bool, trace: bool) -> Outcome {
    let n = opts.nodes;
    let keys = (2 * n as u32).max(16);
    let ring = Arc::new(Ring::new(n, opts.seed, keys));
    let make = |_: ProcId| Node {
        ring: ring.clone(),
        r,
        w,
        repair,
        store: BTreeMap::new(),
        hinted: BTreeMap::new(),
        ops: BTreeMap::new(),
        next_op: 0,
        done: vec![],
        ae_keys: 0,
        ae_rounds: 0,
    };
    let mut so = sim_options(n);
    so.tracing = trace;
    let mut sim = Sim::with_options(
        opts.seed,
        (0..n).map(make).collect(),
        net_for(
            &opts.faults,
            NetConfig {
                latency_max: 40_000,
                ..NetConfig::reliable()
            },
        ),
        ClockConfig::perfect(),
        so,
    );
    if n > 200 {
        sim.set_label_counts(false);
    }
    // Requests: puts and gets on a few hot keys, from random coordinators,
    // during the first half of the run (faults act from 10 % to 60 %).
    let requests = 400 + 2 * n;
    let hot = keys.min(2);
    let mut rng = Pcg64Mcg::seed_from_u64(opts.seed ^ 0xd1a0);
    let mut plan: Vec<(Time, NemesisStep)> = (0..requests)
        .map(|_| {
            let at = rng.random_range(UNTIL / 20..UNTIL / 2);
            let key = if rng.random_bool(0.7) {
                rng.random_range(0..hot)
            } else {
                rng.random_range(0..keys)
            };
            (
                at,
                NemesisStep::Request(rng.random_range(0..n), key, rng.random_bool(0.25)),
            )
        })
        .collect();
    plan.extend(
        fault_schedule(opts, UNTIL)
            .into_iter()
            .map(|(t, a)| (t, NemesisStep::Fault(a))),
    );
    plan.sort_by_key(|(t, _)| *t);
    for (t, step) in plan {
        sim.run_until(t);
        match step {
            NemesisStep::Request(c, key, put) => {
                if sim.is_up(c) {
                    sim.with_ctx(c, |node, ctx| node.request(ctx, key, put));
                }
            }
            NemesisStep::Fault(a) => match a {
                synod_simnet::NemesisAction::Crash(p) => sim.crash(p),
                synod_simnet::NemesisAction::Restart(p) => {
                    // The store and hints are on disk; requests in flight are lost.
                    let mut fresh = sim.proc(p).clone();
                    fresh.ops.clear();
                    sim.restart(p, fresh);
                }
                other => {
                    sim.apply(&other);
                }
            },
        }
    }
    sim.run_until(UNTIL);
    let done: Vec<Done> = sim.procs().iter().flat_map(|p| p.done.clone()).collect();
    Outcome { sim, done }
}

enum NemesisStep {
    Request(ProcId, u32, bool),
    Fault(synod_simnet::NemesisAction),
}

/// Stale reads among `done`: (strict ones, all).
fn stale(done: &[Done]) -> (Vec<String>, usize) {
    let mut strict = vec![];
    let mut all = 0;
    for g in done.iter().filter(|d| !d.put) {
        let before = done
            .iter()
            .filter(|p| p.put && p.key == g.key && p.span.1 < g.span.0)
            .filter_map(|p| p.version)
            .max();
        if before.is_some() && g.version < before {
            all += 1;
            let writer_strict = done
                .iter()
                .any(|p| p.put && p.version == before && p.strict);
            if g.strict && writer_strict {
                strict.push(format!(
                    "get k{} at {} ms read {:?}, a put of {:?} was acked before",
                    g.key,
                    g.span.0 / 1_000,
                    g.version,
                    before
                ));
            }
        }
    }
    (strict, all)
}

fn run(opts: &LabOptions) -> LabRun {
    let n = opts.nodes;
    let (r, w) = if opts.is_variant("r1w1") { (1, 1) } else { (2, 2) };
    let repair = !opts.is_variant("no-repair");
    let Outcome { mut sim, done } = workload(opts, r, w, repair, true);
    let trace = sim.take_trace();
    let mut report = LabReport::new(ALGORITHM.name, opts);
    let (strict_stale, all_stale) = stale(&done);
    let gets = done.iter().filter(|d| !d.put).count();
    report.checks.push(Check::new(
        "a read whose quorums were home replicas sees every write acked before it (R + W > N)",
        strict_stale.is_empty(),
        if strict_stale.is_empty() {
            format!("{gets} gets; R = {r}, W = {w}, N = {N}")
        } else {
            format!("R = {r}, W = {w}: {}", strict_stale[..strict_stale.len().min(2)].join("; "))
        },
    ));
    // Convergence: every key's home replicas hold its newest acked version.
    let ring = Ring::new(n, opts.seed, (2 * n as u32).max(16));
    let mut newest: BTreeMap<u32, Version> = BTreeMap::new();
    for d in done.iter().filter(|d| d.put) {
        if let Some(v) = d.version {
            let e = newest.entry(d.key).or_insert(v);
            *e = (*e).max(v);
        }
    }
    let mut behind: Vec<String> = vec![];
    for (&k, &v) in &newest {
        for &p in &ring.homes[k as usize] {
            if sim.proc(p).store.get(&k).copied() < Some(v) && behind.len() < 4 {
                behind.push(format!("P{p} k{k}"));
            }
        }
    }
    report.checks.push(Check::new(
        "acked writes survive: after healing, every home replica holds its key's newest acked version",
        behind.is_empty(),
        if behind.is_empty() {
            format!("{} keys written", newest.len())
        } else {
            format!("behind: {}", behind.join(", "))
        },
    ));
    let hints_left: usize = sim.procs().iter().map(|p| p.hinted.len()).sum();
    report.checks.push(Check::new(
        "every hinted copy is handed off",
        !repair || hints_left == 0,
        format!("{hints_left} hints left"),
    ));
    let s = sim.stats();
    let plain = opts.faults.is_empty();
    let puts = done.iter().filter(|d| d.put).count() as f64;
    let counted = n <= 200;
    let mut store_cost = Cost::new(
        "Store messages per put",
        s.sent_of("Store") as f64 / puts.max(1.0),
        "N, plus fallbacks and read repairs",
        None,
    );
    if plain {
        store_cost = store_cost.at_least(N as f64);
    }
    if counted {
        // Messages are counted by label only up to 200 nodes.
        report.costs.push(store_cost);
        report.costs.push(Cost::new(
            "Fetch messages per get",
            s.sent_of("Fetch") as f64 / (gets as f64).max(1.0),
            "N",
            plain.then_some(N as f64),
        ));
    }
    report.costs.push(Cost::new(
        "stale reads (any quorum)",
        all_stale as f64,
        "0 when R + W > N and every quorum is of home replicas",
        None,
    ));
    let ae_keys: u64 = sim.procs().iter().map(|p| p.ae_keys).sum();
    let ae_rounds: u64 = sim.procs().iter().map(|p| p.ae_rounds).sum();
    report.costs.push(Cost::new(
        "anti-entropy keys sent per exchange",
        ae_keys as f64 / (ae_rounds as f64).max(1.0),
        "only the keys of differing Merkle leaves; 0 once in sync",
        None,
    ));
    // The same workload for other R and W, fault-free: stale reads against R + W vs N.
    if n <= 64 && plain {
        for (r2, w2) in [(1, 1), (1, 2), (2, 1), (1, 3), (2, 2), (3, 1)] {
            let o = workload(&LabOptions::new(n, opts.seed), r2, w2, true, false);
            let (_, stale_all) = stale(&o.done);
            let fresh = r2 + w2 > N;
            report.costs.push(Cost::new(
                &format!("stale reads, R={r2} W={w2} (R+W {} N)", if fresh { ">" } else { "≤" }),
                stale_all as f64,
                "0 when R + W > N; may be > 0 when R + W ≤ N",
                fresh.then_some(0.0),
            ));
        }
    }
    LabRun::new(report, trace)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(variant: Option<&str>, faults: &[Fault], seed: u64) -> LabReport {
        let mut o = LabOptions::new(8, seed);
        o.variant = variant.map(str::to_string);
        o.faults = faults.iter().copied().collect();
        run(&o).report
    }

    #[test]
    fn quorums_hold_and_replicas_converge() {
        for seed in 0..3 {
            let r = with(None, &[], seed);
            assert!(r.passed(), "{r:?}");
            for f in [Fault::Crash, Fault::Partition, Fault::Loss] {
                let r = with(None, &[f], seed);
                assert!(r.passed(), "{f:?}: {r:?}");
            }
        }
    }

    #[test]
    fn small_quorums_read_stale() {
        let r = with(Some("r1w1"), &[], 1);
        let sweep = r.costs.iter().find(|c| c.name.starts_with("stale reads, R=1 W=1"));
        assert!(sweep.is_some_and(|c| c.measured > 0.0), "{r:?}");
        assert!((0..5).any(|s| !with(Some("r1w1"), &[], s).checks[0].held));
    }

    #[test]
    fn without_repair_missed_writes_stay_missing() {
        assert!((0..5).any(|s| !with(Some("no-repair"), &[Fault::Loss], s).checks[1].held));
    }
}
