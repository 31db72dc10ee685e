//! The node runtime: one tokio task (the actor) owns the sans-IO [`Node`]
//! and feeds it ticks, peer messages and client requests from one bounded
//! inbox; a dedicated thread makes each `Ready`'s records durable with one
//! fdatasync (group commit: whatever arrives during a sync goes into the
//! next one); only then are that `Ready`'s messages sent and the node
//! advanced. A `Ready` whose only record is a new commit index
//! (`must_sync` false) is handed over to be written without a sync, and its
//! messages leave at once.
//!
//! The state machine's store (redb) takes the applied entries in one open
//! write transaction and commits it durably, with the applied index, every
//! `--backend-batch-interval` or `--backend-batch-limit` entries — only right
//! after a `Ready`'s sync, when every entry applied so far is durable in the
//! WAL, so the store never runs ahead of the log it is replayed from.
//!
//! Client requests that need the leader (writes, lease keep-alives) are
//! forwarded to it by the transport when this node is a follower;
//! linearizable reads are confirmed by Raft's ReadIndex (which a follower
//! forwards by itself) and served here, serializable reads at once.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use synod_node::{
    ClientError, ClientOp, ClientReply, ClientRequest, ClientResponse, Node, Persist, ShardId,
};
use synod_raft::Role;
use tokio::sync::{mpsc, oneshot};

use crate::disk::{Disk, DiskError};
use crate::shared::Shared;
use crate::transport::Transport;
use crate::watch::{HeaderInfo, WatchHub};
use crate::wire::{Answer, Ask, LeaseTtl, PeerMsg};

/// Capacity of the actor's inbox.
pub const INBOX: usize = 4096;
/// Most writes handed to the disk thread and not yet answered (at most one
/// of them waits for a sync; the others only carry commit indexes).
const DISK_QUEUE: usize = 16;
/// Most requests waiting for a reply in one node.
const MAX_WAITING: usize = 65_536;
/// A waiting request is forgotten after this many ticks without a reply
/// (its caller has long given up and retried or failed).
const WAITING_TICKS: u64 = 600;
/// Ticks between attempts to publish this member's name and client URLs.
const PUBLISH_TICKS: u64 = 5;
/// Ticks a removed member keeps running (its last messages leave) before it stops.
const REMOVED_GRACE_TICKS: u64 = 10;

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
    /// Run a closure with the node (queries, watch registration).
    With(Box<dyn FnOnce(&mut Core) + Send>),
    /// Stop after the sync in flight.
    Stop,
}

enum Origin {
    Local(oneshot::Sender<ClientReply>),
    Peer(u64),
}

/// Everything the actor owns.
pub struct Core {
    /// The node.
    pub node: Node,
    /// Its one shard.
    pub shard: ShardId,
    /// Published state.
    pub shared: Arc<Shared>,
    /// Watchers.
    pub watches: WatchHub,
    transport: Transport,
    /// Requests waiting for a reply: who asked, when, and the leader it was forwarded to.
    waiting: BTreeMap<(u64, u64), (Origin, u64, Option<u64>)>,
    last_leader: u64,
    /// Replies to writes this member forwarded, held until this member's
    /// store reaches the write's revision, so a client reads its own write
    /// on the member that acknowledged it (as etcd does).
    held: Vec<(i64, Origin, ClientReply)>,
    asks: BTreeMap<u64, (oneshot::Sender<Answer>, u64)>,
    next_ask: u64,
    ticks: u64,
    /// When this member learned it was removed (it stops a little later).
    removed_at: Option<u64>,
    /// Sequence of this member's publish requests.
    publish_seq: u64,
    /// When the store was last committed durably, and at which index.
    store_committed: (std::time::Instant, u64),
    /// The store's failure: the node stops.
    store_failed: Option<String>,
}

impl Core {
    /// Wraps a node.
    pub fn new(node: Node, shared: Arc<Shared>, transport: Transport) -> Core {
        let shard = node.shard_for(b"");
        Core {
            node,
            shard,
            shared,
            watches: WatchHub::default(),
            transport,
            waiting: BTreeMap::new(),
            held: Vec::new(),
            asks: BTreeMap::new(),
            next_ask: 1,
            ticks: 0,
            last_leader: 0,
            removed_at: None,
            publish_seq: 0,
            store_committed: (std::time::Instant::now(), 0),
            store_failed: None,
        }
    }

