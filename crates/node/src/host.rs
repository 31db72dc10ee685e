//! The host: every decision a server makes around its [`Node`], as one
//! sans-IO state machine that both drivers (the tokio runtime and the
//! simulator) run unchanged.
//!
//! The node alone answers requests it can serve itself. The host adds what
//! a member of a cluster decides beyond that:
//! - **Forwarding.** A request that needs the leader (a write, a lease
//!   keep-alive, a membership change) arriving at a follower is forwarded to
//!   the group's leader ([`HostMsg::Forward`]) under the client's own
//!   `(client, seq)`, so a retry elsewhere is applied at most once. A request
//!   forwarded to us is never forwarded again: we answer "not leader".
//! - **Failover.** When the group's leader changes, requests forwarded to
//!   the former leader are answered "not leader" at once (the caller retries
//!   under the same name) instead of waiting for an answer that will likely
//!   never come.
//! - **Held replies.** A forwarded write's reply is held until this member's
//!   own state machine reaches the write's revision, so a client that reads
//!   from the member that acknowledged its write sees it (read-your-writes,
//!   as etcd's members do).
//! - **Publishing.** Once started, a member announces its name and client
//!   URLs through the log until the registry shows them (etcd's publish).
//! - **Removal.** A member that learns it was removed keeps running for a
//!   grace of ticks (its last messages leave), then asks to stop.
//! - **The store's durable-commit schedule.** A disk store commits the
//!   applied entries durably every `store_commit_ticks` or
//!   `store_commit_entries`, and only when every applied entry is durable in
//!   the log ([`HostOutbox::commit_store`]); the store never runs ahead of the
//!   log it is replayed from.
//! - **Leader questions** ([`Ask`]): a lease's time to live is known to the
//!   leader's lessor alone; a follower forwards the question.
//!
//! The driver feeds [`Host::client`], [`Host::ask`], [`Host::peer`] and
//! [`Host::tick`]; after each input it takes [`Host::outbox`] (messages that
//! may leave at once, replies, events) and, as long as it can persist, the
//! node's [`Host::ready`], which it persists, sends and hands back through
//! [`Host::advance`] exactly as the [`Node`] contract says.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use synod_kv::KvError;
use synod_raft::{NodeId, Role};

use crate::{
    ClientError, ClientOp, ClientReply, ClientRequest, ClientResponse, Draw, Envelope, Grant,
    Member, MemberOp, Node, Ready, ShardId,
};

/// Most requests waiting for a reply in one host.
pub const MAX_WAITING: usize = 65_536;
/// A waiting request is forgotten after this many ticks without a reply
/// (its caller has long given up and retried or failed).
pub const WAITING_TICKS: u64 = 600;
/// Ticks between attempts to publish this member's name and client URLs.
pub const PUBLISH_TICKS: u64 = 5;
/// Ticks a removed member keeps running (its last messages leave) before it stops.
pub const REMOVED_GRACE_TICKS: u64 = 10;
/// Reads over several ranges (or at a revision given) in flight at most.
pub const MAX_SCANS: usize = 1024;
/// Times a request of this member's own client is routed again after the
/// range it reached no longer held its keys (a split moved them), one tick
/// apart, before the client is told.
pub const MAX_REROUTES: u8 = 20;

/// A question only the leader can answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Ask {
    /// A lease's time to live, by the leader's lessor.
    LeaseTtl {
        /// The lease.
        id: i64,
        /// Also list its keys.
        keys: bool,
    },
}

/// A lease as the leader sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseTtl {
    /// Seconds left.
    pub ttl: i64,
    /// Seconds granted.
    pub granted: i64,
    /// Keys attached (when asked for).
    pub keys: Vec<Vec<u8>>,
}

/// The leader's answer to an [`Ask`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Answer {
    /// The lease, or why not (`Kv(LeaseNotFound)` when it does not exist).
    LeaseTtl(Result<LeaseTtl, ClientError>),
}

/// What hosts say to each other.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum HostMsg {
    /// A Raft message.
    Raft(Envelope),
    /// A client request forwarded to the leader.
    Forward(ClientRequest),
    /// The leader's reply to a forwarded request.
    ForwardReply(ClientReply),
    /// A question for the leader.
    Ask {
        /// Matches the answer.
        id: u64,
        /// The question.
        ask: Ask,
    },
    /// The leader's answer.
    Answer {
        /// The question's id.
        id: u64,
        /// The answer.
        answer: Answer,
    },
    /// A range's leader asks the revision oracle (the home group's leader)
    /// for revisions.
    Draw(Draw),
    /// The oracle's answer.
    Grant(Grant),
}

/// A deliberate bug in the host's decisions, to show the simulator's
/// checkers catch it. Never set outside tests and `synod sim`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostBug {
    /// A follower answers a forwarded write as soon as the leader's reply
    /// arrives, before its own state machine applied it (read-your-writes
    /// on that member breaks).
    ReplyBeforeApply,
    /// A follower forwards under a session of its own instead of the
    /// client's, so a retry after a failover is a new request and the
    /// write may apply twice (exactly-once breaks).
    ForwardWithoutSession,
    /// A follower answers a linearizable read from its own state, as if it
    /// were serializable (a cut-off or lagging follower serves stale values:
    /// linearizability breaks).
    StaleReads,
    /// The member acknowledges writes (to its leader, and so to clients)
    /// before its log is durable, syncing only every
    /// [`LAZY_SYNC_TICKS`] ticks: a crash of a quorum within that window
    /// loses acknowledged writes.
    AckBeforeSync,
}

