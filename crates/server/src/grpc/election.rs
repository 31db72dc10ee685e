//! The Election service (v3electionpb): etcd's election recipe run on the
//! server.
//!
//! A candidate's key is `name/<lease hex>` holding its proclaimed value;
//! the leader is the oldest key under `name/`. Campaign queues the key and
//! waits for every older one to go; Proclaim and Resign act only while the
//! key still has the create revision the leader key names; Observe streams
//! the leader and each new value it proclaims.

use std::pin::Pin;

use synod_proto::mvccpb;
use synod_proto::v3electionpb as pb;
use synod_proto::v3electionpb::election_server::Election;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use super::recipe::{prefix_end, queue_key, Abandon};
use super::Api;

/// etcd's messages.
pub const NOT_LEADER: &str = "election: not leader";
/// No candidate holds the election.
pub const NO_LEADER: &str = "election: no leader";
/// Proclaim or Resign without a leader key.
pub const MISSING_LEADER_KEY: &str = "\"leader\" field must be provided";
/// Leader updates queued per Observe stream.
const OBSERVE_QUEUE: usize = 16;

type ObserveOut = Result<pb::LeaderResponse, Status>;

impl Api {
    /// Streams the leader of `name` and its proclamations onto `tx` until
    /// the receiver goes away or the watch fails.
    async fn observe(&self, name: Vec<u8>, tx: mpsc::Sender<ObserveOut>) -> Result<(), Status> {
        let mut pfx = name;
        pfx.push(b'/');
        let end = prefix_end(&pfx);
        loop {
            let (mut header, first) = self.edge_key(&pfx, true, 0).await?;
            let kv = match first {
                Some(kv) => kv,
                None => {
                    // No candidate yet: the first put under the prefix leads.
                    let mut w = self.watch_from(&pfx, &end, header.revision + 1);
                    loop {
                        let (h, events) = tokio::select! {
                            n = w.next() => n?,
                            _ = tx.closed() => return Ok(()),
                        };
                        let put = events
                            .into_iter()
                            .find(|e| e.r#type == mvccpb::event::EventType::Put as i32);
                        if let Some(kv) = put.and_then(|e| e.kv) {
                            header = h;
                            header.revision = kv.mod_revision;
                            break kv;
                        }
                    }
                }
            };
            let key = kv.key.clone();
            if tx
                .send(Ok(pb::LeaderResponse {
                    header: Some(header),
                    kv: Some(kv),
                }))
                .await
                .is_err()
            {
                return Ok(());
            }
            let mut w = self.watch_from(&key, &[], header.revision + 1);
            'leader: loop {
                let next = tokio::select! {
                    n = w.next() => n?,
                    _ = tx.closed() => return Ok(()),
                };
                let (h, events) = next;
                for e in events {
                    if e.r#type == mvccpb::event::EventType::Delete as i32 {
                        break 'leader;
                    }
                    let resp = pb::LeaderResponse {
                        header: Some(h),
                        kv: e.kv,
                    };
                    if tx.send(Ok(resp)).await.is_err() {
                        return Ok(());
                    }
                }
            }
        }
    }
}

#[tonic::async_trait]
impl Election for Api {
    async fn campaign(
        &self,
        req: Request<pb::CampaignRequest>,
    ) -> Result<Response<pb::CampaignResponse>, Status> {
        self.check_leader(&req)?;
        let api = self.acting_as(self.who(&req).await?);
        let r = req.into_inner();
        let (pfx, key) = queue_key(&r.name, r.lease);
        let q = api.enqueue(&key, &r.value, r.lease).await?;
        let guard = Abandon::new(&api, key.clone());
        if q.old_value
            .as_deref()
            .is_some_and(|v| v != r.value.as_slice())
        {
            let (ok, _) = api
                .put_if_created_at(&key, q.rev, &r.value, r.lease)
                .await?;
            if !ok {
                return Err(Status::unknown(NOT_LEADER));
            }
        }
        let header = api.wait_deletes(&pfx, q.rev - 1).await?;
        guard.keep();
        Ok(Response::new(pb::CampaignResponse {
            header: Some(header),
            leader: Some(pb::LeaderKey {
                name: r.name,
                key,
                rev: q.rev,
                lease: r.lease,
            }),
        }))
    }

    async fn proclaim(
        &self,
        req: Request<pb::ProclaimRequest>,
    ) -> Result<Response<pb::ProclaimResponse>, Status> {
        self.check_leader(&req)?;
        let api = self.acting_as(self.who(&req).await?);
        let r = req.into_inner();
        let l = r
            .leader
            .ok_or_else(|| Status::unknown(MISSING_LEADER_KEY))?;
        let (ok, header) = api
            .put_if_created_at(&l.key, l.rev, &r.value, l.lease)
            .await?;
        if !ok {
            return Err(Status::unknown(NOT_LEADER));
        }
        Ok(Response::new(pb::ProclaimResponse {
            header: Some(header),
        }))
    }

    async fn leader(
        &self,
        req: Request<pb::LeaderRequest>,
    ) -> Result<Response<pb::LeaderResponse>, Status> {
        self.check_leader(&req)?;
        let api = self.acting_as(self.who(&req).await?);
        let mut pfx = req.into_inner().name;
        pfx.push(b'/');
        match api.edge_key(&pfx, true, 0).await? {
            (header, Some(kv)) => Ok(Response::new(pb::LeaderResponse {
                header: Some(header),
                kv: Some(kv),
            })),
            (_, None) => Err(Status::unknown(NO_LEADER)),
        }
    }

    type ObserveStream = Pin<Box<dyn Stream<Item = ObserveOut> + Send + 'static>>;

    async fn observe(
        &self,
        req: Request<pb::LeaderRequest>,
    ) -> Result<Response<Self::ObserveStream>, Status> {
        self.check_leader(&req)?;
        let api = self.acting_as(self.who(&req).await?);
        let name = req.into_inner().name;
        let (tx, rx) = mpsc::channel(OBSERVE_QUEUE);
        tokio::spawn(async move {
            if let Err(s) = api.observe(name, tx.clone()).await {
                let _ = tx.send(Err(s)).await;
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn resign(
        &self,
        req: Request<pb::ResignRequest>,
    ) -> Result<Response<pb::ResignResponse>, Status> {
        self.check_leader(&req)?;
        let api = self.acting_as(self.who(&req).await?);
        let l = req
            .into_inner()
            .leader
            .ok_or_else(|| Status::unknown(MISSING_LEADER_KEY))?;
        let header = api.delete_if_created_at(&l.key, l.rev).await?;
        Ok(Response::new(pb::ResignResponse {
            header: Some(header),
        }))
    }
}
