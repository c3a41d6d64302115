//! Prints serialized `HloModuleProto` files in XLA's HLO text syntax.
//!
//! `cargo run --example print_hlo -- FILE.pb [--replica-count N] [--no-metadata]`
//!
//! Works on any module: ours as lowered, or the optimized module a PJRT
//! plugin hands back.

use simclr::ir::{from_proto_bytes, to_text_with, PrintOptions};

fn main() -> anyhow::Result<()> {
    let mut opts = PrintOptions::default();
    let mut files = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--no-metadata" => opts.metadata = false,
            "--replica-count" => {
                opts.replica_count = args
                    .next()
                    .ok_or_else(|| anyhow::anyhow!("--replica-count needs a number"))?
                    .parse()?;
            }
            _ => files.push(a),
        }
    }
    if files.is_empty() {
        anyhow::bail!("usage: print_hlo FILE.pb [--replica-count N] [--no-metadata]");
    }
    for f in files {
        let bytes = std::fs::read(&f).map_err(|e| anyhow::anyhow!("{f}: {e}"))?;
        let module = from_proto_bytes(&bytes)?;
        print!("{}", to_text_with(&module, &opts)?);
    }
    Ok(())
}
