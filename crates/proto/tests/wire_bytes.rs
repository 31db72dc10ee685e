//! Byte-exact encodings. Every expected byte string below was derived by hand
//! from the protobuf encoding rules (tag = field_number << 3 | wire_type;
//! wire type 0 = varint, 2 = length-delimited; proto3 scalars at their default
//! value are omitted, but a oneof member is always written once set) and the
//! field numbers of etcd's API. A wrong field number, type or oneof shape
//! changes the bytes and fails the test.

use prost::Message;
use synod_proto::authpb::{permission, Permission};
use synod_proto::etcdserverpb::{
    alarm_request, compare, downgrade_request, range_request, request_op, watch_create_request,
    watch_request, AlarmRequest, AlarmType, AuthRoleGrantPermissionRequest, AuthenticateRequest,
    CompactionRequest, Compare, DeleteRangeRequest, DowngradeRequest, HashKvRequest,
    LeaseGrantRequest, LeaseKeepAliveRequest, LeaseTimeToLiveRequest, MemberAddRequest,
    MemberRemoveRequest, MoveLeaderRequest, PutRequest, RangeRequest, RangeResponse, RequestOp,
    ResponseHeader, StatusRequest, TxnRequest, WatchCancelRequest, WatchCreateRequest,
    WatchProgressRequest, WatchRequest, WatchResponse,
};
use synod_proto::mvccpb::{event, Event, KeyValue};
use synod_proto::v3electionpb::{CampaignRequest, LeaderKey, ProclaimRequest};
use synod_proto::v3lockpb::{LockRequest, UnlockRequest};

/// Parses "0a 03 66" into bytes.
fn hex(s: &str) -> Vec<u8> {
    s.split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).expect("test vector is hex"))
        .collect()
}

/// Encodes `msg`, compares with `expected`, and decodes `expected` back to `msg`.
fn check<M: Message + Default + PartialEq + std::fmt::Debug>(msg: &M, expected: &str) {
    let want = hex(expected);
    let got = msg.encode_to_vec();
    assert_eq!(
        got, want,
        "encoding of {msg:?}\n got  {got:02x?}\n want {want:02x?}"
    );
    let back = M::decode(want.as_slice()).expect("expected bytes decode");
    assert_eq!(&back, msg, "decoding the expected bytes");
}

// ------------------------------------------------------------------ KV

#[test]
fn put_request() {
    let put = PutRequest {
        key: b"foo".to_vec(),
        value: b"bar".to_vec(),
        lease: 5,
        prev_kv: true,
        ..Default::default()
    };
    check(&put, "0a 03 66 6f 6f 12 03 62 61 72 18 05 20 01");
    let flags = PutRequest {
        key: b"k".to_vec(),
        ignore_value: true,
        ignore_lease: true,
        ..Default::default()
    };
    // ignore_value = 5 -> 0x28, ignore_lease = 6 -> 0x30.
    check(&flags, "0a 01 6b 28 01 30 01");
}

#[test]
fn range_request_with_negative_revision_and_enums() {
    let range = RangeRequest {
        key: b"foo".to_vec(),
        range_end: b"fop".to_vec(),
        limit: 10,
        revision: -1, // int64 -1 is a ten-byte varint
        sort_order: range_request::SortOrder::Descend as i32,
        sort_target: range_request::SortTarget::Mod as i32,
        serializable: true,
        count_only: true,
        min_mod_revision: 2,
        max_create_revision: 300, // 300 = 0xac 0x02
        ..Default::default()
    };
    check(
        &range,
        "0a 03 66 6f 6f 12 03 66 6f 70 18 0a 20 ff ff ff ff ff ff ff ff ff 01 \
         28 02 30 03 38 01 48 01 50 02 68 ac 02",
    );
}

#[test]
fn delete_range_and_compaction() {
    let del = DeleteRangeRequest {
        key: b"k".to_vec(),
        range_end: vec![0],
        prev_kv: true,
    };
    check(&del, "0a 01 6b 12 01 00 18 01");
    // 1000 = 0b111_1101000 -> e8 07.
    let compact = CompactionRequest {
        revision: 1000,
        physical: true,
    };
    check(&compact, "08 e8 07 10 01");
}

