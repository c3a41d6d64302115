//! Replicated execution on 4 CPU devices: a cross-replica all-reduce (sum)
//! and an all-gather along dim 0, compiled with num_replicas = 4; every
//! replica must see the right values.

use crate::pjrt_common as common;

use common::{client, shape, ModuleBuilder};
use simclr::pjrt::{CompileOptions, HostArray};
use simclr::proto::{HloInstructionProto, PrimitiveType::F32, ReplicaGroup};

const R: usize = 4;

fn all_replicas() -> Vec<ReplicaGroup> {
    vec![ReplicaGroup {
        replica_ids: (0..R as i64).collect(),
    }]
}

#[test]
fn all_reduce_sum_gives_the_total_on_every_replica() {
    let mut b = ModuleBuilder::new();
    let add = b.add_computation(F32);
    let mut e = b.comp("main");
    let x = b.param(&mut e, 0, shape(F32, &[3]));
    let r = b.push(
        &mut e,
        HloInstructionProto {
            opcode: "all-reduce".into(),
            shape: Some(shape(F32, &[3])),
            operand_ids: vec![x],
            called_computation_ids: vec![add],
            replica_groups: all_replicas(),
            ..Default::default()
        },
    );
    let module = b.module("all_reduce", e, r);
    let c = client();
    let exe = c
        .compile(&module, &CompileOptions::new(R))
        .expect("compile");
    assert_eq!(
        exe.devices().iter().map(|d| d.id).collect::<Vec<_>>(),
        vec![0, 1, 2, 3]
    );
    // Replica d holds [1, 2, 3] + 100 d.
    let args: Vec<Vec<HostArray>> = (0..R)
        .map(|d| {
            let base = 100.0 * d as f32;
            vec![HostArray::from_f32(&[3], &[1.0 + base, 2.0 + base, 3.0 + base]).unwrap()]
        })
        .collect();
    let out = exe.execute_host(&args).expect("execute");
    assert_eq!(out.len(), R);
    for (replica, outputs) in out.iter().enumerate() {
        assert_eq!(
            outputs[0].to_f32().unwrap(),
            vec![604.0, 608.0, 612.0],
            "replica {replica}"
        );
    }
}

#[test]
fn all_gather_concatenates_in_replica_order_on_every_replica() {
    let mut b = ModuleBuilder::new();
    let mut e = b.comp("main");
    let x = b.param(&mut e, 0, shape(F32, &[2, 3]));
    let g = b.push(
        &mut e,
        HloInstructionProto {
            opcode: "all-gather".into(),
            shape: Some(shape(F32, &[2 * R as i64, 3])),
            operand_ids: vec![x],
            dimensions: vec![0],
            replica_groups: all_replicas(),
            ..Default::default()
        },
    );
    let module = b.module("all_gather", e, g);
    let c = client();
    let exe = c
        .compile(&module, &CompileOptions::new(R))
        .expect("compile");
    let rows = |d: usize| -> Vec<f32> { (0..6).map(|i| (10 * d + i) as f32).collect() };
    let args: Vec<Vec<HostArray>> = (0..R)
        .map(|d| vec![HostArray::from_f32(&[2, 3], &rows(d)).unwrap()])
        .collect();
    let out = exe.execute_host(&args).expect("execute");
    let expected: Vec<f32> = (0..R).flat_map(rows).collect();
    for (replica, outputs) in out.iter().enumerate() {
        assert_eq!(outputs[0].dims, vec![8, 3], "replica {replica}");
        assert_eq!(outputs[0].to_f32().unwrap(), expected, "replica {replica}");
    }
}
