//! Where a member keeps what on disk, and how big it is: the data dir's
//! layout in one place (etcd's shape: the store under `member/`).
//!
//! - `DATA_DIR/member/store.redb` (`store-g<id>.redb` for groups after the
//!   first): each group's state machine store;
//! - `DATA_DIR/identity`: this member's id and its cluster's;
//! - the Raft log's WAL segments and snapshot images beside them.

use std::path::{Path, PathBuf};

/// The file in a data dir that records who this member is: its id and the
/// cluster's, fixed at its first start (later flags do not change them).
pub const IDENTITY: &str = "identity";

/// Group `shard`'s store file inside a data dir: `member/store.redb` for
/// the first group (its name from before groups), `member/store-g<id>.redb`
/// for the others.
pub fn store_path(dir: &Path, shard: u64) -> PathBuf {
    let name = if shard == synod_storage::LEGACY_GROUP {
        "store.redb".to_string()
    } else {
        format!("store-g{shard:x}.redb")
    };
    dir.join("member").join(name)
}

/// Every group's store file inside a data dir.
pub fn store_paths(dir: &Path) -> Vec<PathBuf> {
    let member = dir.join("member");
    let Ok(rd) = std::fs::read_dir(&member) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = rd
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("store") && n.ends_with(".redb"))
        })
        .collect();
    paths.sort();
    paths
}

/// Bytes of the state machines' store files (`member/store*.redb`): what
/// etcd reports as its backend database size.
pub fn store_bytes(data_dir: &Path) -> u64 {
    store_paths(data_dir)
        .iter()
        .map(|p| std::fs::metadata(p).map_or(0, |m| m.len()))
        .sum()
}

/// Bytes of everything a member keeps on disk: the store file, the Raft
/// log's WAL segments and any snapshot images.
pub fn data_dir_bytes(data_dir: &Path) -> u64 {
    fn walk(dir: &Path, depth: u32) -> u64 {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return 0;
        };
        let mut n = 0;
        for e in rd.flatten() {
            match e.metadata() {
                Ok(m) if m.is_file() => n += m.len(),
                Ok(m) if m.is_dir() && depth > 0 => n += walk(&e.path(), depth - 1),
                _ => {}
            }
        }
        n
    }
    walk(data_dir, 3)
}
