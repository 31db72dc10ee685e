//! The etcd v3 gRPC services over the node's actor.
//!
//! Every handler turns its request into a [`ClientOp`] (or a closure run
//! inside the actor for local state), waits for the reply with a deadline,
//! and answers with etcd's header, gRPC code and message. Requests are named
//! by sessions from a pool: a retry after "not leader" or a lost forward
//! reuses the same (client, seq), so a write applies at most once.

mod auth;
mod cluster;
pub mod election;
mod kv;
mod lease;
pub mod lock;
mod maintenance;
mod ranges;
pub use maintenance::ETCD_VERSION;
pub mod recipe;
mod watch;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use synod_kv::{AuthInfo, AuthState, PermKind};
use synod_node::{ClientError, ClientOp, ClientRequest, ClientResponse};
use synod_proto::etcdserverpb::ResponseHeader;
use tokio::sync::{mpsc, oneshot};
use tonic::Status;

use crate::convert::{client_status, NO_LEADER, TIMED_OUT};
use crate::inbox::{Input, Query};
use crate::shared::{GroupState, Shared};
use crate::wire::{Answer, Ask};

/// How long a request may take before "request timed out" (etcd: 5 s + election).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(7);
/// How long one attempt waits before retrying the same request.
const ATTEMPT: Duration = Duration::from_millis(1500);
/// Free sessions kept for reuse.
const POOL: usize = 1024;

#[derive(Clone, Copy)]
struct Session {
    client: u64,
    seq: u64,
}

struct Inner {
    inbox: mpsc::Sender<Input>,
    shared: Arc<Shared>,
    pool: Mutex<Vec<Session>>,
    next_client: AtomicU64,
    next_stream: AtomicU64,
    /// The low 48 bits of etcd's id generator: a millisecond clock at start
    /// (40 bits) above an 8-bit count.
    id_suffix: AtomicU64,
    /// Simple-token lifetimes and JWT keys.
    tokens: crate::tokens::Tokens,
}

/// The handle every service holds.
#[derive(Clone)]
pub struct Api {
    inner: Arc<Inner>,
    /// Who the calls made through this handle are from, when it acts for
    /// a client (the Lock and Election recipes run the KV and Watch
    /// handlers as the user who called them); `None`: each call's own
    /// token says.
    acting: Option<Arc<AuthInfo>>,
}

/// What a request says about who sent it.
#[derive(Clone, Debug, Default)]
pub struct Credentials {
    /// Its token, if any.
    pub token: Option<String>,
    /// Its verified client certificate's common name, if any.
    pub common_name: Option<String>,
}

impl Credentials {
    /// Those of `req`.
    pub fn of<T>(req: &tonic::Request<T>) -> Credentials {
        Credentials {
            token: token_of(req.metadata()),
            common_name: client_common_name(req),
        }
    }
}

