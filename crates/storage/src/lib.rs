//! Storage for synod behind one interface.
//!
//! - [`vfs`]: the file-system seam ([`Vfs`], [`VfsFile`]) with a real,
//!   fdatasync-backed implementation ([`RealVfs`]) and a deterministic,
//!   crash- and fault-injecting one ([`SimVfs`]).
//! - [`record`]: the on-disk segment and record format, and its decoder.
//! - [`raftlog`]: the Raft log (entries, hard state, snapshot marker) on
//!   the WAL, with its own plain types.
//! - [`wal`]: the write-ahead log of opaque typed records, with group commit,
//!   segment rotation and crash recovery.
//!
//! Everything above the VFS sees only the trait, so production and the
//! simulator run the same storage code.
#![deny(missing_docs)]

pub mod raftlog;
pub mod record;
pub mod vfs;
pub mod wal;

pub use raftlog::{HardState, LogEntry, RaftLogError, RaftLogStore, Recovered, SnapshotMarker};
pub use vfs::{
    CrashReport, FaultRates, RealFile, RealVfs, SimFile, SimVfs, Vfs, VfsError, VfsFile, VfsResult,
};
pub use wal::{GroupCommit, Lsn, Record, RecoveryReport, SegmentInfo, Wal, WalConfig, WalError};
