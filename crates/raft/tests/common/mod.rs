//! A tiny in-memory cluster for tests: nodes with simulated durable storage,
//! a message pool, partitions, and a text trace of everything that happens.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use synod_raft::*;

/// What a node has made durable.
#[derive(Clone, Debug, Default)]
pub struct Store {
    pub hard: HardState,
    pub snap: Option<Snapshot>,
    pub entries: Vec<Entry>,
}

impl Store {
    fn persist(&mut self, rd: &Ready) {
        if let Some(s) = &rd.snapshot {
            // A received snapshot replaces the whole log.
            self.entries.clear();
            self.snap = Some(s.clone());
        }
        if let Some(first) = rd.entries.first() {
            let keep = self.entries.partition_point(|e| e.index < first.index);
            self.entries.truncate(keep);
            self.entries.extend(rd.entries.iter().cloned());
        }
        if let Some(h) = rd.hard_state {
            self.hard = h;
        }
    }
}

/// One simulated member.
pub struct Node {
    pub raft: Raft,
    pub cfg: Config,
    pub store: Store,
    /// The application: data of applied normal entries, in order (index, data).
    pub applied: Vec<(u64, Vec<u8>)>,
    pub reads: Vec<ReadState>,
}

/// The cluster.
pub struct Net {
    pub nodes: BTreeMap<u64, Node>,
    pub inflight: Vec<Message>,
    pub groups: Option<Vec<BTreeSet<u64>>>,
    pub out: String,
    /// Every snapshot image seen, by (index, term): replicas must agree.
    pub images: BTreeMap<(u64, u64), Vec<u8>>,
    /// First disagreement between two snapshot images of the same point, if any.
    pub image_conflict: Option<String>,
    /// Nodes whose Ready asked for a snapshot image (lazy snapshot data).
    pub wanted: BTreeSet<u64>,
}

pub fn fmt_entry(e: &Entry) -> String {
    match e.kind {
        EntryKind::Normal if e.data.is_empty() => format!("{}/{}", e.term, e.index),
        EntryKind::Normal => format!(
            "{}/{} {}",
            e.term,
            e.index,
            String::from_utf8_lossy(&e.data)
        ),
        EntryKind::ConfChange => {
            let cc = ConfChange::decode(&e.data).expect("valid conf change");
            format!("{}/{} cc{}", e.term, e.index, fmt_cc(&cc))
        }
    }
}

pub fn fmt_cc(cc: &ConfChange) -> String {
    let mut s = String::from("[");
    for (i, c) in cc.changes.iter().enumerate() {
        if i > 0 {
            s.push(' ');
        }
        match c {
            ConfChangeSingle::AddVoter(id) => write!(s, "v{id}"),
            ConfChangeSingle::AddLearner(id) => write!(s, "l{id}"),
            ConfChangeSingle::Remove(id) => write!(s, "r{id}"),
        }
        .unwrap();
    }
    s.push(']');
    match cc.transition {
        ConfChangeTransition::Auto => {}
        ConfChangeTransition::JointImplicit => s.push_str(" implicit"),
        ConfChangeTransition::JointExplicit => s.push_str(" explicit"),
    }
    s
}

pub fn fmt_ents(ents: &[Entry]) -> String {
    ents.iter().map(fmt_entry).collect::<Vec<_>>().join(", ")
}

