//! Multi-Paxos: a leader runs phase 1 once for every slot to come, then
//! chooses each command with one round trip; a new leader's phase 1
//! recovers what the old one may have chosen.

use std::collections::{BTreeMap, BTreeSet};

use synod_simnet::{ClockConfig, Ctx, NetConfig, ProcId, Process, Sim, Time, TimerId};

use crate::harness::{net_for, run_faulted_durable};
use crate::registry::{Algorithm, FaultModel};
use crate::report::{Check, Cost, LabOptions, LabReport, LabRun};

/// The registry entry.
pub const ALGORITHM: Algorithm = Algorithm {
    name: "multi-paxos",
    family: "consensus and election",
    summary: "Multi-Paxos: phase 1 once, then one round trip per command",
    description: "Multi-Paxos (Lamport 2001, \"Paxos made simple\" §3). Every process is an\n\
acceptor and a learner; P0 leads first. K commands become due one after another\n\
(every 40 ms).\n\
Phase 1, once per leadership: PREPARE(b) for every slot at once; each PROMISE\n\
carries the acceptor's accepted (ballot, command) per slot. The new leader\n\
re-proposes, slot by slot, the command of the highest ballot reported (a no-op in\n\
a gap), then proposes each due command not yet in the log in the next free slot.\n\
Phase 2, per command: ACCEPT(b, slot, cmd), ACCEPTED(b, slot); with a majority the\n\
command is chosen, forced to the leader's log, and announced in COMMIT(slot, cmd).\n\
Unanswered ACCEPTs are sent again. A command still not learned by process p\n\
p·300 ms after it fell due makes p run phase 1 with a higher ballot (the clients\n\
went elsewhere); a leader that meets a higher ballot steps down.\n\
Guarantee: per slot at most one command is chosen, and learners learn only it;\n\
every due command is chosen while some majority and leader stay up long enough.\n\
Cost with a stable leader: 2(N-1) for phase 1, then 3(N-1) per command (one round\n\
trip and the commit notice): 2(N-1) + 3K(N-1), against 5(N-1) per command when\n\
each runs single-decree Paxos from scratch.",
    variants: &[
        (
            "leader-crash",
            "P0 crashes after half the commands are chosen; P1 takes over with phase 1",
        ),
        (
            "no-adopt",
            "planted bug: after the same crash P1 fills reported slots with no-ops instead of their commands",
        ),
    ],
    default_nodes: 5,
    nodes: (3, 32),
    faults: FaultModel::EVERY,
    run,
};

/// A ballot: (round, leader).
pub type Ballot = (u64, ProcId);

/// A command: its number, or 0 for a no-op filling a gap.
pub type Cmd = u64;

/// Commands per run.
pub const K: u64 = 8;
const DUE_EVERY: Time = 40_000;
const TAKEOVER: Time = 300_000;
const RETRY_EVERY: Time = 60_000;
const FSYNC: Time = 1_000;

/// Multi-Paxos messages.
#[derive(Clone, Debug)]
pub enum MpMsg {
    /// Phase 1a for every slot.
    Prepare(Ballot),
    /// Phase 1b: the acceptor's accepted (ballot, command) per slot.
    Promise(Ballot, BTreeMap<u64, (Ballot, Cmd)>),
    /// Phase 2a.
    Accept(Ballot, u64, Cmd),
    /// Phase 2b.
    Accepted(Ballot, u64),
    /// A refusal, naming the higher promise.
    Nack(Ballot),
    /// A chosen command.
    Commit(u64, Cmd),
}

/// One replica.
#[derive(Clone, Debug)]
pub struct Replica {
    begin: Time,
    no_adopt: bool,
    // Stable storage.
    /// The highest ballot promised.
    pub promised: Ballot,
    /// Accepted (ballot, command) per slot.
    pub accepted: BTreeMap<u64, (Ballot, Cmd)>,
    /// Every acceptance, for the checker.
    pub history: Vec<(Ballot, u64, Cmd)>,
    /// The learned log.
    pub log: BTreeMap<u64, Cmd>,
    // Volatile leader state.
    leading: Option<Ballot>,
    preparing: Option<Ballot>,
    promises: BTreeMap<ProcId, BTreeMap<u64, (Ballot, Cmd)>>,
    proposals: BTreeMap<u64, (Cmd, BTreeSet<ProcId>)>,
    retry: Option<TimerId>,
    announced: BTreeSet<u64>,
    /// Phase 1s this replica ran.
    pub phase1s: u64,
}

