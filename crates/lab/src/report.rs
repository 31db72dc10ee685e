//! What a lab run produces: options in, a report (checks and costs) and a trace out.

use serde::Serialize;
use synod_simnet::{FaultSet, Trace};

/// How to run an algorithm, after validation.
#[derive(Clone, Debug)]
pub struct LabOptions {
    /// Number of processes.
    pub nodes: usize,
    /// The run's seed.
    pub seed: u64,
    /// Faults switched on.
    pub faults: FaultSet,
    /// A named variant of the algorithm (a planted bug or a weaker setting).
    pub variant: Option<String>,
}

impl LabOptions {
    /// Options with no faults and no variant.
    pub fn new(nodes: usize, seed: u64) -> Self {
        LabOptions {
            nodes,
            seed,
            faults: FaultSet::none(),
            variant: None,
        }
    }

    /// The same options with the variant `v` (or none).
    pub fn with_variant(mut self, v: Option<&str>) -> Self {
        self.variant = v.map(str::to_string);
        self
    }

    /// Whether the variant `v` was chosen.
    pub fn is_variant(&self, v: &str) -> bool {
        self.variant.as_deref() == Some(v)
    }
}

/// Options for a test run: `nodes`, `seed` and a variant.
#[cfg(test)]
pub(crate) fn opts(nodes: usize, seed: u64, variant: Option<&str>) -> LabOptions {
    LabOptions::new(nodes, seed).with_variant(variant)
}

/// One property checked on the run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Check {
    /// What was checked.
    pub name: String,
    /// Whether it held.
    pub held: bool,
    /// Evidence: how many cases, or the first counterexample.
    pub detail: String,
}

impl Check {
    /// A check named `name`.
    pub fn new(name: &str, held: bool, detail: impl Into<String>) -> Self {
        Check {
            name: name.to_string(),
            held,
            detail: detail.into(),
        }
    }
}

/// One measured cost beside the textbook's formula.
///
/// Three fields hold what the textbook says, and each kind of claim has
/// its own: `expected` an exact figure the measurement must equal,
/// `bound` an inequality it must satisfy (`min ≤ measured ≤ max`), and
/// `approx` an asymptotic or statistical figure it should come near but
/// need not equal. `tests/costs.rs` holds every algorithm to the first two.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Cost {
    /// What was measured.
    pub name: String,
    /// The measurement.
    pub measured: f64,
    /// The textbook formula.
    pub formula: String,
    /// The formula evaluated for this run, where the textbook gives an exact figure.
    pub expected: Option<f64>,
    /// The range the textbook guarantees for this run, where it gives a bound.
    pub bound: Option<Bound>,
    /// An asymptotic or statistical figure for this run (an average over
    /// inputs, a big-O's leading term): near the measurement, not equal to it.
    pub approx: Option<f64>,
}

/// An inequality a measured cost satisfies: `min ≤ measured ≤ max`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Bound {
    /// The lower end, if the textbook gives one.
    pub min: Option<f64>,
    /// The upper end, if the textbook gives one.
    pub max: Option<f64>,
}

impl Bound {
    /// Whether `x` lies within the bound.
    pub fn holds(&self, x: f64) -> bool {
        const EPS: f64 = 1e-9;
        self.min.is_none_or(|m| x >= m - EPS) && self.max.is_none_or(|m| x <= m + EPS)
    }
}

impl Cost {
    /// A cost named `name`, with the exact figure `expected` if the textbook gives one.
    pub fn new(name: &str, measured: f64, formula: &str, expected: Option<f64>) -> Self {
        Cost {
            name: name.to_string(),
            measured,
            formula: formula.to_string(),
            expected,
            bound: None,
            approx: None,
        }
    }

    /// The same cost with the textbook's upper bound `max`.
    pub fn at_most(mut self, max: f64) -> Self {
        self.bound = Some(Bound {
            min: self.bound.and_then(|b| b.min),
            max: Some(max),
        });
        self
    }

    /// The same cost with the textbook's lower bound `min`.
    pub fn at_least(mut self, min: f64) -> Self {
        self.bound = Some(Bound {
            min: Some(min),
            max: self.bound.and_then(|b| b.max),
        });
        self
    }

    /// The same cost with an asymptotic or statistical figure `approx`.
    pub fn near(mut self, approx: f64) -> Self {
        self.approx = Some(approx);
        self
    }
}

/// The outcome of a run, as `synod lab … -w json` prints it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LabReport {
    /// The algorithm's name.
    pub algorithm: String,
    /// Number of processes.
    pub nodes: usize,
    /// The seed.
    pub seed: u64,
    /// Properties checked.
    pub checks: Vec<Check>,
    /// Costs measured.
    pub costs: Vec<Cost>,
}

impl LabReport {
    /// An empty report for a run.
    pub fn new(algorithm: &str, opts: &LabOptions) -> Self {
        LabReport {
            algorithm: algorithm.to_string(),
            nodes: opts.nodes,
            seed: opts.seed,
            checks: vec![],
            costs: vec![],
        }
    }

    /// Whether every check held.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.held)
    }

    /// The report as one line of JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a report always serialises")
    }
}

/// A finished run: the report, the trace to draw, and any extra figures.
#[derive(Clone, Debug)]
pub struct LabRun {
    /// Checks and costs.
    pub report: LabReport,
    /// The run's trace.
    pub trace: Trace,
    /// Figures beside the space-time diagram (for example φ-accrual's
    /// suspicion level over time), drawn from this same run.
    pub figures: Vec<Figure>,
    /// Processes beyond the `nodes` (PBFT's client, the server that joins a
    /// hash ring): the run has `nodes + clients` of them, and diagrams draw
    /// their lanes last.
    pub clients: usize,
}

impl LabRun {
    /// A run with no extra figures.
    pub fn new(report: LabReport, trace: Trace) -> Self {
        LabRun {
            report,
            trace,
            figures: vec![],
            clients: 0,
        }
    }
}

/// An extra figure of a run, as a complete SVG document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Figure {
    /// A short name, lower case, for file names: `--svg run.svg` writes this
    /// figure to `run-NAME.svg`.
    pub name: String,
    /// What the figure shows, one line (the HTML page's caption).
    pub caption: String,
    /// The SVG document.
    pub svg: String,
}

/// A lab request that cannot be run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LabError {
    /// No algorithm of that name.
    #[error("unknown algorithm `{0}` (see `synod lab list`)")]
    UnknownAlgorithm(String),
    /// The algorithm has no such variant.
    #[error("algorithm `{algorithm}` has no variant `{variant}` (it has: {known})")]
    UnknownVariant {
        /// The algorithm.
        algorithm: String,
        /// The variant asked for.
        variant: String,
        /// The variants it has.
        known: String,
    },
    /// The algorithm does not run under some of the faults asked for.
    #[error(
        "algorithm `{algorithm}` does not run under {faults}: {why} (it runs under: {supported})"
    )]
    UnsupportedFaults {
        /// The algorithm.
        algorithm: String,
        /// The refused faults, comma-separated.
        faults: String,
        /// Why.
        why: String,
        /// The faults it does run under, comma-separated.
        supported: String,
    },
    /// Too few or too many processes.
    #[error("algorithm `{algorithm}` runs on {min}..={max} nodes, not {nodes}")]
    Nodes {
        /// The algorithm.
        algorithm: String,
        /// Nodes asked for.
        nodes: usize,
        /// Smallest allowed.
        min: usize,
        /// Largest allowed.
        max: usize,
    },
}
