//! One Raft group hosted on a node and its state machine: applying committed
//! entries (writes, lease bookkeeping, configuration changes and the member
//! registry), answering the requests this node proposed once they settle,
//! serving confirmed reads, installing a leader's snapshot and compacting
//! the log. The [`Node`](crate::Node) owns the groups, routes requests to
//! them and assembles their output into a [`Ready`](crate::Ready).
//!
//! Invariants of a group (asserted where they are established):
//! - entries apply in log order, one index after the other, and only
//!   committed ones: `snapshot_index <= applied <= raft.commit()`;
//! - what this node proposes gets an index past `applied`, and once an
//!   entry applies no proposal of this node is left at or below it;
//! - a confirmed read is served only once `applied` reached its index;
//! - after a configuration change applies (from an entry or a snapshot),
//!   the member registry lists exactly the configuration's members, a
//!   learner exactly when it does not vote.

use std::collections::{BTreeMap, VecDeque};

use synod_kv::{Command, Event, Lessor, LessorConfig, Response};
use synod_raft::{
    ConfChange, ConfChangeSingle, ConfChangeTransition, ConfState, EntryKind, NodeId, Raft, Role,
    Snapshot, SnapshotMeta,
};

use crate::members::{self, Context, Member, MemberOp, Registry};
use crate::routing::{self, KeyRange, RangeDesc};
use crate::sm::{Applied, Proposal, StateMachine};
use crate::types::{ClientError, ClientOp, ClientReply, ClientRequest, ClientResponse, ShardId};

/// A read waiting for its ReadIndex or for the apply of that index.
#[derive(Debug)]
pub(crate) struct WaitingRead {
    pub(crate) req: ClientRequest,
    /// Served only once the group applied this index too (a read at a
    /// cluster revision waits for every entry its leader had in its log
    /// when it arrived; 0 for others).
    pub(crate) min_index: u64,
}

/// A request's (client, seq).
pub(crate) type Named = (u64, u64);

/// A membership change this node proposed.
#[derive(Clone, Debug)]
pub(crate) struct PendingMember {
    /// Where it was proposed: the entry's index and term.
    pub(crate) index: u64,
    pub(crate) term: u64,
    /// The member it concerns.
    pub(crate) id: NodeId,
    /// What was asked.
    pub(crate) op: MemberOp,
}

/// One Raft group hosted on this node and its state machine.
pub(crate) struct Group {
    pub(crate) shard: ShardId,
    pub(crate) raft: Raft,
    pub(crate) sm: StateMachine,
    pub(crate) applied: u64,
    pub(crate) snapshot_index: u64,
    /// Writes this node proposed, by session, with the index they were given.
    pub(crate) pending_writes: BTreeMap<Named, u64>,
    /// Linearizable reads not yet sent for confirmation.
    pub(crate) unconfirmed: Vec<WaitingRead>,
    /// Reads sent for confirmation under a context.
    pub(crate) confirming: BTreeMap<u64, Vec<WaitingRead>>,
    /// Confirmed reads waiting for `applied >= index`.
    pub(crate) confirmed: Vec<(u64, WaitingRead)>,
    pub(crate) next_ctx: u64,
    pub(crate) lessor: Lessor,
    pub(crate) role: Role,
    /// A snapshot taken by compaction, to persist with the next Ready.
    pub(crate) local_snapshot: Option<Snapshot>,
    /// Raft asked for a snapshot image (it holds none of its snapshot):
    /// take one at the next `advance`.
    pub(crate) snapshot_wanted: bool,
    /// Raft's configuration as of `applied` (follows the applied conf entries).
    pub(crate) conf: ConfState,
    /// The member registry (part of the replicated state and its image).
    pub(crate) members: Registry,
    /// The registry changed since the last Ready.
    pub(crate) members_changed: bool,
    /// Membership changes this node proposed, by (client, seq).
    pub(crate) pending_members: BTreeMap<Named, PendingMember>,
    /// The range this group serves (replicated state, as of `applied`);
    /// `None` until a group created from a peer's message is sent its
    /// first snapshot.
    pub(crate) desc: Option<RangeDesc>,
    /// A split applied since the last Ready: the new range to create.
    pub(crate) split_out: Option<SplitOut>,
    /// The descriptor changed since the node last built its routing table.
    pub(crate) desc_changed: bool,
    /// The index of a split this node proposed as leader that has not
    /// applied yet (one at a time).
    pub(crate) split_proposed: Option<u64>,
    /// The planted bug [`crate::SplitBug::NoRangeCheck`].
    pub(crate) skip_range_check: bool,
    /// This node's ranges split ([`crate::NodeConfig::split_max_keys`]):
    /// once its range is not the whole keyspace, the group's writes take
    /// their revisions from the cluster's revision oracle.
    pub(crate) dynamic: bool,
    /// The planted bug [`crate::SplitBug::LocalRevisions`].
    pub(crate) local_revisions: bool,
    /// The highest revision the oracle reserved in this group (replicated
    /// state; only the home group's moves).
    pub(crate) reserved: i64,
    /// Writes waiting for revisions from the oracle, in arrival order
    /// (leader only; counted in `pending`). A client's is in
    /// `pending_writes` too, at index [`UNDRAWN`].
    pub(crate) undrawn: VecDeque<Proposal>,
    /// The draw asked for and not answered: its id, the tick it was asked
    /// at, and how many revisions.
    pub(crate) drawing: Option<(u64, u64, u32)>,
    /// Ids of draws (a late answer to an abandoned one is dropped).
    pub(crate) next_draw: u64,
    /// No draw before this tick (the oracle refused the last one).
    pub(crate) draw_after: u64,
    /// The highest cluster revision a read was served at or promised by
    /// this leader ([`ClientOp::ReadAt`]): revisions drawn at or below it
    /// are not used (their writes draw again).
    pub(crate) closed: i64,
}

