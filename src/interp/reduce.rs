//! Reductions: `reduce` (K inputs), `reduce-window` and
//! `select-and-scatter`, plus recognition of the common scalar
//! sub-computations (`add`, `max`, `ge`, …) so they run without calling the
//! computation per element. Anything else calls the sub-computation on
//! scalars.

use super::elementwise::{compare_scalar, Scalar};
use super::shape_ops::transpose;
use super::value::Value;
use super::window::{gather, Gathered};
use super::Error;
use crate::ir::{BinaryOp, ComparisonDirection, Computation, Op, Window};
use ndarray::{ArrayD, IxDyn};

/// Calls a scalar sub-computation on its arguments.
pub(crate) type Call<'a> = dyn Fn(&[Value]) -> Result<Value, Error> + 'a;

/// How a reducer or scatter computation combines two scalars.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Combiner {
    /// `(a, b) -> op(a, b)`.
    Binary(BinaryOp),
    /// Anything else: call the computation.
    General,
}

/// How a select computation compares two scalars.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Selector {
    /// `(a, b) -> compare(a, b, dir)`.
    Compare(ComparisonDirection),
    /// Anything else: call the computation.
    General,
}

fn param_number(c: &Computation, node: usize) -> Option<usize> {
    match c.nodes.get(node).map(|n| &n.op) {
        Some(Op::Parameter { number, .. }) => Some(*number),
        _ => None,
    }
}

/// The root's op and its operands' parameter numbers, when the root is an
/// op applied directly to parameters.
fn root_on_params(c: &Computation) -> Option<(&Op, Vec<usize>)> {
    if c.params.len() != 2 {
        return None;
    }
    let root = c.nodes.get(c.root)?;
    let ps: Option<Vec<usize>> = root.operands.iter().map(|&o| param_number(c, o)).collect();
    Some((&root.op, ps?))
}

/// Recognizes `(p0, p1) -> op(p0, p1)` (or `op(p1, p0)` for commutative ops).
pub(crate) fn combiner(c: &Computation) -> Combiner {
    match root_on_params(c) {
        Some((Op::Binary(b), ps)) => {
            let commutative = matches!(
                b,
                BinaryOp::Add
                    | BinaryOp::Multiply
                    | BinaryOp::Maximum
                    | BinaryOp::Minimum
                    | BinaryOp::And
                    | BinaryOp::Or
                    | BinaryOp::Xor
            );
            if ps == [0, 1] || (commutative && ps == [1, 0]) {
                Combiner::Binary(*b)
            } else {
                Combiner::General
            }
        }
        _ => Combiner::General,
    }
}

/// Recognizes `(p0, p1) -> compare(p0, p1, dir)`.
pub(crate) fn selector(c: &Computation) -> Selector {
    match root_on_params(c) {
        Some((Op::Compare(d), ps)) if ps == [0, 1] => Selector::Compare(*d),
        _ => Selector::General,
    }
}

fn first<T: Copy>(a: &ArrayD<T>) -> Result<T, Error> {
    a.iter()
        .next()
        .copied()
        .ok_or_else(|| Error::Invalid("empty scalar".into()))
}

fn flat<T: Clone>(a: &ArrayD<T>) -> Vec<T> {
    match a.as_slice() {
        Some(s) => s.to_vec(),
        None => a.iter().cloned().collect(),
    }
}

fn unsupported<T>(op: BinaryOp) -> Error {
    Error::UnsupportedType {
        opcode: op.opcode().into(),
        ty: std::any::type_name::<T>().into(),
    }
}

