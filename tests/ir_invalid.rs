//! Invalid programs are rejected when they are built, never by XLA and
//! never by a panic: every case below builds one bad op inside the name
//! scope `model/block1` and expects `Error::InvalidOp` naming the op, the
//! scope, this file as the call site and what is wrong.
//!
//! A property test then draws random attributes for the attribute-heavy
//! ops (slice, pad, broadcast, transpose, dot, convolution, reduce-window,
//! dynamic-slice): the builder must never panic, and whatever it accepts
//! must compile on the XLA CPU plugin and evaluate on `interp` (a rule that
//! is too loose would let XLA reject it).

use crate::conformance_support as support;

use simclr::ir::{
    BinaryOp, Builder, ComparisonDirection, ConvDims, DotDims, ElementType, Error, Op, PadDim,
    ReplicaGroups, RngAlgorithm, Shape, Tensor, Type, UnaryOp, Window, WindowDim,
};
use support::Rng;

use ElementType::{Pred, F32, F64, S32, U32, U64};

const SCOPE: &str = "model/block1";

fn f32s(dims: &[i64]) -> Shape {
    Shape::new(F32, dims)
}

fn scalar(ty: ElementType) -> Type {
    Type::Array(Shape::scalar(ty))
}

/// Builds `bad` on a fresh builder for `replicas` replicas inside
/// [`SCOPE`], then asserts that building fails with an `InvalidOp` for
/// `opcode` whose detail contains `detail`.
#[track_caller]
fn rejects(replicas: usize, opcode: &str, detail: &str, bad: impl FnOnce(&Builder) -> Tensor) {
    let b = Builder::new("invalid", replicas);
    let out = {
        let _m = b.scope("model");
        let _b = b.scope("block1");
        bad(&b)
    };
    assert!(
        out.is_poisoned(),
        "{opcode}: the bad op must yield a poisoned tensor"
    );
    // Ops on a poisoned tensor stay poisoned and keep the first error.
    let after = out.neg();
    assert!(after.is_poisoned(), "{opcode}: poison must propagate");
    match b.build(&[&after]) {
        Err(Error::InvalidOp {
            opcode: got,
            scope,
            location,
            detail: d,
            ..
        }) => {
            assert_eq!(got, opcode, "wrong opcode in the error ({d})");
            assert_eq!(scope, SCOPE, "{opcode}: wrong scope");
            assert!(
                location.contains("ir_invalid.rs"),
                "{opcode}: the error must point at the call site, got {location}"
            );
            assert!(
                d.contains(detail),
                "{opcode}: the detail must mention '{detail}', got: {d}"
            );
        }
        other => panic!("{opcode}: expected InvalidOp ({detail}), got {other:?}"),
    }
}

// ---------------------------------------------------------------- elementwise

#[test]
fn elementwise_ops_reject_mismatched_shapes_and_types() {
    rejects(1, "add", "different shapes", |b| {
        let x = b.parameter("x", f32s(&[2, 3]));
        let y = b.parameter("y", f32s(&[3, 2]));
        x.binary(BinaryOp::Add, &y)
    });
    rejects(1, "multiply", "different shapes", |b| {
        let x = b.parameter("x", f32s(&[2]));
        let y = b.parameter("y", Shape::new(F64, [2]));
        x.binary(BinaryOp::Multiply, &y)
    });
    rejects(1, "and", "does not accept element type f32", |b| {
        let x = b.parameter("x", f32s(&[2]));
        x.binary(BinaryOp::And, &x)
    });
    rejects(1, "shift-left", "does not accept", |b| {
        let x = b.parameter("x", f32s(&[2]));
        x.binary(BinaryOp::ShiftLeft, &x)
    });
    rejects(1, "subtract", "does not accept element type pred", |b| {
        let x = b.parameter("x", Shape::new(Pred, [2]));
        x.binary(BinaryOp::Subtract, &x)
    });
    rejects(1, "exponential", "does not accept element type s32", |b| {
        b.parameter("x", Shape::new(S32, [2])).unary(UnaryOp::Exp)
    });
    rejects(1, "not", "does not accept element type f32", |b| {
        b.parameter("x", f32s(&[2])).unary(UnaryOp::Not)
    });
    rejects(1, "compare", "different shapes", |b| {
        let x = b.parameter("x", f32s(&[2]));
        let y = b.parameter("y", f32s(&[3]));
        x.op(Op::Compare(ComparisonDirection::Lt), &[&y])
    });
    rejects(1, "select", "must be pred", |b| {
        let x = b.parameter("x", f32s(&[2]));
        x.select(&x, &x)
    });
    rejects(1, "select", "does not match branches", |b| {
        let p = b.parameter("p", Shape::new(Pred, [3]));
        let x = b.parameter("x", f32s(&[2]));
        p.select(&x, &x)
    });
    rejects(1, "select", "branches have different shapes", |b| {
        let p = b.parameter("p", Shape::scalar(Pred));
        let x = b.parameter("x", f32s(&[2]));
        let y = b.parameter("y", Shape::new(S32, [2]));
        p.select(&x, &y)
    });
    rejects(1, "clamp", "must have the operand's shape", |b| {
        let lo = b.parameter("lo", f32s(&[3]));
        let x = b.parameter("x", f32s(&[2]));
        lo.op(Op::Clamp, &[&x, &lo])
    });
    rejects(1, "bitcast-convert", "changes the bit width", |b| {
        b.parameter("x", f32s(&[2])).bitcast_convert(F64)
    });
}

