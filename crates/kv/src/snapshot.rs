//! Snapshot encoding and state hashes.
//!
//! A snapshot is `MAGIC | postcard(image) | fnv1a64(postcard bytes)`. The image
//! lists the stored writes in revision order and the leases in id order, so the
//! same state always gives the same bytes; the index and the lease-to-key sets
//! are rebuilt on restore. Restore checks the checksum, then every invariant
//! the store relies on, and answers [`KvError::Corrupt`] instead of panicking.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::auth::{AuthImage, AuthState};
use crate::engine::{EngineError, MvccEngine, Record, Rev};
use crate::error::KvError;
use crate::fnv::Fnv;
use crate::mvcc::{span, Mvcc};
use crate::store::{storage, KvConfig, KvStore, LeaseInfo, MAX_LEASE_TTL};
use crate::types::LeaseId;

const MAGIC: &[u8; 8] = b"SYNODKV1";

/// The store's metadata beside an engine's data (see [`KvStore::meta_image`]).
const META_MAGIC: &[u8; 8] = b"SYNODKM1";

/// Revisions in a snapshot must stay below this.
const MAX_REVISION: i64 = 1 << 62;

#[derive(Serialize, Deserialize)]
struct LeaseImage {
    id: LeaseId,
    ttl: i64,
    remaining_ttl: i64,
}

/// Everything of the store but its writes.
#[derive(Serialize, Deserialize)]
struct Meta {
    rev: i64,
    compact_rev: i64,
    next_lease_id: i64,
    leases: Vec<LeaseImage>,
}

#[derive(Serialize, Deserialize)]
struct Image {
    rev: i64,
    compact_rev: i64,
    next_lease_id: i64,
    leases: Vec<LeaseImage>,
    records: Vec<(Rev, Record)>,
}

fn corrupt(why: impl Into<String>) -> KvError {
    KvError::Corrupt(why.into())
}

/// `magic | body | fnv1a64(body)`.
fn seal(magic: &[u8; 8], body: &[u8]) -> Vec<u8> {
    let mut h = Fnv::new();
    h.write(body);
    let mut out = Vec::with_capacity(magic.len() + body.len() + 8);
    out.extend_from_slice(magic);
    out.extend_from_slice(body);
    out.extend_from_slice(&h.finish().to_le_bytes());
    out
}

/// The body of [`seal`]ed bytes, if magic and checksum hold.
fn unseal<'a>(magic: &[u8; 8], bytes: &'a [u8]) -> Result<&'a [u8], KvError> {
    if bytes.len() < magic.len() + 8 || &bytes[..magic.len()] != magic {
        return Err(corrupt("missing magic header"));
    }
    let (body, sum) = bytes[magic.len()..].split_at(bytes.len() - magic.len() - 8);
    let mut h = Fnv::new();
    h.write(body);
    if h.finish().to_le_bytes() != sum {
        return Err(corrupt("checksum mismatch"));
    }
    Ok(body)
}

/// A whole state given as its parts, as another system's backup holds it
/// (etcd's: its key bucket's writes, its leases, its compaction, its
/// users and roles), for [`KvStore::from_parts`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StateParts {
    /// The store's revision.
    pub rev: i64,
    /// The revision compacted at (0: never).
    pub compact_rev: i64,
    /// Leases: id, granted TTL and remaining TTL at the last checkpoint (0: none).
    pub leases: Vec<(LeaseId, i64, i64)>,
    /// Every stored write, in revision order.
    pub records: Vec<(Rev, Record)>,
    /// Users, roles, the switch and the auth revision (the default: a
    /// store that never saw an auth change).
    pub auth: AuthImage,
}

impl KvStore {
    /// An in-memory store holding `parts`, checked as a snapshot is on
    /// restore (writes in order and each following from its key's previous
    /// one, every leased key's lease present, the auth state's users and
    /// roles consistent): bad parts are [`KvError::Corrupt`]. Lease ids
    /// granted later start from 1.
    pub fn from_parts(parts: StateParts, config: KvConfig) -> Result<KvStore, KvError> {
        let image = Image {
            rev: parts.rev,
            compact_rev: parts.compact_rev,
            next_lease_id: 1,
            leases: parts
                .leases
                .into_iter()
                .map(|(id, ttl, remaining_ttl)| LeaseImage {
                    id,
                    ttl,
                    remaining_ttl,
                })
                .collect(),
            records: parts.records,
        };
        let mut body = postcard::to_allocvec(&image).expect("encoding to memory cannot fail");
        body.extend_from_slice(&image_tail(&parts.auth));
        KvStore::restore_with_config(&seal(MAGIC, &body), config)
    }

