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
    /// Its home group: what belongs to the cluster as a whole (membership,
    /// leases, compaction, status, leadership transfer).
    pub home: ShardId,
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
    store_failed: Option<synod_kv::KvError>,
}

impl Core {
    /// Wraps a host.
    pub fn new(host: Host, shared: Arc<Shared>, transport: Transport) -> Core {
        let home = host.node().home_shard();
        let core = Core {
            host,
            home,
            shared,
            watches: WatchHub::default(),
            transport,
            calls: BTreeMap::new(),
            asks: BTreeMap::new(),
            next_token: 1,
            store_failed: None,
        };
        // What the recovered groups hold, before the first Ready.
        core.publish_groups();
        core
    }

    /// The node.
    pub fn node(&self) -> &Node {
        self.host.node()
    }

    /// Header data for responses about group `shard` built inside the actor.
    pub fn header_info(&self, shard: ShardId) -> HeaderInfo {
        HeaderInfo {
            cluster_id: self.shared.cfg.cluster_id,
            member_id: self.shared.cfg.id,
            term: self.node().raft(shard).map_or(0, |r| r.term()),
        }
    }

    /// Whether this node leads its home group.
    pub fn is_leader(&self) -> bool {
        self.host.is_leader(self.home)
    }

    /// The home group's key-value store.
    pub fn kv(&self) -> &synod_kv::KvStore<synod_kv::DynEngine> {
        group_kv(&self.host, self.home)
    }

    /// Every hosted range: its members, leader, keys and revision.
    fn range_rows(&self) -> Vec<crate::inbox::RangeRow> {
        let node = self.node();
        node.ranges()
            .iter()
            .map(|(range, shard)| {
                let members = node.members(*shard);
                let name = |id: u64| {
                    members
                        .and_then(|r| r.members().find(|m| m.id == id))
                        .filter(|m| !m.name.is_empty())
                        .map_or_else(|| format!("{id:x}"), |m| m.name.clone())
                };
                let replicas = members
                    .map(|r| r.members().map(|m| (name(m.id), m.is_learner)).collect())
                    .unwrap_or_default();
                let leader = node.raft(*shard).map_or(0, |r| r.leader());
                let kv = node.state_machine(*shard).map(|sm| sm.kv());
                let keys = kv
                    .and_then(|kv| {
                        let all = synod_kv::RangeRequest {
                            key: if range.start.is_empty() {
                                vec![0]
                            } else {
                                range.start.clone()
                            },
                            range_end: if range.end.is_empty() {
                                vec![0]
                            } else {
                                range.end.clone()
                            },
                            count_only: true,
                            ..Default::default()
                        };
                        kv.range(&all).ok()
                    })
                    .map_or(0, |r| u64::try_from(r.count).unwrap_or(0));
                crate::inbox::RangeRow {
                    shard: *shard,
                    range: range.clone(),
                    replicas,
                    leader: if leader == 0 {
                        String::new()
                    } else {
                        name(leader)
                    },
                    keys,
                    revision: kv.map_or(0, |kv| kv.revision()),
                }
            })
            .collect()
    }

