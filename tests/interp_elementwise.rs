//! Reference evaluator: elementwise ops, compare/select/clamp, conversions,
//! iota, and the argument checks of `evaluate`.

use crate::common;

use common::{assert_close, f, f32s, run};
use simclr::interp::{evaluate, Error, Value};
use simclr::ir::{
    BinaryOp, Builder, ComparisonDirection, ElementType, Literal, LiteralData, Shape, UnaryOp,
};

#[test]
fn float_arithmetic_and_unary_functions() {
    let b = Builder::new("arith", 1);
    let x = b.parameter("x", f32s(&[4]));
    let y = b.parameter("y", f32s(&[4]));
    let outs = [
        x.add(&y),
        x.sub(&y),
        x.mul(&y),
        x.div(&y),
        x.max(&y),
        x.min(&y),
        x.binary(BinaryOp::Remainder, &y),
        x.exp(),
        x.unary(UnaryOp::Logistic),
        x.unary(UnaryOp::Sign),
        x.unary(UnaryOp::RoundNearestEven),
        x.unary(UnaryOp::Floor),
        x.abs().rsqrt(),
    ];
    let refs: Vec<_> = outs.iter().collect();
    let xs = vec![-1.5f32, 0.0, 2.5, 3.0];
    let ys = vec![2.0f32, 4.0, -1.0, 0.5];
    let r = run(
        &b,
        &refs,
        vec![
            Value::from_f32(&[4], xs.clone()).unwrap(),
            Value::from_f32(&[4], ys.clone()).unwrap(),
        ],
    );
    let zip = |g: fn(f32, f32) -> f32| -> Vec<f32> {
        xs.iter().zip(&ys).map(|(&a, &b)| g(a, b)).collect()
    };
    let map = |g: fn(f32) -> f32| -> Vec<f32> { xs.iter().map(|&a| g(a)).collect() };
    assert_close(&f(&r[0]), &zip(|a, b| a + b), 1e-6);
    assert_close(&f(&r[1]), &zip(|a, b| a - b), 1e-6);
    assert_close(&f(&r[2]), &zip(|a, b| a * b), 1e-6);
    assert_close(&f(&r[3]), &zip(|a, b| a / b), 1e-6);
    assert_close(&f(&r[4]), &zip(f32::max), 1e-6);
    assert_close(&f(&r[5]), &zip(f32::min), 1e-6);
    assert_close(&f(&r[6]), &[-1.5, 0.0, 0.5, 0.0], 1e-6);
    assert_close(&f(&r[7]), &map(f32::exp), 1e-6);
    assert_close(&f(&r[8]), &map(|a| 1.0 / (1.0 + (-a).exp())), 1e-6);
    assert_close(&f(&r[9]), &[-1.0, 0.0, 1.0, 1.0], 0.0);
    assert_close(&f(&r[10]), &[-2.0, 0.0, 2.0, 3.0], 0.0);
    assert_close(&f(&r[11]), &[-2.0, 0.0, 2.0, 3.0], 0.0);
    assert_eq!(f(&r[12])[1], f32::INFINITY);
}

#[test]
fn max_and_min_propagate_nan() {
    let b = Builder::new("nan", 1);
    let x = b.constant_f32(&[2], &[f32::NAN, 1.0]);
    let y = b.constant_f32(&[2], &[0.0, f32::NAN]);
    let r = run(&b, &[&x.max(&y), &x.min(&y)], vec![]);
    assert!(f(&r[0]).iter().all(|v| v.is_nan()));
    assert!(f(&r[1]).iter().all(|v| v.is_nan()));
}

