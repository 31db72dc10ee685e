//! The replicated state machine of one group: the key-value store plus the
//! client-session table that makes retried proposals apply exactly once.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use synod_kv::{Command, DynEngine, Event, KvConfig, KvError, KvStore, Mvcc, Progress, Response};

/// What a log entry of a group carries (encoded with postcard).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    /// The client session (0: an internal proposal, such as a lease expiry, with no session).
    pub client: u64,
    /// The sequence number within the session.
    pub seq: u64,
    /// The command.
    pub cmd: Command,
}

impl Proposal {
    /// Encodes for a log entry.
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).expect("postcard encoding into a Vec cannot fail")
    }
    /// Decodes a log entry's payload.
    pub fn decode(data: &[u8]) -> Result<Proposal, postcard::Error> {
        postcard::from_bytes(data)
    }
}

/// The last applied request of one client session and its outcome.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Session {
    seq: u64,
    outcome: Result<Response, KvError>,
    /// Log index at which the session was last used (eviction order).
    at: u64,
}

/// The outcome of applying one proposal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Applied {
    /// Applied now.
    Fresh(Result<Response, KvError>),
    /// A retry of the session's latest request: not applied again; the recorded outcome.
    Duplicate(Result<Response, KvError>),
    /// Older than the session's latest request: ignored.
    Stale {
        /// The session's latest seq.
        latest: u64,
    },
}

/// The key-value store plus sessions; deterministic. The store's engine is
/// the in-memory one unless the driver hands in another (a disk engine,
/// which then also keeps the sessions: see [`StateMachine::commit`]).
#[derive(Debug)]
pub struct StateMachine {
    kv: KvStore<DynEngine>,
    sessions: BTreeMap<u64, Session>,
    by_age: BTreeSet<(u64, u64)>,
    max_sessions: usize,
    /// The owner's bytes read beside a disk engine's data (see [`StateMachine::extra`]).
    extra: Vec<u8>,
    /// The proposal being applied in chunks: its log index, client and seq
    /// (its session is recorded when it completes).
    pending: Option<(u64, u64, u64)>,
}

/// What a disk engine keeps beside its data.
#[derive(Deserialize)]
struct Beside {
    sessions: Vec<(u64, Session)>,
    extra: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct Image {
    kv: Vec<u8>,
    sessions: Vec<(u64, Session)>,
}

/// A snapshot image that could not be decoded.
#[derive(Debug, thiserror::Error)]
#[error("corrupt state machine snapshot: {0}")]
pub struct CorruptSnapshot(String);

impl CorruptSnapshot {
    pub(crate) fn new(why: String) -> Self {
        CorruptSnapshot(why)
    }
}

impl StateMachine {
    /// An empty state machine keeping at most `max_sessions` sessions (the
    /// least recently used is forgotten first; a forgotten session's retry is
    /// applied again, so clients must not retry after that many others).
    pub fn new(max_sessions: usize) -> Self {
        assert!(max_sessions > 0);
        let kv = KvStore::with_engine(Box::new(Mvcc::new()) as DynEngine, KvConfig::default());
        StateMachine::over(kv, max_sessions)
    }

    fn over(kv: KvStore<DynEngine>, max_sessions: usize) -> Self {
        assert!(max_sessions > 0);
        StateMachine {
            kv,
            sessions: BTreeMap::new(),
            by_age: BTreeSet::new(),
            max_sessions,
            extra: Vec::new(),
            pending: None,
        }
    }

    /// A state machine over a store opened from a disk engine, with the
    /// session bytes its last [`StateMachine::commit`] wrote beside it
    /// (empty: no sessions).
    pub fn with_store(
        kv: KvStore<DynEngine>,
        beside: &[u8],
        max_sessions: usize,
    ) -> Result<Self, CorruptSnapshot> {
        let mut sm = StateMachine::over(kv, max_sessions);
        if !beside.is_empty() {
            let b: Beside =
                postcard::from_bytes(beside).map_err(|e| CorruptSnapshot(e.to_string()))?;
            sm.set_sessions(b.sessions);
            sm.extra = b.extra;
        }
        Ok(sm)
    }

    /// The owner's bytes found beside a disk engine's data when it was
    /// opened (the node's member registry), as its last commit wrote them.
    pub fn extra(&self) -> &[u8] {
        &self.extra
    }

