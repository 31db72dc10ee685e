//! The engine: the event queue, the network model, processes and their contexts.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque};

use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;

use crate::clock::{ClockConfig, ClockModel};
use crate::config::NetConfig;
use crate::fault::NemesisAction;
use crate::hash::{derive_seed, mix, mix_str};
use crate::trace::{label_kind, DropReason, Stats, Trace, TraceEvent, TraceKind};
use crate::{ProcId, Process, Time, ALL, EXTERNAL};

/// A handle to a pending timer, for [`Ctx::cancel_timer`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimerId(pub u64);

/// The outcome of [`Sim::apply`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    /// The simulator applied the action.
    Done,
    /// A crash or restart: only the caller can rebuild a process, so it must act.
    CallerMustHandle,
}

/// What a [`Sim`] records besides the trace hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SimOptions {
    /// Record trace events (default on; turn off for big runs).
    pub tracing: bool,
    /// At most this many recorded events (default 2 000 000).
    pub trace_limit: usize,
    /// Count messages by label in [`Stats::by_label`] (default on).
    pub label_counts: bool,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            tracing: true,
            trace_limit: DEFAULT_TRACE_LIMIT,
            label_counts: true,
        }
    }
}

/// Hard bound on queued events; a run that exceeds it has a runaway process.
const MAX_QUEUE: usize = 64 << 20;
/// Default bound on recorded trace events.
const DEFAULT_TRACE_LIMIT: usize = 2_000_000;

// Random stream identifiers for `derive_seed`.
const STREAM_NET: u64 = 1;
const STREAM_CLOCK: u64 = 2;
const STREAM_PROC: u64 = 3;

// Event codes folded into the trace hash.
const H_SEND: u64 = 1;
const H_DELIVER: u64 = 2;
const H_DROP: u64 = 3;
const H_TIMER: u64 = 4;
const H_MARK: u64 = 5;
const H_CRASH: u64 = 6;
const H_RESTART: u64 = 7;
const H_FAULT: u64 = 8;
const H_STAMP: u64 = 9;
const H_HOLD: u64 = 10;

enum Ev<M> {
    Deliver {
        msg_id: u64,
        from: ProcId,
        to: ProcId,
        msg: M,
        lost: bool,
    },
    Timer {
        proc: ProcId,
        id: u64,
        tag: u64,
        incarnation: u32,
    },
}

struct Entry<M> {
    time: Time,
    seq: u64,
    ev: Ev<M>,
}

impl<M> PartialEq for Entry<M> {
    fn eq(&self, other: &Self) -> bool {
        (self.time, self.seq) == (other.time, other.seq)
    }
}
impl<M> Eq for Entry<M> {}
impl<M> PartialOrd for Entry<M> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<M> Ord for Entry<M> {
    // Reversed: `BinaryHeap` is a max-heap and we want the earliest (time, seq).
    fn cmp(&self, other: &Self) -> Ordering {
        (other.time, other.seq).cmp(&(self.time, self.seq))
    }
}

struct Held<M> {
    msg_id: u64,
    msg: M,
}

/// Everything but the processes: the part of the simulator a [`Ctx`] reaches.
struct Core<M> {
    n: usize,
    now: Time,
    seq: u64,
    queue: BinaryHeap<Entry<M>>,
    net: NetConfig,
    loss_override: Option<f64>,
    dup_override: Option<f64>,
    reorder_override: bool,
    net_rng: Pcg64Mcg,
    rngs: Vec<Pcg64Mcg>,
    clocks: Vec<ClockModel>,
    up: Vec<bool>,
    incarnation: Vec<u32>,
    live_timers: BTreeSet<u64>,
    next_timer: u64,
    next_msg: u64,
    in_flight: usize,
    group: Vec<u32>,
    partitioned: bool,
    blocked: BTreeSet<(ProcId, ProcId)>,
    clogged: BTreeSet<(ProcId, ProcId)>,
    held: BTreeMap<(ProcId, ProcId), VecDeque<Held<M>>>,
    fifo_last: BTreeMap<(ProcId, ProcId), Time>,
    stats: Stats,
    trace: Trace,
    tracing: bool,
    trace_limit: usize,
    count_labels: bool,
    current: Option<usize>,
    hash: u64,
    bytes_fn: fn(&M) -> usize,
    label_fn: fn(&M) -> String,
}

