//! A node's durable state: the Raft log on synod-storage's WAL, the state
//! machine's data in its store file (`member/store.redb`, synod-store on
//! redb), and snapshot images received from a leader in their own
//! checksummed files.
//!
//! The store commits the applied Raft index with its data, so a boot opens
//! the store and replays only the WAL entries after that index: no image is
//! loaded. The WAL is never compacted past the store's durable applied index
//! (asserted in [`Disk::persist`]); a local snapshot whose index the store
//! has not made durable yet leaves the WAL alone until a later one. A
//! snapshot sent by a leader replaces the store's content in its open write
//! transaction; its image is written atomically (temporary file, fsync,
//! rename, fsync of the directory) *before* the WAL records the marker that
//! points at it, so if a crash comes before the store's next durable commit,
//! the boot installs the image into the store. Every [`Disk::persist`] ends
//! in one fdatasync of the WAL: one group commit for a whole `Ready`.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use synod_kv::{DynEngine, KvConfig, KvStore};
use synod_node::{GroupInit, Persist, ShardId, StateMachine};
use synod_raft::{ConfState, Entry, EntryKind, HardState, Init, SnapshotMeta};
use synod_storage::{
    HardState as DiskHardState, LogEntry, RaftLogError, RaftLogStore, RealVfs, SnapshotMarker,
    WalConfig,
};
use synod_store::{RedbEngine, StoreConfig};

const SNAP_MAGIC: &[u8; 8] = b"SYNODSNP";
const SNAP_VERSION: u32 = 1;
/// Largest snapshot image accepted when reading one back.
pub const MAX_SNAPSHOT_BYTES: u64 = 4 << 30;

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
    #[error("{path}: {err}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        err: std::io::Error,
    },
    /// A snapshot image is damaged or missing.
    #[error("snapshot {path}: {what}")]
    Snapshot {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// The state machine's store failed or is damaged.
    #[error("{0}")]
    Store(String),
}

pub use crate::layout::store_path;

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DiskError + '_ {
    move |err| DiskError::Io {
        path: path.to_path_buf(),
        err,
    }
}

/// The durable state of one node (one group today).
pub struct Disk {
    dir: PathBuf,
    log: RaftLogStore<RealVfs>,
    snap_index: u64,
    /// Bytes of the current snapshot image (for status).
    snap_bytes: u64,
    /// Where each fdatasync's latency goes (`/metrics`).
    pub wal_fsync: std::sync::Arc<crate::metrics::Histogram>,
}

