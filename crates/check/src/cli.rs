//! `synod check HISTORY.jsonl`.
use std::path::PathBuf;

/// Arguments of `synod check`.
#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    /// The history: one JSON object per line.
    pub history: PathBuf,
}

/// Runs `synod check`; returns the process exit code.
pub fn run(_args: CheckArgs) -> u8 {
    eprintln!("synod check: not implemented yet");
    2
}