/// With [`HostBug::AckBeforeSync`]: how often the log is really synced.
pub const LAZY_SYNC_TICKS: u64 = 10;

/// How a host behaves.
#[derive(Clone, Debug)]
pub struct HostConfig {
    /// The member's name (published through the log).
    pub name: String,
    /// The member's client URLs (published through the log).
    pub client_urls: Vec<String>,
    /// Commit a disk store durably at least this often, in ticks (at least 1).
    pub store_commit_ticks: u64,
    /// ... or once this many entries were applied since the last commit.
    pub store_commit_entries: u64,
    /// A planted bug (tests and the simulator only).
    pub bug: Option<HostBug>,
}

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig {
            name: String::new(),
            client_urls: Vec::new(),
            store_commit_ticks: 10,
            store_commit_entries: 50_000,
            bug: None,
        }
    }
}

/// Something the driver reports (logs, metrics, status).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostEvent {
    /// A group's leader changed (0: none known).
    Leader {
        /// The group.
        shard: ShardId,
        /// The new leader.
        leader: NodeId,
        /// Its term.
        term: u64,
    },
    /// A member left a group's registry: it was removed.
    MemberRemoved {
        /// The group.
        shard: ShardId,
        /// The member.
        id: NodeId,
    },
    /// This member learned it was removed; it stops after a grace period
    /// ([`Host::should_stop`]).
    SelfRemoved,
}

/// What the driver does at once, whatever its disk is doing.
#[derive(Debug, Default)]
pub struct HostOutbox {
    /// Messages to peers that may leave now (forwards, forwarded replies,
    /// questions and answers; never Raft messages).
    pub sends: Vec<(NodeId, HostMsg)>,
    /// Replies to the driver's own callers, by the token they came with.
    pub replies: Vec<(u64, ClientReply)>,
    /// Answers to the driver's own questions, by token.
    pub answers: Vec<(u64, Answer)>,
    /// Things to report.
    pub events: Vec<HostEvent>,
    /// Commit every group's store durably at its applied index now, before
    /// the next [`Host::ready`]: call [`Host::commit_store`] with this
    /// value, the applied indexes summed over the groups (a mark of
    /// progress: any group's applying makes a commit due).
    pub commit_store: Option<u64>,
}

impl HostOutbox {
    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.sends.is_empty()
            && self.replies.is_empty()
            && self.answers.is_empty()
            && self.events.is_empty()
            && self.commit_store.is_none()
    }
}

/// Who waits for a reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Origin {
    /// The driver's caller, by token.
    Local(u64),
    /// A peer that forwarded the request.
    Peer(NodeId),
    /// A read over several ranges this host runs (one of its pieces).
    Scan,
}

/// A read over several ranges (or at a revision the client named), or a
/// compaction, that this host runs over every range: it draws the current
/// cluster revision from the revision oracle, sends each range its piece
/// (a read at the revision, [`ClientOp::ReadAt`], to the range's leader;
/// or the compaction, [`ClientOp::CompactRange`]) and makes one answer of
/// the pieces'.
#[derive(Debug)]
struct Scan {
    origin: Origin,
    req: ClientRequest,
    /// Routed again this many times.
    tries: u8,
    since: u64,
    /// The revision read at, once drawn (0 before).
    at: i64,
    /// Each piece's answer, in key order.
    parts: Vec<Option<ClientResponse>>,
    /// The cluster revision drawn.
    drawn: i64,
    /// Pieces of a compaction that found their range compacted already.
    compacted: usize,
}

#[derive(Debug)]
struct Waiting {
    origin: Origin,
    /// When it started waiting.
    since: u64,
    /// The group and leader it was forwarded to, if it was.
    forwarded: Option<(ShardId, NodeId)>,
    /// A local client's request, kept to route it again if a split moves
    /// its keys before it applies; with the times it was.
    again: Option<(ClientRequest, u8)>,
}

/// A reply to a forwarded write, held until the local store reaches its revision.
#[derive(Debug)]
struct Held {
    shard: ShardId,
    revision: i64,
    origin: Origin,
    reply: ClientReply,
}

