//! The processes of a simulated database: servers (a [`Host`] on the
//! production storage code, [`synod_disk::Disk`], over a simulated VFS) and
//! clients (a workload that records its history).

use std::collections::{BTreeMap, VecDeque};

use rand::Rng;
use synod_check::OpKind;
use synod_kv::{
    Command, Compare, CompareResult, CompareTarget, DeleteRangeRequest, PutRequest, RangeRequest,
    RequestOp, Response, TxnRequest,
};
use synod_node::{
    ClientError, ClientOp, ClientReply, ClientRequest, ClientResponse, GroupInit, Host, HostConfig,
    HostMsg, KeyRange, Node, NodeConfig, ShardId,
};
use synod_raft::{Init, MessageBody, NodeId};
use synod_simnet::{Ctx, ProcId, Process, Time, TimerId, MILLIS};

use synod_disk::{Disk, MemStores, Stores};
use synod_storage::{SimVfs, WalConfig};

/// The home group (the first key range): membership changes and the aimed
/// faults follow its leader.
pub const SHARD: u64 = 1;

/// The key ranges of a run with `groups` groups over the workload's keys
/// `k0..k{keys-1}`: cut into `groups` runs of keys in key order, shard ids
/// from 1 (the home group starts at the empty key).
pub fn split(keys: u32, groups: usize) -> Vec<(KeyRange, ShardId)> {
    let mut names: Vec<String> = (0..keys.max(1)).map(|k| format!("k{k}")).collect();
    names.sort();
    let groups = groups.clamp(1, names.len());
    let mut cuts: Vec<Vec<u8>> = (1..groups)
        .map(|g| names[g * names.len() / groups].clone().into_bytes())
        .collect();
    cuts.dedup();
    let mut out = Vec::new();
    let mut start = Vec::new();
    for (i, cut) in cuts.iter().enumerate() {
        out.push((KeyRange::new(start, cut.clone()), i as ShardId + 1));
        start = cut.clone();
    }
    out.push((KeyRange::new(start, Vec::new()), cuts.len() as ShardId + 1));
    out
}

/// A message on the simulated network.
#[derive(Clone, Debug)]
pub enum Msg {
    /// Between servers: Raft, forwarded requests and their replies.
    Peer(HostMsg),
    /// Client to server.
    Request(ClientRequest),
    /// Server to client, with the server's incarnation (its restarts).
    Reply(ClientReply, u64),
}

/// A simulated process.
pub enum Proc {
    /// A database node.
    Server(Box<Server>),
    /// A workload client.
    Client(Box<Client>),
}

impl Proc {
    /// The server, if this is one.
    pub fn server(&self) -> Option<&Server> {
        match self {
            Proc::Server(s) => Some(s),
            Proc::Client(_) => None,
        }
    }
    /// The server, if this is one, to act on.
    pub fn server_mut(&mut self) -> Option<&mut Server> {
        match self {
            Proc::Server(s) => Some(s),
            Proc::Client(_) => None,
        }
    }
    /// The client, if this is one.
    pub fn client_mut(&mut self) -> Option<&mut Client> {
        match self {
            Proc::Client(c) => Some(c),
            Proc::Server(_) => None,
        }
    }
}

impl Process for Proc {
    type Msg = Msg;

    fn on_start(&mut self, ctx: &mut Ctx<'_, Msg>) {
        match self {
            Proc::Server(s) => s.on_start(ctx),
            Proc::Client(c) => c.on_start(ctx),
        }
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, Msg>, from: ProcId, msg: Msg) {
        match self {
            Proc::Server(s) => s.on_message(ctx, from, msg),
            Proc::Client(c) => c.on_message(ctx, from, msg),
        }
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_, Msg>, tag: u64) {
        match self {
            Proc::Server(s) => s.on_timer(ctx, tag),
            Proc::Client(c) => c.on_timer(ctx, tag),
        }
    }

    fn msg_bytes(msg: &Msg) -> usize {
        match msg {
            Msg::Peer(HostMsg::Raft(env)) => match &env.msg.body {
                MessageBody::Append { entries, .. } => {
                    48 + entries.iter().map(|e| 24 + e.data.len()).sum::<usize>()
                }
                MessageBody::SnapshotChunk { data, .. } => 64 + data.len(),
                _ => 40,
            },
            Msg::Peer(_) | Msg::Request(_) | Msg::Reply(..) => 64,
        }
    }