const DUE: u64 = 0;
const CHECK: u64 = 1;
const RETRY: u64 = 2;
const FLUSH: u64 = 3;
const START: u64 = 4;

impl Replica {
    fn new(begin: Time, no_adopt: bool) -> Self {
        Replica {
            begin,
            no_adopt,
            promised: (0, 0),
            accepted: BTreeMap::new(),
            history: vec![],
            log: BTreeMap::new(),
            leading: None,
            preparing: None,
            promises: BTreeMap::new(),
            proposals: BTreeMap::new(),
            retry: None,
            announced: BTreeSet::new(),
            phase1s: 0,
        }
    }

    fn recover(&self) -> Self {
        Replica {
            promised: self.promised,
            accepted: self.accepted.clone(),
            history: self.history.clone(),
            log: self.log.clone(),
            phase1s: self.phase1s,
            ..Replica::new(self.begin, self.no_adopt)
        }
    }

    fn majority(n: usize) -> usize {
        n / 2 + 1
    }

    fn due(&self, now: Time) -> Vec<Cmd> {
        (1..=K)
            .filter(|k| self.begin + k * DUE_EVERY <= now)
            .collect()
    }

    fn accept_local(&mut self, b: Ballot, slot: u64, c: Cmd) -> bool {
        if b < self.promised {
            return false;
        }
        self.promised = b;
        self.accepted.insert(slot, (b, c));
        self.history.push((b, slot, c));
        true
    }

    fn campaign(&mut self, ctx: &mut Ctx<'_, MpMsg>) {
        let b = (self.promised.0 + 1, ctx.id());
        self.leading = None;
        self.phase1s += 1;
        ctx.mark(&format!("phase 1 ({}.{})", b.0, b.1));
        self.promised = b;
        self.preparing = Some(b);
        self.promises.clear();
        self.promises.insert(ctx.id(), self.accepted.clone());
        let me = ctx.id();
        for q in (0..ctx.n()).filter(|&q| q != me) {
            ctx.send(q, MpMsg::Prepare(b));
        }
        self.maybe_lead(ctx);
    }

    fn maybe_lead(&mut self, ctx: &mut Ctx<'_, MpMsg>) {
        let Some(b) = self.preparing else { return };
        if self.promises.len() < Self::majority(ctx.n()) {
            return;
        }
        self.preparing = None;
        self.leading = Some(b);
        self.proposals.clear();
        ctx.mark("leader");
        let mut best: BTreeMap<u64, (Ballot, Cmd)> = BTreeMap::new();
        for acc in self.promises.values() {
            for (&slot, &(ab, c)) in acc {
                if best.get(&slot).is_none_or(|&(bb, _)| ab > bb) {
                    best.insert(slot, (ab, c));
                }
            }
        }
        let top = best.keys().next_back().copied().unwrap_or(0);
        for slot in 1..=top {
            let c = match (self.log.get(&slot), best.get(&slot)) {
                (Some(&c), _) => c,
                (None, Some(_)) if self.no_adopt => 0,
                (None, Some(&(_, c))) => c,
                (None, None) => 0,
            };
            self.propose(ctx, slot, c);
        }
        self.propose_due(ctx);
    }

    fn next_slot(&self) -> u64 {
        let a = self.accepted.keys().next_back().copied().unwrap_or(0);
        let l = self.log.keys().next_back().copied().unwrap_or(0);
        let p = self.proposals.keys().next_back().copied().unwrap_or(0);
        a.max(l).max(p) + 1
    }

