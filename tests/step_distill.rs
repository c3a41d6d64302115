//! The distillation step (SimCLRv2's third stage) on the CPU plugin: the
//! loss, its metrics and its gradient against an f64 reference written
//! here; the teacher's variables and BN statistics bit-identical after
//! training steps while the student's change; R = 1, 2, 4 replicas giving
//! the same losses; teachers read from a simclr checkpoint and from one
//! written by real TensorFlow (`tools/tf_ckpt/run`), and a teacher whose
//! classes do not match the dataset refused with a clear message.

use crate::pjrt_common as common;

use simclr::ckpt;
use simclr::ir::{Builder, ElementType, Shape};
use simclr::nn::init::initial_values;
use simclr::nn::{variables, ModelConfig, ProjHeadMode};
use simclr::pjrt::HostArray;
use simclr::simclr::loss::distill_objective;
use simclr::simclr::{
    distill_program, DistillConfig, OptimizerConfig, OptimizerKind, Schedule, StepConfig, TrainMode,
};
use simclr::train::teacher::{Teacher, TeacherOverrides};
use simclr::train::{compile, default_compile_options, Compiled, HostState};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

const SIZE: i64 = 8;
const GLOBAL: i64 = 8;
const CLASSES: u32 = 10;

fn tmpdir(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("step_distill_{name}"));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("tmp dir");
    d
}

/// Deterministic values in [lo, hi).
fn uniform(n: usize, seed: u32, lo: f32, hi: f32) -> Vec<f32> {
    let mut x: u32 = seed.wrapping_mul(2654435761).max(1);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            lo + (hi - lo) * ((x >> 8) as f32 / (1u32 << 24) as f32)
        })
        .collect()
}

// ---------------------------------------------------------------- reference

fn softmax(row: &[f64], tau: f64) -> Vec<f64> {
    let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = row.iter().map(|v| ((v - m) / tau).exp()).collect();
    let z: f64 = e.iter().sum();
    e.into_iter().map(|v| v / z).collect()
}

fn argmax(row: &[f64]) -> usize {
    let mut best = 0;
    for (j, v) in row.iter().enumerate() {
        if *v > row[best] {
            best = j;
        }
    }
    best
}

struct Reference {
    loss: f64,
    distill: f64,
    agreement: f64,
    sup: f64,
    sup_acc: f64,
    teacher_acc: f64,
    grad: Vec<f64>,
}

/// The SimCLRv2 objective in f64, written from the paper's formulas:
/// `L = w·L_sup + (1−w)·L_distill`, `L_distill = −1/n Σ_i Σ_y p_T log p_S` at
/// τ, `L_sup` the mean cross-entropy (τ = 1) over the labelled rows.
fn reference(s: &[f64], t: &[f64], y: &[i32], k: usize, tau: f64, w: f64) -> Reference {
    let n = y.len();
    let labelled: Vec<usize> = (0..n).filter(|&i| y[i] >= 0).collect();
    let nl = labelled.len().max(1) as f64;
    let (mut distill, mut agree) = (0.0, 0.0);
    let mut grad = vec![0.0; n * k];
    for i in 0..n {
        let (si, ti) = (&s[i * k..(i + 1) * k], &t[i * k..(i + 1) * k]);
        let (ps, pt) = (softmax(si, tau), softmax(ti, tau));
        for j in 0..k {
            distill -= pt[j] * ps[j].ln() / n as f64;
            // d/ds of −Σ p_T log softmax(s/τ) = (p_S − p_T)/τ.
            grad[i * k + j] += (1.0 - w) * (ps[j] - pt[j]) / (tau * n as f64);
        }
        agree += f64::from(u8::from(argmax(si) == argmax(ti))) / n as f64;
    }
    let (mut sup, mut sup_acc, mut t_acc) = (0.0, 0.0, 0.0);
    for &i in &labelled {
        let (si, ti) = (&s[i * k..(i + 1) * k], &t[i * k..(i + 1) * k]);
        let p = softmax(si, 1.0);
        let yi = y[i] as usize;
        sup -= p[yi].ln() / nl;
        sup_acc += f64::from(u8::from(argmax(si) == yi)) / nl;
        t_acc += f64::from(u8::from(argmax(ti) == yi)) / nl;
        for j in 0..k {
            let onehot = f64::from(u8::from(j == yi));
            grad[i * k + j] += w * (p[j] - onehot) / nl;
        }
    }
    Reference {
        loss: w * sup + (1.0 - w) * distill,
        distill,
        agreement: agree,
        sup,
        sup_acc,
        teacher_acc: t_acc,
        grad,
    }
}

