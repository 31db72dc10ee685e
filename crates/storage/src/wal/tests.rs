//! Tests of the WAL: round trips, rotation, group commit, crash recovery on
//! the simulated disk, corruption detection, and the real file system.

use super::*;
use crate::record::SEGMENT_HEADER;
use crate::vfs::{RealVfs, SimVfs};
use proptest::prelude::*;
use rand::SeedableRng;
use rand_pcg::Pcg64Mcg;

fn small() -> WalConfig {
    WalConfig {
        segment_size: 1024,
        max_record_size: 200,
        max_buffer_bytes: 8192,
        zero_fill: true,
    }
}

fn dir() -> PathBuf {
    PathBuf::from("/wal")
}

fn payload(i: u64) -> Vec<u8> {
    let len = (i * 37 % 150) as usize;
    (0..len).map(|j| (i as usize + j) as u8).collect()
}

fn kinds(records: &[Record]) -> Vec<(u64, u8, Vec<u8>)> {
    records
        .iter()
        .map(|r| (r.lsn, r.kind, r.payload.clone()))
        .collect()
}

fn expected(range: std::ops::Range<u64>) -> Vec<(u64, u8, Vec<u8>)> {
    range.map(|i| (i, (i % 7) as u8, payload(i))).collect()
}

fn append_range(wal: &mut Wal<SimVfs>, range: std::ops::Range<u64>) {
    for i in range {
        let lsn = wal.append_one((i % 7) as u8, &payload(i)).unwrap();
        assert_eq!(lsn, i);
    }
}

#[test]
fn round_trip_with_rotation_and_reopen() {
    let vfs = SimVfs::new();
    let (mut wal, recs) = Wal::open(vfs.clone(), &dir(), small()).unwrap();
    assert!(recs.is_empty());
    append_range(&mut wal, 0..40);
    assert_eq!(wal.sync().unwrap(), 40);
    append_range(&mut wal, 40..60);
    wal.sync().unwrap();
    let segs = wal.segments().len();
    assert!(segs > 3, "{segs} segments");
    drop(wal);
    let (mut wal, recs) = Wal::open(vfs.clone(), &dir(), small()).unwrap();
    assert_eq!(kinds(&recs), expected(0..60));
    assert_eq!(wal.segments().len(), segs);
    append_range(&mut wal, 60..70);
    wal.sync().unwrap();
    let (_, recs) = Wal::open(vfs, &dir(), small()).unwrap();
    assert_eq!(kinds(&recs), expected(0..70));
}

#[test]
fn truncate_prefix_removes_only_covered_segments() {
    let vfs = SimVfs::new();
    let (mut wal, _) = Wal::open(vfs.clone(), &dir(), small()).unwrap();
    append_range(&mut wal, 0..60);
    wal.sync().unwrap();
    let before: Vec<SegmentInfo> = wal.segments().to_vec();
    let cut = before[2].first_lsn + 1;
    assert_eq!(wal.truncate_prefix(cut).unwrap(), 2);
    assert_eq!(wal.segments(), &before[2..]);
    // Everything is always kept from the active segment on.
    assert_eq!(wal.truncate_prefix(u64::MAX).unwrap(), before.len() - 3);
    assert_eq!(wal.segments().len(), 1);
    let first = wal.segments()[0].first_lsn;
    drop(wal);
    let (_, recs) = Wal::open(vfs, &dir(), small()).unwrap();
    assert_eq!(kinds(&recs), expected(first..60));
}

