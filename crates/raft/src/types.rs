//! The values Raft exchanges with its owner and its peers: configuration,
//! log entries, persistent state, snapshots, messages and errors.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

/// A node's identity inside one group. `0` means "none".
pub type NodeId = u64;

/// The "no node" id.
pub const NONE: NodeId = 0;

/// How linearizable reads are confirmed by the leader.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum ReadOnlyOption {
    /// ReadIndex confirmed by a heartbeat round with a quorum (thesis §6.4).
    #[default]
    Safe,
    /// The leader answers from its lease without a round (thesis §6.4.1).
    /// Relies on bounded clock drift and on `check_quorum`.
    LeaseBased,
}

/// Deliberate protocol bugs, so that invariant checkers can be shown to fail.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PlantedBug {
    /// Grant votes without the up-to-date log check (breaks Raft §5.4.1).
    VoteWithoutLogCheck,
    /// Commit any entry stored on a majority, whatever its term (breaks Raft §5.4.2, figure 8).
    CommitOldTermByCounting,
}

/// Configuration of one Raft group member.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    /// This node's id (non-zero).
    pub id: NodeId,
    /// Base election timeout in ticks; the real one is drawn in `[election_tick, 2*election_tick)`.
    pub election_tick: u32,
    /// Leader heartbeat interval in ticks (must be below `election_tick`).
    pub heartbeat_tick: u32,
    /// Maximum number of append messages in flight to one follower.
    pub max_inflight_msgs: usize,
    /// Maximum entry payload bytes in one append message (one entry always fits).
    pub max_msg_bytes: u64,
    /// Proposals are refused while the leader's uncommitted payload exceeds this.
    pub max_uncommitted_bytes: u64,
    /// Run a pre-vote round before a real election (thesis §9.6).
    pub pre_vote: bool,
    /// The leader steps down when it has not heard from a quorum in an election timeout.
    pub check_quorum: bool,
    /// How reads are confirmed.
    pub read_only: ReadOnlyOption,
    /// Clock-drift bound (ticks) subtracted from the leader lease.
    pub lease_drift_ticks: u32,
    /// Size of one snapshot chunk sent to a lagging follower.
    pub snapshot_chunk_bytes: u64,
    /// Seed of this member's election-jitter RNG.
    pub seed: u64,
    /// The highest index the owner has already applied (on restart); 0 = the snapshot's index.
    pub applied: u64,
    /// Hold a snapshot image only while a transfer uses it: Raft keeps the
    /// snapshot's index, term and configuration, drops the image once no
    /// follower is being sent it, and asks for a fresh one through
    /// [`Ready::snapshot_wanted`](crate::Ready::snapshot_wanted) when a
    /// follower needs a snapshot and none is held.
    pub lazy_snapshot_data: bool,
    /// Test-only deliberate bug.
    #[doc(hidden)]
    pub planted_bug: Option<PlantedBug>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            id: 1,
            election_tick: 10,
            heartbeat_tick: 1,
            max_inflight_msgs: 64,
            max_msg_bytes: 1 << 20,
            max_uncommitted_bytes: 64 << 20,
            pre_vote: true,
            check_quorum: true,
            read_only: ReadOnlyOption::Safe,
            lease_drift_ticks: 2,
            snapshot_chunk_bytes: 256 << 10,
            seed: 0,
            applied: 0,
            lazy_snapshot_data: false,
            planted_bug: None,
        }
    }
}

/// What an entry carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EntryKind {
    /// Application data (empty data: the leader's no-op of a new term).
    Normal,
    /// An encoded [`ConfChange`].
    ConfChange,
}

/// One log entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Term of the leader that created it.
    pub term: u64,
    /// Position in the log (from 1).
    pub index: u64,
    /// Kind of payload.
    pub kind: EntryKind,
    /// Payload.
    pub data: Vec<u8>,
}

