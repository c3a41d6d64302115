//! The `ad` API on hand-derived cases: expected gradients derived in the
//! comments, tie conventions, `stop_gradient`, unreached and integer `wrt`,
//! pruning, gradient scopes, tuple outputs, and the typed errors.

use crate::ad_support;

use ad_support::{assert_close, eval_f64, f64s};
use simclr::ad::{self, Error};
use simclr::ir::{BinaryOp, Builder, ConvDims, ElementType, Shape, Window, WindowDim};

fn eval(b: &Builder, outs: &[&simclr::ir::Tensor], args: &[(&[i64], &[f64])]) -> Vec<Vec<f64>> {
    let m = b.build(outs).expect("build");
    let a: Vec<(Vec<i64>, Vec<f64>)> = args.iter().map(|(d, v)| (d.to_vec(), v.to_vec())).collect();
    eval_f64(&m, &a).expect("evaluate")
}

#[test]
fn sum_of_squares_has_gradient_two_x() {
    // L = Σ xᵢ² ⇒ ∂L/∂xᵢ = 2xᵢ: at x = (1, 2, 3), (2, 4, 6).
    let b = Builder::new("squares", 1);
    let x = b.parameter("x", f64s(&[3]));
    let loss = (&x * &x).sum_all();
    let g = ad::grad(&loss, std::slice::from_ref(&x)).expect("grad");
    let out = eval(&b, &[&g[0]], &[(&[3], &[1.0, 2.0, 3.0])]);
    assert_close("d/dx Σx²", &out[0], &[2.0, 4.0, 6.0], 0.0, 0.0);
}

#[test]
fn matmul_gradients_are_row_and_column_sums() {
    // L = Σᵢⱼ (A·B)ᵢⱼ = Σᵢⱼₖ A_ik B_kj ⇒ ∂L/∂A_ik = Σⱼ B_kj, ∂L/∂B_kj = Σᵢ A_ik.
    // A = [[1,2],[3,4]], B = [[1,0,2],[0,1,3]]: row sums of B (3, 4), column
    // sums of A (4, 6).
    let b = Builder::new("matmul", 1);
    let a = b.parameter("a", f64s(&[2, 2]));
    let bb = b.parameter("b", f64s(&[2, 3]));
    let loss = a.matmul(&bb).sum_all();
    let g = ad::grad(&loss, &[a, bb]).expect("grad");
    let out = eval(
        &b,
        &[&g[0], &g[1]],
        &[
            (&[2, 2], &[1.0, 2.0, 3.0, 4.0]),
            (&[2, 3], &[1.0, 0.0, 2.0, 0.0, 1.0, 3.0]),
        ],
    );
    assert_close("∂/∂A", &out[0], &[3.0, 4.0, 3.0, 4.0], 0.0, 0.0);
    assert_close("∂/∂B", &out[1], &[4.0, 4.0, 4.0, 6.0, 6.0, 6.0], 0.0, 0.0);
}

#[test]
fn ties_follow_the_documented_conventions() {
    let b = Builder::new("ties", 1);
    let x = b.parameter("x", f64s(&[3]));
    let y = b.parameter("y", f64s(&[3]));
    // maximum: ties go to the first operand. x = y = (1, 1, 1) ⇒ ∂x = 1, ∂y = 0.
    let lmax = x.binary(BinaryOp::Maximum, &y).sum_all();
    let gmax = ad::grad(&lmax, &[x.clone(), y.clone()]).expect("grad");
    // relu = max(x, 0) has slope 1 at 0 (and 0 below): x = (0, −1, 1) ⇒ (1, 0, 1).
    let lrelu = x.relu().sum_all();
    let grelu = ad::grad(&lrelu, std::slice::from_ref(&x)).expect("grad");
    // reduce max: equal maxima share the cotangent: (1, 3, 3) ⇒ (0, ½, ½).
    let lred = x.reduce_max(&[0]);
    let gred = ad::grad(&lred, std::slice::from_ref(&x)).expect("grad");
    let m = b
        .build(&[&gmax[0], &gmax[1], &grelu[0], &gred[0]])
        .expect("build");
    let run = |xv: &[f64]| {
        eval_f64(
            &m,
            &[(vec![3], xv.to_vec()), (vec![3], vec![1.0, 1.0, 1.0])],
        )
        .expect("evaluate")
    };
    let out = run(&[1.0, 1.0, 1.0]);
    assert_close("max ties → first", &out[0], &[1.0; 3], 0.0, 0.0);
    assert_close("max ties → not second", &out[1], &[0.0; 3], 0.0, 0.0);
    let out = run(&[0.0, -1.0, 1.0]);
    assert_close("relu slope", &out[2], &[1.0, 0.0, 1.0], 0.0, 0.0);
    let out = run(&[1.0, 3.0, 3.0]);
    assert_close("reduce-max ties split", &out[3], &[0.0, 0.5, 0.5], 0.0, 0.0);
}

