//! Raft (Ongaro & Ousterhout 2014), the database's own: `synod-raft`'s
//! sans-IO state machine driven on the lab's engine, so its elections,
//! replication and a partitioned leader can be drawn and checked.
//!
//! Each lab process owns one `synod_raft::Raft` and is its driver, as the
//! database's drivers are: a timer ticks it, a delivery steps it, and every
//! `Ready` is persisted (here: kept in the process as its stable storage),
//! then its messages are sent, then its committed entries applied.

use std::collections::{BTreeMap, BTreeSet};

use synod_raft::{Config, Entry, HardState, Init, Message, MessageBody, Raft, Role};
use synod_simnet::{ClockConfig, Ctx, NetConfig, ProcId, Process, Sim, Time, MILLIS};

use crate::harness::{net_for, run_faulted_durable};
use crate::registry::{Algorithm, FaultModel};
use crate::report::{Check, Cost, LabOptions, LabReport, LabRun};

/// The registry entry.
pub const ALGORITHM: Algorithm = Algorithm {
    name: "raft",
    family: "consensus and election",
    summary: "the database's own raft crate: elections, replication, a partitioned leader",
    description: "Raft (Ongaro & Ousterhout 2014), as synod runs it: crates/raft, a pure state\n\
machine (tick, step, propose; a Ready to persist, send and apply) driven on the lab's\n\
engine. A tick every 10 ms; election timeout 10-20 ticks, heartbeats every 3, with\n\
pre-vote and check-quorum. Whoever leads proposes one entry every 60 ms.\n\
The run: an election; replication; at 500 ms the leader is cut off from everyone\n\
(the entries it still takes are never committed), the majority elects a new leader\n\
and goes on; at 1 100 ms the partition heals and the old leader, now a follower,\n\
has its uncommitted suffix overwritten.\n\
Checks (Raft §5.2-5.4, figure 3): election safety (at most one leader per term),\n\
log matching (two logs with an entry of the same index and term agree on every\n\
entry up to it), leader completeness (an entry applied anywhere before a leader's\n\
election is in that leader's log), state machine safety (no two members apply\n\
different entries at one index).\n\
Planted bug: `planted-apply-uncommitted` (the driver applies entries as soon as\n\
they are in its log, before they commit).\n\
Cost: one leader per leader change (2 in this run); a pre-vote and a vote round cost\n\
4(N-1) messages per uncontested election (at least 8(N-1) for two); replication\n\
costs 2(N-1) messages per entry, and etcd's Raft, which synod's follows, sends\n\
another append round to carry the new commit index: about 4(N-1) per entry.",
    variants: &[
        (
            "planted-apply-uncommitted",
            "planted bug: the driver applies entries before they commit",
        ),
    ],
    default_nodes: 5,
    nodes: (3, 9),
    faults: FaultModel::EVERY,
    run,
};

const TICK: Time = 10 * MILLIS;
const PROPOSE_EVERY: Time = 60 * MILLIS;
const T_TICK: u64 = 0;
const T_PROPOSE: u64 = 1;

/// One member: a `synod_raft::Raft` and what its driver keeps.
#[derive(Clone, Debug)]
pub struct Member {
    raft: Raft,
    cfg: Config,
    /// Stable storage: the hard state and the log, as the Readys said.
    hard: HardState,
    log: Vec<Entry>,
    apply_uncommitted: bool,
    proposed: u32,
    /// Entries applied, in order: (index, term, data).
    pub applied: Vec<(u64, u64, Vec<u8>)>,
    /// (term, log as (index, term) pairs) at each moment this member became leader.
    pub elected: Vec<(u64, Vec<(u64, u64)>)>,
    last_role: Role,
}

impl Member {
    fn new(id: u64, n: usize, seed: u64, apply_uncommitted: bool) -> Self {
        let cfg = Config {
            id,
            election_tick: 10,
            heartbeat_tick: 3,
            seed: seed.wrapping_mul(1_000_003).wrapping_add(id),
            ..Config::default()
        };
        let voters: Vec<u64> = (1..=n as u64).collect();
        let raft = Raft::new(
            cfg.clone(),
            Init::Bootstrap {
                voters,
                learners: vec![],
            },
        )
        .expect("a valid configuration");
        Member {
            raft,
            cfg,
            hard: HardState::default(),
            log: vec![],
            apply_uncommitted,
            proposed: 0,
            applied: vec![],
            elected: vec![],
            last_role: Role::Follower,
        }
    }

