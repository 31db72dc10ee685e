//! A read over several ranges, answered piece by piece and merged
//! (`merge_ranges`), is the answer one store holding every key gives: same
//! kvs in the same order, same `more` and `count`, for every limit, order,
//! sort target and filter.

use synod_kv::*;

fn store() -> KvStore {
    let mut s = KvStore::new();
    for i in 0..40u32 {
        // Values and versions that do not follow key order.
        let v = format!("{}", (i * 7919) % 23);
        s.apply(&Command::Put(PutRequest::new(format!("k{i:02}"), v)))
            .0
            .expect("put");
        if i % 3 == 0 {
            s.apply(&Command::Put(PutRequest::new(format!("k{i:02}"), "again")))
                .0
                .expect("put");
        }
    }
    s
}

#[test]
fn a_merged_read_is_the_read_of_the_whole() {
    let s = store();
    let cuts: [&[u8]; 3] = [b"k07", b"k20", b"k33"];
    let targets = [
        SortTarget::Key,
        SortTarget::Version,
        SortTarget::Create,
        SortTarget::Mod,
        SortTarget::Value,
    ];
    let orders = [SortOrder::None, SortOrder::Ascend, SortOrder::Descend];
    let mut checked = 0;
    for target in targets {
        for order in orders {
            for limit in [0i64, 1, 5, 13, 40, 41] {
                for (count_only, keys_only, min_mod) in
                    [(false, false, 0), (true, false, 0), (false, true, 30)]
                {
                    let req = RangeRequest {
                        key: b"k".to_vec(),
                        range_end: b"l".to_vec(),
                        limit,
                        sort_order: order,
                        sort_target: target,
                        count_only,
                        keys_only,
                        min_mod_revision: min_mod,
                        ..RangeRequest::default()
                    };
                    let whole = s.range(&req).expect("whole");
                    let mut bounds: Vec<&[u8]> = vec![b"k"];
                    bounds.extend(cuts);
                    bounds.push(b"l");
                    let parts = bounds
                        .windows(2)
                        .map(|w| {
                            s.range(&req.part(w[0].to_vec(), w[1].to_vec()))
                                .expect("part")
                        })
                        .collect();
                    let merged = merge_ranges(&req, parts, whole.header_revision);
                    assert_eq!(merged, whole, "{req:?}");
                    checked += 1;
                }
            }
        }
    }
    assert_eq!(checked, 5 * 3 * 6 * 3);
}
