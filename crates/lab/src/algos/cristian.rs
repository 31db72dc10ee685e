//! Cristian's clock synchronisation: offset from a time server, keeping the
//! sample with the smallest round trip, whose error is at most half of it.

use rand::Rng;
use synod_simnet::{ClockConfig, Ctx, NetConfig, ProcId, Process, Sim};

use crate::harness::{net_for, run_faulted};
use crate::registry::{Algorithm, FaultModel};
use synod_simnet::Fault;
use crate::report::{Check, Cost, LabOptions, LabReport, LabRun};

/// The registry entry.
pub const ALGORITHM: Algorithm = Algorithm {
    name: "cristian",
    family: "physical clocks",
    summary: "offset from a time server; min-RTT sample; error ≤ RTT/2",
    description: "Cristian's algorithm (1989). P0 is the time server; every other process is a client.\n\
A client sends a request at local time t0; the server answers with its clock T; the reply\n\
arrives at local time t1. Round trip rtt = t1 − t0; offset estimate θ = T + rtt/2 − t1.\n\
Delays are asymmetric (random, with a long tail), so each estimate is off by half the\n\
difference of the two one-way delays: |error| ≤ rtt/2. Over k samples the client keeps\n\
the one with the smallest rtt, whose bound is tightest.\n\
Checked against the true clocks of the simulator.\n\
Cost: 2 messages per sample, 2k(n−1) in all.",
    variants: &[("minus-half", "planted bug: θ = T − rtt/2 − t1 (wrong sign of the correction)")],
    default_nodes: 3,
    nodes: (2, 64),
    faults: FaultModel {
        tolerates: &[Fault::Loss, Fault::Duplicate, Fault::Reorder, Fault::Partition, Fault::OneWay, Fault::Clog, Fault::Crash],
        outside: &[Fault::Skew],
        refused: "every fault kind applies",
    },
    run,
};

const SAMPLES: u64 = 8;
const PERIOD: u64 = 25_000;

/// Time-service messages.
#[derive(Clone, Debug)]
pub enum Msg {
    /// Request number `0`.
    Req(u64),
    /// Reply to request `0` with the server's clock `1`.
    Resp(u64, u64),
}

/// One estimate.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    /// Estimated offset of the server's clock from ours.
    pub offset: i64,
    /// Its round trip.
    pub rtt: u64,
}

/// A server (P0) or client.
#[derive(Clone, Debug, Default)]
pub struct Node {
    sent_at: Vec<u64>,
    /// Every sample taken.
    pub samples: Vec<Sample>,
    minus_half: bool,
}

impl Node {
    /// The sample with the smallest round trip.
    pub fn best(&self) -> Option<Sample> {
        self.samples.iter().copied().min_by_key(|s| s.rtt)
    }
}

impl Process for Node {
    type Msg = Msg;
    fn on_start(&mut self, ctx: &mut Ctx<'_, Msg>) {
        if ctx.id() != 0 {
            let d = ctx.rng().random_range(1_000..=PERIOD);
            ctx.set_timer(d, 0);
        }
    }
    fn on_timer(&mut self, ctx: &mut Ctx<'_, Msg>, _tag: u64) {
        if self.sent_at.len() as u64 >= SAMPLES {
            return;
        }
        let seq = self.sent_at.len() as u64;
        self.sent_at.push(ctx.now());
        ctx.send(0, Msg::Req(seq));
        ctx.set_timer(PERIOD, 0);
    }
    fn on_message(&mut self, ctx: &mut Ctx<'_, Msg>, from: ProcId, msg: Msg) {
        match msg {
            Msg::Req(seq) => {
                let now = ctx.now();
                ctx.stamp(&format!("T={now}"));
                ctx.send(from, Msg::Resp(seq, now));
            }
            Msg::Resp(seq, server) => {
                // A reply to a request we never sent is a peer's error: ignore it.
                let Some(&t0) = self.sent_at.get(seq as usize) else { return };
                let t1 = ctx.now();
                let rtt = t1 - t0;
                let half = (rtt / 2) as i64;
                let corr = if self.minus_half { -half } else { half };
                let offset = server as i64 + corr - t1 as i64;
                self.samples.push(Sample { offset, rtt });
                ctx.stamp(&format!("θ={offset} rtt={rtt}"));
            }
        }
    }
    fn msg_bytes(msg: &Msg) -> usize {
        match msg {
            Msg::Req(_) => 8,
            Msg::Resp(..) => 16,
        }
    }
    fn msg_label(msg: &Msg) -> String {
        match msg {
            Msg::Req(s) => format!("Req({s})"),
            Msg::Resp(s, _) => format!("Resp({s})"),
        }
    }
}

