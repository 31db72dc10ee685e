//! Two-phase commit: a coordinator asks every participant to vote, then
//! tells them all the outcome; a participant that voted yes is blocked
//! while the coordinator is down.

use std::collections::{BTreeMap, BTreeSet};

use synod_simnet::{ClockConfig, Ctx, NetConfig, ProcId, Process, Sim, Time};

use crate::algos::commit_common::{
    atomic_checks, crash_coordinator, longest_wait, Final, Outcome, Vote,
};
use crate::harness::{net_for, run_faulted_durable};
use crate::registry::{Algorithm, FaultModel};
use crate::report::{Check, Cost, LabOptions, LabReport, LabRun};

/// The registry entry.
pub const ALGORITHM: Algorithm = Algorithm {
    name: "two-phase-commit",
    family: "transactions",
    summary: "2PC: vote, then outcome; yes-voters block while the coordinator is down",
    description: "Two-phase commit (Gray 1978). P0 coordinates; P1..P(N-1) participate.\n\
Phase 1: the coordinator sends PREPARE; a participant votes YES (forcing a prepared\n\
record to its log: from now on it must obey) or NO (aborting at once).\n\
Phase 2: with every vote YES the coordinator forces COMMIT to its log, else (a NO\n\
or a vote timeout) ABORT, then sends the outcome until each participant ACKs.\n\
Recovery: a coordinator without an outcome in its log aborts (presumed abort) and\n\
one with an outcome sends it again; a participant keeps its vote and outcome.\n\
A yes-voter with no outcome is uncertain: it may neither commit nor abort on its\n\
own. It asks the coordinator and its peers (cooperative termination): a peer that\n\
knows the outcome tells it, a peer that has not voted aborts and says so, and if\n\
all the peers it reaches voted yes too it stays blocked until the coordinator is\n\
back. Guarantee: AC1 one outcome for all; AC2 commit only if all voted yes;\n\
termination once failures are repaired (not during them: 2PC blocks).\n\
Cost: 4(N-1) messages (PREPARE, vote, outcome, ACK); 2 forced log writes per\n\
participant, 1 at the coordinator.",
    variants: &[
        (
            "no-vote",
            "the last participant votes NO: everyone aborts",
        ),
        (
            "coordinator-crash",
            "the coordinator crashes after logging COMMIT, before sending it, for 400 ms: the blocking window",
        ),
        (
            "timeout-abort",
            "planted bug: an uncertain participant aborts on a timeout (same crash as coordinator-crash)",
        ),
    ],
    default_nodes: 4,
    nodes: (2, 32),
    faults: FaultModel::EVERY,
    run,
};

/// 2PC messages.
#[derive(Clone, Debug)]
pub enum TpcMsg {
    /// Phase 1: vote, please.
    Prepare,
    /// A participant's vote.
    Voted(Vote),
    /// The outcome.
    Decision(Outcome),
    /// The outcome is recorded.
    Ack,
    /// An uncertain participant asks for the outcome.
    Query,
    /// The answer of a process that does not know it either.
    Uncertain,
}

/// Coordinator (P0) or participant.
#[derive(Clone, Debug)]
pub struct TpcProc {
    vote_no: bool,
    timeout_abort: bool,
    begin: Time,
    // Stable storage.
    /// The vote, once forced to the log.
    pub vote: Option<Vote>,
    /// The outcome, once forced to the log.
    pub outcome: Option<Outcome>,
    // Volatile.
    votes: BTreeMap<ProcId, Vote>,
    acked: BTreeSet<ProcId>,
    /// When this participant voted yes (local µs).
    pub voted_at: Option<Time>,
    /// When it learned the outcome (local µs).
    pub decided_at: Option<Time>,
    /// UNCERTAIN answers this participant received while blocked.
    pub uncertain_answers: u32,
}

const START: u64 = 0;
const VOTE_TIMEOUT: u64 = 1;
const FLUSH: u64 = 2;
const RESEND: u64 = 3;
const ASK: u64 = 4;
/// A forced log write.
const FSYNC: Time = 1_000;
const WAIT: Time = 100_000;
/// How long the coordinator stays down in the crash variants.
pub const DOWN: Time = 400_000;

impl TpcProc {
    fn new(vote_no: bool, timeout_abort: bool, begin: Time) -> Self {
        TpcProc {
            vote_no,
            timeout_abort,
            begin,
            vote: None,
            outcome: None,
            votes: BTreeMap::new(),
            acked: BTreeSet::new(),
            voted_at: None,
            decided_at: None,
            uncertain_answers: 0,
        }
    }

