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
    Server(Box<synod_server::cli::ServerArgs>),
    /// Run a local cluster in one process on etcd's local-cluster ports.
    Demo(synod_server::cli::DemoArgs),
    /// Snapshots: save one from a live member, restore a new cluster from one, or inspect one.
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
    /// Real clusters under faults from outside the processes (namespaces, kills, pauses), checked.
    Chaos(synod_chaos::cli::ChaosArgs),
    /// On-disk sizes and store statistics of a member's data dir (read only; safe on a live member).
    Inspect(synod_server::offline::InspectArgs),
}

#[derive(Subcommand)]
enum SnapshotCommand {
    /// Stream a consistent snapshot of one member (the single --endpoints) to a file.
    Save(synod_client::cli::SnapshotSaveCmd),
    /// Create a new member's data dir from a snapshot file (run once per member of the new cluster).
    Restore(synod_server::offline::RestoreArgs),
    /// Hash, revision, key count and size of a snapshot file.
    Status(synod_server::offline::StatusArgs),
}

fn main() -> std::process::ExitCode {
    // `synod server` also reads its flags as etcd does (`-name`, ETCD_*,
    // --config-file), so etcd's deployment files start it.
    let argv = match synod_server::cli::etcd_style_argv(std::env::args_os().collect()) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("synod server: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let cli = Cli::parse_from(argv);
    let code = match cli.command {
        Command::Sim(a) => synod_sim::cli::run_cli(a),
        Command::Check(a) => synod_check::cli::run(a),
        Command::Lab(a) => synod_lab::cli::run(a),
        Command::Client(c) => synod_client::cli::run(&cli.conn, c),
        Command::Server(a) => synod_server::cli::run_server(*a),
        Command::Demo(a) => synod_server::cli::run_demo(a),
        Command::Snapshot(SnapshotCommand::Save(c)) => {
            synod_client::cli::run_snapshot_save(&cli.conn, c)
        }
        Command::Snapshot(SnapshotCommand::Restore(a)) => synod_server::offline::run_restore(a),
        Command::Snapshot(SnapshotCommand::Status(a)) => synod_server::offline::run_status(a),
        Command::Inspect(a) => synod_server::offline::run_inspect(a),
        Command::Chaos(a) => synod_chaos::cli::main(a),
    };
    std::process::ExitCode::from(code)
}