/// A node and every decision around it; see the module docs.
pub struct Host {
    node: Node,
    cfg: HostConfig,
    out: HostOutbox,
    /// Requests waiting for a reply, by (client, seq).
    waiting: BTreeMap<(u64, u64), Waiting>,
    held: Vec<Held>,
    /// Local requests to route again at the next tick (at most
    /// `MAX_WAITING`).
    reroute: Vec<(ClientRequest, Origin, u8)>,
    /// Questions forwarded to the leader: id → (token, since).
    asks: BTreeMap<u64, (u64, u64)>,
    next_ask: u64,
    /// With [`HostBug::ForwardWithoutSession`]: our session's request →
    /// the client's.
    renamed: BTreeMap<(u64, u64), (u64, u64)>,
    rename_seq: u64,
    ticks: u64,
    /// The leader each group had when last looked at.
    leaders: BTreeMap<ShardId, NodeId>,
    /// Each group's members when last told.
    members: BTreeMap<ShardId, Vec<NodeId>>,
    removed_at: Option<u64>,
    publish_seq: u64,
    /// Tick and applied index of the store's last durable commit, per the schedule.
    store_committed: (u64, u64),
    /// Reads over several ranges in flight, by the id their draw carries.
    scans: BTreeMap<u64, Scan>,
    next_scan: u64,
    /// The pieces of those reads in flight: name → (read, piece).
    pieces: BTreeMap<(u64, u64), (u64, usize)>,
    piece_seq: u64,
    /// With [`HostBug::AckBeforeSync`]: the tick of the last real sync, and
    /// whether writes were acknowledged since without one (the store must
    /// not commit past a log that is not durable).
    lazy_sync: (u64, bool),
}

/// Whether a routing table covers every key: no gap a range this member
/// has not learned yet leaves.
fn whole(ranges: &[(crate::KeyRange, ShardId)]) -> bool {
    ranges.first().is_some_and(|(r, _)| r.start.is_empty())
        && ranges.last().is_some_and(|(r, _)| r.end.is_empty())
        && ranges.windows(2).all(|w| w[0].0.end == w[1].0.start)
}

/// Every group's applied index, summed: it grows whenever any group applies,
/// so a busy group makes the store's commit due even when the home group
/// is idle.
fn applied_mark(node: &Node) -> u64 {
    node.shards().filter_map(|s| node.applied(s)).sum()
}

impl Host {
    /// Wraps a node.
    pub fn new(node: Node, cfg: HostConfig) -> Host {
        assert!(
            cfg.store_commit_ticks >= 1,
            "store_commit_ticks must be at least 1"
        );
        let committed = applied_mark(&node);
        Host {
            node,
            cfg,
            out: HostOutbox::default(),
            waiting: BTreeMap::new(),
            held: Vec::new(),
            reroute: Vec::new(),
            asks: BTreeMap::new(),
            next_ask: 1,
            renamed: BTreeMap::new(),
            rename_seq: 0,
            ticks: 0,
            leaders: BTreeMap::new(),
            members: BTreeMap::new(),
            removed_at: None,
            publish_seq: 0,
            store_committed: (0, committed),
            lazy_sync: (0, false),
            scans: BTreeMap::new(),
            next_scan: 1,
            pieces: BTreeMap::new(),
            piece_seq: 0,
        }
    }

    /// The node (status, reads, the simulator's checkers).
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// The node, to act on directly (conf changes, leader transfer).
    pub fn node_mut(&mut self) -> &mut Node {
        &mut self.node
    }

    /// This member's id.
    pub fn id(&self) -> NodeId {
        self.node.id()
    }

    /// Ticks seen.
    pub fn ticks(&self) -> u64 {
        self.ticks
    }

    /// Requests waiting for a reply (forwarded or proposed here).
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    /// Forwarded writes answered but held until the local apply.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// The leader of `shard` known here (0: none).
    pub fn leader(&self, shard: ShardId) -> NodeId {
        self.node.raft(shard).map_or(0, |r| r.leader())
    }

    /// Whether this member leads `shard`.
    pub fn is_leader(&self, shard: ShardId) -> bool {
        self.node
            .raft(shard)
            .is_some_and(|r| r.role() == Role::Leader)
    }

    /// Whether this member was removed long enough ago to stop now.
    pub fn should_stop(&self) -> bool {
        self.removed_at
            .is_some_and(|at| self.ticks >= at + REMOVED_GRACE_TICKS)
    }

    /// The driver learned from outside (a peer refused us as removed) that
    /// this member was removed.
    pub fn mark_removed(&mut self) {
        if self.removed_at.is_none() {
            self.removed_at = Some(self.ticks);
            self.out.events.push(HostEvent::SelfRemoved);
        }
    }

    /// Who a member joining with peer URL `url` is (a member added at
    /// runtime that starts with an empty data dir asks a peer): its id and
    /// every member, by this member's registry. Refused, with why, when no
    /// member has that URL (it must be added first, as etcd requires) or it
    /// was removed.
    pub fn who_joins(&self, url: &str) -> Result<(NodeId, Vec<Member>), String> {
        let reg = self
            .node
            .members(self.node.home_shard())
            .filter(|r| !r.is_empty())
            .ok_or_else(|| "the member registry is not known yet; try again".to_string())?;
        let m = reg
            .members()
            .find(|m| m.peer_urls.iter().any(|u| u == url))
            .ok_or_else(|| {
                format!("no member has the peer URL {url} (add it first: etcdctl member add)")
            })?;
        assert!(
            !reg.is_removed(m.id),
            "the registry lists a removed member {:x}",
            m.id
        );
        Ok((m.id, reg.members().cloned().collect()))
    }

