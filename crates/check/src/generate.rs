//! Random histories that are linearizable by construction, for tests and
//! benchmarks of the checkers.
//!
//! Clients run operations one at a time over a few keys. Each operation gets
//! an interval and a linearization point drawn inside it; an operation with an
//! unknown outcome gets a point anywhere after its call (possibly much later),
//! or none. Results (what a get read, whether a cas swapped) are then computed
//! by applying the operations to a register per key in the order of their
//! points, so the recorded history is linearizable and the point order is a
//! witness.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;

use crate::history::{Op, OpKind};

/// The shape of a generated history.
#[derive(Clone, Debug)]
pub struct Shape {
    /// Number of operations.
    pub ops: usize,
    /// Number of keys ("k0", "k1", ...).
    pub keys: usize,
    /// Number of concurrent clients.
    pub clients: usize,
    /// Probability that an operation's outcome is unknown.
    pub unknown: f64,
    /// Probability that a cas is issued instead of a put.
    pub cas: f64,
    /// Longest operation latency, nanoseconds.
    pub max_latency: u64,
    /// The seed.
    pub seed: u64,
}

impl Default for Shape {
    fn default() -> Self {
        Shape {
            ops: 1000,
            keys: 10,
            clients: 10,
            unknown: 0.02,
            cas: 0.2,
            max_latency: 1000,
            seed: 0,
        }
    }
}

/// A generated history and the value of every key at the end (after every
/// operation that took effect), as a final read would see it.
#[derive(Clone, Debug)]
pub struct Generated {
    /// The history, in invocation order.
    pub ops: Vec<Op>,
    /// The final value of every key of the shape (`None`: absent).
    pub final_values: BTreeMap<String, Option<String>>,
}

/// Generates a linearizable history of the given shape.
pub fn linearizable(shape: &Shape) -> Generated {
    assert!(shape.keys > 0 && shape.clients > 0 && shape.max_latency > 0);
    let mut rng = Pcg64Mcg::seed_from_u64(shape.seed);
    // Each slot is one sequential process; it takes a fresh client id after
    // an unknown outcome. Slots are served in order of their next free time.
    let mut free: BinaryHeap<Reverse<(u64, usize)>> =
        (0..shape.clients).map(|s| Reverse((0, s))).collect();
    let mut client_of: Vec<u64> = (0..shape.clients as u64).collect();
    let mut next_client = shape.clients as u64;
    let mut written: Vec<Vec<String>> = vec![Vec::new(); shape.keys];
    let mut ops = Vec::with_capacity(shape.ops);
    // Linearization point of each op (`None`: never takes effect).
    let mut points: Vec<Option<u64>> = Vec::with_capacity(shape.ops);
    for n in 0..shape.ops {
        let Reverse((t, slot)) = free.pop().expect("slots never run out");
        let client = client_of[slot];
        let call = t + rng.random_range(1..=shape.max_latency / 4 + 1);
        let latency = rng.random_range(0..=shape.max_latency);
        let key_ix = rng.random_range(0..shape.keys);
        let roll: f64 = rng.random();
        let value = format!("v{n}");
        let (kind, value, expected) = if roll < 0.45 {
            (OpKind::Get, None, None)
        } else if roll < 0.9 {
            if rng.random_bool(shape.cas) {
                let seen = &written[key_ix];
                let expected = if seen.is_empty() || rng.random_bool(0.1) {
                    None
                } else {
                    let back = rng.random_range(1..=seen.len().min(3));
                    Some(seen[seen.len() - back].clone())
                };
                (OpKind::Cas, Some(value), expected)
            } else {
                (OpKind::Put, Some(value), None)
            }
        } else {
            (OpKind::Delete, None, None)
        };
        if let Some(v) = &value {
            written[key_ix].push(v.clone());
        }
        let unknown = kind != OpKind::Get && rng.random_bool(shape.unknown);
        let (ret, ok, point) = if unknown {
            let point = if rng.random_bool(0.5) {
                // Anywhere after the call, sometimes long after.
                Some(call + rng.random_range(0..=shape.max_latency * 50))
            } else {
                None
            };
            client_of[slot] = next_client;
            next_client += 1;
            (None, None, point)
        } else if kind != OpKind::Cas && rng.random_bool(0.01) {
            // Certainly failed (or, for a get, an error): no effect.
            (Some(call + latency), Some(false), None)
        } else {
            let point = call + rng.random_range(0..=latency);
            (Some(call + latency), Some(true), Some(point))
        };
        free.push(Reverse((call + latency, slot)));
        ops.push(Op {
            client,
            op: kind,
            key: format!("k{key_ix}"),
            value,
            expected,
            ok,
            call,
            ret,
        });
        points.push(point);
    }

    // Apply in point order to compute results.
    let mut order: Vec<usize> = (0..ops.len()).filter(|&i| points[i].is_some()).collect();
    order.sort_by_key(|&i| (points[i], i));
    let mut state: BTreeMap<String, Option<String>> =
        (0..shape.keys).map(|k| (format!("k{k}"), None)).collect();
    for i in order {
        let op = &mut ops[i];
        let cur = state.get_mut(&op.key).expect("every key has a state");
        match op.op {
            OpKind::Put => *cur = op.value.clone(),
            OpKind::Delete => *cur = None,
            OpKind::Get => op.value = cur.clone(),
            OpKind::Cas => {
                let holds = *cur == op.expected;
                if holds {
                    *cur = op.value.clone();
                }
                if op.ok.is_some() {
                    op.ok = Some(holds);
                }
            }
        }
    }
    Generated {
        ops,
        final_values: state,
    }
}

/// Makes one successful get (chosen by `seed`) read a value that no operation
/// ever wrote, which no linearization can explain. Returns its index, or
/// `None` if the history has no successful get.
pub fn plant_impossible_read(ops: &mut [Op], seed: u64) -> Option<usize> {
    let gets: Vec<usize> = (0..ops.len())
        .filter(|&i| ops[i].op == OpKind::Get && ops[i].ok == Some(true))
        .collect();
    if gets.is_empty() {
        return None;
    }
    let mut rng = Pcg64Mcg::seed_from_u64(seed);
    let i = gets[rng.random_range(0..gets.len())];
    ops[i].value = Some("never-written".to_string());
    Some(i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_histories_are_well_formed() {
        for seed in 0..20 {
            let g = linearizable(&Shape {
                seed,
                unknown: 0.1,
                ..Shape::default()
            });
            assert_eq!(g.ops.len(), 1000);
            crate::history::validate(&g.ops).expect("well-formed");
            assert!(g.ops.iter().any(|o| o.is_unknown()), "seed {seed}");
            assert!(g
                .ops
                .iter()
                .any(|o| o.op == OpKind::Cas && o.ok == Some(true)));
            assert!(g
                .ops
                .iter()
                .any(|o| o.op == OpKind::Cas && o.ok == Some(false)));
        }
    }

    #[test]
    fn same_seed_same_history() {
        let a = linearizable(&Shape::default());
        let b = linearizable(&Shape::default());
        assert_eq!(a.ops, b.ops);
        let c = linearizable(&Shape {
            seed: 1,
            ..Shape::default()
        });
        assert_ne!(a.ops, c.ops);
    }
}