#[test]
fn limits_are_typed_errors() {
    let vfs = SimVfs::new();
    let (mut wal, _) = Wal::open(vfs, &dir(), small()).unwrap();
    let big = vec![0u8; 201];
    assert!(matches!(
        wal.append_one(1, &big),
        Err(WalError::RecordTooLarge { len: 201, max: 200 })
    ));
    let rec = vec![1u8; 191]; // 200 bytes framed
    for _ in 0..40 {
        wal.append_one(1, &rec).unwrap();
    }
    // All-or-nothing: a batch that would overflow adds nothing.
    let err = wal.append(&[(1, &rec[..]), (1, &rec[..])]).unwrap_err();
    assert!(matches!(err, WalError::BufferFull { .. }), "{err}");
    assert_eq!(wal.next_lsn(), 40);
    assert!(Wal::open(
        SimVfs::new(),
        &dir(),
        WalConfig {
            segment_size: 100,
            ..small()
        }
    )
    .is_err());
    assert!(WalConfig::default().validate().is_ok());
    assert!(WalConfig::for_simulation().validate().is_ok());
}

#[test]
fn failed_sync_poisons_and_reopen_recovers_durable_prefix() {
    let vfs = SimVfs::new();
    let (mut wal, _) = Wal::open(vfs.clone(), &dir(), small()).unwrap();
    append_range(&mut wal, 0..5);
    wal.sync().unwrap();
    append_range(&mut wal, 5..8);
    vfs.fail_next_syncs(1);
    assert!(matches!(wal.sync(), Err(WalError::Vfs(_))));
    assert!(matches!(wal.sync(), Err(WalError::Poisoned)));
    assert!(matches!(wal.append_one(1, b"x"), Err(WalError::Poisoned)));
    drop(wal);
    vfs.crash(&mut Pcg64Mcg::seed_from_u64(9));
    let (_, recs) = Wal::open(vfs, &dir(), small()).unwrap();
    let got = kinds(&recs);
    assert!(got.len() >= 5 && got.len() <= 8, "{}", got.len());
    assert_eq!(got, expected(0..got.len() as u64));
}

fn last_segment(vfs: &SimVfs) -> PathBuf {
    let names = vfs.list(&dir()).unwrap();
    dir().join(names.last().unwrap())
}

