//! Membership changes through nodes wired in memory: the replicated member
//! registry, a member joining from nothing (by snapshot), etcd's refusals.

use std::collections::BTreeMap;

use synod_node::{
    ClientError, ClientOp, ClientReply, ClientRequest, ClientResponse, GroupInit, Member,
    MemberError, MemberOp, Node, NodeConfig,
};
use synod_raft::{Init, NodeId, Role};

const SHARD: u64 = 1;

struct Net {
    nodes: BTreeMap<NodeId, Node>,
    /// Cut off: what they send and what is sent to them is lost.
    cut: Vec<NodeId>,
    replies: Vec<ClientReply>,
    seq: u64,
}

fn url(id: NodeId) -> String {
    format!("http://127.0.0.1:{}", 2380 + id)
}

fn node(id: NodeId, init: Init) -> Node {
    let cfg = NodeConfig {
        id,
        seed: id.wrapping_mul(77),
        snapshot_every: 8,
        ..NodeConfig::default()
    };
    Node::new(
        cfg,
        vec![GroupInit {
            shard: SHARD,
            range: Some(synod_node::KeyRange::all()),
            raft: init,
            snapshot_data: None,
        }],
    )
    .unwrap()
}

impl Net {
    fn new(ids: &[NodeId]) -> Net {
        let boot: Vec<Member> = ids
            .iter()
            .map(|&id| Member {
                id,
                name: String::new(),
                peer_urls: vec![url(id)],
                client_urls: Vec::new(),
                is_learner: false,
            })
            .collect();
        let mut nodes = BTreeMap::new();
        for &id in ids {
            let mut n = node(
                id,
                Init::Bootstrap {
                    voters: ids.to_vec(),
                    learners: Vec::new(),
                },
            );
            n.set_bootstrap_members(boot.clone());
            nodes.insert(id, n);
        }
        Net {
            nodes,
            cut: Vec::new(),
            replies: Vec::new(),
            seq: 0,
        }
    }

    /// Runs every node's Readies and delivers their messages until quiet.
    fn settle(&mut self) {
        for _ in 0..200 {
            let mut mail = Vec::new();
            for n in self.nodes.values_mut() {
                if !n.has_ready() {
                    continue;
                }
                let mut rd = n.ready();
                self.replies.append(&mut rd.replies);
                mail.append(&mut rd.early_messages);
                mail.append(&mut rd.messages);
                n.advance(rd);
            }
            if mail.is_empty() {
                return;
            }
            for env in mail {
                if self.cut.contains(&env.msg.to) || self.cut.contains(&env.msg.from) {
                    continue;
                }
                if let Some(n) = self.nodes.get_mut(&env.msg.to) {
                    let _ = n.step(env);
                }
            }
        }
    }

    fn run(&mut self, ticks: usize) {
        for _ in 0..ticks {
            for n in self.nodes.values_mut() {
                n.tick();
            }
            self.settle();
        }
    }

    fn leader(&mut self) -> NodeId {
        for _ in 0..300 {
            if let Some((&id, _)) = self
                .nodes
                .iter()
                .find(|(_, n)| n.raft(SHARD).unwrap().role() == Role::Leader)
            {
                return id;
            }
            self.run(1);
        }
        panic!("no leader elected");
    }

    /// Sends `op` to the leader and runs until it is answered.
    fn member(&mut self, op: MemberOp) -> Result<ClientResponse, ClientError> {
        for _ in 0..50 {
            let leader = self.leader();
            self.seq += 1;
            let (client, seq) = (42, self.seq);
            self.nodes.get_mut(&leader).unwrap().request(ClientRequest {
                client,
                seq,
                op: ClientOp::Member(op.clone()),
            });
            for _ in 0..50 {
                self.settle();
                if let Some(i) = self
                    .replies
                    .iter()
                    .position(|r| r.client == client && r.seq == seq)
                {
                    let r = self.replies.remove(i).result;
                    match r {
                        Err(ClientError::Busy) | Err(ClientError::NotLeader { .. }) => break,
                        other => return other,
                    }
                }
                self.run(1);
            }
            self.run(2);
        }
        panic!("{op:?} never answered");
    }

