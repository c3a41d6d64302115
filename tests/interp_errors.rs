//! Reference evaluator: malformed modules (built by hand, bypassing the
//! shape rules) give errors that name the op, never panics.

use simclr::interp::{evaluate, Error, Value};
use simclr::ir::{
    Computation, ConvDims, DotDims, ElementType, Module, Node, Op, PadDim, Shape, Type, Window,
    WindowDim,
};

fn f32t(dims: &[i64]) -> Type {
    Type::Array(Shape::new(ElementType::F32, dims))
}

/// A module whose entry applies `op` to parameter 0 (`f32[2,3]`) and,
/// when `two`, parameter 1 (`f32[4]`); the node claims type `ty`.
fn module(op: Op, two: bool, ty: Type) -> Module {
    let param = |number: usize, t: Type| Node {
        op: Op::Parameter {
            number,
            name: format!("p{number}"),
            ty: t.clone(),
        },
        operands: vec![],
        ty: t,
        scope: String::new(),
        source: None,
    };
    let mut nodes = vec![param(0, f32t(&[2, 3]))];
    let mut params = vec![0];
    if two {
        nodes.push(param(1, f32t(&[4])));
        params.push(1);
    }
    let operands = (0..nodes.len()).collect();
    nodes.push(Node {
        op,
        operands,
        ty,
        scope: "bad".into(),
        source: None,
    });
    let root = nodes.len() - 1;
    Module {
        name: "malformed".into(),
        computations: vec![Computation {
            name: "main".into(),
            nodes,
            params,
            root,
        }],
        entry: 0,
        num_replicas: 1,
        aliases: vec![],
        tuple_result: false,
    }
}

fn eval(m: &Module) -> Result<Vec<Vec<Value>>, Error> {
    let mut args = vec![Value::from_f32(&[2, 3], vec![1.0; 6]).unwrap()];
    if m.entry().params.len() == 2 {
        args.push(Value::from_f32(&[4], vec![1.0; 4]).unwrap());
    }
    evaluate(m, &[args])
}

#[test]
fn malformed_ops_are_errors_naming_the_op() {
    let conv = Op::Convolution {
        window: Window::new(vec![WindowDim::new(5)]),
        dnums: ConvDims::from_labels("bf_io->bf").unwrap(),
        feature_group_count: 1,
        batch_group_count: 1,
    };
    let cases: Vec<(Op, bool, &str)> = vec![
        (Op::Binary(simclr::ir::BinaryOp::Add), true, "add"),
        (Op::Transpose { perm: vec![0, 0] }, false, "transpose"),
        (Op::Transpose { perm: vec![5, 1] }, false, "transpose"),
        (
            Op::Slice {
                start: vec![0, 2],
                limit: vec![2, 9],
                stride: vec![1, 1],
            },
            false,
            "slice",
        ),
        (
            Op::Broadcast {
                out_dims: vec![3, 3],
                dims: vec![0, 1],
            },
            false,
            "broadcast",
        ),
        (Op::Reshape { dims: vec![7] }, false, "reshape"),
        (Op::Reverse { dims: vec![4] }, false, "reverse"),
        (Op::Dot(DotDims::matmul()), true, "dot"),
        (
            Op::Dot(DotDims {
                lhs_contracting: vec![1, 1],
                rhs_contracting: vec![0, 0],
                ..Default::default()
            }),
            true,
            "dot",
        ),
        (conv, true, "convolution"),
        (
            Op::Pad {
                dims: vec![PadDim::edge(-5, 0), PadDim::edge(0, 0)],
            },
            true,
            "pad",
        ),
        (Op::Concatenate { dim: 3 }, true, "concatenate"),
        (Op::GetTupleElement { index: 0 }, false, "get-tuple-element"),
        (
            Op::DynamicSlice { sizes: vec![3, 1] },
            true,
            "dynamic-slice",
        ),
    ];
    for (op, two, opcode) in cases {
        let m = module(op.clone(), two, f32t(&[2, 3]));
        match eval(&m) {
            Err(Error::At {
                opcode: o, scope, ..
            }) => {
                assert_eq!(o, opcode, "{op:?}");
                assert_eq!(scope, "bad");
            }
            other => panic!("{op:?}: expected an error, got {other:?}"),
        }
    }
}

#[test]
fn a_result_that_contradicts_the_node_type_is_an_error() {
    let m = module(Op::Unary(simclr::ir::UnaryOp::Exp), false, f32t(&[3, 2]));
    let err = eval(&m).unwrap_err();
    assert!(err.to_string().contains("f32[3,2]"), "{err}");
}
