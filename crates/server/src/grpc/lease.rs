//! The Lease service: Grant, Revoke, KeepAlive (stream), TimeToLive, Leases.

use std::pin::Pin;

use synod_kv::{Command, KvError, Response as KvResponse};
use synod_node::{ClientOp, ClientResponse};
use synod_proto::etcdserverpb as pb;
use synod_proto::etcdserverpb::lease_server::Lease;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Code, Request, Response, Status, Streaming};

use super::Api;
use crate::inbox::Query;
use crate::wire::{Answer, Ask};

type KeepAliveOut = Result<pb::LeaseKeepAliveResponse, Status>;

/// etcd's message for a lease id already granted.
const LEASE_EXISTS: &str = "etcdserver: lease already exists";

/// etcd's shortest lease, in whole seconds: one and a half election
/// timeouts (`(3 * election_ticks / 2)` heartbeats), rounded up, so a lease
/// outlives a leader change. Shorter grants are raised to it.
pub fn min_lease_ttl(tick: std::time::Duration, election_ticks: u32) -> i64 {
    let ms = u128::from(3 * election_ticks / 2) * tick.as_millis();
    i64::try_from(ms.div_ceil(1000)).unwrap_or(i64::MAX).max(1)
}

impl Api {
    /// Answers each keep-alive request of `inbound` in turn, as etcd's
    /// LeaseKeepAlive stream does (the gRPC stream and the gateway's
    /// `/v3/lease/keepalive` both run it).
    pub fn keep_alive_stream<S>(&self, mut inbound: S) -> mpsc::Receiver<KeepAliveOut>
    where
        S: Stream<Item = Result<pb::LeaseKeepAliveRequest, Status>> + Send + Unpin + 'static,
    {
        let (tx, rx) = mpsc::channel::<KeepAliveOut>(64);
        let api = self.clone();
        tokio::spawn(async move {
            loop {
                let msg = tokio::select! {
                    m = inbound.next() => m,
                    _ = tx.closed() => return,
                };
                let id = match msg {
                    Some(Ok(r)) => r.id,
                    None | Some(Err(_)) => return,
                };
                let out = match api.call(ClientOp::LeaseKeepAlive { id }).await {
                    Ok(ClientResponse::LeaseKeepAlive { id, ttl }) => {
                        Ok(pb::LeaseKeepAliveResponse {
                            header: Some(api.header_now()),
                            id,
                            ttl,
                        })
                    }
                    // etcd answers a keep-alive of an unknown lease with TTL 0.
                    Err(s) if s.code() == Code::NotFound => Ok(pb::LeaseKeepAliveResponse {
                        header: Some(api.header_now()),
                        id,
                        ttl: 0,
                    }),
                    Ok(_) => Err(Status::internal("synod: unexpected response kind")),
                    Err(s) => Err(s),
                };
                let stop = out.is_err();
                if tx.send(out).await.is_err() || stop {
                    return;
                }
            }
        });
        rx
    }
}

#[tonic::async_trait]
impl Lease for Api {
    async fn lease_grant(
        &self,
        req: Request<pb::LeaseGrantRequest>,
    ) -> Result<Response<pb::LeaseGrantResponse>, Status> {
        self.check_leader(&req)?;
        let info = self.who(&req).await?;
        let r = req.into_inner();
        let cfg = &self.shared().cfg;
        let ttl = r.ttl.max(min_lease_ttl(cfg.tick, cfg.election_ticks));
        // Without an id, the member picks one of etcd's shape (its own id's
        // low bits over a clock), so keys that embed lease ids look as on
        // etcd; another pick if it is taken.
        let mut tries = 0;
        loop {
            tries += 1;
            let id = if r.id == 0 { self.next_etcd_id() } else { r.id };
            let cmd = Command::from_user(info.clone(), Command::LeaseGrant { id, ttl });
            return match self.call(ClientOp::Write(cmd)).await {
                Ok(ClientResponse::Write(KvResponse::LeaseGrant { revision, id, ttl })) => {
                    Ok(Response::new(pb::LeaseGrantResponse {
                        header: Some(self.header(revision)),
                        id,
                        ttl,
                        error: String::new(),
                    }))
                }
                Err(s) if r.id == 0 && tries < 8 && s.message() == LEASE_EXISTS => continue,
                Err(s) => Err(s),
                Ok(_) => Err(Status::internal("synod: unexpected response kind")),
            };
        }
    }

