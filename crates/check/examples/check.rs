//! `synod check` without building the whole `synod` binary:
//! `cargo run -p synod-check --release --example check -- HISTORY.jsonl [--time-limit SECS] [--final FILE] [-w json]`.

use clap::Parser;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: synod_check::cli::CheckArgs,
}

fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(synod_check::cli::run(Cli::parse().args))
}