    /// Publishes each group's leader, term and revision.
    fn publish_groups(&self) {
        let node = self.node();
        for g in self.shared.groups.iter() {
            if let (Some(r), Some(sm)) = (node.raft(g.shard), node.state_machine(g.shard)) {
                g.publish(r.leader(), r.term(), sm.kv().revision());
                g.publish_progress(r.commit(), node.applied(g.shard).unwrap_or(0));
            }
        }
        let auth = self.kv().auth();
        self.shared
            .auth_enabled
            .store(auth.enabled(), std::sync::atomic::Ordering::Release);
        self.shared
            .auth_revision
            .store(auth.revision(), std::sync::atomic::Ordering::Release);
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
        // A member our registry does not list yet introduced itself: dial
        // it too (see transport::check_hello).
        if self
            .shared
            .peers
            .introduced_changed
            .swap(false, Ordering::Relaxed)
        {
            self.transport.set_members(&self.shared.peers.dial_list());
        }
        if self.shared.peers.self_removed.load(Ordering::Relaxed) {
            self.host.mark_removed();
        }
        self.host.tick(disk_idle);
        let shards: Vec<ShardId> = self.node().shards().collect();
        for shard in shards {
            let h = self.header_info(shard);
            self.watches.catch_up(shard, group_kv(&self.host, shard), h);
        }
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
                    .raft(self.home)
                    .expect("the node hosts its home shard");
                let _ = tx.send(StatusInfo {
                    leader: r.leader(),
                    term: r.term(),
                    commit: r.commit(),
                    applied: self.node().applied(self.home).unwrap_or(0),
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
                    .state_machine(self.home)
                    .expect("the node hosts its home shard");
                let applied = self.node().applied(self.home).unwrap_or(0);
                // One group's state is not the whole keyspace's: refused
                // rather than a partial backup.
                let parts = if self.node().shards().count() > 1 {
                    Err(tonic::Status::failed_precondition(
                        "synod: a member whose keyspace is split into several Raft groups \
                         cannot be saved as one snapshot yet",
                    ))
                } else {
                    sm.kv()
                        .parts()
                        .map(|p| (p, sm.kv().revision(), applied))
                        .map_err(|e| tonic::Status::internal(format!("synod: snapshot: {e}")))
                };
                let _ = tx.send(parts);
            }
            Query::TransferLeader { target, tx } => {
                let leads = self.is_leader();
                if leads && target != self.shared.cfg.id {
                    let home = self.home;
                    self.host.node_mut().transfer_leader(home, target);
                }
                let _ = tx.send(leads);
            }
            Query::Defragment { request, tx } => {
                let sm = self
                    .node()
                    .state_machine(self.home)
                    .expect("the node hosts its home shard");
                let engine = sm.kv().engine();
                let done = engine.durable_applied().map(|_| engine.defragmentations());
                if request && done.is_some() {
                    engine.request_defragment();
                }
                let _ = tx.send(done);
            }
            Query::Auth(ask) => ask(self.kv().auth()),
            Query::Leases(tx) => {
                let _ = tx.send(self.kv().leases());
            }
            Query::Ranges(tx) => {
                let _ = tx.send(self.range_rows());
            }
            Query::AddWatch {
                shard,
                stream,
                id,
                watcher,
                tx,
            } => {
                if self.watches.len() >= MAX_WATCHERS || self.node().raft(shard).is_none() {
                    let _ = tx.send(false);
                    return;
                }
                let h = self.header_info(shard);
                self.watches
                    .add(shard, stream, id, *watcher, group_kv(&self.host, shard), h);
                let _ = tx.send(true);
            }
            Query::CancelWatch { stream, id, tx } => {
                let _ = tx.send(self.watches.cancel(stream, id));
            }
            Query::WatchProgress { stream, tx } => {
                let host = &self.host;
                let rev = |s| group_kv(host, s).revision();
                let _ = tx.send(self.watches.synced_revision(stream, self.home, rev));
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
                if let Some(g) = s.groups.get(shard) {
                    g.leader_changed(leader, term);
                }
                s.log(format_args!(
                    "shard {shard}: leader is now {leader:x} (term {term})"
                ));
            }
            HostEvent::MemberRemoved { id, .. } => {
                s.peers.mark_removed(id);
                s.log(format_args!("member {id:x} was removed from the cluster"));
            }
            HostEvent::SelfRemoved => {
                s.peers.self_removed.store(true, Ordering::Relaxed);
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
        self.shared.metrics.backend_commit.observe(t0.elapsed());
        if let Err(e) = r {
            self.store_failed = Some(e);
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
            // Membership is the cluster's: the home group's registry is it.
            for (shard, members) in std::mem::take(&mut rd.members) {
                if shard == self.home {
                    self.shared.peers.set_members(members);
                    self.transport.set_members(&self.shared.peers.dial_list());
                }
            }
            // A group restored from a snapshot: its watchers catch up across the
            // jump before any event applied after it.
            for shard in rd.restored.drain(..) {
                self.watches.restored(shard);
            }
            // Each group's events go to that group's watchers.
            let mut events: BTreeMap<ShardId, Vec<synod_kv::Event>> = BTreeMap::new();
            for (shard, e) in rd.events.drain(..) {
                events.entry(shard).or_default().push(e);
            }
            // A split moved keys to a new group: publish it and move the
            // watchers of those keys before its events go out.
            if self.shared.groups.follow(self.node().ranges()) {
                let h = self.header_info(self.home);
                let table = self.node().ranges().to_vec();
                self.watches.rehome(&table, h);
                self.shared.log(format_args!(
                    "{} ranges after a split",
                    self.shared.groups.len()
                ));
            }
            for (shard, evs) in events {
                if self.node().state_machine(shard).is_none() {
                    continue;
                }
                let h = self.header_info(shard);
                self.watches
                    .publish(shard, &evs, group_kv(&self.host, shard), h);
            }
            self.publish_groups();
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

/// A hosted group's key-value store (borrowing the host alone, so the
/// watchers can be updated beside it).
fn group_kv(host: &Host, shard: ShardId) -> &synod_kv::KvStore<synod_kv::DynEngine> {
    host.node()
        .state_machine(shard)
        .expect("the node hosts the group")
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
                    shared.metrics.snapshot_bytes.store(bytes, Ordering::Relaxed);
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
            return Err(DiskError::store(&shared.cfg.data_dir, e));
        }
        if stopping && queue.is_empty() {
            if let Err(e) = core.host.stop() {
                return Err(DiskError::store(&shared.cfg.data_dir, e));
            }
            return Ok(());
        }
        let blocked = queue.back().is_some_and(|j| j.is_some());
        if !blocked && !stopping {
            core.drive(&ptx, &mut queue);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use synod_kv::{Command, PutRequest};
    use synod_node::{ClientOp, ClientRequest, ClientResponse, GroupInit, HostConfig, KeyRange};
    use synod_raft::Init;

    use crate::watch::Watcher;

    /// An actor over one member hosting two groups, keys below "m" and the
    /// rest, each in memory and a group of one voter.
    fn two_groups() -> Core {
        let cfg = crate::config::RawConfig::default().validate().unwrap();
        let id = cfg.id;
        let group = |shard, range| GroupInit {
            shard,
            range: Some(range),
            raft: Init::Bootstrap {
                voters: vec![id],
                learners: Vec::new(),
            },
            snapshot_data: None,
        };
        let node_cfg = synod_node::NodeConfig {
            id,
            ..synod_node::NodeConfig::default()
        };
        let node = Node::new(
            node_cfg,
            vec![
                group(1, KeyRange::new("", "m")),
                group(2, KeyRange::new("m", "")),
            ],
        )
        .unwrap();
        let shared = Arc::new(Shared::new(cfg, false, node.ranges()));
        // One member: the transport dials nobody.
        let transport = Transport::start(shared.clone(), None);
        let host = Host::new(
            node,
            HostConfig {
                name: "t".into(),
                client_urls: Vec::new(),
                store_commit_ticks: 1,
                store_commit_entries: 1000,
                bug: None,
            },
        );
        Core::new(host, shared, transport)
    }

    /// The actor's loop without a disk: every write is durable at once.
    fn settle(core: &mut Core) {
        let (tx, rx) = std::sync::mpsc::sync_channel(DISK_QUEUE);
        let mut queue = VecDeque::new();
        for _ in 0..1000 {
            core.drive(&tx, &mut queue);
            while rx.try_recv().is_ok() {}
            while let Some(job) = queue.pop_front() {
                if let Some(rd) = job {
                    core.send_and_advance(rd, true);
                }
            }
            if !core.host.has_ready() {
                return;
            }
        }
        panic!("the host never settled");
    }

    fn put(core: &mut Core, seq: u64, key: &str) -> i64 {
        let (tx, mut rx) = oneshot::channel();
        let req = ClientRequest {
            client: 7,
            seq,
            op: ClientOp::Write(Command::Put(PutRequest::new(key, "v"))),
        };
        core.on_input(Input::Call { req, tx });
        settle(core);
        match rx.try_recv().expect("the put was answered").result {
            Ok(ClientResponse::Write(r)) => r.revision(),
            other => panic!("{other:?}"),
        }
    }

    fn watch(
        core: &mut Core,
        shard: ShardId,
        stream: u64,
        key: &str,
    ) -> mpsc::Receiver<crate::watch::WatchOut> {
        let (out, rx) = mpsc::channel(16);
        let w = Watcher::new(key.into(), Vec::new(), 0, false, false, false, 0, out);
        let (tx, mut added) = oneshot::channel();
        core.on_query(Query::AddWatch {
            shard,
            stream,
            id: 1,
            watcher: Box::new(w),
            tx,
        });
        assert_eq!(added.try_recv(), Ok(true));
        rx
    }

    #[test]
    fn every_group_is_published_and_its_events_reach_its_own_watchers() {
        let mut core = two_groups();
        let me = core.shared.cfg.id;
        for _ in 0..500 {
            if core.shared.groups.all_have_leader() {
                break;
            }
            core.on_tick(true);
            settle(&mut core);
        }
        let groups = &core.shared.groups;
        for shard in [1, 2] {
            let g = groups.get(shard).unwrap();
            assert_eq!(g.leader(), me, "group {shard} elected this member");
            assert!(g.term() >= 1);
            assert!(g.leader_changes() >= 1);
        }
        let (rev1, rev2) = (
            groups.get(1).unwrap().revision(),
            groups.get(2).unwrap().revision(),
        );
        let mut w1 = watch(&mut core, 1, 1, "a");
        let mut w2 = watch(&mut core, 2, 2, "n");
        // A write to group 2 moves group 2's revision alone, and reaches
        // group 2's watcher alone, under group 2's header.
        let r = put(&mut core, 1, "n");
        let groups = &core.shared.groups;
        assert_eq!(r, rev2 + 1);
        assert_eq!(groups.get(2).unwrap().revision(), rev2 + 1);
        assert_eq!(groups.get(1).unwrap().revision(), rev1);
        let got = w2.try_recv().unwrap().unwrap();
        assert_eq!(got.events.len(), 1);
        let h = got.header.unwrap();
        assert_eq!(h.revision, rev2 + 1);
        assert_eq!(h.raft_term, groups.get(2).unwrap().term());
        assert!(w1.try_recv().is_err());
        let r = put(&mut core, 2, "a");
        assert_eq!(r, rev1 + 1);
        assert_eq!(w1.try_recv().unwrap().unwrap().events.len(), 1);
        assert!(w2.try_recv().is_err());
        // Progress per stream, by its group.
        let progress = |core: &mut Core, stream| {
            let (tx, mut rx) = oneshot::channel();
            core.on_query(Query::WatchProgress { stream, tx });
            rx.try_recv().unwrap()
        };
        assert_eq!(progress(&mut core, 2), Some((2, rev2 + 1)));
        assert_eq!(progress(&mut core, 1), Some((1, rev1 + 1)));
        // Status is the home group's.
        let (tx, mut rx) = oneshot::channel();
        core.on_query(Query::Status(tx));
        let st = rx.try_recv().unwrap();
        assert_eq!((st.leader, st.revision), (me, rev1 + 1));
    }
}
