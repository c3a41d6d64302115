//! Data-movement ops: broadcast, reshape, transpose, reverse, slice,
//! dynamic-slice / dynamic-update-slice (with XLA's clamping of start
//! indices), concatenate and pad (negative edges and interior padding).
//! Every result is a row-major (standard layout) array.

use super::value::{map_same, zip_same, Value};
use super::Error;
use ndarray::{ArrayD, ArrayViewD, Axis, IxDyn, Slice};

/// Copies a view into a new row-major array.
pub(crate) fn own<T: Clone>(v: ArrayViewD<'_, T>) -> ArrayD<T> {
    if v.is_standard_layout() {
        return v.to_owned();
    }
    let data: Vec<T> = v.iter().cloned().collect();
    ArrayD::from_shape_vec(v.raw_dim(), data).unwrap_or_else(|_| unreachable!())
}

fn to_usize(dims: &[i64], what: &str) -> Result<Vec<usize>, Error> {
    dims.iter()
        .map(|&d| {
            usize::try_from(d).map_err(|_| Error::Invalid(format!("{what}: negative value {d}")))
        })
        .collect()
}

fn check_rank<T>(a: &ArrayD<T>, n: usize, what: &str) -> Result<(), Error> {
    if a.ndim() != n {
        return Err(Error::Invalid(format!(
            "{what}: expected {n} entries for an operand of rank {}",
            a.ndim()
        )));
    }
    Ok(())
}

fn broadcast_array<T: Clone>(
    a: &ArrayD<T>,
    out: &[usize],
    dims: &[usize],
) -> Result<ArrayD<T>, Error> {
    check_rank(a, dims.len(), "broadcast dimensions")?;
    let mut order: Vec<usize> = (0..a.ndim()).collect();
    order.sort_by_key(|&i| dims[i]);
    let targets: Vec<usize> = order.iter().map(|&i| dims[i]).collect();
    if targets.windows(2).any(|w| w[0] == w[1]) || targets.iter().any(|&t| t >= out.len()) {
        return Err(Error::Invalid(format!(
            "broadcast dimensions {dims:?} are invalid for output {out:?}"
        )));
    }
    let mut view = a.view().permuted_axes(IxDyn(&order));
    for t in 0..out.len() {
        if !targets.contains(&t) {
            view = view.insert_axis(Axis(t));
        }
    }
    let b = view.broadcast(IxDyn(out)).ok_or_else(|| {
        Error::Invalid(format!(
            "cannot broadcast {:?} to {out:?} with dimensions {dims:?}",
            a.shape()
        ))
    })?;
    Ok(own(b))
}

/// `broadcast`: operand dimension i becomes output dimension `dims[i]`.
pub(crate) fn broadcast(v: &Value, out_dims: &[i64], dims: &[i64]) -> Result<Value, Error> {
    let out = to_usize(out_dims, "broadcast")?;
    let dims = to_usize(dims, "broadcast")?;
    Ok(map_same!(v, "broadcast", |a| broadcast_array(
        a, &out, &dims
    )?))
}

fn reshape_array<T: Clone>(a: &ArrayD<T>, dims: &[usize]) -> Result<ArrayD<T>, Error> {
    let data: Vec<T> = a.iter().cloned().collect();
    let n = data.len();
    ArrayD::from_shape_vec(IxDyn(dims), data)
        .map_err(|_| Error::Invalid(format!("cannot reshape {n} elements to {dims:?}")))
}

/// Row-major `reshape`.
pub(crate) fn reshape(v: &Value, dims: &[i64]) -> Result<Value, Error> {
    let dims = to_usize(dims, "reshape")?;
    Ok(map_same!(v, "reshape", |a| reshape_array(a, &dims)?))
}

fn check_perm(perm: &[usize], n: usize) -> Result<(), Error> {
    let mut seen = vec![false; n];
    if perm.len() != n {
        return Err(Error::Invalid(format!(
            "permutation {perm:?} does not have rank {n}"
        )));
    }
    for &p in perm {
        match seen.get_mut(p) {
            Some(s) if !*s => *s = true,
            _ => {
                return Err(Error::Invalid(format!(
                    "{perm:?} is not a permutation of 0..{n}"
                )))
            }
        }
    }
    Ok(())
}

fn transpose_array<T: Clone>(a: &ArrayD<T>, perm: &[usize]) -> Result<ArrayD<T>, Error> {
    check_perm(perm, a.ndim())?;
    Ok(own(a.view().permuted_axes(IxDyn(perm))))
}

/// `transpose`: output dimension i is operand dimension `perm[i]`.
pub(crate) fn transpose(v: &Value, perm: &[i64]) -> Result<Value, Error> {
    let perm = to_usize(perm, "transpose")?;
    Ok(map_same!(v, "transpose", |a| transpose_array(a, &perm)?))
}

