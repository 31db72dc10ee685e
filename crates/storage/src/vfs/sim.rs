//! [`SimVfs`]: an in-memory, deterministic file system that remembers what is
//! durable and what is not, loses (and tears) unsynced state on a simulated
//! power loss, and injects bounded, seeded I/O errors and silent corruption.
//!
//! The model: a file is an inode with its current bytes, its durable bytes and
//! the ordered list of writes since the last `sync_data`. A directory is a map
//! name -> inode, current and durable, with the ordered list of namespace
//! operations since the last `sync_dir`. On [`SimVfs::crash`] every file keeps
//! its durable bytes plus a random prefix of its unsynced writes (the last one
//! kept may itself be cut short: a torn write), and every directory keeps a
//! random prefix of its unsynced operations. Directories themselves are
//! durable as soon as they are created. No clock, no OS randomness: all chance
//! comes from the RNG the caller passes in or the seed it sets.

use super::{parent_dir, Vfs, VfsError, VfsFile, VfsResult};
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// Upper bound on the unsynced writes remembered per file: one more is
/// refused with EIO (a real kernel would block on dirty pages). The WAL syncs
/// long before reaching it.
const MAX_UNSYNCED_OPS: usize = 1 << 16;

#[derive(Debug, Clone)]
enum Pending {
    Write { offset: u64, data: Vec<u8> },
    SetLen(u64),
}

#[derive(Debug, Clone, Default)]
struct Inode {
    data: Vec<u8>,
    durable: Vec<u8>,
    unsynced: Vec<Pending>,
}

#[derive(Debug, Clone)]
enum DirOp {
    Link { name: String, ino: u64 },
    Unlink { name: String },
    Rename { from: String, to: String, ino: u64 },
}

#[derive(Debug, Clone, Default)]
struct Dir {
    current: BTreeMap<String, u64>,
    durable: BTreeMap<String, u64>,
    unsynced: Vec<DirOp>,
}

/// Rates of randomly injected I/O errors (EIO), drawn from a seeded RNG and
/// bounded by a total budget.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultRates {
    /// Chance, in parts per million, that a `write_at` fails.
    pub write_error_ppm: u32,
    /// Chance, in parts per million, that a `sync_data` or `sync_dir` fails.
    pub sync_error_ppm: u32,
    /// At most this many random faults are injected in total.
    pub budget: u32,
}

#[derive(Debug, Clone)]
struct Faults {
    fail_syncs: u32,
    fail_writes: u32,
    random: Option<(Pcg64Mcg, FaultRates)>,
    injected: u64,
}

#[derive(Debug)]
struct State {
    generation: u64,
    next_ino: u64,
    inodes: BTreeMap<u64, Inode>,
    dirs: BTreeMap<PathBuf, Dir>,
    faults: Faults,
}

/// What a simulated power loss threw away.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CrashReport {
    /// Unsynced bytes written that did not survive.
    pub bytes_lost: u64,
    /// Files whose last surviving unsynced write was cut short.
    pub torn_writes: u64,
    /// Unsynced creates, renames and removes that were undone.
    pub dir_ops_undone: u64,
}

/// The simulated file system. Clones share one disk, so a simulator can keep
/// a node's disk across the node's crash and restart.
#[derive(Debug, Clone)]
pub struct SimVfs {
    state: Arc<Mutex<State>>,
}

impl Default for SimVfs {
    fn default() -> Self {
        Self::new()
    }
}

fn split(path: &Path) -> (PathBuf, Option<String>) {
    let dir = parent_dir(path);
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .map(|s| s.to_string());
    (dir, name)
}

fn eio(op: &'static str, path: &Path, what: &str) -> VfsError {
    VfsError::Io {
        op,
        path: path.to_path_buf(),
        source: io::Error::other(format!("simulated EIO: {what}")),
    }
}

