//! Runs with thousands of nodes finish in seconds (issue 18): each big run
//! passes its checks, and the wall-clock time is printed beside the
//! simulated figures (`cargo test -p synod-lab --test scale -- --nocapture`).

use std::time::Instant;

use synod_lab::{find, LabOptions};

fn timed(name: &str, nodes: usize) -> synod_lab::LabReport {
    let a = find(name).unwrap();
    let start = Instant::now();
    let run = a.execute(&LabOptions::new(nodes, 1)).unwrap();
    let secs = start.elapsed().as_secs_f64();
    let costs: Vec<String> = run
        .report
        .costs
        .iter()
        .map(|c| match c.approx {
            Some(x) => format!("{} {:.2} (≈ {x:.2})", c.name, c.measured),
            None => format!("{} {:.2}", c.name, c.measured),
        })
        .collect();
    println!(
        "{name} --nodes {nodes}: {secs:.2} s wall; {}",
        costs.join("; ")
    );
    for c in &run.report.checks {
        println!(
            "  {} {}: {}",
            if c.held { "ok" } else { "FAILED" },
            c.name,
            c.detail
        );
    }
    assert!(run.report.passed(), "{name} at {nodes}: {:?}", run.report);
    assert!(secs < 60.0, "{name} at {nodes} took {secs:.1} s");
    run.report
}

#[test]
fn chord_at_one_and_two_thousand_nodes() {
    for n in [1_000, 2_000] {
        let r = timed("chord", n);
        let mean = r.costs[0].measured;
        let half_log = (n as f64).log2() / 2.0;
        assert!(
            (mean - half_log).abs() < 1.5,
            "mean hops {mean} vs ½ log2 N {half_log}"
        );
    }
}

#[test]
fn dynamo_at_one_two_and_five_thousand_nodes() {
    for n in [1_000, 2_000, 5_000] {
        timed("dynamo", n);
    }
}

#[test]
fn consistent_hashing_at_one_five_and_ten_thousand_nodes() {
    for n in [1_000, 5_000, 10_000] {
        let r = timed("consistent-hashing", n);
        // A join moves about the new server's share, K/(N+1), of the keys.
        let moved = &r.costs[0];
        let share = moved.approx.expect("the K/(N+1) figure");
        assert!(
            moved.measured <= 4.0 * share + 4.0,
            "{n} nodes: {} keys moved against ≈ {share}",
            moved.measured
        );
    }
}
