//! Consistency models, side by side: one register replicated on N replicas,
//! three clients, five protocols of decreasing strength; each history is
//! classified by a checker that knows nothing of the protocol.
//!
//! The classifier: linearizable and sequential by a search for a legal total
//! order (respecting real time, or only each client's order), causal by the
//! bad patterns of Bouajjani, Enea, Guerraoui and Hamza (POPL 2017) over the
//! causal order (program order and reads-from, closed transitively), eventual
//! when the replicas agree once writes stop. Read-your-writes and monotonic
//! reads (Terry et al. 1994) are checked over the same causal order.

use std::collections::BTreeMap;
use std::collections::BTreeSet;

use rand::Rng;
use synod_simnet::{ClockConfig, Ctx, Fault, NetConfig, ProcId, Process, Sim, Time, Trace, MILLIS};

use crate::harness::net_for;
use crate::registry::{Algorithm, FaultModel};
use crate::report::{Check, Cost, LabOptions, LabReport, LabRun};

/// The registry entry.
pub const ALGORITHM: Algorithm = Algorithm {
    name: "consistency-models",
    family: "consistency models",
    summary: "one register under five protocols; each history classified linearizable, sequential, causal or eventual",
    description: "Consistency models (Herlihy & Wing 1990; Lamport 1979; Ahamad et al. 1995;\n\
Terry et al. 1994; Vogels 2009). P0..P(N-1) replicate one register; three clients\n\
(the last lanes) each make 8 operations, reads and writes of unique values.\n\
Protocols, strongest first:\n\
- linearizable: every operation at the primary P0, which replicates to backups.\n\
- sequential: writes through P0, which orders them and sends them to every replica\n\
  in that order; a client reads its home replica, which answers a write only once\n\
  it applied it (Attiya & Welch's local reads).\n\
- causal: each client stays on its home replica; a write applies there at once and\n\
  reaches the others by causal broadcast (vector clocks); reads are local.\n\
- eventual: each operation goes to a random replica; writes apply locally with a\n\
  Lamport version and are gossiped every 30 ms; the highest version wins.\n\
- session: eventual, plus session guarantees: a client carries the highest version\n\
  it wrote or read, a replica serves its read only once it holds that version, and\n\
  stamps its writes above it (read-your-writes, monotonic reads).\n\
The classifier sees only the history (who called what, when, what came back) and\n\
the final replica states: linearizable (a legal order respecting real time),\n\
sequential (one respecting each client's order), causal (no cycle in program order\n\
and reads-from, no read of a value overwritten in its causal past, none from thin\n\
air: Bouajjani et al.'s patterns for weak causal consistency), eventual (replicas\n\
agree at the end). Checks: each protocol's history is at least what it promises,\n\
and the session protocol never violates read-your-writes or monotonic reads (the\n\
eventual one may, and its check's detail shows where).\n\
A variant runs and draws one protocol; without one all five run and the eventual\n\
one is drawn. Planted bug: `planted-stale-reads` serves the linearizable\n\
protocol's reads from backups.\n\
Cost, ops operations of which W writes: linearizable 2·ops + (N-1)W; sequential\n\
2·ops + (N-1)W + W_far (writes forwarded to P0); causal 2·ops + (N-1)W; eventual\n\
and session 2·ops plus N-1 per gossip round.",
    variants: &[
        ("linearizable", "run and draw the primary-copy protocol"),
        ("sequential", "run and draw the ordered-writes, local-reads protocol"),
        ("causal", "run and draw causal memory"),
        ("eventual", "run and draw last-writer-wins gossip"),
        ("session", "run and draw gossip with session guarantees"),
        (
            "planted-stale-reads",
            "planted bug: the linearizable protocol reads from backups",
        ),
    ],
    default_nodes: 3,
    nodes: (2, 7),
    faults: FaultModel {
        tolerates: &[Fault::Reorder],
        outside: &[],
        refused: "the replicas neither retransmit nor deduplicate, and the primary is a single point of failure: loss, duplication, partitions and crashes are outside every protocol here",
    },
    run,
};

const CLIENTS: usize = 3;
const OPS: u32 = 8;
const GOSSIP: Time = 30 * MILLIS;

