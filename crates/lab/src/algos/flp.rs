//! FLP (Fischer, Lynch & Paterson 1985): no deterministic protocol solves
//! consensus in an asynchronous system with one crash-prone process. The
//! proof's adversary, run: it delivers messages in an order that keeps the
//! configuration bivalent (both decisions still reachable) for as long as
//! the run lasts.
//!
//! The protocol is Ben-Or's (1983) with its coin made deterministic, so it
//! is a deterministic protocol that tolerates one crash (it waits for n - 1
//! messages per phase) and is safe. The adversary is a process of its own:
//! every protocol message goes through it, and it keeps an exact mirror of
//! the configuration (it sees every input, and the protocol is
//! deterministic). Before each delivery it tries the pending messages,
//! oldest first, and delivers the first after which the configuration is
//! still bivalent; bivalence is witnessed, not assumed: a bounded search
//! finds one schedule from the new configuration that decides 0 and one
//! that decides 1.

use std::collections::BTreeMap;

use synod_simnet::{ClockConfig, Ctx, NetConfig, ProcId, Process, Sim, MILLIS};

use crate::registry::{Algorithm, FaultModel};
use crate::report::{Check, Cost, LabOptions, LabReport, LabRun};

/// The registry entry.
pub const ALGORITHM: Algorithm = Algorithm {
    name: "flp",
    family: "consensus and election",
    summary: "an adversarial scheduler keeps a consensus protocol bivalent for the whole run",
    description: "FLP impossibility (Fischer, Lynch & Paterson 1985). P0..P(N-1) run Ben-Or's\n\
consensus (1983) with a deterministic coin, tolerating f = 1 crash: round r, phase 1:\n\
send (R, r, x) to all, wait for N-1 of them; if more than N/2 carry v send (P, r, v),\n\
else (P, r, ⊥). Phase 2: wait for N-1 P messages; f+1 with v: decide v; one with v:\n\
x := v; none: x := (r + id) mod 2 (the coin). Inputs alternate 0, 1, 0, …\n\
The last lane is the adversary, i.e. the asynchronous network: every message goes\n\
through it and it chooses which to deliver next. It mirrors the configuration\n\
exactly; before each step it tries the pending messages oldest first and delivers\n\
the first that leaves the configuration bivalent, witnessed by two bounded searches\n\
from the new configuration: a schedule that decides 0 and one that decides 1.\n\
Lemma 3 of the paper says such a step always exists; the run keeps the protocol\n\
bivalent for all its 60 steps, so nobody decides.\n\
Checks: agreement (no two decisions differ; the protocol is safe), and every\n\
configuration of the run was witnessed bivalent. Variants: `fair` delivers a\n\
pending message chosen at random (no adversary): the protocol decides; the planted bug\n\
`planted-decide-by-timeout` decides its estimate after round 3, as if the network\n\
were synchronous: under the adversary two processes decide differently.\n\
Cost: steps kept bivalent = the steps of the run (60, FLP: forever); decisions 0;\n\
Ben-Or sends 2N² messages per round (N is small: the witnesses search schedules).",
    variants: &[
        ("fair", "a random pending message each step, no adversary: the protocol decides"),
        (
            "planted-decide-by-timeout",
            "planted bug: decide the estimate after round 3",
        ),
    ],
    default_nodes: 3,
    nodes: (3, 4),
    faults: FaultModel {
        tolerates: &[],
        outside: &[],
        refused: "the adversary is the network: it alone decides what is delivered when, so no other fault applies",
    },
    run,
};

const STEPS: u32 = 60;
/// Steps a fair run may take to decide.
const FAIR_STEPS: u32 = 2_000;
const SEARCH_BUDGET: u32 = 400;
const SEARCH_DEPTH: u32 = 40;
const TIMEOUT_ROUND: u32 = 3;

/// Ben-Or's messages.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum BoMsg {
    /// Phase 1 report: round, estimate.
    R(u32, u8),
    /// Phase 2 proposal: round, value or ⊥.
    P(u32, Option<u8>),
}

impl BoMsg {
    fn carries(&self, v: u8) -> bool {
        matches!(self, BoMsg::R(_, x) | BoMsg::P(_, Some(x)) if *x == v)
    }
}

