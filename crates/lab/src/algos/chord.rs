//! Chord: a ring of node ids with finger tables, so a lookup takes
//! O(log N) hops; nodes join through any member, and periodic stabilize and
//! fix-fingers repair the ring and the fingers under churn.

use std::collections::{BTreeMap, BTreeSet};

use rand::{Rng, SeedableRng};
use synod_simnet::{ClockConfig, Ctx, Fault, NetConfig, Pcg64Mcg, ProcId, Process, Sim, Time};

use crate::algos::consistent_hashing::mix;
use crate::algos::gossip_common::sim_options;
use crate::harness::net_for;
use crate::registry::{Algorithm, FaultModel};
use crate::report::{Check, Cost, LabOptions, LabReport, LabRun};

/// The registry entry.
pub const ALGORITHM: Algorithm = Algorithm {
    name: "chord",
    family: "partitioning and overlays",
    summary: "Chord: finger tables, join, stabilize, fix-fingers; ½ log2 N hops; lookups survive churn",
    description: "Chord (Stoica et al. 2001) on a 64-bit ring; a node's id is a hash of its address.\n\
Each node keeps a successor list of r = ⌈log2 N⌉ nodes, a predecessor and 64 fingers,\n\
finger[i] = successor(id + 2^i). A lookup of key k is routed recursively: a node whose\n\
(id, successor] holds k answers the origin with its successor; otherwise it forwards\n\
to its closest finger preceding k. Each forward is acknowledged; a hop that does not\n\
acknowledge in 300 ms is taken as gone, dropped from the tables, and routed around.\n\
join: P0 starts the ring; every other node looks its own id up through a member and\n\
takes the answer as its successor. stabilize (every 200 ms): ask the successor for its\n\
predecessor and successor list, adopt the predecessor if it lies between, then\n\
notify the successor; a successor that stays silent is replaced by the next on the\n\
list; the predecessor is pinged and cleared when silent. fix-fingers (every 200 ms):\n\
refresh the next finger (a finger inside (id, successor] needs no message).\n\
The run: N nodes start as a stable ring (each knows its successors and predecessor,\n\
as if long joined) with empty fingers; fix-fingers builds them for 4.8 s; then\n\
200 lookups from random nodes; then max(N/10, 2) nodes leave (crash) and as many new ones join\n\
while 100 lookups run (P0, the well-known entry point for joins, stays);\n\
after a settling time, 100 more.\n\
Guarantee: once stabilized, every node's successor is the next live id and every\n\
lookup returns the key's true successor; lookups during churn still complete.\n\
Cost: ½ log2 N hops per lookup on average (at most log2 N w.h.p.); about log2 N\n\
distinct fingers per node.",
    variants: &[
        (
            "no-successor-list",
            "planted bug: a successor list of one and no rejoin: a departure cuts the ring",
        ),
        (
            "no-fingers",
            "weaker setting: route by successor only: N/2 hops per lookup",
        ),
    ],
    default_nodes: 16,
    nodes: (4, 20_000),
    faults: FaultModel {
        tolerates: &[Fault::Reorder, Fault::Skew],
        outside: &[],
        refused: "a silent hop is taken as a departure, so lost, clogged or partitioned links would evict live nodes (the run makes its own churn: departures and joins)",
    },
    run,
};

/// Chord messages.
#[derive(Clone, Debug)]
pub enum ChordMsg {
    /// Find the successor of `key` for `origin`'s query `qid`; `fwd`
    /// identifies this forward for its acknowledgement.
    Find {
        /// The key.
        key: u64,
        /// Who asked.
        origin: ProcId,
        /// The origin's query.
        qid: u64,
        /// Forwards so far.
        hops: u32,
        /// This forward.
        fwd: u64,
    },
    /// The forward `fwd` arrived.
    Ack(u64),
    /// The answer to query `qid`.
    Found {
        /// The query.
        qid: u64,
        /// The key's successor.
        node: ProcId,
        /// Forwards it took.
        hops: u32,
    },
    /// Stabilize: who is your predecessor?
    GetPred,
    /// My predecessor and successor list.
    PredIs(Option<ProcId>, Vec<ProcId>),
    /// I think I am your predecessor.
    Notify,
    /// Are you there (predecessor check)?
    Ping,
    /// Yes.
    Pong,
}

