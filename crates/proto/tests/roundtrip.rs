//! Encode-then-decode round trips of nested messages from every package.

use prost::Message;
use synod_proto::authpb::{permission, Permission};
use synod_proto::etcdserverpb::{
    response_op, AuthRoleGetResponse, DeleteRangeResponse, DowngradeInfo, Member,
    MemberListResponse, PutResponse, RangeResponse, ResponseHeader, ResponseOp, StatusResponse,
    TxnResponse, WatchResponse,
};
use synod_proto::mvccpb::{event, Event, KeyValue};
use synod_proto::v3electionpb::LeaderResponse;

fn round_trip<M: Message + Default + PartialEq + std::fmt::Debug>(msg: &M) {
    let bytes = msg.encode_to_vec();
    assert_eq!(bytes.len(), msg.encoded_len());
    let back = M::decode(bytes.as_slice()).expect("own encoding decodes");
    assert_eq!(&back, msg);
    // Length-delimited framing (as gRPC streams carry messages) too.
    let framed = msg.encode_length_delimited_to_vec();
    assert_eq!(&M::decode_length_delimited(framed.as_slice()).unwrap(), msg);
}

fn kv(key: &str, value: &str, rev: i64) -> KeyValue {
    KeyValue {
        key: key.as_bytes().to_vec(),
        create_revision: rev - 1,
        mod_revision: rev,
        version: 3,
        value: value.as_bytes().to_vec(),
        lease: -7, // negative int64 survives
    }
}

fn header() -> Option<ResponseHeader> {
    Some(ResponseHeader {
        cluster_id: u64::MAX,
        member_id: 1,
        revision: i64::MAX,
        raft_term: 9,
    })
}

#[test]
fn nested_txn_response() {
    let inner = TxnResponse {
        header: header(),
        succeeded: false,
        responses: vec![ResponseOp {
            response: Some(response_op::Response::ResponsePut(PutResponse {
                header: None,
                prev_kv: Some(kv("a", "", 2)),
            })),
        }],
    };
    let txn = TxnResponse {
        header: header(),
        succeeded: true,
        responses: vec![
            ResponseOp {
                response: Some(response_op::Response::ResponseRange(RangeResponse {
                    header: header(),
                    kvs: vec![kv("a", "1", 4), kv("b", "\u{0}\u{ff}", 5)],
                    more: true,
                    count: 2,
                })),
            },
            ResponseOp {
                response: Some(response_op::Response::ResponseDeleteRange(
                    DeleteRangeResponse {
                        header: None,
                        deleted: 1,
                        prev_kvs: vec![kv("c", "x", 3)],
                    },
                )),
            },
            ResponseOp {
                response: Some(response_op::Response::ResponseTxn(inner)),
            },
            ResponseOp { response: None },
        ],
    };
    round_trip(&txn);
}

#[test]
fn watch_response_with_events() {
    let resp = WatchResponse {
        header: header(),
        watch_id: 42,
        created: true,
        events: vec![
            Event {
                r#type: event::EventType::Put as i32,
                kv: Some(kv("k", "v2", 10)),
                prev_kv: Some(kv("k", "v1", 9)),
            },
            Event {
                r#type: event::EventType::Delete as i32,
                kv: Some(KeyValue {
                    key: b"k".to_vec(),
                    mod_revision: 11,
                    ..Default::default()
                }),
                prev_kv: None,
            },
        ],
        ..Default::default()
    };
    round_trip(&resp);
}

#[test]
fn status_and_members() {
    let status = StatusResponse {
        header: header(),
        version: "3.5.0".into(),
        db_size: 1 << 40,
        leader: 3,
        raft_index: 100,
        raft_term: 4,
        raft_applied_index: 99,
        errors: vec!["NOSPACE".into()],
        db_size_in_use: 1 << 20,
        is_learner: true,
        storage_version: "3.6.0".into(),
        db_size_quota: 1 << 31,
        downgrade_info: Some(DowngradeInfo {
            enabled: true,
            target_version: "3.4.0".into(),
        }),
    };
    round_trip(&status);
    let members = MemberListResponse {
        header: header(),
        members: (1..=3)
            .map(|i| Member {
                id: i,
                name: format!("n{i}"),
                peer_ur_ls: vec![format!("http://127.0.0.1:{i}2380")],
                client_ur_ls: vec![format!("http://127.0.0.1:{i}2379")],
                is_learner: i == 3,
            })
            .collect(),
    };
    round_trip(&members);
}

#[test]
fn auth_and_election_messages() {
    round_trip(&AuthRoleGetResponse {
        header: header(),
        perm: vec![
            Permission {
                perm_type: permission::Type::Read as i32,
                key: b"a".to_vec(),
                range_end: b"b".to_vec(),
            },
            Permission {
                perm_type: permission::Type::Write as i32,
                key: b"x".to_vec(),
                range_end: vec![0],
            },
        ],
    });
    round_trip(&LeaderResponse {
        header: header(),
        kv: Some(kv("election/1", "me", 12)),
    });
}
