//! The node runtime: IO around the sans-IO [`Host`], and nothing else.
//!
//! One tokio task (the actor) owns the host and feeds it ticks, peer
//! messages and client requests from one bounded inbox; a dedicated thread
//! makes each `Ready`'s records durable with one fdatasync (group commit:
//! whatever arrives during a sync goes into the next one); only then are
//! that `Ready`'s messages sent and the host advanced. A `Ready` whose only
//! record is a new commit index (`must_sync` false) is handed over to be
//! written without a sync, and its messages leave at once.
//!
//! Every decision (forwarding to the leader and failing over, holding a
//! forwarded write's reply until the local apply, publishing this member's
//! name, stopping after removal, when the store commits durably) is the
//! host's, in `synod-node`, where the simulator runs it too. The runtime
//! carries out its outbox: messages to peers, replies to the gRPC callers
//! waiting on a oneshot, log lines and published status, and the store's
//! durable commit (timed for `/metrics`).

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use synod_node::{
    Answer, ClientReply, Host, HostEvent, HostMsg, HostOutbox, Node, Persist, Ready, ShardId,
};
use tokio::sync::{mpsc, oneshot};

use crate::disk::{Disk, DiskError};
use crate::inbox::{Input, Query, StatusInfo};
use crate::shared::Shared;
use crate::transport::Transport;
use crate::watch::{HeaderInfo, WatchHub, MAX_WATCHERS};
use crate::wire::PeerMsg;

/// Key operations the actor applies in one turn of its loop at most (one
/// Ready's budget: the server sets `NodeConfig::apply_budget` to it); then
/// it handles what arrived (ticks, peer messages) before it carries on. A
/// turn of deletes on the redb store costs about 10–60 ms on a loaded
/// 2-core machine, well inside a heartbeat interval.
pub(crate) const APPLY_OPS_PER_TURN: u64 = 256;
/// Most writes handed to the disk thread and not yet answered (at most one
/// of them waits for a sync; the others only carry commit indexes).
const DISK_QUEUE: usize = 16;
/// Most callers waiting on this actor for a reply or an answer.
const MAX_CALLERS: usize = 65_536;

/// Everything the actor owns.
pub struct Core {
    /// The host: the node and every decision around it.
    pub host: Host,
    /// Its home shard (the one group a node hosts today).
    pub shard: ShardId,
    /// Published state.
    pub shared: Arc<Shared>,
    /// Watchers.
    pub watches: WatchHub,
    transport: Transport,
    /// Callers waiting for a reply, by the token the host knows them by.
    calls: BTreeMap<u64, oneshot::Sender<ClientReply>>,
    /// Callers waiting for an answer, by token.
    asks: BTreeMap<u64, oneshot::Sender<Answer>>,
    /// The next token (0 is the host's "nobody waits").
    next_token: u64,
    /// The store's failure: the node stops.
    store_failed: Option<String>,
}

impl Core {
    /// Wraps a host.
    pub fn new(host: Host, shared: Arc<Shared>, transport: Transport) -> Core {
        let shard = host.node().home_shard();
        Core {
            host,
            shard,
            shared,
            watches: WatchHub::default(),
            transport,
            calls: BTreeMap::new(),
            asks: BTreeMap::new(),
            next_token: 1,
            store_failed: None,
        }
    }

    /// The node.
    pub fn node(&self) -> &Node {
        self.host.node()
    }

    /// Header data for responses built inside the actor.
    pub fn header_info(&self) -> HeaderInfo {
        HeaderInfo {
            cluster_id: self.shared.cfg.cluster_id,
            member_id: self.shared.cfg.id,
            term: self.node().raft(self.shard).map_or(0, |r| r.term()),
        }
    }

    /// Whether this node leads its home group.
    pub fn is_leader(&self) -> bool {
        self.host.is_leader(self.shard)
    }

    /// The key-value store.
    pub fn kv(&self) -> &synod_kv::KvStore<synod_kv::DynEngine> {
        home_kv(&self.host, self.shard)
    }