impl Entry {
    /// Bytes counted against message and uncommitted-size limits.
    pub fn size(&self) -> u64 {
        self.data.len() as u64 + 16
    }
}

/// The state that must be durable before any message of the same Ready is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct HardState {
    /// Current term.
    pub term: u64,
    /// Vote cast in `term` (0 = none).
    pub vote: NodeId,
    /// Highest index known committed.
    pub commit: u64,
}

/// A group configuration. Non-empty `voters_outgoing` means joint consensus.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ConfState {
    /// Voters (of the incoming configuration when joint).
    pub voters: BTreeSet<NodeId>,
    /// Learners: receive the log, never vote or count.
    pub learners: BTreeSet<NodeId>,
    /// Voters of the outgoing configuration while joint.
    pub voters_outgoing: BTreeSet<NodeId>,
    /// Voters being demoted: learners once the joint state is left.
    pub learners_next: BTreeSet<NodeId>,
    /// Leave the joint configuration automatically once it is applied.
    pub auto_leave: bool,
}

impl ConfState {
    /// Whether this is a joint configuration.
    pub fn is_joint(&self) -> bool {
        !self.voters_outgoing.is_empty()
    }
    /// Whether `id` votes in either half.
    pub fn is_voter(&self, id: NodeId) -> bool {
        self.voters.contains(&id) || self.voters_outgoing.contains(&id)
    }
    /// The configuration that results from applying `cc`, or why Raft will
    /// not apply it (such a change is a no-op on every member).
    pub fn apply_change(&self, cc: &ConfChange) -> Result<ConfState, &'static str> {
        crate::confchange::next_conf(self, cc)
    }
    /// Every member: voters of both halves and learners.
    pub fn members(&self) -> BTreeSet<NodeId> {
        let mut all = self.voters.clone();
        all.extend(self.voters_outgoing.iter().copied());
        all.extend(self.learners.iter().copied());
        all.extend(self.learners_next.iter().copied());
        all
    }
}

/// Describes a snapshot: the last index and term it covers and the configuration then.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct SnapshotMeta {
    /// Last index included.
    pub index: u64,
    /// Term of that entry.
    pub term: u64,
    /// Configuration as of `index`.
    pub conf_state: ConfState,
}

/// A snapshot: metadata plus the application's state image.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Snapshot {
    /// What it covers.
    pub meta: SnapshotMeta,
    /// The application's state image (opaque to Raft).
    pub data: Vec<u8>,
}

/// One change of membership.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConfChangeSingle {
    /// Make `id` a voter (promotes a learner).
    AddVoter(NodeId),
    /// Make `id` a learner (demotes a voter).
    AddLearner(NodeId),
    /// Remove `id` entirely.
    Remove(NodeId),
}

/// How a membership change is carried out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum ConfChangeTransition {
    /// A single voter change goes directly; several go through joint
    /// consensus, left automatically.
    #[default]
    Auto,
    /// Enter joint consensus and leave it automatically.
    JointImplicit,
    /// Enter joint consensus; the owner leaves it by proposing an empty change.
    JointExplicit,
}

/// A membership change. An empty `changes` list leaves the joint configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ConfChange {
    /// The changes, applied in order.
    pub changes: Vec<ConfChangeSingle>,
    /// How to carry them out.
    pub transition: ConfChangeTransition,
}

/// Largest number of single changes in one [`ConfChange`].
pub const MAX_CONF_CHANGES: usize = 64;
/// Largest owner context carried by a configuration-change entry.
pub const MAX_CONF_CONTEXT: usize = 64 << 10;

impl ConfChange {
    /// Compact binary encoding stored in the entry's data.
    /// Panics beyond [`MAX_CONF_CHANGES`] changes (proposals are checked before this).
    pub fn encode(&self) -> Vec<u8> {
        self.encode_with_context(&[])
    }

