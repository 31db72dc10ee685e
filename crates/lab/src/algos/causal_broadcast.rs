//! Causal broadcast with vector clocks (Birman–Schiper–Stephenson): a message
//! is delivered only after every message its sender had delivered before
//! broadcasting it.

use std::collections::{BTreeMap, BTreeSet};

use rand::Rng;
use synod_simnet::{
    ClockConfig, Ctx, NetConfig, ProcId, Process, Sim, Trace, TraceKind, MILLIS, SECONDS,
};

use crate::algos::gossip_common::sim_options;
use crate::harness::{net_for, run_faulted};
use crate::registry::{Algorithm, FaultModel};
use synod_simnet::Fault;
use crate::report::{Check, Cost, LabOptions, LabReport, LabRun};

/// The registry entry.
pub const ALGORITHM: Algorithm = Algorithm {
    name: "causal-broadcast",
    family: "broadcast",
    summary: "vector-clock causal broadcast (BSS); no-causal variant delivers on receipt",
    description: "Causal broadcast (Birman, Schiper, Stephenson 1991).\n\
Each process broadcasts 4 messages at random moments 2–15 ms apart. A process\n\
keeps VC[k] = how many of k's broadcasts it has delivered. To broadcast, it\n\
increments VC[me] and sends the message with VC to all others (delivering it\n\
itself at once). A message m from j with timestamp V is delivered when\n\
V[j] = VC[j] + 1 and V[k] ≤ VC[k] for every k ≠ j; otherwise it waits in a\n\
buffer (at most N·4 messages). Delivery sets VC[j] = V[j].\n\
Guarantee (reliable links): if the broadcast of m happened before the\n\
broadcast of m' — through deliveries, in the application's happens-before —\n\
every process delivers m before m'; and everyone delivers everything.\n\
The checker rebuilds that happens-before from the trace's broadcast and\n\
delivery events, independently of the vector clocks.\n\
Cost: N - 1 messages per broadcast, each carrying N integers.",
    variants: &[(
        "no-causal",
        "deliver on receipt, without the causal condition (breaks under reordering)",
    )],
    default_nodes: 3,
    nodes: (2, 64),
    faults: FaultModel {
        tolerates: &[Fault::Duplicate, Fault::Reorder, Fault::Partition, Fault::OneWay, Fault::Clog, Fault::Crash, Fault::Skew],
        outside: &[Fault::Loss],
        refused: "every fault kind applies",
    },
    run,
};

const BROADCASTS: u32 = 4;

/// A broadcast message.
#[derive(Clone, Debug)]
pub struct Bcast {
    origin: ProcId,
    vc: Vec<u32>,
}

/// One process.
#[derive(Clone, Debug)]
pub struct CbProc {
    causal: bool,
    vc: Vec<u32>,
    pending: Vec<Bcast>,
    seen: BTreeSet<(ProcId, u32)>,
    left: u32,
}

impl CbProc {
    fn new(n: usize, causal: bool) -> CbProc {
        CbProc {
            causal,
            vc: vec![0; n],
            pending: vec![],
            seen: BTreeSet::new(),
            left: BROADCASTS,
        }
    }

    fn deliverable(&self, m: &Bcast) -> bool {
        let o = m.origin;
        m.vc[o] == self.vc[o] + 1
            && m.vc
                .iter()
                .zip(&self.vc)
                .enumerate()
                .all(|(k, (v, mine))| k == o || v <= mine)
    }

    fn deliver(&mut self, ctx: &mut Ctx<'_, Bcast>, m: &Bcast) {
        let o = m.origin;
        self.vc[o] = self.vc[o].max(m.vc[o]);
        ctx.mark(&format!("deliver {o}.{}", m.vc[o]));
        ctx.stamp(&format!("{:?}", self.vc));
    }
}

impl Process for CbProc {
    type Msg = Bcast;

    fn on_start(&mut self, ctx: &mut Ctx<'_, Bcast>) {
        let d = ctx.rng().random_range(2 * MILLIS..=15 * MILLIS);
        ctx.set_timer(d, 0);
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_, Bcast>, _tag: u64) {
        if self.left == 0 {
            return;
        }
        self.left -= 1;
        let me = ctx.id();
        self.vc[me] += 1;
        ctx.mark(&format!("bcast {me}.{}", self.vc[me]));
        ctx.stamp(&format!("{:?}", self.vc));
        for q in 0..ctx.n() {
            if q != me {
                ctx.send(
                    q,
                    Bcast {
                        origin: me,
                        vc: self.vc.clone(),
                    },
                );
            }
        }
        let d = ctx.rng().random_range(2 * MILLIS..=15 * MILLIS);
        ctx.set_timer(d, 0);
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, Bcast>, _from: ProcId, m: Bcast) {
        if m.vc.len() != self.vc.len() || m.origin >= self.vc.len() {
            return;
        }
        if !self.seen.insert((m.origin, m.vc[m.origin])) {
            return; // a network duplicate
        }
        if !self.causal {
            self.deliver(ctx, &m);
            return;
        }
        assert!(
            self.pending.len() < self.vc.len() * BROADCASTS as usize,
            "buffer exceeds every broadcast of the run"
        );
        self.pending.push(m);
        while let Some(i) = self.pending.iter().position(|p| self.deliverable(p)) {
            let p = self.pending.remove(i);
            self.deliver(ctx, &p);
        }
    }

