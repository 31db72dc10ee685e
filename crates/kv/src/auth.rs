//! etcd's authentication state, replicated: users, roles, key permissions,
//! whether authentication is on, the auth revision, and the simple tokens
//! handed out.
//!
//! Everything here is applied from committed commands, so every replica
//! reaches the same verdicts. Passwords arrive already hashed (bcrypt, by
//! the server, as etcd's API layer hashes them before proposing), and a
//! token's random part arrives from the server too: nothing here draws a
//! random number or reads a clock. A token's time to live is the server's
//! business; this table only says which user a token was issued to.
//!
//! The rules are etcd 3.4's (`auth/store.go`, `range_perm_cache.go`,
//! `etcdserver/apply_auth.go`):
//! * the auth revision starts at 1 and moves by one on every change of
//!   users, roles or permissions and on `auth disable` (not on enable);
//! * a request carries the user its token named and the auth revision the
//!   token was checked at ([`AuthInfo`]); with authentication on, a key
//!   operation without a user is refused (`user name is empty`), one checked
//!   at an older auth revision than the current one is refused (`revision of
//!   auth store is old`), and otherwise the user's roles' permissions must
//!   cover the keys (the root role covers everything);
//! * a permission is a key (`range_end` empty), a range `[key, range_end)`,
//!   or every key from `key` on (`range_end` = `"\0"`); a range request is
//!   allowed when the union of the user's permissions of that kind covers
//!   it whole;
//! * user and role management needs the root role; `auth enable` needs a
//!   `root` user holding the `root` role; while enabled, the root user
//!   cannot be deleted nor lose the root role, and the root role cannot be
//!   deleted.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};

use crate::error::KvError;
use crate::fnv::Fnv;

/// The user whose existence, with [`ROOT_ROLE`], `auth enable` requires.
pub const ROOT_USER: &str = "root";
/// The role that is allowed everything.
pub const ROOT_ROLE: &str = "root";
/// Longest user or role name, in bytes.
pub const MAX_NAME_BYTES: usize = 256;
/// Longest stored password hash, in bytes (a bcrypt hash is 60).
pub const MAX_HASH_BYTES: usize = 128;
/// Longest random part of a simple token, in bytes.
pub const MAX_TOKEN_PREFIX_BYTES: usize = 64;
/// Most users.
pub const MAX_USERS: usize = 10_000;
/// Most roles.
pub const MAX_ROLES: usize = 10_000;
/// Most permissions in one role.
pub const MAX_PERMS_PER_ROLE: usize = 4_096;
/// Most roles granted to one user.
pub const MAX_ROLES_PER_USER: usize = 1_024;
/// Most simple tokens remembered; the oldest is forgotten first.
pub const MAX_TOKENS: usize = 16_384;

/// Which operations a permission allows (etcd's `authpb.Permission.Type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum PermKind {
    /// Ranges, compares, watches.
    Read,
    /// Puts and deletes.
    Write,
    /// Both.
    ReadWrite,
}

impl PermKind {
    fn allows(self, want: PermKind) -> bool {
        self == PermKind::ReadWrite || self == want
    }
}

/// Access to one key or one key range.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Permission {
    /// What it allows.
    pub kind: PermKind,
    /// The key, or the first key of the range.
    pub key: Vec<u8>,
    /// Empty: `key` alone. `"\0"`: every key from `key` on. Otherwise `[key, range_end)`.
    pub range_end: Vec<u8>,
}

/// One user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// The name.
    pub name: String,
    /// The bcrypt hash of the password (empty with `no_password`).
    pub password: Vec<u8>,
    /// The roles granted, in order.
    pub roles: BTreeSet<String>,
    /// A user that cannot authenticate with a password (etcd's
    /// `--no-password`: only a client certificate names it).
    pub no_password: bool,
}

/// One role.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Role {
    /// The name.
    pub name: String,
    /// Its permissions, ordered by key as etcd keeps them.
    pub perms: Vec<Permission>,
}

/// Who a request is from, as the server found out from its token: the user
/// and the auth revision the token was checked at (etcd's `AuthInfo`,
/// carried in `RequestHeader`). An empty user with revision 0 is "no one".
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthInfo {
    /// The user name; empty when the request carried no token.
    pub user: String,
    /// The auth revision at which the token was checked; 0: none.
    pub revision: u64,
}

