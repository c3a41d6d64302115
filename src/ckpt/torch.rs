//! PyTorch state dicts in safetensors: any checkpoint `simclr ckpt info`
//! describes becomes the state dict of torchvision's `resnet18/34/50/101/152`
//! ([`Layout::Torchvision`]) or of `tools/torch/simclr_resnet.py`
//! ([`Layout::Simclr`]: every width, SK, SE, CIFAR stem, both heads), and
//! such a state dict becomes a simclr checkpoint again.
//!
//! Names: TF1 variables are numbered by creation order
//! (`base_model/conv2d_<k>`, `base_model/batch_normalization_<k>`); [`plan`]
//! walks the architecture in that order and gives every conv and batch
//! norm its PyTorch module path (`conv1`, `bn1`, `layer<s>.<i>.conv<j>`,
//! `layer<s>.<i>.downsample.<j>`, SK: `conv2` to 2f channels, `sk_reduce`,
//! `sk_bn`, `sk_expand`, SE: `se.reduce`, `se.expand`; heads: `head.<j>.linear`,
//! `head.<j>.bn`, `fc`). Values: conv kernels HWIO → OIHW, dense kernels
//! `[in, out]` → `[out, in]`, BN `gamma/beta/moving_mean/moving_variance` →
//! `weight/bias/running_mean/running_var`, plus `num_batches_tracked`
//! (int64, the checkpoint's `global_step`). Both directions are exact
//! permutations of the stored bits.

use super::infer::{self, Architecture};
use super::{tf2, DType, Error, Result, Source, Tensor};
use crate::nn::resnet::depth_layout;
use crate::nn::{ModelConfig, ProjHeadMode};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Which PyTorch model the state dict is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Layout {
    /// torchvision's `resnet18/34/50/101/152` (width 1×, no SK/SE,
    /// ImageNet stem; the supervised head as `fc`).
    Torchvision,
    /// `tools/torch/simclr_resnet.py`'s `SimCLRResNet` (everything).
    Simclr,
}

impl Layout {
    /// `"torchvision"` or `"simclr"`.
    pub fn name(self) -> &'static str {
        match self {
            Layout::Torchvision => "torchvision",
            Layout::Simclr => "simclr",
        }
    }
}

/// How a value is rearranged from TF to PyTorch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transform {
    /// Conv kernel `[h, w, in, out]` → `[out, in, h, w]`.
    ConvKernel,
    /// Dense kernel `[in, out]` → `[out, in]`.
    DenseKernel,
    /// Kept as is (vectors).
    Same,
}

impl Transform {
    /// The PyTorch dims of TF dims.
    pub fn torch_dims(self, d: &[u64]) -> Vec<u64> {
        match (self, d) {
            (Transform::ConvKernel, [h, w, i, o]) => vec![*o, *i, *h, *w],
            (Transform::DenseKernel, [i, o]) => vec![*o, *i],
            _ => d.to_vec(),
        }
    }
}

/// One model variable: its TF1 name, PyTorch key, dims on both sides.
#[derive(Clone, Debug, PartialEq)]
pub struct Pair {
    /// TF1 variable name.
    pub tf: String,
    /// PyTorch state-dict key.
    pub torch: String,
    /// Rearrangement.
    pub transform: Transform,
    /// TF dims.
    pub tf_dims: Vec<u64>,
    /// PyTorch dims.
    pub torch_dims: Vec<u64>,
}

/// Every variable of a model in both namings, and the PyTorch batch-norm
/// modules (each has a `num_batches_tracked`).
#[derive(Clone, Debug, Default)]
pub struct Plan {
    /// Variables in TF1 creation order.
    pub pairs: Vec<Pair>,
    /// Module paths of the batch norms, in creation order.
    pub bn_modules: Vec<String>,
}

/// The PyTorch module paths of the backbone's convs and batch norms in TF1
/// creation order (see `crate::nn::resnet`).
fn backbone_modules(cfg: &ModelConfig) -> (Vec<String>, Vec<String>) {
    let (layout, bottleneck) = depth_layout(cfg.resnet_depth).unwrap_or(([2, 2, 2, 2], false));
    let sk = cfg.sk_ratio > 0.0;
    let se = cfg.se_ratio > 0.0;
    let mut convs = vec![];
    let mut bns = vec![];
    if cfg.image_size > 32 && sk {
        for j in 0..3 {
            convs.push(format!("conv1.{j}"));
            bns.push(format!("bn1.{j}"));
        }
    } else {
        convs.push("conv1".to_string());
        bns.push("bn1".to_string());
    }
    for (s, &blocks) in layout.iter().enumerate() {
        for i in 0..blocks {
            let p = format!("layer{}.{i}", s + 1);
            if i == 0 {
                let (c, b) = if sk { (1, 2) } else { (0, 1) };
                convs.push(format!("{p}.downsample.{c}"));
                bns.push(format!("{p}.downsample.{b}"));
            }
            convs.push(format!("{p}.conv1"));
            bns.push(format!("{p}.bn1"));
            convs.push(format!("{p}.conv2"));
            if bottleneck {
                bns.push(format!("{p}.bn2"));
                if sk {
                    convs.push(format!("{p}.sk_reduce"));
                    bns.push(format!("{p}.sk_bn"));
                    convs.push(format!("{p}.sk_expand"));
                }
                convs.push(format!("{p}.conv3"));
                bns.push(format!("{p}.bn3"));
            } else {
                bns.push(format!("{p}.bn2"));
            }
            if se {
                convs.push(format!("{p}.se.reduce"));
                convs.push(format!("{p}.se.expand"));
            }
        }
    }
    (convs, bns)
}