// ---------------------------------------------------------------- shapes and leaves

#[test]
fn leaves_reject_bad_shapes() {
    rejects(1, "parameter", "negative dimension", |b| {
        b.parameter("x", f32s(&[2, -1]))
    });
    rejects(1, "iota", "negative dimension", |b| {
        b.iota(Shape::new(S32, [-3]), 0)
    });
    rejects(1, "iota", "out of range", |b| {
        b.iota(Shape::new(S32, [3]), 1)
    });
    rejects(1, "iota", "pred", |b| b.iota(Shape::new(Pred, [3]), 0));
    rejects(1, "constant", "do not fill", |b| {
        b.constant_f32(&[2, 2], &[1.0, 2.0, 3.0])
    });
}

#[test]
fn data_movement_rejects_bad_dimensions() {
    rejects(1, "broadcast", "out of range", |b| {
        b.parameter("x", f32s(&[3])).broadcast_in_dim(&[2, 3], &[2])
    });
    rejects(1, "broadcast", "repeats dimension", |b| {
        b.parameter("x", f32s(&[3, 3]))
            .broadcast_in_dim(&[3, 3], &[1, 1])
    });
    rejects(1, "broadcast", "cannot become output dimension", |b| {
        b.parameter("x", f32s(&[3])).broadcast_in_dim(&[2, 4], &[1])
    });
    rejects(1, "broadcast", "one entry per operand dimension", |b| {
        b.parameter("x", f32s(&[3])).broadcast_in_dim(&[3], &[])
    });
    rejects(1, "reshape", "cannot reshape", |b| {
        b.parameter("x", f32s(&[2, 3])).reshape(&[5])
    });
    rejects(1, "reshape", "cannot reshape", |b| {
        b.parameter("x", f32s(&[0, 3])).reshape(&[-1, 0])
    });
    rejects(1, "transpose", "repeats dimension", |b| {
        b.parameter("x", f32s(&[2, 3])).transpose(&[0, 0])
    });
    rejects(1, "transpose", "out of range", |b| {
        b.parameter("x", f32s(&[2, 3])).transpose(&[0, 2])
    });
    rejects(1, "transpose", "has 3 entries", |b| {
        b.parameter("x", f32s(&[2, 3])).transpose(&[0, 1, 2])
    });
    rejects(1, "reverse", "out of range", |b| {
        b.parameter("x", f32s(&[2, 3])).reverse(&[-1])
    });
    rejects(1, "reverse", "repeats dimension", |b| {
        b.parameter("x", f32s(&[2, 3])).reverse(&[1, 1])
    });
    rejects(1, "concatenate", "out of range", |b| {
        let x = b.parameter("x", f32s(&[2, 3]));
        x.concat(&[&x], 2)
    });
    rejects(1, "concatenate", "cannot concatenate", |b| {
        let x = b.parameter("x", f32s(&[2, 3]));
        let y = b.parameter("y", f32s(&[2, 4]));
        x.concat(&[&y], 0)
    });
    rejects(1, "concatenate", "cannot concatenate", |b| {
        let x = b.parameter("x", f32s(&[2, 3]));
        let y = b.parameter("y", Shape::new(S32, [2, 3]));
        x.concat(&[&y], 0)
    });
    rejects(1, "get-tuple-element", "has no element 2", |b| {
        let x = b.parameter("x", f32s(&[2]));
        b.tuple(&[&x, &x]).get_tuple_element(2)
    });
    rejects(1, "get-tuple-element", "non-tuple", |b| {
        b.parameter("x", f32s(&[2])).get_tuple_element(0)
    });
}