    /// Rebuilds an in-memory store (with the default limits) from
    /// [`KvStore::snapshot`] bytes.
    pub fn restore(bytes: &[u8]) -> Result<KvStore, KvError> {
        Self::restore_with_config(bytes, KvConfig::default())
    }

    /// Rebuilds an in-memory store with the given limits from
    /// [`KvStore::snapshot`] bytes.
    pub fn restore_with_config(bytes: &[u8], config: KvConfig) -> Result<KvStore, KvError> {
        KvStore::restore_into(Mvcc::default(), bytes, config)
    }
}

impl<E: MvccEngine> KvStore<E> {
    /// The whole state as bytes; equal states give equal bytes, whatever the
    /// engine.
    pub fn snapshot(&self) -> Vec<u8> {
        // The bytes of an `Image`, written as the engine streams its records
        // (no copy of them in between): the fields in order, then the
        // records as a sequence (a varint count, then each one).
        let head = (
            self.rev,
            self.compact_rev,
            self.next_lease_id,
            self.lease_images(),
        );
        // A command in progress wrote past `rev`: the image is as of `rev`.
        let (pending, _) = self.unfinished();
        let n = usize::try_from(self.mvcc.len() - pending).expect("record count fits in memory");
        let rev = self.rev;
        let mut out = MAGIC.to_vec();
        out = postcard::to_extend(&head, out).expect("encoding to memory cannot fail");
        out = postcard::to_extend(&n, out).expect("encoding to memory cannot fail");
        let mut seen = 0usize;
        let mut buf = Some(out);
        self.mvcc
            .since(i64::MIN, &mut |r, rec| {
                if r.main > rev {
                    return false;
                }
                let b = buf.take().expect("buffer present");
                buf = Some(postcard::to_extend(&(r, rec), b).expect("encoding cannot fail"));
                seen += 1;
                true
            })
            .map_err(storage)
            .expect("snapshot of a failed store");
        assert_eq!(seen, n, "engine's count disagrees with its records");
        let mut out = buf.expect("buffer present");
        out.extend_from_slice(&auth_tail(&self.auth));
        let mut h = Fnv::new();
        h.write(&out[MAGIC.len()..]);
        out.extend_from_slice(&h.finish().to_le_bytes());
        out
    }

    /// The leases as an image holds them, in id order.
    fn lease_images(&self) -> Vec<LeaseImage> {
        self.leases
            .values()
            .map(|l| LeaseImage {
                id: l.id,
                ttl: l.ttl,
                remaining_ttl: l.remaining_ttl,
            })
            .collect()
    }

    /// The state cut in two at `at`: the images ([`KvStore::snapshot`]
    /// bytes) of the keys below `at` and of the keys from `at` on, each key
    /// with all of its history. Both halves keep the revision, the
    /// compaction revision and the auth state; the leases stay below (they
    /// belong to the range that holds the cluster's leases), so a key from
    /// `at` on that is attached to a lease refuses the split with
    /// [`KvError::SplitRefused`]. Deterministic, so every replica cuts alike.
    pub fn split_images(&self, at: &[u8]) -> Result<(Vec<u8>, Vec<u8>), KvError> {
        if self.partial.is_some() {
            return Err(KvError::SplitRefused(
                "a command is part way through".into(),
            ));
        }
        if let Some(l) = self
            .leases
            .values()
            .find(|l| l.keys.iter().any(|k| k.as_slice() >= at))
        {
            return Err(KvError::SplitRefused(format!(
                "lease {} holds keys on both sides of the split",
                l.id
            )));
        }
        let parts = self.parts()?;
        let (below, above): (Vec<_>, Vec<_>) = parts
            .records
            .into_iter()
            .partition(|(_, rec)| rec.kv.key.as_slice() < at);
        let leases = self.lease_images();
        let auth = auth_tail(&self.auth);
        let half = |records, leases| {
            let image = Image {
                rev: parts.rev,
                compact_rev: parts.compact_rev,
                next_lease_id: self.next_lease_id,
                leases,
                records,
            };
            let mut body = postcard::to_allocvec(&image).expect("encoding to memory cannot fail");
            body.extend_from_slice(&auth);
            seal(MAGIC, &body)
        };
        Ok((half(below, leases), half(above, Vec::new())))
    }

