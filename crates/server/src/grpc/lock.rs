//! The Lock service (v3lockpb): etcd's mutex recipe run on the server.
//!
//! Lock puts `name/<lease hex>` with the caller's lease unless it exists,
//! then waits until every older key under `name/` is gone; the key it
//! returns is the lock, and deleting it (Unlock, or the lease ending)
//! releases it. A caller that gives up while waiting has its key deleted.
//! Unlike etcd, the server does not keep the caller's lease alive: the
//! lease's owner does, so a lock ends with its lease.

use synod_proto::v3lockpb as pb;
use synod_proto::v3lockpb::lock_server::Lock;
use tonic::{Request, Response, Status};

use super::recipe::{queue_key, Abandon};
use super::Api;

/// etcd's message when the lock's lease ended while it waited.
pub const SESSION_EXPIRED: &str = "mutex: session is expired";

#[tonic::async_trait]
impl Lock for Api {
    async fn lock(
        &self,
        req: Request<pb::LockRequest>,
    ) -> Result<Response<pb::LockResponse>, Status> {
        self.check_leader(&req)?;
        let api = self.acting_as(self.who(&req).await?);
        let r = req.into_inner();
        let (pfx, key) = queue_key(&r.name, r.lease);
        let q = api.enqueue(&key, b"", r.lease).await?;
        let guard = Abandon::new(&api, key.clone());
        let mut header = api.wait_deletes(&pfx, q.rev - 1).await?;
        // The key may have gone with its lease while we waited.
        let mine = api
            .kv_range(synod_proto::etcdserverpb::RangeRequest {
                key: key.clone(),
                ..Default::default()
            })
            .await?;
        if mine.kvs.first().map(|kv| kv.create_revision) != Some(q.rev) {
            return Err(Status::unknown(SESSION_EXPIRED));
        }
        if let Some(h) = mine.header {
            header = h;
        }
        guard.keep();
        Ok(Response::new(pb::LockResponse {
            header: Some(header),
            key,
        }))
    }

    async fn unlock(
        &self,
        req: Request<pb::UnlockRequest>,
    ) -> Result<Response<pb::UnlockResponse>, Status> {
        self.check_leader(&req)?;
        let api = self.acting_as(self.who(&req).await?);
        let r = req.into_inner();
        if r.key.is_empty() {
            return Err(Status::invalid_argument("etcdserver: key is not provided"));
        }
        let d = api.delete_key(r.key).await?;
        Ok(Response::new(pb::UnlockResponse { header: d.header }))
    }
}
