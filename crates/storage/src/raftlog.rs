//! The Raft logs of many groups on one WAL: each group's entries, hard state
//! (term, vote, commit) and snapshot marker, as WAL records tagged with the
//! group's id, with their own plain types (this crate does not depend on the
//! Raft crate). One [`MultiRaftLog::sync`] makes every group's writes durable
//! with one fdatasync: group commit across groups. [`RaftLogStore`] is the
//! same log restricted to one group.
//!
//! Replay rules, applied in WAL order, per group:
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

use crate::record::FRAME_HEADER;
use crate::vfs::Vfs;
use crate::wal::{Lsn, Record, RecoveryReport, Wal, WalConfig, WalError};
use std::collections::{BTreeMap, VecDeque};
use std::path::Path;

// Records of the first format, without a group: they belong to group
// [`LEGACY_GROUP`] (a data dir written before groups existed).
const KIND_ENTRY: u8 = 1;
const KIND_HARD_STATE: u8 = 2;
const KIND_COMPACT: u8 = 3;
const KIND_INSTALL: u8 = 4;
// The same records, each payload led by the group's id (u64, little endian).
const TAGGED: u8 = 4;
const KIND_G_ENTRY: u8 = KIND_ENTRY + TAGGED;
const KIND_G_HARD_STATE: u8 = KIND_HARD_STATE + TAGGED;
const KIND_G_COMPACT: u8 = KIND_COMPACT + TAGGED;
const KIND_G_INSTALL: u8 = KIND_INSTALL + TAGGED;

/// A Raft group's id.
pub type GroupId = u64;

/// The group that untagged records (the first format) belong to.
pub const LEGACY_GROUP: GroupId = 1;

/// Indexes, terms and votes stay below this (on disk and through the API), so
/// arithmetic on values read from disk can never overflow.
pub const MAX_INDEX: u64 = 1 << 62;

/// Bytes of an entry's fields before its data (index, term, kind).
const ENTRY_FIELDS: usize = 17;

/// Bytes an entry record spends before the entry's data (group, index,
/// term, kind).
pub const ENTRY_OVERHEAD: usize = 8 + ENTRY_FIELDS;

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

/// What [`MultiRaftLog::open`] found of one group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupRecovered {
    /// The last durable hard state.
    pub hard_state: HardState,
    /// The last durable snapshot marker, if any.
    pub snapshot_marker: Option<SnapshotMarker>,
    /// The entries after the snapshot, contiguous.
    pub entries: Vec<LogEntry>,
}

/// What [`MultiRaftLog::open`] found on disk.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MultiRecovered {
    /// Every group any record names, by id.
    pub groups: std::collections::BTreeMap<GroupId, GroupRecovered>,
    /// What the WAL's recovery did.
    pub wal: RecoveryReport,
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

fn encode_entry(group: GroupId, e: &LogEntry) -> Vec<u8> {
    let mut b = Vec::with_capacity(ENTRY_OVERHEAD + e.data.len());
    b.extend_from_slice(&group.to_le_bytes());
    b.extend_from_slice(&e.index.to_le_bytes());
    b.extend_from_slice(&e.term.to_le_bytes());
    b.push(e.kind);
    b.extend_from_slice(&e.data);
    b
}

fn encode_hard_state(group: GroupId, hs: &HardState) -> Vec<u8> {
    let mut b = Vec::with_capacity(32);
    b.extend_from_slice(&group.to_le_bytes());
    b.extend_from_slice(&hs.term.to_le_bytes());
    b.extend_from_slice(&hs.vote.to_le_bytes());
    b.extend_from_slice(&hs.commit.to_le_bytes());
    b
}

