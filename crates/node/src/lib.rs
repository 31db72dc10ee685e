//! One synod node as a sans-IO state machine.
//!
//! A [`Node`] hosts a set of Raft groups keyed by [`ShardId`]; each group
//! drives a replicated [`StateMachine`] (the etcd-semantics key-value store
//! plus client sessions). Today one shard covers the whole keyspace; routing
//! goes through [`Node::shard_for`], so sharding is an addition, not a rewrite.
//!
//! The driver (the simulator, or the tokio runtime) feeds inputs —
//! [`Node::step`] for a peer's message, [`Node::tick`] for time,
//! [`Node::request`] for a client — then takes a [`Ready`] and must:
//! 1. make every [`Persist`] in it durable (its `early_messages`, if any,
//!    may leave at once),
//! 2. only then send its `messages`,
//! 3. call [`Node::advance`] with it (the "storage write completed" input).
//!
//! `replies` in a `Ready` answer clients and may be sent at once: a write is
//! answered only after it was committed by a quorum and applied; a
//! linearizable read only after a ReadIndex round and the apply of that index.
//!
//! Membership: a [`ClientOp::Member`] request (etcd's member add, remove,
//! update, promote, or a member publishing its name) is checked on the leader
//! against the group's replicated member [`Registry`] and becomes a Raft
//! configuration change; it is answered once applied, and [`Ready::members`]
//! tells the driver whenever the registry changed (see `members.rs`).
//!
//! Time is ticks. Nothing here reads a clock, draws OS randomness or iterates
//! a hash map.

#![deny(missing_docs)]

mod group;
pub mod host;
mod members;
mod oracle;
mod routing;
mod sm;
mod types;

use std::collections::BTreeMap;

pub use host::{Answer, Ask, Host, HostBug, HostConfig, HostEvent, HostMsg, HostOutbox, LeaseTtl};
pub use members::{
    derive_member_id, Member, MemberError, MemberOp, Registry, MAX_LEARNERS, MAX_URLS,
    MAX_URL_BYTES,
};
pub use oracle::{Draw, Grant, DRAW_TIMEOUT_TICKS, MAX_DRAW, MAX_QUEUED_DRAWS, RESERVE_WINDOW};
pub use routing::{KeyRange, RangeDesc};
pub use sm::{Applied, CorruptSnapshot, Proposal, StateMachine};
pub use types::{
    ClientError, ClientOp, ClientReply, ClientRequest, ClientResponse, Envelope, Persist, ShardId,
};

use synod_kv::{Command, Event, Lessor, LessorConfig};
use synod_raft::{
    ConfState, Config as RaftConfig, Init, MessageBody, NodeId, ProposeError, Raft, ReadyToken,
    Role, Snapshot, StepError,
};

use group::{writes_revision, Group, PendingMember, SplitOut, WaitingRead, UNDRAWN};
use members::LeaderView;
use oracle::Oracle;

/// How a node runs its groups.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// This node's id (non-zero).
    pub id: NodeId,
    /// Template for every group's Raft configuration (`id` and `seed` are set per group).
    pub raft: RaftConfig,
    /// Seed from which every group's RNG seed is derived.
    pub seed: u64,
    /// Take a snapshot and compact the log after this many applied entries.
    pub snapshot_every: u64,
    /// Client sessions remembered per group.
    pub max_sessions: usize,
    /// Bound on writes awaiting apply and reads awaiting confirmation, per group.
    pub max_pending: usize,
    /// Ticks per second of lease time.
    pub ticks_per_second: u64,
    /// Let a leader's appends and heartbeats leave before its own write is
    /// durable (Raft thesis §10.2.1: the leader writes its log in parallel
    /// with replicating it; it counts itself toward a commit only once its
    /// write is durable). They come out in [`Ready::early_messages`].
    pub parallel_leader_append: bool,
    /// Key operations each group applies per [`Ready`] at most (about: a
    /// command other than a delete range applies whole). A larger delete
    /// range applies in chunks over several Readies, so that ticks,
    /// heartbeats and votes go on meanwhile; `u64::MAX`: no bound.
    pub apply_budget: u64,
    /// Split a range whose leader counts more keys than this in it, at its
    /// middle key (`None`: ranges never split; the server's setting today).
    pub split_max_keys: Option<u64>,
    /// A deliberate bug in splits, for the simulator to prove its checkers
    /// reach them (never set outside tests).
    pub split_bug: Option<SplitBug>,
}

/// A deliberate bug in range splits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SplitBug {
    /// A write that reaches a range after a split moved its key away
    /// applies anyway, to keys the range no longer serves.
    NoRangeCheck,
    /// Each range numbers its writes with its own revisions, as before the
    /// split, instead of drawing them from the cluster's revision oracle:
    /// ranges reuse one another's revisions, and a write that completed
    /// before another began may carry the higher one.
    LocalRevisions,
    /// A range's leader serves a piece of a read at a cluster revision as
    /// an ordinary read: without closing the range at that revision or
    /// waiting for the writes it already proposed, so a write numbered
    /// below the read's revision can land after it.
    ReadAtWithoutClosing,
}

/// Where a split's new group starts: its log begins after this index, in
/// this term, from the image the split cut (every replica cuts the same).
pub const SPLIT_INDEX: u64 = 10;
/// See [`SPLIT_INDEX`].
pub const SPLIT_TERM: u64 = 5;
/// Ticks between a leader's checks of its ranges' sizes.
const SPLIT_CHECK_TICKS: u64 = 8;
/// Groups created from peers' messages that are still waiting for their
/// first snapshot, at most.
const MAX_UNINITIALIZED: usize = 64;

/// Opens a fresh store for a group this node creates (a split's new
/// range, or a range a peer's message names): the driver's store files,
/// or memory when it sets none.
pub type StoreFactory = Box<dyn FnMut(ShardId) -> StateMachine + Send>;

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            id: 1,
            raft: RaftConfig::default(),
            seed: 0,
            snapshot_every: 1000,
            max_sessions: 10_000,
            max_pending: 10_000,
            ticks_per_second: 10,
            parallel_leader_append: false,
            apply_budget: 1000,
            split_max_keys: None,
            split_bug: None,
        }
    }
}

