//! The inner loops of the host augmentation, written so that the compiler
//! turns them into SIMD code, and compiled twice: for the baseline x86-64
//! instruction set and for AVX2, picked at run time.
//!
//! Every kernel performs the same IEEE operations, in the same order per
//! value, as the straightforward per-pixel code it replaces in
//! [`super::augment`] (no fused multiply-add, no reassociated sums): only the
//! branches become selects and the loops run over several values at once. The
//! results are therefore bit-identical on every CPU, with or without AVX2,
//! which keeps the augmentation fixtures and the per-example seeding exact.
//!
//! * colour: every step on planar copies of a block of pixels ([`Planes`]),
//!   saturation and hue as RGB→HSV→RGB without branches;
//! * blur: the separable Gaussian with its accumulators held in registers;
//! * resize: the vertical taps of TF's bicubic kernel over a row, and the
//!   horizontal taps one pixel (four lanes) at a time.

/// Defines the function `$name` with the body `$body`, compiled twice: for
/// the baseline instruction set and for AVX2, the copy run chosen per call.
macro_rules! with_avx2 {
    ($(#[$m:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$m])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn imp($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2")]
                fn avx2($($arg: $ty),*) $(-> $ret)? {
                    imp($($arg),*)
                }
                if $crate::data::pixels::avx2_enabled() {
                    // SAFETY: the CPU supports AVX2, checked just above.
                    return unsafe { avx2($($arg),*) };
                }
            }
            imp($($arg),*)
        }
    };
}
pub(crate) use with_avx2;

thread_local! {
    static BASELINE_ONLY: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether the kernels run their AVX2 copies on this thread: the CPU has
/// AVX2 and no [`baseline_only`] is in progress.
#[cfg(target_arch = "x86_64")]
pub fn avx2_enabled() -> bool {
    !BASELINE_ONLY.with(|b| b.get()) && std::arch::is_x86_feature_detected!("avx2")
}

/// Runs `f` with the kernels of this thread on their baseline copies, as on
/// a CPU without AVX2: the results are the same, only the speed differs
/// (for tests and `examples/augment_bench --baseline`).
pub fn baseline_only<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            BASELINE_ONLY.with(|b| b.set(self.0));
        }
    }
    let _restore = Restore(BASELINE_ONLY.with(|b| b.replace(true)));
    f()
}

/// Pixels per block of the colour kernels: three planar copies of a block
/// stay in the L1 cache.
pub const BLOCK_PIXELS: usize = 256;

/// A block of up to [`BLOCK_PIXELS`] RGB pixels in planar form: the colour
/// steps run on it one after the other, so an image is deinterleaved and
/// interleaved again once per pass, whatever the number of steps.
pub struct Planes {
    /// Red values.
    pub r: [f32; BLOCK_PIXELS],
    /// Green values.
    pub g: [f32; BLOCK_PIXELS],
    /// Blue values.
    pub b: [f32; BLOCK_PIXELS],
    /// Pixels held.
    pub n: usize,
}

impl Planes {
    /// An empty block.
    pub fn new() -> Self {
        Planes {
            r: [0.0; BLOCK_PIXELS],
            g: [0.0; BLOCK_PIXELS],
            b: [0.0; BLOCK_PIXELS],
            n: 0,
        }
    }

    /// Loads the interleaved pixels of `block` (at most [`BLOCK_PIXELS`]).
    #[inline(always)]
    pub fn load(&mut self, block: &[f32]) {
        self.n = (block.len() / 3).min(BLOCK_PIXELS);
        let (r, g, b) = (&mut self.r, &mut self.g, &mut self.b);
        if let Ok(full) = <&[f32; 3 * BLOCK_PIXELS]>::try_from(block) {
            // A whole block: a fixed trip count the compiler vectorises.
            for i in 0..BLOCK_PIXELS {
                r[i] = full[3 * i];
                g[i] = full[3 * i + 1];
                b[i] = full[3 * i + 2];
            }
            return;
        }
        for (i, px) in block.chunks_exact(3).take(BLOCK_PIXELS).enumerate() {
            r[i] = px[0];
            g[i] = px[1];
            b[i] = px[2];
        }
    }

    /// Stores the pixels back, interleaved, into `block`.
    #[inline(always)]
    pub fn store(&self, block: &mut [f32]) {
        if let Ok(full) = <&mut [f32; 3 * BLOCK_PIXELS]>::try_from(&mut *block) {
            for i in 0..BLOCK_PIXELS {
                full[3 * i] = self.r[i];
                full[3 * i + 1] = self.g[i];
                full[3 * i + 2] = self.b[i];
            }
            return;
        }
        for (i, px) in block.chunks_exact_mut(3).take(self.n).enumerate() {
            px[0] = self.r[i];
            px[1] = self.g[i];
            px[2] = self.b[i];
        }
    }

