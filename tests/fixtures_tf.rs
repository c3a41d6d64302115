//! The TensorFlow reference fixtures (`shared/fixtures/tf-reference`, made by
//! running the original google-research/simclr code; see its README) for
//! ResNet-18 CIFAR on the real CPU plugin: forward taps in training mode and
//! in inference mode, BN moving statistics, NT-Xent loss/logits/labels,
//! gradients, and LARS steps. Tolerances come from
//! `tolerances_observed.json` (the spread between TF's own implementations).
//!
//! Every variable gets the fixture weight formula (`lowbias32` of the TF2
//! sorted index k, mapped to TF1 names with `tf1_variables.json`) and the
//! batch is the fixture input formula.
//!
//! One stem ReLU position has an exact pre-activation of +1.07e-6: this
//! crate's float32 BN puts it above the kink, TF's below, so a whole
//! position's gradient separates the two stem gradients. The gradient and
//! real-step checks verify that every such disagreement is a tie (within
//! `TIE_BAND` of zero in float64) and apply TF's mask to the stem before
//! comparing at TF's own spread.

use crate::fixtures_support as support;
use crate::pjrt_common as common;

use simclr::ir::{Builder, ElementType, Shape, Tensor};
use simclr::nn::{self, BnMode, ForwardOptions, Precision, Store};
use simclr::pjrt::{HostArray, LoadedExecutable};
use simclr::simclr::loss::{nt_xent, one_hot, softmax_cross_entropy};
use simclr::simclr::optim::update;
use simclr::simclr::schedule::LrScaling;
use simclr::simclr::{
    train_program, OptimizerConfig, OptimizerKind, Schedule, StepConfig, TrainMode,
};
use simclr::train::{compile, default_compile_options, HostState};
use std::collections::HashMap;
use std::sync::OnceLock;
use support::{
    assert_close, formula_images, r18, tf1_dir, tf2_dir, Arr, Fixture, Tolerances, BATCH,
};

/// Named outputs of one run of a probe program.
type Outputs = HashMap<String, (Vec<i64>, Vec<f32>)>;

/// A compiled forward program that exposes the fixture's taps.
struct Probe {
    exe: LoadedExecutable,
    names: Vec<String>,
    vars: Vec<(String, Vec<i64>)>,
}

/// The fixture's supervised labels (images 0 and 1; the original repeats
/// them for the second view).
const SUP_LABELS: [usize; 2] = [3, 7];

/// Traces the ResNet-18 forward with every fixture tap; in training mode
/// also the moving-statistic updates and the gradients of the full loss of
/// the original `single_step` (contrastive + supervised CE + the supervised
/// kernel's L2 term; its non-head gradients are the contrastive ones).
fn build_probe(train: bool) -> Probe {
    build_probe_in(train, Precision::Float32)
}

/// The probe traced in `precision`; bf16 outputs are handed back as f32.
fn build_probe_in(train: bool, precision: Precision) -> Probe {
    let b = Builder::new(if train { "probe_train" } else { "probe_infer" }, 1);
    let images = b.parameter(
        "images",
        Shape::new(ElementType::F32, [BATCH as i64, 32, 32, 3]),
    );
    let mut store = Store::new(&b).with_precision(precision);
    let bn = if train {
        BnMode::Train {
            global: true,
            decay: 0.9,
        }
    } else {
        BnMode::Infer
    };
    let opts = ForwardOptions {
        backbone_bn: bn,
        head_bn: bn,
        ft_proj_selector: 0,
        fine_tune_after_block: -1,
        stop_supervised_input: true,
    };
    let out = nn::forward(&mut store, &r18(), &images, &opts).expect("ResNet-18 traces");
    let c = nt_xent(&out.proj_head_output, true, 0.5, false);
    let mut named: Vec<(String, Tensor)> = vec![
        ("final_avg_pool".into(), out.backbone.final_avg_pool.clone()),
        ("initial_conv".into(), out.backbone.initial_conv.clone()),
        (
            "initial_max_pool".into(),
            out.backbone.initial_max_pool.clone(),
        ),
    ];
    for (i, g) in out.backbone.block_groups.iter().enumerate() {
        named.push((format!("block_group{}", i + 1), g.clone()));
    }
    for (j, l) in out.proj_layers.iter().enumerate() {
        named.push((format!("proj_nl_{j}_dense"), l.dense.clone()));
        named.push((format!("proj_nl_{j}_bn"), l.bn.clone()));
        named.push((format!("proj_nl_{j}_out"), l.out.clone()));
    }
    named.push(("proj_head_output".into(), out.proj_head_output.clone()));
    named.push(("logits_sup".into(), out.logits_sup.clone()));
    named.push(("contrastive_loss".into(), c.loss.clone()));
    named.push(("logits_con".into(), c.logits_ab.clone()));
    named.push(("labels_con".into(), one_hot(&c.labels, 4)));
    let vars = store.variables().to_vec();
    if train {
        for (i, t) in store.updates() {
            named.push((format!("moving:{}", vars[*i].name), t.clone()));
        }
        let mut targets = vec![0f32; BATCH * 10];
        for r in 0..BATCH {
            targets[r * 10 + SUP_LABELS[r % 2]] = 1.0;
        }
        let targets = b.constant_f32(&[BATCH as i64, 10], &targets);
        let sup = softmax_cross_entropy(&out.logits_sup, &targets, None);
        let kernel = vars
            .iter()
            .find(|v| v.name == "head_supervised/linear_layer/dense/kernel")
            .expect("supervised kernel")
            .tensor
            .clone();
        let wd = (&kernel * &kernel).sum_all() * (0.5 * 1e-4);
        let total = &c.loss + &sup + &wd;
        let trainable: Vec<&nn::Variable> = vars.iter().filter(|v| v.trainable).collect();
        let wrt: Vec<Tensor> = trainable.iter().map(|v| v.tensor.clone()).collect();
        let grads = simclr::ad::grad(&total, &wrt).expect("gradients trace");
        for (v, g) in trainable.iter().zip(grads) {
            named.push((format!("grad:{}", v.name), g));
        }
        let gh = simclr::ad::grad(
            &c.loss,
            std::slice::from_ref(&out.backbone.initial_max_pool),
        )
        .expect("gradient at the stem output");
        named.push(("grad:stem_output".into(), gh[0].clone()));
        named.push(("supervised_loss".into(), sup));
        named.push(("weight_decay".into(), wd));
        named.push(("total_loss".into(), total));
    }
    for (_, t) in named.iter_mut() {
        if t.element_type() == ElementType::Bf16 {
            *t = t.convert(ElementType::F32);
        }
    }
    let refs: Vec<&Tensor> = named.iter().map(|(_, t)| t).collect();
    let module = b.build(&refs).expect("probe builds");
    let client = common::client();
    let exe = client
        .compile(&module.to_proto(), &default_compile_options(client, 1))
        .expect("probe compiles");
    Probe {
        exe,
        names: named.into_iter().map(|(n, _)| n).collect(),
        vars: vars
            .iter()
            .map(|v| (v.name.clone(), v.shape.dims.clone()))
            .collect(),
    }
}

