//! `synod sim` without building the server: the simulator alone builds in a
//! fraction of the time. `cargo run -p synod-sim --release --example sim -- --seeds 0..1000`
use clap::Parser;

#[derive(Parser)]
#[command(name = "sim")]
struct Args {
    #[command(flatten)]
    sim: synod_sim::cli::SimArgs,
}

fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(synod_sim::cli::run_cli(Args::parse().sim))
}
