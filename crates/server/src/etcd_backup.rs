//! etcd's backup format, both ways: a synod state laid out as etcd 3.4 and
//! 3.5 lay out their backend, and an etcd backend read back into a synod
//! state. A snapshot (`etcdctl snapshot save`, `synod snapshot save`) is
//! such a file followed by its SHA-256, so etcd's own tools (`etcdctl
//! snapshot status`, `snapshot restore`) take synod's snapshots, and
//! `synod snapshot restore` takes etcd's.
//!
//! The file is bbolt (`synod-bolt`) with etcd's buckets:
//! * `key`: every stored write under its revision, 17 bytes (main revision
//!   as 8 big-endian bytes, `_`, sub revision likewise), with a trailing
//!   `t` for a delete; the value is an `mvccpb.KeyValue` (a delete's holds
//!   only the key). Compaction has left, for each key, its last write at or
//!   below the compacted revision (unless a delete) and all later ones:
//!   synod keeps exactly the same.
//! * `meta`: `consistent_index` (8 big-endian bytes: the applied Raft index
//!   of the writer; a restore sets its own), and once compacted
//!   `finishedCompactRev` and `scheduledCompactRev` (17-byte revisions).
//! * `lease`: each lease under its id (8 big-endian bytes) as an
//!   `leasepb.Lease` (ID 1, TTL 2, RemainingTTL 3).
//! * `members`: each member under its id in hex, as etcd's JSON; etcd's
//!   restore drops them for the new cluster's, as synod's does.
//! * `cluster` (`clusterVersion`), `auth` (`authRevision`), and the empty
//!   `alarm`, `authUsers`, `authRoles`, `members_removed`: as a fresh etcd
//!   3.4 writes them.
//!
//! The store's revision is not stored: like etcd, a reader takes the last
//! write's revision, or the compacted one when that is later.

use std::collections::BTreeMap;

use prost::Message;
use synod_bolt::{Bucket, Entry};
use synod_kv::{KeyValue, Record, Rev, StateParts};
use synod_proto::mvccpb;

/// etcd's bucket names.
const KEY: &[u8] = b"key";
const META: &[u8] = b"meta";
const LEASE: &[u8] = b"lease";
const MEMBERS: &[u8] = b"members";
const CLUSTER: &[u8] = b"cluster";
const AUTH: &[u8] = b"auth";
const EMPTY_BUCKETS: [&[u8]; 4] = [b"alarm", b"authUsers", b"authRoles", b"members_removed"];
/// The cluster version written: one etcd 3.4 and 3.5 both start from.
const CLUSTER_VERSION: &str = "3.4.0";

/// etcd's `leasepb.Lease`.
#[derive(Clone, PartialEq, prost::Message)]
struct LeaseMsg {
    #[prost(int64, tag = "1")]
    id: i64,
    #[prost(int64, tag = "2")]
    ttl: i64,
    #[prost(int64, tag = "3")]
    remaining_ttl: i64,
}

/// Why a backup could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The bbolt layer.
    #[error(transparent)]
    Bolt(#[from] synod_bolt::BoltError),
    /// A bbolt file, but not an etcd backend synod can take.
    #[error("not an etcd v3 backend: {0}")]
    NotEtcd(String),
}

fn not_etcd(what: impl Into<String>) -> BackupError {
    BackupError::NotEtcd(what.into())
}

/// A member as etcd's `members` bucket holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EtcdMember {
    /// The member id.
    pub id: u64,
    /// Its name.
    pub name: String,
    /// Peer URLs.
    pub peer_urls: Vec<String>,
    /// Client URLs.
    pub client_urls: Vec<String>,
    /// A learner.
    pub learner: bool,
}

/// etcd's 17-byte revision key (18 with the delete mark).
fn rev_key(rev: Rev, tombstone: bool) -> Vec<u8> {
    let mut k = Vec::with_capacity(18);
    k.extend_from_slice(&(rev.main as u64).to_be_bytes());
    k.push(b'_');
    k.extend_from_slice(&(rev.sub as u64).to_be_bytes());
    if tombstone {
        k.push(b't');
    }
    k
}

