//! Invariants of the model and the step programs that need no TF fixture:
//! cross-replica BN equals BN on the concatenated batch, PJRT equals the
//! reference interpreter for every residual block type, the learning-rate
//! schedule at SPEC §7.5's worked examples (host and traced), frozen
//! variables stay bit-identical when fine-tuning, and a non-finite loss is
//! reported by the step's `nonfinite` metric.

use crate::fixtures_support as support;
use crate::pjrt_common as common;

use simclr::interp::{self, Value};
use simclr::ir::{Builder, ElementType, Module, Shape, Tensor};
use simclr::nn::{layers, resnet, BnMode, ModelConfig, ProjHeadMode, Store};
use simclr::pjrt::HostArray;
use simclr::simclr::schedule::{epoch_steps, train_steps, LrScaling};
use simclr::simclr::{
    train_program, OptimizerConfig, OptimizerKind, Schedule, StepConfig, TrainMode,
};
use simclr::train::{compile, default_compile_options, HostState};
use support::{formula, formula_inputs, Kind};

/// One f32 argument: dims and row-major values.
type Arg = (Vec<i64>, Vec<f32>);

/// Formula values (the fixture's hash, keyed by creation index) for the
/// variables of a store.
fn values_of(store: &Store) -> Vec<Arg> {
    store
        .variables()
        .iter()
        .enumerate()
        .map(|(k, v)| {
            let dims = v.shape.dims.clone();
            let n = v.shape.numel();
            (dims, formula(k as u32 + 1000, n, Kind::of(&v.name)))
        })
        .collect()
}

fn run_pjrt(module: &Module, args: &[Vec<Arg>]) -> Vec<Vec<Vec<f32>>> {
    let client = common::client();
    let exe = client
        .compile(
            &module.to_proto(),
            &default_compile_options(client, args.len()),
        )
        .expect("compiles");
    let host: Vec<Vec<HostArray>> = args
        .iter()
        .map(|list| {
            list.iter()
                .map(|(d, v)| HostArray::from_f32(d, v).expect("array"))
                .collect()
        })
        .collect();
    exe.execute_host(&host)
        .expect("runs")
        .into_iter()
        .map(|l| l.iter().map(|a| a.to_f32().expect("f32")).collect())
        .collect()
}

fn run_interp(module: &Module, args: &[Vec<Arg>]) -> Vec<Vec<Vec<f32>>> {
    let vals: Vec<Vec<Value>> = args
        .iter()
        .map(|list| {
            list.iter()
                .map(|(d, v)| Value::from_f32(d, v.clone()).expect("value"))
                .collect()
        })
        .collect();
    interp::evaluate(module, &vals)
        .expect("interp evaluates")
        .into_iter()
        .map(|l| l.iter().map(|v| v.to_f32_vec().expect("f32")).collect())
        .collect()
}

/// max |a − b| / max |b|, with the index of the largest difference.
fn rel(a: &[f32], b: &[f32]) -> (f64, usize) {
    assert_eq!(a.len(), b.len(), "lengths");
    let scale = b.iter().fold(0.0f64, |m, x| m.max(f64::from(x.abs())));
    let mut worst = (0.0f64, 0usize);
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        let d = f64::from((x - y).abs());
        if d > worst.0 || d.is_nan() {
            worst = (if d.is_nan() { f64::INFINITY } else { d }, i);
        }
    }
    (worst.0 / scale.max(1e-30), worst.1)
}

fn assert_rel(what: &str, got: &[f32], want: &[f32], tol: f64) {
    let (r, at) = rel(got, want);
    assert!(
        r <= tol,
        "{what}: max |diff| is {r:.3e} of max |ref| at flat index {at} (got {}, want {}); tolerance {tol:.1e}",
        got[at],
        want[at]
    );
}

const HW: i64 = 5;
const PER_REPLICA: i64 = 2;