fn encode_marker(group: GroupId, m: &SnapshotMarker) -> Vec<u8> {
    let mut b = Vec::with_capacity(24 + m.conf.len());
    b.extend_from_slice(&group.to_le_bytes());
    b.extend_from_slice(&m.index.to_le_bytes());
    b.extend_from_slice(&m.term.to_le_bytes());
    b.extend_from_slice(&m.conf);
    b
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

fn decode(rec: &Record) -> Result<(GroupId, Decoded), RaftLogError> {
    let (group, d) = decode_unchecked(rec)?;
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
    Ok((group, d))
}

fn decode_unchecked(rec: &Record) -> Result<(GroupId, Decoded), RaftLogError> {
    let bad = |what: &str| RaftLogError::Inconsistent {
        lsn: rec.lsn,
        what: what.to_string(),
    };
    let (group, kind, p) = match rec.kind {
        KIND_G_ENTRY | KIND_G_HARD_STATE | KIND_G_COMPACT | KIND_G_INSTALL => {
            if rec.payload.len() < 8 {
                return Err(bad("record too short for its group"));
            }
            (
                u64_at(&rec.payload, 0),
                rec.kind - TAGGED,
                &rec.payload[8..],
            )
        }
        k => (LEGACY_GROUP, k, &rec.payload[..]),
    };
    let d = match kind {
        KIND_ENTRY if p.len() >= ENTRY_FIELDS => Ok(Decoded::Entry(LogEntry {
            index: u64_at(p, 0),
            term: u64_at(p, 8),
            kind: p[16],
            data: p[ENTRY_FIELDS..].to_vec(),
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
            Ok(if kind == KIND_COMPACT {
                Decoded::Compact(m)
            } else {
                Decoded::Install(m)
            })
        }
        KIND_ENTRY | KIND_HARD_STATE | KIND_COMPACT | KIND_INSTALL => {
            Err(bad("record too short for its type"))
        }
        _ => Err(bad(&format!("unknown record type {}", rec.kind))),
    }?;
    Ok((group, d))
}

enum Decoded {
    Entry(LogEntry),
    HardState(HardState),
    Compact(SnapshotMarker),
    Install(SnapshotMarker),
}

/// Rebuilds one group's log from its records in WAL order, checking it as
/// it goes.
#[derive(Default)]
struct Replay {
    hard_state: HardState,
    /// The record that wrote the hard state.
    hs_lsn: Option<Lsn>,
    snapshot: Option<SnapshotMarker>,
    /// The record that wrote the snapshot marker.
    marker_lsn: Option<Lsn>,
    entries: VecDeque<LogEntry>,
    /// The WAL record that wrote each entry, parallel to `entries`.
    lsns: VecDeque<Lsn>,
}

impl Replay {
    fn apply(&mut self, lsn: Lsn, d: Decoded) -> Result<(), RaftLogError> {
        let bad = |what: String| RaftLogError::Inconsistent { lsn, what };
        match d {
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
                self.hs_lsn = Some(lsn);
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
                self.marker_lsn = Some(lsn);
            }
            Decoded::Install(m) => {
                self.entries.clear();
                self.lsns.clear();
                self.snapshot = Some(m);
                self.marker_lsn = Some(lsn);
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

/// One group's log as the store tracks it: what it holds and which WAL
/// records it still needs.
#[derive(Debug)]
struct GroupLog {
    hard_state: HardState,
    /// The record holding the current hard state (`None`: never written).
    hs_lsn: Option<Lsn>,
    snapshot: Option<SnapshotMarker>,
    /// The record holding the current snapshot marker.
    marker_lsn: Option<Lsn>,
    /// Index of the first entry in `meta`.
    first_index: u64,
    /// (WAL record, term) of each entry from `first_index` on.
    meta: VecDeque<(Lsn, u64)>,
}

impl Default for GroupLog {
    fn default() -> Self {
        GroupLog {
            hard_state: HardState::default(),
            hs_lsn: None,
            snapshot: None,
            marker_lsn: None,
            first_index: 1,
            meta: VecDeque::new(),
        }
    }
}

impl GroupLog {
    fn check(&self) {
        let snap = self.snapshot.as_ref().map_or(0, |s| s.index);
        assert_eq!(
            self.first_index,
            snap + 1,
            "entries start after the snapshot"
        );
        assert_eq!(self.snapshot.is_some(), self.marker_lsn.is_some());
    }

    fn last_index(&self) -> u64 {
        self.first_index + self.meta.len() as u64 - 1
    }

    fn term(&self, index: u64) -> Option<u64> {
        if let Some(s) = &self.snapshot {
            if s.index == index {
                return Some(s.term);
            }
        }
        let off = index.checked_sub(self.first_index)?;
        self.meta.get(off as usize).map(|&(_, t)| t)
    }

    /// The oldest WAL record this group still needs.
    fn oldest_needed(&self) -> Option<Lsn> {
        [
            self.meta.front().map(|&(l, _)| l),
            self.hs_lsn,
            self.marker_lsn,
        ]
        .into_iter()
        .flatten()
        .min()
    }
}

/// The Raft logs of many groups on one WAL: appends and replaces entries,
/// records hard states and snapshot markers, and compacts the WAL once no
/// group needs a segment.
#[derive(Debug)]
pub struct MultiRaftLog<V: Vfs> {
    wal: Wal<V>,
    groups: BTreeMap<GroupId, GroupLog>,
}

impl<V: Vfs> MultiRaftLog<V> {
    /// Opens (or creates) the log in `dir`.
    pub fn open(
        vfs: V,
        dir: &Path,
        cfg: WalConfig,
    ) -> Result<(Self, MultiRecovered), RaftLogError> {
        let mut replays: BTreeMap<GroupId, Replay> = BTreeMap::new();
        let (wal, report) = Wal::open_with(vfs, dir, cfg, |rec| {
            let lsn = rec.lsn;
            let (group, d) = decode(&rec)?;
            replays.entry(group).or_default().apply(lsn, d)
        })?;
        let mut groups = BTreeMap::new();
        let mut recovered = BTreeMap::new();
        for (id, replay) in replays {
            replay.finish(wal.next_lsn())?;
            let Replay {
                hard_state,
                hs_lsn,
                snapshot,
                marker_lsn,
                entries,
                lsns,
            } = replay;
            let first_index = entries
                .front()
                .map_or(snapshot.as_ref().map_or(1, |s| s.index + 1), |e| e.index);
            let g = GroupLog {
                hard_state,
                hs_lsn,
                snapshot: snapshot.clone(),
                marker_lsn,
                first_index,
                meta: lsns
                    .iter()
                    .zip(entries.iter())
                    .map(|(&l, e)| (l, e.term))
                    .collect(),
            };
            g.check();
            groups.insert(id, g);
            recovered.insert(
                id,
                GroupRecovered {
                    hard_state,
                    snapshot_marker: snapshot,
                    entries: entries.into(),
                },
            );
        }
        Ok((
            MultiRaftLog { wal, groups },
            MultiRecovered {
                groups: recovered,
                wal: report,
            },
        ))
    }

    /// The groups this log holds anything of.
    pub fn groups(&self) -> impl Iterator<Item = GroupId> + '_ {
        self.groups.keys().copied()
    }

    fn group(&self, group: GroupId) -> Option<&GroupLog> {
        self.groups.get(&group)
    }

    /// The index of group's last entry (its snapshot index if it has none;
    /// 0 for a group never written).
    pub fn last_index(&self, group: GroupId) -> u64 {
        self.group(group).map_or(0, GroupLog::last_index)
    }

    /// The index of the first entry held of a group.
    pub fn first_index(&self, group: GroupId) -> u64 {
        self.group(group).map_or(1, |g| g.first_index)
    }

    /// The term of a group's entry at `index`, if held (or it is the
    /// snapshot's).
    pub fn term(&self, group: GroupId, index: u64) -> Option<u64> {
        self.group(group)?.term(index)
    }

    /// The hard state last given for a group (durable after the next sync).
    pub fn hard_state(&self, group: GroupId) -> HardState {
        self.group(group)
            .map_or_else(HardState::default, |g| g.hard_state)
    }

    /// The snapshot marker last recorded for a group.
    pub fn snapshot_marker(&self, group: GroupId) -> Option<&SnapshotMarker> {
        self.group(group)?.snapshot.as_ref()
    }

    /// The WAL underneath (for its figures).
    pub fn wal(&self) -> &Wal<V> {
        &self.wal
    }

    /// Buffers a group's entries; `entries[0].index` may be at or below the
    /// last index, in which case the log from there is replaced. Durable
    /// after [`MultiRaftLog::sync`].
    pub fn append(&mut self, group: GroupId, entries: &[LogEntry]) -> Result<(), RaftLogError> {
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
        let g = self.groups.entry(group).or_default();
        let last = g.last_index();
        if head.index < g.first_index || head.index > last + 1 {
            return Err(rejected(format!(
                "group {group}: entry {} does not attach to log {}..={last}",
                head.index, g.first_index
            )));
        }
        if head.index <= last && head.index <= g.hard_state.commit {
            return Err(rejected(format!(
                "group {group}: entry {} would replace a committed entry (commit {})",
                head.index, g.hard_state.commit
            )));
        }
        if let Some(prev) = g.term(head.index - 1) {
            if head.term < prev {
                return Err(rejected(format!(
                    "group {group}: entry {} has term {} below its predecessor's {prev}",
                    head.index, head.term
                )));
            }
        }
        let encoded: Vec<Vec<u8>> = entries.iter().map(|e| encode_entry(group, e)).collect();
        let batch: Vec<(u8, &[u8])> = encoded.iter().map(|b| (KIND_G_ENTRY, &b[..])).collect();
        let first_lsn = Self::buffer(&mut self.wal, &batch)?;
        g.meta.truncate((head.index - g.first_index) as usize);
        for (i, e) in entries.iter().enumerate() {
            g.meta.push_back((first_lsn + i as u64, e.term));
        }
        Ok(())
    }

    /// Buffers a group's new hard state. The term never goes back, the
    /// commit index never goes back, and a vote cast in a term is never
    /// changed.
    pub fn set_hard_state(&mut self, group: GroupId, hs: HardState) -> Result<(), RaftLogError> {
        let g = self.groups.entry(group).or_default();
        let cur = g.hard_state;
        if hs == cur {
            return Ok(());
        }
        if hs.term >= MAX_INDEX || hs.vote >= MAX_INDEX || hs.commit >= MAX_INDEX {
            return Err(rejected(format!("hard state {hs:?} out of range")));
        }
        if hs.term < cur.term {
            return Err(rejected(format!(
                "group {group}: term goes back from {} to {}",
                cur.term, hs.term
            )));
        }
        if hs.term == cur.term && cur.vote != 0 && hs.vote != cur.vote {
            return Err(rejected(format!(
                "group {group}: vote in term {} already cast for {}, not {}",
                cur.term, cur.vote, hs.vote
            )));
        }
        if hs.commit < cur.commit {
            return Err(rejected(format!(
                "group {group}: commit goes back from {} to {}",
                cur.commit, hs.commit
            )));
        }
        let lsn = Self::buffer(
            &mut self.wal,
            &[(KIND_G_HARD_STATE, &encode_hard_state(group, &hs))],
        )?;
        g.hard_state = hs;
        g.hs_lsn = Some(lsn);
        Ok(())
    }

    /// Buffers `batch` in the WAL in order, with consecutive LSNs, and
    /// returns the first one. Records that do not fit beside those already
    /// buffered get room by writing and syncing the buffer first, so a batch
    /// larger than the whole buffer (a follower taking many entries in one
    /// `Ready` while it catches up) lands in several group commits instead of
    /// failing; a crash between them leaves a prefix of the batch, which
    /// replays as a shorter log. A record over the size limit is refused
    /// before anything is buffered.
    fn buffer(wal: &mut Wal<V>, batch: &[(u8, &[u8])]) -> Result<Lsn, RaftLogError> {
        let max = wal.config().max_record_size;
        if let Some((_, p)) = batch.iter().find(|(_, p)| p.len() > max) {
            return Err(WalError::RecordTooLarge { len: p.len(), max }.into());
        }
        let first = wal.next_lsn();
        let mut rest = batch;
        while !rest.is_empty() {
            let room = wal.room();
            let mut used = 0;
            let fit = rest
                .iter()
                .take_while(|(_, p)| {
                    used += FRAME_HEADER + p.len();
                    used <= room
                })
                .count();
            if fit == 0 {
                assert!(
                    wal.pending_bytes() > 0,
                    "a record within the size limit always fits an empty buffer"
                );
                wal.sync()?;
                continue;
            }
            wal.append(&rest[..fit])?;
            rest = &rest[fit..];
        }
        assert_eq!(wal.next_lsn(), first + batch.len() as u64);
        Ok(first)
    }

    /// Writes and fdatasyncs everything buffered, of every group (one
    /// group commit).
    pub fn sync(&mut self) -> Result<(), RaftLogError> {
        self.wal.sync()?;
        Ok(())
    }

    /// Records a snapshot of a group's applied state up to `marker.index`
    /// (which must be committed and held), syncs, and deletes the WAL
    /// segments no group needs any more. Entries after the marker are kept.
    pub fn compact(
        &mut self,
        group: GroupId,
        marker: SnapshotMarker,
    ) -> Result<usize, RaftLogError> {
        let g = self.groups.entry(group).or_default();
        let snap = g.snapshot.as_ref().map_or(0, |s| s.index);
        if marker.index < snap {
            return Err(rejected(format!(
                "group {group}: snapshot {} is older than the current one at {snap}",
                marker.index
            )));
        }
        if marker.index > g.hard_state.commit || marker.index > g.last_index() {
            return Err(rejected(format!(
                "group {group}: cannot compact to {}: commit {}, last index {}",
                marker.index,
                g.hard_state.commit,
                g.last_index()
            )));
        }
        if let Some(t) = g.term(marker.index) {
            if t != marker.term {
                return Err(rejected(format!(
                    "group {group}: snapshot term {} disagrees with entry {}'s term {t}",
                    marker.term, marker.index
                )));
            }
        }
        let drop_n = (marker.index + 1 - g.first_index) as usize;
        g.meta.drain(..drop_n);
        g.first_index = marker.index + 1;
        self.checkpoint(group, marker, KIND_G_COMPACT)
    }

    /// Replaces a group's whole log with a snapshot received from a leader:
    /// every entry is dropped and the log continues at `marker.index + 1`.
    /// Syncs, and deletes the WAL segments no group needs any more.
    pub fn install_snapshot(
        &mut self,
        group: GroupId,
        marker: SnapshotMarker,
    ) -> Result<usize, RaftLogError> {
        if marker.index >= MAX_INDEX || marker.term >= MAX_INDEX {
            return Err(rejected(format!("snapshot {} out of range", marker.index)));
        }
        let g = self.groups.entry(group).or_default();
        let snap = g.snapshot.as_ref().map_or(0, |s| s.index);
        if marker.index <= snap {
            return Err(rejected(format!(
                "group {group}: snapshot {} is not newer than the current one at {snap}",
                marker.index
            )));
        }
        g.meta.clear();
        g.first_index = marker.index + 1;
        self.checkpoint(group, marker, KIND_G_INSTALL)
    }

    /// Writes `group`'s hard state and new `marker` (its entries already
    /// trimmed in memory), rewrites the hard state and marker of every other
    /// group whose only copies sit below the oldest entry any group still
    /// needs (so an idle group never pins old segments by them), syncs, and
    /// deletes the segments nothing needs.
    fn checkpoint(
        &mut self,
        group: GroupId,
        marker: SnapshotMarker,
        kind: u8,
    ) -> Result<usize, RaftLogError> {
        // Everything before the checkpoint is durable first, so the marker
        // never lands ahead of the entries it keeps.
        self.wal.sync()?;
        let next = self.wal.next_lsn();
        let entry_floor = self
            .groups
            .values()
            .filter_map(|g| g.meta.front().map(|&(l, _)| l))
            .min()
            .unwrap_or(next)
            .min(next);
        let mut records: Vec<(GroupId, u8, Vec<u8>)> = Vec::new();
        let own = &self.groups[&group];
        records.push((
            group,
            KIND_G_HARD_STATE,
            encode_hard_state(group, &own.hard_state),
        ));
        records.push((group, kind, encode_marker(group, &marker)));
        for (&id, g) in &self.groups {
            if id == group {
                continue;
            }
            let pinned = [g.hs_lsn, g.marker_lsn]
                .into_iter()
                .flatten()
                .any(|l| l < entry_floor);
            if !pinned {
                continue;
            }
            if g.hs_lsn.is_some() {
                records.push((id, KIND_G_HARD_STATE, encode_hard_state(id, &g.hard_state)));
            }
            if let Some(m) = &g.snapshot {
                // Restated as a compaction: the group's entries after it stay.
                records.push((id, KIND_G_COMPACT, encode_marker(id, m)));
            }
        }
        let batch: Vec<(u8, &[u8])> = records.iter().map(|(_, k, b)| (*k, &b[..])).collect();
        let first = Self::buffer(&mut self.wal, &batch)?;
        self.wal.sync()?;
        for (i, (id, k, _)) in records.iter().enumerate() {
            let lsn = first + i as u64;
            let g = self.groups.get_mut(id).expect("a group just listed");
            if *k == KIND_G_HARD_STATE {
                g.hs_lsn = Some(lsn);
            } else {
                g.marker_lsn = Some(lsn);
            }
        }
        let g = self.groups.get_mut(&group).expect("the group checkpointed");
        g.snapshot = Some(marker);
        g.check();
        let keep_from = self
            .groups
            .values()
            .filter_map(GroupLog::oldest_needed)
            .min()
            .unwrap_or(next);
        assert!(
            keep_from >= entry_floor,
            "a group still needs a record below the entry floor after its checkpoint"
        );
        Ok(self.wal.truncate_prefix(keep_from)?)
    }
}

/// The Raft log of one group: a [`MultiRaftLog`] holding only
/// [`LEGACY_GROUP`].
#[derive(Debug)]
pub struct RaftLogStore<V: Vfs> {
    log: MultiRaftLog<V>,
}

const ONE: GroupId = LEGACY_GROUP;

impl<V: Vfs> RaftLogStore<V> {
    /// Opens (or creates) the log in `dir` with the default WAL configuration.
    pub fn open(vfs: V, dir: &Path) -> Result<(Self, Recovered), RaftLogError> {
        Self::open_with_config(vfs, dir, WalConfig::default())
    }

    /// Opens (or creates) the log in `dir`; a log holding a group other
    /// than [`LEGACY_GROUP`] is refused.
    pub fn open_with_config(
        vfs: V,
        dir: &Path,
        cfg: WalConfig,
    ) -> Result<(Self, Recovered), RaftLogError> {
        let (log, mut rec) = MultiRaftLog::open(vfs, dir, cfg)?;
        if let Some(other) = log.groups().find(|&g| g != ONE) {
            return Err(RaftLogError::Inconsistent {
                lsn: log.wal.next_lsn(),
                what: format!("holds group {other}; a single-group log holds only {ONE}"),
            });
        }
        let g = rec.groups.remove(&ONE).unwrap_or_default();
        Ok((
            RaftLogStore { log },
            Recovered {
                hard_state: g.hard_state,
                snapshot_marker: g.snapshot_marker,
                entries: g.entries,
                wal: rec.wal,
            },
        ))
    }

    /// The index of the last entry (the snapshot index if there is none).
    pub fn last_index(&self) -> u64 {
        self.log.last_index(ONE)
    }

    /// The index of the first entry held.
    pub fn first_index(&self) -> u64 {
        self.log.first_index(ONE)
    }

    /// The term of the entry at `index`, if held (or it is the snapshot's).
    pub fn term(&self, index: u64) -> Option<u64> {
        self.log.term(ONE, index)
    }

    /// The hard state last given (durable after the next sync).
    pub fn hard_state(&self) -> HardState {
        self.log.hard_state(ONE)
    }

    /// The snapshot marker last recorded.
    pub fn snapshot_marker(&self) -> Option<&SnapshotMarker> {
        self.log.snapshot_marker(ONE)
    }

    /// The WAL underneath (for its figures).
    pub fn wal(&self) -> &Wal<V> {
        self.log.wal()
    }

    /// See [`MultiRaftLog::append`].
    pub fn append(&mut self, entries: &[LogEntry]) -> Result<(), RaftLogError> {
        self.log.append(ONE, entries)
    }

    /// See [`MultiRaftLog::set_hard_state`].
    pub fn set_hard_state(&mut self, hs: HardState) -> Result<(), RaftLogError> {
        self.log.set_hard_state(ONE, hs)
    }

    /// See [`MultiRaftLog::sync`].
    pub fn sync(&mut self) -> Result<(), RaftLogError> {
        self.log.sync()
    }

    /// See [`MultiRaftLog::compact`].
    pub fn compact(&mut self, marker: SnapshotMarker) -> Result<usize, RaftLogError> {
        self.log.compact(ONE, marker)
    }

    /// See [`MultiRaftLog::install_snapshot`].
    pub fn install_snapshot(&mut self, marker: SnapshotMarker) -> Result<usize, RaftLogError> {
        self.log.install_snapshot(ONE, marker)
    }
}

#[cfg(test)]
mod tests;
