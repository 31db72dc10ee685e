//! Translation between etcd's wire types (synod-proto) and the core's types
//! (synod-kv, synod-node), and from the core's errors to etcd's gRPC statuses.

use synod_kv as kv;
use synod_node::ClientError;
use synod_proto::etcdserverpb as pb;
use synod_proto::mvccpb;
use tonic::{Code, Status};

/// etcd's message when no leader is known.
pub const NO_LEADER: &str = "etcdserver: no leader";
/// etcd's message when a request ran out of time.
pub const TIMED_OUT: &str = "etcdserver: request timed out";
/// etcd's message for a request over the size limit.
pub const TOO_LARGE: &str = "etcdserver: request is too large";
/// etcd's message when too many requests are pending.
pub const TOO_MANY: &str = "etcdserver: too many requests";

/// A kv pair on the wire.
pub fn kv_out(k: kv::KeyValue) -> mvccpb::KeyValue {
    mvccpb::KeyValue {
        key: k.key,
        create_revision: k.create_revision,
        mod_revision: k.mod_revision,
        version: k.version,
        value: k.value,
        lease: k.lease,
    }
}

/// A watch event on the wire.
pub fn event_out(e: kv::Event, with_prev: bool) -> mvccpb::Event {
    mvccpb::Event {
        r#type: match e.kind {
            kv::EventKind::Put => mvccpb::event::EventType::Put as i32,
            kv::EventKind::Delete => mvccpb::event::EventType::Delete as i32,
        },
        kv: Some(kv_out(e.kv)),
        prev_kv: if with_prev {
            e.prev_kv.map(kv_out)
        } else {
            None
        },
    }
}

/// A range request from the wire.
pub fn range_in(r: pb::RangeRequest) -> Result<kv::RangeRequest, Status> {
    use pb::range_request::{SortOrder, SortTarget};
    let sort_order = match SortOrder::try_from(r.sort_order) {
        Ok(SortOrder::None) => kv::SortOrder::None,
        Ok(SortOrder::Ascend) => kv::SortOrder::Ascend,
        Ok(SortOrder::Descend) => kv::SortOrder::Descend,
        Err(_) => return Err(Status::invalid_argument("etcdserver: invalid sort option")),
    };
    let sort_target = match SortTarget::try_from(r.sort_target) {
        Ok(SortTarget::Key) => kv::SortTarget::Key,
        Ok(SortTarget::Version) => kv::SortTarget::Version,
        Ok(SortTarget::Create) => kv::SortTarget::Create,
        Ok(SortTarget::Mod) => kv::SortTarget::Mod,
        Ok(SortTarget::Value) => kv::SortTarget::Value,
        Err(_) => return Err(Status::invalid_argument("etcdserver: invalid sort option")),
    };
    if r.key.is_empty() {
        return Err(Status::invalid_argument("etcdserver: key is not provided"));
    }
    Ok(kv::RangeRequest {
        key: r.key,
        range_end: r.range_end,
        limit: r.limit,
        revision: r.revision,
        sort_order,
        sort_target,
        keys_only: r.keys_only,
        count_only: r.count_only,
        min_mod_revision: r.min_mod_revision,
        max_mod_revision: r.max_mod_revision,
        min_create_revision: r.min_create_revision,
        max_create_revision: r.max_create_revision,
    })
}

/// A put request from the wire.
pub fn put_in(p: pb::PutRequest) -> kv::PutRequest {
    kv::PutRequest {
        key: p.key,
        value: p.value,
        lease: p.lease,
        prev_kv: p.prev_kv,
        ignore_value: p.ignore_value,
        ignore_lease: p.ignore_lease,
    }
}

/// A delete request from the wire.
pub fn delete_in(d: pb::DeleteRangeRequest) -> kv::DeleteRangeRequest {
    kv::DeleteRangeRequest {
        key: d.key,
        range_end: d.range_end,
        prev_kv: d.prev_kv,
    }
}