/// The protocols.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Protocol {
    /// Primary copy.
    Linearizable,
    /// Ordered writes, local reads.
    Sequential,
    /// Causal memory.
    Causal,
    /// Last-writer-wins gossip.
    Eventual,
    /// Gossip with session guarantees.
    Session,
}

impl Protocol {
    const ALL: [Protocol; 5] = [
        Protocol::Linearizable,
        Protocol::Sequential,
        Protocol::Causal,
        Protocol::Eventual,
        Protocol::Session,
    ];

    fn name(self) -> &'static str {
        match self {
            Protocol::Linearizable => "linearizable",
            Protocol::Sequential => "sequential",
            Protocol::Causal => "causal",
            Protocol::Eventual => "eventual",
            Protocol::Session => "session",
        }
    }

    /// The model the protocol promises.
    fn promises(self) -> Model {
        match self {
            Protocol::Linearizable => Model::Linearizable,
            Protocol::Sequential => Model::Sequential,
            Protocol::Causal => Model::Causal,
            Protocol::Eventual | Protocol::Session => Model::Eventual,
        }
    }
}

/// The consistency models, weakest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Model {
    /// Not even eventual.
    None,
    /// Replicas agree once writes stop.
    Eventual,
    /// Weak causal consistency.
    Causal,
    /// Sequential consistency.
    Sequential,
    /// Linearizability.
    Linearizable,
}

impl Model {
    fn name(self) -> &'static str {
        match self {
            Model::None => "none",
            Model::Eventual => "eventual",
            Model::Causal => "causal",
            Model::Sequential => "sequential",
            Model::Linearizable => "linearizable",
        }
    }
}

/// Messages.
#[derive(Clone, Debug)]
pub enum CmMsg {
    /// Client read: operation number, session version.
    Read(u32, u64),
    /// Client write: operation number, value, session version.
    Write(u32, u32, u64),
    /// Read answer: operation, value (0 = initial), version.
    ReadOk(u32, u32, u64),
    /// Write answer: operation, version.
    WriteOk(u32, u64),
    /// Sequential: a write forwarded to P0 (client, operation, value).
    Forward(ProcId, u32, u32),
    /// Sequential: P0's ordered write (sequence, value, home replica, client, operation).
    Apply(u64, u32, ProcId, ProcId, u32),
    /// A versioned value (backups, gossip).
    Replicate(u64, u32),
    /// Causal broadcast of a write with its vector clock.
    CWrite(Vec<u64>, u32),
}

/// A replica.
#[derive(Clone, Debug)]
pub struct Replica {
    proto: Protocol,
    /// The register's value (0 = initial) and its version.
    pub value: (u32, u64),
    lamport: u64,
    next_seq: u64,
    applied_seq: u64,
    pending: BTreeMap<u64, (u32, ProcId, ProcId, u32)>,
    vc: Vec<u64>,
    held: Vec<(ProcId, Vec<u64>, u32)>,
    gossip_due: bool,
    waiting: Vec<(ProcId, u32, u64)>,
}

/// One operation of the history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Op {
    /// The client (0-based).
    pub client: usize,
    /// A write, or a read.
    pub write: bool,
    /// Written or read value (0 = initial).
    pub value: u32,
    /// Invocation time.
    pub call: Time,
    /// Response time.
    pub ret: Time,
}

/// A client.
#[derive(Clone, Debug)]
pub struct Client {
    proto: Protocol,
    replicas: usize,
    index: usize,
    stale_reads: bool,
    k: u32,
    pending: Option<(bool, u32, Time)>,
    session: u64,
    /// Completed operations.
    pub history: Vec<Op>,
}

/// A replica or a client.
#[derive(Clone, Debug)]
pub enum Node {
    /// A replica.
    Replica(Replica),
    /// A client.
    Client(Client),
}

const T_OP: u64 = 0;
const T_GOSSIP: u64 = 1;

impl Client {
    fn home(&self) -> ProcId {
        self.index % self.replicas
    }

