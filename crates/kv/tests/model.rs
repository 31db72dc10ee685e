//! Model-based property test: random command sequences go to `KvStore` and to
//! a naive reference model that keeps every write in one `Vec` and recomputes
//! each key's state from scratch; results, events and ranges at random
//! revisions must agree after every step.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use synod_kv::*;

/// One write as the model remembers it: `None` value means a delete.
#[derive(Clone, Debug)]
struct Write {
    key: Vec<u8>,
    main: i64,
    value: Option<Vec<u8>>,
    lease: i64,
}

/// The writes of one run of a txn branch: `(key, range_end, is_put)`.
type WritePath = Vec<(Vec<u8>, Vec<u8>, bool)>;

#[derive(Default)]
struct Model {
    rev: i64,
    compact: i64,
    log: Vec<Write>,
    leases: BTreeSet<i64>,
}

fn in_range(key: &[u8], end: &[u8], k: &[u8]) -> bool {
    if end.is_empty() {
        k == key
    } else if end == [0] {
        k >= key
    } else {
        k >= key && k < end
    }
}

impl Model {
    fn new() -> Self {
        Model {
            rev: 1,
            ..Default::default()
        }
    }

    /// The key at `at`, replaying its whole history.
    fn state_at(&self, key: &[u8], at: i64) -> Option<KeyValue> {
        let mut cur: Option<KeyValue> = None;
        for w in self.log.iter().filter(|w| w.key == key && w.main <= at) {
            cur = w.value.as_ref().map(|v| {
                let (create, version) = match &cur {
                    Some(c) => (c.create_revision, c.version + 1),
                    None => (w.main, 1),
                };
                KeyValue {
                    key: key.to_vec(),
                    create_revision: create,
                    mod_revision: w.main,
                    version,
                    value: v.clone(),
                    lease: w.lease,
                }
            });
        }
        cur
    }

    fn live(&self, key: &[u8], end: &[u8], at: i64) -> Vec<KeyValue> {
        let keys: BTreeSet<&Vec<u8>> = self.log.iter().map(|w| &w.key).collect();
        keys.into_iter()
            .filter(|k| in_range(key, end, k))
            .filter_map(|k| self.state_at(k, at))
            .collect()
    }

    fn range(&self, r: &RangeRequest, current: i64) -> Result<RangeResponse, KvError> {
        let at = if r.revision <= 0 { current } else { r.revision };
        if at > current {
            return Err(KvError::FutureRevision);
        }
        if at < self.compact {
            return Err(KvError::Compacted);
        }
        let all = self.live(&r.key, &r.range_end, at);
        let count = all.len() as i64;
        if r.count_only {
            return Ok(RangeResponse {
                header_revision: current,
                kvs: vec![],
                more: false,
                count,
            });
        }
        let mut kvs: Vec<KeyValue> = all
            .into_iter()
            .filter(|kv| r.min_mod_revision == 0 || kv.mod_revision >= r.min_mod_revision)
            .filter(|kv| r.max_mod_revision == 0 || kv.mod_revision <= r.max_mod_revision)
            .filter(|kv| r.min_create_revision == 0 || kv.create_revision >= r.min_create_revision)
            .filter(|kv| r.max_create_revision == 0 || kv.create_revision <= r.max_create_revision)
            .collect();
        let field = |kv: &KeyValue| -> Vec<u8> {
            match r.sort_target {
                SortTarget::Key => kv.key.clone(),
                SortTarget::Value => kv.value.clone(),
                // big-endian with the sign flipped sorts like the number
                SortTarget::Version => ((kv.version as u64) ^ (1 << 63)).to_be_bytes().to_vec(),
                SortTarget::Create => ((kv.create_revision as u64) ^ (1 << 63))
                    .to_be_bytes()
                    .to_vec(),
                SortTarget::Mod => ((kv.mod_revision as u64) ^ (1 << 63))
                    .to_be_bytes()
                    .to_vec(),
            }
        };
        match r.sort_order {
            SortOrder::Descend => {
                kvs.sort_by(|a, b| field(b).cmp(&field(a)).then(a.key.cmp(&b.key)))
            }
            _ => kvs.sort_by(|a, b| field(a).cmp(&field(b)).then(a.key.cmp(&b.key))),
        }
        let mut more = false;
        if r.limit > 0 && kvs.len() as i64 > r.limit {
            kvs.truncate(r.limit as usize);
            more = true;
        }
        if r.keys_only {
            kvs.iter_mut().for_each(|kv| kv.value.clear());
        }
        Ok(RangeResponse {
            header_revision: current,
            kvs,
            more,
            count,
        })
    }