    fn token(&mut self) -> Option<u64> {
        if self.calls.len() + self.asks.len() >= MAX_CALLERS {
            return None;
        }
        let t = self.next_token;
        self.next_token += 1;
        Some(t)
    }

    fn on_tick(&mut self, disk_idle: bool) {
        if self.shared.self_removed.load(Ordering::Relaxed) {
            self.host.mark_removed();
        }
        self.host.tick(disk_idle);
        let h = self.header_info();
        self.watches.catch_up(home_kv(&self.host, self.shard), h);
        if self.host.ticks().is_multiple_of(50) {
            // Callers that gave up (their receiver is gone) free their slot.
            self.calls.retain(|_, tx| !tx.is_closed());
            self.asks.retain(|_, tx| !tx.is_closed());
        }
    }

    fn on_input(&mut self, input: Input) {
        match input {
            Input::Peer { from, msg } => match msg {
                PeerMsg::Host(m) => self.host.peer(from, m),
                // The transport answers probes itself.
                PeerMsg::Probe { .. } => {}
            },
            Input::Call { req, tx } => match self.token() {
                Some(t) => {
                    self.calls.insert(t, tx);
                    self.host.client(t, req);
                }
                None => {
                    let _ = tx.send(ClientReply {
                        client: req.client,
                        seq: req.seq,
                        result: Err(synod_node::ClientError::Busy),
                    });
                }
            },
            Input::Ask { ask, tx } => {
                if let Some(t) = self.token() {
                    self.asks.insert(t, tx);
                    self.host.ask(t, ask);
                }
            }
            Input::Query(q) => self.on_query(q),
            Input::Stop => {}
        }
    }

    fn on_query(&mut self, q: Query) {
        match q {
            Query::Status(tx) => {
                let r = self
                    .node()
                    .raft(self.shard)
                    .expect("the node hosts its home shard");
                let _ = tx.send(StatusInfo {
                    leader: r.leader(),
                    term: r.term(),
                    commit: r.commit(),
                    applied: self.node().applied(self.shard).unwrap_or(0),
                    revision: self.kv().revision(),
                    learner: r.is_learner(),
                });
            }
            Query::Hash(tx) => {
                let kv = self.kv();
                let _ = tx.send((kv.hash(), kv.revision(), kv.compact_revision()));
            }
            Query::Snapshot(tx) => {
                let sm = self
                    .node()
                    .state_machine(self.shard)
                    .expect("the node hosts its home shard");
                let _ = tx.send((sm.snapshot(), sm.kv().revision()));
            }
            Query::TransferLeader { target, tx } => {
                let leads = self.is_leader();
                if leads && target != self.shared.cfg.id {
                    let shard = self.shard;
                    self.host.node_mut().transfer_leader(shard, target);
                }
                let _ = tx.send(leads);
            }
            Query::Leases(tx) => {
                let _ = tx.send(self.kv().leases());
            }
            Query::AddWatch {
                stream,
                id,
                watcher,
                tx,
            } => {
                if self.watches.len() >= MAX_WATCHERS {
                    let _ = tx.send(false);
                    return;
                }
                let h = self.header_info();
                self.watches
                    .add(stream, id, *watcher, home_kv(&self.host, self.shard), h);
                let _ = tx.send(true);
            }
            Query::CancelWatch { stream, id, tx } => {
                let _ = tx.send(self.watches.cancel(stream, id));
            }
            Query::WatchProgress { stream, tx } => {
                let _ = tx.send(self.watches.synced_revision(stream, self.kv()));
            }
            Query::Join { url, tx } => {
                let _ = tx.send(self.host.who_joins(&url));
            }
            Query::CancelStream { stream, tx } => {
                self.watches.cancel_stream(stream);
                let _ = tx.send(());
            }
        }
    }

