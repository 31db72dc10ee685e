//! Watchers, kept by the node's actor beside the state machine, so that a
//! watch's catch-up from a past revision and the live events that follow it
//! are cut from one history with no gap and no repeat.
//!
//! Each gRPC watch stream has one bounded output queue. A watcher whose
//! stream queue is full is not dropped: it falls behind ("lagging") and
//! catches up from the store's history on later ticks, as etcd's unsynced
//! watchers do; if that history was compacted meanwhile it is cancelled with
//! etcd's compacted-revision answer.
//!
//! A watcher created with `progress_notify` that was sent no events for one
//! `--experimental-watch-progress-notify-interval` gets an empty response
//! carrying the current revision, as etcd sends it, provided it is synced
//! (every event up to that revision has been queued to it).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use synod_kv::{Event, EventKind, KvError, KvStore, MvccEngine};
use synod_node::ShardId;
use synod_proto::etcdserverpb::{ResponseHeader, WatchResponse};
use tokio::sync::mpsc;
use tonic::Status;

use crate::convert::event_out;

/// A response for watcher `watch_id` with no events and no flags set.
pub fn plain(header: ResponseHeader, watch_id: i64) -> WatchResponse {
    WatchResponse {
        header: Some(header),
        watch_id,
        created: false,
        canceled: false,
        compact_revision: 0,
        cancel_reason: String::new(),
        fragment: false,
        events: Vec::new(),
    }
}

/// What a watch stream receives.
pub type WatchOut = Result<WatchResponse, Status>;

/// Most events sent in one catch-up round of one watcher.
const CATCH_UP_EVENTS: usize = 1000;
/// Most watchers in one node.
pub const MAX_WATCHERS: usize = 100_000;

/// One watch.
pub struct Watcher {
    /// First key.
    pub key: Vec<u8>,
    /// Range end (etcd rules).
    pub range_end: Vec<u8>,
    /// Send previous kvs.
    pub prev_kv: bool,
    /// Drop put events.
    pub no_put: bool,
    /// Drop delete events.
    pub no_delete: bool,
    /// Events before this revision are not wanted (the start revision).
    pub min_rev: i64,
    /// Largest bytes of events in one response when fragmenting (0: never fragment).
    pub fragment: usize,
    /// The stream's queue.
    pub out: mpsc::Sender<WatchOut>,
    /// Send a progress notification this often while no events come.
    pub progress_every: Option<Duration>,
    /// The first revision not yet delivered (meaningful when lagging).
    next_rev: i64,
    lagging: bool,
    /// When the next progress notification is due.
    progress_at: Option<Instant>,
    /// Events were queued to it since the last progress check.
    sent_events: bool,
}

impl Watcher {
    /// A watcher that starts from `min_rev` (0: from now).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        key: Vec<u8>,
        range_end: Vec<u8>,
        min_rev: i64,
        prev_kv: bool,
        no_put: bool,
        no_delete: bool,
        fragment: usize,
        out: mpsc::Sender<WatchOut>,
    ) -> Watcher {
        Watcher {
            key,
            range_end,
            prev_kv,
            no_put,
            no_delete,
            min_rev,
            fragment,
            out,
            progress_every: None,
            next_rev: 0,
            lagging: false,
            progress_at: None,
            sent_events: false,
        }
    }

    fn covers(&self, key: &[u8]) -> bool {
        if self.range_end.is_empty() {
            return key == self.key.as_slice();
        }
        if key < self.key.as_slice() {
            return false;
        }
        self.range_end == [0] || key < self.range_end.as_slice()
    }

    fn wants(&self, e: &Event) -> bool {
        e.kv.mod_revision >= self.min_rev
            && self.covers(&e.kv.key)
            && !(self.no_put && e.kind == EventKind::Put)
            && !(self.no_delete && e.kind == EventKind::Delete)
    }
}

/// Builds response headers.
#[derive(Clone, Copy, Debug)]
pub struct HeaderInfo {
    /// Cluster id.
    pub cluster_id: u64,
    /// Member id.
    pub member_id: u64,
    /// Raft term.
    pub term: u64,
}

