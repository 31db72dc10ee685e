//! The leader's view of each follower (progress, flow control, snapshot
//! transfer) and quorum arithmetic for simple and joint configurations.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::types::{ConfState, NodeId};

/// How the leader replicates to one follower.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgressState {
    /// Unknown match: one append at a time until it succeeds.
    Probe,
    /// Known match: appends are pipelined, bounded by the inflight window.
    Replicate,
    /// The follower needs a snapshot; appends pause until it is installed.
    Snapshot,
}

/// Snapshot being streamed to a follower, one chunk in flight.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SnapshotSend {
    pub(crate) index: u64,
    /// Next offset to send.
    pub(crate) offset: u64,
    /// A chunk is outstanding (waiting for its response).
    pub(crate) in_flight: bool,
    /// Ticks since the last chunk went out (to resend a lost one).
    pub(crate) idle_ticks: u32,
}

/// The leader's view of one peer.
#[derive(Clone, Debug)]
pub(crate) struct Progress {
    pub(crate) matched: u64,
    pub(crate) next: u64,
    pub(crate) state: ProgressState,
    /// In Probe: an append went out and no answer came yet.
    pub(crate) probe_sent: bool,
    /// Last indexes of appends in flight (Replicate), oldest first.
    pub(crate) inflights: VecDeque<u64>,
    /// Heard from since the last check-quorum round.
    pub(crate) recent_active: bool,
    /// Highest heartbeat round acknowledged in this term.
    pub(crate) read_ack: u64,
    pub(crate) snapshot: Option<SnapshotSend>,
}

impl Progress {
    pub(crate) fn new(next: u64) -> Progress {
        Progress {
            matched: 0,
            next,
            state: ProgressState::Probe,
            probe_sent: false,
            inflights: VecDeque::new(),
            recent_active: false,
            read_ack: 0,
            snapshot: None,
        }
    }

    fn reset(&mut self, state: ProgressState) {
        self.state = state;
        self.probe_sent = false;
        self.inflights.clear();
        self.snapshot = None;
    }

    pub(crate) fn become_probe(&mut self) {
        if let ProgressState::Snapshot = self.state {
            let pending = self.snapshot.as_ref().map_or(0, |s| s.index);
            self.reset(ProgressState::Probe);
            self.next = (self.matched + 1).max(pending + 1);
        } else {
            self.reset(ProgressState::Probe);
            self.next = self.matched + 1;
        }
    }

    pub(crate) fn become_replicate(&mut self) {
        self.reset(ProgressState::Replicate);
        self.next = self.matched + 1;
    }

    pub(crate) fn become_snapshot(&mut self, index: u64) {
        self.reset(ProgressState::Snapshot);
        self.snapshot = Some(SnapshotSend {
            index,
            offset: 0,
            in_flight: false,
            idle_ticks: 0,
        });
    }

    /// Whether no more appends may go out now.
    pub(crate) fn is_paused(&self, max_inflight: usize) -> bool {
        match self.state {
            ProgressState::Probe => self.probe_sent,
            ProgressState::Replicate => self.inflights.len() >= max_inflight,
            ProgressState::Snapshot => true,
        }
    }

    /// A successful append up to `n`. Returns whether anything changed.
    pub(crate) fn maybe_update(&mut self, n: u64) -> bool {
        let mut updated = false;
        if n > self.matched {
            self.matched = n;
            self.probe_sent = false;
            updated = true;
        }
        self.next = self.next.max(n + 1);
        while self.inflights.front().is_some_and(|&i| i <= n) {
            self.inflights.pop_front();
        }
        updated
    }

    /// A rejected append at `rejected`; `hint` is the last index that may match.
    /// Returns false for a stale rejection.
    pub(crate) fn maybe_decr_to(&mut self, rejected: u64, hint: u64) -> bool {
        if self.state == ProgressState::Replicate {
            if rejected <= self.matched {
                return false;
            }
            self.next = self.matched + 1;
            return true;
        }
        if self.next == 0 || self.next - 1 != rejected {
            return false;
        }
        self.next = rejected.min(hint + 1).max(self.matched + 1);
        self.probe_sent = false;
        true
    }

