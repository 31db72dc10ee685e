//! Commits, crashes and damage: what survives, what is lost, what is refused.

use std::path::Path;

use synod_kv::*;
use synod_store::{commit, open, verify, StoreConfig, StoreError};

fn cfg(verify_on_open: bool) -> StoreConfig {
    StoreConfig {
        cache_bytes: 1 << 20,
        verify_on_open,
    }
}

fn put(kv: &mut KvStore<synod_store::RedbEngine>, k: &str, v: &str) {
    kv.apply(&Command::Put(PutRequest::new(k, v))).0.unwrap();
}

/// A copy of the file as a process killed now would leave it: what redb has
/// written so far, without whatever a later fsync or close would add.
fn crash_image(path: &Path, to: &Path) {
    std::fs::copy(path, to).unwrap();
}

#[test]
fn a_reopened_store_holds_every_commit_with_its_index_and_leases() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    let mut kv = open(&path, &cfg(true), KvConfig::default()).unwrap().kv;
    kv.apply(&Command::LeaseGrant { id: 7, ttl: 30 }).0.unwrap();
    for i in 0..500 {
        put(&mut kv, &format!("key{i:04}"), &format!("v{i}"));
        if i % 100 == 99 {
            commit(&mut kv, i as u64 + 2, b"sessions", false).unwrap();
        }
    }
    let mut p = PutRequest::new("leased", "x");
    p.lease = 7;
    kv.apply(&Command::Put(p)).0.unwrap();
    kv.apply(&Command::DeleteRange(DeleteRangeRequest {
        key: b"key0100".to_vec(),
        range_end: b"key0200".to_vec(),
        prev_kv: false,
    }))
    .0
    .unwrap();
    let rev = kv.revision();
    kv.apply(&Command::Compact { revision: rev - 5 }).0.unwrap();
    commit(&mut kv, 600, b"sessions2", true).unwrap();
    let (hash, snap) = (kv.hash(), kv.snapshot());
    drop(kv);

    let again = open(&path, &cfg(true), KvConfig::default()).unwrap();
    assert_eq!(again.applied, 600);
    assert_eq!(again.extra, b"sessions2");
    assert_eq!(again.kv.hash(), hash);
    assert_eq!(again.kv.snapshot(), snap);
    assert_eq!(again.kv.compact_revision(), rev - 5);
    let (_, keys) = again.kv.lease_time_to_live(7, true).unwrap();
    assert_eq!(keys, vec![b"leased".to_vec()]);
    verify(&again.kv).unwrap();
    // The restored store goes on like the one that wrote it.
    let old = again
        .kv
        .range(&RangeRequest {
            revision: rev - 1,
            ..RangeRequest::key("key0150")
        })
        .unwrap();
    assert_eq!(
        old.kvs[0].value, b"v150",
        "a read before the delete sees the key"
    );
    let now = again.kv.range(&RangeRequest::key("key0150")).unwrap();
    assert!(now.kvs.is_empty(), "deleted at the last revision");
}

#[test]
fn a_crash_loses_non_durable_commits_and_keeps_the_last_durable_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    let mut kv = open(&path, &cfg(true), KvConfig::default()).unwrap().kv;
    for i in 0..50 {
        put(&mut kv, &format!("k{i}"), "durable");
    }
    commit(&mut kv, 50, b"at50", true).unwrap();
    let durable = (kv.hash(), kv.snapshot());
    for i in 0..50 {
        put(&mut kv, &format!("k{i}"), "lost");
    }
    commit(&mut kv, 100, b"at100", false).unwrap();
    assert_eq!(kv.engine().applied(), 100);
    assert_eq!(kv.engine().durable_applied(), 50);
    // Uncommitted writes on top.
    put(&mut kv, "never", "committed");
    let crashed = dir.path().join("crashed.redb");
    crash_image(&path, &crashed);

    let after = open(&crashed, &cfg(true), KvConfig::default()).unwrap();
    assert_eq!(after.applied, 50);
    assert_eq!(after.extra, b"at50");
    assert_eq!((after.kv.hash(), after.kv.snapshot()), durable);
    verify(&after.kv).unwrap();

    // Without a crash, a clean close keeps the non-durable commit too, but
    // never the uncommitted write.
    drop(kv);
    let clean = open(&path, &cfg(true), KvConfig::default()).unwrap();
    assert_eq!(clean.applied, 100);
    let r = clean.kv.range(&RangeRequest::key("never")).unwrap();
    assert!(r.kvs.is_empty());
    let r = clean.kv.range(&RangeRequest::key("k3")).unwrap();
    assert_eq!(r.kvs[0].value, b"lost");
}

