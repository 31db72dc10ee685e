//! Starting and stopping one server: listeners, storage, the node's actor,
//! the peer transport and the gRPC services.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use synod_node::{GroupInit, Host, HostConfig, Node, NodeConfig, NodeError, ShardId};
use synod_raft::{Config as RaftConfig, Init};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_stream::StreamExt;

use crate::config::ServerConfig;
use crate::disk::DiskError;
use crate::grpc::{router, Api};
use crate::inbox::{Input, INBOX};
use crate::layout::IDENTITY;
use crate::runtime::{self, Core};
use crate::shared::Shared;
use crate::transport::{self, Transport};

/// The shard id of the first group (the whole keyspace's when it is not
/// split), the one the offline commands work on. A running member goes by
/// the node's groups ([`synod_node::Node::ranges`]), not by this constant.
pub const SHARD: u64 = 1;

/// Why a server did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A listener could not bind.
    #[error("cannot listen on {addr} ({flag}): {err}{hint}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The flag that sets it.
        flag: &'static str,
        /// Why.
        err: std::io::Error,
        /// Advice.
        hint: &'static str,
    },
    /// Storage could not be opened or recovered.
    #[error(transparent)]
    Disk(#[from] DiskError),
    /// The node refused its recovered state.
    #[error("cannot start the node: {0}{hint}", hint = restore_hint(.0))]
    Node(#[from] NodeError),
    /// The configuration does not allow starting.
    #[error("{0}")]
    Config(String),
    /// A certificate, key or CA file does not load.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
}

/// What to do when a group's recovered state contradicts itself (its WAL
/// lost records it had made durable: a disk that lied about a sync, or a
/// file cut short or damaged).
fn restore_hint(e: &NodeError) -> &'static str {
    match e {
        NodeError::Config {
            err: synod_raft::ConfigError::BadRestore(_),
            ..
        } => {
            "; the data dir's log was damaged or cut short, and a member that \
             forgot what it acknowledged must not vote: take it out with `member \
             remove`, empty its data dir, `member add` it and start it with \
             --initial-cluster-state existing"
        }
        _ => "",
    }
}

async fn bind(addr: SocketAddr, flag: &'static str) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr).await.map_err(|err| {
        let hint = if err.kind() == std::io::ErrorKind::AddrInUse {
            " — is another etcd or synod running? Choose another port with that flag"
        } else {
            ""
        };
        StartError::Bind {
            addr,
            flag,
            err,
            hint,
        }
    })
}

/// A running server.
pub struct Running {
    shared: Arc<Shared>,
    client_addr: SocketAddr,
    inbox: mpsc::Sender<Input>,
    grpc_stop: Option<oneshot::Sender<()>>,
    grpc: JoinHandle<()>,
    peer_listener: JoinHandle<()>,
    actor: JoinHandle<Result<(), DiskError>>,
}

impl Running {
    /// The address clients reach.
    pub fn client_addr(&self) -> SocketAddr {
        self.client_addr
    }

    /// Published state.
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Whether the node's actor has ended (a storage failure stops it).
    pub fn is_finished(&self) -> bool {
        self.actor.is_finished()
    }

    /// Stops serving, lets the sync in flight finish, and returns.
    pub async fn stop(mut self) -> Result<(), DiskError> {
        self.shared.stopping.store(true, Ordering::Relaxed);
        if let Some(tx) = self.grpc_stop.take() {
            let _ = tx.send(());
        }
        self.peer_listener.abort();
        let _ = self.inbox.send(Input::Stop).await;
        let r = match (&mut self.actor).await {
            Ok(r) => r,
            Err(_) => Ok(()),
        };
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), &mut self.grpc).await;
        self.grpc.abort();
        r
    }
}

fn seed(id: u64) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ id.rotate_left(17)
}

/// How long a member added at runtime keeps asking its peers who it is.
const JOIN_PATIENCE: std::time::Duration = std::time::Duration::from_secs(30);

