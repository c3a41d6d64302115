//! SimCLR's image preprocessing, reproducing the original TensorFlow ops
//! (SIMCLR.md §2.2–§2.6 and §12 items 6–10).
//!
//! Owns, on HWC float images:
//! * the crop sampler of `tf.image.sample_distorted_bounding_box` with the
//!   whole image as bounding box (§2.3): [`sample_distorted_crop`];
//! * TF's bicubic resize, legacy (TF1, a = −0.75) and half-pixel (TF2,
//!   a = −0.5), including TF's 1,024-entry coefficient table: [`resize_bicubic`];
//! * flip, colour distortion (brightness v1/v2, contrast, saturation, hue,
//!   random order, clipping after each op), grayscale (§2.4);
//! * Gaussian blur on a per-replica batch (§2.5): [`batch_random_blur`];
//! * the eval centre crop (§2.6): [`center_crop`], [`preprocess_for_eval`].
//!
//! Randomness comes from [`Rng`] streams supplied by the caller (the
//! pipeline keys them by seed, epoch, example and view). Does not own batching.

use super::pixels::{self, with_avx2, BLOCK_PIXELS};
use super::rng::Rng;
use super::{Error, ImageF32, ImageU8};

/// Which TensorFlow generation's resize kernel to reproduce (§2.3, §11.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ResizeVersion {
    /// `tf.compat.v1.image.resize_bicubic`: `half_pixel_centers=False`,
    /// cubic a = −0.75, taps clamped to the border. The default.
    #[default]
    Tf1,
    /// `tf.image.resize(method=BICUBIC)`: half-pixel centres, Keys a = −0.5,
    /// out-of-image taps dropped and the remaining weights renormalised.
    Tf2,
}

impl ResizeVersion {
    /// Parses `tf1` / `tf2`.
    ///
    /// # Errors
    /// [`Error::Config`] for other names.
    pub fn parse(s: &str) -> Result<Self, Error> {
        match s.to_ascii_lowercase().as_str() {
            "tf1" | "v1" | "legacy" => Ok(ResizeVersion::Tf1),
            "tf2" | "v2" => Ok(ResizeVersion::Tf2),
            o => Err(Error::Config(format!(
                "unknown resize version '{o}': use tf1 or tf2"
            ))),
        }
    }
}

/// Brightness implementation (§2.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BrightnessImpl {
    /// `simclrv2`: multiply by a factor ~ U[max(1 − δ, 0), 1 + δ]. The default.
    #[default]
    SimclrV2,
    /// `simclrv1`: add an offset ~ U[−δ, δ] (`tf.image.random_brightness`).
    SimclrV1,
}

/// A crop window in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CropWindow {
    /// First row.
    pub y: usize,
    /// First column.
    pub x: usize,
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
    /// True when no attempt succeeded and the whole image was used.
    pub fallback: bool,
}

/// Parameters of the crop sampler; [`CropParams::simclr`] gives SimCLR's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CropParams {
    /// Minimum fraction of the (whole-image) bounding box the crop must cover.
    pub min_object_covered: f32,
    /// Range of width / height of the crop.
    pub aspect_ratio_range: (f32, f32),
    /// Range of crop area as a fraction of the image area.
    pub area_range: (f32, f32),
    /// Attempts before falling back to the whole image.
    pub max_attempts: u32,
}

impl CropParams {
    /// SimCLR's values for a target of aspect ratio `r = width / height`:
    /// min_object_covered 0.1, aspect [3/4·r, 4/3·r], area [0.08, 1], 100 attempts.
    pub fn simclr(target_aspect: f64) -> Self {
        CropParams {
            min_object_covered: 0.1,
            aspect_ratio_range: (
                (3.0 / 4.0 * target_aspect) as f32,
                (4.0 / 3.0 * target_aspect) as f32,
            ),
            area_range: (0.08, 1.0),
            max_attempts: 100,
        }
    }
}

/// C's `lrintf` in the default rounding mode: nearest, ties to even.
fn lrintf(v: f32) -> i64 {
    v.round_ties_even() as i64
}

/// One attempt of TF's `GenerateRandomCrop` for an image of `w`×`h` pixels.
fn generate_random_crop(
    w: i64,
    h: i64,
    min_rel: f32,
    max_rel: f32,
    aspect: f32,
    rng: &mut Rng,
) -> Option<(i64, i64, i64, i64)> {
    if max_rel <= 0.0 || aspect <= 0.0 || w <= 0 || h <= 0 || min_rel > max_rel {
        return None;
    }
    let min_area = min_rel * w as f32 * h as f32;
    let max_area = max_rel * w as f32 * h as f32;
    let mut height = lrintf((min_area / aspect).sqrt());
    let mut max_height = lrintf((max_area / aspect).sqrt());
    if lrintf(max_height as f32 * aspect) > w {
        let eps = 0.000_000_1f32 as f64;
        max_height = ((w as f64 + 0.5 - eps) / aspect as f64) as i64;
        if lrintf(max_height as f32 * aspect) > w {
            max_height -= 1;
        }
    }
    if max_height > h {
        max_height = h;
    }
    if height >= max_height {
        height = max_height;
    }
    if height < max_height {
        height += rng.below((max_height - height + 1) as u64) as i64;
    }
    let mut width = lrintf(height as f32 * aspect);
    let mut area = (width * height) as f32;
    if area < min_area {
        height += 1;
        width = lrintf(height as f32 * aspect);
        area = (width * height) as f32;
    }
    if area > max_area {
        height -= 1;
        width = lrintf(height as f32 * aspect);
        area = (width * height) as f32;
    }
    if area < min_area || area > max_area || width > w || height > h || width <= 0 || height <= 0 {
        return None;
    }
    // TF quirk: Uniform(H − h) never yields the last valid offset H − h.
    let y = if height < h {
        rng.below((h - height) as u64) as i64
    } else {
        0
    };
    let x = if width < w {
        rng.below((w - width) as u64) as i64
    } else {
        0
    };
    Some((y, x, height, width))
}

