//! Contractions: `dot` with batch and contracting dimensions, and
//! `convolution` with arbitrary dimension labels, strides, (negative)
//! padding, base and window dilation, window reversal, feature groups and
//! batch groups.
//!
//! Both bring their operands into a canonical row-major layout first
//! (contracted/feature dimension innermost), so the inner loops are dot
//! products of contiguous slices. Accumulation happens in the element type
//! (wrapping for integers); bf16/f16 accumulate in `f32` and round once.

use super::shape_ops::own;
use super::value::Value;
use super::window;
use super::Error;
use crate::ir::{ConvDims, DotDims, Window};
use ndarray::{ArrayD, IxDyn};

/// Multiply-accumulate of one element type.
pub(crate) trait Num: Copy + Default + 'static {
    /// `acc + a * b`.
    fn mac(acc: Self, a: Self, b: Self) -> Self;
}

impl Num for f32 {
    fn mac(acc: f32, a: f32, b: f32) -> f32 {
        acc + a * b
    }
}

impl Num for f64 {
    fn mac(acc: f64, a: f64, b: f64) -> f64 {
        acc + a * b
    }
}

impl Num for bool {
    fn mac(acc: bool, a: bool, b: bool) -> bool {
        acc | (a & b)
    }
}

macro_rules! int_num {
    ($($t:ty),*) => {$(
        impl Num for $t {
            fn mac(acc: $t, a: $t, b: $t) -> $t {
                acc.wrapping_add(a.wrapping_mul(b))
            }
        }
    )*};
}
int_num!(u8, i32, i64, u32, u64);

fn idx(d: i64, rank: usize, what: &str) -> Result<usize, Error> {
    usize::try_from(d)
        .ok()
        .filter(|&d| d < rank)
        .ok_or_else(|| Error::Invalid(format!("{what} {d} is out of range for rank {rank}")))
}

fn dot_array<T: Num>(l: &ArrayD<T>, r: &ArrayD<T>, dn: &DotDims) -> Result<ArrayD<T>, Error> {
    let conv = |v: &[i64], rank: usize, what: &str| -> Result<Vec<usize>, Error> {
        v.iter().map(|&d| idx(d, rank, what)).collect()
    };
    let lb = conv(&dn.lhs_batch, l.ndim(), "lhs batch dimension")?;
    let lc = conv(&dn.lhs_contracting, l.ndim(), "lhs contracting dimension")?;
    let rb = conv(&dn.rhs_batch, r.ndim(), "rhs batch dimension")?;
    let rc = conv(&dn.rhs_contracting, r.ndim(), "rhs contracting dimension")?;
    if lb.len() != rb.len() || lc.len() != rc.len() {
        return Err(Error::Invalid(format!("unbalanced dot dimensions {dn:?}")));
    }
    for (a, b) in lb.iter().zip(&rb).chain(lc.iter().zip(&rc)) {
        if l.shape()[*a] != r.shape()[*b] {
            return Err(Error::Invalid(format!(
                "dot: lhs dimension {a} and rhs dimension {b} differ in size"
            )));
        }
    }
    let lfree: Vec<usize> = (0..l.ndim())
        .filter(|d| !lb.contains(d) && !lc.contains(d))
        .collect();
    let rfree: Vec<usize> = (0..r.ndim())
        .filter(|d| !rb.contains(d) && !rc.contains(d))
        .collect();
    let lperm: Vec<usize> = lb.iter().chain(&lfree).chain(&lc).copied().collect();
    let rperm: Vec<usize> = rb.iter().chain(&rfree).chain(&rc).copied().collect();
    if lperm.len() != l.ndim() || rperm.len() != r.ndim() {
        return Err(Error::Invalid(format!(
            "dot dimensions {dn:?} repeat a dimension"
        )));
    }
    let size =
        |a: &ArrayD<T>, ds: &[usize]| -> usize { ds.iter().map(|&d| a.shape()[d]).product() };
    let (nb, m, k, n) = (size(l, &lb), size(l, &lfree), size(l, &lc), size(r, &rfree));
    let lt = own(l.view().permuted_axes(IxDyn(&lperm)));
    let rt = own(r.view().permuted_axes(IxDyn(&rperm)));
    let (Some(ls), Some(rs)) = (lt.as_slice(), rt.as_slice()) else {
        return Err(Error::Invalid("dot: operands are not contiguous".into()));
    };
    let mut out = vec![T::default(); nb * m * n];
    for b in 0..nb {
        for i in 0..m {
            let row = &ls[(b * m + i) * k..(b * m + i + 1) * k];
            for j in 0..n {
                let col = &rs[(b * n + j) * k..(b * n + j + 1) * k];
                out[(b * m + i) * n + j] = row
                    .iter()
                    .zip(col)
                    .fold(T::default(), |acc, (&x, &y)| T::mac(acc, x, y));
            }
        }
    }
    let mut dims: Vec<usize> = lb.iter().map(|&d| l.shape()[d]).collect();
    dims.extend(lfree.iter().map(|&d| l.shape()[d]));
    dims.extend(rfree.iter().map(|&d| r.shape()[d]));
    ArrayD::from_shape_vec(IxDyn(&dims), out)
        .map_err(|_| Error::Invalid("dot: result size mismatch".into()))
}

