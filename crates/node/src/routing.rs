//! Which group serves a request: the keyspace is split into contiguous key
//! ranges, one per group; a request is served by the group whose range holds
//! every key it touches. A request whose keys lie in several ranges is
//! refused with [`ClientError::CrossShard`], never routed by its first key
//! (a transaction split across groups would not be atomic).

use serde::{Deserialize, Serialize};
use synod_kv::{Command, RequestOp, TxnRequest};

use crate::{ClientError, ClientOp, ClientRequest, ShardId};

/// A contiguous range of keys: `[start, end)`, with an empty `end` meaning
/// no upper bound. The first range of a keyspace starts at the empty key.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct KeyRange {
    /// First key in the range.
    pub start: Vec<u8>,
    /// First key after the range (empty: none).
    pub end: Vec<u8>,
}

impl KeyRange {
    /// The whole keyspace.
    pub fn all() -> KeyRange {
        KeyRange::default()
    }

    /// `[start, end)`.
    pub fn new(start: impl Into<Vec<u8>>, end: impl Into<Vec<u8>>) -> KeyRange {
        KeyRange {
            start: start.into(),
            end: end.into(),
        }
    }

    /// Whether it is the whole keyspace.
    pub fn is_all(&self) -> bool {
        self.start.is_empty() && self.end.is_empty()
    }

    /// Whether `key` lies in the range.
    pub fn contains(&self, key: &[u8]) -> bool {
        key >= self.start.as_slice() && (self.end.is_empty() || key < self.end.as_slice())
    }

    /// Whether the etcd span `[key, range_end)` (etcd's rules: empty
    /// `range_end` is the key alone, `[0]` every key from `key` on) lies
    /// wholly in the range.
    pub fn holds_span(&self, key: &[u8], range_end: &[u8]) -> bool {
        if !self.contains(key) {
            return false;
        }
        match range_end {
            [] => true,
            [0] => self.end.is_empty(),
            end if end <= key => true, // an empty span touches nothing beyond key
            end => self.end.is_empty() || end <= self.end.as_slice(),
        }
    }
}

/// What a group knows of the range it serves, replicated with its state:
/// its keys and its generation, which a split raises on both halves. When
/// two groups on a node claim the same key (a boot between a split's new
/// range being made durable and its old range's store catching up), the
/// higher generation owns it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangeDesc {
    /// The keys.
    pub range: KeyRange,
    /// Raised by every split of the range.
    pub generation: u64,
}

/// Whether `range` holds every key `op` touches (a request that belongs to
/// the cluster as a whole touches none).
pub(crate) fn holds(range: &KeyRange, op: &ClientOp) -> bool {
    range.is_all()
        || spans(op).is_none_or(|spans| spans.iter().all(|(k, e)| range.holds_span(k, e)))
}

/// Whether `range` holds every key `cmd` touches (as [`holds`], for a
/// command being applied, without copying it).
pub(crate) fn holds_command(range: &KeyRange, cmd: &Command) -> bool {
    if range.is_all() {
        return true;
    }
    let mut out = Vec::new();
    if !command_spans(cmd, &mut out) {
        return true;
    }
    out.iter().all(|(k, e)| range.holds_span(k, e))
}

/// The piece of the etcd span `[key, range_end)` that lies in `range`, as
/// an etcd span, or `None` when they do not meet.
pub fn intersect(range: &KeyRange, key: &[u8], range_end: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    // The span as [lo, hi), `None` for no upper bound.
    let (lo, hi): (&[u8], Option<&[u8]>) = match range_end {
        [] => return range.contains(key).then(|| (key.to_vec(), Vec::new())),
        [0] => (key, None),
        end => (key, Some(end)),
    };
    let start = lo.max(range.start.as_slice());
    let end: Option<&[u8]> = match (hi, range.end.is_empty()) {
        (None, true) => None,
        (None, false) => Some(range.end.as_slice()),
        (Some(h), true) => Some(h),
        (Some(h), false) => Some(h.min(range.end.as_slice())),
    };
    match end {
        None => Some((start.to_vec(), vec![0])),
        Some(e) if start < e => Some((start.to_vec(), e.to_vec())),
        Some(_) => None,
    }
}

/// The routing table of groups that claim ranges: each key goes to the
/// group of the highest generation that claims it; sorted by start, not
/// overlapping. Groups with no range (not yet initialized) route nothing.
pub(crate) fn table(claims: &[(RangeDesc, ShardId)]) -> Vec<(KeyRange, ShardId)> {
    let mut by_gen: Vec<&(RangeDesc, ShardId)> = claims.iter().collect();
    by_gen.sort_by(|a, b| b.0.generation.cmp(&a.0.generation).then(a.1.cmp(&b.1)));
    let mut out: Vec<(KeyRange, ShardId)> = Vec::new();
    for (desc, shard) in by_gen {
        // The pieces of this claim no higher generation took.
        let mut pieces = vec![desc.range.clone()];
        for (taken, _) in &out {
            pieces = pieces.into_iter().flat_map(|p| minus(&p, taken)).collect();
        }
        out.extend(pieces.into_iter().map(|p| (p, *shard)));
    }
    out.sort();
    out
}