/// Writes a store holding one value with a marker no other byte run has,
/// closes it, and flips one byte of every copy of the marker in the file.
fn damaged_store(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("store.redb");
    let mut kv = open(&path, &cfg(true), KvConfig::default()).unwrap().kv;
    for i in 0..20 {
        put(&mut kv, &format!("k{i:02}"), "plain");
    }
    put(&mut kv, "victim", "MARKER-7f3a9c-MARKER");
    commit(&mut kv, 21, b"", true).unwrap();
    drop(kv);
    let mut bytes = std::fs::read(&path).unwrap();
    let marker = b"MARKER-7f3a9c-MARKER";
    let hits: Vec<usize> = bytes
        .windows(marker.len())
        .enumerate()
        .filter(|(_, w)| *w == marker)
        .map(|(i, _)| i)
        .collect();
    assert!(!hits.is_empty(), "marker not found in the file");
    for at in hits {
        bytes[at + 8] ^= 0x01;
    }
    std::fs::write(&path, &bytes).unwrap();
    path
}

#[test]
fn a_flipped_byte_in_a_page_fails_the_open_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = damaged_store(dir.path());
    let err = match open(&path, &cfg(true), KvConfig::default()) {
        Ok(_) => panic!("a damaged page passed the integrity check"),
        Err(e) => e,
    };
    let msg = err.to_string();
    assert!(matches!(err, StoreError::Integrity { .. }), "{msg}");
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    // redb does not say where; our record checksums do.
    assert!(
        msg.contains("table `writes` at key \"victim\" revision 22.0"),
        "{msg}"
    );
    eprintln!("{msg}");
}

#[test]
fn a_flipped_byte_in_a_record_is_reported_with_table_key_and_revision() {
    let dir = tempfile::tempdir().unwrap();
    let path = damaged_store(dir.path());
    // Without the page check, the record's own CRC catches it: the open
    // reads every record to build the key index.
    let err = match open(&path, &cfg(false), KvConfig::default()) {
        Ok(_) => panic!("a damaged record passed the open"),
        Err(e) => e,
    };
    let msg = err.to_string();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{msg}");
    for part in [
        path.display().to_string().as_str(),
        "table `writes`",
        "\"victim\"",
        "revision 22.0",
        "checksum mismatch",
    ] {
        assert!(msg.contains(part), "{part} missing from: {msg}");
    }
}

#[test]
fn damaged_metadata_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    let mut kv = open(&path, &cfg(true), KvConfig::default()).unwrap().kv;
    put(&mut kv, "a", "b");
    commit(&mut kv, 1, b"EXTRA-MARKER-55aa", true).unwrap();
    drop(kv);
    let mut bytes = std::fs::read(&path).unwrap();
    let marker = b"EXTRA-MARKER-55aa";
    let mut found = false;
    for i in 0..bytes.len() - marker.len() {
        if &bytes[i..i + marker.len()] == marker {
            bytes[i + 3] ^= 0x20;
            found = true;
        }
    }
    assert!(found);
    std::fs::write(&path, &bytes).unwrap();
    let err = open(&path, &cfg(false), KvConfig::default())
        .err()
        .expect("damaged metadata opened");
    assert!(matches!(err, StoreError::Meta { .. }), "{err}");
    assert!(err.to_string().contains("checksum"), "{err}");
}