/// A change to, or a question about, the auth state (etcd's `Auth*Request`s).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuthCommand {
    /// Turn authentication on.
    Enable,
    /// Turn authentication off.
    Disable,
    /// Whether it is on, and the auth revision.
    Status,
    /// Issue a simple token to `name`, whose password the server checked:
    /// the token is `token_prefix` "." the store's revision.
    Authenticate {
        /// The user.
        name: String,
        /// The token's random part, drawn by the server.
        token_prefix: String,
    },
    /// Add a user.
    UserAdd {
        /// The name.
        name: String,
        /// The bcrypt hash of its password (empty with `no_password`).
        password: Vec<u8>,
        /// A user without a password.
        no_password: bool,
    },
    /// A user's roles.
    UserGet {
        /// The user.
        name: String,
    },
    /// Every user's name.
    UserList,
    /// Delete a user.
    UserDelete {
        /// The user.
        name: String,
    },
    /// Replace a user's password hash.
    UserChangePassword {
        /// The user.
        name: String,
        /// The new bcrypt hash.
        password: Vec<u8>,
    },
    /// Grant a role to a user.
    UserGrantRole {
        /// The user.
        user: String,
        /// The role.
        role: String,
    },
    /// Take a role from a user.
    UserRevokeRole {
        /// The user.
        user: String,
        /// The role.
        role: String,
    },
    /// Add a role.
    RoleAdd {
        /// The name.
        name: String,
    },
    /// A role's permissions.
    RoleGet {
        /// The role.
        name: String,
    },
    /// Every role's name.
    RoleList,
    /// Delete a role (and take it from every user).
    RoleDelete {
        /// The role.
        name: String,
    },
    /// Add a permission to a role, or change the kind of the one with the
    /// same key and range end.
    RoleGrantPermission {
        /// The role.
        role: String,
        /// The permission.
        perm: Permission,
    },
    /// Remove the permission with this key and range end from a role.
    RoleRevokePermission {
        /// The role.
        role: String,
        /// The permission's key.
        key: Vec<u8>,
        /// The permission's range end.
        range_end: Vec<u8>,
    },
}

impl AuthCommand {
    /// Whether etcd asks for the root role before applying it
    /// (`needAdminPermission`); `UserGet` and `RoleGet` have their own rule.
    /// `Status` is among them: etcd 3.4's gRPC API has no `AuthStatus`, but
    /// its applier (from 3.4.31, for a 3.5 member's proposals) and etcd 3.5
    /// ask for the root role (3.6 dropped that).
    fn needs_admin(&self) -> bool {
        !matches!(
            self,
            AuthCommand::Authenticate { .. }
                | AuthCommand::UserGet { .. }
                | AuthCommand::RoleGet { .. }
        )
    }
}

/// What an [`AuthCommand`] answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuthResponse {
    /// A change was applied (or was a no-op etcd accepts).
    Done,
    /// Whether authentication is on, and the auth revision.
    Status {
        /// On or off.
        enabled: bool,
        /// The auth revision.
        revision: u64,
    },
    /// The token issued.
    Token(String),
    /// A user's roles, in order.
    User(Vec<String>),
    /// User names, in order.
    Users(Vec<String>),
    /// A role's permissions, in etcd's order.
    Role(Vec<Permission>),
    /// Role names, in order.
    Roles(Vec<String>),
}

/// The part of the auth state that is persisted, snapshotted and hashed
/// (and carried in another system's backup: [`crate::StateParts::auth`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthImage {
    /// Whether authentication is on.
    pub enabled: bool,
    /// The auth revision (at least 1).
    pub revision: u64,
    /// The users, by name.
    pub users: Vec<User>,
    /// The roles, by name.
    pub roles: Vec<Role>,
}

impl Default for AuthImage {
    /// That of a store that never saw an auth change.
    fn default() -> Self {
        AuthState::default().image()
    }
}

/// The auth state of a store. See the module docs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthState {
    enabled: bool,
    revision: u64,
    users: BTreeMap<String, User>,
    roles: BTreeMap<String, Role>,
    /// Simple tokens issued since this replica started (not persisted, as
    /// in etcd): token to user.
    tokens: BTreeMap<String, String>,
    /// The tokens in the order they were issued, to forget the oldest.
    token_order: VecDeque<String>,
}