/// conv 3×3 → BN (training mode) → ReLU; outputs y and the two moving
/// statistics.
fn conv_bn(replicas: usize, n: i64, global: bool) -> (Module, Vec<Arg>) {
    let b = Builder::new("conv_bn", replicas);
    let x = b.parameter("x", Shape::new(ElementType::F32, [n, HW, HW, 3]));
    let mut store = Store::new(&b);
    let c = layers::conv2d(&mut store, "base_model", &x, 4, 3, 1);
    let bn = BnMode::Train { global, decay: 0.9 };
    let y = layers::batch_norm(&mut store, "base_model", &c, bn, true, false, true);
    let mut outs = vec![y];
    outs.extend(store.updates().iter().map(|(_, t)| t.clone()));
    let refs: Vec<&Tensor> = outs.iter().collect();
    (b.build(&refs).expect("builds"), values_of(&store))
}

#[test]
fn global_bn_on_four_replicas_equals_bn_on_the_concatenated_batch() {
    let r = 4usize;
    let total = PER_REPLICA * r as i64;
    let per = (PER_REPLICA * HW * HW * 3) as usize;
    // Inputs with a per-replica offset, so local and global moments differ.
    let x: Vec<f32> = formula_inputs(per * r)
        .iter()
        .enumerate()
        .map(|(i, v)| v + (i / per) as f32 * 0.5)
        .collect();
    let (single, vars) = conv_bn(1, total, true);
    let mut args = vec![(vec![total, HW, HW, 3], x.clone())];
    args.extend(vars.iter().cloned());
    let want = run_pjrt(&single, &[args]).remove(0);

    let shards: Vec<Vec<Arg>> = (0..r)
        .map(|k| {
            let mut a = vec![(
                vec![PER_REPLICA, HW, HW, 3],
                x[k * per..(k + 1) * per].to_vec(),
            )];
            a.extend(vars.iter().cloned());
            a
        })
        .collect();
    let (global, _) = conv_bn(r, PER_REPLICA, true);
    let on_pjrt = run_pjrt(&global, &shards);
    let on_interp = run_interp(&global, &shards);
    let ych = (PER_REPLICA * HW * HW * 4) as usize;
    for k in 0..r {
        let rows = &want[0][k * ych..(k + 1) * ych];
        assert_rel(
            &format!("replica {k}: BN output (PJRT)"),
            &on_pjrt[k][0],
            rows,
            1e-5,
        );
        assert_rel(
            &format!("replica {k}: BN output (interp)"),
            &on_interp[k][0],
            rows,
            1e-5,
        );
        for (j, name) in [(1, "moving_mean"), (2, "moving_variance")] {
            assert_rel(
                &format!("replica {k}: {name} (PJRT)"),
                &on_pjrt[k][j],
                &want[j],
                1e-5,
            );
            assert_rel(
                &format!("replica {k}: {name} (interp)"),
                &on_interp[k][j],
                &want[j],
                1e-5,
            );
        }
    }
    // Per-replica BN is visibly different on these inputs.
    let (local, _) = conv_bn(r, PER_REPLICA, false);
    let per_replica = run_interp(&local, &shards);
    let (d, _) = rel(&per_replica[0][1], &want[1]);
    assert!(
        d > 1e-2,
        "local BN moving mean should differ from the global one, got {d:.2e}"
    );
}

/// Three blocks of `cfg`'s type on a 7×7 batch of 2: a stride-1 projection
/// block, a stride-2 projection block and an identity block; PJRT and the
/// interpreter must agree on every output and moving-statistic update.
fn block_case(label: &str, cfg: &ModelConfig, bn: BnMode) {
    let b = Builder::new("blocks", 1);
    let x = b.parameter("x", Shape::new(ElementType::F32, [2, 7, 7, 3]));
    let mut store = Store::new(&b);
    let y0 = resnet::residual_block(&mut store, cfg, &x, 4, 1, true, bn);
    let y1 = resnet::residual_block(&mut store, cfg, &y0, 4, 2, true, bn);
    let y2 = resnet::residual_block(&mut store, cfg, &y1, 4, 1, false, bn);
    let mut outs = vec![y0, y1, y2];
    outs.extend(store.updates().iter().map(|(_, t)| t.clone()));
    let refs: Vec<&Tensor> = outs.iter().collect();
    let module = b.build(&refs).expect("builds");
    let mut args = vec![(vec![2, 7, 7, 3], formula_inputs(2 * 7 * 7 * 3))];
    args.extend(values_of(&store));
    let p = run_pjrt(&module, std::slice::from_ref(&args)).remove(0);
    let i = run_interp(&module, &[args]).remove(0);
    assert_eq!(p.len(), i.len());
    for (k, (a, b)) in p.iter().zip(&i).enumerate() {
        assert!(
            a.iter().all(|v| v.is_finite()),
            "{label}: output {k} is not finite"
        );
        assert_rel(&format!("{label} ({bn:?}): output {k}"), a, b, 1e-5);
    }
}