#[test]
fn integer_division_remainder_and_shifts_follow_xla() {
    let b = Builder::new("ints", 1);
    let s = |v: &[i32]| {
        b.constant(Literal::new([v.len() as i64], LiteralData::S32(v.to_vec())).unwrap())
    };
    let x = s(&[7, -7, 5, i32::MIN, -8, 1]);
    let y = s(&[2, 2, 0, -1, 1, 33]);
    let outs = [
        x.binary(BinaryOp::Divide, &y),
        x.binary(BinaryOp::Remainder, &y),
        x.binary(BinaryOp::ShiftLeft, &y),
        x.binary(BinaryOp::ShiftRightArithmetic, &y),
        x.binary(BinaryOp::ShiftRightLogical, &y),
        x.abs(),
        x.unary(UnaryOp::Not),
    ];
    let refs: Vec<_> = outs.iter().collect();
    let r = run(&b, &refs, vec![]);
    let v = |k: usize| r[k].to_i32_vec().unwrap();
    assert_eq!(v(0), vec![3, -3, -1, i32::MIN, -8, 0]);
    assert_eq!(v(1), vec![1, -1, 5, 0, 0, 1]);
    assert_eq!(v(2), vec![28, -28, 5, 0, -16, 0]);
    assert_eq!(v(3), vec![1, -2, 5, -1, -4, 0]);
    assert_eq!(
        v(4),
        vec![
            1,
            ((-7i32 as u32) >> 2) as i32,
            5,
            0,
            ((-8i32 as u32) >> 1) as i32,
            0
        ]
    );
    assert_eq!(v(5), vec![7, 7, 5, i32::MIN, 8, 1]);
    assert_eq!(v(6), vec![!7, !-7, !5, !i32::MIN, !-8, !1]);
}

#[test]
fn compare_select_with_scalar_predicate_and_clamp() {
    let b = Builder::new("cmp", 1);
    let x = b.constant_f32(&[4], &[1.0, 2.0, 3.0, f32::NAN]);
    let y = b.constant_f32(&[4], &[2.0, 2.0, 2.0, 2.0]);
    let lt = x.compare(ComparisonDirection::Lt, &y);
    let ne = x.compare(ComparisonDirection::Ne, &y);
    let ge = x.compare(ComparisonDirection::Ge, &y);
    let sel = lt.select(&x, &y);
    let t = b.constant(Literal::new([], LiteralData::Pred(vec![false])).unwrap());
    let sel_scalar = t.select(&x, &y);
    let lo = b.scalar(ElementType::F32, 1.5);
    let hi = b.scalar(ElementType::F32, 2.5);
    let cl = x.clamp(&lo, &hi);
    let r = run(&b, &[&lt, &ne, &ge, &sel, &sel_scalar, &cl], vec![]);
    assert_eq!(r[0].to_bool_vec().unwrap(), vec![true, false, false, false]);
    assert_eq!(r[1].to_bool_vec().unwrap(), vec![true, false, true, true]);
    assert_eq!(r[2].to_bool_vec().unwrap(), vec![false, true, true, false]);
    assert_close(&f(&r[3])[..3], &[1.0, 2.0, 2.0], 0.0);
    assert_eq!(f(&r[4]), vec![2.0; 4]);
    assert_close(&f(&r[5])[..3], &[1.5, 2.0, 2.5], 0.0);
}

#[test]
fn convert_truncates_rounds_and_saturates() {
    let b = Builder::new("convert", 1);
    let x = b.constant_f32(&[6], &[2.7, -2.7, 1e10, f32::NAN, 0.0, 1.0 + 1.0 / 256.0]);
    let s = x.convert(ElementType::S32);
    let u8s = x.convert(ElementType::U8);
    let p = x.convert(ElementType::Pred);
    let bf = x.convert(ElementType::Bf16);
    let back = bf.convert(ElementType::F32);
    let pf = p.convert(ElementType::F32);
    let bits = x.bitcast_convert(ElementType::U32);
    let r = run(&b, &[&s, &u8s, &p, &back, &pf, &bits], vec![]);
    assert_eq!(r[0].to_i32_vec().unwrap(), vec![2, -2, i32::MAX, 0, 0, 1]);
    assert_eq!(
        r[1].to_literal().unwrap().data,
        LiteralData::U8(vec![2, 0, 255, 0, 0, 1])
    );
    assert_eq!(
        r[2].to_bool_vec().unwrap(),
        vec![true, true, true, true, false, true]
    );
    let bfv = f(&r[3]);
    assert_eq!(bfv[0], 2.703125);
    // 1 + 2^-8 is a tie between 1 and 1 + 2^-7: rounds to even (1.0).
    assert_eq!(bfv[5], 1.0);
    assert_eq!(f(&r[4]), vec![1.0, 1.0, 1.0, 1.0, 0.0, 1.0]);
    assert_eq!(r[5].to_u32_vec().unwrap()[0], 2.7f32.to_bits());
}