/// How one group starts on this node.
#[derive(Clone, Debug)]
pub struct GroupInit {
    /// The group.
    pub shard: ShardId,
    /// The keys it serves ([`KeyRange::all`] for a node with one group).
    /// What the group's persisted state says wins (a split changes it);
    /// `None`: nothing but that state says (a group found in the log).
    pub range: Option<KeyRange>,
    /// Raft's start: bootstrap, or restore from what was persisted.
    pub raft: Init,
    /// On restore: the persisted snapshot's data (the state machine image), if any.
    pub snapshot_data: Option<Vec<u8>>,
}

/// An input the node refused.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The message is for a group this node does not host.
    #[error("no group for shard {0} on this node")]
    UnknownShard(ShardId),
    /// Raft refused the message.
    #[error("shard {shard}: {err}")]
    Step {
        /// The group.
        shard: ShardId,
        /// Why.
        err: StepError,
    },
    /// A group could not be created.
    #[error("shard {shard}: {err}")]
    Config {
        /// The group.
        shard: ShardId,
        /// Why.
        err: synod_raft::ConfigError,
    },
    /// A persisted snapshot's member registry could not be decoded.
    #[error("shard {shard}: corrupt state machine snapshot: {err}")]
    Registry {
        /// The group.
        shard: ShardId,
        /// Why.
        err: String,
    },
    /// The groups' key ranges are not a partition (a shard twice, overlaps).
    #[error("key ranges: {0}")]
    Ranges(String),
    /// A persisted snapshot could not be decoded.
    #[error("shard {shard}: {err}")]
    Snapshot {
        /// The group.
        shard: ShardId,
        /// Why.
        err: CorruptSnapshot,
    },
}

/// Everything the driver must do after feeding inputs; see the crate docs.
#[derive(Debug, Default)]
pub struct Ready {
    /// Make these durable first.
    pub persist: Vec<Persist>,
    /// Then send these.
    pub messages: Vec<Envelope>,
    /// These may be sent at once, before persisting (only with
    /// [`NodeConfig::parallel_leader_append`]; otherwise always empty).
    pub early_messages: Vec<Envelope>,
    /// Answers to clients; may be sent at once.
    pub replies: Vec<ClientReply>,
    /// Watch events produced by the entries applied in this round, in
    /// revision order per shard (for the driver's watchers).
    pub events: Vec<(ShardId, Event)>,
    /// Groups whose member registry changed in this round, with every
    /// member now (for the driver's transport and member lists).
    pub members: Vec<(ShardId, Vec<Member>)>,
    /// Groups whose state machine a leader's snapshot replaced in this
    /// round: their revision moved without events, so the driver's watchers
    /// of them catch up from the store's history (or learn it was compacted)
    /// before taking any of this round's events.
    pub restored: Vec<ShardId>,
    /// Whether `persist` must be made durable before `messages` go out and
    /// before [`Node::advance`]. False when all it holds is a new commit
    /// index: write it, send and advance at once, and let a later sync make
    /// it durable (a restart learns the commit index again).
    pub must_sync: bool,
    /// Key operations applied to the state machines in this round (what it
    /// cost: each group's is bounded by [`NodeConfig::apply_budget`]).
    pub apply_ops: u64,
    raft: Vec<(ShardId, ReadyToken)>,
}

impl Ready {
    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.persist.is_empty()
            && self.messages.is_empty()
            && self.early_messages.is_empty()
            && self.replies.is_empty()
            && self.events.is_empty()
            && self.members.is_empty()
            && self.restored.is_empty()
            && self.raft.is_empty()
    }
}

/// A synod node: a set of Raft groups and their state machines.
pub struct Node {
    cfg: NodeConfig,
    groups: BTreeMap<ShardId, Group>,
    /// The initial members' attributes, for the first leader to seed the registry with.
    bootstrap_members: Vec<Member>,
    ticks: u64,
    replies: Vec<ClientReply>,
    /// The routing table: each hosted group's key range, sorted by start,
    /// not overlapping (see [`routing::table`]).
    ranges: Vec<(KeyRange, ShardId)>,
    /// Where a created group's state machine lives.
    store_factory: Option<StoreFactory>,
    /// The revision oracle, while this node leads the home group.
    oracle: Oracle,
    /// The oracle's answers not yet taken by the driver.
    grants: Vec<Grant>,
}

impl Node {
    /// Creates a node hosting the given groups.
    pub fn new(cfg: NodeConfig, groups: Vec<GroupInit>) -> Result<Node, NodeError> {
        assert!(cfg.id != 0, "node id 0 is reserved");
        assert!(cfg.apply_budget > 0, "the apply budget must be at least 1");
        let mut node = Node {
            cfg,
            groups: BTreeMap::new(),
            bootstrap_members: Vec::new(),
            ticks: 0,
            replies: Vec::new(),
            ranges: Vec::new(),
            store_factory: None,
            oracle: Oracle::default(),
            grants: Vec::new(),
        };
        for g in groups {
            node.add_group(g, None)?;
        }
        Ok(node)
    }

    /// Creates a node whose groups may start from state machines the driver
    /// opened from disk, each with the log index its data holds: Raft then
    /// hands out only the committed entries after that index. The index must
    /// lie between the group's snapshot and its commit index.
    pub fn with_state_machines(
        cfg: NodeConfig,
        groups: Vec<(GroupInit, Option<(StateMachine, u64)>)>,
    ) -> Result<Node, NodeError> {
        let mut node = Node::new(cfg, Vec::new())?;
        for (g, sm) in groups {
            node.add_group(g, sm)?;
        }
        Ok(node)
    }

