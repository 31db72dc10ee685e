//! The building blocks of etcd's concurrency recipes, run inside the server
//! over the node's own KV and Watch handlers: queue a key under a prefix
//! (Txn on `create_revision == 0`), wait until every older key under the
//! prefix is deleted (Range with `max_create_revision`, then a watch on the
//! predecessor), and give the key back if the waiter goes away.

use synod_proto::etcdserverpb as pb;
use synod_proto::etcdserverpb::kv_server::Kv;
use synod_proto::mvccpb;
use tokio::sync::mpsc;
use tonic::{Request, Status};

use super::Api;
use crate::watch::WatchOut;

/// The first key after every key that starts with `prefix` (etcd's prefix end).
pub use synod_kv::prefix_range_end as prefix_end;

/// `name/` and the key `name/<lease in hex>`, as etcd's recipes name them.
pub fn queue_key(name: &[u8], lease: i64) -> (Vec<u8>, Vec<u8>) {
    let mut pfx = name.to_vec();
    pfx.push(b'/');
    let mut key = pfx.clone();
    key.extend_from_slice(format!("{lease:x}").as_bytes());
    (pfx, key)
}

fn create_is(key: &[u8], rev: i64) -> pb::Compare {
    pb::Compare {
        result: pb::compare::CompareResult::Equal as i32,
        target: pb::compare::CompareTarget::Create as i32,
        key: key.to_vec(),
        range_end: Vec::new(),
        target_union: Some(pb::compare::TargetUnion::CreateRevision(rev)),
    }
}

fn op(r: pb::request_op::Request) -> pb::RequestOp {
    pb::RequestOp { request: Some(r) }
}

fn put_op(key: &[u8], value: &[u8], lease: i64) -> pb::RequestOp {
    op(pb::request_op::Request::RequestPut(pb::PutRequest {
        key: key.to_vec(),
        value: value.to_vec(),
        lease,
        ..Default::default()
    }))
}

fn get_op(key: &[u8]) -> pb::RequestOp {
    op(pb::request_op::Request::RequestRange(pb::RangeRequest {
        key: key.to_vec(),
        ..Default::default()
    }))
}

fn range_kvs(r: &pb::ResponseOp) -> &[mvccpb::KeyValue] {
    match &r.response {
        Some(pb::response_op::Response::ResponseRange(rr)) => &rr.kvs,
        _ => &[],
    }
}

/// Where a key entered its queue.
pub struct Queued {
    /// The key's create revision.
    pub rev: i64,
    /// Its value before this call (when it already existed).
    pub old_value: Option<Vec<u8>>,
}

/// A watch on one key or range, read event batch by event batch.
pub struct Watching {
    _requests: mpsc::Sender<Result<pb::WatchRequest, Status>>,
    responses: mpsc::Receiver<WatchOut>,
}

impl Watching {
    /// The next response that carries events.
    pub async fn next(&mut self) -> Result<(pb::ResponseHeader, Vec<mvccpb::Event>), Status> {
        loop {
            match self.responses.recv().await {
                Some(Ok(r)) if r.canceled => {
                    return Err(if r.compact_revision != 0 {
                        Status::out_of_range(
                            "etcdserver: mvcc: required revision has been compacted",
                        )
                    } else {
                        Status::unavailable(format!("watch canceled: {}", r.cancel_reason))
                    })
                }
                Some(Ok(r)) if r.events.is_empty() => {}
                Some(Ok(r)) => return Ok((r.header.unwrap_or_default(), r.events)),
                Some(Err(s)) => return Err(s),
                None => return Err(Status::unavailable("etcdserver: server stopped")),
            }
        }
    }
}

/// Deletes a queued key when the waiter goes away before it is done with it
/// (etcd's recipes unlock or resign when their context ends).
pub struct Abandon {
    api: Api,
    key: Option<Vec<u8>>,
}

impl Abandon {
    /// Guards `key`.
    pub fn new(api: &Api, key: Vec<u8>) -> Abandon {
        Abandon {
            api: api.clone(),
            key: Some(key),
        }
    }

    /// The key stays: its owner holds it now.
    pub fn keep(mut self) {
        self.key = None;
    }
}

impl Drop for Abandon {
    fn drop(&mut self) {
        let Some(key) = self.key.take() else { return };
        let api = self.api.clone();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let _ = api.delete_key(key).await;
            });
        }
    }
}

impl Api {
    /// Runs a Txn through the KV service.
    pub async fn kv_txn(&self, t: pb::TxnRequest) -> Result<pb::TxnResponse, Status> {
        Ok(Kv::txn(self, Request::new(t)).await?.into_inner())
    }

    /// Runs a Range through the KV service.
    pub async fn kv_range(&self, r: pb::RangeRequest) -> Result<pb::RangeResponse, Status> {
        Ok(Kv::range(self, Request::new(r)).await?.into_inner())
    }

    /// Deletes one key.
    pub async fn delete_key(&self, key: Vec<u8>) -> Result<pb::DeleteRangeResponse, Status> {
        let d = pb::DeleteRangeRequest {
            key,
            ..Default::default()
        };
        Ok(Kv::delete_range(self, Request::new(d)).await?.into_inner())
    }

