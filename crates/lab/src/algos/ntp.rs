//! NTP's on-wire calculation: offset and delay from four timestamps, the
//! minimum-delay sample, and strata of servers synchronised in turn.

use std::collections::BTreeMap;

use synod_simnet::{
    ClockConfig, Ctx, Fault, NemesisAction, NetConfig, ProcId, Process, Sim, Time,
};

use crate::harness::{fault_schedule, net_for};
use crate::registry::{Algorithm, FaultModel};
use crate::report::{Check, Cost, LabOptions, LabReport, LabRun};

/// The registry entry.
pub const ALGORITHM: Algorithm = Algorithm {
    name: "ntp",
    family: "physical clocks",
    summary: "NTP: offset ((T2-T1)+(T3-T4))/2 within ±delay/2; strata synchronised in turn",
    description: "NTP's on-wire protocol (Mills, RFC 5905), simplified to its clock filter.\n\
P0 is a stratum-1 server (its clock is true time). P1..P⌈(N-1)/3⌉ are stratum 2 and\n\
poll P0; the rest are stratum 3 and poll a stratum-2 server once it is synchronised.\n\
A poll: the client sends at T1 (its clock), the server stamps arrival T2 and reply\n\
T3 (its clock), the client receives at T4. Offset θ = ((T2-T1) + (T3-T4))/2, delay\n\
δ = (T4-T1) - (T3-T2). Of 8 polls (more while none is answered) the client keeps\n\
the sample with the least δ and steps its clock by θ; later replies are ignored.\n\
Guarantee: whatever the two one-way delays, the true offset lies in θ ± δ/2 (up to\n\
drift during the poll), so a client ends within δ/2 of its server, and a stratum-s\n\
clock within the sum of the δ/2 along its path to stratum 1.\n\
Cost: 2 messages per poll, 16 per client.",
    variants: &[(
        "one-way",
        "planted bug: the client takes θ = T2 - T1, ignoring the way back",
    )],
    default_nodes: 7,
    nodes: (2, 256),
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
        outside: &[Fault::Skew],
        refused: "every fault kind applies",
    },
    run,
};

/// NTP messages: (poll number, T1) and the server's (T2, T3).
#[derive(Clone, Debug)]
pub enum NtpMsg {
    /// A poll.
    Request(u32, u64),
    /// The answer: the poll number, T1 echoed, T2 and T3.
    Reply(u32, u64, u64, u64),
}

/// A sample: (δ, θ, T4 in true time as the client saw it).
pub type Sample = (i64, i64);

/// A client or server.
#[derive(Clone, Debug)]
pub struct Node {
    server: Option<ProcId>,
    start: Time,
    one_way: bool,
    /// The correction added to the local clock.
    pub adj: i64,
    /// Whether the clock is synchronised (stratum 1 always is).
    pub synced: bool,
    /// Samples taken: (delay, offset), with the true offset at T4.
    pub samples: Vec<(i64, i64, i64)>,
    sent: BTreeMap<u32, u64>,
    polls: u32,
}

const POLLS: u32 = 8;
/// A client gives up after this many unanswered polls.
const MAX_POLLS: u32 = 100;
const POLL_EVERY: Time = 40_000;

impl Node {
    fn clock(&self, ctx: &Ctx<'_, NtpMsg>) -> u64 {
        (ctx.now() as i64 + self.adj).max(0) as u64
    }

    fn finish(&mut self, ctx: &mut Ctx<'_, NtpMsg>) {
        if let Some(&(d, theta, _)) = self.samples.iter().min_by_key(|s| s.0) {
            self.adj += theta;
            self.synced = true;
            ctx.mark(&format!("step {theta:+}µs (δ {d}µs)"));
        }
    }
}

impl Process for Node {
    type Msg = NtpMsg;

