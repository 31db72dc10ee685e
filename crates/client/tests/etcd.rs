//! The client against a real etcd 3.4: its output compared with etcdctl's
//! (byte for byte where the state is the same, in shape where revisions
//! differ), locks and elections interoperating with etcdctl's, watch replay,
//! failover past a dead endpoint, typed server errors, and short runs of
//! every `synod bench` workload. Each test skips when etcd is not installed.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{json, shape, text, Etcd};
use synod_client::bench::{BenchArgs, Workload};
use synod_client::concurrency::{self, Session};
use synod_client::output::Format;
use synod_client::{Client, ClientOptions, Error};
use synod_proto::etcdserverpb::RangeRequest;

fn assert_same(what: &str, ours: &(u8, Vec<u8>), theirs: &(i32, Vec<u8>)) {
    assert_eq!(theirs.0, 0, "{what}: etcdctl failed: {}", text(&theirs.1));
    assert_eq!(ours.0, 0, "{what}: synod failed: {}", text(&ours.1));
    assert_eq!(text(&ours.1), text(&theirs.1), "{what}: output differs");
}

fn assert_same_shape(what: &str, ours: &(u8, Vec<u8>), theirs: &(i32, Vec<u8>)) {
    assert_eq!(theirs.0, 0, "{what}: etcdctl failed: {}", text(&theirs.1));
    assert_eq!(ours.0, 0, "{what}: synod failed: {}", text(&ours.1));
    assert_eq!(
        shape(&json(&ours.1)),
        shape(&json(&theirs.1)),
        "{what}: JSON shapes differ:\n ours   {}\n theirs {}",
        text(&ours.1),
        text(&theirs.1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_outputs_match_etcdctl_byte_for_byte() {
    let Some(etcd) = Etcd::start("read_outputs_match_etcdctl_byte_for_byte").await else {
        return;
    };
    for (k, v) in [
        ("a", "1"),
        ("b", "2"),
        ("b", "22"),
        ("c", "3"),
        ("k y", "v w"),
    ] {
        assert_eq!(etcd.etcdctl(&["put", k, v]).0, 0);
    }
    let b_first = {
        let (_, out) = etcd.etcdctl(&["get", "b", "-w", "json"]);
        json(&out)["kvs"][0]["create_revision"].as_i64().unwrap()
    };
    let rev = b_first.to_string();
    let cases: Vec<Vec<&str>> = vec![
        vec!["get", "a"],
        vec!["get", "a", "-w", "json"],
        vec!["get", "nothing", "-w", "json"],
        vec!["get", "", "--prefix"],
        vec!["get", "", "--prefix", "-w", "json"],
        vec!["get", "a", "c", "-w", "json"],
        vec!["get", "b", "--from-key", "--keys-only"],
        vec!["get", "b", "--from-key", "--keys-only", "-w", "json"],
        vec![
            "get",
            "",
            "--prefix",
            "--sort-by=MODIFY",
            "--order=DESCEND",
            "-w",
            "json",
        ],
        vec!["get", "", "--prefix", "--sort-by=VALUE"],
        vec!["get", "", "--prefix", "--limit", "2", "-w", "json"],
        vec!["get", "b", "--rev", &rev, "-w", "json"],
        vec!["get", "", "--prefix", "--consistency=s", "-w", "json"],
        vec!["get", "", "--prefix", "--print-value-only"],
        vec!["member", "list"],
        vec!["member", "list", "-w", "json"],
        vec!["member", "list", "-w", "table"],
    ];
    for args in &cases {
        let ours = etcd.synod(args).await;
        let theirs = etcd.etcdctl(args);
        assert_same(&args.join(" "), &ours, &theirs);
    }
    // `status` is etcdctl's `endpoint status`; the db size may move between calls.
    let ours = etcd.synod(&["status", "-w", "json"]).await;
    let theirs = etcd.etcdctl(&["endpoint", "status", "-w", "json"]);
    assert_same_shape("status -w json", &ours, &theirs);
    let ours = etcd.synod(&["status"]).await;
    let theirs = etcd.etcdctl(&["endpoint", "status"]);
    let fields = |b: &[u8]| text(b).split(", ").count();
    assert_eq!(fields(&ours.1), fields(&theirs.1), "{}", text(&ours.1));
    let ours = etcd.synod(&["get", "", "--prefix", "--count-only"]).await;
    assert_eq!(text(&ours.1), "4\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_outputs_match_etcdctl() {
    let Some(etcd) = Etcd::start("write_outputs_match_etcdctl").await else {
        return;
    };
    // Each write is done by etcdctl, the state restored, then done by synod.
    let setup = |etcd: &Etcd| {
        for (k, v) in [("p/1", "one"), ("p/2", "two"), ("x", "1")] {
            assert_eq!(etcd.etcdctl(&["put", k, v]).0, 0);
        }
    };
    let writes: Vec<Vec<&str>> = vec![
        vec!["put", "x", "2"],
        vec!["put", "x", "3", "--prev-kv"],
        vec!["put", "x", "4", "--prev-kv", "-w", "json"],
        vec!["del", "p/1"],
        vec!["del", "p/", "--prefix", "--prev-kv"],
        vec!["del", "p/", "--prefix", "--prev-kv", "-w", "json"],
        vec!["del", "p/", "--from-key", "-w", "json"],
    ];
    for args in &writes {
        setup(&etcd);
        let theirs = etcd.etcdctl(args);
        setup(&etcd);
        let ours = etcd.synod(args).await;
        if args.contains(&"json") {
            assert_same_shape(&args.join(" "), &ours, &theirs);
        } else {
            assert_same(&args.join(" "), &ours, &theirs);
        }
    }
    // Transactions: etcdctl reads the text form on stdin; synod takes flags.
    let txn_text = "value(\"x\") = \"1\"\nmod(\"x\") > \"0\"\n\nput x 5\nget x\n\ndel x\n\n";
    for (expect_ok, json_out) in [(true, false), (true, true), (false, false)] {
        setup(&etcd);
        if !expect_ok {
            etcd.etcdctl(&["put", "x", "other"]);
        }
        let mut targs = vec!["txn"];
        if json_out {
            targs.extend(["-w", "json"]);
        }
        let theirs = etcd.etcdctl_stdin(&targs, Some(txn_text));
        setup(&etcd);
        if !expect_ok {
            etcd.etcdctl(&["put", "x", "other"]);
        }
        let mut oargs = targs.clone();
        oargs.extend([
            "--compare",
            "value(\"x\") = \"1\"",
            "--compare",
            "mod(\"x\") > \"0\"",
            "--success",
            "put x 5",
            "--success",
            "get x",
            "--failure",
            "del x",
        ]);
        let ours = etcd.synod(&oargs).await;
        if json_out {
            assert_same_shape("txn -w json", &ours, &theirs);
        } else {
            assert_same("txn", &ours, &theirs);
        }
    }
    // Leases: grant, attach, time-to-live, keep-alive, list, revoke.
    let (_, g) = etcd.synod(&["lease", "grant", "100", "-w", "json"]).await;
    let (_, tg) = etcd.etcdctl(&["lease", "grant", "100", "-w", "json"]);
    assert_eq!(shape(&json(&g)), shape(&json(&tg)));
    let id = format!("{:016x}", json(&g)["ID"].as_i64().unwrap());
    let (code, out) = etcd.synod(&["lease", "grant", "100"]).await;
    assert_eq!(code, 0);
    assert!(text(&out).starts_with("lease ") && text(&out).ends_with(" granted with TTL(100s)\n"));
    assert_eq!(
        etcd.synod(&["put", "leased", "v", "--lease", &id]).await.0,
        0
    );
    let ours = etcd
        .synod(&["lease", "timetolive", &id, "--keys", "-w", "json"])
        .await;
    let theirs = etcd.etcdctl(&["lease", "timetolive", &id, "--keys", "-w", "json"]);
    assert_same_shape("lease timetolive --keys -w json", &ours, &theirs);
    let ours = etcd
        .synod(&["lease", "timetolive", &id, "-w", "json"])
        .await;
    let theirs = etcd.etcdctl(&["lease", "timetolive", &id, "-w", "json"]);
    assert_same_shape("lease timetolive -w json", &ours, &theirs);
    let ours = etcd
        .synod(&["lease", "keep-alive", "--once", &id, "-w", "json"])
        .await;
    let theirs = etcd.etcdctl(&["lease", "keep-alive", "--once", &id, "-w", "json"]);
    assert_same_shape("lease keep-alive --once -w json", &ours, &theirs);
    assert_same(
        "lease keep-alive --once",
        &etcd.synod(&["lease", "keep-alive", "--once", &id]).await,
        &etcd.etcdctl(&["lease", "keep-alive", "--once", &id]),
    );
    assert_same(
        "lease list",
        &etcd.synod(&["lease", "list"]).await,
        &etcd.etcdctl(&["lease", "list"]),
    );
    let (code, out) = etcd.synod(&["lease", "revoke", &id]).await;
    assert_eq!((code, text(&out)), (0, format!("lease {id} revoked\n")));
    assert_same(
        "timetolive after revoke",
        &etcd.synod(&["lease", "timetolive", &id]).await,
        &etcd.etcdctl(&["lease", "timetolive", &id]),
    );
    assert_eq!(text(&etcd.synod(&["get", "leased"]).await.1), "");
    // A revoked lease: etcd's error, exit status 1.
    let (code, out) = etcd.synod(&["lease", "revoke", &id]).await;
    assert_eq!(code, 1);
    assert!(
        text(&out).contains("etcdserver: requested lease not found"),
        "{}",
        text(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_replays_history_like_etcdctl() {
    let Some(etcd) = Etcd::start("watch_replays_history_like_etcdctl").await else {
        return;
    };
    let c = etcd.client().await;
    let rev0 = c
        .range(RangeRequest {
            key: b"w".to_vec(),
            ..Default::default()
        })
        .await
        .unwrap()
        .header
        .unwrap()
        .revision
        + 1;
    for args in [
        vec!["put", "w/1", "a"],
        vec!["put", "w/1", "b"],
        vec!["put", "w/2", "c"],
        vec!["del", "w/1"],
        vec!["put", "other", "x"],
    ] {
        assert_eq!(etcd.etcdctl(&args).0, 0);
    }
    let rev = rev0.to_string();
    for fmt in ["simple", "json"] {
        let base = [
            "watch",
            "w/",
            "--prefix",
            "--rev",
            &rev,
            "--prev-kv",
            "-w",
            fmt,
        ];
        let mut theirs = Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", etcd.endpoint))
            .args(base)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut ours_args = base.to_vec();
        ours_args.extend(["--max-events", "4"]);
        let ours = tokio::time::timeout(Duration::from_secs(20), etcd.synod(&ours_args))
            .await
            .expect("our watch ends after 4 events");
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let _ = theirs.kill();
        let theirs = theirs.wait_with_output().unwrap().stdout;
        assert_eq!(ours.0, 0, "{}", text(&ours.1));
        if fmt == "simple" {
            assert_eq!(text(&ours.1), text(&theirs), "watch simple output differs");
            assert!(text(&ours.1).starts_with("PUT\nw/1\na\nPUT\nw/1\na\nw/1\nb\n"));
        } else {
            // One JSON document per response; same responses, same shapes.
            let docs = |b: &[u8]| -> Vec<serde_json::Value> {
                text(b)
                    .lines()
                    .map(|l| shape(&json(l.as_bytes())))
                    .collect()
            };
            assert_eq!(docs(&ours.1), docs(&theirs));
        }
    }
    // A compacted start revision is etcd's error, reported with exit status 1.
    c.compact(rev0 + 2, true).await.unwrap();
    let (code, out) = etcd
        .synod(&[
            "watch",
            "w/",
            "--prefix",
            "--rev",
            &rev,
            "--max-events",
            "1",
        ])
        .await;
    assert_eq!(code, 1);
    assert!(text(&out).contains("compacted"), "{}", text(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_and_election_interoperate_with_etcdctl() {
    let Some(etcd) = Etcd::start("lock_and_election_interoperate_with_etcdctl").await else {
        return;
    };
    let c = etcd.client().await;
    // We hold the lock: etcdctl's `lock` must wait for us.
    let s1 = Session::new(&c, 10).await.unwrap();
    let g = concurrency::lock(&c, &s1, b"L").await.unwrap();
    assert!(g.key.starts_with(b"L/"));
    let mut theirs = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={}", etcd.endpoint))
        .args(["lock", "L", "--", "sh", "-c", "echo got $ETCD_LOCK_KEY"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        theirs.try_wait().unwrap().is_none(),
        "etcdctl lock went ahead while we held the lock"
    );
    // A second synod contender queues behind etcdctl's.
    let s2 = Session::new(&c, 10).await.unwrap();
    let c2 = c.clone();
    let second = tokio::spawn(async move {
        let g = concurrency::lock(&c2, &s2, b"L").await.unwrap();
        (g, s2)
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!second.is_finished(), "second contender jumped the queue");
    concurrency::unlock(&c, &g).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while theirs.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "etcdctl lock never got the lock");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let out = theirs.wait_with_output().unwrap();
    assert!(
        text(&out.stdout).starts_with("got L/"),
        "{}",
        text(&out.stdout)
    );
    let (g2, s2) = tokio::time::timeout(Duration::from_secs(10), second)
        .await
        .expect("second contender gets the lock")
        .unwrap();
    assert!(g2.revision > g.revision, "fencing tokens grow");
    concurrency::unlock(&c, &g2).await.unwrap();
    s2.close().await.unwrap();

    // `synod lock NAME CMD` runs the command under the lock and passes its status on.
    let (code, out) = etcd
        .synod(&["lock", "M", "sh", "-c", "echo $ETCD_LOCK_KEY; exit 3"])
        .await;
    assert_eq!(code, 3);
    assert!(
        text(&out).is_empty(),
        "the command writes to our stdout, not the sink"
    );

    // Elections: the first campaigner leads, the second waits, resigning hands over.
    let a = concurrency::campaign(&c, &s1, b"E", b"p1").await.unwrap();
    let s3 = Session::new(&c, 10).await.unwrap();
    let c3 = c.clone();
    let b = tokio::spawn(async move {
        let l = concurrency::campaign(&c3, &s3, b"E", b"p2").await.unwrap();
        (l, s3)
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!b.is_finished());
    let (leader, _) = concurrency::leader(&c, b"E").await.unwrap();
    assert_eq!(leader.unwrap().value, b"p1");
    // etcdctl sees the same leader.
    let mut listen = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={}", etcd.endpoint))
        .args(["elect", "--listen", "E"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    concurrency::resign(&c, &a).await.unwrap();
    let (won, s3) = tokio::time::timeout(Duration::from_secs(10), b)
        .await
        .expect("second campaigner wins after resign")
        .unwrap();
    assert_eq!(won.value, b"p2");
    tokio::time::sleep(Duration::from_millis(800)).await;
    let _ = listen.kill();
    let seen = text(&listen.wait_with_output().unwrap().stdout);
    assert!(seen.contains("\np1\n") && seen.contains("\np2\n"), "{seen}");
    // And our observer reports the current leader.
    let mut leaders = Vec::new();
    concurrency::observe(&c, b"E", |kv| {
        leaders.push(kv.value.clone());
        false
    })
    .await
    .unwrap();
    assert_eq!(leaders, vec![b"p2".to_vec()]);
    concurrency::resign(&c, &won).await.unwrap();
    s3.close().await.unwrap();
    s1.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_and_typed_errors() {
    let Some(etcd) = Etcd::start("failover_and_typed_errors").await else {
        return;
    };
    // A dead endpoint first: the client settles on the live one.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let a = l.local_addr().unwrap();
        drop(l);
        a.to_string()
    };
    let opts = ClientOptions {
        dial_timeout: Duration::from_millis(500),
        ..ClientOptions::default()
    };
    let c = Client::connect(&[dead.clone(), etcd.endpoint.clone()], opts)
        .await
        .unwrap();
    assert_eq!(c.current_endpoint(), etcd.endpoint);
    let put = c
        .put(synod_proto::etcdserverpb::PutRequest {
            key: b"k".to_vec(),
            value: b"v".to_vec(),
            ..Default::default()
        })
        .await
        .unwrap();
    let rev = put.header.unwrap().revision;
    // The CLI reports each endpoint's status and fails for the dead one.
    let (code, out) = etcd.synod(&["status"]).await;
    assert_eq!(code, 0, "{}", text(&out));
    // A future revision and a compacted one: etcd's messages, typed.
    let r = c
        .range(RangeRequest {
            key: b"k".to_vec(),
            revision: rev + 100,
            ..Default::default()
        })
        .await;
    match r {
        Err(Error::Status(s)) => {
            assert_eq!(
                s.message(),
                "etcdserver: mvcc: required revision is a future revision"
            )
        }
        other => panic!("expected a status, got {other:?}"),
    }
    for _ in 0..3 {
        c.put(synod_proto::etcdserverpb::PutRequest {
            key: b"k".to_vec(),
            value: b"w".to_vec(),
            ..Default::default()
        })
        .await
        .unwrap();
    }
    c.compact(rev + 2, true).await.unwrap();
    let (code, out) = etcd.synod(&["get", "k", "--rev", &rev.to_string()]).await;
    assert_eq!(code, 1);
    assert_eq!(
        text(&out),
        "Error: etcdserver: mvcc: required revision has been compacted\n"
    );
    // Bad input is a typed error before anything is sent.
    let (code, out) = etcd.synod(&["get", "k", "--prefix", "--from-key"]).await;
    assert_eq!(code, 1);
    assert!(text(&out).contains("cannot be used together"));
    let (code, out) = etcd.synod(&["put", "k", "v", "--lease", "zz"]).await;
    assert_eq!(code, 1);
    assert!(text(&out).contains("bad lease id"));
}

fn bench_args(workload: Workload) -> BenchArgs {
    BenchArgs {
        endpoints: None,
        workload,
        clients: 4,
        conns: 2,
        duration: Duration::from_millis(800),
        total: None,
        key_size: 8,
        value_size: 16,
        keys: 100,
        new_keys: false,
        rate: 0.0,
        watchers: 20,
        watchers_per_stream: 8,
        read_ratio: 0.5,
        no_prefill: false,
        request_timeout: Duration::from_secs(5),
        quiet: true,
        write_out: Format::Json,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_workloads_run_against_etcd() {
    let Some(etcd) = Etcd::start("bench_workloads_run_against_etcd").await else {
        return;
    };
    let eps = vec![etcd.endpoint.clone()];
    for w in [
        Workload::Put,
        Workload::Get,
        Workload::Sget,
        Workload::Txn,
        Workload::Mixed,
        Workload::Lease,
    ] {
        let r = synod_client::bench::report(&eps, &bench_args(w))
            .await
            .unwrap();
        for field in [
            "workload",
            "clients",
            "ops",
            "errors",
            "duration_s",
            "ops_per_sec",
        ] {
            assert!(r.get(field).is_some(), "{w:?}: no {field} in {r}");
        }
        for p in ["p50", "p90", "p99", "p999", "max"] {
            assert!(
                r["latency_ms"][p].as_f64().is_some_and(|x| x > 0.0),
                "{w:?}: {r}"
            );
        }
        assert!(r["ops"].as_u64().unwrap() > 0, "{w:?}: {r}");
        assert_eq!(r["errors"], 0, "{w:?}: {r}");
        assert!(r["latency_ms"]["p50"].as_f64() <= r["latency_ms"]["p99"].as_f64());
    }
    // The txn workload really writes: every key holds the bench value.
    let c = etcd.client().await;
    let all = c
        .range(RangeRequest {
            key: b"b".to_vec(),
            range_end: b"c".to_vec(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(all.count, 100);
    // Open loop: the rate is kept (not exceeded), latency counted from due time.
    let mut a = bench_args(Workload::Put);
    a.rate = 100.0;
    a.duration = Duration::from_secs(1);
    let r = synod_client::bench::report(&eps, &a).await.unwrap();
    let ops = r["ops"].as_u64().unwrap();
    assert!(
        (80..=101).contains(&ops),
        "open loop at 100/s for 1 s did {ops}"
    );
    // --total stops the run.
    let mut a = bench_args(Workload::Put);
    a.total = Some(37);
    a.duration = Duration::from_secs(30);
    a.new_keys = true;
    let r = synod_client::bench::report(&eps, &a).await.unwrap();
    assert_eq!(r["ops"], 37);
    // Watch fan-out: every event delivered to every watcher, delays measured.
    let mut a = bench_args(Workload::Watch);
    a.rate = 50.0;
    a.clients = 2;
    let r = synod_client::bench::report(&eps, &a).await.unwrap();
    let puts = r["ops"].as_u64().unwrap();
    assert!(puts > 20, "{r}");
    assert_eq!(r["events_expected"], puts * 20, "{r}");
    assert_eq!(r["events_delivered"], r["events_expected"], "{r}");
    assert_eq!(r["all_delivered"], true);
    assert_eq!(r["events_unstamped"], 0);
    assert!(
        r["delay_ms"]["p50"].as_f64().is_some_and(|x| x > 0.0),
        "{r}"
    );
    assert_eq!(r["watch_streams"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_fails_over_when_its_member_dies() {
    let Some(mut members) = Etcd::start_cluster("client_fails_over_when_its_member_dies", 3).await
    else {
        return;
    };
    let eps: Vec<String> = members.iter().map(|m| m.endpoint.clone()).collect();
    // Enough attempts to outlast an election if the killed member led.
    let opts = ClientOptions {
        max_attempts: 12,
        backoff: Duration::from_millis(100),
        ..ClientOptions::default()
    };
    let c = Client::connect(&eps, opts).await.unwrap();
    let put = |v: &'static str| synod_proto::etcdserverpb::PutRequest {
        key: b"f".to_vec(),
        value: v.as_bytes().to_vec(),
        ..Default::default()
    };
    c.put(put("1")).await.unwrap();
    // Kill the member the client uses; the next requests land elsewhere.
    let used = c.current_endpoint().to_string();
    members
        .iter_mut()
        .find(|m| m.endpoint == used)
        .expect("client uses one of the members")
        .kill();
    let r = c
        .range(RangeRequest {
            key: b"f".to_vec(),
            ..Default::default()
        })
        .await
        .expect("a read fails over to a live member");
    assert_eq!(r.kvs[0].value, b"1");
    assert_ne!(c.current_endpoint(), used);
    // Writes go to the live members too. The client does not retry a write
    // refused with "no leader" (it cannot know the write was not taken); this
    // put is idempotent, so the test may.
    let mut wrote = Err(None);
    for _ in 0..30 {
        match c.put(put("2")).await {
            Ok(_) => {
                wrote = Ok(());
                break;
            }
            Err(e) => {
                wrote = Err(Some(e));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    wrote.expect("write after failover");
    let r = c
        .range(RangeRequest {
            key: b"f".to_vec(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(r.kvs[0].value, b"2");
}

/// Ids in etcdctl's member lines are random: replace every hex id (etcdctl
/// pads them with spaces to 16 characters, so blanks are dropped too).
fn without_ids(s: &str) -> String {
    s.split([' ', ',', '\n', '"'])
        .filter(|w| !w.is_empty())
        .map(|w| {
            if (8..=16).contains(&w.len()) && w.chars().all(|c| c.is_ascii_hexdigit()) {
                "ID"
            } else {
                w
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_add_update_promote_remove_print_like_etcdctl() {
    let Some(etcd) = Etcd::start("member_add_update_promote_remove_print_like_etcdctl").await
    else {
        return;
    };
    // Learners only: a voter that never starts would cost this one-member
    // etcd its quorum.
    let ours = etcd
        .synod(&[
            "member",
            "add",
            "l1",
            "--peer-urls",
            "http://127.0.0.1:1",
            "--learner",
        ])
        .await;
    assert_eq!(ours.0, 0, "{}", text(&ours.1));
    let o = text(&ours.1);
    assert!(o.starts_with("Member ") && o.contains("ETCD_INITIAL_CLUSTER_STATE=\"existing\""));
    let id = o
        .split_whitespace()
        .nth(1)
        .expect("the new member's id")
        .to_string();

    let (code, list) = etcd.synod(&["member", "list"]).await;
    assert_eq!(code, 0);
    assert!(
        text(&list).contains(&format!("{id}, unstarted, , http://127.0.0.1:1, , true")),
        "{}",
        text(&list)
    );
    let (code, out) = etcd
        .synod(&["member", "update", &id, "--peer-urls", "http://127.0.0.1:3"])
        .await;
    assert_eq!(code, 0, "{}", text(&out));
    assert!(
        words(&out)[..5] == ["Member", id.as_str(), "updated", "in", "cluster"],
        "{}",
        text(&out)
    );
    let (_, list) = etcd.etcdctl(&["member", "list"]);
    assert!(
        text(&list).contains("http://127.0.0.1:3"),
        "{}",
        text(&list)
    );
    // Never started, so never in sync: etcd refuses, and we show its message.
    let (code, out) = etcd.synod(&["member", "promote", &id]).await;
    assert_eq!(code, 1);
    assert!(
        text(&out).contains("can only promote a learner member which is in sync with leader"),
        "{}",
        text(&out)
    );
    let (code, out) = etcd.synod(&["member", "remove", &id]).await;
    assert_eq!(code, 0, "{}", text(&out));
    assert!(
        words(&out)[..5] == ["Member", id.as_str(), "removed", "from", "cluster"],
        "{}",
        text(&out)
    );
    let (_, list) = etcd.etcdctl(&["member", "list"]);
    assert!(!text(&list).contains(&id), "{}", text(&list));
    let (code, out) = etcd.synod(&["member", "remove", &id]).await;
    assert_eq!(code, 1);
    assert!(text(&out).contains("member not found"), "{}", text(&out));
    let (code, out) = etcd.synod(&["member", "remove", "not-hex"]).await;
    assert_eq!(code, 1);
    assert!(text(&out).contains("expecting ID in Hex"), "{}", text(&out));

    // etcdctl adding a learner the same way (etcd 3.4 allows one learner at
    // a time, so after ours is gone) prints the same lines.
    let theirs = etcd.etcdctl(&[
        "member",
        "add",
        "l1",
        "--peer-urls",
        "http://127.0.0.1:2",
        "--learner",
    ]);
    assert_eq!(theirs.0, 0, "{}", text(&theirs.1));
    let t = text(&theirs.1);
    // Same lines once ids, the new members' URLs and the (id-sorted) order
    // of ETCD_INITIAL_CLUSTER are set aside.
    let norm = |s: &str| {
        let lines: Vec<String> = s
            .replace("http://127.0.0.1:1\"", "URL\"")
            .replace("http://127.0.0.1:2\"", "URL\"")
            .replace("http://127.0.0.1:1,", "URL,")
            .replace("http://127.0.0.1:2,", "URL,")
            .lines()
            .map(|l| match l.strip_prefix("ETCD_INITIAL_CLUSTER=") {
                Some(list) => {
                    let mut m: Vec<&str> = list.trim_matches('"').split(',').collect();
                    m.sort_unstable();
                    format!("ETCD_INITIAL_CLUSTER={}", m.join(","))
                }
                None => l.to_string(),
            })
            .collect();
        without_ids(&lines.join("\n"))
    };
    assert_eq!(norm(&o), norm(&t), "ours:\n{o}\netcdctl's:\n{t}");
}

/// The words of a command's output: etcdctl pads hex ids to 16 columns
/// (`%16x`), so an id with a leading zero digit prints after two spaces.
fn words(out: &[u8]) -> Vec<&str> {
    std::str::from_utf8(out)
        .expect("utf-8 output")
        .split_whitespace()
        .collect()
}