#[test]
fn max_pool_ties_go_to_the_first_element_of_the_window() {
    // 2×2 windows, stride 2, on a constant [1,4,4,1] input: select-and-scatter
    // with GE picks the first (top-left) element of each window.
    let b = Builder::new("pool_ties", 1);
    let x = b.parameter("x", f64s(&[1, 4, 4, 1]));
    let win = Window::new(vec![
        WindowDim::new(1),
        WindowDim::new(2).stride(2),
        WindowDim::new(2).stride(2),
        WindowDim::new(1),
    ]);
    let max = b.reducer(BinaryOp::Maximum, ElementType::F64);
    let loss = x
        .reduce_window(&x.scalar_like(f64::NEG_INFINITY), win, max)
        .sum_all();
    let g = ad::grad(&loss, std::slice::from_ref(&x)).expect("grad");
    let out = eval(&b, &[&g[0]], &[(&[1, 4, 4, 1], &[2.0; 16])]);
    let mut want = vec![0.0; 16];
    for i in [0, 2, 8, 10] {
        want[i] = 1.0;
    }
    assert_close("max-pool ties", &out[0], &want, 0.0, 0.0);
}

#[test]
fn stop_gradient_blocks_the_gradient() {
    // L = Σ x·sg(x) ⇒ ∂L/∂x = sg(x) = x (not 2x).
    let b = Builder::new("stop", 1);
    let x = b.parameter("x", f64s(&[2]));
    let s = x.stop_gradient();
    assert!(b.is_stop_gradient(s.comp(), s.id()));
    assert!(!b.is_stop_gradient(x.comp(), x.id()));
    let loss = (&x * &s).sum_all();
    let g = ad::grad(&loss, std::slice::from_ref(&x)).expect("grad");
    let out = eval(&b, &[&g[0]], &[(&[2], &[3.0, -1.0])]);
    assert_close("∂/∂x x·sg(x)", &out[0], &[3.0, -1.0], 0.0, 0.0);
}

#[test]
fn unreached_and_integer_wrt_get_zeros() {
    let b = Builder::new("zeros", 1);
    let x = b.parameter("x", f64s(&[2]));
    let unused = b.parameter("unused", f64s(&[3]));
    let k = b.parameter("k", Shape::new(ElementType::S32, [2]));
    // k enters only through a convert; integers carry no gradient.
    let loss = (&x * &k.convert(ElementType::F64)).sum_all();
    let g = ad::grad(&loss, &[unused.clone(), k.clone(), x.clone()]).expect("grad");
    assert_eq!(g[0].ty(), unused.ty());
    assert_eq!(g[1].ty(), k.ty());
    let m = b.build(&[&g[0], &g[2]]).expect("build");
    let out = simclr::interp::evaluate(
        &m,
        &[vec![
            simclr::interp::Value::from_f64(&[2], vec![1.0, 1.0]).expect("x"),
            simclr::interp::Value::from_f64(&[3], vec![1.0; 3]).expect("unused"),
            simclr::interp::Value::from_i32(&[2], vec![5, 7]).expect("k"),
        ]],
    )
    .expect("evaluate");
    assert_eq!(out[0][0].to_f64_vec().expect("f64"), vec![0.0; 3]);
    assert_eq!(out[0][1].to_f64_vec().expect("f64"), vec![5.0, 7.0]);
}

