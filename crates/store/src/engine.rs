//! [`RedbEngine`]: the [`MvccEngine`] on a redb file.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Bound;
use std::path::{Path, PathBuf};

use redb::{
    Database, Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition,
    TableHandle, WriteTransaction,
};
use synod_kv::{
    record_digest, span_is_empty, EngineError, KeySpan, KeyValue, MvccEngine, Record, Rev,
};

use crate::codec::{self, MetaState};
use crate::{StoreConfig, StoreError};

/// Every write by revision: `(main, sub)` → the record with its key. New
/// writes land at the right edge of the tree (revisions only grow), so a
/// put touches one path that stays dirty in the open transaction.
const WRITES: TableDefinition<(i64, i64), &[u8]> = TableDefinition::new("writes");
/// The engine's state and its owner's metadata, committed with the data.
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const META_KEY: &str = "state";
/// Tables of the layout before `writes` (keyed by key, then revision).
const OLD_TABLES: [&str; 2] = ["kv", "revs"];

/// The revisions of one key held in the store, oldest first, each with
/// whether it is a tombstone.
type History = Vec<(Rev, bool)>;
/// Every key the file holds, with its history.
type Index = BTreeMap<Vec<u8>, History>;

/// Runs `$body` with the named tables open for reading: in the open write
/// transaction if there is one (to see its writes), else in a fresh read
/// transaction. The body is compiled once per table type.
macro_rules! with_tables {
    ($self:ident, $($t:ident = $def:expr),+ => $body:expr) => {{
        match &$self.txn {
            Some(tx) => {
                $(let $t = tx.open_table($def).map_err(|e| $self.redb(e.into()))?;)+
                $body
            }
            None => {
                let rtx = $self.db.begin_read().map_err(|e| $self.redb(e.into()))?;
                $(let $t = rtx.open_table($def).map_err(|e| $self.redb(e.into()))?;)+
                $body
            }
        }
    }};
}

/// What the caller gets back from [`RedbEngine::open`] beside the engine.
pub struct OpenedMeta {
    /// `KvStore::meta_image` of the last commit; `None` for a new store.
    pub kv_meta: Option<Vec<u8>>,
    /// The owner's opaque bytes of the last commit (empty for a new store).
    pub extra: Vec<u8>,
}

/// The multi-version data in one redb file, with an index in memory.
///
/// As etcd keeps its data (bbolt keyed by revision, a key index in memory):
/// the file holds every write under its revision; the index maps each key to
/// the revisions of it the file holds. A put appends at the file's right
/// edge and pushes onto the key's history; a read finds the revision in the
/// index and reads that one record; a count reads nothing from the file. The
/// index is rebuilt by one scan of the file when it is opened.
///
/// Writes go into one open write transaction until [`RedbEngine::commit_batch`],
/// which also writes the applied Raft index and the owner's metadata, so data
/// and index become visible (and, when durable, survive a crash) together.
/// Reads see the open transaction's writes. A failure of redb or a damaged
/// record found on a read is an error naming the file (and the table, key and
/// revision of a damaged record); nothing here panics on what the file holds.
pub struct RedbEngine {
    db: Database,
    path: PathBuf,
    txn: Option<WriteTransaction>,
    index: Index,
    digest: u64,
    len: u64,
    compacted: i64,
    applied: u64,
    durable_applied: u64,
    /// Scratch for encoding values.
    buf: Vec<u8>,
    /// A defragmentation asked for, carried out at the next durable commit.
    defrag_wanted: std::sync::atomic::AtomicBool,
    /// Defragmentations carried out (or given up on).
    defrags: std::sync::atomic::AtomicU64,
}

impl fmt::Debug for RedbEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedbEngine")
            .field("path", &self.path)
            .field("keys", &self.index.len())
            .field("len", &self.len)
            .field("applied", &self.applied)
            .field("durable_applied", &self.durable_applied)
            .field("in_transaction", &self.txn.is_some())
            .finish()
    }
}

fn show_key(key: &[u8]) -> String {
    let shown: String = key.escape_ascii().to_string();
    if shown.len() > 80 {
        format!("{}...", &shown[..80])
    } else {
        shown
    }
}

