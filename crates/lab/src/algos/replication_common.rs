//! What `primary-backup` and `chain-replication` share: one register
//! replicated on P0..P(N-1), three clients (the last lanes) writing and
//! reading it, and the checker: no read older than a write acknowledged
//! before it began, no read older than a read that ended before it began,
//! replicas equal at the end, every request answered. And the schedule
//! of the convergence runs, `crdt` and `version-vectors` ([`Converging`]).

use rand::Rng;
use synod_simnet::{ClockConfig, Ctx, NetConfig, ProcId, Process, Sim, Time};

use crate::harness::net_for;
use crate::report::{Check, Cost, LabOptions, LabReport, LabRun};

/// How the replicas are organised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// Primary-backup: the primary applies a write, sends it to every
    /// backup and answers after all acknowledge (`sync`), or at once
    /// (`sync == false`, the planted bug); reads at the primary.
    PrimaryBackup {
        /// Wait for the backups before answering.
        sync: bool,
    },
    /// Chain replication: writes enter at the head and flow down the chain;
    /// the tail answers; reads at the tail (or, the planted bug, at any
    /// replica).
    Chain {
        /// Serve reads at a random replica.
        read_any: bool,
    },
}

/// Messages.
#[derive(Clone, Debug)]
pub enum RepMsg {
    /// Client → replica: write `value` (request id).
    Write(u64, u64),
    /// Client → replica: read (request id).
    Read(u64),
    /// Replica → replica: apply (version, value) for client request `req` of `client`.
    Update(ProcId, u64, u64, u64),
    /// Backup → primary: applied `version`.
    UpdateAck(u64),
    /// Replica → client: done; (version, value) now current.
    Reply(u64, u64, u64),
}

/// A finished request, for the checker (true times: clocks are perfect).
#[derive(Clone, Copy, Debug)]
pub struct Op {
    /// A write (true) or a read.
    pub write: bool,
    /// Start and end.
    pub span: (Time, Time),
    /// The version written or read.
    pub version: u64,
    /// The value written or read.
    pub value: u64,
}

/// A replica or a client.
#[derive(Clone, Debug)]
pub struct Node {
    scheme: Scheme,
    replicas: usize,
    /// The current primary or head (changes on failover).
    pub primary: ProcId,
    // Replica state.
    /// (version, value).
    pub current: (u64, u64),
    /// Every (version, value) applied.
    pub log: Vec<(u64, u64)>,
    next_version: u64,
    waiting: Vec<(u64, ProcId, u64, usize)>,
    lag: Vec<(ProcId, RepMsg)>,
    // Client state.
    left: u32,
    outstanding: Option<(u64, bool, Time)>,
    next_req: u64,
    /// Finished requests.
    pub ops: Vec<Op>,
}

const OPS: u32 = 40;
const NEXT: u64 = 0;
const RETRY: u64 = 100;
const RETRY_AFTER: Time = 100_000;
const FLUSH: u64 = 2;
const FAILOVER_AT: Time = 150_000;
const FLUSH_EVERY: Time = 60_000;
/// Clients.
pub const CLIENTS: usize = 3;

impl Node {
    fn is_client(&self, me: ProcId) -> bool {
        me >= self.replicas
    }

    fn tail(&self) -> ProcId {
        self.replicas - 1
    }

    fn issue(&mut self, ctx: &mut Ctx<'_, RepMsg>) {
        let Some((req, write, _)) = self.outstanding else {
            return;
        };
        let to = match (self.scheme, write) {
            (_, true) => self.primary,
            (Scheme::PrimaryBackup { .. }, false) => self.primary,
            (Scheme::Chain { read_any: false }, false) => self.tail(),
            (Scheme::Chain { read_any: true }, false) => ctx.rng().random_range(0..self.replicas),
        };
        let msg = if write {
            RepMsg::Write(req, ctx.id() as u64 * 1_000 + req)
        } else {
            RepMsg::Read(req)
        };
        ctx.send(to, msg);
        ctx.set_timer(RETRY_AFTER, RETRY + req);
    }

    fn start_op(&mut self, ctx: &mut Ctx<'_, RepMsg>) {
        if self.left == 0 {
            return;
        }
        self.left -= 1;
        self.next_req += 1;
        let write = ctx.rng().random_bool(0.5);
        self.outstanding = Some((self.next_req, write, ctx.now()));
        self.issue(ctx);
    }

