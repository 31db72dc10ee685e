//! Lamport's mutual exclusion: replicated request queues ordered by (timestamp, id).

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
    name: "lamport-mutex",
    family: "mutual exclusion",
    summary: "request queues ordered by Lamport timestamps: 3(N-1) messages per entry",
    description: "Lamport's mutual exclusion (1978).\n\
Rules: every site keeps a queue of requests ordered by (ts, id). To ask, a site puts\n\
REQUEST(ts, i) in its own queue and sends it to all others; a receiver queues it and\n\
sends a timestamped REPLY. A site enters when (L1) its request heads its queue and\n\
(L2) it has received a message with a timestamp larger than its request's from every\n\
other site. On exit it removes its request and sends RELEASE to all; receivers remove it.\n\
Guarantee: never two in the CS; requests served in (ts, id) order. It needs FIFO\n\
channels: L2 assumes no earlier message from j is still in transit. Variant non-fifo\n\
lets a REPLY overtake the REQUEST sent before it, and two sites enter together.\n\
Cost: exactly 3(N-1) messages per CS entry (REQUEST, REPLY, RELEASE to/from each\n\
other site); synchronization delay T.",
    variants: &[(
        "non-fifo",
        "channels reorder messages (outside the model): a REPLY can overtake a REQUEST",
    )],
    default_nodes: 4,
    nodes: (2, 64),
    faults: FaultModel {
        tolerates: &[Fault::Duplicate, Fault::Clog, Fault::Skew],
        outside: &[Fault::Loss, Fault::Reorder, Fault::Partition, Fault::OneWay, Fault::Crash],
        refused: "every fault kind applies",
    },
    run,
};

/// Lamport mutex messages; each carries the sender's clock.
#[derive(Clone, Debug)]
pub enum Msg {
    /// A request with its timestamp.
    Request(u64),
    /// Acknowledgement of a request.
    Reply(u64),
    /// The sender left the CS.
    Release(u64),
}

/// One site's protocol state.
#[derive(Clone, Debug, Default)]
pub struct Lm {
    clock: u64,
    queue: BTreeSet<Stamp>,
    /// Largest timestamp received from each site.
    latest: Vec<u64>,
    mine: Option<Stamp>,
    in_cs: bool,
}

impl Lm {
    fn may_enter(&mut self, me: ProcId) -> bool {
        let Some(mine) = self.mine else { return false };
        let head = self.queue.first() == Some(&mine);
        let heard = self
            .latest
            .iter()
            .enumerate()
            .all(|(j, &t)| j == me || t > mine.0);
        if head && heard && !self.in_cs {
            self.in_cs = true;
            return true;
        }
        false
    }
}

impl Protocol for Lm {
    type Msg = Msg;

    fn start(&mut self, ctx: &mut Ctx<'_, Msg>) {
        self.latest = vec![0; ctx.n()];
    }

    fn request(&mut self, ctx: &mut Ctx<'_, Msg>) -> bool {
        self.clock += 1;
        let me = ctx.id();
        let mine = (self.clock, me);
        self.mine = Some(mine);
        self.queue.insert(mine);
        ctx.stamp(&format!("{}", self.clock));
        for p in (0..ctx.n()).filter(|&p| p != me) {
            ctx.send(p, Msg::Request(self.clock));
        }
        self.may_enter(me)
    }

    fn release(&mut self, ctx: &mut Ctx<'_, Msg>) {
        let mine = self.mine.take().expect("releasing without a request");
        self.queue.remove(&mine);
        self.in_cs = false;
        self.clock += 1;
        let me = ctx.id();
        for p in (0..ctx.n()).filter(|&p| p != me) {
            ctx.send(p, Msg::Release(self.clock));
        }
    }

    fn message(&mut self, ctx: &mut Ctx<'_, Msg>, from: ProcId, msg: Msg) -> bool {
        let ts = match msg {
            Msg::Request(t) | Msg::Reply(t) | Msg::Release(t) => t,
        };
        self.clock = self.clock.max(ts) + 1;
        self.latest[from] = self.latest[from].max(ts);
        match msg {
            Msg::Request(t) => {
                self.queue.insert((t, from));
                ctx.send(from, Msg::Reply(self.clock));
            }
            Msg::Release(_) => {
                // A site has at most one request queued: remove it.
                let theirs: Vec<Stamp> =
                    self.queue.iter().filter(|s| s.1 == from).copied().collect();
                for s in theirs {
                    self.queue.remove(&s);
                }
            }
            Msg::Reply(_) => {}
        }
        self.may_enter(ctx.id())
    }

    fn label(msg: &Msg) -> String {
        match msg {
            Msg::Request(t) => format!("Request({t})"),
            Msg::Reply(t) => format!("Reply({t})"),
            Msg::Release(t) => format!("Release({t})"),
        }
    }

    fn bytes(_msg: &Msg) -> usize {
        9
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
    let mut base = NetConfig::reliable();
    if opts.is_variant("non-fifo") {
        base.fifo = false;
        base.tail_prob = 0.3;
        base.tail_factor = 6;
    }
    let (fast, normal) = (opts.is_variant("non-fifo"), demand(rounds(opts)));
    let demand_now = move |p: ProcId| {
        if fast {
            Demand {
                requests: 4,
                think: (500, 8_000),
                cs: 2_000,
            }
        } else {
            normal(p)
        }
    };
    let mut sim = build(opts, base, demand_now, |_| Lm::default());
    run_with_faults(&mut sim, opts, 3_000_000, 20_000, all_done, move |p, _| {
        Site::new(Lm::default(), demand_now(p))
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
        "3(N-1)",
        Some(3.0 * n1),
    ));
    for kind in ["Request", "Reply", "Release"] {
        report.costs.push(Cost::new(
            &format!("{} per entry", kind.to_uppercase()),
            s.sent_of(kind) as f64 / entries,
            "N-1",
            Some(n1),
        ));
    }
    LabRun::new(report, trace)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_live_and_exactly_three_n_minus_one() {
        for (n, seed) in [(2, 0), (3, 1), (4, 2), (5, 3), (5, 4)] {
            let r = run(&LabOptions::new(n, seed)).report;
            assert!(r.passed(), "{r:?}");
            assert_eq!(r.costs[0].measured, 3.0 * (n - 1) as f64, "{r:?}");
        }
    }

    #[test]
    fn non_fifo_channels_break_it() {
        let broken = (0..10).any(|seed| {
            let mut o = LabOptions::new(4, seed);
            o.variant = Some("non-fifo".into());
            !run(&o).report.passed()
        });
        assert!(
            broken,
            "reordering never broke Lamport's algorithm in 10 seeds"
        );
    }
}
