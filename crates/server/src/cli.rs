//! `synod server` (one member, etcd's flag names) and `synod demo` (a local
//! cluster in one process on etcd's local-cluster ports).

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;

use crate::config::RawConfig;
use crate::server::{start, Running};
use crate::ServerConfig;

/// `synod server`: one member of a cluster. Flags follow etcd's names and meanings.
#[derive(Args, Debug, Clone)]
pub struct ServerArgs {
    /// Human-readable name of this member (must appear in --initial-cluster).
    #[arg(long, default_value = "default")]
    pub name: String,
    /// Directory for the write-ahead log and snapshots.
    #[arg(long, default_value = "default.synod")]
    pub data_dir: PathBuf,
    /// URL to listen on for client traffic (the first of a comma-separated list).
    #[arg(long, default_value = "http://127.0.0.1:2379")]
    pub listen_client_urls: String,
    /// Client URLs announced to the rest of the cluster.
    #[arg(long, default_value = "http://127.0.0.1:2379")]
    pub advertise_client_urls: String,
    /// URL to listen on for peer traffic.
    #[arg(long, default_value = "http://127.0.0.1:2380")]
    pub listen_peer_urls: String,
    /// This member's peer URL as the others reach it.
    #[arg(long, default_value = "http://127.0.0.1:2380")]
    pub initial_advertise_peer_urls: String,
    /// Every initial member: NAME=PEER_URL,NAME=PEER_URL,…
    #[arg(long, default_value = "default=http://127.0.0.1:2380")]
    pub initial_cluster: String,
    /// `new` to bootstrap, `existing` to refuse bootstrapping an empty data dir.
    #[arg(long, default_value = "new")]
    pub initial_cluster_state: String,
    /// Token that tells clusters apart (part of the member and cluster ids).
    #[arg(long, default_value = "synod-cluster")]
    pub initial_cluster_token: String,
    /// Largest client request accepted, in bytes.
    #[arg(long, default_value_t = synod_proto::limits::DEFAULT_MAX_REQUEST_BYTES)]
    pub max_request_bytes: usize,
    /// Most concurrent HTTP/2 streams (requests, watch and keep-alive
    /// streams) on one client connection (etcd's default: no real limit).
    #[arg(long, default_value_t = u32::MAX)]
    pub max_concurrent_streams: u32,
    /// Heartbeat interval (one tick) in milliseconds.
    #[arg(long, default_value_t = 100)]
    pub heartbeat_interval: u64,
    /// Election timeout in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub election_timeout: u64,
    /// Applied entries between snapshots (etcd 3.5's default).
    #[arg(long, default_value_t = 100_000)]
    pub snapshot_count: u64,
    /// How often watchers created with progress_notify hear the current
    /// revision when no events came (Go duration: 10m, 30s, 250ms).
    #[arg(long, default_value = "10m", value_parser = parse_duration_arg)]
    pub experimental_watch_progress_notify_interval: std::time::Duration,
    /// Longest time between durable commits of the store (Go duration);
    /// a crash replays at most this much of the WAL.
    #[arg(long, default_value = "1s", value_parser = parse_duration_arg)]
    pub backend_batch_interval: std::time::Duration,
    /// Most applied entries between durable commits of the store.
    #[arg(long, default_value_t = crate::config::DEFAULT_BACKEND_BATCH_LIMIT)]
    pub backend_batch_limit: u64,
    /// Split the keyspace into several Raft groups at these keys
    /// (comma-separated, increasing): a static split, the same on every
    /// member. Each group is replicated on every member.
    #[arg(long, default_value = "")]
    pub experimental_initial_split_keys: String,
    /// Split a range once it holds more than this many keys (0: never, the
    /// default). Experimental: a request over keys of several ranges (a
    /// prefix read, a txn, a watch) is refused until transactions across
    /// ranges land, and ranges never merge or move.
    #[arg(long, default_value_t = 0)]
    pub experimental_range_max_keys: u64,
    /// Tests only: switch on a deliberate bug so a checker can prove it
    /// catches it (stale-reads, reply-before-apply, forward-without-session).
    #[arg(long, default_value = "", hide = true)]
    pub experimental_planted_bug: String,
    /// Authentication tokens: `simple`, or
    /// `jwt,pub-key=FILE,priv-key=FILE,sign-method=RS256|ES256|HS256|…,ttl=5m`.
    #[arg(long, default_value = "simple")]
    pub auth_token: String,
    /// bcrypt cost of stored password hashes (4 to 31).
    #[arg(long, default_value_t = crate::tokens::DEFAULT_BCRYPT_COST)]
    pub bcrypt_cost: u32,
    /// Seconds a simple token lives unused.
    #[arg(long, default_value_t = crate::tokens::DEFAULT_TOKEN_TTL_SECS)]
    pub auth_token_ttl: u64,
    /// Client port: the server's certificate (PEM), used when
    /// --listen-client-urls is https. Re-read for new connections when it changes.
    #[arg(long, default_value = "")]
    pub cert_file: String,
    /// Client port: the key of --cert-file (PEM).
    #[arg(long, default_value = "")]
    pub key_file: String,
    /// Client port: the CA (PEM) that signs client certificates.
    #[arg(long, default_value = "")]
    pub trusted_ca_file: String,
    /// Client port: require a client certificate signed by --trusted-ca-file.
    #[arg(long)]
    pub client_cert_auth: bool,
    /// Client port: a self-signed certificate when no --cert-file is given
    /// (clients then skip verification, e.g. etcdctl --insecure-skip-tls-verify).
    #[arg(long)]
    pub auto_tls: bool,
    /// Peer port: this member's certificate (PEM), presented both when
    /// accepting (https --listen-peer-urls) and when dialing https peers.
    #[arg(long, default_value = "")]
    pub peer_cert_file: String,
    /// Peer port: the key of --peer-cert-file (PEM).
    #[arg(long, default_value = "")]
    pub peer_key_file: String,
    /// Peer port: the CA (PEM) that signs peer certificates.
    #[arg(long, default_value = "")]
    pub peer_trusted_ca_file: String,
    /// Peer port: require a peer certificate signed by --peer-trusted-ca-file.
    #[arg(long)]
    pub peer_client_cert_auth: bool,
    /// Peer port: a self-signed certificate when no --peer-cert-file is
    /// given (peers then do not verify each other's, as etcd's).
    #[arg(long)]
    pub peer_auto_tls: bool,
    /// TLS 1.2 cipher suites allowed on both ports, by Go's names
    /// (comma-separated; empty: rustls's defaults).
    #[arg(long, default_value = "")]
    pub cipher_suites: String,
    /// Lowest TLS version accepted: TLS1.2 (default) or TLS1.3.
    #[arg(long, default_value = "")]
    pub tls_min_version: String,
    /// Highest TLS version accepted: TLS1.2 or TLS1.3 (default).
    #[arg(long, default_value = "")]
    pub tls_max_version: String,
    /// Print nothing but errors.
    #[arg(long)]
    pub quiet: bool,
}