/// A revision key back: revision and whether it marks a delete.
fn parse_rev_key(k: &[u8]) -> Option<(Rev, bool)> {
    let tombstone = match k.len() {
        17 => false,
        18 if k[17] == b't' => true,
        _ => return None,
    };
    if k[8] != b'_' {
        return None;
    }
    let main = i64::try_from(u64::from_be_bytes(k[..8].try_into().ok()?)).ok()?;
    let sub = i64::try_from(u64::from_be_bytes(k[9..17].try_into().ok()?)).ok()?;
    Some((Rev { main, sub }, tombstone))
}

/// A member's value in the `members` bucket: etcd's JSON (Go's field
/// order; `isLearner` only when set).
fn member_json(m: &EtcdMember) -> String {
    let s = |v: &str| serde_json::to_string(v).expect("a string encodes");
    let list = |v: &[String]| serde_json::to_string(v).expect("strings encode");
    let learner = if m.learner { ",\"isLearner\":true" } else { "" };
    format!(
        "{{\"id\":{},\"peerURLs\":{}{learner},\"name\":{},\"clientURLs\":{}}}",
        m.id,
        list(&m.peer_urls),
        s(&m.name),
        list(&m.client_urls)
    )
}

/// The state as an etcd backend: a bbolt file etcd 3.4 and 3.5 open.
pub fn export(
    parts: &StateParts,
    members: &[EtcdMember],
    consistent_index: u64,
) -> Result<Vec<u8>, BackupError> {
    let mut root = Bucket::default();
    let key = root.bucket_mut(KEY);
    for (rev, rec) in &parts.records {
        let kv = if rec.tombstone {
            mvccpb::KeyValue {
                key: rec.kv.key.clone(),
                ..mvccpb::KeyValue::default()
            }
        } else {
            mvccpb::KeyValue {
                key: rec.kv.key.clone(),
                create_revision: rec.kv.create_revision,
                mod_revision: rec.kv.mod_revision,
                version: rec.kv.version,
                value: rec.kv.value.clone(),
                lease: rec.kv.lease,
            }
        };
        key.entries.insert(
            rev_key(*rev, rec.tombstone),
            Entry::Value(kv.encode_to_vec()),
        );
    }
    let meta = root.bucket_mut(META);
    meta.put("consistent_index", consistent_index.to_be_bytes());
    if parts.compact_rev > 0 {
        let at = rev_key(
            Rev {
                main: parts.compact_rev,
                sub: 0,
            },
            false,
        );
        meta.put("finishedCompactRev", at.clone());
        meta.put("scheduledCompactRev", at);
    }
    let lease = root.bucket_mut(LEASE);
    for &(id, ttl, remaining_ttl) in &parts.leases {
        let msg = LeaseMsg {
            id,
            ttl,
            remaining_ttl,
        };
        lease.put((id as u64).to_be_bytes(), msg.encode_to_vec());
    }
    let mb = root.bucket_mut(MEMBERS);
    for m in members {
        mb.put(format!("{:x}", m.id), member_json(m));
    }
    root.bucket_mut(CLUSTER)
        .put("clusterVersion", CLUSTER_VERSION);
    root.bucket_mut(AUTH)
        .put("authRevision", 1u64.to_be_bytes());
    for name in EMPTY_BUCKETS {
        root.bucket_mut(name);
    }
    Ok(synod_bolt::write(&root, synod_bolt::PAGE_SIZE, 2)?)
}

/// What [`import`] read: the state, and what of the backend synod does
/// not carry over.
#[derive(Clone, Debug)]
pub struct Imported {
    /// The state.
    pub parts: StateParts,
    /// Notes for the operator (users and roles left behind, …).
    pub notes: Vec<String>,
}

