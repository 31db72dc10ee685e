//! The member registry of a group: who belongs to it (id, name, peer and
//! client URLs, learner or voter), replicated through the log and kept in
//! the snapshot image, so a member that catches up by snapshot knows everyone.
//!
//! Every change rides in a Raft configuration-change entry, with the member's
//! attributes in the entry's context (as etcd does). The registry's set of
//! members always mirrors Raft's configuration: applying an entry first
//! follows the configuration Raft computes from it (an entry Raft refuses
//! changes nothing here either), then takes the attributes from the context.
//! Changes that leave Raft's configuration as it is (a peer-URL update, a
//! member publishing its name and client URLs, the initial members' URLs)
//! are conf changes that re-add a member in the role it already has.
//!
//! Requests are checked on the leader against the applied registry, with
//! etcd's rules and messages ([`MemberError`]). Only one configuration
//! change can be pending in Raft, so the registry a request was checked
//! against is the one its entry applies to.

use std::collections::BTreeMap;

use crate::routing::RangeDesc;
use serde::{Deserialize, Serialize};
use synod_raft::{ConfChange, ConfChangeSingle, ConfChangeTransition, ConfState, NodeId};

/// Most ids remembered as removed (the oldest are forgotten first).
const MAX_REMOVED: usize = 1024;
/// etcd 3.4 allows one learner at a time.
pub const MAX_LEARNERS: usize = 1;
/// Most peer or client URLs of one member, and most bytes in one URL or name.
pub const MAX_URLS: usize = 16;
/// Most bytes of one URL or name.
pub const MAX_URL_BYTES: usize = 512;
/// A learner is in sync when its log reaches this share of the leader's (etcd's `readyPercent`).
const READY_PERCENT: u64 = 90;

/// One member as the cluster knows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Member id (= Raft node id).
    pub id: NodeId,
    /// Its name; empty until the member has started and published it.
    pub name: String,
    /// Where its peers reach it.
    pub peer_urls: Vec<String>,
    /// Where clients reach it; empty until published.
    pub client_urls: Vec<String>,
    /// A learner: receives the log, does not vote.
    pub is_learner: bool,
}

impl Member {
    /// Started, in etcd's sense: it has published its name.
    pub fn is_started(&self) -> bool {
        !self.name.is_empty()
    }
}

/// A membership request (etcd's Cluster service).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MemberOp {
    /// Add a member reachable at `peer_urls`; its id is chosen by the leader.
    Add {
        /// Its peer URLs.
        peer_urls: Vec<String>,
        /// Add it as a learner.
        learner: bool,
    },
    /// Remove a member.
    Remove {
        /// The member.
        id: NodeId,
    },
    /// Change a member's peer URLs.
    Update {
        /// The member.
        id: NodeId,
        /// Its new peer URLs.
        peer_urls: Vec<String>,
    },
    /// Make a learner a voter.
    Promote {
        /// The learner.
        id: NodeId,
    },
    /// A member announces its name and client URLs once started.
    Publish {
        /// The member.
        id: NodeId,
        /// Its name.
        name: String,
        /// Its client URLs.
        client_urls: Vec<String>,
    },
}

/// A refused membership request, with etcd's messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum MemberError {
    /// Another member already uses one of the peer URLs.
    #[error("etcdserver: Peer URLs already exists")]
    PeerUrlExists,
    /// No such member.
    #[error("etcdserver: member not found")]
    NotFound,
    /// Promote of a member that is not a learner.
    #[error("etcdserver: can only promote a learner member")]
    NotLearner,
    /// Promote of a learner that has not caught up with the leader.
    #[error("etcdserver: can only promote a learner member which is in sync with leader")]
    LearnerNotReady,
    /// The change would leave fewer started voters than a quorum.
    #[error("etcdserver: re-configuration failed due to not enough started members")]
    NotEnoughStarted,
    /// A learner already exists.
    #[error("etcdserver: too many learner members in cluster")]
    TooManyLearners,
    /// Missing or oversized URLs.
    #[error("etcdserver: given member URLs are invalid")]
    BadUrls,
}

/// The attributes a configuration-change entry carries (postcard in its context).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Context {
    /// A new member's peer URLs.
    Add { id: NodeId, peer_urls: Vec<String> },
    /// New peer URLs.
    Update { id: NodeId, peer_urls: Vec<String> },
    /// A started member's name and client URLs.
    Publish {
        id: NodeId,
        name: String,
        client_urls: Vec<String>,
    },
    /// The initial members' names and peer URLs (from the first leader's configuration).
    Seed(Vec<Member>),
}

impl Context {
    pub(crate) fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).expect("postcard encoding into a Vec cannot fail")
    }
}

/// The registry: the group's members and the ids removed from it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registry {
    members: BTreeMap<NodeId, Member>,
    /// Removed ids, oldest first.
    removed: Vec<NodeId>,
}

