//! State the node's actor publishes for everyone else (gRPC handlers, the
//! transport, `/metrics`): cheap to read, written only by its owner. It
//! comes in three parts:
//!
//! * [`Groups`]: per Raft group (shard), its key range, leader, term and
//!   revision. The set of groups is fixed at boot (the node's ranges), so a
//!   lookup by key is a search over a small immutable list of atomics, with
//!   no lock; requests read it on every call.
//! * [`Metrics`](crate::metrics::Metrics): histograms and counters.
//! * [`Peers`]: what this member knows of the others — their handshakes,
//!   the member registry, removed members and round-trip times.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Instant;

use synod_kv::{Command, RequestOp, TxnRequest};
use synod_node::{ClientError, ClientOp, KeyRange, Member, ShardId};

use crate::config::ServerConfig;
use crate::metrics::{Histogram, Metrics, RTT_BUCKETS};

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
    /// Print log lines.
    pub verbose: bool,
    /// Set once the node is stopping.
    pub stopping: AtomicBool,
    /// Each hosted group's published state.
    pub groups: Groups,
    /// Histograms and counters for `/metrics`.
    pub metrics: Metrics,
    /// The other members.
    pub peers: Peers,
    /// Whether authentication is on in the home group's applied state.
    pub auth_enabled: AtomicBool,
    /// The home group's applied auth revision.
    pub auth_revision: std::sync::atomic::AtomicU64,
}

impl Shared {
    /// Fresh published state for a node hosting the groups of `ranges`
    /// (sorted by start, as [`synod_node::Node::ranges`] gives them; the
    /// first is the home group).
    pub fn new(cfg: ServerConfig, verbose: bool, ranges: &[(KeyRange, ShardId)]) -> Shared {
        let peers = Peers::new(&cfg);
        Shared {
            cfg,
            verbose,
            stopping: AtomicBool::new(false),
            groups: Groups::new(ranges),
            metrics: Metrics::default(),
            peers,
            auth_enabled: AtomicBool::new(false),
            auth_revision: std::sync::atomic::AtomicU64::new(1),
        }
    }

    /// Prints a log line (when verbose).
    pub fn log(&self, args: std::fmt::Arguments<'_>) {
        if self.verbose {
            eprintln!("synod[{}]: {args}", self.cfg.name);
        }
    }
}

/// The published state of one Raft group.
#[derive(Debug)]
pub struct GroupState {
    /// The group's shard id.
    pub shard: ShardId,
    /// The keys it serves.
    pub range: KeyRange,
    leader: AtomicU64,
    term: AtomicU64,
    revision: AtomicI64,
    leader_changes: AtomicU64,
    commit: AtomicU64,
    applied: AtomicU64,
}

impl GroupState {
    fn new(shard: ShardId, range: KeyRange) -> GroupState {
        GroupState {
            shard,
            range,
            leader: AtomicU64::new(0),
            term: AtomicU64::new(0),
            revision: AtomicI64::new(1),
            leader_changes: AtomicU64::new(0),
            commit: AtomicU64::new(0),
            applied: AtomicU64::new(0),
        }
    }

    /// The same published state over `range` (after a split).
    fn with_range(&self, range: KeyRange) -> GroupState {
        GroupState {
            shard: self.shard,
            range,
            leader: AtomicU64::new(self.leader()),
            term: AtomicU64::new(self.term.load(Ordering::Relaxed)),
            revision: AtomicI64::new(self.revision.load(Ordering::Relaxed)),
            leader_changes: AtomicU64::new(self.leader_changes.load(Ordering::Relaxed)),
            commit: AtomicU64::new(self.commit.load(Ordering::Relaxed)),
            applied: AtomicU64::new(self.applied.load(Ordering::Relaxed)),
        }
    }

    /// The group's leader as this member knows it, 0 if none.
    pub fn leader(&self) -> u64 {
        self.leader.load(Ordering::Relaxed)
    }

