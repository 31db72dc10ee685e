//! [`RedbEngine`]: the [`MvccEngine`] on a redb file.

use std::collections::BTreeSet;
use std::fmt;
use std::ops::Bound;
use std::path::{Path, PathBuf};

use redb::{
    Database, Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition,
    WriteTransaction,
};
use synod_kv::{
    record_digest, span_is_empty, EngineError, KeySpan, KeyValue, MvccEngine, Record, Rev,
};

use crate::codec::{self, MetaState};
use crate::{StoreConfig, StoreError};

/// Every write: `(key, main, sub)` → record. Key order, then revision order,
/// so a read at a revision scans keys in order and takes each key's latest
/// write at or below it.
const KV: TableDefinition<(&[u8], i64, i64), &[u8]> = TableDefinition::new("kv");
/// Every write by revision: `(main, sub)` → key, for watch catch-up and compaction.
const REVS: TableDefinition<(i64, i64), &[u8]> = TableDefinition::new("revs");
/// The engine's state and its owner's metadata, committed with the data.
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const META_KEY: &str = "state";

/// Revisions handled per step of a compaction (bounds its memory).
const COMPACT_CHUNK: usize = 4096;

/// What the caller gets back from [`RedbEngine::open`] beside the engine.
pub struct OpenedMeta {
    /// `KvStore::meta_image` of the last commit; `None` for a new store.
    pub kv_meta: Option<Vec<u8>>,
    /// The owner's opaque bytes of the last commit (empty for a new store).
    pub extra: Vec<u8>,
}

/// The multi-version data in one redb file.
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
    digest: u64,
    len: u64,
    compacted: i64,
    applied: u64,
    durable_applied: u64,
    /// Scratch for encoding values.
    buf: Vec<u8>,
}

impl fmt::Debug for RedbEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedbEngine")
            .field("path", &self.path)
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
    /// Opens (or creates) the store file at `path`. With
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
                if let Ok((engine, _)) = RedbEngine::open(path, &unchecked) {
                    if let Err(e) = engine.s_check() {
                        detail = format!("{detail}; first damaged entry found: {e}");
                    }
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
            digest: 0,
            len: 0,
            compacted: 0,
            applied: 0,
            durable_applied: 0,
            buf: Vec::new(),
        };
        let state = {
            let tx = engine.db.begin_write().map_err(|e| redb_err(e.into()))?;
            // Creates the tables of a new file.
            tx.open_table(KV).map_err(|e| redb_err(e.into()))?;
            tx.open_table(REVS).map_err(|e| redb_err(e.into()))?;
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
        Ok((engine, opened))
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
        }
        Ok(())
    }

    /// Drops the writes since the last commit. The store above must be
    /// dropped too: it has seen them.
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

    fn corrupt(&self, table: &'static str, key: &[u8], rev: Rev, what: &str) -> StoreError {
        StoreError::Corrupt {
            path: self.path.clone(),
            table,
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

/// Sees `(key, revision, record bytes)` of each live key; false stops the scan.
type LiveVisitor<'a> = dyn FnMut(&[u8], Rev, &[u8]) -> Result<bool, StoreError> + 'a;

type KvBound<'a> = Bound<(&'a [u8], i64, i64)>;

/// The `kv` table bounds of a key span: every revision of every key in it.
fn kv_bounds<'a>(span: &KeySpan<'a>) -> (KvBound<'a>, KvBound<'a>) {
    let lo = match span.0 {
        Bound::Included(k) => Bound::Included((k, i64::MIN, i64::MIN)),
        Bound::Excluded(k) => Bound::Excluded((k, i64::MAX, i64::MAX)),
        Bound::Unbounded => Bound::Unbounded,
    };
    let hi = match span.1 {
        Bound::Included(k) => Bound::Included((k, i64::MAX, i64::MAX)),
        Bound::Excluded(k) => Bound::Excluded((k, i64::MIN, i64::MIN)),
        Bound::Unbounded => Bound::Unbounded,
    };
    (lo, hi)
}

