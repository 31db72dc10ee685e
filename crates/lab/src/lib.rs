//! The lab: textbook distributed algorithms run in the deterministic
//! simulator (`synod-simnet`), each checked against its guarantee, costed
//! beside the textbook formula, and drawn as a space-time diagram.
//!
//! # How to add an algorithm
//!
//! 1. Write `src/algos/<name>.rs` (module docs first). In it:
//!    - the processes: types implementing [`synod_simnet::Process`], sans-IO,
//!      deterministic (no OS time, randomness, `HashMap`; use `ctx.rng()`);
//!      give messages a short `msg_label` and an honest `msg_bytes`;
//!      call `ctx.mark("enter CS")` for moments worth seeing and
//!      `ctx.stamp(..)` to show logical timestamps in diagrams;
//!    - `fn run(opts: &LabOptions) -> LabRun`: build a [`synod_simnet::Sim`] (use
//!      [`harness::net_for`] for the message faults and [`harness::run_faulted`]
//!      for partitions, crashes and the rest), run it to a bounded time, then
//!      check the guarantee from the trace or the final states
//!      ([`causality::Causality`] gives the true happens-before) and measure
//!      costs from `sim.stats()` beside the textbook formula;
//!    - `pub const ALGORITHM: Algorithm = Algorithm { name, family, summary,
//!      description, variants, default_nodes, nodes, faults, run }`; the
//!      description states the rules, the guarantee and the cost formula;
//!      `faults` ([`registry::FaultModel`]) says which `--faults` it
//!      tolerates, which it runs under outside its model, and why it refuses
//!      the rest (`tests/faults.rs` holds every algorithm to its claims);
//!    - extra figures (such as φ-accrual's suspicion plot) go in
//!      [`LabRun::figures`]; `--svg` and `--html` write them;
//!    - tests at the end: the guarantee holds on a few seeds, and the checker
//!      can fail (a planted-bug variant, or a fault outside the model).
//! 2. Add the module's name to the `registry!` list in `src/algos/mod.rs`.
//!
//! That is all: `synod lab list`, `describe`, JSON, SVG, HTML and Mermaid
//! output come from the framework. The only file IO is `output.rs` (the
//! CLI writing what was asked for), exempted by name in the style rule.

#![deny(missing_docs)]

pub mod algos;
pub mod causality;
pub mod cli;
pub mod diagram;
pub mod harness;
pub mod output;
pub mod registry;
pub mod report;

pub use registry::{algorithms, find, Algorithm};
pub use report::{Bound, Check, Cost, Figure, LabError, LabOptions, LabReport, LabRun};
