//! A client for a cluster given as a list of endpoints.
//!
//! [`Client::connect`] opens a lazy HTTP/2 channel to every endpoint and picks
//! the first one that answers `Maintenance.Status` and knows a leader (or, if
//! none knows one, the first that answers at all). Requests go to that
//! endpoint; when it becomes unavailable the client moves to the next one.
//!
//! Retries are bounded ([`ClientOptions::max_attempts`], exponential backoff)
//! and respect what a retry could do to the data:
//!
//! * requests that change nothing (Range, a Txn made only of Ranges, lease
//!   time-to-live and listings, member list, status) are retried on
//!   `Unavailable` and on "etcdserver: leader changed" / "no leader" /
//!   "request timed out";
//! * requests that write are retried only when the server certainly did not
//!   take them in: the connection could not be opened, or the server answered
//!   "etcdserver: no leader" (it refuses before proposing). A write whose
//!   outcome is unknown is reported, never silently repeated.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use synod_proto::etcdserverpb::cluster_client::ClusterClient;
use synod_proto::etcdserverpb::kv_client::KvClient;
use synod_proto::etcdserverpb::lease_client::LeaseClient;
use synod_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use synod_proto::etcdserverpb::watch_client::WatchClient;
use synod_proto::etcdserverpb::{
    request_op, watch_request, CompactionRequest, CompactionResponse, DeleteRangeRequest,
    DeleteRangeResponse, HashKvRequest, HashKvResponse, LeaseGrantRequest, LeaseGrantResponse,
    LeaseKeepAliveRequest, LeaseKeepAliveResponse, LeaseLeasesRequest, LeaseLeasesResponse,
    LeaseRevokeRequest, LeaseRevokeResponse, LeaseTimeToLiveRequest, LeaseTimeToLiveResponse,
    MemberAddRequest, MemberAddResponse, MemberListRequest, MemberListResponse,
    MemberPromoteRequest, MemberPromoteResponse, MemberRemoveRequest, MemberRemoveResponse,
    MemberUpdateRequest, MemberUpdateResponse, PutRequest, PutResponse, RangeRequest,
    RangeResponse, SnapshotRequest, SnapshotResponse, StatusRequest, StatusResponse, TxnRequest,
    TxnResponse, WatchCancelRequest, WatchCreateRequest, WatchRequest, WatchResponse,
};
use synod_proto::limits;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status, Streaming};

use crate::error::{Error, Result};

/// Most endpoints a client accepts (a cluster is a handful of members).
pub const MAX_ENDPOINTS: usize = 64;
/// Most attempts any request may be given, whatever the options say.
pub const MAX_ATTEMPTS_CAP: u32 = 20;
/// Longest pause between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// HTTP/2 flow-control window of one stream. Kept at a quarter of the
/// connection's so that what one stream can have buffered unread stays
/// inside h2's budget for small DATA frames (half the connection window):
/// etcd sends each watch event in its own small frame, and a reader that
/// falls behind must be slowed by flow control, not cut off with GOAWAY
/// "too_many_data_frames".
const STREAM_WINDOW: u32 = 1 << 20;
/// HTTP/2 flow-control window of one connection.
const CONNECTION_WINDOW: u32 = 4 << 20;
/// Requests a watch or keep-alive stream may have queued before the sender waits.
const STREAM_QUEUE: usize = 64;

