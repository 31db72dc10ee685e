//! The Mermaid `sequenceDiagram` of a trace, message by message as delivered.

use std::fmt::Write;

use synod_simnet::{Trace, TraceKind, ALL, EXTERNAL};

use super::{short, DiagramOptions, View};

fn clean(s: &str) -> String {
    // Mermaid treats ';' and '#' specially and a newline ends a statement.
    s.replace([';', '#', '\n'], " ")
}

/// Renders `trace` as a Mermaid `sequenceDiagram`.
pub fn render_mermaid(trace: &Trace, opts: &DiagramOptions) -> String {
    let view = View::new(trace, opts);
    let lanes = opts.lanes();
    let mut s = String::from("sequenceDiagram\n");
    let _ = writeln!(s, "    %% {}", clean(&opts.title));
    if view.is_cut() {
        let _ = writeln!(s, "    %% {}", view.cut_note());
    }
    if let Some(note) = opts.lanes_note() {
        let _ = writeln!(s, "    %% {}", clean(&note));
    }
    for p in 0..lanes {
        let _ = writeln!(s, "    participant P{p}");
    }
    let last = lanes.saturating_sub(1);
    for &e in &view.events {
        let stamp = e
            .stamp
            .as_deref()
            .map(|st| format!(" [{}]", clean(st)))
            .unwrap_or_default();
        match &e.kind {
            TraceKind::Deliver { from, label, .. } if *from != EXTERNAL && *from < lanes => {
                let _ = writeln!(
                    s,
                    "    P{from}->>P{}: {}{stamp}",
                    e.proc,
                    clean(&short(label, 40))
                );
            }
            TraceKind::Drop { msg_id, reason } => {
                let Some(&si) = view.sends.get(msg_id) else {
                    continue;
                };
                let send = view.events[si];
                if let TraceKind::Send { label, to, .. } = &send.kind {
                    if *to >= lanes {
                        continue;
                    }
                    let _ = writeln!(
                        s,
                        "    P{}-xP{to}: {} (dropped: {})",
                        send.proc,
                        clean(&short(label, 40)),
                        reason.name()
                    );
                }
            }
            TraceKind::Mark { label } => {
                let _ = writeln!(s, "    Note over P{}: {}{stamp}", e.proc, clean(label));
            }
            TraceKind::Crash => {
                let _ = writeln!(s, "    Note over P{}: CRASH", e.proc);
            }
            TraceKind::Restart => {
                let _ = writeln!(s, "    Note over P{}: restart", e.proc);
            }
            TraceKind::Fault { desc } if e.proc == ALL => {
                let _ = writeln!(s, "    Note over P0,P{last}: {}", clean(desc));
            }
            TraceKind::Fault { desc } => {
                let _ = writeln!(s, "    Note over P{}: {}", e.proc, clean(desc));
            }
            _ => {}
        }
    }
    s
}
