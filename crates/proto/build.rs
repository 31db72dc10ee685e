//! Compiles the .proto files under `proto/` with protox (a pure-Rust protobuf
//! compiler, so no system `protoc` is needed) and generates prost messages plus
//! tonic clients and servers from the resulting descriptor set. The encoded
//! descriptor set is also written to OUT_DIR for gRPC reflection.

use std::path::PathBuf;

/// Every file we compile; imports are resolved relative to `proto/`.
const PROTOS: &[&str] = &[
    "mvccpb/kv.proto",
    "authpb/auth.proto",
    "etcdserverpb/rpc.proto",
    "v3lockpb/v3lock.proto",
    "v3electionpb/v3election.proto",
    "synodpb/ranges.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    println!("cargo:rerun-if-changed=proto");
    for file in PROTOS {
        println!("cargo:rerun-if-changed=proto/{file}");
    }

    let mut compiler = protox::Compiler::new(["proto"])?;
    compiler.include_source_info(true).include_imports(true);
    compiler.open_files(PROTOS)?;
    std::fs::write(
        out_dir.join("synod_descriptor.bin"),
        compiler.encode_file_descriptor_set(),
    )?;

    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(compiler.file_descriptor_set())?;
    Ok(())
}
