//! The lab CLI's only file IO: writing a rendered diagram.
//!
//! This file sits outside `src/` on purpose: the determinism scanner in
//! `crates/style` forbids `std::fs` in the lab's simulated code, and writing
//! an output file is the driver's job, not the simulation's. Keep it the only
//! IO here; see the lab's report to the lead engineer.

/// Writes `contents` to `path`.
pub fn write_file(path: &std::path::Path, contents: &str) -> std::io::Result<()> {
    std::fs::write(path, contents)
}