/// The index a client's write waiting for its revision is tracked at in
/// `pending_writes`: past every index, so nothing settles it but its own
/// apply (once drawn and proposed) or its refusal.
pub(crate) const UNDRAWN: u64 = u64::MAX;

/// The right half of a split that applied: what the node creates.
#[derive(Debug)]
pub(crate) struct SplitOut {
    /// The new group.
    pub(crate) shard: ShardId,
    /// Its range and generation.
    pub(crate) desc: RangeDesc,
    /// Its configuration: the parent's at the split.
    pub(crate) conf: ConfState,
    /// Its image: registry, descriptor and state machine.
    pub(crate) image: Vec<u8>,
}

impl Group {
    /// A group whose state machine `sm` holds the log up to `applied`, with
    /// the member registry as of that index.
    pub(crate) fn new(
        shard: ShardId,
        raft: Raft,
        sm: StateMachine,
        applied: u64,
        lessor: Lessor,
        registry: Registry,
        desc: Option<RangeDesc>,
    ) -> Group {
        let role = raft.role();
        let conf = raft.conf_state().clone();
        let g = Group {
            shard,
            raft,
            sm,
            applied,
            snapshot_index: applied,
            pending_writes: BTreeMap::new(),
            unconfirmed: Vec::new(),
            confirming: BTreeMap::new(),
            confirmed: Vec::new(),
            next_ctx: 1,
            lessor,
            role,
            local_snapshot: None,
            snapshot_wanted: false,
            conf,
            members_changed: !registry.is_empty(),
            members: registry,
            pending_members: BTreeMap::new(),
            desc,
            split_out: None,
            desc_changed: true,
            split_proposed: None,
            skip_range_check: false,
            dynamic: false,
            local_revisions: false,
            reserved: 0,
            undrawn: VecDeque::new(),
            drawing: None,
            next_draw: 1,
            draw_after: 0,
            closed: 0,
        };
        g.check_indexes();
        g
    }

    /// Whether this group's writes draw their revisions from the oracle:
    /// its node's ranges split and its range is no longer the whole
    /// keyspace (replicated state, so every replica decides alike).
    pub(crate) fn draws(&self) -> bool {
        self.dynamic
            && !self.local_revisions
            && self.desc.as_ref().is_some_and(|d| !d.range.is_all())
    }

    /// Answers the writes waiting for revisions as not taken (this node
    /// lost the lead); drops its own.
    pub(crate) fn drop_undrawn(&mut self, replies: &mut Vec<ClientReply>) {
        let leader = self.raft.leader();
        self.drawing = None;
        for p in std::mem::take(&mut self.undrawn) {
            if p.client != 0 && self.pending_writes.get(&(p.client, p.seq)) == Some(&UNDRAWN) {
                self.pending_writes.remove(&(p.client, p.seq));
                replies.push(ClientReply {
                    client: p.client,
                    seq: p.seq,
                    result: Err(ClientError::NotLeader { leader }),
                });
            }
        }
    }