    /// The member after a crash: what it persisted, nothing else.
    fn restarted(&self) -> Self {
        let cfg = Config {
            applied: self.applied.last().map_or(0, |a| a.0).min(self.hard.commit),
            ..self.cfg.clone()
        };
        let raft = Raft::new(
            cfg,
            Init::Restore {
                hard_state: self.hard,
                snapshot: None,
                entries: self.log.clone(),
            },
        )
        .expect("a restart from what was persisted");
        Member {
            raft,
            last_role: Role::Follower,
            ..self.clone()
        }
    }

    fn log_terms(&self) -> Vec<(u64, u64)> {
        (self.raft.first_index()..=self.raft.last_index())
            .filter_map(|i| self.raft.term_at(i).map(|t| (i, t)))
            .collect()
    }

    fn apply(&mut self, e: &Entry) {
        if !self.applied.iter().any(|a| a.0 == e.index) {
            self.applied.push((e.index, e.term, e.data.clone()));
        }
    }

    /// Drives the Ready loop: persist, send, apply, advance.
    fn drain(&mut self, ctx: &mut Ctx<'_, Message>) {
        while self.raft.has_ready() {
            let rd = self.raft.ready();
            if let Some(first) = rd.entries.first() {
                self.log.retain(|e| e.index < first.index);
                self.log.extend(rd.entries.iter().cloned());
                if self.apply_uncommitted {
                    for e in &rd.entries {
                        if !self.applied.iter().any(|a| a.0 == e.index && a.1 == e.term) {
                            self.applied.push((e.index, e.term, e.data.clone()));
                        }
                    }
                }
            }
            if let Some(hs) = rd.hard_state {
                self.hard = hs;
            }
            for m in rd.messages {
                let to = (m.to - 1) as ProcId;
                ctx.send(to, m);
            }
            if !self.apply_uncommitted {
                for e in &rd.committed_entries {
                    self.apply(e);
                }
            }
            if let Some((role, _)) = rd.soft_state {
                if role == Role::Leader && self.last_role != Role::Leader {
                    let term = self.raft.term();
                    self.elected.push((term, self.log_terms()));
                    ctx.mark(&format!("leader t{term}"));
                } else if role != Role::Leader && self.last_role == Role::Leader {
                    ctx.mark("steps down");
                }
                self.last_role = role;
            }
            self.raft.advance(rd.token);
        }
    }
}

impl Process for Member {
    type Msg = Message;

    fn on_start(&mut self, ctx: &mut Ctx<'_, Message>) {
        ctx.set_timer(TICK, T_TICK);
        ctx.set_timer(PROPOSE_EVERY, T_PROPOSE);
        self.drain(ctx);
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_, Message>, tag: u64) {
        match tag {
            T_TICK => {
                self.raft.tick();
                ctx.set_timer(TICK, T_TICK);
            }
            _ => {
                if self.raft.role() == Role::Leader {
                    self.proposed += 1;
                    let data = format!("P{}#{}", ctx.id(), self.proposed).into_bytes();
                    if self.raft.propose(data).is_ok() {
                        ctx.mark(&format!("propose #{}", self.proposed));
                    }
                }
                ctx.set_timer(PROPOSE_EVERY, T_PROPOSE);
            }
        }
        self.drain(ctx);
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, Message>, _from: ProcId, msg: Message) {
        // A stale or malformed message is the raft crate's typed error; it is ignored.
        let _ = self.raft.step(msg);
        self.drain(ctx);
    }

    fn msg_bytes(m: &Message) -> usize {
        match &m.body {
            MessageBody::Append { entries, .. } => {
                40 + entries.iter().map(|e| e.size() as usize).sum::<usize>()
            }
            _ => 32,
        }
    }

    fn msg_label(m: &Message) -> String {
        match &m.body {
            MessageBody::Append { entries, .. } if !entries.is_empty() => {
                format!("Append[{}..{}]", entries[0].index, entries[entries.len() - 1].index)
            }
            MessageBody::Append { .. } => "Append(probe)".into(),
            MessageBody::AppendResponse { index, reject, .. } => {
                format!("AppendResp({index}{})", if *reject { ",reject" } else { "" })
            }
            MessageBody::VoteResponse { reject } => {
                format!("VoteResp({})", if *reject { "no" } else { "yes" })
            }
            MessageBody::PreVoteResponse { reject } => {
                format!("PreVoteResp({})", if *reject { "no" } else { "yes" })
            }
            MessageBody::Heartbeat { .. } => "Heartbeat".into(),
            MessageBody::HeartbeatResponse { .. } => "HeartbeatResp".into(),
            b => format!("{}(t{})", b.name(), m.term),
        }
    }
}