/// What a query is for.
#[derive(Clone, Copy, Debug)]
enum Purpose {
    Join,
    Finger(usize),
    Lookup(usize),
}

#[derive(Clone, Debug)]
struct Query {
    key: u64,
    purpose: Purpose,
    tries: u32,
}

/// A measured lookup's answer.
#[derive(Clone, Copy, Debug)]
pub struct Answer {
    /// The node returned.
    pub node: ProcId,
    /// Forwards taken.
    pub hops: u32,
}

/// One Chord node.
#[derive(Clone, Debug)]
pub struct Node {
    seed: u64,
    r: usize,
    use_fingers: bool,
    /// Whether it has a successor.
    pub joined: bool,
    /// Successor list.
    pub succ: Vec<ProcId>,
    /// Predecessor.
    pub pred: Option<ProcId>,
    /// finger[i] = successor(id + 2^i), as last refreshed.
    pub finger: Vec<Option<ProcId>>,
    next_finger: usize,
    timers_on: bool,
    via: ProcId,
    /// Nodes heard from lately, for rejoining.
    contacts: Vec<ProcId>,
    /// Suspected nodes, with when (a suspicion lapses after [`SUSPECT_FOR`]).
    dead: BTreeMap<ProcId, Time>,
    clock: Time,
    awaiting_pred: Option<(ProcId, Time)>,
    awaiting_pong: bool,
    pending: BTreeMap<u64, (ProcId, ChordMsg)>,
    next_fwd: u64,
    queries: BTreeMap<u64, Query>,
    next_q: u64,
    /// Answers to measured lookups, by lookup number.
    pub answers: BTreeMap<usize, Answer>,
}

const M: usize = 64;
const STABILIZE: u64 = 1;
const FIX: u64 = 2;
const ACK_BASE: u64 = 1 << 40;
const QUERY_BASE: u64 = 1 << 41;
const PERIOD: Time = 200_000;
const ACK_TIMEOUT: Time = 300_000;
const QUERY_TIMEOUT: Time = 2_000_000;
const SUSPECT_FOR: Time = 2_000_000;

/// Node `p`'s id on the ring.
pub fn node_id(seed: u64, p: ProcId) -> u64 {
    mix(seed ^ mix(p as u64 + 1))
}

/// `x` in the ring interval (a, b); (a, a) is everything but a.
fn open(a: u64, x: u64, b: u64) -> bool {
    if a < b {
        a < x && x < b
    } else {
        x > a || x < b
    }
}

/// `x` in (a, b]; (a, a] is the whole ring.
fn half_open(a: u64, x: u64, b: u64) -> bool {
    if a < b {
        a < x && x <= b
    } else {
        x > a || x <= b
    }
}

impl Node {
    fn new(seed: u64, r: usize, use_fingers: bool) -> Self {
        Node {
            seed,
            r,
            use_fingers,
            joined: false,
            succ: vec![],
            pred: None,
            finger: vec![None; M],
            next_finger: 0,
            timers_on: false,
            via: 0,
            contacts: vec![],
            dead: BTreeMap::new(),
            clock: 0,
            awaiting_pred: None,
            awaiting_pong: false,
            pending: BTreeMap::new(),
            next_fwd: 0,
            queries: BTreeMap::new(),
            next_q: 0,
            answers: BTreeMap::new(),
        }
    }

    fn is_dead(&self, p: ProcId) -> bool {
        self.dead
            .get(&p)
            .is_some_and(|&t| self.clock.saturating_sub(t) < SUSPECT_FOR)
    }

    fn id(&self, p: ProcId) -> u64 {
        node_id(self.seed, p)
    }

    fn successor(&self, me: ProcId) -> ProcId {
        self.succ.first().copied().unwrap_or(me)
    }

    fn start_timers(&mut self, ctx: &mut Ctx<'_, ChordMsg>) {
        self.timers_on = true;
        let a = ctx.rng().random_range(1..PERIOD);
        let b = ctx.rng().random_range(1..PERIOD);
        ctx.set_timer(a, STABILIZE);
        ctx.set_timer(b, FIX);
    }

