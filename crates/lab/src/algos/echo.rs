//! Chang's echo algorithm: a broadcast that builds a spanning tree, and a
//! convergecast on it computing the global min, max and sum of the values.

use rand::{Rng, SeedableRng};
use synod_simnet::{Ctx, Pcg64Mcg, ProcId, Process, Sim};

use crate::algos::gossip_common::{round_net, sim_options, Graph, HOP};
use crate::harness::run_faulted;
use crate::registry::{Algorithm, FaultModel};
use synod_simnet::Fault;
use crate::report::{Check, Cost, LabOptions, LabReport, LabRun};

/// The registry entry.
pub const ALGORITHM: Algorithm = Algorithm {
    name: "echo",
    family: "broadcast",
    summary: "Chang's echo: spanning tree by broadcast, global min/max/sum by convergecast",
    description:
        "Echo algorithm (Chang 1982) on a seeded random connected graph (average degree 4).\n\
Rules: the initiator (P0) sends EXPLORE to all neighbours. A process receiving\n\
its first EXPLORE takes the sender as its parent and sends EXPLORE to all other\n\
neighbours. Every process counts the messages (EXPLORE or ECHO) received from\n\
its neighbours; when it has one from each, it sends ECHO to its parent carrying\n\
the aggregate (min, max, sum, count) of its own value and of the ECHOes of its\n\
children. When the initiator has heard from all neighbours it decides.\n\
Guarantee (reliable links): the parent pointers form a spanning tree rooted at\n\
the initiator, and the decided aggregate equals the true min, max, sum and N.\n\
Cost: exactly two messages per edge, 2|E| in all: N-1 ECHOes on tree edges and\n\
2|E| - (N-1) EXPLOREs.",
    variants: &[(
        "early-echo",
        "planted bug: echo to the parent at once, without waiting for the subtree",
    )],
    default_nodes: 8,
    nodes: (1, 100_000),
    faults: FaultModel {
        tolerates: &[Fault::Reorder, Fault::Partition, Fault::OneWay, Fault::Clog, Fault::Skew],
        outside: &[Fault::Loss, Fault::Duplicate, Fault::Crash],
        refused: "every fault kind applies",
    },
    run,
};

/// An aggregate of values: min, max, sum and how many.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Agg {
    /// Smallest value.
    pub min: i64,
    /// Largest value.
    pub max: i64,
    /// Sum of the values.
    pub sum: i64,
    /// Number of values.
    pub count: u64,
}

impl Agg {
    fn one(v: i64) -> Agg {
        Agg {
            min: v,
            max: v,
            sum: v,
            count: 1,
        }
    }
    fn merge(&mut self, o: &Agg) {
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
        self.sum += o.sum;
        self.count += o.count;
    }
}

/// Echo's messages.
#[derive(Clone, Debug)]
pub enum EchoMsg {
    /// The wave going out.
    Explore,
    /// The wave coming back with the subtree's aggregate.
    Echo(Agg),
}

/// One process.
#[derive(Clone, Debug)]
pub struct EchoProc {
    nbrs: Vec<ProcId>,
    root: bool,
    early: bool,
    /// The parent in the tree (`None` for the root and unreached processes).
    pub parent: Option<ProcId>,
    reached: bool,
    heard: usize,
    acc: Agg,
    echoed: bool,
    /// The root's decision.
    pub result: Option<Agg>,
    /// When the root decided (µs).
    pub decided_at: Option<u64>,
}

impl EchoProc {
    fn finish_if_done(&mut self, ctx: &mut Ctx<'_, EchoMsg>) {
        if self.heard < self.nbrs.len() {
            return;
        }
        assert!(
            self.heard == self.nbrs.len(),
            "heard more messages than neighbours"
        );
        if self.root {
            self.result = Some(self.acc);
            self.decided_at = Some(ctx.now());
            ctx.mark("decide");
            ctx.stamp(&format!("sum {} n {}", self.acc.sum, self.acc.count));
        } else if !self.echoed {
            self.echoed = true;
            let parent = self.parent.expect("a reached non-root has a parent");
            ctx.send(parent, EchoMsg::Echo(self.acc));
        }
    }
}

