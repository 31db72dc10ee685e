//! The seam between the state machine's rules and where its versions live.
//!
//! [`KvStore`](crate::KvStore) decides etcd's rules (revisions, versions,
//! leases, transactions); an [`MvccEngine`] only keeps the writes it is handed,
//! each under its [`Rev`], and answers reads at a revision. The in-memory
//! engine is [`Mvcc`](crate::Mvcc); a disk engine lives outside this crate,
//! which stays free of IO.
//!
//! Every method answers a [`Result`] so that a disk engine can report a
//! failure or a damaged file as a value; the in-memory engine never fails.
//! Scans hand each item to a visitor that returns `false` to stop early, so an
//! engine can stream a range without holding it in memory. A visitor must not
//! call back into the engine (a disk engine holds its tables open meanwhile).

use std::ops::Bound;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::fnv::{mix, Fnv};
use crate::types::KeyValue;

/// Position of one write: the command's revision and its place inside it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Rev {
    /// The store revision of the command.
    pub main: i64,
    /// Index of the write inside the command (0, 1, ...).
    pub sub: i64,
}

/// One stored write.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The key after the write; for a tombstone only `key` and `mod_revision`.
    pub kv: KeyValue,
    /// True for a delete.
    pub tombstone: bool,
}

/// A key interval (already resolved from etcd's `range_end` rules).
pub type KeySpan<'a> = (Bound<&'a [u8]>, Bound<&'a [u8]>);

/// Whether a span holds no key at all (its end at or before its start).
pub fn span_is_empty(s: &KeySpan<'_>) -> bool {
    match (s.0, s.1) {
        (Bound::Included(a), Bound::Excluded(b)) => b <= a,
        (Bound::Included(a), Bound::Included(b)) => b < a,
        (Bound::Excluded(a), Bound::Included(b) | Bound::Excluded(b)) => b <= a,
        _ => false,
    }
}

/// A failure of the engine underneath the store: IO, or data found damaged.
///
/// Like [`std::io::Error`], it carries either the engine's own typed error
/// ([`EngineError::new`]) or only a message ([`EngineError::msg`]). With a
/// typed error it displays as that error (which names what failed: file,
/// table, key, revision where known), its [`source`](std::error::Error::source)
/// is that error's source (so a caller can walk down to the IO error), and
/// [`EngineError::get_ref`] / [`EngineError::downcast_ref`] reach the error
/// itself. Cloning shares it.
///
/// Across the wire (an error in a forwarded reply) only the text travels: it
/// serializes as its message string, exactly as the `String` it replaced,
/// and deserializes to a message-only error. Two errors are equal when their
/// messages are.
#[derive(Clone, Debug)]
pub struct EngineError {
    repr: Repr,
}

#[derive(Clone, Debug)]
enum Repr {
    Message(String),
    Error(Arc<dyn std::error::Error + Send + Sync + 'static>),
}

impl EngineError {
    /// The engine's own error.
    pub fn new(err: impl std::error::Error + Send + Sync + 'static) -> EngineError {
        EngineError {
            repr: Repr::Error(Arc::new(err)),
        }
    }

    /// A failure known only by its message.
    pub fn msg(message: impl Into<String>) -> EngineError {
        EngineError {
            repr: Repr::Message(message.into()),
        }
    }

    /// The engine's error this wraps, if it carries one.
    pub fn get_ref(&self) -> Option<&(dyn std::error::Error + Send + Sync + 'static)> {
        match &self.repr {
            Repr::Message(_) => None,
            Repr::Error(e) => Some(e.as_ref()),
        }
    }

    /// The engine's error this wraps, if it is a `T`.
    pub fn downcast_ref<T: std::error::Error + 'static>(&self) -> Option<&T> {
        self.get_ref()?.downcast_ref::<T>()
    }
}

impl std::fmt::Display for EngineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.repr {
            Repr::Message(m) => f.write_str(m),
            Repr::Error(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for EngineError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.repr {
            Repr::Message(_) => None,
            Repr::Error(e) => e.source(),
        }
    }
}

impl PartialEq for EngineError {
    fn eq(&self, other: &EngineError) -> bool {
        match (&self.repr, &other.repr) {
            (Repr::Message(a), Repr::Message(b)) => a == b,
            _ => self.to_string() == other.to_string(),
        }
    }
}

