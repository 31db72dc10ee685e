//! State-based CRDTs (Shapiro et al. 2011): G-counter, PN-counter, OR-set
//! and LWW-register, gossiped under loss, duplication, reordering and
//! partitions, converging because every merge is a join.

use std::collections::BTreeSet;

use rand::Rng;
use synod_simnet::{ClockConfig, Ctx, NetConfig, ProcId, Process, Sim, Time};

use crate::algos::replication_common::{converging_start, converging_timer, Converging};
use crate::harness::{net_for, run_faulted_durable};
use crate::registry::{Algorithm, FaultModel};
use crate::report::{Check, Cost, LabOptions, LabReport, LabRun};

/// The registry entry.
pub const ALGORITHM: Algorithm = Algorithm {
    name: "crdt",
    family: "replication",
    summary: "G-counter, PN-counter, OR-set, LWW-register: converge under any delivery order",
    description: "State-based CRDTs (Shapiro, Preguiça, Baquero & Zawirski 2011). Each replica\n\
holds a G-counter (a vector of per-replica counts; merge = elementwise max;\n\
value = sum), a PN-counter (two G-counters; value = P - N), an OR-set (added\n\
(element, unique tag) pairs and removed tags; remove(e) removes the tags of e it\n\
has seen; merge = union of both; e is in the set iff one of its tags is not\n\
removed) and an LWW-register ((timestamp, replica, value); merge = max).\n\
Each replica does 20 random operations in the first half of the run and sends\n\
its whole state to a random peer every 20 ms; in the last quarter it sends to\n\
every peer every 50 ms.\n\
Guarantee (strong eventual consistency): merge is commutative, associative and\n\
idempotent, so once every replica has (transitively) received every other's\n\
state they read the same, whatever the order, loss or duplication in between;\n\
and they read what the operations say: the counters their totals, the set the\n\
elements with an unremoved add, the register the write with the largest\n\
(timestamp, replica).\n\
Cost: state size, not messages: N integers per G-counter, 2N per PN-counter; the\n\
OR-set keeps every tag it ever saw (tombstones).",
    variants: &[(
        "sum-merge",
        "planted bug: G-counter merge adds entries instead of taking the max",
    )],
    default_nodes: 5,
    nodes: (1, 64),
    faults: FaultModel::EVERY,
    run,
};

/// An OR-set tag: (replica, sequence number).
pub type Tag = (ProcId, u32);

/// Every CRDT of a replica.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct State {
    /// G-counter.
    pub g: Vec<u64>,
    /// PN-counter's increments.
    pub p: Vec<u64>,
    /// PN-counter's decrements.
    pub m: Vec<u64>,
    /// OR-set adds.
    pub adds: BTreeSet<(u8, Tag)>,
    /// OR-set removed tags.
    pub removed: BTreeSet<Tag>,
    /// LWW-register: (timestamp, replica, value).
    pub lww: (u64, ProcId, u64),
}

impl State {
    fn new(n: usize) -> Self {
        State {
            g: vec![0; n],
            p: vec![0; n],
            m: vec![0; n],
            adds: BTreeSet::new(),
            removed: BTreeSet::new(),
            lww: (0, 0, 0),
        }
    }

    /// Merges `o` into `self`; `sum` is the planted bug.
    pub fn merge(&mut self, o: &State, sum: bool) {
        for (a, b) in self.g.iter_mut().zip(&o.g) {
            *a = if sum { a.saturating_add(*b) } else { (*a).max(*b) };
        }
        for (a, b) in self.p.iter_mut().zip(&o.p) {
            *a = (*a).max(*b);
        }
        for (a, b) in self.m.iter_mut().zip(&o.m) {
            *a = (*a).max(*b);
        }
        self.adds.extend(o.adds.iter().copied());
        self.removed.extend(o.removed.iter().copied());
        self.lww = self.lww.max(o.lww);
    }

    /// What the replica reads: (G, PN, OR-set, register).
    pub fn read(&self) -> (u64, i64, BTreeSet<u8>, u64) {
        let g = self.g.iter().fold(0u64, |x, y| x.saturating_add(*y));
        let pn = self.p.iter().sum::<u64>() as i64 - self.m.iter().sum::<u64>() as i64;
        let set = self
            .adds
            .iter()
            .filter(|(_, t)| !self.removed.contains(t))
            .map(|(e, _)| *e)
            .collect();
        (g, pn, set, self.lww.2)
    }
}