    /// The group's Raft term.
    pub fn term(&self) -> u64 {
        self.term.load(Ordering::Relaxed)
    }

    /// The revision of the group's store.
    pub fn revision(&self) -> i64 {
        self.revision.load(Ordering::Relaxed)
    }

    /// Leader changes seen in this group.
    pub fn leader_changes(&self) -> u64 {
        self.leader_changes.load(Ordering::Relaxed)
    }

    /// Publishes the group's Raft and store state (after each `Ready`).
    pub fn publish(&self, leader: u64, term: u64, revision: i64) {
        self.leader.store(leader, Ordering::Relaxed);
        self.term.store(term, Ordering::Relaxed);
        self.revision.store(revision, Ordering::Relaxed);
    }

    /// Records the group's Raft commit and applied indexes.
    pub fn publish_progress(&self, commit: u64, applied: u64) {
        self.commit.store(commit, Ordering::Relaxed);
        self.applied.store(applied, Ordering::Relaxed);
    }

    /// The group's Raft commit index, as last published.
    pub fn commit(&self) -> u64 {
        self.commit.load(Ordering::Relaxed)
    }

    /// The group's applied index, as last published.
    pub fn applied(&self) -> u64 {
        self.applied.load(Ordering::Relaxed)
    }

    /// Records a leader change the node reported.
    pub fn leader_changed(&self, leader: u64, term: u64) {
        self.leader.store(leader, Ordering::Relaxed);
        self.term.store(term, Ordering::Relaxed);
        self.leader_changes.fetch_add(1, Ordering::Relaxed);
    }
}

/// Every hosted group's published state, sorted by range start; the first
/// is the home group (membership, leases, compaction, status). Replaced
/// whole when the node's routing table changes (a range split); a handler
/// holds the `Arc` of the group it looked up, so a split under it changes
/// nothing it reads.
#[derive(Debug)]
pub struct Groups {
    list: std::sync::RwLock<Arc<Vec<Arc<GroupState>>>>,
}

impl Groups {
    /// The groups of `ranges` (sorted by start; at least one).
    pub fn new(ranges: &[(KeyRange, ShardId)]) -> Groups {
        assert!(!ranges.is_empty(), "a node hosts at least one group");
        let list = ranges
            .iter()
            .map(|(r, s)| Arc::new(GroupState::new(*s, r.clone())))
            .collect();
        Groups {
            list: std::sync::RwLock::new(Arc::new(list)),
        }
    }

