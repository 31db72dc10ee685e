//! A 3-member synod cluster driven by the real `etcdctl` (ETCDCTL_API=3,
//! Debian's etcd-client 3.4). Skipped, with a notice, when etcdctl is not
//! installed. Each step checks etcdctl's observable output; where synod
//! answers differently from etcd on purpose, the step says why.

mod common;

use std::time::Duration;

use common::*;

const STEP: Duration = Duration::from_secs(15);

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

/// etcdctl's JSON output carries keys and values in base64.
fn b64(s: &str) -> String {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = s.as_bytes();
    let mut out = String::new();
    for c in b.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn revision(ep: &str) -> i64 {
    let j = json(&ctl_ok(ep, &["-w", "json", "get", "nothing-here"]));
    j["header"]["revision"].as_i64().unwrap()
}

#[test]
fn put_and_get_through_every_member() {
    if !have_etcdctl() {
        return;
    }
    let cl = Cluster::start(3);
    assert!(
        cl.wait_leader(Duration::from_secs(10)).is_some(),
        "a leader is elected"
    );
    for i in 0..3 {
        let ep = cl.endpoint(i);
        let key = format!("k{i}");
        let val = format!("v{i}");
        assert_eq!(ctl_ok(&ep, &["put", &key, &val]).trim(), "OK");
    }
    for i in 0..3 {
        let ep = cl.endpoint(i);
        let out = ctl_ok(&ep, &["get", "k", "--prefix"]);
        assert_eq!(out, "k0\nv0\nk1\nv1\nk2\nv2\n", "member {i}");
    }
}

#[test]
fn etcdctl_compatibility_suite() {
    if !have_etcdctl() {
        return;
    }
    let cl = Cluster::start(3);
    let leader = cl
        .wait_leader(Duration::from_secs(10))
        .expect("a leader is elected");
    let all = cl.endpoints();
    // Talk to a follower where it matters: it must forward writes.
    let f = cl.endpoint((leader + 1) % 3);
    let f = f.as_str();

    // --- put / get: prefix, revision, sort, limit, JSON -------------------
    let r0 = revision(f);
    ctl_ok(f, &["put", "fruit/apple", "red"]);
    ctl_ok(f, &["put", "fruit/banana", "yellow"]);
    ctl_ok(f, &["put", "fruit/cherry", "dark"]);
    ctl_ok(f, &["put", "fruit/apple", "green"]);
    assert_eq!(revision(f), r0 + 4);
    assert_eq!(
        ctl_ok(f, &["get", "fruit/", "--prefix", "--keys-only"]),
        "fruit/apple\n\nfruit/banana\n\nfruit/cherry\n\n"
    );
    let at = (r0 + 1).to_string();
    assert_eq!(
        ctl_ok(f, &["get", "fruit/apple", "--rev", &at]),
        "fruit/apple\nred\n",
        "a read at a past revision sees the old value"
    );
    assert_eq!(
        ctl_ok(
            f,
            &[
                "get",
                "fruit/",
                "--prefix",
                "--sort-by=MODIFY",
                "--order=DESCEND",
                "--limit=2"
            ]
        ),
        "fruit/apple\ngreen\nfruit/cherry\ndark\n"
    );
    let j = json(&ctl_ok(
        f,
        &["get", "fruit/", "--prefix", "--limit=1", "-w", "json"],
    ));
    assert_eq!(
        (j["count"].as_i64(), j["more"].as_bool()),
        (Some(3), Some(true))
    );
    let j = json(&ctl_ok(f, &["get", "fruit/apple", "-w", "json"]));
    let kv = &j["kvs"][0];
    assert_eq!(kv["key"], b64("fruit/apple"));
    assert_eq!(kv["value"], b64("green"));
    assert_eq!(kv["version"], 2);
    assert_eq!(kv["create_revision"], r0 + 1);
    assert_eq!(kv["mod_revision"], r0 + 4);
    assert_eq!(
        j["header"]["cluster_id"].as_u64().unwrap(),
        cl.cfgs[0].cluster_id
    );
    assert!(j["header"]["raft_term"].as_u64().unwrap() >= 2);
    assert_eq!(
        ctl_ok(
            f,
            &["get", "fruit/", "--from-key", "--keys-only", "--limit=1"]
        ),
        "fruit/apple\n\n"
    );
    // Serializable reads are served by the member itself.
    assert_eq!(
        ctl_ok(
            f,
            &[
                "get",
                "fruit/banana",
                "--consistency=s",
                "--print-value-only"
            ]
        ),
        "yellow\n"
    );
    assert!(ctl_ok(f, &["put", "fruit/banana", "ripe", "--prev-kv"]).contains("yellow"));

    // --- del ---------------------------------------------------------------
    assert_eq!(ctl_ok(f, &["del", "fruit/cherry"]), "1\n");
    assert_eq!(ctl_ok(f, &["del", "fruit/cherry"]), "0\n");
    ctl_ok(f, &["put", "tmp/a", "1"]);
    ctl_ok(f, &["put", "tmp/b", "2"]);
    assert_eq!(ctl_ok(f, &["del", "tmp/", "--prefix"]), "2\n");
    assert_eq!(ctl_ok(f, &["get", "tmp/", "--prefix"]), "");

    // --- txn (interactive form, fed on stdin) -----------------------------
    let t = ctl_stdin(
        f,
        &["txn"],
        Some(
            "value(\"fruit/apple\") = \"green\"\n\nput fruit/apple ripe\n\nput fruit/apple bad\n\n",
        ),
    );
    assert!(t.ok, "{t:?}");
    assert_eq!(t.out, "SUCCESS\n\nOK\n");
    let t = ctl_stdin(
        f,
        &["txn"],
        Some("value(\"fruit/apple\") = \"green\"\n\nput fruit/apple x\n\nget fruit/apple\n\n"),
    );
    assert_eq!(t.out, "FAILURE\n\nfruit/apple\nripe\n", "{t:?}");

    // --- watch: live events, and history from an old revision ------------
    let w = spawn_ctl(f, &["watch", "fruit/", "--prefix", "--rev", &at]);
    let hist = w.take(3, STEP);
    assert_eq!(
        hist,
        vec!["PUT", "fruit/apple", "red"],
        "history replayed from --rev"
    );
    let live = spawn_ctl(f, &["watch", "w/key"]);
    std::thread::sleep(Duration::from_millis(500));
    ctl_ok(&all, &["put", "w/key", "hello"]);
    assert_eq!(live.take(3, STEP), vec!["PUT", "w/key", "hello"]);
    ctl_ok(&all, &["del", "w/key"]);
    assert_eq!(live.take(2, STEP), vec!["DELETE", "w/key"]);
    drop(live);
    drop(w);

    // --- compaction --------------------------------------------------------
    let now = revision(f);
    let c = ctl_ok(f, &["compaction", &now.to_string()]);
    assert_eq!(c.trim(), format!("compacted revision {now}"));
    let old = ctl(f, &["get", "fruit/apple", "--rev", &at]);
    assert!(!old.ok);
    assert!(
        old.err
            .contains("etcdserver: mvcc: required revision has been compacted"),
        "{old:?}"
    );
    let mut cw = spawn_ctl(f, &["watch", "fruit/apple", "--rev", &at]);
    let t0 = std::time::Instant::now();
    let mut status = None;
    while t0.elapsed() < STEP {
        if let Ok(Some(s)) = cw.child.try_wait() {
            status = Some(s);
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        status.is_some(),
        "a watch from a compacted revision is cancelled"
    );

    // --- leases: grant, attach, keep-alive, time-to-live, revoke, expiry ---
    let g = ctl_ok(f, &["lease", "grant", "30"]);
    let id = g.split_whitespace().nth(1).unwrap().to_string();
    assert!(g.ends_with("granted with TTL(30s)\n"), "{g}");
    ctl_ok(f, &["put", "leased/a", "1", "--lease", &id]);
    ctl_ok(f, &["put", "leased/b", "2", "--lease", &id]);
    let ttl = ctl_ok(f, &["lease", "timetolive", &id, "--keys"]);
    assert!(ttl.contains("granted with TTL(30s)"), "{ttl}");
    assert!(ttl.contains("attached keys([leased/a leased/b])"), "{ttl}");
    let ka = ctl_ok(f, &["lease", "keep-alive", "--once", &id]);
    assert_eq!(ka, format!("lease {id} keepalived with TTL(30)\n"));
    assert!(ctl_ok(f, &["lease", "list"]).contains(&id));
    assert_eq!(
        ctl_ok(f, &["lease", "revoke", &id]),
        format!("lease {id} revoked\n")
    );
    assert_eq!(
        ctl_ok(f, &["get", "leased/", "--prefix"]),
        "",
        "revoked keys are gone"
    );
    let ttl = ctl_ok(f, &["lease", "timetolive", &id]);
    assert_eq!(ttl, format!("lease {id} already expired\n"));
    // A lease nobody keeps alive expires, and its keys with it.
    let g = ctl_ok(f, &["lease", "grant", "1"]);
    let short = g.split_whitespace().nth(1).unwrap().to_string();
    ctl_ok(f, &["put", "ephemeral", "x", "--lease", &short]);
    assert_eq!(
        ctl_ok(f, &["get", "ephemeral", "--print-value-only"]),
        "x\n"
    );
    let t0 = std::time::Instant::now();
    loop {
        if ctl_ok(f, &["get", "ephemeral"]).is_empty() {
            break;
        }
        assert!(t0.elapsed() < STEP, "the lease's key expires");
        std::thread::sleep(Duration::from_millis(200));
    }
    let unknown = ctl(f, &["lease", "revoke", "123456"]);
    assert!(
        !unknown.ok
            && unknown
                .err
                .contains("etcdserver: requested lease not found"),
        "{unknown:?}"
    );

    // --- lock: mutual exclusion through etcdctl's client-side recipe -------
    let mut holder = spawn_ctl(f, &["lock", "mylock"]);
    let held = holder.take(1, STEP);
    assert!(held[0].starts_with("mylock/"), "{held:?}");
    let waiter = spawn_ctl(&cl.endpoint(leader), &["lock", "mylock", "echo", "second"]);
    assert!(
        waiter.drain_for(Duration::from_millis(1500)).is_empty(),
        "the lock is held by the first holder"
    );
    holder.interrupt();
    assert_eq!(waiter.take(1, STEP), vec!["second"]);

    // --- elect: a campaign wins and an observer sees the leader ------------
    let mut cand = spawn_ctl(f, &["elect", "myelection", "alice"]);
    let won = cand.take(2, STEP);
    assert!(
        won[0].starts_with("myelection/") && won[1] == "alice",
        "{won:?}"
    );
    let obs = spawn_ctl(&all, &["elect", "-l", "myelection"]);
    let seen = obs.take(2, STEP);
    assert_eq!(seen[1], "alice", "{seen:?}");
    cand.interrupt();
    drop(obs);

    // --- member list, endpoint status and health ----------------------------
    let ml = ctl_ok(f, &["member", "list"]);
    assert_eq!(ml.lines().count(), 3, "{ml}");
    for i in 0..3 {
        let line = ml
            .lines()
            .find(|l| l.starts_with(&format!("{:x},", cl.id(i))))
            .unwrap_or_else(|| panic!("member {i} listed: {ml}"));
        assert!(line.contains(&format!("n{}", i + 1)), "{line}");
        assert!(
            line.contains(&format!("http://{}", cl.endpoint(i))),
            "{line}"
        );
    }
    let st = json(&ctl_ok(&all, &["endpoint", "status", "-w", "json"]));
    let st = st.as_array().unwrap();
    assert_eq!(st.len(), 3);
    for s in st {
        assert_eq!(s["Status"]["version"], "3.5.0");
        assert_eq!(s["Status"]["leader"].as_u64().unwrap(), cl.id(leader));
    }
    let h = ctl(&all, &["endpoint", "health"]);
    assert_eq!(
        h.out.matches("is healthy").count() + h.err.matches("is healthy").count(),
        3,
        "{h:?}"
    );

    // --- snapshot save (one endpoint) --------------------------------------
    // synod streams its own state-machine image, not a bbolt file: the
    // transfer works, but `etcdctl snapshot restore` cannot read it.
    let snap = cl.dir.path().join("backup.db");
    let s = ctl_ok(f, &["snapshot", "save", snap.to_str().unwrap()]);
    assert!(s.contains("Snapshot saved at"), "{s}");
    assert!(std::fs::metadata(&snap).unwrap().len() > 0);

    // --- move-leader ----------------------------------------------------------
    let target = (leader + 2) % 3;
    let m = ctl_ok(&all, &["move-leader", &format!("{:x}", cl.id(target))]);
    assert!(
        m.contains(&format!(
            "Leadership transferred from {:x} to {:x}",
            cl.id(leader),
            cl.id(target)
        )),
        "{m}"
    );
    assert_eq!(cl.wait_leader(STEP), Some(target));
    ctl_ok(&all, &["put", "after-move", "ok"]);
}