    /// The oracle answered draw `id`: the revisions from `first` on go, in
    /// order, to the writes waiting (as many as were asked for), which are
    /// proposed now. A late or refused answer changes nothing but the
    /// draw in flight.
    pub(crate) fn granted(
        &mut self,
        id: u64,
        result: Result<i64, ClientError>,
        now: u64,
        replies: &mut Vec<ClientReply>,
    ) {
        let Some((asked, _, count)) = self.drawing else {
            return;
        };
        if asked != id {
            return;
        }
        self.drawing = None;
        let first = match result {
            Ok(first) => first,
            Err(_) => {
                self.draw_after = now + 1;
                return;
            }
        };
        assert!(
            first > 0,
            "shard {}: the oracle granted revision {first}",
            self.shard
        );
        if first <= self.closed {
            // Handed out before a read this leader promised at `closed`
            // arrived: the writes draw again, past it.
            self.draw_after = now;
            return;
        }
        for i in 0..i64::from(count) {
            let Some(mut p) = self.undrawn.pop_front() else {
                break;
            };
            let named = (p.client, p.seq);
            if p.client != 0 && self.pending_writes.get(&named) != Some(&UNDRAWN) {
                continue; // answered meanwhile (a copy of it applied)
            }
            p.cmd = Command::At {
                revision: first + i,
                cmd: Box::new(p.cmd),
            };
            match self.raft.propose(p.encode()) {
                Ok(index) => {
                    if p.client != 0 {
                        self.track_write(named, index);
                    }
                }
                Err(e) => {
                    if p.client != 0 {
                        self.pending_writes.remove(&named);
                        let result = match e {
                            synod_raft::ProposeError::NotLeader { leader } => {
                                Err(ClientError::NotLeader { leader })
                            }
                            _ => Err(ClientError::Busy),
                        };
                        replies.push(ClientReply {
                            client: p.client,
                            seq: p.seq,
                            result,
                        });
                    }
                }
            }
        }
    }

    /// Requests of this node waiting for an answer from the group.
    pub(crate) fn pending(&self) -> usize {
        self.pending_members.len()
            + self.pending_writes.len()
            + self.undrawn.iter().filter(|p| p.client == 0).count()
            + self.unconfirmed.len()
            + self.confirming.values().map(Vec::len).sum::<usize>()
            + self.confirmed.len()
    }

    /// Asserts `snapshot_index <= applied <= commit`: the state machine
    /// holds no less than the snapshot it compacted to, and nothing that
    /// Raft has not committed.
    pub(crate) fn check_indexes(&self) {
        assert!(
            self.snapshot_index <= self.applied,
            "shard {}: snapshot index {} passed the applied index {}",
            self.shard,
            self.snapshot_index,
            self.applied
        );
        assert!(
            self.applied <= self.raft.commit(),
            "shard {}: applied index {} passed the commit index {}",
            self.shard,
            self.applied,
            self.raft.commit()
        );
    }

    /// Remembers a write this node proposed at `index`, to answer once it applies.
    pub(crate) fn track_write(&mut self, named: Named, index: u64) {
        assert!(
            index > self.applied,
            "shard {}: a write proposed at index {index}, at or below the applied index {}",
            self.shard,
            self.applied
        );
        self.pending_writes.insert(named, index);
    }

    /// Remembers a membership change this node proposed, to answer once it settles.
    pub(crate) fn track_member(&mut self, named: Named, p: PendingMember) {
        assert!(
            p.index > self.applied,
            "shard {}: a membership change proposed at index {}, at or below the applied index {}",
            self.shard,
            p.index,
            self.applied
        );
        self.pending_members.insert(named, p);
    }

    /// Applies committed entry `e` under a budget of key operations (see
    /// [`StateMachine::apply_bounded`]): to the state machine (and the
    /// lessor), or to the configuration and the registry; answers the
    /// requests of this node it settles. Returns the watch events it
    /// produced, or `None` when the budget ran out part way through it:
    /// `applied` stays below it, and the next call with the same entry
    /// carries on where this one stopped.
    pub(crate) fn apply_entry(
        &mut self,
        e: &synod_raft::Entry,
        now: u64,
        replies: &mut Vec<ClientReply>,
        budget: &mut u64,
    ) -> Option<Vec<Event>> {
        assert_eq!(
            e.index,
            self.applied + 1,
            "shard {}: entries apply in order",
            self.shard
        );
        assert!(
            e.index <= self.raft.commit(),
            "shard {}: entry {} applies beyond the commit index {}",
            self.shard,
            e.index,
            self.raft.commit()
        );
        let in_progress = self.sm.in_progress();
        assert!(
            in_progress.is_none_or(|i| i == e.index),
            "shard {}: entry {} applies while entry {in_progress:?} is part way through",
            self.shard,
            e.index
        );
        let events = if in_progress.is_some() {
            let (applied, events) = self.sm.resume(budget)?;
            let p = Proposal::decode(&e.data).expect("an entry in progress decoded before");
            self.applied = e.index;
            self.settle_write(e, &p, applied, now, replies);
            events
        } else {
            self.apply_entry_inner(e, now, replies, budget)?
        };
        assert_eq!(self.applied, e.index);
        // A split this node proposed whose index another entry took (a new
        // leader's) will not apply: this node may propose one again.
        if self.split_proposed.is_some_and(|i| i <= self.applied) {
            self.split_proposed = None;
        }
        debug_assert!(
            self.pending_writes.values().all(|&i| i > self.applied)
                && self
                    .pending_members
                    .values()
                    .all(|p| p.index > self.applied),
            "shard {}: a proposal of this node at or below applied index {} is still unanswered",
            self.shard,
            self.applied
        );
        Some(events)
    }

