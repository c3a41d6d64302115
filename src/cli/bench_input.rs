//! `simclr bench --input`: the host input pipeline that feeds the benchmarked
//! step, timed on its own (every worker thread, no step running), so its
//! examples/s stand next to the examples/s the step consumes.
//!
//! * `cifar_r18`: CIFAR-10's training split (`--data_dir`, default
//!   `../shared/data/cifar10`), two 32×32 views, colour strength 0.5, no blur
//!   (the original README's CIFAR recipe).
//! * `r50_224`: an image folder (`--data_dir`) or, without one, a generated
//!   folder of 400×300 JPEGs; two 224×224 views, colour strength 1.0, blur
//!   (the ImageNet recipe).
//!
//! Both counts are examples (each made of two views) per second.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{anyhow, Context};
use serde_json::json;

use super::bench::{BenchArgs, BenchModel};
use crate::data::cifar::Cifar10;
use crate::data::folder::{BadImages, ImageFolder};
use crate::data::pipeline::{Pipeline, PipelineConfig};
use crate::data::{Dataset, Split};

/// CIFAR-10 folders tried when `--data_dir` is not given.
const CIFAR_DEFAULTS: [&str; 2] = ["../shared/data/cifar10", "shared/data/cifar10"];

/// Times `args.input_batches` batches of `batch` examples of the pipeline
/// that matches `args.config`; returns the `"input"` JSON line (without the
/// step's figure, which the caller adds).
pub fn measure(args: &BenchArgs, batch: i64) -> anyhow::Result<serde_json::Value> {
    let global_batch =
        usize::try_from(batch).map_err(|_| anyhow!("--batch must be positive, got {batch}"))?;
    let workers = args.input_workers.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    // A generated folder lives as long as this guard.
    let mut generated: Option<RemoveOnDrop> = None;
    let (dataset, mut cfg, source): (Arc<dyn Dataset>, PipelineConfig, String) = match args.config {
        BenchModel::CifarR18 | BenchModel::Tiny => {
            let dir = match &args.data_dir {
                Some(d) => d.clone(),
                None => CIFAR_DEFAULTS
                    .iter()
                    .map(PathBuf::from)
                    .find(|p| p.is_dir())
                    .ok_or_else(|| {
                        anyhow!(
                            "--input needs CIFAR-10: pass --data_dir=DIR (the folder holding \
                             cifar-10-batches-bin/), none of {CIFAR_DEFAULTS:?} exists here"
                        )
                    })?,
            };
            let ds = Cifar10::open(&dir, Split::Train)
                .with_context(|| format!("opening CIFAR-10 in {}", dir.display()))?;
            let size = if args.config == BenchModel::Tiny {
                8
            } else {
                32
            };
            let cfg = PipelineConfig::pretrain(global_batch, 1, size, 0.5, args.seed);
            (
                Arc::new(ds),
                cfg,
                format!("cifar10 train ({})", dir.display()),
            )
        }
        BenchModel::R50At224 => {
            let root = match &args.data_dir {
                Some(d) => d.clone(),
                None => {
                    let tmp = RemoveOnDrop(std::env::temp_dir().join(format!(
                        "simclr-bench-jpeg-{}-{:?}",
                        std::process::id(),
                        std::thread::current().id()
                    )));
                    let p = tmp.0.clone();
                    generated = Some(tmp);
                    write_jpegs(&p, 8, 24)?;
                    p
                }
            };
            let ds = ImageFolder::open(&root, Split::Train, BadImages::Fail)
                .with_context(|| format!("opening the image folder {}", root.display()))?;
            let mut cfg = PipelineConfig::pretrain(global_batch, 1, 224, 1.0, args.seed);
            cfg.blur = true;
            let what = if generated.is_some() {
                "generated 400x300 JPEGs".to_string()
            } else {
                format!("image folder {}", root.display())
            };
            (Arc::new(ds), cfg, what)
        }
    };
    cfg.num_workers = workers;
    cfg.device_augment = args.device_augment(batch)?.map(|a| a.transfer);
    let views = cfg.num_views;
    let cfg_augment = match cfg.device_augment {
        Some(t) => format!("device ({})", t.name()),
        None => "host".to_string(),
    };
    let mut pipeline = Pipeline::new(dataset, cfg).context("starting the input pipeline")?;
    // One untimed batch starts every worker and fills the file caches.
    pipeline.next_batch()?;
    let t = Instant::now();
    let mut batches = 0usize;
    // At least `input_batches` batches and `input_seconds`, so the batches
    // prefetched during the warm-up weigh little.
    while batches < args.input_batches.max(1) || t.elapsed().as_secs_f64() < args.input_seconds {
        // Handed back as the trainer does once a batch is on the device.
        match pipeline.next_batch()? {
            Some(b) => pipeline.recycle(b),
            None => break,
        }
        batches += 1;
    }
    let seconds = t.elapsed().as_secs_f64();
    drop(pipeline);
    drop(generated);
    let examples_per_s = (batches * global_batch) as f64 / seconds;
    Ok(json!({
        "event": "input",
        "side": "simclr",
        "config": args.config.name(),
        "batch": batch,
        "views": views,
        "source": source,
        "workers": workers,
        "augment": cfg_augment,
        "examples_per_s_per_core": examples_per_s / workers as f64,
        "batches": batches,
        "seconds": seconds,
        "examples_per_s": examples_per_s,
        "views_per_s": examples_per_s * views as f64,
    }))
}

/// A folder removed (with its contents) when dropped.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `classes` class folders of `per_class` 400×300 JPEGs with some texture
/// (decoding cost like a photograph's, not a flat colour's).
fn write_jpegs(root: &Path, classes: u32, per_class: u32) -> anyhow::Result<()> {
    for c in 0..classes {
        let dir = root.join("train").join(format!("n{c:08}"));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        for i in 0..per_class {
            let img = image::RgbImage::from_fn(400, 300, |x, y| {
                let v = x.wrapping_mul(31) ^ y.wrapping_mul(17) ^ (i * 13 + c * 101);
                image::Rgb([
                    (v % 251) as u8,
                    ((x / 3 + y / 5 + i) % 256) as u8,
                    ((x * y / 7 + c * 40) % 256) as u8,
                ])
            });
            let path = dir.join(format!("{i:03}.jpg"));
            img.save(&path)
                .with_context(|| format!("writing {}", path.display()))?;
        }
    }
    Ok(())
}
