//! The cluster-wide revision's checker: every acknowledged put took a
//! revision no other acknowledged put took, and a put acknowledged before
//! another was invoked took the lower revision (revisions order writes
//! consistently with real time, across ranges as within one).

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

    #[test]
    fn two_puts_at_one_revision_are_caught() {
        let h = [put(0, 10, 7, "a"), put(3, 12, 7, "b")];
        let v = check(&h);
        assert!(v.iter().any(|v| v.contains("both acknowledged")), "{v:?}");
    }
}
