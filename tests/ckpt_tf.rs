//! TensorFlow interoperability, checked with real TensorFlow through
//! `tools/tf_ckpt/run` (a pinned TensorFlow in a cached venv): checkpoints
//! written by TF load bit for bit; bundles written here are read back by
//! TF bit for bit; the architecture of TF-written SimCLR checkpoints is
//! inferred. A failing tools script fails the test.

use simclr::ckpt::import::{self, RestoreOptions};
use simclr::ckpt::{infer, tf, DType, Source, Tensor};
use simclr::nn::{variables, ModelConfig};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn tmpdir(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("ckpt_tf_{name}"));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("tmp dir");
    d
}

fn run_tool(args: &[&Path]) -> String {
    let tool = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tools/tf_ckpt/run");
    let o = Command::new(&tool)
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

struct Dump {
    json: serde_json::Value,
    blob: Vec<u8>,
}

impl Dump {
    fn load(dir: &Path) -> Dump {
        let json = serde_json::from_slice(&std::fs::read(dir.join("values.json")).expect("json"))
            .expect("valid json");
        let blob = std::fs::read(dir.join("values.bin")).expect("values.bin");
        Dump { json, blob }
    }
    fn tensors(&self) -> &serde_json::Map<String, serde_json::Value> {
        self.json["tensors"].as_object().expect("tensors")
    }
    fn bytes(&self, name: &str) -> &[u8] {
        let e = &self.tensors()[name];
        let off = e["offset"].as_u64().expect("offset") as usize;
        let size = e["size"].as_u64().expect("size") as usize;
        &self.blob[off..off + size]
    }
    fn strings(&self, name: &str) -> Vec<Vec<u8>> {
        self.tensors()[name]["strings"]
            .as_array()
            .expect("strings")
            .iter()
            .map(|h| {
                let h = h.as_str().expect("hex");
                (0..h.len() / 2)
                    .map(|i| u8::from_str_radix(&h[2 * i..2 * i + 2], 16).expect("hex"))
                    .collect()
            })
            .collect()
    }
    fn dims(&self, name: &str) -> Vec<u64> {
        self.tensors()[name]["shape"]
            .as_array()
            .expect("shape")
            .iter()
            .map(|d| d.as_u64().expect("dim"))
            .collect()
    }
}

fn var_spec(cfg: &ModelConfig, fill: &str) -> Vec<serde_json::Value> {
    variables(cfg)
        .expect("model builds")
        .iter()
        .map(|v| serde_json::json!({"name": v.name, "shape": v.shape.dims, "dtype": "float32", "fill": fill}))
        .collect()
}

fn extra_dtypes() -> Vec<serde_json::Value> {
    [
        ("x/f64", "float64", vec![2, 3]),
        ("x/f16", "float16", vec![5]),
        ("x/bf16", "bfloat16", vec![5]),
        ("x/i32", "int32", vec![4]),
        ("x/i64", "int64", vec![3]),
        ("x/u8", "uint8", vec![3]),
        ("x/bool", "bool", vec![3]),
        ("x/str", "string", vec![2, 2]),
        ("x/scalar", "float32", vec![]),
    ]
    .into_iter()
    .map(|(n, d, s)| serde_json::json!({"name": n, "shape": s, "dtype": d}))
    .collect()
}

fn r18_cifar() -> ModelConfig {
    ModelConfig {
        resnet_depth: 18,
        image_size: 32,
        num_classes: 10,
        ..ModelConfig::default()
    }
}

#[test]
fn tf_written_checkpoint_loads_bit_exact_and_restores_the_model() {
    let dir = tmpdir("tf_written");
    let cfg = r18_cifar();
    let vars = variables(&cfg).expect("model");
    let mut spec = var_spec(&cfg, "random");
    for v in vars.iter().filter(|v| v.trainable).take(5) {
        spec.push(serde_json::json!({"name": format!("{}/Momentum", v.name), "shape": v.shape.dims, "dtype": "float32"}));
    }
    spec.push(serde_json::json!({"name": "base_model/conv2d/kernel/ExponentialMovingAverage", "shape": [3, 3, 3, 64], "dtype": "float32"}));
    spec.extend(extra_dtypes());
    let spec_path = dir.join("spec.json");
    let spec =
        serde_json::json!({"prefix": "model.ckpt", "global_step": 7, "seed": 3, "variables": spec});
    std::fs::write(&spec_path, spec.to_string()).expect("spec");
    let out = dir.join("out");
    let prefix = run_tool(&[Path::new("make.py"), &spec_path, &out]);
    assert!(prefix.ends_with("model.ckpt-7"), "{prefix}");
    let dump = Dump::load(&out);

    // Opened through the directory's `checkpoint` state file.
    let src = Source::open(&out).expect("open TF checkpoint");
    assert_eq!(src.path(), PathBuf::from(&prefix));
    let entries = src.entries();
    assert_eq!(entries.len(), dump.tensors().len());
    for (name, e) in dump.tensors() {
        let t = src.read(name).expect("read");
        assert_eq!(t.dims, dump.dims(name), "{name}");
        match e["dtype"].as_str().expect("dtype") {
            "string" => {
                assert_eq!(t.dtype, DType::String);
                assert_eq!(tf::string_values(&t).expect("strings"), dump.strings(name));
            }
            "int64" if name == "global_step" => assert_eq!(t.as_i64(), Some(7)),
            d => {
                assert_eq!(t.dtype.name(), d, "{name}");
                assert_eq!(t.bytes, dump.bytes(name), "{name}: bit-exact");
            }
        }
    }

    // Restore for full fine-tuning: backbone + projection head, no slots.
    let r = import::restore(
        &vars,
        &src,
        &RestoreOptions {
            variable_schema: import::FINETUNE_SCHEMA.into(),
            zero_init_logits_layer: true,
            ..RestoreOptions::default()
        },
    )
    .expect("restore");
    let sup: Vec<_> = vars
        .iter()
        .filter(|v| v.name.starts_with("head_supervised"))
        .collect();
    assert_eq!(r.restored.len(), vars.len() - sup.len());
    for n in &r.restored {
        assert_eq!(r.values[n].bytes, dump.bytes(n), "{n}");
    }
    assert_eq!(r.zeroed.len(), sup.len());
    for v in &sup {
        assert!(r.values[&v.name].bytes.iter().all(|&b| b == 0));
    }
    assert_eq!(r.global_step, Some(7));
    assert!(r.ignored.contains(&"global_step".to_string()));
    assert!(r
        .ignored
        .contains(&"base_model/conv2d/kernel/ExponentialMovingAverage".to_string()));
    assert_eq!(
        r.ignored
            .iter()
            .filter(|n| n.ends_with("/Momentum"))
            .count(),
        5
    );

    // Default schema with optimizer slots asked for.
    let r = import::restore(
        &vars,
        &src,
        &RestoreOptions {
            include_optimizer_slots: true,
            ..RestoreOptions::default()
        },
    )
    .expect("restore");
    assert_eq!(r.restored.len(), vars.len());
    assert_eq!(r.slots.len(), 5);
    for (n, t) in &r.slots {
        assert_eq!(t.bytes, dump.bytes(n), "{n}");
    }

    // The CLI infers the architecture.
    let o = Command::new(env!("CARGO_BIN_EXE_simclr"))
        .args(["ckpt", "info"])
        .arg(&out)
        .output()
        .expect("simclr runs");
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        text.contains("--resnet_depth=18 --width_multiplier=1 --sk_ratio=0 --image_size=32 --num_proj_layers=3 --proj_out_dim=128 --num_classes=10"),
        "{text}"
    );
    assert!(text.contains("0 missing, 0 with other shapes"), "{text}");
    let o = Command::new(env!("CARGO_BIN_EXE_simclr"))
        .args(["ckpt", "ls"])
        .arg(format!("{prefix}.index"))
        .output()
        .expect("simclr runs");
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success());
    assert!(
        text.contains("base_model/conv2d/kernel\tfloat32\t[3, 3, 3, 64]"),
        "{text}"
    );
    assert!(text.contains("global_step\tint64\t[]"), "{text}");
    assert!(text.contains("x/str\tstring\t[2, 2]"), "{text}");
}

