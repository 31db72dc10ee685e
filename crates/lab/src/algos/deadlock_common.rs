//! Shared plumbing of the deadlock-detection family: transactions that lock
//! other processes' resources one at a time (AND model, single outstanding
//! request), lock managers, the two detectors (a central wait-for-graph
//! coordinator and Chandy–Misra–Haas edge chasing), and the checker that
//! compares every declared deadlock with the true wait-for graph.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use rand::seq::SliceRandom;
use rand::Rng;
use synod_simnet::{ClockConfig, Ctx, NetConfig, ProcId, Process, Sim, Time};

use crate::harness::net_for;
use crate::report::{Check, LabOptions};

/// A transaction attempt: (start time, process). Larger is younger.
pub type Txn = (Time, ProcId);

const TAG_NEXT: u64 = 1;
const TAG_COMMIT: u64 = 2;
const TAG_PROBE: u64 = 3;
/// Transactions per process.
const TXNS: u32 = 3;
/// Attempts per transaction before giving up.
const MAX_ATTEMPTS: u32 = 30;
/// How long a blocked transaction waits before (re)sending a probe (µs).
const PROBE_PERIOD: Time = 30_000;

/// Which detector runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Central wait-for graph at P0. `stale`: edges named by process only,
    /// no sequence numbers (the planted bug).
    Wfg {
        /// The planted bug is on.
        stale: bool,
    },
    /// Chandy–Misra–Haas probes. `eager`: every initiator whose probe comes
    /// back declares, not only the youngest on the cycle (the planted bug).
    Cmh {
        /// The planted bug is on.
        eager: bool,
    },
}

/// Messages.
#[derive(Clone, Debug)]
pub enum Msg {
    /// Ask the receiver's lock for a transaction.
    Acquire(Txn),
    /// The lock is yours.
    Granted(Txn),
    /// You wait behind this holder (sent to waiters in CMH mode).
    Waiting(Txn, Txn),
    /// Release (commit or abort); also withdraws a queued request.
    Release(Txn),
    /// A manager's local wait-for edges (waiter, holder), with a sequence number.
    Report(u64, Vec<(Txn, Txn)>),
    /// Abort this transaction (a deadlock victim).
    Abort(Txn),
    /// CMH probe: initiator's transaction, the path so far, and the transaction it is sent to.
    Probe(Txn, Vec<Txn>, Txn),
}

#[derive(Clone, Debug)]
struct Attempt {
    id: Txn,
    locks: Vec<ProcId>,
    got: usize,
    /// The lock waited for and its holder, if known.
    blocked: Option<(ProcId, Option<Txn>)>,
}

/// One process: a transaction runner, a lock manager, and a detector.
#[derive(Clone, Debug)]
pub struct Dl {
    mode: Mode,
    // Runner.
    txn: Option<Attempt>,
    left: u32,
    attempts: u32,
    /// Transactions committed.
    pub committed: u32,
    /// Transactions given up after too many aborts.
    pub gave_up: u32,
    /// Aborts suffered.
    pub aborts: u32,
    // Manager.
    holder: Option<Txn>,
    queue: VecDeque<Txn>,
    seq: u64,
    probe_armed: bool,
    // Coordinator (P0, WFG mode).
    reports: BTreeMap<ProcId, (u64, Vec<(Txn, Txn)>)>,
    victims: BTreeSet<Txn>,
    /// Deadlocks declared here, as cycles of transactions.
    pub declared: Vec<Vec<Txn>>,
}

impl Dl {
    /// A process running `mode`.
    pub fn new(mode: Mode) -> Self {
        Dl {
            mode,
            txn: None,
            left: TXNS,
            attempts: 0,
            committed: 0,
            gave_up: 0,
            aborts: 0,
            holder: None,
            queue: VecDeque::new(),
            seq: 0,
            probe_armed: false,
            reports: BTreeMap::new(),
            victims: BTreeSet::new(),
            declared: vec![],
        }
    }

    /// Whether this process has finished its transactions.
    pub fn done(&self) -> bool {
        self.left == 0 && self.txn.is_none()
    }