    /// The process after a crash: its log survives, nothing else.
    fn recover(&self) -> Self {
        TpcProc {
            vote: self.vote,
            outcome: self.outcome,
            voted_at: self.voted_at,
            decided_at: self.decided_at,
            uncertain_answers: self.uncertain_answers,
            ..TpcProc::new(self.vote_no, self.timeout_abort, 0)
        }
    }

    fn decide(&mut self, ctx: &mut Ctx<'_, TpcMsg>, o: Outcome) {
        if self.outcome.is_some() {
            return;
        }
        self.outcome = Some(o);
        self.decided_at = Some(ctx.now());
        ctx.mark(&format!("{o:?}"));
        if ctx.id() == 0 {
            ctx.set_timer(FSYNC, FLUSH);
        }
    }

    fn send_outcome(&mut self, ctx: &mut Ctx<'_, TpcMsg>) {
        let Some(o) = self.outcome else { return };
        let pending: Vec<ProcId> = (1..ctx.n()).filter(|q| !self.acked.contains(q)).collect();
        for &q in &pending {
            ctx.send(q, TpcMsg::Decision(o));
        }
        if !pending.is_empty() {
            ctx.set_timer(WAIT, RESEND);
        }
    }
}

impl Process for TpcProc {
    type Msg = TpcMsg;

    fn on_start(&mut self, ctx: &mut Ctx<'_, TpcMsg>) {
        if ctx.id() == 0 {
            match self.outcome {
                Some(_) => {
                    ctx.set_timer(FSYNC, FLUSH);
                }
                None if self.begin == 0 => {
                    ctx.mark("recovered: presumed abort");
                    self.decide(ctx, Outcome::Abort);
                }
                None => {
                    ctx.set_timer(self.begin, START);
                }
            }
        } else if self.vote == Some(Vote::Yes) && self.outcome.is_none() {
            ctx.set_timer(FSYNC, ASK);
        }
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_, TpcMsg>, tag: u64) {
        match tag {
            START => {
                ctx.mark("begin");
                for q in 1..ctx.n() {
                    ctx.send(q, TpcMsg::Prepare);
                }
                ctx.set_timer(WAIT, VOTE_TIMEOUT);
            }
            VOTE_TIMEOUT => self.decide(ctx, Outcome::Abort),
            FLUSH | RESEND => self.send_outcome(ctx),
            ASK if self.outcome.is_none() => {
                if self.timeout_abort {
                    ctx.mark("gives up waiting");
                    self.decide(ctx, Outcome::Abort);
                    return;
                }
                ctx.mark("blocked: ask");
                let me = ctx.id();
                for q in (0..ctx.n()).filter(|&q| q != me) {
                    ctx.send(q, TpcMsg::Query);
                }
                ctx.set_timer(WAIT, ASK);
            }
            _ => {}
        }
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, TpcMsg>, from: ProcId, msg: TpcMsg) {
        match msg {
            TpcMsg::Prepare => {
                let v = *self.vote.get_or_insert(if self.vote_no {
                    Vote::No
                } else {
                    Vote::Yes
                });
                match v {
                    Vote::No => self.decide(ctx, Outcome::Abort),
                    Vote::Yes if self.voted_at.is_none() => {
                        self.voted_at = Some(ctx.now());
                        ctx.set_timer(WAIT, ASK);
                    }
                    Vote::Yes => {}
                }
                ctx.send(from, TpcMsg::Voted(v));
            }
            TpcMsg::Voted(v) => {
                self.votes.insert(from, v);
                if v == Vote::No {
                    self.decide(ctx, Outcome::Abort);
                } else if self.votes.len() == ctx.n() - 1 {
                    self.decide(ctx, Outcome::Commit);
                }
            }
            TpcMsg::Decision(o) => {
                self.decide(ctx, o);
                if from == 0 {
                    ctx.send(from, TpcMsg::Ack);
                }
            }
            TpcMsg::Ack => {
                self.acked.insert(from);
            }
            TpcMsg::Query => {
                if self.outcome.is_none() && (ctx.id() == 0 || self.vote.is_none()) {
                    // Never promised to commit: free to abort.
                    self.vote.get_or_insert(Vote::No);
                    self.decide(ctx, Outcome::Abort);
                }
                let reply = match self.outcome {
                    Some(o) => TpcMsg::Decision(o),
                    None => TpcMsg::Uncertain,
                };
                ctx.send(from, reply);
            }
            TpcMsg::Uncertain => self.uncertain_answers += 1,
        }
    }

