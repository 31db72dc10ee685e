//! A KV request's protobuf body (the first byte picks its type): decoded,
//! converted and applied, or refused with etcd's code, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    synod_server::fuzzing::grpc_request(data);
});