    fn holds(&self, c: &Compare) -> bool {
        let kvs = self.live(&c.key, &c.range_end, self.rev);
        let test = |kv: &KeyValue| {
            let ord = match &c.target {
                CompareTarget::Value(v) => kv.value.cmp(v),
                CompareTarget::Version(v) => kv.version.cmp(v),
                CompareTarget::CreateRevision(v) => kv.create_revision.cmp(v),
                CompareTarget::ModRevision(v) => kv.mod_revision.cmp(v),
                CompareTarget::Lease(v) => kv.lease.cmp(v),
            };
            match c.result {
                CompareResult::Equal => ord.is_eq(),
                CompareResult::Greater => ord.is_gt(),
                CompareResult::Less => ord.is_lt(),
                CompareResult::NotEqual => ord.is_ne(),
            }
        };
        if kvs.is_empty() {
            !matches!(c.target, CompareTarget::Value(_)) && test(&KeyValue::default())
        } else {
            kvs.iter().all(test)
        }
    }

    /// Appends a write at revision `rev + 1` (pending until the command ends).
    fn write(&mut self, key: &[u8], value: Option<Vec<u8>>, lease: i64) {
        self.log.push(Write {
            key: key.to_vec(),
            main: self.rev + 1,
            value,
            lease,
        });
    }

    fn put(&mut self, p: &PutRequest) -> Response {
        let prev = self.state_at(&p.key, self.rev + 1);
        let value = if p.ignore_value {
            prev.as_ref().unwrap().value.clone()
        } else {
            p.value.clone()
        };
        let lease = if p.ignore_lease {
            prev.as_ref().unwrap().lease
        } else {
            p.lease
        };
        self.write(&p.key, Some(value), lease);
        Response::Put {
            revision: 0,
            prev_kv: if p.prev_kv { prev } else { None },
        }
    }

    fn delete(&mut self, d: &DeleteRangeRequest) -> Response {
        let victims = self.live(&d.key, &d.range_end, self.rev + 1);
        for kv in &victims {
            self.write(&kv.key, None, 0);
        }
        Response::DeleteRange {
            revision: 0,
            deleted: victims.len() as i64,
            prev_kvs: if d.prev_kv { victims } else { vec![] },
        }
    }

    fn check_put(&self, p: &PutRequest) -> Result<(), KvError> {
        if p.ignore_value && !p.value.is_empty() {
            return Err(KvError::ValueProvided);
        }
        if p.ignore_lease && p.lease != 0 {
            return Err(KvError::LeaseProvided);
        }
        if p.lease != 0 && !self.leases.contains(&p.lease) {
            return Err(KvError::LeaseNotFound);
        }
        if (p.ignore_value || p.ignore_lease) && self.state_at(&p.key, self.rev).is_none() {
            return Err(KvError::KeyNotFound);
        }
        Ok(())
    }

    /// The first shape error of a txn tree, depth first (success before failure).
    fn shape_error(t: &TxnRequest) -> Option<KvError> {
        for op in t.success.iter().chain(&t.failure) {
            let e = match op {
                RequestOp::Put(p) if p.ignore_value && !p.value.is_empty() => {
                    Some(KvError::ValueProvided)
                }
                RequestOp::Put(p) if p.ignore_lease && p.lease != 0 => Some(KvError::LeaseProvided),
                RequestOp::Txn(n) => Model::shape_error(n),
                _ => None,
            };
            if e.is_some() {
                return e;
            }
        }
        None
    }

