//! Live gRPC over loopback: a tiny tonic server built from the generated
//! traits answers the generated clients and, when it is installed, the real
//! `etcdctl`, which proves the paths and bytes are etcd's for real.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use synod_proto::etcdserverpb::kv_client::KvClient;
use synod_proto::etcdserverpb::kv_server::{Kv, KvServer};
use synod_proto::etcdserverpb::watch_client::WatchClient;
use synod_proto::etcdserverpb::watch_server::{Watch, WatchServer};
use synod_proto::etcdserverpb::{
    watch_request, WatchCancelRequest, WatchCreateRequest, WatchRequest, WatchResponse,
};
use synod_proto::etcdserverpb::{
    CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse, PutRequest,
    PutResponse, RangeRequest, RangeResponse, ResponseHeader, TxnRequest, TxnResponse,
};
use synod_proto::limits;
use synod_proto::mvccpb::KeyValue;
use synod_proto::mvccpb::{event, Event};
use synod_proto::v3lockpb::lock_client::LockClient;
use synod_proto::v3lockpb::lock_server::{Lock, LockServer};
use synod_proto::v3lockpb::{LockRequest, LockResponse, UnlockRequest, UnlockResponse};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::Streaming;
use tonic::{Request, Response, Status};

/// Upper bound for any one step of these tests.
const STEP: Duration = Duration::from_secs(20);

fn header(revision: i64) -> Option<ResponseHeader> {
    Some(ResponseHeader {
        cluster_id: 0x1111,
        member_id: 0x2222,
        revision,
        raft_term: 2,
    })
}

/// Answers Range with one fixed pair and records Range and Put requests.
#[derive(Clone, Default)]
struct FixedKv {
    ranges: Arc<Mutex<Vec<RangeRequest>>>,
    puts: Arc<Mutex<Vec<PutRequest>>>,
}

#[tonic::async_trait]
impl Kv for FixedKv {
    async fn range(&self, req: Request<RangeRequest>) -> Result<Response<RangeResponse>, Status> {
        self.ranges.lock().unwrap().push(req.into_inner());
        Ok(Response::new(RangeResponse {
            header: header(7),
            kvs: vec![KeyValue {
                key: b"foo".to_vec(),
                create_revision: 5,
                mod_revision: 7,
                version: 2,
                value: b"bar".to_vec(),
                lease: 0,
            }],
            more: false,
            count: 1,
        }))
    }
    async fn put(&self, req: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
        self.puts.lock().unwrap().push(req.into_inner());
        Ok(Response::new(PutResponse {
            header: header(8),
            prev_kv: None,
        }))
    }
    async fn delete_range(
        &self,
        _: Request<DeleteRangeRequest>,
    ) -> Result<Response<DeleteRangeResponse>, Status> {
        Err(Status::unimplemented("delete_range"))
    }
    async fn txn(&self, _: Request<TxnRequest>) -> Result<Response<TxnResponse>, Status> {
        Err(Status::unimplemented("txn"))
    }
    async fn compact(
        &self,
        _: Request<CompactionRequest>,
    ) -> Result<Response<CompactionResponse>, Status> {
        Err(Status::unimplemented("compact"))
    }
}

/// Grants every lock at `<name>/<lease in hex>`.
struct EchoLock;

#[tonic::async_trait]
impl Lock for EchoLock {
    async fn lock(&self, req: Request<LockRequest>) -> Result<Response<LockResponse>, Status> {
        let req = req.into_inner();
        let mut key = req.name;
        key.extend_from_slice(format!("/{:x}", req.lease).as_bytes());
        Ok(Response::new(LockResponse {
            header: header(9),
            key,
        }))
    }
    async fn unlock(&self, _: Request<UnlockRequest>) -> Result<Response<UnlockResponse>, Status> {
        Err(Status::unimplemented("unlock"))
    }
}

/// Starts the server on 127.0.0.1:0 and returns its address.
async fn start(kv: FixedKv) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(KvServer::new(kv))
            .add_service(LockServer::new(EchoLock))
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_client_talks_to_generated_server() {
    let kv = FixedKv::default();
    let addr = start(kv.clone()).await;
    let endpoint = format!("http://{addr}");

    let mut client = tokio::time::timeout(STEP, KvClient::connect(endpoint.clone()))
        .await
        .expect("connect in time")
        .expect("connect");
    let resp = tokio::time::timeout(
        STEP,
        client.range(RangeRequest {
            key: b"foo".to_vec(),
            limit: 3,
            ..Default::default()
        }),
    )
    .await
    .expect("range in time")
    .expect("range ok")
    .into_inner();
    assert_eq!(resp.kvs[0].value, b"bar");
    assert_eq!(resp.header.unwrap().revision, 7);
    assert_eq!(kv.ranges.lock().unwrap()[0].limit, 3);

    // An RPC the server leaves unimplemented comes back as that status.
    let err = client
        .txn(TxnRequest::default())
        .await
        .expect_err("txn is unimplemented here");
    assert_eq!(err.code(), tonic::Code::Unimplemented);

    let mut lock = LockClient::connect(endpoint).await.expect("connect lock");
    let got = lock
        .lock(LockRequest {
            name: b"m".to_vec(),
            lease: 0xab,
        })
        .await
        .expect("lock ok")
        .into_inner();
    assert_eq!(got.key, b"m/ab");
}

