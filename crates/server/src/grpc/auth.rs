//! The Auth service: users, roles, permissions, `auth enable/disable/status`
//! and `Authenticate`, as etcd 3.4 answers them.
//!
//! Every change and every lookup is a command through the log, stamped
//! with its sender ([`Command::As`]), so that the state machine applies
//! etcd's rules (root for management, a user may read itself and its
//! roles) the same on every member. Passwords are hashed here with bcrypt
//! before the proposal, so the log holds hashes only; `Authenticate`
//! checks the password here against the member's applied state, then
//! issues the token (see [`crate::tokens`]).

use synod_kv::{
    AuthCommand, AuthResponse, AuthState, Command, KvError, PermKind, Permission,
    Response as KvResponse,
};
use synod_proto::authpb;
use synod_proto::etcdserverpb as pb;
use synod_proto::etcdserverpb::auth_server::Auth;
use tonic::{Request, Response, Status};

use super::Api;
use crate::convert::kv_status;
use crate::tokens;

/// How many times `Authenticate` tries again when the auth state changed
/// between its password check and its token (etcd loops until it did not).
const AUTHENTICATE_TRIES: usize = 3;

fn unexpected() -> Status {
    Status::internal("synod: unexpected response kind")
}

fn perm_in(p: authpb::Permission) -> Result<Permission, Status> {
    let kind = match authpb::permission::Type::try_from(p.perm_type) {
        Ok(authpb::permission::Type::Read) => PermKind::Read,
        Ok(authpb::permission::Type::Write) => PermKind::Write,
        Ok(authpb::permission::Type::Readwrite) => PermKind::ReadWrite,
        Err(_) => {
            return Err(Status::invalid_argument(format!(
                "synod: unknown permission type {}",
                p.perm_type
            )))
        }
    };
    Ok(Permission {
        kind,
        key: p.key,
        range_end: p.range_end,
    })
}

fn perm_out(p: Permission) -> authpb::Permission {
    let t = match p.kind {
        PermKind::Read => authpb::permission::Type::Read,
        PermKind::Write => authpb::permission::Type::Write,
        PermKind::ReadWrite => authpb::permission::Type::Readwrite,
    };
    authpb::Permission {
        perm_type: t as i32,
        key: p.key,
        range_end: p.range_end,
    }
}

impl Api {
    /// Applies `cmd` through the log as `req`'s sender: the header and the
    /// answer.
    async fn auth_cmd<T>(
        &self,
        req: &Request<T>,
        cmd: AuthCommand,
    ) -> Result<(pb::ResponseHeader, AuthResponse), Status> {
        let info = self.who(req).await?;
        let changes = !matches!(
            cmd,
            AuthCommand::Status
                | AuthCommand::UserGet { .. }
                | AuthCommand::UserList
                | AuthCommand::RoleGet { .. }
                | AuthCommand::RoleList
        );
        let state = |a: &AuthState| (a.enabled(), a.revision());
        let before = self.auth_view(state).await?;
        let (revision, resp) = match self
            .write(Command::from_user(info, Command::Auth(cmd)))
            .await?
        {
            KvResponse::Auth { revision, resp } => (revision, resp),
            _ => return Err(unexpected()),
        };
        // An auth change moves no key revision, so the forwarded write's
        // reply is not held until this member applied it: wait here
        // (bounded), so that the caller's next request to this member is
        // checked against the change it was told is done.
        if changes {
            for _ in 0..TOKEN_APPLY_POLLS {
                if self.auth_view(state).await? != before {
                    break;
                }
                tokio::time::sleep(TOKEN_APPLY_POLL).await;
            }
        }
        Ok((self.header(revision), resp))
    }

    /// Refuses a sender without the root role before slow work (hashing):
    /// the state machine checks again when the command applies.
    async fn admin_first<T>(&self, req: &Request<T>) -> Result<(), Status> {
        self.check_admin(req).await
    }