    /// Every sequence of writes one run of `ops` can make, trying both
    /// branches of every nested txn: `(key, range_end, is_put)`.
    fn paths(ops: &[RequestOp]) -> Vec<WritePath> {
        let mut paths = vec![vec![]];
        for op in ops {
            let alternatives: Vec<WritePath> = match op {
                RequestOp::Range(_) => vec![vec![]],
                RequestOp::Put(p) => vec![vec![(p.key.clone(), vec![], true)]],
                RequestOp::DeleteRange(d) => {
                    vec![vec![(d.key.clone(), d.range_end.clone(), false)]]
                }
                RequestOp::Txn(n) => {
                    let mut alt = Model::paths(&n.success);
                    alt.extend(Model::paths(&n.failure));
                    alt
                }
            };
            paths = paths
                .iter()
                .flat_map(|p| {
                    alternatives
                        .iter()
                        .map(move |a| p.iter().chain(a).cloned().collect())
                })
                .collect();
        }
        paths
    }

    /// True if some run puts a key twice, or puts and deletes it.
    fn duplicates(t: &TxnRequest) -> bool {
        let bad = |path: &WritePath| {
            path.iter().enumerate().any(|(i, (k, _, put))| {
                *put && path.iter().enumerate().any(|(j, (k2, e2, put2))| {
                    i != j && if *put2 { k == k2 } else { in_range(k2, e2, k) }
                })
            })
        };
        Model::paths(&t.success).iter().any(bad) || Model::paths(&t.failure).iter().any(bad)
    }

    /// Branch verdicts of the txns met on the chosen path, against the state before the txn.
    fn choose(&self, t: &TxnRequest, path: &mut Vec<bool>) {
        let ok = t.compare.iter().all(|c| self.holds(c));
        path.push(ok);
        for op in if ok { &t.success } else { &t.failure } {
            if let RequestOp::Txn(n) = op {
                self.choose(n, path);
            }
        }
    }

    fn validate(&self, t: &TxnRequest, path: &[bool], pos: &mut usize) -> Result<(), KvError> {
        let ok = path[*pos];
        *pos += 1;
        for op in if ok { &t.success } else { &t.failure } {
            match op {
                RequestOp::Put(p) => self.check_put(p)?,
                RequestOp::Range(r) if r.revision > self.rev => {
                    return Err(KvError::FutureRevision)
                }
                RequestOp::Range(r) if r.revision > 0 && r.revision < self.compact => {
                    return Err(KvError::Compacted)
                }
                RequestOp::Txn(n) => self.validate(n, path, pos)?,
                _ => {}
            }
        }
        Ok(())
    }

    fn run(&mut self, t: &TxnRequest, path: &[bool], pos: &mut usize, before: usize) -> Response {
        let ok = path[*pos];
        *pos += 1;
        let mut responses = vec![];
        for op in if ok { &t.success } else { &t.failure } {
            responses.push(match op {
                RequestOp::Put(p) => self.put(p),
                RequestOp::DeleteRange(d) => self.delete(d),
                RequestOp::Range(q) => {
                    let cur = if self.log.len() > before {
                        self.rev + 1
                    } else {
                        self.rev
                    };
                    Response::Range(self.range(q, cur).unwrap())
                }
                RequestOp::Txn(n) => self.run(n, path, pos, before),
            });
        }
        Response::Txn {
            revision: 0,
            succeeded: ok,
            responses,
        }
    }

    fn txn(&mut self, t: &TxnRequest) -> Result<Response, KvError> {
        if let Some(e) = Model::shape_error(t) {
            return Err(e);
        }
        if Model::duplicates(t) {
            return Err(KvError::DuplicateKey);
        }
        let mut path = vec![];
        self.choose(t, &mut path);
        self.validate(t, &path, &mut 0)?;
        let before = self.log.len();
        Ok(self.run(t, &path, &mut 0, before))
    }