/// Runs etcdctl with `args` against `addr`; None when etcdctl is not installed.
async fn etcdctl(addr: std::net::SocketAddr, args: &[&str]) -> Option<String> {
    let mut cmd = tokio::process::Command::new("etcdctl");
    cmd.env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={addr}"))
        .arg("--dial-timeout=5s")
        .arg("--command-timeout=5s")
        .args(args)
        .kill_on_drop(true);
    let out = match tokio::time::timeout(STEP, cmd.output()).await {
        Ok(Ok(out)) => out,
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Ok(Err(e)) => panic!("running etcdctl: {e}"),
        Err(_) => panic!("etcdctl {args:?} took longer than {STEP:?}"),
    };
    assert!(
        out.status.success(),
        "etcdctl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8(out.stdout).expect("etcdctl prints UTF-8"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcdctl_get_and_put_against_our_server() {
    let kv = FixedKv::default();
    let addr = start(kv.clone()).await;

    let Some(json) = etcdctl(addr, &["get", "foo", "-w", "json"]).await else {
        println!("NOTICE: etcdctl not installed; skipping the etcdctl wire test");
        return;
    };
    // etcdctl's JSON shows bytes in base64: "foo" = Zm9v, "bar" = YmFy.
    let compact: String = json.chars().filter(|c| !c.is_whitespace()).collect();
    for want in [
        "\"key\":\"Zm9v\"",
        "\"value\":\"YmFy\"",
        "\"mod_revision\":7",
        "\"create_revision\":5",
        "\"revision\":7",
        "\"member_id\":8738", // 0x2222
        "\"count\":1",
    ] {
        assert!(
            compact.contains(want),
            "{want} missing from etcdctl output {json}"
        );
    }
    {
        let ranges = kv.ranges.lock().unwrap();
        assert_eq!(ranges.len(), 1);
        assert_eq!(ranges[0].key, b"foo");
        assert!(ranges[0].range_end.is_empty());
    }

    // A prefix get sends range_end = prefix + 1.
    etcdctl(addr, &["get", "fo", "--prefix", "--keys-only"])
        .await
        .unwrap();
    {
        let ranges = kv.ranges.lock().unwrap();
        assert_eq!(ranges[1].key, b"fo");
        assert_eq!(ranges[1].range_end, b"fp");
        assert!(ranges[1].keys_only);
    }

    // etcdctl takes the lease id in hex.
    let out = etcdctl(addr, &["put", "k1", "v1", "--lease=1f", "--prev-kv"])
        .await
        .unwrap();
    assert!(out.contains("OK"), "put printed {out}");
    let puts = kv.puts.lock().unwrap();
    assert_eq!(puts.len(), 1);
    assert_eq!(puts[0].key, b"k1");
    assert_eq!(puts[0].value, b"v1");
    assert_eq!(puts[0].lease, 0x1f);
    assert!(puts[0].prev_kv);
}

// ------------------------------------------------------------------ streaming

/// Answers each create with `created`, then one PUT event of `<key>` = "bar";
/// each cancel with `canceled`. Responses go through a bounded channel.
struct OneEventWatch;

#[tonic::async_trait]
impl Watch for OneEventWatch {
    type WatchStream = ReceiverStream<Result<WatchResponse, Status>>;

    async fn watch(
        &self,
        req: Request<Streaming<WatchRequest>>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let mut incoming = req.into_inner();
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(async move {
            let mut next_id = 1;
            while let Ok(Some(msg)) = incoming.message().await {
                let replies = match msg.request_union {
                    Some(watch_request::RequestUnion::CreateRequest(create)) => {
                        let id = if create.watch_id != 0 {
                            create.watch_id
                        } else {
                            next_id
                        };
                        next_id += 1;
                        let event = Event {
                            r#type: event::EventType::Put as i32,
                            kv: Some(KeyValue {
                                key: create.key,
                                create_revision: 8,
                                mod_revision: 8,
                                version: 1,
                                value: b"bar".to_vec(),
                                lease: 0,
                            }),
                            prev_kv: None,
                        };
                        vec![
                            WatchResponse {
                                header: header(7),
                                watch_id: id,
                                created: true,
                                ..Default::default()
                            },
                            WatchResponse {
                                header: header(8),
                                watch_id: id,
                                events: vec![event],
                                ..Default::default()
                            },
                        ]
                    }
                    Some(watch_request::RequestUnion::CancelRequest(cancel)) => {
                        vec![WatchResponse {
                            header: header(8),
                            watch_id: cancel.watch_id,
                            canceled: true,
                            ..Default::default()
                        }]
                    }
                    _ => Vec::new(),
                };
                for reply in replies {
                    if tx.send(Ok(reply)).await.is_err() {
                        return;
                    }
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

/// The next response on a watch stream, within [`STEP`].
async fn next(responses: &mut Streaming<WatchResponse>) -> WatchResponse {
    tokio::time::timeout(STEP, responses.message())
        .await
        .expect("response in time")
        .expect("stream ok")
        .expect("stream open")
}

async fn start_watch() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(WatchServer::new(OneEventWatch))
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_bidi_stream_with_generated_client() {
    let addr = start_watch().await;
    let mut client = WatchClient::connect(format!("http://{addr}"))
        .await
        .expect("connect");
    let (tx, rx) = mpsc::channel(4);
    tx.send(WatchRequest {
        request_union: Some(watch_request::RequestUnion::CreateRequest(
            WatchCreateRequest {
                key: b"foo".to_vec(),
                watch_id: 5,
                ..Default::default()
            },
        )),
    })
    .await
    .unwrap();
    let mut responses = tokio::time::timeout(STEP, client.watch(ReceiverStream::new(rx)))
        .await
        .expect("watch in time")
        .expect("watch ok")
        .into_inner();
    let created = next(&mut responses).await;
    assert!(created.created);
    assert_eq!(created.watch_id, 5);
    let put = next(&mut responses).await;
    assert_eq!(put.events.len(), 1);
    assert_eq!(put.events[0].kv.as_ref().unwrap().key, b"foo");
    tx.send(WatchRequest {
        request_union: Some(watch_request::RequestUnion::CancelRequest(
            WatchCancelRequest { watch_id: 5 },
        )),
    })
    .await
    .unwrap();
    let canceled = next(&mut responses).await;
    assert!(canceled.canceled);
    assert_eq!(canceled.watch_id, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcdctl_watch_against_our_server() {
    let addr = start_watch().await;
    let spawned = tokio::process::Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={addr}"))
        .arg("--dial-timeout=5s")
        .args(["watch", "foo"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            println!("NOTICE: etcdctl not installed; skipping the etcdctl watch test");
            return;
        }
        Err(e) => panic!("running etcdctl: {e}"),
    };
    // etcdctl prints each event as three lines: type, key, value.
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let line = tokio::time::timeout(STEP, lines.next_line())
            .await
            .expect("etcdctl printed the event in time")
            .expect("read etcdctl output")
            .expect("etcdctl kept running");
        seen.push(line);
    }
    assert_eq!(seen, ["PUT", "foo", "bar"]);
    child.kill().await.expect("stop etcdctl");
}

// ------------------------------------------------------------------ limits

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_request_limit_rejects_oversized_put() {
    let kv = FixedKv::default();
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(
                KvServer::new(kv.clone())
                    .max_decoding_message_size(limits::DEFAULT_MAX_DECODING_MESSAGE_SIZE),
            )
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    let mut client = KvClient::connect(format!("http://{addr}"))
        .await
        .expect("connect");
    let put = |len: usize| PutRequest {
        key: b"big".to_vec(),
        value: vec![7; len],
        ..Default::default()
    };
    // Just under the limit (tag, length and key take a few bytes) passes.
    let fits = limits::DEFAULT_MAX_DECODING_MESSAGE_SIZE - 64;
    tokio::time::timeout(STEP, client.put(put(fits)))
        .await
        .expect("put in time")
        .expect("a put under the limit is accepted");
    let err = tokio::time::timeout(
        STEP,
        client.put(put(limits::DEFAULT_MAX_DECODING_MESSAGE_SIZE + 1)),
    )
    .await
    .expect("put in time")
    .expect_err("a put over the limit is refused");
    assert_eq!(err.code(), tonic::Code::OutOfRange, "{err}");
    assert_eq!(
        kv.puts.lock().unwrap().len(),
        1,
        "only the small put reached the service"
    );
}
