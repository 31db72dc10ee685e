//! The Raft state machine for one group: roles, elections, replication,
//! commitment, reads, snapshots, membership and leadership transfer.

use std::collections::{BTreeMap, VecDeque};

use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;

use crate::confchange::next_conf;
use crate::log::RaftLog;
use crate::tracker::{
    committed_index, has_quorum, vote_result, Progress, ProgressState, VoteResult,
};
use crate::types::*;

/// Most reads waiting for confirmation at a leader.
pub const MAX_PENDING_READS: usize = 4096;
/// Most entries accepted in one append message.
pub const MAX_ENTRIES_PER_MSG: usize = 1 << 16;
/// Largest snapshot a follower will reassemble.
pub const MAX_SNAPSHOT_BYTES: u64 = 1 << 32;
/// Heartbeat rounds remembered for lease computation.
const MAX_ROUNDS: usize = 1024;

/// Everything the owner must do after a step: persist, send, apply.
///
/// Order: (1) persist `snapshot`, then `entries` (dropping any persisted entry at
/// an index >= `entries[0].index`), then `hard_state`; (2) only then send
/// `messages`; (3) apply `snapshot` and `committed_entries` in order and serve
/// `read_states` once applied; (4) call [`Raft::advance`] with `token`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub struct Ready {
    /// New (role, leader) when changed.
    pub soft_state: Option<(Role, NodeId)>,
    /// New hard state to persist, when changed.
    pub hard_state: Option<HardState>,
    /// Entries to persist; may overwrite a persisted suffix.
    pub entries: Vec<Entry>,
    /// A complete snapshot received from the leader: persist and apply.
    pub snapshot: Option<Snapshot>,
    /// Send only once the above is durable.
    pub messages: Vec<Message>,
    /// Apply in order. `ConfChange` entries take effect inside Raft on
    /// `advance`; the application may skip them (or record membership).
    pub committed_entries: Vec<Entry>,
    /// Reads that may be served once the applied index reaches theirs.
    pub read_states: Vec<ReadState>,
    /// A follower needs a snapshot and Raft holds no image of its current
    /// snapshot (with [`Config::lazy_snapshot_data`], the usual case; without,
    /// when its log starts from a snapshot it was never handed the image
    /// of). Take one at the applied index and hand it over with
    /// [`Raft::compact`] after `advance`; Raft asks again at the next
    /// heartbeat if it still has none.
    pub snapshot_wanted: bool,
    /// Whether the persisted part must be made durable before `messages`
    /// go out: new entries, a snapshot, or a new term or vote. A hard state
    /// whose only change is the commit index may be written without a sync
    /// (the commit index is learned again after a restart), as etcd does.
    pub must_sync: bool,
    /// Pass to [`Raft::advance`].
    pub token: ReadyToken,
}

/// What a [`Ready`] handed out, to acknowledge with [`Raft::advance`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadyToken {
    last_entry: Option<(u64, u64)>,
    committed_to: u64,
}

impl ReadyToken {
    /// The owner applied the Ready's committed entries only up to `index`
    /// (it bounds the work of one Ready): the rest stay unapplied, and the
    /// next Ready hands them out again. `index` is at most what this Ready
    /// handed out, and at least what was applied before it.
    pub fn applied_to(&mut self, index: u64) {
        assert!(
            index <= self.committed_to,
            "applied to {index}, past the {} handed out",
            self.committed_to
        );
        self.committed_to = index;
    }
}

#[derive(Clone, Debug)]
struct PendingRead {
    from: NodeId,
    ctx: u64,
    index: u64,
    round: u64,
}

#[derive(Clone, Debug)]
struct SnapshotAssembly {
    meta: SnapshotMeta,
    data: Vec<u8>,
}

/// One member of a Raft group, as a deterministic state machine.
#[derive(Clone, Debug)]
pub struct Raft {
    cfg: Config,
    term: u64,
    vote: NodeId,
    role: Role,
    leader: NodeId,
    log: RaftLog,
    conf: ConfState,
    /// Index of the entry (or snapshot) that produced `conf`.
    conf_index: u64,
    /// (index, configuration) for every configuration since the snapshot,
    /// ascending; the first entry is the one in force at the snapshot.
    conf_history: Vec<(u64, ConfState)>,
    applied: u64,
    prs: BTreeMap<NodeId, Progress>,
    votes: BTreeMap<NodeId, bool>,
    election_elapsed: u32,
    heartbeat_elapsed: u32,
    randomized_timeout: u32,
    /// After a restart: behave as if a leader was heard, for one election timeout.
    restart_guard: bool,
    rng: Pcg64Mcg,
    ticks: u64,
    msgs: Vec<Message>,
    read_states: Vec<ReadState>,
    lead_transferee: NodeId,
    transfer_sent: bool,
    pending_conf_index: u64,
    uncommitted_bytes: u64,
    pending_bcast: bool,
    read_seq: u64,
    read_round_needed: bool,
    rounds: VecDeque<(u64, u64)>,
    pending_reads: VecDeque<PendingRead>,
    reads_waiting_commit: VecDeque<(NodeId, u64)>,
    snapshot: Option<Snapshot>,
    assembly: Option<SnapshotAssembly>,
    pending_snapshot: Option<Snapshot>,
    /// Lazy mode: a transfer could not start for want of an image.
    snapshot_wanted: bool,
    prev_soft: (Role, NodeId),
    prev_hard: HardState,
    outstanding: bool,
}

