//! The Auth service as an etcd with authentication disabled and no users or
//! roles answers it: status says disabled, lists are empty, a lookup finds
//! nothing, `authenticate` says authentication is not enabled. Creating
//! users or roles and enabling authentication are refused as Unimplemented
//! (synod has no authentication yet), never pretended.

use synod_proto::etcdserverpb as pb;
use synod_proto::etcdserverpb::auth_server::Auth;
use tonic::{Request, Response, Status};

use super::Api;

const NOT_ENABLED: &str = "etcdserver: authentication is not enabled";
const NO_USER: &str = "etcdserver: user name not found";
const NO_ROLE: &str = "etcdserver: role name not found";

fn unsupported(what: &str) -> Status {
    Status::unimplemented(format!("synod: {what} is not supported yet"))
}

#[tonic::async_trait]
impl Auth for Api {
    async fn auth_enable(
        &self,
        _req: Request<pb::AuthEnableRequest>,
    ) -> Result<Response<pb::AuthEnableResponse>, Status> {
        Err(unsupported("authentication"))
    }

    async fn auth_disable(
        &self,
        req: Request<pb::AuthDisableRequest>,
    ) -> Result<Response<pb::AuthDisableResponse>, Status> {
        self.check_leader(&req)?;
        Ok(Response::new(pb::AuthDisableResponse {
            header: Some(self.header_now()),
        }))
    }

    async fn auth_status(
        &self,
        req: Request<pb::AuthStatusRequest>,
    ) -> Result<Response<pb::AuthStatusResponse>, Status> {
        self.check_leader(&req)?;
        Ok(Response::new(pb::AuthStatusResponse {
            header: Some(self.header_now()),
            enabled: false,
            auth_revision: 0,
        }))
    }

    async fn authenticate(
        &self,
        _req: Request<pb::AuthenticateRequest>,
    ) -> Result<Response<pb::AuthenticateResponse>, Status> {
        Err(Status::failed_precondition(NOT_ENABLED))
    }

    async fn user_add(
        &self,
        req: Request<pb::AuthUserAddRequest>,
    ) -> Result<Response<pb::AuthUserAddResponse>, Status> {
        if req.get_ref().name.is_empty() {
            return Err(Status::invalid_argument("etcdserver: user name is empty"));
        }
        Err(unsupported("adding users"))
    }

    async fn user_get(
        &self,
        _req: Request<pb::AuthUserGetRequest>,
    ) -> Result<Response<pb::AuthUserGetResponse>, Status> {
        Err(Status::failed_precondition(NO_USER))
    }

    async fn user_list(
        &self,
        req: Request<pb::AuthUserListRequest>,
    ) -> Result<Response<pb::AuthUserListResponse>, Status> {
        self.check_leader(&req)?;
        Ok(Response::new(pb::AuthUserListResponse {
            header: Some(self.header_now()),
            users: Vec::new(),
        }))
    }

    async fn user_delete(
        &self,
        _req: Request<pb::AuthUserDeleteRequest>,
    ) -> Result<Response<pb::AuthUserDeleteResponse>, Status> {
        Err(Status::failed_precondition(NO_USER))
    }

    async fn user_change_password(
        &self,
        _req: Request<pb::AuthUserChangePasswordRequest>,
    ) -> Result<Response<pb::AuthUserChangePasswordResponse>, Status> {
        Err(Status::failed_precondition(NO_USER))
    }

    async fn user_grant_role(
        &self,
        _req: Request<pb::AuthUserGrantRoleRequest>,
    ) -> Result<Response<pb::AuthUserGrantRoleResponse>, Status> {
        Err(Status::failed_precondition(NO_USER))
    }

    async fn user_revoke_role(
        &self,
        _req: Request<pb::AuthUserRevokeRoleRequest>,
    ) -> Result<Response<pb::AuthUserRevokeRoleResponse>, Status> {
        Err(Status::failed_precondition(NO_USER))
    }

    async fn role_add(
        &self,
        req: Request<pb::AuthRoleAddRequest>,
    ) -> Result<Response<pb::AuthRoleAddResponse>, Status> {
        if req.get_ref().name.is_empty() {
            return Err(Status::invalid_argument("etcdserver: role name is empty"));
        }
        Err(unsupported("adding roles"))
    }

    async fn role_get(
        &self,
        _req: Request<pb::AuthRoleGetRequest>,
    ) -> Result<Response<pb::AuthRoleGetResponse>, Status> {
        Err(Status::failed_precondition(NO_ROLE))
    }

    async fn role_list(
        &self,
        req: Request<pb::AuthRoleListRequest>,
    ) -> Result<Response<pb::AuthRoleListResponse>, Status> {
        self.check_leader(&req)?;
        Ok(Response::new(pb::AuthRoleListResponse {
            header: Some(self.header_now()),
            roles: Vec::new(),
        }))
    }

    async fn role_delete(
        &self,
        _req: Request<pb::AuthRoleDeleteRequest>,
    ) -> Result<Response<pb::AuthRoleDeleteResponse>, Status> {
        Err(Status::failed_precondition(NO_ROLE))
    }

    async fn role_grant_permission(
        &self,
        _req: Request<pb::AuthRoleGrantPermissionRequest>,
    ) -> Result<Response<pb::AuthRoleGrantPermissionResponse>, Status> {
        Err(Status::failed_precondition(NO_ROLE))
    }

    async fn role_revoke_permission(
        &self,
        _req: Request<pb::AuthRoleRevokePermissionRequest>,
    ) -> Result<Response<pb::AuthRoleRevokePermissionResponse>, Status> {
        Err(Status::failed_precondition(NO_ROLE))
    }
}
