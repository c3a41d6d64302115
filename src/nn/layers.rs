//! Layers as functions over [`Tensor`]s (NHWC activations, HWIO kernels):
//! convolution with TF's padding conventions, batch norm (training mode with
//! batch moments, optionally across replicas, or inference mode with moving
//! statistics), dense, and pooling with TF 'SAME' semantics. SPEC §3.2, §4.1, §6.

use super::store::{Init, Store};
use crate::ir::{
    BinaryOp, ConvDims, ElementType, Literal, LiteralData, ReplicaGroups, Tensor, Window, WindowDim,
};

/// BatchNorm epsilon used everywhere in SimCLR (SPEC §3.2).
pub const BN_EPSILON: f64 = 1e-5;

/// How a batch-norm layer computes its statistics.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum BnMode {
    /// Normalise with batch moments (biased variance) and update the moving
    /// averages: moving ← decay·moving + (1 − decay)·batch.
    Train {
        /// Moments over all replicas (`global_bn`) instead of this replica's batch.
        global: bool,
        /// `batch_norm_decay`.
        decay: f64,
    },
    /// Normalise with the moving statistics.
    Infer,
}

/// Same-padded (stride 1) or explicitly padded (stride > 1) convolution
/// without bias, the original's `conv2d_fixed_padding`: pad (k−1)//2 before
/// and k−1−(k−1)//2 after on H and W. Creates `<scope>/conv2d[_k]/kernel`.
pub fn conv2d(
    store: &mut Store,
    scope: &str,
    x: &Tensor,
    filters: i64,
    k: i64,
    stride: i64,
) -> Tensor {
    let cin = x.dims().get(3).copied().unwrap_or(0);
    let name = store.unique(scope, "conv2d");
    let w = store.variable(
        &format!("{scope}/{name}/kernel"),
        &[k, k, cin, filters],
        true,
        Init::TruncatedNormalFanIn {
            fan_in: k * k * cin,
        },
    );
    let _g = x.builder().scope(&name);
    let ct = store.compute_type();
    let (x, w) = (cast(x, ct), cast(&w, ct));
    let lo = (k - 1) / 2;
    let hi = k - 1 - lo;
    let dim = WindowDim::new(k).stride(stride).pad(lo, hi);
    x.conv_general(
        &w,
        Window::new(vec![dim.clone(), dim]),
        ConvDims::nhwc(),
        1,
        1,
    )
}

/// `x` as element type `ty`: a convert only when the types differ, so f32
/// programs gain no instruction.
pub fn cast(x: &Tensor, ty: ElementType) -> Tensor {
    if x.element_type() == ty {
        x.clone()
    } else {
        x.convert(ty)
    }
}

/// Batch norm over all but the last (channel) dimension, with learned γ
/// (init 1, or 0 when `zero_gamma`) and β (only when `center`). Creates
/// `<scope>/batch_normalization[_k]/{gamma,beta,moving_mean,moving_variance}`.
/// Applies ReLU after when `relu`. The moments and the normalisation are
/// computed in f32 whatever the input type; the output has the input's
/// type (bf16 activations stay bf16 between layers).
pub fn batch_norm(
    store: &mut Store,
    scope: &str,
    x: &Tensor,
    mode: BnMode,
    relu: bool,
    zero_gamma: bool,
    center: bool,
) -> Tensor {
    let dims = x.dims();
    let c = dims.last().copied().unwrap_or(0);
    let name = store.unique(scope, "batch_normalization");
    let prefix = format!("{scope}/{name}");
    let gamma = store.variable(
        &format!("{prefix}/gamma"),
        &[c],
        true,
        if zero_gamma { Init::Zeros } else { Init::Ones },
    );
    let beta = center.then(|| store.variable(&format!("{prefix}/beta"), &[c], true, Init::Zeros));
    let moving_mean = store.variable(&format!("{prefix}/moving_mean"), &[c], false, Init::Zeros);
    let moving_var = store.variable(
        &format!("{prefix}/moving_variance"),
        &[c],
        false,
        Init::Ones,
    );
    let _g = x.builder().scope(&name);
    let out_type = x.element_type();
    let x = &cast(x, ElementType::F32);
    let reduce_dims: Vec<i64> = (0..dims.len() as i64 - 1).collect();
    // Training mode normalises the `x − mean` that the variance was taken
    // of: one subtraction, so the backward pass has one path into `mean`.
    let (centered, var) = match mode {
        BnMode::Train { global, decay } => {
            let (mean, var, centered) = moments(x, &reduce_dims, global);
            store.update(
                &format!("{prefix}/moving_mean"),
                &moving_mean * decay + &mean * (1.0 - decay),
            );
            store.update(
                &format!("{prefix}/moving_variance"),
                &moving_var * decay + &var * (1.0 - decay),
            );
            (centered, var)
        }
        BnMode::Infer => (x - &moving_mean, moving_var),
    };
    let inv = (var + BN_EPSILON).rsqrt() * &gamma;
    let mut y = centered * &inv;
    if let Some(beta) = beta {
        y = y + &beta;
    }
    let y = if relu { y.relu() } else { y };
    cast(&y, out_type)
}