    /// The transaction this process runs and the lock manager it is blocked at, if blocked.
    pub fn blocked(&self) -> Option<(Txn, ProcId)> {
        let t = self.txn.as_ref()?;
        t.blocked.map(|(m, _)| (t.id, m))
    }

    fn begin(&mut self, ctx: &mut Ctx<'_, Msg>, locks: Vec<ProcId>) {
        let id = (ctx.now(), ctx.id());
        self.attempts += 1;
        ctx.mark(&format!("begin T{}", id.0));
        self.txn = Some(Attempt {
            id,
            locks,
            got: 0,
            blocked: None,
        });
        self.next_lock(ctx);
    }

    fn next_lock(&mut self, ctx: &mut Ctx<'_, Msg>) {
        let t = self.txn.as_mut().expect("a running transaction");
        if t.got == t.locks.len() {
            ctx.set_timer(5_000, TAG_COMMIT);
            return;
        }
        let m = t.locks[t.got];
        t.blocked = Some((m, None));
        let id = t.id;
        ctx.send(m, Msg::Acquire(id));
    }

    fn finish(&mut self, ctx: &mut Ctx<'_, Msg>, abort: bool) {
        let t = self.txn.take().expect("a running transaction");
        let held = t.got + usize::from(t.blocked.is_some());
        for &m in &t.locks[..held] {
            ctx.send(m, Msg::Release(t.id));
        }
        if abort {
            self.aborts += 1;
            ctx.mark("abort (victim)");
            if self.attempts < MAX_ATTEMPTS {
                let backoff = ctx.rng().random_range(2_000..=15_000);
                self.txn = Some(Attempt {
                    id: (0, 0),
                    locks: t.locks,
                    got: 0,
                    blocked: None,
                });
                ctx.set_timer(backoff, TAG_NEXT);
                return;
            }
            ctx.mark("give up");
            self.gave_up += 1;
        } else {
            self.committed += 1;
            ctx.mark("commit");
        }
        self.left -= 1;
        self.attempts = 0;
        if self.left > 0 {
            let think = ctx.rng().random_range(1_000..=10_000);
            ctx.set_timer(think, TAG_NEXT);
        }
    }

    // Lock manager.

    fn report(&mut self, ctx: &mut Ctx<'_, Msg>) {
        if let Mode::Wfg { .. } = self.mode {
            self.seq += 1;
            let edges = self
                .holder
                .map_or(vec![], |h| self.queue.iter().map(|&w| (w, h)).collect());
            ctx.send(0, Msg::Report(self.seq, edges));
        }
    }

    fn tell_waiters(&mut self, ctx: &mut Ctx<'_, Msg>) {
        if let (Mode::Cmh { .. }, Some(h)) = (self.mode, self.holder) {
            for &w in &self.queue {
                ctx.send(w.1, Msg::Waiting(w, h));
            }
        }
    }

    fn manage(&mut self, ctx: &mut Ctx<'_, Msg>, msg: Msg) {
        match msg {
            Msg::Acquire(t) => {
                if self.holder.is_none() {
                    self.holder = Some(t);
                    ctx.send(t.1, Msg::Granted(t));
                } else if self.queue.len() < ctx.n() && !self.queue.contains(&t) {
                    self.queue.push_back(t);
                    let h = self.holder.expect("held");
                    if let Mode::Cmh { .. } = self.mode {
                        ctx.send(t.1, Msg::Waiting(t, h));
                    }
                    self.report(ctx);
                }
            }
            Msg::Release(t) => {
                if self.holder == Some(t) {
                    self.holder = self.queue.pop_front();
                    if let Some(h) = self.holder {
                        ctx.send(h.1, Msg::Granted(h));
                    }
                    self.tell_waiters(ctx);
                    self.report(ctx);
                } else if let Some(i) = self.queue.iter().position(|&w| w == t) {
                    self.queue.remove(i);
                    self.report(ctx);
                }
            }
            _ => unreachable!("not a manager message"),
        }
    }

    // Central detector (P0).

