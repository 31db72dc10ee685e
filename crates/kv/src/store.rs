//! The state machine: applies commands to the multi-version store with etcd's
//! rules for revisions, ranges, transactions, leases and compaction.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use std::ops::Bound;

use crate::auth::{AuthCommand, AuthInfo, AuthState, PermKind};
use crate::engine::{record_digest, EngineError, MvccEngine, Record, Rev};
use crate::error::KvError;
use crate::mvcc::{span, span_contains, Mvcc};
use crate::types::*;

/// The largest lease TTL accepted, in seconds (etcd's `MaxLeaseTTL`).
pub const MAX_LEASE_TTL: i64 = 9_000_000_000;

/// Limits of the state machine. Every replica must use the same values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KvConfig {
    /// Most compares, and most operations per branch, in one transaction (etcd: 128).
    pub max_txn_ops: usize,
    /// Deepest nesting of transactions inside transactions.
    pub max_txn_depth: usize,
    /// Granted TTLs below this are raised to it, in seconds.
    pub min_lease_ttl: i64,
}

impl Default for KvConfig {
    fn default() -> Self {
        KvConfig {
            max_txn_ops: 128,
            max_txn_depth: 16,
            min_lease_ttl: 1,
        }
    }
}

/// What the store knows about one lease.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseInfo {
    /// The lease id.
    pub id: LeaseId,
    /// Granted time to live in seconds.
    pub ttl: i64,
    /// Remaining seconds at the last checkpoint; 0 when never checkpointed.
    pub remaining_ttl: i64,
    /// Keys attached, in order.
    pub keys: BTreeSet<Vec<u8>>,
}

/// The writes of one command in progress: they all share `main`.
#[derive(Clone, Debug)]
struct Writer {
    main: i64,
    sub: i64,
    events: Vec<Event>,
    /// Wrapping sum of [`record_digest`] over the tombstones written so far
    /// (what a command applied in chunks keeps out of the store's hash
    /// until it completes).
    digest: u64,
}

impl Writer {
    fn new(main: i64) -> Writer {
        Writer {
            main,
            sub: 0,
            events: Vec::new(),
            digest: 0,
        }
    }

    fn next_rev(&mut self) -> Rev {
        let r = Rev {
            main: self.main,
            sub: self.sub,
        };
        self.sub += 1;
        r
    }

    fn changed(&self) -> bool {
        self.sub > 0
    }
}

/// Keys a transaction path may write: single keys and deleted intervals.
#[derive(Default)]
struct Writes {
    puts: BTreeSet<Vec<u8>>,
    dels: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Writes {
    fn absorb(&mut self, other: Writes) {
        self.puts.extend(other.puts);
        self.dels.extend(other.dels);
    }

    fn deletes(&self, key: &[u8]) -> bool {
        self.dels
            .iter()
            .any(|(k, e)| span_contains(&span(k, e), key))
    }
}

/// The deterministic key-value state machine over a multi-version engine
/// (in memory by default). See the crate docs.
#[derive(Clone, Debug)]
pub struct KvStore<E = Mvcc> {
    pub(crate) config: KvConfig,
    pub(crate) mvcc: E,
    pub(crate) rev: i64,
    pub(crate) compact_rev: i64,
    pub(crate) leases: BTreeMap<LeaseId, LeaseInfo>,
    pub(crate) next_lease_id: i64,
    /// Users, roles, permissions and simple tokens.
    pub(crate) auth: AuthState,
    /// The engine's first failure: the store refuses everything after it
    /// (the command it struck may be half applied in the engine).
    pub(crate) failed: Option<EngineError>,
    /// A command being applied in chunks ([`KvStore::apply_bounded`]): its
    /// writes so far sit in the engine at revision `rev + 1`, which no read
    /// sees until it completes.
    pub(crate) partial: Option<Partial>,
}

/// A delete range being applied in chunks, between two calls.
#[derive(Clone, Debug)]
pub(crate) struct Partial {
    w: Writer,
    del: DeleteRangeRequest,
    cursor: DeleteCursor,
}

/// How far a delete range got: the last key deleted, and what it gathered.
#[derive(Clone, Debug, Default)]
struct DeleteCursor {
    after: Option<Vec<u8>>,
    deleted: i64,
    prev_kvs: Vec<KeyValue>,
    /// Keys to detach from their leases when the delete completes (so the
    /// lease table matches the keys a read sees until then).
    detach: Vec<(LeaseId, Vec<u8>)>,
    /// The lease of each leased key of the span, found on the first chunk
    /// (a delete that reads no values learns leases here).
    leased: Option<BTreeMap<Vec<u8>, LeaseId>>,
}

/// What [`KvStore::apply_bounded`] and [`KvStore::resume`] got done.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Progress {
    /// The command completed: its outcome and events, as
    /// [`KvStore::apply`] gives them.
    Done(Result<Response, KvError>, Vec<Event>),
    /// The budget ran out with the command unfinished: call
    /// [`KvStore::resume`] (and nothing else that writes) until it is done.
    Pending,
}

impl Default for KvStore {
    fn default() -> Self {
        Self::new()
    }
}

impl KvStore {
    /// An empty in-memory store at revision 1 with the default limits.
    pub fn new() -> Self {
        Self::with_config(KvConfig::default())
    }

    /// An empty in-memory store at revision 1 with the given limits.
    pub fn with_config(config: KvConfig) -> Self {
        Self::with_engine(Mvcc::default(), config)
    }
}

impl<E: MvccEngine> KvStore<E> {
    /// An empty store at revision 1 on `engine`, which must hold no write.
    pub fn with_engine(engine: E, config: KvConfig) -> Self {
        assert!(config.max_txn_ops > 0 && config.max_txn_depth > 0 && config.min_lease_ttl > 0);
        assert!(engine.is_empty(), "a new store's engine must be empty");
        KvStore {
            config,
            mvcc: engine,
            rev: 1,
            compact_rev: 0,
            leases: BTreeMap::new(),
            next_lease_id: 1,
            auth: AuthState::default(),
            failed: None,
            partial: None,
        }
    }