/// Mean and biased variance of `x` over `dims` (a per-channel vector), over
/// this replica's batch or, when `global`, over every replica's batch: the
/// sums are all-reduced, which equals the moments of the concatenated batch.
/// Also returns `x − mean`, the centred input the variance was taken of.
pub fn moments(x: &Tensor, dims: &[i64], global: bool) -> (Tensor, Tensor, Tensor) {
    let shape = x.dims();
    let n: i64 = dims.iter().map(|&d| shape[d as usize]).product();
    let replicas = if global {
        x.builder().num_replicas()
    } else {
        1
    };
    let total = (n * replicas as i64).max(1) as f64;
    let cross = |t: Tensor| {
        if replicas > 1 {
            t.all_reduce_sum(ReplicaGroups::All)
        } else {
            t
        }
    };
    let mean = cross(x.sum(dims)) * (1.0 / total);
    let centered = x - &mean;
    let var = cross((&centered * &centered).sum(dims)) * (1.0 / total);
    (mean, var, centered)
}

/// Dense layer `[n, in] → [n, units]`: `<scope>/dense/kernel` with
/// N(0, 0.01²) init (SPEC §4.1) and, when `use_bias`, `<scope>/dense/bias`.
/// The product takes the store's compute type; with a bias the output is
/// f32 (logits), without it the compute type (it feeds a batch norm).
pub fn dense(
    store: &mut Store,
    scope: &str,
    x: &Tensor,
    units: i64,
    use_bias: bool,
    zero_init: bool,
) -> Tensor {
    let cin = x.dims().get(1).copied().unwrap_or(0);
    let init = if zero_init {
        Init::Zeros
    } else {
        Init::Normal { std: 0.01 }
    };
    let w = store.variable(&format!("{scope}/dense/kernel"), &[cin, units], true, init);
    let _g = x.builder().scope("dense");
    let ct = store.compute_type();
    let y = cast(x, ct).matmul(&cast(&w, ct));
    if use_bias {
        let b = store.variable(&format!("{scope}/dense/bias"), &[units], true, Init::Zeros);
        cast(&y, ElementType::F32) + &b
    } else {
        y
    }
}

/// TF 'SAME' padding for a window of `k` with stride `s` over `n`: output
/// ⌈n/s⌉, total padding max((out−1)·s + k − n, 0), the smaller half first.
pub fn same_padding(n: i64, k: i64, s: i64) -> (i64, i64) {
    let out = (n + s - 1) / s;
    let total = ((out - 1) * s + k - n).max(0);
    (total / 2, total - total / 2)
}

/// Max pool `k×k`/`s` with TF 'SAME' padding (padded cells never win).
pub fn max_pool_same(x: &Tensor, k: i64, s: i64) -> Tensor {
    let d = x.dims();
    let window = spatial_window(&d, k, s, true);
    let r = x.builder().reducer(BinaryOp::Maximum, x.element_type());
    x.reduce_window(&x.scalar_like(f64::NEG_INFINITY), window, r)
}

/// Average pool `k×k`/`s`; with `same`, TF 'SAME' padding averaging over
/// the valid cells only, else 'VALID'.
pub fn avg_pool(x: &Tensor, k: i64, s: i64, same: bool) -> Tensor {
    let d = x.dims();
    let window = spatial_window(&d, k, s, same);
    let r = x.builder().reducer(BinaryOp::Add, x.element_type());
    let zero = x.scalar_like(0.0);
    let sums = x.reduce_window(&zero, window.clone(), r);
    if !same {
        return sums * (1.0 / (k * k) as f64);
    }
    // The valid cells of each window, counted at trace time: a
    // [1, Ho, Wo, 1] constant (no reduce-window over ones for XLA to fold).
    let counts = same_counts(x, d[1], d[2], k, s).convert(x.element_type());
    sums / counts
}

/// The number of cells of each TF 'SAME' `k×k`/`s` window over an `h×w`
/// image that lie inside it, as an f32 `[1, Ho, Wo, 1]` constant in the
/// computation of `like`.
fn same_counts(like: &Tensor, h: i64, w: i64, k: i64, s: i64) -> Tensor {
    let along = |n: i64| -> Vec<f32> {
        let (lo, _) = same_padding(n, k, s);
        let out = (n + s - 1) / s;
        (0..out)
            .map(|o| {
                let start = o * s - lo;
                let (a, b) = (start.max(0), (start + k).min(n));
                (b - a).max(0) as f32
            })
            .collect()
    };
    let (rows, cols) = (along(h), along(w));
    let values: Vec<f32> = rows
        .iter()
        .flat_map(|r| cols.iter().map(move |c| r * c))
        .collect();
    let dims = vec![1, rows.len() as i64, cols.len() as i64, 1];
    match Literal::new(dims.clone(), LiteralData::F32(values)) {
        Some(l) => like.constant(l),
        // Unreachable: Ho·Wo values for [1, Ho, Wo, 1].
        None => like.builder().constant_f32(&dims, &[]),
    }
}

fn spatial_window(d: &[i64], k: i64, s: i64, same: bool) -> Window {
    let mut dims = vec![WindowDim::new(1); d.len()];
    for axis in [1usize, 2] {
        let n = d.get(axis).copied().unwrap_or(1);
        let (lo, hi) = if same { same_padding(n, k, s) } else { (0, 0) };
        dims[axis] = WindowDim::new(k).stride(s).pad(lo, hi);
    }
    Window::new(dims)
}
