//! Tests of the Raft log store: replay rules, rejected operations, compaction
//! with segment deletion, and crash recovery on the simulated disk.

use super::*;
use crate::vfs::{RealVfs, SimVfs, VfsFile};
use proptest::prelude::*;
use rand::SeedableRng;
use rand_pcg::Pcg64Mcg;
use std::collections::BTreeMap;
use std::path::PathBuf;

fn cfg() -> WalConfig {
    WalConfig {
        segment_size: 1024,
        max_record_size: 256,
        max_buffer_bytes: 64 << 10,
        zero_fill: false,
    }
}

fn dir() -> PathBuf {
    PathBuf::from("/raft")
}

fn e(index: u64, term: u64) -> LogEntry {
    LogEntry {
        index,
        term,
        kind: (index % 3) as u8,
        data: format!("e{index}t{term}").into_bytes(),
    }
}

fn run(range: std::ops::RangeInclusive<u64>, term: u64) -> Vec<LogEntry> {
    range.map(|i| e(i, term)).collect()
}

fn open(vfs: &SimVfs) -> (RaftLogStore<SimVfs>, Recovered) {
    RaftLogStore::open_with_config(vfs.clone(), &dir(), cfg()).unwrap()
}

#[test]
fn append_replace_and_hard_state_survive_reopen() {
    let vfs = SimVfs::new();
    let (mut s, rec) = open(&vfs);
    assert_eq!(rec.entries, vec![]);
    assert_eq!(rec.hard_state, HardState::default());
    s.append(&run(1..=10, 1)).unwrap();
    s.set_hard_state(HardState {
        term: 1,
        vote: 2,
        commit: 4,
    })
    .unwrap();
    s.sync().unwrap();
    s.append(&run(6..=8, 2)).unwrap();
    assert_eq!(s.last_index(), 8);
    assert_eq!(s.term(5), Some(1));
    assert_eq!(s.term(6), Some(2));
    s.sync().unwrap();
    drop(s);
    let (s, rec) = open(&vfs);
    let mut want = run(1..=5, 1);
    want.extend(run(6..=8, 2));
    assert_eq!(rec.entries, want);
    assert_eq!(rec.hard_state.vote, 2);
    assert_eq!(s.last_index(), 8);
    assert_eq!(s.term(8), Some(2));
}

#[test]
fn bad_requests_are_rejected() {
    let vfs = SimVfs::new();
    let (mut s, _) = open(&vfs);
    s.append(&run(1..=5, 1)).unwrap();
    assert!(matches!(
        s.append(&run(7..=8, 1)),
        Err(RaftLogError::Rejected(_))
    ));
    assert!(s.append(&[e(6, 1), e(8, 1)]).is_err());
    assert!(s.append(&[e(6, 0)]).is_err(), "term below predecessor");
    s.set_hard_state(HardState {
        term: 3,
        vote: 1,
        commit: 3,
    })
    .unwrap();
    assert!(
        s.append(&run(3..=4, 3)).is_err(),
        "replaces committed entry 3"
    );
    s.append(&run(4..=6, 3)).unwrap();
    let err = s
        .set_hard_state(HardState {
            term: 3,
            vote: 2,
            commit: 3,
        })
        .unwrap_err();
    assert!(err.to_string().contains("already cast"), "{err}");
    assert!(s
        .set_hard_state(HardState {
            term: 2,
            vote: 0,
            commit: 3
        })
        .is_err());
    assert!(s
        .set_hard_state(HardState {
            term: 3,
            vote: 1,
            commit: 2
        })
        .is_err());
    // A new term frees the vote.
    s.set_hard_state(HardState {
        term: 4,
        vote: 2,
        commit: 3,
    })
    .unwrap();
    assert!(
        s.compact(SnapshotMarker {
            index: 4,
            term: 3,
            conf: vec![]
        })
        .is_err(),
        "not committed"
    );
    assert!(
        s.compact(SnapshotMarker {
            index: 3,
            term: 9,
            conf: vec![]
        })
        .is_err(),
        "wrong term"
    );
}

