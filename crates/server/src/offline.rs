//! Operator commands that work on files, with no server running:
//! `synod snapshot restore` (a new member's data dir from a saved snapshot),
//! `synod snapshot status` (what a snapshot file holds) and `synod inspect`
//! (on-disk sizes and store statistics of a data dir, safe on a live node:
//! it only reads).
//!
//! A saved snapshot (`synod snapshot save`, or `etcdctl snapshot save`
//! against synod or etcd) is an etcd backend, a bbolt file
//! (`etcd_backup.rs`), followed by the SHA-256 of what precedes it, as etcd
//! saves them; synod's own former image (padded to 512-byte blocks, then
//! its SHA-256) is still read. Restoring writes, for one member of the new cluster, a data dir whose
//! Raft log starts with that image as a snapshot at index 1, term 1, with the
//! new cluster's members as voters — every member restored from the same file
//! with the same `--initial-cluster` starts from the same state. Its first
//! boot installs the image into its store.

use std::fs;
use std::path::{Path, PathBuf};

use clap::Args;
use synod_kv::RangeRequest;
use synod_node::{Persist, StateMachine};
use synod_raft::{ConfState, HardState, Snapshot, SnapshotMeta};

use crate::config::RawConfig;
use crate::disk::DiskError;
use crate::server::SHARD;

/// Largest snapshot file `restore` and `status` read (they hold it in memory).
pub const MAX_SNAPSHOT_FILE_BYTES: u64 = 8 << 30;

/// Sessions a restored state machine keeps (the server's default).
const MAX_SESSIONS: usize = 10_000;

/// Why an offline command failed.
#[derive(Debug, thiserror::Error)]
pub enum OfflineError {
    /// The snapshot file is not one synod can restore.
    #[error("snapshot {path}: {what}")]
    BadSnapshot {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// The flags describe no usable cluster.
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
    /// The target data dir is in use.
    #[error("data-dir {0} exists and is not empty; restore only creates new ones")]
    DataDirExists(PathBuf),
    /// Reading or writing a file failed.
    #[error("{path}: {err}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        err: std::io::Error,
    },
    /// The new data dir could not be written.
    #[error(transparent)]
    Disk(#[from] DiskError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> OfflineError + '_ {
    move |err| OfflineError::Io {
        path: path.to_path_buf(),
        err,
    }
}

/// `synod snapshot restore`: flags follow `etcdctl snapshot restore`.
#[derive(Args, Debug, Clone)]
pub struct RestoreArgs {
    /// The snapshot file (from `synod snapshot save` or `etcdctl snapshot save` against synod).
    pub file: PathBuf,
    /// This member's name (must appear in --initial-cluster).
    #[arg(long, default_value = "default")]
    pub name: String,
    /// The data dir to create (default: NAME.synod).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Every member of the new cluster: NAME=PEER_URL,…
    #[arg(long, default_value = "default=http://127.0.0.1:2380")]
    pub initial_cluster: String,
    /// Token of the new cluster (part of its member and cluster ids).
    #[arg(long, default_value = "synod-cluster")]
    pub initial_cluster_token: String,
    /// This member's peer URL.
    #[arg(long, default_value = "http://127.0.0.1:2380")]
    pub initial_advertise_peer_urls: String,
    /// Do not verify the file's SHA-256 trailer.
    #[arg(long)]
    pub skip_hash_check: bool,
}

/// `synod snapshot status`.
#[derive(Args, Debug, Clone)]
pub struct StatusArgs {
    /// The snapshot file.
    pub file: PathBuf,
    /// Output format: simple, table or json.
    #[arg(short = 'w', long = "write-out", default_value = "simple")]
    pub write_out: String,
}

/// `synod inspect`.
#[derive(Args, Debug, Clone)]
pub struct InspectArgs {
    /// A member's data dir.
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Output format: simple or json.
    #[arg(short = 'w', long = "write-out", default_value = "simple")]
    pub write_out: String,
}

/// What a snapshot holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotStatus {
    /// The state machine's hash (as `Maintenance.Hash` reports it, low 32 bits).
    pub hash: u32,
    /// Its revision.
    pub revision: i64,
    /// Live keys at that revision.
    pub total_keys: usize,
    /// Size of the file in bytes.
    pub total_size: u64,
}