/// How a [`Client`] connects and retries.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// Time allowed to open a connection to one endpoint and hear its status.
    pub dial_timeout: Duration,
    /// Time allowed for one attempt of one request (streams excepted).
    pub request_timeout: Duration,
    /// Attempts per request, the first included (capped at [`MAX_ATTEMPTS_CAP`]).
    pub max_attempts: u32,
    /// Pause before the second attempt; doubled for each further one.
    pub backoff: Duration,
    /// Index of the endpoint to try first (wraps around); lets many clients
    /// spread over a cluster.
    pub start_at: usize,
    /// Check health at connect time (Status on each endpoint until one
    /// answers). Without it the first endpoint is used as is.
    pub probe: bool,
    /// TLS settings: used for `https://` endpoints, and for `HOST:PORT`
    /// ones when given (as etcdctl does); `http://` ones stay plaintext.
    pub tls: Option<crate::tls::TlsOptions>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            dial_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(5),
            max_attempts: 5,
            backoff: Duration::from_millis(50),
            start_at: 0,
            probe: true,
            tls: None,
        }
    }
}

/// Whether repeating a request could change the outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retry {
    /// Reading only: safe to repeat.
    Idempotent,
    /// Writes: repeat only if the server certainly did not take it in.
    Mutation,
}

/// A connection to a cluster. Cheap to clone; clones share the channels.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    endpoints: Vec<String>,
    channels: Vec<Channel>,
    current: AtomicUsize,
    opts: ClientOptions,
}

/// Turns `HOST:PORT`, `http://HOST:PORT` or `https://HOST:PORT` into a
/// URL (`http://` for a bare `HOST:PORT`).
pub fn endpoint_url(endpoint: &str) -> Result<String> {
    let e = endpoint.trim();
    let bad = |reason: &str| Error::BadEndpoint {
        endpoint: endpoint.to_string(),
        reason: reason.to_string(),
    };
    if e.is_empty() {
        return Err(bad("empty"));
    }
    let url = if e.starts_with("http://") || e.starts_with("https://") {
        e.to_string()
    } else if e.contains("://") {
        return Err(bad("only http:// and https:// endpoints are supported"));
    } else {
        format!("http://{e}")
    };
    let authority = url.split_once("://").map_or("", |(_, a)| a);
    let authority = authority.trim_end_matches('/');
    match authority.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {}
        _ => return Err(bad("expected HOST:PORT")),
    }
    Ok(url)
}

/// The `range_end` that selects every key starting with `key` (etcd's rule:
/// increment the last byte below 0xff, dropping trailing 0xff bytes; `"\0"`,
/// meaning "no upper bound", when every byte is 0xff or the key is empty).
pub fn prefix_end(key: &[u8]) -> Vec<u8> {
    let mut end = key.to_vec();
    while let Some(&last) = end.last() {
        if last < 0xff {
            *end.last_mut().expect("non-empty") += 1;
            return end;
        }
        end.pop();
    }
    vec![0]
}

/// Whether a refusal means the server did not take the request in at all.
/// Only a connection that never opened is certain: "no leader" is not, since
/// a server may say it after an earlier attempt of its own was proposed (the
/// crash-loop test's review found this), so a write refused that way has an
/// unknown outcome and is not retried.
fn never_started(s: &Status) -> bool {
    let m = s.message();
    s.code() == Code::Unavailable
        && (m.contains("connect") || m.contains("Connection refused") || m.contains("dns"))
}

/// Whether the request failed in the transport (the HTTP/2 connection broke
/// under it: a member killed mid-request surfaces as `Unknown` with a
/// `tonic::transport::Error` as its source, e.g. a broken pipe) rather than
/// being answered by a server.
fn transport_failed(s: &Status) -> bool {
    std::error::Error::source(s).is_some_and(|e| e.is::<tonic::transport::Error>())
}

/// Whether a read may be tried again after this refusal.
fn read_retryable(s: &Status) -> bool {
    // A connection closed under a request surfaces as Cancelled or as a
    // transport error: a read is safe to repeat elsewhere.
    matches!(s.code(), Code::Unavailable | Code::Cancelled)
        || transport_failed(s)
        || matches!(
            s.message(),
            "etcdserver: leader changed"
                | "etcdserver: no leader"
                | "etcdserver: request timed out"
                | "etcdserver: too many requests"
        )
}

