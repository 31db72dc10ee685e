//! Single-decree Paxos (the synod algorithm): proposers, acceptors and
//! learners agree on one value; duelling proposers can keep it from ever
//! being chosen.

use std::collections::{BTreeMap, BTreeSet};

use rand::Rng;
use synod_simnet::{ClockConfig, Ctx, NetConfig, ProcId, Process, Sim, Time, TimerId};

use crate::algos::gossip_common::HOP;
use crate::harness::{net_for, run_faulted_durable};
use crate::registry::{Algorithm, FaultModel};
use crate::report::{Check, Cost, LabOptions, LabReport, LabRun};

/// The registry entry.
pub const ALGORITHM: Algorithm = Algorithm {
    name: "paxos",
    family: "consensus and election",
    summary: "single-decree Paxos: one value chosen; duelling proposers may livelock",
    description: "Single-decree Paxos (Lamport 1998, 2001). Every process is an acceptor and a\n\
learner; P0 and P1 are also proposers (P1 starts a little later).\n\
Phase 1: a proposer picks a ballot b = (round, id) above any it has seen and sends\n\
PREPARE(b); an acceptor that promised nothing higher promises b and answers\n\
PROMISE(b, its accepted (ballot, value) if any), else NACK(its promise).\n\
Phase 2: with promises from a majority the proposer sends ACCEPT(b, v), v the value\n\
of the highest-ballot acceptance reported (its own value if none); an acceptor\n\
that promised nothing higher accepts and answers ACCEPTED(b). With a majority of\n\
ACCEPTED the value is chosen and the proposer tells the learners (DECIDE).\n\
A NACK or a timeout sends the proposer back to phase 1 after a random backoff;
a learner that has learned nothing after a while ASKs everyone (a lost DECIDE).\n\
Promises and acceptances are stable storage: they survive a crash.\n\
Guarantee (any loss, delay, duplication, partition or crash): at most one value is\n\
chosen, it was proposed, and learners learn only it. Termination is not promised\n\
(FLP): two proposers that preempt each other without backing off livelock.\n\
Cost with one proposer and no contention: 2 round trips to the acceptors,\n\
4(N-1) messages, plus N-1 DECIDE: 5(N-1).",
    variants: &[
        ("one-proposer", "only P0 proposes: 5(N-1) messages"),
        (
            "duel",
            "no backoff, and a proposer re-prepares at once on seeing a higher PREPARE: livelock",
        ),
        (
            "no-adopt",
            "planted bug: the proposer ignores acceptances reported in promises",
        ),
    ],
    default_nodes: 5,
    nodes: (1, 64),
    faults: FaultModel::EVERY,
    run,
};

/// A ballot: (round, proposer). Ballots of different proposers differ.
pub type Ballot = (u64, ProcId);

/// A proposed value.
pub type Value = u64;

/// Paxos messages.
#[derive(Clone, Debug)]
pub enum PaxosMsg {
    /// Phase 1a.
    Prepare(Ballot),
    /// Phase 1b: the promise and the last acceptance.
    Promise(Ballot, Option<(Ballot, Value)>),
    /// Phase 2a.
    Accept(Ballot, Value),
    /// Phase 2b.
    Accepted(Ballot),
    /// A refusal, naming the higher promise.
    Nack(Ballot, Ballot),
    /// The chosen value, to the learners.
    Decide(Value),
    /// A learner that has waited long asks what was decided.
    Ask,
}

/// What a proposer is doing.
#[derive(Clone, Debug, PartialEq)]
enum Phase {
    Idle,
    Preparing,
    Accepting(Value),
    Done,
}