/// `a` without the keys of `b`: zero, one or two ranges.
fn minus(a: &KeyRange, b: &KeyRange) -> Vec<KeyRange> {
    let ends_before = |x: &KeyRange, key: &[u8]| !x.end.is_empty() && x.end.as_slice() <= key;
    if ends_before(a, &b.start) || ends_before(b, &a.start) {
        return vec![a.clone()]; // disjoint
    }
    let mut out = Vec::new();
    if a.start < b.start {
        out.push(KeyRange::new(a.start.clone(), b.start.clone()));
    }
    if !b.end.is_empty() && (a.end.is_empty() || b.end < a.end) {
        out.push(KeyRange::new(b.end.clone(), a.end.clone()));
    }
    out
}

/// The spans (etcd key, range_end) a request touches; `None` for a request
/// that belongs to the cluster as a whole (leases, membership, compaction),
/// which the home group serves.
fn spans(op: &ClientOp) -> Option<Vec<(&[u8], &[u8])>> {
    let mut out = Vec::new();
    match op {
        ClientOp::Write(cmd) => {
            if !command_spans(cmd, &mut out) {
                return None;
            }
        }
        ClientOp::Range { req, .. } | ClientOp::ReadAt { req, .. } => {
            out.push((req.key.as_slice(), req.range_end.as_slice()))
        }
        ClientOp::CompactRange { key, .. } => out.push((key.as_slice(), &[][..])),
        ClientOp::LeaseKeepAlive { .. } | ClientOp::Member(_) => return None,
    }
    Some(out)
}

/// Adds the spans a key command touches to `out`; false for a command
/// that belongs to the cluster as a whole.
fn command_spans<'a>(cmd: &'a Command, out: &mut Vec<(&'a [u8], &'a [u8])>) -> bool {
    match cmd.inner() {
        Command::Put(p) => out.push((p.key.as_slice(), &[][..])),
        Command::DeleteRange(d) => out.push((d.key.as_slice(), d.range_end.as_slice())),
        Command::Txn(t) => txn_spans(t, out),
        _ => return false,
    }
    true
}

fn txn_spans<'a>(t: &'a TxnRequest, out: &mut Vec<(&'a [u8], &'a [u8])>) {
    for c in &t.compare {
        out.push((c.key.as_slice(), c.range_end.as_slice()));
    }
    for op in t.success.iter().chain(&t.failure) {
        match op {
            RequestOp::Range(r) => out.push((r.key.as_slice(), r.range_end.as_slice())),
            RequestOp::Put(p) => out.push((p.key.as_slice(), &[][..])),
            RequestOp::DeleteRange(d) => out.push((d.key.as_slice(), d.range_end.as_slice())),
            RequestOp::Txn(inner) => txn_spans(inner, out),
        }
    }
}

/// The group that serves `req`, given the hosted groups' ranges (sorted by
/// start, non-overlapping) and the home group.
pub(crate) fn route(
    ranges: &[(KeyRange, ShardId)],
    home: ShardId,
    req: &ClientRequest,
) -> Result<ShardId, ClientError> {
    let Some(spans) = spans(&req.op) else {
        return Ok(home);
    };
    let mut chosen: Option<ShardId> = None;
    for (key, end) in spans {
        let Some((range, shard)) = ranges.iter().find(|(r, _)| r.contains(key)) else {
            return Err(ClientError::WrongShard { key: key.to_vec() });
        };
        if !range.holds_span(key, end) || chosen.is_some_and(|c| c != *shard) {
            return Err(ClientError::CrossShard);
        }
        chosen = Some(*shard);
    }
    // A transaction with no keys at all touches nothing: the home group.
    Ok(chosen.unwrap_or(home))
}

#[cfg(test)]
mod tests {
    use super::*;
    use synod_kv::{
        Compare, CompareResult, CompareTarget, DeleteRangeRequest, PutRequest, RangeRequest,
    };

    fn ranges() -> Vec<(KeyRange, ShardId)> {
        vec![
            (KeyRange::new("", "m"), 1),
            (KeyRange::new("m", "t"), 2),
            (KeyRange::new("t", ""), 3),
        ]
    }

    fn req(op: ClientOp) -> ClientRequest {
        ClientRequest {
            client: 1,
            seq: 1,
            op,
        }
    }

    fn put(k: &str) -> ClientOp {
        ClientOp::Write(Command::Put(PutRequest {
            key: k.into(),
            value: b"v".to_vec(),
            ..Default::default()
        }))
    }

    fn range(k: &str, end: &[u8]) -> ClientOp {
        ClientOp::Range {
            req: RangeRequest {
                key: k.into(),
                range_end: end.to_vec(),
                ..Default::default()
            },
            serializable: false,
            auth: None,
        }
    }