    fn msg_label(msg: &Msg) -> String {
        match msg {
            Msg::Peer(HostMsg::Forward(r)) => {
                format!("Forward c{}#{} {}", r.client, r.seq, op_name(&r.op))
            }
            Msg::Peer(HostMsg::ForwardReply(r)) => format!(
                "ForwardReply c{}#{} {}",
                r.client,
                r.seq,
                match &r.result {
                    Ok(_) => "ok".to_string(),
                    Err(e) => e.to_string(),
                }
            ),
            Msg::Peer(HostMsg::Ask { id, .. }) => format!("Ask #{id}"),
            Msg::Peer(HostMsg::Answer { id, .. }) => format!("Answer #{id}"),
            Msg::Peer(HostMsg::Draw(d)) => format!("Draw s{} #{} n={}", d.shard, d.id, d.count),
            Msg::Peer(HostMsg::Grant(g)) => match &g.result {
                Ok(first) => format!("Grant s{} #{} from {first}", g.shard, g.id),
                Err(e) => format!("Grant s{} #{} {e}", g.shard, g.id),
            },
            Msg::Peer(HostMsg::Raft(env)) => {
                let m = &env.msg;
                let body = match &m.body {
                    MessageBody::Append {
                        index,
                        log_term,
                        entries,
                        commit,
                    } => format!(
                        "Append t{} prev=({index},{log_term}) n={} commit={commit}",
                        m.term,
                        entries.len()
                    ),
                    MessageBody::AppendResponse { index, reject, .. } => {
                        format!("AppendResponse t{} index={index} reject={reject}", m.term)
                    }
                    MessageBody::Vote {
                        last_index,
                        last_term,
                        ..
                    } => {
                        format!("Vote t{} last=({last_index},{last_term})", m.term)
                    }
                    MessageBody::VoteResponse { reject } => {
                        format!("VoteResponse t{} reject={reject}", m.term)
                    }
                    MessageBody::PreVote { .. } => format!("PreVote t{}", m.term),
                    MessageBody::PreVoteResponse { reject } => {
                        format!("PreVoteResponse t{} reject={reject}", m.term)
                    }
                    other => format!("{} t{}", other.name(), m.term),
                };
                // Other groups than the first are named (ranges that split).
                if env.shard == SHARD {
                    body
                } else {
                    format!("{body} s{:x}", env.shard)
                }
            }
            Msg::Request(r) => format!("Request c{}#{} {}", r.client, r.seq, op_name(&r.op)),
            Msg::Reply(r, _) => format!(
                "Reply c{}#{} {}",
                r.client,
                r.seq,
                match &r.result {
                    Ok(_) => "ok".to_string(),
                    Err(e) => e.to_string(),
                }
            ),
        }
    }
}

fn op_name(op: &ClientOp) -> &'static str {
    match op {
        ClientOp::Write(Command::Put(_)) => "put",
        ClientOp::Write(Command::DeleteRange(_)) => "delete",
        ClientOp::Write(Command::Txn(_)) => "txn",
        ClientOp::Write(_) => "write",
        ClientOp::Range { .. } => "range",
        ClientOp::ReadAt { .. } => "read-at",
        ClientOp::CompactRange { .. } => "compact-range",
        ClientOp::LeaseKeepAlive { .. } => "keepalive",
        ClientOp::Member(_) => "member",
    }
}

const TICK: u64 = 1;
const SYNC: u64 = 2;
const BUSY: u64 = 3;

/// Inputs a busy server holds at most (like the runtime's bounded inbox;
/// more are dropped, as a full inbox would refuse them).
const MAX_DEFERRED: usize = 4096;

/// An input that reached a server while it was busy applying.
#[derive(Debug)]
enum Deferred {
    Message(ProcId, Msg),
    Sync,
}

/// Timing of a simulated server.
#[derive(Clone, Debug)]
pub struct ServerTiming {
    /// One Raft tick of local time.
    pub tick: Time,
    /// Bounds of one fdatasync.
    pub sync_min: Time,
    /// Upper bound of one fdatasync.
    pub sync_max: Time,
    /// Sync every Ready, even one whose only record is a commit index (as
    /// drivers without etcd's MustSync rule do): another schedule of syncs.
    pub sync_every_ready: bool,
    /// What applying one key operation costs, in nanoseconds: a server
    /// that applied some in a Ready is busy that long (its output, ticks,
    /// messages and finished syncs wait, as in the runtime's one actor).
    pub apply_op_nanos: u64,
}

/// What of a simulated node outlives its crashes: its file system (the WAL
/// and snapshot images) and its stores as of their last durable commits.
/// Clones share the same storage.
#[derive(Clone, Debug)]
pub struct Storage {
    /// The simulated file system.
    pub vfs: SimVfs,
    /// The state machines' stores.
    pub stores: MemStores,
}