impl Eq for EngineError {}

impl Serialize for EngineError {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match &self.repr {
            Repr::Message(m) => s.serialize_str(m),
            Repr::Error(e) => s.collect_str(e),
        }
    }
}

impl<'de> Deserialize<'de> for EngineError {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<EngineError, D::Error> {
        String::deserialize(d).map(EngineError::msg)
    }
}

/// The digest of one stored write; an engine's [`MvccEngine::digest`] is the
/// wrapping sum of these over every write it holds, so that two engines
/// holding the same writes agree whatever their history.
pub fn record_digest(rev: Rev, rec: &Record) -> u64 {
    let mut h = Fnv::new();
    h.write_i64(rev.main);
    h.write_i64(rev.sub);
    h.write(&[u8::from(rec.tombstone)]);
    h.write_kv(&rec.kv);
    mix(h.finish())
}

/// Multi-version storage of the writes [`KvStore`](crate::KvStore) makes.
///
/// Contract (the store relies on it; engines assert what they can):
/// * `insert` is called with revisions that grow per key, a record whose
///   `kv.mod_revision` equals `rev.main`, a non-empty key, never a tombstone
///   over a tombstone or over a key never written.
/// * Reads at `at` see, for each key, its latest write with `main <= at`; a
///   tombstone there means the key does not exist at `at`.
/// * `compact(at)` drops every write older than `at` except each key's latest
///   one as of `at`, and that one too when it is a tombstone.
/// * `digest` and `len` cover exactly the writes held.
pub trait MvccEngine: std::fmt::Debug {
    /// Stores a write.
    fn insert(&mut self, rev: Rev, rec: Record) -> Result<(), EngineError>;

    /// Stores every write of `batch` in order, exactly as one
    /// [`MvccEngine::insert`] each would (an engine may do it in one pass,
    /// as a large delete's tombstones want).
    fn insert_batch(&mut self, batch: Vec<(Rev, Record)>) -> Result<(), EngineError> {
        for (rev, rec) in batch {
            self.insert(rev, rec)?;
        }
        Ok(())
    }

    /// The key as of main revision `at`, if it existed then.
    fn get(&self, key: &[u8], at: i64) -> Result<Option<KeyValue>, EngineError>;

    /// Visits every key of `span` alive at `at`, in key order, until the
    /// visitor returns `false`.
    fn range(
        &self,
        span: KeySpan<'_>,
        at: i64,
        visit: &mut dyn FnMut(&KeyValue) -> bool,
    ) -> Result<(), EngineError>;

    /// Visits the key of every key of `span` alive at `at`, in key order,
    /// until the visitor returns `false`: what [`MvccEngine::range`] visits,
    /// without reading values (an engine with an index in memory answers
    /// from it alone).
    fn range_keys(
        &self,
        span: KeySpan<'_>,
        at: i64,
        visit: &mut dyn FnMut(&[u8]) -> bool,
    ) -> Result<(), EngineError> {
        self.range(span, at, &mut |kv| visit(&kv.key))
    }

