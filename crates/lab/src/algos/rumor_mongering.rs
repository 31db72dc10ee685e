//! Rumor mongering: SIR epidemic push with feedback, where a spreader loses
//! interest after telling processes that already knew.

use rand::Rng;
use synod_simnet::{ClockConfig, Ctx, NetConfig, ProcId, Process, Sim, Time};

use crate::algos::gossip_common::{random_peer, run_rounds, sim_options, ROUND};
use crate::harness::{net_for, run_faulted};
use crate::registry::{Algorithm, FaultModel};
use synod_simnet::Fault;
use crate::report::{Check, Cost, LabOptions, LabReport, LabRun};

/// The registry entry.
pub const ALGORITHM: Algorithm = Algorithm {
    name: "rumor-mongering",
    family: "gossip",
    summary: "SIR rumor spreading with feedback and loss of interest k; residue vs e^-(k+1)(1-s)",
    description: "Rumor mongering (Demers et al. 1987), push with feedback, one rumor from P0.\n\
Processes are susceptible (never heard), infective (spreading) or removed\n\
(lost interest). Every 100 ms round each infective process tells the rumor to a\n\
uniformly random peer, which replies whether it already knew. A susceptible\n\
receiver becomes infective. On an unnecessary contact (the peer knew) the\n\
sender loses interest with probability 1/k (coin, the default, k = 2), or\n\
after k unnecessary contacts (counter variant).\n\
Guarantee: the epidemic quiesces (no infective process is left) within a\n\
bounded number of rounds; unlike anti-entropy, some processes may never hear\n\
the rumor.\n\
Cost: the residue s (fraction never hearing it) solves s = e^{-(k+1)(1-s)} for\n\
the feedback/coin model as N grows (k = 1: 0.203, k = 2: 0.060, k = 3: 0.020);\n\
the counter variant does better. Traffic m (pushes per process) relates to it\n\
by s ≈ e^{-m}. Rounds to quiescence grow as O(log N).",
    variants: &[
        ("k1", "lose interest with probability 1 (k = 1)"),
        ("k3", "k = 3"),
        ("k4", "k = 4"),
        (
            "counter",
            "lose interest after k = 2 unnecessary contacts (counter, not coin)",
        ),
        (
            "never-lose-interest",
            "planted bug: spreaders never lose interest, so the epidemic never quiesces",
        ),
    ],
    default_nodes: 16,
    nodes: (1, 100_000),
    faults: FaultModel {
        tolerates: &[Fault::Loss, Fault::Duplicate, Fault::Reorder, Fault::Partition, Fault::OneWay, Fault::Clog, Fault::Crash, Fault::Skew],
        outside: &[],
        refused: "every fault kind applies",
    },
    run,
};

/// Rumor messages.
#[derive(Clone, Debug)]
pub enum RumorMsg {
    /// The rumor.
    Rumor,
    /// Feedback: whether the receiver already knew it.
    Feedback {
        /// It already knew.
        knew: bool,
    },
}

/// Loss-of-interest rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interest {
    /// Probability 1/k on each unnecessary contact.
    Coin(u32),
    /// After k unnecessary contacts.
    Counter(u32),
    /// Never (the planted bug).
    Never,
}

/// SIR state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sir {
    /// Never heard.
    Susceptible,
    /// Spreading.
    Infective,
    /// Lost interest.
    Removed,
}

/// One process.
#[derive(Clone, Debug)]
pub struct RumorProc {
    rule: Interest,
    /// Its state.
    pub state: Sir,
    unnecessary: u32,
    /// Rumors pushed.
    pub pushes: u32,
}

impl Process for RumorProc {
    type Msg = RumorMsg;

    fn on_start(&mut self, ctx: &mut Ctx<'_, RumorMsg>) {
        ctx.set_timer(ROUND - ctx.now() % ROUND, 0);
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_, RumorMsg>, _tag: u64) {
        ctx.set_timer(ROUND, 0);
        let (me, n) = (ctx.id(), ctx.n());
        if self.state == Sir::Infective && n >= 2 {
            let peer = random_peer(ctx.rng(), me, n);
            self.pushes += 1;
            ctx.send(peer, RumorMsg::Rumor);
        }
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, RumorMsg>, from: ProcId, msg: RumorMsg) {
        match msg {
            RumorMsg::Rumor => {
                let knew = self.state != Sir::Susceptible;
                if !knew {
                    self.state = Sir::Infective;
                    ctx.mark("heard");
                }
                ctx.send(from, RumorMsg::Feedback { knew });
            }
            RumorMsg::Feedback { knew: true } if self.state == Sir::Infective => {
                self.unnecessary += 1;
                let lose = match self.rule {
                    Interest::Coin(k) => ctx.rng().random_range(0..k) == 0,
                    Interest::Counter(k) => self.unnecessary >= k,
                    Interest::Never => false,
                };
                if lose {
                    self.state = Sir::Removed;
                    ctx.mark("lost interest");
                }
            }
            RumorMsg::Feedback { .. } => {}
        }
    }

    fn msg_bytes(msg: &RumorMsg) -> usize {
        match msg {
            RumorMsg::Rumor => 72,
            RumorMsg::Feedback { .. } => 9,
        }
    }

    fn msg_label(msg: &RumorMsg) -> String {
        match msg {
            RumorMsg::Rumor => "Rumor".into(),
            RumorMsg::Feedback { knew: true } => "Knew".into(),
            RumorMsg::Feedback { knew: false } => "New".into(),
        }
    }
}

