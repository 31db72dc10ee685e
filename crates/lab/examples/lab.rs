//! `synod lab` without building the whole `synod` binary:
//! `cargo run -p synod-lab --example lab -- lamport-clock --seed 3 --svg /tmp/l.svg`.

use clap::Parser;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    lab: synod_lab::cli::LabArgs,
}

fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(synod_lab::cli::run(Cli::parse().lab))
}