    fn add_group(
        &mut self,
        mut g: GroupInit,
        opened: Option<(StateMachine, u64)>,
    ) -> Result<(), NodeError> {
        let shard = g.shard;
        if self.groups.contains_key(&shard) {
            return Err(NodeError::Ranges(format!("shard {shard} is given twice")));
        }
        // A torn write can keep a Ready's entries but not the hard state
        // written after them: the node saw a newer term (the entries carry
        // it) without recording it. It never voted in that term (a vote is
        // durable before its response leaves), so recover with the newer
        // term and no vote.
        if let Init::Restore {
            hard_state,
            entries,
            snapshot,
        } = &mut g.raft
        {
            if let Some(last) = entries.last() {
                if last.term > hard_state.term {
                    hard_state.term = last.term;
                    hard_state.vote = 0;
                }
            }
            // So for a snapshot written before its hard state (a split's
            // new group is written as its snapshot, then its hard state).
            if let Some(meta) = snapshot {
                if meta.term > hard_state.term {
                    hard_state.term = meta.term;
                    hard_state.vote = 0;
                }
                hard_state.commit = hard_state.commit.max(meta.index);
            }
        }
        let mut rc = self.cfg.raft.clone();
        rc.id = self.cfg.id;
        rc.seed = splitmix(self.cfg.seed ^ splitmix(shard) ^ self.cfg.id.rotate_left(32));
        let mut registry = Registry::default();
        let mut desc = None;
        let mut reserved = 0;
        let (sm, applied) = match (opened, &g.raft, &g.snapshot_data) {
            (Some((sm, index)), _, _) => {
                // A disk engine keeps the registry and the range beside its
                // data, as of the same applied index.
                if !sm.extra().is_empty() {
                    (registry, desc, reserved) = members::decode_registry(sm.extra())
                        .map_err(|err| NodeError::Registry { shard, err })?;
                }
                (sm, index)
            }
            (
                None,
                Init::Restore {
                    snapshot: Some(meta),
                    ..
                },
                Some(data),
            ) => {
                let ((mut reg, d, r), image) = members::decode_image(data)
                    .map_err(|err| NodeError::Registry { shard, err })?;
                desc = d;
                reserved = r;
                // An image without a registry (a restored backup, an older
                // image) still names its configuration's members.
                reg.apply(&meta.conf_state, &[]);
                registry = reg;
                let sm = StateMachine::restore(image, self.cfg.max_sessions)
                    .map_err(|err| NodeError::Snapshot { shard, err })?;
                (sm, meta.index)
            }
            (
                None,
                Init::Restore {
                    snapshot: Some(meta),
                    ..
                },
                None,
            ) => {
                assert_eq!(
                    meta.index, 0,
                    "a snapshot past index 0 must come with its data"
                );
                (StateMachine::new(self.cfg.max_sessions), 0)
            }
            _ => (StateMachine::new(self.cfg.max_sessions), 0),
        };
        rc.applied = applied;
        let restored = match (&g.raft, g.snapshot_data.take()) {
            (
                Init::Restore {
                    snapshot: Some(meta),
                    ..
                },
                Some(data),
            ) => Some(Snapshot {
                meta: meta.clone(),
                data,
            }),
            _ => None,
        };
        let lazy = rc.lazy_snapshot_data;
        let mut raft = Raft::new(rc, g.raft).map_err(|err| NodeError::Config { shard, err })?;
        if let Some(snap) = restored.filter(|_| !lazy) {
            // Hand the persisted snapshot back to Raft, so that a restarted
            // leader can send it to followers behind its log (otherwise it
            // could not until its next compaction, which may never come if
            // those followers are needed to commit anything). With lazy
            // snapshot data Raft asks for an image when it needs one.
            raft.compact(snap)
                .expect("the restored snapshot is the one Raft was restored from");
        }
        let lessor = Lessor::from_store(lessor_config(&self.cfg), sm.kv(), self.ticks);
        // What the group's state says of its range wins over the boot
        // configuration's (a split changed it since).
        let desc = desc.or(g.range.map(|range| RangeDesc {
            range,
            generation: 0,
        }));
        if let Some(d) = desc.as_ref().filter(|d| d.generation == 0) {
            let clash = self.groups.values().find_map(|o| {
                let od = o.desc.as_ref()?;
                (od.generation == 0 && overlap(&od.range, &d.range)).then_some((o.shard, od))
            });
            if let Some((s, od)) = clash {
                return Err(NodeError::Ranges(format!(
                    "shard {shard}'s range {:?} overlaps shard {s}'s {:?}",
                    d.range, od.range
                )));
            }
        }
        let mut group = Group::new(shard, raft, sm, applied, lessor, registry, desc);
        group.skip_range_check = self.cfg.split_bug == Some(SplitBug::NoRangeCheck);
        group.local_revisions = self.cfg.split_bug == Some(SplitBug::LocalRevisions);
        group.dynamic = self.cfg.split_max_keys.is_some();
        group.reserved = reserved;
        self.groups.insert(shard, group);
        self.rebuild_ranges();
        Ok(())
    }

    /// Rebuilds the routing table from the groups' ranges.
    fn rebuild_ranges(&mut self) {
        let claims: Vec<(RangeDesc, ShardId)> = self
            .groups
            .values_mut()
            .filter_map(|g| {
                g.desc_changed = false;
                Some((g.desc.clone()?, g.shard))
            })
            .collect();
        self.ranges = routing::table(&claims);
    }

    /// Where the state machines of groups this node creates live (a split's
    /// new range, a range a peer names); memory when never set.
    pub fn set_store_factory(&mut self, f: StoreFactory) {
        self.store_factory = Some(f);
    }

    /// A fresh state machine for a group this node creates.
    fn fresh_state_machine(&mut self, shard: ShardId) -> StateMachine {
        match self.store_factory.as_mut() {
            Some(f) => f(shard),
            None => StateMachine::new(self.cfg.max_sessions),
        }
    }