    /// The session under which this member publishes itself (never 0, and
    /// apart from the gRPC sessions, which are spread over all of u64).
    fn publish_client(&self) -> u64 {
        (self.shared.cfg.id.rotate_left(7) ^ 0x5075_626c_6973_6800) | 1
    }

    /// Once started, a member announces its name and client URLs through
    /// the log (etcd's publish), until the registry shows them.
    fn maybe_publish(&mut self) {
        let cfg = &self.shared.cfg;
        let Some(reg) = self.node.members(self.shard) else {
            return;
        };
        let Some(me) = reg.get(cfg.id) else { return };
        if me.name == cfg.name && me.client_urls == cfg.advertise_client_urls {
            return;
        }
        let op = ClientOp::Member(synod_node::MemberOp::Publish {
            id: cfg.id,
            name: cfg.name.clone(),
            client_urls: cfg.advertise_client_urls.clone(),
        });
        self.publish_seq += 1;
        let req = ClientRequest {
            client: self.publish_client(),
            seq: self.publish_seq,
            op,
        };
        // Nobody waits for the answer: the registry shows the outcome.
        let (tx, _rx) = oneshot::channel();
        self.on_call(req, Origin::Local(tx));
    }

    /// Whether this member was removed long enough ago to stop now.
    pub fn should_stop(&self) -> bool {
        self.removed_at
            .is_some_and(|at| self.ticks >= at + REMOVED_GRACE_TICKS)
    }

    /// Follows a change of the member registry.
    fn on_members(&mut self, members: Vec<synod_node::Member>) {
        let gone = self.shared.set_members(members);
        self.transport.set_members(&self.shared.member_list());
        for id in gone {
            if self
                .node
                .members(self.shard)
                .is_some_and(|r| r.is_removed(id))
            {
                self.shared.mark_removed(id);
                self.shared
                    .log(format_args!("member {id:x} was removed from the cluster"));
            }
        }
    }

    fn applied(&self) -> u64 {
        self.node.applied(self.shard).unwrap_or(0)
    }

    /// The store's durable applied index.
    fn store_durable(&self) -> u64 {
        self.node
            .state_machine(self.shard)
            .and_then(|sm| sm.durable_applied())
            .unwrap_or(0)
    }

    /// Commits the store durably if it is due (or `force`). Call only when
    /// every entry applied so far is durable in the WAL.
    fn commit_store(&mut self, force: bool) {
        if self.store_failed.is_some() {
            return;
        }
        let applied = self.applied();
        let (at, index) = self.store_committed;
        if applied == index && !force {
            return;
        }
        let cfg = &self.shared.cfg;
        let due = force
            || at.elapsed() >= cfg.backend_batch_interval
            || applied - index >= cfg.backend_batch_limit;
        if !due {
            return;
        }
        let t0 = std::time::Instant::now();
        let committed = self.node.commit_state_machines(true);
        self.shared.backend_commit.observe(t0.elapsed());
        match committed {
            Ok(()) => self.store_committed = (std::time::Instant::now(), applied),
            Err(e) => self.store_failed = Some(e.to_string()),
        }
    }

    /// Header data for responses built inside the actor.
    pub fn header_info(&self) -> HeaderInfo {
        HeaderInfo {
            cluster_id: self.shared.cfg.cluster_id,
            member_id: self.shared.cfg.id,
            term: self.node.raft(self.shard).map_or(0, |r| r.term()),
        }
    }

    /// The leader known to this node (0: none).
    pub fn leader(&self) -> u64 {
        self.node.raft(self.shard).map_or(0, |r| r.leader())
    }

    /// Whether this node leads its group.
    pub fn is_leader(&self) -> bool {
        self.node
            .raft(self.shard)
            .is_some_and(|r| r.role() == Role::Leader)
    }

    /// The key-value store.
    pub fn kv(&self) -> &synod_kv::KvStore<synod_kv::DynEngine> {
        self.node
            .state_machine(self.shard)
            .expect("the node hosts its shard")
            .kv()
    }

    /// Sends a peer message.
    pub fn send_peer(&self, to: u64, msg: PeerMsg) {
        self.transport.send(to, msg);
    }