#[test]
fn convert_gradient_returns_to_the_operand_type() {
    // L = Σ 3·f64(x) for x: f32 ⇒ ∂L/∂x = 3 in f32.
    let b = Builder::new("convert", 1);
    let x = b.parameter("x", Shape::new(ElementType::F32, [2]));
    let loss = x.convert(ElementType::F64).mul_scalar(3.0).sum_all();
    let g = ad::grad(&loss, std::slice::from_ref(&x)).expect("grad");
    assert_eq!(g[0].ty(), x.ty());
    let m = b.build(&[&g[0]]).expect("build");
    let out = simclr::interp::evaluate(
        &m,
        &[vec![
            simclr::interp::Value::from_f32(&[2], vec![1.0, 2.0]).expect("x")
        ]],
    )
    .expect("evaluate");
    assert_eq!(out[0][0].to_f32_vec().expect("f32"), vec![3.0, 3.0]);
}

#[test]
fn gradient_with_respect_to_an_intermediate_is_its_total_cotangent() {
    // h = 2x, L = Σ h² + Σ x ⇒ ∂L/∂h = 2h = 4x, ∂L/∂x = 2·(2h) + 1 = 8x + 1.
    let b = Builder::new("intermediate", 1);
    let x = b.parameter("x", f64s(&[2]));
    let h = x.mul_scalar(2.0);
    let loss = (&h * &h).sum_all() + x.sum_all();
    let g = ad::grad(&loss, &[h, x]).expect("grad");
    let out = eval(&b, &[&g[0], &g[1]], &[(&[2], &[1.0, -2.0])]);
    assert_close("∂/∂h", &out[0], &[4.0, -8.0], 0.0, 0.0);
    assert_close("∂/∂x", &out[1], &[9.0, -15.0], 0.0, 0.0);
}

#[test]
fn tuple_outputs_take_tuple_cotangents() {
    // outputs t = (2x, x²) with cotangent (c₀, c₁) ⇒ ∂ = 2c₀ + 2x·c₁.
    let b = Builder::new("tuple_out", 1);
    let x = b.parameter("x", f64s(&[2]));
    let c0 = b.parameter("c0", f64s(&[2]));
    let c1 = b.parameter("c1", f64s(&[2]));
    let t = b.tuple(&[&x.mul_scalar(2.0), &(&x * &x)]);
    let ct = b.tuple(&[&c0, &c1]);
    let g = ad::vjp(&[t], &[ct], std::slice::from_ref(&x)).expect("vjp");
    let out = eval(
        &b,
        &[&g[0]],
        &[
            (&[2], &[1.0, 3.0]),
            (&[2], &[1.0, 1.0]),
            (&[2], &[2.0, -1.0]),
        ],
    );
    assert_close("tuple vjp", &out[0], &[6.0, -4.0], 0.0, 0.0);
}

#[test]
fn only_the_requested_gradients_are_built() {
    // ∂L/∂w of a convolution needs the kernel-gradient convolution only,
    // not the input-gradient one.
    let b = Builder::new("pruned", 1);
    let x = b.parameter("x", f64s(&[1, 5, 5, 2]));
    let w = b.parameter("w", f64s(&[3, 3, 2, 4]));
    let win = Window::new(vec![WindowDim::new(3).stride(2).pad(1, 1); 2]);
    let y = x.conv_general(&w, win, ConvDims::nhwc(), 1, 1);
    let side = x.exp().sum_all(); // off the path from w: no rule applied
    let loss = y.tanh().sum_all() + side;
    let g = ad::grad(&loss, std::slice::from_ref(&w)).expect("grad");
    let m = b.build(&[&g[0]]).expect("build");
    let convs = m
        .entry()
        .nodes
        .iter()
        .filter(|n| n.op.opcode() == "convolution")
        .count();
    assert_eq!(convs, 2, "forward + kernel gradient");
    assert!(m
        .entry()
        .nodes
        .iter()
        .all(|n| n.op.opcode() != "exponential" || !n.scope.starts_with("gradients")));
}

#[test]
fn gradient_nodes_live_under_a_gradients_scope() {
    let b = Builder::new("scopes", 1);
    let x = b.parameter("x", f64s(&[2]));
    let y = {
        let _s = b.scope("base_model");
        x.tanh()
    };
    let g = ad::grad(&y.sum_all(), std::slice::from_ref(&x)).expect("grad");
    // Called inside a scope, gradients go under `<scope>/gradients/…`.
    let (z, gz) = {
        let _t = b.scope("train");
        let z = {
            let _s = b.scope("trainer_head");
            x.exp()
        };
        let gz = ad::grad(&z.sum_all(), std::slice::from_ref(&x)).expect("grad");
        (z, gz)
    };
    let m = b.build(&[&g[0], &gz[0], &z]).expect("build");
    let scopes: Vec<&str> = m.entry().nodes.iter().map(|n| n.scope.as_str()).collect();
    assert!(scopes.contains(&"gradients/base_model"), "{scopes:?}");
    assert!(
        scopes.contains(&"train/gradients/trainer_head"),
        "{scopes:?}"
    );
}