    /// Creates the right half of a split that applied here, unless the node
    /// has it already (a boot replaying the split, or its first snapshot
    /// came before this replica applied the split): from the image the
    /// split cut, in a log that starts after [`SPLIT_INDEX`], with a
    /// record of it for the driver to persist.
    fn create_split(&mut self, out: SplitOut, rd: &mut Ready) {
        let mut hs = synod_raft::HardState {
            term: SPLIT_TERM,
            vote: 0,
            commit: SPLIT_INDEX,
        };
        if let Some(g) = self.groups.get(&out.shard) {
            if g.desc.is_some() || g.applied > 0 {
                return;
            }
            // Created from a peer's message, never sent a snapshot: start it
            // from the split, keeping the term and vote it may have given.
            let seen = g.raft.hard_state();
            if seen.term > hs.term {
                hs.term = seen.term;
                hs.vote = seen.vote;
            }
            self.groups.remove(&out.shard);
            // Its Ready of this round (a term it learned, answers to the
            // leader) is persisted and sent as usual; the group it advances
            // is gone.
            rd.raft.retain(|(s, _)| *s != out.shard);
        }
        let meta = synod_raft::SnapshotMeta {
            index: SPLIT_INDEX,
            term: SPLIT_TERM,
            conf_state: out.conf.clone(),
        };
        let mut sm = self.fresh_state_machine(out.shard);
        if let Err(e) = install_group_image(&mut sm, &out.image, &out.conf) {
            panic!(
                "shard {}: a split's own image does not install: {e}",
                out.shard
            );
        }
        let init = GroupInit {
            shard: out.shard,
            range: None,
            raft: Init::Restore {
                hard_state: hs,
                snapshot: Some(meta.clone()),
                entries: Vec::new(),
            },
            snapshot_data: Some(out.image.clone()),
        };
        if let Err(e) = self.add_group(init, Some((sm, SPLIT_INDEX))) {
            panic!("shard {}: a split's new group cannot start: {e}", out.shard);
        }
        debug_assert_eq!(
            self.groups.get(&out.shard).and_then(|g| g.desc.clone()),
            Some(out.desc),
            "a split's new group serves the range it was cut"
        );
        rd.persist.push(Persist {
            shard: out.shard,
            hard_state: Some(hs),
            entries: Vec::new(),
            snapshot: Some(Snapshot {
                meta,
                data: out.image,
            }),
        });
        rd.must_sync = true;
    }

    /// On the leader of a group over [`NodeConfig::split_max_keys`] keys:
    /// proposes to split it at its middle key (one split at a time).
    fn maybe_split(&mut self) {
        let Some(max) = self.cfg.split_max_keys else {
            return;
        };
        if !self.ticks.is_multiple_of(SPLIT_CHECK_TICKS) {
            return;
        }
        let hosted: Vec<ShardId> = self.groups.keys().copied().collect();
        for g in self.groups.values_mut() {
            if g.raft.role() != Role::Leader
                || g.split_proposed.is_some()
                || g.sm.in_progress().is_some()
                || g.sm.kv().auth().enabled()
            {
                continue;
            }
            let Some(desc) = g.desc.as_ref() else {
                continue;
            };
            let span = synod_kv::RangeRequest {
                // No key is empty: the first range's span starts at "\0".
                key: if desc.range.start.is_empty() {
                    vec![0]
                } else {
                    desc.range.start.clone()
                },
                range_end: if desc.range.end.is_empty() {
                    vec![0]
                } else {
                    desc.range.end.clone()
                },
                ..Default::default()
            };
            let count = synod_kv::RangeRequest {
                count_only: true,
                ..span.clone()
            };
            let Ok(n) = g.sm.kv().range(&count).map(|r| r.count) else {
                continue;
            };
            let n = u64::try_from(n).unwrap_or(0);
            if n <= max || n < 2 {
                continue;
            }
            let half = synod_kv::RangeRequest {
                keys_only: true,
                limit: i64::try_from(n / 2 + 1).unwrap_or(i64::MAX),
                ..span
            };
            let Some(at) =
                g.sm.kv()
                    .range(&half)
                    .ok()
                    .and_then(|r| r.kvs.last().map(|kv| kv.key.clone()))
            else {
                continue;
            };
            // An id no group here has, derived from where the split goes in
            // the log (unique as the member ids are).
            let mut new_range = splitmix(
                g.shard.rotate_left(17) ^ (g.raft.last_index() + 1) ^ g.raft.term().rotate_left(40),
            );
            while new_range == 0 || hosted.contains(&new_range) {
                new_range = splitmix(new_range);
            }
            let p = Proposal {
                client: 0,
                seq: 0,
                cmd: Command::SplitRange { at, new_range },
            };
            if let Ok(index) = g.raft.propose(p.encode()) {
                g.split_proposed = Some(index);
            }
        }
    }

    /// Draws this node's ranges ask of the revision oracle now, one per
    /// range with writes waiting and no draw in flight. The driver hands
    /// each to the home group's leader: to [`Node::draw`] here if it is
    /// this node, in a message otherwise (a draw lost on the way is asked
    /// again after [`DRAW_TIMEOUT_TICKS`]).
    pub fn take_draws(&mut self) -> Vec<Draw> {
        let now = self.ticks;
        let mut out = Vec::new();
        for g in self.groups.values_mut() {
            if g.undrawn.is_empty() || g.drawing.is_some() || now < g.draw_after {
                continue;
            }
            if g.raft.role() != Role::Leader {
                g.drop_undrawn(&mut self.replies);
                continue;
            }
            let count = u32::try_from(g.undrawn.len()).map_or(MAX_DRAW, |n| n.min(MAX_DRAW));
            let id = g.next_draw;
            g.next_draw += 1;
            g.drawing = Some((id, now, count));
            out.push(Draw {
                shard: g.shard,
                id,
                count,
            });
        }
        out
    }

    /// A draw from node `from` (this node's own included) reaches the
    /// oracle; its answer comes out of [`Node::take_grants`].
    pub fn draw(&mut self, from: NodeId, d: Draw) {
        let refuse = |err| Grant {
            to: from,
            shard: d.shard,
            id: d.id,
            result: Err(err),
        };
        if d.count == 0 || d.count > MAX_DRAW {
            let err = ClientError::Invalid(format!("a draw of {} revisions", d.count));
            return self.grants.push(refuse(err));
        }
        if self.oracle.held() >= MAX_QUEUED_DRAWS {
            return self.grants.push(refuse(ClientError::Busy));
        }
        let Some(g) = self.groups.get(&self.home_shard()) else {
            return;
        };
        if g.raft.role() != Role::Leader {
            let leader = g.raft.leader();
            return self.grants.push(refuse(ClientError::NotLeader { leader }));
        }
        self.oracle.queue.push((from, d));
        self.serve_oracle();
    }

    /// The oracle's answer to one of this node's draws.
    pub fn granted(&mut self, grant: Grant) {
        let now = self.ticks;
        if let Some(g) = self.groups.get_mut(&grant.shard) {
            g.granted(grant.id, grant.result, now, &mut self.replies);
        }
    }

    /// The oracle's answers since the last call, for the nodes that drew.
    pub fn take_grants(&mut self) -> Vec<Grant> {
        std::mem::take(&mut self.grants)
    }