#[test]
fn compaction_deletes_segments_and_recovery_agrees() {
    let vfs = SimVfs::new();
    let (mut s, _) = open(&vfs);
    for i in 1..=60 {
        s.append(&[e(i, 1 + i / 20)]).unwrap();
    }
    // Overwrite an uncommitted suffix so a retained segment starts with an
    // entry above one that replaces it later (the tricky replay case).
    s.set_hard_state(HardState {
        term: 5,
        vote: 1,
        commit: 40,
    })
    .unwrap();
    s.sync().unwrap();
    s.append(&run(45..=70, 5)).unwrap();
    s.set_hard_state(HardState {
        term: 5,
        vote: 1,
        commit: 66,
    })
    .unwrap();
    s.sync().unwrap();
    let before = s.wal().segments().len();
    let removed = s
        .compact(SnapshotMarker {
            index: 50,
            term: 5,
            conf: b"c".to_vec(),
        })
        .unwrap();
    assert!(removed > 0, "compaction removed nothing of {before}");
    assert!(s.wal().segments().len() <= before + 1 - removed);
    drop(s);
    let (s, rec) = open(&vfs);
    assert_eq!(rec.entries, run(51..=70, 5));
    assert_eq!(
        rec.snapshot_marker,
        Some(SnapshotMarker {
            index: 50,
            term: 5,
            conf: b"c".to_vec()
        })
    );
    assert_eq!(rec.hard_state.commit, 66);
    assert_eq!(s.first_index(), 51);
    assert_eq!(s.term(50), Some(5));
}

#[test]
fn compaction_keeps_a_hard_state_whose_segment_it_deletes() {
    // The latest hard state sits at the end of a segment and entry S+1 opens
    // the next: deleting the segments before S+1 must not lose the vote.
    let mut hit = 0;
    for n in 1..80u64 {
        let vfs = SimVfs::new();
        let (mut s, _) = open(&vfs);
        s.append(&run(1..=n, 1)).unwrap();
        let hs = HardState {
            term: 1,
            vote: 7,
            commit: n,
        };
        s.set_hard_state(hs).unwrap();
        s.sync().unwrap();
        let hs_lsn = s.wal().next_lsn() - 1;
        let mut big = e(n + 1, 1);
        big.data = vec![9; 200];
        s.append(&[big.clone()]).unwrap();
        s.sync().unwrap();
        if s.wal().segments().last().unwrap().first_lsn != hs_lsn + 1 {
            continue;
        }
        hit += 1;
        let removed = s
            .compact(SnapshotMarker {
                index: n,
                term: 1,
                conf: vec![],
            })
            .unwrap();
        assert!(removed >= 1, "n={n}");
        drop(s);
        vfs.crash(&mut Pcg64Mcg::seed_from_u64(n));
        let (_, rec) = open(&vfs);
        assert_eq!(rec.hard_state, hs, "n={n}");
        assert_eq!(rec.entries, vec![big], "n={n}");
    }
    assert!(hit > 0, "no case put the hard state at a segment's end");
}

#[test]
fn install_snapshot_drops_the_log() {
    let vfs = SimVfs::new();
    let (mut s, _) = open(&vfs);
    s.append(&run(1..=30, 1)).unwrap();
    s.sync().unwrap();
    s.set_hard_state(HardState {
        term: 7,
        vote: 3,
        commit: 100,
    })
    .unwrap();
    s.install_snapshot(SnapshotMarker {
        index: 100,
        term: 6,
        conf: vec![],
    })
    .unwrap();
    assert_eq!(s.last_index(), 100);
    s.append(&run(101..=103, 7)).unwrap();
    s.sync().unwrap();
    drop(s);
    let (_, rec) = open(&vfs);
    assert_eq!(rec.entries, run(101..=103, 7));
    assert_eq!(rec.snapshot_marker.unwrap().index, 100);
    assert_eq!(rec.hard_state.vote, 3);
}

