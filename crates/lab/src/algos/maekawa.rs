//! Maekawa's quorum mutual exclusion on grid quorums, with the FAILED /
//! INQUIRE / YIELD deadlock resolution.

use std::collections::{BTreeSet, VecDeque};

use synod_simnet::{Ctx, NetConfig, ProcId};

use crate::algos::mutex_common::{
    all_done, build, outcome, rounds, run_with_faults, Demand, Protocol, Site, Stamp,
};
use crate::registry::{Algorithm, FaultModel};
use synod_simnet::Fault;
use crate::report::{Check, Cost, LabOptions, LabReport, LabRun};

/// The registry entry.
pub const ALGORITHM: Algorithm = Algorithm {
    name: "maekawa",
    family: "mutual exclusion",
    summary: "grid quorums (|Q| = 2√N-1) vote for one request at a time: 3(K-1)..5(K-1) messages per entry",
    description: "Maekawa's quorum algorithm (1985), on grid quorums.\n\
Quorums: sites sit on a ⌈√N⌉-wide grid; Q(i) is i's row plus i's column, so any two\n\
quorums meet and |Q| = K ≈ 2√N-1 (Maekawa's projective planes reach K ≈ √N).\n\
Rules: each site is a voter that locks itself for one request at a time. To ask, a site\n\
sends REQUEST(ts, i) to Q(i) and enters once every member answered LOCKED. A voter\n\
already locked queues the request and, if it is outranked (by the lock or a queued\n\
request, ordered by (ts, id)), answers FAILED; if it outranks them all, the voter sends\n\
INQUIRE to the site holding its lock. A site that got an INQUIRE and knows it cannot win\n\
(it got a FAILED) answers YIELD; the voter then locks for the best queued request. On\n\
exit a site sends RELEASE to Q(i) and each voter locks for its next request.\n\
Guarantee: never two in the CS (two quorums share a voter, which votes once); no\n\
deadlock thanks to INQUIRE/YIELD. Variant no-inquire removes them: circular waits\n\
between voters deadlock the sites, and the liveness check catches it.\n\
Cost: 3(K-1) messages per entry without contention (REQUEST, LOCKED, RELEASE), up to\n\
5(K-1) with contention (plus FAILED or INQUIRE and YIELD) - the textbook's 3√N..5√N\n\
for K = √N. Synchronization delay 2T.",
    variants: &[("no-inquire", "no INQUIRE/YIELD: voters never take a lock back, so circular waits deadlock")],
    default_nodes: 9,
    nodes: (2, 64),
    faults: FaultModel {
        tolerates: &[Fault::Duplicate, Fault::Clog, Fault::Skew],
        outside: &[Fault::Loss, Fault::Reorder, Fault::Partition, Fault::OneWay, Fault::Crash],
        refused: "every fault kind applies",
    },
    run,
};

/// Maekawa messages; each names the request it is about.
#[derive(Clone, Debug)]
pub enum Msg {
    /// A site asks the voter for its vote.
    Request(Stamp),
    /// The voter votes for this request.
    Locked(Stamp),
    /// The voter is taken by a better request.
    Failed(Stamp),
    /// The voter asks for its vote back.
    Inquire(Stamp),
    /// The site gives the vote back.
    Yield(Stamp),
    /// The site left the CS.
    Release(Stamp),
}

/// The grid quorum of `i` among `n` sites: its row and its column.
pub fn quorum(i: ProcId, n: usize) -> BTreeSet<ProcId> {
    let k = (1..=n).find(|k| k * k >= n).unwrap_or(1);
    (0..n)
        .filter(|j| j / k == i / k || j % k == i % k)
        .collect()
}

/// One site: a requester and a voter.
#[derive(Clone, Debug, Default)]
pub struct Mk {
    quorum: BTreeSet<ProcId>,
    clock: u64,
    no_inquire: bool,
    // Requester.
    mine: Option<Stamp>,
    in_cs: bool,
    locked: BTreeSet<ProcId>,
    failed: BTreeSet<ProcId>,
    inquiries: BTreeSet<ProcId>,
    // Voter.
    lock: Option<Stamp>,
    queue: BTreeSet<Stamp>,
    inquired: bool,
    failed_sent: BTreeSet<Stamp>,
    // Messages to itself, handled without the network.
    inbox: VecDeque<(ProcId, Msg)>,
    granted: bool,
}

impl Mk {
    fn new(me: ProcId, n: usize, no_inquire: bool) -> Self {
        Mk {
            quorum: quorum(me, n),
            no_inquire,
            ..Mk::default()
        }
    }

    fn send(&mut self, ctx: &mut Ctx<'_, Msg>, to: ProcId, msg: Msg) {
        if to == ctx.id() {
            assert!(self.inbox.len() < 64, "runaway self-messages");
            self.inbox.push_back((to, msg));
        } else {
            ctx.send(to, msg);
        }
    }