#[test]
fn ops_without_a_rule_are_named_in_a_typed_error() {
    let b = Builder::new("norule", 1);
    let x = b.parameter("x", Shape::new(ElementType::F16, [2]));
    let y = {
        let _s = b.scope("head");
        x.bitcast_convert(ElementType::Bf16)
    };
    let loss = y.convert(ElementType::F32).sum_all();
    match ad::grad(&loss, std::slice::from_ref(&x)) {
        Err(Error::NoRule { opcode, scope, .. }) => {
            assert_eq!(opcode, "bitcast-convert");
            assert_eq!(scope, "head");
        }
        other => panic!("expected NoRule, got {other:?}"),
    }
    // A product reduction has no rule either.
    let z = b.parameter("z", f64s(&[3]));
    let mul = b.reducer(BinaryOp::Multiply, ElementType::F64);
    let p = z.reduce(&z.scalar_like(1.0), &[0], mul);
    let err = ad::grad(&p, std::slice::from_ref(&z)).expect_err("no rule");
    assert!(err.to_string().contains("reduce"), "{err}");
}

#[test]
fn inconsistent_requests_are_rejected() {
    let b = Builder::new("invalid", 1);
    let x = b.parameter("x", f64s(&[2]));
    let y = x.exp();
    assert!(matches!(
        ad::grad(&y, std::slice::from_ref(&x)),
        Err(Error::Invalid(_))
    ));
    let wrong = b.parameter("c", f64s(&[3]));
    assert!(matches!(
        ad::vjp(std::slice::from_ref(&y), &[wrong], std::slice::from_ref(&x)),
        Err(Error::Invalid(_))
    ));
    let other = Builder::new("other", 1);
    let z = other.parameter("z", f64s(&[2]));
    assert!(matches!(
        ad::grad(&y.sum_all(), &[z]),
        Err(Error::Invalid(_))
    ));
    // A forward error is reported, not differentiated.
    let bad = x.matmul(&x);
    assert!(matches!(
        ad::grad(&bad.sum_all(), std::slice::from_ref(&x)),
        Err(Error::Build(_))
    ));
}

#[test]
fn dropout_masks_from_random_bits_carry_no_gradient() {
    // y = select(u < ½, x/½, 0) with u from rng-bit-generator bits: the
    // random path is integer/pred, so only the selected branch gets a
    // gradient: ∂Σy/∂x = 2 where kept, 0 where dropped.
    use simclr::ir::{ComparisonDirection, RngAlgorithm};
    let b = Builder::new("dropout", 1);
    let x = b.parameter("x", f64s(&[8]));
    let state = b.parameter("state", Shape::new(ElementType::U64, [2]));
    let bits = state
        .rng_bit_generator(RngAlgorithm::ThreeFry, Shape::new(ElementType::U32, [8]))
        .get_tuple_element(1);
    let u = bits
        .convert(ElementType::F64)
        .mul_scalar(1.0 / 4294967296.0);
    let keep = u.compare(ComparisonDirection::Lt, &u.scalar_like(0.5));
    let y = keep.select(&x.mul_scalar(2.0), &x.full_like(0.0));
    let g = ad::grad(&y.sum_all(), std::slice::from_ref(&x)).expect("grad");
    let keep_f = keep.select(&x.full_like(2.0), &x.full_like(0.0));
    let m = b.build(&[&g[0], &keep_f]).expect("build");
    let out = simclr::interp::evaluate(
        &m,
        &[vec![
            simclr::interp::Value::from_f64(&[8], vec![1.0; 8]).expect("x"),
            simclr::interp::Value::from_u64(&[2], vec![42, 7]).expect("state"),
        ]],
    )
    .expect("evaluate");
    let grad = out[0][0].to_f64_vec().expect("f64");
    let want = out[0][1].to_f64_vec().expect("f64");
    assert_eq!(grad, want);
}

