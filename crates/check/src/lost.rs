//! "No acknowledged write is lost": after the cluster has healed and every key
//! has been read once more, each key's final value must be one that some
//! write could legally have left there.
//!
//! The check, per key, and why it is sound (it never reports a history that
//! has a linearization ending in the final read):
//!
//! * The candidates for "the last write" are the writes that may have taken
//!   effect: acknowledged ones (put, delete, cas with `ok:true`) and those with
//!   an unknown outcome (which may take effect at any time, so also after every
//!   acknowledged write). Failed writes and failed cas never took effect.
//! * An acknowledged write `W` is *superseded* if another acknowledged write
//!   `X` was called after `W` returned (`X.call > W.ret`): in every
//!   linearization `X` comes after `W`, and `X` did take effect, so `W` is not
//!   the last write. The acknowledged writes that are not superseded are the
//!   *maximal* ones; at least one of them is after every other acknowledged
//!   write in any linearization.
//! * So the final value must be the value of a maximal acknowledged write, or of
//!   a write with an unknown outcome, or "absent" if no write was acknowledged
//!   (the initial state). Anything else is reported, together with the maximal
//!   acknowledged writes: at least one of them was lost.
//!
//! This is weaker than linearizability of the whole history plus the final
//! reads (which [`crate::linear`] can check by appending them as gets), but it
//! is cheap, explains itself in one sentence, and stays meaningful for
//! histories too large or too uncertain for the full search.

use std::collections::BTreeMap;

use crate::history::{Op, OpKind};

/// A key whose final value no acknowledged write explains.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LostWrite {
    /// The key.
    pub key: String,
    /// The value read at the end (`None`: absent).
    pub final_value: Option<String>,
    /// The maximal acknowledged writes of the key: none of them shows, and at
    /// least one of them should.
    pub lost: Vec<Op>,
}

impl std::fmt::Display for LostWrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = match &self.final_value {
            Some(v) => format!("{v:?}"),
            None => "absent".to_string(),
        };
        write!(
            f,
            "key {:?} ends {shown}, which no acknowledged write that could be last \
             (nor any write with an unknown outcome) leaves; lost: ",
            self.key
        )?;
        if self.lost.is_empty() {
            write!(
                f,
                "(no write was acknowledged: the value appeared from nowhere)"
            )?;
        }
        for (i, op) in self.lost.iter().enumerate() {
            if i > 0 {
                write!(f, "; ")?;
            }
            write!(f, "{}", op.describe())?;
        }
        Ok(())
    }
}

/// What a write leaves in its key, if it may have taken effect: `Some(value)`
/// (the inner `None` is "absent").
fn written(op: &Op) -> Option<Option<&str>> {
    if op.ok == Some(false) {
        return None;
    }
    match op.op {
        OpKind::Put | OpKind::Cas => Some(op.value.as_deref()),
        OpKind::Delete => Some(None),
        OpKind::Get => None,
    }
}