/// `prefix[_k]suffix` → k (no suffix number is 0).
fn numbered(name: &str, prefix: &str) -> Option<(usize, String)> {
    let rest = name.strip_prefix(prefix)?;
    let (num, field) = rest.split_once('/')?;
    let k = if num.is_empty() {
        0
    } else {
        num.strip_prefix('_')?.parse().ok().filter(|&k| k > 0)?
    };
    Some((k, field.to_string()))
}

fn bn_field(f: &str) -> Option<&'static str> {
    Some(match f {
        "gamma" => "weight",
        "beta" => "bias",
        "moving_mean" => "running_mean",
        "moving_variance" => "running_var",
        _ => return None,
    })
}

/// Widths of the projection list `[h, out_0, …]` that `--ft_proj_selector`
/// indexes.
fn proj_widths(cfg: &ModelConfig) -> Vec<u64> {
    let h = cfg.feature_dim() as u64;
    let mut w = vec![h];
    match cfg.proj_head_mode {
        ProjHeadMode::None => {}
        ProjHeadMode::Linear => w.push(u64::from(cfg.proj_out_dim)),
        ProjHeadMode::Nonlinear => {
            for j in 0..cfg.num_proj_layers {
                w.push(if j + 1 == cfg.num_proj_layers {
                    u64::from(cfg.proj_out_dim)
                } else {
                    h
                });
            }
        }
    }
    w
}

/// The variables of the model `cfg` builds, in both namings, leaving out
/// the projection head unless `proj` and the supervised head unless `sup`;
/// the supervised head reads entry `selector` of the projection list.
pub fn plan(cfg: &ModelConfig, proj: bool, sup: bool, selector: i32) -> Result<Plan> {
    let vars = crate::nn::variables(cfg)
        .map_err(|e| Error::Invalid(format!("the model does not build: {e}")))?;
    let widths = proj_widths(cfg);
    let idx = if selector < 0 {
        widths.len() as i64 + i64::from(selector)
    } else {
        i64::from(selector)
    };
    let sup_in = usize::try_from(idx)
        .ok()
        .and_then(|i| widths.get(i).copied())
        .ok_or_else(|| {
            Error::Invalid(format!(
                "ft_proj_selector {selector} is out of range for a projection list of {} entries",
                widths.len()
            ))
        })?;
    let (convs, bns) = backbone_modules(cfg);
    let mut out = Plan::default();
    let mut bn_seen = BTreeSet::new();
    let internal = |n: &str| Error::Invalid(format!("no PyTorch name for the variable {n}"));
    for v in &vars {
        let n = v.name.as_str();
        let mut tf_dims: Vec<u64> = v.shape.dims.iter().map(|&d| d.max(0) as u64).collect();
        if n == "head_supervised/linear_layer/dense/kernel" && tf_dims.len() == 2 {
            tf_dims[0] = sup_in;
        }
        let (torch, transform, bn_module) = if let Some((k, f)) = numbered(n, "base_model/conv2d") {
            let m = convs.get(k).ok_or_else(|| internal(n))?;
            match f.as_str() {
                "kernel" => (format!("{m}.weight"), Transform::ConvKernel, None),
                "bias" => (format!("{m}.bias"), Transform::Same, None),
                _ => return Err(internal(n)),
            }
        } else if let Some((k, f)) = numbered(n, "base_model/batch_normalization") {
            let m = bns.get(k).ok_or_else(|| internal(n))?;
            let f = bn_field(&f).ok_or_else(|| internal(n))?;
            (format!("{m}.{f}"), Transform::Same, Some(m.clone()))
        } else if let Some(rest) = n.strip_prefix("head_contrastive/") {
            if !proj {
                continue;
            }
            let (layer, field) = rest.split_once('/').ok_or_else(|| internal(n))?;
            let j: usize = match layer.strip_prefix("nl_") {
                Some(j) => j.parse().map_err(|_| internal(n))?,
                None if layer == "l_0" => 0,
                None => return Err(internal(n)),
            };
            let m = format!("head.{j}");
            if field == "dense/kernel" {
                (format!("{m}.linear.weight"), Transform::DenseKernel, None)
            } else {
                let f = field
                    .strip_prefix("batch_normalization/")
                    .and_then(bn_field)
                    .ok_or_else(|| internal(n))?;
                (
                    format!("{m}.bn.{f}"),
                    Transform::Same,
                    Some(format!("{m}.bn")),
                )
            }
        } else if let Some(f) = n.strip_prefix("head_supervised/linear_layer/dense/") {
            if !sup {
                continue;
            }
            match f {
                "kernel" => ("fc.weight".to_string(), Transform::DenseKernel, None),
                "bias" => ("fc.bias".to_string(), Transform::Same, None),
                _ => return Err(internal(n)),
            }
        } else {
            return Err(internal(n));
        };
        if let Some(m) = bn_module {
            if bn_seen.insert(m.clone()) {
                out.bn_modules.push(m);
            }
        }
        out.pairs.push(Pair {
            tf: v.name.clone(),
            torch,
            transform,
            torch_dims: transform.torch_dims(&tf_dims),
            tf_dims,
        });
    }
    Ok(out)
}