/// Samples a crop window of an `height`×`width` image the way
/// `tf.image.sample_distorted_bounding_box` does with the whole image as the
/// only bounding box (§2.3): uniform aspect ratio, uniform *height*, the
/// `min_object_covered` test (which makes the effective minimum area 10 %),
/// `max_attempts` tries, then the whole image.
pub fn sample_distorted_crop(
    height: usize,
    width: usize,
    params: &CropParams,
    rng: &mut Rng,
) -> CropWindow {
    let (h, w) = (height as i64, width as i64);
    let (amin, amax) = params.aspect_ratio_range;
    for _ in 0..params.max_attempts {
        let aspect = rng.next_f32() * (amax - amin) + amin;
        if let Some((y, x, ch, cw)) =
            generate_random_crop(w, h, params.area_range.0, params.area_range.1, aspect, rng)
        {
            // Overlap with the whole-image box = crop area / image area.
            let object_area = (h * w) as f32;
            let covered = (ch * cw) as f32 / object_area;
            if object_area > 0.0 && covered >= params.min_object_covered {
                return CropWindow {
                    y: y as usize,
                    x: x as usize,
                    height: ch as usize,
                    width: cw as usize,
                    fallback: false,
                };
            }
        }
    }
    CropWindow {
        y: 0,
        x: 0,
        height,
        width,
        fallback: true,
    }
}

/// Copies a window out of an image (`tf.image.crop_to_bounding_box`).
/// The window must lie inside the image.
pub fn crop(img: &ImageF32, win: &CropWindow) -> ImageF32 {
    let mut data = Vec::with_capacity(win.height * win.width * 3);
    for r in win.y..win.y + win.height {
        let start = (r * img.width + win.x) * 3;
        data.extend_from_slice(&img.data[start..start + win.width * 3]);
    }
    ImageF32 {
        height: win.height,
        width: win.width,
        data,
    }
}

const TABLE_SIZE: i64 = 1024;

/// TF's bicubic coefficient table for cubic parameter `a`
/// (`(TABLE_SIZE + 1) * 2` floats, computed in double, stored as float).
fn coeffs_table(a: f64) -> Vec<f32> {
    let mut t = vec![0f32; (TABLE_SIZE as usize + 1) * 2];
    for i in 0..=TABLE_SIZE as usize {
        let mut x = (i as f64 / TABLE_SIZE as f64) as f32;
        let xd = x as f64;
        t[i * 2] = (((a + 2.0) * xd - (a + 3.0)) * xd * xd + 1.0) as f32;
        x += 1.0;
        let xd = x as f64;
        t[i * 2 + 1] = (((a * xd - 5.0 * a) * xd + 8.0 * a) * xd - 4.0 * a) as f32;
    }
    t
}

fn table(version: ResizeVersion) -> &'static [f32] {
    use std::sync::OnceLock;
    static LEGACY: OnceLock<Vec<f32>> = OnceLock::new();
    static KEYS: OnceLock<Vec<f32>> = OnceLock::new();
    match version {
        ResizeVersion::Tf1 => LEGACY.get_or_init(|| coeffs_table(-0.75)),
        ResizeVersion::Tf2 => KEYS.get_or_init(|| coeffs_table(-0.5)),
    }
}

#[derive(Clone, Copy)]
struct Taps {
    /// The unclamped position of the first tap (`idx` clamps it and the
    /// next three to the image).
    start: i64,
    idx: [usize; 4],
    w: [f32; 4],
}

fn taps(version: ResizeVersion, scale: f32, out: usize, limit: usize) -> Taps {
    let t = table(version);
    let in_f = match version {
        ResizeVersion::Tf1 => out as f32 * scale,
        ResizeVersion::Tf2 => (out as f32 + 0.5) * scale - 0.5,
    };
    let in_loc = in_f.floor() as i64;
    let delta = in_f - in_loc as f32;
    let off = lrintf(delta * TABLE_SIZE as f32) as usize;
    let ts = TABLE_SIZE as usize;
    let bound = |v: i64| -> usize { v.clamp(0, limit as i64 - 1) as usize };
    let raw = [
        t[off * 2 + 1],
        t[off * 2],
        t[(ts - off) * 2],
        t[(ts - off) * 2 + 1],
    ];
    let mut idx = [0usize; 4];
    let mut w = [0f32; 4];
    for k in 0..4 {
        let want = in_loc - 1 + k as i64;
        idx[k] = bound(want);
        w[k] = match version {
            ResizeVersion::Tf1 => raw[k],
            ResizeVersion::Tf2 => {
                if idx[k] as i64 == want {
                    raw[k]
                } else {
                    0.0
                }
            }
        };
    }
    if version == ResizeVersion::Tf2 {
        let sum = w[0] + w[1] + w[2] + w[3];
        if sum.abs() >= 1000.0 * f32::MIN_POSITIVE {
            let inv = 1.0 / sum;
            for v in &mut w {
                *v *= inv;
            }
        }
    }
    Taps {
        start: in_loc - 1,
        idx,
        w,
    }
}

/// The taps of every output position along one axis of `in_len` → `out_len`.
fn axis_taps(version: ResizeVersion, in_len: usize, out_len: usize) -> Vec<Taps> {
    let scale = in_len as f32 / out_len as f32;
    (0..out_len)
        .map(|o| taps(version, scale, o, in_len))
        .collect()
}

/// TF's bicubic kernel on a source of `in_h`×`in_w` pixels whose rows are
/// produced by `vertical(taps, col)`: it must store in `col` (`in_w·3`
/// values) the vertical combination `Σ_k row(idx[k])·w[k]`, taps in order,
/// for every input column. Writes `out_h`×`out_w` pixels to `out`, mirrored
/// left-right when `flip` (the same values `flip_left_right` would move).
#[allow(clippy::too_many_arguments)]
fn resize_core(
    in_h: usize,
    in_w: usize,
    out_h: usize,
    out_w: usize,
    version: ResizeVersion,
    flip: bool,
    out: &mut [f32],
    mut vertical: impl FnMut(&Taps, &mut [f32]),
) {
    let xt = axis_taps(version, in_w, out_w);
    let yt = axis_taps(version, in_h, out_h);
    // The row is padded with copies of its border pixels so that every
    // output's four taps are consecutive.
    let lo = xt.iter().map(|t| t.start).min().unwrap_or(0).min(0);
    let hi = xt
        .iter()
        .map(|t| t.start + 4)
        .max()
        .unwrap_or(0)
        .max(in_w as i64);
    let first: Vec<usize> = xt.iter().map(|t| (t.start - lo) as usize).collect();
    let x_w: Vec<[f32; 4]> = xt.iter().map(|t| t.w).collect();
    let mut col = vec![0f32; in_w * 3];
    let mut col4 = vec![[0f32; 4]; (hi - lo) as usize];
    for (y, t) in yt.iter().enumerate() {
        // Vertical taps for every input column of the row (the same products
        // and sums TF forms per column), then horizontal taps per output.
        vertical(t, &mut col);
        let out_row = &mut out[y * out_w * 3..(y + 1) * out_w * 3];
        pixels::resize_horizontal(&col, &mut col4, (-lo) as usize, &first, &x_w, out_row, flip);
    }
}

