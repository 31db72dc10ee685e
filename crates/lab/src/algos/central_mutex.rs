//! Mutual exclusion through a central coordinator: REQUEST, GRANT, RELEASE.

use std::collections::VecDeque;

use synod_simnet::{Ctx, Fault, NetConfig, ProcId};

use crate::algos::mutex_common::{
    all_done, build, outcome, rounds, run_with_faults, Demand, Protocol, Site,
};
use crate::registry::{Algorithm, FaultModel};
use crate::report::{Cost, LabOptions, LabReport, LabRun};

/// The registry entry.
pub const ALGORITHM: Algorithm = Algorithm {
    name: "central-mutex",
    family: "mutual exclusion",
    summary: "a coordinator grants the CS in FIFO order: 3 messages per entry",
    description: "Central coordinator mutual exclusion.\n\
Rules: P0 is the coordinator and never asks for the CS itself. A site sends\n\
REQUEST(seq) to P0; P0 answers GRANT(seq) when the CS is free, or queues the\n\
request (FIFO); the holder sends RELEASE(seq) on exit and P0 grants the next.\n\
Sequence numbers make duplicated and reordered messages harmless.\n\
Guarantee: never two sites in the CS (P0 grants one at a time); every request is\n\
served (the queue is FIFO and every holder releases). It tolerates duplication\n\
and reordering, not loss or crashes: one lost message blocks it for good, and the\n\
liveness check then fails (try --faults loss).\n\
Cost: 3 messages per CS entry (REQUEST, GRANT, RELEASE); synchronization delay 2T.",
    variants: &[(
        "double-grant",
        "planted bug: the coordinator grants a request even while the CS is held",
    )],
    default_nodes: 4,
    nodes: (2, 64),
    faults: FaultModel {
        tolerates: &[Fault::Duplicate, Fault::Reorder, Fault::Clog, Fault::Skew],
        outside: &[Fault::Loss, Fault::Partition, Fault::OneWay, Fault::Crash],
        refused: "every fault kind applies",
    },
    run,
};

/// Most requests the coordinator queues (one outstanding per site).
const MAX_QUEUE: usize = 64;

/// Coordinator messages.
#[derive(Clone, Debug)]
pub enum Msg {
    /// A site asks for the CS (its request number).
    Request(u32),
    /// The coordinator grants request `seq`.
    Grant(u32),
    /// The holder leaves the CS.
    Release(u32),
}

/// A site, or the coordinator (P0).
#[derive(Clone, Debug, Default)]
pub struct Central {
    seq: u32,
    waiting: bool,
    holder: Option<(ProcId, u32)>,
    queue: VecDeque<(ProcId, u32)>,
    served: Vec<u32>,
    buggy: bool,
}

impl Central {
    fn grant_next(&mut self, ctx: &mut Ctx<'_, Msg>) {
        if self.holder.is_none() {
            if let Some((p, s)) = self.queue.pop_front() {
                self.holder = Some((p, s));
                ctx.send(p, Msg::Grant(s));
            }
        }
    }
}

impl Protocol for Central {
    type Msg = Msg;

    fn start(&mut self, ctx: &mut Ctx<'_, Msg>) {
        self.served = vec![0; ctx.n()];
    }

    fn request(&mut self, ctx: &mut Ctx<'_, Msg>) -> bool {
        self.seq += 1;
        self.waiting = true;
        ctx.send(0, Msg::Request(self.seq));
        false
    }

    fn release(&mut self, ctx: &mut Ctx<'_, Msg>) {
        ctx.send(0, Msg::Release(self.seq));
    }