impl Probe {
    fn run(&self, values: &HashMap<String, Vec<f32>>) -> Outputs {
        let mut args = vec![
            HostArray::from_f32(&[BATCH as i64, 32, 32, 3], &formula_images()).expect("images"),
        ];
        for (name, dims) in &self.vars {
            let v = values
                .get(name)
                .unwrap_or_else(|| panic!("no value for variable {name}"));
            args.push(HostArray::from_f32(dims, v).expect("variable array"));
        }
        let outs = self.exe.execute_host(&[args]).expect("probe runs");
        self.names
            .iter()
            .zip(&outs[0])
            .map(|(n, a)| (n.clone(), (a.dims.clone(), a.to_f32().expect("f32 output"))))
            .collect()
    }
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(Fixture::load)
}

fn train_outputs() -> &'static Outputs {
    static O: OnceLock<Outputs> = OnceLock::new();
    O.get_or_init(|| build_probe(true).run(&fixture().formula_values()))
}

/// The training-mode probe traced in bfloat16, on the formula values.
fn train_outputs_bf16() -> &'static Outputs {
    static O: OnceLock<Outputs> = OnceLock::new();
    O.get_or_init(|| build_probe_in(true, Precision::Bfloat16).run(&fixture().formula_values()))
}

/// Inference outputs with the formula moving statistics (`eval_*`) and
/// with the calibrated ones (`eval_calibrated_*`).
fn infer_outputs() -> &'static (Outputs, Outputs) {
    static O: OnceLock<(Outputs, Outputs)> = OnceLock::new();
    O.get_or_init(|| {
        let probe = build_probe(false);
        let f = fixture();
        let plain = probe.run(&f.formula_values());
        let mut calibrated = f.formula_values();
        let stats = support::npz(&tf2_dir().join("eval_calibrated_moving_stats.npz"));
        assert_eq!(stats.len(), 48, "24 BN layers × (mean, variance)");
        for (tf2, arr) in stats {
            let tf1 = f.tf1_name(&tf2);
            let slot = calibrated
                .get_mut(&tf1)
                .unwrap_or_else(|| panic!("{tf1} is not a model variable"));
            assert_eq!(slot.len(), arr.data.len(), "{tf1}: size");
            *slot = arr.data.iter().map(|&x| x as f32).collect();
        }
        (plain, probe.run(&calibrated))
    })
}

fn get<'a>(o: &'a Outputs, name: &str) -> (&'a [i64], &'a [f32]) {
    let (d, v) = o
        .get(name)
        .unwrap_or_else(|| panic!("probe has no output {name}"));
    (d, v)
}

/// Compares every `<prefix>_<tap>` fixture file of `dir` that exists.
fn compare_taps(o: &Outputs, dir: &std::path::Path, prefix: &str, taps: &[&str], tol: &Tolerances) {
    let mut checked = 0;
    for tap in taps {
        let path = dir.join(format!("{prefix}_{tap}.npy"));
        if !path.exists() {
            continue;
        }
        let want = support::npy(&path);
        let (dims, got) = get(o, tap);
        let t = tol.output(prefix, tap);
        assert_close(
            &format!("{}/{prefix}_{tap}", dir.display()),
            dims,
            got,
            &want,
            t,
        );
        checked += 1;
    }
    assert!(
        checked > 0,
        "no {prefix}_* fixture found in {}",
        dir.display()
    );
}