#[test]
fn distillation_loss_metrics_and_gradient_match_an_f64_reference() {
    let client = common::client();
    let (n, k) = (12usize, 7usize);
    let s = uniform(n * k, 1, -3.0, 3.0);
    let t = uniform(n * k, 2, -4.0, 4.0);
    // Five unlabelled rows; labels otherwise spread over the classes.
    let y: Vec<i32> = (0..n as i32)
        .map(|i| {
            if i % 5 == 1 || i == 8 {
                -1
            } else {
                (i * 3) % k as i32
            }
        })
        .collect();
    let s64: Vec<f64> = s.iter().map(|&v| f64::from(v)).collect();
    let t64: Vec<f64> = t.iter().map(|&v| f64::from(v)).collect();
    for (tau, w) in [(1.0, 0.0), (2.0, 0.0), (0.5, 0.0), (4.0, 0.3), (1.0, 1.0)] {
        let b = Builder::new("distill_objective", 1);
        let sp = b.parameter("s", Shape::new(ElementType::F32, [n as i64, k as i64]));
        let tp = b.parameter("t", Shape::new(ElementType::F32, [n as i64, k as i64]));
        let yp = b.parameter("y", Shape::new(ElementType::S32, [n as i64]));
        let o = distill_objective(&sp, &tp, &yp, tau, w, 1);
        let g = simclr::ad::grad(&o.loss, std::slice::from_ref(&sp)).expect("gradient");
        let module = b
            .build(&[
                &o.loss,
                &o.distill_loss,
                &o.agreement,
                &o.supervised_loss,
                &o.supervised_acc,
                &o.teacher_acc,
                &g[0],
            ])
            .expect("builds");
        let exe = client
            .compile(&module.to_proto(), &default_compile_options(client, 1))
            .expect("compiles");
        let out = exe
            .execute_host(&[vec![
                HostArray::from_f32(&[n as i64, k as i64], &s).expect("s"),
                HostArray::from_f32(&[n as i64, k as i64], &t).expect("t"),
                HostArray::from_s32(&[n as i64], &y).expect("y"),
            ]])
            .expect("runs");
        let v: Vec<Vec<f32>> = out[0].iter().map(|a| a.to_f32().expect("f32")).collect();
        let r = reference(&s64, &t64, &y, k, tau, w);
        let close = |what: &str, got: f32, want: f64| {
            assert!(
                (f64::from(got) - want).abs() <= 2e-6 * want.abs().max(1.0),
                "τ={tau} w={w}: {what} {got} vs reference {want}"
            );
        };
        close("loss", v[0][0], r.loss);
        close("distill_loss", v[1][0], r.distill);
        close("agreement", v[2][0], r.agreement);
        close("supervised_loss", v[3][0], r.sup);
        close("supervised_acc", v[4][0], r.sup_acc);
        close("teacher_acc", v[5][0], r.teacher_acc);
        let scale = r.grad.iter().fold(0.0f64, |m, g| m.max(g.abs()));
        assert!(scale > 1e-4, "τ={tau} w={w}: a non-trivial gradient");
        for (j, (got, want)) in v[6].iter().zip(&r.grad).enumerate() {
            assert!(
                (f64::from(*got) - want).abs() <= 1e-5 * scale,
                "τ={tau} w={w}: gradient [{j}] {got} vs reference {want}"
            );
        }
        // The temperature and the weight change the value (the test can fail).
        if w == 0.0 && tau != 1.0 {
            let plain = reference(&s64, &t64, &y, k, 1.0, 0.0);
            assert!((plain.loss - r.loss).abs() > 1e-3, "τ={tau} matters");
        }
    }
}

// --------------------------------------------------------- the step program

fn student_config(replicas: usize) -> StepConfig {
    StepConfig {
        model: ModelConfig {
            resnet_depth: 18,
            image_size: SIZE as u32,
            proj_head_mode: ProjHeadMode::Nonlinear,
            num_proj_layers: 2,
            proj_out_dim: 16,
            num_classes: CLASSES,
            ..ModelConfig::default()
        },
        train_mode: TrainMode::Distill,
        per_replica_batch: GLOBAL / replicas as i64,
        num_replicas: replicas,
        optimizer: OptimizerConfig {
            kind: OptimizerKind::Lars,
            momentum: 0.9,
            weight_decay: 1e-4,
        },
        schedule: Schedule {
            scaled_lr: 0.2,
            warmup_steps: 0,
            total_steps: 100,
        },
        temperature: 0.1,
        hidden_norm: true,
        global_bn: true,
        batch_norm_decay: 0.9,
        lineareval_while_pretraining: false,
        fine_tune_after_block: -1,
        ft_proj_selector: 0,
        precision: simclr::nn::Precision::Float32,
    }
}

