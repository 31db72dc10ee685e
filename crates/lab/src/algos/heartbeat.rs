//! Heartbeat failure detection with a fixed timeout: every process (or every
//! process but a monitor) sends a heartbeat each period; a peer silent for
//! longer than the timeout is suspected.

use synod_simnet::{ClockConfig, Ctx, NetConfig, ProcId, Process, Sim, Time, MILLIS, SECONDS};

use crate::algos::gossip_common::{crash_plan, run_with_crashes, sim_options};
use crate::harness::net_for;
use crate::registry::{Algorithm, FaultModel};
use synod_simnet::Fault;
use crate::report::{Check, Cost, LabOptions, LabReport, LabRun};

/// The registry entry.
pub const ALGORITHM: Algorithm = Algorithm {
    name: "heartbeat",
    family: "failure detection",
    summary: "all-to-all heartbeats with a fixed timeout: detection time and false suspicions",
    description: "Heartbeat failure detector with a fixed timeout.\n\
Every process sends HEARTBEAT to every other one each period P = 100 ms (or\n\
only to a monitor, P0, in the `monitor` variant). A receiver checks every\n\
10 ms and suspects a peer it has not heard from for longer than the timeout\n\
T = 350 ms; a heartbeat from a suspected peer retracts the suspicion.\n\
A quarter of the processes (never P0) crash between 1 s and 2 s; the run\n\
lasts 4 s. Only message faults (loss, duplicate, reorder) apply.\n\
Guarantees (synchronous model: latency ≤ δ = 10 ms, no loss): strong\n\
completeness — every crashed process is suspected by every live monitor\n\
within T + δ + 10 ms of its crash — and strong accuracy — no live process is\n\
ever suspected. Under loss p, a false suspicion needs m = ⌈T/P⌉ - 1 = 3\n\
consecutive lost heartbeats: about (1-p)·p^m per heartbeat per link.\n\
Cost: N(N-1) messages per period all-to-all, N-1 to a monitor.",
    variants: &[
        ("monitor", "heartbeats go only to P0, which alone detects"),
        (
            "short-timeout",
            "planted bug: timeout 80 ms, shorter than the period",
        ),
    ],
    default_nodes: 5,
    nodes: (2, 300),
    faults: FaultModel {
        tolerates: &[Fault::Loss, Fault::Duplicate, Fault::Reorder],
        outside: &[],
        refused: "every run crashes its own planned set of processes (the failures to detect); partitions, clogged links and clock faults are not part of this detector's runs",
    },
    run,
};

/// Heartbeat period.
pub const PERIOD: Time = 100 * MILLIS;
/// Fixed timeout.
pub const TIMEOUT: Time = 350 * MILLIS;
const CHECK: Time = 10 * MILLIS;
const RUN_FOR: Time = 4 * SECONDS;
const MAX_EVENTS: usize = 100_000;

const TAG_BEAT: u64 = 0;
const TAG_CHECK: u64 = 1;

/// The heartbeat message.
#[derive(Clone, Debug)]
pub struct Beat;

/// One process: sender and detector.
#[derive(Clone, Debug)]
pub struct HbProc {
    monitor_only: bool,
    timeout: Time,
    last: Vec<Time>,
    suspected: Vec<bool>,
    /// Suspicion changes: (local time, peer, suspected?), bounded.
    pub log: Vec<(Time, ProcId, bool)>,
}

impl HbProc {
    fn new(n: usize, monitor_only: bool, timeout: Time) -> HbProc {
        HbProc {
            monitor_only,
            timeout,
            last: vec![0; n],
            suspected: vec![false; n],
            log: vec![],
        }
    }

    fn monitors(&self, me: ProcId) -> bool {
        !self.monitor_only || me == 0
    }

    fn note(&mut self, t: Time, p: ProcId, s: bool) {
        if self.log.len() < MAX_EVENTS {
            self.log.push((t, p, s));
        }
    }
}

impl Process for HbProc {
    type Msg = Beat;

    fn on_start(&mut self, ctx: &mut Ctx<'_, Beat>) {
        let now = ctx.now();
        self.last.iter_mut().for_each(|l| *l = now);
        ctx.set_timer(PERIOD, TAG_BEAT);
        if self.monitors(ctx.id()) {
            ctx.set_timer(CHECK, TAG_CHECK);
        }
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_, Beat>, tag: u64) {
        let (me, n) = (ctx.id(), ctx.n());
        if tag == TAG_BEAT {
            ctx.set_timer(PERIOD, TAG_BEAT);
            for q in 0..n {
                if q != me && (!self.monitor_only || q == 0) {
                    ctx.send(q, Beat);
                }
            }
            return;
        }
        ctx.set_timer(CHECK, TAG_CHECK);
        let now = ctx.now();
        for q in 0..n {
            if q != me && !self.suspected[q] && now - self.last[q] > self.timeout {
                self.suspected[q] = true;
                self.note(now, q, true);
                ctx.mark(&format!("suspect P{q}"));
            }
        }
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, Beat>, from: ProcId, _msg: Beat) {
        if from >= self.last.len() {
            return;
        }
        let now = ctx.now();
        self.last[from] = now;
        if self.suspected[from] {
            self.suspected[from] = false;
            self.note(now, from, false);
            ctx.mark(&format!("trust P{from}"));
        }
    }

    fn msg_bytes(_msg: &Beat) -> usize {
        // sender id and sequence number
        12
    }

    fn msg_label(_msg: &Beat) -> String {
        "Hb".into()
    }
}

