//! Lamport's scalar logical clock, checked against the true happens-before.

use crate::algos::clockwork::{counts, run_clock, ClockRules};
use crate::causality::{stamped, Causality};
use crate::registry::{Algorithm, FaultModel};
use synod_simnet::Fault;
use crate::report::{Check, Cost, LabOptions, LabReport, LabRun};

/// The registry entry.
pub const ALGORITHM: Algorithm = Algorithm {
    name: "lamport-clock",
    family: "logical clocks",
    summary: "scalar clocks: a→b ⇒ C(a) < C(b), but not the converse",
    description: "Lamport scalar clock (1978).\n\
Rules: each process keeps a counter C. Before a local event or a send, C += 1;\n\
a message carries C; on receipt of timestamp t, C = max(C, t) + 1.\n\
Guarantee (clock condition): if a happened before b then C(a) < C(b).\n\
The converse is false: concurrent events get ordered timestamps too, so C\n\
cannot detect concurrency. Checked against the true happens-before relation\n\
computed from the trace; the run also shows a concurrent pair with C(a) < C(b).\n\
Cost: no extra messages; one integer (8 bytes) piggybacked per message.",
    variants: &[("no-max", "planted bug: on receipt C = C + 1, ignoring the message's timestamp")],
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
struct Lamport {
    c: u64,
    ignore_received: bool,
}

impl ClockRules for Lamport {
    type Ts = u64;
    fn new(_me: usize, _n: usize) -> Self {
        Lamport { c: 0, ignore_received: false }
    }
    fn tick(&mut self, _pt: u64) {
        self.c += 1;
    }
    fn on_send(&mut self, _pt: u64) -> u64 {
        self.c += 1;
        self.c
    }
    fn on_receive(&mut self, ts: &u64, _pt: u64) {
        self.c = if self.ignore_received { self.c } else { self.c.max(*ts) } + 1;
    }
    fn show(&self) -> String {
        self.c.to_string()
    }
    fn bytes(_ts: &u64) -> usize {
        8
    }
}

fn run(opts: &LabOptions) -> LabRun {
    let bug = opts.is_variant("no-max");
    let mut sim = run_clock(opts, synod_simnet::ClockConfig::perfect(), |me, n| Lamport { ignore_received: bug, ..Lamport::new(me, n) });
    let trace = sim.take_trace();
    let hb = Causality::from_trace(&trace, opts.nodes);
    let ev: Vec<(usize, u64)> =
        stamped(&trace, 1_000).into_iter().map(|(i, _, s)| (i, s.parse().expect("own stamp is an integer"))).collect();
    let (mut pairs, mut bad, mut converse) = (0u64, None, None);
    for &(a, ca) in &ev {
        for &(b, cb) in &ev {
            if hb.happens_before(a, b) {
                pairs += 1;
                if ca >= cb && bad.is_none() {
                    bad = Some(format!("event #{a} (C={ca}) → event #{b} (C={cb})"));
                }
            } else if converse.is_none() && hb.concurrent(a, b) && ca < cb {
                converse = Some(format!("events #{a} (C={ca}) and #{b} (C={cb}) are concurrent"));
            }
        }
    }
    let mut report = LabReport::new(ALGORITHM.name, opts);
    report.checks.push(Check::new(
        "a→b ⇒ C(a)<C(b)",
        bad.is_none(),
        bad.unwrap_or_else(|| format!("{pairs} causally ordered pairs of {} stamped events", ev.len())),
    ));
    report.checks.push(Check::new(
        "converse fails: C(a)<C(b) for some concurrent a, b",
        converse.is_some() || opts.nodes < 2,
        converse.unwrap_or_else(|| "no concurrent pair with ordered clocks in this run".to_string()),
    ));
    let s = sim.stats();
    let (sends, _) = counts(&trace);
    report.costs.push(Cost::new("messages", s.sent as f64, "one per send event; the clock adds none", Some(sends as f64)));
    report.costs.push(Cost::new(
        "timestamp bytes per message",
        s.bytes as f64 / s.sent.max(1) as f64,
        "8 (one integer)",
        Some(8.0),
    ));
    LabRun::new(report, trace)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_condition_holds_and_converse_fails() {
        for seed in 0..5 {
            let r = run(&LabOptions::new(4, seed)).report;
            assert!(r.passed(), "{r:?}");
        }
    }

    #[test]
    fn planted_bug_is_caught() {
        let caught = (0..5).any(|seed| {
            let mut o = LabOptions::new(4, seed);
            o.variant = Some("no-max".into());
            !run(&o).report.checks[0].held
        });
        assert!(caught);
    }
}
