//! Primary-backup replication with a failover: the primary answers a write
//! only after every backup has it, so a backup promoted after the primary
//! crashes has every acknowledged write.

use synod_simnet::Fault;

use crate::algos::replication_common::{self, Scheme};
use crate::registry::{Algorithm, FaultModel};
use crate::report::{LabOptions, LabRun};

/// The registry entry.
pub const ALGORITHM: Algorithm = Algorithm {
    name: "primary-backup",
    family: "replication",
    summary: "primary-backup: synchronous updates to every backup; a failover loses no acknowledged write",
    description: "Primary-backup (passive) replication (Alsberg & Day 1976; Budhiraja et al. 1993).\n\
P0..P(N-1) replicate one register; P0 is the primary; three clients (the last lanes)\n\
each make 40 requests, half writes. The primary orders a write (next version),\n\
applies it, sends Update to every backup and answers the client once all have\n\
acknowledged; reads are answered by the primary. At 150 ms, mid-workload, P0 crashes and\n\
a configuration service (not modelled) makes P1 the primary; clients resend\n\
unanswered requests after 100 ms.\n\
Guarantee: every acknowledged write is on every backup, so after the failover no read\n\
is older than an acknowledged write, and reads never go back.\n\
Cost: 2N messages per write (request, N-1 updates, N-1 acks, reply), 2 per read; a\n\
write waits for the slowest backup.",
    variants: &[(
        "async",
        "planted bug: the primary answers at once and ships updates every 60 ms: a failover loses acknowledged writes",
    )],
    default_nodes: 3,
    nodes: (2, 16),
    faults: FaultModel {
        tolerates: &[Fault::Duplicate, Fault::Reorder],
        outside: &[],
        refused: "failover here is scripted (P0 crashes, P1 takes over); loss, partitions and further crashes need a failure detector and a membership service that this run does not model",
    },
    run,
};

fn run(opts: &LabOptions) -> LabRun {
    let sync = !opts.is_variant("async");
    replication_common::run(ALGORITHM.name, opts, Scheme::PrimaryBackup { sync }, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failover_keeps_every_acknowledged_write() {
        for seed in 0..6 {
            let r = run(&LabOptions::new(3, seed)).report;
            assert!(r.passed(), "{r:?}");
        }
    }

    #[test]
    fn asynchronous_primary_loses_writes_on_failover() {
        let broke = (0..10).any(|seed| {
            let mut o = LabOptions::new(3, seed);
            o.variant = Some("async".into());
            !run(&o).report.checks[3].held
        });
        assert!(broke);
    }
}