    /// The same state over another engine (which must hold its writes).
    pub(crate) fn with_mvcc<F: MvccEngine>(self, engine: F) -> KvStore<F> {
        KvStore {
            config: self.config,
            mvcc: engine,
            rev: self.rev,
            compact_rev: self.compact_rev,
            leases: self.leases,
            next_lease_id: self.next_lease_id,
            auth: self.auth,
            failed: self.failed,
            partial: self.partial,
        }
    }

    /// The engine underneath (for its own operations, such as commits).
    pub fn engine(&self) -> &E {
        &self.mvcc
    }

    /// The engine underneath, mutably. Writing to it behind the store's back
    /// breaks the store; this is for the engine's own operations (commits).
    pub fn engine_mut(&mut self) -> &mut E {
        &mut self.mvcc
    }

    /// The engine failure that stopped this store, if any.
    pub fn failure(&self) -> Option<&EngineError> {
        self.failed.as_ref()
    }

    /// Records an engine failure (the first one sticks) as a [`KvError`].
    pub(crate) fn fail(&mut self, e: EngineError) -> KvError {
        if self.failed.is_none() {
            self.failed = Some(e);
        }
        self.failure_error()
    }

    pub(crate) fn failure_error(&self) -> KvError {
        KvError::Storage(self.failed.clone().unwrap_or_else(|| EngineError::msg("")))
    }

    /// The limits this store runs with.
    pub fn config(&self) -> KvConfig {
        self.config
    }

    /// The current revision.
    pub fn revision(&self) -> i64 {
        self.rev
    }

    /// The last compaction revision, 0 if never compacted.
    pub fn compact_revision(&self) -> i64 {
        self.compact_rev
    }

    /// Applies one committed command. Deterministic: the same store and command
    /// always give the same result, new state and events (in revision order).
    /// A refused command changes nothing and produces no events.
    ///
    /// An engine failure answers [`KvError::Storage`] and stops the store:
    /// every later command and read answers it too.
    pub fn apply(&mut self, cmd: &Command) -> (Result<Response, KvError>, Vec<Event>) {
        assert!(
            self.partial.is_none(),
            "a command was applied while another one is in progress"
        );
        if self.failed.is_some() {
            return (Err(self.failure_error()), Vec::new());
        }
        let (out, events) = self.apply_inner(cmd);
        match out {
            Err(KvError::Storage(e)) => (Err(self.fail(e)), Vec::new()),
            out => (out, events),
        }
    }

    fn apply_inner(&mut self, cmd: &Command) -> (Result<Response, KvError>, Vec<Event>) {
        let (at, cmd) = match cmd {
            Command::At { revision, cmd } => match self.check_at(*revision) {
                Ok(()) => (*revision, cmd.as_ref()),
                Err(e) => return (Err(e), Vec::new()),
            },
            cmd => (self.rev + 1, cmd),
        };
        self.apply_at(at, cmd)
    }

    /// Whether a write may take `revision`: past the store's revision.
    fn check_at(&self, revision: i64) -> Result<(), KvError> {
        if revision > self.rev {
            Ok(())
        } else {
            Err(KvError::RevisionTaken {
                revision,
                current: self.rev,
            })
        }
    }

    /// Applies `cmd`, its writes at revision `at` (past the store's).
    fn apply_at(&mut self, at: i64, cmd: &Command) -> (Result<Response, KvError>, Vec<Event>) {
        debug_assert!(at > self.rev);
        if let Command::As { info, cmd } = cmd {
            if let Err(e) = self.authorize(info, cmd) {
                return (Err(e), Vec::new());
            }
            if let Command::Auth(a) = cmd.as_ref() {
                return (self.apply_auth(Some(info), a), Vec::new());
            }
            return self.apply_at(at, cmd);
        }
        let checked = match cmd {
            Command::Put(p) => self.check_put(p),
            Command::DeleteRange(d) => nonempty(&d.key),
            Command::Txn(t) => self.check_txn(t, 1).and_then(|()| check_duplicates(t)),
            _ => Ok(()),
        };
        if let Err(e) = checked {
            return (Err(e), Vec::new());
        }
        let mut w = Writer::new(at);
        let out = match cmd {
            Command::Put(p) => self.exec_put(&mut w, p),
            Command::DeleteRange(d) => self.exec_delete(&mut w, d),
            Command::Txn(t) => self.apply_txn(&mut w, t),
            Command::Compact { revision } => self.apply_compact(*revision, at),
            Command::LeaseGrant { id, ttl } => self.apply_lease_grant(*id, *ttl),
            Command::LeaseRevoke { id } => self.apply_lease_revoke(&mut w, *id),
            Command::LeaseCheckpoint { id, remaining_ttl } => match self.leases.get_mut(id) {
                Some(l) => {
                    l.remaining_ttl = *remaining_ttl;
                    Ok(Response::LeaseCheckpoint { revision: 0 })
                }
                None => Err(KvError::LeaseNotFound),
            },
            Command::Auth(a) => self.apply_auth(None, a),
            Command::As { .. } => unreachable!("unwrapped above"),
            // One revision per command: an `At` inside another (or inside
            // `As`) is not something a node proposes.
            Command::At { .. } => Err(KvError::PermissionDenied),
            Command::ReserveRevisions { .. } => Err(KvError::SplitRefused(
                "a revision reservation is applied by the node that hosts the range".into(),
            )),
            Command::SplitRange { .. } => Err(KvError::SplitRefused(
                "a split is applied by the node that hosts the range".into(),
            )),
        };
        match &out {
            Err(KvError::Storage(_)) => return (out, Vec::new()),
            Err(_) => assert!(!w.changed(), "a refused command must not have written"),
            Ok(_) => {}
        }
        if w.changed() {
            self.rev = w.main;
        }
        let header = self.rev;
        (
            out.map(|mut r| {
                stamp(&mut r, header);
                r
            }),
            w.events,
        )
    }