/// The stem of `cfg` on a `size`×`size` batch of 2: PJRT and the
/// interpreter agree on `initial_conv`, `initial_max_pool` and the
/// moving-statistic updates.
fn stem_case(label: &str, cfg: &ModelConfig, size: i64, bn: BnMode) {
    let b = Builder::new("stem", 1);
    let x = b.parameter("x", Shape::new(ElementType::F32, [2, size, size, 3]));
    let mut store = Store::new(&b);
    let (conv, pooled) = resnet::stem(&mut store, cfg, &x, bn);
    let mut outs = vec![conv, pooled];
    outs.extend(store.updates().iter().map(|(_, t)| t.clone()));
    let refs: Vec<&Tensor> = outs.iter().collect();
    let module = b.build(&refs).expect("builds");
    let n = (2 * size * size * 3) as usize;
    let mut args = vec![(vec![2, size, size, 3], formula_inputs(n))];
    args.extend(values_of(&store));
    let p = run_pjrt(&module, std::slice::from_ref(&args)).remove(0);
    let i = run_interp(&module, &[args]).remove(0);
    for (k, (a, b)) in p.iter().zip(&i).enumerate() {
        assert_rel(&format!("{label} stem ({bn:?}): output {k}"), a, b, 1e-5);
    }
}

#[test]
fn pjrt_matches_the_interpreter_for_every_stem() {
    let base = ModelConfig::default();
    let cases = [
        (
            "CIFAR",
            ModelConfig {
                image_size: 32,
                ..base.clone()
            },
            8,
        ),
        (
            "ImageNet 7x7",
            ModelConfig {
                image_size: 64,
                ..base.clone()
            },
            17,
        ),
        (
            "ResNet-D (SK)",
            ModelConfig {
                image_size: 64,
                sk_ratio: 0.0625,
                ..base.clone()
            },
            17,
        ),
    ];
    for (label, cfg, size) in &cases {
        for bn in [
            BnMode::Train {
                global: true,
                decay: 0.9,
            },
            BnMode::Infer,
        ] {
            stem_case(label, cfg, *size, bn);
        }
    }
}

#[test]
fn pjrt_matches_the_interpreter_for_every_block_type() {
    let base = ModelConfig {
        image_size: 64,
        ..ModelConfig::default()
    };
    let cases = [
        (
            "basic",
            ModelConfig {
                resnet_depth: 18,
                ..base.clone()
            },
        ),
        (
            "basic+SE",
            ModelConfig {
                resnet_depth: 18,
                se_ratio: 0.25,
                ..base.clone()
            },
        ),
        (
            "bottleneck",
            ModelConfig {
                resnet_depth: 50,
                ..base.clone()
            },
        ),
        (
            "SK bottleneck",
            ModelConfig {
                resnet_depth: 50,
                sk_ratio: 0.0625,
                ..base.clone()
            },
        ),
    ];
    for (label, cfg) in &cases {
        for bn in [
            BnMode::Train {
                global: true,
                decay: 0.9,
            },
            BnMode::Infer,
        ] {
            block_case(label, cfg, bn);
        }
    }
}

