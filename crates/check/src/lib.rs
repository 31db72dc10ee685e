//! Recorded client histories and the checkers that judge them.
pub mod cli;
