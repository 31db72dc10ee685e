//! The on-disk format of a WAL segment: a checksummed header, then records
//! framed as `[len u32][type u8][crc32c u32 over type+payload][payload]`,
//! little-endian, then zeros (preallocated space) to the end of the file.
//!
//! [`scan_segment`] decodes a whole segment and classifies what follows the
//! last valid record: clean zeros, a torn tail (only in the last segment, and
//! only when no valid record follows anywhere), or corruption.

use std::fmt;
use std::ops::Range;

/// Bytes of a record frame before its payload.
pub const FRAME_HEADER: usize = 9;
/// Bytes of a segment header.
pub const SEGMENT_HEADER: usize = 32;
/// Magic bytes that open every segment.
pub const SEGMENT_MAGIC: [u8; 8] = *b"SYNODWAL";
/// Version of the segment format written by this code.
pub const SEGMENT_VERSION: u32 = 1;

/// Segment numbers and LSNs stay below this, so arithmetic on them read
/// from disk can never overflow.
pub const MAX_SEQ: u64 = 1 << 62;

/// The header of a segment file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    /// The segment's sequence number (0, 1, 2, ... without gaps).
    pub seq: u64,
    /// The log sequence number of the segment's first record.
    pub first_lsn: u64,
}

impl SegmentHeader {
    /// Encodes the header: magic, version, seq, first_lsn, crc32c of those.
    pub fn encode(&self) -> [u8; SEGMENT_HEADER] {
        let mut b = [0u8; SEGMENT_HEADER];
        b[0..8].copy_from_slice(&SEGMENT_MAGIC);
        b[8..12].copy_from_slice(&SEGMENT_VERSION.to_le_bytes());
        b[12..20].copy_from_slice(&self.seq.to_le_bytes());
        b[20..28].copy_from_slice(&self.first_lsn.to_le_bytes());
        let crc = crc32c::crc32c(&b[0..28]);
        b[28..32].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decodes a header, or says what is wrong with it.
    pub fn decode(b: &[u8]) -> Result<SegmentHeader, Corruption> {
        if b.len() < SEGMENT_HEADER {
            return Err(Corruption::BadHeader("file shorter than a segment header"));
        }
        if b[0..8] != SEGMENT_MAGIC {
            return Err(Corruption::BadHeader("bad magic"));
        }
        let crc = u32::from_le_bytes(b[28..32].try_into().expect("4 bytes"));
        if crc != crc32c::crc32c(&b[0..28]) {
            return Err(Corruption::BadHeader("header checksum mismatch"));
        }
        let version = u32::from_le_bytes(b[8..12].try_into().expect("4 bytes"));
        if version != SEGMENT_VERSION {
            return Err(Corruption::BadHeader("unsupported segment version"));
        }
        let h = SegmentHeader {
            seq: u64::from_le_bytes(b[12..20].try_into().expect("8 bytes")),
            first_lsn: u64::from_le_bytes(b[20..28].try_into().expect("8 bytes")),
        };
        if h.seq >= MAX_SEQ || h.first_lsn >= MAX_SEQ {
            return Err(Corruption::BadHeader("sequence number out of range"));
        }
        Ok(h)
    }
}

/// Appends one framed record to `out`.
pub fn encode_record(kind: u8, payload: &[u8], out: &mut Vec<u8>) {
    let len = u32::try_from(payload.len()).expect("record size is checked against the limit first");
    let mut crc = crc32c::crc32c(&[kind]);
    crc = crc32c::crc32c_append(crc, payload);
    out.extend_from_slice(&len.to_le_bytes());
    out.push(kind);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(payload);
}

/// What is wrong with the bytes at some offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Corruption {
    /// The segment header is missing or invalid.
    BadHeader(&'static str),
    /// The record's stored checksum does not match its contents.
    Checksum {
        /// The checksum stored in the frame.
        stored: u32,
        /// The checksum of the bytes found.
        computed: u32,
    },
    /// The length field exceeds the record size limit.
    ImpossibleLength(u32),
    /// The frame runs past the end of the segment.
    Truncated,
}

impl fmt::Display for Corruption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Corruption::BadHeader(why) => write!(f, "bad segment header ({why})"),
            Corruption::Checksum { stored, computed } => write!(
                f,
                "record checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"
            ),
            Corruption::ImpossibleLength(len) => write!(f, "impossible record length {len}"),
            Corruption::Truncated => write!(f, "record runs past the end of the segment"),
        }
    }
}

/// One decoded record, borrowing its payload from the segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordRef<'a> {
    /// The record's type, opaque to the WAL.
    pub kind: u8,
    /// The record's payload.
    pub payload: &'a [u8],
    /// Byte offset of the frame in the segment.
    pub offset: usize,
}

