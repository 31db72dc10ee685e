//! Rough figures for the report (ignored by default; run with
//! `cargo test -p synod-raft --test bench -- --ignored --nocapture`).
//! The harness clones every message and entry, so this bounds the core's cost
//! from above; it is not a network benchmark.

mod common;

use std::time::Instant;

use common::Net;
use synod_raft::*;

#[test]
#[ignore = "measurement, not a check"]
fn throughput_three_nodes() {
    for batch in [1usize, 16, 256] {
        let mut net = Net::new();
        for id in 1..=3 {
            net.add_node(
                Config {
                    id,
                    seed: id,
                    ..Config::default()
                },
                vec![1, 2, 3],
                vec![],
            );
        }
        net.nodes.get_mut(&1).unwrap().raft.campaign();
        net.stabilize(false);
        let total = 100_000usize;
        let mut msgs = 0usize;
        let start = Instant::now();
        let mut done = 0;
        while done < total {
            for _ in 0..batch {
                net.nodes
                    .get_mut(&1)
                    .unwrap()
                    .raft
                    .propose(vec![7u8; 100])
                    .unwrap();
            }
            done += batch;
            loop {
                let mut any = false;
                for id in 1..=3 {
                    any |= net.process_ready(id, false);
                }
                let n = net.deliver_msgs(&[], &[], false);
                msgs += n;
                if !any && n == 0 {
                    break;
                }
            }
        }
        let secs = start.elapsed().as_secs_f64();
        let commit = net.nodes[&3].raft.commit();
        assert!(commit as usize >= total, "all committed everywhere");
        println!(
            "batch {batch:>3}: {:>9.0} entries/s committed on 3 replicas, {:.2} messages/entry",
            total as f64 / secs,
            msgs as f64 / total as f64
        );
    }
}