    fn message(&mut self, ctx: &mut Ctx<'_, Msg>, from: ProcId, msg: Msg) -> bool {
        match msg {
            Msg::Request(s) => {
                let known = self.holder == Some((from, s)) || self.queue.contains(&(from, s));
                if known || s <= self.served[from] || self.queue.len() >= MAX_QUEUE {
                    return false;
                }
                if self.buggy && self.holder.is_some() {
                    ctx.send(from, Msg::Grant(s));
                    self.served[from] = s;
                    return false;
                }
                self.queue.push_back((from, s));
                self.grant_next(ctx);
            }
            Msg::Release(s) => {
                self.served[from] = self.served[from].max(s);
                if self.holder == Some((from, s)) {
                    self.holder = None;
                    self.grant_next(ctx);
                }
            }
            Msg::Grant(s) => {
                if self.waiting && s == self.seq {
                    self.waiting = false;
                    return true;
                }
            }
        }
        false
    }

    fn label(msg: &Msg) -> String {
        match msg {
            Msg::Request(s) => format!("Request({s})"),
            Msg::Grant(s) => format!("Grant({s})"),
            Msg::Release(s) => format!("Release({s})"),
        }
    }

    fn bytes(_msg: &Msg) -> usize {
        5
    }
}

fn demand(r: u32) -> impl Fn(ProcId) -> Demand + Copy {
    move |p: ProcId| Demand {
        requests: if p == 0 { 0 } else { r },
        think: (1_000, 30_000),
        cs: 5_000,
    }
}

fn run(opts: &LabOptions) -> LabRun {
    let demand = demand(rounds(opts));
    let buggy = opts.is_variant("double-grant");
    let make = move |_| Central {
        buggy,
        ..Central::default()
    };
    let mut sim = build(opts, NetConfig::reliable(), demand, make);
    run_with_faults(&mut sim, opts, 3_000_000, 20_000, all_done, move |p, _| {
        Site::new(make(p), demand(p))
    });
    let trace = sim.take_trace();
    let o = outcome(&trace, opts.nodes);
    let mut report = LabReport::new(ALGORITHM.name, opts);
    report.checks.extend(o.checks(&trace));
    let s = sim.stats();
    let per = s.sent as f64 / o.entries.max(1) as f64;
    report.costs.push(Cost::new(
        "messages per CS entry",
        per,
        "3 (REQUEST + GRANT + RELEASE)",
        Some(3.0),
    ));
    report.costs.push(Cost::new(
        "CS entries",
        o.entries as f64,
        "(N-1) sites × 3 requests",
        Some(3.0 * (opts.nodes - 1) as f64),
    ));
    report.costs.push(Cost::new(
        "messages dropped by faults",
        s.dropped_total() as f64,
        "0 without faults",
        None,
    ));
    LabRun::new(report, trace)
}

#[cfg(test)]
mod tests {
    use super::*;
    use synod_simnet::Fault;

    #[test]
    fn safe_live_and_exactly_three_messages_per_entry() {
        for seed in 0..4 {
            let r = run(&LabOptions::new(4, seed)).report;
            assert!(r.passed(), "{r:?}");
            assert_eq!(r.costs[0].measured, 3.0, "{r:?}");
            assert_eq!(r.costs[1].measured, 9.0);
        }
    }

    #[test]
    fn duplication_and_reordering_are_tolerated() {
        for seed in 0..4 {
            let mut o = LabOptions::new(4, seed);
            o.faults = Fault::parse_list("duplicate,reorder").unwrap();
            let r = run(&o).report;
            assert!(r.passed(), "{r:?}");
        }
    }

    #[test]
    fn checkers_can_fail() {
        let unsafe_run = (0..6).any(|seed| {
            let mut o = LabOptions::new(5, seed);
            o.variant = Some("double-grant".into());
            !run(&o).report.checks[0].held
        });
        assert!(unsafe_run, "the double grant never overlapped two sites");
        let starved = (0..6).any(|seed| {
            let mut o = LabOptions::new(5, seed);
            o.faults = Fault::parse_list("loss").unwrap();
            !run(&o).report.checks[1].held
        });
        assert!(starved, "no lost message ever blocked the coordinator");
    }
}