/// A snapshot file, read and checked.
pub struct Loaded {
    /// The state it holds.
    pub sm: StateMachine,
    /// The file's size in bytes.
    pub size: u64,
    /// What of an etcd backend synod did not carry over.
    pub notes: Vec<String>,
    /// etcd's figures for an etcd-format file (what `etcdctl snapshot
    /// status` prints); `None` for a file in synod's own former format.
    pub etcd_status: Option<SnapshotStatus>,
}

/// The image of a state machine holding `kv` and no client sessions (the
/// layout `StateMachine::snapshot` writes: the store's image, then the
/// sessions, none here).
fn machine_image(kv: &synod_kv::KvStore) -> Vec<u8> {
    postcard::to_allocvec(&(kv.snapshot(), Vec::<u8>::new()))
        .expect("encoding to memory cannot fail")
}

/// etcd's `snapshot status` figures of a bbolt file: a CRC-32C over every
/// top-level bucket's name and its keys and values in order, the last
/// revision of the `key` bucket, every key of every bucket, the file size
/// bbolt reports.
fn etcd_status(db: &synod_bolt::Db) -> SnapshotStatus {
    let mut crc = 0u32;
    let mut keys = 0usize;
    let mut revision = 0i64;
    for (name, e) in &db.root.entries {
        let synod_bolt::Entry::Bucket(b) = e else {
            continue;
        };
        crc = crc32c::crc32c_append(crc, name);
        for (k, v) in &b.entries {
            crc = crc32c::crc32c_append(crc, k);
            if let synod_bolt::Entry::Value(v) = v {
                crc = crc32c::crc32c_append(crc, v);
            }
            if name == b"key" && k.len() >= 8 {
                revision = i64::from_be_bytes(k[..8].try_into().expect("eight bytes"));
            }
            keys += 1;
        }
    }
    SnapshotStatus {
        hash: crc,
        revision,
        total_keys: keys,
        total_size: db.size(),
    }
}

/// Reads a saved snapshot file and returns the state it holds. The file is
/// an etcd backend (what `synod snapshot save` and `etcdctl snapshot save`
/// write, from synod or from etcd 3.4 and 3.5; a `member/snap/db` copied
/// from an etcd data dir too, with `check_hash` off), or synod's own former
/// image. A saved snapshot ends with the SHA-256 of what precedes it, its
/// size then being 32 past a multiple of 512, as etcd's rule has it.
pub fn read_snapshot(path: &Path, check_hash: bool) -> Result<Loaded, OfflineError> {
    let bad = |what: String| OfflineError::BadSnapshot {
        path: path.to_path_buf(),
        what,
    };
    let len = fs::metadata(path).map_err(io(path))?.len();
    if len > MAX_SNAPSHOT_FILE_BYTES {
        return Err(bad(format!(
            "{len} bytes is over the {MAX_SNAPSHOT_FILE_BYTES}-byte limit"
        )));
    }
    let buf = fs::read(path).map_err(io(path))?;
    let body = if buf.len() % 512 == 32 {
        let (body, trailer) = buf.split_at(buf.len() - 32);
        if check_hash && <sha2::Sha256 as sha2::Digest>::digest(body).as_slice() != trailer {
            return Err(bad("SHA-256 trailer does not match the content".into()));
        }
        body
    } else if check_hash {
        return Err(bad(format!(
            "{} bytes: no SHA-256 trailer (not a saved snapshot; --skip-hash-check reads it anyway)",
            buf.len()
        )));
    } else {
        &buf[..]
    };
    let size = buf.len() as u64;
    if synod_bolt::is_bolt(body) {
        let db = synod_bolt::read(body).map_err(|e| bad(e.to_string()))?;
        let status = etcd_status(&db);
        let imported = crate::etcd_backup::import(body).map_err(|e| bad(e.to_string()))?;
        let kv = synod_kv::KvStore::from_parts(imported.parts, synod_kv::KvConfig::default())
            .map_err(|e| bad(format!("etcd's data does not hold together: {e}")))?;
        let sm = StateMachine::restore(&machine_image(&kv), MAX_SESSIONS)
            .map_err(|e| bad(e.to_string()))?;
        return Ok(Loaded {
            sm,
            size,
            notes: imported.notes,
            etcd_status: Some(status),
        });
    }
    let sm = StateMachine::restore(body, MAX_SESSIONS).map_err(|e| bad(e.to_string()))?;
    Ok(Loaded {
        sm,
        size,
        notes: Vec::new(),
        etcd_status: None,
    })
}

