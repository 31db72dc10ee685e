//! What a cost's fields promise (INTERFACES.md, "The lab's names and its
//! JSON"): `expected` is an exact figure, so the measurement equals it on a
//! fault-free run; `bound` is an inequality the measurement satisfies;
//! `approx` is only near, and no test holds a measurement to it.

use synod_lab::{algorithms, LabOptions};

#[test]
fn expected_figures_are_exact_and_bounds_hold() {
    let mut bad = vec![];
    for a in algorithms() {
        for seed in 1..=3 {
            let run = a.execute(&LabOptions::new(a.default_nodes, seed)).unwrap();
            for c in &run.report.costs {
                if let Some(e) = c.expected {
                    if (c.measured - e).abs() > 1e-9 * e.abs().max(1.0) {
                        bad.push(format!(
                            "{} seed {seed}: {}: measured {} but expected {e} ({})",
                            a.name, c.name, c.measured, c.formula
                        ));
                    }
                }
                if let Some(b) = c.bound {
                    if !b.holds(c.measured) {
                        bad.push(format!(
                            "{} seed {seed}: {}: measured {} outside {b:?} ({})",
                            a.name, c.name, c.measured, c.formula
                        ));
                    }
                }
            }
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn json_costs_carry_bound_and_approx() {
    let a = synod_lab::find("hlc").unwrap();
    let run = a.execute(&LabOptions::new(3, 1)).unwrap();
    let v: serde_json::Value = serde_json::from_str(&run.report.to_json()).unwrap();
    let c = &v["costs"][0];
    assert!(c["expected"].is_null(), "{c}");
    assert!(
        c["bound"]["max"].is_number() && c["bound"]["min"].is_number(),
        "{c}"
    );
    assert!(c["approx"].is_null(), "{c}");
}
