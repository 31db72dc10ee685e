//! `synod server`'s arguments as etcd reads its own, so deployment files
//! written for etcd start synod: Go's single-dash flags (`-name n1`),
//! `ETCD_*` environment variables, and `--config-file` (etcd's YAML, whose
//! keys are the flags' names; when it is given, etcd ignores every other
//! flag and variable, and so does this).
//!
//! [`etcd_style`] turns all of that into the plain `--flag=value` arguments
//! clap parses. etcd flags that synod does not have are sorted in two: those
//! that only tune what synod does its own way (logging, quotas, compaction
//! schedules, v2, pprof, …) are accepted and named in a note; those whose
//! absence would change what a deployment gets (certificate revocation
//! lists, discovery, `--force-new-cluster`) are refused with the reason,
//! unless left empty. The TLS flags are synod's own (`tls.rs`); etcd's
//! YAML nests them under `client-transport-security` and
//! `peer-transport-security`.

use std::ffi::OsString;

use yaml_rust2::{Yaml, YamlLoader};

/// etcd flags that take a value and only tune what synod does its own way.
const IGNORED: &[&str] = &[
    "wal-dir",
    "max-snapshots",
    "max-wals",
    "quota-backend-bytes",
    "max-txn-ops",
    "grpc-keepalive-min-time",
    "grpc-keepalive-interval",
    "grpc-keepalive-timeout",
    "auto-compaction-retention",
    "auto-compaction-mode",
    "cors",
    "host-whitelist",
    "metrics",
    "listen-metrics-urls",
    "logger",
    "log-outputs",
    "log-level",
    "log-package-levels",
    "discovery-fallback",
    "proxy-failure-wait",
    "proxy-refresh-interval",
    "proxy-dial-timeout",
    "proxy-write-timeout",
    "proxy-read-timeout",
    "experimental-corrupt-check-time",
    "experimental-backend-bbolt-freelist-type",
    "experimental-compaction-batch-limit",
    "experimental-warning-apply-duration",
    "experimental-enable-v2v3",
    "self-signed-cert-validity",
];

/// etcd's boolean flags that only tune what synod does its own way (Go
/// takes them alone or as `--flag=BOOL`, never with a separate value).
const IGNORED_BOOL: &[&str] = &[
    "strict-reconfig-check",
    "pre-vote",
    "enable-v2",
    "enable-pprof",
    "debug",
    "initial-election-tick-advance",
    "experimental-initial-corrupt-check",
    "experimental-enable-lease-checkpoint",
    "experimental-peer-skip-client-san-verification",
];

/// etcd flags whose absence would change what a deployment gets: refused
/// unless empty (or false).
const REFUSED: &[(&str, &str)] = &[
    (
        "client-crl-file",
        "certificate revocation lists are not supported",
    ),
    (
        "client-cert-allowed-hostname",
        "--client-cert-allowed-hostname is not supported",
    ),
    (
        "peer-cert-allowed-cn",
        "--peer-cert-allowed-cn is not supported",
    ),
    (
        "peer-cert-allowed-hostname",
        "--peer-cert-allowed-hostname is not supported",
    ),
    (
        "peer-crl-file",
        "certificate revocation lists are not supported",
    ),
    (
        "discovery",
        "discovery is not supported: give --initial-cluster",
    ),
    (
        "discovery-srv",
        "discovery is not supported: give --initial-cluster",
    ),
    (
        "discovery-srv-name",
        "discovery is not supported: give --initial-cluster",
    ),
    (
        "discovery-proxy",
        "discovery is not supported: give --initial-cluster",
    ),
    ("force-new-cluster", "--force-new-cluster is not supported"),
    ("proxy", "proxy mode is not supported"),
];

/// The arguments of `synod server`, read as etcd reads its own.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct EtcdStyle {
    /// Plain `--flag=value` arguments for clap, in order.
    pub args: Vec<OsString>,
    /// What was accepted and ignored, one line each, to tell the operator.
    pub notes: Vec<String>,
}