    /// The hash to store for a new password: the client's bcrypt hash
    /// (`hashedPassword`, etcd 3.5's clients), or the password hashed here.
    async fn new_hash(&self, password: String, hashed: String) -> Result<Vec<u8>, Status> {
        if !hashed.is_empty() {
            if !tokens::looks_like_bcrypt(&hashed) {
                return Err(Status::invalid_argument(
                    "synod: hashedPassword is not a bcrypt hash",
                ));
            }
            return Ok(hashed.into_bytes());
        }
        tokens::hash_password(password, self.shared().cfg.auth.bcrypt_cost).await
    }

    async fn authenticate_once(
        &self,
        name: &str,
        password: &str,
    ) -> Result<(String, bool), Status> {
        let n = name.to_string();
        let (enabled, checked_rev, user) = self
            .auth_view(move |a| {
                (
                    a.enabled(),
                    a.revision(),
                    a.user(&n).map(|u| (u.password.clone(), u.no_password)),
                )
            })
            .await?;
        if !enabled {
            return Err(kv_status(&KvError::AuthNotEnabled));
        }
        let failed = || kv_status(&KvError::AuthFailed);
        let Some((hash, no_password)) = user else {
            return Err(failed());
        };
        if no_password || !tokens::password_matches(password.to_string(), hash).await {
            return Err(failed());
        }
        if self.tokens().is_jwt() {
            return Ok((self.tokens().sign(name, checked_rev)?, true));
        }
        let cmd = AuthCommand::Authenticate {
            name: name.to_string(),
            token_prefix: tokens::token_prefix()?,
        };
        let token = match self.write(Command::Auth(cmd)).await? {
            KvResponse::Auth {
                resp: AuthResponse::Token(t),
                ..
            } => t,
            _ => return Err(unexpected()),
        };
        // The token is registered through the log, and the leader may have
        // applied it before this member: answer once this member knows it,
        // so the caller's next request here is not refused (read your
        // writes). Bounded: past it the caller retries as after any lag.
        for _ in 0..TOKEN_APPLY_POLLS {
            let t = token.clone();
            if self.auth_view(move |a| a.token_user(&t).is_some()).await? {
                break;
            }
            tokio::time::sleep(TOKEN_APPLY_POLL).await;
        }
        let now_rev = self.auth_view(|a| a.revision()).await?;
        Ok((token, now_rev == checked_rev))
    }
}

/// How often, and how many times, `authenticate` looks for its new simple
/// token in this member's auth state before answering.
const TOKEN_APPLY_POLL: std::time::Duration = std::time::Duration::from_millis(10);
const TOKEN_APPLY_POLLS: usize = 200;

#[tonic::async_trait]
impl Auth for Api {
    async fn auth_enable(
        &self,
        req: Request<pb::AuthEnableRequest>,
    ) -> Result<Response<pb::AuthEnableResponse>, Status> {
        self.check_leader(&req)?;
        // The auth state lives in the home group; the others could not
        // check their commands against it.
        // Nor on one whose ranges may split at any moment.
        if self.shared().groups.iter().count() > 1 || self.shared().cfg.range_max_keys.is_some() {
            return Err(Status::failed_precondition(
                "synod: authentication on a keyspace split into several Raft groups \
                 is not supported",
            ));
        }
        let (header, _) = self.auth_cmd(&req, AuthCommand::Enable).await?;
        Ok(Response::new(pb::AuthEnableResponse {
            header: Some(header),
        }))
    }

    async fn auth_disable(
        &self,
        req: Request<pb::AuthDisableRequest>,
    ) -> Result<Response<pb::AuthDisableResponse>, Status> {
        self.check_leader(&req)?;
        let (header, _) = self.auth_cmd(&req, AuthCommand::Disable).await?;
        Ok(Response::new(pb::AuthDisableResponse {
            header: Some(header),
        }))
    }

    async fn auth_status(
        &self,
        req: Request<pb::AuthStatusRequest>,
    ) -> Result<Response<pb::AuthStatusResponse>, Status> {
        self.check_leader(&req)?;
        match self.auth_cmd(&req, AuthCommand::Status).await? {
            (header, AuthResponse::Status { enabled, revision }) => {
                Ok(Response::new(pb::AuthStatusResponse {
                    header: Some(header),
                    enabled,
                    auth_revision: revision,
                }))
            }
            _ => Err(unexpected()),
        }
    }

