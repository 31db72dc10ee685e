//! The Cluster service: member list, add (voter or learner), remove, update
//! and promote. Each change is a request to the leader's node, answered once
//! the change is applied there; the checks and their messages are etcd's
//! (the core's [`synod_node::MemberError`]). The list comes from the
//! replicated member registry as this member last applied it.

use synod_node::{ClientOp, ClientResponse, Member, MemberOp};
use synod_proto::etcdserverpb as pb;
use synod_proto::etcdserverpb::cluster_server::Cluster;
use tonic::{Request, Response, Status};

use super::Api;

fn member_out(m: &Member) -> pb::Member {
    pb::Member {
        id: m.id,
        name: m.name.clone(),
        peer_ur_ls: m.peer_urls.clone(),
        client_ur_ls: m.client_urls.clone(),
        is_learner: m.is_learner,
    }
}

/// etcd checks that every peer URL is a URL before anything else.
fn check_urls(urls: &[String]) -> Result<(), Status> {
    let bad = || Status::invalid_argument("etcdserver: given member URLs are invalid");
    if urls.is_empty() || urls.len() > synod_node::MAX_URLS {
        return Err(bad());
    }
    for u in urls {
        if u.len() > synod_node::MAX_URL_BYTES
            || !u.starts_with("http://")
            || crate::config::parse_url("peer URL", u).is_err()
        {
            return Err(bad());
        }
    }
    Ok(())
}

impl Api {
    pub(super) fn members(&self) -> Vec<pb::Member> {
        self.shared()
            .peers
            .member_list()
            .iter()
            .map(member_out)
            .collect()
    }

    /// Runs a membership change; the changed member's id and every member after it.
    async fn change(&self, op: MemberOp) -> Result<(u64, Vec<Member>), Status> {
        match self.call(ClientOp::Member(op)).await? {
            ClientResponse::Member { id, members } => Ok((id, members)),
            other => Err(Status::internal(format!(
                "unexpected answer to a membership change: {other:?}"
            ))),
        }
    }
}

#[tonic::async_trait]
impl Cluster for Api {
    async fn member_add(
        &self,
        req: Request<pb::MemberAddRequest>,
    ) -> Result<Response<pb::MemberAddResponse>, Status> {
        self.check_admin(&req).await?;
        let r = req.into_inner();
        check_urls(&r.peer_ur_ls)?;
        let (id, members) = self
            .change(MemberOp::Add {
                peer_urls: r.peer_ur_ls,
                learner: r.is_learner,
            })
            .await?;
        let member = members.iter().find(|m| m.id == id).map(member_out);
        Ok(Response::new(pb::MemberAddResponse {
            header: Some(self.header_now()),
            member,
            members: members.iter().map(member_out).collect(),
        }))
    }

    async fn member_remove(
        &self,
        req: Request<pb::MemberRemoveRequest>,
    ) -> Result<Response<pb::MemberRemoveResponse>, Status> {
        self.check_admin(&req).await?;
        let id = req.into_inner().id;
        let (_, members) = self.change(MemberOp::Remove { id }).await?;
        Ok(Response::new(pb::MemberRemoveResponse {
            header: Some(self.header_now()),
            members: members.iter().map(member_out).collect(),
        }))
    }

    async fn member_update(
        &self,
        req: Request<pb::MemberUpdateRequest>,
    ) -> Result<Response<pb::MemberUpdateResponse>, Status> {
        self.check_admin(&req).await?;
        let r = req.into_inner();
        check_urls(&r.peer_ur_ls)?;
        let (_, members) = self
            .change(MemberOp::Update {
                id: r.id,
                peer_urls: r.peer_ur_ls,
            })
            .await?;
        Ok(Response::new(pb::MemberUpdateResponse {
            header: Some(self.header_now()),
            members: members.iter().map(member_out).collect(),
        }))
    }

    async fn member_list(
        &self,
        req: Request<pb::MemberListRequest>,
    ) -> Result<Response<pb::MemberListResponse>, Status> {
        self.check_leader(&req)?;
        Ok(Response::new(pb::MemberListResponse {
            // etcd's member list header carries no revision.
            header: Some(self.header(0)),
            members: self.members(),
        }))
    }

    async fn member_promote(
        &self,
        req: Request<pb::MemberPromoteRequest>,
    ) -> Result<Response<pb::MemberPromoteResponse>, Status> {
        self.check_admin(&req).await?;
        let id = req.into_inner().id;
        let (_, members) = self.change(MemberOp::Promote { id }).await?;
        Ok(Response::new(pb::MemberPromoteResponse {
            header: Some(self.header_now()),
            members: members.iter().map(member_out).collect(),
        }))
    }
}
