//! Writes at a revision drawn from the cluster's revision oracle
//! (`Command::At`): they take exactly that revision, skip the ones
//! between, and one not past the store's revision is refused and changes
//! nothing, whole or in chunks.

use synod_kv::*;

fn at(revision: i64, cmd: Command) -> Command {
    Command::At {
        revision,
        cmd: Box::new(cmd),
    }
}

fn put(k: &str, v: &str) -> Command {
    Command::Put(PutRequest::new(k, v))
}

fn get(s: &KvStore, k: &str, rev: i64) -> Option<KeyValue> {
    s.range(&RangeRequest {
        key: k.as_bytes().to_vec(),
        revision: rev,
        ..RangeRequest::default()
    })
    .expect("range")
    .kvs
    .into_iter()
    .next()
}

#[test]
fn a_write_takes_the_revision_it_names_and_reads_between_see_the_state_before() {
    let mut s = KvStore::new();
    s.apply(&put("a", "1")).0.expect("put");
    assert_eq!(s.revision(), 2);
    let (r, events) = s.apply(&at(10, put("a", "2")));
    let Response::Put { revision, .. } = r.expect("put at 10") else {
        panic!("not a put");
    };
    assert_eq!((revision, s.revision()), (10, 10));
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kv.mod_revision, 10);
    let kv = get(&s, "a", 0).expect("a");
    assert_eq!(
        (kv.mod_revision, kv.create_revision, kv.version),
        (10, 2, 2)
    );
    // Revisions 3..=9 belong to other ranges: reads there see revision 2's state.
    assert_eq!(get(&s, "a", 7).expect("a at 7").value, b"1");
    // A plain write after takes the next revision.
    s.apply(&put("b", "x")).0.expect("put");
    assert_eq!(s.revision(), 11);
    // A txn's writes all take the drawn revision, with sub-revisions.
    let txn = Command::Txn(TxnRequest {
        compare: Vec::new(),
        success: vec![
            RequestOp::Put(PutRequest::new("c", "1")),
            RequestOp::Put(PutRequest::new("d", "1")),
        ],
        failure: Vec::new(),
    });
    let (r, events) = s.apply(&at(40, txn));
    r.expect("txn");
    assert_eq!(s.revision(), 40);
    assert!(events.iter().all(|e| e.kv.mod_revision == 40), "{events:?}");
    // A txn that writes nothing leaves the revision.
    let read_only = Command::Txn(TxnRequest::default());
    s.apply(&at(50, read_only)).0.expect("empty txn");
    assert_eq!(s.revision(), 40);
}

#[test]
fn a_revision_not_past_the_stores_is_refused_and_changes_nothing() {
    let mut s = KvStore::new();
    s.apply(&at(5, put("a", "1"))).0.expect("put");
    let (hash, image) = (s.hash(), s.snapshot());
    for taken in [5, 4, 1, 0, -3] {
        let (r, events) = s.apply(&at(taken, put("a", "2")));
        assert_eq!(
            r,
            Err(KvError::RevisionTaken {
                revision: taken,
                current: 5
            })
        );
        assert!(events.is_empty());
        let mut budget = 3;
        let del = Command::DeleteRange(DeleteRangeRequest {
            key: b"a".to_vec(),
            range_end: b"b".to_vec(),
            prev_kv: false,
        });
        match s.apply_bounded(&at(taken, del), &mut budget) {
            Progress::Done(Err(KvError::RevisionTaken { .. }), ev) => assert!(ev.is_empty()),
            other => panic!("a stale delete went on: {other:?}"),
        }
        assert_eq!((s.hash(), s.snapshot()), (hash, image.clone()));
    }
    // Nested drawn revisions are not something a node proposes.
    let nested = at(9, at(8, put("a", "3")));
    assert_eq!(s.apply(&nested).0, Err(KvError::PermissionDenied));
    assert_eq!(s.hash(), hash);
}

#[test]
fn a_delete_in_chunks_at_a_drawn_revision_ends_where_one_apply_ends() {
    let load = || {
        let mut s = KvStore::new();
        for i in 0..50 {
            s.apply(&put(&format!("k{i:02}"), "v")).0.expect("put");
        }
        s
    };
    let del = at(
        100,
        Command::DeleteRange(DeleteRangeRequest {
            key: b"k".to_vec(),
            range_end: b"l".to_vec(),
            prev_kv: true,
        }),
    );
    let mut whole = load();
    let (want, want_events) = whole.apply(&del);
    assert_eq!(whole.revision(), 100);
    let mut s = load();
    let before = s.revision();
    let mut events = Vec::new();
    let mut budget = 7;
    let mut out = s.apply_bounded(&del, &mut budget);
    loop {
        match out {
            Progress::Done(r, ev) => {
                events.extend(ev);
                assert_eq!(r, want);
                break;
            }
            Progress::Pending => {
                assert_eq!(s.revision(), before, "nothing shows before the last chunk");
                budget = 7;
                out = s.resume(&mut budget);
            }
        }
    }
    assert_eq!(events, want_events);
    assert_eq!((s.hash(), s.snapshot()), (whole.hash(), whole.snapshot()));
}

#[test]
fn a_user_s_command_at_a_drawn_revision_is_still_checked() {
    let mut s = KvStore::new();
    let info = AuthInfo {
        user: "nobody".into(),
        revision: 1,
    };
    // Authentication off: a user's write applies, at the drawn revision.
    let cmd = at(7, Command::from_user(info, put("a", "1")));
    s.apply(&cmd).0.expect("put as a user");
    assert_eq!(s.revision(), 7);
    assert_eq!(get(&s, "a", 0).expect("a").mod_revision, 7);
}

#[test]
fn a_compaction_at_a_drawn_revision_may_pass_the_stores_own() {
    let mut s = KvStore::new();
    s.apply(&put("a", "1")).0.expect("put");
    assert_eq!(s.revision(), 2);
    // Other ranges took revisions 3..=9: compacting at 8 skips there.
    let (r, events) = s.apply(&at(10, Command::Compact { revision: 8 }));
    r.expect("compaction at 8");
    assert!(events.is_empty());
    assert_eq!((s.revision(), s.compact_revision()), (8, 8));
    assert_eq!(get(&s, "a", 8).expect("a at 8").value, b"1");
    let old = s.range(&RangeRequest {
        key: b"a".to_vec(),
        revision: 7,
        ..RangeRequest::default()
    });
    assert_eq!(old, Err(KvError::Compacted));
    // At or past the revision it applies at is the future; at or below the
    // compacted one, compacted; a plain compaction keeps etcd's rules.
    let (r, _) = s.apply(&at(12, Command::Compact { revision: 12 }));
    assert_eq!(r, Err(KvError::FutureRevision));
    let (r, _) = s.apply(&at(13, Command::Compact { revision: 8 }));
    assert_eq!(r, Err(KvError::Compacted));
    let (r, _) = s.apply(&Command::Compact { revision: 9 });
    assert_eq!(r, Err(KvError::FutureRevision));
    assert_eq!(s.revision(), 8);
    s.apply(&put("a", "2")).0.expect("put");
    assert_eq!(s.revision(), 9);
}