/// An operation, as the checker replays it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// G-counter and PN-counter increment.
    Inc,
    /// PN-counter decrement.
    Dec,
    /// OR-set add of an element with a fresh tag.
    Add(u8, Tag),
    /// OR-set remove: the tags it removed.
    Remove(u8, Vec<Tag>),
    /// Register write (timestamp, replica, value).
    Write(u64, ProcId, u64),
}

/// One replica.
#[derive(Clone, Debug)]
pub struct Replica {
    sum_merge: bool,
    left: u32,
    seq: u32,
    /// The CRDTs.
    pub state: State,
    /// The operations it did.
    pub ops: Vec<Op>,
}

/// The whole state, gossiped.
#[derive(Clone, Debug)]
pub struct Gossip(Box<State>);

const UNTIL: Time = 2_000_000;
const OPS: u32 = 20;

impl Replica {
    fn new(n: usize, sum_merge: bool) -> Self {
        Replica {
            sum_merge,
            left: OPS,
            seq: 0,
            state: State::new(n),
            ops: vec![],
        }
    }

    fn operate(&mut self, ctx: &mut Ctx<'_, Gossip>) {
        let me = ctx.id();
        let kind = ctx.rng().random_range(0..6u8);
        let e = ctx.rng().random_range(0..4u8);
        let op = match kind {
            0 => {
                self.state.g[me] += 1;
                self.state.p[me] += 1;
                Op::Inc
            }
            1 => {
                self.state.m[me] += 1;
                Op::Dec
            }
            2 | 3 => {
                self.seq += 1;
                let tag = (me, self.seq);
                self.state.adds.insert((e, tag));
                Op::Add(e, tag)
            }
            4 => {
                let tags: Vec<Tag> = self
                    .state
                    .adds
                    .iter()
                    .filter(|(x, t)| *x == e && !self.state.removed.contains(t))
                    .map(|(_, t)| *t)
                    .collect();
                self.state.removed.extend(tags.iter().copied());
                Op::Remove(e, tags)
            }
            _ => {
                let v = ctx.rng().random_range(1..1000u64);
                let ts = ctx.now().max(self.state.lww.0 + 1);
                self.state.lww = self.state.lww.max((ts, me, v));
                Op::Write(ts, me, v)
            }
        };
        ctx.mark(&format!("{op:?}"));
        self.ops.push(op);
    }
}

impl Converging for Replica {
    type Msg = Gossip;
    const UNTIL: Time = UNTIL;
    const UPDATES: u32 = OPS;
    const GOSSIP_EVERY: Time = 20_000;

    fn left(&mut self) -> &mut u32 {
        &mut self.left
    }

    fn update(&mut self, ctx: &mut Ctx<'_, Gossip>) {
        self.operate(ctx);
    }

    fn state(&self) -> Gossip {
        Gossip(Box::new(self.state.clone()))
    }
}

impl Process for Replica {
    type Msg = Gossip;

    fn on_start(&mut self, ctx: &mut Ctx<'_, Gossip>) {
        converging_start(self, ctx);
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_, Gossip>, tag: u64) {
        converging_timer(self, ctx, tag);
    }

    fn on_message(&mut self, _ctx: &mut Ctx<'_, Gossip>, _from: ProcId, msg: Gossip) {
        let sum = self.sum_merge;
        self.state.merge(&msg.0, sum);
    }

    fn msg_bytes(msg: &Gossip) -> usize {
        let s = &msg.0;
        8 * (s.g.len() + s.p.len() + s.m.len()) + 17 * s.adds.len() + 16 * s.removed.len() + 24
    }

    fn msg_label(msg: &Gossip) -> String {
        let (g, pn, set, reg) = msg.0.read();
        format!("State(g={g} pn={pn} set={set:?} reg={reg})")
    }
}

