//! The file-system seam: a small trait that the WAL and everything above it use
//! for all storage, so production ([`RealVfs`]) and simulation ([`SimVfs`]) run
//! the same storage code.
//!
//! Durability contract (the one POSIX gives, and the one [`SimVfs`] enforces):
//! - bytes written to a file are durable only after [`VfsFile::sync_data`]
//!   returns `Ok` (the file's length counts as data);
//! - creating, renaming or removing a file is durable only after
//!   [`Vfs::sync_dir`] on its directory returns `Ok`;
//! - after a failed sync nothing may be assumed about the unsynced state: the
//!   caller must stop using what it wrote and recover from durable state.

mod real;
mod sim;

pub use real::{RealFile, RealVfs};
pub use sim::{CrashReport, FaultRates, SimFile, SimVfs};

use std::io;
use std::path::{Path, PathBuf};

/// An error from a [`Vfs`] operation. Every variant names the operation and
/// the path it was applied to.
#[derive(Debug, thiserror::Error)]
pub enum VfsError {
    /// The path does not exist.
    #[error("{op} {}: not found", path.display())]
    NotFound {
        /// The operation that failed.
        op: &'static str,
        /// The path it was applied to.
        path: PathBuf,
    },
    /// The path already exists (from [`Vfs::create`]).
    #[error("{op} {}: already exists", path.display())]
    AlreadyExists {
        /// The operation that failed.
        op: &'static str,
        /// The path it was applied to.
        path: PathBuf,
    },
    /// Any other I/O failure, including injected ones (EIO) in simulation.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// The operation that failed.
        op: &'static str,
        /// The path it was applied to.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

impl VfsError {
    /// Builds a typed error from an OS error, keeping `NotFound` and
    /// `AlreadyExists` distinct.
    pub fn from_io(op: &'static str, path: &Path, source: io::Error) -> Self {
        let path = path.to_path_buf();
        match source.kind() {
            io::ErrorKind::NotFound => VfsError::NotFound { op, path },
            io::ErrorKind::AlreadyExists => VfsError::AlreadyExists { op, path },
            _ => VfsError::Io { op, path, source },
        }
    }

    /// The path the failed operation was applied to.
    pub fn path(&self) -> &Path {
        match self {
            VfsError::NotFound { path, .. }
            | VfsError::AlreadyExists { path, .. }
            | VfsError::Io { path, .. } => path,
        }
    }
}

/// Result of a VFS operation.
pub type VfsResult<T> = Result<T, VfsError>;

/// A file system: a namespace of directories holding files.
///
/// Paths are ordinary paths; a VFS may be rooted anywhere. Implementations are
/// cheap to clone handles on one underlying store.
pub trait Vfs: Clone + std::fmt::Debug {
    /// An open file.
    type File: VfsFile;

    /// Creates a new, empty file, open for reading and writing. Fails with
    /// [`VfsError::AlreadyExists`] if the path exists. The new name is durable
    /// only after [`Vfs::sync_dir`] of its parent.
    fn create(&self, path: &Path) -> VfsResult<Self::File>;
    /// Opens an existing file for reading and writing.
    fn open(&self, path: &Path) -> VfsResult<Self::File>;
    /// Atomically renames `from` to `to` (same directory), replacing `to`.
    fn rename(&self, from: &Path, to: &Path) -> VfsResult<()>;
    /// Removes a file.
    fn remove(&self, path: &Path) -> VfsResult<()>;
    /// The names of the files in a directory, sorted.
    fn list(&self, dir: &Path) -> VfsResult<Vec<String>>;
    /// Makes the directory's entries (creates, renames, removes) durable.
    fn sync_dir(&self, dir: &Path) -> VfsResult<()>;
    /// Creates a directory and its parents, durably.
    fn create_dir_all(&self, dir: &Path) -> VfsResult<()>;
    /// Whether a file exists at the path.
    fn exists(&self, path: &Path) -> VfsResult<bool>;
}

/// An open file of a [`Vfs`].
pub trait VfsFile: std::fmt::Debug {
    /// The file's current length in bytes.
    fn len(&self) -> VfsResult<u64>;
    /// Whether the file is empty.
    fn is_empty(&self) -> VfsResult<bool> {
        Ok(self.len()? == 0)
    }
    /// Reads up to `buf.len()` bytes at `offset`; returns how many were read
    /// (fewer only at the end of the file).
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> VfsResult<usize>;
    /// Writes all of `data` at `offset`, extending the file if needed.
    fn write_at(&mut self, offset: u64, data: &[u8]) -> VfsResult<()>;
    /// Truncates or extends (with zeros) the file to `len` bytes.
    fn set_len(&mut self, len: u64) -> VfsResult<()>;
    /// Makes the file's data and length durable (fdatasync).
    fn sync_data(&mut self) -> VfsResult<()>;
    /// The path this file was opened at (for error messages).
    fn path(&self) -> &Path;

    /// Reads the whole file.
    fn read_all(&mut self) -> VfsResult<Vec<u8>> {
        let len = self.len()?;
        let len = usize::try_from(len).map_err(|_| VfsError::Io {
            op: "read",
            path: self.path().to_path_buf(),
            source: io::Error::new(io::ErrorKind::InvalidData, "file too large for memory"),
        })?;
        let mut buf = vec![0u8; len];
        let mut done = 0;
        while done < len {
            let n = self.read_at(done as u64, &mut buf[done..])?;
            if n == 0 {
                break;
            }
            done += n;
        }
        buf.truncate(done);
        Ok(buf)
    }
}

/// The parent directory of a path ("." for a bare name).
pub(crate) fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}
