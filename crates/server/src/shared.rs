//! State the node's actor publishes for everyone else (gRPC handlers, the
//! transport): cheap to read, written only by its owner.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use synod_node::Member;

use crate::config::ServerConfig;
use crate::metrics::{Histogram, RTT_BUCKETS};

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
    pub wal_fsync: Arc<crate::metrics::Histogram>,
    /// Latencies of the store's durable commits (the actor observes them).
    pub backend_commit: crate::metrics::Histogram,
    /// The members as the replicated registry knows them (the initial
    /// configuration's until the node reports its registry).
    pub members: Mutex<Vec<Member>>,
    /// Members seen removed (their connections are refused).
    pub removed: Mutex<BTreeSet<u64>>,
    /// Set once this member learns it was removed from the cluster.
    pub self_removed: AtomicBool,
    /// The origin of the transport's probe clock.
    pub epoch: Instant,
    /// Round-trip times to each peer.
    pub rtt: Mutex<BTreeMap<u64, Histogram>>,
}

impl Shared {
    /// Fresh published state.
    pub fn new(cfg: ServerConfig, verbose: bool) -> Shared {
        let members = cfg
            .members
            .iter()
            .map(|m| Member {
                id: m.id,
                name: String::new(),
                peer_urls: vec![m.peer_url.clone()],
                client_urls: Vec::new(),
                is_learner: false,
            })
            .collect();
        Shared {
            members: Mutex::new(members),
            removed: Mutex::new(BTreeSet::new()),
            self_removed: AtomicBool::new(false),
            epoch: Instant::now(),
            rtt: Mutex::new(BTreeMap::new()),
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
            backend_commit: Default::default(),
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

impl Shared {
    /// The members now.
    pub fn member_list(&self) -> Vec<Member> {
        self.members.lock().expect("member table lock").clone()
    }

    /// Whether `id` is a member now.
    pub fn is_member(&self, id: u64) -> bool {
        self.members
            .lock()
            .expect("member table lock")
            .iter()
            .any(|m| m.id == id)
    }

    /// Whether `id` was removed from the cluster.
    pub fn was_removed(&self, id: u64) -> bool {
        self.removed.lock().expect("removed lock").contains(&id)
    }

    /// Takes the registry's new member list; returns the ids that left the list.
    /// Until the first leader's seed is applied, the initial members' peer
    /// URLs are known from the flags only: those fill the gaps.
    pub fn set_members(&self, mut members: Vec<Member>) -> Vec<u64> {
        for m in members.iter_mut().filter(|m| m.peer_urls.is_empty()) {
            if let Some(c) = self.cfg.members.iter().find(|c| c.id == m.id) {
                m.peer_urls = vec![c.peer_url.clone()];
            }
        }
        let mut cur = self.members.lock().expect("member table lock");
        let gone: Vec<u64> = cur
            .iter()
            .map(|m| m.id)
            .filter(|id| !members.iter().any(|m| m.id == *id))
            .collect();
        *cur = members;
        gone
    }

    /// Records that `id` was removed from the cluster (its handshakes are refused).
    pub fn mark_removed(&self, id: u64) {
        let mut removed = self.removed.lock().expect("removed lock");
        removed.insert(id);
        // Bounded: the lowest ids (as good as any) are forgotten first.
        while removed.len() > 1024 {
            removed.pop_first();
        }
    }

    /// Nanoseconds on the probe clock.
    pub fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    /// Records a round trip to `peer` (at most 1024 peers are tracked).
    pub fn observe_rtt(&self, peer: u64, rtt: std::time::Duration) {
        let mut h = self.rtt.lock().expect("rtt lock");
        if h.len() < 1024 || h.contains_key(&peer) {
            h.entry(peer)
                .or_insert_with(|| Histogram::new(&RTT_BUCKETS))
                .observe(rtt);
        }
    }

    /// etcd's `etcd_network_peer_round_trip_time_seconds` in Prometheus text.
    pub fn rtt_metrics(&self, out: &mut String) {
        let name = "etcd_network_peer_round_trip_time_seconds";
        Histogram::render_header(out, name, "Round-Trip-Time histogram between peers");
        let h = self.rtt.lock().expect("rtt lock");
        for (peer, h) in h.iter() {
            h.render_samples(out, name, &format!("To=\"{peer:x}\""));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_round_trip_histogram_is_cumulative_with_etcds_name_and_label() {
        let cfg = crate::config::RawConfig::default().validate().unwrap();
        let s = Shared::new(cfg, false);
        s.observe_rtt(0xab, std::time::Duration::from_micros(150));
        s.observe_rtt(0xab, std::time::Duration::from_millis(500));
        let mut out = String::new();
        s.rtt_metrics(&mut out);
        let name = "etcd_network_peer_round_trip_time_seconds";
        assert!(out.contains(&format!("# TYPE {name} histogram")), "{out}");
        assert!(
            out.contains(&format!("{name}_bucket{{To=\"ab\",le=\"0.0001\"}} 0")),
            "{out}"
        );
        assert!(
            out.contains(&format!("{name}_bucket{{To=\"ab\",le=\"0.0002\"}} 1")),
            "{out}"
        );
        assert!(
            out.contains(&format!("{name}_bucket{{To=\"ab\",le=\"0.8192\"}} 2")),
            "{out}"
        );
        assert!(
            out.contains(&format!("{name}_bucket{{To=\"ab\",le=\"+Inf\"}} 2")),
            "{out}"
        );
        assert!(
            out.contains(&format!("{name}_count{{To=\"ab\"}} 2")),
            "{out}"
        );
    }
}