/// Whether a refusal suggests moving to another endpoint.
fn endpoint_failed(s: &Status) -> bool {
    matches!(s.code(), Code::Unavailable | Code::Cancelled) || transport_failed(s)
}

impl Client {
    /// Opens channels to `endpoints` and picks a healthy one.
    pub async fn connect(endpoints: &[String], opts: ClientOptions) -> Result<Client> {
        if endpoints.is_empty() {
            return Err(Error::NoEndpoints);
        }
        if endpoints.len() > MAX_ENDPOINTS {
            return Err(Error::InvalidArgument(format!(
                "at most {MAX_ENDPOINTS} endpoints are accepted, got {}",
                endpoints.len()
            )));
        }
        let mut urls = Vec::with_capacity(endpoints.len());
        let mut channels = Vec::with_capacity(endpoints.len());
        let mut tls_config = None;
        for e in endpoints {
            let url = endpoint_url(e)?;
            let explicit = e.trim().contains("://");
            let tls = url.starts_with("https://") || (!explicit && opts.tls.is_some());
            // tonic dials http; TLS, when wanted, is the connector's.
            let plain = match url.strip_prefix("https://") {
                Some(rest) => format!("http://{rest}"),
                None => url.clone(),
            };
            let ep = Endpoint::from_shared(plain.clone())
                .map_err(|err| Error::BadEndpoint {
                    endpoint: e.clone(),
                    reason: err.to_string(),
                })?
                .connect_timeout(opts.dial_timeout)
                .tcp_nodelay(true)
                .http2_keep_alive_interval(Duration::from_secs(10))
                .keep_alive_timeout(Duration::from_secs(10))
                .keep_alive_while_idle(true)
                .initial_stream_window_size(STREAM_WINDOW)
                .initial_connection_window_size(CONNECTION_WINDOW);
            if tls {
                let cfg = match &tls_config {
                    Some(c) => Arc::clone(c),
                    None => {
                        let c = opts.tls.clone().unwrap_or_default().config()?;
                        tls_config = Some(c.clone());
                        c
                    }
                };
                let host = ep.uri().host().unwrap_or_default().to_string();
                let name = crate::tls::server_name(&host)?;
                channels.push(ep.connect_with_connector_lazy(crate::tls::connector(
                    cfg,
                    name,
                    opts.dial_timeout,
                )));
            } else {
                channels.push(ep.connect_lazy());
            }
            urls.push(e.trim().to_string());
        }
        let n = channels.len();
        let start = opts.start_at % n;
        let client = Client {
            inner: Arc::new(Inner {
                endpoints: urls,
                channels,
                current: AtomicUsize::new(start),
                opts,
            }),
        };
        if client.inner.opts.probe {
            client.pick_healthy().await?;
        }
        Ok(client)
    }

    /// Probes the endpoints from the current one on; settles on the first
    /// that answers and knows a leader, else the first that answers.
    async fn pick_healthy(&self) -> Result<()> {
        let n = self.inner.channels.len();
        let start = self.inner.current.load(Ordering::Relaxed);
        let mut answering = None;
        let mut last = String::from("none tried");
        for k in 0..n {
            let i = (start + k) % n;
            match self.status_of(i, self.inner.opts.dial_timeout).await {
                Ok(st) if st.leader != 0 => {
                    self.inner.current.store(i, Ordering::Relaxed);
                    return Ok(());
                }
                Ok(_) => {
                    answering.get_or_insert(i);
                    last = format!("{} has no leader", self.inner.endpoints[i]);
                }
                Err(e) => last = format!("{}: {e}", self.inner.endpoints[i]),
            }
        }
        match answering {
            Some(i) => {
                self.inner.current.store(i, Ordering::Relaxed);
                Ok(())
            }
            None => Err(Error::Unreachable {
                endpoints: self.inner.endpoints.join(","),
                last,
            }),
        }
    }

    /// The endpoints, as given.
    pub fn endpoints(&self) -> &[String] {
        &self.inner.endpoints
    }

