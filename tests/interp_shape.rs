//! Reference evaluator: broadcast, reshape, transpose, slice, pad,
//! concatenate, reverse, dynamic-slice and dynamic-update-slice.

use crate::common;

use common::{f, run};
use simclr::interp::Value;
use simclr::ir::{Builder, ElementType, PadDim};

fn iota6(b: &Builder) -> simclr::ir::Tensor {
    // [[0, 1, 2], [3, 4, 5]]
    b.constant_f32(&[2, 3], &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0])
}

#[test]
fn broadcast_reshape_transpose_reverse() {
    let b = Builder::new("shape", 1);
    let x = iota6(&b);
    let v = b.constant_f32(&[3], &[1.0, 2.0, 3.0]);
    let bc = v.broadcast_in_dim(&[2, 3], &[1]);
    let bc0 = b
        .constant_f32(&[2], &[7.0, 8.0])
        .broadcast_in_dim(&[2, 3], &[0]);
    // Unsorted broadcast dimensions transpose: out[i, j] = x[j, i].
    let bct = x.broadcast_in_dim(&[3, 2], &[1, 0]);
    let rs = x.reshape(&[3, 2]);
    let tr = x.transpose(&[1, 0]);
    let rv = x.reverse(&[1]);
    let rv2 = x.reverse(&[0, 1]);
    let r = run(&b, &[&bc, &bc0, &bct, &rs, &tr, &rv, &rv2], vec![]);
    assert_eq!(f(&r[0]), vec![1.0, 2.0, 3.0, 1.0, 2.0, 3.0]);
    assert_eq!(f(&r[1]), vec![7.0, 7.0, 7.0, 8.0, 8.0, 8.0]);
    assert_eq!(f(&r[2]), vec![0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
    assert_eq!(r[3].dims(), vec![3, 2]);
    assert_eq!(f(&r[3]), vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
    assert_eq!(f(&r[4]), vec![0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
    assert_eq!(f(&r[5]), vec![2.0, 1.0, 0.0, 5.0, 4.0, 3.0]);
    assert_eq!(f(&r[6]), vec![5.0, 4.0, 3.0, 2.0, 1.0, 0.0]);
}

#[test]
fn strided_slice_and_concatenate() {
    let b = Builder::new("slice", 1);
    let x = b.constant_f32(&[2, 5], &(0..10).map(|i| i as f32).collect::<Vec<_>>());
    let s = x.slice(&[0, 1], &[2, 5], &[1, 2]);
    let c0 = x.concat(&[&x], 0);
    let c1 = s.concat(&[&x], 1);
    let r = run(&b, &[&s, &c0, &c1], vec![]);
    assert_eq!(f(&r[0]), vec![1.0, 3.0, 6.0, 8.0]);
    assert_eq!(r[1].dims(), vec![4, 5]);
    assert_eq!(
        &f(&r[1])[10..],
        &(0..10).map(|i| i as f32).collect::<Vec<_>>()[..]
    );
    assert_eq!(
        f(&r[2]),
        vec![1.0, 3.0, 0.0, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 5.0, 6.0, 7.0, 8.0, 9.0]
    );
}

#[test]
fn pad_with_negative_edges_and_interior() {
    let b = Builder::new("pad", 1);
    let x = iota6(&b);
    let z = b.scalar(ElementType::F32, -1.0);
    // Dim 0: one row before, interior 1; dim 1: crop one on the left, add 2 right.
    let p = x.pad(
        &z,
        &[
            PadDim {
                lo: 1,
                hi: 0,
                interior: 1,
            },
            PadDim {
                lo: -1,
                hi: 2,
                interior: 0,
            },
        ],
    );
    // Interior padding with negative edges cutting into it.
    let v = b.constant_f32(&[3], &[1.0, 2.0, 3.0]);
    let q = v.pad(
        &z,
        &[PadDim {
            lo: -2,
            hi: -1,
            interior: 2,
        }],
    );
    let r = run(&b, &[&p, &q], vec![]);
    assert_eq!(r[0].dims(), vec![4, 4]);
    #[rustfmt::skip]
    let want = vec![
        -1.0, -1.0, -1.0, -1.0,
         1.0,  2.0, -1.0, -1.0,
        -1.0, -1.0, -1.0, -1.0,
         4.0,  5.0, -1.0, -1.0,
    ];
    assert_eq!(f(&r[0]), want);
    // Full: [1, -1, -1, 2, -1, -1, 3] → drop 2 left, 1 right.
    assert_eq!(f(&r[1]), vec![-1.0, 2.0, -1.0, -1.0]);
}

#[test]
fn dynamic_slices_clamp_their_start_indices() {
    let b = Builder::new("dyn", 1);
    let x = b.constant_f32(&[2, 5], &(0..10).map(|i| i as f32).collect::<Vec<_>>());
    let i = b.parameter("i", simclr::ir::Shape::scalar(ElementType::S32));
    let j = b.parameter("j", simclr::ir::Shape::scalar(ElementType::S32));
    let ds = x.dynamic_slice(&[&i, &j], &[1, 3]);
    let u = b.constant_f32(&[1, 2], &[-1.0, -2.0]);
    let dus = x.dynamic_update_slice(&u, &[&i, &j]);
    let go = |iv: i32, jv: i32| {
        run(
            &b,
            &[&ds, &dus],
            vec![
                Value::from_i32(&[], vec![iv]).unwrap(),
                Value::from_i32(&[], vec![jv]).unwrap(),
            ],
        )
    };
    let r = go(1, 1);
    assert_eq!(f(&r[0]), vec![6.0, 7.0, 8.0]);
    assert_eq!(
        f(&r[1]),
        vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0, -1.0, -2.0, 8.0, 9.0]
    );
    // Out of range starts are clamped so the block fits.
    let r = go(5, 4);
    assert_eq!(f(&r[0]), vec![7.0, 8.0, 9.0]);
    assert_eq!(
        f(&r[1]),
        vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, -1.0, -2.0]
    );
    let r = go(-3, -7);
    assert_eq!(f(&r[0]), vec![0.0, 1.0, 2.0]);
    assert_eq!(
        f(&r[1]),
        vec![-1.0, -2.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]
    );
}
