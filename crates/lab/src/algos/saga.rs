//! Sagas: a long transaction as a sequence of local steps, each with a
//! compensation; a failed step undoes the ones before it in reverse order.
//! Half the sagas are orchestrated (a coordinator calls each step), half
//! choreographed (each service hands the saga on to the next).

use std::collections::BTreeMap;

use rand::Rng;
use synod_simnet::{ClockConfig, Ctx, Fault, NetConfig, ProcId, Process, Sim, Time, TraceKind};

use crate::harness::{net_for, run_faulted};
use crate::registry::{Algorithm, FaultModel};
use crate::report::{Check, Cost, LabOptions, LabReport, LabRun};

/// The registry entry.
pub const ALGORITHM: Algorithm = Algorithm {
    name: "saga",
    family: "transactions",
    summary: "sagas: steps with compensations, orchestrated and choreographed",
    description: "Sagas (Garcia-Molina & Salem 1987). A saga is steps T1..Tk, one per service\n\
P1..P(N-1) (k = N-1), each a local transaction with a compensation Ci that\n\
semantically undoes it. A step may fail (a business refusal, 20 % here); then\n\
C(f-1)..C1 run, in reverse order, and the saga ends aborted; if every step\n\
succeeds it ends committed. P0 starts 8 sagas, alternating two styles:\n\
orchestrated: P0 calls Do on service i, waits for Done or Failed, then calls i+1;\n\
on a failure it calls Undo on f-1, waits for Undone, then f-2, ... 1.\n\
choreographed: P0 sends Do to P1; a service that succeeds sends Do to the next (the\n\
last tells P0 Completed); one that fails sends Undo to the previous; a service that\n\
compensates sends Undo on to its previous (P1 tells P0 Aborted).\n\
Services keep each saga's state (none, done, failed, compensated) and ignore a\n\
repeated request, so duplicated messages do no harm.\n\
Guarantee: each saga ends with all k steps done, or with none left done (every done\n\
step compensated, in reverse order); P0 learns every outcome. No isolation: other\n\
sagas may see a step before its compensation (the price of no locks).\n\
Cost per saga with failure at step f (k if none): orchestrated 2k committed,\n\
2f + 2(f-1) aborted; choreographed k+1 committed, 2f aborted.",
    variants: &[
        ("orchestrated", "every saga orchestrated by P0"),
        ("choreographed", "every saga choreographed by the services"),
        (
            "forget-last",
            "planted bug: on a failure at step f, compensation starts at f-2: step f-1 stays done",
        ),
    ],
    default_nodes: 5,
    nodes: (2, 32),
    faults: FaultModel {
        tolerates: &[Fault::Duplicate, Fault::Reorder, Fault::Clog, Fault::Skew],
        outside: &[],
        refused: "a saga assumes durable, reliable messaging between its steps (a log or a queue); retrying over lossy links is rpc-semantics' subject, crash recovery two-phase-commit's",
    },
    run,
};

/// Saga messages; the number is the saga.
#[derive(Clone, Debug)]
pub enum SagaMsg {
    /// Run your step.
    Do(u32),
    /// Compensate your step.
    Undo(u32),
    /// Orchestrated: the step ran.
    Done(u32),
    /// Orchestrated: the step failed (nothing to compensate there).
    Failed(u32),
    /// Orchestrated: the step was compensated.
    Undone(u32),
    /// Choreographed: the last step ran; the saga committed.
    Completed(u32),
    /// Choreographed: the first step was compensated or failed; aborted.
    Aborted(u32),
}

/// A service's state for one saga.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Ran.
    Done,
    /// Refused.
    Failed,
    /// Ran, then compensated.
    Compensated,
}

/// What P0 learned of a saga.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Committed (true) or aborted.
    pub committed: bool,
    /// The failed step (k + 1 when none failed).
    pub failed_at: usize,
    /// Orchestrated (true) or choreographed.
    pub orchestrated: bool,
}