    /// Records an append covering up to `last` that just went out.
    pub(crate) fn sent(&mut self, last: u64, entries: usize, max_inflight: usize) {
        match self.state {
            ProgressState::Replicate => {
                if entries > 0 {
                    self.next = last + 1;
                    assert!(
                        self.inflights.len() < max_inflight,
                        "inflight window overrun"
                    );
                    self.inflights.push_back(last);
                }
            }
            ProgressState::Probe => self.probe_sent = true,
            ProgressState::Snapshot => unreachable!("append while sending a snapshot"),
        }
    }
}

/// Outcome of counting votes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum VoteResult {
    Pending,
    Won,
    Lost,
}

fn majority_index(voters: &BTreeSet<NodeId>, acked: &dyn Fn(NodeId) -> u64) -> u64 {
    if voters.is_empty() {
        return u64::MAX;
    }
    let mut v: Vec<u64> = voters.iter().map(|&id| acked(id)).collect();
    v.sort_unstable_by(|a, b| b.cmp(a));
    v[voters.len() / 2]
}

/// The highest value acknowledged by a quorum of every half of `cs`.
pub(crate) fn committed_index(cs: &ConfState, acked: &dyn Fn(NodeId) -> u64) -> u64 {
    let inc = majority_index(&cs.voters, acked);
    let out = majority_index(&cs.voters_outgoing, acked);
    let v = inc.min(out);
    if v == u64::MAX {
        0
    } else {
        v
    }
}

fn majority_vote(voters: &BTreeSet<NodeId>, votes: &BTreeMap<NodeId, bool>) -> VoteResult {
    if voters.is_empty() {
        return VoteResult::Won;
    }
    let (mut yes, mut no) = (0, 0);
    for id in voters {
        match votes.get(id) {
            Some(true) => yes += 1,
            Some(false) => no += 1,
            None => {}
        }
    }
    let q = voters.len() / 2 + 1;
    if yes >= q {
        VoteResult::Won
    } else if voters.len() - no < q {
        VoteResult::Lost
    } else {
        VoteResult::Pending
    }
}

/// An election is won when both halves of a joint configuration grant a majority.
pub(crate) fn vote_result(cs: &ConfState, votes: &BTreeMap<NodeId, bool>) -> VoteResult {
    if cs.voters.is_empty() && cs.voters_outgoing.is_empty() {
        return VoteResult::Lost;
    }
    let a = majority_vote(&cs.voters, votes);
    let b = majority_vote(&cs.voters_outgoing, votes);
    match (a, b) {
        (VoteResult::Won, VoteResult::Won) => VoteResult::Won,
        (VoteResult::Lost, _) | (_, VoteResult::Lost) => VoteResult::Lost,
        _ => VoteResult::Pending,
    }
}

/// Whether the set `active` holds a quorum of every half of `cs`.
pub(crate) fn has_quorum(cs: &ConfState, active: &dyn Fn(NodeId) -> bool) -> bool {
    committed_index(cs, &|id| u64::from(active(id))) >= 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cs(v: &[u64], out: &[u64]) -> ConfState {
        ConfState {
            voters: v.iter().copied().collect(),
            voters_outgoing: out.iter().copied().collect(),
            ..ConfState::default()
        }
    }

    #[test]
    fn majority_of_five_is_third_highest() {
        let c = cs(&[1, 2, 3, 4, 5], &[]);
        let m = [0u64, 9, 7, 5, 3, 1];
        assert_eq!(committed_index(&c, &|id| m[id as usize]), 5);
    }

    #[test]
    fn joint_needs_both_halves() {
        // Raft §6 / thesis §4.3: joint consensus needs a majority of both configurations.
        let c = cs(&[1, 2, 3], &[3, 4, 5]);
        let m = [0u64, 9, 9, 1, 0, 0];
        assert_eq!(committed_index(&c, &|id| m[id as usize]), 0);
        let m = [0u64, 9, 9, 5, 5, 0];
        assert_eq!(committed_index(&c, &|id| m[id as usize]), 5);
        let mut votes = BTreeMap::new();
        votes.insert(1, true);
        votes.insert(2, true);
        assert_eq!(vote_result(&c, &votes), VoteResult::Pending);
        votes.insert(4, false);
        votes.insert(5, false);
        assert_eq!(vote_result(&c, &votes), VoteResult::Lost);
    }

    #[test]
    fn probe_backs_off_to_hint() {
        let mut p = Progress::new(10);
        p.probe_sent = true;
        assert!(!p.maybe_decr_to(5, 2), "stale rejection must be ignored");
        assert!(p.maybe_decr_to(9, 3));
        assert_eq!(p.next, 4);
        assert!(!p.probe_sent);
    }
}
