//! A self-contained HTML page: the interactive space-time view
//! (`interactive.rs`), the static SVG, the run's extra figures beside it, a
//! legend, and the checks and costs; and the tour's index page.

use std::fmt::Write;

use synod_simnet::Trace;

use super::interactive::{render_interactive, STYLE};
use super::{esc, render_svg, DiagramOptions};
use crate::report::{Figure, LabReport};

/// Renders a page with the diagram of `trace`, the `figures` beside it, a
/// legend and `report`'s tables.
pub fn render_html(
    trace: &Trace,
    report: &LabReport,
    figures: &[Figure],
    description: &str,
    opts: &DiagramOptions,
) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>\n<style>\
body{{font-family:sans-serif;margin:1.5em;color:#222}} table{{border-collapse:collapse;margin:1em 0}} \
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}} .ok{{color:#080}} .bad{{color:#c00;font-weight:bold}} \
.legend span{{margin-right:1.5em}} pre{{white-space:pre-wrap;background:#f6f6f6;padding:.8em}} .svg{{overflow-x:auto}} \
.figures{{display:flex;flex-wrap:wrap;gap:1.5em;align-items:flex-start}} figure{{margin:0}} figcaption{{color:#555;font-size:90%}} {}\
</style></head><body>\n",
        esc(&opts.title),
        STYLE
    );
    let _ = writeln!(
        s,
        "<h1>{}</h1>\n<p>{} nodes · seed {} · {}</p>",
        esc(&report.algorithm),
        report.nodes,
        report.seed,
        if report.passed() {
            "<span class=\"ok\">all checks held</span>"
        } else {
            "<span class=\"bad\">a check failed</span>"
        }
    );
    s.push_str(&render_interactive(trace, opts));
    s.push_str("<div class=\"figures\">\n");
    let _ = writeln!(
        s,
        "<details><summary>the same diagram as a static SVG</summary><figure class=\"svg\">{}<figcaption>space-time diagram</figcaption></figure></details>",
        render_svg(trace, opts)
    );
    for f in figures {
        let _ = writeln!(
            s,
            "<figure class=\"svg\" id=\"figure-{}\">{}<figcaption>{}</figcaption></figure>",
            esc(&f.name),
            f.svg,
            esc(&f.caption)
        );
    }
    s.push_str("</div>\n");
    s.push_str(
        "<p class=\"legend\"><span style=\"color:#2a5db0\">● send</span><span style=\"color:#2a5db0\">○ receive</span>\
<span style=\"color:#2a5db0\">→ message</span><span style=\"color:#c33\">- - × dropped message</span>\
<span style=\"color:#999\">● timer</span><span style=\"color:#8a2be2\">◆ marker</span><span style=\"color:#070\">small green: logical timestamp</span>\
<span style=\"color:#d00\">✕ crash</span><span style=\"color:#080\">● restart</span><span style=\"color:#d60\">┆ network fault</span></p>\n",
    );
    s.push_str("<h2>Checks</h2>\n");
    s.push_str(&checks_table(report));
    s.push_str("<h2>Costs</h2>\n");
    s.push_str(&costs_table(report));
    let _ = writeln!(
        s,
        "<h2>The algorithm</h2>\n<pre>{}</pre>\n</body></html>",
        esc(description)
    );
    s
}

/// The checks of `report` as an HTML table.
pub(crate) fn checks_table(report: &LabReport) -> String {
    let mut s = String::from("<table><tr><th>check</th><th>held</th><th>detail</th></tr>\n");
    for c in &report.checks {
        let _ = writeln!(
            s,
            "<tr><td>{}</td><td class=\"{}\">{}</td><td>{}</td></tr>",
            esc(&c.name),
            if c.held { "ok" } else { "bad" },
            if c.held { "yes" } else { "NO" },
            esc(&c.detail)
        );
    }
    s.push_str("</table>\n");
    s
}

/// The costs of `report` as an HTML table: measured, formula, and the
/// textbook's exact figure, bound or approximation.
pub(crate) fn costs_table(report: &LabReport) -> String {
    let mut s = String::from(
        "<table><tr><th>cost</th><th>measured</th><th>formula</th><th>expected</th><th>bound / about</th></tr>\n",
    );
    for c in &report.costs {
        let expected = c.expected.map_or("—".to_string(), |e| format!("{e}"));
        let mut other = match c.bound.map(|b| (b.min, b.max)) {
            Some((Some(lo), Some(hi))) => format!("{lo} ≤ · ≤ {hi}"),
            Some((Some(lo), None)) => format!("≥ {lo}"),
            Some((None, Some(hi))) => format!("≤ {hi}"),
            _ => String::new(),
        };
        if let Some(a) = c.approx {
            if !other.is_empty() {
                other.push_str(", ");
            }
            other.push_str(&format!("≈ {a:.2}"));
        }
        let _ = writeln!(
            s,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&c.name),
            c.measured,
            esc(&c.formula),
            expected,
            if other.is_empty() {
                "—".into()
            } else {
                esc(&other)
            }
        );
    }
    s.push_str("</table>\n");
    s
}

/// One algorithm's run, for the tour's index page.
#[derive(Clone, Debug)]
pub struct TourEntry {
    /// The algorithm's name.
    pub name: String,
    /// Its family.
    pub family: String,
    /// Its one-line summary.
    pub summary: String,
    /// The run's report.
    pub report: LabReport,
    /// The run's space-time diagram (SVG).
    pub svg: String,
    /// The file name of the algorithm's own page, beside the index.
    pub page: String,
}

/// The tour's index: every algorithm, grouped by family, with its diagram,
/// checks and costs, and a link to its own (interactive) page.
pub fn render_tour(entries: &[TourEntry], seed: u64) -> String {
    let mut s = String::new();
    let passed = entries.iter().filter(|e| e.report.passed()).count();
    let _ = write!(
        s,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>synod lab tour</title>\n<style>\
body{{font-family:sans-serif;margin:1.5em;color:#222}} table{{border-collapse:collapse;margin:.5em 0}} \
td,th{{border:1px solid #ccc;padding:3px 6px;text-align:left;vertical-align:top;font-size:90%}} .ok{{color:#080}} .bad{{color:#c00;font-weight:bold}} \
.svg{{overflow-x:auto}} section{{border-top:1px solid #ddd;margin-top:1.5em}} nav a{{margin-right:.8em}}\
</style></head><body>\n<h1>synod lab tour</h1>\n<p>{} algorithms, seed {seed}, default nodes, no faults: \
<span class=\"{}\">{passed} of {} passed every check</span>.</p>\n",
        entries.len(),
        if passed == entries.len() { "ok" } else { "bad" },
        entries.len()
    );
    let mut families: Vec<&str> = vec![];
    for e in entries {
        if !families.contains(&e.family.as_str()) {
            families.push(&e.family);
        }
    }
    s.push_str("<nav>");
    for f in &families {
        let _ = write!(s, "<a href=\"#{}\">{}</a>", anchor(f), esc(f));
    }
    s.push_str("</nav>\n");
    for f in &families {
        let _ = writeln!(s, "<h2 id=\"{}\">{}</h2>", anchor(f), esc(f));
        for e in entries.iter().filter(|e| e.family == *f) {
            let _ = writeln!(
                s,
                "<section id=\"{}\"><h3><a href=\"{}\">{}</a> <span class=\"{}\">{}</span></h3><p>{}</p>",
                esc(&e.name),
                esc(&e.page),
                esc(&e.name),
                if e.report.passed() { "ok" } else { "bad" },
                if e.report.passed() { "all checks held" } else { "a check failed" },
                esc(&e.summary)
            );
            let _ = writeln!(s, "<div class=\"svg\">{}</div>", e.svg);
            s.push_str(&checks_table(&e.report));
            s.push_str(&costs_table(&e.report));
            s.push_str("</section>\n");
        }
    }
    s.push_str("</body></html>\n");
    s
}

fn anchor(family: &str) -> String {
    family
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}
