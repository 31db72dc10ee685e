//! Transactions, leases, compaction, watch catch-up, snapshots and hashes,
//! with expected numbers worked out by hand from etcd's documentation.

use synod_kv::*;

fn put(s: &mut KvStore, k: &str, v: &str) -> i64 {
    s.apply(&Command::Put(PutRequest::new(k, v)))
        .0
        .expect("put")
        .revision()
}

fn put_lease(s: &mut KvStore, k: &str, v: &str, lease: i64) -> Result<Response, KvError> {
    s.apply(&Command::Put(PutRequest {
        lease,
        ..PutRequest::new(k, v)
    }))
    .0
}

fn get(s: &KvStore, k: &str) -> Option<KeyValue> {
    s.range(&RangeRequest::key(k))
        .unwrap()
        .kvs
        .into_iter()
        .next()
}

fn cmp(k: &str, target: CompareTarget, result: CompareResult) -> Compare {
    Compare {
        key: k.into(),
        range_end: vec![],
        target,
        result,
    }
}

fn op_put(k: &str, v: &str) -> RequestOp {
    RequestOp::Put(PutRequest::new(k, v))
}

fn txn(s: &mut KvStore, t: TxnRequest) -> (Result<Response, KvError>, Vec<Event>) {
    s.apply(&Command::Txn(t))
}

fn grant(s: &mut KvStore, id: i64, ttl: i64) -> i64 {
    match s.apply(&Command::LeaseGrant { id, ttl }).0.expect("grant") {
        Response::LeaseGrant { id, .. } => id,
        other => panic!("{other:?}"),
    }
}

// ---- transactions ---------------------------------------------------------

