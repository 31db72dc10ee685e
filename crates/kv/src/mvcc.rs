//! Multi-version storage, the seam a disk engine will later replace: every
//! write kept under its revision (a put's kv or a tombstone), and an index from
//! each key to the revisions that touched it. Nothing else in the crate touches
//! these maps; [`Mvcc`]'s methods are the whole contract.

use std::collections::BTreeMap;
use std::ops::Bound;

use serde::{Deserialize, Serialize};

use crate::fnv::{mix, Fnv};
use crate::types::KeyValue;

/// Position of one write: the command's revision and its place inside it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub(crate) struct Rev {
    /// The store revision of the command.
    pub main: i64,
    /// Index of the write inside the command (0, 1, ...).
    pub sub: i64,
}

/// One stored write.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Record {
    /// The key after the write; for a tombstone only `key` and `mod_revision`.
    pub kv: KeyValue,
    /// True for a delete.
    pub tombstone: bool,
}

/// The key interval a request names, after etcd's `range_end` rules.
pub(crate) type Span<'a> = (Bound<&'a [u8]>, Bound<&'a [u8]>);

/// `range_end` empty: just `key`; `[0]`: every key `>= key`; otherwise
/// `[key, range_end)`, empty when `range_end <= key`.
pub(crate) fn span<'a>(key: &'a [u8], range_end: &'a [u8]) -> Span<'a> {
    if range_end.is_empty() {
        (Bound::Included(key), Bound::Included(key))
    } else if range_end == [0] {
        (Bound::Included(key), Bound::Unbounded)
    } else if range_end <= key {
        // An empty interval that BTreeMap::range accepts.
        (Bound::Included(key), Bound::Excluded(key))
    } else {
        (Bound::Included(key), Bound::Excluded(range_end))
    }
}

/// Whether `k` lies in `s`.
pub(crate) fn span_contains(s: &Span<'_>, k: &[u8]) -> bool {
    let lower = match s.0 {
        Bound::Included(a) => k >= a,
        Bound::Excluded(a) => k > a,
        Bound::Unbounded => true,
    };
    let upper = match s.1 {
        Bound::Included(b) => k <= b,
        Bound::Excluded(b) => k < b,
        Bound::Unbounded => true,
    };
    lower && upper
}

/// Index entry: a revision that touched the key, and whether it deleted it.
type Touch = (Rev, bool);

/// The multi-version store.
#[derive(Clone, Debug, Default)]
pub(crate) struct Mvcc {
    log: BTreeMap<Rev, Record>,
    index: BTreeMap<Vec<u8>, Vec<Touch>>,
    /// Wrapping sum of [`record_digest`] over the log: an order-free digest
    /// that insertions add to and compaction subtracts from.
    digest: u64,
}

/// The digest of one stored write.
fn record_digest(rev: Rev, rec: &Record) -> u64 {
    let mut h = Fnv::new();
    h.write_i64(rev.main);
    h.write_i64(rev.sub);
    h.write(&[u8::from(rec.tombstone)]);
    h.write_kv(&rec.kv);
    mix(h.finish())
}

/// The last touch at or before main revision `at`, if it was not a delete.
fn live_at(touches: &[Touch], at: i64) -> Option<Rev> {
    let n = touches.partition_point(|(r, _)| r.main <= at);
    match n.checked_sub(1).map(|i| touches[i]) {
        Some((rev, false)) => Some(rev),
        _ => None,
    }
}

impl Mvcc {
    /// Stores a write. Revisions of one key only grow.
    pub fn insert(&mut self, rev: Rev, rec: Record) {
        assert_eq!(
            rec.kv.mod_revision, rev.main,
            "record stored under a foreign revision"
        );
        assert!(!rec.kv.key.is_empty(), "empty key reached the store");
        let touches = self.index.entry(rec.kv.key.clone()).or_default();
        if let Some((last, was_tomb)) = touches.last() {
            assert!(
                *last < rev,
                "key revisions must grow: {last:?} then {rev:?}"
            );
            assert!(!(rec.tombstone && *was_tomb), "tombstone over a tombstone");
        } else {
            assert!(!rec.tombstone, "tombstone for a key never written");
        }
        touches.push((rev, rec.tombstone));
        self.digest = self.digest.wrapping_add(record_digest(rev, &rec));
        let old = self.log.insert(rev, rec);
        assert!(old.is_none(), "revision {rev:?} written twice");
    }

