//! Writes the Rust types of every `proto/*.proto` (prost) into
//! `src/generated/`, one file per protobuf package. The protos are parsed by
//! `protox`, so no system `protoc` is needed.
//!
//!     simclr-protos REPO_ROOT

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::args().nth(1).ok_or("usage: simclr-protos REPO_ROOT")?);
    let proto_dir = root.join("proto");
    let mut protos: Vec<PathBuf> = std::fs::read_dir(&proto_dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "proto"))
        .collect();
    protos.sort();
    let out = root.join("src/generated");
    std::fs::create_dir_all(&out)?;
    let fds = protox::compile(&protos, [&proto_dir])?;
    prost_build::Config::new().out_dir(&out).compile_fds(fds)?;
    Ok(())
}
