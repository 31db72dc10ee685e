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
//! * `auth`: `authRevision` (8 big-endian bytes) and, once authentication
//!   is on, `authEnabled` (one byte, 1; etcd writes 0 on a disable).
//! * `authUsers`: each user under its name as an `authpb.User` (name,
//!   bcrypt hash, roles in order, and the options etcd always writes,
//!   `no_password`); `authRoles`: each role under its name as an
//!   `authpb.Role` (name, permissions ordered by key, each its type — READ
//!   0, WRITE 1, READWRITE 2 — key and range end).
//! * `cluster` (`clusterVersion`), and the empty `alarm` and
//!   `members_removed`: as a fresh etcd 3.4 writes them.
//!
//! The store's revision is not stored: like etcd, a reader takes the last
//! write's revision, or the compacted one when that is later.

use std::collections::BTreeMap;

use prost::Message;
use synod_bolt::{Bucket, Entry};
use synod_kv::{AuthImage, KeyValue, PermKind, Permission, Record, Rev, Role, StateParts, User};
use synod_proto::{authpb, mvccpb};

/// etcd's bucket names.
const KEY: &[u8] = b"key";
const META: &[u8] = b"meta";
const LEASE: &[u8] = b"lease";
const MEMBERS: &[u8] = b"members";
const CLUSTER: &[u8] = b"cluster";
const AUTH: &[u8] = b"auth";
const AUTH_USERS: &[u8] = b"authUsers";
const AUTH_ROLES: &[u8] = b"authRoles";
const EMPTY_BUCKETS: [&[u8]; 2] = [b"alarm", b"members_removed"];
/// Keys of the `auth` bucket.
const AUTH_ENABLED: &[u8] = b"authEnabled";
const AUTH_REVISION: &[u8] = b"authRevision";
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

/// A user as etcd's `authUsers` bucket holds it.
fn user_msg(u: &User) -> authpb::User {
    authpb::User {
        name: u.name.as_bytes().to_vec(),
        password: u.password.clone(),
        roles: u.roles.iter().cloned().collect(),
        options: Some(authpb::UserAddOptions {
            no_password: u.no_password,
        }),
    }
}

/// A role as etcd's `authRoles` bucket holds it.
fn role_msg(r: &Role) -> authpb::Role {
    let perm_type = |k: PermKind| match k {
        PermKind::Read => authpb::permission::Type::Read,
        PermKind::Write => authpb::permission::Type::Write,
        PermKind::ReadWrite => authpb::permission::Type::Readwrite,
    };
    authpb::Role {
        name: r.name.as_bytes().to_vec(),
        key_permission: r
            .perms
            .iter()
            .map(|p| authpb::Permission {
                perm_type: perm_type(p.kind) as i32,
                key: p.key.clone(),
                range_end: p.range_end.clone(),
            })
            .collect(),
    }
}

/// etcd's `auth`, `authUsers` and `authRoles` buckets for `auth`.
fn export_auth(root: &mut Bucket, auth: &AuthImage) {
    let a = root.bucket_mut(AUTH);
    a.put(AUTH_REVISION, auth.revision.to_be_bytes());
    if auth.enabled {
        a.put(AUTH_ENABLED, [1u8]);
    }
    let users = root.bucket_mut(AUTH_USERS);
    for u in &auth.users {
        users.put(u.name.as_bytes(), user_msg(u).encode_to_vec());
    }
    let roles = root.bucket_mut(AUTH_ROLES);
    for r in &auth.roles {
        roles.put(r.name.as_bytes(), role_msg(r).encode_to_vec());
    }
}

/// A bucket's key and value pairs.
type Pairs<'a> = Vec<(&'a [u8], &'a [u8])>;

