//! Fenced locks (issue 15, item 4) with the real binary on a real member:
//! `synod lock --fenced` hands its command the lock key and a fencing token
//! (the key's create revision); `synod put --fenced` guards the write with
//! them, so a holder paused past its session's TTL, whose lock a second
//! holder has since taken, has its late write refused by the store — the
//! unsafety Jepsen showed in etcd's locks, closed. etcdctl's equivalent (a
//! txn comparing the key's create revision) agrees.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{synod, synod_ok, Cluster, ScratchDir};

fn wait_for(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !ok() {
        assert!(t0.elapsed() < limit, "{what} within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_paused_holders_late_write_is_refused_and_the_new_holders_lands() {
    let scratch = ScratchDir::new("fenced-lock");
    let cl = Cluster::start_fresh(1, &scratch.0);
    let eps = format!("--endpoints={}", cl.endpoints());
    let bin = env!("CARGO_BIN_EXE_synod");
    let go = scratch.0.join("go");
    let token_file = scratch.0.join("a-token");

    // Holder A: takes the lock, notes its token, then waits for the go
    // before writing (its write comes late, after a pause).
    let script = format!(
        "echo \"$SYNOD_LOCK_KEY $SYNOD_FENCING_TOKEN\" > {tok}; \
         while [ ! -e {go} ]; do sleep 0.05; done; \
         {bin} {eps} put --fenced data from-a",
        tok = token_file.display(),
        go = go.display(),
    );
    let a = Command::new(bin)
        .args([
            eps.as_str(),
            "lock",
            "--fenced",
            "--ttl",
            "2",
            "job",
            "--",
            "sh",
            "-c",
        ])
        .arg(&script)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("synod lock runs");
    wait_for("A holds the lock", Duration::from_secs(10), || {
        token_file.exists() && std::fs::read_to_string(&token_file).is_ok_and(|s| s.ends_with('\n'))
    });
    let noted = std::fs::read_to_string(&token_file).unwrap();
    let (a_key, a_token) = noted.trim().split_once(' ').expect("key and token");
    let a_token: i64 = a_token.parse().expect("a revision");
    assert!(a_key.starts_with("job/"), "{a_key}");

    // A's session process stops (a GC pause, a VM freeze): no keep-alives,
    // so its lease expires and B takes the lock.
    let stop = |sig: &str| {
        assert!(Command::new("kill")
            .args([sig, &a.id().to_string()])
            .status()
            .unwrap()
            .success())
    };
    stop("-STOP");
    let b = synod_ok(&[
        &eps,
        "lock",
        "--fenced",
        "job",
        "--",
        "sh",
        "-c",
        &format!("{bin} {eps} put --fenced data from-b && echo \"$SYNOD_FENCING_TOKEN\""),
    ]);
    let b_token: i64 = b.lines().last().unwrap().trim().parse().expect("B's token");
    assert!(
        b_token > a_token,
        "tokens only grow: {a_token} then {b_token}"
    );

    // A wakes up believing it still holds the lock, and writes.
    std::fs::write(&go, b"").unwrap();
    stop("-CONT");
    let out = a.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "A's late write must fail:\n{stderr}");
    assert!(
        stderr.contains(&format!("fencing token {a_token} is stale")),
        "{stderr}"
    );
    let got = synod_ok(&[&eps, "get", "data", "--print-value-only"]);
    assert_eq!(got.trim(), "from-b", "B's write stands, A's never landed");

    // The guard by hand, and etcdctl's spelling of it.
    let o = synod(&[
        &eps,
        "put",
        "data",
        "x",
        "--fence-key",
        a_key,
        "--fence-token",
        &a_token.to_string(),
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("is stale"));
    let etcdctl = |stdin: &str| {
        let mut c = Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .args([format!("--endpoints={}", cl.endpoints()).as_str(), "txn"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("etcdctl runs (CI installs etcd-client)");
        use std::io::Write;
        c.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        String::from_utf8_lossy(&c.wait_with_output().unwrap().stdout).into_owned()
    };
    let stale = etcdctl(&format!(
        "create(\"{a_key}\") = \"{a_token}\"\n\nput data from-etcdctl\n\n\n"
    ));
    assert!(stale.starts_with("FAILURE"), "{stale}");
    // A live holder's token passes the same guard.
    let script = format!(
        "ETCDCTL_API=3 etcdctl --endpoints={} txn <<EOF\ncreate(\"$SYNOD_LOCK_KEY\") = \"$SYNOD_FENCING_TOKEN\"\n\nput data from-etcdctl\n\n\nEOF",
        cl.endpoints()
    );
    let live = synod_ok(&[&eps, "lock", "--fenced", "job", "--", "sh", "-c", &script]);
    assert!(live.starts_with("SUCCESS"), "{live}");
    assert_eq!(
        synod_ok(&[&eps, "get", "data", "--print-value-only"]).trim(),
        "from-etcdctl"
    );
}
