//! The database in the simulator.
pub mod cli;
