//! What `two-phase-locking` and `mvcc` share: one data server (P0) and
//! clients (P1..) running read-modify-write transactions against it, the
//! server's concurrency control (strict 2PL with wait-die, or multiversion
//! with snapshot reads and commit-time validation), and the checkers.
//!
//! The workload has two kinds of transaction, each a textbook anomaly's
//! setting. *Increment* reads the hot counter `c` and writes it back plus
//! one: two interleaved increments that both commit lose an update.
//! *On-call* reads a pair `x_p`, `y_p` (both 1 at the start; the
//! constraint is x + y ≥ 1): when both are 1 it sets one of them to 0,
//! otherwise it sets the 0 back to 1. Each is correct alone; two that read
//! (1, 1) concurrently and zero different keys commit a write skew.
//!
//! The checkers read only the server's committed history: which version of
//! each key every committed transaction read and which it wrote. From it
//! they build Adya's dependency graph (ww, wr and rw edges) and look for a
//! cycle, which is exactly a non-serializable history; and they check the
//! counter against the committed increments and every pair against its
//! constraint.

use std::collections::{BTreeMap, BTreeSet};

use rand::Rng;
use synod_simnet::{ClockConfig, Ctx, Fault, NetConfig, ProcId, Process, Sim, Time};

use crate::harness::{net_for, run_faulted};
use crate::registry::FaultModel;
use crate::report::{Check, Cost, LabOptions, LabReport, LabRun};

/// A key: the counter (0) or one of a pair (1 + 2p for x_p, 2 + 2p for y_p).
pub type Key = u32;

/// A transaction attempt: (client, transaction number, attempt).
pub type Tid = (ProcId, u32, u32);

/// The counter's key.
pub const COUNTER: Key = 0;
/// The number of (x, y) pairs.
pub const PAIRS: u32 = 2;
/// Transactions per client.
pub const TXNS: u32 = 6;
const UNTIL: Time = 20_000_000;

/// Name of a key for labels.
pub fn key_name(k: Key) -> String {
    if k == COUNTER {
        "c".into()
    } else {
        format!("{}{}", if k % 2 == 1 { "x" } else { "y" }, (k - 1) / 2)
    }
}

/// How the server orders transactions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    /// Strict two-phase locking: S locks to read, X to write, all held to
    /// the end; conflicts resolved by wait-die.
    Locking,
    /// Planted bug: no locks at all.
    NoLocks,
    /// Planted bug: a read's S lock is released right after the read (not
    /// two-phase); X locks are held to commit.
    EarlyRelease,
    /// Multiversion, reads see the latest committed version (read
    /// committed), no validation.
    ReadCommitted,
    /// Multiversion snapshot isolation: reads see the snapshot taken at the
    /// first operation; first committer wins on written keys.
    Snapshot,
    /// Snapshot reads, and commit validates the read set as well: a
    /// transaction whose read keys were overwritten since its snapshot
    /// aborts (serializable: each committed transaction could have run
    /// alone at its commit point).
    Serializable,
}

impl Control {
    fn locks(self) -> bool {
        matches!(self, Control::Locking | Control::EarlyRelease)
    }
}

/// Client ↔ server messages.
#[derive(Clone, Debug)]
pub enum TxMsg {
    /// Read `key` for transaction `tid`, whose wait-die age is `ts`.
    Read(Tid, (Time, ProcId), Key),
    /// Write `key := value`.
    Write(Tid, (Time, ProcId), Key, i64),
    /// Commit.
    Commit(Tid),
    /// The value read.
    Value(Tid, Key, i64),
    /// The write is buffered (and, under locking, X-locked).
    Written(Tid, Key),
    /// Committed.
    Committed(Tid),
    /// Aborted (died under wait-die, or failed validation).
    Aborted(Tid),
}

/// One version of a key: its value and the transaction that wrote it
/// (`None` for the initial value).
#[derive(Clone, Debug)]
pub struct Version {
    /// The value.
    pub value: i64,
    /// Its writer.
    pub writer: Option<Tid>,
    /// The commit's sequence number (0 for the initial value).
    pub seq: u64,
}

/// A committed transaction, as the server saw it.
#[derive(Clone, Debug)]
pub struct Committed {
    /// Its id.
    pub tid: Tid,
    /// (key, index of the version read).
    pub reads: Vec<(Key, usize)>,
    /// Keys written (each a new version).
    pub writes: Vec<Key>,
    /// Whether it was an increment.
    pub increment: bool,
}