    pub(crate) fn set_extra(&mut self, extra: Vec<u8>) {
        self.extra = extra;
    }

    fn set_sessions(&mut self, list: Vec<(u64, Session)>) {
        self.sessions.clear();
        self.by_age.clear();
        for (c, s) in list {
            self.by_age.insert((s.at, c));
            self.sessions.insert(c, s);
        }
    }

    /// What a disk engine keeps beside its data: the sessions and `extra`.
    fn beside_image(&self, extra: &[u8]) -> Vec<u8> {
        let list: Vec<(u64, &Session)> = self.sessions.iter().map(|(c, s)| (*c, s)).collect();
        postcard::to_allocvec(&(list, extra)).expect("postcard encoding into a Vec cannot fail")
    }

    /// The key-value store (for reads).
    pub fn kv(&self) -> &KvStore<DynEngine> {
        &self.kv
    }

    /// Commits the store's engine at log index `applied`, with the sessions
    /// and the owner's `extra` bytes beside the data (nothing to do in
    /// memory). See [`KvStore::commit`].
    pub fn commit(&mut self, applied: u64, durable: bool, extra: &[u8]) -> Result<(), KvError> {
        assert!(
            self.pending.is_none(),
            "the store was committed with entry {:?} half applied",
            self.pending
        );
        if self.kv.engine().durable_applied().is_none() {
            return Ok(());
        }
        let beside = self.beside_image(extra);
        self.kv.commit(applied, &beside, durable)
    }

    /// The applied index of the engine's last durable commit (`None`: an
    /// in-memory engine).
    pub fn durable_applied(&self) -> Option<u64> {
        self.kv.engine().durable_applied()
    }

    /// Replaces the whole state with a [`StateMachine::snapshot`] image, in
    /// the same engine (bad bytes change nothing).
    pub fn install(&mut self, data: &[u8]) -> Result<(), CorruptSnapshot> {
        let r = self.install_inner(data);
        if !self.kv.in_progress() {
            // The entry in progress was replaced with the rest.
            self.pending = None;
        }
        r
    }

    fn install_inner(&mut self, data: &[u8]) -> Result<(), CorruptSnapshot> {
        if data.is_empty() {
            let empty = KvStore::new().snapshot();
            self.kv
                .install(&empty)
                .map_err(|e| CorruptSnapshot(e.to_string()))?;
            self.set_sessions(Vec::new());
            return Ok(());
        }
        let image: Image =
            postcard::from_bytes(data).map_err(|e| CorruptSnapshot(e.to_string()))?;
        self.kv
            .install(&image.kv)
            .map_err(|e| CorruptSnapshot(e.to_string()))?;
        self.set_sessions(image.sessions);
        Ok(())
    }

    /// What the session table knows of request (client, seq): applied
    /// (its outcome), superseded by a later one of the session, or nothing
    /// (not applied, or its session was forgotten).
    pub fn session_outcome(&self, client: u64, seq: u64) -> Option<Applied> {
        let s = self.sessions.get(&client)?;
        match seq.cmp(&s.seq) {
            std::cmp::Ordering::Equal => Some(Applied::Duplicate(s.outcome.clone())),
            std::cmp::Ordering::Less => Some(Applied::Stale { latest: s.seq }),
            std::cmp::Ordering::Greater => None,
        }
    }

    /// Applies the proposal found at log `index`.
    pub fn apply(&mut self, index: u64, p: &Proposal) -> (Applied, Vec<Event>) {
        let mut budget = u64::MAX;
        self.apply_bounded(index, p, &mut budget)
            .expect("an unbounded apply completes")
    }

    /// Applies the proposal found at log `index` under a budget of key
    /// operations (see [`KvStore::apply_bounded`]); `None`: it is part way
    /// through, and [`StateMachine::resume`] carries on (nothing else may
    /// apply meanwhile).
    pub fn apply_bounded(
        &mut self,
        index: u64,
        p: &Proposal,
        budget: &mut u64,
    ) -> Option<(Applied, Vec<Event>)> {
        assert!(
            self.pending.is_none(),
            "entry {index} applied while {:?} is in progress",
            self.pending
        );
        if p.client != 0 {
            if let Some(s) = self.sessions.get(&p.client) {
                if p.seq == s.seq {
                    *budget = budget.saturating_sub(1);
                    return Some((Applied::Duplicate(s.outcome.clone()), Vec::new()));
                }
                if p.seq < s.seq {
                    *budget = budget.saturating_sub(1);
                    return Some((Applied::Stale { latest: s.seq }, Vec::new()));
                }
            }
        }
        match self.kv.apply_bounded(&p.cmd, budget) {
            Progress::Done(outcome, events) => {
                Some((self.record(index, p.client, p.seq, outcome), events))
            }
            Progress::Pending => {
                self.pending = Some((index, p.client, p.seq));
                None
            }
        }
    }