#[test]
fn a_synced_vote_survives_every_crash() {
    for seed in 0..64 {
        let vfs = SimVfs::new();
        let (mut s, _) = open(&vfs);
        let voted = HardState {
            term: 4,
            vote: 2,
            commit: 0,
        };
        s.set_hard_state(voted).unwrap();
        s.sync().unwrap();
        // Unsynced traffic after the vote, then power loss.
        s.append(&run(1..=20, 4)).unwrap();
        s.set_hard_state(HardState {
            term: 5,
            vote: 3,
            commit: 0,
        })
        .unwrap();
        drop(s);
        vfs.crash(&mut Pcg64Mcg::seed_from_u64(seed));
        let (mut s, rec) = open(&vfs);
        let hs = rec.hard_state;
        assert!(hs == voted || hs.term == 5, "seed {seed}: {hs:?}");
        if hs.term == 4 {
            // The store itself refuses a second vote in term 4.
            let again = HardState { vote: 3, ..voted };
            assert!(s.set_hard_state(again).is_err(), "seed {seed}");
        }
    }
}

#[test]
fn real_vfs_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("raft");
    let (mut s, _) = RaftLogStore::open(RealVfs::new(), &d).unwrap();
    s.append(&run(1..=100, 1)).unwrap();
    s.set_hard_state(HardState {
        term: 1,
        vote: 1,
        commit: 100,
    })
    .unwrap();
    s.sync().unwrap();
    drop(s);
    let (_, rec) = RaftLogStore::open(RealVfs::new(), &d).unwrap();
    assert_eq!(rec.entries, run(1..=100, 1));
    assert_eq!(rec.hard_state.commit, 100);
}

/// The observable state of the log: what recovery must reproduce.
#[derive(Debug, Clone, PartialEq, Eq)]
struct View {
    hard_state: HardState,
    snapshot: Option<(u64, u64)>,
    entries: Vec<LogEntry>,
}

