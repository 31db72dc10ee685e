//! A durable store in memory, for the simulator: each group's state machine
//! over the in-memory engine, whose durable commit keeps a copy of what it
//! holds (the engine, the store's metadata and the owner's bytes, at the
//! applied index). A simulated crash keeps exactly those copies, so a
//! restarted node starts from its store's last durable commit and replays
//! the rest from its WAL — the lag the server's redb store has.
//!
//! A durable commit is atomic, as redb's is: a crash keeps the copy of the
//! last durable commit whole, never part of a later one.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use synod_kv::{
    DynEngine, EngineError, KeySpan, KeyValue, KvConfig, KvStore, Mvcc, MvccEngine, Record, Rev,
};
use synod_node::{ShardId, StateMachine};

use crate::{DiskError, Stores};

/// What one group's store holds as of its last durable commit.
#[derive(Clone, Debug)]
struct Image {
    mvcc: Mvcc,
    kv_meta: Vec<u8>,
    extra: Vec<u8>,
    applied: u64,
}

type Images = Arc<Mutex<BTreeMap<ShardId, Image>>>;

/// The durable stores of one simulated node: cheap to clone, and what
/// survives its crashes (hand the same value to every boot).
#[derive(Clone, Debug, Default)]
pub struct MemStores {
    images: Images,
    max_sessions: usize,
}

impl MemStores {
    /// Empty stores; state machines keep at most `max_sessions` sessions.
    pub fn new(max_sessions: usize) -> MemStores {
        assert!(max_sessions > 0);
        MemStores {
            images: Images::default(),
            max_sessions,
        }
    }

    /// The applied index of group `shard`'s last durable commit.
    pub fn durable_applied(&self, shard: ShardId) -> Option<u64> {
        let images = self.images.lock().expect("no panic holds the lock");
        images.get(&shard).map(|i| i.applied)
    }
}

impl Stores for MemStores {
    fn open(&mut self, shard: ShardId) -> Result<(StateMachine, u64), DiskError> {
        let image = {
            let images = self.images.lock().expect("no panic holds the lock");
            images.get(&shard).cloned()
        };
        let path = format!("in memory of group {shard}");
        let (engine, meta, extra, applied) = match image {
            Some(i) => (
                MemEngine::new(shard, self.images.clone(), i.mvcc, i.applied),
                Some(i.kv_meta),
                i.extra,
                i.applied,
            ),
            None => (
                MemEngine::new(shard, self.images.clone(), Mvcc::new(), 0),
                None,
                Vec::new(),
                0,
            ),
        };
        let kv = KvStore::open(
            Box::new(engine) as DynEngine,
            meta.as_deref(),
            KvConfig::default(),
        )
        .map_err(|e| DiskError::store(&path, e))?;
        let sm = StateMachine::with_store(kv, &extra, self.max_sessions)
            .map_err(|e| DiskError::store(&path, e))?;
        Ok((sm, applied))
    }
}

/// The in-memory engine, with durable commits that outlive a crash.
#[derive(Debug)]
struct MemEngine {
    shard: ShardId,
    mvcc: Mvcc,
    images: Images,
    durable: u64,
}

impl MemEngine {
    fn new(shard: ShardId, images: Images, mvcc: Mvcc, durable: u64) -> MemEngine {
        MemEngine {
            shard,
            mvcc,
            images,
            durable,
        }
    }
}

impl MvccEngine for MemEngine {
    fn insert(&mut self, rev: Rev, rec: Record) -> Result<(), EngineError> {
        self.mvcc.insert(rev, rec)
    }
    fn get(&self, key: &[u8], at: i64) -> Result<Option<KeyValue>, EngineError> {
        self.mvcc.get(key, at)
    }
    fn range(
        &self,
        span: KeySpan<'_>,
        at: i64,
        visit: &mut dyn FnMut(&KeyValue) -> bool,
    ) -> Result<(), EngineError> {
        self.mvcc.range(span, at, visit)
    }
    fn count(&self, span: KeySpan<'_>, at: i64) -> Result<usize, EngineError> {
        self.mvcc.count(span, at)
    }
    fn before(&self, key: &[u8], rev: Rev) -> Result<Option<KeyValue>, EngineError> {
        self.mvcc.before(key, rev)
    }
    fn since(
        &self,
        start: i64,
        visit: &mut dyn FnMut(Rev, &Record) -> bool,
    ) -> Result<(), EngineError> {
        self.mvcc.since(start, visit)
    }
    fn key_since(
        &self,
        key: &[u8],
        start: i64,
        visit: &mut dyn FnMut(Rev, &Record) -> bool,
    ) -> Result<(), EngineError> {
        self.mvcc.key_since(key, start, visit)
    }
    fn compact(&mut self, at: i64) -> Result<(), EngineError> {
        self.mvcc.compact(at)
    }
    fn clear(&mut self) -> Result<(), EngineError> {
        self.mvcc.clear()
    }
    fn digest(&self) -> u64 {
        self.mvcc.digest()
    }
    fn len(&self) -> u64 {
        self.mvcc.len()
    }
    fn check(&self) -> Result<(), EngineError> {
        self.mvcc.check()
    }
    fn commit(
        &mut self,
        applied: u64,
        kv_meta: &[u8],
        extra: &[u8],
        durable: bool,
    ) -> Result<(), EngineError> {
        assert!(
            applied >= self.durable,
            "group {}: the store's applied index went back from {} to {applied}",
            self.shard,
            self.durable
        );
        // A commit that is not durable is lost by a crash: only durable
        // ones leave a copy.
        if durable {
            let image = Image {
                mvcc: self.mvcc.clone(),
                kv_meta: kv_meta.to_vec(),
                extra: extra.to_vec(),
                applied,
            };
            let mut images = self.images.lock().expect("no panic holds the lock");
            images.insert(self.shard, image);
            self.durable = applied;
        }
        Ok(())
    }
    fn durable_applied(&self) -> Option<u64> {
        Some(self.durable)
    }
}