#[test]
fn slices_and_pads_reject_bad_bounds() {
    rejects(1, "slice", "is invalid for dimension 1", |b| {
        b.parameter("x", f32s(&[4, 5]))
            .slice(&[0, 0], &[4, 6], &[1, 1])
    });
    rejects(1, "slice", "is invalid for dimension 0", |b| {
        b.parameter("x", f32s(&[4, 5]))
            .slice(&[3, 0], &[2, 5], &[1, 1])
    });
    rejects(1, "slice", "is invalid for dimension 0", |b| {
        b.parameter("x", f32s(&[4, 5]))
            .slice(&[-1, 0], &[2, 5], &[1, 1])
    });
    rejects(1, "slice", "is invalid for dimension 1", |b| {
        b.parameter("x", f32s(&[4, 5]))
            .slice(&[0, 0], &[4, 5], &[1, 0])
    });
    rejects(1, "slice", "start/limit/stride of rank 2", |b| {
        b.parameter("x", f32s(&[4, 5])).slice(&[0], &[4], &[1])
    });
    rejects(1, "dynamic-slice", "exceeds dimension 0", |b| {
        let x = b.parameter("x", f32s(&[4]));
        let i = b.parameter("i", Shape::scalar(S32));
        x.dynamic_slice(&[&i], &[5])
    });
    rejects(1, "dynamic-slice", "integer scalars", |b| {
        let x = b.parameter("x", f32s(&[4]));
        let i = b.parameter("i", Shape::scalar(F32));
        x.dynamic_slice(&[&i], &[2])
    });
    rejects(1, "dynamic-slice", "integer scalars", |b| {
        let x = b.parameter("x", f32s(&[4]));
        let i = b.parameter("i", Shape::new(S32, [1]));
        x.dynamic_slice(&[&i], &[2])
    });
    rejects(1, "dynamic-slice", "needs 2 scalar start indices", |b| {
        let x = b.parameter("x", f32s(&[4, 4]));
        let i = b.parameter("i", Shape::scalar(S32));
        x.dynamic_slice(&[&i], &[2, 2])
    });
    rejects(1, "dynamic-slice", "the same type", |b| {
        let x = b.parameter("x", f32s(&[4, 4]));
        let i = b.parameter("i", Shape::scalar(S32));
        let j = b.parameter("j", Shape::scalar(U32));
        x.dynamic_slice(&[&i, &j], &[2, 2])
    });
    rejects(1, "dynamic-update-slice", "does not fit", |b| {
        let x = b.parameter("x", f32s(&[4]));
        let u = b.parameter("u", f32s(&[5]));
        let i = b.parameter("i", Shape::scalar(S32));
        x.dynamic_update_slice(&u, &[&i])
    });
    rejects(1, "dynamic-update-slice", "does not fit", |b| {
        let x = b.parameter("x", f32s(&[4]));
        let u = b.parameter("u", Shape::new(S32, [2]));
        let i = b.parameter("i", Shape::scalar(S32));
        x.dynamic_update_slice(&u, &[&i])
    });
    rejects(1, "dynamic-update-slice", "the same type", |b| {
        let x = b.parameter("x", f32s(&[4, 4]));
        let u = b.parameter("u", f32s(&[2, 2]));
        let i = b.parameter("i", Shape::scalar(S32));
        let j = b.parameter("j", Shape::scalar(ElementType::S64));
        x.dynamic_update_slice(&u, &[&i, &j])
    });
    rejects(1, "pad", "negative interior", |b| {
        let x = b.parameter("x", f32s(&[4]));
        let v = b.scalar(F32, 0.0);
        x.pad(
            &v,
            &[PadDim {
                lo: 0,
                hi: 0,
                interior: -1,
            }],
        )
    });
    rejects(1, "pad", "negative", |b| {
        let x = b.parameter("x", f32s(&[4]));
        let v = b.scalar(F32, 0.0);
        x.pad(&v, &[PadDim::edge(-3, -2)])
    });
    rejects(1, "pad", "padding value must be a f32 scalar", |b| {
        let x = b.parameter("x", f32s(&[4]));
        let v = b.scalar(S32, 0.0);
        x.pad(&v, &[PadDim::edge(1, 1)])
    });
    rejects(1, "pad", "needs 2 padding entries", |b| {
        let x = b.parameter("x", f32s(&[4, 4]));
        let v = b.scalar(F32, 0.0);
        x.pad(&v, &[PadDim::edge(1, 1)])
    });
}

// ---------------------------------------------------------------- dot, convolution

#[test]
fn dot_rejects_bad_dimension_numbers() {
    let dot = |l: &[i64], r: &[i64], dn: DotDims| {
        let (l, r) = (l.to_vec(), r.to_vec());
        move |b: &Builder| {
            let x = b.parameter("x", f32s(&l));
            let y = b.parameter("y", f32s(&r));
            x.dot_general(&y, dn)
        }
    };
    let dn = |lc: &[i64], rc: &[i64], lb: &[i64], rb: &[i64]| DotDims {
        lhs_contracting: lc.to_vec(),
        rhs_contracting: rc.to_vec(),
        lhs_batch: lb.to_vec(),
        rhs_batch: rb.to_vec(),
    };
    rejects(
        1,
        "dot",
        "does not match",
        dot(&[2, 3], &[4, 5], DotDims::matmul()),
    );
    rejects(
        1,
        "dot",
        "out of range",
        dot(&[2, 3], &[3, 5], dn(&[2], &[0], &[], &[])),
    );
    rejects(
        1,
        "dot",
        "repeats dimension",
        dot(&[3, 3], &[3, 3], dn(&[0], &[0], &[0], &[1])),
    );
    rejects(
        1,
        "dot",
        "unbalanced",
        dot(&[2, 3], &[3, 5], dn(&[1], &[], &[], &[])),
    );
    rejects(
        1,
        "dot",
        "does not match",
        dot(&[2, 3, 4], &[5, 4, 6], dn(&[2], &[1], &[0], &[0])),
    );
    rejects(1, "dot", "different types", |b| {
        let x = b.parameter("x", f32s(&[2, 3]));
        let y = b.parameter("y", Shape::new(F64, [3, 2]));
        x.matmul(&y)
    });
}

fn conv(
    x: &[i64],
    k: &[i64],
    window: Window,
    labels: &str,
    fgc: i64,
    bgc: i64,
) -> impl FnOnce(&Builder) -> Tensor {
    let (x, k) = (x.to_vec(), k.to_vec());
    let dn = ConvDims::from_labels(labels).expect("labels parse");
    move |b: &Builder| {
        let x = b.parameter("x", f32s(&x));
        let k = b.parameter("k", f32s(&k));
        x.conv_general(&k, window, dn, fgc, bgc)
    }
}

fn win(dims: &[WindowDim]) -> Window {
    Window::new(dims.to_vec())
}