/// Dispatches a typed fast path over the array variants, binding the array
/// of `$v` to `$a`, the scalar of `$init` to `$i`, and rewrapping.
macro_rules! typed {
    ($v:expr, $init:expr, |$a:ident, $i:ident| $body:expr) => {
        match ($v, $init) {
            (Value::Pred($a), Value::Pred(s)) => {
                let $i = first(s)?;
                Value::Pred($body)
            }
            (Value::U8($a), Value::U8(s)) => {
                let $i = first(s)?;
                Value::U8($body)
            }
            (Value::S32($a), Value::S32(s)) => {
                let $i = first(s)?;
                Value::S32($body)
            }
            (Value::S64($a), Value::S64(s)) => {
                let $i = first(s)?;
                Value::S64($body)
            }
            (Value::U32($a), Value::U32(s)) => {
                let $i = first(s)?;
                Value::U32($body)
            }
            (Value::U64($a), Value::U64(s)) => {
                let $i = first(s)?;
                Value::U64($body)
            }
            (Value::Bf16($a), Value::Bf16(s)) => {
                let $i = first(s)?;
                Value::Bf16($body)
            }
            (Value::F16($a), Value::F16(s)) => {
                let $i = first(s)?;
                Value::F16($body)
            }
            (Value::F32($a), Value::F32(s)) => {
                let $i = first(s)?;
                Value::F32($body)
            }
            (Value::F64($a), Value::F64(s)) => {
                let $i = first(s)?;
                Value::F64($body)
            }
            (a, b) => {
                return Err(Error::Invalid(format!(
                    "operand {} and initial value {} differ in type",
                    a.type_string(),
                    b.type_string()
                )))
            }
        }
    };
}

/// Stacks scalar values of one type into an array of `dims`; `template`
/// gives the type when there are no scalars.
pub(crate) fn stack(scalars: &[Value], dims: &[usize], template: &Value) -> Result<Value, Error> {
    macro_rules! st {
        ($variant:ident) => {{
            let mut v = Vec::with_capacity(scalars.len());
            for s in scalars {
                match s {
                    Value::$variant(a) => v.push(first(a)?),
                    other => {
                        return Err(Error::Invalid(format!(
                            "a computation returned {} where {} was expected",
                            other.type_string(),
                            template.type_string()
                        )))
                    }
                }
            }
            Value::$variant(
                ArrayD::from_shape_vec(IxDyn(dims), v)
                    .map_err(|_| Error::Invalid("result size mismatch".into()))?,
            )
        }};
    }
    Ok(match template {
        Value::Pred(_) => st!(Pred),
        Value::U8(_) => st!(U8),
        Value::S32(_) => st!(S32),
        Value::S64(_) => st!(S64),
        Value::U32(_) => st!(U32),
        Value::U64(_) => st!(U64),
        Value::Bf16(_) => st!(Bf16),
        Value::F16(_) => st!(F16),
        Value::F32(_) => st!(F32),
        Value::F64(_) => st!(F64),
        Value::Tuple(_) => return Err(Error::Invalid("cannot stack tuples".into())),
    })
}

/// The elements of a (possibly tuple) result.
fn leaves(v: Value) -> Vec<Value> {
    match v {
        Value::Tuple(v) => v,
        v => vec![v],
    }
}

fn reduce_fast<T: Scalar>(
    a: &ArrayD<T>,
    init: T,
    out_n: usize,
    red_n: usize,
    out_dims: &[usize],
    op: BinaryOp,
) -> Result<ArrayD<T>, Error> {
    if T::binary(op, init, init).is_none() {
        return Err(unsupported::<T>(op));
    }
    let data = flat(a);
    let out: Vec<T> = (0..out_n)
        .map(|i| {
            data[i * red_n..(i + 1) * red_n]
                .iter()
                .fold(init, |acc, &x| T::binary(op, acc, x).unwrap_or(acc))
        })
        .collect();
    ArrayD::from_shape_vec(IxDyn(out_dims), out)
        .map_err(|_| Error::Invalid("reduce: result size mismatch".into()))
}

