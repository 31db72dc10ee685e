//! Micro-benchmark of gRPC request handling: one in-process member on
//! loopback, C concurrent callers over K HTTP/2 connections, for each of
//! serializable Range (gRPC + the actor round trip, no Raft), linearizable
//! Range (plus a ReadIndex round), and Put (plus Raft and the WAL's
//! fdatasync, on a single member so no network hop). Prints requests/s and
//! CPU microseconds per request of the whole process (client and server
//! share it; the client's half is the same tonic stack).
//!
//! `cargo run -p synod-server --release --example bench_grpc -- [SECONDS] [CALLERS] [CONNECTIONS]`

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use synod_proto::etcdserverpb::kv_client::KvClient;
use synod_proto::etcdserverpb::{PutRequest, RangeRequest};
use synod_server::cli::local_cluster;
use tonic::transport::{Channel, Endpoint};

/// utime + stime of this process, in seconds (from /proc/self/stat).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after ')'.
    let rest = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|s| s.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 here.
    (ticks(11) + ticks(12)) / 100.0
}

#[derive(Clone, Copy)]
enum Op {
    SerializableGet,
    LinearizableGet,
    Put,
}

async fn run(op: Op, chans: &[Channel], callers: usize, secs: f64) -> (f64, f64) {
    let done = Arc::new(AtomicU64::new(0));
    let stop_at = Instant::now() + Duration::from_secs_f64(secs);
    let cpu0 = cpu_seconds();
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..callers {
        let mut kv = KvClient::new(chans[c % chans.len()].clone());
        let done = done.clone();
        tasks.push(tokio::spawn(async move {
            let mut i = 0u64;
            while Instant::now() < stop_at {
                let ok = match op {
                    Op::SerializableGet | Op::LinearizableGet => kv
                        .range(RangeRequest {
                            key: b"bench/key".to_vec(),
                            serializable: matches!(op, Op::SerializableGet),
                            ..RangeRequest::default()
                        })
                        .await
                        .is_ok(),
                    Op::Put => kv
                        .put(PutRequest {
                            key: format!("bench/{c}/{}", i % 64).into_bytes(),
                            value: vec![b'v'; 256],
                            ..PutRequest::default()
                        })
                        .await
                        .is_ok(),
                };
                assert!(ok, "request failed");
                i += 1;
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await.expect("caller task");
    }
    let wall = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    let n = done.load(Ordering::Relaxed) as f64;
    (n / wall, cpu / n * 1e6)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let secs: f64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(3.0);
    let callers: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(64);
    let conns: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(8);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let ports: Vec<u16> = (0..2)
        .map(|_| {
            std::net::TcpListener::bind("127.0.0.1:0")
                .expect("an ephemeral port")
                .local_addr()
                .expect("bound")
                .port()
        })
        .collect();
    let cfg = local_cluster(dir.path(), &[(ports[0], ports[1])], "bench-grpc")
        .pop()
        .expect("one member");
    let running = synod_server::start(cfg, false)
        .await
        .expect("the member starts");
    let url = format!("http://127.0.0.1:{}", ports[0]);
    let mut chans = Vec::new();
    for _ in 0..conns.max(1) {
        chans.push(
            Endpoint::from_shared(url.clone())
                .expect("a URL")
                .tcp_nodelay(true)
                .connect()
                .await
                .expect("connect"),
        );
    }
    // Wait for the member to lead, then write the key the reads ask for.
    let mut kv = KvClient::new(chans[0].clone());
    let t0 = Instant::now();
    loop {
        let put = PutRequest {
            key: b"bench/key".to_vec(),
            value: vec![b'v'; 256],
            ..PutRequest::default()
        };
        if kv.put(put).await.is_ok() {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "no leader");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "{callers} callers over {conns} connections, {secs} s each, one member, 2 worker threads"
    );
    println!(
        "{:<22} {:>12} {:>22}",
        "request", "requests/s", "CPU µs/request (all)"
    );
    for (name, op) in [
        ("serializable range", Op::SerializableGet),
        ("linearizable range", Op::LinearizableGet),
        ("put (fdatasync)", Op::Put),
    ] {
        let (rate, cpu_us) = run(op, &chans, callers, secs).await;
        println!("{name:<22} {rate:>12.0} {cpu_us:>22.1}");
    }
    let _ = running.stop().await;
}
