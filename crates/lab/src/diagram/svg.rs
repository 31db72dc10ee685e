//! The SVG space-time diagram: one horizontal lane per process (the first
//! `max_lanes` of them), time to the right.

use std::fmt::Write;

use synod_simnet::{Trace, TraceKind, ALL, EXTERNAL};

use super::{esc, short, DiagramOptions, View};

const WIDTH: f64 = 1200.0;
const LEFT: f64 = 60.0;
const RIGHT: f64 = 30.0;
const TOP: f64 = 70.0;
const LANE: f64 = 60.0;

struct Layout {
    t0: u64,
    span: f64,
}

impl Layout {
    fn x(&self, t: u64) -> f64 {
        LEFT + (t - self.t0) as f64 / self.span * (WIDTH - LEFT - RIGHT)
    }
    fn y(p: usize) -> f64 {
        TOP + p as f64 * LANE
    }
}

/// Label boxes already drawn, so a new label goes only where it overlaps none.
#[derive(Default)]
struct Boxes(Vec<[f64; 4]>);

impl Boxes {
    /// Whether the box fits among those placed; if so it is placed.
    fn fits(&mut self, x0: f64, x1: f64, y0: f64, y1: f64) -> bool {
        let clear = self
            .0
            .iter()
            .all(|b| x1 <= b[0] || b[1] <= x0 || y1 <= b[2] || b[3] <= y0);
        if clear {
            self.0.push([x0, x1, y0, y1]);
        }
        clear
    }
}

