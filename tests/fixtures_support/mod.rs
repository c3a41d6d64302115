//! Support for the TensorFlow reference-fixture tests: the fixture's weight
//! and input formulas, `.npy`/`.npz`/JSON loading, the TF1↔TF2 name map, the
//! observed tolerances and comparison helpers whose messages name the
//! tensor, the index and the size of a disagreement.
#![allow(dead_code)]

use simclr::nn::{ModelConfig, ProjHeadMode};
use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Images in the fixture batch (2 views × 2 images).
pub const BATCH: usize = 4;

/// The fixture folder.
pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/tf-reference")
}

/// The primary (TF2 code) ResNet-18 fixtures.
pub fn tf2_dir() -> PathBuf {
    fixtures().join("tf2_resnet18_cifar32")
}

/// The TF1 code's ResNet-18 fixtures.
pub fn tf1_dir() -> PathBuf {
    fixtures().join("tf1_resnet18_cifar32")
}

/// The fixture model: ResNet-18, CIFAR stem (image 32), width 1,
/// nonlinear 3-layer head to 128, 10 classes.
pub fn r18() -> ModelConfig {
    ModelConfig {
        resnet_depth: 18,
        width_multiplier: 1,
        sk_ratio: 0.0,
        se_ratio: 0.0,
        image_size: 32,
        proj_head_mode: ProjHeadMode::Nonlinear,
        num_proj_layers: 3,
        proj_out_dim: 128,
        num_classes: 10,
    }
}

/// The README's hash.
pub fn lowbias32(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(0x7FEB_352D);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846C_A68B);
    x ^= x >> 16;
    x
}

/// How the formula turns `v` into a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `v` (kernels, biases, β, moving means).
    Plain,
    /// `1 + v`.
    Gamma,
    /// `1 + |v|`.
    MovingVariance,
}

impl Kind {
    /// The kind of a variable from its (TF1 or TF2) name.
    pub fn of(name: &str) -> Kind {
        let n = name.trim_end_matches(":0");
        if n.ends_with("/gamma") {
            Kind::Gamma
        } else if n.ends_with("/moving_variance") {
            Kind::MovingVariance
        } else {
            Kind::Plain
        }
    }
}

/// The fixture weight formula for the variable with sorted index `k`.
pub fn formula(k: u32, count: usize, kind: Kind) -> Vec<f32> {
    let base = 0x9E37_79B9u32.wrapping_mul(k.wrapping_add(1));
    (0..count)
        .map(|i| {
            let h = lowbias32((i as u32).wrapping_add(base));
            let u = f64::from(h >> 8) / f64::from(1u32 << 24);
            let v = 0.05 * (2.0 * u - 1.0);
            let value = match kind {
                Kind::Plain => v,
                Kind::Gamma => 1.0 + v,
                Kind::MovingVariance => 1.0 + v.abs(),
            };
            value as f32
        })
        .collect()
}

/// Values in [0, 1) from the fixture input formula, `count` of them.
pub fn formula_inputs(count: usize) -> Vec<f32> {
    (0..count)
        .map(|i| (f64::from(lowbias32(i as u32) >> 8) / f64::from(1u32 << 24)) as f32)
        .collect()
}

/// The fixture batch `(4, 32, 32, 3)`.
pub fn formula_images() -> Vec<f32> {
    formula_inputs(BATCH * 32 * 32 * 3)
}

/// The README's test vectors of the formulas.
pub fn check_formula_vectors() {
    let h: Vec<u32> = (0..5).map(lowbias32).collect();
    assert_eq!(
        h,
        [0, 1753845952, 3507691905, 1408362973, 3648937681],
        "lowbias32(0..5)"
    );
    let bits =
        |k, n, kind| -> Vec<u32> { formula(k, n, kind).iter().map(|x| x.to_bits()).collect() };
    assert_eq!(
        bits(0, 4, Kind::Plain),
        [0xbd49_9e92, 0x3c48_688d, 0xbd40_9ab6, 0xbd33_ed88],
        "k=0 plain"
    );
    assert_eq!(
        bits(7, 3, Kind::Gamma),
        [0x3f7c_e52f, 0x3f76_d692, 0x3f81_1466],
        "k=7 gamma"
    );
    assert_eq!(
        bits(9, 3, Kind::MovingVariance),
        [0x3f81_fef0, 0x3f85_818f, 0x3f81_8ccb],
        "k=9 moving_variance"
    );
    let x = formula_inputs(6);
    let want = [
        0.0,
        0.408_349_04,
        0.816_698_1,
        0.327_91,
        0.849_584_46,
        0.360_440_55,
    ];
    for (i, (a, b)) in x.iter().zip(want).enumerate() {
        assert!(
            (f64::from(*a) - b).abs() < 1e-7,
            "input formula element {i}: {a} vs {b}"
        );
    }
}