/// The loss-of-interest rule of a run of `opts`.
pub fn rule(opts: &LabOptions) -> Interest {
    match opts.variant.as_deref() {
        Some("k1") => Interest::Coin(1),
        Some("k3") => Interest::Coin(3),
        Some("k4") => Interest::Coin(4),
        Some("counter") => Interest::Counter(2),
        Some("never-lose-interest") => Interest::Never,
        _ => Interest::Coin(2),
    }
}

/// The non-trivial root of s = e^{-(k+1)(1-s)} (the residue of the feedback/coin model).
pub fn residue_theory(k: u32) -> f64 {
    let c = (k + 1) as f64;
    // Iterating from 0 climbs monotonically to the smallest root, below 1.
    let mut s = 0.0f64;
    for _ in 0..200 {
        s = (-c * (1.0 - s)).exp();
    }
    s
}

/// At most this many rounds.
pub fn round_limit(n: usize) -> u32 {
    let n = (n as f64).max(2.0);
    (6.0 * (n.log2() + n.ln())).ceil() as u32 + 30
}

fn fresh(rule: Interest, source: bool) -> RumorProc {
    RumorProc {
        rule,
        state: if source {
            Sir::Infective
        } else {
            Sir::Susceptible
        },
        unnecessary: 0,
        pushes: 0,
    }
}

fn run(opts: &LabOptions) -> LabRun {
    let n = opts.nodes;
    let rule = rule(opts);
    let procs = (0..n).map(|p| fresh(rule, p == 0)).collect();
    let mut sim = Sim::with_options(
        opts.seed,
        procs,
        net_for(&opts.faults, NetConfig::reliable()),
        ClockConfig::perfect(),
        sim_options(n),
    );
    let limit = round_limit(n);
    let quiet =
        |s: &Sim<RumorProc>| (0..s.len()).all(|p| !s.is_up(p) || s.proc(p).state != Sir::Infective);
    let rounds = if opts
        .faults
        .iter()
        .any(|f| !matches!(f.name(), "loss" | "duplicate" | "reorder"))
    {
        run_faulted(
            &mut sim,
            opts,
            limit as Time * ROUND + ROUND * 9 / 10,
            |_| fresh(rule, false),
        );
        limit
    } else {
        run_rounds(&mut sim, limit, quiet)
    };
    let mut report = LabReport::new(ALGORITHM.name, opts);
    let spreading = (0..n)
        .filter(|&p| sim.is_up(p) && sim.proc(p).state == Sir::Infective)
        .count();
    report.checks.push(Check::new(
        "the epidemic quiesces (no spreader left)",
        spreading == 0 || n < 2,
        if spreading == 0 {
            format!("quiet after {rounds} rounds")
        } else {
            format!("{spreading} processes still spreading after {limit} rounds")
        },
    ));
    let never = (0..n)
        .filter(|&p| sim.proc(p).state == Sir::Susceptible)
        .count();
    let s = never as f64 / n as f64;
    let formula_k = match rule {
        Interest::Coin(k) | Interest::Counter(k) => k,
        Interest::Never => 0,
    };
    let theory = residue_theory(formula_k);
    report.costs.push(Cost::new(
        "residue (fraction never hearing)",
        s,
        &format!(
            "s = e^(-(k+1)(1-s)), k = {formula_k}: {theory:.4}{}",
            if matches!(rule, Interest::Counter(_)) {
                " (coin model; counter does better)"
            } else {
                ""
            }
        ),
        None,
    ));
    let pushes: u64 = sim.procs().iter().map(|p| p.pushes as u64).sum();
    let m = pushes as f64 / n as f64;
    report.costs.push(Cost::new(
        "pushes per process m",
        m,
        &format!(
            "s ≈ e^(-m): -ln s = {:.3}",
            if s > 0.0 { -s.ln() } else { f64::INFINITY }
        ),
        None,
    ));
    report.costs.push(Cost::new(
        "rounds to quiescence",
        rounds as f64,
        &format!(
            "O(log N); log2 N + ln N = {:.1}",
            (n as f64).log2() + (n as f64).ln()
        ),
        None,
    ));
    report.costs.push(Cost::new(
        "messages",
        sim.stats().sent as f64,
        "2 per push (rumor + feedback)",
        Some(2.0 * pushes as f64),
    ));
    LabRun::new(report, sim.take_trace())
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::report::opts;

    #[test]
    fn theory_values_match_demers() {
        assert!((residue_theory(1) - 0.2032).abs() < 1e-3);
        assert!((residue_theory(2) - 0.0595).abs() < 1e-3);
        assert!((residue_theory(3) - 0.0198).abs() < 1e-3);
    }

    #[test]
    fn quiesces_and_residue_is_near_theory() {
        for (v, k) in [(Some("k1"), 1), (None, 2)] {
            let mut sum = 0.0;
            for seed in 0..4 {
                let r = run(&opts(1000, seed, v)).report;
                assert!(r.passed(), "{r:?}");
                assert_eq!(r.costs[3].measured, r.costs[3].expected.unwrap());
                sum += r.costs[0].measured;
            }
            let mean = sum / 4.0;
            let t = residue_theory(k);
            assert!((mean - t).abs() < 0.05, "k={k}: mean residue {mean} vs {t}");
        }
    }

    #[test]
    fn counter_beats_coin_on_average() {
        let mean = |v| {
            (0..4)
                .map(|s| run(&opts(500, s, v)).report.costs[0].measured)
                .sum::<f64>()
        };
        assert!(mean(Some("counter")) <= mean(None));
    }

    #[test]
    fn planted_bug_is_caught() {
        let r = run(&opts(16, 1, Some("never-lose-interest"))).report;
        assert!(!r.checks[0].held, "{r:?}");
    }
}
