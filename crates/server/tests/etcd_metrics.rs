//! Issue 19, item 3: `/metrics` carries etcd's metric names, with etcd's
//! labels, beside synod's own `synod_` ones, so etcd's dashboards and alert
//! rules read a synod member as they read an etcd one. Compared with a real
//! etcd 3.4's `/metrics` after the same etcdctl calls; then alert rules over
//! those names are evaluated by Prometheus's `promtool` against a scrape of
//! synod.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::Duration;

use common::*;

/// The families etcd's alert rules and dashboard read, as etcd names them.
const FAMILIES: &[&str] = &[
    "etcd_server_has_leader",
    "etcd_server_leader_changes_seen_total",
    "etcd_server_proposals_committed_total",
    "etcd_server_proposals_applied_total",
    "etcd_server_proposals_pending",
    "etcd_server_proposals_failed_total",
    "etcd_server_quota_backend_bytes",
    "etcd_mvcc_db_total_size_in_bytes",
    "etcd_mvcc_db_total_size_in_use_in_bytes",
    "etcd_disk_wal_fsync_duration_seconds_bucket",
    "etcd_disk_backend_commit_duration_seconds_bucket",
    "etcd_network_peer_round_trip_time_seconds_bucket",
    "grpc_server_started_total",
    "grpc_server_handled_total",
    "grpc_server_handling_seconds_bucket",
];

fn scrape(ep: &str) -> String {
    let o = Command::new("curl")
        .args(["-s", "--max-time", "5", &format!("http://{ep}/metrics")])
        .output()
        .expect("curl runs");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Each metric's name with the sets of label names its samples carry.
type Shapes = BTreeMap<String, BTreeSet<Vec<String>>>;

/// Each sample's name and its label names (values dropped), and the value
/// of each sample line as written.
fn samples(text: &str) -> (Shapes, Vec<(String, String)>) {
    let mut shapes = Shapes::new();
    let mut lines = Vec::new();
    for l in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (series, value) = l.rsplit_once(' ').unwrap();
        let (name, labels) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        let names: Vec<String> = labels
            .split(',')
            .filter(|p| !p.is_empty())
            .map(|p| p.split_once('=').unwrap().0.to_owned())
            .collect();
        shapes.entry(name.to_owned()).or_default().insert(names);
        lines.push((series.to_owned(), value.to_owned()));
    }
    (shapes, lines)
}

fn value(lines: &[(String, String)], series: &str) -> Option<f64> {
    lines
        .iter()
        .find(|(s, _)| s == series)
        .map(|(_, v)| v.parse().unwrap())
}

