//! Three-phase commit: a pre-commit round between the vote and the outcome
//! lets the survivors of a crash finish without the coordinator; a network
//! partition makes the two sides finish differently.

use std::collections::{BTreeMap, BTreeSet};

use synod_simnet::{ClockConfig, Ctx, Fault, NetConfig, ProcId, Process, Sim, Time, TimerId};

use crate::algos::commit_common::{
    atomic_checks, crash_coordinator, longest_wait, Final, Outcome, Vote,
};
use crate::harness::{net_for, run_faulted_durable};
use crate::registry::{Algorithm, FaultModel};
use crate::report::{Check, Cost, LabOptions, LabReport, LabRun};

/// The registry entry.
pub const ALGORITHM: Algorithm = Algorithm {
    name: "three-phase-commit",
    family: "transactions",
    summary: "3PC: vote, pre-commit, commit; survives crashes, splits under a partition",
    description: "Three-phase commit (Skeen 1981). P0 coordinates; P1..P(N-1) participate.\n\
States: INIT, UNCERTAIN (voted yes), PREPARED (pre-committed), COMMITTED, ABORTED.\n\
Phase 1: CANCOMMIT, votes. Phase 2: with every vote YES the coordinator sends\n\
PRECOMMIT, each participant becomes PREPARED and ACKs; a NO or a vote timeout\n\
aborts. Phase 3: with every ACK (or on an ACK timeout: the silent ones crashed)\n\
the coordinator sends DOCOMMIT and collects HAVECOMMITTED.\n\
Termination without the coordinator (synchronous links, crashes only): a\n\
participant that hears nothing for T waits rank·W more (rank = its id), then acts\n\
as backup coordinator unless a lower one asked first: it gathers every reachable\n\
state for G; any COMMITTED → commit; any ABORTED → abort; any PREPARED → send\n\
PRECOMMIT to the uncertain ones, then commit; all UNCERTAIN → abort. No state is\n\
both next to COMMITTED and to ABORTED, which is why nobody blocks.\n\
Guarantee, crashes only: AC1, AC2 and termination for the survivors without\n\
waiting for the coordinator. Outside the model: a partition after some\n\
participants pre-committed lets that side commit while the other, all UNCERTAIN,\n\
aborts (AC1 fails).\n\
Cost: 6(N-1) messages without failures (three round trips).",
    variants: &[
        (
            "coordinator-crash",
            "the coordinator crashes once it has sent PRECOMMIT and stays down for most of the run",
        ),
        (
            "partition",
            "the network splits right after the first participant pre-commits: AC1 fails",
        ),
    ],
    default_nodes: 4,
    nodes: (2, 16),
    faults: FaultModel {
        tolerates: &[Fault::Duplicate, Fault::Crash, Fault::Skew],
        outside: &[],
        refused: "3PC assumes synchronous, reliable links (a timeout is a crash); \
                  `--variant partition` cuts the network where it splits the outcome, \
                  which a random partition rarely meets in one transaction",
    },
    run,
};

/// A process's commit state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Not voted (the coordinator: not all votes in).
    Init,
    /// Voted yes, not pre-committed.
    Uncertain,
    /// Pre-committed.
    Prepared,
    /// Committed.
    Committed,
    /// Aborted.
    Aborted,
}

/// 3PC messages.
#[derive(Clone, Debug)]
pub enum TpcMsg {
    /// Phase 1: vote, please.
    CanCommit,
    /// A vote.
    Voted(Vote),
    /// Phase 2: everyone voted yes.
    PreCommit,
    /// Pre-committed.
    PreAck,
    /// Phase 3: commit.
    DoCommit,
    /// Abort.
    Abort,
    /// The outcome is recorded.
    HaveCommitted,
    /// A backup coordinator asks for states.
    StateReq,
    /// A state.
    StateRep(State),
}

/// Coordinator (P0) or participant.
#[derive(Clone, Debug)]
pub struct Node {
    begin: Time,
    /// The state (stable storage).
    pub state: State,
    /// The vote (stable storage).
    pub vote: Option<Vote>,
    votes: BTreeMap<ProcId, Vote>,
    acks: BTreeSet<ProcId>,
    done: BTreeSet<ProcId>,
    backup: bool,
    gathered: BTreeMap<ProcId, State>,
    watchdog: Option<TimerId>,
    /// When it voted yes and when it reached an outcome (local µs).
    pub voted_at: Option<Time>,
    /// When it reached an outcome.
    pub decided_at: Option<Time>,
}