#[test]
fn compare_target_union_each_case() {
    // The classic "key does not exist" guard: version(k) == 0. Result and
    // target are both 0 (omitted) but the oneof member is written though 0.
    let absent = Compare {
        key: b"k".to_vec(),
        target_union: Some(compare::TargetUnion::Version(0)),
        ..Default::default()
    };
    check(&absent, "1a 01 6b 20 00");

    let create = Compare {
        result: compare::CompareResult::Less as i32,
        target: compare::CompareTarget::Create as i32,
        key: b"k".to_vec(),
        target_union: Some(compare::TargetUnion::CreateRevision(300)),
        ..Default::default()
    };
    check(&create, "08 02 10 01 1a 01 6b 28 ac 02");

    let modr = Compare {
        result: compare::CompareResult::NotEqual as i32,
        target: compare::CompareTarget::Mod as i32,
        key: b"k".to_vec(),
        target_union: Some(compare::TargetUnion::ModRevision(7)),
        ..Default::default()
    };
    check(&modr, "08 03 10 02 1a 01 6b 30 07");

    let value = Compare {
        target: compare::CompareTarget::Value as i32,
        key: b"k".to_vec(),
        target_union: Some(compare::TargetUnion::Value(b"v".to_vec())),
        ..Default::default()
    };
    check(&value, "10 03 1a 01 6b 3a 01 76");

    let lease = Compare {
        result: compare::CompareResult::Greater as i32,
        target: compare::CompareTarget::Lease as i32,
        key: b"k".to_vec(),
        target_union: Some(compare::TargetUnion::Lease(5)),
        ..Default::default()
    };
    check(&lease, "08 01 10 04 1a 01 6b 40 05");

    // No oneof member at all: nothing but the key.
    let bare = Compare {
        key: b"k".to_vec(),
        ..Default::default()
    };
    check(&bare, "1a 01 6b");
}

#[test]
fn compare_range_end_field_64() {
    // Field 64, wire type 2: tag 514 = varint 82 04. prost writes fields in
    // ascending field-number order, oneof members included, as etcd's
    // marshaller does, so range_end comes after the oneof member (tag 4).
    // The reverse order is valid protobuf too and must decode the same.
    let cmp = Compare {
        key: b"a".to_vec(),
        range_end: b"b".to_vec(),
        target_union: Some(compare::TargetUnion::Version(0)),
        ..Default::default()
    };
    check(&cmp, "1a 01 61 20 00 82 04 01 62");
    let reordered = hex("1a 01 61 82 04 01 62 20 00");
    assert_eq!(Compare::decode(reordered.as_slice()).unwrap(), cmp);
}

#[test]
fn request_op_each_case() {
    let range = RequestOp {
        request: Some(request_op::Request::RequestRange(RangeRequest {
            key: b"a".to_vec(),
            ..Default::default()
        })),
    };
    check(&range, "0a 03 0a 01 61");
    let put = RequestOp {
        request: Some(request_op::Request::RequestPut(PutRequest {
            key: b"a".to_vec(),
            value: b"b".to_vec(),
            ..Default::default()
        })),
    };
    check(&put, "12 06 0a 01 61 12 01 62");
    let del = RequestOp {
        request: Some(request_op::Request::RequestDeleteRange(
            DeleteRangeRequest {
                key: b"a".to_vec(),
                ..Default::default()
            },
        )),
    };
    check(&del, "1a 03 0a 01 61");
    // An empty nested message is still present: tag and zero length.
    let txn = RequestOp {
        request: Some(request_op::Request::RequestTxn(TxnRequest::default())),
    };
    check(&txn, "22 00");
    let empty_range = RequestOp {
        request: Some(request_op::Request::RequestRange(RangeRequest::default())),
    };
    check(&empty_range, "0a 00");
    check(&RequestOp { request: None }, "");
}

