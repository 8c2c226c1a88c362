//! Generated gRPC types and services of handbereik's local API.
//!
//! The `.proto` files in `proto/handbereik/v1/` are the source of truth; this
//! crate only compiles them (build.rs, with protox) so that the node, the CLI
//! client and the Rust example share one definition.

#![allow(
    missing_docs,
    clippy::all,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

pub mod codec;

/// Version 1 of the API.
pub mod v1 {
    tonic::include_proto!("handbereik.v1");
}

/// The encoded `FileDescriptorSet`, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("handbereik_descriptor");
