//! Helpers shared by the broadcast, gossip and failure-detection algorithms:
//! seeded random connected graphs, recording options that keep 10 000-process
//! runs fast, crash plans, a few numeric functions and a small SVG line plot.

use std::collections::BTreeSet;
use std::fmt::Write;

use rand::{Rng, SeedableRng};
use synod_simnet::{Pcg64Mcg, ProcId, Process, Sim, SimOptions, Time};

use crate::diagram::esc;

/// Up to this many processes a run records its whole trace; beyond it only
/// the first [`BIG_TRACE_LIMIT`] events are kept (enough for a diagram).
pub const TRACE_ALL_NODES: usize = 256;
/// Trace events kept for runs larger than [`TRACE_ALL_NODES`].
pub const BIG_TRACE_LIMIT: usize = 5_000;

/// Recording options for a run of `n` processes.
pub fn sim_options(n: usize) -> SimOptions {
    let mut o = SimOptions::default();
    if n > TRACE_ALL_NODES {
        o.trace_limit = BIG_TRACE_LIMIT;
    }
    o
}

/// Latency of [`round_net`]: every message takes exactly this long, so hops
/// are synchronous rounds (unless `--faults reorder` stretches some).
pub const HOP: Time = 5_000;

/// A network with a fixed latency of [`HOP`], plus the message faults of `faults`.
pub fn round_net(faults: &synod_simnet::FaultSet) -> synod_simnet::NetConfig {
    let mut base = synod_simnet::NetConfig::reliable();
    base.latency_min = HOP;
    base.latency_max = HOP;
    crate::harness::net_for(faults, base)
}

/// An undirected graph as sorted adjacency lists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Graph {
    /// `adj[p]`: the neighbours of `p`, ascending, without `p` itself.
    pub adj: Vec<Vec<ProcId>>,
}

impl Graph {
    /// A connected random graph on `n` vertices with average degree about
    /// `degree` (at least a tree): a random recursive tree, then random extra
    /// edges. The same `(n, degree, seed)` always gives the same graph.
    pub fn random_connected(n: usize, degree: usize, seed: u64) -> Graph {
        let mut rng = Pcg64Mcg::seed_from_u64(seed ^ 0x6772_6170_6873_u64);
        let mut sets: Vec<BTreeSet<ProcId>> = vec![BTreeSet::new(); n];
        for v in 1..n {
            let u = rng.random_range(0..v);
            sets[u].insert(v);
            sets[v].insert(u);
        }
        let max_edges = n * n.saturating_sub(1) / 2;
        let target = (n * degree / 2).min(max_edges);
        let mut edges = n.saturating_sub(1);
        // Bounded: each attempt either adds an edge or hits an existing one;
        // the attempt budget keeps dense requests from looping for long.
        let mut attempts = 0usize;
        while edges < target && attempts < 20 * target + 100 {
            attempts += 1;
            let a = rng.random_range(0..n);
            let b = rng.random_range(0..n);
            if a != b && sets[a].insert(b) {
                sets[b].insert(a);
                edges += 1;
            }
        }
        Graph {
            adj: sets.into_iter().map(|s| s.into_iter().collect()).collect(),
        }
    }

    /// Number of vertices.
    pub fn len(&self) -> usize {
        self.adj.len()
    }

    /// Whether the graph has no vertex.
    pub fn is_empty(&self) -> bool {
        self.adj.is_empty()
    }

    /// Number of undirected edges |E|.
    pub fn edges(&self) -> usize {
        let twice: usize = self.adj.iter().map(Vec::len).sum();
        assert!(twice.is_multiple_of(2), "adjacency lists are not symmetric");
        twice / 2
    }

    /// Hop distances from `src` (breadth-first); `None` for unreachable vertices.
    pub fn distances(&self, src: ProcId) -> Vec<Option<u32>> {
        let mut dist = vec![None; self.len()];
        let mut queue = std::collections::VecDeque::new();
        dist[src] = Some(0);
        queue.push_back(src);
        while let Some(u) = queue.pop_front() {
            let d = dist[u].expect("queued vertices have a distance");
            for &v in &self.adj[u] {
                if dist[v].is_none() {
                    dist[v] = Some(d + 1);
                    queue.push_back(v);
                }
            }
        }
        dist
    }