/// `reduce` of K inputs with K initial values over `dims`. Returns K arrays.
pub(crate) fn reduce(
    inputs: &[&Value],
    inits: &[&Value],
    dims: &[i64],
    comb: Combiner,
    call: &Call<'_>,
) -> Result<Vec<Value>, Error> {
    let Some(x0) = inputs.first() else {
        return Err(Error::Invalid("reduce of no inputs".into()));
    };
    if inputs.len() != inits.len() {
        return Err(Error::Invalid("reduce needs one init per input".into()));
    }
    let in_dims: Vec<usize> = x0.dims().iter().map(|&d| d as usize).collect();
    let rank = in_dims.len();
    let mut reduced = Vec::with_capacity(dims.len());
    for &d in dims {
        let d = usize::try_from(d)
            .ok()
            .filter(|&d| d < rank && !reduced.contains(&d))
            .ok_or_else(|| Error::Invalid(format!("bad reduce dimensions {dims:?}")))?;
        reduced.push(d);
    }
    let kept: Vec<usize> = (0..rank).filter(|d| !reduced.contains(d)).collect();
    let perm: Vec<i64> = kept.iter().chain(&reduced).map(|&d| d as i64).collect();
    let out_dims: Vec<usize> = kept.iter().map(|&d| in_dims[d]).collect();
    let out_n: usize = out_dims.iter().product();
    let red_n: usize = reduced.iter().map(|&d| in_dims[d]).product();
    let moved: Vec<Value> = inputs
        .iter()
        .map(|v| {
            if v.dims() != x0.dims() {
                return Err(Error::Invalid("reduce inputs differ in shape".into()));
            }
            transpose(v, &perm)
        })
        .collect::<Result<_, _>>()?;
    if let (Combiner::Binary(op), [x], [init]) = (comb, moved.as_slice(), inits) {
        let v = typed!(x, *init, |a, i| reduce_fast(
            a, i, out_n, red_n, &out_dims, op
        )?);
        return Ok(vec![v]);
    }
    let k = inputs.len();
    let mut results: Vec<Vec<Value>> = vec![Vec::with_capacity(out_n); k];
    for i in 0..out_n {
        let mut acc: Vec<Value> = inits.iter().map(|&v| v.clone()).collect();
        for j in 0..red_n {
            let mut args = acc;
            for x in &moved {
                args.push(x.element(i * red_n + j)?);
            }
            acc = leaves(call(&args)?);
            if acc.len() != k {
                return Err(Error::Invalid(format!(
                    "reducer returned {} values for {k} inputs",
                    acc.len()
                )));
            }
        }
        for (r, a) in results.iter_mut().zip(acc) {
            r.push(a);
        }
    }
    results
        .iter()
        .zip(inits)
        .map(|(r, init)| stack(r, &out_dims, init))
        .collect()
}

fn reduce_window_fast<T: Scalar>(
    a: &ArrayD<T>,
    init: T,
    g: &Gathered,
    op: BinaryOp,
) -> Result<ArrayD<T>, Error> {
    if T::binary(op, init, init).is_none() {
        return Err(unsupported::<T>(op));
    }
    let data = flat(a);
    let out: Vec<T> = g
        .starts
        .windows(2)
        .map(|w| {
            g.input[w[0]..w[1]]
                .iter()
                .fold(init, |acc, &i| T::binary(op, acc, data[i]).unwrap_or(acc))
        })
        .collect();
    ArrayD::from_shape_vec(IxDyn(&g.out_dims), out)
        .map_err(|_| Error::Invalid("reduce-window: result size mismatch".into()))
}

/// `reduce-window`: padding and base-dilation holes are skipped (they
/// contribute nothing beyond the initial value).
pub(crate) fn reduce_window(
    x: &Value,
    init: &Value,
    window: &Window,
    comb: Combiner,
    call: &Call<'_>,
) -> Result<Value, Error> {
    let in_dims: Vec<usize> = x.dims().iter().map(|&d| d as usize).collect();
    let g = gather(&in_dims, window)?;
    let x = x.clone().standard()?;
    if let Combiner::Binary(op) = comb {
        return Ok(typed!(&x, init, |a, i| reduce_window_fast(a, i, &g, op)?));
    }
    let mut out = Vec::with_capacity(g.starts.len().saturating_sub(1));
    for w in g.starts.windows(2) {
        let mut acc = init.clone();
        for &i in &g.input[w[0]..w[1]] {
            acc = call(&[acc, x.element(i)?])?;
        }
        out.push(acc);
    }
    stack(&out, &g.out_dims, init)
}