#[derive(Clone, Debug, Default)]
struct Live {
    snapshot: Option<u64>,
    reads: Vec<(Key, usize)>,
    buffer: BTreeMap<Key, i64>,
}

#[derive(Clone, Debug, Default)]
struct Lock {
    shared: BTreeSet<Tid>,
    exclusive: Option<Tid>,
}

/// A request waiting for a lock.
#[derive(Clone, Debug)]
struct Waiting {
    from: ProcId,
    msg: TxMsg,
}

/// The server's state.
#[derive(Clone, Debug, Default)]
pub struct Server {
    /// Every version of every key, in commit order.
    pub versions: BTreeMap<Key, Vec<Version>>,
    /// Committed transactions, in commit order.
    pub log: Vec<Committed>,
    /// Aborts, by reason.
    pub aborts: u64,
    /// Requests that waited for a lock.
    pub waits: u64,
    commits: u64,
    ages: BTreeMap<Tid, (Time, ProcId)>,
    live: BTreeMap<Tid, Live>,
    locks: BTreeMap<Key, Lock>,
    queue: Vec<Waiting>,
}

/// What a client is doing.
#[derive(Clone, Debug)]
pub struct Client {
    /// Transactions committed.
    pub done: u32,
    /// Attempts aborted.
    pub aborted: u32,
    /// Requests sent.
    pub requests: u64,
    txn: u32,
    attempt: u32,
    ts: (Time, ProcId),
    pair: u32,
    step: u32,
    seen: Vec<i64>,
}

/// A process of the run.
#[derive(Clone, Debug)]
pub enum Node {
    /// P0.
    Server(Server, Control),
    /// P1...
    Client(Client),
}

const NEXT: u64 = 0;

impl Client {
    fn tid(&self, me: ProcId) -> Tid {
        (me, self.txn, self.attempt)
    }

    fn increment(&self, me: ProcId) -> bool {
        (me as u32 + self.txn).is_multiple_of(2)
    }

    fn send(&mut self, ctx: &mut Ctx<'_, TxMsg>, msg: TxMsg) {
        self.requests += 1;
        ctx.send(0, msg);
    }

    /// Issues the next operation of the current transaction.
    fn next_op(&mut self, ctx: &mut Ctx<'_, TxMsg>) {
        let me = ctx.id();
        let tid = self.tid(me);
        let ts = self.ts;
        let (x, y) = (1 + 2 * self.pair, 2 + 2 * self.pair);
        let msg = if self.increment(me) {
            match self.step {
                0 => TxMsg::Read(tid, ts, COUNTER),
                1 => TxMsg::Write(tid, ts, COUNTER, self.seen[0] + 1),
                _ => TxMsg::Commit(tid),
            }
        } else {
            match self.step {
                0 => TxMsg::Read(tid, ts, x),
                1 => TxMsg::Read(tid, ts, y),
                2 => {
                    let (vx, vy) = (self.seen[0], self.seen[1]);
                    if vx + vy >= 2 {
                        // Go off call: zero one of the two, chosen by client.
                        let k = if me % 2 == 0 { x } else { y };
                        TxMsg::Write(tid, ts, k, 0)
                    } else {
                        let k = if vx == 0 { x } else { y };
                        TxMsg::Write(tid, ts, k, 1)
                    }
                }
                _ => TxMsg::Commit(tid),
            }
        };
        self.send(ctx, msg);
    }

    fn begin(&mut self, ctx: &mut Ctx<'_, TxMsg>) {
        if self.txn >= TXNS {
            return;
        }
        if self.attempt == 0 {
            self.ts = (ctx.now(), ctx.id());
            self.pair = ctx.rng().random_range(0..PAIRS);
        }
        self.step = 0;
        self.seen.clear();
        let me = ctx.id();
        ctx.mark(&format!(
            "begin T{}.{}{}",
            me,
            self.txn,
            if self.increment(me) { " c++" } else { "" }
        ));
        self.next_op(ctx);
    }