/// Whether a value leaves a flag off (empty, or false).
fn off(v: &str) -> bool {
    v.is_empty() || v == "false"
}

fn env_name(flag: &str) -> String {
    format!("ETCD_{}", flag.to_ascii_uppercase().replace('-', "_"))
}

/// Sorts one etcd flag and its value into `out`; `known` are synod's own
/// flags, `boolean` those of them that take no value.
fn take(
    out: &mut EtcdStyle,
    known: &[String],
    boolean: &[String],
    flag: &str,
    value: Option<&str>,
    whence: &str,
) -> Result<(), String> {
    if known.iter().any(|k| k == flag) {
        match value {
            Some(v) if boolean.iter().any(|b| b == flag) => {
                if v == "true" {
                    out.args.push(format!("--{flag}").into());
                } else if v != "false" {
                    return Err(format!("{whence}: --{flag} takes true or false, not {v:?}"));
                }
            }
            Some(v) => out.args.push(format!("--{flag}={v}").into()),
            None => out.args.push(format!("--{flag}").into()),
        }
        return Ok(());
    }
    if let Some((_, why)) = REFUSED.iter().find(|(f, _)| *f == flag) {
        let v = value.unwrap_or("true");
        // etcd's own default for --proxy.
        if off(v) || (flag == "proxy" && v == "off") {
            return Ok(());
        }
        return Err(format!("{whence}: --{flag}={v}: {why}"));
    }
    if IGNORED.contains(&flag) || IGNORED_BOOL.contains(&flag) {
        if value.is_some_and(|v| !v.is_empty()) || value.is_none() {
            out.notes.push(format!(
                "{whence}: etcd's --{flag} is accepted and ignored (synod has no such setting)"
            ));
        }
        return Ok(());
    }
    Err(format!("{whence}: unknown flag --{flag}"))
}

/// Reads `synod server`'s arguments (`args`, after the word `server`) as
/// etcd reads its own, with `env` the process environment. `known` are
/// synod's own server flags (long names), `boolean` those that take no
/// value.
pub fn etcd_style(
    args: &[OsString],
    env: &[(String, String)],
    known: &[String],
    boolean: &[String],
) -> Result<EtcdStyle, String> {
    let mut out = EtcdStyle::default();
    // Go's flags: `-flag`, `--flag`, `-flag=value`, `--flag value`; a
    // boolean never takes a separate value.
    let mut flags: Vec<(String, Option<String>)> = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = args[i].to_string_lossy().into_owned();
        i += 1;
        let Some(body) = a
            .strip_prefix("--")
            .or_else(|| a.strip_prefix('-'))
            .filter(|b| !b.is_empty() && !b.starts_with('-'))
        else {
            // Help and the like pass to clap as they came.
            out.args.push(a.into());
            continue;
        };
        if matches!(body, "h" | "help") {
            out.args.push("--help".into());
            continue;
        }
        let (name, value) = match body.split_once('=') {
            Some((n, v)) => (n.to_owned(), Some(v.to_owned())),
            None => (body.to_owned(), None),
        };
        let takes_value = value.is_none()
            && !boolean.contains(&name)
            && !IGNORED_BOOL.contains(&name.as_str())
            && name != "force-new-cluster"
            && name != "auto-tls"
            && name != "peer-auto-tls"
            && name != "client-cert-auth"
            && name != "peer-client-cert-auth";
        let value = if takes_value {
            let v = args
                .get(i)
                .ok_or_else(|| format!("flag needs an argument: -{name}"))?;
            i += 1;
            Some(v.to_string_lossy().into_owned())
        } else {
            value
        };
        flags.push((name, value));
    }
    // --config-file (or ETCD_CONFIG_FILE): the file alone, as etcd.
    let from_env = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let config = flags
        .iter()
        .find(|(n, _)| n == "config-file")
        .and_then(|(_, v)| v.clone())
        .or_else(|| from_env("ETCD_CONFIG_FILE").filter(|v| !v.is_empty()));
    if let Some(path) = config {
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("--config-file {path}: {e}"))?;
        let mut from_file = config_file(&text, &path, known, boolean)?;
        if flags.iter().any(|(n, _)| n != "config-file") {
            from_file.notes.push(format!(
                "--config-file {path} is given: the other flags and ETCD_* variables are ignored, as etcd ignores them"
            ));
        }
        // Help asked for beside a config file is still help.
        from_file.args.extend(out.args);
        return Ok(from_file);
    }
    for (name, value) in &flags {
        take(&mut out, known, boolean, name, value.as_deref(), "flag")?;
    }
    // ETCD_* for flags not given: the flags win, as in etcd.
    for (var, value) in env {
        let Some(rest) = var.strip_prefix("ETCD_") else {
            continue;
        };
        let flag = rest.to_ascii_lowercase().replace('_', "-");
        if flags.iter().any(|(n, _)| *n == flag) {
            out.notes.push(format!(
                "{var} is shadowed by the flag --{flag}, as in etcd"
            ));
            continue;
        }
        let known_here = known.contains(&flag)
            || IGNORED.contains(&flag.as_str())
            || IGNORED_BOOL.contains(&flag.as_str())
            || REFUSED.iter().any(|(f, _)| *f == flag);
        if !known_here {
            // etcd warns about these and goes on (ETCD_UNSUPPORTED_ARCH, …).
            continue;
        }
        if value.is_empty() {
            continue;
        }
        debug_assert_eq!(env_name(&flag), *var);
        take(&mut out, known, boolean, &flag, Some(value), var)?;
    }
    Ok(out)
}

