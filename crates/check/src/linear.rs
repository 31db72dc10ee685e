//! Linearizability of a key-value history, checked one key at a time.
//!
//! A key-value store is a collection of independent registers, and
//! linearizability is compositional (Herlihy & Wing's locality,
//! "P-compositionality"): the history is linearizable iff the sub-history of
//! every key is. Keys are therefore checked independently, on several threads;
//! the verdict reports the first failing key in key order, so it does not
//! depend on thread timing.
//!
//! Each key is checked with the Wing & Gong search in Lowe's just-in-time
//! form, memoized as in Knossos and Porcupine: walk the call/return events in
//! time order; at a call, try to linearize that operation now (if the register
//! model allows it and the pair (set of linearized operations, register
//! value) is new), otherwise look further; at the return of an operation not
//! yet linearized, undo the last choice. The search succeeds when every
//! operation with a known return has been linearized.
//!
//! Outcomes, as the history format defines them:
//! * put/delete `ok:true` and cas `ok:true` take effect within their interval;
//! * put/delete `ok:false` never happened and are dropped; get `ok:false` or
//!   unknown constrains nothing and is dropped;
//! * cas `ok:false` is an observation: at some point within its interval the
//!   value differed from `expected`;
//! * an unknown outcome (put, delete, cas) may take effect at any time after
//!   its call, or never: it has no return event, and the search need not place
//!   it. A cas with an unknown outcome is only placed where its comparison holds
//!   (placing it elsewhere is a no-op, the same as never).
//!
//! Unknown outcomes are what makes such checks slow (each one stays
//! concurrent with the rest of the history), so the search cuts them down,
//! with reasons given at `KeyChecker` (in the source):
//! * an unknown operation is placed only right before an operation that it
//!   makes possible (one that could not go at the value before it);
//! * it is not placed once every known operation that could observe its value
//!   (directly or through unknown cas operations) is placed;
//! * of several unknown writes of the same value, only the earliest is tried;
//! * values nobody compares against (no get read them, no cas expected them)
//!   are one value to the search;
//! * in each search state the known operations are tried before the unknown
//!   ones, and the memo keeps, for each (value, known operations placed), only
//!   the minimal sets of unknown operations placed: a state with fewer unknown
//!   operations placed can do everything one with more can.
//!
//! The memo key is an exact encoding (no hashed bitsets that could collide):
//! the value, `k` (the first known operation, in call order, not placed), the
//! known operations placed after `k`, and the unknown operations placed that
//! still matter. Its size follows the concurrency, not the history's length.
//! The table is bounded ([`Config::max_memo_bytes`]); running out of it, or of
//! time, makes the key [`Verdict::Undecided`], never a wrong verdict.
//!
//! A client's operation called at the very instant its previous operation on
//! the same key returned is placed after it (program order), which closed
//! intervals alone would not say.
//!
//! Known limit: a failed cas is satisfied by any value but the one it
//! expected, so it keeps earlier unknown writes relevant. On a hot key with
//! many unknown outcomes and failed cas operations, proving a violation (which
//! must rule out every alternative) can take long; the verdict is then
//! [`Verdict::Undecided`] at the time limit, never a wrong one.
//!
//! A brute-force oracle test (`tests/oracle.rs`) checks the verdict, with all
//! of these shortcuts, on tens of thousands of small random histories.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::history::{Op, OpKind};

/// How to run the checker.
#[derive(Clone, Debug)]
pub struct Config {
    /// Give up (verdict [`Verdict::Undecided`]) after this long; `None`: never.
    pub time_limit: Option<Duration>,
    /// Worker threads; keys are spread over them.
    pub threads: usize,
    /// Upper bound on the memo tables, in (estimated) bytes, shared evenly by
    /// the keys being checked at the same time (one per thread).
    pub max_memo_bytes: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            time_limit: None,
            threads: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            max_memo_bytes: 1 << 30,
        }
    }
}

/// The checker's answer for a whole history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every key's sub-history is linearizable.
    Linearizable,
    /// This key's sub-history is not linearizable (the first such key in key
    /// order among those decided).
    NotLinearizable {
        /// The key.
        key: String,
        /// A readable explanation: the longest linearizable prefix found and
        /// the operations that could not be placed after it.
        detail: String,
    },
    /// The time or memory limit ran out on this key before it was decided
    /// (and no key was found to fail).
    Undecided {
        /// The key.
        key: String,
    },
}

/// The verdict with a few figures about the work done.
#[derive(Clone, Debug)]
pub struct Report {
    /// The verdict.
    pub verdict: Verdict,
    /// Number of distinct keys in the history.
    pub keys: usize,
    /// Number of operations in the history.
    pub ops: usize,
    /// Number of search states stored in memo tables, over all keys.
    pub states: u64,
}

