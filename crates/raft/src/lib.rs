//! Raft consensus for one group, as a deterministic sans-IO state machine.
//!
//! The owner feeds a [`Raft`] ticks ([`Raft::tick`]), peer messages
//! ([`Raft::step`]), proposals and reads, then collects a [`Ready`]: what to
//! persist, what to send (only after persisting), what to apply. Nothing here
//! performs IO, reads a clock or uses OS randomness; the election jitter comes
//! from an RNG seeded by [`Config::seed`].
//!
//! Decisions documented once:
//! - **Persisting rule.** Every message of a Ready may leave only after that
//!   Ready's snapshot, entries and hard state are durable. The leader counts
//!   its own log towards a quorum only up to what [`Raft::advance`] reported durable.
//! - **Membership.** A configuration change takes effect on each member when
//!   its entry is applied, i.e. when [`Raft::advance`] acknowledges the Ready
//!   that handed it out (as etcd does). One change may be pending at a time.
//! - **Bootstrap.** [`Init::Bootstrap`] with voters writes the initial
//!   configuration as entry 1 (term 1, committed, a `ConfChange`); it comes
//!   out in the first Ready like any entry. A member joining an existing group
//!   bootstraps with no voters and learns the configuration from the leader.
#![deny(missing_docs)]

mod confchange;
mod log;
mod raft;
mod tracker;
mod types;

pub use raft::{
    Raft, Ready, ReadyToken, MAX_ENTRIES_PER_MSG, MAX_PENDING_READS, MAX_SNAPSHOT_BYTES,
    MAX_TERM_OR_INDEX,
};
pub use tracker::ProgressState;
pub use types::*;
