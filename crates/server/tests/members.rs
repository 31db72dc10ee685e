//! Membership changes driven by the real `etcdctl` (3.4): `member add`
//! (voter and `--learner`), the new member started the way etcdctl's
//! printout says (`--initial-cluster-state existing`), `member promote`,
//! `member update`, `member remove`, `member list`, and etcd's refusals with
//! etcd's messages (and, over gRPC, etcd's status codes). Skipped, with a
//! notice, when etcdctl is not installed.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::*;

const STEP: Duration = Duration::from_secs(20);

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

/// The `ETCD_X="…"` lines `etcdctl member add` prints.
fn env_lines(out: &str) -> BTreeMap<String, String> {
    out.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once('=')?;
            k.starts_with("ETCD_")
                .then(|| (k.to_string(), v.trim_matches('"').to_string()))
        })
        .collect()
}

/// `member list -w json`'s members (ids as etcdctl prints them, decimal).
fn member_list(ep: &str) -> Vec<serde_json::Value> {
    let j = json(&ctl_ok(ep, &["member", "list", "-w", "json"]));
    j["members"].as_array().cloned().unwrap_or_default()
}

/// Waits until `ep`'s member list satisfies `ok`.
fn wait_list(ep: &str, what: &str, ok: impl Fn(&[serde_json::Value]) -> bool) {
    let t0 = Instant::now();
    loop {
        let l = member_list(ep);
        if ok(&l) {
            return;
        }
        assert!(t0.elapsed() < STEP, "{what}: member list is {l:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn all_started(l: &[serde_json::Value], n: usize) -> bool {
    l.len() == n
        && l.iter()
            .all(|m| m["name"].as_str().is_some_and(|s| !s.is_empty()))
}

/// The id etcdctl printed in "Member <hex> added to cluster <hex>".
fn added_id(out: &str) -> u64 {
    let hex = out
        .split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("no member id in {out:?}"));
    u64::from_str_radix(hex, 16).unwrap()
}

fn ctl_err(ep: &str, args: &[&str]) -> String {
    let r = ctl(ep, args);
    assert!(!r.ok, "etcdctl {args:?} should fail: {r:?}");
    r.err
}

/// Retries `args` while it fails with `transient` in its message.
fn ctl_until(ep: &str, args: &[&str], transient: &str) -> String {
    let t0 = Instant::now();
    loop {
        let r = ctl(ep, args);
        if r.ok {
            return r.out;
        }
        assert!(
            r.err.contains(transient) && t0.elapsed() < STEP,
            "etcdctl {args:?}: {r:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_voter_joins_serves_and_an_original_member_leaves() {
    if !have_etcdctl() {
        return;
    }
    let mut cl = Cluster::start(3);
    cl.wait_leader(STEP).expect("a leader is elected");
    let all = cl.endpoints();
    wait_list(&all, "three started members", |l| all_started(l, 3));
    let before = cl.running(1).shared().cfg.cluster_id;

    // etcdctl member add, then start the member as its printout says.
    let ports = free_ports(2);
    let peer = format!("http://127.0.0.1:{}", ports[1]);
    let out = ctl_ok(
        &all,
        &["member", "add", "n4", &format!("--peer-urls={peer}")],
    );
    assert!(
        out.contains(&format!("added to cluster {before:16x}")),
        "{out}"
    );
    let id4 = added_id(&out);
    let env = env_lines(&out);
    assert_eq!(env["ETCD_NAME"], "n4");
    assert_eq!(env["ETCD_INITIAL_CLUSTER_STATE"], "existing");
    assert_eq!(env["ETCD_INITIAL_ADVERTISE_PEER_URLS"], peer);
    // Added but not started: no name yet, etcd shows it "unstarted".
    let table = ctl_ok(&all, &["member", "list"]);
    assert!(
        table.contains(&format!("{id4:x}, unstarted, , {peer}, , false")),
        "{table}"
    );

    let n4 = cl.join("n4", (ports[0], ports[1]), &env["ETCD_INITIAL_CLUSTER"]);
    assert_eq!(
        cl.id(n4),
        id4,
        "the new member learned its id from its peers"
    );
    assert_eq!(cl.running(n4).shared().cfg.cluster_id, before);
    let ep4 = cl.endpoint(n4);
    wait_list(&all, "n4 started", |l| all_started(l, 4));

    // Write through the new member; every member reads it back.
    assert_eq!(ctl_until(&ep4, &["put", "joined", "yes"], "").trim(), "OK");
    for i in 0..4 {
        let got = ctl_ok(&cl.endpoint(i), &["get", "joined"]);
        assert_eq!(got, "joined\nyes\n", "member {i}");
    }
    // The member list as seen from the new member, with its client URL.
    let l = member_list(&ep4);
    let me = l
        .iter()
        .find(|m| m["name"] == "n4")
        .expect("n4 in its own list");
    assert_eq!(me["clientURLs"][0], format!("http://{ep4}"));
    assert!(me["isLearner"].is_null() || me["isLearner"] == false);

    // The new member restarts from its data dir as itself.
    cl.stop(n4);
    cl.boot(n4);
    assert_eq!(cl.running(n4).shared().cfg.id, id4);
    assert_eq!(ctl_until(&ep4, &["put", "again", "yes"], "").trim(), "OK");
    assert_eq!(ctl_ok(&cl.endpoint(0), &["get", "again"]), "again\nyes\n");

    // Move n4's peer URL to itself (an update keeps the member).
    let out = ctl_ok(
        &ep4,
        &[
            "member",
            "update",
            &format!("{id4:x}"),
            &format!("--peer-urls={peer}"),
        ],
    );
    assert!(out.contains(&format!("Member {id4:16x} updated")), "{out}");

    // Remove an original member (whichever leads): it stops itself, the
    // others keep serving.
    let leader = cl.wait_leader(STEP).expect("a leader");
    let gone_id = cl.id(leader);
    let out = ctl_ok(&ep4, &["member", "remove", &format!("{gone_id:x}")]);
    assert!(
        out.contains(&format!("Member {gone_id:16x} removed")),
        "{out}"
    );
    let t0 = Instant::now();
    while !cl.running(leader).is_finished() {
        assert!(t0.elapsed() < STEP, "the removed member stops itself");
        std::thread::sleep(Duration::from_millis(50));
    }
    cl.stop(leader);
    let rest: Vec<usize> = (0..4).filter(|&i| i != leader).collect();
    let live = cl.live_endpoints();
    wait_list(&live, "three members left", |l| all_started(l, 3));
    assert_eq!(
        ctl_until(&cl.endpoint(rest[0]), &["put", "after", "removal"], "").trim(),
        "OK"
    );
    for &i in &rest {
        let got = ctl_until(&cl.endpoint(i), &["get", "after"], "");
        assert_eq!(got, "after\nremoval\n", "member {i}");
    }
    // The peer round-trip histogram, etcd's name and label.
    let metrics = http_get(&ep4, "/metrics");
    assert!(
        metrics.contains("etcd_network_peer_round_trip_time_seconds_bucket{To=\""),
        "{metrics}"
    );
}

#[test]
fn a_learner_is_promoted_and_refusals_carry_etcds_messages() {
    if !have_etcdctl() {
        return;
    }
    // Frequent snapshots, so the learner catches up by snapshot.
    let mut cl = Cluster::start_with(3, |c| c.snapshot_every = 10);
    cl.wait_leader(STEP).expect("a leader is elected");
    let all = cl.endpoints();
    wait_list(&all, "three started members", |l| all_started(l, 3));
    let taken = cl.cfgs[1].members[1].peer_url.clone();

    let e = ctl_err(
        &all,
        &["member", "add", "dup", &format!("--peer-urls={taken}")],
    );
    assert!(e.contains("etcdserver: Peer URLs already exists"), "{e}");
    let e = ctl_err(&all, &["member", "remove", "1234abcd"]);
    assert!(e.contains("etcdserver: member not found"), "{e}");
    let e = ctl_err(&all, &["member", "promote", &format!("{:x}", cl.id(1))]);
    assert!(
        e.contains("etcdserver: can only promote a learner member"),
        "{e}"
    );
    let e = ctl_err(
        &all,
        &[
            "member",
            "update",
            "1234abcd",
            "--peer-urls=http://127.0.0.1:1",
        ],
    );
    assert!(e.contains("etcdserver: member not found"), "{e}");

    // A learner: added, not yet in sync (not even started), so not promotable.
    let ports = free_ports(4);
    let peer = format!("http://127.0.0.1:{}", ports[1]);
    let out = ctl_ok(
        &all,
        &[
            "member",
            "add",
            "l4",
            "--learner",
            &format!("--peer-urls={peer}"),
        ],
    );
    let id4 = added_id(&out);
    assert!(out.contains("added to cluster"), "{out}");
    let e = ctl_err(
        &all,
        &[
            "member",
            "add",
            "l5",
            "--learner",
            "--peer-urls=http://127.0.0.1:2",
        ],
    );
    assert!(
        e.contains("etcdserver: too many learner members in cluster"),
        "{e}"
    );
    let e = ctl_err(&all, &["member", "promote", &format!("{id4:x}")]);
    assert!(
        e.contains("etcdserver: can only promote a learner member which is in sync with leader"),
        "{e}"
    );
    for i in 0..30 {
        ctl_ok(&all, &["put", &format!("pre{i}"), "x"]);
    }
    let env = env_lines(&out);
    let l4 = cl.join("l4", (ports[0], ports[1]), &env["ETCD_INITIAL_CLUSTER"]);
    let t0 = Instant::now();
    while cl
        .running(l4)
        .shared()
        .metrics
        .snapshot_bytes
        .load(Ordering::Relaxed)
        == 0
    {
        assert!(t0.elapsed() < STEP, "the learner receives a snapshot");
        std::thread::sleep(Duration::from_millis(50));
    }
    wait_list(&all, "the learner started", |l| {
        all_started(l, 4) && l.iter().any(|m| m["isLearner"] == true)
    });
    // A learner serves no linearizable reads in etcd, but it has the data.
    let got = ctl_until(&cl.endpoint(l4), &["get", "pre19", "--consistency=s"], "");
    assert!(got == "pre19\nx\n" || got.is_empty(), "{got}");
    let out = ctl_until(
        &all,
        &["member", "promote", &format!("{id4:x}")],
        "in sync with leader",
    );
    assert!(
        out.contains(&format!("Member {id4:16x} promoted in cluster")),
        "{out}"
    );
    wait_list(&all, "promoted", |l| {
        all_started(l, 4) && l.iter().all(|m| m["isLearner"] != true)
    });
    assert_eq!(ctl_ok(&cl.endpoint(l4), &["put", "by", "l4"]).trim(), "OK");
    // Restarted, it recovers the members from its snapshot image and log.
    cl.stop(l4);
    cl.boot(l4);
    assert_eq!(cl.running(l4).shared().cfg.id, id4);
    assert_eq!(
        ctl_until(&cl.endpoint(l4), &["get", "pre29"], "").trim(),
        "pre29\nx"
    );

    // etcd's started-members rule. Four started voters: two unstarted
    // voters may join (4 started of 6 is a quorum).
    let a = added_id(&ctl_ok(
        &all,
        &[
            "member",
            "add",
            "u5",
            &format!("--peer-urls=http://127.0.0.1:{}", ports[2]),
        ],
    ));
    let b = added_id(&ctl_ok(
        &all,
        &[
            "member",
            "add",
            "u6",
            &format!("--peer-urls=http://127.0.0.1:{}", ports[3]),
        ],
    ));
    // Removing a started voter leaves 3 started of 5 (a quorum); removing a
    // second would leave 2 started of 4: refused.
    ctl_ok(&all, &["member", "remove", &format!("{:x}", cl.id(l4))]);
    // A removed follower learns it from its peers and stops itself.
    let t0 = Instant::now();
    while !cl.running(l4).is_finished() {
        assert!(t0.elapsed() < STEP, "the removed follower stops itself");
        std::thread::sleep(Duration::from_millis(50));
    }
    cl.stop(l4);
    let live = cl.live_endpoints();
    let e = ctl_err(&live, &["member", "remove", &format!("{:x}", cl.id(2))]);
    assert!(
        e.contains("etcdserver: re-configuration failed due to not enough started members"),
        "{e}"
    );
    // Codes too, over gRPC.
    let code = grpc_remove_code(&cl.endpoint(0), cl.id(2));
    assert_eq!(code, tonic::Code::FailedPrecondition);
    let code = grpc_remove_code(&cl.endpoint(0), 0x1234abcd);
    assert_eq!(code, tonic::Code::NotFound);
    ctl_ok(&live, &["member", "remove", &format!("{a:x}")]);
    ctl_ok(&live, &["member", "remove", &format!("{b:x}")]);
    wait_list(&live, "back to three", |l| all_started(l, 3));
}

fn grpc_remove_code(ep: &str, id: u64) -> tonic::Code {
    use synod_proto::etcdserverpb::{cluster_client::ClusterClient, MemberRemoveRequest};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut c = ClusterClient::connect(format!("http://{ep}"))
            .await
            .unwrap();
        match c.member_remove(MemberRemoveRequest { id }).await {
            Ok(r) => panic!("remove {id:x} should fail: {r:?}"),
            Err(s) => s.code(),
        }
    })
}

fn http_get(ep: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(ep).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {ep}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// `member add` NAME, then starts it as etcdctl says; returns its index
/// once every member lists it started.
fn add_and_join(cl: &mut Cluster, name: &str, started: usize) -> usize {
    let all = cl.live_endpoints();
    let ports = free_ports(2);
    let peer = format!("http://127.0.0.1:{}", ports[1]);
    let out = ctl_ok(
        &all,
        &["member", "add", name, &format!("--peer-urls={peer}")],
    );
    let env = env_lines(&out);
    let i = cl.join(name, (ports[0], ports[1]), &env["ETCD_INITIAL_CLUSTER"]);
    wait_list(&cl.live_endpoints(), "the new member started", |l| {
        all_started(l, started)
    });
    i
}

#[test]
fn a_member_joining_behind_a_leader_it_does_not_know_yet_catches_up() {
    // A joiner rebuilds its registry entry by entry from the start of the
    // log, so for a while it does not list members added later. When one of
    // those leads, the joiner must still take its connection and answer it:
    // it refused it, and never caught up (found by synod chaos replacing
    // members one after another).
    if !have_etcdctl() {
        return;
    }
    let mut cl = Cluster::start(3);
    cl.wait_leader(STEP).expect("a leader is elected");
    let all = cl.endpoints();
    wait_list(&all, "three started members", |l| all_started(l, 3));
    // A log longer than one append message (1 MiB) before n4 comes: the
    // joiner applies it in several Readies, with a registry that does not
    // list n4 in between.
    let big = "v".repeat(120 << 10);
    for i in 0..24 {
        assert_eq!(
            ctl_ok(&all, &["put", &format!("big{i}"), &big]).trim(),
            "OK"
        );
    }
    let n4 = add_and_join(&mut cl, "n4", 4);
    let id4 = cl.id(n4);
    let t0 = Instant::now();
    while cl.wait_leader(STEP) != Some(n4) {
        assert!(t0.elapsed() < STEP, "n4 never took the lead");
        let _ = ctl(&cl.live_endpoints(), &["move-leader", &format!("{id4:x}")]);
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        ctl_until(&cl.endpoint(n4), &["put", "before-n5", "yes"], "").trim(),
        "OK"
    );
    let n5 = add_and_join(&mut cl, "n5", 5);
    // The joiner holds what was written before it came, by its own state.
    let ep5 = cl.endpoint(n5);
    let t0 = Instant::now();
    loop {
        let r = ctl(&ep5, &["get", "before-n5", "--consistency=s"]);
        if r.ok && r.out == "before-n5\nyes\n" {
            break;
        }
        assert!(t0.elapsed() < STEP, "n5 never caught up: {r:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(cl.wait_leader(STEP), Some(n4), "n4 still leads");
}