    fn on_reply(&mut self, ctx: &mut Ctx<'_, TxMsg>, msg: TxMsg) {
        let me = ctx.id();
        let tid = self.tid(me);
        match msg {
            TxMsg::Value(t, _, v) if t == tid => {
                self.seen.push(v);
                self.step += 1;
                self.next_op(ctx);
            }
            TxMsg::Written(t, _) if t == tid => {
                self.step += 1;
                self.next_op(ctx);
            }
            TxMsg::Committed(t) if t == tid => {
                ctx.mark(&format!("commit T{}.{}", me, self.txn));
                self.done += 1;
                self.txn += 1;
                self.attempt = 0;
                let think = ctx.rng().random_range(1_000..20_000);
                ctx.set_timer(think, NEXT);
            }
            TxMsg::Aborted(t) if t == tid => {
                ctx.mark(&format!("abort T{}.{}", me, self.txn));
                self.aborted += 1;
                self.attempt += 1;
                let backoff = ctx.rng().random_range(5_000..30_000);
                ctx.set_timer(backoff, NEXT);
            }
            _ => {}
        }
    }
}

/// Whether `t` may take `key` in mode `exclusive` now; otherwise the
/// transactions in its way.
fn blockers(lock: &Lock, t: Tid, exclusive: bool) -> Vec<Tid> {
    let mut v: Vec<Tid> = lock.exclusive.into_iter().filter(|&h| h != t).collect();
    if exclusive {
        v.extend(lock.shared.iter().copied().filter(|&h| h != t));
    }
    v
}

impl Server {
    fn new() -> Self {
        let mut versions = BTreeMap::new();
        versions.insert(
            COUNTER,
            vec![Version {
                value: 0,
                writer: None,
                seq: 0,
            }],
        );
        for k in 1..=2 * PAIRS {
            versions.insert(
                k,
                vec![Version {
                    value: 1,
                    writer: None,
                    seq: 0,
                }],
            );
        }
        Server {
            versions,
            ..Server::default()
        }
    }

    fn multiversion(control: Control) -> bool {
        matches!(control, Control::Snapshot | Control::Serializable)
    }

    fn release(&mut self, t: Tid) {
        for l in self.locks.values_mut() {
            l.shared.remove(&t);
            if l.exclusive == Some(t) {
                l.exclusive = None;
            }
        }
    }

    fn abort(&mut self, ctx: &mut Ctx<'_, TxMsg>, from: ProcId, t: Tid) {
        self.aborts += 1;
        self.live.remove(&t);
        self.ages.remove(&t);
        self.release(t);
        self.queue.retain(|w| match &w.msg {
            TxMsg::Read(u, ..) | TxMsg::Write(u, ..) => *u != t,
            _ => true,
        });
        ctx.mark(&format!("abort T{}.{}", t.0, t.1));
        ctx.send(from, TxMsg::Aborted(t));
    }

    fn age(&self, t: Tid) -> (Time, ProcId) {
        self.ages
            .get(&t)
            .copied()
            .unwrap_or((Time::MAX, usize::MAX))
    }

    /// Serves every waiting request whose lock is now free.
    fn grant(&mut self, ctx: &mut Ctx<'_, TxMsg>, control: Control) {
        let mut i = 0;
        while i < self.queue.len() {
            let (t, k, x) = match &self.queue[i].msg {
                TxMsg::Read(t, _, k) => (*t, *k, false),
                TxMsg::Write(t, _, k, _) => (*t, *k, true),
                _ => unreachable!("only reads and writes wait"),
            };
            if blockers(self.locks.entry(k).or_default(), t, x).is_empty() {
                let w = self.queue.remove(i);
                self.serve(ctx, w.from, w.msg, control);
                i = 0;
            } else {
                i += 1;
            }
        }
    }

