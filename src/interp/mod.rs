//! Reference evaluator of `ir` programs on `ndarray`, on the CPU.
//!
//! [`evaluate`] runs a [`Module`] for all of its replicas in lockstep: the
//! entry computation is evaluated node by node, each node for every replica
//! before the next, so a collective sees every replica's operand at once.
//! Results are deterministic. Sub-computations (reducers, selectors) are
//! called on scalars; the common ones (`add`, `max`, `min`, `mul`, `and`,
//! `or`, compare) are recognized and run without calls.
//!
//! Element types: pred, u8, s32, s64, u32, u64, f32, f64, plus bf16 and f16
//! stored as `f32` and rounded to their type after every op (see
//! [`Value`]). `rng-bit-generator` implements XLA's Threefry and Philox
//! expansions bit for bit (see `rng.rs` for what was checked).
//!
//! Semantics worth knowing when comparing with a PJRT plugin:
//! * `maximum`/`minimum` propagate NaN from either operand (XLA's documented
//!   semantics); the `xla-cpu-pjrt` 0.0.1 plugin returns the first operand
//!   when only the second is NaN.
//! * bf16/f16 results are rounded after every op; XLA's CPU compiler drops
//!   f32→bf16→f32 round trips inside fusions, so compare those with a bf16
//!   tolerance.
//! * float→int `convert` truncates toward zero and saturates (NaN → 0);
//!   integer `divide` by 0 gives −1 (all bits set), `remainder` by 0 gives
//!   the dividend; shifts by ≥ the bit width give 0 (arithmetic: the sign).
//! * `reduce-window` and `select-and-scatter` skip padding and base-dilation
//!   holes; select-and-scatter keeps the current candidate while `select`
//!   returns true, so `GE` sends ties to the first element in scan order.
//!   The CPU plugin agrees when the window has no padding; with padding it
//!   may visit a window in another order (operand `[[0,1],[1,0],[0,0]]`,
//!   window 2×2, stride 2, pad `0_2x2_2`: for the window holding
//!   `[[0,1],[1,0]]` the plugin picks `[1,0]`, we pick `[0,1]`), so tied
//!   maxima of padded max-pool gradients may land on different (equally
//!   valid) elements (`tests/conformance_ops.rs` avoids ties there).
//! * `batch_group_count` splits the input batch and the output features into
//!   that many contiguous groups (StableHLO's definition).
//! * Dot and convolution accumulate in the element type (bf16/f16 in f32).
//! * Transcendental functions use Rust's `libm`-quality implementations;
//!   the plugin's own approximations differ by a few ulp in f32, and its
//!   f64 `log-plus-one` by up to ~60 ulp near −0.4 (tolerances:
//!   `tests/conformance_ops.rs`).
//!
//! These choices were cross-checked against the XLA CPU plugin on
//! convolutions (all window features, groups, odd dimension labels),
//! integer and float elementwise ops, conversions, shape ops, reductions,
//! windows, dot and collectives.

mod collective;
mod elementwise;
mod linalg;
mod reduce;
mod rng;
mod shape_ops;
mod value;
mod window;

pub use value::{round_bf16, round_f16, Value};

use crate::ir::{CompId, Computation, Module, Node, Op, Type};
use ndarray::{ArrayD, IxDyn};
use reduce::{combiner, selector};
use thiserror::Error;

/// What went wrong while evaluating a program.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum Error {
    /// The number of per-replica argument lists differs from the module's
    /// replica count.
    #[error(
        "module '{module}' runs on {expected} replica(s), but {got} argument list(s) were given"
    )]
    ReplicaCount {
        /// The module's name.
        module: String,
        /// `num_replicas`.
        expected: usize,
        /// Argument lists given.
        got: usize,
    },
    /// A replica was given the wrong number of arguments.
    #[error("replica {replica}: expected {expected} argument(s), got {got}")]
    ArgumentCount {
        /// The replica.
        replica: usize,
        /// Entry parameters.
        expected: usize,
        /// Arguments given.
        got: usize,
    },
    /// An argument's type or shape does not match its parameter.
    #[error("replica {replica}: argument {index} ('{name}') must be {expected}, got {got}")]
    ArgumentType {
        /// The replica.
        replica: usize,
        /// Parameter number.
        index: usize,
        /// Parameter name.
        name: String,
        /// The parameter's type.
        expected: String,
        /// The argument's type.
        got: String,
    },
    /// An op does not accept an element type.
    #[error("{opcode} does not support element type {ty}")]
    UnsupportedType {
        /// The op.
        opcode: String,
        /// The element type or value type.
        ty: String,
    },
    /// An op or feature the evaluator does not implement.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// Operands or attributes that violate the op's rules.
    #[error("invalid operation: {0}")]
    Invalid(String),
    /// A value could not be converted from or to a literal or vector.
    #[error("conversion: {0}")]
    Conversion(String),
    /// An error raised by one node, with the node's context.
    #[error("{opcode} (node {node} of computation '{computation}', scope '{scope}'): {source}")]
    At {
        /// The node's opcode.
        opcode: String,
        /// The node's index.
        node: usize,
        /// The computation's name.
        computation: String,
        /// The node's name scope.
        scope: String,
        /// What went wrong.
        source: Box<Error>,
    },
}