#[test]
fn txn_writes_share_one_revision_with_growing_sub_revisions() {
    let mut s = KvStore::new();
    put(&mut s, "a", "0"); // 2
    let t = TxnRequest {
        compare: vec![cmp(
            "a",
            CompareTarget::Value(b"0".to_vec()),
            CompareResult::Equal,
        )],
        success: vec![
            op_put("b", "1"),
            op_put("c", "1"),
            RequestOp::DeleteRange(DeleteRangeRequest::key("a")),
        ],
        failure: vec![],
    };
    let (r, ev) = txn(&mut s, t);
    let r = r.unwrap();
    assert_eq!(r.revision(), 3);
    match &r {
        Response::Txn {
            succeeded,
            responses,
            ..
        } => {
            assert!(succeeded);
            assert_eq!(responses.len(), 3);
            assert!(responses.iter().all(|x| x.revision() == 3));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(s.revision(), 3);
    assert_eq!(ev.len(), 3);
    assert!(ev.iter().all(|e| e.kv.mod_revision == 3));
    assert_eq!(ev[2].kind, EventKind::Delete);
    assert_eq!(get(&s, "b").unwrap().create_revision, 3);
}

#[test]
fn read_only_txn_and_failed_compare_without_writes_keep_the_revision() {
    let mut s = KvStore::new();
    put(&mut s, "a", "1"); // 2
    let t = TxnRequest {
        compare: vec![cmp("a", CompareTarget::Version(5), CompareResult::Equal)],
        success: vec![op_put("a", "2")],
        failure: vec![RequestOp::Range(RangeRequest::key("a"))],
    };
    let (r, ev) = txn(&mut s, t);
    match r.unwrap() {
        Response::Txn {
            revision,
            succeeded,
            responses,
        } => {
            assert_eq!((revision, succeeded), (2, false));
            match &responses[0] {
                Response::Range(rr) => assert_eq!(rr.kvs[0].value, b"1"),
                other => panic!("{other:?}"),
            }
        }
        other => panic!("{other:?}"),
    }
    assert!(ev.is_empty());
    assert_eq!(s.revision(), 2);
}

#[test]
fn compares_on_each_target_and_relation() {
    let mut s = KvStore::new();
    put(&mut s, "a", "m"); // 2
    put(&mut s, "a", "m"); // 3: version 2, create 2, mod 3
    let holds = |s: &mut KvStore, c: Compare| match txn(
        s,
        TxnRequest {
            compare: vec![c],
            ..Default::default()
        },
    )
    .0
    .unwrap()
    {
        Response::Txn { succeeded, .. } => succeeded,
        other => panic!("{other:?}"),
    };
    use CompareResult::*;
    use CompareTarget as T;
    assert!(holds(&mut s, cmp("a", T::Version(2), Equal)));
    assert!(!holds(&mut s, cmp("a", T::Version(2), NotEqual)));
    assert!(holds(&mut s, cmp("a", T::Version(1), Greater)));
    assert!(holds(&mut s, cmp("a", T::CreateRevision(3), Less)));
    assert!(holds(&mut s, cmp("a", T::ModRevision(3), Equal)));
    assert!(holds(&mut s, cmp("a", T::Value(b"n".to_vec()), Less)));
    assert!(holds(&mut s, cmp("a", T::Value(b"l".to_vec()), Greater)));
    assert!(holds(&mut s, cmp("a", T::Lease(0), Equal)));
    // a missing key: all numbers 0, and a value compare always fails
    assert!(holds(&mut s, cmp("zz", T::Version(0), Equal)));
    assert!(holds(&mut s, cmp("zz", T::CreateRevision(0), Equal)));
    assert!(!holds(&mut s, cmp("zz", T::Value(vec![]), Equal)));
    assert!(!holds(&mut s, cmp("zz", T::Value(b"x".to_vec()), NotEqual)));
}

#[test]
fn a_compare_over_a_range_must_hold_for_every_key() {
    let mut s = KvStore::new();
    put(&mut s, "p/1", "x");
    put(&mut s, "p/2", "x");
    put(&mut s, "q", "y");
    let c = |v: &str| Compare {
        key: b"p/".to_vec(),
        range_end: prefix_range_end(b"p/"),
        target: CompareTarget::Value(v.into()),
        result: CompareResult::Equal,
    };
    let ok = |s: &mut KvStore, c| {
        matches!(
            txn(
                s,
                TxnRequest {
                    compare: vec![c],
                    ..Default::default()
                }
            )
            .0
            .unwrap(),
            Response::Txn {
                succeeded: true,
                ..
            }
        )
    };
    assert!(ok(&mut s, c("x")));
    put(&mut s, "p/3", "z");
    assert!(!ok(&mut s, c("x")));
}

#[test]
fn reads_inside_a_txn_see_its_earlier_writes() {
    let mut s = KvStore::new();
    put(&mut s, "a", "old"); // 2
    let t = TxnRequest {
        success: vec![op_put("a", "new"), RequestOp::Range(RangeRequest::key("a"))],
        ..Default::default()
    };
    match txn(&mut s, t).0.unwrap() {
        Response::Txn {
            responses,
            revision,
            ..
        } => {
            assert_eq!(revision, 3);
            match &responses[1] {
                Response::Range(rr) => {
                    assert_eq!(
                        (
                            rr.kvs[0].value.as_slice(),
                            rr.kvs[0].mod_revision,
                            rr.kvs[0].version
                        ),
                        (&b"new"[..], 3, 2)
                    );
                }
                other => panic!("{other:?}"),
            }
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn nested_txns_pick_branches_on_the_state_before_the_txn() {
    let mut s = KvStore::new();
    put(&mut s, "a", "1"); // 2
    let inner = TxnRequest {
        // evaluated before the outer put of b, so b is still missing
        compare: vec![cmp("b", CompareTarget::Version(0), CompareResult::Equal)],
        success: vec![op_put("c", "inner-then")],
        failure: vec![op_put("c", "inner-else")],
    };
    let t = TxnRequest {
        compare: vec![cmp(
            "a",
            CompareTarget::Value(b"1".to_vec()),
            CompareResult::Equal,
        )],
        success: vec![op_put("b", "1"), RequestOp::Txn(inner)],
        failure: vec![],
    };
    let (r, ev) = txn(&mut s, t);
    match r.unwrap() {
        Response::Txn {
            revision,
            succeeded,
            responses,
        } => {
            assert_eq!((revision, succeeded), (3, true));
            assert!(
                matches!(&responses[1], Response::Txn { succeeded: true, responses, .. } if responses.len() == 1)
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(ev.len(), 2);
    assert_eq!(get(&s, "c").unwrap().value, b"inner-then");
}

#[test]
fn duplicate_writes_in_a_txn_are_refused() {
    let mut s = KvStore::new();
    put(&mut s, "a", "1");
    let dup = |success: Vec<RequestOp>| TxnRequest {
        success,
        ..Default::default()
    };
    let del = |k: &str, e: &str| {
        RequestOp::DeleteRange(DeleteRangeRequest {
            key: k.into(),
            range_end: e.into(),
            prev_kv: false,
        })
    };
    for t in [
        dup(vec![op_put("a", "1"), op_put("a", "2")]),
        dup(vec![op_put("a", "1"), del("a", "")]),
        dup(vec![del("0", "z"), op_put("a", "1")]),
        dup(vec![
            op_put("a", "1"),
            RequestOp::Txn(TxnRequest {
                success: vec![op_put("a", "2")],
                ..Default::default()
            }),
        ]),
        dup(vec![
            RequestOp::Txn(TxnRequest {
                failure: vec![del("a", "b")],
                ..Default::default()
            }),
            op_put("a", "2"),
        ]),
    ] {
        let (r, ev) = txn(&mut s, t.clone());
        assert_eq!(r, Err(KvError::DuplicateKey), "{t:?}");
        assert!(ev.is_empty());
    }
    // allowed: the two branches of a nested txn exclude each other; overlapping deletes
    let ok = dup(vec![
        RequestOp::Txn(TxnRequest {
            success: vec![op_put("b", "1")],
            failure: vec![op_put("b", "2")],
            ..Default::default()
        }),
        del("x", "z"),
        del("y", ""),
    ]);
    assert!(txn(&mut s, ok).0.is_ok());
    // the same key in success and failure of one txn is fine too
    let ok = TxnRequest {
        success: vec![op_put("a", "1")],
        failure: vec![op_put("a", "2")],
        ..Default::default()
    };
    assert!(txn(&mut s, ok).0.is_ok());
    assert_eq!(s.revision(), 4);
}

#[test]
fn txn_op_limit_is_enforced_and_configurable() {
    let mut s = KvStore::with_config(KvConfig {
        max_txn_ops: 3,
        ..Default::default()
    });
    let ops = |n: usize| {
        (0..n)
            .map(|i| op_put(&format!("k{i}"), "v"))
            .collect::<Vec<_>>()
    };
    assert!(txn(
        &mut s,
        TxnRequest {
            success: ops(3),
            ..Default::default()
        }
    )
    .0
    .is_ok());
    assert_eq!(
        txn(
            &mut s,
            TxnRequest {
                success: ops(4),
                ..Default::default()
            }
        )
        .0,
        Err(KvError::TooManyOps)
    );
    assert_eq!(
        txn(
            &mut s,
            TxnRequest {
                failure: ops(4),
                ..Default::default()
            }
        )
        .0,
        Err(KvError::TooManyOps)
    );
    let cmps = vec![cmp("a", CompareTarget::Version(0), CompareResult::Equal); 4];
    assert_eq!(
        txn(
            &mut s,
            TxnRequest {
                compare: cmps,
                ..Default::default()
            }
        )
        .0,
        Err(KvError::TooManyOps)
    );
    let mut default = KvStore::new();
    assert!(txn(
        &mut default,
        TxnRequest {
            success: ops(128),
            ..Default::default()
        }
    )
    .0
    .is_ok());
    assert_eq!(
        txn(
            &mut default,
            TxnRequest {
                success: ops(129),
                ..Default::default()
            }
        )
        .0,
        Err(KvError::TooManyOps)
    );
}

#[test]
fn a_txn_that_fails_validation_writes_nothing() {
    let mut s = KvStore::new();
    put(&mut s, "a", "1"); // 2
    let t = TxnRequest {
        success: vec![
            op_put("b", "1"),
            RequestOp::Put(PutRequest {
                lease: 99,
                ..PutRequest::new("c", "1")
            }),
        ],
        ..Default::default()
    };
    assert_eq!(txn(&mut s, t).0, Err(KvError::LeaseNotFound));
    let t = TxnRequest {
        success: vec![
            op_put("b", "1"),
            RequestOp::Range(RangeRequest {
                revision: 50,
                ..RangeRequest::key("a")
            }),
        ],
        ..Default::default()
    };
    assert_eq!(txn(&mut s, t).0, Err(KvError::FutureRevision));
    let t = TxnRequest {
        success: vec![
            op_put("b", "1"),
            RequestOp::Put(PutRequest {
                ignore_value: true,
                ..PutRequest::new("nope", "")
            }),
        ],
        ..Default::default()
    };
    assert_eq!(txn(&mut s, t).0, Err(KvError::KeyNotFound));
    assert_eq!(s.revision(), 2);
    assert_eq!(get(&s, "b"), None);
}

// ---- leases ----------------------------------------------------------------

#[test]
fn lease_grant_picks_ids_and_refuses_duplicates() {
    let mut s = KvStore::new();
    assert_eq!(grant(&mut s, 0, 10), 1);
    assert_eq!(grant(&mut s, 2, 10), 2);
    assert_eq!(grant(&mut s, 0, 10), 3); // 2 is taken
    assert_eq!(
        s.apply(&Command::LeaseGrant { id: 2, ttl: 5 }).0,
        Err(KvError::LeaseExists)
    );
    assert_eq!(
        s.apply(&Command::LeaseGrant {
            id: 9,
            ttl: MAX_LEASE_TTL + 1
        })
        .0,
        Err(KvError::LeaseTtlTooLarge)
    );
    assert_eq!(s.leases(), vec![1, 2, 3]);
    assert_eq!(s.revision(), 1, "grants do not move the revision");
    assert_eq!(s.lease_time_to_live(3, false), Ok((10, vec![])));
    assert_eq!(s.lease_time_to_live(4, false), Err(KvError::LeaseNotFound));
}

#[test]
fn keys_attach_move_and_detach() {
    let mut s = KvStore::new();
    let l1 = grant(&mut s, 0, 10);
    let l2 = grant(&mut s, 0, 10);
    assert_eq!(put_lease(&mut s, "a", "v", 77), Err(KvError::LeaseNotFound));
    put_lease(&mut s, "a", "v", l1).unwrap();
    put_lease(&mut s, "b", "v", l1).unwrap();
    assert_eq!(
        s.lease_time_to_live(l1, true).unwrap().1,
        vec![b"a".to_vec(), b"b".to_vec()]
    );
    put_lease(&mut s, "a", "v2", l2).unwrap(); // moves a to l2
    assert_eq!(
        s.lease_time_to_live(l1, true).unwrap().1,
        vec![b"b".to_vec()]
    );
    assert_eq!(
        s.lease_time_to_live(l2, true).unwrap().1,
        vec![b"a".to_vec()]
    );
    // ignore_lease keeps it
    s.apply(&Command::Put(PutRequest {
        key: b"a".to_vec(),
        value: b"v3".to_vec(),
        ignore_lease: true,
        ..Default::default()
    }))
    .0
    .unwrap();
    assert_eq!(get(&s, "a").unwrap().lease, l2);
    put(&mut s, "a", "v4"); // lease 0 detaches
    assert!(s.lease_time_to_live(l2, true).unwrap().1.is_empty());
    s.apply(&Command::DeleteRange(DeleteRangeRequest::key("b")))
        .0
        .unwrap();
    assert!(s.lease_time_to_live(l1, true).unwrap().1.is_empty());
}

#[test]
fn revoke_deletes_the_keys_in_one_revision() {
    let mut s = KvStore::new();
    let l = grant(&mut s, 0, 10);
    put_lease(&mut s, "b", "1", l).unwrap(); // 2
    put_lease(&mut s, "a", "1", l).unwrap(); // 3
    put(&mut s, "c", "1"); // 4
    let (r, ev) = s.apply(&Command::LeaseRevoke { id: l });
    assert_eq!(r.unwrap(), Response::LeaseRevoke { revision: 5 });
    assert_eq!(
        ev.iter()
            .map(|e| (e.kind, e.kv.key.clone(), e.kv.mod_revision))
            .collect::<Vec<_>>(),
        vec![
            (EventKind::Delete, b"a".to_vec(), 5),
            (EventKind::Delete, b"b".to_vec(), 5)
        ]
    );
    assert_eq!((get(&s, "a"), get(&s, "b")), (None, None));
    assert!(get(&s, "c").is_some());
    assert!(s.leases().is_empty());
    assert_eq!(
        s.apply(&Command::LeaseRevoke { id: l }).0,
        Err(KvError::LeaseNotFound)
    );
    // a lease with no keys: no revision
    let l = grant(&mut s, 0, 10);
    assert_eq!(
        s.apply(&Command::LeaseRevoke { id: l }).0.unwrap(),
        Response::LeaseRevoke { revision: 5 }
    );
}

// ---- compaction --------------------------------------------------------------

#[test]
fn compaction_keeps_the_state_at_its_revision() {
    let mut s = KvStore::new();
    put(&mut s, "a", "1"); // 2
    put(&mut s, "a", "2"); // 3
    put(&mut s, "b", "1"); // 4
    s.apply(&Command::DeleteRange(DeleteRangeRequest::key("b")))
        .0
        .unwrap(); // 5
    put(&mut s, "a", "3"); // 6
    assert_eq!(
        s.apply(&Command::Compact { revision: 5 }).0.unwrap(),
        Response::Compact { revision: 6 }
    );
    assert_eq!(s.compact_revision(), 5);
    let at = |s: &KvStore, rev| {
        s.range(&RangeRequest {
            revision: rev,
            range_end: vec![0],
            ..RangeRequest::key("a")
        })
    };
    assert_eq!(at(&s, 4), Err(KvError::Compacted));
    let r5 = at(&s, 5).unwrap();
    assert_eq!(r5.kvs.len(), 1);
    assert_eq!(
        (r5.kvs[0].value.as_slice(), r5.kvs[0].version),
        (&b"2"[..], 2)
    );
    assert_eq!(at(&s, 6).unwrap().kvs[0].value, b"3");
    assert_eq!(
        get(&s, "a").unwrap().version,
        3,
        "versions survive compaction"
    );
    assert_eq!(
        s.apply(&Command::Compact { revision: 5 }).0,
        Err(KvError::Compacted)
    );
    assert_eq!(
        s.apply(&Command::Compact { revision: 4 }).0,
        Err(KvError::Compacted)
    );
    assert_eq!(
        s.apply(&Command::Compact { revision: 7 }).0,
        Err(KvError::FutureRevision)
    );
    assert_eq!(s.revision(), 6);
}

#[test]
fn compaction_drops_old_revisions_from_the_snapshot() {
    let mut s = KvStore::new();
    for i in 0..50 {
        put(&mut s, "k", &i.to_string());
    }
    let before = s.snapshot().len();
    s.apply(&Command::Compact {
        revision: s.revision(),
    })
    .0
    .unwrap();
    let after = s.snapshot().len();
    assert!(after * 10 < before, "{after} vs {before}");
    assert_eq!(get(&s, "k").unwrap().version, 50);
}

// ---- watch catch-up ----------------------------------------------------------

#[test]
fn events_since_filters_by_range_and_revision() {
    let mut s = KvStore::new();
    put(&mut s, "a", "1"); // 2
    put(&mut s, "b", "1"); // 3
    put(&mut s, "a", "2"); // 4
    s.apply(&Command::DeleteRange(DeleteRangeRequest::key("a")))
        .0
        .unwrap(); // 5
    let ev = s.events_since(3, b"a", b"", 100).unwrap();
    assert_eq!(
        ev.iter()
            .map(|e| (e.kind, e.kv.mod_revision))
            .collect::<Vec<_>>(),
        vec![(EventKind::Put, 4), (EventKind::Delete, 5)]
    );
    assert_eq!(ev[0].prev_kv.as_ref().unwrap().value, b"1");
    assert_eq!(ev[1].prev_kv.as_ref().unwrap().value, b"2");
    let all = s.events_since(1, b"\0", b"\0", 100).unwrap();
    assert_eq!(
        all.iter().map(|e| e.kv.mod_revision).collect::<Vec<_>>(),
        vec![2, 3, 4, 5]
    );
    assert_eq!(s.events_since(1, b"\0", b"\0", 2).unwrap().len(), 2);
    s.apply(&Command::Compact { revision: 3 }).0.unwrap();
    assert_eq!(s.events_since(2, b"a", b"", 10), Err(KvError::Compacted));
    // From the compact revision itself, as etcd: its writes are still there.
    let at = s.events_since(3, b"\0", b"\0", 10).unwrap();
    assert_eq!(
        at.iter().map(|e| e.kv.mod_revision).collect::<Vec<_>>(),
        vec![3, 4, 5]
    );
    assert!(
        at[0].prev_kv.is_none(),
        "b's first version has no previous one"
    );
    assert_eq!(s.events_since(4, b"a", b"", 10).unwrap().len(), 2);
}

#[test]
fn events_since_never_splits_a_revision() {
    let mut s = KvStore::new();
    let t = TxnRequest {
        success: (0..5)
            .map(|i| RequestOp::Put(PutRequest::new(format!("k{i}"), "v")))
            .collect(),
        ..Default::default()
    };
    s.apply(&Command::Txn(t)).0.unwrap(); // 2, five events
    put(&mut s, "z", "v"); // 3
    let ev = s.events_since(1, b"\0", b"\0", 2).unwrap();
    assert_eq!(ev.len(), 5);
    assert!(ev.iter().all(|e| e.kv.mod_revision == 2));
}

// ---- snapshots, hashes, determinism --------------------------------------------

fn busy_store() -> KvStore {
    let mut s = KvStore::new();
    let l = grant(&mut s, 0, 30);
    for i in 0..20 {
        put(&mut s, &format!("k{}", i % 7), &format!("v{i}"));
    }
    put_lease(&mut s, "leased", "x", l).unwrap();
    s.apply(&Command::DeleteRange(DeleteRangeRequest {
        key: b"k2".to_vec(),
        range_end: b"k4".to_vec(),
        prev_kv: false,
    }))
    .0
    .unwrap();
    s.apply(&Command::Compact { revision: 10 }).0.unwrap();
    put(&mut s, "k2", "again");
    s.apply(&Command::LeaseCheckpoint {
        id: l,
        remaining_ttl: 12,
    })
    .0
    .unwrap();
    s
}

#[test]
fn snapshot_round_trip_keeps_hash_and_behaviour() {
    let s = busy_store();
    let bytes = s.snapshot();
    let mut r = KvStore::restore(&bytes).unwrap();
    assert_eq!(r.snapshot(), bytes);
    assert_eq!(r.hash(), s.hash());
    assert_eq!(r.hash_kv(0), s.hash_kv(0));
    assert_eq!(r.revision(), s.revision());
    assert_eq!(r.compact_revision(), 10);
    assert_eq!(r.lease(1).unwrap().remaining_ttl, 12);
    assert_eq!(
        r.lease_time_to_live(1, true).unwrap().1,
        vec![b"leased".to_vec()]
    );
    let mut s2 = s.clone();
    for cmd in [
        Command::LeaseRevoke { id: 1 },
        Command::Put(PutRequest::new("k1", "z")),
        Command::Compact { revision: 12 },
    ] {
        assert_eq!(r.apply(&cmd), s2.apply(&cmd));
    }
    assert_eq!(r.hash(), s2.hash());
}

#[test]
fn corrupted_snapshots_give_typed_errors() {
    let bytes = busy_store().snapshot();
    assert!(matches!(KvStore::restore(&[]), Err(KvError::Corrupt(_))));
    assert!(matches!(
        KvStore::restore(&bytes[..bytes.len() - 1]),
        Err(KvError::Corrupt(_))
    ));
    for i in (0..bytes.len()).step_by(7) {
        let mut b = bytes.clone();
        b[i] ^= 0x5a;
        assert!(
            matches!(KvStore::restore(&b), Err(KvError::Corrupt(_))),
            "flip at {i}"
        );
    }
}

#[test]
fn same_commands_same_bytes_and_hash() {
    let (a, b) = (busy_store(), busy_store());
    assert_eq!(a.snapshot(), b.snapshot());
    assert_eq!(a.hash(), b.hash());
    let mut c = busy_store();
    put(&mut c, "k0", "different");
    assert_ne!(a.hash(), c.hash());
    // hash_kv at an old revision ignores later writes
    assert_eq!(a.hash_kv(12), c.hash_kv(12));
    assert_ne!(a.hash_kv(0), c.hash_kv(0));
    assert_eq!(a.hash_kv(5), Err(KvError::Compacted));
    assert_eq!(a.hash_kv(a.revision() + 1), Err(KvError::FutureRevision));
}

// ---- lessor -----------------------------------------------------------------------

fn lessor() -> Lessor {
    Lessor::new(LessorConfig {
        ticks_per_second: 10,
        max_expired_per_call: 2,
        retry_ticks: 5,
    })
}

#[test]
fn lessor_expires_only_as_primary_and_in_deadline_order() {
    let mut l = lessor();
    l.grant(1, 3, 0); // deadline 30
    l.grant(2, 1, 0); // deadline 10
    l.grant(3, 2, 0); // deadline 20
    assert!(l.expired(100).is_empty(), "followers never expire leases");
    l.promote(0);
    assert!(l.expired(9).is_empty());
    assert_eq!(l.expired(10), vec![2]);
    assert!(
        l.expired(14).is_empty(),
        "reported once, then retried after retry_ticks"
    );
    assert_eq!(l.expired(20), vec![2, 3]); // 2 retried at 15, 3 due at 20
    l.revoke(2);
    l.revoke(3);
    assert_eq!(l.expired(40), vec![1]);
}

#[test]
fn lessor_bounds_each_batch() {
    let mut l = lessor();
    for id in 1..=5 {
        l.grant(id, 1, 0);
    }
    l.promote(0);
    assert_eq!(l.expired(10), vec![1, 2]);
    assert_eq!(l.expired(10), vec![3, 4]);
    assert_eq!(l.expired(10), vec![5]);
}

#[test]
fn renew_extends_and_promotion_restarts_deadlines() {
    let mut l = lessor();
    l.grant(7, 5, 0); // 50
    assert_eq!(l.renew(7, 10), Err(KvError::NotPrimary));
    l.promote(100); // new leader at tick 100: deadline 150
    assert_eq!(l.remaining_ttl(7, 100), Some(5));
    assert_eq!(l.remaining_ttl(7, 141), Some(1)); // 9 ticks left rounds up
    assert_eq!(l.renew(7, 140), Ok(5)); // deadline 190
    assert!(l.expired(189).is_empty());
    assert_eq!(l.expired(190), vec![7]);
    assert_eq!(l.renew(8, 0), Err(KvError::LeaseNotFound));
    // a checkpointed remaining TTL is honoured on promotion
    l.checkpoint(7, 2);
    l.demote();
    l.promote(300);
    assert_eq!(l.remaining_ttl(7, 300), Some(2));
}

#[test]
fn lessor_rebuilds_from_a_store() {
    let s = busy_store();
    let mut l = Lessor::from_store(LessorConfig::default(), &s, 0);
    l.promote(0);
    assert_eq!(
        l.remaining_ttl(1, 0),
        Some(12),
        "checkpointed TTL survives the snapshot"
    );
    assert_eq!(l.len(), 1);
}

#[test]
fn hash_tracks_every_part_of_the_state() {
    let base = busy_store();
    let h = base.hash();
    let changes = [
        Command::LeaseCheckpoint {
            id: 1,
            remaining_ttl: 11,
        },
        Command::LeaseGrant { id: 0, ttl: 5 },
        Command::Compact { revision: 12 },
        Command::Put(PutRequest::new("k1", "new")),
    ];
    for c in changes {
        let mut s = base.clone();
        s.apply(&c).0.unwrap();
        assert_ne!(s.hash(), h, "{c:?} not reflected in the hash");
        // the digest is kept up to date incrementally: a rebuilt store agrees
        assert_eq!(
            KvStore::restore(&s.snapshot()).unwrap().hash(),
            s.hash(),
            "after {c:?}"
        );
    }
}

#[test]
fn txn_nesting_depth_is_bounded() {
    let mut s = KvStore::with_config(KvConfig {
        max_txn_depth: 3,
        ..Default::default()
    });
    let nest = |depth: usize| {
        let mut t = TxnRequest {
            success: vec![op_put("leaf", "v")],
            ..Default::default()
        };
        for _ in 1..depth {
            t = TxnRequest {
                success: vec![RequestOp::Txn(t)],
                ..Default::default()
            };
        }
        t
    };
    assert!(txn(&mut s, nest(3)).0.is_ok());
    assert_eq!(txn(&mut s, nest(4)).0, Err(KvError::TooManyOps));
    assert_eq!(get(&s, "leaf").unwrap().version, 1);
}

#[test]
fn an_expired_lease_cannot_be_renewed() {
    let mut l = lessor();
    l.grant(1, 1, 0); // deadline 10
    l.grant(2, 1, 0);
    l.promote(0);
    assert_eq!(
        l.renew(1, 10),
        Err(KvError::LeaseNotFound),
        "past its deadline"
    );
    assert_eq!(l.expired(10), vec![1, 2]);
    // reported expired: pushed ahead for a retry, but still not renewable
    assert_eq!(l.renew(2, 11), Err(KvError::LeaseNotFound));
    // a new leader starts every lease afresh
    l.demote();
    l.promote(20);
    assert_eq!(l.renew(2, 21), Ok(1));
}