    /// Runs the oracle on the home group's leader: starts it in a new term
    /// once an entry of that term applied, confirms the draws waiting with
    /// one ReadIndex round, hands revisions out within the reservation,
    /// and reserves the next window ahead (see oracle.rs).
    fn serve_oracle(&mut self) {
        let Some(home) = self.ranges.first().map(|(_, s)| *s) else {
            return;
        };
        let Some(g) = self.groups.get_mut(&home) else {
            return;
        };
        let o = &mut self.oracle;
        let term = g.raft.term();
        if g.raft.role() != Role::Leader || (o.term != 0 && o.term != term) {
            if o.term != 0 || o.held() > 0 {
                let leader = g.raft.leader();
                o.refuse_all(&ClientError::NotLeader { leader }, &mut self.grants);
            }
            if g.raft.role() != Role::Leader {
                return;
            }
        }
        if o.term == 0 {
            // Everything committed before this term applied: the
            // reservation is the latest, and so is the home range's revision.
            if g.raft.term_at(g.applied) != Some(term) {
                return;
            }
            o.term = term;
            o.next = g.reserved + 1;
            o.reserving = None;
        }
        // Before the first split every write took the home range's next
        // revision: the oracle starts past it (after, the home range's
        // revision only grows by revisions the oracle handed out).
        o.next = o.next.max(g.sm.kv().revision() + 1);
        if !o.queue.is_empty() {
            let ctx = g.next_ctx;
            g.next_ctx += 1;
            let batch = std::mem::take(&mut o.queue);
            if g.raft.read_index(ctx).is_ok() {
                o.confirming.insert(ctx, batch);
            } else {
                for (to, d) in batch {
                    self.grants.push(Grant {
                        to,
                        shard: d.shard,
                        id: d.id,
                        result: Err(ClientError::Busy),
                    });
                }
            }
        }
        while let Some((to, d)) = o.confirmed.front() {
            let last = o.next + i64::from(d.count) - 1;
            if last > g.reserved {
                break;
            }
            self.grants.push(Grant {
                to: *to,
                shard: d.shard,
                id: d.id,
                result: Ok(o.next),
            });
            o.next = last + 1;
            o.confirmed.pop_front();
        }
        let wanted: i64 = o.next
            + o.confirmed
                .iter()
                .map(|(_, d)| i64::from(d.count))
                .sum::<i64>();
        let active = !o.confirmed.is_empty() || g.reserved > 0;
        if active && o.reserving.is_none() && g.reserved - wanted < RESERVE_WINDOW / 2 {
            let p = Proposal {
                client: 0,
                seq: 0,
                cmd: Command::ReserveRevisions {
                    upto: g.reserved.max(wanted) + RESERVE_WINDOW,
                },
            };
            if let Ok(index) = g.raft.propose(p.encode()) {
                o.reserving = Some(index);
            }
        }
    }

    /// Gives the initial members' names and peer URLs (from the bootstrap
    /// configuration): the first leader of a new group writes them into the
    /// replicated registry, so members that replay the log learn them too.
    pub fn set_bootstrap_members(&mut self, members: Vec<Member>) {
        self.bootstrap_members = members;
    }

    /// A group's member registry (as of its applied index).
    pub fn members(&self, shard: ShardId) -> Option<&Registry> {
        self.groups.get(&shard).map(|g| &g.members)
    }

    /// Whether this node was removed from `shard` (it should stop).
    pub fn is_removed(&self, shard: ShardId) -> bool {
        self.groups
            .get(&shard)
            .is_some_and(|g| g.members.is_removed(self.cfg.id))
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.cfg.id
    }

    /// The shard that owns `key`. One shard covers the keyspace today.
    pub fn shard_for(&self, key: &[u8]) -> Option<ShardId> {
        self.ranges
            .iter()
            .find(|(r, _)| r.contains(key))
            .map(|(_, s)| *s)
    }

    /// The group that holds what belongs to the whole cluster: the member
    /// registry, leases and compaction. It is the group of the first hosted
    /// range (the one starting at the empty key, when it is hosted here).
    pub fn home_shard(&self) -> ShardId {
        self.ranges
            .first()
            .map(|(_, s)| *s)
            .expect("a node hosts at least one group")
    }

    /// Each hosted group's key range, sorted by start.
    pub fn ranges(&self) -> &[(KeyRange, ShardId)] {
        &self.ranges
    }

    /// The group that serves `req`: the one whose range holds every key it
    /// touches; a request over several groups' keys is refused, never
    /// routed by its first key (see `routing.rs`).
    pub fn route(&self, req: &ClientRequest) -> Result<ShardId, ClientError> {
        routing::route(&self.ranges, self.home_shard(), req)
    }

    /// Whether this node's ranges split ([`NodeConfig::split_max_keys`]).
    pub fn splits(&self) -> bool {
        self.cfg.split_max_keys.is_some()
    }

    /// What group `shard` knows of its range (`None`: not hosted, or not
    /// yet sent its first snapshot).
    pub fn range_of(&self, shard: ShardId) -> Option<&RangeDesc> {
        self.groups.get(&shard)?.desc.as_ref()
    }

