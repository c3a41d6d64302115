//! Reference evaluator: dot and convolution (strides, padding, dilations,
//! reversal, dimension labels, groups) against naive direct sums, and the
//! input/weight-gradient convolutions of HLO.md §8.1 against the analytic
//! adjoints of the forward convolution.

use crate::common;

use common::{assert_close, f, f32s, run, Lcg};
use simclr::interp::Value;
use simclr::ir::{Builder, ConvDims, DotDims, Window, WindowDim};

#[test]
fn matmul_by_hand() {
    let b = Builder::new("mm", 1);
    let x = b.constant_f32(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let y = b.constant_f32(&[3, 2], &[1.0, 0.0, 0.0, 1.0, 1.0, 1.0]);
    let r = run(&b, &[&x.matmul(&y)], vec![]);
    assert_eq!(f(&r[0]), vec![4.0, 5.0, 10.0, 11.0]);
}

#[test]
fn dot_with_batch_and_inner_contracting_dims() {
    // lhs [K=3, B=2, M=2], rhs [N=4, K=3, B=2]; out [B, M, N].
    let (k, bb, m, n) = (3usize, 2usize, 2usize, 4usize);
    let mut rng = Lcg(7);
    let l = rng.vec(k * bb * m);
    let r = rng.vec(n * k * bb);
    let b = Builder::new("dot", 1);
    let lt = b.parameter("l", f32s(&[k as i64, bb as i64, m as i64]));
    let rt = b.parameter("r", f32s(&[n as i64, k as i64, bb as i64]));
    let dn = DotDims {
        lhs_contracting: vec![0],
        rhs_contracting: vec![1],
        lhs_batch: vec![1],
        rhs_batch: vec![2],
    };
    let out = run(
        &b,
        &[&lt.dot_general(&rt, dn)],
        vec![
            Value::from_f32(&[3, 2, 2], l.clone()).unwrap(),
            Value::from_f32(&[4, 3, 2], r.clone()).unwrap(),
        ],
    );
    assert_eq!(out[0].dims(), vec![2, 2, 4]);
    let mut want = vec![0f32; bb * m * n];
    for b_ in 0..bb {
        for i in 0..m {
            for j in 0..n {
                want[(b_ * m + i) * n + j] = (0..k)
                    .map(|kk| l[(kk * bb + b_) * m + i] * r[(j * k + kk) * bb + b_])
                    .sum();
            }
        }
    }
    assert_close(&f(&out[0]), &want, 1e-5);
}

/// One spatial window dimension of the naive reference.
#[derive(Clone, Copy)]
struct Wd {
    stride: usize,
    pad_lo: i64,
    pad_hi: i64,
    base_dil: usize,
    win_dil: usize,
    rev: bool,
}

impl Wd {
    fn plain(stride: usize, pad: i64) -> Wd {
        Wd {
            stride,
            pad_lo: pad,
            pad_hi: pad,
            base_dil: 1,
            win_dil: 1,
            rev: false,
        }
    }

    fn ir(&self, size: usize) -> WindowDim {
        let mut w = WindowDim::new(size as i64)
            .stride(self.stride as i64)
            .pad(self.pad_lo, self.pad_hi)
            .base_dilation(self.base_dil as i64)
            .window_dilation(self.win_dil as i64);
        w.reversal = self.rev;
        w
    }

    fn out_size(&self, n: usize, k: usize) -> usize {
        let base = (n as i64 - 1) * self.base_dil as i64 + 1;
        let padded = base + self.pad_lo + self.pad_hi;
        let eff = (k as i64 - 1) * self.win_dil as i64 + 1;
        ((padded - eff) / self.stride as i64 + 1).max(0) as usize
    }

    /// The input index that window tap `w` of output `o` reads, if any.
    fn tap(&self, o: usize, w: usize, n: usize) -> Option<usize> {
        let q = (o * self.stride + w * self.win_dil) as i64 - self.pad_lo;
        if q < 0 || q % self.base_dil as i64 != 0 {
            return None;
        }
        let i = (q / self.base_dil as i64) as usize;
        (i < n).then_some(i)
    }
}

/// Naive NCHW/OIHW convolution with feature groups.
fn naive_conv(
    x: &[f32],
    xd: [usize; 4],
    w: &[f32],
    wd: [usize; 4],
    win: [Wd; 2],
    groups: usize,
) -> (Vec<f32>, [usize; 4]) {
    let [n, c, h, wi] = xd;
    let [o, ci, kh, kw] = wd;
    assert_eq!(c, ci * groups);
    let (oh, ow) = (win[0].out_size(h, kh), win[1].out_size(wi, kw));
    let mut y = vec![0f32; n * o * oh * ow];
    for b in 0..n {
        for of in 0..o {
            let g = of / (o / groups);
            for y0 in 0..oh {
                for y1 in 0..ow {
                    let mut acc = 0f32;
                    for cc in 0..ci {
                        for k0 in 0..kh {
                            for k1 in 0..kw {
                                let (Some(i0), Some(i1)) =
                                    (win[0].tap(y0, k0, h), win[1].tap(y1, k1, wi))
                                else {
                                    continue;
                                };
                                let kk0 = if win[0].rev { kh - 1 - k0 } else { k0 };
                                let kk1 = if win[1].rev { kw - 1 - k1 } else { k1 };
                                let xc = g * ci + cc;
                                acc += x[((b * c + xc) * h + i0) * wi + i1]
                                    * w[((of * ci + cc) * kh + kk0) * kw + kk1];
                            }
                        }
                    }
                    y[((b * o + of) * oh + y0) * ow + y1] = acc;
                }
            }
        }
    }
    (y, [n, o, oh, ow])
}

fn i64s(d: &[usize]) -> Vec<i64> {
    d.iter().map(|&v| v as i64).collect()
}

/// Runs one convolution through the evaluator.
#[allow(clippy::too_many_arguments)]
fn interp_conv(
    x: &[f32],
    xd: &[usize],
    w: &[f32],
    wd: &[usize],
    window: Window,
    labels: &str,
    groups: i64,
    batch_groups: i64,
) -> Value {
    let b = Builder::new("conv", 1);
    let xt = b.parameter("x", f32s(&i64s(xd)));
    let wt = b.parameter("w", f32s(&i64s(wd)));
    let y = xt.conv_general(
        &wt,
        window,
        ConvDims::from_labels(labels).expect("labels"),
        groups,
        batch_groups,
    );
    let mut r = run(
        &b,
        &[&y],
        vec![
            Value::from_f32(&i64s(xd), x.to_vec()).unwrap(),
            Value::from_f32(&i64s(wd), w.to_vec()).unwrap(),
        ],
    );
    r.remove(0)
}

/// Transposes a row-major 4-D array: output dim i is input dim `perm[i]`.
fn transpose4(a: &[f32], d: [usize; 4], perm: [usize; 4]) -> (Vec<f32>, [usize; 4]) {
    let od = [d[perm[0]], d[perm[1]], d[perm[2]], d[perm[3]]];
    let st = [d[1] * d[2] * d[3], d[2] * d[3], d[3], 1];
    let mut out = Vec::with_capacity(a.len());
    for i0 in 0..od[0] {
        for i1 in 0..od[1] {
            for i2 in 0..od[2] {
                for i3 in 0..od[3] {
                    let idx = [i0, i1, i2, i3];
                    let mut src = 0;
                    for k in 0..4 {
                        src += idx[k] * st[perm[k]];
                    }
                    out.push(a[src]);
                }
            }
        }
    }
    (out, od)
}

#[test]
fn strided_padded_conv_matches_naive_in_nchw_and_nhwc() {
    let mut rng = Lcg(1);
    let (xd, wd) = ([2, 3, 7, 7], [4, 3, 3, 3]);
    let x = rng.vec(xd.iter().product());
    let w = rng.vec(wd.iter().product());
    let win = [Wd::plain(2, 1), Wd::plain(2, 1)];
    let (want, yd) = naive_conv(&x, xd, &w, wd, win, 1);
    let window = Window::new(vec![win[0].ir(3), win[1].ir(3)]);
    let got = interp_conv(&x, &xd, &w, &wd, window.clone(), "bf01_oi01->bf01", 1, 1);
    assert_eq!(got.dims(), i64s(&yd));
    assert_close(&f(&got), &want, 1e-5);
    // The same convolution in NHWC / HWIO.
    let (xn, xnd) = transpose4(&x, xd, [0, 2, 3, 1]);
    let (wn, wnd) = transpose4(&w, wd, [2, 3, 1, 0]);
    let got = interp_conv(&xn, &xnd, &wn, &wnd, window, "b01f_01io->b01f", 1, 1);
    let (want_nhwc, _) = transpose4(&want, yd, [0, 2, 3, 1]);
    assert_close(&f(&got), &want_nhwc, 1e-5);
}

#[test]
fn dilations_negative_padding_and_reversal_match_naive() {
    let mut rng = Lcg(2);
    let (xd, wd) = ([1, 2, 6, 5], [3, 2, 2, 3]);
    let x = rng.vec(xd.iter().product());
    let w = rng.vec(wd.iter().product());
    let win = [
        Wd {
            stride: 1,
            pad_lo: -1,
            pad_hi: 2,
            base_dil: 2,
            win_dil: 1,
            rev: true,
        },
        Wd {
            stride: 2,
            pad_lo: 2,
            pad_hi: -1,
            base_dil: 1,
            win_dil: 2,
            rev: false,
        },
    ];
    let (want, yd) = naive_conv(&x, xd, &w, wd, win, 1);
    let window = Window::new(vec![win[0].ir(2), win[1].ir(3)]);
    let got = interp_conv(&x, &xd, &w, &wd, window, "bf01_oi01->bf01", 1, 1);
    assert_eq!(got.dims(), i64s(&yd));
    assert_close(&f(&got), &want, 1e-5);
}

#[test]
fn feature_groups_match_naive() {
    let mut rng = Lcg(3);
    let (xd, wd) = ([2, 4, 5, 5], [6, 2, 3, 3]);
    let x = rng.vec(xd.iter().product());
    let w = rng.vec(wd.iter().product());
    let win = [Wd::plain(1, 1), Wd::plain(1, 1)];
    let (want, _) = naive_conv(&x, xd, &w, wd, win, 2);
    let window = Window::new(vec![win[0].ir(3), win[1].ir(3)]);
    let got = interp_conv(&x, &xd, &w, &wd, window, "bf01_oi01->bf01", 2, 1);
    assert_close(&f(&got), &want, 1e-5);
}

#[test]
fn batch_groups_split_the_batch_across_output_features() {
    // StableHLO: split lhs along batch and rhs along output features into
    // batch_group_count parts, convolve pairwise, concatenate the features.
    let mut rng = Lcg(4);
    let (xd, wd) = ([4, 3, 4, 4], [4, 3, 2, 2]);
    let x = rng.vec(xd.iter().product());
    let w = rng.vec(wd.iter().product());
    let win = [Wd::plain(1, 0), Wd::plain(1, 0)];
    let window = Window::new(vec![win[0].ir(2), win[1].ir(2)]);
    let got = interp_conv(&x, &xd, &w, &wd, window, "bf01_oi01->bf01", 1, 2);
    assert_eq!(got.dims(), vec![2, 4, 3, 3]);
    let half_x = xd[1] * xd[2] * xd[3] * 2;
    let half_w = wd[1] * wd[2] * wd[3] * 2;
    let mut want = vec![0f32; 2 * 4 * 9];
    for g in 0..2 {
        let (y, _) = naive_conv(
            &x[g * half_x..(g + 1) * half_x],
            [2, 3, 4, 4],
            &w[g * half_w..(g + 1) * half_w],
            [2, 3, 2, 2],
            win,
            1,
        );
        for n in 0..2 {
            for o in 0..2 {
                for s in 0..9 {
                    want[(n * 4 + g * 2 + o) * 9 + s] = y[(n * 2 + o) * 9 + s];
                }
            }
        }
    }
    assert_close(&f(&got), &want, 1e-5);
}

/// Input and weight gradients of a forward NCHW convolution (stride s,
/// symmetric padding p, square kernel k, square input h), in the HLO.md
/// §8.1 forms, against the adjoints of the naive forward convolution.
fn check_gradients(h: usize, k: usize, s: usize, p: usize, reversal_attr: bool) {
    let (n, c, o) = (2usize, 3usize, 4usize);
    let mut rng = Lcg((h * 100 + k * 10 + s) as u64);
    let x = rng.vec(n * c * h * h);
    let w = rng.vec(o * c * k * k);
    let oh = (h + 2 * p - k) / s + 1;
    let dy = rng.vec(n * o * oh * oh);
    let ohd = (oh - 1) * s + 1;
    // Adjoints: dx[n,c,i,j] = Σ dy[n,o,y0,y1] w[o,c,k0,k1] with i = y0*s - p + k0.
    let mut dx = vec![0f32; x.len()];
    let mut dw = vec![0f32; w.len()];
    for b in 0..n {
        for of in 0..o {
            for y0 in 0..oh {
                for y1 in 0..oh {
                    let g = dy[((b * o + of) * oh + y0) * oh + y1];
                    for cc in 0..c {
                        for k0 in 0..k {
                            for k1 in 0..k {
                                let i = (y0 * s + k0) as i64 - p as i64;
                                let j = (y1 * s + k1) as i64 - p as i64;
                                if i < 0 || j < 0 || i >= h as i64 || j >= h as i64 {
                                    continue;
                                }
                                let xi = ((b * c + cc) * h + i as usize) * h + j as usize;
                                let wi = ((of * c + cc) * k + k0) * k + k1;
                                dx[xi] += g * w[wi];
                                dw[wi] += g * x[xi];
                            }
                        }
                    }
                }
            }
        }
    }
    let b = Builder::new("grads", 1);
    let xt = b.parameter("x", f32s(&[n as i64, c as i64, h as i64, h as i64]));
    let wt = b.parameter("w", f32s(&[o as i64, c as i64, k as i64, k as i64]));
    let dyt = b.parameter("dy", f32s(&[n as i64, o as i64, oh as i64, oh as i64]));
    let (k_, s_, p_, h_) = (k as i64, s as i64, p as i64, h as i64);
    let in_lo = k_ - 1 - p_;
    let in_hi = (h_ + k_ - 1) - ohd as i64 - in_lo;
    let mut dim_in = WindowDim::new(k_).pad(in_lo, in_hi).base_dilation(s_);
    dim_in.reversal = reversal_attr;
    let win_in = Window::new(vec![dim_in.clone(), dim_in]);
    let kernel = if reversal_attr {
        wt.clone()
    } else {
        wt.reverse(&[2, 3])
    };
    let dxt = dyt.conv_general(
        &kernel,
        win_in,
        ConvDims::from_labels("bf01_io01->bf01").unwrap(),
        1,
        1,
    );
    let w_hi = (ohd as i64 - h_) + (k_ - p_ - 1);
    let dim_w = WindowDim::new(oh as i64).pad(p_, w_hi).window_dilation(s_);
    let dwt = xt.conv_general(
        &dyt,
        Window::new(vec![dim_w.clone(), dim_w]),
        ConvDims::from_labels("fb01_io01->fb01").unwrap(),
        1,
        1,
    );
    let r = run(
        &b,
        &[&dxt, &dwt],
        vec![
            Value::from_f32(&[n as i64, c as i64, h_, h_], x).unwrap(),
            Value::from_f32(&[o as i64, c as i64, k_, k_], w).unwrap(),
            Value::from_f32(&[n as i64, o as i64, oh as i64, oh as i64], dy).unwrap(),
        ],
    );
    assert_eq!(r[0].dims(), vec![n as i64, c as i64, h_, h_]);
    assert_eq!(r[1].dims(), vec![o as i64, c as i64, k_, k_]);
    assert_close(&f(&r[0]), &dx, 1e-4);
    assert_close(&f(&r[1]), &dw, 1e-4);
}

#[test]
fn input_and_weight_gradient_convolutions_match_the_adjoints() {
    check_gradients(7, 3, 1, 1, false);
    check_gradients(7, 3, 2, 1, false);
    check_gradients(8, 7, 2, 3, false);
    check_gradients(8, 1, 2, 0, false);
    check_gradients(7, 3, 2, 1, true);
}
