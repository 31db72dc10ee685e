//! Repository rules that would otherwise live in a wiki, enforced as tests.
//!
//! The tests in `tests/rules.rs` scan the source of the deterministic core
//! crates for things that would make a simulated run depend on anything but
//! its seed: the OS clock, OS randomness, threads, real IO, async runtimes
//! and `HashMap`/`HashSet` (whose iteration order is randomised per process).