impl<M: Clone> Core<M> {
    fn push(&mut self, time: Time, ev: Ev<M>) {
        assert!(time >= self.now, "event scheduled in the past");
        assert!(
            self.queue.len() < MAX_QUEUE,
            "event queue exceeds {MAX_QUEUE}: runaway process"
        );
        self.seq += 1;
        self.queue.push(Entry {
            time,
            seq: self.seq,
            ev,
        });
    }

    fn fold(&mut self, code: u64, proc: ProcId, a: u64, b: u64) {
        let mut h = mix(self.hash, code);
        h = mix(h, self.now);
        h = mix(h, proc as u64);
        h = mix(h, a);
        self.hash = mix(h, b);
    }

    fn record(&mut self, proc: ProcId, kind: TraceKind) {
        if !self.tracing {
            return;
        }
        if self.trace.events.len() >= self.trace_limit {
            self.trace.truncated += 1;
            self.current = None;
            return;
        }
        self.current = Some(self.trace.events.len());
        self.trace.events.push(TraceEvent {
            time: self.now,
            proc,
            kind,
            stamp: None,
        });
    }

    fn fault(&mut self, proc: ProcId, desc: String) {
        self.hash = mix_str(self.hash, &desc);
        self.fold(H_FAULT, proc, 0, 0);
        self.record(proc, TraceKind::Fault { desc });
    }

    fn drop_msg(&mut self, at: ProcId, msg_id: u64, reason: DropReason) {
        *self.stats.dropped.entry(reason).or_insert(0) += 1;
        self.fold(H_DROP, at, msg_id, reason as u64);
        self.record(at, TraceKind::Drop { msg_id, reason });
    }

    fn link_ok(&self, from: ProcId, to: ProcId) -> bool {
        if from == EXTERNAL || from == to {
            return true;
        }
        if self.partitioned && self.group[from] != self.group[to] {
            return false;
        }
        self.blocked.is_empty() || !self.blocked.contains(&(from, to))
    }

    fn tail_prob(&self) -> (f64, u64) {
        if self.reorder_override {
            (self.net.tail_prob.max(0.2), self.net.tail_factor.max(10))
        } else {
            (self.net.tail_prob, self.net.tail_factor)
        }
    }

    fn fifo(&self) -> bool {
        self.net.fifo && !self.reorder_override
    }

    fn latency(&mut self) -> Time {
        let (min, max) = (self.net.latency_min, self.net.latency_max);
        let mut l = if min == max {
            min
        } else {
            self.net_rng.random_range(min..=max)
        };
        let (tp, tf) = self.tail_prob();
        if tp > 0.0 && self.net_rng.random_bool(tp) {
            l = l.saturating_mul(tf);
        }
        l
    }

    fn arrival(&mut self, from: ProcId, to: ProcId, base: Time) -> Time {
        let mut t = self.now + base;
        if self.fifo() {
            let last = self.fifo_last.entry((from, to)).or_insert(0);
            t = t.max(*last);
            *last = t;
        }
        t
    }

    fn send(&mut self, from: ProcId, to: ProcId, msg: M) {
        assert!(
            to < self.n,
            "process {from} sent to {to}, but there are only {} processes",
            self.n
        );
        let msg_id = self.next_msg;
        self.next_msg += 1;
        let bytes = (self.bytes_fn)(&msg);
        self.stats.sent += 1;
        self.stats.bytes += bytes as u64;
        self.fold(H_SEND, from, msg_id, ((to as u64) << 32) ^ bytes as u64);
        if self.tracing || self.count_labels {
            let label = (self.label_fn)(&msg);
            if self.count_labels {
                let kind = label_kind(&label);
                match self.stats.by_label.get_mut(kind) {
                    Some(c) => *c += 1,
                    None => {
                        self.stats.by_label.insert(kind.to_string(), 1);
                    }
                }
            }
            self.record(
                from,
                TraceKind::Send {
                    msg_id,
                    to,
                    label,
                    bytes,
                },
            );
        }
        if self.in_flight >= self.net.max_in_flight {
            self.drop_msg(from, msg_id, DropReason::Overflow);
            return;
        }
        let loss = self.loss_override.unwrap_or(self.net.loss);
        let lost = loss > 0.0 && self.net_rng.random_bool(loss);
        let dup = self.dup_override.unwrap_or(self.net.duplicate);
        let dup = !lost && dup > 0.0 && self.net_rng.random_bool(dup);
        let lat = self.latency();
        let t = self.arrival(from, to, lat);
        if dup && self.in_flight + 1 < self.net.max_in_flight {
            self.stats.duplicated += 1;
            let lat2 = self.latency();
            let t2 = self.arrival(from, to, lat2);
            self.in_flight += 1;
            self.push(
                t2,
                Ev::Deliver {
                    msg_id,
                    from,
                    to,
                    msg: msg.clone(),
                    lost: false,
                },
            );
        }
        self.in_flight += 1;
        self.push(
            t,
            Ev::Deliver {
                msg_id,
                from,
                to,
                msg,
                lost,
            },
        );
    }

