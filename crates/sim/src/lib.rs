//! The database in the simulator.
//!
//! A run builds a cluster of [`synod_node::Node`]s on simulated disks plus
//! workload clients on [`synod_simnet`], lets the seed pick the fault mix
//! (swarm testing) and a nemesis schedule, and watches from outside:
//! Raft's invariants after every event ([`invariants`]), the recorded client
//! history for linearizability ([`synod_check`]), and — after everything heals
//! — that the cluster answers again within a stated bound (liveness) and that
//! every acknowledged write is still there (the final reads are part of the
//! checked history).
//!
//! A failing seed prints the one command that replays it; `synod sim --out`
//! writes its history and a readable trace.

#![deny(missing_docs)]

pub mod aim;
pub mod bulk;
pub mod cli;
pub mod cluster;
pub mod invariants;
pub mod revisions;
pub mod run;

pub use run::{run, Bug, RunConfig, RunReport};
