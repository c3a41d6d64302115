//! VJP rules of `dot` and `convolution`, both operands, for general
//! dimension numbers.
//!
//! * `dot`: each operand's cotangent is a `dot` of the cotangent with the
//!   other operand (contracting the other operand's free dimensions, keeping
//!   the batch dimensions), followed by a `transpose` into the operand's
//!   dimension order.
//! * `convolution` (any dimension numbers, strides, padding, lhs/rhs
//!   dilation, window reversal, `feature_group_count`): the input gradient
//!   is a convolution of the cotangent with the spatially reversed kernel
//!   (input and output feature roles swapped, base dilation = forward
//!   stride); the kernel gradient is a convolution of the input with the
//!   cotangent (batch and feature roles swapped, window dilation = forward
//!   stride). With `feature_group_count = G` the kernel gradient uses
//!   `batch_group_count = G`. A forward `batch_group_count > 1` has no rule.
//!   These generalize the recipes of `HLO.md` §8.1.

use super::{Cts, Error, Rule};
use crate::ir::{ConvDims, DotDims, Op, Tensor, Window, WindowDim};

/// Operand cotangents of a `dot` or `convolution` given its cotangent `g`.
pub(crate) fn vjp(rule: &mut Rule<'_>, g: &Tensor) -> Result<Cts, Error> {
    let (x, y) = (&rule.operands[0], &rule.operands[1]);
    match rule.node.op.clone() {
        Op::Dot(dn) => Ok(vec![
            rule.need(0).then(|| {
                dot_transpose(
                    g,
                    y,
                    x.rank(),
                    Side {
                        contract: &dn.lhs_contracting,
                        other_contract: &dn.rhs_contracting,
                        batch: &dn.lhs_batch,
                        other_batch: &dn.rhs_batch,
                    },
                    false,
                )
            }),
            rule.need(1).then(|| {
                dot_transpose(
                    g,
                    x,
                    y.rank(),
                    Side {
                        contract: &dn.rhs_contracting,
                        other_contract: &dn.lhs_contracting,
                        batch: &dn.rhs_batch,
                        other_batch: &dn.lhs_batch,
                    },
                    true,
                )
            }),
        ]),
        Op::Convolution {
            window,
            dnums,
            feature_group_count,
            batch_group_count,
        } => {
            if batch_group_count != 1 {
                return Err(rule.no_rule(format!(
                    "convolution with batch_group_count {batch_group_count} has no rule"
                )));
            }
            if g.shape().numel() == 0 {
                return Ok(vec![None, None]);
            }
            let conv = Conv {
                x,
                w: y,
                g,
                window: &window,
                dn: &dnums,
                groups: feature_group_count,
            };
            Ok(vec![
                rule.need(0).then(|| conv.input_grad()),
                rule.need(1).then(|| conv.kernel_grad()),
            ])
        }
        _ => Err(rule.no_rule("not a dot or convolution")),
    }
}

/// The dimension numbers seen from the operand being differentiated.
struct Side<'a> {
    contract: &'a [i64],
    other_contract: &'a [i64],
    batch: &'a [i64],
    other_batch: &'a [i64],
}

fn free_dims(rank: usize, contract: &[i64], batch: &[i64]) -> Vec<i64> {
    (0..rank as i64)
        .filter(|d| !contract.contains(d) && !batch.contains(d))
        .collect()
}

