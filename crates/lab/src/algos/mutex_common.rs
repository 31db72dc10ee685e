//! Shared plumbing of the mutual-exclusion family: a site that drives a
//! bounded request workload over any protocol, the fault loop (crashed sites
//! restart from their durable state), and the checker that reads the
//! "request" / "enter CS" / "exit CS" marks back from the trace.

use std::collections::BTreeSet;
use std::fmt::Debug;

use rand::Rng;
use synod_simnet::{
    ClockConfig, Ctx, Fault, FaultSet, Nemesis, NemesisAction, NemesisConfig, NetConfig, ProcId,
    Process, Sim, Time, Trace, TraceKind,
};

use crate::harness::net_for;
use crate::report::{Check, LabOptions};

/// Mark of a site asking for the critical section.
pub const REQUEST: &str = "request";
/// Mark of a site entering the critical section.
pub const ENTER: &str = "enter CS";
/// Mark of a site leaving the critical section.
pub const EXIT: &str = "exit CS";

/// Timer tags at or above this value belong to the site, below it to the protocol.
const SITE_TAGS: u64 = 1 << 40;
const TAG_THINK: u64 = SITE_TAGS;
const TAG_CS: u64 = SITE_TAGS + 1;
/// How much longer than its nominal length a faulted run may go on to finish.
pub const LIVENESS_FACTOR: Time = 3;