    fn list(&self) -> Arc<Vec<Arc<GroupState>>> {
        self.list.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Follows the node's routing table (sorted by start, at least one
    /// range): a group that stays keeps its published state, with its new
    /// range; a new group starts unpublished. Whether anything changed.
    pub fn follow(&self, ranges: &[(KeyRange, ShardId)]) -> bool {
        assert!(!ranges.is_empty(), "a node hosts at least one group");
        let old = self.list();
        let same = old.len() == ranges.len()
            && old
                .iter()
                .zip(ranges)
                .all(|(g, (r, s))| g.shard == *s && g.range == *r);
        if same {
            return false;
        }
        let list = ranges
            .iter()
            .map(|(r, s)| {
                let g = match old.iter().find(|g| g.shard == *s) {
                    Some(g) => g.with_range(r.clone()),
                    None => GroupState::new(*s, r.clone()),
                };
                Arc::new(g)
            })
            .collect();
        *self.list.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(list);
        true
    }

    /// The home group: what belongs to the cluster as a whole.
    pub fn home(&self) -> Arc<GroupState> {
        self.list()[0].clone()
    }

    /// A group by shard id.
    pub fn get(&self, shard: ShardId) -> Option<Arc<GroupState>> {
        self.list().iter().find(|g| g.shard == shard).cloned()
    }

    /// Every group, in key order.
    pub fn iter(&self) -> impl Iterator<Item = Arc<GroupState>> {
        let list = self.list();
        (0..list.len()).map(move |i| list[i].clone())
    }

    /// Groups hosted.
    pub fn len(&self) -> usize {
        self.list().len()
    }

    /// The group whose range holds `key`; the home group when none hosted
    /// here does (the node refuses such a request; its answer's header
    /// comes from the home group).
    pub fn for_key(&self, key: &[u8]) -> Arc<GroupState> {
        let list = self.list();
        list.iter()
            .find(|g| g.range.contains(key))
            .unwrap_or(&list[0])
            .clone()
    }

    /// The group whose range holds the whole etcd span `[key, range_end)`
    /// (etcd's rules for `range_end`), or why none does: a span over
    /// several groups is refused whole, as the node refuses such requests.
    pub fn for_span(&self, key: &[u8], range_end: &[u8]) -> Result<Arc<GroupState>, ClientError> {
        let list = self.list();
        let g = list
            .iter()
            .find(|g| g.range.contains(key))
            .ok_or_else(|| ClientError::WrongShard { key: key.to_vec() })?;
        if g.range.holds_span(key, range_end) {
            Ok(g.clone())
        } else {
            Err(ClientError::CrossShard)
        }
    }

    /// The group a client operation goes to: that of the first key it
    /// touches, or the home group for what belongs to the whole cluster
    /// (leases, membership, compaction). The node routes the request itself
    /// and refuses one over several groups, so for every request it serves
    /// this is the group that served it; this answer only picks whose
    /// leader and term a handler reports.
    pub fn for_op(&self, op: &ClientOp) -> Arc<GroupState> {
        match first_key(op) {
            Some(k) => self.for_key(k),
            None => self.home(),
        }
    }

    /// Whether every group knows a leader.
    pub fn all_have_leader(&self) -> bool {
        self.list().iter().all(|g| g.leader() != 0)
    }

    /// Leader changes seen, over every group.
    pub fn leader_changes(&self) -> u64 {
        self.list().iter().map(|g| g.leader_changes()).sum()
    }
}

fn first_key(op: &ClientOp) -> Option<&[u8]> {
    match op {
        ClientOp::Write(cmd) => match cmd.inner() {
            Command::Put(p) => Some(&p.key),
            Command::DeleteRange(d) => Some(&d.key),
            Command::Txn(t) => txn_first_key(t),
            _ => None,
        },
        ClientOp::Range { req, .. } | ClientOp::ReadAt { req, .. } => Some(&req.key),
        ClientOp::CompactRange { key, .. } => Some(key),
        ClientOp::LeaseKeepAlive { .. } | ClientOp::Member(_) => None,
    }
}

/// The first key a transaction touches (compares, then either branch).
pub fn txn_first_key(t: &TxnRequest) -> Option<&[u8]> {
    if let Some(c) = t.compare.first() {
        return Some(&c.key);
    }
    t.success.iter().chain(&t.failure).find_map(|op| match op {
        RequestOp::Range(r) => Some(r.key.as_slice()),
        RequestOp::Put(p) => Some(p.key.as_slice()),
        RequestOp::DeleteRange(d) => Some(d.key.as_slice()),
        RequestOp::Txn(inner) => txn_first_key(inner),
    })
}

/// What this member knows of the others.
/// Most members kept from introductions (beyond it, more are refused
/// until the registry catches up).
pub const MAX_INTRODUCED: usize = 64;

pub struct Peers {
    /// The initial members' ids and peer URLs (from the flags).
    initial: Vec<(u64, String)>,
    /// Peers as they introduced themselves.
    pub info: Mutex<BTreeMap<u64, PeerInfo>>,
    /// The members as the replicated registry knows them (the initial
    /// configuration's until the node reports its registry).
    pub members: Mutex<Vec<Member>>,
    /// Members seen removed (their connections are refused).
    pub removed: Mutex<BTreeSet<u64>>,
    /// Members of the cluster that dialled us before our registry listed
    /// them, as they introduced themselves (at most [`MAX_INTRODUCED`]);
    /// each goes once the registry lists it or removes it.
    pub introduced: Mutex<BTreeMap<u64, Member>>,
    /// Set when `introduced` gained a member the transport must dial.
    pub introduced_changed: AtomicBool,
    /// Set once this member learns it was removed from the cluster.
    pub self_removed: AtomicBool,
    /// The origin of the transport's probe clock.
    pub epoch: Instant,
    /// Round-trip times to each peer.
    pub rtt: Mutex<BTreeMap<u64, Histogram>>,
}

impl Peers {
    fn new(cfg: &ServerConfig) -> Peers {
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
        Peers {
            initial: cfg
                .members
                .iter()
                .map(|m| (m.id, m.peer_url.clone()))
                .collect(),
            info: Mutex::new(BTreeMap::new()),
            members: Mutex::new(members),
            removed: Mutex::new(BTreeSet::new()),
            introduced: Mutex::new(BTreeMap::new()),
            introduced_changed: AtomicBool::new(false),
            self_removed: AtomicBool::new(false),
            epoch: Instant::now(),
            rtt: Mutex::new(BTreeMap::new()),
        }
    }

