//! Generates the Rust types of `proto/*.proto` with prost. The protos are
//! parsed by `protox`, so no system `protoc` is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = ["proto/xla.proto", "proto/tensor_bundle.proto"];
    for p in protos {
        println!("cargo:rerun-if-changed={p}");
    }
    let fds = protox::compile(protos, ["proto"])?;
    prost_build::Config::new().compile_fds(fds)?;
    Ok(())
}