/// One Ben-Or process, as a pure state machine.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct BenOr {
    id: usize,
    n: usize,
    x: u8,
    round: u32,
    phase: u8,
    /// The decision, once made.
    pub decided: Option<u8>,
    reports: BTreeMap<u32, Vec<u8>>,
    proposals: BTreeMap<u32, Vec<Option<u8>>>,
    timeout_bug: bool,
}

impl BenOr {
    fn new(id: usize, n: usize, x: u8, timeout_bug: bool) -> Self {
        BenOr {
            id,
            n,
            x,
            round: 1,
            phase: 1,
            decided: None,
            reports: BTreeMap::new(),
            proposals: BTreeMap::new(),
            timeout_bug,
        }
    }

    fn to_all(&self, m: BoMsg) -> Vec<(usize, BoMsg)> {
        (0..self.n).map(|q| (q, m.clone())).collect()
    }

    fn start(&self) -> Vec<(usize, BoMsg)> {
        self.to_all(BoMsg::R(self.round, self.x))
    }

    fn on_msg(&mut self, m: BoMsg) -> Vec<(usize, BoMsg)> {
        match m {
            BoMsg::R(r, v) => self.reports.entry(r).or_default().push(v),
            BoMsg::P(r, v) => self.proposals.entry(r).or_default().push(v),
        }
        let wait = self.n - 1;
        let mut out = vec![];
        loop {
            let r = self.round;
            if self.phase == 1 && self.reports.get(&r).is_some_and(|v| v.len() >= wait) {
                let got = &self.reports[&r];
                let ones = got.iter().filter(|&&v| v == 1).count();
                let zeros = got.len() - ones;
                let major = if 2 * ones > self.n {
                    Some(1)
                } else if 2 * zeros > self.n {
                    Some(0)
                } else {
                    None
                };
                self.phase = 2;
                out.extend(self.to_all(BoMsg::P(r, major)));
            } else if self.phase == 2 && self.proposals.get(&r).is_some_and(|v| v.len() >= wait)
            {
                let got = &self.proposals[&r];
                let count = |v: u8| got.iter().filter(|&&p| p == Some(v)).count();
                let f = 1;
                if let Some(v) = [0, 1].into_iter().find(|&v| count(v) > f) {
                    self.decided.get_or_insert(v);
                    self.x = v;
                } else if let Some(v) = [0, 1].into_iter().find(|&v| count(v) > 0) {
                    self.x = v;
                } else {
                    self.x = ((r as usize + self.id) % 2) as u8;
                }
                if self.timeout_bug && r >= TIMEOUT_ROUND {
                    self.decided.get_or_insert(self.x);
                }
                self.round += 1;
                self.phase = 1;
                out.extend(self.to_all(BoMsg::R(self.round, self.x)));
            } else {
                return out;
            }
        }
    }
}

/// A configuration: every process's state and the messages in flight.
#[derive(Clone, Debug)]
struct Config {
    procs: Vec<BenOr>,
    pending: Vec<(usize, usize, BoMsg)>,
}

impl Config {
    fn deliver(&mut self, i: usize) -> (usize, usize, BoMsg) {
        let (from, to, m) = self.pending.remove(i);
        let out = self.procs[to].on_msg(m.clone());
        self.pending
            .extend(out.into_iter().map(|(q, msg)| (to, q, msg)));
        (from, to, m)
    }

    fn decisions(&self) -> Vec<u8> {
        self.procs.iter().filter_map(|p| p.decided).collect()
    }

    /// Whether a schedule of at most `depth` deliveries from here decides `v`.
    fn can_decide(&self, v: u8, depth: u32, budget: &mut u32) -> bool {
        let d = self.decisions();
        if d.contains(&v) {
            return true;
        }
        if !d.is_empty() || depth == 0 || *budget == 0 {
            return false;
        }
        *budget -= 1;
        let mut order: Vec<usize> = (0..self.pending.len()).collect();
        order.sort_by_key(|&i| !self.pending[i].2.carries(v));
        for i in order {
            let mut next = self.clone();
            next.deliver(i);
            if next.can_decide(v, depth - 1, budget) {
                return true;
            }
        }
        false
    }

    fn bivalent(&self) -> bool {
        [0, 1].into_iter().all(|v| {
            let mut budget = SEARCH_BUDGET;
            self.can_decide(v, SEARCH_DEPTH, &mut budget)
        })
    }
}