    /// Takes what may be done at once.
    pub fn outbox(&mut self) -> HostOutbox {
        self.route_draws();
        std::mem::take(&mut self.out)
    }

    /// Carries the revision oracle's traffic: this node's ranges' draws go
    /// to the home group's leader (this node's own oracle, or a message; a
    /// draw with no leader known is dropped, and asked again after a
    /// timeout), and the oracle's answers go back to the nodes that drew.
    fn route_draws(&mut self) {
        let me = self.node.id();
        let draws = self.node.take_draws();
        if !draws.is_empty() {
            let leader = self.leader(self.node.home_shard());
            for d in draws {
                if leader == me {
                    self.node.draw(me, d);
                } else if leader != 0 {
                    self.out.sends.push((leader, HostMsg::Draw(d)));
                }
            }
        }
        for g in self.node.take_grants() {
            if g.to == me && g.shard == 0 {
                self.on_read_grant(g.id, g.result);
            } else if g.to == me {
                self.node.granted(g);
            } else {
                self.out.sends.push((g.to, HostMsg::Grant(g)));
            }
        }
    }

    /// Whether the node has a `Ready` to hand out.
    pub fn has_ready(&self) -> bool {
        self.node.has_ready()
    }

    /// A client request from the driver's caller `token`; its reply comes
    /// out in an outbox under the same token.
    pub fn client(&mut self, token: u64, req: ClientRequest) {
        self.on_call(req, Origin::Local(token));
    }

    /// A question from the driver's caller `token`; the answer comes out in
    /// an outbox under the same token.
    pub fn ask(&mut self, token: u64, ask: Ask) {
        let shard = self.node.home_shard();
        let leader = self.leader(shard);
        if self.is_leader(shard) || leader == 0 || self.asks.len() >= MAX_WAITING {
            let a = self.answer_ask(&ask);
            self.out.answers.push((token, a));
        } else {
            let id = self.next_ask;
            self.next_ask += 1;
            self.asks.insert(id, (token, self.ticks));
            self.out.sends.push((leader, HostMsg::Ask { id, ask }));
        }
    }

    /// A message from peer `from`.
    pub fn peer(&mut self, from: NodeId, msg: HostMsg) {
        match msg {
            HostMsg::Raft(env) => {
                // A stale or misaddressed message is ordinary network noise.
                let _ = self.node.step(env);
            }
            HostMsg::Forward(req) => self.on_call(req, Origin::Peer(from)),
            HostMsg::ForwardReply(reply) => self.on_forward_reply(reply),
            HostMsg::Ask { id, ask } => {
                let answer = self.answer_ask(&ask);
                self.out.sends.push((from, HostMsg::Answer { id, answer }));
            }
            HostMsg::Answer { id, answer } => {
                if let Some((token, _)) = self.asks.remove(&id) {
                    self.out.answers.push((token, answer));
                }
            }
            HostMsg::Draw(d) => self.node.draw(from, d),
            HostMsg::Grant(g) => {
                // Only an answer to this node's own draw.
                if g.to == self.node.id() && g.shard == 0 {
                    self.on_read_grant(g.id, g.result);
                } else if g.to == self.node.id() {
                    self.node.granted(g);
                }
            }
        }
    }

    /// Advances time by one tick. `disk_idle`: nothing handed to the disk
    /// is unfinished, so every applied entry is durable in the log.
    pub fn tick(&mut self, disk_idle: bool) {
        self.ticks += 1;
        self.node.tick();
        for (req, origin, tries) in std::mem::take(&mut self.reroute) {
            self.call(req, origin, tries);
        }
        let shard = self.node.home_shard();
        if self.removed_at.is_none() && self.node.is_removed(shard) {
            self.mark_removed();
        }
        if self.removed_at.is_none() && self.ticks.is_multiple_of(PUBLISH_TICKS) {
            self.maybe_publish();
        }
        if self.ticks.is_multiple_of(50) {
            let now = self.ticks;
            self.waiting.retain(|_, w| now - w.since < WAITING_TICKS);
            self.asks.retain(|_, (_, at)| now - *at < WAITING_TICKS);
            self.scans.retain(|_, s| now - s.since < WAITING_TICKS);
            let scans = &self.scans;
            self.pieces.retain(|_, (id, _)| scans.contains_key(id));
            let waiting = &self.waiting;
            self.renamed.retain(|_, orig| waiting.contains_key(orig));
        }
        if disk_idle && !self.lazy_sync.1 {
            self.schedule_store_commit(false);
        }
    }

