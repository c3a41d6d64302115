//! Gradients through PJRT: for one differentiable program per VJP family
//! (elementwise, dot, convolution with stride/padding/dilation/groups,
//! reduce add/max, reduce-window add/max, broadcast/slice/pad/concatenate/
//! dynamic-slice, collectives on 4 replicas), the program
//! `(x…, c) ↦ (Σ f(x)·c, ∇ₓ Σ f(x)·c)` built by `ad::vjp` is compiled for
//! the XLA CPU plugin in f32 and must agree
//!
//! * with `interp` on the same f32 module, to a per-family tolerance
//!   (`conformance_support::check`), and
//! * with `interp` on the f64 build of the same program from the same
//!   (f32-rounded) inputs, to a per-family relative error
//!   `max|g₃₂ − g₆₄| / max(1, max|g₆₄|)`.

use crate::conformance_support as support;

use proptest::prelude::*;
use simclr::ad;
use simclr::interp::{self, Value};
use simclr::ir::{
    BinaryOp, Builder, ComparisonDirection, ConvDims, DotDims, ElementType, Module, PadDim,
    ReplicaGroups, Shape, Tensor, UnaryOp, Window, WindowDim,
};
use support::{Rng, Tol};

use ElementType::{F32, F64, S32};

/// Where an input's values come from.
#[derive(Clone, Copy, Debug)]
enum Domain {
    /// Uniform in [−2, 2].
    Any,
    /// Uniform in [0.5, 2].
    Positive,
}

/// A differentiable program of one VJP family.
struct Family {
    name: &'static str,
    inputs: Vec<(Vec<i64>, Domain)>,
    replicas: usize,
    f: fn(&[Tensor]) -> Tensor,
    /// PJRT f32 vs interp f32.
    tol: Tol,
    /// PJRT f32 vs interp f64 (relative to the largest gradient).
    tol64: f64,
}

fn close(abs: f64, rel: f64) -> Tol {
    Tol::Close { abs, rel }
}

fn window(dims: &[WindowDim]) -> Window {
    Window::new(dims.to_vec())
}

fn reducer(x: &Tensor, op: BinaryOp) -> simclr::ir::CompId {
    x.builder().reducer(op, x.element_type())
}

fn elementwise(x: &[Tensor]) -> Tensor {
    let (a, b, p) = (&x[0], &x[1], &x[2]);
    let gt = a.compare(ComparisonDirection::Gt, b);
    let t1 = a.tanh() * b.exp();
    let t2 = p.log() / (a * a + 1.0);
    let t3 = a.unary(UnaryOp::Sin) * b.unary(UnaryOp::Cos);
    let t4 = a.max(b) - p.sqrt() + p.rsqrt();
    let t5 = gt.select(a, &(b * 2.0)) + a.unary(UnaryOp::Logistic);
    let t6 = p.pow(b) + a.clamp(&b.scalar_like(-0.5), &b.scalar_like(0.7));
    let t7 = a.binary(BinaryOp::Atan2, p) + p.unary(UnaryOp::Log1p) - a.unary(UnaryOp::Expm1);
    t1 + t2 + t3 + t4 + t5 + t6 + t7
}

fn dot(x: &[Tensor]) -> Tensor {
    let batched = x[0].dot_general(
        &x[1],
        DotDims {
            lhs_contracting: vec![2],
            rhs_contracting: vec![1],
            lhs_batch: vec![0],
            rhs_batch: vec![0],
        },
    );
    // [2,3,5] · [5,4] contracting the last dim.
    batched.dot_general(
        &x[2],
        DotDims {
            lhs_contracting: vec![2],
            rhs_contracting: vec![0],
            ..DotDims::default()
        },
    )
}

fn conv_strided(x: &[Tensor]) -> Tensor {
    let w = window(&[
        WindowDim::new(3).stride(2).pad(1, 1),
        WindowDim::new(3).stride(2).pad(1, 0),
    ]);
    x[0].conv_general(&x[1], w, ConvDims::nhwc(), 1, 1)
}

fn conv_dilated(x: &[Tensor]) -> Tensor {
    let w = window(&[
        WindowDim::new(2).window_dilation(2).pad(1, 1),
        WindowDim::new(2).base_dilation(2).pad(0, 1),
    ]);
    let dn = ConvDims::from_labels("bf01_oi01->bf01").expect("labels");
    x[0].conv_general(&x[1], w, dn, 1, 1)
}

