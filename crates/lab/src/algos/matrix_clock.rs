//! Matrix clocks: each process knows what every other knows, so a message log
//! can be garbage-collected exactly when everyone has seen an entry.

use std::collections::BTreeSet;

use rand::Rng;
use synod_simnet::{ClockConfig, Ctx, NetConfig, ProcId, Process, Sim, TraceKind};

use crate::causality::Causality;
use crate::harness::{net_for, run_faulted, Step, Workload};
use crate::registry::{Algorithm, FaultModel};
use synod_simnet::Fault;
use crate::report::{Check, Cost, LabOptions, LabReport, LabRun};

/// The registry entry.
pub const ALGORITHM: Algorithm = Algorithm {
    name: "matrix-clock",
    family: "logical clocks",
    summary: "matrix clocks: garbage-collect a log entry once all know it",
    description: "Matrix clocks (Wuu & Bernstein 1984; Sarin & Lynch 1987).\n\
Process i keeps M[n][n]; row i is its vector clock, row k its knowledge of k's vector.\n\
Local or send: M[i][i] += 1; a message carries M. On receipt of W from j:\n\
M[i][k] = max(M[i][k], W[j][k]) for all k; M[k][l] = max(M[k][l], W[k][l]) for all k, l;\n\
then M[i][i] += 1.\n\
Guarantee: min_k M[i][k][j] >= s means i knows every process has seen j's s-th event.\n\
So an entry (j, s) of a message log may be discarded at i exactly then, and never\n\
earlier. Checked against the true happens-before: at the discard, every process's\n\
latest event known to i must causally follow (j, s).\n\
Cost: n² integers (8n² bytes) per message.",
    variants: &[("own-row", "planted bug: discard when M[i][j] >= s (only i's own knowledge)")],
    default_nodes: 3,
    nodes: (2, 16),
    faults: FaultModel {
        tolerates: &[Fault::Loss, Fault::Duplicate, Fault::Reorder, Fault::Partition, Fault::OneWay, Fault::Clog, Fault::Skew],
        outside: &[Fault::Crash],
        refused: "every fault kind applies",
    },
    run,
};

/// A message: the sender's matrix.
#[derive(Clone, Debug)]
pub struct Matrix(pub Vec<Vec<u64>>);

/// A process with a matrix clock and a log of messages seen.
#[derive(Clone, Debug)]
pub struct Node {
    me: ProcId,
    m: Vec<Vec<u64>>,
    /// Log entries (origin, origin's event number) not yet collected.
    pub log: BTreeSet<(ProcId, u64)>,
    /// Entries collected.
    pub collected: u64,
    work: Workload,
    own_row: bool,
}

impl Node {
    fn new(me: ProcId, n: usize, own_row: bool) -> Self {
        let work = Workload { budget: 25, p_local: 0.2 };
        Node { me, m: vec![vec![0; n]; n], log: BTreeSet::new(), collected: 0, work, own_row }
    }

    fn collect(&mut self, ctx: &mut Ctx<'_, Matrix>) {
        let me = self.me;
        let known = |m: &Vec<Vec<u64>>, j: usize| m.iter().map(|row| row[j]).min().unwrap_or(0);
        let done: Vec<(ProcId, u64)> = self
            .log
            .iter()
            .copied()
            .filter(|&(j, s)| if self.own_row { self.m[me][j] >= s } else { known(&self.m, j) >= s })
            .collect();
        for (j, s) in done {
            self.log.remove(&(j, s));
            self.collected += 1;
            ctx.mark(&format!("gc {j}:{s}"));
        }
    }

    fn pace(&mut self, ctx: &mut Ctx<'_, Matrix>) {
        let d = ctx.rng().random_range(1_000..=5_000);
        ctx.set_timer(d, 0);
    }
}

