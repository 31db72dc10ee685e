//! Version vectors on a replicated key: a write that did not see another
//! is concurrent with it, and both are kept as siblings until a later write
//! that saw both replaces them.

use std::collections::BTreeSet;

use synod_simnet::{ClockConfig, Ctx, NetConfig, ProcId, Process, Sim, Time};

use crate::algos::replication_common::{converging_start, converging_timer, Converging};
use crate::harness::{net_for, run_faulted_durable};
use crate::registry::{Algorithm, FaultModel};
use crate::report::{Check, Cost, LabOptions, LabReport, LabRun};

/// The registry entry.
pub const ALGORITHM: Algorithm = Algorithm {
    name: "version-vectors",
    family: "replication",
    summary: "version vectors keep concurrent writes as siblings; LWW would drop one",
    description: "Version vectors (Parker et al. 1983), as Dynamo and Riak use them per key.\n\
Every replica stores the key's siblings: (version vector, value). A client\n\
writing at replica r reads the siblings there as its context; the new version is\n\
the context's vectors merged (elementwise max) with r's entry incremented, and it\n\
replaces every sibling it dominates. Replicas gossip their siblings (a random\n\
peer every 30 ms; every peer every 50 ms in the last quarter); a merge keeps\n\
every version no other version dominates.\n\
Guarantee: a version is discarded only when a write that saw it exists, so\n\
replicas converge on exactly the writes no later write saw: the concurrent ones,\n\
as siblings for the application (or the next write) to reconcile.\n\
Cost: N integers per version; the number of siblings is the number of\n\
causally maximal writes.",
    variants: &[(
        "lww",
        "planted bug: versions compared by wall-clock timestamp (last writer wins): concurrent writes are lost",
    )],
    default_nodes: 4,
    nodes: (1, 64),
    faults: FaultModel::EVERY,
    run,
};

/// A write's id: (replica, sequence number).
pub type Wid = (ProcId, u32);

/// One version of the key.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    /// The version vector.
    pub vv: Vec<u64>,
    /// The writer's clock (the LWW variant's comparison).
    pub ts: u64,
    /// The write.
    pub wid: Wid,
    /// Every write it saw, transitively: the checker's truth, which the
    /// algorithm never reads.
    pub past: BTreeSet<Wid>,
}

/// `a` ≤ `b` elementwise, and not equal.
pub fn dominated(a: &[u64], b: &[u64]) -> bool {
    a.iter().zip(b).all(|(x, y)| x <= y) && a != b
}

/// Siblings of one key at a replica.
#[derive(Clone, Debug)]
pub struct Store {
    lww: bool,
    left: u32,
    seq: u32,
    /// The versions kept.
    pub siblings: Vec<Version>,
    /// Every write this replica made, with what it saw.
    pub written: Vec<Version>,
}

/// The siblings, gossiped.
#[derive(Clone, Debug)]
pub struct Siblings(Vec<Version>);

const UNTIL: Time = 2_000_000;
const WRITES: u32 = 4;

/// Whether version `a` replaces `b`: `a`'s vector dominates `b`'s (or, in
/// the LWW variant, `a` is later by timestamp).
fn beats(lww: bool, a: &Version, b: &Version) -> bool {
    if lww {
        (a.ts, a.wid) > (b.ts, b.wid)
    } else {
        dominated(&b.vv, &a.vv)
    }
}

impl Store {
    fn add(&mut self, v: Version) {
        let lww = self.lww;
        if self
            .siblings
            .iter()
            .any(|s| s.wid == v.wid || beats(lww, s, &v))
        {
            return;
        }
        self.siblings.retain(|s| !beats(lww, &v, s));
        self.siblings.push(v);
        self.siblings.sort();
    }

    fn write(&mut self, ctx: &mut Ctx<'_, Siblings>) {
        let (me, n) = (ctx.id(), ctx.n());
        let mut vv = vec![0u64; n];
        let mut past = BTreeSet::new();
        for s in &self.siblings {
            for (a, b) in vv.iter_mut().zip(&s.vv) {
                *a = (*a).max(*b);
            }
            past.insert(s.wid);
            past.extend(s.past.iter().copied());
        }
        vv[me] += 1;
        self.seq += 1;
        let wid = (me, self.seq);
        ctx.mark(&format!("write {}.{} over {}", wid.0, wid.1, self.siblings.len()));
        let v = Version {
            vv,
            ts: ctx.now(),
            wid,
            past,
        };
        self.written.push(v.clone());
        self.add(v);
    }
}

impl Converging for Store {
    type Msg = Siblings;
    const UNTIL: Time = UNTIL;
    const UPDATES: u32 = WRITES;
    const GOSSIP_EVERY: Time = 30_000;

    fn left(&mut self) -> &mut u32 {
        &mut self.left
    }

    fn update(&mut self, ctx: &mut Ctx<'_, Siblings>) {
        self.write(ctx);
    }

    fn state(&self) -> Siblings {
        Siblings(self.siblings.clone())
    }
}

impl Process for Store {
    type Msg = Siblings;