#[derive(Debug, Clone)]
enum Op {
    /// Append `n` entries starting `back` entries before the end.
    Append {
        back: u64,
        n: u64,
    },
    /// Move to a new term, voting (or not).
    Vote {
        vote: u64,
    },
    /// Advance commit.
    Commit,
    Sync,
    Compact,
    /// Install a leader's snapshot this far past the last index.
    Install(u64),
    Crash(u64),
    FailSync,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u64..4, 1u64..12).prop_map(|(back, n)| Op::Append { back, n }),
        2 => (0u64..4).prop_map(|vote| Op::Vote { vote }),
        2 => Just(Op::Commit),
        4 => Just(Op::Sync),
        1 => Just(Op::Compact),
        1 => (1u64..4).prop_map(Op::Install),
        2 => any::<u64>().prop_map(Op::Crash),
        1 => Just(Op::FailSync),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 192, ..ProptestConfig::default() })]

    /// After any crash the recovered log is exactly the state after some
    /// operation since the last successful sync (nothing synced is lost,
    /// nothing is invented), so a vote that was synced is never forgotten.
    #[test]
    fn crash_recovers_a_state_between_last_sync_and_now(ops in prop::collection::vec(op(), 1..50)) {
        let vfs = SimVfs::new();
        let (mut s, _) = open(&vfs);
        let mut view = View { hard_state: HardState::default(), snapshot: None, entries: vec![] };
        // States reachable by a crash: from the last synced one to now.
        let mut candidates = vec![view.clone()];
        let mut poisoned = false;
        for op in ops {
            match op {
                Op::Append { back, n } => {
                    let last = s.last_index();
                    let start = last.saturating_sub(back).max(s.hard_state().commit + 1).max(s.first_index());
                    let term = s.hard_state().term.max(1);
                    let es = run(start..=start + n - 1, term);
                    if s.append(&es).is_ok() {
                        let keep = view.entries.iter().position(|x| x.index >= start).unwrap_or(view.entries.len());
                        view.entries.truncate(keep);
                        // One WAL record per entry: a crash may keep any prefix.
                        for x in es {
                            view.entries.push(x);
                            candidates.push(view.clone());
                        }
                    }
                }
                Op::Vote { vote } => {
                    let hs = HardState { term: s.hard_state().term + 1, vote, commit: s.hard_state().commit };
                    if s.set_hard_state(hs).is_ok() {
                        view.hard_state = hs;
                        candidates.push(view.clone());
                    }
                }
                Op::Commit => {
                    let mut hs = s.hard_state();
                    hs.commit = s.last_index();
                    if s.set_hard_state(hs).is_ok() {
                        view.hard_state = hs;
                        candidates.push(view.clone());
                    }
                }
                Op::Sync => {
                    if s.sync().is_ok() {
                        candidates = vec![view.clone()];
                    } else {
                        poisoned = true;
                    }
                }
                Op::Compact | Op::Install(_) => {
                    let (marker, mut next) = match op {
                        Op::Compact => {
                            let idx = s.hard_state().commit;
                            if idx < s.first_index() || poisoned {
                                continue;
                            }
                            let term = s.term(idx).unwrap();
                            let mut next = view.clone();
                            next.entries.retain(|x| x.index > idx);
                            (SnapshotMarker { index: idx, term, conf: vec![1] }, next)
                        }
                        Op::Install(ahead) => {
                            if poisoned {
                                continue;
                            }
                            let idx = s.last_index() + ahead;
                            let term = s.hard_state().term.max(1);
                            let mut next = view.clone();
                            next.entries.clear();
                            (SnapshotMarker { index: idx, term, conf: vec![2] }, next)
                        }
                        _ => unreachable!(),
                    };
                    next.snapshot = Some((marker.index, marker.term));
                    let r = if matches!(op, Op::Compact) {
                        s.compact(marker)
                    } else {
                        s.install_snapshot(marker)
                    };
                    match r {
                        Ok(_) => {
                            view = next;
                            candidates = vec![view.clone()];
                        }
                        Err(_) => {
                            // The marker may or may not have become durable.
                            poisoned = true;
                            candidates.push(next);
                        }
                    }
                }
                Op::FailSync => vfs.fail_next_syncs(1),
                Op::Crash(seed) => {
                    drop(s);
                    vfs.fail_next_syncs(0);
                    vfs.crash(&mut Pcg64Mcg::seed_from_u64(seed));
                    let (s2, rec) = open(&vfs);
                    s = s2;
                    poisoned = false;
                    let got = View {
                        hard_state: rec.hard_state,
                        snapshot: rec.snapshot_marker.map(|m| (m.index, m.term)),
                        entries: rec.entries,
                    };
                    let ok = candidates.contains(&got);
                    prop_assert!(ok, "recovered {:?}\nnot among {:?}", got, candidates);
                    view = got;
                    candidates = vec![view.clone()];
                }
            }
        }
    }
}

fn arb_u64() -> impl Strategy<Value = u64> {
    prop_oneof![
        0u64..8,
        Just(MAX_INDEX - 1),
        Just(MAX_INDEX),
        Just(u64::MAX),
        any::<u64>(),
    ]
}

fn arb_record() -> impl Strategy<Value = (u8, Vec<u8>)> {
    (
        0u8..6,
        arb_u64(),
        arb_u64(),
        arb_u64(),
        prop::collection::vec(any::<u8>(), 0..6),
        0usize..32,
    )
        .prop_map(|(kind, a, b, c, extra, cut)| {
            let mut p = Vec::new();
            p.extend_from_slice(&a.to_le_bytes());
            p.extend_from_slice(&b.to_le_bytes());
            p.extend_from_slice(&c.to_le_bytes());
            p.extend_from_slice(&extra);
            p.truncate(cut);
            (kind, p)
        })
}

/// A segment to write: seq, first LSN, records, trailing bytes.
type ArbSegment = (u64, u64, Vec<(u8, Vec<u8>)>, Vec<u8>);