impl Process for EchoProc {
    type Msg = EchoMsg;

    fn on_start(&mut self, ctx: &mut Ctx<'_, EchoMsg>) {
        if self.root {
            self.reached = true;
            for &q in &self.nbrs {
                ctx.send(q, EchoMsg::Explore);
            }
            self.finish_if_done(ctx);
        }
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, EchoMsg>, from: ProcId, msg: EchoMsg) {
        if !self.nbrs.contains(&from) {
            // Not from a neighbour: a message outside the topology; ignore it.
            return;
        }
        if self.heard >= self.nbrs.len() {
            // More messages than neighbours: a duplicate, outside the model.
            ctx.mark("extra message ignored");
            return;
        }
        self.heard += 1;
        match msg {
            EchoMsg::Explore if !self.reached => {
                self.reached = true;
                self.parent = Some(from);
                ctx.mark("join tree");
                for &q in &self.nbrs {
                    if q != from {
                        ctx.send(q, EchoMsg::Explore);
                    }
                }
                if self.early {
                    self.echoed = true;
                    ctx.send(from, EchoMsg::Echo(self.acc));
                }
            }
            EchoMsg::Explore => {}
            EchoMsg::Echo(a) => self.acc.merge(&a),
        }
        self.finish_if_done(ctx);
    }

    fn msg_bytes(msg: &EchoMsg) -> usize {
        match msg {
            EchoMsg::Explore => 8,
            EchoMsg::Echo(_) => 8 + 32,
        }
    }

    fn msg_label(msg: &EchoMsg) -> String {
        match msg {
            EchoMsg::Explore => "Explore".to_string(),
            EchoMsg::Echo(a) => format!("Echo(n={})", a.count),
        }
    }
}

/// The values of the processes of a run (seeded, in -1000..=1000).
pub fn values(n: usize, seed: u64) -> Vec<i64> {
    let mut rng = Pcg64Mcg::seed_from_u64(seed ^ 0x7661_6c75_6573);
    (0..n).map(|_| rng.random_range(-1000..=1000)).collect()
}

fn fresh(nbrs: &[ProcId], root: bool, early: bool, value: i64) -> EchoProc {
    EchoProc {
        nbrs: nbrs.to_vec(),
        root,
        early,
        parent: None,
        reached: false,
        heard: 0,
        acc: Agg::one(value),
        echoed: false,
        result: None,
        decided_at: None,
    }
}

/// Checks that the parent pointers form a spanning tree rooted at 0 over `g`.
pub fn tree_error(g: &Graph, parent: &[Option<ProcId>]) -> Option<String> {
    let n = g.len();
    for (p, &par) in parent.iter().enumerate().skip(1) {
        match par {
            None => return Some(format!("P{p} has no parent")),
            Some(q) if !g.adjacent(p, q) => {
                return Some(format!("P{p}'s parent P{q} is not a neighbour"))
            }
            Some(_) => {}
        }
    }
    if n > 0 && parent[0].is_some() {
        return Some("the root has a parent".into());
    }
    // Depth by memoised walks up: a walk longer than n steps is a cycle.
    let mut depth: Vec<Option<usize>> = vec![None; n];
    if n > 0 {
        depth[0] = Some(0);
    }
    for start in 0..n {
        let mut path = vec![];
        let mut v = start;
        while depth[v].is_none() {
            if path.len() > n {
                return Some(format!("parent pointers from P{start} form a cycle"));
            }
            path.push(v);
            v = parent[v].expect("checked above");
        }
        let mut d = depth[v].expect("loop ended on a known depth");
        for &u in path.iter().rev() {
            d += 1;
            depth[u] = Some(d);
        }
    }
    None
}

