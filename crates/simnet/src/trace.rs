//! What happened in a run: the event trace and the counters.

use std::collections::BTreeMap;

use crate::{ProcId, Time};

/// Why a message was not delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum DropReason {
    /// Lost by the network (the configured loss rate).
    Loss,
    /// The link was cut by a partition or a one-way block.
    Partition,
    /// The receiver was down when the message arrived.
    Down,
    /// More than `max_in_flight` messages were in flight.
    Overflow,
}

impl DropReason {
    /// A short lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            DropReason::Loss => "loss",
            DropReason::Partition => "partition",
            DropReason::Down => "down",
            DropReason::Overflow => "overflow",
        }
    }
}

/// What kind of event a [`TraceEvent`] records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TraceKind {
    /// `proc` sent message `msg_id` to `to`.
    Send {
        /// Unique per send (duplicates share it).
        msg_id: u64,
        /// The receiver.
        to: ProcId,
        /// [`crate::Process::msg_label`] of the message.
        label: String,
        /// [`crate::Process::msg_bytes`] of the message.
        bytes: usize,
    },
    /// `proc` received message `msg_id` from `from`.
    Deliver {
        /// The id of the matching `Send` (none for external messages).
        msg_id: u64,
        /// The sender ([`crate::EXTERNAL`] for injected messages).
        from: ProcId,
        /// [`crate::Process::msg_label`] of the message.
        label: String,
    },
    /// Message `msg_id` was dropped; `proc` is where it would have arrived
    /// (the sender, for `Overflow`).
    Drop {
        /// The id of the matching `Send`.
        msg_id: u64,
        /// Why.
        reason: DropReason,
    },
    /// A timer of `proc` fired.
    Timer {
        /// The tag given to [`crate::Ctx::set_timer`].
        tag: u64,
    },
    /// `proc` marked a moment of interest ([`crate::Ctx::mark`]).
    Mark {
        /// What happened.
        label: String,
    },
    /// `proc` crashed.
    Crash,
    /// `proc` restarted.
    Restart,
    /// A network or clock fault began or ended (`proc` is [`crate::ALL`] for
    /// network-wide faults).
    Fault {
        /// What changed, e.g. `partition [0,1] [2]`.
        desc: String,
    },
}

/// One event of the run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceEvent {
    /// True time.
    pub time: Time,
    /// The process the event happened at.
    pub proc: ProcId,
    /// What happened.
    pub kind: TraceKind,
    /// A logical timestamp attached with [`crate::Ctx::stamp`].
    pub stamp: Option<String>,
}

/// The recorded events of a run, in the order they happened, up to a limit.
#[derive(Clone, Debug, Default)]
pub struct Trace {
    /// The events.
    pub events: Vec<TraceEvent>,
    /// Events not recorded because the limit was reached.
    pub truncated: u64,
}

impl Trace {
    /// The events of one process, in order.
    pub fn of(&self, proc: ProcId) -> impl Iterator<Item = &TraceEvent> {
        self.events.iter().filter(move |e| e.proc == proc)
    }
}

/// Counters of a run. They are kept whether or not tracing is on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Messages sent by processes (external injections not counted).
    pub sent: u64,
    /// Messages delivered (duplicates count again).
    pub delivered: u64,
    /// Messages dropped, by reason.
    pub dropped: BTreeMap<DropReason, u64>,
    /// Extra copies made by the network.
    pub duplicated: u64,
    /// Bytes sent, by [`crate::Process::msg_bytes`].
    pub bytes: u64,
    /// Messages sent, by the leading identifier of their label.
    pub by_label: BTreeMap<String, u64>,
    /// Events processed (deliveries, drops, timers).
    pub events: u64,
    /// Timers fired.
    pub timers: u64,
}

impl Stats {
    /// Total messages dropped for any reason.
    pub fn dropped_total(&self) -> u64 {
        self.dropped.values().sum()
    }

    /// Messages dropped for `reason`.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.dropped.get(&reason).copied().unwrap_or(0)
    }

    /// Messages sent whose label starts with the identifier `kind`.
    pub fn sent_of(&self, kind: &str) -> u64 {
        self.by_label.get(kind).copied().unwrap_or(0)
    }
}

/// The leading identifier of a label: `"Ping(3)"` → `"Ping"`.
pub(crate) fn label_kind(label: &str) -> &str {
    let end = label
        .char_indices()
        .find(|(_, c)| !(c.is_alphanumeric() || *c == '_' || *c == '-'))
        .map_or(label.len(), |(i, _)| i);
    &label[..end]
}