const FORWARD_TAPS: [&str; 18] = [
    "initial_conv",
    "initial_max_pool",
    "block_group1",
    "block_group2",
    "block_group3",
    "block_group4",
    "final_avg_pool",
    "proj_nl_0_dense",
    "proj_nl_0_bn",
    "proj_nl_0_out",
    "proj_nl_1_dense",
    "proj_nl_1_bn",
    "proj_nl_1_out",
    "proj_nl_2_dense",
    "proj_nl_2_bn",
    "proj_nl_2_out",
    "proj_head_output",
    "logits_sup",
];

const LOSS_TAPS: [&str; 3] = ["contrastive_loss", "logits_con", "labels_con"];

#[test]
fn weight_and_input_formulas_match_the_readme_vectors() {
    support::check_formula_vectors();
    let stored = support::npy(&tf2_dir().join("input_images.npy"));
    assert_eq!(stored.shape, vec![BATCH, 32, 32, 3]);
    let ours = formula_images();
    for (i, (a, b)) in ours.iter().zip(&stored.data).enumerate() {
        assert_eq!(f64::from(*a), *b, "input_images.npy element {i}");
    }
}

#[test]
fn training_mode_forward_matches_tf2_and_tf1() {
    let o = train_outputs();
    let tol = Tolerances::load();
    compare_taps(o, &tf2_dir(), "train", &FORWARD_TAPS, &tol);
    compare_taps(o, &tf1_dir(), "train", &FORWARD_TAPS, &tol);
}

/// The training-mode forward pass and contrastive loss traced in bfloat16
/// against TF's float32 fixtures: each tap's largest error relative to its
/// largest value (`max |a − b| / max |b|`). Measured on the CPU plugin:
/// stem 2.4e-3 and 3.9e-3, block groups 7.5e-3 → 3.2e-2, the pooled
/// feature 2.5e-2, the supervised logits 1.6e-2 and the contrastive loss
/// 2.8e-2, all bounded by 0.05. The projection head's BN layers normalise
/// over the fixture's four nearly identical images, so the few per-mille of
/// bf16 error in the feature become a large part of the between-example
/// spread: measured 0.31–0.64 after each BN (0.47 at the head's output,
/// with the head in bf16 or in f32 alike), bounded by 1.0.
#[test]
fn training_mode_forward_in_bfloat16_stays_within_bf16_rounding_of_tf2() {
    let o = train_outputs_bf16();
    let dir = tf2_dir();
    let mut checked = 0;
    for tap in FORWARD_TAPS.iter().chain(&["contrastive_loss"]) {
        let path = dir.join(format!("train_{tap}.npy"));
        if !path.exists() {
            continue;
        }
        let want = support::npy(&path);
        let (_, got) = get(o, tap);
        assert_eq!(got.len(), want.data.len(), "{tap}: size");
        let scale = want.data.iter().fold(0f64, |m, x| m.max(x.abs()));
        let err = got
            .iter()
            .zip(&want.data)
            .fold(0f64, |m, (a, b)| m.max((f64::from(*a) - b).abs()));
        let rel = err / scale.max(1e-30);
        let bound = if tap.starts_with("proj_") { 1.0 } else { 0.05 };
        eprintln!("bf16 train_{tap}: {rel:.2e} of its largest value (bound {bound})");
        assert!(rel.is_finite() && rel <= bound, "train_{tap}: {rel:.3e}");
        checked += 1;
    }
    assert!(
        checked >= 10,
        "only {checked} taps found in {}",
        dir.display()
    );
}

#[test]
fn inference_forward_matches_tf2_eval_and_eval_calibrated() {
    let (plain, calibrated) = infer_outputs();
    let tol = Tolerances::load();
    compare_taps(plain, &tf2_dir(), "eval", &FORWARD_TAPS, &tol);
    compare_taps(plain, &tf1_dir(), "eval", &FORWARD_TAPS, &tol);
    compare_taps(
        calibrated,
        &tf2_dir(),
        "eval_calibrated",
        &FORWARD_TAPS,
        &tol,
    );
}

#[test]
fn contrastive_loss_logits_and_labels_match() {
    let tol = Tolerances::load();
    let o = train_outputs();
    compare_taps(o, &tf2_dir(), "train", &LOSS_TAPS, &tol);
    compare_taps(o, &tf1_dir(), "train", &["logits_con", "labels_con"], &tol);
    let (plain, calibrated) = infer_outputs();
    compare_taps(plain, &tf2_dir(), "eval", &LOSS_TAPS, &tol);
    compare_taps(
        plain,
        &tf1_dir(),
        "eval",
        &["logits_con", "labels_con"],
        &tol,
    );
    compare_taps(calibrated, &tf2_dir(), "eval_calibrated", &LOSS_TAPS, &tol);
    // The TF1 code's recomputed training loss.
    let want = support::npy(&tf1_dir().join("train_contrastive_loss_recomputed.npy"));
    let (d, got) = get(o, "contrastive_loss");
    assert_close(
        "tf1 train_contrastive_loss_recomputed",
        d,
        got,
        &want,
        tol.output("train", "contrastive_loss"),
    );
    // labels_con is exact.
    let (_, labels) = get(o, "labels_con");
    assert_eq!(
        labels,
        &[1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0],
        "labels_con"
    );
}

