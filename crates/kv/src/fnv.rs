//! FNV-1a hashing, stable across runs and platforms, for checksums and state digests.

use crate::types::KeyValue;

/// 64-bit FNV-1a: tiny, stable across runs and platforms.
#[derive(Clone, Copy)]
pub(crate) struct Fnv(u64);

impl Fnv {
    pub(crate) fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    pub(crate) fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    pub(crate) fn write_i64(&mut self, v: i64) {
        self.write(&v.to_le_bytes());
    }

    /// Length-prefixed, so adjacent fields cannot run into each other.
    pub(crate) fn write_bytes(&mut self, b: &[u8]) {
        self.write(&(b.len() as u64).to_le_bytes());
        self.write(b);
    }

    pub(crate) fn finish(self) -> u64 {
        self.0
    }
}

impl Fnv {
    /// Every field of a kv, each length-prefixed or fixed-size.
    pub(crate) fn write_kv(&mut self, kv: &KeyValue) {
        self.write_bytes(&kv.key);
        self.write_i64(kv.create_revision);
        self.write_i64(kv.mod_revision);
        self.write_i64(kv.version);
        self.write_bytes(&kv.value);
        self.write_i64(kv.lease);
    }
}

/// A bijective scrambler (the finaliser of MurmurHash3), so that sums of
/// digests do not inherit FNV's weak high bits.
pub(crate) fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}
