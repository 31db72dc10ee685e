//! Printing responses the way etcdctl does.
//!
//! * `simple`: etcdctl's plain text (keys and values as raw bytes, one per line).
//! * `json`: etcdctl's JSON, which is Go's `encoding/json` of etcd's response
//!   structs: protobuf field names, zero-valued fields left out, 64-bit numbers
//!   as JSON numbers, byte strings in base64. A few commands print etcdctl's
//!   own flattened shapes (lease grant, time-to-live, list, keep-alive; watch
//!   events with capitalised Go field names); those are reproduced too.
//! * `table`: a boxed table for the commands where a table reads well.
//!
//! Every printer returns bytes, so tests compare them directly.

use std::fmt;

use base64::Engine;
use synod_proto::etcdserverpb::{
    response_op, DeleteRangeResponse, LeaseGrantResponse, LeaseKeepAliveResponse,
    LeaseLeasesResponse, LeaseTimeToLiveResponse, Member, MemberAddResponse, MemberListResponse,
    PutResponse, RangeResponse, ResponseHeader, StatusResponse, TxnResponse, WatchResponse,
};
use synod_proto::mvccpb::{event::EventType, Event, KeyValue};

/// Output format (`-w`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// etcdctl's plain text.
    Simple,
    /// etcdctl's JSON shapes.
    Json,
    /// A boxed table.
    Table,
}

/// A JSON value that keeps its object keys in insertion order (etcdctl's
/// field order), so output can be compared byte for byte.
#[derive(Clone, Debug, PartialEq)]
pub enum Json {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A signed integer.
    Int(i64),
    /// An unsigned integer.
    Uint(u64),
    /// A string.
    Str(String),
    /// An array.
    Arr(Vec<Json>),
    /// An object, keys in order.
    Obj(Vec<(String, Json)>),
}

impl Json {
    /// An empty object.
    pub fn obj() -> Json {
        Json::Obj(Vec::new())
    }

    /// Appends `key: value` to an object (no effect on other values).
    pub fn insert(&mut self, key: &str, value: impl Into<Json>) {
        if let Json::Obj(fields) = self {
            fields.push((key.to_string(), value.into()));
        }
    }

    /// The value of `key` in an object.
    pub fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Obj(fields) => fields.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
}

impl From<i64> for Json {
    fn from(v: i64) -> Json {
        Json::Int(v)
    }
}
impl From<u64> for Json {
    fn from(v: u64) -> Json {
        Json::Uint(v)
    }
}
impl From<bool> for Json {
    fn from(v: bool) -> Json {
        Json::Bool(v)
    }
}
impl From<String> for Json {
    fn from(v: String) -> Json {
        Json::Str(v)
    }
}
impl From<&str> for Json {
    fn from(v: &str) -> Json {
        Json::Str(v.to_string())
    }
}
impl From<Vec<Json>> for Json {
    fn from(v: Vec<Json>) -> Json {
        Json::Arr(v)
    }
}
impl From<&[String]> for Json {
    fn from(v: &[String]) -> Json {
        Json::Arr(v.iter().map(|s| Json::Str(s.clone())).collect())
    }
}

impl fmt::Display for Json {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Json::Null => f.write_str("null"),
            Json::Bool(b) => write!(f, "{b}"),
            Json::Int(i) => write!(f, "{i}"),
            Json::Uint(u) => write!(f, "{u}"),
            Json::Str(s) => {
                let quoted = serde_json::to_string(s).map_err(|_| fmt::Error)?;
                f.write_str(&quoted)
            }
            Json::Arr(items) => {
                f.write_str("[")?;
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{v}")?;
                }
                f.write_str("]")
            }
            Json::Obj(fields) => {
                f.write_str("{")?;
                for (i, (k, v)) in fields.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    let quoted = serde_json::to_string(k).map_err(|_| fmt::Error)?;
                    write!(f, "{quoted}:{v}")?;
                }
                f.write_str("}")
            }
        }
    }
}

pub(crate) fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

fn put_nonzero_u(m: &mut Json, k: &str, v: u64) {
    if v != 0 {
        m.insert(k, v);
    }
}

fn put_nonzero_i(m: &mut Json, k: &str, v: i64) {
    if v != 0 {
        m.insert(k, v);
    }
}

