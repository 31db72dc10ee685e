//! Sessions, mutexes and elections built on the plain KV, Lease and Watch
//! API, with the same keys and the same protocol as etcd's `concurrency`
//! package (so a synod lock and an `etcdctl lock` exclude each other):
//!
//! * a [`Session`] is a lease kept alive in the background;
//! * a contender writes `NAME/<lease id in hex>` with its lease, in a Txn
//!   guarded by `create_revision == 0` (so a retry finds its own key);
//! * the contender whose key has the smallest `create_revision` under the
//!   prefix holds the lock (or leads); the others each watch the one key
//!   created just before theirs (Range sorted by create revision, descending,
//!   limited to one, with `max_create_revision`) until it is deleted —
//!   no thundering herd;
//! * unlocking or resigning deletes the key; an expired lease deletes it too.

use std::time::Duration;

use synod_proto::etcdserverpb::{
    compare, range_request, request_op, response_op, Compare, DeleteRangeRequest, PutRequest,
    RangeRequest, RequestOp, TxnRequest, TxnResponse, WatchCreateRequest,
};
use synod_proto::mvccpb::{event::EventType, KeyValue};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::client::{prefix_end, Client};
use crate::error::{Error, Result};

/// etcd's default session TTL, in seconds.
pub const DEFAULT_SESSION_TTL: i64 = 60;
/// Most times a waiter re-reads its predecessor before giving up (each wait
/// is one predecessor leaving; bounded so a bug cannot spin forever).
const MAX_WAIT_ROUNDS: usize = 1_000_000;

/// A lease kept alive by a background task until the session is closed.
pub struct Session {
    client: Client,
    lease: i64,
    keeper: JoinHandle<()>,
    lost: watch::Receiver<bool>,
}

impl Session {
    /// Grants a lease of `ttl` seconds and keeps it alive every `ttl/3`.
    pub async fn new(client: &Client, ttl: i64) -> Result<Session> {
        if ttl <= 0 {
            return Err(Error::InvalidArgument(format!(
                "session TTL must be positive, got {ttl}"
            )));
        }
        let lease = client.lease_grant(ttl, 0).await?.id;
        let (lost_tx, lost) = watch::channel(false);
        let c = client.clone();
        let period = Duration::from_millis((ttl as u64 * 1000 / 3).max(100));
        let keeper = tokio::spawn(async move {
            loop {
                tokio::time::sleep(period).await;
                match c.lease_keep_alive_once(lease).await {
                    Ok(r) if r.ttl <= 0 => {
                        let _ = lost_tx.send(true);
                        return;
                    }
                    Ok(_) => {}
                    // A failed renewal is tried again next period; the
                    // lease outlives a few misses (period is a third of it).
                    Err(_) => {}
                }
            }
        });
        Ok(Session {
            client: client.clone(),
            lease,
            keeper,
            lost,
        })
    }

    /// The session's lease id.
    pub fn lease(&self) -> i64 {
        self.lease
    }

    /// Resolves when the lease is known to have expired.
    pub async fn lost(&mut self) {
        while !*self.lost.borrow() {
            if self.lost.changed().await.is_err() {
                // The keeper stopped without reporting a loss: never resolves.
                std::future::pending::<()>().await;
            }
        }
    }

    /// Stops keeping the lease alive without revoking it: the lease, and
    /// the locks it holds, expire after its TTL, as those of a holder that
    /// froze or crashed do.
    pub fn abandon(self) {
        self.keeper.abort();
    }

    /// Stops keeping the lease alive and revokes it (deleting its keys).
    pub async fn close(self) -> Result<()> {
        self.keeper.abort();
        self.client.lease_revoke(self.lease).await.map(|_| ())
    }
}

fn range_op(r: RangeRequest) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestRange(r)),
    }
}

/// The oldest key under `prefix` (smallest create revision).
fn first_created(prefix: &[u8]) -> RangeRequest {
    RangeRequest {
        key: prefix.to_vec(),
        range_end: prefix_end(prefix),
        limit: 1,
        sort_order: range_request::SortOrder::Ascend as i32,
        sort_target: range_request::SortTarget::Create as i32,
        ..Default::default()
    }
}

fn ranged_kvs(resp: &TxnResponse, i: usize) -> &[KeyValue] {
    match resp.responses.get(i).and_then(|r| r.response.as_ref()) {
        Some(response_op::Response::ResponseRange(r)) => &r.kvs,
        _ => &[],
    }
}

