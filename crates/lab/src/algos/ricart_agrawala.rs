//! Ricart–Agrawala mutual exclusion: timestamped requests, deferred replies.

use std::collections::BTreeSet;

use synod_simnet::{Ctx, NetConfig, ProcId};

use crate::algos::mutex_common::{
    all_done, build, outcome, rounds, run_with_faults, Demand, Protocol, Site, Stamp,
};
use crate::registry::{Algorithm, FaultModel};
use synod_simnet::Fault;
use crate::report::{Cost, LabOptions, LabReport, LabRun};

/// The registry entry.
pub const ALGORITHM: Algorithm = Algorithm {
    name: "ricart-agrawala",
    family: "mutual exclusion",
    summary: "broadcast REQUEST, deferred REPLY: 2(N-1) messages per entry",
    description: "Ricart–Agrawala (1981).\n\
Rules: a site asking for the CS takes a Lamport timestamp ts and sends REQUEST(ts, i)\n\
to the N-1 others. A site receiving REQUEST(ts, j) replies at once unless it is in\n\
the CS, or it is asking too with a smaller (ts, id) pair; then it defers the reply\n\
until it leaves the CS. A site enters when all N-1 replies are in. No RELEASE: the\n\
deferred replies are the release. Each REPLY names the request it answers, so a\n\
duplicated or late REPLY never counts toward a later request.\n\
Guarantee: never two in the CS (of two concurrent requests the one with the larger\n\
(ts, id) replies to the other only after leaving); every request is served\n\
(requests are served in (ts, id) order). Assumes reliable channels: there are no\n\
timeouts, so one lost REPLY starves its requester forever (variant lost-reply).\n\
Cost: exactly 2(N-1) messages per CS entry (N-1 REQUEST + N-1 REPLY); sync delay T.",
    variants: &[(
        "lost-reply",
        "one REPLY (the first P1 sends) is lost; no timeouts, so its requester starves",
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

/// Ricart–Agrawala messages.
#[derive(Clone, Debug)]
pub enum Msg {
    /// A timestamped request.
    Request(u64),
    /// Permission for the receiver's request.
    Reply(u64),
}

/// One site's protocol state.
#[derive(Clone, Debug, Default)]
pub struct Ra {
    clock: u64,
    mine: Option<Stamp>,
    in_cs: bool,
    replies: BTreeSet<ProcId>,
    deferred: BTreeSet<(ProcId, u64)>,
    /// Variant lost-reply: this site loses its next reply.
    lose_next: bool,
}

impl Ra {
    /// Answers `to`'s request stamped `ts`; the reply names that stamp, so a
    /// late or duplicated reply cannot count toward a later request.
    fn reply(&mut self, ctx: &mut Ctx<'_, Msg>, to: ProcId, ts: u64) {
        if self.lose_next {
            self.lose_next = false;
            ctx.mark("REPLY lost");
            return;
        }
        ctx.send(to, Msg::Reply(ts));
    }
}

impl Protocol for Ra {
    type Msg = Msg;

    fn request(&mut self, ctx: &mut Ctx<'_, Msg>) -> bool {
        self.clock += 1;
        let me = ctx.id();
        self.mine = Some((self.clock, me));
        self.replies.clear();
        ctx.stamp(&format!("{}", self.clock));
        for p in (0..ctx.n()).filter(|&p| p != me) {
            ctx.send(p, Msg::Request(self.clock));
        }
        if ctx.n() == 1 {
            self.in_cs = true;
            return true;
        }
        false
    }

    fn release(&mut self, ctx: &mut Ctx<'_, Msg>) {
        self.in_cs = false;
        self.mine = None;
        for (p, ts) in std::mem::take(&mut self.deferred) {
            self.reply(ctx, p, ts);
        }
    }

    fn message(&mut self, ctx: &mut Ctx<'_, Msg>, from: ProcId, msg: Msg) -> bool {
        match msg {
            Msg::Request(ts) => {
                self.clock = self.clock.max(ts) + 1;
                let defer = self.in_cs || self.mine.is_some_and(|m| m < (ts, from));
                if defer {
                    self.deferred.insert((from, ts));
                } else {
                    self.reply(ctx, from, ts);
                }
            }
            Msg::Reply(ts) => {
                if self.mine.is_some_and(|m| m.0 == ts) && !self.in_cs {
                    self.replies.insert(from);
                    if self.replies.len() == ctx.n() - 1 {
                        self.in_cs = true;
                        return true;
                    }
                }
            }
        }
        false
    }

    fn label(msg: &Msg) -> String {
        match msg {
            Msg::Request(ts) => format!("Request({ts})"),
            Msg::Reply(_) => "Reply".into(),
        }
    }

    fn bytes(msg: &Msg) -> usize {
        match msg {
            Msg::Request(_) => 9,
            Msg::Reply(_) => 9,
        }
    }
}

fn demand(r: u32) -> impl Fn(ProcId) -> Demand + Copy {
    move |_p: ProcId| Demand {
        requests: r,
        think: (1_000, 40_000),
        cs: 5_000,
    }
}

fn run(opts: &LabOptions) -> LabRun {
    let demand = demand(rounds(opts));
    let lose = opts.is_variant("lost-reply");
    let make = move |p: ProcId| Ra {
        lose_next: lose && p == 1,
        ..Ra::default()
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
    let n1 = (opts.nodes - 1) as f64;
    let entries = o.entries.max(1) as f64;
    report.costs.push(Cost::new(
        "messages per CS entry",
        s.sent as f64 / entries,
        "2(N-1)",
        Some(2.0 * n1),
    ));
    report.costs.push(Cost::new(
        "REQUEST per entry",
        s.sent_of("Request") as f64 / entries,
        "N-1",
        Some(n1),
    ));
    report.costs.push(Cost::new(
        "REPLY per entry",
        s.sent_of("Reply") as f64 / entries,
        "N-1",
        Some(n1),
    ));
    LabRun::new(report, trace)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_live_and_exactly_two_n_minus_one() {
        for (n, seed) in [(2, 0), (3, 1), (4, 2), (5, 3), (5, 4)] {
            let r = run(&LabOptions::new(n, seed)).report;
            assert!(r.passed(), "{r:?}");
            assert_eq!(r.costs[0].measured, 2.0 * (n - 1) as f64, "{r:?}");
        }
    }

    #[test]
    fn a_lost_reply_starves_and_the_checker_says_so() {
        let mut o = LabOptions::new(4, 7);
        o.variant = Some("lost-reply".into());
        let r = run(&o).report;
        assert!(r.checks[0].held, "{r:?}");
        assert!(!r.checks[1].held, "{r:?}");
    }
}
