//! The Raft log on the WAL: entries, the hard state (term, vote, commit) and
//! the snapshot marker, as WAL records, with their own plain types (this crate
//! does not depend on the Raft crate).
//!
//! Replay rules, applied in WAL order:
//! - an entry record for index `i` replaces every entry `>= i` (a leader
//!   overwriting an uncommitted suffix);
//! - the last hard-state record wins;
//! - a *compact* marker at `(S, T)` drops entries `<= S` and keeps the rest;
//!   an *install* marker (a snapshot received from a leader) drops every entry.
//!
//! Invariants the store keeps: entries are contiguous and start right after
//! the snapshot index; committed entries are never replaced; within one term
//! the vote never changes once cast, and a hard state is durable after the
//! [`RaftLogStore::sync`] that follows it, so after a crash a node can never
//! vote twice in a term provided it syncs before sending its vote.

use crate::vfs::Vfs;
use crate::wal::{Lsn, Record, RecoveryReport, Wal, WalConfig, WalError};
use std::collections::VecDeque;
use std::path::Path;

const KIND_ENTRY: u8 = 1;
const KIND_HARD_STATE: u8 = 2;
const KIND_COMPACT: u8 = 3;
const KIND_INSTALL: u8 = 4;

/// Indexes, terms and votes stay below this (on disk and through the API), so
/// arithmetic on values read from disk can never overflow.
pub const MAX_INDEX: u64 = 1 << 62;

/// Bytes an entry record spends before the entry's data.
pub const ENTRY_OVERHEAD: usize = 17;

/// One Raft log entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// Its index, from 1.
    pub index: u64,
    /// The term it was proposed in.
    pub term: u64,
    /// Its type, opaque here (normal, configuration change, ...).
    pub kind: u8,
    /// Its payload.
    pub data: Vec<u8>,
}

/// The Raft state that must be durable before a node answers anyone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HardState {
    /// The current term.
    pub term: u64,
    /// The node voted for in `term`; 0 for none.
    pub vote: u64,
    /// The highest index known committed.
    pub commit: u64,
}

/// Where the log starts: the last index and term covered by a snapshot, and
/// the configuration at that point (opaque bytes).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SnapshotMarker {
    /// The last index the snapshot covers.
    pub index: u64,
    /// The term of that entry.
    pub term: u64,
    /// The cluster configuration at `index`, encoded by the caller.
    pub conf: Vec<u8>,
}

/// What [`RaftLogStore::open`] found on disk.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovered {
    /// The last durable hard state (all zeros on a fresh log).
    pub hard_state: HardState,
    /// The last durable snapshot marker, if any.
    pub snapshot_marker: Option<SnapshotMarker>,
    /// The entries after the snapshot, contiguous.
    pub entries: Vec<LogEntry>,
    /// What the WAL's recovery did.
    pub wal: RecoveryReport,
}