    async fn authenticate(
        &self,
        req: Request<pb::AuthenticateRequest>,
    ) -> Result<Response<pb::AuthenticateResponse>, Status> {
        self.check_leader(&req)?;
        let r = req.into_inner();
        if r.name.len() > synod_kv::MAX_NAME_BYTES {
            return Err(kv_status(&KvError::AuthFailed));
        }
        let mut token = String::new();
        for _ in 0..AUTHENTICATE_TRIES {
            let (t, settled) = self.authenticate_once(&r.name, &r.password).await?;
            token = t;
            if settled {
                break;
            }
        }
        Ok(Response::new(pb::AuthenticateResponse {
            header: Some(self.header_now()),
            token,
        }))
    }

    async fn user_add(
        &self,
        req: Request<pb::AuthUserAddRequest>,
    ) -> Result<Response<pb::AuthUserAddResponse>, Status> {
        self.check_leader(&req)?;
        if req.get_ref().name.is_empty() {
            return Err(kv_status(&KvError::UserEmpty));
        }
        self.admin_first(&req).await?;
        let no_password = req
            .get_ref()
            .options
            .as_ref()
            .is_some_and(|o| o.no_password);
        let password = if no_password {
            Vec::new()
        } else {
            let r = req.get_ref();
            self.new_hash(r.password.clone(), r.hashed_password.clone())
                .await?
        };
        let cmd = AuthCommand::UserAdd {
            name: req.get_ref().name.clone(),
            password,
            no_password,
        };
        let (header, _) = self.auth_cmd(&req, cmd).await?;
        Ok(Response::new(pb::AuthUserAddResponse {
            header: Some(header),
        }))
    }

    async fn user_get(
        &self,
        req: Request<pb::AuthUserGetRequest>,
    ) -> Result<Response<pb::AuthUserGetResponse>, Status> {
        self.check_leader(&req)?;
        let name = req.get_ref().name.clone();
        match self.auth_cmd(&req, AuthCommand::UserGet { name }).await? {
            (header, AuthResponse::User(roles)) => Ok(Response::new(pb::AuthUserGetResponse {
                header: Some(header),
                roles,
            })),
            _ => Err(unexpected()),
        }
    }

    async fn user_list(
        &self,
        req: Request<pb::AuthUserListRequest>,
    ) -> Result<Response<pb::AuthUserListResponse>, Status> {
        self.check_leader(&req)?;
        match self.auth_cmd(&req, AuthCommand::UserList).await? {
            (header, AuthResponse::Users(users)) => Ok(Response::new(pb::AuthUserListResponse {
                header: Some(header),
                users,
            })),
            _ => Err(unexpected()),
        }
    }

    async fn user_delete(
        &self,
        req: Request<pb::AuthUserDeleteRequest>,
    ) -> Result<Response<pb::AuthUserDeleteResponse>, Status> {
        self.check_leader(&req)?;
        let name = req.get_ref().name.clone();
        let (header, _) = self
            .auth_cmd(&req, AuthCommand::UserDelete { name })
            .await?;
        Ok(Response::new(pb::AuthUserDeleteResponse {
            header: Some(header),
        }))
    }

    async fn user_change_password(
        &self,
        req: Request<pb::AuthUserChangePasswordRequest>,
    ) -> Result<Response<pb::AuthUserChangePasswordResponse>, Status> {
        self.check_leader(&req)?;
        self.admin_first(&req).await?;
        let r = req.get_ref();
        let password = self
            .new_hash(r.password.clone(), r.hashed_password.clone())
            .await?;
        let cmd = AuthCommand::UserChangePassword {
            name: r.name.clone(),
            password,
        };
        let (header, _) = self.auth_cmd(&req, cmd).await?;
        Ok(Response::new(pb::AuthUserChangePasswordResponse {
            header: Some(header),
        }))
    }

    async fn user_grant_role(
        &self,
        req: Request<pb::AuthUserGrantRoleRequest>,
    ) -> Result<Response<pb::AuthUserGrantRoleResponse>, Status> {
        self.check_leader(&req)?;
        let r = req.get_ref();
        let cmd = AuthCommand::UserGrantRole {
            user: r.user.clone(),
            role: r.role.clone(),
        };
        let (header, _) = self.auth_cmd(&req, cmd).await?;
        Ok(Response::new(pb::AuthUserGrantRoleResponse {
            header: Some(header),
        }))
    }