#[test]
fn convolution_rejects_bad_windows_groups_and_dimension_numbers() {
    let w3 = || win(&[WindowDim::new(3), WindowDim::new(3)]);
    let nhwc = "b01f_01io->b01f";
    rejects(
        1,
        "convolution",
        "must equal the kernel's input features",
        conv(&[1, 5, 5, 4], &[3, 3, 3, 8], w3(), nhwc, 1, 1),
    );
    rejects(
        1,
        "convolution",
        "does not match kernel extent",
        conv(
            &[1, 5, 5, 4],
            &[3, 3, 4, 8],
            win(&[WindowDim::new(2), WindowDim::new(3)]),
            nhwc,
            1,
            1,
        ),
    );
    rejects(
        1,
        "convolution",
        "expected 2",
        conv(
            &[1, 5, 5, 4],
            &[3, 3, 4, 8],
            win(&[WindowDim::new(3)]),
            nhwc,
            1,
            1,
        ),
    );
    rejects(
        1,
        "convolution",
        "does not fit",
        conv(
            &[1, 5, 5, 4],
            &[3, 3, 4, 8],
            win(&[WindowDim::new(3).pad(-3, -3), WindowDim::new(3)]),
            nhwc,
            1,
            1,
        ),
    );
    rejects(
        1,
        "convolution",
        "below 1",
        conv(
            &[1, 5, 5, 4],
            &[3, 3, 4, 8],
            win(&[WindowDim::new(3).stride(0), WindowDim::new(3)]),
            nhwc,
            1,
            1,
        ),
    );
    rejects(
        1,
        "convolution",
        "below 1",
        conv(
            &[1, 5, 5, 4],
            &[3, 3, 4, 8],
            win(&[WindowDim::new(3).base_dilation(0), WindowDim::new(3)]),
            nhwc,
            1,
            1,
        ),
    );
    rejects(
        1,
        "convolution",
        "must equal the kernel's input features",
        conv(&[1, 5, 5, 6], &[3, 3, 3, 8], w3(), nhwc, 4, 1),
    );
    rejects(
        1,
        "convolution",
        "divisible by the group counts",
        conv(&[1, 5, 5, 4], &[3, 3, 2, 3], w3(), nhwc, 2, 1),
    );
    rejects(
        1,
        "convolution",
        "divisible by the group counts",
        conv(&[3, 5, 5, 4], &[3, 3, 4, 4], w3(), nhwc, 1, 2),
    );
    rejects(
        1,
        "convolution",
        "must be ≥ 1",
        conv(&[1, 5, 5, 4], &[3, 3, 4, 8], w3(), nhwc, 0, 1),
    );
    rejects(
        1,
        "convolution",
        "cannot both be greater than 1",
        conv(&[2, 5, 5, 4], &[3, 3, 2, 4], w3(), nhwc, 2, 2),
    );
    rejects(
        1,
        "convolution",
        "differ in rank or type",
        conv(
            &[1, 5, 5, 4],
            &[3, 4, 8],
            win(&[WindowDim::new(3)]),
            nhwc,
            1,
            1,
        ),
    );
    // A repeated input dimension (batch and feature both dimension 0).
    rejects(1, "convolution", "repeats dimension", |b| {
        let x = b.parameter("x", f32s(&[1, 5, 5, 4]));
        let k = b.parameter("k", f32s(&[3, 3, 4, 8]));
        let mut dn = ConvDims::nhwc();
        dn.input_feature = 0;
        x.conv_general(&k, w3(), dn, 1, 1)
    });
    rejects(1, "convolution", "out of range", |b| {
        let x = b.parameter("x", f32s(&[1, 5, 5, 4]));
        let k = b.parameter("k", f32s(&[3, 3, 4, 8]));
        let mut dn = ConvDims::nhwc();
        dn.output_spatial = vec![1, 4];
        x.conv_general(&k, w3(), dn, 1, 1)
    });
    rejects(1, "convolution", "do not match rank", |b| {
        let x = b.parameter("x", f32s(&[1, 5, 5, 4]));
        let k = b.parameter("k", f32s(&[3, 3, 4, 8]));
        let mut dn = ConvDims::nhwc();
        dn.kernel_spatial = vec![0];
        x.conv_general(&k, w3(), dn, 1, 1)
    });
}

// ---------------------------------------------------------------- reductions and windows