/// A bigger teacher (2× wide, one head layer feeding its supervised head),
/// written as a simclr checkpoint that records `--ft_proj_selector=-1`.
fn simclr_teacher(dir: &Path) -> Teacher {
    let cfg = ModelConfig {
        resnet_depth: 18,
        width_multiplier: 2,
        image_size: 32,
        num_proj_layers: 1,
        proj_out_dim: 24,
        num_classes: CLASSES,
        ..ModelConfig::default()
    };
    let mut tensors = BTreeMap::new();
    let vars = simclr::nn::variables_selecting(&cfg, -1).expect("teacher builds");
    for (i, v) in vars.iter().enumerate() {
        let values = initial_values(&v.init, v.shape.numel(), 7, i as u64);
        let dims: Vec<u64> = v.shape.dims.iter().map(|&d| d as u64).collect();
        let values = if v.name == "head_supervised/linear_layer/dense/bias" {
            // A confident teacher: logits apart by a few units.
            uniform(values.len(), 11, -3.0, 3.0)
        } else if v.name.ends_with("moving_mean") || v.name.ends_with("/beta") {
            // Non-trivial statistics, so that inference-mode BN matters.
            uniform(values.len(), i as u32, -0.1, 0.1)
        } else {
            values
        };
        tensors.insert(
            v.name.clone(),
            ckpt::Tensor::from_f32(&dims, &values).expect("tensor"),
        );
    }
    tensors.insert("global_step".into(), ckpt::Tensor::scalar_i64(300));
    let meta = serde_json::json!({"flags": {"ft_proj_selector": -1, "train_mode": "finetune"}});
    ckpt::native::save(dir, 300, &tensors, &meta, 1).expect("save teacher");
    let t = Teacher::load(dir, &TeacherOverrides::default(), SIZE as u32, CLASSES)
        .expect("simclr teacher loads");
    assert_eq!(t.format, "native");
    assert_eq!(t.ft_proj_selector, -1, "the recorded selector is used");
    assert_eq!(t.global_step, Some(300));
    assert_eq!(
        t.model,
        ModelConfig {
            image_size: SIZE as u32,
            ..cfg
        },
        "architecture inferred from the checkpoint"
    );
    for (name, v) in &tensors {
        if name != "global_step" {
            let got = &t.values[&format!("teacher/{name}")];
            assert_eq!(got.bytes, v.bytes, "{name} restored bit for bit");
        }
    }
    t
}

fn distill_config(t: &Teacher, label_weight: f64) -> DistillConfig {
    DistillConfig {
        teacher: t.model.clone(),
        teacher_ft_proj_selector: t.ft_proj_selector,
        temperature: 2.0,
        label_weight,
    }
}

fn compiled(replicas: usize, d: &DistillConfig) -> Compiled {
    let client = common::client();
    let program = distill_program(&student_config(replicas), d).expect("distill step traces");
    let c = compile(client, program, &default_compile_options(client, replicas)).expect("compiles");
    eprintln!("R={replicas}: compiled in {:.1} s", c.compile_seconds);
    c
}

/// The global batch: images and labels (−1: unlabelled), split over R.
fn inputs(replicas: usize, labels: &[i32]) -> Vec<Vec<HostArray>> {
    let per = (SIZE * SIZE * 3) as usize;
    let images = uniform(GLOBAL as usize * per, 9, 0.0, 1.0);
    let n = GLOBAL as usize / replicas;
    (0..replicas)
        .map(|r| {
            vec![
                HostArray::from_f32(
                    &[n as i64, SIZE, SIZE, 3],
                    &images[r * n * per..(r + 1) * n * per],
                )
                .expect("images"),
                HostArray::from_s32(&[n as i64], &labels[r * n..(r + 1) * n]).expect("labels"),
            ]
        })
        .collect()
}

type Metrics = Vec<HashMap<&'static str, f64>>;