    /// A replica applies an update it has not seen.
    fn apply(&mut self, version: u64, value: u64) {
        if !self.log.contains(&(version, value)) {
            self.log.push((version, value));
        }
        if version > self.current.0 {
            self.current = (version, value);
        }
    }

    fn replica(&mut self, ctx: &mut Ctx<'_, RepMsg>, from: ProcId, msg: RepMsg) {
        let me = ctx.id();
        match msg {
            RepMsg::Write(req, value) => {
                if me != self.primary {
                    return;
                }
                self.next_version = self.next_version.max(self.current.0) + 1;
                let v = self.next_version;
                self.apply(v, value);
                ctx.mark(&format!("v{v}"));
                match self.scheme {
                    Scheme::PrimaryBackup { sync } => {
                        let backups: Vec<ProcId> =
                            (0..self.replicas).filter(|&b| b != me && b > me).collect();
                        if sync && !backups.is_empty() {
                            for &b in &backups {
                                ctx.send(b, RepMsg::Update(from, req, v, value));
                            }
                            self.waiting.push((v, from, req, backups.len()));
                        } else {
                            // Asynchronous: answer now, ship the log later.
                            for &b in &backups {
                                self.lag.push((b, RepMsg::Update(from, req, v, value)));
                            }
                            ctx.send(from, RepMsg::Reply(req, v, value));
                        }
                    }
                    Scheme::Chain { .. } => {
                        if me == self.tail() {
                            ctx.send(from, RepMsg::Reply(req, v, value));
                        } else {
                            ctx.send(me + 1, RepMsg::Update(from, req, v, value));
                        }
                    }
                }
            }
            RepMsg::Update(client, req, v, value) => {
                self.apply(v, value);
                match self.scheme {
                    Scheme::PrimaryBackup { .. } => ctx.send(from, RepMsg::UpdateAck(v)),
                    Scheme::Chain { .. } => {
                        if me == self.tail() {
                            ctx.send(client, RepMsg::Reply(req, v, value));
                        } else {
                            ctx.send(me + 1, RepMsg::Update(client, req, v, value));
                        }
                    }
                }
            }
            RepMsg::UpdateAck(v) => {
                if let Some(w) = self.waiting.iter_mut().find(|w| w.0 == v) {
                    w.3 -= 1;
                }
                let (done, rest): (Vec<_>, Vec<_>) = self.waiting.drain(..).partition(|w| w.3 == 0);
                self.waiting = rest;
                for (v, client, req, _) in done {
                    let value = self.log.iter().find(|e| e.0 == v).map_or(0, |e| e.1);
                    ctx.send(client, RepMsg::Reply(req, v, value));
                }
            }
            RepMsg::Read(req) => {
                ctx.send(from, RepMsg::Reply(req, self.current.0, self.current.1));
            }
            RepMsg::Reply(..) => {}
        }
    }
}

impl Process for Node {
    type Msg = RepMsg;

    fn on_start(&mut self, ctx: &mut Ctx<'_, RepMsg>) {
        if self.is_client(ctx.id()) {
            let at = ctx.rng().random_range(1_000..20_000);
            ctx.set_timer(at, NEXT);
        } else if self.scheme == (Scheme::PrimaryBackup { sync: false }) {
            ctx.set_timer(FLUSH_EVERY, FLUSH);
        }
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_, RepMsg>, tag: u64) {
        match tag {
            NEXT => self.start_op(ctx),
            FLUSH => {
                for (to, m) in std::mem::take(&mut self.lag) {
                    ctx.send(to, m);
                }
                ctx.set_timer(FLUSH_EVERY, FLUSH);
            }
            t if t >= RETRY && self.outstanding.is_some_and(|o| o.0 == t - RETRY) => {
                self.issue(ctx);
            }
            _ => {}
        }
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, RepMsg>, from: ProcId, msg: RepMsg) {
        if !self.is_client(ctx.id()) {
            self.replica(ctx, from, msg);
            return;
        }
        if let RepMsg::Reply(req, v, value) = msg {
            if let Some((r, write, start)) = self.outstanding {
                if r == req {
                    self.outstanding = None;
                    self.ops.push(Op {
                        write,
                        span: (start, ctx.now()),
                        version: v,
                        value,
                    });
                    let think = ctx.rng().random_range(500..4_000);
                    ctx.set_timer(think, NEXT);
                }
            }
        }
    }