/// Keys alive at the store's current revision.
fn live_keys<E: synod_kv::MvccEngine>(kv: &synod_kv::KvStore<E>) -> usize {
    let all = RangeRequest {
        key: vec![0],
        range_end: vec![0],
        count_only: true,
        ..RangeRequest::default()
    };
    kv.range(&all)
        .map_or(0, |r| usize::try_from(r.count).unwrap_or(usize::MAX))
}

/// `synod snapshot status`: for an etcd-format file (every file synod
/// saves), etcd's figures, as `etcdctl snapshot status` prints them; for
/// synod's former format, the state's hash, revision, live keys and size.
pub fn snapshot_status(path: &Path) -> Result<SnapshotStatus, OfflineError> {
    let loaded = read_snapshot(path, true)?;
    if let Some(s) = loaded.etcd_status {
        return Ok(s);
    }
    let sm = loaded.sm;
    Ok(SnapshotStatus {
        hash: sm.kv().hash() as u32,
        revision: sm.kv().revision(),
        total_keys: live_keys(sm.kv()),
        total_size: loaded.size,
    })
}

/// What `restore` created.
#[derive(Clone, Debug)]
pub struct Restored {
    /// The new data dir.
    pub data_dir: PathBuf,
    /// This member's id in the new cluster.
    pub member_id: u64,
    /// The new cluster's id.
    pub cluster_id: u64,
    /// The restored revision.
    pub revision: i64,
    /// What of an etcd backend was not carried over.
    pub notes: Vec<String>,
}