/// Permutes a row-major array of `dims` (element size `size`) so that
/// output axis j is input axis `perm[j]` (up to 4 axes).
fn permute(bytes: &[u8], dims: &[u64], perm: &[usize], size: usize) -> Vec<u8> {
    let nd = dims.len();
    let mut in_strides = [0usize; 4];
    let mut acc = 1usize;
    for a in (0..nd).rev() {
        in_strides[a] = acc;
        acc *= dims[a] as usize;
    }
    // Output dims and the matching input strides, padded to 4 axes.
    let mut od = [1usize; 4];
    let mut st = [0usize; 4];
    for (j, &p) in perm.iter().enumerate() {
        od[4 - nd + j] = dims[p] as usize;
        st[4 - nd + j] = in_strides[p];
    }
    let mut out = vec![0u8; bytes.len()];
    let mut k = 0usize;
    for a in 0..od[0] {
        for b in 0..od[1] {
            for c in 0..od[2] {
                let base = a * st[0] + b * st[1] + c * st[2];
                for d in 0..od[3] {
                    let s = (base + d * st[3]) * size;
                    out[k..k + size].copy_from_slice(&bytes[s..s + size]);
                    k += size;
                }
            }
        }
    }
    out
}

/// TF → PyTorch for one tensor of a [`Pair`].
pub fn to_torch(t: &Tensor, transform: Transform) -> Result<Tensor> {
    let size = t
        .dtype
        .size()
        .ok_or_else(|| Error::Invalid("string tensors have no PyTorch counterpart".to_string()))?;
    let perm: &[usize] = match (transform, t.dims.len()) {
        (Transform::ConvKernel, 4) => &[3, 2, 0, 1],
        (Transform::DenseKernel, 2) => &[1, 0],
        (Transform::Same, _) => return Ok(t.clone()),
        _ => {
            return Err(Error::Invalid(format!(
                "a {transform:?} needs {} dims, got {:?}",
                if transform == Transform::ConvKernel {
                    4
                } else {
                    2
                },
                t.dims
            )))
        }
    };
    Tensor::new(
        t.dtype,
        transform.torch_dims(&t.dims),
        permute(&t.bytes, &t.dims, perm, size),
    )
}

/// PyTorch → TF for one tensor of a [`Pair`].
pub fn from_torch(t: &Tensor, transform: Transform) -> Result<Tensor> {
    let size = t.dtype.size().ok_or_else(|| {
        Error::Invalid("string tensors have no TensorFlow variable counterpart".to_string())
    })?;
    let (perm, dims): (&[usize], Vec<u64>) = match (transform, t.dims.as_slice()) {
        (Transform::ConvKernel, [o, i, h, w]) => (&[2, 3, 1, 0], vec![*h, *w, *i, *o]),
        (Transform::DenseKernel, [o, i]) => (&[1, 0], vec![*i, *o]),
        (Transform::Same, _) => return Ok(t.clone()),
        _ => {
            return Err(Error::Invalid(format!(
                "a {transform:?} cannot take dims {:?}",
                t.dims
            )))
        }
    };
    Tensor::new(t.dtype, dims, permute(&t.bytes, &t.dims, perm, size))
}

/// The architecture file written beside the safetensors (`OUT.json`).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TorchArch {
    /// `"torchvision"` or `"simclr"`.
    pub layout: String,
    /// 18, 34, 50, 101, 152 or 200.
    pub resnet_depth: u32,
    /// 1, 2, 3, …
    pub width_multiplier: u32,
    /// Selective-kernel reduction ratio (0: no SK).
    pub sk_ratio: f64,
    /// Squeeze-and-excitation ratio (0: no SE).
    pub se_ratio: f64,
    /// The CIFAR stem (3×3/1 conv, no max pool).
    pub cifar_stem: bool,
    /// `"none"`, `"linear"` or `"nonlinear"` (`"none"` when absent).
    pub proj_head_mode: String,
    /// Projection-head layers (0 when absent).
    pub num_proj_layers: u32,
    /// Projection output width (0 when absent).
    pub proj_out_dim: u32,
    /// Classes of the supervised head (`null` when absent).
    pub num_classes: Option<u32>,
    /// Which projection-list entry feeds the supervised head.
    pub ft_proj_selector: i32,
    /// Batch-norm epsilon.
    pub bn_epsilon: f64,
    /// The checkpoint converted.
    pub source: String,
    /// Tensors written.
    pub tensors: usize,
    /// Checkpoint tensors not written, with the reason.
    pub left_out: Vec<LeftOut>,
}