fn ids(s: &BTreeSet<u64>) -> String {
    s.iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

pub fn fmt_conf(cs: &ConfState) -> String {
    let mut s = format!("voters=({})", ids(&cs.voters));
    if cs.is_joint() {
        write!(s, "&&({})", ids(&cs.voters_outgoing)).unwrap();
    }
    if !cs.learners.is_empty() {
        write!(s, " learners=({})", ids(&cs.learners)).unwrap();
    }
    if !cs.learners_next.is_empty() {
        write!(s, " learners_next=({})", ids(&cs.learners_next)).unwrap();
    }
    if cs.auto_leave {
        s.push_str(" autoleave");
    }
    s
}

pub fn fmt_msg(m: &Message) -> String {
    let head = format!("{}->{} {} t{}", m.from, m.to, m.body.name(), m.term);
    let tail = match &m.body {
        MessageBody::Append {
            index,
            log_term,
            entries,
            commit,
        } => format!(
            " prev={log_term}/{index} commit={commit} [{}]",
            fmt_ents(entries)
        ),
        MessageBody::AppendResponse {
            index,
            reject,
            reject_hint,
            hint_term,
        } => {
            if *reject {
                format!(" REJECT index={index} hint={hint_term}/{reject_hint}")
            } else {
                format!(" index={index}")
            }
        }
        MessageBody::Vote {
            last_index,
            last_term,
            transfer,
        } => format!(
            " last={last_term}/{last_index}{}",
            if *transfer { " transfer" } else { "" }
        ),
        MessageBody::PreVote {
            last_index,
            last_term,
        } => format!(" last={last_term}/{last_index}"),
        MessageBody::VoteResponse { reject } | MessageBody::PreVoteResponse { reject } => {
            if *reject {
                " REJECT".into()
            } else {
                " granted".into()
            }
        }
        MessageBody::Heartbeat { commit, ctx } => format!(" commit={commit} round={ctx}"),
        MessageBody::HeartbeatResponse { ctx } => format!(" round={ctx}"),
        MessageBody::SnapshotChunk {
            meta,
            offset,
            data,
            done,
        } => format!(
            " snap={}/{} {} offset={offset} len={}{}",
            meta.term,
            meta.index,
            fmt_conf(&meta.conf_state),
            data.len(),
            if *done { " done" } else { "" }
        ),
        MessageBody::SnapshotResponse { index, next_offset } => {
            format!(" snap={index} next={next_offset}")
        }
        MessageBody::TimeoutNow => String::new(),
        MessageBody::ReadIndex { ctx } => format!(" ctx={ctx}"),
        MessageBody::ReadIndexResponse { ctx, index } => match index {
            Some(i) => format!(" ctx={ctx} index={i}"),
            None => format!(" ctx={ctx} REFUSED"),
        },
    };
    head + &tail
}

pub fn role_name(r: Role) -> &'static str {
    match r {
        Role::Follower => "Follower",
        Role::PreCandidate => "PreCandidate",
        Role::Candidate => "Candidate",
        Role::Leader => "Leader",
    }
}

impl Default for Net {
    fn default() -> Self {
        Self::new()
    }
}

impl Net {
    pub fn new() -> Net {
        Net {
            nodes: BTreeMap::new(),
            inflight: Vec::new(),
            groups: None,
            out: String::new(),
            images: BTreeMap::new(),
            image_conflict: None,
            wanted: BTreeSet::new(),
        }
    }

    /// Adds a bootstrapped node and silently persists its first Ready.
    pub fn add_node(&mut self, cfg: Config, voters: Vec<u64>, learners: Vec<u64>) {
        let raft =
            Raft::new(cfg.clone(), Init::Bootstrap { voters, learners }).expect("valid config");
        let id = cfg.id;
        self.nodes.insert(
            id,
            Node {
                raft,
                cfg,
                store: Store::default(),
                applied: Vec::new(),
                reads: Vec::new(),
            },
        );
        let n = self.nodes.get_mut(&id).unwrap();
        let rd = n.raft.ready();
        n.store.persist(&rd);
        n.raft.advance(rd.token);
    }

    /// Adds a node restored from a given persisted state.
    pub fn restore_node(&mut self, cfg: Config, store: Store) {
        let raft = Raft::new(
            cfg.clone(),
            Init::Restore {
                hard_state: store.hard,
                snapshot: store.snap.as_ref().map(|s| s.meta.clone()),
                entries: store.entries.clone(),
            },
        )
        .expect("valid restore");
        self.nodes.insert(
            cfg.id,
            Node {
                raft,
                cfg,
                store,
                applied: Vec::new(),
                reads: Vec::new(),
            },
        );
    }

    /// Crash and restart `id` from its store (the application restarts empty
    /// and re-applies from the snapshot).
    pub fn restart(&mut self, id: u64) {
        let n = self.nodes.remove(&id).expect("node exists");
        self.inflight.retain(|m| m.to != id);
        let mut cfg = n.cfg.clone();
        cfg.applied = 0;
        cfg.seed = cfg.seed.wrapping_add(1000);
        let store = n.store.clone();
        self.restore_node(cfg, store.clone());
        let node = self.nodes.get_mut(&id).unwrap();
        if std::env::var("RAFT_DEBUG").is_ok() {
            eprintln!(
                "EV restart {id}: snap={:?} entries={:?}..{:?} hard={:?}",
                store.snap.as_ref().map(|s| (s.meta.index, s.data.len())),
                store.entries.first().map(|e| e.index),
                store.entries.last().map(|e| e.index),
                store.hard
            );
        }
        if let Some(s) = &store.snap {
            node.applied = decode_state(&s.data);
            node.raft
                .compact(s.clone())
                .expect("persisted snapshot is valid");
        }
    }