/// What the operations of every replica say the CRDTs must read.
pub fn truth(ops: &[&[Op]]) -> (u64, i64, BTreeSet<u8>, u64) {
    let (mut g, mut pn) = (0u64, 0i64);
    let mut adds: BTreeSet<(u8, Tag)> = BTreeSet::new();
    let mut removed: BTreeSet<Tag> = BTreeSet::new();
    let mut reg = (0u64, 0usize, 0u64);
    for op in ops.iter().flat_map(|o| o.iter()) {
        match op {
            Op::Inc => {
                g += 1;
                pn += 1;
            }
            Op::Dec => pn -= 1,
            Op::Add(e, t) => {
                adds.insert((*e, *t));
            }
            Op::Remove(_, tags) => removed.extend(tags.iter().copied()),
            Op::Write(ts, p, v) => reg = reg.max((*ts, *p, *v)),
        }
    }
    let set = adds
        .iter()
        .filter(|(_, t)| !removed.contains(t))
        .map(|(e, _)| *e)
        .collect();
    (g, pn, set, reg.2)
}

fn run(opts: &LabOptions) -> LabRun {
    let n = opts.nodes;
    let sum = opts.is_variant("sum-merge");
    let mut sim = Sim::new(
        opts.seed,
        (0..n).map(|_| Replica::new(n, sum)).collect(),
        net_for(&opts.faults, NetConfig::reliable()),
        ClockConfig::default(),
    );
    // A replica restarts from its state and its log of operations (both on
    // stable storage) and carries on with the operations it had left.
    run_faulted_durable(&mut sim, opts, UNTIL, |crashed, _| crashed.clone());
    let trace = sim.take_trace();
    let reads: Vec<(u64, i64, BTreeSet<u8>, u64)> =
        sim.procs().iter().map(|r| r.state.read()).collect();
    let ops: Vec<&[Op]> = sim.procs().iter().map(|r| r.ops.as_slice()).collect();
    let want = truth(&ops);
    let mut report = LabReport::new(ALGORITHM.name, opts);
    let same = reads.windows(2).all(|w| w[0] == w[1]);
    report.checks.push(Check::new(
        "convergence: every replica reads the same",
        same,
        format!("{:?}", reads.first()),
    ));
    let bad: Vec<String> = reads
        .iter()
        .enumerate()
        .filter(|(_, r)| **r != want)
        .take(2)
        .map(|(p, r)| format!("P{p} reads {r:?}"))
        .collect();
    report.checks.push(Check::new(
        "the reads are what the operations say (counters, set, register)",
        bad.is_empty(),
        if bad.is_empty() {
            format!(
                "G {} PN {} set {:?} register {} from {} operations",
                want.0,
                want.1,
                want.2,
                want.3,
                ops.iter().map(|o| o.len()).sum::<usize>()
            )
        } else {
            format!("want {want:?}; {}", bad.join("; "))
        },
    ));
    let s = sim.stats();
    let tags = sim.procs().iter().map(|r| r.state.adds.len()).max().unwrap_or(0);
    report.costs.push(Cost::new(
        "G-counter entries",
        sim.proc(0).state.g.len() as f64,
        "N",
        Some(n as f64),
    ));
    report.costs.push(Cost::new(
        "OR-set tags kept",
        tags as f64,
        "every add ever made (removed tags stay as tombstones)",
        Some(
            ops.iter()
                .flat_map(|o| o.iter())
                .filter(|o| matches!(o, Op::Add(..)))
                .count() as f64,
        ),
    ));
    report.costs.push(Cost::new(
        "bytes per gossip",
        s.bytes as f64 / s.sent.max(1) as f64,
        "the whole state: 24N for the counters, plus tags and tombstones",
        None,
    ));
    LabRun::new(report, trace)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicas_converge_to_the_truth() {
        for seed in 0..6 {
            for n in [1, 3, 6] {
                let r = run(&LabOptions::new(n, seed)).report;
                assert!(r.passed(), "{r:?}");
            }
        }
    }

    #[test]
    fn merge_is_a_join() {
        let mut a = State::new(2);
        a.g = vec![3, 1];
        a.adds.insert((1, (0, 1)));
        let mut b = State::new(2);
        b.g = vec![2, 4];
        b.removed.insert((0, 1));
        let mut ab = a.clone();
        ab.merge(&b, false);
        let mut ba = b.clone();
        ba.merge(&a, false);
        assert_eq!(ab, ba);
        let mut again = ab.clone();
        again.merge(&b, false);
        assert_eq!(again, ab);
        assert_eq!(ab.read().0, 7);
        assert!(ab.read().2.is_empty());
    }

    #[test]
    fn summing_merge_is_caught() {
        let mut o = LabOptions::new(4, 1);
        o.variant = Some("sum-merge".into());
        let r = run(&o).report;
        assert!(!r.checks[1].held, "{r:?}");
    }
}