/// One process: acceptor, learner and maybe proposer.
#[derive(Clone, Debug)]
pub struct PaxosProc {
    proposer: bool,
    start_at: Time,
    duel: bool,
    no_adopt: bool,
    // Stable storage.
    /// The highest ballot promised.
    pub promised: Ballot,
    /// The last acceptance.
    pub accepted: Option<(Ballot, Value)>,
    /// Every acceptance, in order (for the checker).
    pub history: Vec<(Ballot, Value)>,
    /// The value learned.
    pub learned: Option<Value>,
    /// The highest round this proposer used.
    pub round: u64,
    /// Ballots this proposer started.
    pub ballots: u64,
    // Volatile proposer state.
    phase: Phase,
    ballot: Ballot,
    promises: BTreeMap<ProcId, Option<(Ballot, Value)>>,
    accepts: BTreeSet<ProcId>,
    attempt: u32,
    timer: Option<TimerId>,
}

const START: u64 = 0;
const RETRY: u64 = 1;
const POLL: u64 = 2;
/// A learner that has not learned by then asks everyone (a lost DECIDE).
const POLL_EVERY: Time = 30 * HOP;
const TIMEOUT: Time = 12 * HOP;

fn own_value(p: ProcId) -> Value {
    100 + p as Value
}

impl PaxosProc {
    fn new(proposer: bool, start_at: Time, duel: bool, no_adopt: bool) -> Self {
        PaxosProc {
            proposer,
            start_at,
            duel,
            no_adopt,
            promised: (0, 0),
            accepted: None,
            history: vec![],
            learned: None,
            round: 0,
            ballots: 0,
            phase: Phase::Idle,
            ballot: (0, 0),
            promises: BTreeMap::new(),
            accepts: BTreeSet::new(),
            attempt: 0,
            timer: None,
        }
    }

    /// The process rebuilt after a crash from its stable storage.
    fn recover(&self) -> Self {
        PaxosProc {
            promised: self.promised,
            accepted: self.accepted,
            history: self.history.clone(),
            learned: self.learned,
            round: self.round,
            ballots: self.ballots,
            start_at: HOP,
            ..PaxosProc::new(self.proposer, 0, self.duel, self.no_adopt)
        }
    }

    fn majority(n: usize) -> usize {
        n / 2 + 1
    }

    fn on_prepare(&mut self, b: Ballot) -> Result<Option<(Ballot, Value)>, Ballot> {
        if b > self.promised {
            self.promised = b;
            Ok(self.accepted)
        } else {
            Err(self.promised)
        }
    }

    fn on_accept(&mut self, b: Ballot, v: Value) -> Result<(), Ballot> {
        if b >= self.promised {
            self.promised = b;
            self.accepted = Some((b, v));
            self.history.push((b, v));
            Ok(())
        } else {
            Err(self.promised)
        }
    }

    fn learn(&mut self, ctx: &mut Ctx<'_, PaxosMsg>, v: Value) {
        if self.learned.is_none() {
            ctx.mark(&format!("learn {v}"));
        }
        self.learned.get_or_insert(v);
    }

    fn prepare(&mut self, ctx: &mut Ctx<'_, PaxosMsg>) {
        if self.learned.is_some() {
            self.phase = Phase::Done;
            return;
        }
        self.round = self.round.max(self.promised.0) + 1;
        self.ballot = (self.round, ctx.id());
        self.ballots += 1;
        self.phase = Phase::Preparing;
        self.promises.clear();
        self.accepts.clear();
        ctx.mark(&format!("prepare {:?}", self.ballot));
        let me = ctx.id();
        let b = self.ballot;
        match self.on_prepare(b) {
            Ok(acc) => {
                self.promises.insert(me, acc);
            }
            Err(higher) => self.round = self.round.max(higher.0),
        }
        for q in (0..ctx.n()).filter(|&q| q != me) {
            ctx.send(q, PaxosMsg::Prepare(b));
        }
        self.arm(ctx, TIMEOUT);
        self.maybe_accept(ctx);
    }

    fn arm(&mut self, ctx: &mut Ctx<'_, PaxosMsg>, after: Time) {
        if let Some(t) = self.timer.take() {
            ctx.cancel_timer(t);
        }
        self.timer = Some(ctx.set_timer(after, RETRY));
    }

