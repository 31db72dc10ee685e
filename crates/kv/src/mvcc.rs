//! The in-memory [`MvccEngine`]: every write kept under its revision (a put's
//! kv or a tombstone), and an index from each key to the revisions that touched
//! it. The simulator and the tests run on it; the server keeps its data on a
//! disk engine with the same contract.

use std::collections::BTreeMap;
use std::ops::Bound;

use crate::engine::{record_digest, span_is_empty, EngineError, KeySpan, MvccEngine, Record, Rev};
use crate::types::KeyValue;

/// The key interval a request names, after etcd's `range_end` rules.
pub(crate) type Span<'a> = KeySpan<'a>;

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

/// The in-memory multi-version store.
#[derive(Clone, Debug, Default)]
pub struct Mvcc {
    log: BTreeMap<Rev, Record>,
    index: BTreeMap<Vec<u8>, Vec<Touch>>,
    /// Wrapping sum of [`record_digest`] over the log: an order-free digest
    /// that insertions add to and compaction subtracts from.
    digest: u64,
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
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn record(&self, rev: Rev) -> &Record {
        self.log
            .get(&rev)
            .expect("index names a revision missing from the log")
    }

    fn live(&self, s: Span<'_>, at: i64) -> impl Iterator<Item = &KeyValue> + '_ {
        let entries = if span_is_empty(&s) {
            None
        } else {
            Some(self.index.range::<[u8], _>(s))
        };
        entries
            .into_iter()
            .flatten()
            .filter_map(move |(_, t)| live_at(t, at))
            .map(|r| &self.record(r).kv)
    }
}

impl MvccEngine for Mvcc {
    fn insert(&mut self, rev: Rev, rec: Record) -> Result<(), EngineError> {
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
        Ok(())
    }

    fn get(&self, key: &[u8], at: i64) -> Result<Option<KeyValue>, EngineError> {
        Ok(self
            .index
            .get(key)
            .and_then(|t| live_at(t, at))
            .map(|r| self.record(r).kv.clone()))
    }

    fn range(
        &self,
        span: KeySpan<'_>,
        at: i64,
        visit: &mut dyn FnMut(&KeyValue) -> bool,
    ) -> Result<(), EngineError> {
        for kv in self.live(span, at) {
            if !visit(kv) {
                break;
            }
        }
        Ok(())
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
        for (key, touches) in self.index.range::<[u8], _>(span) {
            if live_at(touches, at).is_some() && !visit(key) {
                break;
            }
        }
        Ok(())
    }

    fn count(&self, span: KeySpan<'_>, at: i64) -> Result<usize, EngineError> {
        if span_is_empty(&span) {
            return Ok(0);
        }
        Ok(self
            .index
            .range::<[u8], _>(span)
            .filter(|(_, t)| live_at(t, at).is_some())
            .count())
    }

    fn before(&self, key: &[u8], rev: Rev) -> Result<Option<KeyValue>, EngineError> {
        let Some(touches) = self.index.get(key) else {
            return Ok(None);
        };
        let n = touches.partition_point(|(r, _)| *r < rev);
        Ok(match n.checked_sub(1).map(|i| touches[i]) {
            Some((r, false)) => Some(self.record(r).kv.clone()),
            _ => None,
        })
    }

    fn since(
        &self,
        start: i64,
        visit: &mut dyn FnMut(Rev, &Record) -> bool,
    ) -> Result<(), EngineError> {
        let from = Rev {
            main: start,
            sub: 0,
        };
        for (rev, rec) in self.log.range(from..) {
            if !visit(*rev, rec) {
                break;
            }
        }
        Ok(())
    }

    fn key_since(
        &self,
        key: &[u8],
        start: i64,
        visit: &mut dyn FnMut(Rev, &Record) -> bool,
    ) -> Result<(), EngineError> {
        let touches: &[Touch] = self.index.get(key).map_or(&[], |t| t.as_slice());
        let from = touches.partition_point(|(r, _)| r.main < start);
        for (rev, _) in &touches[from..] {
            if !visit(*rev, self.record(*rev)) {
                break;
            }
        }
        Ok(())
    }

    fn compact(&mut self, at: i64) -> Result<(), EngineError> {
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
        Ok(())
    }

    fn clear(&mut self) -> Result<(), EngineError> {
        *self = Mvcc::default();
        Ok(())
    }

    fn digest(&self) -> u64 {
        self.digest
    }

    fn len(&self) -> u64 {
        self.log.len() as u64
    }

    fn check(&self) -> Result<(), EngineError> {
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
        Ok(())
    }
}
