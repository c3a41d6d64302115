//! Reverse-mode automatic differentiation of traced `ir` programs.
//!
//! [`vjp`] and [`grad`] walk a [`Builder`]'s graph backwards from the
//! outputs and append the backward pass to the *same* computation, written
//! with the ordinary [`Tensor`] API, so gradients lower to HLO like any other
//! op. This module owns the walk (reachability, pruning, cotangent
//! accumulation, barriers, errors); the per-op VJP rules live in one file per
//! op family:
//!
//! | file | ops |
//! |---|---|
//! | `elementwise.rs` | unary and binary arithmetic, `select`, `clamp`, `convert` |
//! | `structural.rs` | `broadcast`, `reduce`, `reshape`, `transpose`, `reverse`, `slice`, `pad`, `concatenate`, `dynamic-slice`, `dynamic-update-slice`, `tuple`, `get-tuple-element` |
//! | `linalg.rs` | `dot`, `convolution` |
//! | `window.rs` | `reduce-window` (sum and max/min pooling) |
//! | `collective.rs` | `all-reduce`, `all-gather`, `reduce-scatter` |
//!
//! The rules (g = the result's cotangent, x/y = operands, z = the result;
//! "uses" names the primal values a rule reads):
//!
//! | op | cotangent of the operands | uses |
//! |---|---|---|
//! | negate, copy, add, subtract | ±g | — |
//! | multiply, divide | g·y, g·x; g/y, −g·z/y | x, y, z |
//! | exp, expm1, log, log1p | g·z, g·(z+1), g/x, g/(1+x) | x or z |
//! | sqrt, rsqrt, tanh, logistic | g·½/z, −½g·z³, g(1−z²), g·z(1−z) | z |
//! | sin, cos, abs, atan2, remainder, power | the usual derivatives (power: 0 where the base or exponent is 0) | x, y, z |
//! | sign, floor, ceil, round-nearest-even | none (zero) | — |
//! | maximum, minimum | g to the first operand where x ≥ y (≤), else to the second | x, y |
//! | select, clamp | g masked by the predicate / the clamp masks | predicate, x, bounds |
//! | convert | g converted back to the operand's float type | — |
//! | broadcast ↔ reduce(add) | sum over the added dims (+ transpose) ↔ broadcast | — |
//! | reduce(max, min) | g shared evenly by the elements equal to z | x, z, init |
//! | reshape, transpose, reverse | reshape back, inverse permutation, reverse | — |
//! | slice ↔ pad | pad with interior padding ↔ crop + strided slice (value: Σg − Σ taken) | — |
//! | concatenate | slices | — |
//! | dynamic-slice ↔ dynamic-update-slice | update into zeros ↔ slice / update zeros | indices |
//! | tuple, get-tuple-element | split / place into a tuple cotangent | — |
//! | dot | dot of g with the other operand + transpose | the other operand |
//! | convolution | input: conv(g, reversed kernel); kernel: conv(x, g) | the other operand |
//! | reduce-window(add) | pad g (interior = stride − 1) + windowed sum | — |
//! | reduce-window(max, min) | select-and-scatter(x, g) with GE (LE) and add | x |
//! | all-reduce(sum) | all-reduce(sum) | — |
//! | all-gather ↔ reduce-scatter(sum) | reduce-scatter(sum) ↔ all-gather | — |
//!
//! Semantics:
//! * Only floating-point values carry gradients; integer and `pred` values
//!   (indices, masks, random bits) are constants to autodiff.
//! * Nodes built by [`Tensor::stop_gradient`] are constants.
//! * Only nodes on a path from a `wrt` tensor to an output get a rule
//!   applied; a zero cotangent is never materialized (it is simply absent).
//!   A `wrt` tensor that no output depends on gets zeros of its type.
//! * A `wrt` tensor may be any node, not only a parameter: its gradient is
//!   the total cotangent flowing into it from its users.
//! * On a replicated program (R replicas), the differentiated quantity is
//!   the sum of the per-replica outputs weighted by their cotangents; the
//!   collectives' rules (all-gather ↔ reduce-scatter, all-reduce ↔
//!   all-reduce) make each replica's gradient the gradient of that sum.
//! * An op without a rule reached on a differentiable path, e.g. a variadic
//!   `reduce`, `select-and-scatter` or `bitcast-convert` between float types,
//!   is an [`Error::NoRule`] naming the op, its scope and source line.
//!
//! Gradient nodes are built under the name scope `gradients/<forward scope>`.
//!
//! Not here: optimizers (they consume the gradients) and evaluation (`interp`).