fn apply(data: &mut Vec<u8>, op: &Pending) {
    match op {
        Pending::Write {
            offset,
            data: bytes,
        } => write_into(data, *offset, bytes),
        Pending::SetLen(len) => data.resize(*len as usize, 0),
    }
}

fn write_into(data: &mut Vec<u8>, offset: u64, bytes: &[u8]) {
    let off = offset as usize;
    let end = off + bytes.len();
    if data.len() < end {
        data.resize(end, 0);
    }
    data[off..end].copy_from_slice(bytes);
}

fn apply_dir(map: &mut BTreeMap<String, u64>, op: &DirOp) {
    match op {
        DirOp::Link { name, ino } => {
            map.insert(name.clone(), *ino);
        }
        DirOp::Unlink { name } => {
            map.remove(name);
        }
        DirOp::Rename { from, to, ino } => {
            map.remove(from);
            map.insert(to.clone(), *ino);
        }
    }
}

impl State {
    fn dir(&self, op: &'static str, dir: &Path) -> VfsResult<&Dir> {
        self.dirs.get(dir).ok_or_else(|| VfsError::NotFound {
            op,
            path: dir.to_path_buf(),
        })
    }

    fn dir_mut(&mut self, op: &'static str, dir: &Path) -> VfsResult<&mut Dir> {
        self.dirs.get_mut(dir).ok_or_else(|| VfsError::NotFound {
            op,
            path: dir.to_path_buf(),
        })
    }

    fn lookup(&self, op: &'static str, path: &Path) -> VfsResult<u64> {
        let (dir, name) = split(path);
        let d = self.dir(op, &dir)?;
        name.and_then(|n| d.current.get(&n).copied())
            .ok_or_else(|| VfsError::NotFound {
                op,
                path: path.to_path_buf(),
            })
    }

    fn draw(&mut self, ppm: fn(&FaultRates) -> u32) -> bool {
        let Some((rng, rates)) = self.faults.random.as_mut() else {
            return false;
        };
        if rates.budget == 0 {
            return false;
        }
        let hit = rng.random_range(0..1_000_000u32) < ppm(rates);
        if hit {
            rates.budget -= 1;
        }
        hit
    }

    fn sync_fault(&mut self) -> bool {
        if self.faults.fail_syncs > 0 {
            self.faults.fail_syncs -= 1;
            self.faults.injected += 1;
            return true;
        }
        let hit = self.draw(|r| r.sync_error_ppm);
        if hit {
            self.faults.injected += 1;
        }
        hit
    }

    fn write_fault(&mut self) -> bool {
        if self.faults.fail_writes > 0 {
            self.faults.fail_writes -= 1;
            self.faults.injected += 1;
            return true;
        }
        let hit = self.draw(|r| r.write_error_ppm);
        if hit {
            self.faults.injected += 1;
        }
        hit
    }

    fn referenced(&self, ino: u64) -> bool {
        self.dirs
            .values()
            .any(|d| d.current.values().any(|&i| i == ino) || d.durable.values().any(|&i| i == ino))
    }

    fn collect(&mut self, ino: u64) {
        if !self.referenced(ino) {
            self.inodes.remove(&ino);
        }
    }
}