    /// The whole state as its parts (see [`KvStore::from_parts`]), as of
    /// the current revision (a command in progress left out).
    pub fn parts(&self) -> Result<StateParts, KvError> {
        let rev = self.rev;
        let mut records = Vec::new();
        self.mvcc
            .since(i64::MIN, &mut |r, rec| {
                if r.main > rev {
                    return false;
                }
                records.push((r, rec.clone()));
                true
            })
            .map_err(storage)?;
        Ok(StateParts {
            rev,
            compact_rev: self.compact_rev,
            leases: self
                .leases
                .values()
                .map(|l| (l.id, l.ttl, l.remaining_ttl))
                .collect(),
            records,
            auth: self.auth.image(),
        })
    }

    /// Replaces whatever `engine` holds with the state of
    /// [`KvStore::snapshot`] bytes, checked as [`KvStore::restore`] does.
    pub fn restore_into(engine: E, bytes: &[u8], config: KvConfig) -> Result<Self, KvError> {
        let mut store = KvStore::with_engine(Mvcc::default(), config).with_mvcc(engine);
        store.install(bytes)?;
        Ok(store)
    }

    /// Replaces the whole state with that of [`KvStore::snapshot`] bytes
    /// (checked first: bad bytes change nothing), in the same engine: a disk
    /// engine makes the switch atomic at its next commit.
    pub fn install(&mut self, bytes: &[u8]) -> Result<(), KvError> {
        if self.failed.is_some() {
            return Err(self.failure_error());
        }
        let body = unseal(MAGIC, bytes)?;
        let (image, rest): (Image, _) =
            postcard::take_from_bytes(body).map_err(|e| corrupt(format!("undecodable: {e}")))?;
        let mut auth = read_auth_tail(rest)?;
        let leases = check_image(&image)?;
        // Whatever was in progress is replaced with the rest.
        self.partial = None;
        let fill = || -> Result<(), EngineError> {
            self.mvcc.clear()?;
            for (rev, rec) in image.records {
                self.mvcc.insert(rev, rec)?;
            }
            Ok(())
        };
        if let Err(e) = fill() {
            return Err(self.fail(e));
        }
        self.rev = image.rev;
        self.compact_rev = image.compact_rev;
        self.leases = leases;
        self.next_lease_id = image.next_lease_id;
        // Tokens are this replica's, not state: those of users that still
        // exist stay valid.
        auth.keep_tokens_from(&self.auth);
        self.auth = auth;
        Ok(())
    }

    /// Commits the engine's writes with the applied log index, this store's
    /// metadata and the owner's `extra` bytes (see [`MvccEngine::commit`]).
    /// Refused once the store has failed.
    /// Never while a command is in progress: its half would become durable.
    pub fn commit(&mut self, applied: u64, extra: &[u8], durable: bool) -> Result<(), KvError> {
        assert!(
            self.partial.is_none(),
            "the store was committed with a command half applied"
        );
        if self.failed.is_some() {
            return Err(self.failure_error());
        }
        let meta = self.meta_image();
        match self.mvcc.commit(applied, &meta, extra, durable) {
            Ok(()) => Ok(()),
            Err(e) => Err(self.fail(e)),
        }
    }

    /// Everything of the store that is not in its engine (revisions, leases),
    /// as bytes for a disk engine to keep beside its data. Lease-to-key sets
    /// are not included: [`KvStore::open`] rebuilds them from the live keys.
    pub fn meta_image(&self) -> Vec<u8> {
        let meta = Meta {
            rev: self.rev,
            compact_rev: self.compact_rev,
            next_lease_id: self.next_lease_id,
            leases: self.lease_images(),
        };
        let mut body = postcard::to_allocvec(&meta).expect("encoding to memory cannot fail");
        body.extend_from_slice(&auth_tail(&self.auth));
        seal(META_MAGIC, &body)
    }

    /// A store over an engine that already holds data, with the metadata
    /// [`KvStore::meta_image`] gave when that data was written (`None`: a new
    /// store, and the engine must be empty). Costs a scan of the live keys
    /// when leases exist, to find the keys each lease holds.
    pub fn open(engine: E, meta: Option<&[u8]>, config: KvConfig) -> Result<Self, KvError> {
        let Some(bytes) = meta else {
            if !engine.is_empty() {
                return Err(corrupt("engine holds data but no metadata"));
            }
            return Ok(KvStore::with_engine(engine, config));
        };
        let body = unseal(META_MAGIC, bytes)?;
        let (meta, rest): (Meta, _) =
            postcard::take_from_bytes(body).map_err(|e| corrupt(format!("undecodable: {e}")))?;
        let auth = read_auth_tail(rest)?;
        check_revisions(meta.rev, meta.compact_rev)?;
        let mut leases = check_leases(meta.leases)?;
        if !leases.is_empty() {
            let mut unknown = None;
            engine
                .range(span(b"\0", b"\0"), meta.rev, &mut |kv| {
                    if kv.lease != 0 {
                        match leases.get_mut(&kv.lease) {
                            Some(l) => {
                                l.keys.insert(kv.key.clone());
                            }
                            None => {
                                unknown = Some(kv.lease);
                                return false;
                            }
                        }
                    }
                    true
                })
                .map_err(storage)?;
            if let Some(id) = unknown {
                return Err(corrupt(format!("key attached to unknown lease {id}")));
            }
        }
        // Through the empty store's constructor, for its checks of the config.
        let mut store = KvStore::with_engine(Mvcc::default(), config).with_mvcc(engine);
        store.rev = meta.rev;
        store.compact_rev = meta.compact_rev;
        store.leases = leases;
        store.next_lease_id = meta.next_lease_id;
        store.auth = auth;
        Ok(store)
    }

