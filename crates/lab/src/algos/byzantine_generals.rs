//! Byzantine generals with oral messages: Lamport, Shostak and Pease's
//! OM(m), which reaches agreement despite m lying traitors when n ≥ 3m+1,
//! and cannot when n = 3m.

use std::collections::BTreeMap;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use synod_simnet::{ClockConfig, Ctx, Fault, Pcg64Mcg, ProcId, Process, Sim, Time};

use crate::algos::gossip_common::{round_net, HOP};
use crate::harness::run_faulted;
use crate::registry::{Algorithm, FaultModel};
use crate::report::{Check, Cost, LabOptions, LabReport, LabRun};

/// The registry entry.
pub const ALGORITHM: Algorithm = Algorithm {
    name: "byzantine-generals",
    family: "byzantine agreement",
    summary: "OM(m): oral messages agree despite m traitors iff n ≥ 3m+1",
    description: "Byzantine generals, oral messages OM(m) (Lamport, Shostak & Pease 1982).\n\
P0 is the commander; m traitors (1 by default) lie. Synchronous rounds: in round 0\n\
the commander sends its order to every lieutenant; in round k (1..=m) a lieutenant\n\
relays each value it received along a path of k generals to every general not on\n\
that path. A traitor relays the opposite order (a traitor commander sends attack\n\
to odd and retreat to even lieutenants). After m+1 rounds lieutenant i decides\n\
bottom-up on the tree of paths: a path of m+1 generals is worth what arrived\n\
along it; a shorter one is the majority of what arrived along it and of the worth\n\
of each one-general extension (a tie or a missing message counts as RETREAT).\n\
Guarantee when n ≥ 3m+1: IC1, every loyal lieutenant decides the same order;\n\
IC2, if the commander is loyal, they decide its order. With n = 3m a single\n\
traitor lieutenant makes a loyal one decide RETREAT on ATTACK (IC2 fails).\n\
Cost: m+1 rounds; (n-1) + (n-1)(n-2) + … + (n-1)(n-2)…(n-m-1) messages.",
    variants: &[
        (
            "traitor-commander",
            "the commander is one of the m traitors and splits its orders",
        ),
        ("two-traitors", "m = 2: agreement needs n ≥ 7, fails at n = 6"),
    ],
    default_nodes: 4,
    nodes: (3, 12),
    faults: FaultModel {
        tolerates: &[Fault::Duplicate, Fault::Skew],
        outside: &[Fault::Loss, Fault::Crash],
        refused: "OM(m) assumes synchronous links: a late, held or cut message is the \
                  missing-message case that loss already shows",
    },
    run,
};

/// An order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Order {
    /// Attack.
    Attack,
    /// Retreat (also the default for a tie or a missing message).
    Retreat,
}

impl Order {
    fn flip(self) -> Order {
        match self {
            Order::Attack => Order::Retreat,
            Order::Retreat => Order::Attack,
        }
    }
}

/// A value and the generals it passed through, commander first.
#[derive(Clone, Debug)]
pub struct OmMsg {
    /// The order as the sender relays it.
    pub order: Order,
    /// The path, the sender last.
    pub path: Vec<ProcId>,
}

/// One general.
#[derive(Clone, Debug)]
pub struct General {
    m: usize,
    traitor: bool,
    /// The commander's order (used by P0 only).
    order: Order,
    /// What arrived along each path.
    got: BTreeMap<Vec<ProcId>, Order>,
    /// The decision, once taken.
    pub decided: Option<Order>,
}

const DECIDE: u64 = 1;

impl General {
    fn new(m: usize, traitor: bool, order: Order) -> Self {
        General {
            m,
            traitor,
            order,
            got: BTreeMap::new(),
            decided: None,
        }
    }

