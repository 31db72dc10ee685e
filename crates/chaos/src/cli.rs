//! `synod chaos`: the command line.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::cluster::Target;
use crate::{run, summary, ChaosConfig, Fault, WorkloadKind};

/// `synod chaos` flags.
#[derive(Args, Debug)]
pub struct ChaosArgs {
    /// Members of the cluster.
    #[arg(long, default_value_t = 3)]
    pub nodes: usize,
    /// Seed of the fault schedule and of the clients' choices (default: the clock; printed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Length of the faulty part of the run, e.g. 60s or 30m.
    #[arg(long, visible_alias = "duration", default_value = "60s", value_parser = synod_client::cli::parse_duration)]
    pub time: Duration,
    /// Run each fault of --nemesis once, in order (ignores --time).
    #[arg(long)]
    pub each_once: bool,
    /// Faults to draw from, comma-separated: the groups partition
    /// (random halves, isolated leader, one-way, bridge, ring), netem (packet
    /// loss: this kernel has no netem for delay, duplication or reordering),
    /// pause, kill (one member, every member), clock (strobe), disk (damage),
    /// membership (replace a member), split (sharded clusters: not yet), all;
    /// or single faults by name: partition, isolate-leader, one-way, bridge,
    /// kill, pause, kill-all, ring, disk-damage, replace, loss, clock-strobe.
    /// Default: all (against etcd every fault but clock-strobe, which cannot
    /// move a Go clock).
    #[arg(long, visible_alias = "faults", value_delimiter = ',', value_parser = parse_nemesis)]
    pub nemesis: Vec<Vec<Fault>>,
    /// Workloads, comma-separated: register, set, watch (watchers of the
    /// register's keys), lock (holders writing under fencing tokens), all;
    /// bank waits for cross-range transactions.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "all")]
    pub workload: Vec<WorkloadKind>,
    /// How long each fault lasts.
    #[arg(long, default_value = "5s", value_parser = synod_client::cli::parse_duration)]
    pub fault_for: Duration,
    /// Quiet time before each fault.
    #[arg(long, default_value = "2s", value_parser = synod_client::cli::parse_duration)]
    pub quiet: Duration,
    /// After each heal, every member must serve a linearizable read within this.
    #[arg(long, default_value = "10s", value_parser = synod_client::cli::parse_duration)]
    pub recover_within: Duration,
    /// What the members run: synod, or a real etcd for comparison.
    #[arg(long, value_enum, default_value_t = Target::Synod)]
    pub target: Target,
    /// The executable the members run (default: this synod, or `etcd` from PATH).
    #[arg(long)]
    pub binary: Option<PathBuf>,
    /// Data dirs, member logs, history.jsonl, report.json and timeline.svg go here (default: a new directory under the temp dir).
    #[arg(long, visible_alias = "dir")]
    pub out: Option<PathBuf>,
    /// Tests only: a deliberate bug to see the checks catch it: in every synod member (stale-reads, ack-before-sync), or in the lock workload's clients (unfenced-lock: writes without the fencing guard).
    #[arg(long)]
    pub planted_bug: Option<String>,
    /// Names the network namespaces and picks the subnet 10.77.TAG.0/24 (1-250).
    #[arg(long, default_value_t = 77, value_parser = clap::value_parser!(u32).range(1..=250))]
    pub tag: u32,
    /// Output: a summary in lines (simple), or one JSON object (json).
    #[arg(short = 'w', long = "write-out", default_value = "simple", value_parser = ["simple", "json"])]
    pub write_out: String,
}

fn parse_nemesis(s: &str) -> Result<Vec<Fault>, String> {
    Fault::nemesis(s)
}

/// Runs `synod chaos`; the exit code (0 passed, 1 a check failed, 2 the run
/// could not be carried out).
pub fn main(args: ChaosArgs) -> u8 {
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
    });
    let binary = match (args.binary, args.target) {
        (Some(b), _) => b,
        (None, Target::Etcd) => PathBuf::from("etcd"),
        (None, Target::Synod) => match std::env::current_exe() {
            Ok(p) => p,
            Err(e) => {
                eprintln!("synod chaos: cannot find this executable: {e}");
                return 2;
            }
        },
    };
    let dir = args
        .out
        .unwrap_or_else(|| std::env::temp_dir().join(format!("synod-chaos-{seed}")));
    if !(1..=9).contains(&args.nodes) {
        eprintln!("synod chaos: --nodes must be 1 to 9");
        return 2;
    }
    let workloads = match WorkloadKind::expand(&args.workload) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("synod chaos: {e}");
            return 2;
        }
    };
    let mut groups = args.nemesis;
    if groups.is_empty() {
        groups.push(Fault::ALL.to_vec());
    }
    let mut faults: Vec<Fault> = Vec::new();
    for g in groups {
        // `all` against etcd means every fault but the clock's, which cannot
        // move a Go clock; naming the clock is refused by the run.
        let all = g == Fault::ALL;
        for f in g {
            if all && args.target == Target::Etcd && f == Fault::ClockStrobe {
                continue;
            }
            if !faults.contains(&f) {
                faults.push(f);
            }
        }
    }
    eprintln!("synod chaos: seed {seed}, files in {}", dir.display());
    let cfg = ChaosConfig {
        nodes: args.nodes,
        seed,
        duration: args.time,
        each_once: args.each_once,
        faults,
        workloads,
        fault_for: args.fault_for,
        quiet: args.quiet,
        recover_within: args.recover_within,
        target: args.target,
        binary,
        dir,
        tag: args.tag,
        progress: true,
        planted_bug: args.planted_bug,
    };
    match run(&cfg) {
        Ok(r) => {
            if args.write_out == "json" {
                let path = cfg.dir.join("report.json");
                println!("{}", r.summary_json(&path));
            } else {
                println!("{}", summary(&r));
            }
            u8::from(!r.passed)
        }
        Err(e) => {
            eprintln!("synod chaos: {e}");
            2
        }
    }
}
