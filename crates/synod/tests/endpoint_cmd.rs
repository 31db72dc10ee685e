//! Issue 19, item 7: `synod endpoint status|health|hashkv [--cluster]`
//! answers as etcdctl's `endpoint` does, run side by side against the same
//! synod cluster (real `synod server` processes); and `synod server --help`
//! shows no client-only flags.

mod common;

use std::process::Command;

use common::{synod, Cluster, ScratchDir};

/// etcdctl's (status, stdout, stderr), or None when it is not installed
/// (then CI, which installs it, fails).
fn etcdctl(args: &[&str]) -> Option<(bool, String, String)> {
    match Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args(args)
        .output()
    {
        Ok(o) => Some((
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )),
        Err(e) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "etcdctl does not run ({e}), and CI must run this test: .ci/run installs etcd-client"
            );
            eprintln!("NOTICE: etcdctl not found; comparing synod's output alone");
            None
        }
    }
}

fn ours(args: &[&str]) -> (bool, String, String) {
    let o = synod(args);
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Drops the time taken (` took = 1.2ms`, `"took":"…"`).
fn untimed(s: &str) -> String {
    let mut out = String::new();
    for line in s.lines() {
        let line = match line.find("took = ") {
            Some(i) => &line[..i + 7],
            None => line,
        };
        let mut rest = line;
        while let Some(i) = rest.find("\"took\":\"") {
            out.push_str(&rest[..i + 8]);
            rest = &rest[i + 8..];
            out.push('*');
            rest = &rest[rest.find('"').unwrap_or(rest.len())..];
        }
        out.push_str(rest);
        out.push('\n');
    }
    out
}

#[test]
fn synods_endpoint_commands_print_what_etcdctl_prints() {
    let scratch = ScratchDir::new("endpoint-cmd");
    let cl = Cluster::start_fresh(3, &scratch.0);
    let eps = cl.endpoints();
    let first = eps.split(',').next().unwrap().to_owned();
    let flag = format!("--endpoints={eps}");
    let one = format!("--endpoints={first}");
    // Members publish their names through the log after they start: wait
    // for that, so Raft indexes hold still while the two clients compare.
    let t0 = std::time::Instant::now();
    loop {
        let ml = ours(&[&flag, "member", "list", "-w", "json"]);
        let v: serde_json::Value = serde_json::from_str(&ml.1).unwrap_or_default();
        let named = v["members"]
            .as_array()
            .is_some_and(|ms| ms.len() == 3 && ms.iter().all(|m| m["name"].is_string()));
        if named {
            break;
        }
        assert!(t0.elapsed().as_secs() < 15, "members never named: {ml:?}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let cases: Vec<Vec<&str>> = vec![
        vec![&flag, "endpoint", "status"],
        vec![&flag, "endpoint", "status", "-w", "json"],
        vec![&one, "endpoint", "status", "--cluster", "-w", "table"],
        vec![&flag, "endpoint", "hashkv"],
        vec![&one, "endpoint", "hashkv", "--cluster", "-w", "json"],
        vec![&flag, "endpoint", "hashkv", "-w", "table"],
        vec![&flag, "endpoint", "health"],
        vec![&one, "endpoint", "health", "--cluster", "-w", "json"],
    ];
    for args in &cases {
        let s = ours(args);
        assert!(s.0, "synod {args:?}: {s:?}");
        if args.contains(&"health") {
            // etcdctl 3.4 prints health lines on stderr, in the order
            // members answer.
            let text = if args.contains(&"json") { &s.1 } else { &s.2 };
            assert_eq!(
                text.matches("true").count() + text.matches("is healthy").count(),
                3,
                "{s:?}"
            );
        } else {
            assert!(!s.1.is_empty(), "synod {args:?}: {s:?}");
        }
        if args.contains(&"--cluster") {
            assert_eq!(
                s.1.matches("http://127.0.0.1:").count(),
                3,
                "{args:?}: {s:?}"
            );
        }
        let Some(e) = etcdctl(args) else { continue };
        assert!(e.0, "etcdctl {args:?}: {e:?}");
        // Lines, sorted; a JSON array's elements too (health answers come
        // in the order members answered).
        let sort = |t: &str| {
            let mut l: Vec<String> = Vec::new();
            for line in untimed(t).lines() {
                match serde_json::from_str::<serde_json::Value>(line) {
                    Ok(serde_json::Value::Array(a)) => {
                        l.extend(a.iter().map(|v| v.to_string()));
                    }
                    _ => l.push(line.to_owned()),
                }
            }
            l.sort();
            l
        };
        assert_eq!(sort(&s.1), sort(&e.1), "stdout of {args:?}");
        if args.contains(&"health") && !args.contains(&"json") {
            assert_eq!(sort(&s.2), sort(&e.2), "stderr of {args:?}");
        }
    }
    // The same flag after the subcommand's name.
    let after = ours(&["endpoint", "status", &flag]);
    assert!(after.0, "{after:?}");
    assert_eq!(after.1.lines().count(), 3, "{after:?}");
    // A member that does not answer: unhealthy, exit 1, etcdctl's words.
    let bad = ours(&[
        "--endpoints=127.0.0.1:1",
        "endpoint",
        "health",
        "--dial-timeout=300ms",
        "--command-timeout=500ms",
    ]);
    assert!(!bad.0, "{bad:?}");
    assert!(
        bad.2
            .contains("127.0.0.1:1 is unhealthy: failed to commit proposal: "),
        "{bad:?}"
    );
    assert!(bad.2.contains("Error: unhealthy cluster"), "{bad:?}");
}

#[test]
fn server_help_shows_no_client_flags() {
    let h = ours(&["server", "--help"]);
    assert!(h.0, "{h:?}");
    assert!(h.1.contains("--initial-cluster"), "{}", h.1);
    for client_only in [
        "--endpoints",
        "--write-out",
        "--dial-timeout",
        "--command-timeout",
    ] {
        assert!(!h.1.contains(client_only), "{client_only} in:\n{}", h.1);
    }
    let g = ours(&["get", "--help"]);
    assert!(g.1.contains("--endpoints"), "{}", g.1);
}