    fn propose_due(&mut self, ctx: &mut Ctx<'_, MpMsg>) {
        if self.leading.is_none() {
            return;
        }
        let mut known: BTreeSet<Cmd> = self.log.values().copied().collect();
        known.extend(self.proposals.values().map(|(c, _)| *c));
        known.extend(self.accepted.values().map(|&(_, c)| c));
        for c in self.due(ctx.now()) {
            if !known.contains(&c) {
                let slot = self.next_slot();
                self.propose(ctx, slot, c);
            }
        }
    }

    fn propose(&mut self, ctx: &mut Ctx<'_, MpMsg>, slot: u64, c: Cmd) {
        let Some(b) = self.leading else { return };
        let mut voters = BTreeSet::new();
        if self.accept_local(b, slot, c) {
            voters.insert(ctx.id());
        }
        self.proposals.insert(slot, (c, voters));
        let me = ctx.id();
        for q in (0..ctx.n()).filter(|&q| q != me) {
            ctx.send(q, MpMsg::Accept(b, slot, c));
        }
        if self.retry.is_none() {
            self.retry = Some(ctx.set_timer(RETRY_EVERY, RETRY));
        }
        self.maybe_chosen(ctx, slot);
    }

    fn maybe_chosen(&mut self, ctx: &mut Ctx<'_, MpMsg>, slot: u64) {
        let Some((c, voters)) = self.proposals.get(&slot) else {
            return;
        };
        if voters.len() < Self::majority(ctx.n()) || self.log.contains_key(&slot) {
            return;
        }
        let c = *c;
        self.log.insert(slot, c);
        ctx.mark(&format!("chosen {slot}={c}"));
        ctx.set_timer(FSYNC, FLUSH);
    }

    fn step_down(&mut self, higher: Ballot) {
        self.promised = self.promised.max(higher);
        self.leading = None;
        self.preparing = None;
    }
}

impl Process for Replica {
    type Msg = MpMsg;

    fn on_start(&mut self, ctx: &mut Ctx<'_, MpMsg>) {
        if ctx.id() == 0 && self.history.is_empty() {
            ctx.set_timer(self.begin, START);
        }
        for k in 1..=K {
            let at = self.begin + k * DUE_EVERY;
            let now = ctx.now();
            if at > now {
                ctx.set_timer(at - now, DUE);
            }
            let check = at + TAKEOVER * ctx.id() as Time;
            if ctx.id() > 0 && check > now {
                ctx.set_timer(check - now, CHECK + 10 * k);
            }
        }
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_, MpMsg>, tag: u64) {
        match tag {
            START => self.campaign(ctx),
            DUE => self.propose_due(ctx),
            RETRY => {
                self.retry = None;
                let Some(b) = self.leading else { return };
                let open: Vec<(u64, Cmd, BTreeSet<ProcId>)> = self
                    .proposals
                    .iter()
                    .filter(|(s, _)| !self.log.contains_key(s))
                    .map(|(s, (c, v))| (*s, *c, v.clone()))
                    .collect();
                for (slot, c, voters) in &open {
                    for q in (0..ctx.n()).filter(|q| !voters.contains(q)) {
                        ctx.send(q, MpMsg::Accept(b, *slot, *c));
                    }
                }
                if !open.is_empty() {
                    self.retry = Some(ctx.set_timer(RETRY_EVERY, RETRY));
                }
            }
            FLUSH => {
                // Announce every chosen command not yet announced: here, all
                // chosen since the last flush (followers ignore repeats).
                let me = ctx.id();
                let fresh: Vec<(u64, Cmd)> = self
                    .proposals
                    .iter()
                    .filter(|(s, _)| self.log.contains_key(s) && !self.announced.contains(s))
                    .map(|(s, (c, _))| (*s, *c))
                    .collect();
                for (slot, c) in fresh {
                    self.announced.insert(slot);
                    for q in (0..ctx.n()).filter(|&q| q != me) {
                        ctx.send(q, MpMsg::Commit(slot, c));
                    }
                }
            }
            t if t >= CHECK + 10 => {
                let k = (t - CHECK) / 10;
                let learned = self.log.values().any(|&c| c == k);
                if !learned && self.leading.is_none() && self.preparing.is_none() {
                    self.campaign(ctx);
                }
            }
            _ => {}
        }
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, MpMsg>, from: ProcId, msg: MpMsg) {
        match msg {
            MpMsg::Prepare(b) => {
                if b > self.promised {
                    self.step_down(b);
                    ctx.send(from, MpMsg::Promise(b, self.accepted.clone()));
                } else {
                    ctx.send(from, MpMsg::Nack(self.promised));
                }
            }
            MpMsg::Promise(b, acc) if self.preparing == Some(b) => {
                self.promises.insert(from, acc);
                self.maybe_lead(ctx);
            }
            MpMsg::Promise(..) => {}
            MpMsg::Accept(b, slot, c) => {
                if b > self.promised {
                    self.step_down(b);
                }
                if self.accept_local(b, slot, c) {
                    ctx.send(from, MpMsg::Accepted(b, slot));
                } else {
                    ctx.send(from, MpMsg::Nack(self.promised));
                }
            }
            MpMsg::Accepted(b, slot) if self.leading == Some(b) => {
                if let Some((_, voters)) = self.proposals.get_mut(&slot) {
                    voters.insert(from);
                }
                self.maybe_chosen(ctx, slot);
            }
            MpMsg::Accepted(..) => {}
            MpMsg::Nack(higher) => {
                if higher > self.promised || self.leading.is_some_and(|b| higher > b) {
                    ctx.mark("step down");
                    self.step_down(higher);
                }
            }
            MpMsg::Commit(slot, c) => {
                self.log.entry(slot).or_insert(c);
            }
        }
    }