impl Raft {
    /// Creates a member from its configuration and initial state.
    pub fn new(cfg: Config, init: Init) -> Result<Raft, ConfigError> {
        validate_config(&cfg)?;
        let mut r = Raft {
            rng: Pcg64Mcg::seed_from_u64(cfg.seed),
            cfg,
            term: 0,
            vote: NONE,
            role: Role::Follower,
            leader: NONE,
            log: RaftLog::new(0, 0),
            conf: ConfState::default(),
            conf_index: 0,
            conf_history: vec![(0, ConfState::default())],
            applied: 0,
            prs: BTreeMap::new(),
            votes: BTreeMap::new(),
            election_elapsed: 0,
            heartbeat_elapsed: 0,
            randomized_timeout: 0,
            restart_guard: false,
            ticks: 0,
            msgs: Vec::new(),
            read_states: Vec::new(),
            lead_transferee: NONE,
            transfer_sent: false,
            pending_conf_index: 0,
            uncommitted_bytes: 0,
            pending_bcast: false,
            read_seq: 0,
            read_round_needed: false,
            rounds: VecDeque::new(),
            pending_reads: VecDeque::new(),
            reads_waiting_commit: VecDeque::new(),
            snapshot: None,
            assembly: None,
            pending_snapshot: None,
            snapshot_wanted: false,
            prev_soft: (Role::Follower, NONE),
            prev_hard: HardState::default(),
            outstanding: false,
        };
        match init {
            Init::Bootstrap { voters, learners } => {
                // The initial configuration is the log's first entry (term 1),
                // so a member joining later learns it by replication.
                if voters.iter().chain(&learners).any(|&id| id == NONE) {
                    return Err(ConfigError::Invalid("member id 0"));
                }
                if learners.iter().any(|l| voters.contains(l)) {
                    return Err(ConfigError::Invalid("a learner is also a voter"));
                }
                if voters.len() + learners.len() > MAX_CONF_CHANGES {
                    return Err(ConfigError::Invalid("too many initial members"));
                }
                if !voters.is_empty() {
                    let mut changes: Vec<ConfChangeSingle> = voters
                        .iter()
                        .map(|&v| ConfChangeSingle::AddVoter(v))
                        .collect();
                    changes.extend(learners.iter().map(|&l| ConfChangeSingle::AddLearner(l)));
                    let cc = ConfChange {
                        changes,
                        transition: ConfChangeTransition::Auto,
                    };
                    r.term = 1;
                    r.log.stable_to = 0;
                    r.log.append_new(Entry {
                        term: 1,
                        index: 1,
                        kind: EntryKind::ConfChange,
                        data: cc.encode(),
                    });
                    r.log.commit = 1;
                    // In force at once (the entry still goes out to be persisted and applied).
                    let cs = next_conf(&ConfState::default(), &cc).map_err(ConfigError::Invalid)?;
                    r.set_conf(1, cs);
                } else if !learners.is_empty() {
                    return Err(ConfigError::Invalid("learners without voters"));
                }
            }
            Init::Restore {
                hard_state,
                snapshot,
                entries,
            } => {
                let meta = snapshot.unwrap_or_default();
                let mut prev = (meta.index, meta.term);
                for e in &entries {
                    if e.index != prev.0 + 1 || e.term < prev.1 || e.term > hard_state.term {
                        return Err(ConfigError::BadRestore(
                            "entries not contiguous after the snapshot",
                        ));
                    }
                    prev = (e.index, e.term);
                }
                if meta.term > hard_state.term {
                    return Err(ConfigError::BadRestore("snapshot term beyond hard state"));
                }
                r.log = RaftLog::new(meta.index, meta.term);
                r.log.load(entries);
                if hard_state.commit > r.log.last_index() {
                    return Err(ConfigError::BadRestore("commit beyond the log"));
                }
                r.log.commit = hard_state.commit.max(meta.index);
                let applied = if r.cfg.applied == 0 {
                    meta.index
                } else {
                    r.cfg.applied
                };
                if applied < meta.index || applied > r.log.commit {
                    return Err(ConfigError::BadRestore(
                        "applied outside [snapshot, commit]",
                    ));
                }
                r.term = hard_state.term;
                r.vote = hard_state.vote;
                r.conf_history.clear();
                r.set_conf(meta.index, meta.conf_state.clone());
                r.applied = meta.index;
                r.apply_conf_changes_to(applied);
                r.applied = applied;
                r.prev_hard = r.hard_state();
                r.restart_guard = true;
            }
        }
        r.reset_randomized_timeout();
        Ok(r)
    }

    // ----- accessors -------------------------------------------------------

    /// This member's id.
    pub fn id(&self) -> NodeId {
        self.cfg.id
    }
    /// Current term.
    pub fn term(&self) -> u64 {
        self.term
    }
    /// Current role.
    pub fn role(&self) -> Role {
        self.role
    }
    /// Known leader (0 = none).
    pub fn leader(&self) -> NodeId {
        self.leader
    }
    /// Commit index.
    pub fn commit(&self) -> u64 {
        self.log.commit
    }
    /// Vote in the current term (0 = none).
    pub fn vote(&self) -> NodeId {
        self.vote
    }
    /// Highest index handed out for applying and acknowledged by `advance`.
    pub fn applied(&self) -> u64 {
        self.applied
    }
    /// Index of the last entry.
    pub fn last_index(&self) -> u64 {
        self.log.last_index()
    }
    /// Index of the first entry kept (the snapshot's index + 1).
    pub fn first_index(&self) -> u64 {
        self.log.first_index()
    }
    /// The entry at `index`, if kept.
    pub fn entry(&self, index: u64) -> Option<&Entry> {
        self.log.entry(index)
    }
    /// Term of the entry at `index` (known from the snapshot's index on).
    pub fn term_at(&self, index: u64) -> Option<u64> {
        self.log.term(index)
    }
    /// The configuration in force (changes take effect when applied).
    pub fn conf_state(&self) -> &ConfState {
        &self.conf
    }
    /// The persistent state as it is now.
    pub fn hard_state(&self) -> HardState {
        HardState {
            term: self.term,
            vote: self.vote,
            commit: self.log.commit,
        }
    }
    /// Leader only: (match, next, state) of a peer's replication.
    pub fn progress(&self, id: NodeId) -> Option<(u64, u64, ProgressState)> {
        self.prs.get(&id).map(|p| (p.matched, p.next, p.state))
    }
    /// The leadership transfer target, if any.
    pub fn lead_transferee(&self) -> NodeId {
        self.lead_transferee
    }
    /// Whether this leader's lease currently holds (LeaseBased reads).
    pub fn lease_valid(&self) -> bool {
        if self.role != Role::Leader
            || !self.cfg.check_quorum
            || self.cfg.read_only != ReadOnlyOption::LeaseBased
            || self.transfer_sent
            || self.lead_transferee != NONE
        {
            return false;
        }
        let acked = self.quorum_read_ack();
        let sent = match self.rounds.iter().find(|(r, _)| *r == acked) {
            Some(&(_, t)) => t,
            None => return false,
        };
        let span = u64::from(self.cfg.election_tick - self.cfg.lease_drift_ticks);
        self.ticks < sent + span
    }

    /// Whether this member is a learner in the configuration in force.
    pub fn is_learner(&self) -> bool {
        self.conf.learners.contains(&self.cfg.id) && !self.conf.is_voter(self.cfg.id)
    }

    fn promotable(&self) -> bool {
        self.conf.is_voter(self.cfg.id)
    }

    // ----- driving ---------------------------------------------------------

    /// Advances logical time by one tick.
    pub fn tick(&mut self) {
        self.tick_inner();
        self.release_snapshot_data();
    }

    fn tick_inner(&mut self) {
        self.ticks += 1;
        if self.role == Role::Leader {
            self.tick_leader();
        } else {
            self.election_elapsed = self.election_elapsed.saturating_add(1);
            if self.election_elapsed >= self.cfg.election_tick {
                self.restart_guard = false;
            }
            if self.promotable() && self.election_elapsed >= self.randomized_timeout {
                self.election_elapsed = 0;
                self.hup(false);
            }
        }
    }

    fn tick_leader(&mut self) {
        self.heartbeat_elapsed += 1;
        self.election_elapsed += 1;
        if self.election_elapsed >= self.cfg.election_tick {
            self.election_elapsed = 0;
            if self.cfg.check_quorum {
                let me = self.cfg.id;
                let active =
                    |id: NodeId| id == me || self.prs.get(&id).is_some_and(|p| p.recent_active);
                if !has_quorum(&self.conf, &active) {
                    // Check quorum (thesis §6.2): a leader cut off from a quorum steps down.
                    self.become_follower(self.term, NONE);
                    return;
                }
                for (id, p) in self.prs.iter_mut() {
                    p.recent_active = *id == me;
                }
            }
            if self.lead_transferee != NONE {
                // Thesis §3.10: abort a transfer that did not finish in an election timeout.
                self.lead_transferee = NONE;
            }
        }
        let et = self.cfg.election_tick;
        let mut resend = Vec::new();
        for (&id, p) in self.prs.iter_mut() {
            if let Some(s) = p.snapshot.as_mut() {
                s.idle_ticks += 1;
                // A chunk or the final answer was lost: go again (at most once per election timeout).
                if s.idle_ticks >= et {
                    s.in_flight = false;
                    resend.push(id);
                }
            }
        }
        for id in resend {
            self.send_snapshot_chunk(id);
        }
        if self.heartbeat_elapsed >= self.cfg.heartbeat_tick {
            self.heartbeat_elapsed = 0;
            self.bcast_heartbeat();
        }
    }

