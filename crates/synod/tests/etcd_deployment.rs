//! Issue 19, item 6: deployment files written for etcd start synod. The
//! same single-member deployment — as Go's single-dash flags, as `ETCD_*`
//! environment variables, and as etcd's YAML `--config-file` — is given to
//! a real etcd 3.4 and to the `synod server` binary; each must come up on
//! the configured client URL under the configured name, and say so to
//! etcdctl the same way.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_ports, ScratchDir};

/// Whether `tool` runs; under CI (which installs it) its absence fails.
fn have(tool: &str, arg: &str, package: &str) -> bool {
    let ok = Command::new(tool)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "{tool} does not run, and CI must run this test: .ci/run installs Debian's {package}"
        );
        eprintln!("NOTICE: {tool} not found; skipping (install Debian's {package})");
    }
    ok
}

/// A server process, killed on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// How one deployment is given.
#[derive(Clone, Copy, Debug)]
enum Form {
    SingleDash,
    Env,
    ConfigFile,
}

/// The deployment's settings, by etcd's flag names.
fn settings(name: &str, dir: &Path, client: u16, peer: u16) -> Vec<(&'static str, String)> {
    let c = format!("http://127.0.0.1:{client}");
    let p = format!("http://127.0.0.1:{peer}");
    vec![
        ("name", name.to_owned()),
        ("data-dir", dir.join(name).display().to_string()),
        ("listen-client-urls", c.clone()),
        ("advertise-client-urls", c),
        ("listen-peer-urls", p.clone()),
        ("initial-advertise-peer-urls", p.clone()),
        ("initial-cluster", format!("{name}={p}")),
        ("initial-cluster-token", "deploy-test".into()),
        ("initial-cluster-state", "new".into()),
        ("heartbeat-interval", "50".into()),
        ("election-timeout", "500".into()),
        // etcd settings synod accepts and ignores.
        ("auto-compaction-retention", "1".into()),
        ("log-level", "info".into()),
    ]
}

fn start(program: &str, form: Form, name: &str, dir: &Path, client: u16, peer: u16) -> Proc {
    let mut cmd = Command::new(program);
    if program.ends_with("synod") {
        cmd.arg("server");
    }
    let s = settings(name, dir, client, peer);
    match form {
        Form::SingleDash => {
            for (k, v) in &s {
                cmd.arg(format!("-{k}")).arg(v);
            }
        }
        Form::Env => {
            for (k, v) in &s {
                cmd.env(format!("ETCD_{}", k.to_uppercase().replace('-', "_")), v);
            }
        }
        Form::ConfigFile => {
            let mut yaml = String::new();
            for (k, v) in &s {
                // Numbers as YAML numbers, the rest quoted as etcd's sample does.
                if v.bytes().all(|b| b.is_ascii_digit()) && *k != "auto-compaction-retention" {
                    yaml.push_str(&format!("{k}: {v}\n"));
                } else {
                    yaml.push_str(&format!("{k}: '{v}'\n"));
                }
            }
            yaml.push_str("enable-v2: false\nlog-outputs: [stderr]\nclient-transport-security:\n  cert-file:\n  client-cert-auth: false\n");
            let path = dir.join(format!("{name}.yml"));
            std::fs::write(&path, yaml).unwrap();
            cmd.arg("--config-file").arg(&path);
            // Ignored beside a config file, as etcd ignores it.
            cmd.env("ETCD_NAME", "not-this-name");
        }
    }
    let log = std::fs::File::create(dir.join(format!("{name}.log"))).unwrap();
    Proc(
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("the server starts"),
    )
}

/// `etcdctl member list -w json` once the member answers.
fn member_list(client: u16, log: &Path) -> serde_json::Value {
    let t0 = Instant::now();
    loop {
        let o = Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints=127.0.0.1:{client}"))
            .args(["--dial-timeout=1s", "member", "list", "-w", "json"])
            .output()
            .unwrap();
        if o.status.success() {
            let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
            if v["members"][0]["name"].is_string() {
                return v;
            }
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "no member list on port {client}: {}\nlog:\n{}",
            String::from_utf8_lossy(&o.stderr),
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn etcds_flag_env_and_config_file_forms_start_synod_as_they_start_etcd() {
    if !have("etcd", "--version", "etcd-server") || !have("etcdctl", "version", "etcd-client") {
        return;
    }
    let scratch = ScratchDir::new("etcd-deployment");
    let synod = env!("CARGO_BIN_EXE_synod");
    for form in [Form::SingleDash, Form::Env, Form::ConfigFile] {
        let mut seen = Vec::new();
        for program in ["etcd", synod] {
            let kind = if program == "etcd" { "etcd" } else { "synod" };
            let dir = scratch.0.join(format!("{form:?}-{kind}"));
            std::fs::create_dir_all(&dir).unwrap();
            let ports = free_ports(2);
            let name = format!("m-{kind}");
            let _p = start(program, form, &name, &dir, ports[0], ports[1]);
            let ml = member_list(ports[0], &dir.join(format!("{name}.log")));
            let m = &ml["members"][0];
            assert_eq!(m["name"], name.as_str(), "{kind} {form:?}: {ml}");
            assert_eq!(
                m["clientURLs"][0],
                format!("http://127.0.0.1:{}", ports[0]),
                "{kind} {form:?}: {ml}"
            );
            assert_eq!(
                m["peerURLs"][0],
                format!("http://127.0.0.1:{}", ports[1]),
                "{kind} {form:?}: {ml}"
            );
            assert!(dir.join(&name).is_dir(), "{kind} {form:?}: data dir");
            seen.push(ml["members"].as_array().unwrap().len());
        }
        assert_eq!(seen, [1, 1], "{form:?}");
    }
}

#[test]
fn synod_server_refuses_etcd_settings_it_cannot_honour() {
    let o = Command::new(env!("CARGO_BIN_EXE_synod"))
        .args([
            "server",
            "-name",
            "x",
            "-client-crl-file",
            "/etc/ssl/crl.pem",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("--client-crl-file") && err.contains("revocation lists are not supported"),
        "{err}"
    );
}