    /// A hash of the whole state, for comparing replicas: revisions, leases
    /// and the digest of every stored write, which the store keeps up to date
    /// as it writes and compacts, so this costs O(leases), not O(data).
    /// Equal states give equal hashes; different states differ but for a
    /// 64-bit collision.
    pub fn hash(&self) -> u64 {
        let mut h = Fnv::new();
        h.write_i64(self.rev);
        h.write_i64(self.compact_rev);
        h.write_i64(self.next_lease_id);
        for l in self.leases.values() {
            h.write_i64(l.id);
            h.write_i64(l.ttl);
            h.write_i64(l.remaining_ttl);
        }
        // A store that never saw an auth change hashes as before auth existed.
        if self.auth.image() != AuthState::default().image() {
            self.auth.hash_into(&mut h);
        }
        // A command in progress is not part of the state yet.
        let (pending, digest) = self.unfinished();
        h.write(&self.mvcc.digest().wrapping_sub(digest).to_le_bytes());
        h.write(&(self.mvcc.len() - pending).to_le_bytes());
        h.finish()
    }

    /// Like etcd's `HashKV`: a hash of every stored write with revision at or
    /// below `rev` (`<= 0`: the current revision), in revision order, and the
    /// compaction revision. Replicas with the same compaction revision agree.
    pub fn hash_kv(&self, rev: i64) -> Result<(u64, i64), KvError> {
        let at = if rev <= 0 { self.rev } else { rev };
        if at > self.rev {
            return Err(KvError::FutureRevision);
        }
        if at < self.compact_rev {
            return Err(KvError::Compacted);
        }
        let mut h = Fnv::new();
        self.mvcc
            .since(i64::MIN, &mut |r, rec| {
                if r.main > at {
                    return false;
                }
                h.write_i64(r.main);
                h.write_i64(r.sub);
                h.write(&[u8::from(rec.tombstone)]);
                h.write_kv(&rec.kv);
                true
            })
            .map_err(storage)?;
        Ok((h.finish(), self.compact_rev))
    }
}

/// The auth state's bytes after an image or the metadata: nothing for a
/// store that never saw an auth change (so such images keep the bytes they
/// had before auth existed), else the postcard of its persisted part.
fn auth_tail(auth: &AuthState) -> Vec<u8> {
    image_tail(&auth.image())
}

/// [`auth_tail`] of an auth state's persisted part.
fn image_tail(image: &AuthImage) -> Vec<u8> {
    if *image == AuthImage::default() {
        return Vec::new();
    }
    postcard::to_allocvec(image).expect("encoding to memory cannot fail")
}

/// The auth state from [`auth_tail`]'s bytes, checked.
fn read_auth_tail(rest: &[u8]) -> Result<AuthState, KvError> {
    if rest.is_empty() {
        return Ok(AuthState::default());
    }
    let (image, rest): (AuthImage, _) = postcard::take_from_bytes(rest)
        .map_err(|e| corrupt(format!("undecodable auth state: {e}")))?;
    if !rest.is_empty() {
        return Err(corrupt("trailing bytes"));
    }
    AuthState::from_image(image)
}

fn check_revisions(rev: i64, compact_rev: i64) -> Result<(), KvError> {
    // Far below i64::MAX, so that no later revision or version arithmetic overflows.
    if !(1..MAX_REVISION).contains(&rev) || compact_rev < 0 || compact_rev > rev {
        return Err(corrupt("revision out of range"));
    }
    Ok(())
}

