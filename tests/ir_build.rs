//! Building programs with the `Tensor` API: shape rules, recorded errors,
//! name scopes and lowering to `HloModuleProto`.

use simclr::ir::{Builder, ElementType, Error, ReplicaGroups, Shape};

fn f32s(dims: &[i64]) -> Shape {
    Shape::new(ElementType::F32, dims)
}

#[test]
fn broadcasting_add_builds_explicit_broadcasts() {
    let b = Builder::new("bcast", 1);
    let x = b.parameter("x", f32s(&[2, 3]));
    let bias = b.parameter("bias", f32s(&[3]));
    let y = (&x + &bias) * 2.0;
    assert_eq!(y.dims(), vec![2, 3]);
    let m = b.build(&[&y]).expect("valid program");
    let opcodes: Vec<&str> = m.entry().nodes.iter().map(|n| n.op.opcode()).collect();
    assert!(opcodes.contains(&"broadcast"), "{opcodes:?}");
    let p = m.to_proto();
    assert_eq!(
        p.computations.last().map(|c| c.id),
        Some(p.entry_computation_id)
    );
    assert_eq!(
        p.host_program_shape
            .as_ref()
            .map(|s| s.parameter_names.clone()),
        Some(vec!["x".to_string(), "bias".to_string()])
    );
}

#[test]
fn mismatched_shapes_name_the_op_scope_and_shapes() {
    let b = Builder::new("bad", 1);
    let _g = b.scope("base_model");
    let x = b.parameter("x", f32s(&[2, 3]));
    let w = b.parameter("w", f32s(&[4, 5]));
    let y = x.matmul(&w);
    assert!(y.is_poisoned());
    let z = y.exp();
    assert!(z.is_poisoned());
    match b.build(&[&z]) {
        Err(Error::InvalidOp {
            opcode,
            scope,
            detail,
            operands,
            ..
        }) => {
            assert_eq!(opcode, "dot");
            assert_eq!(scope, "base_model");
            assert!(detail.contains("does not match"), "{detail}");
            assert_eq!(operands, "f32[2,3], f32[4,5]");
        }
        other => panic!("expected InvalidOp, got {other:?}"),
    }
}

#[test]
fn replica_groups_must_cover_every_replica() {
    let b = Builder::new("groups", 4);
    let x = b.parameter("x", f32s(&[2]));
    let y = x.all_reduce_sum(ReplicaGroups::Groups(vec![vec![0, 1], vec![2]]));
    let err = b.build(&[&y]).expect_err("groups do not cover replica 3");
    assert!(err.to_string().contains("all-reduce"), "{err}");
}

#[test]
fn scopes_become_op_names() {
    let b = Builder::new("scoped", 1);
    let x = b.parameter("x", f32s(&[4]));
    let y = {
        let _a = b.scope("base_model");
        let _c = b.scope("block_group1");
        x.exp()
    };
    let m = b.build(&[&y]).expect("valid");
    let p = m.to_proto();
    let entry = p.computations.last().expect("entry");
    let exp = entry
        .instructions
        .iter()
        .find(|i| i.opcode == "exponential")
        .expect("exp instruction");
    let md = exp.metadata.as_ref().expect("metadata");
    assert_eq!(md.op_name, "base_model/block_group1/exponential");
    assert!(
        md.source_file.ends_with("ir_build.rs"),
        "{}",
        md.source_file
    );
}

#[test]
fn unused_nodes_are_pruned_but_parameters_stay() {
    let b = Builder::new("prune", 1);
    let x = b.parameter("x", f32s(&[4]));
    let unused = b.parameter("unused", f32s(&[4]));
    let _dead = unused.exp();
    let y = x.neg();
    let m = b.build(&[&y]).expect("valid");
    assert_eq!(m.entry().params.len(), 2);
    assert!(!m
        .entry()
        .nodes
        .iter()
        .any(|n| n.op.opcode() == "exponential"));
}
