//! `simclr ckpt export_torch` / `import_torch` checked by real PyTorch
//! (tools/torch/run: a pinned venv in the user cache, installed on first
//! use; the test fails if it cannot be made).
//!
//! Models: ResNet-18 CIFAR (plain and with squeeze-and-excitation) from a
//! native simclr checkpoint; ResNet-50 1× (torchvision and simclr layouts),
//! ResNet-50 2× SK, ResNet-101 1× SK and ResNet-34 1× SK (SK basic blocks)
//! from TF1 checkpoints written by real
//! TensorFlow (tools/tf_ckpt/run make.py) with the fixture weight formula
//! (k = index of the TF1 name in sorted order).
//! PyTorch's eval-mode outputs must equal `simclr features` on the same
//! pixels within 1e-4 relative (max |a−b| / max |b|); round trips must be
//! bit-identical (also from a TF2 object-based checkpoint); bad state dicts
//! must be refused naming the key.

use crate::fixtures_support as support;

use simclr::ckpt::{self, torch, Source, Tensor};
use simclr::nn::{self, ModelConfig, ProjHeadMode};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn tmp(name: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("simclr-torch-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(&p).expect("temp dir");
    p
}

fn run(cmd: &mut Command, what: &str) -> (bool, String, String) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// Runs a tools/<dir>/run script; panics with its output on failure.
fn tool(dir: &str, args: &[&str]) -> String {
    let what = format!("tools/{dir}/run {}", args.join(" "));
    let (ok, out, err) = run(
        Command::new("bash")
            .arg(root().join("tools").join(dir).join("run"))
            .args(args),
        &what,
    );
    assert!(ok, "{what} failed:\n{out}\n{err}");
    out
}

fn simclr(args: &[&str]) -> (bool, String) {
    let (ok, out, err) = run(
        Command::new(env!("CARGO_BIN_EXE_simclr")).args(args),
        "simclr",
    );
    (ok, format!("{out}{err}"))
}

fn simclr_ok(args: &[&str]) -> String {
    let (ok, text) = simclr(args);
    assert!(ok, "simclr {args:?} failed:\n{text}");
    text
}

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

struct Case {
    cfg: ModelConfig,
    proj: bool,
    sup: bool,
    /// −1: the supervised head reads the projection head's output.
    selector: i32,
}

/// The model variables of a case (heads only when present).
fn variables(c: &Case) -> Vec<(String, Vec<u64>)> {
    nn::variables(&c.cfg)
        .expect("model builds")
        .into_iter()
        .filter(|v| c.proj || !v.name.starts_with("head_contrastive/"))
        .filter(|v| c.sup || !v.name.starts_with("head_supervised/"))
        .map(|v| {
            let mut dims: Vec<u64> = v.shape.dims.iter().map(|&d| d as u64).collect();
            if c.selector == -1 && v.name == "head_supervised/linear_layer/dense/kernel" {
                dims[0] = u64::from(c.cfg.proj_out_dim);
            }
            (v.name, dims)
        })
        .collect()
}

/// Formula values by TF1 name (k = sorted index).
fn formula_values(c: &Case) -> BTreeMap<String, (Vec<u64>, Vec<f32>, u32)> {
    let mut vars = variables(c);
    vars.sort();
    vars.into_iter()
        .enumerate()
        .map(|(k, (name, dims))| {
            let n = dims.iter().product::<u64>() as usize;
            let v = support::formula(k as u32, n, support::Kind::of(&name));
            (name, (dims, v, k as u32))
        })
        .collect()
}

/// A TF1 checkpoint written by real TensorFlow; returns its prefix.
fn tf_checkpoint(c: &Case, dir: &Path) -> PathBuf {
    let vars: Vec<serde_json::Value> = formula_values(c)
        .into_iter()
        .map(|(name, (dims, _, k))| {
            serde_json::json!({"name": name, "shape": dims, "dtype": "float32", "fill": "formula", "k": k})
        })
        .collect();
    let spec = serde_json::json!({"prefix": "model.ckpt", "global_step": 5, "variables": vars});
    let spec_path = dir.join("spec.json");
    std::fs::write(&spec_path, spec.to_string()).expect("spec");
    let out = tool("tf_ckpt", &["make.py", p(&spec_path), p(&dir.join("tf"))]);
    PathBuf::from(out.trim().lines().last().expect("prefix printed"))
}

/// Two PNG images of `size`² pixels.
fn images(dir: &Path, size: u32) -> PathBuf {
    let d = dir.join("images");
    std::fs::create_dir_all(&d).expect("images dir");
    for i in 0..2u32 {
        let img = image::RgbImage::from_fn(size, size, |x, y| {
            let h = support::lowbias32(i * 1_000_003 + y * size + x);
            image::Rgb([(h >> 24) as u8, (h >> 16) as u8, (h >> 8) as u8])
        });
        img.save(d.join(format!("img{i}.png"))).expect("png");
    }
    d
}

/// `simclr features` with the preprocessed input.
fn features(model_dir: &Path, imgs: &Path, out: &Path) {
    simclr_ok(&[
        "features",
        "--export",
        p(model_dir),
        "--images",
        p(imgs),
        "--out",
        p(out),
        "--outputs=input,final_avg_pool,proj_head_output,logits_sup",
        "--batch=2",
    ]);
}

/// PyTorch's outputs against simclr's; returns the report.
fn compare(weights: &Path, feats: &Path) -> serde_json::Value {
    let out = tool("torch", &["check.py", "compare", p(weights), p(feats)]);
    let report: serde_json::Value =
        serde_json::from_str(out.trim().lines().last().expect("report")).expect("json report");
    eprintln!("PyTorch vs simclr features: {report}");
    assert_eq!(report["ok"], true, "{report}");
    report
}

/// Every model variable of `c` is bit-identical in the two checkpoints.
fn assert_same_variables(c: &Case, a: &Path, b: &Path) {
    let (sa, sb) = (Source::open(a).expect("a"), Source::open(b).expect("b"));
    let vars = variables(c);
    for (name, _) in &vars {
        let ta = sa.read(name).expect("in a");
        let tb = sb.read(name).expect("in b");
        assert_eq!(ta, tb, "{name} differs between {a:?} and {b:?}");
    }
    eprintln!("{} variables bit-identical", vars.len());
}

fn cfg(
    depth: u32,
    width: u32,
    sk: bool,
    image: u32,
    head: ProjHeadMode,
    layers: u32,
) -> ModelConfig {
    ModelConfig {
        resnet_depth: depth,
        width_multiplier: width,
        sk_ratio: if sk { 0.0625 } else { 0.0 },
        se_ratio: 0.0,
        image_size: image,
        proj_head_mode: head,
        num_proj_layers: layers,
        proj_out_dim: 128,
        num_classes: 10,
    }
}

/// TF1 checkpoint → export_torch (simclr layout) → PyTorch equals simclr
/// features; → import_torch gives the TF variables bit for bit.
fn tf_case(name: &str, c: &Case) {
    let dir = tmp(name);
    let t = std::time::Instant::now();
    let lap = |what: &str| eprintln!("{name}: {what} done at {:.1} s", t.elapsed().as_secs_f64());
    let prefix = tf_checkpoint(c, &dir);
    lap("TensorFlow checkpoint");
    let st = dir.join("model.safetensors");
    let msg = simclr_ok(&["ckpt", "export_torch", p(&prefix), p(&st)]);
    eprintln!("{msg}");
    assert!(msg.contains("training step counter"), "{msg}");
    let back = dir.join("back");
    simclr_ok(&["ckpt", "import_torch", p(&st), p(&back), "--image_size=64"]);
    lap("export_torch + import_torch");
    assert_same_variables(c, &prefix, &back);
    let feats = dir.join("features");
    features(&back, &images(&dir, 64), &feats);
    lap("simclr features");
    compare(&st, &feats);
    lap("PyTorch");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A native simclr checkpoint (formula values) of a ResNet-18 CIFAR →
/// PyTorch equals simclr features; → import_torch gives it back bit for bit.
fn native_r18_case(name: &str, se_ratio: f64) {
    let mut c = Case {
        cfg: cfg(18, 1, false, 32, ProjHeadMode::Nonlinear, 3),
        proj: true,
        sup: true,
        selector: 0,
    };
    c.cfg.se_ratio = se_ratio;
    let dir = tmp(name);
    let mut tensors: BTreeMap<String, Tensor> = formula_values(&c)
        .into_iter()
        .map(|(n, (d, v, _))| (n, Tensor::from_f32(&d, &v).expect("tensor")))
        .collect();
    tensors.insert("global_step".into(), Tensor::scalar_i64(3));
    let meta = serde_json::json!({"model": {
        "resnet_depth": 18, "width_multiplier": 1, "sk_ratio": 0.0, "se_ratio": se_ratio,
        "image_size": 32, "proj_head_mode": "nonlinear", "num_proj_layers": 3,
        "proj_out_dim": 128, "num_classes": 10, "ft_proj_selector": 0}});
    let model_dir = dir.join("model");
    ckpt::native::save(&model_dir, 3, &tensors, &meta, 0).expect("save");
    let st = dir.join("r18.safetensors");
    simclr_ok(&["ckpt", "export_torch", p(&model_dir), p(&st)]);
    let arch: torch::TorchArch =
        serde_json::from_str(&std::fs::read_to_string(dir.join("r18.json")).expect("json"))
            .expect("arch");
    assert!(arch.cifar_stem && arch.resnet_depth == 18 && arch.num_classes == Some(10));
    assert_eq!(arch.se_ratio, se_ratio);
    let feats = dir.join("features");
    features(&model_dir, &images(&dir, 32), &feats);
    compare(&st, &feats);
    let back = dir.join("back");
    simclr_ok(&["ckpt", "import_torch", p(&st), p(&back)]);
    assert_same_variables(&c, &model_dir, &back);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn resnet18_cifar_native_checkpoint_to_pytorch_and_back() {
    native_r18_case("r18", 0.0);
}

#[test]
fn resnet18_cifar_squeeze_excite_to_pytorch_and_back() {
    native_r18_case("r18se", 0.25);
}

#[test]
fn resnet50_tf1_checkpoint_to_torchvision() {
    let mut c = Case {
        cfg: cfg(50, 1, false, 64, ProjHeadMode::Nonlinear, 2),
        proj: true,
        sup: true,
        selector: 0,
    };
    c.cfg.num_classes = 1000;
    let dir = tmp("r50tv");
    let prefix = tf_checkpoint(&c, &dir);
    let st = dir.join("r50.safetensors");
    let msg = simclr_ok(&[
        "ckpt",
        "export_torch",
        p(&prefix),
        p(&st),
        "--layout=torchvision",
    ]);
    assert!(
        msg.contains("projection head: torchvision's ResNet has no place for it"),
        "{msg}"
    );
    // (compare below loads it into torchvision's resnet50 with strict=True.)
    // torchvision → simclr keeps backbone and supervised head bit for bit.
    let back = dir.join("back");
    simclr_ok(&["ckpt", "import_torch", p(&st), p(&back), "--image_size=64"]);
    c.proj = false;
    assert_same_variables(&c, &prefix, &back);
    // The same network through simclr_resnet.py (plain bottlenecks, and the
    // projection head that torchvision has no place for); its simclr
    // features serve both comparisons.
    let st2 = dir.join("r50_simclr.safetensors");
    simclr_ok(&["ckpt", "export_torch", p(&prefix), p(&st2)]);
    let back2 = dir.join("back_simclr");
    simclr_ok(&[
        "ckpt",
        "import_torch",
        p(&st2),
        p(&back2),
        "--image_size=64",
    ]);
    c.proj = true;
    assert_same_variables(&c, &prefix, &back2);
    let feats = dir.join("features");
    features(&back2, &images(&dir, 64), &feats);
    compare(&st2, &feats);
    let report = compare(&st, &feats);
    // torchvision's own max pool (padding 1 on both sides) is measurably off.
    let plain = report["unmodified_torchvision_errors"]["final_avg_pool"]
        .as_f64()
        .expect("unmodified error");
    assert!(plain > 1e-3, "{report}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn resnet50_2x_sk_tf1_checkpoint_to_pytorch_and_back() {
    let c = Case {
        cfg: cfg(50, 2, true, 64, ProjHeadMode::Nonlinear, 2),
        proj: true,
        sup: true,
        selector: 0,
    };
    tf_case("r50x2sk", &c);
}

#[test]
fn resnet34_sk_linear_head_tf1_checkpoint_to_pytorch_and_back() {
    // Selective kernels in basic blocks (the ResNet-50 case has them in
    // bottlenecks), a linear head, and the supervised head on the head's
    // output (selector −1).
    let c = Case {
        cfg: cfg(34, 1, true, 64, ProjHeadMode::Linear, 1),
        proj: true,
        sup: true,
        selector: -1,
    };
    tf_case("r34sk", &c);
}

#[test]
fn resnet101_sk_linear_head_tf1_checkpoint_to_pytorch_and_back() {
    // The deep SK case: 101 layers of SK bottlenecks at width 1×.
    let c = Case {
        cfg: cfg(101, 1, true, 64, ProjHeadMode::Linear, 1),
        proj: true,
        sup: true,
        selector: -1,
    };
    tf_case("r101sk", &c);
}

#[test]
fn torchvision_resnet50_round_trip_is_bit_identical() {
    let dir = tmp("tvrt");
    let a = dir.join("tv.safetensors");
    tool(
        "torch",
        &["check.py", "torchvision_state_dict", "50", p(&a)],
    );
    let model_dir = dir.join("simclr");
    let msg = simclr_ok(&["ckpt", "import_torch", p(&a), p(&model_dir)]);
    assert!(msg.contains("ResNet-50 1x"), "{msg}");
    let b = dir.join("again.safetensors");
    simclr_ok(&[
        "ckpt",
        "export_torch",
        p(&model_dir),
        p(&b),
        "--layout=torchvision",
    ]);
    let (ta, tb) = (
        torch::read_safetensors(&a).expect("a"),
        torch::read_safetensors(&b).expect("b"),
    );
    assert_eq!(
        ta.len(),
        320,
        "torchvision's resnet50 has 320 state-dict entries"
    );
    assert_eq!(
        ta, tb,
        "torchvision → simclr → torchvision changed the state dict"
    );
    tool("torch", &["check.py", "load_torchvision", "50", p(&b)]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_state_dicts_are_refused_naming_the_key() {
    let dir = tmp("bad");
    // A valid torchvision ResNet-18 state dict, written by simclr itself.
    let c = Case {
        cfg: cfg(18, 1, false, 224, ProjHeadMode::Nonlinear, 3),
        proj: false,
        sup: true,
        selector: 0,
    };
    let mut good = BTreeMap::new();
    let plan = torch::plan(&c.cfg, false, true, 0).expect("plan");
    let values = formula_values(&c);
    for pair in &plan.pairs {
        let t = Tensor::from_f32(&pair.torch_dims, &values[&pair.tf].1).expect("t");
        good.insert(pair.torch.clone(), t);
    }
    for m in &plan.bn_modules {
        good.insert(format!("{m}.num_batches_tracked"), Tensor::scalar_i64(0));
    }
    let try_import = |name: &str, sd: &BTreeMap<String, Tensor>| -> (bool, String) {
        let f = dir.join(format!("{name}.safetensors"));
        torch::write_safetensors(&f, sd).expect("write");
        simclr(&["ckpt", "import_torch", p(&f), p(&dir.join(name))])
    };
    let (ok, msg) = try_import("good", &good);
    assert!(ok, "{msg}");

    let mut wrong = good.clone();
    wrong.insert(
        "layer2.0.conv1.weight".into(),
        Tensor::zeros(ckpt::DType::F32, &[128, 64, 1, 1]).expect("z"),
    );
    let (ok, msg) = try_import("wrong_shape", &wrong);
    assert!(!ok, "a wrong shape was accepted");
    assert!(
        msg.contains("'layer2.0.conv1.weight' has shape [128, 64, 1, 1]")
            && msg.contains("needs [128, 64, 3, 3]"),
        "{msg}"
    );

    let mut missing = good.clone();
    missing.remove("layer3.1.bn2.running_var");
    let (ok, msg) = try_import("missing", &missing);
    assert!(!ok, "a missing key was accepted");
    assert!(
        msg.contains("missing") && msg.contains("layer3.1.bn2.running_var"),
        "{msg}"
    );

    let mut extra = good.clone();
    extra.insert(
        "layer4.1.attention.weight".into(),
        Tensor::zeros(ckpt::DType::F32, &[4]).expect("z"),
    );
    let (ok, msg) = try_import("extra", &extra);
    assert!(!ok, "an extra key was accepted");
    assert!(
        msg.contains("unexpected key") && msg.contains("layer4.1.attention.weight"),
        "{msg}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn tf2_object_checkpoint_round_trips_through_pytorch_bit_identical() {
    // A TF2 object-based checkpoint of ResNet-18 CIFAR written by TensorFlow
    // with the TF2 code's attribute structure; values.json/values.bin hold
    // every variable by its TF1 name.
    let dir = tmp("tf2");
    let tf2 = dir.join("tf2");
    let out = tool(
        "tf_ckpt",
        &[
            "make_tf2_model.py",
            p(&tf2),
            "18",
            "1",
            "0",
            "0",
            "1",
            "3",
            "128",
            "10",
        ],
    );
    let prefix = PathBuf::from(out.trim().lines().last().expect("prefix"));
    let st = dir.join("r18.safetensors");
    let msg = simclr_ok(&["ckpt", "export_torch", p(&prefix), p(&st)]);
    assert!(msg.contains("_CHECKPOINTABLE_OBJECT_GRAPH"), "{msg}");
    let back = dir.join("back");
    simclr_ok(&["ckpt", "import_torch", p(&st), p(&back)]);
    let values: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tf2.join("values.json")).expect("json"))
            .expect("values.json");
    let blob = std::fs::read(tf2.join("values.bin")).expect("values.bin");
    let src = Source::open(&back).expect("imported");
    let mut n = 0;
    for (name, e) in values["tensors"].as_object().expect("tensors") {
        let (Some(o), Some(s)) = (e["offset"].as_u64(), e["size"].as_u64()) else {
            continue;
        };
        let t = src.read(name).expect("imported variable");
        assert_eq!(
            t.bytes,
            blob[o as usize..(o + s) as usize],
            "{name} changed on the way"
        );
        n += 1;
    }
    assert!(n > 100, "only {n} variables compared");
    eprintln!("TF2 → PyTorch → simclr: {n} variables bit-identical");
    let _ = std::fs::remove_dir_all(&dir);
}