#[test]
fn gradients_are_differentiable_graphs() {
    // L = Σ x³ ⇒ ∂L/∂x = 3x² ⇒ ∂(Σ ∂L/∂x)/∂x = 6x.
    let b = Builder::new("second_order", 1);
    let x = b.parameter("x", f64s(&[3]));
    let loss = (&(&x * &x) * &x).sum_all();
    let g = ad::grad(&loss, std::slice::from_ref(&x)).expect("grad");
    let h = ad::grad(&g[0].sum_all(), std::slice::from_ref(&x)).expect("grad of grad");
    let out = eval(&b, &[&g[0], &h[0]], &[(&[3], &[1.0, -2.0, 0.5])]);
    assert_close("3x²", &out[0], &[3.0, 12.0, 0.75], 1e-15, 0.0);
    assert_close("6x", &out[1], &[6.0, -12.0, 3.0], 1e-15, 0.0);
}

#[test]
fn batch_grouped_convolution_has_no_rule() {
    let b = Builder::new("batch_groups", 1);
    let x = b.parameter("x", f64s(&[4, 3, 3, 2]));
    let w = b.parameter("w", f64s(&[1, 1, 2, 2]));
    let win = Window::new(vec![WindowDim::new(1); 2]);
    let y = x.conv_general(&w, win, ConvDims::nhwc(), 1, 2);
    b.check().expect("valid forward");
    match ad::grad(&y.sum_all(), std::slice::from_ref(&x)) {
        Err(Error::NoRule { opcode, detail, .. }) => {
            assert_eq!(opcode, "convolution");
            assert!(detail.contains("batch_group_count"), "{detail}");
        }
        other => panic!("expected NoRule, got {other:?}"),
    }
}

#[test]
fn convolution_gradients_match_the_xla_verified_recipes() {
    // HLO.md §8.1: x f32[2,3,7,7], w f32[4,3,3,3], stride 2, padding 1, NCHW:
    //   input grad  conv(dy, reverse(w)) window={size=3x3 pad=1_1x1_1 lhs_dilate=2x2}, bf01_io01->bf01
    //   kernel grad conv(x, dy)          window={size=4x4 pad=1_1x1_1 rhs_dilate=2x2}, fb01_io01->fb01
    // and for NHWC/HWIO the labels b01f_01oi->b01f and f01b_i01o->01bf.
    use simclr::ir::Op;
    let recipes = [
        (
            "bf01_oi01->bf01",
            [2, 3, 7, 7],
            [4, 3, 3, 3],
            ["bf01_io01->bf01", "fb01_io01->fb01"],
        ),
        (
            "b01f_01io->b01f",
            [2, 7, 7, 3],
            [3, 3, 3, 4],
            ["b01f_01oi->b01f", "f01b_i01o->01bf"],
        ),
    ];
    for (labels, xd, wd, want) in recipes {
        let b = Builder::new("recipe", 1);
        let x = b.parameter("x", Shape::new(ElementType::F32, xd));
        let w = b.parameter("w", Shape::new(ElementType::F32, wd));
        let win = Window::new(vec![WindowDim::new(3).stride(2).pad(1, 1); 2]);
        let dn = ConvDims::from_labels(labels).expect("labels");
        let y = x.conv_general(&w, win, dn, 1, 1);
        let g = ad::grad(&y.sum_all(), &[x, w]).expect("grad");
        let m = b.build(&[&g[0], &g[1]]).expect("build");
        let convs: Vec<(String, String)> = m
            .entry()
            .nodes
            .iter()
            .filter_map(|n| match &n.op {
                Op::Convolution { window, dnums, .. } => {
                    Some((dnums.to_labels(), window.to_text()))
                }
                _ => None,
            })
            .collect();
        // The loss is linear in y, so the forward convolution is dead and
        // only the two gradient convolutions remain.
        assert_eq!(convs.len(), 2, "{convs:?}");
        assert_eq!(convs[0].0, want[0], "input gradient of {labels}");
        assert_eq!(convs[0].1, "size=3x3 pad=1_1x1_1 lhs_dilate=2x2");
        assert_eq!(convs[1].0, want[1], "kernel gradient of {labels}");
        assert_eq!(convs[1].1, "size=4x4 pad=1_1x1_1 rhs_dilate=2x2");
    }
}
