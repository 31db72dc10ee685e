//! Ranges that split in a real cluster (`--experimental-range-max-keys`):
//! three members load keys through the etcd API until the keyspace is cut
//! into many ranges; every write is acknowledged (a request that meets a
//! split is routed again, never failed), every key reads back from every
//! member, `synod ranges`' call lists them, a watch follows its key into
//! the range it moved to, revisions are one sequence across ranges, a read
//! over every range answers whole at one revision (limits, orders, counts,
//! a past revision), and a member killed and restarted boots every range
//! from its own files.

mod common;

use std::time::{Duration, Instant};

use common::Cluster;
use synod_proto::etcdserverpb as pb;
use synod_proto::etcdserverpb::kv_client::KvClient;
use synod_proto::etcdserverpb::watch_client::WatchClient;
use tokio_stream::StreamExt;

const KEYS: usize = 200;
const MAX_KEYS: u64 = 20;

fn key(i: usize) -> Vec<u8> {
    format!("k{i:03}").into_bytes()
}

fn groups(cl: &Cluster, i: usize) -> usize {
    cl.running(i).shared().groups.len()
}

/// Reads every key through member `i` (linearizable) and checks its value.
async fn read_all(ep: &str, round: &str) {
    let mut kv = KvClient::connect(format!("http://{ep}")).await.unwrap();
    for i in 0..KEYS {
        let r = kv
            .range(pb::RangeRequest {
                key: key(i),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|e| panic!("{round}: reading key {i} through {ep}: {e}"))
            .into_inner();
        assert_eq!(r.kvs.len(), 1, "{round}: key {i} through {ep}");
        assert_eq!(r.kvs[0].value, format!("v{i}").into_bytes(), "{round}");
    }
}

/// Puts key `i` (value `v{i}`) and checks its revision passes `last`, the
/// revision of the put acknowledged before it; returns its revision.
async fn put_after(kv: &mut KvClient<tonic::transport::Channel>, i: usize, last: i64) -> i64 {
    let r = kv
        .put(pb::PutRequest {
            key: key(i),
            value: format!("v{i}").into_bytes(),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("put of key {i} failed: {e}"))
        .into_inner();
    let rev = r.header.unwrap().revision;
    assert!(
        rev > last,
        "put of key {i} took revision {rev} after {last}"
    );
    rev
}

/// `/metrics` of member `ep`, over plain HTTP/1.1.
async fn metrics(ep: &str) -> String {
    let ep = ep.to_owned();
    tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(&ep).unwrap();
        write!(
            s,
            "GET /metrics HTTP/1.1\r\nHost: {ep}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        text
    })
    .await
    .unwrap()
}

#[test]
fn ranges_split_under_load_and_every_key_stays_readable_and_watched() {
    let mut cl = Cluster::start_with(3, |c| c.range_max_keys = Some(MAX_KEYS));
    assert!(cl.wait_leader(Duration::from_secs(15)).is_some());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (ep0, ep1, ep2) = (cl.endpoint(0), cl.endpoint(1), cl.endpoint(2));
    rt.block_on(async {
        // A watch on a key that a split will move, created while one range
        // holds every key.
        let mut watch = WatchClient::connect(format!("http://{ep1}")).await.unwrap();
        let (tx, rx) = tokio::sync::mpsc::channel(8);
        let mut events = watch
            .watch(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
            .unwrap()
            .into_inner();
        let watched = KEYS * 3 / 4;
        tx.send(pb::WatchRequest {
            request_union: Some(pb::watch_request::RequestUnion::CreateRequest(
                pb::WatchCreateRequest {
                    key: key(watched),
                    ..Default::default()
                },
            )),
        })
        .await
        .unwrap();
        let created = events.next().await.unwrap().unwrap();
        assert!(created.created && !created.canceled, "{created:?}");

        // One put after another, so each revision must pass the last,
        // whichever range took it (the ranges draw from one sequence).
        let mut kv = KvClient::connect(format!("http://{ep0}")).await.unwrap();
        let mut last = 0;
        for i in 0..KEYS {
            last = put_after(&mut kv, i, last).await;
        }
        // The keyspace splits on every member.
        let t0 = Instant::now();
        let want = KEYS / MAX_KEYS as usize / 2;
        while !(0..3).all(|i| groups(&cl, i) >= want) {
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "ranges: {:?}, want {want} on each",
                (0..3).map(|i| groups(&cl, i)).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        eprintln!(
            "ranges per member: {:?}",
            (0..3).map(|i| groups(&cl, i)).collect::<Vec<_>>()
        );
        for ep in [&ep0, &ep1, &ep2] {
            read_all(ep, "after the splits").await;
        }
        // Through every member in turn, to keys of different ranges: still
        // one increasing sequence, and each key's mod revision is its put's.
        let mut clients = Vec::new();
        for ep in [&ep0, &ep1, &ep2] {
            clients.push(KvClient::connect(format!("http://{ep}")).await.unwrap());
        }
        for (n, i) in (0..KEYS).step_by(13).enumerate() {
            let c = &mut clients[n % 3];
            let rev = put_after(c, i, last).await;
            last = rev;
            let got = c
                .range(pb::RangeRequest {
                    key: key(i),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            assert_eq!(got.kvs[0].mod_revision, rev, "key {i}");
        }
        // `synod ranges`' call lists them: contiguous over the keyspace,
        // each on the three members with a leader, every key counted once.
        let mut rc =
            synod_proto::synodpb::ranges_client::RangesClient::connect(format!("http://{ep0}"))
                .await
                .unwrap();
        let list = rc
            .list(synod_proto::synodpb::ListRangesRequest {})
            .await
            .unwrap()
            .into_inner()
            .ranges;
        assert_eq!(list.len(), groups(&cl, 0));
        let mut next: Vec<u8> = Vec::new();
        for r in &list {
            assert_eq!(r.start, next, "{list:?}");
            assert_eq!(r.replicas.len(), 3, "{r:?}");
            assert!(!r.leader.is_empty(), "{r:?}");
            assert!(r.bytes > 0, "{r:?}");
            next = r.end.clone();
        }
        assert!(next.is_empty(), "the last range reaches the end");
        assert_eq!(list.iter().map(|r| r.keys).sum::<u64>(), KEYS as u64);
        // `/metrics` counts the ranges each member hosts (ranges only split,
        // so no fewer than were listed) and leads.
        let m = metrics(&ep0).await;
        let gauge = |name: &str| -> usize {
            m.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
                .unwrap_or_else(|| panic!("{name} not in:\n{m}"))
        };
        assert!(gauge("synod_ranges") >= list.len(), "{m}");
        assert!(gauge("synod_range_leaders") <= gauge("synod_ranges"), "{m}");
        // The watch saw its key's put once, and follows it into the range
        // it moved to.
        let ev = tokio::time::timeout(Duration::from_secs(5), events.next())
            .await
            .expect("the watched put")
            .unwrap()
            .unwrap();
        assert_eq!(ev.events.len(), 1, "{ev:?}");
        assert_eq!(ev.events[0].kv.as_ref().unwrap().key, key(watched));
        kv.put(pb::PutRequest {
            key: key(watched),
            value: b"again".to_vec(),
            ..Default::default()
        })
        .await
        .unwrap();
        let ev = tokio::time::timeout(Duration::from_secs(5), events.next())
            .await
            .expect("the put after the split")
            .unwrap()
            .unwrap();
        assert_eq!(ev.events.len(), 1, "{ev:?}");
        assert_eq!(ev.events[0].kv.as_ref().unwrap().value, b"again");
        kv.put(pb::PutRequest {
            key: key(watched),
            value: format!("v{watched}").into_bytes(),
            ..Default::default()
        })
        .await
        .unwrap();
        // A read over every range answers at one revision, whole: every
        // key, in order, counted once, through any member.
        let before_scan = last;
        for (n, ep) in [&ep0, &ep1, &ep2].into_iter().enumerate() {
            let mut c = KvClient::connect(format!("http://{ep}")).await.unwrap();
            let all = c
                .range(pb::RangeRequest {
                    key: key(0),
                    range_end: key(KEYS),
                    ..Default::default()
                })
                .await
                .unwrap_or_else(|e| panic!("scan through member {n}: {e}"))
                .into_inner();
            assert_eq!(all.count, KEYS as i64);
            assert!(!all.more);
            let keys: Vec<Vec<u8>> = all.kvs.iter().map(|kv| kv.key.clone()).collect();
            assert_eq!(keys, (0..KEYS).map(key).collect::<Vec<_>>());
            for (i, kv) in all.kvs.iter().enumerate() {
                assert_eq!(kv.value, format!("v{i}").into_bytes(), "key {i}");
            }
            let at = all.header.unwrap().revision;
            assert!(
                at >= before_scan,
                "scanned at {at}, before the last put's {before_scan}"
            );
            // Limits, orders and counts as one range would answer them.
            let desc = c
                .range(pb::RangeRequest {
                    key: key(0),
                    range_end: key(KEYS),
                    limit: 5,
                    sort_order: pb::range_request::SortOrder::Descend as i32,
                    keys_only: true,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            let keys: Vec<Vec<u8>> = desc.kvs.iter().map(|kv| kv.key.clone()).collect();
            assert_eq!(keys, (KEYS - 5..KEYS).rev().map(key).collect::<Vec<_>>());
            assert!(desc.more && desc.count == KEYS as i64);
            assert!(desc.kvs.iter().all(|kv| kv.value.is_empty()));
        }
        // At a revision before a write, the scan shows the state then.
        let w = KEYS / 2;
        let old = kv
            .range(pb::RangeRequest {
                key: key(0),
                range_end: vec![0],
                revision: last,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let put = kv
            .put(pb::PutRequest {
                key: key(w),
                value: b"later".to_vec(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let then = kv
            .range(pb::RangeRequest {
                key: key(0),
                range_end: vec![0],
                revision: last,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(then.kvs, old.kvs, "a read at revision {last} moved");
        assert_eq!(then.header.unwrap().revision, last);
        let now = kv
            .range(pb::RangeRequest {
                key: key(0),
                range_end: vec![0],
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(now.kvs[w].value, b"later");
        assert!(now.header.unwrap().revision >= put.header.unwrap().revision);
        // A revision no write has reached yet is refused, as etcd does.
        let future = kv
            .range(pb::RangeRequest {
                key: key(0),
                range_end: vec![0],
                revision: i64::MAX / 2,
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert!(future.message().contains("future revision"), "{future}");
        // A compaction reaches every range: below its revision every range
        // answers "compacted"; at it, every key is still there.
        let mut maint =
            synod_proto::etcdserverpb::kv_client::KvClient::connect(format!("http://{ep1}"))
                .await
                .unwrap();
        maint
            .compact(pb::CompactionRequest {
                revision: last,
                physical: false,
            })
            .await
            .unwrap_or_else(|e| panic!("compaction at {last}: {e}"));
        for k in [key(0), key(KEYS / 2), key(KEYS - 1)] {
            let err = kv
                .range(pb::RangeRequest {
                    key: k.clone(),
                    revision: last - 1,
                    ..Default::default()
                })
                .await
                .unwrap_err();
            assert!(err.message().contains("compacted"), "{k:?}: {err}");
        }
        let kept = kv
            .range(pb::RangeRequest {
                key: key(0),
                range_end: vec![0],
                revision: last,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(kept.kvs, old.kvs, "the state at the compaction's revision");
        let again = maint
            .compact(pb::CompactionRequest {
                revision: last,
                physical: false,
            })
            .await
            .unwrap_err();
        assert!(again.message().contains("compacted"), "{again}");
        // A write over several ranges is refused whole (until transactions
        // across ranges land), never applied in part.
        let err = kv
            .delete_range(pb::DeleteRangeRequest {
                key: key(0),
                range_end: key(KEYS),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err}");
        kv.put(pb::PutRequest {
            key: key(w),
            value: format!("v{w}").into_bytes(),
            ..Default::default()
        })
        .await
        .unwrap();
    });
    // A member killed and restarted boots every range from its files.
    let before = groups(&cl, 2);
    cl.kill(2);
    cl.boot(2);
    let t0 = Instant::now();
    while groups(&cl, 2) < before || !cl.running(2).shared().groups.all_have_leader() {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "member 3 after its restart hosts {} ranges of {before}",
            groups(&cl, 2)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let ep2 = cl.endpoint(2);
    rt.block_on(read_all(&ep2, "after a restart"));
}
