//! The algorithm descriptor and lookup in the registry (`algos::ALGORITHMS`).

use synod_simnet::Fault;

use crate::algos::ALGORITHMS;
use crate::report::{LabError, LabOptions, LabRun};

/// Which `--faults` an algorithm runs under, and which of them it claims to
/// survive. Every fault is in exactly one of three places: tolerated (the
/// checks hold under it; a test runs each), outside the model (the run
/// applies it and the checks may fail; that is how a checker is seen to
/// fail), or refused with `refused` as the reason.
#[derive(Clone, Copy, Debug)]
pub struct FaultModel {
    /// Faults the algorithm survives: its checks hold under them.
    pub tolerates: &'static [Fault],
    /// Faults applied although they break the algorithm's assumptions.
    pub outside: &'static [Fault],
    /// Why the remaining faults are refused (for the error message).
    pub refused: &'static str,
}

impl FaultModel {
    /// The model of an algorithm that survives every fault kind.
    pub const EVERY: FaultModel = FaultModel {
        tolerates: &Fault::ALL,
        outside: &[],
        refused: "every fault kind applies",
    };

    /// Whether the run applies `f`.
    pub fn runs_under(&self, f: Fault) -> bool {
        self.tolerates.contains(&f) || self.outside.contains(&f)
    }

    /// The refused faults.
    pub fn refuses(&self) -> Vec<Fault> {
        Fault::ALL
            .into_iter()
            .filter(|&f| !self.runs_under(f))
            .collect()
    }
}

fn names(faults: &[Fault]) -> String {
    if faults.is_empty() {
        "none".to_string()
    } else {
        let v: Vec<&str> = faults.iter().map(|f| f.name()).collect();
        v.join(", ")
    }
}

/// A textbook algorithm the lab can run.
#[derive(Clone, Copy, Debug)]
pub struct Algorithm {
    /// The name on the command line, e.g. `lamport-clock`.
    pub name: &'static str,
    /// The family, e.g. `logical clocks`.
    pub family: &'static str,
    /// One line for `synod lab list`.
    pub summary: &'static str,
    /// Rules, guarantee and cost formula, for `synod lab describe`.
    pub description: &'static str,
    /// Named variants (planted bugs, weaker settings), with one line each.
    pub variants: &'static [(&'static str, &'static str)],
    /// Nodes when `--nodes` is not given.
    pub default_nodes: usize,
    /// Smallest and largest sensible node counts.
    pub nodes: (usize, usize),
    /// The faults it runs under.
    pub faults: FaultModel,
    /// Runs the algorithm; options are already validated (nodes, variant
    /// and faults within the descriptor's).
    pub run: fn(&LabOptions) -> LabRun,
}

impl Algorithm {
    /// Validates `opts` against this algorithm and runs it.
    pub fn execute(&self, opts: &LabOptions) -> Result<LabRun, LabError> {
        if let Some(v) = &opts.variant {
            if !self.variants.iter().any(|(name, _)| name == v) {
                let known: Vec<&str> = self.variants.iter().map(|(n, _)| *n).collect();
                return Err(LabError::UnknownVariant {
                    algorithm: self.name.to_string(),
                    variant: v.clone(),
                    known: if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    },
                });
            }
        }
        let refused: Vec<Fault> = opts
            .faults
            .iter()
            .filter(|&f| !self.faults.runs_under(f))
            .collect();
        if !refused.is_empty() {
            let mut runs: Vec<Fault> = self.faults.tolerates.to_vec();
            runs.extend_from_slice(self.faults.outside);
            runs.sort_unstable();
            return Err(LabError::UnsupportedFaults {
                algorithm: self.name.to_string(),
                faults: names(&refused),
                why: self.faults.refused.to_string(),
                supported: names(&runs),
            });
        }
        let (min, max) = self.nodes;
        if opts.nodes < min || opts.nodes > max {
            return Err(LabError::Nodes {
                algorithm: self.name.to_string(),
                nodes: opts.nodes,
                min,
                max,
            });
        }
        Ok((self.run)(opts))
    }
}

/// Every registered algorithm, in `synod lab list` order.
pub fn algorithms() -> &'static [Algorithm] {
    ALGORITHMS
}

/// The algorithm named `name`.
pub fn find(name: &str) -> Result<&'static Algorithm, LabError> {
    ALGORITHMS
        .iter()
        .find(|a| a.name == name)
        .ok_or_else(|| LabError::UnknownAlgorithm(name.to_string()))
}