fn compare_in(c: pb::Compare) -> Result<kv::Compare, Status> {
    use pb::compare::{CompareResult, CompareTarget, TargetUnion};
    let bad = || Status::invalid_argument("etcdserver: invalid compare");
    let result = match CompareResult::try_from(c.result).map_err(|_| bad())? {
        CompareResult::Equal => kv::CompareResult::Equal,
        CompareResult::Greater => kv::CompareResult::Greater,
        CompareResult::Less => kv::CompareResult::Less,
        CompareResult::NotEqual => kv::CompareResult::NotEqual,
    };
    let target = CompareTarget::try_from(c.target).map_err(|_| bad())?;
    let t = match (target, c.target_union) {
        (CompareTarget::Version, Some(TargetUnion::Version(v))) => kv::CompareTarget::Version(v),
        (CompareTarget::Version, None) => kv::CompareTarget::Version(0),
        (CompareTarget::Create, Some(TargetUnion::CreateRevision(v))) => {
            kv::CompareTarget::CreateRevision(v)
        }
        (CompareTarget::Create, None) => kv::CompareTarget::CreateRevision(0),
        (CompareTarget::Mod, Some(TargetUnion::ModRevision(v))) => {
            kv::CompareTarget::ModRevision(v)
        }
        (CompareTarget::Mod, None) => kv::CompareTarget::ModRevision(0),
        (CompareTarget::Value, Some(TargetUnion::Value(v))) => kv::CompareTarget::Value(v),
        (CompareTarget::Value, None) => kv::CompareTarget::Value(Vec::new()),
        (CompareTarget::Lease, Some(TargetUnion::Lease(v))) => kv::CompareTarget::Lease(v),
        (CompareTarget::Lease, None) => kv::CompareTarget::Lease(0),
        _ => return Err(bad()),
    };
    Ok(kv::Compare {
        key: c.key,
        range_end: c.range_end,
        target: t,
        result,
    })
}

fn op_in(op: pb::RequestOp, depth: usize) -> Result<kv::RequestOp, Status> {
    use pb::request_op::Request;
    match op.request {
        Some(Request::RequestRange(r)) => Ok(kv::RequestOp::Range(range_in(r)?)),
        Some(Request::RequestPut(p)) => Ok(kv::RequestOp::Put(put_in(p))),
        Some(Request::RequestDeleteRange(d)) => Ok(kv::RequestOp::DeleteRange(delete_in(d))),
        Some(Request::RequestTxn(t)) => Ok(kv::RequestOp::Txn(txn_in(t, depth + 1)?)),
        None => Err(Status::invalid_argument("etcdserver: request op is empty")),
    }
}

/// A transaction from the wire (nesting is bounded).
pub fn txn_in(t: pb::TxnRequest, depth: usize) -> Result<kv::TxnRequest, Status> {
    if depth > 16 {
        return Err(Status::invalid_argument(
            "etcdserver: too many operations in txn request",
        ));
    }
    Ok(kv::TxnRequest {
        compare: t
            .compare
            .into_iter()
            .map(compare_in)
            .collect::<Result<_, _>>()?,
        success: t
            .success
            .into_iter()
            .map(|o| op_in(o, depth))
            .collect::<Result<_, _>>()?,
        failure: t
            .failure
            .into_iter()
            .map(|o| op_in(o, depth))
            .collect::<Result<_, _>>()?,
    })
}

/// A range response on the wire.
pub fn range_out(r: kv::RangeResponse, header: pb::ResponseHeader) -> pb::RangeResponse {
    pb::RangeResponse {
        header: Some(header),
        kvs: r.kvs.into_iter().map(kv_out).collect(),
        more: r.more,
        count: r.count,
    }
}