/// Checks a history with the given configuration.
pub fn check(ops: &[Op], config: &Config) -> Report {
    let mut by_key: BTreeMap<&str, Vec<&Op>> = BTreeMap::new();
    for op in ops {
        by_key.entry(op.key.as_str()).or_default().push(op);
    }
    let keys: Vec<(&str, Vec<&Op>)> = by_key.into_iter().collect();
    let deadline = config.time_limit.map(|t| Instant::now() + t);
    // Biggest keys first, for balance; the verdict uses key order (`rank`).
    let mut order: Vec<usize> = (0..keys.len()).collect();
    order.sort_by_key(|&i| (std::cmp::Reverse(keys[i].1.len()), i));

    let next = AtomicUsize::new(0);
    let first_failure = AtomicUsize::new(usize::MAX);
    let results: Mutex<Vec<Option<KeyOutcome>>> = Mutex::new(vec![None; keys.len()]);
    let states = std::sync::atomic::AtomicU64::new(0);
    let workers = config.threads.clamp(1, keys.len().max(1));
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                let slot = next.fetch_add(1, Ordering::Relaxed);
                let Some(&rank) = order.get(slot) else { break };
                if first_failure.load(Ordering::Relaxed) < rank {
                    continue;
                }
                let stop = Stop {
                    deadline,
                    cancel: &|| first_failure.load(Ordering::Relaxed) < rank,
                };
                let (name, key_ops) = &keys[rank];
                let mut checker = KeyChecker::new(key_ops, config.max_memo_bytes / workers);
                let outcome = checker.run(&stop);
                states.fetch_add(checker.memo_states as u64, Ordering::Relaxed);
                let outcome = match outcome {
                    Search::Linearizable => KeyOutcome::Ok,
                    Search::Cancelled => KeyOutcome::Skipped,
                    Search::OutOfTime | Search::OutOfMemory => KeyOutcome::Undecided,
                    Search::Fails => {
                        first_failure.fetch_min(rank, Ordering::Relaxed);
                        KeyOutcome::Fails(checker.explain(name))
                    }
                };
                results.lock().expect("no worker panicked")[rank] = Some(outcome);
            });
        }
    });
    let results = results.into_inner().expect("no worker panicked");
    let mut verdict = Verdict::Linearizable;
    for ((name, _), outcome) in keys.iter().zip(results) {
        match outcome {
            Some(KeyOutcome::Fails(detail)) => {
                verdict = Verdict::NotLinearizable {
                    key: name.to_string(),
                    detail,
                };
                break;
            }
            Some(KeyOutcome::Undecided) if verdict == Verdict::Linearizable => {
                verdict = Verdict::Undecided {
                    key: name.to_string(),
                }
            }
            _ => {}
        }
    }
    Report {
        verdict,
        keys: keys.len(),
        ops: ops.len(),
        states: states.into_inner(),
    }
}

/// Checks a history with the default configuration (no time limit).
pub fn check_history(ops: &[Op]) -> Verdict {
    check(ops, &Config::default()).verdict
}

#[derive(Clone, Debug)]
enum KeyOutcome {
    Ok,
    Fails(String),
    Undecided,
    Skipped,
}

/// When a search must stop early.
struct Stop<'a> {
    deadline: Option<Instant>,
    cancel: &'a (dyn Fn() -> bool + Sync),
}

/// How one key's search ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Search {
    Linearizable,
    Fails,
    OutOfTime,
    OutOfMemory,
    Cancelled,
}

/// A register value: 0 is "absent", others index [`KeyChecker::values`].
type Val = u32;
const ABSENT: Val = 0;

/// One operation of a key, reduced to what the register model needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Effect {
    /// Sets the value (put, delete with [`ABSENT`]).
    Write(Val),
    /// Reads exactly this value.
    Read(Val),
    /// Swaps `from` to `to`; must succeed.
    Cas(Val, Val),
    /// Observes a value other than this.
    NotEqual(Val),
}

impl Effect {
    /// The new register value if the operation can take effect on `s`.
    /// (An unknown cas whose comparison fails would be a no-op, the same as
    /// not happening at all, so it is never placed there.)
    fn apply(self, s: Val) -> Option<Val> {
        match self {
            Effect::Write(v) => Some(v),
            Effect::Read(v) => (s == v).then_some(s),
            Effect::Cas(e, v) => (s == e).then_some(v),
            Effect::NotEqual(e) => (s != e).then_some(s),
        }
    }

    /// Whether this operation, placed after a write of `w`, could tell that
    /// the write happened (see [`KeyChecker`] on pruning).
    fn observes(self, w: Val) -> bool {
        match self {
            Effect::Write(_) => false,
            Effect::Read(v) | Effect::Cas(v, _) => v == w,
            Effect::NotEqual(e) => e != w,
        }
    }
}

#[derive(Clone, Debug)]
struct KOp<'a> {
    call: u64,
    /// `None`: unknown outcome, no return event.
    ret: Option<u64>,
    effect: Effect,
    src: &'a Op,
}

const NIL: u32 = u32::MAX;

/// The memo table: base key (value, need, known ops placed) to the antichain
/// of sets of unknown ops placed.
type Memo = HashMap<Box<[u32]>, Vec<Box<[u32]>>, BuildHasherDefault<MemoHasher>>;

/// Whether sorted `a` is a subset of sorted `b`.
fn is_subset(a: &[u32], b: &[u32]) -> bool {
    if a.len() > b.len() {
        return false;
    }
    let mut j = 0;
    for &x in a {
        while j < b.len() && b[j] < x {
            j += 1;
        }
        if j == b.len() || b[j] != x {
            return false;
        }
        j += 1;
    }
    true
}

/// A fast hasher for memo keys (which are small integer slices).
#[derive(Default)]
struct MemoHasher(u64);

impl Hasher for MemoHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word))
                .wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }
    fn write_usize(&mut self, i: usize) {
        self.write(&(i as u64).to_le_bytes());
    }
    fn finish(&self) -> u64 {
        self.0 ^ (self.0 >> 29)
    }
}