#[test]
fn reductions_reject_wrong_reducers_and_dimensions() {
    rejects(1, "reduce", "wrong reducer signature", |b| {
        let x = b.parameter("x", f32s(&[4]));
        let r = b.reducer(BinaryOp::Add, F64);
        x.reduce(&b.scalar(F32, 0.0), &[0], r)
    });
    rejects(1, "reduce", "wrong reducer signature", |b| {
        let x = b.parameter("x", f32s(&[4]));
        let r = b.computation("three", &[scalar(F32), scalar(F32), scalar(F32)], |p| {
            p[0].add(&p[1]).add(&p[2])
        });
        x.reduce(&b.scalar(F32, 0.0), &[0], r)
    });
    rejects(1, "reduce", "wrong reducer signature", |b| {
        // A compare is no reducer: it returns pred.
        let x = b.parameter("x", f32s(&[4]));
        let r = b.computation("lt", &[scalar(F32), scalar(F32)], |p| {
            p[0].op(Op::Compare(ComparisonDirection::Lt), &[&p[1]])
        });
        x.reduce(&b.scalar(F32, 0.0), &[0], r)
    });
    rejects(1, "reduce", "does not exist", |b| {
        let x = b.parameter("x", f32s(&[4]));
        x.reduce(&b.scalar(F32, 0.0), &[0], 99)
    });
    rejects(1, "reduce", "init value", |b| {
        let x = b.parameter("x", f32s(&[4]));
        let r = b.reducer(BinaryOp::Add, F32);
        x.reduce(&b.constant_f32(&[1], &[0.0]), &[0], r)
    });
    rejects(1, "reduce", "out of range", |b| {
        let x = b.parameter("x", f32s(&[4]));
        let r = b.reducer(BinaryOp::Add, F32);
        x.reduce(&b.scalar(F32, 0.0), &[1], r)
    });
    rejects(1, "reduce", "repeats dimension", |b| {
        let x = b.parameter("x", f32s(&[4, 2]));
        let r = b.reducer(BinaryOp::Add, F32);
        x.reduce(&b.scalar(F32, 0.0), &[0, 0], r)
    });
    rejects(1, "reduce", "K inputs followed by K", |b| {
        let x = b.parameter("x", f32s(&[4]));
        let r = b.reducer(BinaryOp::Add, F32);
        x.op(
            Op::Reduce {
                dims: vec![0],
                reducer: r,
            },
            &[&x, &b.scalar(F32, 0.0)],
        )
    });
    rejects(1, "reduce", "differ in dimensions", |b| {
        let x = b.parameter("x", f32s(&[4]));
        let i = b.parameter("i", Shape::new(S32, [5]));
        let r = b.computation(
            "argmax",
            &[scalar(F32), scalar(S32), scalar(F32), scalar(S32)],
            |p| p[0].op(Op::Tuple, &[&p[1]]),
        );
        x.op(
            Op::Reduce {
                dims: vec![0],
                reducer: r,
            },
            &[&i, &b.scalar(F32, 0.0), &b.scalar(S32, 0.0)],
        )
    });
    rejects(
        1,
        "reduce-window",
        "window has 1 dimensions, expected 2",
        |b| {
            let x = b.parameter("x", f32s(&[4, 4]));
            let r = b.reducer(BinaryOp::Maximum, F32);
            x.reduce_window(&b.scalar(F32, 0.0), win(&[WindowDim::new(2)]), r)
        },
    );
    rejects(1, "reduce-window", "below 1", |b| {
        let x = b.parameter("x", f32s(&[4]));
        let r = b.reducer(BinaryOp::Maximum, F32);
        x.reduce_window(&b.scalar(F32, 0.0), win(&[WindowDim::new(2).stride(0)]), r)
    });
    rejects(1, "reduce-window", "does not fit", |b| {
        let x = b.parameter("x", f32s(&[4]));
        let r = b.reducer(BinaryOp::Maximum, F32);
        x.reduce_window(
            &b.scalar(F32, 0.0),
            win(&[WindowDim::new(2).pad(-3, -2)]),
            r,
        )
    });
    rejects(1, "reduce-window", "init value must be a f32 scalar", |b| {
        let x = b.parameter("x", f32s(&[4]));
        let r = b.reducer(BinaryOp::Maximum, F32);
        x.reduce_window(&b.scalar(S32, 0.0), win(&[WindowDim::new(2)]), r)
    });
    rejects(1, "reduce-window", "wrong reducer signature", |b| {
        let x = b.parameter("x", f32s(&[4]));
        let r = b.reducer(BinaryOp::Maximum, S32);
        x.reduce_window(&b.scalar(F32, 0.0), win(&[WindowDim::new(2)]), r)
    });
    rejects(
        1,
        "select-and-scatter",
        "must have the windowed shape",
        |b| {
            let x = b.parameter("x", f32s(&[4]));
            let s = b.parameter("s", f32s(&[4]));
            let ge = b.computation("ge", &[scalar(F32), scalar(F32)], |p| {
                p[0].op(Op::Compare(ComparisonDirection::Ge), &[&p[1]])
            });
            let add = b.reducer(BinaryOp::Add, F32);
            let w = win(&[WindowDim::new(2).stride(2)]);
            x.select_and_scatter(&s, &b.scalar(F32, 0.0), w, ge, add)
        },
    );
    rejects(1, "select-and-scatter", "select computation must be", |b| {
        let x = b.parameter("x", f32s(&[4]));
        let s = b.parameter("s", f32s(&[2]));
        let max = b.reducer(BinaryOp::Maximum, F32);
        let add = b.reducer(BinaryOp::Add, F32);
        let w = win(&[WindowDim::new(2).stride(2)]);
        x.select_and_scatter(&s, &b.scalar(F32, 0.0), w, max, add)
    });
}

// ---------------------------------------------------------------- collectives, rng