fn conv_grouped(x: &[Tensor]) -> Tensor {
    // Depthwise-style: 4 input features in 2 groups, odd dimension labels.
    let w = window(&[WindowDim::new(3).pad(1, 1), WindowDim::new(2).stride(2)]);
    let dn = ConvDims::from_labels("f01b_i01o->0bf1").expect("labels");
    x[0].conv_general(&x[1], w, dn, 2, 1)
}

fn reduce_add(x: &[Tensor]) -> Tensor {
    let s = x[0].sum(&[0, 2]);
    (&s * &s).concat(&[&x[0].mean(&[1]).sum(&[1])], 0)
}

fn reduce_max(x: &[Tensor]) -> Tensor {
    let m = x[0].reduce_max(&[1]);
    let min = x[0].neg().reduce(
        &x[0].scalar_like(f64::NEG_INFINITY),
        &[0],
        reducer(&x[0], BinaryOp::Maximum),
    );
    m.tanh().sum(&[1]).concat(&[&min.sum(&[1])], 0)
}

fn pool_add(x: &[Tensor]) -> Tensor {
    let w = window(&[
        WindowDim::new(1),
        WindowDim::new(2).stride(2).pad(1, 0),
        WindowDim::new(3).stride(1).pad(1, 1),
        WindowDim::new(1),
    ]);
    let add = reducer(&x[0], BinaryOp::Add);
    x[0].reduce_window(&x[0].scalar_like(0.0), w, add)
        .mul_scalar(1.0 / 6.0)
}

fn pool_max(x: &[Tensor]) -> Tensor {
    let w = window(&[
        WindowDim::new(1),
        WindowDim::new(3).stride(2).pad(1, 1),
        WindowDim::new(3).stride(2).pad(1, 1),
        WindowDim::new(1),
    ]);
    let max = reducer(&x[0], BinaryOp::Maximum);
    x[0].reduce_window(&x[0].scalar_like(f64::NEG_INFINITY), w, max)
}

fn structural(x: &[Tensor]) -> Tensor {
    let a = &x[0]; // [3, 4]
    let b = &x[1]; // [4]
    let bb = b.broadcast_in_dim(&[3, 4], &[1]);
    let s = a.slice(&[0, 1], &[3, 4], &[2, 2]); // [2, 2]
    let p = s.pad(
        &s.scalar_like(0.0),
        &[
            PadDim {
                lo: 1,
                hi: 0,
                interior: 1,
            },
            PadDim::edge(-1, 2),
        ],
    ); // [4, 3]
    let c = a.concat(&[&bb], 0); // [6, 4]
    let i = a.builder().scalar(S32, 2.0);
    let j = a.builder().scalar(S32, 1.0);
    let d = c.dynamic_slice(&[&i, &j], &[3, 3]); // [3, 3]
    let t = p.transpose(&[1, 0]).reverse(&[0]); // [3, 4]
    let r = (&t * a).reshape(&[4, 3]);
    let u = a.dynamic_update_slice(&(b.reshape(&[1, 4]) * 3.0), &[&j, &i]);
    (r.sum(&[1]).broadcast_in_dim(&[4, 3], &[0])
        + d.pad(
            &d.scalar_like(0.0),
            &[PadDim::edge(0, 1), PadDim::edge(0, 0)],
        ))
    .add(&u.transpose(&[1, 0]).slice(&[0, 0], &[4, 3], &[1, 1]))
}

fn collectives(x: &[Tensor]) -> Tensor {
    let a = &x[0]; // [2, 3]
    let pairs = ReplicaGroups::Groups(vec![vec![0, 2], vec![1, 3]]);
    let s = a.all_reduce_sum(ReplicaGroups::All).tanh() * a;
    let g = (a * a).all_gather(0, pairs.clone()); // [4, 3]
    let rs = g.reduce_scatter_sum(0, ReplicaGroups::All); // [1, 3]
    let h = a
        .all_gather(1, ReplicaGroups::All)
        .slice(&[0, 0], &[2, 3], &[1, 1]);
    s + h + rs.reshape(&[3]).broadcast_in_dim(&[2, 3], &[1])
}

