//! `synod sim`: run seeds of the whole database in the simulator and check them.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use synod_simnet::{Fault, FaultSet, TraceKind, ALL, EXTERNAL};

use crate::run::{parse_bug, run, RunConfig, RunReport};

/// Arguments of `synod sim`.
#[derive(clap::Args, Debug)]
pub struct SimArgs {
    /// One seed to run.
    #[arg(long, conflicts_with = "seeds")]
    pub seed: Option<u64>,
    /// A range of seeds, `A..B` (B excluded).
    #[arg(long)]
    pub seeds: Option<String>,
    /// Servers in the cluster.
    #[arg(long, default_value_t = 3)]
    pub nodes: usize,
    /// Workload clients.
    #[arg(long, default_value_t = 4)]
    pub clients: usize,
    /// Client operations per seed.
    #[arg(long, default_value_t = 200)]
    pub ops: u64,
    /// Faults allowed: `all`, `none`, or a list of loss,duplicate,reorder,partition,oneway,clog,crash,skew.
    #[arg(long, default_value = "all")]
    pub faults: String,
    /// Run exactly the listed faults instead of a seed-chosen subset (swarm testing).
    #[arg(long)]
    pub no_swarm: bool,
    /// Serve linearizable reads from the leader lease.
    #[arg(long)]
    pub lease_reads: bool,
    /// The last server starts outside the group and joins it during the
    /// fault phase (added as a learner, promoted), and server 1 is removed.
    #[arg(long)]
    pub joiner: bool,
    /// Raft groups per server: the workload's keys split into this many key
    /// ranges, every server hosting every group (a static split); requests
    /// over several ranges must be refused.
    #[arg(long, default_value_t = 1)]
    pub groups: usize,
    /// Ranges split: a range's leader splits it at its middle key once it
    /// holds more than this many keys (use with `--keys`).
    #[arg(long)]
    pub split_keys: Option<u64>,
    /// Keys in the workload (`k0`, `k1`, ...).
    #[arg(long, default_value_t = 4)]
    pub keys: u32,
    /// Mean time between fault actions, in virtual milliseconds (default: the
    /// seed picks 20, 50 or 235).
    #[arg(long)]
    pub fault_interval_ms: Option<u64>,
    /// Leaders send appends before their own fdatasync: true or false
    /// (default: the seed picks).
    #[arg(long)]
    pub parallel_leader_append: Option<bool>,
    /// Sync every Ready that writes anything, a commit index alone included
    /// (the schedule before etcd's MustSync rule).
    #[arg(long)]
    pub sync_every_ready: bool,
    /// Switch on a deliberate bug, to see the checkers catch it:
    /// vote-without-log-check (Raft grants votes without the log check),
    /// commit-old-term (a leader commits an old term's entry by counting
    /// replicas: Raft's figure 8), reply-before-apply (a follower answers a
    /// forwarded write before its own state machine applied it),
    /// forward-without-session (a follower forwards writes under its own
    /// session, so a retry after a failover applies twice), stale-reads (a
    /// follower answers linearizable reads from its own state).
    #[arg(long)]
    pub planted_bug: Option<String>,
    /// Where a failing seed's history and trace go.
    #[arg(long, default_value = "sim-failures")]
    pub out: PathBuf,
    /// Run each seed twice and fail at the first divergence.
    #[arg(long)]
    pub check_determinism: bool,
    /// Stop at the first failing seed.
    #[arg(long)]
    pub fail_fast: bool,
}

/// Parses `A..B`.
pub fn parse_range(s: &str) -> Result<std::ops::Range<u64>, String> {
    let (a, b) = s
        .split_once("..")
        .ok_or_else(|| format!("seed range `{s}` is not A..B"))?;
    let a: u64 = a.trim().parse().map_err(|_| format!("bad seed `{a}`"))?;
    let b: u64 = b.trim().parse().map_err(|_| format!("bad seed `{b}`"))?;
    if a >= b {
        return Err(format!("empty seed range `{s}`"));
    }
    Ok(a..b)
}

