//! The algorithm descriptor and lookup in the registry (`algos::ALGORITHMS`).

use crate::algos::ALGORITHMS;
use crate::report::{LabError, LabOptions, LabRun};

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
    /// Runs the algorithm; options are already validated.
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
