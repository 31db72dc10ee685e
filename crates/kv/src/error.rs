//! Errors a command or read can end in, with etcd's exact messages and gRPC codes.

use serde::{Deserialize, Serialize};

use crate::engine::EngineError;

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
    /// refuses every command after it. The engine's error is its source.
    #[error("etcdserver: storage failure: {0}")]
    Storage(#[source] EngineError),
    /// With authentication on, a request that names no user.
    #[error("etcdserver: user name is empty")]
    UserEmpty,
    /// A user of this name exists already.
    #[error("etcdserver: user name already exists")]
    UserAlreadyExists,
    /// No user of this name.
    #[error("etcdserver: user name not found")]
    UserNotFound,
    /// An empty role name.
    #[error("etcdserver: role name is empty")]
    RoleEmpty,
    /// A role of this name exists already.
    #[error("etcdserver: role name already exists")]
    RoleAlreadyExists,
    /// No role of this name.
    #[error("etcdserver: role name not found")]
    RoleNotFound,
    /// A wrong user name or password (or a user without one).
    #[error("etcdserver: authentication failed, invalid user ID or password")]
    AuthFailed,
    /// The user's roles do not allow it.
    #[error("etcdserver: permission denied")]
    PermissionDenied,
    /// Revoking a role the user does not hold.
    #[error("etcdserver: role is not granted to the user")]
    RoleNotGranted,
    /// Revoking a permission the role does not hold.
    #[error("etcdserver: permission is not granted to the role")]
    PermissionNotGranted,
    /// Authenticating while authentication is off.
    #[error("etcdserver: authentication is not enabled")]
    AuthNotEnabled,
    /// Deleting the root user or role, or taking the root role from root,
    /// while authentication is on.
    #[error("etcdserver: invalid auth management")]
    InvalidAuthMgmt,
    /// The request's token was checked at an older auth revision.
    #[error("etcdserver: revision of auth store is old")]
    AuthOldRevision,
    /// `auth enable` with no root user.
    #[error("etcdserver: root user does not exist")]
    RootUserNotExist,
    /// `auth enable` with a root user lacking the root role.
    #[error("etcdserver: root user does not have root role")]
    RootRoleNotExist,
    /// A name, hash or count beyond synod's limits.
    #[error("synod: auth limit: {0}")]
    AuthLimit(String),
    /// A range split that cannot be made here (a split is the node's
    /// command; the store alone, or a cut a lease straddles, refuses it).
    #[error("synod: range split refused: {0}")]
    SplitRefused(String),
    /// A [`Command::At`](crate::Command::At) named a revision the store is
    /// already at or past (drawn by a leader that has since been deposed,
    /// or proposed before its range split): it took no effect; its
    /// proposer draws a new revision and proposes it again.
    #[error("synod: revision {revision} is not past the range's revision {current}")]
    RevisionTaken {
        /// The revision named.
        revision: i64,
        /// The store's revision.
        current: i64,
    },
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
            KvError::SplitRefused(_) => "FailedPrecondition",
            KvError::RevisionTaken { .. } => "Unavailable",
            KvError::Corrupt(_) | KvError::Storage(_) => "DataLoss",
            KvError::UserEmpty
            | KvError::RoleEmpty
            | KvError::AuthFailed
            | KvError::InvalidAuthMgmt
            | KvError::AuthOldRevision
            | KvError::AuthLimit(_) => "InvalidArgument",
            KvError::UserAlreadyExists
            | KvError::UserNotFound
            | KvError::RoleAlreadyExists
            | KvError::RoleNotFound
            | KvError::RoleNotGranted
            | KvError::PermissionNotGranted
            | KvError::AuthNotEnabled
            | KvError::RootUserNotExist
            | KvError::RootRoleNotExist => "FailedPrecondition",
            KvError::PermissionDenied => "PermissionDenied",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    /// An engine's own error over an IO error, as a disk engine has them.
    #[derive(Debug, thiserror::Error)]
    #[error("store f.redb: {source}")]
    struct DiskEngineError {
        source: std::io::Error,
    }

    fn failed() -> KvError {
        let io = std::io::Error::other("disk on fire");
        KvError::Storage(EngineError::new(DiskEngineError { source: io }))
    }

    #[test]
    fn a_storage_error_keeps_the_engines_error_as_its_source_and_its_message() {
        let e = failed();
        assert_eq!(
            e.to_string(),
            "etcdserver: storage failure: store f.redb: disk on fire"
        );
        assert_eq!(e.grpc_code(), "DataLoss");
        let engine = e.source().expect("the engine's error");
        let KvError::Storage(inner) = &e else {
            unreachable!()
        };
        assert!(inner.downcast_ref::<DiskEngineError>().is_some());
        // Down the chain to the IO error, each link once.
        let io = engine.source().expect("the IO error under the engine's");
        assert!(io.downcast_ref::<std::io::Error>().is_some());
        assert_eq!(io.to_string(), "disk on fire");
    }

    #[test]
    fn a_storage_error_travels_as_its_text_exactly_as_the_string_it_replaced() {
        let e = failed();
        let bytes = postcard::to_allocvec(&e).unwrap();
        // Variant 13 (Storage), then the text as a string.
        let mut want = vec![13u8];
        want.extend(postcard::to_allocvec("store f.redb: disk on fire").unwrap());
        assert_eq!(bytes, want);
        let back: KvError = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back, e, "equal by message");
        assert!(back.source().is_some_and(|s| s.source().is_none()));
        let KvError::Storage(inner) = back else {
            unreachable!()
        };
        assert!(inner.get_ref().is_none(), "only the text crossed the wire");
    }
}