    fn issue(&mut self, ctx: &mut Ctx<'_, CmMsg>) {
        if self.k >= OPS {
            return;
        }
        self.k += 1;
        let write = ctx.rng().random_bool(0.5);
        let value = (self.index as u32 + 1) * 100 + self.k;
        let to = match self.proto {
            Protocol::Linearizable if self.stale_reads && !write && self.replicas > 1 => {
                1 + self.index % (self.replicas - 1)
            }
            Protocol::Linearizable => 0,
            Protocol::Sequential | Protocol::Causal => self.home(),
            Protocol::Eventual | Protocol::Session => ctx.rng().random_range(0..self.replicas),
        };
        self.pending = Some((write, value, ctx.now()));
        if write {
            ctx.send(to, CmMsg::Write(self.k, value, self.session));
        } else {
            ctx.send(to, CmMsg::Read(self.k, self.session));
        }
    }

    fn done(&mut self, ctx: &mut Ctx<'_, CmMsg>, k: u32, read: Option<u32>, version: u64) {
        let Some((write, value, call)) = self.pending else {
            return;
        };
        if k != self.k {
            return;
        }
        self.pending = None;
        self.session = self.session.max(version);
        self.history.push(Op {
            client: self.index,
            write,
            value: read.unwrap_or(value),
            call,
            ret: ctx.now(),
        });
        let think = ctx.rng().random_range(2 * MILLIS..8 * MILLIS);
        ctx.set_timer(think, T_OP);
    }
}

impl Replica {
    fn lww(&self, id: ProcId) -> u64 {
        self.lamport * 64 + id as u64
    }

    fn install(&mut self, ctx: &mut Ctx<'_, CmMsg>, version: u64, value: u32) {
        if version > self.value.1 {
            self.value = (value, version);
        }
        self.lamport = self.lamport.max(version / 64);
        let ready: Vec<_> = self
            .waiting
            .iter()
            .copied()
            .filter(|&(_, _, sv)| sv <= self.value.1)
            .collect();
        self.waiting.retain(|&(_, _, sv)| sv > self.value.1);
        for (c, k, _) in ready {
            ctx.send(c, CmMsg::ReadOk(k, self.value.0, self.value.1));
        }
    }

    fn order(&mut self, ctx: &mut Ctx<'_, CmMsg>, home: ProcId, client: ProcId, k: u32, value: u32) {
        self.next_seq += 1;
        let seq = self.next_seq;
        for r in 1..self.vc.len() {
            ctx.send(r, CmMsg::Apply(seq, value, home, client, k));
        }
        self.apply_seq(ctx, seq, value, home, client, k);
    }

    fn apply_seq(
        &mut self,
        ctx: &mut Ctx<'_, CmMsg>,
        seq: u64,
        value: u32,
        home: ProcId,
        client: ProcId,
        k: u32,
    ) {
        self.pending.insert(seq, (value, home, client, k));
        while let Some((v, home, client, k)) = self.pending.remove(&(self.applied_seq + 1)) {
            self.applied_seq += 1;
            self.value = (v, self.applied_seq);
            if home == ctx.id() {
                ctx.send(client, CmMsg::WriteOk(k, self.applied_seq));
            }
        }
    }

    fn deliver_causal(&mut self) {
        loop {
            let vc = &self.vc;
            let Some(i) = self.held.iter().position(|(j, w, _)| {
                w[*j] == vc[*j] + 1 && w.iter().enumerate().all(|(k, &x)| k == *j || x <= vc[k])
            }) else {
                return;
            };
            let (j, w, v) = self.held.remove(i);
            self.vc[j] = w[j];
            self.value = (v, w.iter().sum());
        }
    }

