//! Redlock (Sanfilippo 2016) and Kleppmann's critique of it (2016): a lock
//! held on a majority of independent lock servers for a time-to-live, which
//! a process pause or a clock jump breaks, and the fencing tokens that make
//! the storage behind the lock safe again.

use std::collections::BTreeMap;

use synod_simnet::{ClockConfig, Ctx, Fault, NetConfig, ProcId, Process, Sim, Time, MILLIS};

use crate::harness::net_for;
use crate::registry::{Algorithm, FaultModel};
use crate::report::{Check, Cost, LabOptions, LabReport, LabRun};

/// The registry entry.
pub const ALGORITHM: Algorithm = Algorithm {
    name: "redlock",
    family: "coordination and security",
    summary: "a lock on a majority of servers with a TTL; broken by a pause or a clock jump, fenced by tokens",
    description: "Redlock (Sanfilippo 2016), with Kleppmann's critique (2016). P0..P(N-1) are\n\
independent lock servers; then come two clients A and B and the storage the lock\n\
protects (the last three lanes). To acquire, a client asks every server to set the\n\
lock for TTL = 200 ms; a server grants it when it is free or its TTL ran out by the\n\
server's own clock. With grants from a majority, the client holds the lock for\n\
validity = TTL - elapsed - drift; it writes to the storage every 20 ms while more\n\
than 60 ms of validity remain (the margin covers a message's delay), 5 writes in\n\
all, then releases the lock everywhere. Each grant carries the server's grant\n\
counter; the client's fencing token is the highest counter of its majority.\n\
Guarantee: the storage sees the holders in the order they acquired the lock (no\n\
write of a client after a write of a later holder), provided processes do not\n\
pause and clocks do not jump: the timing assumptions Redlock rests on.\n\
Outside the model (variants): `pause` stops A for 300 ms (a GC pause) between its\n\
validity check and its first write, while its lock expires and B acquires it;\n\
`clock-jump` cuts A off from the minority, then moves the clock of one server of\n\
A's majority forward by a TTL, so B gets a majority of its own at once. Both\n\
clients believe they hold the lock and the storage takes A's stale write.\n\
`pause-fenced` and `clock-jump-fenced` run the same with a storage that refuses a\n\
token lower than the highest it has seen: the stale write is refused.\n\
Cost: per acquisition 2N messages (request, grant) and N releases; 2 per write;\n\
without faults 2 × (3N + 2 × 5) = 6N + 20.",
    variants: &[
        ("pause", "A pauses 300 ms after its validity check: two holders"),
        ("pause-fenced", "the pause, with a storage that checks fencing tokens"),
        (
            "clock-jump",
            "a server's clock jumps a TTL forward: two majorities",
        ),
        (
            "clock-jump-fenced",
            "the clock jump, with a storage that checks fencing tokens",
        ),
        (
            "planted-double-grant",
            "planted bug: a server grants a lock still held (ignores the TTL)",
        ),
    ],
    default_nodes: 5,
    nodes: (3, 9),
    faults: FaultModel {
        tolerates: &[Fault::Loss, Fault::Duplicate, Fault::Reorder],
        outside: &[],
        refused: "partitions and clogged links delay a write past any margin, crashes make a server forget its locks and skew jumps clocks: Redlock assumes none of these; the `pause` and `clock-jump` variants script such a break at the moment that matters",
    },
    run,
};

/// Redlock messages.
#[derive(Clone, Debug)]
pub enum LockMsg {
    /// Set the lock for this attempt of the sender.
    Acquire(u32),
    /// Granted, with the server's grant counter.
    Grant(u32, u64),
    /// Refused: held by another client.
    Deny(u32),
    /// Release the lock of this attempt.
    Release(u32),
    /// A write to the storage, carrying the fencing token and the write's number.
    Write(u64, u32),
    /// The storage's answer: accepted or refused.
    Ack(u32, bool),
}