/// What the leader needs to know besides the registry to check a request.
pub(crate) struct LeaderView<'a> {
    pub conf: &'a ConfState,
    /// Raft's (match) of a member, and of the leader itself.
    pub matched: &'a dyn Fn(NodeId) -> Option<u64>,
    pub leader: NodeId,
    /// The index the proposal will get.
    pub next_index: u64,
    pub term: u64,
}

/// A checked request: the change to propose, its context, and the member it concerns.
pub(crate) struct Planned {
    pub cc: ConfChange,
    pub context: Option<Context>,
    pub id: NodeId,
}

fn single(c: ConfChangeSingle) -> ConfChange {
    ConfChange {
        changes: vec![c],
        transition: ConfChangeTransition::Auto,
    }
}

fn urls_ok(urls: &[String]) -> bool {
    !urls.is_empty()
        && urls.len() <= MAX_URLS
        && urls
            .iter()
            .all(|u| !u.is_empty() && u.len() <= MAX_URL_BYTES)
}

/// A member id for a member added at `index` in `term` with `peer_urls`:
/// deterministic, never 0, below 2^62 (the storage's bound on ids).
pub fn derive_member_id(peer_urls: &[String], index: u64, term: u64, attempt: u64) -> NodeId {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |b: u8| {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    };
    for u in peer_urls {
        u.bytes().for_each(&mut eat);
        eat(0xff);
    }
    for x in [index, term, attempt] {
        x.to_le_bytes().into_iter().for_each(&mut eat);
    }
    let id = crate::splitmix(h) & ((1 << 62) - 1);
    id.max(1)
}