fn pseudo_random_f32(n: usize, seed: u64) -> Vec<f32> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ((x >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.2
        })
        .collect()
}

#[test]
fn simclr_written_bundle_is_read_by_tensorflow_bit_exact() {
    let dir = tmpdir("simclr_written");
    let cfg = r18_cifar();
    let mut tensors = BTreeMap::new();
    for (i, v) in variables(&cfg).expect("model").iter().enumerate() {
        let dims: Vec<u64> = v.shape.dims.iter().map(|&d| d as u64).collect();
        let vals = pseudo_random_f32(v.shape.numel(), i as u64 + 1);
        tensors.insert(v.name.clone(), Tensor::from_f32(&dims, &vals).expect("f32"));
        if i < 3 {
            let vals = pseudo_random_f32(v.shape.numel(), 1000 + i as u64);
            tensors.insert(
                format!("{}/Momentum", v.name),
                Tensor::from_f32(&dims, &vals).expect("f32"),
            );
        }
    }
    tensors.insert("global_step".into(), Tensor::scalar_i64(123_456));
    let raw = |dt: DType, dims: Vec<u64>, b: Vec<u8>| Tensor::new(dt, dims, b).expect("tensor");
    tensors.insert(
        "x/f64".into(),
        raw(
            DType::F64,
            vec![2],
            [1.5f64.to_le_bytes(), (-2.25f64).to_le_bytes()].concat(),
        ),
    );
    tensors.insert(
        "x/f16".into(),
        raw(
            DType::F16,
            vec![3],
            vec![0x00, 0x3c, 0x00, 0xc0, 0x01, 0x00],
        ),
    );
    tensors.insert(
        "x/bf16".into(),
        raw(DType::BF16, vec![2], vec![0x80, 0x3f, 0x49, 0x40]),
    );
    tensors.insert(
        "x/i32".into(),
        raw(
            DType::I32,
            vec![2],
            [(-5i32).to_le_bytes(), 7i32.to_le_bytes()].concat(),
        ),
    );
    tensors.insert("x/u8".into(), raw(DType::U8, vec![4], vec![0, 1, 200, 255]));
    tensors.insert("x/bool".into(), raw(DType::Bool, vec![3], vec![1, 0, 1]));
    tensors.insert("x/empty".into(), raw(DType::F32, vec![0, 3], vec![]));
    tensors.insert(
        "x/str".into(),
        tf::string_tensor(&[3], &[b"alpha", b"", b"\x00\xffz"]).expect("strings"),
    );
    let prefix = dir.join("export").join("model.ckpt-123456");
    tf::write(&prefix, &tensors, true).expect("write bundle");

    // Our own reader first.
    let back = tf::Reader::open(&prefix).expect("reopen");
    for (n, t) in &tensors {
        assert_eq!(&back.read(n).expect("read"), t, "{n}");
    }

    let out = dir.join("tf_read");
    run_tool(&[Path::new("read.py"), &prefix, &out]);
    let dump = Dump::load(&out);
    assert_eq!(dump.tensors().len(), tensors.len());
    let n_f32 = tensors.values().filter(|t| t.dtype == DType::F32).count();
    assert_eq!(dump.json["saver_restored"].as_u64(), Some(n_f32 as u64));
    for (n, t) in &tensors {
        assert_eq!(dump.dims(n), t.dims, "{n}");
        assert_eq!(
            dump.tensors()[n]["dtype"].as_str(),
            Some(t.dtype.name()),
            "{n}"
        );
        if t.dtype == DType::String {
            assert_eq!(dump.strings(n), tf::string_values(t).expect("strings"));
        } else {
            assert_eq!(
                dump.bytes(n),
                t.bytes.as_slice(),
                "{n}: bit-exact in TensorFlow"
            );
        }
    }
}