impl RedbEngine {
    /// Opens (or creates) the store file at `path` and builds the key index
    /// from it (checking every record's CRC on the way). With
    /// `config.verify_on_open`, every page checksum of the file is verified
    /// first (redb's integrity check; it reads the whole file).
    pub fn open(path: &Path, config: &StoreConfig) -> Result<(RedbEngine, OpenedMeta), StoreError> {
        let redb_err = |e: redb::Error| StoreError::Redb {
            path: path.to_path_buf(),
            source: Box::new(e),
        };
        let mut db = Database::builder()
            .set_cache_size(config.cache_bytes)
            .create(path)
            .map_err(|e| redb_err(e.into()))?;
        if config.verify_on_open {
            let detail = match db.check_integrity() {
                Ok(true) => None,
                Ok(false) => Some(
                    "page checksums did not verify; redb rolled the file back to an earlier \
                     commit, which this store refuses to trust"
                        .to_string(),
                ),
                Err(e) => Some(e.to_string()),
            };
            if let Some(mut detail) = detail {
                drop(db);
                // redb does not say where: our own record checksums may.
                let unchecked = StoreConfig {
                    verify_on_open: false,
                    ..config.clone()
                };
                if let Err(e) = RedbEngine::open(path, &unchecked) {
                    detail = format!("{detail}; first damaged entry found: {e}");
                }
                return Err(StoreError::Integrity {
                    path: path.to_path_buf(),
                    detail,
                });
            }
        }
        let mut engine = RedbEngine {
            db,
            path: path.to_path_buf(),
            txn: None,
            index: BTreeMap::new(),
            digest: 0,
            len: 0,
            compacted: 0,
            applied: 0,
            durable_applied: 0,
            buf: Vec::new(),
            defrag_wanted: std::sync::atomic::AtomicBool::new(false),
            defrags: std::sync::atomic::AtomicU64::new(0),
        };
        let state = {
            let tx = engine.db.begin_write().map_err(|e| redb_err(e.into()))?;
            let old = tx
                .list_tables()
                .map_err(|e| redb_err(e.into()))?
                .any(|t| OLD_TABLES.contains(&t.name()));
            if old {
                return Err(StoreError::Meta {
                    path: path.to_path_buf(),
                    what: "written by an older synod (tables `kv` and `revs`); this one keeps \
                           writes by revision: restore a snapshot into a new data dir"
                        .into(),
                });
            }
            // Creates the tables of a new file.
            tx.open_table(WRITES).map_err(|e| redb_err(e.into()))?;
            let raw = {
                let meta = tx.open_table(META).map_err(|e| redb_err(e.into()))?;
                let got = meta.get(META_KEY).map_err(|e| redb_err(e.into()))?;
                got.map(|g| g.value().to_vec())
            };
            tx.commit().map_err(|e| redb_err(e.into()))?;
            raw
        };
        let opened = match state {
            None => OpenedMeta {
                kv_meta: None,
                extra: Vec::new(),
            },
            Some(raw) => {
                let m = codec::decode_meta(&raw).map_err(|what| StoreError::Meta {
                    path: path.to_path_buf(),
                    what: what.into(),
                })?;
                engine.digest = m.digest;
                engine.len = m.len;
                engine.compacted = m.compacted;
                engine.applied = m.applied;
                engine.durable_applied = m.applied;
                OpenedMeta {
                    kv_meta: Some(m.kv_meta),
                    extra: m.extra,
                }
            }
        };
        let (index, n, _) = engine.scan_index(false)?;
        if n != engine.len {
            return Err(StoreError::Meta {
                path: path.to_path_buf(),
                what: format!(
                    "the file holds {n} writes but its metadata says {}",
                    engine.len
                ),
            });
        }
        engine.index = index;
        Ok((engine, opened))
    }

    /// Reads every write in revision order, checking each, into a fresh key
    /// index; also answers the number of writes and (with `digest`) their
    /// digest. Refuses a key history a store cannot have made (a tombstone
    /// first or twice in a row).
    fn scan_index(&self, digest: bool) -> Result<(Index, u64, u64), StoreError> {
        with_tables!(self, writes = WRITES => {
            let mut index = Index::new();
            let mut n = 0u64;
            let mut sum = 0u64;
            for item in writes.range::<(i64, i64)>(..).map_err(|e| self.redb(e.into()))? {
                let (k, v) = item.map_err(|e| self.redb(e.into()))?;
                let (main, sub) = k.value();
                let rev = Rev { main, sub };
                let (key, tomb) = codec::check_write(rev, v.value()).map_err(|what| {
                    self.corrupt(codec::key_as_stored(v.value()).unwrap_or_default(), rev, what)
                })?;
                let hist = index.entry(key.to_vec()).or_default();
                let follows_tomb = hist.last().is_none_or(|&(_, t)| t);
                if tomb && follows_tomb {
                    return Err(self.corrupt(key, rev, "tombstone without a live write before it"));
                }
                if digest {
                    let rec = codec::decode_write(rev, v.value())
                        .map_err(|what| self.corrupt(key, rev, what))?;
                    sum = sum.wrapping_add(record_digest(rev, &rec));
                }
                hist.push((rev, tomb));
                n += 1;
            }
            Ok((index, n, sum))
        })
    }