/// The vertical taps `t` of rows of `n` values from `data` into `col`.
fn vertical_taps(data: &[f32], n: usize, t: &Taps, col: &mut [f32]) {
    let r = |k: usize| &data[t.idx[k] * n..(t.idx[k] + 1) * n];
    pixels::resize_vertical([r(0), r(1), r(2), r(3)], t.w, col);
}

/// Bicubic resize to `out_h`×`out_w`, reproducing TF's `ResizeBicubic`
/// kernel (vertical taps first, then horizontal, f32 arithmetic). No
/// antialiasing; the result may overshoot [0, 1].
pub fn resize_bicubic(
    img: &ImageF32,
    out_h: usize,
    out_w: usize,
    version: ResizeVersion,
) -> ImageF32 {
    let mut data = vec![0f32; out_h * out_w * 3];
    let row = img.width * 3;
    resize_core(
        img.height,
        img.width,
        out_h,
        out_w,
        version,
        false,
        &mut data,
        |t, col| vertical_taps(&img.data, row, t, col),
    );
    ImageF32 {
        height: out_h,
        width: out_w,
        data,
    }
}

/// `v / 255` for every byte: the values of [`ImageU8::to_f32`].
fn u8_to_unit() -> &'static [f32; 256] {
    use std::sync::OnceLock;
    static LUT: OnceLock<[f32; 256]> = OnceLock::new();
    LUT.get_or_init(|| std::array::from_fn(|v| v as f32 / 255.0))
}

/// `resize_bicubic(&crop(&img.to_f32(), win), …)` (flipped when `flip`)
/// written to `out`: only the window is converted to float, into a buffer
/// kept per thread. The result is bit-identical.
fn crop_resize_u8(
    img: &ImageU8,
    win: &CropWindow,
    out_h: usize,
    out_w: usize,
    version: ResizeVersion,
    flip: bool,
    out: &mut [f32],
) {
    use std::cell::RefCell;
    thread_local! {
        static WINDOW: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    }
    WINDOW.with(|buf| {
        let mut buf = buf.borrow_mut();
        let row = img.width * 3;
        let n = win.width * 3;
        buf.clear();
        buf.reserve(win.height * n);
        for r in win.y..win.y + win.height {
            let s = r * row + win.x * 3;
            buf.extend(img.data[s..s + n].iter().map(|&v| v as f32 / 255.0));
        }
        let data: &[f32] = &buf;
        resize_core(
            win.height,
            win.width,
            out_h,
            out_w,
            version,
            flip,
            out,
            |t, col| vertical_taps(data, n, t, col),
        );
    });
}

/// Random crop (§2.3 sampler) then bicubic resize to `out_h`×`out_w`
/// (`crop_and_resize`). Returns the image and the window used.
pub fn random_crop_and_resize(
    img: &ImageF32,
    out_h: usize,
    out_w: usize,
    version: ResizeVersion,
    rng: &mut Rng,
) -> (ImageF32, CropWindow) {
    let params = CropParams::simclr(out_w as f64 / out_h as f64);
    let win = sample_distorted_crop(img.height, img.width, &params, rng);
    let c = crop(img, &win);
    (resize_bicubic(&c, out_h, out_w, version), win)
}

/// Mirrors the image left-right in place.
pub fn flip_left_right(img: &mut ImageF32) {
    flip_rows(&mut img.data, img.height, img.width);
}

fn flip_rows(data: &mut [f32], h: usize, w: usize) {
    for r in 0..h {
        let row = &mut data[r * w * 3..(r + 1) * w * 3];
        for x in 0..w / 2 {
            for c in 0..3 {
                row.swap(x * 3 + c, (w - 1 - x) * 3 + c);
            }
        }
    }
}

/// Clips every value to [0, 1] in place (`tf.clip_by_value(x, 0, 1)`).
pub fn clip01(img: &mut ImageF32) {
    for v in &mut img.data {
        *v = v.clamp(0.0, 1.0);
    }
}

/// Multiplies by `factor` (simclrv2 brightness).
pub fn brightness_mul(img: &mut ImageF32, factor: f32) {
    for v in &mut img.data {
        *v *= factor;
    }
}

/// Adds `delta` (`tf.image.adjust_brightness`, simclrv1 brightness).
pub fn brightness_add(img: &mut ImageF32, delta: f32) {
    for v in &mut img.data {
        *v += delta;
    }
}

/// `tf.image.adjust_contrast`: per channel, `(x − mean)·factor + mean` with
/// the spatial mean of that channel.
pub fn adjust_contrast(img: &mut ImageF32, factor: f32) {
    let n = img.height * img.width;
    if n == 0 {
        return;
    }
    let mut sums = [0f64; 3];
    for px in img.data.chunks_exact(3) {
        for c in 0..3 {
            sums[c] += px[c] as f64;
        }
    }
    let means = sums.map(|s| (s / n as f64) as f32);
    for px in img.data.chunks_exact_mut(3) {
        for c in 0..3 {
            px[c] = (px[c] - means[c]) * factor + means[c];
        }
    }
}

fn rgb_to_hsv(r: f32, g: f32, b: f32) -> (f32, f32, f32) {
    let vv = r.max(g.max(b));
    let range = vv - r.min(g.min(b));
    let s = if vv > 0.0 { range / vv } else { 0.0 };
    let norm = 1.0f32 / (6.0f32 * range);
    let mut h = if r == vv {
        norm * (g - b)
    } else if g == vv {
        norm * (b - r) + (2.0f64 / 6.0) as f32
    } else {
        norm * (r - g) + (4.0f64 / 6.0) as f32
    };
    if range <= 0.0 {
        h = 0.0;
    }
    if h < 0.0 {
        h += 1.0;
    }
    (h, s, vv)
}

