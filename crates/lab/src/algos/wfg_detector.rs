//! Centralized deadlock detection: lock managers report their wait-for edges
//! to a coordinator that finds cycles in the global wait-for graph.

use synod_simnet::NetConfig;

use crate::algos::deadlock_common::{self, Mode};
use crate::registry::{Algorithm, FaultModel};
use synod_simnet::Fault;
use crate::report::{Cost, LabOptions, LabReport, LabRun};

/// The registry entry.
pub const ALGORITHM: Algorithm = Algorithm {
    name: "wfg-detector",
    family: "deadlock detection",
    summary:
        "lock managers report wait-for edges to P0, which finds cycles and aborts the youngest",
    description: "Centralized wait-for-graph (WFG) deadlock detection.\n\
Workload: each process runs 3 transactions; each locks 2 locks owned by other processes,\n\
one at a time, in random order (AND model: a blocked transaction waits for the holder).\n\
Rules: whenever its queue changes, a lock manager sends REPORT(seq, waiter→holder edges)\n\
to the coordinator P0, naming transactions (start time, process). P0 keeps the newest\n\
report of each manager (by seq) and, on each report, looks for a cycle in the union.\n\
On a cycle it declares a deadlock, picks the youngest transaction as victim, and sends it\n\
ABORT; the victim releases its locks and retries later.\n\
Guarantee: every real cycle is found (a deadlock is stable, so its edges reach P0 and\n\
stay); no phantom: transactions release only when they end, so edges that each held at\n\
some moment and form a cycle all hold together at the latest of those moments. Variant\n\
stale-reports names edges by process, not transaction, and drops the sequence numbers:\n\
an old edge P1→P2 meets a new P2→P1 and P0 declares a deadlock that never existed.\n\
Cost: one REPORT per change of a lock queue; one ABORT per declared deadlock; detection\n\
delay one message after the cycle closes. Checked against the true WFG from the states.",
    variants: &[(
        "stale-reports",
        "edges named by process, no sequence numbers: phantom deadlocks",
    )],
    default_nodes: 5,
    nodes: (2, 16),
    faults: FaultModel {
        tolerates: &[Fault::Reorder],
        outside: &[Fault::Loss, Fault::Duplicate],
        refused: "its model is reliable channels between lock managers that never fail, and its runs schedule no partitions, crashes or clock faults",
    },
    run,
};

fn run(opts: &LabOptions) -> LabRun {
    let stale = opts.is_variant("stale-reports");
    let mut base = NetConfig::reliable();
    if stale {
        base.latency_max = 30_000;
        base.fifo = false;
    }
    let (mut sim, v) = deadlock_common::run(opts, Mode::Wfg { stale }, base, 10_000_000);
    let mut report = LabReport::new(ALGORITHM.name, opts);
    report.checks.extend(v.checks(opts.nodes));
    let s = sim.stats();
    let decl = v.declared.len().max(1) as f64;
    report.costs.push(Cost::new(
        "deadlocks declared",
        v.declared.len() as f64,
        "one per real cycle",
        Some(v.real.len() as f64),
    ));
    report.costs.push(Cost::new(
        "REPORT messages",
        s.sent_of("Report") as f64,
        "one per lock-queue change",
        None,
    ));
    report.costs.push(Cost::new(
        "ABORT per declared deadlock",
        s.sent_of("Abort") as f64 / decl,
        "1",
        Some(1.0),
    ));
    LabRun::new(report, sim.take_trace())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_deadlock_found_and_no_phantom() {
        let mut real = 0;
        for (n, seed) in [(3, 0), (4, 1), (5, 2), (5, 3), (6, 4)] {
            let r = run(&LabOptions::new(n, seed)).report;
            assert!(r.passed(), "{r:?}");
            real += r.costs[0].measured as u32;
        }
        assert!(
            real > 0,
            "no deadlock arose in 5 runs: the test shows nothing"
        );
    }

    #[test]
    fn stale_reports_produce_a_phantom_the_checker_catches() {
        let caught = (0..10).any(|seed| {
            let mut o = LabOptions::new(4, seed);
            o.variant = Some("stale-reports".into());
            !run(&o).report.checks[1].held
        });
        assert!(caught, "no phantom deadlock in 10 seeds");
    }
}