/// Writes `key` with `value` under `lease` unless it exists; returns the
/// key's create revision, its current value, and the oldest key's create
/// revision under `prefix`.
async fn claim(
    client: &Client,
    prefix: &[u8],
    key: &[u8],
    value: &[u8],
    lease: i64,
) -> Result<(i64, Vec<u8>, i64)> {
    let txn = TxnRequest {
        compare: vec![Compare {
            result: compare::CompareResult::Equal as i32,
            target: compare::CompareTarget::Create as i32,
            key: key.to_vec(),
            target_union: Some(compare::TargetUnion::CreateRevision(0)),
            range_end: vec![],
        }],
        success: vec![
            RequestOp {
                request: Some(request_op::Request::RequestPut(PutRequest {
                    key: key.to_vec(),
                    value: value.to_vec(),
                    lease,
                    ..Default::default()
                })),
            },
            range_op(first_created(prefix)),
        ],
        failure: vec![
            range_op(RangeRequest {
                key: key.to_vec(),
                ..Default::default()
            }),
            range_op(first_created(prefix)),
        ],
    };
    let resp = client.txn(txn).await?;
    let (rev, current) = if resp.succeeded {
        let rev = resp.header.as_ref().map_or(0, |h| h.revision);
        (rev, value.to_vec())
    } else {
        let kv = ranged_kvs(&resp, 0)
            .first()
            .ok_or_else(|| Error::StreamClosed("own key vanished while claiming it".into()))?;
        (kv.create_revision, kv.value.clone())
    };
    let owner = ranged_kvs(&resp, 1)
        .first()
        .map_or(rev, |kv| kv.create_revision);
    Ok((rev, current, owner))
}

/// Waits until no key under `prefix` was created at or before `max_rev`.
async fn wait_deletes(client: &Client, prefix: &[u8], max_rev: i64) -> Result<()> {
    for _ in 0..MAX_WAIT_ROUNDS {
        let resp = client
            .range(RangeRequest {
                key: prefix.to_vec(),
                range_end: prefix_end(prefix),
                limit: 1,
                sort_order: range_request::SortOrder::Descend as i32,
                sort_target: range_request::SortTarget::Create as i32,
                max_create_revision: max_rev,
                ..Default::default()
            })
            .await?;
        let Some(pred) = resp.kvs.first() else {
            return Ok(());
        };
        let rev = resp.header.as_ref().map_or(0, |h| h.revision);
        wait_delete(client, &pred.key, rev).await?;
    }
    Err(Error::StreamClosed(
        "gave up waiting for predecessors".into(),
    ))
}