/// Draws `trace` as an SVG space-time diagram.
pub fn render_svg(trace: &Trace, opts: &DiagramOptions) -> String {
    let view = View::new(trace, opts);
    let n = opts.lanes();
    let lanes_note = opts.lanes_note();
    let t0 = view.events.first().map_or(0, |e| e.time);
    let t1 = view.events.last().map_or(0, |e| e.time);
    let lay = Layout {
        t0,
        span: (t1 - t0).max(1) as f64,
    };
    let lanes_height = TOP + n as f64 * LANE;
    let height = lanes_height
        + if lanes_note.is_some() {
            LANE / 2.0
        } else {
            0.0
        };
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="monospace" font-size="10">"#
    );
    s.push_str(r##"<defs><marker id="arrow" markerWidth="8" markerHeight="6" refX="8" refY="3" orient="auto"><path d="M0,0 L8,3 L0,6 z" fill="#2a5db0"/></marker></defs>"##);
    s.push('\n');
    s.push_str(r#"<rect width="100%" height="100%" fill="white"/>"#);
    s.push('\n');
    let _ = writeln!(
        s,
        r#"<text x="10" y="18" font-size="14">{}</text>"#,
        esc(&opts.title)
    );
    let note = if view.is_cut() {
        view.cut_note()
    } else {
        format!("{} events", view.total)
    };
    let _ = writeln!(
        s,
        r##"<text x="10" y="34" fill="#666">{} · time {}µs → {}µs</text>"##,
        esc(&note),
        t0,
        t1
    );
    for p in 0..n {
        let y = Layout::y(p);
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" y1="{y}" x2="{:.1}" y2="{y}" stroke="#bbb"/><text x="10" y="{:.1}">P{p}</text>"##,
            WIDTH - RIGHT,
            y + 4.0
        );
    }
    if let Some(note) = &lanes_note {
        let _ = writeln!(
            s,
            r##"<text x="10" y="{:.1}" fill="#666">{}</text>"##,
            lanes_height - LANE / 2.0 + 16.0,
            esc(note)
        );
    }
    // Labels are drawn only where they fit, clear of those placed before.
    let mut placed = Boxes::default();
    let mut marks = Boxes::default();
    let mut stamps = Boxes::default();
    // Messages first, so dots are drawn on top.
    for &e in &view.events {
        let (msg_id, dropped) = match &e.kind {
            TraceKind::Deliver { msg_id, from, .. } if *from != EXTERNAL => (*msg_id, false),
            TraceKind::Drop { msg_id, .. } => (*msg_id, true),
            _ => continue,
        };
        let Some(&si) = view.sends.get(&msg_id) else {
            continue;
        };
        let send = view.events[si];
        let (x1, y1) = (lay.x(send.time), Layout::y(send.proc));
        let (x2, y2) = (lay.x(e.time), Layout::y(e.proc));
        let label = match &send.kind {
            TraceKind::Send { label, .. } => short(label, 18),
            _ => String::new(),
        };
        if dropped {
            let _ = writeln!(
                s,
                r##"<line x1="{x1:.1}" y1="{y1:.1}" x2="{x2:.1}" y2="{y2:.1}" stroke="#c33" stroke-dasharray="3,3"/><text x="{x2:.1}" y="{:.1}" fill="#c33" font-size="14" text-anchor="middle">×</text>"##,
                y2 + 5.0
            );
        } else {
            let _ = writeln!(
                s,
                r##"<line x1="{x1:.1}" y1="{y1:.1}" x2="{x2:.1}" y2="{y2:.1}" stroke="#2a5db0" marker-end="url(#arrow)"/>"##
            );
        }
        let (lx, ly) = ((x1 + x2) / 2.0 + 2.0, (y1 + y2) / 2.0 - 2.0);
        let w = label.chars().count() as f64 * 4.8;
        let long_enough = w + 8.0 < ((x2 - x1).powi(2) + (y2 - y1).powi(2)).sqrt();
        if long_enough && placed.fits(lx, lx + w, ly - 8.0, ly + 1.0) {
            let _ = writeln!(
                s,
                r##"<text x="{lx:.1}" y="{ly:.1}" fill="#557" font-size="8">{}</text>"##,
                esc(&label)
            );
        }
    }
    for &e in &view.events {
        let x = lay.x(e.time);
        if e.proc == ALL {
            if let TraceKind::Fault { desc } = &e.kind {
                let _ = writeln!(
                    s,
                    r##"<line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{height:.1}" stroke="#d60" stroke-dasharray="6,3"/><text x="{:.1}" y="{:.1}" fill="#d60">{}</text>"##,
                    TOP - 22.0,
                    x + 2.0,
                    TOP - 24.0,
                    esc(&short(desc, 40))
                );
            }
            continue;
        }
        let y = Layout::y(e.proc);
        match &e.kind {
            TraceKind::Send { .. } => {
                let _ = writeln!(
                    s,
                    r##"<circle cx="{x:.1}" cy="{y:.1}" r="3" fill="#2a5db0"/>"##
                );
            }
            TraceKind::Deliver { .. } => {
                let _ = writeln!(
                    s,
                    r##"<circle cx="{x:.1}" cy="{y:.1}" r="3" fill="#fff" stroke="#2a5db0"/>"##
                );
            }
            TraceKind::Timer { .. } => {
                let _ = writeln!(
                    s,
                    r##"<circle cx="{x:.1}" cy="{y:.1}" r="2" fill="#999"/>"##
                );
            }
            TraceKind::Mark { label } => {
                let _ = writeln!(
                    s,
                    r##"<rect x="{:.1}" y="{:.1}" width="7" height="7" fill="#8a2be2" transform="rotate(45 {x:.1} {y:.1})"/>"##,
                    x - 3.5,
                    y - 3.5,
                );
                let text = short(label, 20);
                let w = text.chars().count() as f64 * 5.4;
                if marks.fits(x - w / 2.0, x + w / 2.0, y + 7.0, y + 17.0) {
                    let _ = writeln!(
                        s,
                        r##"<text x="{x:.1}" y="{:.1}" fill="#8a2be2" font-size="9" text-anchor="middle">{}</text>"##,
                        y + 16.0,
                        esc(&text)
                    );
                }
            }
            TraceKind::Crash => {
                let _ = writeln!(
                    s,
                    r##"<text x="{x:.1}" y="{:.1}" fill="#d00" font-size="16" text-anchor="middle">✕</text><text x="{x:.1}" y="{:.1}" fill="#d00" text-anchor="middle">crash</text>"##,
                    y + 6.0,
                    y + 18.0
                );
            }
            TraceKind::Restart => {
                let _ = writeln!(
                    s,
                    r##"<text x="{x:.1}" y="{:.1}" fill="#080" text-anchor="middle">restart</text><circle cx="{x:.1}" cy="{y:.1}" r="4" fill="#080"/>"##,
                    y + 18.0
                );
            }
            TraceKind::Fault { desc } => {
                let _ = writeln!(
                    s,
                    r##"<text x="{x:.1}" y="{:.1}" fill="#d60" font-size="9">⚡{}</text>"##,
                    y + 18.0,
                    esc(&short(desc, 24))
                );
            }
            TraceKind::Drop { .. } => {}
        }
        if let Some(st) = &e.stamp {
            let text = short(st, 24);
            let w = text.chars().count() as f64 * 4.8;
            if stamps.fits(x - w / 2.0, x + w / 2.0, y - 15.0, y - 6.0) {
                let _ = writeln!(
                    s,
                    r##"<text x="{x:.1}" y="{:.1}" fill="#070" font-size="8" text-anchor="middle">{}</text>"##,
                    y - 7.0,
                    esc(&text)
                );
            }
        }
    }
    s.push_str("</svg>\n");
    s
}