#[test]
fn bn_moving_statistics_after_one_training_forward() {
    let f = fixture();
    let o = train_outputs();
    let tol = Tolerances::load();
    let want = support::npz(&tf2_dir().join("bn_moving_after_one_train_forward.npz"));
    assert_eq!(want.len(), 4);
    for (tf2, arr) in &want {
        let tf1 = f.tf1_name(tf2);
        let (d, got) = get(o, &format!("moving:{tf1}"));
        assert_close(
            &format!("moving statistic {tf1} ({tf2})"),
            d,
            got,
            arr,
            tol.moving(),
        );
    }
    // Every other layer follows the same rule: with momentum 0.9 from the
    // formula values towards the calibrated (batch) statistics.
    let calibrated = support::npz(&tf2_dir().join("eval_calibrated_moving_stats.npz"));
    let init = f.formula_values();
    for (tf2, batch) in &calibrated {
        let tf1 = f.tf1_name(tf2);
        let start = &init[&tf1];
        let expected = Arr {
            shape: batch.shape.clone(),
            data: start
                .iter()
                .zip(&batch.data)
                .map(|(&m, &s)| f64::from(m) - (f64::from(m) - s) * (1.0 - 0.9))
                .collect(),
        };
        let (d, got) = get(o, &format!("moving:{tf1}"));
        assert_close(
            &format!("moving statistic {tf1} (from calibrated)"),
            d,
            got,
            &expected,
            tol.moving(),
        );
    }
}

/// Half-width of the band around the ReLU kink inside which float32
/// rounding alone decides the side of a BN output (values of scale ~3 carry
/// rounding errors of a few 1e-7, and the batch mean's summation order
/// moves them by about as much).
const TIE_BAND: f64 = 1e-5;

/// The stem ReLU positions whose side of the kink differs between this
/// crate and TF, each checked to lie within [`TIE_BAND`] of zero in exact
/// (float64) arithmetic, and the gradient change that TF's mask implies for
/// the stem variables (TF's minus ours), by TF1 name. A flip moves the
/// stem gradients by a whole position's gradient, far beyond TF's own
/// spread, so the stem is compared after this correction.
fn stem_flip_correction() -> &'static (usize, HashMap<String, Vec<f64>>) {
    static C: OnceLock<(usize, HashMap<String, Vec<f64>>)> = OnceLock::new();
    C.get_or_init(|| {
        let o = train_outputs();
        let values = fixture().formula_values();
        let (_, ours) = get(o, "initial_max_pool");
        let (_, gh) = get(o, "grad:stem_output");
        let theirs = support::npy(&tf2_dir().join("train_initial_max_pool.npy"));
        let conv = support::npy(&tf2_dir().join("train_initial_conv.npy"));
        let gamma = &values["base_model/batch_normalization/gamma"];
        let beta = &values["base_model/batch_normalization/beta"];
        let ch = gamma.len();
        let n = conv.data.len() / ch;
        let (mut mean, mut var) = (vec![0.0f64; ch], vec![0.0f64; ch]);
        for (i, x) in conv.data.iter().enumerate() {
            mean[i % ch] += x / n as f64;
        }
        for (i, x) in conv.data.iter().enumerate() {
            var[i % ch] += (x - mean[i % ch]).powi(2) / n as f64;
        }
        let xhat = |i: usize| (conv.data[i] - mean[i % ch]) / (var[i % ch] + 1e-5).sqrt();
        let mut dy = vec![0.0f64; conv.data.len()];
        let mut flips = 0;
        for i in 0..dy.len() {
            let (a, b) = (ours[i] > 0.0, theirs.data[i] > 0.0);
            if a != b {
                let c = i % ch;
                let pre = f64::from(gamma[c]) * xhat(i) + f64::from(beta[c]);
                assert!(
                    pre.abs() <= TIE_BAND,
                    "stem ReLU at flat index {i}: ours passes = {a}, TF passes = {b}, but the exact pre-activation {pre:.3e} is not a tie"
                );
                dy[i] = if a { -f64::from(gh[i]) } else { f64::from(gh[i]) };
                flips += 1;
            }
        }
        let (mut dbeta, mut dgamma) = (vec![0.0f64; ch], vec![0.0f64; ch]);
        for (i, d) in dy.iter().enumerate() {
            dbeta[i % ch] += d;
            dgamma[i % ch] += d * xhat(i);
        }
        // Training-mode BN backward of the change: Δx = γ/σ·(Δy − mean Δy − x̂·mean(Δy·x̂)).
        let dx: Vec<f64> = (0..dy.len())
            .map(|i| {
                let c = i % ch;
                let s = f64::from(gamma[c]) / (var[c] + 1e-5).sqrt();
                s * (dy[i] - dbeta[c] / n as f64 - xhat(i) * dgamma[c] / n as f64)
            })
            .collect();
        // Δkernel[kh, kw, ci, c] = Σ image(p + (kh−1, kw−1), ci) · Δx(p, c), zero padding.
        let img = formula_images();
        let (h, w, cin) = (32usize, 32usize, 3usize);
        let mut dk = vec![0.0f64; 3 * 3 * cin * ch];
        for (i, d) in dx.iter().enumerate() {
            if *d == 0.0 {
                continue;
            }
            let c = i % ch;
            let p = i / ch;
            let (bi, y, x) = (p / (h * w), (p / w) % h, p % w);
            for kh in 0..3 {
                for kw in 0..3 {
                    let (yy, xx) = (y as i64 + kh as i64 - 1, x as i64 + kw as i64 - 1);
                    if yy < 0 || xx < 0 || yy >= h as i64 || xx >= w as i64 {
                        continue;
                    }
                    for ci in 0..cin {
                        let v = img[((bi * h + yy as usize) * w + xx as usize) * cin + ci];
                        dk[((kh * 3 + kw) * cin + ci) * ch + c] += f64::from(v) * d;
                    }
                }
            }
        }
        let mut m = HashMap::new();
        m.insert("base_model/conv2d/kernel".to_string(), dk);
        m.insert("base_model/batch_normalization/gamma".to_string(), dgamma);
        m.insert("base_model/batch_normalization/beta".to_string(), dbeta);
        eprintln!("stem ReLU positions on the other side of the kink than in TF (ties): {flips}");
        (flips, m)
    })
}