mod collective;
mod elementwise;
mod linalg;
mod structural;
mod window;

use crate::ir::{self, Builder, CompId, ElementType, Node, Op, Shape, Tensor, Type};
use std::collections::HashMap;
use thiserror::Error;

/// Why gradients could not be built.
#[derive(Debug, Clone, Error, PartialEq)]
pub enum Error {
    /// A node on a differentiable path has no VJP rule (or the rule does not
    /// cover its attributes).
    #[error("no gradient for {opcode} in scope '{scope}'{location}: {detail}")]
    NoRule {
        /// The XLA opcode of the node.
        opcode: String,
        /// The name scope the node was built in.
        scope: String,
        /// ` at file:line` of the call that built it (may be empty).
        location: String,
        /// What is not supported.
        detail: String,
    },
    /// The arguments of [`vjp`] / [`grad`] are inconsistent (cotangent types,
    /// tensors of other builders or computations, a non-scalar loss, …).
    #[error("invalid autodiff request: {0}")]
    Invalid(String),
    /// The forward program already had an error, or building a gradient op
    /// failed its shape rule (a bug in a rule; the op is named).
    #[error("building gradients failed: {0}")]
    Build(#[from] ir::Error),
}

/// A cotangent: one tensor for an array value, one optional tensor per
/// element for a tuple value (absent = zero).
#[derive(Clone, Debug)]
pub(crate) enum Ct {
    Array(Tensor),
    Tuple(Vec<Option<Tensor>>),
}

impl Ct {
    fn add(self, other: Ct) -> Ct {
        match (self, other) {
            (Ct::Array(a), Ct::Array(b)) => Ct::Array(a.add(&b)),
            (Ct::Tuple(a), Ct::Tuple(b)) => Ct::Tuple(
                a.into_iter()
                    .zip(b)
                    .map(|(x, y)| match (x, y) {
                        (Some(x), Some(y)) => Some(x.add(&y)),
                        (x, y) => x.or(y),
                    })
                    .collect(),
            ),
            // Types are checked on entry; a mismatch cannot arise from rules.
            (a, _) => a,
        }
    }
}

/// What a rule sees: the forward node, handles to its operands and result,
/// which operands need a cotangent, and per-call caches.
pub(crate) struct Rule<'a> {
    /// The forward node.
    pub node: &'a Node,
    /// Its operands, as tensors.
    pub operands: Vec<Tensor>,
    /// The forward result.
    pub out: Tensor,
    /// `needs[i]`: operand i lies on a path from a `wrt` tensor.
    pub needs: Vec<bool>,
    /// Sub-computations built by rules, shared within one [`vjp`] call.
    pub comps: &'a mut HashMap<String, CompId>,
}

impl Rule<'_> {
    /// The builder.
    pub fn builder(&self) -> &Builder {
        self.out.builder()
    }

    /// An [`Error::NoRule`] for this node.
    pub fn no_rule(&self, detail: impl Into<String>) -> Error {
        no_rule(self.node, detail)
    }

    /// True when operand `i` needs a cotangent.
    pub fn need(&self, i: usize) -> bool {
        self.needs.get(i).copied().unwrap_or(false)
    }
}

fn no_rule(node: &Node, detail: impl Into<String>) -> Error {
    Error::NoRule {
        opcode: node.op.opcode().to_string(),
        scope: node.scope.clone(),
        location: node
            .source
            .as_ref()
            .map(|(f, l)| format!(" at {f}:{l}"))
            .unwrap_or_default(),
        detail: detail.into(),
    }
}

