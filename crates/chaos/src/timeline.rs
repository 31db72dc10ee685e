//! The run as a picture: above, each operation's latency at the time it
//! was invoked, coloured by outcome (a log scale); below, throughput of
//! successful operations over time with failed and unknown ones beneath it;
//! each fault shaded across both with its name, and the time to recover
//! after its heal marked.

use std::fmt::Write;

use synod_check::{Op, OpKind};

use crate::FaultRecord;

const W: f64 = 960.0;
const H: f64 = 320.0;
/// Height of the latency panel above the throughput panel.
const LAT_H: f64 = 200.0;
/// Most operations drawn as dots (beyond it, every k-th).
const MAX_DOTS: usize = 20_000;
const LEFT: f64 = 60.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 30.0;
const BOTTOM: f64 = 50.0;
/// Width of one bucket, in seconds.
const BUCKET: f64 = 0.25;

/// Whether an operation succeeded (a cas whose comparison failed is an
/// answer too).
fn succeeded(op: &Op) -> bool {
    op.ok == Some(true) || (op.op == OpKind::Cas && op.ok == Some(false))
}

/// An SVG of the run. `start_ns` is the workload's start on the history's
/// clock (the faults' times count from it).
pub fn svg(ops: &[Op], faults: &[FaultRecord], start_ns: u64, title: &str) -> String {
    let secs = |t: u64| t.saturating_sub(start_ns) as f64 / 1e9;
    let end = ops
        .iter()
        .map(|o| secs(o.ret.unwrap_or(o.call)))
        .fold(1.0f64, f64::max);
    let n = (end / BUCKET).ceil() as usize + 1;
    let (mut good, mut bad) = (vec![0u32; n], vec![0u32; n]);
    for op in ops.iter().filter(|o| o.call >= start_ns) {
        if succeeded(op) {
            let b = (secs(op.ret.unwrap_or(op.call)) / BUCKET) as usize;
            good[b.min(n - 1)] += 1;
        } else {
            let b = (secs(op.call) / BUCKET) as usize;
            bad[b.min(n - 1)] += 1;
        }
    }
    let rate = |c: u32| f64::from(c) / BUCKET;
    let max_rate = good.iter().map(|&c| rate(c)).fold(1.0f64, f64::max);
    let plot_w = W - LEFT - RIGHT;
    let plot_h = H - TOP - BOTTOM;
    let x = |t: f64| LEFT + plot_w * t / end;
    let y = |r: f64| TOP + plot_h * (1.0 - r / max_rate);
    let mut s = String::new();
    let total_h = H + LAT_H;
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{total_h}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(s, r#"<rect width="{W}" height="{total_h}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{LEFT}" y="18" font-size="13">{}</text>"#,
        escape(title)
    );
    latency_panel(&mut s, ops, faults, start_ns, end);
    // The throughput panel, below.
    let _ = writeln!(
        s,
        r#"<g transform="translate(0,{:.1})">"#,
        LAT_H - TOP + 10.0
    );
    for f in faults {
        let (a, b) = (x(f.start_s), x(f.heal_s));
        let _ = writeln!(
            s,
            r##"<rect x="{a:.1}" y="{TOP}" width="{:.1}" height="{plot_h}" fill="#f4c7c3"><title>{}</title></rect>"##,
            (b - a).max(1.0),
            escape(&f.detail)
        );
        let _ = writeln!(
            s,
            r##"<text x="{:.1}" y="{:.1}" fill="#a33">{:?}</text>"##,
            a + 2.0,
            TOP + 12.0,
            f.fault
        );
        let rec_end = f.recovered_after_s.map_or(end, |r| f.heal_s + r);
        let _ = writeln!(
            s,
            r##"<rect x="{b:.1}" y="{TOP}" width="{:.1}" height="{plot_h}" fill="#fde9c8"><title>recovery {}</title></rect>"##,
            (x(rec_end) - b).max(1.0),
            f.recovered_after_s
                .map_or("not within the bound".to_string(), |r| format!("{r:.2} s"))
        );
    }
    let mut path = String::new();
    for (i, &c) in good.iter().enumerate() {
        let t = (i as f64 + 0.5) * BUCKET;
        let _ = write!(
            path,
            "{}{:.1},{:.1} ",
            if i == 0 { "M" } else { "L" },
            x(t.min(end)),
            y(rate(c))
        );
    }
    let _ = writeln!(
        s,
        r##"<path d="{path}" fill="none" stroke="#1a73e8" stroke-width="1.2"/>"##
    );
    for (i, &c) in bad.iter().enumerate().filter(|(_, &c)| c > 0) {
        let h = (f64::from(c) * 4.0).min(plot_h / 3.0);
        let _ = writeln!(
            s,
            r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{h:.1}" fill="#d93025"><title>{c} failed or unknown</title></rect>"##,
            x(i as f64 * BUCKET),
            TOP + plot_h - h,
            (plot_w * BUCKET / end).max(1.0)
        );
    }
    // Axes.
    let _ = writeln!(
        s,
        r##"<line x1="{LEFT}" y1="{0}" x2="{1}" y2="{0}" stroke="#444"/><line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{0}" stroke="#444"/>"##,
        TOP + plot_h,
        W - RIGHT
    );
    let step = if end > 120.0 {
        30.0
    } else if end > 30.0 {
        10.0
    } else {
        5.0
    };
    let mut t = 0.0;
    while t <= end {
        let _ = writeln!(
            s,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="middle">{t:.0}s</text>"##,
            x(t),
            TOP + plot_h + 15.0
        );
        t += step;
    }
    let _ = writeln!(
        s,
        r##"<text x="{LEFT}" y="{:.1}">ops/s (max {max_rate:.0}); red: failed or unknown; shaded: fault, then recovery</text>"##,
        H - 12.0
    );
    s.push_str("</g>\n</svg>\n");
    s
}