/// Our gradient of `tf1`, with TF's stem ReLU mask applied (see
/// [`stem_flip_correction`]).
fn masked_grad(tf1: &str) -> Vec<f32> {
    let (_, got) = get(train_outputs(), &format!("grad:{tf1}"));
    match stem_flip_correction().1.get(tf1) {
        Some(d) => got
            .iter()
            .zip(d)
            .map(|(g, d)| (f64::from(*g) + d) as f32)
            .collect(),
        None => got.to_vec(),
    }
}

/// Relative L2 error of our gradient `got` (dims `d`) of `v` against TF's:
/// the whole tensor where `grads.npz` has it, else its first 16 entries
/// along the last axis.
fn grad_rel_l2(
    v: &support::VarInfo,
    d: &[i64],
    got: &[f32],
    full: &HashMap<String, support::Arr>,
    sliced: &HashMap<String, support::Arr>,
) -> (f64, String) {
    if let Some(want) = full.get(&v.tf2) {
        return support::rel_l2(&format!("grad {} ({})", v.tf1, v.tf2), d, got, want);
    }
    let want = sliced
        .get(&v.tf2)
        .unwrap_or_else(|| panic!("no stored gradient for {}", v.tf2));
    let last = *d.last().expect("rank ≥ 1") as usize;
    let part: Vec<f32> = got
        .chunks(last)
        .flat_map(|row| row[..16].iter().copied())
        .collect();
    let mut pd = d.to_vec();
    *pd.last_mut().expect("rank ≥ 1") = 16;
    support::rel_l2(
        &format!("grad {} ({}) [..., :16]", v.tf1, v.tf2),
        &pd,
        &part,
        want,
    )
}

/// The supervised head's gradients of `o` against TF's scenario B, each
/// within `tol` relative L2 (printed).
fn assert_scenario_b_head_grads(o: &Outputs, what: &str, tol: f64) {
    for (alias, tf2) in [
        ("kernel", "head_supervised__linear_layer__dense_3__kernel"),
        ("bias", "head_supervised__linear_layer__dense_3__bias"),
    ] {
        let want = support::npy(&tf2_dir().join(format!("scenario_b_grad__{tf2}.npy")));
        let (d, got) = get(
            o,
            &format!("grad:head_supervised/linear_layer/dense/{alias}"),
        );
        let what = format!("{what}scenario B grad head_supervised {alias}");
        let rel = support::assert_rel_l2(&what, d, got, &want, tol);
        eprintln!("{what}: relative L2 error {rel:.2e}");
    }
}