/// P0 or a service.
#[derive(Clone, Debug)]
pub struct Node {
    style: Style,
    forget_last: bool,
    // P0.
    /// Outcomes learned.
    pub outcomes: BTreeMap<u32, Outcome>,
    /// Orchestrated sagas in progress: (step being called, compensating).
    running: BTreeMap<u32, (usize, bool, usize)>,
    started: u32,
    // Services.
    /// Each saga's state here.
    pub steps: BTreeMap<u32, Step>,
    /// Compensations asked for a step that never ran.
    pub bogus_undo: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Style {
    Mixed,
    Orchestrated,
    Choreographed,
}

const SAGAS: u32 = 8;
const GAP: Time = 40_000;
const UNTIL: Time = 3_000_000;

impl Node {
    fn orchestrated(&self, s: u32) -> bool {
        match self.style {
            Style::Orchestrated => true,
            Style::Choreographed => false,
            Style::Mixed => s.is_multiple_of(2),
        }
    }

    /// Where compensation starts after step `f` failed.
    fn first_undo(&self, f: usize) -> usize {
        if self.forget_last {
            f.saturating_sub(2)
        } else {
            f - 1
        }
    }

    /// P0: the orchestrator's next call for saga `s`, or its end.
    fn orchestrate(&mut self, ctx: &mut Ctx<'_, SagaMsg>, s: u32) {
        let k = ctx.n() - 1;
        let (step, undoing, failed_at) = self.running[&s];
        if !undoing && step > k {
            self.finish(ctx, s, true, k + 1);
        } else if undoing && step == 0 {
            self.finish(ctx, s, false, failed_at);
        } else if undoing {
            ctx.send(step, SagaMsg::Undo(s));
        } else {
            ctx.send(step, SagaMsg::Do(s));
        }
    }

    fn finish(&mut self, ctx: &mut Ctx<'_, SagaMsg>, s: u32, committed: bool, failed_at: usize) {
        self.running.remove(&s);
        let orchestrated = self.orchestrated(s);
        ctx.mark(&format!(
            "saga {s} {}",
            if committed { "committed" } else { "aborted" }
        ));
        self.outcomes.insert(
            s,
            Outcome {
                committed,
                failed_at,
                orchestrated,
            },
        );
    }

    fn coordinator(&mut self, ctx: &mut Ctx<'_, SagaMsg>, from: ProcId, msg: SagaMsg) {
        let k = ctx.n() - 1;
        match msg {
            SagaMsg::Done(s) | SagaMsg::Failed(s) | SagaMsg::Undone(s) => {
                let Some(&(step, undoing, failed_at)) = self.running.get(&s) else {
                    return;
                };
                if from != step {
                    return; // a duplicate of an earlier reply
                }
                let next = match msg {
                    SagaMsg::Done(_) if !undoing => (step + 1, false, failed_at),
                    SagaMsg::Failed(_) if !undoing => (self.first_undo(step), true, step),
                    SagaMsg::Undone(_) if undoing => (step - 1, true, failed_at),
                    _ => return,
                };
                self.running.insert(s, next);
                self.orchestrate(ctx, s);
            }
            SagaMsg::Completed(s) if !self.outcomes.contains_key(&s) => {
                self.finish(ctx, s, true, k + 1);
            }
            SagaMsg::Aborted(s) if !self.outcomes.contains_key(&s) => {
                // The failed step is learned from the service that failed it:
                // P1 passes it on in the compensation chain.
                self.finish(ctx, s, false, 0);
            }
            _ => {}
        }
    }