    /// The worth of `path` at this general (who is not on it).
    fn worth(&self, me: ProcId, n: usize, path: &mut Vec<ProcId>) -> Order {
        let direct = self.got.get(path).copied().unwrap_or(Order::Retreat);
        if path.len() == self.m + 1 {
            return direct;
        }
        let (mut attack, mut retreat) = (0usize, 0usize);
        let mut tally = |o: Order| match o {
            Order::Attack => attack += 1,
            Order::Retreat => retreat += 1,
        };
        tally(direct);
        for j in 0..n {
            if j == me || path.contains(&j) {
                continue;
            }
            path.push(j);
            tally(self.worth(me, n, path));
            path.pop();
        }
        if attack > retreat {
            Order::Attack
        } else {
            Order::Retreat
        }
    }
}

impl Process for General {
    type Msg = OmMsg;

    fn on_start(&mut self, ctx: &mut Ctx<'_, OmMsg>) {
        if ctx.id() != 0 {
            ctx.set_timer((self.m as Time + 2) * HOP, DECIDE);
            return;
        }
        ctx.mark(&format!("order {:?}", self.order));
        for q in 1..ctx.n() {
            let order = if self.traitor && q % 2 == 0 {
                self.order.flip()
            } else {
                self.order
            };
            ctx.send(q, OmMsg { order, path: vec![0] });
        }
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, OmMsg>, _from: ProcId, msg: OmMsg) {
        let me = ctx.id();
        if me == 0 || msg.path.contains(&me) || self.decided.is_some() {
            return;
        }
        if self.got.insert(msg.path.clone(), msg.order).is_some() {
            return; // a duplicate: already relayed
        }
        if msg.path.len() > self.m {
            return;
        }
        let mut path = msg.path;
        path.push(me);
        let order = if self.traitor {
            msg.order.flip()
        } else {
            msg.order
        };
        for q in 1..ctx.n() {
            if !path.contains(&q) {
                ctx.send(
                    q,
                    OmMsg {
                        order,
                        path: path.clone(),
                    },
                );
            }
        }
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_, OmMsg>, _tag: u64) {
        let d = self.worth(ctx.id(), ctx.n(), &mut vec![0]);
        self.decided = Some(d);
        ctx.mark(&format!("decide {d:?}"));
    }

    fn msg_bytes(msg: &OmMsg) -> usize {
        1 + msg.path.len()
    }

    fn msg_label(msg: &OmMsg) -> String {
        let path: Vec<String> = msg.path.iter().map(|p| p.to_string()).collect();
        let o = match msg.order {
            Order::Attack => "A",
            Order::Retreat => "R",
        };
        format!("{o} via {}", path.join(","))
    }
}

/// OM(m)'s message count: Σ_{k=1}^{m+1} (n-1)(n-2)…(n-k).
pub fn om_messages(n: usize, m: usize) -> u64 {
    let (mut total, mut term) = (0u64, 1u64);
    for k in 1..=m + 1 {
        term *= n.saturating_sub(k) as u64;
        total += term;
    }
    total
}

/// The traitors of a run: the commander first if it is one, the rest
/// lieutenants drawn from the seed.
pub fn traitors(n: usize, m: usize, commander: bool, seed: u64) -> Vec<ProcId> {
    let mut lieutenants: Vec<ProcId> = (1..n).collect();
    lieutenants.shuffle(&mut Pcg64Mcg::seed_from_u64(seed ^ 0x6272_6974));
    let mut t = vec![];
    if commander {
        t.push(0);
    }
    t.extend(lieutenants.into_iter().take(m - t.len()));
    t.sort_unstable();
    t
}

