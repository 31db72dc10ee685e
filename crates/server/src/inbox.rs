//! What reaches a member's actor through its one bounded inbox: peer
//! frames, client requests, questions for the leader and typed queries from
//! the gRPC handlers, each with where its answer goes. Its own module so
//! that the transport and the gRPC layer depend on the inbox, not on the
//! actor that drains it.

use synod_node::{Answer, Ask, ClientReply, ClientRequest, ShardId};
use tokio::sync::oneshot;

use crate::watch::Watcher;
use crate::wire::PeerMsg;

/// Capacity of the actor's inbox.
pub const INBOX: usize = 4096;
/// Something for the actor to do.
pub enum Input {
    /// A frame from a peer.
    Peer {
        /// The peer.
        from: u64,
        /// The message.
        msg: PeerMsg,
    },
    /// A client request; the reply goes to `tx`.
    Call {
        /// The request.
        req: ClientRequest,
        /// Where the reply goes.
        tx: oneshot::Sender<ClientReply>,
    },
    /// A question for the leader.
    Ask {
        /// The question.
        ask: Ask,
        /// Where the answer goes.
        tx: oneshot::Sender<Answer>,
    },
    /// A question about the node's state, or a watch to register.
    Query(Query),
    /// Stop after the sync in flight.
    Stop,
}

/// What the gRPC handlers ask of the actor, each with where its answer goes.
/// What [`Query::Snapshot`] answers: the state, its revision, the applied
/// index; or why there is none.
pub type SnapshotParts = Result<(synod_kv::StateParts, i64, u64), tonic::Status>;

/// One range as the actor sees it (for `synodpb.Ranges`).
#[derive(Debug, Clone)]
pub struct RangeRow {
    /// Its group.
    pub shard: ShardId,
    /// Its keys.
    pub range: synod_node::KeyRange,
    /// Its members: name (or id in hex, before it published one) and
    /// whether a learner.
    pub replicas: Vec<(String, bool)>,
    /// The leader's name, empty when none is known.
    pub leader: String,
    /// Live keys at the current revision.
    pub keys: u64,
    /// The current revision.
    pub revision: i64,
}

pub enum Query {
    /// Raft and store status of the home group for `Status`.
    Status(oneshot::Sender<StatusInfo>),
    /// The store's hash, revision and compacted revision.
    Hash(oneshot::Sender<(u64, i64, i64)>),
    /// The home group's state as its parts, its revision and the applied
    /// Raft index (a backup); refused when the member has several groups
    /// or its store has failed.
    Snapshot(oneshot::Sender<SnapshotParts>),
    /// The home store's defragmentations so far; with `request`, first
    /// asks for one at its next durable commit. `None`: a store in memory.
    Defragment {
        /// Ask for one.
        request: bool,
        /// The count (before the request).
        tx: oneshot::Sender<Option<u64>>,
    },
    /// Hand leadership to `target`; false when this member does not lead.
    TransferLeader {
        /// The member to lead next.
        target: u64,
        /// Whether the transfer started.
        tx: oneshot::Sender<bool>,
    },
    /// Every lease's id.
    Leases(oneshot::Sender<Vec<i64>>),
    /// Every range hosted here, in key order.
    Ranges(oneshot::Sender<Vec<RangeRow>>),
    /// A look at the home group's auth state (the closure answers
    /// through its own channel).
    Auth(Box<dyn FnOnce(&synod_kv::AuthState) + Send>),
    /// Register a watcher of one group; false when there are too many (or
    /// the group is not hosted here).
    AddWatch {
        /// The group whose range holds every key it watches.
        shard: ShardId,
        /// The gRPC stream.
        stream: u64,
        /// The watch's id on it.
        id: i64,
        /// The watcher.
        watcher: Box<Watcher>,
        /// Whether it was added.
        tx: oneshot::Sender<bool>,
    },
    /// Cancel a watch; whether it existed.
    CancelWatch {
        /// The gRPC stream.
        stream: u64,
        /// The watch's id on it.
        id: i64,
        /// Whether it existed.
        tx: oneshot::Sender<bool>,
    },
    /// The revision every watcher of a stream has caught up to.
    WatchProgress {
        /// The gRPC stream.
        stream: u64,
        /// The group its watchers watch and that group's revision, if all
        /// are synced and in one group.
        tx: oneshot::Sender<Option<(ShardId, i64)>>,
    },
    /// Who a joining member with this peer URL is: its id and every member,
    /// or why not.
    Join {
        /// The joiner's peer URL.
        url: String,
        /// The answer.
        tx: oneshot::Sender<Result<(u64, Vec<synod_node::Member>), String>>,
    },
    /// Drop every watcher of a stream (it closed).
    CancelStream {
        /// The gRPC stream.
        stream: u64,
        /// Done.
        tx: oneshot::Sender<()>,
    },
}

/// What `Status` reports.
#[derive(Clone, Copy, Debug)]
pub struct StatusInfo {
    /// The leader known here.
    pub leader: u64,
    /// The term.
    pub term: u64,
    /// Raft's commit index.
    pub commit: u64,
    /// The applied index.
    pub applied: u64,
    /// The store's revision.
    pub revision: i64,
    /// Whether this member is a learner.
    pub learner: bool,
}
