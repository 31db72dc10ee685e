//! A delete range applied in bounded chunks (`apply_bounded`/`resume`)
//! ends byte for byte where applying it at once ends, and shows nothing of
//! itself until then.

use synod_kv::*;

/// A store with `n` keys `k0000..`, every third on a lease, a few
/// overwritten, and keys outside the deleted range.
fn loaded(n: usize) -> KvStore {
    let mut s = KvStore::new();
    let (r, _) = s.apply(&Command::LeaseGrant { id: 7, ttl: 100 });
    r.expect("grant");
    for i in 0..n {
        let mut p = PutRequest::new(format!("k{i:04}"), format!("v{i}"));
        if i % 3 == 0 {
            p.lease = 7;
        }
        s.apply(&Command::Put(p)).0.expect("put");
    }
    for i in (0..n).step_by(5) {
        s.apply(&Command::Put(PutRequest::new(format!("k{i:04}"), "again")))
            .0
            .expect("put");
    }
    s.apply(&Command::Put(PutRequest::new("a", "before")))
        .0
        .expect("put");
    s.apply(&Command::Put(PutRequest::new("z", "after")))
        .0
        .expect("put");
    s
}

fn delete_all(prev_kv: bool) -> Command {
    Command::DeleteRange(DeleteRangeRequest {
        key: b"k".to_vec(),
        range_end: b"l".to_vec(),
        prev_kv,
    })
}

fn all(s: &KvStore) -> RangeResponse {
    s.range(&RangeRequest {
        key: vec![0],
        range_end: vec![0],
        ..RangeRequest::default()
    })
    .expect("range")
}

#[test]
fn chunks_end_exactly_where_one_apply_ends() {
    for prev_kv in [false, true] {
        let mut whole = loaded(200);
        let (want, want_events) = whole.apply(&delete_all(prev_kv));
        for budget in [1u64, 2, 7, 64, 199, 200, 201, 1000] {
            let mut s = loaded(200);
            let before = all(&s);
            let (hash, image, rev) = (s.hash(), s.snapshot(), s.revision());
            let mut b = budget;
            let mut p = s.apply_bounded(&delete_all(prev_kv), &mut b);
            let mut rounds = 1;
            while p == Progress::Pending {
                assert!(s.in_progress());
                // Nothing of the delete shows until it completes.
                assert_eq!(all(&s), before, "a read saw part of the delete");
                assert_eq!(s.hash(), hash, "the hash saw part of the delete");
                assert_eq!(s.snapshot(), image, "the image saw part of the delete");
                assert_eq!(s.revision(), rev);
                assert!(s
                    .events_since(rev + 1, b"k", b"l", 10_000)
                    .expect("events")
                    .is_empty());
                s.check_invariants();
                b = budget;
                p = s.resume(&mut b);
                rounds += 1;
            }
            assert!(!s.in_progress());
            let Progress::Done(got, events) = p else {
                unreachable!()
            };
            assert_eq!(got, want, "budget {budget}: response");
            assert_eq!(events, want_events, "budget {budget}: events");
            assert_eq!(s.hash(), whole.hash(), "budget {budget}: hash");
            assert_eq!(s.snapshot(), whole.snapshot(), "budget {budget}: image");
            assert_eq!(all(&s), all(&whole));
            s.check_invariants();
            let expect_rounds = (200 / budget as usize) + 1;
            assert!(
                rounds <= expect_rounds,
                "budget {budget}: {rounds} rounds for 200 keys"
            );
        }
    }
}

#[test]
fn budget_counts_key_operations() {
    let mut s = loaded(50);
    let mut b = 10;
    assert_eq!(
        s.apply_bounded(&delete_all(false), &mut b),
        Progress::Pending
    );
    assert_eq!(b, 0, "a full chunk spends the budget");
    let mut b = 100;
    let Progress::Done(Ok(Response::DeleteRange { deleted, .. }), events) = s.resume(&mut b) else {
        panic!("the rest fits")
    };
    assert_eq!(deleted, 50);
    assert_eq!(events.len(), 50);
    assert_eq!(b, 60);
    // A put costs one; a delete of nothing costs one.
    let mut b = 5;
    s.apply_bounded(&Command::Put(PutRequest::new("p", "v")), &mut b);
    assert_eq!(b, 4);
    assert!(matches!(
        s.apply_bounded(&delete_all(false), &mut b),
        Progress::Done(Ok(_), _)
    ));
    assert_eq!(b, 3);
}

#[test]
fn an_install_replaces_a_delete_in_progress() {
    let mut s = loaded(100);
    let image = loaded(30).snapshot();
    let mut b = 10;
    assert_eq!(
        s.apply_bounded(&delete_all(false), &mut b),
        Progress::Pending
    );
    s.install(&image).expect("install");
    assert!(!s.in_progress());
    assert_eq!(s.snapshot(), image);
    s.check_invariants();
}

#[test]
#[should_panic(expected = "half applied")]
fn a_half_applied_delete_is_never_committed() {
    let mut s = loaded(20);
    let mut b = 3;
    assert_eq!(
        s.apply_bounded(&delete_all(false), &mut b),
        Progress::Pending
    );
    let _ = s.commit(1, &[], true);
}