    /// Applies one committed command doing at most about `budget` key
    /// operations now (at least one), and takes what it did off `budget`.
    /// A delete range over more keys than that deletes them in chunks, all
    /// at the same revision: it answers [`Progress::Pending`] and
    /// [`KvStore::resume`] carries on. Until it completes, reads (and
    /// [`KvStore::hash`], [`KvStore::snapshot`], watch catch-up) see the
    /// store as before it; committing the engine is refused; and once done
    /// the state, hash, events and response are exactly those of
    /// [`KvStore::apply`]. Any other command applies whole, and costs the
    /// writes it made (at least one).
    pub fn apply_bounded(&mut self, cmd: &Command, budget: &mut u64) -> Progress {
        assert!(*budget > 0, "an apply needs a budget of at least one key");
        assert!(
            self.partial.is_none(),
            "a command was applied while another one is in progress"
        );
        if self.failed.is_none() {
            match self.chunked_delete(cmd, self.rev + 1) {
                Ok(Some((at, d))) => {
                    self.partial = Some(Partial {
                        w: Writer::new(at),
                        del: d.clone(),
                        cursor: DeleteCursor::default(),
                    });
                    return self.resume(budget);
                }
                Ok(None) => {}
                Err(e) => {
                    *budget = budget.saturating_sub(1);
                    return Progress::Done(Err(e), Vec::new());
                }
            }
        }
        let (out, events) = self.apply(cmd);
        *budget = budget.saturating_sub((events.len() as u64).max(1));
        Progress::Done(out, events)
    }