    fn give_lock(&mut self, ctx: &mut Ctx<'_, Msg>, r: Stamp) {
        self.lock = Some(r);
        self.inquired = false;
        self.failed_sent.remove(&r);
        self.send(ctx, r.1, Msg::Locked(r));
    }

    fn fail(&mut self, ctx: &mut Ctx<'_, Msg>, r: Stamp) {
        if self.failed_sent.insert(r) {
            self.send(ctx, r.1, Msg::Failed(r));
        }
    }

    fn yield_to(&mut self, ctx: &mut Ctx<'_, Msg>, v: ProcId) {
        let mine = self.mine.expect("yield without a request");
        if self.locked.remove(&v) {
            self.failed.insert(v);
            self.send(ctx, v, Msg::Yield(mine));
        }
    }

    fn handle(&mut self, ctx: &mut Ctx<'_, Msg>, from: ProcId, msg: Msg) {
        match msg {
            Msg::Request(r) => {
                self.clock = self.clock.max(r.0) + 1;
                let Some(lock) = self.lock else {
                    return self.give_lock(ctx, r);
                };
                if self.queue.len() >= 64 {
                    return;
                }
                let outranked = lock < r || self.queue.first().is_some_and(|q| *q < r);
                self.queue.insert(r);
                if outranked {
                    self.fail(ctx, r);
                } else {
                    let others: Vec<Stamp> =
                        self.queue.iter().filter(|q| **q != r).copied().collect();
                    for q in others {
                        self.fail(ctx, q);
                    }
                    if !self.inquired && !self.no_inquire {
                        self.inquired = true;
                        self.send(ctx, lock.1, Msg::Inquire(lock));
                    }
                }
            }
            Msg::Yield(r) => {
                if self.lock == Some(r) {
                    self.queue.insert(r);
                    self.failed_sent.insert(r);
                    let best = self
                        .queue
                        .pop_first()
                        .expect("the yielded request is queued");
                    self.give_lock(ctx, best);
                }
            }
            Msg::Release(r) => {
                if self.lock == Some(r) {
                    self.lock = None;
                    self.inquired = false;
                    if let Some(next) = self.queue.pop_first() {
                        self.give_lock(ctx, next);
                    }
                } else {
                    self.queue.remove(&r);
                }
            }
            Msg::Locked(r) => {
                if self.mine == Some(r) && !self.in_cs {
                    self.locked.insert(from);
                    self.failed.remove(&from);
                    if self.locked == self.quorum {
                        self.in_cs = true;
                        self.inquiries.clear();
                        self.granted = true;
                    }
                }
            }
            Msg::Failed(r) => {
                if self.mine == Some(r) && !self.in_cs && !self.no_inquire {
                    self.failed.insert(from);
                    for v in std::mem::take(&mut self.inquiries) {
                        self.yield_to(ctx, v);
                    }
                }
            }
            Msg::Inquire(r) => {
                if self.mine == Some(r) && !self.in_cs && self.locked.contains(&from) {
                    if self.failed.is_empty() {
                        self.inquiries.insert(from);
                    } else {
                        self.yield_to(ctx, from);
                    }
                }
            }
        }
    }

    fn drain(&mut self, ctx: &mut Ctx<'_, Msg>) -> bool {
        while let Some((from, msg)) = self.inbox.pop_front() {
            self.handle(ctx, from, msg);
        }
        std::mem::take(&mut self.granted)
    }
}

impl Protocol for Mk {
    type Msg = Msg;

    fn request(&mut self, ctx: &mut Ctx<'_, Msg>) -> bool {
        self.clock += 1;
        let mine = (self.clock, ctx.id());
        self.mine = Some(mine);
        self.locked.clear();
        self.failed.clear();
        self.inquiries.clear();
        ctx.stamp(&format!("{}", self.clock));
        for v in self.quorum.clone() {
            self.send(ctx, v, Msg::Request(mine));
        }
        self.drain(ctx)
    }

    fn release(&mut self, ctx: &mut Ctx<'_, Msg>) {
        let mine = self.mine.take().expect("release without a request");
        self.in_cs = false;
        self.locked.clear();
        for v in self.quorum.clone() {
            self.send(ctx, v, Msg::Release(mine));
        }
        let granted = self.drain(ctx);
        assert!(!granted, "a release cannot grant this site");
    }

    fn message(&mut self, ctx: &mut Ctx<'_, Msg>, from: ProcId, msg: Msg) -> bool {
        self.handle(ctx, from, msg);
        self.drain(ctx)
    }

