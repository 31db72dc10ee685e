//! The `synod` command: the database's server and client, the simulator, the
//! history checker and the lab, behind one binary.

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "synod",
    version,
    about = "A distributed key-value database and a laboratory of distributed algorithms"
)]
struct Cli {
    /// Client connection flags (global `--endpoints`).
    #[command(flatten)]
    conn: synod_client::cli::ConnArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the whole database, nodes and clients, in the deterministic simulator and check it.
    Sim(synod_sim::cli::SimArgs),
    /// Check a recorded history (JSON lines) for linearizability.
    Check(synod_check::cli::CheckArgs),
    /// Run a textbook algorithm in the simulator: checks, costs and a space-time diagram.
    Lab(synod_lab::cli::LabArgs),
    /// Client commands: put, get, del, txn, watch, lease, lock, elect, member, status, bench.
    #[command(flatten)]
    Client(synod_client::cli::ClientCommand),
    /// Run one member of a synod cluster (etcd's flag names).
    Server(synod_server::cli::ServerArgs),
    /// Run a local cluster in one process on etcd's local-cluster ports.
    Demo(synod_server::cli::DemoArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Sim(a) => synod_sim::cli::run_cli(a),
        Command::Check(a) => synod_check::cli::run(a),
        Command::Lab(a) => synod_lab::cli::run(a),
        Command::Client(c) => synod_client::cli::run(&cli.conn, c),
        Command::Server(a) => synod_server::cli::run_server(a),
        Command::Demo(a) => synod_server::cli::run_demo(a),
    };
    std::process::ExitCode::from(code)
}
