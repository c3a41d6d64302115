//! The teacher of the distillation step: a fine-tuned network read from a
//! simclr or TensorFlow checkpoint, its architecture inferred from the
//! tensors as `simclr ckpt info` does (overridable field by field), its
//! variables restored into a [`HostState`] under `teacher/<TF1 name>`.

use super::{Error, HostState, Result, TEACHER_PREFIX};
use crate::ckpt::{self, import, infer, Source};
use crate::nn::{self, ModelConfig, ProjHeadMode};
use crate::pjrt::{ElementType, HostArray};
use std::path::{Path, PathBuf};

/// `--teacher_*` flags: each `Some` replaces what the checkpoint implies.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TeacherOverrides {
    /// `--teacher_resnet_depth`.
    pub resnet_depth: Option<u32>,
    /// `--teacher_width_multiplier`.
    pub width_multiplier: Option<u32>,
    /// `--teacher_sk_ratio`.
    pub sk_ratio: Option<f64>,
    /// `--teacher_se_ratio`.
    pub se_ratio: Option<f64>,
    /// `--teacher_proj_head_mode`.
    pub proj_head_mode: Option<ProjHeadMode>,
    /// `--teacher_num_proj_layers`.
    pub num_proj_layers: Option<u32>,
    /// `--teacher_proj_out_dim`.
    pub proj_out_dim: Option<u32>,
    /// `--teacher_ft_proj_selector`.
    pub ft_proj_selector: Option<i32>,
}

/// A loaded teacher.
#[derive(Clone, Debug)]
pub struct Teacher {
    /// The checkpoint file or prefix read.
    pub path: PathBuf,
    /// `"tensorflow"` or `"native"`.
    pub format: &'static str,
    /// Its network (image size and classes those of the student).
    pub model: ModelConfig,
    /// The projection-head output its supervised head reads.
    pub ft_proj_selector: i32,
    /// Its global step, when the checkpoint records one.
    pub global_step: Option<i64>,
    /// Variable values keyed `teacher/<TF1 name>`.
    pub values: HostState,
    /// Projection-head variables the checkpoint lacks (zero-filled: the
    /// supervised head does not read the projection head then).
    pub zero_filled: Vec<String>,
}

fn bad(path: &Path, msg: impl std::fmt::Display) -> Error {
    Error::Teacher(format!("--teacher_checkpoint={}: {msg}", path.display()))
}

