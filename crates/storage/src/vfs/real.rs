//! [`RealVfs`]: the production file system over `std::fs`, with real
//! fdatasync and a directory fsync after every create, rename and remove.

use super::{parent_dir, Vfs, VfsError, VfsFile, VfsResult};
use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// The real file system. Directory entries are made durable eagerly (the
/// parent directory is fsynced after each create, rename and remove), so
/// [`Vfs::sync_dir`] is also honoured but rarely needed.
#[derive(Debug, Clone, Default)]
pub struct RealVfs {
    _private: (),
}

impl RealVfs {
    /// A handle on the real file system.
    pub fn new() -> Self {
        RealVfs { _private: () }
    }
}

/// An open file of [`RealVfs`].
#[derive(Debug)]
pub struct RealFile {
    file: File,
    path: PathBuf,
}

fn fsync_dir(op: &'static str, dir: &Path) -> VfsResult<()> {
    let d = File::open(dir).map_err(|e| VfsError::from_io(op, dir, e))?;
    d.sync_all().map_err(|e| VfsError::from_io(op, dir, e))
}

impl Vfs for RealVfs {
    type File = RealFile;

    fn create(&self, path: &Path) -> VfsResult<RealFile> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|e| VfsError::from_io("create", path, e))?;
        fsync_dir("create", &parent_dir(path))?;
        Ok(RealFile {
            file,
            path: path.to_path_buf(),
        })
    }

    fn open(&self, path: &Path) -> VfsResult<RealFile> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| VfsError::from_io("open", path, e))?;
        Ok(RealFile {
            file,
            path: path.to_path_buf(),
        })
    }

    fn rename(&self, from: &Path, to: &Path) -> VfsResult<()> {
        fs::rename(from, to).map_err(|e| VfsError::from_io("rename", from, e))?;
        fsync_dir("rename", &parent_dir(to))?;
        let from_dir = parent_dir(from);
        if from_dir != parent_dir(to) {
            fsync_dir("rename", &from_dir)?;
        }
        Ok(())
    }

    fn remove(&self, path: &Path) -> VfsResult<()> {
        fs::remove_file(path).map_err(|e| VfsError::from_io("remove", path, e))?;
        fsync_dir("remove", &parent_dir(path))
    }

    fn list(&self, dir: &Path) -> VfsResult<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(dir).map_err(|e| VfsError::from_io("list", dir, e))? {
            let entry = entry.map_err(|e| VfsError::from_io("list", dir, e))?;
            let ty = entry
                .file_type()
                .map_err(|e| VfsError::from_io("list", dir, e))?;
            if !ty.is_file() {
                continue;
            }
            // Names we cannot represent are not ours: skip them.
            if let Ok(name) = entry.file_name().into_string() {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }

    fn sync_dir(&self, dir: &Path) -> VfsResult<()> {
        fsync_dir("sync_dir", dir)
    }

    fn create_dir_all(&self, dir: &Path) -> VfsResult<()> {
        fs::create_dir_all(dir).map_err(|e| VfsError::from_io("create_dir", dir, e))?;
        fsync_dir("create_dir", dir)?;
        fsync_dir("create_dir", &parent_dir(dir))
    }

    fn exists(&self, path: &Path) -> VfsResult<bool> {
        path.try_exists()
            .map_err(|e| VfsError::from_io("exists", path, e))
    }
}

impl VfsFile for RealFile {
    fn len(&self) -> VfsResult<u64> {
        self.file
            .metadata()
            .map(|m| m.len())
            .map_err(|e| VfsError::from_io("stat", &self.path, e))
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> VfsResult<usize> {
        let mut done = 0;
        while done < buf.len() {
            match self.file.read_at(&mut buf[done..], offset + done as u64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(VfsError::from_io("read", &self.path, e)),
            }
        }
        Ok(done)
    }

    fn write_at(&mut self, offset: u64, data: &[u8]) -> VfsResult<()> {
        self.file
            .write_all_at(data, offset)
            .map_err(|e| VfsError::from_io("write", &self.path, e))
    }

    fn set_len(&mut self, len: u64) -> VfsResult<()> {
        self.file
            .set_len(len)
            .map_err(|e| VfsError::from_io("set_len", &self.path, e))
    }

    fn sync_data(&mut self) -> VfsResult<()> {
        self.file
            .sync_data()
            .map_err(|e| VfsError::from_io("sync_data", &self.path, e))
    }

    fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_write_read_rename_remove() {
        let tmp = tempfile::tempdir().unwrap();
        let vfs = RealVfs::new();
        let dir = tmp.path().join("d");
        vfs.create_dir_all(&dir).unwrap();
        let a = dir.join("a");
        let mut f = vfs.create(&a).unwrap();
        f.write_at(0, b"hello").unwrap();
        f.write_at(10, b"world").unwrap();
        f.sync_data().unwrap();
        assert_eq!(f.len().unwrap(), 15);
        assert_eq!(f.read_all().unwrap(), b"hello\0\0\0\0\0world");
        let mut buf = [0u8; 8];
        assert_eq!(f.read_at(12, &mut buf).unwrap(), 3);
        assert_eq!(&buf[..3], b"rld");
        assert!(matches!(
            vfs.create(&a),
            Err(VfsError::AlreadyExists { .. })
        ));
        let b = dir.join("b");
        vfs.rename(&a, &b).unwrap();
        assert!(!vfs.exists(&a).unwrap());
        assert_eq!(vfs.list(&dir).unwrap(), vec!["b".to_string()]);
        let mut g = vfs.open(&b).unwrap();
        g.set_len(5).unwrap();
        assert_eq!(g.read_all().unwrap(), b"hello");
        vfs.remove(&b).unwrap();
        assert!(vfs.list(&dir).unwrap().is_empty());
        let err = vfs.open(&b).unwrap_err();
        assert!(matches!(err, VfsError::NotFound { .. }));
        assert_eq!(err.path(), b.as_path());
        assert!(err.to_string().contains("open"), "{err}");
    }
}
