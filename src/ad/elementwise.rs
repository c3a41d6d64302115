//! VJP rules of the elementwise ops: unary and binary arithmetic, `select`,
//! `clamp` and `convert`. Each rule uses the primal operands and result it
//! names; none touches other op families.
//!
//! Kinks and ties (documented choices):
//! * `maximum(a, b)`: the cotangent goes to `a` where `a >= b`, else to `b`
//!   (ties go to the first operand, as `select-and-scatter` with `GE` gives
//!   ties to the first element of a window). `minimum` likewise with `<=`.
//!   So `relu(x) = max(x, 0)` has slope 1 at 0.
//! * `clamp(lo, x, hi)` = `min(max(x, lo), hi)` with the same convention:
//!   `x` gets the cotangent where `lo <= x <= hi`.
//! * `abs`: slope `sign(x)`, 0 at 0. `sign`, `floor`, `ceil` and
//!   `round-nearest-even` have zero slope (no cotangent is produced).
//! * `power(a, b)`: `∂/∂a = b·a^(b−1)` (0 where `b = 0`), `∂/∂b = a^b·ln a`
//!   (0 where `a = 0`).

use super::{Cts, Error, Rule};
use crate::ir::{BinaryOp, ComparisonDirection as Dir, Op, Tensor, UnaryOp};

/// Operand cotangents of an elementwise node given its cotangent `g`.
pub(crate) fn vjp(rule: &mut Rule<'_>, g: &Tensor) -> Result<Cts, Error> {
    match rule.node.op.clone() {
        Op::Unary(u) => unary(rule, u, g).map(|c| vec![c]),
        Op::Binary(b) => binary(rule, b, g),
        Op::Select => Ok(select(rule, g)),
        Op::Clamp => Ok(clamp(rule, g)),
        Op::Convert(_) => {
            let ty = rule.operands[0].element_type();
            Ok(vec![ty.is_float().then(|| g.convert(ty))])
        }
        _ => Err(rule.no_rule("not an elementwise op")),
    }
}

fn unary(rule: &Rule<'_>, u: UnaryOp, g: &Tensor) -> Result<Option<Tensor>, Error> {
    let x = &rule.operands[0];
    let y = &rule.out;
    Ok(Some(match u {
        UnaryOp::Negate => g.neg(),
        UnaryOp::Copy => g.clone(),
        // d/dx e^x = e^x = y
        UnaryOp::Exp => g * y,
        // d/dx ln x = 1/x
        UnaryOp::Log => g / x,
        // d/dx ln(1+x) = 1/(1+x)
        UnaryOp::Log1p => g / x.add_scalar(1.0),
        // d/dx (e^x − 1) = e^x = y + 1
        UnaryOp::Expm1 => g * y.add_scalar(1.0),
        // d/dx √x = 1/(2√x) = 0.5/y
        UnaryOp::Sqrt => g.mul_scalar(0.5) / y,
        // d/dx x^(−1/2) = −½·x^(−3/2) = −½·y³
        UnaryOp::Rsqrt => g * (y * y * y).mul_scalar(-0.5),
        // d/dx tanh x = 1 − y²
        UnaryOp::Tanh => g * (y * y).neg().add_scalar(1.0),
        // d/dx σ(x) = σ(1 − σ)
        UnaryOp::Logistic => g * (y * y.neg().add_scalar(1.0)),
        UnaryOp::Abs => g * x.unary(UnaryOp::Sign),
        UnaryOp::Sin => g * x.unary(UnaryOp::Cos),
        UnaryOp::Cos => (g * x.unary(UnaryOp::Sin)).neg(),
        UnaryOp::Sign | UnaryOp::Floor | UnaryOp::Ceil | UnaryOp::RoundNearestEven => {
            return Ok(None)
        }
        UnaryOp::Not => return Err(rule.no_rule("`not` is not differentiable")),
    }))
}

