//! A server's configuration: parsed from etcd-style flags, then validated
//! into [`ServerConfig`], which the runtime trusts.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use crate::ids;
use crate::tls::{PortFlags, TlsProtocol, TlsSettings, CLIENT_FLAGS, PEER_FLAGS};

/// A configuration that cannot be used, with the flag at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A URL that is not `http://HOST:PORT`.
    #[error("{flag}: bad URL {url:?}: {why}")]
    BadUrl {
        /// The flag.
        flag: &'static str,
        /// The URL.
        url: String,
        /// Why.
        why: String,
    },
    /// Anything else.
    #[error("{0}")]
    Invalid(String),
}

/// One member of the cluster as every member knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// Member id (= Raft node id).
    pub id: u64,
    /// Its name.
    pub name: String,
    /// Its advertised peer URL.
    pub peer_url: String,
    /// The address its peer URL resolves to.
    pub peer_addr: SocketAddr,
}

/// Everything a server runs with.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// This member's name.
    pub name: String,
    /// This member's id.
    pub id: u64,
    /// Where its WAL and snapshots live.
    pub data_dir: PathBuf,
    /// Address the gRPC (client) listener binds.
    pub client_addr: SocketAddr,
    /// Client URLs announced to others (member list).
    pub advertise_client_urls: Vec<String>,
    /// Address the peer listener binds.
    pub peer_addr: SocketAddr,
    /// Every initial member, this one included.
    pub members: Vec<Member>,
    /// The cluster id.
    pub cluster_id: u64,
    /// `new`: bootstrap a fresh log when the data dir is empty; `existing`: never bootstrap.
    pub initial_state_new: bool,
    /// Largest client request accepted (etcd's `--max-request-bytes`).
    pub max_request_bytes: usize,
    /// Most concurrent HTTP/2 streams of one client connection (etcd's
    /// `--max-concurrent-streams`, default `u32::MAX` as etcd's).
    pub max_concurrent_streams: u32,
    /// Length of one tick.
    pub tick: Duration,
    /// Election timeout in ticks.
    pub election_ticks: u32,
    /// Heartbeat interval in ticks.
    pub heartbeat_ticks: u32,
    /// Take a snapshot after this many applied entries.
    pub snapshot_every: u64,
    /// Size of a WAL segment file.
    pub wal_segment_bytes: u64,
    /// How often a watcher created with `progress_notify` that received no
    /// events hears the current revision (etcd's
    /// `--experimental-watch-progress-notify-interval`).
    pub watch_progress_notify_interval: Duration,
    /// Longest time between durable commits of the store (etcd's
    /// `--backend-batch-interval`); bounds the WAL a restart replays.
    pub backend_batch_interval: Duration,
    /// Most entries applied between durable commits of the store (etcd's
    /// `--backend-batch-limit`).
    pub backend_batch_limit: u64,
    /// Where the keyspace is split into groups, in order (empty: one group
    /// over every key). Every member of a cluster must be given the same.
    pub split_keys: Vec<Vec<u8>>,
    /// Ranges split once they hold more than this many keys (`None`: never;
    /// `--experimental-range-max-keys`).
    pub range_max_keys: Option<u64>,
    /// A deliberate bug switched on (`--experimental-planted-bug`), for the
    /// fault harness to prove it catches it; `None` in any real use.
    pub planted_bug: Option<synod_node::HostBug>,
    /// Tokens and password hashing (`--auth-token`, `--bcrypt-cost`,
    /// `--auth-token-ttl`).
    pub auth: crate::tokens::AuthConfig,
    /// TLS on the client port: `Some` when `--listen-client-urls` is https.
    pub client_tls: Option<TlsSettings>,
    /// The peer certificate (`--peer-cert-file`, `--peer-auto-tls`, …):
    /// for the peer listener when it is https and for dialing https peers.
    pub peer_tls: Option<TlsSettings>,
    /// Whether `--listen-peer-urls` is https.
    pub peer_listen_tls: bool,
}

/// The planted bugs `--experimental-planted-bug` takes, by name.
pub const PLANTED_BUGS: [(&str, synod_node::HostBug); 4] = [
    ("stale-reads", synod_node::HostBug::StaleReads),
    ("ack-before-sync", synod_node::HostBug::AckBeforeSync),
    ("reply-before-apply", synod_node::HostBug::ReplyBeforeApply),
    (
        "forward-without-session",
        synod_node::HostBug::ForwardWithoutSession,
    ),
];