    fn record(&self, rev: Rev) -> &Record {
        self.log
            .get(&rev)
            .expect("index names a revision missing from the log")
    }

    /// The key as of main revision `at`, if it existed then.
    pub fn get(&self, key: &[u8], at: i64) -> Option<&KeyValue> {
        let touches = self.index.get(key)?;
        live_at(touches, at).map(|r| &self.record(r).kv)
    }

    /// Every key of `s` alive at `at`, in key order.
    pub fn range<'a>(&'a self, s: Span<'a>, at: i64) -> impl Iterator<Item = &'a KeyValue> + 'a {
        self.index
            .range::<[u8], _>(s)
            .filter_map(move |(_, t)| live_at(t, at))
            .map(|r| &self.record(r).kv)
    }

    /// Number of keys of `s` alive at `at`.
    pub fn count(&self, s: Span<'_>, at: i64) -> usize {
        self.index
            .range::<[u8], _>(s)
            .filter(|(_, t)| live_at(t, at).is_some())
            .count()
    }

    /// The key's live state just before `rev` (for an event's `prev_kv`).
    pub fn before(&self, key: &[u8], rev: Rev) -> Option<&KeyValue> {
        let touches = self.index.get(key)?;
        let n = touches.partition_point(|(r, _)| *r < rev);
        match n.checked_sub(1).map(|i| touches[i]) {
            Some((r, false)) => Some(&self.record(r).kv),
            _ => None,
        }
    }

    /// Every stored write with main revision `>= start`, in revision order.
    pub fn since(&self, start: i64) -> impl Iterator<Item = (&Rev, &Record)> {
        self.log.range(
            Rev {
                main: start,
                sub: 0,
            }..,
        )
    }

    /// Drops every write older than `at` except each key's latest one as of
    /// `at`, and that one too when it is a tombstone.
    pub fn compact(&mut self, at: i64) {
        let mut emptied = Vec::new();
        for (key, touches) in self.index.iter_mut() {
            let n = touches.partition_point(|(r, _)| r.main <= at);
            let keep_from = match n.checked_sub(1).map(|i| touches[i]) {
                Some((_, true)) => n,
                Some((_, false)) => n - 1,
                None => 0,
            };
            for (rev, _) in touches.drain(..keep_from) {
                let gone = self
                    .log
                    .remove(&rev)
                    .expect("compacted revision missing from the log");
                self.digest = self.digest.wrapping_sub(record_digest(rev, &gone));
            }
            if touches.is_empty() {
                emptied.push(key.clone());
            }
        }
        for key in emptied {
            self.index.remove(&key);
        }
    }

    /// The order-free digest of every stored write.
    pub fn digest(&self) -> u64 {
        self.digest
    }

    /// The stored writes of one key with main revision `>= start`, in order.
    pub fn key_since<'a>(
        &'a self,
        key: &[u8],
        start: i64,
    ) -> impl Iterator<Item = (&'a Rev, &'a Record)> + 'a {
        let touches: &[Touch] = self.index.get(key).map_or(&[], |t| t.as_slice());
        let from = touches.partition_point(|(r, _)| r.main < start);
        touches[from..]
            .iter()
            .map(move |(r, _)| (r, self.record(*r)))
    }

    /// Number of stored writes (tombstones included).
    pub fn len(&self) -> usize {
        self.log.len()
    }

    /// Asserts that the index and the log describe the same writes and that
    /// the digest is their sum. O(data): for tests and simulation checks.
    pub fn check(&self) {
        let mut seen = 0usize;
        let mut digest = 0u64;
        for (key, touches) in &self.index {
            assert!(!touches.is_empty(), "index holds a key with no writes");
            assert!(!touches[0].1, "a key's first stored write is a tombstone");
            for pair in touches.windows(2) {
                assert!(pair[0].0 < pair[1].0, "key revisions out of order");
                assert!(!(pair[0].1 && pair[1].1), "two tombstones in a row");
            }
            for (rev, tomb) in touches {
                let rec = self.record(*rev);
                assert_eq!(
                    (&rec.kv.key, rec.tombstone),
                    (key, *tomb),
                    "index and log disagree at {rev:?}"
                );
                digest = digest.wrapping_add(record_digest(*rev, rec));
                seen += 1;
            }
        }
        assert_eq!(
            seen,
            self.log.len(),
            "log holds writes the index does not name"
        );
        assert_eq!(digest, self.digest, "incremental digest drifted");
    }
}