impl RedbEngine {
    /// The key's latest write in `(key, lo) ..= (key, hi)` (revision bounds), decoded.
    fn last_in<T>(&self, t: &T, key: &[u8], hi: Bound<Rev>) -> Result<Option<Record>, StoreError>
    where
        T: ReadableTable<(&'static [u8], i64, i64), &'static [u8]>,
    {
        let upper = match hi {
            Bound::Included(r) => Bound::Included((key, r.main, r.sub)),
            Bound::Excluded(r) => Bound::Excluded((key, r.main, r.sub)),
            Bound::Unbounded => Bound::Included((key, i64::MAX, i64::MAX)),
        };
        let lower = Bound::Included((key, i64::MIN, i64::MIN));
        let mut it = t
            .range::<(&[u8], i64, i64)>((lower, upper))
            .map_err(|e| self.redb(e.into()))?;
        let Some(item) = it.next_back() else {
            return Ok(None);
        };
        let (k, v) = item.map_err(|e| self.redb(e.into()))?;
        let (_, main, sub) = k.value();
        let rev = Rev { main, sub };
        let rec = codec::decode_record(key, rev, v.value())
            .map_err(|what| self.corrupt("kv", key, rev, what))?;
        Ok(Some(rec))
    }

    /// Scans the live keys of `span` at `at`: calls `visit(key, rev, bytes)`
    /// with the record bytes (checked) of each key's latest non-tombstone
    /// write at or below `at`, until it returns false.
    fn scan_live<T>(
        &self,
        t: &T,
        span: &KeySpan<'_>,
        at: i64,
        visit: &mut LiveVisitor<'_>,
    ) -> Result<(), StoreError>
    where
        T: ReadableTable<(&'static [u8], i64, i64), &'static [u8]>,
    {
        if span_is_empty(span) {
            return Ok(());
        }
        let it = t
            .range::<(&[u8], i64, i64)>(kv_bounds(span))
            .map_err(|e| self.redb(e.into()))?;
        // The key being scanned and its latest write so far at or below `at`.
        let mut cur_key: Vec<u8> = Vec::new();
        let mut cand: Option<Rev> = None;
        let mut cand_bytes: Vec<u8> = Vec::new();
        let mut started = false;
        for item in it {
            let (k, v) = item.map_err(|e| self.redb(e.into()))?;
            let (key, main, sub) = k.value();
            if !started || key != cur_key.as_slice() {
                if let Some(rev) = cand.take() {
                    let tomb = codec::check_record(&cur_key, rev, &cand_bytes)
                        .map_err(|what| self.corrupt("kv", &cur_key, rev, what))?;
                    if !tomb && !visit(&cur_key, rev, &cand_bytes)? {
                        return Ok(());
                    }
                }
                started = true;
                cur_key.clear();
                cur_key.extend_from_slice(key);
            }
            if main <= at {
                cand = Some(Rev { main, sub });
                cand_bytes.clear();
                cand_bytes.extend_from_slice(v.value());
            }
        }
        if let Some(rev) = cand {
            let tomb = codec::check_record(&cur_key, rev, &cand_bytes)
                .map_err(|what| self.corrupt("kv", &cur_key, rev, what))?;
            if !tomb {
                visit(&cur_key, rev, &cand_bytes)?;
            }
        }
        Ok(())
    }

    /// The key's live state as of its latest write below `hi`.
    fn s_get(&self, key: &[u8], hi: Bound<Rev>) -> Result<Option<KeyValue>, StoreError> {
        let rec = with_tables!(self, kv = KV => self.last_in(&kv, key, hi))?;
        Ok(rec.filter(|r| !r.tombstone).map(|r| r.kv))
    }

    fn s_range(
        &self,
        span: KeySpan<'_>,
        at: i64,
        visit: &mut dyn FnMut(&KeyValue) -> bool,
    ) -> Result<(), StoreError> {
        with_tables!(self, kv = KV => {
            self.scan_live(&kv, &span, at, &mut |key, rev, bytes| {
                let rec = codec::decode_record(key, rev, bytes)
                    .map_err(|what| self.corrupt("kv", key, rev, what))?;
                Ok(visit(&rec.kv))
            })
        })
    }

    fn s_count(&self, span: KeySpan<'_>, at: i64) -> Result<usize, StoreError> {
        let mut n = 0usize;
        with_tables!(self, kv = KV => {
            self.scan_live(&kv, &span, at, &mut |_, _, _| {
                n += 1;
                Ok(true)
            })
        })?;
        Ok(n)
    }

    fn s_insert(&mut self, rev: Rev, rec: Record) -> Result<(), StoreError> {
        assert_eq!(
            rec.kv.mod_revision, rev.main,
            "record stored under a foreign revision"
        );
        assert!(!rec.kv.key.is_empty(), "empty key reached the store");
        self.begin()?;
        let tx = self.txn.as_ref().expect("opened above");
        let buf = &mut self.buf;
        let path = &self.path;
        let redb = |e: redb::Error| StoreError::Redb {
            path: path.clone(),
            source: Box::new(e),
        };
        codec::encode_record(rev, &rec, buf);
        {
            let mut kv = tx.open_table(KV).map_err(|e| redb(e.into()))?;
            let old = kv
                .insert((rec.kv.key.as_slice(), rev.main, rev.sub), buf.as_slice())
                .map_err(|e| redb(e.into()))?;
            assert!(old.is_none(), "revision {rev:?} written twice");
        }
        codec::encode_rev_key(rev, &rec.kv.key, buf);
        {
            let mut revs = tx.open_table(REVS).map_err(|e| redb(e.into()))?;
            let old = revs
                .insert((rev.main, rev.sub), buf.as_slice())
                .map_err(|e| redb(e.into()))?;
            assert!(old.is_none(), "revision {rev:?} written twice");
        }
        self.digest = self.digest.wrapping_add(record_digest(rev, &rec));
        self.len += 1;
        Ok(())
    }

    fn s_since(
        &self,
        start: i64,
        visit: &mut dyn FnMut(Rev, &Record) -> bool,
    ) -> Result<(), StoreError> {
        with_tables!(self, revs = REVS, kv = KV => {
            let it = revs
                .range::<(i64, i64)>((start, i64::MIN)..)
                .map_err(|e| self.redb(e.into()))?;
            for item in it {
                let (k, v) = item.map_err(|e| self.redb(e.into()))?;
                let (main, sub) = k.value();
                let rev = Rev { main, sub };
                let key = codec::decode_rev_key(rev, v.value())
                    .map_err(|what| self.corrupt("revs", b"", rev, what))?;
                let got = kv.get((key, main, sub)).map_err(|e| self.redb(e.into()))?;
                let Some(bytes) = got else {
                    return Err(self.corrupt("revs", key, rev, "names a write the kv table lacks"));
                };
                let rec = codec::decode_record(key, rev, bytes.value())
                    .map_err(|what| self.corrupt("kv", key, rev, what))?;
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
        with_tables!(self, kv = KV => {
            let it = kv
                .range::<(&[u8], i64, i64)>((key, start, i64::MIN)..=(key, i64::MAX, i64::MAX))
                .map_err(|e| self.redb(e.into()))?;
            for item in it {
                let (k, v) = item.map_err(|e| self.redb(e.into()))?;
                let (_, main, sub) = k.value();
                let rev = Rev { main, sub };
                let rec = codec::decode_record(key, rev, v.value())
                    .map_err(|what| self.corrupt("kv", key, rev, what))?;
                if !visit(rev, &rec) {
                    break;
                }
            }
            Ok(())
        })
    }

    /// Compaction touches only the writes made since the last compaction:
    /// a key none of them wrote keeps its single survivor. For each such write
    /// `w` of key `k` (in revision order, in bounded chunks): `w` goes if a
    /// later write of `k` is at or below `at`, or if it is a tombstone and the
    /// latest; `k`'s survivor of the last compaction goes when `w` is the
    /// first write after it.
    fn s_compact(&mut self, at: i64) -> Result<(), StoreError> {
        let from = self.compacted;
        if at <= from {
            return Ok(());
        }
        self.begin()?;
        let mut cursor = Bound::Excluded((from, i64::MAX));
        loop {
            // (revision, key) of the next chunk of writes in (from, at].
            let mut chunk: Vec<(Rev, Vec<u8>)> = Vec::with_capacity(COMPACT_CHUNK);
            let mut doomed: BTreeSet<(Vec<u8>, Rev)> = BTreeSet::new();
            {
                let tx = self.txn.as_ref().expect("opened above");
                let revs = tx.open_table(REVS).map_err(|e| self.redb(e.into()))?;
                let kv = tx.open_table(KV).map_err(|e| self.redb(e.into()))?;
                let it = revs
                    .range::<(i64, i64)>((cursor, Bound::Included((at, i64::MAX))))
                    .map_err(|e| self.redb(e.into()))?;
                for item in it.take(COMPACT_CHUNK) {
                    let (k, v) = item.map_err(|e| self.redb(e.into()))?;
                    let (main, sub) = k.value();
                    let rev = Rev { main, sub };
                    let key = codec::decode_rev_key(rev, v.value())
                        .map_err(|what| self.corrupt("revs", b"", rev, what))?;
                    chunk.push((rev, key.to_vec()));
                }
                for (rev, key) in &chunk {
                    let key = key.as_slice();
                    let mut after = kv
                        .range::<(&[u8], i64, i64)>((
                            Bound::Excluded((key, rev.main, rev.sub)),
                            Bound::Included((key, i64::MAX, i64::MAX)),
                        ))
                        .map_err(|e| self.redb(e.into()))?;
                    let superseded = match after.next() {
                        Some(n) => {
                            let (n, _) = n.map_err(|e| self.redb(e.into()))?;
                            n.value().1 <= at
                        }
                        None => false,
                    };
                    drop(after);
                    let here = kv
                        .get((key, rev.main, rev.sub))
                        .map_err(|e| self.redb(e.into()))?
                        .ok_or_else(|| {
                            self.corrupt("revs", key, *rev, "names a write the kv table lacks")
                        })?;
                    let tomb = codec::check_record(key, *rev, here.value())
                        .map_err(|what| self.corrupt("kv", key, *rev, what))?;
                    if superseded || tomb {
                        doomed.insert((key.to_vec(), *rev));
                    }
                    let mut before = kv
                        .range::<(&[u8], i64, i64)>((
                            Bound::Included((key, i64::MIN, i64::MIN)),
                            Bound::Excluded((key, rev.main, rev.sub)),
                        ))
                        .map_err(|e| self.redb(e.into()))?;
                    if let Some(p) = before.next_back() {
                        let (p, _) = p.map_err(|e| self.redb(e.into()))?;
                        let (_, main, sub) = p.value();
                        if main <= from {
                            doomed.insert((key.to_vec(), Rev { main, sub }));
                        }
                    }
                }
            }
            let Some((last, _)) = chunk.last() else {
                break;
            };
            cursor = Bound::Excluded((last.main, last.sub));
            self.remove_writes(&doomed)?;
            if chunk.len() < COMPACT_CHUNK {
                break;
            }
        }
        self.compacted = at;
        Ok(())
    }

    fn remove_writes(&mut self, doomed: &BTreeSet<(Vec<u8>, Rev)>) -> Result<(), StoreError> {
        let tx = self.txn.as_ref().expect("compaction runs in a transaction");
        let mut kv = tx.open_table(KV).map_err(|e| self.redb(e.into()))?;
        let mut revs = tx.open_table(REVS).map_err(|e| self.redb(e.into()))?;
        let mut digest = self.digest;
        let mut len = self.len;
        for (key, rev) in doomed {
            let gone = kv
                .remove((key.as_slice(), rev.main, rev.sub))
                .map_err(|e| self.redb(e.into()))?
                .ok_or_else(|| self.corrupt("kv", key, *rev, "compacted write missing"))?;
            let rec = codec::decode_record(key, *rev, gone.value())
                .map_err(|what| self.corrupt("kv", key, *rev, what))?;
            drop(gone);
            digest = digest.wrapping_sub(record_digest(*rev, &rec));
            len -= 1;
            let r = revs
                .remove((rev.main, rev.sub))
                .map_err(|e| self.redb(e.into()))?;
            if r.is_none() {
                return Err(self.corrupt("revs", key, *rev, "compacted write missing"));
            }
        }
        drop((kv, revs));
        self.digest = digest;
        self.len = len;
        Ok(())
    }

    fn s_clear(&mut self) -> Result<(), StoreError> {
        self.begin()?;
        let tx = self.txn.as_ref().expect("opened above");
        tx.delete_table(KV).map_err(|e| self.redb(e.into()))?;
        tx.delete_table(REVS).map_err(|e| self.redb(e.into()))?;
        tx.open_table(KV).map_err(|e| self.redb(e.into()))?;
        tx.open_table(REVS).map_err(|e| self.redb(e.into()))?;
        self.digest = 0;
        self.len = 0;
        self.compacted = 0;
        Ok(())
    }

    /// Checks every record's CRC, that the two tables name the same writes,
    /// each key's history (no tombstone first or twice in a row), and the
    /// digest and count. Reads the whole store.
    fn s_check(&self) -> Result<(), StoreError> {
        with_tables!(self, revs = REVS, kv = KV => {
            let mut digest = 0u64;
            let mut n = 0u64;
            let mut last: Option<(Vec<u8>, bool)> = None;
            for item in kv.range::<(&[u8], i64, i64)>(..).map_err(|e| self.redb(e.into()))? {
                let (k, v) = item.map_err(|e| self.redb(e.into()))?;
                let (key, main, sub) = k.value();
                let rev = Rev { main, sub };
                let rec = codec::decode_record(key, rev, v.value())
                    .map_err(|what| self.corrupt("kv", key, rev, what))?;
                let same_key = last.as_ref().is_some_and(|(k, _)| k.as_slice() == key);
                if rec.tombstone && (!same_key || last.as_ref().is_some_and(|(_, t)| *t)) {
                    return Err(self.corrupt("kv", key, rev, "tombstone without a live write before it"));
                }
                let named = revs.get((main, sub)).map_err(|e| self.redb(e.into()))?;
                match named {
                    Some(g) => {
                        let rk = codec::decode_rev_key(rev, g.value())
                            .map_err(|what| self.corrupt("revs", key, rev, what))?;
                        if rk != key {
                            return Err(self.corrupt("revs", key, rev, "names another key"));
                        }
                    }
                    None => return Err(self.corrupt("revs", key, rev, "write missing from the revs table")),
                }
                digest = digest.wrapping_add(record_digest(rev, &rec));
                n += 1;
                last = Some((key.to_vec(), rec.tombstone));
            }
            let in_revs = revs.len().map_err(|e| self.redb(e.into()))?;
            if in_revs != n {
                return Err(StoreError::Meta {
                    path: self.path.clone(),
                    what: format!("revs table holds {in_revs} writes, kv table {n}"),
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
        })
    }
}

fn eng(e: StoreError) -> EngineError {
    EngineError(e.to_string())
}

impl MvccEngine for RedbEngine {
    fn insert(&mut self, rev: Rev, rec: Record) -> Result<(), EngineError> {
        self.s_insert(rev, rec).map_err(eng)
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

    fn count(&self, span: KeySpan<'_>, at: i64) -> Result<usize, EngineError> {
        self.s_count(span, at).map_err(eng)
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
}