    fn on_tick(&mut self) {
        self.ticks += 1;
        self.node.tick();
        let h = self.header_info();
        let kv = self
            .node
            .state_machine(self.shard)
            .expect("the node hosts its shard")
            .kv();
        self.watches.catch_up(kv, h);
        if self.removed_at.is_none()
            && (self.node.is_removed(self.shard)
                || self.shared.self_removed.load(Ordering::Relaxed))
        {
            self.shared.self_removed.store(true, Ordering::Relaxed);
            self.shared.log(format_args!(
                "this member was removed from the cluster; stopping"
            ));
            self.removed_at = Some(self.ticks);
        }
        if self.removed_at.is_none() && self.ticks.is_multiple_of(PUBLISH_TICKS) {
            self.maybe_publish();
        }
        if self.ticks.is_multiple_of(50) {
            let now = self.ticks;
            self.waiting
                .retain(|_, (_, at, _)| now - *at < WAITING_TICKS);
            self.asks.retain(|_, (_, at)| now - *at < WAITING_TICKS);
        }
    }

    fn wait(&mut self, req: &ClientRequest, origin: Origin, to: Option<u64>) -> bool {
        let key = (req.client, req.seq);
        if self.waiting.len() >= MAX_WAITING && !self.waiting.contains_key(&key) {
            self.answer(
                origin,
                ClientReply {
                    client: req.client,
                    seq: req.seq,
                    result: Err(ClientError::Busy),
                },
            );
            return false;
        }
        self.waiting.insert(key, (origin, self.ticks, to));
        true
    }

    fn answer(&self, origin: Origin, reply: ClientReply) {
        match origin {
            Origin::Local(tx) => {
                let _ = tx.send(reply);
            }
            Origin::Peer(p) => self.transport.send(p, PeerMsg::ForwardReply(reply)),
        }
    }