    fn label(msg: &Msg) -> String {
        let (name, (ts, id)) = match msg {
            Msg::Request(s) => ("Request", s),
            Msg::Locked(s) => ("Locked", s),
            Msg::Failed(s) => ("Failed", s),
            Msg::Inquire(s) => ("Inquire", s),
            Msg::Yield(s) => ("Yield", s),
            Msg::Release(s) => ("Release", s),
        };
        format!("{name}({ts},{id})")
    }

    fn bytes(_msg: &Msg) -> usize {
        13
    }
}

fn demand(r: u32) -> impl Fn(ProcId) -> Demand + Copy {
    move |_p: ProcId| Demand {
        requests: r,
        think: (500, 6_000),
        cs: 3_000,
    }
}

fn run(opts: &LabOptions) -> LabRun {
    let demand = demand(rounds(opts));
    let n = opts.nodes;
    let no_inquire = opts.is_variant("no-inquire");
    let make = move |p: ProcId| Mk::new(p, n, no_inquire);
    let mut sim = build(opts, NetConfig::reliable(), demand, make);
    run_with_faults(&mut sim, opts, 3_000_000, 20_000, all_done, move |p, _| {
        Site::new(make(p), demand(p))
    });
    let trace = sim.take_trace();
    let o = outcome(&trace, n);
    let mut report = LabReport::new(ALGORITHM.name, opts);
    report.checks.extend(o.checks(&trace));
    let pairs_meet = (0..n).all(|i| (0..n).all(|j| !quorum(i, n).is_disjoint(&quorum(j, n))));
    report.checks.push(Check::new(
        "every two quorums intersect",
        pairs_meet,
        format!("{n} grid quorums"),
    ));
    let s = sim.stats();
    let k = (0..n).map(|i| quorum(i, n).len()).sum::<usize>() as f64 / n as f64;
    let entries = o.entries.max(1) as f64;
    report.costs.push(Cost::new(
        "messages per CS entry",
        s.sent as f64 / entries,
        &format!(
            "between 3(K-1) = {:.1} and 5(K-1) = {:.1}, K = mean |Q| = {k:.2} (≈ 2√N-1)",
            3.0 * (k - 1.0),
            5.0 * (k - 1.0)
        ),
        None,
    )
    .at_least(3.0 * (k - 1.0))
    .at_most(5.0 * (k - 1.0)));
    report.costs.push(
        Cost::new("quorum size K", k, "≈ 2√N-1 (exact on a full grid)", None)
            .near(2.0 * (n as f64).sqrt() - 1.0),
    );
    for kind in ["Failed", "Inquire", "Yield"] {
        report.costs.push(Cost::new(
            &format!("{} per entry", kind.to_uppercase()),
            s.sent_of(kind) as f64 / entries,
            "0 without contention",
            None,
        ));
    }
    LabRun::new(report, trace)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_quorums_intersect_and_have_the_textbook_size() {
        assert_eq!(quorum(4, 9), [1, 3, 4, 5, 7].into_iter().collect());
        for n in 1..30 {
            for i in 0..n {
                assert!(quorum(i, n).contains(&i));
                for j in 0..n {
                    assert!(!quorum(i, n).is_disjoint(&quorum(j, n)), "{i} {j} of {n}");
                }
            }
        }
    }

    #[test]
    fn three_k_minus_one_messages_without_contention() {
        // One request at a time: 2 sites far apart in time never contend.
        let mut o = LabOptions::new(9, 1);
        o.nodes = 9;
        let make = |p: ProcId| Mk::new(p, 9, false);
        let lone = |p: ProcId| Demand {
            requests: if p == 4 { 2 } else { 0 },
            think: (1_000, 2_000),
            cs: 1_000,
        };
        let mut sim = build(&o, NetConfig::reliable(), lone, make);
        sim.run_until(1_000_000);
        let entries = outcome(sim.trace(), 9).entries;
        assert_eq!(entries, 2);
        assert_eq!(sim.stats().sent, 2 * 3 * (5 - 1));
    }

    #[test]
    fn safe_live_and_within_bounds_under_contention() {
        for (n, seed) in [(4, 0), (9, 1), (9, 2), (7, 3), (12, 4)] {
            let r = run(&LabOptions::new(n, seed)).report;
            assert!(r.passed(), "{r:?}");
            let k = r.costs[1].measured;
            assert!(r.costs[0].measured >= 3.0 * (k - 1.0), "{r:?}");
        }
    }

    #[test]
    fn without_inquire_a_deadlock_is_caught_and_safety_still_holds() {
        let mut deadlocked = 0;
        for seed in 0..8 {
            let mut o = LabOptions::new(9, seed);
            o.variant = Some("no-inquire".into());
            let r = run(&o).report;
            assert!(r.checks[0].held, "{r:?}");
            deadlocked += usize::from(!r.checks[1].held);
        }
        assert!(deadlocked > 0, "no-inquire never deadlocked in 8 seeds");
    }
}
