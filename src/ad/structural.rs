//! VJP rules of the ops that move, select or sum elements without
//! arithmetic on them: `broadcast` ↔ `reduce` (sum), `reshape`,
//! `transpose` (inverse permutation), `reverse`, `slice` ↔ `pad` (interior
//! padding for strides), `concatenate` → slices, `dynamic-slice` ↔
//! `dynamic-update-slice`, and `reduce` with `maximum`/`minimum`.
//!
//! `reduce` with `maximum` (or `minimum`) uses an equality mask: every
//! element equal to the result shares the cotangent **evenly** (ties split,
//! as in jax), so the gradient sums to the cotangent. An init value equal to
//! the result takes its share as well. Other reducers (and variadic reduce)
//! have no rule.

use super::{reducer_op, zeros, Cts, Error, Rule};
use crate::ir::{BinaryOp, ComparisonDirection as Dir, Op, PadDim, Tensor};

/// Operand cotangents of a structural node given its cotangent `g`.
pub(crate) fn vjp(rule: &mut Rule<'_>, g: &Tensor) -> Result<Cts, Error> {
    let x = rule.operands[0].clone();
    let xd = x.dims();
    Ok(match rule.node.op.clone() {
        Op::Broadcast { dims, .. } => vec![Some(unbroadcast(g, &dims))],
        Op::Reshape { .. } => vec![Some(g.reshape(&xd))],
        Op::Transpose { perm } => {
            let mut inv = vec![0i64; perm.len()];
            for (i, &p) in perm.iter().enumerate() {
                inv[p as usize] = i as i64;
            }
            vec![Some(g.transpose(&inv))]
        }
        Op::Reverse { dims } => vec![Some(g.reverse(&dims))],
        Op::Slice { start, stride, .. } => {
            let out = g.dims();
            if out.contains(&0) {
                return Ok(vec![None]);
            }
            let pads: Vec<PadDim> = (0..xd.len())
                .map(|d| PadDim {
                    lo: start[d],
                    hi: xd[d] - (start[d] + (out[d] - 1) * stride[d] + 1),
                    interior: stride[d] - 1,
                })
                .collect();
            vec![Some(g.pad(&g.scalar_like(0.0), &pads))]
        }
        Op::Pad { dims } => pad(rule, g, &dims),
        Op::Concatenate { dim } => {
            let mut offset = 0;
            rule.operands
                .iter()
                .enumerate()
                .map(|(k, t)| {
                    let n = t.dims()[dim as usize];
                    let piece = rule
                        .need(k)
                        .then(|| g.slice_dim(dim as usize, offset, offset + n));
                    offset += n;
                    piece
                })
                .collect()
        }
        Op::DynamicSlice { .. } => {
            let idx: Vec<&Tensor> = rule.operands[1..].iter().collect();
            let mut v = vec![Some(zeros(g, &x.shape()).dynamic_update_slice(g, &idx))];
            v.extend(idx.iter().map(|_| None));
            v
        }
        Op::DynamicUpdateSlice => {
            let u = &rule.operands[1];
            let idx: Vec<&Tensor> = rule.operands[2..].iter().collect();
            let mut v = vec![
                rule.need(0)
                    .then(|| g.dynamic_update_slice(&zeros(g, &u.shape()), &idx)),
                rule.need(1).then(|| g.dynamic_slice(&idx, &u.dims())),
            ];
            v.extend(idx.iter().map(|_| None));
            v
        }
        Op::Reduce { dims, reducer } => {
            if rule.operands.len() != 2 {
                return Err(rule.no_rule("variadic reduce has no rule"));
            }
            match reducer_op(rule.builder(), reducer) {
                Some(BinaryOp::Add) => reduce_sum(rule, g, &dims),
                Some(BinaryOp::Maximum | BinaryOp::Minimum) => reduce_choose(rule, g, &dims),
                _ => {
                    return Err(
                        rule.no_rule("only reduce with add, maximum or minimum is differentiable")
                    )
                }
            }
        }
        _ => return Err(rule.no_rule("not a structural op")),
    })
}