    fn on_start(&mut self, ctx: &mut Ctx<'_, NtpMsg>) {
        if self.server.is_some() && !self.synced {
            ctx.set_timer(self.start, 0);
        }
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_, NtpMsg>, _tag: u64) {
        let Some(server) = self.server else { return };
        if self.polls >= POLLS && !self.samples.is_empty() {
            self.finish(ctx);
            return;
        }
        if self.polls == MAX_POLLS {
            ctx.mark("no server answered");
            return;
        }
        self.polls += 1;
        let t1 = self.clock(ctx);
        self.sent.insert(self.polls, t1);
        ctx.send(server, NtpMsg::Request(self.polls, t1));
        ctx.set_timer(POLL_EVERY, 0);
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, NtpMsg>, from: ProcId, msg: NtpMsg) {
        match msg {
            NtpMsg::Request(k, t1) => {
                if !self.synced {
                    return; // an unsynchronised server does not answer
                }
                let t2 = self.clock(ctx);
                ctx.send(from, NtpMsg::Reply(k, t1, t2, t2 + 50));
            }
            NtpMsg::Reply(k, t1, t2, t3) => {
                if self.synced || self.sent.get(&k) != Some(&t1) {
                    return; // late, after the clock was stepped: T1 is stale
                }
                let t4 = self.clock(ctx) as i64;
                let (t1, t2, t3) = (t1 as i64, t2 as i64, t3 as i64);
                let theta = if self.one_way {
                    t2 - t1
                } else {
                    ((t2 - t1) + (t3 - t4)) / 2
                };
                let delta = (t4 - t1) - (t3 - t2);
                // The checker's truth is filled in by the run (server clock − ours now).
                self.samples.push((delta, theta, 0));
            }
        }
    }

    fn msg_bytes(_msg: &NtpMsg) -> usize {
        48
    }

    fn msg_label(msg: &NtpMsg) -> String {
        match msg {
            NtpMsg::Request(k, _) => format!("Request#{k}"),
            NtpMsg::Reply(k, ..) => format!("Reply#{k}"),
        }
    }
}

const CLOCKS: ClockConfig = ClockConfig {
    max_skew: 200_000,
    max_drift_ppm: 50,
};