impl Storage {
    /// Blank storage.
    pub fn new(max_sessions: usize) -> Storage {
        Storage {
            vfs: SimVfs::new(),
            stores: MemStores::new(max_sessions),
        }
    }
}

/// Where a simulated node keeps its data dir.
const DATA_DIR: &str = "/data";

/// A database node on a simulated disk: the same [`Host`] the production
/// runtime drives, over the same storage code, with the simulator's
/// network, timers and file system around it.
pub struct Server {
    /// The host (sans-IO core: the node and every decision around it).
    pub host: Host,
    /// Its disk: every group's log on one WAL, and the snapshot images.
    disk: Disk<SimVfs>,
    /// What survives a crash.
    pub storage: Storage,
    timing: ServerTiming,
    /// The Ready whose writes are being synced; its messages leave after.
    syncing: Option<synod_node::Ready>,
    /// How many times this server restarted (tags its client replies).
    pub incarnation: u64,
    /// Busy applying until its BUSY timer: inputs wait in `deferred`.
    busy: bool,
    /// A tick came while busy (missed ticks collapse into one, as the
    /// runtime's interval does).
    tick_due: bool,
    deferred: VecDeque<Deferred>,
    /// The Ready whose apply the server is busy with.
    held: Option<synod_node::Ready>,
    /// Nanoseconds of apply not yet charged (below a microsecond).
    owed_nanos: u64,
    /// Total time spent busy applying.
    pub busy_time: Time,
}

/// Proc id of the server with Raft id `id`.
pub fn proc_of(id: NodeId) -> ProcId {
    (id - 1) as ProcId
}

impl Server {
    /// Builds a server from its storage, as the production server boots:
    /// each group's store at its last durable commit and its log after it;
    /// a group of which nothing was ever made durable bootstraps.
    pub fn boot(
        cfg: NodeConfig,
        host: HostConfig,
        voters: Vec<NodeId>,
        ranges: &[(KeyRange, ShardId)],
        storage: Storage,
        timing: ServerTiming,
    ) -> Server {
        let groups: Vec<(ShardId, KeyRange)> =
            ranges.iter().map(|(r, s)| (*s, r.clone())).collect();
        let mut stores = storage.stores.clone();
        let opened = Disk::open(
            storage.vfs.clone(),
            std::path::Path::new(DATA_DIR),
            &groups,
            WalConfig::for_simulation(),
            &mut stores,
        )
        .unwrap_or_else(|e| panic!("recovering from a simulated disk: {e}"));
        let inits = opened
            .groups
            .into_iter()
            .map(|g| {
                let range = groups
                    .iter()
                    .find(|(s, _)| *s == g.shard)
                    .map(|(_, r)| r.clone());
                let init = g.init.unwrap_or_else(|| GroupInit {
                    shard: g.shard,
                    range,
                    raft: Init::Bootstrap {
                        voters: voters.clone(),
                        learners: Vec::new(),
                    },
                    snapshot_data: None,
                });
                (init, Some(g.state))
            })
            .collect();
        let mut node = Node::with_state_machines(cfg, inits)
            .unwrap_or_else(|e| panic!("recovering from a valid disk: {e}"));
        // Groups a split creates keep their state in this server's stores too.
        let mut fresh = storage.stores.clone();
        node.set_store_factory(Box::new(move |shard| {
            fresh
                .open(shard)
                .unwrap_or_else(|e| panic!("opening a simulated store: {e}"))
                .0
        }));
        Server {
            host: Host::new(node, host),
            disk: opened.disk,
            storage,
            timing,
            syncing: None,
            incarnation: 0,
            busy: false,
            tick_due: false,
            deferred: VecDeque::new(),
            held: None,
            owed_nanos: 0,
            busy_time: 0,
        }
    }

    /// The node.
    pub fn node(&self) -> &Node {
        self.host.node()
    }

    fn on_start(&mut self, ctx: &mut Ctx<'_, Msg>) {
        ctx.set_timer(self.timing.tick, TICK);
        self.drive(ctx);
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, Msg>, from: ProcId, msg: Msg) {
        if self.busy {
            if self.deferred.len() < MAX_DEFERRED {
                self.deferred.push_back(Deferred::Message(from, msg));
            }
            return;
        }
        self.take_message(from, msg);
        self.drive(ctx);
    }

