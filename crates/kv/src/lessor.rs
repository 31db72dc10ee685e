//! Lease expiry in ticks, kept by the leader's node beside the state machine.
//!
//! The store only knows which leases exist and which keys they hold; when a
//! lease runs out is decided here, on the leader, which then proposes a
//! `LeaseRevoke`. Every replica feeds grants and revokes in as they are applied
//! (so a new leader already knows every lease); only a primary (leader) lessor
//! reports expiries. On promotion every deadline restarts at `now + ttl` (or the
//! last checkpointed remaining TTL), as etcd extends leases on leader change so
//! that an election never expires a lease whose owner kept it alive.

use std::collections::{BTreeMap, BTreeSet};

use crate::engine::MvccEngine;
use crate::error::KvError;
use crate::store::KvStore;
use crate::types::LeaseId;

/// Timing of a [`Lessor`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LessorConfig {
    /// How many ticks make one second of lease TTL.
    pub ticks_per_second: u64,
    /// Most lease ids one [`Lessor::expired`] call returns.
    pub max_expired_per_call: usize,
    /// After being reported expired, a lease is reported again only after this
    /// many ticks if it has still not been revoked.
    pub retry_ticks: u64,
}

impl Default for LessorConfig {
    fn default() -> Self {
        LessorConfig {
            ticks_per_second: 10,
            max_expired_per_call: 64,
            retry_ticks: 30,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Clock {
    ttl: i64,
    /// Seconds left at the last checkpoint (0: none); used on promotion.
    remaining: i64,
    deadline: u64,
    /// Reported by [`Lessor::expired`]; its revocation is on the way.
    expiring: bool,
}

/// Deadlines of every lease, in ticks. Deterministic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lessor {
    config: LessorConfig,
    primary: bool,
    leases: BTreeMap<LeaseId, Clock>,
    /// (deadline, id) of every lease, for expiry in deadline order.
    queue: BTreeSet<(u64, LeaseId)>,
}

impl Lessor {
    /// An empty, non-primary lessor.
    pub fn new(config: LessorConfig) -> Self {
        assert!(config.ticks_per_second > 0 && config.max_expired_per_call > 0);
        Lessor {
            config,
            primary: false,
            leases: BTreeMap::new(),
            queue: BTreeSet::new(),
        }
    }

    /// A non-primary lessor holding every lease of `store` (after a restore).
    pub fn from_store<E: MvccEngine>(config: LessorConfig, store: &KvStore<E>, now: u64) -> Self {
        let mut l = Lessor::new(config);
        for id in store.leases() {
            let info = store.lease(id).expect("listed lease exists");
            l.grant(id, info.ttl, now);
            l.leases.get_mut(&id).expect("just granted").remaining = info.remaining_ttl;
        }
        l
    }

    fn ticks(&self, secs: i64) -> u64 {
        u64::try_from(secs.max(0))
            .unwrap_or(0)
            .saturating_mul(self.config.ticks_per_second)
    }

    fn set_deadline(&mut self, id: LeaseId, deadline: u64) {
        let c = self.leases.get_mut(&id).expect("deadline of a known lease");
        assert!(
            self.queue.remove(&(c.deadline, id)),
            "lease missing from the expiry queue"
        );
        c.deadline = deadline;
        self.queue.insert((deadline, id));
    }

    /// Records a granted lease (call it when a `LeaseGrant` is applied, with the
    /// TTL the store answered). Its deadline is `now + ttl`.
    pub fn grant(&mut self, id: LeaseId, ttl_secs: i64, now: u64) {
        let deadline = now.saturating_add(self.ticks(ttl_secs));
        if let Some(old) = self.leases.insert(
            id,
            Clock {
                ttl: ttl_secs,
                remaining: 0,
                deadline,
                expiring: false,
            },
        ) {
            self.queue.remove(&(old.deadline, id));
        }
        self.queue.insert((deadline, id));
    }

    /// Forgets a lease (call it when a `LeaseRevoke` is applied).
    pub fn revoke(&mut self, id: LeaseId) {
        if let Some(c) = self.leases.remove(&id) {
            assert!(
                self.queue.remove(&(c.deadline, id)),
                "lease missing from the expiry queue"
            );
        }
    }

    /// Records a checkpointed remaining TTL (when a `LeaseCheckpoint` is applied).
    pub fn checkpoint(&mut self, id: LeaseId, remaining_secs: i64) {
        if let Some(c) = self.leases.get_mut(&id) {
            c.remaining = remaining_secs;
        }
    }

    /// A keep-alive: the deadline moves to `now + ttl`. Returns the TTL.
    /// Only the primary renews; others answer [`KvError::NotPrimary`]. A lease
    /// past its deadline is not revived (its revocation may already be on the
    /// way): it answers [`KvError::LeaseNotFound`], as etcd does once the
    /// revocation lands.
    pub fn renew(&mut self, id: LeaseId, now: u64) -> Result<i64, KvError> {
        if !self.primary {
            return Err(KvError::NotPrimary);
        }
        let c = self.leases.get_mut(&id).ok_or(KvError::LeaseNotFound)?;
        if c.expiring || c.deadline <= now {
            return Err(KvError::LeaseNotFound);
        }
        c.remaining = 0;
        let ttl = c.ttl;
        let deadline = now.saturating_add(self.ticks(ttl));
        self.set_deadline(id, deadline);
        Ok(ttl)
    }

    /// Becomes primary: every deadline restarts at `now` plus the lease's
    /// checkpointed remaining TTL, or its full TTL if it has none.
    pub fn promote(&mut self, now: u64) {
        self.primary = true;
        let ids: Vec<(LeaseId, i64)> = self
            .leases
            .iter()
            .map(|(id, c)| (*id, if c.remaining > 0 { c.remaining } else { c.ttl }))
            .collect();
        for (id, secs) in ids {
            let deadline = now.saturating_add(self.ticks(secs));
            self.set_deadline(id, deadline);
            self.leases.get_mut(&id).expect("listed lease").expiring = false;
        }
    }

    /// Stops being primary: no more expiries or renewals.
    pub fn demote(&mut self) {
        self.primary = false;
    }

    /// Whether this lessor is the primary.
    pub fn is_primary(&self) -> bool {
        self.primary
    }

    /// Leases whose deadline is at or before `now`, earliest first, at most
    /// `max_expired_per_call` of them; empty unless primary. Each one returned
    /// is pushed `retry_ticks` ahead, so it is reported again only if its
    /// revocation did not get through.
    pub fn expired(&mut self, now: u64) -> Vec<LeaseId> {
        if !self.primary {
            return Vec::new();
        }
        let due: Vec<LeaseId> = self
            .queue
            .iter()
            .take_while(|(d, _)| *d <= now)
            .take(self.config.max_expired_per_call)
            .map(|(_, id)| *id)
            .collect();
        for id in &due {
            self.set_deadline(*id, now.saturating_add(self.config.retry_ticks.max(1)));
            self.leases.get_mut(id).expect("due lease").expiring = true;
        }
        due
    }

    /// Seconds left before the lease expires (rounded up), if it exists.
    pub fn remaining_ttl(&self, id: LeaseId, now: u64) -> Option<i64> {
        let c = self.leases.get(&id)?;
        let left = c.deadline.saturating_sub(now);
        let secs = left.div_ceil(self.config.ticks_per_second);
        Some(i64::try_from(secs).unwrap_or(i64::MAX))
    }

    /// Current (remaining seconds) of every lease whose remaining time differs
    /// from its TTL, for proposing `LeaseCheckpoint`s; at most `max` of them.
    /// Empty unless primary.
    pub fn checkpoints(&self, now: u64, max: usize) -> Vec<(LeaseId, i64)> {
        if !self.primary {
            return Vec::new();
        }
        self.leases
            .keys()
            .filter_map(|id| {
                let left = self.remaining_ttl(*id, now)?;
                (left < self.leases[id].ttl).then_some((*id, left))
            })
            .take(max)
            .collect()
    }

    /// Number of leases tracked.
    pub fn len(&self) -> usize {
        self.leases.len()
    }

    /// Whether no lease is tracked.
    pub fn is_empty(&self) -> bool {
        self.leases.is_empty()
    }
}
