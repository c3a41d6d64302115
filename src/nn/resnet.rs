//! The ResNet v1 backbone of SimCLR (SPEC §3): depths 18–200, integer width
//! multipliers, the CIFAR stem for small images, and for `sk_ratio > 0` the
//! ResNet-D deep stem, average-pool shortcuts and selective-kernel 3×3
//! stages; squeeze-and-excitation when `se_ratio > 0`.
//!
//! Variables are created in the TF1 creation order under `base_model/`:
//! stem, then per block the projection shortcut first, then the main branch.

use super::layers::{avg_pool, batch_norm, cast, conv2d, max_pool_same, BnMode};
use super::store::{Init, Store};
use super::ModelConfig;
use crate::ir::{ConvDims, ElementType, Tensor, Window, WindowDim};

const SCOPE: &str = "base_model";

/// Blocks per stage and whether blocks are bottlenecks, for a supported depth.
pub fn depth_layout(depth: u32) -> Option<([usize; 4], bool)> {
    Some(match depth {
        18 => ([2, 2, 2, 2], false),
        34 => ([3, 4, 6, 3], false),
        50 => ([3, 4, 6, 3], true),
        101 => ([3, 4, 23, 3], true),
        152 => ([3, 8, 36, 3], true),
        200 => ([3, 24, 36, 3], true),
        _ => return None,
    })
}

/// Named intermediate outputs of the backbone (SPEC §3.3, §8.6).
#[derive(Clone, Debug)]
pub struct BackboneOutputs {
    /// Output of the last stem conv, before its batch norm.
    pub initial_conv: Tensor,
    /// After the stem's pool (CIFAR stem: after its BN-ReLU).
    pub initial_max_pool: Tensor,
    /// Outputs of the four stages.
    pub block_groups: Vec<Tensor>,
    /// Global average over H and W: the representation h.
    pub final_avg_pool: Tensor,
}

/// Traces the backbone on NHWC images `x` (`[n, H, W, 3]`). With
/// `fine_tune_after_block` = k ≥ 0 the gradient is stopped at the input of
/// stage k+1 (k = 4: at the pooled feature), SPEC §8.4.
pub fn backbone(
    store: &mut Store,
    cfg: &ModelConfig,
    x: &Tensor,
    bn: BnMode,
    fine_tune_after_block: i32,
) -> BackboneOutputs {
    let stop = |h: Tensor, k: i32| {
        if fine_tune_after_block == k {
            h.stop_gradient()
        } else {
            h
        }
    };
    store.set_block(0);
    let b = x.builder().clone();
    let _g = b.scope(SCOPE);
    let w = i64::from(cfg.width_multiplier);
    let (layout, bottleneck) = depth_layout(cfg.resnet_depth).unwrap_or(([2, 2, 2, 2], false));

    let (initial_conv, mut h) = stem_inner(store, cfg, x, bn);
    let initial_max_pool = h.clone();
    h = stop(h, 0);

    let mut block_groups = Vec::with_capacity(4);
    for (stage, &blocks) in layout.iter().enumerate() {
        let _s = b.scope(&format!("block_group{}", stage + 1));
        store.set_block(stage as i32 + 1);
        let filters = (64 << stage) * w;
        let stride = if stage == 0 { 1 } else { 2 };
        for i in 0..blocks {
            let _blk = b.scope(&format!("block{i}"));
            let (s, project) = if i == 0 { (stride, true) } else { (1, false) };
            h = if bottleneck {
                bottleneck_block(store, cfg, &h, filters, s, project, bn)
            } else {
                basic_block(store, cfg, &h, filters, s, project, bn)
            };
        }
        block_groups.push(h.clone());
        if stage < 3 {
            h = stop(h, stage as i32 + 1);
        }
    }
    let final_avg_pool = {
        let _s = b.scope("final_avg_pool");
        // h is f32 under every precision (a mean over H·W cells).
        stop(cast(&h, ElementType::F32).mean(&[1, 2]), 4)
    };
    BackboneOutputs {
        initial_conv,
        initial_max_pool,
        block_groups,
        final_avg_pool,
    }
}

/// The stem (SPEC §3.3) on NHWC images: the CIFAR stem for
/// `image_size <= 32`, else the 7×7/2 stem or, with `sk_ratio > 0`, the
/// ResNet-D deep stem, each followed by the 3×3/2 max pool. Returns
/// `(initial_conv, initial_max_pool)` as [`backbone`] taps them. Lets the
/// stem be traced and checked in isolation.
pub fn stem(store: &mut Store, cfg: &ModelConfig, x: &Tensor, bn: BnMode) -> (Tensor, Tensor) {
    let _g = x.builder().scope(SCOPE);
    stem_inner(store, cfg, x, bn)
}

