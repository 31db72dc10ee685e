//! Hybrid logical clocks: causality like Lamport's, yet close to physical time.

use crate::algos::clockwork::{run_clock, ClockRules};
use crate::causality::{stamped, Causality};
use crate::registry::{Algorithm, FaultModel};
use synod_simnet::Fault;
use crate::report::{Check, Cost, LabOptions, LabReport, LabRun};
use synod_simnet::ClockConfig;

/// The registry entry.
pub const ALGORITHM: Algorithm = Algorithm {
    name: "hlc",
    family: "logical clocks",
    summary: "hybrid logical clocks: monotone, causal, within ε of physical time",
    description: "Hybrid logical clock (Kulkarni, Demirbas et al. 2014).\n\
State (l, c); pt is the local physical clock (skewed and drifting here).\n\
Local or send: l' = max(l, pt); c = c + 1 if l' = l else 0; l = l'.\n\
Receive (lm, cm): l' = max(l, lm, pt); c = max(c, cm) + 1 if l' = l = lm,\n\
c + 1 if l' = l only, cm + 1 if l' = lm only, else 0; l = l'.\n\
Guarantees: (l, c) strictly increases at each process; a→b ⇒ hlc(a) < hlc(b);\n\
pt <= l <= pt + ε where ε bounds the skew between physical clocks, so l fits in\n\
a physical timestamp and c stays small.\n\
Cost: no extra messages; two integers (16 bytes) piggybacked per message.",
    variants: &[("no-physical", "planted bug: pt is ignored, l = max(l, lm) (a Lamport clock in disguise)")],
    default_nodes: 3,
    nodes: (1, 64),
    faults: FaultModel {
        tolerates: &[Fault::Loss, Fault::Duplicate, Fault::Reorder, Fault::Partition, Fault::OneWay, Fault::Clog, Fault::Crash, Fault::Skew],
        outside: &[],
        refused: "every fault kind applies",
    },
    run,
};

const SKEW: ClockConfig = ClockConfig { max_skew: 20_000, max_drift_ppm: 200 };

#[derive(Clone, Debug)]
struct Hlc {
    l: u64,
    c: u64,
    pt: u64,
    ignore_pt: bool,
}

impl Hlc {
    fn physical(&self, pt: u64) -> u64 {
        if self.ignore_pt {
            0
        } else {
            pt
        }
    }
}

impl ClockRules for Hlc {
    type Ts = (u64, u64);
    fn new(_me: usize, _n: usize) -> Self {
        Hlc { l: 0, c: 0, pt: 0, ignore_pt: false }
    }
    fn tick(&mut self, pt: u64) {
        self.pt = pt;
        let l = self.l.max(self.physical(pt));
        self.c = if l == self.l { self.c + 1 } else { 0 };
        self.l = l;
    }
    fn on_send(&mut self, pt: u64) -> (u64, u64) {
        self.tick(pt);
        (self.l, self.c)
    }
    fn on_receive(&mut self, &(lm, cm): &(u64, u64), pt: u64) {
        self.pt = pt;
        let l = self.l.max(lm).max(self.physical(pt));
        self.c = match (l == self.l, l == lm) {
            (true, true) => self.c.max(cm) + 1,
            (true, false) => self.c + 1,
            (false, true) => cm + 1,
            (false, false) => 0,
        };
        self.l = l;
    }
    fn show(&self) -> String {
        format!("{},{}|{}", self.l, self.c, self.pt)
    }
    fn bytes(_ts: &(u64, u64)) -> usize {
        16
    }
}

fn parse(s: &str) -> (u64, u64, u64) {
    let (lc, pt) = s.split_once('|').expect("own stamp has a pt");
    let (l, c) = lc.split_once(',').expect("own stamp has l,c");
    let num = |x: &str| x.parse::<u64>().expect("own stamp is numeric");
    (num(l), num(c), num(pt))
}

