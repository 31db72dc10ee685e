//! State the node's actor publishes for everyone else (gRPC handlers, the
//! transport): cheap to read, written only by its owner.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::config::ServerConfig;

/// What this node knows about a peer from its handshakes.
#[derive(Clone, Debug, Default)]
pub struct PeerInfo {
    /// Its name.
    pub name: String,
    /// Its client URLs.
    pub client_urls: Vec<String>,
}

/// Published state of one node.
pub struct Shared {
    /// The configuration it runs with.
    pub cfg: ServerConfig,
    /// The current leader (0: none known).
    pub leader: AtomicU64,
    /// The current Raft term.
    pub term: AtomicU64,
    /// The store's revision.
    pub revision: AtomicI64,
    /// Peer messages dropped because a queue was full.
    pub dropped: AtomicU64,
    /// Leader changes seen.
    pub leader_changes: AtomicU64,
    /// Bytes of the latest snapshot image.
    pub snapshot_bytes: AtomicU64,
    /// Set once the node is stopping.
    pub stopping: AtomicBool,
    /// Print log lines.
    pub verbose: bool,
    /// Peers as they introduced themselves.
    pub peers: Mutex<BTreeMap<u64, PeerInfo>>,
    /// Latencies of the WAL's fdatasync (the disk thread observes them).
    pub wal_fsync: Arc<crate::http::Histogram>,
}

impl Shared {
    /// Fresh published state.
    pub fn new(cfg: ServerConfig, verbose: bool) -> Shared {
        Shared {
            cfg,
            leader: AtomicU64::new(0),
            term: AtomicU64::new(0),
            revision: AtomicI64::new(1),
            dropped: AtomicU64::new(0),
            leader_changes: AtomicU64::new(0),
            snapshot_bytes: AtomicU64::new(0),
            stopping: AtomicBool::new(false),
            verbose,
            peers: Mutex::new(BTreeMap::new()),
            wal_fsync: Arc::default(),
        }
    }

    /// The leader, 0 if none.
    pub fn leader(&self) -> u64 {
        self.leader.load(Ordering::Relaxed)
    }

    /// The term.
    pub fn term(&self) -> u64 {
        self.term.load(Ordering::Relaxed)
    }

    /// The revision.
    pub fn revision(&self) -> i64 {
        self.revision.load(Ordering::Relaxed)
    }

    /// Prints a log line (when verbose).
    pub fn log(&self, args: std::fmt::Arguments<'_>) {
        if self.verbose {
            eprintln!("synod[{}]: {args}", self.cfg.name);
        }
    }

    /// Records what a peer said about itself.
    pub fn learn_peer(&self, id: u64, name: String, client_urls: Vec<String>) {
        let mut p = self.peers.lock().expect("peer table lock");
        p.insert(id, PeerInfo { name, client_urls });
    }
}
