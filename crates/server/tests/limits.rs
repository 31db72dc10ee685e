//! Bad input and refusals: a taken port is a clear error naming the port and
//! the flag; a stranger on the peer port is refused; oversized requests,
//! requests demanding a leader when there is none, get etcd's errors;
//! `--max-concurrent-streams` holds a stream over the limit back; the node
//! keeps serving throughout. (TLS strangers on the peer port: `tls.rs`.)

mod common;

use std::time::Duration;

use common::*;
use synod_proto::etcdserverpb::kv_client::KvClient;
use synod_proto::etcdserverpb::{PutRequest, RangeRequest};
use synod_server::wire::{read_frame, write_frame, Hello, HelloReply, MAGIC, PROTOCOL_VERSION};
use tokio::net::TcpStream;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_taken_client_port_names_the_port_and_the_flag() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let peer = free_ports(1)[0];
    let cfg = synod_server::cli::local_cluster(dir.path(), &[(port, peer)], "t")
        .pop()
        .unwrap();
    let err = match rt().block_on(synod_server::start(cfg, false)) {
        Ok(_) => panic!("a taken port must not start"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    assert!(err.contains("--listen-client-urls"), "{err}");
}

#[test]
fn strangers_are_refused_and_oversized_or_leaderless_requests_get_etcds_errors() {
    let cl = Cluster::start(1);
    cl.wait_leader(Duration::from_secs(10)).expect("a leader");
    let peer = cl.cfgs[0].peer_addr;
    let ep = cl.endpoint(0);
    let rt = rt();
    rt.block_on(async {
        // Another cluster's member is refused, with the reason.
        let mut s = TcpStream::connect(peer).await.unwrap();
        let hello = Hello {
            magic: MAGIC,
            version: PROTOCOL_VERSION,
            cluster_id: cl.cfgs[0].cluster_id ^ 1,
            from: 42,
            to: cl.id(0),
            name: "stranger".into(),
            client_urls: vec![],
            peer_urls: vec![],
        };
        write_frame(&mut s, &hello).await.unwrap();
        match read_frame::<HelloReply, _>(&mut s).await.unwrap() {
            HelloReply::Refused(why) => assert!(why.contains("cluster id"), "{why}"),
            other => panic!("a stranger was welcomed: {other:?}"),
        }
        // A wrong protocol version too.
        let mut s = TcpStream::connect(peer).await.unwrap();
        let old = Hello {
            version: PROTOCOL_VERSION + 1,
            cluster_id: cl.cfgs[0].cluster_id,
            ..hello.clone()
        };
        write_frame(&mut s, &old).await.unwrap();
        assert!(matches!(
            read_frame::<HelloReply, _>(&mut s).await.unwrap(),
            HelloReply::Refused(_)
        ));
        // Garbage on the peer port is dropped without harm.
        let mut s = TcpStream::connect(peer).await.unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut s, &[0xff; 64])
            .await
            .unwrap();
        drop(s);

        let mut c = KvClient::connect(format!("http://{ep}")).await.unwrap();
        let big = PutRequest {
            key: b"big".to_vec(),
            value: vec![7; synod_proto::limits::DEFAULT_MAX_REQUEST_BYTES + 1],
            ..Default::default()
        };
        let e = c.put(big).await.unwrap_err();
        assert_eq!(e.message(), "etcdserver: request is too large");
        let e = c
            .range(RangeRequest {
                key: b"k".to_vec(),
                revision: 1000,
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::OutOfRange);
        assert_eq!(
            e.message(),
            "etcdserver: mvcc: required revision is a future revision"
        );
        // /health and /metrics over plain HTTP/1.1 on the client port.
        let http = |path: &str| {
            let out = std::process::Command::new("curl")
                .args(["-s", &format!("http://{ep}{path}")])
                .output();
            out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        };
        if let Ok(h) = http("/health") {
            assert_eq!(h, r#"{"health":"true","reason":""}"#);
            let m = http("/metrics").unwrap();
            assert!(m.contains("synod_server_has_leader 1"), "{m}");
            assert!(m.contains("synod_raft_term "), "{m}");
        } else {
            eprintln!("NOTICE: curl not found; /health and /metrics not checked");
        }
        // The node still serves.
        c.put(PutRequest {
            key: b"k".to_vec(),
            value: b"v".to_vec(),
            ..Default::default()
        })
        .await
        .unwrap();
    });
}

#[test]
fn a_request_that_needs_a_leader_fails_fast_without_one() {
    // One member of a three-member cluster alone can never elect a leader.
    let dir = tempfile::tempdir().unwrap();
    let ports = free_ports(6);
    let pairs: Vec<(u16, u16)> = (0..3).map(|i| (ports[2 * i], ports[2 * i + 1])).collect();
    let mut cfg = synod_server::cli::local_cluster(dir.path(), &pairs, "t").remove(0);
    cfg.tick = Duration::from_millis(50);
    let rt = rt();
    rt.block_on(async {
        let running = synod_server::start(cfg, false).await.unwrap();
        let ep = running.client_addr();
        let mut c = KvClient::connect(format!("http://{ep}")).await.unwrap();
        let mut req = tonic::Request::new(RangeRequest {
            key: b"k".to_vec(),
            ..Default::default()
        });
        req.metadata_mut()
            .insert("hasleader", "true".parse().unwrap());
        let t0 = std::time::Instant::now();
        let e = c.range(req).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::Unavailable);
        assert_eq!(e.message(), "etcdserver: no leader");
        assert!(t0.elapsed() < Duration::from_secs(1));
        // Serializable reads are still served locally.
        c.range(RangeRequest {
            key: b"k".to_vec(),
            serializable: true,
            ..Default::default()
        })
        .await
        .unwrap();
        running.stop().await.unwrap();
    });
}

/// The (code, message) a put of a `len`-byte value gets from `ep`.
async fn put_error(ep: &str, len: usize) -> Option<(tonic::Code, String)> {
    let mut c = KvClient::connect(format!("http://{ep}"))
        .await
        .unwrap()
        .max_encoding_message_size(64 << 20);
    let r = c
        .put(PutRequest {
            key: b"big".to_vec(),
            value: vec![7; len],
            ..Default::default()
        })
        .await;
    r.err().map(|e| (e.code(), e.message().to_owned()))
}

/// Issue 19, item 5: a request over `--max-request-bytes` (1.5 MiB) gets
/// etcd's InvalidArgument "request is too large"; one over the gRPC limit
/// above it (2 MiB) gets grpc-go's ResourceExhausted and message, with the
/// sizes, from a real etcd 3.4 and from synod alike.
#[test]
fn oversized_requests_get_the_code_and_message_etcd_gives() {
    if !have_etcd() {
        return;
    }
    let etcd = Etcd3::start(1);
    let cl = Cluster::start(1);
    cl.wait_leader(Duration::from_secs(10)).expect("a leader");
    let rt = rt();
    for len in [1_600_000, 2_100_000, 3_000_000, 5 << 20] {
        let e = rt.block_on(put_error(&etcd.clients[0], len));
        let s = rt.block_on(put_error(&cl.endpoint(0), len));
        assert!(e.is_some(), "etcd took a {len}-byte value");
        assert_eq!(e, s, "a {len}-byte value");
    }
    let (code, msg) = rt.block_on(put_error(&cl.endpoint(0), 3_000_000)).unwrap();
    assert_eq!(code, tonic::Code::ResourceExhausted);
    assert!(
        msg.starts_with("grpc: received message larger than max ("),
        "{msg}"
    );
    // Under the limit it is taken.
    assert_eq!(rt.block_on(put_error(&cl.endpoint(0), 1_000_000)), None);
}

/// `--max-concurrent-streams` (etcd's default: no real limit, as synod's):
/// set to 2, a third request on the same connection waits until one of two
/// open watch streams ends.
#[test]
fn max_concurrent_streams_holds_back_a_stream_over_the_limit() {
    use synod_proto::etcdserverpb::watch_client::WatchClient;
    use synod_proto::etcdserverpb::{watch_request, WatchCreateRequest, WatchRequest};
    let cl = Cluster::start_with(1, |c| c.max_concurrent_streams = 2);
    cl.wait_leader(Duration::from_secs(10)).expect("a leader");
    let ep = cl.endpoint(0);
    rt().block_on(async {
        let ch = tonic::transport::Endpoint::from_shared(format!("http://{ep}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut watches = Vec::new();
        for i in 0..2u8 {
            let (tx, rx) = tokio::sync::mpsc::channel(4);
            tx.send(WatchRequest {
                request_union: Some(watch_request::RequestUnion::CreateRequest(
                    WatchCreateRequest {
                        key: vec![b'w', i],
                        ..Default::default()
                    },
                )),
            })
            .await
            .unwrap();
            let mut resp = WatchClient::new(ch.clone())
                .watch(tokio_stream::wrappers::ReceiverStream::new(rx))
                .await
                .unwrap()
                .into_inner();
            assert!(resp.message().await.unwrap().unwrap().created);
            watches.push((tx, resp));
        }
        let mut kv = KvClient::new(ch.clone());
        let get = RangeRequest {
            key: b"k".to_vec(),
            ..Default::default()
        };
        let held = tokio::time::timeout(Duration::from_millis(800), kv.range(get.clone())).await;
        assert!(held.is_err(), "a third stream ran beside two: {held:?}");
        // One watch ends: the request goes through.
        drop(watches.pop());
        tokio::time::timeout(Duration::from_secs(5), kv.range(get))
            .await
            .expect("served once a stream ended")
            .unwrap();
    });
}

/// The JSON gateway takes bodies up to twice `--max-request-bytes` (base64
/// makes values a third larger) and refuses a larger one with 413 before
/// decoding it; the node serves on.
#[test]
fn the_gateway_refuses_a_body_over_its_limit() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let cl = Cluster::start(1);
    cl.wait_leader(Duration::from_secs(10)).expect("a leader");
    let ep = cl.endpoint(0);
    let post = |len: usize| {
        let body = format!(r#"{{"key":"YQ==","value":"{}"}}"#, "A".repeat(len));
        format!(
            "POST /v3/kv/put HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    };
    rt().block_on(async {
        let send = |req: String| {
            let ep = ep.clone();
            async move {
                let mut s = TcpStream::connect(&ep).await.unwrap();
                // The server may answer and close before taking every byte.
                let _ = s.write_all(req.as_bytes()).await;
                let mut out = Vec::new();
                let _ = s.read_to_end(&mut out).await;
                String::from_utf8_lossy(&out).into_owned()
            }
        };
        let limit = 2 * synod_proto::limits::DEFAULT_MAX_REQUEST_BYTES + (64 << 10);
        let r = send(post(limit + 1)).await;
        assert!(r.starts_with("HTTP/1.1 413"), "{}", &r[..r.len().min(200)]);
        let r = send(post(1000)).await;
        assert!(r.starts_with("HTTP/1.1 200"), "{}", &r[..r.len().min(200)]);
    });
}