    /// Records what a peer said about itself.
    pub fn learn_peer(&self, id: u64, name: String, client_urls: Vec<String>) {
        let mut p = self.info.lock().expect("peer table lock");
        p.insert(id, PeerInfo { name, client_urls });
    }

    /// The members now.
    pub fn member_list(&self) -> Vec<Member> {
        self.members.lock().expect("member table lock").clone()
    }

    /// Whom the transport dials: the registry's members and those that
    /// introduced themselves before the registry listed them.
    pub fn dial_list(&self) -> Vec<Member> {
        let mut list = self.member_list();
        let introduced = self.introduced.lock().expect("introduced lock");
        for m in introduced.values() {
            if !list.iter().any(|x| x.id == m.id) {
                list.push(m.clone());
            }
        }
        list
    }

    /// Whether the registry lists `id`.
    pub fn is_registry_member(&self, id: u64) -> bool {
        self.members
            .lock()
            .expect("member table lock")
            .iter()
            .any(|m| m.id == id)
    }

    /// Whether `id` is a member now (by the registry, or introduced).
    pub fn is_member(&self, id: u64) -> bool {
        self.members
            .lock()
            .expect("member table lock")
            .iter()
            .any(|m| m.id == id)
            || self
                .introduced
                .lock()
                .expect("introduced lock")
                .contains_key(&id)
    }

    /// Forgets a member known only by introduction (its address answers as
    /// another member: it was replaced).
    pub fn forget_introduced(&self, id: u64) {
        let listed = self
            .members
            .lock()
            .expect("member table lock")
            .iter()
            .any(|m| m.id == id);
        if !listed {
            self.introduced.lock().expect("introduced lock").remove(&id);
        }
    }

    /// A member of the cluster our registry does not list yet dialled us:
    /// keep its peer URLs so that we can answer it.
    pub fn introduce(&self, id: u64, name: String, peer_urls: Vec<String>) {
        if self.was_removed(id) {
            return;
        }
        let mut intro = self.introduced.lock().expect("introduced lock");
        if intro.len() >= MAX_INTRODUCED && !intro.contains_key(&id) {
            return;
        }
        let m = Member {
            id,
            name,
            peer_urls,
            client_urls: Vec::new(),
            is_learner: false,
        };
        if intro.insert(id, m.clone()).as_ref() != Some(&m) {
            self.introduced_changed.store(true, Ordering::Relaxed);
        }
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
            if let Some((_, url)) = self.initial.iter().find(|(id, _)| *id == m.id) {
                m.peer_urls = vec![url.clone()];
            }
        }
        let mut cur = self.members.lock().expect("member table lock");
        let gone: Vec<u64> = cur
            .iter()
            .map(|m| m.id)
            .filter(|id| !members.iter().any(|m| m.id == *id))
            .collect();
        let mut intro = self.introduced.lock().expect("introduced lock");
        // A member that leaves the list without being removed is one a
        // lagging registry does not know yet (the list came from the flags
        // or the join answer, and the log being replayed is older): keep
        // dialling it until the registry lists it or removes it.
        let removed = self.removed.lock().expect("removed lock");
        for m in cur.iter().filter(|m| gone.contains(&m.id)) {
            if !removed.contains(&m.id) && intro.len() < MAX_INTRODUCED {
                intro.insert(m.id, m.clone());
            }
        }
        // The registry now speaks for the members it lists.
        intro.retain(|id, _| !members.iter().any(|m| m.id == *id));
        *cur = members;
        gone
    }