/// The search for one key.
///
/// Why the shortcuts for an unknown operation `o` (value `w`, placed when the
/// value was `s`) lose no linearization. Take any valid linearization.
/// * Window: between `o` and the next operation that changes the value, the
///   value is `w`. Look at the operation right after `o`. If it is legal on
///   `s` as well and does not write (a get, a failed cas), it can be moved
///   before `o`. If it writes and is legal on both, it is a put or delete
///   (then `o`'s window is empty and `o` can be dropped) or a cas from `w`
///   with `s == w` (then `o` changed nothing and can be dropped). An unknown cas whose comparison fails is a
///   no-op and can be dropped. So, repeating, either `o` is followed by an
///   operation legal on `w` but not on `s` (the *need* rule), or `o`'s window
///   holds no operation that looks at the value and `o` can be dropped (an
///   unknown outcome may never happen).
/// * Observers: the operations that can tell `w` apart ([`Effect::observes`]),
///   that return at or after `o`'s call. If all the known ones are placed, and
///   unknown cas operations from `w` (whose own observers are counted the same
///   way, transitively) can only be dropped, `o` can be dropped. So `o` is
///   never placed once `alive[o] == 0`; this depends only on which known
///   operations are placed, which the memo key records.
/// * Twins: two unplaced unknown writes of the same value whose calls have
///   both passed can each be placed at any later moment with the same effect;
///   the earlier has at least the observers of the later, so whatever a
///   linearization does with the later one it can do with the earlier.
/// * Merged values: a value that no get, cas or failed cas compares against
///   is treated the same by every operation, so all such values are one.
/// * Subsumption: with the same value, need and known operations placed, a
///   state whose unknown operations placed are a subset of another's can
///   complete whenever the other can, using the same operations.
struct KeyChecker<'a> {
    ops: Vec<KOp<'a>>,
    values: Vec<&'a str>,
    /// Linked list of events (index `2*i` call of op `i`, `2*i+1` its
    /// return); `head` is the first.
    next: Vec<u32>,
    prev: Vec<u32>,
    head: u32,
    /// Known-outcome operations not yet linearized.
    mandatory_left: usize,
    lin: Vec<bool>,
    /// The same client's previous op, when it returned at this op's call.
    pred: Vec<Option<u32>>,
    /// First known-outcome operation (in call order) not linearized.
    k: usize,
    /// Known-outcome operations after `k` that are linearized.
    ahead: BTreeSet<u32>,
    /// Unknown-outcome operations that are linearized.
    placed_unknown: BTreeSet<u32>,
    /// For an unknown operation: unplaced observers (`u32::MAX`: never
    /// pruned). For every operation: the unknown operations it observes.
    alive: Vec<u32>,
    observes: Vec<Vec<u32>>,
    /// Unknown ops not linearized and not pruned (`alive > 0`).
    candidates: BTreeSet<u32>,
    /// The values that unknown cas operations expect.
    unknown_cas_from: BTreeSet<Val>,
    /// Unknown writes not linearized, grouped by the value they write.
    unplaced_writes: BTreeMap<Val, BTreeSet<u32>>,
    /// Seen states: for each (value, need, known ops placed), the sets of
    /// (not pruned) unknown ops placed, kept as an antichain under inclusion.
    memo: Memo,
    memo_states: usize,
    memo_bytes: usize,
    max_memo_bytes: usize,
    scratch: Vec<u32>,
    scratch_placed: Vec<u32>,
    /// Longest linearization found: its first `best_valid` entries equal the
    /// current stack's.
    best: Vec<u32>,
    best_valid: usize,
}