impl Teacher {
    /// Reads the teacher at `path` for a student that sees `image_size`
    /// images of a dataset with `num_classes` classes.
    ///
    /// # Errors
    /// An unreadable checkpoint, one without a supervised head, a class
    /// count other than `num_classes`, a stem that does not fit
    /// `image_size`, or variables the inferred (or overridden) architecture
    /// needs that the checkpoint lacks or holds with other shapes.
    pub fn load(
        path: &Path,
        overrides: &TeacherOverrides,
        image_size: u32,
        num_classes: u32,
    ) -> Result<Teacher> {
        let src = Source::open(path).map_err(|e| bad(path, e))?;
        let entries = ckpt::tf2::tf1_view(&src.entries());
        let arch = infer::infer(&entries).map_err(|e| bad(path, e))?;
        let k = arch.num_classes.ok_or_else(|| {
            bad(
                path,
                "the checkpoint has no supervised head (head_supervised/linear_layer); \
                 the teacher must be a fine-tuned network (simclr run --train_mode=finetune)",
            )
        })?;
        if k != num_classes {
            return Err(bad(
                path,
                format!(
                    "the teacher has {k} classes but the dataset has {num_classes}; \
                     use a teacher fine-tuned on this dataset"
                ),
            ));
        }
        let cifar_student = image_size <= 32;
        if arch.cifar_stem != cifar_student {
            return Err(bad(
                path,
                format!(
                    "the teacher has the {} stem but --image_size={image_size} builds the {} stem; \
                     the teacher sees the student's images, so use the image size it was trained at",
                    if arch.cifar_stem { "CIFAR (3×3)" } else { "ImageNet (7×7)" },
                    if cifar_student { "CIFAR (3×3)" } else { "ImageNet (7×7)" },
                ),
            ));
        }
        let o = overrides;
        let base = arch.model_config();
        let model = ModelConfig {
            resnet_depth: o.resnet_depth.unwrap_or(base.resnet_depth),
            width_multiplier: o.width_multiplier.unwrap_or(base.width_multiplier),
            sk_ratio: o.sk_ratio.unwrap_or(base.sk_ratio),
            se_ratio: o.se_ratio.unwrap_or(base.se_ratio),
            image_size,
            proj_head_mode: o.proj_head_mode.unwrap_or(base.proj_head_mode),
            num_proj_layers: o.num_proj_layers.unwrap_or(base.num_proj_layers),
            proj_out_dim: o.proj_out_dim.unwrap_or(base.proj_out_dim),
            num_classes,
        };
        model
            .validate()
            .map_err(|e| bad(path, format!("--teacher_* flags: {e}")))?;
        let recorded = match &src {
            Source::Native(r) => r.meta["flags"]["ft_proj_selector"]
                .as_i64()
                .and_then(|v| i32::try_from(v).ok()),
            Source::Tf(_) => None,
        };
        let ft_proj_selector = o
            .ft_proj_selector
            .or(recorded)
            .or_else(|| arch.ft_proj_selector_hint())
            .unwrap_or(0);
        let vars = nn::variables_selecting(&model, ft_proj_selector).map_err(|e| bad(path, e))?;
        let opts = import::RestoreOptions {
            allow_missing: true,
            ..Default::default()
        };
        let restored = import::restore(&vars, &src, &opts).map_err(|e| {
            bad(
                path,
                format!("{e} (the --teacher_* flags override the inferred architecture)"),
            )
        })?;
        // The projection head may be absent (SimCLRv1 checkpoints) as long
        // as the supervised head reads the backbone feature.
        let (head, other): (Vec<&String>, Vec<&String>) = restored
            .missing
            .iter()
            .partition(|n| n.starts_with("head_contrastive/"));
        let fatal: Vec<&String> = if ft_proj_selector != 0 {
            restored.missing.iter().collect()
        } else {
            other
        };
        if !fatal.is_empty() {
            let missing: Vec<&str> = fatal.iter().take(3).map(|s| s.as_str()).collect();
            return Err(bad(
                path,
                format!(
                    "{} variables of the teacher's network are not in the checkpoint (e.g. {}); \
                     check the --teacher_* flags (`simclr ckpt info` prints the flags that build it)",
                    fatal.len(),
                    missing.join(", ")
                ),
            ));
        }
        let mut values = HostState::new();
        for v in &vars {
            let dims = v.shape.dims.clone();
            let a = match restored.values.get(&v.name) {
                Some(t) => HostArray::from_bytes(ElementType::F32, &dims, t.bytes.clone())?,
                None => HostArray::zeros(ElementType::F32, &dims)?,
            };
            values.insert(format!("{TEACHER_PREFIX}{}", v.name), a);
        }
        Ok(Teacher {
            path: src.path(),
            format: src.format(),
            model,
            ft_proj_selector,
            global_step: restored.global_step,
            values,
            zero_filled: head.into_iter().cloned().collect(),
        })
    }

    /// What a student's checkpoint records about its teacher.
    pub fn record(&self) -> serde_json::Value {
        let m = &self.model;
        serde_json::json!({
            "checkpoint": self.path.display().to_string(),
            "format": self.format,
            "global_step": self.global_step,
            "model": {
                "resnet_depth": m.resnet_depth,
                "width_multiplier": m.width_multiplier,
                "sk_ratio": m.sk_ratio,
                "se_ratio": m.se_ratio,
                "proj_head_mode": format!("{:?}", m.proj_head_mode).to_lowercase(),
                "num_proj_layers": m.num_proj_layers,
                "proj_out_dim": m.proj_out_dim,
                "num_classes": m.num_classes,
                "ft_proj_selector": self.ft_proj_selector,
            },
        })
    }
}

/// A one-line description of `t` for the log.
pub fn describe(t: &Teacher) -> String {
    let m = &t.model;
    format!(
        "teacher ResNet-{} {}×{} ({} checkpoint {}{}), supervised head on projection output {}{}",
        m.resnet_depth,
        m.width_multiplier,
        if m.sk_ratio > 0.0 { " SK" } else { "" },
        t.format,
        t.path.display(),
        t.global_step
            .map(|s| format!(" at step {s}"))
            .unwrap_or_default(),
        t.ft_proj_selector,
        if t.zero_filled.is_empty() {
            String::new()
        } else {
            format!(
                "; {} projection-head variables absent (unused)",
                t.zero_filled.len()
            )
        }
    )
}

/// Replaces by −1 (the distillation step's "unlabelled") the labels of the
/// examples whose dataset index is not marked in `labelled`.
pub fn hide_labels(labels: &mut [i32], indices: &[usize], labelled: &[bool]) {
    for (l, &i) in labels.iter_mut().zip(indices) {
        if !labelled.get(i).copied().unwrap_or(false) {
            *l = -1;
        }
    }
}
