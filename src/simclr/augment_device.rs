//! Training-view augmentation applied on the device, inside the traced
//! step (`--augment_on_device`).
//!
//! The host still decodes, samples the crop and resizes (the part whose
//! shapes vary per image) and draws every random decision with the streams
//! of the host path ([`crate::data::augment::preprocess_for_device_into`]);
//! the step program then applies, per example, the flip, the four colour
//! jitter slots in their drawn order (brightness, contrast, saturation, hue,
//! each followed by the clip to [0, 1]), grayscale, the clip and, with blur,
//! the Gaussian blur whose σ is shared by one view of the per-replica batch.
//! The operations reproduce the host formulas of [`crate::data::augment`]
//! step by step, so the views agree with the host path to float rounding.
//!
//! Inputs of the program (per replica, `N = views · n` views):
//! * `images`: `f32[N, S, S, 3]` (the resized views as the host computes
//!   them) or `u8[N, S, S, 3]` (those values rounded to bytes: four times
//!   less traffic, at most 1/510 away before the colour operations);
//! * `augment_params`: `f32[N, DEVICE_PARAMS]` (see
//!   [`crate::data::augment::DEVICE_PARAMS`]);
//! * `blur_filters`: `f32[views, K]` with blur: the normalised 1-D filter of
//!   each view, `K = 2·⌊⌊S/10⌋/2⌋ + 1` taps.

use crate::data::augment::{op_code, DEVICE_PARAMS};
use crate::ir::{
    Builder, ComparisonDirection, ElementType, Module, PadDim, Shape, Tensor, UnaryOp,
};

pub use crate::data::augment::DeviceTransfer as Transfer;

/// The element type of the `images` input for `transfer`.
pub fn element_type(transfer: Transfer) -> ElementType {
    match transfer {
        Transfer::F32 => ElementType::F32,
        Transfer::U8 => ElementType::U8,
    }
}

/// The shape of the device augmentation of one replica's batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceAugment {
    /// Output side `S` (`--image_size`).
    pub image_size: i64,
    /// Views per example.
    pub views: i64,
    /// Examples per replica `n`.
    pub per_replica_batch: i64,
    /// Apply the blur step (`--use_blur` in pretraining).
    pub blur: bool,
    /// How the images travel.
    pub transfer: Transfer,
}

impl DeviceAugment {
    /// What `--augment_on_device` applies in a step of `step`: two views
    /// with the blur (when `use_blur`) in pretraining, one view without it
    /// when fine-tuning or distilling.
    pub fn for_step(
        step: &super::StepConfig,
        image_size: i64,
        use_blur: bool,
        transfer: Transfer,
    ) -> Self {
        let pretrain = step.train_mode == super::TrainMode::Pretrain;
        DeviceAugment {
            image_size,
            views: if pretrain { 2 } else { 1 },
            per_replica_batch: step.per_replica_batch,
            blur: pretrain && use_blur,
            transfer,
        }
    }
}

/// The data inputs that carry the augmentation, besides the images.
#[derive(Clone, Debug)]
pub struct AugmentInputs {
    /// `f32[N, DEVICE_PARAMS]`.
    pub params: Tensor,
    /// `f32[views, K]` with blur.
    pub blur_filters: Option<Tensor>,
}

/// Taps of the blur filter for views of side `image_size`
/// (`kernel_size = image_size / 10`, radius `kernel_size / 2`).
pub fn blur_taps(image_size: usize) -> usize {
    2 * ((image_size / 10) / 2) + 1
}

impl DeviceAugment {
    fn n_views(&self) -> i64 {
        self.views * self.per_replica_batch
    }

    /// Shape of the `images` input.
    pub fn images_shape(&self) -> Shape {
        let s = self.image_size;
        Shape::new(element_type(self.transfer), [self.n_views(), s, s, 3])
    }

    /// Shapes of the inputs after the images (and the labels of a step):
    /// the parameters, then the blur filters with blur.
    pub fn extra_shapes(&self) -> Vec<Shape> {
        let mut v = vec![Shape::new(
            ElementType::F32,
            [self.n_views(), DEVICE_PARAMS as i64],
        )];
        if self.blur {
            v.push(Shape::new(
                ElementType::F32,
                [self.views, blur_taps(self.image_size as usize) as i64],
            ));
        }
        v
    }