    /// Whether `a` and `b` are adjacent.
    pub fn adjacent(&self, a: ProcId, b: ProcId) -> bool {
        self.adj[a].binary_search(&b).is_ok()
    }
}

/// A uniformly random process other than `me` (there must be at least two).
pub fn random_peer(rng: &mut Pcg64Mcg, me: ProcId, n: usize) -> ProcId {
    assert!(n >= 2, "no peer to pick among {n} processes");
    (me + rng.random_range(1..n)) % n
}

/// `count` distinct processes other than `me`, drawn uniformly (fewer if there are not enough).
pub fn random_peers(
    rng: &mut Pcg64Mcg,
    me: ProcId,
    n: usize,
    count: usize,
    avoid: ProcId,
) -> Vec<ProcId> {
    let pool = (0..n).filter(|&p| p != me && p != avoid).count();
    let want = count.min(pool);
    let mut out: Vec<ProcId> = Vec::with_capacity(want);
    // Rejection sampling terminates fast while `want` is a small fraction of
    // the pool; for small pools fall back to a partial shuffle.
    if want * 4 <= pool {
        while out.len() < want {
            let p = rng.random_range(0..n);
            if p != me && p != avoid && !out.contains(&p) {
                out.push(p);
            }
        }
    } else {
        let mut all: Vec<ProcId> = (0..n).filter(|&p| p != me && p != avoid).collect();
        for i in 0..want {
            let j = rng.random_range(i..all.len());
            all.swap(i, j);
        }
        all.truncate(want);
        out = all;
    }
    out
}

/// Chooses `count` distinct processes (never process 0, the usual source or
/// monitor) and a crash time for each in `from..to`, sorted by time.
pub fn crash_plan(n: usize, seed: u64, count: usize, from: Time, to: Time) -> Vec<(Time, ProcId)> {
    let mut rng = Pcg64Mcg::seed_from_u64(seed ^ 0x63_7261_7368);
    let mut victims = random_peers(&mut rng, 0, n, count, 0);
    victims.sort_unstable();
    let mut plan: Vec<(Time, ProcId)> = victims
        .into_iter()
        .map(|p| (rng.random_range(from..to.max(from + 1)), p))
        .collect();
    plan.sort_unstable();
    plan
}

/// Runs `sim` to `until`, crashing each planned process at its time.
pub fn run_with_crashes<P: Process>(sim: &mut Sim<P>, plan: &[(Time, ProcId)], until: Time) {
    for &(t, p) in plan {
        if t > until {
            break;
        }
        sim.run_until(t);
        sim.crash(p);
    }
    sim.run_until(until);
}

/// Period of one gossip round: long beside the 1–10 ms latency, so every
/// round's messages arrive within the round.
pub const ROUND: Time = 100_000;

/// Runs `sim` round by round (each round ends 90 % into the next period,
/// once its messages have arrived) until `done` holds or `max_rounds` have
/// run; returns the number of rounds run. `done` is evaluated once a round.
pub fn run_rounds<P: Process>(
    sim: &mut Sim<P>,
    max_rounds: u32,
    mut done: impl FnMut(&Sim<P>) -> bool,
) -> u32 {
    for r in 0..=max_rounds {
        sim.run_until(r as Time * ROUND + ROUND * 9 / 10);
        if done(sim) {
            return r;
        }
    }
    max_rounds
}