    /// The endpoint requests currently go to.
    pub fn current_endpoint(&self) -> &str {
        &self.inner.endpoints[self.inner.current.load(Ordering::Relaxed)]
    }

    fn channel(&self) -> (usize, Channel) {
        let i = self.inner.current.load(Ordering::Relaxed);
        (i, self.inner.channels[i].clone())
    }

    fn advance_from(&self, failed: usize) {
        let n = self.inner.channels.len();
        // Only the first caller to see `failed` fail moves the client on.
        let _ = self.inner.current.compare_exchange(
            failed,
            (failed + 1) % n,
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }

    /// The channel (one HTTP/2 connection) to the current endpoint.
    pub fn current_channel(&self) -> Channel {
        self.channel().1
    }

    /// A KV client on the current endpoint (for callers that want the raw API).
    pub fn kv(&self) -> KvClient<Channel> {
        KvClient::new(self.channel().1)
            .max_decoding_message_size(limits::DEFAULT_MAX_ENCODING_MESSAGE_SIZE)
    }

    /// Runs one request with the retry policy of `kind`.
    pub async fn call<T, F, Fut>(&self, kind: Retry, mut f: F) -> Result<T>
    where
        F: FnMut(Channel) -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<T>, Status>>,
    {
        let attempts = self.inner.opts.max_attempts.clamp(1, MAX_ATTEMPTS_CAP);
        let timeout = self.inner.opts.request_timeout;
        let mut backoff = self.inner.opts.backoff;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (i, ch) = self.channel();
            let status = match tokio::time::timeout(timeout, f(ch)).await {
                Ok(Ok(resp)) => return Ok(resp.into_inner()),
                Ok(Err(s)) => s,
                Err(_) => return Err(Error::Timeout(timeout)),
            };
            if endpoint_failed(&status) {
                self.advance_from(i);
            }
            let retry = match kind {
                Retry::Idempotent => read_retryable(&status),
                Retry::Mutation => never_started(&status),
            };
            if !retry {
                return Err(Error::Status(status));
            }
            if attempt >= attempts {
                return Err(if attempts == 1 {
                    Error::Status(status)
                } else {
                    Error::RetriesExhausted {
                        attempts,
                        last: status,
                    }
                });
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// Range (Get).
    pub async fn range(&self, req: RangeRequest) -> Result<RangeResponse> {
        self.call(Retry::Idempotent, |ch| {
            let req = req.clone();
            async move {
                KvClient::new(ch)
                    .max_decoding_message_size(limits::DEFAULT_MAX_ENCODING_MESSAGE_SIZE)
                    .range(req)
                    .await
            }
        })
        .await
    }

    /// Put.
    pub async fn put(&self, req: PutRequest) -> Result<PutResponse> {
        self.call(Retry::Mutation, |ch| {
            let req = req.clone();
            async move { KvClient::new(ch).put(req).await }
        })
        .await
    }

    /// DeleteRange.
    pub async fn delete_range(&self, req: DeleteRangeRequest) -> Result<DeleteRangeResponse> {
        self.call(Retry::Mutation, |ch| {
            let req = req.clone();
            async move { KvClient::new(ch).delete_range(req).await }
        })
        .await
    }

    /// Txn; retried like a read when every operation in it is a Range.
    pub async fn txn(&self, req: TxnRequest) -> Result<TxnResponse> {
        let kind = if txn_read_only(&req) {
            Retry::Idempotent
        } else {
            Retry::Mutation
        };
        self.call(kind, |ch| {
            let req = req.clone();
            async move {
                KvClient::new(ch)
                    .max_decoding_message_size(limits::DEFAULT_MAX_ENCODING_MESSAGE_SIZE)
                    .txn(req)
                    .await
            }
        })
        .await
    }

    /// Compact.
    pub async fn compact(&self, revision: i64, physical: bool) -> Result<CompactionResponse> {
        self.call(Retry::Mutation, |ch| async move {
            KvClient::new(ch)
                .compact(CompactionRequest { revision, physical })
                .await
        })
        .await
    }

    /// LeaseGrant (`id` 0: the server picks).
    pub async fn lease_grant(&self, ttl: i64, id: i64) -> Result<LeaseGrantResponse> {
        self.call(Retry::Mutation, |ch| async move {
            LeaseClient::new(ch)
                .lease_grant(LeaseGrantRequest { ttl, id })
                .await
        })
        .await
    }

    /// LeaseRevoke.
    pub async fn lease_revoke(&self, id: i64) -> Result<LeaseRevokeResponse> {
        self.call(Retry::Mutation, |ch| async move {
            LeaseClient::new(ch)
                .lease_revoke(LeaseRevokeRequest { id })
                .await
        })
        .await
    }

    /// LeaseTimeToLive.
    pub async fn lease_time_to_live(&self, id: i64, keys: bool) -> Result<LeaseTimeToLiveResponse> {
        self.call(Retry::Idempotent, |ch| async move {
            LeaseClient::new(ch)
                .lease_time_to_live(LeaseTimeToLiveRequest { id, keys })
                .await
        })
        .await
    }

    /// LeaseLeases.
    pub async fn lease_leases(&self) -> Result<LeaseLeasesResponse> {
        self.call(Retry::Idempotent, |ch| async move {
            LeaseClient::new(ch)
                .lease_leases(LeaseLeasesRequest {})
                .await
        })
        .await
    }

    /// Opens a keep-alive stream whose first request renews `first`. Send
    /// further lease ids on the returned sender; each is answered on the
    /// stream. (The first request is queued before the call because a server
    /// may send its response headers only with its first answer.)
    pub async fn lease_keep_alive_stream(
        &self,
        first: i64,
    ) -> Result<(
        mpsc::Sender<LeaseKeepAliveRequest>,
        Streaming<LeaseKeepAliveResponse>,
    )> {
        let (tx, rx) = mpsc::channel(STREAM_QUEUE);
        tx.try_send(LeaseKeepAliveRequest { id: first })
            .expect("a fresh queue has room");
        let (_, ch) = self.channel();
        let timeout = self.inner.opts.request_timeout;
        let resp = tokio::time::timeout(
            timeout,
            LeaseClient::new(ch).lease_keep_alive(ReceiverStream::new(rx)),
        )
        .await
        .map_err(|_| Error::Timeout(timeout))??;
        Ok((tx, resp.into_inner()))
    }

    /// Renews lease `id` once; returns the server's answer (TTL <= 0: gone).
    pub async fn lease_keep_alive_once(&self, id: i64) -> Result<LeaseKeepAliveResponse> {
        let (_tx, mut stream) = self.lease_keep_alive_stream(id).await?;
        let timeout = self.inner.opts.request_timeout;
        match tokio::time::timeout(timeout, stream.message()).await {
            Err(_) => Err(Error::Timeout(timeout)),
            Ok(Err(s)) => Err(Error::Status(s)),
            Ok(Ok(None)) => Err(Error::StreamClosed("keep-alive".into())),
            Ok(Ok(Some(r))) => Ok(r),
        }
    }

    /// MemberList (linearizable).
    pub async fn member_list(&self) -> Result<MemberListResponse> {
        self.call(Retry::Idempotent, |ch| async move {
            ClusterClient::new(ch)
                .member_list(MemberListRequest { linearizable: true })
                .await
        })
        .await
    }

    /// MemberAdd: a voter, or a learner. Not retried (not idempotent).
    pub async fn member_add(
        &self,
        peer_urls: Vec<String>,
        learner: bool,
    ) -> Result<MemberAddResponse> {
        self.call(Retry::Mutation, |ch| {
            let req = MemberAddRequest {
                peer_ur_ls: peer_urls.clone(),
                is_learner: learner,
            };
            async move { ClusterClient::new(ch).member_add(req).await }
        })
        .await
    }

    /// MemberRemove.
    pub async fn member_remove(&self, id: u64) -> Result<MemberRemoveResponse> {
        self.call(Retry::Mutation, |ch| async move {
            ClusterClient::new(ch)
                .member_remove(MemberRemoveRequest { id })
                .await
        })
        .await
    }

    /// MemberUpdate: new peer URLs for a member.
    pub async fn member_update(
        &self,
        id: u64,
        peer_urls: Vec<String>,
    ) -> Result<MemberUpdateResponse> {
        self.call(Retry::Mutation, |ch| {
            let req = MemberUpdateRequest {
                id,
                peer_ur_ls: peer_urls.clone(),
            };
            async move { ClusterClient::new(ch).member_update(req).await }
        })
        .await
    }

    /// MemberPromote: a learner becomes a voter.
    pub async fn member_promote(&self, id: u64) -> Result<MemberPromoteResponse> {
        self.call(Retry::Mutation, |ch| async move {
            ClusterClient::new(ch)
                .member_promote(MemberPromoteRequest { id })
                .await
        })
        .await
    }

    /// Maintenance.Snapshot of the current endpoint: the stream of chunks.
    pub async fn snapshot(&self) -> Result<Streaming<SnapshotResponse>> {
        let r = MaintenanceClient::new(self.current_channel())
            .max_decoding_message_size(limits::DEFAULT_MAX_ENCODING_MESSAGE_SIZE)
            .snapshot(SnapshotRequest {})
            .await
            .map_err(Error::Status)?;
        Ok(r.into_inner())
    }

    /// synod's `Ranges.List`: the ranges of the keyspace as the member
    /// asked hosts them. etcd answers `Unimplemented` (it has one range).
    pub async fn ranges(&self) -> Result<synod_proto::synodpb::ListRangesResponse> {
        self.call(Retry::Idempotent, |ch| async move {
            synod_proto::synodpb::ranges_client::RangesClient::new(ch)
                .list(synod_proto::synodpb::ListRangesRequest {})
                .await
        })
        .await
    }

    /// Maintenance.Status of endpoint number `i` (no retry, no failover).
    pub async fn status_of(&self, i: usize, timeout: Duration) -> Result<StatusResponse> {
        let ch = self
            .inner
            .channels
            .get(i)
            .cloned()
            .ok_or_else(|| Error::InvalidArgument(format!("no endpoint number {i}")))?;
        match tokio::time::timeout(timeout, MaintenanceClient::new(ch).status(StatusRequest {}))
            .await
        {
            Err(_) => Err(Error::Timeout(timeout)),
            Ok(Err(s)) => Err(Error::Status(s)),
            Ok(Ok(r)) => Ok(r.into_inner()),
        }
    }

    /// One call on endpoint number `i` alone (no retry, no failover),
    /// within `timeout`.
    async fn on_endpoint<T, F, Fut>(&self, i: usize, timeout: Duration, call: F) -> Result<T>
    where
        F: FnOnce(Channel) -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<T>, Status>>,
    {
        let ch = self
            .inner
            .channels
            .get(i)
            .cloned()
            .ok_or_else(|| Error::InvalidArgument(format!("no endpoint number {i}")))?;
        match tokio::time::timeout(timeout, call(ch)).await {
            Err(_) => Err(Error::Timeout(timeout)),
            Ok(Err(s)) => Err(Error::Status(s)),
            Ok(Ok(r)) => Ok(r.into_inner()),
        }
    }

    /// Maintenance.HashKV at the latest revision, of endpoint number `i`.
    pub async fn hash_kv_of(&self, i: usize, timeout: Duration) -> Result<HashKvResponse> {
        self.on_endpoint(i, timeout, |ch| async move {
            MaintenanceClient::new(ch)
                .hash_kv(HashKvRequest { revision: 0 })
                .await
        })
        .await
    }

    /// A linearizable read of `key` through endpoint number `i` (what
    /// etcdctl's `endpoint health` asks: it goes through consensus).
    pub async fn get_on(&self, i: usize, key: &[u8], timeout: Duration) -> Result<RangeResponse> {
        let req = RangeRequest {
            key: key.to_vec(),
            ..RangeRequest::default()
        };
        self.on_endpoint(i, timeout, |ch| async move {
            KvClient::new(ch).range(req).await
        })
        .await
    }

    /// Status of every endpoint, in the order given.
    pub async fn status_all(&self) -> Vec<(String, Result<StatusResponse>)> {
        let mut out = Vec::with_capacity(self.inner.endpoints.len());
        for (i, e) in self.inner.endpoints.iter().enumerate() {
            out.push((
                e.clone(),
                self.status_of(i, self.inner.opts.request_timeout).await,
            ));
        }
        out
    }

    /// Opens a watch stream whose first request creates the watcher `first`
    /// (queued before the call: a server may send its response headers only
    /// with its first answer).
    pub async fn watch_stream(&self, first: WatchCreateRequest) -> Result<WatchStream> {
        let (tx, rx) = mpsc::channel(STREAM_QUEUE);
        tx.try_send(WatchRequest {
            request_union: Some(watch_request::RequestUnion::CreateRequest(first)),
        })
        .expect("a fresh queue has room");
        let (_, ch) = self.channel();
        let timeout = self.inner.opts.request_timeout;
        let resp = tokio::time::timeout(
            timeout,
            WatchClient::new(ch)
                .max_decoding_message_size(limits::DEFAULT_MAX_ENCODING_MESSAGE_SIZE)
                .watch(ReceiverStream::new(rx)),
        )
        .await
        .map_err(|_| Error::Timeout(timeout))??;
        Ok(WatchStream {
            tx,
            stream: resp.into_inner(),
        })
    }

    /// Opens a stream with one watcher and waits for its `created` reply.
    pub async fn watch(&self, create: WatchCreateRequest) -> Result<(WatchStream, i64)> {
        let mut ws = self.watch_stream(create).await?;
        let timeout = self.inner.opts.request_timeout;
        loop {
            let r = tokio::time::timeout(timeout, ws.next())
                .await
                .map_err(|_| Error::Timeout(timeout))??;
            match r {
                Some(r) if r.created => {
                    if r.canceled {
                        return Err(Error::StreamClosed(if r.cancel_reason.is_empty() {
                            "watch refused".into()
                        } else {
                            r.cancel_reason
                        }));
                    }
                    return Ok((ws, r.watch_id));
                }
                Some(r) if r.canceled => {
                    return Err(Error::StreamClosed(r.cancel_reason));
                }
                Some(_) => continue,
                None => return Err(Error::StreamClosed("watch".into())),
            }
        }
    }
}

/// Whether a transaction only reads (in both branches, nested ones included).
pub fn txn_read_only(t: &TxnRequest) -> bool {
    t.success
        .iter()
        .chain(t.failure.iter())
        .all(|op| match &op.request {
            Some(request_op::Request::RequestRange(_)) | None => true,
            Some(request_op::Request::RequestTxn(inner)) => txn_read_only(inner),
            Some(_) => false,
        })
}

/// One bidirectional watch stream: create and cancel watchers on it and
/// read their responses.
pub struct WatchStream {
    tx: mpsc::Sender<WatchRequest>,
    stream: Streaming<WatchResponse>,
}

impl WatchStream {
    /// Asks for a new watcher (its `created` reply arrives on the stream).
    pub async fn create(&mut self, create: WatchCreateRequest) -> Result<()> {
        self.tx
            .send(WatchRequest {
                request_union: Some(watch_request::RequestUnion::CreateRequest(create)),
            })
            .await
            .map_err(|_| Error::StreamClosed("watch".into()))
    }

    /// Cancels watcher `watch_id`.
    pub async fn cancel(&mut self, watch_id: i64) -> Result<()> {
        self.tx
            .send(WatchRequest {
                request_union: Some(watch_request::RequestUnion::CancelRequest(
                    WatchCancelRequest { watch_id },
                )),
            })
            .await
            .map_err(|_| Error::StreamClosed("watch".into()))
    }

    /// The next response; `None` when the server closed the stream.
    pub async fn next(&mut self) -> Result<Option<WatchResponse>> {
        Ok(self.stream.message().await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_follows_etcd() {
        assert_eq!(prefix_end(b"foo"), b"fop".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b"\xff\xff"), vec![0]);
        assert_eq!(prefix_end(b""), vec![0]);
    }

    #[test]
    fn endpoints_are_parsed_or_refused() {
        assert_eq!(
            endpoint_url("127.0.0.1:2379").unwrap(),
            "http://127.0.0.1:2379"
        );
        assert_eq!(
            endpoint_url("http://localhost:1").unwrap(),
            "http://localhost:1"
        );
        assert_eq!(endpoint_url("https://a:1").unwrap(), "https://a:1");
        assert!(matches!(
            endpoint_url("unixs://a:1"),
            Err(Error::BadEndpoint { .. })
        ));
        assert!(matches!(
            endpoint_url("nohost"),
            Err(Error::BadEndpoint { .. })
        ));
        assert!(matches!(
            endpoint_url("a:notaport"),
            Err(Error::BadEndpoint { .. })
        ));
        assert!(matches!(endpoint_url(""), Err(Error::BadEndpoint { .. })));
    }

    #[test]
    fn retry_classes() {
        let refused = Status::unavailable("tcp connect error: Connection refused");
        assert!(never_started(&refused) && read_retryable(&refused));
        let changed = Status::unavailable("etcdserver: leader changed");
        assert!(!never_started(&changed) && read_retryable(&changed));
        let no_leader = Status::unavailable("etcdserver: no leader");
        assert!(!never_started(&no_leader) && read_retryable(&no_leader));
        let compacted =
            Status::out_of_range("etcdserver: mvcc: required revision has been compacted");
        assert!(!never_started(&compacted) && !read_retryable(&compacted));
        assert!(!endpoint_failed(&compacted));
    }

    #[tokio::test]
    async fn a_broken_connection_moves_reads_elsewhere() {
        // A real transport error (nothing listens on port 9), wrapped the way
        // tonic reports a connection that broke under a request: code
        // Unknown, the transport error as its source.
        let err = Endpoint::from_static("http://127.0.0.1:9")
            .connect()
            .await
            .expect_err("nothing listens on port 9");
        let mut broken = Status::unknown("transport error");
        broken.set_source(Arc::new(err));
        assert!(transport_failed(&broken) && endpoint_failed(&broken));
        assert!(read_retryable(&broken));
        // A write's outcome is unknown after a broken connection.
        assert!(!never_started(&broken));
        // A server's own Unknown answer is not a transport failure.
        let answered = Status::unknown("transport error");
        assert!(!transport_failed(&answered) && !read_retryable(&answered));
    }

    #[tokio::test]
    async fn unreachable_cluster_is_a_typed_error() {
        // Port 9 (discard) on loopback: nothing listens there in tests.
        let opts = ClientOptions {
            dial_timeout: Duration::from_millis(300),
            ..ClientOptions::default()
        };
        let r = Client::connect(&["127.0.0.1:9".to_string()], opts).await;
        assert!(matches!(r, Err(Error::Unreachable { .. })), "{:?}", r.err());
        assert!(matches!(
            Client::connect(&[], ClientOptions::default()).await,
            Err(Error::NoEndpoints)
        ));
    }
}