impl Default for AuthState {
    fn default() -> Self {
        AuthState {
            enabled: false,
            revision: 1,
            users: BTreeMap::new(),
            roles: BTreeMap::new(),
            tokens: BTreeMap::new(),
            token_order: VecDeque::new(),
        }
    }
}

/// An interval end: `None` is past every key.
type End = Option<Vec<u8>>;

/// A permission's or request's keys as an interval `[begin, end)`.
fn interval(key: &[u8], range_end: &[u8]) -> (Vec<u8>, End) {
    if range_end.is_empty() {
        let mut next = key.to_vec();
        next.push(0);
        (key.to_vec(), Some(next))
    } else if range_end == [0] {
        (key.to_vec(), None)
    } else {
        (key.to_vec(), Some(range_end.to_vec()))
    }
}

fn end_after(end: &End, at: &[u8]) -> bool {
    end.as_ref().is_none_or(|e| e.as_slice() > at)
}

fn check_name(name: &str, empty: KvError) -> Result<(), KvError> {
    if name.is_empty() {
        return Err(empty);
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(KvError::AuthLimit(format!(
            "name longer than {MAX_NAME_BYTES} bytes"
        )));
    }
    Ok(())
}

fn check_hash(hash: &[u8]) -> Result<(), KvError> {
    if hash.len() > MAX_HASH_BYTES {
        return Err(KvError::AuthLimit(format!(
            "password hash longer than {MAX_HASH_BYTES} bytes"
        )));
    }
    Ok(())
}

impl AuthState {
    /// Whether authentication is on.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The auth revision (1 on a new store).
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// A user, if it exists.
    pub fn user(&self, name: &str) -> Option<&User> {
        self.users.get(name)
    }

    /// A role, if it exists.
    pub fn role(&self, name: &str) -> Option<&Role> {
        self.roles.get(name)
    }

    /// The user a simple token was issued to, if this replica knows it.
    pub fn token_user(&self, token: &str) -> Option<&str> {
        self.tokens.get(token).map(String::as_str)
    }

    /// Whether `user` exists and holds the root role.
    pub fn is_root(&self, user: &str) -> bool {
        self.users
            .get(user)
            .is_some_and(|u| u.roles.contains(ROOT_ROLE))
    }

    /// etcd's `IsAdminPermitted`: with authentication on, the request must
    /// come from an existing user holding the root role.
    pub fn check_admin(&self, info: &AuthInfo) -> Result<(), KvError> {
        if !self.enabled {
            return Ok(());
        }
        if info.user.is_empty() {
            return Err(KvError::UserEmpty);
        }
        match self.users.get(&info.user) {
            None => Err(KvError::UserNotFound),
            Some(u) if u.roles.contains(ROOT_ROLE) => Ok(()),
            Some(_) => Err(KvError::PermissionDenied),
        }
    }

    /// etcd's `isOpPermitted`: may `info` do `want` on `key` (with etcd's
    /// `range_end` rules)?
    pub fn check_keys(
        &self,
        info: &AuthInfo,
        key: &[u8],
        range_end: &[u8],
        want: PermKind,
    ) -> Result<(), KvError> {
        if !self.enabled {
            return Ok(());
        }
        if info.revision == 0 {
            return Err(KvError::UserEmpty);
        }
        if info.revision < self.revision {
            return Err(KvError::AuthOldRevision);
        }
        let Some(user) = self.users.get(&info.user) else {
            return Err(KvError::PermissionDenied);
        };
        if user.roles.contains(ROOT_ROLE) || self.covered(user, key, range_end, want) {
            Ok(())
        } else {
            Err(KvError::PermissionDenied)
        }
    }