fn run(opts: &LabOptions) -> LabRun {
    let n = opts.nodes;
    let g = Graph::random_connected(n, 4, opts.seed);
    let vals = values(n, opts.seed);
    let early = opts.is_variant("early-echo");
    let procs = (0..n)
        .map(|p| fresh(&g.adj[p], p == 0, early, vals[p]))
        .collect();
    let mut sim = Sim::with_options(
        opts.seed,
        procs,
        round_net(&opts.faults),
        synod_simnet::ClockConfig::perfect(),
        sim_options(n),
    );
    let until = (n as u64 + 2) * HOP * 40;
    let (adj, v2) = (g.adj.clone(), vals.clone());
    run_faulted(&mut sim, opts, until, |p| {
        fresh(&adj[p], false, early, v2[p])
    });
    let truth = vals.iter().skip(1).fold(Agg::one(vals[0]), |mut a, &v| {
        a.merge(&Agg::one(v));
        a
    });
    let mut report = LabReport::new(ALGORITHM.name, opts);
    let got = sim.proc(0).result;
    report.checks.push(Check::new(
        "decided aggregate = true (min, max, sum, N)",
        got == Some(truth),
        match got {
            Some(a) if a == truth => format!(
                "min {} max {} sum {} over {} processes",
                a.min, a.max, a.sum, a.count
            ),
            Some(a) => format!("decided {a:?}, truth {truth:?}"),
            None => "the initiator never decided".to_string(),
        },
    ));
    let parents: Vec<Option<ProcId>> = sim.procs().iter().map(|p| p.parent).collect();
    let tree = tree_error(&g, &parents);
    report.checks.push(Check::new(
        "parent pointers form a spanning tree",
        tree.is_none(),
        tree.unwrap_or_else(|| format!("{} tree edges over {n} processes", n.saturating_sub(1))),
    ));
    let e = g.edges();
    let s = sim.stats();
    report.costs.push(Cost::new(
        "messages",
        s.sent as f64,
        &format!("2|E| with |E| = {e}"),
        Some(2.0 * e as f64),
    ));
    report.costs.push(Cost::new(
        "ECHO messages",
        s.sent_of("Echo") as f64,
        "N - 1 (one per tree edge)",
        Some(n.saturating_sub(1) as f64),
    ));
    report.costs.push(Cost::new(
        "time to decide (hops)",
        (sim.proc(0).decided_at.unwrap_or(0) / HOP) as f64,
        "≤ 2·(N-1) hops; about 2·eccentricity on random graphs",
        None,
    ));
    LabRun::new(report, sim.take_trace())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exactly_two_messages_per_edge_and_right_aggregate() {
        for seed in 0..6 {
            let n = 5 + seed as usize * 7;
            let r = run(&LabOptions::new(n, seed)).report;
            assert!(r.passed(), "{r:?}");
            let g = Graph::random_connected(n, 4, seed);
            assert_eq!(r.costs[0].measured, 2.0 * g.edges() as f64);
            assert_eq!(r.costs[1].measured, (n - 1) as f64);
        }
    }

    #[test]
    fn single_process_decides_its_own_value() {
        let r = run(&LabOptions::new(1, 3)).report;
        assert!(r.passed(), "{r:?}");
    }

    #[test]
    fn planted_bug_is_caught() {
        let mut o = LabOptions::new(20, 1);
        o.variant = Some("early-echo".into());
        let r = run(&o).report;
        assert!(!r.checks[0].held, "{r:?}");
    }

    #[test]
    fn tree_checker_rejects_cycles_and_non_edges() {
        let g = Graph {
            adj: vec![vec![1], vec![0, 2], vec![1]],
        };
        assert!(tree_error(&g, &[None, Some(0), Some(1)]).is_none());
        assert!(tree_error(&g, &[None, Some(2), Some(1)]).is_some());
        assert!(tree_error(&g, &[None, Some(0), Some(0)]).is_some());
        assert!(tree_error(&g, &[None, Some(0), None]).is_some());
    }
}