    fn coordinate(
        &mut self,
        ctx: &mut Ctx<'_, Msg>,
        from: ProcId,
        seq: u64,
        edges: Vec<(Txn, Txn)>,
    ) {
        let stale = matches!(self.mode, Mode::Wfg { stale: true });
        let newer = self.reports.get(&from).is_none_or(|(s, _)| *s < seq);
        if !newer && !stale {
            return;
        }
        self.reports.insert(from, (seq, edges));
        // Out-degree is at most one: a transaction waits at one lock for its holder.
        let key = |t: Txn| if stale { (0, t.1) } else { t };
        let mut next: BTreeMap<Txn, Txn> = BTreeMap::new();
        for (w, h) in self.reports.values().flat_map(|(_, e)| e.iter()) {
            if stale || (!self.victims.contains(w) && !self.victims.contains(h)) {
                next.insert(key(*w), key(*h));
            }
        }
        if let Some(cycle) = find_cycle(&next) {
            let victim = *cycle.iter().max().expect("a cycle is not empty");
            self.victims.insert(victim);
            ctx.mark(&format!("deadlock: {}", show(&cycle)));
            self.declared.push(cycle);
            ctx.send(victim.1, Msg::Abort(victim));
        }
    }

    // Chandy–Misra–Haas.

    fn probe(&mut self, ctx: &mut Ctx<'_, Msg>, init: Txn, mut path: Vec<Txn>, target: Txn) {
        let eager = matches!(self.mode, Mode::Cmh { eager: true });
        let Some(t) = &self.txn else { return };
        let Some((_, Some(holder))) = t.blocked else {
            return;
        };
        if t.id != target {
            return;
        }
        if target == init {
            let youngest = path.iter().max() == Some(&init);
            if youngest || eager {
                ctx.mark(&format!("deadlock: {}", show(&path)));
                self.declared.push(path.clone());
                let victim = *path.iter().max().expect("the path holds the initiator");
                if victim == init {
                    self.finish(ctx, true);
                } else {
                    ctx.send(victim.1, Msg::Abort(victim));
                }
            }
            return;
        }
        if path.len() < ctx.n() && !path.contains(&target) {
            path.push(target);
            ctx.send(holder.1, Msg::Probe(init, path, holder));
        }
    }
}

/// The cycle reachable from the smallest node that lies on one, if any,
/// in a graph where each node has at most one successor.
pub fn find_cycle(next: &BTreeMap<Txn, Txn>) -> Option<Vec<Txn>> {
    for &start in next.keys() {
        let mut path = vec![start];
        let mut at = start;
        while let Some(&n) = next.get(&at) {
            if let Some(i) = path.iter().position(|&p| p == n) {
                return Some(path[i..].to_vec());
            }
            if path.len() > next.len() {
                break;
            }
            path.push(n);
            at = n;
        }
    }
    None
}

/// A cycle as `T<time>@P<id> → …`.
pub fn show(cycle: &[Txn]) -> String {
    cycle
        .iter()
        .map(|t| format!("P{}", t.1))
        .collect::<Vec<_>>()
        .join("→")
}

impl Process for Dl {
    type Msg = Msg;

