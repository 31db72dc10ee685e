//! The cluster-wide revision's checker: every acknowledged put took a
//! revision no other acknowledged put took, and a put acknowledged before
//! another was invoked took the lower revision (revisions order writes
//! consistently with real time, across ranges as within one). And reads of
//! every key at once (over every range) are cuts at their revision:
//! checked against the acknowledged puts ([`check_scans`]).

use std::collections::BTreeMap;

/// One acknowledged put: when it was invoked and acknowledged (virtual
/// nanoseconds), the revision it answered, and its key (for the report).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Put {
    /// Invocation time.
    pub call: u64,
    /// Acknowledgement time.
    pub ret: u64,
    /// The revision it was answered with.
    pub revision: i64,
    /// Its key.
    pub key: String,
}

/// A read of every key, answered at revision `at`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scan {
    /// Invocation time.
    pub call: u64,
    /// Answer time.
    pub ret: u64,
    /// The revision it was answered at.
    pub at: i64,
    /// (key, value, mod revision) of every key it returned.
    pub kvs: Vec<(String, String, i64)>,
}

/// What makes a scan other than the state of every key at its revision,
/// judged by the acknowledged puts (at most one report per scan):
/// - it is at a revision at or past every put acknowledged before it began,
///   and before every put invoked after it ended (linearizable);
/// - no key it returns was written past its revision;
/// - a key an acknowledged put at or below its revision wrote is returned
///   at that put's revision or a later one (or not at all: deleted since).
pub fn check_scans(puts: &[Put], scans: &[Scan]) -> Vec<String> {
    let mut out = Vec::new();
    for s in scans {
        if let Some(v) = check_scan(puts, s) {
            out.push(v);
        }
    }
    out
}

fn check_scan(puts: &[Put], s: &Scan) -> Option<String> {
    if let Some(p) = puts.iter().find(|p| p.ret < s.call && p.revision > s.at) {
        return Some(format!(
            "scan: read at revision {} began at {}ns, after the put of {} at revision {} was acknowledged",
            s.at, s.call, p.key, p.revision
        ));
    }
    if let Some(p) = puts.iter().find(|p| p.call > s.ret && p.revision <= s.at) {
        return Some(format!(
            "scan: read at revision {} ended at {}ns, before the put of {} at revision {} began",
            s.at, s.ret, p.key, p.revision
        ));
    }
    let got: BTreeMap<&str, (&str, i64)> = s
        .kvs
        .iter()
        .map(|(k, v, m)| (k.as_str(), (v.as_str(), *m)))
        .collect();
    if let Some((k, (_, m))) = got.iter().find(|(_, (_, m))| *m > s.at) {
        return Some(format!(
            "scan: read at revision {} returned {k} written at revision {m}",
            s.at
        ));
    }
    for p in puts.iter().filter(|p| p.revision <= s.at) {
        match got.get(p.key.as_str()) {
            Some((_, m)) if *m < p.revision => {
                return Some(format!(
                    "scan: read at revision {} returned {} as of revision {m}, missing the put at revision {}",
                    s.at, p.key, p.revision
                ));
            }
            _ => {}
        }
    }
    None
}

/// What breaks the revision order, at most one report per rule.
pub fn check(puts: &[Put]) -> Vec<String> {
    let mut out = Vec::new();
    let mut by_rev: Vec<&Put> = puts.iter().collect();
    by_rev.sort_by_key(|p| (p.revision, p.call));
    if let Some(w) = by_rev.windows(2).find(|w| w[0].revision == w[1].revision) {
        out.push(format!(
            "revisions: puts of {} and {} were both acknowledged at revision {}",
            w[0].key, w[1].key, w[0].revision
        ));
    }
    // Sweep the puts by invocation; `done` holds, of those acknowledged
    // before the current one was invoked, the one with the highest revision.
    let mut by_ret: Vec<&Put> = puts.iter().collect();
    by_ret.sort_by_key(|p| p.ret);
    let mut by_call: Vec<&Put> = puts.iter().collect();
    by_call.sort_by_key(|p| p.call);
    let mut done: Option<&Put> = None;
    let mut i = 0;
    for b in by_call {
        while i < by_ret.len() && by_ret[i].ret < b.call {
            if done.is_none_or(|d| by_ret[i].revision > d.revision) {
                done = Some(by_ret[i]);
            }
            i += 1;
        }
        if let Some(a) = done.filter(|a| a.revision >= b.revision) {
            out.push(format!(
                "revisions: the put of {} acknowledged at {}ns took revision {}, \
                 but the put of {} invoked later, at {}ns, took revision {}",
                a.key, a.ret, a.revision, b.key, b.call, b.revision
            ));
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(call: u64, ret: u64, revision: i64, key: &str) -> Put {
        Put {
            call,
            ret,
            revision,
            key: key.into(),
        }
    }

    #[test]
    fn concurrent_puts_may_take_revisions_in_either_order() {
        let h = [put(0, 10, 5, "a"), put(5, 20, 4, "b"), put(30, 40, 6, "c")];
        assert!(check(&h).is_empty(), "{:?}", check(&h));
    }

    #[test]
    fn a_later_put_with_a_lower_revision_is_caught() {
        let h = [put(0, 10, 7, "a"), put(11, 20, 6, "b")];
        let v = check(&h);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].contains("invoked later"), "{v:?}");
    }

    fn scan(call: u64, ret: u64, at: i64, kvs: &[(&str, i64)]) -> Scan {
        Scan {
            call,
            ret,
            at,
            kvs: kvs
                .iter()
                .map(|(k, m)| (k.to_string(), "v".to_string(), *m))
                .collect(),
        }
    }

    #[test]
    fn a_scan_is_a_cut_at_its_revision() {
        let puts = [put(0, 10, 5, "a"), put(20, 30, 8, "b"), put(40, 50, 9, "a")];
        // Concurrent with b's put, before a's second: either side of 8.
        assert!(check_scans(&puts, &[scan(12, 35, 6, &[("a", 5)])]).is_empty());
        assert!(check_scans(&puts, &[scan(12, 35, 8, &[("a", 5), ("b", 8)])]).is_empty());
        // b's put acknowledged before the scan began: the scan must be past it.
        let v = check_scans(&puts, &[scan(31, 35, 7, &[("a", 5)])]);
        assert!(v[0].contains("after the put of b"), "{v:?}");
        // a's second put began after the scan ended.
        let v = check_scans(&puts, &[scan(12, 35, 9, &[("a", 9), ("b", 8)])]);
        assert!(v[0].contains("before the put of a"), "{v:?}");
        // A key missing a put at or below the scan's revision.
        let v = check_scans(&puts, &[scan(12, 35, 8, &[("a", 5), ("b", 2)])]);
        assert!(v[0].contains("missing the put"), "{v:?}");
        // A key written past the scan's revision.
        let v = check_scans(&puts, &[scan(12, 35, 6, &[("a", 5), ("b", 8)])]);
        assert!(v[0].contains("written at revision 8"), "{v:?}");
    }

    #[test]
    fn two_puts_at_one_revision_are_caught() {
        let h = [put(0, 10, 7, "a"), put(3, 12, 7, "b")];
        let v = check(&h);
        assert!(v.iter().any(|v| v.contains("both acknowledged")), "{v:?}");
    }
}