fn run(opts: &LabOptions) -> LabRun {
    let n = opts.nodes;
    let one_way = opts.is_variant("one-way");
    let s2 = (n - 1).div_ceil(3).max(1);
    let stratum = |p: ProcId| match p {
        0 => 1u32,
        p if p <= s2 => 2,
        _ => 3,
    };
    let phase = POLL_EVERY * (POLLS as Time + 2);
    let until: Time = 10 * phase;
    let make = |p: ProcId| Node {
        server: match stratum(p) {
            1 => None,
            2 => Some(0),
            _ => Some(1 + (p - s2 - 1) % s2),
        },
        start: until / 10 + if stratum(p) == 3 { 2 * phase } else { 0 },
        one_way,
        adj: 0,
        synced: p == 0,
        samples: vec![],
        sent: BTreeMap::new(),
        polls: 0,
    };
    let base = NetConfig {
        latency_min: 500,
        latency_max: 15_000,
        ..NetConfig::reliable()
    };
    let mut sim = Sim::new(
        opts.seed,
        (0..n).map(make).collect(),
        net_for(&opts.faults, base),
        CLOCKS,
    );
    // Stratum 1 keeps true time: its correction cancels its clock's error.
    let err0 = sim.local_time(0) as i64;
    sim.proc_mut(0).adj = -err0;
    // Record each sample's true offset (server's corrected clock minus the
    // client's) at the moment the client takes it: step event by event.
    let mut seen: Vec<usize> = vec![0; n];
    let mut truth = |s: &mut Sim<Node>| {
        for (p, done) in seen.iter_mut().enumerate().skip(1) {
            let len = s.proc(p).samples.len();
            if len > *done {
                let server = s.proc(p).server.unwrap_or(0);
                let now = s.now();
                let corrected =
                    |q: ProcId, s: &Sim<Node>| s.clock(q).local(now) as i64 + s.proc(q).adj;
                let off = corrected(server, s) - corrected(p, s);
                for sample in &mut s.proc_mut(p).samples[*done..len] {
                    sample.2 = off;
                }
                *done = len;
            }
        }
    };
    // One event at a time, so that each sample's truth is taken at the
    // moment the reply arrives; scheduled faults are applied in between.
    let mut schedule = fault_schedule(opts, until).into_iter().peekable();
    loop {
        let next_action = schedule.peek().map(|(at, _)| *at);
        let t = match (sim.next_event_time().filter(|&t| t <= until), next_action) {
            (None, None) => break,
            (Some(e), Some(a)) => e.min(a),
            (Some(e), None) => e,
            (None, Some(a)) => a,
        };
        if next_action.is_some_and(|a| a <= t) && sim.next_event_time().is_none_or(|e| e > t) {
            sim.run_until(t);
        }
        while let Some((_, a)) = schedule.next_if(|(at, _)| *at <= t) {
            match a {
                NemesisAction::Crash(p) => sim.crash(p),
                NemesisAction::Restart(p) => {
                    // Samples and polls survive; polling resumes at once.
                    let mut back = sim.proc(p).clone();
                    back.start = POLL_EVERY;
                    sim.restart(p, back);
                }
                other => {
                    sim.apply(&other);
                }
            }
        }
        if sim.next_event_time().is_some_and(|e| e <= t) {
            sim.step();
            truth(&mut sim);
        }
    }
    sim.run_until(until);
    let trace = sim.take_trace();
    let now = sim.now();
    let mut report = LabReport::new(ALGORITHM.name, opts);
    let unsynced: Vec<ProcId> = (0..n).filter(|&p| !sim.proc(p).synced).collect();
    report.checks.push(Check::new(
        "every clock is synchronised",
        unsynced.is_empty(),
        if unsynced.is_empty() {
            format!("{n} clocks: 1 at stratum 1, {s2} at stratum 2, {} at stratum 3", n - 1 - s2)
        } else {
            format!("unsynchronised: {unsynced:?}")
        },
    ));
    let drift_slack = 2 * CLOCKS.max_drift_ppm as i64 * 40_000 / 1_000_000 + 2;
    let mut worst: Option<String> = None;
    let mut worst_ratio = 0f64;
    let mut samples = 0;
    for p in 1..n {
        for &(d, theta, off) in &sim.proc(p).samples {
            samples += 1;
            let err = (theta - off).abs();
            worst_ratio = worst_ratio.max(err as f64 / (d as f64 / 2.0).max(1.0));
            if err > d / 2 + drift_slack && worst.is_none() {
                worst = Some(format!("P{p}: θ {theta}, true offset {off}, δ/2 {}", d / 2));
            }
        }
    }
    report.checks.push(Check::new(
        "the true offset lies in θ ± δ/2",
        worst.is_none(),
        worst.unwrap_or_else(|| format!("{samples} samples; largest |θ − offset| is {worst_ratio:.2}·δ/2")),
    ));
    // A client's final error against true time, within its path's Σ δ/2.
    let best = |p: ProcId| {
        sim.proc(p)
            .samples
            .iter()
            .map(|s| s.0)
            .min()
            .map_or(0, |d| d / 2 + drift_slack)
    };
    let bound = |p: ProcId| match stratum(p) {
        1 => 0,
        2 => best(p),
        _ => best(p) + best(sim.proc(p).server.unwrap_or(0)),
    };
    let drift_since = 2 * CLOCKS.max_drift_ppm as i64 * now as i64 / 1_000_000;
    let mut far = None;
    let mut max_err = 0i64;
    for p in (1..n).filter(|&p| sim.proc(p).synced) {
        let err = (sim.clock(p).local(now) as i64 + sim.proc(p).adj - now as i64).abs();
        max_err = max_err.max(err);
        if err > bound(p) + drift_since && far.is_none() {
            far = Some(format!("P{p}: {err}µs off true time, bound {}µs", bound(p) + drift_since));
        }
    }
    report.checks.push(Check::new(
        "each clock is within Σ δ/2 of true time along its path",
        far.is_none(),
        far.unwrap_or_else(|| format!("largest error {max_err}µs (before: skew up to {}µs)", CLOCKS.max_skew)),
    ));
    let s = sim.stats();
    let plain = opts.faults.is_empty();
    report.costs.push(Cost::new(
        "messages",
        s.sent as f64,
        "2 per poll, 8 polls per client: 16(N-1)",
        plain.then_some(16.0 * (n as f64 - 1.0)),
    ));
    report.costs.push(
        Cost::new(
            "largest |θ − true offset| in units of δ/2",
            worst_ratio,
            "≤ 1 (the bound), about 0.5 on symmetric random delays",
            None,
        )
        .at_most(1.0 + drift_slack as f64 / 250.0),
    );
    LabRun::new(report, trace)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_stay_within_half_the_delay() {
        for seed in 0..5 {
            for n in [2, 7, 12] {
                let r = run(&LabOptions::new(n, seed)).report;
                assert!(r.passed(), "{r:?}");
            }
        }
    }

    #[test]
    fn ignoring_the_way_back_is_caught() {
        let mut o = LabOptions::new(7, 1);
        o.variant = Some("one-way".into());
        let r = run(&o).report;
        assert!(!r.checks[1].held, "{r:?}");
    }
}
