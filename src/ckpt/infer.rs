//! Architecture inference: which `--resnet_depth`, `--width_multiplier`,
//! `--sk_ratio`, `--image_size` (stem), projection head and `--num_classes`
//! build the model whose TF1 variables a checkpoint holds (SPEC §3, §4, §9.1).
//!
//! From the backbone convolutions `base_model/conv2d[_k]/kernel`:
//! * stem: 7×7 → ImageNet stem; 3×3 followed by a 3×3 `32w→32w` conv →
//!   SK deep stem (sk_ratio > 0); 3×3 otherwise → CIFAR stem.
//! * width: stem output channels / 64 (deep stem: / 32).
//! * block type: widest conv output 2048·w → bottleneck, 512·w → basic.
//! * depth: (convs − stem convs − 4 shortcuts) / convs per block gives the
//!   block count (basic 8 / 16 → 18 / 34; bottleneck 16 / 33 / 50 / 66 →
//!   50 / 101 / 152 / 200).
//! * sk_ratio: SK reduce convs are `f → max(int(f·r), 32)`; the widest
//!   gives r when it exceeds 32, otherwise the released 0.0625 is assumed.
//!
//! Heads: `head_contrastive/nl_<j>` (count, last output width) or `l_0`;
//! `head_supervised/linear_layer/dense/kernel` gives the class count.
//! Other tensors (slots, EMA copies, `global_step`) are ignored.

use super::{Error, Result};
use crate::nn::{ModelConfig, ProjHeadMode};
use std::collections::BTreeMap;

/// The projection head found in a checkpoint.
#[derive(Clone, Debug, PartialEq)]
pub struct ProjectionHead {
    /// `nonlinear` (`nl_<j>`) or `linear` (`l_0`).
    pub mode: ProjHeadMode,
    /// Number of layers.
    pub num_proj_layers: u32,
    /// Output width of the last layer.
    pub proj_out_dim: u32,
}

/// An inferred architecture.
#[derive(Clone, Debug, PartialEq)]
pub struct Architecture {
    /// `--resnet_depth`.
    pub resnet_depth: u32,
    /// `--width_multiplier`.
    pub width_multiplier: u32,
    /// `--sk_ratio` (0 without SK).
    pub sk_ratio: f64,
    /// Whether `sk_ratio` was measured (false: assumed 0.0625 because every
    /// SK reduce width is the floor 32).
    pub sk_ratio_measured: bool,
    /// `--se_ratio` (0 without SE; approximate otherwise).
    pub se_ratio: f64,
    /// CIFAR stem (`--image_size` ≤ 32).
    pub cifar_stem: bool,
    /// The projection head, if the checkpoint has one (SimCLRv1 ones don't).
    pub projection_head: Option<ProjectionHead>,
    /// Classes of the supervised head, if present.
    pub num_classes: Option<u32>,
    /// Input width of the supervised head, if present.
    pub supervised_input_dim: Option<u32>,
    /// Backbone conv kernels found.
    pub backbone_convs: usize,
    /// Backbone batch norms found.
    pub backbone_bns: usize,
    /// Remarks for the user (assumptions, absent heads).
    pub notes: Vec<String>,
}

fn indexed(name: &str, prefix: &str, suffix: &str) -> Option<usize> {
    let mid = name.strip_prefix(prefix)?.strip_suffix(suffix)?;
    if mid.is_empty() {
        Some(0)
    } else {
        mid.strip_prefix('_')?.parse().ok().filter(|&k| k > 0)
    }
}

fn u32_of(d: u64) -> u32 {
    u32::try_from(d).unwrap_or(u32::MAX)
}