    fn maybe_accept(&mut self, ctx: &mut Ctx<'_, PaxosMsg>) {
        if self.phase != Phase::Preparing || self.promises.len() < Self::majority(ctx.n()) {
            return;
        }
        let adopted = self
            .promises
            .values()
            .flatten()
            .max_by_key(|(b, _)| *b)
            .map(|&(_, v)| v);
        let v = match adopted {
            Some(v) if !self.no_adopt => v,
            _ => own_value(ctx.id()),
        };
        self.phase = Phase::Accepting(v);
        let (me, b) = (ctx.id(), self.ballot);
        if self.on_accept(b, v).is_ok() {
            self.accepts.insert(me);
        }
        for q in (0..ctx.n()).filter(|&q| q != me) {
            ctx.send(q, PaxosMsg::Accept(b, v));
        }
        self.maybe_chosen(ctx);
    }

    fn maybe_chosen(&mut self, ctx: &mut Ctx<'_, PaxosMsg>) {
        let Phase::Accepting(v) = self.phase else {
            return;
        };
        if self.accepts.len() < Self::majority(ctx.n()) {
            return;
        }
        self.phase = Phase::Done;
        if let Some(t) = self.timer.take() {
            ctx.cancel_timer(t);
        }
        ctx.mark(&format!("chosen {v}"));
        self.learn(ctx, v);
        let me = ctx.id();
        for q in (0..ctx.n()).filter(|&q| q != me) {
            ctx.send(q, PaxosMsg::Decide(v));
        }
    }

    /// Abandons the current ballot after learning of `higher`.
    fn preempted(&mut self, ctx: &mut Ctx<'_, PaxosMsg>, higher: Ballot) {
        self.round = self.round.max(higher.0);
        if matches!(self.phase, Phase::Idle | Phase::Done) {
            return;
        }
        self.phase = Phase::Idle;
        self.attempt += 1;
        if self.duel {
            self.prepare(ctx);
        } else {
            let cap = 4 * HOP * u64::from(self.attempt.min(6));
            let wait = ctx.rng().random_range(HOP..=cap.max(HOP));
            self.arm(ctx, wait);
        }
    }
}

impl Process for PaxosProc {
    type Msg = PaxosMsg;

    fn on_start(&mut self, ctx: &mut Ctx<'_, PaxosMsg>) {
        if self.learned.is_some() {
            return;
        }
        if self.proposer {
            ctx.set_timer(self.start_at, START);
        }
        ctx.set_timer(self.start_at + POLL_EVERY, POLL);
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_, PaxosMsg>, tag: u64) {
        if tag == POLL {
            if self.learned.is_none() {
                let me = ctx.id();
                for q in (0..ctx.n()).filter(|&q| q != me) {
                    ctx.send(q, PaxosMsg::Ask);
                }
                ctx.set_timer(POLL_EVERY, POLL);
            }
            return;
        }
        if tag == RETRY {
            self.timer = None;
        }
        if self.phase != Phase::Done {
            self.prepare(ctx);
        }
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, PaxosMsg>, from: ProcId, msg: PaxosMsg) {
        match msg {
            PaxosMsg::Prepare(b) => {
                let reply = match self.on_prepare(b) {
                    Ok(acc) => PaxosMsg::Promise(b, acc),
                    Err(higher) => PaxosMsg::Nack(b, higher),
                };
                ctx.send(from, reply);
                if self.duel && self.proposer && b > self.ballot && b.1 != ctx.id() {
                    self.preempted(ctx, b);
                }
            }
            PaxosMsg::Accept(b, v) => {
                let reply = match self.on_accept(b, v) {
                    Ok(()) => PaxosMsg::Accepted(b),
                    Err(higher) => PaxosMsg::Nack(b, higher),
                };
                ctx.send(from, reply);
            }
            PaxosMsg::Promise(b, acc) if b == self.ballot && self.phase == Phase::Preparing => {
                self.promises.insert(from, acc);
                self.maybe_accept(ctx);
            }
            PaxosMsg::Accepted(b) if b == self.ballot => {
                self.accepts.insert(from);
                self.maybe_chosen(ctx);
            }
            PaxosMsg::Nack(b, higher) if b == self.ballot => self.preempted(ctx, higher),
            PaxosMsg::Promise(..) | PaxosMsg::Accepted(_) | PaxosMsg::Nack(..) => {}
            PaxosMsg::Ask => {
                if let Some(v) = self.learned {
                    ctx.send(from, PaxosMsg::Decide(v));
                }
            }
            PaxosMsg::Decide(v) => {
                self.learn(ctx, v);
                if self.proposer && self.phase != Phase::Done {
                    self.phase = Phase::Done;
                    if let Some(t) = self.timer.take() {
                        ctx.cancel_timer(t);
                    }
                }
            }
        }
    }

