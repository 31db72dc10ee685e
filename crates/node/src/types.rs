//! The values a node exchanges with its driver: envelopes between nodes,
//! client requests and replies, and what must be persisted.

use serde::{Deserialize, Serialize};
use synod_kv::{AuthInfo, Command, KvError, RangeRequest, RangeResponse, Response};
use synod_raft::{Entry, HardState, Message, NodeId, Snapshot};

use crate::members::{Member, MemberError, MemberOp};

/// Identifies a Raft group: one shard of the keyspace.
pub type ShardId = u64;

/// A Raft message addressed to a (shard, node) pair.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// The group the message belongs to.
    pub shard: ShardId,
    /// The message; `msg.to` is the destination node.
    pub msg: Message,
}

/// What a client asks of the database.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientOp {
    /// A command replicated through the log (put, delete, txn, compact, lease grant/revoke).
    Write(Command),
    /// A read of the key-value state.
    Range {
        /// What to read.
        req: RangeRequest,
        /// Serve from local state without confirming leadership (may be stale).
        serializable: bool,
        /// Who reads, checked against the permissions when the read is
        /// served; `None`: the node itself or a trusted driver.
        auth: Option<AuthInfo>,
    },
    /// One range's piece of a read over several ranges (or at a revision
    /// given), at the cluster revision `req.revision` the reader drew from
    /// the revision oracle: served by the range's leader once every write of
    /// the range numbered up to it applied, and no write it proposes later
    /// takes a revision at or below it. The host sends these; clients send
    /// [`ClientOp::Range`].
    ReadAt {
        /// The piece, `revision` the cluster revision.
        req: RangeRequest,
        /// Who reads (checked where it is served).
        auth: Option<AuthInfo>,
    },
    /// One range's part of a compaction of every range (the host sends
    /// these; clients send `Write(Command::Compact)`): compact the range
    /// that holds `key` at the cluster revision `revision`.
    CompactRange {
        /// A key of the range.
        key: Vec<u8>,
        /// The compaction revision.
        revision: i64,
    },
    /// Renew a lease (served by the leader alone, not replicated, as in etcd).
    LeaseKeepAlive {
        /// The lease.
        id: i64,
    },
    /// A membership change (leader only; answered once the change is applied).
    Member(MemberOp),
}

/// A client request. `(client, seq)` names it for exactly-once application:
/// a retry carries the same pair and is applied at most once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientRequest {
    /// The client's session id (non-zero).
    pub client: u64,
    /// The request's sequence number within the session, increasing.
    pub seq: u64,
    /// What to do.
    pub op: ClientOp,
}

/// A successful outcome.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientResponse {
    /// The outcome of a replicated command.
    Write(Response),
    /// The outcome of a read.
    Range(RangeResponse),
    /// A renewed lease and its TTL in seconds.
    LeaseKeepAlive {
        /// The lease.
        id: i64,
        /// Its TTL.
        ttl: i64,
    },
    /// A membership change was applied.
    Member {
        /// The member it concerns (for an add: the new member's id).
        id: NodeId,
        /// Every member once it was applied.
        members: Vec<Member>,
    },
}

/// Why a request failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ClientError {
    /// This node cannot serve the request; `leader` is its best guess (0 = unknown).
    /// The request certainly did not and will not take effect through this node.
    #[error("not leader (leader hint {leader})")]
    NotLeader {
        /// The leader this node knows of, or 0.
        leader: NodeId,
    },
    /// Too much work is pending; retry later. The request was not taken.
    #[error("server busy")]
    Busy,
    /// The key-value state machine refused the command.
    #[error("{0}")]
    Kv(KvError),
    /// The request's sequence number is older than the session's latest.
    #[error("stale request: seq {seq} < session's {latest}")]
    StaleSequence {
        /// The request's seq.
        seq: u64,
        /// The session's latest applied seq.
        latest: u64,
    },
    /// The membership change was refused (etcd's rules).
    #[error("{0}")]
    Member(MemberError),
    /// The request is malformed (for example client id 0).
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The request touches keys of several groups; it is refused whole
    /// (a transaction across groups is not atomic here).
    #[error("the request spans several key ranges")]
    CrossShard,
    /// No group hosted here serves this key.
    #[error("no range hosted here holds key {key:?}")]
    WrongShard {
        /// The key.
        key: Vec<u8>,
    },
    /// A write in a range of a split keyspace reached the log without a
    /// revision from the revision oracle, or with one its range had passed
    /// (proposed before a split, or by a deposed leader): it took no effect;
    /// propose it again.
    #[error("the write's revision was taken; it took no effect")]
    RevisionTaken,
}

/// The answer to a [`ClientRequest`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientReply {
    /// Echoes the request's client.
    pub client: u64,
    /// Echoes the request's seq.
    pub seq: u64,
    /// The outcome.
    pub result: Result<ClientResponse, ClientError>,
}

/// What one group needs persisted before the messages of the same [`crate::Ready`] leave.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Persist {
    /// The group.
    pub shard: ShardId,
    /// New hard state, if it changed.
    pub hard_state: Option<HardState>,
    /// Entries to append; the first may overwrite a suffix of what is stored.
    pub entries: Vec<Entry>,
    /// A snapshot to store (received from a leader, or taken locally by compaction).
    pub snapshot: Option<Snapshot>,
}

impl Persist {
    /// Whether there is nothing to persist.
    pub fn is_empty(&self) -> bool {
        self.hard_state.is_none() && self.entries.is_empty() && self.snapshot.is_none()
    }
}