#[test]
fn gradients_match_tf2() {
    let f = fixture();
    let o = train_outputs();
    let tol = Tolerances::load();
    let full = support::npz(&tf2_dir().join("grads.npz"));
    let sliced = support::npz(&tf2_dir().join("grads_slice_last_axis_first16.npz"));
    let summary = support::json(&tf2_dir().join("grads_summary.json"));
    let gtol = tol.gradient();
    let mut worst = (0.0f64, String::new());
    let mut failures = vec![];
    let mut seen = 0;
    for v in &f.vars {
        if !v.trainable || v.tf1.starts_with("head_supervised") {
            continue;
        }
        let (d, _) = get(o, &format!("grad:{}", v.tf1));
        let got = masked_grad(&v.tf1);
        let got = got.as_slice();
        let rel = grad_rel_l2(v, d, got, &full, &sliced);
        eprintln!("{}", rel.1);
        let limit = gtol;
        if rel.0 > limit {
            failures.push(rel.1.clone());
        }
        let rel = rel.0;
        // Whole-tensor summary (float64 L2 norm) for every gradient.
        let s = &summary["stats"][&v.tf2];
        if let Some(l2) = s["l2"].as_f64() {
            let ours = got
                .iter()
                .map(|&x| f64::from(x).powi(2))
                .sum::<f64>()
                .sqrt();
            if (ours - l2).abs() > limit * l2 {
                failures.push(format!(
                    "grad {}: L2 norm {ours:.6e} vs {l2:.6e} (rel {:.2e})",
                    v.tf1,
                    (ours - l2).abs() / l2
                ));
            }
        }
        if rel > worst.0 {
            worst = (rel, v.tf1.clone());
        }
        seen += 1;
    }
    assert_eq!(
        seen,
        full.len() + sliced.len(),
        "every stored gradient is compared (trainable variables on the contrastive path)"
    );
    assert!(
        stem_flip_correction().0 <= 4,
        "too many stem ReLU ties disagree with TF"
    );
    assert!(
        failures.is_empty(),
        "{} gradient checks exceed the tolerance {gtol:.1e}:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!(
        "gradients: worst relative L2 error {:.2e} in {}",
        worst.0, worst.1
    );
    // Scenario B: the supervised head's gradients and the loss terms.
    assert_scenario_b_head_grads(o, "", gtol);
    let meta = support::json(&tf2_dir().join("meta.json"));
    let b = &meta["results"]["scenario_b"];
    for (name, key) in [
        ("supervised_loss", "supervised_loss"),
        ("weight_decay", "weight_decay_term"),
        ("total_loss", "total_loss"),
    ] {
        let want = b[key].as_f64().expect("scenario B value");
        let got = f64::from(get(o, name).1[0]);
        let t = tol.output("train", "contrastive_loss");
        assert!(
            (got - want).abs() <= t * want.abs(),
            "scenario B {name}: {got} vs {want} (rel {:.2e}, tolerance {t:.1e})",
            (got - want).abs() / want.abs()
        );
    }
}

/// The TF2 names of the LARS fixture's `handful` aliases.
fn handful() -> Vec<(String, String)> {
    let lars = support::json(&tf2_dir().join("lars.json"));
    let map = lars["handful"].as_object().expect("handful");
    map.iter()
        .map(|(k, v)| (k.clone(), v.as_str().expect("name").to_string()))
        .collect()
}

fn lars_cfg() -> OptimizerConfig {
    OptimizerConfig {
        kind: OptimizerKind::Lars,
        momentum: 0.9,
        weight_decay: 1e-4,
    }
}

/// The TF1 run's schedule: learning_rate 0.1, linear scaling at B = 256,
/// no warm-up, 1e9 steps, so lr = 0.1 at step 0.
fn fixture_schedule() -> Schedule {
    Schedule::new(0.1, LrScaling::Linear, 256, 0.0, 50_000, 1_000_000_000)
}

#[test]
fn lars_updates_with_the_fixture_gradients_match_two_steps() {
    // The optimizer alone, fed TF's own gradients: `lars_A_*` (contrastive
    // gradients, two steps with the same gradients) and `lars_B_*` (the
    // supervised head under the full loss).
    let f = fixture();
    let full = support::npz(&tf2_dir().join("grads.npz"));
    let init = f.formula_values();
    let b = Builder::new("lars_apply", 1);
    let step = b.parameter("global_step", Shape::scalar(ElementType::S64));
    let lr = fixture_schedule().lr_tensor(&step);
    let mut entries = vec![];
    let mut outs = vec![];
    let mut args = vec![HostArray::scalar_s64(0)];
    for (alias, tf2) in handful() {
        let v = f.by_tf2(&tf2);
        let scenario = if alias.starts_with("head_supervised") {
            "B"
        } else {
            "A"
        };
        let grad = if scenario == "B" {
            let key = tf2.trim_end_matches(":0").replace('/', "__");
            support::npy(&tf2_dir().join(format!("scenario_b_grad__{key}.npy")))
        } else {
            full.get(&tf2)
                .unwrap_or_else(|| panic!("{tf2} has no full gradient"))
                .clone()
        };
        let shape = Shape::new(ElementType::F32, v.shape.clone());
        let w = b.parameter(&format!("w/{alias}"), shape.clone());
        let g = b.parameter(&format!("g/{alias}"), shape.clone());
        let m = b.parameter(&format!("m/{alias}"), shape.clone());
        let (w_new, slots) = update(&lars_cfg(), &v.tf1, &w, &g, &[m], &lr, &step);
        outs.push(w_new);
        outs.push(slots[0].clone());
        args.push(HostArray::from_f32(&v.shape, &init[&v.tf1]).expect("w"));
        let g32: Vec<f32> = grad.data.iter().map(|&x| x as f32).collect();
        args.push(HostArray::from_f32(&v.shape, &g32).expect("g"));
        args.push(HostArray::from_f32(&v.shape, &vec![0.0; g32.len()]).expect("m"));
        entries.push((alias, scenario, v));
    }
    let refs: Vec<&Tensor> = outs.iter().collect();
    let module = b.build(&refs).expect("builds");
    let client = common::client();
    let exe = client
        .compile(&module.to_proto(), &default_compile_options(client, 1))
        .expect("compiles");
    let tol = Tolerances::load();
    let mut state = args.clone();
    for stepno in 1..=2 {
        let out = exe.execute_host(&[state.clone()]).expect("runs");
        for (j, (alias, scenario, v)) in entries.iter().enumerate() {
            let w_new = out[0][2 * j].to_f32().expect("f32");
            let m_new = out[0][2 * j + 1].to_f32().expect("f32");
            let prev = state[1 + 3 * j].to_f32().expect("f32");
            let stem = format!("lars_{scenario}_step{stepno}");
            if *scenario == "B" && stepno == 2 {
                continue;
            }
            let p = tf2_dir().join(format!("{stem}__{alias}.npy"));
            let want = support::npy(&p);
            support::assert_update_close(
                &format!("{stem}__{alias}"),
                &v.shape,
                &prev,
                &w_new,
                &want,
                tol.lars_exact(),
            );
            let pm = tf2_dir().join(format!("{stem}_momentum__{alias}.npy"));
            if pm.exists() {
                assert_close(
                    &format!("{stem}_momentum__{alias}"),
                    &v.shape,
                    &m_new,
                    &support::npy(&pm),
                    tol.lars_exact(),
                );
            }
            state[1 + 3 * j] = out[0][2 * j].clone();
            state[3 + 3 * j] = out[0][2 * j + 1].clone();
        }
        state[0] = HostArray::scalar_s64(stepno);
    }
}