/// Evaluates `module` on every replica. `args[r]` holds replica r's entry
/// arguments (`args.len() == module.num_replicas`); `result[r]` holds replica
/// r's outputs, flattened like PJRT's (a tuple root gives one value per
/// element).
pub fn evaluate(module: &Module, args: &[Vec<Value>]) -> Result<Vec<Vec<Value>>, Error> {
    let n_rep = module.num_replicas;
    if args.len() != n_rep {
        return Err(Error::ReplicaCount {
            module: module.name.clone(),
            expected: n_rep,
            got: args.len(),
        });
    }
    let entry = module
        .computations
        .get(module.entry)
        .ok_or_else(|| Error::Invalid("the module has no entry computation".into()))?;
    check_args(entry, args)?;
    let ev = Evaluator { module };
    let n = entry.nodes.len();
    // The last node that reads each node, so values can be dropped early.
    let mut last_use = vec![0usize; n];
    for (i, node) in entry.nodes.iter().enumerate() {
        for &o in &node.operands {
            if let Some(l) = last_use.get_mut(o) {
                *l = i;
            }
        }
    }
    if let Some(l) = last_use.get_mut(entry.root) {
        *l = usize::MAX;
    }
    let mut vals: Vec<Vec<Option<Value>>> = vec![vec![None; n]; n_rep];
    for (i, node) in entry.nodes.iter().enumerate() {
        let ctx = |e: Error| ev.context(entry, i, node, e);
        if node.op.is_collective() {
            let ops: Vec<&Value> = (0..n_rep)
                .map(|r| operand(&vals[r], node, 0))
                .collect::<Result<_, _>>()
                .map_err(ctx)?;
            let results = ev.collective(node, &ops).map_err(ctx)?;
            for (r, v) in results.into_iter().enumerate() {
                ev.check_type(node, &v).map_err(ctx)?;
                vals[r][i] = Some(v);
            }
        } else {
            for r in 0..n_rep {
                let ops: Vec<&Value> = (0..node.operands.len())
                    .map(|k| operand(&vals[r], node, k))
                    .collect::<Result<_, _>>()
                    .map_err(ctx)?;
                let v = ev.node(node, &ops, &args[r], r).map_err(ctx)?;
                ev.check_type(node, &v).map_err(ctx)?;
                vals[r][i] = Some(v);
            }
        }
        for &o in &node.operands {
            if last_use.get(o) == Some(&i) {
                for rv in vals.iter_mut() {
                    rv[o] = None;
                }
            }
        }
    }
    vals.into_iter()
        .map(|mut rv| {
            let root = rv
                .get_mut(entry.root)
                .and_then(Option::take)
                .ok_or_else(|| Error::Invalid("the entry's root was not evaluated".into()))?;
            Ok(match root {
                Value::Tuple(v) if module.tuple_result => v,
                v => vec![v],
            })
        })
        .collect()
}

fn check_args(entry: &Computation, args: &[Vec<Value>]) -> Result<(), Error> {
    let sig = entry.signature();
    let names = entry.param_names();
    for (r, a) in args.iter().enumerate() {
        if a.len() != sig.params.len() {
            return Err(Error::ArgumentCount {
                replica: r,
                expected: sig.params.len(),
                got: a.len(),
            });
        }
        for (k, (v, t)) in a.iter().zip(&sig.params).enumerate() {
            if &v.ty() != t || matches!(v, Value::Tuple(_)) != matches!(t, Type::Tuple(_)) {
                return Err(Error::ArgumentType {
                    replica: r,
                    index: k,
                    name: names.get(k).cloned().unwrap_or_default(),
                    expected: t.to_string(),
                    got: v.type_string(),
                });
            }
        }
    }
    Ok(())
}