fn header_fields(h: &Option<ResponseHeader>) -> Json {
    let mut m = Json::obj();
    if let Some(h) = h {
        put_nonzero_u(&mut m, "cluster_id", h.cluster_id);
        put_nonzero_u(&mut m, "member_id", h.member_id);
        put_nonzero_i(&mut m, "revision", h.revision);
        put_nonzero_u(&mut m, "raft_term", h.raft_term);
    }
    m
}

/// A response header as etcd's JSON (`{"cluster_id",…}`, zeros left out).
pub fn header_json(h: &Option<ResponseHeader>) -> Json {
    header_fields(h)
}

/// A key-value pair as etcd's JSON (base64 key and value, zeros left out).
pub fn kv_json(kv: &KeyValue) -> Json {
    let mut m = Json::obj();
    if !kv.key.is_empty() {
        m.insert("key", Json::from(b64(&kv.key)));
    }
    put_nonzero_i(&mut m, "create_revision", kv.create_revision);
    put_nonzero_i(&mut m, "mod_revision", kv.mod_revision);
    put_nonzero_i(&mut m, "version", kv.version);
    if !kv.value.is_empty() {
        m.insert("value", Json::from(b64(&kv.value)));
    }
    put_nonzero_i(&mut m, "lease", kv.lease);
    m
}

fn with_header(h: &Option<ResponseHeader>) -> Json {
    let mut m = Json::obj();
    if h.is_some() {
        m.insert("header", header_json(h));
    }
    m
}

/// RangeResponse as JSON.
pub fn range_json(r: &RangeResponse) -> Json {
    let mut m = with_header(&r.header);
    if !r.kvs.is_empty() {
        m.insert("kvs", r.kvs.iter().map(kv_json).collect::<Vec<_>>());
    }
    if r.more {
        m.insert("more", true);
    }
    put_nonzero_i(&mut m, "count", r.count);
    m
}

/// PutResponse as JSON.
pub fn put_json(r: &PutResponse) -> Json {
    let mut m = with_header(&r.header);
    if let Some(kv) = &r.prev_kv {
        m.insert("prev_kv", kv_json(kv));
    }
    m
}

/// DeleteRangeResponse as JSON.
pub fn delete_json(r: &DeleteRangeResponse) -> Json {
    let mut m = with_header(&r.header);
    put_nonzero_i(&mut m, "deleted", r.deleted);
    if !r.prev_kvs.is_empty() {
        m.insert(
            "prev_kvs",
            r.prev_kvs.iter().map(kv_json).collect::<Vec<_>>(),
        );
    }
    m
}

/// TxnResponse as JSON (each response wrapped as Go's oneof: `{"Response":{"ResponsePut":…}}`).
pub fn txn_json(r: &TxnResponse) -> Json {
    let mut m = with_header(&r.header);
    if r.succeeded {
        m.insert("succeeded", true);
    }
    if !r.responses.is_empty() {
        let wrap = |name: &str, v: Json| {
            let mut inner = Json::obj();
            inner.insert(name, v);
            let mut outer = Json::obj();
            outer.insert("Response", inner);
            outer
        };
        let ops: Vec<Json> = r
            .responses
            .iter()
            .map(|op| match &op.response {
                Some(response_op::Response::ResponseRange(x)) => {
                    wrap("ResponseRange", range_json(x))
                }
                Some(response_op::Response::ResponsePut(x)) => wrap("ResponsePut", put_json(x)),
                Some(response_op::Response::ResponseDeleteRange(x)) => {
                    wrap("ResponseDeleteRange", delete_json(x))
                }
                Some(response_op::Response::ResponseTxn(x)) => wrap("ResponseTxn", txn_json(x)),
                None => Json::obj(),
            })
            .collect();
        m.insert("responses", ops);
    }
    m
}