fn arb_segment() -> impl Strategy<Value = ArbSegment> {
    (
        arb_u64(),
        arb_u64(),
        prop::collection::vec(arb_record(), 0..12),
        prop::collection::vec(any::<u8>(), 0..24),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Whatever is on disk (well-framed records of any type and content,
    /// segments with any numbers, trailing garbage), opening the log returns
    /// a value or a typed error and never panics.
    #[test]
    fn open_never_panics_on_arbitrary_disk_contents(
        segs in prop::collection::vec(arb_segment(), 1..4),
        sequential in any::<bool>(),
    ) {
        let vfs = SimVfs::new();
        vfs.create_dir_all(&dir()).unwrap();
        let mut next_lsn = 0;
        for (i, (seq, lsn, records, garbage)) in segs.into_iter().enumerate() {
            let (seq, lsn) = if sequential { (i as u64, next_lsn) } else { (seq, lsn) };
            let mut buf = crate::record::SegmentHeader { seq, first_lsn: lsn }.encode().to_vec();
            next_lsn += records.len() as u64;
            for (k, p) in &records {
                crate::record::encode_record(*k, p, &mut buf);
            }
            buf.extend_from_slice(&garbage);
            let name = dir().join(crate::wal::segment_name(seq, lsn));
            if let Ok(mut f) = vfs.create(&name) {
                f.write_at(0, &buf).unwrap();
            }
        }
        let _ = RaftLogStore::open_with_config(vfs.clone(), &dir(), cfg());
    }
}

fn open_multi(vfs: &SimVfs) -> (MultiRaftLog<SimVfs>, MultiRecovered) {
    MultiRaftLog::open(vfs.clone(), &dir(), cfg()).unwrap()
}

#[test]
fn groups_share_one_wal_and_recover_apart() {
    let vfs = SimVfs::new();
    let (mut s, rec) = open_multi(&vfs);
    assert!(rec.groups.is_empty());
    s.append(7, &run(1..=5, 1)).unwrap();
    s.append(9, &run(1..=3, 2)).unwrap();
    s.set_hard_state(
        7,
        HardState {
            term: 1,
            vote: 1,
            commit: 5,
        },
    )
    .unwrap();
    s.append(9, &run(3..=4, 3)).unwrap();
    // One sync for both groups.
    let before = s.wal().durable_lsn();
    s.sync().unwrap();
    assert!(s.wal().durable_lsn() > before);
    drop(s);
    let (s, rec) = open_multi(&vfs);
    assert_eq!(s.groups().collect::<Vec<_>>(), vec![7, 9]);
    assert_eq!(rec.groups[&7].entries, run(1..=5, 1));
    assert_eq!(rec.groups[&7].hard_state.commit, 5);
    let nine: Vec<_> = rec.groups[&9]
        .entries
        .iter()
        .map(|e| (e.index, e.term))
        .collect();
    assert_eq!(nine, vec![(1, 2), (2, 2), (3, 3), (4, 3)]);
    assert_eq!(rec.groups[&9].hard_state, HardState::default());
    // A single-group view refuses a log of several groups.
    drop(s);
    assert!(RaftLogStore::open_with_config(vfs.clone(), &dir(), cfg()).is_err());
}

#[test]
fn an_idle_groups_vote_does_not_pin_old_segments_and_survives_them() {
    let vfs = SimVfs::new();
    let (mut s, _) = open_multi(&vfs);
    let vote = HardState {
        term: 4,
        vote: 2,
        commit: 0,
    };
    s.set_hard_state(2, vote).unwrap();
    s.sync().unwrap();
    // Group 1 writes many segments' worth, then compacts all of it.
    let mut i = 1;
    while s.wal().segments().len() < 6 {
        s.append(1, &run(i..=i + 9, 1)).unwrap();
        i += 10;
        s.sync().unwrap();
    }
    let last = i - 1;
    s.set_hard_state(
        1,
        HardState {
            term: 1,
            vote: 1,
            commit: last,
        },
    )
    .unwrap();
    let removed = s
        .compact(
            1,
            SnapshotMarker {
                index: last,
                term: 1,
                conf: vec![],
            },
        )
        .unwrap();
    assert!(removed >= 5, "removed {removed}");
    drop(s);
    vfs.crash(&mut Pcg64Mcg::seed_from_u64(3));
    let (_, rec) = open_multi(&vfs);
    assert_eq!(rec.groups[&2].hard_state, vote, "the vote is kept");
    assert_eq!(rec.groups[&1].snapshot_marker.as_ref().unwrap().index, last);
}

#[test]
fn an_idle_groups_entries_pin_their_segments_until_it_compacts() {
    let vfs = SimVfs::new();
    let (mut s, _) = open_multi(&vfs);
    s.append(2, &run(1..=3, 1)).unwrap();
    s.set_hard_state(
        2,
        HardState {
            term: 1,
            vote: 0,
            commit: 3,
        },
    )
    .unwrap();
    let mut i = 1;
    while s.wal().segments().len() < 5 {
        s.append(1, &run(i..=i + 9, 1)).unwrap();
        i += 10;
        s.sync().unwrap();
    }
    s.set_hard_state(
        1,
        HardState {
            term: 1,
            vote: 0,
            commit: i - 1,
        },
    )
    .unwrap();
    let marker = |index| SnapshotMarker {
        index,
        term: 1,
        conf: vec![],
    };
    assert_eq!(
        s.compact(1, marker(i - 1)).unwrap(),
        0,
        "group 2 needs them"
    );
    assert!(s.compact(2, marker(3)).unwrap() >= 4);
    drop(s);
    let (_, rec) = open_multi(&vfs);
    assert!(rec.groups[&2].entries.is_empty());
    assert_eq!(rec.groups[&2].snapshot_marker, Some(marker(3)));
    assert_eq!(rec.groups[&1].snapshot_marker, Some(marker(i - 1)));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Several groups on one WAL: after any crash every group's recovered
    /// log is the state after one and the same operation since the last
    /// successful sync (a crash keeps a prefix of the WAL across groups).
    #[test]
    fn groups_crash_together_to_one_point_between_last_sync_and_now(
        ops in prop::collection::vec((0u64..3, op()), 1..60)
    ) {
        let vfs = SimVfs::new();
        let (mut s, _) = open_multi(&vfs);
        type Views = BTreeMap<GroupId, View>;
        let empty = || View { hard_state: HardState::default(), snapshot: None, entries: vec![] };
        let mut view: Views = BTreeMap::new();
        let mut candidates: Vec<Views> = vec![view.clone()];
        let mut poisoned = false;
        for (g, op) in ops {
            let hs = s.hard_state(g);
            match op {
                Op::Append { back, n } => {
                    let last = s.last_index(g);
                    let start = last.saturating_sub(back).max(hs.commit + 1).max(s.first_index(g));
                    let es = run(start..=start + n - 1, hs.term.max(1));
                    if s.append(g, &es).is_ok() {
                        let v = view.entry(g).or_insert_with(empty);
                        let keep = v.entries.iter().position(|x| x.index >= start).unwrap_or(v.entries.len());
                        v.entries.truncate(keep);
                        for x in es {
                            view.get_mut(&g).unwrap().entries.push(x);
                            candidates.push(view.clone());
                        }
                    }
                }
                Op::Vote { vote } => {
                    let next = HardState { term: hs.term + 1, vote, commit: hs.commit };
                    if s.set_hard_state(g, next).is_ok() {
                        view.entry(g).or_insert_with(empty).hard_state = next;
                        candidates.push(view.clone());
                    }
                }
                Op::Commit => {
                    let next = HardState { commit: s.last_index(g), ..hs };
                    if next != hs && s.set_hard_state(g, next).is_ok() {
                        view.entry(g).or_insert_with(empty).hard_state = next;
                        candidates.push(view.clone());
                    }
                }
                Op::Sync => {
                    if s.sync().is_ok() {
                        candidates = vec![view.clone()];
                    } else {
                        poisoned = true;
                    }
                }
                Op::Compact | Op::Install(_) => {
                    if poisoned {
                        continue;
                    }
                    let mut next = view.clone();
                    let v = next.entry(g).or_insert_with(empty);
                    let marker = if let Op::Install(ahead) = op {
                        v.entries.clear();
                        SnapshotMarker { index: s.last_index(g) + ahead, term: hs.term.max(1), conf: vec![2] }
                    } else {
                        let idx = hs.commit;
                        if idx < s.first_index(g) {
                            continue;
                        }
                        v.entries.retain(|x| x.index > idx);
                        SnapshotMarker { index: idx, term: s.term(g, idx).unwrap(), conf: vec![1] }
                    };
                    v.snapshot = Some((marker.index, marker.term));
                    // The checkpoint writes the hard state beside the marker.
                    v.hard_state = hs;
                    let r = if matches!(op, Op::Compact) {
                        s.compact(g, marker)
                    } else {
                        s.install_snapshot(g, marker)
                    };
                    match r {
                        Ok(_) => {
                            view = next;
                            candidates = vec![view.clone()];
                        }
                        Err(_) => {
                            poisoned = true;
                            candidates.push(next);
                        }
                    }
                }
                Op::FailSync => vfs.fail_next_syncs(1),
                Op::Crash(seed) => {
                    drop(s);
                    vfs.fail_next_syncs(0);
                    vfs.crash(&mut Pcg64Mcg::seed_from_u64(seed));
                    let (s2, rec) = open_multi(&vfs);
                    s = s2;
                    poisoned = false;
                    let got: Views = rec.groups.into_iter().map(|(id, r)| (id, View {
                        hard_state: r.hard_state,
                        snapshot: r.snapshot_marker.map(|m| (m.index, m.term)),
                        entries: r.entries,
                    })).filter(|(_, v)| *v != empty()).collect();
                    let norm = |c: &Views| -> Views { c.iter().filter(|(_, v)| **v != empty()).map(|(k, v)| (*k, v.clone())).collect() };
                    let ok = candidates.iter().any(|c| norm(c) == got);
                    prop_assert!(ok, "recovered {:?}\nnot among {:?}", got, candidates);
                    view = got;
                    candidates = vec![view.clone()];
                }
            }
        }
    }
}

#[test]
fn a_batch_larger_than_the_wal_buffer_lands_in_several_syncs() {
    let vfs = SimVfs::new();
    let (mut s, _) = open(&vfs);
    let big = run(1..=4000, 1);
    let framed: usize = big
        .iter()
        .map(|x| FRAME_HEADER + encode_entry(ONE, x).len())
        .sum();
    assert!(framed > 2 * cfg().max_buffer_bytes, "{framed} bytes");
    s.append(&big).unwrap();
    assert!(
        s.wal().durable_lsn() > 0,
        "the batch did not fit: part of it is synced already"
    );
    s.set_hard_state(HardState {
        term: 1,
        vote: 1,
        commit: 4000,
    })
    .unwrap();
    s.sync().unwrap();
    drop(s);
    let (s, rec) = open(&vfs);
    assert_eq!(rec.entries, big);
    assert_eq!(rec.hard_state.commit, 4000);
    assert_eq!(s.last_index(), 4000);
}

#[test]
fn a_hard_state_finds_room_in_a_full_buffer() {
    let vfs = SimVfs::new();
    let (mut s, _) = open(&vfs);
    let mut i = 0;
    while s.wal().room() >= FRAME_HEADER + encode_entry(ONE, &e(i + 1, 1)).len() {
        i += 1;
        s.append(&[e(i, 1)]).unwrap();
    }
    assert_eq!(
        s.wal().durable_lsn(),
        0,
        "nothing synced while entries still fit"
    );
    s.set_hard_state(HardState {
        term: 1,
        vote: 1,
        commit: i,
    })
    .unwrap();
    s.sync().unwrap();
    let (_, rec) = open(&vfs);
    assert_eq!(rec.entries.len() as u64, i);
    assert_eq!(rec.hard_state.commit, i);
}

#[test]
fn an_oversized_record_in_a_batch_buffers_none_of_it() {
    let vfs = SimVfs::new();
    let (mut s, _) = open(&vfs);
    let mut batch = run(1..=3000, 1);
    batch[2500].data = vec![7; cfg().max_record_size + 1];
    let err = s.append(&batch).unwrap_err();
    assert!(err.to_string().contains("exceeds the limit"), "{err}");
    assert_eq!(s.last_index(), 0);
    assert_eq!(s.wal().pending_bytes(), 0);
    assert_eq!(s.wal().durable_lsn(), 0);
}
