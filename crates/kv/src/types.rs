//! The values that cross this crate's boundary: requests, responses, commands
//! and watch events, shaped after etcd's v3 `rpc.proto` and `kv.proto`.

use serde::{Deserialize, Serialize};

use crate::auth::{AuthCommand, AuthInfo, AuthResponse};

/// A point in the store's history. The store starts at revision 1 (as etcd
/// does) and every write command moves it forward by exactly one.
pub type Revision = i64;

/// A lease identifier. 0 means "no lease".
pub type LeaseId = i64;

/// One key as it stood at some revision (etcd's `mvccpb.KeyValue`).
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct KeyValue {
    /// The key.
    pub key: Vec<u8>,
    /// Revision of the put that created this generation of the key.
    pub create_revision: i64,
    /// Revision of the last write to the key.
    pub mod_revision: i64,
    /// Number of puts since the key was (re)created: 1 on create.
    pub version: i64,
    /// The value.
    pub value: Vec<u8>,
    /// The lease the key is attached to, 0 for none.
    pub lease: i64,
}

/// Order of a range's results.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum SortOrder {
    /// Key order (ascending), unless a non-key target is given, which sorts ascending.
    #[default]
    None,
    /// Ascending by the target.
    Ascend,
    /// Descending by the target.
    Descend,
}

/// Field a range is sorted by.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum SortTarget {
    /// The key.
    #[default]
    Key,
    /// The version.
    Version,
    /// The create revision.
    Create,
    /// The mod revision.
    Mod,
    /// The value.
    Value,
}

/// A read of a key or a range of keys (etcd's `RangeRequest`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangeRequest {
    /// First key of the range (or the only key).
    pub key: Vec<u8>,
    /// Empty: just `key`. `[0]`: every key `>= key`. Otherwise `[key, range_end)`.
    pub range_end: Vec<u8>,
    /// At most this many kvs; `<= 0` means no limit.
    pub limit: i64,
    /// Read at this revision; `<= 0` means the current one.
    pub revision: i64,
    /// Result order.
    pub sort_order: SortOrder,
    /// Field sorted by.
    pub sort_target: SortTarget,
    /// Return keys without values.
    pub keys_only: bool,
    /// Return only the count.
    pub count_only: bool,
    /// Keep only kvs with `mod_revision >=` this (0: no bound).
    pub min_mod_revision: i64,
    /// Keep only kvs with `mod_revision <=` this (0: no bound).
    pub max_mod_revision: i64,
    /// Keep only kvs with `create_revision >=` this (0: no bound).
    pub min_create_revision: i64,
    /// Keep only kvs with `create_revision <=` this (0: no bound).
    pub max_create_revision: i64,
}

impl RangeRequest {
    /// This read restricted to `[key, range_end)` (a piece of its span),
    /// asked so that [`merge_ranges`](crate::merge_ranges) can merge the
    /// pieces' answers: values kept when they are sorted by.
    pub fn part(&self, key: Vec<u8>, range_end: Vec<u8>) -> RangeRequest {
        RangeRequest {
            key,
            range_end,
            keys_only: self.keys_only && self.sort_target != SortTarget::Value,
            ..self.clone()
        }
    }

    /// A read of the single key `key` at the current revision.
    pub fn key(key: impl Into<Vec<u8>>) -> Self {
        RangeRequest {
            key: key.into(),
            ..Default::default()
        }
    }

    /// A read of every key starting with `prefix` at the current revision.
    pub fn prefix(prefix: impl Into<Vec<u8>>) -> Self {
        let key = prefix.into();
        let range_end = prefix_range_end(&key);
        RangeRequest {
            key,
            range_end,
            ..Default::default()
        }
    }
}

/// The `range_end` that selects every key starting with `prefix` (etcd's
/// `GetPrefixRangeEnd`): the prefix with trailing `0xff` bytes dropped and
/// its last byte incremented; `[0]` ("to the end") if nothing is left.
pub fn prefix_range_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(&last) = end.last() {
        if last < 0xff {
            *end.last_mut().expect("non-empty") = last + 1;
            return end;
        }
        end.pop();
    }
    vec![0]
}

/// The answer to a range.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangeResponse {
    /// The store's revision when the read was served (not the one read at).
    pub header_revision: i64,
    /// The kvs, after filters, sort and limit.
    pub kvs: Vec<KeyValue>,
    /// True when the limit cut the result short.
    pub more: bool,
    /// Number of keys in the range at the read revision (before filters and limit).
    pub count: i64,
}