fn run(opts: &LabOptions) -> LabRun {
    let n = opts.nodes;
    let m = if opts.is_variant("two-traitors") { 2 } else { 1 };
    let bad = traitors(n, m, opts.is_variant("traitor-commander"), opts.seed);
    let order = Order::Attack;
    let make = |p: ProcId| General::new(m, bad.contains(&p), order);
    let mut sim = Sim::new(
        opts.seed,
        (0..n).map(make).collect(),
        round_net(&opts.faults),
        ClockConfig::perfect(),
    );
    let until = (m as Time + 4) * HOP;
    run_faulted(&mut sim, opts, until, make);
    let trace = sim.take_trace();
    let loyal: Vec<ProcId> = (1..n).filter(|p| !bad.contains(p)).collect();
    let decisions: Vec<(ProcId, Option<Order>)> =
        loyal.iter().map(|&p| (p, sim.proc(p).decided)).collect();
    let mut report = LabReport::new(ALGORITHM.name, opts);
    let undecided: Vec<ProcId> = decisions
        .iter()
        .filter(|(_, d)| d.is_none())
        .map(|(p, _)| *p)
        .collect();
    report.checks.push(Check::new(
        "every loyal lieutenant decides",
        undecided.is_empty(),
        if undecided.is_empty() {
            format!("{} loyal lieutenants; traitors {bad:?}", loyal.len())
        } else {
            format!("undecided: {undecided:?}")
        },
    ));
    let shown = |ds: &[(ProcId, Option<Order>)]| {
        ds.iter()
            .map(|(p, d)| format!("P{p} {d:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let firsts: Vec<Order> = decisions.iter().filter_map(|(_, d)| *d).collect();
    let agree = firsts.windows(2).all(|w| w[0] == w[1]);
    report.checks.push(Check::new(
        "IC1: loyal lieutenants decide the same order",
        agree,
        shown(&decisions),
    ));
    let commander_loyal = !bad.contains(&0);
    let obey = !commander_loyal || firsts.iter().all(|&d| d == order);
    report.checks.push(Check::new(
        "IC2: with a loyal commander they decide its order",
        obey,
        if commander_loyal {
            format!("commander ordered {order:?}; {}", shown(&decisions))
        } else {
            "the commander is a traitor: IC2 asks nothing".to_string()
        },
    ));
    report.checks.push(Check::new(
        "n ≥ 3m + 1 (the model's condition, reported)",
        true,
        format!(
            "n = {n}, m = {m}: {}",
            if n > 3 * m {
                "inside the model"
            } else {
                "outside the model: agreement is not promised"
            }
        ),
    ));
    let s = sim.stats();
    report.costs.push(Cost::new(
        "messages",
        s.sent as f64,
        "Σ_{k=1}^{m+1} (n-1)(n-2)…(n-k)",
        Some(om_messages(n, m) as f64),
    ));
    report.costs.push(Cost::new(
        "rounds",
        (m + 1) as f64,
        "m + 1",
        Some((m + 1) as f64),
    ));
    LabRun::new(report, trace)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::report::opts;

    #[test]
    fn agreement_with_n_at_least_3m_plus_1() {
        for seed in 0..6 {
            for (n, v) in [
                (4, None),
                (5, None),
                (4, Some("traitor-commander")),
                (7, Some("two-traitors")),
                (7, Some("traitor-commander")),
            ] {
                let r = run(&opts(n, seed, v)).report;
                assert!(r.passed(), "n={n} {v:?} seed {seed}: {r:?}");
            }
        }
    }

    #[test]
    fn agreement_fails_with_n_equal_3m() {
        for seed in 0..6 {
            let r = run(&opts(3, seed, None)).report;
            assert!(!r.checks[2].held, "IC2 held at n = 3: {r:?}");
            let r = run(&opts(6, seed, Some("two-traitors"))).report;
            assert!(!r.passed(), "n = 6, m = 2 held: {r:?}");
        }
    }

    #[test]
    fn messages_match_the_formula() {
        assert_eq!(om_messages(4, 1), 3 + 3 * 2);
        assert_eq!(om_messages(7, 2), 6 + 6 * 5 + 6 * 5 * 4);
        for (n, v) in [(4, None), (9, None), (7, Some("two-traitors"))] {
            let r = run(&opts(n, 2, v)).report;
            assert_eq!(Some(r.costs[0].measured), r.costs[0].expected, "{r:?}");
        }
    }

    #[test]
    fn traitors_are_drawn_from_the_seed() {
        assert_eq!(traitors(4, 1, true, 3), vec![0]);
        let t = traitors(7, 2, false, 3);
        assert_eq!(t.len(), 2);
        assert!(!t.contains(&0));
    }
}
