//! The state machine's multi-version data on disk.
//!
//! [`RedbEngine`] is a [`synod_kv::MvccEngine`] on a [redb] file (a
//! copy-on-write B-tree with MVCC read transactions, in the manner of bbolt),
//! so the same [`KvStore`] rules that the simulator runs in memory run over
//! data that lives on disk behind a bounded page cache.
//!
//! * Layout (etcd's): the `writes` table maps `(main, sub)` to the record
//!   (key included), so a put appends at the right edge of the tree and
//!   watch catch-up reads in revision order; an index in memory maps each
//!   key to the revisions of it the file holds, so a get or a range finds
//!   each key's revision at R without touching the file and then reads one
//!   record per key, a count reads nothing, and compaction walks the index
//!   and removes only what goes. The index is rebuilt by one scan of the file
//!   on open (every record's CRC checked on the way). `meta` holds the
//!   applied Raft index, the engine's digest and count, the store's
//!   revisions and leases ([`KvStore::meta_image`]) and the owner's opaque
//!   bytes.
//! * The writes of a batch of applied entries collect in one write
//!   transaction; [`commit`] writes the applied index in that same
//!   transaction, durable (fsync) or not, so after a crash the data and the
//!   index agree and the log is replayed from the index.
//! * Damage: every value carries a CRC32C over itself and its revision,
//!   checked on open and on every read ([`StoreError::Corrupt`] names file, table, key and
//!   revision); redb's page checksums are verified on open when
//!   [`StoreConfig::verify_on_open`] is set ([`StoreError::Integrity`]).
//!   Nothing here panics on what a file holds.

#![deny(missing_docs)]

mod codec;
mod engine;

use std::path::{Path, PathBuf};

pub use engine::{OpenedMeta, RedbEngine};
use synod_kv::{KvConfig, KvError, KvStore};

/// Settings of a store file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreConfig {
    /// Bytes of redb's page cache (the data beyond it stays on disk).
    pub cache_bytes: usize,
    /// Verify every page checksum when opening (reads the whole file).
    pub verify_on_open: bool,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            cache_bytes: 64 << 20,
            verify_on_open: true,
        }
    }
}

/// Why a store could not be opened, read or committed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// redb failed (IO, or damage it found itself).
    #[error("store {}: {source}", path.display())]
    Redb {
        /// The store file.
        path: PathBuf,
        /// redb's error.
        source: Box<redb::Error>,
    },
    /// A record failed its checksum or contradicts the other table.
    #[error("store {}: damaged entry in table `{table}` at key \"{key}\" revision {main}.{sub}: {what}", path.display())]
    Corrupt {
        /// The store file.
        path: PathBuf,
        /// The table holding the entry.
        table: &'static str,
        /// The key (escaped; empty when the damage hides it).
        key: String,
        /// The write's revision.
        main: i64,
        /// The write's place inside its revision.
        sub: i64,
        /// What is wrong.
        what: String,
    },
    /// redb's page checksums did not verify.
    #[error("store {}: integrity check failed: {detail}", path.display())]
    Integrity {
        /// The store file.
        path: PathBuf,
        /// redb's account.
        detail: String,
    },
    /// The metadata beside the data is damaged or disagrees with the data.
    #[error("store {}: bad metadata: {what}", path.display())]
    Meta {
        /// The store file.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// The store refused to go on (an earlier engine failure) or its
    /// metadata does not describe a valid key-value store.
    #[error("store {}: {source}", path.display())]
    Kv {
        /// The store file.
        path: PathBuf,
        /// The store's error.
        source: KvError,
    },
}

/// A store opened from its file.
pub struct Opened {
    /// The key-value state machine over the file's data.
    pub kv: KvStore<RedbEngine>,
    /// The Raft index of the last entry the data holds (0 for a new file).
    pub applied: u64,
    /// The owner's bytes of the last commit (empty for a new file).
    pub extra: Vec<u8>,
}

/// Opens (or creates) the store file at `path`, at its last commit.
pub fn open(path: &Path, config: &StoreConfig, kv_config: KvConfig) -> Result<Opened, StoreError> {
    let (engine, meta) = RedbEngine::open(path, config)?;
    let applied = engine.applied();
    let kv = KvStore::open(engine, meta.kv_meta.as_deref(), kv_config).map_err(|source| {
        StoreError::Kv {
            path: path.to_path_buf(),
            source,
        }
    })?;
    Ok(Opened {
        kv,
        applied,
        extra: meta.extra,
    })
}

/// Commits every write since the last commit together with the applied Raft
/// index and the owner's `extra` bytes (see [`RedbEngine::commit_batch`]).
/// Refused once the store has failed (its pending writes may be half a
/// command; they are dropped).
pub fn commit(
    kv: &mut KvStore<RedbEngine>,
    applied: u64,
    extra: &[u8],
    durable: bool,
) -> Result<(), StoreError> {
    if let Some(e) = kv.failure().cloned() {
        let path = kv.engine().path().to_path_buf();
        kv.engine_mut().abort()?;
        return Err(StoreError::Kv {
            path,
            source: KvError::Storage(e),
        });
    }
    let meta = kv.meta_image();
    kv.engine_mut().commit_batch(applied, &meta, extra, durable)
}

/// Checks the whole store: every record's checksum, the tables against each
/// other, the digest, and the state machine's invariants.
pub fn verify(kv: &KvStore<RedbEngine>) -> Result<(), StoreError> {
    kv.verify().map_err(|source| StoreError::Kv {
        path: kv.engine().path().to_path_buf(),
        source,
    })
}
