//! Shared plumbing for algorithms: networks from fault lists, fault schedules,
//! and a random local/send workload.

use rand::Rng;
use synod_simnet::{
    Fault, FaultSet, Nemesis, NemesisAction, NemesisConfig, NetConfig, Pcg64Mcg, ProcId, Process,
    Sim, Time,
};

use crate::report::LabOptions;

/// The network for a run: `base`, with the message faults of `faults`
/// (loss 10 %, duplication 5 %, reordering) switched on.
pub fn net_for(faults: &FaultSet, base: NetConfig) -> NetConfig {
    let mut net = base;
    if faults.contains(Fault::Loss) {
        net.loss = 0.1;
    }
    if faults.contains(Fault::Duplicate) {
        net.duplicate = 0.05;
    }
    if faults.contains(Fault::Reorder) {
        net.fifo = false;
        net.tail_prob = net.tail_prob.max(0.2);
        net.tail_factor = net.tail_factor.max(5);
    }
    net
}

/// Runs `sim` to `until`, with the schedule faults of `opts` (partition,
/// one-way, clog, crash, skew) active between 10 % and 60 % of the run.
/// A crashed process is restarted as `rebuild(id)`.
pub fn run_faulted<P: Process>(
    sim: &mut Sim<P>,
    opts: &LabOptions,
    until: Time,
    rebuild: impl Fn(ProcId) -> P,
) {
    run_faulted_durable(sim, opts, until, |_, p| rebuild(p));
}

/// As [`run_faulted`], but a crashed process is restarted as
/// `rebuild(crashed, id)`: `crashed` is the value it had when it crashed,
/// from which `rebuild` keeps only what the algorithm writes to stable
/// storage (an acceptor's promise, a coordinator's log).
pub fn run_faulted_durable<P: Process>(
    sim: &mut Sim<P>,
    opts: &LabOptions,
    until: Time,
    rebuild: impl Fn(&P, ProcId) -> P,
) {
    let schedule = fault_schedule(opts, until);
    if schedule.is_empty() {
        sim.run_until(until);
        return;
    }
    sim.run_schedule(&schedule, until, |s, a| match a {
        NemesisAction::Crash(p) => s.crash(*p),
        NemesisAction::Restart(p) => {
            let fresh = rebuild(s.proc(*p), *p);
            s.restart(*p, fresh)
        }
        _ => unreachable!("the simulator applies network actions itself"),
    });
}

/// As [`run_faulted_durable`], with `watch` called after every event and
/// after every fault action: a checker that looks at the whole
/// configuration (crashed processes included, as their stable storage
/// left them) at every moment of the run, not at samples.
pub fn run_faulted_watched<P: Process>(
    sim: &mut Sim<P>,
    opts: &LabOptions,
    until: Time,
    rebuild: impl Fn(&P, ProcId) -> P,
    mut watch: impl FnMut(&Sim<P>),
) {
    for (t, a) in fault_schedule(opts, until) {
        if t > until {
            break;
        }
        run_watched(sim, t, &mut watch);
        match &a {
            NemesisAction::Crash(p) => sim.crash(*p),
            NemesisAction::Restart(p) => {
                let fresh = rebuild(sim.proc(*p), *p);
                sim.restart(*p, fresh)
            }
            other => {
                sim.apply(other);
            }
        }
        watch(sim);
    }
    run_watched(sim, until, &mut watch);
}

/// Runs `sim` to `until` (as `Sim::run_until`), calling `watch` after every event.
pub fn run_watched<P: Process>(sim: &mut Sim<P>, until: Time, watch: &mut impl FnMut(&Sim<P>)) {
    sim.run_while(until, |s| {
        watch(s);
        true
    });
}

/// The schedule of the faults of `opts` that act at given times
/// (partition, one-way, clog, crash, skew), between 10 % and 60 % of a run
/// that lasts until `until`; empty when there are none.
pub fn fault_schedule(opts: &LabOptions, until: Time) -> Vec<(Time, NemesisAction)> {
    let scheduled: FaultSet = opts
        .faults
        .iter()
        .filter(|f| !matches!(f, Fault::Loss | Fault::Duplicate | Fault::Reorder))
        .collect();
    if scheduled.is_empty() {
        return vec![];
    }
    let mut cfg = NemesisConfig::new(opts.nodes, until / 10, until * 6 / 10);
    cfg.mean_interval = (until / 20).max(1);
    cfg.max_crashed = cfg.max_crashed.max(1).min(opts.nodes.saturating_sub(1));
    Nemesis::new(opts.seed, scheduled, opts.nodes, cfg).schedule()
}

/// What a process of a random workload does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// An internal event.
    Local,
    /// Send to this peer.
    Send(ProcId),
}

/// A bounded random workload: `budget` steps, each local with probability
/// `p_local`, otherwise a send to a random other process.
#[derive(Clone, Debug)]
pub struct Workload {
    /// Steps left.
    pub budget: u32,
    /// Probability that a step is local.
    pub p_local: f64,
}

impl Workload {
    /// The next step, or `None` when the budget is spent.
    pub fn next(&mut self, rng: &mut Pcg64Mcg, me: ProcId, n: usize) -> Option<Step> {
        if self.budget == 0 {
            return None;
        }
        self.budget -= 1;
        if n < 2 || rng.random_bool(self.p_local) {
            return Some(Step::Local);
        }
        let to = (me + rng.random_range(1..n)) % n;
        Some(Step::Send(to))
    }
}
