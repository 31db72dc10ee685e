//! SWIM membership: randomized direct and indirect probing, suspicion with
//! incarnation numbers, and membership updates piggybacked on the probes.

use std::collections::{BTreeMap, BTreeSet};

use rand::Rng;
use synod_simnet::{ClockConfig, Ctx, NetConfig, ProcId, Process, Sim, Time, TimerId, MILLIS};

use crate::algos::gossip_common::{
    crash_plan, random_peers, run_with_crashes, sim_options, TRACE_ALL_NODES,
};
use crate::harness::net_for;
use crate::registry::{Algorithm, FaultModel};
use synod_simnet::Fault;
use crate::report::{Check, Cost, LabOptions, LabReport, LabRun};

/// The registry entry.
pub const ALGORITHM: Algorithm = Algorithm {
    name: "swim",
    family: "failure detection",
    summary: "SWIM: ping, k ping-req probes, suspicion with incarnations, piggybacked gossip",
    description: "SWIM (Das, Gupta, Motivala 2002) with the suspicion mechanism.\n\
Every protocol period T = 200 ms each member probes one target, visiting all\n\
members in a seeded round-robin order (so every member is probed within N\n\
periods). It sends PING; if no ACK comes within 40 ms it asks k = 3 random\n\
members with PING-REQ to ping the target for it and relay the ACK. Without any\n\
ACK by the end of the period the target becomes SUSPECT (with its incarnation);\n\
a suspect not cleared within (4 + log2 N) periods is declared DEAD. A member\n\
that hears it is suspected increments its incarnation and spreads ALIVE, which\n\
overrides suspicions of older incarnations. Updates (alive / suspect / dead,\n\
member, incarnation) ride on every PING, PING-REQ and ACK: at most 6 per\n\
message, each retransmitted 3·⌈log2(N+1)⌉ times.\n\
A tenth of the members (at most 50) crash early in the run.\n\
Checks: every crashed member is declared dead by every live member before the\n\
run ends; no live member is declared dead while loss stays within the model\n\
(at most 10 %, `--faults loss`).\n\
Cost: messages per member per period are constant — one PING and one ACK, plus\n\
4k more after a missed direct ACK (probability about 1 - (1-p)^2) — against\n\
N - 1 for all-to-all heartbeats. First detection of a crash takes e/(e-1)\n\
periods in expectation (T·1/(1-e^-1)), dissemination O(log N) periods.",
    variants: &[
        (
            "naive",
            "planted bug: no ping-req and no suspicion; a missed ACK declares the target dead",
        ),
        (
            "no-refute",
            "suspected members do not refute with a higher incarnation",
        ),
    ],
    default_nodes: 6,
    nodes: (2, 100_000),
    faults: FaultModel {
        tolerates: &[Fault::Loss, Fault::Duplicate, Fault::Reorder],
        outside: &[],
        refused: "every run crashes its own planned set of processes (the failures to detect); partitions, clogged links and clock faults are not part of this detector's runs",
    },
    run,
};

/// Protocol period.
pub const PERIOD: Time = 200 * MILLIS;
const PING_TIMEOUT: Time = 40 * MILLIS;
const K: usize = 3;
const MAX_PIGGY: usize = 6;
const TAG_TICK: u64 = 0;
const TAG_PING_TIMEOUT: u64 = 1;

/// A member's status as some member sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    /// Believed up.
    Alive,
    /// Suspected of having failed.
    Suspect,
    /// Declared failed; final.
    Dead,
}

/// A membership update: `member` has `status` at incarnation `inc`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Update {
    /// Whom it is about.
    pub member: ProcId,
    /// Its status.
    pub status: Status,
    /// Its incarnation.
    pub inc: u32,
}

