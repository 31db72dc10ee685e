//! Storage for synod behind one interface.
//!
//! - [`vfs`]: the file-system seam ([`Vfs`], [`VfsFile`]) with a real,
//!   fdatasync-backed implementation ([`RealVfs`]) and a deterministic,
//!   crash- and fault-injecting one ([`SimVfs`]).
//! - [`record`]: the on-disk segment and record format, and its decoder.
//! - [`wal`]: the write-ahead log of opaque typed records, with group commit
//!   ([`GroupCommit`]), segment rotation and crash recovery.
//! - [`raftlog`]: the Raft log (entries, hard state, snapshot marker) on the
//!   WAL, with its own plain types.
//!
//! Everything above the VFS sees only the trait, so production and the
//! simulator run the same storage code.
//!
//! # Guarantees
//! - A record is acknowledged only by a successful [`Wal::sync`], which
//!   writes and fdatasyncs; an acknowledged record survives any crash
//!   [`SimVfs`] can model (loss of unsynced writes, a torn last write, undone
//!   unsynced creates/renames/removes).
//! - Recovery returns only durable data (it syncs what it read before
//!   returning) and returns a prefix of what was appended.
//! - Damage to durable data is a typed error naming the file and byte offset,
//!   never silently dropped; only the newest segment may end in a torn write,
//!   and only when no valid record follows it.
//! - After a failed write or sync the WAL refuses further use until reopened.
//!
//! # Known limits
//! - Damage confined to the very last record of the newest segment, with
//!   nothing valid after it, cannot be told apart from a torn write and is
//!   truncated as one (that record may have been acknowledged).
//! - Conversely, a real disk that persisted sectors out of order within one
//!   unsynced write can leave a valid record after a torn one; recovery then
//!   reports corruption and refuses to start rather than guess.
//! - After fsync fails, Linux may have dropped the dirty pages while reads
//!   still show them; the caller should treat a sync error as fatal for the
//!   process. A reopen in the same boot trusts what the page cache shows.
//! - Lowering `max_record_size` below a record already on disk makes that
//!   record read as corrupt.
#![deny(missing_docs)]

pub mod raftlog;
pub mod record;
pub mod vfs;
pub mod wal;

pub use raftlog::{
    GroupId, GroupRecovered, HardState, LogEntry, MultiRaftLog, MultiRecovered, RaftLogError,
    RaftLogStore, Recovered, SnapshotMarker, LEGACY_GROUP,
};
pub use vfs::{
    CrashReport, FaultRates, RealFile, RealVfs, SimFile, SimVfs, Vfs, VfsError, VfsFile, VfsResult,
};
pub use wal::{GroupCommit, Lsn, Record, RecoveryReport, SegmentInfo, Wal, WalConfig, WalError};