impl Registry {
    /// Every member, by id.
    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.members.values()
    }

    /// One member.
    pub fn get(&self, id: NodeId) -> Option<&Member> {
        self.members.get(&id)
    }

    /// Whether `id` was a member and has been removed.
    pub fn is_removed(&self, id: NodeId) -> bool {
        self.removed.contains(&id)
    }

    /// A hash of the whole registry, for comparing replicas.
    pub fn hash(&self) -> u64 {
        let bytes = postcard::to_allocvec(self).expect("postcard encoding into a Vec cannot fail");
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        h
    }

    /// Whether nothing is known (a member that has not caught up yet).
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Whether the state `op` asks for (about member `id`) holds now.
    pub(crate) fn holds(&self, op: &MemberOp, id: NodeId) -> bool {
        let m = self.members.get(&id);
        match op {
            MemberOp::Add { .. } => m.is_some() || self.is_removed(id),
            MemberOp::Remove { .. } => m.is_none(),
            MemberOp::Update { peer_urls, .. } => m.is_some_and(|m| &m.peer_urls == peer_urls),
            MemberOp::Promote { .. } => m.is_some_and(|m| !m.is_learner),
            MemberOp::Publish {
                name, client_urls, ..
            } => m.is_some_and(|m| &m.name == name && &m.client_urls == client_urls),
        }
    }

    /// Members whose peer URLs are not known yet (the initial members
    /// before the first leader's seed is applied).
    pub(crate) fn unseeded(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.members
            .values()
            .filter(|m| m.peer_urls.is_empty())
            .map(|m| m.id)
    }

    fn url_in_use(&self, urls: &[String], except: NodeId) -> bool {
        self.members
            .values()
            .filter(|m| m.id != except)
            .any(|m| m.peer_urls.iter().any(|u| urls.contains(u)))
    }

    /// etcd's quorum-of-started-members rule: `voters` started voters out
    /// of `total` after the change must still make a quorum.
    fn started_voters(&self, except: Option<NodeId>) -> (usize, usize) {
        let voting = self
            .members
            .values()
            .filter(|m| !m.is_learner && Some(m.id) != except);
        let (mut total, mut started) = (0, 0);
        for m in voting {
            total += 1;
            started += usize::from(m.is_started());
        }
        (total, started)
    }

    /// Checks `op` on the leader and plans its configuration change.
    pub(crate) fn plan(&self, op: &MemberOp, v: &LeaderView<'_>) -> Result<Planned, MemberError> {
        // A change that keeps a member's role: re-add it as what it is.
        let keep = |id: NodeId| -> Result<ConfChange, MemberError> {
            if v.conf.voters.contains(&id) {
                Ok(single(ConfChangeSingle::AddVoter(id)))
            } else if v.conf.learners.contains(&id) {
                Ok(single(ConfChangeSingle::AddLearner(id)))
            } else {
                Err(MemberError::NotFound)
            }
        };
        match op {
            MemberOp::Add { peer_urls, learner } => {
                if !urls_ok(peer_urls) {
                    return Err(MemberError::BadUrls);
                }
                if self.url_in_use(peer_urls, 0) {
                    return Err(MemberError::PeerUrlExists);
                }
                if *learner {
                    let learners = self.members.values().filter(|m| m.is_learner).count();
                    if learners >= MAX_LEARNERS {
                        return Err(MemberError::TooManyLearners);
                    }
                } else {
                    let (total, started) = self.started_voters(None);
                    let total = total + 1;
                    // Adding a second member to a one-member cluster is allowed (etcd).
                    if !(started == 1 && total == 2) && started < total / 2 + 1 {
                        return Err(MemberError::NotEnoughStarted);
                    }
                }
                let mut attempt = 0;
                let id = loop {
                    let id = derive_member_id(peer_urls, v.next_index, v.term, attempt);
                    if !self.members.contains_key(&id) && !self.is_removed(id) {
                        break id;
                    }
                    attempt += 1;
                };
                let c = if *learner {
                    ConfChangeSingle::AddLearner(id)
                } else {
                    ConfChangeSingle::AddVoter(id)
                };
                Ok(Planned {
                    cc: single(c),
                    context: Some(Context::Add {
                        id,
                        peer_urls: peer_urls.clone(),
                    }),
                    id,
                })
            }
            MemberOp::Remove { id } => {
                let m = self.members.get(id).ok_or(MemberError::NotFound)?;
                if !m.is_learner {
                    let (total, started) = self.started_voters(Some(*id));
                    if started < total / 2 + 1 {
                        return Err(MemberError::NotEnoughStarted);
                    }
                }
                Ok(Planned {
                    cc: single(ConfChangeSingle::Remove(*id)),
                    context: None,
                    id: *id,
                })
            }
            MemberOp::Update { id, peer_urls } => {
                if !self.members.contains_key(id) {
                    return Err(MemberError::NotFound);
                }
                if !urls_ok(peer_urls) {
                    return Err(MemberError::BadUrls);
                }
                if self.url_in_use(peer_urls, *id) {
                    return Err(MemberError::PeerUrlExists);
                }
                Ok(Planned {
                    cc: keep(*id)?,
                    context: Some(Context::Update {
                        id: *id,
                        peer_urls: peer_urls.clone(),
                    }),
                    id: *id,
                })
            }
            MemberOp::Promote { id } => {
                let m = self.members.get(id).ok_or(MemberError::NotFound)?;
                if !m.is_learner {
                    return Err(MemberError::NotLearner);
                }
                let learner = (v.matched)(*id).unwrap_or(0);
                let leader = (v.matched)(v.leader).unwrap_or(0);
                if u128::from(learner) * 100 < u128::from(leader) * u128::from(READY_PERCENT) {
                    return Err(MemberError::LearnerNotReady);
                }
                // The learner counts toward the new quorum, and as started.
                let (voters, started) = self.started_voters(None);
                let total = voters + 1;
                if started + 1 < total / 2 + 1 {
                    return Err(MemberError::NotEnoughStarted);
                }
                Ok(Planned {
                    cc: single(ConfChangeSingle::AddVoter(*id)),
                    context: None,
                    id: *id,
                })
            }
            MemberOp::Publish {
                id,
                name,
                client_urls,
            } => {
                if !self.members.contains_key(id) {
                    return Err(MemberError::NotFound);
                }
                if name.is_empty()
                    || name.len() > MAX_URL_BYTES
                    || client_urls.len() > MAX_URLS
                    || client_urls.iter().any(|u| u.len() > MAX_URL_BYTES)
                {
                    return Err(MemberError::BadUrls);
                }
                Ok(Planned {
                    cc: keep(*id)?,
                    context: Some(Context::Publish {
                        id: *id,
                        name: name.clone(),
                        client_urls: client_urls.clone(),
                    }),
                    id: *id,
                })
            }
        }
    }

    /// Follows Raft's new configuration `conf`, then takes the attributes
    /// from the entry's context (undecodable contexts are ignored alike on
    /// every member). Returns whether anything changed.
    pub(crate) fn apply(&mut self, conf: &ConfState, context: &[u8]) -> bool {
        let before = self.clone();
        let all = conf.members();
        let gone: Vec<NodeId> = self
            .members
            .keys()
            .copied()
            .filter(|id| !all.contains(id))
            .collect();
        for id in gone {
            self.members.remove(&id);
            self.removed.push(id);
            if self.removed.len() > MAX_REMOVED {
                self.removed.remove(0);
            }
        }
        for id in all {
            let m = self.members.entry(id).or_insert_with(|| Member {
                id,
                name: String::new(),
                peer_urls: Vec::new(),
                client_urls: Vec::new(),
                is_learner: false,
            });
            m.is_learner = !conf.is_voter(id);
        }
        let ctx: Option<Context> = if context.is_empty() {
            None
        } else {
            postcard::from_bytes(context).ok()
        };
        match ctx {
            Some(Context::Add { id, peer_urls }) | Some(Context::Update { id, peer_urls }) => {
                if let Some(m) = self.members.get_mut(&id) {
                    m.peer_urls = peer_urls;
                }
            }
            Some(Context::Publish {
                id,
                name,
                client_urls,
            }) => {
                if let Some(m) = self.members.get_mut(&id) {
                    m.name = name;
                    m.client_urls = client_urls;
                }
            }
            Some(Context::Seed(seed)) => {
                for s in seed {
                    if let Some(m) = self.members.get_mut(&s.id) {
                        if m.peer_urls.is_empty() {
                            m.peer_urls = s.peer_urls;
                        }
                    }
                }
            }
            None => {}
        }
        *self != before
    }
}