    fn serve(&mut self, ctx: &mut Ctx<'_, TxMsg>, from: ProcId, msg: TxMsg, control: Control) {
        match msg {
            TxMsg::Read(t, ts, k) | TxMsg::Write(t, ts, k, _) => {
                self.ages.insert(t, ts);
                if control.locks() {
                    let exclusive = matches!(msg, TxMsg::Write(..));
                    let b = blockers(self.locks.entry(k).or_default(), t, exclusive);
                    if !b.is_empty() {
                        // Wait-die: an older transaction waits for younger
                        // holders; a younger one dies.
                        if b.iter().all(|&h| ts < self.age(h)) {
                            self.waits += 1;
                            ctx.mark(&format!("T{}.{} waits for {}", t.0, t.1, key_name(k)));
                            self.queue.push(Waiting { from, msg });
                        } else {
                            self.abort(ctx, from, t);
                            self.grant(ctx, control);
                        }
                        return;
                    }
                    let lock = self.locks.entry(k).or_default();
                    if exclusive {
                        lock.shared.remove(&t);
                        lock.exclusive = Some(t);
                    } else if control != Control::EarlyRelease && lock.exclusive != Some(t) {
                        lock.shared.insert(t);
                    }
                }
                self.perform(ctx, from, msg, control);
            }
            TxMsg::Commit(t) => {
                let live = self.live.remove(&t).unwrap_or_default();
                let snap = live.snapshot.unwrap_or(self.commits);
                let stale = |k: &Key| self.versions[k].last().is_some_and(|v| v.seq > snap);
                let conflict = match control {
                    Control::Snapshot => live.buffer.keys().find(|k| stale(k)),
                    Control::Serializable => live
                        .buffer
                        .keys()
                        .chain(live.reads.iter().map(|(k, _)| k))
                        .find(|k| stale(k)),
                    _ => None,
                };
                if let Some(&k) = conflict {
                    ctx.mark(&format!("T{}.{}: {} changed", t.0, t.1, key_name(k)));
                    self.abort(ctx, from, t);
                    return;
                }
                self.commits += 1;
                let increment = live.buffer.contains_key(&COUNTER);
                let writes: Vec<Key> = live.buffer.keys().copied().collect();
                for (k, v) in live.buffer {
                    self.versions.entry(k).or_default().push(Version {
                        value: v,
                        writer: Some(t),
                        seq: self.commits,
                    });
                }
                self.log.push(Committed {
                    tid: t,
                    reads: live.reads,
                    writes,
                    increment,
                });
                self.release(t);
                self.ages.remove(&t);
                ctx.send(from, TxMsg::Committed(t));
                if control.locks() {
                    self.grant(ctx, control);
                }
            }
            _ => {}
        }
    }

    /// A read or write that may go ahead.
    fn perform(&mut self, ctx: &mut Ctx<'_, TxMsg>, from: ProcId, msg: TxMsg, control: Control) {
        let commits = self.commits;
        let multi = Self::multiversion(control);
        match msg {
            TxMsg::Read(t, _, k) => {
                let live = self.live.entry(t).or_default();
                let snap = *live.snapshot.get_or_insert(commits);
                let vs = &self.versions[&k];
                let idx = if multi {
                    vs.iter().rposition(|v| v.seq <= snap).unwrap_or(0)
                } else {
                    vs.len() - 1
                };
                live.reads.push((k, idx));
                let v = live.buffer.get(&k).copied().unwrap_or(vs[idx].value);
                ctx.send(from, TxMsg::Value(t, k, v));
            }
            TxMsg::Write(t, _, k, v) => {
                let live = self.live.entry(t).or_default();
                live.snapshot.get_or_insert(commits);
                live.buffer.insert(k, v);
                ctx.send(from, TxMsg::Written(t, k));
            }
            _ => {}
        }
    }
}

impl Process for Node {
    type Msg = TxMsg;

    fn on_start(&mut self, ctx: &mut Ctx<'_, TxMsg>) {
        if let Node::Client(_) = self {
            let at = ctx.rng().random_range(1_000..10_000);
            ctx.set_timer(at, NEXT);
        }
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_, TxMsg>, _tag: u64) {
        if let Node::Client(c) = self {
            c.begin(ctx);
        }
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, TxMsg>, from: ProcId, msg: TxMsg) {
        match self {
            Node::Server(s, control) => s.serve(ctx, from, msg, *control),
            Node::Client(c) => c.on_reply(ctx, msg),
        }
    }

    fn msg_bytes(_msg: &TxMsg) -> usize {
        32
    }

    fn msg_label(msg: &TxMsg) -> String {
        let t = |t: &Tid| format!("T{}.{}", t.0, t.1);
        match msg {
            TxMsg::Read(id, _, k) => format!("R({} {})", t(id), key_name(*k)),
            TxMsg::Write(id, _, k, v) => format!("W({} {}={v})", t(id), key_name(*k)),
            TxMsg::Commit(id) => format!("Commit({})", t(id)),
            TxMsg::Value(id, k, v) => format!("Value({} {}={v})", t(id), key_name(*k)),
            TxMsg::Written(id, k) => format!("Ok({} {})", t(id), key_name(*k)),
            TxMsg::Committed(id) => format!("Committed({})", t(id)),
            TxMsg::Aborted(id) => format!("Aborted({})", t(id)),
        }
    }
}

