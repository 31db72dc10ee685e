//! The true happens-before relation of a run, computed from its trace.
//!
//! Every event recorded on a process's lane (send, delivery, timer, mark) is
//! an event in Lamport's sense; a delivery follows its send. Each event gets
//! the vector of how many events of each process precede or equal it, so
//! `a → b` iff `a ≠ b` and `V(a)[proc(a)] <= V(b)[proc(a)]`. Checkers compare
//! an algorithm's own timestamps (attached with `Ctx::stamp`) against this.

use std::collections::BTreeMap;

use synod_simnet::{Trace, TraceKind, EXTERNAL};

/// Happens-before over the process events of a trace.
#[derive(Clone, Debug)]
pub struct Causality {
    /// For each trace event: its process and true vector clock, or `None`
    /// for events that are not process events (drops, faults, crashes).
    events: Vec<Option<(usize, Vec<u32>)>>,
    /// For each process, the trace indices of its events in order.
    lanes: Vec<Vec<usize>>,
}

impl Causality {
    /// Replays `trace` of `n` processes.
    pub fn from_trace(trace: &Trace, n: usize) -> Self {
        let mut clocks = vec![vec![0u32; n]; n];
        let mut sent: BTreeMap<u64, Vec<u32>> = BTreeMap::new();
        let mut events = Vec::with_capacity(trace.events.len());
        let mut lanes = vec![Vec::new(); n];
        for (i, e) in trace.events.iter().enumerate() {
            let p = e.proc;
            let is_event = match &e.kind {
                TraceKind::Send { .. } | TraceKind::Timer { .. } | TraceKind::Mark { .. } => true,
                TraceKind::Deliver { msg_id, from, .. } => {
                    if *from != EXTERNAL {
                        if let Some(v) = sent.get(msg_id) {
                            for (mine, theirs) in clocks[p].iter_mut().zip(v) {
                                *mine = (*mine).max(*theirs);
                            }
                        }
                    }
                    true
                }
                _ => false,
            };
            if !is_event {
                events.push(None);
                continue;
            }
            clocks[p][p] += 1;
            lanes[p].push(i);
            if let TraceKind::Send { msg_id, .. } = &e.kind {
                sent.insert(*msg_id, clocks[p].clone());
            }
            events.push(Some((p, clocks[p].clone())));
        }
        Causality { events, lanes }
    }

    /// The trace index of process `p`'s `k`-th event (1-based).
    pub fn nth_event(&self, p: usize, k: u32) -> Option<usize> {
        (k as usize)
            .checked_sub(1)
            .and_then(|i| self.lanes[p].get(i).copied())
    }

    /// Whether trace event `a` happened before trace event `b`.
    pub fn happens_before(&self, a: usize, b: usize) -> bool {
        match (&self.events[a], &self.events[b]) {
            (Some((pa, va)), Some((_, vb))) => a != b && va[*pa] <= vb[*pa],
            _ => false,
        }
    }

    /// Whether neither of `a`, `b` happened before the other.
    pub fn concurrent(&self, a: usize, b: usize) -> bool {
        a != b && !self.happens_before(a, b) && !self.happens_before(b, a)
    }

    /// The true vector clock of trace event `i`, if it is a process event.
    pub fn vector(&self, i: usize) -> Option<&[u32]> {
        self.events[i].as_ref().map(|(_, v)| v.as_slice())
    }
}

/// The stamped events of a trace: `(event index, process, stamp)`, at most `limit`.
pub fn stamped(trace: &Trace, limit: usize) -> Vec<(usize, usize, &str)> {
    trace
        .events
        .iter()
        .enumerate()
        .filter_map(|(i, e)| e.stamp.as_deref().map(|s| (i, e.proc, s)))
        .take(limit)
        .collect()
}
