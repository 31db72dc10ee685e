//! etcd's JSON gateway: the same curl requests against synod and against a
//! real etcd 3.4 started here on loopback must give the same HTTP status and
//! the same JSON, except for values that differ by nature (cluster and member
//! ids, Raft terms, the version string and sizes in Status).

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_ports, have, have_etcd, Cluster};
use serde_json::Value;

/// A real single-member etcd on loopback, killed on drop.
struct Etcd {
    child: Child,
    endpoint: String,
    _dir: tempfile::TempDir,
}

impl Etcd {
    fn start() -> Etcd {
        let dir = tempfile::tempdir().unwrap();
        let p = free_ports(2);
        let client = format!("http://127.0.0.1:{}", p[0]);
        let peer = format!("http://127.0.0.1:{}", p[1]);
        let child = Command::new("etcd")
            .args(["--name", "e1", "--data-dir"])
            .arg(dir.path().join("data"))
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("e1={peer}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("etcd runs");
        let e = Etcd {
            child,
            endpoint: format!("127.0.0.1:{}", p[0]),
            _dir: dir,
        };
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(15) {
            if curl(&e.endpoint, "GET", "/health", "").1.contains("true") {
                return e;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("etcd did not become healthy");
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One request: (HTTP status, body).
fn curl(ep: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    let out = Command::new("curl")
        .args([
            "-s",
            "--max-time",
            "10",
            "-X",
            method,
            "-w",
            "\n%{http_code}",
        ])
        .args(["-d", body])
        .arg(format!("http://{ep}{path}"))
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

/// A streaming request read for `secs` seconds: its output lines.
fn curl_stream(ep: &str, path: &str, body: &str, secs: f64) -> Vec<String> {
    let out = Command::new("curl")
        .args(["-s", "-N", "--max-time", &secs.to_string(), "-X", "POST"])
        .args(["-d", body])
        .arg(format!("http://{ep}{path}"))
        .output()
        .expect("curl runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Values that differ between any two clusters by nature become "*".
fn normalize(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                match k.as_str() {
                    "cluster_id" | "member_id" | "raft_term" => *x = Value::String("*".into()),
                    _ => normalize(x),
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(normalize),
        _ => {}
    }
}

fn parse(s: &str) -> Value {
    let mut v: Value = serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"));
    normalize(&mut v);
    v
}

/// Steps whose outputs must be equal, in order (each sees the previous steps' writes).
const STEPS: &[(&str, &str)] = &[
    ("/v3/kv/put", r#"{"key":"Zm9v","value":"YmFy"}"#),
    (
        "/v3/kv/put",
        r#"{"key":"Zm9v","value":"YmF6","prev_kv":true}"#,
    ),
    // lowerCamelCase names are accepted too; unknown fields are ignored.
    (
        "/v3/kv/put",
        r#"{"key":"Zm9v","value":"cXV4","prevKv":true,"bogus":1}"#,
    ),
    ("/v3/kv/put", r#"{"key":"Zm9vMg==","value":"MQ=="}"#),
    ("/v3/kv/range", r#"{"key":"Zm9v"}"#),
    (
        "/v3/kv/range",
        r#"{"key":"Zm9v","range_end":"Zm9w","sort_order":"DESCEND"}"#,
    ),
    (
        "/v3/kv/range",
        r#"{"key":"Zm9v","range_end":"Zm9w","count_only":true}"#,
    ),
    (
        "/v3/kv/range",
        r#"{"key":"Zm9v","range_end":"Zm9w","limit":"1","keys_only":true}"#,
    ),
    ("/v3/kv/range", r#"{"key":"Zm9v","revision":2}"#),
    ("/v3/kv/range", r#"{"key":"bm9uZQ=="}"#),
    ("/v3/kv/range", r#"{"key":"Zm9v","revision":100}"#),
    (
        "/v3/kv/range",
        r#"{"key":"AA==","range_end":"AA==","sort_order":"BAD"}"#,
    ),
    ("/v3/kv/range", ""),
    ("/v3/kv/put", r#"{"value":"YmFy"}"#),
    ("/v3/kv/deleterange", r#"{"key":"Zm9vMg==","prev_kv":true}"#),
    ("/v3/kv/deleterange", r#"{"key":"bm9uZQ=="}"#),
    (
        "/v3/kv/txn",
        r#"{"compare":[{"target":"CREATE","key":"Zm9vMg==","createRevision":"0"}],"success":[{"requestPut":{"key":"Zm9vMg==","value":"Mg=="}}],"failure":[{"requestRange":{"key":"Zm9vMg=="}}]}"#,
    ),
    (
        "/v3/kv/txn",
        r#"{"compare":[{"target":"CREATE","key":"Zm9vMg==","create_revision":"0"}],"success":[{"request_put":{"key":"Zm9vMg==","value":"Mw=="}}],"failure":[{"request_range":{"key":"Zm9vMg=="}},{"request_delete_range":{"key":"bm9uZQ=="}}]}"#,
    ),
    (
        "/v3/kv/txn",
        r#"{"compare":[{"result":"EQUAL","target":"VALUE","key":"Zm9v","value":"cXV4"}],"success":[{"request_txn":{"success":[{"request_range":{"key":"Zm9v"}}]}}]}"#,
    ),
    ("/v3/kv/compaction", r#"{"revision":"3"}"#),
    ("/v3/kv/compaction", r#"{"revision":"3"}"#),
    ("/v3/kv/range", r#"{"key":"Zm9v","revision":2}"#),
    ("/v3/lease/grant", r#"{"TTL":60,"ID":7}"#),
    ("/v3/lease/grant", r#"{"TTL":60,"ID":7}"#),
    ("/v3/kv/put", r#"{"key":"YQ==","value":"Yg==","lease":7}"#),
    ("/v3/kv/put", r#"{"key":"YQ==","value":"Yg==","lease":8}"#),
    ("/v3/lease/leases", "{}"),
    ("/v3/lease/revoke", r#"{"ID":7}"#),
    ("/v3/lease/revoke", r#"{"ID":7}"#),
    ("/v3/lease/timetolive", r#"{"ID":7,"keys":true}"#),
    ("/v3/kv/range", r#"{"key":"YQ=="}"#),
    ("/v3/kv/range", r#"{"key":"@@"}"#),
    ("/v3/kv/range", "not json"),
];

#[test]
fn gateway_answers_like_etcd() {
    if !have_etcd() || !have("curl", "--version", "curl") {
        return;
    }
    let etcd = Etcd::start();
    let cl = Cluster::start(1);
    cl.wait_leader(Duration::from_secs(10)).expect("a leader");
    let ours = cl.endpoint(0);
    for (path, body) in STEPS {
        let (es, eb) = curl(&etcd.endpoint, "POST", path, body);
        let (ss, sb) = curl(&ours, "POST", path, body);
        let (mut ev, mut sv) = (parse(&eb), parse(&sb));
        // The text of a JSON syntax error comes from each side's parser
        // (Go's encoding/json, serde_json): only the code must agree.
        if ev.get("code") == Some(&Value::from(3)) && !eb.contains("\"etcdserver: ") {
            for v in [&mut ev, &mut sv] {
                v["error"] = "*".into();
                v["message"] = "*".into();
            }
        }
        assert_eq!(
            (es, &ev),
            (ss, &sv),
            "POST {path} {body}\netcd:  {eb}\nsynod: {sb}"
        );
    }
    // A lease's remaining TTL counts down by the second on both sides.
    for ep in [&etcd.endpoint, &ours] {
        let (_, g) = curl(ep, "POST", "/v3/lease/grant", r#"{"TTL":30,"ID":9}"#);
        assert_eq!(parse(&g)["ID"], "9", "{g}");
        let (_, b) = curl(ep, "POST", "/v3/lease/timetolive", r#"{"ID":9}"#);
        let v = parse(&b);
        assert_eq!(v["grantedTTL"], "30", "{b}");
        let ttl: i64 = v["TTL"].as_str().unwrap().parse().unwrap();
        assert!((28..=30).contains(&ttl), "{b}");
    }
    // Member list and status: the same shape, values of their own.
    for path in ["/v3/cluster/member/list", "/v3/maintenance/status"] {
        let (es, eb) = curl(&etcd.endpoint, "POST", path, "{}");
        let (ss, sb) = curl(&ours, "POST", path, "{}");
        let keys = |s: &str| -> Vec<String> {
            let v: Value = serde_json::from_str(s).unwrap();
            let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
            if let Some(m) = v.get("members") {
                k.extend(
                    m[0].as_object()
                        .unwrap()
                        .keys()
                        .map(|x| format!("members.{x}")),
                );
            }
            k.sort();
            k
        };
        assert_eq!(
            (es, keys(&eb)),
            (ss, keys(&sb)),
            "{path}\netcd:  {eb}\nsynod: {sb}"
        );
    }
    let (_, m) = curl(&ours, "POST", "/v3/cluster/member/list", "{}");
    let m: Value = serde_json::from_str(&m).unwrap();
    assert_eq!(m["members"][0]["ID"], cl.id(0).to_string());
    assert_eq!(
        m["members"][0]["clientURLs"][0],
        format!("http://{ours}"),
        "{m}"
    );
    // Membership through the gateway: add a learner (a one-member etcd
    // keeps its quorum), then remove it; the same statuses and shapes, and
    // removing it twice is etcd's NotFound on both.
    for (ep, url) in [
        (&etcd.endpoint, "http://127.0.0.1:1"),
        (&ours, "http://127.0.0.1:2"),
    ] {
        let body = format!(r#"{{"peerURLs":["{url}"],"isLearner":true}}"#);
        let (st, b) = curl(ep, "POST", "/v3/cluster/member/add", &body);
        let v = parse(&b);
        assert_eq!(st, 200, "{b}");
        assert_eq!(v["member"]["isLearner"], true, "{b}");
        assert_eq!(v["member"]["peerURLs"][0], url, "{b}");
        assert_eq!(v["members"].as_array().map(Vec::len), Some(2), "{b}");
        let id = v["member"]["ID"].as_str().unwrap().to_string();
        let (st, b) = curl(
            ep,
            "POST",
            "/v3/cluster/member/remove",
            &format!(r#"{{"ID":"{id}"}}"#),
        );
        assert_eq!(st, 200, "{b}");
        assert_eq!(
            parse(&b)["members"].as_array().map(Vec::len),
            Some(1),
            "{b}"
        );
        let (st, b) = curl(
            ep,
            "POST",
            "/v3/cluster/member/remove",
            &format!(r#"{{"ID":"{id}"}}"#),
        );
        assert_eq!(st, 404, "{b}");
        assert_eq!(parse(&b)["error"], "etcdserver: member not found", "{b}");
    }
    // Only POST is served.
    assert_eq!(curl(&ours, "GET", "/v3/kv/range", "").0, 405);

    // Watches: history from revision 2 (one response of past events), a
    // compacted start, a cancel, a filter, and a body that is not JSON.
    let watches = [
        r#"{"create_request":{"key":"Zm9v","start_revision":2}}"#,
        r#"{"create_request":{"key":"Zm9v","range_end":"Zm9w","start_revision":4,"prev_kv":true}}"#,
        r#"{"create_request":{"key":"Zm9v","start_revision":1}}"#,
        r#"{"create_request":{"key":"Zm9v"}} {"cancel_request":{"watch_id":0}}"#,
        r#"{"create_request":{"key":"Zm9vMg==","filters":["NOPUT"],"start_revision":4}}"#,
        "xx",
    ];
    for w in watches {
        let e = curl_stream(&etcd.endpoint, "/v3/watch", w, 1.0);
        let s = curl_stream(&ours, "/v3/watch", w, 1.0);
        let norm = |lines: &[String]| -> Vec<Value> {
            lines
                .iter()
                .map(|l| {
                    let mut v = parse(l);
                    if v.get("error").is_some() {
                        v["error"] = "*".into();
                        v["message"] = "*".into();
                    }
                    v
                })
                .collect()
        };
        assert_eq!(norm(&e), norm(&s), "watch {w}\netcd:  {e:?}\nsynod: {s:?}");
        assert!(!s.is_empty(), "watch {w}: no output");
    }
}

#[test]
fn gateway_watch_streams_live_events() {
    if !have("curl", "--version", "curl") {
        return;
    }
    let cl = Cluster::start(1);
    cl.wait_leader(Duration::from_secs(10)).expect("a leader");
    let ep = cl.endpoint(0);
    let mut child = Command::new("curl")
        .args(["-s", "-N", "--max-time", "5", "-X", "POST", "-d"])
        .arg(r#"{"create_request":{"key":"aw==","prev_kv":true}}"#)
        .arg(format!("http://{ep}/v3/watch"))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for l in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                return;
            }
        }
    });
    let created = rx.recv_timeout(Duration::from_secs(5)).expect("created");
    assert_eq!(parse(&created)["result"]["created"], true, "{created}");
    for v in ["djE=", "djI="] {
        let (code, b) = curl(
            &ep,
            "POST",
            "/v3/kv/put",
            &format!(r#"{{"key":"aw==","value":"{v}"}}"#),
        );
        assert_eq!(code, 200, "{b}");
    }
    let mut values = Vec::new();
    let t0 = Instant::now();
    while values.len() < 2 && t0.elapsed() < Duration::from_secs(5) {
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(200)) {
            let v = parse(&l);
            for e in v["result"]["events"].as_array().unwrap() {
                values.push(e["kv"]["value"].as_str().unwrap().to_owned());
            }
        }
    }
    assert_eq!(values, ["djE=", "djI="]);
    let _ = child.kill();
    let _ = child.wait();
    // The dropped stream's watcher goes away; the node keeps serving.
    assert_eq!(
        curl(&ep, "POST", "/v3/kv/range", r#"{"key":"aw=="}"#).0,
        200
    );
}

/// `curl -i`: (status, content type, body).
fn curl_i(ep: &str, method: &str, path: &str, body: &str) -> (u16, String, String) {
    let out = Command::new("curl")
        .args(["-s", "-i", "--max-time", "10", "-X", method])
        .args(["-d", body])
        .arg(format!("http://{ep}{path}"))
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).replace("\r\n", "\n");
    let (head, body) = text.split_once("\n\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let ctype = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-type")
                .then(|| v.trim().to_owned())
        })
        .unwrap_or_default();
    (status, ctype, body.to_owned())
}

/// Issue 19, items 4 and 8: plain HTTP paths as etcd answers them (404 for
/// unknown ones, `/version`), the `/v3beta` prefix, and the gateway's routes
/// beyond KV — lease keep-alive (Patroni's), the `kv/lease` aliases,
/// maintenance, lock and election — each compared with a real etcd 3.4.
#[test]
fn http_paths_and_more_gateway_routes_answer_like_etcd() {
    if !have_etcd() || !have("curl", "--version", "curl") {
        return;
    }
    let etcd = Etcd::start();
    let cl = Cluster::start(1);
    cl.wait_leader(Duration::from_secs(10)).expect("a leader");
    let ours = cl.endpoint(0);

    // Unknown paths: 404 with the body of etcd's mux; GET on a POST route 405.
    for (method, path) in [
        ("GET", "/nope"),
        ("POST", "/v2/keys/x"),
        ("POST", "/v3/nope"),
        ("POST", "/v3alpha/kv/range"),
        ("GET", "/"),
    ] {
        let e = curl_i(&etcd.endpoint, method, path, "");
        let s = curl_i(&ours, method, path, "");
        assert_eq!((e.0, &e.2), (s.0, &s.2), "{method} {path}");
        assert_eq!(s.0, 404, "{method} {path}: {s:?}");
        assert!(s.1.starts_with("text/plain"), "{method} {path}: {s:?}");
    }
    // /version: etcd's JSON, version strings of each side's own.
    let versions = |ep: &str| -> Value {
        let (st, ctype, body) = curl_i(ep, "GET", "/version", "");
        assert_eq!((st, ctype.as_str()), (200, "application/json"), "{body}");
        serde_json::from_str(&body).expect("JSON")
    };
    let (ev, sv) = (versions(&etcd.endpoint), versions(&ours));
    let keys = |v: &Value| -> Vec<String> { v.as_object().unwrap().keys().cloned().collect() };
    assert_eq!(keys(&ev), keys(&sv), "etcd {ev}, synod {sv}");
    for v in [&ev, &sv] {
        let server = v["etcdserver"].as_str().unwrap();
        let cluster = v["etcdcluster"].as_str().unwrap();
        assert!(server.starts_with("3."), "{v}");
        let minor: Vec<&str> = server.split('.').take(2).collect();
        assert_eq!(cluster, format!("{}.0", minor.join(".")), "{v}");
    }
    assert_eq!(sv["etcdserver"], "3.5.0");

    // The same requests in order on both sides: the same status and JSON.
    let steps: &[(&str, &str)] = &[
        ("/v3beta/kv/put", r#"{"key":"Zm9v","value":"YmFy"}"#),
        ("/v3beta/kv/range", r#"{"key":"Zm9v"}"#),
        ("/v3/lease/grant", r#"{"TTL":60,"ID":11}"#),
        ("/v3/kv/lease/timetolive", r#"{"ID":11}"#),
        ("/v3/kv/lease/leases", "{}"),
        ("/v3beta/lease/leases", "{}"),
        ("/v3/lock/lock", r#"{"name":"bG9jaw==","lease":"11"}"#),
        ("/v3/lock/unlock", r#"{"key":"bG9jay9i"}"#),
        (
            "/v3/election/campaign",
            r#"{"name":"ZWw=","lease":"11","value":"djE="}"#,
        ),
        ("/v3/election/leader", r#"{"name":"ZWw="}"#),
        (
            "/v3/election/proclaim",
            r#"{"leader":{"name":"ZWw=","key":"ZWwvYg==","rev":"5","lease":"11"},"value":"djI="}"#,
        ),
        ("/v3/election/leader", r#"{"name":"ZWw="}"#),
        (
            "/v3/election/resign",
            r#"{"leader":{"name":"ZWw=","key":"ZWwvYg==","rev":"5","lease":"11"}}"#,
        ),
        ("/v3/election/leader", r#"{"name":"ZWw="}"#),
        ("/v3/maintenance/transfer-leadership", r#"{"targetID":"5"}"#),
        ("/v3/kv/lease/revoke", r#"{"ID":11}"#),
        ("/v3/lease/revoke", r#"{"ID":11}"#),
        // Auth, disabled and without users, as a fresh etcd has it.
        ("/v3/auth/authenticate", r#"{"name":"root","password":"x"}"#),
        ("/v3/auth/user/list", "{}"),
        ("/v3/auth/role/list", "{}"),
        ("/v3/auth/user/get", r#"{"name":"bob"}"#),
        ("/v3/auth/role/get", r#"{"role":"admin"}"#),
        ("/v3/auth/user/add", "{}"),
        ("/v3/auth/role/add", "{}"),
        ("/v3/auth/user/delete", r#"{"name":"bob"}"#),
        ("/v3/auth/role/delete", r#"{"role":"admin"}"#),
        ("/v3/auth/user/grant", r#"{"user":"bob","role":"admin"}"#),
        ("/v3/auth/disable", "{}"),
    ];
    // A remaining TTL counts down by the second: within 2 s of the grant.
    let counted = |s: &str| -> Value {
        let mut v = parse(s);
        if let (Some(ttl), Some(granted)) = (v.get("TTL"), v.get("grantedTTL")) {
            let (t, g): (i64, i64) = (
                ttl.as_str().unwrap().parse().unwrap(),
                granted.as_str().unwrap().parse().unwrap(),
            );
            assert!((g - 2..=g).contains(&t), "{s}");
            v["TTL"] = "*".into();
        }
        v
    };
    for (path, body) in steps {
        let (es, eb) = curl(&etcd.endpoint, "POST", path, body);
        let (ss, sb) = curl(&ours, "POST", path, body);
        assert_eq!(
            (es, counted(&eb)),
            (ss, counted(&sb)),
            "POST {path} {body}\netcd:  {eb}\nsynod: {sb}"
        );
    }
    // Lease keep-alive: one result line per request in the body, TTL left
    // out for a lease that does not exist (Patroni's session refresh).
    for (ep, _) in [(&etcd.endpoint, "etcd"), (&ours, "synod")] {
        let (st, b) = curl(ep, "POST", "/v3/lease/grant", r#"{"TTL":60,"ID":21}"#);
        assert_eq!(st, 200, "{b}");
    }
    for body in [
        r#"{"ID":21}"#,
        r#"{"ID":22}"#,
        r#"{"ID":21} {"ID":22}"#,
        "{}",
    ] {
        let e = curl_stream(&etcd.endpoint, "/v3/lease/keepalive", body, 3.0);
        let s = curl_stream(&ours, "/v3/lease/keepalive", body, 3.0);
        let norm = |ls: &[String]| ls.iter().map(|l| parse(l)).collect::<Vec<_>>();
        assert_eq!(norm(&e), norm(&s), "keepalive {body}");
        assert!(!s.is_empty(), "keepalive {body}: no answer");
    }
    let s = curl_stream(&ours, "/v3beta/lease/keepalive", r#"{"ID":21}"#, 3.0);
    assert_eq!(parse(&s[0])["result"]["TTL"], "60", "{s:?}");
    // Maintenance: status and hash shapes, a snapshot streamed as result
    // lines of base64 blobs.
    for path in ["/v3/maintenance/hash", "/v3beta/maintenance/status"] {
        let (es, eb) = curl(&etcd.endpoint, "POST", path, "{}");
        let (ss, sb) = curl(&ours, "POST", path, "{}");
        let keys = |s: &str| -> Vec<String> {
            let v: Value = serde_json::from_str(s).unwrap();
            let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
            k.sort();
            k
        };
        assert_eq!((es, keys(&eb)), (ss, keys(&sb)), "{path}\n{eb}\n{sb}");
    }
    for path in ["/v3/maintenance/alarm", "/v3/maintenance/defragment"] {
        let (ss, sb) = curl(&ours, "POST", path, "{}");
        assert_eq!(ss, 200, "{path}: {sb}");
        assert!(serde_json::from_str::<Value>(&sb).is_ok(), "{path}: {sb}");
    }
    let snap = curl_stream(&ours, "/v3/maintenance/snapshot", "{}", 5.0);
    assert!(!snap.is_empty(), "no snapshot");
    for l in &snap {
        let v = parse(l);
        assert!(v["result"]["blob"].as_str().is_some(), "{l}");
    }
}
