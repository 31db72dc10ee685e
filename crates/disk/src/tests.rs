//! The disk on the simulated VFS with the memory stores: the same paths the
//! server takes over real files and redb.

use super::*;
use rand::SeedableRng;
use rand_pcg::Pcg64Mcg;
use synod_kv::{Command, PutRequest, RangeRequest};
use synod_node::{Node, NodeConfig, Proposal};
use synod_raft::{Snapshot, SnapshotMeta};
use synod_storage::SimVfs;

fn put(i: u64) -> Proposal {
    Proposal {
        client: 0,
        seq: 0,
        cmd: Command::Put(PutRequest::new(format!("k{i:03}"), format!("v{i}"))),
    }
}

fn entry(term: u64, index: u64) -> Entry {
    Entry {
        term,
        index,
        kind: EntryKind::Normal,
        data: put(index).encode(),
    }
}

/// Entries 1..=n of `shard` in `term`, with a hard state (vote 1) at `commit`.
fn log_of(shard: ShardId, term: u64, n: u64, commit: u64) -> Persist {
    Persist {
        shard,
        hard_state: Some(HardState {
            term,
            vote: 1,
            commit,
        }),
        entries: (1..=n).map(|i| entry(term, i)).collect(),
        snapshot: None,
    }
}

fn conf() -> ConfState {
    ConfState {
        voters: [1u64].into_iter().collect(),
        ..ConfState::default()
    }
}

fn dir() -> PathBuf {
    PathBuf::from("/node")
}

fn one() -> Vec<(ShardId, KeyRange)> {
    vec![(1, KeyRange::all())]
}

fn open(vfs: &SimVfs, stores: &mut MemStores, groups: &[(ShardId, KeyRange)]) -> Opened<SimVfs> {
    Disk::open(
        vfs.clone(),
        &dir(),
        groups,
        WalConfig::for_simulation(),
        stores,
    )
    .unwrap()
}

fn durable(stores: &MemStores) -> impl Fn(ShardId) -> u64 + '_ {
    |s| stores.durable_applied(s).unwrap_or(0)
}

fn drain(node: &mut Node) {
    while node.has_ready() {
        let rd = node.ready();
        node.advance(rd);
    }
}

#[test]
fn the_wal_is_compacted_only_up_to_the_store_durable_index_and_a_boot_replays_after_it() {
    let vfs = SimVfs::new();
    let mut stores = MemStores::new(100);
    let mut o = open(&vfs, &mut stores, &one());
    assert!(o.groups[0].init.is_none());
    let (mut sm, applied) = o.groups.remove(0).state;
    let mut disk = o.disk;
    assert_eq!(applied, 0);
    let persist = log_of(1, 1, 12, 12);
    disk.persist(&[persist], &durable(&stores)).unwrap();
    for i in 1..=10 {
        sm.apply(i, &put(i));
    }
    sm.commit(10, true, &[]).unwrap();
    assert_eq!(sm.durable_applied(), Some(10));
    let local = |index: u64| Persist {
        shard: 1,
        snapshot: Some(Snapshot {
            meta: SnapshotMeta {
                index,
                term: 1,
                conf_state: conf(),
            },
            data: Vec::new(),
        }),
        ..Persist::default()
    };
    // A local snapshot past the store's durable index leaves the WAL alone.
    disk.persist(&[local(11)], &durable(&stores)).unwrap();
    assert_eq!(disk.log().first_index(1), 1);
    // Up to it, the WAL is compacted (and no image is written).
    disk.persist(&[local(8)], &durable(&stores)).unwrap();
    assert_eq!(disk.log().first_index(1), 9);
    assert!(vfs.list(&dir().join("snap")).unwrap().is_empty());
    drop((disk, sm));
    vfs.crash(&mut Pcg64Mcg::seed_from_u64(1));

    // The boot starts from the store and replays only what follows.
    let mut o = open(&vfs, &mut stores, &one());
    let g = o.groups.remove(0);
    let (sm, applied) = g.state;
    assert_eq!(applied, 10);
    assert_eq!(sm.kv().revision(), 11);
    let init = g.init.unwrap();
    let Init::Restore {
        snapshot, entries, ..
    } = &init.raft
    else {
        panic!("a restored log")
    };
    assert_eq!(snapshot.as_ref().map(|m| m.index), Some(8));
    assert_eq!(entries.first().map(|e| e.index), Some(9));
    assert!(init.snapshot_data.is_none(), "no image is loaded");
    let mut node =
        Node::with_state_machines(NodeConfig::default(), vec![(init, Some((sm, applied)))])
            .unwrap();
    drain(&mut node);
    assert_eq!(node.applied(1), Some(12));
    let kv = node.state_machine(1).unwrap().kv();
    assert_eq!(kv.revision(), 13, "entries 11 and 12 applied once each");
    let r = kv.range(&RangeRequest::key("k012")).unwrap();
    assert_eq!(r.kvs[0].version, 1);
}

