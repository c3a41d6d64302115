//! `simclr run --train_mode=distill`: the teacher and the distillation
//! loss from the flags, and the labelled subset of `--labeled_percent`.

use super::flags::RunFlags;
use crate::nn::{ModelConfig, ProjHeadMode};
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

/// The distillation configuration for tracing only (`simclr export_hlo`):
/// the teacher of `--teacher_checkpoint` when one is given, else the
/// student's own network (self-distillation) with the `--teacher_*` flags
/// applied, so a program can be inspected before any teacher exists.
///
/// # Errors
/// As [`teacher`]; bad `--teacher_*` flags.
pub fn traced_teacher(f: &RunFlags, step: &StepConfig) -> Result<DistillConfig> {
    if f.teacher_checkpoint.is_some() {
        return Ok(teacher(f, step)?.1);
    }
    let o = teacher_overrides(f)?;
    let s = &step.model;
    let model = ModelConfig {
        resnet_depth: o.resnet_depth.unwrap_or(s.resnet_depth),
        width_multiplier: o.width_multiplier.unwrap_or(s.width_multiplier),
        sk_ratio: o.sk_ratio.unwrap_or(s.sk_ratio),
        se_ratio: o.se_ratio.unwrap_or(s.se_ratio),
        proj_head_mode: o.proj_head_mode.unwrap_or(s.proj_head_mode),
        num_proj_layers: o.num_proj_layers.unwrap_or(s.num_proj_layers),
        proj_out_dim: o.proj_out_dim.unwrap_or(s.proj_out_dim),
        ..s.clone()
    };
    model
        .validate()
        .map_err(|e| anyhow!("--teacher_* flags: {e}"))?;
    let d = DistillConfig {
        teacher: model,
        teacher_ft_proj_selector: match o.ft_proj_selector {
            Some(v) => v,
            None => i32::try_from(f.ft_proj_selector)?,
        },
        temperature: f.distill_temperature,
        label_weight: f.distill_label_weight,
    };
    d.validate(step)?;
    Ok(d)
}