    async fn user_revoke_role(
        &self,
        req: Request<pb::AuthUserRevokeRoleRequest>,
    ) -> Result<Response<pb::AuthUserRevokeRoleResponse>, Status> {
        self.check_leader(&req)?;
        let r = req.get_ref();
        let cmd = AuthCommand::UserRevokeRole {
            user: r.name.clone(),
            role: r.role.clone(),
        };
        let (header, _) = self.auth_cmd(&req, cmd).await?;
        Ok(Response::new(pb::AuthUserRevokeRoleResponse {
            header: Some(header),
        }))
    }

    async fn role_add(
        &self,
        req: Request<pb::AuthRoleAddRequest>,
    ) -> Result<Response<pb::AuthRoleAddResponse>, Status> {
        self.check_leader(&req)?;
        let name = req.get_ref().name.clone();
        let (header, _) = self.auth_cmd(&req, AuthCommand::RoleAdd { name }).await?;
        Ok(Response::new(pb::AuthRoleAddResponse {
            header: Some(header),
        }))
    }

    async fn role_get(
        &self,
        req: Request<pb::AuthRoleGetRequest>,
    ) -> Result<Response<pb::AuthRoleGetResponse>, Status> {
        self.check_leader(&req)?;
        let name = req.get_ref().role.clone();
        match self.auth_cmd(&req, AuthCommand::RoleGet { name }).await? {
            (header, AuthResponse::Role(perms)) => Ok(Response::new(pb::AuthRoleGetResponse {
                header: Some(header),
                perm: perms.into_iter().map(perm_out).collect(),
            })),
            _ => Err(unexpected()),
        }
    }

    async fn role_list(
        &self,
        req: Request<pb::AuthRoleListRequest>,
    ) -> Result<Response<pb::AuthRoleListResponse>, Status> {
        self.check_leader(&req)?;
        match self.auth_cmd(&req, AuthCommand::RoleList).await? {
            (header, AuthResponse::Roles(roles)) => Ok(Response::new(pb::AuthRoleListResponse {
                header: Some(header),
                roles,
            })),
            _ => Err(unexpected()),
        }
    }

    async fn role_delete(
        &self,
        req: Request<pb::AuthRoleDeleteRequest>,
    ) -> Result<Response<pb::AuthRoleDeleteResponse>, Status> {
        self.check_leader(&req)?;
        let name = req.get_ref().role.clone();
        let (header, _) = self
            .auth_cmd(&req, AuthCommand::RoleDelete { name })
            .await?;
        Ok(Response::new(pb::AuthRoleDeleteResponse {
            header: Some(header),
        }))
    }

    async fn role_grant_permission(
        &self,
        req: Request<pb::AuthRoleGrantPermissionRequest>,
    ) -> Result<Response<pb::AuthRoleGrantPermissionResponse>, Status> {
        self.check_leader(&req)?;
        let r = req.get_ref();
        let perm = r
            .perm
            .clone()
            .ok_or_else(|| Status::invalid_argument("synod: the permission is missing"))?;
        let cmd = AuthCommand::RoleGrantPermission {
            role: r.name.clone(),
            perm: perm_in(perm)?,
        };
        let (header, _) = self.auth_cmd(&req, cmd).await?;
        Ok(Response::new(pb::AuthRoleGrantPermissionResponse {
            header: Some(header),
        }))
    }

    async fn role_revoke_permission(
        &self,
        req: Request<pb::AuthRoleRevokePermissionRequest>,
    ) -> Result<Response<pb::AuthRoleRevokePermissionResponse>, Status> {
        self.check_leader(&req)?;
        let r = req.get_ref();
        let cmd = AuthCommand::RoleRevokePermission {
            role: r.role.clone(),
            key: r.key.clone(),
            range_end: r.range_end.clone(),
        };
        let (header, _) = self.auth_cmd(&req, cmd).await?;
        Ok(Response::new(pb::AuthRoleRevokePermissionResponse {
            header: Some(header),
        }))
    }
}