impl Process for Node {
    type Msg = Matrix;
    fn on_start(&mut self, ctx: &mut Ctx<'_, Matrix>) {
        self.pace(ctx);
    }
    fn on_timer(&mut self, ctx: &mut Ctx<'_, Matrix>, _tag: u64) {
        let (me, n) = (self.me, ctx.n());
        match self.work.next(ctx.rng(), me, n) {
            None => return,
            Some(Step::Local) => {
                self.m[me][me] += 1;
                ctx.mark("local");
            }
            Some(Step::Send(to)) => {
                self.m[me][me] += 1;
                self.log.insert((me, self.m[me][me]));
                ctx.send(to, Matrix(self.m.clone()));
            }
        }
        ctx.stamp(&self.m[me][me].to_string());
        self.collect(ctx);
        self.pace(ctx);
    }
    fn on_message(&mut self, ctx: &mut Ctx<'_, Matrix>, from: ProcId, Matrix(w): Matrix) {
        let me = self.me;
        let n = self.m.len();
        // A matrix of the wrong shape is a peer's error: ignore the message.
        if w.len() != n || w.iter().any(|r| r.len() != n) {
            return;
        }
        let sender_row = w[from].clone();
        for (mine, theirs) in self.m[me].iter_mut().zip(&sender_row) {
            *mine = (*mine).max(*theirs);
        }
        for (row, wrow) in self.m.iter_mut().zip(&w) {
            for (x, y) in row.iter_mut().zip(wrow) {
                *x = (*x).max(*y);
            }
        }
        self.m[me][me] += 1;
        self.log.insert((from, w[from][from]));
        ctx.stamp(&self.m[me][me].to_string());
        self.collect(ctx);
    }
    fn msg_bytes(Matrix(m): &Matrix) -> usize {
        8 * m.len() * m.len()
    }
    fn msg_label(Matrix(m): &Matrix) -> String {
        format!("M{:?}", m.iter().enumerate().map(|(i, r)| r[i]).collect::<Vec<_>>())
    }
}

fn run(opts: &LabOptions) -> LabRun {
    let n = opts.nodes;
    let bug = opts.is_variant("own-row");
    let node = |i| Node::new(i, n, bug);
    let base = NetConfig { latency_min: 1_000, latency_max: 8_000, fifo: false, ..NetConfig::reliable() };
    let mut sim = Sim::new(opts.seed, (0..n).map(node).collect(), net_for(&opts.faults, base), ClockConfig::perfect());
    run_faulted(&mut sim, opts, 2_000_000, node);
    let trace = sim.take_trace();
    let hb = Causality::from_trace(&trace, n);
    // (process, own event number) → trace index of a send.
    let mut sends = std::collections::BTreeMap::new();
    for (i, e) in trace.events.iter().enumerate() {
        if let (TraceKind::Send { .. }, Some(s)) = (&e.kind, &e.stamp) {
            sends.insert((e.proc, s.parse::<u64>().expect("own stamp is a number")), i);
        }
    }
    let (mut checked, mut early) = (0u64, None);
    for (tg, e) in trace.events.iter().enumerate() {
        let TraceKind::Mark { label } = &e.kind else { continue };
        let Some(rest) = label.strip_prefix("gc ") else { continue };
        let (j, s) = rest.split_once(':').expect("own gc label");
        let (j, s): (usize, u64) = (j.parse().expect("own gc label"), s.parse().expect("own gc label"));
        let Some(&te) = sends.get(&(j, s)) else { continue };
        checked += 1;
        let vg = hb.vector(tg).expect("a mark is an event");
        let ve_j = hb.vector(te).expect("a send is an event")[j];
        for (k, &known) in vg.iter().enumerate() {
            let seen = hb.nth_event(k, known).and_then(|f| hb.vector(f)).is_some_and(|vf| vf[j] >= ve_j);
            if !seen && early.is_none() {
                early = Some(format!("P{} discarded {j}:{s} while P{k} had not seen it", e.proc));
            }
        }
    }
    let created: u64 = sim.stats().sent;
    let collected: u64 = (0..n).map(|p| sim.proc(p).collected).sum();
    let mut report = LabReport::new(ALGORITHM.name, opts);
    report.checks.push(Check::new(
        "an entry is discarded only when all know it",
        early.is_none(),
        early.unwrap_or_else(|| format!("{checked} discards, all after every process had seen the entry")),
    ));
    report.checks.push(Check::new(
        "the log does get collected",
        collected > 0,
        format!("{collected} discards over {n} logs, {created} messages"),
    ));
    let s = sim.stats();
    let nn = (n * n) as f64;
    report.costs.push(Cost::new("timestamp bytes per message", s.bytes as f64 / s.sent.max(1) as f64, "8n² (n² integers)", Some(8.0 * nn)));
    let left: usize = (0..n).map(|p| sim.proc(p).log.len()).sum();
    report.costs.push(Cost::new("log entries left uncollected", left as f64, "entries not yet known to all", None));
    LabRun::new(report, trace)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_is_collected_safely() {
        for seed in 0..5 {
            let r = run(&LabOptions::new(3, seed)).report;
            assert!(r.passed(), "{r:?}");
        }
    }

    #[test]
    fn collecting_on_own_knowledge_is_caught() {
        let caught = (0..5).any(|seed| {
            let mut o = LabOptions::new(4, seed);
            o.variant = Some("own-row".into());
            !run(&o).report.checks[0].held
        });
        assert!(caught);
    }
}