    fn msg_bytes(msg: &PaxosMsg) -> usize {
        match msg {
            PaxosMsg::Prepare(_) | PaxosMsg::Accepted(_) => 16,
            PaxosMsg::Ask => 1,
            PaxosMsg::Promise(..) => 40,
            PaxosMsg::Accept(..) | PaxosMsg::Nack(..) => 32,
            PaxosMsg::Decide(_) => 8,
        }
    }

    fn msg_label(msg: &PaxosMsg) -> String {
        let b = |b: &Ballot| format!("{}.{}", b.0, b.1);
        match msg {
            PaxosMsg::Prepare(x) => format!("Prepare({})", b(x)),
            PaxosMsg::Promise(x, None) => format!("Promise({})", b(x)),
            PaxosMsg::Promise(x, Some((y, v))) => format!("Promise({}, {}={v})", b(x), b(y)),
            PaxosMsg::Accept(x, v) => format!("Accept({}, {v})", b(x)),
            PaxosMsg::Accepted(x) => format!("Accepted({})", b(x)),
            PaxosMsg::Nack(x, h) => format!("Nack({} < {})", b(x), b(h)),
            PaxosMsg::Decide(v) => format!("Decide({v})"),
            PaxosMsg::Ask => "Ask".to_string(),
        }
    }
}

/// The values chosen in a run: those accepted by a majority in one ballot.
pub fn chosen(histories: &[&[(Ballot, Value)]]) -> BTreeSet<Value> {
    let n = histories.len();
    let mut votes: BTreeMap<(Ballot, Value), usize> = BTreeMap::new();
    for h in histories {
        let mine: BTreeSet<&(Ballot, Value)> = h.iter().collect();
        for &bv in mine {
            *votes.entry(bv).or_default() += 1;
        }
    }
    votes
        .into_iter()
        .filter(|&(_, c)| c > n / 2)
        .map(|((_, v), _)| v)
        .collect()
}

