//! Collectives on 4 replicas (simulated by `interp`): dot-product VJP checks
//! of all-reduce, all-gather and reduce-scatter with full and partial
//! groups, and equivalence of the per-replica gradients with the gradient
//! of the same loss computed on one replica over the concatenated data.

use crate::ad_support;

use ad_support::{assert_close, check_vjp, f64s, input, sample, Domain, Rng};
use proptest::prelude::*;
use simclr::ad;
use simclr::interp::{self, Value};
use simclr::ir::{Builder, ReplicaGroups, Tensor};

const TOL: f64 = 1e-6;
const R: usize = 4;

fn groups() -> Vec<ReplicaGroups> {
    vec![
        ReplicaGroups::All,
        ReplicaGroups::Groups(vec![vec![0, 1], vec![2, 3]]),
        ReplicaGroups::Groups(vec![vec![0, 2], vec![1, 3]]),
    ]
}

fn fail(e: String) -> TestCaseError {
    TestCaseError::fail(e)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn collective_vjps(seed in any::<u64>()) {
        let mut rng = Rng(seed);
        let dims: Vec<i64> = (0..rng.int(1, 3)).map(|_| rng.int(1, 3)).collect();
        let dim = rng.int(0, dims.len() as i64 - 1);
        for g in groups() {
            let gs = g.group_size(R) as i64;
            check_vjp(
                &format!("all-reduce {g:?}"),
                &[input(&dims, Domain::Any)], R, seed, TOL,
                &|x| x[0].all_reduce_sum(g.clone()).tanh() * &x[0],
            ).map_err(fail)?;
            check_vjp(
                &format!("all-gather dim {dim} {g:?}"),
                &[input(&dims, Domain::Any)], R, seed, TOL,
                &|x| x[0].all_gather(dim, g.clone()).unary(simclr::ir::UnaryOp::Sin),
            ).map_err(fail)?;
            let mut d2 = dims.clone();
            d2[dim as usize] *= gs;
            check_vjp(
                &format!("reduce-scatter dim {dim} {g:?}"),
                &[input(&d2, Domain::Any)], R, seed, TOL,
                &|x| (&x[0] * &x[0]).reduce_scatter_sum(dim, g.clone()),
            ).map_err(fail)?;
        }
    }
}

/// Runs a 4-replica module with one f64 argument per replica per entry of
/// `args[r]`; returns output `k` of each replica.
fn run(m: &simclr::ir::Module, args: &[Vec<(Vec<i64>, Vec<f64>)>], k: usize) -> Vec<Vec<f64>> {
    let vals: Vec<Vec<Value>> = args
        .iter()
        .map(|a| {
            a.iter()
                .map(|(d, v)| Value::from_f64(d, v.clone()).expect("value"))
                .collect()
        })
        .collect();
    let out = interp::evaluate(m, &vals).expect("evaluate");
    out.iter()
        .map(|o| o[k].to_f64_vec().expect("f64"))
        .collect()
}

/// `Σ_rows log Σ_cols exp(logits)`.
fn lse_sum(logits: &Tensor) -> Tensor {
    logits.exp().sum(&[1]).log().sum_all()
}

#[test]
fn all_gather_gradient_equals_single_replica_gradient_over_concatenated_inputs() {
    // Replica r: L_r = Σ_rows lse(x_r · all_gather(x)ᵀ); Σ_r L_r is the
    // single-replica loss over X = concat(x_0…x_3), so replica r's gradient
    // must be rows 2r..2r+2 of ∂L/∂X.
    let (rows, feat) = (2i64, 3i64);
    let b = Builder::new("gathered", R);
    let x = b.parameter("x", f64s(&[rows, feat]));
    let all = x.all_gather(0, ReplicaGroups::All);
    let logits = x.matmul(&all.transpose(&[1, 0]));
    let loss = lse_sum(&logits);
    let g = ad::grad(&loss, std::slice::from_ref(&x)).expect("grad");
    let m = b.build(&[&loss, &g[0]]).expect("build");

    let s = Builder::new("single", 1);
    let xs = s.parameter("x", f64s(&[rows * R as i64, feat]));
    let loss1 = lse_sum(&xs.matmul(&xs.transpose(&[1, 0])));
    let g1 = ad::grad(&loss1, std::slice::from_ref(&xs)).expect("grad");
    let m1 = s.build(&[&loss1, &g1[0]]).expect("build");

    let mut rng = Rng(11);
    let data = sample(&mut rng, (rows * feat) as usize * R, Domain::Any);
    let per = (rows * feat) as usize;
    let args: Vec<_> = (0..R)
        .map(|r| vec![(vec![rows, feat], data[r * per..(r + 1) * per].to_vec())])
        .collect();
    let grads = run(&m, &args, 1);
    let losses = run(&m, &args, 0);
    let single = run(&m1, &[vec![(vec![rows * R as i64, feat], data.clone())]], 1);
    let single_loss = run(&m1, &[vec![(vec![rows * R as i64, feat], data)]], 0);
    let total: f64 = losses.iter().map(|l| l[0]).sum();
    assert_close(
        "Σ_r L_r vs single loss",
        &[total],
        &single_loss[0],
        1e-12,
        1e-12,
    );
    for (r, gr) in grads.iter().enumerate() {
        assert_close(
            &format!("replica {r} gradient vs rows of the single-replica gradient"),
            gr,
            &single[0][r * per..(r + 1) * per],
            1e-12,
            1e-10,
        );
    }
}

