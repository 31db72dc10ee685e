//! etcd's JSON gateway on the client port: `POST /v3/kv/range` and friends,
//! for curl users.
//!
//! Each route reads the body as the JSON form of the gRPC request, calls the
//! very gRPC handler the binary protocol reaches, and writes the reply as
//! JSON. The mapping is the one etcd 3.4's grpc-gateway uses: the proto's own
//! field names (`create_revision`, `ID`, `peerURLs`), bytes in base64, 64-bit
//! integers as strings, enums by name, default values left out; requests may
//! use either field-name form and unknown fields are ignored. Errors are
//! `{"error":M,"message":M,"code":C}` with C the gRPC code and the HTTP status
//! grpc-gateway derives from it. The streams (`/v3/watch`,
//! `/v3/lease/keepalive`, `/v3/maintenance/snapshot`,
//! `/v3/election/observe`) write one `{"result":…}` line per response,
//! reading the requests of a client stream from the body as they arrive.
//! Every route is served under `/v3` and, as etcd 3.4 does, `/v3beta`.

use std::future::Future;
use std::sync::OnceLock;

use axum::body::{Body, Bytes};
use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use prost_reflect::{DescriptorPool, DeserializeOptions, DynamicMessage, SerializeOptions};
use synod_proto::etcdserverpb::auth_server::Auth;
use synod_proto::etcdserverpb::cluster_server::Cluster;
use synod_proto::etcdserverpb::kv_server::Kv;
use synod_proto::etcdserverpb::lease_server::Lease;
use synod_proto::etcdserverpb::maintenance_server::Maintenance;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use tonic::{Code, Status};

use crate::grpc::Api;

/// Requests parsed ahead of a stream, and output lines queued.
const STREAM_QUEUE: usize = 16;
/// Most unparsed bytes a streamed request body may hold (one request's worth).
const PENDING_BYTES: usize = 4 << 20;

fn pool() -> &'static DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        DescriptorPool::decode(synod_proto::FILE_DESCRIPTOR_SET)
            .expect("synod-proto's descriptor set decodes")
    })
}

/// The HTTP status grpc-gateway (v1, as in etcd 3.4) gives a gRPC code.
pub fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::Cancelled => StatusCode::REQUEST_TIMEOUT,
        Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
        Code::InvalidArgument | Code::OutOfRange => StatusCode::BAD_REQUEST,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::FailedPrecondition => StatusCode::PRECONDITION_FAILED,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// The gateway's error body for a gRPC status.
pub fn error_json(s: &Status) -> String {
    let m = serde_json::Value::String(s.message().to_owned()).to_string();
    format!(
        r#"{{"error":{m},"message":{m},"code":{}}}"#,
        s.code() as i32
    )
}

fn error_response(s: &Status) -> Response {
    json_response(http_status(s.code()), error_json(s))
}

fn json_response(status: StatusCode, body: String) -> Response {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .expect("a static response builds")
}

/// Reads the JSON form of the message `name` (empty input: the empty message).
pub fn from_json<T: prost::Message + Default>(name: &str, body: &[u8]) -> Result<T, Status> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| Status::invalid_argument(e.to_string()))?;
    from_value(name, value, Code::InvalidArgument)
}

fn from_value<T: prost::Message + Default>(
    name: &str,
    value: serde_json::Value,
    code: Code,
) -> Result<T, Status> {
    let desc = pool()
        .get_message_by_name(name)
        .ok_or_else(|| Status::internal(format!("synod: no descriptor for {name}")))?;
    // Unknown fields are ignored, as etcd's gateway does; an unknown enum
    // name is still an error there. prost-reflect's lenient mode would drop
    // both, so read strictly first and fall back only past unknown fields.
    let strict = DeserializeOptions::new();
    let dynamic = match DynamicMessage::deserialize_with_options(desc.clone(), &value, &strict) {
        Ok(d) => d,
        Err(e) if e.to_string().contains("unrecognized field name") => {
            let lenient = DeserializeOptions::new().deny_unknown_fields(false);
            DynamicMessage::deserialize_with_options(desc, &value, &lenient)
                .map_err(|e| Status::new(code, e.to_string()))?
        }
        Err(e) => return Err(Status::new(code, e.to_string())),
    };
    dynamic
        .transcode_to::<T>()
        .map_err(|e| Status::new(code, e.to_string()))
}