    fn on_call(&mut self, req: ClientRequest, origin: Origin) {
        let needs_leader = matches!(
            req.op,
            ClientOp::Write(_) | ClientOp::LeaseKeepAlive { .. } | ClientOp::Member(_)
        );
        let leader = self.leader();
        let me = self.shared.cfg.id;
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
                Origin::Local(_) => {
                    if self.wait(&req, origin, Some(leader)) {
                        self.transport.send(leader, PeerMsg::Forward(req));
                    }
                }
            }
            return;
        }
        if self.wait(&req, origin, None) {
            self.node.request(req);
        }
    }

    fn lease_ttl(&self, id: i64, keys: bool) -> Result<LeaseTtl, ClientError> {
        if !self.is_leader() {
            return Err(ClientError::NotLeader {
                leader: self.leader(),
            });
        }
        let (granted, keys) = self
            .kv()
            .lease_time_to_live(id, keys)
            .map_err(ClientError::Kv)?;
        let ttl = self.node.lease_remaining(self.shard, id).unwrap_or(granted);
        Ok(LeaseTtl { ttl, granted, keys })
    }

    fn on_ask(&mut self, ask: &Ask) -> Answer {
        match ask {
            Ask::LeaseTtl { id, keys } => Answer::LeaseTtl(self.lease_ttl(*id, *keys)),
        }
    }

    fn on_input(&mut self, input: Input) {
        match input {
            Input::Peer { from, msg } => match msg {
                PeerMsg::Raft(env) => {
                    // A stale or misaddressed message is ordinary network noise.
                    let _ = self.node.step(env);
                }
                PeerMsg::Forward(req) => self.on_call(req, Origin::Peer(from)),
                PeerMsg::ForwardReply(reply) => {
                    if let Some((o, _, _)) = self.waiting.remove(&(reply.client, reply.seq)) {
                        match &reply.result {
                            Ok(ClientResponse::Write(resp))
                                if resp.revision() > self.local_revision()
                                    && self.held.len() < MAX_WAITING =>
                            {
                                self.held.push((resp.revision(), o, reply));
                            }
                            _ => self.answer(o, reply),
                        }
                    }
                }
                PeerMsg::Ask { id, ask } => {
                    let answer = self.on_ask(&ask);
                    self.transport.send(from, PeerMsg::Answer { id, answer });
                }
                PeerMsg::Answer { id, answer } => {
                    if let Some((tx, _)) = self.asks.remove(&id) {
                        let _ = tx.send(answer);
                    }
                }
                // The transport answers probes itself.
                PeerMsg::Probe { .. } => {}
            },
            Input::Call { req, tx } => self.on_call(req, Origin::Local(tx)),
            Input::Ask { ask, tx } => {
                let leader = self.leader();
                if self.is_leader() || leader == 0 || self.asks.len() >= MAX_WAITING {
                    let _ = tx.send(self.on_ask(&ask));
                } else {
                    let id = self.next_ask;
                    self.next_ask += 1;
                    self.asks.insert(id, (tx, self.ticks));
                    self.transport.send(leader, PeerMsg::Ask { id, ask });
                }
            }
            Input::With(f) => f(self),
            Input::Stop => {}
        }
    }

    fn publish(&mut self) {
        let s = self.shared.clone();
        if let Some(r) = self.node.raft(self.shard) {
            let leader = r.leader();
            s.leader.store(leader, Ordering::Relaxed);
            s.term.store(r.term(), Ordering::Relaxed);
            if leader != self.last_leader {
                s.log(format_args!("leader is now {leader:x} (term {})", r.term()));
                s.leader_changes.fetch_add(1, Ordering::Relaxed);
                let old = std::mem::replace(&mut self.last_leader, leader);
                self.fail_forwarded_to(old, leader);
            }
        }
        s.revision.store(self.kv().revision(), Ordering::Relaxed);
    }

    /// Requests forwarded to a member that is no longer the leader will
    /// likely never be answered: tell their callers to retry now (under the
    /// same name, so a forward that did get through is not applied twice).
    fn fail_forwarded_to(&mut self, old: u64, leader: u64) {
        if old == 0 {
            return;
        }
        let lost: Vec<(u64, u64)> = self
            .waiting
            .iter()
            .filter(|(_, (_, _, to))| *to == Some(old))
            .map(|(k, _)| *k)
            .collect();
        for (client, seq) in lost {
            if let Some((o, _, _)) = self.waiting.remove(&(client, seq)) {
                let reply = ClientReply {
                    client,
                    seq,
                    result: Err(ClientError::NotLeader { leader }),
                };
                self.answer(o, reply);
            }
        }
    }

    /// Hands out Readies until one needs a sync (or `queue` is full). Each
    /// job handed to the disk thread is pushed on `queue`, with its Ready
    /// when that waits for the sync; Readies that need no sync (nothing to
    /// write, or only a commit index) are sent and advanced at once.
    fn drive(
        &mut self,
        disk: &std::sync::mpsc::SyncSender<DiskJob>,
        queue: &mut std::collections::VecDeque<Option<synod_node::Ready>>,
    ) {
        for _ in 0..64 {
            if queue.len() >= DISK_QUEUE || !self.node.has_ready() {
                break;
            }
            let mut rd = self.node.ready();
            for (shard, members) in std::mem::take(&mut rd.members) {
                if shard == self.shard {
                    self.on_members(members);
                }
            }
            for r in rd.replies.drain(..) {
                if let Some((o, _, _)) = self.waiting.remove(&(r.client, r.seq)) {
                    self.answer(o, r);
                }
            }
            if !rd.events.is_empty() {
                let events: Vec<synod_kv::Event> = rd.events.drain(..).map(|(_, e)| e).collect();
                let h = self.header_info();
                let kv = self
                    .node
                    .state_machine(self.shard)
                    .expect("the node hosts its shard")
                    .kv();
                self.watches.publish(&events, kv, h);
            }
            self.publish();
            // A snapshot install moves the revision without events: check always.
            self.release_held();
            // A leader's appends may go out while its own write is synced.
            for env in rd.early_messages.drain(..) {
                let to = env.msg.to;
                self.transport.send(to, PeerMsg::Raft(env));
            }
            if rd.persist.is_empty() {
                self.send_and_advance(rd, queue.is_empty());
                continue;
            }
            let job = DiskJob {
                persist: std::mem::take(&mut rd.persist),
                store_durable: self.store_durable(),
                sync: rd.must_sync,
            };
            // Never blocks: the channel holds DISK_QUEUE jobs.
            disk.send(job)
                .expect("the disk thread outlives the actor's loop");
            if rd.must_sync {
                queue.push_back(Some(rd));
                return;
            }
            queue.push_back(None);
            self.send_and_advance(rd, false);
        }
    }

    fn local_revision(&self) -> i64 {
        self.node
            .state_machine(self.shard)
            .expect("the node hosts its shard")
            .kv()
            .revision()
    }

    /// Answers the held forwarded writes this member has now applied.
    fn release_held(&mut self) {
        if self.held.is_empty() {
            return;
        }
        let rev = self.local_revision();
        let (ready, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut self.held)
            .into_iter()
            .partition(|(r, _, _)| *r <= rev);
        self.held = keep;
        for (_, o, reply) in ready {
            self.answer(o, reply);
        }
    }

    /// Sends `rd`'s messages and advances the node; `synced`: everything
    /// written so far is durable, so the store may commit.
    fn send_and_advance(&mut self, mut rd: synod_node::Ready, synced: bool) {
        for env in rd.messages.drain(..) {
            let to = env.msg.to;
            self.transport.send(to, PeerMsg::Raft(env));
        }
        self.node.advance(rd);
        if synced {
            // Every entry applied so far is durable in the WAL now.
            self.commit_store(false);
        }
    }
}