    /// `f(v)` for every value.
    #[inline(always)]
    pub fn map(&mut self, f: impl Fn(f32) -> f32) {
        let n = self.n.min(BLOCK_PIXELS);
        for plane in [&mut self.r, &mut self.g, &mut self.b] {
            for v in &mut plane[..n] {
                *v = f(*v);
            }
        }
    }

    /// `clip((v − mean_c)·factor + mean_c)` per channel `c`.
    #[inline(always)]
    pub fn contrast(&mut self, factor: f32, means: [f32; 3]) {
        let n = self.n.min(BLOCK_PIXELS);
        for (plane, m) in [&mut self.r, &mut self.g, &mut self.b]
            .into_iter()
            .zip(means)
        {
            for v in &mut plane[..n] {
                *v = ((*v - m) * factor + m).clamp(0.0, 1.0);
            }
        }
    }

    /// `g = 0.2989·R + 0.5870·G + 0.1140·B` in every channel.
    #[inline(always)]
    pub fn gray(&mut self) {
        self.map_pixels(|r, g, b| {
            let v = r * 0.2989 + g * 0.5870 + b * 0.1140;
            (v, v, v)
        });
    }

    /// `f(r, g, b)` for every pixel.
    #[inline(always)]
    pub fn map_pixels(&mut self, f: impl Fn(f32, f32, f32) -> (f32, f32, f32)) {
        let n = self.n.min(BLOCK_PIXELS);
        let (rs, gs, bs) = (&mut self.r[..n], &mut self.g[..n], &mut self.b[..n]);
        for i in 0..n {
            let (r, g, b) = f(rs[i], gs[i], bs[i]);
            rs[i] = r;
            gs[i] = g;
            bs[i] = b;
        }
    }

    /// Adds the values of each channel, in pixel order, to `sums`.
    #[inline(always)]
    pub fn add_sums(&self, sums: &mut [f64; 3]) {
        let n = self.n.min(BLOCK_PIXELS);
        for (s, plane) in sums.iter_mut().zip([&self.r, &self.g, &self.b]) {
            for &v in &plane[..n] {
                *s += v as f64;
            }
        }
    }

    /// Saturation by `factor`, clipped to [0, 1] after.
    #[inline(always)]
    pub fn saturation(&mut self, factor: f32) {
        self.map_pixels(|r, g, b| {
            let (r, g, b) = saturate(r, g, b, factor);
            (r.clamp(0.0, 1.0), g.clamp(0.0, 1.0), b.clamp(0.0, 1.0))
        });
    }

    /// Hue rotation by `delta` turns (see [`hue_block_applies`]), clipped to
    /// [0, 1] after.
    #[inline(always)]
    pub fn hue(&mut self, delta: f32) {
        let delta6 = delta * 6.0;
        self.map_pixels(|r, g, b| {
            let (r, g, b) = shift_hue(r, g, b, delta6);
            (r.clamp(0.0, 1.0), g.clamp(0.0, 1.0), b.clamp(0.0, 1.0))
        });
    }
}

impl Default for Planes {
    fn default() -> Self {
        Self::new()
    }
}

/// `v as i32` for `v` in `[0, top + 1)` (and 0 for NaN, as the cast gives),
/// counted from comparisons: the saturating cast does not vectorise.
#[inline(always)]
fn sector(v: f32, top: i32) -> i32 {
    (1..=top).map(|k| i32::from(v >= k as f32)).sum()
}

const ONE_THIRD: f32 = (2.0f64 / 6.0) as f32;
const TWO_THIRDS: f32 = (4.0f64 / 6.0) as f32;

/// The channels of a pixel of hue sector `cat` (0..=5) from its largest,
/// middle and smallest values (TF's case tables); any other sector gives
/// `lo` in every channel.
#[inline(always)]
fn from_sector(cat: i32, hi: f32, mid: f32, lo: f32) -> (f32, f32, f32) {
    let pick = |h: [i32; 2], m: [i32; 2]| {
        if cat == h[0] || cat == h[1] {
            hi
        } else if cat == m[0] || cat == m[1] {
            mid
        } else {
            lo
        }
    };
    (
        pick([0, 5], [1, 4]),
        pick([1, 2], [0, 3]),
        pick([3, 4], [2, 5]),
    )
}

