//! RPC call semantics under loss and retries: at-most-once (no retry),
//! at-least-once (retry, no deduplication) and exactly-once (retry with an
//! idempotency key the server remembers).

use std::collections::BTreeMap;

use synod_simnet::{ClockConfig, Ctx, Fault, NetConfig, ProcId, Process, Sim, Time};

use crate::harness::{net_for, run_faulted_durable};
use crate::registry::{Algorithm, FaultModel};
use crate::report::{Check, Cost, LabOptions, LabReport, LabRun};

/// The registry entry.
pub const ALGORITHM: Algorithm = Algorithm {
    name: "rpc-semantics",
    family: "coordination and security",
    summary: "at-most-once, at-least-once, exactly-once (idempotency keys) under loss and retries",
    description: "RPC semantics (Birrell & Nelson 1984; Spector 1982). P0 is a server holding\n\
one counter; P1..P(N-1) are clients, each calling increment() 10 times, one call at\n\
a time. Increment is not idempotent.\n\
At-most-once: the client sends once and gives up after a timeout: a lost request\n\
or reply leaves the call's fate unknown to it (done or not), never done twice.\n\
At-least-once: the client resends on every timeout until a reply comes; the server\n\
executes every copy: a lost reply or a duplicate executes the call twice.\n\
Exactly-once (default): the client resends with the same idempotency key\n\
(client, call number); the server remembers the last key and reply of each client\n\
(on stable storage) and answers a repeat from that table without executing it.\n\
Guarantee (exactly-once): every call completes and takes effect once, so the\n\
counter ends at 10(N-1), through loss, duplication, partitions and crashes.\n\
Cost: 2 messages per call without loss, 20(N-1) in all; each retry costs 1-2 more.",
    variants: &[
        ("at-most-once", "no retries: lost calls are never completed"),
        (
            "at-least-once",
            "retries without deduplication: some calls execute twice",
        ),
    ],
    default_nodes: 4,
    nodes: (2, 64),
    faults: FaultModel::EVERY,
    run,
};

/// RPC messages.
#[derive(Clone, Debug)]
pub enum RpcMsg {
    /// increment(), call number.
    Call(u32),
    /// The counter's value after the call.
    Return(u32, u64),
}

/// How calls are made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    AtMost,
    AtLeast,
    Exactly,
}

/// Server (P0) or client.
#[derive(Clone, Debug)]
pub struct Node {
    mode: Mode,
    begin: Time,
    // Server, stable storage.
    /// The counter.
    pub counter: u64,
    /// Executions per (client, call).
    pub executed: BTreeMap<(ProcId, u32), u32>,
    dedup: BTreeMap<ProcId, (u32, u64)>,
    // Client, stable storage.
    /// The call in progress (1-based); past the last when done.
    pub call: u32,
    /// Calls that returned.
    pub returned: u32,
    /// Calls given up (at-most-once).
    pub given_up: u32,
    /// Resends.
    pub retries: u32,
}

const CALLS: u32 = 10;
const TIMEOUT: Time = 40_000;
const CALL: u64 = 0;
const EXPIRE: u64 = 1;

impl Node {
    fn next_call(&mut self, ctx: &mut Ctx<'_, RpcMsg>) {
        if self.call > CALLS {
            return;
        }
        ctx.send(0, RpcMsg::Call(self.call));
        ctx.set_timer(TIMEOUT, EXPIRE + 2 * u64::from(self.call));
    }
}

impl Process for Node {
    type Msg = RpcMsg;

    fn on_start(&mut self, ctx: &mut Ctx<'_, RpcMsg>) {
        if ctx.id() != 0 && self.call <= CALLS {
            ctx.set_timer(self.begin, CALL);
        }
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_, RpcMsg>, tag: u64) {
        if tag == CALL {
            self.next_call(ctx);
            return;
        }
        let k = ((tag - EXPIRE) / 2) as u32;
        if k != self.call {
            return; // that call returned
        }
        match self.mode {
            Mode::AtMost => {
                self.given_up += 1;
                ctx.mark(&format!("call {k} gave up"));
                self.call += 1;
                self.next_call(ctx);
            }
            Mode::AtLeast | Mode::Exactly => {
                self.retries += 1;
                self.next_call(ctx);
            }
        }
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, RpcMsg>, from: ProcId, msg: RpcMsg) {
        match msg {
            RpcMsg::Call(k) => {
                if self.mode == Mode::Exactly {
                    match self.dedup.get(&from) {
                        Some(&(last, v)) if last == k => {
                            ctx.mark(&format!("repeat of P{from}#{k}"));
                            ctx.send(from, RpcMsg::Return(k, v));
                            return;
                        }
                        Some(&(last, _)) if last > k => return, // an old copy
                        _ => {}
                    }
                }
                self.counter += 1;
                *self.executed.entry((from, k)).or_default() += 1;
                self.dedup.insert(from, (k, self.counter));
                ctx.send(from, RpcMsg::Return(k, self.counter));
            }
            RpcMsg::Return(k, _) if k == self.call => {
                self.returned += 1;
                self.call += 1;
                self.next_call(ctx);
            }
            RpcMsg::Return(..) => {}
        }
    }