/// The select-and-scatter scan: for each window, the first candidate in
/// scan order that `keep(current, candidate)` never replaces wins, and the
/// window's source element is scattered to it.
fn scan(
    g: &Gathered,
    mut keep: impl FnMut(usize, usize) -> Result<bool, Error>,
    mut scatter: impl FnMut(usize, usize) -> Result<(), Error>,
) -> Result<(), Error> {
    for (s, w) in g.starts.windows(2).enumerate() {
        let cands = &g.input[w[0]..w[1]];
        let Some((&firstc, rest)) = cands.split_first() else {
            continue;
        };
        let mut sel = firstc;
        for &c in rest {
            if !keep(sel, c)? {
                sel = c;
            }
        }
        scatter(sel, s)?;
    }
    Ok(())
}

fn sas_fast<T: Scalar>(
    a: &ArrayD<T>,
    src: &ArrayD<T>,
    init: T,
    g: &Gathered,
    dir: ComparisonDirection,
    op: BinaryOp,
) -> Result<ArrayD<T>, Error> {
    if T::binary(op, init, init).is_none() {
        return Err(unsupported::<T>(op));
    }
    let data = flat(a);
    let source = flat(src);
    let mut out = vec![init; data.len()];
    scan(
        g,
        |cur, cand| Ok(compare_scalar(dir, &data[cur], &data[cand])),
        |t, s| {
            let v = source
                .get(s)
                .copied()
                .ok_or_else(|| Error::Invalid("select-and-scatter: source too small".into()))?;
            out[t] = T::binary(op, out[t], v).unwrap_or(out[t]);
            Ok(())
        },
    )?;
    ArrayD::from_shape_vec(a.raw_dim(), out)
        .map_err(|_| Error::Invalid("select-and-scatter: result size mismatch".into()))
}

/// `select-and-scatter` (the gradient of max pooling).
#[allow(clippy::too_many_arguments)]
pub(crate) fn select_and_scatter(
    x: &Value,
    source: &Value,
    init: &Value,
    window: &Window,
    sel: Selector,
    comb: Combiner,
    call_select: &Call<'_>,
    call_scatter: &Call<'_>,
) -> Result<Value, Error> {
    let in_dims: Vec<usize> = x.dims().iter().map(|&d| d as usize).collect();
    let g = gather(&in_dims, window)?;
    if source
        .dims()
        .iter()
        .map(|&d| d as usize)
        .collect::<Vec<_>>()
        != g.out_dims
    {
        return Err(Error::Invalid(format!(
            "select-and-scatter source {} does not match the windowed shape {:?}",
            source.type_string(),
            g.out_dims
        )));
    }
    let x = x.clone().standard()?;
    let source = source.clone().standard()?;
    if let (Selector::Compare(dir), Combiner::Binary(op)) = (sel, comb) {
        macro_rules! fast {
            ($variant:ident) => {
                if let (Value::$variant(a), Value::$variant(s), Value::$variant(i)) =
                    (&x, &source, init)
                {
                    return Ok(Value::$variant(sas_fast(a, s, first(i)?, &g, dir, op)?));
                }
            };
        }
        fast!(F32);
        fast!(F64);
        fast!(Bf16);
        fast!(F16);
        fast!(S32);
        fast!(S64);
        fast!(U32);
        fast!(U64);
        fast!(U8);
    }
    let n = x.len();
    let mut out: Vec<Value> = vec![init.clone(); n];
    scan(
        &g,
        |cur, cand| match call_select(&[x.element(cur)?, x.element(cand)?])? {
            Value::Pred(p) => first(&p),
            v => Err(Error::Invalid(format!(
                "select computation returned {}",
                v.type_string()
            ))),
        },
        |t, s| {
            out[t] = call_scatter(&[out[t].clone(), source.element(s)?])?;
            Ok(())
        },
    )?;
    stack(&out, &in_dims, init)
}