/// An edge of the dependency graph: its kind and the key.
type Edge = (&'static str, Key);

/// Adya's direct serialization graph of the committed transactions:
/// `ww` from a version's writer to the next version's writer, `wr` from a
/// version's writer to its readers, `rw` from a reader of a version to the
/// writer of the next one.
pub fn dependency_graph(
    log: &[Committed],
    versions: &BTreeMap<Key, Vec<Version>>,
) -> BTreeMap<Tid, BTreeMap<Tid, Edge>> {
    let mut g: BTreeMap<Tid, BTreeMap<Tid, Edge>> = BTreeMap::new();
    let mut add = |a: Tid, b: Tid, e: Edge| {
        if a != b {
            g.entry(a).or_default().entry(b).or_insert(e);
        }
    };
    for (k, vs) in versions {
        for w in vs.windows(2) {
            if let (Some(a), Some(b)) = (w[0].writer, w[1].writer) {
                add(a, b, ("ww", *k));
            }
        }
    }
    for c in log {
        for &(k, idx) in &c.reads {
            let vs = &versions[&k];
            if let Some(w) = vs[idx].writer {
                add(w, c.tid, ("wr", k));
            }
            if let Some(next) = vs.get(idx + 1).and_then(|v| v.writer) {
                add(c.tid, next, ("rw", k));
            }
        }
    }
    g
}

/// A cycle of the graph, if there is one, as a readable path.
pub fn find_cycle(g: &BTreeMap<Tid, BTreeMap<Tid, Edge>>) -> Option<String> {
    // Iterative DFS with colours: 0 white, 1 on the stack, 2 done.
    let mut colour: BTreeMap<Tid, u8> = BTreeMap::new();
    for &root in g.keys() {
        if colour.get(&root).copied().unwrap_or(0) != 0 {
            continue;
        }
        let mut stack: Vec<(Tid, Vec<Tid>)> = vec![(root, g[&root].keys().copied().collect())];
        colour.insert(root, 1);
        while let Some((node, rest)) = stack.last_mut() {
            let node = *node;
            match rest.pop() {
                Some(next) => match colour.get(&next).copied().unwrap_or(0) {
                    0 => {
                        colour.insert(next, 1);
                        let succ = g.get(&next).map(|m| m.keys().copied().collect());
                        stack.push((next, succ.unwrap_or_default()));
                    }
                    1 => {
                        let from = stack.iter().position(|(t, _)| *t == next).unwrap_or(0);
                        let path: Vec<Tid> = stack[from..].iter().map(|(t, _)| *t).collect();
                        let mut text = String::new();
                        for (i, a) in path.iter().enumerate() {
                            let b = path.get(i + 1).copied().unwrap_or(next);
                            let (kind, k) = g[a][&b];
                            text.push_str(&format!("T{}.{} -{kind}({})-> ", a.0, a.1, key_name(k)));
                        }
                        text.push_str(&format!("T{}.{}", next.0, next.1));
                        return Some(text);
                    }
                    _ => {}
                },
                None => {
                    colour.insert(node, 2);
                    stack.pop();
                }
            }
        }
    }
    None
}

/// Runs the workload under `control` and checks the committed history.
/// The faults both concurrency-control algorithms (`two-phase-locking`,
/// `mvcc`) run under: their transaction server is not a commit protocol.
pub const FAULTS: FaultModel = FaultModel {
    tolerates: &[Fault::Reorder, Fault::Clog, Fault::Skew],
    outside: &[],
    refused: "the transaction server assumes reliable links and no crashes (lost requests, duplicates and crashes are a commit protocol's and an RPC layer's business: two-phase-commit, rpc-semantics)",
};

/// Runs the workload under the control `variants` pairs with the chosen
/// variant, or under `default` when none is chosen.
pub fn run_variant(
    name: &str,
    opts: &LabOptions,
    variants: &[(&str, Control)],
    default: Control,
) -> LabRun {
    let control = variants
        .iter()
        .find(|(v, _)| opts.is_variant(v))
        .map_or(default, |&(_, c)| c);
    run(name, opts, control)
}

/// Runs the workload under `control`.
pub fn run(name: &str, opts: &LabOptions, control: Control) -> LabRun {
    let n = opts.nodes;
    let procs: Vec<Node> = (0..n)
        .map(|i| {
            if i == 0 {
                Node::Server(Server::new(), control)
            } else {
                Node::Client(Client {
                    done: 0,
                    aborted: 0,
                    requests: 0,
                    txn: 0,
                    attempt: 0,
                    ts: (0, i),
                    pair: 0,
                    step: 0,
                    seen: vec![],
                })
            }
        })
        .collect();
    let mut sim = Sim::new(
        opts.seed,
        procs,
        net_for(&opts.faults, NetConfig::reliable()),
        ClockConfig::default(),
    );
    run_faulted(&mut sim, opts, UNTIL, |_| {
        unreachable!("crashes are refused")
    });
    let trace = sim.take_trace();
    let Node::Server(server, _) = sim.proc(0).clone() else {
        unreachable!("P0 is the server")
    };
    let clients: Vec<Client> = (1..n)
        .filter_map(|i| match sim.proc(i) {
            Node::Client(c) => Some(c.clone()),
            Node::Server(..) => None,
        })
        .collect();
    let mut report = LabReport::new(name, opts);
    let incs = server.log.iter().filter(|c| c.increment).count() as i64;
    let counter = server.versions[&COUNTER].last().map_or(0, |v| v.value);
    report.checks.push(Check::new(
        "no lost update: the counter equals the committed increments",
        counter == incs,
        format!("counter {counter}, {incs} increments committed"),
    ));
    // Replay the commits in order; the constraint must hold after each.
    let mut pos: BTreeMap<Key, usize> = BTreeMap::new();
    let mut broken: Vec<String> = vec![];
    for c in &server.log {
        for k in &c.writes {
            *pos.entry(*k).or_default() += 1;
        }
        let value = |k: Key| server.versions[&k][pos.get(&k).copied().unwrap_or(0)].value;
        for p in 0..PAIRS {
            let sum = value(1 + 2 * p) + value(2 + 2 * p);
            if sum < 1 && broken.len() < 2 {
                broken.push(format!(
                    "x{p} + y{p} = {sum} after T{}.{}",
                    c.tid.0, c.tid.1
                ));
            }
        }
    }
    report.checks.push(Check::new(
        "no write skew: every pair keeps x + y ≥ 1 after every commit",
        broken.is_empty(),
        if broken.is_empty() {
            format!("{PAIRS} pairs")
        } else {
            broken.join(", ")
        },
    ));
    let g = dependency_graph(&server.log, &server.versions);
    let cycle = find_cycle(&g);
    report.checks.push(Check::new(
        "serializable: the dependency graph (ww, wr, rw) has no cycle",
        cycle.is_none(),
        cycle.unwrap_or_else(|| {
            format!(
                "{} committed transactions, {} edges",
                server.log.len(),
                g.values().map(BTreeMap::len).sum::<usize>()
            )
        }),
    ));
    let want = TXNS as usize * (n - 1);
    report.checks.push(Check::new(
        "every transaction commits (after retries)",
        server.log.len() == want,
        format!("{} of {want} committed", server.log.len()),
    ));
    let requests: u64 = clients.iter().map(|c| c.requests).sum();
    let s = sim.stats();
    report.costs.push(Cost::new(
        "messages",
        s.sent as f64,
        "a request and a reply per operation and commit, retries included",
        Some(2.0 * requests as f64),
    ));
    let ops_per_txn = |c: &Committed| 1 + c.reads.len() + c.writes.len();
    let minimal: usize = server.log.iter().map(ops_per_txn).sum();
    report.costs.push(
        Cost::new(
            "requests",
            requests as f64,
            "at least the committed transactions' operations and commits; aborted attempts add theirs",
            None,
        )
        .at_least(minimal as f64),
    );
    report.costs.push(Cost::new(
        "aborted attempts",
        server.aborts as f64,
        "0 without conflicts; each conflict costs one",
        None,
    ));
    if control.locks() {
        report.costs.push(Cost::new(
            "lock waits",
            server.waits as f64,
            "an older transaction waits for a younger holder",
            None,
        ));
    } else {
        let kept: usize = server.versions.values().map(Vec::len).sum();
        let written: usize = server.log.iter().map(|c| c.writes.len()).sum();
        report.costs.push(Cost::new(
            "versions kept",
            kept as f64,
            "one per key plus one per committed write",
            Some((server.versions.len() + written) as f64),
        ));
    }
    LabRun::new(report, trace)
}