/// One response of a transaction branch on the wire; `hdr` builds a header for a revision.
pub fn op_out(r: kv::Response, hdr: &dyn Fn(i64) -> pb::ResponseHeader) -> pb::ResponseOp {
    use pb::response_op::Response as R;
    let resp = match r {
        kv::Response::Range(rr) => {
            let h = hdr(rr.header_revision);
            R::ResponseRange(range_out(rr, h))
        }
        kv::Response::Put { revision, prev_kv } => R::ResponsePut(pb::PutResponse {
            header: Some(hdr(revision)),
            prev_kv: prev_kv.map(kv_out),
        }),
        kv::Response::DeleteRange {
            revision,
            deleted,
            prev_kvs,
        } => R::ResponseDeleteRange(pb::DeleteRangeResponse {
            header: Some(hdr(revision)),
            deleted,
            prev_kvs: prev_kvs.into_iter().map(kv_out).collect(),
        }),
        kv::Response::Txn {
            revision,
            succeeded,
            responses,
        } => R::ResponseTxn(pb::TxnResponse {
            // etcd leaves a nested txn's header empty (its ops' carry the revision).
            header: {
                let _ = revision;
                Some(pb::ResponseHeader::default())
            },
            succeeded,
            responses: responses.into_iter().map(|r| op_out(r, hdr)).collect(),
        }),
        other => R::ResponsePut(pb::PutResponse {
            header: Some(hdr(other.revision())),
            prev_kv: None,
        }),
    };
    pb::ResponseOp {
        response: Some(resp),
    }
}

/// The gRPC status etcd answers a kv error with.
pub fn kv_status(e: &kv::KvError) -> Status {
    let code = match e.grpc_code() {
        "OutOfRange" => Code::OutOfRange,
        "NotFound" => Code::NotFound,
        "FailedPrecondition" => Code::FailedPrecondition,
        "InvalidArgument" => Code::InvalidArgument,
        "Unavailable" => Code::Unavailable,
        "DataLoss" => Code::DataLoss,
        "PermissionDenied" => Code::PermissionDenied,
        _ => Code::Unknown,
    };
    Status::new(code, e.to_string())
}

/// The gRPC status for a final client error.
pub fn client_status(e: &ClientError) -> Status {
    match e {
        ClientError::Kv(k) => kv_status(k),
        ClientError::NotLeader { .. } => Status::unavailable(NO_LEADER),
        ClientError::Busy => Status::resource_exhausted(TOO_MANY),
        ClientError::Invalid(s) => Status::invalid_argument(s.clone()),
        ClientError::CrossShard | ClientError::WrongShard { .. } => {
            Status::invalid_argument(format!("synod: {e}"))
        }
        ClientError::StaleSequence { .. } => Status::internal(e.to_string()),
        // Took no effect; the member retried it as long as it could.
        ClientError::RevisionTaken => Status::unavailable(e.to_string()),
        ClientError::Member(m) => member_status(*m),
    }
}

/// etcd's gRPC status for a refused membership change.
pub fn member_status(e: synod_node::MemberError) -> Status {
    use synod_node::MemberError as M;
    let code = match e {
        M::NotFound => Code::NotFound,
        M::BadUrls => Code::InvalidArgument,
        M::PeerUrlExists
        | M::NotLearner
        | M::LearnerNotReady
        | M::NotEnoughStarted
        | M::TooManyLearners => Code::FailedPrecondition,
    };
    Status::new(code, e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kv_errors_keep_etcds_code_and_message() {
        let s = kv_status(&kv::KvError::Compacted);
        assert_eq!(s.code(), Code::OutOfRange);
        assert_eq!(
            s.message(),
            "etcdserver: mvcc: required revision has been compacted"
        );
        assert_eq!(
            kv_status(&kv::KvError::LeaseNotFound).code(),
            Code::NotFound
        );
    }

    #[test]
    fn a_compare_with_a_mismatched_operand_is_refused() {
        let c = pb::Compare {
            result: 0,
            target: pb::compare::CompareTarget::Version as i32,
            key: b"k".to_vec(),
            target_union: Some(pb::compare::TargetUnion::Value(b"v".to_vec())),
            range_end: vec![],
        };
        assert!(compare_in(c).is_err());
    }
}