    fn on_start(&mut self, ctx: &mut Ctx<'_, Msg>) {
        let d = ctx.rng().random_range(1_000..=5_000);
        ctx.set_timer(d, TAG_NEXT);
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, Msg>, from: ProcId, msg: Msg) {
        match msg {
            Msg::Acquire(_) | Msg::Release(_) => self.manage(ctx, msg),
            Msg::Granted(t) => {
                let Some(a) = self.txn.as_mut().filter(|a| a.id == t) else {
                    // Granted to an aborted attempt: give it back.
                    return ctx.send(from, Msg::Release(t));
                };
                if a.blocked.map(|(m, _)| m) != Some(from) {
                    // A copy of a grant already counted (duplicated by the
                    // network): this attempt is not waiting at `from`.
                    return;
                }
                a.got += 1;
                a.blocked = None;
                self.next_lock(ctx);
            }
            Msg::Waiting(t, h) => {
                if let Some(a) = self.txn.as_mut().filter(|a| a.id == t) {
                    if let Some((m, _)) = a.blocked {
                        a.blocked = Some((m, Some(h)));
                        if !self.probe_armed {
                            self.probe_armed = true;
                            ctx.set_timer(PROBE_PERIOD, TAG_PROBE);
                        }
                    }
                }
            }
            Msg::Report(seq, edges) => self.coordinate(ctx, from, seq, edges),
            Msg::Abort(t) => {
                // A process-only name (stale reports) means whatever it runs now.
                let running = self.txn.as_ref().is_some_and(|a| a.id.0 != 0);
                if running && self.txn.as_ref().is_some_and(|a| a.id == t || t.0 == 0) {
                    self.finish(ctx, true);
                }
            }
            Msg::Probe(init, path, target) => self.probe(ctx, init, path, target),
        }
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_, Msg>, tag: u64) {
        match tag {
            TAG_NEXT => {
                let locks = match self.txn.take() {
                    Some(retry) => retry.locks,
                    None => {
                        let (me, n) = (ctx.id(), ctx.n());
                        let mut others: Vec<ProcId> = (0..n).filter(|&p| p != me).collect();
                        others.shuffle(ctx.rng());
                        others.truncate(2.min(n - 1));
                        others
                    }
                };
                self.begin(ctx, locks);
            }
            TAG_COMMIT if self.txn.as_ref().is_some_and(|a| a.got == a.locks.len()) => {
                self.finish(ctx, false);
            }
            TAG_PROBE => {
                self.probe_armed = false;
                if let Some(a) = &self.txn {
                    if let Some((_, Some(h))) = a.blocked {
                        let id = a.id;
                        ctx.send(h.1, Msg::Probe(id, vec![id], h));
                        self.probe_armed = true;
                        ctx.set_timer(PROBE_PERIOD, TAG_PROBE);
                    }
                }
            }
            _ => {}
        }
    }

    fn msg_bytes(msg: &Msg) -> usize {
        match msg {
            Msg::Report(_, e) => 8 + 32 * e.len(),
            Msg::Probe(_, p, _) => 32 + 16 * p.len(),
            Msg::Waiting(..) => 32,
            _ => 16,
        }
    }

    fn msg_label(msg: &Msg) -> String {
        match msg {
            Msg::Acquire(t) => format!("Acquire(P{})", t.1),
            Msg::Granted(t) => format!("Granted(P{})", t.1),
            Msg::Waiting(_, h) => format!("Waiting(P{})", h.1),
            Msg::Release(t) => format!("Release(P{})", t.1),
            Msg::Report(s, e) => format!("Report(#{s},{} edges)", e.len()),
            Msg::Abort(t) => format!("Abort(P{})", t.1),
            Msg::Probe(i, p, t) => {
                format!("Probe(P{},P{},P{})", i.1, p.last().map_or(0, |x| x.1), t.1)
            }
        }
    }
}

/// The true wait-for graph from the processes' states: waiter → holder at each
/// lock, for transactions that are really running (and blocked, for waiters).
pub fn true_wfg(procs: &[Dl]) -> BTreeMap<Txn, Txn> {
    let running: BTreeSet<Txn> = procs
        .iter()
        .filter_map(|p| p.txn.as_ref().map(|a| a.id))
        .collect();
    let blocked: BTreeSet<(Txn, ProcId)> = procs.iter().filter_map(Dl::blocked).collect();
    let mut g = BTreeMap::new();
    for (m, p) in procs.iter().enumerate() {
        let Some(h) = p.holder.filter(|h| running.contains(h)) else {
            continue;
        };
        for &w in &p.queue {
            if blocked.contains(&(w, m)) {
                g.insert(w, h);
            }
        }
    }
    g
}

/// Whether `cycle` (as declared, possibly with process-only names) is a cycle of `g`.
fn is_real(cycle: &[Txn], g: &BTreeMap<Txn, Txn>) -> bool {
    let named = |t: Txn| -> Option<Txn> {
        if t.0 == 0 {
            g.keys().copied().find(|k| k.1 == t.1)
        } else {
            Some(t)
        }
    };
    let ids: Option<Vec<Txn>> = cycle.iter().map(|&t| named(t)).collect();
    let Some(ids) = ids else { return false };
    (0..ids.len()).all(|i| g.get(&ids[i]) == Some(&ids[(i + 1) % ids.len()]))
}

