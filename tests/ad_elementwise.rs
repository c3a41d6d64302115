//! Dot-product VJP checks (f64, on `interp`) of the elementwise rules:
//! every unary and binary arithmetic op, `select`, `clamp`, on random shapes.

use crate::ad_support;

use ad_support::{check_vjp, input, Domain, Input};
use proptest::prelude::*;
use simclr::ir::{BinaryOp, ComparisonDirection, Tensor, UnaryOp};

type F = fn(&[Tensor]) -> Tensor;

const TOL: f64 = 1e-6;

fn unary_cases() -> Vec<(&'static str, Domain, F)> {
    vec![
        ("negate", Domain::Any, |x| x[0].unary(UnaryOp::Negate)),
        ("exponential", Domain::Any, |x| x[0].exp()),
        ("log", Domain::Positive, |x| x[0].log()),
        ("log-plus-one", Domain::Positive, |x| {
            x[0].unary(UnaryOp::Log1p)
        }),
        ("exponential-minus-one", Domain::Any, |x| {
            x[0].unary(UnaryOp::Expm1)
        }),
        ("sqrt", Domain::Positive, |x| x[0].sqrt()),
        ("rsqrt", Domain::Positive, |x| x[0].rsqrt()),
        ("tanh", Domain::Any, |x| x[0].tanh()),
        ("logistic", Domain::Any, |x| x[0].unary(UnaryOp::Logistic)),
        ("abs", Domain::AwayFromZero, |x| x[0].abs()),
        ("sign", Domain::OffGrid, |x| x[0].unary(UnaryOp::Sign)),
        ("floor", Domain::OffGrid, |x| x[0].unary(UnaryOp::Floor)),
        ("ceil", Domain::OffGrid, |x| x[0].unary(UnaryOp::Ceil)),
        ("round-nearest-even", Domain::OffGrid, |x| {
            x[0].unary(UnaryOp::RoundNearestEven)
        }),
        ("cosine", Domain::Any, |x| x[0].unary(UnaryOp::Cos)),
        ("sine", Domain::Any, |x| x[0].unary(UnaryOp::Sin)),
        ("copy", Domain::Any, |x| x[0].unary(UnaryOp::Copy)),
        ("relu", Domain::AwayFromZero, |x| x[0].relu()),
        ("x*floor(x)", Domain::OffGrid, |x| {
            &x[0] * &x[0].unary(UnaryOp::Floor)
        }),
    ]
}

fn binary_cases() -> Vec<(&'static str, [Domain; 2], F)> {
    use Domain::*;
    vec![
        ("add", [Any, Any], |x| x[0].binary(BinaryOp::Add, &x[1])),
        ("subtract", [Any, Any], |x| {
            x[0].binary(BinaryOp::Subtract, &x[1])
        }),
        ("multiply", [Any, Any], |x| {
            x[0].binary(BinaryOp::Multiply, &x[1])
        }),
        ("divide", [Any, AwayFromZero], |x| {
            x[0].binary(BinaryOp::Divide, &x[1])
        }),
        ("maximum", [Any, Any], |x| {
            x[0].binary(BinaryOp::Maximum, &x[1])
        }),
        ("minimum", [Any, Any], |x| {
            x[0].binary(BinaryOp::Minimum, &x[1])
        }),
        ("power", [Positive, Any], |x| {
            x[0].binary(BinaryOp::Power, &x[1])
        }),
        ("remainder", [Any, AwayFromZero], |x| {
            x[0].binary(BinaryOp::Remainder, &x[1])
        }),
        ("atan2", [AwayFromZero, AwayFromZero], |x| {
            x[0].binary(BinaryOp::Atan2, &x[1])
        }),
        ("select(a>b, a*b, a-b)", [Any, Any], |x| {
            x[0].compare(ComparisonDirection::Gt, &x[1])
                .select(&(&x[0] * &x[1]), &(&x[0] - &x[1]))
        }),
        ("x*x (shared operand)", [Any, Any], |x| {
            &x[0] * &x[0] + &x[1]
        }),
    ]
}

fn dims() -> impl Strategy<Value = Vec<i64>> {
    prop::collection::vec(1i64..4, 0..4)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn unary_vjps_match_central_differences(d in dims(), seed in any::<u64>()) {
        for (name, dom, f) in unary_cases() {
            check_vjp(name, &[input(&d, dom)], 1, seed, TOL, &f)
                .map_err(TestCaseError::fail)?;
        }
    }

    #[test]
    fn binary_vjps_match_central_differences(d in dims(), seed in any::<u64>()) {
        for (name, [da, db], f) in binary_cases() {
            check_vjp(name, &[input(&d, da), input(&d, db)], 1, seed, TOL, &f)
                .map_err(TestCaseError::fail)?;
        }
    }

    #[test]
    fn select_and_clamp_vjps_match_central_differences(d in dims(), seed in any::<u64>()) {
        let three: Vec<Input> = (0..3).map(|_| input(&d, Domain::Any)).collect();
        check_vjp("select", &three, 1, seed, TOL, &|x| {
            x[0].compare(ComparisonDirection::Gt, &x[0].full_like(0.0)).select(&x[1], &x[2])
        })
        .map_err(TestCaseError::fail)?;
        check_vjp("scalar-predicate select", &three[1..], 1, seed, TOL, &|x| {
            let p = x[0].scalar_like(1.0).compare(ComparisonDirection::Gt, &x[0].scalar_like(0.0));
            p.select(&x[0], &x[1])
        })
        .map_err(TestCaseError::fail)?;
        check_vjp("clamp", &three, 1, seed, TOL, &|x| x[1].clamp(&x[0], &x[2]))
            .map_err(TestCaseError::fail)?;
        check_vjp("clamp(−0.5, x, 0.5)", &three[..1], 1, seed, TOL, &|x| {
            x[0].clamp(&x[0].scalar_like(-0.5), &x[0].scalar_like(0.5))
        })
        .map_err(TestCaseError::fail)?;
    }

    #[test]
    fn broadcasting_arithmetic_vjps_match_central_differences(
        rows in 1i64..4, cols in 1i64..4, seed in any::<u64>()
    ) {
        check_vjp(
            "(x + bias) * scale / y",
            &[
                input(&[rows, cols], Domain::Any),
                input(&[cols], Domain::Any),
                input(&[], Domain::Any),
                input(&[rows, 1], Domain::AwayFromZero),
            ],
            1, seed, TOL,
            &|x| ((&x[0] + &x[1]) * &x[2]) / &x[3],
        )
        .map_err(TestCaseError::fail)?;
    }
}