    #[test]
    fn keys_go_to_the_range_that_holds_them() {
        let r = ranges();
        assert_eq!(route(&r, 1, &req(put("a"))), Ok(1));
        assert_eq!(route(&r, 1, &req(put("m"))), Ok(2));
        assert_eq!(route(&r, 1, &req(put("s\u{ff}"))), Ok(2));
        assert_eq!(route(&r, 1, &req(put("zzz"))), Ok(3));
        assert_eq!(route(&r, 1, &req(range("n", b"p"))), Ok(2));
        assert_eq!(route(&r, 1, &req(range("n", b"t"))), Ok(2));
        assert_eq!(route(&r, 1, &req(range("u", &[0]))), Ok(3));
        let lease = ClientOp::LeaseKeepAlive { id: 5 };
        assert_eq!(route(&r, 1, &req(lease)), Ok(1));
    }

    #[test]
    fn a_span_is_cut_into_the_pieces_each_range_holds() {
        let r = ranges();
        let pieces = |key: &str, end: &[u8]| -> Vec<Option<(Vec<u8>, Vec<u8>)>> {
            r.iter()
                .map(|(range, _)| intersect(range, key.as_bytes(), end))
                .collect()
        };
        let s = |a: &str, b: &[u8]| Some((a.as_bytes().to_vec(), b.to_vec()));
        assert_eq!(pieces("a", b"n"), vec![s("a", b"m"), s("m", b"n"), None]);
        assert_eq!(
            pieces("c", &[0]),
            vec![s("c", b"m"), s("m", b"t"), s("t", &[0])]
        );
        assert_eq!(
            pieces("\0", &[0]),
            vec![s("\0", b"m"), s("m", b"t"), s("t", &[0])]
        );
        assert_eq!(pieces("p", b""), vec![None, s("p", b""), None]);
        assert_eq!(pieces("u", b"v"), vec![None, None, s("u", b"v")]);
        assert_eq!(pieces("m", b"t"), vec![None, s("m", b"t"), None]);
        assert_eq!(pieces("n", b"b"), vec![None, None, None]);
    }

    #[test]
    fn a_span_over_two_ranges_is_refused_not_routed_by_its_first_key() {
        let r = ranges();
        assert_eq!(
            route(&r, 1, &req(range("a", b"n"))),
            Err(ClientError::CrossShard)
        );
        assert_eq!(
            route(&r, 1, &req(range("n", &[0]))),
            Err(ClientError::CrossShard)
        );
        let del = ClientOp::Write(Command::DeleteRange(DeleteRangeRequest {
            key: b"s".to_vec(),
            range_end: b"u".to_vec(),
            prev_kv: false,
        }));
        assert_eq!(route(&r, 1, &req(del)), Err(ClientError::CrossShard));
        // A transaction that compares in one range and writes in another.
        let txn = ClientOp::Write(Command::Txn(TxnRequest {
            compare: vec![Compare {
                key: b"a".to_vec(),
                range_end: Vec::new(),
                target: CompareTarget::Version(0),
                result: CompareResult::Equal,
            }],
            success: vec![RequestOp::Put(PutRequest {
                key: b"z".to_vec(),
                value: b"v".to_vec(),
                ..Default::default()
            })],
            failure: Vec::new(),
        }));
        assert_eq!(route(&r, 1, &req(txn)), Err(ClientError::CrossShard));
    }

    #[test]
    fn the_higher_generation_owns_what_two_claims_share() {
        let d = |a: &str, b: &str, generation| RangeDesc {
            range: KeyRange::new(a, b),
            generation,
        };
        // A boot between a split's new group becoming durable and its
        // parent's store catching up: the parent still claims every key.
        let t = table(&[(d("", "", 0), 1), (d("m", "t", 1), 7)]);
        assert_eq!(
            t,
            vec![
                (KeyRange::new("", "m"), 1),
                (KeyRange::new("m", "t"), 7),
                (KeyRange::new("t", ""), 1),
            ]
        );
        let t = table(&[(d("", "m", 1), 1), (d("m", "", 1), 2)]);
        assert_eq!(
            t,
            vec![(KeyRange::new("", "m"), 1), (KeyRange::new("m", ""), 2)]
        );
        // A write is checked against its group's range without a copy.
        let put = |k: &str| {
            Command::Put(synod_kv::PutRequest {
                key: k.into(),
                value: b"v".to_vec(),
                ..Default::default()
            })
        };
        assert!(holds_command(&KeyRange::new("m", "t"), &put("n")));
        assert!(!holds_command(&KeyRange::new("m", "t"), &put("t")));
        assert!(holds_command(&KeyRange::all(), &put("t")));
        assert!(holds_command(
            &KeyRange::new("m", "t"),
            &Command::Compact { revision: 3 }
        ));
    }

    #[test]
    fn a_key_no_hosted_range_holds_is_refused_by_name() {
        let r = vec![(KeyRange::new("m", "t"), 2)];
        assert_eq!(
            route(&r, 2, &req(put("a"))),
            Err(ClientError::WrongShard { key: b"a".to_vec() })
        );
    }
}