    /// The file this engine keeps its data in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The applied index of the last commit.
    pub fn applied(&self) -> u64 {
        self.applied
    }

    /// The applied index of the last durable commit: what a crash keeps.
    pub fn durable_applied(&self) -> u64 {
        self.durable_applied
    }

    /// Whether writes are waiting for a commit.
    pub fn dirty(&self) -> bool {
        self.txn.is_some()
    }

    /// Commits every write since the last commit in one transaction, together
    /// with the applied Raft index, the store's metadata and the owner's
    /// `extra` bytes. `durable`: fsync before returning (redb's
    /// `Durability::Immediate`); otherwise the commit is visible at once but
    /// a crash may lose it (and every non-durable commit before it).
    pub fn commit_batch(
        &mut self,
        applied: u64,
        kv_meta: &[u8],
        extra: &[u8],
        durable: bool,
    ) -> Result<(), StoreError> {
        assert!(
            applied >= self.applied,
            "applied index went back: {} after {}",
            applied,
            self.applied
        );
        let mut tx = match self.txn.take() {
            Some(tx) => tx,
            None => self.db.begin_write().map_err(|e| self.redb(e.into()))?,
        };
        let state = codec::encode_meta(&MetaState {
            applied,
            digest: self.digest,
            len: self.len,
            compacted: self.compacted,
            kv_meta: kv_meta.to_vec(),
            extra: extra.to_vec(),
        });
        {
            let mut meta = tx.open_table(META).map_err(|e| self.redb(e.into()))?;
            meta.insert(META_KEY, state.as_slice())
                .map_err(|e| self.redb(e.into()))?;
        }
        let level = if durable {
            Durability::Immediate
        } else {
            Durability::None
        };
        tx.set_durability(level)
            .map_err(|e| self.redb(redb::Error::from(e)))?;
        // Saves the allocator state with a durable commit, so that the open
        // after a crash does not walk the whole file to rebuild it.
        tx.set_quick_repair(durable);
        tx.commit().map_err(|e| self.redb(e.into()))?;
        self.applied = applied;
        if durable {
            self.durable_applied = applied;
            self.defragment_if_wanted();
        }
        Ok(())
    }

    /// Carries out a requested defragmentation: redb moves the live pages
    /// to the front of the file and cuts off the rest. Right after a
    /// durable commit, with no transaction open. A failure leaves the file
    /// as it was (redb compacts by ordinary commits), so it is not the
    /// store's failure: the file just stays larger.
    fn defragment_if_wanted(&mut self) {
        use std::sync::atomic::Ordering;
        if !self.defrag_wanted.swap(false, Ordering::AcqRel) {
            return;
        }
        while let Ok(true) = self.db.compact() {}
        self.defrags.fetch_add(1, Ordering::AcqRel);
    }

    /// Drops the writes since the last commit. The store above must be
    /// dropped too: it has seen them (and so has the key index).
    pub fn abort(&mut self) -> Result<(), StoreError> {
        if let Some(tx) = self.txn.take() {
            tx.abort().map_err(|e| self.redb(e.into()))?;
        }
        Ok(())
    }

    /// Size of the file in bytes.
    pub fn file_size(&self) -> Result<u64, StoreError> {
        std::fs::metadata(&self.path)
            .map(|m| m.len())
            .map_err(|e| self.redb(redb::Error::Io(e)))
    }

    fn redb(&self, e: redb::Error) -> StoreError {
        StoreError::Redb {
            path: self.path.clone(),
            source: Box::new(e),
        }
    }

    fn corrupt(&self, key: &[u8], rev: Rev, what: &str) -> StoreError {
        StoreError::Corrupt {
            path: self.path.clone(),
            table: "writes",
            key: show_key(key),
            main: rev.main,
            sub: rev.sub,
            what: what.into(),
        }
    }

