//! Multi-leader replication: every replica accepts writes and ships them to
//! the others asynchronously; concurrent writes conflict, and are resolved
//! by merging (no write lost) or by last-writer-wins (some lost).

use std::collections::{BTreeMap, BTreeSet};

use rand::Rng;
use synod_simnet::{ClockConfig, Ctx, NetConfig, ProcId, Process, Sim, Time};

use crate::harness::{net_for, run_faulted_durable};
use crate::registry::{Algorithm, FaultModel};
use crate::report::{Check, Cost, LabOptions, LabReport, LabRun};

/// The registry entry.
pub const ALGORITHM: Algorithm = Algorithm {
    name: "multi-leader",
    family: "replication",
    summary: "multi-leader: concurrent writes at different leaders, resolved by merge or last-writer-wins",
    description: "Multi-leader replication (as in multi-datacenter MySQL, CouchDB, Bayou). Every\n\
replica P0..P(N-1) is a leader: it accepts writes locally and acknowledges at once,\n\
then ships its state to the others (to one random peer every 20 ms, to all every\n\
50 ms in the last quarter). The data is 3 shopping carts (sets of items); a write\n\
reads the local cart and adds an item. Writes at different leaders before they\n\
have heard of each other conflict.\n\
merge (default): a cart's versions are merged by set union, so every acknowledged\n\
item survives and all leaders converge.\n\
lww (variant): each cart version carries (local clock, leader); the larger wins and\n\
replaces the other whole, so leaders converge but concurrent adds are lost.\n\
Checked: convergence (every leader ends with the same carts) and no acknowledged\n\
write lost (every item added is in the final cart).\n\
Cost: N-1 messages per shipping round to all; under LWW the final carts hold fewer\n\
items than were added whenever writes conflicted.",
    variants: &[(
        "lww",
        "weaker setting: last writer wins: concurrent writes are silently lost",
    )],
    default_nodes: 3,
    nodes: (1, 32),
    faults: FaultModel::EVERY,
    run,
};

/// An item: (leader, its write number).
pub type Item = (ProcId, u32);

/// One cart at one leader.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cart {
    /// The items.
    pub items: BTreeSet<Item>,
    /// LWW timestamp: (clock, leader).
    pub ts: (Time, ProcId),
}

/// A leader's state, shipped whole.
#[derive(Clone, Debug)]
pub struct Ship(BTreeMap<u32, Cart>);

/// A leader.
#[derive(Clone, Debug)]
pub struct Leader {
    lww: bool,
    left: u32,
    /// Carts.
    pub carts: BTreeMap<u32, Cart>,
    /// Items this leader added (acknowledged writes).
    pub added: Vec<(u32, Item)>,
    /// Rounds of shipping to everyone.
    pub rounds: u32,
}

const UNTIL: Time = 2_000_000;
const CARTS: u32 = 3;
const WRITES: u32 = 6;
const WRITE: u64 = 0;
const SHIP: u64 = 1;
const FLOOD: u64 = 2;

impl Leader {
    fn merge(&mut self, key: u32, theirs: &Cart) {
        let mine = self.carts.entry(key).or_default();
        if self.lww {
            if theirs.ts > mine.ts {
                *mine = theirs.clone();
            }
        } else {
            mine.items.extend(theirs.items.iter().copied());
            mine.ts = mine.ts.max(theirs.ts);
        }
    }
}

impl Process for Leader {
    type Msg = Ship;

    fn on_start(&mut self, ctx: &mut Ctx<'_, Ship>) {
        if self.left > 0 {
            let at = ctx.rng().random_range(1..UNTIL / 2 / Time::from(WRITES));
            ctx.set_timer(at, WRITE);
        }
        ctx.set_timer(20_000, SHIP);
        let now = ctx.now();
        ctx.set_timer((UNTIL * 3 / 4).saturating_sub(now).max(1), FLOOD);
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_, Ship>, tag: u64) {
        let (me, n) = (ctx.id(), ctx.n());
        match tag {
            WRITE => {
                let key = ctx.rng().random_range(0..CARTS);
                let item = (me, WRITES - self.left);
                self.left -= 1;
                let ts = (ctx.now(), me);
                let cart = self.carts.entry(key).or_default();
                cart.items.insert(item);
                cart.ts = ts.max(cart.ts);
                self.added.push((key, item));
                ctx.mark(&format!("add {}.{} to cart {key}", item.0, item.1));
                if self.left > 0 {
                    let at = ctx.rng().random_range(1..UNTIL / 2 / Time::from(WRITES));
                    ctx.set_timer(at, WRITE);
                }
            }
            SHIP if ctx.now() < UNTIL * 3 / 4 => {
                if n > 1 {
                    let to = (me + ctx.rng().random_range(1..n)) % n;
                    ctx.send(to, Ship(self.carts.clone()));
                }
                ctx.set_timer(20_000, SHIP);
            }
            FLOOD => {
                self.rounds += 1;
                for q in (0..n).filter(|&q| q != me) {
                    ctx.send(q, Ship(self.carts.clone()));
                }
                ctx.set_timer(50_000, FLOOD);
            }
            _ => {}
        }
    }