fn run(opts: &LabOptions) -> LabRun {
    let bug = opts.is_variant("no-physical");
    let mut sim = run_clock(opts, SKEW, |me, n| Hlc { ignore_pt: bug, ..Hlc::new(me, n) });
    let trace = sim.take_trace();
    let n = opts.nodes;
    let hb = Causality::from_trace(&trace, n);
    let ev: Vec<(usize, usize, (u64, u64, u64))> =
        stamped(&trace, 800).into_iter().map(|(i, p, s)| (i, p, parse(s))).collect();
    let mut report = LabReport::new(ALGORITHM.name, opts);

    // Monotone at each process.
    let mut last: Vec<Option<(u64, u64)>> = vec![None; n];
    let mut non_monotone = None;
    for &(i, p, (l, c, _)) in &ev {
        if last[p].is_some_and(|prev| prev >= (l, c)) && non_monotone.is_none() {
            non_monotone = Some(format!("P{p} event #{i}: ({l},{c}) after {:?}", last[p].unwrap_or_default()));
        }
        last[p] = Some((l, c));
    }
    report.checks.push(Check::new(
        "(l,c) strictly increases at each process",
        non_monotone.is_none(),
        non_monotone.unwrap_or_else(|| format!("{} stamped events", ev.len())),
    ));

    let (mut pairs, mut bad) = (0u64, None);
    for &(a, _, (la, ca, _)) in &ev {
        for &(b, _, (lb, cb, _)) in &ev {
            if hb.happens_before(a, b) {
                pairs += 1;
                if (la, ca) >= (lb, cb) && bad.is_none() {
                    bad = Some(format!("#{a} ({la},{ca}) → #{b} ({lb},{cb})"));
                }
            }
        }
    }
    report.checks.push(Check::new(
        "a→b ⇒ hlc(a)<hlc(b)",
        bad.is_none(),
        bad.unwrap_or_else(|| format!("{pairs} causally ordered pairs")),
    ));

    // pt <= l <= max_j pt_j(now): l never runs behind its own clock, nor ahead of the fastest one.
    let (mut worst_ahead, mut worst_c, mut bound_bad) = (0u64, 0u64, None);
    for &(i, p, (l, c, pt)) in &ev {
        let t = trace.events[i].time;
        let fastest = (0..n).map(|j| sim.clock(j).local(t)).max().unwrap_or(pt).max(pt);
        worst_ahead = worst_ahead.max(l.saturating_sub(pt));
        worst_c = worst_c.max(c);
        if (l < pt || l > fastest) && bound_bad.is_none() {
            bound_bad = Some(format!("P{p} event #{i}: l={l}, pt={pt}, fastest clock {fastest}"));
        }
    }
    let eps = {
        let end = sim.now();
        let spread = |t: u64| {
            let v: Vec<u64> = (0..n).map(|j| sim.clock(j).local(t)).collect();
            v.iter().max().unwrap_or(&0) - v.iter().min().unwrap_or(&0)
        };
        spread(0).max(spread(end))
    };
    report.checks.push(Check::new(
        "pt ≤ l ≤ fastest physical clock (so l − pt ≤ ε)",
        bound_bad.is_none(),
        bound_bad.unwrap_or_else(|| format!("max l − pt = {worst_ahead}µs, ε = {eps}µs")),
    ));
    let s = sim.stats();
    report.costs.push(Cost::new("max l − pt (µs)", worst_ahead as f64, "≤ ε, the largest skew between clocks", None).at_least(0.0).at_most(eps as f64));
    report.costs.push(Cost::new("max counter c", worst_c as f64, "small: bounded by events within ε", None));
    report.costs.push(Cost::new("timestamp bytes per message", s.bytes as f64 / s.sent.max(1) as f64, "16 (l and c)", Some(16.0)));
    LabRun::new(report, trace)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hlc_guarantees_hold_under_skew() {
        for seed in 0..5 {
            let r = run(&LabOptions::new(4, seed)).report;
            assert!(r.passed(), "{r:?}");
            assert!(r.costs[0].bound.unwrap().holds(r.costs[0].measured));
            assert_eq!(r.costs[0].expected, None);
        }
    }

    #[test]
    fn ignoring_physical_time_is_caught() {
        let mut o = LabOptions::new(4, 1);
        o.variant = Some("no-physical".into());
        let r = run(&o).report;
        assert!(!r.checks[2].held, "{r:?}");
    }
}
