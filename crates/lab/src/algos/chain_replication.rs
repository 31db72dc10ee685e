//! Chain replication: writes enter at the head and flow down the chain,
//! the tail answers them and serves every read, so reads are linearizable.

use synod_simnet::Fault;

use crate::algos::replication_common::{self, Scheme};
use crate::registry::{Algorithm, FaultModel};
use crate::report::{LabOptions, LabRun};

/// The registry entry.
pub const ALGORITHM: Algorithm = Algorithm {
    name: "chain-replication",
    family: "replication",
    summary: "chain replication: writes down the chain, tail answers writes and reads",
    description: "Chain replication (van Renesse & Schneider 2004). P0..P(N-1) form a chain: P0 the\n\
head, P(N-1) the tail; three clients (the last lanes) each make 40 requests, half\n\
writes. The head orders a write (next version), applies it and passes it on; each\n\
replica applies and passes it on; the tail answers the client. Reads go to the tail.\n\
A write is answered only when every replica has it, and the tail holds only writes\n\
every replica has, so reads at the tail are never stale and never go back.\n\
Cost: N + 1 messages per write (request, N-1 hops, reply), 2 per read; a write takes\n\
N + 1 one-way delays, and reads load only the tail.",
    variants: &[(
        "read-any",
        "planted bug: reads served by a random replica: a read at the head may see a write the tail has not, and a later one at the tail goes back",
    )],
    default_nodes: 4,
    nodes: (2, 16),
    faults: FaultModel {
        tolerates: &[Fault::Duplicate, Fault::Reorder],
        outside: &[],
        refused: "repairing a chain after a crash needs the paper's master service, which this run does not model",
    },
    run,
};

fn run(opts: &LabOptions) -> LabRun {
    let read_any = opts.is_variant("read-any");
    replication_common::run(ALGORITHM.name, opts, Scheme::Chain { read_any }, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_reads_are_never_stale() {
        for seed in 0..6 {
            let r = run(&LabOptions::new(4, seed)).report;
            assert!(r.passed(), "{r:?}");
        }
    }

    #[test]
    fn reading_anywhere_goes_back_in_time() {
        let broke = (0..10).any(|seed| {
            let mut o = LabOptions::new(4, seed);
            o.variant = Some("read-any".into());
            !run(&o).report.checks[1].held
        });
        assert!(broke);
    }
}
