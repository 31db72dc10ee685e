//! Where a member keeps what on disk, and how big it is: the data dir's
//! layout in one place (etcd's shape: the store under `member/`).
//!
//! - `DATA_DIR/member/store.redb`: the state machine's store;
//! - `DATA_DIR/identity`: this member's id and its cluster's;
//! - the Raft log's WAL segments and snapshot images beside them.

use std::path::{Path, PathBuf};

/// The file in a data dir that records who this member is: its id and the
/// cluster's, fixed at its first start (later flags do not change them).
pub const IDENTITY: &str = "identity";

/// The state machine's store file inside a data dir.
pub fn store_path(dir: &Path) -> PathBuf {
    dir.join("member").join("store.redb")
}

/// Bytes of the state machine's store file (`member/store.redb`): what
/// etcd reports as its backend database size.
pub fn store_bytes(data_dir: &Path) -> u64 {
    std::fs::metadata(store_path(data_dir)).map_or(0, |m| m.len())
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