/// The process's arguments with `synod server`'s read as etcd reads its
/// own (Go's `-flag` form, `ETCD_*` variables, `--config-file`); other
/// subcommands' pass untouched. What etcd flags were accepted and ignored
/// is printed on stderr.
pub fn etcd_style_argv(argv: Vec<std::ffi::OsString>) -> Result<Vec<std::ffi::OsString>, String> {
    use clap::Args as _;
    // The subcommand: the first word that is no option (nor `--endpoints`'s value).
    let mut i = 1;
    while i < argv.len() {
        let a = argv[i].to_string_lossy();
        if a == "--endpoints" {
            i += 2;
        } else if a.starts_with('-') {
            i += 1;
        } else {
            break;
        }
    }
    if argv.get(i).is_none_or(|a| a != "server") {
        return Ok(argv);
    }
    let cmd = ServerArgs::augment_args(clap::Command::new("server"));
    let mut known = Vec::new();
    let mut boolean = Vec::new();
    for arg in cmd.get_arguments() {
        if let Some(long) = arg.get_long() {
            known.push(long.to_owned());
            if !arg.get_action().takes_values() {
                boolean.push(long.to_owned());
            }
        }
    }
    let env: Vec<(String, String)> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    let style = crate::etcd_args::etcd_style(&argv[i + 1..], &env, &known, &boolean)?;
    let quiet = style.args.iter().any(|a| a == "--quiet");
    if !quiet {
        for n in &style.notes {
            eprintln!("synod server: {n}");
        }
    }
    let mut out: Vec<std::ffi::OsString> = argv[..=i].to_vec();
    out.extend(style.args);
    Ok(out)
}

fn parse_duration_arg(s: &str) -> Result<std::time::Duration, String> {
    crate::config::parse_duration(s).map_err(|e| e.to_string())
}

