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
        max_lanes: 32,
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
        max_lanes: 32,
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

/// A 10 000-process run draws 32 lanes, says how many it left out, and
/// stays a small file; the Mermaid output has the same participants.
#[test]
fn big_runs_draw_only_the_first_lanes() {
    let run = find("flooding")
        .unwrap()
        .execute(&LabOptions::new(10_000, 1))
        .unwrap();
    let d = DiagramOptions::new(10_000, "flooding at scale");
    let svg = render_svg(&run.trace, &d);
    assert!(svg.contains(">P31<") && !svg.contains(">P32<"));
    assert!(
        svg.contains("…9968 more processes not drawn (P32..P9999)"),
        "{svg}"
    );
    assert!(svg.len() < 200_000, "{} bytes", svg.len());
    // Events come from the drawn lanes only: every dot sits on a lane.
    let lanes_bottom = 70.0 + 31.0 * 60.0;
    for c in svg.split("<circle").skip(1) {
        let cy: f64 = c
            .split("cy=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(cy <= lanes_bottom, "a dot below the last lane: {c}");
    }
    assert!(
        svg.matches("<circle").count() > 20,
        "the drawn lanes have events"
    );
    let mm = render_mermaid(&run.trace, &d);
    assert_eq!(mm.matches("participant ").count(), 32);
    assert!(mm.contains("more processes not drawn"));
    for line in mm.lines().filter(|l| l.contains("->>") || l.contains("-x")) {
        let ids: Vec<usize> = line
            .split(|c: char| !c.is_ascii_digit())
            .filter(|t| !t.is_empty())
            .take(2)
            .map(|t| t.parse().unwrap())
            .collect();
        assert!(ids.iter().all(|&p| p < 32), "{line}");
    }
}

/// Lanes are capped only when the run has more processes than the cap:
/// an uncapped drawing has no note, a capped small one leaves out the
/// arrows to hidden processes.
#[test]
fn lane_cap_on_a_small_run() {
    let run = small_run(3);
    let full = render_svg(&run.trace, &opts(400));
    assert!(!full.contains("not drawn"));
    let mut two = opts(400);
    two.max_lanes = 2;
    let capped = render_svg(&run.trace, &two);
    assert!(capped.contains("…1 more process not drawn (P2..P2)"));
    assert!(!capped.contains(">P2<"));
    assert!(capped.matches("marker-end").count() < full.matches("marker-end").count());
}

/// Every registered algorithm draws its run: a lane per process, events on
/// them, and the same run as a Mermaid sequence diagram and an HTML page.
#[test]
fn every_algorithm_draws_its_diagram() {
    for a in synod_lab::algorithms() {
        let run = a.execute(&LabOptions::new(a.default_nodes, 2)).unwrap();
        let d = DiagramOptions::new(a.default_nodes, a.name);
        let svg = render_svg(&run.trace, &d);
        let lanes = a.default_nodes.min(d.max_lanes);
        assert!(svg.contains(&format!(">P{}<", lanes - 1)), "{}", a.name);
        assert!(
            svg.matches("<circle").count() + svg.matches("rotate(45").count() >= 3,
            "{}: almost nothing drawn",
            a.name
        );
        let mm = render_mermaid(&run.trace, &d);
        assert_eq!(mm.matches("participant ").count(), lanes, "{}", a.name);
        let html = render_html(&run.trace, &run.report, &run.figures, a.description, &d);
        assert!(html.contains(&svg), "{}", a.name);
    }
}
