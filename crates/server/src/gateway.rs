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
//! grpc-gateway derives from it. `/v3/watch` streams one `{"result":…}` line
//! per watch response, reading watch requests from the body as they arrive.

use std::future::Future;
use std::sync::OnceLock;

use axum::body::{Body, Bytes};
use axum::extract::DefaultBodyLimit;
use axum::http::{header, StatusCode};
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use prost_reflect::{DescriptorPool, DeserializeOptions, DynamicMessage, SerializeOptions};
use synod_proto::etcdserverpb as pb;
use synod_proto::etcdserverpb::cluster_server::Cluster;
use synod_proto::etcdserverpb::kv_server::Kv;
use synod_proto::etcdserverpb::lease_server::Lease;
use synod_proto::etcdserverpb::maintenance_server::Maintenance;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use tonic::{Code, Status};

use crate::grpc::Api;

/// Watch requests parsed ahead of the watch stream, and output lines queued.
const WATCH_QUEUE: usize = 16;
/// Most unparsed bytes a watch request body may hold (one request's worth).
const WATCH_PENDING_BYTES: usize = 4 << 20;

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
    match call(tonic::Request::new(req)).await {
        Ok(resp) => match to_json(resp_name, resp.get_ref()) {
            Ok(j) => json_response(StatusCode::OK, j),
            Err(s) => error_response(&s),
        },
        Err(s) => error_response(&s),
    }
}

macro_rules! unary_route {
    ($router:expr, $api:expr, $path:literal, $req:literal, $resp:literal, $method:path) => {{
        let api = $api.clone();
        $router.route(
            $path,
            post(move |body: Bytes| {
                let api = api.clone();
                async move {
                    unary(
                        concat!("etcdserverpb.", $req),
                        concat!("etcdserverpb.", $resp),
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

/// Parses watch requests from a streaming request body onto `tx`.
async fn read_watch_body(body: Body, tx: mpsc::Sender<Result<pb::WatchRequest, Status>>) {
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
            let r = from_value::<pb::WatchRequest>("etcdserverpb.WatchRequest", v, Code::Unknown);
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
        if buf.len() > WATCH_PENDING_BYTES {
            let _ = tx
                .send(Err(Status::invalid_argument(crate::convert::TOO_LARGE)))
                .await;
            return;
        }
    }
}

async fn watch(api: Api, body: Body) -> Response {
    let (req_tx, req_rx) = mpsc::channel(WATCH_QUEUE);
    tokio::spawn(read_watch_body(body, req_tx));
    let mut responses = api.watch_stream(ReceiverStream::new(req_rx), true);
    let (line_tx, line_rx) = mpsc::channel::<Result<Bytes, std::convert::Infallible>>(WATCH_QUEUE);
    tokio::spawn(async move {
        loop {
            let next = tokio::select! {
                r = responses.recv() => r,
                _ = line_tx.closed() => return,
            };
            let (line, last) = match next {
                Some(Ok(r)) => match to_json("etcdserverpb.WatchResponse", &r) {
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

/// Adds the gateway's routes; bodies up to `max_body` bytes.
pub fn add_gateway(router: Router, api: Api, max_body: usize) -> Router {
    let r = router;
    let r = unary_route!(
        r,
        api,
        "/v3/kv/range",
        "RangeRequest",
        "RangeResponse",
        Kv::range
    );
    let r = unary_route!(r, api, "/v3/kv/put", "PutRequest", "PutResponse", Kv::put);
    let r = unary_route!(
        r,
        api,
        "/v3/kv/deleterange",
        "DeleteRangeRequest",
        "DeleteRangeResponse",
        Kv::delete_range
    );
    let r = unary_route!(r, api, "/v3/kv/txn", "TxnRequest", "TxnResponse", Kv::txn);
    let r = unary_route!(
        r,
        api,
        "/v3/kv/compaction",
        "CompactionRequest",
        "CompactionResponse",
        Kv::compact
    );
    let r = unary_route!(
        r,
        api,
        "/v3/lease/grant",
        "LeaseGrantRequest",
        "LeaseGrantResponse",
        Lease::lease_grant
    );
    let r = unary_route!(
        r,
        api,
        "/v3/lease/revoke",
        "LeaseRevokeRequest",
        "LeaseRevokeResponse",
        Lease::lease_revoke
    );
    let r = unary_route!(
        r,
        api,
        "/v3/lease/timetolive",
        "LeaseTimeToLiveRequest",
        "LeaseTimeToLiveResponse",
        Lease::lease_time_to_live
    );
    let r = unary_route!(
        r,
        api,
        "/v3/lease/leases",
        "LeaseLeasesRequest",
        "LeaseLeasesResponse",
        Lease::lease_leases
    );
    let r = unary_route!(
        r,
        api,
        "/v3/cluster/member/list",
        "MemberListRequest",
        "MemberListResponse",
        Cluster::member_list
    );
    let r = unary_route!(
        r,
        api,
        "/v3/cluster/member/add",
        "MemberAddRequest",
        "MemberAddResponse",
        Cluster::member_add
    );
    let r = unary_route!(
        r,
        api,
        "/v3/cluster/member/remove",
        "MemberRemoveRequest",
        "MemberRemoveResponse",
        Cluster::member_remove
    );
    let r = unary_route!(
        r,
        api,
        "/v3/cluster/member/update",
        "MemberUpdateRequest",
        "MemberUpdateResponse",
        Cluster::member_update
    );
    let r = unary_route!(
        r,
        api,
        "/v3/cluster/member/promote",
        "MemberPromoteRequest",
        "MemberPromoteResponse",
        Cluster::member_promote
    );
    let r = unary_route!(
        r,
        api,
        "/v3/maintenance/status",
        "StatusRequest",
        "StatusResponse",
        Maintenance::status
    );
    let r = r.route(
        "/v3/watch",
        post(move |body: Body| {
            let api = api.clone();
            async move { watch(api, body).await }
        }),
    );
    r.layer(DefaultBodyLimit::max(max_body))
}