/// Operand cotangents produced by a rule, one per operand (absent = zero).
pub(crate) type Cts = Vec<Option<Tensor>>;

/// True when a value of this type can carry a gradient.
fn is_differentiable(ty: &Type) -> bool {
    ty.leaves().iter().any(|s| s.ty.is_float())
}

/// Zeros of an array shape, in `like`'s computation.
pub(crate) fn zeros(like: &Tensor, shape: &Shape) -> Tensor {
    let z = like.constant(ir::Literal::scalar(shape.ty, 0.0));
    if shape.dims.is_empty() {
        z
    } else {
        z.broadcast_in_dim(&shape.dims, &[])
    }
}

/// Zeros of any type (a tuple of zeros for a tuple).
fn zeros_of(like: &Tensor, ty: &Type) -> Tensor {
    match ty {
        Type::Array(s) => zeros(like, s),
        Type::Tuple(v) => {
            let parts: Vec<Tensor> = v.iter().map(|s| zeros(like, s)).collect();
            tuple_of(like, &parts)
        }
    }
}

/// A tuple of `parts` built in `like`'s computation.
fn tuple_of(like: &Tensor, parts: &[Tensor]) -> Tensor {
    match parts.split_first() {
        Some((first, rest)) => {
            let rest: Vec<&Tensor> = rest.iter().collect();
            first.op(Op::Tuple, &rest)
        }
        // An empty tuple carries no data: the value itself serves.
        None => like.clone(),
    }
}

/// The binary op a reducer computation applies to its two parameters, if it
/// is exactly `(a, b) -> op(a, b)` (either order).
pub(crate) fn reducer_op(builder: &Builder, comp: CompId) -> Option<ir::BinaryOp> {
    let root = builder.root(comp)?;
    let node = builder.node(comp, root)?;
    let Op::Binary(op) = node.op else {
        return None;
    };
    let params: Vec<bool> = node
        .operands
        .iter()
        .map(|&o| {
            builder
                .node(comp, o)
                .is_some_and(|n| matches!(n.op, Op::Parameter { .. }))
        })
        .collect();
    let distinct = node.operands.len() == 2 && node.operands[0] != node.operands[1];
    (distinct && params.iter().all(|&p| p)).then_some(op)
}

/// A scalar comparison computation `(a, b) -> compare(a, b, dir)` for `ty`,
/// built once per [`vjp`] call.
pub(crate) fn comparator(
    rule: &mut Rule<'_>,
    dir: ir::ComparisonDirection,
    ty: ElementType,
) -> CompId {
    let name = format!("{}_{}", dir.name().to_lowercase(), ty);
    if let Some(&c) = rule.comps.get(&name) {
        return c;
    }
    let scalar = Type::Array(Shape::scalar(ty));
    let c = rule
        .builder()
        .computation(&name, &[scalar.clone(), scalar], |p| {
            p[0].compare(dir, &p[1])
        });
    rule.comps.insert(name, c);
    c
}