    /// Takes its place in a stable ring.
    fn wire(&mut self, ctx: &mut Ctx<'_, ChordMsg>, succ: Vec<ProcId>, pred: ProcId) {
        self.joined = true;
        self.succ = succ;
        self.pred = Some(pred);
        self.start_timers(ctx);
    }

    /// Joins the ring through member `via`.
    fn join(&mut self, ctx: &mut Ctx<'_, ChordMsg>, via: ProcId) {
        ctx.mark("join");
        self.via = via;
        let key = self.id(ctx.id());
        let qid = self.new_query(ctx, key, Purpose::Join);
        self.send_join(ctx, qid);
    }

    fn send_join(&mut self, ctx: &mut Ctx<'_, ChordMsg>, qid: u64) {
        let key = self.id(ctx.id());
        let via = self.via;
        let find = ChordMsg::Find {
            key,
            origin: ctx.id(),
            qid,
            hops: 0,
            fwd: 0,
        };
        self.forward(ctx, via, find);
    }

    /// Starts measured lookup number `n` of `key`.
    fn lookup(&mut self, ctx: &mut Ctx<'_, ChordMsg>, n: usize, key: u64) {
        let qid = self.new_query(ctx, key, Purpose::Lookup(n));
        self.route(ctx, key, ctx.id(), qid, 0);
    }

    fn new_query(&mut self, ctx: &mut Ctx<'_, ChordMsg>, key: u64, purpose: Purpose) -> u64 {
        let qid = self.next_q;
        self.next_q += 1;
        self.queries.insert(
            qid,
            Query {
                key,
                purpose,
                tries: 0,
            },
        );
        ctx.set_timer(QUERY_TIMEOUT, QUERY_BASE + qid);
        qid
    }

    /// The closest live node known that precedes `key`, or the successor.
    fn next_hop(&self, me: ProcId, key: u64) -> ProcId {
        let my = self.id(me);
        if self.use_fingers {
            let known = self.finger.iter().rev().flatten().chain(self.succ.iter());
            let mut best: Option<(u64, ProcId)> = None;
            for &f in known {
                if f == me || self.is_dead(f) {
                    continue;
                }
                let d = self.id(f).wrapping_sub(my);
                if open(my, self.id(f), key) && best.is_none_or(|(bd, _)| d > bd) {
                    best = Some((d, f));
                }
            }
            if let Some((_, f)) = best {
                return f;
            }
        }
        self.successor(me)
    }

    /// Answers or forwards a query for `key`.
    fn route(&mut self, ctx: &mut Ctx<'_, ChordMsg>, key: u64, origin: ProcId, qid: u64, hops: u32) {
        let me = ctx.id();
        let s = self.successor(me);
        if half_open(self.id(me), key, self.id(s)) {
            // A node rejoining that we already hold as successor gets our
            // next successor, not itself.
            let s = if s == origin && s != me && key == self.id(origin) {
                self.succ.get(1).copied().unwrap_or(me)
            } else {
                s
            };
            let found = ChordMsg::Found { qid, node: s, hops };
            if origin == me {
                self.on_found(ctx, qid, s, hops);
            } else {
                ctx.send(origin, found);
            }
            return;
        }
        let next = self.next_hop(me, key);
        let find = ChordMsg::Find {
            key,
            origin,
            qid,
            hops: hops + 1,
            fwd: 0,
        };
        self.forward(ctx, next, find);
    }

    fn forward(&mut self, ctx: &mut Ctx<'_, ChordMsg>, to: ProcId, mut msg: ChordMsg) {
        let fwd = self.next_fwd;
        self.next_fwd += 1;
        if let ChordMsg::Find { fwd: f, .. } = &mut msg {
            *f = fwd;
        }
        self.pending.insert(fwd, (to, msg.clone()));
        ctx.set_timer(ACK_TIMEOUT, ACK_BASE + fwd);
        ctx.send(to, msg);
    }

    /// `p` is taken as gone.
    fn suspect(&mut self, ctx: &mut Ctx<'_, ChordMsg>, p: ProcId) {
        if p == ctx.id() {
            return;
        }
        self.dead.insert(p, ctx.now());
        self.succ.retain(|&s| s != p);
        for f in self.finger.iter_mut() {
            if *f == Some(p) {
                *f = None;
            }
        }
        if self.pred == Some(p) {
            self.pred = None;
        }
    }