    /// Opens the write transaction unless one is open.
    fn begin(&mut self) -> Result<(), StoreError> {
        if self.txn.is_none() {
            let tx = self.db.begin_write().map_err(|e| self.redb(e.into()))?;
            self.txn = Some(tx);
        }
        Ok(())
    }
}

/// The latest of `hist` below `hi`, if any.
fn latest(hist: &History, hi: Bound<Rev>) -> Option<(Rev, bool)> {
    let n = hist.partition_point(|(r, _)| match hi {
        Bound::Included(h) => *r <= h,
        Bound::Excluded(h) => *r < h,
        Bound::Unbounded => true,
    });
    n.checked_sub(1).map(|i| hist[i])
}

/// The latest of `hist` at main revision `at`, if it is live.
fn live_at(hist: &History, at: i64) -> Option<Rev> {
    let n = hist.partition_point(|(r, _)| r.main <= at);
    let (rev, tomb) = hist[..n].last()?;
    (!tomb).then_some(*rev)
}

impl RedbEngine {
    /// Reads the write of `key` at `rev` (the index says it is there).
    fn read<T>(&self, t: &T, key: &[u8], rev: Rev) -> Result<Record, StoreError>
    where
        T: ReadableTable<(i64, i64), &'static [u8]>,
    {
        let got = t
            .get((rev.main, rev.sub))
            .map_err(|e| self.redb(e.into()))?;
        let Some(bytes) = got else {
            return Err(self.corrupt(key, rev, "write missing from the file"));
        };
        let rec =
            codec::decode_write(rev, bytes.value()).map_err(|what| self.corrupt(key, rev, what))?;
        if rec.kv.key != key {
            return Err(self.corrupt(key, rev, "holds another key"));
        }
        Ok(rec)
    }

    /// The key's live state as of its latest write below `hi`.
    fn s_get(&self, key: &[u8], hi: Bound<Rev>) -> Result<Option<KeyValue>, StoreError> {
        let Some((rev, tomb)) = self.index.get(key).and_then(|h| latest(h, hi)) else {
            return Ok(None);
        };
        if tomb {
            return Ok(None);
        }
        let rec = with_tables!(self, writes = WRITES => self.read(&writes, key, rev))?;
        Ok(Some(rec.kv))
    }

    fn s_range(
        &self,
        span: KeySpan<'_>,
        at: i64,
        visit: &mut dyn FnMut(&KeyValue) -> bool,
    ) -> Result<(), StoreError> {
        if span_is_empty(&span) {
            return Ok(());
        }
        with_tables!(self, writes = WRITES => {
            for (key, hist) in self.index.range::<[u8], _>(span) {
                if let Some(rev) = live_at(hist, at) {
                    let rec = self.read(&writes, key, rev)?;
                    if !visit(&rec.kv) {
                        break;
                    }
                }
            }
            Ok(())
        })
    }

    fn s_count(&self, span: KeySpan<'_>, at: i64) -> usize {
        if span_is_empty(&span) {
            return 0;
        }
        self.index
            .range::<[u8], _>(span)
            .filter(|(_, hist)| live_at(hist, at).is_some())
            .count()
    }

    /// Writes `batch` in order under one open table (a write transaction
    /// is opened if none is), checking each write against its key's history.
    fn s_insert(
        &mut self,
        batch: impl IntoIterator<Item = (Rev, Record)>,
    ) -> Result<(), StoreError> {
        self.begin()?;
        let path = &self.path;
        let redb_err = |e: redb::Error| StoreError::Redb {
            path: path.clone(),
            source: Box::new(e),
        };
        let tx = self.txn.as_ref().expect("opened above");
        let mut writes = tx.open_table(WRITES).map_err(|e| redb_err(e.into()))?;
        for (rev, rec) in batch {
            assert_eq!(
                rec.kv.mod_revision, rev.main,
                "record stored under a foreign revision"
            );
            assert!(!rec.kv.key.is_empty(), "empty key reached the store");
            let hist = self.index.get_mut(rec.kv.key.as_slice());
            match &hist {
                Some(hist) => {
                    let &(last, tomb) = hist.last().expect("a history is never empty");
                    assert!(last < rev, "revision {rev:?} after {last:?} for one key");
                    assert!(!(tomb && rec.tombstone), "a tombstone over a tombstone");
                }
                None => assert!(!rec.tombstone, "a tombstone over a key never written"),
            }
            codec::encode_write(rev, &rec, &mut self.buf);
            let old = writes
                .insert((rev.main, rev.sub), self.buf.as_slice())
                .map_err(|e| redb_err(e.into()))?;
            assert!(old.is_none(), "revision {rev:?} written twice");
            self.digest = self.digest.wrapping_add(record_digest(rev, &rec));
            self.len += 1;
            let touch = (rev, rec.tombstone);
            match hist {
                Some(hist) => hist.push(touch),
                None => {
                    self.index.insert(rec.kv.key, vec![touch]);
                }
            }
        }
        Ok(())
    }