#[test]
fn flipped_byte_in_a_middle_record_is_an_error_naming_file_and_offset() {
    let vfs = SimVfs::new();
    let (mut wal, _) = Wal::open(vfs.clone(), &dir(), small()).unwrap();
    append_range(&mut wal, 0..6);
    wal.sync().unwrap();
    drop(wal);
    let path = last_segment(&vfs);
    // Record 2 starts after the header and records 0 and 1.
    let rec2 = SEGMENT_HEADER + 2 * FRAME_HEADER + payload(0).len() + payload(1).len();
    vfs.corrupt(&path, (rec2 + FRAME_HEADER + 3) as u64)
        .unwrap();
    let err = Wal::open(vfs.clone(), &dir(), small()).unwrap_err();
    match &err {
        WalError::Corrupt {
            path: p, offset, ..
        } => {
            assert_eq!(p, &path);
            assert_eq!(*offset, rec2 as u64);
        }
        other => panic!("expected corruption, got {other}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains("wal-") && msg.contains(&format!("offset {rec2}")),
        "{msg}"
    );
}

#[test]
fn damaged_last_record_of_a_sealed_segment_is_corruption_not_a_tail() {
    let vfs = SimVfs::new();
    let (mut wal, _) = Wal::open(vfs.clone(), &dir(), small()).unwrap();
    append_range(&mut wal, 0..30);
    wal.sync().unwrap();
    let first = wal.segments()[0].clone();
    let second_lsn = wal.segments()[1].first_lsn;
    drop(wal);
    // Last record of the first (sealed) segment.
    let mut off = SEGMENT_HEADER;
    for i in 0..second_lsn - 1 {
        off += FRAME_HEADER + payload(i).len();
    }
    vfs.corrupt(&first.path, off as u64 + 1).unwrap();
    let err = Wal::open(vfs, &dir(), small()).unwrap_err();
    assert!(
        matches!(&err, WalError::Corrupt { path, offset, .. } if *path == first.path && *offset == off as u64),
        "{err}"
    );
}

#[test]
fn torn_final_record_is_truncated_and_appends_continue() {
    let vfs = SimVfs::new();
    let (mut wal, _) = Wal::open(vfs.clone(), &dir(), small()).unwrap();
    append_range(&mut wal, 0..3);
    wal.sync().unwrap();
    drop(wal);
    // Hand-write a torn fourth record: a prefix of its frame, then zeros.
    let path = last_segment(&vfs);
    let mut frame = Vec::new();
    encode_record(3, &payload(3), &mut frame);
    let at = (SEGMENT_HEADER
        + (0..3)
            .map(|i| FRAME_HEADER + payload(i).len())
            .sum::<usize>()) as u64;
    let mut f = vfs.open(&path).unwrap();
    f.write_at(at, &frame[..frame.len() - 4]).unwrap();
    f.sync_data().unwrap();
    drop(f);
    let (mut wal, report) =
        Wal::open_with(vfs.clone(), &dir(), small(), |_| Ok::<(), WalError>(())).unwrap();
    assert_eq!(report.torn_bytes, (frame.len() - 4) as u64);
    assert_eq!(wal.next_lsn(), 3);
    // A shorter record now overwrites the torn bytes: still readable.
    wal.append_one(9, b"short").unwrap();
    wal.sync().unwrap();
    drop(wal);
    let (_, recs) = Wal::open(vfs, &dir(), small()).unwrap();
    assert_eq!(recs.len(), 4);
    assert_eq!(recs[3].payload, b"short");
}

#[test]
fn missing_middle_segment_is_an_error() {
    let vfs = SimVfs::new();
    let (mut wal, _) = Wal::open(vfs.clone(), &dir(), small()).unwrap();
    append_range(&mut wal, 0..40);
    wal.sync().unwrap();
    let victim = wal.segments()[1].path.clone();
    drop(wal);
    vfs.remove(&victim).unwrap();
    let err = Wal::open(vfs, &dir(), small()).unwrap_err();
    assert!(matches!(err, WalError::Corrupt { .. }), "{err}");
}

#[test]
fn group_commit_policy() {
    let mut gc = GroupCommit::new(1000, 50);
    assert!(!gc.should_sync(0));
    assert_eq!(gc.deadline(), None);
    gc.on_append(300, 10);
    gc.on_append(300, 30);
    assert!(!gc.should_sync(59));
    assert_eq!(gc.deadline(), Some(60));
    assert!(gc.should_sync(60));
    gc.on_append(500, 40);
    assert!(gc.should_sync(41));
    gc.on_sync();
    assert!(!gc.should_sync(1_000));
}

#[test]
fn real_vfs_round_trip_and_torn_tail() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("wal");
    let (mut wal, _) = Wal::open(RealVfs::new(), &d, small()).unwrap();
    for i in 0..50u64 {
        wal.append_one((i % 7) as u8, &payload(i)).unwrap();
    }
    wal.sync().unwrap();
    let last = wal.segments().last().unwrap().path.clone();
    let pos = wal.write_pos;
    drop(wal);
    // Simulate a torn record at the end of the real file.
    let mut f = RealVfs::new().open(&last).unwrap();
    f.write_at(pos, &[40, 0, 0, 0, 1, 2, 3]).unwrap();
    drop(f);
    let (_, recs) = Wal::open(RealVfs::new(), &d, small()).unwrap();
    assert_eq!(kinds(&recs), expected(0..50));
    // And a flipped byte in the middle is noticed.
    let first = d.join(segment_name(0, 0));
    let mut f = RealVfs::new().open(&first).unwrap();
    let mut b = [0u8; 1];
    let off = (SEGMENT_HEADER + FRAME_HEADER + 1) as u64;
    f.read_at(off, &mut b).unwrap();
    f.write_at(off, &[b[0] ^ 0x10]).unwrap();
    drop(f);
    assert!(matches!(
        Wal::open(RealVfs::new(), &d, small()),
        Err(WalError::Corrupt { .. })
    ));
}