#[test]
fn bf16_arithmetic_rounds_after_each_op() {
    let b = Builder::new("bf16", 1);
    let x = b.parameter("x", Shape::new(ElementType::Bf16, [2]));
    let y = x.add(&x.scalar_like(1.0 / 512.0));
    let r = run(
        &b,
        &[&y],
        vec![Value::from_literal(
            &Literal::new([2], LiteralData::Bf16(vec![0x3f80, 0x4000])).unwrap(),
        )
        .unwrap()],
    );
    // 1 + 2^-9 rounds back to 1 in bf16.
    assert_eq!(f(&r[0]), vec![1.0, 2.0]);
    assert_eq!(r[0].element_type(), Some(ElementType::Bf16));
}

#[test]
fn iota_counts_along_its_dimension() {
    let b = Builder::new("iota", 1);
    let i = b.iota(Shape::new(ElementType::S32, [2, 3]), 1);
    let j = b.iota(Shape::new(ElementType::F32, [2, 3]), 0);
    let r = run(&b, &[&i, &j], vec![]);
    assert_eq!(r[0].to_i32_vec().unwrap(), vec![0, 1, 2, 0, 1, 2]);
    assert_eq!(f(&r[1]), vec![0.0, 0.0, 0.0, 1.0, 1.0, 1.0]);
}

#[test]
fn tuple_outputs_are_flattened_and_literals_round_trip() {
    let b = Builder::new("tuple", 1);
    let x = b.parameter("x", f32s(&[2]));
    let t = b.tuple(&[&x, &x.neg()]);
    let second = t.get_tuple_element(1);
    let r = run(
        &b,
        &[&x, &second],
        vec![Value::from_f32(&[2], vec![1.0, 2.0]).unwrap()],
    );
    assert_eq!(r.len(), 2);
    assert_eq!(f(&r[1]), vec![-1.0, -2.0]);
    let lit = r[1].to_literal().unwrap();
    assert_eq!(Value::from_literal(&lit).unwrap(), r[1]);
}

#[test]
fn wrong_arguments_are_reported_by_name() {
    let b = Builder::new("args", 1);
    let x = b.parameter("base_model/kernel", f32s(&[2, 2]));
    let m = b.build(&[&x.neg()]).unwrap();
    let bad_shape = Value::from_f32(&[4], vec![0.0; 4]).unwrap();
    match evaluate(&m, &[vec![bad_shape]]) {
        Err(e @ Error::ArgumentType { .. }) => {
            let s = e.to_string();
            assert!(s.contains("base_model/kernel"), "{s}");
            assert!(s.contains("f32[2,2]") && s.contains("f32[4]"), "{s}");
        }
        other => panic!("expected ArgumentType, got {other:?}"),
    }
    assert!(matches!(
        evaluate(&m, &[vec![]]),
        Err(Error::ArgumentCount {
            expected: 1,
            got: 0,
            ..
        })
    ));
    assert!(matches!(
        evaluate(&m, &[]),
        Err(Error::ReplicaCount {
            expected: 1,
            got: 0,
            ..
        })
    ));
    let wrong_type = Value::from_i32(&[2, 2], vec![0; 4]).unwrap();
    assert!(matches!(
        evaluate(&m, &[vec![wrong_type]]),
        Err(Error::ArgumentType { index: 0, .. })
    ));
}

#[test]
fn value_vectors_check_their_dims() {
    assert!(matches!(
        Value::from_f32(&[2, 2], vec![0.0; 3]),
        Err(Error::Conversion(_))
    ));
    let v = Value::from_f64(&[3], vec![1.0, 2.0, 3.0]).unwrap();
    assert_eq!(v.to_f64_vec().unwrap(), vec![1.0, 2.0, 3.0]);
    assert_eq!(v.dims(), vec![3]);
    assert!(v.to_i32_vec().is_err());
}
