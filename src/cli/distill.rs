//! `simclr run --train_mode=distill`: the teacher and the distillation
//! loss from the flags, and the labelled subset of `--labeled_percent`.

use super::flags::RunFlags;
use crate::data::{self, Dataset};
use crate::nn::ProjHeadMode;
use crate::simclr::{DistillConfig, StepConfig};
use crate::train::teacher::{Teacher, TeacherOverrides};
use anyhow::{anyhow, Result};
use std::path::Path;
use std::sync::Arc;

/// The `--teacher_*` overrides (unset ones: inferred from the checkpoint).
pub fn teacher_overrides(f: &RunFlags) -> Result<TeacherOverrides> {
    let pos =
        |v: i64| -> Result<Option<u32>> { Ok((v > 0).then(|| u32::try_from(v)).transpose()?) };
    Ok(TeacherOverrides {
        resnet_depth: pos(f.teacher_resnet_depth)?,
        width_multiplier: pos(f.teacher_width_multiplier)?,
        sk_ratio: (f.teacher_sk_ratio >= 0.0).then_some(f.teacher_sk_ratio),
        se_ratio: (f.teacher_se_ratio >= 0.0).then_some(f.teacher_se_ratio),
        proj_head_mode: match f.teacher_proj_head_mode.as_str() {
            "auto" => None,
            m => Some(m.parse::<ProjHeadMode>()?),
        },
        num_proj_layers: pos(f.teacher_num_proj_layers)?,
        proj_out_dim: pos(f.teacher_proj_out_dim)?,
        ft_proj_selector: f
            .teacher_ft_proj_selector
            .as_deref()
            .map(|s| {
                s.parse::<i32>()
                    .map_err(|_| anyhow!("--teacher_ft_proj_selector={s}: expected an integer"))
            })
            .transpose()?,
    })
}

/// Reads `--teacher_checkpoint` for the student `step` and returns it with
/// the distillation configuration of the flags.
///
/// # Errors
/// No `--teacher_checkpoint`, or one that [`Teacher::load`] refuses.
pub fn teacher(f: &RunFlags, step: &StepConfig) -> Result<(Teacher, DistillConfig)> {
    let path = f.teacher_checkpoint.as_deref().ok_or_else(|| {
        anyhow!("--train_mode=distill needs --teacher_checkpoint (a fine-tuned model_dir or TF checkpoint)")
    })?;
    let t = Teacher::load(
        Path::new(path),
        &teacher_overrides(f)?,
        step.model.image_size,
        step.model.num_classes,
    )?;
    let d = DistillConfig {
        teacher: t.model.clone(),
        teacher_ft_proj_selector: t.ft_proj_selector,
        temperature: f.distill_temperature,
        label_weight: f.distill_label_weight,
    };
    d.validate(step)?;
    Ok((t, d))
}

/// A one-line description of the teacher for the log.
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

/// The labelled examples of the training split under `--labeled_percent`:
/// `None` when every label is kept, else a flag per dataset index.
pub fn labelled_mask(f: &RunFlags, ds: &dyn Dataset) -> Result<Option<Vec<bool>>> {
    if f.labeled_percent >= 100.0 {
        return Ok(None);
    }
    let mut mask = vec![false; ds.len()];
    for i in data::labelled_subset(ds, f.labeled_percent)? {
        mask[i] = true;
    }
    Ok(Some(mask))
}

/// The training split a run reads: for `--train_mode=finetune` with
/// `--labeled_percent` < 100, only the labelled subset.
pub fn training_set(f: &RunFlags, ds: Arc<dyn Dataset>) -> Result<Arc<dyn Dataset>> {
    if f.train_mode != "finetune" || f.labeled_percent >= 100.0 {
        return Ok(ds);
    }
    let idx = data::labelled_subset(ds.as_ref(), f.labeled_percent)?;
    let name = format!(
        "{} ({} % labelled subset)",
        ds.describe(),
        f.labeled_percent
    );
    Ok(Arc::new(data::Subset::new(ds, idx, &name)))
}

/// Hides the labels of the examples outside the labelled subset (−1: the
/// distillation step's "unlabelled").
pub fn hide_labels(labels: &mut [i32], indices: &[usize], mask: Option<&[bool]>) {
    if let Some(mask) = mask {
        for (l, &i) in labels.iter_mut().zip(indices) {
            if !mask.get(i).copied().unwrap_or(false) {
                *l = -1;
            }
        }
    }
}