fn read_identity(dir: &std::path::Path) -> Result<Option<(u64, u64)>, StartError> {
    let path = dir.join(IDENTITY);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StartError::Config(format!("{}: {e}", path.display()))),
    };
    let bad = || StartError::Config(format!("{}: not a synod member identity", path.display()));
    let mut lines = text.lines();
    if lines.next() != Some("synod-member 1") {
        return Err(bad());
    }
    let mut field = |name: &str| -> Result<u64, StartError> {
        let l = lines.next().ok_or_else(bad)?;
        let v = l.strip_prefix(name).ok_or_else(bad)?;
        u64::from_str_radix(v, 16).map_err(|_| bad())
    };
    let id = field("id=")?;
    let cluster = field("cluster=")?;
    if id == 0 || cluster == 0 {
        return Err(bad());
    }
    Ok(Some((id, cluster)))
}

fn write_identity(dir: &std::path::Path, id: u64, cluster: u64) -> Result<(), StartError> {
    use std::io::Write;
    let path = dir.join(IDENTITY);
    let tmp = dir.join(format!("{IDENTITY}.tmp"));
    let err = |e: std::io::Error| StartError::Config(format!("{}: {e}", path.display()));
    let mut f = std::fs::File::create(&tmp).map_err(err)?;
    write!(f, "synod-member 1\nid={id:x}\ncluster={cluster:x}\n").map_err(err)?;
    f.sync_all().map_err(err)?;
    std::fs::rename(&tmp, &path).map_err(err)?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(err)?;
    Ok(())
}

