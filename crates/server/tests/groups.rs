//! A cluster whose keyspace is split into two Raft groups
//! (`--experimental-initial-split-keys m`): each group publishes its own
//! leader, term and revision; a request's header is its group's; a watch
//! reaches the events of its key's group and one over both groups is
//! refused; `/metrics` labels each group's figures.

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::Cluster;
use synod_proto::etcdserverpb as pb;
use synod_proto::etcdserverpb::kv_client::KvClient;
use synod_proto::etcdserverpb::watch_client::WatchClient;
use tokio_stream::StreamExt;

fn create(key: &str, range_end: &str) -> pb::WatchRequest {
    pb::WatchRequest {
        request_union: Some(pb::watch_request::RequestUnion::CreateRequest(
            pb::WatchCreateRequest {
                key: key.as_bytes().to_vec(),
                range_end: range_end.as_bytes().to_vec(),
                ..Default::default()
            },
        )),
    }
}

fn put(key: &str) -> pb::PutRequest {
    pb::PutRequest {
        key: key.as_bytes().to_vec(),
        value: b"v".to_vec(),
        ..Default::default()
    }
}

/// GET `path` over plain HTTP/1.1: the status line and the body.
fn http_get(addr: &str, path: &str) -> (String, String) {
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
    (
        head.lines().next().unwrap_or("").to_owned(),
        body.to_owned(),
    )
}

#[test]
fn two_groups_publish_their_own_state_and_serve_their_own_watchers() {
    let cl = Cluster::start_with(3, |c| c.split_keys = vec![b"m".to_vec()]);
    let t0 = Instant::now();
    while !(0..3).all(|i| cl.running(i).shared().groups.all_have_leader()) {
        assert!(t0.elapsed() < Duration::from_secs(15), "both groups elect");
        std::thread::sleep(Duration::from_millis(20));
    }
    let ep = cl.endpoint(0);
    let shared = cl.running(0).shared().clone();
    let ids: Vec<u64> = shared.groups.iter().map(|g| g.shard).collect();
    assert_eq!(ids, [1, 2]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let url = format!("http://{ep}");
        let mut kv = KvClient::connect(url.clone()).await.unwrap();
        let mut watch = WatchClient::connect(url).await.unwrap();
        // Each group counts its own revisions: a first write in each is at 2.
        let a = kv.put(put("a")).await.unwrap().into_inner();
        let n = kv.put(put("n")).await.unwrap().into_inner();
        assert_eq!(a.header.unwrap().revision, 2);
        assert_eq!(n.header.unwrap().revision, 2);
        let n = kv.put(put("n")).await.unwrap().into_inner();
        assert_eq!(n.header.unwrap().revision, 3);
        // A watch on group 2's key sees group 2's events under its header.
        let (tx, rx) = tokio::sync::mpsc::channel(8);
        let mut resp = watch
            .watch(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
            .unwrap()
            .into_inner();
        tx.send(create("n", "")).await.unwrap();
        let created = resp.next().await.unwrap().unwrap();
        assert!(created.created && !created.canceled, "{created:?}");
        assert_eq!(created.header.unwrap().revision, 3, "group 2's revision");
        kv.put(put("a")).await.unwrap();
        kv.put(put("n")).await.unwrap();
        let ev = tokio::time::timeout(Duration::from_secs(5), resp.next())
            .await
            .expect("an event")
            .unwrap()
            .unwrap();
        assert_eq!(ev.events.len(), 1, "{ev:?}");
        assert_eq!(ev.events[0].kv.as_ref().unwrap().key, b"n");
        let h = ev.header.unwrap();
        assert_eq!(h.revision, 4);
        assert_eq!(h.raft_term, shared.groups.get(2).unwrap().term());
        // A watch over both groups is created and cancelled at once.
        tx.send(create("a", "z")).await.unwrap();
        let refused = resp.next().await.unwrap().unwrap();
        assert!(refused.created && refused.canceled, "{refused:?}");
        assert!(
            refused.cancel_reason.contains("spans several key ranges"),
            "{}",
            refused.cancel_reason
        );
        // As a range over both groups is refused.
        let err = kv
            .range(pb::RangeRequest {
                key: b"a".to_vec(),
                range_end: b"z".to_vec(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
    });
    let (g1, g2) = (shared.groups.get(1).unwrap(), shared.groups.get(2).unwrap());
    assert_eq!((g1.revision(), g2.revision()), (3, 4));
    let (status, m) = http_get(&ep, "/metrics");
    assert!(status.contains("200"), "{status}");
    for line in [
        "synod_group_has_leader{group=\"1\"} 1".to_string(),
        "synod_group_has_leader{group=\"2\"} 1".to_string(),
        format!("synod_group_term{{group=\"2\"}} {}", g2.term()),
        "synod_group_revision{group=\"1\"} 3".to_string(),
        "synod_group_revision{group=\"2\"} 4".to_string(),
        "synod_mvcc_revision 3".to_string(),
        "synod_server_has_leader 1".to_string(),
    ] {
        assert!(m.lines().any(|l| l == line), "{line} not in:\n{m}");
    }
    let (status, _) = http_get(&ep, "/health");
    assert!(status.contains("200"), "{status}");
}