    /// [`ConfChange::encode`] followed by an opaque context of the owner's
    /// (etcd puts the member's attributes there); an empty context encodes
    /// exactly as [`ConfChange::encode`]. Raft ignores the context.
    /// Panics beyond [`MAX_CONF_CHANGES`] changes or [`MAX_CONF_CONTEXT`] bytes.
    pub fn encode_with_context(&self, context: &[u8]) -> Vec<u8> {
        assert!(
            self.changes.len() <= MAX_CONF_CHANGES,
            "too many changes to encode"
        );
        assert!(
            context.len() <= MAX_CONF_CONTEXT,
            "conf change context too large"
        );
        let mut out = Vec::with_capacity(2 + 9 * self.changes.len());
        out.push(match self.transition {
            ConfChangeTransition::Auto => 0,
            ConfChangeTransition::JointImplicit => 1,
            ConfChangeTransition::JointExplicit => 2,
        });
        out.push(self.changes.len() as u8);
        for c in &self.changes {
            let (tag, id) = match *c {
                ConfChangeSingle::AddVoter(id) => (0u8, id),
                ConfChangeSingle::AddLearner(id) => (1, id),
                ConfChangeSingle::Remove(id) => (2, id),
            };
            out.push(tag);
            out.extend_from_slice(&id.to_be_bytes());
        }
        if !context.is_empty() {
            out.extend_from_slice(&(context.len() as u32).to_be_bytes());
            out.extend_from_slice(context);
        }
        out
    }

    /// Decodes [`ConfChange::encode`]'s (or [`ConfChange::encode_with_context`]'s) output.
    pub fn decode(data: &[u8]) -> Result<ConfChange, StepError> {
        Self::decode_with_context(data).map(|(cc, _)| cc)
    }

    /// Decodes [`ConfChange::encode_with_context`]'s output: the change and its context.
    pub fn decode_with_context(data: &[u8]) -> Result<(ConfChange, &[u8]), StepError> {
        let bad = StepError::Malformed("conf change encoding");
        if data.len() < 2 {
            return Err(bad);
        }
        let transition = match data[0] {
            0 => ConfChangeTransition::Auto,
            1 => ConfChangeTransition::JointImplicit,
            2 => ConfChangeTransition::JointExplicit,
            _ => return Err(bad),
        };
        let n = data[1] as usize;
        if n > MAX_CONF_CHANGES || data.len() < 2 + 9 * n {
            return Err(bad);
        }
        let (body, rest) = data.split_at(2 + 9 * n);
        let context = match rest.len() {
            0 => rest,
            1..=4 => return Err(bad),
            _ => {
                let mut len = [0u8; 4];
                len.copy_from_slice(&rest[..4]);
                let len = u32::from_be_bytes(len) as usize;
                if len == 0 || len > MAX_CONF_CONTEXT || rest.len() != 4 + len {
                    return Err(bad);
                }
                &rest[4..]
            }
        };
        let mut changes = Vec::with_capacity(n);
        for chunk in body[2..].chunks_exact(9) {
            let mut id = [0u8; 8];
            id.copy_from_slice(&chunk[1..]);
            let id = u64::from_be_bytes(id);
            changes.push(match chunk[0] {
                0 => ConfChangeSingle::AddVoter(id),
                1 => ConfChangeSingle::AddLearner(id),
                2 => ConfChangeSingle::Remove(id),
                _ => return Err(bad),
            });
        }
        Ok((
            ConfChange {
                changes,
                transition,
            },
            context,
        ))
    }
}

/// A message between members of one group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Sender.
    pub from: NodeId,
    /// Recipient.
    pub to: NodeId,
    /// Sender's term (for a granted pre-vote: the term the candidate will campaign in).
    pub term: u64,
    /// What it says.
    pub body: MessageBody,
}

