//! The ImageNet-style host augmentation of one example, on one core: decode a
//! 400×300 JPEG, then two 224×224 training views (crop sampler, bicubic
//! resize, flip, colour jitter in random order, grayscale) each followed by
//! the blur step of the batch blur, exactly as the input pipeline does it.
//!
//! `cargo run --release --example augment_bench -- [N] [--device] [--baseline] [--dump F | --compare F]`
//!
//! `--device` times the host's share with `--augment_on_device` instead:
//! decode, crop and resize, and the drawing of the parameters the step
//! applies (flip, colour jitter, grayscale, blur kept or not).
//!
//! `--baseline` keeps the inner loops on their baseline x86-64 code, as on a
//! CPU without AVX2 (same views, see `simclr::data::pixels`).
//!
//! Prints examples/s over `N` examples (default 64) and a checksum of the
//! views. `--dump F` writes the views as raw little-endian f32; `--compare F`
//! reads such a file and prints the largest absolute difference, so a change
//! of the implementation can be checked against the previous one. Under
//! `valgrind --tool=callgrind` the instruction count is a load-independent
//! figure of the per-core cost.

use std::time::Instant;

use simclr::data::augment::{self, AugmentConfig};
use simclr::data::folder::decode_image;
use simclr::data::rng::Rng;

const FILES: u32 = 8;

fn jpeg(i: u32) -> anyhow::Result<Vec<u8>> {
    // The texture of `simclr bench --input`'s generated folder.
    let c = i % 3;
    let img = image::RgbImage::from_fn(400, 300, |x, y| {
        let v = x.wrapping_mul(31) ^ y.wrapping_mul(17) ^ (i * 13 + c * 101);
        image::Rgb([
            (v % 251) as u8,
            ((x / 3 + y / 5 + i) % 256) as u8,
            ((x * y / 7 + c * 40) % 256) as u8,
        ])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Jpeg)?;
    Ok(out.into_inner())
}

fn main() -> anyhow::Result<()> {
    let mut n = 64usize;
    let mut dump = None;
    let mut compare = None;
    let mut device = false;
    let mut baseline = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--dump" => dump = args.next(),
            "--compare" => compare = args.next(),
            "--device" => device = true,
            "--baseline" => baseline = true,
            s => n = s.parse()?,
        }
    }
    let files: Vec<Vec<u8>> = (0..FILES).map(jpeg).collect::<Result<_, _>>()?;
    let size = 224;
    let per = size * size * 3;
    let cfg = AugmentConfig::pretrain(size, 1.0);
    let filters: Vec<Vec<f32>> = (0..2u64)
        .map(|v| {
            let sigma = Rng::new(7, &[v]).uniform(0.1, 2.0);
            augment::blur_filter(augment::blur_kernel_size(size), sigma)
        })
        .collect();
    let mut scratch = vec![0f32; per];
    let mut views = vec![0f32; 2 * per];
    let mut params = [0f32; 2 * augment::DEVICE_PARAMS];
    let mut all = Vec::new();
    let mut checksum = 0f64;
    // Only the augmentation is timed, not the checksum and copies below.
    let mut busy = std::time::Duration::ZERO;
    let mut work = || -> anyhow::Result<()> {
        for i in 0..n {
            let t = Instant::now();
            let img = decode_image(&files[i % files.len()], "bench")?;
            for v in 0..2 {
                let out = &mut views[v * per..(v + 1) * per];
                let mut rng = Rng::new(1, &[i as u64, v as u64]);
                let keep = Rng::new(2, &[i as u64, v as u64]).bernoulli(0.5);
                if device {
                    let np = augment::DEVICE_PARAMS;
                    let p = &mut params[v * np..(v + 1) * np];
                    augment::preprocess_for_device_into(&img, &cfg, &mut rng, out, p)?;
                    p[10] = if keep { 1.0 } else { 0.0 };
                } else {
                    augment::preprocess_for_train_into(&img, &cfg, &mut rng, out)?;
                    augment::blur_one_of_batch(out, size, size, &filters[v], keep, &mut scratch);
                }
            }
            busy += t.elapsed();
            checksum += views.iter().map(|&x| x as f64).sum::<f64>();
            if dump.is_some() || compare.is_some() {
                all.extend_from_slice(&views);
            }
        }
        Ok(())
    };
    if baseline {
        simclr::data::pixels::baseline_only(work)?;
    } else {
        work()?;
    }
    let secs = busy.as_secs_f64();
    println!(
        "{n} examples (two 224x224 views, blur{}{}) in {secs:.3} s: {:.1} examples/s on one core; checksum {checksum:.6}",
        if device { ", host share of --augment_on_device" } else { "" },
        if baseline { ", baseline x86-64 code" } else { "" },
        n as f64 / secs
    );
    if let Some(p) = dump {
        let bytes: Vec<u8> = all.iter().flat_map(|x| x.to_le_bytes()).collect();
        std::fs::write(&p, bytes)?;
    }
    if let Some(p) = compare {
        let bytes = std::fs::read(&p)?;
        anyhow::ensure!(bytes.len() == all.len() * 4, "{p} holds a different run");
        let max = bytes
            .chunks_exact(4)
            .zip(&all)
            .map(|(b, &x)| (f32::from_le_bytes([b[0], b[1], b[2], b[3]]) - x).abs())
            .fold(0f32, f32::max);
        println!("largest absolute difference from {p}: {max:e}");
    }
    Ok(())
}
