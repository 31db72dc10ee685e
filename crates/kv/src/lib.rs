//! The key-value state machine of synod, with etcd v3 semantics.
//!
//! Every replica applies the same committed [`Command`]s to a [`KvStore`] and
//! must end in the same state, so everything here is deterministic: ordered
//! maps only, no clock, no randomness. The crate knows nothing of Raft,
//! networking or disks.
//!
//! * One global revision. The store starts at revision 1; every command that
//!   writes something moves it forward by exactly one, and the writes of one
//!   command (a txn's ops, a lease revocation's deletes) share that revision
//!   with increasing sub-revisions. A delete of nothing, a read-only txn, a
//!   compaction and lease grants leave it alone.
//! * Every write is kept (deletes as tombstones) until compaction, so reads at
//!   past revisions and watch catch-up ([`KvStore::events_since`]) work.
//! * Leases: [`KvStore`] holds which keys each lease owns; expiry in time is
//!   the leader's business, tracked in ticks by a [`Lessor`].

#![deny(missing_docs)]

mod error;
mod fnv;
mod lessor;
mod mvcc;
mod snapshot;
mod store;
mod types;

pub use error::KvError;
pub use lessor::{Lessor, LessorConfig};
pub use store::{KvConfig, KvStore, LeaseInfo, MAX_LEASE_TTL};
pub use types::*;
