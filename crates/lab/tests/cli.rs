//! The CLI's contract: names, JSON shape, exit codes.

use synod_lab::cli::{list_text, run, LabArgs, EXIT_CHECK_FAILED, EXIT_OK, EXIT_USAGE};
use synod_lab::{algorithms, find, LabOptions};

fn args(words: &[&str]) -> LabArgs {
    LabArgs {
        args: words.iter().map(|s| s.to_string()).collect(),
        nodes: None,
        seed: 1,
        faults: "none".into(),
        variant: None,
        write_out: "json".into(),
        svg: None,
        html: None,
        mermaid: None,
        max_events: 400,
        max_lanes: 32,
    }
}

/// Names fixed by /work/shared/INTERFACES.md.
const CONTRACT_NAMES: &[&str] = &[
    "lamport-clock",
    "vector-clock",
    "matrix-clock",
    "hlc",
    "cristian",
    "berkeley",
    "chandy-lamport",
    "central-mutex",
    "token-ring",
    "lamport-mutex",
    "ricart-agrawala",
    "maekawa",
    "wfg-detector",
    "chandy-misra-haas",
    "flooding",
    "echo",
    "causal-broadcast",
    "anti-entropy",
    "rumor-mongering",
    "heartbeat",
    "phi-accrual",
    "swim",
    "raft",
    "paxos",
    "multi-paxos",
    "flp",
    "bully",
    "ring-election",
    "byzantine-generals",
    "pbft",
    "two-phase-commit",
    "three-phase-commit",
    "saga",
    "two-phase-locking",
    "mvcc",
    "consistent-hashing",
    "chord",
    "primary-backup",
    "chain-replication",
    "multi-leader",
    "dynamo",
    "crdt",
    "version-vectors",
    "ntp",
    "redlock",
    "kerberos",
    "rpc-semantics",
    "consistency-models",
];

#[test]
fn every_registered_name_is_a_contract_name_and_unique() {
    let names: Vec<&str> = algorithms().iter().map(|a| a.name).collect();
    for n in &names {
        assert!(
            CONTRACT_NAMES.contains(n),
            "{n} is not a name from INTERFACES.md"
        );
        assert_eq!(
            names.iter().filter(|m| *m == n).count(),
            1,
            "{n} registered twice"
        );
        assert!(list_text().contains(n));
    }
}

#[test]
fn json_has_the_contract_shape() {
    for a in algorithms() {
        let run = a.execute(&LabOptions::new(a.default_nodes, 1)).unwrap();
        let v: serde_json::Value = serde_json::from_str(&run.report.to_json()).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            ["algorithm", "checks", "costs", "nodes", "seed"],
            "{}",
            a.name
        );
        for c in v["checks"].as_array().unwrap() {
            assert!(c["name"].is_string() && c["held"].is_boolean() && c["detail"].is_string());
        }
        for c in v["costs"].as_array().unwrap() {
            assert!(c["name"].is_string() && c["measured"].is_number() && c["formula"].is_string());
            assert!(c["expected"].is_number() || c["expected"].is_null());
        }
        assert!(
            run.report.passed(),
            "{} fails on its defaults: {:?}",
            a.name,
            run.report
        );
    }
}

#[test]
fn exit_codes() {
    assert_eq!(run(args(&["list"])), EXIT_OK);
    assert_eq!(run(args(&["describe", "vector-clock"])), EXIT_OK);
    assert_eq!(run(args(&["describe", "nope"])), EXIT_USAGE);
    assert_eq!(run(args(&["nope"])), EXIT_USAGE);
    assert_eq!(run(args(&["lamport-clock"])), EXIT_OK);
    let mut bad = args(&["lamport-clock"]);
    bad.faults = "loss,bogus".into();
    assert_eq!(run(bad), EXIT_USAGE);
    let mut v = args(&["vector-clock"]);
    v.variant = Some("no-merge".into());
    v.nodes = Some(4);
    assert_eq!(run(v), EXIT_CHECK_FAILED);
    let mut v = args(&["vector-clock"]);
    v.variant = Some("nonsense".into());
    assert_eq!(run(v), EXIT_USAGE);
    let mut n = args(&["vector-clock"]);
    n.nodes = Some(0);
    assert_eq!(run(n), EXIT_USAGE);
}

#[test]
fn every_algorithm_is_deterministic() {
    for a in algorithms() {
        let o = LabOptions::new(a.default_nodes, 5);
        let (x, y) = (a.execute(&o).unwrap(), a.execute(&o).unwrap());
        assert_eq!(x.report, y.report, "{}", a.name);
        assert_eq!(x.trace.events, y.trace.events, "{}", a.name);
        assert!(find(a.name).is_ok());
    }
}

/// `--svg run.svg` writes φ-accrual's suspicion plot beside the diagram as
/// `run-phi.svg`; `--html` shows it on the page; algorithms without extra
/// figures write only the diagram.
#[test]
fn svg_and_html_carry_the_phi_plot() {
    let dir = std::env::temp_dir().join(format!("synod-lab-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut a = args(&["phi-accrual"]);
    a.svg = Some(dir.join("run.svg"));
    a.html = Some(dir.join("run.html"));
    assert_eq!(run(a), EXIT_OK);
    let diagram = std::fs::read_to_string(dir.join("run.svg")).unwrap();
    let plot = std::fs::read_to_string(dir.join("run-phi.svg")).unwrap();
    let page = std::fs::read_to_string(dir.join("run.html")).unwrap();
    assert!(diagram.starts_with("<svg") && diagram.contains(">P3<"));
    assert!(plot.starts_with("<svg") && plot.contains("<polyline") && plot.contains("Φ = 8"));
    assert!(page.contains("id=\"figure-phi\"") && page.contains(&plot));
    let mut l = args(&["lamport-clock"]);
    l.svg = Some(dir.join("l.svg"));
    assert_eq!(run(l), EXIT_OK);
    assert!(dir.join("l.svg").exists() && !dir.join("l-phi.svg").exists());
    let mut bad = args(&["lamport-clock"]);
    bad.svg = Some(dir.join("no-such-dir").join("x.svg"));
    assert_eq!(run(bad), EXIT_USAGE);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `synod lab tour --html DIR` writes an index with every algorithm's
/// diagram and checks, and one page per algorithm; without `--html` it is a
/// usage error.
#[test]
fn tour_writes_every_diagram_and_its_checks() {
    let dir = std::env::temp_dir().join(format!("synod-lab-tour-{}", std::process::id()));
    let mut t = args(&["tour"]);
    t.html = Some(dir.clone());
    assert_eq!(run(t), EXIT_OK);
    let index = std::fs::read_to_string(dir.join("index.html")).unwrap();
    assert_eq!(index.matches("<svg").count(), algorithms().len());
    for a in algorithms() {
        assert!(
            index.contains(&format!("href=\"{}.html\"", a.name)),
            "{}",
            a.name
        );
        assert!(dir.join(format!("{}.html", a.name)).exists(), "{}", a.name);
        for c in &a
            .execute(&LabOptions::new(a.default_nodes, 1))
            .unwrap()
            .report
            .checks
        {
            let name = c
                .name
                .replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;");
            let name = name.replace('"', "&quot;").replace('\'', "&#39;");
            assert!(index.contains(&name), "{}: {}", a.name, c.name);
        }
    }
    assert_eq!(run(args(&["tour"])), EXIT_USAGE);
    std::fs::remove_dir_all(&dir).unwrap();
}
