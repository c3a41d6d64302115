//! Storage figures against the local emulators (`tools/storage/bench`):
//! save and restore of a ResNet-50 checkpoint (parameters and momentum
//! slots) in a bucket vs on local disk, and reading the CIFAR-10 training
//! files whole and through the read-ahead reader, and the input pipeline
//! (examples/s of two augmented views, every core) fed from a bucket vs
//! local disk: CIFAR-10, a folder of 400×300 JPEGs (224² views) and the
//! same JPEGs as TFDS TFRecord shards. Prints, asserts nothing.
//!
//! Expects the environment of `tools/storage/servers start` and
//! `SIMCLR_BENCH_BUCKET`.

use prost::Message;
use simclr::ckpt::{native, Tensor};
use simclr::data::folder::BadImages;
use simclr::data::pipeline::{Pipeline, PipelineConfig};
use simclr::data::{open_dataset, tfrecord, Dataset};
use simclr::nn::{variables, ModelConfig};
use simclr::storage::{self, Location, ReadAhead};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// Seconds to open the dataset and examples/s of the pretraining pipeline
/// (two views of `size`², blur when `size > 32`) over at least 3 s.
fn input_rate(dataset: &str, data_dir: Option<&Path>, size: usize) -> anyhow::Result<(f64, f64)> {
    let t0 = Instant::now();
    let ds: Arc<dyn Dataset> =
        Arc::from(open_dataset(dataset, data_dir, "train", BadImages::Fail)?);
    let open = t0.elapsed().as_secs_f64();
    let batch = if size > 32 { 32 } else { 256 };
    let mut cfg = PipelineConfig::pretrain(batch, 1, size, if size > 32 { 1.0 } else { 0.5 }, 1);
    cfg.blur = size > 32;
    let mut p = Pipeline::new(ds, cfg)?;
    p.next_batch()?;
    let t0 = Instant::now();
    let mut n = 0usize;
    while n < 5 || t0.elapsed().as_secs_f64() < 3.0 {
        p.next_batch()?;
        n += 1;
    }
    Ok((open, (n * batch) as f64 / t0.elapsed().as_secs_f64()))
}

/// `classes` × `per_class` textured 400×300 JPEGs: (class, name, bytes).
fn jpegs(classes: u32, per_class: u32) -> anyhow::Result<Vec<(u32, String, Vec<u8>)>> {
    let mut out = vec![];
    for c in 0..classes {
        for i in 0..per_class {
            let img = image::RgbImage::from_fn(400, 300, |x, y| {
                let v = x.wrapping_mul(31) ^ y.wrapping_mul(17) ^ (i * 13 + c * 101);
                image::Rgb([
                    (v % 251) as u8,
                    ((x / 3 + y / 5 + i) % 256) as u8,
                    ((x * y / 7 + c * 40) % 256) as u8,
                ])
            });
            let mut buf = std::io::Cursor::new(Vec::new());
            img.write_to(&mut buf, image::ImageFormat::Jpeg)?;
            out.push((c, format!("n{c:08}/{i:03}.jpg"), buf.into_inner()));
        }
    }
    Ok(out)
}

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
        let c = l.load()?;
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
    input_pipeline(&bucket, &cifar)?;
    Ok(())
}

fn input_pipeline(bucket: &str, cifar: &Path) -> anyhow::Result<()> {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("Input pipeline, pretraining views, {workers} workers (open s, examples/s):");
    let local = tempfile::tempdir()?;
    // CIFAR-10: the five training files, already uploaded above.
    let mut rows: Vec<(String, String, Option<PathBuf>, usize)> = vec![(
        "CIFAR-10 32²".into(),
        "cifar10".into(),
        Some(cifar.to_path_buf()),
        32,
    )];
    // 192 JPEGs as an image folder and as 4 TFDS shards.
    let imgs = jpegs(8, 24)?;
    let folder = local.path().join("jpegs");
    let tfds = local.path().join("tfds");
    let mut shards = vec![Vec::new(); 4];
    for (k, (c, name, bytes)) in imgs.iter().enumerate() {
        let p = folder.join("train").join(name);
        std::fs::create_dir_all(p.parent().unwrap_or(&folder))?;
        std::fs::write(&p, bytes)?;
        let ex = tfrecord::image_example(bytes, i64::from(*c), name);
        tfrecord::write_record(&mut shards[k % 4], &ex.encode_to_vec());
    }
    std::fs::create_dir_all(&tfds)?;
    for (s, b) in shards.iter().enumerate() {
        std::fs::write(
            tfds.join(tfrecord::tfds_shard_name("imagenet2012", "train", s, 4)),
            b,
        )?;
    }
    for s in ["gs", "s3"] {
        let root = Location::parse(&format!("{s}://{bucket}/input-{}", std::process::id()))?;
        storage::upload_dir(&folder, &root.join("jpegs"))?;
        storage::upload_dir(&tfds, &root.join("tfds"))?;
    }
    rows.push((
        "JPEG folder 224²".into(),
        folder.display().to_string(),
        None,
        224,
    ));
    rows.push((
        "TFDS shards 224²".into(),
        "imagenet2012".into(),
        Some(tfds.clone()),
        224,
    ));
    for (what, dataset, dir, size) in rows {
        let mut line = format!("  {what:17}");
        for s in ["local", "gs", "s3"] {
            let remote = |p: &str| format!("{s}://{bucket}/input-{}/{p}", std::process::id());
            let (ds, d): (String, Option<PathBuf>) = match (s, what.as_str()) {
                ("local", _) => (dataset.clone(), dir.clone()),
                (_, w) if w.starts_with("CIFAR") => (
                    dataset.clone(),
                    Some(PathBuf::from(format!("{s}://{bucket}/cifar"))),
                ),
                (_, w) if w.starts_with("JPEG") => (remote("jpegs"), None),
                _ => (dataset.clone(), Some(PathBuf::from(remote("tfds")))),
            };
            let (open, rate) = input_rate(&ds, d.as_deref(), size)?;
            line += &format!("  {s:>5} {open:5.2} s {rate:7.0}/s");
        }
        println!("{line}");
    }
    Ok(())
}
