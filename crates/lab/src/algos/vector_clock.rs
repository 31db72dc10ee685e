//! Vector clocks: a→b ⇔ V(a) < V(b), so concurrency is detected exactly.

use crate::algos::clockwork::{counts, run_clock, ClockRules};
use crate::causality::{stamped, Causality};
use crate::registry::{Algorithm, FaultModel};
use synod_simnet::Fault;
use crate::report::{Check, Cost, LabOptions, LabReport, LabRun};

/// The registry entry.
pub const ALGORITHM: Algorithm = Algorithm {
    name: "vector-clock",
    family: "logical clocks",
    summary: "vector clocks: a→b ⇔ V(a) < V(b); concurrency detected exactly",
    description: "Vector clocks (Fidge, Mattern 1988).\n\
Rules: process i keeps V[1..n]. Before a local event or a send, V[i] += 1; a\n\
message carries V; on receipt of W, V[k] = max(V[k], W[k]) for every k, then V[i] += 1.\n\
Order: V < W iff V[k] <= W[k] for all k and V != W.\n\
Guarantee: a→b if and only if V(a) < V(b); a ∥ b iff neither dominates.\n\
Checked on every pair of stamped events against the true happens-before.\n\
Cost: no extra messages; n integers (8n bytes) piggybacked per message.",
    variants: &[("no-merge", "planted bug: on receipt only V[i] += 1, no component-wise max")],
    default_nodes: 3,
    nodes: (1, 64),
    faults: FaultModel {
        tolerates: &[Fault::Loss, Fault::Duplicate, Fault::Reorder, Fault::Partition, Fault::OneWay, Fault::Clog, Fault::Skew],
        outside: &[Fault::Crash],
        refused: "every fault kind applies",
    },
    run,
};

#[derive(Clone, Debug)]
struct Vector {
    me: usize,
    v: Vec<u64>,
    no_merge: bool,
}

impl ClockRules for Vector {
    type Ts = Vec<u64>;
    fn new(me: usize, n: usize) -> Self {
        Vector { me, v: vec![0; n], no_merge: false }
    }
    fn tick(&mut self, _pt: u64) {
        self.v[self.me] += 1;
    }
    fn on_send(&mut self, _pt: u64) -> Vec<u64> {
        self.v[self.me] += 1;
        self.v.clone()
    }
    fn on_receive(&mut self, ts: &Vec<u64>, _pt: u64) {
        if !self.no_merge {
            for (mine, theirs) in self.v.iter_mut().zip(ts) {
                *mine = (*mine).max(*theirs);
            }
        }
        self.v[self.me] += 1;
    }
    fn show(&self) -> String {
        let parts: Vec<String> = self.v.iter().map(u64::to_string).collect();
        format!("[{}]", parts.join(","))
    }
    fn bytes(ts: &Vec<u64>) -> usize {
        8 * ts.len()
    }
}

fn parse(s: &str) -> Vec<u64> {
    s.trim_matches(['[', ']']).split(',').map(|x| x.parse().expect("own stamp is a vector")).collect()
}

fn less(a: &[u64], b: &[u64]) -> bool {
    a != b && a.iter().zip(b).all(|(x, y)| x <= y)
}

fn run(opts: &LabOptions) -> LabRun {
    let bug = opts.is_variant("no-merge");
    let mut sim = run_clock(opts, synod_simnet::ClockConfig::perfect(), |me, n| Vector { no_merge: bug, ..Vector::new(me, n) });
    let trace = sim.take_trace();
    let hb = Causality::from_trace(&trace, opts.nodes);
    let ev: Vec<(usize, Vec<u64>)> = stamped(&trace, 600).into_iter().map(|(i, _, s)| (i, parse(s))).collect();
    let (mut ordered, mut concurrent, mut bad) = (0u64, 0u64, None);
    for (a, va) in &ev {
        for (b, vb) in &ev {
            if a == b {
                continue;
            }
            let truth = hb.happens_before(*a, *b);
            if truth {
                ordered += 1;
            } else if hb.concurrent(*a, *b) {
                concurrent += 1;
            }
            if truth != less(va, vb) && bad.is_none() {
                bad = Some(format!(
                    "events #{a} V={va:?} and #{b} V={vb:?}: happens-before is {truth}, V(a)<V(b) is {}",
                    less(va, vb)
                ));
            }
        }
    }
    let mut report = LabReport::new(ALGORITHM.name, opts);
    report.checks.push(Check::new(
        "a→b ⇔ V(a)<V(b)",
        bad.is_none(),
        bad.unwrap_or_else(|| {
            format!("{ordered} ordered and {concurrent} concurrent pairs of {} stamped events, all exact", ev.len())
        }),
    ));
    let s = sim.stats();
    let n = opts.nodes as f64;
    report.costs.push(Cost::new(
        "timestamp bytes per message",
        s.bytes as f64 / s.sent.max(1) as f64,
        "8n (n integers)",
        Some(8.0 * n),
    ));
    let (sends, _) = counts(&trace);
    report.costs.push(Cost::new("messages", s.sent as f64, "one per send event; the clock adds none", Some(sends as f64)));
    LabRun::new(report, trace)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_characterise_causality() {
        for seed in 0..5 {
            let r = run(&LabOptions::new(4, seed)).report;
            assert!(r.passed(), "{r:?}");
        }
    }

    #[test]
    fn planted_bug_is_caught() {
        let mut o = LabOptions::new(4, 1);
        o.variant = Some("no-merge".into());
        assert!(!run(&o).report.passed());
    }
}