    fn apply(&mut self, cmd: &Command) -> Result<Response, KvError> {
        let before = self.log.len();
        let mut r = match cmd {
            Command::Put(p) => {
                self.check_put(p)?;
                self.put(p)
            }
            Command::DeleteRange(d) => self.delete(d),
            Command::Txn(t) => self.txn(t)?,
            Command::Compact { revision } => {
                if *revision <= self.compact {
                    return Err(KvError::Compacted);
                }
                if *revision > self.rev {
                    return Err(KvError::FutureRevision);
                }
                self.compact = *revision;
                Response::Compact { revision: 0 }
            }
            Command::LeaseGrant { id, ttl } => {
                if !self.leases.insert(*id) {
                    return Err(KvError::LeaseExists);
                }
                Response::LeaseGrant {
                    revision: 0,
                    id: *id,
                    ttl: *ttl,
                }
            }
            Command::LeaseRevoke { id } => {
                if !self.leases.remove(id) {
                    return Err(KvError::LeaseNotFound);
                }
                for kv in self
                    .live(b"\0", b"\0", self.rev)
                    .into_iter()
                    .filter(|kv| kv.lease == *id)
                {
                    self.write(&kv.key, None, 0);
                }
                Response::LeaseRevoke { revision: 0 }
            }
            Command::LeaseCheckpoint { .. }
            | Command::Auth(_)
            | Command::As { .. }
            | Command::At { .. }
            | Command::ReserveRevisions { .. }
            | Command::SplitRange { .. } => {
                unreachable!("not generated")
            }
        };
        if self.log.len() > before {
            self.rev += 1;
        }
        stamp(&mut r, self.rev);
        Ok(r)
    }

    /// Events of the writes at `log[from..]`, as the store reports them.
    fn events(&self, from: usize) -> Vec<Event> {
        self.log[from..].iter().map(|w| self.event(w)).collect()
    }

    fn event(&self, w: &Write) -> Event {
        let prev = self.state_at(&w.key, w.main - 1);
        match &w.value {
            Some(_) => Event {
                kind: EventKind::Put,
                kv: self.state_at(&w.key, w.main).unwrap(),
                prev_kv: prev,
            },
            None => Event {
                kind: EventKind::Delete,
                kv: KeyValue {
                    key: w.key.clone(),
                    mod_revision: w.main,
                    ..Default::default()
                },
                prev_kv: prev,
            },
        }
    }
}

fn stamp(r: &mut Response, rev: i64) {
    match r {
        Response::Range(rr) => rr.header_revision = rev,
        Response::Txn {
            revision,
            responses,
            ..
        } => {
            *revision = rev;
            responses.iter_mut().for_each(|x| stamp(x, rev));
        }
        Response::Put { revision, .. }
        | Response::DeleteRange { revision, .. }
        | Response::Compact { revision }
        | Response::LeaseGrant { revision, .. }
        | Response::LeaseRevoke { revision }
        | Response::LeaseCheckpoint { revision }
        | Response::Auth { revision, .. } => *revision = rev,
    }
}

// ---- generators ---------------------------------------------------------------

const KEYS: &[&[u8]] = &[b"a", b"a/1", b"a/2", b"b", b"c", b"c\xff", b"d"];
const VALUES: &[&[u8]] = &[b"x", b"y", b"zz", b""];

fn key() -> impl Strategy<Value = Vec<u8>> {
    proptest::sample::select(KEYS).prop_map(|k| k.to_vec())
}

fn range_end() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => Just(vec![]),
        1 => Just(vec![0]),
        2 => key(),
        1 => Just(b"a/".to_vec()).prop_map(|p| prefix_range_end(&p)),
    ]
}

fn put_req() -> impl Strategy<Value = PutRequest> {
    (
        key(),
        proptest::sample::select(VALUES),
        prop_oneof![4 => Just(0i64), 1 => 1i64..=3],
        any::<bool>(),
        0u8..10,
        0u8..10,
    )
        .prop_map(|(key, v, lease, prev_kv, iv, il)| PutRequest {
            key,
            value: if iv == 0 { vec![] } else { v.to_vec() },
            lease: if il == 0 { 0 } else { lease },
            prev_kv,
            ignore_value: iv == 0,
            ignore_lease: il == 0,
        })
}