/// The cotangent of one `dot` operand (rank `rank`) from the result's
/// cotangent `g` and the other operand. The result's dimensions are
/// `[batch…, lhs free…, rhs free…]`; `swap` is true for the rhs.
fn dot_transpose(g: &Tensor, other: &Tensor, rank: usize, s: Side<'_>, swap: bool) -> Tensor {
    let nb = s.batch.len() as i64;
    let kept = free_dims(rank, s.contract, s.batch);
    let other_kept = free_dims(other.rank(), s.other_contract, s.other_batch);
    let (nk, nok) = (kept.len() as i64, other_kept.len() as i64);
    let g_batch: Vec<i64> = (0..nb).collect();
    let g_other: Vec<i64> = if swap {
        (nb..nb + nok).collect()
    } else {
        (nb + nk..nb + nk + nok).collect()
    };
    let prod = g.dot_general(
        other,
        DotDims {
            lhs_contracting: g_other,
            rhs_contracting: other_kept,
            lhs_batch: g_batch,
            rhs_batch: s.other_batch.to_vec(),
        },
    );
    // `prod` is [batch…, kept…, contract dims ordered by the other side's
    // contracting dimension].
    let mut order: Vec<usize> = (0..s.contract.len()).collect();
    order.sort_by_key(|&i| s.other_contract[i]);
    let mut layout: Vec<i64> = s.batch.to_vec();
    layout.extend(&kept);
    layout.extend(order.iter().map(|&i| s.contract[i]));
    let mut perm = vec![0i64; rank];
    for (pos, &d) in layout.iter().enumerate() {
        perm[d as usize] = pos as i64;
    }
    if perm.iter().enumerate().all(|(i, &p)| p == i as i64) {
        prod
    } else {
        prod.transpose(&perm)
    }
}

/// A forward convolution `g`'s cotangent flows back through.
struct Conv<'a> {
    x: &'a Tensor,
    w: &'a Tensor,
    g: &'a Tensor,
    window: &'a Window,
    dn: &'a ConvDims,
    groups: i64,
}

fn dilate(n: i64, d: i64) -> i64 {
    if n == 0 {
        0
    } else {
        1 + d * (n - 1)
    }
}

fn spec(a: i64, b: i64, spatial: &[i64]) -> Vec<i64> {
    let mut v = vec![a, b];
    v.extend_from_slice(spatial);
    v
}

/// Dimension numbers from `[batch, feature, spatial…]` input and output
/// specs and an `[out_feature, in_feature, spatial…]` kernel spec.
fn dims_from(lhs: &[i64], rhs: &[i64], out: &[i64]) -> ConvDims {
    ConvDims {
        input_batch: lhs[0],
        input_feature: lhs[1],
        input_spatial: lhs[2..].to_vec(),
        kernel_output_feature: rhs[0],
        kernel_input_feature: rhs[1],
        kernel_spatial: rhs[2..].to_vec(),
        output_batch: out[0],
        output_feature: out[1],
        output_spatial: out[2..].to_vec(),
    }
}

/// Splits dimension `src` of `x` into `(n, size / n)`.
fn axis_out_of(src: usize, n: i64, x: &Tensor) -> Tensor {
    let d = x.dims();
    let mut new = d[..src].to_vec();
    new.push(n);
    new.push(d[src] / n);
    new.extend_from_slice(&d[src + 1..]);
    x.reshape(&new)
}

/// Merges dimension `src` into dimension `dst` (numbered after removing
/// `src`) as its major part.
fn axis_into(src: usize, dst: usize, x: &Tensor) -> Tensor {
    let d = x.dims();
    let mut perm: Vec<i64> = (0..d.len() as i64).filter(|&i| i != src as i64).collect();
    perm.insert(dst, src as i64);
    let mut new: Vec<i64> = d
        .iter()
        .enumerate()
        .filter(|&(i, _)| i != src)
        .map(|(_, &v)| v)
        .collect();
    new[dst] *= d[src];
    x.transpose(&perm).reshape(&new)
}