    fn set_timer(&mut self, proc: ProcId, after: Time, tag: u64) -> TimerId {
        let at = self.clocks[proc].true_deadline(self.now, after);
        let id = self.next_timer;
        self.next_timer += 1;
        self.live_timers.insert(id);
        let incarnation = self.incarnation[proc];
        self.push(
            at,
            Ev::Timer {
                proc,
                id,
                tag,
                incarnation,
            },
        );
        TimerId(id)
    }

    fn release(&mut self, from: ProcId, to: ProcId) {
        let Some(held) = self.held.remove(&(from, to)) else {
            return;
        };
        // Released in their original order, one microsecond apart.
        for (i, h) in held.into_iter().enumerate() {
            let t = self.arrival(from, to, self.net.latency_min + i as Time);
            self.push(
                t,
                Ev::Deliver {
                    msg_id: h.msg_id,
                    from,
                    to,
                    msg: h.msg,
                    lost: false,
                },
            );
        }
    }
}

/// What a process sees of the simulator while it handles an event.
pub struct Ctx<'a, M> {
    core: &'a mut Core<M>,
    id: ProcId,
}

impl<M: Clone> Ctx<'_, M> {
    /// This process's id.
    pub fn id(&self) -> ProcId {
        self.id
    }

    /// The number of processes.
    pub fn n(&self) -> usize {
        self.core.n
    }

    /// This process's LOCAL clock (skewed and drifting), in µs.
    pub fn now(&self) -> Time {
        self.core.clocks[self.id].local(self.core.now)
    }

    /// Sends `msg` to process `to` through the simulated network.
    pub fn send(&mut self, to: ProcId, msg: M) {
        self.core.send(self.id, to, msg);
    }

    /// Sets a timer that fires once this process's local clock has advanced by
    /// `after_local` µs; `tag` is handed back to [`Process::on_timer`].
    /// Timers measure elapsed time at the clock's rate: clock jumps do not move them.
    pub fn set_timer(&mut self, after_local: Time, tag: u64) -> TimerId {
        self.core.set_timer(self.id, after_local, tag)
    }

    /// Cancels a pending timer; returns whether it was still pending.
    pub fn cancel_timer(&mut self, id: TimerId) -> bool {
        self.core.live_timers.remove(&id.0)
    }

    /// This process's random stream, derived from the run seed and its id.
    pub fn rng(&mut self) -> &mut Pcg64Mcg {
        &mut self.core.rngs[self.id]
    }

    /// Records a marker event on this process's lane ("enter CS", "snapshot").
    pub fn mark(&mut self, label: &str) {
        self.core.hash = mix_str(self.core.hash, label);
        self.core.fold(H_MARK, self.id, 0, 0);
        if self.core.tracing {
            self.core.record(
                self.id,
                TraceKind::Mark {
                    label: label.to_string(),
                },
            );
        }
    }

    /// Attaches a logical timestamp to this process's latest event in this
    /// handler (the delivery or timer that started it, or the last send or
    /// mark since). Without such an event, it records a mark carrying the stamp.
    pub fn stamp(&mut self, text: &str) {
        self.core.hash = mix_str(self.core.hash, text);
        self.core.fold(H_STAMP, self.id, 0, 0);
        if !self.core.tracing {
            return;
        }
        if self.core.current.is_none() {
            self.core.record(
                self.id,
                TraceKind::Mark {
                    label: String::new(),
                },
            );
        }
        if let Some(i) = self.core.current {
            self.core.trace.events[i].stamp = Some(text.to_string());
        }
    }
}

