//! Reference evaluator: reduce (including variadic argmax and reducers
//! that are not recognized), reduce-window pooling and select-and-scatter
//! against a first-argmax reference.

use crate::common;

use common::{assert_close, f, f32s, run, Lcg};
use simclr::interp::Value;
use simclr::ir::{
    BinaryOp, Builder, ComparisonDirection, ElementType, Op, Shape, Type, UnaryOp, Window,
    WindowDim,
};

fn scalar(ty: ElementType) -> Type {
    Type::Array(Shape::scalar(ty))
}

#[test]
fn sum_and_max_over_dimensions() {
    let data: Vec<f32> = (0..60).map(|i| ((i * 7) % 13) as f32 - 6.0).collect();
    let b = Builder::new("reduce", 1);
    let x = b.parameter("x", f32s(&[4, 3, 5]));
    let s = x.sum(&[0, 2]);
    let m = x.reduce_max(&[1]);
    let all = x.sum_all();
    let r = run(
        &b,
        &[&s, &m, &all],
        vec![Value::from_f32(&[4, 3, 5], data.clone()).unwrap()],
    );
    let at = |i: usize, j: usize, k: usize| data[(i * 3 + j) * 5 + k];
    let want_s: Vec<f32> = (0..3)
        .map(|j| {
            (0..4)
                .flat_map(|i| (0..5).map(move |k| (i, k)))
                .map(|(i, k)| at(i, j, k))
                .sum()
        })
        .collect();
    let mut want_m = vec![];
    for i in 0..4 {
        for k in 0..5 {
            want_m.push(
                (0..3)
                    .map(|j| at(i, j, k))
                    .fold(f32::NEG_INFINITY, f32::max),
            );
        }
    }
    assert_close(&f(&r[0]), &want_s, 1e-6);
    assert_eq!(r[1].dims(), vec![4, 5]);
    assert_close(&f(&r[1]), &want_m, 0.0);
    assert_close(&f(&r[2]), &[data.iter().sum()], 1e-6);
}

#[test]
fn variadic_argmax_picks_the_first_maximum() {
    let b = Builder::new("argmax", 1);
    let x = b.parameter("x", f32s(&[3, 5]));
    let idx = b.iota(Shape::new(ElementType::S32, [3, 5]), 1);
    let f = ElementType::F32;
    let s = ElementType::S32;
    let comp = b.computation(
        "argmax",
        &[scalar(f), scalar(s), scalar(f), scalar(s)],
        |p| {
            let gt = p[0].compare(ComparisonDirection::Gt, &p[2]);
            let eq = p[0].compare(ComparisonDirection::Eq, &p[2]);
            let lt = p[1].compare(ComparisonDirection::Lt, &p[3]);
            let keep = gt.binary(BinaryOp::Or, &eq.binary(BinaryOp::And, &lt));
            let v = keep.select(&p[0], &p[2]);
            let i = keep.select(&p[1], &p[3]);
            v.op(Op::Tuple, &[&i])
        },
    );
    let ninf = b.scalar(f, f64::NEG_INFINITY);
    let minus1 = b.scalar(s, -1.0);
    let red = x.op(
        Op::Reduce {
            dims: vec![1],
            reducer: comp,
        },
        &[&idx, &ninf, &minus1],
    );
    let vals = red.get_tuple_element(0);
    let args = red.get_tuple_element(1);
    #[rustfmt::skip]
    let data = vec![
        1.0, 3.0, 3.0, 0.0, 2.0,
        -1.0, -1.0, -1.0, -1.0, -1.0,
        0.0, 1.0, 2.0, 3.0, 4.0,
    ];
    let r = run(
        &b,
        &[&vals, &args],
        vec![Value::from_f32(&[3, 5], data).unwrap()],
    );
    assert_eq!(common::f(&r[0]), vec![3.0, -1.0, 4.0]);
    assert_eq!(r[1].to_i32_vec().unwrap(), vec![1, 0, 4]);
}