const START: u64 = 0;
const WATCHDOG: u64 = 1;
const TERMINATE: u64 = 2;
const GATHERED: u64 = 3;
const PRE_ACKED: u64 = 4;
const RESEND: u64 = 5;
/// Silence after which a process suspects the coordinator.
const T: Time = 300_000;
/// How long a backup gathers states or pre-commit acks.
const G: Time = 60_000;
/// Rank spacing between backups.
const W: Time = 3 * G;

impl Node {
    fn new(begin: Time) -> Self {
        Node {
            begin,
            state: State::Init,
            vote: None,
            votes: BTreeMap::new(),
            acks: BTreeSet::new(),
            done: BTreeSet::new(),
            backup: false,
            gathered: BTreeMap::new(),
            watchdog: None,
            voted_at: None,
            decided_at: None,
        }
    }

    fn recover(&self) -> Self {
        Node {
            state: self.state,
            vote: self.vote,
            voted_at: self.voted_at,
            decided_at: self.decided_at,
            ..Node::new(0)
        }
    }

    fn decided(&self) -> bool {
        matches!(self.state, State::Committed | State::Aborted)
    }

    fn others(ctx: &Ctx<'_, TpcMsg>) -> Vec<ProcId> {
        let me = ctx.id();
        (0..ctx.n()).filter(|&q| q != me).collect()
    }

    /// (Re)starts the wait for the coordinator or a backup.
    fn watch(&mut self, ctx: &mut Ctx<'_, TpcMsg>) {
        if let Some(t) = self.watchdog.take() {
            ctx.cancel_timer(t);
        }
        if !self.decided() {
            self.watchdog = Some(ctx.set_timer(T, WATCHDOG));
        }
    }

    fn finish(&mut self, ctx: &mut Ctx<'_, TpcMsg>, o: Outcome) {
        if self.decided() {
            return;
        }
        self.state = match o {
            Outcome::Commit => State::Committed,
            Outcome::Abort => State::Aborted,
        };
        self.decided_at = Some(ctx.now());
        ctx.mark(&format!("{o:?}"));
        if let Some(t) = self.watchdog.take() {
            ctx.cancel_timer(t);
        }
    }

    /// Decides `o` and tells everyone until they confirm (coordinator or backup).
    fn announce(&mut self, ctx: &mut Ctx<'_, TpcMsg>, o: Outcome) {
        self.finish(ctx, o);
        self.resend(ctx);
    }

    fn resend(&mut self, ctx: &mut Ctx<'_, TpcMsg>) {
        let msg = match self.state {
            State::Committed => TpcMsg::DoCommit,
            State::Aborted => TpcMsg::Abort,
            _ => return,
        };
        let pending: Vec<ProcId> = Self::others(ctx)
            .into_iter()
            .filter(|q| !self.done.contains(q))
            .collect();
        for &q in &pending {
            ctx.send(q, msg.clone());
        }
        if !pending.is_empty() {
            ctx.set_timer(T, RESEND);
        }
    }

    fn precommit(&mut self) {
        if matches!(self.state, State::Init | State::Uncertain) {
            self.state = State::Prepared;
        }
    }

    fn start_backup(&mut self, ctx: &mut Ctx<'_, TpcMsg>) {
        if self.decided() {
            return;
        }
        self.backup = true;
        self.gathered.clear();
        ctx.mark("backup: gather states");
        for q in Self::others(ctx) {
            ctx.send(q, TpcMsg::StateReq);
        }
        ctx.set_timer(G, GATHERED);
    }

    fn gathered(&mut self, ctx: &mut Ctx<'_, TpcMsg>) {
        if self.decided() || !self.backup {
            return;
        }
        let mut states: Vec<State> = self.gathered.values().copied().collect();
        states.push(self.state);
        if states.contains(&State::Committed) {
            self.announce(ctx, Outcome::Commit);
        } else if states.contains(&State::Aborted) || !states.contains(&State::Prepared) {
            self.announce(ctx, Outcome::Abort);
        } else {
            self.precommit();
            let uncertain: Vec<ProcId> = self
                .gathered
                .iter()
                .filter(|(_, s)| matches!(s, State::Uncertain | State::Init))
                .map(|(q, _)| *q)
                .collect();
            ctx.mark("backup: pre-commit the rest");
            for q in uncertain {
                ctx.send(q, TpcMsg::PreCommit);
            }
            ctx.set_timer(G, PRE_ACKED);
        }
    }
}