    /// Records that `id` was removed from the cluster (its handshakes are refused).
    pub fn mark_removed(&self, id: u64) {
        self.introduced.lock().expect("introduced lock").remove(&id);
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
    use synod_kv::{Compare, CompareResult, CompareTarget, PutRequest, RangeRequest};

    fn three() -> Groups {
        Groups::new(&[
            (KeyRange::new("", "m"), 1),
            (KeyRange::new("m", "t"), 2),
            (KeyRange::new("t", ""), 3),
        ])
    }

    fn put(k: &str) -> ClientOp {
        ClientOp::Write(Command::Put(PutRequest::new(k, "v")))
    }

    #[test]
    fn each_group_publishes_its_own_leader_term_and_revision() {
        let g = three();
        assert_eq!(g.home().shard, 1);
        assert!(!g.all_have_leader());
        g.get(1).unwrap().publish(0xa, 3, 10);
        g.get(2).unwrap().publish(0xb, 7, 42);
        assert_eq!(
            (g.get(1).unwrap().leader(), g.get(1).unwrap().term()),
            (0xa, 3)
        );
        assert_eq!(g.get(2).unwrap().revision(), 42);
        assert_eq!(g.get(3).unwrap().revision(), 1, "a fresh store is at 1");
        assert!(!g.all_have_leader(), "group 3 knows no leader yet");
        g.get(3).unwrap().leader_changed(0xc, 2);
        g.get(3).unwrap().leader_changed(0xd, 3);
        g.get(1).unwrap().leader_changed(0xa, 4);
        assert!(g.all_have_leader());
        assert_eq!(g.get(3).unwrap().leader_changes(), 2);
        assert_eq!(g.leader_changes(), 3, "summed over groups");
        assert_eq!(g.get(3).unwrap().term(), 3);
        assert!(g.get(4).is_none());
    }

    #[test]
    fn a_key_is_looked_up_in_the_group_that_owns_it() {
        let g = three();
        assert_eq!(g.for_key(b"a").shard, 1);
        assert_eq!(g.for_key(b"m").shard, 2);
        assert_eq!(g.for_key(b"zz").shard, 3);
        assert_eq!(g.for_op(&put("p")).shard, 2);
        let range = ClientOp::Range {
            req: RangeRequest {
                key: b"u".to_vec(),
                ..Default::default()
            },
            serializable: true,
            auth: None,
        };
        assert_eq!(g.for_op(&range).shard, 3);
        // A transaction goes by its first key; leases by the home group.
        let txn = ClientOp::Write(Command::Txn(TxnRequest {
            compare: Vec::new(),
            success: vec![RequestOp::Put(PutRequest::new("n", "v"))],
            failure: Vec::new(),
        }));
        assert_eq!(g.for_op(&txn).shard, 2);
        let txn = ClientOp::Write(Command::Txn(TxnRequest {
            compare: vec![Compare {
                key: b"x".to_vec(),
                range_end: Vec::new(),
                target: CompareTarget::Version(0),
                result: CompareResult::Equal,
            }],
            success: Vec::new(),
            failure: Vec::new(),
        }));
        assert_eq!(g.for_op(&txn).shard, 3);
        assert_eq!(g.for_op(&ClientOp::LeaseKeepAlive { id: 1 }).shard, 1);
        let compact = ClientOp::Write(Command::Compact { revision: 5 });
        assert_eq!(g.for_op(&compact).shard, 1);
    }

    #[test]
    fn a_span_over_two_groups_is_refused_and_one_inside_a_group_is_its() {
        let g = three();
        assert_eq!(g.for_span(b"n", b"p").unwrap().shard, 2);
        assert_eq!(g.for_span(b"t", &[0]).unwrap().shard, 3);
        assert_eq!(g.for_span(b"a", b"").unwrap().shard, 1);
        assert_eq!(g.for_span(b"a", b"n").unwrap_err(), ClientError::CrossShard);
        assert_eq!(g.for_span(b"", &[0]).unwrap_err(), ClientError::CrossShard);
        // One group over everything holds every span.
        let one = Groups::new(&[(KeyRange::all(), 1)]);
        assert_eq!(one.for_span(b"", &[0]).unwrap().shard, 1);
        assert_eq!(one.for_op(&put("zz")).shard, 1);
        // A node that does not host the start of the keyspace.
        let part = Groups::new(&[(KeyRange::new("m", "t"), 2)]);
        assert_eq!(
            part.for_span(b"a", b"").unwrap_err(),
            ClientError::WrongShard { key: b"a".to_vec() }
        );
        assert_eq!(part.for_key(b"a").shard, 2, "the home group answers");
    }

    #[test]
    fn members_fill_missing_peer_urls_from_the_flags_and_report_who_left() {
        let cfg = crate::config::RawConfig::default().validate().unwrap();
        let first = cfg.members[0].clone();
        let p = Peers::new(&cfg);
        assert!(p.is_member(first.id));
        let gone = p.set_members(vec![Member {
            id: first.id,
            name: "n".into(),
            peer_urls: Vec::new(),
            client_urls: Vec::new(),
            is_learner: false,
        }]);
        assert!(gone.is_empty());
        assert_eq!(p.member_list()[0].peer_urls, vec![first.peer_url]);
        // Left the list without being removed: a lagging registry (a log
        // being replayed) does not know it yet; it is still dialled.
        assert_eq!(p.set_members(Vec::new()), vec![first.id]);
        assert!(p.member_list().is_empty());
        assert!(p.is_member(first.id));
        assert_eq!(p.dial_list()[0].id, first.id);
        p.mark_removed(first.id);
        assert!(p.was_removed(first.id));
        assert!(!p.is_member(first.id) && p.dial_list().is_empty());
        // A member of the cluster the registry does not list introduces
        // itself: dialled until the registry lists it.
        p.introduce(77, "n77".into(), vec!["http://127.0.0.1:9".into()]);
        assert!(p.is_member(77) && !p.is_registry_member(77));
        assert!(p.introduced_changed.swap(false, Ordering::Relaxed));
        let listed = Member {
            id: 77,
            name: "n77".into(),
            peer_urls: vec!["http://127.0.0.1:9".into()],
            client_urls: Vec::new(),
            is_learner: false,
        };
        p.set_members(vec![listed]);
        assert!(p.introduced.lock().unwrap().is_empty());
        assert_eq!(p.dial_list().len(), 1);
        // A removed member's introduction is ignored.
        p.introduce(first.id, "n".into(), vec!["http://127.0.0.1:8".into()]);
        assert!(!p.is_member(first.id));
    }

    #[test]
    fn the_round_trip_histogram_is_cumulative_with_etcds_name_and_label() {
        let cfg = crate::config::RawConfig::default().validate().unwrap();
        let s = Shared::new(cfg, false, &[(KeyRange::all(), 1)]);
        s.peers
            .observe_rtt(0xab, std::time::Duration::from_micros(150));
        s.peers
            .observe_rtt(0xab, std::time::Duration::from_millis(500));
        let mut out = String::new();
        s.peers.rtt_metrics(&mut out);
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
