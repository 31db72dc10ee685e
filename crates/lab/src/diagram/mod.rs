//! Space-time diagrams of a trace: SVG, a self-contained HTML page, Mermaid.
//!
//! All renderers are pure functions of the trace, so a seed always yields the
//! same bytes. Large runs are cut to the first `max_events` trace events and
//! the drawing says so.

mod html;
mod mermaid;
mod svg;

pub use html::render_html;
pub use mermaid::render_mermaid;
pub use svg::render_svg;

use std::collections::BTreeMap;

use synod_simnet::{Trace, TraceEvent, TraceKind};

/// Default number of trace events drawn.
pub const DEFAULT_MAX_EVENTS: usize = 400;

/// What to draw.
#[derive(Clone, Debug)]
pub struct DiagramOptions {
    /// Number of process lanes.
    pub nodes: usize,
    /// Draw at most this many trace events (the first ones).
    pub max_events: usize,
    /// A title.
    pub title: String,
}

/// The part of the trace to draw, with sends indexed for arrows.
pub(crate) struct View<'a> {
    pub events: &'a [TraceEvent],
    pub total: usize,
    /// `msg_id` → index of its send in `events`.
    pub sends: BTreeMap<u64, usize>,
}

impl<'a> View<'a> {
    pub fn new(trace: &'a Trace, max_events: usize) -> Self {
        let events = &trace.events[..trace.events.len().min(max_events)];
        let mut sends = BTreeMap::new();
        for (i, e) in events.iter().enumerate() {
            if let TraceKind::Send { msg_id, .. } = e.kind {
                sends.insert(msg_id, i);
            }
        }
        View {
            events,
            total: trace.events.len() + trace.truncated as usize,
            sends,
        }
    }

    pub fn is_cut(&self) -> bool {
        self.events.len() < self.total
    }

    pub fn cut_note(&self) -> String {
        format!(
            "showing the first {} of {} events",
            self.events.len(),
            self.total
        )
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
