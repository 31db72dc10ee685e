//! Damage to a stopped member's files, as a disk that tears a write or
//! flips a bit would leave them: the newest WAL segment truncated inside
//! what was written, a byte of it flipped, or a byte of the store flipped.
//! The member must then either serve again or refuse to start and say why;
//! it must never serve from damaged state as if it were whole.

use std::path::{Path, PathBuf};

use crate::cluster::Target;
use crate::workload::Rng;
use crate::ChaosError;

/// What [`damage`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Damage {
    /// The newest WAL segment cut short inside its written bytes.
    WalTruncate,
    /// One byte of the newest WAL segment's written bytes inverted.
    WalFlip,
    /// One byte of the key-value store file inverted.
    StoreFlip,
}

fn wal_dir(target: Target, data: &Path) -> PathBuf {
    match target {
        Target::Synod => data.join("wal"),
        Target::Etcd => data.join("member").join("wal"),
    }
}

fn store_file(target: Target, data: &Path) -> PathBuf {
    match target {
        Target::Synod => data.join("member").join("store.redb"),
        Target::Etcd => data.join("member").join("snap").join("db"),
    }
}

/// The newest segment of the WAL in `dir` (names sort by sequence in both
/// synod's and etcd's layout).
fn newest_segment(dir: &Path) -> Result<PathBuf, ChaosError> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| ChaosError::Setup(format!("{}: {e}", dir.display())))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let n = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            n.ends_with(".log") || n.ends_with(".wal")
        })
        .collect();
    names.sort();
    names
        .pop()
        .ok_or_else(|| ChaosError::Setup(format!("no WAL segment in {}", dir.display())))
}

/// Damages one file of the stopped member whose data dir is `data`: `kind`
/// drawn from `rng`. Returns what was done, in words.
pub fn damage(target: Target, data: &Path, rng: &mut Rng) -> Result<(Damage, String), ChaosError> {
    let kind = [Damage::WalTruncate, Damage::WalFlip, Damage::StoreFlip][rng.below(3) as usize];
    let path = match kind {
        Damage::WalTruncate | Damage::WalFlip => newest_segment(&wal_dir(target, data))?,
        Damage::StoreFlip => store_file(target, data),
    };
    let io = |e: std::io::Error| ChaosError::Setup(format!("{}: {e}", path.display()));
    let mut bytes = std::fs::read(&path).map_err(io)?;
    // Segments are preallocated: what was written ends at the last
    // non-zero byte.
    let written = match kind {
        Damage::StoreFlip => bytes.len(),
        _ => bytes.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1),
    };
    if written == 0 {
        return Err(ChaosError::Setup(format!("{} is empty", path.display())));
    }
    let at = rng.below(written as u64) as usize;
    let name = path.display();
    let what = match kind {
        Damage::WalTruncate => {
            bytes.truncate(at);
            format!("{name} cut to {at} of {written} written bytes")
        }
        _ => {
            bytes[at] = !bytes[at];
            format!("{name}: byte {at} of {written} inverted")
        }
    };
    std::fs::write(&path, &bytes).map_err(io)?;
    Ok((kind, what))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_changes_the_written_part_of_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path();
        std::fs::create_dir_all(data.join("wal")).unwrap();
        std::fs::create_dir_all(data.join("member")).unwrap();
        let mut seg = vec![7u8; 100];
        seg.extend(vec![0u8; 900]);
        let old = data
            .join("wal")
            .join("wal-0000000000000000-0000000000000000.log");
        let new = data
            .join("wal")
            .join("wal-0000000000000001-0000000000000009.log");
        std::fs::write(&old, vec![1u8; 1000]).unwrap();
        let store = data.join("member").join("store.redb");
        std::fs::write(&store, vec![5u8; 64]).unwrap();
        let mut seen = std::collections::BTreeSet::new();
        for seed in 0..40 {
            std::fs::write(&new, &seg).unwrap();
            std::fs::write(&store, vec![5u8; 64]).unwrap();
            let (kind, what) = damage(Target::Synod, data, &mut Rng(seed)).unwrap();
            seen.insert(format!("{kind:?}"));
            let after = std::fs::read(&new).unwrap();
            let st = std::fs::read(&store).unwrap();
            match kind {
                Damage::WalTruncate => {
                    assert!(after.len() < 100, "{what}");
                    assert!(after.iter().all(|&b| b == 7));
                }
                Damage::WalFlip => {
                    assert_eq!(after.len(), 1000);
                    let changed: Vec<usize> = (0..1000).filter(|&i| after[i] != seg[i]).collect();
                    assert_eq!(changed.len(), 1, "{what}");
                    assert!(changed[0] < 100, "inside the written bytes: {what}");
                }
                Damage::StoreFlip => {
                    assert_eq!(st.iter().filter(|&&b| b != 5).count(), 1, "{what}");
                }
            }
            assert_eq!(
                std::fs::read(&old).unwrap(),
                vec![1u8; 1000],
                "only the newest segment"
            );
        }
        assert_eq!(seen.len(), 3, "every kind is drawn: {seen:?}");
    }
}
