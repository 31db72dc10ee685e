//! Three hosts driven by hand over a queue that the test controls: the
//! host's decisions (forwarding, failover, held replies, the store's commit
//! schedule) one at a time, with the messages in flight visible.

use std::collections::VecDeque;

use synod_kv::{Command, PutRequest, RangeRequest};
use synod_node::{
    ClientError, ClientOp, ClientReply, ClientRequest, ClientResponse, GroupInit, Host, HostBug,
    HostConfig, HostMsg, Node, NodeConfig,
};
use synod_raft::{Init, NodeId, Role};

const SHARD: u64 = 1;

struct Cluster {
    hosts: Vec<Host>,
    /// (from, to, message) in flight.
    wire: VecDeque<(NodeId, NodeId, HostMsg)>,
    /// Replies that came out, by host and token.
    replies: Vec<(NodeId, u64, ClientReply)>,
    /// Store commits the hosts asked for: (host, index).
    commits: Vec<(NodeId, u64)>,
    /// Links that drop what crosses them (both directions).
    cut: Vec<NodeId>,
}

impl Cluster {
    fn new(bug: Option<HostBug>) -> Cluster {
        Cluster::with_ranges(bug, vec![synod_node::KeyRange::all()])
    }

    /// Three hosts, each hosting one group per range (shard ids from 1).
    fn with_ranges(bug: Option<HostBug>, ranges: Vec<synod_node::KeyRange>) -> Cluster {
        let hosts = (1..=3)
            .map(|id| {
                let groups = ranges
                    .iter()
                    .enumerate()
                    .map(|(i, range)| GroupInit {
                        shard: SHARD + i as u64,
                        range: Some(range.clone()),
                        raft: Init::Bootstrap {
                            voters: vec![1, 2, 3],
                            learners: Vec::new(),
                        },
                        snapshot_data: None,
                    })
                    .collect();
                let node = Node::new(
                    NodeConfig {
                        id,
                        seed: id,
                        ..NodeConfig::default()
                    },
                    groups,
                )
                .unwrap();
                Host::new(
                    node,
                    HostConfig {
                        name: format!("h{id}"),
                        store_commit_ticks: 3,
                        store_commit_entries: 1_000,
                        bug,
                        ..HostConfig::default()
                    },
                )
            })
            .collect();
        Cluster {
            hosts,
            wire: VecDeque::new(),
            replies: Vec::new(),
            commits: Vec::new(),
            cut: Vec::new(),
        }
    }

    fn host(&mut self, id: NodeId) -> &mut Host {
        &mut self.hosts[id as usize - 1]
    }

    /// Takes every host's outbox and Ready (persisting is instant here).
    fn flush(&mut self) {
        for i in 0..self.hosts.len() {
            let id = i as NodeId + 1;
            loop {
                let out = self.hosts[i].outbox();
                for (to, m) in out.sends {
                    self.wire.push_back((id, to, m));
                }
                for (t, r) in out.replies {
                    self.replies.push((id, t, r));
                }
                if let Some(index) = out.commit_store {
                    self.hosts[i].commit_store(index).unwrap();
                    self.commits.push((id, index));
                }
                if !self.hosts[i].has_ready() {
                    break;
                }
                let mut rd = self.hosts[i].ready();
                for env in rd.early_messages.drain(..).chain(rd.messages.drain(..)) {
                    let to = env.msg.to;
                    self.wire.push_back((id, to, HostMsg::Raft(env)));
                }
                self.hosts[i].advance(rd, true);
            }
        }
    }

    /// Delivers one message; false when none is in flight.
    fn deliver_one(&mut self) -> bool {
        self.flush();
        let Some((from, to, m)) = self.wire.pop_front() else {
            return false;
        };
        if !(self.cut.contains(&from) || self.cut.contains(&to)) {
            self.host(to).peer(from, m);
        }
        self.flush();
        true
    }

    /// Delivers the first message in flight that `pick` chooses, if any
    /// (the network reorders at the test's will).
    fn deliver_first(&mut self, pick: impl Fn(&(NodeId, NodeId, HostMsg)) -> bool) -> bool {
        self.flush();
        let Some(i) = self.wire.iter().position(pick) else {
            return false;
        };
        let m = self.wire.remove(i).expect("found");
        self.wire.push_front(m);
        self.deliver_one()
    }

    /// Delivers until nothing is in flight (bounded).
    fn settle(&mut self) {
        for _ in 0..100_000 {
            if !self.deliver_one() {
                return;
            }
        }
        panic!("the cluster never went quiet");
    }

    fn tick_all(&mut self) {
        for h in &mut self.hosts {
            h.tick(true);
        }
        self.flush();
    }

    fn leader(&self) -> Option<NodeId> {
        self.hosts
            .iter()
            .find(|h| {
                h.node().raft(SHARD).unwrap().role() == Role::Leader && !self.cut.contains(&h.id())
            })
            .map(|h| h.id())
    }

