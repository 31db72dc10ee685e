//! Bytes on the peer port: the handshake and framed messages must decode
//! or be refused with a typed error, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    synod_server::fuzzing::peer_frames(data);
});