    /// Whether the union of `user`'s permissions of kind `want` covers the
    /// request's keys (a single key: one permission holds it).
    fn covered(&self, user: &User, key: &[u8], range_end: &[u8], want: PermKind) -> bool {
        let mut perms: Vec<(Vec<u8>, End)> = user
            .roles
            .iter()
            .filter_map(|r| self.roles.get(r))
            .flat_map(|r| &r.perms)
            .filter(|p| p.kind.allows(want))
            .map(|p| interval(&p.key, &p.range_end))
            .collect();
        if range_end.is_empty() {
            return perms
                .iter()
                .any(|(b, e)| b.as_slice() <= key && end_after(e, key));
        }
        let (begin, end) = interval(key, range_end);
        // An empty range is covered by nothing, as in etcd's interval tree.
        if let Some(e) = &end {
            if e <= &begin {
                return false;
            }
        }
        perms.sort();
        // Walk the permissions in order of their first key, extending the
        // covered prefix of the request while they touch it.
        let mut covered_to: Vec<u8> = begin;
        for (b, e) in perms {
            if b > covered_to {
                break;
            }
            match e {
                None => return true,
                Some(e) if e > covered_to => covered_to = e,
                Some(_) => {}
            }
        }
        end.is_some_and(|e| covered_to >= e)
    }

