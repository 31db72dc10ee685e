//! The Cluster service: MemberList. Membership changes are refused for now
//! (the core supports Raft configuration changes; the server does not wire
//! them up yet).

use synod_proto::etcdserverpb as pb;
use synod_proto::etcdserverpb::cluster_server::Cluster;
use tonic::{Request, Response, Status};

use super::Api;

const NO_CHANGES: &str = "synod: membership changes are not supported yet";

impl Api {
    fn members(&self) -> Vec<pb::Member> {
        let s = self.shared();
        let peers = s.peers.lock().expect("peer table lock").clone();
        let mut members: Vec<pb::Member> = s
            .cfg
            .members
            .iter()
            .map(|m| {
                let (name, client_urls) = if m.id == s.cfg.id {
                    (s.cfg.name.clone(), s.cfg.advertise_client_urls.clone())
                } else {
                    match peers.get(&m.id) {
                        Some(p) => (p.name.clone(), p.client_urls.clone()),
                        // Not heard from yet: etcd shows such a member unstarted (no name).
                        None => (String::new(), Vec::new()),
                    }
                };
                pb::Member {
                    id: m.id,
                    name,
                    peer_ur_ls: vec![m.peer_url.clone()],
                    client_ur_ls: client_urls,
                    is_learner: false,
                }
            })
            .collect();
        // etcd lists members in id order.
        members.sort_by_key(|m| m.id);
        members
    }
}

#[tonic::async_trait]
impl Cluster for Api {
    async fn member_add(
        &self,
        _req: Request<pb::MemberAddRequest>,
    ) -> Result<Response<pb::MemberAddResponse>, Status> {
        Err(Status::unimplemented(NO_CHANGES))
    }

    async fn member_remove(
        &self,
        _req: Request<pb::MemberRemoveRequest>,
    ) -> Result<Response<pb::MemberRemoveResponse>, Status> {
        Err(Status::unimplemented(NO_CHANGES))
    }

    async fn member_update(
        &self,
        _req: Request<pb::MemberUpdateRequest>,
    ) -> Result<Response<pb::MemberUpdateResponse>, Status> {
        Err(Status::unimplemented(NO_CHANGES))
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
        _req: Request<pb::MemberPromoteRequest>,
    ) -> Result<Response<pb::MemberPromoteResponse>, Status> {
        Err(Status::unimplemented(NO_CHANGES))
    }
}