    /// Puts `key` (with `value` and `lease`) unless it exists; either way
    /// reports its create revision and earlier value.
    pub async fn enqueue(&self, key: &[u8], value: &[u8], lease: i64) -> Result<Queued, Status> {
        let t = self
            .kv_txn(pb::TxnRequest {
                compare: vec![create_is(key, 0)],
                success: vec![put_op(key, value, lease)],
                failure: vec![get_op(key)],
            })
            .await?;
        let header = t.header.unwrap_or_default();
        if t.succeeded {
            return Ok(Queued {
                rev: header.revision,
                old_value: None,
            });
        }
        let kv = t
            .responses
            .first()
            .and_then(|r| range_kvs(r).first())
            .ok_or_else(|| Status::internal("synod: a key present at compare time was not read"))?;
        Ok(Queued {
            rev: kv.create_revision,
            old_value: Some(kv.value.clone()),
        })
    }

    /// Puts `value` on `key` if it still has create revision `rev`; whether it did.
    pub async fn put_if_created_at(
        &self,
        key: &[u8],
        rev: i64,
        value: &[u8],
        lease: i64,
    ) -> Result<(bool, pb::ResponseHeader), Status> {
        let t = self
            .kv_txn(pb::TxnRequest {
                compare: vec![create_is(key, rev)],
                success: vec![put_op(key, value, lease)],
                failure: Vec::new(),
            })
            .await?;
        Ok((t.succeeded, t.header.unwrap_or_default()))
    }

    /// Deletes `key` if it still has create revision `rev`.
    pub async fn delete_if_created_at(
        &self,
        key: &[u8],
        rev: i64,
    ) -> Result<pb::ResponseHeader, Status> {
        let del = op(pb::request_op::Request::RequestDeleteRange(
            pb::DeleteRangeRequest {
                key: key.to_vec(),
                ..Default::default()
            },
        ));
        let t = self
            .kv_txn(pb::TxnRequest {
                compare: vec![create_is(key, rev)],
                success: vec![del],
                failure: Vec::new(),
            })
            .await?;
        Ok(t.header.unwrap_or_default())
    }

    /// The oldest (`first`) or newest key under `prefix`, at most `max_create` old (0: any).
    pub async fn edge_key(
        &self,
        prefix: &[u8],
        first: bool,
        max_create: i64,
    ) -> Result<(pb::ResponseHeader, Option<mvccpb::KeyValue>), Status> {
        use pb::range_request::{SortOrder, SortTarget};
        let order = if first {
            SortOrder::Ascend
        } else {
            SortOrder::Descend
        };
        let r = self
            .kv_range(pb::RangeRequest {
                key: prefix.to_vec(),
                range_end: prefix_end(prefix),
                limit: 1,
                sort_order: order as i32,
                sort_target: SortTarget::Create as i32,
                max_create_revision: max_create,
                ..Default::default()
            })
            .await?;
        Ok((r.header.unwrap_or_default(), r.kvs.into_iter().next()))
    }

    /// Watches `key` (to `range_end`) from revision `start`.
    pub fn watch_from(&self, key: &[u8], range_end: &[u8], start: i64) -> Watching {
        let (tx, rx) = mpsc::channel(1);
        let create = pb::WatchRequest {
            request_union: Some(pb::watch_request::RequestUnion::CreateRequest(
                pb::WatchCreateRequest {
                    key: key.to_vec(),
                    range_end: range_end.to_vec(),
                    start_revision: start,
                    ..Default::default()
                },
            )),
        };
        tx.try_send(Ok(create))
            .expect("a fresh channel has room for one request");
        // The handle acts for the recipe's caller, whose rights the watch checks.
        let responses = self.watch_stream(
            tokio_stream::wrappers::ReceiverStream::new(rx),
            false,
            super::Credentials::default(),
        );
        Watching {
            _requests: tx,
            responses,
        }
    }

    /// Waits until `key`, seen at revision `rev`, is deleted.
    async fn wait_delete(&self, key: &[u8], rev: i64) -> Result<(), Status> {
        let mut w = self.watch_from(key, &[], rev);
        loop {
            let (_, events) = w.next().await?;
            if events
                .iter()
                .any(|e| e.r#type == mvccpb::event::EventType::Delete as i32)
            {
                return Ok(());
            }
        }
    }

    /// Waits until no key under `prefix` created at or before `max_create`
    /// remains; returns the header of the last look.
    pub async fn wait_deletes(
        &self,
        prefix: &[u8],
        max_create: i64,
    ) -> Result<pb::ResponseHeader, Status> {
        loop {
            let (header, last) = self.edge_key(prefix, false, max_create).await?;
            match last {
                None => return Ok(header),
                Some(kv) => self.wait_delete(&kv.key, header.revision).await?,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_ends() {
        assert_eq!(prefix_end(b"a/"), b"a0");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b"\xff\xff"), vec![0]);
    }

    #[test]
    fn keys_are_name_slash_lease_hex() {
        let (p, k) = queue_key(b"job", 0x694d);
        assert_eq!(p, b"job/");
        assert_eq!(k, b"job/694d");
    }
}
