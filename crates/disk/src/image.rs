//! Snapshot images received from a leader, one checksummed file each,
//! written atomically through the VFS (temporary file, sync, rename, sync of
//! the directory) so a crash leaves either the whole image or none.

use std::path::{Path, PathBuf};

use synod_storage::{Vfs, VfsError, VfsFile};

use crate::DiskError;

const SNAP_MAGIC: &[u8; 8] = b"SYNODSNP";
const SNAP_VERSION: u32 = 1;
/// Bytes an image file spends around the image: magic, version, index,
/// term, length, and the CRC32C at the end.
const FRAME: usize = 8 + 4 + 8 + 8 + 8 + 4;
/// Largest snapshot image accepted when reading one back.
pub const MAX_SNAPSHOT_BYTES: u64 = 4 << 30;

/// The image of group `shard` at (`index`, `term`) inside `dir`.
pub fn snap_path(dir: &Path, shard: u64, index: u64, term: u64) -> PathBuf {
    if shard == synod_storage::LEGACY_GROUP {
        // The name images had before groups, kept for the first group.
        dir.join(format!("{index:016x}-{term:016x}.snap"))
    } else {
        dir.join(format!("g{shard:x}-{index:016x}-{term:016x}.snap"))
    }
}

/// Which group an image file belongs to, and its index.
fn parse_name(name: &str) -> Option<(u64, u64)> {
    let stem = name.strip_suffix(".snap")?;
    let (shard, rest) = match stem.strip_prefix('g') {
        Some(r) => {
            let (s, rest) = r.split_once('-')?;
            (u64::from_str_radix(s, 16).ok()?, rest)
        }
        None => (synod_storage::LEGACY_GROUP, stem),
    };
    let index = u64::from_str_radix(rest.split('-').next()?, 16).ok()?;
    Some((shard, index))
}

fn vfs_err(e: VfsError) -> DiskError {
    DiskError::Vfs(e)
}

/// Writes an image durably.
pub fn write_image<V: Vfs>(
    vfs: &V,
    dir: &Path,
    shard: u64,
    index: u64,
    term: u64,
    data: &[u8],
) -> Result<(), DiskError> {
    let path = snap_path(dir, shard, index, term);
    let tmp = path.with_extension("tmp");
    let mut buf = Vec::with_capacity(data.len() + FRAME);
    buf.extend_from_slice(SNAP_MAGIC);
    buf.extend_from_slice(&SNAP_VERSION.to_le_bytes());
    buf.extend_from_slice(&index.to_le_bytes());
    buf.extend_from_slice(&term.to_le_bytes());
    buf.extend_from_slice(&(data.len() as u64).to_le_bytes());
    buf.extend_from_slice(data);
    let crc = crc32c::crc32c(&buf);
    buf.extend_from_slice(&crc.to_le_bytes());
    if vfs.exists(&tmp).map_err(vfs_err)? {
        vfs.remove(&tmp).map_err(vfs_err)?;
    }
    let mut f = vfs.create(&tmp).map_err(vfs_err)?;
    f.write_at(0, &buf).map_err(vfs_err)?;
    f.sync_data().map_err(vfs_err)?;
    drop(f);
    vfs.rename(&tmp, &path).map_err(vfs_err)?;
    vfs.sync_dir(dir).map_err(vfs_err)?;
    Ok(())
}

/// Reads and verifies an image.
pub fn read_image<V: Vfs>(
    vfs: &V,
    path: &Path,
    index: u64,
    term: u64,
) -> Result<Vec<u8>, DiskError> {
    let bad = |what: String| DiskError::Snapshot {
        path: path.to_path_buf(),
        what,
    };
    let mut f = vfs.open(path).map_err(vfs_err)?;
    let len = f.len().map_err(vfs_err)?;
    if len > MAX_SNAPSHOT_BYTES + FRAME as u64 {
        return Err(bad(format!("{len} bytes is over the limit")));
    }
    let buf = f.read_all().map_err(vfs_err)?;
    if buf.len() < FRAME || &buf[..8] != SNAP_MAGIC {
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
    let n = u64_at(28);
    if body.len() as u64 != (FRAME - 4) as u64 + n {
        return Err(bad("length mismatch".into()));
    }
    Ok(body[FRAME - 4..].to_vec())
}

/// Removes group `shard`'s images below index `keep` (best effort: a left
/// over image is only wasted space).
pub fn remove_images_below<V: Vfs>(vfs: &V, dir: &Path, shard: u64, keep: u64) {
    let Ok(names) = vfs.list(dir) else { return };
    for name in names {
        if let Some((s, i)) = parse_name(&name) {
            if s == shard && i < keep {
                let _ = vfs.remove(&dir.join(&name));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use synod_storage::SimVfs;

    #[test]
    fn an_image_round_trips_and_a_flipped_byte_is_caught() {
        let vfs = SimVfs::new();
        let dir = Path::new("/d/snap");
        vfs.create_dir_all(dir).unwrap();
        write_image(&vfs, dir, 1, 7, 2, b"state").unwrap();
        write_image(&vfs, dir, 3, 9, 2, b"other").unwrap();
        let p = snap_path(dir, 1, 7, 2);
        assert_eq!(read_image(&vfs, &p, 7, 2).unwrap(), b"state");
        assert!(read_image(&vfs, &p, 8, 2).is_err());
        assert_eq!(
            read_image(&vfs, &snap_path(dir, 3, 9, 2), 9, 2).unwrap(),
            b"other"
        );
        vfs.corrupt(&p, 38).unwrap();
        let err = read_image(&vfs, &p, 7, 2).unwrap_err().to_string();
        assert!(err.contains("checksum"), "{err}");
        // Removing group 3's old images leaves group 1's alone.
        remove_images_below(&vfs, dir, 3, 10);
        assert_eq!(vfs.list(dir).unwrap().len(), 1);
        assert_eq!(
            parse_name("g3-0000000000000009-0000000000000002.snap"),
            Some((3, 9))
        );
    }
}