/// `ln erfc(z)` for `z >= 0` (Numerical Recipes' Chebyshev fit of erfc,
/// relative error below 1.2e-7 everywhere, so the logarithm stays accurate
/// far into the tail where erfc itself underflows).
fn ln_erfc_nonneg(z: f64) -> f64 {
    assert!(z >= 0.0, "ln_erfc_nonneg of {z}");
    let t = 1.0 / (1.0 + 0.5 * z);
    let c = [
        -1.265_512_23,
        1.000_023_68,
        0.374_091_96,
        0.096_784_18,
        -0.186_288_06,
        0.278_868_07,
        -1.135_203_98,
        1.488_515_87,
        -0.822_152_23,
        0.170_872_77,
    ];
    let poly = c.iter().rev().fold(0.0, |acc, k| acc * t + k);
    t.ln() - z * z + poly
}

/// The complementary error function erfc(x).
pub fn erfc(x: f64) -> f64 {
    let r = ln_erfc_nonneg(x.abs()).exp();
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}

/// `-log10 P(Z > y)` for a standard normal Z, finite deep in the tail.
pub fn neg_log10_normal_tail(y: f64) -> f64 {
    // P(Z > y) = erfc(y / √2) / 2.
    let x = y / std::f64::consts::SQRT_2;
    if x >= 0.0 {
        -(ln_erfc_nonneg(x) - std::f64::consts::LN_2) / std::f64::consts::LN_10
    } else {
        -(erfc(x) / 2.0).log10()
    }
}

/// One line of a plot.
#[derive(Clone, Debug)]
pub struct Series {
    /// Its name in the legend.
    pub name: String,
    /// Points `(x, y)`, x ascending.
    pub points: Vec<(f64, f64)>,
}

const COLORS: [&str; 6] = ["#2a5db0", "#c33", "#080", "#8a2be2", "#d60", "#555"];

