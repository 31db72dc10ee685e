//! The same command sequences through `KvStore` on the in-memory engine and
//! on redb give the same responses, events, hashes and reads at past
//! revisions; and what was committed reads back the same after a reopen.

use proptest::prelude::*;
use synod_kv::*;
use synod_store::{commit, open, verify, StoreConfig};

const KEYS: &[&str] = &["a", "ab", "abc", "b", "b\u{0}", "c", "d", "zz"];

fn key() -> impl Strategy<Value = Vec<u8>> {
    prop::sample::select(KEYS).prop_map(|k| k.as_bytes().to_vec())
}

fn range_end() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => Just(Vec::new()),
        1 => Just(vec![0]),
        2 => key(),
    ]
}

fn put() -> impl Strategy<Value = PutRequest> {
    (key(), 0u8..4, 0i64..4, any::<bool>()).prop_map(|(k, v, lease, prev_kv)| PutRequest {
        key: k,
        value: vec![b'v', v],
        lease,
        prev_kv,
        ..Default::default()
    })
}

fn delete() -> impl Strategy<Value = DeleteRangeRequest> {
    (key(), range_end(), any::<bool>()).prop_map(|(k, e, prev_kv)| DeleteRangeRequest {
        key: k,
        range_end: e,
        prev_kv,
    })
}

fn op() -> impl Strategy<Value = RequestOp> {
    prop_oneof![
        put().prop_map(RequestOp::Put),
        delete().prop_map(RequestOp::DeleteRange),
        (key(), range_end()).prop_map(|(k, e)| RequestOp::Range(RangeRequest {
            key: k,
            range_end: e,
            ..Default::default()
        })),
    ]
}

fn txn() -> impl Strategy<Value = TxnRequest> {
    (
        key(),
        0u8..4,
        0i64..3,
        prop::collection::vec(op(), 0..3),
        prop::collection::vec(op(), 0..3),
    )
        .prop_map(|(k, v, ver, success, failure)| TxnRequest {
            compare: vec![
                Compare {
                    key: k.clone(),
                    range_end: vec![],
                    target: CompareTarget::Value(vec![b'v', v]),
                    result: CompareResult::NotEqual,
                },
                Compare {
                    key: k,
                    range_end: vec![],
                    target: CompareTarget::Version(ver),
                    result: CompareResult::Greater,
                },
            ],
            success,
            failure,
        })
}

#[derive(Clone, Debug)]
enum Step {
    Cmd(Command),
    /// Compact at `rev - back` (clamped).
    CompactBack(i64),
    /// Read `key..end` at `rev - back` (clamped to the compaction).
    ReadBack(Vec<u8>, Vec<u8>, i64),
    /// Watch catch-up from `rev - back`.
    EventsBack(Vec<u8>, Vec<u8>, i64),
    /// Commit the disk store (durable or not).
    Commit(bool),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        8 => put().prop_map(|p| Step::Cmd(Command::Put(p))),
        3 => delete().prop_map(|d| Step::Cmd(Command::DeleteRange(d))),
        3 => txn().prop_map(|t| Step::Cmd(Command::Txn(t))),
        1 => (0i64..4).prop_map(Step::CompactBack),
        2 => (0i64..4, 1i64..6).prop_map(|(id, ttl)| Step::Cmd(Command::LeaseGrant { id, ttl })),
        1 => (1i64..4).prop_map(|id| Step::Cmd(Command::LeaseRevoke { id })),
        1 => (1i64..4, 0i64..5).prop_map(|(id, remaining_ttl)| {
            Step::Cmd(Command::LeaseCheckpoint { id, remaining_ttl })
        }),
        3 => (key(), range_end(), 0i64..8).prop_map(|(k, e, b)| Step::ReadBack(k, e, b)),
        2 => (key(), range_end(), 0i64..8).prop_map(|(k, e, b)| Step::EventsBack(k, e, b)),
        2 => any::<bool>().prop_map(Step::Commit),
    ]
}

fn store_config() -> StoreConfig {
    StoreConfig {
        cache_bytes: 1 << 20,
        verify_on_open: true,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn redb_engine_runs_the_same_state_machine(steps in prop::collection::vec(step(), 1..120)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.redb");
        let mut mem = KvStore::new();
        let mut disk = open(&path, &store_config(), KvConfig::default()).unwrap().kv;
        let mut applied = 0u64;
        let mut durable = (0u64, mem.hash(), mem.snapshot());
        for s in steps {
            match s {
                Step::Cmd(cmd) => {
                    applied += 1;
                    prop_assert_eq!(disk.apply(&cmd), mem.apply(&cmd), "{:?}", cmd);
                }
                Step::CompactBack(back) => {
                    applied += 1;
                    let cmd = Command::Compact { revision: (mem.revision() - back).max(1) };
                    prop_assert_eq!(disk.apply(&cmd), mem.apply(&cmd));
                }
                Step::ReadBack(key, range_end, back) => {
                    let revision = (mem.revision() - back).max(mem.compact_revision()).max(1);
                    let req = RangeRequest { key, range_end, revision, ..Default::default() };
                    prop_assert_eq!(disk.range(&req), mem.range(&req));
                    let limited = RangeRequest { limit: 2, ..req.clone() };
                    prop_assert_eq!(disk.range(&limited), mem.range(&limited));
                    let counted = RangeRequest { count_only: true, ..req };
                    prop_assert_eq!(disk.range(&counted), mem.range(&counted));
                }
                Step::EventsBack(key, range_end, back) => {
                    let from = mem.revision() - back;
                    prop_assert_eq!(
                        disk.events_since(from, &key, &range_end, 4),
                        mem.events_since(from, &key, &range_end, 4)
                    );
                    prop_assert_eq!(disk.hash_kv(from), mem.hash_kv(from));
                }
                Step::Commit(d) => {
                    commit(&mut disk, applied, b"extra", d).unwrap();
                    if d {
                        durable = (applied, mem.hash(), mem.snapshot());
                    }
                }
            }
            prop_assert_eq!(disk.hash(), mem.hash());
            prop_assert_eq!(disk.revision(), mem.revision());
        }
        mem.check_invariants();
        verify(&disk).unwrap();
        prop_assert_eq!(disk.snapshot(), mem.snapshot());

        // Dropped without a commit: a reopen finds the last commit, which
        // (the process did not crash) is the last one, durable or not... so
        // commit durably, reopen and compare everything.
        commit(&mut disk, applied, b"extra", true).unwrap();
        drop(disk);
        let again = open(&path, &store_config(), KvConfig::default()).unwrap();
        prop_assert_eq!(again.applied, applied);
        prop_assert_eq!(again.extra.as_slice(), b"extra".as_slice());
        prop_assert_eq!(again.kv.hash(), mem.hash());
        prop_assert_eq!(again.kv.snapshot(), mem.snapshot());
        verify(&again.kv).unwrap();
        let _ = durable;
    }
}