fn stem_inner(store: &mut Store, cfg: &ModelConfig, x: &Tensor, bn: BnMode) -> (Tensor, Tensor) {
    let b = x.builder().clone();
    let w = i64::from(cfg.width_multiplier);
    let sk = cfg.sk_ratio > 0.0;
    let (initial_conv, mut h) = {
        let _s = b.scope("initial_conv");
        if cfg.image_size <= 32 {
            let c = conv2d(store, SCOPE, x, 64 * w, 3, 1);
            let h = batch_norm(store, SCOPE, &c, bn, true, false, true);
            (c, h)
        } else if sk {
            let c = conv2d(store, SCOPE, x, 64 * w / 2, 3, 2);
            let h = batch_norm(store, SCOPE, &c, bn, true, false, true);
            let c = conv2d(store, SCOPE, &h, 64 * w / 2, 3, 1);
            let h = batch_norm(store, SCOPE, &c, bn, true, false, true);
            let c = conv2d(store, SCOPE, &h, 64 * w, 3, 1);
            let h = batch_norm(store, SCOPE, &c, bn, true, false, true);
            (c, h)
        } else {
            let c = conv2d(store, SCOPE, x, 64 * w, 7, 2);
            let h = batch_norm(store, SCOPE, &c, bn, true, false, true);
            (c, h)
        }
    };
    if cfg.image_size > 32 {
        let _s = b.scope("initial_max_pool");
        h = max_pool_same(&h, 3, 2);
    }
    (initial_conv, h)
}

/// One residual block of the backbone as [`backbone`] builds it: a basic
/// block for depths 18/34, else a bottleneck (with the selective-kernel 3×3
/// stage and the ResNet-D shortcut when `sk_ratio > 0`), on `x` with base
/// filters `filters`, stride `stride`, and a projection shortcut when
/// `project` (SPEC §3.4–§3.7). Variables are created under `base_model/` in
/// TF1 order. Lets a single block be traced and checked in isolation.
pub fn residual_block(
    store: &mut Store,
    cfg: &ModelConfig,
    x: &Tensor,
    filters: i64,
    stride: i64,
    project: bool,
    bn: BnMode,
) -> Tensor {
    let bottleneck = depth_layout(cfg.resnet_depth).is_some_and(|(_, b)| b);
    let _g = x.builder().scope(SCOPE);
    if bottleneck {
        bottleneck_block(store, cfg, x, filters, stride, project, bn)
    } else {
        basic_block(store, cfg, x, filters, stride, project, bn)
    }
}

/// The projection shortcut: 1×1 conv (stride s) + BN, or with SK the
/// ResNet-D form: average pool, then 1×1 conv stride 1 + BN.
fn shortcut(
    store: &mut Store,
    cfg: &ModelConfig,
    x: &Tensor,
    out: i64,
    s: i64,
    bn: BnMode,
) -> Tensor {
    let _g = x.builder().scope("shortcut");
    let c = if cfg.sk_ratio > 0.0 {
        let pooled = if s > 1 {
            let zero = x.scalar_like(0.0);
            let padded = x.pad(
                &zero,
                &[
                    crate::ir::PadDim::edge(0, 0),
                    crate::ir::PadDim::edge(0, 1),
                    crate::ir::PadDim::edge(0, 1),
                    crate::ir::PadDim::edge(0, 0),
                ],
            );
            avg_pool(&padded, 2, s, false)
        } else {
            avg_pool(x, 2, 1, true)
        };
        conv2d(store, SCOPE, &pooled, out, 1, 1)
    } else {
        conv2d(store, SCOPE, x, out, 1, s)
    };
    batch_norm(store, SCOPE, &c, bn, false, false, true)
}

fn basic_block(
    store: &mut Store,
    cfg: &ModelConfig,
    x: &Tensor,
    f: i64,
    s: i64,
    project: bool,
    bn: BnMode,
) -> Tensor {
    let short = shortcut_or_identity(store, cfg, x, f, s, project, bn);
    let h = conv2d(store, SCOPE, x, f, 3, s);
    let h = batch_norm(store, SCOPE, &h, bn, true, false, true);
    let h = conv2d(store, SCOPE, &h, f, 3, 1);
    finish_block(store, cfg, &h, short, f, bn)
}

fn bottleneck_block(
    store: &mut Store,
    cfg: &ModelConfig,
    x: &Tensor,
    f: i64,
    s: i64,
    project: bool,
    bn: BnMode,
) -> Tensor {
    let short = shortcut_or_identity(store, cfg, x, 4 * f, s, project, bn);
    let h = conv2d(store, SCOPE, x, f, 1, 1);
    let h = batch_norm(store, SCOPE, &h, bn, true, false, true);
    let h = if cfg.sk_ratio > 0.0 {
        selective_kernel(store, cfg, &h, f, s, bn)
    } else {
        let h = conv2d(store, SCOPE, &h, f, 3, s);
        batch_norm(store, SCOPE, &h, bn, true, false, true)
    };
    let h = conv2d(store, SCOPE, &h, 4 * f, 1, 1);
    finish_block(store, cfg, &h, short, f, bn)
}