fn train(
    c: &Compiled,
    t: &Teacher,
    labels: &[i32],
    steps: usize,
) -> (Metrics, HostState, HostState, HostState) {
    let client = common::client();
    let mut state = c.init_state(client, 3, &t.values).expect("state");
    let before = c.download_state(&state).expect("download");
    let r = c.executable.num_replicas();
    let mut metrics = vec![];
    for _ in 0..steps {
        let m = c
            .train_step(client, &mut state, &inputs(r, labels))
            .expect("step runs");
        metrics.push(m.into_iter().collect::<HashMap<_, _>>());
    }
    let after = c.download_state(&state).expect("download");
    let mut teacher = HostState::new();
    for rep in 0..r {
        for (k, v) in c.download_teacher(&state, rep).expect("teacher") {
            let prev = teacher.insert(k.clone(), v.clone());
            if let Some(p) = prev {
                assert_eq!(p, v, "{k}: replicas hold the same teacher");
            }
        }
    }
    (metrics, before, after, teacher)
}

const LABELS: [i32; GLOBAL as usize] = [0, 2, 3, -1, -1, -1, 4, -1];

#[test]
fn teacher_stays_bit_identical_while_the_student_learns() {
    let dir = tmpdir("frozen");
    let t = simclr_teacher(&dir.join("teacher"));
    let c = compiled(1, &distill_config(&t, 0.0));
    let p = &c.program;
    assert!(!p.teacher_vars.is_empty());
    assert!(p.teacher_vars.iter().all(|v| !v.written && !v.optimized));
    let (metrics, before, after, teacher) = train(&c, &t, &LABELS, 4);
    for m in &metrics {
        assert_eq!(m["nonfinite"], 0.0, "{m:?}");
        assert!(m["distill_loss"] > 0.0, "{m:?}");
    }
    // Fixed batch: the distillation loss falls.
    for name in ["distill_loss", "total_loss"] {
        // (labels are given but weigh nothing: w = 0)
        let d: Vec<f64> = metrics.iter().map(|m| m[name]).collect();
        assert!(d[3] < d[0], "{name} falls on a fixed batch: {d:?}");
    }
    // The teacher's weights and BN statistics, bit for bit.
    assert_eq!(teacher.len(), p.teacher_vars.len());
    for v in &p.teacher_vars {
        let given = &t.values[&format!("teacher/{}", v.name)];
        assert_eq!(&teacher[&v.name], given, "teacher {} changed", v.name);
    }
    // The student: every optimized variable and the backbone BN statistics move.
    let (mut trained, mut stats, mut zero_init) = (0, 0, vec![]);
    for v in &p.vars {
        let changed = before[&v.name] != after[&v.name];
        if v.optimized && !changed {
            // Seen: base_model/batch_normalization_19/gamma (the last block's
            // second BN scale) gets a zero gradient on these 8×8 inputs.
            zero_init.push(v.name.clone());
        } else if v.optimized {
            assert!(changed, "student {} did not change", v.name);
            trained += 1;
        } else if !v.trainable && v.block <= 4 {
            assert!(changed, "student BN statistic {} did not change", v.name);
            stats += 1;
        }
    }
    assert!(
        trained > 10 && stats > 10,
        "{trained} trained, {stats} statistics"
    );
    assert!(
        zero_init.len() <= 2,
        "optimized student variables that did not change: {zero_init:?}"
    );
    eprintln!("{trained} trained; unchanged: {zero_init:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn one_two_and_four_replicas_give_the_same_distillation_losses() {
    let dir = tmpdir("replicas");
    let t = simclr_teacher(&dir.join("teacher"));
    let d = distill_config(&t, 0.3);
    let (m1, _, s1, _) = train(&compiled(1, &d), &t, &LABELS, 2);
    assert!(m1[0]["supervised_loss"] > 0.0 && m1[0]["distill_loss"] > 0.0);
    for r in [2, 4] {
        let (m, _, s, _) = train(&compiled(r, &d), &t, &LABELS, 2);
        for (step, (a, b)) in m.iter().zip(&m1).enumerate() {
            for (name, y) in b {
                let x = a[name];
                assert!(
                    (x - y).abs() <= 2e-5 * y.abs().max(1.0),
                    "R={r} step {step} {name}: {x} vs {y}"
                );
            }
        }
        for name in [
            "head_supervised/linear_layer/dense/kernel",
            "base_model/conv2d/kernel",
        ] {
            let (a, b) = (
                s[name].to_f32().expect("f32"),
                s1[name].to_f32().expect("f32"),
            );
            let num: f64 = a
                .iter()
                .zip(&b)
                .map(|(x, y)| f64::from(x - y).powi(2))
                .sum();
            let den: f64 = b.iter().map(|y| f64::from(*y).powi(2)).sum();
            assert!((num / den).sqrt() < 1e-4, "R={r} {name} after two steps");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn run_tf_tool(args: &[&Path]) -> String {
    let tool = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tools/tf_ckpt/run");
    let o = std::process::Command::new(&tool)
        .args(args)
        .output()
        .expect("tools/tf_ckpt/run starts");
    assert!(
        o.status.success(),
        "tools/tf_ckpt/run {args:?} failed ({}):\n{}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

#[test]
fn tensorflow_teacher_works_and_a_class_mismatch_is_refused() {
    let dir = tmpdir("tf");
    // A fine-tuned ResNet-18 (CIFAR stem, 3-layer head, 10 classes) written
    // by TensorFlow with finite, well-scaled values.
    let cfg = ModelConfig {
        resnet_depth: 18,
        image_size: 32,
        num_classes: CLASSES,
        ..ModelConfig::default()
    };
    let spec: Vec<serde_json::Value> = variables(&cfg)
        .expect("model")
        .iter()
        .map(|v| {
            let d = &v.shape.dims;
            let name = &v.name;
            let mut e = serde_json::json!({"name": name, "shape": d, "dtype": "float32"});
            if name.ends_with("/kernel") {
                let fan_in: i64 = d[..d.len() - 1].iter().product();
                e["scale"] = serde_json::json!(1.0 / (fan_in as f64).sqrt());
            } else if name.ends_with("moving_variance") || name.ends_with("gamma") {
                e["fill"] = serde_json::json!("ones");
            } else {
                e["scale"] = serde_json::json!(0.05);
            }
            e
        })
        .collect();
    let spec = serde_json::json!({"prefix": "model.ckpt", "global_step": 42, "seed": 5, "variables": spec});
    let spec_path = dir.join("spec.json");
    std::fs::write(&spec_path, spec.to_string()).expect("spec");
    let out = dir.join("tf");
    let prefix = run_tf_tool(&[Path::new("make.py"), &spec_path, &out]);
    assert!(prefix.ends_with("model.ckpt-42"), "{prefix}");
    let t = Teacher::load(&out, &TeacherOverrides::default(), SIZE as u32, CLASSES)
        .expect("TF teacher loads");
    assert_eq!(t.format, "tensorflow");
    assert_eq!(t.global_step, Some(42));
    assert_eq!(t.ft_proj_selector, 0);
    assert_eq!(
        t.model,
        ModelConfig {
            image_size: SIZE as u32,
            ..cfg.clone()
        }
    );
    // Bit for bit what TensorFlow was given.
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("values.json")).expect("json"))
            .expect("valid json");
    let blob = std::fs::read(out.join("values.bin")).expect("values.bin");
    let mut checked = 0;
    for (name, e) in manifest["tensors"].as_object().expect("tensors") {
        let (Some(off), Some(size)) = (e["offset"].as_u64(), e["size"].as_u64()) else {
            continue;
        };
        if name == "global_step" {
            continue;
        }
        let got = &t.values[&format!("teacher/{name}")];
        assert_eq!(
            got.bytes,
            blob[off as usize..(off + size) as usize],
            "{name} as TensorFlow wrote it"
        );
        checked += 1;
    }
    assert_eq!(checked, t.values.len());

    // It distils: two steps, finite, the teacher untouched.
    let c = compiled(1, &distill_config(&t, 0.0));
    let (m, before, after, teacher) = train(&c, &t, &[-1; GLOBAL as usize], 2);
    assert!(m.iter().all(|m| m["nonfinite"] == 0.0), "{m:?}");
    assert!(m[0]["distill_loss"] > 0.0, "{m:?}");
    assert_eq!(
        m[0]["supervised_loss"], 0.0,
        "no labels, no supervised loss"
    );
    assert_ne!(
        before["head_supervised/linear_layer/dense/kernel"],
        after["head_supervised/linear_layer/dense/kernel"]
    );
    for (k, v) in &teacher {
        assert_eq!(v, &t.values[&format!("teacher/{k}")], "teacher {k} changed");
    }

    // A teacher of 10 classes for a 5-class dataset.
    let e = Teacher::load(&out, &TeacherOverrides::default(), SIZE as u32, 5)
        .expect_err("class mismatch");
    let msg = e.to_string();
    assert!(
        msg.contains("the teacher has 10 classes but the dataset has 5")
            && msg.contains("--teacher_checkpoint="),
        "{msg}"
    );
    // An overridden architecture the checkpoint cannot fill.
    let e = Teacher::load(
        &out,
        &TeacherOverrides {
            resnet_depth: Some(34),
            ..Default::default()
        },
        SIZE as u32,
        CLASSES,
    )
    .expect_err("depth override");
    assert!(e.to_string().contains("--teacher_*"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}