/// SWIM messages; each carries piggybacked updates.
#[derive(Clone, Debug)]
pub enum SwimMsg {
    /// A probe; `relay` is the member that asked for it (indirect probe).
    Ping {
        /// Probe number of the prober.
        seq: u64,
        /// The original prober, for an indirect probe.
        relay: Option<ProcId>,
        /// Piggybacked updates.
        ups: Vec<Update>,
    },
    /// Asks the receiver to probe `target`.
    PingReq {
        /// Probe number.
        seq: u64,
        /// The member to probe.
        target: ProcId,
        /// Piggybacked updates.
        ups: Vec<Update>,
    },
    /// `target` answered probe `seq`; `relay` as in the ping.
    Ack {
        /// Probe number.
        seq: u64,
        /// Who answered.
        target: ProcId,
        /// The original prober, when this ack is to be relayed.
        relay: Option<ProcId>,
        /// Piggybacked updates.
        ups: Vec<Update>,
    },
}

#[derive(Clone, Copy, Debug)]
struct Probe {
    target: ProcId,
    seq: u64,
    acked: bool,
    /// The ping timeout, cancelled once the ack is in.
    timeout: Option<TimerId>,
}

/// A member's view of the others that are not alive at incarnation 0:
/// (member, status, incarnation, since), sorted by member. Sorted vectors
/// with 32-bit keys rather than a map: with 10 000 members a lookup is mostly
/// cache misses, and a compact array takes far fewer of them.
#[derive(Clone, Debug, Default)]
struct View {
    members: Vec<u32>,
    entries: Vec<(Status, u32, Time)>,
}

impl View {
    fn key(m: ProcId) -> u32 {
        u32::try_from(m).expect("member ids fit in 32 bits (nodes ≤ 100 000)")
    }

    fn get(&self, m: ProcId) -> Option<(Status, u32, Time)> {
        self.members
            .binary_search(&View::key(m))
            .ok()
            .map(|i| self.entries[i])
    }

    fn set(&mut self, m: ProcId, entry: (Status, u32, Time)) {
        let m = View::key(m);
        match self.members.binary_search(&m) {
            Ok(i) => self.entries[i] = entry,
            Err(i) => {
                self.members.insert(i, m);
                self.entries.insert(i, entry);
            }
        }
    }
}

/// One SWIM member.
#[derive(Clone, Debug)]
pub struct SwimProc {
    naive: bool,
    refute: bool,
    inc: u32,
    /// Members not alive at incarnation 0: (status, incarnation, since).
    view: View,
    /// The members whose status in `view` is `Suspect` (so a period's
    /// expiry scan does not walk the dead).
    suspects: BTreeSet<ProcId>,
    /// Updates to spread, at most one per member, with transmissions left;
    /// ordered by (transmissions left, member), the largest first, so the
    /// freshest updates ride first.
    outbox: Vec<(u32, Update)>,
    probe: Option<Probe>,
    seq: u64,
    order: (usize, usize, usize),
    suspect_for: Time,
    retransmit: u32,
    /// When this member declared or learnt each death (local time).
    pub dead_at: BTreeMap<ProcId, Time>,
}

impl SwimProc {
    fn new(me: ProcId, n: usize, naive: bool, refute: bool, seed: u64) -> SwimProc {
        let logn = (usize::BITS - n.leading_zeros()) as u64;
        // A stride coprime with n gives a permutation visiting every member.
        let mut stride = 1 + (seed as usize ^ me.wrapping_mul(0x9e37)) % n.max(1);
        while gcd(stride, n) != 1 {
            stride += 1;
        }
        SwimProc {
            naive,
            refute,
            inc: 0,
            view: View::default(),
            suspects: BTreeSet::new(),
            outbox: Vec::new(),
            probe: None,
            seq: 0,
            order: (stride, (me * 7 + seed as usize) % n.max(1), 0),
            suspect_for: (4 + logn) * PERIOD,
            retransmit: 3 * logn as u32,
            dead_at: BTreeMap::new(),
        }
    }

    fn status(&self, m: ProcId) -> (Status, u32) {
        self.view
            .get(m)
            .map_or((Status::Alive, 0), |(s, i, _)| (s, i))
    }