/// Decodes the frame at `pos`, returning the record and the offset after it.
pub fn decode_at(
    buf: &[u8],
    pos: usize,
    max_payload: usize,
) -> Result<(RecordRef<'_>, usize), Corruption> {
    let Some(head) = buf.get(pos..pos.saturating_add(FRAME_HEADER)) else {
        return Err(Corruption::Truncated);
    };
    let len = u32::from_le_bytes(head[0..4].try_into().expect("4 bytes"));
    let kind = head[4];
    let stored = u32::from_le_bytes(head[5..9].try_into().expect("4 bytes"));
    if len as usize > max_payload {
        return Err(Corruption::ImpossibleLength(len));
    }
    let start = pos + FRAME_HEADER;
    let Some(payload) = buf.get(start..start + len as usize) else {
        return Err(Corruption::Truncated);
    };
    let computed = crc32c::crc32c_append(crc32c::crc32c(&[kind]), payload);
    if computed != stored {
        return Err(Corruption::Checksum { stored, computed });
    }
    Ok((
        RecordRef {
            kind,
            payload,
            offset: pos,
        },
        start + len as usize,
    ))
}

/// Whether a valid record starts at any offset in `from..`. An all-zero frame
/// header is never valid (the checksum of type 0 with no payload is not 0).
pub fn valid_record_after(buf: &[u8], from: usize, max_payload: usize) -> bool {
    let last = buf.len().saturating_sub(FRAME_HEADER);
    (from..=last).any(|q| {
        buf[q..q + FRAME_HEADER].iter().any(|&b| b != 0) && decode_at(buf, q, max_payload).is_ok()
    })
}

/// How a segment ends after its last valid record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SegmentEnd {
    /// Only zeros (or nothing) follow: the segment ends cleanly here.
    Clean,
    /// A torn write follows: the bytes in this range are garbage to discard.
    Torn(Range<usize>),
}

/// The result of scanning a segment.
#[derive(Debug)]
pub struct SegmentScan<'a> {
    /// The segment header.
    pub header: SegmentHeader,
    /// The valid records, in order.
    pub records: Vec<RecordRef<'a>>,
    /// Offset just after the last valid record: where appends continue.
    pub end: usize,
    /// What follows `end`.
    pub tail: SegmentEnd,
}

/// Why a segment could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanError {
    /// The last segment's header was never completely written and no record
    /// follows it: the segment was being created when the node stopped and
    /// holds nothing; it may be discarded.
    TornHeader,
    /// Damage before the tail: acknowledged data is unreadable.
    Corrupt {
        /// Byte offset of the damage.
        offset: usize,
        /// What is wrong there.
        what: Corruption,
    },
}