    /// Number of keys of `span` alive at `at`.
    fn count(&self, span: KeySpan<'_>, at: i64) -> Result<usize, EngineError>;

    /// The key's live state just before `rev` (for an event's `prev_kv`).
    fn before(&self, key: &[u8], rev: Rev) -> Result<Option<KeyValue>, EngineError>;

    /// Visits every stored write with main revision `>= start`, in revision
    /// order, until the visitor returns `false`.
    fn since(
        &self,
        start: i64,
        visit: &mut dyn FnMut(Rev, &Record) -> bool,
    ) -> Result<(), EngineError>;

    /// Visits the stored writes of one key with main revision `>= start`, in
    /// revision order, until the visitor returns `false`.
    fn key_since(
        &self,
        key: &[u8],
        start: i64,
        visit: &mut dyn FnMut(Rev, &Record) -> bool,
    ) -> Result<(), EngineError>;

    /// Drops every write older than `at` except each key's latest one as of
    /// `at`, and that one too when it is a tombstone.
    fn compact(&mut self, at: i64) -> Result<(), EngineError>;

    /// Drops every write (before installing a snapshot).
    fn clear(&mut self) -> Result<(), EngineError>;

    /// The wrapping sum of [`record_digest`] over every stored write.
    fn digest(&self) -> u64;

    /// Number of stored writes (tombstones included).
    fn len(&self) -> u64;

    /// Whether no write is stored.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Verifies the engine's own structures against each other (indexes,
    /// digest, checksums). O(data): for tests, simulation checks and
    /// `verify` commands. A broken invariant of an in-memory engine panics;
    /// damaged data read from a disk answers an error.
    fn check(&self) -> Result<(), EngineError>;

    /// Makes every write so far one atomic unit together with the applied
    /// log index, the store's metadata ([`KvStore::meta_image`](crate::KvStore::meta_image))
    /// and its owner's opaque `extra` bytes; `durable`: it must survive a
    /// crash once this returns. An in-memory engine has nothing to do.
    fn commit(
        &mut self,
        applied: u64,
        kv_meta: &[u8],
        extra: &[u8],
        durable: bool,
    ) -> Result<(), EngineError> {
        let _ = (applied, kv_meta, extra, durable);
        Ok(())
    }

    /// The applied index of the last durable [`MvccEngine::commit`]; `None`
    /// for an engine that keeps nothing across a restart.
    fn durable_applied(&self) -> Option<u64> {
        None
    }

    /// Asks the engine to give the space of removed writes back to the file
    /// system at its next durable [`MvccEngine::commit`] (etcd's
    /// defragment); an engine in memory has nothing to give back.
    fn request_defragment(&self) {}

    /// How many requested defragmentations the engine has carried out (or
    /// tried and given up on) since it opened.
    fn defragmentations(&self) -> u64 {
        0
    }
}

/// An engine chosen at run time (the node's state machines).
pub type DynEngine = Box<dyn MvccEngine + Send>;

impl<E: MvccEngine + ?Sized> MvccEngine for Box<E> {
    fn insert(&mut self, rev: Rev, rec: Record) -> Result<(), EngineError> {
        (**self).insert(rev, rec)
    }
    fn insert_batch(&mut self, batch: Vec<(Rev, Record)>) -> Result<(), EngineError> {
        (**self).insert_batch(batch)
    }
    fn get(&self, key: &[u8], at: i64) -> Result<Option<KeyValue>, EngineError> {
        (**self).get(key, at)
    }
    fn range(
        &self,
        span: KeySpan<'_>,
        at: i64,
        visit: &mut dyn FnMut(&KeyValue) -> bool,
    ) -> Result<(), EngineError> {
        (**self).range(span, at, visit)
    }
    fn range_keys(
        &self,
        span: KeySpan<'_>,
        at: i64,
        visit: &mut dyn FnMut(&[u8]) -> bool,
    ) -> Result<(), EngineError> {
        (**self).range_keys(span, at, visit)
    }
    fn count(&self, span: KeySpan<'_>, at: i64) -> Result<usize, EngineError> {
        (**self).count(span, at)
    }
    fn before(&self, key: &[u8], rev: Rev) -> Result<Option<KeyValue>, EngineError> {
        (**self).before(key, rev)
    }
    fn since(
        &self,
        start: i64,
        visit: &mut dyn FnMut(Rev, &Record) -> bool,
    ) -> Result<(), EngineError> {
        (**self).since(start, visit)
    }
    fn key_since(
        &self,
        key: &[u8],
        start: i64,
        visit: &mut dyn FnMut(Rev, &Record) -> bool,
    ) -> Result<(), EngineError> {
        (**self).key_since(key, start, visit)
    }
    fn compact(&mut self, at: i64) -> Result<(), EngineError> {
        (**self).compact(at)
    }
    fn clear(&mut self) -> Result<(), EngineError> {
        (**self).clear()
    }
    fn digest(&self) -> u64 {
        (**self).digest()
    }
    fn len(&self) -> u64 {
        (**self).len()
    }
    fn check(&self) -> Result<(), EngineError> {
        (**self).check()
    }
    fn commit(
        &mut self,
        applied: u64,
        kv_meta: &[u8],
        extra: &[u8],
        durable: bool,
    ) -> Result<(), EngineError> {
        (**self).commit(applied, kv_meta, extra, durable)
    }
    fn durable_applied(&self) -> Option<u64> {
        (**self).durable_applied()
    }
    fn request_defragment(&self) {
        (**self).request_defragment()
    }
    fn defragmentations(&self) -> u64 {
        (**self).defragmentations()
    }
}