/// A checkpoint tensor a conversion did not carry over, and why.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LeftOut {
    /// Its name in the source.
    pub name: String,
    /// Why it was left out.
    pub reason: String,
}

/// What [`export`] made.
#[derive(Debug)]
pub struct Exported {
    /// The state dict.
    pub tensors: BTreeMap<String, Tensor>,
    /// The architecture file.
    pub arch: TorchArch,
    /// The inferred architecture (for reporting).
    pub inferred: Architecture,
}

fn mode_name(m: ProjHeadMode) -> &'static str {
    match m {
        ProjHeadMode::None => "none",
        ProjHeadMode::Linear => "linear",
        ProjHeadMode::Nonlinear => "nonlinear",
    }
}

/// Converts the model variables of `src` (TF1 names or TF2 object paths, or
/// a native checkpoint) into a PyTorch state dict of `layout`.
pub fn export(src: &Source, layout: Layout) -> Result<Exported> {
    let entries = src.entries();
    // TF1 name → the source's own key.
    let mut key_of: BTreeMap<String, String> = BTreeMap::new();
    let tf2_map = tf2::map_keys(entries.iter().map(|e| e.name.as_str()));
    for e in &entries {
        if e.name.ends_with(tf2::SUFFIX) {
            for n in tf2_map.get(&e.name).into_iter().flatten() {
                key_of.entry(n.clone()).or_insert_with(|| e.name.clone());
            }
        } else {
            key_of.insert(e.name.clone(), e.name.clone());
        }
    }
    let view = tf2::tf1_view(&entries);
    let arch = infer::infer(&view)?;
    let cfg = arch.model_config();
    let proj = arch.projection_head.is_some();
    let sup = arch.num_classes.is_some();
    let selector = arch.ft_proj_selector_hint().unwrap_or(0);
    let plan = plan(&cfg, proj, sup, selector)?;
    if layout == Layout::Torchvision {
        let mut why = vec![];
        if arch.width_multiplier != 1 {
            why.push(format!("width {}×", arch.width_multiplier));
        }
        if arch.sk_ratio > 0.0 {
            why.push("selective kernels".to_string());
        }
        if arch.se_ratio > 0.0 {
            why.push("squeeze-and-excitation".to_string());
        }
        if arch.cifar_stem {
            why.push("the CIFAR stem".to_string());
        }
        if arch.resnet_depth == 200 {
            why.push("depth 200".to_string());
        }
        if sup && selector != 0 {
            why.push("a supervised head on the projection output".to_string());
        }
        if !why.is_empty() {
            return Err(Error::Invalid(format!(
                "torchvision's ResNet cannot hold this ResNet-{} (it has {}); use --layout=simclr and tools/torch/simclr_resnet.py",
                arch.resnet_depth,
                why.join(", ")
            )));
        }
    }
    const STEP_KEYS: [&str; 2] = ["global_step", "global_step/.ATTRIBUTES/VARIABLE_VALUE"];
    let step = entries
        .iter()
        .find(|e| STEP_KEYS.contains(&e.name.as_str()))
        .map(|e| src.read(&e.name))
        .transpose()?
        .and_then(|t| t.as_i64())
        .unwrap_or(0);
    let mut tensors = BTreeMap::new();
    let mut used: BTreeSet<String> = BTreeSet::new();
    for p in &plan.pairs {
        if layout == Layout::Torchvision && p.torch.starts_with("head.") {
            continue;
        }
        let key = key_of.get(&p.tf).ok_or_else(|| Error::MissingTensor {
            path: src.path(),
            name: p.tf.clone(),
        })?;
        let t = src.read(key)?;
        if t.dims != p.tf_dims {
            return Err(Error::ShapeMismatch {
                name: p.tf.clone(),
                checkpoint: t.dims.clone(),
                model: p.tf_dims.clone(),
                hint: "the checkpoint does not fit the architecture inferred from it".into(),
            });
        }
        if t.dtype != DType::F32 {
            return Err(Error::Invalid(format!(
                "{}: {} is {}, expected float32",
                src.path().display(),
                key,
                t.dtype
            )));
        }
        tensors.insert(p.torch.clone(), to_torch(&t, p.transform)?);
        used.insert(key.clone());
    }
    for m in &plan.bn_modules {
        if layout == Layout::Torchvision && m.starts_with("head.") {
            continue;
        }
        tensors.insert(format!("{m}.num_batches_tracked"), Tensor::scalar_i64(step));
    }
    let mut left_out = vec![];
    for e in &entries {
        if used.contains(&e.name) {
            continue;
        }
        let n = e.name.as_str();
        let tf1 = tf2_map
            .get(n)
            .and_then(|v| v.first())
            .map_or(n, String::as_str);
        let reason = if super::import::is_optimizer_slot(n) {
            "optimizer slot: training state, not part of a PyTorch model's state dict".to_string()
        } else if STEP_KEYS.contains(&n) {
            format!("training step counter: written as every num_batches_tracked ({step})")
        } else if tf1.starts_with("head_contrastive/") && layout == Layout::Torchvision {
            "projection head: torchvision's ResNet has no place for it (use --layout=simclr)"
                .to_string()
        } else if n == "_CHECKPOINTABLE_OBJECT_GRAPH" {
            "TF2 object graph: the checkpoint's structure, not a tensor".to_string()
        } else {
            "not a variable of the inferred model".to_string()
        };
        left_out.push(LeftOut {
            name: e.name.clone(),
            reason,
        });
    }
    let head = arch.projection_head.as_ref();
    let torch_arch = TorchArch {
        layout: layout.name().to_string(),
        resnet_depth: arch.resnet_depth,
        width_multiplier: arch.width_multiplier,
        sk_ratio: arch.sk_ratio,
        se_ratio: arch.se_ratio,
        cifar_stem: arch.cifar_stem,
        proj_head_mode: match (layout, head) {
            (Layout::Simclr, Some(h)) => mode_name(h.mode).to_string(),
            _ => "none".to_string(),
        },
        num_proj_layers: match (layout, head) {
            (Layout::Simclr, Some(h)) => h.num_proj_layers,
            _ => 0,
        },
        proj_out_dim: match (layout, head) {
            (Layout::Simclr, Some(h)) => h.proj_out_dim,
            _ => 0,
        },
        num_classes: arch.num_classes,
        ft_proj_selector: selector,
        bn_epsilon: crate::nn::layers::BN_EPSILON,
        source: src.path().display().to_string(),
        tensors: tensors.len(),
        left_out,
    };
    Ok(Exported {
        tensors,
        arch: torch_arch,
        inferred: arch,
    })
}

