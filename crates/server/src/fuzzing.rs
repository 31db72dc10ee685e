//! What hostile bytes reach first, as functions of bytes: the fuzz targets
//! in `crates/server/fuzz` (cargo-fuzz, libFuzzer) and the property tests
//! below (in CI) drive the same entry points. Each must end in a value or
//! a typed error, never a panic, whatever the bytes.
//!
//! * [`peer_frames`]: a byte stream from the peer port, read frame by frame
//!   as the transport reads it (the handshake's [`Hello`], then
//!   [`PeerMsg`]s; the answers a dialer reads, [`HelloReply`]).
//! * [`grpc_request`]: a KV request's protobuf body, decoded as tonic
//!   decodes it, converted as the services convert it, and applied to a
//!   state machine holding a few keys (the first byte picks the request
//!   type). A member's decoded messages are trusted beyond this point, as
//!   etcd trusts its peers: the fault model is crashes, not lies.

use prost::Message;
use synod_kv::{Command, KvStore, PutRequest};
use synod_proto::etcdserverpb as pb;

use crate::convert;
use crate::wire::{decode_frame, FrameError, Hello, HelloReply, PeerMsg};

/// Reads `bytes` as a peer connection's stream: a [`Hello`] first, then
/// [`PeerMsg`]s until the bytes end or a frame is refused; also as a
/// dialer reading a [`HelloReply`]. Returns how many frames decoded.
pub fn peer_frames(bytes: &[u8]) -> usize {
    let mut decoded = 0;
    if let Ok(Some((_, _))) = decode_frame::<HelloReply>(bytes) {
        decoded += 1;
    }
    let mut rest = bytes;
    match decode_frame::<Hello>(rest) {
        Ok(Some((_, used))) => {
            decoded += 1;
            rest = &rest[used..];
        }
        Ok(None) | Err(_) => return decoded,
    }
    loop {
        match decode_frame::<PeerMsg>(rest) {
            Ok(Some((_, used))) => {
                assert!(
                    used >= 4 && used <= rest.len(),
                    "a frame's length is within the bytes"
                );
                decoded += 1;
                rest = &rest[used..];
            }
            Ok(None) => return decoded,
            Err(FrameError::TooLarge(n)) => {
                assert!(n > crate::wire::MAX_FRAME);
                return decoded;
            }
            Err(_) => return decoded,
        }
    }
}

/// The outcome of one [`grpc_request`].
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The body is not the request's protobuf.
    Undecodable,
    /// Refused before reaching the state machine, with this gRPC code.
    Refused(tonic::Code),
    /// Refused by the state machine, with this gRPC code.
    Failed(tonic::Code),
    /// Applied (a write) or answered (a read).
    Done,
}