const CLOCKS: ClockConfig = ClockConfig { max_skew: 50_000, max_drift_ppm: 50 };

fn run(opts: &LabOptions) -> LabRun {
    let n = opts.nodes;
    let bug = opts.is_variant("minus-half");
    let node = |_| Node { minus_half: bug, ..Node::default() };
    let base = NetConfig { latency_min: 500, latency_max: 15_000, tail_prob: 0.2, tail_factor: 4, ..NetConfig::reliable() };
    let mut sim = Sim::new(opts.seed, (0..n).map(node).collect(), net_for(&opts.faults, base), CLOCKS);
    run_faulted(&mut sim, opts, 2_000_000, node);
    let trace = sim.take_trace();
    let end = sim.now();
    // Clocks drift apart by at most 2 × drift × elapsed between a sample and the end.
    let slack = 2 * CLOCKS.max_drift_ppm as u64 * end / 1_000_000 + 1;
    let truth = |c: usize| sim.clock(0).local(end) as i64 - sim.clock(c).local(end) as i64;
    let (mut all_err, mut all_n, mut best_err, mut best_n) = (0u64, 0u64, 0u64, 0u64);
    let (mut per_sample_bad, mut best_bad) = (None, None);
    let mut synced = 0;
    for c in 1..n {
        let node = sim.proc(c);
        for s in &node.samples {
            let err = s.offset.abs_diff(truth(c));
            all_err += err;
            all_n += 1;
            if err > s.rtt / 2 + slack && per_sample_bad.is_none() {
                per_sample_bad = Some(format!("P{c}: error {err}µs > rtt/2 = {}µs", s.rtt / 2));
            }
        }
        if let Some(b) = node.best() {
            synced += 1;
            let err = b.offset.abs_diff(truth(c));
            best_err += err;
            best_n += 1;
            if err > b.rtt / 2 + slack && best_bad.is_none() {
                best_bad = Some(format!("P{c}: error {err}µs > rtt_min/2 = {}µs", b.rtt / 2));
            }
        }
    }
    let mut report = LabReport::new(ALGORITHM.name, opts);
    report.checks.push(Check::new(
        "every client has an estimate",
        synced == n - 1,
        format!("{synced} of {} clients", n - 1),
    ));
    report.checks.push(Check::new(
        "|error| ≤ rtt/2 for every sample",
        per_sample_bad.is_none(),
        per_sample_bad.unwrap_or_else(|| format!("{all_n} samples within bound (drift slack {slack}µs)")),
    ));
    report.checks.push(Check::new(
        "|error| ≤ rtt_min/2 for the chosen sample",
        best_bad.is_none(),
        best_bad.unwrap_or_else(|| format!("{best_n} clients within bound")),
    ));
    let s = sim.stats();
    report.costs.push(Cost::new("messages", s.sent as f64, "2k(n−1), k samples per client", Some((2 * SAMPLES * (n as u64 - 1)) as f64)));
    report.costs.push(Cost::new("mean |error|, all samples (µs)", all_err as f64 / all_n.max(1) as f64, "≤ rtt/2 each", None));
    report.costs.push(Cost::new("mean |error|, min-RTT samples (µs)", best_err as f64 / best_n.max(1) as f64, "≤ rtt_min/2", None));
    LabRun::new(report, trace)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimates_are_within_half_the_round_trip() {
        for seed in 0..5 {
            let r = run(&LabOptions::new(4, seed)).report;
            assert!(r.passed(), "{r:?}");
        }
    }

    #[test]
    fn wrong_correction_is_caught() {
        let mut o = LabOptions::new(4, 1);
        o.variant = Some("minus-half".into());
        assert!(!run(&o).report.passed());
    }
}
