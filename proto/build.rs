//! Compiles `handbereik/v1/*.proto` with protox (no system protoc) into tonic
//! code, and writes the encoded descriptor set for gRPC server reflection.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "handbereik/v1/notifications.proto",
        "handbereik/v1/node.proto",
        "handbereik/v1/registry.proto",
        "handbereik/v1/inspections.proto",
        "handbereik/v1/audit.proto",
        "handbereik/v1/source.proto",
        "handbereik/v1/witness.proto",
    ];
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=handbereik/v1");
    for file in files {
        println!("cargo:rerun-if-changed={file}");
    }
    let descriptors = protox::compile(files, ["."])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("handbereik_descriptor.bin"),
        prost::Message::encode_to_vec(&descriptors),
    )?;
    tonic_prost_build::configure()
        // Bad bytes from a caller are INVALID_ARGUMENT, not INTERNAL.
        .codec_path("crate::codec::StrictCodec")
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}