    /// The application snapshots at `index` and the log is compacted.
    pub fn compact(&mut self, id: u64, index: u64) -> Result<(), CompactError> {
        let n = self.nodes.get_mut(&id).expect("node exists");
        let term = n.raft.term_at(index).ok_or(CompactError::Stale(index))?;
        let snap = Snapshot {
            meta: SnapshotMeta {
                index,
                term,
                conf_state: n.raft.conf_state().clone(),
            },
            data: encode_state(&n.applied, index),
        };
        n.raft.compact(snap.clone())?;
        let data = snap.data.clone();
        if std::env::var("RAFT_DEBUG").is_ok() {
            eprintln!("EV compact {id}: at {index} len={}", data.len());
        }
        self.record_image(id, index, term, data);
        let n = self.nodes.get_mut(&id).unwrap();
        n.store.entries.retain(|e| e.index > index);
        n.store.snap = Some(snap);
        Ok(())
    }

    /// The application compacts at `index` without handing Raft an image
    /// (lazy snapshot data); its store keeps the image.
    pub fn compact_log(&mut self, id: u64, index: u64) -> Result<(), CompactError> {
        let n = self.nodes.get_mut(&id).expect("node exists");
        let term = n.raft.term_at(index).ok_or(CompactError::Stale(index))?;
        let meta = SnapshotMeta {
            index,
            term,
            conf_state: n.raft.conf_state().clone(),
        };
        n.raft.compact_log(meta.clone())?;
        let data = encode_state(&n.applied, index);
        n.store.entries.retain(|e| e.index > index);
        n.store.snap = Some(Snapshot { meta, data });
        Ok(())
    }

    fn record_image(&mut self, id: u64, index: u64, term: u64, data: Vec<u8>) {
        if let Some(prev) = self.images.insert((index, term), data.clone()) {
            if prev != data && self.image_conflict.is_none() {
                self.image_conflict = Some(format!(
                    "node {id}: snapshot image at {term}/{index} differs ({} vs {} bytes): {:?} vs {:?}",
                    prev.len(),
                    data.len(),
                    decode_state(&prev),
                    decode_state(&data)
                ));
            }
        }
    }

    fn connected(&self, a: u64, b: u64) -> bool {
        match &self.groups {
            None => true,
            Some(gs) => gs.iter().any(|g| g.contains(&a) && g.contains(&b)),
        }
    }

    /// Persists, sends and applies one Ready of `id`. Returns false if there was none.
    pub fn process_ready(&mut self, id: u64, trace: bool) -> bool {
        let n = self.nodes.get_mut(&id).expect("node exists");
        if !n.raft.has_ready() {
            return false;
        }
        let rd = n.raft.ready();
        n.store.persist(&rd);
        if rd.snapshot_wanted {
            self.wanted.insert(id);
        }
        if let Some(s) = &rd.snapshot {
            n.applied = decode_state(&s.data);
            if std::env::var("RAFT_DEBUG").is_ok() {
                eprintln!(
                    "EV install {id}: snap={} len={}",
                    s.meta.index,
                    s.data.len()
                );
            }
        }
        if std::env::var("RAFT_DEBUG").is_ok() && !rd.committed_entries.is_empty() {
            eprintln!(
                "EV apply {id}: {}..{} (applied list len {})",
                rd.committed_entries[0].index,
                rd.committed_entries.last().unwrap().index,
                n.applied.len()
            );
        }
        for e in &rd.committed_entries {
            if e.kind == EntryKind::Normal && !e.data.is_empty() {
                n.applied.push((e.index, e.data.clone()));
            }
        }
        n.reads.extend(rd.read_states.iter().copied());
        if trace {
            let o = &mut self.out;
            writeln!(o, "> {id} handling Ready").unwrap();
            if let Some((r, l)) = rd.soft_state {
                writeln!(o, "  soft: {} leader={l}", role_name(r)).unwrap();
            }
            if let Some(h) = rd.hard_state {
                writeln!(
                    o,
                    "  hard: term={} vote={} commit={}",
                    h.term, h.vote, h.commit
                )
                .unwrap();
            }
            if let Some(s) = &rd.snapshot {
                writeln!(
                    o,
                    "  snapshot: {}/{} {} len={}",
                    s.meta.term,
                    s.meta.index,
                    fmt_conf(&s.meta.conf_state),
                    s.data.len()
                )
                .unwrap();
            }
            if !rd.entries.is_empty() {
                writeln!(o, "  entries: {}", fmt_ents(&rd.entries)).unwrap();
            }
            if !rd.committed_entries.is_empty() {
                writeln!(o, "  committed: {}", fmt_ents(&rd.committed_entries)).unwrap();
            }
            for r in &rd.read_states {
                writeln!(o, "  read: ctx={} index={}", r.ctx, r.index).unwrap();
            }
            for m in &rd.messages {
                writeln!(o, "  send: {}", fmt_msg(m)).unwrap();
            }
        }
        self.inflight.extend(rd.messages.iter().cloned());
        let n = self.nodes.get_mut(&id).unwrap();
        n.raft.advance(rd.token);
        true
    }

