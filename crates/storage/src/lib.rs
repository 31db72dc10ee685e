//! Storage for synod behind one interface.
//!
//! - [`vfs`]: the file-system seam ([`Vfs`], [`VfsFile`]) with a real,
//!   fdatasync-backed implementation ([`RealVfs`]) and a deterministic,
//!   crash- and fault-injecting one ([`SimVfs`]).
//!
//! Everything above the VFS sees only the trait, so production and the
//! simulator run the same storage code.
#![deny(missing_docs)]

pub mod vfs;

pub use vfs::{
    CrashReport, FaultRates, RealFile, RealVfs, SimFile, SimVfs, Vfs, VfsError, VfsFile, VfsResult,
};
