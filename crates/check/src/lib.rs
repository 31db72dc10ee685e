//! Recorded client histories and the checkers that judge them: the history
//! format ([`history`]), linearizability per key ([`linear`]), acknowledged
//! writes lost after healing ([`lost`]), random linearizable histories for
//! tests and benchmarks ([`generate`]) and `synod check` ([`cli`]).
//!
//! Architecture invariant: nothing here knows how a history was produced; the
//! checkers see only the recorded operations.
#![deny(missing_docs)]

pub mod cli;
pub mod generate;
pub mod history;
pub mod linear;
pub mod lost;
pub mod sessions;

pub use history::{read_jsonl, write_jsonl, HistoryError, MonotonicClock, Op, OpKind, Recorder};
pub use linear::{check, check_history, Config, Report, Verdict};
pub use lost::{check_lost, LostWrite};