/// Records of one `Ready` for the disk thread.
struct DiskJob {
    persist: Vec<Persist>,
    /// The store's durable applied index (bounds WAL compaction).
    store_durable: u64,
    /// Whether to fdatasync after writing.
    sync: bool,
}

/// Runs the actor until [`Input::Stop`] or until every sender is gone.
pub async fn run(
    mut core: Core,
    mut inbox: mpsc::Receiver<Input>,
    mut disk: Disk,
) -> Result<(), DiskError> {
    let (ptx, prx) = std::sync::mpsc::sync_channel::<DiskJob>(DISK_QUEUE);
    let (dtx, mut drx) = mpsc::channel::<Result<u64, DiskError>>(DISK_QUEUE);
    let shared = core.shared.clone();
    std::thread::Builder::new()
        .name(format!("synod-disk-{}", shared.cfg.name))
        .spawn(move || {
            while let Ok(job) = prx.recv() {
                let r = if job.sync {
                    disk.persist(&job.persist, job.store_durable)
                } else {
                    disk.write(&job.persist, job.store_durable)
                }
                .map(|()| disk.snapshot_bytes());
                if dtx.blocking_send(r).is_err() {
                    return;
                }
            }
        })
        .map_err(|err| DiskError::Io {
            path: shared.cfg.data_dir.clone(),
            err,
        })?;
    let mut interval = tokio::time::interval(shared.cfg.tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Apply what the recovered log already holds as committed before serving anyone.
    // Jobs handed to the disk thread, oldest first, with the Ready that
    // waits for each one's sync (None for a write that needs none).
    let mut queue = std::collections::VecDeque::new();
    core.drive(&ptx, &mut queue);
    let mut stopping = false;
    loop {
        tokio::select! {
            _ = interval.tick(), if !stopping => {
                core.on_tick();
                stopping = core.should_stop();
                if queue.is_empty() {
                    core.commit_store(false);
                }
            }
            m = inbox.recv(), if !stopping => match m {
                Some(Input::Stop) | None => stopping = true,
                Some(i) => core.on_input(i),
            },
            r = drx.recv(), if !queue.is_empty() => match r {
                Some(Ok(bytes)) => {
                    shared.snapshot_bytes.store(bytes, Ordering::Relaxed);
                    let waiting = queue.pop_front().expect("a job was in flight");
                    if let Some(rd) = waiting {
                        assert!(queue.is_empty(), "a job queued behind a sync");
                        core.send_and_advance(rd, true);
                    }
                }
                Some(Err(e)) => {
                    shared.log(format_args!("storage failed, stopping: {e}"));
                    return Err(e);
                }
                None => unreachable!("the disk thread answers every request"),
            },
        }
        if let Some(e) = core.store_failed.take() {
            shared.log(format_args!("store failed, stopping: {e}"));
            return Err(DiskError::Store(e));
        }
        if stopping && queue.is_empty() {
            core.commit_store(true);
            if let Some(e) = core.store_failed.take() {
                return Err(DiskError::Store(e));
            }
            return Ok(());
        }
        let blocked = queue.back().is_some_and(|j| j.is_some());
        if !blocked && !stopping {
            core.drive(&ptx, &mut queue);
        }
    }
}
