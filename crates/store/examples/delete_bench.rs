//! How fast one delete range removes many keys from a store on redb, applied
//! in bounded chunks as the server applies it (256 keys per turn, a
//! non-durable commit after every 64 turns, a durable one at the end).
//!
//! `cargo run --release -p synod-store --example delete_bench -- [KEYS]`
//! (default 245 000 keys, what `etcdctl check perf --load=l` leaves behind).

use std::time::Instant;

use synod_kv::RequestOp;
use synod_kv::{Command, DeleteRangeRequest, KvConfig, Progress, PutRequest, TxnRequest};
use synod_store::StoreConfig;

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("KEYS is a number"))
        .unwrap_or(245_000);
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("store.redb");
    let mut opened =
        synod_store::open(&path, &StoreConfig::default(), KvConfig::default()).expect("open");
    let kv = &mut opened.kv;
    let t0 = Instant::now();
    let mut applied = 0;
    for start in (0..n).step_by(128) {
        let success = (start..(start + 128).min(n))
            .map(|i| {
                RequestOp::Put(PutRequest {
                    key: format!("big/{i:09}").into_bytes(),
                    value: vec![b'v'; 64],
                    ..Default::default()
                })
            })
            .collect();
        let (out, _) = kv.apply(&Command::Txn(TxnRequest {
            success,
            ..Default::default()
        }));
        out.expect("a load txn");
        applied += 1;
        if applied % 64 == 0 {
            synod_store::commit(kv, applied, &[], false).expect("commit");
        }
    }
    synod_store::commit(kv, applied, &[], true).expect("commit");
    eprintln!("loaded {n} keys in {:?}", t0.elapsed());

    let t1 = Instant::now();
    let del = Command::DeleteRange(DeleteRangeRequest {
        key: b"big/".to_vec(),
        range_end: b"big0".to_vec(),
        prev_kv: false,
    });
    let mut budget = 256;
    let mut turns = 0u64;
    let mut p = kv.apply_bounded(&del, &mut budget);
    let events = loop {
        match p {
            Progress::Done(out, events) => {
                out.expect("the delete");
                break events;
            }
            Progress::Pending => {
                turns += 1;
                budget = 256;
                p = kv.resume(&mut budget);
            }
        }
    };
    let applied_at = t1.elapsed();
    applied += 1;
    synod_store::commit(kv, applied, &[], true).expect("commit");
    let total = t1.elapsed();
    assert_eq!(events.len() as u64, n, "one event per key");
    eprintln!(
        "deleted {n} keys in {turns} turns: applied in {applied_at:?} ({:.0} keys/s), \
         durable in {total:?}",
        n as f64 / applied_at.as_secs_f64()
    );
}