/// Checks the final value of every key in `final_values` (`None`: absent)
/// against the history. Keys of the history missing from `final_values` are
/// not checked. Returns the keys whose final value no write explains, in key
/// order.
pub fn check_lost(ops: &[Op], final_values: &BTreeMap<String, Option<String>>) -> Vec<LostWrite> {
    let mut by_key: BTreeMap<&str, Vec<&Op>> = BTreeMap::new();
    for op in ops {
        if written(op).is_some() {
            by_key.entry(op.key.as_str()).or_default().push(op);
        }
    }
    let mut out = Vec::new();
    for (key, final_value) in final_values {
        let writes = by_key.get(key.as_str()).map_or(&[][..], |w| &w[..]);
        let final_ref = final_value.as_deref();
        let acked: Vec<&Op> = writes
            .iter()
            .copied()
            .filter(|o| o.ok == Some(true))
            .collect();
        // The latest call among acknowledged writes: W is superseded iff some
        // acknowledged write was called after W returned.
        let latest_call = acked.iter().map(|o| o.call).max();
        let maximal: Vec<&Op> = acked
            .iter()
            .copied()
            .filter(|w| latest_call.is_none_or(|c| c <= w.ret.expect("acknowledged")))
            .collect();
        let explained = (acked.is_empty() && final_ref.is_none())
            || maximal.iter().any(|w| written(w) == Some(final_ref))
            || writes
                .iter()
                .any(|w| w.ok.is_none() && written(w) == Some(final_ref));
        if !explained {
            out.push(LostWrite {
                key: key.clone(),
                final_value: final_value.clone(),
                lost: maximal.into_iter().cloned().collect(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::{linearizable, Shape};

    fn w(kind: OpKind, value: Option<&str>, ok: Option<bool>, call: u64, ret: Option<u64>) -> Op {
        Op {
            client: call,
            op: kind,
            key: "k".into(),
            value: value.map(str::to_string),
            expected: None,
            ok,
            call,
            ret,
        }
    }
    fn put(v: &str, call: u64, ret: u64) -> Op {
        w(OpKind::Put, Some(v), Some(true), call, Some(ret))
    }
    fn finals(v: Option<&str>) -> BTreeMap<String, Option<String>> {
        [("k".to_string(), v.map(str::to_string))].into()
    }

    #[test]
    fn last_write_must_show() {
        let h = [put("a", 0, 10), put("b", 20, 30)];
        assert!(check_lost(&h, &finals(Some("b"))).is_empty());
        let lost = check_lost(&h, &finals(Some("a")));
        assert_eq!(lost.len(), 1);
        assert_eq!(lost[0].lost, vec![h[1].clone()]);
        assert!(
            lost[0].to_string().contains("put(\"k\", \"b\")"),
            "{}",
            lost[0]
        );
        assert_eq!(check_lost(&h, &finals(None)).len(), 1);
    }

    #[test]
    fn concurrent_last_writes_either_may_win() {
        let h = [put("a", 0, 10), put("b", 5, 30), put("c", 8, 12)];
        for v in ["a", "b", "c"] {
            assert!(check_lost(&h, &finals(Some(v))).is_empty(), "{v}");
        }
        let lost = check_lost(&h, &finals(Some("zz")));
        assert_eq!(lost[0].lost.len(), 3);
    }

    #[test]
    fn unknown_and_failed_writes() {
        let unknown = w(OpKind::Put, Some("u"), None, 5, None);
        let failed = w(OpKind::Put, Some("f"), Some(false), 50, Some(60));
        let h = [put("a", 0, 10), unknown, put("b", 20, 30), failed];
        // An unknown write may land after everything.
        assert!(check_lost(&h, &finals(Some("u"))).is_empty());
        // A failed one never lands.
        assert_eq!(check_lost(&h, &finals(Some("f"))).len(), 1);
        assert!(check_lost(&h, &finals(Some("b"))).is_empty());
    }

    #[test]
    fn deletes_cas_and_the_initial_state() {
        assert!(check_lost(&[], &finals(None)).is_empty());
        let phantom = check_lost(&[], &finals(Some("x")));
        assert!(phantom[0].to_string().contains("from nowhere"));
        let del = w(OpKind::Delete, None, Some(true), 20, Some(30));
        let h = [put("a", 0, 10), del.clone()];
        assert!(check_lost(&h, &finals(None)).is_empty());
        assert_eq!(check_lost(&h, &finals(Some("a")))[0].lost, vec![del]);
        let mut cas = w(OpKind::Cas, Some("c"), Some(true), 40, Some(50));
        cas.expected = None;
        let h2 = [put("a", 0, 10), h[1].clone(), cas.clone()];
        assert!(check_lost(&h2, &finals(Some("c"))).is_empty());
        assert_eq!(check_lost(&h2, &finals(None))[0].lost, vec![cas.clone()]);
        // A failed cas wrote nothing.
        cas.ok = Some(false);
        let h3 = [put("a", 0, 10), cas];
        assert!(check_lost(&h3, &finals(Some("a"))).is_empty());
        assert_eq!(check_lost(&h3, &finals(Some("c"))).len(), 1);
    }

    #[test]
    fn generated_histories_lose_nothing_and_planted_losses_are_found() {
        for seed in 0..30 {
            let g = linearizable(&Shape {
                seed,
                keys: 5,
                unknown: 0.05,
                ..Shape::default()
            });
            assert_eq!(check_lost(&g.ops, &g.final_values), vec![], "seed {seed}");
            // Plant a loss: roll a key back to a value written by an
            // acknowledged put that a later acknowledged write superseded.
            let mut planted = 0;
            for (key, _) in g.final_values.iter() {
                let acked: Vec<&Op> = g
                    .ops
                    .iter()
                    .filter(|o| &o.key == key && o.ok == Some(true) && o.op == OpKind::Put)
                    .collect();
                let latest_call = g
                    .ops
                    .iter()
                    .filter(|o| &o.key == key && o.ok == Some(true) && o.op != OpKind::Get)
                    .map(|o| o.call)
                    .max();
                let Some(old) = acked.iter().find(|o| o.ret < latest_call) else {
                    continue;
                };
                let mut finals = g.final_values.clone();
                finals.insert(key.clone(), old.value.clone());
                let lost = check_lost(&g.ops, &finals);
                assert_eq!(lost.len(), 1, "seed {seed} key {key}");
                assert_eq!(&lost[0].key, key);
                assert!(!lost[0].lost.is_empty());
                planted += 1;
            }
            assert!(planted > 0, "seed {seed}: nothing to plant");
        }
    }
}