fn hsv_to_rgb(h: f32, s: f32, v: f32) -> (f32, f32, f32) {
    let c = s * v;
    let m = v - c;
    let dh = h * 6.0;
    let cat = dh as i32;
    let mut fmodu = dh;
    while fmodu <= 0.0 {
        fmodu += 2.0;
    }
    while fmodu >= 2.0 {
        fmodu -= 2.0;
    }
    let x = c * (1.0 - (fmodu - 1.0).abs());
    let (rr, gg, bb) = match cat {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        5 => (c, 0.0, x),
        _ => (0.0, 0.0, 0.0),
    };
    (rr + m, gg + m, bb + m)
}

/// `tf.image.adjust_saturation`: RGB→HSV, `S ← clip(S·factor, 0, 1)`, HSV→RGB.
pub fn adjust_saturation(img: &mut ImageF32, factor: f32) {
    for px in img.data.chunks_exact_mut(3) {
        let (h, s, v) = rgb_to_hsv(px[0], px[1], px[2]);
        let s = (s * factor).clamp(0.0, 1.0);
        let (r, g, b) = hsv_to_rgb(h, s, v);
        px[0] = r;
        px[1] = g;
        px[2] = b;
    }
}

fn rgb_to_hv_range(r: f32, g: f32, b: f32) -> (f32, f32, f32) {
    let (vmax, vmid, vmin, cat) = if r < g {
        if b < r {
            (g, r, b, 1)
        } else if b > g {
            (b, g, r, 3)
        } else {
            (g, b, r, 2)
        }
    } else if b < g {
        (r, g, b, 0)
    } else if b > r {
        (b, r, g, 4)
    } else {
        (r, b, g, 5)
    };
    if vmax == vmin {
        return (0.0, vmin, vmax);
    }
    let ratio = (vmid - vmin) / (vmax - vmin);
    let h = if cat % 2 == 0 {
        cat as f32 + ratio
    } else {
        cat as f32 + (1.0 - ratio)
    };
    (h, vmin, vmax)
}

fn hv_range_to_rgb(h: f32, vmin: f32, vmax: f32) -> (f32, f32, f32) {
    let cat = h as i32;
    let mut ratio = h - cat as f32;
    if cat % 2 != 0 {
        ratio = 1.0 - ratio;
    }
    let vmid = vmin + ratio * (vmax - vmin);
    match cat {
        0 => (vmax, vmid, vmin),
        1 => (vmid, vmax, vmin),
        2 => (vmin, vmax, vmid),
        3 => (vmin, vmid, vmax),
        4 => (vmid, vmin, vmax),
        _ => (vmax, vmin, vmid),
    }
}

/// `tf.image.adjust_hue`: rotate the hue by `delta` (in turns, H ← (H + δ) mod 1).
pub fn adjust_hue(img: &mut ImageF32, delta: f32) {
    for px in img.data.chunks_exact_mut(3) {
        let (r, g, b) = shift_hue(px[0], px[1], px[2], delta);
        px[0] = r;
        px[1] = g;
        px[2] = b;
    }
}

/// One pixel of [`adjust_hue`].
#[inline]
fn shift_hue(r: f32, g: f32, b: f32, delta: f32) -> (f32, f32, f32) {
    let (mut h, vmin, vmax) = rgb_to_hv_range(r, g, b);
    h += delta * 6.0;
    while h < 0.0 {
        h += 6.0;
    }
    while h >= 6.0 {
        h -= 6.0;
    }
    hv_range_to_rgb(h, vmin, vmax)
}

/// `to_grayscale`: `g = 0.2989·R + 0.5870·G + 0.1140·B`, copied to 3 channels.
pub fn to_grayscale(img: &mut ImageF32) {
    for px in img.data.chunks_exact_mut(3) {
        let g = px[0] * 0.2989 + px[1] * 0.5870 + px[2] * 0.1140;
        px[0] = g;
        px[1] = g;
        px[2] = g;
    }
}

/// One colour operation with a fixed magnitude (for deterministic use and tests).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ColorOp {
    /// Multiply by a factor (simclrv2 brightness).
    BrightnessMul(f32),
    /// Add an offset (simclrv1 brightness).
    BrightnessAdd(f32),
    /// Contrast factor.
    Contrast(f32),
    /// Saturation factor.
    Saturation(f32),
    /// Hue shift in turns.
    Hue(f32),
}

/// Applies one colour operation without clipping.
pub fn apply_color_op(img: &mut ImageF32, op: ColorOp) {
    match op {
        ColorOp::BrightnessMul(f) => brightness_mul(img, f),
        ColorOp::BrightnessAdd(d) => brightness_add(img, d),
        ColorOp::Contrast(f) => adjust_contrast(img, f),
        ColorOp::Saturation(f) => adjust_saturation(img, f),
        ColorOp::Hue(d) => adjust_hue(img, d),
    }
}

/// Applies the given operations in order, clipping to [0, 1] after each
/// (the structure of `color_jitter_nonrand` / `color_jitter_rand`).
pub fn color_ops_with_clip(img: &mut ImageF32, ops: &[ColorOp]) {
    for &op in ops {
        apply_color_op(img, op);
        clip01(img);
    }
}

/// One per-pixel step of the colour distortion; every step but
/// [`PixelStep::Gray`] ends with the clip to [0, 1] that follows each
/// operation of `color_jitter_rand`.
#[derive(Debug, Clone, Copy)]
enum PixelStep {
    Mul(f32),
    Add(f32),
    /// Contrast with the per-channel means of the image before this step.
    Contrast(f32, [f32; 3]),
    Saturation(f32),
    Hue(f32),
    Clip,
    Gray,
}