    async fn lease_revoke(
        &self,
        req: Request<pb::LeaseRevokeRequest>,
    ) -> Result<Response<pb::LeaseRevokeResponse>, Status> {
        self.check_leader(&req)?;
        let info = self.who(&req).await?;
        let r = req.into_inner();
        let cmd = Command::from_user(info, Command::LeaseRevoke { id: r.id });
        match self.call(ClientOp::Write(cmd)).await? {
            ClientResponse::Write(resp) => Ok(Response::new(pb::LeaseRevokeResponse {
                header: Some(
                    self.header(resp.revision().max(self.shared().groups.home().revision())),
                ),
            })),
            _ => Err(Status::internal("synod: unexpected response kind")),
        }
    }

    type LeaseKeepAliveStream = Pin<Box<dyn Stream<Item = KeepAliveOut> + Send + 'static>>;

    async fn lease_keep_alive(
        &self,
        req: Request<Streaming<pb::LeaseKeepAliveRequest>>,
    ) -> Result<Response<Self::LeaseKeepAliveStream>, Status> {
        self.check_leader(&req)?;
        let rx = self.keep_alive_stream(req.into_inner());
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn lease_time_to_live(
        &self,
        req: Request<pb::LeaseTimeToLiveRequest>,
    ) -> Result<Response<pb::LeaseTimeToLiveResponse>, Status> {
        self.check_leader(&req)?;
        let r = req.into_inner();
        let Answer::LeaseTtl(res) = self
            .ask(Ask::LeaseTtl {
                id: r.id,
                keys: r.keys,
            })
            .await?;
        match res {
            Ok(t) => Ok(Response::new(pb::LeaseTimeToLiveResponse {
                header: Some(self.header_now()),
                id: r.id,
                ttl: t.ttl,
                granted_ttl: t.granted,
                keys: t.keys,
            })),
            // etcd reports an unknown (expired) lease with TTL -1, not an error.
            Err(synod_node::ClientError::Kv(KvError::LeaseNotFound)) => {
                Ok(Response::new(pb::LeaseTimeToLiveResponse {
                    header: Some(self.header_now()),
                    id: r.id,
                    ttl: -1,
                    granted_ttl: 0,
                    keys: Vec::new(),
                }))
            }
            Err(e) => Err(crate::convert::client_status(&e)),
        }
    }

    async fn lease_leases(
        &self,
        req: Request<pb::LeaseLeasesRequest>,
    ) -> Result<Response<pb::LeaseLeasesResponse>, Status> {
        self.check_leader(&req)?;
        let ids = self.query(Query::Leases).await?;
        Ok(Response::new(pb::LeaseLeasesResponse {
            header: Some(self.header_now()),
            leases: ids.into_iter().map(|id| pb::LeaseStatus { id }).collect(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::min_lease_ttl;
    use std::time::Duration;

    #[test]
    fn the_shortest_lease_follows_etcds_rule() {
        // etcd's defaults (100 ms heartbeat, 1 s election): 1.5 s, so 2 s.
        assert_eq!(min_lease_ttl(Duration::from_millis(100), 10), 2);
        // 50 ms / 500 ms: 0.75 s, so 1 s.
        assert_eq!(min_lease_ttl(Duration::from_millis(50), 10), 1);
        // Odd tick counts round down before multiplying, as etcd's do.
        assert_eq!(min_lease_ttl(Duration::from_millis(100), 15), 3);
        assert_eq!(min_lease_ttl(Duration::from_millis(1000), 5), 7);
    }
}