/// A protocol message on its way through the adversary.
#[derive(Clone, Debug)]
pub struct Envelope {
    from: usize,
    to: usize,
    msg: BoMsg,
}

/// The adversary: the network, with a mirror of the configuration.
#[derive(Clone, Debug)]
pub struct Adversary {
    mirror: Config,
    fair: bool,
    awaited: usize,
    /// Deliveries made.
    pub steps: u32,
    /// Steps after which the configuration was witnessed bivalent.
    pub bivalent_steps: u32,
    /// Whether the starting configuration was witnessed bivalent.
    pub initially_bivalent: bool,
    /// The step at which the adversary found no bivalent successor, if any.
    pub lost_at: Option<u32>,
}

impl Adversary {
    fn next(&mut self, ctx: &mut Ctx<'_, Envelope>) {
        let limit = if self.fair { FAIR_STEPS } else { STEPS };
        let all_decided = self.mirror.procs.iter().all(|p| p.decided.is_some());
        if self.steps >= limit || self.mirror.pending.is_empty() || all_decided {
            return;
        }
        let pick = if self.fair {
            rand::Rng::random_range(ctx.rng(), 0..self.mirror.pending.len())
        } else if self.lost_at.is_some() {
            0
        } else {
            let found = (0..self.mirror.pending.len()).find(|&i| {
                let mut c = self.mirror.clone();
                c.deliver(i);
                c.bivalent()
            });
            if found.is_none() {
                self.lost_at = Some(self.steps);
                ctx.mark("no bivalent step");
            }
            found.unwrap_or(0)
        };
        let before = self.mirror.pending.len();
        let (from, to, msg) = self.mirror.deliver(pick);
        self.steps += 1;
        if !self.fair && self.lost_at.is_none() {
            self.bivalent_steps += 1;
        }
        self.awaited = self.mirror.pending.len() + 1 - before;
        ctx.send(to, Envelope { from, to, msg });
        if self.awaited == 0 {
            ctx.set_timer(MILLIS, 0);
        }
    }
}

/// A Ben-Or process or the adversary.
#[derive(Clone, Debug)]
pub enum Node {
    /// A protocol process.
    Proc(BenOr),
    /// The adversary (the network).
    Adversary(Box<Adversary>),
}

impl Process for Node {
    type Msg = Envelope;

    fn on_start(&mut self, ctx: &mut Ctx<'_, Envelope>) {
        if let Node::Proc(p) = self {
            let adv = ctx.n() - 1;
            for (to, msg) in p.start() {
                ctx.send(adv, Envelope { from: p.id, to, msg });
            }
        }
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_, Envelope>, _tag: u64) {
        if let Node::Adversary(a) = self {
            a.next(ctx);
        }
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, Envelope>, _from: ProcId, env: Envelope) {
        match self {
            Node::Proc(p) => {
                let adv = ctx.n() - 1;
                let was = p.decided;
                for (to, msg) in p.on_msg(env.msg) {
                    ctx.send(adv, Envelope { from: p.id, to, msg });
                }
                if was.is_none() {
                    if let Some(v) = p.decided {
                        ctx.mark(&format!("decide {v}"));
                    }
                }
                ctx.stamp(&format!("r{} x={}", p.round, p.x));
            }
            Node::Adversary(a) => {
                a.awaited = a.awaited.saturating_sub(1);
                if a.awaited == 0 {
                    a.next(ctx);
                }
            }
        }
    }

    fn msg_bytes(_: &Envelope) -> usize {
        16
    }

    fn msg_label(env: &Envelope) -> String {
        let m = match &env.msg {
            BoMsg::R(r, v) => format!("R{r}({v})"),
            BoMsg::P(r, Some(v)) => format!("P{r}({v})"),
            BoMsg::P(r, None) => format!("P{r}(⊥)"),
        };
        format!("{m} P{}→P{}", env.from, env.to)
    }
}