/// The architecture file beside `out` (`X.safetensors` → `X.json`).
pub fn arch_path(out: &Path) -> PathBuf {
    out.with_extension("json")
}

/// Writes a plain safetensors file (no metadata), as PyTorch's
/// `safetensors.torch.load_file` reads it.
pub fn write_safetensors(path: &Path, tensors: &BTreeMap<String, Tensor>) -> Result<()> {
    let mut views = vec![];
    for (name, t) in tensors {
        let dtype = super::native::st_dtype(t.dtype).ok_or_else(|| {
            Error::Invalid(format!("{name}: {} has no safetensors type", t.dtype))
        })?;
        let shape: Vec<usize> = t.dims.iter().map(|&d| d as usize).collect();
        let view = safetensors::tensor::TensorView::new(dtype, shape, &t.bytes)
            .map_err(|e| Error::Invalid(format!("{name}: {e}")))?;
        views.push((name.clone(), view));
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(super::io_err(dir))?;
    }
    safetensors::serialize_to_file(views, None, path).map_err(|e| Error::Io {
        path: path.to_path_buf(),
        source: std::io::Error::other(e.to_string()),
    })
}

/// Reads every tensor of a plain safetensors file.
pub fn read_safetensors(path: &Path) -> Result<BTreeMap<String, Tensor>> {
    let bytes = std::fs::read(path).map_err(super::io_err(path))?;
    let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| Error::Corrupt {
        path: path.to_path_buf(),
        detail: format!("not a safetensors file: {e}"),
    })?;
    let mut out = BTreeMap::new();
    for (name, view) in st.tensors() {
        let dtype =
            super::native::from_st_dtype(view.dtype()).ok_or_else(|| Error::Unsupported {
                path: path.to_path_buf(),
                detail: format!("{name} has the unsupported dtype {:?}", view.dtype()),
            })?;
        let dims = view.shape().iter().map(|&d| d as u64).collect();
        out.insert(
            name.clone(),
            Tensor::new(dtype, dims, view.data().to_vec())?,
        );
    }
    Ok(out)
}

/// What [`import`] made.
#[derive(Debug)]
pub struct Imported {
    /// Model variables by TF1 name, plus `global_step`.
    pub tensors: BTreeMap<String, Tensor>,
    /// The model they build.
    pub cfg: ModelConfig,
    /// `--ft_proj_selector` of the supervised head.
    pub ft_proj_selector: i32,
    /// Whether there is a projection head / a supervised head.
    pub has_proj: bool,
    /// See `has_proj`.
    pub has_sup: bool,
    /// The step (`num_batches_tracked`).
    pub step: i64,
    /// Remarks for the user.
    pub notes: Vec<String>,
}