/// Each operation as a dot at (invocation, latency), latency on a log
/// scale from 0.1 ms to the longest; an unknown outcome sits at the top.
fn latency_panel(s: &mut String, ops: &[Op], faults: &[FaultRecord], start_ns: u64, end: f64) {
    let secs = |t: u64| t.saturating_sub(start_ns) as f64 / 1e9;
    let plot_w = W - LEFT - RIGHT;
    let (top, bottom) = (TOP, LAT_H - 10.0);
    let x = |t: f64| LEFT + plot_w * t / end;
    let ms = |o: &Op| o.ret.map(|r| r.saturating_sub(o.call) as f64 / 1e6);
    let max_ms = ops.iter().filter_map(ms).fold(1.0f64, f64::max);
    let (lo, hi) = (0.1f64.log10(), max_ms.log10().max(0.0) + 0.05);
    let y = |v: f64| bottom - (bottom - top) * ((v.max(0.1).log10() - lo) / (hi - lo));
    for f in faults {
        let _ = writeln!(
            s,
            r##"<rect x="{:.1}" y="{top}" width="{:.1}" height="{:.1}" fill="#f4c7c3"/>"##,
            x(f.start_s),
            (x(f.heal_s) - x(f.start_s)).max(1.0),
            bottom - top
        );
    }
    let mine: Vec<&Op> = ops.iter().filter(|o| o.call >= start_ns).collect();
    let every = mine.len().div_ceil(MAX_DOTS).max(1);
    for o in mine.iter().step_by(every) {
        let (cy, colour) = match (ms(o), succeeded(o)) {
            (Some(v), true) => (y(v), "#188038"),
            (Some(v), false) => (y(v), "#d93025"),
            (None, _) => (top + 2.0, "#777"),
        };
        let _ = writeln!(
            s,
            r##"<circle cx="{:.1}" cy="{cy:.1}" r="1.6" fill="{colour}"/>"##,
            x(secs(o.call))
        );
    }
    let _ = writeln!(
        s,
        r##"<line x1="{LEFT}" y1="{bottom}" x2="{0}" y2="{bottom}" stroke="#444"/><line x1="{LEFT}" y1="{top}" x2="{LEFT}" y2="{bottom}" stroke="#444"/>"##,
        W - RIGHT
    );
    let mut tick = 0.1f64;
    while tick <= max_ms * 1.01 {
        let label = if tick < 1.0 {
            format!("{tick:.1}ms")
        } else if tick < 1000.0 {
            format!("{tick:.0}ms")
        } else {
            format!("{:.0}s", tick / 1000.0)
        };
        let _ = writeln!(
            s,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="end">{label}</text>"##,
            LEFT - 4.0,
            y(tick) + 4.0
        );
        tick *= 10.0;
    }
    let _ = writeln!(
        s,
        r##"<text x="{:.1}" y="{:.1}">latency per operation: green ok, red failed, grey unknown (at the top)</text>"##,
        LEFT + 6.0,
        top + 12.0
    );
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Fault;

    fn op(call: u64, ret: Option<u64>, ok: Option<bool>) -> Op {
        Op {
            client: 0,
            op: OpKind::Put,
            key: "k".into(),
            value: Some("v".into()),
            expected: None,
            ok,
            call,
            ret,
        }
    }

    #[test]
    fn faults_failures_and_throughput_are_drawn() {
        let s = 1_000_000_000u64;
        let ops = vec![
            op(s / 10, Some(s / 5), Some(true)),
            op(2 * s, None, None),
            op(3 * s, Some(3 * s + 1), Some(true)),
        ];
        let faults = vec![FaultRecord {
            fault: Fault::Kill,
            detail: "m1 killed <& more>".into(),
            start_s: 1.0,
            heal_s: 2.5,
            recovered_after_s: Some(0.5),
        }];
        let svg = svg(&ops, &faults, 0, "run");
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert!(svg.contains(">Kill</text>"), "the fault is named");
        assert!(
            svg.contains("m1 killed &lt;&amp; more&gt;"),
            "text is escaped"
        );
        assert!(svg.contains("recovery 0.50 s"));
        assert!(svg.contains("1 failed or unknown"), "the unknown op shows");
        assert!(svg.contains(r##"stroke="#1a73e8""##), "throughput is drawn");
        assert_eq!(svg.matches("<circle").count(), 3, "each operation is a dot");
        assert_eq!(svg.matches(r##"fill="#777""##).count(), 1, "one unknown");
        assert_eq!(svg.matches(r##"fill="#188038""##).count(), 2, "two ok");
    }
}
