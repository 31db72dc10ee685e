//! `synod sim`.

/// Arguments of `synod sim`.
#[derive(clap::Args, Debug)]
pub struct SimArgs {
    /// One seed.
    #[arg(long)]
    pub seed: Option<u64>,
}

/// Runs `synod sim`; returns the process exit code.
pub fn run(_args: SimArgs) -> u8 {
    eprintln!("synod sim: not implemented yet");
    2
}