fn del_req() -> impl Strategy<Value = DeleteRangeRequest> {
    (key(), range_end(), any::<bool>()).prop_map(|(key, range_end, prev_kv)| DeleteRangeRequest {
        key,
        range_end,
        prev_kv,
    })
}

fn compare() -> impl Strategy<Value = Compare> {
    let target = prop_oneof![
        (0i64..4).prop_map(CompareTarget::Version),
        (0i64..20).prop_map(CompareTarget::ModRevision),
        (0i64..20).prop_map(CompareTarget::CreateRevision),
        (0i64..3).prop_map(CompareTarget::Lease),
        proptest::sample::select(VALUES).prop_map(|v| CompareTarget::Value(v.to_vec())),
    ];
    let result = proptest::sample::select(
        &[
            CompareResult::Equal,
            CompareResult::Greater,
            CompareResult::Less,
            CompareResult::NotEqual,
        ][..],
    );
    (
        key(),
        prop_oneof![3 => Just(vec![]), 1 => range_end()],
        target,
        result,
    )
        .prop_map(|(key, range_end, target, result)| Compare {
            key,
            range_end,
            target,
            result,
        })
}

/// A branch: ops on distinct keys (puts without lease tricks, single-key deletes, reads).
fn branch() -> impl Strategy<Value = Vec<RequestOp>> {
    proptest::collection::vec(
        (
            0usize..KEYS.len(),
            0u8..3,
            proptest::sample::select(&VALUES[..2]),
        ),
        0..4,
    )
    .prop_map(|ops| {
        let mut seen = BTreeSet::new();
        ops.into_iter()
            .filter_map(|(k, kind, v)| {
                let key = KEYS[k].to_vec();
                match kind {
                    0 => Some(RequestOp::Range(RangeRequest {
                        key,
                        range_end: vec![0],
                        ..Default::default()
                    })),
                    1 => seen.insert(k).then(|| {
                        RequestOp::Put(PutRequest {
                            prev_kv: true,
                            ..PutRequest::new(key, v.to_vec())
                        })
                    }),
                    _ => seen.insert(k).then(|| {
                        RequestOp::DeleteRange(DeleteRangeRequest {
                            key,
                            range_end: vec![],
                            prev_kv: true,
                        })
                    }),
                }
            })
            .collect()
    })
}

fn range_req() -> impl Strategy<Value = RangeRequest> {
    let sort = (
        proptest::sample::select(&[SortOrder::None, SortOrder::Ascend, SortOrder::Descend][..]),
        proptest::sample::select(
            &[
                SortTarget::Key,
                SortTarget::Version,
                SortTarget::Create,
                SortTarget::Mod,
                SortTarget::Value,
            ][..],
        ),
    );
    let filters = prop_oneof![3 => Just((0i64, 0i64, 0i64, 0i64)), 1 => (0i64..15, 0i64..15, 0i64..15, 0i64..15)];
    (
        key(),
        range_end(),
        -1i64..4,
        prop_oneof![2 => Just(0i64), 1 => -1i64..30],
        sort,
        any::<bool>(),
        0u8..8,
        filters,
    )
        .prop_map(
            |(
                key,
                range_end,
                limit,
                revision,
                (sort_order, sort_target),
                keys_only,
                co,
                (a, b, c, d),
            )| RangeRequest {
                key,
                range_end,
                limit,
                revision,
                sort_order,
                sort_target,
                keys_only,
                count_only: co == 0,
                min_mod_revision: a,
                max_mod_revision: b,
                min_create_revision: c,
                max_create_revision: d,
            },
        )
}