/// A write of one key (etcd's `PutRequest`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutRequest {
    /// The key; must not be empty.
    pub key: Vec<u8>,
    /// The new value.
    pub value: Vec<u8>,
    /// Lease to attach the key to; 0 for none (detaches it from any lease).
    pub lease: i64,
    /// Return the previous kv in the response.
    pub prev_kv: bool,
    /// Keep the current value (the key must exist, `value` must be empty).
    pub ignore_value: bool,
    /// Keep the current lease (the key must exist, `lease` must be 0).
    pub ignore_lease: bool,
}

impl PutRequest {
    /// A plain put of `value` at `key`.
    pub fn new(key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Self {
        PutRequest {
            key: key.into(),
            value: value.into(),
            ..Default::default()
        }
    }
}

/// A delete of a key or a range of keys (etcd's `DeleteRangeRequest`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteRangeRequest {
    /// First key of the range (or the only key); must not be empty.
    pub key: Vec<u8>,
    /// Same rules as [`RangeRequest::range_end`].
    pub range_end: Vec<u8>,
    /// Return the deleted kvs.
    pub prev_kv: bool,
}

impl DeleteRangeRequest {
    /// A delete of the single key `key`.
    pub fn key(key: impl Into<Vec<u8>>) -> Self {
        DeleteRangeRequest {
            key: key.into(),
            ..Default::default()
        }
    }
}

/// What a [`Compare`] looks at, with the operand.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CompareTarget {
    /// The value (a missing key never matches).
    Value(Vec<u8>),
    /// The version (0 for a missing key).
    Version(i64),
    /// The create revision (0 for a missing key).
    CreateRevision(i64),
    /// The mod revision (0 for a missing key).
    ModRevision(i64),
    /// The lease (0 for a missing key).
    Lease(i64),
}

/// How the key's field must relate to the operand.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CompareResult {
    /// field == operand
    Equal,
    /// field > operand
    Greater,
    /// field < operand
    Less,
    /// field != operand
    NotEqual,
}

/// One guard of a transaction. Over a range, every key in it must satisfy it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compare {
    /// The key (or first key of the range); must not be empty.
    pub key: Vec<u8>,
    /// Same rules as [`RangeRequest::range_end`].
    pub range_end: Vec<u8>,
    /// The field and the operand.
    pub target: CompareTarget,
    /// The relation.
    pub result: CompareResult,
}

/// One operation of a transaction branch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RequestOp {
    /// A read; it sees the writes made earlier in the same transaction.
    Range(RangeRequest),
    /// A put.
    Put(PutRequest),
    /// A delete.
    DeleteRange(DeleteRangeRequest),
    /// A nested transaction.
    Txn(TxnRequest),
}

/// A transaction: if every compare holds run `success`, else `failure`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnRequest {
    /// Guards, all of which must hold.
    pub compare: Vec<Compare>,
    /// Operations run when the guards hold.
    pub success: Vec<RequestOp>,
    /// Operations run otherwise.
    pub failure: Vec<RequestOp>,
}

/// A command replicated through Raft and applied by [`crate::KvStore::apply`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Put one key.
    Put(PutRequest),
    /// Delete a key or a range.
    DeleteRange(DeleteRangeRequest),
    /// A transaction.
    Txn(TxnRequest),
    /// Drop history older than `revision` (keeping each key's state at it).
    Compact {
        /// The compaction revision.
        revision: i64,
    },
    /// Create a lease. `id` 0 lets the state machine pick one.
    LeaseGrant {
        /// Requested id, or 0.
        id: LeaseId,
        /// Time to live, in seconds.
        ttl: i64,
    },
    /// Delete a lease and every key attached to it.
    LeaseRevoke {
        /// The lease.
        id: LeaseId,
    },
    /// Record a lease's remaining time to live, so a new leader resumes from it
    /// instead of granting the full TTL again (etcd's `LeaseCheckpoint`).
    LeaseCheckpoint {
        /// The lease.
        id: LeaseId,
        /// Remaining seconds.
        remaining_ttl: i64,
    },
    /// A change to (or a question about) users, roles and permissions.
    Auth(AuthCommand),
    /// A client's command with who sent it: with authentication on, the
    /// command applies only if the user may do it (etcd's auth applier).
    /// A command not wrapped so comes from the node itself and is trusted.
    As {
        /// The user and the auth revision its token was checked at.
        info: AuthInfo,
        /// The command.
        cmd: Box<Command>,
    },
    /// Cut the range this state machine serves in two at `at` (a key
    /// strictly inside it): the keys from `at` on go to a new range,
    /// `new_range` (an id its owner chose). The owner applies it (see
    /// [`KvStore::split_images`](crate::KvStore::split_images)); the store
    /// alone refuses it. Only the node proposes it, never a client.
    SplitRange {
        /// The first key of the new range.
        at: Vec<u8>,
        /// The new range's id.
        new_range: u64,
    },
    /// The cluster's revision oracle (run by the home range's leader)
    /// reserves every revision up to `upto` before it hands any of them
    /// out, so that after a failover the next oracle starts past all it
    /// handed out. The node that hosts the range applies it; the store
    /// alone refuses it. Only the node proposes it, never a client.
    ReserveRevisions {
        /// The highest revision reserved.
        upto: i64,
    },
    /// A command that writes at `revision`, a revision its proposer drew
    /// from the cluster's revision oracle, instead of at the store's next
    /// one: once the keyspace is in several ranges, every range's writes
    /// take their revisions from one sequence. The store skips the
    /// revisions between (they belong to other ranges), and refuses the
    /// command with [`KvError::RevisionTaken`](crate::KvError::RevisionTaken),
    /// changing nothing, when `revision` is not past its own.
    At {
        /// The revision the command's writes take.
        revision: i64,
        /// The command.
        cmd: Box<Command>,
    },
}

