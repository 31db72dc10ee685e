//! Consistent hashing (Karger et al. 1997) with virtual nodes: keys spread
//! evenly as virtual nodes grow, and a joining node takes about K/(N+1) keys,
//! all from its ring successors.

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use synod_simnet::{ClockConfig, Ctx, Fault, NetConfig, ProcId, Process, Sim, Time};

use crate::algos::gossip_common::sim_options;
use crate::harness::{net_for, run_faulted};
use crate::registry::{Algorithm, FaultModel};
use crate::report::{Check, Cost, LabOptions, LabReport, LabRun};

/// The registry entry.
pub const ALGORITHM: Algorithm = Algorithm {
    name: "consistent-hashing",
    family: "partitioning and overlays",
    summary: "hash ring with virtual nodes: even load as V grows; a join moves ≈ K/(N+1) keys",
    description: "Consistent hashing (Karger et al. 1997) with V = 64 virtual nodes per server.\n\
Each server places V tokens on a 64-bit ring (a hash of its id and the token's\n\
number); a key belongs to the server of the first token at or after the key's\n\
hash, wrapping round. P0 routes K keys to their owners (PUT). Then a new server,\n\
the last lane, joins: for each of its tokens it asks the server that owned the\n\
arc before (JOIN), which hands over exactly the keys of that arc (TRANSFER).\n\
Guarantee: every key sits at its owner; a join moves keys only to the new server.\n\
Figures: the keys moved, about K/(N+1) (the new server's share); a server's load\n\
has a coefficient of variation of about √(1/V + N/K) (a sum of V arcs, sampled by\n\
K keys), shown for V = 1, 4, 16, 64, 256; messages K(N-1)/N PUTs on average plus at most 2V for\n\
the join.",
    variants: &[
        ("one-token", "V = 1: a ring without virtual nodes, loads far apart"),
        (
            "modulo",
            "planted bug: place keys by hash mod N, so a join reshuffles almost every key",
        ),
    ],
    default_nodes: 16,
    nodes: (1, 20_000),
    faults: FaultModel {
        tolerates: &[Fault::Reorder, Fault::Duplicate, Fault::Clog, Fault::Skew],
        outside: &[Fault::Loss],
        refused: "the lab's version has no retransmission or membership protocol: a cut \
                  link or a crash loses keys, as loss already shows",
    },
    run,
};

/// A 64-bit mixer (SplitMix64's finaliser): the ring's hash.
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn key_hash(k: u64) -> u64 {
    mix(k ^ 0x6b65_7973)
}

/// A hash ring: token → server.
#[derive(Clone, Debug, Default)]
pub struct Ring {
    tokens: BTreeMap<u64, ProcId>,
}

impl Ring {
    /// The ring of `servers`, each with `v` tokens.
    pub fn new(servers: impl IntoIterator<Item = ProcId>, v: usize) -> Self {
        let mut r = Ring::default();
        for s in servers {
            r.add(s, v);
        }
        r
    }

    /// Adds server `s` with `v` tokens.
    pub fn add(&mut self, s: ProcId, v: usize) {
        for t in Self::tokens_of(s, v) {
            self.tokens.insert(t, s);
        }
    }

    /// The tokens of server `s`.
    pub fn tokens_of(s: ProcId, v: usize) -> Vec<u64> {
        (0..v as u64).map(|i| mix(((s as u64) << 20) ^ i)).collect()
    }

    /// The server owning hash `h`: the first token at or after it, wrapping.
    pub fn owner(&self, h: u64) -> ProcId {
        self.tokens
            .range(h..)
            .next()
            .or_else(|| self.tokens.iter().next())
            .map(|(_, &s)| s)
            .expect("a ring has tokens")
    }

    /// The arc (lo, hi] that ends at token `t` (its predecessor to it).
    pub fn arc_to(&self, t: u64) -> (u64, u64) {
        let lo = self
            .tokens
            .range(..t)
            .next_back()
            .or_else(|| self.tokens.iter().next_back())
            .map(|(&p, _)| p)
            .expect("a ring has tokens");
        (lo, t)
    }
}

/// Whether `h` lies on the arc (lo, hi], which may wrap.
pub fn on_arc(h: u64, (lo, hi): (u64, u64)) -> bool {
    if lo < hi {
        h > lo && h <= hi
    } else {
        h > lo || h <= hi
    }
}

/// Consistent-hashing messages.
#[derive(Clone, Debug)]
pub enum ChMsg {
    /// Store this key.
    Put(u64),
    /// Hand over the keys on these arcs (ring), or re-place all keys (modulo).
    Join(Vec<(u64, u64)>),
    /// Keys handed over.
    Transfer(Vec<u64>),
}

