//! Generates the keyrack.v1 types, client and server with the vendored protoc, so building
//! needs no protoc installed on the machine.

use std::{env, error::Error, path::PathBuf};

fn main() -> Result<(), Box<dyn Error>> {
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    let proto_root = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let proto = proto_root.join("keyrack/v1/key_service.proto");

    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);

    tonic_prost_build::configure()
        .file_descriptor_set_path(out_dir.join("keyrack_descriptor.bin"))
        .compile_with_config(
            config,
            &[proto],
            &[proto_root, protoc_bin_vendored::include_path()?],
        )?;
    println!("cargo:rerun-if-changed=../../proto");
    Ok(())
}