    fn apply_entry_inner(
        &mut self,
        e: &synod_raft::Entry,
        now: u64,
        replies: &mut Vec<ClientReply>,
        budget: &mut u64,
    ) -> Option<Vec<Event>> {
        let p = (e.kind == EntryKind::Normal && !e.data.is_empty())
            .then(|| Proposal::decode(&e.data).ok())
            .flatten();
        let Some(p) = p else {
            // A configuration change, an empty entry, or one that does not
            // decode (every replica skips it alike: state stays identical).
            *budget = budget.saturating_sub(1);
            self.applied = e.index;
            let lost = self.lost_at(e.index);
            let conf_applied = e.kind == EntryKind::ConfChange && self.apply_conf_entry(e);
            self.settle_members(e, conf_applied, replies);
            self.fail_lost(&lost, None, replies);
            return Some(Vec::new());
        };
        if let Command::ReserveRevisions { upto } = &p.cmd {
            *budget = budget.saturating_sub(1);
            self.applied = e.index;
            self.reserved = self.reserved.max(*upto);
            self.desc_changed = true;
            self.settle_write(
                e,
                &p,
                Applied::Fresh(Ok(Response::Compact { revision: 0 })),
                now,
                replies,
            );
            return Some(Vec::new());
        }
        if let Command::SplitRange { at, new_range } = &p.cmd {
            *budget = budget.saturating_sub(1);
            self.applied = e.index;
            self.apply_split(at, *new_range);
            self.settle_write(
                e,
                &p,
                Applied::Fresh(Ok(Response::Compact { revision: 0 })),
                now,
                replies,
            );
            return Some(Vec::new());
        }
        // The range moved since the request was routed here (a split applied
        // before it): it takes no effect, and its caller routes it again.
        // (A request the session table answers is answered as before.)
        let answered = p.client != 0 && self.sm.session_outcome(p.client, p.seq).is_some();
        let outside = !self.skip_range_check
            && !answered
            && self
                .desc
                .as_ref()
                .is_none_or(|d| !routing::holds_command(&d.range, &p.cmd));
        // In a range of a split keyspace a write must carry a revision
        // drawn from the oracle and past the range's own: one proposed
        // before the split, or drawn by a leader since deposed, takes no
        // effect, and its caller proposes it again.
        let undrawn = !answered
            && self.draws()
            && writes_revision(&p.cmd)
            && p.cmd
                .at_revision()
                .is_none_or(|r| r <= self.sm.kv().revision());
        if outside || undrawn {
            *budget = budget.saturating_sub(1);
            self.applied = e.index;
            let lost = self.lost_at(e.index);
            let mine = self.pending_writes.remove(&(p.client, p.seq)).is_some();
            self.settle_members(e, false, replies);
            self.fail_lost(&lost, Some((p.client, p.seq)), replies);
            if p.client != 0 && mine {
                let result = if outside {
                    Err(ClientError::WrongShard {
                        key: first_key(&p.cmd),
                    })
                } else {
                    Err(ClientError::RevisionTaken)
                };
                replies.push(ClientReply {
                    client: p.client,
                    seq: p.seq,
                    result,
                });
            }
            return Some(Vec::new());
        }
        let (applied, events) = self.sm.apply_bounded(e.index, &p, budget)?;
        self.applied = e.index;
        self.settle_write(e, &p, applied, now, replies);
        Some(events)
    }

