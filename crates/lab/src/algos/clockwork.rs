//! A process skeleton shared by the logical-clock algorithms: a bounded random
//! workload of local events and sends, with the clock rules plugged in.

use synod_simnet::{ClockConfig, Ctx, NetConfig, ProcId, Process, Sim, Trace};

use crate::harness::{net_for, run_faulted, Step, Workload};
use crate::report::LabOptions;
use rand::Rng;

/// The rules of a logical clock.
pub trait ClockRules: Clone {
    /// The timestamp piggybacked on messages.
    type Ts: Clone + std::fmt::Debug;
    /// A fresh clock for process `me` of `n`.
    fn new(me: ProcId, n: usize) -> Self;
    /// Before a local event; `pt` is the local physical clock.
    fn tick(&mut self, pt: u64);
    /// Before a send; returns the timestamp to piggyback.
    fn on_send(&mut self, pt: u64) -> Self::Ts;
    /// On receipt of `ts`.
    fn on_receive(&mut self, ts: &Self::Ts, pt: u64);
    /// The current value, as stamped on events (parsed back by the checker).
    fn show(&self) -> String;
    /// Wire size of a timestamp.
    fn bytes(ts: &Self::Ts) -> usize;
}

/// One process running clock `C` under a random workload.
#[derive(Clone, Debug)]
pub struct Node<C> {
    /// The clock.
    pub clock: C,
    work: Workload,
}

/// A message: just the timestamp.
#[derive(Clone, Debug)]
pub struct Stamped<T>(pub T);

const STEP_MIN: u64 = 1_000;
const STEP_MAX: u64 = 6_000;

impl<C: ClockRules> Process for Node<C> {
    type Msg = Stamped<C::Ts>;

    fn on_start(&mut self, ctx: &mut Ctx<'_, Self::Msg>) {
        let d = ctx.rng().random_range(STEP_MIN..=STEP_MAX);
        ctx.set_timer(d, 0);
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, Self::Msg>, _from: ProcId, msg: Self::Msg) {
        self.clock.on_receive(&msg.0, ctx.now());
        ctx.stamp(&self.clock.show());
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_, Self::Msg>, _tag: u64) {
        let (me, n) = (ctx.id(), ctx.n());
        match self.work.next(ctx.rng(), me, n) {
            None => return,
            Some(Step::Local) => {
                self.clock.tick(ctx.now());
                ctx.mark("local");
                ctx.stamp(&self.clock.show());
            }
            Some(Step::Send(to)) => {
                let ts = self.clock.on_send(ctx.now());
                ctx.send(to, Stamped(ts));
                ctx.stamp(&self.clock.show());
            }
        }
        let d = ctx.rng().random_range(STEP_MIN..=STEP_MAX);
        ctx.set_timer(d, 0);
    }

    fn msg_bytes(msg: &Self::Msg) -> usize {
        C::bytes(&msg.0)
    }

    fn msg_label(msg: &Self::Msg) -> String {
        format!("m{:?}", msg.0)
    }
}

/// Steps of the workload per process.
pub const STEPS: u32 = 10;

/// Runs `n` nodes of clock `C` (`make` may plant a bug) and returns the
/// simulator, finished.
pub fn run_clock<C: ClockRules>(
    opts: &LabOptions,
    clocks: ClockConfig,
    make: impl Fn(ProcId, usize) -> C,
) -> Sim<Node<C>> {
    let n = opts.nodes;
    let node = |i: ProcId| Node {
        clock: make(i, n),
        work: Workload {
            budget: STEPS,
            p_local: 0.3,
        },
    };
    let base = NetConfig {
        latency_min: 1_000,
        latency_max: 12_000,
        fifo: false,
        ..NetConfig::reliable()
    };
    let mut sim = Sim::new(
        opts.seed,
        (0..n).map(node).collect(),
        net_for(&opts.faults, base),
        clocks,
    );
    run_faulted(&mut sim, opts, 2_000_000, node);
    sim
}

/// The number of sends and local events recorded in `trace`.
pub fn counts(trace: &Trace) -> (usize, usize) {
    use synod_simnet::TraceKind;
    let sends = trace
        .events
        .iter()
        .filter(|e| matches!(e.kind, TraceKind::Send { .. }))
        .count();
    let locals = trace
        .events
        .iter()
        .filter(|e| matches!(e.kind, TraceKind::Mark { .. }))
        .count();
    (sends, locals)
}
