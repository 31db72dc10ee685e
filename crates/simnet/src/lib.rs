//! A deterministic discrete-event simulator for distributed systems.
//!
//! `simnet` runs a set of sans-IO [`Process`]es on virtual time. One seed
//! determines everything: message latencies, loss, duplication, reordering,
//! the clock skew and drift of each process, and each process's own random
//! stream. Events are ordered by `(time, sequence number)`, so two runs with
//! the same seed and the same inputs are identical, event for event; the
//! running [`Sim::trace_hash`] lets a test prove it ([`check_determinism`]).
//!
//! The network is a value ([`NetConfig`]) plus link state (partitions, one-way
//! blocks, clogged links) that the owner of the [`Sim`] changes directly or
//! through a seeded [`Nemesis`] schedule. Crash and restart are the owner's
//! business because only the owner knows how to rebuild a process from its
//! durable state: [`Sim::crash`] keeps the crashed process's value readable,
//! [`Sim::restart`] installs a fresh one.
//!
//! Nothing here reads the OS clock or OS randomness, and nothing iterates a
//! hash map.

#![deny(missing_docs)]

mod clock;
mod config;
mod determinism;
mod fault;
mod hash;
mod sim;
mod trace;

pub use clock::{ClockConfig, ClockModel};
pub use config::{ConfigError, NetConfig};
pub use determinism::{check_determinism, DeterminismError};
pub use fault::{Fault, FaultParseError, FaultSet, Nemesis, NemesisAction, NemesisConfig};
pub use rand_pcg::Pcg64Mcg;
pub use sim::{Applied, Ctx, Sim, SimOptions, TimerId};
pub use trace::{DropReason, Stats, Trace, TraceEvent, TraceKind};

/// Index of a process in the simulation, `0..n`.
pub type ProcId = usize;

/// Virtual time in microseconds since the start of the run.
pub type Time = u64;

/// The sender of a message injected with [`Sim::send_external`].
pub const EXTERNAL: ProcId = usize::MAX;

/// The process of a trace event that concerns the whole network (a partition, a heal).
pub const ALL: ProcId = usize::MAX;

/// One millisecond of virtual time.
pub const MILLIS: Time = 1_000;

/// One second of virtual time.
pub const SECONDS: Time = 1_000_000;

/// A sans-IO participant of the simulation.
///
/// Each handler receives a [`Ctx`] through which it sends messages, sets
/// timers, reads its local clock and draws from its own random stream. A
/// process never sees the true time, the network or the other processes.
pub trait Process {
    /// The messages this process exchanges with its peers.
    type Msg: Clone + std::fmt::Debug;

    /// Called once when the simulation is built, and again after each restart.
    fn on_start(&mut self, _ctx: &mut Ctx<'_, Self::Msg>) {}

    /// Called when a message from `from` is delivered ([`EXTERNAL`] for injected ones).
    fn on_message(&mut self, ctx: &mut Ctx<'_, Self::Msg>, from: ProcId, msg: Self::Msg);

    /// Called when a timer set with [`Ctx::set_timer`] fires.
    fn on_timer(&mut self, _ctx: &mut Ctx<'_, Self::Msg>, _tag: u64) {}

    /// The size of a message on the wire, for byte costs.
    fn msg_bytes(_msg: &Self::Msg) -> usize {
        0
    }

    /// A short label for traces and diagrams. Statistics count messages by
    /// the label's leading identifier (`"Ping(3)"` counts as `"Ping"`).
    fn msg_label(msg: &Self::Msg) -> String {
        format!("{msg:?}")
    }
}
