//! Raft consensus for one group, as a deterministic sans-IO state machine.
//!
//! The owner feeds a [`Raft`] ticks ([`Raft::tick`]), peer messages
//! ([`Raft::step`]), proposals and reads, then collects a [`Ready`]: what to
//! persist, what to send (only after persisting), what to apply. Nothing here
//! performs IO, reads a clock or uses OS randomness; the election jitter comes
//! from an RNG seeded by [`Config::seed`].
//!
//! ```
//! use synod_raft::{Config, Init, Raft};
//!
//! let mut raft = Raft::new(
//!     Config { id: 1, ..Config::default() },
//!     Init::Bootstrap { voters: vec![1], learners: vec![] },
//! )
//! .unwrap();
//! raft.campaign(); // a single voter wins at once
//! let index = raft.propose(b"hello".to_vec()).unwrap();
//! let mut applied = Vec::new();
//! while raft.has_ready() {
//!     let rd = raft.ready();
//!     // 1. persist rd.snapshot, rd.entries, rd.hard_state (durably)
//!     // 2. send rd.messages
//!     // 3. apply rd.snapshot and rd.committed_entries, serve rd.read_states
//!     applied.extend(rd.committed_entries.iter().map(|e| e.index));
//!     raft.advance(rd.token);
//! }
//! assert!(applied.contains(&index));
//! ```
//!
//! Decisions documented once:
//! - **Persisting rule.** Every message of a Ready may leave only after that
//!   Ready's snapshot, entries and hard state are durable. The leader counts
//!   its own log towards a quorum only up to what [`Raft::advance`] reported
//!   durable. Call `ready` again only after `advance`; `has_ready` is false in
//!   between.
//! - **Membership.** A configuration change takes effect on each member when
//!   its entry is applied, i.e. when [`Raft::advance`] acknowledges the Ready
//!   that handed it out (as etcd does). One change may be pending at a time; a
//!   joint configuration with `auto_leave` is left by the leader on its own.
//!   A removed or demoted leader steps down when the change is applied.
//! - **Bootstrap.** [`Init::Bootstrap`] with voters writes the initial
//!   configuration as entry 1 (term 1, committed, a `ConfChange`); it comes
//!   out in the first Ready like any entry. A member joining an existing group
//!   bootstraps with no voters and learns the configuration from the leader.
//! - **Restart.** [`Init::Restore`] takes what was persisted; [`Config::applied`]
//!   says how far the application got (0 = the snapshot). To let a restarted
//!   leader send its snapshot to lagging followers, hand it the snapshot data
//!   again with [`Raft::compact`].
//! - **Reads.** [`Raft::read_index`] answers through [`Ready::read_states`];
//!   reads pending when leadership changes are dropped (the owner retries).
//!   Lease-based reads assume clocks drift by at most
//!   [`Config::lease_drift_ticks`] per election timeout.
//! - **Errors.** A peer's stale or malformed message is a [`StepError`]; a
//!   broken internal invariant (or misuse such as two `ready` calls without
//!   `advance`) is an `assert!` failure.
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
