//! A node's durable state, behind the VFS: the Raft logs of all its groups
//! on one WAL (synod-storage's [`MultiRaftLog`]), snapshot images received
//! from a leader in their own checksummed files, and each group's state
//! machine over its store, opened through [`Stores`] (redb files in the
//! server, [`MemStores`] in the simulator). The server runs it over the real
//! file system and the simulator over the simulated one: the same code.
//!
//! Each store commits its group's applied Raft index with its data, so a
//! boot opens the store and replays only the WAL entries after that index:
//! no image is loaded. A group's log is never compacted past its store's
//! durable applied index (asserted in [`Disk::write`]); a local snapshot
//! whose index the store has not made durable yet leaves the WAL alone
//! until a later one. A snapshot sent by a leader replaces the store's
//! content in its open write transaction; its image is written atomically
//! (temporary file, sync, rename, sync of the directory) *before* the WAL
//! records the marker that points at it, so if a crash comes before the
//! store's next durable commit, the boot installs the image into the store.
//! Every [`Disk::persist`] ends in one fdatasync of the WAL: one group
//! commit for a whole `Ready`, across every group.
#![deny(missing_docs)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use synod_node::{GroupInit, KeyRange, Persist, ShardId, StateMachine};
use synod_raft::{ConfState, Entry, EntryKind, HardState, Init, SnapshotMeta};
use synod_storage::{
    HardState as DiskHardState, LogEntry, MultiRaftLog, RaftLogError, SnapshotMarker, Vfs,
    VfsError, WalConfig,
};

mod image;
mod mem;

pub use image::{read_image, snap_path, MAX_SNAPSHOT_BYTES};
pub use mem::MemStores;