    /// Applies a split at `at`: the keys from `at` on leave this group's
    /// state machine for a new group `new_range` on the same members,
    /// created by the node from [`Group::split_out`]. Refused alike on
    /// every replica (a no-op) when `at` is not strictly inside the range,
    /// the new id is this group's, or the state cannot be cut there.
    fn apply_split(&mut self, at: &[u8], new_range: ShardId) {
        let Some(desc) = self.desc.clone() else {
            return;
        };
        // Users and roles live in the home range: a copy in a new range would
        // miss every later change to them.
        if self.sm.kv().auth().enabled() {
            return;
        }
        let inside = at > desc.range.start.as_slice()
            && (desc.range.end.is_empty() || at < desc.range.end.as_slice());
        if !inside || new_range == self.shard || new_range == 0 {
            return;
        }
        let Ok(right) = self.sm.split_off(at) else {
            return;
        };
        let generation = desc.generation + 1;
        let left = RangeDesc {
            range: KeyRange::new(desc.range.start.clone(), at.to_vec()),
            generation,
        };
        let right_desc = RangeDesc {
            range: KeyRange::new(at.to_vec(), desc.range.end.clone()),
            generation,
        };
        self.desc = Some(left);
        self.desc_changed = true;
        let image = members::encode_image(&self.members, Some(&right_desc), 0, &right);
        self.split_out = Some(SplitOut {
            shard: new_range,
            desc: right_desc,
            conf: self.conf.clone(),
            image,
        });
    }

    /// Proposals of this node that were given an index up to `index`.
    fn lost_at(&self, index: u64) -> Vec<Named> {
        self.pending_writes
            .iter()
            .filter(|(_, idx)| **idx <= index)
            .map(|(k, _)| *k)
            .collect()
    }

    /// After proposal `p` of entry `e` applied: keeps the lessor in step and
    /// answers this node's requests it settles.
    fn settle_write(
        &mut self,
        e: &synod_raft::Entry,
        p: &Proposal,
        applied: Applied,
        now: u64,
        replies: &mut Vec<ClientReply>,
    ) {
        self.settle_members(e, false, replies);
        // Proposals of this node that were given this index but lost it to
        // another leader's entry will never apply: tell their clients to retry.
        let lost = self.lost_at(e.index);
        if let Applied::Fresh(Ok(resp)) = &applied {
            self.track_leases(&p.cmd, resp, now);
        }
        let mine = self.pending_writes.remove(&(p.client, p.seq)).is_some();
        self.fail_lost(&lost, Some((p.client, p.seq)), replies);
        if p.client != 0 && mine {
            let result = write_result(applied, p.seq);
            replies.push(ClientReply {
                client: p.client,
                seq: p.seq,
                result,
            });
        }
    }

    /// Applies a configuration-change entry to the registry (following the
    /// configuration Raft computes from it); whether Raft applies it too.
    fn apply_conf_entry(&mut self, e: &synod_raft::Entry) -> bool {
        let Ok((cc, ctx)) = ConfChange::decode_with_context(&e.data) else {
            return false;
        };
        // A change Raft refuses is a no-op on every member alike.
        let Ok(next) = self.conf.apply_change(&cc) else {
            return false;
        };
        self.conf = next;
        if self.members.apply(&self.conf, ctx) {
            self.members_changed = true;
        }
        assert!(
            registry_follows(&self.members, &self.conf),
            "shard {}: after conf entry {} the registry does not follow the configuration",
            self.shard,
            e.index
        );
        true
    }

    /// Answers the membership requests this node proposed that entry `e`
    /// settles: its own (applied or refused by Raft), and those whose index
    /// another leader's entry took.
    fn settle_members(
        &mut self,
        e: &synod_raft::Entry,
        applied: bool,
        replies: &mut Vec<ClientReply>,
    ) {
        if self.pending_members.is_empty() {
            return;
        }
        let settled: Vec<(Named, PendingMember)> = self
            .pending_members
            .iter()
            .filter(|(_, p)| p.index <= e.index)
            .map(|(k, v)| (*k, v.clone()))
            .collect();
        let leader = self.raft.leader();
        for ((client, seq), p) in settled {
            self.pending_members.remove(&(client, seq));
            let mine = p.index == e.index && p.term == e.term;
            let result = if mine && applied {
                Ok(self.member_answer(p.id))
            } else if mine {
                Err(ClientError::Invalid(
                    "the configuration change was refused by Raft".into(),
                ))
            } else {
                // Another leader's entry took its index: it never applies.
                Err(ClientError::NotLeader { leader })
            };
            replies.push(ClientReply {
                client,
                seq,
                result,
            });
        }
    }

    /// The answer to a membership request that took effect: the member it was
    /// about and every member now.
    fn member_answer(&self, id: NodeId) -> ClientResponse {
        ClientResponse::Member {
            id,
            members: self.members.members().cloned().collect(),
        }
    }