/// `synod snapshot restore`: creates a new member's data dir holding the
/// snapshot's state, for a cluster of the members in `--initial-cluster`.
pub fn restore(args: &RestoreArgs) -> Result<Restored, OfflineError> {
    let data_dir = args
        .data_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{}.synod", args.name)));
    let raw = RawConfig {
        name: args.name.clone(),
        data_dir: data_dir.clone(),
        initial_cluster: args.initial_cluster.clone(),
        initial_cluster_token: args.initial_cluster_token.clone(),
        initial_advertise_peer_urls: args.initial_advertise_peer_urls.clone(),
        listen_peer_urls: args.initial_advertise_peer_urls.clone(),
        // Restoring writes files only: https peer URLs need no certificate
        // now (the server that starts on the data dir is given its own).
        peer_tls: crate::tls::PortFlags {
            auto_tls: true,
            ..crate::tls::PortFlags::default()
        },
        ..RawConfig::default()
    };
    if fs::read_dir(&data_dir).is_ok_and(|mut d| d.next().is_some()) {
        return Err(OfflineError::DataDirExists(data_dir));
    }
    let cfg = raw.validate()?;
    let loaded = read_snapshot(&args.file, !args.skip_hash_check)?;
    let (sm, notes) = (loaded.sm, loaded.notes);
    let revision = sm.kv().revision();
    // Build in a temporary sibling and rename, so a failed restore leaves no
    // half-written data dir that a server would boot from.
    let tmp = {
        let mut p = data_dir.clone().into_os_string();
        p.push(".restoring");
        PathBuf::from(p)
    };
    if tmp.exists() {
        fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
    }
    let opened = crate::disk::open(
        &tmp,
        &[(SHARD, synod_node::KeyRange::all())],
        cfg.wal_segment_bytes,
        &synod_store::StoreConfig::default(),
        MAX_SESSIONS,
    )?;
    assert!(
        opened.groups.iter().all(|g| g.init.is_none()),
        "a new directory holds no state"
    );
    let mut disk = opened.disk;
    let conf_state = ConfState {
        voters: cfg.members.iter().map(|m| m.id).collect(),
        ..ConfState::default()
    };
    disk.persist(
        &[Persist {
            shard: SHARD,
            hard_state: Some(HardState {
                term: 1,
                vote: 0,
                commit: 1,
            }),
            entries: Vec::new(),
            snapshot: Some(Snapshot {
                meta: SnapshotMeta {
                    index: 1,
                    term: 1,
                    conf_state,
                },
                // Re-encoded: only what this build's state machine understands
                // goes in. The member's first boot installs it into its store
                // (a snapshot past the store's applied index), and the registry
                // follows the new configuration.
                data: sm.snapshot(),
            }),
        }],
        &|_| 0,
    )?;
    drop(disk);
    fs::rename(&tmp, &data_dir).map_err(io(&data_dir))?;
    Ok(Restored {
        data_dir,
        member_id: cfg.id,
        cluster_id: cfg.cluster_id,
        revision,
        notes,
    })
}

/// On-disk sizes and store statistics of a data dir.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DirStats {
    /// WAL segment files.
    pub wal_files: usize,
    /// Their bytes.
    pub wal_bytes: u64,
    /// Snapshot image files.
    pub snap_files: usize,
    /// Their bytes.
    pub snap_bytes: u64,
    /// Every other file under the data dir, in bytes.
    pub other_bytes: u64,
    /// Raft index and term of the newest snapshot image, if any.
    pub snapshot_at: Option<(u64, u64)>,
    /// Revision of the newest snapshot image.
    pub revision: i64,
    /// Compacted revision of the newest snapshot image.
    pub compact_revision: i64,
    /// Live keys in the newest snapshot image.
    pub keys: usize,
    /// Leases in the newest snapshot image.
    pub leases: usize,
    /// The store file's bytes (`member/store.redb`).
    pub store_bytes: u64,
    /// The Raft index the store's data holds, when the store could be opened.
    pub store_applied: Option<u64>,
    /// Why the store could not be opened (a running member holds it).
    pub store_unavailable: Option<String>,
}

fn dir_files(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut out = Vec::new();
    let Ok(rd) = fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        match e.metadata() {
            Ok(m) if m.is_dir() => out.extend(dir_files(&p)),
            Ok(m) => out.push((p, m.len())),
            Err(_) => {}
        }
    }
    out
}