impl ServerArgs {
    /// The flags as a raw configuration.
    pub fn raw(&self) -> RawConfig {
        RawConfig {
            name: self.name.clone(),
            data_dir: self.data_dir.clone(),
            listen_client_urls: self.listen_client_urls.clone(),
            advertise_client_urls: self.advertise_client_urls.clone(),
            listen_peer_urls: self.listen_peer_urls.clone(),
            initial_advertise_peer_urls: self.initial_advertise_peer_urls.clone(),
            initial_cluster: self.initial_cluster.clone(),
            initial_cluster_state: self.initial_cluster_state.clone(),
            initial_cluster_token: self.initial_cluster_token.clone(),
            max_request_bytes: self.max_request_bytes,
            max_concurrent_streams: self.max_concurrent_streams,
            heartbeat_interval_ms: self.heartbeat_interval,
            election_timeout_ms: self.election_timeout,
            snapshot_count: self.snapshot_count,
            watch_progress_notify_interval: self.experimental_watch_progress_notify_interval,
            backend_batch_interval: self.backend_batch_interval,
            backend_batch_limit: self.backend_batch_limit,
            initial_split_keys: self.experimental_initial_split_keys.clone(),
            range_max_keys: self.experimental_range_max_keys,
            planted_bug: self.experimental_planted_bug.clone(),
            auth_token: self.auth_token.clone(),
            bcrypt_cost: self.bcrypt_cost,
            auth_token_ttl: self.auth_token_ttl,
            client_tls: crate::tls::PortFlags {
                cert_file: self.cert_file.clone(),
                key_file: self.key_file.clone(),
                trusted_ca_file: self.trusted_ca_file.clone(),
                client_cert_auth: self.client_cert_auth,
                auto_tls: self.auto_tls,
            },
            peer_tls: crate::tls::PortFlags {
                cert_file: self.peer_cert_file.clone(),
                key_file: self.peer_key_file.clone(),
                trusted_ca_file: self.peer_trusted_ca_file.clone(),
                client_cert_auth: self.peer_client_cert_auth,
                auto_tls: self.peer_auto_tls,
            },
            cipher_suites: self.cipher_suites.clone(),
            tls_min_version: self.tls_min_version.clone(),
            tls_max_version: self.tls_max_version.clone(),
        }
    }
}

/// `synod demo`: a local cluster in one process.
#[derive(Args, Debug, Clone)]
pub struct DemoArgs {
    /// Number of members (1 to 6).
    #[arg(long, default_value_t = 3)]
    pub nodes: usize,
    /// Keep data here instead of a temporary directory.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Added to every port (clients 2379, 22379, …; peers 12380, 22380, …),
    /// to run beside an etcd or another demo.
    #[arg(long, default_value_t = 0)]
    pub port_offset: u16,
    /// Print member log lines.
    #[arg(long)]
    pub verbose: bool,
    /// Split a range once it holds more than this many keys (0: never);
    /// see `synod server --help`.
    #[arg(long, default_value_t = 0)]
    pub experimental_range_max_keys: u64,
}

/// The client and peer ports of member `k` (from 1) of the local cluster,
/// after etcd's convention: 2379/12380, 22379/22380, 32379/32380, …
pub fn demo_ports(k: usize) -> (u16, u16) {
    assert!((1..=6).contains(&k), "the local cluster has 1 to 6 members");
    let client = if k == 1 { 2379 } else { k * 10_000 + 2379 };
    (client as u16, (k * 10_000 + 2380) as u16)
}

/// Configurations of an `n`-member cluster on 127.0.0.1 with the given
/// (client, peer) ports, data under `dir/<name>`.
pub fn local_cluster(dir: &Path, ports: &[(u16, u16)], token: &str) -> Vec<ServerConfig> {
    let initial: Vec<String> = ports
        .iter()
        .enumerate()
        .map(|(i, (_, p))| format!("n{}=http://127.0.0.1:{p}", i + 1))
        .collect();
    let initial = initial.join(",");
    ports
        .iter()
        .enumerate()
        .map(|(i, (c, p))| {
            let name = format!("n{}", i + 1);
            RawConfig {
                data_dir: dir.join(&name),
                name,
                listen_client_urls: format!("http://127.0.0.1:{c}"),
                advertise_client_urls: format!("http://127.0.0.1:{c}"),
                listen_peer_urls: format!("http://127.0.0.1:{p}"),
                initial_advertise_peer_urls: format!("http://127.0.0.1:{p}"),
                initial_cluster: initial.clone(),
                initial_cluster_token: token.to_string(),
                ..RawConfig::default()
            }
            .validate()
            .expect("a local cluster's configuration is valid")
        })
        .collect()
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("synod")
        .build()
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// Runs `synod server`; returns the exit code.
pub fn run_server(args: ServerArgs) -> u8 {
    let cfg = match args.raw().validate() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("synod server: {e}");
            return 2;
        }
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("synod server: cannot start the runtime: {e}");
            return 1;
        }
    };
    rt.block_on(async {
        let running = match start(cfg, !args.quiet).await {
            Ok(r) => r,
            Err(e) => {
                eprintln!("synod server: {e}");
                return 1;
            }
        };
        tokio::select! {
            _ = shutdown_signal() => {}
            _ = wait_finished(&running) => {
                eprintln!("synod server: the node stopped");
            }
        }
        match running.stop().await {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("synod server: {e}");
                1
            }
        }
    })
}