#[test]
fn reduce_scatter_and_all_reduce_gradients_equal_single_replica_gradients() {
    let (n, f) = (2i64, 3i64);
    // Reduce-scatter: y_r = (Σ_q x_q)[block r]; Σ_r L_r = Σ sin(Y)·Y with
    // Y = Σ_q x_q, so every replica's gradient is ∂/∂Y of the whole.
    let b = Builder::new("scattered", R);
    let x = b.parameter("x", f64s(&[n * R as i64, f]));
    let y = x.reduce_scatter_sum(0, ReplicaGroups::All);
    let loss = (y.unary(simclr::ir::UnaryOp::Sin) * &y).sum_all();
    let g = ad::grad(&loss, std::slice::from_ref(&x)).expect("grad");
    let m = b.build(&[&g[0]]).expect("build");

    let s = Builder::new("summed", 1);
    let xs = s.parameter("x", f64s(&[R as i64, n * R as i64, f]));
    let ys = xs.sum(&[0]);
    let loss1 = (ys.unary(simclr::ir::UnaryOp::Sin) * &ys).sum_all();
    let g1 = ad::grad(&loss1, std::slice::from_ref(&xs)).expect("grad");
    let m1 = s.build(&[&g1[0]]).expect("build");

    let mut rng = Rng(12);
    let per = (n * R as i64 * f) as usize;
    let data = sample(&mut rng, per * R, Domain::Any);
    let args: Vec<_> = (0..R)
        .map(|r| vec![(vec![n * R as i64, f], data[r * per..(r + 1) * per].to_vec())])
        .collect();
    let grads = run(&m, &args, 0);
    let single = run(&m1, &[vec![(vec![R as i64, n * R as i64, f], data)]], 0);
    for (r, gr) in grads.iter().enumerate() {
        assert_close(
            &format!("reduce-scatter: replica {r}"),
            gr,
            &single[0][r * per..(r + 1) * per],
            1e-12,
            1e-10,
        );
    }

    // All-reduce: L_r = Σ tanh(Σ_q x_q)·a_r.
    let b = Builder::new("reduced", R);
    let x = b.parameter("x", f64s(&[n, f]));
    let a = b.parameter("a", f64s(&[n, f]));
    let loss = (x.all_reduce_sum(ReplicaGroups::All).tanh() * &a).sum_all();
    let g = ad::grad(&loss, std::slice::from_ref(&x)).expect("grad");
    let m = b.build(&[&g[0]]).expect("build");

    let s = Builder::new("reduced1", 1);
    let xs = s.parameter("x", f64s(&[R as i64, n, f]));
    let as_ = s.parameter("a", f64s(&[R as i64, n, f]));
    let t = xs
        .sum(&[0])
        .tanh()
        .broadcast_in_dim(&[R as i64, n, f], &[1, 2]);
    let loss1 = (t * &as_).sum_all();
    let g1 = ad::grad(&loss1, std::slice::from_ref(&xs)).expect("grad");
    let m1 = s.build(&[&g1[0]]).expect("build");

    let per = (n * f) as usize;
    let xd = sample(&mut rng, per * R, Domain::Any);
    let ad_ = sample(&mut rng, per * R, Domain::Any);
    let args: Vec<_> = (0..R)
        .map(|r| {
            vec![
                (vec![n, f], xd[r * per..(r + 1) * per].to_vec()),
                (vec![n, f], ad_[r * per..(r + 1) * per].to_vec()),
            ]
        })
        .collect();
    let grads = run(&m, &args, 0);
    let single = run(
        &m1,
        &[vec![
            (vec![R as i64, n, f], xd),
            (vec![R as i64, n, f], ad_),
        ]],
        0,
    );
    for (r, gr) in grads.iter().enumerate() {
        assert_close(
            &format!("all-reduce: replica {r}"),
            gr,
            &single[0][r * per..(r + 1) * per],
            1e-12,
            1e-10,
        );
    }
}