/// One step on a block of at most [`BLOCK_PIXELS`] pixels: the steps run one
/// after the other on a block that stays in the L1 cache, instead of one
/// pass over the image per step.
#[inline(always)]
fn apply_step(p: &mut pixels::Planes, step: PixelStep) {
    let clip = |v: f32| v.clamp(0.0, 1.0);
    match step {
        PixelStep::Mul(f) => p.map(|v| clip(v * f)),
        PixelStep::Add(d) => p.map(|v| clip(v + d)),
        PixelStep::Clip => p.map(clip),
        PixelStep::Contrast(f, m) => p.contrast(f, m),
        PixelStep::Saturation(f) => p.saturation(f),
        PixelStep::Hue(d) if pixels::hue_block_applies(d) => p.hue(d),
        PixelStep::Hue(d) => p.map_pixels(|r, g, b| {
            let (r, g, b) = shift_hue(r, g, b, d);
            (clip(r), clip(g), clip(b))
        }),
        PixelStep::Gray => p.gray(),
    }
}

with_avx2! {
    /// Runs `steps` block by block over `data`; returns the per-channel sums
    /// (in pixel order, as `adjust_contrast` forms them) of the result when `sum`.
    fn run_steps(data: &mut [f32], steps: &[PixelStep], sum: bool) -> [f64; 3] {
        let mut sums = [0f64; 3];
        let mut planes = pixels::Planes::new();
        for block in data.chunks_mut(BLOCK_PIXELS * 3) {
            planes.load(block);
            for &s in steps {
                apply_step(&mut planes, s);
            }
            if sum {
                planes.add_sums(&mut sums);
            }
            planes.store(block);
        }
        sums
    }
}

/// Applies `steps` to an image of `pixels` pixels in one pass per contrast
/// step plus one (two for a colour jitter): each contrast step needs the
/// per-channel means of the whole image as the steps before it leave it, so
/// a pass ends, summing, where one begins. Same values as one pass per
/// operation.
fn apply_steps(data: &mut [f32], pixels: usize, steps: &mut [PixelStep]) {
    let is_contrast = |s: &PixelStep| matches!(s, PixelStep::Contrast(..));
    if pixels == 0 {
        // An empty image: a contrast step leaves it as is (then clips).
        for s in steps.iter_mut().filter(|s| is_contrast(s)) {
            *s = PixelStep::Clip;
        }
        run_steps(data, steps, false);
        return;
    }
    // `steps[start]` begins the next pass: the first step, or a contrast
    // step whose means are already set; contrast steps from `from` on have
    // none yet.
    let (mut start, mut from) = (0, 0);
    loop {
        match steps[from..].iter().position(is_contrast) {
            Some(off) => {
                let k = from + off;
                let sums = run_steps(data, &steps[start..k], true);
                if let PixelStep::Contrast(_, m) = &mut steps[k] {
                    *m = sums.map(|s| (s / pixels as f64) as f32);
                }
                (start, from) = (k, k + 1);
            }
            None => {
                run_steps(data, &steps[start..], false);
                return;
            }
        }
    }
}

/// Draws `color_jitter_rand`'s operations (the permutation, then one uniform
/// per applied op) and appends them to `steps`.
fn color_jitter_steps(
    strength: f32,
    brightness: BrightnessImpl,
    rng: &mut Rng,
    steps: &mut Vec<PixelStep>,
) {
    let b = 0.8 * strength;
    let c = 0.8 * strength;
    let s = 0.8 * strength;
    let h = 0.2 * strength;
    let perm = rng.permutation(4);
    for op in perm {
        steps.push(match op {
            0 if b != 0.0 => match brightness {
                BrightnessImpl::SimclrV2 => {
                    PixelStep::Mul(rng.uniform((1.0 - b).max(0.0), 1.0 + b))
                }
                BrightnessImpl::SimclrV1 => PixelStep::Add(rng.uniform(-b, b)),
            },
            1 if c != 0.0 => PixelStep::Contrast(rng.uniform(1.0 - c, 1.0 + c), [0.0; 3]),
            2 if s != 0.0 => PixelStep::Saturation(rng.uniform(1.0 - s, 1.0 + s)),
            3 if h != 0.0 => PixelStep::Hue(rng.uniform(-h, h)),
            _ => PixelStep::Clip,
        });
    }
}

/// Draws `random_color_jitter`'s steps (§2.4) and appends them to `steps`.
fn color_distortion_steps(
    strength: f32,
    brightness: BrightnessImpl,
    rng: &mut Rng,
    steps: &mut Vec<PixelStep>,
) {
    if rng.bernoulli(0.8) {
        color_jitter_steps(strength, brightness, rng, steps);
    }
    if rng.bernoulli(0.2) {
        steps.push(PixelStep::Gray);
    }
}

/// Colour jitter in random order (`color_jitter_rand`, §2.4): brightness,
/// contrast, saturation and hue with maximal magnitudes 0.8s, 0.8s, 0.8s,
/// 0.2s for strength `s`, in a random permutation, clipping after each;
/// an operation whose magnitude is 0 is skipped (the clip still happens).
///
/// Draw order per call: the permutation, then one uniform per applied op.
pub fn color_jitter_random_order(
    img: &mut ImageF32,
    strength: f32,
    brightness: BrightnessImpl,
    rng: &mut Rng,
) {
    let mut steps = Vec::with_capacity(4);
    color_jitter_steps(strength, brightness, rng, &mut steps);
    apply_steps(&mut img.data, img.height * img.width, &mut steps);
}

/// `random_color_jitter` (§2.4): with probability 0.8 colour jitter in random
/// order, then independently with probability 0.2 grayscale.
pub fn random_color_distortion(
    img: &mut ImageF32,
    strength: f32,
    brightness: BrightnessImpl,
    rng: &mut Rng,
) {
    let mut steps = Vec::with_capacity(5);
    color_distortion_steps(strength, brightness, rng, &mut steps);
    apply_steps(&mut img.data, img.height * img.width, &mut steps);
}

/// Blur kernel size for an image height: `height // 10` (§2.5).
pub fn blur_kernel_size(height: usize) -> usize {
    height / 10
}

/// The normalised 1-D Gaussian filter of `gaussian_blur`: radius
/// `kernel_size / 2`, `2·radius + 1` taps, weights `exp(−x²/(2σ²))` / sum.
pub fn blur_filter(kernel_size: usize, sigma: f32) -> Vec<f32> {
    let radius = (kernel_size / 2) as i64;
    let denom = 2.0f32 * sigma.powf(2.0);
    let mut f: Vec<f32> = (-radius..=radius)
        .map(|x| {
            let xf = x as f32;
            (-xf.powf(2.0) / denom).exp()
        })
        .collect();
    let sum: f32 = f.iter().sum();
    for v in &mut f {
        *v /= sum;
    }
    f
}

