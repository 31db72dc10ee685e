//! The determinism self-check: run a seed twice and compare.

use crate::{Process, Sim, TraceEvent};

/// Two runs of one seed diverged.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("seed {seed} is not deterministic: trace hashes {first:#x} and {second:#x}{}", .first_difference.as_ref().map(|d| format!("; first difference at event {}: {}", d.0, d.1)).unwrap_or_default())]
pub struct DeterminismError {
    /// The seed.
    pub seed: u64,
    /// The first run's hash.
    pub first: u64,
    /// The second run's hash.
    pub second: u64,
    /// The index of the first differing recorded event, and both events.
    pub first_difference: Option<(usize, String)>,
}

/// Builds and runs the simulation for `seed` twice and compares the trace
/// hashes (and, when tracing was on, the traces, to name the first
/// difference). Returns the hash.
pub fn check_determinism<P: Process>(
    seed: u64,
    build: impl Fn(u64) -> Sim<P>,
    run: impl Fn(&mut Sim<P>),
) -> Result<u64, DeterminismError> {
    let mut a = build(seed);
    run(&mut a);
    let mut b = build(seed);
    run(&mut b);
    if a.trace_hash() == b.trace_hash() {
        return Ok(a.trace_hash());
    }
    let (ea, eb) = (&a.trace().events, &b.trace().events);
    let show = |e: Option<&TraceEvent>| e.map_or("(none)".to_string(), |e| format!("{e:?}"));
    let first_difference = (0..ea.len().max(eb.len()))
        .find(|&i| ea.get(i) != eb.get(i))
        .map(|i| (i, format!("{} vs {}", show(ea.get(i)), show(eb.get(i)))));
    Err(DeterminismError {
        seed,
        first: a.trace_hash(),
        second: b.trace_hash(),
        first_difference,
    })
}