/// The key and value pairs of `root`'s bucket `name` (none if it is
/// missing); a bucket inside is refused.
fn bucket_values<'a>(root: &'a Bucket, name: &[u8]) -> Result<Pairs<'a>, BackupError> {
    let Some(b) = root.bucket(name) else {
        return Ok(Vec::new());
    };
    b.entries
        .iter()
        .map(|(k, e)| match e {
            Entry::Value(v) => Ok((k.as_slice(), v.as_slice())),
            Entry::Bucket(_) => Err(not_etcd(format!(
                "a bucket inside the `{}` bucket",
                String::from_utf8_lossy(name)
            ))),
        })
        .collect()
}

/// The auth state etcd's buckets hold (none: a store that never saw an
/// auth change), and notes on what was changed to take it.
fn import_auth(root: &Bucket) -> Result<(AuthImage, Vec<String>), BackupError> {
    let mut notes = Vec::new();
    let mut image = AuthImage::default();
    if let Some(a) = root.bucket(AUTH) {
        image.enabled = a.value(AUTH_ENABLED) == Some(&[1][..]);
        if let Some(v) = a.value(AUTH_REVISION) {
            let bytes: [u8; 8] = v
                .try_into()
                .map_err(|_| not_etcd(format!("authRevision of {} bytes", v.len())))?;
            // etcd starts a store whose revision is 0 at 1.
            image.revision = u64::from_be_bytes(bytes).max(1);
        }
    }
    let values = |name: &[u8]| bucket_values(root, name);
    let text = |what: &str, b: Vec<u8>| {
        String::from_utf8(b).map_err(|_| not_etcd(format!("a {what} name that is not UTF-8")))
    };
    for (k, v) in values(AUTH_ROLES)? {
        let r = authpb::Role::decode(v)
            .map_err(|e| not_etcd(format!("role {}: {e}", String::from_utf8_lossy(k))))?;
        let mut perms = Vec::with_capacity(r.key_permission.len());
        for p in r.key_permission {
            let kind = match authpb::permission::Type::try_from(p.perm_type) {
                Ok(authpb::permission::Type::Read) => PermKind::Read,
                Ok(authpb::permission::Type::Write) => PermKind::Write,
                Ok(authpb::permission::Type::Readwrite) => PermKind::ReadWrite,
                Err(_) => return Err(not_etcd(format!("permission type {}", p.perm_type))),
            };
            perms.push(Permission {
                kind,
                key: p.key,
                range_end: p.range_end,
            });
        }
        // etcd keeps them ordered by key; a stable sort keeps its order.
        perms.sort_by(|a, b| a.key.cmp(&b.key));
        image.roles.push(Role {
            name: text("role", r.name)?,
            perms,
        });
    }
    let known: std::collections::BTreeSet<&str> =
        image.roles.iter().map(|r| r.name.as_str()).collect();
    for (k, v) in values(AUTH_USERS)? {
        let u = authpb::User::decode(v)
            .map_err(|e| not_etcd(format!("user {}: {e}", String::from_utf8_lossy(k))))?;
        let name = text("user", u.name)?;
        let mut roles = std::collections::BTreeSet::new();
        for r in u.roles {
            // The root role need not exist to be granted; a role that is
            // gone grants nothing.
            if r == synod_kv::ROOT_ROLE || known.contains(r.as_str()) {
                roles.insert(r);
            } else {
                notes.push(format!("user {name}'s role {r} does not exist; left out"));
            }
        }
        image.users.push(User {
            name,
            password: u.password,
            roles,
            no_password: u.options.is_some_and(|o| o.no_password),
        });
    }
    Ok((image, notes))
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
    export_auth(&mut root, &parts.auth);
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
    let (auth, mut notes) = import_auth(root)?;
    let count = |name: &[u8]| root.bucket(name).map_or(0, |b| b.entries.len());
    if count(b"alarm") > 0 {
        notes.push("etcd's alarms were not carried over".into());
    }
    Ok(Imported {
        parts: StateParts {
            rev: last.max(compact_rev).max(1),
            compact_rev,
            leases,
            records,
            auth,
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
    fn users_roles_and_the_switch_go_to_etcds_buckets_and_back() {
        use synod_kv::AuthCommand as A;
        let mut kv = state();
        let perm = |kind, key: &str, end: &str| Permission {
            kind,
            key: key.into(),
            range_end: end.into(),
        };
        let hash = |s: &str| s.as_bytes().to_vec();
        for cmd in [
            A::UserAdd {
                name: "root".into(),
                password: hash("$2a$10$root"),
                no_password: false,
            },
            A::RoleAdd {
                name: "root".into(),
            },
            A::UserGrantRole {
                user: "root".into(),
                role: "root".into(),
            },
            A::UserAdd {
                name: "alice".into(),
                password: hash("$2a$10$alice"),
                no_password: false,
            },
            A::UserAdd {
                name: "cn".into(),
                password: Vec::new(),
                no_password: true,
            },
            A::RoleAdd { name: "r".into() },
            A::RoleGrantPermission {
                role: "r".into(),
                perm: perm(PermKind::ReadWrite, "b", "c"),
            },
            A::RoleGrantPermission {
                role: "r".into(),
                perm: perm(PermKind::Read, "a", ""),
            },
            A::RoleGrantPermission {
                role: "r".into(),
                perm: perm(PermKind::Write, "z", "\0"),
            },
            A::UserGrantRole {
                user: "alice".into(),
                role: "r".into(),
            },
            A::Enable,
        ] {
            kv.apply(&Command::Auth(cmd)).0.unwrap();
        }
        let parts = kv.parts().unwrap();
        assert!(parts.auth.enabled);
        let file = export(&parts, &[], 1).unwrap();
        let db = synod_bolt::read(&file).unwrap();
        let auth = db.root.bucket(AUTH).unwrap();
        assert_eq!(auth.value(AUTH_ENABLED), Some(&[1u8][..]));
        assert_eq!(
            auth.value(AUTH_REVISION),
            Some(&parts.auth.revision.to_be_bytes()[..])
        );
        // authpb.User: name 1, password 2, roles 3, options 4 (always
        // written, as etcd does).
        let alice = db.root.bucket(AUTH_USERS).unwrap().value(b"alice").unwrap();
        assert_eq!(alice, b"\x0a\x05alice\x12\x0c$2a$10$alice\x1a\x01r\x22\x00");
        let cn = db.root.bucket(AUTH_USERS).unwrap().value(b"cn").unwrap();
        assert_eq!(cn, b"\x0a\x02cn\x22\x02\x08\x01");
        // authpb.Role: name 1, permissions 2 by key (type 1, key 2, end 3).
        let r = db.root.bucket(AUTH_ROLES).unwrap().value(b"r").unwrap();
        assert_eq!(
            r,
            b"\x0a\x01r\x12\x03\x12\x01a\x12\x08\x08\x02\x12\x01b\x1a\x01c\x12\x08\x08\x01\x12\x01z\x1a\x01\x00"
        );
        let back = import(&file).unwrap();
        assert!(back.notes.is_empty(), "{:?}", back.notes);
        assert_eq!(back.parts.auth, parts.auth);
        let again = KvStore::from_parts(back.parts, KvConfig::default()).unwrap();
        assert_eq!(again.auth().image(), kv.auth().image());
        assert!(again.auth().enabled() && again.auth().is_root("root"));
    }

    #[test]
    fn a_backup_without_auth_changes_imports_as_pristine() {
        let file = export(&state().parts().unwrap(), &[], 1).unwrap();
        let db = synod_bolt::read(&file).unwrap();
        assert_eq!(db.root.bucket(AUTH).unwrap().value(AUTH_ENABLED), None);
        assert!(db.root.bucket(AUTH_USERS).unwrap().entries.is_empty());
        assert_eq!(import(&file).unwrap().parts.auth, AuthImage::default());
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