    /// The shards hosted here.
    pub fn shards(&self) -> impl Iterator<Item = ShardId> + '_ {
        self.groups.keys().copied()
    }

    /// Read access to a group's Raft (for status and the simulator's checkers).
    pub fn raft(&self, shard: ShardId) -> Option<&Raft> {
        self.groups.get(&shard).map(|g| &g.raft)
    }

    /// Read access to a group's state machine.
    pub fn state_machine(&self, shard: ShardId) -> Option<&StateMachine> {
        self.groups.get(&shard).map(|g| &g.sm)
    }

    /// The highest applied index of a group.
    pub fn applied(&self, shard: ShardId) -> Option<u64> {
        self.groups.get(&shard).map(|g| g.applied)
    }

    /// Seconds left on lease `id` by this node's lessor (authoritative on
    /// the group's leader), or `None` if the lessor does not know it.
    pub fn lease_remaining(&self, shard: ShardId, id: i64) -> Option<i64> {
        let g = self.groups.get(&shard)?;
        g.lessor.remaining_ttl(id, self.ticks)
    }

    /// Advances time by one tick: elections, heartbeats, lease expiry.
    pub fn tick(&mut self) {
        self.ticks += 1;
        let now = self.ticks;
        for g in self.groups.values_mut() {
            g.raft.tick();
            if g.raft.role() == Role::Leader {
                g.maybe_seed(&self.bootstrap_members, self.cfg.id);
                // The lessor reports an expired lease again after a while if
                // its revocation has not been applied by then.
                for id in g.lessor.expired(now) {
                    let p = Proposal {
                        client: 0,
                        seq: 0,
                        cmd: Command::LeaseRevoke { id },
                    };
                    if !g.draws() {
                        let _ = g.raft.propose(p.encode());
                    } else if g.undrawn.len() < self.cfg.max_pending && !g.undrawn.contains(&p) {
                        g.undrawn.push_back(p);
                    }
                }
            }
            // A draw unanswered for long (its message or its answer was
            // lost, or the oracle moved) is asked again.
            if g.drawing
                .is_some_and(|(_, since, _)| now >= since + DRAW_TIMEOUT_TICKS)
            {
                g.drawing = None;
            }
        }
        self.maybe_split();
        self.serve_oracle();
    }

    /// Feeds a message from a peer.
    pub fn step(&mut self, env: Envelope) -> Result<(), NodeError> {
        let shard = env.shard;
        if !self.groups.contains_key(&shard) {
            self.maybe_create_uninitialized(&env)?;
        }
        let g = self
            .groups
            .get_mut(&shard)
            .ok_or(NodeError::UnknownShard(shard))?;
        g.raft
            .step(env.msg)
            .map_err(|err| NodeError::Step { shard, err })
    }

    /// A leader of a group this node does not host sends it entries or a
    /// heartbeat, or a candidate asks for its vote: this node is a member
    /// of a range it has not learned of (it was sent a snapshot of the
    /// split range from past the split). It hosts the group, empty, until a
    /// leader sends it a snapshot. It may vote meanwhile, as any member
    /// with an empty log may (a candidate missing a committed entry still
    /// cannot gather a quorum): without that, a range whose members mostly
    /// skipped its split could never elect a leader. Other messages for
    /// unknown groups are refused.
    fn maybe_create_uninitialized(&mut self, env: &Envelope) -> Result<(), NodeError> {
        let from_leader = matches!(
            env.msg.body,
            MessageBody::Append { .. }
                | MessageBody::Heartbeat { .. }
                | MessageBody::SnapshotChunk { .. }
                | MessageBody::Vote { .. }
                | MessageBody::PreVote { .. }
        );
        let waiting = self.groups.values().filter(|g| g.desc.is_none()).count();
        // Only a node whose ranges split learns of ranges from its peers.
        let dynamic = self.cfg.split_max_keys.is_some();
        if !dynamic || !from_leader || env.msg.to != self.cfg.id || waiting >= MAX_UNINITIALIZED {
            return Err(NodeError::UnknownShard(env.shard));
        }
        let sm = self.fresh_state_machine(env.shard);
        let init = GroupInit {
            shard: env.shard,
            range: None,
            raft: Init::Bootstrap {
                voters: Vec::new(),
                learners: Vec::new(),
            },
            snapshot_data: None,
        };
        self.add_group(init, Some((sm, 0)))
    }

    /// Takes a client request; its reply comes out in a later [`Ready`].
    pub fn request(&mut self, req: ClientRequest) {
        if req.client == 0 {
            self.reply(
                &req,
                Err(ClientError::Invalid("client id 0 is reserved".into())),
            );
            return;
        }
        let shard = match self.route(&req) {
            Ok(s) => s,
            Err(e) => return self.reply(&req, Err(e)),
        };
        // A range's part of a compaction of every range: a compaction of
        // the range its key routed it to.
        let req = match req.op {
            ClientOp::CompactRange { revision, .. } => ClientRequest {
                op: ClientOp::Write(Command::Compact { revision }),
                ..req
            },
            _ => req,
        };
        let max_pending = self.cfg.max_pending;
        let now = self.ticks;
        let g = self
            .groups
            .get_mut(&shard)
            .expect("route returns a hosted shard");
        let leader = g.raft.leader();
        match &req.op {
            ClientOp::Write(cmd) => {
                if g.pending() >= max_pending {
                    return self.reply(&req, Err(ClientError::Busy));
                }
                if g.pending_writes.contains_key(&(req.client, req.seq)) {
                    return; // already proposed here; the reply will come from the apply
                }
                let p = Proposal {
                    client: req.client,
                    seq: req.seq,
                    cmd: cmd.clone(),
                };
                // In a split keyspace a write waits for a revision from the
                // oracle (see oracle.rs), then is proposed.
                if g.draws() && writes_revision(cmd) {
                    if g.raft.role() != Role::Leader {
                        return self.reply(&req, Err(ClientError::NotLeader { leader }));
                    }
                    g.pending_writes.insert((req.client, req.seq), UNDRAWN);
                    g.undrawn.push_back(p);
                    return;
                }
                match g.raft.propose(p.encode()) {
                    Ok(index) => g.track_write((req.client, req.seq), index),
                    Err(ProposeError::NotLeader { leader }) => {
                        self.reply(&req, Err(ClientError::NotLeader { leader }))
                    }
                    Err(_) => self.reply(&req, Err(ClientError::Busy)),
                }
            }
            ClientOp::Range {
                req: r,
                serializable,
                auth,
            } => {
                if *serializable {
                    let result = g.read(&req.op, r, auth.as_ref());
                    return self.reply(&req, result);
                }
                if g.pending() >= max_pending {
                    return self.reply(&req, Err(ClientError::Busy));
                }
                g.unconfirmed.push(WaitingRead { req, min_index: 0 });
            }
            ClientOp::CompactRange { .. } => unreachable!("rewritten as a compaction above"),
            ClientOp::ReadAt { req: r, .. } => {
                if g.raft.role() != Role::Leader {
                    return self.reply(&req, Err(ClientError::NotLeader { leader }));
                }
                if r.revision <= 0 {
                    let why = "a read at a cluster revision names none".to_string();
                    return self.reply(&req, Err(ClientError::Invalid(why)));
                }
                if g.pending() >= max_pending {
                    return self.reply(&req, Err(ClientError::Busy));
                }
                // Close the range at the revision: what this leader draws
                // from now on goes past it; what it proposed already (and
                // what former leaders left in its log) applies first.
                let open = self.cfg.split_bug == Some(SplitBug::ReadAtWithoutClosing);
                if !open {
                    g.closed = g.closed.max(r.revision);
                }
                let min_index = if open { 0 } else { g.raft.last_index() };
                g.unconfirmed.push(WaitingRead { req, min_index });
            }
            ClientOp::LeaseKeepAlive { id } => {
                let id = *id;
                if g.raft.role() != Role::Leader {
                    return self.reply(&req, Err(ClientError::NotLeader { leader }));
                }
                let result = match g.lessor.renew(id, now) {
                    Ok(ttl) => Ok(ClientResponse::LeaseKeepAlive { id, ttl }),
                    Err(e) => Err(ClientError::Kv(e)),
                };
                self.reply(&req, result);
            }
            ClientOp::Member(op) => {
                if g.pending() >= max_pending {
                    return self.reply(&req, Err(ClientError::Busy));
                }
                if g.pending_members.contains_key(&(req.client, req.seq)) {
                    return; // already proposed here; the reply will come from the apply
                }
                if g.raft.role() != Role::Leader {
                    return self.reply(&req, Err(ClientError::NotLeader { leader }));
                }
                // The initial members' URLs are not written yet: try again shortly.
                if !g.members.is_empty() && g.members.unseeded().next().is_some() {
                    return self.reply(&req, Err(ClientError::Busy));
                }
                let raft = &g.raft;
                let matched = |id: NodeId| raft.progress(id).map(|p| p.0);
                let view = LeaderView {
                    conf: &g.conf,
                    matched: &matched,
                    leader: self.cfg.id,
                    next_index: raft.last_index() + 1,
                    term: raft.term(),
                };
                let plan = match g.members.plan(op, &view) {
                    Ok(p) => p,
                    Err(e) => return self.reply(&req, Err(ClientError::Member(e))),
                };
                let ctx = plan.context.map(|c| c.encode()).unwrap_or_default();
                let term = g.raft.term();
                match g.raft.propose_conf_change_with_context(plan.cc, &ctx) {
                    Ok(index) => {
                        let p = PendingMember {
                            index,
                            term,
                            id: plan.id,
                            op: op.clone(),
                        };
                        g.track_member((req.client, req.seq), p);
                    }
                    Err(ProposeError::NotLeader { leader }) => {
                        self.reply(&req, Err(ClientError::NotLeader { leader }))
                    }
                    // Another change is pending, or a transfer: retry shortly.
                    Err(_) => self.reply(&req, Err(ClientError::Busy)),
                }
            }
        }
    }

    fn reply(&mut self, req: &ClientRequest, result: Result<ClientResponse, ClientError>) {
        self.replies.push(ClientReply {
            client: req.client,
            seq: req.seq,
            result,
        });
    }

    /// Whether [`Node::ready`] has anything to hand out.
    pub fn has_ready(&self) -> bool {
        !self.replies.is_empty()
            || self.groups.values().any(|g| {
                g.raft.has_ready()
                    || !g.unconfirmed.is_empty()
                    || g.local_snapshot.is_some()
                    || g.members_changed
            })
    }

    /// Collects what to persist, send and answer; applies committed entries.
    pub fn ready(&mut self) -> Ready {
        let mut rd = Ready::default();
        let now = self.ticks;
        let mut splits: Vec<(SplitOut, bool)> = Vec::new();
        for g in self.groups.values_mut() {
            // One ReadIndex round confirms every read that arrived since the last one.
            if !g.unconfirmed.is_empty() {
                let ctx = g.next_ctx;
                g.next_ctx += 1;
                let batch = std::mem::take(&mut g.unconfirmed);
                match g.raft.read_index(ctx) {
                    Ok(()) => {
                        g.confirming.insert(ctx, batch);
                    }
                    Err(_) => {
                        let leader = g.raft.leader();
                        for w in batch {
                            self.replies.push(refuse(&w.req, leader));
                        }
                    }
                }
            }
            if let Some(snap) = g.local_snapshot.take() {
                rd.persist.push(Persist {
                    shard: g.shard,
                    snapshot: Some(snap),
                    ..Persist::default()
                });
                rd.must_sync = true;
            }
            if !g.raft.has_ready() {
                if std::mem::take(&mut g.members_changed) {
                    rd.members
                        .push((g.shard, g.members.members().cloned().collect()));
                }
                continue;
            }
            let mut r = g.raft.ready();
            g.snapshot_wanted |= r.snapshot_wanted;
            if let Some((role, leader)) = r.soft_state {
                if role == Role::Leader && g.role != Role::Leader {
                    g.lessor.promote(now);
                }
                if role != Role::Leader && g.role == Role::Leader {
                    g.lessor.demote();
                    g.drop_undrawn(&mut self.replies);
                    // Reads still waiting for confirmation will not get it from us.
                    for (_, batch) in std::mem::take(&mut g.confirming) {
                        for w in batch {
                            self.replies.push(refuse(&w.req, leader));
                        }
                    }
                }
                g.role = role;
            }
            if let Some(snap) = &r.snapshot {
                if g.install_snapshot(snap, lessor_config(&self.cfg), now, &mut self.replies) {
                    rd.restored.push(g.shard);
                }
            }
            // Apply under the budget; what it leaves (the rest of an entry
            // part way through, the entries after it) Raft hands out again.
            let mut budget = self.cfg.apply_budget;
            for e in std::mem::take(&mut r.committed_entries) {
                if budget == 0 {
                    break;
                }
                let before = budget;
                let applied = g.apply_entry(&e, now, &mut self.replies, &mut budget);
                rd.apply_ops += before - budget;
                let Some(events) = applied else {
                    assert_eq!(budget, 0, "an entry stopped with budget left");
                    break;
                };
                rd.events.extend(events.into_iter().map(|ev| (g.shard, ev)));
            }
            r.token.applied_to(g.applied);
            g.check_indexes();
            let leading = g.raft.role() == Role::Leader;
            splits.extend(g.split_out.take().map(|out| (out, leading)));
            for rs in std::mem::take(&mut r.read_states) {
                if let Some(batch) = g.confirming.remove(&rs.ctx) {
                    for w in batch {
                        g.confirmed.push((rs.index, w));
                    }
                } else if let Some(draws) = self.oracle.confirming.remove(&rs.ctx) {
                    // The home group's leader was confirmed after these
                    // draws arrived: the oracle may hand them revisions.
                    self.oracle.confirmed.extend(draws);
                }
            }
            if self.oracle.reserving.is_some_and(|i| g.applied >= i) {
                self.oracle.reserving = None;
            }
            g.serve_confirmed(&mut self.replies);
            if std::mem::take(&mut g.members_changed) {
                rd.members
                    .push((g.shard, g.members.members().cloned().collect()));
            }
            rd.must_sync |= r.must_sync;
            rd.persist.push(Persist {
                shard: g.shard,
                hard_state: r.hard_state,
                entries: std::mem::take(&mut r.entries),
                snapshot: r.snapshot.take(),
            });
            // A leader's appends and heartbeats of its current term may leave
            // before its own write is durable: its term and vote became durable
            // before it campaigned, and it counts itself toward a commit only
            // for entries that are durable (Raft tracks that in `advance`).
            let leading = g.raft.role() == Role::Leader;
            let term = g.raft.term();
            for msg in r.messages.drain(..) {
                let early = self.cfg.parallel_leader_append
                    && leading
                    && msg.term == term
                    && matches!(
                        msg.body,
                        MessageBody::Append { .. } | MessageBody::Heartbeat { .. }
                    );
                let env = Envelope {
                    shard: g.shard,
                    msg,
                };
                if early {
                    rd.early_messages.push(env);
                } else {
                    rd.messages.push(env);
                }
            }
            rd.raft.push((g.shard, r.token));
        }
        for (out, leading) in splits {
            let shard = out.shard;
            self.create_split(out, &mut rd);
            // The parent's leader campaigns at once in the new group, so it
            // has a leader without waiting out an election timeout.
            if leading {
                if let Some(g) = self.groups.get_mut(&shard) {
                    g.raft.campaign();
                }
            }
        }
        if self.groups.values().any(|g| g.desc_changed) {
            self.rebuild_ranges();
        }
        self.serve_oracle();
        rd.persist.retain(|p| !p.is_empty());
        rd.replies = std::mem::take(&mut self.replies);
        rd
    }

    /// The driver made `rd`'s state durable and sent its messages.
    pub fn advance(&mut self, rd: Ready) {
        for (shard, token) in rd.raft {
            if let Some(g) = self.groups.get_mut(&shard) {
                g.raft.advance(token);
                // Compact once Raft knows the entries are applied; take an
                // image now if Raft asked for one (it asks again if missed).
                let wanted = std::mem::take(&mut g.snapshot_wanted);
                let due = g.applied >= g.snapshot_index + self.cfg.snapshot_every;
                if (due || wanted) && g.local_snapshot.is_none() {
                    let lazy = self.cfg.raft.lazy_snapshot_data;
                    g.local_snapshot = g.take_snapshot(lazy, wanted);
                }
            }
        }
    }

    /// Commits every group's state machine at its applied index (a disk
    /// engine's commit; nothing in memory). The driver calls it only when
    /// everything applied so far is durable in its log, so the data never
    /// runs ahead of the log it is replayed from.
    /// Never while an entry is part way through ([`Node::applying`]).
    pub fn commit_state_machines(&mut self, durable: bool) -> Result<(), synod_kv::KvError> {
        assert!(
            !self.applying(),
            "the state machines were committed with an entry half applied"
        );
        for g in self.groups.values_mut() {
            // The registry as of `applied`, kept beside the data.
            let registry = members::encode_registry(&g.members, g.desc.as_ref(), g.reserved);
            g.sm.commit(g.applied, durable, &registry)?;
        }
        Ok(())
    }

    /// Whether some group is part way through applying an entry (under
    /// [`NodeConfig::apply_budget`]): its state machine must not commit
    /// until it is done, and [`Node::has_ready`] stays true until then.
    pub fn applying(&self) -> bool {
        self.groups.values().any(|g| g.sm.in_progress().is_some())
    }

    /// Proposes a membership change in `shard`.
    pub fn propose_conf_change(
        &mut self,
        shard: ShardId,
        cc: synod_raft::ConfChange,
    ) -> Result<u64, ProposeError> {
        let g = self
            .groups
            .get_mut(&shard)
            .ok_or(ProposeError::NotLeader { leader: 0 })?;
        g.raft.propose_conf_change(cc)
    }

    /// Asks `shard`'s leader (if this node) to hand leadership to `to`.
    pub fn transfer_leader(&mut self, shard: ShardId, to: NodeId) {
        if let Some(g) = self.groups.get_mut(&shard) {
            g.raft.transfer_leader(to);
        }
    }
}