    fn elect(&mut self) -> NodeId {
        for _ in 0..500 {
            self.tick_all();
            self.settle();
            if let Some(l) = self.leader() {
                // Everyone knows it and has applied the leader's empty entry.
                for _ in 0..5 {
                    self.tick_all();
                    self.settle();
                }
                return l;
            }
        }
        panic!("no leader was elected");
    }

    fn revision(&self, id: NodeId) -> i64 {
        self.hosts[id as usize - 1]
            .node()
            .state_machine(SHARD)
            .unwrap()
            .kv()
            .revision()
    }

    fn take_reply(&mut self, host: NodeId, token: u64) -> Option<ClientReply> {
        let i = self
            .replies
            .iter()
            .position(|(h, t, _)| *h == host && *t == token)?;
        Some(self.replies.remove(i).2)
    }
}

fn put(client: u64, seq: u64, key: &str, value: &str) -> ClientRequest {
    ClientRequest {
        client,
        seq,
        op: ClientOp::Write(Command::Put(PutRequest {
            key: key.into(),
            value: value.into(),
            ..Default::default()
        })),
    }
}

fn follower_of(l: NodeId) -> NodeId {
    if l == 1 {
        2
    } else {
        1
    }
}

#[test]
fn a_write_at_a_follower_is_forwarded_and_answered_only_once_applied_there() {
    let mut c = Cluster::new(None);
    let l = c.elect();
    let f = follower_of(l);
    c.host(f).client(7, put(50, 1, "k", "v"));
    c.flush();
    // The follower sent it to the leader, under the client's own name.
    assert!(
        c.wire.iter().any(|(from, to, m)| *from == f
            && *to == l
            && matches!(m, HostMsg::Forward(r) if r.client == 50 && r.seq == 1)),
        "{:?}",
        c.wire
    );
    // Deliver until the leader's reply reaches the follower, ahead of the
    // news that the write committed.
    let to_f = |m: &(NodeId, NodeId, HostMsg)| m.1 == f && matches!(m.2, HostMsg::ForwardReply(_));
    let mut rev_at_reply = None;
    for _ in 0..10_000 {
        if c.deliver_first(to_f) {
            rev_at_reply = Some(c.revision(f));
            break;
        }
        assert!(c.deliver_one(), "the reply never reached the follower");
    }
    let rev_at_reply = rev_at_reply.expect("the reply reached the follower");
    let leader_rev = c.revision(l);
    assert!(
        leader_rev > rev_at_reply,
        "the follower lags the leader here"
    );
    // Held: the follower has not applied the write yet, so no answer.
    assert!(
        c.take_reply(f, 7).is_none(),
        "answered before the local apply"
    );
    assert_eq!(c.host(f).held(), 1);
    c.tick_all();
    c.settle();
    let r = c.take_reply(f, 7).expect("answered once applied");
    let Ok(ClientResponse::Write(w)) = r.result else {
        panic!("{r:?}")
    };
    assert!(c.revision(f) >= w.revision());
    assert_eq!(c.host(f).held(), 0);
}

#[test]
fn with_the_planted_bug_the_follower_answers_before_applying() {
    let mut c = Cluster::new(Some(HostBug::ReplyBeforeApply));
    let l = c.elect();
    let f = follower_of(l);
    c.host(f).client(7, put(50, 1, "k", "v"));
    let to_f = |m: &(NodeId, NodeId, HostMsg)| m.1 == f && matches!(m.2, HostMsg::ForwardReply(_));
    for _ in 0..10_000 {
        if c.deliver_first(to_f) {
            break;
        }
        assert!(c.deliver_one());
    }
    let r = c.take_reply(f, 7).expect("the bug answers at once");
    let Ok(ClientResponse::Write(w)) = r.result else {
        panic!("{r:?}")
    };
    assert!(c.revision(f) < w.revision(), "answered ahead of the apply");
}

#[test]
fn a_forward_to_a_leader_that_lost_its_role_fails_over_with_the_new_leader() {
    let mut c = Cluster::new(None);
    let l = c.elect();
    let f = follower_of(l);
    // The leader is cut off before the forward reaches it.
    c.cut.push(l);
    c.host(f).client(9, put(60, 1, "k", "v"));
    c.flush();
    c.settle();
    assert!(c.take_reply(f, 9).is_none(), "nothing can answer yet");
    assert_eq!(c.host(f).waiting(), 1);
    // The other two elect a new leader; the follower hears of it.
    let mut new = None;
    for _ in 0..500 {
        c.tick_all();
        c.settle();
        if let Some(n) = c.leader().filter(|&n| n != l) {
            new = Some(n);
            break;
        }
    }
    let new = new.expect("the majority elects a new leader");
    c.tick_all();
    c.settle();
    let r = c.take_reply(f, 9).expect("failed over at once");
    match r.result {
        // The follower itself may be the new leader (it knows none then is fine too).
        Err(ClientError::NotLeader { leader }) => {
            assert!(leader == new || leader == 0, "{leader} vs {new}")
        }
        other => panic!("{other:?}"),
    }
    // The caller retries under the same name where the hint says: applied once.
    c.host(new).client(10, put(60, 1, "k", "v"));
    c.flush();
    c.settle();
    c.tick_all();
    c.settle();
    let r = c.take_reply(new, 10).expect("the retry is answered");
    assert!(r.result.is_ok(), "{r:?}");
}