/// The leases of an image, with no keys yet.
fn check_leases(images: Vec<LeaseImage>) -> Result<BTreeMap<LeaseId, LeaseInfo>, KvError> {
    let mut leases = BTreeMap::new();
    for l in images {
        if l.id == 0 || !(1..=MAX_LEASE_TTL).contains(&l.ttl) {
            return Err(corrupt(format!("bad lease {}", l.id)));
        }
        let info = LeaseInfo {
            id: l.id,
            ttl: l.ttl,
            remaining_ttl: l.remaining_ttl,
            keys: BTreeSet::new(),
        };
        if leases.insert(l.id, info).is_some() {
            return Err(corrupt(format!("lease {} twice", l.id)));
        }
    }
    Ok(leases)
}

/// Checks an image against the store's invariants; its leases, with their keys.
fn check_image(image: &Image) -> Result<BTreeMap<LeaseId, LeaseInfo>, KvError> {
    check_revisions(image.rev, image.compact_rev)?;
    let mut leases = check_leases(
        image
            .leases
            .iter()
            .map(|l| LeaseImage {
                id: l.id,
                ttl: l.ttl,
                remaining_ttl: l.remaining_ttl,
            })
            .collect(),
    )?;
    // The last write seen for each key, to check each write follows from it.
    let mut last: BTreeMap<Vec<u8>, &Record> = BTreeMap::new();
    let mut prev_rev: Option<Rev> = None;
    for (rev, rec) in &image.records {
        let kv = &rec.kv;
        if prev_rev.is_some_and(|p| p >= *rev)
            || rev.main < 1
            || rev.main > image.rev
            || rev.sub < 0
        {
            return Err(corrupt(format!("revision {rev:?} out of order or range")));
        }
        prev_rev = Some(*rev);
        if kv.key.is_empty() || kv.mod_revision != rev.main {
            return Err(corrupt(format!("bad record at {rev:?}")));
        }
        let before = last.get(&kv.key).copied();
        let ok = if rec.tombstone {
            kv.create_revision == 0
                && kv.version == 0
                && kv.lease == 0
                && kv.value.is_empty()
                && before.is_some_and(|b| !b.tombstone)
        } else {
            match before {
                Some(b) if !b.tombstone => {
                    kv.create_revision == b.kv.create_revision && kv.version == b.kv.version + 1
                }
                // A new generation, unless compaction kept only this write.
                Some(_) => kv.version == 1 && kv.create_revision == rev.main,
                None if rev.main > image.compact_rev => {
                    kv.version == 1 && kv.create_revision == rev.main
                }
                None => {
                    (1..=rev.main).contains(&kv.version)
                        && (1..=rev.main).contains(&kv.create_revision)
                }
            }
        };
        if !ok {
            return Err(corrupt(format!(
                "record at {rev:?} does not follow its key's history"
            )));
        }
        last.insert(kv.key.clone(), rec);
    }
    for rec in last.values().filter(|r| !r.tombstone && r.kv.lease != 0) {
        match leases.get_mut(&rec.kv.lease) {
            Some(l) => {
                l.keys.insert(rec.kv.key.clone());
            }
            None => {
                return Err(corrupt(format!(
                    "key attached to unknown lease {}",
                    rec.kv.lease
                )))
            }
        }
    }
    Ok(leases)
}

#[cfg(test)]
mod parts_tests {
    use super::*;
    use crate::types::{Command, DeleteRangeRequest, PutRequest};

    #[test]
    fn parts_give_back_the_same_state_and_bad_parts_are_refused() {
        let mut kv = KvStore::new();
        let (_, _) = kv.apply(&Command::LeaseGrant { id: 77, ttl: 60 });
        let mut leased = PutRequest::new("c", "3");
        leased.lease = 77;
        for cmd in [
            Command::Put(PutRequest::new("a", "1")),
            Command::Put(PutRequest::new("b", "2")),
            Command::Put(PutRequest::new("a", "11")),
            Command::Put(leased),
            Command::DeleteRange(DeleteRangeRequest::key("b")),
            Command::Compact { revision: 3 },
            Command::Put(PutRequest::new("d", "4")),
        ] {
            kv.apply(&cmd).0.unwrap();
        }
        let parts = kv.parts().unwrap();
        assert_eq!((parts.rev, parts.compact_rev), (kv.revision(), 3));
        assert_eq!(parts.leases, vec![(77, 60, 0)]);
        let back = KvStore::from_parts(parts.clone(), KvConfig::default()).unwrap();
        assert_eq!(back.parts().unwrap(), parts);
        assert_eq!(back.lease(77).unwrap().keys.len(), 1);
        // A leased key whose lease is missing.
        let mut bad = parts.clone();
        bad.leases.clear();
        assert!(KvStore::from_parts(bad, KvConfig::default()).is_err());
        // Writes out of order.
        let mut bad = parts;
        bad.records.reverse();
        assert!(KvStore::from_parts(bad, KvConfig::default()).is_err());
    }
}