    /// Carries out what the host decided that needs no disk.
    fn flush(&mut self) {
        let out: HostOutbox = self.host.outbox();
        for (to, m) in out.sends {
            self.transport.send(to, PeerMsg::Host(m));
        }
        for (t, r) in out.replies {
            if let Some(tx) = self.calls.remove(&t) {
                let _ = tx.send(r);
            }
        }
        for (t, a) in out.answers {
            if let Some(tx) = self.asks.remove(&t) {
                let _ = tx.send(a);
            }
        }
        for ev in out.events {
            self.report(ev);
        }
        if let Some(index) = out.commit_store {
            self.commit_store(index);
        }
    }

    fn report(&mut self, ev: HostEvent) {
        let s = &self.shared;
        match ev {
            HostEvent::Leader {
                shard,
                leader,
                term,
            } => {
                if shard == self.shard {
                    s.leader.store(leader, Ordering::Relaxed);
                    s.term.store(term, Ordering::Relaxed);
                }
                s.log(format_args!(
                    "shard {shard}: leader is now {leader:x} (term {term})"
                ));
                s.leader_changes.fetch_add(1, Ordering::Relaxed);
            }
            HostEvent::MemberRemoved { id, .. } => {
                s.mark_removed(id);
                s.log(format_args!("member {id:x} was removed from the cluster"));
            }
            HostEvent::SelfRemoved => {
                s.self_removed.store(true, Ordering::Relaxed);
                s.log(format_args!(
                    "this member was removed from the cluster; stopping"
                ));
            }
        }
    }

    fn commit_store(&mut self, index: u64) {
        if self.store_failed.is_some() {
            return;
        }
        let t0 = std::time::Instant::now();
        let r = self.host.commit_store(index);
        self.shared.backend_commit.observe(t0.elapsed());
        if let Err(e) = r {
            self.store_failed = Some(e.to_string());
        }
    }