/// A state-machine image with the registry beside it (see [`encode_image`]).
const IMAGE_MAGIC: &[u8; 4] = b"SYMR";

/// The snapshot image of a group: the registry, then the state machine's own image.
pub(crate) fn encode_image(
    registry: &Registry,
    desc: Option<&RangeDesc>,
    reserved: i64,
    sm: &[u8],
) -> Vec<u8> {
    let reg = encode_registry(registry, desc, reserved);
    let mut out = Vec::with_capacity(12 + reg.len() + sm.len());
    out.extend_from_slice(IMAGE_MAGIC);
    out.extend_from_slice(&(reg.len() as u64).to_le_bytes());
    out.extend_from_slice(&reg);
    out.extend_from_slice(sm);
    out
}

/// Marks the range descriptor after the registry's bytes.
const DESC_TAG: &[u8; 4] = b"RNG1";
/// Marks the revision oracle's reservation after the descriptor.
const RESERVED_TAG: &[u8; 4] = b"RSV1";

/// The registry, the group's range descriptor and the highest revision
/// the cluster's revision oracle reserved in it (0: none; only the home
/// group's oracle reserves) — kept beside a disk engine's data, and at the
/// head of a group's image.
pub(crate) fn encode_registry(
    registry: &Registry,
    desc: Option<&RangeDesc>,
    reserved: i64,
) -> Vec<u8> {
    let mut out =
        postcard::to_allocvec(registry).expect("postcard encoding into a Vec cannot fail");
    if let Some(d) = desc {
        out.extend_from_slice(DESC_TAG);
        out = postcard::to_extend(d, out).expect("postcard encoding into a Vec cannot fail");
        if reserved != 0 {
            out.extend_from_slice(RESERVED_TAG);
            out = postcard::to_extend(&reserved, out)
                .expect("postcard encoding into a Vec cannot fail");
        }
    }
    out
}

/// What [`decode_registry`] reads.
pub(crate) type Beside = (Registry, Option<RangeDesc>, i64);

/// Reads [`encode_registry`]'s output; bytes written before ranges had
/// descriptors hold the registry alone, and before the oracle no
/// reservation.
pub(crate) fn decode_registry(data: &[u8]) -> Result<Beside, String> {
    let (registry, rest) =
        postcard::take_from_bytes(data).map_err(|e| format!("member registry: {e}"))?;
    if rest.is_empty() {
        return Ok((registry, None, 0));
    }
    let Some(d) = rest.strip_prefix(DESC_TAG) else {
        return Err("member registry: trailing bytes".into());
    };
    let (desc, rest): (RangeDesc, _) =
        postcard::take_from_bytes(d).map_err(|e| format!("range descriptor: {e}"))?;
    if rest.is_empty() {
        return Ok((registry, Some(desc), 0));
    }
    let Some(r) = rest.strip_prefix(RESERVED_TAG) else {
        return Err("range descriptor: trailing bytes".into());
    };
    let (reserved, rest): (i64, _) =
        postcard::take_from_bytes(r).map_err(|e| format!("reserved revisions: {e}"))?;
    if !rest.is_empty() || reserved <= 0 {
        return Err("reserved revisions: trailing bytes or not positive".into());
    }
    Ok((registry, Some(desc), reserved))
}

/// Splits [`encode_image`]'s output; an image without the registry (an
/// older one) has an empty registry, no descriptor and no reservation.
pub(crate) fn decode_image(data: &[u8]) -> Result<(Beside, &[u8]), String> {
    let Some(rest) = data.strip_prefix(IMAGE_MAGIC) else {
        return Ok(((Registry::default(), None, 0), data));
    };
    if rest.len() < 8 {
        return Err("truncated member registry".into());
    }
    let mut len = [0u8; 8];
    len.copy_from_slice(&rest[..8]);
    let len = u64::from_le_bytes(len);
    let rest = &rest[8..];
    if len > rest.len() as u64 {
        return Err("truncated member registry".into());
    }
    let (reg, sm) = rest.split_at(len as usize);
    Ok((decode_registry(reg)?, sm))
}
