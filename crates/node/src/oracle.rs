//! The cluster's revision oracle: one sequence of revisions for every
//! range, so that revisions order all committed writes consistently with
//! real time once the keyspace is in several ranges (a timestamp oracle,
//! as TiKV's placement driver runs one; see ARCHITECTURE.md for why).
//!
//! The home group's leader runs it. A range's leader that has writes to
//! propose asks it for as many revisions as it has writes ([`Draw`]), one
//! draw in flight per range; the answer ([`Grant`]) is the first of a run
//! of fresh revisions, which the leader gives to its waiting writes in log
//! order (`Command::At`).
//!
//! Why a write drawn after another completed gets a higher revision:
//! - the oracle hands a revision out only after a ReadIndex round that
//!   started after the draw arrived confirmed it still leads the home
//!   group, so no newer oracle had handed anything out by then;
//! - it hands out only revisions it reserved first through the home group's
//!   log (`Command::ReserveRevisions`, a window at a time), and a new
//!   oracle starts past everything reserved (and past the home range's own
//!   revision, for the first draws after the first split), once it applied
//!   an entry of its own term, so it starts past everything ever handed out;
//! - a range applies a drawn write only if its revision is past the
//!   range's own (one drawn by a deposed leader and committed late is
//!   refused and proposed again), so each range's revisions grow in log
//!   order.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};
use synod_raft::NodeId;

use crate::types::{ClientError, ShardId};

/// Revisions reserved at a time.
pub const RESERVE_WINDOW: i64 = 10_000;
/// Most revisions one draw asks for.
pub const MAX_DRAW: u32 = 4096;
/// Draws the oracle holds at most (waiting for confirmation or a
/// reservation); beyond, it answers busy.
pub const MAX_QUEUED_DRAWS: usize = 4096;
/// Ticks a range's leader waits for an answer before it asks again.
pub const DRAW_TIMEOUT_TICKS: u64 = 10;

/// A range's leader asks the oracle for `count` revisions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Draw {
    /// The range (group) whose writes take them.
    pub shard: ShardId,
    /// Names this draw among the range's (a late answer to an abandoned
    /// one is dropped).
    pub id: u64,
    /// How many (1..=[`MAX_DRAW`]).
    pub count: u32,
}

/// The oracle's answer to a [`Draw`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// The node that asked.
    pub to: NodeId,
    /// The draw's range.
    pub shard: ShardId,
    /// The draw's id.
    pub id: u64,
    /// The first revision of the run of `count`, or why none.
    pub result: Result<i64, ClientError>,
}

/// The oracle's state on the home group's leader (nothing of it is
/// durable but the reservation, which is the home group's state).
#[derive(Debug, Default)]
pub(crate) struct Oracle {
    /// The term of the home group it serves in (0: not serving).
    pub(crate) term: u64,
    /// The next revision to hand out.
    pub(crate) next: i64,
    /// Draws waiting for a ReadIndex round.
    pub(crate) queue: Vec<(NodeId, Draw)>,
    /// Draws in a ReadIndex round, by its context.
    pub(crate) confirming: BTreeMap<u64, Vec<(NodeId, Draw)>>,
    /// Draws confirmed, waiting for revisions to be reserved.
    pub(crate) confirmed: VecDeque<(NodeId, Draw)>,
    /// The index of a reservation proposed and not applied yet.
    pub(crate) reserving: Option<u64>,
}

impl Oracle {
    /// Draws held, in every stage.
    pub(crate) fn held(&self) -> usize {
        self.queue.len()
            + self.confirming.values().map(Vec::len).sum::<usize>()
            + self.confirmed.len()
    }

    /// Every draw held, answered with `err`; the oracle stops serving.
    pub(crate) fn refuse_all(&mut self, err: &ClientError, out: &mut Vec<Grant>) {
        self.term = 0;
        self.reserving = None;
        let held = std::mem::take(&mut self.queue)
            .into_iter()
            .chain(std::mem::take(&mut self.confirming).into_values().flatten())
            .chain(std::mem::take(&mut self.confirmed));
        for (to, d) in held {
            out.push(Grant {
                to,
                shard: d.shard,
                id: d.id,
                result: Err(err.clone()),
            });
        }
    }
}
