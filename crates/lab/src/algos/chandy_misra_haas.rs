//! Chandy–Misra–Haas edge-chasing deadlock detection (AND model).

use synod_simnet::NetConfig;

use crate::algos::deadlock_common::{self, Mode};
use crate::registry::{Algorithm, FaultModel};
use synod_simnet::Fault;
use crate::report::{Cost, LabOptions, LabReport, LabRun};

/// The registry entry.
pub const ALGORITHM: Algorithm = Algorithm {
    name: "chandy-misra-haas",
    family: "deadlock detection",
    summary: "probes chase wait-for edges; a probe back at its initiator means deadlock",
    description: "Chandy–Misra–Haas (1983), AND model, edge chasing.\n\
Workload: as wfg-detector (3 transactions per process, 2 remote locks each, taken one at\n\
a time in random order). A lock manager tells a queued transaction whom it waits for.\n\
Rules: a transaction blocked for a while sends PROBE(i, j, k) - initiator i, sender j,\n\
receiver k - to the holder it waits for, and again each period while blocked. A process\n\
receiving a probe meant for the transaction it runs, and blocked itself, forwards it to\n\
its own holder. A probe that comes back to its (still blocked) initiator proves a cycle.\n\
Probes carry the path, so the initiator knows the cycle; only the youngest transaction\n\
on it declares, and it is the victim: it aborts, releasing its locks.\n\
Guarantee: every real cycle is found (its youngest member's next probe goes round it);\n\
no phantom (a probe only crosses blocked transactions, which stay blocked). Variant\n\
eager-declare lets every initiator declare: after the victim aborted, a late probe of\n\
another member still comes back and declares a cycle that no longer exists.\n\
Cost: a probe round costs exactly L messages for a cycle of length L (out-degree 1);\n\
in general at most e (edges of the WFG) per probe computation, e ≤ N(N-1).",
    variants: &[(
        "eager-declare",
        "every initiator declares, not only the youngest: duplicate and phantom declarations",
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
    let eager = opts.is_variant("eager-declare");
    let (mut sim, v) =
        deadlock_common::run(opts, Mode::Cmh { eager }, NetConfig::reliable(), 10_000_000);
    let mut report = LabReport::new(ALGORITHM.name, opts);
    report.checks.extend(v.checks(opts.nodes));
    let s = sim.stats();
    let n = opts.nodes as f64;
    let decl = v.declared.len();
    let mean_len =
        v.declared.iter().map(|(c, _)| c.len()).sum::<usize>() as f64 / decl.max(1) as f64;
    report.costs.push(Cost::new(
        "deadlocks declared",
        decl as f64,
        "one per real cycle",
        Some(v.real.len() as f64),
    ));
    report.costs.push(Cost::new(
        "probes per declared deadlock",
        s.sent_of("Probe") as f64 / decl.max(1) as f64,
        &format!("≥ L = {mean_len:.1} (mean cycle length) per round; ≤ e ≤ N(N-1) = {} per computation; periodic rounds add more", n * (n - 1.0)),
        None,
    ));
    report
        .costs
        .push(Cost::new("mean cycle length L", mean_len, "2..N", None));
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
            if r.costs[0].measured > 0.0 {
                assert!(r.costs[1].measured >= r.costs[2].measured, "{r:?}");
            }
        }
        assert!(
            real > 0,
            "no deadlock arose in 5 runs: the test shows nothing"
        );
    }

    #[test]
    fn eager_declaration_is_caught() {
        let caught = (0..10).any(|seed| {
            let mut o = LabOptions::new(5, seed);
            o.variant = Some("eager-declare".into());
            !run(&o).report.passed()
        });
        assert!(caught, "eager declaration never misfired in 10 seeds");
    }
}