impl SimVfs {
    /// An empty disk whose root directory `/` and `.` exist.
    pub fn new() -> Self {
        let mut dirs = BTreeMap::new();
        dirs.insert(PathBuf::from("/"), Dir::default());
        dirs.insert(PathBuf::from("."), Dir::default());
        SimVfs {
            state: Arc::new(Mutex::new(State {
                generation: 0,
                next_ino: 1,
                inodes: BTreeMap::new(),
                dirs,
                faults: Faults {
                    fail_syncs: 0,
                    fail_writes: 0,
                    random: None,
                    injected: 0,
                },
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock already failed the test that caused
        // it; the state is still consistent enough to inspect.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Simulates a power loss: unsynced writes are lost except a random prefix
    /// per file (whose last write may be torn), unsynced namespace operations
    /// are undone except a random prefix per directory, and every open file
    /// handle becomes stale.
    pub fn crash<R: Rng + ?Sized>(&self, rng: &mut R) -> CrashReport {
        let mut st = self.lock();
        let mut report = CrashReport::default();
        for dir in st.dirs.values_mut() {
            let keep = rng.random_range(0..=dir.unsynced.len());
            let ops = std::mem::take(&mut dir.unsynced);
            for op in &ops[..keep] {
                apply_dir(&mut dir.durable, op);
            }
            report.dir_ops_undone += (ops.len() - keep) as u64;
            dir.current = dir.durable.clone();
        }
        for inode in st.inodes.values_mut() {
            let ops = std::mem::take(&mut inode.unsynced);
            let keep = rng.random_range(0..=ops.len());
            for op in &ops[..keep] {
                apply(&mut inode.durable, op);
            }
            for (i, op) in ops[keep..].iter().enumerate() {
                if let Pending::Write { offset, data } = op {
                    let mut lost = data.len();
                    if i == 0 && !data.is_empty() {
                        let part = rng.random_range(0..data.len());
                        if part > 0 {
                            write_into(&mut inode.durable, *offset, &data[..part]);
                            report.torn_writes += 1;
                        }
                        lost -= part;
                    }
                    report.bytes_lost += lost as u64;
                }
            }
            inode.data = inode.durable.clone();
        }
        let dead: Vec<u64> = st
            .inodes
            .keys()
            .copied()
            .filter(|&ino| !st.referenced(ino))
            .collect();
        for ino in dead {
            st.inodes.remove(&ino);
        }
        st.generation += 1;
        report
    }

    /// Silently flips every bit of the byte at `offset` of a file, in both its
    /// current and its durable contents (bit rot, a misdirected write).
    pub fn corrupt(&self, path: &Path, offset: u64) -> VfsResult<()> {
        let mut st = self.lock();
        let ino = st.lookup("corrupt", path)?;
        let inode = st.inodes.get_mut(&ino).expect("linked inode exists");
        let off = offset as usize;
        if off >= inode.data.len() {
            return Err(VfsError::Io {
                op: "corrupt",
                path: path.to_path_buf(),
                source: io::Error::new(io::ErrorKind::InvalidInput, "offset past end of file"),
            });
        }
        inode.data[off] ^= 0xff;
        if off < inode.durable.len() {
            inode.durable[off] ^= 0xff;
        }
        for op in &mut inode.unsynced {
            if let Pending::Write { offset: o, data } = op {
                let o = *o as usize;
                if off >= o && off < o + data.len() {
                    data[off - o] ^= 0xff;
                }
            }
        }
        Ok(())
    }

    /// The next `n` syncs (`sync_data` or `sync_dir`) fail with EIO.
    pub fn fail_next_syncs(&self, n: u32) {
        self.lock().faults.fail_syncs = n;
    }

    /// The next `n` writes fail with EIO (nothing is written).
    pub fn fail_next_writes(&self, n: u32) {
        self.lock().faults.fail_writes = n;
    }

    /// Injects random EIO on writes and syncs at the given rates, drawn from
    /// an RNG seeded with `seed`, at most `rates.budget` times.
    pub fn set_random_faults(&self, seed: u64, rates: FaultRates) {
        self.lock().faults.random = Some((Pcg64Mcg::seed_from_u64(seed), rates));
    }

    /// How many I/O errors have been injected so far.
    pub fn injected_faults(&self) -> u64 {
        self.lock().faults.injected
    }

    /// The durable contents of a file (what would survive a crash that keeps
    /// nothing unsynced), if the file's name is current.
    pub fn durable_contents(&self, path: &Path) -> VfsResult<Vec<u8>> {
        let st = self.lock();
        let ino = st.lookup("durable_contents", path)?;
        Ok(st.inodes[&ino].durable.clone())
    }

    /// Total unsynced bytes written over all files.
    pub fn unsynced_bytes(&self) -> u64 {
        let st = self.lock();
        st.inodes
            .values()
            .flat_map(|i| i.unsynced.iter())
            .map(|op| match op {
                Pending::Write { data, .. } => data.len() as u64,
                Pending::SetLen(_) => 0,
            })
            .sum()
    }
}

/// An open file of [`SimVfs`]. It goes stale (every operation fails) when the
/// disk crashes.
#[derive(Debug)]
pub struct SimFile {
    vfs: SimVfs,
    ino: u64,
    generation: u64,
    path: PathBuf,
}

impl SimFile {
    fn with<T>(
        &self,
        op: &'static str,
        f: impl FnOnce(&mut State, u64) -> VfsResult<T>,
    ) -> VfsResult<T> {
        let mut st = self.vfs.lock();
        if st.generation != self.generation || !st.inodes.contains_key(&self.ino) {
            return Err(VfsError::Io {
                op,
                path: self.path.clone(),
                source: io::Error::new(
                    io::ErrorKind::BrokenPipe,
                    "stale handle (disk crashed or file removed)",
                ),
            });
        }
        f(&mut st, self.ino)
    }
}

impl VfsFile for SimFile {
    fn len(&self) -> VfsResult<u64> {
        self.with("stat", |st, ino| Ok(st.inodes[&ino].data.len() as u64))
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> VfsResult<usize> {
        self.with("read", |st, ino| {
            let data = &st.inodes[&ino].data;
            let off = (offset as usize).min(data.len());
            let n = buf.len().min(data.len() - off);
            buf[..n].copy_from_slice(&data[off..off + n]);
            Ok(n)
        })
    }

    fn write_at(&mut self, offset: u64, data: &[u8]) -> VfsResult<()> {
        let path = self.path.clone();
        self.with("write", |st, ino| {
            if st.write_fault() {
                return Err(eio("write", &path, "injected write failure"));
            }
            let inode = st.inodes.get_mut(&ino).expect("checked");
            if inode.unsynced.len() >= MAX_UNSYNCED_OPS {
                return Err(eio("write", &path, "too many unsynced writes"));
            }
            write_into(&mut inode.data, offset, data);
            inode.unsynced.push(Pending::Write {
                offset,
                data: data.to_vec(),
            });
            Ok(())
        })
    }

    fn set_len(&mut self, len: u64) -> VfsResult<()> {
        let path = self.path.clone();
        self.with("set_len", |st, ino| {
            if st.write_fault() {
                return Err(eio("set_len", &path, "injected write failure"));
            }
            let inode = st.inodes.get_mut(&ino).expect("checked");
            if inode.unsynced.len() >= MAX_UNSYNCED_OPS {
                return Err(eio("set_len", &path, "too many unsynced writes"));
            }
            let op = Pending::SetLen(len);
            apply(&mut inode.data, &op);
            inode.unsynced.push(op);
            Ok(())
        })
    }

    fn sync_data(&mut self) -> VfsResult<()> {
        let path = self.path.clone();
        self.with("sync_data", |st, ino| {
            if st.sync_fault() {
                return Err(eio("sync_data", &path, "injected sync failure"));
            }
            let inode = st.inodes.get_mut(&ino).expect("checked");
            for op in std::mem::take(&mut inode.unsynced) {
                apply(&mut inode.durable, &op);
            }
            assert_eq!(
                inode.durable.len(),
                inode.data.len(),
                "sync makes the length durable"
            );
            debug_assert!(
                inode.durable == inode.data,
                "sync makes current bytes durable"
            );
            Ok(())
        })
    }

    fn path(&self) -> &Path {
        &self.path
    }
}

impl Vfs for SimVfs {
    type File = SimFile;

    fn create(&self, path: &Path) -> VfsResult<SimFile> {
        let mut st = self.lock();
        let (dir, name) = split(path);
        let name = name.ok_or_else(|| eio("create", path, "not a file name"))?;
        if st.dir("create", &dir)?.current.contains_key(&name) {
            return Err(VfsError::AlreadyExists {
                op: "create",
                path: path.to_path_buf(),
            });
        }
        let ino = st.next_ino;
        st.next_ino += 1;
        st.inodes.insert(ino, Inode::default());
        let d = st.dir_mut("create", &dir)?;
        let op = DirOp::Link { name, ino };
        apply_dir(&mut d.current, &op);
        d.unsynced.push(op);
        Ok(SimFile {
            vfs: self.clone(),
            ino,
            generation: st.generation,
            path: path.to_path_buf(),
        })
    }

    fn open(&self, path: &Path) -> VfsResult<SimFile> {
        let st = self.lock();
        let ino = st.lookup("open", path)?;
        Ok(SimFile {
            vfs: self.clone(),
            ino,
            generation: st.generation,
            path: path.to_path_buf(),
        })
    }

    fn rename(&self, from: &Path, to: &Path) -> VfsResult<()> {
        let mut st = self.lock();
        let ino = st.lookup("rename", from)?;
        let (dir, from_name) = split(from);
        let (to_dir, to_name) = split(to);
        if dir != to_dir {
            return Err(eio(
                "rename",
                from,
                "cross-directory rename is not modelled",
            ));
        }
        let to_name = to_name.ok_or_else(|| eio("rename", to, "not a file name"))?;
        let replaced = st.dir("rename", &dir)?.current.get(&to_name).copied();
        let d = st.dir_mut("rename", &dir)?;
        let op = DirOp::Rename {
            from: from_name.expect("looked up"),
            to: to_name,
            ino,
        };
        apply_dir(&mut d.current, &op);
        d.unsynced.push(op);
        if let Some(old) = replaced {
            st.collect(old);
        }
        Ok(())
    }

    fn remove(&self, path: &Path) -> VfsResult<()> {
        let mut st = self.lock();
        let ino = st.lookup("remove", path)?;
        let (dir, name) = split(path);
        let d = st.dir_mut("remove", &dir)?;
        let op = DirOp::Unlink {
            name: name.expect("looked up"),
        };
        apply_dir(&mut d.current, &op);
        d.unsynced.push(op);
        st.collect(ino);
        Ok(())
    }

    fn list(&self, dir: &Path) -> VfsResult<Vec<String>> {
        let st = self.lock();
        Ok(st.dir("list", dir)?.current.keys().cloned().collect())
    }

    fn sync_dir(&self, dir: &Path) -> VfsResult<()> {
        let mut st = self.lock();
        st.dir("sync_dir", dir)?;
        if st.sync_fault() {
            return Err(eio("sync_dir", dir, "injected sync failure"));
        }
        let d = st.dir_mut("sync_dir", dir)?;
        d.durable = d.current.clone();
        d.unsynced.clear();
        let inos: Vec<u64> = st.inodes.keys().copied().collect();
        for ino in inos {
            st.collect(ino);
        }
        Ok(())
    }

    fn create_dir_all(&self, dir: &Path) -> VfsResult<()> {
        let mut st = self.lock();
        let mut p = Some(dir);
        while let Some(d) = p {
            if d.as_os_str().is_empty() {
                break;
            }
            st.dirs.entry(d.to_path_buf()).or_default();
            p = d.parent();
        }
        Ok(())
    }

    fn exists(&self, path: &Path) -> VfsResult<bool> {
        let st = self.lock();
        let (dir, name) = split(path);
        Ok(match (st.dirs.get(&dir), name) {
            (Some(d), Some(n)) => d.current.contains_key(&n),
            _ => st.dirs.contains_key(path),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rng(seed: u64) -> Pcg64Mcg {
        Pcg64Mcg::seed_from_u64(seed)
    }

    fn setup() -> (SimVfs, PathBuf) {
        let vfs = SimVfs::new();
        let dir = PathBuf::from("/data");
        vfs.create_dir_all(&dir).unwrap();
        (vfs, dir)
    }

    #[test]
    fn synced_data_and_names_survive_every_crash() {
        for seed in 0..50 {
            let (vfs, dir) = setup();
            let p = dir.join("f");
            let mut f = vfs.create(&p).unwrap();
            f.write_at(0, b"durable").unwrap();
            f.sync_data().unwrap();
            vfs.sync_dir(&dir).unwrap();
            f.write_at(7, b" and not").unwrap();
            vfs.crash(&mut rng(seed));
            let mut g = vfs.open(&p).unwrap();
            let got = g.read_all().unwrap();
            assert!(got.starts_with(b"durable"), "seed {seed}: {got:?}");
            assert!(b"durable and not".starts_with(&got), "seed {seed}: {got:?}");
        }
    }

    #[test]
    fn unsynced_writes_are_lost_or_torn_but_always_a_prefix() {
        let mut outcomes = std::collections::BTreeSet::new();
        for seed in 0..200 {
            let (vfs, dir) = setup();
            let p = dir.join("f");
            let mut f = vfs.create(&p).unwrap();
            vfs.sync_dir(&dir).unwrap();
            f.write_at(0, b"abcd").unwrap();
            f.write_at(4, b"efgh").unwrap();
            let report = vfs.crash(&mut rng(seed));
            let got = vfs.open(&p).unwrap().read_all().unwrap();
            assert!(b"abcdefgh".starts_with(&got), "seed {seed}: {got:?}");
            assert_eq!(report.bytes_lost, 8 - got.len() as u64, "seed {seed}");
            outcomes.insert(got.len());
        }
        // Every cut point, from nothing to everything, shows up.
        assert_eq!(outcomes.len(), 9, "{outcomes:?}");
    }

    #[test]
    fn handles_go_stale_after_a_crash() {
        let (vfs, dir) = setup();
        let mut f = vfs.create(&dir.join("f")).unwrap();
        vfs.sync_dir(&dir).unwrap();
        vfs.crash(&mut rng(1));
        assert!(f.write_at(0, b"x").is_err());
        assert!(f.sync_data().is_err());
    }

    #[test]
    fn unsynced_create_may_vanish_synced_create_stays() {
        let mut vanished = 0;
        for seed in 0..100 {
            let (vfs, dir) = setup();
            let mut a = vfs.create(&dir.join("a")).unwrap();
            a.sync_data().unwrap();
            vfs.sync_dir(&dir).unwrap();
            let mut b = vfs.create(&dir.join("b")).unwrap();
            b.write_at(0, b"data").unwrap();
            b.sync_data().unwrap();
            vfs.crash(&mut rng(seed));
            let names = vfs.list(&dir).unwrap();
            assert!(names.contains(&"a".to_string()));
            if !names.contains(&"b".to_string()) {
                vanished += 1;
            } else {
                assert_eq!(
                    vfs.open(&dir.join("b")).unwrap().read_all().unwrap(),
                    b"data"
                );
            }
        }
        assert!(vanished > 10 && vanished < 90, "{vanished}");
    }

    #[test]
    fn unsynced_rename_and_remove_may_be_undone() {
        let mut undone = 0;
        for seed in 0..100 {
            let (vfs, dir) = setup();
            let mut a = vfs.create(&dir.join("a")).unwrap();
            a.write_at(0, b"A").unwrap();
            a.sync_data().unwrap();
            vfs.sync_dir(&dir).unwrap();
            vfs.rename(&dir.join("a"), &dir.join("b")).unwrap();
            vfs.crash(&mut rng(seed));
            let names = vfs.list(&dir).unwrap();
            assert_eq!(names.len(), 1, "rename is atomic: {names:?}");
            if names[0] == "a" {
                undone += 1;
            }
            let only = dir.join(&names[0]);
            assert_eq!(vfs.open(&only).unwrap().read_all().unwrap(), b"A");
        }
        assert!(undone > 10 && undone < 90, "{undone}");
        let (vfs, dir) = setup();
        vfs.create(&dir.join("a")).unwrap();
        vfs.sync_dir(&dir).unwrap();
        vfs.remove(&dir.join("a")).unwrap();
        vfs.sync_dir(&dir).unwrap();
        vfs.crash(&mut rng(3));
        assert!(vfs.list(&dir).unwrap().is_empty());
    }

    #[test]
    fn injected_errors_are_bounded_and_typed() {
        let (vfs, dir) = setup();
        let p = dir.join("f");
        let mut f = vfs.create(&p).unwrap();
        vfs.fail_next_writes(2);
        assert!(f.write_at(0, b"x").is_err());
        let err = f.write_at(0, b"x").unwrap_err();
        assert_eq!(err.path(), p.as_path());
        f.write_at(0, b"x").unwrap();
        vfs.fail_next_syncs(1);
        assert!(f.sync_data().is_err());
        assert_eq!(vfs.durable_contents(&p).unwrap(), b"");
        f.sync_data().unwrap();
        assert_eq!(vfs.durable_contents(&p).unwrap(), b"x");
        assert_eq!(vfs.injected_faults(), 3);

        vfs.set_random_faults(
            7,
            FaultRates {
                write_error_ppm: 500_000,
                sync_error_ppm: 500_000,
                budget: 5,
            },
        );
        let failures = (0..100).filter(|_| f.write_at(0, b"y").is_err()).count();
        assert_eq!(failures, 5);
    }

    #[test]
    fn rename_over_an_existing_file_replaces_it() {
        let (vfs, dir) = setup();
        let mut a = vfs.create(&dir.join("a")).unwrap();
        a.write_at(0, b"new").unwrap();
        a.sync_data().unwrap();
        let mut b = vfs.create(&dir.join("b")).unwrap();
        b.write_at(0, b"old").unwrap();
        b.sync_data().unwrap();
        vfs.sync_dir(&dir).unwrap();
        vfs.rename(&dir.join("a"), &dir.join("b")).unwrap();
        vfs.sync_dir(&dir).unwrap();
        vfs.crash(&mut rng(5));
        assert_eq!(vfs.list(&dir).unwrap(), vec!["b".to_string()]);
        assert_eq!(
            vfs.open(&dir.join("b")).unwrap().read_all().unwrap(),
            b"new"
        );
        assert!(matches!(
            vfs.open(&dir.join("a")),
            Err(VfsError::NotFound { .. })
        ));
        assert!(matches!(
            vfs.create(&PathBuf::from("/nowhere/x")),
            Err(VfsError::NotFound { .. })
        ));
    }

    #[test]
    fn corrupt_flips_durable_byte() {
        let (vfs, dir) = setup();
        let p = dir.join("f");
        let mut f = vfs.create(&p).unwrap();
        f.write_at(0, &[1, 2, 3]).unwrap();
        f.sync_data().unwrap();
        vfs.sync_dir(&dir).unwrap();
        vfs.corrupt(&p, 1).unwrap();
        assert!(vfs.corrupt(&p, 3).is_err());
        vfs.crash(&mut rng(0));
        assert_eq!(vfs.open(&p).unwrap().read_all().unwrap(), vec![1, !2, 3]);
    }

    #[test]
    fn clones_share_one_disk_and_crash_is_deterministic() {
        let run = |seed| {
            let (vfs, dir) = setup();
            let other = vfs.clone();
            let mut f = other.create(&dir.join("f")).unwrap();
            for i in 0..20u8 {
                f.write_at(u64::from(i) * 3, &[i; 3]).unwrap();
            }
            let r = vfs.crash(&mut rng(seed));
            (
                r,
                vfs.list(&dir).unwrap(),
                other.durable_contents(&dir.join("f")).ok(),
            )
        };
        assert_eq!(run(11), run(11));
    }
}
