//! The in-memory Raft log: entries since the last snapshot, the commit index,
//! and how far the owner has made it durable.

use crate::types::Entry;

/// Entries after the snapshot `(snap_index, snap_term)`, all kept in memory.
#[derive(Debug, Clone)]
pub(crate) struct RaftLog {
    snap_index: u64,
    snap_term: u64,
    /// `entries[i].index == snap_index + 1 + i`.
    entries: Vec<Entry>,
    /// Highest index the owner has persisted (and that is still ours).
    pub(crate) stable_to: u64,
    /// The lowest index a conflicting append replaced since the entries
    /// being persisted were handed out: the entries below it are still the
    /// ones the owner is writing.
    replaced_from: Option<u64>,
    /// Highest index known committed.
    pub(crate) commit: u64,
}

impl RaftLog {
    pub(crate) fn new(snap_index: u64, snap_term: u64) -> RaftLog {
        RaftLog {
            snap_index,
            snap_term,
            entries: Vec::new(),
            stable_to: snap_index,
            replaced_from: None,
            commit: snap_index,
        }
    }

    pub(crate) fn snap_index(&self) -> u64 {
        self.snap_index
    }

    pub(crate) fn first_index(&self) -> u64 {
        self.snap_index + 1
    }

    pub(crate) fn last_index(&self) -> u64 {
        self.snap_index + self.entries.len() as u64
    }

    pub(crate) fn last_term(&self) -> u64 {
        self.entries.last().map_or(self.snap_term, |e| e.term)
    }

    /// Term of the entry at `index`; known for the snapshot's index and the entries after it.
    pub(crate) fn term(&self, index: u64) -> Option<u64> {
        if index == self.snap_index {
            return Some(self.snap_term);
        }
        self.entry(index).map(|e| e.term)
    }

    pub(crate) fn entry(&self, index: u64) -> Option<&Entry> {
        if index <= self.snap_index {
            return None;
        }
        self.entries.get((index - self.snap_index - 1) as usize)
    }

    pub(crate) fn match_term(&self, index: u64, term: u64) -> bool {
        self.term(index) == Some(term)
    }

    /// Raft §5.4.1: a candidate's log is at least as up-to-date as ours.
    pub(crate) fn is_up_to_date(&self, last_index: u64, last_term: u64) -> bool {
        last_term > self.last_term()
            || (last_term == self.last_term() && last_index >= self.last_index())
    }

    /// Entries `[lo, hi]`, stopping once `max_bytes` is exceeded (at least one entry).
    pub(crate) fn slice(&self, lo: u64, hi: u64, max_bytes: u64) -> Vec<Entry> {
        assert!(lo > self.snap_index, "slice below the snapshot");
        let mut out = Vec::new();
        let mut bytes = 0u64;
        let mut i = lo;
        while i <= hi {
            let e = match self.entry(i) {
                Some(e) => e,
                None => break,
            };
            bytes += e.size();
            if !out.is_empty() && bytes > max_bytes {
                break;
            }
            out.push(e.clone());
            i += 1;
        }
        out
    }

    /// Entries not yet made durable by the owner.
    pub(crate) fn unstable(&self) -> &[Entry] {
        let from = (self.stable_to - self.snap_index) as usize;
        &self.entries[from..]
    }

    /// The unstable entries are handed to the owner to persist: a
    /// replacement from now on is one of entries it is writing.
    pub(crate) fn handed_out(&mut self) {
        self.replaced_from = None;
    }

    /// The owner persisted what was handed out, up to `(index, term)`. If a
    /// conflicting append replaced part of it meanwhile, the entries below
    /// the replacement are still the ones it wrote, and they are stable (so
    /// they are not handed out again: a rewrite of an entry that may be
    /// committed by now is something a log store rightly refuses).
    pub(crate) fn stable_to(&mut self, index: u64, term: u64) {
        let upto = if self.match_term(index, term) {
            index
        } else {
            match self.replaced_from {
                Some(r) => index.min(r - 1),
                None => return,
            }
        };
        if upto > self.stable_to {
            assert!(upto <= self.last_index(), "stable past the last entry");
            self.stable_to = upto;
        }
    }

    /// Appends entries that follow the last one (leader's own proposals).
    pub(crate) fn append_new(&mut self, e: Entry) {
        assert_eq!(
            e.index,
            self.last_index() + 1,
            "leader append must be contiguous"
        );
        assert!(e.term >= self.last_term(), "terms must not decrease");
        self.entries.push(e);
    }

    /// The first entry in `ents` whose term differs from ours (or that we lack), if any.
    pub(crate) fn find_conflict(&self, ents: &[Entry]) -> Option<u64> {
        ents.iter()
            .find(|e| !self.match_term(e.index, e.term))
            .map(|e| e.index)
    }

    /// Follower side of AppendEntries once the consistency check passed (Raft §5.3):
    /// deletes a conflicting suffix and appends what is new. Returns the index of the
    /// first conflicting entry if the log was truncated.
    pub(crate) fn merge(&mut self, ents: &[Entry]) -> Option<u64> {
        let conflict = self.find_conflict(ents)?;
        assert!(conflict > self.commit, "a committed entry conflicts");
        let start = ents
            .iter()
            .position(|e| e.index == conflict)
            .expect("conflict comes from ents");
        let keep = (conflict - self.snap_index - 1) as usize;
        let truncated = keep < self.entries.len();
        if truncated {
            self.replaced_from = Some(self.replaced_from.map_or(conflict, |r| r.min(conflict)));
        }
        self.entries.truncate(keep);
        self.entries.extend_from_slice(&ents[start..]);
        if self.stable_to >= conflict {
            self.stable_to = conflict - 1;
        }
        truncated.then_some(conflict)
    }

    /// Fast backtracking: the largest index `<= index` whose term is `<= term`,
    /// with that term (0 if unknown).
    pub(crate) fn find_conflict_by_term(&self, mut index: u64, term: u64) -> (u64, u64) {
        index = index.min(self.last_index());
        loop {
            match self.term(index) {
                Some(t) if t > term && index > self.snap_index => index -= 1,
                Some(t) => return (index, t),
                None => return (index, 0),
            }
        }
    }

    pub(crate) fn commit_to(&mut self, index: u64) -> bool {
        if index > self.commit {
            assert!(index <= self.last_index(), "commit beyond the log");
            self.commit = index;
            true
        } else {
            false
        }
    }

    /// Drops entries up to `index` (covered by a snapshot).
    pub(crate) fn compact(&mut self, index: u64, term: u64) {
        assert!(index >= self.snap_index && index <= self.last_index());
        let n = (index - self.snap_index) as usize;
        self.entries.drain(..n);
        self.snap_index = index;
        self.snap_term = term;
        if self.stable_to < index {
            self.stable_to = index;
        }
    }

    /// Replaces everything by a received snapshot.
    pub(crate) fn restore(&mut self, index: u64, term: u64) {
        self.entries.clear();
        self.snap_index = index;
        self.snap_term = term;
        self.stable_to = index;
        self.commit = index;
        // Whatever the owner is writing of the old log is not ours any more.
        self.replaced_from = Some(index + 1);
    }

    /// Restores persisted entries on restart.
    pub(crate) fn load(&mut self, ents: Vec<Entry>) {
        self.entries = ents;
        self.stable_to = self.last_index();
    }
}