    /// Installs a snapshot from the leader that Raft handed out, if it is
    /// past what the state machine holds: the registry and the state
    /// machine's image, a lessor rebuilt from the store; answers the
    /// membership requests of this node the snapshot settles. Whether it
    /// installed it.
    pub(crate) fn install_snapshot(
        &mut self,
        snap: &Snapshot,
        lessor_cfg: LessorConfig,
        now: u64,
        replies: &mut Vec<ClientReply>,
    ) -> bool {
        if snap.meta.index <= self.applied {
            return false;
        }
        let ((registry, desc, reserved), image) = match members::decode_image(&snap.data) {
            Ok(x) => x,
            Err(e) => panic!(
                "shard {}: snapshot from leader does not decode: {e}",
                self.shard
            ),
        };
        self.members = registry;
        self.reserved = reserved;
        if desc.is_some() {
            self.desc = desc;
            self.desc_changed = true;
        }
        self.members.apply(&snap.meta.conf_state, &[]);
        self.members_changed = true;
        self.settle_members_by_snapshot(snap.meta.index, replies);
        self.conf = snap.meta.conf_state.clone();
        assert!(
            registry_follows(&self.members, &self.conf),
            "shard {}: after the snapshot at {} the registry does not follow the configuration",
            self.shard,
            snap.meta.index
        );
        // Into the same engine: a disk engine switches atomically.
        if let Err(e) = self.sm.install(image) {
            // A leader sent a snapshot that does not decode: it was
            // checksummed end to end, so this is a bug, not bad input.
            panic!(
                "shard {}: snapshot from leader does not install: {e}",
                self.shard
            );
        }
        self.lessor = Lessor::from_store(lessor_cfg, self.sm.kv(), now);
        if self.role == Role::Leader {
            self.lessor.promote(now);
        }
        self.applied = snap.meta.index;
        self.snapshot_index = snap.meta.index;
        self.settle_writes_by_snapshot(snap.meta.index, replies);
        self.check_indexes();
        true
    }

    /// A snapshot replaced the entries up to `index`: answer this node's
    /// writes proposed there by what the snapshot's session table shows —
    /// applied (with their outcome) or superseded; otherwise they were not
    /// applied at their index and their callers retry under the same name.
    fn settle_writes_by_snapshot(&mut self, index: u64, replies: &mut Vec<ClientReply>) {
        let leader = self.raft.leader();
        for (client, seq) in self.lost_at(index) {
            self.pending_writes.remove(&(client, seq));
            let result = match self.sm.session_outcome(client, seq) {
                Some(applied) => write_result(applied, seq),
                None => Err(ClientError::NotLeader { leader }),
            };
            replies.push(ClientReply {
                client,
                seq,
                result,
            });
        }
    }

    /// A snapshot replaced the entries up to `index`: answer the membership
    /// requests proposed there by what the registry now shows. The state asked
    /// for holds: answered as done (an added member's id is unique to its entry,
    /// so its presence proves that entry applied); it does not: not applied.
    fn settle_members_by_snapshot(&mut self, index: u64, replies: &mut Vec<ClientReply>) {
        let settled: Vec<(Named, PendingMember)> = self
            .pending_members
            .iter()
            .filter(|(_, p)| p.index <= index)
            .map(|(k, v)| (*k, v.clone()))
            .collect();
        let leader = self.raft.leader();
        for ((client, seq), p) in settled {
            self.pending_members.remove(&(client, seq));
            let result = if self.members.holds(&p.op, p.id) {
                Ok(self.member_answer(p.id))
            } else {
                Err(ClientError::NotLeader { leader })
            };
            replies.push(ClientReply {
                client,
                seq,
                result,
            });
        }
    }

    /// On the leader: writes the initial members' names and peer URLs into the
    /// registry once (a conf change that keeps the leader a voter, carrying them).
    pub(crate) fn maybe_seed(&mut self, bootstrap: &[Member], me: NodeId) {
        debug_assert_eq!(
            self.raft.role(),
            Role::Leader,
            "shard {}: only the leader seeds the registry",
            self.shard
        );
        if bootstrap.is_empty() || self.conf.is_joint() || !self.conf.voters.contains(&me) {
            return;
        }
        let missing: Vec<NodeId> = self.members.unseeded().collect();
        let seed: Vec<Member> = bootstrap
            .iter()
            .filter(|m| missing.contains(&m.id))
            .cloned()
            .collect();
        if seed.is_empty() {
            return;
        }
        let cc = ConfChange {
            changes: vec![ConfChangeSingle::AddVoter(me)],
            transition: ConfChangeTransition::Auto,
        };
        // Refused while another change is pending: the next tick tries again.
        let _ = self
            .raft
            .propose_conf_change_with_context(cc, &Context::Seed(seed).encode());
    }