/// A deterministic simulation of `P` processes on a network.
pub struct Sim<P: Process> {
    procs: Vec<P>,
    core: Core<P::Msg>,
}

impl<P: Process> Sim<P> {
    /// Builds a simulation and calls each process's `on_start`, in id order, at time 0.
    ///
    /// Panics if `net` or `clocks` is invalid (check with [`NetConfig::validate`]).
    pub fn new(seed: u64, procs: Vec<P>, net: NetConfig, clocks: ClockConfig) -> Self {
        Self::with_options(seed, procs, net, clocks, SimOptions::default())
    }

    /// Like [`Sim::new`], with recording options in force from the first event.
    pub fn with_options(
        seed: u64,
        procs: Vec<P>,
        net: NetConfig,
        clocks: ClockConfig,
        opts: SimOptions,
    ) -> Self {
        if let Err(e) = net.validate() {
            panic!("invalid NetConfig: {e}");
        }
        assert!(
            clocks.max_drift_ppm <= 100_000,
            "max_drift_ppm must be at most 100000"
        );
        let n = procs.len();
        let mut clock_rng = Pcg64Mcg::seed_from_u64(derive_seed(seed, STREAM_CLOCK, 0));
        let clocks: Vec<ClockModel> = (0..n)
            .map(|_| {
                let offset = clock_rng.random_range(0..=clocks.max_skew);
                let d = clocks.max_drift_ppm as i32;
                let drift_ppm = clock_rng.random_range(-d..=d);
                ClockModel { offset, drift_ppm }
            })
            .collect();
        let rngs = (0..n)
            .map(|i| Pcg64Mcg::seed_from_u64(derive_seed(seed, STREAM_PROC, i as u64)))
            .collect();
        let core = Core {
            n,
            now: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            net,
            loss_override: None,
            dup_override: None,
            reorder_override: false,
            net_rng: Pcg64Mcg::seed_from_u64(derive_seed(seed, STREAM_NET, 0)),
            rngs,
            clocks,
            up: vec![true; n],
            incarnation: vec![0; n],
            live_timers: BTreeSet::new(),
            next_timer: 0,
            next_msg: 0,
            in_flight: 0,
            group: vec![0; n],
            partitioned: false,
            blocked: BTreeSet::new(),
            clogged: BTreeSet::new(),
            held: BTreeMap::new(),
            fifo_last: BTreeMap::new(),
            stats: Stats::default(),
            trace: Trace::default(),
            tracing: opts.tracing,
            trace_limit: opts.trace_limit,
            count_labels: opts.label_counts,
            current: None,
            hash: mix(0, seed),
            bytes_fn: P::msg_bytes,
            label_fn: P::msg_label,
        };
        let mut sim = Sim { procs, core };
        for i in 0..n {
            sim.with_ctx(i, |p, ctx| p.on_start(ctx));
        }
        sim
    }

    /// True time (µs since the start).
    pub fn now(&self) -> Time {
        self.core.now
    }

    /// The local clock reading of process `i` now.
    pub fn local_time(&self, i: ProcId) -> Time {
        self.core.clocks[i].local(self.core.now)
    }

    /// The clock model of process `i`.
    pub fn clock(&self, i: ProcId) -> ClockModel {
        self.core.clocks[i]
    }

    /// Moves process `i`'s clock forward by `by` µs (a clock fault).
    pub fn jump_clock(&mut self, i: ProcId, by: Time) {
        self.core.clocks[i].offset += by;
        self.core.fault(i, format!("clock +{by}us"));
    }

    /// The number of processes.
    pub fn len(&self) -> usize {
        self.procs.len()
    }

    /// Whether there are no processes.
    pub fn is_empty(&self) -> bool {
        self.procs.is_empty()
    }

    /// Process `i` (also readable while crashed: its last state).
    pub fn proc(&self, i: ProcId) -> &P {
        &self.procs[i]
    }