    /// Starts an election now (pre-vote first when enabled).
    pub fn campaign(&mut self) {
        self.hup(false);
    }

    fn hup(&mut self, transfer: bool) {
        if self.role == Role::Leader || !self.promotable() {
            return;
        }
        // A committed but unapplied configuration change may remove us: wait for it (etcd does too).
        let unapplied_cc = (self.applied.max(self.conf_index) + 1..=self.log.commit).any(|i| {
            self.log
                .entry(i)
                .is_some_and(|e| e.kind == EntryKind::ConfChange)
        });
        if unapplied_cc {
            return;
        }
        if self.cfg.pre_vote && !transfer {
            self.become_pre_candidate();
        } else {
            self.become_candidate(transfer);
        }
    }

    fn reset(&mut self, term: u64) {
        if term != self.term {
            assert!(term > self.term, "terms never go back");
            self.term = term;
            self.vote = NONE;
        }
        self.leader = NONE;
        self.election_elapsed = 0;
        self.heartbeat_elapsed = 0;
        self.reset_randomized_timeout();
        self.votes.clear();
        self.prs.clear();
        self.lead_transferee = NONE;
        self.transfer_sent = false;
        self.uncommitted_bytes = 0;
        self.pending_bcast = false;
        self.read_round_needed = false;
        self.rounds.clear();
        self.pending_reads.clear();
        self.reads_waiting_commit.clear();
    }

    fn reset_randomized_timeout(&mut self) {
        let et = self.cfg.election_tick;
        self.randomized_timeout = et + self.rng.random_range(0..et);
    }

    fn become_follower(&mut self, term: u64, leader: NodeId) {
        self.reset(term);
        self.role = Role::Follower;
        self.leader = leader;
    }

    fn become_pre_candidate(&mut self) {
        // Thesis §9.6: a pre-vote changes neither term nor vote.
        self.votes.clear();
        self.prs.clear();
        self.leader = NONE;
        self.role = Role::PreCandidate;
        self.election_elapsed = 0;
        self.reset_randomized_timeout();
        self.votes.insert(self.cfg.id, true);
        if vote_result(&self.conf, &self.votes) == VoteResult::Won {
            self.become_candidate(false);
            return;
        }
        let (li, lt) = (self.log.last_index(), self.log.last_term());
        for id in self.conf.members() {
            if id != self.cfg.id && self.conf.is_voter(id) {
                self.send_term(
                    id,
                    self.term + 1,
                    MessageBody::PreVote {
                        last_index: li,
                        last_term: lt,
                    },
                );
            }
        }
    }

    fn become_candidate(&mut self, transfer: bool) {
        // Raft §5.2: increment the term, vote for self, request votes.
        self.reset(self.term + 1);
        self.role = Role::Candidate;
        self.vote = self.cfg.id;
        self.votes.insert(self.cfg.id, true);
        if vote_result(&self.conf, &self.votes) == VoteResult::Won {
            self.become_leader();
            return;
        }
        let (li, lt) = (self.log.last_index(), self.log.last_term());
        for id in self.conf.members() {
            if id != self.cfg.id && self.conf.is_voter(id) {
                self.send(
                    id,
                    MessageBody::Vote {
                        last_index: li,
                        last_term: lt,
                        transfer,
                    },
                );
            }
        }
    }

    fn become_leader(&mut self) {
        assert!(
            self.role != Role::Follower,
            "a follower cannot become leader directly"
        );
        self.reset(self.term);
        self.role = Role::Leader;
        self.leader = self.cfg.id;
        let next = self.log.last_index() + 1;
        for id in self.conf.members() {
            let mut p = Progress::new(next);
            if id == self.cfg.id {
                p.matched = self.log.stable_to;
                p.become_replicate();
                p.next = next;
                p.recent_active = true;
            }
            self.prs.insert(id, p);
        }
        // Conservatively treat any unapplied entry as a pending configuration change.
        self.pending_conf_index = self.log.last_index();
        // Raft §5.4.2 / §8: an entry of the new term lets earlier ones commit.
        self.log.append_new(Entry {
            term: self.term,
            index: next,
            kind: EntryKind::Normal,
            data: Vec::new(),
        });
        self.pending_bcast = true;
    }

    // ----- client operations -----------------------------------------------

    /// Appends application data to the log (leader only). Returns its index.
    pub fn propose(&mut self, data: Vec<u8>) -> Result<u64, ProposeError> {
        self.check_can_propose()?;
        self.append_proposal(EntryKind::Normal, data)
    }

    /// Proposes a membership change (leader only); it takes effect on every
    /// member when the entry is applied (acknowledged through `advance`).
    pub fn propose_conf_change(&mut self, cc: ConfChange) -> Result<u64, ProposeError> {
        self.propose_conf_change_with_context(cc, &[])
    }

    /// [`Raft::propose_conf_change`] with an opaque context of the owner's
    /// stored in the entry beside the change (at most [`MAX_CONF_CONTEXT`] bytes).
    pub fn propose_conf_change_with_context(
        &mut self,
        cc: ConfChange,
        context: &[u8],
    ) -> Result<u64, ProposeError> {
        self.check_can_propose()?;
        if self.pending_conf_index > self.applied {
            return Err(ProposeError::ConfChangePending);
        }
        if context.len() > MAX_CONF_CONTEXT || cc.changes.len() > MAX_CONF_CHANGES {
            return Err(ProposeError::InvalidConfChange(
                "change or context too large",
            ));
        }
        next_conf(&self.conf, &cc).map_err(ProposeError::InvalidConfChange)?;
        let idx = self.append_proposal(EntryKind::ConfChange, cc.encode_with_context(context))?;
        self.pending_conf_index = idx;
        Ok(idx)
    }

    fn check_can_propose(&self) -> Result<(), ProposeError> {
        if self.role != Role::Leader {
            return Err(ProposeError::NotLeader {
                leader: self.leader,
            });
        }
        if self.lead_transferee != NONE {
            return Err(ProposeError::TransferInProgress);
        }
        Ok(())
    }

    fn append_proposal(&mut self, kind: EntryKind, data: Vec<u8>) -> Result<u64, ProposeError> {
        let e = Entry {
            term: self.term,
            index: self.log.last_index() + 1,
            kind,
            data,
        };
        let size = e.size();
        if self.uncommitted_bytes > 0
            && self.uncommitted_bytes + size > self.cfg.max_uncommitted_bytes
        {
            return Err(ProposeError::TooManyUncommitted);
        }
        self.uncommitted_bytes += size;
        let idx = e.index;
        self.log.append_new(e);
        // Batching: everything proposed before the next Ready goes out together.
        self.pending_bcast = true;
        Ok(idx)
    }

    /// Requests a linearizable read; a [`ReadState`] with `ctx` appears in a
    /// later Ready. Followers forward to the leader. Reads pending when the
    /// leader changes are dropped: the owner retries after a timeout.
    pub fn read_index(&mut self, ctx: u64) -> Result<(), ReadError> {
        if self.role == Role::Leader {
            self.leader_read(self.cfg.id, ctx)
        } else if self.leader == NONE {
            Err(ReadError::NoLeader)
        } else {
            self.send(self.leader, MessageBody::ReadIndex { ctx });
            Ok(())
        }
    }