    /// Carries on with the proposal [`StateMachine::apply_bounded`] left
    /// part way through.
    pub fn resume(&mut self, budget: &mut u64) -> Option<(Applied, Vec<Event>)> {
        let (index, client, seq) = self.pending.expect("resume with nothing in progress");
        match self.kv.resume(budget) {
            Progress::Done(outcome, events) => {
                self.pending = None;
                Some((self.record(index, client, seq, outcome), events))
            }
            Progress::Pending => None,
        }
    }

    /// The log index of the proposal part way through, if any.
    pub fn in_progress(&self) -> Option<u64> {
        debug_assert_eq!(self.pending.is_some(), self.kv.in_progress());
        self.pending.map(|(index, _, _)| index)
    }

    /// Records a fresh outcome in its client's session.
    fn record(
        &mut self,
        index: u64,
        client: u64,
        seq: u64,
        outcome: Result<Response, KvError>,
    ) -> Applied {
        if client != 0 {
            if let Some(old) = self.sessions.remove(&client) {
                self.by_age.remove(&(old.at, client));
            }
            self.sessions.insert(
                client,
                Session {
                    seq,
                    outcome: outcome.clone(),
                    at: index,
                },
            );
            self.by_age.insert((index, client));
            while self.sessions.len() > self.max_sessions {
                let oldest = *self
                    .by_age
                    .iter()
                    .next()
                    .expect("sessions and by_age agree");
                self.by_age.remove(&oldest);
                self.sessions.remove(&oldest.1);
            }
        }
        assert_eq!(self.sessions.len(), self.by_age.len());
        Applied::Fresh(outcome)
    }

    /// A deterministic image of the whole state.
    pub fn snapshot(&self) -> Vec<u8> {
        self.image_with(self.kv.snapshot())
    }

    /// Cuts the state at `at`: this state machine keeps the keys below it,
    /// and the image of a state machine holding the keys from `at` on comes
    /// back (the same revision and client sessions, so a request applied
    /// before the split is still answered once, whichever half it reaches).
    pub(crate) fn split_off(&mut self, at: &[u8]) -> Result<Vec<u8>, KvError> {
        let (left, right) = self.kv.split_images(at)?;
        self.kv.install(&left)?;
        Ok(self.image_with(right))
    }

    /// A state machine image of `kv` (a store's image) with this one's
    /// sessions: the bytes of an `Image`, built around the store's image
    /// without a second copy of it (its length as a varint in front, the
    /// sessions after).
    fn image_with(&self, kv: Vec<u8>) -> Vec<u8> {
        let mut out = kv;
        let prefix = postcard::to_allocvec(&out.len()).expect("encoding cannot fail");
        let list: Vec<(u64, &Session)> = self.sessions.iter().map(|(c, s)| (*c, s)).collect();
        let sessions = postcard::to_allocvec(&list).expect("encoding cannot fail");
        out.reserve(prefix.len() + sessions.len());
        out.splice(0..0, prefix);
        out.extend_from_slice(&sessions);
        out
    }

    /// Rebuilds from [`StateMachine::snapshot`]'s output. Empty data is the empty state.
    pub fn restore(data: &[u8], max_sessions: usize) -> Result<Self, CorruptSnapshot> {
        let mut sm = StateMachine::new(max_sessions);
        sm.install(data)?;
        Ok(sm)
    }

    /// A hash of the whole state, sessions included, for comparing replicas.
    pub fn hash(&self) -> u64 {
        let mut h = self.kv.hash();
        for (c, s) in &self.sessions {
            h = mix(h
                ^ c.wrapping_mul(0x9E37_79B9_7F4A_7C15)
                ^ s.seq.rotate_left(17)
                ^ s.at.rotate_left(41));
        }
        h
    }
}

fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}