/// What [`Disk::open`] found.
pub struct Opened {
    /// The disk, ready for writes.
    pub disk: Disk,
    /// How the group starts: `None` for a fresh data dir.
    pub init: Option<GroupInit>,
    /// The state machine over the store, and the log index its data holds.
    pub state: (StateMachine, u64),
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

impl Disk {
    /// Opens (creating if needed) the data dir and recovers what it holds:
    /// the store at its last durable commit, and the WAL.
    pub fn open(
        dir: &Path,
        shard: ShardId,
        segment_bytes: u64,
        store: &StoreConfig,
        max_sessions: usize,
    ) -> Result<Opened, DiskError> {
        let member = dir.join("member");
        fs::create_dir_all(&member).map_err(io(&member))?;
        let store_err = |e: &dyn std::fmt::Display| DiskError::Store(e.to_string());
        let (engine, meta) =
            RedbEngine::open(&store_path(dir), store).map_err(|e| store_err(&e))?;
        let mut applied = engine.applied();
        let kv = KvStore::open(
            Box::new(engine) as DynEngine,
            meta.kv_meta.as_deref(),
            KvConfig::default(),
        )
        .map_err(|e| store_err(&format!("{}: {e}", store_path(dir).display())))?;
        let mut sm = StateMachine::with_store(kv, &meta.extra, max_sessions)
            .map_err(|e| store_err(&format!("{}: {e}", store_path(dir).display())))?;
        let snap_dir = dir.join("snap");
        fs::create_dir_all(&snap_dir).map_err(io(&snap_dir))?;
        let wal_dir = dir.join("wal");
        let cfg = WalConfig {
            segment_size: segment_bytes,
            ..WalConfig::default()
        };
        let (log, rec) =
            RaftLogStore::open_with_config(RealVfs::new(), &wal_dir, cfg).map_err(|err| {
                DiskError::Log {
                    dir: wal_dir.clone(),
                    err,
                }
            })?;
        let fresh = rec.hard_state == DiskHardState::default()
            && rec.entries.is_empty()
            && rec.snapshot_marker.is_none();
        let mut disk = Disk {
            dir: dir.to_path_buf(),
            log,
            snap_index: 0,
            snap_bytes: 0,
            wal_fsync: Default::default(),
        };
        if fresh {
            if applied > 0 {
                return Err(store_err(&format!(
                    "{} holds data up to log index {applied} but the log in {} is empty",
                    store_path(dir).display(),
                    wal_dir.display()
                )));
            }
            return Ok(Opened {
                disk,
                init: None,
                state: (sm, 0),
            });
        }
        let mut snapshot = None;
        if let Some(m) = &rec.snapshot_marker {
            let conf: ConfState =
                postcard::from_bytes(&m.conf).map_err(|e| DiskError::Snapshot {
                    path: wal_dir.clone(),
                    what: format!("marker at {} has a bad configuration: {e}", m.index),
                })?;
            if m.index > applied {
                // A leader's snapshot the store had not made durable: install
                // its image into the store now, in one durable commit.
                let path = snap_path(&snap_dir, m.index, m.term);
                let data = read_image(&path, m.index, m.term)?;
                disk.snap_bytes = data.len() as u64;
                let registry =
                    synod_node::install_group_image(&mut sm, &data, &conf).map_err(|e| {
                        DiskError::Snapshot {
                            path: path.clone(),
                            what: e.to_string(),
                        }
                    })?;
                sm.commit(m.index, true, &registry)
                    .map_err(|e| store_err(&e))?;
                applied = m.index;
            }
            disk.snap_index = m.index;
            snapshot = Some(SnapshotMeta {
                index: m.index,
                term: m.term,
                conf_state: conf,
            });
        }
        let entries = rec
            .entries
            .into_iter()
            .map(from_disk_entry)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|what| DiskError::Snapshot {
                path: wal_dir.clone(),
                what,
            })?;
        let hs = rec.hard_state;
        Ok(Opened {
            disk,
            init: Some(GroupInit {
                shard,
                range: synod_node::KeyRange::all(),
                raft: Init::Restore {
                    hard_state: HardState {
                        term: hs.term,
                        vote: hs.vote,
                        // A commit index is written without a sync of its
                        // own, so the store may have applied (and made
                        // durable) entries past the one the WAL kept: they
                        // were committed, and every entry the store applied
                        // was synced into the WAL before its durable commit.
                        commit: hs.commit.max(applied),
                    },
                    snapshot,
                    entries,
                },
                snapshot_data: None,
            }),
            state: (sm, applied),
        })
    }

    /// The data dir.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Size of the latest snapshot image in bytes.
    pub fn snapshot_bytes(&self) -> u64 {
        self.snap_bytes
    }

    /// Makes every `Persist` of one `Ready` durable, ending in one fdatasync.
    /// `store_durable`: the store's durable applied index, past which the WAL
    /// must not be compacted.
    pub fn persist(&mut self, ps: &[Persist], store_durable: u64) -> Result<(), DiskError> {
        self.write(ps, store_durable)?;
        self.sync()
    }