    fn s_since(
        &self,
        start: i64,
        visit: &mut dyn FnMut(Rev, &Record) -> bool,
    ) -> Result<(), StoreError> {
        with_tables!(self, writes = WRITES => {
            let it = writes
                .range::<(i64, i64)>((start, i64::MIN)..)
                .map_err(|e| self.redb(e.into()))?;
            for item in it {
                let (k, v) = item.map_err(|e| self.redb(e.into()))?;
                let (main, sub) = k.value();
                let rev = Rev { main, sub };
                let rec = codec::decode_write(rev, v.value()).map_err(|what| {
                    self.corrupt(codec::key_as_stored(v.value()).unwrap_or_default(), rev, what)
                })?;
                if !visit(rev, &rec) {
                    break;
                }
            }
            Ok(())
        })
    }

    fn s_key_since(
        &self,
        key: &[u8],
        start: i64,
        visit: &mut dyn FnMut(Rev, &Record) -> bool,
    ) -> Result<(), StoreError> {
        let Some(hist) = self.index.get(key) else {
            return Ok(());
        };
        let from = hist.partition_point(|(r, _)| r.main < start);
        with_tables!(self, writes = WRITES => {
            for &(rev, _) in &hist[from..] {
                let rec = self.read(&writes, key, rev)?;
                if !visit(rev, &rec) {
                    break;
                }
            }
            Ok(())
        })
    }

    /// For every key: drops its writes older than its latest one at or
    /// below `at`, and that one too when it is a tombstone (the key then
    /// leaves the index). Walks the index in memory and removes from the
    /// file only what goes.
    fn s_compact(&mut self, at: i64) -> Result<(), StoreError> {
        if at <= self.compacted {
            return Ok(());
        }
        let mut doomed: Vec<(Rev, Vec<u8>)> = Vec::new();
        let mut emptied: Vec<Vec<u8>> = Vec::new();
        for (key, hist) in &mut self.index {
            let n = hist.partition_point(|(r, _)| r.main <= at);
            if n == 0 {
                continue;
            }
            let upto = if hist[n - 1].1 { n } else { n - 1 };
            doomed.extend(hist.drain(..upto).map(|(r, _)| (r, key.clone())));
            if hist.is_empty() {
                emptied.push(key.clone());
            }
        }
        if !doomed.is_empty() {
            self.begin()?;
            let tx = self.txn.as_ref().expect("opened above");
            let mut writes = tx.open_table(WRITES).map_err(|e| self.redb(e.into()))?;
            let mut digest = self.digest;
            for (rev, key) in &doomed {
                let gone = writes
                    .remove((rev.main, rev.sub))
                    .map_err(|e| self.redb(e.into()))?
                    .ok_or_else(|| self.corrupt(key, *rev, "compacted write missing"))?;
                let rec = codec::decode_write(*rev, gone.value())
                    .map_err(|what| self.corrupt(key, *rev, what))?;
                digest = digest.wrapping_sub(record_digest(*rev, &rec));
            }
            drop(writes);
            self.digest = digest;
            self.len -= doomed.len() as u64;
        }
        for key in &emptied {
            self.index.remove(key);
        }
        self.compacted = at;
        Ok(())
    }

    fn s_clear(&mut self) -> Result<(), StoreError> {
        self.begin()?;
        let tx = self.txn.as_ref().expect("opened above");
        tx.delete_table(WRITES).map_err(|e| self.redb(e.into()))?;
        tx.open_table(WRITES).map_err(|e| self.redb(e.into()))?;
        self.index.clear();
        self.digest = 0;
        self.len = 0;
        self.compacted = 0;
        Ok(())
    }