impl HeaderInfo {
    /// A header at `revision`.
    pub fn at(&self, revision: i64) -> ResponseHeader {
        ResponseHeader {
            cluster_id: self.cluster_id,
            member_id: self.member_id,
            revision,
            raft_term: self.term,
        }
    }
}

/// Every watcher of a node, kept by the group whose range holds its keys:
/// a group's events and catch-up scans reach only that group's watchers,
/// with headers from that group (a watch over several groups' keys is
/// refused before it gets here).
#[derive(Default)]
pub struct WatchHub {
    groups: BTreeMap<ShardId, GroupWatchers>,
    /// The group of each watcher, by (stream, watch id).
    index: BTreeMap<(u64, i64), ShardId>,
}

/// The watchers of one group, by (stream, watch id).
#[derive(Default)]
struct GroupWatchers {
    watchers: BTreeMap<(u64, i64), Watcher>,
    /// Progress checks by when they are due: (due, stream, watch id).
    progress_due: BTreeSet<(Instant, u64, i64)>,
    /// Watchers dropped here since the hub last looked (closed streams,
    /// compacted catch-ups), for the hub's index.
    dropped: Vec<(u64, i64)>,
}

enum Sent {
    Ok,
    Full,
    Closed,
}

fn send(w: &Watcher, resp: WatchResponse) -> Sent {
    match w.out.try_send(Ok(resp)) {
        Ok(()) => Sent::Ok,
        Err(mpsc::error::TrySendError::Full(_)) => Sent::Full,
        Err(mpsc::error::TrySendError::Closed(_)) => Sent::Closed,
    }
}

/// Splits `events` into responses, fragmenting when asked for.
fn responses(
    w: &Watcher,
    id: i64,
    events: Vec<Event>,
    header: ResponseHeader,
) -> Vec<WatchResponse> {
    let evs: Vec<_> = events
        .into_iter()
        .map(|e| event_out(e, w.prev_kv))
        .collect();
    let mut out = Vec::new();
    if w.fragment == 0 {
        out.push(evs);
    } else {
        let mut cur = Vec::new();
        let mut bytes = 0;
        for e in evs {
            let n = prost::Message::encoded_len(&e);
            if !cur.is_empty() && bytes + n > w.fragment {
                out.push(std::mem::take(&mut cur));
                bytes = 0;
            }
            bytes += n;
            cur.push(e);
        }
        out.push(cur);
    }
    let last = out.len() - 1;
    out.into_iter()
        .enumerate()
        .map(|(i, events)| WatchResponse {
            fragment: i < last,
            events,
            ..plain(header, id)
        })
        .collect()
}

impl WatchHub {
    /// Number of watchers.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Registers a watcher of group `shard` (its `created` answer was
    /// already queued; `kv` is that group's store) and starts its catch-up
    /// if it asked for a past revision. A watcher with the same (stream,
    /// id) is replaced.
    pub fn add<E: MvccEngine>(
        &mut self,
        shard: ShardId,
        stream: u64,
        id: i64,
        w: Watcher,
        kv: &KvStore<E>,
        h: HeaderInfo,
    ) {
        if let Some(old) = self.index.insert((stream, id), shard) {
            if let Some(g) = self.groups.get_mut(&old) {
                g.cancel(stream, id);
            }
        }
        self.groups
            .entry(shard)
            .or_default()
            .add(stream, id, w, kv, h);
        self.tidy(shard);
    }

    /// Removes a watcher; whether it existed.
    pub fn cancel(&mut self, stream: u64, id: i64) -> bool {
        let Some(shard) = self.index.remove(&(stream, id)) else {
            return false;
        };
        let existed = self
            .groups
            .get_mut(&shard)
            .is_some_and(|g| g.cancel(stream, id));
        self.tidy(shard);
        existed
    }