/// Most split keys `--experimental-initial-split-keys` takes.
pub const MAX_SPLIT_KEYS: usize = 63;

impl ServerConfig {
    /// This member's advertised peer URLs (from the member list, by id,
    /// else by name).
    pub fn my_peer_urls(&self) -> Vec<String> {
        let by = |f: &dyn Fn(&Member) -> bool| -> Vec<String> {
            self.members
                .iter()
                .filter(|m| f(m))
                .map(|m| m.peer_url.clone())
                .collect()
        };
        let urls = by(&|m| m.id == self.id);
        if urls.is_empty() {
            by(&|m| m.name == self.name)
        } else {
            urls
        }
    }

    /// The node's groups and the key range each serves: group 1 from the
    /// first key, then one group per split key (ids 2, 3, …).
    pub fn ranges(&self) -> Vec<(synod_node::ShardId, synod_node::KeyRange)> {
        let mut bounds = vec![Vec::new()];
        bounds.extend(self.split_keys.iter().cloned());
        bounds.push(Vec::new());
        bounds
            .windows(2)
            .enumerate()
            .map(|(i, w)| {
                (
                    i as u64 + 1,
                    synod_node::KeyRange::new(w[0].clone(), w[1].clone()),
                )
            })
            .collect()
    }
}

/// Parses `--experimental-initial-split-keys`: comma-separated keys, each
/// non-empty and each above the one before.
pub fn parse_split_keys(s: &str) -> Result<Vec<Vec<u8>>, ConfigError> {
    let keys: Vec<Vec<u8>> = s
        .split(',')
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(|k| k.as_bytes().to_vec())
        .collect();
    if keys.len() > MAX_SPLIT_KEYS {
        return Err(ConfigError::Invalid(format!(
            "--experimental-initial-split-keys takes at most {MAX_SPLIT_KEYS} keys, not {}",
            keys.len()
        )));
    }
    if keys.windows(2).any(|w| w[0] >= w[1]) {
        return Err(ConfigError::Invalid(
            "--experimental-initial-split-keys must be in increasing order, without repeats".into(),
        ));
    }
    Ok(keys)
}

/// Whether a URL asks for TLS (`https://`).
pub fn is_https(url: &str) -> bool {
    url.starts_with("https://")
}

/// The host of a URL (`http://HOST:PORT/…`, `HOST:PORT`), brackets off.
pub fn url_host(url: &str) -> Option<String> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let hostport = rest.split('/').next()?;
    let host = match hostport.strip_prefix('[') {
        Some(v6) => v6.split(']').next()?,
        None => hostport.rsplit_once(':').map_or(hostport, |(h, _)| h),
    };
    (!host.is_empty()).then(|| host.to_string())
}

/// Parses `http://HOST:PORT`, `https://HOST:PORT` (or `HOST:PORT`) into a
/// socket address.
pub fn parse_url(flag: &'static str, url: &str) -> Result<SocketAddr, ConfigError> {
    let bad = |why: &str| ConfigError::BadUrl {
        flag,
        url: url.to_string(),
        why: why.to_string(),
    };
    let rest = if let Some(r) = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
    {
        r
    } else if url.starts_with("unix") {
        return Err(bad("unix sockets are not supported"));
    } else if url.contains("://") {
        return Err(bad("unknown scheme"));
    } else {
        url
    };
    let hostport = rest.trim_end_matches('/');
    let mut addrs = hostport
        .to_socket_addrs()
        .map_err(|e| bad(&e.to_string()))?;
    addrs.next().ok_or_else(|| bad("resolves to no address"))
}

/// Parses `name=URL,name=URL,…`.
pub fn parse_initial_cluster(s: &str) -> Result<Vec<(String, String)>, ConfigError> {
    let mut out = Vec::new();
    for part in s.split(',').filter(|p| !p.is_empty()) {
        let (name, url) = part.split_once('=').ok_or_else(|| {
            ConfigError::Invalid(format!("--initial-cluster: {part:?} is not NAME=URL"))
        })?;
        if out.iter().any(|(n, _): &(String, String)| n == name) {
            return Err(ConfigError::Invalid(format!(
                "--initial-cluster: member {name:?} given twice"
            )));
        }
        out.push((name.to_string(), url.to_string()));
    }
    if out.is_empty() {
        return Err(ConfigError::Invalid("--initial-cluster is empty".into()));
    }
    if out.len() > 64 {
        return Err(ConfigError::Invalid(
            "--initial-cluster: at most 64 members".into(),
        ));
    }
    Ok(out)
}