    fn msg_bytes(_msg: &RepMsg) -> usize {
        24
    }

    fn msg_label(msg: &RepMsg) -> String {
        match msg {
            RepMsg::Write(..) => "Write".into(),
            RepMsg::Read(_) => "Read".into(),
            RepMsg::Update(_, _, v, _) => format!("Update(v{v})"),
            RepMsg::UpdateAck(v) => format!("UpdateAck(v{v})"),
            RepMsg::Reply(_, v, _) => format!("Reply(v{v})"),
        }
    }
}

/// Runs the scheme on `opts.nodes` replicas and three clients; with
/// `failover`, P0 crashes at 150 ms (mid-workload) and P1 takes over.
pub fn run(name: &str, opts: &LabOptions, scheme: Scheme, failover: bool) -> LabRun {
    let n = opts.nodes;
    let until: Time = 3_000_000;
    let make = |_: ProcId| Node {
        scheme,
        replicas: n,
        primary: 0,
        current: (0, 0),
        log: vec![],
        next_version: 0,
        waiting: vec![],
        lag: vec![],
        left: OPS,
        outstanding: None,
        next_req: 0,
        ops: vec![],
    };
    let mut sim = Sim::new(
        opts.seed,
        (0..n + CLIENTS).map(make).collect(),
        net_for(&opts.faults, NetConfig::reliable()),
        ClockConfig::perfect(),
    );
    if failover {
        sim.run_until(FAILOVER_AT);
        sim.crash(0);
        // The configuration service (not modelled) tells everyone.
        for p in 1..n + CLIENTS {
            sim.proc_mut(p).primary = 1;
        }
        sim.with_ctx(1, |_, ctx| ctx.mark("primary"));
    }
    sim.run_until(until);
    let trace = sim.take_trace();
    let ops: Vec<Op> = (n..n + CLIENTS)
        .flat_map(|c| sim.proc(c).ops.clone())
        .collect();
    let mut report = LabReport::new(name, opts);
    let mut stale = vec![];
    let mut back = vec![];
    for r in ops.iter().filter(|o| !o.write) {
        let acked = ops
            .iter()
            .filter(|w| w.write && w.span.1 < r.span.0)
            .map(|w| w.version)
            .max()
            .unwrap_or(0);
        if r.version < acked {
            stale.push(format!(
                "read v{} at {} ms after v{acked} was acked",
                r.version,
                r.span.0 / 1_000
            ));
        }
        let seen = ops
            .iter()
            .filter(|q| !q.write && q.span.1 < r.span.0)
            .map(|q| q.version)
            .max()
            .unwrap_or(0);
        if r.version < seen {
            back.push(format!(
                "read v{} at {} ms after a read of v{seen}",
                r.version,
                r.span.0 / 1_000
            ));
        }
    }
    let reads = ops.iter().filter(|o| !o.write).count();
    report.checks.push(Check::new(
        "no read older than a write acknowledged before it began",
        stale.is_empty(),
        if stale.is_empty() {
            format!("{reads} reads")
        } else {
            stale[..stale.len().min(2)].join("; ")
        },
    ));
    report.checks.push(Check::new(
        "reads never go back: none older than a read that ended before it began",
        back.is_empty(),
        if back.is_empty() {
            format!("{reads} reads")
        } else {
            back[..back.len().min(2)].join("; ")
        },
    ));
    let live: Vec<(ProcId, u64)> = (0..n)
        .filter(|&p| sim.is_up(p))
        .map(|p| (p, sim.proc(p).current.0))
        .collect();
    report.checks.push(Check::new(
        "the live replicas end equal",
        live.windows(2).all(|w| w[0].1 == w[1].1),
        format!("{live:?}"),
    ));
    let mut lost = vec![];
    for w in ops.iter().filter(|o| o.write) {
        for p in (0..n).filter(|&p| sim.is_up(p)) {
            if !sim.proc(p).log.contains(&(w.version, w.value)) && lost.len() < 3 {
                lost.push(format!("P{p} lacks acked v{}", w.version));
            }
        }
    }
    report.checks.push(Check::new(
        "every acknowledged write is on every live replica",
        lost.is_empty(),
        if lost.is_empty() {
            format!(
                "{} acknowledged writes",
                ops.iter().filter(|o| o.write).count()
            )
        } else {
            lost.join("; ")
        },
    ));
    let want = OPS as usize * CLIENTS;
    report.checks.push(Check::new(
        "every request is answered",
        ops.len() == want,
        format!("{} of {want}", ops.len()),
    ));
    let writes = ops.iter().filter(|o| o.write).count() as f64;
    let s = sim.stats();
    let (per_write, formula) = match scheme {
        Scheme::PrimaryBackup { .. } => {
            (2.0 * n as f64, "2N: request, N-1 updates and acks, reply")
        }
        Scheme::Chain { .. } => (
            n as f64 + 1.0,
            "N + 1: request, N-1 hops down the chain, reply from the tail",
        ),
    };
    let exact = !failover && opts.faults.is_empty();
    report.costs.push(Cost::new(
        "messages",
        s.sent as f64,
        &format!("{formula} per write; 2 per read"),
        exact.then_some(per_write * writes + 2.0 * reads as f64),
    ));
    let latency: f64 = ops
        .iter()
        .filter(|o| o.write)
        .map(|o| (o.span.1 - o.span.0) as f64 / 1_000.0)
        .sum::<f64>()
        / writes.max(1.0);
    report.costs.push(Cost::new(
        "write latency (ms, mean)",
        latency,
        match scheme {
            Scheme::PrimaryBackup { .. } => {
                "2 round trips: client-primary and primary-slowest backup"
            }
            Scheme::Chain { .. } => "N + 1 one-way hops",
        },
        None,
    ));
    let mut run = LabRun::new(report, trace);
    run.clients = CLIENTS;
    run
}