    fn on_start(&mut self, ctx: &mut Ctx<'_, Siblings>) {
        converging_start(self, ctx);
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_, Siblings>, tag: u64) {
        converging_timer(self, ctx, tag);
    }

    fn on_message(&mut self, _ctx: &mut Ctx<'_, Siblings>, _from: ProcId, msg: Siblings) {
        for v in msg.0 {
            self.add(v);
        }
    }

    fn msg_bytes(msg: &Siblings) -> usize {
        msg.0.iter().map(|v| 8 * v.vv.len() + 24).sum()
    }

    fn msg_label(msg: &Siblings) -> String {
        let ids: Vec<String> = msg.0.iter().map(|v| format!("{}.{}", v.wid.0, v.wid.1)).collect();
        format!("Siblings[{}]", ids.join(" "))
    }
}

/// The writes no other write saw: what every replica must end up keeping.
pub fn maximal(all: &[Version]) -> BTreeSet<Wid> {
    let seen: BTreeSet<Wid> = all.iter().flat_map(|v| v.past.iter().copied()).collect();
    all.iter()
        .map(|v| v.wid)
        .filter(|w| !seen.contains(w))
        .collect()
}

fn run(opts: &LabOptions) -> LabRun {
    let n = opts.nodes;
    let lww = opts.is_variant("lww");
    let make = |_: ProcId| Store {
        lww,
        left: WRITES,
        seq: 0,
        siblings: vec![],
        written: vec![],
    };
    let mut sim = Sim::new(
        opts.seed,
        (0..n).map(make).collect(),
        net_for(&opts.faults, NetConfig::reliable()),
        ClockConfig::default(),
    );
    // Siblings and the write log are on stable storage.
    run_faulted_durable(&mut sim, opts, UNTIL, |crashed, _| crashed.clone());
    let trace = sim.take_trace();
    // Every version ever made, from the writers' logs.
    let all: Vec<Version> = sim
        .procs()
        .iter()
        .flat_map(|s| s.written.iter().cloned())
        .collect();
    let kept: Vec<BTreeSet<Wid>> = sim
        .procs()
        .iter()
        .map(|s| s.siblings.iter().map(|v| v.wid).collect())
        .collect();
    let written: BTreeSet<Wid> = all.iter().map(|v| v.wid).collect();
    // A write is accounted for if some kept version is it or saw it.
    let accounted: BTreeSet<Wid> = sim
        .procs()
        .iter()
        .flat_map(|s| s.siblings.iter())
        .flat_map(|v| v.past.iter().copied().chain([v.wid]))
        .collect();
    let lost: Vec<Wid> = written.difference(&accounted).copied().collect();
    let want = maximal(&all);
    let mut report = LabReport::new(ALGORITHM.name, opts);
    report.checks.push(Check::new(
        "convergence: every replica keeps the same siblings",
        kept.windows(2).all(|w| w[0] == w[1]),
        format!("{:?}", kept.first()),
    ));
    report.checks.push(Check::new(
        "no write is lost: each is kept or seen by a kept one",
        lost.is_empty(),
        if lost.is_empty() {
            format!("{} writes", written.len())
        } else {
            format!("lost {lost:?} of {} writes", written.len())
        },
    ));
    let not_max: Vec<String> = kept
        .iter()
        .enumerate()
        .filter(|(_, k)| **k != want)
        .take(2)
        .map(|(p, k)| format!("P{p} keeps {k:?}"))
        .collect();
    report.checks.push(Check::new(
        "siblings are exactly the writes no other write saw",
        not_max.is_empty(),
        if not_max.is_empty() {
            format!("{} siblings", want.len())
        } else {
            format!("want {want:?}; {}", not_max.join("; "))
        },
    ));
    report.costs.push(Cost::new(
        "siblings kept",
        kept.first().map_or(0, BTreeSet::len) as f64,
        "the causally maximal writes",
        Some(want.len() as f64),
    ));
    report.costs.push(Cost::new(
        "version vector entries",
        all.first().map_or(n, |v| v.vv.len()) as f64,
        "N",
        Some(n as f64),
    ));
    LabRun::new(report, trace)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_writes_survive_as_siblings() {
        let mut siblings_seen = false;
        for seed in 0..6 {
            for n in [1, 3, 5] {
                let r = run(&LabOptions::new(n, seed)).report;
                assert!(r.passed(), "{r:?}");
                siblings_seen |= r.costs[0].measured > 1.0;
            }
        }
        assert!(siblings_seen, "no run had concurrent writes");
    }

    #[test]
    fn last_writer_wins_loses_writes() {
        let broke = (0..4).any(|seed| {
            let mut o = LabOptions::new(4, seed);
            o.variant = Some("lww".into());
            !run(&o).report.checks[1].held
        });
        assert!(broke);
    }

    #[test]
    fn dominance_is_strict() {
        assert!(dominated(&[1, 0], &[1, 1]));
        assert!(!dominated(&[1, 1], &[1, 1]));
        assert!(!dominated(&[2, 0], &[1, 1]));
    }
}