const TTL: Time = 200 * MILLIS;
const DRIFT: Time = 2 * MILLIS + TTL / 100;
const MARGIN: Time = 60 * MILLIS;
const PERIOD: Time = 20 * MILLIS;
const WRITES: u32 = 5;
const PAUSE: Time = 300 * MILLIS;
const GIVE_UP: Time = 80 * MILLIS;

const T_START: u64 = 0;
const T_WRITE: u64 = 1;
const T_GIVE_UP: u64 = 1_000;

/// A lock server.
#[derive(Clone, Debug, Default)]
pub struct Server {
    /// The holder: (client, attempt, local expiry).
    lock: Option<(ProcId, u32, Time)>,
    /// Grants so far (the fencing counter).
    pub counter: u64,
    double_grant: bool,
}

/// A client of the lock.
#[derive(Clone, Debug, Default)]
pub struct Client {
    servers: usize,
    storage: ProcId,
    start_at: Time,
    pause: bool,
    attempt: u32,
    started: Time,
    grants: BTreeMap<ProcId, u64>,
    denies: usize,
    /// The token and local end of validity while the client believes it holds the lock.
    holding: Option<(u64, Time)>,
    skip_check: bool,
    /// Writes sent.
    pub writes: u32,
    /// Acquisitions that succeeded.
    pub acquired: u32,
    /// Attempts that failed.
    pub failed: u32,
    done: bool,
}

/// The storage the lock protects.
#[derive(Clone, Debug, Default)]
pub struct Storage {
    fencing: bool,
    highest: u64,
    /// Accepted writes: (client, token).
    pub accepted: Vec<(ProcId, u64)>,
    /// Refused writes: (client, token).
    pub refused: Vec<(ProcId, u64)>,
}

/// A process of the run.
#[derive(Clone, Debug)]
pub enum Node {
    /// A lock server.
    Server(Server),
    /// Client A or B.
    Client(Client),
    /// The storage.
    Storage(Storage),
}

impl Client {
    /// Whether the client is still collecting answers for attempt `a`.
    fn waiting_for(&self, a: u32) -> bool {
        a == self.attempt && self.holding.is_none() && !self.done
    }

    fn majority(&self) -> usize {
        self.servers / 2 + 1
    }

    fn try_acquire(&mut self, ctx: &mut Ctx<'_, LockMsg>) {
        self.attempt += 1;
        self.started = ctx.now();
        self.grants.clear();
        self.denies = 0;
        for s in 0..self.servers {
            ctx.send(s, LockMsg::Acquire(self.attempt));
        }
        ctx.set_timer(GIVE_UP, T_GIVE_UP + u64::from(self.attempt));
    }

    fn release(&mut self, ctx: &mut Ctx<'_, LockMsg>) {
        for s in 0..self.servers {
            ctx.send(s, LockMsg::Release(self.attempt));
        }
    }

    fn fail(&mut self, ctx: &mut Ctx<'_, LockMsg>) {
        self.failed += 1;
        self.release(ctx);
        let backoff = 10 * MILLIS + rand::Rng::random_range(ctx.rng(), 0..20 * MILLIS);
        ctx.set_timer(backoff, T_START);
    }

    fn on_grant(&mut self, ctx: &mut Ctx<'_, LockMsg>) {
        if self.grants.len() < self.majority() {
            return;
        }
        let elapsed = ctx.now() - self.started;
        let validity = TTL.saturating_sub(elapsed + DRIFT);
        if validity <= MARGIN {
            self.fail(ctx);
            return;
        }
        let token = self.grants.values().copied().max().unwrap_or(0);
        self.holding = Some((token, ctx.now() + validity));
        self.acquired += 1;
        ctx.mark(&format!("acquired t{token}"));
        if self.pause {
            ctx.mark("GC pause");
            self.skip_check = true;
            ctx.set_timer(PAUSE, T_WRITE);
        } else {
            self.write(ctx);
        }
    }