#[test]
fn unrecognized_reducers_are_called_per_element() {
    // acc' = x - acc (parameters swapped): a fold the fast paths must not take.
    let b = Builder::new("fold", 1);
    let x = b.constant_f32(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let comp = b.computation(
        "rsub",
        &[scalar(ElementType::F32), scalar(ElementType::F32)],
        |p| p[1].binary(BinaryOp::Subtract, &p[0]),
    );
    let init = b.scalar(ElementType::F32, 0.0);
    let y = x.reduce(&init, &[1], comp);
    let r = run(&b, &[&y], vec![]);
    // ((0 → 1-0=1) → 2-1=1) → 3-1=2 ; ((4) → 5-4=1) → 6-1=5
    assert_eq!(f(&r[0]), vec![2.0, 5.0]);
}

fn pool_window(k: i64, s: i64, p: i64) -> Window {
    Window::new(vec![
        WindowDim::new(1),
        WindowDim::new(1),
        WindowDim::new(k).stride(s).pad(p, p),
        WindowDim::new(k).stride(s).pad(p, p),
    ])
}

/// Naive NCHW pooling: for each window, the valid input indices in scan order.
fn windows(h: usize, w: usize, k: usize, s: usize, p: usize) -> Vec<Vec<(usize, usize)>> {
    let out = |n: usize| (n + 2 * p - k) / s + 1;
    let mut v = vec![];
    for oy in 0..out(h) {
        for ox in 0..out(w) {
            let mut taps = vec![];
            for ky in 0..k {
                for kx in 0..k {
                    let (y, x) = (
                        (oy * s + ky) as i64 - p as i64,
                        (ox * s + kx) as i64 - p as i64,
                    );
                    if y >= 0 && x >= 0 && (y as usize) < h && (x as usize) < w {
                        taps.push((y as usize, x as usize));
                    }
                }
            }
            v.push(taps);
        }
    }
    v
}

#[test]
fn max_and_average_pooling_match_naive() {
    let (n, c, h, w) = (2usize, 2usize, 5usize, 6usize);
    let data = Lcg(11).vec(n * c * h * w);
    let b = Builder::new("pool", 1);
    let x = b.parameter("x", f32s(&[2, 2, 5, 6]));
    let maxr = b.reducer(BinaryOp::Maximum, ElementType::F32);
    let addr = b.reducer(BinaryOp::Add, ElementType::F32);
    let mp = x.reduce_window(
        &x.scalar_like(f64::NEG_INFINITY),
        pool_window(3, 2, 1),
        maxr,
    );
    let ap = x
        .reduce_window(&x.scalar_like(0.0), pool_window(2, 2, 0), addr)
        .mul_scalar(0.25);
    let r = run(
        &b,
        &[&mp, &ap],
        vec![Value::from_f32(&[2, 2, 5, 6], data.clone()).unwrap()],
    );
    let mut want_max = vec![];
    let mut want_avg = vec![];
    for plane in 0..n * c {
        let at = |y: usize, x: usize| data[(plane * h + y) * w + x];
        for taps in windows(h, w, 3, 2, 1) {
            want_max.push(
                taps.iter()
                    .map(|&(y, x)| at(y, x))
                    .fold(f32::NEG_INFINITY, f32::max),
            );
        }
        for taps in windows(h, w, 2, 2, 0) {
            want_avg.push(taps.iter().map(|&(y, x)| at(y, x)).sum::<f32>() * 0.25);
        }
    }
    assert_eq!(r[0].dims(), vec![2, 2, 3, 3]);
    assert_close(&f(&r[0]), &want_max, 0.0);
    assert_eq!(r[1].dims(), vec![2, 2, 2, 3]);
    assert_close(&f(&r[1]), &want_avg, 1e-6);
}

#[test]
fn select_and_scatter_sends_gradients_to_the_first_maximum() {
    let (n, c, h, w) = (1usize, 2usize, 6usize, 5usize);
    // Few distinct values: many ties inside each window.
    let data: Vec<f32> = (0..n * c * h * w).map(|i| ((i * 5) % 3) as f32).collect();
    let (k, s, p) = (3usize, 2usize, 1usize);
    let taps = windows(h, w, k, s, p);
    let src: Vec<f32> = (0..n * c * taps.len()).map(|i| 1.0 + i as f32).collect();
    let b = Builder::new("sas", 1);
    let x = b.parameter("x", f32s(&[1, 2, 6, 5]));
    let dy = b.parameter("dy", f32s(&[1, 2, 3, 3]));
    let fty = ElementType::F32;
    let ge = b.computation("ge", &[scalar(fty), scalar(fty)], |p| {
        p[0].compare(ComparisonDirection::Ge, &p[1])
    });
    // The same selector written so that the fast path does not apply.
    let not_lt = b.computation("not_lt", &[scalar(fty), scalar(fty)], |p| {
        p[0].compare(ComparisonDirection::Lt, &p[1])
            .unary(UnaryOp::Not)
    });
    let add = b.reducer(BinaryOp::Add, fty);
    let zero = b.scalar(fty, 0.0);
    let fast = x.select_and_scatter(&dy, &zero, pool_window(3, 2, 1), ge, add);
    let slow = x.select_and_scatter(&dy, &zero, pool_window(3, 2, 1), not_lt, add);
    let r = run(
        &b,
        &[&fast, &slow],
        vec![
            Value::from_f32(&[1, 2, 6, 5], data.clone()).unwrap(),
            Value::from_f32(&[1, 2, 3, 3], src.clone()).unwrap(),
        ],
    );
    let mut want = vec![0f32; data.len()];
    for plane in 0..n * c {
        for (o, t) in taps.iter().enumerate() {
            let flat = |&(y, x): &(usize, usize)| (plane * h + y) * w + x;
            // numpy-style first argmax over the window in scan order.
            let mut best = flat(&t[0]);
            for tap in &t[1..] {
                if data[flat(tap)] > data[best] {
                    best = flat(tap);
                }
            }
            want[best] += src[plane * taps.len() + o];
        }
    }
    assert_close(&f(&r[0]), &want, 0.0);
    assert_close(&f(&r[1]), &want, 0.0);
}
