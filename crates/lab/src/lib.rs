//! The lab: textbook distributed algorithms in the simulator.
pub mod cli;