    /// Process `i`, mutably.
    pub fn proc_mut(&mut self, i: ProcId) -> &mut P {
        &mut self.procs[i]
    }

    /// All processes.
    pub fn procs(&self) -> &[P] {
        &self.procs
    }

    /// The true time of the next queued event, if any.
    pub fn next_event_time(&self) -> Option<Time> {
        self.core.queue.peek().map(|e| e.time)
    }

    /// Messages queued or held by clogs.
    pub fn in_flight(&self) -> usize {
        self.core.in_flight
    }

    /// Processes one event; returns false if the queue was empty.
    pub fn step(&mut self) -> bool {
        let Some(Entry { time, ev, .. }) = self.core.queue.pop() else {
            return false;
        };
        debug_assert!(time >= self.core.now);
        self.core.now = time;
        self.core.stats.events += 1;
        self.core.current = None;
        match ev {
            Ev::Deliver {
                msg_id,
                from,
                to,
                msg,
                lost,
            } => self.deliver(msg_id, from, to, msg, lost),
            Ev::Timer {
                proc,
                id,
                tag,
                incarnation,
            } => {
                let live = self.core.live_timers.remove(&id);
                if live && incarnation == self.core.incarnation[proc] && self.core.up[proc] {
                    self.core.stats.timers += 1;
                    self.core.fold(H_TIMER, proc, tag, 0);
                    self.core.record(proc, TraceKind::Timer { tag });
                    let mut ctx = Ctx {
                        core: &mut self.core,
                        id: proc,
                    };
                    self.procs[proc].on_timer(&mut ctx, tag);
                }
            }
        }
        true
    }

    fn deliver(&mut self, msg_id: u64, from: ProcId, to: ProcId, msg: P::Msg, lost: bool) {
        let core = &mut self.core;
        if lost {
            core.in_flight -= 1;
            return core.drop_msg(to, msg_id, DropReason::Loss);
        }
        if !core.link_ok(from, to) {
            core.in_flight -= 1;
            return core.drop_msg(to, msg_id, DropReason::Partition);
        }
        if from != EXTERNAL && !core.clogged.is_empty() && core.clogged.contains(&(from, to)) {
            core.fold(H_HOLD, to, msg_id, from as u64);
            core.held
                .entry((from, to))
                .or_default()
                .push_back(Held { msg_id, msg });
            return;
        }
        core.in_flight -= 1;
        if !core.up[to] {
            return core.drop_msg(to, msg_id, DropReason::Down);
        }
        core.stats.delivered += 1;
        core.fold(H_DELIVER, to, msg_id, from as u64);
        if core.tracing {
            let label = (core.label_fn)(&msg);
            core.record(
                to,
                TraceKind::Deliver {
                    msg_id,
                    from,
                    label,
                },
            );
        }
        let mut ctx = Ctx { core, id: to };
        self.procs[to].on_message(&mut ctx, from, msg);
    }

    /// Runs every event up to and including true time `t`, then sets the clock to `t`.
    pub fn run_until(&mut self, t: Time) {
        while self.next_event_time().is_some_and(|next| next <= t) {
            self.step();
        }
        self.core.now = self.core.now.max(t);
    }

    /// Runs while `pred` holds and events up to `limit` remain; returns true if
    /// it stopped because `pred` became false. If it runs out of events before
    /// `limit`, the clock is set to `limit`.
    pub fn run_while(&mut self, limit: Time, mut pred: impl FnMut(&Self) -> bool) -> bool {
        loop {
            if !pred(self) {
                return true;
            }
            match self.next_event_time() {
                Some(t) if t <= limit => {
                    self.step();
                }
                _ => {
                    self.core.now = self.core.now.max(limit);
                    return false;
                }
            }
        }
    }

    /// Injects `msg` to `to` from outside (sender [`EXTERNAL`]), arriving after
    /// `delay` µs of true time. It bypasses partitions, loss and clogs, but
    /// not a crashed receiver.
    pub fn send_external(&mut self, to: ProcId, msg: P::Msg, delay: Time) {
        assert!(to < self.len(), "send_external to unknown process {to}");
        let msg_id = self.core.next_msg;
        self.core.next_msg += 1;
        self.core.in_flight += 1;
        let t = self.core.now + delay;
        self.core.push(
            t,
            Ev::Deliver {
                msg_id,
                from: EXTERNAL,
                to,
                msg,
                lost: false,
            },
        );
    }