/// Separable Gaussian blur (`gaussian_blur`, §2.5): horizontal pass then
/// vertical pass, 'SAME' zero padding, on one HWC image of `h`×`w` pixels
/// stored in `data` (3 channels). `scratch` must have the same length.
/// With `clip` each output row is clipped to [0, 1] while still in cache.
fn blur_in_place(
    data: &mut [f32],
    h: usize,
    w: usize,
    filter: &[f32],
    scratch: &mut [f32],
    clip: bool,
) {
    let n = h * w * 3;
    let padded_len = (w + 2 * (filter.len() / 2)) * 3;
    let mut padded = vec![0f32; padded_len];
    pixels::blur_rows(&data[..n], &mut scratch[..n], w, filter, &mut padded);
    pixels::blur_columns(&scratch[..n], &mut data[..n], w * 3, filter, clip);
}

/// Blurs one image with `gaussian_blur(image, kernel_size, sigma, 'SAME')`.
pub fn gaussian_blur(img: &ImageF32, kernel_size: usize, sigma: f32) -> ImageF32 {
    let f = blur_filter(kernel_size, sigma);
    let mut out = img.clone();
    let mut scratch = vec![0f32; img.data.len()];
    blur_in_place(
        &mut out.data,
        img.height,
        img.width,
        &f,
        &mut scratch,
        false,
    );
    out
}

/// The blur step of `batch_random_blur` for one image of a batch whose σ was
/// already drawn: blur with `filter` when `keep_blurred`, then clip to [0, 1].
/// `image` is `[h, w, 3]`; `scratch` must have the same length.
pub fn blur_one_of_batch(
    image: &mut [f32],
    h: usize,
    w: usize,
    filter: &[f32],
    keep_blurred: bool,
    scratch: &mut [f32],
) {
    if keep_blurred {
        blur_in_place(image, h, w, filter, scratch, true);
    } else {
        for v in image.iter_mut() {
            *v = v.clamp(0.0, 1.0);
        }
    }
}

/// `batch_random_blur` for one view of a per-replica batch (§2.5): one
/// σ ~ U[0.1, 2.0) for the whole batch, kernel `height // 10`, and per image
/// the blurred version kept with probability `p` (0.5 in SimCLR); everything
/// is then clipped to [0, 1].
///
/// `images` is `[n, h, w, 3]`. Draw order: σ, then one uniform per image.
pub fn batch_random_blur(images: &mut [f32], n: usize, h: usize, w: usize, p: f32, rng: &mut Rng) {
    let sigma = rng.uniform(0.1, 2.0);
    let filter = blur_filter(blur_kernel_size(h), sigma);
    let per = h * w * 3;
    let mut scratch = vec![0f32; per];
    for i in 0..n {
        let img = &mut images[i * per..(i + 1) * per];
        let keep = rng.bernoulli(p);
        blur_one_of_batch(img, h, w, &filter, keep, &mut scratch);
    }
}

/// Crop size and offsets of the eval centre crop (§2.6) for an image of
/// `h`×`w` and a target of `out_h`×`out_w`.
pub fn center_crop_window(
    h: usize,
    w: usize,
    out_h: usize,
    out_w: usize,
    crop_proportion: f32,
) -> CropWindow {
    let aspect = (out_w as f64 / out_h as f64) as f32;
    let (hf, wf) = (h as f32, w as f32);
    let (ch, cw) = if aspect > wf / hf {
        (
            (((crop_proportion as f64 / aspect as f64) as f32) * wf).round_ties_even(),
            (crop_proportion * wf).round_ties_even(),
        )
    } else {
        (
            (crop_proportion * hf).round_ties_even(),
            (((crop_proportion as f64 * aspect as f64) as f32) * hf).round_ties_even(),
        )
    };
    // At least one pixel, at most the image.
    let (ch, cw) = ((ch.max(1.0) as usize).min(h), (cw.max(1.0) as usize).min(w));
    CropWindow {
        y: (h - ch).div_ceil(2),
        x: (w - cw).div_ceil(2),
        height: ch,
        width: cw,
        fallback: false,
    }
}

/// Eval centre crop (`center_crop`, §2.6): keep `crop_proportion` of the
/// shorter side, aspect-preserving, then bicubic resize to `out_h`×`out_w`.
pub fn center_crop(
    img: &ImageF32,
    out_h: usize,
    out_w: usize,
    crop_proportion: f32,
    version: ResizeVersion,
) -> ImageF32 {
    let win = center_crop_window(img.height, img.width, out_h, out_w, crop_proportion);
    resize_bicubic(&crop(img, &win), out_h, out_w, version)
}

/// The crop proportion of the eval centre crop (0.875, standard for ImageNet).
pub const CROP_PROPORTION: f32 = 0.875;

/// Options of the per-view preprocessing (§2.2, §2.6).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AugmentConfig {
    /// Output side length (`--image_size`).
    pub image_size: usize,
    /// Resize kernel generation (TF1 default).
    pub resize: ResizeVersion,
    /// Colour distortion strength s (`--color_jitter_strength`).
    pub color_jitter_strength: f32,
    /// Apply colour distortion (pretraining: true; fine-tuning: false).
    pub color_distort: bool,
    /// Brightness implementation (simclrv2 default).
    pub brightness: BrightnessImpl,
    /// Apply the random crop + resize.
    pub crop: bool,
    /// Apply the random horizontal flip.
    pub flip: bool,
}

impl AugmentConfig {
    /// Pretraining preprocessing for `image_size` with strength `s`.
    pub fn pretrain(image_size: usize, strength: f32) -> Self {
        AugmentConfig {
            image_size,
            resize: ResizeVersion::Tf1,
            color_jitter_strength: strength,
            color_distort: true,
            brightness: BrightnessImpl::SimclrV2,
            crop: true,
            flip: true,
        }
    }

    /// Fine-tuning preprocessing (crop, flip; no colour).
    pub fn finetune(image_size: usize) -> Self {
        AugmentConfig {
            color_distort: false,
            ..Self::pretrain(image_size, 1.0)
        }
    }