#[test]
fn txn_request() {
    let txn = TxnRequest {
        compare: vec![Compare {
            key: b"k".to_vec(),
            target_union: Some(compare::TargetUnion::Version(0)),
            ..Default::default()
        }],
        success: vec![RequestOp {
            request: Some(request_op::Request::RequestPut(PutRequest {
                key: b"k".to_vec(),
                value: b"v".to_vec(),
                ..Default::default()
            })),
        }],
        failure: vec![RequestOp {
            request: Some(request_op::Request::RequestRange(RangeRequest {
                key: b"k".to_vec(),
                ..Default::default()
            })),
        }],
    };
    check(
        &txn,
        "0a 05 1a 01 6b 20 00 \
         12 08 12 06 0a 01 6b 12 01 76 \
         1a 05 0a 03 0a 01 6b",
    );
}

#[test]
fn range_response_with_header_and_kv() {
    let resp = RangeResponse {
        header: Some(ResponseHeader {
            cluster_id: 1,
            member_id: 2,
            revision: 3,
            raft_term: 4,
        }),
        kvs: vec![KeyValue {
            key: b"foo".to_vec(),
            create_revision: 2,
            mod_revision: 3,
            version: 1,
            value: b"bar".to_vec(),
            lease: 0,
        }],
        more: false,
        count: 1,
    };
    check(
        &resp,
        "0a 08 08 01 10 02 18 03 20 04 \
         12 10 0a 03 66 6f 6f 10 02 18 03 20 01 2a 03 62 61 72 \
         20 01",
    );
}

// ------------------------------------------------------------------ Watch

#[test]
fn watch_request_each_case() {
    let create = WatchRequest {
        request_union: Some(watch_request::RequestUnion::CreateRequest(
            WatchCreateRequest {
                key: b"foo".to_vec(),
                range_end: b"fop".to_vec(),
                start_revision: 5,
                progress_notify: true,
                filters: vec![watch_create_request::FilterType::Nodelete as i32],
                prev_kv: true,
                watch_id: 3,
                fragment: true,
            },
        )),
    };
    // proto3 packs repeated enums: field 5, wire type 2 -> 2a, len 1, value 1.
    check(
        &create,
        "0a 17 0a 03 66 6f 6f 12 03 66 6f 70 18 05 20 01 2a 01 01 30 01 38 03 40 01",
    );
    let both_filters = WatchCreateRequest {
        key: b"a".to_vec(),
        filters: vec![
            watch_create_request::FilterType::Noput as i32,
            watch_create_request::FilterType::Nodelete as i32,
        ],
        ..Default::default()
    };
    check(&both_filters, "0a 01 61 2a 02 00 01");
    let cancel = WatchRequest {
        request_union: Some(watch_request::RequestUnion::CancelRequest(
            WatchCancelRequest { watch_id: 7 },
        )),
    };
    check(&cancel, "12 02 08 07");
    let progress = WatchRequest {
        request_union: Some(watch_request::RequestUnion::ProgressRequest(
            WatchProgressRequest {},
        )),
    };
    check(&progress, "1a 00");
}

#[test]
fn watch_response_events_are_field_11() {
    // Field 11, wire type 2: tag 0x5a.
    let resp = WatchResponse {
        watch_id: 1,
        events: vec![Event {
            r#type: event::EventType::Delete as i32,
            kv: Some(KeyValue {
                key: b"a".to_vec(),
                mod_revision: 9,
                ..Default::default()
            }),
            prev_kv: None,
        }],
        ..Default::default()
    };
    check(&resp, "10 01 5a 09 08 01 12 05 0a 01 61 18 09");
    let canceled = WatchResponse {
        watch_id: 2,
        canceled: true,
        compact_revision: 4,
        cancel_reason: "x".to_string(),
        fragment: true,
        ..Default::default()
    };
    check(&canceled, "10 02 20 01 28 04 32 01 78 38 01");
}

// ------------------------------------------------------------------ Lease

