//! The kernels of [`super::pixels`] as the augmentation uses them (blocked,
//! planar, vectorised, AVX2 or baseline) against the plain per-pixel,
//! per-operation code: equal value for value, on both code paths.

use super::*;
use crate::data::pixels::baseline_only;
use proptest::prelude::{
    prop, prop_assert_eq, prop_oneof, proptest, Just, ProptestConfig, Strategy,
};

/// Runs `f` on the AVX2 path (where the CPU has it) and on the baseline path.
fn both_paths<T: PartialEq + std::fmt::Debug>(f: impl Fn() -> T) -> T {
    let fast = f();
    let baseline = baseline_only(&f);
    assert_eq!(fast, baseline, "the AVX2 and baseline paths differ");
    fast
}

/// The first position where two buffers differ (compared as numbers, so
/// 0.0 and -0.0 are equal), with both values.
fn first_difference(a: &[f32], b: &[f32]) -> Option<(usize, f32, f32)> {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .enumerate()
        .find(|(_, (x, y))| x != y)
        .map(|(i, (x, y))| (i, *x, *y))
}

/// Pixel values that exercise every branch of the HSV code: overshoot below
/// 0 and above 1 (resized views), byte values, gray pixels and ties.
fn pixels_strategy(max: usize) -> impl Strategy<Value = Vec<f32>> {
    let value = prop_oneof![
        -0.3f32..1.3,
        (0u8..=255).prop_map(|v| v as f32 / 255.0),
        Just(0.0f32),
        Just(1.0f32),
    ];
    let pixel = prop_oneof![
        4 => [value.clone(), value.clone(), value.clone()].prop_map(|p| p.to_vec()),
        1 => value.clone().prop_map(|v| vec![v, v, v]),
        1 => (value.clone(), value.clone()).prop_map(|(a, b)| vec![a, a, b]),
        1 => (value.clone(), value.clone()).prop_map(|(a, b)| vec![a, b, b]),
        1 => (value.clone(), value).prop_map(|(a, b)| vec![b, a, b]),
    ];
    prop::collection::vec(pixel, 1..max).prop_map(|px| px.concat())
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Mul(f32),
    Add(f32),
    Contrast(f32),
    Saturation(f32),
    Hue(f32),
    Gray,
    Clip,
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0.0f32..2.0).prop_map(Op::Mul),
        (-0.8f32..0.8).prop_map(Op::Add),
        (0.2f32..1.8).prop_map(Op::Contrast),
        (0.0f32..2.0).prop_map(Op::Saturation),
        (-0.5f32..0.5).prop_map(Op::Hue),
        // Shifts of a turn or more take TF's wrap-around loops.
        (-3.0f32..3.0).prop_map(Op::Hue),
        Just(Op::Gray),
        Just(Op::Clip),
    ]
}

/// The colour steps one operation at a time, with the per-pixel functions.
fn per_op_reference(img: &mut ImageF32, ops: &[Op]) {
    for &op in ops {
        match op {
            Op::Mul(f) => apply_color_op(img, ColorOp::BrightnessMul(f)),
            Op::Add(d) => apply_color_op(img, ColorOp::BrightnessAdd(d)),
            Op::Contrast(f) => apply_color_op(img, ColorOp::Contrast(f)),
            Op::Saturation(f) => apply_color_op(img, ColorOp::Saturation(f)),
            Op::Hue(d) => apply_color_op(img, ColorOp::Hue(d)),
            Op::Gray => to_grayscale(img),
            Op::Clip => {}
        }
        if !matches!(op, Op::Gray) {
            clip01(img);
        }
    }
}

fn steps_of(ops: &[Op]) -> Vec<PixelStep> {
    ops.iter()
        .map(|&op| match op {
            Op::Mul(f) => PixelStep::Mul(f),
            Op::Add(d) => PixelStep::Add(d),
            Op::Contrast(f) => PixelStep::Contrast(f, [0.0; 3]),
            Op::Saturation(f) => PixelStep::Saturation(f),
            Op::Hue(d) => PixelStep::Hue(d),
            Op::Gray => PixelStep::Gray,
            Op::Clip => PixelStep::Clip,
        })
        .collect()
}