/// `tf.image.adjust_saturation` on one pixel, without branches: TF's
/// RGB→HSV (hue in turns), `S ← clip(S·factor, 0, 1)`, HSV→RGB.
#[inline(always)]
fn saturate(r: f32, g: f32, b: f32, factor: f32) -> (f32, f32, f32) {
    let v = r.max(g.max(b));
    let range = v - r.min(g.min(b));
    let s = if v > 0.0 { range / v } else { 0.0 };
    let norm = 1.0f32 / (6.0f32 * range);
    let h = if r == v {
        norm * (g - b)
    } else if g == v {
        norm * (b - r) + ONE_THIRD
    } else {
        norm * (r - g) + TWO_THIRDS
    };
    let h = if range <= 0.0 { 0.0 } else { h };
    let h = if h < 0.0 { h + 1.0 } else { h };
    let s = (s * factor).clamp(0.0, 1.0);
    // HSV→RGB. `h` is in [0, 1], so the sector is 0..=6 and `dh` minus its
    // even part is TF's `fmodu` (its loops subtract 2 exactly that often).
    let c = s * v;
    let m = v - c;
    let dh = h * 6.0;
    let cat = sector(dh, 6);
    let fmodu = dh - (cat & !1) as f32;
    let x = c * (1.0 - (fmodu - 1.0).abs());
    let (rr, gg, bb) = from_sector(cat, c, x, 0.0);
    (rr + m, gg + m, bb + m)
}

/// `tf.image.adjust_hue` on one pixel, without branches: TF's hue in sixths
/// of a turn from the sorted channels, shifted by `delta6 = 6·δ` with
/// `|delta6| < 6`, and back. For such shifts one conditional `+6` and one
/// conditional `−6` are what TF's wrap-around loops do.
#[inline(always)]
fn shift_hue(r: f32, g: f32, b: f32, delta6: f32) -> (f32, f32, f32) {
    // The sorted channels as values (ties are equal values), and TF's
    // sector of the ordering.
    let vmax = r.max(g).max(b);
    let vmin = r.min(g).min(b);
    let vmid = r.min(g).max(r.max(g).min(b));
    let rg = r < g;
    let cat: i32 = if rg {
        if b < r {
            1
        } else if b > g {
            3
        } else {
            2
        }
    } else if b < g {
        0
    } else if b > r {
        4
    } else {
        5
    };
    let ratio = (vmid - vmin) / (vmax - vmin);
    let h = if cat & 1 == 0 {
        cat as f32 + ratio
    } else {
        cat as f32 + (1.0 - ratio)
    };
    let h = if vmax == vmin { 0.0 } else { h };
    let h = h + delta6;
    let h = if h < 0.0 { h + 6.0 } else { h };
    let h = if h >= 6.0 { h - 6.0 } else { h };
    let cat = sector(h, 5);
    let ratio = h - cat as f32;
    let ratio = if cat & 1 != 0 { 1.0 - ratio } else { ratio };
    let vmid = vmin + ratio * (vmax - vmin);
    // TF's switch sends every sector but 0..=4 to its last case.
    let cat = if (0..=4).contains(&cat) { cat } else { 5 };
    from_sector(cat, vmax, vmid, vmin)
}

/// Whether [`Planes::hue`] reproduces TF for this shift (|6·δ| < 6); larger
/// shifts take the per-pixel path with TF's loops.
pub fn hue_block_applies(delta: f32) -> bool {
    (delta * 6.0).abs() < 6.0
}

/// Values per register block of the blur: 32 floats are four AVX registers
/// (eight SSE ones), enough independent sums to keep the adders busy.
const LANES: usize = 32;

/// The horizontal pass of the separable blur on one row of `w` RGB pixels:
/// `dst[x] = Σ_k src[x + k − r]·filter[k]`, taps in filter order, the
/// 'SAME' zero padding supplied by `padded`, a buffer the row is copied into
/// with `r` zero pixels on each side (`(w + 2r)·3` values). Adding a padded
/// zero leaves a sum unchanged, so this equals skipping the outside taps.
#[inline(always)]
fn blur_row_body(src: &[f32], dst: &mut [f32], filter: &[f32], padded: &mut [f32]) {
    let n = src.len();
    let r3 = (filter.len() / 2) * 3;
    padded[..r3].fill(0.0);
    padded[r3..r3 + n].copy_from_slice(src);
    padded[r3 + n..].fill(0.0);
    let mut chunks = dst.chunks_exact_mut(LANES);
    let mut j = 0;
    for out in &mut chunks {
        let mut acc = [0f32; LANES];
        for (k, &fw) in filter.iter().enumerate() {
            let s = &padded[j + k * 3..j + k * 3 + LANES];
            for l in 0..LANES {
                acc[l] += s[l] * fw;
            }
        }
        out.copy_from_slice(&acc);
        j += LANES;
    }
    for (l, o) in chunks.into_remainder().iter_mut().enumerate() {
        let mut acc = 0f32;
        for (k, &fw) in filter.iter().enumerate() {
            acc += padded[j + l + k * 3] * fw;
        }
        *o = acc;
    }
}