    /// Declares the inputs of [`DeviceAugment::extra_shapes`] on `b`.
    pub fn parameters(&self, b: &Builder) -> AugmentInputs {
        let shapes = self.extra_shapes();
        let params = b.parameter("augment_params", shapes[0].clone());
        let blur_filters = shapes
            .get(1)
            .map(|s| b.parameter("blur_filters", s.clone()));
        AugmentInputs {
            params,
            blur_filters,
        }
    }

    /// The augmented views, `f32[N, S, S, 3]` in [0, 1], from the `images`
    /// input and the [`AugmentInputs`].
    pub fn apply(&self, images: &Tensor, inputs: &AugmentInputs) -> Tensor {
        let n = self.n_views();
        let s = self.image_size;
        let full = [n, s, s, 3];
        let mut x = match self.transfer {
            Transfer::F32 => images.clone(),
            Transfer::U8 => images.convert(ElementType::F32) / 255.0,
        };
        let p = &inputs.params;
        // Column i of the parameters broadcast over the view's pixels.
        let col = |i: i64| -> Tensor {
            p.slice_dim(1, i, i + 1)
                .reshape(&[n])
                .broadcast_in_dim(&full, &[0])
        };
        let is = |c: &Tensor, v: f32| c.compare(ComparisonDirection::Eq, &c.scalar_like(v as f64));
        let set = |c: &Tensor| c.compare(ComparisonDirection::Ne, &c.scalar_like(0.0));

        // Flip left-right.
        x = set(&col(0)).select(&x.reverse(&[2]), &x);

        // The colour-jitter slots, each the drawn operation then the clip.
        for slot in 0..4 {
            let code = col(1 + slot);
            let v = col(5 + slot);
            let mul = clip(&(&x * &v));
            let add = clip(&(&x + &v));
            let contrast = clip(&adjust_contrast(&x, &v));
            let sat = clip(&adjust_saturation(&x, &v));
            let hue = clip(&adjust_hue(&x, &v));
            let clipped = clip(&x);
            let mut y = is(&code, op_code::CLIP).select(&clipped, &x);
            y = is(&code, op_code::HUE).select(&hue, &y);
            y = is(&code, op_code::SATURATION).select(&sat, &y);
            y = is(&code, op_code::CONTRAST).select(&contrast, &y);
            y = is(&code, op_code::ADD).select(&add, &y);
            x = is(&code, op_code::MUL).select(&mul, &y);
        }

        // Grayscale, then the clip that ends the view.
        let [r, g, b] = channels(&x);
        let gray = (&r * 0.2989 + &g * 0.5870 + &b * 0.1140).broadcast_in_dim(&full, &[0, 1, 2]);
        x = clip(&set(&col(9)).select(&gray, &x));

        // The blur of each view of the per-replica batch, kept per example.
        if let Some(filters) = &inputs.blur_filters {
            let per = self.per_replica_batch;
            let taps = blur_taps(s as usize) as i64;
            let parts: Vec<Tensor> = (0..self.views)
                .map(|v| {
                    let xv = x.slice_dim(0, v * per, (v + 1) * per);
                    let f: Vec<Tensor> = (0..taps)
                        .map(|k| {
                            filters
                                .slice(&[v, k], &[v + 1, k + 1], &[1, 1])
                                .reshape(&[])
                        })
                        .collect();
                    let h = blur_axis(&xv, 2, &f, s);
                    blur_axis(&h, 1, &f, s)
                })
                .collect();
            let first = &parts[0];
            let rest: Vec<&Tensor> = parts[1..].iter().collect();
            let blurred = if rest.is_empty() {
                first.clone()
            } else {
                first.concat(&rest, 0)
            };
            x = set(&col(10)).select(&clip(&blurred), &x);
        }
        x
    }

    /// A program of its own that only augments: inputs `images`,
    /// `augment_params` (and `blur_filters`), output the views.
    ///
    /// # Errors
    /// An invalid program (a bug).
    pub fn program(&self) -> Result<Module, crate::ir::Error> {
        let b = Builder::new("augment_on_device", 1);
        let images = b.parameter("images", self.images_shape());
        let inputs = self.parameters(&b);
        let out = self.apply(&images, &inputs);
        b.build(&[&out])
    }
}