#[test]
fn what_the_store_applied_but_did_not_make_durable_is_replayed_from_the_wal() {
    let vfs = SimVfs::new();
    let mut stores = MemStores::new(100);
    let mut o = open(&vfs, &mut stores, &one());
    let (mut sm, _) = o.groups.remove(0).state;
    let mut disk = o.disk;
    let persist = log_of(1, 1, 9, 9);
    disk.persist(&[persist], &durable(&stores)).unwrap();
    for i in 1..=9 {
        sm.apply(i, &put(i));
        // Commits that are not durable are lost by the crash.
        sm.commit(i, i == 4, &[]).unwrap();
    }
    assert_eq!(sm.kv().revision(), 10);
    drop((disk, sm));
    vfs.crash(&mut Pcg64Mcg::seed_from_u64(2));
    let mut o = open(&vfs, &mut stores, &one());
    let g = o.groups.remove(0);
    assert_eq!(g.state.1, 4, "the store is back at its durable commit");
    assert_eq!(g.state.0.kv().revision(), 5);
    let mut node = Node::with_state_machines(
        NodeConfig::default(),
        vec![(g.init.unwrap(), Some(g.state))],
    )
    .unwrap();
    drain(&mut node);
    assert_eq!(node.applied(1), Some(9));
    assert_eq!(node.state_machine(1).unwrap().kv().revision(), 10);
}

#[test]
fn a_store_applied_past_the_wal_commit_index_boots_with_that_commit_index() {
    // The commit index is written without a sync of its own: a crash may
    // keep an older one in the WAL than the store has applied.
    let vfs = SimVfs::new();
    let mut stores = MemStores::new(100);
    let mut o = open(&vfs, &mut stores, &one());
    let (mut sm, _) = o.groups.remove(0).state;
    let mut disk = o.disk;
    let persist = log_of(1, 1, 8, 4);
    disk.persist(&[persist], &durable(&stores)).unwrap();
    for i in 1..=6 {
        sm.apply(i, &put(i));
    }
    sm.commit(6, true, &[]).unwrap();
    drop((disk, sm));

    let mut o = open(&vfs, &mut stores, &one());
    let g = o.groups.remove(0);
    assert_eq!(g.state.1, 6);
    let init = g.init.unwrap();
    let Init::Restore { hard_state, .. } = &init.raft else {
        panic!("a restored log")
    };
    assert_eq!(hard_state.commit, 6, "at least what the store applied");
    let mut node =
        Node::with_state_machines(NodeConfig::default(), vec![(init, Some(g.state))]).unwrap();
    drain(&mut node);
    assert_eq!(node.applied(1), Some(6));
    assert_eq!(
        node.state_machine(1).unwrap().kv().revision(),
        7,
        "nothing applied twice"
    );
}

#[test]
fn a_leader_snapshot_the_store_did_not_make_durable_is_installed_from_its_image_on_boot() {
    let vfs = SimVfs::new();
    let mut stores = MemStores::new(100);
    let o = open(&vfs, &mut stores, &one());
    let mut disk = o.disk;
    let mut leader = StateMachine::new(100);
    for i in 1..=30 {
        leader.apply(i, &put(i));
    }
    let snap = Snapshot {
        meta: SnapshotMeta {
            index: 30,
            term: 2,
            conf_state: conf(),
        },
        data: leader.snapshot(),
    };
    let p = Persist {
        shard: 1,
        hard_state: Some(HardState {
            term: 2,
            vote: 0,
            commit: 30,
        }),
        entries: Vec::new(),
        snapshot: Some(snap),
    };
    // The store never committed it (a crash came first).
    disk.persist(&[p], &durable(&stores)).unwrap();
    drop((disk, o.groups));
    vfs.crash(&mut Pcg64Mcg::seed_from_u64(3));
    let mut o = open(&vfs, &mut stores, &one());
    let (sm, applied) = o.groups.remove(0).state;
    assert_eq!(applied, 30);
    assert_eq!(sm.kv().hash(), leader.kv().hash());
    assert_eq!(sm.durable_applied(), Some(30));
    assert!(o.disk.snapshot_bytes() > 0);
}

#[test]
fn groups_share_the_wal_and_boot_apart_and_an_unnamed_group_is_opened_too() {
    let vfs = SimVfs::new();
    let mut stores = MemStores::new(100);
    let groups = vec![
        (1, KeyRange::new(Vec::new(), b"m".to_vec())),
        (2, KeyRange::new(b"m".to_vec(), Vec::new())),
    ];
    let mut o = open(&vfs, &mut stores, &groups);
    assert!(o.groups.iter().all(|g| g.init.is_none()));
    let (mut sm2, _) = o.groups.remove(1).state;
    let mut disk = o.disk;
    let p = |shard, n| log_of(shard, shard, n, n);
    disk.persist(&[p(1, 3), p(2, 5)], &durable(&stores))
        .unwrap();
    for i in 1..=5 {
        sm2.apply(i, &put(i));
    }
    sm2.commit(5, true, &[]).unwrap();
    drop((disk, sm2));
    let mut o = open(&vfs, &mut stores, &groups);
    let two = o.groups.remove(1);
    let one = o.groups.remove(0);
    assert_eq!(one.state.1, 0);
    assert_eq!(two.state.1, 5);
    let Some(GroupInit {
        raft: Init::Restore {
            entries,
            hard_state,
            ..
        },
        range,
        ..
    }) = &two.init
    else {
        panic!("group 2 restored")
    };
    assert_eq!((entries.len(), hard_state.term), (5, 2));
    assert_eq!(range.as_ref(), Some(&groups[1].1));
    drop(o.disk);
    // A group the configuration does not name (a split made it) is opened
    // after the named ones, with no range of the configuration's.
    let o = open(&vfs, &mut stores, &one_group());
    assert_eq!(o.groups.len(), 2);
    assert_eq!(o.groups[1].shard, 2);
    assert_eq!(o.groups[1].state.1, 5);
    let init = o.groups[1].init.as_ref().expect("group 2 is in the log");
    assert_eq!(init.range, None);
}

fn one_group() -> Vec<(ShardId, KeyRange)> {
    one()
}