    /// The delete range inside `cmd` to run in chunks, with the revision
    /// its writes take (`at` unless a [`Command::At`] names one): a bare
    /// delete of a key or range, or one wrapped by `At` and then `As`,
    /// after the revision and the user's permission are checked (refused:
    /// why, and nothing changed). `None`: `cmd` applies whole.
    fn chunked_delete<'c>(
        &self,
        cmd: &'c Command,
        at: i64,
    ) -> Result<Option<(i64, &'c DeleteRangeRequest)>, KvError> {
        match cmd {
            Command::At { revision, cmd } if !matches!(cmd.as_ref(), Command::At { .. }) => {
                if !matches!(cmd.inner(), Command::DeleteRange(_)) {
                    return Ok(None);
                }
                self.check_at(*revision)?;
                self.chunked_delete(cmd, *revision)
            }
            Command::As { info, cmd } => match cmd.as_ref() {
                Command::DeleteRange(d) if !d.key.is_empty() => {
                    self.authorize(info, cmd)?;
                    Ok(Some((at, d)))
                }
                _ => Ok(None),
            },
            Command::DeleteRange(d) if !d.key.is_empty() => Ok(Some((at, d))),
            _ => Ok(None),
        }
    }

    /// Carries on with the command [`KvStore::apply_bounded`] left pending,
    /// under `budget` as there.
    pub fn resume(&mut self, budget: &mut u64) -> Progress {
        assert!(*budget > 0, "an apply needs a budget of at least one key");
        let mut p = self
            .partial
            .take()
            .expect("resume with no command in progress");
        if self.failed.is_some() {
            return Progress::Done(Err(self.failure_error()), Vec::new());
        }
        let (done, n) = match self.delete_chunk(&mut p.w, &p.del, &mut p.cursor, *budget) {
            Ok(x) => x,
            Err(KvError::Storage(e)) => return Progress::Done(Err(self.fail(e)), Vec::new()),
            Err(e) => panic!("a delete chunk failed other than in storage: {e}"),
        };
        *budget = budget.saturating_sub(n.max(1));
        if !done {
            assert!(n > 0, "an unfinished chunk made progress");
            self.partial = Some(p);
            return Progress::Pending;
        }
        let Partial { w, del, cursor } = p;
        let mut resp = self.finish_delete(cursor, &del);
        if w.changed() {
            self.rev = w.main;
        }
        stamp(&mut resp, self.rev);
        Progress::Done(Ok(resp), w.events)
    }

    /// Whether a command is part way through ([`Progress::Pending`]).
    pub fn in_progress(&self) -> bool {
        self.partial.is_some()
    }

    /// The writes of the command in progress, which the store does not show
    /// yet: their number and the sum of their digests.
    pub(crate) fn unfinished(&self) -> (u64, u64) {
        self.partial
            .as_ref()
            .map_or((0, 0), |p| (p.w.sub as u64, p.w.digest))
    }

    /// Reads a key or range at the current or a past revision.
    pub fn range(&self, req: &RangeRequest) -> Result<RangeResponse, KvError> {
        if self.failed.is_some() {
            return Err(self.failure_error());
        }
        self.read(req, self.rev)
    }

    /// Asserts every invariant of the store (index, log, digest, leases and
    /// their keys, revisions). O(data): for tests and simulation checks.
    /// Panics on an engine failure too; [`KvStore::verify`] answers it.
    pub fn check_invariants(&self) {
        if let Err(e) = self.verify() {
            panic!("store check failed: {e}");
        }
    }

    /// [`KvStore::check_invariants`], with an engine's failure (damaged data
    /// on disk) answered as [`KvError::Storage`] rather than a panic.
    pub fn verify(&self) -> Result<(), KvError> {
        assert!(self.rev >= 1 && (0..=self.rev).contains(&self.compact_rev));
        self.mvcc.check().map_err(storage)?;
        let mut attached = 0usize;
        self.mvcc
            .range(span(b"\0", b"\0"), self.rev, &mut |kv| {
                assert!(kv.mod_revision <= self.rev && kv.create_revision <= kv.mod_revision);
                assert!(kv.version >= 1);
                if kv.lease != 0 {
                    let l = self
                        .leases
                        .get(&kv.lease)
                        .expect("a live key's lease exists");
                    assert!(l.keys.contains(&kv.key), "live key missing from its lease");
                    attached += 1;
                }
                true
            })
            .map_err(storage)?;
        // Keys are never empty, so every key is >= "\0": the scan saw them all.
        let listed: usize = self.leases.values().map(|l| l.keys.len()).sum();
        assert_eq!(
            listed, attached,
            "a lease lists keys that are not live on it"
        );
        Ok(())
    }

    // ---- validation -------------------------------------------------------

    fn check_put(&self, p: &PutRequest) -> Result<(), KvError> {
        check_put_shape(p)?;
        self.check_put_state(p)
    }

    /// The parts of a put's validity that depend on the state (etcd's `checkRequestPut`).
    fn check_put_state(&self, p: &PutRequest) -> Result<(), KvError> {
        if p.lease != 0 && !self.leases.contains_key(&p.lease) {
            return Err(KvError::LeaseNotFound);
        }
        if (p.ignore_value || p.ignore_lease)
            && self.mvcc.get(&p.key, self.rev).map_err(storage)?.is_none()
        {
            return Err(KvError::KeyNotFound);
        }
        Ok(())
    }

    fn check_read_revision(&self, revision: i64, current: i64) -> Result<i64, KvError> {
        let at = if revision <= 0 { current } else { revision };
        if at > current {
            return Err(KvError::FutureRevision);
        }
        if at < self.compact_rev {
            return Err(KvError::Compacted);
        }
        Ok(at)
    }

    /// The shape of a transaction: sizes, depth, keys (etcd's `checkTxnRequest`).
    fn check_txn(&self, t: &TxnRequest, depth: usize) -> Result<(), KvError> {
        let max = self.config.max_txn_ops;
        if depth > self.config.max_txn_depth
            || t.compare.len() > max
            || t.success.len() > max
            || t.failure.len() > max
        {
            return Err(KvError::TooManyOps);
        }
        for c in &t.compare {
            nonempty(&c.key)?;
        }
        for op in t.success.iter().chain(&t.failure) {
            match op {
                RequestOp::Range(r) => nonempty(&r.key)?,
                RequestOp::Put(p) => check_put_shape(p)?,
                RequestOp::DeleteRange(d) => nonempty(&d.key)?,
                RequestOp::Txn(n) => self.check_txn(n, depth + 1)?,
            }
        }
        Ok(())
    }

    // ---- reads ------------------------------------------------------------

    fn read(&self, r: &RangeRequest, current: i64) -> Result<RangeResponse, KvError> {
        nonempty(&r.key)?;
        let at = self.check_read_revision(r.revision, current)?;
        let s = span(&r.key, &r.range_end);
        let count = self.mvcc.count(s, at).map_err(storage)? as i64;
        let mut resp = RangeResponse {
            header_revision: current,
            kvs: Vec::new(),
            more: false,
            count,
        };
        if r.count_only {
            return Ok(resp);
        }
        let order = match (r.sort_target, r.sort_order) {
            (SortTarget::Key, SortOrder::None | SortOrder::Ascend) => SortOrder::None,
            (_, SortOrder::None) => SortOrder::Ascend,
            (_, o) => o,
        };
        let filtered = r.min_mod_revision != 0
            || r.max_mod_revision != 0
            || r.min_create_revision != 0
            || r.max_create_revision != 0;
        let limit = usize::try_from(r.limit).ok().filter(|&l| l > 0);
        let keep = |kv: &&KeyValue| {
            (r.min_mod_revision == 0 || kv.mod_revision >= r.min_mod_revision)
                && (r.max_mod_revision == 0 || kv.mod_revision <= r.max_mod_revision)
                && (r.min_create_revision == 0 || kv.create_revision >= r.min_create_revision)
                && (r.max_create_revision == 0 || kv.create_revision <= r.max_create_revision)
        };
        let mut kvs: Vec<KeyValue> = Vec::new();
        match (order, limit, filtered) {
            // Key order is the store's order: stop one past the limit.
            (SortOrder::None, Some(l), false) => {
                let want = l.saturating_add(1);
                self.mvcc
                    .range(s, at, &mut |kv| {
                        kvs.push(kv.clone());
                        kvs.len() < want
                    })
                    .map_err(storage)?;
            }
            _ => self
                .mvcc
                .range(s, at, &mut |kv| {
                    if keep(&kv) {
                        kvs.push(kv.clone());
                    }
                    true
                })
                .map_err(storage)?,
        }
        if order != SortOrder::None {
            sort_kvs(&mut kvs, r.sort_target, order);
        }
        if let Some(l) = limit {
            if kvs.len() > l {
                kvs.truncate(l);
                resp.more = true;
            }
        }
        if r.keys_only {
            for kv in &mut kvs {
                kv.value.clear();
            }
        }
        resp.kvs = kvs;
        Ok(resp)
    }

    fn compare_holds(&self, c: &Compare) -> Result<bool, KvError> {
        let mut any = false;
        let mut all = true;
        self.mvcc
            .range(span(&c.key, &c.range_end), self.rev, &mut |kv| {
                any = true;
                all = compare_kv(c, kv);
                all
            })
            .map_err(storage)?;
        if !any {
            // A missing key has zero fields, but no value to compare with.
            return Ok(
                !matches!(c.target, CompareTarget::Value(_)) && compare_kv(c, &KeyValue::default())
            );
        }
        Ok(all)
    }

    // ---- writes -----------------------------------------------------------

    fn exec_put(&mut self, w: &mut Writer, p: &PutRequest) -> Result<Response, KvError> {
        let prev = self.mvcc.get(&p.key, w.main).map_err(storage)?;
        let (value, lease) = match (&prev, p.ignore_value, p.ignore_lease) {
            (None, false, false) => (p.value.clone(), p.lease),
            (None, _, _) => panic!("ignore_value/ignore_lease on a missing key passed validation"),
            (Some(old), iv, il) => (
                if iv {
                    old.value.clone()
                } else {
                    p.value.clone()
                },
                if il { old.lease } else { p.lease },
            ),
        };
        let (create_revision, version) = match &prev {
            Some(old) => (old.create_revision, old.version + 1),
            None => (w.main, 1),
        };
        let kv = KeyValue {
            key: p.key.clone(),
            create_revision,
            mod_revision: w.main,
            version,
            value,
            lease,
        };
        let rev = w.next_rev();
        self.mvcc
            .insert(
                rev,
                Record {
                    kv: kv.clone(),
                    tombstone: false,
                },
            )
            .map_err(storage)?;
        if let Some(old) = &prev {
            if old.lease != 0 && old.lease != lease {
                self.detach(old.lease, &p.key);
            }
        }
        if lease != 0 {
            self.leases
                .get_mut(&lease)
                .expect("put's lease was checked before the write")
                .keys
                .insert(p.key.clone());
        }
        w.events.push(Event {
            kind: EventKind::Put,
            kv,
            prev_kv: prev.clone(),
        });
        Ok(Response::Put {
            revision: 0,
            prev_kv: if p.prev_kv { prev } else { None },
        })
    }

    fn exec_delete(&mut self, w: &mut Writer, d: &DeleteRangeRequest) -> Result<Response, KvError> {
        let mut c = DeleteCursor::default();
        while !self.delete_chunk(w, d, &mut c, u64::MAX)?.0 {}
        Ok(self.finish_delete(c, d))
    }

    /// Deletes the next at most `max` keys of `d` after `c`'s: whether the
    /// delete is done, and how many keys this chunk deleted. Chunk by
    /// chunk, it writes exactly what deleting the range at once writes: the
    /// keys in order, each at the next sub-revision of the same `w`.
    fn delete_chunk(
        &mut self,
        w: &mut Writer,
        d: &DeleteRangeRequest,
        c: &mut DeleteCursor,
        max: u64,
    ) -> Result<(bool, u64), KvError> {
        assert!(max > 0, "a chunk deletes at least one key");
        let whole = span(&d.key, &d.range_end);
        let lo = match &c.after {
            Some(k) => Bound::Excluded(k.as_slice()),
            None => whole.0,
        };
        // One past the chunk, to know whether anything is left.
        let want = max.saturating_add(1);
        // Old values are read only when the request returns them: a delete
        // event's prev_kv is otherwise left for `fill_prev` (a watcher that
        // asked for it), as etcd reads it when it sends the event.
        let mut victims: Vec<(Vec<u8>, Option<KeyValue>)> = Vec::new();
        if d.prev_kv {
            self.mvcc
                .range((lo, whole.1), w.main, &mut |kv| {
                    victims.push((kv.key.clone(), Some(kv.clone())));
                    (victims.len() as u64) < want
                })
                .map_err(storage)?;
        } else {
            self.mvcc
                .range_keys((lo, whole.1), w.main, &mut |key| {
                    victims.push((key.to_vec(), None));
                    (victims.len() as u64) < want
                })
                .map_err(storage)?;
        }
        let done = (victims.len() as u64) <= max;
        if !done {
            victims.pop();
        }
        let n = victims.len() as u64;
        if let Some((last, _)) = victims.last() {
            c.after = Some(last.clone());
        }
        c.deleted += n as i64;
        let leases = &self.leases;
        let leased = c.leased.get_or_insert_with(|| {
            leases
                .iter()
                .flat_map(|(&id, l)| l.keys.iter().map(move |k| (k, id)))
                .filter(|(k, _)| span_contains(&whole, k))
                .map(|(k, id)| (k.clone(), id))
                .collect()
        });
        let mut batch = Vec::with_capacity(victims.len());
        for (key, old) in victims {
            let lease = match &old {
                Some(kv) => kv.lease,
                None => leased.get(&key).copied().unwrap_or(0),
            };
            debug_assert_eq!(lease, leased.get(&key).copied().unwrap_or(0));
            if lease != 0 {
                c.detach.push((lease, key.clone()));
            }
            if let Some(kv) = &old {
                c.prev_kvs.push(kv.clone());
            }
            batch.push(self.tombstone(w, key, old));
        }
        self.mvcc.insert_batch(batch).map_err(storage)?;
        Ok((done, n))
    }

    fn finish_delete(&mut self, c: DeleteCursor, d: &DeleteRangeRequest) -> Response {
        for (lease, key) in &c.detach {
            self.detach(*lease, key);
        }
        debug_assert!(d.prev_kv || c.prev_kvs.is_empty());
        Response::DeleteRange {
            revision: 0,
            deleted: c.deleted,
            prev_kvs: c.prev_kvs,
        }
    }

    /// The tombstone over live `key`, for the caller to insert (its lease
    /// is the caller's to detach); counts it in `w` with its event, whose
    /// prev_kv is `old` (`None`: not read, see [`KvStore::fill_prev`]).
    fn tombstone(&mut self, w: &mut Writer, key: Vec<u8>, old: Option<KeyValue>) -> (Rev, Record) {
        let tomb = KeyValue {
            key,
            mod_revision: w.main,
            ..Default::default()
        };
        let rev = w.next_rev();
        let rec = Record {
            kv: tomb.clone(),
            tombstone: true,
        };
        w.digest = w.digest.wrapping_add(record_digest(rev, &rec));
        w.events.push(Event {
            kind: EventKind::Delete,
            kv: tomb,
            prev_kv: old,
        });
        (rev, rec)
    }

    fn detach(&mut self, lease: LeaseId, key: &[u8]) {
        let l = self
            .leases
            .get_mut(&lease)
            .expect("a live key's lease exists");
        assert!(l.keys.remove(key), "key was not attached to its lease");
    }

    fn apply_txn(&mut self, w: &mut Writer, t: &TxnRequest) -> Result<Response, KvError> {
        let mut path = Vec::new();
        self.choose_path(t, &mut path)?;
        self.check_path(t, &path, &mut 0)?;
        let mut pos = 0;
        let resp = self.exec_txn(w, t, &path, &mut pos)?;
        assert_eq!(pos, path.len(), "txn path not fully walked");
        Ok(resp)
    }

    /// Evaluates every compare on the path against the state before the txn
    /// (etcd's `compareToPath`): one verdict per txn met, depth first.
    fn choose_path(&self, t: &TxnRequest, path: &mut Vec<bool>) -> Result<(), KvError> {
        let mut ok = true;
        for c in &t.compare {
            if !self.compare_holds(c)? {
                ok = false;
                break;
            }
        }
        path.push(ok);
        for op in if ok { &t.success } else { &t.failure } {
            if let RequestOp::Txn(n) = op {
                self.choose_path(n, path)?;
            }
        }
        Ok(())
    }

    /// Checks the ops on the chosen path against the state before the txn, so
    /// that the txn then runs to the end or not at all (etcd's `checkRequests`).
    fn check_path(&self, t: &TxnRequest, path: &[bool], pos: &mut usize) -> Result<(), KvError> {
        let ok = path[*pos];
        *pos += 1;
        for op in if ok { &t.success } else { &t.failure } {
            match op {
                RequestOp::Range(r) => {
                    self.check_read_revision(r.revision, self.rev)?;
                }
                RequestOp::Put(p) => self.check_put_state(p)?,
                RequestOp::DeleteRange(_) => {}
                RequestOp::Txn(n) => self.check_path(n, path, pos)?,
            }
        }
        Ok(())
    }

    fn exec_txn(
        &mut self,
        w: &mut Writer,
        t: &TxnRequest,
        path: &[bool],
        pos: &mut usize,
    ) -> Result<Response, KvError> {
        let ok = path[*pos];
        *pos += 1;
        let mut responses = Vec::new();
        for op in if ok { &t.success } else { &t.failure } {
            responses.push(match op {
                RequestOp::Range(r) => {
                    let current = if w.changed() { w.main } else { self.rev };
                    match self.read(r, current) {
                        Ok(rr) => Response::Range(rr),
                        Err(e @ KvError::Storage(_)) => return Err(e),
                        Err(e) => panic!("txn range checked before the txn: {e}"),
                    }
                }
                RequestOp::Put(p) => self.exec_put(w, p)?,
                RequestOp::DeleteRange(d) => self.exec_delete(w, d)?,
                RequestOp::Txn(n) => self.exec_txn(w, n, path, pos)?,
            });
        }
        Ok(Response::Txn {
            revision: 0,
            succeeded: ok,
            responses,
        })
    }

    /// Compacts at `revision`, a command applied at revision `at` (the
    /// store's next one, or a drawn one): a revision at or past `at` is in
    /// the future. Past the store's own (drawn: revisions other ranges
    /// took), the store skips to it first, so the compacted revision never
    /// passes its own.
    fn apply_compact(&mut self, revision: i64, at: i64) -> Result<Response, KvError> {
        if revision <= self.compact_rev {
            return Err(KvError::Compacted);
        }
        if revision >= at {
            return Err(KvError::FutureRevision);
        }
        self.rev = self.rev.max(revision);
        self.mvcc.compact(revision).map_err(storage)?;
        self.compact_rev = revision;
        Ok(Response::Compact { revision: 0 })
    }

    fn apply_lease_grant(&mut self, id: LeaseId, ttl: i64) -> Result<Response, KvError> {
        if ttl > MAX_LEASE_TTL {
            return Err(KvError::LeaseTtlTooLarge);
        }
        let id = if id == 0 {
            // The next unused id from a counter every replica advances alike.
            while self.next_lease_id <= 0 || self.leases.contains_key(&self.next_lease_id) {
                self.next_lease_id = self.next_lease_id.checked_add(1).unwrap_or(1);
            }
            let id = self.next_lease_id;
            self.next_lease_id = id.checked_add(1).unwrap_or(1);
            id
        } else if self.leases.contains_key(&id) {
            return Err(KvError::LeaseExists);
        } else {
            id
        };
        let ttl = ttl.max(self.config.min_lease_ttl);
        self.leases.insert(
            id,
            LeaseInfo {
                id,
                ttl,
                remaining_ttl: 0,
                keys: BTreeSet::new(),
            },
        );
        Ok(Response::LeaseGrant {
            revision: 0,
            id,
            ttl,
        })
    }

    fn apply_lease_revoke(&mut self, w: &mut Writer, id: LeaseId) -> Result<Response, KvError> {
        let keys: Vec<Vec<u8>> = match self.leases.get(&id) {
            Some(l) => l.keys.iter().cloned().collect(),
            None => return Err(KvError::LeaseNotFound),
        };
        for key in keys {
            let kv = self
                .mvcc
                .get(&key, w.main)
                .map_err(storage)?
                .expect("a lease's key is live");
            assert_eq!(kv.lease, id, "key attached to a lease it does not name");
            self.detach(id, &kv.key);
            let (rev, rec) = self.tombstone(w, kv.key.clone(), Some(kv));
            self.mvcc.insert(rev, rec).map_err(storage)?;
        }
        let gone = self.leases.remove(&id).expect("lease present");
        assert!(gone.keys.is_empty(), "revoked lease still holds keys");
        Ok(Response::LeaseRevoke { revision: 0 })
    }

    // ---- authentication ---------------------------------------------------

    /// Users, roles, permissions and simple tokens.
    pub fn auth(&self) -> &AuthState {
        &self.auth
    }

    /// Whether `info` may read `req`'s keys (etcd checks a range, serializable
    /// or not, before serving it).
    pub fn check_range(&self, info: &AuthInfo, req: &RangeRequest) -> Result<(), KvError> {
        self.auth
            .check_keys(info, &req.key, &req.range_end, PermKind::Read)
    }

    fn apply_auth(
        &mut self,
        info: Option<&AuthInfo>,
        a: &AuthCommand,
    ) -> Result<Response, KvError> {
        let resp = self.auth.apply(info, a, self.rev)?;
        Ok(Response::Auth {
            revision: self.rev,
            resp,
        })
    }

    /// Whether `info` may have `cmd` applied: etcd's auth applier, which
    /// checks key commands against the user's permissions (auth commands
    /// are checked as they apply).
    fn authorize(&self, info: &AuthInfo, cmd: &Command) -> Result<(), KvError> {
        if !self.auth.enabled() {
            return Ok(());
        }
        match cmd {
            Command::Put(p) => self.authorize_put(info, p, true),
            Command::DeleteRange(d) => self.authorize_delete(info, d),
            Command::Txn(t) => self.authorize_txn(info, t),
            // Revoking a lease deletes its keys: the user must be allowed
            // to write each of them (etcd's `checkLeasePuts`).
            Command::LeaseRevoke { id } => self.authorize_lease_keys(info, *id),
            // etcd 3.4 checks none of these beyond the token.
            Command::Compact { .. }
            | Command::LeaseGrant { .. }
            | Command::LeaseCheckpoint { .. }
            | Command::Auth(_) => Ok(()),
            // One sender per command; a split and a drawn revision come
            // from the node alone.
            Command::As { .. }
            | Command::SplitRange { .. }
            | Command::At { .. }
            | Command::ReserveRevisions { .. } => Err(KvError::PermissionDenied),
        }
    }

    fn authorize_put(&self, info: &AuthInfo, p: &PutRequest, lease: bool) -> Result<(), KvError> {
        self.auth.check_keys(info, &p.key, &[], PermKind::Write)?;
        if lease && p.lease != 0 {
            self.authorize_lease_keys(info, p.lease)?;
        }
        if p.prev_kv {
            self.auth.check_keys(info, &p.key, &[], PermKind::Read)?;
        }
        Ok(())
    }

    fn authorize_delete(&self, info: &AuthInfo, d: &DeleteRangeRequest) -> Result<(), KvError> {
        self.auth
            .check_keys(info, &d.key, &d.range_end, PermKind::Write)?;
        if d.prev_kv {
            self.auth
                .check_keys(info, &d.key, &d.range_end, PermKind::Read)?;
        }
        Ok(())
    }

    /// Every compare and every operation of both branches, nested
    /// transactions included, whichever branch will run; a put inside is
    /// checked as one alone (its lease's keys and, with `prev_kv`, a read),
    /// as etcd 3.4 checks since 3.4.44 (3.4.42 for nested transactions):
    /// before those, a txn bypassed both checks.
    fn authorize_txn(&self, info: &AuthInfo, t: &TxnRequest) -> Result<(), KvError> {
        for c in &t.compare {
            self.auth
                .check_keys(info, &c.key, &c.range_end, PermKind::Read)?;
        }
        for op in t.success.iter().chain(&t.failure) {
            match op {
                RequestOp::Range(r) => {
                    self.auth
                        .check_keys(info, &r.key, &r.range_end, PermKind::Read)?
                }
                RequestOp::Put(p) => self.authorize_put(info, p, true)?,
                RequestOp::DeleteRange(d) => self.authorize_delete(info, d)?,
                RequestOp::Txn(n) => self.authorize_txn(info, n)?,
            }
        }
        Ok(())
    }

    /// etcd's `checkLeasePutsKeys`: a root user passes at once (etcd 3.4.27
    /// on, whatever its token's auth revision), anyone else needs write
    /// permission on every key of the lease.
    fn authorize_lease_keys(&self, info: &AuthInfo, id: LeaseId) -> Result<(), KvError> {
        if self.auth.check_admin(info).is_ok() {
            return Ok(());
        }
        if let Some(l) = self.leases.get(&id) {
            for key in &l.keys {
                self.auth.check_keys(info, key, &[], PermKind::Write)?;
            }
        }
        Ok(())
    }

    // ---- leases and watch -------------------------------------------------

    /// A lease's granted TTL and, if asked, its keys.
    pub fn lease_time_to_live(
        &self,
        id: LeaseId,
        keys: bool,
    ) -> Result<(i64, Vec<Vec<u8>>), KvError> {
        let l = self.leases.get(&id).ok_or(KvError::LeaseNotFound)?;
        let ks = if keys {
            l.keys.iter().cloned().collect()
        } else {
            Vec::new()
        };
        Ok((l.ttl, ks))
    }

    /// Every lease id, in order.
    pub fn leases(&self) -> Vec<LeaseId> {
        self.leases.keys().copied().collect()
    }

    /// Everything the store knows about a lease.
    pub fn lease(&self, id: LeaseId) -> Option<&LeaseInfo> {
        self.leases.get(&id)
    }

    /// Every event with `mod_revision >= start_rev` on keys of the range
    /// (etcd `range_end` rules), in revision order, for a watch to catch up.
    /// Revisions are never split: the result stops before the revision that
    /// would take it past `limit`, unless that is the first one.
    /// `Compacted` when `start_rev` is at or below the compaction revision.
    pub fn events_since(
        &self,
        start_rev: i64,
        key: &[u8],
        range_end: &[u8],
        limit: usize,
    ) -> Result<Vec<Event>, KvError> {
        let start = start_rev.max(1);
        // As etcd: the compact revision itself still has its writes (each
        // key's latest at it); only those below it are gone.
        if start < self.compact_rev {
            return Err(KvError::Compacted);
        }
        if self.failed.is_some() {
            return Err(self.failure_error());
        }
        let s = span(key, range_end);
        // The writes first, then each one's prev_kv: a visitor must not call
        // back into the engine.
        let mut writes: Vec<(Rev, Record)> = Vec::new();
        // A command in progress wrote past the current revision: not yet.
        let current = self.rev;
        let mut visit = |rev: Rev, rec: &Record| {
            if rev.main > current {
                return false;
            }
            let same_rev = writes.last().is_some_and(|(r, _)| r.main == rev.main);
            if writes.len() >= limit && !same_rev {
                return false;
            }
            writes.push((rev, rec.clone()));
            true
        };
        // A single key is found through its index entry, a range by a scan of the log.
        let scanned = if range_end.is_empty() {
            self.mvcc.key_since(key, start, &mut visit)
        } else {
            self.mvcc.since(start, &mut |rev, rec| {
                !span_contains(&s, &rec.kv.key) || visit(rev, rec)
            })
        };
        scanned.map_err(storage)?;
        let mut out: Vec<Event> = Vec::with_capacity(writes.len());
        for (rev, rec) in writes {
            let prev_kv = self.mvcc.before(&rec.kv.key, rev).map_err(storage)?;
            out.push(Event {
                kind: if rec.tombstone {
                    EventKind::Delete
                } else {
                    EventKind::Put
                },
                kv: rec.kv,
                prev_kv,
            });
        }
        Ok(out)
    }

    /// Fills in the prev_kv of delete events that a delete range left
    /// without it (it reads old values only when its request returns them),
    /// from the history before each event's revision: for a watcher that
    /// asked for prev_kv. One whose history was compacted meanwhile stays
    /// without, as in etcd.
    pub fn fill_prev(&self, events: &mut [Event]) -> Result<(), KvError> {
        for e in events
            .iter_mut()
            .filter(|e| e.kind == EventKind::Delete && e.prev_kv.is_none())
        {
            let at = Rev {
                main: e.kv.mod_revision,
                sub: 0,
            };
            e.prev_kv = self.mvcc.before(&e.kv.key, at).map_err(storage)?;
        }
        Ok(())
    }
}