/// An event as etcd's JSON (`type` left out for PUT, 1 for DELETE).
pub fn event_json(e: &Event) -> Json {
    let mut m = Json::obj();
    put_nonzero_i(&mut m, "type", i64::from(e.r#type));
    if let Some(kv) = &e.kv {
        m.insert("kv", kv_json(kv));
    }
    if let Some(kv) = &e.prev_kv {
        m.insert("prev_kv", kv_json(kv));
    }
    m
}

/// A watch response as etcdctl prints it (Go's `clientv3.WatchResponse`).
pub fn watch_json(r: &WatchResponse) -> Json {
    let mut m = Json::obj();
    m.insert("Header", header_json(&r.header));
    m.insert(
        "Events",
        r.events.iter().map(event_json).collect::<Vec<_>>(),
    );
    m.insert("CompactRevision", r.compact_revision);
    m.insert("Canceled", r.canceled);
    m.insert("Created", r.created);
    m
}

/// etcdctl's lease-grant JSON (header fields flattened).
pub fn lease_grant_json(r: &LeaseGrantResponse) -> Json {
    let mut m = header_fields(&r.header);
    m.insert("ID", r.id);
    m.insert("TTL", r.ttl);
    m.insert("Error", r.error.as_str());
    m
}

/// etcdctl's time-to-live JSON.
pub fn ttl_json(r: &LeaseTimeToLiveResponse) -> Json {
    let mut m = header_fields(&r.header);
    m.insert("id", r.id);
    m.insert("ttl", r.ttl);
    m.insert("granted-ttl", r.granted_ttl);
    let keys: Json = if r.keys.is_empty() {
        Json::Null
    } else {
        Json::Arr(r.keys.iter().map(|k| Json::from(b64(k))).collect())
    };
    m.insert("keys", keys);
    m
}

/// etcdctl's lease-list JSON.
pub fn leases_json(r: &LeaseLeasesResponse) -> Json {
    let mut m = header_fields(&r.header);
    let leases: Vec<Json> = r
        .leases
        .iter()
        .map(|l| {
            let mut o = Json::obj();
            o.insert("id", l.id);
            o
        })
        .collect();
    m.insert("leases", Json::Arr(leases));
    m
}

/// etcdctl's keep-alive JSON.
pub fn keepalive_json(r: &LeaseKeepAliveResponse) -> Json {
    let mut m = header_fields(&r.header);
    m.insert("ID", r.id);
    m.insert("TTL", r.ttl);
    m
}

fn member_json(mb: &Member) -> Json {
    let mut m = Json::obj();
    put_nonzero_u(&mut m, "ID", mb.id);
    if !mb.name.is_empty() {
        m.insert("name", mb.name.as_str());
    }
    if !mb.peer_ur_ls.is_empty() {
        m.insert("peerURLs", mb.peer_ur_ls.as_slice());
    }
    if !mb.client_ur_ls.is_empty() {
        m.insert("clientURLs", mb.client_ur_ls.as_slice());
    }
    if mb.is_learner {
        m.insert("isLearner", true);
    }
    m
}

/// MemberListResponse as JSON.
pub fn member_list_json(r: &MemberListResponse) -> Json {
    let mut m = with_header(&r.header);
    m.insert(
        "members",
        r.members.iter().map(member_json).collect::<Vec<_>>(),
    );
    m
}

/// A response carrying a member list (remove, update, promote) as JSON.
pub fn members_json(h: &Option<ResponseHeader>, members: &[Member]) -> Json {
    let mut m = with_header(h);
    m.insert(
        "members",
        members.iter().map(member_json).collect::<Vec<_>>(),
    );
    m
}

/// MemberAddResponse as JSON.
pub fn member_add_json(r: &MemberAddResponse) -> Json {
    let mut m = with_header(&r.header);
    if let Some(mb) = &r.member {
        m.insert("member", member_json(mb));
    }
    m.insert(
        "members",
        r.members.iter().map(member_json).collect::<Vec<_>>(),
    );
    m
}

/// etcdctl's text after `member add`: the new member's id, then the
/// environment it starts with (`ETCD_INITIAL_CLUSTER` lists every member's
/// peer URLs, the new one under `name`).
pub fn member_added(r: &MemberAddResponse, name: &str, urls: &[String]) -> String {
    let id = r.member.as_ref().map_or(0, |m| m.id);
    let cluster = r.header.as_ref().map_or(0, |h| h.cluster_id);
    let mut conf = Vec::new();
    for m in &r.members {
        let n = if m.id == id { name } else { m.name.as_str() };
        for u in &m.peer_ur_ls {
            conf.push(format!("{n}={u}"));
        }
    }
    format!(
        "Member {id:16x} added to cluster {cluster:16x}\n\n\
         ETCD_NAME=\"{name}\"\n\
         ETCD_INITIAL_CLUSTER=\"{}\"\n\
         ETCD_INITIAL_ADVERTISE_PEER_URLS=\"{}\"\n\
         ETCD_INITIAL_CLUSTER_STATE=\"existing\"\n",
        conf.join(","),
        urls.join(",")
    )
}

/// One StatusResponse as JSON.
pub fn status_json(s: &StatusResponse) -> Json {
    let mut m = with_header(&s.header);
    if !s.version.is_empty() {
        m.insert("version", s.version.as_str());
    }
    put_nonzero_i(&mut m, "dbSize", s.db_size);
    put_nonzero_u(&mut m, "leader", s.leader);
    put_nonzero_u(&mut m, "raftIndex", s.raft_index);
    put_nonzero_u(&mut m, "raftTerm", s.raft_term);
    put_nonzero_u(&mut m, "raftAppliedIndex", s.raft_applied_index);
    if !s.errors.is_empty() {
        m.insert("errors", s.errors.as_slice());
    }
    put_nonzero_i(&mut m, "dbSizeInUse", s.db_size_in_use);
    if s.is_learner {
        m.insert("isLearner", true);
    }
    m
}

/// JSON text followed by a newline.
pub fn json_line(v: &Json) -> Vec<u8> {
    format!("{v}\n").into_bytes()
}

fn line(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(b);
    out.push(b'\n');
}

/// Keys and values, one per line (etcdctl's `get`); keys only, each followed
/// by an empty line, when `keys_only`.
pub fn kvs_simple(out: &mut Vec<u8>, kvs: &[KeyValue], keys_only: bool) {
    for kv in kvs {
        line(out, &kv.key);
        if keys_only {
            out.push(b'\n');
        } else {
            line(out, &kv.value);
        }
    }
}

/// `put`: `OK`, then the previous pair if asked for.
pub fn put_simple(r: &PutResponse) -> Vec<u8> {
    let mut out = b"OK\n".to_vec();
    if let Some(kv) = &r.prev_kv {
        kvs_simple(&mut out, std::slice::from_ref(kv), false);
    }
    out
}

/// `del`: the number deleted, then the previous pairs if asked for.
pub fn delete_simple(r: &DeleteRangeResponse) -> Vec<u8> {
    let mut out = format!("{}\n", r.deleted).into_bytes();
    kvs_simple(&mut out, &r.prev_kvs, false);
    out
}

/// `txn`: SUCCESS or FAILURE, then each response after an empty line.
pub fn txn_simple(r: &TxnResponse) -> Vec<u8> {
    let mut out = Vec::new();
    line(&mut out, if r.succeeded { b"SUCCESS" } else { b"FAILURE" });
    for op in &r.responses {
        out.push(b'\n');
        match &op.response {
            Some(response_op::Response::ResponseRange(x)) => kvs_simple(&mut out, &x.kvs, false),
            Some(response_op::Response::ResponsePut(x)) => out.extend(put_simple(x)),
            Some(response_op::Response::ResponseDeleteRange(x)) => out.extend(delete_simple(x)),
            Some(response_op::Response::ResponseTxn(x)) => out.extend(txn_simple(x)),
            None => {}
        }
    }
    out
}

/// `watch`: each event as `PUT`/`DELETE`, the previous pair if any, the pair.
pub fn watch_simple(r: &WatchResponse) -> Vec<u8> {
    let mut out = Vec::new();
    for e in &r.events {
        let kind = if e.r#type == EventType::Delete as i32 {
            "DELETE"
        } else {
            "PUT"
        };
        line(&mut out, kind.as_bytes());
        if let Some(p) = &e.prev_kv {
            kvs_simple(&mut out, std::slice::from_ref(p), false);
        }
        if let Some(kv) = &e.kv {
            kvs_simple(&mut out, std::slice::from_ref(kv), false);
        }
    }
    out
}

/// Lease ids print as 16 hex digits, like etcdctl.
pub fn lease_hex(id: i64) -> String {
    format!("{:016x}", id as u64)
}

/// Bytes in SI units as etcdctl's status prints them ("20 kB").
pub fn human_bytes(n: i64) -> String {
    if n < 10 {
        return format!("{n} B");
    }
    let units = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let f = n as f64;
    let e = (f.ln() / 1000f64.ln()).floor().min(6.0);
    let val = (f / 1000f64.powf(e) * 10.0 + 0.5).floor() / 10.0;
    let unit = units[e as usize];
    if val < 10.0 {
        format!("{val:.1} {unit}")
    } else {
        format!("{val:.0} {unit}")
    }
}

/// One member as etcdctl's `member list` line.
pub fn member_simple(m: &Member) -> String {
    let status = if m.name.is_empty() {
        "unstarted"
    } else {
        "started"
    };
    format!(
        "{:x}, {}, {}, {}, {}, {}",
        m.id,
        status,
        m.name,
        m.peer_ur_ls.join(","),
        m.client_ur_ls.join(","),
        m.is_learner
    )
}

/// Cells of one member for the table.
pub fn member_row(m: &Member) -> Vec<String> {
    member_simple(m).split(", ").map(str::to_string).collect()
}

/// Columns of `status` rows.
pub const STATUS_HEADERS: [&str; 10] = [
    "ENDPOINT",
    "ID",
    "VERSION",
    "DB SIZE",
    "IS LEADER",
    "IS LEARNER",
    "RAFT TERM",
    "RAFT INDEX",
    "RAFT APPLIED INDEX",
    "ERRORS",
];

/// Cells of one endpoint's status.
pub fn status_row(endpoint: &str, s: &StatusResponse) -> Vec<String> {
    let id = s.header.as_ref().map_or(0, |h| h.member_id);
    vec![
        endpoint.to_string(),
        format!("{id:x}"),
        s.version.clone(),
        human_bytes(s.db_size),
        (s.leader == id && id != 0).to_string(),
        s.is_learner.to_string(),
        s.raft_term.to_string(),
        s.raft_index.to_string(),
        s.raft_applied_index.to_string(),
        s.errors.join(", "),
    ]
}

/// A boxed table: headers centred, cells right-aligned (etcdctl's look).
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut width: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate().take(width.len()) {
            width[i] = width[i].max(c.chars().count());
        }
    }
    let rule: String = {
        let mut s = String::from("+");
        for w in &width {
            s.push_str(&"-".repeat(w + 2));
            s.push('+');
        }
        s
    };
    let mut out = String::new();
    out.push_str(&rule);
    out.push('\n');
    out.push('|');
    for (h, w) in headers.iter().zip(&width) {
        let pad = w - h.chars().count();
        let left = pad / 2;
        out.push_str(&format!(
            " {}{}{} |",
            " ".repeat(left),
            h,
            " ".repeat(pad - left)
        ));
    }
    out.push('\n');
    out.push_str(&rule);
    out.push('\n');
    for r in rows {
        out.push('|');
        for (i, w) in width.iter().enumerate() {
            let c = r.get(i).map_or("", String::as_str);
            out.push_str(&format!(" {c:>w$} |"));
        }
        out.push('\n');
    }
    out.push_str(&rule);
    out.push('\n');
    out
}

