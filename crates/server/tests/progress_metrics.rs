//! Watch progress notifications (etcd's
//! `--experimental-watch-progress-notify-interval`, over gRPC with
//! synod-proto's client, since etcdctl 3.4 has no flag for them) and the
//! `/metrics` figures etcd users chart: the WAL fsync latency histogram and
//! the store's size on disk.

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::Cluster;
use synod_proto::etcdserverpb as pb;
use synod_proto::etcdserverpb::kv_client::KvClient;
use synod_proto::etcdserverpb::watch_client::WatchClient;
use tokio_stream::StreamExt;

const INTERVAL: Duration = Duration::from_millis(300);

fn create(key: &str, progress_notify: bool) -> pb::WatchRequest {
    pb::WatchRequest {
        request_union: Some(pb::watch_request::RequestUnion::CreateRequest(
            pb::WatchCreateRequest {
                key: key.as_bytes().to_vec(),
                progress_notify,
                ..Default::default()
            },
        )),
    }
}

#[test]
fn watchers_that_ask_get_periodic_progress_notifications() {
    let cl = Cluster::start_with(1, |c| c.watch_progress_notify_interval = INTERVAL);
    cl.wait_leader(Duration::from_secs(10)).expect("a leader");
    check_progress_notifications(format!("http://{}", cl.endpoint(0)));
}

/// The same checks hold against a real etcd 3.4 started with the same flag.
#[test]
fn etcd_sends_the_same_progress_notifications() {
    if !common::have_etcd() || !common::have_etcdctl() {
        return;
    }
    let ms = format!(
        "--experimental-watch-progress-notify-interval={}ms",
        INTERVAL.as_millis()
    );
    let etcd = common::Etcd3::start_with_args(1, &[&ms]);
    check_progress_notifications(format!("http://{}", etcd.clients[0]));
}

fn check_progress_notifications(url: String) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut kv = KvClient::connect(url.clone()).await.unwrap();
        let mut watch = WatchClient::connect(url).await.unwrap();
        let (tx, rx) = tokio::sync::mpsc::channel(8);
        tx.send(create("quiet", true)).await.unwrap();
        tx.send(create("plain", false)).await.unwrap();
        let mut out = watch
            .watch(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
            .unwrap()
            .into_inner();
        macro_rules! next {
            () => {
                tokio::time::timeout(Duration::from_secs(5), out.next())
                    .await
                    .expect("a response within 5 s")
                    .expect("the stream is open")
                    .expect("not an error")
            };
        }
        let (a, b) = (next!(), next!());
        assert!(a.created && b.created);
        let (progress_id, plain_id) = (a.watch_id, b.watch_id);
        let put = |k: &'static str| pb::PutRequest {
            key: k.into(),
            value: b"v".to_vec(),
            ..Default::default()
        };
        let rev = kv.put(put("elsewhere")).await.unwrap().into_inner();
        let rev = rev.header.unwrap().revision;

        // Quiet intervals: empty responses at the current revision, only to
        // the watcher that asked, about one per interval.
        let t0 = Instant::now();
        for _ in 0..3 {
            let r = next!();
            assert_eq!(r.watch_id, progress_id, "{r:?}");
            assert!(r.events.is_empty() && !r.created && !r.canceled, "{r:?}");
            assert_eq!(r.header.unwrap().revision, rev);
        }
        let took = t0.elapsed();
        assert!(
            took >= INTERVAL * 2 && took < INTERVAL * 3 + Duration::from_secs(2),
            "three notifications in {took:?}"
        );

        // The notification follows the store's revision.
        let rev = kv.put(put("elsewhere")).await.unwrap().into_inner();
        let rev = rev.header.unwrap().revision;
        let t0 = Instant::now();
        loop {
            let r = next!();
            assert_eq!(r.watch_id, progress_id);
            if r.header.unwrap().revision == rev {
                break;
            }
            assert!(t0.elapsed() < INTERVAL * 3, "no notification at {rev}");
        }

        // An event on the plain watcher is delivered; it never gets progress.
        kv.put(put("plain")).await.unwrap();
        let t0 = Instant::now();
        let mut saw_event = false;
        while t0.elapsed() < INTERVAL * 3 {
            let r = next!();
            if r.watch_id == plain_id {
                assert_eq!(r.events.len(), 1, "{r:?}");
                saw_event = true;
            } else {
                assert!(r.events.is_empty());
            }
        }
        assert!(saw_event);

        // A WatchProgressRequest is answered for the whole stream (watch id
        // -1) at the current revision.
        let rev = kv.put(put("elsewhere")).await.unwrap().into_inner();
        let rev = rev.header.unwrap().revision;
        tx.send(pb::WatchRequest {
            request_union: Some(pb::watch_request::RequestUnion::ProgressRequest(
                pb::WatchProgressRequest {},
            )),
        })
        .await
        .unwrap();
        let t0 = Instant::now();
        loop {
            let r = next!();
            if r.watch_id == -1 {
                assert!(r.events.is_empty(), "{r:?}");
                assert_eq!(r.header.unwrap().revision, rev);
                break;
            }
            assert!(t0.elapsed() < Duration::from_secs(2), "no answer");
        }
    });
}

