//! Storage figures against the local emulators (`tools/storage/bench`):
//! save and restore of a ResNet-50 checkpoint (parameters and momentum
//! slots) in a bucket vs on local disk, and reading the CIFAR-10 training
//! files whole and through the read-ahead reader. Prints, asserts nothing.
//!
//! Expects the environment of `tools/storage/servers start` and
//! `SIMCLR_BENCH_BUCKET`.

use simclr::ckpt::{native, Tensor};
use simclr::nn::{variables, ModelConfig};
use simclr::storage::{self, Location, ReadAhead};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;
use std::time::Instant;

fn main() -> anyhow::Result<()> {
    let bucket = std::env::var("SIMCLR_BENCH_BUCKET")?;
    let cfg = ModelConfig {
        resnet_depth: 50,
        image_size: 224,
        num_classes: 1000,
        ..ModelConfig::default()
    };
    let mut t = BTreeMap::new();
    for v in variables(&cfg)? {
        let dims: Vec<u64> = v.shape.dims.iter().map(|&d| d as u64).collect();
        let vals = vec![0.5f32; v.shape.numel()];
        t.insert(v.name.clone(), Tensor::from_f32(&dims, &vals)?);
        t.insert(
            format!("{}/Momentum", v.name),
            Tensor::from_f32(&dims, &vals)?,
        );
    }
    let bytes: usize = t.values().map(|x| x.bytes.len()).sum();
    println!(
        "ResNet-50 checkpoint: {} tensors, {:.0} MB",
        t.len(),
        bytes as f64 / 1e6
    );
    let local = tempfile::tempdir()?;
    let meta = serde_json::json!({});
    let mut dirs = vec![("local disk".to_string(), local.path().to_path_buf())];
    for s in ["gs", "s3"] {
        dirs.push((
            format!("{s}:// emulator"),
            PathBuf::from(format!("{s}://{bucket}/bench-{}", std::process::id())),
        ));
    }
    for (what, dir) in &dirs {
        let t0 = Instant::now();
        native::save(dir, 1, &t, &meta, 1)?;
        let save = t0.elapsed().as_secs_f64();
        let t0 = Instant::now();
        let l = native::latest(dir)?.ok_or_else(|| anyhow::anyhow!("no checkpoint"))?;
        let c = native::load(&l.path)?;
        let restore = t0.elapsed().as_secs_f64();
        assert_eq!(c.tensors.len(), t.len());
        println!("  {what:16} save {save:6.2} s   restore (verify + load) {restore:6.2} s");
    }
    let cifar = std::env::var("SIMCLR_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/cifar10")
        })
        .join("cifar-10-batches-bin");
    let files: Vec<String> = (1..=5).map(|i| format!("data_batch_{i}.bin")).collect();
    let mut total = 0usize;
    for s in ["gs", "s3"] {
        for f in &files {
            let b = std::fs::read(cifar.join(f))?;
            total = b.len() * files.len();
            storage::put(&Location::parse(&format!("{s}://{bucket}/cifar/{f}"))?, b)?;
        }
    }
    println!("CIFAR-10 training files ({:.0} MB):", total as f64 / 1e6);
    let t0 = Instant::now();
    for f in &files {
        std::hint::black_box(std::fs::read(cifar.join(f))?);
    }
    let base = t0.elapsed().as_secs_f64();
    println!(
        "  local disk       whole files {:7.0} MB/s",
        total as f64 / 1e6 / base
    );
    for s in ["gs", "s3"] {
        let t0 = Instant::now();
        for f in &files {
            std::hint::black_box(storage::read(&Location::parse(&format!(
                "{s}://{bucket}/cifar/{f}"
            ))?)?);
        }
        let whole = t0.elapsed().as_secs_f64();
        let t0 = Instant::now();
        for f in &files {
            let mut r = storage::open_reader(
                &Location::parse(&format!("{s}://{bucket}/cifar/{f}"))?,
                ReadAhead::default(),
            )?;
            let mut v = vec![];
            r.read_to_end(&mut v)?;
            std::hint::black_box(v);
        }
        let ahead = t0.elapsed().as_secs_f64();
        println!(
            "  {s}:// emulator  whole objects {:7.0} MB/s, read-ahead reader {:7.0} MB/s",
            total as f64 / 1e6 / whole,
            total as f64 / 1e6 / ahead
        );
    }
    Ok(())
}
