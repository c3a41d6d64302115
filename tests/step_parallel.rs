//! Data-parallel equivalence of the SimCLR training step on the CPU plugin:
//! with the same global batch, R = 1, 2 and 4 replicas (global BN, gathered
//! negatives, LARS, cross-replica gradient mean) give the same loss,
//! optimizer slots (lr·trust·gradient) and updated parameters, in float32
//! and, within bf16's rounding, in bfloat16.

use crate::pjrt_common as common;

use simclr::nn::{ModelConfig, Precision, ProjHeadMode};
use simclr::pjrt::HostArray;
use simclr::simclr::{
    train_program, OptimizerConfig, OptimizerKind, Schedule, StepConfig, TrainMode,
};
use simclr::train::{compile, default_compile_options, HostState};

const GLOBAL: usize = 8;
const SIZE: usize = 8;

fn config(replicas: usize, precision: Precision) -> StepConfig {
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
        precision,
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

fn run(
    replicas: usize,
    steps: usize,
    precision: Precision,
) -> (Vec<Vec<(&'static str, f64)>>, HostState) {
    let client = common::client();
    let cfg = config(replicas, precision);
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

/// Runs R = 1, 2, 4 for two steps in `precision` and checks that the
/// metrics agree within `metric_tol` (relative, at least 1 absolute; an
/// accuracy within `flips` examples of the global batch) and every
/// variable and slot within `state_tol`.
fn replicas_agree(precision: Precision, metric_tol: f64, flips: usize, state_tol: StateTol) {
    let (m1, s1) = run(1, 2, precision);
    assert!(m1[0].iter().all(|(_, v)| v.is_finite()), "{:?}", m1[0]);
    assert!(
        m1[0][1].1 > 0.0,
        "contrastive loss must be positive: {:?}",
        m1[0]
    );
    for r in [2, 4] {
        let (m, s) = run(r, 2, precision);
        let mut worst_metric = 0.0f64;
        for (step, (a, b)) in m.iter().zip(&m1).enumerate() {
            for ((name, x), (_, y)) in a.iter().zip(b) {
                let e = (x - y).abs() / y.abs().max(1.0);
                if name.ends_with("acc") {
                    let tol = flips as f64 / GLOBAL as f64 + 1e-6;
                    assert!(e <= tol, "R={r} step {step} {name}: {x} vs {y}");
                    continue;
                }
                worst_metric = worst_metric.max(e);
                assert!(e <= metric_tol, "R={r} step {step} {name}: {x} vs {y}");
            }
        }
        let mut worst = (0.0, String::new());
        let (mut diff, mut norm) = (0.0f64, 0.0f64);
        for (name, want) in &s1 {
            let got = &s[name];
            let (Ok(a), Ok(b)) = (got.to_f32(), want.to_f32()) else {
                assert_eq!(got, want, "R={r} {name}");
                continue;
            };
            diff += a
                .iter()
                .zip(&b)
                .map(|(x, y)| f64::from(x - y).powi(2))
                .sum::<f64>();
            norm += b.iter().map(|y| f64::from(*y).powi(2)).sum::<f64>();
            let e = rel_err(&a, &b);
            if e > worst.0 {
                worst = (e, name.clone());
            }
        }
        let global = (diff / norm.max(1e-30)).sqrt();
        eprintln!(
            "{precision:?} R={r}: worst metric error {worst_metric:.2e}, state error {global:.2e} over all variables, worst {:.2e} in {}",
            worst.0, worst.1
        );
        match state_tol {
            StateTol::EachVariable(t) => assert!(
                worst.0 <= t,
                "R={r}: worst relative error {} in {}",
                worst.0,
                worst.1
            ),
            StateTol::AllVariables(t) => {
                assert!(
                    global <= t,
                    "R={r}: relative error {global} over all variables"
                )
            }
        }
    }
}

/// How closely the variables and slots of R replicas must match R = 1's
/// (relative RMS).
#[derive(Clone, Copy)]
enum StateTol {
    /// Every variable on its own.
    EachVariable(f64),
    /// All variables together.
    AllVariables(f64),
}

#[test]
fn one_two_and_four_replicas_take_the_same_steps() {
    replicas_agree(Precision::Float32, 1e-5, 0, StateTol::EachVariable(1e-5));
}

/// In bfloat16 the replicas compute the same per-example convolutions, but
/// the cross-replica sums of the f32 BN moments and gradients add in another
/// order: f32 rounding differences that bf16 activations turn into whole
/// bf16 units (2^-8 relative) here and there. Measured on the CPU plugin
/// (two steps, R = 2 and 4 against R = 1): losses within 6.4e-3 relative,
/// one contrastive prediction of eight flipped, all variables and slots
/// together within 7.1e-3 (relative RMS; a single small BN beta, a sum
/// with cancellation, differs by up to 48 %). The bounds (2e-2, one flip,
/// 2e-2) leave a margin of about 3.
#[test]
fn one_two_and_four_replicas_take_the_same_steps_in_bfloat16() {
    replicas_agree(Precision::Bfloat16, 2e-2, 1, StateTol::AllVariables(2e-2));
}
