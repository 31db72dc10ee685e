//! The KV service: Range, Put, DeleteRange, Txn, Compact.

use synod_kv::{Command, Response as KvResponse};
use synod_node::{ClientOp, ClientResponse};
use synod_proto::etcdserverpb as pb;
use synod_proto::etcdserverpb::kv_server::Kv;
use tonic::{Request, Response, Status};

use super::Api;

/// The first key an etcd transaction touches (its group serves it).
fn txn_first_key(t: &pb::TxnRequest) -> Option<&[u8]> {
    use pb::request_op::Request as R;
    if let Some(c) = t.compare.first() {
        return Some(&c.key);
    }
    t.success
        .iter()
        .chain(&t.failure)
        .find_map(|op| match op.request.as_ref()? {
            R::RequestRange(r) => Some(r.key.as_slice()),
            R::RequestPut(p) => Some(p.key.as_slice()),
            R::RequestDeleteRange(d) => Some(d.key.as_slice()),
            R::RequestTxn(inner) => txn_first_key(inner),
        })
}
use crate::convert::{self, TOO_LARGE};

fn unexpected() -> Status {
    Status::internal("synod: unexpected response kind")
}

impl Api {
    fn check_size(&self, m: &impl prost::Message) -> Result<(), Status> {
        if m.encoded_len() > self.shared().cfg.max_request_bytes {
            return Err(Status::invalid_argument(TOO_LARGE));
        }
        Ok(())
    }

    pub(super) async fn write(&self, cmd: Command) -> Result<KvResponse, Status> {
        match self.call(ClientOp::Write(cmd)).await? {
            ClientResponse::Write(r) => Ok(r),
            _ => Err(unexpected()),
        }
    }
}

#[tonic::async_trait]
impl Kv for Api {
    async fn range(
        &self,
        req: Request<pb::RangeRequest>,
    ) -> Result<Response<pb::RangeResponse>, Status> {
        let g = self.shared().groups.for_key(&req.get_ref().key);
        self.check_leader_in(&req, &g)?;
        let info = self.who(&req).await?;
        let r = req.into_inner();
        let serializable = r.serializable;
        let rr = convert::range_in(r)?;
        match self
            .call(ClientOp::Range {
                req: rr,
                serializable,
                auth: Some(info),
            })
            .await?
        {
            ClientResponse::Range(resp) => {
                let h = self.header_in(&g, resp.header_revision);
                Ok(Response::new(convert::range_out(resp, h)))
            }
            _ => Err(unexpected()),
        }
    }

    async fn put(&self, req: Request<pb::PutRequest>) -> Result<Response<pb::PutResponse>, Status> {
        let g = self.shared().groups.for_key(&req.get_ref().key);
        self.check_leader_in(&req, &g)?;
        let info = self.who(&req).await?;
        let p = req.into_inner();
        self.check_size(&p)?;
        if p.key.is_empty() {
            return Err(Status::invalid_argument("etcdserver: key is not provided"));
        }
        let cmd = Command::from_user(info, Command::Put(convert::put_in(p)));
        match self.write(cmd).await? {
            KvResponse::Put { revision, prev_kv } => Ok(Response::new(pb::PutResponse {
                header: Some(self.header_in(&g, revision)),
                prev_kv: prev_kv.map(convert::kv_out),
            })),
            _ => Err(unexpected()),
        }
    }

    async fn delete_range(
        &self,
        req: Request<pb::DeleteRangeRequest>,
    ) -> Result<Response<pb::DeleteRangeResponse>, Status> {
        let g = self.shared().groups.for_key(&req.get_ref().key);
        self.check_leader_in(&req, &g)?;
        let info = self.who(&req).await?;
        let d = req.into_inner();
        if d.key.is_empty() {
            return Err(Status::invalid_argument("etcdserver: key is not provided"));
        }
        let cmd = Command::from_user(info, Command::DeleteRange(convert::delete_in(d)));
        match self.write(cmd).await? {
            KvResponse::DeleteRange {
                revision,
                deleted,
                prev_kvs,
            } => Ok(Response::new(pb::DeleteRangeResponse {
                header: Some(self.header_in(&g, revision)),
                deleted,
                prev_kvs: prev_kvs.into_iter().map(convert::kv_out).collect(),
            })),
            _ => Err(unexpected()),
        }
    }

    async fn txn(&self, req: Request<pb::TxnRequest>) -> Result<Response<pb::TxnResponse>, Status> {
        let g = match txn_first_key(req.get_ref()) {
            Some(k) => self.shared().groups.for_key(k),
            None => self.shared().groups.home(),
        };
        self.check_leader_in(&req, &g)?;
        let info = self.who(&req).await?;
        let t = req.into_inner();
        self.check_size(&t)?;
        let t = convert::txn_in(t, 0)?;
        match self
            .write(Command::from_user(info, Command::Txn(t)))
            .await?
        {
            KvResponse::Txn {
                revision,
                succeeded,
                responses,
            } => {
                // etcd fills only the revision in the headers of a txn's responses.
                let hdr = |revision: i64| pb::ResponseHeader {
                    revision,
                    ..Default::default()
                };
                Ok(Response::new(pb::TxnResponse {
                    header: Some(self.header_in(&g, revision)),
                    succeeded,
                    responses: responses
                        .into_iter()
                        .map(|r| convert::op_out(r, &hdr))
                        .collect(),
                }))
            }
            _ => Err(unexpected()),
        }
    }

    async fn compact(
        &self,
        req: Request<pb::CompactionRequest>,
    ) -> Result<Response<pb::CompactionResponse>, Status> {
        self.check_leader(&req)?;
        let info = self.who(&req).await?;
        let c = req.into_inner();
        let cmd = Command::Compact {
            revision: c.revision,
        };
        match self.write(Command::from_user(info, cmd)).await? {
            KvResponse::Compact { revision } => Ok(Response::new(pb::CompactionResponse {
                header: Some(self.header(revision)),
            })),
            _ => Err(unexpected()),
        }
    }
}
