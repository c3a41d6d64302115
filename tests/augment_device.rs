//! Augmentation on the device (`--augment_on_device`) against the host path:
//! the parameters drawn for the device reproduce the host's view bit for bit
//! when applied on the host, and the traced program run on the CPU plugin
//! gives the host's views within 1e-5 (CIFAR-size and 224² views, with and
//! without blur, f32 and uint8 transfer).

use crate::pjrt_common as common;

use simclr::data::augment::{
    self, apply_device_params, blur_filter, blur_kernel_size, blur_one_of_batch, op_code,
    preprocess_for_device_into, preprocess_for_train_into, quantize_u8, AugmentConfig,
    BrightnessImpl, DEVICE_PARAMS,
};
use simclr::data::rng::{stream, Rng};
use simclr::data::ImageU8;
use simclr::pjrt::{CompileOptions, HostArray};
use simclr::simclr::augment_device::{blur_taps, DeviceAugment, Transfer};

/// A source image with smooth gradients, saturated corners and gray patches
/// (every hue sextant, equal channels, values at 0 and 255).
fn source(h: usize, w: usize, salt: u64) -> ImageU8 {
    let mut rng = Rng::new(salt, &[7]);
    let mut data = Vec::with_capacity(h * w * 3);
    for y in 0..h {
        for x in 0..w {
            let noise = (rng.next_u64() % 40) as i64 - 20;
            let r = ((x * 255 / w.max(1)) as i64 + noise).clamp(0, 255) as u8;
            let g = ((y * 255 / h.max(1)) as i64 - noise).clamp(0, 255) as u8;
            let b = (((x + y) * 97 + salt as usize * 31) % 256) as u8;
            let px = if (x / 5 + y / 7) % 9 == 0 {
                [g, g, g]
            } else {
                [r, g, b]
            };
            data.extend_from_slice(&px);
        }
    }
    ImageU8 {
        height: h,
        width: w,
        data,
    }
}

/// Per-example configurations that reach every colour op code: simclrv2
/// brightness, simclrv1 brightness (add), and strength 0 (clip only).
fn config(size: usize, i: usize) -> AugmentConfig {
    let mut c = AugmentConfig::pretrain(size, 1.0);
    match i % 4 {
        2 => c.brightness = BrightnessImpl::SimclrV1,
        3 => c.color_jitter_strength = 0.0,
        _ => {}
    }
    c
}

struct Case {
    size: usize,
    views: usize,
    n: usize,
    /// Host views `[views, n, S, S, 3]`.
    host: Vec<f32>,
    /// Resized views before the colour operations.
    resized: Vec<f32>,
    /// `[views · n, DEVICE_PARAMS]`.
    params: Vec<f32>,
    /// `[views, K]` with blur.
    filters: Option<Vec<f32>>,
}

fn build_case(size: usize, src: (usize, usize), n: usize, blur: bool) -> Case {
    let views = 2;
    let per = size * size * 3;
    let mut host = vec![0f32; views * n * per];
    let mut resized = vec![0f32; views * n * per];
    let mut params = vec![0f32; views * n * DEVICE_PARAMS];
    let mut filters = blur.then(Vec::new);
    let mut scratch = vec![0f32; per];
    for v in 0..views {
        let filter = filters.as_mut().map(|f| {
            let sigma = Rng::new(5, &[stream::BLUR, 0, 0, v as u64]).uniform(0.1, 2.0);
            let k = blur_filter(blur_kernel_size(size), sigma);
            f.extend_from_slice(&k);
            k
        });
        for i in 0..n {
            let img = source(src.0 + i, src.1 + 2 * i, i as u64);
            let cfg = config(size, i);
            let j = v * n + i;
            let key = [stream::AUGMENT, 0, i as u64, v as u64];
            let out = &mut host[j * per..(j + 1) * per];
            preprocess_for_train_into(&img, &cfg, &mut Rng::new(5, &key), out).unwrap();
            let p = &mut params[j * DEVICE_PARAMS..(j + 1) * DEVICE_PARAMS];
            let r = &mut resized[j * per..(j + 1) * per];
            preprocess_for_device_into(&img, &cfg, &mut Rng::new(5, &key), r, p).unwrap();
            if let Some(f) = &filter {
                let keep = Rng::new(5, &[stream::BLUR, 0, 0, v as u64, i as u64]).bernoulli(0.5);
                p[10] = if keep { 1.0 } else { 0.0 };
                blur_one_of_batch(out, size, size, f, keep, &mut scratch);
            }
        }
    }
    Case {
        size,
        views,
        n,
        host,
        resized,
        params,
        filters,
    }
}

