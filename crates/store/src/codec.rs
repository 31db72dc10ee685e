//! The bytes of each table's values, each sealed with our own CRC32C.
//!
//! redb checksums its pages when it writes them but verifies them only when it
//! repairs a file after a crash (or on an explicit integrity check), so a
//! flipped bit in a page read in normal operation would be served. Every value
//! we store therefore starts with a CRC32C over the value *and* the key it is
//! stored under, so a damaged key or value is reported on the read that meets
//! it, naming the table, key and revision.
//!
//! * `writes` table, key `(main, sub)`: `crc | flags | create_revision |
//!   version | lease | key_len (u32) | key | value` (integers
//!   little-endian, flags bit 0 = tombstone); the CRC covers the revision too,
//!   so a record moved under another revision does not pass.
//! * `meta` table, key `"state"`: `crc | applied | digest | len | compacted |
//!   kv_meta_len | kv_meta | extra`.

use synod_kv::{KeyValue, Record, Rev};

/// Fixed part of a `writes` value after the CRC: flags, three integers and
/// the key's length.
const WRITE_FIXED: usize = 1 + 8 * 3 + 4;

fn crc_of_rev(rev: Rev) -> u32 {
    let c = crc32c::crc32c(&rev.main.to_le_bytes());
    crc32c::crc32c_append(c, &rev.sub.to_le_bytes())
}

fn read_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_le_bytes(a)
}

fn read_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

fn read_u32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

/// Encodes a write's `writes` value into `out` (cleared first).
pub(crate) fn encode_write(rev: Rev, rec: &Record, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&[0; 4]);
    out.push(u8::from(rec.tombstone));
    out.extend_from_slice(&rec.kv.create_revision.to_le_bytes());
    out.extend_from_slice(&rec.kv.version.to_le_bytes());
    out.extend_from_slice(&rec.kv.lease.to_le_bytes());
    let key_len = u32::try_from(rec.kv.key.len()).expect("keys are far below 4 GiB");
    out.extend_from_slice(&key_len.to_le_bytes());
    out.extend_from_slice(&rec.kv.key);
    out.extend_from_slice(&rec.kv.value);
    let crc = crc32c::crc32c_append(crc_of_rev(rev), &out[4..]);
    out[..4].copy_from_slice(&crc.to_le_bytes());
}

/// The key of a `writes` value and whether it is a tombstone, after
/// checking its CRC.
pub(crate) fn check_write(rev: Rev, bytes: &[u8]) -> Result<(&[u8], bool), &'static str> {
    if bytes.len() < 4 + WRITE_FIXED {
        return Err("record too short");
    }
    let crc = crc32c::crc32c_append(crc_of_rev(rev), &bytes[4..]);
    if crc != read_u32(bytes, 0) {
        return Err("record checksum mismatch");
    }
    let tomb = match bytes[4] {
        0 => false,
        1 => true,
        _ => return Err("unknown record flags"),
    };
    let key_len = read_u32(bytes, 29) as usize;
    let key = bytes
        .get(4 + WRITE_FIXED..4 + WRITE_FIXED + key_len)
        .ok_or("key length out of range")?;
    if key.is_empty() {
        return Err("empty key");
    }
    Ok((key, tomb))
}

/// The key a `writes` value says it holds, unchecked (to name a damaged
/// record); `None` when even its length is out of range.
pub(crate) fn key_as_stored(bytes: &[u8]) -> Option<&[u8]> {
    let key_len = read_u32(bytes.get(..4 + WRITE_FIXED)?, 29) as usize;
    bytes.get(4 + WRITE_FIXED..4 + WRITE_FIXED + key_len)
}

/// Decodes a `writes` value stored under `rev`, checking its CRC.
pub(crate) fn decode_write(rev: Rev, bytes: &[u8]) -> Result<Record, &'static str> {
    let (key, tombstone) = check_write(rev, bytes)?;
    let kv = KeyValue {
        key: key.to_vec(),
        create_revision: read_i64(bytes, 5),
        mod_revision: rev.main,
        version: read_i64(bytes, 13),
        lease: read_i64(bytes, 21),
        value: bytes[4 + WRITE_FIXED + key.len()..].to_vec(),
    };
    Ok(Record { kv, tombstone })
}

