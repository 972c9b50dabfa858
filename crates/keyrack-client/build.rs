//! Generates the keyrack.v1 messages and the KeyService client from this crate's own copy of
//! the proto (`proto/`), with the vendored protoc: building reads nothing outside the crate and
//! needs no protoc on the machine. The copy equals the repository's `proto/` byte for byte
//! (`tests/it/client_layer.rs` checks it).

use std::{env, error::Error, path::PathBuf};

fn main() -> Result<(), Box<dyn Error>> {
    let proto_root = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?).join("proto");
    let proto = proto_root.join("keyrack/v1/key_service.proto");

    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);

    tonic_prost_build::configure()
        .build_server(false)
        .compile_with_config(
            config,
            &[proto],
            &[proto_root, protoc_bin_vendored::include_path()?],
        )?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