/// General `dot`: result dims are batch, lhs free, rhs free.
pub(crate) fn dot(l: &Value, r: &Value, dn: &DotDims) -> Result<Value, Error> {
    Ok(match (l, r) {
        (Value::Pred(a), Value::Pred(b)) => Value::Pred(dot_array(a, b, dn)?),
        (Value::U8(a), Value::U8(b)) => Value::U8(dot_array(a, b, dn)?),
        (Value::S32(a), Value::S32(b)) => Value::S32(dot_array(a, b, dn)?),
        (Value::S64(a), Value::S64(b)) => Value::S64(dot_array(a, b, dn)?),
        (Value::U32(a), Value::U32(b)) => Value::U32(dot_array(a, b, dn)?),
        (Value::U64(a), Value::U64(b)) => Value::U64(dot_array(a, b, dn)?),
        (Value::Bf16(a), Value::Bf16(b)) => Value::Bf16(dot_array(a, b, dn)?),
        (Value::F16(a), Value::F16(b)) => Value::F16(dot_array(a, b, dn)?),
        (Value::F32(a), Value::F32(b)) => Value::F32(dot_array(a, b, dn)?),
        (Value::F64(a), Value::F64(b)) => Value::F64(dot_array(a, b, dn)?),
        _ => {
            return Err(Error::Invalid(format!(
                "dot of {} and {}",
                l.type_string(),
                r.type_string()
            )))
        }
    })
}

/// Attributes of a convolution besides its operands.
pub(crate) struct ConvAttrs<'a> {
    pub window: &'a Window,
    pub dnums: &'a ConvDims,
    pub feature_group_count: i64,
    pub batch_group_count: i64,
}

