//! Practical Byzantine fault tolerance: pre-prepare, prepare, commit and
//! reply among n = 3f+1 replicas, and a view change that replaces a primary
//! that equivocates.

use std::collections::{BTreeMap, BTreeSet};

use synod_simnet::{ClockConfig, Ctx, Fault, NetConfig, ProcId, Process, Sim, Time, TimerId};

use crate::harness::{net_for, run_faulted};
use crate::registry::{Algorithm, FaultModel};
use crate::report::{Check, Cost, LabOptions, LabReport, LabRun};

/// The registry entry.
pub const ALGORITHM: Algorithm = Algorithm {
    name: "pbft",
    family: "byzantine agreement",
    summary: "PBFT: pre-prepare, prepare, commit, reply; view change on a faulty primary",
    description: "PBFT (Castro & Liskov 1999), f = 1 Byzantine replica. Replicas P0..P(N-1); the\n\
last lane is a client that broadcasts two requests. Quorum Q = N - f (2f+1 when\n\
N = 3f+1). The primary of view v is P(v mod N).\n\
Normal case: the primary assigns a sequence number, PRE-PREPARE(v, n, r) to the\n\
backups; a backup that accepts it sends PREPARE to all; with the pre-prepare and\n\
Q-1 matching PREPAREs a replica is prepared and sends COMMIT to all; with Q\n\
matching COMMITs it commits, executes in sequence order and sends REPLY; the\n\
client takes a result on f+1 matching replies.\n\
View change: a replica whose known request stays unexecuted for 150 ms (doubled\n\
after each view change it starts) sends\n\
VIEW-CHANGE(v+1, its prepared certificates); the new primary, with Q of them,\n\
sends NEW-VIEW re-issuing every certified request at its sequence number (a null\n\
request in a gap) and the pending ones after them.\n\
By default the traitor is the primary P0: it sends request 1 to half the backups\n\
and request 2 to the other half under the same sequence number, votes COMMIT for\n\
each half's version, then falls silent.\n\
Guarantee when N ≥ 3f+1: honest replicas never execute different requests at one\n\
sequence number, and every request completes after the view change. With N = 3f\n\
two quorums meet only in the traitor, and the two halves commit different requests.\n\
Outside the model here: this PBFT retransmits nothing but view changes, so\n\
lost messages can stall it (safety still holds; liveness fails).\n\
Cost per request, no traitor: 2N² messages (N requests, N-1 pre-prepares,\n\
(N-1)² prepares, N(N-1) commits, N replies).",
    variants: &[
        ("no-traitor", "every replica is honest: 2N² messages per request"),
        (
            "silent-backup",
            "the traitor is the last backup and sends nothing",
        ),
    ],
    default_nodes: 4,
    nodes: (3, 13),
    faults: FaultModel {
        tolerates: &[
            Fault::Duplicate,
            Fault::Reorder,
            Fault::OneWay,
            Fault::Clog,
            Fault::Skew,
        ],
        outside: &[Fault::Loss, Fault::Partition],
        refused: "a crash is a second fault beside the traitor, and f = 1",
    },
    run,
};

/// A request id (1 and 2 come from the client; 0 is the null request).
pub type Rid = u64;

/// A prepared certificate: (sequence number, view, request).
pub type Cert = (u64, u64, Rid);

/// PBFT messages.
#[derive(Clone, Debug)]
pub enum PbftMsg {
    /// Client to replicas.
    Request(Rid),
    /// Primary to backups: (view, seq, request).
    PrePrepare(u64, u64, Rid),
    /// Backup to all.
    Prepare(u64, u64, Rid),
    /// Replica to all.
    Commit(u64, u64, Rid),
    /// Replica to client.
    Reply(Rid),
    /// Move to this view; my prepared certificates (seq, view, request).
    ViewChange(u64, Vec<Cert>),
    /// The new primary's re-issued pre-prepares (seq, request).
    NewView(u64, Vec<(u64, Rid)>),
}

/// How the traitor behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Traitor {
    None,
    EquivocatingPrimary,
    Silent,
}