    fn take_message(&mut self, from: ProcId, msg: Msg) {
        match msg {
            Msg::Peer(m) => self.host.peer(from as NodeId + 1, m),
            // A client's token is its process id, plus one (0 means nobody).
            Msg::Request(req) => self.host.client(from as u64 + 1, req),
            Msg::Reply(..) => {}
        }
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_, Msg>, tag: u64) {
        match tag {
            TICK if self.busy => {
                self.tick_due = true;
                ctx.set_timer(self.timing.tick, TICK);
                return;
            }
            TICK => {
                let idle = self.syncing.is_none();
                self.host.tick(idle);
                ctx.set_timer(self.timing.tick, TICK);
            }
            SYNC if self.busy => {
                self.deferred.push_back(Deferred::Sync);
                return;
            }
            SYNC => self.sync_done(ctx),
            BUSY => {
                assert!(self.busy, "a BUSY timer fires only while busy");
                self.busy = false;
                if let Some(rd) = self.held.take() {
                    self.process(ctx, rd);
                }
                if std::mem::take(&mut self.tick_due) {
                    let idle = self.syncing.is_none();
                    self.host.tick(idle);
                }
                while let Some(d) = self.deferred.pop_front() {
                    match d {
                        Deferred::Message(from, msg) => self.take_message(from, msg),
                        Deferred::Sync => self.sync_done(ctx),
                    }
                }
            }
            _ => unreachable!("unknown server timer {tag}"),
        }
        self.drive(ctx);
    }

    fn sync_done(&mut self, ctx: &mut Ctx<'_, Msg>) {
        let rd = self
            .syncing
            .take()
            .expect("a sync completes only while one is running");
        self.disk
            .sync()
            .unwrap_or_else(|e| panic!("the simulated disk failed: {e}"));
        self.send(ctx, rd, true)
    }

    fn send(&mut self, ctx: &mut Ctx<'_, Msg>, mut rd: synod_node::Ready, synced: bool) {
        for env in rd.messages.drain(..) {
            let to = proc_of(env.msg.to);
            ctx.send(to, Msg::Peer(HostMsg::Raft(env)));
        }
        self.host.advance(rd, synced);
        self.flush(ctx);
    }

    /// Carries out what the host decided that needs no disk.
    fn flush(&mut self, ctx: &mut Ctx<'_, Msg>) {
        let out = self.host.outbox();
        for (to, m) in out.sends {
            ctx.send(proc_of(to), Msg::Peer(m));
        }
        for (token, r) in out.replies {
            ctx.send((token - 1) as ProcId, Msg::Reply(r, self.incarnation));
        }
        if let Some(index) = out.commit_store {
            self.host
                .commit_store(index)
                .expect("the simulator's store does not fail");
        }
    }

    /// Hands out Readies until one needs a sync (at most one sync runs at a time).
    fn drive(&mut self, ctx: &mut Ctx<'_, Msg>) {
        self.flush(ctx);
        for _ in 0..64 {
            if self.busy || self.syncing.is_some() || !self.host.has_ready() {
                return;
            }
            let rd = self.host.ready();
            if self.charge(ctx, rd.apply_ops) {
                // The apply happened inside `ready`: its output leaves
                // once the time it took has passed.
                self.held = Some(rd);
                return;
            }
            self.process(ctx, rd);
        }
    }

    /// Writes `rd` (starting its sync, if it needs one) and sends what may
    /// leave now.
    fn process(&mut self, ctx: &mut Ctx<'_, Msg>, mut rd: synod_node::Ready) {
        self.flush(ctx);
        for env in rd.early_messages.drain(..) {
            let to = proc_of(env.msg.to);
            ctx.send(to, Msg::Peer(HostMsg::Raft(env)));
        }
        let writes = !rd.persist.is_empty();
        let node = self.host.node();
        let durable = |s: ShardId| {
            node.state_machine(s)
                .and_then(|sm| sm.durable_applied())
                .unwrap_or(0)
        };
        self.disk
            .write(&rd.persist, &durable)
            .unwrap_or_else(|e| panic!("the simulated disk failed: {e}"));
        rd.persist.clear();
        let sync = rd.must_sync || (self.timing.sync_every_ready && writes);
        if !sync {
            // Nothing or only a commit index: written, not synced; a
            // crash before the next sync may lose it.
            self.send(ctx, rd, !writes);
            return;
        }
        self.syncing = Some(rd);
        let t = ctx
            .rng()
            .random_range(self.timing.sync_min..=self.timing.sync_max);
        ctx.set_timer(t, SYNC);
    }