/// The token a request carries: etcd's `token` metadata, or the
/// `authorization` its JSON gateway passes on.
fn token_of(md: &tonic::metadata::MetadataMap) -> Option<String> {
    md.get("token")
        .or_else(|| md.get("authorization"))
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// The verified client certificate's common name of a request, which etcd
/// takes as the user when no token is given (only with `--client-cert-auth`).
fn client_common_name<T>(req: &tonic::Request<T>) -> Option<String> {
    crate::tls::client_common_name(req)
}

/// etcd's id generator's starting suffix at `unix_ms`: the clock's low
/// 40 bits above an 8-bit count.
fn id_suffix_at(unix_ms: u64) -> u64 {
    (unix_ms & ((1 << 40) - 1)) << 8
}

/// An id of etcd's shape: member id's low 16 bits over the suffix's low 48,
/// made positive.
fn etcd_id(member: u64, suffix: u64) -> i64 {
    let id = ((member & 0xffff) << 48) | (suffix & ((1 << 48) - 1));
    (id & (u64::MAX >> 1)) as i64
}

impl Api {
    /// A handle over the actor's inbox.
    pub fn new(inbox: mpsc::Sender<Input>, shared: Arc<Shared>) -> Api {
        // Session ids must not collide with those of other members or of this
        // member's earlier lives: mix the member id with the start time.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let base = crate::ids::spread(shared.cfg.id ^ crate::ids::spread(nanos));
        Api {
            inner: Arc::new(Inner {
                inbox,
                pool: Mutex::new(Vec::new()),
                next_client: AtomicU64::new(base),
                next_stream: AtomicU64::new(1),
                id_suffix: AtomicU64::new(id_suffix_at(
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_millis() as u64),
                )),
                tokens: crate::tokens::Tokens::new(&shared.cfg.auth)
                    .expect("the auth settings were checked with the flags"),
                shared,
            }),
            acting: None,
        }
    }

    /// This handle acting for `info`: calls through it are that user's.
    pub fn acting_as(&self, info: AuthInfo) -> Api {
        Api {
            inner: self.inner.clone(),
            acting: Some(Arc::new(info)),
        }
    }

    /// The token provider.
    pub fn tokens(&self) -> &crate::tokens::Tokens {
        &self.inner.tokens
    }

    /// Whether authentication is on (as of the last applied state here).
    pub fn auth_enabled(&self) -> bool {
        self.inner.shared.auth_enabled.load(Ordering::Acquire)
    }

    /// Who sent `req` (etcd's `AuthInfoFromCtx`): with authentication on,
    /// the user its token names and the auth revision the token was
    /// checked at, else the client certificate's common name at the
    /// current auth revision, else no one; an unknown or expired token is
    /// `invalid auth token`. With authentication off, no one (tokens are
    /// not looked at).
    pub async fn who<T>(&self, req: &tonic::Request<T>) -> Result<AuthInfo, Status> {
        self.resolve(Credentials::of(req)).await
    }

    /// [`Api::who`] from a token and a certificate's common name.
    pub async fn resolve(&self, creds: Credentials) -> Result<AuthInfo, Status> {
        let Credentials { token, common_name } = creds;
        if let Some(a) = &self.acting {
            return Ok(a.as_ref().clone());
        }
        if !self.auth_enabled() {
            return Ok(AuthInfo::default());
        }
        let invalid = || Status::unauthenticated(crate::tokens::INVALID_TOKEN);
        let Some(token) = token else {
            return Ok(match common_name {
                Some(user) if !user.is_empty() => AuthInfo {
                    user,
                    revision: self.auth_view(|a| a.revision()).await?,
                },
                _ => AuthInfo::default(),
            });
        };
        if token.is_empty() || token.len() > crate::tokens::MAX_TOKEN_BYTES {
            return Err(invalid());
        }
        let tokens = self.tokens();
        if tokens.is_jwt() {
            return tokens.verify(&token).ok_or_else(invalid);
        }
        let t = token.clone();
        let found = self
            .auth_view(move |a| a.token_user(&t).map(|u| (u.to_string(), a.revision())))
            .await?;
        match found {
            Some((user, revision)) if tokens.touch(&token, Instant::now()) => {
                Ok(AuthInfo { user, revision })
            }
            _ => Err(invalid()),
        }
    }

    /// Runs `f` on the home group's auth state inside the actor.
    pub async fn auth_view<R: Send + 'static>(
        &self,
        f: impl FnOnce(&AuthState) -> R + Send + 'static,
    ) -> Result<R, Status> {
        self.query(move |tx| {
            Query::Auth(Box::new(move |a| {
                let _ = tx.send(f(a));
            }))
        })
        .await
    }

    /// etcd's `IsAdminPermitted` for `req`'s sender (Maintenance and
    /// membership calls): nothing to check with authentication off.
    pub async fn check_admin<T>(&self, req: &tonic::Request<T>) -> Result<(), Status> {
        if self.acting.is_none() && !self.auth_enabled() {
            return Ok(());
        }
        let info = self.who(req).await?;
        self.auth_view(move |a| a.check_admin(&info))
            .await?
            .map_err(|e| crate::convert::kv_status(&e))
    }

    /// Whether `info` may read the keys (a watch is checked so when it
    /// is created).
    pub async fn may_read(&self, info: AuthInfo, key: Vec<u8>, range_end: Vec<u8>) -> bool {
        if !self.auth_enabled() {
            return true;
        }
        self.auth_view(move |a| a.check_keys(&info, &key, &range_end, PermKind::Read))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Published node state.
    pub fn shared(&self) -> &Shared {
        &self.inner.shared
    }

    fn take_session(&self) -> Session {
        if let Some(s) = self.inner.pool.lock().expect("pool lock").pop() {
            return s;
        }
        loop {
            let c = self.inner.next_client.fetch_add(1, Ordering::Relaxed);
            let client = crate::ids::spread(c);
            if client != 0 {
                return Session { client, seq: 0 };
            }
        }
    }

    fn give_back(&self, s: Session) {
        let mut p = self.inner.pool.lock().expect("pool lock");
        if p.len() < POOL {
            p.push(s);
        }
    }

    /// A fresh id as etcd's member makes them for leases granted without
    /// one: the member id's low 16 bits, then the generator's 48 (the top
    /// bit cleared, so the id is positive).
    pub fn next_etcd_id(&self) -> i64 {
        let suffix = self.inner.id_suffix.fetch_add(1, Ordering::Relaxed) + 1;
        etcd_id(self.inner.shared.cfg.id, suffix)
    }

    /// A fresh stream id (for watch streams).
    pub fn next_stream(&self) -> u64 {
        self.inner.next_stream.fetch_add(1, Ordering::Relaxed)
    }

    /// A response header at `revision` from group `g` (its term).
    pub fn header_in(&self, g: &GroupState, revision: i64) -> ResponseHeader {
        let s = &self.inner.shared;
        ResponseHeader {
            cluster_id: s.cfg.cluster_id,
            member_id: s.cfg.id,
            revision,
            raft_term: g.term(),
        }
    }

    /// A response header at `revision` for what belongs to the whole
    /// cluster (leases, members, maintenance): the home group's.
    pub fn header(&self, revision: i64) -> ResponseHeader {
        self.header_in(&self.inner.shared.groups.home(), revision)
    }

    /// A header at the home group's current revision.
    pub fn header_now(&self) -> ResponseHeader {
        let home = self.inner.shared.groups.home();
        self.header_in(&home, home.revision())
    }

    /// A header at group `g`'s current revision.
    pub fn header_now_in(&self, g: &GroupState) -> ResponseHeader {
        self.header_in(g, g.revision())
    }

    /// Refuses with etcd's "no leader" when the request demands a leader
    /// and the home group knows none (cluster-wide requests, and watch
    /// streams, which may watch any group).
    pub fn check_leader<T>(&self, req: &tonic::Request<T>) -> Result<(), Status> {
        self.check_leader_in(req, &self.inner.shared.groups.home())
    }

    /// Refuses with etcd's "no leader" when the request demands a leader
    /// and group `g`, which serves it, knows none.
    pub fn check_leader_in<T>(
        &self,
        req: &tonic::Request<T>,
        g: &GroupState,
    ) -> Result<(), Status> {
        let wants = req
            .metadata()
            .get("hasleader")
            .is_some_and(|v| v.as_bytes() == b"true");
        if wants && g.leader() == 0 {
            return Err(Status::unavailable(NO_LEADER));
        }
        Ok(())
    }

    /// Runs a client operation to its final outcome, retrying through leader changes.
    pub async fn call(&self, op: ClientOp) -> Result<ClientResponse, Status> {
        let mut s = self.take_session();
        s.seq += 1;
        let write = matches!(op, ClientOp::Write(_));
        let m = &self.inner.shared.metrics;
        if write {
            m.proposals_pending.fetch_add(1, Ordering::Relaxed);
        }
        let r = self.call_with(s, op).await;
        if write {
            m.proposals_pending.fetch_sub(1, Ordering::Relaxed);
            // Failed as a proposal (no leader, no answer in time), not as
            // a request the state machine refused.
            if r.as_ref()
                .is_err_and(|e| e.code() == tonic::Code::Unavailable)
            {
                m.proposals_failed.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.give_back(s);
        r
    }

    async fn call_with(&self, s: Session, op: ClientOp) -> Result<ClientResponse, Status> {
        let shared = self.inner.shared.clone();
        let group = shared.groups.for_op(&op);
        let deadline = Instant::now() + REQUEST_TIMEOUT;
        let mut backoff = Duration::from_millis(10);
        let mut last_no_leader = false;
        // Whether an attempt may have been proposed: then "no leader" would
        // tell the client the write never happened, which we cannot know.
        let mut maybe_taken = false;
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Err(Status::unavailable(if last_no_leader && !maybe_taken {
                    NO_LEADER
                } else {
                    TIMED_OUT
                }));
            }
            let (tx, rx) = oneshot::channel();
            let req = ClientRequest {
                client: s.client,
                seq: s.seq,
                op: op.clone(),
            };
            if self
                .inner
                .inbox
                .send(Input::Call { req, tx })
                .await
                .is_err()
            {
                return Err(Status::unavailable("etcdserver: server stopped"));
            }
            let wait = ATTEMPT.min(deadline - now);
            match tokio::time::timeout(wait, rx).await {
                Ok(Ok(reply)) => match reply.result {
                    Ok(r) => return Ok(r),
                    Err(ClientError::NotLeader { leader }) => {
                        last_no_leader = leader == 0;
                    }
                    Err(ClientError::Busy) => {
                        last_no_leader = false;
                    }
                    Err(e) => return Err(client_status(&e)),
                },
                // The actor dropped the request (stopping, or the wait table was pruned).
                Ok(Err(_)) => maybe_taken = true,
                // No answer yet: ask again under the same name (applied at most once).
                Err(_) => {
                    maybe_taken = true;
                    last_no_leader = group.leader() == 0;
                    continue;
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_millis(200));
        }
    }

    /// Asks the leader a question, retrying through leader changes.
    pub async fn ask(&self, ask: Ask) -> Result<Answer, Status> {
        let deadline = Instant::now() + REQUEST_TIMEOUT;
        let mut backoff = Duration::from_millis(10);
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Err(Status::unavailable(TIMED_OUT));
            }
            let (tx, rx) = oneshot::channel();
            if self
                .inner
                .inbox
                .send(Input::Ask {
                    ask: ask.clone(),
                    tx,
                })
                .await
                .is_err()
            {
                return Err(Status::unavailable("etcdserver: server stopped"));
            }
            if let Ok(Ok(a)) = tokio::time::timeout(ATTEMPT.min(deadline - now), rx).await {
                let retry = matches!(&a, Answer::LeaseTtl(Err(ClientError::NotLeader { .. })));
                if !retry {
                    return Ok(a);
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_millis(200));
        }
    }

    /// Asks the actor a typed question and waits for its answer.
    pub async fn query<R: Send + 'static>(
        &self,
        make: impl FnOnce(oneshot::Sender<R>) -> Query,
    ) -> Result<R, Status> {
        let (tx, rx) = oneshot::channel();
        self.inner
            .inbox
            .send(Input::Query(make(tx)))
            .await
            .map_err(|_| Status::unavailable("etcdserver: server stopped"))?;
        tokio::time::timeout(REQUEST_TIMEOUT, rx)
            .await
            .map_err(|_| Status::unavailable(TIMED_OUT))?
            .map_err(|_| Status::unavailable("etcdserver: server stopped"))
    }
}