/// A storage failure. Any of them stops the node: after a failed fsync the
/// state of the disk is unknown.
#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    /// The Raft log failed or is damaged.
    #[error("raft log in {dir}: {err}")]
    Log {
        /// Its directory.
        dir: PathBuf,
        /// What went wrong.
        err: RaftLogError,
    },
    /// A file operation failed.
    #[error(transparent)]
    Vfs(#[from] VfsError),
    /// A snapshot image is damaged or missing.
    #[error("snapshot {path}: {what}")]
    Snapshot {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// The data dir does not hold what the configuration says it should.
    #[error("{0}")]
    Layout(String),
    /// The state machine's store failed or is damaged.
    #[error("store {path}: {source}")]
    Store {
        /// The store (its file, or what stands for it).
        path: PathBuf,
        /// What went wrong.
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
}

impl DiskError {
    /// A failure of the store at `path`.
    pub fn store(
        path: impl Into<PathBuf>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> DiskError {
        DiskError::Store {
            path: path.into(),
            source: source.into(),
        }
    }
}

/// Opens each group's state machine over its store.
pub trait Stores {
    /// Group `shard`'s state machine as of its store's last durable commit,
    /// and that commit's applied Raft index (0 for a new store).
    fn open(&mut self, shard: ShardId) -> Result<(StateMachine, u64), DiskError>;
}

/// One group as [`Disk::open`] found it.
pub struct OpenedGroup {
    /// The group.
    pub shard: ShardId,
    /// How the group starts: `None` when nothing of it was ever made
    /// durable (the caller bootstraps it or waits to be sent a snapshot).
    pub init: Option<GroupInit>,
    /// Its state machine over its store, and the log index its data holds.
    pub state: (StateMachine, u64),
}

/// What [`Disk::open`] found.
pub struct Opened<V: Vfs> {
    /// The disk, ready for writes.
    pub disk: Disk<V>,
    /// The groups asked for, in the order asked, then the groups the log
    /// holds that were not asked for (ranges split off since the
    /// configuration was written), by id.
    pub groups: Vec<OpenedGroup>,
}

/// Where a group's snapshot stands on disk.
#[derive(Clone, Copy, Debug, Default)]
struct Snap {
    index: u64,
    bytes: u64,
}

/// The durable state of one node: every group it hosts.
pub struct Disk<V: Vfs> {
    vfs: V,
    dir: PathBuf,
    log: MultiRaftLog<V>,
    snaps: BTreeMap<ShardId, Snap>,
}

fn to_disk_entry(e: &Entry) -> LogEntry {
    LogEntry {
        index: e.index,
        term: e.term,
        kind: match e.kind {
            EntryKind::Normal => 0,
            EntryKind::ConfChange => 1,
        },
        data: e.data.clone(),
    }
}

fn from_disk_entry(e: LogEntry) -> Result<Entry, String> {
    let kind = match e.kind {
        0 => EntryKind::Normal,
        1 => EntryKind::ConfChange,
        k => return Err(format!("entry {} has unknown kind {k}", e.index)),
    };
    Ok(Entry {
        term: e.term,
        index: e.index,
        kind,
        data: e.data,
    })
}

fn to_disk_hs(hs: HardState) -> DiskHardState {
    DiskHardState {
        term: hs.term,
        vote: hs.vote,
        commit: hs.commit,
    }
}

impl<V: Vfs> Disk<V> {
    /// Opens (creating if needed) the data dir `dir` and recovers each of
    /// `groups`: its store at its last durable commit, and its log; and so
    /// for every other group the log holds (a split made it; its range is
    /// in its state, not the configuration).
    pub fn open(
        vfs: V,
        dir: &Path,
        groups: &[(ShardId, KeyRange)],
        wal: WalConfig,
        stores: &mut dyn Stores,
    ) -> Result<Opened<V>, DiskError> {
        let snap_dir = dir.join("snap");
        vfs.create_dir_all(&snap_dir)?;
        let wal_dir = dir.join("wal");
        let (log, mut rec) =
            MultiRaftLog::open(vfs.clone(), &wal_dir, wal).map_err(|err| DiskError::Log {
                dir: wal_dir.clone(),
                err,
            })?;
        let found: Vec<(ShardId, Option<KeyRange>)> = groups
            .iter()
            .map(|(s, r)| (*s, Some(r.clone())))
            .chain(
                rec.groups
                    .keys()
                    .filter(|g| !groups.iter().any(|(s, _)| s == *g))
                    .map(|g| (*g, None)),
            )
            .collect();
        let mut disk = Disk {
            vfs,
            dir: dir.to_path_buf(),
            log,
            snaps: BTreeMap::new(),
        };
        let mut opened = Vec::with_capacity(found.len());
        for (shard, range) in &found {
            let (mut sm, mut applied) = stores.open(*shard)?;
            let Some(g) = rec.groups.remove(shard) else {
                if applied > 0 {
                    return Err(DiskError::Layout(format!(
                        "group {shard}'s store holds data up to log index {applied} but the log in {} holds nothing of it",
                        wal_dir.display()
                    )));
                }
                opened.push(OpenedGroup {
                    shard: *shard,
                    init: None,
                    state: (sm, 0),
                });
                continue;
            };
            let mut snapshot = None;
            if let Some(m) = &g.snapshot_marker {
                let conf: ConfState =
                    postcard::from_bytes(&m.conf).map_err(|e| DiskError::Snapshot {
                        path: wal_dir.clone(),
                        what: format!(
                            "group {shard}: marker at {} has a bad configuration: {e}",
                            m.index
                        ),
                    })?;
                let mut snap = Snap {
                    index: m.index,
                    bytes: 0,
                };
                if m.index > applied {
                    // A leader's snapshot the store had not made durable:
                    // install its image into the store now, in one durable
                    // commit.
                    let path = snap_path(&snap_dir, *shard, m.index, m.term);
                    let data = read_image(&disk.vfs, &path, m.index, m.term)?;
                    snap.bytes = data.len() as u64;
                    let registry =
                        synod_node::install_group_image(&mut sm, &data, &conf).map_err(|e| {
                            DiskError::Snapshot {
                                path: path.clone(),
                                what: e.to_string(),
                            }
                        })?;
                    sm.commit(m.index, true, &registry)
                        .map_err(|e| DiskError::store(format!("of group {shard}"), e))?;
                    applied = m.index;
                }
                disk.snaps.insert(*shard, snap);
                snapshot = Some(SnapshotMeta {
                    index: m.index,
                    term: m.term,
                    conf_state: conf,
                });
            }
            let entries = g
                .entries
                .into_iter()
                .map(from_disk_entry)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|what| DiskError::Snapshot {
                    path: wal_dir.clone(),
                    what,
                })?;
            let hs = g.hard_state;
            opened.push(OpenedGroup {
                shard: *shard,
                init: Some(GroupInit {
                    shard: *shard,
                    range: range.clone(),
                    raft: Init::Restore {
                        hard_state: HardState {
                            term: hs.term,
                            vote: hs.vote,
                            // A commit index is written without a sync of
                            // its own, so the store may have applied (and
                            // made durable) entries past the one the WAL
                            // kept: they were committed, and every entry the
                            // store applied was synced into the WAL before
                            // its durable commit.
                            commit: hs.commit.max(applied),
                        },
                        snapshot,
                        entries,
                    },
                    snapshot_data: None,
                }),
                state: (sm, applied),
            });
        }
        Ok(Opened {
            disk,
            groups: opened,
        })
    }

    /// The data dir.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Bytes of the latest snapshot images, summed over the groups.
    pub fn snapshot_bytes(&self) -> u64 {
        self.snaps.values().map(|s| s.bytes).sum()
    }

    /// The Raft log underneath (for figures and tests).
    pub fn log(&self) -> &MultiRaftLog<V> {
        &self.log
    }

    /// Makes every `Persist` of one `Ready` durable, ending in one fdatasync.
    /// `store_durable(shard)`: that group's store's durable applied index,
    /// past which its log must not be compacted.
    pub fn persist(
        &mut self,
        ps: &[Persist],
        store_durable: &dyn Fn(ShardId) -> u64,
    ) -> Result<(), DiskError> {
        self.write(ps, store_durable)?;
        self.sync()
    }

    /// Writes every `Persist` of one `Ready` without waiting for the disk:
    /// a later [`Disk::sync`] (or [`Disk::persist`]) makes it durable.
    pub fn write(
        &mut self,
        ps: &[Persist],
        store_durable: &dyn Fn(ShardId) -> u64,
    ) -> Result<(), DiskError> {
        let wal_dir = self.dir.join("wal");
        let logerr = |err| DiskError::Log {
            dir: wal_dir.clone(),
            err,
        };
        // Per Persist: snapshot, then entries, then the hard state — its commit
        // may cover entries that replace an uncommitted suffix in this very Persist.
        for p in ps {
            let g = p.shard;
            let snap = self.snaps.get(&g).copied().unwrap_or_default();
            if let Some(s) = &p.snapshot {
                let durable = store_durable(g);
                let matches = self.log.term(g, s.meta.index) == Some(s.meta.term);
                // Our log holds the snapshot's last entry (a local snapshot,
                // or a leader's that our log already reaches): compact only
                // once the store has made that index durable; the WAL keeps
                // the entries meanwhile and a later snapshot compacts them.
                let wait_for_store = matches && s.meta.index > durable;
                if s.meta.index > snap.index && !wait_for_store {
                    let snap_dir = self.dir.join("snap");
                    let marker = SnapshotMarker {
                        index: s.meta.index,
                        term: s.meta.term,
                        conf: postcard::to_allocvec(&s.meta.conf_state)
                            .expect("encoding into a Vec cannot fail"),
                    };
                    if matches {
                        // The store holds this state durably: no image needed.
                        assert!(
                            s.meta.index <= durable,
                            "group {g}: WAL compaction to {} past the store's durable index {durable}",
                            s.meta.index
                        );
                        // Our log holds the snapshot's last entry: keep what follows.
                        let mut hs = self.log.hard_state(g);
                        if hs.commit < s.meta.index {
                            hs.commit = s.meta.index;
                            self.log.set_hard_state(g, hs).map_err(logerr)?;
                        }
                        self.log.compact(g, marker).map_err(logerr)?;
                    } else {
                        // Only a leader's snapshot gets here, and it carries its image
                        // (a local one, sent without it, always matches our log).
                        assert!(!s.data.is_empty(), "a snapshot to install has no image");
                        image::write_image(
                            &self.vfs,
                            &snap_dir,
                            g,
                            s.meta.index,
                            s.meta.term,
                            &s.data,
                        )?;
                        self.log.install_snapshot(g, marker).map_err(logerr)?;
                    }
                    self.snaps.insert(
                        g,
                        Snap {
                            index: s.meta.index,
                            bytes: s.data.len() as u64,
                        },
                    );
                    image::remove_images_below(&self.vfs, &snap_dir, g, s.meta.index);
                }
            }
            let snap_index = self.snaps.get(&g).map_or(0, |s| s.index);
            let entries: Vec<LogEntry> = p
                .entries
                .iter()
                .filter(|e| e.index > snap_index)
                .map(to_disk_entry)
                .collect();
            self.log.append(g, &entries).map_err(logerr)?;
            if let Some(hs) = p.hard_state {
                self.log.set_hard_state(g, to_disk_hs(hs)).map_err(logerr)?;
            }
        }
        Ok(())
    }

    /// Makes every write so far, of every group, durable with one fdatasync.
    pub fn sync(&mut self) -> Result<(), DiskError> {
        self.log.sync().map_err(|err| DiskError::Log {
            dir: self.dir.join("wal"),
            err,
        })
    }
}

#[cfg(test)]
mod tests;
