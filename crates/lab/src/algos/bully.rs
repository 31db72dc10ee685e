//! Garcia-Molina's bully election: the highest live id takes over, and a
//! process that hears of an election from below bullies its way in.

use synod_simnet::{ClockConfig, Ctx, Fault, NetConfig, ProcId, Process, Sim, Time, TimerId};

use crate::harness::{net_for, run_faulted};
use crate::registry::{Algorithm, FaultModel};
use crate::report::{Check, Cost, LabOptions, LabReport, LabRun};

/// The registry entry.
pub const ALGORITHM: Algorithm = Algorithm {
    name: "bully",
    family: "consensus and election",
    summary: "bully election: the highest live id wins; O(N²) messages when the lowest starts",
    description: "Bully algorithm (Garcia-Molina 1982). Ids are the process numbers; P(N-1)\n\
coordinates and crashes; then one process notices (P0 by default: the worst case).\n\
To hold an election a process sends ELECTION to every higher id. A process that\n\
receives ELECTION answers OK and holds its own election (once). A process that\n\
hears no OK within 2·max delay + slack (30 ms: the synchronous bound) is the\n\
coordinator and sends COORDINATOR to every lower id; one that got an OK but no\n\
COORDINATOR within 200 ms starts again. A process that hears COORDINATOR from a\n\
lower id, or restarts, holds an election.\n\
Guarantee (synchronous, reliable links; crashes detected by the timeout; a\n\
restarted process holds an election): every live process ends naming the\n\
highest live id. A partition leaves one coordinator per side, and nothing\n\
merges them once it heals.\n\
Cost, N processes with P(N-1) crashed: lowest initiator N(N-1)/2 ELECTION +\n\
(N-1)(N-2)/2 OK + (N-2) COORDINATOR; highest live initiator 1 ELECTION (to the\n\
dead one) + (N-2) COORDINATOR = N-1.",
    variants: &[
        (
            "best",
            "P(N-2), the highest live process, notices the crash: N-1 messages",
        ),
        (
            "silent-ok",
            "planted bug: a process answers OK but does not hold its own election",
        ),
    ],
    default_nodes: 6,
    nodes: (3, 64),
    faults: FaultModel {
        tolerates: &[Fault::Duplicate, Fault::Crash, Fault::Skew],
        outside: &[Fault::Loss, Fault::Partition],
        refused: "a late, held or one-way message breaks the synchronous bound the \
                  timeout relies on, as loss already shows",
    },
    run,
};

/// Bully messages.
#[derive(Clone, Debug)]
pub enum BullyMsg {
    /// An election from a lower id.
    Election,
    /// A higher id is alive and takes over.
    Ok,
    /// The sender is the coordinator.
    Coordinator,
}

/// One process.
#[derive(Clone, Debug)]
pub struct BullyProc {
    silent_ok: bool,
    electing: bool,
    timer: Option<TimerId>,
    /// Whom it takes for the coordinator.
    pub coordinator: Option<ProcId>,
    /// Elections it held.
    pub elections: u32,
}

const NO_OK: u64 = 1;
const NO_COORDINATOR: u64 = 2;
const ANSWER_WAIT: Time = 30_000;
const COORDINATOR_WAIT: Time = 200_000;

impl BullyProc {
    fn new(silent_ok: bool, coordinator: Option<ProcId>) -> Self {
        BullyProc {
            silent_ok,
            electing: false,
            timer: None,
            coordinator,
            elections: 0,
        }
    }

    fn arm(&mut self, ctx: &mut Ctx<'_, BullyMsg>, after: Time, tag: u64) {
        if let Some(t) = self.timer.take() {
            ctx.cancel_timer(t);
        }
        self.timer = Some(ctx.set_timer(after, tag));
    }

    /// Holds an election.
    pub fn elect(&mut self, ctx: &mut Ctx<'_, BullyMsg>) {
        self.electing = true;
        self.elections += 1;
        ctx.mark("election");
        for q in ctx.id() + 1..ctx.n() {
            ctx.send(q, BullyMsg::Election);
        }
        self.arm(ctx, ANSWER_WAIT, NO_OK);
    }

    fn take_over(&mut self, ctx: &mut Ctx<'_, BullyMsg>) {
        self.electing = false;
        self.coordinator = Some(ctx.id());
        ctx.mark("coordinator");
        for q in 0..ctx.id() {
            ctx.send(q, BullyMsg::Coordinator);
        }
    }
}

impl Process for BullyProc {
    type Msg = BullyMsg;

    fn on_start(&mut self, ctx: &mut Ctx<'_, BullyMsg>) {
        if self.coordinator.is_none() {
            // A restart: bully back in.
            self.elect(ctx);
        }
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_, BullyMsg>, tag: u64) {
        self.timer = None;
        match tag {
            NO_OK if self.electing => self.take_over(ctx),
            NO_COORDINATOR if self.electing => self.elect(ctx),
            _ => {}
        }
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, BullyMsg>, from: ProcId, msg: BullyMsg) {
        match msg {
            BullyMsg::Election => {
                ctx.send(from, BullyMsg::Ok);
                if !self.electing && !self.silent_ok {
                    self.elect(ctx);
                }
            }
            BullyMsg::Ok => {
                if self.electing {
                    self.arm(ctx, COORDINATOR_WAIT, NO_COORDINATOR);
                }
            }
            BullyMsg::Coordinator => {
                self.coordinator = Some(from);
                self.electing = false;
                if let Some(t) = self.timer.take() {
                    ctx.cancel_timer(t);
                }
                if from < ctx.id() {
                    self.elect(ctx);
                }
            }
        }
    }