/// Decodes a whole segment. `is_last` says whether this is the newest segment,
/// the only one that may legitimately end in a torn write.
pub fn scan_segment(
    buf: &[u8],
    is_last: bool,
    max_payload: usize,
) -> Result<SegmentScan<'_>, ScanError> {
    let header = match SegmentHeader::decode(buf) {
        Ok(h) => h,
        Err(what) => {
            if is_last && !valid_record_after(buf, SEGMENT_HEADER, max_payload) {
                return Err(ScanError::TornHeader);
            }
            return Err(ScanError::Corrupt { offset: 0, what });
        }
    };
    let mut records = Vec::new();
    let mut pos = SEGMENT_HEADER;
    while pos < buf.len() {
        match decode_at(buf, pos, max_payload) {
            Ok((rec, next)) => {
                records.push(rec);
                pos = next;
            }
            Err(what) => {
                let rest = &buf[pos..];
                let Some(last_nonzero) = rest.iter().rposition(|&b| b != 0) else {
                    break; // zeros to the end: clean
                };
                if !is_last || valid_record_after(buf, pos + 1, max_payload) {
                    return Err(ScanError::Corrupt { offset: pos, what });
                }
                return Ok(SegmentScan {
                    header,
                    records,
                    end: pos,
                    tail: SegmentEnd::Torn(pos..pos + last_nonzero + 1),
                });
            }
        }
    }
    Ok(SegmentScan {
        header,
        records,
        end: pos,
        tail: SegmentEnd::Clean,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MAX: usize = 1 << 16;

    fn segment(records: &[(u8, Vec<u8>)], pad: usize) -> Vec<u8> {
        let mut buf = SegmentHeader {
            seq: 3,
            first_lsn: 40,
        }
        .encode()
        .to_vec();
        for (k, p) in records {
            encode_record(*k, p, &mut buf);
        }
        buf.resize(buf.len() + pad, 0);
        buf
    }

    #[test]
    fn header_round_trip_and_damage() {
        let h = SegmentHeader {
            seq: 7,
            first_lsn: 99,
        };
        let b = h.encode();
        assert_eq!(SegmentHeader::decode(&b), Ok(h));
        for i in 0..SEGMENT_HEADER {
            let mut d = b;
            d[i] ^= 1;
            assert!(SegmentHeader::decode(&d).is_err(), "byte {i}");
        }
    }

    #[test]
    fn clean_segment_with_padding() {
        let recs = vec![(1, b"one".to_vec()), (2, vec![]), (255, vec![9; 300])];
        let buf = segment(&recs, 100);
        let scan = scan_segment(&buf, false, MAX).unwrap();
        assert_eq!(scan.header.first_lsn, 40);
        assert_eq!(scan.tail, SegmentEnd::Clean);
        let got: Vec<(u8, Vec<u8>)> = scan
            .records
            .iter()
            .map(|r| (r.kind, r.payload.to_vec()))
            .collect();
        assert_eq!(got, recs);
        assert_eq!(scan.end, buf.len() - 100);
    }

    #[test]
    fn torn_last_record_is_a_tail_only_in_the_last_segment() {
        let recs = vec![(1, vec![1; 50]), (1, vec![2; 50])];
        let full = segment(&recs, 0);
        let second = SEGMENT_HEADER + FRAME_HEADER + 50;
        for cut in second + 1..full.len() {
            let mut buf = full[..cut].to_vec();
            buf.resize(full.len() + 64, 0);
            let scan = scan_segment(&buf, true, MAX).unwrap();
            assert_eq!(scan.records.len(), 1, "cut {cut}");
            assert_eq!(scan.end, second);
            match scan.tail {
                SegmentEnd::Torn(r) => assert_eq!(r.start, second),
                SegmentEnd::Clean => {
                    // Only possible if the cut left only zero bytes.
                    assert!(buf[second..].iter().all(|&b| b == 0), "cut {cut}");
                }
            }
            if buf[second..].iter().any(|&b| b != 0) {
                let err = scan_segment(&buf, false, MAX).unwrap_err();
                assert_eq!(
                    err,
                    ScanError::Corrupt {
                        offset: second,
                        what: decode_at(&buf, second, MAX).unwrap_err()
                    }
                );
            }
        }
    }

    #[test]
    fn flipped_byte_before_a_valid_record_is_corruption() {
        let recs = vec![(1, vec![1; 20]), (1, vec![2; 20]), (1, vec![3; 20])];
        let mut buf = segment(&recs, 32);
        let second = SEGMENT_HEADER + FRAME_HEADER + 20;
        buf[second + FRAME_HEADER + 5] ^= 0x40;
        let err = scan_segment(&buf, true, MAX).unwrap_err();
        assert!(
            matches!(err, ScanError::Corrupt { offset, what: Corruption::Checksum { .. } } if offset == second),
            "{err:?}"
        );
        // A length blown past the limit is also caught.
        let mut buf = segment(&recs, 32);
        buf[second + 3] = 0x7f;
        let err = scan_segment(&buf, true, MAX).unwrap_err();
        assert!(
            matches!(err, ScanError::Corrupt { offset, what: Corruption::ImpossibleLength(_) } if offset == second),
            "{err:?}"
        );
    }

    #[test]
    fn torn_header_in_last_segment() {
        let full = segment(&[], 64);
        for cut in 0..SEGMENT_HEADER {
            let mut buf = full[..cut].to_vec();
            buf.resize(full.len(), 0);
            assert_eq!(
                scan_segment(&buf, true, MAX).unwrap_err(),
                ScanError::TornHeader
            );
            assert!(matches!(
                scan_segment(&buf, false, MAX).unwrap_err(),
                ScanError::Corrupt { offset: 0, .. }
            ));
        }
        // A damaged header with records behind it is corruption, even last.
        let mut buf = segment(&[(1, vec![5; 10])], 64);
        buf[0] ^= 1;
        assert!(matches!(
            scan_segment(&buf, true, MAX).unwrap_err(),
            ScanError::Corrupt { offset: 0, .. }
        ));
    }

    proptest! {
        #[test]
        fn encode_decode_round_trip(records in prop::collection::vec((any::<u8>(), prop::collection::vec(any::<u8>(), 0..200)), 0..20), pad in 0usize..64) {
            let buf = segment(&records, pad);
            let scan = scan_segment(&buf, false, MAX).unwrap();
            let got: Vec<(u8, Vec<u8>)> = scan.records.iter().map(|r| (r.kind, r.payload.to_vec())).collect();
            prop_assert_eq!(got, records);
            prop_assert_eq!(scan.tail, SegmentEnd::Clean);
        }

        /// The fuzz target's property, in the normal test run: arbitrary bytes
        /// never panic the decoder, and whatever it accepts is self-consistent.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600), with_header in any::<bool>(), is_last in any::<bool>()) {
            let mut buf = if with_header { segment(&[], 0) } else { Vec::new() };
            buf.extend_from_slice(&bytes);
            check_decode_invariants(&buf, is_last);
        }
    }

    /// What must hold for any input (shared with the fuzz target's intent).
    fn check_decode_invariants(buf: &[u8], is_last: bool) {
        if let Ok(scan) = scan_segment(buf, is_last, 4096) {
            assert!(scan.end <= buf.len());
            let mut pos = SEGMENT_HEADER;
            for r in &scan.records {
                assert_eq!(r.offset, pos);
                pos += FRAME_HEADER + r.payload.len();
            }
            assert_eq!(pos, scan.end);
            if let SegmentEnd::Torn(r) = scan.tail {
                assert!(is_last && r.start == scan.end && r.end <= buf.len());
            }
        }
    }
}