    /// Delivers one message (dropped across a partition or to a missing node).
    pub fn deliver(&mut self, m: Message, trace: bool) {
        if !self.connected(m.from, m.to) || !self.nodes.contains_key(&m.to) {
            return;
        }
        if trace {
            writeln!(self.out, "> {} receiving {}", m.to, fmt_msg(&m)).unwrap();
        }
        let n = self.nodes.get_mut(&m.to).unwrap();
        if let Err(e) = n.raft.step(m) {
            if trace {
                writeln!(self.out, "  error: {e}").unwrap();
            }
        }
    }

    /// Discards every queued message addressed to a node in `drop`, then delivers
    /// those whose recipient is in `to` (all if empty).
    pub fn deliver_msgs(&mut self, to: &[u64], drop: &[u64], trace: bool) -> usize {
        let all = std::mem::take(&mut self.inflight);
        let mut n = 0;
        for m in all {
            if drop.contains(&m.to) {
                if trace {
                    writeln!(self.out, "  dropped: {}", fmt_msg(&m)).unwrap();
                }
                continue;
            }
            let selected = to.is_empty() || to.contains(&m.to);
            if !selected {
                self.inflight.push(m);
                continue;
            }
            n += 1;
            self.deliver(m, trace);
        }
        n
    }

    /// Runs Ready processing and delivery until nothing is left.
    pub fn stabilize(&mut self, trace: bool) {
        assert!(self.try_stabilize(trace), "stabilize did not converge");
    }

    /// Like `stabilize`, returning false if it does not converge.
    pub fn try_stabilize(&mut self, trace: bool) -> bool {
        for _ in 0..10_000 {
            let ids: Vec<u64> = self.nodes.keys().copied().collect();
            let mut any = false;
            for id in &ids {
                any |= self.process_ready(*id, trace);
            }
            any |= self.deliver_msgs(&[], &[], trace) > 0;
            if !any {
                return true;
            }
        }
        false
    }

    pub fn status(&self, id: u64) -> String {
        let r = &self.nodes[&id].raft;
        let mut s = format!(
            "{id}: {} term={} leader={} vote={} commit={} applied={} log={}..{} {}",
            role_name(r.role()),
            r.term(),
            r.leader(),
            r.vote(),
            r.commit(),
            r.applied(),
            r.first_index(),
            r.last_index(),
            fmt_conf(r.conf_state())
        );
        if r.lead_transferee() != 0 {
            write!(s, " transferee={}", r.lead_transferee()).unwrap();
        }
        if r.role() == Role::Leader {
            for m in r.conf_state().members() {
                if let Some((matched, next, st)) = r.progress(m) {
                    write!(s, "\n  {m}: match={matched} next={next} {st:?}").unwrap();
                }
            }
        }
        s
    }
}

/// The harness application's state image: applied (index, data) pairs.
pub fn encode_state(applied: &[(u64, Vec<u8>)], upto: u64) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, d) in applied.iter().filter(|(i, _)| *i <= upto) {
        out.extend_from_slice(&i.to_be_bytes());
        out.extend_from_slice(&(d.len() as u32).to_be_bytes());
        out.extend_from_slice(d);
    }
    out
}

pub fn decode_state(mut b: &[u8]) -> Vec<(u64, Vec<u8>)> {
    let mut v = Vec::new();
    while b.len() >= 12 {
        let i = u64::from_be_bytes(b[..8].try_into().unwrap());
        let n = u32::from_be_bytes(b[8..12].try_into().unwrap()) as usize;
        v.push((i, b[12..12 + n].to_vec()));
        b = &b[12 + n..];
    }
    v
}