#[test]
fn same_seed_same_disk() {
    let run = |seed: u64| {
        let vfs = SimVfs::new();
        let mut rng = Pcg64Mcg::seed_from_u64(seed);
        vfs.set_random_faults(
            seed,
            crate::vfs::FaultRates {
                write_error_ppm: 20_000,
                sync_error_ppm: 20_000,
                budget: 5,
            },
        );
        let mut recovered = Vec::new();
        for round in 0..5u64 {
            let Ok((mut wal, recs)) = Wal::open(vfs.clone(), &dir(), small()) else {
                vfs.crash(&mut rng);
                continue;
            };
            recovered.push(recs.len());
            for i in 0..20 {
                if wal.append_one(1, &payload(round * 100 + i)).is_err() {
                    break;
                }
                if i % 3 == 0 && wal.sync().is_err() {
                    break;
                }
            }
            drop(wal);
            vfs.crash(&mut rng);
        }
        let mut disk = Vec::new();
        for name in vfs.list(&dir()).unwrap() {
            disk.push(vfs.durable_contents(&dir().join(&name)).unwrap());
            disk.push(name.into_bytes());
        }
        (recovered, disk, vfs.injected_faults())
    };
    for seed in 0..8 {
        assert_eq!(run(seed), run(seed), "seed {seed}");
    }
    assert_ne!(run(1), run(2));
}

#[derive(Debug, Clone)]
enum Op {
    Append(u8),
    Sync,
    Crash(u64),
    FailSync,
    Truncate,
    /// The process restarts without a power loss.
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1u8..6).prop_map(Op::Append),
        3 => Just(Op::Sync),
        1 => any::<u64>().prop_map(Op::Crash),
        1 => Just(Op::FailSync),
        1 => Just(Op::Truncate),
        1 => Just(Op::Restart),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Any sequence of appends, syncs, failed syncs, truncations, restarts
    /// and crashes recovers exactly a prefix of what was appended, and that
    /// prefix holds every record whose sync succeeded or that an earlier
    /// recovery returned (recovery makes what it returns durable).
    #[test]
    fn crash_recovers_a_prefix_holding_every_synced_record(ops in prop::collection::vec(op(), 1..60)) {
        let vfs = SimVfs::new();
        let (mut wal, _) = Wal::open(vfs.clone(), &dir(), small()).unwrap();
        // Every record appended since the last recovery, indexed by LSN; the
        // first `synced` of them were acknowledged by a successful sync.
        let mut log: Vec<(u64, u8, Vec<u8>)> = Vec::new();
        let mut synced = 0usize;
        let mut n = 0u64;
        for op in ops {
            match op {
                Op::Append(k) => {
                    for _ in 0..k {
                        let p = payload(n);
                        n += 1;
                        match wal.append_one(k, &p) {
                            Ok(lsn) => {
                                prop_assert_eq!(lsn, log.len() as u64);
                                log.push((lsn, k, p));
                            }
                            Err(WalError::BufferFull { .. }) | Err(WalError::Poisoned) => {}
                            Err(e) => panic!("{e}"),
                        }
                    }
                }
                Op::Sync => {
                    if wal.sync().is_ok() {
                        synced = log.len();
                    }
                }
                Op::FailSync => vfs.fail_next_syncs(1),
                Op::Truncate => {
                    let _ = wal.truncate_prefix(log.len() as u64 / 2);
                }
                Op::Crash(_) | Op::Restart => {
                    drop(wal);
                    vfs.fail_next_syncs(0);
                    if let Op::Crash(seed) = op {
                        vfs.crash(&mut Pcg64Mcg::seed_from_u64(seed));
                    }
                    let (w, recs) = Wal::open(vfs.clone(), &dir(), small()).unwrap();
                    wal = w;
                    let end = wal.next_lsn() as usize;
                    prop_assert!(end >= synced, "lost synced records: {} < {}", end, synced);
                    prop_assert!(end <= log.len());
                    let first = recs.first().map_or(end, |r| r.lsn as usize);
                    prop_assert_eq!(kinds(&recs), log[first..end].to_vec());
                    log.truncate(end);
                    synced = end;
                }
            }
        }
    }
}