#[test]
fn learning_rate_at_the_worked_examples_of_spec_7_5() {
    // CIFAR-10: 50,000 images, B 512, 1000 epochs, lr 1.0 linear, warm-up 10.
    // ImageNet: 1,281,167 images, B 4096, 100 epochs, lr 0.075 sqrt, warm-up 10.
    let cases = [
        (
            "CIFAR-10",
            50_000,
            512,
            1000,
            1.0,
            LrScaling::Linear,
            97_657,
            976,
            98,
            2.0,
        ),
        (
            "ImageNet",
            1_281_167,
            4096,
            100,
            0.075,
            LrScaling::Sqrt,
            31_279,
            3_127,
            313,
            4.8,
        ),
    ];
    for (label, n, batch, epochs, lr, scaling, steps, warm, epoch, scaled) in cases {
        let total = train_steps(0, n, epochs, batch);
        assert_eq!(total, steps, "{label}: train steps");
        assert_eq!(epoch_steps(n, batch), epoch, "{label}: epoch steps");
        let s = Schedule::new(lr, scaling, batch, 10.0, n, total);
        assert_eq!(s.warmup_steps, warm, "{label}: warm-up steps");
        assert!(
            (s.scaled_lr - scaled).abs() < 1e-12,
            "{label}: scaled lr {}",
            s.scaled_lr
        );
        assert_eq!(s.lr(0), 0.0, "{label}: lr at step 0");
        assert!(
            (s.lr(warm) - scaled).abs() < 1e-12,
            "{label}: lr at the end of warm-up"
        );
        assert!((s.lr(warm / 2) - scaled * (warm / 2) as f64 / warm as f64).abs() < 1e-12);
        let last = s.lr(total - 1);
        assert!(
            last > 0.0 && last < 1e-8 * scaled,
            "{label}: lr at the last step {last}"
        );
        assert_eq!(s.lr(total), 0.0, "{label}: lr after the last step");
        let mut prev = f64::INFINITY;
        for step in (warm..=total).step_by(97) {
            let v = s.lr(step);
            assert!(v <= prev, "{label}: lr rises after warm-up at step {step}");
            prev = v;
        }

        // The traced schedule on the interpreter.
        let b = Builder::new("lr", 1);
        let step = b.parameter("step", Shape::scalar(ElementType::S64));
        let module = b.build(&[&s.lr_tensor(&step)]).expect("builds");
        for at in [
            0,
            1,
            warm - 1,
            warm,
            warm + 1,
            (warm + total) / 2,
            total - 1,
            total,
        ] {
            let arg = Value::S64(ndarray::ArrayD::from_elem(ndarray::IxDyn(&[]), at));
            let out = interp::evaluate(&module, &[vec![arg]]).expect("evaluates");
            let got = f64::from(out[0][0].to_f32_vec().expect("f32")[0]);
            let want = s.lr(at);
            assert!(
                (got - want).abs() <= 2e-6 * scaled,
                "{label}: traced lr at step {at} is {got}, host {want}"
            );
            if at == 0 {
                assert_eq!(got, 0.0, "{label}: traced lr at step 0");
            }
        }
    }
}

const TINY: i64 = 8;
const TINY_BATCH: i64 = 4;

fn tiny_config(fine_tune_after_block: i32) -> StepConfig {
    StepConfig {
        model: ModelConfig {
            resnet_depth: 18,
            image_size: TINY as u32,
            proj_head_mode: ProjHeadMode::Nonlinear,
            num_proj_layers: 2,
            proj_out_dim: 16,
            num_classes: 5,
            ..ModelConfig::default()
        },
        train_mode: TrainMode::Finetune,
        per_replica_batch: TINY_BATCH,
        num_replicas: 1,
        optimizer: OptimizerConfig {
            kind: OptimizerKind::Lars,
            momentum: 0.9,
            weight_decay: 1e-4,
        },
        schedule: Schedule {
            scaled_lr: 0.01,
            warmup_steps: 0,
            total_steps: 100,
        },
        temperature: 0.5,
        hidden_norm: true,
        global_bn: true,
        batch_norm_decay: 0.9,
        lineareval_while_pretraining: true,
        fine_tune_after_block,
        ft_proj_selector: 0,
        precision: simclr::nn::Precision::Float32,
    }
}