/// Runs the traced augmentation on the CPU plugin.
fn run_device(c: &Case, transfer: Transfer) -> Vec<f32> {
    let aug = DeviceAugment {
        image_size: c.size as i64,
        views: c.views as i64,
        per_replica_batch: c.n as i64,
        blur: c.filters.is_some(),
        transfer,
    };
    let module = aug.program().expect("traced");
    let client = common::client();
    // Small views compile faster than they run unoptimised.
    let options = if c.size <= 32 {
        CompileOptions::new(1).with_override("xla_backend_optimization_level", 0i64)
    } else {
        CompileOptions::new(1)
    };
    let exe = client
        .compile(&module.to_proto(), &options)
        .expect("compiled");
    let s = c.size as i64;
    let dims = [(c.views * c.n) as i64, s, s, 3];
    let images = match transfer {
        Transfer::F32 => HostArray::from_f32(&dims, &c.resized).unwrap(),
        Transfer::U8 => {
            let q: Vec<u8> = c.resized.iter().map(|&v| quantize_u8(v)).collect();
            HostArray::from_u8(&dims, &q).unwrap()
        }
    };
    let mut args = vec![
        images,
        HostArray::from_f32(&[(c.views * c.n) as i64, DEVICE_PARAMS as i64], &c.params).unwrap(),
    ];
    if let Some(f) = &c.filters {
        assert_eq!(f.len(), c.views * blur_taps(c.size));
        args.push(HostArray::from_f32(&[c.views as i64, blur_taps(c.size) as i64], f).unwrap());
    }
    let out = exe.execute_host(&[args]).expect("executed");
    out[0][0].to_f32().unwrap()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// The parameters cover every op code, the flip, grayscale and (with blur)
/// both blur outcomes, so the comparisons below exercise every branch.
fn assert_coverage(c: &Case) {
    let rows: Vec<&[f32]> = c.params.chunks(DEVICE_PARAMS).collect();
    let codes: Vec<f32> = rows.iter().flat_map(|p| p[1..5].to_vec()).collect();
    for code in [
        op_code::NONE,
        op_code::MUL,
        op_code::ADD,
        op_code::CONTRAST,
        op_code::SATURATION,
        op_code::HUE,
        op_code::CLIP,
    ] {
        assert!(codes.contains(&code), "no slot uses op code {code}");
    }
    for (col, what) in [(0, "flip"), (9, "grayscale")] {
        assert!(rows.iter().any(|p| p[col] == 1.0), "no view with {what}");
        assert!(rows.iter().any(|p| p[col] == 0.0), "every view with {what}");
    }
    if c.filters.is_some() {
        assert!(rows.iter().any(|p| p[10] == 1.0) && rows.iter().any(|p| p[10] == 0.0));
    }
}

fn host_from_params(c: &Case, images: &[f32]) -> Vec<f32> {
    let per = c.size * c.size * 3;
    let mut out = images.to_vec();
    let mut scratch = vec![0f32; per];
    for (j, p) in c.params.chunks(DEVICE_PARAMS).enumerate() {
        let img = &mut out[j * per..(j + 1) * per];
        apply_device_params(img, c.size, p).unwrap();
        if let Some(f) = &c.filters {
            let k = blur_taps(c.size);
            let v = j / c.n;
            let filter = &f[v * k..(v + 1) * k];
            blur_one_of_batch(img, c.size, c.size, filter, p[10] != 0.0, &mut scratch);
        }
    }
    out
}

fn check(size: usize, src: (usize, usize), n: usize, blur: bool, uint8: bool) {
    let c = build_case(size, src, n, blur);
    assert_coverage(&c);
    // The drawn parameters hold every decision of the host path.
    assert_eq!(
        host_from_params(&c, &c.resized),
        c.host,
        "host views rebuilt from the parameters differ"
    );
    let dev = run_device(&c, Transfer::F32);
    let d = max_diff(&dev, &c.host);
    assert!(
        d <= 1e-5,
        "{size}² blur={blur}: device vs host max |Δ| = {d}"
    );
    if !uint8 {
        return;
    }
    // uint8 transfer: the device applies the same operations to the bytes.
    let q: Vec<f32> = c
        .resized
        .iter()
        .map(|&v| quantize_u8(v) as f32 / 255.0)
        .collect();
    let want = host_from_params(&c, &q);
    let dev8 = run_device(&c, Transfer::U8);
    let d8 = max_diff(&dev8, &want);
    assert!(d8 <= 1e-5, "{size}² blur={blur} uint8: max |Δ| = {d8}");
}

#[test]
fn cifar_size_views_match_the_host_without_blur() {
    check(32, (32, 32), 16, false, false);
}

#[test]
fn cifar_size_views_match_the_host_with_blur() {
    check(32, (32, 32), 16, true, true);
}

#[test]
fn views_of_224_match_the_host_with_and_without_blur() {
    check(224, (180, 260), 8, true, true);
    check(224, (300, 200), 8, false, false);
}

#[test]
fn device_parameters_reject_wrong_buffers() {
    let img = source(10, 10, 0);
    let cfg = AugmentConfig::pretrain(8, 1.0);
    let mut out = vec![0f32; 8 * 8 * 3];
    let mut short = vec![0f32; 3];
    let e = preprocess_for_device_into(&img, &cfg, &mut Rng::new(1, &[]), &mut out, &mut short)
        .unwrap_err();
    assert!(e.to_string().contains("11"), "{e}");
    let mut p = vec![0f32; DEVICE_PARAMS];
    p[1] = 9.0;
    let e = augment::apply_device_params(&mut out, 8, &p).unwrap_err();
    assert!(e.to_string().contains("op code 9"), "{e}");
}