/// The kinds of message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MessageBody {
    /// AppendEntries (Raft §5.3): `entries` follow (`index`, `log_term`).
    Append {
        /// Index of the entry just before `entries`.
        index: u64,
        /// Term of that entry.
        log_term: u64,
        /// New entries (may be empty: a probe).
        entries: Vec<Entry>,
        /// Leader's commit index.
        commit: u64,
    },
    /// Answer to `Append` (and to a completed snapshot).
    AppendResponse {
        /// On success the last index now matching; on reject the rejected `index`.
        index: u64,
        /// The consistency check failed.
        reject: bool,
        /// On reject: a guess of the last index that may match (fast backtracking).
        reject_hint: u64,
        /// On reject: the follower's term at `reject_hint`.
        hint_term: u64,
    },
    /// RequestVote (Raft §5.2).
    Vote {
        /// Candidate's last log index.
        last_index: u64,
        /// Candidate's last log term.
        last_term: u64,
        /// Sent because of a leadership transfer: bypasses leader stickiness.
        transfer: bool,
    },
    /// Answer to `Vote`.
    VoteResponse {
        /// Vote refused.
        reject: bool,
    },
    /// Pre-vote (thesis §9.6): "would you vote for me in `term`?"; changes nothing.
    PreVote {
        /// Candidate's last log index.
        last_index: u64,
        /// Candidate's last log term.
        last_term: u64,
    },
    /// Answer to `PreVote`.
    PreVoteResponse {
        /// Refused.
        reject: bool,
    },
    /// Leader heartbeat; `ctx` numbers the round for ReadIndex confirmation.
    Heartbeat {
        /// min(leader commit, follower's match).
        commit: u64,
        /// Read round number.
        ctx: u64,
    },
    /// Answer to `Heartbeat`, echoing its round.
    HeartbeatResponse {
        /// The round acknowledged.
        ctx: u64,
    },
    /// One chunk of a snapshot (Raft §7, sent in pieces).
    SnapshotChunk {
        /// The snapshot being sent.
        meta: SnapshotMeta,
        /// Byte offset of `data` within the snapshot's data.
        offset: u64,
        /// The bytes.
        data: Vec<u8>,
        /// This is the last chunk.
        done: bool,
    },
    /// Answer to a chunk: the offset the follower expects next.
    SnapshotResponse {
        /// Snapshot index the follower is assembling.
        index: u64,
        /// Next offset it expects.
        next_offset: u64,
    },
    /// Start an election now (leadership transfer, thesis §3.10).
    TimeoutNow,
    /// A follower forwards a read to the leader.
    ReadIndex {
        /// The requester's context.
        ctx: u64,
    },
    /// The leader's answer to `ReadIndex`.
    ReadIndexResponse {
        /// The requester's context.
        ctx: u64,
        /// The read index, or `None` when refused.
        index: Option<u64>,
    },
}

impl MessageBody {
    /// Short name, for traces.
    pub fn name(&self) -> &'static str {
        match self {
            MessageBody::Append { .. } => "Append",
            MessageBody::AppendResponse { .. } => "AppendResponse",
            MessageBody::Vote { .. } => "Vote",
            MessageBody::VoteResponse { .. } => "VoteResponse",
            MessageBody::PreVote { .. } => "PreVote",
            MessageBody::PreVoteResponse { .. } => "PreVoteResponse",
            MessageBody::Heartbeat { .. } => "Heartbeat",
            MessageBody::HeartbeatResponse { .. } => "HeartbeatResponse",
            MessageBody::SnapshotChunk { .. } => "SnapshotChunk",
            MessageBody::SnapshotResponse { .. } => "SnapshotResponse",
            MessageBody::TimeoutNow => "TimeoutNow",
            MessageBody::ReadIndex { .. } => "ReadIndex",
            MessageBody::ReadIndexResponse { .. } => "ReadIndexResponse",
        }
    }
}

/// A read that may be served once the owner has applied up to `index`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadState {
    /// The context given to `read_index`.
    pub ctx: u64,
    /// Serve the read once applied index >= this.
    pub index: u64,
}

