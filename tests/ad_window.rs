//! Dot-product VJP checks (f64, on `interp`) of `reduce-window` with add
//! (any strides, padding and dilations) and with max/min (the
//! select-and-scatter rule), on random windows without ties.

use crate::ad_support;

use ad_support::{check_vjp, input, Domain, Rng};
use proptest::prelude::*;
use simclr::ir::{BinaryOp, ElementType, Window, WindowDim};

const TOL: f64 = 1e-6;

fn fail(e: String) -> TestCaseError {
    TestCaseError::fail(e)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn reduce_window_sum_vjp(seed in any::<u64>()) {
        let mut rng = Rng(seed);
        let rank = rng.int(1, 3) as usize;
        let (mut dims, mut wins) = (vec![], vec![]);
        while wins.len() < rank {
            let wd = WindowDim {
                size: rng.int(1, 3),
                stride: rng.int(1, 3),
                pad_lo: rng.int(-1, 2),
                pad_hi: rng.int(-1, 2),
                window_dilation: rng.int(1, 2),
                base_dilation: rng.int(1, 2),
                reversal: false,
            };
            let n = rng.int(1, 5);
            if wd.output_size(n).is_some_and(|o| o >= 1) {
                wins.push(wd);
                dims.push(n);
            }
        }
        let window = Window::new(wins);
        check_vjp(
            &format!("reduce-window add {}", window.to_text()),
            &[input(&dims, Domain::Any)],
            1, seed, TOL,
            &|x| {
                let add = x[0].builder().reducer(BinaryOp::Add, ElementType::F64);
                x[0].reduce_window(&x[0].scalar_like(0.0), window.clone(), add)
            },
        ).map_err(fail)?;
    }

    #[test]
    fn reduce_window_max_min_vjp(seed in any::<u64>()) {
        let mut rng = Rng(seed);
        let rank = rng.int(1, 3) as usize;
        let (mut dims, mut wins) = (vec![], vec![]);
        while wins.len() < rank {
            let size = rng.int(1, 3);
            // Padding below the window size keeps a real element in every
            // window, so no output is the init value.
            let wd = WindowDim::new(size)
                .stride(rng.int(1, 3))
                .pad(rng.int(0, size - 1), rng.int(0, size - 1));
            let n = rng.int(1, 5);
            if wd.output_size(n).is_some_and(|o| o >= 1) {
                wins.push(wd);
                dims.push(n);
            }
        }
        let window = Window::new(wins);
        for (op, init) in [(BinaryOp::Maximum, f64::NEG_INFINITY), (BinaryOp::Minimum, f64::INFINITY)] {
            check_vjp(
                &format!("reduce-window {} {}", op.opcode(), window.to_text()),
                &[input(&dims, Domain::Any)],
                1, seed, TOL,
                &|x| {
                    let r = x[0].builder().reducer(op, ElementType::F64);
                    x[0].reduce_window(&x[0].scalar_like(init), window.clone(), r)
                },
            ).map_err(fail)?;
        }
    }
}

/// ResNet's stem pool (3×3, stride 2, padding 1, NHWC) and a 2×2 average pool.
#[test]
fn pooling_vjps_on_resnet_shapes() {
    let max_pool = Window::new(vec![
        WindowDim::new(1),
        WindowDim::new(3).stride(2).pad(1, 1),
        WindowDim::new(3).stride(2).pad(1, 1),
        WindowDim::new(1),
    ]);
    let r = check_vjp(
        "max pool 3x3/2 NHWC",
        &[input(&[2, 7, 6, 3], Domain::Any)],
        1,
        7,
        TOL,
        &|x| {
            let max = x[0].builder().reducer(BinaryOp::Maximum, ElementType::F64);
            x[0].reduce_window(&x[0].scalar_like(f64::NEG_INFINITY), max_pool.clone(), max)
        },
    );
    assert!(r.is_ok(), "{}", r.unwrap_err());
    let avg = Window::new(vec![
        WindowDim::new(1),
        WindowDim::new(2).stride(2),
        WindowDim::new(2).stride(2),
        WindowDim::new(1),
    ]);
    let r = check_vjp(
        "average pool 2x2/2 NHWC",
        &[input(&[2, 4, 5, 3], Domain::Any)],
        1,
        8,
        TOL,
        &|x| {
            let add = x[0].builder().reducer(BinaryOp::Add, ElementType::F64);
            x[0].reduce_window(&x[0].scalar_like(0.0), avg.clone(), add)
                .mul_scalar(0.25)
        },
    );
    assert!(r.is_ok(), "{}", r.unwrap_err());
}