/// Parses a Go-style duration as etcd's flags take them: one or more
/// `NUMBER UNIT` parts, units `h`, `m`, `s`, `ms`, `us`, `ns` (`10m`,
/// `1m30s`, `250ms`).
pub fn parse_duration(s: &str) -> Result<Duration, ConfigError> {
    let bad = || ConfigError::Invalid(format!("{s:?} is not a duration (try 10m, 30s, 250ms)"));
    let mut rest = s.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let part = match &rest[..unit] {
            "h" => n.checked_mul(3600).map(Duration::from_secs),
            "m" => n.checked_mul(60).map(Duration::from_secs),
            "s" => Some(Duration::from_secs(n)),
            "ms" => Some(Duration::from_millis(n)),
            "us" | "µs" => Some(Duration::from_micros(n)),
            "ns" => Some(Duration::from_nanos(n)),
            _ => None,
        };
        total = total.checked_add(part.ok_or_else(bad)?).ok_or_else(bad)?;
        rest = &rest[unit..];
    }
    Ok(total)
}

/// Default longest time between the store's durable commits. etcd commits
/// every 100 ms; a durable commit of the store stalls the apply loop for
/// its fsync (10-20 ms here), so synod commits less often and replays up to
/// a second of WAL after a crash instead (`BENCHMARKS.md` has the figures).
pub const DEFAULT_BACKEND_BATCH_INTERVAL: Duration = Duration::from_secs(1);
/// Default most entries applied between the store's durable commits.
pub const DEFAULT_BACKEND_BATCH_LIMIT: u64 = 50_000;

/// The settings of one server before validation (what the flags say).
#[derive(Clone, Debug)]
pub struct RawConfig {
    /// `--name`
    pub name: String,
    /// `--data-dir`
    pub data_dir: PathBuf,
    /// `--listen-client-urls` (the first is used)
    pub listen_client_urls: String,
    /// `--advertise-client-urls`
    pub advertise_client_urls: String,
    /// `--listen-peer-urls` (the first is used)
    pub listen_peer_urls: String,
    /// `--initial-advertise-peer-urls`
    pub initial_advertise_peer_urls: String,
    /// `--initial-cluster`
    pub initial_cluster: String,
    /// `--initial-cluster-state`
    pub initial_cluster_state: String,
    /// `--initial-cluster-token`
    pub initial_cluster_token: String,
    /// `--max-request-bytes`
    pub max_request_bytes: usize,
    /// `--max-concurrent-streams`
    pub max_concurrent_streams: u32,
    /// `--heartbeat-interval` in ms (one tick)
    pub heartbeat_interval_ms: u64,
    /// `--election-timeout` in ms
    pub election_timeout_ms: u64,
    /// `--snapshot-count`
    pub snapshot_count: u64,
    /// `--experimental-watch-progress-notify-interval`
    pub watch_progress_notify_interval: Duration,
    /// `--backend-batch-interval`
    pub backend_batch_interval: Duration,
    /// `--backend-batch-limit`
    pub backend_batch_limit: u64,
    /// `--experimental-initial-split-keys`
    pub initial_split_keys: String,
    /// `--experimental-range-max-keys` (0: ranges never split)
    pub range_max_keys: u64,
    /// `--experimental-planted-bug` (empty: none)
    pub planted_bug: String,
    /// `--auth-token` (`simple`, or `jwt,pub-key=…,priv-key=…,sign-method=…,ttl=…`)
    pub auth_token: String,
    /// `--bcrypt-cost`
    pub bcrypt_cost: u32,
    /// `--auth-token-ttl`, in seconds
    pub auth_token_ttl: u64,
    /// `--cert-file`, `--key-file`, `--trusted-ca-file`, `--client-cert-auth`, `--auto-tls`
    pub client_tls: PortFlags,
    /// `--peer-cert-file`, `--peer-key-file`, `--peer-trusted-ca-file`,
    /// `--peer-client-cert-auth`, `--peer-auto-tls`
    pub peer_tls: PortFlags,
    /// `--cipher-suites` (Go's names, comma-separated)
    pub cipher_suites: String,
    /// `--tls-min-version`
    pub tls_min_version: String,
    /// `--tls-max-version`
    pub tls_max_version: String,
}