    fn leader_read(&mut self, from: NodeId, ctx: u64) -> Result<(), ReadError> {
        if self.lead_transferee != NONE {
            return Err(ReadError::TransferInProgress);
        }
        if self.pending_reads.len() + self.reads_waiting_commit.len() >= MAX_PENDING_READS {
            return Err(ReadError::TooManyPending);
        }
        // Thesis §6.4: the leader must first commit an entry of its own term.
        if self.log.term(self.log.commit) != Some(self.term) {
            self.reads_waiting_commit.push_back((from, ctx));
            return Ok(());
        }
        let index = self.log.commit;
        let solo = !self.conf.is_joint()
            && self.conf.voters.len() == 1
            && self.conf.voters.contains(&self.cfg.id);
        if solo || self.lease_valid() {
            self.deliver_read(from, ctx, index);
        } else {
            self.pending_reads.push_back(PendingRead {
                from,
                ctx,
                index,
                round: self.read_seq + 1,
            });
            self.read_round_needed = true;
        }
        Ok(())
    }

    fn deliver_read(&mut self, from: NodeId, ctx: u64, index: u64) {
        if from == self.cfg.id {
            self.read_states.push(ReadState { ctx, index });
        } else {
            self.send(
                from,
                MessageBody::ReadIndexResponse {
                    ctx,
                    index: Some(index),
                },
            );
        }
    }

    fn quorum_read_ack(&self) -> u64 {
        let me = self.cfg.id;
        let seq = self.read_seq;
        committed_index(&self.conf, &|id| {
            if id == me {
                seq
            } else {
                self.prs.get(&id).map_or(0, |p| p.read_ack)
            }
        })
    }

    fn release_reads(&mut self) {
        let acked = self.quorum_read_ack();
        while self.pending_reads.front().is_some_and(|r| r.round <= acked) {
            let r = self.pending_reads.pop_front().expect("checked non-empty");
            self.deliver_read(r.from, r.ctx, r.index);
        }
    }

    /// Starts handing leadership to `to` (leader only; otherwise ignored).
    pub fn transfer_leader(&mut self, to: NodeId) {
        if self.role != Role::Leader || to == self.cfg.id || !self.conf.is_voter(to) {
            return;
        }
        if self.lead_transferee == to {
            return;
        }
        self.lead_transferee = to;
        self.transfer_sent = false;
        self.election_elapsed = 0;
        let caught_up = self
            .prs
            .get(&to)
            .is_some_and(|p| p.matched == self.log.last_index());
        if caught_up {
            self.send_timeout_now(to);
        } else {
            self.send_append(to, true);
        }
    }

    fn send_timeout_now(&mut self, to: NodeId) {
        if !self.transfer_sent {
            self.transfer_sent = true;
            self.send(to, MessageBody::TimeoutNow);
        }
    }

    /// Records a snapshot the owner took at an applied index and drops the
    /// log up to it. Lagging followers are sent this snapshot. After a restart
    /// call it once with the persisted snapshot so it can be sent. With
    /// [`Config::lazy_snapshot_data`] the image is kept only while a transfer
    /// uses it, and the transfers that waited for it start now; compacting
    /// again at the current snapshot's index (to supply its image) is accepted.
    pub fn compact(&mut self, snapshot: Snapshot) -> Result<(), CompactError> {
        self.compact_to(&snapshot.meta)?;
        self.snapshot = Some(snapshot);
        if self.cfg.lazy_snapshot_data && self.role == Role::Leader {
            let me = self.cfg.id;
            let waiting: Vec<NodeId> = self
                .prs
                .iter()
                .filter(|(&id, p)| {
                    id != me
                        && p.state != ProgressState::Snapshot
                        && self.log.term(p.next.saturating_sub(1)).is_none()
                })
                .map(|(&id, _)| id)
                .collect();
            for id in waiting {
                self.start_snapshot(id);
            }
        }
        self.release_snapshot_data();
        Ok(())
    }

    /// Like [`Raft::compact`] without an image: only with
    /// [`Config::lazy_snapshot_data`], which asks for one when a follower
    /// needs it. A transfer in progress keeps the image it started with.
    pub fn compact_log(&mut self, meta: SnapshotMeta) -> Result<(), CompactError> {
        if !self.cfg.lazy_snapshot_data {
            return Err(CompactError::NoImage);
        }
        self.compact_to(&meta)?;
        self.release_snapshot_data();
        Ok(())
    }

    fn compact_to(&mut self, meta: &SnapshotMeta) -> Result<(), CompactError> {
        let idx = meta.index;
        if idx > self.applied {
            return Err(CompactError::NotApplied {
                index: idx,
                applied: self.applied,
            });
        }
        if idx < self.log.snap_index() {
            return Err(CompactError::Stale(idx));
        }
        if self.log.term(idx) != Some(meta.term) {
            return Err(CompactError::TermMismatch);
        }
        if self.conf_at(idx) != Some(&meta.conf_state) {
            return Err(CompactError::ConfMismatch);
        }
        self.log.compact(idx, meta.term);
        // Keep the configuration in force at the snapshot and everything after.
        let keep_from = self
            .conf_history
            .iter()
            .rposition(|(i, _)| *i <= idx)
            .unwrap_or(0);
        self.conf_history.drain(..keep_from);
        Ok(())
    }

    /// Index of the snapshot image held for sending, if any.
    pub fn snapshot_image_index(&self) -> Option<u64> {
        self.snapshot.as_ref().map(|s| s.meta.index)
    }

    /// Lazy mode: drop the image once no transfer uses it (a follower
    /// installs a snapshot only from chunks of one image, so it stays while
    /// any follower is in the snapshot state).
    fn release_snapshot_data(&mut self) {
        if !self.cfg.lazy_snapshot_data {
            return;
        }
        let leading = self.role == Role::Leader;
        if !leading {
            self.snapshot_wanted = false;
        }
        let sending = leading
            && self
                .prs
                .values()
                .any(|p| p.state == ProgressState::Snapshot);
        if !sending {
            self.snapshot = None;
        }
    }

    // ----- Ready -----------------------------------------------------------

    fn flush(&mut self) {
        if self.role != Role::Leader {
            return;
        }
        if self.pending_bcast {
            self.pending_bcast = false;
            self.bcast_append();
        }
        if self.read_round_needed {
            self.bcast_heartbeat();
        }
    }

    fn soft(&self) -> (Role, NodeId) {
        (self.role, self.leader)
    }

    fn next_committed(&self) -> u64 {
        self.applied.max(self.log.snap_index())
    }

    /// Whether [`Raft::ready`] has anything. False while a Ready is not yet advanced.
    pub fn has_ready(&self) -> bool {
        if self.outstanding {
            return false;
        }
        (self.role == Role::Leader && (self.pending_bcast || self.read_round_needed))
            || self.soft() != self.prev_soft
            || self.hard_state() != self.prev_hard
            || !self.log.unstable().is_empty()
            || self.pending_snapshot.is_some()
            || self.snapshot_wanted
            || !self.msgs.is_empty()
            || self.log.commit > self.next_committed()
            || !self.read_states.is_empty()
    }