    fn msg_bytes(_msg: &RpcMsg) -> usize {
        16
    }

    fn msg_label(msg: &RpcMsg) -> String {
        match msg {
            RpcMsg::Call(k) => format!("Call#{k}"),
            RpcMsg::Return(k, v) => format!("Return#{k}={v}"),
        }
    }
}

fn run(opts: &LabOptions) -> LabRun {
    let n = opts.nodes;
    let mode = if opts.is_variant("at-most-once") {
        Mode::AtMost
    } else if opts.is_variant("at-least-once") {
        Mode::AtLeast
    } else {
        Mode::Exactly
    };
    let until: Time = 4_000_000;
    let make = |_: ProcId| Node {
        mode,
        begin: until / 10,
        counter: 0,
        executed: BTreeMap::new(),
        dedup: BTreeMap::new(),
        call: 1,
        returned: 0,
        given_up: 0,
        retries: 0,
    };
    let mut sim = Sim::new(
        opts.seed,
        (0..n).map(make).collect(),
        net_for(&opts.faults, NetConfig::reliable()),
        ClockConfig::perfect(),
    );
    run_faulted_durable(&mut sim, opts, until, |crashed, _| Node {
        begin: TIMEOUT,
        ..crashed.clone()
    });
    let trace = sim.take_trace();
    let server = sim.proc(0);
    let calls = CALLS as u64 * (n as u64 - 1);
    let twice: Vec<String> = server
        .executed
        .iter()
        .filter(|(_, &c)| c > 1)
        .take(3)
        .map(|((p, k), c)| format!("P{p} call {k} ×{c}"))
        .collect();
    let returned: u32 = (1..n).map(|p| sim.proc(p).returned).sum();
    let given_up: u32 = (1..n).map(|p| sim.proc(p).given_up).sum();
    let retries: u32 = (1..n).map(|p| sim.proc(p).retries).sum();
    let mut report = LabReport::new(ALGORITHM.name, opts);
    report.checks.push(Check::new(
        "no call takes effect twice",
        twice.is_empty(),
        if twice.is_empty() {
            format!("{} calls executed once each", server.executed.len())
        } else {
            twice.join(", ")
        },
    ));
    report.checks.push(Check::new(
        "every call completes",
        returned as u64 == calls,
        format!("{returned} of {calls} returned, {given_up} given up"),
    ));
    report.checks.push(Check::new(
        "the counter equals the calls that took effect",
        server.counter == server.executed.values().map(|&c| u64::from(c)).sum::<u64>(),
        format!("counter {} after {calls} calls", server.counter),
    ));
    let s = sim.stats();
    let plain = opts.faults.is_empty();
    report.costs.push(Cost::new(
        "messages",
        s.sent as f64,
        "2 per call without loss: 20(N-1)",
        plain.then_some(2.0 * calls as f64),
    ));
    let mut retry_cost = Cost::new(
        "retries",
        retries as f64,
        "0 without loss; about (1/(1-p)² - 1) per call at loss p",
        plain.then_some(0.0),
    );
    if mode != Mode::AtMost && opts.faults == [Fault::Loss].into_iter().collect() {
        let p = net_for(&opts.faults, NetConfig::reliable()).loss;
        retry_cost = retry_cost.near(calls as f64 * (1.0 / ((1.0 - p) * (1.0 - p)) - 1.0));
    }
    report.costs.push(retry_cost);
    LabRun::new(report, trace)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lossy(variant: Option<&str>, seed: u64) -> LabReport {
        let mut o = LabOptions::new(4, seed);
        o.variant = variant.map(str::to_string);
        o.faults = [Fault::Loss].into_iter().collect();
        run(&o).report
    }

    #[test]
    fn exactly_once_survives_loss_and_duplicates() {
        for seed in 0..5 {
            let r = run(&LabOptions::new(4, seed)).report;
            assert!(r.passed(), "{r:?}");
            assert_eq!(r.costs[0].measured, 60.0);
            assert!(lossy(None, seed).passed());
        }
    }

    #[test]
    fn at_least_once_executes_twice_under_loss() {
        let r = lossy(Some("at-least-once"), 1);
        assert!(!r.checks[0].held && r.checks[1].held, "{r:?}");
    }

    #[test]
    fn at_most_once_loses_calls_under_loss() {
        let r = lossy(Some("at-most-once"), 1);
        assert!(r.checks[0].held && !r.checks[1].held, "{r:?}");
    }
}