/// An etcd backend (3.4 or 3.5; the snapshot's trailing hash, if any, is
/// ignored here) as a synod state. The compaction etcd had scheduled is
/// carried out as etcd would on its next start.
pub fn import(file: &[u8]) -> Result<Imported, BackupError> {
    let db = synod_bolt::read(file)?;
    let root = &db.root;
    let key = root
        .bucket(KEY)
        .ok_or_else(|| not_etcd("no `key` bucket"))?;
    let meta = root.bucket(META);
    let compact_at = |name: &[u8]| -> Result<i64, BackupError> {
        match meta.and_then(|m| m.value(name)) {
            None => Ok(0),
            Some(v) => parse_rev_key(v)
                .filter(|(r, t)| !t && r.main >= 0)
                .map(|(r, _)| r.main)
                .ok_or_else(|| not_etcd(format!("bad {}", String::from_utf8_lossy(name)))),
        }
    };
    let compact_rev = compact_at(b"finishedCompactRev")?.max(compact_at(b"scheduledCompactRev")?);
    let mut records = Vec::with_capacity(key.entries.len());
    for (k, e) in &key.entries {
        let Entry::Value(v) = e else {
            return Err(not_etcd("a bucket inside the `key` bucket"));
        };
        let (rev, tombstone) = parse_rev_key(k)
            .ok_or_else(|| not_etcd(format!("key bucket entry {k:02x?} is not a revision")))?;
        let kv = mvccpb::KeyValue::decode(v.as_slice())
            .map_err(|e| not_etcd(format!("revision {}.{}: {e}", rev.main, rev.sub)))?;
        let kv = if tombstone {
            KeyValue {
                key: kv.key,
                mod_revision: rev.main,
                ..KeyValue::default()
            }
        } else {
            KeyValue {
                key: kv.key,
                create_revision: kv.create_revision,
                mod_revision: kv.mod_revision,
                version: kv.version,
                value: kv.value,
                lease: kv.lease,
            }
        };
        records.push((rev, Record { kv, tombstone }));
    }
    let records = compacted(records, compact_rev);
    let last = records.last().map_or(0, |(r, _)| r.main);
    let mut leases = Vec::new();
    if let Some(lb) = root.bucket(LEASE) {
        for (k, e) in &lb.entries {
            let Entry::Value(v) = e else {
                return Err(not_etcd("a bucket inside the `lease` bucket"));
            };
            let l = LeaseMsg::decode(v.as_slice())
                .map_err(|e| not_etcd(format!("lease {k:02x?}: {e}")))?;
            leases.push((l.id, l.ttl, l.remaining_ttl));
        }
    }
    let mut notes = Vec::new();
    let auth = root.bucket(AUTH);
    if auth.and_then(|a| a.value(b"authEnabled")) == Some(&[1][..]) {
        notes.push("authentication was enabled in etcd; synod has none, so it is off".into());
    }
    let count = |name: &[u8]| root.bucket(name).map_or(0, |b| b.entries.len());
    let (users, roles) = (count(b"authUsers"), count(b"authRoles"));
    if users + roles > 0 {
        notes.push(format!(
            "{users} users and {roles} roles were not carried over (synod has no authentication)"
        ));
    }
    if count(b"alarm") > 0 {
        notes.push("etcd's alarms were not carried over".into());
    }
    Ok(Imported {
        parts: StateParts {
            rev: last.max(compact_rev).max(1),
            compact_rev,
            leases,
            records,
        },
        notes,
    })
}