    /// Writes every `Persist` of one `Ready` without waiting for the disk:
    /// a later [`Disk::sync`] (or [`Disk::persist`]) makes it durable.
    pub fn write(&mut self, ps: &[Persist], store_durable: u64) -> Result<(), DiskError> {
        let wal_dir = self.dir.join("wal");
        let logerr = |err| DiskError::Log {
            dir: wal_dir.clone(),
            err,
        };
        // Per Persist: snapshot, then entries, then the hard state — its commit
        // may cover entries that replace an uncommitted suffix in this very Persist.
        for p in ps {
            if let Some(s) = &p.snapshot {
                let matches = self.log.term(s.meta.index) == Some(s.meta.term);
                // Our log holds the snapshot's last entry (a local snapshot,
                // or a leader's that our log already reaches): compact only
                // once the store has made that index durable; the WAL keeps
                // the entries meanwhile and a later snapshot compacts them.
                let wait_for_store = matches && s.meta.index > store_durable;
                if s.meta.index > self.snap_index && !wait_for_store {
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
                            s.meta.index <= store_durable,
                            "WAL compaction to {} past the store's durable index {store_durable}",
                            s.meta.index
                        );
                        // Our log holds the snapshot's last entry: keep what follows.
                        let mut hs = self.log.hard_state();
                        if hs.commit < s.meta.index {
                            hs.commit = s.meta.index;
                            self.log.set_hard_state(hs).map_err(logerr)?;
                        }
                        self.log.compact(marker).map_err(logerr)?;
                    } else {
                        // Only a leader's snapshot gets here, and it carries its image
                        // (a local one, sent without it, always matches our log).
                        assert!(!s.data.is_empty(), "a snapshot to install has no image");
                        write_image(&snap_dir, s.meta.index, s.meta.term, &s.data)?;
                        self.log.install_snapshot(marker).map_err(logerr)?;
                    }
                    self.snap_index = s.meta.index;
                    self.snap_bytes = s.data.len() as u64;
                    remove_images_below(&snap_dir, s.meta.index);
                }
            }
            let entries: Vec<LogEntry> = p
                .entries
                .iter()
                .filter(|e| e.index > self.snap_index)
                .map(to_disk_entry)
                .collect();
            self.log.append(&entries).map_err(logerr)?;
            if let Some(hs) = p.hard_state {
                self.log.set_hard_state(to_disk_hs(hs)).map_err(logerr)?;
            }
        }
        Ok(())
    }

    /// Makes every write so far durable with one fdatasync.
    pub fn sync(&mut self) -> Result<(), DiskError> {
        let t0 = std::time::Instant::now();
        let synced = self.log.sync().map_err(|err| DiskError::Log {
            dir: self.dir.join("wal"),
            err,
        });
        self.wal_fsync.observe(t0.elapsed());
        synced
    }
}

fn snap_path(dir: &Path, index: u64, term: u64) -> PathBuf {
    dir.join(format!("{index:016x}-{term:016x}.snap"))
}

fn write_image(dir: &Path, index: u64, term: u64, data: &[u8]) -> Result<(), DiskError> {
    let path = snap_path(dir, index, term);
    let tmp = path.with_extension("tmp");
    let mut buf = Vec::with_capacity(data.len() + 40);
    buf.extend_from_slice(SNAP_MAGIC);
    buf.extend_from_slice(&SNAP_VERSION.to_le_bytes());
    buf.extend_from_slice(&index.to_le_bytes());
    buf.extend_from_slice(&term.to_le_bytes());
    buf.extend_from_slice(&(data.len() as u64).to_le_bytes());
    buf.extend_from_slice(data);
    let crc = crc32c::crc32c(&buf);
    buf.extend_from_slice(&crc.to_le_bytes());
    let mut f = File::create(&tmp).map_err(io(&tmp))?;
    f.write_all(&buf).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    drop(f);
    fs::rename(&tmp, &path).map_err(io(&path))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))?;
    Ok(())
}

/// Reads and verifies a snapshot image.
pub fn read_image(path: &Path, index: u64, term: u64) -> Result<Vec<u8>, DiskError> {
    let bad = |what: String| DiskError::Snapshot {
        path: path.to_path_buf(),
        what,
    };
    let mut f = File::open(path).map_err(io(path))?;
    let len = f.metadata().map_err(io(path))?.len();
    if len > MAX_SNAPSHOT_BYTES + 40 {
        return Err(bad(format!("{len} bytes is over the limit")));
    }
    let mut buf = Vec::with_capacity(len as usize);
    f.read_to_end(&mut buf).map_err(io(path))?;
    if buf.len() < 36 || &buf[..8] != SNAP_MAGIC {
        return Err(bad("not a synod snapshot image".into()));
    }
    let (body, crc) = buf.split_at(buf.len() - 4);
    let want = u32::from_le_bytes(crc.try_into().expect("4 bytes"));
    if crc32c::crc32c(body) != want {
        return Err(bad("checksum mismatch".into()));
    }
    let u64_at = |o: usize| u64::from_le_bytes(body[o..o + 8].try_into().expect("8 bytes"));
    let version = u32::from_le_bytes(body[8..12].try_into().expect("4 bytes"));
    if version != SNAP_VERSION {
        return Err(bad(format!("unknown version {version}")));
    }
    if u64_at(12) != index || u64_at(20) != term {
        return Err(bad(format!(
            "holds index {} term {}, expected {index} {term}",
            u64_at(12),
            u64_at(20)
        )));
    }
    let n = u64_at(28) as usize;
    if body.len() != 36 + n {
        return Err(bad("length mismatch".into()));
    }
    Ok(body[36..].to_vec())
}