    fn on_found(&mut self, ctx: &mut Ctx<'_, ChordMsg>, qid: u64, node: ProcId, hops: u32) {
        let Some(q) = self.queries.remove(&qid) else {
            return;
        };
        match q.purpose {
            Purpose::Join if node == ctx.id() => {
                // Not an answer we can use; ask again after a while.
                self.queries.insert(qid, q);
            }
            Purpose::Join => {
                let first = !self.timers_on;
                self.joined = true;
                self.succ = vec![node];
                ctx.mark("joined");
                if first {
                    self.start_timers(ctx);
                }
                // Fill the successor list at once.
                self.awaiting_pred = Some((node, ctx.now()));
                ctx.send(node, ChordMsg::GetPred);
            }
            Purpose::Finger(i) => self.finger[i] = Some(node),
            Purpose::Lookup(n) => {
                self.answers.insert(n, Answer { node, hops });
            }
        }
    }

    fn stabilize(&mut self, ctx: &mut Ctx<'_, ChordMsg>) {
        let me = ctx.id();
        match self.awaiting_pred {
            Some((s, at)) if ctx.now().saturating_sub(at) >= ACK_TIMEOUT => {
                self.awaiting_pred = None;
                self.suspect(ctx, s);
            }
            Some(_) => {
                // Still waiting for the last answer (an eager one, maybe).
                ctx.set_timer(PERIOD, STABILIZE);
                return;
            }
            None => {}
        }
        if self.awaiting_pong {
            self.pred = None;
        }
        self.awaiting_pong = false;
        if let Some(p) = self.pred.filter(|&p| p != me) {
            self.awaiting_pong = true;
            ctx.send(p, ChordMsg::Ping);
        }
        self.succ.retain(|&p| p != me);
        if self.succ.is_empty() && self.r == 1 {
            // The planted bug: no list and no way back.
            ctx.set_timer(PERIOD, STABILIZE);
            return;
        }
        if self.succ.is_empty() {
            // Every successor known has gone: look our own place up again
            // through any live node we know (a finger, the predecessor, or
            // the node we joined through).
            let known = self
                .finger
                .iter()
                .flatten()
                .copied()
                .chain(self.pred)
                .chain([self.via])
                .find(|&p| p != me && !self.is_dead(p));
            self.joined = false;
            self.queries.retain(|_, q| !matches!(q.purpose, Purpose::Join));
            let via = known.unwrap_or(self.via);
            self.join(ctx, via);
            ctx.set_timer(PERIOD, STABILIZE);
            return;
        }
        let s = self.successor(me);
        self.awaiting_pred = Some((s, ctx.now()));
        ctx.send(s, ChordMsg::GetPred);
        ctx.set_timer(PERIOD, STABILIZE);
    }

    fn fix_fingers(&mut self, ctx: &mut Ctx<'_, ChordMsg>) {
        let me = ctx.id();
        let my = self.id(me);
        let s = self.successor(me);
        if self.use_fingers {
            for _ in 0..M {
                let i = self.next_finger;
                self.next_finger = (i + 1) % M;
                let start = my.wrapping_add(1u64 << i);
                if half_open(my, start, self.id(s)) {
                    self.finger[i] = Some(s);
                    continue;
                }
                let busy = self
                    .queries
                    .values()
                    .any(|q| matches!(q.purpose, Purpose::Finger(j) if j == i));
                if !busy {
                    let qid = self.new_query(ctx, start, Purpose::Finger(i));
                    self.route(ctx, start, me, qid, 0);
                }
                break;
            }
        }
        ctx.set_timer(PERIOD, FIX);
    }
}

impl Process for Node {
    type Msg = ChordMsg;

