//! Compiles the Midge contract without a system `protoc`: `protox` parses the `.proto` files into
//! a `FileDescriptorSet`, `tonic-prost-build` generates the Rust, and the encoded descriptor set
//! is written next to it for gRPC server reflection.

use std::{env, fs, path::PathBuf};

use protox::prost::Message as _;

/// The contract's files, relative to this crate's root (which is also the include root).
const PROTOS: &[&str] = &[
    "midge/plugin/v1/common.proto",
    "midge/plugin/v1/plugin.proto",
    "midge/plugin/v1/events.proto",
    "midge/plugin/v1/auth.proto",
    "midge/plugin/v1/topic.proto",
    "midge/admin/v1/admin.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }
    // Keeps source info (the comments become rustdoc and are visible through reflection) and
    // the imported well-known types, so reflection clients can resolve every dependency.
    let fds = protox::compile(PROTOS, ["."])?;

    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(out_dir.join("midge_descriptor.bin"), fds.encode_to_vec())?;

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
