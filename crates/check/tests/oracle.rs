//! The checker against a brute-force oracle on many tiny random histories,
//! linearizable or not, with repeated values and many unknown outcomes: every
//! shortcut the checker takes (pruning unknown operations, merging values,
//! subsumption in the memo) must give exactly the oracle's verdict.

use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;
use synod_check::{check_history, Op, OpKind, Verdict};

/// The register's value: `None` is absent.
type State = Option<String>;

/// Whether the remaining operations can be linearized from `state`, trying
/// every order that respects real time. Unknown outcomes are optional.
fn oracle(ops: &[Op], placed: &mut Vec<bool>, state: &State) -> bool {
    let known_left = ops
        .iter()
        .zip(placed.iter())
        .any(|(o, &p)| !p && o.ret.is_some());
    if !known_left {
        return true;
    }
    for i in 0..ops.len() {
        if placed[i] {
            continue;
        }
        let o = &ops[i];
        // `o` can go next unless an unplaced known op returned before it was called.
        let blocked = ops
            .iter()
            .enumerate()
            .any(|(j, x)| j != i && !placed[j] && x.ret.is_some_and(|r| r < o.call));
        // A client's op called at the instant its previous op returned still
        // comes after it.
        let after_own = ops[..i]
            .iter()
            .enumerate()
            .rev()
            .find(|(_, x)| x.client == o.client)
            .is_some_and(|(j, x)| !placed[j] && x.ret == Some(o.call));
        if blocked || after_own {
            continue;
        }
        let next: Option<State> = match (o.op, o.ok) {
            (OpKind::Put, _) => Some(o.value.clone()),
            (OpKind::Delete, _) => Some(None),
            (OpKind::Get, _) => (*state == o.value).then(|| state.clone()),
            (OpKind::Cas, Some(true)) => (*state == o.expected).then(|| o.value.clone()),
            (OpKind::Cas, Some(false)) => (*state != o.expected).then(|| state.clone()),
            (OpKind::Cas, None) => Some(if *state == o.expected {
                o.value.clone()
            } else {
                state.clone()
            }),
        };
        if let Some(next) = next {
            placed[i] = true;
            let ok = oracle(ops, placed, &next);
            placed[i] = false;
            if ok {
                return true;
            }
        }
    }
    false
}

fn random_history(rng: &mut Pcg64Mcg) -> Vec<Op> {
    let n = rng.random_range(1..=7);
    let values = ["a", "b", "c"];
    let pick = |rng: &mut Pcg64Mcg| -> Option<String> {
        if rng.random_bool(0.25) {
            None
        } else {
            Some(values[rng.random_range(0..values.len())].to_string())
        }
    };
    let mut ops: Vec<Op> = Vec::new();
    for c in 0..n {
        {
            // Sometimes the previous op's client goes on at the very instant
            // its op returned.
            let chained = ops
                .last()
                .filter(|p| p.ret.is_some() && rng.random_bool(0.3))
                .map(|p| (p.client, p.ret.unwrap()));
            let call = chained.map_or_else(|| rng.random_range(0..20u64), |(_, t)| t);
            let client = chained.map_or(c, |(client, _)| client);
            let ret = call + rng.random_range(0..8u64);
            let kind =
                [OpKind::Put, OpKind::Get, OpKind::Cas, OpKind::Delete][rng.random_range(0..4)];
            let unknown = kind != OpKind::Get && rng.random_bool(0.35);
            let ok = if unknown {
                None
            } else {
                Some(kind == OpKind::Get || rng.random_bool(0.8))
            };
            let value = match kind {
                OpKind::Put | OpKind::Cas => {
                    Some(values[rng.random_range(0..values.len())].to_string())
                }
                OpKind::Get => pick(rng),
                OpKind::Delete => None,
            };
            ops.push(Op {
                client,
                op: kind,
                key: "k".into(),
                value,
                expected: if kind == OpKind::Cas { pick(rng) } else { None },
                ok,
                call,
                ret: if unknown { None } else { Some(ret) },
            });
        }
    }
    ops
}

#[test]
fn agrees_with_brute_force() {
    let mut rng = Pcg64Mcg::seed_from_u64(7);
    let (mut yes, mut no) = (0, 0);
    for round in 0..10_000 {
        let h = random_history(&mut rng);
        // The oracle applies the format's rules: failed writes and reads
        // that did not succeed take no part.
        let kept: Vec<Op> = h
            .iter()
            .filter(|o| match o.op {
                OpKind::Put | OpKind::Delete => o.ok != Some(false),
                OpKind::Get => o.ok == Some(true),
                OpKind::Cas => true,
            })
            .cloned()
            .collect();
        let expected = oracle(&kept, &mut vec![false; kept.len()], &None);
        let got = check_history(&h);
        match (&got, expected) {
            (Verdict::Linearizable, true) => yes += 1,
            (Verdict::NotLinearizable { .. }, false) => no += 1,
            _ => panic!("round {round}: checker says {got:?}, oracle {expected}\n{h:#?}"),
        }
    }
    eprintln!("linearizable {yes}, not {no}");
    // Both kinds must be well represented for the test to mean anything.
    assert!(yes > 1000 && no > 1000, "linearizable {yes}, not {no}");
}