/// The projection shortcut of a stage's first block (created before the
/// main branch, as in TF1), or the identity.
fn shortcut_or_identity(
    store: &mut Store,
    cfg: &ModelConfig,
    x: &Tensor,
    out: i64,
    s: i64,
    project: bool,
    bn: BnMode,
) -> Tensor {
    if project {
        shortcut(store, cfg, x, out, s, bn)
    } else {
        x.clone()
    }
}

/// The end of every residual branch: BN with γ initialised to 0, optional
/// squeeze-and-excitation, then ReLU(branch + shortcut).
fn finish_block(
    store: &mut Store,
    cfg: &ModelConfig,
    h: &Tensor,
    short: Tensor,
    f: i64,
    bn: BnMode,
) -> Tensor {
    let mut h = batch_norm(store, SCOPE, h, bn, false, true, true);
    if cfg.se_ratio > 0.0 {
        h = squeeze_excite(store, cfg, &h, f);
    }
    (h + short).relu()
}

/// SPEC §3.6: one 3×3 conv to 2f channels, split in two streams, a
/// descriptor of their sum weighs them by a softmax across the streams.
fn selective_kernel(
    store: &mut Store,
    cfg: &ModelConfig,
    x: &Tensor,
    f: i64,
    s: i64,
    bn: BnMode,
) -> Tensor {
    let _g = x.builder().scope("sk_conv");
    let h = conv2d(store, SCOPE, x, 2 * f, 3, s);
    let h = batch_norm(store, SCOPE, &h, bn, true, false, true);
    let d = h.dims();
    let (n, hh, ww) = (d[0], d[1], d[2]);
    let s0 = h.slice_dim(3, 0, f);
    let s1 = h.slice_dim(3, f, 2 * f);
    let g = spatial_mean(&(&s0 + &s1)).reshape(&[n, 1, 1, f]);
    let m = ((f as f64 * cfg.sk_ratio) as i64).max(32);
    let z = conv2d(store, SCOPE, &g, m, 1, 1);
    let z = batch_norm(store, SCOPE, &z, bn, true, false, true);
    let a = conv2d(store, SCOPE, &z, 2 * f, 1, 1);
    let a0 = a.slice_dim(3, 0, f);
    let a1 = a.slice_dim(3, f, 2 * f);
    // Softmax across the two streams, computed stably.
    let mx = a0.max(&a1);
    let e0 = (&a0 - &mx).exp();
    let e1 = (&a1 - &mx).exp();
    let denom = &e0 + &e1;
    let w0 = (e0 / &denom).broadcast_to(&[n, hh, ww, f]);
    let w1 = (e1 / &denom).broadcast_to(&[n, hh, ww, f]);
    s0 * w0 + s1 * w1
}

/// SPEC §3.7: spatial mean → 1×1 conv with bias → ReLU → 1×1 conv with bias
/// → sigmoid → scale the branch.
fn squeeze_excite(store: &mut Store, cfg: &ModelConfig, x: &Tensor, f: i64) -> Tensor {
    let _g = x.builder().scope("se");
    let d = x.dims();
    let (n, c) = (d[0], d[3]);
    let squeezed = ((f as f64 * cfg.se_ratio) as i64).max(1);
    let g = spatial_mean(x).reshape(&[n, 1, 1, c]);
    let z = conv1x1_bias(store, &g, squeezed).relu();
    let e = conv1x1_bias(store, &z, c).unary(crate::ir::UnaryOp::Logistic);
    x * e.broadcast_to(&d)
}

/// Mean over H and W, summed in f32, in `x`'s type.
fn spatial_mean(x: &Tensor) -> Tensor {
    cast(&cast(x, ElementType::F32).mean(&[1, 2]), x.element_type())
}

fn conv1x1_bias(store: &mut Store, x: &Tensor, out: i64) -> Tensor {
    let cin = x.dims()[3];
    let name = store.unique(SCOPE, "conv2d");
    let w = store.variable(
        &format!("{SCOPE}/{name}/kernel"),
        &[1, 1, cin, out],
        true,
        Init::TruncatedNormalFanIn { fan_in: cin },
    );
    let bias = store.variable(&format!("{SCOPE}/{name}/bias"), &[out], true, Init::Zeros);
    let dim = WindowDim::new(1);
    let ct = store.compute_type();
    cast(x, ct).conv_general(
        &cast(&w, ct),
        Window::new(vec![dim.clone(), dim]),
        ConvDims::nhwc(),
        1,
        1,
    ) + cast(&bias, ct)
}