    /// Charges the apply work of a Ready: whether the server is now busy
    /// with it (the Ready's output and every input wait until then).
    fn charge(&mut self, ctx: &mut Ctx<'_, Msg>, ops: u64) -> bool {
        assert!(!self.busy, "charged while already busy");
        let nanos = self
            .owed_nanos
            .saturating_add(ops.saturating_mul(self.timing.apply_op_nanos));
        let micros = nanos / 1000;
        self.owed_nanos = nanos % 1000;
        if micros > 0 {
            self.busy = true;
            self.busy_time += micros;
            ctx.set_timer(micros, BUSY);
        }
        self.busy
    }
}

/// What a client reports to the harness, which stamps it with true time.
#[derive(Clone, Debug)]
pub enum ClientEvent {
    /// An operation starts.
    Invoke {
        /// History client id.
        client: u64,
        /// Kind.
        op: OpKind,
        /// Key.
        key: String,
        /// Value written (put, cas).
        value: Option<String>,
        /// Expected value (cas).
        expected: Option<String>,
    },
    /// The running operation ended with a known outcome.
    Complete {
        /// Succeeded (cas: swapped).
        ok: bool,
        /// Value read (get).
        read: Option<String>,
    },
    /// The running operation's outcome will never be known.
    Unknown,
    /// A read of every key (over every range) begins.
    ScanBegins,
    /// The read of every key was answered at revision `at` with these
    /// keys, values and mod revisions; it ends now.
    Scanned {
        /// The revision it was answered at.
        at: i64,
        /// (key, value, mod revision), in key order.
        kvs: Vec<(String, String, i64)>,
    },
    /// The running operation, a put, was acknowledged at this revision
    /// (for the revision-order checker; its completion follows).
    Wrote {
        /// The revision.
        revision: i64,
    },
    /// A request over several groups' keys was served instead of refused.
    SpanServed,
    /// The answer to the client's (session, seq) was the answer to another
    /// kind of request (a write's to a read, a put's to a txn).
    WrongAnswer,
    /// What a member showed this client, for the session checker (not part
    /// of the linearizability history): an acknowledged write's revision,
    /// or the revision a serializable read was served at.
    Session {
        /// The member's Raft id.
        member: NodeId,
        /// The key the operation was about (its group orders revisions).
        key: Vec<u8>,
        /// Its incarnation when it answered.
        incarnation: u64,
        /// A write (else a serializable read).
        write: bool,
        /// The revision.
        revision: i64,
    },
}

#[derive(Clone, Debug)]
struct Running {
    kind: OpKind,
    /// A serializable read: outside the linearizability history.
    serializable: bool,
    /// A delete over every group's keys: must be refused, not recorded.
    span: bool,
    /// A read of every key at one revision (ranges split): checked
    /// against the acknowledged puts, not recorded in the history.
    scan: bool,
    req: ClientRequest,
    attempts: u32,
    /// Local time at which the client gives up.
    deadline: Time,
    attempt_timer: Option<TimerId>,
}

/// Timing and shape of a client's workload.
#[derive(Clone, Debug)]
pub struct Workload {
    /// Operations this client performs.
    pub ops: u64,
    /// Keys it touches (`k0`..).
    pub keys: u32,
    /// Give up on an operation (outcome unknown) after this long.
    pub op_timeout: Time,
    /// Retry an attempt on another server after this long without a reply.
    pub attempt_timeout: Time,
    /// Pause between operations, at most.
    pub think_max: Time,
    /// The keys lie in several groups: now and then send a delete over
    /// all of them, which must be refused whole (never routed by its first key).
    pub spans: bool,
    /// Read every key at once now and then (ranges split: a read over
    /// every range at one revision).
    pub scans: bool,
}

const NEXT_OP: u64 = 1;
const ATTEMPT: u64 = 2;
const RETRY: u64 = 3;

/// A workload client: one operation at a time, retried across servers with the
/// same session and sequence number so the database applies it once.
pub struct Client {
    index: u64,
    servers: usize,
    work: Workload,
    /// History/session id; changes after an unknown outcome.
    session: u64,
    generation: u64,
    seq: u64,
    done: u64,
    target: ProcId,
    running: Option<Running>,
    writes: u64,
    /// The value this client last read or wrote per key (for cas).
    seen: BTreeMap<String, Option<String>>,
    /// A probe reads every key once, in order, when woken.
    probe: bool,
    dormant: bool,
    /// Events for the harness to stamp and record.
    pub outbox: Vec<ClientEvent>,
}