impl RawConfig {
    /// Checks everything and derives ids.
    pub fn validate(&self) -> Result<ServerConfig, ConfigError> {
        let first = |s: &str| s.split(',').next().unwrap_or("").trim().to_string();
        let client_addr = parse_url("--listen-client-urls", &first(&self.listen_client_urls))?;
        let peer_addr = parse_url("--listen-peer-urls", &first(&self.listen_peer_urls))?;
        let advertise_client_urls: Vec<String> = self
            .advertise_client_urls
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        for u in &advertise_client_urls {
            parse_url("--advertise-client-urls", u)?;
        }
        let my_peer_url = first(&self.initial_advertise_peer_urls);
        parse_url("--initial-advertise-peer-urls", &my_peer_url)?;
        let token = &self.initial_cluster_token;
        let mut members = Vec::new();
        for (name, url) in parse_initial_cluster(&self.initial_cluster)? {
            let peer_addr = parse_url("--initial-cluster", &url)?;
            members.push(Member {
                id: ids::member_id(&name, &url, token),
                name,
                peer_url: url,
                peer_addr,
            });
        }
        let me = members
            .iter()
            .find(|m| m.name == self.name)
            .ok_or_else(|| {
                ConfigError::Invalid(format!(
                    "--initial-cluster has no member named {:?} (--name)",
                    self.name
                ))
            })?;
        if me.peer_url != my_peer_url {
            return Err(ConfigError::Invalid(format!(
                "--initial-cluster gives {} the peer URL {}, but --initial-advertise-peer-urls says {}",
                self.name, me.peer_url, my_peer_url
            )));
        }
        let ids: Vec<u64> = members.iter().map(|m| m.id).collect();
        let mut uniq = ids.clone();
        uniq.sort_unstable();
        uniq.dedup();
        if uniq.len() != ids.len() {
            return Err(ConfigError::Invalid(
                "--initial-cluster: two members hash to the same id".into(),
            ));
        }
        let initial_state_new = match self.initial_cluster_state.as_str() {
            "new" => true,
            "existing" => false,
            other => {
                return Err(ConfigError::Invalid(format!(
                    "--initial-cluster-state must be new or existing, not {other:?}"
                )))
            }
        };
        if self.heartbeat_interval_ms == 0
            || self.election_timeout_ms < 5 * self.heartbeat_interval_ms
        {
            return Err(ConfigError::Invalid(
                "--election-timeout must be at least 5 times --heartbeat-interval (and both above 0)"
                    .into(),
            ));
        }
        if self.watch_progress_notify_interval.is_zero() {
            return Err(ConfigError::Invalid(
                "--experimental-watch-progress-notify-interval must be above 0".into(),
            ));
        }
        if self.backend_batch_interval.is_zero() || self.backend_batch_limit == 0 {
            return Err(ConfigError::Invalid(
                "--backend-batch-interval and --backend-batch-limit must be above 0".into(),
            ));
        }
        if self.max_concurrent_streams == 0 {
            return Err(ConfigError::Invalid(
                "--max-concurrent-streams must be above 0".into(),
            ));
        }
        if self.max_request_bytes == 0 || self.max_request_bytes > 64 << 20 {
            return Err(ConfigError::Invalid(
                "--max-request-bytes must be in 1..=64 MiB".into(),
            ));
        }
        let (client_tls, peer_tls, peer_listen_tls) = self.tls(&members)?;
        let election_ticks = (self.election_timeout_ms / self.heartbeat_interval_ms) as u32;
        let split_keys = parse_split_keys(&self.initial_split_keys)?;
        let planted_bug = match self.planted_bug.as_str() {
            "" => None,
            name => match PLANTED_BUGS.iter().find(|(n, _)| *n == name) {
                Some((_, b)) => Some(*b),
                None => {
                    let names: Vec<&str> = PLANTED_BUGS.iter().map(|(n, _)| *n).collect();
                    return Err(ConfigError::Invalid(format!(
                        "--experimental-planted-bug: no bug named {name:?} (known: {})",
                        names.join(", ")
                    )));
                }
            },
        };
        let auth = crate::tokens::AuthConfig::parse(
            &self.auth_token,
            self.bcrypt_cost,
            self.auth_token_ttl,
        )
        .map_err(ConfigError::Invalid)?;
        Ok(ServerConfig {
            auth,
            client_tls,
            peer_tls,
            peer_listen_tls,
            split_keys,
            range_max_keys: (self.range_max_keys > 0).then_some(self.range_max_keys),
            planted_bug,
            name: self.name.clone(),
            id: me.id,
            data_dir: self.data_dir.clone(),
            client_addr,
            advertise_client_urls,
            peer_addr,
            cluster_id: ids::cluster_id(token, &ids),
            members,
            initial_state_new,
            max_request_bytes: self.max_request_bytes,
            max_concurrent_streams: self.max_concurrent_streams,
            tick: Duration::from_millis(self.heartbeat_interval_ms),
            election_ticks,
            heartbeat_ticks: 1,
            snapshot_every: self.snapshot_count.max(1),
            wal_segment_bytes: 64 << 20,
            watch_progress_notify_interval: self.watch_progress_notify_interval,
            backend_batch_interval: self.backend_batch_interval,
            backend_batch_limit: self.backend_batch_limit,
        })
    }
}

