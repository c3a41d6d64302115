//! Reference evaluator: random shapes for transpose+reduce, pad, dot and
//! reduce-window, compared with naive reference loops.

use crate::common;

use common::{f, f32s, run, Lcg};
use proptest::prelude::*;
use simclr::interp::Value;
use simclr::ir::{BinaryOp, Builder, ElementType, PadDim, Window, WindowDim};

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 24,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn transpose_then_sum_matches_loops(d0 in 1usize..4, d1 in 1usize..4, d2 in 1usize..4, red in 0usize..3, seed in 0u64..1000) {
        let data = Lcg(seed).vec(d0 * d1 * d2);
        let b = Builder::new("p", 1);
        let x = b.parameter("x", f32s(&[d0 as i64, d1 as i64, d2 as i64]));
        // t[a, b, c] = x[b, c, a]
        let t = x.transpose(&[2, 0, 1]);
        let s = t.sum(&[red as i64]);
        let r = run(&b, &[&t, &s], vec![Value::from_f32(&[d0 as i64, d1 as i64, d2 as i64], data.clone()).unwrap()]);
        let td = [d2, d0, d1];
        let x_at = |i: usize, j: usize, k: usize| data[(i * d1 + j) * d2 + k];
        let mut want_t = vec![];
        for a in 0..td[0] { for bb in 0..td[1] { for c in 0..td[2] { want_t.push(x_at(bb, c, a)); } } }
        prop_assert_eq!(f(&r[0]), want_t.clone());
        let kept: Vec<usize> = (0..3).filter(|&k| k != red).collect();
        let mut want_s = vec![];
        for i in 0..td[kept[0]] {
            for j in 0..td[kept[1]] {
                let mut acc = 0f32;
                for k in 0..td[red] {
                    let mut idx = [0usize; 3];
                    idx[kept[0]] = i; idx[kept[1]] = j; idx[red] = k;
                    acc += want_t[(idx[0] * td[1] + idx[1]) * td[2] + idx[2]];
                }
                want_s.push(acc);
            }
        }
        let got = f(&r[1]);
        for (g, w) in got.iter().zip(&want_s) { prop_assert!((g - w).abs() < 1e-5); }
    }

    #[test]
    fn pad_matches_loops(n0 in 1i64..4, n1 in 1i64..4, lo0 in -2i64..3, hi0 in -2i64..3, lo1 in -2i64..3, hi1 in -2i64..3, in0 in 0i64..3, in1 in 0i64..3) {
        let size = |n: i64, lo: i64, hi: i64, it: i64| n + lo + hi + (n - 1) * it;
        prop_assume!(size(n0, lo0, hi0, in0) >= 0 && size(n1, lo1, hi1, in1) >= 0);
        let data: Vec<f32> = (0..n0 * n1).map(|i| i as f32 + 1.0).collect();
        let b = Builder::new("p", 1);
        let x = b.constant_f32(&[n0, n1], &data);
        let z = b.scalar(ElementType::F32, 0.0);
        let p = x.pad(&z, &[PadDim { lo: lo0, hi: hi0, interior: in0 }, PadDim { lo: lo1, hi: hi1, interior: in1 }]);
        let r = run(&b, &[&p], vec![]);
        let (o0, o1) = (size(n0, lo0, hi0, in0), size(n1, lo1, hi1, in1));
        let mut want = vec![0f32; (o0 * o1) as usize];
        for i in 0..n0 {
            for j in 0..n1 {
                let (p0, p1) = (lo0 + i * (in0 + 1), lo1 + j * (in1 + 1));
                if p0 >= 0 && p0 < o0 && p1 >= 0 && p1 < o1 {
                    want[(p0 * o1 + p1) as usize] = data[(i * n1 + j) as usize];
                }
            }
        }
        prop_assert_eq!(r[0].dims(), vec![o0, o1]);
        prop_assert_eq!(f(&r[0]), want);
    }

    #[test]
    fn matmul_matches_loops(m in 1usize..6, k in 1usize..6, n in 1usize..6, seed in 0u64..1000) {
        let mut rng = Lcg(seed);
        let a = rng.vec(m * k);
        let c = rng.vec(k * n);
        let b = Builder::new("p", 1);
        let x = b.parameter("a", f32s(&[m as i64, k as i64]));
        let y = b.parameter("c", f32s(&[k as i64, n as i64]));
        let r = run(&b, &[&x.matmul(&y)], vec![
            Value::from_f32(&[m as i64, k as i64], a.clone()).unwrap(),
            Value::from_f32(&[k as i64, n as i64], c.clone()).unwrap(),
        ]);
        let got = f(&r[0]);
        for i in 0..m {
            for j in 0..n {
                let w: f32 = (0..k).map(|t| a[i * k + t] * c[t * n + j]).sum();
                prop_assert!((got[i * n + j] - w).abs() < 1e-5);
            }
        }
    }

    #[test]
    fn reduce_window_max_matches_loops(n in 1i64..9, size in 1i64..4, stride in 1i64..3, lo in 0i64..3, hi in 0i64..3, dil in 1i64..3, seed in 0u64..1000) {
        let wd = WindowDim::new(size).stride(stride).pad(lo, hi).window_dilation(dil);
        let out = wd.output_size(n);
        prop_assume!(out.is_some_and(|o| o > 0));
        let out = out.unwrap_or(0);
        let data = Lcg(seed).vec(n as usize);
        let b = Builder::new("p", 1);
        let x = b.constant_f32(&[n], &data);
        let maxr = b.reducer(BinaryOp::Maximum, ElementType::F32);
        let y = x.reduce_window(&x.scalar_like(-100.0), Window::new(vec![wd]), maxr);
        let r = run(&b, &[&y], vec![]);
        let mut want = vec![];
        for o in 0..out {
            let mut m = -100f32;
            for w in 0..size {
                let i = o * stride + w * dil - lo;
                if i >= 0 && i < n { m = m.max(data[i as usize]); }
            }
            want.push(m);
        }
        prop_assert_eq!(f(&r[0]), want);
    }
}
