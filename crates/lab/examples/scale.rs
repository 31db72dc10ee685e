//! Runs the gossip, membership and spanning-tree algorithms with 10 000
//! simulated processes and prints each run's wall time, checks and costs.
//!
//! `cargo run -p synod-lab --release --example scale [-- NODES [ALGORITHM]]`
//! (with ALGORITHM, only that algorithm's runs).
//!
//! Big runs record only the first few thousand trace events (see
//! `algos::gossip_common::TRACE_ALL_NODES`), so time goes to the protocol.

use std::time::Instant;

use synod_lab::{find, LabOptions};

const RUNS: &[(&str, Option<&str>)] = &[
    ("anti-entropy", Some("push")),
    ("anti-entropy", Some("pull")),
    ("anti-entropy", Some("push-pull")),
    ("rumor-mongering", None),
    ("swim", None),
    ("echo", None),
    ("flooding", None),
];

fn main() {
    let nodes: usize = match std::env::args().nth(1) {
        None => 10_000,
        Some(s) => match s.parse() {
            Ok(n) => n,
            Err(_) => {
                eprintln!("usage: scale [NODES [ALGORITHM]]  (got {s:?})");
                std::process::exit(2);
            }
        },
    };
    let only = std::env::args().nth(2);
    if let Some(o) = &only {
        if !RUNS.iter().any(|(name, _)| name == o) {
            let names: Vec<&str> = RUNS.iter().map(|(name, _)| *name).collect();
            eprintln!("scale: no run of {o:?}; runs: {}", names.join(", "));
            std::process::exit(2);
        }
    }
    let mut failed = false;
    for &(name, variant) in RUNS {
        if only.as_deref().is_some_and(|o| o != name) {
            continue;
        }
        let alg = find(name).expect("registered algorithm");
        let mut opts = LabOptions::new(nodes, 1);
        opts.variant = variant.map(str::to_string);
        let start = Instant::now();
        let run = match alg.execute(&opts) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("{name}: {e}");
                std::process::exit(2);
            }
        };
        let secs = start.elapsed().as_secs_f64();
        let r = &run.report;
        failed |= !r.passed();
        println!(
            "{name} {} · {nodes} nodes · {secs:.2} s wall · {} · {} trace events kept",
            variant.unwrap_or(""),
            if r.passed() {
                "all checks held"
            } else {
                "A CHECK FAILED"
            },
            run.trace.events.len()
        );
        for c in &r.checks {
            println!(
                "    [{}] {}: {}",
                if c.held { " ok " } else { "FAIL" },
                c.name,
                c.detail
            );
        }
        for c in &r.costs {
            let exp = c
                .expected
                .map_or(String::new(), |e| format!(" (expected {e})"));
            println!("    {}: {:.3}{exp} — {}", c.name, c.measured, c.formula);
        }
    }
    if failed {
        std::process::exit(1);
    }
}
