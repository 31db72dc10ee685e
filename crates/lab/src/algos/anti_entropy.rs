//! Anti-entropy: epidemic dissemination of one update by push, pull or
//! push-pull rounds with a uniformly random partner each round.

use synod_simnet::{ClockConfig, Ctx, NetConfig, ProcId, Process, Sim, Time};

use crate::algos::gossip_common::{random_peer, run_rounds, sim_options, ROUND};
use crate::harness::{net_for, run_faulted};
use crate::registry::{Algorithm, FaultModel};
use synod_simnet::Fault;
use crate::report::{Check, Cost, LabOptions, LabReport, LabRun};

/// The registry entry.
pub const ALGORITHM: Algorithm = Algorithm {
    name: "anti-entropy",
    family: "gossip",
    summary: "epidemic spread of one update by push, pull or push-pull rounds",
    description: "Anti-entropy (Demers et al. 1987), one update starting at P0.\n\
Every 100 ms round, each process contacts one uniformly random peer:\n\
  push: a process holding the update sends it;\n\
  pull: every process sends a digest of what it holds; a peer that holds\n\
        the update and sees the sender lacks it replies with it;\n\
  push-pull: every process sends its digest (with the update if it holds\n\
        it); the peer takes what it lacks and replies with what the sender lacks.\n\
Guarantee: every live process eventually holds the update (probability 1,\n\
even with message loss, since contacts repeat every round).\n\
Cost, rounds until everyone holds it: push log2 N + ln N (Pittel 1987);\n\
pull log2 N + log2 ln N (the uninformed fraction squares each late round);\n\
push-pull log3 N + log2 ln N (Karp et al. 2000). Each is a high-probability\n\
estimate, not an exact count.",
    variants: &[
        ("push", "push only (the default)"),
        ("pull", "pull only"),
        ("push-pull", "push and pull in every contact"),
        (
            "push-once",
            "planted bug: push the update only in the round after receiving it",
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

/// Which way updates travel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Holders send.
    Push,
    /// Everyone asks.
    Pull,
    /// Both in one exchange.
    PushPull,
}

/// Anti-entropy messages; `r` is the sender's round.
#[derive(Clone, Debug)]
pub enum AeMsg {
    /// The update, pushed.
    Push {
        /// Round.
        r: u32,
    },
    /// A digest: whether the sender holds the update (and, if so, the update).
    Digest {
        /// Round.
        r: u32,
        /// The sender holds the update.
        has: bool,
        /// The update travels along (push-pull).
        data: bool,
    },
    /// The update, in reply to a digest that lacked it.
    Update {
        /// Round.
        r: u32,
    },
}

const UPDATE_BYTES: usize = 72;
const DIGEST_BYTES: usize = 16;

/// One process.
#[derive(Clone, Debug)]
pub struct AeProc {
    mode: Mode,
    push_once: bool,
    /// The round in which this process got the update (0 for the source).
    pub infected: Option<u32>,
}

impl AeProc {
    fn infect(&mut self, ctx: &mut Ctx<'_, AeMsg>, r: u32) {
        if self.infected.is_none() {
            self.infected = Some(r);
            ctx.mark("has update");
            ctx.stamp(&format!("r{r}"));
        }
    }
}

fn round_of(now: Time) -> u32 {
    ((now + ROUND / 2) / ROUND) as u32
}

impl Process for AeProc {
    type Msg = AeMsg;

    fn on_start(&mut self, ctx: &mut Ctx<'_, AeMsg>) {
        ctx.set_timer(ROUND - ctx.now() % ROUND, 0);
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_, AeMsg>, _tag: u64) {
        ctx.set_timer(ROUND, 0);
        let (me, n) = (ctx.id(), ctx.n());
        if n < 2 {
            return;
        }
        let r = round_of(ctx.now());
        let peer = random_peer(ctx.rng(), me, n);
        match self.mode {
            Mode::Push => {
                let fresh = self.infected.is_some_and(|i| i + 1 == r);
                if self.infected.is_some() && (!self.push_once || fresh) {
                    ctx.send(peer, AeMsg::Push { r });
                }
            }
            Mode::Pull | Mode::PushPull => {
                let has = self.infected.is_some();
                let data = has && self.mode == Mode::PushPull;
                ctx.send(peer, AeMsg::Digest { r, has, data });
            }
        }
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, AeMsg>, from: ProcId, msg: AeMsg) {
        match msg {
            AeMsg::Push { r } | AeMsg::Update { r } => self.infect(ctx, r),
            AeMsg::Digest { r, has, data } => {
                if data {
                    self.infect(ctx, r);
                } else if !has && self.infected.is_some() {
                    ctx.send(from, AeMsg::Update { r });
                }
            }
        }
    }

    fn msg_bytes(msg: &AeMsg) -> usize {
        match msg {
            AeMsg::Push { .. } | AeMsg::Update { .. } => UPDATE_BYTES,
            AeMsg::Digest { data: true, .. } => DIGEST_BYTES + UPDATE_BYTES,
            AeMsg::Digest { data: false, .. } => DIGEST_BYTES,
        }
    }

    fn msg_label(msg: &AeMsg) -> String {
        match msg {
            AeMsg::Push { .. } => "Push".into(),
            AeMsg::Digest { data: true, .. } => "Digest+".into(),
            AeMsg::Digest { .. } => "Digest".into(),
            AeMsg::Update { .. } => "Update".into(),
        }
    }
}

/// The mode a run of `opts` uses.
pub fn mode(opts: &LabOptions) -> Mode {
    if opts.is_variant("pull") {
        Mode::Pull
    } else if opts.is_variant("push-pull") {
        Mode::PushPull
    } else {
        Mode::Push
    }
}

/// The textbook estimate of rounds to full spread, and its formula.
pub fn predicted_rounds(mode: Mode, n: usize) -> (f64, &'static str) {
    let n = (n as f64).max(2.0);
    let lnln = n.ln().max(1.0).log2();
    match mode {
        Mode::Push => (n.log2() + n.ln(), "log2 N + ln N (push, Pittel 1987)"),
        Mode::Pull => (n.log2() + lnln, "log2 N + log2 ln N (pull)"),
        Mode::PushPull => (
            n.ln() / 3f64.ln() + lnln,
            "log3 N + log2 ln N (push-pull, Karp et al. 2000)",
        ),
    }
}

/// At most this many rounds: several times the slowest estimate.
pub fn round_limit(n: usize) -> u32 {
    let n = (n as f64).max(2.0);
    (4.0 * (n.log2() + n.ln())).ceil() as u32 + 20
}

fn run(opts: &LabOptions) -> LabRun {
    let n = opts.nodes;
    let m = mode(opts);
    let push_once = opts.is_variant("push-once");
    let procs = (0..n)
        .map(|p| AeProc {
            mode: m,
            push_once,
            infected: (p == 0).then_some(0),
        })
        .collect();
    let mut sim = Sim::with_options(
        opts.seed,
        procs,
        net_for(&opts.faults, NetConfig::reliable()),
        ClockConfig::perfect(),
        sim_options(n),
    );
    let limit = round_limit(n);
    let all_have =
        |s: &Sim<AeProc>| (0..s.len()).all(|p| !s.is_up(p) || s.proc(p).infected.is_some());
    let rounds_run = if opts
        .faults
        .iter()
        .any(|f| !matches!(f.name(), "loss" | "duplicate" | "reorder"))
    {
        let until = limit as Time * ROUND + ROUND * 9 / 10;
        run_faulted(&mut sim, opts, until, |_| AeProc {
            mode: m,
            push_once,
            infected: None,
        });
        limit
    } else {
        run_rounds(&mut sim, limit, all_have)
    };
    let mut report = LabReport::new(ALGORITHM.name, opts);
    let live: Vec<ProcId> = (0..n).filter(|&p| sim.is_up(p)).collect();
    let missing: Vec<ProcId> = live
        .iter()
        .copied()
        .filter(|&p| sim.proc(p).infected.is_none())
        .collect();
    report.checks.push(Check::new(
        "every live process holds the update",
        missing.is_empty(),
        if missing.is_empty() {
            format!(
                "{} live processes of {n} after {rounds_run} rounds",
                live.len()
            )
        } else {
            format!(
                "{} of {} live processes never got it (first: P{})",
                missing.len(),
                live.len(),
                missing[0]
            )
        },
    ));
    let spread = live
        .iter()
        .filter_map(|&p| sim.proc(p).infected)
        .max()
        .unwrap_or(0);
    let (pred, formula) = predicted_rounds(m, n);
    report.costs.push(Cost::new(
        "rounds to full spread",
        spread as f64,
        &format!("{formula} ≈ {pred:.1}"),
        None,
    ));
    let s = sim.stats();
    report.costs.push(Cost::new(
        "messages per process",
        s.sent as f64 / n as f64,
        "push: one per holder per round; pull/push-pull: one digest per process per round plus replies",
        None,
    ));
    report.costs.push(Cost::new(
        "bytes per process",
        s.bytes as f64 / n as f64,
        "72-byte update, 16-byte digest",
        None,
    ));
    LabRun::new(report, sim.take_trace())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(n: usize, seed: u64, variant: &str) -> LabOptions {
        let mut o = LabOptions::new(n, seed);
        o.variant = Some(variant.to_string());
        o
    }

    #[test]
    fn all_modes_converge_near_the_textbook_rounds() {
        for v in ["push", "pull", "push-pull"] {
            for seed in 0..3 {
                let r = run(&opts(200, seed, v)).report;
                assert!(r.passed(), "{v} {r:?}");
                let (pred, _) = predicted_rounds(mode(&opts(1, 0, v)), 200);
                let got = r.costs[0].measured;
                assert!(
                    got >= pred * 0.5 && got <= pred * 2.0,
                    "{v}: {got} rounds vs {pred}"
                );
            }
        }
    }

    #[test]
    fn push_pull_is_faster_than_push() {
        let total = |v: &str| {
            (0..4)
                .map(|s| run(&opts(300, s, v)).report.costs[0].measured)
                .sum::<f64>()
        };
        assert!(total("push-pull") < total("push"));
    }

    #[test]
    fn converges_under_loss() {
        let mut o = opts(50, 3, "push");
        o.faults = synod_simnet::Fault::parse_list("loss,duplicate").unwrap();
        assert!(run(&o).report.passed());
    }

    #[test]
    fn planted_bug_is_caught() {
        let caught = (0..5)
            .filter(|&s| !run(&opts(32, s, "push-once")).report.passed())
            .count();
        assert!(caught >= 3, "caught in {caught} of 5 seeds");
    }
}