fn dims_of(sd: &BTreeMap<String, Tensor>, key: &str) -> Option<Vec<u64>> {
    sd.get(key).map(|t| t.dims.clone())
}

/// The model configuration a PyTorch state dict of either layout holds,
/// with `arch` (the JSON written beside it) settling what the keys cannot
/// tell (linear vs one-layer head, an SK ratio at the floor width, the
/// supervised head's input).
fn infer_torch(
    path: &Path,
    sd: &BTreeMap<String, Tensor>,
    arch: Option<&TorchArch>,
) -> Result<(ModelConfig, i32, bool, bool, Vec<String>)> {
    let bad = |m: String| Error::Invalid(format!("{}: {m}", path.display()));
    let mut notes = vec![];
    let deep = sd.contains_key("conv1.0.weight");
    let stem = if deep {
        "conv1.2.weight"
    } else {
        "conv1.weight"
    };
    let c1 = dims_of(sd, stem).ok_or_else(|| {
        bad("no stem convolution `conv1.weight` (nor `conv1.0.weight`): not a ResNet state dict of torchvision's or simclr_resnet.py's layout".into())
    })?;
    if c1.len() != 4 {
        return Err(bad(format!("{stem} has dims {c1:?}, expected 4 (OIHW)")));
    }
    let cifar = !deep && c1[2] == 3;
    let width = c1[0] / 64;
    if width == 0 || c1[0] % 64 != 0 {
        return Err(bad(format!(
            "{stem} has {} output channels, not a multiple of 64",
            c1[0]
        )));
    }
    let mut blocks = [0usize; 4];
    for k in sd.keys() {
        for (s, b) in blocks.iter_mut().enumerate() {
            if let Some(rest) = k.strip_prefix(&format!("layer{}.", s + 1)) {
                if let Some(i) = rest.split('.').next().and_then(|i| i.parse::<usize>().ok()) {
                    *b = (*b).max(i + 1);
                }
            }
        }
    }
    let bottleneck = sd.contains_key("layer1.0.conv3.weight");
    let depth = [18u32, 34, 50, 101, 152, 200]
        .into_iter()
        .find(|&d| depth_layout(d) == Some((blocks, bottleneck)))
        .ok_or_else(|| {
            bad(format!(
                "{blocks:?} {} blocks per stage match no ResNet depth (18, 34, 50, 101, 152, 200)",
                if bottleneck { "bottleneck" } else { "basic" }
            ))
        })?;
    // SK models project their shortcuts after an average pool, so the
    // first downsample's conv is `downsample.1` (a BN's weight otherwise);
    // the SK convolutions themselves exist only in bottleneck blocks.
    let sk = dims_of(sd, "layer1.0.downsample.1.weight").is_some_and(|d| d.len() == 4);
    let sk_convs = sd.contains_key("layer1.0.sk_reduce.weight");
    if bottleneck && sk != sk_convs {
        return Err(bad(format!(
            "the shortcuts are those of a{} selective-kernel network but the bottlenecks {} SK convolutions (layer1.0.sk_reduce)",
            if sk { "" } else { " non" },
            if sk_convs { "have" } else { "lack" }
        )));
    }
    if !cifar && deep != sk {
        return Err(bad(
            "selective kernels and the deep stem (conv1.0…conv1.2) come together in SimCLR's ResNets; this state dict has one without the other".into(),
        ));
    }
    let sk_ratio = if !sk {
        0.0
    } else if let Some(a) = arch.filter(|a| a.sk_ratio > 0.0) {
        a.sk_ratio
    } else {
        let mut best: Option<(u64, u64)> = None;
        for (k, t) in sd {
            if k.ends_with(".sk_reduce.weight") && t.dims.len() == 4 {
                let (m, f) = (t.dims[0], t.dims[1]);
                if best.is_none_or(|(bf, _)| f > bf) {
                    best = Some((f, m));
                }
            }
        }
        match best {
            Some((f, m)) if m > 32 => m as f64 / f as f64,
            Some(_) => {
                notes.push("sk_ratio assumed 0.0625: every SK reduce conv has the floor width 32 and no architecture file says otherwise".into());
                0.0625
            }
            None => {
                notes.push("sk_ratio assumed 0.0625: basic blocks have no SK convolutions to measure it and no architecture file says otherwise".into());
                0.0625
            }
        }
    };
    let se_ratio = match dims_of(sd, "layer1.0.se.reduce.weight") {
        None => 0.0,
        Some(_) if arch.is_some_and(|a| a.se_ratio > 0.0) => arch.map_or(0.0, |a| a.se_ratio),
        Some(d) => d[0] as f64 / (64 * width) as f64,
    };
    let mut nl = 0u32;
    while sd.contains_key(&format!("head.{nl}.linear.weight")) {
        nl += 1;
    }
    let proj = nl > 0;
    let proj_out = if proj {
        dims_of(sd, &format!("head.{}.linear.weight", nl - 1)).map_or(0, |d| d[0]) as u32
    } else {
        128
    };
    let mode = match arch.map(|a| a.proj_head_mode.as_str()) {
        Some("linear") if nl == 1 => ProjHeadMode::Linear,
        _ => ProjHeadMode::Nonlinear,
    };
    let fc = dims_of(sd, "fc.weight");
    let sup = fc.is_some();
    let num_classes = fc.as_ref().map_or(1000, |d| d[0]) as u32;
    let feature = if bottleneck { 2048 } else { 512 } * width;
    let selector = match (arch, &fc) {
        (Some(a), _) => a.ft_proj_selector,
        (None, Some(d))
            if proj && d.len() == 2 && d[1] != feature && d[1] == u64::from(proj_out) =>
        {
            -1
        }
        _ => 0,
    };
    let cfg = ModelConfig {
        resnet_depth: depth,
        width_multiplier: width as u32,
        sk_ratio,
        se_ratio,
        image_size: if cifar { 32 } else { 224 },
        proj_head_mode: mode,
        num_proj_layers: if proj { nl } else { 3 },
        proj_out_dim: proj_out,
        num_classes,
    };
    Ok((cfg, selector, proj, sup, notes))
}