impl Client {
    /// Client number `index` of a cluster with `servers` servers.
    pub fn new(index: u64, servers: usize, work: Workload) -> Client {
        let mut c = Client {
            index,
            servers,
            work,
            session: 0,
            generation: 0,
            seq: 0,
            done: 0,
            target: index as usize % servers,
            running: None,
            writes: 0,
            seen: BTreeMap::new(),
            probe: false,
            dormant: false,
            outbox: Vec::new(),
        };
        c.new_session();
        c
    }

    /// A dormant probe that, once [`Client::wake`]d, reads `k0`..`k{ops-1}`
    /// linearizably, one after the other.
    pub fn probe(index: u64, servers: usize, work: Workload) -> Client {
        let mut c = Client::new(index, servers, work);
        c.probe = true;
        c.dormant = true;
        c
    }

    /// Whether this is the liveness phase's probe.
    pub fn is_probe(&self) -> bool {
        self.probe
    }

    /// Starts a dormant probe.
    pub fn wake(&mut self, ctx: &mut Ctx<'_, Msg>) {
        if self.dormant {
            self.dormant = false;
            self.start_op(ctx);
        }
    }

    fn new_session(&mut self) {
        self.generation += 1;
        self.session = (self.index + 1) * 1_000_000 + self.generation;
        self.seq = 0;
    }

    /// Whether the workload is finished.
    pub fn finished(&self) -> bool {
        !self.dormant && self.done >= self.work.ops && self.running.is_none()
    }

    fn on_start(&mut self, ctx: &mut Ctx<'_, Msg>) {
        if self.dormant {
            return;
        }
        let t = ctx.rng().random_range(1..=self.work.think_max.max(1));
        ctx.set_timer(t, NEXT_OP);
    }

    fn start_op(&mut self, ctx: &mut Ctx<'_, Msg>) {
        if self.done >= self.work.ops {
            return;
        }
        let rng = ctx.rng();
        let (key, roll) = if self.probe {
            (format!("k{}", self.done), 50)
        } else {
            (
                format!("k{}", rng.random_range(0..self.work.keys)),
                rng.random_range(0..100),
            )
        };
        self.writes += 1;
        let fresh = format!("v{}-{}", self.index, self.writes);
        let mut serializable = false;
        let span = self.work.spans && !self.probe && rng.random_range(0..20) == 0;
        let scan = self.work.scans && !self.probe && rng.random_range(0..15) == 0;
        let (kind, op, value, expected) = if scan {
            let op = ClientOp::Range {
                req: RangeRequest {
                    key: b"k".to_vec(),
                    range_end: b"l".to_vec(),
                    ..Default::default()
                },
                serializable: false,
                auth: None,
            };
            (OpKind::Get, op, None, None)
        } else if span {
            let op = ClientOp::Write(Command::DeleteRange(DeleteRangeRequest {
                key: b"k".to_vec(),
                range_end: b"l".to_vec(),
                ..Default::default()
            }));
            (OpKind::Delete, op, None, None)
        } else if roll < 40 {
            let op = ClientOp::Write(Command::Put(PutRequest {
                key: key.clone().into_bytes(),
                value: fresh.clone().into_bytes(),
                ..Default::default()
            }));
            (OpKind::Put, op, Some(fresh), None)
        } else if roll < 70 {
            let op = ClientOp::Range {
                req: RangeRequest {
                    key: key.clone().into_bytes(),
                    ..Default::default()
                },
                serializable: false,
                auth: None,
            };
            (OpKind::Get, op, None, None)
        } else if roll < 86 {
            // A serializable read from the member this client last used:
            // the session checker's read-your-writes and monotonic reads.
            serializable = true;
            let op = ClientOp::Range {
                req: RangeRequest {
                    key: key.clone().into_bytes(),
                    ..Default::default()
                },
                serializable: true,
                auth: None,
            };
            (OpKind::Get, op, None, None)
        } else if roll < 92 {
            // Compare-and-set from the value this client last saw for the key.
            let expected = self.seen.get(&key).cloned().flatten();
            let target = match &expected {
                Some(v) => CompareTarget::Value(v.clone().into_bytes()),
                None => CompareTarget::CreateRevision(0),
            };
            let op = ClientOp::Write(Command::Txn(TxnRequest {
                compare: vec![Compare {
                    key: key.clone().into_bytes(),
                    range_end: Vec::new(),
                    target,
                    result: CompareResult::Equal,
                }],
                success: vec![RequestOp::Put(PutRequest {
                    key: key.clone().into_bytes(),
                    value: fresh.clone().into_bytes(),
                    ..Default::default()
                })],
                failure: Vec::new(),
            }));
            (OpKind::Cas, op, Some(fresh), expected)
        } else {
            let op = ClientOp::Write(Command::DeleteRange(DeleteRangeRequest {
                key: key.clone().into_bytes(),
                ..Default::default()
            }));
            (OpKind::Delete, op, None, None)
        };
        self.seq += 1;
        let req = ClientRequest {
            client: self.session,
            seq: self.seq,
            op,
        };
        if scan {
            self.outbox.push(ClientEvent::ScanBegins);
        }
        if !serializable && !span && !scan {
            self.outbox.push(ClientEvent::Invoke {
                client: self.session,
                op: kind,
                key,
                value,
                expected,
            });
        }
        self.running = Some(Running {
            kind,
            serializable: serializable || span || scan,
            span,
            scan,
            req,
            attempts: 0,
            deadline: ctx.now() + self.work.op_timeout,
            attempt_timer: None,
        });
        self.attempt(ctx);
    }