impl Conv<'_> {
    fn specs(&self) -> (Vec<i64>, Vec<i64>, Vec<i64>) {
        let dn = self.dn;
        (
            spec(dn.input_batch, dn.input_feature, &dn.input_spatial),
            spec(
                dn.kernel_output_feature,
                dn.kernel_input_feature,
                &dn.kernel_spatial,
            ),
            spec(dn.output_batch, dn.output_feature, &dn.output_spatial),
        )
    }

    /// Per spatial dimension: (input extent, kernel extent, output extent).
    fn extents(&self) -> Vec<(i64, i64, i64)> {
        let (xd, wd, gd) = (self.x.dims(), self.w.dims(), self.g.dims());
        (0..self.dn.input_spatial.len())
            .map(|k| {
                (
                    xd[self.dn.input_spatial[k] as usize],
                    wd[self.dn.kernel_spatial[k] as usize],
                    gd[self.dn.output_spatial[k] as usize],
                )
            })
            .collect()
    }

    /// ∂/∂input: `conv(g, reverse(w))` with input/output feature roles of
    /// the kernel swapped, base dilation = stride, stride = base dilation.
    fn input_grad(&self) -> Tensor {
        let (lhs, rhs, out) = self.specs();
        let mut w = self.w.clone();
        if self.groups > 1 {
            // Move the group index from the kernel's output features into
            // its input features (group-major), so group k of the cotangent
            // maps back to input feature group k.
            w = axis_out_of(rhs[0] as usize, self.groups, &w);
            w = axis_into(rhs[0] as usize, rhs[1] as usize, &w);
        }
        let rev: Vec<i64> = self
            .dn
            .kernel_spatial
            .iter()
            .zip(&self.window.dims)
            .filter(|(_, wd)| !wd.reversal)
            .map(|(&d, _)| d)
            .collect();
        if !rev.is_empty() {
            w = w.reverse(&rev);
        }
        let dims = self
            .extents()
            .into_iter()
            .zip(&self.window.dims)
            .map(|((n, k, o), wd)| {
                let lhs_d = dilate(n, wd.base_dilation);
                let rhs_d = dilate(k, wd.window_dilation);
                let out_d = dilate(o, wd.stride);
                let before = rhs_d - wd.pad_lo - 1;
                let after = lhs_d + rhs_d - 1 - out_d - before;
                WindowDim {
                    size: k,
                    stride: wd.base_dilation,
                    pad_lo: before,
                    pad_hi: after,
                    window_dilation: wd.window_dilation,
                    base_dilation: wd.stride,
                    reversal: false,
                }
            })
            .collect();
        let t_rhs = spec(rhs[1], rhs[0], &rhs[2..]);
        self.g.conv_general(
            &w,
            Window::new(dims),
            dims_from(&out, &t_rhs, &lhs),
            self.groups,
            1,
        )
    }

    /// ∂/∂kernel: `conv(x, g)` with the batch and feature roles of `x` and
    /// `g` swapped, window dilation = stride, stride = window dilation.
    fn kernel_grad(&self) -> Tensor {
        let (lhs, rhs, out) = self.specs();
        let dims = self
            .extents()
            .into_iter()
            .zip(&self.window.dims)
            .map(|((n, k, o), wd)| {
                let lhs_d = dilate(n, wd.base_dilation);
                let rhs_d = dilate(k, wd.window_dilation);
                let out_d = dilate(o, wd.stride);
                WindowDim {
                    size: o,
                    stride: wd.window_dilation,
                    pad_lo: wd.pad_lo,
                    pad_hi: (out_d - lhs_d) + (rhs_d - wd.pad_lo - 1),
                    window_dilation: wd.stride,
                    base_dilation: wd.base_dilation,
                    reversal: false,
                }
            })
            .collect();
        let dw = self.x.conv_general(
            self.g,
            Window::new(dims),
            dims_from(
                &spec(lhs[1], lhs[0], &lhs[2..]),
                &spec(out[1], out[0], &out[2..]),
                &spec(rhs[1], rhs[0], &rhs[2..]),
            ),
            1,
            self.groups,
        );
        let rev: Vec<i64> = self
            .dn
            .kernel_spatial
            .iter()
            .zip(&self.window.dims)
            .filter(|(_, wd)| wd.reversal)
            .map(|(&d, _)| d)
            .collect();
        if rev.is_empty() {
            dw
        } else {
            dw.reverse(&rev)
        }
    }
}