type TlsParts = (Option<TlsSettings>, Option<TlsSettings>, bool);

impl RawConfig {
    /// The TLS settings of both ports, as etcd reads them: a port is TLS
    /// when its URL is https (then it needs a certificate); the
    /// certificate flags of an http port are ignored.
    fn tls(&self, members: &[Member]) -> Result<TlsParts, ConfigError> {
        let tls_err = |e: crate::tls::TlsError| ConfigError::Invalid(e.to_string());
        let protocol = TlsProtocol::parse(
            &self.cipher_suites,
            &self.tls_min_version,
            &self.tls_max_version,
        )
        .map_err(tls_err)?;
        let hosts = |lists: &[&str]| -> Vec<String> {
            let mut out: Vec<String> = Vec::new();
            for u in lists.iter().flat_map(|l| l.split(',')) {
                if let Some(h) = url_host(u.trim()) {
                    if !out.contains(&h) {
                        out.push(h);
                    }
                }
            }
            out
        };
        let first = |s: &str| s.split(',').next().unwrap_or("").trim().to_string();
        let client = TlsSettings::from_flags(
            CLIENT_FLAGS,
            &self.client_tls,
            hosts(&[&self.listen_client_urls, &self.advertise_client_urls]),
            &protocol,
        )
        .map_err(tls_err)?;
        let client = if is_https(&first(&self.listen_client_urls)) {
            Some(client.ok_or_else(|| {
                ConfigError::Invalid(
                    "--listen-client-urls is https: give --cert-file and --key-file, or --auto-tls"
                        .into(),
                )
            })?)
        } else {
            None
        };
        let peer = TlsSettings::from_flags(
            PEER_FLAGS,
            &self.peer_tls,
            hosts(&[&self.listen_peer_urls, &self.initial_advertise_peer_urls]),
            &protocol,
        )
        .map_err(tls_err)?;
        let peer_listen_tls = is_https(&first(&self.listen_peer_urls));
        if peer.is_none() {
            if peer_listen_tls {
                return Err(ConfigError::Invalid(
                    "--listen-peer-urls is https: give --peer-cert-file and --peer-key-file, or --peer-auto-tls"
                        .into(),
                ));
            }
            if let Some(m) = members.iter().find(|m| is_https(&m.peer_url)) {
                return Err(ConfigError::Invalid(format!(
                    "--initial-cluster: {} is reached over https ({}): give --peer-cert-file and \
                     --peer-key-file, or --peer-auto-tls",
                    m.name, m.peer_url
                )));
            }
        }
        Ok((client, peer, peer_listen_tls))
    }
}