/// An engine failure as the store's error.
pub(crate) fn storage(e: EngineError) -> KvError {
    KvError::Storage(e)
}

fn nonempty(key: &[u8]) -> Result<(), KvError> {
    if key.is_empty() {
        Err(KvError::EmptyKey)
    } else {
        Ok(())
    }
}

/// The parts of a put's validity that need no state (etcd's `checkPutRequest`).
fn check_put_shape(p: &PutRequest) -> Result<(), KvError> {
    nonempty(&p.key)?;
    if p.ignore_value && !p.value.is_empty() {
        return Err(KvError::ValueProvided);
    }
    if p.ignore_lease && p.lease != 0 {
        return Err(KvError::LeaseProvided);
    }
    Ok(())
}

/// Refuses a transaction that could write one key twice: on any path, no key
/// is put by two operations, nor put by one and deleted by another. The two
/// branches of a txn exclude each other, so they may name the same keys.
fn check_duplicates(t: &TxnRequest) -> Result<(), KvError> {
    branch_writes(&t.success)?;
    branch_writes(&t.failure)?;
    Ok(())
}

fn branch_writes(ops: &[RequestOp]) -> Result<Writes, KvError> {
    let mut items = Vec::with_capacity(ops.len());
    for op in ops {
        let mut w = Writes::default();
        match op {
            RequestOp::Range(_) => {}
            RequestOp::Put(p) => {
                w.puts.insert(p.key.clone());
            }
            RequestOp::DeleteRange(d) => w.dels.push((d.key.clone(), d.range_end.clone())),
            RequestOp::Txn(n) => {
                w.absorb(branch_writes(&n.success)?);
                w.absorb(branch_writes(&n.failure)?);
            }
        }
        items.push(w);
    }
    for (i, a) in items.iter().enumerate() {
        for (j, b) in items.iter().enumerate() {
            if i == j {
                continue;
            }
            for k in &a.puts {
                if (i < j && b.puts.contains(k)) || b.deletes(k) {
                    return Err(KvError::DuplicateKey);
                }
            }
        }
    }
    let mut all = Writes::default();
    for w in items {
        all.absorb(w);
    }
    Ok(all)
}

