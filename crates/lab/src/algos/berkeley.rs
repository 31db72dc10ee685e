//! The Berkeley algorithm: a master polls, averages and tells each clock how
//! much to adjust, so the clocks agree with each other (not with true time).

use std::collections::BTreeMap;

use synod_simnet::{ClockConfig, Ctx, NetConfig, ProcId, Process, Sim};

use crate::harness::{net_for, run_faulted};
use crate::registry::{Algorithm, FaultModel};
use synod_simnet::Fault;
use crate::report::{Check, Cost, LabOptions, LabReport, LabRun};

/// The registry entry.
pub const ALGORITHM: Algorithm = Algorithm {
    name: "berkeley",
    family: "physical clocks",
    summary: "master averages polled clocks and sends each its adjustment",
    description: "Berkeley algorithm (Gusella & Zatti 1989). P0 is the master.\n\
The master polls every slave; a slave answers with its clock; the master estimates\n\
each slave's offset as T + rtt/2 − t1 (Cristian's estimate), averages the offsets\n\
(its own is 0) after discarding outliers beyond a threshold, and sends each slave the\n\
adjustment avg − offset_i (and applies avg itself). Clocks then agree with each other,\n\
not with true time: the spread after is bounded by the estimation errors, ≤ max rtt.\n\
Cost: 3(n−1) messages per round (poll, reply, adjust).",
    variants: &[("wrong-sign", "planted bug: slaves apply −adjustment")],
    default_nodes: 4,
    nodes: (2, 64),
    faults: FaultModel {
        tolerates: &[Fault::Reorder, Fault::Partition, Fault::OneWay, Fault::Clog],
        outside: &[Fault::Loss, Fault::Duplicate, Fault::Crash, Fault::Skew],
        refused: "every fault kind applies",
    },
    run,
};

const OUTLIER: i64 = 1_000_000;
const POLL_AT: u64 = 10_000;

/// Berkeley messages.
#[derive(Clone, Debug)]
pub enum Msg {
    /// The master asks for the time.
    Poll,
    /// A slave's corrected clock.
    Time(u64),
    /// Add this to your clock.
    Adjust(i64),
}

/// Master (P0) or slave.
#[derive(Clone, Debug, Default)]
pub struct Node {
    /// Software correction added to the local clock.
    pub adj: i64,
    polled_at: u64,
    estimates: BTreeMap<ProcId, (i64, u64)>,
    /// Largest round trip the master saw.
    pub max_rtt: u64,
    wrong_sign: bool,
}

impl Node {
    fn clock(&self, ctx: &Ctx<'_, Msg>) -> u64 {
        (ctx.now() as i64 + self.adj).max(0) as u64
    }
}

impl Process for Node {
    type Msg = Msg;
    fn on_start(&mut self, ctx: &mut Ctx<'_, Msg>) {
        if ctx.id() == 0 {
            ctx.set_timer(POLL_AT, 0);
        }
    }
    fn on_timer(&mut self, ctx: &mut Ctx<'_, Msg>, _tag: u64) {
        self.polled_at = self.clock(ctx);
        ctx.mark("poll");
        for p in 1..ctx.n() {
            ctx.send(p, Msg::Poll);
        }
    }
    fn on_message(&mut self, ctx: &mut Ctx<'_, Msg>, from: ProcId, msg: Msg) {
        match msg {
            Msg::Poll => {
                let t = self.clock(ctx);
                ctx.send(from, Msg::Time(t));
            }
            Msg::Time(t) => {
                let t1 = self.clock(ctx);
                let rtt = t1.saturating_sub(self.polled_at);
                let est = t as i64 + (rtt / 2) as i64 - t1 as i64;
                self.estimates.insert(from, (est, rtt));
                self.max_rtt = self.max_rtt.max(rtt);
                if self.estimates.len() + 1 == ctx.n() {
                    let kept: Vec<i64> = self.estimates.values().map(|e| e.0).filter(|e| e.abs() <= OUTLIER).collect();
                    let avg = kept.iter().sum::<i64>() / (kept.len() as i64 + 1);
                    self.adj += avg;
                    ctx.mark(&format!("avg {avg:+}"));
                    let ests: Vec<(ProcId, i64)> = self.estimates.iter().map(|(p, e)| (*p, e.0)).collect();
                    for (p, est) in ests {
                        ctx.send(p, Msg::Adjust(avg - est));
                    }
                }
            }
            Msg::Adjust(d) => {
                self.adj += if self.wrong_sign { -d } else { d };
                ctx.stamp(&format!("adj {:+}", self.adj));
            }
        }
    }
    fn msg_bytes(msg: &Msg) -> usize {
        match msg {
            Msg::Poll => 1,
            Msg::Time(_) | Msg::Adjust(_) => 9,
        }
    }
    fn msg_label(msg: &Msg) -> String {
        match msg {
            Msg::Poll => "Poll".into(),
            Msg::Time(_) => "Time".into(),
            Msg::Adjust(d) => format!("Adjust({d:+})"),
        }
    }
}

const CLOCKS: ClockConfig = ClockConfig { max_skew: 200_000, max_drift_ppm: 50 };

fn run(opts: &LabOptions) -> LabRun {
    let n = opts.nodes;
    let bug = opts.is_variant("wrong-sign");
    let node = |_| Node { wrong_sign: bug, ..Node::default() };
    let base = NetConfig { latency_min: 500, latency_max: 10_000, ..NetConfig::reliable() };
    let mut sim = Sim::new(opts.seed, (0..n).map(node).collect(), net_for(&opts.faults, base), CLOCKS);
    let spread_before = {
        let v: Vec<u64> = (0..n).map(|p| sim.local_time(p)).collect();
        v.iter().max().unwrap_or(&0) - v.iter().min().unwrap_or(&0)
    };
    run_faulted(&mut sim, opts, 1_000_000, node);
    let trace = sim.take_trace();
    let corrected: Vec<i64> = (0..n).map(|p| sim.local_time(p) as i64 + sim.proc(p).adj).collect();
    let spread_after = (corrected.iter().max().unwrap_or(&0) - corrected.iter().min().unwrap_or(&0)) as u64;
    let max_rtt = sim.proc(0).max_rtt;
    let slack = 2 * CLOCKS.max_drift_ppm as u64 * sim.now() / 1_000_000 + 1;
    let adjusted = (1..n).filter(|&p| sim.proc(p).adj != 0).count();
    let mut report = LabReport::new(ALGORITHM.name, opts);
    report.checks.push(Check::new("every slave was adjusted", adjusted == n - 1, format!("{adjusted} of {}", n - 1)));
    report.checks.push(Check::new(
        "spread after ≤ max rtt",
        spread_after <= max_rtt + slack,
        format!("spread {spread_before}µs before, {spread_after}µs after; max rtt {max_rtt}µs, drift slack {slack}µs"),
    ));
    let s = sim.stats();
    report.costs.push(Cost::new("messages", s.sent as f64, "3(n−1) per round", Some(3.0 * (n - 1) as f64)));
    report.costs.push(Cost::new("spread after (µs)", spread_after as f64, "≤ max rtt (+ drift since the round)", None).at_most((max_rtt + slack) as f64));
    LabRun::new(report, trace)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clocks_converge() {
        for seed in 0..5 {
            let r = run(&LabOptions::new(5, seed)).report;
            assert!(r.passed(), "{r:?}");
        }
    }

    #[test]
    fn wrong_sign_is_caught() {
        let mut o = LabOptions::new(5, 1);
        o.variant = Some("wrong-sign".into());
        assert!(!run(&o).report.passed());
    }
}