fn remove_images_below(dir: &Path, keep: u64) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(idx) = name.split('-').next() else {
            continue;
        };
        if let Ok(i) = u64::from_str_radix(idx, 16) {
            if i < keep {
                let _ = fs::remove_file(e.path());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use synod_kv::{Command, PutRequest, RangeRequest};
    use synod_node::{Node, NodeConfig, Proposal};
    use synod_raft::{Snapshot, SnapshotMeta};

    fn put(i: u64) -> Proposal {
        Proposal {
            client: 0,
            seq: 0,
            cmd: Command::Put(PutRequest::new(format!("k{i:03}"), format!("v{i}"))),
        }
    }

    fn entry(term: u64, index: u64) -> Entry {
        Entry {
            term,
            index,
            kind: EntryKind::Normal,
            data: put(index).encode(),
        }
    }

    fn store_cfg() -> StoreConfig {
        StoreConfig {
            cache_bytes: 1 << 20,
            verify_on_open: true,
        }
    }

    fn conf() -> ConfState {
        ConfState {
            voters: [1u64].into_iter().collect(),
            ..ConfState::default()
        }
    }

    #[test]
    fn the_wal_is_compacted_only_up_to_the_store_durable_index_and_a_boot_replays_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let o = Disk::open(dir.path(), 1, 8 << 20, &store_cfg(), 100).unwrap();
        assert!(o.init.is_none());
        let (mut disk, (mut sm, applied)) = (o.disk, o.state);
        assert_eq!(applied, 0);
        let hs = HardState {
            term: 1,
            vote: 1,
            commit: 12,
        };
        let persist = Persist {
            shard: 1,
            hard_state: Some(hs),
            entries: (1..=12).map(|i| entry(1, i)).collect(),
            snapshot: None,
        };
        disk.persist(&[persist], 0).unwrap();
        for i in 1..=10 {
            sm.apply(i, &put(i));
        }
        sm.commit(10, true, &[]).unwrap();
        assert_eq!(sm.durable_applied(), Some(10));
        let local = |index: u64| Persist {
            shard: 1,
            snapshot: Some(Snapshot {
                meta: SnapshotMeta {
                    index,
                    term: 1,
                    conf_state: conf(),
                },
                data: Vec::new(),
            }),
            ..Persist::default()
        };
        // A local snapshot past the store's durable index leaves the WAL alone.
        disk.persist(&[local(11)], 10).unwrap();
        assert_eq!(disk.log.first_index(), 1);
        // Up to it, the WAL is compacted (and no image is written).
        disk.persist(&[local(8)], 10).unwrap();
        assert_eq!(disk.log.first_index(), 9);
        assert_eq!(fs::read_dir(dir.path().join("snap")).unwrap().count(), 0);
        drop((disk, sm));

        // The boot starts from the store and replays only what follows.
        let o = Disk::open(dir.path(), 1, 8 << 20, &store_cfg(), 100).unwrap();
        let (sm, applied) = o.state;
        assert_eq!(applied, 10);
        let kv = sm.kv();
        assert_eq!(kv.revision(), 11);
        let init = o.init.unwrap();
        let Init::Restore {
            snapshot, entries, ..
        } = &init.raft
        else {
            panic!("a restored log")
        };
        assert_eq!(snapshot.as_ref().map(|m| m.index), Some(8));
        assert_eq!(entries.first().map(|e| e.index), Some(9));
        assert!(init.snapshot_data.is_none(), "no image is loaded");
        let mut node =
            Node::with_state_machines(NodeConfig::default(), vec![(init, Some((sm, applied)))])
                .unwrap();
        while node.has_ready() {
            let rd = node.ready();
            node.advance(rd);
        }
        assert_eq!(node.applied(1), Some(12));
        let kv = node.state_machine(1).unwrap().kv();
        assert_eq!(kv.revision(), 13, "entries 11 and 12 applied once each");
        let r = kv.range(&RangeRequest::key("k012")).unwrap();
        assert_eq!(r.kvs[0].version, 1);
    }

    #[test]
    fn a_store_applied_past_the_wal_commit_index_boots_with_that_commit_index() {
        // The commit index is written without a sync of its own: a crash may
        // keep an older one in the WAL than the store has applied.
        let dir = tempfile::tempdir().unwrap();
        let o = Disk::open(dir.path(), 1, 8 << 20, &store_cfg(), 100).unwrap();
        let (mut disk, (mut sm, _)) = (o.disk, o.state);
        let persist = Persist {
            shard: 1,
            hard_state: Some(HardState {
                term: 1,
                vote: 1,
                commit: 4,
            }),
            entries: (1..=8).map(|i| entry(1, i)).collect(),
            snapshot: None,
        };
        disk.persist(&[persist], 0).unwrap();
        for i in 1..=6 {
            sm.apply(i, &put(i));
        }
        sm.commit(6, true, &[]).unwrap();
        drop((disk, sm));

        let o = Disk::open(dir.path(), 1, 8 << 20, &store_cfg(), 100).unwrap();
        assert_eq!(o.state.1, 6);
        let init = o.init.unwrap();
        let Init::Restore { hard_state, .. } = &init.raft else {
            panic!("a restored log")
        };
        assert_eq!(hard_state.commit, 6, "at least what the store applied");
        let mut node =
            Node::with_state_machines(NodeConfig::default(), vec![(init, Some(o.state))]).unwrap();
        while node.has_ready() {
            let rd = node.ready();
            node.advance(rd);
        }
        assert_eq!(node.applied(1), Some(6));
        let kv = node.state_machine(1).unwrap().kv();
        assert_eq!(kv.revision(), 7, "nothing applied twice");
    }

    #[test]
    fn a_leader_snapshot_the_store_did_not_make_durable_is_installed_from_its_image_on_boot() {
        let dir = tempfile::tempdir().unwrap();
        let o = Disk::open(dir.path(), 1, 8 << 20, &store_cfg(), 100).unwrap();
        let mut disk = o.disk;
        let mut leader = StateMachine::new(100);
        for i in 1..=30 {
            leader.apply(i, &put(i));
        }
        let snap = Snapshot {
            meta: SnapshotMeta {
                index: 30,
                term: 2,
                conf_state: conf(),
            },
            data: leader.snapshot(),
        };
        let p = Persist {
            shard: 1,
            hard_state: Some(HardState {
                term: 2,
                vote: 0,
                commit: 30,
            }),
            entries: Vec::new(),
            snapshot: Some(snap),
        };
        // The store never committed it (a crash came first).
        disk.persist(&[p], 0).unwrap();
        drop((disk, o.state));
        let o = Disk::open(dir.path(), 1, 8 << 20, &store_cfg(), 100).unwrap();
        let (sm, applied) = o.state;
        assert_eq!(applied, 30);
        assert_eq!(sm.kv().hash(), leader.kv().hash());
        assert_eq!(sm.durable_applied(), Some(30));
    }

    #[test]
    fn an_image_round_trips_and_a_flipped_byte_is_caught() {
        let dir = tempfile::tempdir().unwrap();
        write_image(dir.path(), 7, 2, b"state").unwrap();
        let p = snap_path(dir.path(), 7, 2);
        assert_eq!(read_image(&p, 7, 2).unwrap(), b"state");
        assert!(read_image(&p, 8, 2).is_err());
        let mut bytes = fs::read(&p).unwrap();
        bytes[38] ^= 1;
        fs::write(&p, bytes).unwrap();
        assert!(read_image(&p, 7, 2)
            .unwrap_err()
            .to_string()
            .contains("checksum"));
    }
}