fn run(opts: &LabOptions) -> LabRun {
    let n = opts.nodes;
    let monitor_only = opts.is_variant("monitor");
    let timeout = if opts.is_variant("short-timeout") {
        80 * MILLIS
    } else {
        TIMEOUT
    };
    let procs = (0..n)
        .map(|_| HbProc::new(n, monitor_only, timeout))
        .collect();
    let net = net_for(&opts.faults, NetConfig::reliable());
    let (delta, loss) = (net.latency_max * net.tail_factor.max(1), net.loss);
    let mut sim = Sim::with_options(
        opts.seed,
        procs,
        net,
        ClockConfig::perfect(),
        sim_options(n),
    );
    let plan = crash_plan(n, opts.seed, (n / 4).max(1), SECONDS, 2 * SECONDS);
    run_with_crashes(&mut sim, &plan, RUN_FOR);
    let crashed_at = |p: ProcId| plan.iter().find(|c| c.1 == p).map(|c| c.0);
    let observers: Vec<ProcId> = (0..n)
        .filter(|&o| sim.is_up(o) && (!monitor_only || o == 0))
        .collect();
    let bound = timeout + delta + CHECK;
    let mut report = LabReport::new(ALGORITHM.name, opts);
    let (mut worst, mut sum, mut count, mut missed) = (0, 0, 0u64, None);
    for &(tc, c) in &plan {
        for &o in &observers {
            let first = sim
                .proc(o)
                .log
                .iter()
                .find(|&&(t, p, s)| p == c && s && t >= tc);
            match first {
                Some(&(t, _, _)) if t - tc <= bound => {
                    worst = worst.max(t - tc);
                    sum += t - tc;
                    count += 1;
                }
                _ if missed.is_none() => {
                    missed = Some(format!("P{o} did not suspect P{c} within {bound} µs"))
                }
                _ => {}
            }
        }
    }
    report.checks.push(Check::new(
        "strong completeness: every crash suspected by every live monitor within T + δ + check",
        missed.is_none(),
        missed.unwrap_or_else(|| {
            format!(
                "{count} detections, worst {} ms (bound {} ms)",
                worst / MILLIS,
                bound / MILLIS
            )
        }),
    ));
    let mut false_susp = 0u64;
    let mut unretracted = None;
    for &o in &observers {
        let log = &sim.proc(o).log;
        for (i, &(t, p, s)) in log.iter().enumerate() {
            let live_then = crashed_at(p).is_none_or(|tc| t < tc);
            if s && live_then {
                false_susp += 1;
                let retracted = log[i + 1..].iter().any(|&(_, q, s2)| q == p && !s2);
                if !retracted
                    && crashed_at(p).is_none()
                    && t + SECONDS < RUN_FOR
                    && unretracted.is_none()
                {
                    unretracted = Some(format!(
                        "P{o} still suspects live P{p} since {} ms",
                        t / MILLIS
                    ));
                }
            }
        }
    }
    if loss == 0.0 {
        report.checks.push(Check::new(
            "strong accuracy: no live process ever suspected",
            false_susp == 0,
            format!("{false_susp} false suspicions"),
        ));
    } else {
        report.checks.push(Check::new(
            "eventual accuracy: every false suspicion is retracted",
            unretracted.is_none(),
            unretracted.unwrap_or_else(|| format!("{false_susp} false suspicions, all retracted")),
        ));
    }
    report.costs.push(Cost::new(
        "mean detection time (ms)",
        if count > 0 {
            sum as f64 / count as f64 / MILLIS as f64
        } else {
            0.0
        },
        &format!(
            "between T - P = {} and T + δ + check = {} ms",
            (timeout.saturating_sub(PERIOD)) / MILLIS,
            bound / MILLIS
        ),
        None,
    ));
    let links = observers.len() as f64 * (n - 1) as f64;
    let beats = (RUN_FOR / PERIOD) as f64;
    let m = TIMEOUT.div_ceil(PERIOD) as i32 - 1;
    report.costs.push(Cost::new(
        "false suspicions",
        false_susp as f64,
        &format!("≈ links·beats·(1-p)·p^{m} with p = {loss}"),
        if opts.is_variant("short-timeout") {
            None
        } else {
            Some(links * beats * (1.0 - loss) * loss.powi(m))
        },
    ));
    let per_period = sim.stats().sent_of("Hb") as f64 / (RUN_FOR / PERIOD) as f64;
    report.costs.push(Cost::new(
        "messages per period",
        per_period,
        &if monitor_only {
            format!("N - 1 = {} to the monitor, less once senders crash", n - 1)
        } else {
            format!(
                "N(N-1) = {} all-to-all, less once senders crash",
                n * (n - 1)
            )
        },
        None,
    ));
    LabRun::new(report, sim.take_trace())
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
    fn complete_and_accurate_without_faults() {
        for seed in 0..3 {
            for v in [None, Some("monitor")] {
                let r = run(&opts(6, seed, v, "none")).report;
                assert!(r.passed(), "{r:?}");
                assert_eq!(r.costs[1].measured, 0.0);
                let d = r.costs[0].measured;
                assert!((250.0..=370.0).contains(&d), "detection {d} ms");
            }
        }
    }

    #[test]
    fn loss_causes_retracted_false_suspicions() {
        let total: f64 = (0..3)
            .map(|s| {
                let r = run(&opts(8, s, None, "loss")).report;
                assert!(r.checks[0].held, "{r:?}");
                r.costs[1].measured
            })
            .sum();
        assert!(total > 0.0, "10 % loss over 3 runs gave no false suspicion");
    }

    #[test]
    fn planted_bug_is_caught() {
        let r = run(&opts(4, 1, Some("short-timeout"), "none")).report;
        assert!(!r.checks[1].held, "{r:?}");
    }
}
