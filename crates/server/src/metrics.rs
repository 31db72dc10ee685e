//! The metric types `/metrics` exposes (Prometheus histograms with etcd's
//! bucket bounds), apart from the HTTP that serves them, so the disk thread,
//! the transport and the published state can observe without depending on
//! the web side.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

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
    pub fn render(&self, out: &mut String, name: &str, help: &str) {
        Histogram::render_header(out, name, help);
        self.render_samples(out, name, "");
    }
}

/// Upper bounds, in seconds, of go-grpc-prometheus's default
/// `grpc_server_handling_seconds` buckets.
pub const GRPC_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// One gRPC method as go-grpc-prometheus labels it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct GrpcMethod {
    /// `etcdserverpb.KV`.
    pub service: String,
    /// `Range`.
    pub method: String,
    /// `unary`, `client_stream`, `server_stream` or `bidi_stream`.
    pub kind: &'static str,
}

impl GrpcMethod {
    /// The method a request path (`/etcdserverpb.KV/Range`) names; `None`
    /// for anything else.
    pub fn from_path(path: &str) -> Option<GrpcMethod> {
        let (service, method) = path.strip_prefix('/')?.split_once('/')?;
        if service.is_empty() || method.is_empty() || method.contains('/') {
            return None;
        }
        let kind = match (service, method) {
            ("etcdserverpb.Watch", "Watch") | ("etcdserverpb.Lease", "LeaseKeepAlive") => {
                "bidi_stream"
            }
            ("etcdserverpb.Maintenance", "Snapshot") | ("v3electionpb.Election", "Observe") => {
                "server_stream"
            }
            _ => "unary",
        };
        Some(GrpcMethod {
            service: service.to_owned(),
            method: method.to_owned(),
            kind,
        })
    }

    fn labels(&self) -> String {
        format!(
            "grpc_method=\"{}\",grpc_service=\"{}\",grpc_type=\"{}\"",
            self.method, self.service, self.kind
        )
    }
}

/// gRPC's code names as Go prints them (go-grpc-prometheus's `grpc_code`).
pub fn grpc_code_name(code: i32) -> &'static str {
    match code {
        0 => "OK",
        1 => "Canceled",
        3 => "InvalidArgument",
        4 => "DeadlineExceeded",
        5 => "NotFound",
        6 => "AlreadyExists",
        7 => "PermissionDenied",
        8 => "ResourceExhausted",
        9 => "FailedPrecondition",
        10 => "Aborted",
        11 => "OutOfRange",
        12 => "Unimplemented",
        13 => "Internal",
        14 => "Unavailable",
        15 => "DataLoss",
        16 => "Unauthenticated",
        _ => "Unknown",
    }
}

#[derive(Debug)]
struct MethodFigures {
    started: u64,
    handled: std::collections::BTreeMap<&'static str, u64>,
    seconds: Histogram,
}

/// go-grpc-prometheus's server figures, by method: RPCs started, RPCs
/// handled by code, and the handling time of those handled.
#[derive(Debug, Default)]
pub struct GrpcMetrics {
    by_method: std::sync::Mutex<std::collections::BTreeMap<GrpcMethod, MethodFigures>>,
}

/// Most methods counted (a client may call any path; unknown ones beyond
/// this are not counted).
const MAX_METHODS: usize = 256;

impl GrpcMetrics {
    fn with<R>(&self, m: &GrpcMethod, f: impl FnOnce(&mut MethodFigures) -> R) -> Option<R> {
        let mut map = self.by_method.lock().expect("grpc metrics lock");
        if !map.contains_key(m) {
            if map.len() >= MAX_METHODS {
                return None;
            }
            map.insert(
                m.clone(),
                MethodFigures {
                    started: 0,
                    handled: std::collections::BTreeMap::new(),
                    seconds: Histogram::new(&GRPC_BUCKETS),
                },
            );
        }
        map.get_mut(m).map(f)
    }

    /// An RPC of `m` began.
    pub fn started(&self, m: &GrpcMethod) {
        self.with(m, |f| f.started += 1);
    }

    /// An RPC of `m` ended with `code` after `took`.
    pub fn handled(&self, m: &GrpcMethod, code: i32, took: Duration) {
        self.with(m, |f| {
            *f.handled.entry(grpc_code_name(code)).or_insert(0) += 1;
            f.seconds.observe(took);
        });
    }

    /// The three families in the text exposition format.
    pub fn render(&self, out: &mut String) {
        let map = self.by_method.lock().expect("grpc metrics lock");
        let _ = writeln!(
            out,
            "# HELP grpc_server_started_total Total number of RPCs started on the server."
        );
        let _ = writeln!(out, "# TYPE grpc_server_started_total counter");
        for (m, f) in map.iter() {
            let _ = writeln!(
                out,
                "grpc_server_started_total{{{}}} {}",
                m.labels(),
                f.started
            );
        }
        let _ = writeln!(
            out,
            "# HELP grpc_server_handled_total Total number of RPCs completed on the server, \
             regardless of success or failure."
        );
        let _ = writeln!(out, "# TYPE grpc_server_handled_total counter");
        for (m, f) in map.iter() {
            for (code, n) in &f.handled {
                let _ = writeln!(
                    out,
                    "grpc_server_handled_total{{grpc_code=\"{code}\",{}}} {n}",
                    m.labels()
                );
            }
        }
        Histogram::render_header(
            out,
            "grpc_server_handling_seconds",
            "Histogram of response latency (seconds) of gRPC that had been application-level \
             handled by the server.",
        );
        for (m, f) in map.iter() {
            f.seconds
                .render_samples(out, "grpc_server_handling_seconds", &m.labels());
        }
    }
}

/// The node's histograms and counters that are not about one group or one
/// peer (those live with [`crate::shared::Groups`] and [`crate::shared::Peers`]).
#[derive(Debug, Default)]
pub struct Metrics {
    /// gRPC calls by method and code (go-grpc-prometheus's names).
    pub grpc: GrpcMetrics,
    /// Writes proposed and not yet answered (etcd's proposals pending).
    pub proposals_pending: std::sync::atomic::AtomicI64,
    /// Writes that failed for want of a leader or of time (etcd's
    /// proposals failed).
    pub proposals_failed: AtomicU64,
    /// Latencies of the WAL's fdatasync (the disk thread observes them).
    pub wal_fsync: Arc<Histogram>,
    /// Latencies of the store's durable commits (the actor observes them).
    pub backend_commit: Histogram,
    /// Peer messages dropped because a queue was full.
    pub dropped: AtomicU64,
    /// Bytes of the latest snapshot image.
    pub snapshot_bytes: AtomicU64,
}
