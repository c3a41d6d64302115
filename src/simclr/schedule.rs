//! Learning-rate schedule and step counts (SPEC §7.4, §7.5): batch scaling,
//! linear warm-up, cosine decay to zero. The same formula is evaluated on
//! the host (for logging and tests) and traced into the step program from
//! the global step, so the device never waits for the host to send a rate.

use crate::ir::{ElementType, Tensor};

/// `--learning_rate_scaling`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LrScaling {
    /// `learning_rate · B / 256`.
    Linear,
    /// `learning_rate · √B`.
    Sqrt,
}

/// Everything the schedule depends on.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Schedule {
    /// Learning rate after batch scaling.
    pub scaled_lr: f64,
    /// Warm-up steps.
    pub warmup_steps: i64,
    /// Total training steps.
    pub total_steps: i64,
}

/// Training steps: `train_steps` when non-zero, else `N·epochs // B + 1`.
pub fn train_steps(train_steps: i64, num_examples: i64, train_epochs: i64, batch: i64) -> i64 {
    if train_steps > 0 {
        train_steps
    } else {
        num_examples * train_epochs / batch.max(1) + 1
    }
}

/// Steps per epoch: `round(N / B)`.
pub fn epoch_steps(num_examples: i64, batch: i64) -> i64 {
    (num_examples as f64 / batch.max(1) as f64).round() as i64
}

impl Schedule {
    /// The schedule of a run: `base_lr` scaled by the global batch `batch`,
    /// `warmup_epochs` over `num_examples`, ending at `total_steps`.
    pub fn new(
        base_lr: f64,
        scaling: LrScaling,
        batch: i64,
        warmup_epochs: f64,
        num_examples: i64,
        total_steps: i64,
    ) -> Schedule {
        let scaled_lr = match scaling {
            LrScaling::Linear => base_lr * batch as f64 / 256.0,
            LrScaling::Sqrt => base_lr * (batch as f64).sqrt(),
        };
        // int(round(floor(warmup_epochs·N / B))): floor division first.
        let warmup_steps =
            (warmup_epochs * num_examples as f64 / batch.max(1) as f64).floor() as i64;
        Schedule {
            scaled_lr,
            warmup_steps,
            total_steps,
        }
    }

    /// The learning rate after `step` updates.
    pub fn lr(&self, step: i64) -> f64 {
        if step < self.warmup_steps {
            return step as f64 / self.warmup_steps as f64 * self.scaled_lr;
        }
        let t = (self.total_steps - self.warmup_steps).max(1) as f64;
        let progress = ((step - self.warmup_steps) as f64).min(t);
        self.scaled_lr * 0.5 * (1.0 + (std::f64::consts::PI * progress / t).cos())
    }

    /// The same rate traced from an `s64[]` global step, as an `f32[]`.
    pub fn lr_tensor(&self, step: &Tensor) -> Tensor {
        let s = step.convert(ElementType::F32);
        let warm = self.warmup_steps as f64;
        let t = (self.total_steps - self.warmup_steps).max(1) as f64;
        let progress = (&s - warm).max(&s.scalar_like(0.0)).min(&s.scalar_like(t));
        let cosine = ((progress * (std::f64::consts::PI / t)).unary(crate::ir::UnaryOp::Cos) + 1.0)
            * (0.5 * self.scaled_lr);
        if self.warmup_steps <= 0 {
            return cosine;
        }
        let ramp = &s * (self.scaled_lr / warm);
        let in_warmup = s.compare(crate::ir::ComparisonDirection::Lt, &s.scalar_like(warm));
        in_warmup.select(&ramp, &cosine)
    }
}