    /// Applies an auth command from `info` (`None`: from the node itself,
    /// trusted), with `store_rev` the key-value revision (for a token).
    pub(crate) fn apply(
        &mut self,
        info: Option<&AuthInfo>,
        cmd: &AuthCommand,
        store_rev: i64,
    ) -> Result<AuthResponse, KvError> {
        if let Some(info) = info {
            self.authorize(info, cmd)?;
        }
        match cmd {
            AuthCommand::Enable => {
                if self.enabled {
                    return Ok(AuthResponse::Done);
                }
                let Some(root) = self.users.get(ROOT_USER) else {
                    return Err(KvError::RootUserNotExist);
                };
                if !root.roles.contains(ROOT_ROLE) {
                    return Err(KvError::RootRoleNotExist);
                }
                self.enabled = true;
                self.forget_tokens(|_| true);
                Ok(AuthResponse::Done)
            }
            AuthCommand::Disable => {
                if self.enabled {
                    self.enabled = false;
                    self.forget_tokens(|_| true);
                    self.bump();
                }
                Ok(AuthResponse::Done)
            }
            AuthCommand::Status => Ok(AuthResponse::Status {
                enabled: self.enabled,
                revision: self.revision,
            }),
            AuthCommand::Authenticate { name, token_prefix } => {
                if !self.enabled {
                    return Err(KvError::AuthNotEnabled);
                }
                if token_prefix.is_empty() || token_prefix.len() > MAX_TOKEN_PREFIX_BYTES {
                    return Err(KvError::AuthLimit("bad token prefix".into()));
                }
                match self.users.get(name) {
                    Some(u) if !u.no_password => {}
                    _ => return Err(KvError::AuthFailed),
                }
                let token = format!("{token_prefix}.{store_rev}");
                if self.tokens.insert(token.clone(), name.clone()).is_none() {
                    self.token_order.push_back(token.clone());
                }
                while self.token_order.len() > MAX_TOKENS {
                    let old = self.token_order.pop_front().expect("non-empty");
                    self.tokens.remove(&old);
                }
                Ok(AuthResponse::Token(token))
            }
            AuthCommand::UserAdd {
                name,
                password,
                no_password,
            } => {
                check_name(name, KvError::UserEmpty)?;
                check_hash(password)?;
                if self.users.contains_key(name) {
                    return Err(KvError::UserAlreadyExists);
                }
                if self.users.len() >= MAX_USERS {
                    return Err(KvError::AuthLimit(format!("more than {MAX_USERS} users")));
                }
                self.users.insert(
                    name.clone(),
                    User {
                        name: name.clone(),
                        password: if *no_password {
                            Vec::new()
                        } else {
                            password.clone()
                        },
                        roles: BTreeSet::new(),
                        no_password: *no_password,
                    },
                );
                self.bump();
                Ok(AuthResponse::Done)
            }
            AuthCommand::UserGet { name } => {
                let u = self.users.get(name).ok_or(KvError::UserNotFound)?;
                Ok(AuthResponse::User(u.roles.iter().cloned().collect()))
            }
            AuthCommand::UserList => Ok(AuthResponse::Users(self.users.keys().cloned().collect())),
            AuthCommand::UserDelete { name } => {
                if self.enabled && name == ROOT_USER {
                    return Err(KvError::InvalidAuthMgmt);
                }
                if self.users.remove(name).is_none() {
                    return Err(KvError::UserNotFound);
                }
                self.forget_tokens(|u| u == name);
                self.bump();
                Ok(AuthResponse::Done)
            }
            AuthCommand::UserChangePassword { name, password } => {
                check_hash(password)?;
                let u = self.users.get_mut(name).ok_or(KvError::UserNotFound)?;
                u.password = password.clone();
                u.no_password = false;
                self.forget_tokens(|u| u == name);
                self.bump();
                Ok(AuthResponse::Done)
            }
            AuthCommand::UserGrantRole { user, role } => {
                if !self.users.contains_key(user) {
                    return Err(KvError::UserNotFound);
                }
                if role != ROOT_ROLE && !self.roles.contains_key(role) {
                    return Err(KvError::RoleNotFound);
                }
                let u = self.users.get_mut(user).expect("checked above");
                if u.roles.contains(role) {
                    // etcd 3.4 ignores a grant the user already has.
                    return Ok(AuthResponse::Done);
                }
                if u.roles.len() >= MAX_ROLES_PER_USER {
                    return Err(KvError::AuthLimit(format!(
                        "more than {MAX_ROLES_PER_USER} roles for one user"
                    )));
                }
                u.roles.insert(role.clone());
                self.bump();
                Ok(AuthResponse::Done)
            }
            AuthCommand::UserRevokeRole { user, role } => {
                if self.enabled && user == ROOT_USER && role == ROOT_ROLE {
                    return Err(KvError::InvalidAuthMgmt);
                }
                let u = self.users.get_mut(user).ok_or(KvError::UserNotFound)?;
                if !u.roles.remove(role) {
                    return Err(KvError::RoleNotGranted);
                }
                self.bump();
                Ok(AuthResponse::Done)
            }
            AuthCommand::RoleAdd { name } => {
                check_name(name, KvError::RoleEmpty)?;
                if self.roles.contains_key(name) {
                    return Err(KvError::RoleAlreadyExists);
                }
                if self.roles.len() >= MAX_ROLES {
                    return Err(KvError::AuthLimit(format!("more than {MAX_ROLES} roles")));
                }
                self.roles.insert(
                    name.clone(),
                    Role {
                        name: name.clone(),
                        perms: Vec::new(),
                    },
                );
                self.bump();
                Ok(AuthResponse::Done)
            }
            AuthCommand::RoleGet { name } => {
                let r = self.roles.get(name).ok_or(KvError::RoleNotFound)?;
                Ok(AuthResponse::Role(r.perms.clone()))
            }
            AuthCommand::RoleList => Ok(AuthResponse::Roles(self.roles.keys().cloned().collect())),
            AuthCommand::RoleDelete { name } => {
                if self.enabled && name == ROOT_ROLE {
                    return Err(KvError::InvalidAuthMgmt);
                }
                if self.roles.remove(name).is_none() {
                    return Err(KvError::RoleNotFound);
                }
                for u in self.users.values_mut() {
                    u.roles.remove(name);
                }
                self.bump();
                Ok(AuthResponse::Done)
            }
            AuthCommand::RoleGrantPermission { role, perm } => {
                let r = self.roles.get_mut(role).ok_or(KvError::RoleNotFound)?;
                if let Some(p) = r
                    .perms
                    .iter_mut()
                    .find(|p| p.key == perm.key && p.range_end == perm.range_end)
                {
                    p.kind = perm.kind;
                } else {
                    if r.perms.len() >= MAX_PERMS_PER_ROLE {
                        return Err(KvError::AuthLimit(format!(
                            "more than {MAX_PERMS_PER_ROLE} permissions in one role"
                        )));
                    }
                    // Before the first permission whose key is not smaller.
                    let at = r.perms.partition_point(|p| p.key < perm.key);
                    r.perms.insert(at, perm.clone());
                }
                self.bump();
                Ok(AuthResponse::Done)
            }
            AuthCommand::RoleRevokePermission {
                role,
                key,
                range_end,
            } => {
                let r = self.roles.get_mut(role).ok_or(KvError::RoleNotFound)?;
                let Some(at) = r
                    .perms
                    .iter()
                    .position(|p| &p.key == key && &p.range_end == range_end)
                else {
                    return Err(KvError::PermissionNotGranted);
                };
                r.perms.remove(at);
                self.bump();
                Ok(AuthResponse::Done)
            }
        }
    }