    /// Marks a moment worth drawing. Runs bigger than `TRACE_ALL_NODES`
    /// record only their first few thousand events, long before any
    /// failure, so there the half million "dead" marks are skipped.
    fn mark(&self, ctx: &mut Ctx<'_, SwimMsg>, label: impl FnOnce() -> String) {
        if ctx.n() <= TRACE_ALL_NODES {
            ctx.mark(&label());
        }
    }

    /// Records `m`'s status, keeping the suspect set in step with the view.
    fn set_view(&mut self, m: ProcId, entry: (Status, u32, Time)) {
        if entry.0 == Status::Suspect {
            self.suspects.insert(m);
        } else {
            self.suspects.remove(&m);
        }
        self.view.set(m, entry);
    }

    /// Queues `u` for `retransmit` transmissions, replacing any older
    /// update about the same member.
    fn spread(&mut self, u: Update) {
        if let Some(i) = self.outbox.iter().position(|e| e.1.member == u.member) {
            self.outbox.remove(i);
        }
        let key = (self.retransmit, u.member);
        let at = self.outbox.partition_point(|e| (e.0, e.1.member) > key);
        self.outbox.insert(at, (self.retransmit, u));
    }

    /// The updates to ride on the next message: those with the most
    /// transmissions left (ties: the higher member id), at most `MAX_PIGGY`.
    fn piggyback(&mut self) -> Vec<Update> {
        let k = self.outbox.len().min(MAX_PIGGY);
        if k == 0 {
            return Vec::new();
        }
        let ups: Vec<Update> = self.outbox[..k].iter().map(|e| e.1).collect();
        let mut head = [(0, ups[0]); MAX_PIGGY];
        head[..k].copy_from_slice(&self.outbox[..k]);
        self.outbox.drain(..k);
        // Put each sent update back with one transmission fewer, where its
        // new key sorts (the outbox holds at most one update per member).
        for &(left, u) in &head[..k] {
            if left > 1 {
                let key = (left - 1, u.member);
                let at = self.outbox.partition_point(|e| (e.0, e.1.member) > key);
                self.outbox.insert(at, (left - 1, u));
            }
        }
        ups
    }

    fn declare_dead(&mut self, ctx: &mut Ctx<'_, SwimMsg>, m: ProcId, inc: u32) {
        let now = ctx.now();
        self.set_view(m, (Status::Dead, inc, now));
        self.dead_at.entry(m).or_insert(now);
        self.mark(ctx, || format!("P{m} dead"));
        self.spread(Update {
            member: m,
            status: Status::Dead,
            inc,
        });
    }

    fn apply(&mut self, ctx: &mut Ctx<'_, SwimMsg>, u: Update) {
        let me = ctx.id();
        if u.member >= ctx.n() {
            return;
        }
        if u.member == me {
            if u.status != Status::Alive && self.refute && u.inc >= self.inc {
                self.inc = u.inc + 1;
                let inc = self.inc;
                self.mark(ctx, || format!("refute, inc {inc}"));
                self.spread(Update {
                    member: me,
                    status: Status::Alive,
                    inc: self.inc,
                });
            }
            return;
        }
        let (st, inc) = self.status(u.member);
        if st == Status::Dead {
            return;
        }
        let now = ctx.now();
        match u.status {
            Status::Alive if u.inc > inc => {
                self.set_view(u.member, (Status::Alive, u.inc, now));
                self.spread(u);
            }
            Status::Suspect if u.inc > inc || (u.inc == inc && st == Status::Alive) => {
                self.set_view(u.member, (Status::Suspect, u.inc, now));
                self.spread(u);
            }
            Status::Dead => self.declare_dead(ctx, u.member, u.inc),
            _ => {}
        }
    }

    fn next_target(&mut self, me: ProcId, n: usize) -> Option<ProcId> {
        for _ in 0..n {
            let (stride, offset, i) = self.order;
            self.order.2 = i + 1;
            let t = (offset + stride * (i % n)) % n;
            if t != me && self.status(t).0 != Status::Dead {
                return Some(t);
            }
        }
        None
    }