fn compare_kv(c: &Compare, kv: &KeyValue) -> bool {
    use std::cmp::Ordering;
    let ord: Ordering = match &c.target {
        CompareTarget::Value(v) => kv.value.as_slice().cmp(v.as_slice()),
        CompareTarget::Version(v) => kv.version.cmp(v),
        CompareTarget::CreateRevision(v) => kv.create_revision.cmp(v),
        CompareTarget::ModRevision(v) => kv.mod_revision.cmp(v),
        CompareTarget::Lease(v) => kv.lease.cmp(v),
    };
    match c.result {
        CompareResult::Equal => ord == Ordering::Equal,
        CompareResult::Greater => ord == Ordering::Greater,
        CompareResult::Less => ord == Ordering::Less,
        CompareResult::NotEqual => ord != Ordering::Equal,
    }
}

/// One answer to `req` from the answers its parts gave: `req` read over
/// disjoint pieces of its span at one revision (each part asked as
/// [`RangeRequest::part`] makes it), as one store holding every piece
/// would answer it at revision `header`.
pub fn merge_ranges(req: &RangeRequest, parts: Vec<RangeResponse>, header: i64) -> RangeResponse {
    let count = parts.iter().map(|p| p.count).sum();
    let truncated = parts.iter().any(|p| p.more);
    let mut kvs: Vec<KeyValue> = parts.into_iter().flat_map(|p| p.kvs).collect();
    kvs.sort_by(|a, b| a.key.cmp(&b.key));
    let order = match (req.sort_target, req.sort_order) {
        (SortTarget::Key, SortOrder::None | SortOrder::Ascend) => SortOrder::None,
        (_, SortOrder::None) => SortOrder::Ascend,
        (_, o) => o,
    };
    if order != SortOrder::None {
        sort_kvs(&mut kvs, req.sort_target, order);
    }
    let mut more = truncated;
    if let Some(l) = usize::try_from(req.limit).ok().filter(|&l| l > 0) {
        if kvs.len() > l {
            kvs.truncate(l);
            more = true;
        }
    }
    if req.count_only {
        kvs.clear();
        more = false;
    }
    if req.keys_only {
        for kv in &mut kvs {
            kv.value.clear();
        }
    }
    RangeResponse {
        header_revision: header,
        kvs,
        more,
        count,
    }
}

