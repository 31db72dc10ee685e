//! Space-time diagrams of a trace: SVG, a self-contained HTML page, Mermaid.
//!
//! All renderers are pure functions of the trace, so a seed always yields the
//! same bytes. Large runs are cut, and the drawing says so: only the first
//! `max_lanes` processes get a lane (a 10 000-process run stays a small
//! file), and only the first `max_events` trace events on those lanes are
//! drawn.

mod html;
mod interactive;
mod mermaid;
mod svg;

pub use html::{render_html, render_tour, TourEntry};
pub use mermaid::render_mermaid;
pub use svg::render_svg;

use std::collections::BTreeMap;

use synod_simnet::{Trace, TraceEvent, TraceKind, ALL};

/// Default number of trace events drawn.
pub const DEFAULT_MAX_EVENTS: usize = 400;
/// Default number of process lanes drawn.
pub const DEFAULT_MAX_LANES: usize = 32;

/// What to draw.
#[derive(Clone, Debug)]
pub struct DiagramOptions {
    /// Number of processes in the run.
    pub nodes: usize,
    /// Draw at most this many trace events (the first ones on drawn lanes).
    pub max_events: usize,
    /// Draw lanes for at most this many processes (the first ones).
    pub max_lanes: usize,
    /// A title.
    pub title: String,
}

impl DiagramOptions {
    /// Options for a run of `nodes` processes with the default limits.
    pub fn new(nodes: usize, title: impl Into<String>) -> Self {
        DiagramOptions {
            nodes,
            max_events: DEFAULT_MAX_EVENTS,
            max_lanes: DEFAULT_MAX_LANES,
            title: title.into(),
        }
    }

    /// Number of lanes drawn (at least one, so an empty drawing has a lane).
    pub fn lanes(&self) -> usize {
        self.nodes.min(self.max_lanes.max(1))
    }

    /// The note for processes without a lane, if any.
    pub fn lanes_note(&self) -> Option<String> {
        let hidden = self.nodes - self.lanes();
        (hidden > 0).then(|| {
            format!(
                "…{hidden} more process{} not drawn (P{}..P{})",
                if hidden == 1 { "" } else { "es" },
                self.lanes(),
                self.nodes - 1
            )
        })
    }
}

/// The part of the trace to draw, with sends indexed for arrows.
pub(crate) struct View<'a> {
    /// Events on drawn lanes (and whole-network faults), in trace order.
    pub events: Vec<&'a TraceEvent>,
    /// Events of the whole run, recorded or not.
    pub total: usize,
    /// Whether events were left out (the cut, hidden lanes, or recording limits).
    cut: bool,
    /// Lanes drawn, when fewer than the processes.
    hidden_from: Option<usize>,
    /// `msg_id` → index of its send in `events`.
    pub sends: BTreeMap<u64, usize>,
}

impl<'a> View<'a> {
    pub fn new(trace: &'a Trace, opts: &DiagramOptions) -> Self {
        let lanes = opts.lanes();
        let on_lane = |e: &&TraceEvent| e.proc < lanes || e.proc == ALL;
        let events: Vec<&TraceEvent> = trace
            .events
            .iter()
            .filter(on_lane)
            .take(opts.max_events)
            .collect();
        let mut sends = BTreeMap::new();
        for (i, e) in events.iter().enumerate() {
            if let TraceKind::Send { msg_id, .. } = e.kind {
                sends.insert(msg_id, i);
            }
        }
        let total = trace.events.len() + trace.truncated as usize;
        View {
            cut: events.len() < total,
            hidden_from: (lanes < opts.nodes).then_some(lanes),
            events,
            total,
            sends,
        }
    }

    pub fn is_cut(&self) -> bool {
        self.cut
    }

    pub fn cut_note(&self) -> String {
        match self.hidden_from {
            None => format!(
                "showing the first {} of {} events",
                self.events.len(),
                self.total
            ),
            Some(lanes) => format!(
                "showing the first {} events of P0..P{} ({} events in all)",
                self.events.len(),
                lanes - 1,
                self.total
            ),
        }
    }
}

/// Escapes text for XML and HTML.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// Shortens a label for drawing.
pub(crate) fn short(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}