/// One pass of the separable blur as a direct sum along rows
/// (`horizontal`) or columns: taps in filter order, the ones outside the
/// image skipped.
fn blur_pass(data: &[f32], h: usize, w: usize, filter: &[f32], horizontal: bool) -> Vec<f32> {
    let r = (filter.len() / 2) as i64;
    let mut out = vec![0f32; data.len()];
    for y in 0..h {
        for x in 0..w {
            for c in 0..3 {
                let mut acc = 0f32;
                for (k, &f) in filter.iter().enumerate() {
                    let (yy, xx) = if horizontal {
                        (y as i64, x as i64 + k as i64 - r)
                    } else {
                        (y as i64 + k as i64 - r, x as i64)
                    };
                    if (0..h as i64).contains(&yy) && (0..w as i64).contains(&xx) {
                        acc += data[((yy as usize) * w + xx as usize) * 3 + c] * f;
                    }
                }
                out[(y * w + x) * 3 + c] = acc;
            }
        }
    }
    out
}

/// The separable blur, rows then columns, clipped after when `clip`.
fn blur_reference(data: &[f32], h: usize, w: usize, filter: &[f32], clip: bool) -> Vec<f32> {
    let mut out = blur_pass(&blur_pass(data, h, w, filter, true), h, w, filter, false);
    if clip {
        out.iter_mut().for_each(|v| *v = v.clamp(0.0, 1.0));
    }
    out
}