    fn service(&mut self, ctx: &mut Ctx<'_, SagaMsg>, from: ProcId, msg: SagaMsg) {
        let (me, k) = (ctx.id(), ctx.n() - 1);
        match msg {
            SagaMsg::Do(s) => {
                if self.steps.contains_key(&s) {
                    return; // a repeat
                }
                let ok = ctx.rng().random_bool(0.8);
                let state = if ok { Step::Done } else { Step::Failed };
                self.steps.insert(s, state);
                ctx.mark(&format!("T{me} s{s} {}", if ok { "done" } else { "failed" }));
                if self.orchestrated(s) {
                    ctx.send(from, if ok { SagaMsg::Done(s) } else { SagaMsg::Failed(s) });
                } else if ok && me == k {
                    ctx.send(0, SagaMsg::Completed(s));
                } else if ok {
                    ctx.send(me + 1, SagaMsg::Do(s));
                } else {
                    self.pass_undo(ctx, s, self.first_undo(me));
                }
            }
            SagaMsg::Undo(s) => {
                match self.steps.get(&s) {
                    Some(Step::Done) => {}
                    Some(Step::Compensated) => return, // a repeat
                    _ => {
                        self.bogus_undo += 1;
                        return;
                    }
                }
                self.steps.insert(s, Step::Compensated);
                ctx.mark(&format!("C{me} s{s}"));
                if self.orchestrated(s) {
                    ctx.send(from, SagaMsg::Undone(s));
                } else {
                    self.pass_undo(ctx, s, me - 1);
                }
            }
            _ => {}
        }
    }

    /// Choreographed: hand the compensation to step `to`, or tell P0 the
    /// saga aborted when no step is left.
    fn pass_undo(&mut self, ctx: &mut Ctx<'_, SagaMsg>, s: u32, to: usize) {
        if to == 0 {
            ctx.send(0, SagaMsg::Aborted(s));
        } else {
            ctx.send(to, SagaMsg::Undo(s));
        }
    }
}

impl Process for Node {
    type Msg = SagaMsg;

    fn on_start(&mut self, ctx: &mut Ctx<'_, SagaMsg>) {
        if ctx.id() == 0 {
            ctx.set_timer(GAP, 0);
        }
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_, SagaMsg>, _tag: u64) {
        let s = self.started;
        self.started += 1;
        ctx.mark(&format!(
            "saga {s} {}",
            if self.orchestrated(s) {
                "orchestrated"
            } else {
                "choreographed"
            }
        ));
        if self.orchestrated(s) {
            self.running.insert(s, (1, false, 0));
            self.orchestrate(ctx, s);
        } else {
            ctx.send(1, SagaMsg::Do(s));
        }
        if self.started < SAGAS {
            ctx.set_timer(GAP, 0);
        }
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, SagaMsg>, from: ProcId, msg: SagaMsg) {
        if ctx.id() == 0 {
            self.coordinator(ctx, from, msg);
        } else {
            self.service(ctx, from, msg);
        }
    }

    fn msg_bytes(_msg: &SagaMsg) -> usize {
        16
    }

