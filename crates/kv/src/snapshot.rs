//! Snapshot encoding and state hashes.
//!
//! A snapshot is `MAGIC | postcard(image) | fnv1a64(postcard bytes)`. The image
//! lists the stored writes in revision order and the leases in id order, so the
//! same state always gives the same bytes; the index and the lease-to-key sets
//! are rebuilt on restore. Restore checks the checksum, then every invariant
//! the store relies on, and answers [`KvError::Corrupt`] instead of panicking.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::error::KvError;
use crate::fnv::Fnv;
use crate::mvcc::{Mvcc, Record, Rev};
use crate::store::{KvConfig, KvStore, LeaseInfo, MAX_LEASE_TTL};
use crate::types::LeaseId;

const MAGIC: &[u8; 8] = b"SYNODKV1";

/// Revisions in a snapshot must stay below this.
const MAX_REVISION: i64 = 1 << 62;

#[derive(Serialize, Deserialize)]
struct LeaseImage {
    id: LeaseId,
    ttl: i64,
    remaining_ttl: i64,
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

impl KvStore {
    /// The whole state as bytes; equal states give equal bytes.
    pub fn snapshot(&self) -> Vec<u8> {
        let image = Image {
            rev: self.rev,
            compact_rev: self.compact_rev,
            next_lease_id: self.next_lease_id,
            leases: self
                .leases
                .values()
                .map(|l| LeaseImage {
                    id: l.id,
                    ttl: l.ttl,
                    remaining_ttl: l.remaining_ttl,
                })
                .collect(),
            records: self
                .mvcc
                .since(i64::MIN)
                .map(|(r, rec)| (*r, rec.clone()))
                .collect(),
        };
        let body = postcard::to_allocvec(&image).expect("encoding to memory cannot fail");
        let mut h = Fnv::new();
        h.write(&body);
        let mut out = Vec::with_capacity(MAGIC.len() + body.len() + 8);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&body);
        out.extend_from_slice(&h.finish().to_le_bytes());
        out
    }

    /// Rebuilds a store (with the default limits) from [`KvStore::snapshot`] bytes.
    pub fn restore(bytes: &[u8]) -> Result<KvStore, KvError> {
        Self::restore_with_config(bytes, KvConfig::default())
    }

    /// Rebuilds a store with the given limits from [`KvStore::snapshot`] bytes.
    pub fn restore_with_config(bytes: &[u8], config: KvConfig) -> Result<KvStore, KvError> {
        if bytes.len() < MAGIC.len() + 8 || &bytes[..MAGIC.len()] != MAGIC {
            return Err(corrupt("missing magic header"));
        }
        let (body, sum) = bytes[MAGIC.len()..].split_at(bytes.len() - MAGIC.len() - 8);
        let mut h = Fnv::new();
        h.write(body);
        if h.finish().to_le_bytes() != sum {
            return Err(corrupt("checksum mismatch"));
        }
        let (image, rest): (Image, _) =
            postcard::take_from_bytes(body).map_err(|e| corrupt(format!("undecodable: {e}")))?;
        if !rest.is_empty() {
            return Err(corrupt("trailing bytes"));
        }
        build(image, config)
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
        h.write(&self.mvcc.digest().to_le_bytes());
        h.write(&(self.mvcc.len() as u64).to_le_bytes());
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
        for (r, rec) in self.mvcc.since(i64::MIN) {
            if r.main > at {
                break;
            }
            h.write_i64(r.main);
            h.write_i64(r.sub);
            h.write(&[u8::from(rec.tombstone)]);
            h.write_kv(&rec.kv);
        }
        Ok((h.finish(), self.compact_rev))
    }
}

/// Checks an image against the store's invariants and builds the store.
fn build(image: Image, config: KvConfig) -> Result<KvStore, KvError> {
    // Far below i64::MAX, so that no later revision or version arithmetic overflows.
    if !(1..MAX_REVISION).contains(&image.rev)
        || image.compact_rev < 0
        || image.compact_rev > image.rev
    {
        return Err(corrupt("revision out of range"));
    }
    let mut leases = BTreeMap::new();
    for l in image.leases {
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
    let mut mvcc = Mvcc::default();
    for (rev, rec) in image.records {
        mvcc.insert(rev, rec);
    }
    let mut store = KvStore::with_config(config);
    store.mvcc = mvcc;
    store.rev = image.rev;
    store.compact_rev = image.compact_rev;
    store.leases = leases;
    store.next_lease_id = image.next_lease_id;
    Ok(store)
}