/// The flags etcd's YAML configuration sets.
fn config_file(
    text: &str,
    path: &str,
    known: &[String],
    boolean: &[String],
) -> Result<EtcdStyle, String> {
    let docs = YamlLoader::load_from_str(text).map_err(|e| format!("--config-file {path}: {e}"))?;
    let mut out = EtcdStyle::default();
    let Some(doc) = docs.into_iter().next() else {
        return Ok(out);
    };
    let Yaml::Hash(map) = doc else {
        return Err(format!(
            "--config-file {path}: not a map of etcd's settings"
        ));
    };
    let whence = format!("--config-file {path}");
    for (k, v) in map {
        let Yaml::String(key) = k else {
            return Err(format!("{whence}: a key is not a string: {k:?}"));
        };
        let value = match v {
            Yaml::Null => continue,
            Yaml::String(s) => s,
            Yaml::Integer(n) if DURATIONS.contains(&key.as_str()) => {
                // Go's time.Duration in JSON: nanoseconds.
                format!("{n}ns")
            }
            Yaml::Integer(n) => n.to_string(),
            Yaml::Real(r) => r,
            Yaml::Boolean(b) => b.to_string(),
            Yaml::Array(a) => {
                let parts: Vec<String> = a.iter().filter_map(scalar).collect();
                parts.join(",")
            }
            Yaml::Hash(h) => {
                for (sk, sv) in h {
                    let Some(sk) = scalar(&sk) else {
                        return Err(format!("{whence}: {key}: a key is not a string"));
                    };
                    let flag = transport_flag(&key, &sk)
                        .ok_or_else(|| format!("{whence}: {key}.{sk}: unknown setting"))?;
                    let sv = match sv {
                        Yaml::Null => continue,
                        other => scalar(&other).ok_or_else(|| {
                            format!("{whence}: {key}.{sk}: unreadable value {other:?}")
                        })?,
                    };
                    take(&mut out, known, boolean, &flag, Some(&sv), &whence)?;
                }
                continue;
            }
            other => return Err(format!("{whence}: {key}: unreadable value {other:?}")),
        };
        take(&mut out, known, boolean, &key, Some(&value), &whence)?;
    }
    Ok(out)
}

