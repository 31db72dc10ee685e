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

/// The node's histograms and counters that are not about one group or one
/// peer (those live with [`crate::shared::Groups`] and [`crate::shared::Peers`]).
#[derive(Debug, Default)]
pub struct Metrics {
    /// Latencies of the WAL's fdatasync (the disk thread observes them).
    pub wal_fsync: Arc<Histogram>,
    /// Latencies of the store's durable commits (the actor observes them).
    pub backend_commit: Histogram,
    /// Peer messages dropped because a queue was full.
    pub dropped: AtomicU64,
    /// Bytes of the latest snapshot image.
    pub snapshot_bytes: AtomicU64,
}
