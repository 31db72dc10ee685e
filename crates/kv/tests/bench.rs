//! Rough throughput figures, ignored by default. Run with
//! `cargo test -p synod-kv --release --test bench -- --ignored --nocapture`.

use std::time::Instant;

use synod_kv::*;

fn rate(label: &str, n: usize, f: impl FnOnce()) {
    let t = Instant::now();
    f();
    let s = t.elapsed().as_secs_f64();
    println!(
        "{label:<44} {n:>8} ops in {s:>7.3}s = {:>10.0} ops/s",
        n as f64 / s
    );
}

#[test]
#[ignore]
fn figures() {
    const N: usize = 100_000;
    let mut s = KvStore::new();
    let value = vec![b'v'; 100];
    rate("put, 100k distinct keys, 100 B values", N, || {
        for i in 0..N {
            let cmd = Command::Put(PutRequest::new(format!("key/{i:08}"), value.clone()));
            s.apply(&cmd).0.unwrap();
        }
    });
    rate("put, overwrite the same 1k keys", N, || {
        for i in 0..N {
            let cmd = Command::Put(PutRequest::new(
                format!("key/{:08}", i % 1000),
                value.clone(),
            ));
            s.apply(&cmd).0.unwrap();
        }
    });
    rate("range, single key, current revision", N, || {
        for i in 0..N {
            let r = s
                .range(&RangeRequest::key(format!("key/{:08}", i % N)))
                .unwrap();
            assert_eq!(r.kvs.len(), 1);
        }
    });
    rate("range, single key, past revision", N, || {
        for i in 0..N {
            let r = s
                .range(&RangeRequest {
                    revision: 50_000,
                    ..RangeRequest::key(format!("key/{:08}", i % 1000))
                })
                .unwrap();
            assert_eq!(r.kvs.len(), 1);
        }
    });
    rate("range, prefix of 100 keys, limit 10", 10_000, || {
        for i in 0..10_000 {
            let p = format!("key/{:06}", i % 1000);
            let r = s
                .range(&RangeRequest {
                    limit: 10,
                    ..RangeRequest::prefix(p)
                })
                .unwrap();
            assert_eq!((r.kvs.len(), r.count), (10, 100));
        }
    });
    rate("txn: compare version + put", N, || {
        for i in 0..N {
            let k = format!("key/{:08}", i % 1000);
            let t = TxnRequest {
                compare: vec![Compare {
                    key: k.clone().into(),
                    range_end: vec![],
                    target: CompareTarget::Version(0),
                    result: CompareResult::Greater,
                }],
                success: vec![RequestOp::Put(PutRequest::new(k, "x"))],
                failure: vec![],
            };
            s.apply(&Command::Txn(t)).0.unwrap();
        }
    });
    let t = Instant::now();
    let snap = s.snapshot();
    println!(
        "snapshot of {} revisions: {} bytes in {:.3}s",
        s.revision(),
        snap.len(),
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    let r = KvStore::restore(&snap).unwrap();
    println!("restore: {:.3}s", t.elapsed().as_secs_f64());
    let t = Instant::now();
    assert_eq!(r.hash(), s.hash());
    println!("hash (x2): {:.3}s", t.elapsed().as_secs_f64());
    let t = Instant::now();
    let ev = s
        .events_since(s.revision() - 1000, b"\0", b"\0", 10_000)
        .unwrap();
    println!(
        "events_since last 1000 revisions ({} events): {:.4}s",
        ev.len(),
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    s.apply(&Command::Compact {
        revision: s.revision(),
    })
    .0
    .unwrap();
    println!(
        "compact everything: {:.3}s, snapshot now {} bytes",
        t.elapsed().as_secs_f64(),
        s.snapshot().len()
    );
}