    /// The node's next `Ready`: persist it, send its `messages`, then
    /// [`Host::advance`] it. Its replies, events and member changes are
    /// dealt with here; what the driver must do at once goes to the outbox.
    pub fn ready(&mut self) -> Ready {
        assert!(
            self.out.commit_store.is_none(),
            "the store's commit must run before the next Ready"
        );
        let mut rd = self.node.ready();
        self.route_draws();
        for r in std::mem::take(&mut rd.replies) {
            if let Some(w) = self.waiting.remove(&(r.client, r.seq)) {
                self.answer_or_reroute(w, r);
            }
        }
        for (shard, members) in &rd.members {
            self.on_members(*shard, members);
        }
        self.follow_leaders();
        // A snapshot install moves the revision without events: check always.
        self.release_held();
        if self.cfg.bug == Some(HostBug::AckBeforeSync)
            && rd.must_sync
            && self.ticks < self.lazy_sync.0 + LAZY_SYNC_TICKS
        {
            rd.must_sync = false;
            self.lazy_sync.1 = true;
        }
        rd
    }

    /// The driver made `rd` durable (or wrote it, when it needed no sync)
    /// and sent its messages. `synced`: everything written so far is
    /// durable, so the store may commit.
    pub fn advance(&mut self, rd: Ready, synced: bool) {
        if rd.must_sync && synced {
            self.lazy_sync = (self.ticks, false);
        }
        self.node.advance(rd);
        if synced && !self.lazy_sync.1 {
            self.schedule_store_commit(false);
        }
    }

    /// Commits the store durably at `index` (the index the outbox named):
    /// the driver's IO, on the host's schedule.
    pub fn commit_store(&mut self, index: u64) -> Result<(), KvError> {
        let applied = self.applied();
        assert_eq!(
            index, applied,
            "the store commits at the applied index the schedule named"
        );
        self.node.commit_state_machines(true)?;
        self.store_committed = (self.ticks, index);
        Ok(())
    }

    /// The driver is stopping with nothing in flight: commit the store now.
    /// With an entry part way through it commits nothing (that entry's
    /// half must not become durable): the log replays what is missing.
    pub fn stop(&mut self) -> Result<(), KvError> {
        let applied = self.applied();
        self.out.commit_store = None;
        if self.node.applying() {
            return Ok(());
        }
        self.commit_store(applied)
    }

    fn applied(&self) -> u64 {
        applied_mark(&self.node)
    }

    fn schedule_store_commit(&mut self, force: bool) {
        // An entry part way through would become durable half applied: the
        // commit waits for it (it completes within a few Readies).
        if self.node.applying() {
            return;
        }
        let applied = self.applied();
        let (at, index) = self.store_committed;
        if applied == index && !force {
            return;
        }
        let due = force
            || self.ticks.saturating_sub(at) >= self.cfg.store_commit_ticks
            || applied.saturating_sub(index) >= self.cfg.store_commit_entries;
        if due {
            self.out.commit_store = Some(applied);
        }
    }

    /// The session under which this member publishes itself (never 0, and
    /// apart from the clients' sessions, which are spread over all of u64).
    fn own_session(&self, salt: u64) -> u64 {
        (self.node.id().rotate_left(7) ^ salt) | 1
    }

    fn maybe_publish(&mut self) {
        let shard = self.node.home_shard();
        let Some(reg) = self.node.members(shard) else {
            return;
        };
        let Some(me) = reg.get(self.node.id()) else {
            return;
        };
        if me.name == self.cfg.name && me.client_urls == self.cfg.client_urls {
            return;
        }
        let op = ClientOp::Member(MemberOp::Publish {
            id: self.node.id(),
            name: self.cfg.name.clone(),
            client_urls: self.cfg.client_urls.clone(),
        });
        self.publish_seq += 1;
        let req = ClientRequest {
            client: self.own_session(0x5075_626c_6973_6800),
            seq: self.publish_seq,
            op,
        };
        // Nobody waits for the answer (token 0 is dropped): the registry
        // shows the outcome.
        self.on_call(req, Origin::Local(0));
    }

    fn on_members(&mut self, shard: ShardId, members: &[Member]) {
        let now: Vec<NodeId> = members.iter().map(|m| m.id).collect();
        let before = self.members.insert(shard, now.clone()).unwrap_or_default();
        let Some(reg) = self.node.members(shard) else {
            return;
        };
        for id in before {
            if !now.contains(&id) && reg.is_removed(id) {
                self.out.events.push(HostEvent::MemberRemoved { shard, id });
            }
        }
    }

    fn follow_leaders(&mut self) {
        let shards: Vec<ShardId> = self.node.shards().collect();
        for shard in shards {
            let Some(r) = self.node.raft(shard) else {
                continue;
            };
            let (leader, term) = (r.leader(), r.term());
            let old = self.leaders.insert(shard, leader).unwrap_or(0);
            if old != leader {
                self.out.events.push(HostEvent::Leader {
                    shard,
                    leader,
                    term,
                });
                self.fail_forwarded_to(shard, old, leader);
            }
        }
    }

    /// Requests forwarded to a member that is no longer `shard`'s leader
    /// will likely never be answered: tell their callers to retry now
    /// (under the same name, so a forward that did get through is not
    /// applied twice).
    fn fail_forwarded_to(&mut self, shard: ShardId, old: NodeId, leader: NodeId) {
        if old == 0 {
            return;
        }
        let lost: Vec<(u64, u64)> = self
            .waiting
            .iter()
            .filter(|(_, w)| w.forwarded == Some((shard, old)))
            .map(|(k, _)| *k)
            .collect();
        for (client, seq) in lost {
            let w = self
                .waiting
                .remove(&(client, seq))
                .expect("collected from the table");
            self.answer(
                w.origin,
                ClientReply {
                    client,
                    seq,
                    result: Err(ClientError::NotLeader { leader }),
                },
            );
        }
    }

