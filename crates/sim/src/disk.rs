//! A simulated node's disk: what a node persisted, with power-loss semantics.
//!
//! Writes are appended in order, as to a write-ahead log, and become durable
//! on `sync`. A crash keeps the synced state plus a random prefix of the
//! unsynced writes — possibly tearing the first write it does not keep whole,
//! at entry granularity — exactly what an append-only log on a real disk can
//! show after power loss. Nothing that was not synced had any visible effect
//! (a node sends the messages of a Ready only after syncing it), so every
//! state a crash leaves is one the protocol must cope with.

use std::collections::BTreeMap;

use rand::Rng;
use synod_node::{Persist, ShardId};
use synod_raft::{Entry, HardState, Snapshot, SnapshotMeta};

/// The durable image: what a restarted node recovers.
#[derive(Clone, Debug, Default)]
pub struct DiskImage {
    /// Last hard state written.
    pub hard_state: HardState,
    /// Latest snapshot, if one was ever stored.
    pub snapshot: Option<Snapshot>,
    /// Entries after the snapshot, contiguous.
    pub entries: Vec<Entry>,
}

impl DiskImage {
    fn apply(&mut self, p: &Persist) {
        if let Some(s) = &p.snapshot {
            self.install_snapshot(s);
        }
        self.append(&p.entries);
        if let Some(hs) = p.hard_state {
            self.hard_state = hs;
        }
    }

    fn snapshot_index(&self) -> u64 {
        self.snapshot.as_ref().map_or(0, |s| s.meta.index)
    }

    fn install_snapshot(&mut self, s: &Snapshot) {
        if self.snapshot.is_some() && s.meta.index <= self.snapshot_index() {
            return;
        }
        // Keep the entries after the snapshot only if the log agrees with it.
        let keep = self
            .entries
            .iter()
            .any(|e| e.index == s.meta.index && e.term == s.meta.term);
        if keep {
            self.entries.retain(|e| e.index > s.meta.index);
        } else {
            self.entries.clear();
        }
        self.snapshot = Some(s.clone());
    }

    fn append(&mut self, entries: &[Entry]) {
        let Some(first) = entries.first() else { return };
        let snap = self.snapshot_index();
        // Entries at or below the snapshot are already covered by it.
        let entries: Vec<&Entry> = entries.iter().filter(|e| e.index > snap).collect();
        let Some(first_new) = entries.first() else {
            assert!(first.index <= snap);
            return;
        };
        let last = self.entries.last().map_or(snap, |e| e.index);
        assert!(
            first_new.index <= last + 1,
            "append leaves a gap: first {} after last {last}",
            first_new.index
        );
        self.entries.retain(|e| e.index < first_new.index);
        for e in entries {
            self.entries.push(e.clone());
        }
        for w in self.entries.windows(2) {
            assert_eq!(w[0].index + 1, w[1].index, "stored log is contiguous");
        }
    }

    /// The snapshot's metadata, for restoring Raft.
    pub fn snapshot_meta(&self) -> Option<SnapshotMeta> {
        self.snapshot.as_ref().map(|s| s.meta.clone())
    }
}

/// One node's disk.
#[derive(Clone, Debug, Default)]
pub struct SimDisk {
    /// What each group made durable (one log for all groups: a sync covers
    /// every group's writes of a Ready, and a crash tears across them).
    durable: BTreeMap<ShardId, DiskImage>,
    unsynced: Vec<Persist>,
    /// Syncs performed.
    pub syncs: u64,
    /// Crashes suffered.
    pub crashes: u64,
    /// Crashes that kept part of the unsynced writes (torn tails).
    pub torn: u64,
}

impl SimDisk {
    /// Queues a write; it is durable only after [`SimDisk::sync`].
    pub fn write(&mut self, p: Persist) {
        assert!(self.unsynced.len() < 1 << 16, "unbounded unsynced writes");
        self.unsynced.push(p);
    }

    /// Makes every queued write durable.
    pub fn sync(&mut self) {
        for p in self.unsynced.drain(..) {
            self.durable.entry(p.shard).or_default().apply(&p);
        }
        self.syncs += 1;
    }

    /// Whether writes are waiting for a sync.
    pub fn dirty(&self) -> bool {
        !self.unsynced.is_empty()
    }

    /// Power loss: keeps a random prefix of the unsynced writes, possibly
    /// tearing the next one.
    pub fn crash(&mut self, rng: &mut impl Rng) {
        self.crashes += 1;
        let pending = std::mem::take(&mut self.unsynced);
        if pending.is_empty() {
            return;
        }
        let whole = rng.random_range(0..=pending.len());
        for p in &pending[..whole] {
            self.durable.entry(p.shard).or_default().apply(p);
        }
        if whole < pending.len() && rng.random_bool(0.5) {
            // A torn write: the snapshot (if any) and a prefix of the entries
            // made it; the hard state, written last, did not.
            let p = &pending[whole];
            let keep = rng.random_range(0..=p.entries.len());
            let torn = Persist {
                shard: p.shard,
                hard_state: None,
                entries: p.entries[..keep].to_vec(),
                snapshot: p.snapshot.clone(),
            };
            self.durable.entry(torn.shard).or_default().apply(&torn);
            self.torn += 1;
        }
    }

    /// What of group `shard` survives a crash right now (`None`: nothing
    /// was ever made durable for it).
    pub fn image(&self, shard: ShardId) -> Option<&DiskImage> {
        self.durable.get(&shard)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use synod_raft::EntryKind;

    fn e(index: u64, term: u64) -> Entry {
        Entry {
            term,
            index,
            kind: EntryKind::Normal,
            data: vec![index as u8],
        }
    }

    fn p(entries: Vec<Entry>, commit: Option<u64>) -> Persist {
        Persist {
            shard: 0,
            hard_state: commit.map(|c| HardState {
                term: 1,
                vote: 1,
                commit: c,
            }),
            entries,
            snapshot: None,
        }
    }

    #[test]
    fn unsynced_writes_are_lost_and_synced_ones_survive() {
        let mut d = SimDisk::default();
        d.write(p(vec![e(1, 1), e(2, 1)], Some(1)));
        d.sync();
        d.write(p(vec![e(3, 1)], Some(3)));
        // A crash that keeps nothing unsynced: draw until the rng says so.
        let mut lost_once = false;
        for seed in 0..64 {
            let mut c = d.clone();
            c.crash(&mut rand_pcg::Pcg64Mcg::seed_from_u64(seed));
            assert!(
                c.image(0).unwrap().entries.len() >= 2,
                "synced entries survive"
            );
            assert!(c.image(0).unwrap().hard_state.commit >= 1);
            if c.image(0).unwrap().entries.len() == 2 {
                lost_once = true;
                assert_eq!(c.image(0).unwrap().hard_state.commit, 1);
            }
        }
        assert!(lost_once, "some crash loses the unsynced write");
    }

    #[test]
    fn later_entries_overwrite_a_suffix() {
        let mut d = SimDisk::default();
        d.write(p(vec![e(1, 1), e(2, 1), e(3, 1)], None));
        d.write(p(vec![e(2, 2)], None));
        d.sync();
        let terms: Vec<_> = d
            .image(0)
            .unwrap()
            .entries
            .iter()
            .map(|e| (e.index, e.term))
            .collect();
        assert_eq!(terms, vec![(1, 1), (2, 2)]);
    }

    #[test]
    #[should_panic(expected = "gap")]
    fn a_gap_is_a_bug() {
        let mut d = SimDisk::default();
        d.write(p(vec![e(1, 1)], None));
        d.write(p(vec![e(3, 1)], None));
        d.sync();
    }
}
