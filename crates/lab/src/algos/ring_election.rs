//! Chang and Roberts' ring election: every process sends its id clockwise,
//! larger ids swallow smaller ones, and the id that comes home wins.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use synod_simnet::{ClockConfig, Ctx, Fault, NetConfig, Pcg64Mcg, ProcId, Process, Sim, Time};

use crate::harness::{net_for, run_faulted};
use crate::registry::{Algorithm, FaultModel};
use crate::report::{Check, Cost, LabOptions, LabReport, LabRun};

/// The registry entry.
pub const ALGORITHM: Algorithm = Algorithm {
    name: "ring-election",
    family: "consensus and election",
    summary: "Chang-Roberts: the largest id survives a trip round a one-way ring",
    description: "Ring election (Chang & Roberts 1979) on a unidirectional ring P0 → P1 → … → P0.\n\
Each process has a distinct id; all start at once and send ELECTION(own id) to\n\
their successor. On ELECTION(j): if j > own id, forward it; if j < own id,\n\
swallow it; if j = own id, it went round: this process is the leader and sends\n\
ELECTED(id) round the ring, which every process records and forwards until it\n\
comes home.\n\
Guarantee (reliable FIFO or not, no crash): exactly one leader, the largest id,\n\
and every process learns it.\n\
Cost: ELECTION messages depend only on how the ids sit on the ring: best case\n\
2N-1 (ids ascending along the ring: each id but the largest dies after one hop),\n\
worst N(N+1)/2 (descending), average N·H_N ≈ N ln N over random arrangements;\n\
then N ELECTED messages.",
    variants: &[
        ("best", "ids ascend along the ring: 2N-1 ELECTION messages"),
        ("worst", "ids descend along the ring: N(N+1)/2 ELECTION messages"),
        (
            "forward-smaller",
            "planted bug: a process also forwards ids smaller than its own",
        ),
    ],
    default_nodes: 8,
    nodes: (1, 2_000),
    faults: FaultModel {
        tolerates: &[Fault::Reorder, Fault::Clog, Fault::Skew],
        outside: &[Fault::Loss, Fault::Duplicate, Fault::Crash],
        refused: "a cut link splits the ring, which loss already shows",
    },
    run,
};

/// Ring messages.
#[derive(Clone, Debug)]
pub enum RingMsg {
    /// A candidate id travelling round the ring.
    Election(u64),
    /// The winner's announcement.
    Elected(u64),
}

/// One process on the ring.
#[derive(Clone, Debug)]
pub struct RingProc {
    id: u64,
    forward_smaller: bool,
    start_at: Time,
    /// Times this process declared itself leader.
    pub declared: u32,
    /// The leader it learned.
    pub leader: Option<u64>,
}

impl RingProc {
    fn next(ctx: &Ctx<'_, RingMsg>) -> ProcId {
        (ctx.id() + 1) % ctx.n()
    }
}

impl Process for RingProc {
    type Msg = RingMsg;

    fn on_start(&mut self, ctx: &mut Ctx<'_, RingMsg>) {
        ctx.set_timer(self.start_at, 0);
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_, RingMsg>, _tag: u64) {
        ctx.stamp(&format!("id {}", self.id));
        let to = Self::next(ctx);
        ctx.send(to, RingMsg::Election(self.id));
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, RingMsg>, _from: ProcId, msg: RingMsg) {
        let to = Self::next(ctx);
        match msg {
            RingMsg::Election(j) if j == self.id => {
                self.declared += 1;
                self.leader = Some(j);
                ctx.mark("leader");
                ctx.send(to, RingMsg::Elected(j));
            }
            RingMsg::Election(j) if j > self.id || self.forward_smaller => {
                ctx.send(to, RingMsg::Election(j));
            }
            RingMsg::Election(_) => {}
            RingMsg::Elected(j) if j == self.id => ctx.mark("everyone knows"),
            RingMsg::Elected(j) => {
                self.leader = Some(j);
                ctx.send(to, RingMsg::Elected(j));
            }
        }
    }

    fn msg_bytes(_msg: &RingMsg) -> usize {
        9
    }

    fn msg_label(msg: &RingMsg) -> String {
        match msg {
            RingMsg::Election(j) => format!("Election({j})"),
            RingMsg::Elected(j) => format!("Elected({j})"),
        }
    }
}

/// The ids in ring order for a run: ascending, descending or shuffled by the seed.
pub fn arrangement(n: usize, variant: Option<&str>, seed: u64) -> Vec<u64> {
    let mut ids: Vec<u64> = (1..=n as u64).map(|i| i * 10).collect();
    match variant {
        Some("best") => {}
        Some("worst") => ids.reverse(),
        _ => ids.shuffle(&mut Pcg64Mcg::seed_from_u64(seed ^ 0x7269_6e67)),
    }
    ids
}

