//! Faults as data: fault kinds, swarm selection, and a seeded nemesis schedule.

use std::collections::BTreeSet;
use std::fmt;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;

use crate::hash::derive_seed;
use crate::{ProcId, Time};

const STREAM_SWARM: u64 = 10;
const STREAM_NEMESIS: u64 = 11;

/// A kind of fault a run may suffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Fault {
    /// Messages are lost.
    Loss,
    /// Messages are delivered twice.
    Duplicate,
    /// Messages overtake each other (long-tail latency, FIFO off).
    Reorder,
    /// The network splits into groups.
    Partition,
    /// A link drops messages in one direction.
    OneWay,
    /// A link holds messages, then delivers them all at once.
    Clog,
    /// A process crashes and later restarts.
    Crash,
    /// A process's clock jumps forward.
    Skew,
}

impl Fault {
    /// Every fault, in a fixed order.
    pub const ALL: [Fault; 8] = [
        Fault::Loss,
        Fault::Duplicate,
        Fault::Reorder,
        Fault::Partition,
        Fault::OneWay,
        Fault::Clog,
        Fault::Crash,
        Fault::Skew,
    ];

    /// The name used on command lines.
    pub fn name(self) -> &'static str {
        match self {
            Fault::Loss => "loss",
            Fault::Duplicate => "duplicate",
            Fault::Reorder => "reorder",
            Fault::Partition => "partition",
            Fault::OneWay => "oneway",
            Fault::Clog => "clog",
            Fault::Crash => "crash",
            Fault::Skew => "skew",
        }
    }

    /// Parses one name (see [`Fault::name`]).
    pub fn parse(s: &str) -> Result<Fault, FaultParseError> {
        Fault::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| FaultParseError::Unknown(s.to_string()))
    }

    /// Parses a comma-separated list such as `"loss,partition,crash"`;
    /// `"all"` and `"none"` (or the empty string) are accepted too.
    pub fn parse_list(s: &str) -> Result<FaultSet, FaultParseError> {
        let mut set = FaultSet::none();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part {
                "all" => set = FaultSet::all(),
                "none" => {}
                _ => set.insert(Fault::parse(part)?),
            }
        }
        Ok(set)
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A fault name that is not one of [`Fault::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FaultParseError {
    /// Not a fault name.
    #[error("unknown fault `{0}` (known: loss, duplicate, reorder, partition, oneway, clog, crash, skew, all, none)")]
    Unknown(String),
}

/// A set of faults.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FaultSet(BTreeSet<Fault>);

impl FaultSet {
    /// No faults.
    pub fn none() -> Self {
        FaultSet(BTreeSet::new())
    }

    /// Every fault.
    pub fn all() -> Self {
        FaultSet(Fault::ALL.into_iter().collect())
    }

    /// Swarm testing: each seed switches on a random subset of `all` (each fault
    /// with probability 1/2), so different seeds stress different mixes.
    pub fn swarm(seed: u64) -> Self {
        Self::all().swarm_subset(seed)
    }

    /// A random subset of this set, drawn from `seed`.
    pub fn swarm_subset(&self, seed: u64) -> Self {
        let mut rng = Pcg64Mcg::seed_from_u64(derive_seed(seed, STREAM_SWARM, 0));
        FaultSet(
            self.0
                .iter()
                .copied()
                .filter(|_| rng.random_bool(0.5))
                .collect(),
        )
    }

    /// Adds a fault.
    pub fn insert(&mut self, f: Fault) {
        self.0.insert(f);
    }

    /// Removes a fault.
    pub fn remove(&mut self, f: Fault) {
        self.0.remove(&f);
    }

    /// Whether `f` is on.
    pub fn contains(&self, f: Fault) -> bool {
        self.0.contains(&f)
    }

    /// Whether no fault is on.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The faults, in [`Fault::ALL`] order.
    pub fn iter(&self) -> impl Iterator<Item = Fault> + '_ {
        self.0.iter().copied()
    }
}

impl fmt::Display for FaultSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("none");
        }
        let names: Vec<&str> = self.iter().map(Fault::name).collect();
        f.write_str(&names.join(","))
    }
}

impl FromIterator<Fault> for FaultSet {
    fn from_iter<I: IntoIterator<Item = Fault>>(iter: I) -> Self {
        FaultSet(iter.into_iter().collect())
    }
}

/// One step of a nemesis schedule.
#[derive(Clone, Debug, PartialEq)]
pub enum NemesisAction {
    /// Split the network into these groups (others form one more group).
    Partition(Vec<Vec<ProcId>>),
    /// Remove the partition and all one-way blocks.
    Heal,
    /// Drop messages from the first to the second process.
    Block(ProcId, ProcId),
    /// Undo a block.
    Unblock(ProcId, ProcId),
    /// Hold messages from the first to the second process.
    Clog(ProcId, ProcId),
    /// Release a clogged link.
    Unclog(ProcId, ProcId),
    /// Override the loss rate (`None`: back to the configured rate).
    SetLoss(Option<f64>),
    /// Override the duplication rate (`None`: back to the configured rate).
    SetDuplicate(Option<f64>),
    /// Force reordering (long tails, FIFO off) on or off.
    SetReorder(bool),
    /// Remove every loss, duplication and reorder override.
    ClearNetFaults,
    /// Move a process's clock forward by this many µs.
    ClockJump(ProcId, Time),
    /// Crash a process (the caller does it).
    Crash(ProcId),
    /// Restart a process (the caller rebuilds it).
    Restart(ProcId),
}

/// Knobs of a nemesis schedule.
#[derive(Clone, Debug, PartialEq)]
pub struct NemesisConfig {
    /// No fault before this time.
    pub start: Time,
    /// Every fault is undone at this time (heal, unclog, restart, clear).
    pub end: Time,
    /// Mean time between fault actions.
    pub mean_interval: Time,
    /// At most this many processes down at once.
    pub max_crashed: usize,
    /// Loss rate while the loss fault is on.
    pub loss: f64,
    /// Duplication rate while the duplicate fault is on.
    pub duplicate: f64,
    /// Largest clock jump.
    pub max_jump: Time,
    /// At most this many actions in the schedule.
    pub max_actions: usize,
}

impl NemesisConfig {
    /// Sensible defaults for `n` processes faulted between `start` and `end`:
    /// a minority may be down at once.
    pub fn new(n: usize, start: Time, end: Time) -> Self {
        NemesisConfig {
            start,
            end,
            mean_interval: ((end.saturating_sub(start)) / 20).max(1),
            max_crashed: n.saturating_sub(1) / 2,
            loss: 0.2,
            duplicate: 0.1,
            max_jump: 100_000,
            max_actions: 10_000,
        }
    }
}

/// Produces a deterministic fault schedule from a seed and a set of faults.
#[derive(Clone, Debug)]
pub struct Nemesis {
    seed: u64,
    faults: FaultSet,
    n: usize,
    config: NemesisConfig,
}

impl Nemesis {
    /// A nemesis for `n` processes.
    pub fn new(seed: u64, faults: FaultSet, n: usize, config: NemesisConfig) -> Self {
        assert!(config.start <= config.end, "nemesis start after end");
        assert!(
            config.mean_interval > 0,
            "nemesis mean_interval must be positive"
        );
        Nemesis {
            seed,
            faults,
            n,
            config,
        }
    }

    /// The schedule, sorted by time. Every fault started is undone at `end`.
    pub fn schedule(&self) -> Vec<(Time, NemesisAction)> {
        let c = &self.config;
        let n = self.n;
        let mut rng = Pcg64Mcg::seed_from_u64(derive_seed(self.seed, STREAM_NEMESIS, 0));
        // Faults that make sense for this many processes.
        let kinds: Vec<Fault> = self
            .faults
            .iter()
            .filter(|f| match f {
                Fault::Partition | Fault::OneWay | Fault::Clog => n >= 2,
                Fault::Crash => c.max_crashed > 0,
                _ => n >= 1,
            })
            .collect();
        let mut out = Vec::new();
        let mut partitioned = false;
        let mut blocked: BTreeSet<(ProcId, ProcId)> = BTreeSet::new();
        let mut clogged: BTreeSet<(ProcId, ProcId)> = BTreeSet::new();
        let mut crashed: BTreeSet<ProcId> = BTreeSet::new();
        let (mut loss, mut dup, mut reorder) = (false, false, false);
        let mut t = c.start;
        // Leave room for the closing actions.
        let budget = c.max_actions.saturating_sub(n + 4 + 2 * n.min(64));
        while !kinds.is_empty() && out.len() < budget {
            t += rng
                .random_range(c.mean_interval / 2..=c.mean_interval + c.mean_interval / 2)
                .max(1);
            if t >= c.end {
                break;
            }
            let link = |rng: &mut Pcg64Mcg| {
                let a = rng.random_range(0..n);
                let b = (a + rng.random_range(1..n)) % n;
                (a, b)
            };
            let action = match kinds[rng.random_range(0..kinds.len())] {
                Fault::Partition => {
                    partitioned = !partitioned;
                    if partitioned {
                        let mut ids: Vec<ProcId> = (0..n).collect();
                        ids.shuffle(&mut rng);
                        let cut = rng.random_range(1..n);
                        let mut a = ids[..cut].to_vec();
                        let mut b = ids[cut..].to_vec();
                        a.sort_unstable();
                        b.sort_unstable();
                        NemesisAction::Partition(vec![a, b])
                    } else {
                        blocked.clear();
                        NemesisAction::Heal
                    }
                }
                Fault::OneWay => match blocked.iter().next().copied() {
                    Some(l) if rng.random_bool(0.5) => {
                        blocked.remove(&l);
                        NemesisAction::Unblock(l.0, l.1)
                    }
                    _ => {
                        let l = link(&mut rng);
                        blocked.insert(l);
                        NemesisAction::Block(l.0, l.1)
                    }
                },
                Fault::Clog => match clogged.iter().next().copied() {
                    Some(l) if rng.random_bool(0.5) => {
                        clogged.remove(&l);
                        NemesisAction::Unclog(l.0, l.1)
                    }
                    _ => {
                        let l = link(&mut rng);
                        clogged.insert(l);
                        NemesisAction::Clog(l.0, l.1)
                    }
                },
                Fault::Crash => {
                    if !crashed.is_empty()
                        && (crashed.len() >= c.max_crashed || rng.random_bool(0.5))
                    {
                        let v: Vec<ProcId> = crashed.iter().copied().collect();
                        let p = v[rng.random_range(0..v.len())];
                        crashed.remove(&p);
                        NemesisAction::Restart(p)
                    } else {
                        let up: Vec<ProcId> = (0..n).filter(|p| !crashed.contains(p)).collect();
                        let p = up[rng.random_range(0..up.len())];
                        crashed.insert(p);
                        NemesisAction::Crash(p)
                    }
                }
                Fault::Loss => {
                    loss = !loss;
                    NemesisAction::SetLoss(loss.then_some(c.loss))
                }
                Fault::Duplicate => {
                    dup = !dup;
                    NemesisAction::SetDuplicate(dup.then_some(c.duplicate))
                }
                Fault::Reorder => {
                    reorder = !reorder;
                    NemesisAction::SetReorder(reorder)
                }
                Fault::Skew => NemesisAction::ClockJump(
                    rng.random_range(0..n),
                    rng.random_range(1..=c.max_jump.max(1)),
                ),
            };
            out.push((t, action));
        }
        let end = c.end.max(t);
        if partitioned || !blocked.is_empty() {
            out.push((end, NemesisAction::Heal));
        }
        for (a, b) in clogged {
            out.push((end, NemesisAction::Unclog(a, b)));
        }
        if loss || dup || reorder {
            out.push((end, NemesisAction::ClearNetFaults));
        }
        for p in crashed {
            out.push((end, NemesisAction::Restart(p)));
        }
        out
    }
}