/// The members' logs as (index → term) maps.
fn logs(sim: &Sim<Member>) -> Vec<BTreeMap<u64, u64>> {
    sim.procs()
        .iter()
        .map(|m| m.log_terms().into_iter().collect())
        .collect()
}

/// Log matching (§5.3): the first pair of logs and index that breaks it.
fn log_matching(logs: &[BTreeMap<u64, u64>]) -> Option<String> {
    for (a, la) in logs.iter().enumerate() {
        for (b, lb) in logs.iter().enumerate().skip(a + 1) {
            let last_common = la
                .iter()
                .rev()
                .find(|(i, t)| lb.get(i) == Some(t))
                .map(|(i, _)| *i);
            let Some(upto) = last_common else { continue };
            if let Some((i, _)) = la
                .range(..=upto)
                .find(|(i, t)| lb.get(i).is_some_and(|u| u != *t))
            {
                return Some(format!(
                    "P{a} and P{b} agree at index {upto} but differ at {i}"
                ));
            }
        }
    }
    None
}

fn run(opts: &LabOptions) -> LabRun {
    let n = opts.nodes;
    let apply_uncommitted = opts.is_variant("planted-apply-uncommitted");
    let procs: Vec<Member> = (0..n)
        .map(|p| Member::new(p as u64 + 1, n, opts.seed, apply_uncommitted))
        .collect();
    let mut sim = Sim::new(
        opts.seed,
        procs,
        net_for(&opts.faults, NetConfig::reliable()),
        ClockConfig::perfect(),
    );
    let until: Time = 1_600 * MILLIS;
    // Log matching and leader completeness, sampled while the run goes.
    let mut matching = None;
    let mut incomplete = None;
    if opts.faults.is_empty() {
        let mut t = 0;
        let mut partitioned = None;
        let mut seen = vec![0; n];
        let mut committed_before: BTreeMap<u64, u64> = BTreeMap::new();
        while t < until {
            t += 20 * MILLIS;
            sim.run_until(t);
            if matching.is_none() {
                matching = log_matching(&logs(&sim));
            }
            // A leader elected since the last sample must hold every entry
            // some member had applied by then (§5.4, leader completeness).
            for (p, m) in sim.procs().iter().enumerate() {
                for (term, log) in &m.elected[seen[p]..] {
                    let has: BTreeMap<u64, u64> = log.iter().copied().collect();
                    let missing = committed_before
                        .iter()
                        .find(|(i, t)| has.get(i) != Some(t));
                    if let (Some((i, et)), None) = (missing, &incomplete) {
                        incomplete = Some(format!(
                            "P{p}, leader of term {term}, lacks the entry (index {i}, term {et}) applied before its election"
                        ));
                    }
                }
                seen[p] = m.elected.len();
            }
            for m in sim.procs() {
                for (i, et, _) in &m.applied {
                    committed_before.entry(*i).or_insert(*et);
                }
            }
            if t == 500 * MILLIS {
                let leader = (0..n).find(|&p| sim.proc(p).raft.role() == Role::Leader);
                if let Some(l) = leader {
                    let rest: Vec<ProcId> = (0..n).filter(|&p| p != l).collect();
                    sim.partition(&[vec![l], rest]);
                    partitioned = Some(l);
                }
            }
            if t == 1_100 * MILLIS && partitioned.is_some() {
                sim.heal();
            }
        }
    } else {
        run_faulted_durable(&mut sim, opts, until * 2, |crashed, _| crashed.restarted());
    }
    let trace = sim.take_trace();
    let final_logs = logs(&sim);
    let matching = matching.or_else(|| log_matching(&final_logs));
    let members = sim.procs();
    // Election safety.
    let mut leaders: BTreeMap<u64, BTreeSet<ProcId>> = BTreeMap::new();
    for (p, m) in members.iter().enumerate() {
        for (term, _) in &m.elected {
            leaders.entry(*term).or_default().insert(p);
        }
    }
    let two = leaders.iter().find(|(_, ls)| ls.len() > 1);
    // State machine safety: every index applied with one entry.
    let mut at: BTreeMap<u64, (u64, Vec<u8>, ProcId)> = BTreeMap::new();
    let mut diverged = None;
    for (p, m) in members.iter().enumerate() {
        for (i, t, d) in &m.applied {
            match at.get(i) {
                Some((t0, d0, q)) if (t0, d0) != (t, d) && diverged.is_none() => {
                    diverged = Some(format!(
                        "index {i}: P{q} applied term {t0}, P{p} term {t}"
                    ));
                }
                Some(_) => {}
                None => {
                    at.insert(*i, (*t, d.clone(), p));
                }
            }
        }
    }
    // Leader completeness, also at the end: no leader's log held another
    // term at an index where an entry of an earlier term was applied.
    for (p, m) in members.iter().enumerate() {
        for (term, log) in &m.elected {
            let has: BTreeMap<u64, u64> = log.iter().copied().collect();
            // Entries committed in earlier terms and applied by some member.
            for (i, (t, _, q)) in &at {
                if *t < *term
                    && has.get(i).is_some_and(|lt| lt != t)
                    && incomplete.is_none()
                    && members[*q].applied.iter().any(|a| a.0 == *i)
                {
                    incomplete = Some(format!(
                        "P{p}, leader of term {term}, holds term {} at index {i}, where P{q} applied term {t}",
                        has[i]
                    ));
                }
            }
        }
    }
    let committed = at.len();
    let mut report = LabReport::new(ALGORITHM.name, opts);
    report.checks.push(Check::new(
        "election safety: at most one leader per term",
        two.is_none(),
        match two {
            None => format!("{} terms with a leader", leaders.len()),
            Some((t, ls)) => format!("term {t} had leaders {ls:?}"),
        },
    ));
    report.checks.push(Check::new(
        "log matching",
        matching.is_none(),
        matching.unwrap_or_else(|| "every pair of logs agrees up to their last common entry".into()),
    ));
    report.checks.push(Check::new(
        "leader completeness",
        incomplete.is_none(),
        incomplete.unwrap_or_else(|| {
            format!(
                "every leader's log held the committed entries of earlier terms ({} elections)",
                leaders.values().map(BTreeSet::len).sum::<usize>()
            )
        }),
    ));
    report.checks.push(Check::new(
        "state machine safety",
        diverged.is_none(),
        diverged.unwrap_or_else(|| format!("{committed} indexes applied, one entry each")),
    ));
    let plain = opts.faults.is_empty() && opts.variant.is_none();
    let s = sim.stats();
    report.costs.push(Cost::new(
        "leaders elected",
        leaders.len() as f64,
        "one per leader change: the first, and one after the partition",
        plain.then_some(2.0),
    ));
    let election = ["PreVote", "PreVoteResp", "Vote", "VoteResp"]
        .iter()
        .map(|k| s.sent_of(k))
        .sum::<u64>();
    report.costs.push(
        Cost::new(
            "election messages",
            election as f64,
            "4(N-1) per uncontested election (8(N-1) for two), more for a contested or cut-off one",
            None,
        )
        .at_least(if plain { 8.0 * (n - 1) as f64 } else { 0.0 }),
    );
    let appends = s.sent_of("Append") + s.sent_of("AppendResp");
    report.costs.push(
        Cost::new(
            "append messages per committed entry",
            appends as f64 / committed.max(1) as f64,
            "2(N-1) per entry, and 2(N-1) more to carry the commit index: 4(N-1)",
            None,
        )
        .near(4.0 * (n - 1) as f64),
    );
    LabRun::new(report, trace)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(variant: Option<&str>, seed: u64) -> LabReport {
        run(&LabOptions::new(5, seed).with_variant(variant)).report
    }

    #[test]
    fn raft_keeps_its_invariants_through_a_partitioned_leader() {
        for seed in 1..=4 {
            let r = with(None, seed);
            assert!(r.passed(), "seed {seed}: {r:#?}");
            assert_eq!(r.costs[0].measured, 2.0, "seed {seed}: {r:#?}");
        }
    }

    #[test]
    fn the_checker_catches_a_driver_that_applies_uncommitted_entries() {
        let r = with(Some("planted-apply-uncommitted"), 1);
        assert!(!r.checks[3].held, "{r:#?}");
    }
}