/// TF's bicubic resize from its taps, index by index: vertical taps per
/// input column, then horizontal taps per output pixel (mirrored when
/// `flip`), each a left-to-right sum of four products.
fn resize_reference(
    img: &ImageF32,
    out_h: usize,
    out_w: usize,
    version: ResizeVersion,
    flip: bool,
) -> Vec<f32> {
    let xt = axis_taps(version, img.width, out_w);
    let yt = axis_taps(version, img.height, out_h);
    let v = |y: usize, x: usize, c: usize| img.data[(y * img.width + x) * 3 + c];
    let mut out = vec![0f32; out_h * out_w * 3];
    let mut col = vec![0f32; img.width * 3];
    for (y, ty) in yt.iter().enumerate() {
        for x in 0..img.width {
            for c in 0..3 {
                col[x * 3 + c] = v(ty.idx[0], x, c) * ty.w[0]
                    + v(ty.idx[1], x, c) * ty.w[1]
                    + v(ty.idx[2], x, c) * ty.w[2]
                    + v(ty.idx[3], x, c) * ty.w[3];
            }
        }
        for (x, tx) in xt.iter().enumerate() {
            let dst = if flip { out_w - 1 - x } else { x };
            for c in 0..3 {
                out[(y * out_w + dst) * 3 + c] = col[tx.idx[0] * 3 + c] * tx.w[0]
                    + col[tx.idx[1] * 3 + c] * tx.w[1]
                    + col[tx.idx[2] * 3 + c] * tx.w[2]
                    + col[tx.idx[3] * 3 + c] * tx.w[3];
            }
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Colour steps over blocks of planar pixels equal the per-operation
    /// functions (which the TF fixtures check), for partial and whole blocks.
    #[test]
    fn colour_steps_equal_the_per_operation_functions(
        data in pixels_strategy(3 * BLOCK_PIXELS / 2 + 40),
        ops in prop::collection::vec(op_strategy(), 0..7),
    ) {
        let n = data.len() / 3;
        let mut want = ImageF32 { height: 1, width: n, data: data.clone() };
        per_op_reference(&mut want, &ops);
        let got = both_paths(|| {
            let mut got = data.clone();
            apply_steps(&mut got, n, &mut steps_of(&ops));
            got
        });
        prop_assert_eq!(first_difference(&got, &want.data), None, "ops {:?}", ops);
    }

    /// The register-blocked blur equals the direct sum, with and without the
    /// clip, for kernels wider than the image too.
    #[test]
    fn blur_equals_the_direct_sum(
        h in 1usize..24,
        w in 1usize..40,
        kernel in 0usize..14,
        sigma in 0.1f32..3.0,
        clip: bool,
        seed: u64,
    ) {
        let mut rng = Rng::new(seed, &[]);
        let data: Vec<f32> = (0..h * w * 3).map(|_| rng.uniform(-0.2, 1.2)).collect();
        let filter = blur_filter(kernel, sigma);
        let want = blur_reference(&data, h, w, &filter, clip);
        let got = both_paths(|| {
            let mut got = data.clone();
            let mut scratch = vec![0f32; got.len()];
            blur_in_place(&mut got, h, w, &filter, &mut scratch, clip);
            got
        });
        prop_assert_eq!(first_difference(&got, &want), None);
    }

    /// The resize with padded, consecutive horizontal taps equals TF's
    /// clamped taps, down- and upsampling, both kernels, flipped or not, from
    /// a float image and from a byte image's crop window.
    #[test]
    fn resize_equals_the_clamped_taps(
        in_h in 1usize..40,
        in_w in 1usize..40,
        out_h in 1usize..40,
        out_w in 1usize..40,
        tf2: bool,
        flip: bool,
        seed: u64,
    ) {
        let version = if tf2 { ResizeVersion::Tf2 } else { ResizeVersion::Tf1 };
        let mut rng = Rng::new(seed, &[]);
        let bytes: Vec<u8> = (0..(in_h + 3) * (in_w + 2) * 3)
            .map(|_| (rng.uniform(0.0, 256.0) as u32).min(255) as u8)
            .collect();
        let img = ImageU8 { height: in_h + 3, width: in_w + 2, data: bytes };
        let win = CropWindow { y: 2, x: 1, height: in_h, width: in_w, fallback: false };
        let window = crop(&img.to_f32(), &win);

        let want = resize_reference(&window, out_h, out_w, version, false);
        let got = both_paths(|| resize_bicubic(&window, out_h, out_w, version).data);
        prop_assert_eq!(first_difference(&got, &want), None);

        let want = resize_reference(&window, out_h, out_w, version, flip);
        let got = both_paths(|| {
            let mut out = vec![0f32; out_h * out_w * 3];
            crop_resize_u8(&img, &win, out_h, out_w, version, flip, &mut out);
            out
        });
        prop_assert_eq!(first_difference(&got, &want), None);
    }
}

/// A whole training view (crop, resize, flip, colour, clip, blur) is the
/// same on both code paths.
#[test]
fn training_views_are_the_same_without_avx2() -> Result<(), Error> {
    let mut rng = Rng::new(5, &[]);
    let img = ImageU8 {
        height: 61,
        width: 83,
        data: (0..61 * 83 * 3)
            .map(|_| (rng.uniform(0.0, 256.0) as u32).min(255) as u8)
            .collect(),
    };
    let cfg = AugmentConfig::pretrain(48, 1.0);
    for view in 0..16u64 {
        both_paths(|| -> Result<Vec<u32>, String> {
            let mut out = vec![0f32; 48 * 48 * 3];
            let mut rng = Rng::new(9, &[view]);
            preprocess_for_train_into(&img, &cfg, &mut rng, &mut out).map_err(|e| e.to_string())?;
            let filter = blur_filter(blur_kernel_size(48), 1.3);
            let mut scratch = vec![0f32; out.len()];
            blur_one_of_batch(&mut out, 48, 48, &filter, true, &mut scratch);
            Ok(out.iter().map(|v| v.to_bits()).collect())
        })
        .map_err(Error::Config)?;
    }
    Ok(())
}

#[test]
fn quantize_u8_rounds_ties_to_even_like_round_ties_even() {
    let reference = |v: f32| (v.clamp(0.0, 1.0) * 255.0).round_ties_even() as u8;
    // Every tie k + 1/2 and its neighbours, the ends, and what gets clipped.
    let mut values = vec![
        f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        -0.0,
        0.0,
        -1.0,
        2.0,
    ];
    for k in 0..=510u32 {
        let t = k as f32 / 510.0;
        values.extend([t, t.next_up(), t.next_down()]);
    }
    // And a sweep of [−0.1, 1.1] two million steps fine.
    values.extend((0..2_000_000).map(|i| -0.1 + 1.2 * i as f32 / 2e6));
    for v in values {
        assert_eq!(quantize_u8(v), reference(v), "{v:e}");
    }
}
