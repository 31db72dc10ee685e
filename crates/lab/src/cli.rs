//! `synod lab`.

/// Arguments of `synod lab`.
#[derive(clap::Args, Debug)]
pub struct LabArgs {
    /// `list`, `describe ALGORITHM`, or an algorithm's name.
    pub args: Vec<String>,
}

/// Runs `synod lab`; returns the process exit code.
pub fn run(_args: LabArgs) -> u8 {
    eprintln!("synod lab: not implemented yet");
    2
}
