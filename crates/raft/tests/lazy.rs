//! `Config::lazy_snapshot_data`: the snapshot image is held only while a
//! transfer uses it, and asked for (`Ready::snapshot_wanted`) when missing.

mod common;

use std::collections::BTreeSet;

use common::Net;
use synod_raft::*;

fn cluster(lazy: bool) -> Net {
    let mut net = Net::new();
    for id in 1..=3 {
        let c = Config {
            id,
            seed: id,
            snapshot_chunk_bytes: 8,
            lazy_snapshot_data: lazy,
            ..Config::default()
        };
        net.add_node(c, vec![1, 2, 3], vec![]);
    }
    net.nodes.get_mut(&1).unwrap().raft.campaign();
    net.stabilize(false);
    assert_eq!(net.nodes[&1].raft.role(), Role::Leader);
    net
}

fn isolate_3(net: &mut Net) {
    net.groups = Some(vec![BTreeSet::from([1, 2]), BTreeSet::from([3])]);
}

fn propose(net: &mut Net, from: u64, to: u64) {
    for i in from..to {
        let data = format!("value-{i}").into_bytes();
        net.nodes.get_mut(&1).unwrap().raft.propose(data).unwrap();
    }
    net.stabilize(false);
}

fn heartbeat(net: &mut Net) {
    net.nodes.get_mut(&1).unwrap().raft.tick();
    net.stabilize(false);
}

fn leader(net: &Net) -> &Raft {
    &net.nodes[&1].raft
}

fn state_of(net: &Net, id: u64) -> ProgressState {
    leader(net).progress(id).expect("a member").2
}

/// Node 3 missed what the leader compacted away; the leader's image is gone.
fn lagging_follower(net: &mut Net) -> u64 {
    isolate_3(net);
    propose(net, 0, 6);
    let applied = leader(net).applied();
    net.compact(1, applied).unwrap();
    assert_eq!(
        leader(net).snapshot_image_index(),
        None,
        "no follower is being sent it: the image goes at once"
    );
    net.groups = None;
    applied
}

#[test]
fn missing_image_is_asked_for_and_the_transfer_completes_once_given() {
    let mut net = cluster(true);
    let applied = lagging_follower(&mut net);
    heartbeat(&mut net);
    assert!(net.wanted.contains(&1), "the leader asks for an image");
    assert!(net.nodes[&3].raft.commit() < applied);
    assert_ne!(state_of(&net, 3), ProgressState::Snapshot);
    // Not given: it asks again at the next heartbeat.
    net.wanted.clear();
    heartbeat(&mut net);
    assert!(net.wanted.contains(&1), "the leader asks again");
    // Given at the current snapshot's index: accepted, and the transfer starts.
    net.compact(1, applied).unwrap();
    assert_eq!(leader(&net).snapshot_image_index(), Some(applied));
    assert_eq!(state_of(&net, 3), ProgressState::Snapshot);
    net.stabilize(false);
    assert_eq!(net.nodes[&3].applied, net.nodes[&1].applied);
    assert_eq!(net.nodes[&3].raft.commit(), leader(&net).commit());
    assert_ne!(state_of(&net, 3), ProgressState::Snapshot);
    assert_eq!(
        leader(&net).snapshot_image_index(),
        None,
        "dropped after the transfer"
    );
    assert_eq!(net.nodes[&3].raft.snapshot_image_index(), None);
    assert!(net.image_conflict.is_none());
}

#[test]
fn image_is_kept_during_a_transfer_and_a_newer_one_restarts_it() {
    let mut net = cluster(true);
    let first = lagging_follower(&mut net);
    heartbeat(&mut net);
    net.compact(1, first).unwrap();
    // Two chunks go through, then node 3 is cut off mid-transfer.
    for _ in 0..2 {
        net.process_ready(1, false);
        net.deliver_msgs(&[3], &[], false);
        net.process_ready(3, false);
        net.deliver_msgs(&[1], &[], false);
    }
    assert_eq!(state_of(&net, 3), ProgressState::Snapshot);
    isolate_3(&mut net);
    net.stabilize(false);
    // A compaction without an image keeps the one being sent.
    propose(&mut net, 6, 9);
    let second = leader(&net).applied();
    net.compact_log(1, second).unwrap();
    assert_eq!(leader(&net).snapshot_image_index(), Some(first));
    // The owner hands over a newer image mid-transfer: it replaces the old.
    propose(&mut net, 9, 12);
    let third = leader(&net).applied();
    net.compact(1, third).unwrap();
    assert_eq!(leader(&net).snapshot_image_index(), Some(third));
    net.groups = None;
    for _ in 0..25 {
        heartbeat(&mut net);
    }
    assert_eq!(net.nodes[&3].applied, net.nodes[&1].applied);
    assert_eq!(net.nodes[&3].raft.first_index(), third + 1);
    assert_eq!(leader(&net).snapshot_image_index(), None);
    assert!(net.image_conflict.is_none());
}

#[test]
fn an_old_image_serves_its_transfer_then_a_fresh_one_is_asked_for() {
    let mut net = cluster(true);
    let first = lagging_follower(&mut net);
    heartbeat(&mut net);
    net.compact(1, first).unwrap();
    // The log moves on without an image while the transfer runs (node 3's
    // messages wait in the network).
    for i in 6..9 {
        let data = format!("value-{i}").into_bytes();
        net.nodes.get_mut(&1).unwrap().raft.propose(data).unwrap();
    }
    for _ in 0..10 {
        net.process_ready(1, false);
        net.process_ready(2, false);
        net.deliver_msgs(&[1, 2], &[], false);
    }
    assert_eq!(state_of(&net, 3), ProgressState::Snapshot);
    let second = leader(&net).applied();
    net.compact_log(1, second).unwrap();
    assert_eq!(leader(&net).snapshot_image_index(), Some(first));
    net.wanted.clear();
    net.stabilize(false);
    // Node 3 installed the first image, and now needs one at `second`.
    assert!(net.nodes[&3].raft.commit() >= first);
    assert!(net.nodes[&3].raft.commit() < second);
    heartbeat(&mut net);
    assert!(net.wanted.contains(&1));
    assert_eq!(leader(&net).snapshot_image_index(), None);
    net.compact(1, second).unwrap();
    net.stabilize(false);
    assert_eq!(net.nodes[&3].applied, net.nodes[&1].applied);
    assert_eq!(leader(&net).snapshot_image_index(), None);
}

#[test]
fn eager_mode_keeps_the_image_and_needs_one_to_compact() {
    let mut net = cluster(false);
    let applied = lagging_follower_eager(&mut net);
    assert_eq!(leader(&net).snapshot_image_index(), Some(applied));
    assert!(matches!(
        net.compact_log(1, applied),
        Err(CompactError::NoImage)
    ));
    heartbeat(&mut net);
    assert!(net.wanted.is_empty());
    assert_eq!(net.nodes[&3].applied, net.nodes[&1].applied);
    assert_eq!(leader(&net).snapshot_image_index(), Some(applied));
}

fn lagging_follower_eager(net: &mut Net) -> u64 {
    isolate_3(net);
    propose(net, 0, 6);
    let applied = leader(net).applied();
    net.compact(1, applied).unwrap();
    net.groups = None;
    applied
}