    fn msg_bytes(_msg: &TpcMsg) -> usize {
        16
    }

    fn msg_label(msg: &TpcMsg) -> String {
        match msg {
            TpcMsg::Prepare => "Prepare".into(),
            TpcMsg::Voted(v) => format!("Vote{v:?}"),
            TpcMsg::Decision(o) => format!("{o:?}"),
            TpcMsg::Ack => "Ack".into(),
            TpcMsg::Query => "Query".into(),
            TpcMsg::Uncertain => "Uncertain".into(),
        }
    }
}

fn run(opts: &LabOptions) -> LabRun {
    let n = opts.nodes;
    let crash = opts.is_variant("coordinator-crash") || opts.is_variant("timeout-abort");
    let timeout_abort = opts.is_variant("timeout-abort");
    let no_vote = opts.is_variant("no-vote");
    let until: Time = 2_000_000;
    let begin = until / 10 + 10_000;
    let make = |p: ProcId| TpcProc::new(no_vote && p == n - 1, timeout_abort, begin);
    let mut sim = Sim::new(
        opts.seed,
        (0..n).map(make).collect(),
        net_for(&opts.faults, NetConfig::reliable()),
        ClockConfig::perfect(),
    );
    if crash {
        // The scripted crash replaces the fault schedule; message faults stay.
        crash_coordinator(
            &mut sim,
            until,
            |s| s.proc(0).outcome.is_none(),
            |now| now + DOWN,
            TpcProc::recover,
        );
    } else {
        run_faulted_durable(&mut sim, opts, until, |crashed, _| crashed.recover());
    }
    let trace = sim.take_trace();
    let finals: Vec<Final> = sim
        .procs()
        .iter()
        .map(|p| Final {
            vote: p.vote,
            outcome: p.outcome,
        })
        .collect();
    let mut report = LabReport::new(ALGORITHM.name, opts);
    report.checks.extend(atomic_checks(&finals));
    let blocked = longest_wait((1..n).map(|p| (sim.proc(p).voted_at, sim.proc(p).decided_at)));
    let asked: u32 = sim.procs().iter().map(|p| p.uncertain_answers).sum();
    report.checks.push(Check::new(
        "blocking window measured (yes vote to outcome)",
        true,
        format!(
            "longest {} ms; {asked} UNCERTAIN answers to blocked participants",
            blocked / 1_000
        ),
    ));
    let s = sim.stats();
    let plain = !crash && opts.faults.is_empty();
    report.costs.push(Cost::new(
        "messages",
        s.sent as f64,
        "4(N-1): PREPARE, vote, outcome, ACK",
        plain.then_some(4.0 * (n as f64 - 1.0)),
    ));
    let window = Cost::new(
        "longest blocking window (ms)",
        blocked as f64 / 1_000.0,
        "2 hops and a forced write without failures (≤ 21 ms here); the coordinator's downtime (400 ms) after a crash",
        None,
    );
    report.costs.push(if crash {
        window.at_least(DOWN as f64 / 1_000.0)
    } else if plain {
        window.at_most(21.0)
    } else {
        window
    });
    LabRun::new(report, trace)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::report::opts;

    #[test]
    fn commits_with_four_n_minus_one_messages() {
        for seed in 0..5 {
            for n in [2, 4, 7] {
                let r = run(&opts(n, seed, None)).report;
                assert!(r.passed(), "{r:?}");
                assert_eq!(r.costs[0].measured, 4.0 * (n as f64 - 1.0));
                assert!(r.checks[0].detail.contains("Commit"), "{r:?}");
            }
        }
    }

    #[test]
    fn a_no_vote_aborts_everyone() {
        let r = run(&opts(5, 1, Some("no-vote"))).report;
        assert!(r.passed(), "{r:?}");
        assert!(!r.checks[0].detail.contains("Commit"), "{r:?}");
    }

    #[test]
    fn participants_block_while_the_coordinator_is_down() {
        let r = run(&opts(4, 1, Some("coordinator-crash"))).report;
        assert!(r.passed(), "{r:?}");
        assert!(r.costs[1].measured >= DOWN as f64 / 1_000.0, "{r:?}");
        assert!(r.checks[0].detail.contains("Commit"), "{r:?}");
    }

    #[test]
    fn aborting_on_a_timeout_is_caught() {
        let r = run(&opts(4, 1, Some("timeout-abort"))).report;
        assert!(!r.checks[0].held, "{r:?}");
    }
}
