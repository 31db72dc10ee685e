//! Plain HTTP beside gRPC on the client port: `/health` (etcd's shape),
//! Prometheus `/metrics`, and etcd's JSON gateway ([`crate::gateway`]).

use std::fmt::Write;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::http::StatusCode;
use axum::routing::get;
use tonic::service::Routes;

use crate::grpc::Api;
use crate::layout::{data_dir_bytes, store_bytes};
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
