//! Starting and stopping one server: listeners, storage, the node's actor,
//! the peer transport and the gRPC services.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use synod_node::{GroupInit, Node, NodeConfig, NodeError};
use synod_raft::{Config as RaftConfig, Init};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::config::ServerConfig;
use crate::disk::{Disk, DiskError};
use crate::grpc::{router, Api};
use crate::runtime::{self, Core, Input, INBOX};
use crate::shared::Shared;
use crate::transport::{self, Transport};

/// The one shard every node hosts today.
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
    #[error("cannot start the node: {0}")]
    Node(#[from] NodeError),
    /// The configuration does not allow starting.
    #[error("{0}")]
    Config(String),
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

/// Starts a server: binds, recovers, and serves until [`Running::stop`].
pub async fn start(cfg: ServerConfig, verbose: bool) -> Result<Running, StartError> {
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
    let opened = tokio::task::spawn_blocking(move || {
        Disk::open(&dir, SHARD, segment, &store_cfg, max_sessions)
    })
    .await
    .map_err(|e| StartError::Config(format!("storage open panicked: {e}")))??;
    let init = match opened.init {
        Some(init) => init,
        None if cfg.initial_state_new => GroupInit {
            shard: SHARD,
            raft: Init::Bootstrap {
                voters: cfg.members.iter().map(|m| m.id).collect(),
                learners: Vec::new(),
            },
            snapshot_data: None,
        },
        None => {
            return Err(StartError::Config(format!(
                "{} holds no data and --initial-cluster-state is existing: joining a running cluster is not supported yet",
                cfg.data_dir.display()
            )))
        }
    };
    let ticks_per_second = (1000 / cfg.tick.as_millis().max(1)).max(1) as u64;
    let node_cfg = NodeConfig {
        id: cfg.id,
        raft: RaftConfig {
            election_tick: cfg.election_ticks,
            heartbeat_tick: cfg.heartbeat_ticks,
            pre_vote: true,
            check_quorum: true,
            ..RaftConfig::default()
        },
        seed: seed(cfg.id),
        snapshot_every: cfg.snapshot_every,
        ticks_per_second,
        // The leader's fdatasync overlaps replication (Raft thesis §10.2.1).
        parallel_leader_append: true,
        max_sessions,
        ..NodeConfig::default()
    };
    // The group starts from the store: Raft replays only the entries after
    // the store's applied index.
    let node = Node::with_state_machines(node_cfg, vec![(init, Some(opened.state))])?;
    let max_request_bytes = cfg.max_request_bytes;
    let shared = Arc::new(Shared::new(cfg, verbose));
    shared
        .snapshot_bytes
        .store(opened.disk.snapshot_bytes(), Ordering::Relaxed);
    let transport = Transport::start(shared.clone());
    let (inbox_tx, inbox_rx) = mpsc::channel(INBOX);
    let core = Core::new(node, shared.clone(), transport);
    let actor = tokio::spawn(runtime::run(core, inbox_rx, opened.disk));
    let peer_listener = tokio::spawn(transport::listen(peer, shared.clone(), inbox_tx.clone()));
    let api = Api::new(inbox_tx.clone(), shared.clone());
    let routes = crate::http::add_http(router(api.clone(), max_request_bytes), shared.clone(), api);
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let sh = shared.clone();
    let grpc = tokio::spawn(async move {
        let r = tonic::transport::Server::builder()
            .accept_http1(true)
            .add_routes(routes)
            .serve_with_incoming_shutdown(
                tonic::transport::server::TcpIncoming::from(client).with_nodelay(Some(true)),
                async {
                    let _ = stop_rx.await;
                },
            )
            .await;
        if let Err(e) = r {
            sh.log(format_args!("gRPC server ended: {e}"));
        }
    });
    shared.log(format_args!(
        "member {:x} serving clients on {} and peers on {} (cluster {:x})",
        shared.cfg.id, client_addr, shared.cfg.peer_addr, shared.cfg.cluster_id
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