/// Any txn: nested up to `depth`, keys may repeat, ops may be invalid.
fn wild_txn(depth: u32) -> BoxedStrategy<TxnRequest> {
    let leaf = prop_oneof![
        2 => range_req().prop_map(RequestOp::Range),
        3 => put_req().prop_map(RequestOp::Put),
        2 => del_req().prop_map(RequestOp::DeleteRange),
    ];
    let op = if depth == 0 {
        leaf.boxed()
    } else {
        prop_oneof![4 => leaf, 1 => wild_txn(depth - 1).prop_map(RequestOp::Txn)].boxed()
    };
    (
        proptest::collection::vec(compare(), 0..3),
        proptest::collection::vec(op.clone(), 0..4),
        proptest::collection::vec(op, 0..3),
    )
        .prop_map(|(compare, success, failure)| TxnRequest {
            compare,
            success,
            failure,
        })
        .boxed()
}

#[derive(Clone, Debug)]
enum Step {
    Cmd(Command),
    Read(RangeRequest),
    /// Compact at `revision() - back` (0 = current).
    CompactBack(i64),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => put_req().prop_map(|p| Step::Cmd(Command::Put(p))),
        2 => del_req().prop_map(|d| Step::Cmd(Command::DeleteRange(d))),
        2 => (proptest::collection::vec(compare(), 0..3), branch(), branch())
            .prop_map(|(compare, success, failure)| Step::Cmd(Command::Txn(TxnRequest { compare, success, failure }))),
        2 => wild_txn(2).prop_map(|t| Step::Cmd(Command::Txn(t))),
        1 => (1i64..=3).prop_map(|id| Step::Cmd(Command::LeaseGrant { id, ttl: 10 })),
        1 => (1i64..=3).prop_map(|id| Step::Cmd(Command::LeaseRevoke { id })),
        1 => (-1i64..6).prop_map(Step::CompactBack),
        6 => range_req().prop_map(Step::Read),
    ]
}

fn check(steps: &[Step]) -> Result<(), TestCaseError> {
    let mut store = KvStore::new();
    let mut model = Model::new();
    let mut history: BTreeMap<i64, u64> = BTreeMap::new();
    for s in steps {
        match s {
            Step::Read(r) => {
                prop_assert_eq!(store.range(r), model.range(r, model.rev), "range {:?}", r);
            }
            Step::Cmd(_) | Step::CompactBack(_) => {
                let cmd = match s {
                    Step::Cmd(c) => c.clone(),
                    Step::CompactBack(b) => Command::Compact {
                        revision: store.revision() - b,
                    },
                    Step::Read(_) => unreachable!(),
                };
                let from = model.log.len();
                let expected = model.apply(&cmd);
                let (got, mut events) = store.apply(&cmd);
                prop_assert_eq!(&got, &expected, "command {:?}", cmd);
                // A delete reads old values only for its answer; the rest
                // of its events' prev_kv come from the history on demand.
                store.fill_prev(&mut events).unwrap();
                prop_assert_eq!(events, model.events(from), "events of {:?}", cmd);
                prop_assert_eq!(store.revision(), model.rev);
                store.check_invariants();
                history.insert(store.revision(), store.hash_kv(0).unwrap().0);
            }
        }
    }
    // Watch catch-up from every revision still available.
    for start in (store.compact_revision() + 1)..=(store.revision() + 1) {
        let want: Vec<Event> = model
            .log
            .iter()
            .filter(|w| w.main >= start)
            .map(|w| model.event(w))
            .collect();
        prop_assert_eq!(
            store.events_since(start, b"\0", b"\0", usize::MAX).unwrap(),
            want
        );
    }
    // ... and for each single key, which takes another path through the store.
    for key in KEYS {
        let start = store.compact_revision() + 1;
        let want: Vec<Event> = model
            .log
            .iter()
            .filter(|w| w.main >= start && w.key == *key)
            .map(|w| model.event(w))
            .collect();
        prop_assert_eq!(
            store.events_since(start, key, b"", usize::MAX).unwrap(),
            want
        );
    }
    // Snapshot round trip keeps the hash and every later behaviour.
    let mut restored = KvStore::restore(&store.snapshot()).unwrap();
    prop_assert_eq!(restored.hash(), store.hash());
    let probe = Command::Put(PutRequest::new("a", "probe"));
    prop_assert_eq!(restored.apply(&probe), store.apply(&probe));
    prop_assert_eq!(restored.snapshot(), store.snapshot());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn store_agrees_with_the_naive_model(steps in proptest::collection::vec(step(), 1..60)) {
        check(&steps)?;
    }

    #[test]
    fn same_commands_give_the_same_snapshot(steps in proptest::collection::vec(step(), 1..40)) {
        let run = || {
            let mut s = KvStore::new();
            for st in &steps {
                if let Step::Cmd(c) = st {
                    let _ = s.apply(c);
                }
            }
            s
        };
        let (a, b) = (run(), run());
        prop_assert_eq!(a.snapshot(), b.snapshot());
        prop_assert_eq!(a.hash(), b.hash());
    }
}

