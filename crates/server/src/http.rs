//! Plain HTTP beside gRPC on the client port: `/health` (etcd's shape),
//! Prometheus `/metrics`, and etcd's JSON gateway ([`crate::gateway`]).

use std::fmt::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::routing::get;
use tonic::service::Routes;

use crate::grpc::Api;
use crate::shared::Shared;

/// etcd's `/health` answer: healthy while a leader is known.
pub fn health(s: &Shared) -> (StatusCode, String) {
    if s.leader() != 0 {
        (StatusCode::OK, r#"{"health":"true","reason":""}"#.into())
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            r#"{"health":"false","reason":"RAFT NO LEADER"}"#.into(),
        )
    }
}

/// Upper bounds, in seconds, of etcd's `etcd_disk_wal_fsync_duration_seconds`
/// buckets: 1 ms doubling up to 8.192 s.
pub const FSYNC_BUCKETS: [f64; 14] = [
    0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048, 4.096,
    8.192,
];

/// Upper bounds, in seconds, of etcd's `etcd_network_peer_round_trip_time_seconds`
/// buckets: 0.1 ms doubling up to 3.2768 s.
pub const RTT_BUCKETS: [f64; 16] = [
    0.0001, 0.0002, 0.0004, 0.0008, 0.0016, 0.0032, 0.0064, 0.0128, 0.0256, 0.0512, 0.1024, 0.2048,
    0.4096, 0.8192, 1.6384, 3.2768,
];

/// A Prometheus histogram over fixed bucket bounds, updated without locks.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    /// Observations per bucket (not cumulative); the last one is `+Inf`.
    counts: Box<[AtomicU64]>,
    sum_nanos: AtomicU64,
}

impl Default for Histogram {
    /// Over [`FSYNC_BUCKETS`].
    fn default() -> Self {
        Histogram::new(&FSYNC_BUCKETS)
    }
}

impl Histogram {
    /// An empty histogram with these upper bounds (ascending).
    pub fn new(bounds: &'static [f64]) -> Histogram {
        assert!(
            bounds.windows(2).all(|w| w[0] < w[1]),
            "bucket bounds must ascend"
        );
        Histogram {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_nanos: AtomicU64::new(0),
        }
    }

    /// Records one duration.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = self
            .bounds
            .iter()
            .position(|&b| secs <= b)
            .unwrap_or(self.bounds.len());
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    /// Appends the `# HELP` and `# TYPE` lines of a histogram family.
    pub fn render_header(out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} histogram");
    }

    /// Appends this histogram's samples in the text exposition format:
    /// cumulative `_bucket` lines, then `_sum` (seconds) and `_count`, each
    /// with `labels` (`To="ab"`, or empty) in front of the bucket's `le`.
    pub fn render_samples(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let mut total = 0;
        for (i, c) in self.counts.iter().enumerate() {
            total += c.load(Ordering::Relaxed);
            match self.bounds.get(i) {
                Some(b) => {
                    let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {total}");
                }
                None => {
                    let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {total}");
                }
            }
        }
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "{name}_sum{braces} {sum}");
        let _ = writeln!(out, "{name}_count{braces} {total}");
    }

    /// Appends the whole family for this one unlabelled histogram.
    fn render(&self, out: &mut String, name: &str, help: &str) {
        Histogram::render_header(out, name, help);
        self.render_samples(out, name, "");
    }
}

/// Bytes of the state machine's store file (`member/store.redb`): what
/// etcd reports as its backend database size.
pub fn store_bytes(data_dir: &Path) -> u64 {
    std::fs::metadata(crate::disk::store_path(data_dir)).map_or(0, |m| m.len())
}

/// Bytes of everything a member keeps on disk: the store file, the Raft
/// log's WAL segments and any snapshot images.
pub fn data_dir_bytes(data_dir: &Path) -> u64 {
    fn walk(dir: &Path, depth: u32) -> u64 {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return 0;
        };
        let mut n = 0;
        for e in rd.flatten() {
            match e.metadata() {
                Ok(m) if m.is_file() => n += m.len(),
                Ok(m) if m.is_dir() && depth > 0 => n += walk(&e.path(), depth - 1),
                _ => {}
            }
        }
        n
    }
    walk(data_dir, 3)
}

/// The Prometheus text exposition of a node's figures.
pub fn metrics(s: &Shared) -> String {
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, kind: &str, v: i64| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        let _ = writeln!(out, "{name} {v}");
    };
    gauge(
        "synod_server_has_leader",
        "Whether a leader is known (1) or not (0).",
        "gauge",
        i64::from(s.leader() != 0),
    );
    gauge(
        "synod_server_is_leader",
        "Whether this member is the leader.",
        "gauge",
        i64::from(s.leader() == s.cfg.id),
    );
    gauge(
        "synod_server_leader_changes_seen_total",
        "Leader changes this member has seen.",
        "counter",
        s.leader_changes.load(Ordering::Relaxed) as i64,
    );
    gauge(
        "synod_raft_term",
        "The current Raft term.",
        "gauge",
        s.term() as i64,
    );
    gauge(
        "synod_mvcc_revision",
        "The store's current revision.",
        "gauge",
        s.revision(),
    );
    gauge(
        "synod_snapshot_bytes",
        "Size of the latest state-machine snapshot image.",
        "gauge",
        s.snapshot_bytes.load(Ordering::Relaxed) as i64,
    );
    gauge(
        "synod_peer_messages_dropped_total",
        "Peer messages dropped because a queue was full or a peer unreachable.",
        "counter",
        s.dropped.load(Ordering::Relaxed) as i64,
    );
    gauge(
        "etcd_mvcc_db_total_size_in_bytes",
        "Total size of the underlying database physically allocated in bytes \
         (synod's store file, member/store.redb).",
        "gauge",
        i64::try_from(store_bytes(&s.cfg.data_dir)).unwrap_or(i64::MAX),
    );
    gauge(
        "synod_disk_data_dir_bytes",
        "Bytes of everything in the data dir: the store file, the WAL's \
         (preallocated) segments and snapshot images.",
        "gauge",
        i64::try_from(data_dir_bytes(&s.cfg.data_dir)).unwrap_or(i64::MAX),
    );
    s.wal_fsync.render(
        &mut out,
        "etcd_disk_wal_fsync_duration_seconds",
        "The latency distributions of fdatasync called by the WAL.",
    );
    s.backend_commit.render(
        &mut out,
        "etcd_disk_backend_commit_duration_seconds",
        "The latency distributions of commit called by backend.",
    );
    s.rtt_metrics(&mut out);
    out
}

/// Adds `/health`, `/metrics` and etcd's JSON gateway to the gRPC routes.
pub fn add_http(routes: Routes, shared: Arc<Shared>, api: Api) -> Routes {
    let max_body = 2 * shared.cfg.max_request_bytes + (64 << 10);
    let (a, b) = (shared.clone(), shared);
    let router = routes
        .into_axum_router()
        .route(
            "/health",
            get(move || {
                let s = a.clone();
                async move { health(&s) }
            }),
        )
        .route(
            "/metrics",
            get(move || {
                let s = b.clone();
                // Sizing the store reads the file system.
                async move {
                    tokio::task::spawn_blocking(move || metrics(&s))
                        .await
                        .unwrap_or_default()
                }
            }),
        );
    Routes::from(crate::gateway::add_gateway(router, api, max_body))
}