    /// Checks the values the TF ops would reject.
    ///
    /// # Errors
    /// [`Error::Config`] for `image_size == 0` or a strength outside [0, 1.25].
    pub fn validate(&self) -> Result<(), Error> {
        if self.image_size == 0 {
            return Err(Error::Config("--image_size must be positive".into()));
        }
        if self.color_distort && !(0.0..=1.25).contains(&self.color_jitter_strength) {
            return Err(Error::Config(format!(
                "--color_jitter_strength={} is outside [0, 1.25] (contrast and saturation lower bounds would be negative)",
                self.color_jitter_strength
            )));
        }
        Ok(())
    }
}

/// Training preprocessing of one view (`preprocess_for_train`, §2.2): random
/// crop + bicubic resize, random flip (p = 0.5), colour distortion, clip.
/// Blur is not included (it is a batch operation: [`batch_random_blur`]).
///
/// Draw order: crop sampler, flip, colour distortion.
///
/// # Errors
/// [`Error::Config`] when cropping is disabled and the image is not already
/// `image_size`×`image_size`, or for an empty image.
pub fn preprocess_for_train(
    img: &ImageU8,
    cfg: &AugmentConfig,
    rng: &mut Rng,
) -> Result<ImageF32, Error> {
    let mut data = vec![0f32; cfg.image_size * cfg.image_size * 3];
    preprocess_for_train_into(img, cfg, rng, &mut data)?;
    Ok(ImageF32 {
        height: cfg.image_size,
        width: cfg.image_size,
        data,
    })
}

/// [`preprocess_for_train`] writing the `image_size`×`image_size`×3 view
/// into `out` (same values, same draws), without allocating the view.
///
/// # Errors
/// As [`preprocess_for_train`]; [`Error::Config`] when `out` has another length.
pub fn preprocess_for_train_into(
    img: &ImageU8,
    cfg: &AugmentConfig,
    rng: &mut Rng,
    out: &mut [f32],
) -> Result<(), Error> {
    if img.height == 0 || img.width == 0 {
        return Err(Error::Config("empty image".into()));
    }
    let size = cfg.image_size;
    if out.len() != size * size * 3 {
        return Err(Error::Config(format!(
            "the output buffer holds {} values, not {size}x{size}x3",
            out.len()
        )));
    }
    if cfg.crop {
        let params = CropParams::simclr(1.0);
        let win = sample_distorted_crop(img.height, img.width, &params, rng);
        let flip = cfg.flip && rng.bernoulli(0.5);
        crop_resize_u8(img, &win, size, size, cfg.resize, flip, out);
    } else {
        check_size(img, size)?;
        let lut = u8_to_unit();
        for (o, &v) in out.iter_mut().zip(&img.data) {
            *o = lut[v as usize];
        }
        if cfg.flip && rng.bernoulli(0.5) {
            flip_rows(out, size, size);
        }
    }
    let mut steps = Vec::with_capacity(6);
    if cfg.color_distort {
        color_distortion_steps(cfg.color_jitter_strength, cfg.brightness, rng, &mut steps);
    }
    steps.push(PixelStep::Clip);
    apply_steps(out, size * size, &mut steps);
    Ok(())
}

fn check_size(img: &ImageU8, size: usize) -> Result<(), Error> {
    if img.height != size || img.width != size {
        return Err(Error::Config(format!(
            "image is {}x{} but --image_size={size} and no crop/resize applies; use images of that size or a larger --image_size",
            img.height, img.width
        )));
    }
    Ok(())
}

/// Eval preprocessing (`preprocess_for_eval`, §2.6): for `image_size > 32` a
/// centre crop of proportion 0.875 resized to `image_size`; for
/// `image_size <= 32` the image as is. Then clip to [0, 1].
///
/// # Errors
/// [`Error::Config`] when `image_size <= 32` and the image is not
/// `image_size`×`image_size`.
pub fn preprocess_for_eval(img: &ImageU8, cfg: &AugmentConfig) -> Result<ImageF32, Error> {
    if img.height == 0 || img.width == 0 {
        return Err(Error::Config("empty image".into()));
    }
    let f = img.to_f32();
    let mut out = if cfg.image_size > 32 {
        center_crop(
            &f,
            cfg.image_size,
            cfg.image_size,
            CROP_PROPORTION,
            cfg.resize,
        )
    } else {
        check_size(img, cfg.image_size)?;
        f
    };
    clip01(&mut out);
    Ok(out)
}

/// Values per example of the augmentation parameters that
/// [`preprocess_for_device_into`] draws for a device to apply (`f32` each):
///
/// | index | meaning |
/// |---|---|
/// | 0 | flip left-right (0 or 1) |
/// | 1..5 | the four colour-jitter slots in order: an [`op_code`] each |
/// | 5..9 | the value of each slot (factor, offset or hue shift) |
/// | 9 | grayscale (0 or 1) |
/// | 10 | keep the blurred image (0 or 1; the blur step only) |
pub const DEVICE_PARAMS: usize = 11;

/// How resized views travel to a device that augments them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DeviceTransfer {
    /// `f32` values: the device's views equal the host path's.
    #[default]
    F32,
    /// One byte per value, the resized view rounded to `k/255` ([`quantize_u8`]).
    U8,
}

impl DeviceTransfer {
    /// Parses `f32` / `uint8`.
    ///
    /// # Errors
    /// [`Error::Config`] naming the accepted values.
    pub fn parse(s: &str) -> Result<Self, Error> {
        match s.to_ascii_lowercase().as_str() {
            "f32" | "float32" => Ok(DeviceTransfer::F32),
            "u8" | "uint8" => Ok(DeviceTransfer::U8),
            o => Err(Error::Config(format!(
                "unknown --augment_transfer={o}: use f32 (exact) or uint8 (4x less traffic)"
            ))),
        }
    }

    /// `f32` or `uint8`.
    pub fn name(self) -> &'static str {
        match self {
            DeviceTransfer::F32 => "f32",
            DeviceTransfer::U8 => "uint8",
        }
    }
}