/// Infers the architecture from `(name, dims)` of a checkpoint's tensors.
pub fn infer(entries: &[(String, Vec<u64>)]) -> Result<Architecture> {
    let bad = |m: String| Error::Invalid(format!("cannot infer the architecture: {m}"));
    let mut convs: BTreeMap<usize, Vec<u64>> = BTreeMap::new();
    let mut conv_bias = 0usize;
    let mut bns = 0usize;
    let mut nl: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
    let mut l0: Option<Vec<u64>> = None;
    let mut sup: Option<Vec<u64>> = None;
    for (name, dims) in entries {
        if let Some(k) = indexed(name, "base_model/conv2d", "/kernel") {
            convs.insert(k, dims.clone());
        } else if indexed(name, "base_model/conv2d", "/bias").is_some() {
            conv_bias += 1;
        } else if indexed(name, "base_model/batch_normalization", "/gamma").is_some() {
            bns += 1;
        } else if let Some(rest) = name.strip_prefix("head_contrastive/nl_") {
            if let Some(j) = rest
                .strip_suffix("/dense/kernel")
                .and_then(|j| j.parse().ok())
            {
                nl.insert(j, dims.clone());
            }
        } else if name == "head_contrastive/l_0/dense/kernel" {
            l0 = Some(dims.clone());
        } else if name == "head_supervised/linear_layer/dense/kernel" {
            sup = Some(dims.clone());
        }
    }
    if convs.is_empty() {
        return Err(bad("no backbone convolutions `base_model/conv2d[_k]/kernel` (is this a SimCLR TF1 checkpoint? TF2 object-based checkpoints are not supported here)".into()));
    }
    let convs: Vec<Vec<u64>> = convs.into_values().collect();
    if convs.iter().any(|c| c.len() != 4) {
        return Err(bad("a backbone conv kernel is not 4-D (HWIO)".into()));
    }
    let c0 = &convs[0];
    let out0 = c0[3];
    let deep_stem = c0[0] == 3
        && convs
            .get(1)
            .is_some_and(|c1| c1[0] == 3 && c1[1] == 3 && c1[2] == out0 && c1[3] == out0);
    let (width, stem_convs, cifar) = if deep_stem {
        (out0 / 32, 3, false)
    } else if c0[0] == 7 {
        (out0 / 64, 1, false)
    } else if c0[0] == 3 {
        (out0 / 64, 1, true)
    } else {
        return Err(bad(format!("unknown stem kernel {c0:?}")));
    };
    let base = if deep_stem { 32 } else { 64 };
    if width == 0 || out0 % base != 0 {
        return Err(bad(format!(
            "stem width {out0} is not a multiple of {base}"
        )));
    }
    let max_out = convs.iter().map(|c| c[3]).max().unwrap_or(0);
    let bottleneck = if max_out == 2048 * width {
        true
    } else if max_out == 512 * width {
        false
    } else {
        return Err(bad(format!(
            "widest conv has {max_out} channels, neither 2048·w nor 512·w for w = {width}"
        )));
    };
    let se = conv_bias > 0;
    let per_block = match (bottleneck, deep_stem) {
        (true, true) => 5,
        (true, false) => 3,
        (false, _) => 2,
    } + if se { 2 } else { 0 };
    let body = convs.len().saturating_sub(stem_convs + 4);
    if body == 0 || body % per_block != 0 {
        return Err(bad(format!(
            "{} convs do not fit a {} ResNet (stem {stem_convs} + 4 shortcuts + {per_block} per block)",
            convs.len(),
            if bottleneck { "bottleneck" } else { "basic-block" }
        )));
    }
    let blocks = body / per_block;
    let depth = match (bottleneck, blocks) {
        (false, 8) => 18,
        (false, 16) => 34,
        (true, 16) => 50,
        (true, 33) => 101,
        (true, 50) => 152,
        (true, 66) => 200,
        _ => {
            return Err(bad(format!(
                "{blocks} {} blocks match no supported depth",
                if bottleneck { "bottleneck" } else { "basic" }
            )))
        }
    };
    let mut notes = vec![];
    let (sk_ratio, sk_measured) = if deep_stem {
        // SK reduce convs: 1×1 f→m followed by 1×1 m→2f.
        let mut best: Option<(u64, u64)> = None;
        for w in convs.windows(2) {
            let (a, b) = (&w[0], &w[1]);
            let pair = a[0] == 1 && b[0] == 1 && b[2] == a[3] && b[3] == 2 * a[2];
            if pair && best.is_none_or(|(f, _)| a[2] > f) {
                best = Some((a[2], a[3]));
            }
        }
        match best {
            Some((f, m)) if m > 32 => (m as f64 / f as f64, true),
            _ => {
                notes.push("sk_ratio assumed 0.0625 (the released value): every SK reduce conv has the minimum width 32".into());
                (0.0625, false)
            }
        }
    } else {
        (0.0, true)
    };
    let se_ratio = if se {
        notes.push("squeeze-and-excitation convs found; --se_ratio is approximate".into());
        convs
            .iter()
            .skip(stem_convs)
            .find(|c| c[0] == 1 && c[3] < c[2])
            .map_or(0.25, |c| c[3] as f64 / (64 * width) as f64)
    } else {
        0.0
    };
    let projection_head = if let Some(last) = nl.values().last() {
        let n = nl.len() as u32;
        if nl.keys().copied().ne(0..n) {
            return Err(bad(
                "projection head layers nl_<j> are not numbered 0..L".into()
            ));
        }
        Some(ProjectionHead {
            mode: ProjHeadMode::Nonlinear,
            num_proj_layers: n,
            proj_out_dim: u32_of(last.get(1).copied().unwrap_or(0)),
        })
    } else if let Some(k) = &l0 {
        Some(ProjectionHead {
            mode: ProjHeadMode::Linear,
            num_proj_layers: 1,
            proj_out_dim: u32_of(k.get(1).copied().unwrap_or(0)),
        })
    } else {
        notes.push("no projection head in the checkpoint (SimCLRv1 checkpoints have none): keep `head` out of --variable_schema".into());
        None
    };
    let (num_classes, supervised_input_dim) = match &sup {
        Some(k) if k.len() == 2 => (Some(u32_of(k[1])), Some(u32_of(k[0]))),
        _ => {
            notes.push("no supervised head in the checkpoint".into());
            (None, None)
        }
    };
    Ok(Architecture {
        resnet_depth: depth,
        width_multiplier: u32_of(width),
        sk_ratio,
        sk_ratio_measured: sk_measured,
        se_ratio,
        cifar_stem: cifar,
        projection_head,
        num_classes,
        supervised_input_dim,
        backbone_convs: convs.len(),
        backbone_bns: bns,
        notes,
    })
}