/// The LARS velocity after one step from zero momentum at the fixture's
/// lr 0.1 (SPEC §7.1), in float64.
fn lars_velocity(name: &str, w: &[f32], g: &[f64]) -> Vec<f64> {
    let lr = 0.1;
    if simclr::simclr::optim::lars_excluded(name) {
        return g.iter().map(|x| lr * x).collect();
    }
    let g: Vec<f64> = g
        .iter()
        .zip(w)
        .map(|(g, w)| g + 1e-4 * f64::from(*w))
        .collect();
    let wn = w.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>().sqrt();
    let gn = g.iter().map(|x| x * x).sum::<f64>().sqrt();
    let trust = simclr::simclr::optim::LARS_EETA * wn / gn;
    g.iter().map(|x| lr * trust * x).collect()
}

#[test]
fn one_real_lars_train_step_matches_tf2_and_tf1() {
    let f = fixture();
    let cfg = StepConfig {
        model: r18(),
        train_mode: TrainMode::Pretrain,
        per_replica_batch: 2,
        num_replicas: 1,
        optimizer: lars_cfg(),
        schedule: fixture_schedule(),
        temperature: 0.5,
        hidden_norm: true,
        global_bn: true,
        batch_norm_decay: 0.9,
        lineareval_while_pretraining: true,
        fine_tune_after_block: -1,
        ft_proj_selector: 0,
        precision: simclr::nn::Precision::Float32,
    };
    let client = common::client();
    let program = train_program(&cfg).expect("pretrain step traces");
    let compiled = compile(client, program, &default_compile_options(client, 1)).expect("compiles");
    let init = f.formula_values();
    let mut overrides = HostState::new();
    for v in &compiled.program.vars {
        let dims = v.shape.dims.clone();
        overrides.insert(
            v.name.clone(),
            HostArray::from_f32(&dims, &init[&v.name]).expect("var"),
        );
    }
    let mut state = compiled.init_state(client, 0, &overrides).expect("state");
    let inputs = vec![vec![
        HostArray::from_f32(&[BATCH as i64, 32, 32, 3], &formula_images()).expect("images"),
        HostArray::from_s32(&[2], &SUP_LABELS.map(|l| l as i32)).expect("labels"),
    ]];
    let metrics = compiled
        .train_step(client, &mut state, &inputs)
        .expect("step runs");
    let m: HashMap<&str, f64> = metrics.into_iter().collect();
    let tol = Tolerances::load();
    assert_eq!(m["learning_rate"] as f32, 0.1f32, "learning rate at step 0");
    assert_eq!(m["nonfinite"], 0.0);
    let meta = support::json(&tf2_dir().join("meta.json"));
    let b = &meta["results"]["scenario_b"];
    for (metric, key) in [
        ("contrast_loss", "contrastive_loss"),
        ("supervised_loss", "supervised_loss"),
        ("weight_decay", "weight_decay_term"),
        ("total_loss", "total_loss"),
    ] {
        let want = b[key].as_f64().expect("value");
        let t = tol.output("train", "contrastive_loss");
        assert!(
            (m[metric] - want).abs() <= t * want.abs(),
            "step metric {metric}: {} vs {want} (rel {:.2e}, tolerance {t:.1e})",
            m[metric],
            (m[metric] - want).abs() / want.abs()
        );
    }
    let after = compiled.download_state(&state).expect("download");
    assert_eq!(after["global_step"].to_s64().expect("s64"), vec![1]);
    let ut = tol.lars_update();
    for (alias, tf2) in handful() {
        let v = f.by_tf2(&tf2);
        let mut got = after[&v.tf1].to_f32().expect("f32");
        let mut slot = after[&format!("{}/Momentum", v.tf1)].to_f32().expect("f32");
        let start = &init[&v.tf1];
        let stem = stem_flip_correction().1.contains_key(&v.tf1);
        if stem {
            // Move the step onto TF's side of the stem ReLU ties: the
            // velocity's change between our gradient and the masked one.
            let (_, ours) = get(train_outputs(), &format!("grad:{}", v.tf1));
            let ours: Vec<f64> = ours.iter().map(|&x| f64::from(x)).collect();
            let masked: Vec<f64> = masked_grad(&v.tf1).iter().map(|&x| f64::from(x)).collect();
            let a = lars_velocity(&v.tf1, start, &masked);
            let b = lars_velocity(&v.tf1, start, &ours);
            for (i, (x, y)) in a.iter().zip(&b).enumerate() {
                got[i] = (f64::from(got[i]) - (x - y)) as f32;
                slot[i] = (f64::from(slot[i]) + (x - y)) as f32;
            }
        }
        let scenario = if alias.starts_with("head_supervised") {
            "B"
        } else {
            "A"
        };
        let want = support::npy(&tf2_dir().join(format!("lars_{scenario}_step1__{alias}.npy")));
        support::assert_update_close(
            &format!("lars_{scenario}_step1__{alias}"),
            &v.shape,
            start,
            &got,
            &want,
            ut,
        );
        let pm = tf2_dir().join(format!("lars_{scenario}_step1_momentum__{alias}.npy"));
        if pm.exists() {
            assert_close(
                &format!("lars_{scenario}_step1_momentum__{alias}"),
                &v.shape,
                &slot,
                &support::npy(&pm),
                ut,
            );
        }
        let p1 = tf1_dir().join(format!("lars_step1__{alias}.npy"));
        if p1.exists() {
            support::assert_update_close(
                &format!("tf1 lars_step1__{alias}"),
                &v.shape,
                start,
                &got,
                &support::npy(&p1),
                ut,
            );
        }
    }
    // The train step's BN updates.
    for (tf2, arr) in support::npz(&tf2_dir().join("bn_moving_after_one_train_forward.npz")) {
        let tf1 = f.tf1_name(&tf2);
        let got = after[&tf1].to_f32().expect("f32");
        let dims: Vec<i64> = arr.shape.iter().map(|&d| d as i64).collect();
        assert_close(
            &format!("train step moving statistic {tf1}"),
            &dims,
            &got,
            &arr,
            tol.moving(),
        );
    }
}