    fn msg_bytes(m: &Bcast) -> usize {
        4 + 4 * m.vc.len() + 32
    }

    fn msg_label(m: &Bcast) -> String {
        format!("m{}.{}", m.origin, m.vc[m.origin])
    }
}

type Id = (usize, u32);

fn parse_id(s: &str) -> Option<Id> {
    let (a, b) = s.split_once('.')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// Checks causal delivery from the trace's `bcast`/`deliver` marks. Returns
/// (first violation, pairs checked, processes that missed a message).
pub fn check_trace(trace: &Trace, n: usize) -> (Option<String>, u64, Vec<ProcId>) {
    let mut known: Vec<BTreeSet<Id>> = vec![BTreeSet::new(); n];
    let mut delivered: Vec<BTreeSet<Id>> = vec![BTreeSet::new(); n];
    let mut deps: BTreeMap<Id, BTreeSet<Id>> = BTreeMap::new();
    let (mut bad, mut pairs) = (None, 0u64);
    for e in &trace.events {
        let TraceKind::Mark { label } = &e.kind else {
            continue;
        };
        let p = e.proc;
        if let Some(id) = label.strip_prefix("bcast ").and_then(parse_id) {
            deps.insert(id, known[p].clone());
            known[p].insert(id);
            delivered[p].insert(id);
        } else if let Some(id) = label.strip_prefix("deliver ").and_then(parse_id) {
            let d = deps.get(&id).cloned().unwrap_or_default();
            pairs += d.len() as u64;
            if bad.is_none() {
                if let Some(miss) = d.iter().find(|x| !delivered[p].contains(x)) {
                    bad = Some(format!(
                        "P{p} delivered m{}.{} before m{}.{}, which causally precedes it",
                        id.0, id.1, miss.0, miss.1
                    ));
                }
            }
            known[p].extend(d);
            known[p].insert(id);
            delivered[p].insert(id);
        }
    }
    let total = deps.len();
    let missing = (0..n).filter(|&p| delivered[p].len() < total).collect();
    (bad, pairs, missing)
}

fn run(opts: &LabOptions) -> LabRun {
    let n = opts.nodes;
    let causal = !opts.is_variant("no-causal");
    let procs = (0..n).map(|_| CbProc::new(n, causal)).collect();
    let mut sim = Sim::with_options(
        opts.seed,
        procs,
        net_for(&opts.faults, NetConfig::reliable()),
        ClockConfig::perfect(),
        sim_options(n),
    );
    run_faulted(&mut sim, opts, 2 * SECONDS, |_| CbProc::new(n, causal));
    let trace = sim.take_trace();
    let (bad, pairs, missing) = check_trace(&trace, n);
    let mut report = LabReport::new(ALGORITHM.name, opts);
    report.checks.push(Check::new(
        "causal delivery: m → m' ⇒ m delivered before m' everywhere",
        bad.is_none(),
        bad.unwrap_or_else(|| format!("{pairs} causal (message, dependency) pairs respected")),
    ));
    report.checks.push(Check::new(
        "every process delivers every broadcast",
        missing.is_empty(),
        if missing.is_empty() {
            format!("{} broadcasts, {n} processes", n as u32 * BROADCASTS)
        } else {
            format!("P{} missed some", missing[0])
        },
    ));
    let s = sim.stats();
    report.costs.push(Cost::new(
        "messages",
        s.sent as f64,
        &format!("(N-1) per broadcast, {} broadcasts", n as u32 * BROADCASTS),
        Some(((n - 1) * n * BROADCASTS as usize) as f64),
    ));
    report.costs.push(Cost::new(
        "bytes per message",
        s.bytes as f64 / s.sent.max(1) as f64,
        "4 (origin) + 4N (vector) + 32 (payload)",
        Some((4 + 4 * n + 32) as f64),
    ));
    LabRun::new(report, trace)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(n: usize, seed: u64, variant: Option<&str>, faults: &str) -> LabOptions {
        let mut o = LabOptions::new(n, seed);
        o.variant = variant.map(str::to_string);
        o.faults = synod_simnet::Fault::parse_list(faults).unwrap();
        o
    }

    #[test]
    fn causal_order_holds_even_under_reordering() {
        for seed in 0..6 {
            for faults in ["none", "reorder", "duplicate,reorder"] {
                let r = run(&opts(5, seed, None, faults)).report;
                assert!(r.passed(), "{faults}: {r:?}");
                assert_eq!(r.costs[0].measured, r.costs[0].expected.unwrap());
            }
        }
    }

    #[test]
    fn no_causal_variant_is_caught_under_reordering() {
        let caught =
            (0..10).any(|s| !run(&opts(5, s, Some("no-causal"), "reorder")).report.checks[0].held);
        assert!(caught);
    }

    #[test]
    fn checker_rejects_a_hand_made_violation() {
        let mark = |proc, label: &str| synod_simnet::TraceEvent {
            time: 0,
            proc,
            kind: TraceKind::Mark {
                label: label.into(),
            },
            stamp: None,
        };
        let mut t = Trace {
            events: vec![
                mark(0, "bcast 0.1"),
                mark(1, "deliver 0.1"),
                mark(1, "bcast 1.1"),
                mark(2, "deliver 1.1"),
                mark(2, "deliver 0.1"),
            ],
            truncated: 0,
        };
        assert!(check_trace(&t, 3).0.is_some());
        t.events.swap(3, 4);
        assert!(check_trace(&t, 3).0.is_none());
    }
}
