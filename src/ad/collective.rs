//! VJP rules (transposes) of the cross-replica collectives.
//!
//! The differentiated quantity of a replicated program is the sum over
//! replicas of each replica's outputs against its cotangents, so:
//! * `all-reduce(sum)` → `all-reduce(sum)` of the cotangents (same groups);
//! * `all-gather(dim)` → `reduce-scatter(sum, dim)`: replica r receives the
//!   sum over its group of the cotangents' block r;
//! * `reduce-scatter(sum, dim)` → `all-gather(dim)`.
//!
//! Reductions other than a sum have no rule.

use super::{reducer_op, Cts, Error, Rule};
use crate::ir::{BinaryOp, Op, Tensor};

/// Operand cotangents of a collective given its cotangent `g`.
pub(crate) fn vjp(rule: &mut Rule<'_>, g: &Tensor) -> Result<Cts, Error> {
    let is_sum =
        |rule: &Rule<'_>, reducer| reducer_op(rule.builder(), reducer) == Some(BinaryOp::Add);
    Ok(vec![Some(match rule.node.op.clone() {
        Op::AllReduce { groups, reducer } => {
            if !is_sum(rule, reducer) {
                return Err(rule.no_rule("only all-reduce with add is differentiable"));
            }
            g.all_reduce_sum(groups)
        }
        Op::AllGather { dim, groups } => g.reduce_scatter_sum(dim, groups),
        Op::ReduceScatter {
            dim,
            groups,
            reducer,
        } => {
            if !is_sum(rule, reducer) {
                return Err(rule.no_rule("only reduce-scatter with add is differentiable"));
            }
            g.all_gather(dim, groups)
        }
        _ => return Err(rule.no_rule("not a collective")),
    })])
}