impl Default for RawConfig {
    fn default() -> Self {
        RawConfig {
            name: "default".into(),
            data_dir: PathBuf::from("default.synod"),
            listen_client_urls: "http://127.0.0.1:2379".into(),
            advertise_client_urls: "http://127.0.0.1:2379".into(),
            listen_peer_urls: "http://127.0.0.1:2380".into(),
            initial_advertise_peer_urls: "http://127.0.0.1:2380".into(),
            initial_cluster: "default=http://127.0.0.1:2380".into(),
            initial_cluster_state: "new".into(),
            initial_cluster_token: "synod-cluster".into(),
            max_request_bytes: synod_proto::limits::DEFAULT_MAX_REQUEST_BYTES,
            max_concurrent_streams: u32::MAX,
            heartbeat_interval_ms: 100,
            election_timeout_ms: 1000,
            snapshot_count: 100_000,
            // etcd's default.
            watch_progress_notify_interval: Duration::from_secs(600),
            backend_batch_interval: DEFAULT_BACKEND_BATCH_INTERVAL,
            backend_batch_limit: DEFAULT_BACKEND_BATCH_LIMIT,
            initial_split_keys: String::new(),
            range_max_keys: 0,
            planted_bug: String::new(),
            auth_token: "simple".into(),
            bcrypt_cost: crate::tokens::DEFAULT_BCRYPT_COST,
            auth_token_ttl: crate::tokens::DEFAULT_TOKEN_TTL_SECS,
            client_tls: PortFlags::default(),
            peer_tls: PortFlags::default(),
            cipher_suites: String::new(),
            tls_min_version: String::new(),
            tls_max_version: String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_and_bad_ones_name_the_flag() {
        assert_eq!(
            parse_url("--x", "http://127.0.0.1:2379").unwrap(),
            "127.0.0.1:2379".parse().unwrap()
        );
        assert_eq!(
            parse_url("--x", "https://127.0.0.1:2379").unwrap(),
            "127.0.0.1:2379".parse().unwrap()
        );
        let e = parse_url("--listen-client-urls", "ftp://127.0.0.1:1").unwrap_err();
        assert!(e.to_string().contains("--listen-client-urls"), "{e}");
        assert_eq!(url_host("https://[::1]:2380").as_deref(), Some("::1"));
        assert_eq!(url_host("http://node1:2380/").as_deref(), Some("node1"));
        assert!(parse_url("--x", "http://nohost").is_err());
    }

    #[test]
    fn durations_parse_as_go_writes_them() {
        assert_eq!(parse_duration("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
        for bad in ["", "10", "m", "10x", "1.5s", "-1s"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn https_urls_need_certificates_and_http_ones_ignore_them() {
        let https = RawConfig {
            listen_client_urls: "https://127.0.0.1:2379".into(),
            ..RawConfig::default()
        };
        let e = https.validate().unwrap_err().to_string();
        assert!(e.contains("--cert-file"), "{e}");
        let auto = RawConfig {
            client_tls: PortFlags {
                auto_tls: true,
                ..PortFlags::default()
            },
            ..https.clone()
        };
        assert!(auto.validate().unwrap().client_tls.unwrap().auto_tls);
        let http_with_cert = RawConfig {
            client_tls: PortFlags {
                cert_file: "c.pem".into(),
                key_file: "k.pem".into(),
                ..PortFlags::default()
            },
            ..RawConfig::default()
        };
        assert!(http_with_cert.validate().unwrap().client_tls.is_none());
        let peers = RawConfig {
            initial_cluster: "default=https://127.0.0.1:2380".into(),
            initial_advertise_peer_urls: "https://127.0.0.1:2380".into(),
            ..RawConfig::default()
        };
        let e = peers.validate().unwrap_err().to_string();
        assert!(e.contains("--peer-cert-file"), "{e}");
        let listen = RawConfig {
            listen_peer_urls: "https://127.0.0.1:2380".into(),
            ..RawConfig::default()
        };
        assert!(listen.validate().is_err());
        let bad_version = RawConfig {
            tls_min_version: "TLS9".into(),
            ..RawConfig::default()
        };
        let e = bad_version.validate().unwrap_err().to_string();
        assert!(e.contains("--tls-min-version"), "{e}");
    }

    #[test]
    fn a_name_missing_from_the_cluster_is_refused() {
        let raw = RawConfig {
            name: "zz".into(),
            ..RawConfig::default()
        };
        assert!(raw.validate().unwrap_err().to_string().contains("zz"));
        assert!(RawConfig {
            name: "default".into(),
            ..RawConfig::default()
        }
        .validate()
        .is_ok());
    }
}