    fn msg_bytes(_msg: &BullyMsg) -> usize {
        8
    }

    fn msg_label(msg: &BullyMsg) -> String {
        format!("{msg:?}")
    }
}

/// The messages of one election after P(N-1) crashed, started by `initiator`
/// with every message delivered and every live process electing once.
pub fn messages(n: usize, initiator: ProcId) -> u64 {
    let live = n as u64 - 1;
    let i = initiator as u64;
    // Processes i..live-1 each hold one election: ELECTION to every higher id.
    let elections: u64 = (i..live).map(|j| n as u64 - 1 - j).sum();
    // Every ELECTION to a live process gets an OK: pairs j < k < live, j ≥ i.
    let oks: u64 = (i..live).map(|j| live - 1 - j).sum();
    elections + oks + (live - 1)
}

fn run(opts: &LabOptions) -> LabRun {
    let n = opts.nodes;
    let silent = opts.is_variant("silent-ok");
    let initiator = if opts.is_variant("best") { n - 2 } else { 0 };
    let until: Time = 1_500_000;
    let (crash_at, notice_at) = (until / 10, until / 5);
    let old = n - 1;
    let mut sim = Sim::new(
        opts.seed,
        (0..n).map(|_| BullyProc::new(silent, Some(old))).collect(),
        net_for(&opts.faults, NetConfig::reliable()),
        ClockConfig::perfect(),
    );
    sim.run_until(crash_at);
    sim.crash(old);
    sim.run_until(notice_at);
    if sim.is_up(initiator) {
        sim.with_ctx(initiator, |p, ctx| {
            ctx.mark("coordinator silent");
            p.elect(ctx);
        });
    }
    // Restarted processes (the crash fault) come back without a coordinator.
    run_faulted(&mut sim, opts, until, |_| BullyProc::new(silent, None));
    let trace = sim.take_trace();
    let live: Vec<ProcId> = (0..n).filter(|&p| sim.is_up(p)).collect();
    let highest = live.iter().copied().max();
    let wrong: Vec<String> = live
        .iter()
        .filter(|&&p| sim.proc(p).coordinator != highest)
        .map(|&p| format!("P{p} names {:?}", sim.proc(p).coordinator))
        .collect();
    let mut report = LabReport::new(ALGORITHM.name, opts);
    report.checks.push(Check::new(
        "every live process names the highest live id",
        wrong.is_empty(),
        if wrong.is_empty() {
            format!("{} live processes name P{}", live.len(), highest.unwrap_or(0))
        } else {
            wrong.join(", ")
        },
    ));
    let s = sim.stats();
    let plain = opts.faults.is_empty() && !silent;
    let formula = if initiator == 0 {
        "N(N-1)/2 ELECTION + (N-1)(N-2)/2 OK + (N-2) COORDINATOR (lowest initiator)"
    } else {
        "1 ELECTION + (N-2) COORDINATOR = N-1 (highest live initiator)"
    };
    report.costs.push(Cost::new(
        "messages",
        s.sent as f64,
        formula,
        plain.then_some(messages(n, initiator) as f64),
    ));
    let nf = n as f64;
    let cases = Cost::new(
        "messages against the cases",
        s.sent as f64,
        "between N-1 (best) and N(N-1)/2 + (N-1)(N-2)/2 + N-2 (worst): O(N²)",
        None,
    );
    report.costs.push(if plain {
        cases
            .at_least(nf - 1.0)
            .at_most(messages(n, 0) as f64)
    } else {
        cases
    });
    report.costs.push(Cost::new(
        "elections held",
        sim.procs().iter().map(|p| p.elections).sum::<u32>() as f64,
        "N-1-i for initiator i (each live process from i up holds one)",
        plain.then_some((n - 1 - initiator) as f64),
    ));
    LabRun::new(report, trace)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::report::opts;

    #[test]
    fn the_highest_live_process_wins_with_the_textbook_counts() {
        for seed in 0..5 {
            for n in [3, 6, 10] {
                let worst = run(&opts(n, seed, None)).report;
                assert!(worst.passed(), "{worst:?}");
                let nn = n as f64;
                let formula = nn * (nn - 1.0) / 2.0 + (nn - 1.0) * (nn - 2.0) / 2.0 + nn - 2.0;
                assert_eq!(worst.costs[0].measured, formula, "{worst:?}");
                let best = run(&opts(n, seed, Some("best"))).report;
                assert!(best.passed(), "{best:?}");
                assert_eq!(best.costs[0].measured, nn - 1.0, "{best:?}");
            }
        }
    }

    #[test]
    fn an_ok_without_taking_over_is_caught() {
        let r = run(&opts(6, 1, Some("silent-ok"))).report;
        assert!(!r.checks[0].held, "{r:?}");
    }

    #[test]
    fn a_partition_leaves_two_coordinators_on_some_seed() {
        let broke = (1..=10).any(|seed| {
            let mut o = opts(6, seed, None);
            o.faults = [Fault::Partition].into_iter().collect();
            !run(&o).report.passed()
        });
        assert!(broke);
    }
}