    fn write(&mut self, ctx: &mut Ctx<'_, LockMsg>) {
        let Some((token, until)) = self.holding else {
            return;
        };
        let check = !std::mem::take(&mut self.skip_check);
        if self.writes >= WRITES || (check && ctx.now() + MARGIN >= until) {
            ctx.mark(if self.writes >= WRITES {
                "release"
            } else {
                "validity over"
            });
            self.holding = None;
            self.done = true;
            self.release(ctx);
            return;
        }
        self.writes += 1;
        ctx.send(self.storage, LockMsg::Write(token, self.writes));
        ctx.set_timer(PERIOD, T_WRITE);
    }
}

impl Process for Node {
    type Msg = LockMsg;

    fn on_start(&mut self, ctx: &mut Ctx<'_, LockMsg>) {
        if let Node::Client(c) = self {
            ctx.set_timer(c.start_at, T_START);
        }
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_, LockMsg>, tag: u64) {
        let Node::Client(c) = self else { return };
        match tag {
            T_START if !c.done && c.holding.is_none() => c.try_acquire(ctx),
            T_WRITE => c.write(ctx),
            t if t == T_GIVE_UP + u64::from(c.attempt) && c.holding.is_none() && !c.done => {
                c.fail(ctx)
            }
            _ => {}
        }
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, LockMsg>, from: ProcId, msg: LockMsg) {
        match (self, msg) {
            (Node::Server(s), LockMsg::Acquire(a)) => {
                let now = ctx.now();
                let free = match s.lock {
                    None => true,
                    Some((c, att, exp)) => (c, att) == (from, a) || now >= exp || s.double_grant,
                };
                if free {
                    s.counter += 1;
                    s.lock = Some((from, a, now + TTL));
                    ctx.send(from, LockMsg::Grant(a, s.counter));
                } else {
                    ctx.send(from, LockMsg::Deny(a));
                }
            }
            (Node::Server(s), LockMsg::Release(a)) => {
                if matches!(s.lock, Some((c, att, _)) if (c, att) == (from, a)) {
                    s.lock = None;
                }
            }
            (Node::Client(c), LockMsg::Grant(a, counter)) if c.waiting_for(a) => {
                c.grants.insert(from, counter);
                c.on_grant(ctx);
            }
            (Node::Client(c), LockMsg::Deny(a)) if c.waiting_for(a) => {
                c.denies += 1;
                if c.denies > c.servers - c.majority() {
                    c.fail(ctx);
                }
            }
            (Node::Storage(st), LockMsg::Write(token, k)) => {
                let ok = !st.fencing || token >= st.highest;
                if ok {
                    st.highest = st.highest.max(token);
                    st.accepted.push((from, token));
                } else {
                    st.refused.push((from, token));
                    ctx.mark(&format!("refused t{token}"));
                }
                ctx.send(from, LockMsg::Ack(k, ok));
            }
            _ => {}
        }
    }

    fn msg_bytes(_msg: &LockMsg) -> usize {
        24
    }

    fn msg_label(msg: &LockMsg) -> String {
        match msg {
            LockMsg::Acquire(a) => format!("Acquire#{a}"),
            LockMsg::Grant(_, c) => format!("Grant(t{c})"),
            LockMsg::Deny(_) => "Deny".into(),
            LockMsg::Release(_) => "Release".into(),
            LockMsg::Write(t, k) => format!("Write{k}(t{t})"),
            LockMsg::Ack(k, ok) => format!("Ack{k}({})", if *ok { "ok" } else { "stale" }),
        }
    }
}