#[test]
fn metrics_carry_etcds_names_and_labels() {
    if !have_etcd() || !have_etcdctl() || !have("curl", "--version", "curl") {
        return;
    }
    // With the handling-time histograms (`extensive`), as dashboards use it.
    let etcd = Etcd3::start_with_args(3, &["--metrics", "extensive"]);
    let cl = Cluster::start(3);
    cl.wait_leader(Duration::from_secs(10)).expect("a leader");
    let synod: Vec<String> = (0..3).map(|i| cl.endpoint(i)).collect();
    for eps in [&etcd.clients, &synod] {
        let all = eps.join(",");
        ctl_ok(&all, &["put", "m", "1"]);
        ctl_ok(&all, &["get", "m"]);
        // A refused call: its code is counted.
        assert!(!ctl(&all, &["get", "m", "--rev=99"]).ok);
        ctl_ok(&all, &["endpoint", "status"]);
    }
    // Peer round trips are probed every few seconds: wait for one.
    std::thread::sleep(Duration::from_secs(2));
    let (e_shapes, _) = samples(&scrape(&etcd.clients[0]));
    let s_text = scrape(&synod[0]);
    let (s_shapes, s_lines) = samples(&s_text);
    for f in FAMILIES {
        let s = s_shapes
            .get(*f)
            .unwrap_or_else(|| panic!("synod has no {f}:\n{s_text}"));
        // etcd probes its peers' round trips every 30 s or so: it may have
        // none yet.
        let Some(e) = e_shapes.get(*f) else {
            assert_eq!(
                *f, "etcd_network_peer_round_trip_time_seconds_bucket",
                "etcd has no {f}"
            );
            assert!(s.iter().all(|l| l == &["To", "le"]), "{f}: {s:?}");
            continue;
        };
        // Every label set synod writes is one etcd writes.
        for labels in s {
            assert!(
                e.contains(labels),
                "{f}: synod's labels {labels:?}, etcd's {e:?}"
            );
        }
    }
    // synod's own names stay.
    assert!(s_shapes.contains_key("synod_server_has_leader"));
    // Values: a leader, entries committed and applied, the put and the
    // refused get counted by method and code.
    assert_eq!(value(&s_lines, "etcd_server_has_leader"), Some(1.0));
    assert!(value(&s_lines, "etcd_server_proposals_committed_total").unwrap() > 0.0);
    let put = r#"grpc_server_handled_total{grpc_code="OK",grpc_method="Put",grpc_service="etcdserverpb.KV",grpc_type="unary"}"#;
    let refused = r#"grpc_server_handled_total{grpc_code="OutOfRange",grpc_method="Range",grpc_service="etcdserverpb.KV",grpc_type="unary"}"#;
    let started = r#"grpc_server_started_total{grpc_method="Range",grpc_service="etcdserverpb.KV",grpc_type="unary"}"#;
    // Each etcdctl call went to one member; the first is the one scraped
    // only if etcdctl picked it: look at all three.
    let total = |series: &str| -> f64 {
        synod
            .iter()
            .map(|ep| {
                let (_, l) = samples(&scrape(ep));
                value(&l, series).unwrap_or(0.0)
            })
            .sum()
    };
    assert_eq!(total(put), 1.0, "one put");
    assert_eq!(total(refused), 1.0, "one refused range");
    assert!(total(started) >= 2.0, "two ranges started");
}

/// Alert rules in the form etcd's published ones take (written here, over
/// etcd's metric names), checked by `promtool check rules` and evaluated by
/// `promtool test rules` against series scraped from a live synod member.
#[test]
fn etcd_alert_rules_evaluate_against_a_synod_scrape() {
    if !have("promtool", "--version", "prometheus") || !have("curl", "--version", "curl") {
        return;
    }
    let cl = Cluster::start(3);
    cl.wait_leader(Duration::from_secs(10)).expect("a leader");
    let ep = cl.endpoint(0);
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("etcd-rules.yml");
    std::fs::write(&rules, RULES).unwrap();
    let check = Command::new("promtool")
        .arg("check")
        .arg("rules")
        .arg(&rules)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    // The scrape, as input series of a rule test: each sample held for
    // 20 minutes (long enough for the rules' `for` clauses).
    let (_, lines) = samples(&scrape(&ep));
    let mut series = String::new();
    for (s, v) in &lines {
        let v: f64 = v.parse().unwrap_or(0.0);
        let name = s.split('{').next().unwrap();
        let wanted = [
            "etcd_server_has_leader",
            "etcd_server_leader_changes_seen_total",
            "etcd_server_proposals_failed_total",
            "etcd_mvcc_db_total_size_in_bytes",
            "etcd_mvcc_db_total_size_in_use_in_bytes",
            "etcd_server_quota_backend_bytes",
            "grpc_server_handled_total",
        ];
        if !wanted.contains(&name) {
            continue;
        }
        let labelled = if s.contains('{') {
            s.replacen('{', "{job=\"etcd\",instance=\"m1\",", 1)
        } else {
            format!("{s}{{job=\"etcd\",instance=\"m1\"}}")
        };
        series.push_str(&format!(
            "      - series: '{labelled}'\n        values: '{v}x40'\n"
        ));
    }
    assert!(series.contains("etcd_server_has_leader"), "{series}");
    // The same series with the leader gone: etcdNoLeader must fire.
    let no_leader = "      - series: 'etcd_server_has_leader{job=\"etcd\",instance=\"m2\"}'\n        values: '0x40'\n";
    let test = format!(
        "rule_files:\n  - {}\nevaluation_interval: 1m\ntests:\n  - interval: 1m\n    input_series:\n{series}{no_leader}    alert_rule_test:\n{ALERT_EXPECTATIONS}",
        rules.display()
    );
    let test_file = dir.path().join("etcd-rules-test.yml");
    std::fs::write(&test_file, &test).unwrap();
    let run = Command::new("promtool")
        .arg("test")
        .arg("rules")
        .arg(&test_file)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "promtool test rules failed:\n{}{}\n--- test file:\n{test}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
}