impl Process for Node {
    type Msg = TpcMsg;

    fn on_start(&mut self, ctx: &mut Ctx<'_, TpcMsg>) {
        if self.decided() {
            self.resend(ctx);
        } else if self.begin > 0 && ctx.id() == 0 {
            ctx.set_timer(self.begin, START);
        } else if self.begin == 0 {
            // Recovered undecided: find out, or finish as a backup.
            ctx.set_timer(G, TERMINATE);
        }
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_, TpcMsg>, tag: u64) {
        match tag {
            START => {
                ctx.mark("begin");
                for q in Self::others(ctx) {
                    ctx.send(q, TpcMsg::CanCommit);
                }
                self.watch(ctx);
            }
            WATCHDOG if !self.decided() => {
                self.watchdog = None;
                if ctx.id() == 0 && self.state == State::Init {
                    ctx.mark("vote timeout");
                    self.announce(ctx, Outcome::Abort);
                } else if ctx.id() == 0 && self.state == State::Prepared {
                    ctx.mark("ack timeout");
                    self.announce(ctx, Outcome::Commit);
                } else {
                    ctx.set_timer(ctx.id() as Time * W, TERMINATE);
                }
            }
            TERMINATE if !self.decided() && self.watchdog.is_none() => self.start_backup(ctx),
            GATHERED => self.gathered(ctx),
            PRE_ACKED if self.backup => self.announce(ctx, Outcome::Commit),
            RESEND => self.resend(ctx),
            _ => {}
        }
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, TpcMsg>, from: ProcId, msg: TpcMsg) {
        match msg {
            TpcMsg::CanCommit => {
                if self.state == State::Init {
                    self.state = State::Uncertain;
                    self.vote = Some(Vote::Yes);
                    self.voted_at = Some(ctx.now());
                    self.watch(ctx);
                }
                if let Some(v) = self.vote {
                    ctx.send(from, TpcMsg::Voted(v));
                }
            }
            TpcMsg::Voted(v) => {
                self.votes.insert(from, v);
                if v == Vote::No {
                    self.announce(ctx, Outcome::Abort);
                } else if self.votes.len() == ctx.n() - 1 && self.state == State::Init {
                    self.state = State::Prepared;
                    ctx.mark("all yes");
                    for q in Self::others(ctx) {
                        ctx.send(q, TpcMsg::PreCommit);
                    }
                    self.watch(ctx);
                }
            }
            TpcMsg::PreCommit => {
                if !self.decided() {
                    self.precommit();
                    self.watch(ctx);
                }
                if self.state != State::Aborted {
                    ctx.send(from, TpcMsg::PreAck);
                }
            }
            TpcMsg::PreAck => {
                self.acks.insert(from);
                if ctx.id() == 0 && !self.backup && self.acks.len() == ctx.n() - 1 {
                    self.announce(ctx, Outcome::Commit);
                }
            }
            TpcMsg::DoCommit | TpcMsg::Abort => {
                let o = if matches!(msg, TpcMsg::DoCommit) {
                    Outcome::Commit
                } else {
                    Outcome::Abort
                };
                self.finish(ctx, o);
                ctx.send(from, TpcMsg::HaveCommitted);
            }
            TpcMsg::HaveCommitted => {
                self.done.insert(from);
            }
            TpcMsg::StateReq => {
                if self.state == State::Init {
                    // Never promised anything: free to abort.
                    self.finish(ctx, Outcome::Abort);
                }
                if from < ctx.id() || !self.backup {
                    // Defer to the lower backup; take over if it goes quiet.
                    self.backup = false;
                    self.watch(ctx);
                }
                ctx.send(from, TpcMsg::StateRep(self.state));
            }
            TpcMsg::StateRep(s) => {
                self.gathered.insert(from, s);
            }
        }
    }

    fn msg_bytes(_msg: &TpcMsg) -> usize {
        16
    }

    fn msg_label(msg: &TpcMsg) -> String {
        match msg {
            TpcMsg::Voted(v) => format!("Vote{v:?}"),
            TpcMsg::StateRep(s) => format!("StateRep({s:?})"),
            other => format!("{other:?}"),
        }
    }
}