/// `synod inspect`: statistics of a data dir. The WAL and snapshot files
/// are only read; the store is opened (which takes its lock, so on a running
/// member only the sizes are reported) and its figures are the state's.
pub fn inspect(dir: &Path) -> Result<DirStats, OfflineError> {
    fs::metadata(dir).map_err(io(dir))?;
    let mut st = DirStats::default();
    let mut newest: Option<(u64, u64, PathBuf)> = None;
    for (p, len) in dir_files(dir) {
        let in_dir = |d: &str| p.parent().and_then(Path::file_name) == Some(d.as_ref());
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if in_dir("wal") {
            st.wal_files += 1;
            st.wal_bytes += len;
        } else if in_dir("snap") && name.ends_with(".snap") {
            st.snap_files += 1;
            st.snap_bytes += len;
            let mut parts = name.trim_end_matches(".snap").split('-');
            let idx = parts.next().and_then(|s| u64::from_str_radix(s, 16).ok());
            let term = parts.next().and_then(|s| u64::from_str_radix(s, 16).ok());
            if let (Some(i), Some(t)) = (idx, term) {
                if newest.as_ref().is_none_or(|(ni, _, _)| i > *ni) {
                    newest = Some((i, t, p.clone()));
                }
            }
        } else {
            st.other_bytes += len;
        }
    }
    let store = crate::disk::store_path(dir, SHARD);
    if let Ok(m) = fs::metadata(&store) {
        st.store_bytes = m.len();
        st.other_bytes = st.other_bytes.saturating_sub(m.len());
        match synod_store::open(
            &store,
            &synod_store::StoreConfig::default(),
            synod_kv::KvConfig::default(),
        ) {
            Ok(o) => {
                st.store_applied = Some(o.applied);
                st.revision = o.kv.revision();
                st.compact_revision = o.kv.compact_revision();
                st.keys = live_keys(&o.kv);
                st.leases = o.kv.leases().len();
            }
            Err(e) => st.store_unavailable = Some(e.to_string()),
        }
    }
    st.snapshot_at = newest.as_ref().map(|(i, t, _)| (*i, *t));
    // Without the store's figures, or when the newest snapshot image is
    // ahead of the store (a restored backup, a leader's snapshot not yet in
    // the store: the next boot installs it), the image's figures.
    let image_ahead = |i: u64| st.store_applied.is_none_or(|a| i > a);
    if let Some((index, term, path)) = newest.filter(|(i, _, _)| image_ahead(*i)) {
        let image = crate::disk::read_image(&path, index, term)?;
        let mut sm = StateMachine::new(MAX_SESSIONS);
        synod_node::install_group_image(&mut sm, &image, &ConfState::default()).map_err(|e| {
            OfflineError::BadSnapshot {
                path: path.clone(),
                what: e.to_string(),
            }
        })?;
        st.revision = sm.kv().revision();
        st.compact_revision = sm.kv().compact_revision();
        st.keys = live_keys(sm.kv());
        st.leases = sm.kv().leases().len();
    }
    Ok(st)
}

/// Runs `synod snapshot restore`; the process exit code.
pub fn run_restore(args: RestoreArgs) -> u8 {
    match restore(&args) {
        Ok(r) => {
            for n in &r.notes {
                eprintln!("note: {n}");
            }
            println!(
                "restored revision {} into {} (member {:x} of cluster {:x})",
                r.revision,
                r.data_dir.display(),
                r.member_id,
                r.cluster_id
            );
            0
        }
        Err(e) => {
            eprintln!("Error: {e}");
            1
        }
    }
}

/// Runs `synod snapshot status`; the process exit code.
pub fn run_status(args: StatusArgs) -> u8 {
    let s = match snapshot_status(&args.file) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("Error: {e}");
            return 1;
        }
    };
    match args.write_out.as_str() {
        "json" => println!(
            "{{\"hash\":{},\"revision\":{},\"totalKey\":{},\"totalSize\":{}}}",
            s.hash, s.revision, s.total_keys, s.total_size
        ),
        "table" => {
            println!("+----------+----------+------------+------------+");
            println!("|   HASH   | REVISION | TOTAL KEYS | TOTAL SIZE |");
            println!("+----------+----------+------------+------------+");
            println!(
                "| {:8x} | {:>8} | {:>10} | {:>10} |",
                s.hash,
                s.revision,
                s.total_keys,
                human_bytes(s.total_size)
            );
            println!("+----------+----------+------------+------------+");
        }
        _ => println!(
            "{:x}, {}, {}, {}",
            s.hash,
            s.revision,
            s.total_keys,
            human_bytes(s.total_size)
        ),
    }
    0
}