/// What the detection run showed.
#[derive(Clone, Debug, Default)]
pub struct Verdict {
    /// Distinct real cycles that arose.
    pub real: BTreeSet<Vec<Txn>>,
    /// Declarations, and whether each was a real cycle at that moment.
    pub declared: Vec<(Vec<Txn>, bool)>,
    /// A cycle still in the true WFG at the end.
    pub left: Option<Vec<Txn>>,
    /// Transactions committed, and given up.
    pub committed: u32,
    /// Transactions abandoned after too many aborts.
    pub gave_up: u32,
}

fn canonical(mut c: Vec<Txn>) -> Vec<Txn> {
    let i = c
        .iter()
        .enumerate()
        .min_by_key(|(_, t)| **t)
        .map_or(0, |(i, _)| i);
    c.rotate_left(i);
    c
}

/// Runs the detection experiment to `until`, stepping event by event so
/// every declaration is compared with the true WFG of that very moment.
pub fn run(opts: &LabOptions, mode: Mode, base: NetConfig, until: Time) -> (Sim<Dl>, Verdict) {
    let procs = (0..opts.nodes).map(|_| Dl::new(mode)).collect();
    let mut sim = Sim::new(
        opts.seed,
        procs,
        net_for(&opts.faults, base),
        ClockConfig::perfect(),
    );
    let mut v = Verdict::default();
    let mut seen_decl = vec![0; opts.nodes];
    while sim.next_event_time().is_some_and(|t| t <= until) && !sim.procs().iter().all(Dl::done) {
        let g_before = true_wfg(sim.procs());
        sim.step();
        let g = true_wfg(sim.procs());
        if g != g_before {
            if let Some(c) = find_cycle(&g) {
                v.real.insert(canonical(c));
            }
        }
        for (p, proc) in sim.procs().iter().enumerate() {
            // Declarations happen inside the step; the graph before it is the truth then.
            for c in &proc.declared[seen_decl[p]..] {
                v.declared.push((c.clone(), is_real(c, &g_before)));
            }
            seen_decl[p] = proc.declared.len();
        }
    }
    v.left = find_cycle(&true_wfg(sim.procs()));
    v.committed = sim.procs().iter().map(|p| p.committed).sum();
    v.gave_up = sim.procs().iter().map(|p| p.gave_up).sum();
    (sim, v)
}

impl Verdict {
    /// The checks: every real deadlock found, no phantom, nothing left deadlocked.
    pub fn checks(&self, n: usize) -> Vec<Check> {
        let found: BTreeSet<Vec<Txn>> = self
            .declared
            .iter()
            .filter(|(_, real)| *real)
            .map(|(c, _)| canonical(c.clone()))
            .collect();
        let missed = self
            .real
            .iter()
            .find(|c| !found.iter().any(|f| procs_of(f) == procs_of(c)));
        let phantom = self.declared.iter().find(|(_, real)| !*real);
        vec![
            Check::new(
                "every real deadlock detected",
                missed.is_none() && self.left.is_none(),
                match (missed, &self.left) {
                    (Some(c), _) => format!("cycle {} never declared", show(c)),
                    (None, Some(c)) => format!("cycle {} still deadlocked at the end", show(c)),
                    _ => format!(
                        "{} real cycles arose, all declared and resolved",
                        self.real.len()
                    ),
                },
            ),
            Check::new(
                "no phantom deadlock declared",
                phantom.is_none(),
                phantom.map_or_else(
                    || {
                        format!(
                            "{} declarations, each a cycle of the true WFG at that moment",
                            self.declared.len()
                        )
                    },
                    |(c, _)| {
                        format!(
                            "declared {} but that cycle was not in the true WFG",
                            show(c)
                        )
                    },
                ),
            ),
            Check::new(
                "every transaction finished",
                self.committed + self.gave_up == TXNS * n as u32,
                format!(
                    "{} committed, {} given up, of {}",
                    self.committed,
                    self.gave_up,
                    TXNS * n as u32
                ),
            ),
        ]
    }
}

fn procs_of(c: &[Txn]) -> BTreeSet<ProcId> {
    c.iter().map(|t| t.1).collect()
}
