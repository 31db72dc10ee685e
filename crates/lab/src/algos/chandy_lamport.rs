//! The Chandy–Lamport snapshot over money-transfer traffic: a consistent cut
//! and conservation of money, on FIFO channels (and broken without them).

use std::collections::{BTreeMap, BTreeSet};

use rand::Rng;
use synod_simnet::{ClockConfig, Ctx, NetConfig, ProcId, Process, Sim, TraceKind};

use crate::harness::{net_for, run_faulted};
use crate::registry::{Algorithm, FaultModel};
use synod_simnet::Fault;
use crate::report::{Check, Cost, LabOptions, LabReport, LabRun};

/// The registry entry.
pub const ALGORITHM: Algorithm = Algorithm {
    name: "chandy-lamport",
    family: "global state",
    summary: "snapshot with markers on FIFO channels: consistent cut, money conserved",
    description: "Chandy–Lamport snapshot (1985), on a bank: processes transfer money.\n\
Rules: the initiator records its state and sends a MARKER on every outgoing channel.\n\
On the first MARKER (from channel c) a process records its state, records c as\n\
empty, sends MARKER on every outgoing channel, and starts recording every other\n\
incoming channel; a channel's recording stops at the MARKER on it. Messages that\n\
arrive on a channel while it is recorded form that channel's state.\n\
Assumes FIFO channels. Guarantee: the recorded states and channel states form a\n\
consistent cut (every receive in the cut has its send in the cut) and so the money\n\
recorded equals the money in the system. Variant non-fifo drops the FIFO\n\
assumption: markers overtake transfers and the snapshot loses or double-counts money.\n\
Cost: one MARKER per directed channel, n(n-1) messages; time: O(diameter) message delays.",
    variants: &[("non-fifo", "channels may reorder: markers overtake transfers (outside the model)")],
    default_nodes: 4,
    nodes: (2, 32),
    faults: FaultModel {
        tolerates: &[Fault::Partition, Fault::OneWay, Fault::Clog, Fault::Skew],
        outside: &[Fault::Loss, Fault::Duplicate, Fault::Reorder, Fault::Crash],
        refused: "every fault kind applies",
    },
    run,
};

const INITIAL: u64 = 1_000;
const TRANSFERS: u32 = 40;
const TAG_TRANSFER: u64 = 0;
const TAG_SNAPSHOT: u64 = 1;
const SNAPSHOT_AT: u64 = 30_000;

/// Bank messages.
#[derive(Clone, Debug)]
pub enum Msg {
    /// Money moving from sender to receiver.
    Transfer(u64),
    /// The snapshot marker.
    Marker,
}

/// A bank branch.
#[derive(Clone, Debug, Default)]
pub struct Branch {
    balance: u64,
    transfers_left: u32,
    /// The recorded balance, once recorded.
    pub recorded: Option<u64>,
    /// Channels (by sender) still being recorded.
    recording: BTreeSet<ProcId>,
    /// Recorded channel states: sender → amounts in transit.
    pub channels: BTreeMap<ProcId, Vec<u64>>,
    /// Whether all incoming channels are recorded.
    pub done: bool,
}

impl Branch {
    fn new() -> Self {
        Branch { balance: INITIAL, transfers_left: TRANSFERS, ..Default::default() }
    }

    fn record(&mut self, ctx: &mut Ctx<'_, Msg>, from: Option<ProcId>) {
        self.recorded = Some(self.balance);
        ctx.mark("snapshot");
        ctx.stamp(&format!("${}", self.balance));
        let (me, n) = (ctx.id(), ctx.n());
        self.recording = (0..n).filter(|&p| p != me && Some(p) != from).collect();
        for p in (0..n).filter(|&p| p != me) {
            self.channels.insert(p, vec![]);
            ctx.send(p, Msg::Marker);
        }
        self.finish_if_done(ctx);
    }

    fn finish_if_done(&mut self, ctx: &mut Ctx<'_, Msg>) {
        if self.recording.is_empty() && !self.done {
            self.done = true;
            ctx.mark("recorded");
        }
    }
}

impl Process for Branch {
    type Msg = Msg;

    fn on_start(&mut self, ctx: &mut Ctx<'_, Msg>) {
        let d = ctx.rng().random_range(1_000..=4_000);
        ctx.set_timer(d, TAG_TRANSFER);
        if ctx.id() == 0 {
            ctx.set_timer(SNAPSHOT_AT, TAG_SNAPSHOT);
        }
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, Msg>, from: ProcId, msg: Msg) {
        match msg {
            Msg::Transfer(amount) => {
                self.balance += amount;
                if self.recording.contains(&from) {
                    self.channels.entry(from).or_default().push(amount);
                }
            }
            Msg::Marker => {
                if self.recorded.is_none() {
                    self.record(ctx, Some(from));
                } else {
                    self.recording.remove(&from);
                    self.finish_if_done(ctx);
                }
            }
        }
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_, Msg>, tag: u64) {
        if tag == TAG_SNAPSHOT {
            if self.recorded.is_none() {
                self.record(ctx, None);
            }
            return;
        }
        if self.transfers_left == 0 {
            return;
        }
        self.transfers_left -= 1;
        let n = ctx.n();
        let to = (ctx.id() + ctx.rng().random_range(1..n)) % n;
        let amount = ctx.rng().random_range(1..=50).min(self.balance);
        if amount > 0 {
            self.balance -= amount;
            ctx.send(to, Msg::Transfer(amount));
        }
        let d = ctx.rng().random_range(1_000..=4_000);
        ctx.set_timer(d, TAG_TRANSFER);
    }

