//! Diagrams: a pinned golden SVG, determinism of the bytes, and the formats' shapes.

use synod_lab::diagram::{render_html, render_mermaid, render_svg, DiagramOptions};
use synod_lab::{find, LabOptions, LabRun};

fn small_run(seed: u64) -> LabRun {
    find("lamport-clock")
        .unwrap()
        .execute(&LabOptions::new(3, seed))
        .unwrap()
}

fn opts(max_events: usize) -> DiagramOptions {
    DiagramOptions {
        nodes: 3,
        max_events,
        title: "lamport-clock golden".to_string(),
    }
}

/// Regenerate with `UPDATE_GOLDEN=1 cargo test -p synod-lab --test diagrams`.
#[test]
fn svg_matches_golden() {
    let svg = render_svg(&small_run(7).trace, &opts(400));
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/lamport_clock_seed7.svg");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &svg).unwrap();
    }
    let golden =
        std::fs::read_to_string(&path).expect("golden file; run with UPDATE_GOLDEN=1 to create it");
    assert!(
        golden == svg,
        "SVG differs from {}; rerun with UPDATE_GOLDEN=1 if the change is intended",
        path.display()
    );
}

#[test]
fn svg_is_deterministic_and_seed_dependent() {
    let a = render_svg(&small_run(3).trace, &opts(400));
    assert_eq!(a, render_svg(&small_run(3).trace, &opts(400)));
    assert_ne!(a, render_svg(&small_run(4).trace, &opts(400)));
    assert!(a.starts_with("<svg") && a.trim_end().ends_with("</svg>"));
    assert!(a.contains("marker-end") && a.contains(">P2<"));
}

#[test]
fn large_runs_are_cut_and_say_so() {
    let run = small_run(3);
    let svg = render_svg(&run.trace, &opts(10));
    assert!(
        svg.contains(&format!(
            "showing the first 10 of {} events",
            run.trace.events.len()
        )),
        "{svg}"
    );
    assert!(svg.matches("<circle").count() <= 10);
}

#[test]
fn drops_crashes_and_partitions_are_drawn() {
    let mut o = LabOptions::new(4, 2);
    o.faults = synod_simnet::Fault::parse_list("loss,crash,partition").unwrap();
    let run = find("lamport-clock").unwrap().execute(&o).unwrap();
    let d = DiagramOptions {
        nodes: 4,
        max_events: 5_000,
        title: "faults".into(),
    };
    let svg = render_svg(&run.trace, &d);
    assert!(svg.contains("×"), "a dropped message ends in ×");
    assert!(svg.contains("crash") && svg.contains("partition"));
    let mm = render_mermaid(&run.trace, &d);
    assert!(mm.starts_with("sequenceDiagram\n"));
    assert!(mm.contains("-x") && mm.contains("CRASH") && mm.contains("->>"));
    let html = render_html(&run.trace, &run.report, &run.figures, "desc <b>", &d);
    assert!(
        html.starts_with("<!DOCTYPE html>")
            && html.contains("<svg")
            && html.contains("desc &lt;b&gt;")
    );
    assert!(html.contains("<h2>Checks</h2>") && html.contains("legend"));
}