/// Cotangents of `outputs` given `cotangents`, with respect to `wrt`.
///
/// `outputs`, `cotangents` and `wrt` must belong to one computation of one
/// builder; each cotangent must have exactly its output's type (for a tuple
/// output, a tuple). The gradient nodes are appended to that computation.
/// Returns one tensor per `wrt` entry, of that entry's type: the sum over
/// outputs of the cotangent pulled back to it. Entries that no output
/// depends on differentiably (including integer or `pred` ones) get zeros.
///
/// # Errors
/// [`Error::Invalid`] for inconsistent arguments, [`Error::NoRule`] for an
/// op without a VJP rule on a differentiable path, [`Error::Build`] when the
/// forward program is already invalid.
pub fn vjp(
    outputs: &[Tensor],
    cotangents: &[Tensor],
    wrt: &[Tensor],
) -> Result<Vec<Tensor>, Error> {
    let Some(anchor) = outputs.first().or(wrt.first()) else {
        return Ok(vec![]);
    };
    let builder = anchor.builder().clone();
    let comp = anchor.comp();
    builder.check()?;
    if outputs.len() != cotangents.len() {
        return Err(Error::Invalid(format!(
            "{} outputs but {} cotangents",
            outputs.len(),
            cotangents.len()
        )));
    }
    for t in outputs.iter().chain(cotangents).chain(wrt) {
        if !builder.ptr_eq(t.builder()) || t.comp() != comp || t.is_poisoned() {
            return Err(Error::Invalid(
                "outputs, cotangents and wrt must be valid tensors of one computation of one builder"
                    .into(),
            ));
        }
    }
    for (i, (o, c)) in outputs.iter().zip(cotangents).enumerate() {
        if o.ty() != c.ty() {
            return Err(Error::Invalid(format!(
                "cotangent {i} has type {} but output {i} has type {}",
                c.ty(),
                o.ty()
            )));
        }
    }

    // Snapshot the forward nodes that can matter.
    let last = outputs.iter().chain(wrt).map(|t| t.id()).max().unwrap_or(0);
    let mut nodes: Vec<Node> = Vec::with_capacity(last + 1);
    for id in 0..=last {
        let n = builder
            .node(comp, id)
            .ok_or_else(|| Error::Invalid(format!("node {id} does not exist")))?;
        nodes.push(n);
    }
    let stop: Vec<bool> = (0..=last)
        .map(|id| builder.is_stop_gradient(comp, id))
        .collect();

    // Forward: which nodes depend differentiably on a wrt tensor.
    let mut is_wrt = vec![false; last + 1];
    for w in wrt {
        is_wrt[w.id()] = true;
    }
    let mut depends = vec![false; last + 1];
    for (id, n) in nodes.iter().enumerate() {
        depends[id] = is_differentiable(&n.ty)
            && (is_wrt[id] || (!stop[id] && n.operands.iter().any(|&o| depends[o])));
    }
    // Backward: which of those lie on a path to an output.
    let mut needed = vec![false; last + 1];
    for o in outputs {
        needed[o.id()] |= depends[o.id()];
    }
    for id in (0..=last).rev() {
        if needed[id] && !stop[id] {
            for &o in &nodes[id].operands {
                if depends[o] {
                    needed[o] = true;
                }
            }
        }
    }

    // Seed and walk.
    let mut cts: Vec<Option<Ct>> = vec![None; last + 1];
    for (o, c) in outputs.iter().zip(cotangents) {
        if !needed[o.id()] {
            continue;
        }
        let ct = match c.ty() {
            Type::Array(_) => Ct::Array(c.clone()),
            Type::Tuple(v) => {
                Ct::Tuple((0..v.len()).map(|k| Some(c.get_tuple_element(k))).collect())
            }
        };
        accumulate(&mut cts[o.id()], ct);
    }
    let base_scope = builder.current_scope();
    let mut comps = HashMap::new();
    for id in (0..=last).rev() {
        if !needed[id] || stop[id] {
            continue;
        }
        let node = &nodes[id];
        let needs: Vec<bool> = node.operands.iter().map(|&o| needed[o]).collect();
        if !needs.iter().any(|&n| n) {
            continue;
        }
        let Some(ct) = cts[id].clone() else { continue };
        let rel = if base_scope.is_empty() {
            node.scope.as_str()
        } else if node.scope == base_scope {
            ""
        } else {
            node.scope
                .strip_prefix(&format!("{base_scope}/"))
                .unwrap_or(&node.scope)
        };
        let scope = if rel.is_empty() {
            "gradients".to_string()
        } else {
            format!("gradients/{rel}")
        };
        let _guard = builder.scope(&scope);
        let mut rule = Rule {
            node,
            operands: node
                .operands
                .iter()
                .map(|&o| builder.tensor(comp, o))
                .collect(),
            out: builder.tensor(comp, id),
            needs,
            comps: &mut comps,
        };
        let operand_cts = apply(&mut rule, ct)?;
        builder.check()?;
        for (k, c) in operand_cts.into_iter().enumerate() {
            let o = node.operands[k];
            if let Some(c) = c {
                if needed[o] {
                    accumulate(&mut cts[o], c);
                }
            }
        }
    }

    let grads = wrt
        .iter()
        .map(|w| match (&cts[w.id()], w.ty()) {
            (Some(Ct::Array(t)), _) => t.clone(),
            (Some(Ct::Tuple(parts)), Type::Tuple(shapes)) => {
                let parts: Vec<Tensor> = parts
                    .iter()
                    .zip(&shapes)
                    .map(|(p, s)| p.clone().unwrap_or_else(|| zeros(w, s)))
                    .collect();
                tuple_of(w, &parts)
            }
            (_, ty) => zeros_of(w, &ty),
        })
        .collect();
    builder.check()?;
    Ok(grads)
}