/// An array read from a fixture file (values widened to f64).
#[derive(Clone, Debug)]
pub struct Arr {
    /// Shape.
    pub shape: Vec<usize>,
    /// Row-major values.
    pub data: Vec<f64>,
}

fn parse_npy(bytes: &[u8], name: &str) -> Arr {
    let a = simclr::npy::parse(bytes, name).unwrap_or_else(|e| panic!("{e}"));
    Arr {
        shape: a.shape.clone(),
        data: a.to_f64(),
    }
}

/// Reads a `.npy` file.
pub fn npy(path: &Path) -> Arr {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    parse_npy(&bytes, &path.display().to_string())
}

fn u16le(b: &[u8], at: usize) -> usize {
    usize::from(u16::from_le_bytes([b[at], b[at + 1]]))
}

fn u32le(b: &[u8], at: usize) -> u64 {
    u64::from(u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]))
}

fn u64le(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// Reads a `.npz` (a zip of `.npy` files, stored or deflated, zip64
/// sizes understood) into a map keyed by member name without `.npy`.
pub fn npz(path: &Path) -> HashMap<String, Arr> {
    let b = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let what = path.display().to_string();
    let eocd = (0..=b.len().saturating_sub(22))
        .rev()
        .find(|&i| u32le(&b, i) == 0x0605_4b50)
        .unwrap_or_else(|| panic!("{what}: no zip end-of-central-directory record"));
    let count = u16le(&b, eocd + 10);
    let mut at = u32le(&b, eocd + 16) as usize;
    let mut out = HashMap::new();
    for _ in 0..count {
        assert_eq!(
            u32le(&b, at),
            0x0201_4b50,
            "{what}: bad central directory entry"
        );
        let method = u16le(&b, at + 10);
        let mut csize = u32le(&b, at + 20);
        let mut usize_ = u32le(&b, at + 24);
        let name_len = u16le(&b, at + 28);
        let extra_len = u16le(&b, at + 30);
        let comment_len = u16le(&b, at + 32);
        let mut local = u32le(&b, at + 42);
        let name = String::from_utf8_lossy(&b[at + 46..at + 46 + name_len]).to_string();
        // Zip64 extended information: the fields whose 32-bit value is all ones.
        let extra = &b[at + 46 + name_len..at + 46 + name_len + extra_len];
        let mut e = 0;
        while e + 4 <= extra.len() {
            let id = u16le(extra, e);
            let size = u16le(extra, e + 2);
            if id == 1 {
                let mut f = e + 4;
                for field in [&mut usize_, &mut csize, &mut local] {
                    if *field == 0xFFFF_FFFF {
                        *field = u64le(extra, f);
                        f += 8;
                    }
                }
            }
            e += 4 + size;
        }
        at += 46 + name_len + extra_len + comment_len;
        let l = local as usize;
        assert_eq!(
            u32le(&b, l),
            0x0403_4b50,
            "{what}: bad local header for {name}"
        );
        let start = l + 30 + u16le(&b, l + 26) + u16le(&b, l + 28);
        let raw = &b[start..start + csize as usize];
        let content = match method {
            0 => raw.to_vec(),
            8 => {
                let mut v = Vec::with_capacity(usize_ as usize);
                flate2::read::DeflateDecoder::new(raw)
                    .read_to_end(&mut v)
                    .unwrap_or_else(|e| panic!("{what}: {name}: {e}"));
                v
            }
            m => panic!("{what}: {name}: zip compression method {m} is not supported"),
        };
        assert_eq!(content.len() as u64, usize_, "{what}: {name}: size");
        let key = name.strip_suffix(".npy").unwrap_or(&name).to_string();
        let arr = parse_npy(&content, &format!("{what}:{name}"));
        out.insert(key, arr);
    }
    out
}

/// Reads a JSON file.
pub fn json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// One model variable of the fixture.
#[derive(Clone, Debug)]
pub struct VarInfo {
    /// TF1 name (the crate's).
    pub tf1: String,
    /// TF2 name (with `:0`).
    pub tf2: String,
    /// Sorted index of the TF2 name.
    pub k: u32,
    /// Shape.
    pub shape: Vec<i64>,
    /// Trainable.
    pub trainable: bool,
    /// Formula kind (from `variables.json`).
    pub kind: Kind,
}

/// The fixture's variables and name map.
pub struct Fixture {
    /// In TF1 creation order.
    pub vars: Vec<VarInfo>,
}

impl Fixture {
    /// Reads `tf1_variables.json` and `variables.json`.
    pub fn load() -> Fixture {
        let tf1 = json(&tf1_dir().join("tf1_variables.json"));
        let tf2 = json(&tf2_dir().join("variables.json"));
        let kinds: HashMap<String, Kind> = tf2["variables"]
            .as_array()
            .expect("variables")
            .iter()
            .map(|v| {
                let kind = match v["kind"].as_str().expect("kind") {
                    "gamma" => Kind::Gamma,
                    "moving_variance" => Kind::MovingVariance,
                    _ => Kind::Plain,
                };
                (v["name"].as_str().expect("name").to_string(), kind)
            })
            .collect();
        let vars = tf1
            .as_array()
            .expect("tf1_variables.json is a list")
            .iter()
            .map(|v| {
                let tf2 = v["tf2_name"].as_str().expect("tf2_name").to_string();
                let kind = kinds[&tf2];
                let tf1 = v["tf1_name"].as_str().expect("tf1_name").to_string();
                assert_eq!(
                    kind,
                    Kind::of(&tf1),
                    "{tf1}: kind by name and by variables.json"
                );
                VarInfo {
                    tf1,
                    k: v["k"].as_u64().expect("k") as u32,
                    shape: v["shape"]
                        .as_array()
                        .expect("shape")
                        .iter()
                        .map(|d| d.as_i64().expect("dim"))
                        .collect(),
                    trainable: v["trainable"].as_bool().expect("trainable"),
                    kind,
                    tf2,
                }
            })
            .collect();
        Fixture { vars }
    }

    /// The variable with TF2 name `tf2`.
    pub fn by_tf2(&self, tf2: &str) -> &VarInfo {
        self.vars
            .iter()
            .find(|v| v.tf2 == tf2)
            .unwrap_or_else(|| panic!("{tf2} is not in tf1_variables.json"))
    }

    /// The TF1 name of TF2 variable `tf2`.
    pub fn tf1_name(&self, tf2: &str) -> String {
        self.by_tf2(tf2).tf1.clone()
    }

    /// Every variable's formula value, by TF1 name.
    pub fn formula_values(&self) -> HashMap<String, Vec<f32>> {
        self.vars
            .iter()
            .map(|v| {
                let n = v.shape.iter().product::<i64>() as usize;
                (v.tf1.clone(), formula(v.k, n, v.kind))
            })
            .collect()
    }
}

/// Tolerances derived from `tolerances_observed.json`: twice the largest
/// spread TF showed between its own implementations (oneDNN on/off,
/// one-pass vs two-pass BN variance, TF1 vs TF2 code) for the quantity.
pub struct Tolerances {
    json: serde_json::Value,
}

/// How much looser than TF's own spread a check may be.
pub const SPREAD_FACTOR: f64 = 2.0;

const R18_RUNS: [&str; 2] = ["r18__onednn", "r18__gbnfalse"];

impl Tolerances {
    /// Reads the file.
    pub fn load() -> Tolerances {
        Tolerances {
            json: json(&fixtures().join("tolerances_observed.json")),
        }
    }

    fn rel_of(&self, key: &str) -> Option<f64> {
        let mut best: Option<f64> = None;
        let mut take = |x: Option<f64>| {
            if let Some(x) = x {
                best = Some(best.map_or(x, |b: f64| b.max(x)));
            }
        };
        for run in R18_RUNS {
            take(self.json[run]["outputs"][key]["rel"].as_f64());
        }
        let t = &self.json["r18__tf1_vs_tf2"][key];
        if let (Some(d), Some(r)) = (t["max_abs_diff"].as_f64(), t["max_abs_ref"].as_f64()) {
            take(Some(d / r));
        }
        best
    }

    /// The largest recorded spread of any output of mode `prefix`.
    fn max_over(&self, prefix: &str) -> f64 {
        let head = format!("{prefix}_");
        let matches = |k: &str| {
            k.starts_with(&head)
                && (prefix == "eval_calibrated" || !k.starts_with("eval_calibrated"))
        };
        let mut best = 0.0f64;
        for run in R18_RUNS {
            if let Some(o) = self.json[run]["outputs"].as_object() {
                for (_, v) in o.iter().filter(|(k, _)| matches(k)) {
                    best = best.max(v["rel"].as_f64().unwrap_or(0.0));
                }
            }
        }
        if let Some(o) = self.json["r18__tf1_vs_tf2"].as_object() {
            for (_, t) in o.iter().filter(|(k, _)| matches(k)) {
                if let (Some(d), Some(r)) = (t["max_abs_diff"].as_f64(), t["max_abs_ref"].as_f64())
                {
                    best = best.max(d / r);
                }
            }
        }
        best
    }

    /// Relative tolerance (max |diff| / max |ref|) for tap `tap` in mode
    /// `prefix` (`train`, `eval`, `eval_calibrated`): the tap's own spread
    /// where recorded, else the largest spread of that mode. The calibrated
    /// inference inherits the training spread (its statistics are the
    /// training batch's).
    pub fn output(&self, prefix: &str, tap: &str) -> f64 {
        let own = self.rel_of(&format!("{prefix}_{tap}"));
        let fallback = match prefix {
            "eval_calibrated" => self.max_over("train").max(self.max_over("eval_calibrated")),
            p => self.max_over(p),
        };
        let base = match (prefix, own) {
            (_, Some(x)) if x > 0.0 => x,
            ("eval_calibrated", _) => self
                .rel_of(&format!("train_{tap}"))
                .filter(|x| *x > 0.0)
                .unwrap_or(fallback),
            _ => fallback,
        };
        SPREAD_FACTOR * base
    }

    /// Relative L2 tolerance of a gradient tensor.
    pub fn gradient(&self) -> f64 {
        let mut best = 0.0f64;
        for run in R18_RUNS {
            best = best.max(
                self.json[run]["grads_rel_l2_max"][0]
                    .as_f64()
                    .unwrap_or(0.0),
            );
        }
        best = best.max(
            self.json["r18__tf1_vs_tf2"]["grads_vs_tf2"]["max_rel_l2"]
                .as_f64()
                .unwrap_or(0.0),
        );
        SPREAD_FACTOR * best
    }

    /// Relative tolerance of BN moving statistics (TF1 vs TF2 after one
    /// training forward, relative to the statistics' scale of about 1, or
    /// the spread of the training-mode outputs they come from, whichever
    /// is larger).
    pub fn moving(&self) -> f64 {
        let t = &self.json["r18__tf1_vs_tf2"]["bn_moving_after_train_step_vs_tf2"];
        let stats = t
            .as_object()
            .map(|o| o.values().filter_map(|v| v.as_f64()).fold(0.0, f64::max))
            .unwrap_or(0.0);
        SPREAD_FACTOR * stats.max(self.output_spread_of_stats())
    }

    fn output_spread_of_stats(&self) -> f64 {
        self.rel_of("train_final_avg_pool").unwrap_or(0.0)
    }

    /// Relative tolerance of LARS results after a training step (the
    /// largest spread of any stored output file, which is a LARS slot).
    pub fn lars_update(&self) -> f64 {
        let mut best = 0.0f64;
        for run in R18_RUNS {
            best = best.max(
                self.json[run]["max_rel_any_output_file"][0]
                    .as_f64()
                    .unwrap_or(0.0),
            );
        }
        SPREAD_FACTOR * best
    }

    /// Relative tolerance of the LARS update alone on TF's own gradients:
    /// float32 arithmetic of the norms and the update (a few ulps).
    pub fn lars_exact(&self) -> f64 {
        1e-5
    }
}

/// Asserts max |got − want| ≤ `tol` · max |want| (and equal shapes).
/// Returns the relative error.
pub fn assert_close(what: &str, dims: &[i64], got: &[f32], want: &Arr, tol: f64) -> f64 {
    let wd: Vec<i64> = want.shape.iter().map(|&d| d as i64).collect();
    let gd: Vec<i64> = if dims.is_empty() {
        vec![]
    } else {
        dims.to_vec()
    };
    assert_eq!(gd, wd, "{what}: shape");
    assert_eq!(got.len(), want.data.len(), "{what}: element count");
    let max_ref = want.data.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    let (mut worst, mut at) = (0.0f64, 0usize);
    for (i, (g, w)) in got.iter().zip(&want.data).enumerate() {
        let d = (f64::from(*g) - w).abs();
        if d > worst || d.is_nan() {
            worst = if d.is_nan() { f64::INFINITY } else { d };
            at = i;
        }
    }
    let rel = worst / max_ref.max(1e-30);
    eprintln!(
        "{what}: rel {rel:.2e} (max |diff| {worst:.2e}, max |ref| {max_ref:.3e}, tol {tol:.1e})"
    );
    assert!(
        rel <= tol,
        "{what}: max |diff| {worst:.3e} at flat index {at} (got {}, want {}), {rel:.3e} of max |ref| {max_ref:.3e}; tolerance {tol:.1e}",
        got[at],
        want.data[at]
    );
    rel
}

/// Asserts ‖got − want‖₂ ≤ `tol` · ‖want‖₂ (and equal shapes). Returns the
/// relative L2 error.
pub fn assert_rel_l2(what: &str, dims: &[i64], got: &[f32], want: &Arr, tol: f64) -> f64 {
    let rel = rel_l2(what, dims, got, want);
    assert!(rel.0 <= tol, "{}; tolerance {tol:.1e}", rel.1);
    rel.0
}

/// The relative L2 error ‖got − want‖₂ / ‖want‖₂ and a message naming the
/// tensor and its largest difference.
pub fn rel_l2(what: &str, dims: &[i64], got: &[f32], want: &Arr) -> (f64, String) {
    let wd: Vec<i64> = want.shape.iter().map(|&d| d as i64).collect();
    assert_eq!(dims, wd.as_slice(), "{what}: shape");
    let mut num = 0.0;
    let mut den = 0.0;
    let (mut worst, mut at) = (0.0f64, 0usize);
    for (i, (g, w)) in got.iter().zip(&want.data).enumerate() {
        let d = f64::from(*g) - w;
        num += d * d;
        den += w * w;
        if d.abs() > worst || d.is_nan() {
            worst = if d.is_nan() { f64::INFINITY } else { d.abs() };
            at = i;
        }
    }
    let rel = (num / den.max(1e-300)).sqrt();
    let msg = format!(
        "{what}: relative L2 error {rel:.3e}; largest difference {worst:.3e} at flat index {at} (got {}, want {})",
        got[at], want.data[at]
    );
    (rel, msg)
}

/// One float32 ulp at `x`.
pub fn ulp32(x: f64) -> f64 {
    let f = (x.abs() as f32).max(f32::MIN_POSITIVE);
    f64::from(f32::from_bits(f.to_bits() + 1) - f)
}

/// Asserts that `got` (a parameter after an update from `start`) equals
/// `want` to `tol` of the largest stored update plus two float32 ulps of
/// the value (the update is small next to the parameter).
pub fn assert_update_close(
    what: &str,
    dims: &[i64],
    start: &[f32],
    got: &[f32],
    want: &Arr,
    tol: f64,
) {
    let wd: Vec<i64> = want.shape.iter().map(|&d| d as i64).collect();
    assert_eq!(dims, wd.as_slice(), "{what}: shape");
    let max_update = start
        .iter()
        .zip(&want.data)
        .fold(0.0f64, |m, (s, w)| m.max((w - f64::from(*s)).abs()));
    let mut worst = (0.0f64, 0usize, 0.0f64);
    for (i, (g, w)) in got.iter().zip(&want.data).enumerate() {
        let d = (f64::from(*g) - w).abs();
        let allowed = tol * max_update + 2.0 * ulp32(*w);
        let ratio = if d.is_nan() {
            f64::INFINITY
        } else {
            d / allowed
        };
        if ratio > worst.0 {
            worst = (ratio, i, d);
        }
    }
    let (ratio, at, d) = worst;
    eprintln!(
        "{what}: max |diff| {d:.2e} = {:.2e} of the largest update {max_update:.3e} (tol {tol:.1e} + 2 ulp)",
        d / max_update.max(1e-30)
    );
    assert!(
        ratio <= 1.0,
        "{what}: |diff| {d:.3e} at flat index {at} (got {}, want {}, start {}) is {ratio:.2} × the allowance ({tol:.1e} of the largest update {max_update:.3e} + 2 ulp)",
        got[at],
        want.data[at],
        start[at]
    );
}