/// Runs `synod inspect`; the process exit code.
pub fn run_inspect(args: InspectArgs) -> u8 {
    let s = match inspect(&args.data_dir) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("Error: {e}");
            return 1;
        }
    };
    let total = s.wal_bytes + s.snap_bytes + s.store_bytes + s.other_bytes;
    if args.write_out == "json" {
        let (si, st) = s.snapshot_at.unwrap_or((0, 0));
        println!(
            "{{\"totalBytes\":{total},\"walFiles\":{},\"walBytes\":{},\"snapFiles\":{},\"snapBytes\":{},\"otherBytes\":{},\"storeBytes\":{},\"storeApplied\":{},\"snapshotIndex\":{si},\"snapshotTerm\":{st},\"revision\":{},\"compactRevision\":{},\"keys\":{},\"leases\":{}}}",
            s.wal_files, s.wal_bytes, s.snap_files, s.snap_bytes, s.other_bytes, s.store_bytes, s.store_applied.map_or("null".to_string(), |a| a.to_string()), s.revision, s.compact_revision, s.keys, s.leases
        );
        return 0;
    }
    println!("data dir        {}", args.data_dir.display());
    println!("on disk         {} ({total} bytes)", human_bytes(total));
    println!(
        "wal             {} in {} segment files",
        human_bytes(s.wal_bytes),
        s.wal_files
    );
    println!(
        "snapshots       {} in {} files",
        human_bytes(s.snap_bytes),
        s.snap_files
    );
    println!("store           {}", human_bytes(s.store_bytes));
    if let Some((i, t)) = s.snapshot_at {
        println!("newest snapshot index {i}, term {t}");
    }
    match (s.store_applied, &s.store_unavailable) {
        (Some(a), _) => println!(
            "state           at log index {a}: revision {} (compacted at {}), {} live keys, {} leases",
            s.revision, s.compact_revision, s.keys, s.leases
        ),
        (None, Some(why)) => {
            println!("state           store not opened ({why}); is the member running?");
            if s.snapshot_at.is_some() {
                println!(
                    "  newest snapshot image: revision {} (compacted at {}), {} live keys, {} leases",
                    s.revision, s.compact_revision, s.keys, s.leases
                );
            }
        }
        (None, None) => println!("state           no store file yet"),
    }
    0
}