fn accumulate(slot: &mut Option<Ct>, ct: Ct) {
    *slot = Some(match slot.take() {
        Some(prev) => prev.add(ct),
        None => ct,
    });
}

/// Gradients of the scalar `loss` with respect to `wrt` (cotangent 1).
///
/// # Errors
/// As [`vjp`]; also [`Error::Invalid`] when `loss` is not a float scalar.
pub fn grad(loss: &Tensor, wrt: &[Tensor]) -> Result<Vec<Tensor>, Error> {
    let s = loss.ty();
    match s.array() {
        Some(s) if s.rank() == 0 && s.ty.is_float() => {}
        _ => {
            return Err(Error::Invalid(format!(
                "grad needs a floating-point scalar loss, got {s}"
            )))
        }
    }
    let one = loss.scalar_like(1.0);
    vjp(std::slice::from_ref(loss), &[one], wrt)
}

/// Dispatches to the rule of the node's op family.
fn apply(rule: &mut Rule<'_>, ct: Ct) -> Result<Vec<Option<Ct>>, Error> {
    let wrap = |v: Cts| v.into_iter().map(|c| c.map(Ct::Array)).collect();
    match (&rule.node.op, ct) {
        (Op::Tuple, Ct::Tuple(parts)) => Ok(parts.into_iter().map(|p| p.map(Ct::Array)).collect()),
        (Op::GetTupleElement { index }, Ct::Array(g)) => {
            let n = match rule.operands[0].ty() {
                Type::Tuple(v) => v.len(),
                Type::Array(_) => 1,
            };
            let mut parts = vec![None; n];
            if let Some(p) = parts.get_mut(*index) {
                *p = Some(g);
            }
            Ok(vec![Some(Ct::Tuple(parts))])
        }
        (op, Ct::Array(g)) => {
            let v = match op {
                Op::Unary(_) | Op::Binary(_) | Op::Select | Op::Clamp | Op::Convert(_) => {
                    elementwise::vjp(rule, &g)?
                }
                Op::Broadcast { .. }
                | Op::Reshape { .. }
                | Op::Transpose { .. }
                | Op::Reverse { .. }
                | Op::Slice { .. }
                | Op::Pad { .. }
                | Op::Concatenate { .. }
                | Op::DynamicSlice { .. }
                | Op::DynamicUpdateSlice
                | Op::Reduce { .. } => structural::vjp(rule, &g)?,
                Op::Dot(_) | Op::Convolution { .. } => linalg::vjp(rule, &g)?,
                Op::ReduceWindow { .. } => window::vjp(rule, &g)?,
                Op::AllReduce { .. } | Op::AllGather { .. } | Op::ReduceScatter { .. } => {
                    collective::vjp(rule, &g)?
                }
                _ => return Err(rule.no_rule("the op has no VJP rule")),
            };
            Ok(wrap(v))
        }
        (_, Ct::Tuple(_)) => Err(rule.no_rule("the op has no VJP rule for a tuple result")),
    }
}