/// A server.
#[derive(Clone, Debug)]
pub struct Server {
    old: Rc<Ring>,
    new: Rc<Ring>,
    servers: usize,
    keys: u64,
    modulo: bool,
    begin: Time,
    /// The keys it stores.
    pub store: BTreeSet<u64>,
    /// Keys it received in TRANSFER.
    pub received: u64,
}

impl Server {
    fn place(&self, k: u64, ring: &Ring, n: usize) -> ProcId {
        if self.modulo {
            (key_hash(k) % n as u64) as ProcId
        } else {
            ring.owner(key_hash(k))
        }
    }

    /// The new server joins: JOIN to the old owner of each of its arcs.
    pub fn join(&mut self, ctx: &mut Ctx<'_, ChMsg>, v: usize) {
        ctx.mark("join");
        if self.modulo {
            for q in 0..self.servers {
                ctx.send(q, ChMsg::Join(vec![]));
            }
            return;
        }
        let mut by_owner: BTreeMap<ProcId, Vec<(u64, u64)>> = BTreeMap::new();
        for t in Ring::tokens_of(ctx.id(), v) {
            let arc = self.new.arc_to(t);
            by_owner.entry(self.old.owner(t)).or_default().push(arc);
        }
        for (q, arcs) in by_owner {
            ctx.send(q, ChMsg::Join(arcs));
        }
    }
}

impl Process for Server {
    type Msg = ChMsg;

    fn on_start(&mut self, ctx: &mut Ctx<'_, ChMsg>) {
        if ctx.id() == 0 {
            ctx.set_timer(self.begin, 0);
        }
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_, ChMsg>, _tag: u64) {
        for k in 0..self.keys {
            match self.place(k, &self.old, self.servers) {
                0 => {
                    self.store.insert(k);
                }
                q => ctx.send(q, ChMsg::Put(k)),
            }
        }
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, ChMsg>, from: ProcId, msg: ChMsg) {
        match msg {
            ChMsg::Put(k) => {
                self.store.insert(k);
            }
            ChMsg::Join(arcs) => {
                let mut out: BTreeMap<ProcId, Vec<u64>> = BTreeMap::new();
                for &k in &self.store {
                    let h = key_hash(k);
                    let to = if self.modulo {
                        self.place(k, &self.new, self.servers + 1)
                    } else if arcs.iter().any(|&a| on_arc(h, a)) {
                        from
                    } else {
                        continue;
                    };
                    if to != ctx.id() {
                        out.entry(to).or_default().push(k);
                    }
                }
                if self.modulo && out.is_empty() {
                    return;
                }
                out.entry(from).or_default();
                for (to, ks) in out {
                    for k in &ks {
                        self.store.remove(k);
                    }
                    ctx.send(to, ChMsg::Transfer(ks));
                }
            }
            ChMsg::Transfer(ks) => {
                self.received += ks.len() as u64;
                self.store.extend(ks);
            }
        }
    }

    fn msg_bytes(msg: &ChMsg) -> usize {
        match msg {
            ChMsg::Put(_) => 8,
            ChMsg::Join(a) => 16 * a.len(),
            ChMsg::Transfer(k) => 8 * k.len(),
        }
    }

    fn msg_label(msg: &ChMsg) -> String {
        match msg {
            ChMsg::Put(k) => format!("Put({k})"),
            ChMsg::Join(a) => format!("Join({} arcs)", a.len()),
            ChMsg::Transfer(k) => format!("Transfer({} keys)", k.len()),
        }
    }
}

/// The coefficient of variation of the servers' loads (std / mean) for
/// `keys` keys on `n` servers with `v` tokens each.
pub fn load_cv(n: usize, v: usize, keys: u64) -> f64 {
    let ring = Ring::new(0..n, v);
    let mut load = vec![0u64; n];
    for k in 0..keys {
        load[ring.owner(key_hash(k))] += 1;
    }
    let mean = keys as f64 / n as f64;
    let var = load
        .iter()
        .map(|&l| (l as f64 - mean).powi(2))
        .sum::<f64>()
        / n as f64;
    var.sqrt() / mean
}