/// Sorts by the target; stable, so equal targets stay in key order.
fn sort_kvs(kvs: &mut [KeyValue], target: SortTarget, order: SortOrder) {
    let cmp = |a: &KeyValue, b: &KeyValue| match target {
        SortTarget::Key => a.key.cmp(&b.key),
        SortTarget::Version => a.version.cmp(&b.version),
        SortTarget::Create => a.create_revision.cmp(&b.create_revision),
        SortTarget::Mod => a.mod_revision.cmp(&b.mod_revision),
        SortTarget::Value => a.value.cmp(&b.value),
    };
    match order {
        SortOrder::Descend => kvs.sort_by(|a, b| cmp(b, a)),
        _ => kvs.sort_by(cmp),
    }
}

/// Writes the command's header revision into a response and all it contains.
fn stamp(r: &mut Response, header: i64) {
    match r {
        Response::Range(rr) => rr.header_revision = header,
        Response::Txn {
            revision,
            responses,
            ..
        } => {
            *revision = header;
            for sub in responses {
                stamp(sub, header);
            }
        }
        Response::Put { revision, .. }
        | Response::DeleteRange { revision, .. }
        | Response::Compact { revision }
        | Response::LeaseGrant { revision, .. }
        | Response::LeaseRevoke { revision }
        | Response::LeaseCheckpoint { revision }
        | Response::Auth { revision, .. } => *revision = header,
    }
}