    fn on_client(&mut self, ctx: &mut Ctx<'_, CmMsg>, from: ProcId, msg: CmMsg) {
        let me = ctx.id();
        let n = self.vc.len();
        match (self.proto, msg) {
            (Protocol::Linearizable, CmMsg::Write(k, v, _)) => {
                self.next_seq += 1;
                self.value = (v, self.next_seq);
                ctx.send(from, CmMsg::WriteOk(k, self.next_seq));
                for r in (0..n).filter(|&r| r != me) {
                    ctx.send(r, CmMsg::Replicate(self.next_seq * 64, v));
                }
            }
            (Protocol::Sequential, CmMsg::Write(k, v, _)) => {
                if me == 0 {
                    self.order(ctx, 0, from, k, v);
                } else {
                    ctx.send(0, CmMsg::Forward(from, k, v));
                }
            }
            (Protocol::Causal, CmMsg::Write(k, v, _)) => {
                self.vc[me] += 1;
                self.value = (v, self.vc.iter().sum());
                ctx.send(from, CmMsg::WriteOk(k, self.value.1));
                for r in (0..n).filter(|&r| r != me) {
                    ctx.send(r, CmMsg::CWrite(self.vc.clone(), v));
                }
            }
            (Protocol::Eventual | Protocol::Session, CmMsg::Write(k, v, sv)) => {
                let sv = if self.proto == Protocol::Session { sv } else { 0 };
                self.lamport = self.lamport.max(sv / 64) + 1;
                let version = self.lww(me);
                self.install(ctx, version, v);
                ctx.send(from, CmMsg::WriteOk(k, version));
                if !self.gossip_due {
                    self.gossip_due = true;
                    ctx.set_timer(GOSSIP, T_GOSSIP);
                }
            }
            (Protocol::Session, CmMsg::Read(k, sv)) if sv > self.value.1 => {
                ctx.mark("read waits for session");
                self.waiting.push((from, k, sv));
            }
            (_, CmMsg::Read(k, _)) => {
                ctx.send(from, CmMsg::ReadOk(k, self.value.0, self.value.1));
            }
            _ => {}
        }
    }
}

impl Process for Node {
    type Msg = CmMsg;

    fn on_start(&mut self, ctx: &mut Ctx<'_, CmMsg>) {
        if let Node::Client(c) = self {
            ctx.set_timer(MILLIS * (1 + c.index as Time), T_OP);
        }
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_, CmMsg>, tag: u64) {
        match (self, tag) {
            (Node::Client(c), T_OP) => c.issue(ctx),
            (Node::Replica(r), T_GOSSIP) => {
                r.gossip_due = false;
                let me = ctx.id();
                for p in (0..r.vc.len()).filter(|&p| p != me) {
                    ctx.send(p, CmMsg::Replicate(r.value.1, r.value.0));
                }
            }
            _ => {}
        }
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, CmMsg>, from: ProcId, msg: CmMsg) {
        match self {
            Node::Client(c) => match msg {
                CmMsg::ReadOk(k, v, ver) => c.done(ctx, k, Some(v), ver),
                CmMsg::WriteOk(k, ver) => c.done(ctx, k, None, ver),
                _ => {}
            },
            Node::Replica(r) => match msg {
                CmMsg::Forward(client, k, v) => r.order(ctx, from, client, k, v),
                CmMsg::Apply(seq, v, home, client, k) => r.apply_seq(ctx, seq, v, home, client, k),
                CmMsg::Replicate(ver, v) => r.install(ctx, ver, v),
                CmMsg::CWrite(w, v) => {
                    r.held.push((from, w, v));
                    r.deliver_causal();
                }
                m => r.on_client(ctx, from, m),
            },
        }
    }

    fn msg_bytes(msg: &CmMsg) -> usize {
        match msg {
            CmMsg::CWrite(w, _) => 8 + 8 * w.len(),
            _ => 24,
        }
    }

    fn msg_label(msg: &CmMsg) -> String {
        match msg {
            CmMsg::Read(..) => "Read".into(),
            CmMsg::Write(_, v, _) => format!("Write({v})"),
            CmMsg::ReadOk(_, v, _) => format!("ReadOk({v})"),
            CmMsg::WriteOk(..) => "WriteOk".into(),
            CmMsg::Forward(_, _, v) => format!("Forward({v})"),
            CmMsg::Apply(s, v, ..) => format!("Apply#{s}({v})"),
            CmMsg::Replicate(_, v) => format!("Replicate({v})"),
            CmMsg::CWrite(_, v) => format!("CWrite({v})"),
        }
    }
}

/// What the classifier found in one history.
#[derive(Clone, Debug)]
pub struct Verdict {
    /// The strongest model the history satisfies.
    pub model: Model,
    /// Why it is not stronger (the first failure), if it is not linearizable.
    pub why: String,
    /// Read-your-writes violations (client, value read).
    pub ryw: Vec<(usize, u32)>,
    /// Monotonic-read violations (client, value read).
    pub mr: Vec<(usize, u32)>,
}