    /// Collects what to persist, send and apply. Call [`Raft::advance`] before the next `ready`.
    pub fn ready(&mut self) -> Ready {
        assert!(
            !self.outstanding,
            "ready() called before advance() of the previous Ready"
        );
        self.flush();
        let soft = self.soft();
        let soft_state = (soft != self.prev_soft).then_some(soft);
        self.prev_soft = soft;
        let hs = self.hard_state();
        let hard_state = (hs != self.prev_hard).then_some(hs);
        let vote_changed = hs.term != self.prev_hard.term || hs.vote != self.prev_hard.vote;
        self.prev_hard = hs;
        let entries = self.log.unstable().to_vec();
        let last_entry = entries.last().map(|e| (e.index, e.term));
        self.log.handed_out();
        let mut committed_entries = Vec::new();
        let from = self.next_committed() + 1;
        let mut bytes = 0u64;
        let mut i = from;
        while i <= self.log.commit {
            let e = self
                .log
                .entry(i)
                .expect("committed entries after the snapshot are kept");
            bytes += e.size();
            if !committed_entries.is_empty() && bytes > self.cfg.max_msg_bytes {
                break;
            }
            committed_entries.push(e.clone());
            i += 1;
        }
        let committed_to = committed_entries
            .last()
            .map_or(self.next_committed(), |e| e.index);
        self.outstanding = true;
        let snapshot = self.pending_snapshot.take();
        let must_sync = vote_changed || !entries.is_empty() || snapshot.is_some();
        Ready {
            soft_state,
            hard_state,
            entries,
            snapshot,
            must_sync,
            messages: std::mem::take(&mut self.msgs),
            committed_entries,
            read_states: std::mem::take(&mut self.read_states),
            snapshot_wanted: std::mem::take(&mut self.snapshot_wanted),
            token: ReadyToken {
                last_entry,
                committed_to,
            },
        }
    }

    /// The Ready with this token is durable and its committed entries applied.
    /// Committed configuration changes take effect here.
    pub fn advance(&mut self, token: ReadyToken) {
        assert!(self.outstanding, "advance() without ready()");
        self.outstanding = false;
        if let Some((i, t)) = token.last_entry {
            self.log.stable_to(i, t);
        }
        assert!(
            token.committed_to >= self.applied,
            "the applied index went back from {} to {}",
            self.applied,
            token.committed_to
        );
        if token.committed_to > self.applied {
            self.apply_conf_changes_to(token.committed_to);
            self.applied = token.committed_to;
        }
        if self.role == Role::Leader {
            let me = self.cfg.id;
            let stable = self.log.stable_to;
            if let Some(p) = self.prs.get_mut(&me) {
                p.maybe_update(stable);
            }
            if self.maybe_commit() {
                self.pending_bcast = true;
            }
            self.maybe_auto_leave();
        }
        // An applied change may have removed the follower being sent a snapshot.
        self.release_snapshot_data();
    }

    /// Thesis §4.3: once a joint configuration with `auto_leave` is applied (and
    /// nothing else is pending), the leader proposes leaving it. This also covers a
    /// leader elected while the group is joint.
    fn maybe_auto_leave(&mut self) {
        if !(self.conf.is_joint() && self.conf.auto_leave) || self.pending_conf_index > self.applied
        {
            return;
        }
        // Not subject to size limits or transfers: the group must not stay joint.
        let e = Entry {
            term: self.term,
            index: self.log.last_index() + 1,
            kind: EntryKind::ConfChange,
            data: ConfChange::default().encode(),
        };
        self.pending_conf_index = e.index;
        self.log.append_new(e);
        self.pending_bcast = true;
    }

    fn apply_conf_changes_to(&mut self, to: u64) {
        let from = self.applied.max(self.conf_index) + 1;
        for i in from..=to {
            let Some(e) = self.log.entry(i) else { continue };
            if e.kind != EntryKind::ConfChange {
                continue;
            }
            // Invalid changes are no-ops on every member alike.
            let Ok(cc) = ConfChange::decode(&e.data) else {
                continue;
            };
            let Ok(next) = next_conf(&self.conf, &cc) else {
                continue;
            };
            self.set_conf(i, next);
            self.on_conf_applied();
        }
    }

    fn set_conf(&mut self, index: u64, cs: ConfState) {
        assert!(
            self.conf_history.last().is_none_or(|(i, _)| *i <= index),
            "configurations are applied in log order"
        );
        self.conf = cs.clone();
        self.conf_index = index;
        self.conf_history.push((index, cs));
    }

    /// The configuration in force at `index` (known from the snapshot on).
    fn conf_at(&self, index: u64) -> Option<&ConfState> {
        self.conf_history
            .iter()
            .rev()
            .find(|(i, _)| *i <= index)
            .map(|(_, cs)| cs)
    }

    fn on_conf_applied(&mut self) {
        if self.role != Role::Leader {
            return;
        }
        if !self.conf.is_voter(self.cfg.id) {
            // A removed or demoted leader steps down once the change is applied.
            self.become_follower(self.term, NONE);
            return;
        }
        let members = self.conf.members();
        self.prs.retain(|id, _| members.contains(id));
        let next = self.log.last_index() + 1;
        for id in members {
            self.prs.entry(id).or_insert_with(|| Progress::new(next));
        }
        if self.lead_transferee != NONE && !self.conf.is_voter(self.lead_transferee) {
            self.lead_transferee = NONE;
        }
        self.maybe_commit();
        self.pending_bcast = true;
    }

    // ----- sending ---------------------------------------------------------

    fn send(&mut self, to: NodeId, body: MessageBody) {
        self.send_term(to, self.term, body);
    }

    fn send_term(&mut self, to: NodeId, term: u64, body: MessageBody) {
        self.msgs.push(Message {
            from: self.cfg.id,
            to,
            term,
            body,
        });
    }

    fn bcast_append(&mut self) {
        let peers: Vec<NodeId> = self
            .prs
            .keys()
            .copied()
            .filter(|&id| id != self.cfg.id)
            .collect();
        for id in peers {
            let mut first = true;
            // Split what is new into messages of at most max_msg_bytes, bounded by the window.
            while self.send_append(id, first) {
                first = false;
            }
        }
    }

    /// Sends entries (or a probe, or a snapshot) to `to`. Returns whether entries went out.
    fn send_append(&mut self, to: NodeId, send_if_empty: bool) -> bool {
        let max_inflight = self.cfg.max_inflight_msgs;
        let Some(pr) = self.prs.get(&to) else {
            return false;
        };
        if pr.is_paused(max_inflight) {
            return false;
        }
        let prev = pr.next - 1;
        let Some(prev_term) = self.log.term(prev) else {
            self.start_snapshot(to);
            return false;
        };
        let last = self.log.last_index();
        let entries = if pr.next <= last {
            self.log.slice(pr.next, last, self.cfg.max_msg_bytes)
        } else {
            Vec::new()
        };
        if entries.is_empty() && !send_if_empty {
            return false;
        }
        let n = entries.len();
        let sent_last = entries.last().map_or(prev, |e| e.index);
        let commit = self.log.commit;
        self.prs
            .get_mut(&to)
            .expect("checked above")
            .sent(sent_last, n, max_inflight);
        self.send(
            to,
            MessageBody::Append {
                index: prev,
                log_term: prev_term,
                entries,
                commit,
            },
        );
        n > 0
    }