    /// Answers `reply`, unless it says a split moved the request's keys
    /// away before it took effect, or its revision was taken (it certainly
    /// took no effect either way): then a local client's request is routed
    /// again at the next tick, a bounded number of times, under the same
    /// (client, seq).
    fn answer_or_reroute(&mut self, w: Waiting, reply: ClientReply) {
        let again = matches!(
            reply.result,
            Err(ClientError::WrongShard { .. } | ClientError::RevisionTaken)
        );
        if let (true, Some((req, tries))) = (again, w.again) {
            if tries < MAX_REROUTES && self.reroute.len() < MAX_WAITING {
                self.reroute.push((req, w.origin, tries + 1));
                return;
            }
        }
        self.answer(w.origin, reply);
    }

    fn answer(&mut self, origin: Origin, reply: ClientReply) {
        match origin {
            Origin::Local(0) => {}
            Origin::Local(token) => self.out.replies.push((token, reply)),
            Origin::Peer(p) => self.out.sends.push((p, HostMsg::ForwardReply(reply))),
            Origin::Scan => self.on_piece(reply),
        }
    }

    /// Whether this read goes over several ranges, or names a revision,
    /// where ranges split: then it is read at one cluster revision, piece
    /// by piece ([`Scan`]).
    fn scans(&self, req: &ClientRequest) -> bool {
        if !self.node.splits() || self.node.ranges().len() <= 1 {
            return false;
        }
        match &req.op {
            // A serializable read over several ranges is served as a
            // linearizable one (stronger than asked); one in a range reads
            // that range's member copy, at any revision it names.
            ClientOp::Range {
                req: r,
                serializable,
                ..
            } => {
                let spans = self.node.route(req) == Err(ClientError::CrossShard);
                spans || (r.revision > 0 && !serializable)
            }
            ClientOp::Write(cmd) => matches!(cmd.inner(), synod_kv::Command::Compact { .. }),
            _ => false,
        }
    }

    /// Starts a read over several ranges: draws the revision to read at.
    fn start_scan(&mut self, req: ClientRequest, origin: Origin, tries: u8) {
        if self.scans.len() >= MAX_SCANS {
            let busy = ClientReply {
                client: req.client,
                seq: req.seq,
                result: Err(ClientError::Busy),
            };
            return self.answer(origin, busy);
        }
        let id = self.next_scan;
        self.next_scan += 1;
        self.scans.insert(
            id,
            Scan {
                origin,
                req,
                tries,
                since: self.ticks,
                at: 0,
                parts: Vec::new(),
                drawn: 0,
                compacted: 0,
            },
        );
        let me = self.node.id();
        let leader = self.leader(self.node.home_shard());
        let d = Draw {
            shard: 0,
            id,
            count: 1,
        };
        if leader == me {
            self.node.draw(me, d);
        } else if leader != 0 {
            self.out.sends.push((leader, HostMsg::Draw(d)));
        } else {
            self.end_scan(id, Err(ClientError::NotLeader { leader: 0 }));
        }
    }

    /// The revision to read at came: one piece per range, each sent to its
    /// range's leader.
    fn on_read_grant(&mut self, id: u64, result: Result<i64, ClientError>) {
        let Some(scan) = self.scans.get_mut(&id) else {
            return;
        };
        if scan.at != 0 {
            return;
        }
        let drawn = match result {
            Ok(r) => r,
            Err(e) => return self.end_scan(id, Err(e)),
        };
        scan.drawn = drawn;
        if let ClientOp::Write(cmd) = &scan.req.op {
            let synod_kv::Command::Compact { revision } = *cmd.inner() else {
                unreachable!("only compactions are spread over the ranges")
            };
            return self.spread_compaction(id, revision, drawn);
        }
        let ClientOp::Range { req: r, auth, .. } = &scan.req.op else {
            unreachable!("only reads and compactions are spread over the ranges")
        };
        let at = if r.revision > 0 { r.revision } else { drawn };
        if at > drawn {
            return self.end_scan(id, Err(ClientError::Kv(KvError::FutureRevision)));
        }
        scan.at = at;
        let ranges = self.node.ranges();
        // A gap in this member's table (a range it has not learned yet):
        // route the read again shortly.
        if !whole(ranges) {
            let key = r.key.clone();
            return self.end_scan(id, Err(ClientError::WrongShard { key }));
        }
        let mut sends = Vec::new();
        for (range, _) in ranges {
            if let Some((k, e)) = crate::routing::intersect(range, &r.key, &r.range_end) {
                let mut piece = r.part(k, e);
                piece.revision = at;
                sends.push(ClientOp::ReadAt {
                    req: piece,
                    auth: auth.clone(),
                });
            }
        }
        scan.parts = vec![None; sends.len()];
        self.send_pieces(id, sends);
    }

