//! Fuzz target: arbitrary bytes become the contents of one or two segment
//! files on a simulated disk, then the Raft log is opened over them. Recovery
//! must return a log or a typed error, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;
use synod_storage::record::SegmentHeader;
use synod_storage::wal::segment_name;
use synod_storage::{RaftLogStore, SimVfs, Vfs, VfsFile, WalConfig};

fuzz_target!(|input: &[u8]| {
    let Some((&split, rest)) = input.split_first() else {
        return;
    };
    let cut = (split as usize * rest.len() / 255).min(rest.len());
    let vfs = SimVfs::new();
    let dir = Path::new("/log");
    vfs.create_dir_all(dir).expect("sim dir");
    let mut first_lsn = 0;
    for (seq, body) in [&rest[..cut], &rest[cut..]].into_iter().enumerate() {
        if seq == 1 && body.is_empty() {
            break;
        }
        let header = SegmentHeader {
            seq: seq as u64,
            first_lsn,
        };
        let mut bytes = header.encode().to_vec();
        bytes.extend_from_slice(body);
        let mut f = vfs
            .create(&dir.join(segment_name(seq as u64, first_lsn)))
            .expect("fresh name");
        f.write_at(0, &bytes).expect("sim write");
        f.sync_data().expect("sim sync");
        first_lsn += 1;
    }
    let cfg = WalConfig {
        segment_size: 1 << 16,
        max_record_size: 1 << 12,
        max_buffer_bytes: 1 << 16,
        zero_fill: false,
    };
    let _ = RaftLogStore::open_with_config(vfs, dir, cfg);
});