/// The engine's own durable state, beside the data.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct MetaState {
    /// The Raft index of the last entry whose effects the data holds.
    pub applied: u64,
    /// The engine's digest and write count (see `MvccEngine`).
    pub digest: u64,
    pub len: u64,
    /// Revision of the engine's last compaction (0: none).
    pub compacted: i64,
    /// `KvStore::meta_image` at the commit.
    pub kv_meta: Vec<u8>,
    /// Opaque bytes of the store's owner (the node's sessions).
    pub extra: Vec<u8>,
}

const META_FIXED: usize = 8 * 4 + 4;

pub(crate) fn encode_meta(m: &MetaState) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + META_FIXED + m.kv_meta.len() + m.extra.len());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&m.applied.to_le_bytes());
    out.extend_from_slice(&m.digest.to_le_bytes());
    out.extend_from_slice(&m.len.to_le_bytes());
    out.extend_from_slice(&m.compacted.to_le_bytes());
    let kv_len = u32::try_from(m.kv_meta.len()).expect("store metadata under 4 GiB");
    out.extend_from_slice(&kv_len.to_le_bytes());
    out.extend_from_slice(&m.kv_meta);
    out.extend_from_slice(&m.extra);
    let crc = crc32c::crc32c(&out[4..]);
    out[..4].copy_from_slice(&crc.to_le_bytes());
    out
}

pub(crate) fn decode_meta(bytes: &[u8]) -> Result<MetaState, &'static str> {
    if bytes.len() < 4 + META_FIXED {
        return Err("metadata too short");
    }
    if crc32c::crc32c(&bytes[4..]) != read_u32(bytes, 0) {
        return Err("metadata checksum mismatch");
    }
    let kv_len = read_u32(bytes, 36) as usize;
    let body = &bytes[4 + META_FIXED..];
    if kv_len > body.len() {
        return Err("metadata length out of range");
    }
    Ok(MetaState {
        applied: read_u64(bytes, 4),
        digest: read_u64(bytes, 12),
        len: read_u64(bytes, 20),
        compacted: read_i64(bytes, 28),
        kv_meta: body[..kv_len].to_vec(),
        extra: body[kv_len..].to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(tomb: bool) -> Record {
        Record {
            kv: KeyValue {
                key: b"k\x00\xff".to_vec(),
                create_revision: 3,
                mod_revision: 7,
                version: 2,
                value: b"value".to_vec(),
                lease: 9,
            },
            tombstone: tomb,
        }
    }

    #[test]
    fn records_round_trip_and_every_flipped_byte_is_caught() {
        let rev = Rev { main: 7, sub: 1 };
        let mut buf = Vec::new();
        for tomb in [false, true] {
            encode_write(rev, &rec(tomb), &mut buf);
            assert_eq!(decode_write(rev, &buf).unwrap(), rec(tomb));
            assert_eq!(check_write(rev, &buf).unwrap(), (&b"k\x00\xff"[..], tomb));
        }
        for i in 0..buf.len() {
            let mut bad = buf.clone();
            bad[i] ^= 0x10;
            assert!(decode_write(rev, &bad).is_err(), "byte {i}");
        }
        // The same bytes under another revision do not pass.
        assert!(decode_write(Rev { main: 7, sub: 2 }, &buf).is_err());
        assert!(decode_write(Rev { main: 8, sub: 1 }, &buf).is_err());
        assert!(decode_write(rev, &buf[..10]).is_err());
    }

    #[test]
    fn meta_round_trips() {
        let m = MetaState {
            applied: 42,
            digest: 7,
            len: 3,
            compacted: 2,
            kv_meta: vec![1, 2, 3],
            extra: vec![9; 10],
        };
        let bytes = encode_meta(&m);
        assert_eq!(decode_meta(&bytes).unwrap(), m);
        let mut bad = bytes.clone();
        bad[40] ^= 1;
        assert!(decode_meta(&bad).is_err());
        assert!(decode_meta(&bytes[..20]).is_err());
    }
}
