//! A small, stable, non-cryptographic hash for the running trace hash.
//!
//! Stable across Rust versions and platforms (unlike `DefaultHasher`), which
//! is what a determinism self-check needs.

/// Folds `x` into the running hash `h`.
#[inline]
pub(crate) fn mix(h: u64, x: u64) -> u64 {
    let v = (h.rotate_left(5) ^ x).wrapping_mul(0x517c_c1b7_2722_0a95);
    v ^ (v >> 32)
}

/// Folds a string into the running hash `h`.
pub(crate) fn mix_str(mut h: u64, s: &str) -> u64 {
    let bytes = s.as_bytes();
    h = mix(h, bytes.len() as u64);
    for chunk in bytes.chunks(8) {
        let mut w = [0u8; 8];
        w[..chunk.len()].copy_from_slice(chunk);
        h = mix(h, u64::from_le_bytes(w));
    }
    h
}

/// A 64-bit finaliser (SplitMix64), used to derive independent seeds.
pub(crate) fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A seed for stream `stream` of entity `index`, derived from the run seed.
pub(crate) fn derive_seed(seed: u64, stream: u64, index: u64) -> u64 {
    splitmix(splitmix(seed ^ splitmix(stream)) ^ index.wrapping_mul(0xd6e8_feb8_6659_fd93))
}