    /// Checks every record's CRC and each key's history, that the index is
    /// the one the file makes, and the digest and count. Reads the whole
    /// store.
    fn s_check(&self) -> Result<(), StoreError> {
        let (index, n, digest) = self.scan_index(true)?;
        let in_table = with_tables!(self, writes = WRITES => {
            writes.len().map_err(|e| self.redb(e.into()))
        })?;
        if in_table != n {
            return Err(StoreError::Meta {
                path: self.path.clone(),
                what: format!("the writes table says it holds {in_table} writes, a scan found {n}"),
            });
        }
        if index != self.index {
            return Err(StoreError::Meta {
                path: self.path.clone(),
                what: "the key index disagrees with the file".into(),
            });
        }
        if n != self.len || digest != self.digest {
            return Err(StoreError::Meta {
                path: self.path.clone(),
                what: format!(
                    "data disagrees with its recorded digest/count ({n} writes, recorded {})",
                    self.len
                ),
            });
        }
        Ok(())
    }
}

fn eng(e: StoreError) -> EngineError {
    EngineError::new(e)
}

impl MvccEngine for RedbEngine {
    fn insert(&mut self, rev: Rev, rec: Record) -> Result<(), EngineError> {
        self.s_insert([(rev, rec)]).map_err(eng)
    }

    fn insert_batch(&mut self, batch: Vec<(Rev, Record)>) -> Result<(), EngineError> {
        self.s_insert(batch).map_err(eng)
    }

    fn get(&self, key: &[u8], at: i64) -> Result<Option<KeyValue>, EngineError> {
        self.s_get(
            key,
            Bound::Included(Rev {
                main: at,
                sub: i64::MAX,
            }),
        )
        .map_err(eng)
    }

    fn range(
        &self,
        span: KeySpan<'_>,
        at: i64,
        visit: &mut dyn FnMut(&KeyValue) -> bool,
    ) -> Result<(), EngineError> {
        self.s_range(span, at, visit).map_err(eng)
    }

    fn range_keys(
        &self,
        span: KeySpan<'_>,
        at: i64,
        visit: &mut dyn FnMut(&[u8]) -> bool,
    ) -> Result<(), EngineError> {
        if span_is_empty(&span) {
            return Ok(());
        }
        for (key, hist) in self.index.range::<[u8], _>(span) {
            if live_at(hist, at).is_some() && !visit(key) {
                break;
            }
        }
        Ok(())
    }

    fn count(&self, span: KeySpan<'_>, at: i64) -> Result<usize, EngineError> {
        Ok(self.s_count(span, at))
    }

    fn before(&self, key: &[u8], rev: Rev) -> Result<Option<KeyValue>, EngineError> {
        self.s_get(key, Bound::Excluded(rev)).map_err(eng)
    }

    fn since(
        &self,
        start: i64,
        visit: &mut dyn FnMut(Rev, &Record) -> bool,
    ) -> Result<(), EngineError> {
        self.s_since(start, visit).map_err(eng)
    }

    fn key_since(
        &self,
        key: &[u8],
        start: i64,
        visit: &mut dyn FnMut(Rev, &Record) -> bool,
    ) -> Result<(), EngineError> {
        self.s_key_since(key, start, visit).map_err(eng)
    }

    fn compact(&mut self, at: i64) -> Result<(), EngineError> {
        self.s_compact(at).map_err(eng)
    }

    fn clear(&mut self) -> Result<(), EngineError> {
        self.s_clear().map_err(eng)
    }

    fn digest(&self) -> u64 {
        self.digest
    }

    fn len(&self) -> u64 {
        self.len
    }

    fn check(&self) -> Result<(), EngineError> {
        self.s_check().map_err(eng)
    }

    fn commit(
        &mut self,
        applied: u64,
        kv_meta: &[u8],
        extra: &[u8],
        durable: bool,
    ) -> Result<(), EngineError> {
        self.commit_batch(applied, kv_meta, extra, durable)
            .map_err(eng)
    }

    fn durable_applied(&self) -> Option<u64> {
        Some(self.durable_applied)
    }

    fn request_defragment(&self) {
        self.defrag_wanted
            .store(true, std::sync::atomic::Ordering::Release);
    }

    fn defragmentations(&self) -> u64 {
        self.defrags.load(std::sync::atomic::Ordering::Acquire)
    }
}