    fn tick(&mut self, ctx: &mut Ctx<'_, SwimMsg>) {
        let (me, n, now) = (ctx.id(), ctx.n(), ctx.now());
        if let Some(p) = self.probe.take() {
            let (st, inc) = self.status(p.target);
            if !p.acked && st != Status::Dead {
                if self.naive {
                    self.declare_dead(ctx, p.target, inc);
                } else if st == Status::Alive {
                    self.set_view(p.target, (Status::Suspect, inc, now));
                    self.mark(ctx, || format!("suspect P{}", p.target));
                    self.spread(Update {
                        member: p.target,
                        status: Status::Suspect,
                        inc,
                    });
                }
            }
        }
        let mut expired: Vec<(ProcId, u32)> = Vec::new();
        for &m in &self.suspects {
            let (st, inc, since) = self.view.get(m).expect("suspects are in the view");
            assert_eq!(st, Status::Suspect, "suspect set out of step with the view");
            if now >= since + self.suspect_for {
                expired.push((m, inc));
            }
        }
        for (m, inc) in expired {
            self.declare_dead(ctx, m, inc);
        }
        if let Some(target) = self.next_target(me, n) {
            self.seq += 1;
            let ups = self.piggyback();
            ctx.send(
                target,
                SwimMsg::Ping {
                    seq: self.seq,
                    relay: None,
                    ups,
                },
            );
            let timeout = (!self.naive).then(|| ctx.set_timer(PING_TIMEOUT, TAG_PING_TIMEOUT));
            self.probe = Some(Probe {
                target,
                seq: self.seq,
                acked: false,
                timeout,
            });
        }
    }
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

impl Process for SwimProc {
    type Msg = SwimMsg;

    fn on_start(&mut self, ctx: &mut Ctx<'_, SwimMsg>) {
        // Spread the members' periods so they do not all probe at once.
        let d = ctx.rng().random_range(1..=PERIOD);
        ctx.set_timer(d, TAG_TICK);
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_, SwimMsg>, tag: u64) {
        if tag == TAG_TICK {
            ctx.set_timer(PERIOD, TAG_TICK);
            self.tick(ctx);
            return;
        }
        let Some(p) = self.probe else { return };
        if p.acked {
            return;
        }
        let (me, n) = (ctx.id(), ctx.n());
        let mut helpers = random_peers(ctx.rng(), me, n, K * 2, p.target);
        helpers.retain(|&h| self.status(h).0 != Status::Dead);
        helpers.truncate(K);
        for h in helpers {
            let ups = self.piggyback();
            ctx.send(
                h,
                SwimMsg::PingReq {
                    seq: p.seq,
                    target: p.target,
                    ups,
                },
            );
        }
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, SwimMsg>, from: ProcId, msg: SwimMsg) {
        let me = ctx.id();
        let (ups, reply) = match msg {
            SwimMsg::Ping { seq, relay, ups } => (
                ups,
                Some((
                    from,
                    SwimMsg::Ack {
                        seq,
                        target: me,
                        relay,
                        ups: vec![],
                    },
                )),
            ),
            SwimMsg::PingReq { seq, target, ups } => (
                ups,
                Some((
                    target,
                    SwimMsg::Ping {
                        seq,
                        relay: Some(from),
                        ups: vec![],
                    },
                )),
            ),
            SwimMsg::Ack {
                seq,
                target,
                relay,
                ups,
            } => match relay {
                Some(origin) => (
                    ups,
                    Some((
                        origin,
                        SwimMsg::Ack {
                            seq,
                            target,
                            relay: None,
                            ups: vec![],
                        },
                    )),
                ),
                None => {
                    if let Some(p) = self.probe.as_mut() {
                        if p.seq == seq && p.target == target && !p.acked {
                            p.acked = true;
                            if let Some(t) = p.timeout.take() {
                                ctx.cancel_timer(t);
                            }
                        }
                    }
                    (ups, None)
                }
            },
        };
        for u in ups {
            self.apply(ctx, u);
        }
        if let Some((to, mut m)) = reply {
            if to < ctx.n() {
                let fresh = self.piggyback();
                match &mut m {
                    SwimMsg::Ping { ups, .. }
                    | SwimMsg::PingReq { ups, .. }
                    | SwimMsg::Ack { ups, .. } => *ups = fresh,
                }
                ctx.send(to, m);
            }
        }
    }