    fn on_timer(&mut self, ctx: &mut Ctx<'_, ChordMsg>, tag: u64) {
        self.clock = ctx.now();
        match tag {
            STABILIZE | FIX if !self.joined => {
                ctx.set_timer(PERIOD, tag);
            }
            STABILIZE => self.stabilize(ctx),
            FIX => self.fix_fingers(ctx),
            t if t >= QUERY_BASE => {
                let qid = t - QUERY_BASE;
                if !self.queries.contains_key(&qid) {
                    return;
                }
                if !self.joined {
                    // Try the next contact: the last may have left.
                    // P0, which never leaves, is the well-known entry point.
                    let i = ctx.rng().random_range(0..=self.contacts.len());
                    self.via = self.contacts.get(i).copied().unwrap_or(0);
                    ctx.set_timer(QUERY_TIMEOUT, QUERY_BASE + qid);
                    self.send_join(ctx, qid);
                    return;
                }
                let Some(q) = self.queries.get_mut(&qid) else {
                    return;
                };
                if q.tries >= 4 {
                    self.queries.remove(&qid);
                    return;
                }
                q.tries += 1;
                let key = q.key;
                ctx.set_timer(QUERY_TIMEOUT, QUERY_BASE + qid);
                self.route(ctx, key, ctx.id(), qid, 0);
            }
            t if t >= ACK_BASE => {
                if let Some((to, msg)) = self.pending.remove(&(t - ACK_BASE)) {
                    self.suspect(ctx, to);
                    if let ChordMsg::Find {
                        key,
                        origin,
                        qid,
                        hops,
                        ..
                    } = msg
                    {
                        if self.joined {
                            self.route(ctx, key, origin, qid, hops.saturating_sub(1));
                        }
                    }
                }
            }
            _ => {}
        }
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, ChordMsg>, from: ProcId, msg: ChordMsg) {
        let me = ctx.id();
        self.clock = ctx.now();
        // Any message is proof of life.
        self.dead.remove(&from);
        if !self.contacts.contains(&from) {
            if self.contacts.len() >= 16 {
                self.contacts.remove(0);
            }
            self.contacts.push(from);
        }
        match msg {
            ChordMsg::Find {
                key,
                origin,
                qid,
                hops,
                fwd,
            } => {
                ctx.send(from, ChordMsg::Ack(fwd));
                if self.joined {
                    self.route(ctx, key, origin, qid, hops);
                }
            }
            ChordMsg::Ack(fwd) => {
                self.pending.remove(&fwd);
            }
            ChordMsg::Found { qid, node, hops } => self.on_found(ctx, qid, node, hops),
            ChordMsg::GetPred => {
                let mut list = vec![me];
                list.extend(self.succ.iter().copied().filter(|&s| s != from));
                ctx.send(from, ChordMsg::PredIs(self.pred, list));
            }
            ChordMsg::PredIs(pred, list) => {
                if self.awaiting_pred.map(|(s, _)| s) != Some(from) {
                    return;
                }
                self.awaiting_pred = None;
                let (my, s) = (self.id(me), from);
                let mut succ: Vec<ProcId> = vec![];
                if let Some(x) = pred {
                    if x != me && !self.is_dead(x) && open(my, self.id(x), self.id(s)) {
                        succ.push(x);
                    }
                }
                for p in list {
                    if p != me && !self.is_dead(p) && !succ.contains(&p) {
                        succ.push(p);
                    }
                }
                succ.truncate(self.r);
                if succ.is_empty() {
                    return;
                }
                let adopted = succ[0] != from;
                self.succ = succ;
                let s = self.successor(me);
                if adopted {
                    // A closer successor: ask it at once rather than next
                    // period, so a run of joins settles at network speed.
                    self.awaiting_pred = Some((s, ctx.now()));
                    ctx.send(s, ChordMsg::GetPred);
                } else {
                    ctx.send(s, ChordMsg::Notify);
                }
            }
            ChordMsg::Notify => {
                let my = self.id(me);
                let take = match self.pred {
                    None => true,
                    Some(p) => p == me || open(self.id(p), self.id(from), my),
                };
                if take && from != me {
                    self.pred = Some(from);
                    self.dead.remove(&from);
                }
            }
            ChordMsg::Ping => ctx.send(from, ChordMsg::Pong),
            ChordMsg::Pong => self.awaiting_pong = false,
        }
    }

    fn msg_bytes(msg: &ChordMsg) -> usize {
        match msg {
            ChordMsg::PredIs(_, l) => 16 + 8 * l.len(),
            _ => 32,
        }
    }