/// Printable text of a byte string (lossy UTF-8) for table cells.
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_bytes_matches_etcdctl() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(20480), "20 kB");
        assert_eq!(human_bytes(1500), "1.5 kB");
        assert_eq!(human_bytes(25_000_000), "25 MB");
    }

    #[test]
    fn kv_json_leaves_zeros_out() {
        let kv = KeyValue {
            key: b"foo".to_vec(),
            create_revision: 2,
            mod_revision: 5,
            version: 3,
            value: b"bar3".to_vec(),
            lease: 0,
        };
        assert_eq!(
            kv_json(&kv).to_string(),
            r#"{"key":"Zm9v","create_revision":2,"mod_revision":5,"version":3,"value":"YmFyMw=="}"#
        );
    }

    #[test]
    fn table_is_boxed_and_aligned() {
        let t = table(&["ID", "NAME"], &[vec!["abc".into(), "e1".into()]]);
        assert_eq!(
            t,
            "+-----+------+
| ID  | NAME |
+-----+------+\n| abc |   e1 |\n+-----+------+\n"
        );
    }

    #[test]
    fn lease_ids_print_as_sixteen_hex_digits() {
        assert_eq!(lease_hex(0x390da2274276d112), "390da2274276d112");
        assert_eq!(lease_hex(255), "00000000000000ff");
    }
}