    fn attempt(&mut self, ctx: &mut Ctx<'_, Msg>) {
        let Some(r) = self.running.as_mut() else {
            return;
        };
        if ctx.now() >= r.deadline || r.attempts >= 64 {
            return self.give_up(ctx);
        }
        r.attempts += 1;
        ctx.send(self.target, Msg::Request(r.req.clone()));
        let t = ctx.set_timer(self.work.attempt_timeout, ATTEMPT | (self.seq << 8));
        r.attempt_timer = Some(t);
    }

    fn give_up(&mut self, ctx: &mut Ctx<'_, Msg>) {
        if let Some(r) = self.running.take() {
            if let Some(t) = r.attempt_timer {
                ctx.cancel_timer(t);
            }
            self.done += 1;
            if !r.serializable {
                self.outbox.push(ClientEvent::Unknown);
                self.new_session();
            }
            self.schedule_next(ctx);
        }
    }

    fn finish(&mut self, ctx: &mut Ctx<'_, Msg>, ok: bool, read: Option<String>) {
        let r = self.running.take().expect("finish with a running op");
        let key = match &r.req.op {
            ClientOp::Write(Command::Put(p)) => Some((p.key.clone(), Some(p.value.clone()))),
            ClientOp::Write(Command::DeleteRange(d)) => Some((d.key.clone(), None)),
            ClientOp::Range { req, .. } => {
                Some((req.key.clone(), read.clone().map(String::into_bytes)))
            }
            _ => None,
        };
        if let (true, Some((k, v))) = (ok, key) {
            let k = String::from_utf8_lossy(&k).into_owned();
            self.seen
                .insert(k, v.map(|v| String::from_utf8_lossy(&v).into_owned()));
        }
        if let Some(t) = r.attempt_timer {
            ctx.cancel_timer(t);
        }
        if !r.serializable {
            self.outbox.push(ClientEvent::Complete { ok, read });
        }
        self.done += 1;
        self.schedule_next(ctx);
    }

    fn schedule_next(&mut self, ctx: &mut Ctx<'_, Msg>) {
        let t = ctx.rng().random_range(1..=self.work.think_max.max(1));
        ctx.set_timer(t, NEXT_OP);
    }