#[test]
fn collectives_reject_bad_replica_groups() {
    let bad_groups: Vec<(ReplicaGroups, &str)> = vec![
        (
            ReplicaGroups::Groups(vec![vec![0, 1], vec![2]]),
            "same non-zero size",
        ),
        (
            ReplicaGroups::Groups(vec![vec![0, 1]]),
            "do not cover replica 2",
        ),
        (
            ReplicaGroups::Groups(vec![vec![0, 1], vec![1, 2]]),
            "appears twice",
        ),
        (
            ReplicaGroups::Groups(vec![vec![0, 1], vec![2, 4]]),
            "outside 0..4",
        ),
        (
            ReplicaGroups::Groups(vec![vec![0, 1, 2, -1]]),
            "outside 0..4",
        ),
        (ReplicaGroups::Groups(vec![]), "do not cover replica 0"),
        (
            ReplicaGroups::Groups(vec![vec![], vec![]]),
            "same non-zero size",
        ),
    ];
    for (g, why) in bad_groups {
        let g2 = g.clone();
        rejects(4, "all-reduce", why, move |b| {
            b.parameter("x", f32s(&[4])).all_reduce_sum(g2)
        });
        let g2 = g.clone();
        rejects(4, "all-gather", why, move |b| {
            b.parameter("x", f32s(&[4])).all_gather(0, g2)
        });
        rejects(4, "reduce-scatter", why, move |b| {
            b.parameter("x", f32s(&[4])).reduce_scatter_sum(0, g)
        });
    }
    rejects(4, "all-gather", "out of range", |b| {
        b.parameter("x", f32s(&[4]))
            .all_gather(1, ReplicaGroups::All)
    });
    rejects(
        4,
        "reduce-scatter",
        "not divisible by the group size 4",
        |b| {
            b.parameter("x", f32s(&[6]))
                .reduce_scatter_sum(0, ReplicaGroups::All)
        },
    );
    rejects(4, "reduce-scatter", "out of range", |b| {
        b.parameter("x", f32s(&[4]))
            .reduce_scatter_sum(-1, ReplicaGroups::All)
    });
    rejects(4, "all-reduce", "wrong reducer signature", |b| {
        let x = b.parameter("x", f32s(&[4]));
        let reducer = b.reducer(BinaryOp::Add, S32);
        x.op(
            Op::AllReduce {
                groups: ReplicaGroups::All,
                reducer,
            },
            &[],
        )
    });
}

#[test]
fn rng_bit_generator_rejects_bad_state_and_bit_types() {
    rejects(1, "rng-bit-generator", "must be u64[2]", |b| {
        let s = b.parameter("s", Shape::new(U64, [3]));
        s.rng_bit_generator(RngAlgorithm::ThreeFry, Shape::new(U32, [4]))
    });
    rejects(1, "rng-bit-generator", "u32 or u64 bits", |b| {
        let s = b.parameter("s", Shape::new(U64, [2]));
        s.rng_bit_generator(RngAlgorithm::Philox, f32s(&[4]))
    });
    rejects(1, "rng-bit-generator", "negative dimension", |b| {
        let s = b.parameter("s", Shape::new(U64, [2]));
        s.rng_bit_generator(RngAlgorithm::Philox, Shape::new(U32, [-4]))
    });
}

#[test]
fn tensors_of_another_builder_are_rejected() {
    let other = Builder::new("other", 1);
    let y = other.parameter("y", f32s(&[2]));
    rejects(1, "add", "another builder", move |b| {
        let x = b.parameter("x", f32s(&[2]));
        x.binary(BinaryOp::Add, &y)
    });
}

#[test]
fn the_first_error_is_kept_and_later_ops_do_not_panic() {
    let b = Builder::new("first", 1);
    let x = b.parameter("x", f32s(&[2]));
    let bad = x.reshape(&[3]);
    let worse = bad.matmul(&x).transpose(&[5, 5]).sum(&[7]);
    assert!(worse.is_poisoned());
    // An unrelated later error does not replace the first one.
    let _also_bad = x.slice(&[0], &[9], &[1]);
    match b.build(&[&x]) {
        Err(Error::InvalidOp { opcode, .. }) => assert_eq!(opcode, "reshape"),
        other => panic!("expected the reshape error, got {other:?}"),
    }
}

// ---------------------------------------------------------------- accepted ⇒ XLA accepts

/// With probability ½, nudges one entry of one of `lists` by ±1 or ±2, or
/// drops or repeats an entry: a near miss of a valid attribute.
fn corrupt(rng: &mut Rng, lists: &mut [&mut Vec<i64>]) {
    if lists.is_empty() || rng.coin() {
        return;
    }
    let k = rng.int(0, lists.len() as i64 - 1) as usize;
    let v = &mut *lists[k];
    match rng.int(0, 4) {
        0 if !v.is_empty() => {
            v.pop();
        }
        1 if !v.is_empty() => {
            let x = v[rng.int(0, v.len() as i64 - 1) as usize];
            v.push(x);
        }
        _ if !v.is_empty() => {
            let i = rng.int(0, v.len() as i64 - 1) as usize;
            v[i] += rng.pick(&[-2, -1, 1, 2]);
        }
        _ => v.push(rng.int(-1, 2)),
    }
}

fn window_lists(w: &Window) -> [Vec<i64>; 6] {
    let f = |g: fn(&WindowDim) -> i64| w.dims.iter().map(g).collect::<Vec<i64>>();
    [
        f(|d| d.size),
        f(|d| d.stride),
        f(|d| d.pad_lo),
        f(|d| d.pad_hi),
        f(|d| d.window_dilation),
        f(|d| d.base_dilation),
    ]
}

fn window_from(l: &[Vec<i64>; 6], reversal: bool) -> Window {
    let n = l.iter().map(Vec::len).min().unwrap_or(0);
    Window::new(
        (0..n)
            .map(|i| WindowDim {
                size: l[0][i],
                stride: l[1][i],
                pad_lo: l[2][i],
                pad_hi: l[3][i],
                window_dilation: l[4][i],
                base_dilation: l[5][i],
                reversal,
            })
            .collect(),
    )
}