    fn registry(&self, id: NodeId) -> Vec<Member> {
        self.nodes[&id]
            .members(SHARD)
            .unwrap()
            .members()
            .cloned()
            .collect()
    }

    /// Every node holds the same registry (once the log has settled).
    fn agree(&mut self) -> Vec<Member> {
        self.run(10);
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        let first = self.registry(ids[0]);
        for id in &ids[1..] {
            assert_eq!(
                self.registry(*id),
                first,
                "registries of {} and {id}",
                ids[0]
            );
        }
        first
    }
}

fn err(r: Result<ClientResponse, ClientError>) -> MemberError {
    match r {
        Err(ClientError::Member(e)) => e,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn added(r: Result<ClientResponse, ClientError>) -> (NodeId, Vec<Member>) {
    match r {
        Ok(ClientResponse::Member { id, members }) => (id, members),
        other => panic!("expected a change, got {other:?}"),
    }
}

#[test]
fn members_join_leave_and_refusals_follow_etcd() {
    let mut net = Net::new(&[1, 2, 3]);
    net.leader();
    // The first leader seeds the registry with the initial peer URLs.
    net.run(20);
    let reg = net.agree();
    assert_eq!(reg.len(), 3);
    assert!(
        reg.iter().all(|m| m.peer_urls == vec![url(m.id)]),
        "{reg:?}"
    );
    assert!(
        reg.iter().all(|m| !m.is_started()),
        "nobody has published yet"
    );

    // Refusals on an unstarted cluster.
    assert_eq!(
        err(net.member(MemberOp::Add {
            peer_urls: vec![url(9)],
            learner: false
        })),
        MemberError::NotEnoughStarted
    );
    for id in [1, 2, 3] {
        let r = net.member(MemberOp::Publish {
            id,
            name: format!("n{id}"),
            client_urls: vec![format!("http://127.0.0.1:{}", 2379 + id)],
        });
        added(r);
    }
    let reg = net.agree();
    assert!(reg.iter().all(|m| m.is_started()), "{reg:?}");
    assert_eq!(
        err(net.member(MemberOp::Add {
            peer_urls: vec![url(2)],
            learner: false
        })),
        MemberError::PeerUrlExists
    );
    assert_eq!(
        err(net.member(MemberOp::Remove { id: 999 })),
        MemberError::NotFound
    );
    assert_eq!(
        err(net.member(MemberOp::Promote { id: 2 })),
        MemberError::NotLearner
    );
    assert_eq!(
        err(net.member(MemberOp::Add {
            peer_urls: vec![],
            learner: true
        })),
        MemberError::BadUrls
    );

    // Write enough for the log to be compacted, so the newcomer needs a snapshot.
    for i in 0..20 {
        net.nodes.values_mut().for_each(|_| {});
        let leader = net.leader();
        net.nodes.get_mut(&leader).unwrap().request(ClientRequest {
            client: 7,
            seq: i + 1,
            op: ClientOp::Write(synod_kv::Command::Put(synod_kv::PutRequest {
                key: format!("k{i}").into_bytes(),
                value: b"v".to_vec(),
                ..Default::default()
            })),
        });
        net.settle();
    }
    net.run(5);

    // A learner is added; a second one is refused; it cannot be promoted
    // before it has caught up.
    let (d, members) = added(net.member(MemberOp::Add {
        peer_urls: vec![url(4)],
        learner: true,
    }));
    assert!(members.iter().any(|m| m.id == d && m.is_learner));
    assert_eq!(
        err(net.member(MemberOp::Add {
            peer_urls: vec![url(5)],
            learner: true
        })),
        MemberError::TooManyLearners
    );
    assert_eq!(
        err(net.member(MemberOp::Promote { id: d })),
        MemberError::LearnerNotReady
    );

    // The learner starts from nothing and catches up; it knows everyone.
    net.nodes.insert(
        d,
        node(
            d,
            Init::Bootstrap {
                voters: vec![],
                learners: vec![],
            },
        ),
    );
    net.run(30);
    let reg = net.agree();
    assert_eq!(reg.len(), 4);
    assert!(
        net.nodes[&d].raft(SHARD).unwrap().first_index() > 1,
        "caught up by snapshot"
    );
    assert_eq!(
        net.nodes[&d].state_machine(SHARD).unwrap().kv().revision(),
        net.nodes[&1].state_machine(SHARD).unwrap().kv().revision()
    );
    added(net.member(MemberOp::Promote { id: d }));
    let reg = net.agree();
    assert!(reg.iter().all(|m| !m.is_learner), "{reg:?}");
    assert!(net.nodes[&d]
        .raft(SHARD)
        .unwrap()
        .conf_state()
        .voters
        .contains(&d));

    // Four voters, three started: one more unstarted voter is fine (3 of 5),
    // a second is not (3 of 6).
    let (e, _) = added(net.member(MemberOp::Add {
        peer_urls: vec![url(5)],
        learner: false,
    }));
    assert_eq!(
        err(net.member(MemberOp::Add {
            peer_urls: vec![url(6)],
            learner: false
        })),
        MemberError::NotEnoughStarted
    );
    added(net.member(MemberOp::Remove { id: e }));

    // Peer URLs change; then a member is removed and knows it.
    added(net.member(MemberOp::Update {
        id: 3,
        peer_urls: vec!["http://127.0.0.1:9999".into()],
    }));
    let reg = net.agree();
    assert_eq!(
        reg.iter().find(|m| m.id == 3).unwrap().peer_urls,
        vec!["http://127.0.0.1:9999".to_string()]
    );
    added(net.member(MemberOp::Remove { id: 2 }));
    net.run(10);
    assert!(net.nodes[&2].is_removed(SHARD));
    net.nodes.remove(&2);
    let reg = net.agree();
    assert_eq!(reg.iter().map(|m| m.id).collect::<Vec<_>>().len(), 3);
    assert!(net.nodes[&1].members(SHARD).unwrap().is_removed(2));
    // The group still commits without member 2.
    added(net.member(MemberOp::Update {
        id: 3,
        peer_urls: vec![url(3)],
    }));
}

#[test]
fn a_change_proposed_by_a_cut_off_leader_is_answered_not_leader_and_never_applies() {
    let mut net = Net::new(&[1, 2, 3]);
    net.leader();
    net.run(20);
    for id in [1, 2, 3] {
        added(net.member(MemberOp::Publish {
            id,
            name: format!("n{id}"),
            client_urls: Vec::new(),
        }));
    }
    let old = net.leader();
    net.cut.push(old);
    net.nodes.get_mut(&old).unwrap().request(ClientRequest {
        client: 5,
        seq: 1,
        op: ClientOp::Member(MemberOp::Add {
            peer_urls: vec![url(8)],
            learner: true,
        }),
    });
    // The others elect a leader and commit a change of their own.
    net.run(60);
    let new = net.leader();
    assert_ne!(new, old);
    added(net.member(MemberOp::Update {
        id: new,
        peer_urls: vec![url(9)],
    }));
    net.cut.clear();
    net.run(30);
    let r = net
        .replies
        .iter()
        .find(|r| r.client == 5 && r.seq == 1)
        .expect("the cut-off leader answers its request");
    assert!(
        matches!(r.result, Err(ClientError::NotLeader { .. })),
        "{:?}",
        r.result
    );
    let reg = net.agree();
    assert_eq!(reg.len(), 3, "the lost add never applied: {reg:?}");
    assert!(reg.iter().all(|m| m.peer_urls != vec![url(8)]));
}