fn reverse_array<T: Clone>(a: &ArrayD<T>, dims: &[usize]) -> Result<ArrayD<T>, Error> {
    if let Some(d) = dims.iter().find(|&&d| d >= a.ndim()) {
        return Err(Error::Invalid(format!(
            "reverse dimension {d} out of range"
        )));
    }
    Ok(own(a.slice_each_axis(|ad| {
        if dims.contains(&ad.axis.index()) {
            Slice::new(0, None, -1)
        } else {
            Slice::from(..)
        }
    })))
}

/// `reverse` of the listed dimensions.
pub(crate) fn reverse(v: &Value, dims: &[i64]) -> Result<Value, Error> {
    let dims = to_usize(dims, "reverse")?;
    Ok(map_same!(v, "reverse", |a| reverse_array(a, &dims)?))
}

fn slice_array<T: Clone>(
    a: &ArrayD<T>,
    start: &[i64],
    limit: &[i64],
    stride: &[i64],
) -> Result<ArrayD<T>, Error> {
    let r = a.ndim();
    if start.len() != r || limit.len() != r || stride.len() != r {
        return Err(Error::Invalid(format!(
            "slice needs {r} start/limit/stride entries"
        )));
    }
    for d in 0..r {
        let n = a.shape()[d] as i64;
        if stride[d] < 1 || start[d] < 0 || limit[d] < start[d] || limit[d] > n {
            return Err(Error::Invalid(format!(
                "slice [{}:{}:{}] is invalid for dimension {d} of size {n}",
                start[d], limit[d], stride[d]
            )));
        }
    }
    Ok(own(a.slice_each_axis(|ad| {
        let d = ad.axis.index();
        Slice::new(
            start[d] as isize,
            Some(limit[d] as isize),
            stride[d] as isize,
        )
    })))
}

/// Static strided `slice`.
pub(crate) fn slice(
    v: &Value,
    start: &[i64],
    limit: &[i64],
    stride: &[i64],
) -> Result<Value, Error> {
    Ok(map_same!(v, "slice", |a| slice_array(
        a, start, limit, stride
    )?))
}

/// Clamps run-time start indices so that a block of `sizes` fits in `dims`.
fn clamp_starts(dims: &[usize], sizes: &[usize], starts: &[i64]) -> Result<Vec<i64>, Error> {
    if sizes.len() != dims.len() || starts.len() != dims.len() {
        return Err(Error::Invalid(format!(
            "expected {} start indices and sizes, got {} and {}",
            dims.len(),
            starts.len(),
            sizes.len()
        )));
    }
    dims.iter()
        .zip(sizes)
        .zip(starts)
        .map(|((&n, &s), &st)| {
            if s > n {
                return Err(Error::Invalid(format!(
                    "slice size {s} exceeds dimension size {n}"
                )));
            }
            Ok(st.clamp(0, (n - s) as i64))
        })
        .collect()
}

/// `dynamic-slice` with start indices clamped into `[0, dim - size]`.
pub(crate) fn dynamic_slice(v: &Value, starts: &[i64], sizes: &[i64]) -> Result<Value, Error> {
    let sizes_u = to_usize(sizes, "dynamic-slice sizes")?;
    let dims: Vec<usize> = v.dims().iter().map(|&d| d as usize).collect();
    let st = clamp_starts(&dims, &sizes_u, starts)?;
    let limit: Vec<i64> = st.iter().zip(sizes).map(|(a, b)| a + b).collect();
    slice(v, &st, &limit, &vec![1; dims.len()])
}

fn dus_array<T: Clone>(a: &ArrayD<T>, u: &ArrayD<T>, starts: &[i64]) -> Result<ArrayD<T>, Error> {
    if u.ndim() != a.ndim() {
        return Err(Error::Invalid(format!(
            "update of rank {} for an operand of rank {}",
            u.ndim(),
            a.ndim()
        )));
    }
    let st = clamp_starts(a.shape(), u.shape(), starts)?;
    let mut out = a.clone();
    out.slice_each_axis_mut(|ad| {
        let d = ad.axis.index();
        Slice::from(st[d] as isize..st[d] as isize + u.shape()[d] as isize)
    })
    .assign(u);
    Ok(out)
}

/// `dynamic-update-slice` with start indices clamped so the update fits.
pub(crate) fn dynamic_update_slice(v: &Value, u: &Value, starts: &[i64]) -> Result<Value, Error> {
    Ok(zip_same!(v, u, "dynamic-update-slice", |a, b| dus_array(
        a, b, starts
    )?))
}

