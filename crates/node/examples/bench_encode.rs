//! Micro-benchmark of the encodings on the write path: a client's Put as a
//! log entry's payload (`Proposal`, postcard), and a leader's append of 64
//! such entries as a peer frame (`Envelope`, postcard) — encode and decode,
//! in operations per second and bytes per item.
//!
//! `cargo run -p synod-node --release --example bench_encode -- [ITERATIONS]`

use std::hint::black_box;
use std::time::Instant;

use synod_kv::{Command, PutRequest};
use synod_node::{Envelope, Proposal};
use synod_raft::{Entry, EntryKind, Message, MessageBody};

fn rate(n: usize, f: impl FnMut()) -> f64 {
    let mut f = f;
    let t0 = Instant::now();
    for _ in 0..n {
        f();
    }
    n as f64 / t0.elapsed().as_secs_f64()
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(200_000);
    let p = Proposal {
        client: 0x1234_5678,
        seq: 42,
        cmd: Command::Put(PutRequest::new(
            b"bench/key/000001".to_vec(),
            vec![b'v'; 256],
        )),
    };
    let bytes = p.encode();
    let enc = rate(n, || {
        black_box(black_box(&p).encode());
    });
    let dec = rate(n, || {
        black_box(Proposal::decode(black_box(&bytes)).expect("decodes"));
    });
    println!(
        "{:<34} {:>12} {:>12} {:>10}",
        "item", "encode/s", "decode/s", "bytes"
    );
    println!(
        "{:<34} {enc:>12.0} {dec:>12.0} {:>10}",
        "Put proposal (16 B key, 256 B)",
        bytes.len()
    );

    let entries: Vec<Entry> = (0..64)
        .map(|i| Entry {
            term: 7,
            index: 1000 + i,
            kind: EntryKind::Normal,
            data: bytes.clone(),
        })
        .collect();
    let env = Envelope {
        shard: 1,
        msg: Message {
            from: 1,
            to: 2,
            term: 7,
            body: MessageBody::Append {
                index: 999,
                log_term: 7,
                entries,
                commit: 990,
            },
        },
    };
    let frame = postcard::to_allocvec(&env).expect("encodes");
    let m = (n / 64).max(1);
    let enc = rate(m, || {
        black_box(postcard::to_allocvec(black_box(&env)).expect("encodes"));
    });
    let dec = rate(m, || {
        black_box(postcard::from_bytes::<Envelope>(black_box(&frame)).expect("decodes"));
    });
    println!(
        "{:<34} {enc:>12.0} {dec:>12.0} {:>10}",
        "Append of 64 entries (peer frame)",
        frame.len()
    );
    println!(
        "  = {:.0} entries/s encoded, {:.0} decoded",
        enc * 64.0,
        dec * 64.0
    );
}