/// A mutual-exclusion protocol, as seen by the site that uses it.
///
/// Every handler returns `true` when, as a result, this site may enter the
/// critical section now; the site then enters it at once.
pub trait Protocol {
    /// The protocol's messages.
    type Msg: Clone + Debug;
    /// At start (and after a restart).
    fn start(&mut self, _ctx: &mut Ctx<'_, Self::Msg>) {}
    /// The site wants the critical section.
    fn request(&mut self, ctx: &mut Ctx<'_, Self::Msg>) -> bool;
    /// The site left the critical section.
    fn release(&mut self, ctx: &mut Ctx<'_, Self::Msg>);
    /// A protocol message arrived.
    fn message(&mut self, ctx: &mut Ctx<'_, Self::Msg>, from: ProcId, msg: Self::Msg) -> bool;
    /// A protocol timer (tag below 2^40) fired.
    fn timer(&mut self, _ctx: &mut Ctx<'_, Self::Msg>, _tag: u64) -> bool {
        false
    }
    /// Short label of a message.
    fn label(msg: &Self::Msg) -> String;
    /// Wire size of a message.
    fn bytes(msg: &Self::Msg) -> usize;
}

/// How much a site asks for the critical section.
#[derive(Clone, Copy, Debug)]
pub struct Demand {
    /// Critical sections each site asks for.
    pub requests: u32,
    /// Think time between them, uniform in this range (µs).
    pub think: (Time, Time),
    /// Time spent inside the critical section (µs).
    pub cs: Time,
}

/// Where a site is in its cycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Thinking (or done).
    Idle,
    /// Waiting for the critical section.
    Waiting,
    /// Inside the critical section.
    InCs,
}

/// One site: the workload around a protocol `P`.
#[derive(Clone, Debug)]
pub struct Site<P> {
    /// The protocol state.
    pub proto: P,
    /// Where the site is.
    pub phase: Phase,
    /// Requests still to make.
    pub left: u32,
    demand: Demand,
}

impl<P: Protocol> Site<P> {
    /// A site running `proto` under `demand`.
    pub fn new(proto: P, demand: Demand) -> Self {
        Site {
            proto,
            phase: Phase::Idle,
            left: demand.requests,
            demand,
        }
    }

    fn think(&mut self, ctx: &mut Ctx<'_, P::Msg>) {
        if self.left > 0 {
            let (a, b) = self.demand.think;
            let d = ctx.rng().random_range(a..=b);
            ctx.set_timer(d, TAG_THINK);
        }
    }

    fn enter(&mut self, ctx: &mut Ctx<'_, P::Msg>) {
        assert_eq!(
            self.phase,
            Phase::Waiting,
            "site {} granted the CS without asking",
            ctx.id()
        );
        self.phase = Phase::InCs;
        ctx.mark(ENTER);
        ctx.set_timer(self.demand.cs, TAG_CS);
    }
}

impl<P: Protocol> Process for Site<P> {
    type Msg = P::Msg;

    fn on_start(&mut self, ctx: &mut Ctx<'_, P::Msg>) {
        self.phase = Phase::Idle;
        self.proto.start(ctx);
        self.think(ctx);
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, P::Msg>, from: ProcId, msg: P::Msg) {
        if self.proto.message(ctx, from, msg) {
            self.enter(ctx);
        }
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_, P::Msg>, tag: u64) {
        match tag {
            TAG_THINK => {
                if self.phase != Phase::Idle || self.left == 0 {
                    return;
                }
                self.left -= 1;
                self.phase = Phase::Waiting;
                ctx.mark(REQUEST);
                if self.proto.request(ctx) {
                    self.enter(ctx);
                }
            }
            TAG_CS => {
                assert_eq!(self.phase, Phase::InCs);
                self.phase = Phase::Idle;
                ctx.mark(EXIT);
                self.proto.release(ctx);
                self.think(ctx);
            }
            t => {
                if self.proto.timer(ctx, t) {
                    self.enter(ctx);
                }
            }
        }
    }

    fn msg_bytes(msg: &P::Msg) -> usize {
        P::bytes(msg)
    }

    fn msg_label(msg: &P::Msg) -> String {
        P::label(msg)
    }
}

/// Builds the simulation of `n` sites with `make(id)` as protocols, on `base`
/// plus the message faults of `opts`.
pub fn build<P: Protocol>(
    opts: &LabOptions,
    base: NetConfig,
    demand: impl Fn(ProcId) -> Demand,
    make: impl Fn(ProcId) -> P,
) -> Sim<Site<P>> {
    let sites = (0..opts.nodes)
        .map(|i| Site::new(make(i), demand(i)))
        .collect();
    Sim::new(
        opts.seed,
        sites,
        net_for(&opts.faults, base),
        ClockConfig::perfect(),
    )
}

/// Runs `sim` until `done` holds (then `grace` more µs) or `until`, with the
/// schedule faults of `opts` active between 10 % and 60 % of `until`. A
/// crashed process restarts as `rebuild(id, &old)`: what it keeps of `old` is
/// its durable state. When faults were scheduled, a liveness phase on the
/// healed system follows: the run may go on to `LIVENESS_FACTOR × until`, so
/// a workload slowed by the faults can still finish (requests left waiting
/// then are starvation or deadlock, not a short run).
pub fn run_with_faults<P: Process>(
    sim: &mut Sim<P>,
    opts: &LabOptions,
    until: Time,
    grace: Time,
    done: impl Fn(&Sim<P>) -> bool,
    rebuild: impl Fn(ProcId, &P) -> P,
) {
    let scheduled: FaultSet = opts
        .faults
        .iter()
        .filter(|f| !matches!(f, Fault::Loss | Fault::Duplicate | Fault::Reorder))
        .collect();
    let schedule = if scheduled.is_empty() {
        vec![]
    } else {
        let mut cfg = NemesisConfig::new(opts.nodes, until / 10, until * 6 / 10);
        cfg.mean_interval = (until / 20).max(1);
        cfg.max_crashed = cfg.max_crashed.max(1).min(opts.nodes.saturating_sub(1));
        Nemesis::new(opts.seed, scheduled, opts.nodes, cfg).schedule()
    };
    let mut finished = false;
    for (t, a) in &schedule {
        if sim.run_while(*t, |s| !done(s)) {
            finished = true;
            break;
        }
        match a {
            NemesisAction::Crash(p) => sim.crash(*p),
            NemesisAction::Restart(p) => {
                let fresh = rebuild(*p, sim.proc(*p));
                sim.restart(*p, fresh);
            }
            other => {
                sim.apply(other);
            }
        }
    }
    let limit = if schedule.is_empty() {
        until
    } else {
        until * LIVENESS_FACTOR
    };
    if !finished {
        sim.run_while(limit, |s| !done(s));
    }
    let end = (sim.now() + grace).min(limit);
    sim.run_until(end);
}

/// What the checker read from the trace.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    /// Critical-section entries.
    pub entries: u64,
    /// Requests made.
    pub requests: u64,
    /// The first moment two sites were inside at once, if any.
    pub overlap: Option<String>,
    /// Requests never served, with when they were made (site, µs).
    pub unserved: Vec<(ProcId, Time)>,
    /// Requests abandoned because their site crashed.
    pub abandoned: u64,
}

/// Reads the marks of `trace` (of `n` sites) back: who was in the critical
/// section when, and which requests were served.
pub fn outcome(trace: &Trace, n: usize) -> Outcome {
    let mut o = Outcome::default();
    let mut inside: BTreeSet<ProcId> = BTreeSet::new();
    let mut waiting: Vec<Option<Time>> = vec![None; n];
    for e in &trace.events {
        match &e.kind {
            TraceKind::Mark { label } if label == REQUEST => {
                o.requests += 1;
                waiting[e.proc] = Some(e.time);
            }
            TraceKind::Mark { label } if label == ENTER => {
                o.entries += 1;
                waiting[e.proc] = None;
                inside.insert(e.proc);
                if inside.len() > 1 && o.overlap.is_none() {
                    let who: Vec<String> = inside.iter().map(|p| format!("P{p}")).collect();
                    o.overlap = Some(format!("{} inside at t={}µs", who.join(" and "), e.time));
                }
            }
            TraceKind::Mark { label } if label == EXIT => {
                inside.remove(&e.proc);
            }
            TraceKind::Crash if e.proc < n => {
                inside.remove(&e.proc);
                if waiting[e.proc].take().is_some() {
                    o.abandoned += 1;
                }
            }
            _ => {}
        }
    }
    o.unserved = waiting
        .iter()
        .enumerate()
        .filter_map(|(p, w)| w.map(|t| (p, t)))
        .collect();
    o
}

impl Outcome {
    /// The two classic checks: safety (never two inside) and liveness
    /// (every request served by the end of the run).
    pub fn checks(&self, trace: &Trace) -> Vec<Check> {
        let truncated = if trace.truncated > 0 {
            " (trace truncated)"
        } else {
            ""
        };
        let safety = Check::new(
            "mutual exclusion: never two sites in the CS",
            self.overlap.is_none(),
            self.overlap.clone().unwrap_or_else(|| {
                format!("{} entries, never overlapping{truncated}", self.entries)
            }),
        );
        let detail = match self.unserved.first() {
            None => format!(
                "{} of {} requests served ({} abandoned by a crash)",
                self.requests - self.abandoned,
                self.requests,
                self.abandoned
            ),
            Some((p, t)) => format!(
                "{} request(s) never served (starvation or deadlock): P{p} waiting since t={t}µs",
                self.unserved.len()
            ),
        };
        let liveness = Check::new(
            "every request eventually served",
            self.unserved.is_empty(),
            detail,
        );
        vec![safety, liveness]
    }
}

/// Whether every site has made all its requests and is out of the critical section.
pub fn all_done<P: Protocol>(sim: &Sim<Site<P>>) -> bool {
    sim.procs()
        .iter()
        .enumerate()
        .all(|(i, s)| !sim.is_up(i) || (s.left == 0 && s.phase == Phase::Idle))
}

/// Critical sections each site asks for: 3, or 25 when scheduled faults
/// (crash, partition, …) are on, so the workload outlasts the fault window.
pub fn rounds(opts: &LabOptions) -> u32 {
    let scheduled = opts
        .faults
        .iter()
        .any(|f| !matches!(f, Fault::Loss | Fault::Duplicate | Fault::Reorder));
    if scheduled {
        25
    } else {
        3
    }
}

/// A Lamport timestamp with its tie-breaker: requests are ordered by `(ts, id)`.
pub type Stamp = (u64, ProcId);
