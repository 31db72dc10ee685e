//! Errors a command or read can end in, with etcd's exact messages and gRPC codes.

use serde::{Deserialize, Serialize};

/// Why a command or read was refused. Every variant is a verdict on the input
/// (all replicas reach the same one); none leaves partial effects behind.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum KvError {
    /// The revision asked for is older than the compaction revision.
    #[error("etcdserver: mvcc: required revision has been compacted")]
    Compacted,
    /// The revision asked for is newer than the store.
    #[error("etcdserver: mvcc: required revision is a future revision")]
    FutureRevision,
    /// No lease has this id.
    #[error("etcdserver: requested lease not found")]
    LeaseNotFound,
    /// A lease with this id already exists.
    #[error("etcdserver: lease already exists")]
    LeaseExists,
    /// The TTL is above [`crate::MAX_LEASE_TTL`].
    #[error("etcdserver: too large lease TTL")]
    LeaseTtlTooLarge,
    /// A transaction writes the same key twice on one path.
    #[error("etcdserver: duplicate key given in txn request")]
    DuplicateKey,
    /// A transaction has too many compares or operations in a branch (or nests too deep).
    #[error("etcdserver: too many operations in txn request")]
    TooManyOps,
    /// `ignore_value`/`ignore_lease` on a key that does not exist.
    #[error("etcdserver: key not found")]
    KeyNotFound,
    /// An empty key.
    #[error("etcdserver: key is not provided")]
    EmptyKey,
    /// `ignore_value` with a non-empty value.
    #[error("etcdserver: value is provided")]
    ValueProvided,
    /// `ignore_lease` with a non-zero lease.
    #[error("etcdserver: lease is provided")]
    LeaseProvided,
    /// A lease keep-alive reached a lessor that is not the leader's.
    #[error("etcdserver: not leader")]
    NotPrimary,
    /// Snapshot bytes that do not decode to a valid store.
    #[error("kv snapshot is corrupt: {0}")]
    Corrupt(String),
    /// The engine underneath failed (IO, or damaged data on disk); the store
    /// refuses every command after it.
    #[error("etcdserver: storage failure: {0}")]
    Storage(String),
}

impl KvError {
    /// The gRPC status code name etcd answers this error with.
    pub fn grpc_code(&self) -> &'static str {
        match self {
            KvError::Compacted | KvError::FutureRevision | KvError::LeaseTtlTooLarge => {
                "OutOfRange"
            }
            KvError::LeaseNotFound => "NotFound",
            KvError::LeaseExists => "FailedPrecondition",
            KvError::DuplicateKey
            | KvError::TooManyOps
            | KvError::KeyNotFound
            | KvError::EmptyKey
            | KvError::ValueProvided
            | KvError::LeaseProvided => "InvalidArgument",
            KvError::NotPrimary => "Unavailable",
            KvError::Corrupt(_) | KvError::Storage(_) => "DataLoss",
        }
    }
}