/// Parses a fault list (`all`, `none`, or names).
pub fn parse_faults(s: &str) -> Result<FaultSet, String> {
    match s {
        "all" => Ok(FaultSet::all()),
        "none" | "" => Ok(FaultSet::none()),
        _ => Fault::parse_list(s).map_err(|e| e.to_string()),
    }
}

/// Runs `synod sim`; returns the process exit code (0 all passed, 1 a seed failed, 2 bad arguments).
pub fn run_cli(args: SimArgs) -> u8 {
    let seeds = match (&args.seed, &args.seeds) {
        (Some(s), _) => *s..*s + 1,
        (None, Some(r)) => match parse_range(r) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("synod sim: {e}");
                return 2;
            }
        },
        (None, None) => 0..1,
    };
    let faults = match parse_faults(&args.faults) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("synod sim: {e}");
            return 2;
        }
    };
    let bug = match args.planted_bug.as_deref().map(|b| (b, parse_bug(b))) {
        None => None,
        Some((_, Some(b))) => Some(b),
        Some((b, None)) => {
            eprintln!(
                "synod sim: unknown planted bug `{b}` ({})",
                crate::run::BUGS.map(|(n, _, _)| n).join(", ")
            );
            return 2;
        }
    };
    if args.nodes == 0 || args.nodes > 64 {
        eprintln!("synod sim: --nodes must be 1..=64");
        return 2;
    }
    let keys = args.keys;
    if keys == 0 || keys > 100_000 {
        eprintln!("synod sim: --keys must be 1..=100000");
        return 2;
    }
    if args.split_keys == Some(0) {
        eprintln!("synod sim: --split-keys must be at least 1");
        return 2;
    }
    if args.joiner && args.split_keys.is_some() {
        eprintln!("synod sim: --joiner changes the membership of one group; it does not run with --split-keys");
        return 2;
    }
    if args.groups == 0 || args.groups as u32 > keys {
        eprintln!("synod sim: --groups must be 1..={keys} (one key at least per group)");
        return 2;
    }
    if args.joiner && args.groups > 1 {
        eprintln!(
            "synod sim: --joiner changes the membership of one group; use it with --groups 1"
        );
        return 2;
    }
    let total = seeds.end - seeds.start;
    let started = Instant::now();
    let (mut passed, mut failed, mut events, mut delivered, mut ops) =
        (0u64, 0u64, 0u64, 0u64, 0u64);
    let mut last_progress = Instant::now();
    for seed in seeds.clone() {
        let mut cfg = RunConfig::new(seed);
        cfg.nodes = args.nodes;
        cfg.clients = args.clients;
        cfg.ops = args.ops;
        cfg.faults = faults.clone();
        cfg.swarm = !args.no_swarm;
        cfg.bug = bug;
        cfg.lease_reads = args.lease_reads;
        cfg.joiner = args.joiner;
        cfg.groups = args.groups;
        cfg.keys = args.keys;
        cfg.split_keys = args.split_keys;
        cfg.fault_interval = args.fault_interval_ms.map(|ms| ms * synod_simnet::MILLIS);
        cfg.parallel_leader_append = args.parallel_leader_append;
        cfg.sync_every_ready = args.sync_every_ready;
        // A panic is a broken invariant inside a node or the harness: report
        // the seed like any other failure and go on with the next one.
        let report = match std::panic::catch_unwind(|| run(cfg.clone())) {
            Ok(r) => r,
            Err(payload) => {
                let msg = payload
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "non-string panic".to_string());
                failed += 1;
                eprintln!("FAIL seed {seed}:\n  - panic: {msg}");
                eprintln!("  replay: {}", cfg.replay_command());
                if args.fail_fast {
                    break;
                }
                continue;
            }
        };
        events += report.events;
        delivered += report.delivered;
        ops += report.history.len() as u64;
        let mut problems = report.violations.clone();
        if args.check_determinism {
            let again = run(cfg.clone());
            if again.trace_hash != report.trace_hash {
                problems.push(format!(
                    "determinism: two runs of seed {seed} diverged (trace hash {:x} vs {:x})",
                    report.trace_hash, again.trace_hash
                ));
            }
        }
        if total == 1 {
            print_summary(&report);
        }
        if problems.is_empty() {
            passed += 1;
        } else {
            failed += 1;
            report_failure(&report, &problems, &args.out);
            if args.fail_fast {
                break;
            }
        }
        if total > 1 && (last_progress.elapsed().as_secs_f64() >= 1.0 || seed + 1 == seeds.end) {
            last_progress = Instant::now();
            eprintln!(
                "seeds {}/{}: {passed} passed, {failed} failed ({:.1}s)",
                seed + 1 - seeds.start,
                total,
                started.elapsed().as_secs_f64()
            );
        }
    }
    let wall = started.elapsed().as_secs_f64();
    println!(
        "{passed} passed, {failed} failed: {} seeds of {} nodes in {wall:.1}s; {events} events, {delivered} messages delivered ({:.0} messages/s of wall time), {ops} client operations",
        passed + failed,
        args.nodes,
        delivered as f64 / wall.max(1e-9)
    );
    if failed > 0 {
        1
    } else {
        0
    }
}