/// When each client believed it held the lock, from the trace: (client,
/// token, from, to) in true time.
fn beliefs(trace: &synod_simnet::Trace, clients: &[ProcId], end: Time) -> Vec<(ProcId, u64, Time, Time)> {
    let mut out = vec![];
    let mut open: BTreeMap<ProcId, (u64, Time)> = BTreeMap::new();
    for e in &trace.events {
        let synod_simnet::TraceKind::Mark { label } = &e.kind else {
            continue;
        };
        if !clients.contains(&e.proc) {
            continue;
        }
        if let Some(t) = label.strip_prefix("acquired t") {
            open.insert(e.proc, (t.parse().unwrap_or(0), e.time));
        } else if label == "release" || label == "validity over" {
            if let Some((tok, from)) = open.remove(&e.proc) {
                out.push((e.proc, tok, from, e.time));
            }
        }
    }
    out.extend(open.into_iter().map(|(p, (tok, from))| (p, tok, from, end)));
    out
}

fn run(opts: &LabOptions) -> LabRun {
    let n = opts.nodes;
    let (a, b, storage) = (n, n + 1, n + 2);
    let pause = opts.is_variant("pause") || opts.is_variant("pause-fenced");
    let jump = opts.is_variant("clock-jump") || opts.is_variant("clock-jump-fenced");
    let fencing = opts.is_variant("pause-fenced") || opts.is_variant("clock-jump-fenced");
    let until: Time = 1_000 * MILLIS;
    let b_start = if pause {
        250 * MILLIS
    } else if jump {
        60 * MILLIS
    } else {
        300 * MILLIS
    };
    let client = |start_at: Time, pause: bool| {
        Node::Client(Client {
            servers: n,
            storage,
            start_at,
            pause,
            ..Client::default()
        })
    };
    let mut procs: Vec<Node> = (0..n)
        .map(|i| {
            Node::Server(Server {
                double_grant: opts.is_variant("planted-double-grant") && i < n / 2 + 1,
                ..Server::default()
            })
        })
        .collect();
    procs.push(client(10 * MILLIS, pause));
    procs.push(client(b_start, false));
    procs.push(Node::Storage(Storage {
        fencing,
        ..Storage::default()
    }));
    if opts.is_variant("planted-double-grant") {
        // B asks while A holds the lock: only a server that ignores the TTL grants it.
        if let Node::Client(c) = &mut procs[b] {
            c.start_at = 40 * MILLIS;
        }
    }
    let mut sim = Sim::new(
        opts.seed,
        procs,
        net_for(&opts.faults, NetConfig::reliable()),
        ClockConfig::perfect(),
    );
    let maj = n / 2 + 1;
    if jump {
        // A reaches only servers 0..maj; then the clocks of the last 2maj-n
        // of those jump a TTL forward, and B's majority is theirs plus the rest.
        for s in maj..n {
            sim.block(a, s);
        }
        sim.run_until(50 * MILLIS);
        let k = 2 * maj - n;
        for s in maj - k..maj {
            sim.jump_clock(s, TTL);
        }
    }
    sim.run_until(until);
    let trace = sim.take_trace();
    let st = match sim.proc(storage) {
        Node::Storage(s) => s.clone(),
        _ => unreachable!("the last process is the storage"),
    };
    let clients: Vec<&Client> = [a, b]
        .iter()
        .map(|&p| match sim.proc(p) {
            Node::Client(c) => c,
            _ => unreachable!("clients sit after the servers"),
        })
        .collect();
    let held = beliefs(&trace, &[a, b], until);
    let acquired_at: BTreeMap<(ProcId, u64), Time> =
        held.iter().map(|&(p, t, from, _)| ((p, t), from)).collect();
    let name = |p: ProcId| if p == a { "A" } else { "B" };
    // A write after a write of a later holder is out of lock order.
    let mut stale = None;
    let mut latest: Option<(ProcId, u64, Time)> = None;
    for &(p, tok) in &st.accepted {
        let at = acquired_at.get(&(p, tok)).copied().unwrap_or(0);
        if let Some((q, qt, qat)) = latest {
            if q != p && qat > at && stale.is_none() {
                stale = Some(format!(
                    "the storage took {}'s write (token {tok}) after {}'s (token {qt}), who acquired the lock later",
                    name(p),
                    name(q)
                ));
            }
        }
        if latest.is_none_or(|(_, _, lat)| at >= lat) {
            latest = Some((p, tok, at));
        }
    }
    let overlap = held.iter().find_map(|&(p, _, f1, t1)| {
        held.iter()
            .find(|&&(q, _, f2, t2)| q != p && f1 < t2 && f2 < t1 && f1 <= f2)
            .map(|&(q, _, f2, t2)| (p, q, f2, t1.min(t2)))
    });
    let mut report = LabReport::new(ALGORITHM.name, opts);
    report.checks.push(Check::new(
        "the storage sees the holders in lock order",
        stale.is_none(),
        stale.unwrap_or_else(|| {
            format!(
                "{} writes accepted in order, {} stale ones refused",
                st.accepted.len(),
                st.refused.len()
            )
        }),
    ));
    let detail = match overlap {
        None => format!("{} holds, none overlapping", held.len()),
        Some((p, q, f, t)) => format!(
            "{} and {} both believed they held the lock from {} ms to {} ms{}",
            name(p),
            name(q),
            f / MILLIS,
            t / MILLIS,
            if fencing {
                "; the fencing tokens made the stale holder harmless"
            } else {
                ", with nothing to fence the stale holder"
            }
        ),
    };
    report.checks.push(Check::new(
        "no two clients hold the lock at once, or the storage fences",
        overlap.is_none() || fencing,
        detail,
    ));
    let s = sim.stats();
    let plain = opts.faults.is_empty() && opts.variant.is_none();
    let acquisitions: u32 = clients.iter().map(|c| c.acquired + c.failed).sum();
    let writes: u32 = clients.iter().map(|c| c.writes).sum();
    report.costs.push(Cost::new(
        "messages",
        s.sent as f64,
        "3N per acquisition, 2 per write: 6N + 20 for two clients",
        plain.then_some((6 * n + 20) as f64),
    ));
    report.costs.push(Cost::new(
        "lock messages per acquisition",
        (s.sent_of("Acquire") + s.sent_of("Grant") + s.sent_of("Deny") + s.sent_of("Release"))
            as f64
            / f64::from(acquisitions.max(1)),
        "3N (request, answer, release)",
        plain.then_some(3.0 * n as f64),
    ));
    report.costs.push(Cost::new(
        "writes",
        f64::from(writes),
        "5 per holder",
        plain.then_some(10.0),
    ));
    let mut run = LabRun::new(report, trace);
    run.clients = 3;
    run
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(variant: Option<&str>, seed: u64) -> LabReport {
        run(&LabOptions::new(5, seed).with_variant(variant)).report
    }

    #[test]
    fn redlock_holds_without_pauses_or_jumps() {
        for seed in 1..=4 {
            let r = with(None, seed);
            assert!(r.passed(), "{r:?}");
            assert_eq!(r.costs[0].expected, Some(r.costs[0].measured));
        }
    }

    #[test]
    fn a_pause_or_a_clock_jump_makes_two_holders() {
        for v in ["pause", "clock-jump"] {
            let r = with(Some(v), 1);
            assert!(!r.checks[0].held && !r.checks[1].held, "{v}: {r:?}");
        }
    }

    #[test]
    fn fencing_tokens_refuse_the_stale_holder() {
        for v in ["pause-fenced", "clock-jump-fenced"] {
            let r = with(Some(v), 1);
            assert!(r.passed(), "{v}: {r:?}");
            assert!(r.checks[0].detail.contains("1 stale ones refused") || r.checks[0].detail.contains("stale ones refused"), "{r:?}");
            assert!(r.checks[1].detail.contains("both believed"), "{v}: {r:?}");
        }
    }

    #[test]
    fn the_checker_catches_a_server_that_grants_a_held_lock() {
        let r = with(Some("planted-double-grant"), 1);
        assert!(!r.passed(), "{r:?}");
    }
}
