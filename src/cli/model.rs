//! `simclr model`: the parameter counts of a SimCLR network, per stage and
//! in total, from the run flags that shape it (SPEC §3.8); `--json` prints
//! every variable with its TF1 name, shape and trainability.

use crate::nn::{variables, ModelConfig, ProjHeadMode};
use anyhow::Result;
use std::io::Write;

/// Arguments of `simclr model` (the model flags of `simclr run`).
#[derive(Debug, clap::Args)]
#[command(rename_all = "snake_case")]
pub struct ModelArgs {
    /// ResNet depth: 18, 34, 50, 101, 152 or 200.
    #[arg(long, default_value_t = 50)]
    pub resnet_depth: u32,
    /// Width multiplier.
    #[arg(long, default_value_t = 1)]
    pub width_multiplier: u32,
    /// Selective-kernel ratio (0.0625 for the released SK models).
    #[arg(long, default_value_t = 0.0)]
    pub sk_ratio: f64,
    /// Squeeze-and-excitation ratio.
    #[arg(long, default_value_t = 0.0)]
    pub se_ratio: f64,
    /// Input image size (≤ 32 selects the CIFAR stem).
    #[arg(long, default_value_t = 224)]
    pub image_size: u32,
    /// Projection head: none, linear or nonlinear.
    #[arg(long, default_value = "nonlinear")]
    pub proj_head_mode: String,
    /// Layers of the nonlinear projection head.
    #[arg(long, default_value_t = 3)]
    pub num_proj_layers: u32,
    /// Output width of the projection head.
    #[arg(long, default_value_t = 128)]
    pub proj_out_dim: u32,
    /// Classes of the supervised head.
    #[arg(long, default_value_t = 1000)]
    pub num_classes: u32,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

fn part(name: &str) -> &'static str {
    const PARTS: [&str; 3] = ["base_model/", "head_contrastive/", "head_supervised/"];
    PARTS
        .into_iter()
        .find(|p| name.starts_with(p))
        .unwrap_or("other")
}

/// Runs `simclr model`, printing to `out`.
pub fn run(args: &ModelArgs, out: &mut impl Write) -> Result<()> {
    let cfg = ModelConfig {
        resnet_depth: args.resnet_depth,
        width_multiplier: args.width_multiplier,
        sk_ratio: args.sk_ratio,
        se_ratio: args.se_ratio,
        image_size: args.image_size,
        proj_head_mode: args.proj_head_mode.parse::<ProjHeadMode>()?,
        num_proj_layers: args.num_proj_layers,
        proj_out_dim: args.proj_out_dim,
        num_classes: args.num_classes,
    };
    let vars = variables(&cfg)?;
    let (mut trainable, mut other) = (0usize, 0usize);
    for v in &vars {
        if v.trainable {
            trainable += v.shape.numel();
        } else {
            other += v.shape.numel();
        }
    }
    if args.json {
        let list: Vec<serde_json::Value> = vars
            .iter()
            .map(|v| serde_json::json!({"name": v.name, "shape": v.shape.dims, "trainable": v.trainable}))
            .collect();
        let j = serde_json::json!({
            "params": {"trainable": trainable, "non_trainable": other, "total": trainable + other},
            "variables": list,
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&j)?)?;
        return Ok(());
    }
    const STAGES: [&str; 6] = [
        "stem",
        "block_group1",
        "block_group2",
        "block_group3",
        "block_group4",
        "heads",
    ];
    let mut rows = [(0usize, 0usize); 6];
    for v in &vars {
        let i = match v.block {
            b @ 0..=4 => b as usize,
            _ => 5,
        };
        if v.trainable {
            rows[i].0 += v.shape.numel();
        } else {
            rows[i].1 += v.shape.numel();
        }
    }
    writeln!(
        out,
        "ResNet-{} {}x{} at {}x{} ({} variables)",
        cfg.resnet_depth,
        cfg.width_multiplier,
        if cfg.sk_ratio > 0.0 { " SK" } else { "" },
        cfg.image_size,
        cfg.image_size,
        vars.len()
    )?;
    writeln!(
        out,
        "{:<16} {:>14} {:>14}",
        "part", "trainable", "BN statistics"
    )?;
    for (name, (t, n)) in STAGES.iter().zip(rows) {
        writeln!(out, "{name:<16} {t:>14} {n:>14}")?;
    }
    for p in ["base_model/", "head_contrastive/", "head_supervised/"] {
        let (t, n) = vars
            .iter()
            .filter(|v| part(&v.name) == p)
            .fold((0, 0), |(t, n), v| {
                if v.trainable {
                    (t + v.shape.numel(), n)
                } else {
                    (t, n + v.shape.numel())
                }
            });
        writeln!(
            out,
            "{:<16} {t:>14} {n:>14}   ({:.2} M with statistics)",
            p.trim_end_matches('/'),
            (t + n) as f64 / 1e6
        )?;
    }
    writeln!(
        out,
        "{:<16} {trainable:>14} {other:>14}   total {}",
        "total",
        trainable + other
    )?;
    Ok(())
}