fn conv_array<T: Num>(x: &ArrayD<T>, w: &ArrayD<T>, c: &ConvAttrs<'_>) -> Result<ArrayD<T>, Error> {
    let dn = c.dnums;
    let r = x.ndim();
    if w.ndim() != r || r < 2 {
        return Err(Error::Invalid(format!(
            "convolution of ranks {} and {}",
            x.ndim(),
            w.ndim()
        )));
    }
    let ns = r - 2;
    if dn.input_spatial.len() != ns
        || dn.kernel_spatial.len() != ns
        || dn.output_spatial.len() != ns
        || c.window.dims.len() != ns
    {
        return Err(Error::Invalid(format!(
            "convolution dimension numbers {} or window do not match rank {r}",
            dn.to_labels()
        )));
    }
    let list = |first: &[i64], rest: &[i64], what: &str| -> Result<Vec<usize>, Error> {
        let v: Vec<usize> = first
            .iter()
            .chain(rest)
            .map(|&d| idx(d, r, what))
            .collect::<Result<_, _>>()?;
        let mut seen = vec![false; r];
        for &d in &v {
            if std::mem::replace(&mut seen[d], true) {
                return Err(Error::Invalid(format!("{what}s repeat dimension {d}")));
            }
        }
        Ok(v)
    };
    // Canonical layouts: input [N, spatial…, C], kernel [O, spatial…, I],
    // output [N, O, spatial…].
    let xperm = list(&[dn.input_batch], &dn.input_spatial, "input dimension")?;
    let xperm: Vec<usize> = xperm
        .into_iter()
        .chain([idx(dn.input_feature, r, "input feature dimension")?])
        .collect();
    let wperm = list(
        &[dn.kernel_output_feature],
        &dn.kernel_spatial,
        "kernel dimension",
    )?;
    let wperm: Vec<usize> = wperm
        .into_iter()
        .chain([idx(
            dn.kernel_input_feature,
            r,
            "kernel input feature dimension",
        )?])
        .collect();
    let operm = list(
        &[dn.output_batch, dn.output_feature],
        &dn.output_spatial,
        "output dimension",
    )?;
    for (perm, what) in [(&xperm, "input"), (&wperm, "kernel")] {
        let mut seen = vec![false; r];
        for &p in perm.iter() {
            if std::mem::replace(&mut seen[p], true) {
                return Err(Error::Invalid(format!(
                    "convolution {what} dimension numbers repeat dimension {p}"
                )));
            }
        }
    }
    let xs = x.shape();
    let ws = w.shape();
    let (n, cin) = (xs[xperm[0]], xs[xperm[r - 1]]);
    let (o_feat, cg) = (ws[wperm[0]], ws[wperm[r - 1]]);
    let in_sp: Vec<usize> = xperm[1..r - 1].iter().map(|&d| xs[d]).collect();
    let k_sp: Vec<usize> = wperm[1..r - 1].iter().map(|&d| ws[d]).collect();
    let (g, bg) = (c.feature_group_count, c.batch_group_count);
    if g < 1 || bg < 1 {
        return Err(Error::Invalid("group counts must be at least 1".into()));
    }
    let (g, bg) = (g as usize, bg as usize);
    if cin != g * cg || o_feat % g != 0 || o_feat % bg != 0 || n % bg != 0 {
        return Err(Error::Invalid(format!(
            "convolution: input features {cin}, kernel features {cg}x{o_feat}, batch {n} do not \
             fit feature_group_count {g} and batch_group_count {bg}"
        )));
    }
    for (k, wd) in c.window.dims.iter().enumerate() {
        if wd.size as usize != k_sp[k] {
            return Err(Error::Invalid(format!(
                "window size {} does not match kernel extent {} in spatial dimension {k}",
                wd.size, k_sp[k]
            )));
        }
    }
    let gat = window::gather(&in_sp, c.window)?;
    let s_in: usize = in_sp.iter().product();
    let s_k: usize = k_sp.iter().product();
    let s_out: usize = gat.out_dims.iter().product();
    let nb = n / bg;
    let (o_per_g, o_per_bg) = (o_feat / g, o_feat / bg);
    let xt = own(x.view().permuted_axes(IxDyn(&xperm)));
    let wt = own(w.view().permuted_axes(IxDyn(&wperm)));
    let (Some(xd), Some(wdat)) = (xt.as_slice(), wt.as_slice()) else {
        return Err(Error::Invalid(
            "convolution: operands are not contiguous".into(),
        ));
    };
    let mut out = vec![T::default(); nb * o_feat * s_out];
    for b in 0..nb {
        for o in 0..o_feat {
            let grp = o / o_per_g;
            let n_in = (o / o_per_bg) * nb + b;
            let x_base = n_in * s_in * cin + grp * cg;
            let w_base = o * s_k * cg;
            let dst = &mut out[(b * o_feat + o) * s_out..(b * o_feat + o + 1) * s_out];
            for (s, slot) in dst.iter_mut().enumerate() {
                let mut acc = T::default();
                for j in gat.starts[s]..gat.starts[s + 1] {
                    let xo = x_base + gat.input[j] * cin;
                    let wo = w_base + gat.window[j] * cg;
                    for (&xv, &wv) in xd[xo..xo + cg].iter().zip(&wdat[wo..wo + cg]) {
                        acc = T::mac(acc, xv, wv);
                    }
                }
                *slot = acc;
            }
        }
    }
    let mut cdims = vec![nb, o_feat];
    cdims.extend(&gat.out_dims);
    let canon = ArrayD::from_shape_vec(IxDyn(&cdims), out)
        .map_err(|_| Error::Invalid("convolution: result size mismatch".into()))?;
    // Output position operm[k] holds canonical axis k; invert for permuted_axes.
    let mut inv = vec![0usize; r];
    for (k, &p) in operm.iter().enumerate() {
        inv[p] = k;
    }
    Ok(own(canon.view().permuted_axes(IxDyn(&inv))))
}

/// General `convolution`.
pub(crate) fn convolution(x: &Value, w: &Value, c: &ConvAttrs<'_>) -> Result<Value, Error> {
    Ok(match (x, w) {
        (Value::Pred(a), Value::Pred(b)) => Value::Pred(conv_array(a, b, c)?),
        (Value::U8(a), Value::U8(b)) => Value::U8(conv_array(a, b, c)?),
        (Value::S32(a), Value::S32(b)) => Value::S32(conv_array(a, b, c)?),
        (Value::S64(a), Value::S64(b)) => Value::S64(conv_array(a, b, c)?),
        (Value::U32(a), Value::U32(b)) => Value::U32(conv_array(a, b, c)?),
        (Value::U64(a), Value::U64(b)) => Value::U64(conv_array(a, b, c)?),
        (Value::Bf16(a), Value::Bf16(b)) => Value::Bf16(conv_array(a, b, c)?),
        (Value::F16(a), Value::F16(b)) => Value::F16(conv_array(a, b, c)?),
        (Value::F32(a), Value::F32(b)) => Value::F32(conv_array(a, b, c)?),
        (Value::F64(a), Value::F64(b)) => Value::F64(conv_array(a, b, c)?),
        _ => {
            return Err(Error::Invalid(format!(
                "convolution of {} and {}",
                x.type_string(),
                w.type_string()
            )))
        }
    })
}