/// A replica.
#[derive(Clone, Debug)]
pub struct Replica {
    traitor: Traitor,
    f: usize,
    view: u64,
    changing: bool,
    next_seq: u64,
    pre: BTreeMap<(u64, u64), Rid>,
    prepares: BTreeMap<(u64, u64, Rid), BTreeSet<ProcId>>,
    commits: BTreeMap<(u64, u64, Rid), BTreeSet<ProcId>>,
    prepared: BTreeSet<(u64, u64, Rid)>,
    committed: BTreeMap<u64, Rid>,
    exec_next: u64,
    /// Executed (seq, request), in order.
    pub executed: Vec<(u64, Rid)>,
    pending: BTreeSet<Rid>,
    timer: Option<TimerId>,
    vcs: BTreeMap<u64, BTreeMap<ProcId, Vec<Cert>>>,
    new_view_sent: BTreeSet<u64>,
    /// View changes this replica started.
    pub view_changes: u32,
}

/// The client.
#[derive(Clone, Debug)]
pub struct Client {
    f: usize,
    begin: Time,
    /// Replicas that replied, per request.
    pub replies: BTreeMap<Rid, BTreeSet<ProcId>>,
}

/// A process: replica or client.
#[derive(Clone, Debug)]
pub enum Node {
    /// A replica.
    Replica(Box<Replica>),
    /// The client (the last process).
    Client(Client),
}

const REQUEST_WAIT: Time = 150_000;
const REQUESTS: [Rid; 2] = [1, 2];

impl Replica {
    fn new(traitor: Traitor, f: usize) -> Self {
        Replica {
            traitor,
            f,
            view: 0,
            changing: false,
            next_seq: 1,
            pre: BTreeMap::new(),
            prepares: BTreeMap::new(),
            commits: BTreeMap::new(),
            prepared: BTreeSet::new(),
            committed: BTreeMap::new(),
            exec_next: 1,
            executed: vec![],
            pending: BTreeSet::new(),
            timer: None,
            vcs: BTreeMap::new(),
            new_view_sent: BTreeSet::new(),
            view_changes: 0,
        }
    }

    fn replicas(ctx: &Ctx<'_, PbftMsg>) -> usize {
        ctx.n() - 1
    }

    fn quorum(&self, ctx: &Ctx<'_, PbftMsg>) -> usize {
        Self::replicas(ctx) - self.f
    }

    fn primary(&self, view: u64, ctx: &Ctx<'_, PbftMsg>) -> ProcId {
        (view % Self::replicas(ctx) as u64) as ProcId
    }

    fn to_replicas(ctx: &mut Ctx<'_, PbftMsg>, msg: PbftMsg) {
        let me = ctx.id();
        for q in (0..Self::replicas(ctx)).filter(|&q| q != me) {
            ctx.send(q, msg.clone());
        }
    }

    fn arm(&mut self, ctx: &mut Ctx<'_, PbftMsg>) {
        if self.timer.is_none() && (!self.pending.is_empty() || self.changing) {
            // Doubled after each view change, so that replicas that moved
            // at different times end up in one view long enough.
            let wait = REQUEST_WAIT << self.view_changes.min(5);
            self.timer = Some(ctx.set_timer(wait, 0));
        }
    }

