//! A small SimCLR-shaped network, differentiated end to end and checked
//! element by element against central finite differences in f64:
//! convolution (NHWC, `b01f_01io->b01f`, stride 2, TF "SAME" padding) →
//! batch norm composed from reduces → relu → global average → dense →
//! softmax cross-entropy.

use crate::ad_support;

use ad_support::{eval_f64, f64s, sample, Domain, Rng};
use simclr::ad;
use simclr::ir::{Builder, ConvDims, Module, Tensor, Window, WindowDim};

const PARAMS: [(&str, &[i64]); 6] = [
    ("x", &[2, 6, 6, 2]),
    ("conv/kernel", &[3, 3, 2, 4]),
    ("bn/gamma", &[4]),
    ("bn/beta", &[4]),
    ("dense/kernel", &[4, 3]),
    ("dense/bias", &[3]),
];

fn network(b: &Builder) -> (Vec<Tensor>, Tensor) {
    let p: Vec<Tensor> = PARAMS
        .iter()
        .map(|(n, d)| b.parameter(n, f64s(d)))
        .collect();
    // SAME for H = 6, k = 3, s = 2: 3 outputs, total padding 1, all high.
    let win = Window::new(vec![WindowDim::new(3).stride(2).pad(0, 1); 2]);
    let y = p[0].conv_general(&p[1], win, ConvDims::nhwc(), 1, 1);
    // Batch norm over (batch, height, width), from reduces.
    let mean = y.mean(&[0, 1, 2]);
    let centered = &y - &mean;
    let var = (&centered * &centered).mean(&[0, 1, 2]);
    let norm = &centered * &var.add_scalar(1e-3).rsqrt();
    let bn = &(&norm * &p[2]) + &p[3];
    let h = bn.relu().mean(&[1, 2]);
    let logits = &h.matmul(&p[4]) + &p[5];
    // Softmax cross-entropy against fixed one-hot labels.
    let labels = b.constant_f32(&[2, 3], &[1.0, 0.0, 0.0, 0.0, 0.0, 1.0]);
    let labels = labels.convert(simclr::ir::ElementType::F64);
    let m = logits.reduce_max(&[1]).stop_gradient();
    let lse = (&logits - &m.broadcast_in_dim(&[2, 3], &[0]))
        .exp()
        .sum(&[1])
        .log()
        + &m;
    let picked = (&labels * &logits).sum(&[1]);
    let loss = (lse - picked).mean(&[0]);
    (p, loss)
}

fn modules() -> (Module, Module) {
    let b = Builder::new("composite", 1);
    let (p, loss) = network(&b);
    let grads = ad::grad(&loss, &p).expect("grad");
    let mut outs = vec![&loss];
    outs.extend(grads.iter());
    let with_grads = b.build(&outs).expect("build");
    let f = Builder::new("composite_forward", 1);
    let (_, loss) = network(&f);
    (with_grads, f.build(&[&loss]).expect("build"))
}

#[test]
fn composite_gradient_lowers_to_one_hlo_module() {
    // Forward and backward are one program: the entry holds the forward
    // convolution and both gradient convolutions, and the max-free pooling
    // path needs no select-and-scatter.
    let (m, _) = modules();
    let p = m.to_proto();
    let entry = p
        .computations
        .iter()
        .find(|c| c.id == p.entry_computation_id)
        .expect("entry");
    let convs = entry
        .instructions
        .iter()
        .filter(|i| i.opcode == "convolution")
        .count();
    assert_eq!(convs, 3, "forward, input gradient, kernel gradient");
    assert!(!m.to_proto_bytes().is_empty());
}