impl<'a> KeyChecker<'a> {
    fn new(src: &[&'a Op], max_memo_bytes: usize) -> Self {
        let mut values: Vec<&'a str> = vec![""];
        let mut ids: BTreeMap<&'a str, Val> = BTreeMap::new();
        let mut id = |v: &'a Option<String>| -> Val {
            match v {
                None => ABSENT,
                Some(s) => *ids.entry(s.as_str()).or_insert_with(|| {
                    values.push(s.as_str());
                    (values.len() - 1) as Val
                }),
            }
        };
        let mut ops = Vec::with_capacity(src.len());
        for &op in src {
            let effect = match (op.op, op.ok) {
                (OpKind::Put | OpKind::Delete, Some(false)) => continue,
                (OpKind::Get, Some(false) | None) => continue,
                (OpKind::Put, _) => Effect::Write(id(&op.value)),
                (OpKind::Delete, _) => Effect::Write(ABSENT),
                (OpKind::Get, Some(true)) => Effect::Read(id(&op.value)),
                (OpKind::Cas, Some(false)) => Effect::NotEqual(id(&op.expected)),
                (OpKind::Cas, _) => Effect::Cas(id(&op.expected), id(&op.value)),
            };
            assert_eq!(op.ok.is_none(), op.ret.is_none(), "validated history");
            ops.push(KOp {
                call: op.call,
                ret: op.ret,
                effect,
                src: op,
            });
        }
        ops.sort_by_key(|o| o.call);
        // Values that no operation ever compares against (no get read them, no
        // cas expected them) all behave alike: every get and successful cas
        // fails on them and every failed cas is satisfied. Merging them into
        // one value is exact, and makes writes of such values interchangeable.
        let mut mentioned: BTreeSet<Val> = BTreeSet::from([ABSENT]);
        for o in &ops {
            match o.effect {
                Effect::Read(v) | Effect::Cas(v, _) | Effect::NotEqual(v) => {
                    mentioned.insert(v);
                }
                Effect::Write(_) => {}
            }
        }
        values.push("<a value no operation compared against>");
        let unseen = (values.len() - 1) as Val;
        let merge = |v: Val| if mentioned.contains(&v) { v } else { unseen };
        for o in &mut ops {
            o.effect = match o.effect {
                Effect::Write(v) => Effect::Write(merge(v)),
                Effect::Cas(e, v) => Effect::Cas(e, merge(v)),
                other => other,
            };
        }
        assert!(
            ops.len() < (NIL / 2) as usize,
            "too many operations on one key"
        );
        let n = ops.len();

        // Program order at a shared instant: a client's op called at the very
        // moment its previous op returned (as a discrete-event simulator may
        // record) still comes after it, which closed intervals alone would not
        // say. (Within this key only; across keys real time is what counts.)
        let mut pred: Vec<Option<u32>> = vec![None; n];
        let mut last_of: BTreeMap<u64, usize> = BTreeMap::new();
        for (i, o) in ops.iter().enumerate() {
            if let Some(&a) = last_of.get(&o.src.client) {
                if ops[a].ret == Some(o.call) {
                    pred[i] = Some(a as u32);
                }
            }
            last_of.insert(o.src.client, i);
        }

        // Events in time order; at equal times calls come first (intervals are
        // closed). Unknown outcomes have no return event.
        let mut events: Vec<(u64, u8, u32)> = Vec::with_capacity(2 * n);
        for (i, o) in ops.iter().enumerate() {
            if let Some(r) = o.ret {
                events.push((o.call, 0, 2 * i as u32));
                events.push((r, 1, 2 * i as u32 + 1));
            }
        }
        events.sort_unstable();
        let mut next = vec![NIL; 2 * n];
        let mut prev = vec![NIL; 2 * n];
        for w in events.windows(2) {
            next[w[0].2 as usize] = w[1].2;
            prev[w[1].2 as usize] = w[0].2;
        }
        let head = events.first().map_or(NIL, |e| e.2);

        // Observers of unknown outcomes, within a budget of pairs.
        let mut alive = vec![0u32; n];
        let mut observes = vec![Vec::new(); n];
        let mut by_value: BTreeMap<Val, Vec<u32>> = BTreeMap::new();
        let mut not_equal: Vec<u32> = Vec::new();
        for (i, o) in ops.iter().enumerate() {
            match o.effect {
                Effect::Read(v) | Effect::Cas(v, _) => {
                    by_value.entry(v).or_default().push(i as u32)
                }
                Effect::NotEqual(_) => not_equal.push(i as u32),
                Effect::Write(_) => {}
            }
        }
        // The observers of an unknown op's value: (known ones, unknown ones).
        // Only ops that return at or after its call can come after it.
        let direct = |i: usize, work: &mut usize| -> (Vec<u32>, Vec<u32>) {
            let o = &ops[i];
            let w = match o.effect {
                Effect::Write(w) | Effect::Cas(_, w) => w,
                other => unreachable!("unknown outcome {other:?} was dropped"),
            };
            let same = by_value.get(&w).map_or(&[][..], |v| &v[..]);
            *work += same.len() + not_equal.len();
            let (mut known, mut unknown) = (Vec::new(), Vec::new());
            for &x in same.iter().chain(&not_equal) {
                let xo = &ops[x as usize];
                if x as usize == i || !xo.effect.observes(w) {
                    continue;
                }
                match xo.ret {
                    None => unknown.push(x),
                    Some(r) if r >= o.call => known.push(x),
                    Some(_) => {}
                }
            }
            (known, unknown)
        };
        // An unknown op matters while a known op that observes its value, or
        // the value of an unknown cas that observes it (and so on), is not
        // placed; these sets depend only on the history.
        let mut work: usize = 0;
        const WORK_BUDGET: usize = 8 << 20;
        for i in 0..n {
            if ops[i].ret.is_some() {
                continue;
            }
            let mut known_obs: BTreeSet<u32> = BTreeSet::new();
            let mut visited: BTreeSet<u32> = BTreeSet::from([i as u32]);
            let mut todo = vec![i];
            while let Some(j) = todo.pop() {
                if work > WORK_BUDGET {
                    break;
                }
                let (known, unknown) = direct(j, &mut work);
                known_obs.extend(known);
                for u in unknown {
                    if visited.insert(u) {
                        todo.push(u as usize);
                    }
                }
            }
            if work > WORK_BUDGET {
                alive[i] = u32::MAX;
                continue;
            }
            alive[i] = known_obs.len() as u32;
            for x in known_obs {
                observes[x as usize].push(i as u32);
            }
        }

        let mut unplaced_writes: BTreeMap<Val, BTreeSet<u32>> = BTreeMap::new();
        for (i, o) in ops.iter().enumerate() {
            if let (None, Effect::Write(w)) = (o.ret, o.effect) {
                unplaced_writes.entry(w).or_default().insert(i as u32);
            }
        }
        let mandatory_left = ops.iter().filter(|o| o.ret.is_some()).count();
        let mut checker = KeyChecker {
            lin: vec![false; n],
            pred,
            k: 0,
            ahead: BTreeSet::new(),
            placed_unknown: BTreeSet::new(),
            candidates: (0..n as u32)
                .filter(|&i| ops[i as usize].ret.is_none() && alive[i as usize] > 0)
                .collect(),
            unplaced_writes,
            unknown_cas_from: ops
                .iter()
                .filter(|o| o.ret.is_none())
                .filter_map(|o| match o.effect {
                    Effect::Cas(e, _) => Some(e),
                    _ => None,
                })
                .collect(),
            mandatory_left,
            alive,
            observes,
            next,
            prev,
            head,
            values,
            memo: HashMap::default(),
            memo_states: 0,
            memo_bytes: 0,
            max_memo_bytes,
            scratch: Vec::new(),
            scratch_placed: Vec::new(),
            best: Vec::new(),
            best_valid: 0,
            ops,
        };
        checker.k = checker.first_unplaced_from(0);
        checker
    }

    fn mandatory(&self, i: usize) -> bool {
        self.ops[i].ret.is_some()
    }

    /// The first known-outcome operation at or after `j` not linearized;
    /// linearized known operations passed on the way leave `ahead`.
    fn first_unplaced_from(&mut self, mut j: usize) -> usize {
        while j < self.ops.len() {
            if self.mandatory(j) {
                if !self.lin[j] {
                    break;
                }
                self.ahead.remove(&(j as u32));
            }
            j += 1;
        }
        j
    }

    fn unlink(&mut self, node: u32) {
        let (p, n) = (self.prev[node as usize], self.next[node as usize]);
        if p == NIL {
            self.head = n;
        } else {
            self.next[p as usize] = n;
        }
        if n != NIL {
            self.prev[n as usize] = p;
        }
    }

    fn relink(&mut self, node: u32) {
        let (p, n) = (self.prev[node as usize], self.next[node as usize]);
        if p == NIL {
            self.head = node;
        } else {
            self.next[p as usize] = node;
        }
        if n != NIL {
            self.prev[n as usize] = node;
        }
    }

