//! Raft's safety properties, checked continuously from outside the nodes
//! (Raft paper, figure 3): election safety, log matching and leader
//! completeness over committed entries, state-machine safety, and replicas
//! identical at equal applied index.

use std::collections::BTreeMap;

use synod_node::Node;
use synod_raft::{NodeId, Role};

use synod_node::ShardId;

/// Watches every server after every event, one group at a time.
#[derive(Debug, Default)]
pub struct Invariants {
    /// The group watched.
    shard: ShardId,
    /// The leader seen for each term.
    leaders: BTreeMap<u64, NodeId>,
    /// Every committed entry seen: index -> (term, hash of the payload).
    committed: BTreeMap<u64, (u64, u64)>,
    /// For each committed index, the term of the node that first reported it
    /// committed: the entry was committed in that term or earlier. (A leader
    /// reports its own commits at once, so this is usually exact.)
    commit_term: BTreeMap<u64, u64>,
    /// Per server: highest committed index already compared.
    checked: BTreeMap<NodeId, u64>,
    /// Per server: (role, term) last seen.
    roles: BTreeMap<NodeId, (Role, u64)>,
    /// State hash of the replicated state machine at each applied index.
    states: BTreeMap<u64, (u64, NodeId)>,
    /// Per server: applied index last hashed.
    applied: BTreeMap<NodeId, u64>,
    /// What went wrong, in order.
    pub violations: Vec<String>,
}

const MAX_VIOLATIONS: usize = 32;

impl Invariants {
    /// Watches group `shard`.
    pub fn new(shard: ShardId) -> Invariants {
        Invariants {
            shard,
            ..Invariants::default()
        }
    }

    /// A server restarted: its volatile view starts over.
    pub fn restarted(&mut self, id: NodeId) {
        self.checked.remove(&id);
        self.roles.remove(&id);
        self.applied.remove(&id);
    }

    fn violate(&mut self, v: String) {
        if self.violations.len() < MAX_VIOLATIONS {
            self.violations.push(format!("shard {}: {v}", self.shard));
        }
    }

    /// Checks one live server.
    pub fn observe(&mut self, node: &Node, now: u64) {
        let id = node.id();
        let Some(raft) = node.raft(self.shard) else {
            return;
        };
        let (role, term) = (raft.role(), raft.term());

        // Election safety (§5.2): at most one leader per term.
        if role == Role::Leader {
            let l = *self.leaders.entry(term).or_insert(id);
            if l != id {
                self.violate(format!(
                    "election safety: nodes {l} and {id} are both leader of term {term} (t={now}µs)"
                ));
            }
        }

        // Log matching and state-machine safety over committed entries
        // (§5.3, §5.4.3): every node's entry at a committed index is the same.
        let commit = raft.commit();
        let from = self
            .checked
            .get(&id)
            .copied()
            .unwrap_or(0)
            .max(raft.first_index().saturating_sub(1));
        if commit > from {
            for i in from + 1..=commit {
                let Some(e) = raft.entry(i) else { continue };
                let h = (e.term, fnv(&e.data));
                match self.committed.get(&i) {
                    Some(&seen) if seen != h => self.violate(format!(
                        "state machine safety: node {id} committed (term {}, index {i}) but (term {}) was committed there before (t={now}µs)",
                        h.0, seen.0
                    )),
                    Some(_) => {}
                    None => {
                        self.committed.insert(i, h);
                        self.commit_term.insert(i, raft.term());
                    }
                }
            }
        }
        self.checked.insert(id, commit);

        // Leader completeness (§5.4): the leader of a term holds every entry
        // committed in an earlier term. (A stale leader of an old term, seen
        // late, need not hold what later terms committed.)
        let prev = self.roles.insert(id, (role, term));
        if role == Role::Leader && prev != Some((Role::Leader, term)) {
            let first = raft.first_index();
            let commit_term = &self.commit_term;
            let missing: Vec<u64> = self
                .committed
                .range(first..)
                .filter(|(i, _)| commit_term.get(i).is_some_and(|t| *t < term))
                .filter(|(i, h)| raft.entry(**i).map(|e| (e.term, fnv(&e.data))) != Some(**h))
                .map(|(i, _)| *i)
                .take(4)
                .collect();
            if !missing.is_empty() {
                self.violate(format!(
                    "leader completeness: node {id} leads term {term} without committed entries at {missing:?} (t={now}µs)"
                ));
            }
        }

        // Replicas identical at equal applied index.
        let applied = node.applied(self.shard).unwrap_or(0);
        if self.applied.get(&id) != Some(&applied) {
            self.applied.insert(id, applied);
            // The member registry is replicated state too.
            let h = node.state_machine(self.shard).map_or(0, |sm| sm.hash())
                ^ node
                    .members(self.shard)
                    .map_or(0, |r| r.hash())
                    .rotate_left(29);
            match self.states.get(&applied) {
                Some(&(seen, other)) if seen != h => self.violate(format!(
                    "replica divergence: nodes {other} and {id} differ at applied index {applied} (t={now}µs)"
                )),
                Some(_) => {}
                None => {
                    self.states.insert(applied, (h, id));
                }
            }
        }
    }

    /// Number of committed entries seen.
    pub fn committed(&self) -> usize {
        self.committed.len()
    }

    /// Highest term that had a leader.
    pub fn max_term(&self) -> u64 {
        self.leaders.keys().next_back().copied().unwrap_or(0)
    }

    /// Number of distinct leaderships seen.
    pub fn leader_terms(&self) -> usize {
        self.leaders.len()
    }
}

/// FNV-1a, for payload fingerprints.
pub fn fnv(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}