#[test]
fn composite_gradient_matches_central_differences() {
    let (m, fwd) = modules();
    let mut rng = Rng(2024);
    let mut args: Vec<(Vec<i64>, Vec<f64>)> = PARAMS
        .iter()
        .map(|(_, d)| {
            let n = d.iter().product::<i64>() as usize;
            (d.to_vec(), sample(&mut rng, n, Domain::Any))
        })
        .collect();
    let out = eval_f64(&m, &args).expect("evaluate");
    let eps = 1e-6;
    for (k, (name, _)) in PARAMS.iter().enumerate() {
        let analytic = &out[1 + k];
        for (i, &a) in analytic.iter().enumerate() {
            let orig = args[k].1[i];
            args[k].1[i] = orig + eps;
            let up = eval_f64(&fwd, &args).expect("evaluate")[0][0];
            args[k].1[i] = orig - eps;
            let down = eval_f64(&fwd, &args).expect("evaluate")[0][0];
            args[k].1[i] = orig;
            let fd = (up - down) / (2.0 * eps);
            assert!(
                (a - fd).abs() <= 1e-7 + 1e-5 * fd.abs(),
                "∂loss/∂{name}[{i}]: autodiff {a:.10} vs central difference {fd:.10}"
            );
        }
    }
}

/// conv → max pool → relu → mean → dense → log-sum-exp, in element type `ty`.
fn pooled_network(b: &Builder, ty: simclr::ir::ElementType) -> (Vec<Tensor>, Tensor) {
    use simclr::ir::{BinaryOp, Shape};
    let x = b.parameter("x", Shape::new(ty, [2, 5, 5, 2]));
    let w = b.parameter("w", Shape::new(ty, [3, 3, 2, 3]));
    let d = b.parameter("d", Shape::new(ty, [3, 2]));
    let win = Window::new(vec![WindowDim::new(3).pad(1, 1); 2]);
    let y = x.conv_general(&w, win, ConvDims::nhwc(), 1, 1);
    let pool = Window::new(vec![
        WindowDim::new(1),
        WindowDim::new(3).stride(2).pad(1, 1),
        WindowDim::new(3).stride(2).pad(1, 1),
        WindowDim::new(1),
    ]);
    let max = b.reducer(BinaryOp::Maximum, ty);
    let p = y.reduce_window(&y.scalar_like(f64::NEG_INFINITY), pool, max);
    let h = p.relu().mean(&[1, 2]).matmul(&d);
    let loss = h.exp().sum(&[1]).log().sum_all();
    (vec![x, w, d], loss)
}

#[test]
fn f32_gradients_agree_with_f64_gradients() {
    use simclr::interp::{self, Value};
    use simclr::ir::ElementType;
    let mut results = vec![];
    let mut rng = Rng(77);
    let data: Vec<Vec<f64>> = [100usize, 54, 6]
        .iter()
        .map(|&n| sample(&mut rng, n, Domain::Any))
        .collect();
    for ty in [ElementType::F32, ElementType::F64] {
        let b = Builder::new("pooled", 1);
        let (p, loss) = pooled_network(&b, ty);
        let g = ad::grad(&loss, &p).expect("grad");
        let outs: Vec<&Tensor> = g.iter().collect();
        let m = b.build(&outs).expect("build");
        let args: Vec<Value> = p
            .iter()
            .zip(&data)
            .map(|(t, v)| {
                let dims = t.dims();
                match ty {
                    ElementType::F32 => {
                        Value::from_f32(&dims, v.iter().map(|&x| x as f32).collect())
                    }
                    _ => Value::from_f64(&dims, v.clone()),
                }
                .expect("value")
            })
            .collect();
        let out = interp::evaluate(&m, &[args]).expect("evaluate");
        results.push(
            out[0]
                .iter()
                .map(|v| v.to_f64_vec().expect("f64"))
                .collect::<Vec<_>>(),
        );
    }
    for (k, name) in ["x", "w", "d"].iter().enumerate() {
        ad_support::assert_close(
            &format!("f32 vs f64 ∂/∂{name}"),
            &results[0][k],
            &results[1][k],
            1e-5,
            1e-4,
        );
    }
}