    fn lift(&mut self, i: usize) {
        assert!(!self.lin[i]);
        self.lin[i] = true;
        if self.mandatory(i) {
            self.unlink(2 * i as u32);
            self.unlink(2 * i as u32 + 1);
            self.mandatory_left -= 1;
        }
        for idx in 0..self.observes[i].len() {
            let o = self.observes[i][idx] as usize;
            self.alive[o] -= 1;
            if self.alive[o] == 0 && !self.lin[o] {
                assert!(self.candidates.remove(&(o as u32)));
            }
        }
        if !self.mandatory(i) {
            assert!(self.candidates.remove(&(i as u32)));
            self.placed_unknown.insert(i as u32);
            if let Effect::Write(w) = self.ops[i].effect {
                let set = self.unplaced_writes.get_mut(&w).expect("grouped");
                assert!(set.remove(&(i as u32)));
            }
        } else if i == self.k {
            self.k = self.first_unplaced_from(i + 1);
        } else {
            assert!(i > self.k, "known ops before k are placed");
            self.ahead.insert(i as u32);
        }
    }

    fn unlift(&mut self, i: usize) {
        assert!(self.lin[i]);
        self.lin[i] = false;
        if self.mandatory(i) {
            self.relink(2 * i as u32 + 1);
            self.relink(2 * i as u32);
            self.mandatory_left += 1;
        }
        for idx in 0..self.observes[i].len() {
            let o = self.observes[i][idx] as usize;
            self.alive[o] += 1;
            if self.alive[o] == 1 && !self.lin[o] {
                assert!(self.candidates.insert(o as u32));
            }
        }
        if !self.mandatory(i) {
            assert!(self.alive[i] > 0, "only unpruned unknown ops are placed");
            assert!(self.candidates.insert(i as u32));
            self.placed_unknown.remove(&(i as u32));
            if let Effect::Write(w) = self.ops[i].effect {
                let set = self.unplaced_writes.get_mut(&w).expect("grouped");
                assert!(set.insert(i as u32));
            }
        } else if i > self.k {
            self.ahead.remove(&(i as u32));
        } else {
            assert!(i < self.k, "op k is not placed");
            for j in i + 1..self.k {
                if self.lin[j] && self.mandatory(j) {
                    self.ahead.insert(j as u32);
                }
            }
            self.k = i;
        }
    }

    /// Whether unknown write `i` has a twin: an earlier-called unknown write
    /// of the same value, not placed, not pruned and not waiting for its
    /// client's previous op. Both can be placed from
    /// now on, at any time, with the same effect; the earlier one can be
    /// placed whenever the later one could (its observers include the later
    /// one's), so only the earliest is ever tried.
    fn has_twin(&self, i: usize) -> bool {
        const LOOK: usize = 16;
        let Effect::Write(w) = self.ops[i].effect else {
            return false;
        };
        let set = &self.unplaced_writes[&w];
        set.range(..i as u32).rev().take(LOOK).any(|&o| {
            self.alive[o as usize] > 0 && self.pred[o as usize].is_none_or(|p| self.lin[p as usize])
        })
    }

    /// Records the current (linearized set, value) pair; false if it was
    /// already seen.
    /// The time of the first return event not yet passed: ops called by
    /// then are the ones that may be placed now.
    fn frontier(&self) -> u64 {
        let mut entry = self.head;
        while entry != NIL {
            if entry % 2 == 1 {
                return self.ops[(entry / 2) as usize].ret.expect("known op");
            }
            entry = self.next[entry as usize];
        }
        u64::MAX
    }

