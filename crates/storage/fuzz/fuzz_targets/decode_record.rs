//! Fuzz target: decode arbitrary bytes (raw, and behind a valid header) as a
//! WAL segment, both as the newest segment and as a sealed one. It must never
//! panic, and whatever it accepts must be self-consistent: records tile the
//! segment from the header to the reported end, and only the newest segment
//! may have a torn tail.
#![no_main]

use libfuzzer_sys::fuzz_target;
use synod_storage::record::{
    scan_segment, SegmentEnd, SegmentHeader, FRAME_HEADER, SEGMENT_HEADER,
};

fuzz_target!(|input: &[u8]| {
    // As given, and behind a valid header so the record decoder is reached.
    let mut framed = SegmentHeader {
        seq: 0,
        first_lsn: 0,
    }
    .encode()
    .to_vec();
    framed.extend_from_slice(input);
    for (data, is_last) in [
        (input, false),
        (input, true),
        (&framed[..], false),
        (&framed[..], true),
    ] {
        let Ok(scan) = scan_segment(data, is_last, 1 << 16) else {
            continue;
        };
        let mut pos = SEGMENT_HEADER;
        for r in &scan.records {
            assert_eq!(r.offset, pos);
            pos += FRAME_HEADER + r.payload.len();
        }
        assert_eq!(pos, scan.end);
        assert!(scan.end <= data.len());
        if let SegmentEnd::Torn(range) = scan.tail {
            assert!(is_last);
            assert_eq!(range.start, scan.end);
            assert!(range.end <= data.len());
        }
    }
});