fn lessor_config(cfg: &NodeConfig) -> LessorConfig {
    LessorConfig {
        ticks_per_second: cfg.ticks_per_second,
        ..LessorConfig::default()
    }
}

fn refuse(req: &ClientRequest, leader: NodeId) -> ClientReply {
    ClientReply {
        client: req.client,
        seq: req.seq,
        result: Err(ClientError::NotLeader { leader }),
    }
}

/// Whether two key ranges share a key.
fn overlap(a: &KeyRange, b: &KeyRange) -> bool {
    let a_before_b = !a.end.is_empty() && a.end <= b.start;
    let b_before_a = !b.end.is_empty() && b.end <= a.start;
    !(a_before_b || b_before_a)
}

/// Installs a group's snapshot image as Raft carries it (the member
/// registry, then the state machine's own image) into `sm`, and returns the
/// registry's bytes, which a disk engine keeps beside its data (pass them to
/// [`StateMachine::commit`]). For a driver installing a persisted snapshot
/// into its store before the node starts.
pub fn install_group_image(
    sm: &mut StateMachine,
    data: &[u8],
    conf: &ConfState,
) -> Result<Vec<u8>, CorruptSnapshot> {
    let ((mut registry, desc, reserved), image) =
        members::decode_image(data).map_err(CorruptSnapshot::new)?;
    registry.apply(conf, &[]);
    sm.install(image)?;
    let bytes = members::encode_registry(&registry, desc.as_ref(), reserved);
    sm.set_extra(bytes.clone());
    Ok(bytes)
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}
