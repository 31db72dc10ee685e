//! Random linearizable histories must pass; the same histories with one read
//! changed to a value nobody wrote must fail.

use synod_check::generate::{linearizable, plant_impossible_read, Shape};
use synod_check::{check, Config, Verdict};

fn config() -> Config {
    Config {
        time_limit: Some(std::time::Duration::from_secs(120)),
        ..Config::default()
    }
}

fn shapes() -> impl Iterator<Item = Shape> {
    (0..40u64).map(|seed| Shape {
        ops: 300 + (seed as usize * 37) % 500,
        keys: 1 + (seed as usize % 5),
        clients: 2 + (seed as usize % 7),
        unknown: [0.0, 0.02, 0.05, 0.1][seed as usize % 4],
        cas: [0.0, 0.3, 0.8][seed as usize % 3],
        max_latency: 200 + (seed % 10) * 60,
        seed,
    })
}

#[test]
fn random_linearizable_histories_pass() {
    for shape in shapes() {
        let g = linearizable(&shape);
        synod_check::history::validate(&g.ops).unwrap();
        let report = check(&g.ops, &config());
        assert_eq!(report.verdict, Verdict::Linearizable, "{shape:?}");
    }
}

#[test]
fn an_impossible_read_always_fails() {
    for shape in shapes() {
        let mut g = linearizable(&shape);
        let Some(i) = plant_impossible_read(&mut g.ops, shape.seed) else {
            continue;
        };
        match check(&g.ops, &config()).verdict {
            Verdict::NotLinearizable { key, detail } => {
                assert_eq!(key, g.ops[i].key, "{shape:?}");
                assert!(detail.contains("never-written"), "{detail}");
            }
            other => panic!("{shape:?}: planted read at {i} not caught: {other:?}"),
        }
    }
}

/// Many unknown outcomes (a third of all writes), where the pruning of
/// unknown operations does most of the work: still always right.
#[test]
fn many_unknown_outcomes() {
    for seed in 100..160u64 {
        let shape = Shape {
            ops: 200 + (seed as usize * 13) % 200,
            keys: 1 + (seed as usize % 3),
            clients: 2 + (seed as usize % 4),
            unknown: 0.3,
            cas: [0.0, 0.3, 0.8][seed as usize % 3],
            max_latency: 300,
            seed,
        };
        let mut g = linearizable(&shape);
        assert_eq!(
            check(&g.ops, &config()).verdict,
            Verdict::Linearizable,
            "{shape:?}"
        );
        if plant_impossible_read(&mut g.ops, seed).is_some() {
            assert!(
                matches!(
                    check(&g.ops, &config()).verdict,
                    Verdict::NotLinearizable { .. }
                ),
                "{shape:?}"
            );
        }
    }
}

/// The size the brief asks for: 100 000 operations over 100 keys, 10 clients,
/// some unknown outcomes — decided (both ways) well within the time limit.
#[test]
fn large_history_is_decided() {
    let shape = Shape {
        ops: 100_000,
        keys: 100,
        clients: 10,
        unknown: 0.01,
        cas: 0.2,
        max_latency: 1_000_000,
        seed: 9,
    };
    let mut g = linearizable(&shape);
    let report = check(&g.ops, &config());
    assert_eq!(report.verdict, Verdict::Linearizable);
    assert_eq!((report.ops, report.keys), (100_000, 100));
    let i = plant_impossible_read(&mut g.ops, 9).expect("there are reads");
    match check(&g.ops, &config()).verdict {
        Verdict::NotLinearizable { key, .. } => assert_eq!(key, g.ops[i].key),
        other => panic!("{other:?}"),
    }
}