/// Every service, ready to be added to a tonic router.
pub fn router(api: Api, max_request_bytes: usize) -> tonic::service::Routes {
    use synod_proto::etcdserverpb::{
        cluster_server::ClusterServer, kv_server::KvServer, lease_server::LeaseServer,
        maintenance_server::MaintenanceServer, watch_server::WatchServer,
    };
    let dec = max_request_bytes + synod_proto::limits::GRPC_OVERHEAD_BYTES;
    let enc = synod_proto::limits::DEFAULT_MAX_ENCODING_MESSAGE_SIZE;
    let mut b = tonic::service::RoutesBuilder::default();
    b.add_service(
        KvServer::new(api.clone())
            .max_decoding_message_size(dec)
            .max_encoding_message_size(enc),
    );
    b.add_service(
        WatchServer::new(api.clone())
            .max_decoding_message_size(dec)
            .max_encoding_message_size(enc),
    );
    b.add_service(
        LeaseServer::new(api.clone())
            .max_decoding_message_size(dec)
            .max_encoding_message_size(enc),
    );
    b.add_service(
        ClusterServer::new(api.clone())
            .max_decoding_message_size(dec)
            .max_encoding_message_size(enc),
    );
    b.add_service(
        synod_proto::v3lockpb::lock_server::LockServer::new(api.clone())
            .max_decoding_message_size(dec)
            .max_encoding_message_size(enc),
    );
    b.add_service(
        synod_proto::v3electionpb::election_server::ElectionServer::new(api.clone())
            .max_decoding_message_size(dec)
            .max_encoding_message_size(enc),
    );
    b.add_service(
        synod_proto::etcdserverpb::auth_server::AuthServer::new(api.clone())
            .max_decoding_message_size(dec)
            .max_encoding_message_size(enc),
    );
    b.add_service(
        synod_proto::synodpb::ranges_server::RangesServer::new(api.clone())
            .max_decoding_message_size(dec)
            .max_encoding_message_size(enc),
    );
    b.add_service(
        MaintenanceServer::new(api)
            .max_decoding_message_size(dec)
            .max_encoding_message_size(enc),
    );
    b.routes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_take_etcds_shape() {
        let s = id_suffix_at(1_700_000_000_123);
        assert_eq!(s >> 8, 1_700_000_000_123 & ((1 << 40) - 1));
        let id = etcd_id(0xabcd_1234_8765_f00d, s + 1);
        assert_eq!(
            id >> 48,
            0x700d,
            "the member's low 16 bits, top bit cleared"
        );
        assert_eq!(id as u64 & 0xff, 1);
        assert!(etcd_id(u64::MAX, u64::MAX) > 0);
    }
}
