//! Plain HTTP beside gRPC on the client port: `/health` and `/version`
//! (etcd's shapes), Prometheus `/metrics`, and etcd's JSON gateway
//! ([`crate::gateway`]); any other path answers as etcd's does: 404 to
//! HTTP, Unimplemented to gRPC.

use std::fmt::Write;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::http::StatusCode;
use axum::routing::get;
use tonic::service::Routes;

use crate::grpc::Api;
use crate::layout::{data_dir_bytes, store_bytes};
use crate::shared::{GroupState, Shared};

/// etcd's `/health` answer: healthy while every group hosted here knows a
/// leader.
pub fn health(s: &Shared) -> (StatusCode, String) {
    if s.groups.all_have_leader() {
        (StatusCode::OK, r#"{"health":"true","reason":""}"#.into())
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            r#"{"health":"false","reason":"RAFT NO LEADER"}"#.into(),
        )
    }
}

/// etcd's `/version` answer: the server's version and the cluster's
/// (major.minor.0).
pub fn version() -> String {
    let server = crate::grpc::ETCD_VERSION;
    let mut parts = server.split('.');
    let cluster = format!(
        "{}.{}.0",
        parts.next().unwrap_or("3"),
        parts.next().unwrap_or("5")
    );
    format!(r#"{{"etcdserver":"{server}","etcdcluster":"{cluster}"}}"#)
}

/// What a path nobody serves answers: gRPC's Unimplemented to a gRPC call,
/// and to anything else 404 with the text etcd's (Go's) muxes give.
async fn not_found(req: axum::extract::Request) -> axum::response::Response {
    let grpc = req
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    if grpc {
        let path = req.uri().path().trim_start_matches('/');
        let service = path.split('/').next().unwrap_or("");
        let (parts, ()) = tonic::Status::unimplemented(format!("unknown service {service}"))
            .into_http::<()>()
            .into_parts();
        return axum::response::Response::from_parts(parts, axum::body::Body::empty());
    }
    // Under the gateway's prefixes grpc-gateway's own 404 answers.
    let body = if crate::gateway::under_gateway(req.uri().path()) {
        "Not Found\n"
    } else {
        "404 page not found\n"
    };
    axum::response::Response::builder()
        .status(StatusCode::NOT_FOUND)
        .header(
            axum::http::header::CONTENT_TYPE,
            "text/plain; charset=utf-8",
        )
        .header("x-content-type-options", "nosniff")
        .body(axum::body::Body::from(body))
        .expect("a static response builds")
}

/// tonic refuses a message over its decoding limit with OutOfRange and a
/// text of its own; grpc-go, under etcd, with ResourceExhausted and
/// "grpc: received message larger than max (N vs. M)". Rewrites the one into
/// the other on a trailers-only response, so clients see what etcd says.
async fn grpc_size_error(mut resp: axum::response::Response) -> axum::response::Response {
    let h = resp.headers();
    if h.get("grpc-status").map(|v| v.as_bytes()) != Some(b"11") {
        return resp;
    }
    let Some(msg) = h.get("grpc-message").and_then(|v| v.to_str().ok()) else {
        return resp;
    };
    let Some(etcd) = grpc_go_size_message(&percent_decoded(msg)) else {
        return resp;
    };
    let h = resp.headers_mut();
    h.insert("grpc-status", axum::http::HeaderValue::from_static("8"));
    if let Ok(v) = axum::http::HeaderValue::from_str(&etcd) {
        h.insert("grpc-message", v);
    }
    resp
}

/// grpc-go's message for tonic's "decoded message length too large".
pub fn grpc_go_size_message(tonic: &str) -> Option<String> {
    let rest = tonic.strip_prefix("Error, decoded message length too large: found ")?;
    let (found, rest) = rest.split_once(" bytes, the limit is: ")?;
    let limit = rest.strip_suffix(" bytes")?;
    let (found, limit): (u64, u64) = (found.parse().ok()?, limit.parse().ok()?);
    Some(format!(
        "grpc: received message larger than max ({found} vs. {limit})"
    ))
}

fn percent_decoded(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (
            b[i],
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A gRPC response body that reports the call handled when its trailers
/// pass (or it ends or is dropped without them: the call was cancelled).
struct Counted {
    inner: axum::body::Body,
    done: Option<(Arc<Shared>, crate::metrics::GrpcMethod, std::time::Instant)>,
}

impl Counted {
    fn finish(&mut self, code: i32) {
        if let Some((s, m, t0)) = self.done.take() {
            s.metrics.grpc.handled(&m, code, t0.elapsed());
        }
    }
}

impl http_body::Body for Counted {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let r = std::pin::Pin::new(&mut self.inner).poll_frame(cx);
        match &r {
            std::task::Poll::Ready(Some(Ok(frame))) => {
                if let Some(t) = frame.trailers_ref() {
                    let code = grpc_status(t).unwrap_or(2);
                    self.finish(code);
                }
            }
            std::task::Poll::Ready(Some(Err(_))) => self.finish(13),
            std::task::Poll::Ready(None) => self.finish(2),
            std::task::Poll::Pending => {}
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        // Dropped before its trailers: the client went away.
        self.finish(1);
    }
}

fn grpc_status(h: &axum::http::HeaderMap) -> Option<i32> {
    h.get("grpc-status")?.to_str().ok()?.parse().ok()
}

/// Counts gRPC calls as go-grpc-prometheus does under etcd: started when
/// they come, handled with their code when their status is sent.
async fn count_grpc(
    s: Arc<Shared>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let grpc = req
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    let method = grpc
        .then(|| crate::metrics::GrpcMethod::from_path(req.uri().path()))
        .flatten();
    let Some(method) = method else {
        return next.run(req).await;
    };
    s.metrics.grpc.started(&method);
    let t0 = std::time::Instant::now();
    let resp = next.run(req).await;
    if let Some(code) = grpc_status(resp.headers()) {
        // Trailers-only: the call ended with its headers.
        s.metrics.grpc.handled(&method, code, t0.elapsed());
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let counted = Counted {
        inner: body,
        done: Some((s, method, t0)),
    };
    axum::response::Response::from_parts(parts, axum::body::Body::new(counted))
}

/// etcd's own figures under etcd's names (the families its dashboards and
/// alerts read), from what this member publishes.
fn etcd_metrics(s: &Shared, out: &mut String) {
    let home = s.groups.home();
    let mut gauge = |name: &str, help: &str, kind: &str, v: i64| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        let _ = writeln!(out, "{name} {v}");
    };
    gauge(
        "etcd_server_has_leader",
        "Whether or not a leader exists. 1 is existence, 0 is not.",
        "gauge",
        i64::from(home.leader() != 0),
    );
    gauge(
        "etcd_server_is_leader",
        "Whether or not this member is a leader. 1 if is, 0 otherwise.",
        "gauge",
        i64::from(home.leader() == s.cfg.id),
    );
    gauge(
        "etcd_server_leader_changes_seen_total",
        "The number of leader changes seen.",
        "counter",
        s.groups.leader_changes() as i64,
    );
    gauge(
        "etcd_server_proposals_committed_total",
        "The total number of consensus proposals committed.",
        "gauge",
        s.groups.iter().map(|g| g.commit() as i64).sum(),
    );
    gauge(
        "etcd_server_proposals_applied_total",
        "The total number of consensus proposals applied.",
        "gauge",
        s.groups.iter().map(|g| g.applied() as i64).sum(),
    );
    gauge(
        "etcd_server_proposals_pending",
        "The current number of pending proposals to commit.",
        "gauge",
        s.metrics.proposals_pending.load(Ordering::Relaxed).max(0),
    );
    gauge(
        "etcd_server_proposals_failed_total",
        "The total number of failed proposals seen.",
        "counter",
        s.metrics.proposals_failed.load(Ordering::Relaxed) as i64,
    );
    gauge(
        "etcd_debugging_mvcc_current_revision",
        "The current revision of store.",
        "gauge",
        home.revision(),
    );
    let size = i64::try_from(store_bytes(&s.cfg.data_dir)).unwrap_or(i64::MAX);
    gauge(
        "etcd_mvcc_db_total_size_in_use_in_bytes",
        "Total size of the underlying database logically in use in bytes.",
        "gauge",
        size,
    );
    gauge(
        "etcd_server_quota_backend_bytes",
        "Current backend storage quota size in bytes (etcd's default; synod enforces none).",
        "gauge",
        ETCD_DEFAULT_QUOTA,
    );
    s.metrics.grpc.render(out);
}

/// etcd's default `--quota-backend-bytes`, 2 GiB.
const ETCD_DEFAULT_QUOTA: i64 = 2 << 30;

/// The Prometheus text exposition of a node's figures. The unlabelled
/// leader, term and revision figures are the home group's (with one group,
/// the node's); the `synod_group_*` families give each group's, labelled
/// `group="<shard id>"`.
pub fn metrics(s: &Shared) -> String {
    let mut out = String::new();
    let home = s.groups.home();
    let mut gauge = |name: &str, help: &str, kind: &str, v: i64| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        let _ = writeln!(out, "{name} {v}");
    };
    gauge(
        "synod_server_has_leader",
        "Whether a leader of the home group is known (1) or not (0).",
        "gauge",
        i64::from(home.leader() != 0),
    );
    gauge(
        "synod_server_is_leader",
        "Whether this member leads the home group.",
        "gauge",
        i64::from(home.leader() == s.cfg.id),
    );
    gauge(
        "synod_server_leader_changes_seen_total",
        "Leader changes this member has seen, over every group.",
        "counter",
        s.groups.leader_changes() as i64,
    );
    gauge(
        "synod_raft_term",
        "The home group's current Raft term.",
        "gauge",
        home.term() as i64,
    );
    gauge(
        "synod_mvcc_revision",
        "The home group's store's current revision.",
        "gauge",
        home.revision(),
    );
    gauge(
        "synod_snapshot_bytes",
        "Size of the latest state-machine snapshot image.",
        "gauge",
        s.metrics.snapshot_bytes.load(Ordering::Relaxed) as i64,
    );
    gauge(
        "synod_peer_messages_dropped_total",
        "Peer messages dropped because a queue was full or a peer unreachable.",
        "counter",
        s.metrics.dropped.load(Ordering::Relaxed) as i64,
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
    group_metrics(s, &mut out);
    s.metrics.wal_fsync.render(
        &mut out,
        "etcd_disk_wal_fsync_duration_seconds",
        "The latency distributions of fdatasync called by the WAL.",
    );
    s.metrics.backend_commit.render(
        &mut out,
        "etcd_disk_backend_commit_duration_seconds",
        "The latency distributions of commit called by backend.",
    );
    s.peers.rtt_metrics(&mut out);
    etcd_metrics(s, &mut out);
    out
}

/// Each group's figures, one labelled sample per group; first the counts of
/// ranges this member hosts and leads.
fn group_metrics(s: &Shared, out: &mut String) {
    let me = s.cfg.id;
    let (hosted, led) = s.groups.iter().fold((0u64, 0u64), |(h, l), g| {
        (h + 1, l + u64::from(g.leader() == me))
    });
    for (name, help, value) in [
        (
            "synod_ranges",
            "Ranges (Raft groups) this member hosts.",
            hosted,
        ),
        ("synod_range_leaders", "Ranges this member leads.", led),
    ] {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} gauge");
        let _ = writeln!(out, "{name} {value}");
    }
    type Figure = fn(&GroupState, u64) -> i64;
    let families: [(&str, &str, &str, Figure); 5] = [
        (
            "synod_group_has_leader",
            "Whether the group's leader is known (1) or not (0).",
            "gauge",
            |g, _| i64::from(g.leader() != 0),
        ),
        (
            "synod_group_is_leader",
            "Whether this member leads the group.",
            "gauge",
            |g, me| i64::from(g.leader() == me),
        ),
        (
            "synod_group_term",
            "The group's current Raft term.",
            "gauge",
            |g, _| g.term() as i64,
        ),
        (
            "synod_group_revision",
            "The revision of the group's store.",
            "gauge",
            |g, _| g.revision(),
        ),
        (
            "synod_group_leader_changes_seen_total",
            "Leader changes this member has seen in the group.",
            "counter",
            |g, _| g.leader_changes() as i64,
        ),
    ];
    for (name, help, kind, figure) in families {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for g in s.groups.iter() {
            let _ = writeln!(
                out,
                "{name}{{group=\"{}\"}} {}",
                g.shard,
                figure(&g, s.cfg.id)
            );
        }
    }
}

/// Adds `/health`, `/metrics` and etcd's JSON gateway to the gRPC routes.
pub fn add_http(routes: Routes, shared: Arc<Shared>, api: Api) -> Routes {
    let max_body = 2 * shared.cfg.max_request_bytes + (64 << 10);
    let counting = shared.clone();
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
            "/version",
            get(|| async {
                (
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    version(),
                )
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
    let guard = api.clone();
    Routes::from(
        crate::gateway::add_gateway(router, api, max_body)
            .fallback(not_found)
            .layer(axum::middleware::from_fn(move |req, next| {
                crate::gateway::refuse_common_names(guard.clone(), req, next)
            }))
            .layer(axum::middleware::map_response(grpc_size_error))
            .layer(axum::middleware::from_fn(move |req, next| {
                count_grpc(counting.clone(), req, next)
            })),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use synod_node::KeyRange;

    #[test]
    fn tonics_size_refusal_reads_as_grpc_gos() {
        assert_eq!(
            grpc_go_size_message(
                "Error, decoded message length too large: found 3000011 bytes, the limit is: 2097152 bytes"
            )
            .as_deref(),
            Some("grpc: received message larger than max (3000011 vs. 2097152)")
        );
        assert_eq!(
            grpc_go_size_message("etcdserver: request is too large"),
            None
        );
        assert_eq!(percent_decoded("a%20b%3Ac%"), "a b:c%");
    }

    #[test]
    fn metrics_give_each_group_its_labelled_figures_and_keep_the_unlabelled_ones() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = crate::config::RawConfig::default().validate().unwrap();
        cfg.data_dir = dir.path().to_path_buf();
        let me = cfg.id;
        let s = Shared::new(
            cfg,
            false,
            &[(KeyRange::new("", "m"), 1), (KeyRange::new("m", ""), 2)],
        );
        s.groups.get(1).unwrap().leader_changed(me, 4);
        s.groups.get(1).unwrap().publish(me, 4, 9);
        s.groups.get(2).unwrap().leader_changed(me + 1, 6);
        s.groups.get(2).unwrap().publish(me + 1, 6, 17);
        let m = metrics(&s);
        for line in [
            "synod_server_has_leader 1",
            "synod_server_is_leader 1",
            "synod_raft_term 4",
            "synod_mvcc_revision 9",
            "synod_server_leader_changes_seen_total 2",
            "synod_ranges 2",
            "synod_range_leaders 1",
            "synod_group_has_leader{group=\"1\"} 1",
            "synod_group_has_leader{group=\"2\"} 1",
            "synod_group_is_leader{group=\"1\"} 1",
            "synod_group_is_leader{group=\"2\"} 0",
            "synod_group_term{group=\"1\"} 4",
            "synod_group_term{group=\"2\"} 6",
            "synod_group_revision{group=\"2\"} 17",
            "synod_group_leader_changes_seen_total{group=\"2\"} 1",
            "# TYPE synod_group_term gauge",
            "# TYPE etcd_disk_wal_fsync_duration_seconds histogram",
            "# TYPE etcd_network_peer_round_trip_time_seconds histogram",
            "etcd_server_has_leader 1",
            "etcd_server_is_leader 1",
            "etcd_server_leader_changes_seen_total 2",
            "etcd_server_proposals_committed_total 0",
            "etcd_server_proposals_pending 0",
            "etcd_server_proposals_failed_total 0",
            "etcd_server_quota_backend_bytes 2147483648",
            "# TYPE grpc_server_handled_total counter",
        ] {
            assert!(m.lines().any(|l| l == line), "{line} not in:\n{m}");
        }
        assert_eq!(health(&s).0, StatusCode::OK);
        s.groups.get(2).unwrap().publish(0, 7, 17);
        assert_eq!(
            health(&s).0,
            StatusCode::SERVICE_UNAVAILABLE,
            "a group without a leader makes the member unhealthy"
        );
    }
}