/// Whether some legal total order of `by_client`'s operations exists that
/// respects each client's order, and real time when `real_time`.
fn legal_order(by_client: &[Vec<Op>], real_time: bool) -> bool {
    fn dfs(
        ops: &[Vec<Op>],
        pos: &mut Vec<usize>,
        cur: u32,
        rt: bool,
        dead: &mut BTreeSet<(Vec<usize>, u32)>,
    ) -> bool {
        if pos.iter().zip(ops).all(|(&p, o)| p == o.len()) {
            return true;
        }
        if dead.contains(&(pos.clone(), cur)) {
            return false;
        }
        for c in 0..ops.len() {
            let Some(&o) = ops[c].get(pos[c]) else {
                continue;
            };
            let blocked = rt
                && (0..ops.len())
                    .any(|d| d != c && ops[d].get(pos[d]).is_some_and(|p| p.ret < o.call));
            if blocked || (!o.write && o.value != cur) {
                continue;
            }
            pos[c] += 1;
            let ok = dfs(ops, pos, if o.write { o.value } else { cur }, rt, dead);
            pos[c] -= 1;
            if ok {
                return true;
            }
        }
        dead.insert((pos.clone(), cur));
        false
    }
    let mut pos = vec![0; by_client.len()];
    dfs(by_client, &mut pos, 0, real_time, &mut BTreeSet::new())
}

/// Classifies a history (operations per client, in each client's order)
/// given whether the replicas agreed at the end.
pub fn classify(by_client: &[Vec<Op>], converged: bool) -> Verdict {
    let ops: Vec<Op> = by_client.iter().flatten().copied().collect();
    let n = ops.len();
    let writer: BTreeMap<u32, usize> = ops
        .iter()
        .enumerate()
        .filter(|(_, o)| o.write)
        .map(|(i, o)| (o.value, i))
        .collect();
    // The causal order: program order and reads-from, closed transitively.
    let mut co = vec![vec![false; n]; n];
    let mut i = 0;
    for c in by_client {
        for k in 1..c.len() {
            co[i + k - 1][i + k] = true;
        }
        i += c.len();
    }
    let mut thin_air = None;
    for (r, o) in ops.iter().enumerate() {
        if !o.write && o.value != 0 {
            match writer.get(&o.value) {
                Some(&w) => co[w][r] = true,
                None => thin_air = Some(o.value),
            }
        }
    }
    for k in 0..n {
        let via = co[k].clone();
        for row in co.iter_mut() {
            if row[k] {
                for (cell, &reach) in row.iter_mut().zip(&via) {
                    *cell |= reach;
                }
            }
        }
    }
    let source = |r: usize| writer.get(&ops[r].value).copied();
    // A read returns a value overwritten in its causal past.
    let overwritten = |r: usize, before: &dyn Fn(usize) -> bool| match source(r) {
        None => (0..n).any(|w| ops[w].write && before(w)),
        Some(w1) => (0..n).any(|w2| w2 != w1 && ops[w2].write && co[w1][w2] && before(w2)),
    };
    let mut causal_why = None;
    if (0..n).any(|a| co[a][a]) {
        causal_why = Some("a cycle in the causal order".to_string());
    } else if let Some(v) = thin_air {
        causal_why = Some(format!("read {v} from thin air"));
    }
    for r in (0..n).filter(|&r| !ops[r].write) {
        if causal_why.is_none() && overwritten(r, &|w| co[w][r]) {
            causal_why = Some(format!(
                "client {} read {} after it was overwritten in its causal past",
                ops[r].client, ops[r].value
            ));
        }
    }
    let (mut ryw, mut mr) = (vec![], vec![]);
    let mut start = 0;
    for c in by_client {
        for k in 0..c.len() {
            let r = start + k;
            if ops[r].write {
                continue;
            }
            let own = |w: usize| w >= start && w < r && ops[w].write;
            if overwritten(r, &|w| own(w) || (0..n).any(|x| own(x) && co[w][x])) {
                ryw.push((ops[r].client, ops[r].value));
            }
            let seen: Vec<usize> = (start..r)
                .filter(|&x| !ops[x].write)
                .filter_map(source)
                .collect();
            let stale = match source(r) {
                None => !seen.is_empty(),
                Some(w1) => seen.iter().any(|&w0| w0 != w1 && co[w1][w0]),
            };
            if stale {
                mr.push((ops[r].client, ops[r].value));
            }
        }
        start += c.len();
    }
    let (model, why) = if legal_order(by_client, true) {
        (Model::Linearizable, String::new())
    } else if legal_order(by_client, false) {
        (Model::Sequential, "no legal order respects real time".into())
    } else if causal_why.is_none() {
        (
            Model::Causal,
            "no legal order respects each client's order".into(),
        )
    } else if converged {
        (Model::Eventual, causal_why.unwrap_or_default())
    } else {
        (
            Model::None,
            format!(
                "{}; the replicas disagree at the end",
                causal_why.unwrap_or_default()
            ),
        )
    };
    Verdict {
        model,
        why,
        ryw,
        mr,
    }
}