/// The generator must reach the cases worth checking, or the model test above
/// proves little: count them over a fixed-seed sample.
#[test]
fn the_generator_reaches_the_interesting_cases() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let mut seen: BTreeMap<&'static str, usize> = BTreeMap::new();
    for _ in 0..200 {
        let steps = proptest::collection::vec(step(), 1..60)
            .new_tree(&mut runner)
            .unwrap()
            .current();
        let mut s = KvStore::new();
        for st in &steps {
            let tag = match st {
                Step::Read(r) => match s.range(r) {
                    Ok(rr) if rr.more => "read with more",
                    Ok(rr) if rr.kvs.len() > 1 => "read of several kvs",
                    Ok(rr) if r.revision > 0 && r.revision < s.revision() && !rr.kvs.is_empty() => {
                        "read in the past"
                    }
                    Err(KvError::Compacted) => "read compacted",
                    _ => "other read",
                },
                Step::Cmd(c) => match (c, s.apply(c)) {
                    (Command::Put(p), (Ok(_), _)) if p.ignore_value => "ignore_value put",
                    (Command::Put(p), (Ok(_), _)) if p.lease != 0 => "put with lease",
                    (Command::DeleteRange(_), (Ok(_), ev)) if ev.len() > 1 => "multi-key delete",
                    (Command::Txn(t), (Ok(_), ev))
                        if !ev.is_empty()
                            && t.success
                                .iter()
                                .chain(&t.failure)
                                .any(|o| matches!(o, RequestOp::Txn(_))) =>
                    {
                        "nested txn with writes"
                    }
                    (
                        Command::Txn(_),
                        (
                            Ok(Response::Txn {
                                succeeded: true, ..
                            }),
                            ev,
                        ),
                    ) if !ev.is_empty() => "txn success with writes",
                    (
                        Command::Txn(_),
                        (
                            Ok(Response::Txn {
                                succeeded: false, ..
                            }),
                            ev,
                        ),
                    ) if !ev.is_empty() => "txn failure with writes",
                    (Command::LeaseRevoke { .. }, (Ok(_), ev)) if !ev.is_empty() => {
                        "revoke deleting keys"
                    }
                    (_, (Err(KvError::KeyNotFound), _)) => "key not found",
                    (_, (Err(KvError::DuplicateKey), _)) => "duplicate key",
                    _ => "other command",
                },
                Step::CompactBack(b) => match s
                    .apply(&Command::Compact {
                        revision: s.revision() - b,
                    })
                    .0
                {
                    Ok(_) => "compaction",
                    Err(_) => "refused compaction",
                },
            };
            *seen.entry(tag).or_default() += 1;
        }
    }
    for tag in [
        "read with more",
        "read of several kvs",
        "read in the past",
        "read compacted",
        "ignore_value put",
        "put with lease",
        "multi-key delete",
        "txn success with writes",
        "txn failure with writes",
        "revoke deleting keys",
        "key not found",
        "duplicate key",
        "nested txn with writes",
        "compaction",
        "refused compaction",
    ] {
        assert!(
            seen.get(tag).copied().unwrap_or(0) >= 5,
            "generator rarely reaches {tag:?}: {seen:?}"
        );
    }
}