fn families() -> Vec<Family> {
    let eps = f64::from(f32::EPSILON);
    vec![
        Family {
            name: "elementwise",
            inputs: vec![
                (vec![3, 4], Domain::Any),
                (vec![3, 4], Domain::Any),
                (vec![3, 4], Domain::Positive),
            ],
            replicas: 1,
            f: elementwise,
            tol: close(64.0 * eps, 64.0 * eps),
            tol64: 1e-5,
        },
        Family {
            name: "dot",
            inputs: vec![
                (vec![2, 3, 4], Domain::Any),
                (vec![2, 4, 5], Domain::Any),
                (vec![5, 4], Domain::Any),
            ],
            replicas: 1,
            f: dot,
            tol: close(200.0 * eps, 8.0 * eps),
            tol64: 1e-5,
        },
        Family {
            name: "convolution_stride_padding",
            inputs: vec![
                (vec![2, 7, 6, 3], Domain::Any),
                (vec![3, 3, 3, 4], Domain::Any),
            ],
            replicas: 1,
            f: conv_strided,
            tol: close(400.0 * eps, 8.0 * eps),
            tol64: 1e-5,
        },
        Family {
            name: "convolution_lhs_rhs_dilation",
            inputs: vec![
                (vec![2, 3, 5, 4], Domain::Any),
                (vec![4, 3, 2, 2], Domain::Any),
            ],
            replicas: 1,
            f: conv_dilated,
            tol: close(400.0 * eps, 8.0 * eps),
            tol64: 1e-5,
        },
        Family {
            name: "convolution_feature_groups",
            inputs: vec![
                (vec![4, 5, 6, 2], Domain::Any),
                (vec![2, 3, 2, 6], Domain::Any),
            ],
            replicas: 1,
            f: conv_grouped,
            tol: close(400.0 * eps, 8.0 * eps),
            tol64: 1e-5,
        },
        Family {
            name: "reduce_add",
            inputs: vec![(vec![3, 4, 5], Domain::Any)],
            replicas: 1,
            f: reduce_add,
            tol: close(200.0 * eps, 8.0 * eps),
            tol64: 1e-5,
        },
        Family {
            name: "reduce_max",
            inputs: vec![(vec![3, 4, 5], Domain::Any)],
            replicas: 1,
            f: reduce_max,
            tol: close(16.0 * eps, 16.0 * eps),
            tol64: 1e-5,
        },
        Family {
            name: "reduce_window_add",
            inputs: vec![(vec![2, 5, 4, 3], Domain::Any)],
            replicas: 1,
            f: pool_add,
            tol: close(64.0 * eps, 8.0 * eps),
            tol64: 1e-5,
        },
        Family {
            name: "reduce_window_max",
            inputs: vec![(vec![2, 7, 6, 3], Domain::Any)],
            replicas: 1,
            f: pool_max,
            tol: close(64.0 * eps, 8.0 * eps),
            tol64: 1e-5,
        },
        Family {
            name: "broadcast_slice_pad_concatenate_dynamic_slice",
            inputs: vec![(vec![3, 4], Domain::Any), (vec![4], Domain::Any)],
            replicas: 1,
            f: structural,
            tol: close(16.0 * eps, 8.0 * eps),
            tol64: 1e-5,
        },
        Family {
            name: "collectives_4_replicas",
            inputs: vec![(vec![2, 3], Domain::Any)],
            replicas: 4,
            f: collectives,
            tol: close(64.0 * eps, 16.0 * eps),
            tol64: 1e-5,
        },
    ]
}

/// `(x…, c) ↦ (Σ f(x)·c, ∇ₓ Σ f(x)·c…)` in element type `ty`.
fn grad_module(fam: &Family, ty: ElementType) -> Module {
    let b = Builder::new(&format!("grad_{}_{ty}", fam.name), fam.replicas);
    let xs: Vec<Tensor> = fam
        .inputs
        .iter()
        .enumerate()
        .map(|(i, (d, _))| b.parameter(&format!("x{i}"), Shape::new(ty, d.clone())))
        .collect();
    let y = (fam.f)(&xs);
    let c = b.parameter("cotangent", y.shape());
    let loss = (&y * &c).sum_all();
    let grads = ad::grad(&loss, &xs)
        .unwrap_or_else(|e| panic!("{}: gradients cannot be built: {e}", fam.name));
    let mut outs = vec![&loss];
    outs.extend(grads.iter());
    b.build(&outs)
        .unwrap_or_else(|e| panic!("{}: the gradient program is invalid: {e}", fam.name))
}

/// Random f32-representable values per replica: inputs, then the cotangent.
fn arguments(fam: &Family, out: &Shape, seed: u64) -> Vec<Vec<Vec<f64>>> {
    let mut rng = Rng(seed);
    (0..fam.replicas)
        .map(|_| {
            let mut a: Vec<Vec<f64>> = fam
                .inputs
                .iter()
                .map(|(d, dom)| {
                    let n = d.iter().product::<i64>() as usize;
                    (0..n)
                        .map(|_| {
                            let v = match dom {
                                Domain::Any => rng.uniform(-2.0, 2.0),
                                Domain::Positive => rng.uniform(0.5, 2.0),
                            };
                            f64::from(v as f32)
                        })
                        .collect()
                })
                .collect();
            a.push(
                (0..out.numel())
                    .map(|_| f64::from(rng.uniform(-1.0, 1.0) as f32))
                    .collect(),
            );
            a
        })
        .collect()
}

