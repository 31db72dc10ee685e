//! The interactive space-time view of the HTML page, in the spirit of
//! ShiViz: zoom and pan in time (wheel, drag, buttons), a message's or an
//! event's details on hover, labels drawn only where they fit (so dense runs
//! stay readable), and a click on an event that highlights its causal past
//! and future and greys what is concurrent with it.
//!
//! The page stays self-contained: the run goes in as JSON (events, messages
//! and, for each drawn event, its true vector clock restricted to the drawn
//! lanes, from [`crate::causality::Causality`]) and a small script draws it.
//! Happens-before in the browser is the same test as in Rust:
//! `a → b` iff `a ≠ b` and `V(a)[lane(a)] ≤ V(b)[lane(a)]`.
//!
//! A test hook: opening the page as `page.html#select=K` selects drawn event
//! `K` once drawn, so a headless browser's `--dump-dom` shows each event's
//! class (`past`, `future`, `concurrent`, `selected`).

use std::collections::BTreeMap;

use serde_json::{json, Value};
use synod_simnet::{Trace, TraceKind, ALL, EXTERNAL};

use super::DiagramOptions;
use crate::causality::Causality;

/// The view's container, its data and its script, to place in a page's body.
pub fn render_interactive(trace: &Trace, opts: &DiagramOptions) -> String {
    let data = view_data(trace, opts).to_string().replace("</", "<\\/");
    format!(
        "<div class=\"lab-view\"><div class=\"lab-tools\"><button id=\"lab-zoom-in\">zoom in</button> \
<button id=\"lab-zoom-out\">zoom out</button> <button id=\"lab-reset\">reset</button> \
<span id=\"lab-range\"></span> <span class=\"lab-hint\">wheel: zoom · drag: pan · hover: details · \
click an event: its causal past (blue) and future (orange); grey: concurrent</span></div>\n\
<div id=\"lab-canvas\"></div><div id=\"lab-tip\" hidden></div></div>\n\
<script type=\"application/json\" id=\"lab-data\">{data}</script>\n<script>{SCRIPT}</script>\n"
    )
}

/// The CSS the view needs.
pub const STYLE: &str = ".lab-view{position:relative;border:1px solid #ddd;margin:.5em 0} \
.lab-tools{padding:4px;font-size:85%;background:#f6f6f6} .lab-hint{color:#666;margin-left:1em} \
#lab-canvas{overflow:hidden;cursor:grab} #lab-tip{position:absolute;background:#ffffe8;border:1px solid #aa9;\
padding:4px 6px;font:11px monospace;white-space:pre;pointer-events:none;z-index:2} \
.ev.past,.msg.past{fill:#1f6fd0;stroke:#1f6fd0} .ev.future,.msg.future{fill:#e07000;stroke:#e07000} \
.ev.selected{fill:#d00;stroke:#d00} .concurrent{opacity:.18} .msg{fill:none}";

/// The run as the script reads it.
fn view_data(trace: &Trace, opts: &DiagramOptions) -> Value {
    let lanes = opts.lanes();
    // Every process of the trace, even beyond `opts.nodes` (a caller may
    // leave a run's clients out of it).
    let procs = trace
        .events
        .iter()
        .filter(|e| e.proc != ALL)
        .map(|e| e.proc + 1)
        .max()
        .unwrap_or(0)
        .max(opts.nodes)
        .max(1);
    let causality = Causality::from_trace(trace, procs);
    let drawn: Vec<(usize, &synod_simnet::TraceEvent)> = trace
        .events
        .iter()
        .enumerate()
        .filter(|(_, e)| e.proc < lanes || e.proc == ALL)
        .take(opts.max_events)
        .collect();
    let mut sends: BTreeMap<u64, usize> = BTreeMap::new();
    let mut events = vec![];
    let mut msgs = vec![];
    for (k, (i, e)) in drawn.iter().enumerate() {
        let (kind, label) = match &e.kind {
            TraceKind::Send { msg_id, label, .. } => {
                sends.insert(*msg_id, k);
                ("send", label.clone())
            }
            TraceKind::Deliver {
                msg_id,
                from,
                label,
            } => {
                if *from != EXTERNAL {
                    if let Some(&s) = sends.get(msg_id) {
                        msgs.push(json!([s, k, false]));
                    }
                }
                ("recv", label.clone())
            }
            TraceKind::Drop { msg_id, reason } => {
                if let Some(&s) = sends.get(msg_id) {
                    msgs.push(json!([s, k, true]));
                }
                ("drop", reason.name().to_string())
            }
            TraceKind::Timer { tag } => ("timer", format!("timer {tag}")),
            TraceKind::Mark { label } => ("mark", label.clone()),
            TraceKind::Crash => ("crash", "crash".to_string()),
            TraceKind::Restart => ("restart", "restart".to_string()),
            TraceKind::Fault { desc } => ("fault", desc.clone()),
        };
        let vc: Value = match causality.vector(*i) {
            Some(v) => json!(v.iter().take(lanes).collect::<Vec<_>>()),
            None => Value::Null,
        };
        let bytes = match &e.kind {
            TraceKind::Send { bytes, .. } => json!(bytes),
            _ => Value::Null,
        };
        let proc = if e.proc == ALL { -1 } else { e.proc as i64 };
        events.push(json!({
            "p": proc,
            "t": e.time,
            "k": kind,
            "l": label,
            "s": e.stamp,
            "v": vc,
            "b": bytes,
        }));
    }
    json!({
        "lanes": lanes,
        "title": opts.title,
        "events": events,
        "msgs": msgs,
    })
}