    fn msg_bytes(msg: &MpMsg) -> usize {
        match msg {
            MpMsg::Promise(_, acc) => 16 + 24 * acc.len(),
            _ => 32,
        }
    }

    fn msg_label(msg: &MpMsg) -> String {
        match msg {
            MpMsg::Prepare(b) => format!("Prepare({}.{})", b.0, b.1),
            MpMsg::Promise(b, acc) => format!("Promise({}.{}, {} slots)", b.0, b.1, acc.len()),
            MpMsg::Accept(_, s, c) => format!("Accept({s}={c})"),
            MpMsg::Accepted(_, s) => format!("Accepted({s})"),
            MpMsg::Nack(b) => format!("Nack({}.{})", b.0, b.1),
            MpMsg::Commit(s, c) => format!("Commit({s}={c})"),
        }
    }
}

/// The command chosen in each slot: accepted by a majority in one ballot.
/// A slot with two chosen commands maps to both.
pub fn chosen(n: usize, histories: &[&[(Ballot, u64, Cmd)]]) -> BTreeMap<u64, BTreeSet<Cmd>> {
    let mut votes: BTreeMap<(u64, Ballot, Cmd), usize> = BTreeMap::new();
    for h in histories {
        let mine: BTreeSet<(u64, Ballot, Cmd)> = h.iter().map(|&(b, s, c)| (s, b, c)).collect();
        for key in mine {
            *votes.entry(key).or_default() += 1;
        }
    }
    let mut out: BTreeMap<u64, BTreeSet<Cmd>> = BTreeMap::new();
    for ((slot, _, c), count) in votes {
        if count > n / 2 {
            out.entry(slot).or_default().insert(c);
        }
    }
    out
}