    fn start_snapshot(&mut self, to: NodeId) {
        let lazy = self.cfg.lazy_snapshot_data;
        let idx = match self.snapshot.as_ref().map(|s| s.meta.index) {
            // Lazy mode holds an older image only for a transfer in progress.
            Some(i) if !lazy || i == self.log.snap_index() => i,
            _ => {
                // The owner has not handed us the snapshot data (see `compact`):
                // cannot help yet; ask for it. In lazy mode it is never held
                // unasked; otherwise it is missing when the log starts from
                // a snapshot whose image the owner kept (a group created
                // from a split's image), until the owner compacts again.
                self.snapshot_wanted = true;
                return;
            }
        };
        self.prs
            .get_mut(&to)
            .expect("caller checked")
            .become_snapshot(idx);
        self.send_snapshot_chunk(to);
    }

    fn send_snapshot_chunk(&mut self, to: NodeId) {
        let Some(snap) = self.snapshot.as_ref() else {
            return;
        };
        let Some(pr) = self.prs.get_mut(&to) else {
            return;
        };
        let Some(s) = pr.snapshot.as_mut() else {
            return;
        };
        if s.in_flight {
            return;
        }
        if s.index != snap.meta.index {
            s.index = snap.meta.index;
            s.offset = 0;
        }
        let len = snap.data.len() as u64;
        if s.offset > len || (s.offset == len && len > 0) {
            s.offset = 0;
        }
        let end = (s.offset + self.cfg.snapshot_chunk_bytes).min(len);
        let msg = MessageBody::SnapshotChunk {
            meta: snap.meta.clone(),
            offset: s.offset,
            data: snap.data[s.offset as usize..end as usize].to_vec(),
            done: end == len,
        };
        s.in_flight = true;
        s.idle_ticks = 0;
        self.send(to, msg);
    }

    fn bcast_heartbeat(&mut self) {
        self.read_seq += 1;
        self.read_round_needed = false;
        self.rounds.push_back((self.read_seq, self.ticks));
        while self.rounds.len() > MAX_ROUNDS {
            self.rounds.pop_front();
        }
        let ctx = self.read_seq;
        let commit = self.log.commit;
        let peers: Vec<(NodeId, u64)> = self
            .prs
            .iter()
            .filter(|(&id, _)| id != self.cfg.id)
            .map(|(&id, p)| (id, p.matched))
            .collect();
        for (id, matched) in peers {
            self.send(
                id,
                MessageBody::Heartbeat {
                    commit: commit.min(matched),
                    ctx,
                },
            );
        }
        self.release_reads();
    }

    // ----- commit ----------------------------------------------------------

    fn maybe_commit(&mut self) -> bool {
        let q = committed_index(&self.conf, &|id| self.prs.get(&id).map_or(0, |p| p.matched));
        if q <= self.log.commit {
            return false;
        }
        let old_term_by_counting =
            self.cfg.planted_bug == Some(PlantedBug::CommitOldTermByCounting);
        // Raft §5.4.2 (figure 8): only entries of the current term commit by counting replicas.
        if !old_term_by_counting && self.log.term(q) != Some(self.term) {
            return false;
        }
        let old = self.log.commit;
        self.log.commit_to(q);
        for i in old + 1..=q {
            let e = self.log.entry(i).expect("newly committed entries are kept");
            if e.term == self.term {
                self.uncommitted_bytes = self.uncommitted_bytes.saturating_sub(e.size());
            }
        }
        if self.log.term(q) == Some(self.term) {
            let waiting: Vec<_> = self.reads_waiting_commit.drain(..).collect();
            for (from, ctx) in waiting {
                if self.leader_read(from, ctx).is_err() && from != self.cfg.id {
                    self.send(from, MessageBody::ReadIndexResponse { ctx, index: None });
                }
            }
        }
        true
    }

    // ----- receiving -------------------------------------------------------

    /// Processes a message from a peer. Stale or invalid messages are typed errors.
    pub fn step(&mut self, m: Message) -> Result<(), StepError> {
        let r = self.step_inner(m);
        self.release_snapshot_data();
        r
    }

    fn step_inner(&mut self, m: Message) -> Result<(), StepError> {
        if m.to != self.cfg.id || m.from == self.cfg.id || m.from == NONE {
            return Err(StepError::Misaddressed {
                from: m.from,
                to: m.to,
            });
        }
        validate_message(&m)?;
        if m.term > self.term {
            let is_vote = matches!(
                m.body,
                MessageBody::Vote { .. } | MessageBody::PreVote { .. }
            );
            let transfer = matches!(m.body, MessageBody::Vote { transfer: true, .. });
            if is_vote && !transfer && self.in_leader_lease() {
                // Thesis §4.2.3 / §9.6: a member that hears from a current leader
                // ignores (pre-)votes within the minimum election timeout.
                return Ok(());
            }
            match m.body {
                MessageBody::PreVote { .. } => {}
                MessageBody::PreVoteResponse { reject: false } => {}
                MessageBody::Append { .. }
                | MessageBody::Heartbeat { .. }
                | MessageBody::SnapshotChunk { .. } => self.become_follower(m.term, m.from),
                _ => {
                    // Raft §5.2: only a leader's message or a granted vote restarts the
                    // election timer; a newer term alone does not, so a member that keeps
                    // campaigning (say, removed without knowing it) cannot hold off elections.
                    let elapsed = self.election_elapsed;
                    self.become_follower(m.term, NONE);
                    self.election_elapsed = elapsed;
                }
            }
        } else if m.term < self.term {
            match m.body {
                MessageBody::Append { .. }
                | MessageBody::Heartbeat { .. }
                | MessageBody::SnapshotChunk { .. } => {
                    // Tell a stale leader about the newer term so it steps down. Needed
                    // for liveness: a member whose term moved on but who cannot win an
                    // election itself (e.g. a new member with no configuration yet) would
                    // otherwise never hear from the group again.
                    self.send(
                        m.from,
                        MessageBody::AppendResponse {
                            index: 0,
                            reject: false,
                            reject_hint: 0,
                            hint_term: 0,
                        },
                    );
                }
                MessageBody::PreVote { .. } => {
                    self.send(m.from, MessageBody::PreVoteResponse { reject: true });
                }
                _ => {}
            }
            return Err(StepError::StaleTerm {
                msg_term: m.term,
                term: self.term,
            });
        }
        match m.body {
            MessageBody::Vote {
                last_index,
                last_term,
                ..
            } => {
                self.handle_vote(m.from, m.term, last_index, last_term, false);
                Ok(())
            }
            MessageBody::PreVote {
                last_index,
                last_term,
            } => {
                self.handle_vote(m.from, m.term, last_index, last_term, true);
                Ok(())
            }
            MessageBody::VoteResponse { .. } | MessageBody::PreVoteResponse { .. }
                if self.role == Role::Leader || self.role == Role::Follower =>
            {
                // Late answers from an election already decided.
                Ok(())
            }
            MessageBody::AppendResponse { .. }
            | MessageBody::HeartbeatResponse { .. }
            | MessageBody::SnapshotResponse { .. }
                if self.role != Role::Leader =>
            {
                // Late answers to a leadership that is over.
                Ok(())
            }
            _ => match self.role {
                Role::Leader => self.step_leader(m),
                Role::Candidate | Role::PreCandidate => self.step_candidate(m),
                Role::Follower => self.step_follower(m),
            },
        }
    }

    fn in_leader_lease(&self) -> bool {
        self.cfg.check_quorum
            && (self.leader != NONE || self.restart_guard)
            && self.election_elapsed < self.cfg.election_tick
    }