#[test]
fn architecture_of_tf_written_simclr_v2_checkpoints_is_inferred() {
    for (label, cfg, flags) in [
        (
            "r50_1x_sk0",
            ModelConfig::default(),
            "--resnet_depth=50 --width_multiplier=1 --sk_ratio=0 --num_proj_layers=3 --proj_out_dim=128 --num_classes=1000",
        ),
        (
            "r50_1x_sk1",
            ModelConfig {
                sk_ratio: 0.0625,
                ..ModelConfig::default()
            },
            "--resnet_depth=50 --width_multiplier=1 --sk_ratio=0.0625 --num_proj_layers=3 --proj_out_dim=128 --num_classes=1000",
        ),
    ] {
        let dir = tmpdir(label);
        let mut spec = var_spec(&cfg, "zeros");
        spec.push(serde_json::json!({"name": "base_model/conv2d/kernel/Momentum", "shape": [if cfg.sk_ratio > 0.0 {3} else {7}, if cfg.sk_ratio > 0.0 {3} else {7}, 3, if cfg.sk_ratio > 0.0 {32} else {64}], "dtype": "float32", "fill": "zeros"}));
        let spec = serde_json::json!({"prefix": "model.ckpt", "global_step": 1, "variables": spec});
        let spec_path = dir.join("spec.json");
        std::fs::write(&spec_path, spec.to_string()).expect("spec");
        let out = dir.join("out");
        run_tool(&[Path::new("make.py"), &spec_path, &out]);
        let src = Source::open(&out).expect("open");
        let entries: Vec<(String, Vec<u64>)> =
            src.entries().into_iter().map(|e| (e.name, e.dims)).collect();
        let arch = infer::infer(&entries).expect("infer");
        assert_eq!(arch.flags().join(" "), flags, "{label}");
        assert_eq!(arch.model_config(), cfg, "{label}");
        let v = infer::verify(&arch, &entries).expect("verify");
        assert!(v.missing.is_empty() && v.mismatched.is_empty(), "{label}: {v:?}");
        // Restores the whole model (zeros) by name.
        let vars = variables(&cfg).expect("model");
        let r = import::restore(&vars, &src, &RestoreOptions::default()).expect("restore");
        assert_eq!(r.restored.len(), vars.len());
        drop(src);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn tf2_object_checkpoint_heads_restore_by_mapped_names() {
    let dir = tmpdir("tf2_heads");
    let out = dir.join("out");
    let prefix = run_tool(&[
        Path::new("make_tf2_heads.py"),
        &out,
        Path::new("512"),
        Path::new("3"),
        Path::new("128"),
        Path::new("10"),
    ]);
    let dump = Dump::load(&out);
    let src = Source::open(Path::new(&prefix)).expect("open TF2 checkpoint");
    // TF's own string tensor (the object graph) passes the string CRC check.
    let graph = src
        .read("_CHECKPOINTABLE_OBJECT_GRAPH")
        .expect("object graph");
    assert_eq!(tf::string_values(&graph).expect("strings").len(), 1);
    let vars = variables(&r18_cifar()).expect("model");
    let r = import::restore(
        &vars,
        &src,
        &RestoreOptions {
            variable_schema: "head".into(),
            ..RestoreOptions::default()
        },
    )
    .expect("restore heads from TF2 paths");
    let heads = vars.iter().filter(|v| v.name.starts_with("head")).count();
    assert_eq!(r.restored.len(), heads);
    assert_eq!(r.renamed.len(), heads);
    assert_eq!(dump.tensors().len(), heads);
    for n in &r.restored {
        assert_eq!(r.values[n].bytes, dump.bytes(n), "{n}");
    }
    assert_eq!(r.global_step, Some(3));
    assert!(r
        .ignored
        .contains(&"_CHECKPOINTABLE_OBJECT_GRAPH".to_string()));
}

/// A whole model in the TF2 code's attribute structure, written by real
/// TensorFlow: every backbone variable maps from its object path to the TF1
/// name counted in creation order, values bit for bit; the architecture is
/// inferred from the TF2 file.
fn tf2_backbone_case(label: &str, cfg: ModelConfig) {
    let dir = tmpdir(&format!("tf2_model_{label}"));
    let out = dir.join("out");
    let arg = |v: String| PathBuf::from(v);
    let prefix = run_tool(&[
        Path::new("make_tf2_model.py"),
        &out,
        &arg(cfg.resnet_depth.to_string()),
        &arg(cfg.width_multiplier.to_string()),
        &arg(cfg.sk_ratio.to_string()),
        &arg(cfg.se_ratio.to_string()),
        &arg(if cfg.image_size <= 32 { "1" } else { "0" }.into()),
        &arg(cfg.num_proj_layers.to_string()),
        &arg(cfg.proj_out_dim.to_string()),
        &arg(cfg.num_classes.to_string()),
    ]);
    let dump = Dump::load(&out);
    let src = Source::open(Path::new(&prefix)).expect("open TF2 checkpoint");
    let vars = variables(&cfg).expect("model");
    let r = import::restore(&vars, &src, &RestoreOptions::default())
        .unwrap_or_else(|e| panic!("{label}: restore from TF2 paths: {e}"));
    assert_eq!(r.restored.len(), vars.len(), "{label}: every variable");
    let backbone: Vec<&String> = r
        .restored
        .iter()
        .filter(|n| n.starts_with("base_model/"))
        .collect();
    assert_eq!(backbone.len(), dump.tensors().len(), "{label}");
    for n in backbone {
        assert_eq!(r.values[n].bytes, dump.bytes(n), "{label}: {n}");
    }
    assert_eq!(r.global_step, Some(7));
    // `ckpt info`'s inference reads the TF2 file through the TF1 view.
    let entries = simclr::ckpt::tf2::tf1_view(&src.entries());
    let arch = infer::infer(&entries).expect("infer from TF2 paths");
    assert_eq!(arch.resnet_depth, cfg.resnet_depth, "{label}");
    assert_eq!(arch.sk_ratio > 0.0, cfg.sk_ratio > 0.0, "{label}");
    drop(src);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn tf2_object_checkpoint_backbone_resnet18_cifar_with_se() {
    tf2_backbone_case(
        "r18_se",
        ModelConfig {
            se_ratio: 0.25,
            ..r18_cifar()
        },
    );
}

#[test]
fn tf2_object_checkpoint_backbone_resnet50_sk() {
    tf2_backbone_case(
        "r50_sk",
        ModelConfig {
            resnet_depth: 50,
            sk_ratio: 0.0625,
            image_size: 224,
            num_classes: 1000,
            ..ModelConfig::default()
        },
    );
}