    /// Answers the writes in `lost` (but `except`) as not applied: their
    /// index went to another leader's entry.
    fn fail_lost(&mut self, lost: &[Named], except: Option<Named>, replies: &mut Vec<ClientReply>) {
        let leader = self.raft.leader();
        for k in lost {
            if Some(*k) == except {
                continue;
            }
            self.pending_writes.remove(k);
            replies.push(ClientReply {
                client: k.0,
                seq: k.1,
                result: Err(ClientError::NotLeader { leader }),
            });
        }
    }

    /// Keeps the lessor in step with the lease commands that applied.
    fn track_leases(&mut self, cmd: &Command, resp: &Response, now: u64) {
        // A client's command arrives wrapped with its sender.
        match (cmd.inner(), resp) {
            (Command::LeaseGrant { .. }, Response::LeaseGrant { id, ttl, .. }) => {
                self.lessor.grant(*id, *ttl, now);
            }
            (Command::LeaseRevoke { id }, _) => {
                self.lessor.revoke(*id);
            }
            (Command::LeaseCheckpoint { id, remaining_ttl }, _) => {
                self.lessor.checkpoint(*id, *remaining_ttl);
            }
            _ => {}
        }
    }

    /// Serves the confirmed reads whose index is applied.
    pub(crate) fn serve_confirmed(&mut self, replies: &mut Vec<ClientReply>) {
        let applied = self.applied;
        let mut i = 0;
        while i < self.confirmed.len() {
            if self.confirmed[i].0.max(self.confirmed[i].1.min_index) <= applied {
                let (_, w) = self.confirmed.swap_remove(i);
                let (ClientOp::Range { req, auth, .. } | ClientOp::ReadAt { req, auth }) =
                    &w.req.op
                else {
                    unreachable!("only reads wait for confirmation")
                };
                let result = self.read(&w.req.op, req, auth.as_ref());
                replies.push(ClientReply {
                    client: w.req.client,
                    seq: w.req.seq,
                    result,
                });
            } else {
                i += 1;
            }
        }
        debug_assert!(
            self.confirmed
                .iter()
                .all(|(index, w)| (*index).max(w.min_index) > applied),
            "shard {}: a confirmed read at or below applied index {applied} is left unserved",
            self.shard
        );
    }

    /// A read served from this group's state, if its range holds the keys
    /// (a split may have moved them since the read was routed here).
    pub(crate) fn read(
        &self,
        op: &ClientOp,
        req: &synod_kv::RangeRequest,
        auth: Option<&synod_kv::AuthInfo>,
    ) -> Result<ClientResponse, ClientError> {
        if self
            .desc
            .as_ref()
            .is_none_or(|d| !routing::holds(&d.range, op))
        {
            return Err(ClientError::WrongShard {
                key: req.key.clone(),
            });
        }
        if let ClientOp::ReadAt { .. } = op {
            // At a cluster revision: nothing this range holds past its own
            // revision is at or below `at` (its leader closed it), so a read
            // at a later `at` is a read of the latest state.
            let at = req.revision;
            let kv = self.sm.kv();
            let mut local = req.clone();
            if at >= kv.revision() {
                local.revision = 0;
            }
            return read_as(kv, &local, auth)
                .map(|mut r| {
                    r.header_revision = at;
                    ClientResponse::Range(r)
                })
                .map_err(ClientError::Kv);
        }
        read_as(self.sm.kv(), req, auth)
            .map(ClientResponse::Range)
            .map_err(ClientError::Kv)
    }

    /// Compacts the group's Raft log at `applied`, and returns the snapshot
    /// for the driver to persist (none when it already holds one there).
    ///
    /// Raft gets the image unless `lazy` (then only when it asked: `wanted`).
    /// The driver gets it only when the state machine keeps nothing across a
    /// restart; a durable store already holds this state, so the driver gets
    /// the index alone.
    pub(crate) fn take_snapshot(&mut self, lazy: bool, wanted: bool) -> Option<Snapshot> {
        self.check_indexes();
        let snap = self.take_snapshot_inner(lazy, wanted);
        assert!(
            snap.as_ref()
                .is_none_or(|s| s.meta.index == self.snapshot_index),
            "shard {}: the snapshot handed to the driver is not the one compacted to",
            self.shard
        );
        self.check_indexes();
        snap
    }

