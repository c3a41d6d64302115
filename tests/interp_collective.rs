//! Reference evaluator: collectives on 4 replicas run in lockstep
//! (all-reduce, all-gather, reduce-scatter, replica-id, partial groups).

use crate::common;

use common::{f, f32s};
use simclr::interp::{evaluate, Value};
use simclr::ir::{BinaryOp, Builder, ElementType, Op, ReplicaGroups};

const R: usize = 4;

/// Replica r's x = [r*10 + i for i in 0..n].
fn per_replica(dims: &[i64]) -> Vec<Vec<Value>> {
    let n: i64 = dims.iter().product();
    (0..R)
        .map(|r| {
            let v = (0..n).map(|i| (r as i64 * 10 + i) as f32).collect();
            vec![Value::from_f32(dims, v).unwrap()]
        })
        .collect()
}

#[test]
fn all_reduce_all_gather_and_replica_id() {
    let b = Builder::new("coll", R);
    let x = b.parameter("x", f32s(&[2, 2]));
    let sum = x.all_reduce_sum(ReplicaGroups::All);
    let gathered = x.all_gather(0, ReplicaGroups::All);
    let id = b.replica_id().convert(ElementType::F32);
    let maxr = b.reducer(BinaryOp::Maximum, ElementType::F32);
    let mx = x.op(
        Op::AllReduce {
            groups: ReplicaGroups::All,
            reducer: maxr,
        },
        &[],
    );
    let m = b.build(&[&sum, &gathered, &id, &mx]).unwrap();
    let out = evaluate(&m, &per_replica(&[2, 2])).unwrap();
    assert_eq!(out.len(), R);
    for (r, o) in out.iter().enumerate() {
        assert_eq!(f(&o[0]), vec![60.0, 64.0, 68.0, 72.0]);
        assert_eq!(o[1].dims(), vec![8, 2]);
        let want: Vec<f32> = (0..R)
            .flat_map(|q| (0..4).map(move |i| (q * 10 + i) as f32))
            .collect();
        assert_eq!(f(&o[1]), want);
        assert_eq!(f(&o[2]), vec![r as f32]);
        assert_eq!(f(&o[3]), vec![30.0, 31.0, 32.0, 33.0]);
    }
}

#[test]
fn reduce_scatter_keeps_each_replicas_block() {
    let b = Builder::new("rs", R);
    let x = b.parameter("x", f32s(&[4, 3]));
    let y = x.reduce_scatter_sum(0, ReplicaGroups::All);
    let m = b.build(&[&y]).unwrap();
    let out = evaluate(&m, &per_replica(&[4, 3])).unwrap();
    for (r, o) in out.iter().enumerate() {
        assert_eq!(o[0].dims(), vec![1, 3]);
        // Σ_q (q*10 + 3r + j) = 60 + 4(3r + j).
        let want: Vec<f32> = (0..3).map(|j| (60 + 4 * (3 * r + j)) as f32).collect();
        assert_eq!(f(&o[0]), want);
    }
}

#[test]
fn partial_groups_reduce_and_gather_within_the_group() {
    let b = Builder::new("groups", R);
    let x = b.parameter("x", f32s(&[1]));
    let s = x.all_reduce_sum(ReplicaGroups::Groups(vec![vec![0, 1], vec![2, 3]]));
    let g = x.all_gather(0, ReplicaGroups::Groups(vec![vec![0, 2], vec![3, 1]]));
    let m = b.build(&[&s, &g]).unwrap();
    let out = evaluate(&m, &per_replica(&[1])).unwrap();
    let sums = [10.0, 10.0, 50.0, 50.0];
    let gathers = [[0.0, 20.0], [30.0, 10.0], [0.0, 20.0], [30.0, 10.0]];
    for r in 0..R {
        assert_eq!(f(&out[r][0]), vec![sums[r]]);
        assert_eq!(f(&out[r][1]), gathers[r].to_vec());
    }
}
