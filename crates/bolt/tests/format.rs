//! The format against itself (property tests: any tree written reads back
//! the same and passes bbolt's consistency check; damaged files are errors,
//! never panics) and against a file the real etcd 3.4 wrote.

use proptest::prelude::*;
use synod_bolt::{read, write, Bucket, Entry, PAGE_SIZE};

/// A snapshot `etcdctl snapshot save` (3.4.23) took of an etcd that had
/// seen: put a 1, put b 2, put a 3, lease grant 600, put c 4 with the
/// lease, del b, compact 3, put d 5. It ends with the SHA-256 etcd appends.
const ETCD_34: &[u8] = include_bytes!("data/etcd-3.4.23.db");

fn bucket_strategy(depth: u32) -> impl Strategy<Value = Bucket> {
    let key = prop::collection::vec(any::<u8>(), 1..40);
    // Mostly small values, some large enough to need overflow pages.
    let value = prop_oneof![
        8 => prop::collection::vec(any::<u8>(), 0..100),
        1 => prop::collection::vec(any::<u8>(), 0..3 * 1024),
        1 => (0usize..10_000).prop_map(|n| vec![0x5a; n]),
    ];
    let leaf = prop::collection::btree_map(key.clone(), value.prop_map(Entry::Value), 0..300);
    let flat = (any::<u64>(), leaf).prop_map(|(sequence, entries)| Bucket { sequence, entries });
    flat.prop_recursive(depth, 600, 6, move |inner| {
        (
            any::<u64>(),
            prop::collection::btree_map(
                prop::collection::vec(any::<u8>(), 1..20),
                prop_oneof![
                    inner.prop_map(Entry::Bucket),
                    prop::collection::vec(any::<u8>(), 0..64).prop_map(Entry::Value)
                ],
                0..8,
            ),
        )
            .prop_map(|(sequence, entries)| Bucket { sequence, entries })
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn any_tree_reads_back_as_written(root in bucket_strategy(3), small in any::<bool>()) {
        let ps = if small { 512 } else { PAGE_SIZE };
        let file = write(&root, ps, 4).unwrap();
        prop_assert_eq!(file.len() % ps, 0);
        let db = read(&file).unwrap();
        prop_assert_eq!(&db.root, &root);
        prop_assert_eq!(db.problems(), Vec::<String>::new());
        // Written again, the same bytes.
        prop_assert_eq!(write(&db.root, ps, 4).unwrap(), file);
    }

    #[test]
    fn damaged_files_are_errors_not_panics(
        root in bucket_strategy(2),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..20),
    ) {
        let mut file = write(&root, 512, 4).unwrap();
        for (at, byte) in flips {
            let i = at.index(file.len());
            file[i] ^= byte | 1;
        }
        // Either an error or some tree: never a panic or a hang.
        let _ = read(&file).map(|db| db.problems());
        let _ = read(&file[..file.len() / 2]);
    }
}

#[test]
fn etcd_34s_snapshot_reads_with_its_buckets_and_inline_buckets() {
    let db = read(ETCD_34).unwrap();
    assert_eq!(db.meta.page_size as usize, PAGE_SIZE);
    assert_eq!(db.problems(), Vec::<String>::new());
    let names: Vec<&[u8]> = db.root.entries.keys().map(Vec::as_slice).collect();
    assert_eq!(
        names,
        [
            &b"alarm"[..],
            b"auth",
            b"authRoles",
            b"authUsers",
            b"cluster",
            b"key",
            b"lease",
            b"members",
            b"members_removed",
            b"meta"
        ]
    );
    let key = db.root.bucket(b"key").unwrap();
    // Six records: a@2 (kept by the compaction at 3), b@3, a@4, c@5, the
    // tombstone of b at 6 (18-byte key ending in 't'), d@7.
    assert_eq!(key.entries.len(), 6);
    let revs: Vec<(u64, bool)> = key
        .entries
        .keys()
        .map(|k| {
            (
                u64::from_be_bytes(k[..8].try_into().unwrap()),
                k.len() == 18,
            )
        })
        .collect();
    assert_eq!(
        revs,
        [
            (2, false),
            (3, false),
            (4, false),
            (5, false),
            (6, true),
            (7, false)
        ]
    );
    let meta = db.root.bucket(b"meta").unwrap();
    assert_eq!(
        meta.value(b"finishedCompactRev").unwrap()[..8],
        3u64.to_be_bytes()
    );
    assert_eq!(db.root.bucket(b"lease").unwrap().entries.len(), 1);
    assert_eq!(
        db.root.bucket(b"cluster").unwrap().value(b"clusterVersion"),
        Some(&b"3.4.0"[..])
    );
    // Rewritten by us, the same tree.
    let again = write(&db.root, PAGE_SIZE, 2).unwrap();
    let db2 = read(&again).unwrap();
    assert_eq!(db2.root, db.root);
    assert_eq!(db2.problems(), Vec::<String>::new());
}