/// A member added at runtime (`--initial-cluster-state existing`, empty
/// data dir) asks the other members of `--initial-cluster` who it is,
/// by its peer URL, as etcd's joining member fetches the cluster from its peers.
async fn join(
    cfg: &ServerConfig,
    tls: Option<&crate::tls::PeerTls>,
) -> Result<(u64, u64, Vec<synod_node::Member>), StartError> {
    let me = cfg
        .members
        .iter()
        .find(|m| m.id == cfg.id)
        .expect("validation puts this member in the list");
    let t0 = std::time::Instant::now();
    let mut last = String::from("no other member in --initial-cluster");
    while t0.elapsed() < JOIN_PATIENCE {
        for m in cfg.members.iter().filter(|m| m.id != cfg.id) {
            let Some(target) = transport::Target::of(&m.peer_url) else {
                continue;
            };
            match transport::ask_to_join(tls, &target, &cfg.name, &me.peer_url).await {
                Ok(x) => return Ok(x),
                Err(e) => last = format!("{} ({}): {e}", m.name, m.peer_url),
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    Err(StartError::Config(format!(
        "{} holds no data and --initial-cluster-state is existing, but no member of \
         --initial-cluster knows this member (add it first with `etcdctl member add`): {last}",
        cfg.data_dir.display()
    )))
}

/// Starts a server: binds, recovers, and serves until [`Running::stop`].
pub async fn start(mut cfg: ServerConfig, verbose: bool) -> Result<Running, StartError> {
    // Certificates first: a file that does not load stops the start.
    let client_tls = match &cfg.client_tls {
        Some(s) => Some(Arc::new(crate::tls::ServerTls::new(s)?)),
        None => None,
    };
    let peer_tls = match &cfg.peer_tls {
        Some(s) => Some(Arc::new(crate::tls::PeerTls::new(s)?)),
        None => None,
    };
    let client = bind(cfg.client_addr, "--listen-client-urls").await?;
    let peer = bind(cfg.peer_addr, "--listen-peer-urls").await?;
    let client_addr = client.local_addr().map_err(|err| StartError::Bind {
        addr: cfg.client_addr,
        flag: "--listen-client-urls",
        err,
        hint: "",
    })?;
    let dir = cfg.data_dir.clone();
    let segment = cfg.wal_segment_bytes;
    let max_sessions = NodeConfig::default().max_sessions;
    let store_cfg = synod_store::StoreConfig::default();
    let ranges = cfg.ranges();
    let groups = ranges.clone();
    let mut opened = tokio::task::spawn_blocking(move || {
        crate::disk::open(&dir, &groups, segment, &store_cfg, max_sessions)
    })
    .await
    .map_err(|e| StartError::Config(format!("storage open panicked: {e}")))??;
    let identity = read_identity(&cfg.data_dir)?;
    if let Some((id, cluster)) = identity {
        cfg.id = id;
        cfg.cluster_id = cluster;
    }
    // A member whose log holds nothing of any group is new.
    let fresh = opened.groups.iter().all(|g| g.init.is_none());
    let joining = fresh && !cfg.initial_state_new;
    if joining && ranges.len() > 1 {
        return Err(StartError::Config(
            "a member cannot join a cluster whose keyspace is split into several groups (yet)"
                .into(),
        ));
    }
    if joining && identity.is_none() {
        let (id, cluster, members) = join(&cfg, peer_tls.as_deref()).await?;
        cfg.id = id;
        cfg.cluster_id = cluster;
        // The members as the cluster knows them (ids are not derived from names here).
        cfg.members = members
            .iter()
            .filter_map(|m| {
                let url = m.peer_urls.first()?;
                let addr = crate::config::parse_url("peer URL", url).ok()?;
                Some(crate::config::Member {
                    id: m.id,
                    name: m.name.clone(),
                    peer_url: url.clone(),
                    peer_addr: addr,
                })
            })
            .collect();
    }
    if identity.is_none() {
        write_identity(&cfg.data_dir, cfg.id, cfg.cluster_id)?;
    }
    let bootstrap = |shard: ShardId, range: synod_node::KeyRange| GroupInit {
        shard,
        range: Some(range),
        raft: Init::Bootstrap {
            // A member added at runtime starts empty and learns everything
            // from the leader.
            voters: if cfg.initial_state_new {
                cfg.members.iter().map(|m| m.id).collect()
            } else {
                Vec::new()
            },
            learners: Vec::new(),
        },
        snapshot_data: None,
    };
    if !fresh {
        if let Some((shard, _)) = ranges
            .iter()
            .zip(&opened.groups)
            .find(|(_, g)| g.init.is_none())
            .map(|(r, _)| r)
        {
            return Err(StartError::Config(format!(
                "the data dir holds no log of group {shard}: was --experimental-initial-split-keys changed?"
            )));
        }
    }
    let durable_store = opened.groups[0].state.0.durable_applied().is_some();
    // Without splits, the log holds the groups the configuration names and
    // no other: flags that do not name them are a mistake to refuse, not
    // to guess around.
    if cfg.range_max_keys.is_none() {
        if let Some(other) = opened.groups.get(ranges.len()) {
            return Err(StartError::Config(format!(
                "the log holds group {:x}, which this member's configuration does not name \
                 (was --experimental-initial-split-keys changed, or \
                 --experimental-range-max-keys dropped?)",
                other.shard
            )));
        }
    }
    // The configured groups, then those a split made (their ranges are in
    // their own state).
    let groups: Vec<_> = std::mem::take(&mut opened.groups)
        .into_iter()
        .map(|g| {
            let configured = ranges.iter().find(|(s, _)| *s == g.shard).cloned();
            let init = match (g.init, configured) {
                (Some(init), _) => init,
                (None, Some((shard, range))) => bootstrap(shard, range),
                (None, None) => unreachable!("a group not configured is found in the log"),
            };
            (init, Some(g.state))
        })
        .collect();
    let ticks_per_second = (1000 / cfg.tick.as_millis().max(1)).max(1) as u64;
    let node_cfg = NodeConfig {
        id: cfg.id,
        raft: RaftConfig {
            election_tick: cfg.election_ticks,
            heartbeat_tick: cfg.heartbeat_ticks,
            pre_vote: true,
            check_quorum: true,
            // A durable store holds the state: snapshot images are built on demand.
            lazy_snapshot_data: durable_store,
            ..RaftConfig::default()
        },
        seed: seed(cfg.id),
        snapshot_every: cfg.snapshot_every,
        ticks_per_second,
        // The leader's fdatasync overlaps replication (Raft thesis §10.2.1).
        parallel_leader_append: true,
        max_sessions,
        apply_budget: runtime::APPLY_OPS_PER_TURN,
        split_max_keys: cfg.range_max_keys,
        ..NodeConfig::default()
    };
    // The group starts from the store: Raft replays only the entries after
    // the store's applied index.
    let mut node = Node::with_state_machines(node_cfg, groups)?;
    // A group a split creates gets its own store file.
    node.set_store_factory(crate::disk::store_factory(
        cfg.data_dir.clone(),
        synod_store::StoreConfig::default(),
        max_sessions,
    ));
    node.set_bootstrap_members(
        cfg.members
            .iter()
            .map(|m| synod_node::Member {
                id: m.id,
                name: String::new(),
                peer_urls: vec![m.peer_url.clone()],
                client_urls: Vec::new(),
                is_learner: false,
            })
            .collect(),
    );
    let max_request_bytes = cfg.max_request_bytes;
    let shared = Arc::new(Shared::new(cfg, verbose, node.ranges()));
    // A recovered snapshot knows the members better than the flags do.
    if let Some(reg) = node.members(node.home_shard()).filter(|r| !r.is_empty()) {
        shared.peers.set_members(reg.members().cloned().collect());
    }
    shared
        .metrics
        .snapshot_bytes
        .store(opened.disk.snapshot_bytes(), Ordering::Relaxed);
    let transport = Transport::start(shared.clone(), peer_tls.clone());
    let (inbox_tx, inbox_rx) = mpsc::channel(INBOX);
    let host_cfg = HostConfig {
        name: shared.cfg.name.clone(),
        client_urls: shared.cfg.advertise_client_urls.clone(),
        store_commit_ticks: ticks_in(shared.cfg.backend_batch_interval, shared.cfg.tick),
        store_commit_entries: shared.cfg.backend_batch_limit,
        bug: shared.cfg.planted_bug,
    };
    if let Some(bug) = shared.cfg.planted_bug {
        shared.log(format_args!(
            "WARNING: planted bug {bug:?} switched on (--experimental-planted-bug): \
             this member is deliberately broken, for tests only"
        ));
    }
    let core = Core::new(Host::new(node, host_cfg), shared.clone(), transport);
    let actor = tokio::spawn(runtime::run(
        core,
        inbox_rx,
        opened.disk,
        shared.metrics.wal_fsync.clone(),
    ));
    let peer_listener = tokio::spawn(transport::listen(
        peer,
        shared.clone(),
        inbox_tx.clone(),
        peer_tls.filter(|_| shared.cfg.peer_listen_tls),
    ));
    let api = Api::new(inbox_tx.clone(), shared.clone());
    let routes = crate::http::add_http(router(api.clone(), max_request_bytes), shared.clone(), api);
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let sh = shared.clone();
    let grpc = tokio::spawn(async move {
        let server = tonic::transport::Server::builder()
            .accept_http1(true)
            .max_concurrent_streams(sh.cfg.max_concurrent_streams)
            .add_routes(routes);
        let stop = async {
            let _ = stop_rx.await;
        };
        // The gRPC API, the JSON gateway, /metrics and /health share the
        // port, and so its TLS.
        let r = match client_tls {
            None => {
                server
                    .serve_with_incoming_shutdown(
                        tonic::transport::server::TcpIncoming::from(client)
                            .with_nodelay(Some(true))
                            .map(|conn| conn.map(crate::authority::Mend::new)),
                        stop,
                    )
                    .await
            }
            Some(tls) => {
                let log = sh.clone();
                let incoming = crate::tls::incoming(client, tls, move |a| log.log(a));
                server
                    .serve_with_incoming_shutdown(
                        incoming.map(|conn| conn.map(crate::authority::Mend::new)),
                        stop,
                    )
                    .await
            }
        };
        if let Err(e) = r {
            sh.log(format_args!("gRPC server ended: {e}"));
        }
    });
    let scheme = |tls: bool| if tls { "https" } else { "http" };
    shared.log(format_args!(
        "member {:x} serving clients on {}://{} and peers on {}://{} (cluster {:x})",
        shared.cfg.id,
        scheme(shared.cfg.client_tls.is_some()),
        client_addr,
        scheme(shared.cfg.peer_listen_tls),
        shared.cfg.peer_addr,
        shared.cfg.cluster_id
    ));
    Ok(Running {
        shared,
        client_addr,
        inbox: inbox_tx,
        grpc_stop: Some(stop_tx),
        grpc,
        peer_listener,
        actor,
    })
}

/// Whole ticks in `d` (at least one).
fn ticks_in(d: std::time::Duration, tick: std::time::Duration) -> u64 {
    (d.as_nanos() / tick.as_nanos().max(1)).max(1) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_identity_round_trips_and_a_damaged_one_is_refused() {
        let d = tempfile::tempdir().unwrap();
        assert!(read_identity(d.path()).unwrap().is_none());
        write_identity(d.path(), 0xabc, 0x123).unwrap();
        assert_eq!(read_identity(d.path()).unwrap(), Some((0xabc, 0x123)));
        std::fs::write(d.path().join(IDENTITY), "synod-member 1\nid=zz\n").unwrap();
        assert!(read_identity(d.path()).is_err());
    }
}
