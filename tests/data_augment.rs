//! Every fixture in `shared/fixtures/tf-reference/augment/` reproduced to
//! 1e-5 (outputs of the original TensorFlow functions, SIMCLR.md §2.3–§2.6).
//! The cases are driven by `augment.json` (fixed draws, crop windows).

use crate::data_common;

use serde_json::Value;
use simclr::data::augment::{self, AugmentConfig, ColorOp, ResizeVersion};
use simclr::data::{ImageF32, ImageU8};
use simclr::npy;

const TOL: f32 = 1e-5;

/// A fixture suffix and the colour op it stores.
type OpCase = (&'static str, fn(f32) -> ColorOp);

fn load(name: &str) -> npy::NpyArray {
    let p = data_common::augment_dir().join(format!("{name}.npy"));
    npy::read(&p).unwrap_or_else(|e| panic!("{e}"))
}

fn load_f32(name: &str) -> ImageF32 {
    let a = load(name);
    assert_eq!(a.shape.len(), 3, "{name}: expected HWC, got {:?}", a.shape);
    ImageF32 {
        height: a.shape[0],
        width: a.shape[1],
        data: a.as_f32().unwrap().to_vec(),
    }
}

fn load_u8(name: &str) -> ImageU8 {
    let a = load(name);
    ImageU8 {
        height: a.shape[0],
        width: a.shape[1],
        data: a.as_u8().unwrap().to_vec(),
    }
}

fn json() -> Value {
    let p = data_common::augment_dir().join("augment.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// Asserts `got` matches fixture `name` to `TOL`, reporting the worst pixel.
fn check(name: &str, got: &ImageF32) {
    let want = load_f32(name);
    assert_eq!(
        (got.height, got.width),
        (want.height, want.width),
        "{name}: shape"
    );
    let (mut worst, mut at) = (0f32, 0usize);
    for (i, (a, b)) in got.data.iter().zip(&want.data).enumerate() {
        let d = (a - b).abs();
        if d > worst || d.is_nan() {
            worst = d;
            at = i;
        }
    }
    let (y, x, c) = (at / 3 / want.width, (at / 3) % want.width, at % 3);
    assert!(
        worst <= TOL,
        "{name}: max |diff| {worst:e} > {TOL:e} at (y={y}, x={x}, c={c}): got {} want {}",
        got.data[at],
        want.data[at]
    );
}

fn draw_values(j: &Value, name: &str) -> Vec<f32> {
    j["draws"][name]
        .as_array()
        .unwrap_or_else(|| panic!("augment.json has no draws for {name}"))
        .iter()
        .map(|d| d["value"].as_f64().unwrap() as f32)
        .collect()
}

#[test]
fn u8_to_float_matches_convert_image_dtype() {
    for tag in ["img32", "img64", "img80x80", "img80x100"] {
        let u = load_u8(&format!("{tag}_u8"));
        check(tag, &u.to_f32());
    }
}

#[test]
fn single_colour_ops_without_clipping_match_tf() {
    let j = json();
    for s in [32, 64] {
        let img = load_f32(&format!("img{s}"));
        let cases: [OpCase; 5] = [
            ("brightness_v2", ColorOp::BrightnessMul),
            ("brightness_v1", ColorOp::BrightnessAdd),
            ("contrast", ColorOp::Contrast),
            ("saturation", ColorOp::Saturation),
            ("hue", ColorOp::Hue),
        ];
        for (op, make) in cases {
            let name = format!("img{s}_{op}");
            let v = draw_values(&j, &name);
            assert_eq!(v.len(), 1, "{name}: one draw expected");
            let mut out = img.clone();
            augment::apply_color_op(&mut out, make(v[0]));
            check(&name, &out);
        }
    }
}

#[test]
fn fixed_order_jitter_with_clipping_matches_tf() {
    let j = json();
    for s in [32, 64] {
        let img = load_f32(&format!("img{s}"));
        // Single-op jitters: the draws list says how often the op ran (the
        // original's hue branch runs at all four steps when only hue is set).
        let singles: [OpCase; 4] = [
            ("brightness", ColorOp::BrightnessMul),
            ("contrast", ColorOp::Contrast),
            ("saturation", ColorOp::Saturation),
            ("hue", ColorOp::Hue),
        ];
        for (op, make) in singles {
            let name = format!("img{s}_jitter_only_{op}");
            let ops: Vec<ColorOp> = draw_values(&j, &name).into_iter().map(make).collect();
            let mut out = img.clone();
            augment::color_ops_with_clip(&mut out, &ops);
            check(&name, &out);
        }
        let name = format!("img{s}_jitter_nonrand_all");
        let v = draw_values(&j, &name);
        assert_eq!(v.len(), 4);
        let mut out = img.clone();
        augment::color_ops_with_clip(
            &mut out,
            &[
                ColorOp::BrightnessMul(v[0]),
                ColorOp::Contrast(v[1]),
                ColorOp::Saturation(v[2]),
                ColorOp::Hue(v[3]),
            ],
        );
        check(&name, &out);
    }
}

#[test]
fn grayscale_matches_tf() {
    for s in [32, 64] {
        let mut out = load_f32(&format!("img{s}"));
        augment::to_grayscale(&mut out);
        check(&format!("img{s}_grayscale"), &out);
    }
}

#[test]
fn blur_filter_and_blur_match_tf() {
    let j = json();
    let sigma = j["factors"]["blur_sigma"].as_f64().unwrap() as f32;
    for s in [32usize, 64] {
        let meta = &j[format!("blur_img{s}")];
        let k = augment::blur_kernel_size(s);
        assert_eq!(
            k as u64,
            meta["kernel_size_arg"].as_u64().unwrap(),
            "kernel size for {s}"
        );
        let f = augment::blur_filter(k, sigma);
        assert_eq!(
            f.len() as u64,
            meta["taps"].as_u64().unwrap(),
            "taps for {s}"
        );
        let want = load(&format!("img{s}_blur_filter_1d"));
        for (a, b) in f.iter().zip(want.as_f32().unwrap()) {
            assert!(
                (a - b).abs() <= 1e-7,
                "img{s} blur filter: {f:?} vs {:?}",
                want.as_f32().unwrap()
            );
        }
        let img = load_f32(&format!("img{s}"));
        check(
            &format!("img{s}_blur"),
            &augment::gaussian_blur(&img, k, sigma),
        );
    }
}

#[test]
fn eval_centre_crop_window_and_resize_match_tf1_and_tf2() {
    let j = json();
    for tag in ["img80x80", "img80x100"] {
        let meta = &j[tag];
        let img = load_f32(tag);
        let win = augment::center_crop_window(
            img.height,
            img.width,
            64,
            64,
            meta["crop_proportion"].as_f64().unwrap() as f32,
        );
        let got = (win.y, win.x, win.height, win.width);
        let want = (
            meta["offset_height"].as_u64().unwrap() as usize,
            meta["offset_width"].as_u64().unwrap() as usize,
            meta["crop_height"].as_u64().unwrap() as usize,
            meta["crop_width"].as_u64().unwrap() as usize,
        );
        assert_eq!(got, want, "{tag}: centre crop window (y, x, h, w)");
        check(&format!("{tag}_crop_window"), &augment::crop(&img, &win));
        for (v, suffix) in [(ResizeVersion::Tf1, "tf1"), (ResizeVersion::Tf2, "tf2")] {
            check(
                &format!("{tag}_center_crop64_{suffix}"),
                &augment::center_crop(&img, 64, 64, augment::CROP_PROPORTION, v),
            );
            let cfg = AugmentConfig {
                resize: v,
                ..AugmentConfig::finetune(64)
            };
            let u = load_u8(&format!("{tag}_u8"));
            check(
                &format!("{tag}_eval64_{suffix}"),
                &augment::preprocess_for_eval(&u, &cfg).unwrap(),
            );
        }
    }
}

#[test]
fn resize_to_same_size_is_identity_for_tf2_and_tf1() {
    // scale 1, delta 0: TF's table gives weights (0, 1, 0, 0) exactly.
    let img = load_f32("img32");
    for v in [ResizeVersion::Tf1, ResizeVersion::Tf2] {
        let out = augment::resize_bicubic(&img, 32, 32, v);
        assert_eq!(out.data, img.data, "{v:?} identity resize");
    }
}

#[test]
fn tiny_and_elongated_images_do_not_panic() {
    use simclr::data::rng::Rng;
    for (h, w) in [(1, 1), (1, 300), (300, 2), (3, 5)] {
        let img = ImageU8 {
            height: h,
            width: w,
            data: vec![128; h * w * 3],
        };
        for v in [ResizeVersion::Tf1, ResizeVersion::Tf2] {
            let cfg = AugmentConfig {
                resize: v,
                ..AugmentConfig::pretrain(64, 1.0)
            };
            let e = augment::preprocess_for_eval(&img, &cfg).unwrap();
            assert_eq!(e.data.len(), 64 * 64 * 3);
            let t =
                augment::preprocess_for_train(&img, &cfg, &mut Rng::new(0, &[h as u64, w as u64]))
                    .unwrap();
            assert!(
                t.data.iter().all(|x| (0.0..=1.0).contains(x)),
                "{h}x{w} {v:?}"
            );
        }
    }
}