impl Command {
    /// The command inside any [`Command::As`] and [`Command::At`] wrappers.
    pub fn inner(&self) -> &Command {
        match self {
            Command::As { cmd, .. } | Command::At { cmd, .. } => cmd.inner(),
            c => c,
        }
    }

    /// The revision a [`Command::At`] wrapper names, if the command is one.
    pub fn at_revision(&self) -> Option<i64> {
        match self {
            Command::At { revision, .. } => Some(*revision),
            _ => None,
        }
    }

    /// `cmd` as sent by `info`.
    pub fn from_user(info: AuthInfo, cmd: Command) -> Command {
        Command::As {
            info,
            cmd: Box::new(cmd),
        }
    }
}

/// The answer to a command (or, inside a transaction, to one of its operations).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// A range inside a transaction.
    Range(RangeResponse),
    /// A put.
    Put {
        /// The store's revision after the command.
        revision: i64,
        /// The previous kv, when asked for and the key existed.
        prev_kv: Option<KeyValue>,
    },
    /// A delete.
    DeleteRange {
        /// The store's revision after the command.
        revision: i64,
        /// Number of keys deleted.
        deleted: i64,
        /// The deleted kvs, when asked for.
        prev_kvs: Vec<KeyValue>,
    },
    /// A transaction.
    Txn {
        /// The store's revision after the command.
        revision: i64,
        /// Whether every compare held.
        succeeded: bool,
        /// One response per operation of the branch that ran.
        responses: Vec<Response>,
    },
    /// A compaction.
    Compact {
        /// The store's revision (unchanged by compaction).
        revision: i64,
    },
    /// A lease grant.
    LeaseGrant {
        /// The store's revision (unchanged).
        revision: i64,
        /// The lease's id (picked by the store when 0 was asked for).
        id: LeaseId,
        /// The granted time to live in seconds.
        ttl: i64,
    },
    /// A lease revocation.
    LeaseRevoke {
        /// The store's revision after deleting the lease's keys.
        revision: i64,
    },
    /// A lease checkpoint.
    LeaseCheckpoint {
        /// The store's revision (unchanged).
        revision: i64,
    },
    /// An auth command's answer.
    Auth {
        /// The store's revision (unchanged).
        revision: i64,
        /// The answer.
        resp: AuthResponse,
    },
}

impl Response {
    /// The store revision this response reports.
    pub fn revision(&self) -> i64 {
        match self {
            Response::Range(r) => r.header_revision,
            Response::Put { revision, .. }
            | Response::DeleteRange { revision, .. }
            | Response::Txn { revision, .. }
            | Response::Compact { revision }
            | Response::LeaseGrant { revision, .. }
            | Response::LeaseRevoke { revision }
            | Response::LeaseCheckpoint { revision }
            | Response::Auth { revision, .. } => *revision,
        }
    }
}

/// Kind of a watch event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    /// The key was written.
    Put,
    /// The key was deleted.
    Delete,
}

/// One change to one key (etcd's `mvccpb.Event`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Put or delete.
    pub kind: EventKind,
    /// The key after the change; for a delete only `key` and `mod_revision` are set.
    pub kv: KeyValue,
    /// The key before the change, if it existed.
    pub prev_kv: Option<KeyValue>,
}
