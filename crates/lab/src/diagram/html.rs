//! A self-contained HTML page: the SVG, the run's extra figures beside it, a
//! legend, and the checks and costs.

use std::fmt::Write;

use synod_simnet::Trace;

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
.figures{{display:flex;flex-wrap:wrap;gap:1.5em;align-items:flex-start}} figure{{margin:0}} figcaption{{color:#555;font-size:90%}}\
</style></head><body>\n",
        esc(&opts.title)
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
    s.push_str("<div class=\"figures\">\n");
    let _ = writeln!(
        s,
        "<figure class=\"svg\">{}<figcaption>space-time diagram</figcaption></figure>",
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
    s.push_str("<h2>Checks</h2>\n<table><tr><th>check</th><th>held</th><th>detail</th></tr>\n");
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
    s.push_str("</table>\n<h2>Costs</h2>\n<table><tr><th>cost</th><th>measured</th><th>formula</th><th>expected</th></tr>\n");
    for c in &report.costs {
        let expected = c.expected.map_or("—".to_string(), |e| format!("{e}"));
        let _ = writeln!(
            s,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&c.name),
            c.measured,
            esc(&c.formula),
            expected
        );
    }
    let _ = writeln!(
        s,
        "</table>\n<h2>The algorithm</h2>\n<pre>{}</pre>\n</body></html>",
        esc(description)
    );
    s
}