fn run(opts: &LabOptions) -> LabRun {
    let n = opts.nodes;
    let until: Time = 5_000_000;
    let begin = until / 10 + 10_000;
    let make = |_: ProcId| Node::new(begin);
    let mut sim = Sim::new(
        opts.seed,
        (0..n).map(make).collect(),
        net_for(&opts.faults, NetConfig::reliable()),
        ClockConfig::perfect(),
    );
    let crash = opts.is_variant("coordinator-crash");
    let split = opts.is_variant("partition");
    let mut cut = None;
    if crash {
        crash_coordinator(
            &mut sim,
            until,
            |s| s.proc(0).state != State::Prepared,
            |_| until * 8 / 10,
            Node::recover,
        );
    } else if split {
        sim.run_while(until, |s| {
            !(1..s.len()).any(|p| s.proc(p).state == State::Prepared)
        });
        let first = (1..n).find(|&p| sim.proc(p).state == State::Prepared);
        if let Some(p) = first {
            sim.partition(&[vec![0, p]]);
            cut = Some(p);
        }
        sim.run_until(until * 8 / 10);
        sim.heal();
        sim.run_until(until);
    } else {
        run_faulted_durable(&mut sim, opts, until, |crashed, _| crashed.recover());
    }
    let trace = sim.take_trace();
    let finals: Vec<Final> = sim
        .procs()
        .iter()
        .enumerate()
        .map(|(p, s)| Final {
            vote: if p == 0 { None } else { s.vote },
            outcome: match s.state {
                State::Committed => Some(Outcome::Commit),
                State::Aborted => Some(Outcome::Abort),
                _ => None,
            },
        })
        .collect();
    let mut report = LabReport::new(ALGORITHM.name, opts);
    report.checks.extend(atomic_checks(&finals));
    let blocked = longest_wait((1..n).map(|p| (sim.proc(p).voted_at, sim.proc(p).decided_at)));
    let coord_back = until * 8 / 10;
    report.checks.push(Check::new(
        "participants finish without waiting for the coordinator",
        !crash || (1..n).all(|p| sim.proc(p).decided_at.is_some_and(|t| t < coord_back)),
        match (crash, cut) {
            (true, _) => format!(
                "coordinator down from PRECOMMIT until {} ms; longest wait {} ms",
                coord_back / 1_000,
                blocked / 1_000
            ),
            (_, Some(p)) => format!("partition {{P0, P{p}}} | the rest after P{p} pre-committed"),
            _ => format!("longest wait {} ms", blocked / 1_000),
        },
    ));
    let s = sim.stats();
    let plain = !crash && !split && opts.faults.is_empty();
    report.costs.push(Cost::new(
        "messages",
        s.sent as f64,
        "6(N-1): three round trips",
        plain.then_some(6.0 * (n as f64 - 1.0)),
    ));
    let wait = Cost::new(
        "longest wait, yes vote to outcome (ms)",
        blocked as f64 / 1_000.0,
        "4 hops without failures (≤ 40 ms); after a crash T + rank·W + G + G, not the downtime",
        None,
    );
    report.costs.push(if plain {
        wait.at_most(40.0)
    } else if crash {
        wait.at_most(((T + (n as Time - 1) * W + 2 * G + 40_000) / 1_000) as f64)
    } else {
        wait
    });
    LabRun::new(report, trace)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::report::opts;

    #[test]
    fn commits_with_six_n_minus_one_messages() {
        for seed in 0..5 {
            for n in [2, 4, 6] {
                let r = run(&opts(n, seed, None)).report;
                assert!(r.passed(), "{r:?}");
                assert_eq!(r.costs[0].measured, 6.0 * (n as f64 - 1.0));
            }
        }
    }

    #[test]
    fn survivors_finish_while_the_coordinator_is_down() {
        for seed in 0..5 {
            let r = run(&opts(4, seed, Some("coordinator-crash"))).report;
            assert!(r.passed(), "seed {seed}: {r:?}");
            assert!(r.checks[0].detail.contains("Commit"), "{r:?}");
        }
    }

    #[test]
    fn a_partition_splits_the_outcome() {
        for seed in 0..5 {
            let r = run(&opts(4, seed, Some("partition"))).report;
            assert!(!r.checks[0].held, "seed {seed}: {r:?}");
        }
    }
}
