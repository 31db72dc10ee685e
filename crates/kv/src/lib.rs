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
//! * Storage: the versions live in an [`MvccEngine`]; [`Mvcc`] keeps them in
//!   memory (the simulator, tests), `synod-store` on disk (the server). The
//!   rules above are the same code over both.
//!
//! ```
//! use synod_kv::*;
//!
//! let mut kv = KvStore::new();
//! assert_eq!(kv.revision(), 1);
//! let (put, events) = kv.apply(&Command::Put(PutRequest::new("greeting", "hello")));
//! assert_eq!(put.unwrap().revision(), 2);
//! assert_eq!(events[0].kind, EventKind::Put);
//! kv.apply(&Command::Put(PutRequest::new("greeting", "bye"))).0.unwrap();
//!
//! // Reads at a past revision see the old value.
//! let old = kv.range(&RangeRequest { revision: 2, ..RangeRequest::key("greeting") }).unwrap();
//! assert_eq!(old.kvs[0].value, b"hello");
//! assert_eq!((old.kvs[0].version, old.header_revision), (1, 3));
//!
//! // Compare-and-swap as a transaction.
//! let cas = TxnRequest {
//!     compare: vec![Compare {
//!         key: b"greeting".to_vec(),
//!         range_end: vec![],
//!         target: CompareTarget::Value(b"bye".to_vec()),
//!         result: CompareResult::Equal,
//!     }],
//!     success: vec![RequestOp::Put(PutRequest::new("greeting", "again"))],
//!     failure: vec![],
//! };
//! let (r, _) = kv.apply(&Command::Txn(cas));
//! assert!(matches!(r.unwrap(), Response::Txn { succeeded: true, revision: 4, .. }));
//! ```

#![deny(missing_docs)]

mod auth;
mod engine;
mod error;
mod fnv;
mod lessor;
mod mvcc;
mod snapshot;
mod store;
mod types;

pub use auth::{
    AuthCommand, AuthImage, AuthInfo, AuthResponse, AuthState, PermKind, Permission, Role, User,
    MAX_NAME_BYTES, MAX_TOKENS, ROOT_ROLE, ROOT_USER,
};
pub use engine::{
    record_digest, span_is_empty, DynEngine, EngineError, KeySpan, MvccEngine, Record, Rev,
};
pub use error::KvError;
pub use lessor::{Lessor, LessorConfig};
pub use mvcc::Mvcc;
pub use snapshot::StateParts;
pub use store::{merge_ranges, KvConfig, KvStore, LeaseInfo, Progress, MAX_LEASE_TTL};
pub use types::*;
