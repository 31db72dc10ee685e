//! etcd v3 semantics, one rule per test, expected numbers worked out by hand
//! from etcd's documentation (api_guarantees, rpc.proto, kv.proto).

use synod_kv::*;

fn put(s: &mut KvStore, k: &str, v: &str) -> Response {
    let (r, _) = s.apply(&Command::Put(PutRequest::new(k, v)));
    r.expect("put")
}

fn get(s: &KvStore, k: &str) -> Option<KeyValue> {
    let r = s.range(&RangeRequest::key(k)).expect("range");
    assert!(r.kvs.len() <= 1);
    r.kvs.into_iter().next()
}

fn get_at(s: &KvStore, k: &str, rev: i64) -> Result<Option<KeyValue>, KvError> {
    let r = s.range(&RangeRequest {
        revision: rev,
        ..RangeRequest::key(k)
    })?;
    Ok(r.kvs.into_iter().next())
}

fn del(s: &mut KvStore, k: &str, end: &str) -> (Result<Response, KvError>, Vec<Event>) {
    s.apply(&Command::DeleteRange(DeleteRangeRequest {
        key: k.into(),
        range_end: end.into(),
        prev_kv: true,
    }))
}

fn keys(r: &RangeResponse) -> Vec<String> {
    r.kvs
        .iter()
        .map(|kv| String::from_utf8(kv.key.clone()).unwrap())
        .collect()
}

#[test]
fn a_fresh_store_is_at_revision_one_and_each_put_adds_one() {
    let mut s = KvStore::new();
    assert_eq!(s.revision(), 1);
    assert_eq!(put(&mut s, "a", "1").revision(), 2);
    assert_eq!(put(&mut s, "b", "1").revision(), 3);
    assert_eq!(put(&mut s, "a", "2").revision(), 4);
    assert_eq!(s.revision(), 4);
}

#[test]
fn version_create_and_mod_revision_follow_the_key() {
    let mut s = KvStore::new();
    put(&mut s, "k", "v1"); // rev 2
    put(&mut s, "x", "y"); // rev 3
    put(&mut s, "k", "v2"); // rev 4
    let kv = get(&s, "k").unwrap();
    assert_eq!((kv.create_revision, kv.mod_revision, kv.version), (2, 4, 2));
    assert_eq!(kv.value, b"v2");
    del(&mut s, "k", "").0.unwrap(); // rev 5
    assert_eq!(get(&s, "k"), None);
    put(&mut s, "k", "v3"); // rev 6: a new generation
    let kv = get(&s, "k").unwrap();
    assert_eq!((kv.create_revision, kv.mod_revision, kv.version), (6, 6, 1));
}

#[test]
fn reads_at_past_revisions_see_the_old_value_and_tombstones() {
    let mut s = KvStore::new();
    put(&mut s, "k", "v1"); // 2
    put(&mut s, "k", "v2"); // 3
    del(&mut s, "k", "").0.unwrap(); // 4
    assert_eq!(get_at(&s, "k", 1).unwrap(), None);
    assert_eq!(get_at(&s, "k", 2).unwrap().unwrap().value, b"v1");
    let kv3 = get_at(&s, "k", 3).unwrap().unwrap();
    assert_eq!((kv3.value.as_slice(), kv3.version), (&b"v2"[..], 2));
    assert_eq!(get_at(&s, "k", 4).unwrap(), None);
    assert_eq!(get_at(&s, "k", 5), Err(KvError::FutureRevision));
    // the header is the current revision, not the one read at
    let r = s
        .range(&RangeRequest {
            revision: 2,
            ..RangeRequest::key("k")
        })
        .unwrap();
    assert_eq!(r.header_revision, 4);
}

#[test]
fn delete_of_nothing_does_not_bump_the_revision() {
    let mut s = KvStore::new();
    put(&mut s, "a", "1");
    let (r, ev) = del(&mut s, "zzz", "");
    match r.unwrap() {
        Response::DeleteRange {
            revision,
            deleted,
            prev_kvs,
        } => {
            assert_eq!((revision, deleted), (2, 0));
            assert!(prev_kvs.is_empty());
        }
        other => panic!("{other:?}"),
    }
    assert!(ev.is_empty());
    assert_eq!(s.revision(), 2);
}

