//! VJP rules of `reduce-window` (pooling).
//!
//! * Sum (average pooling before its scale): the transpose of a windowed sum
//!   is a windowed sum of the cotangent after `pad` with interior padding
//!   `stride − 1` and the edges of the convolution input gradient
//!   (`HLO.md` §8.1); no convolution and no `select-and-scatter`.
//!   Any strides, padding and dilations.
//! * Max (min): `select-and-scatter(x, g, 0)` with the same window, a `GE`
//!   (`LE`) select and an add scatter (`HLO.md` §8.3). Ties go to the first
//!   element of the window in scan order. Window and base dilations must
//!   be 1.
//!
//! The init value gets no rule (it is a constant in pooling); reaching it on
//! a differentiable path is an error.

use super::{comparator, reducer_op, Cts, Error, Rule};
use crate::ir::{BinaryOp, ComparisonDirection as Dir, Op, PadDim, Tensor, Window, WindowDim};

/// Operand cotangents of a `reduce-window` given its cotangent `g`.
pub(crate) fn vjp(rule: &mut Rule<'_>, g: &Tensor) -> Result<Cts, Error> {
    let Op::ReduceWindow { window, reducer } = rule.node.op.clone() else {
        return Err(rule.no_rule("not a reduce-window"));
    };
    if rule.need(1) {
        return Err(rule.no_rule("the init value of reduce-window has no gradient rule"));
    }
    if g.shape().numel() == 0 {
        return Ok(vec![None, None]);
    }
    let x = rule.operands[0].clone();
    let dx = match reducer_op(rule.builder(), reducer) {
        Some(BinaryOp::Add) => sum_transpose(&x, g, &window),
        Some(op @ (BinaryOp::Maximum | BinaryOp::Minimum)) => {
            if window
                .dims
                .iter()
                .any(|d| d.window_dilation != 1 || d.base_dilation != 1)
            {
                return Err(rule.no_rule(
                    "max/min pooling with dilation has no rule (select-and-scatter has none)",
                ));
            }
            let dir = if op == BinaryOp::Maximum {
                Dir::Ge
            } else {
                Dir::Le
            };
            let ty = x.element_type();
            let select = comparator(rule, dir, ty);
            let scatter = rule.builder().reducer(BinaryOp::Add, ty);
            x.select_and_scatter(g, &g.scalar_like(0.0), window, select, scatter)
        }
        _ => {
            return Err(
                rule.no_rule("only reduce-window with add, maximum or minimum is differentiable")
            )
        }
    };
    Ok(vec![Some(dx), None])
}

fn dilate(n: i64, d: i64) -> i64 {
    if n == 0 {
        0
    } else {
        1 + d * (n - 1)
    }
}

/// The transpose of a windowed sum of `x` with `window`, applied to `g`.
fn sum_transpose(x: &Tensor, g: &Tensor, window: &Window) -> Tensor {
    let (xd, gd) = (x.dims(), g.dims());
    let pads: Vec<PadDim> = window
        .dims
        .iter()
        .enumerate()
        .map(|(d, wd)| {
            let lhs_d = dilate(xd[d], wd.base_dilation);
            let rhs_d = dilate(wd.size, wd.window_dilation);
            let out_d = dilate(gd[d], wd.stride);
            let lo = rhs_d - wd.pad_lo - 1;
            PadDim {
                lo,
                hi: lhs_d + rhs_d - 1 - out_d - lo,
                interior: wd.stride - 1,
            }
        })
        .collect();
    let padded = g.pad(&g.scalar_like(0.0), &pads);
    let win = Window::new(
        window
            .dims
            .iter()
            .map(|wd| {
                WindowDim::new(wd.size)
                    .stride(wd.base_dilation)
                    .window_dilation(wd.window_dilation)
            })
            .collect(),
    );
    let add = x.builder().reducer(BinaryOp::Add, x.element_type());
    padded.reduce_window(&padded.scalar_like(0.0), win, add)
}