fn tiny_inputs(images: Vec<f32>) -> Vec<Vec<HostArray>> {
    vec![vec![
        HostArray::from_f32(&[TINY_BATCH, TINY, TINY, 3], &images).expect("images"),
        HostArray::from_s32(&[TINY_BATCH], &[0, 3, 1, 4]).expect("labels"),
    ]]
}

#[test]
fn frozen_variables_stay_bit_identical_when_fine_tuning() {
    let client = common::client();
    let images = formula_inputs((TINY_BATCH * TINY * TINY * 3) as usize);
    for k in -1..=4 {
        let program = train_program(&tiny_config(k)).expect("finetune step traces");
        let compiled =
            compile(client, program, &default_compile_options(client, 1)).expect("compiles");
        eprintln!("k={k}: compiled in {:.1} s", compiled.compile_seconds);
        let mut overrides = HostState::new();
        for (i, v) in compiled.program.vars.iter().enumerate() {
            let values = formula(i as u32, v.shape.numel(), Kind::of(&v.name));
            overrides.insert(
                v.name.clone(),
                HostArray::from_f32(&v.shape.dims, &values).expect("var"),
            );
        }
        let mut state = compiled.init_state(client, 0, &overrides).expect("state");
        let before = compiled.download_state(&state).expect("download");
        for step in 0..3 {
            let m = compiled
                .train_step(client, &mut state, &tiny_inputs(images.clone()))
                .expect("step runs");
            let m: std::collections::HashMap<_, _> = m.into_iter().collect();
            assert_eq!(
                m["nonfinite"], 0.0,
                "k={k}: finite loss reports nonfinite = 0"
            );
            let loss = m["supervised_loss"];
            assert!(
                loss.is_finite() && (loss > 0.0 || step > 0),
                "k={k} step {step}: {m:?}"
            );
        }
        let after = compiled.download_state(&state).expect("download");
        let (mut frozen, mut trained) = (0, 0);
        for v in &compiled.program.vars {
            let changed = before[&v.name] != after[&v.name];
            let block = v.block;
            if v.trainable {
                // TF1 (SPEC §8.4): stages ≤ k and the projection head are frozen.
                let should_train = block == 6 || (block <= 4 && block > k);
                assert_eq!(
                    v.optimized, should_train,
                    "k={k}: {} (block {block}) optimized flag",
                    v.name
                );
                if should_train {
                    assert!(changed, "k={k}: trained variable {} did not change", v.name);
                    trained += 1;
                } else {
                    assert!(!changed, "k={k}: frozen variable {} changed", v.name);
                    frozen += 1;
                }
            } else if block <= 4 {
                // Backbone moving statistics: updated in training-mode BN
                // (k < 4, frozen stages included), untouched at k = 4.
                assert_eq!(
                    changed,
                    k < 4,
                    "k={k}: moving statistic {} changed = {changed}",
                    v.name
                );
            }
        }
        assert!(trained > 0, "k={k}: nothing trained");
        assert!(k < 0 || frozen > 0, "k={k}: nothing frozen");
        eprintln!("k={k}: {frozen} frozen and {trained} trained variables checked");

        if k == -1 {
            // A NaN batch makes the loss NaN, which the step reports.
            let mut state = compiled.init_state(client, 0, &overrides).expect("state");
            let nan = vec![f32::NAN; images.len()];
            let m = compiled
                .train_step(client, &mut state, &tiny_inputs(nan))
                .expect("step runs");
            let m: std::collections::HashMap<_, _> = m.into_iter().collect();
            assert!(
                m["total_loss"].is_nan(),
                "NaN images: total loss {}",
                m["total_loss"]
            );
            assert_eq!(m["nonfinite"], 1.0, "NaN images: nonfinite metric");
            let mut inf = images.clone();
            inf[7] = f32::INFINITY;
            let mut state = compiled.init_state(client, 0, &overrides).expect("state");
            let m = compiled
                .train_step(client, &mut state, &tiny_inputs(inf))
                .expect("step runs");
            let m: std::collections::HashMap<_, _> = m.into_iter().collect();
            assert_eq!(
                m["nonfinite"], 1.0,
                "an infinite pixel: nonfinite metric ({m:?})"
            );
        }
    }
}
