//! Member and cluster identities, derived the way etcd derives them: from
//! what every member is told at start (names, peer URLs, the cluster token),
//! so all members agree on them without talking.
//!
//! These are the ids of the initial members only. A member added at runtime
//! gets its id from the leader's node (derived from its peer URLs and the
//! index of the entry that adds it) and learns it, with the cluster id, from
//! a running member when it first starts (see `server::start`).

/// FNV-1a over the parts, each followed by a separator byte.
fn fnv64(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for &b in p.iter().chain(std::iter::once(&0xffu8)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

/// The member id (also its Raft node id) of the member `name` reachable at
/// `peer_url` in the cluster started with `token`. Never 0, and below 2^62
/// (the storage's bound on ids, terms and indexes).
pub fn member_id(name: &str, peer_url: &str, token: &str) -> u64 {
    let h = fnv64(&[name.as_bytes(), peer_url.as_bytes(), token.as_bytes()]) & ((1 << 62) - 1);
    if h == 0 {
        1
    } else {
        h
    }
}

/// The cluster id: a hash of the token and the initial members' ids.
pub fn cluster_id(token: &str, members: &[u64]) -> u64 {
    let mut ids = members.to_vec();
    ids.sort_unstable();
    let bytes: Vec<[u8; 8]> = ids.iter().map(|i| i.to_le_bytes()).collect();
    let mut parts: Vec<&[u8]> = vec![token.as_bytes()];
    parts.extend(bytes.iter().map(|b| &b[..]));
    let h = fnv64(&parts);
    if h == 0 {
        1
    } else {
        h
    }
}

/// Spreads `x` over 64 bits (splitmix64's finalizer): distinct inputs give
/// distinct, well-mixed outputs, for ids that must not collide by accident.
pub fn spread(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_depend_on_every_input_and_not_on_order() {
        let a = member_id("n1", "http://127.0.0.1:1", "t");
        assert!(a < 1 << 62 && a != 0);
        assert_ne!(a, member_id("n2", "http://127.0.0.1:1", "t"));
        assert_ne!(a, member_id("n1", "http://127.0.0.1:2", "t"));
        assert_ne!(a, member_id("n1", "http://127.0.0.1:1", "u"));
        assert_eq!(cluster_id("t", &[1, 2, 3]), cluster_id("t", &[3, 1, 2]));
        assert_ne!(cluster_id("t", &[1, 2, 3]), cluster_id("u", &[1, 2, 3]));
    }
}