fn binary(rule: &Rule<'_>, b: BinaryOp, g: &Tensor) -> Result<Cts, Error> {
    let (a, c) = (&rule.operands[0], &rule.operands[1]);
    let y = &rule.out;
    let (na, nc) = (rule.need(0), rule.need(1));
    Ok(match b {
        BinaryOp::Add => vec![na.then(|| g.clone()), nc.then(|| g.clone())],
        BinaryOp::Subtract => vec![na.then(|| g.clone()), nc.then(|| g.neg())],
        BinaryOp::Multiply => vec![na.then(|| g * c), nc.then(|| g * a)],
        // y = a/c: ∂a = g/c, ∂c = −g·a/c² = −g·y/c
        BinaryOp::Divide => vec![na.then(|| g / c), nc.then(|| (g * y / c).neg())],
        BinaryOp::Maximum | BinaryOp::Minimum => {
            let dir = if b == BinaryOp::Maximum {
                Dir::Ge
            } else {
                Dir::Le
            };
            let to_a = a.compare(dir, c);
            let zero = g.full_like(0.0);
            vec![
                na.then(|| to_a.select(g, &zero)),
                nc.then(|| to_a.select(&zero, g)),
            ]
        }
        BinaryOp::Power => {
            let zero = g.full_like(0.0);
            let ga = na.then(|| {
                // b·a^(b−1), defined as 0 where b = 0 (a⁰ is constant).
                let slope = c * a.pow(&c.add_scalar(-1.0));
                let b_zero = c.compare(Dir::Eq, &zero);
                g * b_zero.select(&zero, &slope)
            });
            let gc = nc.then(|| {
                // a^b·ln a, defined as 0 where a = 0.
                let a_zero = a.compare(Dir::Eq, &zero);
                let safe = a_zero.select(&g.full_like(1.0), a);
                let slope = y * safe.log();
                g * a_zero.select(&zero, &slope)
            });
            vec![ga, gc]
        }
        BinaryOp::Remainder => {
            // a − trunc(a/c)·c: ∂a = g, ∂c = −g·trunc(a/c).
            let gc = nc.then(|| {
                let q = a / c;
                let neg = q.compare(Dir::Lt, &g.full_like(0.0));
                let trunc = neg.select(&q.unary(UnaryOp::Ceil), &q.unary(UnaryOp::Floor));
                (g * trunc).neg()
            });
            vec![na.then(|| g.clone()), gc]
        }
        BinaryOp::Atan2 => {
            // atan2(a, c): ∂a = c/(a²+c²), ∂c = −a/(a²+c²).
            let r2 = a * a + c * c;
            vec![na.then(|| g * c / &r2), nc.then(|| (g * a / &r2).neg())]
        }
        BinaryOp::And
        | BinaryOp::Or
        | BinaryOp::Xor
        | BinaryOp::ShiftLeft
        | BinaryOp::ShiftRightLogical
        | BinaryOp::ShiftRightArithmetic => {
            return Err(rule.no_rule("bitwise ops are not differentiable"))
        }
    })
}

/// `select(p, t, f)`: `t` gets the cotangent where `p`, `f` elsewhere.
fn select(rule: &Rule<'_>, g: &Tensor) -> Cts {
    let p = &rule.operands[0];
    let zero = g.full_like(0.0);
    vec![
        None,
        rule.need(1).then(|| p.select(g, &zero)),
        rule.need(2).then(|| p.select(&zero, g)),
    ]
}

/// `clamp(lo, x, hi)` as `min(max(x, lo), hi)` with ties to the first
/// operand of each.
fn clamp(rule: &Rule<'_>, g: &Tensor) -> Cts {
    let (lo, x, hi) = (&rule.operands[0], &rule.operands[1], &rule.operands[2]);
    let zero = g.full_like(0.0);
    let m = x.max(lo);
    let to_m = m.compare(Dir::Le, hi);
    let gm = to_m.select(g, &zero);
    let to_x = x.compare(Dir::Ge, lo);
    vec![
        rule.need(0).then(|| to_x.select(&zero, &gm)),
        rule.need(1).then(|| to_x.select(&gm, &zero)),
        rule.need(2).then(|| to_m.select(&zero, g)),
    ]
}