/// Batch norm over `x: [n, f]` with statistics summed by `allsum` over
/// `count` rows, then `Σ tanh(y)·a`.
fn bn_loss(
    x: &Tensor,
    gamma: &Tensor,
    a: &Tensor,
    count: f64,
    allsum: &dyn Fn(&Tensor) -> Tensor,
) -> Tensor {
    let mean = allsum(&x.sum(&[0])).mul_scalar(1.0 / count);
    let c = x - &mean;
    let var = allsum(&(&c * &c).sum(&[0])).mul_scalar(1.0 / count);
    let y = &(&c * &var.add_scalar(1e-3).rsqrt()) * gamma;
    (y.tanh() * a).sum_all()
}

#[test]
fn global_batch_norm_gradients_equal_single_replica_gradients() {
    // Replica r normalizes its rows with statistics all-reduced over the 4
    // replicas; Σ_r L_r is the single-replica loss over the concatenated
    // batch. Input gradients are that loss's rows; the replicated γ's
    // gradient, summed over replicas, is the single-replica γ gradient.
    let (n, f) = (2i64, 3i64);
    let total = (n * R as i64) as f64;
    let b = Builder::new("global_bn", R);
    let x = b.parameter("x", f64s(&[n, f]));
    let gamma = b.parameter("gamma", f64s(&[f]));
    let a = b.parameter("a", f64s(&[n, f]));
    let loss = bn_loss(&x, &gamma, &a, total, &|t| {
        t.all_reduce_sum(ReplicaGroups::All)
    });
    let g = ad::grad(&loss, &[x.clone(), gamma.clone()]).expect("grad");
    let dgamma = g[1].all_reduce_sum(ReplicaGroups::All);
    let m = b.build(&[&g[0], &dgamma]).expect("build");

    let s = Builder::new("global_bn1", 1);
    let xs = s.parameter("x", f64s(&[n * R as i64, f]));
    let gs = s.parameter("gamma", f64s(&[f]));
    let as_ = s.parameter("a", f64s(&[n * R as i64, f]));
    let loss1 = bn_loss(&xs, &gs, &as_, total, &|t| t.clone());
    let g1 = ad::grad(&loss1, &[xs, gs]).expect("grad");
    let m1 = s.build(&[&g1[0], &g1[1]]).expect("build");

    let mut rng = Rng(13);
    let per = (n * f) as usize;
    let xd = sample(&mut rng, per * R, Domain::Any);
    let gd = sample(&mut rng, f as usize, Domain::Any);
    let ad_ = sample(&mut rng, per * R, Domain::Any);
    let args: Vec<_> = (0..R)
        .map(|r| {
            vec![
                (vec![n, f], xd[r * per..(r + 1) * per].to_vec()),
                (vec![f], gd.clone()),
                (vec![n, f], ad_[r * per..(r + 1) * per].to_vec()),
            ]
        })
        .collect();
    let single_args = vec![
        (vec![n * R as i64, f], xd),
        (vec![f], gd),
        (vec![n * R as i64, f], ad_),
    ];
    let dx = run(&m, &args, 0);
    let dg = run(&m, &args, 1);
    let dx1 = run(&m1, std::slice::from_ref(&single_args), 0);
    let dg1 = run(&m1, std::slice::from_ref(&single_args), 1);
    for r in 0..R {
        assert_close(
            &format!("global BN ∂x, replica {r}"),
            &dx[r],
            &dx1[0][r * per..(r + 1) * per],
            1e-12,
            1e-9,
        );
        assert_close(
            &format!("global BN Σ_r ∂γ, replica {r}"),
            &dg[r],
            &dg1[0],
            1e-12,
            1e-9,
        );
    }
}
