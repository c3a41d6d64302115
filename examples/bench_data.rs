//! Input-pipeline throughput (SIMCLR.md §2): prints augmented images per
//! second for
//! 1. CIFAR-10 pretraining (32×32, two views, colour strength 0.5), read from
//!    `SIMCLR_DATA_DIR` or `../shared/data/cifar10`;
//! 2. a folder of 224×224-target JPEGs generated into a temp dir
//!    (two views, colour strength 1.0, host blur on);
//! 3. Fashion-MNIST eval if `SIMCLR_FASHION_DIR` (or Debian's
//!    `dataset-fashion-mnist`) is present.
//!
//! Usage: `cargo run --release --example bench_data [-- STEPS [WORKERS]]`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use simclr::data::folder::{BadImages, ImageFolder};
use simclr::data::pipeline::{Pipeline, PipelineConfig};
use simclr::data::{self, Dataset, Split};

fn cifar_dir() -> Option<PathBuf> {
    if let Ok(d) = std::env::var("SIMCLR_DATA_DIR") {
        return Some(PathBuf::from(d));
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    ["../shared/data/cifar10", "../../shared/data/cifar10"]
        .iter()
        .map(|p| root.join(p))
        .find(|p| p.is_dir())
}

fn bench(
    label: &str,
    ds: Arc<dyn Dataset>,
    cfg: PipelineConfig,
    steps: usize,
) -> Result<(), data::Error> {
    let b = cfg.global_batch;
    let views = cfg.num_views;
    let mut p = Pipeline::new(ds, cfg)?;
    // Warm-up: one batch (fills caches, starts all workers).
    p.next_batch()?;
    let t0 = Instant::now();
    let mut n = 0usize;
    for _ in 0..steps {
        match p.next_batch()? {
            Some(_) => n += 1,
            None => break,
        }
    }
    let dt = t0.elapsed().as_secs_f64();
    let s = p.stats();
    println!(
        "{label}: {n} batches of {b}x{views} views in {dt:.2}s = {:.0} images/s ({:.1} steps/s); pipeline's own figure {:.0} images/s",
        (n * b * views) as f64 / dt,
        n as f64 / dt,
        s.images_per_s
    );
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let steps: usize = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(10);
    let workers: usize = args
        .get(2)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        });
    println!("workers: {workers}");

    match cifar_dir() {
        Some(dir) => {
            let ds: Arc<dyn Dataset> = Arc::new(data::cifar::Cifar10::open(&dir, Split::Train)?);
            let mut cfg = PipelineConfig::pretrain(512, 1, 32, 0.5, 0);
            cfg.num_workers = workers;
            bench("cifar10 pretrain 32x32", ds, cfg, steps)?;
        }
        None => println!("cifar10: skipped (set SIMCLR_DATA_DIR)"),
    }

    let tmp = std::env::temp_dir().join(format!("simclr-bench-jpeg-{}", std::process::id()));
    for class in 0..4 {
        let d = tmp.join("train").join(format!("class{class}"));
        std::fs::create_dir_all(&d)?;
        for i in 0..32u32 {
            let img = image::RgbImage::from_fn(300, 256, |x, y| {
                image::Rgb([
                    (x + i * 7) as u8,
                    (y * 2 + class * 40) as u8,
                    ((x ^ y) + i) as u8,
                ])
            });
            img.save(d.join(format!("{i:03}.jpg")))?;
        }
    }
    let ds: Arc<dyn Dataset> = Arc::new(ImageFolder::open(&tmp, Split::Train, BadImages::Fail)?);
    let mut cfg = PipelineConfig::pretrain(64, 1, 224, 1.0, 0);
    cfg.num_workers = workers;
    cfg.blur = true;
    let r = bench("jpeg folder 300x256 -> 224x224 (+blur)", ds, cfg, steps);
    let _ = std::fs::remove_dir_all(&tmp);
    r?;

    let fdir = std::env::var("SIMCLR_FASHION_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(data::idx::DEBIAN_DIR));
    if fdir.is_dir() {
        let ds: Arc<dyn Dataset> = Arc::new(data::idx::FashionMnist::open(&fdir, Split::Eval)?);
        let mut cfg = PipelineConfig::eval(500, 1, 28);
        cfg.num_workers = workers;
        bench("fashion_mnist eval 28x28", ds, cfg, steps)?;
    } else {
        println!("fashion_mnist: skipped (set SIMCLR_FASHION_DIR)");
    }
    Ok(())
}