/// Codes of the colour-jitter slots of [`DEVICE_PARAMS`].
pub mod op_code {
    /// No colour jitter drawn for this view: the slot does nothing (no clip).
    pub const NONE: f32 = 0.0;
    /// Multiply by the value, then clip (simclrv2 brightness).
    pub const MUL: f32 = 1.0;
    /// Add the value, then clip (simclrv1 brightness).
    pub const ADD: f32 = 2.0;
    /// Contrast with the value as factor, then clip.
    pub const CONTRAST: f32 = 3.0;
    /// Saturation with the value as factor, then clip.
    pub const SATURATION: f32 = 4.0;
    /// Hue shift by the value (turns), then clip.
    pub const HUE: f32 = 5.0;
    /// Only the clip (an operation whose magnitude is 0).
    pub const CLIP: f32 = 6.0;
}

/// The first half of [`preprocess_for_train_into`] for augmentation on a
/// device: the crop and the resize into `out` (never flipped, not clipped),
/// and every later random decision — flip, colour jitter (order and
/// magnitudes), grayscale — drawn from `rng` in the same order as the host
/// path and written to `params` ([`DEVICE_PARAMS`] values; the blur slot is
/// left for the caller). [`apply_device_params`] on the result gives exactly
/// the view of [`preprocess_for_train_into`].
///
/// # Errors
/// As [`preprocess_for_train_into`]; [`Error::Config`] when `params` does not
/// hold [`DEVICE_PARAMS`] values.
pub fn preprocess_for_device_into(
    img: &ImageU8,
    cfg: &AugmentConfig,
    rng: &mut Rng,
    out: &mut [f32],
    params: &mut [f32],
) -> Result<(), Error> {
    if img.height == 0 || img.width == 0 {
        return Err(Error::Config("empty image".into()));
    }
    let size = cfg.image_size;
    if out.len() != size * size * 3 || params.len() != DEVICE_PARAMS {
        return Err(Error::Config(format!(
            "the output buffers hold {} and {} values, not {size}x{size}x3 and {DEVICE_PARAMS}",
            out.len(),
            params.len()
        )));
    }
    let flip = if cfg.crop {
        let win = sample_distorted_crop(img.height, img.width, &CropParams::simclr(1.0), rng);
        let flip = cfg.flip && rng.bernoulli(0.5);
        crop_resize_u8(img, &win, size, size, cfg.resize, false, out);
        flip
    } else {
        check_size(img, size)?;
        let lut = u8_to_unit();
        for (o, &v) in out.iter_mut().zip(&img.data) {
            *o = lut[v as usize];
        }
        cfg.flip && rng.bernoulli(0.5)
    };
    let mut steps = Vec::with_capacity(6);
    if cfg.color_distort {
        color_distortion_steps(cfg.color_jitter_strength, cfg.brightness, rng, &mut steps);
    }
    encode_steps(flip, &steps, params);
    Ok(())
}

fn encode_steps(flip: bool, steps: &[PixelStep], params: &mut [f32]) {
    params.fill(0.0);
    params[0] = if flip { 1.0 } else { 0.0 };
    let mut slot = 0;
    for s in steps {
        let (code, value) = match *s {
            PixelStep::Mul(f) => (op_code::MUL, f),
            PixelStep::Add(d) => (op_code::ADD, d),
            PixelStep::Contrast(f, _) => (op_code::CONTRAST, f),
            PixelStep::Saturation(f) => (op_code::SATURATION, f),
            PixelStep::Hue(d) => (op_code::HUE, d),
            PixelStep::Clip => (op_code::CLIP, 0.0),
            PixelStep::Gray => {
                params[9] = 1.0;
                continue;
            }
        };
        if slot < 4 {
            params[1 + slot] = code;
            params[5 + slot] = value;
            slot += 1;
        }
    }
}

/// Applies one view's [`DEVICE_PARAMS`] on the host to an `size`×`size`
/// image from [`preprocess_for_device_into`] (or its `uint8` rounding):
/// flip, the colour slots, grayscale, the final clip. The blur slot is not
/// used (see [`blur_one_of_batch`]).
///
/// # Errors
/// [`Error::Config`] for buffers of the wrong length or an unknown op code.
pub fn apply_device_params(image: &mut [f32], size: usize, params: &[f32]) -> Result<(), Error> {
    if image.len() != size * size * 3 || params.len() != DEVICE_PARAMS {
        return Err(Error::Config(format!(
            "expected {size}x{size}x3 values and {DEVICE_PARAMS} parameters, got {} and {}",
            image.len(),
            params.len()
        )));
    }
    if params[0] != 0.0 {
        flip_rows(image, size, size);
    }
    let mut steps = Vec::with_capacity(6);
    for slot in 0..4 {
        let (code, v) = (params[1 + slot], params[5 + slot]);
        steps.push(match code {
            c if c == op_code::NONE => continue,
            c if c == op_code::MUL => PixelStep::Mul(v),
            c if c == op_code::ADD => PixelStep::Add(v),
            c if c == op_code::CONTRAST => PixelStep::Contrast(v, [0.0; 3]),
            c if c == op_code::SATURATION => PixelStep::Saturation(v),
            c if c == op_code::HUE => PixelStep::Hue(v),
            c if c == op_code::CLIP => PixelStep::Clip,
            c => {
                return Err(Error::Config(format!(
                    "unknown colour op code {c} in slot {slot}"
                )))
            }
        });
    }
    if params[9] != 0.0 {
        steps.push(PixelStep::Gray);
    }
    steps.push(PixelStep::Clip);
    apply_steps(image, size * size, &mut steps);
    Ok(())
}

/// `v` in [0, 1] (values outside are clipped) as the nearest byte of `v·255`:
/// the `uint8` transfer of a resized view.
pub fn quantize_u8(v: f32) -> u8 {
    // Ties to even like `round_ties_even`, without its library call on
    // x86-64 without SSE4.1: adding and subtracting 2^23 leaves an f32 in
    // [0, 255] rounded to an integer in the default rounding mode (floats
    // in [2^23, 2^24) are the integers), and the loop vectorises.
    const TWO_23: f32 = 8_388_608.0;
    ((v.clamp(0.0, 1.0) * 255.0 + TWO_23) - TWO_23) as u8
}

#[cfg(test)]
#[path = "augment_tests.rs"]
mod tests;
