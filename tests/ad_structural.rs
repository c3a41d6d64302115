//! Dot-product VJP checks (f64, on `interp`) of the structural rules:
//! broadcast, reshape, transpose, reverse, slice, pad, concatenate,
//! dynamic-slice, dynamic-update-slice, reduce (add, max, min), tuples.
//! Attributes and shapes are drawn from a seeded RNG per case.

use crate::ad_support;

use ad_support::{check_vjp, input, Domain, Rng};
use proptest::prelude::*;
use simclr::ir::{BinaryOp, ElementType, PadDim, Tensor};

const TOL: f64 = 1e-6;
const CASES: u32 = 64;

fn rand_dims(rng: &mut Rng, min_rank: usize, max_rank: usize, max: i64) -> Vec<i64> {
    let r = rng.int(min_rank as i64, max_rank as i64) as usize;
    (0..r).map(|_| rng.int(1, max)).collect()
}

fn subset(rng: &mut Rng, rank: usize) -> Vec<i64> {
    (0..rank as i64).filter(|_| rng.coin()).collect()
}

fn fail(e: String) -> TestCaseError {
    TestCaseError::fail(e)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn broadcast_vjp(seed in any::<u64>()) {
        let mut rng = Rng(seed);
        let out = rand_dims(&mut rng, 0, 4, 3);
        // A random subset of output dimensions, in random order.
        let mut map = subset(&mut rng, out.len());
        let p = rng.perm(map.len());
        map = p.iter().map(|&i| map[i as usize]).collect();
        let dims: Vec<i64> = map.iter().map(|&m| out[m as usize]).collect();
        check_vjp("broadcast", &[input(&dims, Domain::Any)], 1, seed, TOL, &|x| {
            x[0].broadcast_in_dim(&out, &map)
        }).map_err(fail)?;
    }

    #[test]
    fn reshape_transpose_reverse_vjps(seed in any::<u64>()) {
        let mut rng = Rng(seed);
        let dims = rand_dims(&mut rng, 1, 4, 3);
        let r = dims.len();
        let mut rev_dims = dims.clone();
        rev_dims.reverse();
        let flat: i64 = dims.iter().product();
        let d = input(&dims, Domain::Any);
        check_vjp("reshape", std::slice::from_ref(&d), 1, seed, TOL, &|x| {
            x[0].reshape(&rev_dims).reshape(&[flat])
        }).map_err(fail)?;
        let perm = rng.perm(r);
        check_vjp("transpose", std::slice::from_ref(&d), 1, seed, TOL, &|x| x[0].transpose(&perm))
            .map_err(fail)?;
        let rv = subset(&mut rng, r);
        check_vjp("reverse", &[d], 1, seed, TOL, &|x| x[0].reverse(&rv)).map_err(fail)?;
    }

    #[test]
    fn slice_vjp(seed in any::<u64>()) {
        let mut rng = Rng(seed);
        let dims = rand_dims(&mut rng, 1, 3, 6);
        let (mut start, mut limit, mut stride) = (vec![], vec![], vec![]);
        for &n in &dims {
            let s = rng.int(0, n - 1);
            start.push(s);
            limit.push(rng.int(s + 1, n));
            stride.push(rng.int(1, 3));
        }
        check_vjp("slice", &[input(&dims, Domain::Any)], 1, seed, TOL, &|x| {
            x[0].slice(&start, &limit, &stride)
        }).map_err(fail)?;
    }

    #[test]
    fn pad_vjp(seed in any::<u64>()) {
        let mut rng = Rng(seed);
        let dims = rand_dims(&mut rng, 1, 3, 4);
        let pads: Vec<PadDim> = dims
            .iter()
            .map(|&n| {
                let interior = rng.int(0, 2);
                let lo = rng.int(-1, 2);
                let mut hi = rng.int(-1, 2);
                if n + lo + hi + (n - 1) * interior < 1 {
                    hi = 1 - (n + lo + (n - 1) * interior);
                }
                PadDim { lo, hi, interior }
            })
            .collect();
        check_vjp(
            "pad",
            &[input(&dims, Domain::Any), input(&[], Domain::Any)],
            1, seed, TOL,
            &|x| x[0].pad(&x[1], &pads),
        ).map_err(fail)?;
    }

    #[test]
    fn concatenate_vjp(seed in any::<u64>()) {
        let mut rng = Rng(seed);
        let base = rand_dims(&mut rng, 1, 3, 3);
        let dim = rng.int(0, base.len() as i64 - 1);
        let n = rng.int(1, 3) as usize;
        let inputs: Vec<_> = (0..n)
            .map(|_| {
                let mut d = base.clone();
                d[dim as usize] = rng.int(1, 3);
                input(&d, Domain::Any)
            })
            .collect();
        check_vjp("concatenate", &inputs, 1, seed, TOL, &|x| {
            let rest: Vec<&Tensor> = x[1..].iter().collect();
            x[0].concat(&rest, dim)
        }).map_err(fail)?;
    }

    #[test]
    fn dynamic_slice_and_update_vjps(seed in any::<u64>()) {
        let mut rng = Rng(seed);
        let dims = rand_dims(&mut rng, 1, 3, 5);
        let sizes: Vec<i64> = dims.iter().map(|&n| rng.int(1, n)).collect();
        // Start indices may be out of range: both ops clamp them alike.
        let starts: Vec<f64> = dims.iter().map(|&n| rng.int(-1, n) as f64).collect();
        let idx = |x: &Tensor| -> Vec<Tensor> {
            starts.iter().map(|&s| x.builder().scalar(ElementType::S32, s)).collect()
        };
        check_vjp("dynamic-slice", &[input(&dims, Domain::Any)], 1, seed, TOL, &|x| {
            let i = idx(&x[0]);
            let r: Vec<&Tensor> = i.iter().collect();
            x[0].dynamic_slice(&r, &sizes)
        }).map_err(fail)?;
        check_vjp(
            "dynamic-update-slice",
            &[input(&dims, Domain::Any), input(&sizes, Domain::Any)],
            1, seed, TOL,
            &|x| {
                let i = idx(&x[0]);
                let r: Vec<&Tensor> = i.iter().collect();
                x[0].dynamic_update_slice(&x[1], &r)
            },
        ).map_err(fail)?;
    }

    #[test]
    fn reduce_vjps(seed in any::<u64>()) {
        let mut rng = Rng(seed);
        let dims = rand_dims(&mut rng, 1, 4, 3);
        let red = subset(&mut rng, dims.len());
        let ins = [input(&dims, Domain::Any), input(&[], Domain::Any)];
        for op in [BinaryOp::Add, BinaryOp::Maximum, BinaryOp::Minimum] {
            check_vjp(op.opcode(), &ins, 1, seed, TOL, &|x| {
                let r = x[0].builder().reducer(op, ElementType::F64);
                x[0].reduce(&x[1], &red, r)
            }).map_err(fail)?;
        }
        check_vjp("reduce_max (−inf init)", &ins[..1], 1, seed, TOL, &|x| x[0].reduce_max(&red))
            .map_err(fail)?;
        check_vjp("mean", &ins[..1], 1, seed, TOL, &|x| x[0].mean(&red)).map_err(fail)?;
    }

    #[test]
    fn tuple_vjp(seed in any::<u64>()) {
        let mut rng = Rng(seed);
        let dims = rand_dims(&mut rng, 0, 3, 3);
        let ins = [input(&dims, Domain::Any), input(&dims, Domain::Any)];
        check_vjp("tuple / get-tuple-element", &ins, 1, seed, TOL, &|x| {
            let t = x[0].op(simclr::ir::Op::Tuple, &[&x[1].exp(), &x[0]]);
            &(&t.get_tuple_element(0) * &t.get_tuple_element(1)) + &t.get_tuple_element(2)
        }).map_err(fail)?;
    }
}