#[test]
fn lease_requests() {
    // 4660 = 36 * 128 + 52 -> b4 24.
    let grant = LeaseGrantRequest { ttl: 10, id: 4660 };
    check(&grant, "08 0a 10 b4 24");
    check(&LeaseKeepAliveRequest { id: 1 }, "08 01");
    check(&LeaseTimeToLiveRequest { id: 5, keys: true }, "08 05 10 01");
}

// ------------------------------------------------------------------ Cluster

#[test]
fn cluster_requests() {
    let add = MemberAddRequest {
        peer_ur_ls: vec!["http://a:2380".to_string()],
        is_learner: true,
    };
    check(&add, "0a 0d 68 74 74 70 3a 2f 2f 61 3a 32 33 38 30 10 01");
    // uint64::MAX is a ten-byte varint.
    check(
        &MemberRemoveRequest { id: u64::MAX },
        "08 ff ff ff ff ff ff ff ff ff 01",
    );
}

// ------------------------------------------------------------------ Maintenance

#[test]
fn maintenance_requests() {
    check(&StatusRequest {}, "");
    let alarm = AlarmRequest {
        action: alarm_request::AlarmAction::Activate as i32,
        member_id: 2,
        alarm: AlarmType::Nospace as i32,
    };
    check(&alarm, "08 01 10 02 18 01");
    check(&HashKvRequest { revision: 3 }, "08 03");
    check(&MoveLeaderRequest { target_id: 9 }, "08 09");
    let down = DowngradeRequest {
        action: downgrade_request::DowngradeAction::Enable as i32,
        version: "3.5".to_string(),
    };
    check(&down, "08 01 12 03 33 2e 35");
}

// ------------------------------------------------------------------ Auth

#[test]
fn auth_requests() {
    let login = AuthenticateRequest {
        name: "root".to_string(),
        password: "pw".to_string(),
    };
    check(&login, "0a 04 72 6f 6f 74 12 02 70 77");
    let grant = AuthRoleGrantPermissionRequest {
        name: "r".to_string(),
        perm: Some(Permission {
            perm_type: permission::Type::Readwrite as i32,
            key: b"a".to_vec(),
            range_end: b"b".to_vec(),
        }),
    };
    check(&grant, "0a 01 72 12 08 08 02 12 01 61 1a 01 62");
}

// ------------------------------------------------------------------ Lock, Election

#[test]
fn lock_requests() {
    check(
        &LockRequest {
            name: b"m".to_vec(),
            lease: 5,
        },
        "0a 01 6d 10 05",
    );
    check(
        &UnlockRequest {
            key: b"m/1".to_vec(),
        },
        "0a 03 6d 2f 31",
    );
}

#[test]
fn election_requests() {
    let campaign = CampaignRequest {
        name: b"e".to_vec(),
        lease: 5,
        value: b"v".to_vec(),
    };
    check(&campaign, "0a 01 65 10 05 1a 01 76");
    let proclaim = ProclaimRequest {
        leader: Some(LeaderKey {
            name: b"e".to_vec(),
            key: b"e/1".to_vec(),
            rev: 4,
            lease: 5,
        }),
        value: b"w".to_vec(),
    };
    check(
        &proclaim,
        "0a 0c 0a 01 65 12 03 65 2f 31 18 04 20 05 12 01 77",
    );
}

// ------------------------------------------------------------------ decoding rules

#[test]
fn unknown_fields_are_skipped_and_last_scalar_wins() {
    // A PutRequest with an unknown field 15 (varint) in the middle, and the
    // lease given twice: proto3 decoders skip the former and keep the last.
    let bytes = hex("0a 01 6b 78 2a 18 01 18 09");
    let put = PutRequest::decode(bytes.as_slice()).unwrap();
    assert_eq!(put.key, b"k");
    assert_eq!(put.lease, 9);
}

#[test]
fn truncated_input_is_an_error() {
    // Length says 3 bytes of key, only 2 follow.
    assert!(PutRequest::decode(hex("0a 03 66 6f").as_slice()).is_err());
    // A varint that never ends.
    assert!(PutRequest::decode(hex("18 ff ff").as_slice()).is_err());
}