fn operand<'a>(vals: &'a [Option<Value>], node: &Node, k: usize) -> Result<&'a Value, Error> {
    node.operands
        .get(k)
        .and_then(|&o| vals.get(o))
        .and_then(Option::as_ref)
        .ok_or_else(|| Error::Invalid(format!("operand {k} is missing or not yet evaluated")))
}

fn arg<'a>(ops: &[&'a Value], k: usize) -> Result<&'a Value, Error> {
    ops.get(k)
        .copied()
        .ok_or_else(|| Error::Invalid(format!("missing operand {k}")))
}

struct Evaluator<'m> {
    module: &'m Module,
}

impl Evaluator<'_> {
    fn context(&self, comp: &Computation, i: usize, node: &Node, e: Error) -> Error {
        Error::At {
            opcode: node.op.opcode().into(),
            node: i,
            computation: comp.name.clone(),
            scope: node.scope.clone(),
            source: Box::new(e),
        }
    }

    fn check_type(&self, node: &Node, v: &Value) -> Result<(), Error> {
        if v.ty() != node.ty {
            return Err(Error::Invalid(format!(
                "evaluated to {} but the node's type is {}",
                v.type_string(),
                node.ty
            )));
        }
        Ok(())
    }

    fn comp(&self, id: CompId) -> Result<&Computation, Error> {
        self.module
            .computations
            .get(id)
            .ok_or_else(|| Error::Invalid(format!("computation #{id} does not exist")))
    }

    /// Calls sub-computation `id` on `args` (no collectives inside).
    fn call(&self, id: CompId, args: &[Value], replica: usize) -> Result<Value, Error> {
        let comp = self.comp(id)?;
        let mut vals: Vec<Option<Value>> = vec![None; comp.nodes.len()];
        for (i, node) in comp.nodes.iter().enumerate() {
            let ctx = |e: Error| self.context(comp, i, node, e);
            let ops: Vec<&Value> = (0..node.operands.len())
                .map(|k| operand(&vals, node, k))
                .collect::<Result<_, _>>()
                .map_err(ctx)?;
            let v = self.node(node, &ops, args, replica).map_err(ctx)?;
            vals[i] = Some(v);
        }
        vals.get_mut(comp.root)
            .and_then(Option::take)
            .ok_or_else(|| Error::Invalid(format!("computation '{}' has no result", comp.name)))
    }

    fn collective(&self, node: &Node, ops: &[&Value]) -> Result<Vec<Value>, Error> {
        match &node.op {
            Op::AllReduce { groups, reducer } => {
                let comb = combiner(self.comp(*reducer)?);
                let call = |a: &[Value]| self.call(*reducer, a, 0);
                collective::all_reduce(ops, groups, comb, &call)
            }
            Op::AllGather { dim, groups } => collective::all_gather(ops, *dim, groups),
            Op::ReduceScatter {
                dim,
                groups,
                reducer,
            } => {
                let comb = combiner(self.comp(*reducer)?);
                let call = |a: &[Value]| self.call(*reducer, a, 0);
                collective::reduce_scatter(ops, *dim, groups, comb, &call)
            }
            op => Err(Error::Invalid(format!(
                "{} is not a collective",
                op.opcode()
            ))),
        }
    }

    /// Evaluates one non-collective node for one replica.
    fn node(
        &self,
        node: &Node,
        ops: &[&Value],
        params: &[Value],
        replica: usize,
    ) -> Result<Value, Error> {
        let v = match &node.op {
            Op::Parameter { number, .. } => params
                .get(*number)
                .cloned()
                .ok_or_else(|| Error::Invalid(format!("parameter {number} has no argument")))?,
            Op::Constant(lit) => Value::from_literal(lit)?,
            Op::Iota { shape, dim } => elementwise::iota(shape, *dim)?,
            Op::Unary(u) => elementwise::unary(*u, arg(ops, 0)?)?,
            Op::Binary(b) => elementwise::binary(*b, arg(ops, 0)?, arg(ops, 1)?)?,
            Op::Compare(d) => elementwise::compare(*d, arg(ops, 0)?, arg(ops, 1)?)?,
            Op::Select => elementwise::select(arg(ops, 0)?, arg(ops, 1)?, arg(ops, 2)?)?,
            Op::Clamp => elementwise::clamp(arg(ops, 0)?, arg(ops, 1)?, arg(ops, 2)?)?,
            Op::Convert(t) => elementwise::convert(arg(ops, 0)?, *t)?,
            Op::BitcastConvert(t) => elementwise::bitcast_convert(arg(ops, 0)?, *t)?,
            Op::Broadcast { out_dims, dims } => shape_ops::broadcast(arg(ops, 0)?, out_dims, dims)?,
            Op::Reshape { dims } => shape_ops::reshape(arg(ops, 0)?, dims)?,
            Op::Transpose { perm } => shape_ops::transpose(arg(ops, 0)?, perm)?,
            Op::Reverse { dims } => shape_ops::reverse(arg(ops, 0)?, dims)?,
            Op::Slice {
                start,
                limit,
                stride,
            } => shape_ops::slice(arg(ops, 0)?, start, limit, stride)?,
            Op::DynamicSlice { sizes } => {
                let starts = indices(ops.get(1..).unwrap_or_default())?;
                shape_ops::dynamic_slice(arg(ops, 0)?, &starts, sizes)?
            }
            Op::DynamicUpdateSlice => {
                let starts = indices(ops.get(2..).unwrap_or_default())?;
                shape_ops::dynamic_update_slice(arg(ops, 0)?, arg(ops, 1)?, &starts)?
            }
            Op::Concatenate { dim } => shape_ops::concatenate(ops, *dim)?,
            Op::Pad { dims } => shape_ops::pad(arg(ops, 0)?, arg(ops, 1)?, dims)?,
            Op::Dot(dn) => linalg::dot(arg(ops, 0)?, arg(ops, 1)?, dn)?,
            Op::Convolution {
                window,
                dnums,
                feature_group_count,
                batch_group_count,
            } => linalg::convolution(
                arg(ops, 0)?,
                arg(ops, 1)?,
                &linalg::ConvAttrs {
                    window,
                    dnums,
                    feature_group_count: *feature_group_count,
                    batch_group_count: *batch_group_count,
                },
            )?,
            Op::Reduce { dims, reducer } => {
                let k = ops.len() / 2;
                let comb = combiner(self.comp(*reducer)?);
                let call = |a: &[Value]| self.call(*reducer, a, replica);
                let mut out = reduce::reduce(&ops[..k], &ops[k..], dims, comb, &call)?;
                if out.len() == 1 {
                    out.remove(0)
                } else {
                    Value::Tuple(out)
                }
            }
            Op::ReduceWindow { window, reducer } => {
                let comb = combiner(self.comp(*reducer)?);
                let call = |a: &[Value]| self.call(*reducer, a, replica);
                reduce::reduce_window(arg(ops, 0)?, arg(ops, 1)?, window, comb, &call)?
            }
            Op::SelectAndScatter {
                window,
                select,
                scatter,
            } => {
                let sel = selector(self.comp(*select)?);
                let comb = combiner(self.comp(*scatter)?);
                let call_sel = |a: &[Value]| self.call(*select, a, replica);
                let call_sc = |a: &[Value]| self.call(*scatter, a, replica);
                reduce::select_and_scatter(
                    arg(ops, 0)?,
                    arg(ops, 1)?,
                    arg(ops, 2)?,
                    window,
                    sel,
                    comb,
                    &call_sel,
                    &call_sc,
                )?
            }
            Op::AllReduce { .. } | Op::AllGather { .. } | Op::ReduceScatter { .. } => {
                return Err(Error::Unsupported(format!(
                    "{} inside a sub-computation",
                    node.op.opcode()
                )))
            }
            Op::ReplicaId => Value::U32(ArrayD::from_elem(IxDyn(&[]), replica as u32)),
            Op::RngBitGenerator { algorithm, shape } => {
                rng::rng_bit_generator(*algorithm, arg(ops, 0)?, shape)?
            }
            Op::Tuple => Value::Tuple(ops.iter().map(|&v| v.clone()).collect()),
            Op::GetTupleElement { index } => match arg(ops, 0)? {
                Value::Tuple(v) => v
                    .get(*index)
                    .cloned()
                    .ok_or_else(|| Error::Invalid(format!("tuple has no element {index}")))?,
                v => {
                    return Err(Error::Invalid(format!(
                        "get-tuple-element of {}",
                        v.type_string()
                    )))
                }
            },
        };
        Ok(elementwise::renarrow(v))
    }
}

fn indices(ops: &[&Value]) -> Result<Vec<i64>, Error> {
    ops.iter().map(|v| v.index_scalar()).collect()
}