fn print_summary(r: &RunReport) {
    let faults: Vec<&str> = r.active.iter().map(|f| f.name()).collect();
    println!(
        "seed {}: {} nodes, faults [{}], {} ops ({} with known outcome), {} committed entries, {} leader terms, {} crashes, {} groups, {:.1}s virtual, {} events",
        r.config.seed,
        r.config.nodes,
        faults.join(","),
        r.history.len(),
        r.completed_ops,
        r.committed,
        r.leader_terms,
        r.crashes,
        r.groups,
        r.sim_time as f64 / 1e6,
        r.events
    );
}

fn report_failure(report: &RunReport, problems: &[String], out: &Path) {
    let seed = report.config.seed;
    eprintln!("FAIL seed {seed}:");
    for p in problems {
        eprintln!("  - {p}");
    }
    // Replay with tracing on: the run is deterministic, so it is the same run.
    let mut cfg = report.config.clone();
    cfg.trace = true;
    let traced = run(cfg);
    let dir = out.join(format!("seed-{seed}"));
    match write_artifacts(&dir, &traced, problems) {
        Ok(()) => eprintln!(
            "  history: {}  trace: {}",
            dir.join("history.jsonl").display(),
            dir.join("trace.txt").display()
        ),
        Err(e) => eprintln!("  could not write artifacts to {}: {e}", dir.display()),
    }
    eprintln!("  replay: {}", report.config.replay_command());
}

fn write_artifacts(dir: &Path, r: &RunReport, problems: &[String]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut h = std::io::BufWriter::new(std::fs::File::create(dir.join("history.jsonl"))?);
    synod_check::write_jsonl(&mut h, &r.history)?;
    h.flush()?;
    let mut t = std::io::BufWriter::new(std::fs::File::create(dir.join("trace.txt"))?);
    writeln!(t, "# {}", r.config.replay_command())?;
    for p in problems {
        writeln!(t, "# violation: {p}")?;
    }
    let name = |p: usize| -> String {
        if p == ALL {
            "net".into()
        } else if p == EXTERNAL {
            "ext".into()
        } else if p < r.config.nodes {
            format!("n{}", p + 1)
        } else {
            format!("c{}", p - r.config.nodes)
        }
    };
    if let Some(trace) = &r.trace {
        for ev in &trace.events {
            let what = match &ev.kind {
                TraceKind::Send { to, label, .. } => format!("send -> {}: {label}", name(*to)),
                TraceKind::Deliver { from, label, .. } => {
                    format!("recv <- {}: {label}", name(*from))
                }
                TraceKind::Drop { msg_id, reason } => {
                    format!("drop msg {msg_id} ({})", reason.name())
                }
                TraceKind::Timer { tag } => format!("timer {tag}"),
                TraceKind::Mark { label } => format!("mark {label}"),
                TraceKind::Crash => "CRASH".into(),
                TraceKind::Restart => "RESTART".into(),
                TraceKind::Fault { desc } => format!("FAULT {desc}"),
            };
            writeln!(t, "{:>12}µs {:>4} {what}", ev.time, name(ev.proc))?;
        }
    }
    t.flush()
}