/// The flag an entry of etcd's YAML `client-transport-security` or
/// `peer-transport-security` stands for.
fn transport_flag(section: &str, key: &str) -> Option<String> {
    let flag = match (section, key) {
        (
            "client-transport-security",
            "cert-file" | "key-file" | "trusted-ca-file" | "client-cert-auth" | "auto-tls",
        ) => key.to_string(),
        ("client-transport-security", "crl-file") => "client-crl-file".into(),
        ("client-transport-security", "allowed-hostname") => "client-cert-allowed-hostname".into(),
        (
            "peer-transport-security",
            "cert-file" | "key-file" | "trusted-ca-file" | "client-cert-auth" | "auto-tls"
            | "crl-file",
        ) => format!("peer-{key}"),
        ("peer-transport-security", "allowed-cn") => "peer-cert-allowed-cn".into(),
        ("peer-transport-security", "allowed-hostname") => "peer-cert-allowed-hostname".into(),
        _ => return None,
    };
    Some(flag)
}

/// Settings of etcd's YAML that are Go durations (integers: nanoseconds).
const DURATIONS: &[&str] = &[
    "experimental-watch-progress-notify-interval",
    "backend-batch-interval",
];

fn scalar(y: &Yaml) -> Option<String> {
    match y {
        Yaml::String(s) | Yaml::Real(s) => Some(s.clone()),
        Yaml::Integer(n) => Some(n.to_string()),
        Yaml::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known() -> (Vec<String>, Vec<String>) {
        let k = [
            "name",
            "data-dir",
            "listen-client-urls",
            "initial-cluster",
            "heartbeat-interval",
            "experimental-watch-progress-notify-interval",
            "quiet",
            "cert-file",
            "key-file",
            "client-cert-auth",
            "peer-cert-file",
            "peer-trusted-ca-file",
            "peer-auto-tls",
            "auto-tls",
            "cipher-suites",
        ];
        let b = ["quiet", "client-cert-auth", "peer-auto-tls", "auto-tls"];
        (
            k.iter().map(|s| s.to_string()).collect(),
            b.iter().map(|s| s.to_string()).collect(),
        )
    }

    fn run(args: &[&str], env: &[(&str, &str)]) -> Result<EtcdStyle, String> {
        let (k, b) = known();
        let args: Vec<OsString> = args.iter().map(OsString::from).collect();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        etcd_style(&args, &env, &k, &b)
    }

    fn args(s: &EtcdStyle) -> Vec<String> {
        s.args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn go_flag_forms_become_clap_flags() {
        let s = run(
            &[
                "-name",
                "n1",
                "--data-dir=d",
                "-heartbeat-interval=50",
                "-quiet",
            ],
            &[],
        )
        .unwrap();
        assert_eq!(
            args(&s),
            [
                "--name=n1",
                "--data-dir=d",
                "--heartbeat-interval=50",
                "--quiet"
            ]
        );
        assert_eq!(args(&run(&["-h"], &[]).unwrap()), ["--help"]);
        assert!(run(&["-name"], &[])
            .unwrap_err()
            .contains("needs an argument"));
        assert!(run(&["--bogus", "1"], &[]).unwrap_err().contains("--bogus"));
    }

    #[test]
    fn etcd_variables_fill_flags_not_given() {
        let s = run(
            &["--name", "flag"],
            &[
                ("ETCD_NAME", "env"),
                ("ETCD_DATA_DIR", "/d"),
                ("ETCD_LOG_LEVEL", "debug"),
                ("ETCD_UNSUPPORTED_ARCH", "arm"),
                ("ETCDCTL_API", "3"),
                ("ETCD_QUOTA_BACKEND_BYTES", ""),
            ],
        )
        .unwrap();
        assert_eq!(args(&s), ["--name=flag", "--data-dir=/d"]);
        assert!(
            s.notes.iter().any(|n| n.contains("ETCD_NAME is shadowed")),
            "{s:?}"
        );
        assert!(s.notes.iter().any(|n| n.contains("--log-level")), "{s:?}");
        let e = run(&[], &[("ETCD_CLIENT_CRL_FILE", "/crl.pem")]).unwrap_err();
        assert!(e.contains("revocation"), "{e}");
        assert!(run(&[], &[("ETCD_CLIENT_CRL_FILE", "")]).is_ok());
    }

    #[test]
    fn ignored_and_refused_etcd_flags() {
        let s = run(
            &[
                "--enable-v2",
                "--name",
                "a",
                "--auto-compaction-retention",
                "1",
                "--proxy",
                "off",
            ],
            &[],
        )
        .unwrap();
        assert_eq!(args(&s), ["--name=a"]);
        assert_eq!(s.notes.len(), 2, "{s:?}");
        assert!(run(&["--force-new-cluster"], &[]).is_err());
        assert!(run(&["--discovery", "https://x"], &[]).is_err());
    }

    #[test]
    fn tls_settings_come_from_flags_variables_and_the_yaml_sections() {
        let s = run(
            &[
                "-cert-file",
                "/c.pem",
                "--client-cert-auth",
                "-peer-auto-tls=true",
            ],
            &[("ETCD_KEY_FILE", "/k.pem")],
        )
        .unwrap();
        assert_eq!(
            args(&s),
            [
                "--cert-file=/c.pem",
                "--client-cert-auth",
                "--peer-auto-tls",
                "--key-file=/k.pem"
            ]
        );
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("etcd.yml");
        std::fs::write(
            &p,
            "client-transport-security:\n  cert-file: /c.pem\n  key-file: /k.pem\n  \
             client-cert-auth: true\n  auto-tls: false\n\
             peer-transport-security:\n  cert-file: /p.pem\n  trusted-ca-file: /ca.pem\n  \
             auto-tls: true\n\
             cipher-suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, TLS_AES_128_GCM_SHA256]\n",
        )
        .unwrap();
        let s = run(&["--config-file", p.to_str().unwrap()], &[]).unwrap();
        assert_eq!(
            args(&s),
            [
                "--cert-file=/c.pem",
                "--key-file=/k.pem",
                "--client-cert-auth",
                "--peer-cert-file=/p.pem",
                "--peer-trusted-ca-file=/ca.pem",
                "--peer-auto-tls",
                "--cipher-suites=TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,TLS_AES_128_GCM_SHA256",
            ]
        );
    }

    #[test]
    fn a_config_file_is_read_alone() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("etcd.yml");
        std::fs::write(
            &p,
            "name: 'n1'\ndata-dir:\nheartbeat-interval: 50\nlisten-client-urls: http://127.0.0.1:1\n\
             log-outputs: [stderr]\nenable-v2: true\n\
             experimental-watch-progress-notify-interval: 5000000000\n\
             client-transport-security:\n  cert-file:\n  client-cert-auth: false\n",
        )
        .unwrap();
        let path = p.to_str().unwrap();
        let s = run(
            &["--config-file", path, "--name", "ignored"],
            &[("ETCD_NAME", "x")],
        )
        .unwrap();
        assert_eq!(
            args(&s),
            [
                "--name=n1",
                "--heartbeat-interval=50",
                "--listen-client-urls=http://127.0.0.1:1",
                "--experimental-watch-progress-notify-interval=5000000000ns",
            ]
        );
        assert!(
            s.notes.iter().any(|n| n.contains("ignored, as etcd")),
            "{s:?}"
        );
        let s2 = run(&[], &[("ETCD_CONFIG_FILE", path)]).unwrap();
        assert_eq!(s2.args, s.args);
        std::fs::write(&p, "client-transport-security:\n  crl-file: /c.pem\n").unwrap();
        assert!(run(&["-config-file", path], &[])
            .unwrap_err()
            .contains("revocation"));
        std::fs::write(&p, "client-transport-security:\n  bogus: 1\n").unwrap();
        assert!(run(&["-config-file", path], &[])
            .unwrap_err()
            .contains("unknown setting"));
    }
}