    fn handle_vote(&mut self, from: NodeId, term: u64, last_index: u64, last_term: u64, pre: bool) {
        // Raft §5.2: one vote per term; §5.4.1: only for an up-to-date log.
        let can_vote = self.vote == from
            || (self.vote == NONE && self.leader == NONE)
            || (pre && term > self.term);
        let skip_check = self.cfg.planted_bug == Some(PlantedBug::VoteWithoutLogCheck);
        let up_to_date = skip_check || self.log.is_up_to_date(last_index, last_term);
        if can_vote && up_to_date {
            if pre {
                self.send_term(from, term, MessageBody::PreVoteResponse { reject: false });
            } else {
                self.vote = from;
                self.election_elapsed = 0;
                self.send(from, MessageBody::VoteResponse { reject: false });
            }
        } else if pre {
            self.send(from, MessageBody::PreVoteResponse { reject: true });
        } else {
            self.send(from, MessageBody::VoteResponse { reject: true });
        }
    }

    fn step_candidate(&mut self, m: Message) -> Result<(), StepError> {
        match m.body {
            MessageBody::Append { .. }
            | MessageBody::Heartbeat { .. }
            | MessageBody::SnapshotChunk { .. } => {
                // Raft §5.2: a candidate that hears from a leader of its term steps down.
                self.become_follower(self.term, m.from);
                self.step_follower(m)
            }
            MessageBody::VoteResponse { reject } if self.role == Role::Candidate => {
                self.poll(m.from, !reject);
                Ok(())
            }
            MessageBody::PreVoteResponse { reject } if self.role == Role::PreCandidate => {
                // Granted answers carry term+1; rejections with a higher term stepped us down above.
                if !reject && m.term != self.term + 1 {
                    return Err(StepError::Unexpected("pre-vote answer for another term"));
                }
                self.poll(m.from, !reject);
                Ok(())
            }
            MessageBody::ReadIndex { ctx } => {
                self.send(m.from, MessageBody::ReadIndexResponse { ctx, index: None });
                Ok(())
            }
            // Late answers from an election already decided.
            MessageBody::VoteResponse { .. } | MessageBody::PreVoteResponse { .. } => Ok(()),
            _ => Err(StepError::Unexpected(m.body.name())),
        }
    }

    fn poll(&mut self, from: NodeId, granted: bool) {
        self.votes.entry(from).or_insert(granted);
        match vote_result(&self.conf, &self.votes) {
            VoteResult::Won => {
                if self.role == Role::PreCandidate {
                    self.become_candidate(false);
                } else {
                    self.become_leader();
                }
            }
            VoteResult::Lost => self.become_follower(self.term, NONE),
            VoteResult::Pending => {}
        }
    }

    fn step_follower(&mut self, m: Message) -> Result<(), StepError> {
        match m.body {
            MessageBody::Append {
                index,
                log_term,
                entries,
                commit,
            } => {
                self.heard_from_leader(m.from);
                self.handle_append(m.from, index, log_term, entries, commit)
            }
            MessageBody::Heartbeat { commit, ctx } => {
                self.heard_from_leader(m.from);
                self.log.commit_to(commit.min(self.log.last_index()));
                self.send(m.from, MessageBody::HeartbeatResponse { ctx });
                Ok(())
            }
            MessageBody::SnapshotChunk {
                meta,
                offset,
                data,
                done,
            } => {
                self.heard_from_leader(m.from);
                self.handle_snapshot_chunk(m.from, meta, offset, data, done)
            }
            MessageBody::TimeoutNow => {
                // Thesis §3.10: start an election at once, skipping pre-vote and stickiness.
                self.hup(true);
                Ok(())
            }
            MessageBody::ReadIndex { ctx } => {
                self.send(m.from, MessageBody::ReadIndexResponse { ctx, index: None });
                Ok(())
            }
            MessageBody::ReadIndexResponse { ctx, index } => {
                if let Some(index) = index {
                    self.read_states.push(ReadState { ctx, index });
                }
                Ok(())
            }
            _ => Err(StepError::Unexpected(m.body.name())),
        }
    }

    fn heard_from_leader(&mut self, from: NodeId) {
        self.leader = from;
        self.election_elapsed = 0;
    }

    fn handle_append(
        &mut self,
        from: NodeId,
        index: u64,
        log_term: u64,
        entries: Vec<Entry>,
        commit: u64,
    ) -> Result<(), StepError> {
        let ok = |idx| MessageBody::AppendResponse {
            index: idx,
            reject: false,
            reject_hint: 0,
            hint_term: 0,
        };
        if index < self.log.commit {
            self.send(from, ok(self.log.commit));
            return Ok(());
        }
        if self.log.match_term(index, log_term) {
            // Raft §5.3: consistency check passed; drop conflicting suffix, append the rest.
            if let Some(c) = self.log.find_conflict(&entries) {
                if c <= self.log.commit {
                    return Err(StepError::Malformed("append rewrites a committed entry"));
                }
            }
            let last_new = index + entries.len() as u64;
            self.log.merge(&entries);
            self.log.commit_to(commit.min(last_new));
            self.send(from, ok(last_new));
        } else {
            // Fast backtracking: tell the leader where our log may match.
            let (hint, hint_term) = self
                .log
                .find_conflict_by_term(index.min(self.log.last_index()), log_term);
            self.send(
                from,
                MessageBody::AppendResponse {
                    index,
                    reject: true,
                    reject_hint: hint,
                    hint_term,
                },
            );
        }
        Ok(())
    }

    fn handle_snapshot_chunk(
        &mut self,
        from: NodeId,
        meta: SnapshotMeta,
        offset: u64,
        data: Vec<u8>,
        done: bool,
    ) -> Result<(), StepError> {
        let index = meta.index;
        if index <= self.log.commit {
            self.assembly = None;
            self.send(
                from,
                MessageBody::AppendResponse {
                    index: self.log.commit,
                    reject: false,
                    reject_hint: 0,
                    hint_term: 0,
                },
            );
            return Ok(());
        }
        let same = self.assembly.as_ref().is_some_and(|a| a.meta == meta);
        let expected = if same {
            self.assembly.as_ref().map_or(0, |a| a.data.len() as u64)
        } else {
            0
        };
        if offset != expected {
            // Out of order, duplicate or unknown: say where we are (0 restarts the transfer).
            self.send(
                from,
                MessageBody::SnapshotResponse {
                    index,
                    next_offset: expected,
                },
            );
            return Ok(());
        }
        if offset + data.len() as u64 > MAX_SNAPSHOT_BYTES {
            self.assembly = None;
            return Err(StepError::Malformed("snapshot too large"));
        }
        if offset == 0 {
            self.assembly = Some(SnapshotAssembly { meta, data });
        } else {
            self.assembly
                .as_mut()
                .expect("same snapshot")
                .data
                .extend_from_slice(&data);
        }
        let got = self.assembly.as_ref().map_or(0, |a| a.data.len() as u64);
        self.send(
            from,
            MessageBody::SnapshotResponse {
                index,
                next_offset: got,
            },
        );
        if done {
            let a = self.assembly.take().expect("assembly in progress");
            self.restore(Snapshot {
                meta: a.meta,
                data: a.data,
            });
            // Only the snapshot's index is known to match the leader: entries we
            // kept after it (fast-forward case) may still be a divergent suffix.
            self.send(
                from,
                MessageBody::AppendResponse {
                    index,
                    reject: false,
                    reject_hint: 0,
                    hint_term: 0,
                },
            );
        }
        Ok(())
    }