    fn take_snapshot_inner(&mut self, lazy: bool, wanted: bool) -> Option<Snapshot> {
        let index = self.applied;
        let term = self.raft.term_at(index)?;
        let meta = SnapshotMeta {
            index,
            term,
            conf_state: self.raft.conf_state().clone(),
        };
        let durable = self.sm.durable_applied().is_some();
        let for_raft = !lazy || wanted;
        // Asked again at the snapshot the driver has: Raft alone needs the image.
        let for_driver = index > self.snapshot_index;
        if !for_raft && durable {
            self.raft.compact_log(meta.clone()).ok()?;
            self.snapshot_index = index;
            return for_driver.then_some(Snapshot {
                meta,
                data: Vec::new(),
            });
        }
        let data = members::encode_image(
            &self.members,
            self.desc.as_ref(),
            self.reserved,
            &self.sm.snapshot(),
        );
        let driver_data = if durable || !for_driver {
            Vec::new()
        } else if for_raft {
            data.clone()
        } else {
            self.raft.compact_log(meta.clone()).ok()?;
            self.snapshot_index = index;
            return Some(Snapshot { meta, data });
        };
        self.raft
            .compact(Snapshot {
                meta: meta.clone(),
                data,
            })
            .ok()?;
        self.snapshot_index = index;
        for_driver.then_some(Snapshot {
            meta,
            data: driver_data,
        })
    }
}

/// The first key a command touches (for a refusal's message).
/// Whether `cmd` may write, and so takes a revision (in a split keyspace,
/// one drawn from the oracle).
pub(crate) fn writes_revision(cmd: &Command) -> bool {
    matches!(
        cmd.inner(),
        Command::Put(_)
            | Command::DeleteRange(_)
            | Command::Txn(_)
            | Command::LeaseRevoke { .. }
            | Command::Compact { .. }
    )
}

fn first_key(cmd: &Command) -> Vec<u8> {
    match cmd.inner() {
        Command::Put(p) => p.key.clone(),
        Command::DeleteRange(d) => d.key.clone(),
        Command::Txn(t) => t.compare.first().map(|c| c.key.clone()).unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// Whether `registry` lists exactly `conf`'s members, a learner exactly
/// when it does not vote (what following a configuration makes of it).
fn registry_follows(registry: &Registry, conf: &ConfState) -> bool {
    let all = conf.members();
    registry.members().count() == all.len()
        && registry
            .members()
            .all(|m| all.contains(&m.id) && m.is_learner != conf.is_voter(m.id))
}

/// The answer to a write of sequence number `seq`, from how it applied.
fn write_result(applied: Applied, seq: u64) -> Result<ClientResponse, ClientError> {
    match applied {
        Applied::Fresh(r) | Applied::Duplicate(r) => {
            r.map(ClientResponse::Write).map_err(ClientError::Kv)
        }
        Applied::Stale { latest } => Err(ClientError::StaleSequence { seq, latest }),
    }
}

/// A read of `kv` by `auth` (`None`: trusted), its keys checked against
/// the reader's permissions first, as etcd checks a range before serving it.
pub(crate) fn read_as<E: synod_kv::MvccEngine>(
    kv: &synod_kv::KvStore<E>,
    req: &synod_kv::RangeRequest,
    auth: Option<&synod_kv::AuthInfo>,
) -> Result<synod_kv::RangeResponse, synod_kv::KvError> {
    if let Some(info) = auth {
        kv.check_range(info, req)?;
    }
    kv.range(req)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(voters: &[NodeId], learners: &[NodeId]) -> ConfState {
        ConfState {
            voters: voters.iter().copied().collect(),
            learners: learners.iter().copied().collect(),
            ..ConfState::default()
        }
    }

    #[test]
    fn registry_follows_the_configuration_it_applied() {
        let c = conf(&[1, 2, 3], &[4]);
        let mut reg = Registry::default();
        assert!(
            !registry_follows(&reg, &c),
            "an empty registry lists no one"
        );
        reg.apply(&c, &[]);
        assert!(registry_follows(&reg, &c));
        assert!(registry_follows(
            &Registry::default(),
            &ConfState::default()
        ));
    }

    #[test]
    fn registry_that_missed_a_change_does_not_follow() {
        let mut reg = Registry::default();
        reg.apply(&conf(&[1, 2, 3], &[4]), &[]);
        // Promoted, added, removed: each differs from what the registry lists.
        assert!(!registry_follows(&reg, &conf(&[1, 2, 3, 4], &[])));
        assert!(!registry_follows(&reg, &conf(&[1, 2, 3, 5], &[4])));
        assert!(!registry_follows(&reg, &conf(&[1, 2], &[4])));
        // In a joint configuration an outgoing voter still votes.
        let joint = ConfState {
            voters: [1, 2].into_iter().collect(),
            voters_outgoing: [1, 2, 3].into_iter().collect(),
            learners: [4].into_iter().collect(),
            ..ConfState::default()
        };
        assert!(registry_follows(&reg, &joint));
    }
}