/// `records` (in revision order) as a compaction at `at` leaves them: for
/// each key, its last write at or below `at` unless that is a delete, and
/// every later write. Idempotent, so a finished compaction changes nothing.
fn compacted(records: Vec<(Rev, Record)>, at: i64) -> Vec<(Rev, Record)> {
    if at <= 0 {
        return records;
    }
    // For each key, the position of its last write at or below `at`.
    let mut last: BTreeMap<&[u8], usize> = BTreeMap::new();
    for (i, (rev, rec)) in records.iter().enumerate() {
        if rev.main <= at {
            last.insert(&rec.kv.key, i);
        }
    }
    let keep: Vec<bool> = records
        .iter()
        .enumerate()
        .map(|(i, (rev, rec))| {
            rev.main > at || (last.get(rec.kv.key.as_slice()) == Some(&i) && !rec.tombstone)
        })
        .collect();
    records
        .into_iter()
        .zip(keep)
        .filter_map(|(r, k)| k.then_some(r))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use synod_kv::{Command, DeleteRangeRequest, KvConfig, KvStore, PutRequest};

    fn state() -> KvStore {
        let mut kv = KvStore::new();
        kv.apply(&Command::LeaseGrant {
            id: 0x12c8,
            ttl: 600,
        })
        .0
        .unwrap();
        let mut leased = PutRequest::new("c", "4");
        leased.lease = 0x12c8;
        for cmd in [
            Command::Put(PutRequest::new("a", "1")),
            Command::Put(PutRequest::new("b", "2")),
            Command::Put(PutRequest::new("a", "3")),
            Command::Put(leased),
            Command::DeleteRange(DeleteRangeRequest::key("b")),
            Command::Compact { revision: 3 },
            Command::Put(PutRequest::new("d", "5")),
        ] {
            kv.apply(&cmd).0.unwrap();
        }
        kv
    }

    #[test]
    fn a_state_goes_to_etcds_layout_and_back() {
        let kv = state();
        let member = EtcdMember {
            id: 0x6678_8015_7b88_12c8,
            name: "e".into(),
            peer_urls: vec!["http://127.0.0.1:42380".into()],
            client_urls: vec!["http://127.0.0.1:42379".into()],
            learner: false,
        };
        let file = export(&kv.parts().unwrap(), &[member], 12).unwrap();
        let db = synod_bolt::read(&file).unwrap();
        assert!(db.problems().is_empty());
        // The same records etcd 3.4.23 wrote for the same commands
        // (crates/bolt/tests/data/etcd-3.4.23.db), but for the lease id.
        let keys = db.root.bucket(KEY).unwrap();
        let bytes: Vec<String> = keys
            .entries
            .iter()
            .map(|(k, v)| {
                let Entry::Value(v) = v else { panic!() };
                let hex = |b: &[u8]| b.iter().map(|c| format!("{c:02x}")).collect::<String>();
                format!("{}={}", hex(k), hex(v))
            })
            .collect();
        assert_eq!(
            bytes,
            [
                "00000000000000025f0000000000000000=0a01611002180220012a0131",
                "00000000000000035f0000000000000000=0a01621003180320012a0132",
                "00000000000000045f0000000000000000=0a01611002180420022a0133",
                "00000000000000055f0000000000000000=0a01631005180520012a013430c825",
                "00000000000000065f000000000000000074=0a0162",
                "00000000000000075f0000000000000000=0a01641007180720012a0135",
            ]
        );
        assert_eq!(
            db.root.bucket(MEMBERS).unwrap().value(b"667880157b8812c8"),
            Some(&br#"{"id":7383792418829112008,"peerURLs":["http://127.0.0.1:42380"],"name":"e","clientURLs":["http://127.0.0.1:42379"]}"#[..])
        );
        let back = import(&file).unwrap();
        assert!(back.notes.is_empty());
        let again = KvStore::from_parts(back.parts, KvConfig::default()).unwrap();
        assert_eq!(again.hash(), {
            // Lease ids granted after a restore start from 1 on both sides.
            let parts = kv.parts().unwrap();
            KvStore::from_parts(parts, KvConfig::default())
                .unwrap()
                .hash()
        });
    }

    #[test]
    fn etcds_own_snapshot_imports() {
        let file = include_bytes!("../../bolt/tests/data/etcd-3.4.23.db");
        let got = import(file).unwrap();
        assert_eq!((got.parts.rev, got.parts.compact_rev), (7, 3));
        assert_eq!(got.parts.records.len(), 6);
        assert_eq!(got.parts.leases, vec![(0x12c8_a250_427e_ea08, 600, 0)]);
        let kv = KvStore::from_parts(got.parts, KvConfig::default()).unwrap();
        let all = synod_kv::RangeRequest {
            key: vec![0],
            range_end: vec![0],
            ..synod_kv::RangeRequest::default()
        };
        let r = kv.range(&all).unwrap();
        let live: Vec<(&[u8], &[u8], i64)> = r
            .kvs
            .iter()
            .map(|kv| (kv.key.as_slice(), kv.value.as_slice(), kv.mod_revision))
            .collect();
        assert_eq!(
            live,
            [(&b"a"[..], &b"3"[..], 4), (b"c", b"4", 5), (b"d", b"5", 7)]
        );
    }

    #[test]
    fn a_scheduled_compaction_is_carried_out() {
        let mut parts = state().parts().unwrap();
        parts.compact_rev = 0;
        let file = export(&parts, &[], 1).unwrap();
        let mut db = synod_bolt::read(&file).unwrap();
        let meta = db.root.bucket_mut(META);
        meta.put(
            "scheduledCompactRev",
            rev_key(Rev { main: 5, sub: 0 }, false),
        );
        let file = synod_bolt::write(&db.root, 4096, 2).unwrap();
        let got = import(&file).unwrap();
        assert_eq!(got.parts.compact_rev, 5);
        // a@2 goes (a@4 is its last write at or below 5); b@3 stays (b was
        // deleted only at 6).
        let revs: Vec<i64> = got.parts.records.iter().map(|(r, _)| r.main).collect();
        assert_eq!(revs, [3, 4, 5, 6, 7]);
        KvStore::from_parts(got.parts, KvConfig::default()).unwrap();
    }
}
