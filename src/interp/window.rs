//! Window index math shared by convolution, reduce-window and
//! select-and-scatter: for every output position, the input elements its
//! window covers (after padding, base dilation and window dilation), in
//! window scan order.

use super::Error;
use crate::ir::{Window, WindowDim};

/// For each output position (row-major flat index `o`), the entries
/// `starts[o]..starts[o + 1]` of `input` and `window` list the covered input
/// elements (flat row-major index) and their window position (flat index,
/// after `window_reversal`). Padding and base-dilation holes are left out.
#[derive(Debug, Clone)]
pub(crate) struct Gathered {
    /// Output dimensions.
    pub out_dims: Vec<usize>,
    /// CSR offsets, one more than the number of output positions.
    pub starts: Vec<usize>,
    /// Flat input index of each covered element.
    pub input: Vec<usize>,
    /// Flat window index of each covered element.
    pub window: Vec<usize>,
}

fn row_major_strides(dims: &[usize]) -> Vec<usize> {
    let mut s = vec![1usize; dims.len()];
    for i in (0..dims.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * dims[i + 1];
    }
    s
}

/// Input index covered by window element `w` of output position `o`, if any.
fn input_index(wd: &WindowDim, n_in: usize, o: usize, w: usize) -> Option<usize> {
    if n_in == 0 {
        return None;
    }
    let q = o as i64 * wd.stride + w as i64 * wd.window_dilation - wd.pad_lo;
    let last = (n_in as i64 - 1) * wd.base_dilation;
    if q < 0 || q > last || q % wd.base_dilation != 0 {
        return None;
    }
    Some((q / wd.base_dilation) as usize)
}

/// Advances a row-major multi-index; false after the last one.
fn step(idx: &mut [usize], dims: &[usize]) -> bool {
    for d in (0..idx.len()).rev() {
        idx[d] += 1;
        if idx[d] < dims[d] {
            return true;
        }
        idx[d] = 0;
    }
    false
}

/// The windows of `window` over an input of `in_dims`.
pub(crate) fn gather(in_dims: &[usize], window: &Window) -> Result<Gathered, Error> {
    let r = in_dims.len();
    if window.dims.len() != r {
        return Err(Error::Invalid(format!(
            "window has {} dimensions for an input of rank {r}",
            window.dims.len()
        )));
    }
    let mut out_dims = Vec::with_capacity(r);
    let mut sizes = Vec::with_capacity(r);
    for (wd, &n) in window.dims.iter().zip(in_dims) {
        let o = wd.output_size(n as i64).ok_or_else(|| {
            Error::Invalid(format!(
                "window {} does not fit an input extent of {n}",
                window.to_text()
            ))
        })?;
        out_dims.push(o as usize);
        sizes.push(wd.size as usize);
    }
    // tables[d][o * size + w] = input index along d.
    let tables: Vec<Vec<Option<usize>>> = (0..r)
        .map(|d| {
            let wd = &window.dims[d];
            (0..out_dims[d])
                .flat_map(|o| (0..sizes[d]).map(move |w| (o, w)))
                .map(|(o, w)| input_index(wd, in_dims[d], o, w))
                .collect()
        })
        .collect();
    let in_strides = row_major_strides(in_dims);
    let win_strides = row_major_strides(&sizes);
    let n_out: usize = out_dims.iter().product();
    let n_win: usize = sizes.iter().product();
    let mut g = Gathered {
        out_dims: out_dims.clone(),
        starts: Vec::with_capacity(n_out + 1),
        input: Vec::with_capacity(n_out * n_win),
        window: Vec::with_capacity(n_out * n_win),
    };
    g.starts.push(0);
    if n_out == 0 {
        return Ok(g);
    }
    let mut o = vec![0usize; r];
    loop {
        if n_win > 0 {
            let mut w = vec![0usize; r];
            loop {
                let mut flat_in = 0usize;
                let mut flat_w = 0usize;
                let mut ok = true;
                for d in 0..r {
                    match tables[d][o[d] * sizes[d] + w[d]] {
                        Some(i) => flat_in += i * in_strides[d],
                        None => {
                            ok = false;
                            break;
                        }
                    }
                    let wi = if window.dims[d].reversal {
                        sizes[d] - 1 - w[d]
                    } else {
                        w[d]
                    };
                    flat_w += wi * win_strides[d];
                }
                if ok {
                    g.input.push(flat_in);
                    g.window.push(flat_w);
                }
                if !step(&mut w, &sizes) {
                    break;
                }
            }
        }
        g.starts.push(g.input.len());
        if !step(&mut o, &out_dims) {
            break;
        }
    }
    Ok(g)
}