/// Writes `msg`, a message of type `name`, as the gateway's JSON.
pub fn to_json<T: prost::Message>(name: &str, msg: &T) -> Result<String, Status> {
    let desc = pool()
        .get_message_by_name(name)
        .ok_or_else(|| Status::internal(format!("synod: no descriptor for {name}")))?;
    let dynamic = DynamicMessage::decode(desc, msg.encode_to_vec().as_slice())
        .map_err(|e| Status::internal(e.to_string()))?;
    let opts = SerializeOptions::new().use_proto_field_name(true);
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::new(&mut out);
    dynamic
        .serialize_with_options(&mut ser, &opts)
        .map_err(|e| Status::internal(e.to_string()))?;
    String::from_utf8(out).map_err(|e| Status::internal(e.to_string()))
}

async fn unary<Req, Resp, Fut>(
    req_name: &str,
    resp_name: &str,
    token: Option<String>,
    body: Bytes,
    call: impl FnOnce(tonic::Request<Req>) -> Fut,
) -> Response
where
    Req: prost::Message + Default,
    Resp: prost::Message,
    Fut: Future<Output = Result<tonic::Response<Resp>, Status>>,
{
    let req = match from_json::<Req>(req_name, &body) {
        Ok(r) => r,
        Err(s) => return error_response(&s),
    };
    match call(with_token(tonic::Request::new(req), token)).await {
        Ok(resp) => match to_json(resp_name, resp.get_ref()) {
            Ok(j) => json_response(StatusCode::OK, j),
            Err(s) => error_response(&s),
        },
        Err(s) => error_response(&s),
    }
}