    fn restore(&mut self, snap: Snapshot) {
        let (i, t) = (snap.meta.index, snap.meta.term);
        if self.log.match_term(i, t) {
            // We already hold this prefix: just learn that it is committed.
            self.log.commit_to(i);
            return;
        }
        self.log.restore(i, t);
        self.conf_history.clear();
        self.set_conf(i, snap.meta.conf_state.clone());
        // `applied` moves when the owner advances the Ready carrying this snapshot.
        self.pending_snapshot = Some(snap.clone());
        self.snapshot = Some(snap);
    }

    fn step_leader(&mut self, m: Message) -> Result<(), StepError> {
        let from = m.from;
        if !self.prs.contains_key(&from) {
            if let MessageBody::ReadIndex { ctx } = m.body {
                self.send(from, MessageBody::ReadIndexResponse { ctx, index: None });
            }
            return Err(StepError::UnknownPeer(from));
        }
        match m.body {
            MessageBody::AppendResponse {
                index,
                reject,
                reject_hint,
                hint_term,
            } => {
                self.prs.get_mut(&from).expect("checked").recent_active = true;
                if reject {
                    let mut next_probe = reject_hint;
                    if hint_term > 0 {
                        next_probe = self.log.find_conflict_by_term(reject_hint, hint_term).0;
                    }
                    let pr = self.prs.get_mut(&from).expect("checked");
                    if pr.maybe_decr_to(index, next_probe) {
                        if pr.state == ProgressState::Replicate {
                            pr.become_probe();
                        }
                        self.send_append(from, true);
                    }
                    return Ok(());
                }
                let last = self.log.last_index();
                if index > last {
                    return Err(StepError::Malformed("acknowledges entries we do not have"));
                }
                let pr = self.prs.get_mut(&from).expect("checked");
                let was_paused = pr.is_paused(self.cfg.max_inflight_msgs);
                if pr.maybe_update(index) {
                    match pr.state {
                        ProgressState::Probe => pr.become_replicate(),
                        ProgressState::Snapshot => {
                            if pr.snapshot.as_ref().is_none_or(|s| pr.matched >= s.index) {
                                pr.become_probe();
                            }
                        }
                        ProgressState::Replicate => {}
                    }
                    if self.maybe_commit() {
                        self.bcast_append();
                    } else if was_paused {
                        // It missed what went out while it was paused (at least the commit index).
                        self.send_append(from, true);
                    }
                    while self.send_append(from, false) {}
                    if from == self.lead_transferee
                        && self.prs[&from].matched == self.log.last_index()
                    {
                        self.send_timeout_now(from);
                    }
                }
                Ok(())
            }
            MessageBody::HeartbeatResponse { ctx } => {
                let last = self.log.last_index();
                let pr = self.prs.get_mut(&from).expect("checked");
                pr.recent_active = true;
                pr.read_ack = pr.read_ack.max(ctx.min(self.read_seq));
                pr.probe_sent = false;
                if pr.state == ProgressState::Replicate
                    && pr.inflights.len() >= self.cfg.max_inflight_msgs
                {
                    // Appends may have been lost: let one more through so a gap shows up as a rejection.
                    pr.inflights.pop_front();
                }
                let lagging = pr.matched < last && pr.state != ProgressState::Snapshot;
                if lagging {
                    self.send_append(from, true);
                }
                self.release_reads();
                Ok(())
            }
            MessageBody::SnapshotResponse { index, next_offset } => {
                let pr = self.prs.get_mut(&from).expect("checked");
                pr.recent_active = true;
                if let Some(s) = pr.snapshot.as_mut() {
                    if s.index == index {
                        s.offset = next_offset;
                        s.in_flight = false;
                        let (held, len) = self
                            .snapshot
                            .as_ref()
                            .map_or((0, 0), |s| (s.meta.index, s.data.len() as u64));
                        // A newer image restarts the transfer (at offset 0).
                        if next_offset < len || held != index {
                            self.send_snapshot_chunk(from);
                        }
                    }
                }
                Ok(())
            }
            MessageBody::ReadIndex { ctx } => {
                if self.leader_read(from, ctx).is_err() {
                    self.send(from, MessageBody::ReadIndexResponse { ctx, index: None });
                }
                Ok(())
            }
            _ => Err(StepError::Unexpected(m.body.name())),
        }
    }
}

fn validate_config(c: &Config) -> Result<(), ConfigError> {
    let bad = |s| Err(ConfigError::Invalid(s));
    if c.id == NONE {
        return bad("id must be non-zero");
    }
    if c.heartbeat_tick == 0 || c.election_tick <= c.heartbeat_tick {
        return bad("need 0 < heartbeat_tick < election_tick");
    }
    if c.max_inflight_msgs == 0 || c.max_msg_bytes == 0 || c.snapshot_chunk_bytes == 0 {
        return bad("limits must be positive");
    }
    if c.read_only == ReadOnlyOption::LeaseBased {
        if !c.check_quorum {
            return bad("lease-based reads need check_quorum");
        }
        if c.lease_drift_ticks >= c.election_tick {
            return bad("lease_drift_ticks must be below election_tick");
        }
    }
    Ok(())
}

/// Terms and indexes beyond this are refused as malformed, so arithmetic on
/// them can never overflow.
pub const MAX_TERM_OR_INDEX: u64 = 1 << 62;

fn validate_message(m: &Message) -> Result<(), StepError> {
    let numbers: &[u64] = match &m.body {
        MessageBody::Append {
            index,
            log_term,
            commit,
            ..
        } => &[*index, *log_term, *commit],
        MessageBody::AppendResponse {
            index,
            reject_hint,
            hint_term,
            ..
        } => &[*index, *reject_hint, *hint_term],
        MessageBody::Vote {
            last_index,
            last_term,
            ..
        }
        | MessageBody::PreVote {
            last_index,
            last_term,
        } => &[*last_index, *last_term],
        MessageBody::Heartbeat { commit, .. } => &[*commit],
        MessageBody::SnapshotChunk { meta, offset, .. } => &[meta.index, meta.term, *offset],
        MessageBody::SnapshotResponse { index, next_offset } => &[*index, *next_offset],
        MessageBody::ReadIndexResponse { index: Some(i), .. } => std::slice::from_ref(i),
        _ => &[],
    };
    if m.term >= MAX_TERM_OR_INDEX || numbers.iter().any(|&n| n >= MAX_TERM_OR_INDEX) {
        return Err(StepError::Malformed("term or index out of range"));
    }
    if let MessageBody::Append {
        index,
        log_term,
        entries,
        ..
    } = &m.body
    {
        if entries.len() > MAX_ENTRIES_PER_MSG {
            return Err(StepError::Malformed("too many entries"));
        }
        let mut prev = (*index, *log_term);
        for e in entries {
            if e.index != prev.0 + 1 || e.term < prev.1 || e.term > m.term {
                return Err(StepError::Malformed("entries not contiguous"));
            }
            prev = (e.index, e.term);
        }
        if *log_term > m.term {
            return Err(StepError::Malformed("log term beyond message term"));
        }
    }
    if let MessageBody::SnapshotChunk { meta, data, .. } = &m.body {
        if data.len() as u64 > MAX_SNAPSHOT_BYTES || meta.term > m.term {
            return Err(StepError::Malformed("bad snapshot chunk"));
        }
    }
    Ok(())
}