fn clip(x: &Tensor) -> Tensor {
    x.clamp(&x.scalar_like(0.0), &x.scalar_like(1.0))
}

/// The three channels of `[N, S, S, 3]` as `[N, S, S]` each.
fn channels(x: &Tensor) -> [Tensor; 3] {
    let d = x.dims();
    let c = |i: i64| x.slice_dim(3, i, i + 1).reshape(&d[..3]);
    [c(0), c(1), c(2)]
}

fn join(r: &Tensor, g: &Tensor, b: &Tensor) -> Tensor {
    let mut d = r.dims();
    d.push(1);
    r.reshape(&d).concat(&[&g.reshape(&d), &b.reshape(&d)], 3)
}

/// `(x − mean)·f + mean` with each image's per-channel spatial mean (summed
/// in f64 like the host).
fn adjust_contrast(x: &Tensor, f: &Tensor) -> Tensor {
    let d = x.dims();
    let pixels = (d[1] * d[2]) as f64;
    let mean = (x.convert(ElementType::F64).sum(&[1, 2]) / pixels)
        .convert(ElementType::F32)
        .broadcast_in_dim(&d, &[0, 3]);
    (x - &mean) * f + &mean
}

fn sel(p: &Tensor, a: &Tensor, b: &Tensor) -> Tensor {
    p.select(a, b)
}

fn lt(a: &Tensor, b: &Tensor) -> Tensor {
    a.compare(ComparisonDirection::Lt, b)
}

fn eq(a: &Tensor, b: &Tensor) -> Tensor {
    a.compare(ComparisonDirection::Eq, b)
}

/// `tf.image.adjust_saturation` with the host's RGB↔HSV formulas.
fn adjust_saturation(x: &Tensor, f: &Tensor) -> Tensor {
    let [r, g, b] = channels(x);
    let f = f.slice_dim(3, 0, 1).reshape(&r.dims());
    let zero = r.full_like(0.0);
    let one = r.full_like(1.0);
    // RGB → HSV.
    let vv = r.max(&g.max(&b));
    let range = &vv - &r.min(&g.min(&b));
    let s = sel(&lt(&zero, &vv), &(&range / &vv), &zero);
    let norm = r.scalar_like(1.0) / (&range * 6.0);
    let h_r = &norm * &(&g - &b);
    let h_g = &norm * &(&b - &r) + (2.0f64 / 6.0) as f32 as f64;
    let h_b = &norm * &(&r - &g) + (4.0f64 / 6.0) as f32 as f64;
    let mut h = sel(&eq(&r, &vv), &h_r, &sel(&eq(&g, &vv), &h_g, &h_b));
    h = sel(&range.compare(ComparisonDirection::Le, &zero), &zero, &h);
    h = sel(&lt(&h, &zero), &(&h + 1.0), &h);
    // S ← clip(S·f, 0, 1), then HSV → RGB.
    let s = (&s * &f).clamp(&zero, &one);
    let c = &s * &vv;
    let m = &vv - &c;
    let dh = &h * 6.0;
    let cat = dh.unary(UnaryOp::Floor);
    let fmodu = &dh - &((&dh * 0.5).unary(UnaryOp::Floor) * 2.0);
    let xx = &c * &(r.scalar_like(1.0) - (&fmodu - 1.0).abs());
    let k = |v: f64| eq(&cat, &cat.scalar_like(v));
    // Per category: (c,x,0) (x,c,0) (0,c,x) (0,x,c) (x,0,c) (c,0,x), else 0.
    let pick = |vals: [&Tensor; 6]| -> Tensor {
        let mut out = zero.clone();
        for (i, v) in vals.iter().enumerate().rev() {
            out = sel(&k(i as f64), v, &out);
        }
        out
    };
    let rr = pick([&c, &xx, &zero, &zero, &xx, &c]);
    let gg = pick([&xx, &c, &c, &xx, &zero, &zero]);
    let bb = pick([&zero, &zero, &xx, &c, &c, &xx]);
    join(&(&rr + &m), &(&gg + &m), &(&bb + &m))
}