    fn on_message(&mut self, _ctx: &mut Ctx<'_, Ship>, _from: ProcId, msg: Ship) {
        for (k, c) in &msg.0 {
            self.merge(*k, c);
        }
    }

    fn msg_bytes(msg: &Ship) -> usize {
        msg.0.values().map(|c| 16 + 8 * c.items.len()).sum()
    }

    fn msg_label(msg: &Ship) -> String {
        let sizes: Vec<String> = msg.0.iter().map(|(k, c)| format!("{k}:{}", c.items.len())).collect();
        format!("Ship[{}]", sizes.join(" "))
    }
}

fn run(opts: &LabOptions) -> LabRun {
    let n = opts.nodes;
    let lww = opts.is_variant("lww");
    let make = |_: ProcId| Leader {
        lww,
        left: WRITES,
        carts: BTreeMap::new(),
        added: vec![],
        rounds: 0,
    };
    let mut sim = Sim::new(
        opts.seed,
        (0..n).map(make).collect(),
        net_for(&opts.faults, NetConfig::reliable()),
        ClockConfig::default(),
    );
    // Carts and the write log are on stable storage.
    run_faulted_durable(&mut sim, opts, UNTIL, |crashed, _| crashed.clone());
    let trace = sim.take_trace();
    let finals: Vec<&BTreeMap<u32, Cart>> = sim.procs().iter().map(|l| &l.carts).collect();
    let items = |m: &BTreeMap<u32, Cart>| -> BTreeMap<u32, BTreeSet<Item>> {
        m.iter().map(|(k, c)| (*k, c.items.clone())).collect()
    };
    let converged = finals.windows(2).all(|w| items(w[0]) == items(w[1]));
    let added: Vec<(u32, Item)> = sim.procs().iter().flat_map(|l| l.added.clone()).collect();
    let lost: Vec<String> = added
        .iter()
        .filter(|(k, it)| !finals[0].get(k).is_some_and(|c| c.items.contains(it)))
        .map(|(k, it)| format!("{}.{} in cart {k}", it.0, it.1))
        .collect();
    let mut report = LabReport::new(ALGORITHM.name, opts);
    report.checks.push(Check::new(
        "convergence: every leader ends with the same carts",
        converged,
        format!("{:?}", finals.first().map(|m| items(m))),
    ));
    report.checks.push(Check::new(
        "no acknowledged write is lost",
        lost.is_empty(),
        if lost.is_empty() {
            format!("{} items added", added.len())
        } else {
            format!("lost {} of {}: {}", lost.len(), added.len(), lost[..lost.len().min(3)].join(", "))
        },
    ));
    report.costs.push(Cost::new(
        "items in the final carts",
        finals[0].values().map(|c| c.items.len()).sum::<usize>() as f64,
        "every item added (merge); fewer under LWW when writes conflict",
        (!lww).then_some(added.len() as f64),
    ));
    report.costs.push(Cost::new(
        "writes",
        added.len() as f64,
        "6 per leader: 6N",
        Some(f64::from(WRITES) * n as f64),
    ));
    LabRun::new(report, trace)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_keeps_every_write() {
        for seed in 0..6 {
            let r = run(&LabOptions::new(4, seed)).report;
            assert!(r.passed(), "{r:?}");
        }
    }

    #[test]
    fn last_writer_wins_converges_but_loses_writes() {
        let runs: Vec<LabReport> = (0..6)
            .map(|seed| {
                let mut o = LabOptions::new(4, seed);
                o.variant = Some("lww".into());
                run(&o).report
            })
            .collect();
        assert!(runs.iter().all(|r| r.checks[0].held));
        assert!(runs.iter().any(|r| !r.checks[1].held));
    }
}