/// A member's role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    /// Follows a leader (learners too).
    Follower,
    /// Runs a pre-vote round.
    PreCandidate,
    /// Runs an election.
    Candidate,
    /// Leads.
    Leader,
}

/// How a Raft starts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Init {
    /// A brand-new member. With voters, the configuration becomes entry 1
    /// (term 1, committed). A member joining a running group passes empty lists.
    Bootstrap {
        /// Initial voters.
        voters: Vec<NodeId>,
        /// Initial learners.
        learners: Vec<NodeId>,
    },
    /// A restart from what the owner persisted.
    Restore {
        /// Last persisted hard state.
        hard_state: HardState,
        /// Last persisted snapshot's metadata, if any.
        snapshot: Option<SnapshotMeta>,
        /// Persisted entries after the snapshot, contiguous.
        entries: Vec<Entry>,
    },
}

/// Invalid configuration or initial state.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A limit or id is out of range.
    #[error("invalid config: {0}")]
    Invalid(&'static str),
    /// The restored state is inconsistent.
    #[error("inconsistent restored state: {0}")]
    BadRestore(&'static str),
}

/// A message that was not acted upon.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StepError {
    /// The message is from an older term (answered if useful, otherwise dropped).
    #[error("stale message: term {msg_term} < {term}")]
    StaleTerm {
        /// The message's term.
        msg_term: u64,
        /// Ours.
        term: u64,
    },
    /// Not addressed to us, or from ourselves.
    #[error("misaddressed message from {from} to {to}")]
    Misaddressed {
        /// Sender.
        from: NodeId,
        /// Recipient.
        to: NodeId,
    },
    /// A response from a node we do not track.
    #[error("message from unknown peer {0}")]
    UnknownPeer(NodeId),
    /// The message does not fit our role (e.g. a response to a request we did not make).
    #[error("unexpected {0} in this role")]
    Unexpected(&'static str),
    /// The message is internally inconsistent.
    #[error("malformed message: {0}")]
    Malformed(&'static str),
}

/// A refused proposal.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProposeError {
    /// Only the leader accepts proposals; `leader` is our best guess (0 = unknown).
    #[error("not leader (leader is {leader})")]
    NotLeader {
        /// Known leader or 0.
        leader: NodeId,
    },
    /// Uncommitted payload is over `max_uncommitted_bytes`.
    #[error("too many uncommitted bytes")]
    TooManyUncommitted,
    /// A leadership transfer is in progress.
    #[error("leadership transfer in progress")]
    TransferInProgress,
    /// A membership change is still unapplied.
    #[error("a configuration change is pending")]
    ConfChangePending,
    /// The change is not allowed from the current configuration.
    #[error("invalid configuration change: {0}")]
    InvalidConfChange(&'static str),
}

/// A refused read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// No leader is known to forward to.
    #[error("no leader")]
    NoLeader,
    /// Too many reads are waiting.
    #[error("too many pending reads")]
    TooManyPending,
    /// A leadership transfer is in progress.
    #[error("leadership transfer in progress")]
    TransferInProgress,
}

/// Invalid use of [`crate::Raft::compact`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CompactError {
    /// The snapshot is beyond what was applied.
    #[error("snapshot index {index} beyond applied {applied}")]
    NotApplied {
        /// Snapshot index.
        index: u64,
        /// Applied index.
        applied: u64,
    },
    /// Older than the current snapshot.
    #[error("snapshot index {0} older than current")]
    Stale(u64),
    /// Term does not match the log.
    #[error("snapshot term does not match the log")]
    TermMismatch,
    /// Compaction without an image needs `Config::lazy_snapshot_data`.
    #[error("compaction without an image needs lazy snapshot data")]
    NoImage,
    /// The configuration is not the one in force at the snapshot's index.
    #[error("snapshot configuration is not the one in force at its index")]
    ConfMismatch,
}