fn concat_arrays<T: Clone>(parts: &[&ArrayD<T>], dim: usize) -> Result<ArrayD<T>, Error> {
    let views: Vec<ArrayViewD<'_, T>> = parts.iter().map(|a| a.view()).collect();
    if views.first().is_some_and(|v| dim >= v.ndim()) {
        return Err(Error::Invalid(format!(
            "concatenate dimension {dim} out of range"
        )));
    }
    let c = ndarray::concatenate(Axis(dim), &views)
        .map_err(|e| Error::Invalid(format!("concatenate: {e}")))?;
    Ok(own(c.view()))
}

/// `concatenate` along `dim`.
pub(crate) fn concatenate(parts: &[&Value], dim: i64) -> Result<Value, Error> {
    let dim = usize::try_from(dim)
        .map_err(|_| Error::Invalid(format!("negative concatenate dimension {dim}")))?;
    macro_rules! cat {
        ($variant:ident) => {{
            let mut arrs = Vec::with_capacity(parts.len());
            for p in parts {
                match p {
                    Value::$variant(a) => arrs.push(a),
                    other => {
                        return Err(Error::Invalid(format!(
                            "concatenate of mixed types ({})",
                            other.type_string()
                        )))
                    }
                }
            }
            Value::$variant(concat_arrays(&arrs, dim)?)
        }};
    }
    let Some(first) = parts.first() else {
        return Err(Error::Invalid("concatenate of nothing".into()));
    };
    Ok(match first {
        Value::Pred(_) => cat!(Pred),
        Value::U8(_) => cat!(U8),
        Value::S32(_) => cat!(S32),
        Value::S64(_) => cat!(S64),
        Value::U32(_) => cat!(U32),
        Value::U64(_) => cat!(U64),
        Value::Bf16(_) => cat!(Bf16),
        Value::F16(_) => cat!(F16),
        Value::F32(_) => cat!(F32),
        Value::F64(_) => cat!(F64),
        Value::Tuple(_) => return Err(Error::Invalid("concatenate of a tuple".into())),
    })
}

fn pad_array<T: Clone>(
    a: &ArrayD<T>,
    value: &ArrayD<T>,
    pads: &[crate::ir::PadDim],
) -> Result<ArrayD<T>, Error> {
    check_rank(a, pads.len(), "pad")?;
    let fill = value
        .iter()
        .next()
        .cloned()
        .ok_or_else(|| Error::Invalid("empty padding value".into()))?;
    let mut out_dims = Vec::with_capacity(a.ndim());
    // Per dimension: operand range [i0, i1) that lands inside the output, the
    // first output position and the step between neighbours.
    let mut src = Vec::with_capacity(a.ndim());
    let mut dst = Vec::with_capacity(a.ndim());
    let mut empty = false;
    for (d, p) in pads.iter().enumerate() {
        let n = a.shape()[d] as i64;
        if p.interior < 0 {
            return Err(Error::Invalid(format!(
                "negative interior padding in dimension {d}"
            )));
        }
        let size = n + p.lo + p.hi + (n - 1).max(0) * p.interior;
        if size < 0 {
            return Err(Error::Invalid(format!(
                "padding {p:?} leaves dimension {d} negative"
            )));
        }
        out_dims.push(size as usize);
        let step = p.interior + 1;
        // Smallest i with lo + i*step >= 0; largest i with lo + i*step < size.
        let i0 = if p.lo >= 0 {
            0
        } else {
            (-p.lo + step - 1) / step
        };
        let i1 = if size == 0 {
            0
        } else {
            ((size - 1 - p.lo).div_euclid(step) + 1).min(n)
        };
        if i1 <= i0 {
            empty = true;
        }
        src.push((i0, i1.max(i0)));
        dst.push((p.lo + i0 * step, step));
    }
    let mut out = ArrayD::from_elem(IxDyn(&out_dims), fill);
    if !empty && !a.is_empty() {
        let part = a.slice_each_axis(|ad| {
            let (i0, i1) = src[ad.axis.index()];
            Slice::from(i0 as isize..i1 as isize)
        });
        out.slice_each_axis_mut(|ad| {
            let d = ad.axis.index();
            let (start, step) = dst[d];
            let count = src[d].1 - src[d].0;
            Slice::new(
                start as isize,
                Some((start + (count - 1) * step + 1) as isize),
                step as isize,
            )
        })
        .assign(&part);
    }
    Ok(out)
}

/// `pad` with edge (possibly negative) and interior padding.
pub(crate) fn pad(v: &Value, value: &Value, pads: &[crate::ir::PadDim]) -> Result<Value, Error> {
    Ok(zip_same!(v, value, "pad", |a, b| pad_array(a, b, pads)?))
}