    /// A compaction at `revision` of every range, the cluster revision
    /// being `drawn`: one piece per range (the compaction of its part of
    /// the history).
    fn spread_compaction(&mut self, id: u64, revision: i64, drawn: i64) {
        if revision > drawn {
            return self.end_scan(id, Err(ClientError::Kv(KvError::FutureRevision)));
        }
        let ranges = self.node.ranges();
        if !whole(ranges) {
            let key = Vec::new();
            return self.end_scan(id, Err(ClientError::WrongShard { key }));
        }
        let sends: Vec<ClientOp> = ranges
            .iter()
            .map(|(r, _)| ClientOp::CompactRange {
                key: r.start.clone(),
                revision,
            })
            .collect();
        if let Some(scan) = self.scans.get_mut(&id) {
            scan.at = revision;
            scan.parts = vec![None; sends.len()];
        }
        self.send_pieces(id, sends);
    }

    /// Sends scan `id`'s pieces, each under a name of this host's own.
    fn send_pieces(&mut self, id: u64, sends: Vec<ClientOp>) {
        let client = self.own_session(0x5363_616e_0000_0000);
        for (i, op) in sends.into_iter().enumerate() {
            self.piece_seq += 1;
            let seq = self.piece_seq;
            self.pieces.insert((client, seq), (id, i));
            self.call(ClientRequest { client, seq, op }, Origin::Scan, 0);
        }
    }

    /// One piece's answer: kept, or the read ends (routed again if it may).
    fn on_piece(&mut self, reply: ClientReply) {
        let Some((id, i)) = self.pieces.remove(&(reply.client, reply.seq)) else {
            return;
        };
        let Some(scan) = self.scans.get_mut(&id) else {
            return;
        };
        let result = match reply.result {
            // A range compacted there already (a compaction tried again
            // after part of it was done): that piece is done.
            Err(ClientError::Kv(KvError::Compacted))
                if matches!(scan.req.op, ClientOp::Write(_)) =>
            {
                scan.compacted += 1;
                Ok(ClientResponse::Write(synod_kv::Response::Compact {
                    revision: 0,
                }))
            }
            r => r,
        };
        match result {
            Ok(resp) => {
                scan.parts[i] = Some(resp);
                if !scan.parts.iter().all(Option::is_some) {
                    return;
                }
                if scan.compacted == scan.parts.len() {
                    // Every range was compacted there already: as etcd.
                    return self.end_scan(id, Err(ClientError::Kv(KvError::Compacted)));
                }
                let parts: Vec<ClientResponse> = scan.parts.drain(..).flatten().collect();
                let answer = match &scan.req.op {
                    ClientOp::Range { req: r, .. } => {
                        let ranges = parts
                            .into_iter()
                            .map(|p| match p {
                                ClientResponse::Range(rr) => rr,
                                other => panic!("a read's piece answered {other:?}"),
                            })
                            .collect();
                        ClientResponse::Range(synod_kv::merge_ranges(r, ranges, scan.at))
                    }
                    _ => ClientResponse::Write(synod_kv::Response::Compact {
                        revision: scan.drawn,
                    }),
                };
                self.end_scan(id, Ok(answer));
            }
            Err(e) => self.end_scan(id, Err(e)),
        }
    }

    /// Answers a read over several ranges, or routes it again (a bounded
    /// number of times, at the next tick) when it failed in a way a retry
    /// may mend.
    fn end_scan(&mut self, id: u64, result: Result<ClientResponse, ClientError>) {
        let Some(scan) = self.scans.remove(&id) else {
            return;
        };
        let again = matches!(
            result,
            Err(ClientError::NotLeader { .. }
                | ClientError::Busy
                | ClientError::WrongShard { .. }
                | ClientError::CrossShard
                | ClientError::RevisionTaken)
        );
        if again && scan.tries < MAX_REROUTES && self.reroute.len() < MAX_WAITING {
            self.reroute.push((scan.req, scan.origin, scan.tries + 1));
            return;
        }
        let reply = ClientReply {
            client: scan.req.client,
            seq: scan.req.seq,
            result,
        };
        self.answer(scan.origin, reply);
    }

    fn wait(&mut self, req: &ClientRequest, w: Waiting) -> bool {
        let key = (req.client, req.seq);
        if self.waiting.len() >= MAX_WAITING && !self.waiting.contains_key(&key) {
            let busy = ClientReply {
                client: req.client,
                seq: req.seq,
                result: Err(ClientError::Busy),
            };
            self.answer(w.origin, busy);
            return false;
        }
        self.waiting.insert(key, w);
        true
    }

    fn on_call(&mut self, req: ClientRequest, origin: Origin) {
        self.call(req, origin, 0);
    }