/// Transpose of `broadcast` with operand dimension i → output `dims[i]`:
/// sum the added dimensions, then restore the operand's dimension order.
fn unbroadcast(g: &Tensor, dims: &[i64]) -> Tensor {
    let rank = g.rank() as i64;
    let added: Vec<i64> = (0..rank).filter(|d| !dims.contains(d)).collect();
    let summed = if added.is_empty() {
        g.clone()
    } else {
        g.sum(&added)
    };
    // `summed` holds the mapped dimensions in increasing output order.
    let mut sorted = dims.to_vec();
    sorted.sort_unstable();
    if sorted == dims {
        return summed;
    }
    let perm: Vec<i64> = dims
        .iter()
        .map(|d| sorted.iter().position(|s| s == d).unwrap_or(0) as i64)
        .collect();
    summed.transpose(&perm)
}

/// Transpose of `pad`: crop the edges (undoing negative edges with zeros),
/// then take every `interior + 1`-th element. The padding value gets
/// everything that was not taken.
fn pad(rule: &Rule<'_>, g: &Tensor, dims: &[PadDim]) -> Cts {
    let x = &rule.operands[0];
    let xd = x.dims();
    let dx = || {
        if xd.contains(&0) {
            return None;
        }
        let unpad: Vec<PadDim> = dims.iter().map(|p| PadDim::edge(-p.lo, -p.hi)).collect();
        let cropped = g.pad(&g.scalar_like(0.0), &unpad);
        let limit = cropped.dims();
        let stride: Vec<i64> = dims.iter().map(|p| p.interior + 1).collect();
        Some(cropped.slice(&vec![0; xd.len()], &limit, &stride))
    };
    let gx = (rule.need(0) || rule.need(1)).then(dx).flatten();
    let gv = rule.need(1).then(|| match &gx {
        Some(t) => g.sum_all() - t.sum_all(),
        None => g.sum_all(),
    });
    vec![gx.filter(|_| rule.need(0)), gv]
}

/// `reduce(x, init, add)`: every element gets its output's cotangent.
fn reduce_sum(rule: &Rule<'_>, g: &Tensor, dims: &[i64]) -> Cts {
    let x = &rule.operands[0];
    let xd = x.dims();
    let kept: Vec<i64> = (0..xd.len() as i64).filter(|d| !dims.contains(d)).collect();
    vec![
        rule.need(0).then(|| g.broadcast_in_dim(&xd, &kept)),
        rule.need(1).then(|| g.sum_all()),
    ]
}

/// `reduce(x, init, max|min)`: the elements equal to the result share its
/// cotangent evenly (the init value counts when it equals the result).
fn reduce_choose(rule: &Rule<'_>, g: &Tensor, dims: &[i64]) -> Cts {
    let (x, init) = (&rule.operands[0], &rule.operands[1]);
    let y = &rule.out;
    let xd = x.dims();
    let kept: Vec<i64> = (0..xd.len() as i64).filter(|d| !dims.contains(d)).collect();
    let one = g.full_like(1.0);
    let zero = g.full_like(0.0);
    let yb = y.broadcast_in_dim(&xd, &kept);
    let hit = x.compare(Dir::Eq, &yb);
    let xone = x.full_like(1.0);
    let count_x = hit.select(&xone, &x.full_like(0.0)).sum(dims);
    let init_hit = y.compare(Dir::Eq, &init.broadcast_in_dim(&y.dims(), &[]));
    let count = count_x + init_hit.select(&one, &zero);
    let share = g / count;
    vec![
        rule.need(0)
            .then(|| hit.select(&share.broadcast_in_dim(&xd, &kept), &x.full_like(0.0))),
        rule.need(1)
            .then(|| init_hit.select(&share, &zero).sum_all()),
    ]
}