    fn msg_label(msg: &ChordMsg) -> String {
        match msg {
            ChordMsg::Find { key, hops, .. } => format!("Find({:04x} h{hops})", key >> 48),
            ChordMsg::Ack(_) => "Ack".into(),
            ChordMsg::Found { node, hops, .. } => format!("Found(P{node} h{hops})"),
            ChordMsg::GetPred => "GetPred".into(),
            ChordMsg::PredIs(p, _) => match p {
                Some(p) => format!("PredIs(P{p})"),
                None => "PredIs(-)".into(),
            },
            ChordMsg::Notify => "Notify".into(),
            ChordMsg::Ping => "Ping".into(),
            ChordMsg::Pong => "Pong".into(),
        }
    }
}

/// The live members, sorted by id.
fn ring(seed: u64, members: &BTreeSet<ProcId>) -> Vec<(u64, ProcId)> {
    let mut v: Vec<(u64, ProcId)> = members.iter().map(|&p| (node_id(seed, p), p)).collect();
    v.sort_unstable();
    v
}

/// The true successor of `key` on `ring`.
fn true_successor(ring: &[(u64, ProcId)], key: u64) -> ProcId {
    let i = ring.partition_point(|&(id, _)| id < key);
    ring[i % ring.len()].1
}

/// Members whose successor is not the next member: (node, has, should).
fn wrong_successors(sim: &Sim<Node>, seed: u64, members: &BTreeSet<ProcId>) -> Vec<String> {
    let r = ring(seed, members);
    (0..r.len())
        .filter_map(|i| {
            let (p, want) = (r[i].1, r[(i + 1) % r.len()].1);
            let has = sim.proc(p).successor(p);
            (has != want).then(|| format!("P{p}→P{has} (want P{want})"))
        })
        .collect()
}

/// A random member that has joined (every run has P0).
fn joined_member(sim: &Sim<Node>, members: &BTreeSet<ProcId>, rng: &mut Pcg64Mcg) -> ProcId {
    let live: Vec<ProcId> = members
        .iter()
        .copied()
        .filter(|&p| sim.is_up(p) && sim.proc(p).joined)
        .collect();
    live[rng.random_range(0..live.len())]
}

/// Runs until every lookup of `asked` (origin, number) is answered or its
/// origin is down, for at most three query timeouts.
fn settle_answers(sim: &mut Sim<Node>, asked: &[(ProcId, usize)]) {
    let limit = sim.now() + 3 * QUERY_TIMEOUT;
    let open = |sim: &Sim<Node>| {
        asked
            .iter()
            .any(|&(o, i)| sim.is_up(o) && !sim.proc(o).answers.contains_key(&i))
    };
    while sim.now() < limit && open(sim) {
        let t = sim.now() + 20_000;
        sim.run_until(t);
    }
}