    /// What an unknown op placed now could be good for: the values that
    /// would let a callable op (blocked at `state`) go, and whether a callable
    /// failed cas is blocked (any other value lets it go). An unknown op is
    /// worth placing only if its value is one of these (the need rule).
    fn wanted(&self, state: Val, frontier: u64, out: &mut Vec<Val>) -> bool {
        out.clear();
        let mut any_value = false;
        let mut want = |e: Effect, out: &mut Vec<Val>| match e {
            Effect::Read(v) | Effect::Cas(v, _) if v != state => out.push(v),
            Effect::NotEqual(v) if v == state => any_value = true,
            _ => {}
        };
        let mut entry = self.head;
        while entry != NIL && entry.is_multiple_of(2) {
            want(self.ops[(entry / 2) as usize].effect, out);
            entry = self.next[entry as usize];
        }
        if !self.unknown_cas_from.is_empty() {
            for &x in &self.candidates {
                let x = x as usize;
                if self.ops[x].call > frontier {
                    break;
                }
                if matches!(self.ops[x].effect, Effect::Cas(..)) {
                    want(self.ops[x].effect, out);
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        any_value
    }

    /// Records the current state; false if it, or a state that can do
    /// everything it can, was seen before. A state with fewer unknown ops
    /// placed (and otherwise equal) can do everything a state with more can:
    /// every op still placeable in the latter is placeable in the former.
    fn remember(&mut self, state: Val, need: Option<Val>) -> bool {
        self.scratch.clear();
        self.scratch.push(state);
        self.scratch.push(need.unwrap_or(NIL));
        self.scratch.push(self.k as u32);
        self.scratch.extend(self.ahead.iter().copied());
        // Placed unknown ops that can no longer be placed anyway (pruned) are
        // left out: placed or not, the future search is the same.
        let alive = &self.alive;
        let mut placed = std::mem::take(&mut self.scratch_placed);
        placed.clear();
        placed.extend(
            self.placed_unknown
                .iter()
                .copied()
                .filter(|&o| alive[o as usize] > 0),
        );
        let bytes = |u: &[u32]| u.len() * 4 + 32;
        let fresh = match self.memo.get_mut(&self.scratch[..]) {
            Some(seen) if seen.iter().any(|u| is_subset(u, &placed)) => false,
            Some(seen) => {
                let before: usize = seen.iter().map(|u| bytes(u)).sum();
                let count = seen.len();
                seen.retain(|u| !is_subset(&placed, u));
                let after: usize = seen.iter().map(|u| bytes(u)).sum();
                self.memo_states -= count - seen.len();
                self.memo_bytes -= before - after;
                self.memo_bytes += bytes(&placed);
                seen.push(placed.as_slice().into());
                true
            }
            None => {
                self.memo_bytes += self.scratch.len() * 4 + 64 + bytes(&placed);
                self.memo.insert(
                    self.scratch.as_slice().into(),
                    vec![placed.as_slice().into()],
                );
                true
            }
        };
        self.scratch_placed = placed;
        if !fresh {
            return false;
        }
        self.memo_states += 1;
        true
    }

    fn run(&mut self, stop: &Stop<'_>) -> Search {
        /// Where the scan of the current search state is.
        #[derive(Clone, Copy)]
        enum Cursor {
            /// Known ops, in the event list, from this entry on.
            Known(u32),
            /// Unknown candidates after this one (`None`: from the first),
            /// called by `frontier`.
            Unknown(Option<u32>, u64),
        }
        // Frames: (op placed, value before it, `need` before it).
        let mut stack: Vec<(u32, Val, Option<Val>)> = Vec::new();
        let mut state: Val = ABSENT;
        // Right after placing an unknown op: the value before it. The next op
        // placed must be one that only the unknown op made possible.
        let mut need: Option<Val> = None;
        let mut cursor = Cursor::Known(self.head);
        // In the unknown pass: what an unknown op could be good for.
        let mut wanted: Vec<Val> = Vec::new();
        let mut any_value = false;
        let mut steps: u64 = 0;
        loop {
            if self.mandatory_left == 0 {
                return Search::Linearizable;
            }
            steps += 1;
            if steps.is_multiple_of(1024) {
                if (stop.cancel)() {
                    return Search::Cancelled;
                }
                if stop.deadline.is_some_and(|d| Instant::now() >= d) {
                    return Search::OutOfTime;
                }
                if self.memo_bytes > self.max_memo_bytes {
                    return Search::OutOfMemory;
                }
            }
            // The next op to try in this state: known ops called before the
            // first pending return first, then unknown ones called by then.
            let candidate = match cursor {
                Cursor::Known(entry) => {
                    assert!(entry != NIL, "a known op is left, so is its return");
                    if entry % 2 == 1 {
                        let frontier = self.ops[(entry / 2) as usize].ret.expect("known");
                        any_value = self.wanted(state, frontier, &mut wanted);
                        cursor = Cursor::Unknown(None, frontier);
                        continue;
                    }
                    Some((entry / 2) as usize)
                }
                Cursor::Unknown(after, frontier) => {
                    let next = match after {
                        None => self.candidates.iter().next(),
                        Some(a) => self.candidates.range(a + 1..).next(),
                    };
                    next.map(|&o| o as usize)
                        .filter(|&o| self.ops[o].call <= frontier)
                }
            };
            let Some(i) = candidate else {
                // Nothing can be placed: undo the last choice.
                let Some((j, old, old_need)) = stack.pop() else {
                    return Search::Fails;
                };
                self.best_valid = self.best_valid.min(stack.len());
                state = old;
                need = old_need;
                self.unlift(j as usize);
                cursor = if self.mandatory(j as usize) {
                    Cursor::Known(self.next[2 * j as usize])
                } else {
                    let frontier = self.frontier();
                    any_value = self.wanted(state, frontier, &mut wanted);
                    Cursor::Unknown(Some(j), frontier)
                };
                continue;
            };
            cursor = match cursor {
                Cursor::Known(entry) => Cursor::Known(self.next[entry as usize]),
                Cursor::Unknown(_, frontier) => Cursor::Unknown(Some(i as u32), frontier),
            };
            let unknown = !self.mandatory(i);
            let effect = self.ops[i].effect;
            if need.is_some_and(|before| effect.apply(before).is_some())
                || self.pred[i].is_some_and(|p| !self.lin[p as usize])
            {
                continue;
            }
            let Some(new_state) = effect.apply(state) else {
                continue;
            };
            // An unknown op that leaves the value as it was, or that makes no
            // op callable now possible, is useless; so is one with a twin.
            if unknown
                && (new_state == state
                    || !(any_value || wanted.binary_search(&new_state).is_ok())
                    || self.has_twin(i))
            {
                continue;
            }
            let new_need = unknown.then_some(state);
            self.lift(i);
            if self.remember(new_state, new_need) {
                stack.push((i as u32, state, need));
                state = new_state;
                need = new_need;
                self.note_progress(&stack);
                cursor = Cursor::Known(self.head);
            } else {
                self.unlift(i);
            }
        }
    }

    fn note_progress(&mut self, stack: &[(u32, Val, Option<Val>)]) {
        if stack.len() > self.best.len() {
            self.best.truncate(self.best_valid);
            self.best
                .extend(stack[self.best_valid..].iter().map(|&(i, _, _)| i));
            self.best_valid = stack.len();
        }
    }

    fn show(&self, v: Val) -> String {
        if v == ABSENT {
            "absent".to_string()
        } else {
            format!("{:?}", self.values[v as usize])
        }
    }

    /// Explains a failed search from the longest linearization found.
    fn explain(&self, key: &str) -> String {
        const SHOW: usize = 8;
        let mut state = ABSENT;
        // The value as written (several values may share one id, see `new`).
        let mut shown = "absent".to_string();
        let mut placed = vec![false; self.ops.len()];
        for &i in &self.best {
            let op = &self.ops[i as usize];
            let after = op.effect.apply(state).expect("was legal");
            if matches!(op.effect, Effect::Write(_) | Effect::Cas(..)) {
                shown = match &op.src.value {
                    Some(v) if op.src.op != OpKind::Delete => format!("{v:?}"),
                    _ => "absent".to_string(),
                };
            }
            state = after;
            placed[i as usize] = true;
        }
        let total = self.ops.iter().filter(|o| o.ret.is_some()).count();
        let placed_known = self
            .best
            .iter()
            .filter(|&&i| self.mandatory(i as usize))
            .count();
        let mut out = format!(
            "key {key:?}: no linearization exists. The longest linearizable prefix found places \
             {placed_known} of {total} operations with a known outcome"
        );
        if self.best.is_empty() {
            out.push_str(".\n");
        } else {
            out.push_str(", ending with:\n");
            let from = self.best.len().saturating_sub(SHOW);
            for &i in &self.best[from..] {
                out.push_str(&format!("  {}\n", self.ops[i as usize].src.describe()));
            }
        }
        out.push_str(&format!(
            "After it the value is {shown}, and none of these operations can come next:\n"
        ));
        // The unplaced known operations that had been called by the earliest
        // unplaced return: one of them had to be next.
        let deadline = self
            .ops
            .iter()
            .enumerate()
            .filter(|(i, o)| !placed[*i] && o.ret.is_some())
            .filter_map(|(_, o)| o.ret)
            .min()
            .expect("a failed search leaves a known op unplaced");
        let mut listed = 0;
        for (i, o) in self.ops.iter().enumerate() {
            if placed[i] || o.ret.is_none() || o.call > deadline {
                continue;
            }
            if listed == SHOW {
                out.push_str("  ...\n");
                break;
            }
            listed += 1;
            let why = match o.effect {
                Effect::Read(v) => format!("it read {}", self.show(v)),
                Effect::Cas(e, _) => format!("it expected {}", self.show(e)),
                Effect::NotEqual(e) => format!("it saw a value other than {}", self.show(e)),
                Effect::Write(_) => {
                    "it is a write, but an operation that returned before it must come first"
                        .to_string()
                }
            };
            out.push_str(&format!("  {} — {why}\n", o.src.describe()));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(
        client: u64,
        kind: OpKind,
        value: Option<&str>,
        ok: Option<bool>,
        call: u64,
        ret: Option<u64>,
    ) -> Op {
        Op {
            client,
            op: kind,
            key: "k".into(),
            value: value.map(str::to_string),
            expected: None,
            ok,
            call,
            ret,
        }
    }
    fn put(c: u64, v: &str, call: u64, ret: u64) -> Op {
        op(c, OpKind::Put, Some(v), Some(true), call, Some(ret))
    }
    fn put_unknown(c: u64, v: &str, call: u64) -> Op {
        op(c, OpKind::Put, Some(v), None, call, None)
    }
    fn get(c: u64, v: Option<&str>, call: u64, ret: u64) -> Op {
        op(c, OpKind::Get, v, Some(true), call, Some(ret))
    }
    fn del(c: u64, call: u64, ret: u64) -> Op {
        op(c, OpKind::Delete, None, Some(true), call, Some(ret))
    }
    fn cas(
        c: u64,
        expected: Option<&str>,
        v: &str,
        ok: Option<bool>,
        call: u64,
        ret: Option<u64>,
    ) -> Op {
        let mut o = op(c, OpKind::Cas, Some(v), ok, call, ret);
        o.expected = expected.map(str::to_string);
        o
    }

    fn verdict(ops: &[Op]) -> Verdict {
        crate::history::validate(ops).expect("test history is well-formed");
        check_history(ops)
    }
    fn assert_lin(ops: &[Op]) {
        assert_eq!(verdict(ops), Verdict::Linearizable, "{ops:#?}");
    }
    fn assert_not_lin(ops: &[Op]) -> String {
        match verdict(ops) {
            Verdict::NotLinearizable { detail, .. } => detail,
            other => panic!("expected a violation, got {other:?}"),
        }
    }

    #[test]
    fn empty_and_sequential() {
        assert_lin(&[]);
        assert_lin(&[get(1, None, 0, 1)]);
        assert_lin(&[
            put(1, "a", 0, 1),
            get(1, Some("a"), 2, 3),
            del(1, 4, 5),
            get(1, None, 6, 7),
        ]);
        assert_not_lin(&[get(1, Some("a"), 0, 1)]);
        assert_not_lin(&[put(1, "a", 0, 1), del(1, 2, 3), get(1, Some("a"), 4, 5)]);
    }

    #[test]
    fn stale_read() {
        let h = [
            put(1, "a", 0, 10),
            put(1, "b", 20, 30),
            get(2, Some("a"), 40, 50),
        ];
        let detail = assert_not_lin(&h);
        assert!(detail.contains("get(\"k\") -> \"a\""), "{detail}");
        assert!(detail.contains("the value is \"b\""), "{detail}");
        // The same read concurrent with the second write is fine.
        assert_lin(&[
            put(1, "a", 0, 10),
            put(1, "b", 20, 30),
            get(2, Some("a"), 25, 50),
        ]);
    }

    #[test]
    fn lost_write() {
        // b acknowledged, then a later read sees the initial absence.
        assert_not_lin(&[put(1, "b", 0, 10), get(2, None, 20, 30)]);
        // A read that sees b then a read that sees nothing.
        assert_not_lin(&[
            put(1, "b", 0, 100),
            get(2, Some("b"), 10, 20),
            get(3, None, 30, 40),
        ]);
    }

    #[test]
    fn concurrent_writes_either_order() {
        // Two overlapping writes; readers afterwards see one or the other.
        for last in ["a", "b"] {
            assert_lin(&[
                put(1, "a", 0, 10),
                put(2, "b", 5, 15),
                get(3, Some(last), 20, 30),
            ]);
        }
        // But readers cannot disagree sequentially.
        assert_not_lin(&[
            put(1, "a", 0, 10),
            put(2, "b", 5, 15),
            get(3, Some("a"), 20, 30),
            get(3, Some("b"), 31, 40),
        ]);
        // Closed intervals: touching at one instant is concurrency.
        assert_lin(&[put(1, "a", 0, 10), get(2, None, 10, 20)]);
        assert_not_lin(&[put(1, "a", 0, 10), get(2, None, 11, 20)]);
    }

    #[test]
    fn cas_semantics() {
        // ok:true swaps from the expected value.
        assert_lin(&[
            put(1, "a", 0, 1),
            cas(1, Some("a"), "b", Some(true), 2, Some(3)),
            get(1, Some("b"), 4, 5),
        ]);
        // cas from absent.
        assert_lin(&[
            cas(1, None, "a", Some(true), 0, Some(1)),
            get(1, Some("a"), 2, 3),
        ]);
        // A successful cas whose expected value was never there.
        assert_not_lin(&[
            put(1, "a", 0, 1),
            cas(1, Some("x"), "b", Some(true), 2, Some(3)),
        ]);
        // Two cas from the same value cannot both succeed.
        assert_not_lin(&[
            put(1, "a", 0, 1),
            cas(2, Some("a"), "b", Some(true), 2, Some(10)),
            cas(3, Some("a"), "c", Some(true), 2, Some(10)),
        ]);
        // A failed cas is an observation: it cannot fail while the value is
        // certainly what it expected.
        assert_not_lin(&[
            put(1, "a", 0, 1),
            cas(1, Some("a"), "b", Some(false), 2, Some(3)),
        ]);
        assert_not_lin(&[cas(1, None, "b", Some(false), 0, Some(3))]);
        // ...but it can while a concurrent write changes it.
        assert_lin(&[
            put(1, "a", 0, 1),
            put(2, "z", 2, 10),
            cas(1, Some("a"), "b", Some(false), 2, Some(3)),
        ]);
        // Unknown cas: may happen if the comparison held...
        assert_lin(&[
            put(1, "a", 0, 1),
            cas(2, Some("a"), "b", None, 2, None),
            get(3, Some("b"), 100, 101),
        ]);
        // ...or never...
        assert_lin(&[
            put(1, "a", 0, 1),
            cas(2, Some("a"), "b", None, 2, None),
            get(3, Some("a"), 100, 101),
        ]);
        // ...but not when it did not hold.
        assert_not_lin(&[
            put(1, "a", 0, 1),
            cas(2, Some("x"), "b", None, 2, None),
            get(3, Some("b"), 100, 101),
        ]);
        // Failed puts and deletes never happened.
        assert_not_lin(&[
            put(1, "a", 0, 1),
            op(1, OpKind::Put, Some("b"), Some(false), 2, Some(3)),
            get(1, Some("b"), 4, 5),
        ]);
        assert_lin(&[
            put(1, "a", 0, 1),
            op(1, OpKind::Delete, None, Some(false), 2, Some(3)),
            get(1, Some("a"), 4, 5),
        ]);
    }

    #[test]
    fn timed_out_write_is_unknown_not_finished() {
        // A write that timed out at 30: recorded as unknown it may land after
        // the read at [40, 50] that still sees the old value.
        let mut h = vec![
            put(1, "a", 0, 10),
            put_unknown(2, "b", 20),
            get(3, Some("a"), 40, 50),
            get(3, Some("b"), 60, 70),
        ];
        assert_lin(&h);
        // Recorded as finished at the timeout moment, it must land by 30:
        // then the read at [40, 50] cannot see "a".
        h[1] = put(2, "b", 20, 30);
        assert_not_lin(&h);
    }

    #[test]
    fn unknown_write_shows_up_much_later() {
        let mut h = vec![put(1, "a", 0, 10), put_unknown(2, "late", 20)];
        let mut t = 30;
        for c in 0..200 {
            h.push(get(3 + c % 4, Some("a"), t, t + 5));
            h.push(put(7 + c % 3, "a", t + 6, t + 8));
            t += 10;
        }
        h.push(get(20, Some("late"), 1_000_000, 1_000_001));
        assert_lin(&h);
        // The same value can't show up if the write was known to fail.
        h[1] = op(2, OpKind::Put, Some("late"), Some(false), 20, Some(25));
        assert_not_lin(&h);
    }

    #[test]
    fn unknown_write_happens_once() {
        // It may show up, but it cannot be undone by an older write and then
        // show up again.
        assert_not_lin(&[
            put_unknown(1, "u", 0),
            get(2, Some("u"), 10, 20),
            put(2, "a", 30, 40),
            get(2, Some("u"), 50, 60),
        ]);
        // Unknown deletes can explain an absence.
        assert_lin(&[
            put(1, "a", 0, 1),
            op(2, OpKind::Delete, None, None, 2, None),
            get(3, None, 10, 11),
        ]);
    }

    #[test]
    fn a_client_is_ordered_even_at_one_instant() {
        // Another client's read at the instant a write returns may miss it...
        assert_lin(&[put(1, "a", 0, 5), get(2, None, 5, 7)]);
        // ...but the writer's own next op comes after its write.
        assert_not_lin(&[put(1, "a", 0, 5), get(1, None, 5, 7)]);
        assert_lin(&[put(1, "a", 0, 5), get(1, Some("a"), 5, 7)]);
    }

    #[test]
    fn keys_are_independent() {
        let mut h = vec![put(1, "a", 0, 10), get(2, Some("a"), 20, 30)];
        let mut other = put(3, "x", 0, 10);
        other.key = "j".into();
        h.push(other);
        let mut bad = get(4, Some("y"), 20, 30);
        bad.key = "j".into();
        h.push(bad);
        match verdict(&h) {
            Verdict::NotLinearizable { key, .. } => assert_eq!(key, "j"),
            v => panic!("{v:?}"),
        }
    }

    #[test]
    fn memory_limit_gives_undecided() {
        // Many concurrent writes then a read nobody wrote: exponential
        // without the memo; a tiny memo budget must give up, not lie.
        let mut h: Vec<Op> = (0..14).map(|c| put(c, &format!("v{c}"), 0, 100)).collect();
        h.push(get(99, Some("never"), 200, 300));
        let config = Config {
            max_memo_bytes: 1000,
            ..Config::default()
        };
        assert_eq!(
            check(&h, &config).verdict,
            Verdict::Undecided { key: "k".into() }
        );
        assert!(matches!(check_history(&h), Verdict::NotLinearizable { .. }));
    }
}
