//! The server's side of a node's durable state: [`synod_disk::Disk`] over
//! the real file system, with each group's state machine in its own redb
//! store file (`member/store.redb` for the first group, as before groups
//! existed; `member/store-g<id>.redb` for the others). One file per group:
//! each group commits its applied index with its data on its own schedule,
//! and a group's file can go whole the day its range leaves the node.

use std::path::Path;

use synod_kv::{DynEngine, KvConfig, KvStore};
use synod_node::{KeyRange, ShardId, StateMachine};
use synod_storage::{RealVfs, WalConfig};
use synod_store::{RedbEngine, StoreConfig};

pub use synod_disk::{DiskError, OpenedGroup, MAX_SNAPSHOT_BYTES};

/// A node's durable state on the real file system.
pub type Disk = synod_disk::Disk<RealVfs>;

/// What [`open`] found.
pub type Opened = synod_disk::Opened<RealVfs>;

pub use crate::layout::store_path;

/// Opens each group's state machine over its redb store file.
pub struct RedbStores<'a> {
    dir: &'a Path,
    cfg: &'a StoreConfig,
    max_sessions: usize,
}

impl synod_disk::Stores for RedbStores<'_> {
    fn open(&mut self, shard: ShardId) -> Result<(StateMachine, u64), DiskError> {
        let path = store_path(self.dir, shard);
        let (engine, meta) =
            RedbEngine::open(&path, self.cfg).map_err(|e| DiskError::store(&path, e))?;
        let applied = engine.applied();
        let kv = KvStore::open(
            Box::new(engine) as DynEngine,
            meta.kv_meta.as_deref(),
            KvConfig::default(),
        )
        .map_err(|e| DiskError::store(&path, e))?;
        let sm = StateMachine::with_store(kv, &meta.extra, self.max_sessions)
            .map_err(|e| DiskError::store(&path, e))?;
        Ok((sm, applied))
    }
}

/// Opens (creating if needed) the data dir and recovers every group in
/// `groups`: its store at its last durable commit, and its log.
pub fn open(
    dir: &Path,
    groups: &[(ShardId, KeyRange)],
    segment_bytes: u64,
    store: &StoreConfig,
    max_sessions: usize,
) -> Result<Opened, DiskError> {
    let member = dir.join("member");
    std::fs::create_dir_all(&member)
        .map_err(|e| synod_storage::VfsError::from_io("create_dir_all", &member, e))?;
    let cfg = WalConfig {
        segment_size: segment_bytes,
        ..WalConfig::default()
    };
    let mut stores = RedbStores {
        dir,
        cfg: store,
        max_sessions,
    };
    synod_disk::Disk::open(RealVfs::new(), dir, groups, cfg, &mut stores)
}

/// Where the state machines of groups the node creates (a split's new
/// range) live: a fresh store file each, `member/store-g<id>.redb`. A
/// store that cannot be opened stops the member, as any storage failure.
pub fn store_factory(
    dir: std::path::PathBuf,
    cfg: StoreConfig,
    max_sessions: usize,
) -> synod_node::StoreFactory {
    Box::new(move |shard| {
        let mut stores = RedbStores {
            dir: &dir,
            cfg: &cfg,
            max_sessions,
        };
        match synod_disk::Stores::open(&mut stores, shard) {
            Ok((sm, _)) => sm,
            Err(e) => panic!("synod: cannot open the store of new group {shard:x}: {e}"),
        }
    })
}

/// Reads and verifies a snapshot image file.
pub fn read_image(path: &Path, index: u64, term: u64) -> Result<Vec<u8>, DiskError> {
    synod_disk::read_image(&RealVfs::new(), path, index, term)
}

#[cfg(test)]
mod tests {
    use super::*;
    use synod_kv::{Command, PutRequest};
    use synod_node::{Persist, Proposal};
    use synod_raft::{Entry, EntryKind, HardState};

    fn put(i: u64) -> Proposal {
        Proposal {
            client: 0,
            seq: 0,
            cmd: Command::Put(PutRequest::new(format!("k{i:03}"), format!("v{i}"))),
        }
    }

    #[test]
    fn each_group_boots_from_its_own_store_file_and_replays_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = StoreConfig {
            cache_bytes: 1 << 20,
            verify_on_open: true,
        };
        let groups = vec![
            (1, KeyRange::new(Vec::new(), b"m".to_vec())),
            (2, KeyRange::new(b"m".to_vec(), Vec::new())),
        ];
        let mut o = open(dir.path(), &groups, 8 << 20, &cfg, 100).unwrap();
        let (mut sm2, _) = o.groups.remove(1).state;
        let persist = Persist {
            shard: 2,
            hard_state: Some(HardState {
                term: 1,
                vote: 1,
                commit: 6,
            }),
            entries: (1..=6)
                .map(|i| Entry {
                    term: 1,
                    index: i,
                    kind: EntryKind::Normal,
                    data: put(i).encode(),
                })
                .collect(),
            snapshot: None,
        };
        o.disk.persist(&[persist], &|_| 0).unwrap();
        for i in 1..=6 {
            sm2.apply(i, &put(i));
            // Without a crash, the commits that were not durable stay too.
            sm2.commit(i, i == 4, &[]).unwrap();
        }
        drop((o, sm2));
        assert!(store_path(dir.path(), 1).exists());
        assert!(store_path(dir.path(), 2).ends_with("member/store-g2.redb"));
        let o = open(dir.path(), &groups, 8 << 20, &cfg, 100).unwrap();
        assert_eq!(o.groups[0].state.1, 0);
        assert!(o.groups[0].init.is_none());
        assert_eq!(o.groups[1].state.1, 6, "group 2's store kept its commits");
        assert_eq!(o.groups[1].state.0.kv().revision(), 7);
        assert!(o.groups[1].init.is_some(), "and its log");
    }
}
