//! Issue 13, item 7: a big apply never stalls the heartbeat. One delete
//! range over 20 000 keys on a fault-free 3-node cluster, with apply time
//! charged (20 µs a key: 0.4 s in one go, past the 100–200 ms election
//! timeout), applies with no election; with the apply unbounded, as before,
//! the same run elects a new leader, so this test can fail.

use synod_sim::bulk::{bulk_delete, BulkConfig};

#[test]
fn a_delete_of_many_keys_applies_in_chunks_without_an_election() {
    for seed in 0..3 {
        let r = bulk_delete(BulkConfig::new(seed));
        println!("seed {seed}: {r:?}");
        assert!(r.passed(), "seed {seed}: {:?}", r.violations);
        assert!(r.left.iter().all(|&n| n == 0));
        // The work was spread, not skipped: every node spent about the
        // delete's cost applying, in chunks of at most the budget.
        assert!(r.busiest >= 20_000 * 20, "busy {}µs", r.busiest);
    }
}

#[test]
fn the_same_delete_applied_in_one_go_costs_an_election() {
    for seed in 0..3 {
        let r = bulk_delete(BulkConfig {
            apply_budget: u64::MAX,
            ..BulkConfig::new(seed)
        });
        println!("seed {seed}: {r:?}");
        assert!(
            r.violations.iter().any(|v| v.contains("an election")),
            "seed {seed}: an unbounded apply went unnoticed: {r:?}"
        );
    }
}