    fn assign(&mut self, ctx: &mut Ctx<'_, PbftMsg>, rid: Rid) {
        let v = self.view;
        if self.pre.iter().any(|(&(pv, _), &r)| pv == v && r == rid) {
            return;
        }
        if self.executed.iter().any(|&(_, r)| r == rid) {
            return;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.pre.insert((v, seq), rid);
        Self::to_replicas(ctx, PbftMsg::PrePrepare(v, seq, rid));
    }

    fn equivocate(&mut self, ctx: &mut Ctx<'_, PbftMsg>) {
        let n = Self::replicas(ctx);
        let half = n / 2;
        ctx.mark("equivocate");
        for q in 1..n {
            let rid = if q <= half { 1 } else { 2 };
            ctx.send(q, PbftMsg::PrePrepare(0, 1, rid));
            ctx.send(q, PbftMsg::Commit(0, 1, rid));
        }
    }

    fn on_pre_prepare(&mut self, ctx: &mut Ctx<'_, PbftMsg>, v: u64, seq: u64, rid: Rid) {
        if v != self.view || self.changing || self.pre.contains_key(&(v, seq)) {
            return;
        }
        self.pre.insert((v, seq), rid);
        self.prepares
            .entry((v, seq, rid))
            .or_default()
            .insert(ctx.id());
        Self::to_replicas(ctx, PbftMsg::Prepare(v, seq, rid));
        self.check(ctx, v, seq, rid);
    }

    fn check(&mut self, ctx: &mut Ctx<'_, PbftMsg>, v: u64, seq: u64, rid: Rid) {
        let q = self.quorum(ctx);
        let key = (v, seq, rid);
        let backups = self.prepares.get(&key).map_or(0, |s| {
            s.iter().filter(|&&p| p != self.primary(v, ctx)).count()
        });
        if self.pre.get(&(v, seq)) == Some(&rid)
            && backups + 1 >= q
            && self.prepared.insert(key)
        {
            self.commits.entry(key).or_default().insert(ctx.id());
            Self::to_replicas(ctx, PbftMsg::Commit(v, seq, rid));
        }
        let votes = self.commits.get(&key).map_or(0, BTreeSet::len);
        if self.prepared.contains(&key) && votes >= q && !self.committed.contains_key(&seq) {
            self.committed.insert(seq, rid);
            self.execute(ctx);
        }
    }

    fn execute(&mut self, ctx: &mut Ctx<'_, PbftMsg>) {
        while let Some(&rid) = self.committed.get(&self.exec_next) {
            let seq = self.exec_next;
            self.exec_next += 1;
            self.executed.push((seq, rid));
            self.pending.remove(&rid);
            ctx.mark(&format!("execute {seq}:r{rid}"));
            if rid != 0 {
                ctx.send(ctx.n() - 1, PbftMsg::Reply(rid));
            }
        }
        if self.pending.is_empty() && !self.changing {
            if let Some(t) = self.timer.take() {
                ctx.cancel_timer(t);
            }
        }
    }

    fn start_view_change(&mut self, ctx: &mut Ctx<'_, PbftMsg>, to: u64) {
        self.view = to;
        self.changing = true;
        self.view_changes += 1;
        ctx.mark(&format!("view change → {to}"));
        let certs: Vec<Cert> = self
            .prepared
            .iter()
            .map(|&(v, seq, rid)| (seq, v, rid))
            .collect();
        self.vcs
            .entry(to)
            .or_default()
            .insert(ctx.id(), certs.clone());
        Self::to_replicas(ctx, PbftMsg::ViewChange(to, certs));
        self.arm(ctx);
        self.maybe_new_view(ctx, to);
    }

    fn maybe_new_view(&mut self, ctx: &mut Ctx<'_, PbftMsg>, v: u64) {
        let have = self.vcs.get(&v).map_or(0, BTreeMap::len);
        if self.primary(v, ctx) != ctx.id()
            || have < self.quorum(ctx)
            || self.view != v
            || !self.new_view_sent.insert(v)
        {
            return;
        }
        // For each sequence number the certificate of the highest view.
        let mut best: BTreeMap<u64, (u64, Rid)> = BTreeMap::new();
        for certs in self.vcs[&v].values() {
            for &(seq, cv, rid) in certs {
                if best.get(&seq).is_none_or(|&(bv, _)| cv > bv) {
                    best.insert(seq, (cv, rid));
                }
            }
        }
        let top = best.keys().next_back().copied().unwrap_or(0);
        let mut o: Vec<(u64, Rid)> = (1..=top)
            .map(|seq| (seq, best.get(&seq).map_or(0, |&(_, r)| r)))
            .collect();
        // The pending requests ride in NEW-VIEW too, so that no backup
        // meets their pre-prepares before it has entered the view.
        let executed: BTreeSet<Rid> = self.executed.iter().map(|&(_, r)| r).collect();
        for &rid in &self.pending {
            if !executed.contains(&rid) && !o.iter().any(|&(_, r)| r == rid) {
                o.push((o.len() as u64 + 1, rid));
            }
        }
        self.changing = false;
        self.next_seq = o.len() as u64 + 1;
        ctx.mark(&format!("new view {v}"));
        Self::to_replicas(ctx, PbftMsg::NewView(v, o.clone()));
        for &(seq, rid) in &o {
            self.pre.insert((v, seq), rid);
        }
        if let Some(t) = self.timer.take() {
            ctx.cancel_timer(t);
        }
        self.arm(ctx);
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, PbftMsg>, from: ProcId, msg: PbftMsg) {
        if self.traitor == Traitor::Silent
            || (self.traitor == Traitor::EquivocatingPrimary
                && !matches!(msg, PbftMsg::Request(1)))
        {
            return;
        }
        match msg {
            PbftMsg::Request(rid) => {
                if self.traitor == Traitor::EquivocatingPrimary {
                    self.equivocate(ctx);
                    return;
                }
                if self.executed.iter().any(|&(_, r)| r == rid) {
                    return;
                }
                self.pending.insert(rid);
                if !self.changing && self.primary(self.view, ctx) == ctx.id() {
                    self.assign(ctx, rid);
                }
                self.arm(ctx);
            }
            PbftMsg::PrePrepare(v, seq, rid) if from == self.primary(v, ctx) => {
                self.on_pre_prepare(ctx, v, seq, rid)
            }
            PbftMsg::PrePrepare(..) => {}
            PbftMsg::Prepare(v, seq, rid) => {
                self.prepares.entry((v, seq, rid)).or_default().insert(from);
                self.check(ctx, v, seq, rid);
            }
            PbftMsg::Commit(v, seq, rid) => {
                self.commits.entry((v, seq, rid)).or_default().insert(from);
                self.check(ctx, v, seq, rid);
            }
            PbftMsg::Reply(_) => {}
            PbftMsg::ViewChange(v, certs) => {
                self.vcs.entry(v).or_default().insert(from, certs);
                self.maybe_new_view(ctx, v);
            }
            PbftMsg::NewView(v, o) if from == self.primary(v, ctx) && v >= self.view => {
                self.view = v;
                self.changing = false;
                if let Some(t) = self.timer.take() {
                    ctx.cancel_timer(t);
                }
                for (seq, rid) in o {
                    self.on_pre_prepare(ctx, v, seq, rid);
                }
                self.arm(ctx);
            }
            PbftMsg::NewView(..) => {}
        }
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_, PbftMsg>) {
        self.timer = None;
        if self.traitor == Traitor::None && (!self.pending.is_empty() || self.changing) {
            let to = self.view + 1;
            self.start_view_change(ctx, to);
        }
    }
}

impl Process for Node {
    type Msg = PbftMsg;