    fn msg_bytes(msg: &Msg) -> usize {
        match msg {
            Msg::Transfer(_) => 9,
            Msg::Marker => 1,
        }
    }

    fn msg_label(msg: &Msg) -> String {
        match msg {
            Msg::Transfer(a) => format!("Transfer({a})"),
            Msg::Marker => "Marker".to_string(),
        }
    }
}

fn run(opts: &LabOptions) -> LabRun {
    let n = opts.nodes;
    let mut base = NetConfig { latency_min: 1_000, latency_max: 15_000, ..NetConfig::reliable() };
    if opts.is_variant("non-fifo") {
        base.fifo = false;
        base.tail_prob = 0.3;
        base.tail_factor = 4;
    }
    let mut sim = Sim::new(opts.seed, (0..n).map(|_| Branch::new()).collect(), net_for(&opts.faults, base), ClockConfig::perfect());
    run_faulted(&mut sim, opts, 2_000_000, |_| Branch::new());
    let trace = sim.take_trace();
    let mut report = LabReport::new(ALGORITHM.name, opts);

    let done = (0..n).filter(|&p| sim.proc(p).done).count();
    report.checks.push(Check::new("snapshot completes at every process", done == n, format!("{done} of {n} recorded all channels")));

    // Conservation: recorded balances plus channel states equal the money in the system.
    let total = INITIAL * n as u64;
    let states: u64 = (0..n).filter_map(|p| sim.proc(p).recorded).sum();
    let in_channels: u64 = (0..n).flat_map(|p| sim.proc(p).channels.values().flatten().copied()).sum();
    report.checks.push(Check::new(
        "money conserved in the snapshot",
        done == n && states + in_channels == total,
        format!("states {states} + channels {in_channels} = {} (total {total})", states + in_channels),
    ));

    // Consistent cut: a transfer received before the receiver's snapshot was sent
    // before the sender's snapshot. Positions are trace indices.
    let mut cut: BTreeMap<ProcId, usize> = BTreeMap::new();
    let mut sent_at: BTreeMap<u64, (ProcId, usize)> = BTreeMap::new();
    for (i, e) in trace.events.iter().enumerate() {
        match &e.kind {
            TraceKind::Mark { label } if label == "snapshot" => {
                cut.entry(e.proc).or_insert(i);
            }
            TraceKind::Send { msg_id, .. } => {
                sent_at.insert(*msg_id, (e.proc, i));
            }
            _ => {}
        }
    }
    let mut orphan = None;
    let mut receives_in_cut = 0;
    for (i, e) in trace.events.iter().enumerate() {
        let TraceKind::Deliver { msg_id, label, .. } = &e.kind else { continue };
        if !label.starts_with("Transfer") || cut.get(&e.proc).is_some_and(|&c| i > c) {
            continue;
        }
        receives_in_cut += 1;
        if let Some(&(sender, si)) = sent_at.get(msg_id) {
            if cut.get(&sender).is_some_and(|&c| si > c) && orphan.is_none() {
                orphan = Some(format!("{label} from P{sender} to P{} is received inside the cut but sent outside it", e.proc));
            }
        }
    }
    report.checks.push(Check::new(
        "the cut is consistent",
        orphan.is_none() && done == n,
        orphan.unwrap_or_else(|| format!("{receives_in_cut} receives inside the cut, all with their sends inside")),
    ));

    let s = sim.stats();
    let nn = (n * (n - 1)) as f64;
    report.costs.push(Cost::new("marker messages", s.sent_of("Marker") as f64, "n(n-1): one per directed channel", Some(nn)));
    let first = cut.values().min().map(|&i| trace.events[i].time);
    let last = trace.events.iter().filter(|e| matches!(&e.kind, TraceKind::Mark { label } if label == "recorded")).map(|e| e.time).max();
    if let (Some(a), Some(b)) = (first, last) {
        report.costs.push(Cost::new("snapshot duration (µs)", (b - a) as f64, "O(diameter × max delay); diameter 1 here", None));
    }
    LabRun::new(report, trace)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_is_consistent_on_fifo_channels() {
        for seed in 0..8 {
            let r = run(&LabOptions::new(4, seed)).report;
            assert!(r.passed(), "{r:?}");
            assert_eq!(r.costs[0].measured, 12.0);
        }
    }

    #[test]
    fn non_fifo_channels_break_it() {
        let broken = (0..8)
            .filter(|&seed| {
                let mut o = LabOptions::new(4, seed);
                o.variant = Some("non-fifo".into());
                !run(&o).report.passed()
            })
            .count();
        assert!(broken >= 2, "non-FIFO broke only {broken}/8 runs");
    }
}