with_avx2! {
    /// [`blur_row_body`] on every row of an `h`×`w` RGB image, `src` → `dst`.
    pub fn blur_rows(src: &[f32], dst: &mut [f32], w: usize, filter: &[f32], padded: &mut [f32]) {
        let row = w * 3;
        if row == 0 {
            return;
        }
        for (s, d) in src.chunks_exact(row).zip(dst.chunks_exact_mut(row)) {
            blur_row_body(s, d, filter, padded);
        }
    }
}

with_avx2! {
    /// The vertical pass of the separable blur: every row of `dst` (`h` rows
    /// of `row` values) is `Σ_k src[y + k − r]·filter[k]` over the rows
    /// inside the image, taps in filter order; clipped to [0, 1] when `clip`.
    pub fn blur_columns(src: &[f32], dst: &mut [f32], row: usize, filter: &[f32], clip: bool) {
        if row == 0 {
            return;
        }
        let h = dst.len() / row;
        let r = filter.len() / 2;
        for y in 0..h {
            // Taps whose row lies inside the image.
            let k0 = r.saturating_sub(y);
            let k1 = filter.len().min(h + r - y);
            let out = &mut dst[y * row..(y + 1) * row];
            let mut j = 0;
            while j + LANES <= row {
                let mut acc = [0f32; LANES];
                for (k, &fw) in filter.iter().enumerate().take(k1).skip(k0) {
                    let s = &src[(y + k - r) * row + j..][..LANES];
                    for l in 0..LANES {
                        acc[l] += s[l] * fw;
                    }
                }
                if clip {
                    for v in &mut acc {
                        *v = v.clamp(0.0, 1.0);
                    }
                }
                out[j..j + LANES].copy_from_slice(&acc);
                j += LANES;
            }
            for (l, o) in out[j..].iter_mut().enumerate() {
                let mut acc = 0f32;
                for (k, &fw) in filter.iter().enumerate().take(k1).skip(k0) {
                    acc += src[(y + k - r) * row + j + l] * fw;
                }
                *o = if clip { acc.clamp(0.0, 1.0) } else { acc };
            }
        }
    }
}

with_avx2! {
    /// The vertical taps of the bicubic resize over one row:
    /// `col[i] = r0[i]·w0 + r1[i]·w1 + r2[i]·w2 + r3[i]·w3`.
    pub fn resize_vertical(rows: [&[f32]; 4], w: [f32; 4], col: &mut [f32]) {
        let n = col.len();
        let (r0, r1, r2, r3) = (&rows[0][..n], &rows[1][..n], &rows[2][..n], &rows[3][..n]);
        for i in 0..n {
            col[i] = r0[i] * w[0] + r1[i] * w[1] + r2[i] * w[2] + r3[i] * w[3];
        }
    }
}

with_avx2! {
    /// The horizontal taps of the bicubic resize over one output row:
    /// pixel `x` (written at `out_w − 1 − x` when `flip`) is
    /// `Σ_k col[clamp(start_x + k)]·w_k` per channel, the three channels
    /// computed together in four lanes. `col4` (`col.len() / 3 + pad + more`
    /// pixels) receives the row with its border pixel repeated `pad` times
    /// before and to the end after, so that the taps of `x` are the four
    /// consecutive pixels from `first[x] = start_x + pad`: the values the
    /// clamped indices read.
    pub fn resize_horizontal(
        col: &[f32],
        col4: &mut [[f32; 4]],
        pad: usize,
        first: &[usize],
        w: &[[f32; 4]],
        out: &mut [f32],
        flip: bool,
    ) {
        let in_w = col.len() / 3;
        if in_w == 0 {
            return;
        }
        let pad = pad.min(col4.len());
        let (head, rest) = col4.split_at_mut(pad);
        let (mid, tail) = rest.split_at_mut(in_w.min(rest.len()));
        for (q, px) in mid.iter_mut().zip(col.chunks_exact(3)) {
            *q = [px[0], px[1], px[2], 0.0];
        }
        let edge = |i: usize| [col[i * 3], col[i * 3 + 1], col[i * 3 + 2], 0.0];
        head.fill(edge(0));
        tail.fill(edge(in_w - 1));
        let out_w = first.len().min(w.len()).min(out.len() / 3);
        // Pixels are stored in increasing order, all four lanes but for the
        // last one: the fourth lane is overwritten by the next pixel.
        for dst in 0..out_w {
            let x = if flip { out_w - 1 - dst } else { dst };
            let t = &w[x];
            let taps = &col4[first[x]..first[x] + 4];
            let (a, b, c, d) = (taps[0], taps[1], taps[2], taps[3]);
            let mut v = [0f32; 4];
            for l in 0..4 {
                v[l] = a[l] * t[0] + b[l] * t[1] + c[l] * t[2] + d[l] * t[3];
            }
            if dst + 1 < out_w {
                out[dst * 3..dst * 3 + 4].copy_from_slice(&v);
            } else {
                out[dst * 3..dst * 3 + 3].copy_from_slice(&v[..3]);
            }
        }
    }
}