async fn wait_finished(r: &Running) {
    while !r.is_finished() {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Runs `synod demo`; returns the exit code.
pub fn run_demo(args: DemoArgs) -> u8 {
    if !(1..=6).contains(&args.nodes) {
        eprintln!("synod demo: --nodes must be between 1 and 6");
        return 2;
    }
    let (_tmp, dir) = match &args.data_dir {
        Some(d) => (None, d.clone()),
        None => match tempfile::Builder::new().prefix("synod-demo-").tempdir() {
            Ok(t) => {
                let p = t.path().to_path_buf();
                (Some(t), p)
            }
            Err(e) => {
                eprintln!("synod demo: cannot create a temporary directory: {e}");
                return 1;
            }
        },
    };
    let mut ports = Vec::new();
    for (c, p) in (1..=args.nodes).map(demo_ports) {
        match (
            c.checked_add(args.port_offset),
            p.checked_add(args.port_offset),
        ) {
            (Some(c), Some(p)) => ports.push((c, p)),
            _ => {
                eprintln!(
                    "synod demo: --port-offset {} takes ports past 65535",
                    args.port_offset
                );
                return 2;
            }
        }
    }
    let mut cfgs = local_cluster(&dir, &ports, "synod-demo");
    for c in &mut cfgs {
        c.range_max_keys =
            (args.experimental_range_max_keys > 0).then_some(args.experimental_range_max_keys);
    }
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("synod demo: cannot start the runtime: {e}");
            return 1;
        }
    };
    rt.block_on(async {
        let mut running = Vec::new();
        for cfg in cfgs {
            match start(cfg, args.verbose).await {
                Ok(r) => running.push(r),
                Err(crate::StartError::Bind { addr, err, .. }) => {
                    eprintln!(
                        "synod demo: cannot listen on {addr}: {err} — is another etcd or synod running? \
                         Move every demo port with --port-offset N (or run members with `synod server`)"
                    );
                    for r in running {
                        let _ = r.stop().await;
                    }
                    return 1;
                }
                Err(e) => {
                    eprintln!("synod demo: {e}");
                    for r in running {
                        let _ = r.stop().await;
                    }
                    return 1;
                }
            }
        }
        let endpoints: Vec<String> = ports
            .iter()
            .map(|(c, _)| format!("127.0.0.1:{c}"))
            .collect();
        let endpoints = endpoints.join(",");
        println!(
            "synod demo: {} members running, data in {}",
            args.nodes,
            dir.display()
        );
        for (i, (c, p)) in ports.iter().enumerate() {
            println!(
                "  n{}: clients http://127.0.0.1:{c}  peers http://127.0.0.1:{p}",
                i + 1
            );
        }
        println!("try:");
        println!("  ETCDCTL_API=3 etcdctl --endpoints={endpoints} put greeting hello");
        println!("  ETCDCTL_API=3 etcdctl --endpoints={endpoints} get greeting");
        println!("  ETCDCTL_API=3 etcdctl --endpoints={endpoints} endpoint status -w table");
        println!("Ctrl-C stops the cluster.");
        shutdown_signal().await;
        println!("synod demo: stopping");
        let mut code = 0;
        for r in running {
            if let Err(e) = r.stop().await {
                eprintln!("synod demo: {e}");
                code = 1;
            }
        }
        code
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_ports_follow_etcds_local_cluster() {
        assert_eq!(demo_ports(1), (2379, 12380));
        assert_eq!(demo_ports(2), (22379, 22380));
        assert_eq!(demo_ports(3), (32379, 32380));
    }

    #[test]
    fn a_local_cluster_agrees_on_ids() {
        let d = Path::new("/tmp/x");
        let cs = local_cluster(d, &[(1, 2), (3, 4), (5, 6)], "t");
        assert_eq!(cs.len(), 3);
        assert!(cs.iter().all(|c| c.cluster_id == cs[0].cluster_id));
        assert!(cs.iter().all(|c| c.members == cs[0].members));
        assert_ne!(cs[0].id, cs[1].id);
    }
}
