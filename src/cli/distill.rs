//! `simclr run --train_mode=distill`: the teacher and the distillation
//! loss from the flags, and the labelled subset of `--labeled_percent`.

use super::flags::RunFlags;
use crate::nn::ProjHeadMode;
use crate::simclr::{DistillConfig, StepConfig};
use crate::train::teacher::{Teacher, TeacherOverrides};
use anyhow::{anyhow, Result};
use std::path::Path;

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