    /// Removes every watcher of a stream.
    pub fn cancel_stream(&mut self, stream: u64) {
        let ids: Vec<((u64, i64), ShardId)> = self
            .index
            .range((stream, i64::MIN)..=(stream, i64::MAX))
            .map(|(k, s)| (*k, *s))
            .collect();
        for ((s, id), _) in ids {
            self.cancel(s, id);
        }
    }

    /// Whether a stream already has this watch id.
    #[cfg(test)]
    pub fn exists(&self, stream: u64, id: i64) -> bool {
        self.index.contains_key(&(stream, id))
    }

    /// Delivers freshly applied events of group `shard` (`kv` is its store)
    /// to that group's synced watchers.
    pub fn publish<E: MvccEngine>(
        &mut self,
        shard: ShardId,
        events: &[Event],
        kv: &KvStore<E>,
        h: HeaderInfo,
    ) {
        if let Some(g) = self.groups.get_mut(&shard) {
            g.publish(events, kv, h);
        }
        self.tidy(shard);
    }

    /// The node's routing table changed (a range split): each watcher whose
    /// keys its group no longer holds moves to the group that holds them
    /// now, and catches up from that group's store, which carries their
    /// history from the split on (the same revisions); one whose keys now
    /// lie in several groups is cancelled, as such a watch is refused when
    /// created.
    pub fn rehome(&mut self, table: &[(synod_node::KeyRange, ShardId)], h: HeaderInfo) {
        let holder = |w: &Watcher| {
            table
                .iter()
                .find(|(r, _)| r.holds_span(&w.key, &w.range_end))
                .map(|(_, s)| *s)
        };
        let mut moves = Vec::new();
        for (shard, g) in &self.groups {
            for (k, w) in &g.watchers {
                let to = holder(w);
                if to != Some(*shard) {
                    moves.push((*shard, *k, to));
                }
            }
        }
        for (from, (stream, id), to) in moves {
            let Some(g) = self.groups.get_mut(&from) else {
                continue;
            };
            let Some(mut w) = g.watchers.remove(&(stream, id)) else {
                continue;
            };
            if let Some(at) = w.progress_at.take() {
                g.progress_due.remove(&(at, stream, id));
            }
            match to {
                Some(to) => {
                    if !w.lagging {
                        w.lagging = true;
                    }
                    self.index.insert((stream, id), to);
                    let dest = self.groups.entry(to).or_default();
                    if let Some(every) = w.progress_every {
                        let at = Instant::now() + every;
                        w.progress_at = Some(at);
                        dest.progress_due.insert((at, stream, id));
                    }
                    dest.watchers.insert((stream, id), w);
                }
                None => {
                    self.index.remove(&(stream, id));
                    let _ = w.out.try_send(Ok(WatchResponse {
                        canceled: true,
                        cancel_reason: "synod: the watched keys now lie in several ranges".into(),
                        ..plain(h.at(0), id)
                    }));
                }
            }
            self.tidy(from);
        }
    }

    /// Group `shard`'s state machine was replaced by a leader's snapshot:
    /// its revision moved without events, so every watcher of it falls
    /// behind from the first revision it has not been sent and catches up
    /// from the store's history on the next round (or is cancelled with the
    /// compaction revision if that history is gone), as etcd moves its
    /// synced watchers to unsynced on a restore. Call before publishing the
    /// events applied after the snapshot.
    pub fn restored(&mut self, shard: ShardId) {
        if let Some(g) = self.groups.get_mut(&shard) {
            for w in g.watchers.values_mut() {
                w.lagging = true;
            }
        }
    }

    /// One catch-up round for every lagging watcher of group `shard`, then
    /// its progress notifications that are due (called on ticks, for each
    /// group).
    pub fn catch_up<E: MvccEngine>(&mut self, shard: ShardId, kv: &KvStore<E>, h: HeaderInfo) {
        if let Some(g) = self.groups.get_mut(&shard) {
            g.catch_up_lagging(kv, h);
        }
        self.notify_progress(shard, Instant::now(), kv, h);
    }