    fn msg_label(msg: &SagaMsg) -> String {
        match msg {
            SagaMsg::Do(s) => format!("Do(s{s})"),
            SagaMsg::Undo(s) => format!("Undo(s{s})"),
            SagaMsg::Done(s) => format!("Done(s{s})"),
            SagaMsg::Failed(s) => format!("Failed(s{s})"),
            SagaMsg::Undone(s) => format!("Undone(s{s})"),
            SagaMsg::Completed(s) => format!("Completed(s{s})"),
            SagaMsg::Aborted(s) => format!("Aborted(s{s})"),
        }
    }
}

fn run(opts: &LabOptions) -> LabRun {
    let n = opts.nodes;
    let k = n - 1;
    let style = if opts.is_variant("orchestrated") {
        Style::Orchestrated
    } else if opts.is_variant("choreographed") {
        Style::Choreographed
    } else {
        Style::Mixed
    };
    let make = |_: ProcId| Node {
        style,
        forget_last: opts.is_variant("forget-last"),
        outcomes: BTreeMap::new(),
        running: BTreeMap::new(),
        started: 0,
        steps: BTreeMap::new(),
        bogus_undo: 0,
    };
    let mut sim = Sim::new(
        opts.seed,
        (0..n).map(make).collect(),
        net_for(&opts.faults, NetConfig::reliable()),
        ClockConfig::default(),
    );
    run_faulted(&mut sim, opts, UNTIL, |_| unreachable!("crashes are refused"));
    let trace = sim.take_trace();
    let p0 = sim.proc(0);
    let state = |p: ProcId, s: u32| sim.proc(p).steps.get(&s).copied();
    let mut partial = vec![];
    let mut wrong_outcome = vec![];
    for s in 0..SAGAS {
        let done: Vec<ProcId> = (1..=k)
            .filter(|&p| state(p, s) == Some(Step::Done))
            .collect();
        let all = done.len() == k;
        if !all && !done.is_empty() {
            partial.push(format!("saga {s}: steps {done:?} left done"));
        }
        if let Some(o) = p0.outcomes.get(&s) {
            if o.committed != all {
                wrong_outcome.push(format!("saga {s}"));
            }
        }
    }
    // Compensation order, from the trace: each saga's "C<step>" marks in
    // true-time order must name decreasing steps.
    let mut comp: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    for e in &trace.events {
        if let TraceKind::Mark { label } = &e.kind {
            if let Some(rest) = label.strip_prefix('C') {
                if let Some((p, s)) = rest.split_once(" s") {
                    if let (Ok(p), Ok(s)) = (p.parse::<usize>(), s.parse::<u32>()) {
                        comp.entry(s).or_default().push(p);
                    }
                }
            }
        }
    }
    let out_of_order: Vec<String> = comp
        .iter()
        .filter(|(_, v)| v.windows(2).any(|w| w[0] <= w[1]))
        .map(|(s, v)| format!("saga {s}: {v:?}"))
        .collect();
    let bogus: u32 = (1..n).map(|p| sim.proc(p).bogus_undo).sum();
    let mut report = LabReport::new(ALGORITHM.name, opts);
    report.checks.push(Check::new(
        "atomicity: every step done, or every done step compensated",
        partial.is_empty(),
        if partial.is_empty() {
            let committed = p0.outcomes.values().filter(|o| o.committed).count();
            format!("{committed} committed, {} aborted", SAGAS as usize - committed)
        } else {
            partial.join("; ")
        },
    ));
    report.checks.push(Check::new(
        "compensations run in reverse order of the steps",
        out_of_order.is_empty() && bogus == 0,
        if out_of_order.is_empty() && bogus == 0 {
            format!("{} compensations", comp.values().map(Vec::len).sum::<usize>())
        } else {
            format!("{}; {bogus} undo of a step never done", out_of_order.join("; "))
        },
    ));
    report.checks.push(Check::new(
        "P0 learns every saga's outcome, and it matches the steps",
        p0.outcomes.len() == SAGAS as usize && wrong_outcome.is_empty(),
        format!(
            "{} of {SAGAS} outcomes; wrong: {wrong_outcome:?}",
            p0.outcomes.len()
        ),
    ));
    // The failing step of a choreographed saga, from the services' states.
    let failed_at = |s: u32| {
        (1..=k)
            .find(|&p| state(p, s) == Some(Step::Failed))
            .unwrap_or(k + 1)
    };
    let formula: u64 = (0..SAGAS)
        .filter_map(|s| p0.outcomes.get(&s).map(|o| (s, o)))
        .map(|(s, o)| {
            let f = failed_at(s) as u64;
            let k = k as u64;
            match (o.orchestrated, f > k) {
                (true, true) => 2 * k,
                (true, false) => 2 * f + 2 * (f - 1),
                (false, true) => k + 1,
                (false, false) => 2 * f,
            }
        })
        .sum();
    report.costs.push(Cost::new(
        "messages",
        sim.stats().sent as f64,
        "per saga failing at f: orchestrated 2k or 4f-2, choreographed k+1 or 2f",
        (!opts.is_variant("forget-last")).then_some(formula as f64),
    ));
    LabRun::new(report, trace)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(variant: Option<&str>, seed: u64) -> LabReport {
        run(&LabOptions::new(5, seed).with_variant(variant)).report
    }

    #[test]
    fn both_styles_keep_sagas_atomic() {
        for v in [None, Some("orchestrated"), Some("choreographed")] {
            for seed in 0..6 {
                let r = with(v, seed);
                assert!(r.passed(), "{v:?} {r:?}");
            }
        }
    }

    #[test]
    fn forgetting_a_compensation_leaves_a_step_done() {
        let r = (0..6)
            .map(|s| with(Some("forget-last"), s))
            .find(|r| !r.passed())
            .expect("some seed fails a step past the first");
        assert!(!r.checks[0].held, "{r:?}");
    }
}