/// Alerts over etcd's metric names, in the shape of etcd's own rules.
const RULES: &str = r#"groups:
  - name: etcd
    rules:
      - alert: etcdNoLeader
        expr: etcd_server_has_leader{job=~".*etcd.*"} == 0
        for: 1m
        labels:
          severity: critical
      - alert: etcdHighNumberOfLeaderChanges
        expr: increase((max without (instance) (etcd_server_leader_changes_seen_total{job=~".*etcd.*"}) or 0*absent(etcd_server_leader_changes_seen_total{job=~".*etcd.*"}))[15m:1m]) >= 4
        for: 5m
        labels:
          severity: warning
      - alert: etcdHighNumberOfFailedProposals
        expr: rate(etcd_server_proposals_failed_total{job=~".*etcd.*"}[15m]) > 5
        for: 15m
        labels:
          severity: warning
      - alert: etcdHighNumberOfFailedGRPCRequests
        expr: 100 * sum(rate(grpc_server_handled_total{job=~".*etcd.*", grpc_code=~"Unknown|FailedPrecondition|ResourceExhausted|Internal|Unavailable|DataLoss|DeadlineExceeded"}[5m])) without (grpc_type, grpc_code) / sum(rate(grpc_server_handled_total{job=~".*etcd.*"}[5m])) without (grpc_type, grpc_code) > 1
        for: 10m
        labels:
          severity: warning
      - alert: etcdDatabaseQuotaLowSpace
        expr: (last_over_time(etcd_mvcc_db_total_size_in_bytes{job=~".*etcd.*"}[5m]) / last_over_time(etcd_server_quota_backend_bytes{job=~".*etcd.*"}[5m]))*100 > 95
        for: 10m
        labels:
          severity: critical
      - alert: etcdDatabaseHighFragmentationRatio
        expr: (last_over_time(etcd_mvcc_db_total_size_in_use_in_bytes{job=~".*etcd.*"}[5m]) / last_over_time(etcd_mvcc_db_total_size_in_bytes{job=~".*etcd.*"}[5m])) < 0.5 and etcd_mvcc_db_total_size_in_use_in_bytes{job=~".*etcd.*"} > 104857600
        for: 10m
        labels:
          severity: warning
"#;

/// What must fire at 20 minutes: only etcdNoLeader, for the member whose
/// series says it has none; the healthy synod scrape fires nothing.
const ALERT_EXPECTATIONS: &str = r#"      - eval_time: 20m
        alertname: etcdNoLeader
        exp_alerts:
          - exp_labels:
              severity: critical
              job: etcd
              instance: m2
      - eval_time: 20m
        alertname: etcdHighNumberOfLeaderChanges
        exp_alerts: []
      - eval_time: 20m
        alertname: etcdHighNumberOfFailedProposals
        exp_alerts: []
      - eval_time: 20m
        alertname: etcdHighNumberOfFailedGRPCRequests
        exp_alerts: []
      - eval_time: 20m
        alertname: etcdDatabaseQuotaLowSpace
        exp_alerts: []
      - eval_time: 20m
        alertname: etcdDatabaseHighFragmentationRatio
        exp_alerts: []
"#;