/// One protocol's run.
struct Outcome {
    trace: Trace,
    verdict: Verdict,
    messages: u64,
    ops: u64,
    writes: u64,
    far_writes: u64,
}

fn run_protocol(opts: &LabOptions, proto: Protocol) -> Outcome {
    let n = opts.nodes;
    let mut procs: Vec<Node> = (0..n)
        .map(|_| {
            Node::Replica(Replica {
                proto,
                value: (0, 0),
                lamport: 0,
                next_seq: 0,
                applied_seq: 0,
                pending: BTreeMap::new(),
                vc: vec![0; n],
                held: vec![],
                gossip_due: false,
                waiting: vec![],
            })
        })
        .collect();
    procs.extend((0..CLIENTS).map(|index| {
        Node::Client(Client {
            proto,
            replicas: n,
            index,
            stale_reads: opts.is_variant("planted-stale-reads"),
            k: 0,
            pending: None,
            session: 0,
            history: vec![],
        })
    }));
    let mut sim = Sim::new(
        opts.seed,
        procs,
        net_for(&opts.faults, NetConfig::reliable()),
        ClockConfig::perfect(),
    );
    sim.run_until(2_000 * MILLIS);
    let by_client: Vec<Vec<Op>> = (n..n + CLIENTS)
        .map(|p| match sim.proc(p) {
            Node::Client(c) => c.history.clone(),
            Node::Replica(_) => vec![],
        })
        .collect();
    let finals: BTreeSet<u32> = (0..n)
        .filter_map(|p| match sim.proc(p) {
            Node::Replica(r) => Some(r.value.0),
            Node::Client(_) => None,
        })
        .collect();
    let ops = by_client.iter().map(|c| c.len() as u64).sum();
    let writes = by_client.iter().flatten().filter(|o| o.write).count() as u64;
    let far_writes = by_client
        .iter()
        .flatten()
        .filter(|o| o.write && o.client % n != 0)
        .count() as u64;
    Outcome {
        verdict: classify(&by_client, finals.len() == 1),
        messages: sim.stats().sent,
        trace: sim.take_trace(),
        ops,
        writes,
        far_writes,
    }
}