    fn msg_bytes(msg: &SwimMsg) -> usize {
        let ups = match msg {
            SwimMsg::Ping { ups, .. } | SwimMsg::PingReq { ups, .. } | SwimMsg::Ack { ups, .. } => {
                ups.len()
            }
        };
        // kind, seq, target/relay: 21 bytes; an update: member, status, incarnation: 9 bytes.
        21 + 9 * ups
    }

    fn msg_label(msg: &SwimMsg) -> String {
        match msg {
            SwimMsg::Ping { relay: None, .. } => "Ping".into(),
            SwimMsg::Ping { relay: Some(r), .. } => format!("Ping(for P{r})"),
            SwimMsg::PingReq { target, .. } => format!("PingReq(P{target})"),
            SwimMsg::Ack { .. } => "Ack".into(),
        }
    }
}

/// The run's length: the last crash, then time for detection, suspicion and dissemination.
pub fn horizon(n: usize) -> Time {
    let logn = (usize::BITS - n.leading_zeros()) as u64;
    (6 + 4 + logn + 4 * logn + 10) * PERIOD
}

fn run(opts: &LabOptions) -> LabRun {
    let n = opts.nodes;
    let naive = opts.is_variant("naive");
    let refute = !opts.is_variant("no-refute");
    let procs = (0..n)
        .map(|p| SwimProc::new(p, n, naive, refute, opts.seed))
        .collect();
    // SWIM assumes nothing about message order; FIFO links would only cost
    // the simulator a per-pair bookkeeping entry (millions at 10 000 members).
    let mut base = NetConfig::reliable();
    base.fifo = false;
    let net = net_for(&opts.faults, base);
    let loss = net.loss;
    let mut sim = Sim::with_options(
        opts.seed,
        procs,
        net,
        ClockConfig::perfect(),
        sim_options(n),
    );
    let crashes = (n / 10).clamp(1, 50);
    let plan = crash_plan(n, opts.seed, crashes, 2 * PERIOD, 6 * PERIOD);
    let until = horizon(n);
    run_with_crashes(&mut sim, &plan, until);
    let live: Vec<ProcId> = (0..n).filter(|&p| sim.is_up(p)).collect();
    let mut report = LabReport::new(ALGORITHM.name, opts);
    let (mut missing, mut worst) = (None, 0);
    for &(tc, c) in &plan {
        for &o in &live {
            match sim.proc(o).dead_at.get(&c) {
                Some(&t) => worst = worst.max(t.saturating_sub(tc)),
                None if missing.is_none() => {
                    missing = Some(format!("P{o} never declared crashed P{c} dead"))
                }
                None => {}
            }
        }
    }
    report.checks.push(Check::new(
        "every crashed member declared dead by every live member within the run",
        missing.is_none(),
        missing.unwrap_or_else(|| {
            format!(
                "{} crashes × {} live members, worst {} ms (run {} ms)",
                plan.len(),
                live.len(),
                worst / MILLIS,
                until / MILLIS
            )
        }),
    ));
    let wrong = live.iter().find_map(|&o| {
        sim.proc(o)
            .dead_at
            .keys()
            .find(|&&m| sim.is_up(m))
            .map(|&m| format!("P{o} declared live P{m} dead"))
    });
    if loss <= 0.1 {
        report.checks.push(Check::new(
            "no live member declared dead (loss within the model's 10 %)",
            wrong.is_none(),
            wrong.unwrap_or_else(|| format!("loss {loss}: no false death")),
        ));
    }
    let s = sim.stats();
    let periods = until as f64 / PERIOD as f64;
    let q = 1.0 - (1.0 - loss) * (1.0 - loss);
    report.costs.push(Cost::new(
        "messages per member per period",
        s.sent as f64 / (n as f64 * periods),
        &format!(
            "2 + 4k·q = {:.2} with k = {K}, q = 1-(1-p)^2 (constant in N)",
            2.0 + 4.0 * K as f64 * q
        ),
        None,
    ));
    report.costs.push(Cost::new(
        "all-to-all heartbeat, same period",
        (n - 1) as f64,
        "N - 1 per member per period",
        Some((n - 1) as f64),
    ));
    report.costs.push(Cost::new(
        "worst time from crash to dead everywhere (periods)",
        worst as f64 / PERIOD as f64,
        &format!(
            "first detection e/(e-1) ≈ 1.58 expected + suspicion {} + dissemination O(log N)",
            4 + (usize::BITS - n.leading_zeros())
        ),
        None,
    ));
    report.costs.push(Cost::new(
        "ping-req messages",
        s.sent_of("PingReq") as f64,
        "k per missed direct ack",
        None,
    ));
    LabRun::new(report, sim.take_trace())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(n: usize, seed: u64, variant: Option<&str>, faults: &str) -> LabOptions {
        let mut o = LabOptions::new(n, seed);
        o.variant = variant.map(str::to_string);
        o.faults = synod_simnet::Fault::parse_list(faults).unwrap();
        o
    }

    #[test]
    fn detects_crashes_without_false_deaths() {
        for seed in 0..3 {
            for faults in ["none", "loss"] {
                let r = run(&opts(12, seed, None, faults)).report;
                assert!(r.passed(), "{faults}: {r:?}");
            }
        }
    }

    #[test]
    fn load_per_member_is_constant_in_n() {
        let a = run(&opts(10, 1, None, "none")).report.costs[0].measured;
        let b = run(&opts(200, 1, None, "none")).report.costs[0].measured;
        assert!(a < 3.0 && b < 3.0 && (a - b).abs() < 0.5, "{a} vs {b}");
    }

    #[test]
    fn naive_variant_declares_live_members_dead_under_loss() {
        let caught = (0..3).any(|s| !run(&opts(10, s, Some("naive"), "loss")).report.passed());
        assert!(caught);
    }

    #[test]
    fn piggyback_sends_the_freshest_updates_and_retires_spent_ones() {
        let mut p = SwimProc::new(0, 8, false, true, 1);
        p.retransmit = 2;
        let up = |member, status| Update {
            member,
            status,
            inc: 0,
        };
        for m in 1..=7 {
            p.spread(up(m, Status::Suspect));
        }
        // Ties on transmissions left go to the higher member id.
        let first: Vec<ProcId> = p.piggyback().iter().map(|u| u.member).collect();
        assert_eq!(first, [7, 6, 5, 4, 3, 2]);
        // A newer update about a member replaces its older one and goes first.
        p.spread(up(3, Status::Dead));
        let second = p.piggyback();
        assert_eq!(second[0], up(3, Status::Dead));
        assert_eq!(second.len(), 6);
        assert!(second.iter().filter(|u| u.member == 3).count() == 1);
        // Each update goes out `retransmit` times, then leaves the outbox.
        let mut sent = first.len() + second.len();
        loop {
            let ups = p.piggyback();
            if ups.is_empty() {
                break;
            }
            sent += ups.len();
        }
        // P3's suspicion went out once before its death replaced it.
        assert_eq!(sent, 6 * 2 + 1 + 2);
        assert!(p.outbox.is_empty());
    }

    #[test]
    fn permutation_visits_every_member() {
        for n in [2, 7, 12, 30] {
            let mut p = SwimProc::new(3 % n, n, false, true, 5);
            let mut seen: Vec<ProcId> =
                (0..n - 1).filter_map(|_| p.next_target(3 % n, n)).collect();
            seen.sort_unstable();
            seen.dedup();
            assert_eq!(seen.len(), n - 1);
        }
    }
}