/// An error from the Raft log store.
#[derive(Debug, thiserror::Error)]
pub enum RaftLogError {
    /// The WAL failed (including corruption it detected).
    #[error(transparent)]
    Wal(#[from] WalError),
    /// The records are individually intact but do not form a valid log.
    #[error("inconsistent Raft log at WAL record {lsn}: {what}")]
    Inconsistent {
        /// The record where the problem showed.
        lsn: Lsn,
        /// What is wrong.
        what: String,
    },
    /// The caller asked for something that would break the log's invariants.
    #[error("rejected: {0}")]
    Rejected(String),
}

fn rejected(msg: String) -> RaftLogError {
    RaftLogError::Rejected(msg)
}

fn encode_entry(e: &LogEntry) -> Vec<u8> {
    let mut b = Vec::with_capacity(ENTRY_OVERHEAD + e.data.len());
    b.extend_from_slice(&e.index.to_le_bytes());
    b.extend_from_slice(&e.term.to_le_bytes());
    b.push(e.kind);
    b.extend_from_slice(&e.data);
    b
}

fn encode_hard_state(hs: &HardState) -> Vec<u8> {
    let mut b = Vec::with_capacity(24);
    b.extend_from_slice(&hs.term.to_le_bytes());
    b.extend_from_slice(&hs.vote.to_le_bytes());
    b.extend_from_slice(&hs.commit.to_le_bytes());
    b
}

fn encode_marker(m: &SnapshotMarker) -> Vec<u8> {
    let mut b = Vec::with_capacity(16 + m.conf.len());
    b.extend_from_slice(&m.index.to_le_bytes());
    b.extend_from_slice(&m.term.to_le_bytes());
    b.extend_from_slice(&m.conf);
    b
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

fn decode(rec: &Record) -> Result<Decoded, RaftLogError> {
    let d = decode_unchecked(rec)?;
    let in_range = match &d {
        Decoded::Entry(e) => e.index >= 1 && e.index < MAX_INDEX && e.term < MAX_INDEX,
        Decoded::HardState(h) => h.term < MAX_INDEX && h.vote < MAX_INDEX && h.commit < MAX_INDEX,
        Decoded::Compact(m) | Decoded::Install(m) => m.index < MAX_INDEX && m.term < MAX_INDEX,
    };
    if !in_range {
        return Err(RaftLogError::Inconsistent {
            lsn: rec.lsn,
            what: "index, term or vote out of range".into(),
        });
    }
    Ok(d)
}

fn decode_unchecked(rec: &Record) -> Result<Decoded, RaftLogError> {
    let p = &rec.payload;
    let bad = |what: &str| RaftLogError::Inconsistent {
        lsn: rec.lsn,
        what: what.to_string(),
    };
    match rec.kind {
        KIND_ENTRY if p.len() >= ENTRY_OVERHEAD => Ok(Decoded::Entry(LogEntry {
            index: u64_at(p, 0),
            term: u64_at(p, 8),
            kind: p[16],
            data: p[ENTRY_OVERHEAD..].to_vec(),
        })),
        KIND_HARD_STATE if p.len() == 24 => Ok(Decoded::HardState(HardState {
            term: u64_at(p, 0),
            vote: u64_at(p, 8),
            commit: u64_at(p, 16),
        })),
        KIND_COMPACT | KIND_INSTALL if p.len() >= 16 => {
            let m = SnapshotMarker {
                index: u64_at(p, 0),
                term: u64_at(p, 8),
                conf: p[16..].to_vec(),
            };
            Ok(if rec.kind == KIND_COMPACT {
                Decoded::Compact(m)
            } else {
                Decoded::Install(m)
            })
        }
        KIND_ENTRY | KIND_HARD_STATE | KIND_COMPACT | KIND_INSTALL => {
            Err(bad("record too short for its type"))
        }
        _ => Err(bad(&format!("unknown record type {}", rec.kind))),
    }
}

enum Decoded {
    Entry(LogEntry),
    HardState(HardState),
    Compact(SnapshotMarker),
    Install(SnapshotMarker),
}

/// Rebuilds the log from records in WAL order, checking it as it goes.
#[derive(Default)]
struct Replay {
    hard_state: HardState,
    snapshot: Option<SnapshotMarker>,
    entries: VecDeque<LogEntry>,
    /// The WAL record that wrote each entry, parallel to `entries`.
    lsns: VecDeque<Lsn>,
}

impl Replay {
    fn apply(&mut self, rec: Record) -> Result<(), RaftLogError> {
        let lsn = rec.lsn;
        let bad = |what: String| RaftLogError::Inconsistent { lsn, what };
        match decode(&rec)? {
            Decoded::Entry(e) => {
                if let Some(s) = &self.snapshot {
                    if e.index <= s.index {
                        return Err(bad(format!(
                            "entry {} at or below snapshot index {}",
                            e.index, s.index
                        )));
                    }
                }
                if let Some(first) = self.entries.front().map(|f| f.index) {
                    let last = first + self.entries.len() as u64 - 1;
                    if e.index > last + 1 {
                        return Err(bad(format!(
                            "entry {} leaves a gap after log {first}..={last}",
                            e.index
                        )));
                    }
                    // Below `first`: it replaces entries whose records were in
                    // segments deleted by a compaction. `finish` checks that
                    // the log still starts right after the snapshot.
                    let keep = e.index.saturating_sub(first) as usize;
                    self.entries.truncate(keep);
                    self.lsns.truncate(keep);
                }
                self.entries.push_back(e);
                self.lsns.push_back(lsn);
            }
            Decoded::HardState(hs) => {
                if hs.term < self.hard_state.term {
                    return Err(bad(format!(
                        "hard state term goes back from {} to {}",
                        self.hard_state.term, hs.term
                    )));
                }
                self.hard_state = hs;
            }
            Decoded::Compact(m) => {
                if let Some(first) = self.entries.front().map(|f| f.index) {
                    if m.index >= first {
                        if let Some(e) = self.entries.get((m.index - first) as usize) {
                            if e.term != m.term {
                                return Err(bad(format!(
                                    "snapshot marker ({}, term {}) disagrees with entry term {}",
                                    m.index, m.term, e.term
                                )));
                            }
                        }
                    }
                }
                while self.entries.front().is_some_and(|e| e.index <= m.index) {
                    self.entries.pop_front();
                    self.lsns.pop_front();
                }
                self.snapshot = Some(m);
            }
            Decoded::Install(m) => {
                self.entries.clear();
                self.lsns.clear();
                self.snapshot = Some(m);
            }
        }
        Ok(())
    }

    fn finish(&self, end: Lsn) -> Result<(), RaftLogError> {
        if let Some(first) = self.entries.front() {
            let want = self.snapshot.as_ref().map_or(1, |s| s.index + 1);
            if first.index != want {
                return Err(RaftLogError::Inconsistent {
                    lsn: end,
                    what: format!(
                        "log starts at {} but should start at {want} (a segment is missing)",
                        first.index
                    ),
                });
            }
        }
        Ok(())
    }
}

/// The Raft log store: appends and replaces entries, records the hard state
/// and snapshot markers, and compacts the WAL.
#[derive(Debug)]
pub struct RaftLogStore<V: Vfs> {
    wal: Wal<V>,
    hard_state: HardState,
    snapshot: Option<SnapshotMarker>,
    /// Index of the first entry in `meta`.
    first_index: u64,
    /// (WAL record, term) of each entry from `first_index` on.
    meta: VecDeque<(Lsn, u64)>,
}

impl<V: Vfs> RaftLogStore<V> {
    /// Opens (or creates) the log in `dir` with the default WAL configuration.
    pub fn open(vfs: V, dir: &Path) -> Result<(Self, Recovered), RaftLogError> {
        Self::open_with_config(vfs, dir, WalConfig::default())
    }

    /// Opens (or creates) the log in `dir`.
    pub fn open_with_config(
        vfs: V,
        dir: &Path,
        cfg: WalConfig,
    ) -> Result<(Self, Recovered), RaftLogError> {
        let mut replay = Replay::default();
        let (wal, report) = Wal::open_with(vfs, dir, cfg, |rec| replay.apply(rec))?;
        replay.finish(wal.next_lsn())?;
        let Replay {
            hard_state,
            snapshot,
            entries,
            lsns,
        } = replay;
        let first_index = entries
            .front()
            .map_or(snapshot.as_ref().map_or(1, |s| s.index + 1), |e| e.index);
        let meta = lsns
            .iter()
            .zip(entries.iter())
            .map(|(&l, e)| (l, e.term))
            .collect();
        let store = RaftLogStore {
            wal,
            hard_state,
            snapshot: snapshot.clone(),
            first_index,
            meta,
        };
        store.check();
        Ok((
            store,
            Recovered {
                hard_state,
                snapshot_marker: snapshot,
                entries: entries.into(),
                wal: report,
            },
        ))
    }

    fn check(&self) {
        let snap = self.snapshot.as_ref().map_or(0, |s| s.index);
        assert_eq!(
            self.first_index,
            snap + 1,
            "entries start after the snapshot"
        );
    }

    /// The index of the last entry (the snapshot index if there is none).
    pub fn last_index(&self) -> u64 {
        self.first_index + self.meta.len() as u64 - 1
    }

    /// The index of the first entry held.
    pub fn first_index(&self) -> u64 {
        self.first_index
    }

    /// The term of the entry at `index`, if held (or it is the snapshot's).
    pub fn term(&self, index: u64) -> Option<u64> {
        if let Some(s) = &self.snapshot {
            if s.index == index {
                return Some(s.term);
            }
        }
        let off = index.checked_sub(self.first_index)?;
        self.meta.get(off as usize).map(|&(_, t)| t)
    }

    /// The hard state last given (durable after the next sync).
    pub fn hard_state(&self) -> HardState {
        self.hard_state
    }

    /// The snapshot marker last recorded.
    pub fn snapshot_marker(&self) -> Option<&SnapshotMarker> {
        self.snapshot.as_ref()
    }

    /// The WAL underneath (for its figures).
    pub fn wal(&self) -> &Wal<V> {
        &self.wal
    }

    /// Buffers entries; `entries[0].index` may be at or below the last index,
    /// in which case the log from there is replaced. Durable after
    /// [`RaftLogStore::sync`].
    pub fn append(&mut self, entries: &[LogEntry]) -> Result<(), RaftLogError> {
        let Some(head) = entries.first() else {
            return Ok(());
        };
        let tail = entries.last().expect("non-empty");
        if tail.index >= MAX_INDEX || tail.term >= MAX_INDEX {
            return Err(rejected(format!("entry {} out of range", tail.index)));
        }
        for w in entries.windows(2) {
            if w[1].index != w[0].index + 1 || w[1].term < w[0].term {
                return Err(rejected(format!(
                    "entries not contiguous with non-decreasing terms at index {}",
                    w[1].index
                )));
            }
        }
        let last = self.last_index();
        if head.index < self.first_index || head.index > last + 1 {
            return Err(rejected(format!(
                "entry {} does not attach to log {}..={last}",
                head.index, self.first_index
            )));
        }
        if head.index <= last && head.index <= self.hard_state.commit {
            return Err(rejected(format!(
                "entry {} would replace a committed entry (commit {})",
                head.index, self.hard_state.commit
            )));
        }
        if let Some(prev) = self.term(head.index - 1) {
            if head.term < prev {
                return Err(rejected(format!(
                    "entry {} has term {} below its predecessor's {prev}",
                    head.index, head.term
                )));
            }
        }
        let encoded: Vec<Vec<u8>> = entries.iter().map(encode_entry).collect();
        let batch: Vec<(u8, &[u8])> = encoded.iter().map(|b| (KIND_ENTRY, &b[..])).collect();
        let first_lsn = self.wal.append(&batch)?;
        self.meta.truncate((head.index - self.first_index) as usize);
        for (i, e) in entries.iter().enumerate() {
            self.meta.push_back((first_lsn + i as u64, e.term));
        }
        Ok(())
    }

    /// Buffers a new hard state. The term never goes back, the commit index
    /// never goes back, and a vote cast in a term is never changed.
    pub fn set_hard_state(&mut self, hs: HardState) -> Result<(), RaftLogError> {
        let cur = self.hard_state;
        if hs == cur {
            return Ok(());
        }
        if hs.term >= MAX_INDEX || hs.vote >= MAX_INDEX || hs.commit >= MAX_INDEX {
            return Err(rejected(format!("hard state {hs:?} out of range")));
        }
        if hs.term < cur.term {
            return Err(rejected(format!(
                "term goes back from {} to {}",
                cur.term, hs.term
            )));
        }
        if hs.term == cur.term && cur.vote != 0 && hs.vote != cur.vote {
            return Err(rejected(format!(
                "vote in term {} already cast for {}, not {}",
                cur.term, cur.vote, hs.vote
            )));
        }
        if hs.commit < cur.commit {
            return Err(rejected(format!(
                "commit goes back from {} to {}",
                cur.commit, hs.commit
            )));
        }
        self.wal
            .append_one(KIND_HARD_STATE, &encode_hard_state(&hs))?;
        self.hard_state = hs;
        Ok(())
    }

    /// Writes and fdatasyncs everything buffered (one group commit).
    pub fn sync(&mut self) -> Result<(), RaftLogError> {
        self.wal.sync()?;
        Ok(())
    }

    /// Records a snapshot of the applied state up to `marker.index` (which
    /// must be committed and held), syncs, and deletes the WAL segments it
    /// makes unnecessary. Entries after the marker are kept.
    pub fn compact(&mut self, marker: SnapshotMarker) -> Result<usize, RaftLogError> {
        let snap = self.snapshot.as_ref().map_or(0, |s| s.index);
        if marker.index < snap {
            return Err(rejected(format!(
                "snapshot {} is older than the current one at {snap}",
                marker.index
            )));
        }
        if marker.index > self.hard_state.commit || marker.index > self.last_index() {
            return Err(rejected(format!(
                "cannot compact to {}: commit {}, last index {}",
                marker.index,
                self.hard_state.commit,
                self.last_index()
            )));
        }
        if let Some(t) = self.term(marker.index) {
            if t != marker.term {
                return Err(rejected(format!(
                    "snapshot term {} disagrees with entry {}'s term {t}",
                    marker.term, marker.index
                )));
            }
        }
        self.wal.sync()?;
        let hs_lsn = self.wal.next_lsn();
        self.wal.append(&[
            (KIND_HARD_STATE, &encode_hard_state(&self.hard_state)),
            (KIND_COMPACT, &encode_marker(&marker)),
        ])?;
        self.wal.sync()?;
        let drop_n = (marker.index + 1 - self.first_index) as usize;
        self.meta.drain(..drop_n);
        self.first_index = marker.index + 1;
        self.snapshot = Some(marker);
        self.check();
        let keep_from = self.meta.front().map_or(hs_lsn, |&(l, _)| l.min(hs_lsn));
        Ok(self.wal.truncate_prefix(keep_from)?)
    }

    /// Replaces the whole log with a snapshot received from a leader: every
    /// entry is dropped and the log continues at `marker.index + 1`. Syncs,
    /// and deletes the WAL segments it makes unnecessary.
    pub fn install_snapshot(&mut self, marker: SnapshotMarker) -> Result<usize, RaftLogError> {
        if marker.index >= MAX_INDEX || marker.term >= MAX_INDEX {
            return Err(rejected(format!("snapshot {} out of range", marker.index)));
        }
        let snap = self.snapshot.as_ref().map_or(0, |s| s.index);
        if marker.index <= snap {
            return Err(rejected(format!(
                "snapshot {} is not newer than the current one at {snap}",
                marker.index
            )));
        }
        self.wal.sync()?;
        let hs_lsn = self.wal.next_lsn();
        self.wal.append(&[
            (KIND_HARD_STATE, &encode_hard_state(&self.hard_state)),
            (KIND_INSTALL, &encode_marker(&marker)),
        ])?;
        self.wal.sync()?;
        self.meta.clear();
        self.first_index = marker.index + 1;
        self.snapshot = Some(marker);
        self.check();
        Ok(self.wal.truncate_prefix(hs_lsn)?)
    }
}

#[cfg(test)]
mod tests;