    /// Sends group `shard`'s progress notifications due by `now` (see
    /// [`GroupWatchers::notify_progress`]).
    pub fn notify_progress<E: MvccEngine>(
        &mut self,
        shard: ShardId,
        now: Instant,
        kv: &KvStore<E>,
        h: HeaderInfo,
    ) {
        if let Some(g) = self.groups.get_mut(&shard) {
            g.notify_progress(now, kv, h);
        }
        self.tidy(shard);
    }

    /// The group and revision up to which every watcher of `stream` has
    /// been sent all events (for a progress request), given each group's
    /// current revision: `None` if one of them is lagging, or if they watch
    /// several groups (revisions of different groups do not compare, so no
    /// one revision can promise anything; etcd too stays silent while a
    /// watcher is unsynced). A stream with no watchers gets the home
    /// group's revision.
    pub fn synced_revision(
        &self,
        stream: u64,
        home: ShardId,
        revision: impl Fn(ShardId) -> i64,
    ) -> Option<(ShardId, i64)> {
        let mut shard = None;
        for (&(s, id), &g) in self.index.range((stream, i64::MIN)..=(stream, i64::MAX)) {
            if shard.is_some_and(|x| x != g) {
                return None;
            }
            shard = Some(g);
            let lagging = self
                .groups
                .get(&g)
                .and_then(|gw| gw.watchers.get(&(s, id)))
                .is_some_and(|w| w.lagging);
            if lagging {
                return None;
            }
        }
        let shard = shard.unwrap_or(home);
        Some((shard, revision(shard)))
    }

    /// Forgets watchers a group dropped (closed streams, compacted
    /// catch-ups) from the index, and a group left with none.
    fn tidy(&mut self, shard: ShardId) {
        let Some(g) = self.groups.get_mut(&shard) else {
            return;
        };
        for k in g.dropped.drain(..) {
            if self.index.get(&k) == Some(&shard) {
                self.index.remove(&k);
            }
        }
        if g.watchers.is_empty() {
            self.groups.remove(&shard);
        }
    }
}

impl GroupWatchers {
    /// Registers a watcher and starts its catch-up if it asked for a past
    /// revision.
    fn add<E: MvccEngine>(
        &mut self,
        stream: u64,
        id: i64,
        mut w: Watcher,
        kv: &KvStore<E>,
        h: HeaderInfo,
    ) {
        let now = kv.revision();
        if w.min_rev > 0 && w.min_rev <= now {
            w.lagging = true;
            w.next_rev = w.min_rev;
        } else {
            w.next_rev = now + 1;
        }
        if let Some(every) = w.progress_every {
            let at = Instant::now() + every;
            w.progress_at = Some(at);
            self.progress_due.insert((at, stream, id));
        }
        let lagging = w.lagging;
        self.watchers.insert((stream, id), w);
        if lagging {
            self.catch_up_one(stream, id, kv, h);
        }
    }

    /// Removes a watcher; whether it existed.
    fn cancel(&mut self, stream: u64, id: i64) -> bool {
        match self.watchers.remove(&(stream, id)) {
            Some(w) => {
                if let Some(at) = w.progress_at {
                    self.progress_due.remove(&(at, stream, id));
                }
                true
            }
            None => false,
        }
    }

    /// Ends a watcher whose stream closed or whose history is gone.
    fn drop_watcher(&mut self, stream: u64, id: i64) {
        if self.watchers.remove(&(stream, id)).is_some() {
            self.dropped.push((stream, id));
        }
    }