/// A small self-contained SVG line plot: `series` as polylines, `hlines` as
/// dashed horizontal rules (thresholds), `vlines` as dotted vertical rules
/// (events such as a crash). Points beyond `y_max` are clipped to it.
pub fn plot_svg(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    hlines: &[(String, f64)],
    vlines: &[(String, f64)],
    y_max: f64,
) -> String {
    const W: f64 = 900.0;
    const H: f64 = 360.0;
    const L: f64 = 60.0;
    const R: f64 = 160.0;
    const T: f64 = 40.0;
    const B: f64 = 40.0;
    let xs = series.iter().flat_map(|s| s.points.iter().map(|p| p.0));
    let (mut x0, mut x1) = (f64::INFINITY, f64::NEG_INFINITY);
    for x in xs.chain(vlines.iter().map(|v| v.1)) {
        x0 = x0.min(x);
        x1 = x1.max(x);
    }
    if !x0.is_finite() {
        (x0, x1) = (0.0, 1.0);
    }
    let xspan = (x1 - x0).max(1e-9);
    let ymax = y_max.max(1e-9);
    let px = |x: f64| L + (x - x0) / xspan * (W - L - R);
    let py = |y: f64| T + (1.0 - y.clamp(0.0, ymax) / ymax) * (H - T - B);
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="11">"#
    );
    s.push_str("<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n");
    let _ = writeln!(
        s,
        r#"<text x="{L}" y="20" font-size="14">{}</text>"#,
        esc(title)
    );
    let (xa, ya) = (px(x0), py(0.0));
    let _ = writeln!(
        s,
        r#"<line x1="{xa}" y1="{T}" x2="{xa}" y2="{ya}" stroke="black"/><line x1="{xa}" y1="{ya}" x2="{}" y2="{ya}" stroke="black"/>"#,
        W - R
    );
    for i in 0..=4 {
        let y = ymax * i as f64 / 4.0;
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{:.1}" text-anchor="end">{:.1}</text>"#,
            L - 5.0,
            py(y) + 4.0,
            y
        );
        let x = x0 + xspan * i as f64 / 4.0;
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{:.2}</text>"#,
            px(x),
            H - B + 15.0,
            x
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{}" text-anchor="middle">{}</text><text x="14" y="{:.1}" transform="rotate(-90 14 {:.1})" text-anchor="middle">{}</text>"#,
        (L + W - R) / 2.0,
        H - 8.0,
        esc(x_label),
        H / 2.0,
        H / 2.0,
        esc(y_label)
    );
    for (name, y) in hlines {
        let _ = writeln!(
            s,
            r##"<line x1="{L}" y1="{0:.1}" x2="{1}" y2="{0:.1}" stroke="#999" stroke-dasharray="6,4"/><text x="{2}" y="{3:.1}" fill="#666">{4}</text>"##,
            py(*y),
            W - R,
            W - R + 4.0,
            py(*y) + 4.0,
            esc(name)
        );
    }
    for (name, x) in vlines {
        let _ = writeln!(
            s,
            r##"<line x1="{0:.1}" y1="{T}" x2="{0:.1}" y2="{ya}" stroke="#d00" stroke-dasharray="2,3"/><text x="{1:.1}" y="{2}" fill="#d00">{3}</text>"##,
            px(*x),
            px(*x) + 3.0,
            T + 10.0,
            esc(name)
        );
    }
    for (i, ser) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let pts: Vec<String> = ser
            .points
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
            .collect();
        let _ = writeln!(
            s,
            r#"<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{}"/>"#,
            pts.join(" ")
        );
        let ly = T + 30.0 + 16.0 * i as f64;
        let _ = writeln!(
            s,
            r#"<line x1="{0}" y1="{ly}" x2="{1}" y2="{ly}" stroke="{color}" stroke-width="3"/><text x="{2}" y="{3}">{4}</text>"#,
            W - R + 10.0,
            W - R + 30.0,
            W - R + 35.0,
            ly + 4.0,
            esc(&ser.name)
        );
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_graphs_are_connected_symmetric_and_seeded() {
        for seed in 0..5 {
            let g = Graph::random_connected(40, 4, seed);
            assert!(g.distances(0).iter().all(Option::is_some));
            for (u, ns) in g.adj.iter().enumerate() {
                assert!(!ns.contains(&u));
                assert!(ns.iter().all(|&v| g.adjacent(v, u)));
            }
            assert_eq!(g.edges(), 80);
            assert_eq!(g, Graph::random_connected(40, 4, seed));
        }
        assert_ne!(
            Graph::random_connected(40, 4, 1),
            Graph::random_connected(40, 4, 2)
        );
    }

    #[test]
    fn erfc_and_normal_tail_match_known_values() {
        assert!((erfc(0.0) - 1.0).abs() < 1e-6);
        assert!((erfc(1.0) - 0.157_299_2).abs() < 1e-6);
        assert!((erfc(-1.0) - 1.842_700_8).abs() < 1e-6);
        // P(Z > 3) = 1.3499e-3 → 2.8697; P(Z > 8) = 6.2210e-16 → 15.206.
        assert!((neg_log10_normal_tail(3.0) - 2.8697).abs() < 1e-3);
        assert!((neg_log10_normal_tail(8.0) - 15.206).abs() < 1e-2);
        assert!(neg_log10_normal_tail(40.0).is_finite());
    }

    #[test]
    fn random_peers_are_distinct_and_avoid() {
        let mut rng = Pcg64Mcg::seed_from_u64(3);
        for n in [3, 5, 50] {
            let p = random_peers(&mut rng, 1, n, 3, 2);
            assert_eq!(p.len(), 3.min(n - 2));
            assert!(p.iter().all(|&x| x != 1 && x != 2 && x < n));
            let set: BTreeSet<_> = p.iter().collect();
            assert_eq!(set.len(), p.len());
        }
    }

    #[test]
    fn plot_has_lines_and_labels() {
        let s = plot_svg(
            "t",
            "x",
            "y",
            &[Series {
                name: "a<b".into(),
                points: vec![(0.0, 1.0), (1.0, 5.0)],
            }],
            &[("φ=3".into(), 3.0)],
            &[("crash".into(), 0.5)],
            10.0,
        );
        assert!(
            s.contains("<polyline")
                && s.contains("a&lt;b")
                && s.contains("φ=3")
                && s.contains("crash")
        );
    }
}
