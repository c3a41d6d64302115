//! Optimizers traced into the step program (SPEC §7.1–§7.3): LARS (the
//! default), TF1's Nesterov momentum, and Adam; and the weight-decay rules
//! that decide which variables get decay in the optimizer or in the loss.

use crate::ir::{ComparisonDirection, ElementType, Tensor};

/// LARS trust coefficient η (`eeta`).
pub const LARS_EETA: f64 = 0.001;

/// Substrings that exclude a variable from LARS weight decay and layer
/// adaptation (SPEC §7.1).
pub const LARS_EXCLUDE: [&str; 3] = ["batch_normalization", "bias", "head_supervised"];

/// `--optimizer`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptimizerKind {
    /// LARS with classic momentum, lr inside the velocity.
    Lars,
    /// TF1 Nesterov momentum.
    Momentum,
    /// Adam with TF1's defaults (β1 0.9, β2 0.999, ε 1e-8).
    Adam,
}

impl OptimizerKind {
    /// Optimizer slots per trainable variable, with their name suffixes.
    pub fn slots(self) -> &'static [&'static str] {
        match self {
            OptimizerKind::Lars | OptimizerKind::Momentum => &["Momentum"],
            OptimizerKind::Adam => &["Adam", "Adam_1"],
        }
    }
}

/// True when LARS excludes `name` from decay and trust-ratio adaptation.
pub fn lars_excluded(name: &str) -> bool {
    LARS_EXCLUDE.iter().any(|e| name.contains(e))
}

/// True when `name` gets the L2 loss term λ·Σw²/2 (SPEC §7.2): with LARS
/// only the supervised head's kernel; otherwise every trainable variable
/// whose name lacks `batch_normalization`.
pub fn l2_in_loss(kind: OptimizerKind, name: &str) -> bool {
    match kind {
        OptimizerKind::Lars => name.starts_with("head_supervised") && !name.contains("bias"),
        _ => !name.contains("batch_normalization"),
    }
}

/// Which rule an optimizer applies to a variable, for reports.
pub fn rule_name(kind: OptimizerKind, name: &str) -> &'static str {
    match kind {
        OptimizerKind::Lars if lars_excluded(name) => "momentum (LARS-excluded)",
        OptimizerKind::Lars => "LARS + decay",
        OptimizerKind::Momentum => "nesterov momentum",
        OptimizerKind::Adam => "adam",
    }
}

/// Hyper-parameters of an update.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OptimizerConfig {
    /// Which optimizer.
    pub kind: OptimizerKind,
    /// `--momentum`.
    pub momentum: f64,
    /// `--weight_decay` (λ).
    pub weight_decay: f64,
}

fn norm(x: &Tensor) -> Tensor {
    (x * x).sum_all().sqrt()
}

/// One update of variable `w` (named `name`) with gradient `g` and slots
/// `slots` at learning rate `lr` (`f32[]`) and step `step` (`s64[]`, the
/// number of updates already applied). Returns the new variable and slots.
pub fn update(
    cfg: &OptimizerConfig,
    name: &str,
    w: &Tensor,
    g: &Tensor,
    slots: &[Tensor],
    lr: &Tensor,
    step: &Tensor,
) -> (Tensor, Vec<Tensor>) {
    let mu = cfg.momentum;
    match cfg.kind {
        OptimizerKind::Lars => {
            let v = &slots[0];
            let excluded = lars_excluded(name);
            let g = if cfg.weight_decay != 0.0 && !excluded {
                g + w * cfg.weight_decay
            } else {
                g.clone()
            };
            let scaled_lr = if excluded {
                lr.clone()
            } else {
                let (wn, gn) = (norm(w), norm(&g));
                let zero = wn.scalar_like(0.0);
                let ok = wn.compare(ComparisonDirection::Gt, &zero).binary(
                    crate::ir::BinaryOp::And,
                    &gn.compare(ComparisonDirection::Gt, &zero),
                );
                let trust = ok.select(
                    &(&wn * LARS_EETA / gn.max(&gn.scalar_like(1e-30))),
                    &wn.scalar_like(1.0),
                );
                lr * trust
            };
            let v_new = v * mu + g * scaled_lr;
            (w - &v_new, vec![v_new])
        }
        OptimizerKind::Momentum => {
            let accum = &slots[0] * mu + g;
            let w_new = w - (g + &accum * mu) * lr;
            (w_new, vec![accum])
        }
        OptimizerKind::Adam => {
            let (b1, b2, eps) = (0.9, 0.999, 1e-8);
            let m = &slots[0] * b1 + g * (1.0 - b1);
            let v = &slots[1] * b2 + (g * g) * (1.0 - b2);
            let t = (step.convert(ElementType::F32)) + 1.0;
            let b1t = t.scalar_like(b1).pow(&t);
            let b2t = t.scalar_like(b2).pow(&t);
            let lr_t = lr * (b2t.neg() + 1.0).sqrt() / (b1t.neg() + 1.0);
            let w_new = w - (&m * lr_t) / (v.sqrt() + eps);
            (w_new, vec![m, v])
        }
    }
}