fn run(opts: &LabOptions) -> LabRun {
    let n = opts.nodes;
    let (duel, no_adopt) = (opts.is_variant("duel"), opts.is_variant("no-adopt"));
    let proposers = if opts.is_variant("one-proposer") || n == 1 {
        1
    } else {
        2
    };
    // P1 starts in the middle of P0's first ballot (duel: exactly one hop
    // later, the schedule that livelocks); otherwise somewhere in the first
    // few hops, from the seed.
    let late = if duel {
        HOP
    } else {
        HOP + (opts.seed * 7_919) % (8 * HOP)
    };
    // Proposals begin once the fault schedule may have started (it runs
    // between 10 % and 60 % of the run), so faults meet the protocol.
    let until = 200 * HOP;
    let begin = until / 10 + 2 * HOP;
    let make = |p: ProcId| {
        let start = if p == 1 { begin + late } else { begin };
        PaxosProc::new(p < proposers, start, duel, no_adopt)
    };
    let mut base = NetConfig::reliable();
    if duel {
        (base.latency_min, base.latency_max) = (HOP, HOP);
    }
    let mut sim = Sim::new(
        opts.seed,
        (0..n).map(make).collect(),
        net_for(&opts.faults, base),
        ClockConfig::perfect(),
    );
    run_faulted_durable(&mut sim, opts, until, |crashed, _| crashed.recover());
    let trace = sim.take_trace();
    let histories: Vec<&[(Ballot, Value)]> =
        sim.procs().iter().map(|p| p.history.as_slice()).collect();
    let chosen = chosen(&histories);
    let proposed: BTreeSet<Value> = (0..proposers).map(own_value).collect();
    let learned: BTreeMap<ProcId, Value> = sim
        .procs()
        .iter()
        .enumerate()
        .filter_map(|(p, s)| s.learned.map(|v| (p, v)))
        .collect();
    let mut report = LabReport::new(ALGORITHM.name, opts);
    report.checks.push(Check::new(
        "agreement: at most one value is chosen",
        chosen.len() <= 1,
        format!("chosen (accepted by a majority in one ballot): {chosen:?}"),
    ));
    report.checks.push(Check::new(
        "validity: the chosen value was proposed",
        chosen.is_subset(&proposed),
        format!("proposed {proposed:?}"),
    ));
    let wrong: Vec<(&ProcId, &Value)> = learned.iter().filter(|(_, v)| !chosen.contains(v)).collect();
    report.checks.push(Check::new(
        "learners learn only a chosen value",
        wrong.is_empty() && learned.values().collect::<BTreeSet<_>>().len() <= 1,
        format!("learned: {learned:?}"),
    ));
    let ballots: u64 = sim.procs().iter().map(|p| p.ballots).sum();
    report.checks.push(Check::new(
        "liveness: a value is chosen and learned by all (not promised: FLP)",
        !chosen.is_empty() && learned.len() == n,
        format!(
            "{} of {n} learned after {ballots} ballots in {} ms",
            learned.len(),
            until / 1_000
        ),
    ));
    let s = sim.stats();
    let nf = n as f64;
    let messages = Cost::new(
        "messages",
        s.sent as f64,
        "5(N-1) with one proposer and no contention",
        (proposers == 1).then_some(5.0 * (nf - 1.0)),
    );
    report.costs.push(if proposers == 1 {
        messages
    } else {
        messages.at_least(5.0 * (nf - 1.0))
    });
    report.costs.push(Cost::new(
        "ballots",
        ballots as f64,
        "1 with one proposer; more when proposers duel",
        (proposers == 1).then_some(1.0),
    ));
    LabRun::new(report, trace)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::report::opts;

    #[test]
    fn one_value_is_chosen_and_learned() {
        for seed in 0..8 {
            for n in [1, 3, 5] {
                let r = run(&opts(n, seed, None)).report;
                assert!(r.passed(), "{r:?}");
            }
        }
    }

    #[test]
    fn one_proposer_costs_five_n_minus_one() {
        for n in [2, 5, 9] {
            let r = run(&opts(n, 3, Some("one-proposer"))).report;
            assert!(r.passed(), "{r:?}");
            assert_eq!(r.costs[0].measured, 5.0 * (n as f64 - 1.0));
        }
    }

    #[test]
    fn duelling_proposers_livelock_but_stay_safe() {
        let r = run(&opts(5, 1, Some("duel"))).report;
        assert!(r.checks[0].held && r.checks[1].held && r.checks[2].held, "{r:?}");
        assert!(!r.checks[3].held, "a value was chosen: {r:?}");
        assert!(r.costs[1].measured > 50.0, "{r:?}");
    }

    #[test]
    fn ignoring_reported_acceptances_is_caught() {
        let broke = (1..=5).any(|seed| !run(&opts(5, seed, Some("no-adopt"))).report.checks[0].held);
        assert!(broke);
    }

    #[test]
    fn the_chosen_checker_counts_majorities_per_ballot() {
        let a = [((1, 0), 7)];
        let b = [((2, 1), 8)];
        assert_eq!(chosen(&[&a, &a, &b]), BTreeSet::from([7]));
        assert_eq!(chosen(&[&a, &b, &[]]), BTreeSet::new());
    }
}