fn run(opts: &LabOptions) -> LabRun {
    let n = opts.nodes;
    let v = if opts.is_variant("one-token") { 1 } else { 64 };
    let modulo = opts.is_variant("modulo");
    let keys: u64 = 20_000.max(20 * n as u64);
    let old = Rc::new(Ring::new(0..n, v));
    let new = Rc::new(Ring::new(0..=n, v));
    let until: Time = 2_000_000;
    let begin = until / 10;
    let make = |_: ProcId| Server {
        old: old.clone(),
        new: new.clone(),
        servers: n,
        keys,
        modulo,
        begin,
        store: BTreeSet::new(),
        received: 0,
    };
    let mut sim = Sim::with_options(
        opts.seed,
        (0..=n).map(make).collect(),
        net_for(&opts.faults, NetConfig::reliable()),
        ClockConfig::perfect(),
        sim_options(n),
    );
    sim.set_trace_limit(20_000);
    let join_at = until * 4 / 10;
    let mut runs = opts.clone();
    runs.nodes = n + 1;
    sim.run_until(join_at);
    sim.with_ctx(n, |s, ctx| s.join(ctx, v));
    run_faulted(&mut sim, &runs, until, make);
    let trace = sim.take_trace();
    let mut report = LabReport::new(ALGORITHM.name, opts);
    let final_owner = |k: u64| {
        if modulo {
            (key_hash(k) % (n as u64 + 1)) as ProcId
        } else {
            new.owner(key_hash(k))
        }
    };
    let mut holders: BTreeMap<u64, Vec<ProcId>> = BTreeMap::new();
    for p in 0..=n {
        for &k in &sim.proc(p).store {
            holders.entry(k).or_default().push(p);
        }
    }
    let misplaced: Vec<String> = (0..keys)
        .filter(|&k| holders.get(&k).map(Vec::as_slice) != Some(&[final_owner(k)][..]))
        .take(3)
        .map(|k| format!("key {k} at {:?}, owner P{}", holders.get(&k), final_owner(k)))
        .collect();
    report.checks.push(Check::new(
        "every key sits at its owner, once",
        misplaced.is_empty(),
        if misplaced.is_empty() {
            format!("{keys} keys on {} servers", n + 1)
        } else {
            misplaced.join("; ")
        },
    ));
    let moved_elsewhere: u64 = (0..n).map(|p| sim.proc(p).received).sum();
    let moved_to_new = sim.proc(n).received;
    report.checks.push(Check::new(
        "a join moves keys only to the new server",
        moved_elsewhere == 0,
        format!("{moved_to_new} keys to the new server, {moved_elsewhere} between old ones"),
    ));
    let s = sim.stats();
    let share = keys as f64 / (n as f64 + 1.0);
    report.costs.push(
        Cost::new(
            "keys moved by the join",
            (moved_to_new + moved_elsewhere) as f64,
            "the new server's share: about K/(N+1)",
            None,
        )
        .near(share),
    );
    let join_msgs = Cost::new(
        "JOIN + TRANSFER messages",
        (s.sent_of("Join") + s.sent_of("Transfer")) as f64,
        "at most 2V (one pair per old owner of a new arc)",
        None,
    );
    report.costs.push(if modulo {
        join_msgs
    } else {
        join_msgs.at_most(2.0 * v as f64)
    });
    for vv in [1usize, 4, 16, 64, 256] {
        if n * vv > 2_000_000 {
            continue;
        }
        report.costs.push(
            Cost::new(
                &format!("load std/mean, V = {vv}"),
                load_cv(n, vv, keys),
                "about √(1/V + N/K): the spread of V arcs, plus the keys' sampling noise",
                None,
            )
            .near((1.0 / vv as f64 + n as f64 / keys as f64).sqrt()),
        );
    }
    let mut lab = LabRun::new(report, trace);
    lab.clients = 1;
    lab
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::report::opts;

    #[test]
    fn a_join_moves_only_the_new_servers_share() {
        for n in [1, 5, 16, 40] {
            let r = run(&opts(n, 1, None)).report;
            assert!(r.passed(), "{r:?}");
            let share = r.costs[0].approx.unwrap();
            let moved = r.costs[0].measured;
            assert!((moved - share).abs() < share * 0.6, "{r:?}");
        }
    }

    #[test]
    fn load_evens_out_as_virtual_nodes_grow() {
        let one = load_cv(32, 1, 40_000);
        let many = load_cv(32, 256, 40_000);
        assert!(one > 0.5, "{one}");
        assert!(many < 0.15, "{many}");
    }

    #[test]
    fn modulo_placement_is_caught() {
        let r = run(&opts(16, 1, Some("modulo"))).report;
        assert!(r.checks[0].held, "{r:?}");
        assert!(!r.checks[1].held, "{r:?}");
    }

    #[test]
    fn arcs_wrap_round_the_ring() {
        assert!(on_arc(5, (3, 7)) && !on_arc(3, (3, 7)) && on_arc(7, (3, 7)));
        assert!(on_arc(1, (u64::MAX - 2, 4)) && on_arc(u64::MAX, (u64::MAX - 2, 4)));
        let r = Ring::new(0..3, 4);
        for h in [0, 1 << 40, u64::MAX] {
            assert!(r.owner(h) < 3);
        }
    }
}
