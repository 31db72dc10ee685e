//! Flooding with duplicate suppression over a seeded random connected graph.

use synod_simnet::{Ctx, ProcId, Process, Sim};

use crate::algos::gossip_common::{round_net, sim_options, Graph, HOP};
use crate::harness::run_faulted;
use crate::registry::{Algorithm, FaultModel};
use synod_simnet::Fault;
use crate::report::{Check, Cost, LabOptions, LabReport, LabRun};

/// The registry entry.
pub const ALGORITHM: Algorithm = Algorithm {
    name: "flooding",
    family: "broadcast",
    summary: "flood one message over a random graph, forwarding each first copy once",
    description: "Flooding with duplicate suppression.\n\
Topology: a seeded random connected graph (random tree plus random edges,\n\
average degree 4; variants change it). Process 0 is the source.\n\
Rules: the source delivers its message and sends it to every neighbour. A\n\
process receiving the message for the first time delivers it and forwards it\n\
to every neighbour except the one it came from; later copies are dropped.\n\
Every hop takes the same latency, so hops are synchronous rounds.\n\
Guarantee (reliable links): every process reachable from the source delivers\n\
the message exactly once.\n\
Cost: the source sends deg(0) copies, every other process deg(p) - 1, so\n\
messages = 2|E| - (N-1) exactly; rounds = eccentricity of the source (the\n\
farthest process's hop distance).",
    variants: &[
        ("sparse", "average degree 2 (a tree plus one edge)"),
        ("dense", "average degree 8"),
        (
            "deliver-every-copy",
            "planted bug: deliver every copy received, not only the first",
        ),
    ],
    default_nodes: 8,
    nodes: (1, 100_000),
    faults: FaultModel {
        tolerates: &[Fault::Loss, Fault::Duplicate, Fault::Reorder, Fault::Partition, Fault::OneWay, Fault::Clog, Fault::Skew],
        outside: &[Fault::Crash],
        refused: "every fault kind applies",
    },
    run,
};

/// The flooded message: how many hops it has travelled.
#[derive(Clone, Debug)]
pub struct Flood {
    hop: u32,
}

/// One process of the flood.
#[derive(Clone, Debug)]
pub struct Flooder {
    nbrs: Vec<ProcId>,
    source: bool,
    every_copy: bool,
    /// Deliveries so far (exactly one is correct).
    pub delivered: u32,
    /// Hop count at first delivery.
    pub hop: Option<u32>,
}

impl Process for Flooder {
    type Msg = Flood;

    fn on_start(&mut self, ctx: &mut Ctx<'_, Flood>) {
        if self.source {
            self.delivered = 1;
            self.hop = Some(0);
            ctx.mark("deliver");
            ctx.stamp("hop 0");
            for &q in &self.nbrs {
                ctx.send(q, Flood { hop: 1 });
            }
        }
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, Flood>, from: ProcId, msg: Flood) {
        if self.hop.is_some() {
            if self.every_copy {
                self.delivered += 1;
                ctx.mark("deliver");
            }
            return;
        }
        self.delivered = 1;
        self.hop = Some(msg.hop);
        ctx.mark("deliver");
        ctx.stamp(&format!("hop {}", msg.hop));
        for &q in &self.nbrs {
            if q != from {
                ctx.send(q, Flood { hop: msg.hop + 1 });
            }
        }
    }

    fn msg_bytes(_msg: &Flood) -> usize {
        // message id (8), origin (4), hop count (4)
        16
    }

    fn msg_label(msg: &Flood) -> String {
        format!("Flood({})", msg.hop)
    }
}

/// The graph degree a run of `opts` uses.
pub fn degree(opts: &LabOptions) -> usize {
    if opts.is_variant("sparse") {
        2
    } else if opts.is_variant("dense") {
        8
    } else {
        4
    }
}

fn run(opts: &LabOptions) -> LabRun {
    let n = opts.nodes;
    let g = Graph::random_connected(n, degree(opts), opts.seed);
    let every_copy = opts.is_variant("deliver-every-copy");
    let procs = (0..n)
        .map(|p| Flooder {
            nbrs: g.adj[p].clone(),
            source: p == 0,
            every_copy,
            delivered: 0,
            hop: None,
        })
        .collect();
    let mut sim = Sim::with_options(
        opts.seed,
        procs,
        round_net(&opts.faults),
        synod_simnet::ClockConfig::perfect(),
        sim_options(n),
    );
    // Long enough for a path through every vertex even with stretched links.
    let until = (n as u64 + 2) * HOP * 20;
    let adj = g.adj.clone();
    run_faulted(&mut sim, opts, until, |p| Flooder {
        nbrs: adj[p].clone(),
        source: false,
        every_copy,
        delivered: 0,
        hop: None,
    });
    let dist = g.distances(0);
    let ecc = dist.iter().flatten().copied().max().unwrap_or(0);
    let mut report = LabReport::new(ALGORITHM.name, opts);
    let bad = (0..n).find(|&p| dist[p].is_some() && sim.proc(p).delivered != 1);
    report.checks.push(Check::new(
        "every reachable process delivers exactly once",
        bad.is_none(),
        match bad {
            None => format!("{n} of {n} processes delivered once"),
            Some(p) => format!("P{p} delivered {} times", sim.proc(p).delivered),
        },
    ));
    let e = g.edges();
    let flood_msgs = sim.stats().sent_of("Flood");
    report.costs.push(Cost::new(
        "messages",
        flood_msgs as f64,
        &format!("2|E| - (N-1) with |E| = {e}, N = {n}"),
        Some((2 * e + 1).saturating_sub(n) as f64),
    ));
    let rounds = sim.procs().iter().filter_map(|p| p.hop).max().unwrap_or(0);
    report.costs.push(Cost::new(
        "rounds (hops of the last first delivery)",
        rounds as f64,
        "eccentricity of the source",
        Some(ecc as f64),
    ));
    report.costs.push(Cost::new(
        "edges |E|",
        e as f64,
        "random connected graph, N·degree/2",
        None,
    ));
    LabRun::new(report, sim.take_trace())
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::report::opts;

    #[test]
    fn exact_message_count_and_rounds() {
        for (seed, v) in [
            (1, None),
            (2, Some("sparse")),
            (3, Some("dense")),
            (4, None),
        ] {
            let r = run(&opts(30, seed, v)).report;
            assert!(r.passed(), "{r:?}");
            for c in &r.costs {
                if let Some(e) = c.expected {
                    assert_eq!(c.measured, e, "{c:?}");
                }
            }
        }
    }

    #[test]
    fn single_process_delivers_alone() {
        let r = run(&opts(1, 1, None)).report;
        assert!(r.passed());
        assert_eq!(r.costs[0].measured, 0.0);
    }

    #[test]
    fn planted_bug_is_caught() {
        let r = run(&opts(20, 1, Some("deliver-every-copy"))).report;
        assert!(!r.checks[0].held, "{r:?}");
    }

    #[test]
    fn loss_outside_the_model_can_break_it() {
        let caught = (0..10).any(|seed| {
            let mut o = opts(20, seed, Some("sparse"));
            o.faults = synod_simnet::Fault::parse_list("loss").unwrap();
            !run(&o).report.checks[0].held
        });
        assert!(caught);
    }
}