    fn call(&mut self, mut req: ClientRequest, origin: Origin, tries: u8) {
        // Only where ranges split can a request's keys move under it.
        let again = (self.node.splits() && matches!(origin, Origin::Local(_)))
            .then(|| (req.clone(), tries));
        if self.cfg.bug == Some(HostBug::StaleReads)
            && matches!(req.op, ClientOp::Range { .. })
            && self.node.route(&req).is_ok_and(|s| !self.is_leader(s))
        {
            if let ClientOp::Range { serializable, .. } = &mut req.op {
                *serializable = true;
            }
        }
        if self.scans(&req) {
            return self.start_scan(req, origin, tries);
        }
        let needs_leader = matches!(
            req.op,
            ClientOp::Write(_)
                | ClientOp::LeaseKeepAlive { .. }
                | ClientOp::Member(_)
                | ClientOp::ReadAt { .. }
                | ClientOp::CompactRange { .. }
        );
        let shard = match self.node.route(&req) {
            Ok(s) => s,
            Err(e) => {
                let reply = ClientReply {
                    client: req.client,
                    seq: req.seq,
                    result: Err(e),
                };
                // No range here holds the key yet (its group is waiting for
                // its first snapshot): route it again shortly.
                let w = Waiting {
                    origin,
                    since: self.ticks,
                    forwarded: None,
                    again,
                };
                return self.answer_or_reroute(w, reply);
            }
        };
        let leader = self.leader(shard);
        let me = self.node.id();
        if needs_leader && leader != 0 && leader != me {
            match origin {
                // Never forward twice: the caller will retry at the leader we name.
                Origin::Peer(_) => {
                    let reply = ClientReply {
                        client: req.client,
                        seq: req.seq,
                        result: Err(ClientError::NotLeader { leader }),
                    };
                    self.answer(origin, reply);
                }
                Origin::Local(_) | Origin::Scan => {
                    let w = Waiting {
                        origin,
                        since: self.ticks,
                        forwarded: Some((shard, leader)),
                        again,
                    };
                    if self.wait(&req, w) {
                        let req = self.rename(req);
                        self.out.sends.push((leader, HostMsg::Forward(req)));
                    }
                }
            }
            return;
        }
        let w = Waiting {
            origin,
            since: self.ticks,
            forwarded: None,
            again,
        };
        if self.wait(&req, w) {
            self.node.request(req);
        }
    }

    /// The name a forwarded request travels under: the client's own, but
    /// for the planted bug.
    fn rename(&mut self, req: ClientRequest) -> ClientRequest {
        if self.cfg.bug != Some(HostBug::ForwardWithoutSession) {
            return req;
        }
        self.rename_seq += 1;
        let ours = (self.own_session(0x4677_6400_0000_0000), self.rename_seq);
        self.renamed.insert(ours, (req.client, req.seq));
        ClientRequest {
            client: ours.0,
            seq: ours.1,
            op: req.op,
        }
    }

    fn on_forward_reply(&mut self, mut reply: ClientReply) {
        if let Some((client, seq)) = self.renamed.remove(&(reply.client, reply.seq)) {
            reply.client = client;
            reply.seq = seq;
        }
        let Some(w) = self.waiting.remove(&(reply.client, reply.seq)) else {
            return; // failed over already, or forgotten: its caller retried
        };
        let Some((shard, _)) = w.forwarded else {
            // Only forwarded requests get forwarded replies; a peer's stray
            // answer to a name we proposed ourselves is dropped.
            self.waiting.insert((reply.client, reply.seq), w);
            return;
        };
        if let Ok(ClientResponse::Write(resp)) = &reply.result {
            let revision = resp.revision();
            let hold = self.cfg.bug != Some(HostBug::ReplyBeforeApply)
                && revision > self.local_revision(shard)
                && self.held.len() < MAX_WAITING;
            if hold {
                self.held.push(Held {
                    shard,
                    revision,
                    origin: w.origin,
                    reply,
                });
                return;
            }
        }
        self.answer_or_reroute(w, reply);
    }

    fn local_revision(&self, shard: ShardId) -> i64 {
        self.node
            .state_machine(shard)
            .map_or(0, |sm| sm.kv().revision())
    }

    /// Answers the held forwarded writes this member has now applied.
    fn release_held(&mut self) {
        if self.held.is_empty() {
            return;
        }
        let mut keep = Vec::with_capacity(self.held.len());
        for h in std::mem::take(&mut self.held) {
            if h.revision <= self.local_revision(h.shard) {
                self.answer(h.origin, h.reply);
            } else {
                keep.push(h);
            }
        }
        self.held = keep;
    }

    fn answer_ask(&self, ask: &Ask) -> Answer {
        match ask {
            Ask::LeaseTtl { id, keys } => Answer::LeaseTtl(self.lease_ttl(*id, *keys)),
        }
    }

    fn lease_ttl(&self, id: i64, keys: bool) -> Result<LeaseTtl, ClientError> {
        let shard = self.node.home_shard();
        if !self.is_leader(shard) {
            return Err(ClientError::NotLeader {
                leader: self.leader(shard),
            });
        }
        let sm = self
            .node
            .state_machine(shard)
            .expect("the home shard is hosted here");
        let (granted, keys) = sm
            .kv()
            .lease_time_to_live(id, keys)
            .map_err(ClientError::Kv)?;
        let ttl = self.node.lease_remaining(shard, id).unwrap_or(granted);
        Ok(LeaseTtl { ttl, granted, keys })
    }
}