/// Waits for `key` to be deleted, watching from `rev` on.
async fn wait_delete(client: &Client, key: &[u8], rev: i64) -> Result<()> {
    let (mut ws, _) = client
        .watch(WatchCreateRequest {
            key: key.to_vec(),
            start_revision: rev,
            ..Default::default()
        })
        .await?;
    loop {
        let Some(r) = ws.next().await? else {
            return Err(Error::StreamClosed("watch".into()));
        };
        if r.canceled {
            return Err(Error::StreamClosed(r.cancel_reason));
        }
        if r.events
            .iter()
            .any(|e| e.r#type == EventType::Delete as i32)
        {
            return Ok(());
        }
    }
}

fn contender_key(name: &[u8], lease: i64) -> (Vec<u8>, Vec<u8>) {
    let mut prefix = name.to_vec();
    prefix.push(b'/');
    let mut key = prefix.clone();
    key.extend_from_slice(format!("{:x}", lease).as_bytes());
    (prefix, key)
}

/// A held lock.
#[derive(Clone, Debug)]
pub struct LockGuard {
    /// The key that holds it (`NAME/<lease hex>`).
    pub key: Vec<u8>,
    /// Its create revision (a fencing token: it only grows).
    pub revision: i64,
}

/// Acquires the lock `name` for `session` (waits for every earlier contender).
pub async fn lock(client: &Client, session: &Session, name: &[u8]) -> Result<LockGuard> {
    let (prefix, key) = contender_key(name, session.lease());
    let (rev, _, owner) = claim(client, &prefix, &key, b"", session.lease()).await?;
    if owner != rev {
        if let Err(e) = wait_deletes(client, &prefix, rev - 1).await {
            // Leave the queue so nobody waits on us.
            let _ = delete_key(client, &key).await;
            return Err(e);
        }
    }
    Ok(LockGuard { key, revision: rev })
}

async fn delete_key(client: &Client, key: &[u8]) -> Result<()> {
    client
        .delete_range(DeleteRangeRequest {
            key: key.to_vec(),
            ..Default::default()
        })
        .await
        .map(|_| ())
}

/// Releases a lock.
pub async fn unlock(client: &Client, guard: &LockGuard) -> Result<()> {
    delete_key(client, &guard.key).await
}

/// Applies `ops` only if the lock held by `key` is still held under
/// fencing token `token` (the key's create revision when it was taken): a
/// Txn comparing that create revision, so the store itself refuses the
/// write of a holder that lost the lock (paused past its lease, say) even
/// after a new holder took it. Refused writes are [`Error::StaleFence`];
/// nothing of them is applied. The same guard works from etcdctl:
/// `etcdctl txn` with `create("KEY") = "TOKEN"`.
pub async fn fenced(
    client: &Client,
    key: &[u8],
    token: i64,
    ops: Vec<RequestOp>,
) -> Result<TxnResponse> {
    if token <= 0 {
        return Err(Error::InvalidArgument(format!(
            "a fencing token is a positive create revision, got {token}"
        )));
    }
    let resp = client
        .txn(TxnRequest {
            compare: vec![Compare {
                result: compare::CompareResult::Equal as i32,
                target: compare::CompareTarget::Create as i32,
                key: key.to_vec(),
                range_end: Vec::new(),
                target_union: Some(compare::TargetUnion::CreateRevision(token)),
            }],
            success: ops,
            failure: vec![range_op(RangeRequest {
                key: key.to_vec(),
                ..Default::default()
            })],
        })
        .await?;
    if resp.succeeded {
        return Ok(resp);
    }
    Err(Error::StaleFence {
        key: key.to_vec(),
        token,
        holder: ranged_kvs(&resp, 0).first().map(|kv| kv.create_revision),
    })
}

/// Leadership won in an election.
#[derive(Clone, Debug)]
pub struct Leadership {
    /// The leader's key (`NAME/<lease hex>`).
    pub key: Vec<u8>,
    /// Its create revision.
    pub revision: i64,
    /// The proposal it announced.
    pub value: Vec<u8>,
}

/// Campaigns in election `name` with `proposal`; returns once leader.
pub async fn campaign(
    client: &Client,
    session: &Session,
    name: &[u8],
    proposal: &[u8],
) -> Result<Leadership> {
    let (prefix, key) = contender_key(name, session.lease());
    let (rev, current, owner) = claim(client, &prefix, &key, proposal, session.lease()).await?;
    if current != proposal {
        // Our key survives from an earlier campaign: announce the new value.
        client
            .put(PutRequest {
                key: key.clone(),
                value: proposal.to_vec(),
                lease: session.lease(),
                ..Default::default()
            })
            .await?;
    }
    if owner != rev {
        if let Err(e) = wait_deletes(client, &prefix, rev - 1).await {
            let _ = delete_key(client, &key).await;
            return Err(e);
        }
    }
    Ok(Leadership {
        key,
        revision: rev,
        value: proposal.to_vec(),
    })
}

/// Gives leadership up.
pub async fn resign(client: &Client, l: &Leadership) -> Result<()> {
    delete_key(client, &l.key).await
}

/// The current leader's key-value pair, if anyone leads, and the revision read at.
pub async fn leader(client: &Client, name: &[u8]) -> Result<(Option<KeyValue>, i64)> {
    let (prefix, _) = contender_key(name, 0);
    let resp = client.range(first_created(&prefix)).await?;
    let rev = resp.header.as_ref().map_or(0, |h| h.revision);
    Ok((resp.kvs.into_iter().next(), rev))
}

/// Calls `on_leader` with each new leader of election `name` (key, value),
/// until it returns false or the watch fails.
pub async fn observe<F>(client: &Client, name: &[u8], mut on_leader: F) -> Result<()>
where
    F: FnMut(&KeyValue) -> bool,
{
    let (prefix, _) = contender_key(name, 0);
    let mut last: Option<(Vec<u8>, i64)> = None;
    loop {
        let (kv, rev) = leader(client, name).await?;
        if let Some(kv) = &kv {
            let id = (kv.key.clone(), kv.mod_revision);
            if last.as_ref() != Some(&id) {
                if !on_leader(kv) {
                    return Ok(());
                }
                last = Some(id);
            }
        }
        // Wait for any change under the prefix, then read the leader again.
        let (mut ws, _) = client
            .watch(WatchCreateRequest {
                key: prefix.clone(),
                range_end: prefix_end(&prefix),
                start_revision: rev + 1,
                ..Default::default()
            })
            .await?;
        loop {
            match ws.next().await? {
                None => return Err(Error::StreamClosed("watch".into())),
                Some(r) if r.canceled => return Err(Error::StreamClosed(r.cancel_reason)),
                Some(r) if !r.events.is_empty() => break,
                Some(_) => {}
            }
        }
    }
}