#[test]
fn delete_range_takes_one_revision_and_returns_prev_kvs() {
    let mut s = KvStore::new();
    for k in ["a", "b", "c", "d"] {
        put(&mut s, k, k); // 2..=5
    }
    let (r, ev) = del(&mut s, "b", "d");
    match r.unwrap() {
        Response::DeleteRange {
            revision,
            deleted,
            prev_kvs,
        } => {
            assert_eq!((revision, deleted), (6, 2));
            assert_eq!(
                prev_kvs.iter().map(|kv| kv.key.clone()).collect::<Vec<_>>(),
                vec![b"b".to_vec(), b"c".to_vec()]
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(ev.len(), 2);
    assert!(ev
        .iter()
        .all(|e| e.kind == EventKind::Delete && e.kv.mod_revision == 6));
    assert_eq!(ev[0].prev_kv.as_ref().unwrap().value, b"b");
    assert_eq!(
        keys(
            &s.range(&RangeRequest {
                range_end: vec![0],
                ..RangeRequest::key("a")
            })
            .unwrap()
        ),
        ["a", "d"]
    );
}

#[test]
fn range_end_rules_single_from_and_prefix() {
    let mut s = KvStore::new();
    for k in ["a", "ab", "abc", "b", "b\u{7f}", "c"] {
        put(&mut s, k, "v");
    }
    let r = |key: &str, end: &[u8]| {
        keys(
            &s.range(&RangeRequest {
                key: key.into(),
                range_end: end.to_vec(),
                ..Default::default()
            })
            .unwrap(),
        )
    };
    assert_eq!(r("ab", b""), ["ab"]);
    assert_eq!(r("ab", b"\0"), ["ab", "abc", "b", "b\u{7f}", "c"]);
    assert_eq!(r("\0", b"\0"), ["a", "ab", "abc", "b", "b\u{7f}", "c"]);
    assert_eq!(r("a", b"b"), ["a", "ab", "abc"]);
    assert_eq!(r("b", b"a"), Vec::<String>::new()); // end before key: empty
    assert_eq!(
        keys(&s.range(&RangeRequest::prefix("ab")).unwrap()),
        ["ab", "abc"]
    );
    assert_eq!(prefix_range_end(b"ab"), b"ac");
    assert_eq!(prefix_range_end(b"a\xff"), b"b");
    assert_eq!(prefix_range_end(b"\xff\xff"), b"\0");
}

#[test]
fn limit_sets_more_and_count_is_the_whole_range() {
    let mut s = KvStore::new();
    for k in ["a", "b", "c", "d", "e"] {
        put(&mut s, k, "v");
    }
    let all = RangeRequest {
        range_end: vec![0],
        ..RangeRequest::key("a")
    };
    let r = s
        .range(&RangeRequest {
            limit: 2,
            ..all.clone()
        })
        .unwrap();
    assert_eq!(
        (keys(&r), r.more, r.count),
        (vec!["a".to_string(), "b".into()], true, 5)
    );
    let r = s
        .range(&RangeRequest {
            limit: 5,
            ..all.clone()
        })
        .unwrap();
    assert_eq!((r.kvs.len(), r.more, r.count), (5, false, 5));
    let r = s
        .range(&RangeRequest {
            count_only: true,
            ..all.clone()
        })
        .unwrap();
    assert_eq!((r.kvs.len(), r.more, r.count), (0, false, 5));
    let r = s
        .range(&RangeRequest {
            keys_only: true,
            ..all
        })
        .unwrap();
    assert!(r
        .kvs
        .iter()
        .all(|kv| kv.value.is_empty() && !kv.key.is_empty()));
}

#[test]
fn sort_by_each_target_both_ways() {
    let mut s = KvStore::new();
    put(&mut s, "b", "3"); // 2
    put(&mut s, "a", "1"); // 3
    put(&mut s, "c", "2"); // 4
    put(&mut s, "a", "0"); // 5: a version 2
    let q = |t, o| {
        keys(
            &s.range(&RangeRequest {
                range_end: vec![0],
                sort_target: t,
                sort_order: o,
                ..RangeRequest::key("a")
            })
            .unwrap(),
        )
    };
    assert_eq!(q(SortTarget::Key, SortOrder::Descend), ["c", "b", "a"]);
    assert_eq!(q(SortTarget::Create, SortOrder::Ascend), ["b", "a", "c"]);
    assert_eq!(q(SortTarget::Create, SortOrder::None), ["b", "a", "c"]); // non-key target defaults to ascend
    assert_eq!(q(SortTarget::Mod, SortOrder::Descend), ["a", "c", "b"]);
    assert_eq!(q(SortTarget::Value, SortOrder::Ascend), ["a", "c", "b"]);
    assert_eq!(q(SortTarget::Version, SortOrder::Descend), ["a", "b", "c"]); // ties keep key order
                                                                             // sort before limit
    let r = s
        .range(&RangeRequest {
            range_end: vec![0],
            sort_target: SortTarget::Mod,
            sort_order: SortOrder::Descend,
            limit: 1,
            ..RangeRequest::key("a")
        })
        .unwrap();
    assert_eq!((keys(&r), r.more), (vec!["a".to_string()], true));
}

#[test]
fn min_and_max_revision_filters_do_not_change_count() {
    let mut s = KvStore::new();
    put(&mut s, "a", "v"); // 2
    put(&mut s, "b", "v"); // 3
    put(&mut s, "c", "v"); // 4
    put(&mut s, "a", "w"); // 5
    let all = RangeRequest {
        range_end: vec![0],
        ..RangeRequest::key("a")
    };
    let r = s
        .range(&RangeRequest {
            min_mod_revision: 4,
            ..all.clone()
        })
        .unwrap();
    assert_eq!((keys(&r), r.count), (vec!["a".to_string(), "c".into()], 3));
    let r = s
        .range(&RangeRequest {
            max_mod_revision: 3,
            ..all.clone()
        })
        .unwrap();
    assert_eq!(keys(&r), ["b"]);
    let r = s
        .range(&RangeRequest {
            min_create_revision: 3,
            max_create_revision: 3,
            ..all.clone()
        })
        .unwrap();
    assert_eq!(keys(&r), ["b"]);
    let r = s
        .range(&RangeRequest {
            max_create_revision: 2,
            limit: 1,
            ..all
        })
        .unwrap();
    assert_eq!((keys(&r), r.more), (vec!["a".to_string()], false));
}

#[test]
fn put_prev_kv_and_events() {
    let mut s = KvStore::new();
    let (r, ev) = s.apply(&Command::Put(PutRequest {
        prev_kv: true,
        ..PutRequest::new("k", "1")
    }));
    assert_eq!(
        r.unwrap(),
        Response::Put {
            revision: 2,
            prev_kv: None
        }
    );
    assert_eq!(ev.len(), 1);
    assert_eq!((ev[0].kind, ev[0].prev_kv.clone()), (EventKind::Put, None));
    let (r, ev) = s.apply(&Command::Put(PutRequest {
        prev_kv: true,
        ..PutRequest::new("k", "2")
    }));
    let prev = KeyValue {
        key: b"k".to_vec(),
        create_revision: 2,
        mod_revision: 2,
        version: 1,
        value: b"1".to_vec(),
        lease: 0,
    };
    assert_eq!(
        r.unwrap(),
        Response::Put {
            revision: 3,
            prev_kv: Some(prev.clone())
        }
    );
    assert_eq!(ev[0].prev_kv, Some(prev));
    assert_eq!(ev[0].kv.version, 2);
}

#[test]
fn ignore_value_and_ignore_lease() {
    let mut s = KvStore::new();
    let ig = |k: &str| PutRequest {
        key: k.into(),
        ignore_value: true,
        ..Default::default()
    };
    assert_eq!(s.apply(&Command::Put(ig("k"))).0, Err(KvError::KeyNotFound));
    assert_eq!(s.revision(), 1);
    put(&mut s, "k", "keep");
    let (r, _) = s.apply(&Command::Put(ig("k")));
    assert_eq!(r.unwrap().revision(), 3);
    let kv = get(&s, "k").unwrap();
    assert_eq!((kv.value.as_slice(), kv.version), (&b"keep"[..], 2));
    let bad = PutRequest {
        value: b"x".to_vec(),
        ..ig("k")
    };
    assert_eq!(s.apply(&Command::Put(bad)).0, Err(KvError::ValueProvided));
    let bad = PutRequest {
        key: b"k".to_vec(),
        ignore_lease: true,
        lease: 7,
        ..Default::default()
    };
    assert_eq!(s.apply(&Command::Put(bad)).0, Err(KvError::LeaseProvided));
    let missing = PutRequest {
        key: b"nope".to_vec(),
        ignore_lease: true,
        ..Default::default()
    };
    assert_eq!(s.apply(&Command::Put(missing)).0, Err(KvError::KeyNotFound));
    assert_eq!(s.revision(), 3);
}

#[test]
fn empty_keys_are_refused() {
    let mut s = KvStore::new();
    assert_eq!(
        s.apply(&Command::Put(PutRequest::new("", "v"))).0,
        Err(KvError::EmptyKey)
    );
    assert_eq!(
        s.apply(&Command::DeleteRange(DeleteRangeRequest::key("")))
            .0,
        Err(KvError::EmptyKey)
    );
    assert_eq!(s.range(&RangeRequest::key("")), Err(KvError::EmptyKey));
    assert_eq!(
        KvError::EmptyKey.to_string(),
        "etcdserver: key is not provided"
    );
    assert_eq!(KvError::EmptyKey.grpc_code(), "InvalidArgument");
    assert_eq!(
        KvError::Compacted.to_string(),
        "etcdserver: mvcc: required revision has been compacted"
    );
    assert_eq!(KvError::Compacted.grpc_code(), "OutOfRange");
    assert_eq!(KvError::LeaseNotFound.grpc_code(), "NotFound");
    assert_eq!(KvError::LeaseExists.grpc_code(), "FailedPrecondition");
}

#[test]
fn commands_responses_and_events_round_trip_through_postcard() {
    let cmd = Command::Txn(TxnRequest {
        compare: vec![Compare {
            key: b"k".to_vec(),
            range_end: vec![0],
            target: CompareTarget::Value(b"v".to_vec()),
            result: CompareResult::NotEqual,
        }],
        success: vec![
            RequestOp::Put(PutRequest {
                lease: 3,
                prev_kv: true,
                ..PutRequest::new("k", "v")
            }),
            RequestOp::Range(RangeRequest {
                sort_order: SortOrder::Descend,
                sort_target: SortTarget::Mod,
                limit: 2,
                ..RangeRequest::prefix("k")
            }),
            RequestOp::Txn(TxnRequest {
                failure: vec![RequestOp::DeleteRange(DeleteRangeRequest::key("z"))],
                ..Default::default()
            }),
        ],
        failure: vec![],
    });
    let bytes = postcard::to_allocvec(&cmd).unwrap();
    assert_eq!(postcard::from_bytes::<Command>(&bytes).unwrap(), cmd);
    let mut s = KvStore::new();
    s.apply(&Command::LeaseGrant { id: 3, ttl: 5 }).0.unwrap();
    let (resp, events) = s.apply(&cmd);
    let resp = resp.unwrap();
    assert_eq!(
        postcard::from_bytes::<Response>(&postcard::to_allocvec(&resp).unwrap()).unwrap(),
        resp
    );
    assert_eq!(
        postcard::from_bytes::<Vec<Event>>(&postcard::to_allocvec(&events).unwrap()).unwrap(),
        events
    );
    let err = KvError::Corrupt("x".into());
    assert_eq!(
        postcard::from_bytes::<KvError>(&postcard::to_allocvec(&err).unwrap()).unwrap(),
        err
    );
}