/// Decodes `bytes[1..]` as the KV request `bytes[0]` picks (range, put,
/// delete range, txn, compaction), converts it and applies it to a store
/// holding a few keys over several revisions; then encodes the answer.
pub fn grpc_request(bytes: &[u8]) -> Outcome {
    let Some((&kind, body)) = bytes.split_first() else {
        return Outcome::Undecodable;
    };
    let mut kv = KvStore::new();
    for (k, v) in [("a", "1"), ("b", "2"), ("a", "3"), ("c/d", "4")] {
        let (r, _) = kv.apply(&Command::Put(PutRequest::new(k, v)));
        r.expect("seeding the store");
    }
    let apply = |kv: &mut KvStore, cmd: Command| match kv.apply(&cmd).0 {
        Ok(resp) => {
            let hdr = |revision| pb::ResponseHeader {
                revision,
                ..Default::default()
            };
            // The answer must encode too.
            let _ = convert::op_out(resp, &hdr).encoded_len();
            Outcome::Done
        }
        Err(e) => Outcome::Failed(convert::kv_status(&e).code()),
    };
    match kind % 5 {
        0 => {
            let Ok(r) = pb::RangeRequest::decode(body) else {
                return Outcome::Undecodable;
            };
            match convert::range_in(r) {
                Err(s) => Outcome::Refused(s.code()),
                Ok(r) => match kv.range(&r) {
                    Ok(resp) => {
                        let _ =
                            convert::range_out(resp, pb::ResponseHeader::default()).encoded_len();
                        Outcome::Done
                    }
                    Err(e) => Outcome::Failed(convert::kv_status(&e).code()),
                },
            }
        }
        1 => {
            let Ok(p) = pb::PutRequest::decode(body) else {
                return Outcome::Undecodable;
            };
            if p.key.is_empty() {
                return Outcome::Refused(tonic::Code::InvalidArgument);
            }
            apply(&mut kv, Command::Put(convert::put_in(p)))
        }
        2 => {
            let Ok(d) = pb::DeleteRangeRequest::decode(body) else {
                return Outcome::Undecodable;
            };
            if d.key.is_empty() {
                return Outcome::Refused(tonic::Code::InvalidArgument);
            }
            apply(&mut kv, Command::DeleteRange(convert::delete_in(d)))
        }
        3 => {
            let Ok(t) = pb::TxnRequest::decode(body) else {
                return Outcome::Undecodable;
            };
            match convert::txn_in(t, 0) {
                Err(s) => Outcome::Refused(s.code()),
                Ok(t) => apply(&mut kv, Command::Txn(t)),
            }
        }
        _ => {
            let Ok(c) = pb::CompactionRequest::decode(body) else {
                return Outcome::Undecodable;
            };
            apply(
                &mut kv,
                Command::Compact {
                    revision: c.revision,
                },
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::encode_frame;
    use proptest::prelude::*;
    use synod_node::{Ask, HostMsg};

    fn hello() -> Hello {
        Hello {
            magic: crate::wire::MAGIC,
            version: crate::wire::PROTOCOL_VERSION,
            cluster_id: 1,
            from: 2,
            to: 3,
            name: "m".into(),
            client_urls: vec!["http://127.0.0.1:2379".into()],
            peer_urls: vec![],
        }
    }

    fn a_stream() -> Vec<u8> {
        let mut buf = Vec::new();
        encode_frame(&hello(), &mut buf);
        for id in 0..3 {
            let m = PeerMsg::Host(HostMsg::Ask {
                id,
                ask: Ask::LeaseTtl { id: 9, keys: true },
            });
            encode_frame(&m, &mut buf);
        }
        encode_frame(&PeerMsg::Probe { sent_ns: 5 }, &mut buf);
        buf
    }

    #[test]
    fn a_good_stream_decodes_frame_by_frame() {
        assert_eq!(peer_frames(&a_stream()), 5);
        // Cut anywhere: what came whole still decodes, the rest waits.
        let s = a_stream();
        assert_eq!(peer_frames(&s[..s.len() - 1]), 4);
    }

    #[test]
    fn good_requests_apply_and_bad_ones_get_their_codes() {
        let put = pb::PutRequest {
            key: b"k".to_vec(),
            value: b"v".to_vec(),
            ..Default::default()
        };
        let mut b = vec![1];
        b.extend(put.encode_to_vec());
        assert_eq!(grpc_request(&b), Outcome::Done);
        // A put with a lease that does not exist: etcd's NotFound.
        let put = pb::PutRequest {
            key: b"k".to_vec(),
            lease: 77,
            ..Default::default()
        };
        let mut b = vec![1];
        b.extend(put.encode_to_vec());
        assert_eq!(grpc_request(&b), Outcome::Failed(tonic::Code::NotFound));
        let range = pb::RangeRequest {
            key: Vec::new(),
            ..Default::default()
        };
        let mut b = vec![0];
        b.extend(range.encode_to_vec());
        assert_eq!(
            grpc_request(&b),
            Outcome::Refused(tonic::Code::InvalidArgument)
        );
        let range = pb::RangeRequest {
            key: b"a".to_vec(),
            revision: 99,
            ..Default::default()
        };
        let mut b = vec![0];
        b.extend(range.encode_to_vec());
        assert_eq!(grpc_request(&b), Outcome::Failed(tonic::Code::OutOfRange));
        assert_eq!(grpc_request(&[3, 0xff, 0xff]), Outcome::Undecodable);
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

        #[test]
        fn any_bytes_on_the_peer_port_end_in_frames_or_a_typed_error(
            bytes in proptest::collection::vec(any::<u8>(), 0..512),
        ) {
            peer_frames(&bytes);
        }

        #[test]
        fn a_good_stream_with_bytes_changed_never_panics(
            at in any::<prop::sample::Index>(),
            with in any::<u8>(),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut s = a_stream();
            let i = at.index(s.len());
            s[i] = with;
            let n = cut.index(s.len() + 1);
            peer_frames(&s[..n]);
        }

        #[test]
        fn any_kv_request_body_is_answered_or_refused(
            kind in 0u8..5,
            body in proptest::collection::vec(any::<u8>(), 0..256),
        ) {
            let mut b = vec![kind];
            b.extend(body);
            grpc_request(&b);
        }

        #[test]
        fn well_formed_txns_with_wild_fields_are_answered_or_refused(
            keys in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..4), 0..6),
            nums in proptest::collection::vec(any::<i64>(), 6),
            ops in proptest::collection::vec(0u8..4, 0..6),
            enums in proptest::collection::vec(-1i32..7, 4),
        ) {
            use pb::compare::TargetUnion;
            use pb::request_op::Request;
            let key = |i: usize| keys.get(i % keys.len().max(1)).cloned().unwrap_or_default();
            let compare = (0..keys.len()).map(|i| pb::Compare {
                result: enums[i % 4],
                target: enums[(i + 1) % 4],
                key: key(i),
                range_end: key(i + 1),
                target_union: Some(match i % 3 {
                    0 => TargetUnion::Version(nums[i % 6]),
                    1 => TargetUnion::ModRevision(nums[(i + 2) % 6]),
                    _ => TargetUnion::Value(key(i + 2)),
                }),
            }).collect();
            let success = ops.iter().enumerate().map(|(i, &o)| pb::RequestOp {
                request: Some(match o {
                    0 => Request::RequestRange(pb::RangeRequest {
                        key: key(i),
                        range_end: key(i + 1),
                        limit: nums[i % 6],
                        revision: nums[(i + 1) % 6],
                        sort_order: enums[i % 4],
                        sort_target: enums[(i + 3) % 4],
                        min_mod_revision: nums[(i + 2) % 6],
                        max_create_revision: nums[(i + 3) % 6],
                        ..Default::default()
                    }),
                    1 => Request::RequestPut(pb::PutRequest {
                        key: key(i),
                        value: key(i + 1),
                        lease: nums[(i + 4) % 6],
                        ignore_value: i % 2 == 0,
                        ..Default::default()
                    }),
                    2 => Request::RequestDeleteRange(pb::DeleteRangeRequest {
                        key: key(i),
                        range_end: key(i + 3),
                        prev_kv: true,
                    }),
                    _ => Request::RequestTxn(pb::TxnRequest::default()),
                }),
            }).collect();
            let t = pb::TxnRequest { compare, success, failure: Vec::new() };
            let mut b = vec![3];
            b.extend(t.encode_to_vec());
            prop_assert_ne!(grpc_request(&b), Outcome::Undecodable);
        }
    }
}