    /// Delivers freshly applied events to every synced watcher.
    fn publish<E: MvccEngine>(&mut self, events: &[Event], kv: &KvStore<E>, h: HeaderInfo) {
        if self.watchers.is_empty() {
            return;
        }
        let rev = kv.revision();
        let mut closed = Vec::new();
        for (&(stream, id), w) in self.watchers.iter_mut() {
            if w.lagging {
                continue;
            }
            let mut mine: Vec<Event> = events.iter().filter(|e| w.wants(e)).cloned().collect();
            if mine.is_empty() {
                w.next_rev = rev + 1;
                continue;
            }
            let first = mine[0].kv.mod_revision;
            // A delete range's events come without the old values.
            if w.prev_kv && kv.fill_prev(&mut mine).is_err() {
                // The store failed: the catch-up reports it.
                w.lagging = true;
                w.next_rev = first;
                continue;
            }
            w.sent_events = true;
            for resp in responses(w, id, mine, h.at(rev)) {
                match send(w, resp) {
                    Sent::Ok => {}
                    Sent::Full => {
                        // Fall behind; resend from the first revision of this batch
                        // (a fragment already queued may be repeated: rare, and the
                        // client-side revision check drops duplicates).
                        w.lagging = true;
                        w.next_rev = first;
                        break;
                    }
                    Sent::Closed => {
                        closed.push((stream, id));
                        break;
                    }
                }
            }
            if !w.lagging {
                w.next_rev = rev + 1;
            }
        }
        for (stream, id) in closed {
            self.drop_watcher(stream, id);
        }
    }

    /// Sends the progress notifications due by `now`: to each synced
    /// watcher that asked for them and was sent no events since its last
    /// check, an empty response at the current revision (etcd's periodic
    /// progress notify). Every due watcher is checked again one interval later.
    fn notify_progress<E: MvccEngine>(&mut self, now: Instant, kv: &KvStore<E>, h: HeaderInfo) {
        let mut closed = Vec::new();
        while let Some(&(at, stream, id)) = self.progress_due.first() {
            if at > now {
                break;
            }
            self.progress_due.pop_first();
            let Some(w) = self.watchers.get_mut(&(stream, id)) else {
                continue;
            };
            // An entry left by an earlier watcher with the same id.
            let (Some(every), Some(due)) = (w.progress_every, w.progress_at) else {
                continue;
            };
            if due != at {
                continue;
            }
            if !w.lagging && !w.sent_events {
                let resp = plain(h.at(kv.revision()), id);
                // A full queue skips this notification; a closed one ends the watcher.
                if let Sent::Closed = send(w, resp) {
                    closed.push((stream, id));
                    continue;
                }
            }
            w.sent_events = false;
            let next = now + every;
            w.progress_at = Some(next);
            self.progress_due.insert((next, stream, id));
        }
        for (stream, id) in closed {
            self.drop_watcher(stream, id);
        }
    }

    fn catch_up_lagging<E: MvccEngine>(&mut self, kv: &KvStore<E>, h: HeaderInfo) {
        let lagging: Vec<(u64, i64)> = self
            .watchers
            .iter()
            .filter(|(_, w)| w.lagging)
            .map(|(k, _)| *k)
            .collect();
        for (s, id) in lagging {
            self.catch_up_one(s, id, kv, h);
        }
    }