fn run(opts: &LabOptions) -> LabRun {
    let n = opts.nodes as f64;
    let chosen: Vec<Protocol> = match Protocol::ALL.iter().find(|p| opts.is_variant(p.name())) {
        Some(&p) => vec![p],
        None if opts.is_variant("planted-stale-reads") => vec![Protocol::Linearizable],
        None => Protocol::ALL.to_vec(),
    };
    let mut report = LabReport::new(ALGORITHM.name, opts);
    let mut drawn = None;
    for &p in &chosen {
        let o = run_protocol(opts, p);
        let v = &o.verdict;
        let sessions = p == Protocol::Session;
        let shown = |xs: &[(usize, u32)]| {
            xs.iter()
                .take(3)
                .map(|(c, v)| format!("client {c} read {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut detail = format!(
            "{} operations: {}{}",
            o.ops,
            v.model.name(),
            if v.why.is_empty() {
                String::new()
            } else {
                format!(" ({})", v.why)
            }
        );
        detail.push_str(&format!(
            "; read-your-writes violations {}{}, monotonic-read violations {}{}",
            v.ryw.len(),
            if v.ryw.is_empty() {
                String::new()
            } else {
                format!(" [{}]", shown(&v.ryw))
            },
            v.mr.len(),
            if v.mr.is_empty() {
                String::new()
            } else {
                format!(" [{}]", shown(&v.mr))
            },
        ));
        let promised = p.promises();
        let held = v.model >= promised && (!sessions || (v.ryw.is_empty() && v.mr.is_empty()));
        report.checks.push(Check::new(
            &format!(
                "{}: at least {}{}",
                p.name(),
                promised.name(),
                if sessions {
                    ", read-your-writes, monotonic reads"
                } else {
                    ""
                }
            ),
            held,
            detail,
        ));
        let (ops, w, far) = (o.ops as f64, o.writes as f64, o.far_writes as f64);
        let exact = opts.faults.is_empty();
        let cost = match p {
            Protocol::Linearizable => Cost::new(
                "messages (linearizable)",
                o.messages as f64,
                "2·ops + (N-1)W",
                exact.then_some(2.0 * ops + (n - 1.0) * w),
            ),
            Protocol::Sequential => Cost::new(
                "messages (sequential)",
                o.messages as f64,
                "2·ops + (N-1)W + W_far",
                exact.then_some(2.0 * ops + (n - 1.0) * w + far),
            ),
            Protocol::Causal => Cost::new(
                "messages (causal)",
                o.messages as f64,
                "2·ops + (N-1)W",
                exact.then_some(2.0 * ops + (n - 1.0) * w),
            ),
            Protocol::Eventual | Protocol::Session => Cost::new(
                &format!("messages ({})", p.name()),
                o.messages as f64,
                "2·ops + (N-1) per gossip round, at most one round per write",
                None,
            )
            .at_least(2.0 * ops)
            .at_most(2.0 * ops + (n - 1.0) * w),
        };
        report.costs.push(cost);
        if p == Protocol::Eventual || chosen.len() == 1 {
            drawn = Some(o.trace);
        }
    }
    let mut run = LabRun::new(report, drawn.unwrap_or_default());
    run.clients = CLIENTS;
    run
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(client: usize, write: bool, value: u32, call: Time, ret: Time) -> Op {
        Op {
            client,
            write,
            value,
            call,
            ret,
        }
    }

    #[test]
    fn the_classifier_knows_the_textbook_histories() {
        // w(1) then, after it returned, another client reads the initial value:
        // sequential (the read goes first) but not linearizable.
        let h = vec![vec![op(0, true, 1, 0, 10)], vec![op(1, false, 0, 20, 30)]];
        assert_eq!(classify(&h, true).model, Model::Sequential);
        // Two clients see two independent writes in opposite orders: causal only.
        let h = vec![
            vec![op(0, true, 1, 0, 1)],
            vec![op(1, true, 2, 0, 1)],
            vec![op(2, false, 1, 5, 6), op(2, false, 2, 7, 8)],
            vec![op(3, false, 2, 5, 6), op(3, false, 1, 7, 8)],
        ];
        assert_eq!(classify(&h, true).model, Model::Causal);
        // A client reads its own write, then the initial value: not causal,
        // and it breaks monotonic reads.
        let h = vec![vec![
            op(0, true, 1, 0, 1),
            op(0, false, 1, 2, 3),
            op(0, false, 0, 4, 5),
        ]];
        let v = classify(&h, true);
        assert_eq!(v.model, Model::Eventual);
        assert_eq!((v.ryw.len(), v.mr.len()), (1, 1));
        assert_eq!(classify(&h, false).model, Model::None);
    }

    #[test]
    fn every_protocol_keeps_its_promise() {
        for seed in 1..=4 {
            let r = run(&LabOptions::new(3, seed)).report;
            assert!(r.passed(), "seed {seed}: {r:#?}");
        }
    }

    #[test]
    fn eventual_shows_session_violations_that_sessions_prevent() {
        let violated = (1..=6).any(|seed| {
            let r = run(&LabOptions::new(3, seed)).report;
            let ev = &r.checks[3].detail;
            !ev.contains("read-your-writes violations 0,")
                || !ev.contains("monotonic-read violations 0")
        });
        assert!(violated);
        let weaker = (1..=6).any(|seed| {
            let r = run(&LabOptions::new(3, seed)).report;
            r.checks[3].detail.contains(": eventual")
        });
        assert!(weaker, "some eventual history is weaker than causal");
    }

    #[test]
    fn the_checker_catches_stale_reads_under_a_linearizable_claim() {
        let caught = (1..=4).any(|seed| {
            let mut o = LabOptions::new(3, seed);
            o.variant = Some("planted-stale-reads".into());
            !run(&o).report.passed()
        });
        assert!(caught);
    }
}