    /// Runs `f` on process `i` with a real context at the current time (for a
    /// harness submitting a request, say). Panics if `i` is down.
    pub fn with_ctx<R>(
        &mut self,
        i: ProcId,
        f: impl FnOnce(&mut P, &mut Ctx<'_, P::Msg>) -> R,
    ) -> R {
        assert!(self.core.up[i], "with_ctx on crashed process {i}");
        self.core.current = None;
        let mut ctx = Ctx {
            core: &mut self.core,
            id: i,
        };
        f(&mut self.procs[i], &mut ctx)
    }

    /// Crashes process `i`: it stops, its timers are dropped, and messages that
    /// arrive while it is down are dropped. The process value stays in place
    /// (read its durable state with [`Sim::proc`]) until [`Sim::restart`].
    pub fn crash(&mut self, i: ProcId) {
        assert!(i < self.len());
        if !self.core.up[i] {
            return;
        }
        self.core.up[i] = false;
        self.core.incarnation[i] += 1;
        self.core.fold(H_CRASH, i, 0, 0);
        self.core.record(i, TraceKind::Crash);
    }

    /// Installs `p` as process `i` and calls its `on_start`. A process that is
    /// still up is crashed first. Its clock and random stream carry on.
    pub fn restart(&mut self, i: ProcId, p: P) {
        self.crash(i);
        self.procs[i] = p;
        self.core.up[i] = true;
        self.core.fold(H_RESTART, i, 0, 0);
        self.core.record(i, TraceKind::Restart);
        self.with_ctx(i, |p, ctx| p.on_start(ctx));
    }

    /// Whether process `i` is running.
    pub fn is_up(&self, i: ProcId) -> bool {
        self.core.up[i]
    }

    /// Splits the network: messages between different groups are dropped.
    /// Processes not listed form one more group together. Replaces any
    /// earlier partition; one-way blocks stay.
    pub fn partition(&mut self, groups: &[Vec<ProcId>]) {
        let n = self.len();
        let mut group = vec![0u32; n];
        for (g, members) in groups.iter().enumerate() {
            for &p in members {
                assert!(p < n, "partition names unknown process {p}");
                assert!(group[p] == 0, "process {p} is in two partition groups");
                group[p] = g as u32 + 1;
            }
        }
        self.core.group = group;
        self.core.partitioned = true;
        let desc = groups
            .iter()
            .map(|g| format!("{g:?}"))
            .collect::<Vec<_>>()
            .join(" ");
        self.core.fault(ALL, format!("partition {desc}"));
    }

    /// Removes the partition and every one-way block (clogs stay).
    pub fn heal(&mut self) {
        self.core.partitioned = false;
        self.core.group.iter_mut().for_each(|g| *g = 0);
        self.core.blocked.clear();
        self.core.fault(ALL, "heal".to_string());
    }

    /// Drops messages from `from` to `to` (one way) until [`Sim::unblock`] or [`Sim::heal`].
    pub fn block(&mut self, from: ProcId, to: ProcId) {
        assert!(from < self.len() && to < self.len());
        self.core.blocked.insert((from, to));
        self.core.fault(from, format!("block {from}->{to}"));
    }

    /// Undoes [`Sim::block`].
    pub fn unblock(&mut self, from: ProcId, to: ProcId) {
        self.core.blocked.remove(&(from, to));
        self.core.fault(from, format!("unblock {from}->{to}"));
    }

    /// Holds messages from `from` to `to` (one way) until [`Sim::unclog`].
    pub fn clog(&mut self, from: ProcId, to: ProcId) {
        assert!(from < self.len() && to < self.len());
        self.core.clogged.insert((from, to));
        self.core.fault(from, format!("clog {from}->{to}"));
    }

    /// Releases a clogged link: held messages are delivered in order, starting
    /// `latency_min` from now.
    pub fn unclog(&mut self, from: ProcId, to: ProcId) {
        self.core.clogged.remove(&(from, to));
        self.core.fault(from, format!("unclog {from}->{to}"));
        self.core.release(from, to);
    }

    /// Releases every clogged link.
    pub fn unclog_all(&mut self) {
        let links: Vec<_> = self.core.clogged.iter().copied().collect();
        for (a, b) in links {
            self.unclog(a, b);
        }
    }

    /// Replaces the network configuration (for messages sent from now on).
    /// Panics if it is invalid.
    pub fn set_net(&mut self, net: NetConfig) {
        if let Err(e) = net.validate() {
            panic!("invalid NetConfig: {e}");
        }
        self.core.net = net;
    }

    /// The network configuration in force (without nemesis overrides).
    pub fn net(&self) -> &NetConfig {
        &self.core.net
    }

    /// Applies a nemesis action. Network and clock actions are applied here;
    /// `Crash`/`Restart` are left to the caller, who alone can rebuild a process.
    pub fn apply(&mut self, action: &NemesisAction) -> Applied {
        match action {
            NemesisAction::Partition(groups) => self.partition(groups),
            NemesisAction::Heal => self.heal(),
            NemesisAction::Block(a, b) => self.block(*a, *b),
            NemesisAction::Unblock(a, b) => self.unblock(*a, *b),
            NemesisAction::Clog(a, b) => self.clog(*a, *b),
            NemesisAction::Unclog(a, b) => self.unclog(*a, *b),
            NemesisAction::SetLoss(p) => {
                assert!(
                    p.is_none_or(|p| (0.0..=1.0).contains(&p)),
                    "loss {p:?} is not a probability"
                );
                self.core.loss_override = *p;
                self.core.fault(ALL, format!("loss {p:?}"));
            }
            NemesisAction::SetDuplicate(p) => {
                assert!(
                    p.is_none_or(|p| (0.0..=1.0).contains(&p)),
                    "duplicate {p:?} is not a probability"
                );
                self.core.dup_override = *p;
                self.core.fault(ALL, format!("duplicate {p:?}"));
            }
            NemesisAction::SetReorder(on) => {
                self.core.reorder_override = *on;
                self.core.fault(ALL, format!("reorder {on}"));
            }
            NemesisAction::ClearNetFaults => {
                self.core.loss_override = None;
                self.core.dup_override = None;
                self.core.reorder_override = false;
                self.core.fault(ALL, "net faults cleared".to_string());
            }
            NemesisAction::ClockJump(p, by) => self.jump_clock(*p, *by),
            NemesisAction::Crash(_) | NemesisAction::Restart(_) => {
                return Applied::CallerMustHandle
            }
        }
        Applied::Done
    }

    /// Runs to `until`, applying each scheduled action at its time; crash and
    /// restart actions are handed to `on_caller`.
    pub fn run_schedule(
        &mut self,
        schedule: &[(Time, NemesisAction)],
        until: Time,
        mut on_caller: impl FnMut(&mut Self, &NemesisAction),
    ) {
        for (t, a) in schedule {
            if *t > until {
                break;
            }
            self.run_until(*t);
            if self.apply(a) == Applied::CallerMustHandle {
                on_caller(self, a);
            }
        }
        self.run_until(until);
    }

    /// The counters.
    pub fn stats(&self) -> &Stats {
        &self.core.stats
    }

    /// The recorded trace.
    pub fn trace(&self) -> &Trace {
        &self.core.trace
    }

    /// Takes the recorded trace out, leaving an empty one.
    pub fn take_trace(&mut self) -> Trace {
        std::mem::take(&mut self.core.trace)
    }

    /// Turns trace recording on or off (the hash and stats are kept either way).
    pub fn set_tracing(&mut self, on: bool) {
        self.core.tracing = on;
    }

    /// Bounds the number of recorded trace events; later ones are counted in `truncated`.
    pub fn set_trace_limit(&mut self, limit: usize) {
        self.core.trace_limit = limit;
    }

    /// Turns per-label message counts on or off (off saves a label per send).
    pub fn set_label_counts(&mut self, on: bool) {
        self.core.count_labels = on;
    }

    /// A running hash of every event so far (kept even with tracing off).
    pub fn trace_hash(&self) -> u64 {
        self.core.hash
    }
}
