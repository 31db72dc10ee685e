//! Faults aimed at the moments that matter, beside the nemesis's random
//! schedule (in the spirit of FoundationDB's BUGGIFY and TigerBeetle's VOPR).
//!
//! Uniformly timed crashes almost never hit the schedules that break
//! consensus. Raft's figure 8, for one, needs a leader to fail right after
//! it appended an entry and replicated it to a minority, another leader to
//! do the same in a higher term, and the first to come back and win an
//! election before the second. So the harness watches the cluster after
//! every event and, when the leader appends a new entry, with a
//! probability the seed picks, cuts that leader off a moment later (a
//! crash, or an isolation from every other server when partitions are on),
//! within the time one append takes to reach some followers and not
//! others; and it brings the victim back after a time drawn around the
//! election timeout, so that its return races the elections it caused.
//!
//! Every decision comes from the seed: a run stays replayable.

use rand::Rng;
use rand_pcg::Pcg64Mcg;
use synod_simnet::{ProcId, Time, MILLIS};

/// An aimed action, due at a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AimAction {
    /// Crash this server.
    Crash(ProcId),
    /// Restart it (if it is down).
    Restart(ProcId),
    /// Cut every link between this server and the other servers.
    Isolate(ProcId),
    /// Restore them.
    Rejoin(ProcId),
}

/// The aiming state of one run.
pub struct Aim {
    rng: Pcg64Mcg,
    /// Chance that a leader's new entry is followed by a fault aimed at it.
    chance: f64,
    crash: bool,
    isolate: bool,
    /// The leader last seen, its term, last index and commit index.
    seen: Option<(ProcId, u64, u64, u64)>,
    /// Pending actions, by due time (then insertion order).
    queue: Vec<(Time, u64, AimAction)>,
    next_id: u64,
    /// Victims not yet back.
    away: Vec<ProcId>,
    /// At most this many away at once (a minority: the cluster can recover).
    max_away: usize,
    /// Aimed faults fired.
    pub fired: u64,
}

impl Aim {
    /// Aims crashes and/or isolations; `chance` per new leader entry.
    pub fn new(rng: Pcg64Mcg, chance: f64, crash: bool, isolate: bool, nodes: usize) -> Aim {
        Aim {
            away: Vec::new(),
            max_away: nodes.saturating_sub(1),
            rng,
            chance,
            crash,
            isolate,
            seen: None,
            queue: Vec::new(),
            next_id: 0,
            fired: 0,
        }
    }

    /// Whether anything can ever be aimed.
    pub fn is_on(&self) -> bool {
        self.chance > 0.0 && (self.crash || self.isolate)
    }

    fn push(&mut self, at: Time, a: AimAction) {
        self.next_id += 1;
        self.queue.push((at, self.next_id, a));
        self.queue.sort_by_key(|(t, id, _)| (*t, *id));
    }

    /// The next action's due time.
    pub fn next_time(&self) -> Option<Time> {
        self.queue.first().map(|(t, _, _)| *t)
    }

    /// Takes the next action if it is due by `now`.
    pub fn pop_due(&mut self, now: Time) -> Option<AimAction> {
        if self.queue.first().is_some_and(|(t, _, _)| *t <= now) {
            Some(self.queue.remove(0).2)
        } else {
            None
        }
    }

    /// After an event: the current leader (`None`: none), its term, last
    /// index and commit index. Aims at it if it just appended (before its
    /// followers all have the entry) or just advanced its commit index
    /// (before its followers learn it).
    pub fn observe(&mut self, now: Time, leader: Option<(ProcId, u64, u64, u64)>) {
        let Some((p, term, last, commit)) = leader else {
            return;
        };
        let same = matches!(self.seen, Some((q, t, _, _)) if q == p && t == term);
        let appended = same && self.seen.is_some_and(|(_, _, l, _)| last > l);
        let committed = same && self.seen.is_some_and(|(_, _, _, c)| commit > c);
        self.seen = Some((p, term, last, commit));
        if !(appended || committed) || self.away.len() >= self.max_away || !self.is_on() {
            return;
        }
        if !self.rng.random_bool(self.chance) {
            return;
        }
        let delay = if committed {
            // Before the messages that tell the followers leave the wire
            // (an isolation drops what is in flight; the fastest hop is 200 µs).
            self.rng.random_range(0..200)
        } else {
            // Within one network hop: some followers have the entry, some not.
            self.rng.random_range(0..=3 * MILLIS)
        };
        let crash = match (self.crash, self.isolate) {
            // A commit's news is best stopped by a cut, which drops what is
            // on the wire; a crash lets it arrive.
            (true, true) => !committed && self.rng.random_bool(0.5),
            (c, _) => c,
        };
        let a = if crash {
            AimAction::Crash(p)
        } else {
            AimAction::Isolate(p)
        };
        self.away.push(p);
        self.fired += 1;
        self.push(now + delay, a);
    }

    /// The harness carried out `a` at `now`: schedule the victim's return,
    /// racing the elections its absence started (the election timeout is
    /// 100 ms of ticks in the simulator). When a victim returns, `leader`
    /// (the current leader) may be cut off in turn, so that the returning
    /// server's log is put to an election.
    pub fn done(&mut self, now: Time, a: AimAction, leader: Option<ProcId>) {
        match a {
            AimAction::Crash(p) => {
                let back = self.rng.random_range(20 * MILLIS..=800 * MILLIS);
                self.push(now + back, AimAction::Restart(p));
            }
            AimAction::Isolate(p) => {
                let back = self.rng.random_range(20 * MILLIS..=800 * MILLIS);
                self.push(now + back, AimAction::Rejoin(p));
            }
            AimAction::Restart(p) | AimAction::Rejoin(p) => {
                self.away.retain(|&q| q != p);
                let Some(l) = leader.filter(|&l| l != p && !self.away.contains(&l)) else {
                    return;
                };
                if self.away.len() < self.max_away && self.rng.random_bool(0.5) {
                    let cut = match (self.crash, self.isolate) {
                        (true, true) => self.rng.random_bool(0.5),
                        (c, _) => c,
                    };
                    self.away.push(l);
                    self.fired += 1;
                    let delay = self.rng.random_range(0..=20 * MILLIS);
                    let a = if cut {
                        AimAction::Crash(l)
                    } else {
                        AimAction::Isolate(l)
                    };
                    self.push(now + delay, a);
                }
            }
        }
    }

    /// Drops everything pending (the fault phase ended).
    pub fn stop(&mut self) {
        self.queue.clear();
        self.away.clear();
        self.chance = 0.0;
    }
}