fn values(m: &Module, args: &[Vec<Vec<f64>>], ty: ElementType) -> Vec<Vec<Value>> {
    let params = m.param_types();
    args.iter()
        .map(|a| {
            a.iter()
                .zip(&params)
                .map(|(v, t)| {
                    let dims = &t.array().expect("array parameter").dims;
                    match ty {
                        F64 => Value::from_f64(dims, v.clone()),
                        _ => Value::from_f32(dims, v.iter().map(|&x| x as f32).collect()),
                    }
                    .expect("value")
                })
                .collect()
        })
        .collect()
}

fn check_family(fam: &Family, seed: u64) {
    let m32 = grad_module(fam, F32);
    let m64 = grad_module(fam, F64);
    let out = m32
        .param_types()
        .last()
        .and_then(|t| t.array().cloned())
        .expect("cotangent");
    let args = arguments(fam, &out, seed);
    // PJRT f32 vs interp f32 (panics with the op, shape and difference).
    let a32 = values(&m32, &args, F32);
    let got = support::check(&m32, &a32, fam.tol);
    // PJRT f32 vs interp f64.
    let want = interp::evaluate(&m64, &values(&m64, &args, F64))
        .unwrap_or_else(|e| panic!("{}: f64 evaluation fails: {e}", fam.name));
    for (r, (g, w)) in got.iter().zip(&want).enumerate() {
        for (k, (gv, wv)) in g.iter().zip(w).enumerate() {
            let gv = gv.to_f64_vec().expect("floats");
            let wv = wv.to_f64_vec().expect("floats");
            let scale = wv.iter().fold(1.0f64, |m, x| m.max(x.abs()));
            let (i, err) = gv
                .iter()
                .zip(&wv)
                .map(|(a, b)| (a - b).abs())
                .enumerate()
                .fold((0, 0.0), |acc, (i, e)| if e > acc.1 { (i, e) } else { acc });
            let what = if k == 0 {
                "the loss".to_string()
            } else {
                format!("the gradient of x{} {:?}", k - 1, fam.inputs[k - 1].0)
            };
            assert!(
                err / scale <= fam.tol64,
                "{} (seed {seed}), replica {r}: {what} on PJRT f32 is off from interp f64 by \
                 {:.3e} relative (element {i}: {} vs {}; tolerance {:.1e})",
                fam.name,
                err / scale,
                gv[i],
                wv[i],
                fam.tol64
            );
        }
    }
}

fn family(name: &str) -> Family {
    families()
        .into_iter()
        .find(|f| f.name == name)
        .unwrap_or_else(|| panic!("no family {name}"))
}

macro_rules! family_tests {
    ($($test:ident => $name:literal;)*) => {
        proptest! {
            #![proptest_config(support::cases(3))]
            $(
                #[test]
                fn $test(seed in any::<u64>()) {
                    check_family(&family($name), seed);
                }
            )*
        }
    };
}

family_tests! {
    elementwise_gradients_agree => "elementwise";
    dot_gradients_agree => "dot";
    strided_padded_convolution_gradients_agree => "convolution_stride_padding";
    dilated_convolution_gradients_agree => "convolution_lhs_rhs_dilation";
    grouped_convolution_gradients_agree => "convolution_feature_groups";
    reduce_add_gradients_agree => "reduce_add";
    reduce_max_gradients_agree => "reduce_max";
    reduce_window_add_gradients_agree => "reduce_window_add";
    reduce_window_max_gradients_agree => "reduce_window_max";
    structural_gradients_agree => "broadcast_slice_pad_concatenate_dynamic_slice";
    collective_gradients_agree_on_4_replicas => "collectives_4_replicas";
}

/// Every family of the table has a test above.
#[test]
fn every_family_has_a_test() {
    assert_eq!(families().len(), 11);
    // The op mix really reaches the rules it is named after.
    let m = grad_module(&family("reduce_window_max"), F32);
    let ops: Vec<&str> = m.entry().nodes.iter().map(|n| n.op.opcode()).collect();
    assert!(ops.contains(&"select-and-scatter"), "{ops:?}");
    let m = grad_module(&family("collectives_4_replicas"), F32);
    let ops: Vec<&str> = m.entry().nodes.iter().map(|n| n.op.opcode()).collect();
    for op in ["all-reduce", "all-gather", "reduce-scatter"] {
        assert!(ops.contains(&op), "{op} missing: {ops:?}");
    }
}