    fn retry_elsewhere(&mut self, ctx: &mut Ctx<'_, Msg>, leader: NodeId) {
        if let Some(r) = self.running.as_mut() {
            if let Some(t) = r.attempt_timer.take() {
                ctx.cancel_timer(t);
            }
        }
        self.target =
            if leader != 0 && proc_of(leader) < self.servers && proc_of(leader) != self.target {
                proc_of(leader)
            } else {
                (self.target + 1 + ctx.rng().random_range(0..self.servers.max(2) - 1))
                    % self.servers
            };
        ctx.set_timer(5 * MILLIS, RETRY | (self.seq << 8));
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, Msg>, from: ProcId, msg: Msg) {
        let Msg::Reply(reply, incarnation) = msg else {
            return;
        };
        let Some(r) = self.running.as_ref() else {
            return;
        };
        if reply.client != r.req.client || reply.seq != r.req.seq {
            return; // a late reply to an earlier attempt or operation
        }
        let kind = r.kind;
        let serializable = r.serializable;
        if r.scan {
            match &reply.result {
                Ok(ClientResponse::Range(rr)) => {
                    let kvs = rr
                        .kvs
                        .iter()
                        .map(|kv| {
                            (
                                String::from_utf8_lossy(&kv.key).into_owned(),
                                String::from_utf8_lossy(&kv.value).into_owned(),
                                kv.mod_revision,
                            )
                        })
                        .collect();
                    self.outbox.push(ClientEvent::Scanned {
                        at: rr.header_revision,
                        kvs,
                    });
                    return self.finish(ctx, true, None);
                }
                Err(ClientError::NotLeader { leader }) => {
                    let leader = *leader;
                    return self.retry_elsewhere(ctx, leader);
                }
                Err(ClientError::Busy | ClientError::WrongShard { .. }) => {
                    return self.retry_elsewhere(ctx, 0);
                }
                _ => return self.finish(ctx, false, None),
            }
        }
        if r.span {
            // Refused whole, as it must be; served: the harness reports it.
            let served = !matches!(reply.result, Err(ClientError::CrossShard));
            if served {
                self.outbox.push(ClientEvent::SpanServed);
            }
            return self.finish(ctx, false, None);
        }
        let key = match &r.req.op {
            ClientOp::Write(Command::Put(p)) => p.key.clone(),
            ClientOp::Write(Command::DeleteRange(d)) => d.key.clone(),
            ClientOp::Write(Command::Txn(t)) => {
                t.compare.first().map(|c| c.key.clone()).unwrap_or_default()
            }
            ClientOp::Range { req, .. } => req.key.clone(),
            _ => Vec::new(),
        };
        let seen = |write: bool, revision: i64| ClientEvent::Session {
            member: from as NodeId + 1,
            key: key.clone(),
            incarnation,
            write,
            revision,
        };
        match &reply.result {
            Ok(ClientResponse::Range(rr)) if serializable => {
                self.outbox.push(seen(false, rr.header_revision));
            }
            Ok(ClientResponse::Write(w)) => self.outbox.push(seen(true, w.revision())),
            _ => {}
        }
        if let Ok(ClientResponse::Write(Response::Put { revision, .. })) = &reply.result {
            self.outbox.push(ClientEvent::Wrote {
                revision: *revision,
            });
        }
        let fits = match &reply.result {
            Ok(ClientResponse::Range(_)) => kind == OpKind::Get,
            Ok(ClientResponse::Write(Response::Txn { .. })) => kind == OpKind::Cas,
            Ok(ClientResponse::Write(Response::Put { .. })) => kind == OpKind::Put,
            Ok(ClientResponse::Write(Response::DeleteRange { .. })) => kind == OpKind::Delete,
            _ => true,
        };
        if !fits {
            // Not this request's answer: its outcome is unknown, and the
            // harness reports the mix-up.
            self.outbox.push(ClientEvent::WrongAnswer);
            return self.give_up(ctx);
        }
        match reply.result {
            Ok(ClientResponse::Range(rr)) => {
                let read = rr
                    .kvs
                    .first()
                    .map(|kv| String::from_utf8_lossy(&kv.value).into_owned());
                self.finish(ctx, true, read);
            }
            Ok(ClientResponse::Write(Response::Txn { succeeded, .. })) => {
                self.finish(ctx, succeeded, None);
            }
            Ok(ClientResponse::Write(_)) => self.finish(ctx, true, None),
            Ok(ClientResponse::LeaseKeepAlive { .. }) => {
                unreachable!("this workload sends no keep-alives")
            }
            Ok(ClientResponse::Member { .. }) => {
                unreachable!("this workload changes no membership")
            }
            Err(ClientError::NotLeader { leader }) => self.retry_elsewhere(ctx, leader),
            Err(ClientError::Busy) => self.retry_elsewhere(ctx, 0),
            // Routed to a range a split had moved the key out of: it took
            // no effect; route it again.
            Err(ClientError::WrongShard { .. }) => self.retry_elsewhere(ctx, 0),
            // Its revision was taken (proposed before a split, or drawn by
            // a deposed leader): it took no effect; propose it again.
            Err(ClientError::RevisionTaken) => self.retry_elsewhere(ctx, 0),
            // The state machine refused the command: it took no effect.
            Err(ClientError::Kv(_)) if kind != OpKind::Get => self.finish(ctx, false, None),
            Err(_) => self.give_up(ctx),
        }
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_, Msg>, tag: u64) {
        let seq = tag >> 8;
        match tag & 0xff {
            NEXT_OP => self.start_op(ctx),
            ATTEMPT | RETRY if self.running.is_some() && seq == self.seq => {
                if tag & 0xff == ATTEMPT {
                    // No answer in time: try another server with the same seq.
                    if let Some(r) = self.running.as_mut() {
                        r.attempt_timer = None;
                    }
                    self.target = (self.target + 1) % self.servers;
                }
                self.attempt(ctx);
            }
            _ => {}
        }
    }
}