/// `tf.image.adjust_hue` with the host's hue/range formulas.
fn adjust_hue(x: &Tensor, d: &Tensor) -> Tensor {
    let [r, g, b] = channels(x);
    let delta = d.slice_dim(3, 0, 1).reshape(&r.dims());
    let zero = r.full_like(0.0);
    let num = |v: f64| r.full_like(v);
    // Sort the channels: (max, mid, min) and the sextant.
    let r_lt_g = lt(&r, &g);
    let b_lt_r = lt(&b, &r);
    let b_gt_g = lt(&g, &b);
    let b_lt_g = lt(&b, &g);
    let b_gt_r = lt(&r, &b);
    let pick = |a1: &Tensor, a3: &Tensor, a2: &Tensor, b0: &Tensor, b4: &Tensor, b5: &Tensor| {
        sel(
            &r_lt_g,
            &sel(&b_lt_r, a1, &sel(&b_gt_g, a3, a2)),
            &sel(&b_lt_g, b0, &sel(&b_gt_r, b4, b5)),
        )
    };
    let vmax = pick(&g, &b, &g, &r, &b, &r);
    let vmid = pick(&r, &g, &b, &g, &r, &b);
    let vmin = pick(&b, &r, &r, &b, &g, &g);
    let cat = pick(
        &num(1.0),
        &num(3.0),
        &num(2.0),
        &num(0.0),
        &num(4.0),
        &num(5.0),
    );
    let odd = pick(
        &num(1.0),
        &num(1.0),
        &num(0.0),
        &num(0.0),
        &num(0.0),
        &num(1.0),
    );
    let ratio = (&vmid - &vmin) / (&vmax - &vmin);
    let h = sel(
        &eq(&odd, &zero),
        &(&cat + &ratio),
        &(&cat + &(r.scalar_like(1.0) - &ratio)),
    );
    let mut h = sel(&eq(&vmax, &vmin), &zero, &h);
    // Rotate and wrap into [0, 6).
    h = &h + &(&delta * 6.0);
    h = sel(&lt(&h, &zero), &(&h + 6.0), &h);
    h = sel(
        &h.compare(ComparisonDirection::Ge, &num(6.0)),
        &(&h - 6.0),
        &h,
    );
    // Back to RGB.
    let cat = h.unary(UnaryOp::Floor);
    let mut ratio = &h - &cat;
    let odd = eq(
        &(&cat - &((&cat * 0.5).unary(UnaryOp::Floor) * 2.0)),
        &num(1.0),
    );
    ratio = sel(&odd, &(r.scalar_like(1.0) - &ratio), &ratio);
    let vmid = &vmin + &(&ratio * &(&vmax - &vmin));
    let k = |v: f64| eq(&cat, &num(v));
    // (max,mid,min) (mid,max,min) (min,max,mid) (min,mid,max) (mid,min,max), else (max,min,mid).
    let by_cat = |vals: [&Tensor; 6]| -> Tensor {
        let mut out = vals[5].clone();
        for (i, v) in vals.iter().enumerate().take(5).rev() {
            out = sel(&k(i as f64), v, &out);
        }
        out
    };
    let rr = by_cat([&vmax, &vmid, &vmin, &vmin, &vmid, &vmax]);
    let gg = by_cat([&vmid, &vmax, &vmax, &vmid, &vmin, &vmin]);
    let bb = by_cat([&vmin, &vmin, &vmid, &vmax, &vmax, &vmid]);
    join(&rr, &gg, &bb)
}

/// One pass of the separable blur along `dim` (1: rows, 2: columns) with
/// 'SAME' zero padding, the taps accumulated in filter order as on the host.
fn blur_axis(x: &Tensor, dim: usize, taps: &[Tensor], size: i64) -> Tensor {
    let radius = (taps.len() / 2) as i64;
    let mut pads = vec![PadDim::edge(0, 0); 4];
    pads[dim] = PadDim::edge(radius, radius);
    let padded = x.pad(&x.scalar_like(0.0), &pads);
    let mut acc: Option<Tensor> = None;
    for (k, f) in taps.iter().enumerate() {
        let term = padded.slice_dim(dim, k as i64, k as i64 + size) * f;
        acc = Some(match acc {
            None => term,
            Some(a) => a + term,
        });
    }
    acc.unwrap_or_else(|| x.clone())
}