fn run(opts: &LabOptions) -> LabRun {
    let n = opts.nodes;
    let bug = opts.is_variant("planted-decide-by-timeout");
    let procs: Vec<BenOr> = (0..n).map(|i| BenOr::new(i, n, (i % 2) as u8, bug)).collect();
    let pending = procs
        .iter()
        .flat_map(|p| p.start().into_iter().map(|(q, m)| (p.id, q, m)))
        .collect::<Vec<_>>();
    let mirror = Config {
        procs: procs.clone(),
        pending,
    };
    let adversary = Adversary {
        awaited: mirror.pending.len(),
        initially_bivalent: mirror.bivalent(),
        mirror,
        fair: opts.is_variant("fair"),
        steps: 0,
        bivalent_steps: 0,
        lost_at: None,
    };
    let mut nodes: Vec<Node> = procs.into_iter().map(Node::Proc).collect();
    nodes.push(Node::Adversary(Box::new(adversary)));
    let mut net = NetConfig::reliable();
    net.latency_max = net.latency_min;
    let mut sim = Sim::new(opts.seed, nodes, net, ClockConfig::perfect());
    sim.run_until(60_000 * MILLIS);
    let trace = sim.take_trace();
    let decided: Vec<(usize, u8)> = (0..n)
        .filter_map(|p| match sim.proc(p) {
            Node::Proc(b) => b.decided.map(|v| (p, v)),
            Node::Adversary(_) => None,
        })
        .collect();
    let Node::Adversary(adv) = sim.proc(n) else {
        unreachable!("the adversary is the last process")
    };
    let fair = opts.is_variant("fair");
    let mut report = LabReport::new(ALGORITHM.name, opts);
    let values: Vec<u8> = decided.iter().map(|&(_, v)| v).collect();
    let agree = values.windows(2).all(|w| w[0] == w[1]);
    report.checks.push(Check::new(
        "agreement: no two processes decide differently",
        agree,
        if decided.is_empty() {
            "nobody decided".to_string()
        } else {
            decided
                .iter()
                .map(|(p, v)| format!("P{p} decided {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        },
    ));
    if fair {
        report.checks.push(Check::new(
            "under a fair scheduler every process decides",
            decided.len() == n,
            format!("{} of {n} decided in {} steps", decided.len(), adv.steps),
        ));
    } else {
        report.checks.push(Check::new(
            "the adversary kept every configuration bivalent",
            adv.initially_bivalent && adv.lost_at.is_none() && decided.is_empty(),
            match adv.lost_at {
                None if adv.initially_bivalent => format!(
                    "the initial configuration and all {} successors were bivalent (a schedule to 0 and one to 1 found from each)",
                    adv.bivalent_steps
                ),
                None => "the initial configuration was not bivalent".to_string(),
                Some(s) => format!("no bivalent successor after step {s}"),
            },
        ));
    }
    let plain = opts.variant.is_none();
    report.costs.push(Cost::new(
        "steps kept bivalent",
        f64::from(adv.bivalent_steps),
        "every step of the run (FLP: forever)",
        plain.then_some(f64::from(adv.steps)),
    ));
    report.costs.push(Cost::new(
        "decisions",
        decided.len() as f64,
        "none while bivalent",
        plain.then_some(0.0),
    ));
    let rounds = (0..n)
        .filter_map(|p| match sim.proc(p) {
            Node::Proc(b) => Some(b.round),
            Node::Adversary(_) => None,
        })
        .max()
        .unwrap_or(1);
    report.costs.push(
        Cost::new(
            "protocol messages per round",
            f64::from(adv.steps) / f64::from(rounds.max(1)),
            "2N² per round (every process sends R and P to all)",
            None,
        )
        .at_most(2.0 * (n * n) as f64),
    );
    let mut run = LabRun::new(report, trace);
    run.clients = 1;
    run
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(variant: Option<&str>, n: usize) -> LabReport {
        run(&LabOptions::new(n, 1).with_variant(variant)).report
    }

    #[test]
    fn the_adversary_keeps_the_protocol_bivalent() {
        let r = with(None, 3);
        assert!(r.passed(), "{r:#?}");
        assert_eq!(r.costs[0].measured, f64::from(STEPS), "{r:#?}");
    }

    #[test]
    fn a_fair_scheduler_lets_it_decide() {
        let r = with(Some("fair"), 3);
        assert!(r.passed(), "{r:#?}");
    }

    #[test]
    fn the_checker_catches_a_decision_by_timeout() {
        let r = with(Some("planted-decide-by-timeout"), 3);
        assert!(!r.checks[0].held, "{r:#?}");
    }
}