    fn on_start(&mut self, ctx: &mut Ctx<'_, PbftMsg>) {
        if let Node::Client(c) = self {
            ctx.set_timer(c.begin, 1);
            ctx.set_timer(c.begin + 20_000, 2);
        }
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, PbftMsg>, from: ProcId, msg: PbftMsg) {
        match self {
            Node::Replica(r) => r.on_message(ctx, from, msg),
            Node::Client(c) => {
                if let PbftMsg::Reply(rid) = msg {
                    let got = c.replies.entry(rid).or_default();
                    if got.insert(from) && got.len() == c.f + 1 {
                        ctx.mark(&format!("r{rid} done"));
                    }
                }
            }
        }
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_, PbftMsg>, tag: u64) {
        match self {
            Node::Replica(r) => r.on_timer(ctx),
            Node::Client(_) => {
                for q in 0..ctx.n() - 1 {
                    ctx.send(q, PbftMsg::Request(tag));
                }
            }
        }
    }

    fn msg_bytes(msg: &PbftMsg) -> usize {
        match msg {
            PbftMsg::ViewChange(_, c) => 16 + 24 * c.len(),
            PbftMsg::NewView(_, o) => 16 + 16 * o.len(),
            _ => 32,
        }
    }

    fn msg_label(msg: &PbftMsg) -> String {
        match msg {
            PbftMsg::Request(r) => format!("Request(r{r})"),
            PbftMsg::PrePrepare(v, s, r) => format!("PrePrepare(v{v} {s}:r{r})"),
            PbftMsg::Prepare(v, s, r) => format!("Prepare(v{v} {s}:r{r})"),
            PbftMsg::Commit(v, s, r) => format!("Commit(v{v} {s}:r{r})"),
            PbftMsg::Reply(r) => format!("Reply(r{r})"),
            PbftMsg::ViewChange(v, c) => format!("ViewChange(v{v}, {} certs)", c.len()),
            PbftMsg::NewView(v, o) => format!("NewView(v{v}, {} reissued)", o.len()),
        }
    }
}

fn run(opts: &LabOptions) -> LabRun {
    let n = opts.nodes;
    let f = 1;
    let traitor_at = if opts.is_variant("no-traitor") {
        None
    } else if opts.is_variant("silent-backup") {
        Some((n - 1, Traitor::Silent))
    } else {
        Some((0, Traitor::EquivocatingPrimary))
    };
    let until: Time = 2_000_000;
    let begin = until / 10;
    let make = |p: ProcId| {
        if p == n {
            Node::Client(Client {
                f,
                begin,
                replies: BTreeMap::new(),
            })
        } else {
            let t = match traitor_at {
                Some((q, t)) if q == p => t,
                _ => Traitor::None,
            };
            Node::Replica(Box::new(Replica::new(t, f)))
        }
    };
    let mut sim = Sim::new(
        opts.seed,
        (0..=n).map(make).collect(),
        net_for(&opts.faults, NetConfig::reliable()),
        ClockConfig::perfect(),
    );
    run_faulted(&mut sim, opts, until, make);
    let trace = sim.take_trace();
    let honest: Vec<ProcId> = (0..n)
        .filter(|&p| traitor_at.is_none_or(|(q, _)| q != p))
        .collect();
    let replica = |p: ProcId| match sim.proc(p) {
        Node::Replica(r) => r,
        Node::Client(_) => unreachable!("P{p} is a replica"),
    };
    let mut at_seq: BTreeMap<u64, BTreeMap<Rid, Vec<ProcId>>> = BTreeMap::new();
    for &p in &honest {
        for &(seq, rid) in &replica(p).executed {
            at_seq.entry(seq).or_default().entry(rid).or_default().push(p);
        }
    }
    let split: Vec<String> = at_seq
        .iter()
        .filter(|(_, by)| by.len() > 1)
        .map(|(seq, by)| format!("seq {seq}: {by:?}"))
        .collect();
    let mut report = LabReport::new(ALGORITHM.name, opts);
    report.checks.push(Check::new(
        "safety: honest replicas execute the same request at each sequence number",
        split.is_empty(),
        if split.is_empty() {
            format!("{} sequence numbers executed", at_seq.len())
        } else {
            format!("(request → replicas) {}", split.join("; "))
        },
    ));
    let replies = match sim.proc(n) {
        Node::Client(c) => c.replies.clone(),
        Node::Replica(_) => unreachable!("the last process is the client"),
    };
    let done: Vec<Rid> = REQUESTS
        .into_iter()
        .filter(|r| replies.get(r).is_some_and(|s| s.len() > f))
        .collect();
    let vcs: u32 = honest.iter().map(|&p| replica(p).view_changes).sum();
    report.checks.push(Check::new(
        "liveness: the client gets f+1 matching replies to each request",
        done.len() == REQUESTS.len(),
        format!(
            "done {done:?}; {vcs} view changes started; final view {}",
            honest.iter().map(|&p| replica(p).view).max().unwrap_or(0)
        ),
    ));
    report.checks.push(Check::new(
        "n ≥ 3f + 1 (the model's condition, reported)",
        true,
        format!(
            "n = {n}, f = {f}: {}",
            if n > 3 * f {
                "inside the model"
            } else {
                "outside the model: safety is not promised"
            }
        ),
    ));
    let s = sim.stats();
    let nn = (n * n) as f64;
    let plain = traitor_at.is_none() && opts.faults.is_empty();
    report.costs.push(Cost::new(
        "messages",
        s.sent as f64,
        "2N² per request, 2 requests: 4N²",
        plain.then_some(4.0 * nn),
    ));
    for (kind, formula, per) in [
        ("PrePrepare", "N-1 per request", (n - 1) as f64),
        ("Prepare", "(N-1)² per request", ((n - 1) * (n - 1)) as f64),
        ("Commit", "N(N-1) per request", (n * (n - 1)) as f64),
    ] {
        report.costs.push(Cost::new(
            &format!("{} messages", kind.to_uppercase()),
            s.sent_of(kind) as f64,
            formula,
            plain.then_some(2.0 * per),
        ));
    }
    let mut lab = LabRun::new(report, trace);
    lab.clients = 1;
    lab
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::report::opts;

    #[test]
    fn honest_replicas_cost_two_n_squared_per_request() {
        for n in [4, 7] {
            let r = run(&opts(n, 1, Some("no-traitor"))).report;
            assert!(r.passed(), "{r:?}");
            assert_eq!(r.costs[0].measured, 4.0 * (n * n) as f64, "{r:?}");
        }
    }

    #[test]
    fn a_view_change_replaces_the_equivocating_primary() {
        for seed in 0..5 {
            for n in [4, 5, 7] {
                let r = run(&opts(n, seed, None)).report;
                assert!(r.passed(), "n={n} seed {seed}: {r:?}");
                assert!(r.checks[1].detail.contains("final view 1"), "{r:?}");
            }
            let r = run(&opts(4, seed, Some("silent-backup"))).report;
            assert!(r.passed(), "{r:?}");
        }
    }

    #[test]
    fn three_replicas_cannot_mask_one_traitor() {
        for seed in 0..5 {
            let r = run(&opts(3, seed, None)).report;
            assert!(!r.checks[0].held, "seed {seed}: {r:?}");
        }
    }
}
