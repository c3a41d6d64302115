//! Cross-replica ops, evaluated with every replica's operand at hand:
//! `all-reduce`, `all-gather` and `reduce-scatter` over replica groups.
//! Within a group, values combine in the group's listed replica order.

use super::elementwise::binary;
use super::reduce::{stack, Call, Combiner};
use super::shape_ops::{concatenate, slice};
use super::value::Value;
use super::Error;
use crate::ir::ReplicaGroups;

/// Combines two arrays elementwise with a reducer.
pub(crate) fn combine(
    a: &Value,
    b: &Value,
    comb: Combiner,
    call: &Call<'_>,
) -> Result<Value, Error> {
    match comb {
        Combiner::Binary(op) => binary(op, a, b),
        Combiner::General => {
            if a.dims() != b.dims() {
                return Err(Error::Invalid(format!(
                    "cannot combine {} with {}",
                    a.type_string(),
                    b.type_string()
                )));
            }
            let a = a.clone().standard()?;
            let b = b.clone().standard()?;
            let out: Vec<Value> = (0..a.len())
                .map(|i| call(&[a.element(i)?, b.element(i)?]))
                .collect::<Result<_, _>>()?;
            let dims: Vec<usize> = a.dims().iter().map(|&d| d as usize).collect();
            stack(&out, &dims, &a)
        }
    }
}

/// The validated groups as replica indices.
fn groups_of(groups: &ReplicaGroups, n: usize) -> Result<Vec<Vec<usize>>, Error> {
    groups.validate(n).map_err(Error::Invalid)?;
    Ok(groups
        .groups(n)
        .into_iter()
        .map(|g| g.into_iter().map(|r| r as usize).collect())
        .collect())
}

fn collect(out: Vec<Option<Value>>) -> Result<Vec<Value>, Error> {
    out.into_iter()
        .enumerate()
        .map(|(r, v)| v.ok_or_else(|| Error::Invalid(format!("replica {r} is in no group"))))
        .collect()
}

/// `all-reduce`: every replica gets its group's combined value.
pub(crate) fn all_reduce(
    vals: &[&Value],
    groups: &ReplicaGroups,
    comb: Combiner,
    call: &Call<'_>,
) -> Result<Vec<Value>, Error> {
    let mut out: Vec<Option<Value>> = vec![None; vals.len()];
    for g in groups_of(groups, vals.len())? {
        let Some((&g0, rest)) = g.split_first() else {
            continue;
        };
        let mut acc = vals[g0].clone();
        for &r in rest {
            acc = combine(&acc, vals[r], comb, call)?;
        }
        for &r in &g {
            out[r] = Some(acc.clone());
        }
    }
    collect(out)
}

/// `all-gather`: every replica gets its group's values concatenated along
/// `dim` in group order.
pub(crate) fn all_gather(
    vals: &[&Value],
    dim: i64,
    groups: &ReplicaGroups,
) -> Result<Vec<Value>, Error> {
    let mut out: Vec<Option<Value>> = vec![None; vals.len()];
    for g in groups_of(groups, vals.len())? {
        let parts: Vec<&Value> = g.iter().map(|&r| vals[r]).collect();
        let cat = concatenate(&parts, dim)?;
        for &r in &g {
            out[r] = Some(cat.clone());
        }
    }
    collect(out)
}

/// `reduce-scatter`: the group's combined value split along `dim` into
/// group-size blocks; the k-th replica of a group keeps block k.
pub(crate) fn reduce_scatter(
    vals: &[&Value],
    dim: i64,
    groups: &ReplicaGroups,
    comb: Combiner,
    call: &Call<'_>,
) -> Result<Vec<Value>, Error> {
    let reduced = all_reduce(vals, groups, comb, call)?;
    let mut out: Vec<Option<Value>> = vec![None; vals.len()];
    for g in groups_of(groups, vals.len())? {
        let Some(&g0) = g.first() else { continue };
        let full = &reduced[g0];
        let dims = full.dims();
        let d = usize::try_from(dim)
            .ok()
            .filter(|&d| d < dims.len())
            .ok_or_else(|| {
                Error::Invalid(format!("reduce-scatter dimension {dim} out of range"))
            })?;
        let n = g.len() as i64;
        if dims[d] % n != 0 {
            return Err(Error::Invalid(format!(
                "reduce-scatter dimension of size {} is not divisible by {n}",
                dims[d]
            )));
        }
        let block = dims[d] / n;
        for (k, &r) in g.iter().enumerate() {
            let mut start = vec![0; dims.len()];
            let mut limit = dims.clone();
            start[d] = k as i64 * block;
            limit[d] = (k as i64 + 1) * block;
            out[r] = Some(slice(full, &start, &limit, &vec![1; dims.len()])?);
        }
    }
    collect(out)
}