fn run(opts: &LabOptions) -> LabRun {
    let n = opts.nodes;
    let no_adopt = opts.is_variant("no-adopt");
    let crash = no_adopt || opts.is_variant("leader-crash");
    let until: Time = 3_000_000;
    let begin = until / 10;
    let make = |_: ProcId| Replica::new(begin, no_adopt);
    let mut sim = Sim::new(
        opts.seed,
        (0..n).map(make).collect(),
        net_for(&opts.faults, NetConfig::reliable()),
        ClockConfig::perfect(),
    );
    if crash {
        // Crash P0 between choosing the (K/2)th command and announcing it.
        sim.run_while(until, |s| (s.proc(0).log.len() as u64) < K / 2);
        sim.crash(0);
        sim.run_until(until);
    } else {
        run_faulted_durable(&mut sim, opts, until, |crashed, _| crashed.recover());
    }
    let trace = sim.take_trace();
    let histories: Vec<&[(Ballot, u64, Cmd)]> =
        sim.procs().iter().map(|p| p.history.as_slice()).collect();
    let chosen = chosen(n, &histories);
    let mut report = LabReport::new(ALGORITHM.name, opts);
    let split: Vec<String> = chosen
        .iter()
        .filter(|(_, cs)| cs.len() > 1)
        .map(|(s, cs)| format!("slot {s}: {cs:?}"))
        .collect();
    report.checks.push(Check::new(
        "agreement: at most one command chosen per slot",
        split.is_empty(),
        if split.is_empty() {
            format!("{} slots chosen", chosen.len())
        } else {
            split.join("; ")
        },
    ));
    let mut wrong = vec![];
    for (p, r) in sim.procs().iter().enumerate() {
        for (slot, c) in &r.log {
            if !chosen.get(slot).is_some_and(|cs| cs.contains(c)) {
                wrong.push(format!("P{p} slot {slot}={c}"));
            }
        }
    }
    report.checks.push(Check::new(
        "learners learn only chosen commands",
        wrong.is_empty(),
        if wrong.is_empty() {
            "every learned slot holds its chosen command".to_string()
        } else {
            wrong.join(", ")
        },
    ));
    let all: BTreeSet<Cmd> = chosen.values().flatten().copied().collect();
    let missing: Vec<Cmd> = (1..=K).filter(|k| !all.contains(k)).collect();
    report.checks.push(Check::new(
        "liveness: every due command is chosen",
        missing.is_empty(),
        if missing.is_empty() {
            format!("{K} commands")
        } else {
            format!("missing {missing:?}")
        },
    ));
    let s = sim.stats();
    let nf = n as f64 - 1.0;
    let plain = !crash && opts.faults.is_empty();
    report.costs.push(Cost::new(
        "messages",
        s.sent as f64,
        "2(N-1) + 3K(N-1), K = 8 commands",
        plain.then_some(2.0 * nf + 3.0 * K as f64 * nf),
    ));
    report.costs.push(Cost::new(
        "messages per command after phase 1",
        (s.sent as f64 - 2.0 * nf) / K as f64,
        "3(N-1): one round trip and a commit (single-decree Paxos from scratch: 5(N-1))",
        plain.then_some(3.0 * nf),
    ));
    report.costs.push(Cost::new(
        "phase 1s",
        sim.procs().iter().map(|p| p.phase1s).sum::<u64>() as f64,
        "1 per leadership",
        plain.then_some(1.0),
    ));
    LabRun::new(report, trace)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::report::opts;

    #[test]
    fn a_stable_leader_needs_one_round_trip_per_command() {
        for seed in 0..4 {
            for n in [3, 5, 7] {
                let r = run(&opts(n, seed, None)).report;
                assert!(r.passed(), "{r:?}");
                let nf = n as f64 - 1.0;
                assert_eq!(r.costs[0].measured, 2.0 * nf + 3.0 * K as f64 * nf);
            }
        }
    }

    #[test]
    fn a_new_leader_recovers_the_log() {
        for seed in 0..4 {
            let r = run(&opts(5, seed, Some("leader-crash"))).report;
            assert!(r.passed(), "seed {seed}: {r:?}");
        }
    }

    #[test]
    fn ignoring_reported_commands_is_caught() {
        for seed in 0..4 {
            let r = run(&opts(5, seed, Some("no-adopt"))).report;
            assert!(!r.checks[0].held, "seed {seed}: {r:?}");
        }
    }

    #[test]
    fn the_checker_sees_two_commands_in_one_slot() {
        let a = [((1, 0), 1, 7)];
        let b = [((2, 1), 1, 8)];
        let c = chosen(3, &[&a, &a, &b]);
        assert_eq!(c[&1], BTreeSet::from([7]));
        let d = chosen(3, &[&a, &[((1, 0), 1, 7), ((2, 1), 1, 8)], &b]);
        assert_eq!(d[&1], BTreeSet::from([7, 8]));
    }
}