impl Architecture {
    /// The model configuration that builds this architecture (a default
    /// 3-layer head when the checkpoint has none; 1000 classes when it has
    /// no supervised head; image size 32 for the CIFAR stem, else 224).
    pub fn model_config(&self) -> ModelConfig {
        let d = ModelConfig::default();
        let head = self.projection_head.as_ref();
        ModelConfig {
            resnet_depth: self.resnet_depth,
            width_multiplier: self.width_multiplier,
            sk_ratio: self.sk_ratio,
            se_ratio: self.se_ratio,
            image_size: if self.cifar_stem { 32 } else { 224 },
            proj_head_mode: head.map_or(d.proj_head_mode, |h| h.mode),
            num_proj_layers: head.map_or(d.num_proj_layers, |h| h.num_proj_layers),
            proj_out_dim: head.map_or(d.proj_out_dim, |h| h.proj_out_dim),
            num_classes: self.num_classes.unwrap_or(d.num_classes),
        }
    }

    /// Backbone feature width (512·w or 2048·w).
    pub fn feature_dim(&self) -> u32 {
        let base = if self.resnet_depth >= 50 { 2048 } else { 512 };
        base * self.width_multiplier
    }

    /// `--ft_proj_selector` implied by the supervised head's input width,
    /// when it can be told apart (only −1, the head output, can).
    pub fn ft_proj_selector_hint(&self) -> Option<i32> {
        let h = self.projection_head.as_ref()?;
        let inp = self.supervised_input_dim?;
        (inp == h.proj_out_dim && inp != self.feature_dim()).then_some(-1)
    }

    /// The `run.py`-style flags that build this model.
    pub fn flags(&self) -> Vec<String> {
        let mut f = vec![
            format!("--resnet_depth={}", self.resnet_depth),
            format!("--width_multiplier={}", self.width_multiplier),
            format!("--sk_ratio={}", self.sk_ratio),
        ];
        if self.se_ratio > 0.0 {
            f.push(format!("--se_ratio={}", self.se_ratio));
        }
        if self.cifar_stem {
            f.push("--image_size=32".into());
        }
        if let Some(h) = &self.projection_head {
            match h.mode {
                ProjHeadMode::Linear => f.push("--proj_head_mode=linear".into()),
                _ => f.push(format!("--num_proj_layers={}", h.num_proj_layers)),
            }
            f.push(format!("--proj_out_dim={}", h.proj_out_dim));
        }
        if let Some(n) = self.num_classes {
            f.push(format!("--num_classes={n}"));
        }
        if let Some(s) = self.ft_proj_selector_hint() {
            f.push(format!("--ft_proj_selector={s}"));
        }
        f
    }
}

/// How well the model built from an [`Architecture`] fits a checkpoint.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Verification {
    /// Model variables found with the same shape.
    pub matched: usize,
    /// Model variables absent from the checkpoint.
    pub missing: Vec<String>,
    /// `(name, checkpoint dims, model dims)` of shape mismatches.
    pub mismatched: Vec<(String, Vec<u64>, Vec<u64>)>,
}

/// Builds the model of `arch` and compares its variables with `entries`.
pub fn verify(arch: &Architecture, entries: &[(String, Vec<u64>)]) -> Result<Verification> {
    let cfg = arch.model_config();
    let vars = crate::nn::variables(&cfg)
        .map_err(|e| Error::Invalid(format!("the inferred model does not build: {e}")))?;
    let map: BTreeMap<&str, &Vec<u64>> = entries.iter().map(|(n, d)| (n.as_str(), d)).collect();
    let mut v = Verification::default();
    for var in &vars {
        let dims: Vec<u64> = var.shape.dims.iter().map(|&d| d.max(0) as u64).collect();
        match map.get(var.name.as_str()) {
            Some(d) if **d == dims => v.matched += 1,
            Some(d) => v.mismatched.push((var.name.clone(), (*d).clone(), dims)),
            None => v.missing.push(var.name.clone()),
        }
    }
    Ok(v)
}