/// The gradients of the bfloat16 training step against TF's float32 ones.
///
/// The supervised head's gradients (scenario B: one bf16 dense layer on
/// the pooled feature) are bounded tightly: measured relative L2 error
/// 9.3e-3 (kernel) and 7.0e-4 (bias), bounded by 0.05.
///
/// The contrastive gradients are not, and cannot be on this fixture: its
/// four noise images give nearly the same feature, the projection head's
/// BN turns the per-mille bf16 error of the feature into a large part of
/// the between-example spread (see the forward test), and every
/// contrastive gradient inherits it. Measured relative L2 errors against
/// TF: 0.26–0.95 (median 0.76), with the policy as specified; the bound
/// (1.5) only catches non-finite or wrongly scaled gradients. Where bf16 is
/// used (never for BN moments, softmax, losses or the optimizer) is checked
/// op by op in `precision_bf16.rs`, and the bf16 training curve against
/// f32 in `tools/precision_curve`.
#[test]
fn gradients_in_bfloat16_stay_within_bf16_rounding() {
    let f = fixture();
    let o = train_outputs_bf16();
    let full = support::npz(&tf2_dir().join("grads.npz"));
    let sliced = support::npz(&tf2_dir().join("grads_slice_last_axis_first16.npz"));
    let contrastive: Vec<_> = f
        .vars
        .iter()
        .filter(|v| v.trainable && !v.tf1.starts_with("head_supervised"))
        .collect();

    // The fixture against TF.
    let mut rels = vec![];
    for v in &contrastive {
        let (d, got) = get(o, &format!("grad:{}", v.tf1));
        let (rel, msg) = grad_rel_l2(v, d, got, &full, &sliced);
        assert!(rel.is_finite(), "{msg}");
        rels.push((rel, v.tf1.clone()));
    }
    assert_eq!(
        rels.len(),
        full.len() + sliced.len(),
        "every stored gradient"
    );
    rels.sort_by(|a, b| a.0.total_cmp(&b.0));
    let median = rels[rels.len() / 2].0;
    let (worst, at) = rels.last().cloned().expect("gradients");
    eprintln!(
        "bf16 vs TF, fixture images: median relative L2 {median:.2e}, worst {worst:.2e} in {at}"
    );
    assert!(worst <= 1.5, "{at}: {worst:.3e}");

    // Scenario B: the supervised head.
    assert_scenario_b_head_grads(o, "bf16 ", 0.05);
}