#[test]
fn a_forwarded_request_is_never_forwarded_again() {
    let mut c = Cluster::new(None);
    let l = c.elect();
    let f = follower_of(l);
    let other = 6 - l - f;
    // A peer forwards to a member that does not lead: it names the leader.
    c.host(f)
        .peer(other, HostMsg::Forward(put(70, 1, "k", "v")));
    c.flush();
    let back: Vec<_> = c
        .wire
        .iter()
        .filter(|(from, to, _)| *from == f && *to == other)
        .cloned()
        .collect();
    assert!(
        back.iter().any(|(_, _, m)| matches!(m,
            HostMsg::ForwardReply(ClientReply { result: Err(ClientError::NotLeader { leader }), .. })
                if *leader == l)),
        "{back:?}"
    );
    assert!(
        !c.wire
            .iter()
            .any(|(from, _, m)| *from == f && matches!(m, HostMsg::Forward(_))),
        "forwarded twice"
    );
}

#[test]
fn reads_and_the_store_commit_schedule() {
    let mut c = Cluster::new(None);
    let l = c.elect();
    let f = follower_of(l);
    c.commits.clear();
    for seq in 1..=5 {
        c.host(l).client(1, put(80, seq, "k", "v"));
        c.settle();
    }
    // Nothing is due before store_commit_ticks (3) have passed.
    let before = c.commits.len();
    for _ in 0..3 {
        c.tick_all();
        c.settle();
    }
    assert!(c.commits.len() > before, "a commit came due");
    let applied = c.hosts[l as usize - 1].node().applied(SHARD).unwrap();
    assert!(
        c.commits.iter().any(|&(h, i)| h == l && i == applied),
        "{:?} vs {applied}",
        c.commits
    );
    // A serializable read at the follower is answered from its own state.
    let read = ClientRequest {
        client: 81,
        seq: 1,
        op: ClientOp::Range {
            req: RangeRequest::key(b"k".to_vec()),
            serializable: true,
            auth: None,
        },
    };
    c.host(f).client(2, read);
    c.flush();
    let r = c.take_reply(f, 2).expect("served locally");
    assert!(matches!(r.result, Ok(ClientResponse::Range(_))), "{r:?}");
}

#[test]
fn a_busy_group_makes_the_store_commit_due_while_the_home_group_is_idle() {
    let mut c = Cluster::with_ranges(
        None,
        vec![
            synod_node::KeyRange::new(Vec::new(), b"m".to_vec()),
            synod_node::KeyRange::new(b"m".to_vec(), Vec::new()),
        ],
    );
    c.elect();
    for _ in 0..30 {
        c.tick_all();
        c.settle();
    }
    c.commits.clear();
    // Writes to the second group only, at whichever member leads it.
    let leader2 = (1..=3)
        .find(|&id| c.hosts[id as usize - 1].is_leader(SHARD + 1))
        .expect("the second group elected a leader");
    let home = c.hosts[leader2 as usize - 1].node().applied(SHARD);
    for seq in 1..=5 {
        c.host(leader2).client(1, put(90, seq, "zebra", "v"));
        c.settle();
    }
    for _ in 0..4 {
        c.tick_all();
        c.settle();
    }
    let h = &c.hosts[leader2 as usize - 1];
    assert_eq!(h.node().applied(SHARD), home, "the home group stayed idle");
    assert!(
        c.commits.iter().any(|&(id, _)| id == leader2),
        "no store commit came due for the busy group: {:?}",
        c.commits
    );
}

#[test]
fn a_joining_member_is_told_who_it_is_by_its_peer_url() {
    let mut c = Cluster::new(None);
    let members: Vec<synod_node::Member> = (1..=3)
        .map(|id| synod_node::Member {
            id,
            name: String::new(),
            peer_urls: vec![format!("http://10.0.0.{id}:2380")],
            client_urls: Vec::new(),
            is_learner: false,
        })
        .collect();
    for h in &mut c.hosts {
        assert!(
            h.who_joins("http://10.0.0.2:2380").is_err(),
            "no registry yet"
        );
        h.node_mut().set_bootstrap_members(members.clone());
    }
    c.elect();
    for _ in 0..20 {
        c.tick_all();
        c.settle();
    }
    for id in 1..=3 {
        let (who, all) = c.host(id).who_joins("http://10.0.0.2:2380").unwrap();
        assert_eq!(who, 2);
        assert_eq!(all.len(), 3);
        let refused = c.host(id).who_joins("http://10.0.0.9:2380").unwrap_err();
        assert!(refused.contains("add it first"), "{refused}");
    }
}