/// The token of a gateway request: etcd's gateway passes the
/// `Authorization` header on as the call's `authorization` metadata.
fn token_header(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// `req` carrying `token` as its `authorization` metadata.
fn with_token<T>(mut req: tonic::Request<T>, token: Option<String>) -> tonic::Request<T> {
    if let Some(v) = token.and_then(|t| t.parse().ok()) {
        req.metadata_mut().insert("authorization", v);
    }
    req
}

macro_rules! unary_route {
    ($router:expr, $api:expr, $path:expr, $req:literal, $resp:literal, $method:path) => {{
        let api = $api.clone();
        $router.route(
            &$path,
            post(move |headers: HeaderMap, body: Bytes| {
                let api = api.clone();
                async move {
                    unary(
                        concat!("etcdserverpb.", $req),
                        concat!("etcdserverpb.", $resp),
                        token_header(&headers),
                        body,
                        |r| async move { $method(&api, r).await },
                    )
                    .await
                }
            }),
        )
    }};
}

/// A unary route of the lock and election services (their own packages).
macro_rules! recipe_route {
    ($router:expr, $api:expr, $path:expr, $pkg:literal, $req:literal, $resp:literal, $method:path) => {{
        let api = $api.clone();
        $router.route(
            &$path,
            post(move |headers: HeaderMap, body: Bytes| {
                let api = api.clone();
                async move {
                    unary(
                        concat!($pkg, ".", $req),
                        concat!($pkg, ".", $resp),
                        token_header(&headers),
                        body,
                        |r| async move { $method(&api, r).await },
                    )
                    .await
                }
            }),
        )
    }};
}

/// Splits complete JSON values off the front of `buf`; `Err` for input
/// that can never parse.
fn split_values(buf: &mut Vec<u8>) -> Result<Vec<serde_json::Value>, String> {
    let mut out = Vec::new();
    let mut it = serde_json::Deserializer::from_slice(buf).into_iter::<serde_json::Value>();
    let mut used = 0;
    loop {
        match it.next() {
            Some(Ok(v)) => {
                used = it.byte_offset();
                out.push(v);
            }
            Some(Err(e)) if e.is_eof() => break,
            Some(Err(e)) => return Err(e.to_string()),
            None => {
                used = it.byte_offset();
                break;
            }
        }
    }
    buf.drain(..used);
    Ok(out)
}

/// Parses requests of type `name` from a streaming request body onto
/// `tx`, as grpc-gateway reads a client stream: one JSON value after
/// another.
async fn read_body_stream<T: prost::Message + Default>(
    name: &'static str,
    body: Body,
    tx: mpsc::Sender<Result<T, Status>>,
) {
    let mut chunks = body.into_data_stream();
    let mut buf = Vec::new();
    loop {
        let chunk = tokio::select! {
            c = chunks.next() => c,
            _ = tx.closed() => return,
        };
        let ended = match chunk {
            Some(Ok(bytes)) => {
                buf.extend_from_slice(&bytes);
                false
            }
            Some(Err(e)) => {
                let _ = tx.send(Err(Status::unknown(e.to_string()))).await;
                return;
            }
            None => true,
        };
        let values = match split_values(&mut buf) {
            Ok(v) => v,
            Err(e) => {
                let _ = tx.send(Err(Status::unknown(e))).await;
                return;
            }
        };
        for v in values {
            let r = from_value::<T>(name, v, Code::Unknown);
            let stop = r.is_err();
            if tx.send(r).await.is_err() || stop {
                return;
            }
        }
        if ended {
            if !buf.iter().all(u8::is_ascii_whitespace) {
                let _ = tx
                    .send(Err(Status::unknown("unexpected EOF".to_owned())))
                    .await;
            }
            return;
        }
        if buf.len() > PENDING_BYTES {
            let _ = tx
                .send(Err(Status::invalid_argument(crate::convert::TOO_LARGE)))
                .await;
            return;
        }
    }
}

/// A stream of replies as grpc-gateway writes one: a `{"result":…}` line
/// per message, an error line last if the stream fails.
fn stream_response<S, T>(resp_name: &'static str, mut replies: S) -> Response
where
    S: tokio_stream::Stream<Item = Result<T, Status>> + Send + Unpin + 'static,
    T: prost::Message + 'static,
{
    let (line_tx, line_rx) = mpsc::channel::<Result<Bytes, std::convert::Infallible>>(STREAM_QUEUE);
    tokio::spawn(async move {
        loop {
            let next = tokio::select! {
                r = replies.next() => r,
                _ = line_tx.closed() => return,
            };
            let (line, last) = match next {
                Some(Ok(r)) => match to_json(resp_name, &r) {
                    Ok(j) => (format!("{{\"result\":{j}}}\n"), false),
                    Err(s) => (format!("{}\n", error_json(&s)), true),
                },
                Some(Err(s)) => (format!("{}\n", error_json(&s)), true),
                None => return,
            };
            if line_tx.send(Ok(Bytes::from(line))).await.is_err() || last {
                return;
            }
        }
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(ReceiverStream::new(line_rx)))
        .expect("a static response builds")
}

/// A client-and-server stream (`/v3/watch`, `/v3/lease/keepalive`): the
/// body's JSON requests go to `run`, its replies come back as lines.
fn bidi<Req, Resp>(
    req_name: &'static str,
    resp_name: &'static str,
    body: Body,
    run: impl FnOnce(ReceiverStream<Result<Req, Status>>) -> mpsc::Receiver<Result<Resp, Status>>,
) -> Response
where
    Req: prost::Message + Default + 'static,
    Resp: prost::Message + 'static,
{
    let (req_tx, req_rx) = mpsc::channel(STREAM_QUEUE);
    tokio::spawn(read_body_stream::<Req>(req_name, body, req_tx));
    let replies = run(ReceiverStream::new(req_rx));
    stream_response(resp_name, ReceiverStream::new(replies))
}

/// A server stream (`/v3/maintenance/snapshot`, `/v3/election/observe`):
/// one JSON request, replies as lines.
async fn server_stream<Req, Resp, S, Fut>(
    req_name: &str,
    resp_name: &'static str,
    token: Option<String>,
    body: Bytes,
    call: impl FnOnce(tonic::Request<Req>) -> Fut,
) -> Response
where
    Req: prost::Message + Default,
    Resp: prost::Message + 'static,
    S: tokio_stream::Stream<Item = Result<Resp, Status>> + Send + Unpin + 'static,
    Fut: Future<Output = Result<tonic::Response<S>, Status>>,
{
    let req = match from_json::<Req>(req_name, &body) {
        Ok(r) => r,
        Err(s) => return error_response(&s),
    };
    match call(with_token(tonic::Request::new(req), token)).await {
        Ok(resp) => stream_response(resp_name, resp.into_inner()),
        Err(s) => error_response(&s),
    }
}

/// The prefixes etcd 3.4 serves its gateway under: `/v3`, and `/v3beta`
/// for clients written for 3.3.
pub const PREFIXES: [&str; 2] = ["/v3", "/v3beta"];

/// What etcd 3.4 answers (400, as plain text) to a gateway request made
/// with a client certificate that names someone, while client-certificate
/// auth and authentication are both on.
pub const COMMON_NAME_REFUSED: &str =
    "CommonName of client sending a request against gateway will be ignored and not used as expected";

/// Whether `path` is one of the gateway's (etcd tests the `/v3/` prefix
/// after rewriting `/v3beta/` to it, so its 404s and OPTIONS too).
pub fn under_gateway(path: &str) -> bool {
    PREFIXES
        .iter()
        .any(|p| path.strip_prefix(p).is_some_and(|r| r.starts_with('/')))
}

/// etcd 3.4's guard in front of its gateway: the gateway never takes a
/// client certificate's common name as the user (its calls reach the
/// handlers without the connection's certificate, so only an
/// `Authorization` token names one), and lest a client believe otherwise,
/// a request under `/v3/` from a verified certificate with a common name
/// is refused outright while authentication is on. Without a common name,
/// or with authentication off, the request goes on.
pub async fn refuse_common_names(
    api: Api,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let named = crate::tls::http_common_name(req.extensions()).is_some_and(|cn| !cn.is_empty());
    if named && under_gateway(req.uri().path()) && api.auth_enabled() {
        return Response::builder()
            .status(StatusCode::BAD_REQUEST)
            .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .header("x-content-type-options", "nosniff")
            .body(Body::from(format!("{COMMON_NAME_REFUSED}\n")))
            .expect("a static response builds");
    }
    next.run(req).await
}

/// Adds the gateway's routes, etcd's route list under each of [`PREFIXES`];
/// bodies up to `max_body` bytes.
pub fn add_gateway(router: Router, api: Api, max_body: usize) -> Router {
    let mut r = router;
    for v3 in PREFIXES {
        r = add_routes(r, &api, v3);
    }
    r.layer(DefaultBodyLimit::max(max_body))
}

fn add_routes(r: Router, api: &Api, v3: &str) -> Router {
    use synod_proto::v3electionpb::election_server::Election;
    use synod_proto::v3lockpb::lock_server::Lock;
    let p = |path: &str| format!("{v3}/{path}");
    let r = unary_route!(
        r,
        api,
        p("kv/range"),
        "RangeRequest",
        "RangeResponse",
        Kv::range
    );
    let r = unary_route!(r, api, p("kv/put"), "PutRequest", "PutResponse", Kv::put);
    let r = unary_route!(
        r,
        api,
        p("kv/deleterange"),
        "DeleteRangeRequest",
        "DeleteRangeResponse",
        Kv::delete_range
    );
    let r = unary_route!(r, api, p("kv/txn"), "TxnRequest", "TxnResponse", Kv::txn);
    let r = unary_route!(
        r,
        api,
        p("kv/compaction"),
        "CompactionRequest",
        "CompactionResponse",
        Kv::compact
    );
    let r = unary_route!(
        r,
        api,
        p("lease/grant"),
        "LeaseGrantRequest",
        "LeaseGrantResponse",
        Lease::lease_grant
    );
    // etcd serves revoke, timetolive and leases under `kv/lease/` too.
    let mut r = r;
    for lease in ["lease", "kv/lease"] {
        r = unary_route!(
            r,
            api,
            p(&format!("{lease}/revoke")),
            "LeaseRevokeRequest",
            "LeaseRevokeResponse",
            Lease::lease_revoke
        );
        r = unary_route!(
            r,
            api,
            p(&format!("{lease}/timetolive")),
            "LeaseTimeToLiveRequest",
            "LeaseTimeToLiveResponse",
            Lease::lease_time_to_live
        );
        r = unary_route!(
            r,
            api,
            p(&format!("{lease}/leases")),
            "LeaseLeasesRequest",
            "LeaseLeasesResponse",
            Lease::lease_leases
        );
    }
    let r = unary_route!(
        r,
        api,
        p("cluster/member/list"),
        "MemberListRequest",
        "MemberListResponse",
        Cluster::member_list
    );
    let r = unary_route!(
        r,
        api,
        p("cluster/member/add"),
        "MemberAddRequest",
        "MemberAddResponse",
        Cluster::member_add
    );
    let r = unary_route!(
        r,
        api,
        p("cluster/member/remove"),
        "MemberRemoveRequest",
        "MemberRemoveResponse",
        Cluster::member_remove
    );
    let r = unary_route!(
        r,
        api,
        p("cluster/member/update"),
        "MemberUpdateRequest",
        "MemberUpdateResponse",
        Cluster::member_update
    );
    let r = unary_route!(
        r,
        api,
        p("cluster/member/promote"),
        "MemberPromoteRequest",
        "MemberPromoteResponse",
        Cluster::member_promote
    );
    let r = unary_route!(
        r,
        api,
        p("maintenance/status"),
        "StatusRequest",
        "StatusResponse",
        Maintenance::status
    );
    let r = unary_route!(
        r,
        api,
        p("maintenance/alarm"),
        "AlarmRequest",
        "AlarmResponse",
        Maintenance::alarm
    );
    let r = unary_route!(
        r,
        api,
        p("maintenance/defragment"),
        "DefragmentRequest",
        "DefragmentResponse",
        Maintenance::defragment
    );
    let r = unary_route!(
        r,
        api,
        p("maintenance/hash"),
        "HashRequest",
        "HashResponse",
        Maintenance::hash
    );
    let r = unary_route!(
        r,
        api,
        p("maintenance/transfer-leadership"),
        "MoveLeaderRequest",
        "MoveLeaderResponse",
        Maintenance::move_leader
    );
    let a = api.clone();
    let r = r.route(
        &p("maintenance/snapshot"),
        post(move |headers: HeaderMap, body: Bytes| {
            let api = a.clone();
            async move {
                server_stream(
                    "etcdserverpb.SnapshotRequest",
                    "etcdserverpb.SnapshotResponse",
                    token_header(&headers),
                    body,
                    |r| async move { Maintenance::snapshot(&api, r).await },
                )
                .await
            }
        }),
    );
    let a = api.clone();
    let r = r.route(
        &p("watch"),
        post(move |headers: HeaderMap, body: Body| {
            let api = a.clone();
            async move {
                bidi(
                    "etcdserverpb.WatchRequest",
                    "etcdserverpb.WatchResponse",
                    body,
                    |reqs| {
                        let creds = crate::grpc::Credentials {
                            token: token_header(&headers),
                            common_name: None,
                        };
                        api.watch_stream(reqs, true, creds)
                    },
                )
            }
        }),
    );
    let a = api.clone();
    let r = r.route(
        &p("lease/keepalive"),
        post(move |body: Body| {
            let api = a.clone();
            async move {
                bidi(
                    "etcdserverpb.LeaseKeepAliveRequest",
                    "etcdserverpb.LeaseKeepAliveResponse",
                    body,
                    |reqs| api.keep_alive_stream(reqs),
                )
            }
        }),
    );
    let mut r = r;
    macro_rules! auth {
        ($path:literal, $req:literal, $resp:literal, $method:ident) => {
            r = unary_route!(r, api, p($path), $req, $resp, Auth::$method);
        };
    }
    auth!(
        "auth/enable",
        "AuthEnableRequest",
        "AuthEnableResponse",
        auth_enable
    );
    auth!(
        "auth/disable",
        "AuthDisableRequest",
        "AuthDisableResponse",
        auth_disable
    );
    auth!(
        "auth/status",
        "AuthStatusRequest",
        "AuthStatusResponse",
        auth_status
    );
    auth!(
        "auth/authenticate",
        "AuthenticateRequest",
        "AuthenticateResponse",
        authenticate
    );
    auth!(
        "auth/user/add",
        "AuthUserAddRequest",
        "AuthUserAddResponse",
        user_add
    );
    auth!(
        "auth/user/get",
        "AuthUserGetRequest",
        "AuthUserGetResponse",
        user_get
    );
    auth!(
        "auth/user/list",
        "AuthUserListRequest",
        "AuthUserListResponse",
        user_list
    );
    auth!(
        "auth/user/delete",
        "AuthUserDeleteRequest",
        "AuthUserDeleteResponse",
        user_delete
    );
    auth!(
        "auth/user/changepw",
        "AuthUserChangePasswordRequest",
        "AuthUserChangePasswordResponse",
        user_change_password
    );
    auth!(
        "auth/user/grant",
        "AuthUserGrantRoleRequest",
        "AuthUserGrantRoleResponse",
        user_grant_role
    );
    auth!(
        "auth/user/revoke",
        "AuthUserRevokeRoleRequest",
        "AuthUserRevokeRoleResponse",
        user_revoke_role
    );
    auth!(
        "auth/role/add",
        "AuthRoleAddRequest",
        "AuthRoleAddResponse",
        role_add
    );
    auth!(
        "auth/role/get",
        "AuthRoleGetRequest",
        "AuthRoleGetResponse",
        role_get
    );
    auth!(
        "auth/role/list",
        "AuthRoleListRequest",
        "AuthRoleListResponse",
        role_list
    );
    auth!(
        "auth/role/delete",
        "AuthRoleDeleteRequest",
        "AuthRoleDeleteResponse",
        role_delete
    );
    auth!(
        "auth/role/grant",
        "AuthRoleGrantPermissionRequest",
        "AuthRoleGrantPermissionResponse",
        role_grant_permission
    );
    auth!(
        "auth/role/revoke",
        "AuthRoleRevokePermissionRequest",
        "AuthRoleRevokePermissionResponse",
        role_revoke_permission
    );
    let r = recipe_route!(
        r,
        api,
        p("lock/lock"),
        "v3lockpb",
        "LockRequest",
        "LockResponse",
        Lock::lock
    );
    let r = recipe_route!(
        r,
        api,
        p("lock/unlock"),
        "v3lockpb",
        "UnlockRequest",
        "UnlockResponse",
        Lock::unlock
    );
    let r = recipe_route!(
        r,
        api,
        p("election/campaign"),
        "v3electionpb",
        "CampaignRequest",
        "CampaignResponse",
        Election::campaign
    );
    let r = recipe_route!(
        r,
        api,
        p("election/proclaim"),
        "v3electionpb",
        "ProclaimRequest",
        "ProclaimResponse",
        Election::proclaim
    );
    let r = recipe_route!(
        r,
        api,
        p("election/leader"),
        "v3electionpb",
        "LeaderRequest",
        "LeaderResponse",
        Election::leader
    );
    let r = recipe_route!(
        r,
        api,
        p("election/resign"),
        "v3electionpb",
        "ResignRequest",
        "ResignResponse",
        Election::resign
    );
    let a = api.clone();
    r.route(
        &p("election/observe"),
        post(move |headers: HeaderMap, body: Bytes| {
            let api = a.clone();
            async move {
                server_stream(
                    "v3electionpb.LeaderRequest",
                    "v3electionpb.LeaderResponse",
                    token_header(&headers),
                    body,
                    |r| async move { Election::observe(&api, r).await },
                )
                .await
            }
        }),
    )
}