    fn catch_up_one<E: MvccEngine>(
        &mut self,
        stream: u64,
        id: i64,
        kv: &KvStore<E>,
        h: HeaderInfo,
    ) {
        let Some(w) = self.watchers.get_mut(&(stream, id)) else {
            return;
        };
        let rev = kv.revision();
        match kv.events_since(w.next_rev, &w.key, &w.range_end, CATCH_UP_EVENTS) {
            Err(KvError::Compacted) => {
                // As etcd: no revision in the header and no cancel reason;
                // clients read the compaction from compact_revision.
                let resp = WatchResponse {
                    canceled: true,
                    compact_revision: kv.compact_revision(),
                    ..plain(h.at(0), id)
                };
                match send(w, resp) {
                    Sent::Full => {}
                    Sent::Ok | Sent::Closed => {
                        self.drop_watcher(stream, id);
                    }
                }
            }
            Err(_) => {
                self.drop_watcher(stream, id);
            }
            Ok(all) => {
                let complete = all.len() < CATCH_UP_EVENTS;
                let upto = if complete {
                    rev
                } else {
                    all.last().map_or(rev, |e| e.kv.mod_revision)
                };
                let mine: Vec<Event> = all.into_iter().filter(|e| w.wants(e)).collect();
                if !mine.is_empty() {
                    w.sent_events = true;
                    for resp in responses(w, id, mine, h.at(rev)) {
                        match send(w, resp) {
                            Sent::Ok => {}
                            Sent::Full => return, // try again next tick from the same revision
                            Sent::Closed => {
                                self.drop_watcher(stream, id);
                                return;
                            }
                        }
                    }
                }
                w.next_rev = upto + 1;
                if complete {
                    w.lagging = false;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use synod_kv::{Command, PutRequest};

    /// The group most tests watch.
    const G: ShardId = 1;

    fn hdr() -> HeaderInfo {
        HeaderInfo {
            cluster_id: 1,
            member_id: 2,
            term: 3,
        }
    }

    fn put(kv: &mut KvStore, k: &str, v: &str) -> Vec<Event> {
        kv.apply(&Command::Put(PutRequest::new(k, v))).1
    }

    fn revs(rx: &mut mpsc::Receiver<WatchOut>) -> Vec<i64> {
        let mut out = Vec::new();
        while let Ok(r) = rx.try_recv() {
            for e in r.unwrap().events {
                out.push(e.kv.unwrap().mod_revision);
            }
        }
        out
    }

    #[test]
    fn a_snapshot_install_makes_watchers_catch_up_across_the_jump() {
        let (tx, mut rx) = mpsc::channel(64);
        let mut hub = WatchHub::default();
        let mut kv = KvStore::new();
        let mut leader = KvStore::new();
        for i in 0..3 {
            put(&mut leader, &format!("k{i}"), "v");
            put(&mut kv, &format!("k{i}"), "v");
        }
        let w = Watcher::new(b"k".to_vec(), b"l".to_vec(), 0, false, false, false, 0, tx);
        hub.add(G, 1, 0, w, &kv, hdr());
        // The leader moves on while this member is away; it then installs the
        // leader's state, whose revision is 7, without seeing events 4..=7.
        for i in 3..7 {
            put(&mut leader, &format!("k{i}"), "v");
        }
        let mut kv = leader;
        hub.restored(G);
        // An entry applied right after the install: not published ahead of the gap.
        let evs = put(&mut kv, "k7", "v");
        hub.publish(G, &evs, &kv, hdr());
        assert_eq!(revs(&mut rx), Vec::<i64>::new());
        hub.catch_up(G, &kv, hdr());
        assert_eq!(revs(&mut rx), vec![5, 6, 7, 8, 9]);
        let evs = put(&mut kv, "k8", "v");
        hub.publish(G, &evs, &kv, hdr());
        assert_eq!(revs(&mut rx), vec![10], "synced again after the catch-up");
    }

    #[test]
    fn a_full_queue_makes_a_watcher_lag_and_catch_up_without_gaps() {
        let mut kv = KvStore::new();
        let mut hub = WatchHub::default();
        let (tx, mut rx) = mpsc::channel(2);
        let w = Watcher::new(b"a".to_vec(), vec![0], 0, false, false, false, 0, tx);
        hub.add(G, 1, 7, w, &kv, hdr());
        let mut want = Vec::new();
        for i in 0..6 {
            let evs = put(&mut kv, "a", &i.to_string());
            want.push(kv.revision());
            hub.publish(G, &evs, &kv, hdr());
        }
        let mut got = revs(&mut rx);
        for _ in 0..10 {
            hub.catch_up(G, &kv, hdr());
            got.extend(revs(&mut rx));
        }
        assert_eq!(got, want);
        // Other keys are not delivered, and the watcher is synced again.
        let evs = put(&mut kv, "0", "x");
        hub.publish(G, &evs, &kv, hdr());
        assert!(revs(&mut rx).is_empty());
        assert_eq!(
            hub.synced_revision(1, G, |_| kv.revision()),
            Some((G, kv.revision()))
        );
    }

    #[test]
    fn a_live_delete_range_reaches_a_prev_kv_watcher_with_the_old_values() {
        let mut kv = KvStore::new();
        let mut hub = WatchHub::default();
        put(&mut kv, "a", "1");
        put(&mut kv, "b", "2");
        let (with_tx, mut with_rx) = mpsc::channel(8);
        let (without_tx, mut without_rx) = mpsc::channel(8);
        let all = |prev, tx| Watcher::new(b"a".to_vec(), vec![0], 0, prev, false, false, 0, tx);
        hub.add(G, 1, 1, all(true, with_tx), &kv, hdr());
        hub.add(G, 1, 2, all(false, without_tx), &kv, hdr());
        let del = synod_kv::DeleteRangeRequest {
            key: b"a".to_vec(),
            range_end: vec![0],
            prev_kv: false,
        };
        let (out, evs) = kv.apply(&Command::DeleteRange(del));
        out.unwrap();
        hub.publish(G, &evs, &kv, hdr());
        let prevs = |rx: &mut mpsc::Receiver<WatchOut>| -> Vec<Option<Vec<u8>>> {
            let r = rx.try_recv().unwrap().unwrap();
            r.events
                .into_iter()
                .map(|e| e.prev_kv.map(|p| p.value))
                .collect()
        };
        assert_eq!(
            prevs(&mut with_rx),
            vec![Some(b"1".to_vec()), Some(b"2".to_vec())]
        );
        assert_eq!(prevs(&mut without_rx), vec![None, None]);
    }

    #[test]
    fn a_start_revision_replays_history_and_a_compacted_one_cancels() {
        let mut kv = KvStore::new();
        for i in 0..3 {
            put(&mut kv, "k", &i.to_string());
        }
        let mut hub = WatchHub::default();
        let (tx, mut rx) = mpsc::channel(16);
        hub.add(
            G,
            1,
            1,
            Watcher::new(b"k".to_vec(), vec![], 3, false, false, false, 0, tx.clone()),
            &kv,
            hdr(),
        );
        assert_eq!(revs(&mut rx), vec![3, 4]);
        kv.apply(&Command::Compact { revision: 3 }).0.unwrap();
        hub.add(
            G,
            1,
            2,
            Watcher::new(b"k".to_vec(), vec![], 2, false, false, false, 0, tx),
            &kv,
            hdr(),
        );
        let r = rx.try_recv().unwrap().unwrap();
        assert!(r.canceled);
        assert_eq!(r.compact_revision, 3);
        assert!(!hub.exists(1, 2));
    }

    #[test]
    fn progress_notifications_come_when_due_to_quiet_synced_watchers_only() {
        let mut kv = KvStore::new();
        put(&mut kv, "a", "1");
        let (tx, mut rx) = mpsc::channel(16);
        let mut hub = WatchHub::default();
        let every = Duration::from_secs(60);
        let sec = Duration::from_secs(1);
        let mut w = Watcher::new(b"a".to_vec(), vec![], 0, false, false, false, 0, tx.clone());
        w.progress_every = Some(every);
        hub.add(G, 1, 7, w, &kv, hdr());
        let quiet = Watcher::new(b"a".to_vec(), vec![], 0, false, false, false, 0, tx);
        hub.add(G, 1, 8, quiet, &kv, hdr());
        let t0 = Instant::now();
        hub.notify_progress(G, t0, &kv, hdr());
        assert!(rx.try_recv().is_err(), "not due yet");
        hub.notify_progress(G, t0 + every + sec, &kv, hdr());
        let r = rx.try_recv().unwrap().unwrap();
        assert_eq!(
            (r.watch_id, r.events.len(), r.header.unwrap().revision),
            (7, 0, kv.revision()),
            "one empty response at the current revision, to the watcher that asked"
        );
        assert!(rx.try_recv().is_err());
        // Events during the next interval: no notification at its end.
        let ev = put(&mut kv, "a", "2");
        hub.publish(G, &ev, &kv, hdr());
        assert_eq!(revs(&mut rx), vec![kv.revision(); 2]);
        hub.notify_progress(G, t0 + 2 * every + 2 * sec, &kv, hdr());
        assert!(rx.try_recv().is_err(), "events were sent in this interval");
        // A quiet interval: notified again, at the new revision.
        hub.notify_progress(G, t0 + 3 * every + 3 * sec, &kv, hdr());
        let r = rx.try_recv().unwrap().unwrap();
        assert_eq!((r.watch_id, r.header.unwrap().revision), (7, kv.revision()));
        assert_eq!(
            hub.groups[&G].progress_due.len(),
            1,
            "one pending check per watcher"
        );
        assert!(hub.cancel(1, 7));
        assert!(
            hub.groups[&G].progress_due.is_empty(),
            "a cancel drops its pending check"
        );
    }

    #[test]
    fn each_group_reaches_only_its_own_watchers_with_its_own_headers() {
        // Two groups, each with its own store (revisions count separately).
        let (mut kv1, mut kv2) = (KvStore::new(), KvStore::new());
        let h2 = HeaderInfo { term: 9, ..hdr() };
        let mut hub = WatchHub::default();
        let (tx, mut rx) = mpsc::channel(16);
        let (tx2, mut rx2) = mpsc::channel(16);
        let w = |k: &str, tx: &mpsc::Sender<WatchOut>| {
            Watcher::new(k.into(), vec![0], 0, false, false, false, 0, tx.clone())
        };
        hub.add(1, 1, 1, w("a", &tx), &kv1, hdr());
        hub.add(2, 1, 2, w("n", &tx), &kv2, h2);
        hub.add(2, 2, 1, w("n", &tx2), &kv2, h2);
        assert_eq!(hub.len(), 3);
        for i in 0..3 {
            put(&mut kv1, "a", &i.to_string());
        }
        let ev = put(&mut kv2, "n", "x");
        hub.publish(2, &ev, &kv2, h2);
        // Group 2's event, at group 2's revision and term, to its two watchers.
        let r = rx.try_recv().unwrap().unwrap();
        let hd = r.header.unwrap();
        assert_eq!(
            (r.watch_id, hd.revision, hd.raft_term),
            (2, kv2.revision(), 9)
        );
        assert!(rx.try_recv().is_err(), "group 1's watcher saw nothing");
        assert_eq!(rx2.try_recv().unwrap().unwrap().watch_id, 1);
        // Group 1's history reaches its watcher only.
        let ev = put(&mut kv1, "a", "3");
        hub.publish(1, &ev, &kv1, hdr());
        let r = rx.try_recv().unwrap().unwrap();
        assert_eq!((r.watch_id, r.events.len()), (1, 1));
        assert_eq!(r.header.unwrap().revision, kv1.revision());
        assert!(rx2.try_recv().is_err());
        // Progress: one group per stream gives that group's revision; a
        // stream over two groups gets none.
        let rev = |s: ShardId| {
            if s == 1 {
                kv1.revision()
            } else {
                kv2.revision()
            }
        };
        assert_eq!(hub.synced_revision(2, 1, rev), Some((2, kv2.revision())));
        assert_eq!(hub.synced_revision(1, 1, rev), None);
        assert_eq!(hub.synced_revision(3, 1, rev), Some((1, kv1.revision())));
        // Cancels find the watcher's group by its id alone.
        assert!(hub.cancel(1, 2));
        assert!(!hub.cancel(1, 2));
        assert_eq!(hub.synced_revision(1, 1, rev), Some((1, kv1.revision())));
        hub.cancel_stream(2);
        assert_eq!(hub.len(), 1);
        assert!(!hub.groups.contains_key(&2), "an empty group is forgotten");
        // A closed stream is dropped from the index too.
        drop(rx);
        let ev = put(&mut kv1, "a", "4");
        hub.publish(1, &ev, &kv1, hdr());
        assert_eq!(hub.len(), 0);
    }
}