/// A replica of the convergence runs (`crdt`, `version-vectors`): it makes
/// [`Converging::UPDATES`] local updates at random moments of the first half
/// of the run, gossips its whole state to a random peer every
/// [`Converging::GOSSIP_EVERY`] until three quarters of it, then floods it
/// to everyone every 50 ms, so every replica ends with every update.
pub trait Converging {
    /// The message that carries a replica's state.
    type Msg: Clone;
    /// How long the run lasts.
    const UNTIL: Time;
    /// Updates each replica makes.
    const UPDATES: u32;
    /// The gossip period.
    const GOSSIP_EVERY: Time;
    /// Updates this replica still has to make.
    fn left(&mut self) -> &mut u32;
    /// Makes one local update.
    fn update(&mut self, ctx: &mut Ctx<'_, Self::Msg>);
    /// The replica's state, as a message.
    fn state(&self) -> Self::Msg;
}

const UPDATE: u64 = 0;
const GOSSIP: u64 = 1;
const FLOOD: u64 = 2;

/// [`Converging`]'s timers at start (and after a restart).
pub fn converging_start<R: Converging>(r: &mut R, ctx: &mut Ctx<'_, R::Msg>) {
    if *r.left() > 0 {
        let at = ctx.rng().random_range(1..R::UNTIL / 2 / R::UPDATES as Time);
        ctx.set_timer(at, UPDATE);
    }
    ctx.set_timer(R::GOSSIP_EVERY, GOSSIP);
    let now = ctx.now();
    ctx.set_timer((R::UNTIL * 3 / 4).saturating_sub(now).max(1), FLOOD);
}

/// [`Converging`]'s timer handler: an update, a gossip or a flood.
pub fn converging_timer<R: Converging>(r: &mut R, ctx: &mut Ctx<'_, R::Msg>, tag: u64) {
    let n = ctx.n();
    match tag {
        UPDATE => {
            r.update(ctx);
            *r.left() -= 1;
            if *r.left() > 0 {
                let at = ctx.rng().random_range(1..R::UNTIL / 2 / R::UPDATES as Time);
                ctx.set_timer(at, UPDATE);
            }
        }
        GOSSIP if ctx.now() < R::UNTIL * 3 / 4 => {
            if n > 1 {
                let to = (ctx.id() + ctx.rng().random_range(1..n)) % n;
                ctx.send(to, r.state());
            }
            ctx.set_timer(R::GOSSIP_EVERY, GOSSIP);
        }
        FLOOD => {
            let me = ctx.id();
            for q in (0..n).filter(|&q| q != me) {
                ctx.send(q, r.state());
            }
            ctx.set_timer(50_000, FLOOD);
        }
        _ => {}
    }
}