fn random_window_dims(rng: &mut Rng, n: usize) -> Window {
    Window::new(
        (0..n)
            .map(|_| WindowDim {
                size: rng.int(1, 3),
                stride: rng.int(1, 2),
                pad_lo: rng.int(0, 2),
                pad_hi: rng.int(0, 2),
                window_dilation: rng.int(1, 2),
                base_dilation: rng.int(1, 2),
                reversal: false,
            })
            .collect(),
    )
}

/// Draws one op with random, valid or nearly valid, attributes.
fn random_op(rng: &mut Rng, b: &Builder) -> (String, Tensor, Vec<Shape>) {
    let x_shape = Shape::new(F32, rng.dims(1..=3, 4));
    let r = x_shape.rank();
    let xd = x_shape.dims.clone();
    let x = b.parameter("x", x_shape.clone());
    let mut shapes = vec![x_shape.clone()];
    match rng.int(0, 8) {
        0 => {
            let mut s: Vec<i64> = xd.iter().map(|&n| rng.int(0, n)).collect();
            let mut l: Vec<i64> = s.iter().zip(&xd).map(|(&a, &n)| rng.int(a, n)).collect();
            let mut st: Vec<i64> = (0..r).map(|_| rng.int(1, 3)).collect();
            corrupt(rng, &mut [&mut s, &mut l, &mut st]);
            let t = x.slice(&s, &l, &st);
            (format!("slice {x_shape} {s:?} {l:?} {st:?}"), t, shapes)
        }
        1 => {
            let mut lo: Vec<i64> = (0..r).map(|_| rng.int(-1, 2)).collect();
            let mut hi: Vec<i64> = (0..r).map(|_| rng.int(-1, 2)).collect();
            let mut int: Vec<i64> = (0..r).map(|_| rng.int(0, 2)).collect();
            corrupt(rng, &mut [&mut lo, &mut hi, &mut int]);
            let n = lo.len().min(hi.len()).min(int.len());
            let pads: Vec<PadDim> = (0..n)
                .map(|i| PadDim {
                    lo: lo[i],
                    hi: hi[i],
                    interior: int[i],
                })
                .collect();
            let t = x.pad(&b.scalar(F32, 0.5), &pads);
            (format!("pad {x_shape} {pads:?}"), t, shapes)
        }
        2 => {
            let extra = rng.int(0, 2) as usize;
            let mut map: Vec<i64> = (0..r as i64).map(|d| d + extra as i64).collect();
            if rng.coin() {
                map.reverse();
            }
            let mut out: Vec<i64> = (0..r + extra).map(|_| rng.int(1, 3)).collect();
            for (i, &m) in map.iter().enumerate() {
                out[m as usize] = xd[i];
            }
            corrupt(rng, &mut [&mut out, &mut map]);
            let t = x.broadcast_in_dim(&out, &map);
            (format!("broadcast {x_shape} {out:?} {map:?}"), t, shapes)
        }
        3 => {
            let mut perm = rng.perm(r);
            corrupt(rng, &mut [&mut perm]);
            let t = x.transpose(&perm);
            (format!("transpose {x_shape} {perm:?}"), t, shapes)
        }
        4 => {
            // lhs [b, m, k] (some of them), rhs [b, k, n] permuted.
            let lb = vec![0i64];
            let mut dn = DotDims {
                lhs_contracting: vec![r as i64 - 1],
                rhs_contracting: vec![1],
                lhs_batch: if r >= 2 { lb } else { vec![] },
                rhs_batch: if r >= 2 { vec![0] } else { vec![] },
            };
            let k = xd[r - 1];
            let y_dims = if r >= 2 {
                vec![xd[0], k, rng.int(1, 3)]
            } else {
                dn.rhs_contracting = vec![0];
                vec![k, rng.int(1, 3)]
            };
            let y_shape = Shape::new(F32, y_dims);
            let y = b.parameter("y", y_shape.clone());
            shapes.push(y_shape.clone());
            corrupt(
                rng,
                &mut [
                    &mut dn.lhs_contracting,
                    &mut dn.rhs_contracting,
                    &mut dn.lhs_batch,
                    &mut dn.rhs_batch,
                ],
            );
            let t = x.dot_general(&y, dn.clone());
            (format!("dot {x_shape} {y_shape} {dn:?}"), t, shapes)
        }
        5 => {
            // A fresh rank-4 NHWC-like input with random labels.
            let ns = 2;
            let (fgc, bgc) = rng.pick(&[(1, 1), (2, 1), (1, 2)]);
            let batch = bgc * rng.int(1, 2);
            let k_in = rng.int(1, 2);
            let k_out = 2 * rng.int(1, 2);
            let spatial: Vec<i64> = (0..ns).map(|_| rng.int(3, 6)).collect();
            let w = random_window_dims(rng, ns);
            let ks: Vec<i64> = w.dims.iter().map(|d| d.size).collect();
            let (pi, pk, po) = (rng.perm(ns + 2), rng.perm(ns + 2), rng.perm(ns + 2));
            let place = |perm: &[i64], logical: &[i64]| {
                let mut d = vec![0; logical.len()];
                for (i, &p) in perm.iter().enumerate() {
                    d[p as usize] = logical[i];
                }
                d
            };
            let xs = Shape::new(
                F32,
                place(&pi, &[&[batch, fgc * k_in][..], &spatial].concat()),
            );
            let kshape = Shape::new(F32, place(&pk, &[&[k_in, k_out][..], &ks].concat()));
            let xx = b.parameter("input", xs.clone());
            let kk = b.parameter("kernel", kshape.clone());
            shapes = vec![x_shape.clone(), xs.clone(), kshape.clone()];
            let mut lists = window_lists(&w);
            let (mut pi, mut pk, mut po) = (pi, pk, po);
            let mut groups = vec![fgc, bgc];
            {
                let [a, b2, c, d, e, f] = &mut lists;
                let mut all: Vec<&mut Vec<i64>> =
                    vec![a, b2, c, d, e, f, &mut pi, &mut pk, &mut po, &mut groups];
                corrupt(rng, &mut all);
            }
            let window = window_from(&lists, rng.int(0, 3) == 0);
            let get = |v: &[i64], i: usize| v.get(i).copied().unwrap_or(0);
            let dn = ConvDims {
                input_batch: get(&pi, 0),
                input_feature: get(&pi, 1),
                input_spatial: pi.iter().skip(2).copied().collect(),
                kernel_input_feature: get(&pk, 0),
                kernel_output_feature: get(&pk, 1),
                kernel_spatial: pk.iter().skip(2).copied().collect(),
                output_batch: get(&po, 0),
                output_feature: get(&po, 1),
                output_spatial: po.iter().skip(2).copied().collect(),
            };
            let (fgc, bgc) = (get(&groups, 0), get(&groups, 1));
            let t = xx.conv_general(&kk, window.clone(), dn.clone(), fgc, bgc);
            (
                format!(
                    "convolution {xs} {kshape} {} {} fgc={fgc} bgc={bgc}",
                    window.to_text(),
                    dn.to_labels()
                ),
                t,
                shapes,
            )
        }
        6 => {
            let w = random_window_dims(rng, r);
            let mut lists = window_lists(&w);
            {
                let [a, b2, c, d, e, f] = &mut lists;
                corrupt(rng, &mut [a, b2, c, d, e, f]);
            }
            let window = window_from(&lists, false);
            let red = b.reducer(BinaryOp::Add, F32);
            let t = x.reduce_window(&b.scalar(F32, 0.0), window.clone(), red);
            (
                format!("reduce-window {x_shape} {}", window.to_text()),
                t,
                shapes,
            )
        }
        7 => {
            let mut dims: Vec<i64> = (0..r as i64).filter(|_| rng.coin()).collect();
            corrupt(rng, &mut [&mut dims]);
            let red = b.reducer(BinaryOp::Add, F32);
            let t = x.reduce(&b.scalar(F32, 0.0), &dims, red);
            (format!("reduce {x_shape} {dims:?}"), t, shapes)
        }
        _ => {
            let mut sizes: Vec<i64> = xd.iter().map(|&n| rng.int(0, n)).collect();
            let mut count = vec![r as i64];
            corrupt(rng, &mut [&mut sizes, &mut count]);
            let ity = rng.pick(&[S32, S32, S32, U32]);
            let idx: Vec<Tensor> = (0..count[0].max(0))
                .map(|i| {
                    let ty = if rng.int(0, 7) == 0 {
                        rng.pick(&[U32, F32])
                    } else {
                        ity
                    };
                    let s = Shape::scalar(ty);
                    shapes.push(s.clone());
                    b.parameter(&format!("i{i}"), s)
                })
                .collect();
            let refs: Vec<&Tensor> = idx.iter().collect();
            let t = x.dynamic_slice(&refs, &sizes);
            (format!("dynamic-slice {x_shape} {sizes:?}"), t, shapes)
        }
    }
}