/// GET `path` over plain HTTP/1.1: the body.
fn http_get(addr: &str, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP answer");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_owned()
}

/// The value of the sample `name` (exact, with labels).
fn sample(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("{name} not in:\n{metrics}"))
        .parse()
        .unwrap()
}

#[test]
fn metrics_carry_the_fsync_histogram_and_the_store_size() {
    // Small WAL segments: they are preallocated, so the store grows on disk
    // as segments fill and new ones start.
    // (The smallest a segment may be: one largest record, 4 MiB, and headers.)
    const SEGMENT: u64 = (4 << 20) + (64 << 10);
    let cl = Cluster::start_with(1, |c| {
        c.wal_segment_bytes = SEGMENT;
        c.backend_batch_interval = Duration::from_millis(50);
    });
    cl.wait_leader(Duration::from_secs(10)).expect("a leader");
    let ep = cl.endpoint(0);
    let before = http_get(&ep, "/metrics");
    let count0 = sample(&before, "etcd_disk_wal_fsync_duration_seconds_count");
    let size0 = sample(&before, "synod_disk_data_dir_bytes");
    assert!(size0 > 0.0, "the WAL exists from the start");
    let db0 = sample(&before, "etcd_mvcc_db_total_size_in_bytes");
    assert!(db0 > 0.0, "the store file exists from the start");
    assert!(before.contains("# TYPE etcd_disk_wal_fsync_duration_seconds histogram"));

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut kv = KvClient::connect(format!("http://{ep}")).await.unwrap();
        for i in 0..20 {
            kv.put(pb::PutRequest {
                key: format!("k{i}").into_bytes(),
                value: vec![b'x'; 300_000],
                ..Default::default()
            })
            .await
            .unwrap();
        }
    });

    let after = http_get(&ep, "/metrics");
    let count = sample(&after, "etcd_disk_wal_fsync_duration_seconds_count");
    // Each put was acknowledged after its entry was synced, and the next
    // one proposed only then: at least one fdatasync apiece.
    assert!(count - count0 >= 20.0, "{count0} -> {count}");
    let buckets: Vec<(String, f64)> = after
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("etcd_disk_wal_fsync_duration_seconds_bucket{le=\"")?;
            let (le, v) = rest.split_once("\"} ")?;
            Some((le.to_owned(), v.parse().ok()?))
        })
        .collect();
    assert_eq!(buckets.len(), 15, "etcd's 14 buckets and +Inf: {buckets:?}");
    assert_eq!(buckets[0].0, "0.001");
    assert_eq!(buckets[13].0, "8.192");
    assert_eq!(buckets[14], ("+Inf".to_owned(), count));
    assert!(
        buckets.windows(2).all(|w| w[0].1 <= w[1].1),
        "buckets are cumulative: {buckets:?}"
    );
    let sum = sample(&after, "etcd_disk_wal_fsync_duration_seconds_sum");
    assert!(sum > 0.0);
    eprintln!(
        "WAL fdatasync: {count} calls, mean {:.3} ms",
        sum / count * 1000.0
    );
    let size = sample(&after, "synod_disk_data_dir_bytes");
    assert!(
        size - size0 >= SEGMENT as f64,
        "6 MB of values start a new WAL segment: {size0} -> {size}"
    );
    let db = sample(&after, "etcd_mvcc_db_total_size_in_bytes");
    assert!(
        db - db0 >= 4_000_000.0,
        "6 MB of values are in the store file: {db0} -> {db}"
    );
    // They got there by the store's durable commits, each one timed.
    let commits = sample(&after, "etcd_disk_backend_commit_duration_seconds_count");
    assert!(commits >= 1.0, "store commits: {commits}");
    assert!(sample(&after, "etcd_disk_backend_commit_duration_seconds_sum") > 0.0);
}