/// Converts a PyTorch state dict (torchvision's or simclr_resnet.py's
/// layout) into simclr's TF1-named variables. Every key must be used and
/// every model variable present with its shape.
pub fn import(path: &Path, arch: Option<&TorchArch>) -> Result<Imported> {
    let sd = read_safetensors(path)?;
    let (cfg, ft_proj_selector, has_proj, has_sup, mut notes) = infer_torch(path, &sd, arch)?;
    let plan = plan(&cfg, has_proj, has_sup, ft_proj_selector)?;
    let mut missing = vec![];
    let mut tensors = BTreeMap::new();
    let mut used = BTreeSet::new();
    for p in &plan.pairs {
        let Some(t) = sd.get(&p.torch) else {
            missing.push(p.torch.clone());
            continue;
        };
        if t.dims != p.torch_dims {
            return Err(Error::Invalid(format!(
                "{}: '{}' has shape {:?}, the ResNet-{} {}× model inferred from the state dict needs {:?} (TF variable {})",
                path.display(),
                p.torch,
                t.dims,
                cfg.resnet_depth,
                cfg.width_multiplier,
                p.torch_dims,
                p.tf
            )));
        }
        let t = if t.dtype == DType::F32 {
            t.clone()
        } else {
            notes.push(format!("{} converted from {} to float32", p.torch, t.dtype));
            t.clone().into_f32()?
        };
        tensors.insert(p.tf.clone(), from_torch(&t, p.transform)?);
        used.insert(p.torch.clone());
    }
    let mut steps = BTreeSet::new();
    for m in &plan.bn_modules {
        let k = format!("{m}.num_batches_tracked");
        match sd.get(&k) {
            Some(t) => {
                steps.insert(t.as_i64().ok_or_else(|| {
                    Error::Invalid(format!(
                        "{}: '{k}' is not an integer scalar",
                        path.display()
                    ))
                })?);
                used.insert(k);
            }
            None => missing.push(k),
        }
    }
    if !missing.is_empty() {
        return Err(Error::Invalid(format!(
            "{}: {} key(s) of the ResNet-{} {}× model inferred from the state dict are missing: {}{}",
            path.display(),
            missing.len(),
            cfg.resnet_depth,
            cfg.width_multiplier,
            missing.iter().take(8).cloned().collect::<Vec<_>>().join(", "),
            if missing.len() > 8 { ", …" } else { "" }
        )));
    }
    let extra: Vec<&String> = sd.keys().filter(|k| !used.contains(*k)).collect();
    if !extra.is_empty() {
        return Err(Error::Invalid(format!(
            "{}: {} unexpected key(s) that no simclr variable corresponds to: {}{} (the inferred model is ResNet-{} {}×{}{}{})",
            path.display(),
            extra.len(),
            extra.iter().take(8).map(|s| s.as_str()).collect::<Vec<_>>().join(", "),
            if extra.len() > 8 { ", …" } else { "" },
            cfg.resnet_depth,
            cfg.width_multiplier,
            if cfg.sk_ratio > 0.0 { " SK" } else { "" },
            if has_proj { ", projection head" } else { "" },
            if has_sup { ", supervised head" } else { "" },
        )));
    }
    let step = steps.iter().copied().max().unwrap_or(0);
    if steps.len() > 1 {
        notes.push(format!(
            "num_batches_tracked differs between batch norms ({} … {}); global_step = {step}",
            steps.first().copied().unwrap_or(0),
            step
        ));
    }
    tensors.insert("global_step".to_string(), Tensor::scalar_i64(step));
    Ok(Imported {
        tensors,
        cfg,
        ft_proj_selector,
        has_proj,
        has_sup,
        step,
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(depth: u32, width: u32, sk: f64, se: f64, image: u32) -> ModelConfig {
        ModelConfig {
            resnet_depth: depth,
            width_multiplier: width,
            sk_ratio: sk,
            se_ratio: se,
            image_size: image,
            ..ModelConfig::default()
        }
    }

    #[test]
    fn torchvision_resnet50_has_its_320_state_dict_entries() {
        let p = plan(&cfg(50, 1, 0.0, 0.0, 224), false, true, 0).expect("plan");
        assert_eq!(p.pairs.len() + p.bn_modules.len(), 320);
        let keys: BTreeSet<&str> = p.pairs.iter().map(|x| x.torch.as_str()).collect();
        for k in [
            "conv1.weight",
            "bn1.running_var",
            "layer1.0.downsample.0.weight",
            "layer1.0.downsample.1.bias",
            "layer4.2.bn3.running_var",
            "fc.weight",
            "fc.bias",
        ] {
            assert!(keys.contains(k), "{k} missing");
        }
        let fc = p.pairs.iter().find(|x| x.torch == "fc.weight").expect("fc");
        assert_eq!(fc.torch_dims, vec![1000, 2048]);
    }

    #[test]
    fn every_variable_of_sk_se_and_head_models_gets_a_unique_key() {
        for c in [
            cfg(152, 3, 0.0625, 0.0, 224),
            cfg(50, 1, 0.0, 0.25, 224),
            cfg(18, 2, 0.0, 0.0, 32),
        ] {
            let p = plan(&c, true, true, -1).expect("plan");
            let vars = crate::nn::variables(&c).expect("vars");
            assert_eq!(p.pairs.len(), vars.len());
            let keys: BTreeSet<&str> = p.pairs.iter().map(|x| x.torch.as_str()).collect();
            assert_eq!(keys.len(), vars.len(), "duplicate keys for {c:?}");
        }
    }

    #[test]
    fn the_architecture_is_read_back_from_the_keys_of_every_layout() {
        // SK in bottlenecks and in basic blocks (only the deep stem and the
        // pooled shortcuts show it there), with the ImageNet and CIFAR stems.
        for c in [
            cfg(34, 1, 0.0625, 0.0, 64),
            cfg(50, 2, 0.0625, 0.0, 64),
            cfg(50, 1, 0.0625, 0.0, 32),
            cfg(18, 1, 0.0625, 0.0, 32),
            cfg(101, 1, 0.0, 0.0, 224),
            cfg(18, 1, 0.0, 0.0, 32),
        ] {
            let p = plan(&c, true, true, 0).expect("plan");
            let sd: BTreeMap<String, Tensor> = p
                .pairs
                .iter()
                .map(|x| {
                    let n = x.torch_dims.iter().product::<u64>() as usize;
                    let t = Tensor::from_f32(&x.torch_dims, &vec![0.0; n]).expect("tensor");
                    (x.torch.clone(), t)
                })
                .collect();
            let (got, ..) =
                infer_torch(Path::new("sd"), &sd, None).unwrap_or_else(|e| panic!("{c:?}: {e}"));
            assert_eq!(got.resnet_depth, c.resnet_depth, "{c:?}");
            assert_eq!(got.width_multiplier, c.width_multiplier, "{c:?}");
            assert_eq!(got.sk_ratio, c.sk_ratio, "{c:?}");
            assert_eq!(got.image_size <= 32, c.image_size <= 32, "{c:?}");
        }
    }

    #[test]
    fn kernels_permute_to_oihw_and_back_exactly() {
        let vals: Vec<f32> = (0..2 * 3 * 4 * 5).map(|i| i as f32).collect();
        let t = Tensor::from_f32(&[2, 3, 4, 5], &vals).expect("t");
        let o = to_torch(&t, Transform::ConvKernel).expect("to");
        assert_eq!(o.dims, vec![5, 4, 2, 3]);
        // o[out=1, in=2, h=1, w=0] = t[h=1, w=0, in=2, out=1].
        let f = o.to_f32().expect("f32");
        assert_eq!(f[((4 + 2) * 2 + 1) * 3], vals[((3) * 4 + 2) * 5 + 1]);
        assert_eq!(from_torch(&o, Transform::ConvKernel).expect("back"), t);
        let d = Tensor::from_f32(&[3, 2], &vals[..6]).expect("d");
        let dt = to_torch(&d, Transform::DenseKernel).expect("dense");
        assert_eq!(dt.to_f32().expect("f"), vec![0.0, 2.0, 4.0, 1.0, 3.0, 5.0]);
        assert_eq!(from_torch(&dt, Transform::DenseKernel).expect("back"), d);
    }
}