fn run(opts: &LabOptions) -> LabRun {
    let n = opts.nodes;
    let seed = opts.seed;
    let churn = (n / 10).max(2);
    let total = n + churn;
    let r = if opts.is_variant("no-successor-list") {
        1
    } else {
        (usize::BITS - (n - 1).leading_zeros()) as usize
    };
    let use_fingers = !opts.is_variant("no-fingers");
    let procs: Vec<Node> = (0..total)
        .map(|_| Node::new(seed, r.max(1), use_fingers))
        .collect();
    let mut sim = Sim::with_options(
        seed,
        procs,
        net_for(&opts.faults, NetConfig::reliable()),
        ClockConfig::default(),
        sim_options(n),
    );
    sim.set_trace_limit(20_000);
    if n > 200 {
        sim.set_label_counts(false);
    }
    if opts.faults.contains(Fault::Skew) {
        // Skew: clocks jump forward by up to 300 ms on a few nodes.
        for p in (0..n).step_by(5) {
            sim.jump_clock(p, 300_000);
        }
    }
    let mut rng = Pcg64Mcg::seed_from_u64(seed ^ 0xc40d);
    let mut members: BTreeSet<ProcId> = BTreeSet::new();
    // Phase 1: a stable ring of the N nodes, as if long joined: each knows
    // its successor list and predecessor; every finger is empty.
    members.extend(0..n);
    let start_ring = ring(seed, &members);
    for (i, &(_, p)) in start_ring.iter().enumerate() {
        let succ: Vec<ProcId> = (1..=r.max(1).min(n - 1))
            .map(|d| start_ring[(i + d) % n].1)
            .collect();
        let pred = start_ring[(i + n - 1) % n].1;
        sim.with_ctx(p, |node, ctx| node.wire(ctx, succ, pred));
    }
    // Phase 2: stabilize and fix-fingers build the finger tables.
    sim.run_until(sim.now() + 24 * PERIOD);
    let ring_ok = wrong_successors(&sim, seed, &members);
    let distinct: f64 = members
        .iter()
        .map(|&p| {
            let f: BTreeSet<ProcId> = sim.proc(p).finger.iter().flatten().copied().collect();
            f.len() as f64
        })
        .sum::<f64>()
        / members.len() as f64;
    // Phase 3: steady-state lookups.
    const L: usize = 200;
    let mut asked: Vec<(ProcId, u64)> = vec![];
    let member_vec: Vec<ProcId> = members.iter().copied().collect();
    for i in 0..L {
        let origin = member_vec[rng.random_range(0..member_vec.len())];
        let key: u64 = rng.random();
        asked.push((origin, key));
        sim.with_ctx(origin, |node, ctx| node.lookup(ctx, i, key));
        sim.run_until(sim.now() + 2_000);
    }
    let pending: Vec<(ProcId, usize)> = asked.iter().enumerate().map(|(i, &(o, _))| (o, i)).collect();
    settle_answers(&mut sim, &pending);
    let steady_ring = ring(seed, &members);
    let steady: Vec<(usize, Option<Answer>, ProcId)> = asked
        .iter()
        .enumerate()
        .map(|(i, &(o, k))| (i, sim.proc(o).answers.get(&i).copied(), true_successor(&steady_ring, k)))
        .collect();
    // Phase 4: churn: departures and joins while lookups run.
    let churn_start = sim.now();
    let mut leaving: Vec<ProcId> = member_vec.clone();
    leaving.retain(|&p| p != 0);
    let mut gone = vec![];
    for _ in 0..churn.min(leaving.len()) {
        let i = rng.random_range(0..leaving.len());
        gone.push(leaving.swap_remove(i));
    }
    let mut during: Vec<(ProcId, usize)> = vec![];
    let (mut left, mut came) = (0, 0);
    for step in 0..100usize {
        let target = (step + 1) * churn / 100;
        while left < target.min(gone.len()) {
            sim.crash(gone[left]);
            members.remove(&gone[left]);
            left += 1;
        }
        while came < target {
            let via = joined_member(&sim, &members, &mut rng);
            sim.with_ctx(n + came, |node, ctx| node.join(ctx, via));
            members.insert(n + came);
            came += 1;
        }
        let origin = joined_member(&sim, &members, &mut rng);
        let key: u64 = rng.random();
        let i = L + step;
        sim.with_ctx(origin, |node, ctx| node.lookup(ctx, i, key));
        during.push((origin, i));
        sim.run_until(sim.now() + 10_000);
    }
    settle_answers(&mut sim, &during);
    let churn_done = sim.now() - churn_start;
    let during_answered = during
        .iter()
        .filter(|(o, i)| !sim.is_up(*o) || sim.proc(*o).answers.contains_key(i))
        .count();
    // Phase 5: settle, then lookups again.
    let settle_limit = sim.now() + 120 * PERIOD;
    while sim.now() < settle_limit && !wrong_successors(&sim, seed, &members).is_empty() {
        let t = sim.now() + PERIOD;
        sim.run_until(t);
    }
    sim.run_until(sim.now() + 4 * PERIOD);
    let after_ring = wrong_successors(&sim, seed, &members);
    let final_ring = ring(seed, &members);
    let live: Vec<ProcId> = members.iter().copied().collect();
    let mut after: Vec<(ProcId, usize, u64)> = vec![];
    for step in 0..100usize {
        let origin = live[rng.random_range(0..live.len())];
        let key: u64 = rng.random();
        let i = L + 100 + step;
        sim.with_ctx(origin, |node, ctx| node.lookup(ctx, i, key));
        after.push((origin, i, key));
        sim.run_until(sim.now() + 2_000);
    }
    let pending: Vec<(ProcId, usize)> = after.iter().map(|&(o, i, _)| (o, i)).collect();
    settle_answers(&mut sim, &pending);
    let after_wrong: Vec<String> = after
        .iter()
        .filter_map(|&(o, i, k)| {
            let want = true_successor(&final_ring, k);
            match sim.proc(o).answers.get(&i) {
                Some(a) if a.node == want => None,
                Some(a) => Some(format!("lookup {i} from P{o}: P{} (want P{want})", a.node)),
                None => Some(format!("lookup {i} from P{o}: no answer")),
            }
        })
        .take(3)
        .collect();
    let trace = sim.take_trace();

    let mut report = LabReport::new(ALGORITHM.name, opts);
    report.checks.push(Check::new(
        "before churn, every successor is the next id on the ring",
        ring_ok.is_empty(),
        if ring_ok.is_empty() {
            format!("{n} nodes")
        } else {
            format!("{} wrong: {}", ring_ok.len(), ring_ok[..ring_ok.len().min(3)].join(", "))
        },
    ));
    let wrong: Vec<String> = steady
        .iter()
        .filter_map(|(i, a, want)| match a {
            Some(a) if a.node == *want => None,
            Some(a) => Some(format!("lookup {i}: P{} (want P{want})", a.node)),
            None => Some(format!("lookup {i}: no answer")),
        })
        .take(3)
        .collect();
    report.checks.push(Check::new(
        "every lookup returns the key's true successor",
        wrong.is_empty(),
        if wrong.is_empty() {
            format!("{L} lookups")
        } else {
            wrong.join("; ")
        },
    ));
    report.checks.push(Check::new(
        "lookups during churn complete",
        during_answered == during.len(),
        format!(
            "{during_answered} of {} answered while {churn} left and {churn} joined",
            during.len()
        ),
    ));
    report.checks.push(Check::new(
        "after churn the ring is repaired and lookups are right again",
        after_ring.is_empty() && after_wrong.is_empty(),
        if after_ring.is_empty() && after_wrong.is_empty() {
            format!("{} members; 100 lookups; churn phase {} ms", members.len(), churn_done / 1_000)
        } else {
            let mut v = after_ring[..after_ring.len().min(3)].to_vec();
            v.extend(after_wrong);
            v.join("; ")
        },
    ));
    let hops: Vec<f64> = steady.iter().filter_map(|(_, a, _)| a.map(|a| a.hops as f64)).collect();
    let mean = hops.iter().sum::<f64>() / hops.len().max(1) as f64;
    let log2n = (n as f64).log2();
    let mut hop_cost = Cost::new(
        "hops per lookup (mean)",
        mean,
        if use_fingers { "½ log2 N" } else { "N/2 (successors only)" },
        None,
    );
    hop_cost = hop_cost.near(if use_fingers { log2n / 2.0 } else { n as f64 / 2.0 });
    report.costs.push(hop_cost);
    let max_hops = hops.iter().copied().fold(0.0, f64::max);
    report.costs.push(
        Cost::new(
            "hops per lookup (max)",
            max_hops,
            "O(log N) w.h.p.; never more than N",
            None,
        )
        .at_most(n as f64)
        .near(if use_fingers { log2n } else { n as f64 }),
    );
    report.costs.push(
        Cost::new(
            "distinct fingers per node",
            distinct,
            "≈ log2 N",
            None,
        )
        .near(if use_fingers { log2n } else { 0.0 }),
    );
    let mut run = LabRun::new(report, trace);
    run.clients = churn;
    run
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_are_right_and_short() {
        for seed in 0..3 {
            for n in [8, 64] {
                let r = run(&LabOptions::new(n, seed)).report;
                assert!(r.passed(), "{r:?}");
                let mean = r.costs[0].measured;
                assert!(mean <= (n as f64).log2(), "{r:?}");
            }
        }
    }

    #[test]
    fn one_successor_is_not_enough_under_churn() {
        let broke = (0..6).any(|seed| {
            let mut o = LabOptions::new(64, seed);
            o.variant = Some("no-successor-list".into());
            !run(&o).report.passed()
        });
        assert!(broke);
    }

    #[test]
    fn intervals_wrap() {
        assert!(open(10, 11, 12) && !open(10, 12, 12));
        assert!(open(u64::MAX - 1, 0, 5) && open(7, 3, 7) && !open(7, 7, 7));
        assert!(half_open(10, 12, 12) && half_open(7, 7, 7));
    }
}