/// ELECTION messages for ids in this ring order: each id travels until it
/// meets a larger one (the largest travels the whole ring).
pub fn election_messages(ids: &[u64]) -> u64 {
    let n = ids.len();
    let mut total = 0u64;
    for i in 0..n {
        let mut hops = 1u64;
        let mut j = (i + 1) % n;
        while j != i && ids[j] < ids[i] {
            hops += 1;
            j = (j + 1) % n;
        }
        total += hops;
    }
    total
}

/// N·H_N, Chang and Roberts' average number of ELECTION messages.
pub fn average(n: usize) -> f64 {
    (1..=n).map(|k| n as f64 / k as f64).sum()
}

fn run(opts: &LabOptions) -> LabRun {
    let n = opts.nodes;
    let ids = arrangement(n, opts.variant.as_deref(), opts.seed);
    let forward_smaller = opts.is_variant("forward-smaller");
    // Start inside the window where run_faulted applies faults (10 %..60 %).
    let until: Time = 400_000 + 4 * 60_000 * n as Time;
    let make = |p: ProcId| RingProc {
        id: ids[p],
        forward_smaller,
        start_at: until / 5,
        declared: 0,
        leader: None,
    };
    let net = net_for(&opts.faults, NetConfig::reliable());
    let mut sim = Sim::new(
        opts.seed,
        (0..n).map(make).collect(),
        net,
        ClockConfig::perfect(),
    );
    if n > 64 {
        sim.set_tracing(false);
    }
    run_faulted(&mut sim, opts, until, make);
    let trace = sim.take_trace();
    let max = ids.iter().copied().max().unwrap_or(0);
    let declared: Vec<(ProcId, u32)> = (0..n)
        .map(|p| (p, sim.proc(p).declared))
        .filter(|&(_, d)| d > 0)
        .collect();
    let mut report = LabReport::new(ALGORITHM.name, opts);
    let one = declared.len() == 1 && declared[0].1 == 1 && ids[declared[0].0] == max;
    report.checks.push(Check::new(
        "exactly one leader, the largest id",
        one,
        format!(
            "declared: {}; largest id {max}",
            if declared.is_empty() {
                "nobody".to_string()
            } else {
                declared
                    .iter()
                    .map(|(p, d)| format!("P{p} (id {}) ×{d}", ids[*p]))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        ),
    ));
    let wrong: Vec<ProcId> = (0..n)
        .filter(|&p| sim.proc(p).leader != Some(max))
        .collect();
    report.checks.push(Check::new(
        "every process learns the leader",
        wrong.is_empty(),
        if wrong.is_empty() {
            format!("{n} processes know id {max}")
        } else {
            format!("{} do not, first P{}", wrong.len(), wrong[0])
        },
    ));
    let s = sim.stats();
    let elections = s.sent_of("Election") as f64;
    let nf = n as f64;
    report.costs.push(Cost::new(
        "ELECTION messages",
        elections,
        "each id travels until a larger one: 2N-1 best, N(N+1)/2 worst",
        Some(election_messages(&ids) as f64),
    ));
    report.costs.push(
        Cost::new(
            "ELECTION messages against the cases",
            elections,
            "between 2N-1 and N(N+1)/2, N·H_N on average",
            None,
        )
        .at_least(2.0 * nf - 1.0)
        .at_most(nf * (nf + 1.0) / 2.0)
        .near(average(n)),
    );
    report.costs.push(Cost::new(
        "ELECTED messages",
        s.sent_of("Elected") as f64,
        "N",
        Some(nf),
    ));
    LabRun::new(report, trace)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::report::opts;

    #[test]
    fn one_leader_and_the_case_figures() {
        for n in [1, 2, 5, 16] {
            let nf = n as f64;
            let best = run(&opts(n, 1, Some("best"))).report;
            assert!(best.passed(), "{best:?}");
            assert_eq!(best.costs[0].measured, 2.0 * nf - 1.0);
            let worst = run(&opts(n, 1, Some("worst"))).report;
            assert!(worst.passed(), "{worst:?}");
            assert_eq!(worst.costs[0].measured, nf * (nf + 1.0) / 2.0);
            for seed in 0..4 {
                let r = run(&opts(n, seed, None)).report;
                assert!(r.passed(), "{r:?}");
                assert_eq!(Some(r.costs[0].measured), r.costs[0].expected);
            }
        }
    }

    #[test]
    fn random_rings_average_near_n_h_n() {
        let n = 64;
        let mean = (0..40)
            .map(|s| election_messages(&arrangement(n, None, s)) as f64)
            .sum::<f64>()
            / 40.0;
        let h = average(n);
        assert!((mean - h).abs() < 0.15 * h, "mean {mean}, N·H_N {h}");
    }

    #[test]
    fn forwarding_smaller_ids_is_caught() {
        let r = run(&opts(6, 1, Some("forward-smaller"))).report;
        assert!(!r.checks[0].held, "{r:?}");
    }

    #[test]
    fn a_lost_message_leaves_no_leader_on_some_seed() {
        let broke = (1..=10).any(|seed| {
            let mut o = opts(8, seed, None);
            o.faults = [Fault::Loss].into_iter().collect();
            !run(&o).report.passed()
        });
        assert!(broke);
    }
}
