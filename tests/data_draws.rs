//! Rates of the random decisions of SimCLR's augmentation (SIMCLR.md §2.2,
//! §2.4, §2.5): flip p = 0.5, colour jitter p = 0.8, grayscale p = 0.2, blur
//! kept p = 0.5 per image. Tolerances are 5 standard deviations.

use simclr::data::augment::{self, AugmentConfig};
use simclr::data::rng::Rng;
use simclr::data::ImageU8;

fn colourful(h: usize, w: usize) -> ImageU8 {
    let data = (0..h * w)
        .flat_map(|p| {
            let (y, x) = (p / w, p % w);
            [
                (60 + 4 * x) as u8,
                (70 + 3 * y) as u8,
                (180 - 2 * x - y) as u8,
            ]
        })
        .collect();
    ImageU8 {
        height: h,
        width: w,
        data,
    }
}

fn assert_rate(what: &str, hits: usize, n: usize, p: f64) {
    let rate = hits as f64 / n as f64;
    let sd = (p * (1.0 - p) / n as f64).sqrt();
    assert!(
        (rate - p).abs() < 5.0 * sd,
        "{what}: rate {rate:.4} vs {p} (n = {n}, 5 sd = {:.4})",
        5.0 * sd
    );
}

#[test]
fn flip_happens_half_the_time() {
    let img = colourful(16, 16);
    let cfg = AugmentConfig {
        crop: false,
        color_distort: false,
        ..AugmentConfig::pretrain(16, 1.0)
    };
    let plain = img.to_f32();
    let mut flipped = plain.clone();
    augment::flip_left_right(&mut flipped);
    let n = 4000;
    let mut hits = 0;
    for i in 0..n {
        let out = augment::preprocess_for_train(&img, &cfg, &mut Rng::new(3, &[i])).unwrap();
        if out == flipped {
            hits += 1;
        } else {
            assert_eq!(out, plain);
        }
    }
    assert_rate("flip", hits, n as usize, 0.5);
}

#[test]
fn grayscale_and_jitter_rates_match_the_original() {
    let img = colourful(16, 16);
    let cfg = AugmentConfig {
        crop: false,
        flip: false,
        ..AugmentConfig::pretrain(16, 1.0)
    };
    let plain = img.to_f32();
    let n = 4000;
    let (mut gray, mut untouched) = (0, 0);
    for i in 0..n {
        let out = augment::preprocess_for_train(&img, &cfg, &mut Rng::new(4, &[i])).unwrap();
        if out
            .data
            .chunks_exact(3)
            .all(|p| p[0] == p[1] && p[1] == p[2])
        {
            gray += 1;
        }
        if out == plain {
            untouched += 1;
        }
    }
    assert_rate("grayscale", gray, n as usize, 0.2);
    // Unchanged only when neither jitter (0.8) nor grayscale (0.2) ran.
    assert_rate("no colour change", untouched, n as usize, 0.2 * 0.8);
}

#[test]
fn batch_blur_keeps_half_the_images_blurred_and_clips() {
    let (n, h, w) = (2000, 32, 32);
    let one = colourful(h, w).to_f32();
    let mut batch: Vec<f32> = (0..n).flat_map(|_| one.data.iter().copied()).collect();
    augment::batch_random_blur(&mut batch, n, h, w, 0.5, &mut Rng::new(9, &[0]));
    let per = h * w * 3;
    let changed = (0..n)
        .filter(|i| batch[i * per..(i + 1) * per] != one.data[..])
        .count();
    assert_rate("blur kept", changed, n, 0.5);
    assert!(batch.iter().all(|v| (0.0..=1.0).contains(v)));
    // All blurred images of one batch share one sigma.
    let blurred: Vec<&[f32]> = (0..n)
        .map(|i| &batch[i * per..(i + 1) * per])
        .filter(|b| *b != &one.data[..])
        .collect();
    assert!(
        blurred.windows(2).all(|p| p[0] == p[1]),
        "one sigma per batch and view"
    );
}

/// The training view built op by op from the separately tested operations
/// (crop, resize, flip, each colour op then a clip, grayscale), with the
/// draws in the documented order: crop sampler, flip, colour distortion.
fn train_view_op_by_op(img: &ImageU8, size: usize, rng: &mut Rng) -> Vec<f32> {
    use augment::ColorOp;
    let f = img.to_f32();
    let (mut out, _) =
        augment::random_crop_and_resize(&f, size, size, augment::ResizeVersion::Tf1, rng);
    if rng.bernoulli(0.5) {
        augment::flip_left_right(&mut out);
    }
    // Strength 1: magnitudes 0.8, 0.8, 0.8, 0.2, bounds formed in f32.
    let (m, hue) = (0.8f32 * 1.0, 0.2f32 * 1.0);
    if rng.bernoulli(0.8) {
        for op in rng.permutation(4) {
            let op = match op {
                0 => ColorOp::BrightnessMul(rng.uniform((1.0 - m).max(0.0), 1.0 + m)),
                1 => ColorOp::Contrast(rng.uniform(1.0 - m, 1.0 + m)),
                2 => ColorOp::Saturation(rng.uniform(1.0 - m, 1.0 + m)),
                _ => ColorOp::Hue(rng.uniform(-hue, hue)),
            };
            augment::color_ops_with_clip(&mut out, &[op]);
        }
    }
    if rng.bernoulli(0.2) {
        augment::to_grayscale(&mut out);
    }
    augment::clip01(&mut out);
    out.data
}

#[test]
fn fused_train_view_equals_the_op_by_op_composition_bit_for_bit() {
    let img = colourful(37, 53);
    let cfg = AugmentConfig::pretrain(24, 1.0);
    let mut into = vec![0f32; 24 * 24 * 3];
    for i in 0..200u64 {
        let want = train_view_op_by_op(&img, 24, &mut Rng::new(11, &[i]));
        let got = augment::preprocess_for_train(&img, &cfg, &mut Rng::new(11, &[i])).unwrap();
        assert!(
            got.data == want,
            "view {i} differs from the op-by-op composition"
        );
        augment::preprocess_for_train_into(&img, &cfg, &mut Rng::new(11, &[i]), &mut into).unwrap();
        assert!(into == want, "view {i} written in place differs");
    }
    let e = augment::preprocess_for_train_into(&img, &cfg, &mut Rng::new(0, &[0]), &mut [0.0; 5]);
    assert!(e.is_err(), "a buffer of the wrong length must be rejected");
}

#[test]
fn blur_step_equals_blur_then_clip() {
    let img = colourful(30, 20).to_f32();
    let (h, w) = (img.height, img.width);
    let mut scaled = img.clone();
    scaled.data.iter_mut().for_each(|v| *v = *v * 1.6 - 0.3);
    let filter = augment::blur_filter(augment::blur_kernel_size(h), 1.3);
    let mut want = augment::gaussian_blur(&scaled, augment::blur_kernel_size(h), 1.3);
    augment::clip01(&mut want);
    let mut got = scaled.data.clone();
    let mut scratch = vec![0f32; got.len()];
    augment::blur_one_of_batch(&mut got, h, w, &filter, true, &mut scratch);
    assert!(got == want.data, "blur + clip differs");
    let mut kept = scaled.data.clone();
    augment::blur_one_of_batch(&mut kept, h, w, &filter, false, &mut scratch);
    augment::clip01(&mut scaled);
    assert!(kept == scaled.data, "the unblurred image is only clipped");
}