    /// Hands out Readies until one needs a sync (or `queue` is full). Each
    /// job handed to the disk thread is pushed on `queue`, with its Ready
    /// when that waits for the sync; Readies that need no sync (nothing to
    /// write, or only a commit index) are sent and advanced at once.
    fn drive(
        &mut self,
        disk: &std::sync::mpsc::SyncSender<DiskJob>,
        queue: &mut VecDeque<Option<Ready>>,
    ) {
        self.flush();
        let mut applied = 0u64;
        for _ in 0..64 {
            // A large apply goes in turns: ticks, heartbeats and votes are
            // handled between them (the loop comes back at once).
            if queue.len() >= DISK_QUEUE || !self.host.has_ready() || applied >= APPLY_OPS_PER_TURN
            {
                break;
            }
            let mut rd = self.host.ready();
            applied += rd.apply_ops;
            for (shard, members) in std::mem::take(&mut rd.members) {
                if shard == self.shard {
                    self.shared.set_members(members);
                    self.transport.set_members(&self.shared.member_list());
                }
            }
            if !rd.events.is_empty() {
                let events: Vec<synod_kv::Event> = rd
                    .events
                    .drain(..)
                    .filter(|(s, _)| *s == self.shard)
                    .map(|(_, e)| e)
                    .collect();
                let h = self.header_info();
                self.watches
                    .publish(&events, home_kv(&self.host, self.shard), h);
            }
            self.shared
                .revision
                .store(self.kv().revision(), Ordering::Relaxed);
            self.flush();
            // A leader's appends may go out while its own write is synced.
            for env in rd.early_messages.drain(..) {
                let to = env.msg.to;
                self.transport.send(to, PeerMsg::Host(HostMsg::Raft(env)));
            }
            if rd.persist.is_empty() {
                self.send_and_advance(rd, queue.is_empty());
                continue;
            }
            let job = DiskJob {
                persist: std::mem::take(&mut rd.persist),
                store_durable: self.stores_durable(),
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

    /// Each group's store's durable applied index.
    fn stores_durable(&self) -> BTreeMap<ShardId, u64> {
        let node = self.node();
        node.shards()
            .map(|s| {
                let durable = node.state_machine(s).and_then(|sm| sm.durable_applied());
                (s, durable.unwrap_or(0))
            })
            .collect()
    }

    /// Sends `rd`'s messages and advances the host; `synced`: everything
    /// written so far is durable, so the store may commit.
    fn send_and_advance(&mut self, mut rd: Ready, synced: bool) {
        for env in rd.messages.drain(..) {
            let to = env.msg.to;
            self.transport.send(to, PeerMsg::Host(HostMsg::Raft(env)));
        }
        self.host.advance(rd, synced);
        self.flush();
    }
}

/// The home group's key-value store (borrowing the host alone, so the
/// watchers can be updated beside it).
fn home_kv(host: &Host, shard: ShardId) -> &synod_kv::KvStore<synod_kv::DynEngine> {
    host.node()
        .state_machine(shard)
        .expect("the node hosts its home shard")
        .kv()
}

/// Records of one `Ready` for the disk thread.
struct DiskJob {
    persist: Vec<Persist>,
    /// Each group's store's durable applied index (bounds the compaction
    /// of its log).
    store_durable: BTreeMap<ShardId, u64>,
    /// Whether to fdatasync after writing.
    sync: bool,
}

/// Runs the actor until [`Input::Stop`] or until every sender is gone.
pub async fn run(
    mut core: Core,
    mut inbox: mpsc::Receiver<Input>,
    mut disk: Disk,
    wal_fsync: std::sync::Arc<crate::metrics::Histogram>,
) -> Result<(), DiskError> {
    let (ptx, prx) = std::sync::mpsc::sync_channel::<DiskJob>(DISK_QUEUE);
    let (dtx, mut drx) = mpsc::channel::<Result<u64, DiskError>>(DISK_QUEUE);
    let shared = core.shared.clone();
    std::thread::Builder::new()
        .name(format!("synod-disk-{}", shared.cfg.name))
        .spawn(move || {
            while let Ok(job) = prx.recv() {
                let durable = |s: ShardId| job.store_durable.get(&s).copied().unwrap_or(0);
                let mut r = disk.write(&job.persist, &durable);
                if job.sync && r.is_ok() {
                    let t0 = std::time::Instant::now();
                    r = disk.sync();
                    wal_fsync.observe(t0.elapsed());
                }
                let r = r.map(|()| disk.snapshot_bytes());
                if dtx.blocking_send(r).is_err() {
                    return;
                }
            }
        })
        .map_err(|err| {
            DiskError::Vfs(synod_storage::VfsError::from_io(
                "spawn the disk thread",
                &shared.cfg.data_dir,
                err,
            ))
        })?;
    let mut interval = tokio::time::interval(shared.cfg.tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Jobs handed to the disk thread, oldest first, with the Ready that
    // waits for each one's sync (None for a write that needs none).
    let mut queue = VecDeque::new();
    // Apply what the recovered log already holds as committed before serving anyone.
    core.drive(&ptx, &mut queue);
    let mut stopping = false;
    loop {
        // Apply work is left (a large entry goes in turns): come back at
        // once, after whatever else is ready.
        let more = !stopping
            && queue.len() < DISK_QUEUE
            && queue.back().is_none_or(|j| j.is_none())
            && core.host.has_ready();
        tokio::select! {
            // Ticks, peers' messages and finished syncs come before more
            // apply work: a long apply never starves heartbeats or votes.
            biased;
            _ = interval.tick(), if !stopping => {
                core.on_tick(queue.is_empty());
                stopping = core.host.should_stop();
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
            // Yields to the scheduler: a future that is always ready
            // would keep the task from ever yielding, tokio's cooperative
            // budget would run out, and the tick and the inbox would read
            // as empty for the whole apply (seen: no tick for 2.9 s).
            () = tokio::task::yield_now(), if more => {}
        }
        core.flush();
        if let Some(e) = core.store_failed.take() {
            shared.log(format_args!("store failed, stopping: {e}"));
            return Err(DiskError::Store(e));
        }
        if stopping && queue.is_empty() {
            if let Err(e) = core.host.stop() {
                return Err(DiskError::Store(e.to_string()));
            }
            return Ok(());
        }
        let blocked = queue.back().is_some_and(|j| j.is_some());
        if !blocked && !stopping {
            core.drive(&ptx, &mut queue);
        }
    }
}
