//! Restore must answer bad bytes with `KvError::Corrupt`, never a panic, even
//! when the damage comes with a valid checksum (so the structural checks, not
//! just the checksum, are exercised); and whatever it accepts must work.

use proptest::prelude::*;
use synod_kv::*;

fn fnv(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Replaces the body of a snapshot and recomputes its checksum.
fn reseal(snapshot: &[u8], body: &[u8]) -> Vec<u8> {
    let mut out = snapshot[..8].to_vec();
    out.extend_from_slice(body);
    out.extend_from_slice(&fnv(body).to_le_bytes());
    out
}

fn sample() -> KvStore {
    let mut s = KvStore::new();
    let lease = match s.apply(&Command::LeaseGrant { id: 0, ttl: 9 }).0.unwrap() {
        Response::LeaseGrant { id, .. } => id,
        other => panic!("{other:?}"),
    };
    for i in 0..12 {
        let lease = if i % 3 == 0 { lease } else { 0 };
        let p = PutRequest {
            lease,
            ..PutRequest::new(format!("k{}", i % 5), format!("v{i}"))
        };
        s.apply(&Command::Put(p)).0.unwrap();
    }
    s.apply(&Command::DeleteRange(DeleteRangeRequest::key("k1")))
        .0
        .unwrap();
    s.apply(&Command::Compact { revision: 6 }).0.unwrap();
    s
}

/// Exercises a restored store; any broken invariant would panic here.
fn exercise(mut s: KvStore) {
    s.check_invariants();
    let all = RangeRequest {
        range_end: vec![0],
        ..RangeRequest::key("\0")
    };
    let _ = s.range(&all);
    let _ = s.events_since(s.compact_revision() + 1, b"\0", b"\0", 100);
    for id in s.leases() {
        let _ = s.apply(&Command::LeaseRevoke { id });
    }
    for k in ["k0", "k1", "k2", "k3", "k4", "new"] {
        let _ = s.apply(&Command::Put(PutRequest::new(k, "x")));
        let _ = s.apply(&Command::Put(PutRequest {
            key: k.into(),
            ignore_value: true,
            ..Default::default()
        }));
    }
    let _ = s.apply(&Command::DeleteRange(DeleteRangeRequest {
        key: b"\0".to_vec(),
        range_end: vec![0],
        prev_kv: true,
    }));
    let _ = s.apply(&Command::Compact {
        revision: s.revision(),
    });
    s.check_invariants();
    let again = KvStore::restore(&s.snapshot()).expect("a store's own snapshot restores");
    assert_eq!(again.hash(), s.hash());
}

#[test]
fn the_unmodified_sample_restores() {
    let snap = sample().snapshot();
    let body = &snap[8..snap.len() - 8];
    assert_eq!(
        reseal(&snap, body),
        snap,
        "reseal must reproduce an intact snapshot"
    );
    exercise(KvStore::restore(&snap).unwrap());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let mut framed = b"SYNODKV1".to_vec();
        framed.extend_from_slice(&bytes);
        framed.extend_from_slice(&fnv(&bytes).to_le_bytes());
        for input in [bytes.clone(), framed] {
            match KvStore::restore(&input) {
                Ok(s) => exercise(s),
                Err(e) => prop_assert!(matches!(e, KvError::Corrupt(_))),
            }
        }
    }

    #[test]
    fn resealed_damage_is_refused_or_harmless(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..4)
    ) {
        let snap = sample().snapshot();
        let mut body = snap[8..snap.len() - 8].to_vec();
        for (at, byte, kind) in edits {
            let i = at.index(body.len().max(1));
            match kind {
                0 if !body.is_empty() => body[i] = byte,
                1 => body.insert(i.min(body.len()), byte),
                _ if !body.is_empty() => { body.remove(i); }
                _ => {}
            }
        }
        match KvStore::restore(&reseal(&snap, &body)) {
            Ok(s) => exercise(s),
            Err(e) => prop_assert!(matches!(e, KvError::Corrupt(_))),
        }
    }
}