    /// The check etcd's auth applier makes before an auth command.
    fn authorize(&self, info: &AuthInfo, cmd: &AuthCommand) -> Result<(), KvError> {
        match cmd {
            // A user may read itself, and the roles it holds.
            AuthCommand::UserGet { name } if *name == info.user => Ok(()),
            AuthCommand::UserGet { .. } => self.check_admin(info),
            AuthCommand::RoleGet { name }
                if self
                    .users
                    .get(&info.user)
                    .is_some_and(|u| u.roles.contains(name)) =>
            {
                Ok(())
            }
            AuthCommand::RoleGet { .. } => self.check_admin(info),
            c if c.needs_admin() => self.check_admin(info),
            _ => Ok(()),
        }
    }

    fn bump(&mut self) {
        self.revision += 1;
    }

    fn forget_tokens(&mut self, whose: impl Fn(&str) -> bool) {
        self.tokens.retain(|_, u| !whose(u));
        let tokens = &self.tokens;
        self.token_order.retain(|t| tokens.contains_key(t));
    }

    /// Takes over `old`'s tokens whose users exist here.
    pub(crate) fn keep_tokens_from(&mut self, old: &AuthState) {
        for t in &old.token_order {
            let user = &old.tokens[t];
            if self.users.contains_key(user)
                && self.tokens.insert(t.clone(), user.clone()).is_none()
            {
                self.token_order.push_back(t.clone());
            }
        }
    }

    /// The persisted part.
    pub fn image(&self) -> AuthImage {
        AuthImage {
            enabled: self.enabled,
            revision: self.revision,
            users: self.users.values().cloned().collect(),
            roles: self.roles.values().cloned().collect(),
        }
    }

    /// A state from its persisted part, checked: a bad image is
    /// [`KvError::Corrupt`].
    pub(crate) fn from_image(image: AuthImage) -> Result<AuthState, KvError> {
        let bad = |why: String| KvError::Corrupt(format!("auth state: {why}"));
        if image.revision == 0 {
            return Err(bad("auth revision 0".into()));
        }
        if image.users.len() > MAX_USERS || image.roles.len() > MAX_ROLES {
            return Err(bad("too many users or roles".into()));
        }
        let mut state = AuthState {
            enabled: image.enabled,
            revision: image.revision,
            ..AuthState::default()
        };
        for r in image.roles {
            if r.name.is_empty() || r.name.len() > MAX_NAME_BYTES {
                return Err(bad("bad role name".into()));
            }
            if r.perms.len() > MAX_PERMS_PER_ROLE {
                return Err(bad(format!("role {} has too many permissions", r.name)));
            }
            if !r.perms.windows(2).all(|w| w[0].key <= w[1].key) {
                return Err(bad(format!("role {}'s permissions out of order", r.name)));
            }
            if let Some(old) = state.roles.insert(r.name.clone(), r) {
                return Err(bad(format!("role {} twice", old.name)));
            }
        }
        for u in image.users {
            if u.name.is_empty() || u.name.len() > MAX_NAME_BYTES {
                return Err(bad("bad user name".into()));
            }
            if u.password.len() > MAX_HASH_BYTES || u.roles.len() > MAX_ROLES_PER_USER {
                return Err(bad(format!("user {} out of bounds", u.name)));
            }
            if let Some(missing) = u
                .roles
                .iter()
                .find(|r| *r != ROOT_ROLE && !state.roles.contains_key(*r))
            {
                return Err(bad(format!("user {} holds unknown role {missing}", u.name)));
            }
            if let Some(old) = state.users.insert(u.name.clone(), u) {
                return Err(bad(format!("user {} twice", old.name)));
            }
        }
        if state.enabled && !state.is_root(ROOT_USER) {
            return Err(bad(
                "enabled without a root user holding the root role".into()
            ));
        }
        Ok(state)
    }

    /// Feeds the persisted part into a hash (tokens are not state).
    pub(crate) fn hash_into(&self, h: &mut Fnv) {
        h.write(&[u8::from(self.enabled)]);
        h.write(&self.revision.to_le_bytes());
        let bytes = postcard::to_allocvec(&self.image()).expect("encoding to memory cannot fail");
        h.write(&bytes);
    }
}
