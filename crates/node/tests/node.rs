//! A single node driven by hand: recovery, sessions, refusals.

use synod_kv::{Command, PutRequest, RangeRequest};
use synod_node::{
    ClientError, ClientOp, ClientReply, ClientRequest, ClientResponse, GroupInit, Node, NodeConfig,
    StateMachine,
};
use synod_raft::{ConfState, Entry, EntryKind, HardState, Init, Role, SnapshotMeta};

const SHARD: u64 = 7;

fn one_node(max_pending: usize) -> Node {
    let cfg = NodeConfig {
        id: 1,
        max_pending,
        ..NodeConfig::default()
    };
    Node::new(
        cfg,
        vec![GroupInit {
            shard: SHARD,
            range: Some(synod_node::KeyRange::all()),
            raft: Init::Bootstrap {
                voters: vec![1],
                learners: Vec::new(),
            },
            snapshot_data: None,
        }],
    )
    .unwrap()
}

/// Runs Readies (persisting nothing: a single node needs no peers) until idle.
fn pump(n: &mut Node) -> Vec<ClientReply> {
    let mut out = Vec::new();
    for _ in 0..100 {
        if !n.has_ready() {
            break;
        }
        let mut rd = n.ready();
        out.append(&mut rd.replies);
        assert!(rd.messages.is_empty(), "a single voter sends nothing");
        n.advance(rd);
    }
    out
}

fn elect(n: &mut Node) {
    for _ in 0..100 {
        n.tick();
        pump(n);
        if n.raft(SHARD).unwrap().role() == Role::Leader {
            return;
        }
    }
    panic!("a single voter elects itself");
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

#[test]
fn a_retried_request_applies_once() {
    let mut n = one_node(100);
    elect(&mut n);
    n.request(put(9, 1, "k", "a"));
    let first = pump(&mut n);
    assert_eq!(first.len(), 1);
    assert!(first[0].result.is_ok(), "{first:?}");
    let rev = n.state_machine(SHARD).unwrap().kv().revision();
    // The same (client, seq) again: answered from the session, not re-applied.
    n.request(put(9, 1, "k", "a"));
    let again = pump(&mut n);
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].result, first[0].result);
    assert_eq!(n.state_machine(SHARD).unwrap().kv().revision(), rev);
    // A newer seq applies.
    n.request(put(9, 2, "k", "b"));
    pump(&mut n);
    assert_eq!(n.state_machine(SHARD).unwrap().kv().revision(), rev + 1);
    // An older seq is refused as stale.
    n.request(put(9, 1, "k", "c"));
    let stale = pump(&mut n);
    assert!(
        matches!(stale[0].result, Err(ClientError::StaleSequence { .. })),
        "{stale:?}"
    );
}

#[test]
fn a_linearizable_read_sees_the_write_before_it() {
    let mut n = one_node(100);
    elect(&mut n);
    n.request(put(3, 1, "x", "1"));
    pump(&mut n);
    n.request(ClientRequest {
        client: 3,
        seq: 2,
        op: ClientOp::Range {
            req: RangeRequest::key("x"),
            serializable: false,
            auth: None,
        },
    });
    let r = pump(&mut n);
    match &r[0].result {
        Ok(ClientResponse::Range(rr)) => assert_eq!(rr.kvs[0].value, b"1"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn bad_requests_get_typed_errors() {
    let mut n = one_node(1);
    // Not leader yet.
    n.request(put(1, 1, "k", "v"));
    let r = pump(&mut n);
    assert!(
        matches!(r[0].result, Err(ClientError::NotLeader { .. })),
        "{r:?}"
    );
    // Client id 0 is reserved.
    n.request(put(0, 1, "k", "v"));
    let r = pump(&mut n);
    assert!(matches!(r[0].result, Err(ClientError::Invalid(_))), "{r:?}");
    // Beyond max_pending: Busy, nothing taken.
    elect(&mut n);
    n.request(put(1, 1, "k", "v"));
    n.request(put(2, 1, "k", "w"));
    let r = pump(&mut n);
    assert!(
        r.iter()
            .any(|x| x.client == 2 && x.result == Err(ClientError::Busy)),
        "{r:?}"
    );
    assert!(r.iter().any(|x| x.client == 1 && x.result.is_ok()), "{r:?}");
}

#[test]
fn a_torn_tail_with_a_newer_term_recovers_that_term_without_a_vote() {
    // The disk kept entries of term 3 but not the hard state written after them.
    let meta = SnapshotMeta {
        index: 5,
        term: 1,
        conf_state: ConfState {
            voters: [1, 2, 3].into_iter().collect(),
            ..ConfState::default()
        },
    };
    let n = Node::new(
        NodeConfig::default(),
        vec![GroupInit {
            shard: SHARD,
            range: Some(synod_node::KeyRange::all()),
            raft: Init::Restore {
                hard_state: HardState {
                    term: 2,
                    vote: 2,
                    commit: 5,
                },
                snapshot: Some(meta),
                entries: vec![Entry {
                    term: 3,
                    index: 6,
                    kind: EntryKind::Normal,
                    data: Vec::new(),
                }],
            },
            snapshot_data: Some(StateMachine::new(10).snapshot()),
        }],
    )
    .expect("a torn tail is recoverable");
    let raft = n.raft(SHARD).unwrap();
    assert_eq!(raft.term(), 3);
    assert_eq!(raft.vote(), 0);
    assert_eq!(raft.last_index(), 6);
}
