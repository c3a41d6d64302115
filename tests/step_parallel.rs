//! Data-parallel equivalence of the SimCLR training step on the CPU plugin:
//! with the same global batch, R = 1, 2 and 4 replicas (global BN, gathered
//! negatives, LARS, cross-replica gradient mean) give the same loss,
//! optimizer slots (lr·trust·gradient) and updated parameters.

use crate::pjrt_common as common;

use simclr::nn::{ModelConfig, ProjHeadMode};
use simclr::pjrt::HostArray;
use simclr::simclr::{
    train_program, OptimizerConfig, OptimizerKind, Schedule, StepConfig, TrainMode,
};
use simclr::train::{compile, default_compile_options, HostState};

const GLOBAL: usize = 8;
const SIZE: usize = 8;

fn config(replicas: usize) -> StepConfig {
    StepConfig {
        model: ModelConfig {
            resnet_depth: 18,
            image_size: SIZE as u32,
            num_classes: 10,
            proj_head_mode: ProjHeadMode::Nonlinear,
            num_proj_layers: 2,
            proj_out_dim: 32,
            ..ModelConfig::default()
        },
        train_mode: TrainMode::Pretrain,
        per_replica_batch: (GLOBAL / replicas) as i64,
        num_replicas: replicas,
        optimizer: OptimizerConfig {
            kind: OptimizerKind::Lars,
            momentum: 0.9,
            weight_decay: 1e-4,
        },
        schedule: Schedule {
            scaled_lr: 0.5,
            warmup_steps: 0,
            total_steps: 100,
        },
        temperature: 0.5,
        hidden_norm: true,
        global_bn: true,
        batch_norm_decay: 0.9,
        lineareval_while_pretraining: true,
        fine_tune_after_block: -1,
        ft_proj_selector: 0,
        precision: simclr::nn::Precision::Float32,
    }
}

/// Deterministic pseudo-images in [0, 1) and labels for the global batch:
/// `views[v][example]`.
fn global_batch() -> (Vec<Vec<Vec<f32>>>, Vec<i32>) {
    let per = SIZE * SIZE * 3;
    let mut x: u32 = 12345;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        (x >> 8) as f32 / (1u32 << 24) as f32
    };
    let views = (0..2)
        .map(|_| {
            (0..GLOBAL)
                .map(|_| (0..per).map(|_| next()).collect())
                .collect()
        })
        .collect();
    let labels = (0..GLOBAL as i32).map(|i| i % 10).collect();
    (views, labels)
}

fn run(replicas: usize, steps: usize) -> (Vec<Vec<(&'static str, f64)>>, HostState) {
    let client = common::client();
    let cfg = config(replicas);
    let program = train_program(&cfg).expect("pretrain step traces");
    let compiled =
        compile(client, program, &default_compile_options(client, replicas)).expect("compiles");
    let mut state = compiled
        .init_state(client, 0, &HostState::new())
        .expect("state");
    let (views, labels) = global_batch();
    let n = GLOBAL / replicas;
    let s = SIZE as i64;
    let mut metrics = vec![];
    for _ in 0..steps {
        let inputs: Vec<Vec<HostArray>> = (0..replicas)
            .map(|r| {
                let mut img = vec![];
                for view in &views {
                    for ex in &view[r * n..(r + 1) * n] {
                        img.extend_from_slice(ex);
                    }
                }
                vec![
                    HostArray::from_f32(&[2 * n as i64, s, s, 3], &img).expect("images"),
                    HostArray::from_s32(&[n as i64], &labels[r * n..(r + 1) * n]).expect("labels"),
                ]
            })
            .collect();
        metrics.push(
            compiled
                .train_step(client, &mut state, &inputs)
                .expect("step runs"),
        );
    }
    (metrics, compiled.download_state(&state).expect("download"))
}

fn rel_err(a: &[f32], b: &[f32]) -> f64 {
    let num: f64 = a.iter().zip(b).map(|(x, y)| f64::from(x - y).powi(2)).sum();
    let den: f64 = b.iter().map(|y| f64::from(*y).powi(2)).sum();
    (num / den.max(1e-30)).sqrt()
}

#[test]
fn one_two_and_four_replicas_take_the_same_steps() {
    let (m1, s1) = run(1, 2);
    assert!(m1[0].iter().all(|(_, v)| v.is_finite()), "{:?}", m1[0]);
    assert!(
        m1[0][1].1 > 0.0,
        "contrastive loss must be positive: {:?}",
        m1[0]
    );
    for r in [2, 4] {
        let (m, s) = run(r, 2);
        for (step, (a, b)) in m.iter().zip(&m1).enumerate() {
            for ((name, x), (_, y)) in a.iter().zip(b) {
                let tol = 1e-5 * y.abs().max(1.0);
                assert!((x - y).abs() <= tol, "R={r} step {step} {name}: {x} vs {y}");
            }
        }
        let mut worst = (0.0, String::new());
        for (name, want) in &s1 {
            let got = &s[name];
            let (Ok(a), Ok(b)) = (got.to_f32(), want.to_f32()) else {
                assert_eq!(got, want, "R={r} {name}");
                continue;
            };
            let e = rel_err(&a, &b);
            if e > worst.0 {
                worst = (e, name.clone());
            }
        }
        assert!(
            worst.0 <= 1e-5,
            "R={r}: worst relative error {} in {}",
            worst.0,
            worst.1
        );
        eprintln!("R={r}: worst relative error {:.2e} in {}", worst.0, worst.1);
    }
}