/// Bytes as etcdctl prints sizes (`20 kB`, decimal units).
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "kB", "MB", "GB", "TB", "PB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u + 1 < UNITS.len() {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else if v < 10.0 {
        format!("{v:.1} {}", UNITS[u])
    } else {
        format!("{v:.0} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use synod_kv::{Command, PutRequest};
    use synod_node::Proposal;

    fn saved(dir: &Path, n: usize) -> (PathBuf, StateMachine) {
        let mut sm = StateMachine::new(MAX_SESSIONS);
        for i in 0..n {
            let p = Proposal {
                client: 0,
                seq: 0,
                cmd: Command::Put(PutRequest::new(format!("k{i}"), format!("v{i}"))),
            };
            sm.apply(i as u64 + 1, &p);
        }
        let mut image = sm.snapshot();
        image.resize(image.len().div_ceil(512) * 512, 0);
        let digest = <sha2::Sha256 as sha2::Digest>::digest(&image);
        image.extend_from_slice(&digest);
        let path = dir.join("db");
        fs::write(&path, &image).unwrap();
        (path, sm)
    }

    #[test]
    fn status_reads_what_was_saved_and_a_flipped_byte_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let (path, sm) = saved(d.path(), 25);
        let s = snapshot_status(&path).unwrap();
        assert_eq!(s.revision, sm.kv().revision());
        assert_eq!(s.total_keys, 25);
        assert_eq!(s.hash, sm.kv().hash() as u32);
        let mut bytes = fs::read(&path).unwrap();
        bytes[10] ^= 0x40;
        fs::write(&path, &bytes).unwrap();
        let e = snapshot_status(&path).unwrap_err();
        assert!(e.to_string().contains("SHA-256"), "{e}");
        fs::write(&path, b"not a snapshot at all").unwrap();
        assert!(snapshot_status(&path).is_err());
    }

    #[test]
    fn restore_creates_a_data_dir_a_server_boots_from_and_refuses_to_overwrite() {
        let d = tempfile::tempdir().unwrap();
        let (path, sm) = saved(d.path(), 10);
        let args = RestoreArgs {
            file: path,
            name: "a".into(),
            data_dir: Some(d.path().join("a.synod")),
            initial_cluster: "a=http://127.0.0.1:1,b=http://127.0.0.1:2".into(),
            initial_cluster_token: "t".into(),
            initial_advertise_peer_urls: "http://127.0.0.1:1".into(),
            skip_hash_check: false,
        };
        let r = restore(&args).unwrap();
        assert_eq!(r.revision, sm.kv().revision());
        let st = inspect(&r.data_dir).unwrap();
        assert_eq!(
            st.store_applied,
            Some(0),
            "the store is filled on first boot"
        );
        let mut opened = crate::disk::open(
            &r.data_dir,
            &[(SHARD, synod_node::KeyRange::all())],
            64 << 20,
            &synod_store::StoreConfig::default(),
            MAX_SESSIONS,
        )
        .unwrap();
        let group = opened.groups.remove(0);
        let init = group.init.expect("the restored dir holds state");
        // The first boot installs the image into the store at index 1.
        assert_eq!(group.state.1, 1);
        assert_eq!(group.state.0.kv().hash(), sm.kv().hash());
        match init.raft {
            synod_raft::Init::Restore { snapshot, .. } => {
                let meta = snapshot.expect("a snapshot marker");
                assert_eq!(meta.conf_state.voters.len(), 2);
            }
            other => panic!("expected a restore, got {other:?}"),
        }
        drop(opened.disk);
        drop(group.state);
        let st = inspect(&r.data_dir).unwrap();
        assert_eq!((st.keys, st.revision), (10, sm.kv().revision()));
        assert!(st.wal_bytes > 0 && st.snap_files == 1);
        let e = restore(&args).unwrap_err();
        assert!(matches!(e, OfflineError::DataDirExists(_)), "{e}");
    }

    #[test]
    fn etcds_snapshot_reports_etcds_figures_and_restores() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("etcd.db");
        fs::write(
            &path,
            include_bytes!("../../bolt/tests/data/etcd-3.4.23.db"),
        )
        .unwrap();
        // What etcdctl 3.4 prints for the same file.
        let s = snapshot_status(&path).unwrap();
        assert_eq!(
            (s.hash, s.revision, s.total_keys, s.total_size),
            (2_785_308_719, 7, 13, 20_480)
        );
        let args = RestoreArgs {
            file: path.clone(),
            name: "a".into(),
            data_dir: Some(d.path().join("a.synod")),
            initial_cluster: "a=http://127.0.0.1:1".into(),
            initial_cluster_token: "t".into(),
            initial_advertise_peer_urls: "http://127.0.0.1:1".into(),
            skip_hash_check: false,
        };
        let r = restore(&args).unwrap();
        assert_eq!(r.revision, 7);
        let st = inspect(&r.data_dir).unwrap();
        assert_eq!(
            (st.keys, st.revision, st.compact_revision, st.leases),
            (3, 7, 3, 1)
        );
        // Without its trailer (a db copied from a data dir) only with the check off.
        let bytes = fs::read(&path).unwrap();
        fs::write(&path, &bytes[..bytes.len() - 32]).unwrap();
        assert!(read_snapshot(&path, true).is_err());
        assert_eq!(read_snapshot(&path, false).unwrap().sm.kv().revision(), 7);
    }

    #[test]
    fn sizes_print_like_etcdctl() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(20480), "20 kB");
        assert_eq!(human_bytes(3_500_000), "3.5 MB");
        assert_eq!(human_bytes(64_000_000), "64 MB");
    }
}
