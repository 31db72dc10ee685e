//! The algorithms, one module each, and the registry that lists them.

pub mod clockwork;
pub mod commit_common;
pub mod deadlock_common;
pub mod gossip_common;
pub mod mutex_common;
pub mod replication_common;
pub mod txn_common;

use crate::registry::Algorithm;

/// Declares each algorithm module and lists its `ALGORITHM` in the registry,
/// in `synod lab list` order.
macro_rules! registry {
    ($($module:ident),* $(,)?) => {
        $(pub mod $module;)*
        /// Every algorithm, in `synod lab list` order.
        pub const ALGORITHMS: &[Algorithm] = &[$($module::ALGORITHM),*];
    };
}

registry! {
    lamport_clock,
    vector_clock,
    matrix_clock,
    hlc,
    cristian,
    berkeley,
    ntp,
    chandy_lamport,
    central_mutex,
    token_ring,
    lamport_mutex,
    ricart_agrawala,
    maekawa,
    wfg_detector,
    chandy_misra_haas,
    flooding,
    echo,
    causal_broadcast,
    anti_entropy,
    rumor_mongering,
    heartbeat,
    phi_accrual,
    swim,
    raft,
    paxos,
    multi_paxos,
    flp,
    bully,
    ring_election,
    byzantine_generals,
    pbft,
    two_phase_commit,
    three_phase_commit,
    saga,
    two_phase_locking,
    mvcc,
    consistent_hashing,
    chord,
    primary_backup,
    chain_replication,
    multi_leader,
    crdt,
    version_vectors,
    dynamo,
    rpc_semantics,
    redlock,
    kerberos,
    consistency_models,
}