/// The view's script: draws the run from `#lab-data` into `#lab-canvas`.
const SCRIPT: &str = r#"
(function () {
  'use strict';
  var D = JSON.parse(document.getElementById('lab-data').textContent);
  var NS = 'http://www.w3.org/2000/svg';
  var W = 1200, LEFT = 60, RIGHT = 30, TOP = 30, LANE = 60;
  var H = TOP + Math.max(1, D.lanes) * LANE;
  var E = D.events, M = D.msgs;
  var t0 = E.length ? E[0].t : 0, t1 = E.length ? E[E.length - 1].t : 1;
  var span = Math.max(1, t1 - t0);
  var view = { from: t0, scale: (W - LEFT - RIGHT) / span };
  var selected = null;
  function mk(tag, attrs, parent) {
    var n = document.createElementNS(NS, tag);
    for (var a in attrs) n.setAttribute(a, attrs[a]);
    if (parent) parent.appendChild(n);
    return n;
  }
  function x(t) { return LEFT + (t - view.from) * view.scale; }
  function y(p) { return TOP + p * LANE + LANE / 2; }
  var svg = mk('svg', { width: W, height: H, viewBox: '0 0 ' + W + ' ' + H,
    'font-family': 'monospace', 'font-size': 9, id: 'lab-svg' });
  document.getElementById('lab-canvas').appendChild(svg);
  mk('rect', { width: W, height: H, fill: 'white' }, svg);
  var clip = mk('clipPath', { id: 'lab-clip' }, mk('defs', {}, svg));
  mk('rect', { x: LEFT - 6, y: 0, width: W - LEFT - RIGHT + 12, height: H }, clip);
  for (var p = 0; p < D.lanes; p++) {
    mk('line', { x1: LEFT, x2: W - RIGHT, y1: y(p), y2: y(p), stroke: '#bbb' }, svg);
    mk('text', { x: 8, y: y(p) + 4, 'font-size': 11 }, svg).textContent = 'P' + p;
  }
  var body = mk('g', { 'clip-path': 'url(#lab-clip)' }, svg);
  var faults = mk('g', {}, body), lines = mk('g', {}, body), dots = mk('g', {}, body), texts = mk('g', {}, body);
  var tip = document.getElementById('lab-tip');
  function show(evt, text) {
    tip.textContent = text; tip.hidden = false;
    var r = document.querySelector('.lab-view').getBoundingClientRect();
    tip.style.left = (evt.clientX - r.left + 12) + 'px';
    tip.style.top = (evt.clientY - r.top + 12) + 'px';
  }
  function hide() { tip.hidden = true; }
  function us(t) { return t + ' µs'; }
  var msgEls = M.map(function (m, i) {
    var s = E[m[0]], r = E[m[1]];
    var line = mk('line', { class: 'msg', stroke: m[2] ? '#c33' : '#2a5db0',
      'stroke-dasharray': m[2] ? '3,3' : '' }, lines);
    var hit = mk('line', { stroke: 'transparent', 'stroke-width': 7 }, lines);
    var label = mk('text', { fill: '#557', 'font-size': 8 }, texts);
    label.textContent = s.l;
    var detail = s.l + '\nP' + s.p + ' → P' + r.p + (m[2] ? ' (dropped: ' + r.l + ')' : '') +
      '\nsent ' + us(s.t) + (m[2] ? '' : ', received ' + us(r.t) + ' (after ' + (r.t - s.t) + ' µs)') +
      (s.b !== null ? '\n' + s.b + ' bytes' : '');
    hit.addEventListener('mousemove', function (e) { show(e, detail); });
    hit.addEventListener('mouseleave', hide);
    return { m: m, line: line, hit: hit, label: label };
  });
  var COLORS = { send: '#2a5db0', recv: '#fff', timer: '#999', mark: '#8a2be2', crash: '#d00',
    restart: '#080', fault: '#d60', drop: 'none' };
  var evEls = E.map(function (e, i) {
    if (e.k === 'drop') return null;
    if (e.p < 0) {
      var l = mk('line', { stroke: '#d60', 'stroke-dasharray': '6,3', y1: 0, y2: H }, faults);
      l.addEventListener('mousemove', function (ev) { show(ev, e.l + '\nat ' + us(e.t)); });
      l.addEventListener('mouseleave', hide);
      return { e: e, dot: l, fault: true };
    }
    var dot = e.k === 'mark'
      ? mk('rect', { width: 7, height: 7, class: 'ev', fill: COLORS.mark, 'data-i': i }, dots)
      : mk('circle', { r: e.k === 'timer' ? 2.5 : 3.5, class: 'ev', fill: COLORS[e.k] || '#999',
          stroke: e.k === 'recv' ? '#2a5db0' : 'none', 'data-i': i }, dots);
    var text = null;
    if (e.k === 'mark' || e.k === 'crash' || e.k === 'restart' || e.s) {
      text = mk('text', { fill: e.k === 'mark' ? '#8a2be2' : (e.s ? '#070' : '#d00'),
        'text-anchor': 'middle' }, texts);
      text.textContent = e.k === 'mark' || e.k === 'crash' || e.k === 'restart' ? (e.l || e.s || '') : e.s;
    }
    var detail = e.k + (e.l ? ': ' + e.l : '') + '\nP' + e.p + ' at ' + us(e.t) +
      (e.s ? '\nstamp ' + e.s : '') + (e.v ? '\nvector ' + JSON.stringify(e.v) : '') +
      '\nclick: causal past and future';
    dot.addEventListener('mousemove', function (ev) { show(ev, detail); });
    dot.addEventListener('mouseleave', hide);
    dot.addEventListener('click', function (ev) { ev.stopPropagation(); select(i); });
    return { e: e, dot: dot, text: text };
  });
  // Greedy placement: a label is drawn only where it fits, clear of the
  // labels placed before it.
  function fits(boxes, b) {
    if (b.x0 < LEFT - 4 || b.x1 > W - RIGHT + 4) return false;
    for (var k = 0; k < boxes.length; k++) {
      var o = boxes[k];
      if (b.x0 < o.x1 && o.x0 < b.x1 && b.y0 < o.y1 && o.y0 < b.y1) return false;
    }
    boxes.push(b);
    return true;
  }
  var CHAR = 5.4;
  function draw() {
    var boxes = [];
    evEls.forEach(function (o) {
      if (!o) return;
      var e = o.e, X = x(e.t);
      if (o.fault) { o.dot.setAttribute('x1', X); o.dot.setAttribute('x2', X); return; }
      var Y = y(e.p);
      if (e.k === 'mark') {
        o.dot.setAttribute('x', X - 3.5); o.dot.setAttribute('y', Y - 3.5);
        o.dot.setAttribute('transform', 'rotate(45 ' + X + ' ' + Y + ')');
      } else { o.dot.setAttribute('cx', X); o.dot.setAttribute('cy', Y); }
      if (o.text) {
        var above = !!e.s && e.k !== 'mark';
        var ty = above ? Y - 8 : Y + 16, w = o.text.textContent.length * CHAR;
        o.text.setAttribute('x', X); o.text.setAttribute('y', ty);
        o.text.style.display = fits(boxes, { x0: X - w / 2, x1: X + w / 2, y0: ty - 9, y1: ty + 1 }) ? '' : 'none';
      }
    });
    msgEls.forEach(function (o) {
      var s = E[o.m[0]], r = E[o.m[1]];
      var x1 = x(s.t), y1 = y(s.p), x2 = x(r.t), y2 = y(r.p);
      [o.line, o.hit].forEach(function (l) {
        l.setAttribute('x1', x1); l.setAttribute('y1', y1);
        l.setAttribute('x2', x2); l.setAttribute('y2', y2);
      });
      var len = Math.sqrt((x2 - x1) * (x2 - x1) + (y2 - y1) * (y2 - y1));
      var w = o.label.textContent.length * CHAR;
      var mx = (x1 + x2) / 2 + 2, my = (y1 + y2) / 2 - 2;
      o.label.setAttribute('x', mx); o.label.setAttribute('y', my);
      var ok = w + 8 < len && fits(boxes, { x0: mx, x1: mx + w, y0: my - 8, y1: my + 1 });
      o.label.style.display = ok ? '' : 'none';
    });
    var to = view.from + (W - LEFT - RIGHT) / view.scale;
    document.getElementById('lab-range').textContent =
      Math.round(view.from) + ' µs → ' + Math.round(to) + ' µs (' + E.length + ' events)';
  }
  function hb(a, b) {
    var ea = E[a], eb = E[b];
    return a !== b && ea.v !== null && eb.v !== null && ea.p >= 0 && ea.v[ea.p] <= eb.v[ea.p];
  }
  function select(i) {
    selected = i;
    var rel = E.map(function (_, j) {
      if (i === null || E[j].v === null) return '';
      if (j === i) return 'selected';
      return hb(j, i) ? 'past' : hb(i, j) ? 'future' : 'concurrent';
    });
    evEls.forEach(function (o, j) {
      if (!o || o.fault) return;
      o.dot.setAttribute('class', 'ev' + (rel[j] ? ' ' + rel[j] : ''));
      if (o.text) o.text.setAttribute('class', rel[j] === 'concurrent' ? 'concurrent' : '');
    });
    msgEls.forEach(function (o) {
      var rs = rel[o.m[0]], rr = rel[o.m[1]];
      var c = i === null ? '' : (rr === 'past' || rr === 'selected') ? 'past'
        : (rs === 'future' || rs === 'selected') ? 'future' : 'concurrent';
      o.line.setAttribute('class', 'msg' + (c ? ' ' + c : ''));
      o.label.setAttribute('class', c === 'concurrent' ? 'concurrent' : '');
    });
    document.body.setAttribute('data-selected', i === null ? '' : String(i));
  }
  svg.addEventListener('click', function () { select(null); });
  function zoom(f, atX) {
    var t = view.from + (atX - LEFT) / view.scale;
    view.scale = Math.min(Math.max(view.scale * f, (W - LEFT - RIGHT) / span / 4), 1000);
    view.from = t - (atX - LEFT) / view.scale;
    draw();
  }
  svg.addEventListener('wheel', function (e) {
    e.preventDefault();
    var r = svg.getBoundingClientRect();
    zoom(e.deltaY < 0 ? 1.25 : 0.8, (e.clientX - r.left) * W / r.width);
  }, { passive: false });
  var drag = null;
  svg.addEventListener('mousedown', function (e) { drag = { x: e.clientX, from: view.from }; });
  window.addEventListener('mousemove', function (e) {
    if (!drag) return;
    var r = svg.getBoundingClientRect();
    view.from = drag.from - (e.clientX - drag.x) * W / r.width / view.scale;
    draw();
  });
  window.addEventListener('mouseup', function () { drag = null; });
  document.getElementById('lab-zoom-in').onclick = function () { zoom(1.5, W / 2); };
  document.getElementById('lab-zoom-out').onclick = function () { zoom(1 / 1.5, W / 2); };
  document.getElementById('lab-reset').onclick = function () {
    view.from = t0; view.scale = (W - LEFT - RIGHT) / span; draw();
  };
  window.synodLab = { select: select, hb: hb, zoom: zoom, events: E };
  draw();
  var m = /select=(\d+)/.exec(location.hash);
  if (m) select(Number(m[1]));
})();
"#;