/// Random attributes never panic the builder; what it accepts, XLA
/// compiles and `interp` evaluates the same. The draw must produce both
/// accepted and rejected programs, or the test checks nothing.
#[test]
fn accepted_programs_compile_on_xla() {
    let (mut accepted, mut rejected) = (0, 0);
    let mut by_op: std::collections::BTreeMap<String, (usize, usize)> = Default::default();
    for case in 0..96u64 {
        let mut rng = Rng(0x5eed_0000 + case);
        let b = Builder::new("random_op", 1);
        let (what, t, shapes) = random_op(&mut rng, &b);
        let op = what.split(' ').next().unwrap_or_default().to_string();
        match b.build(&[&t]) {
            Err(Error::InvalidOp { opcode, detail, .. }) => {
                assert!(!detail.is_empty(), "{what}: empty detail for {opcode}");
                rejected += 1;
                by_op.entry(op).or_default().1 += 1;
            }
            Err(e) => panic!("{what}: unexpected error kind {e}"),
            Ok(m) => {
                accepted += 1;
                by_op.entry(op).or_default().0 += 1;
                let args: Vec<simclr::interp::Value> =
                    shapes.iter().map(|s| rng.value(s, -2.0, 2.0)).collect();
                support::check(&m, &[args], support::Tol::accumulated(F32, 64, 4.0));
            }
        }
    }
    eprintln!("accepted {accepted}, rejected {rejected}: {by_op:?}");
    assert!(
        accepted >= 20 && rejected >= 20,
        "the draw is lopsided: {accepted} accepted, {rejected} rejected ({by_op:?})"
    );
}
