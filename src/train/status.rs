//! The run's printed report while training: on a terminal a progress bar
//! with rate and ETA (`indicatif`), in a log plain lines at summary steps.
//!
//! In pretraining the line shows the contrastive loss and accuracy; the
//! online linear head (`--lineareval_while_pretraining`) reads
//! stop-gradient features, so its loss is shown apart as `probe` rather
//! than folded into one total that would read as divergence.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::Duration;

/// The status line (or bar) of one training run.
pub struct Status {
    bar: Option<ProgressBar>,
    total: i64,
    batch: usize,
}

impl Status {
    /// Starts at `start` of `total` steps of global batch `batch`; a bar
    /// only when stderr is a terminal.
    pub fn new(start: i64, total: i64, batch: usize) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let b = ProgressBar::with_draw_target(
                Some(total.max(0) as u64),
                ProgressDrawTarget::stderr(),
            );
            if let Ok(style) = ProgressStyle::with_template(
                "{bar:30} {pos}/{len} {msg} [{elapsed_precise} < {eta}]",
            ) {
                b.set_style(style);
            }
            b.set_position(start.max(0) as u64);
            b
        });
        Status { bar, total, batch }
    }

    /// Reports step `step` with its metrics and the median images/s; a
    /// plain line is printed when `log_line` (no terminal).
    pub fn update(&mut self, step: i64, m: &BTreeMap<&str, f64>, ips: f64, log_line: bool) {
        let text = line(m, ips);
        match &self.bar {
            Some(b) => {
                b.set_position(step.max(0) as u64);
                b.set_message(text);
            }
            None if log_line => {
                let eta = if ips > 0.0 {
                    Duration::from_secs_f64(
                        (self.total - step).max(0) as f64 * self.batch as f64 / ips,
                    )
                } else {
                    Duration::ZERO
                };
                eprintln!(
                    "step {step}/{}  {text}  ETA {}",
                    self.total,
                    super::trainer::fmt_duration(eta)
                );
            }
            None => {}
        }
    }

    /// Ends the bar's line before other output (checkpoints, k-NN).
    pub fn finish_line(&mut self) {
        if let Some(b) = &self.bar {
            b.suspend(|| {});
        }
    }
}

impl Drop for Status {
    fn drop(&mut self) {
        if let Some(b) = self.bar.take() {
            b.abandon();
        }
    }
}

/// The metrics of one step as text: the contrastive loss and accuracy
/// when the step has them (pretraining), the supervised head apart; the
/// distillation loss and the agreement with the teacher when distilling.
pub fn line(m: &BTreeMap<&str, f64>, ips: f64) -> String {
    let g = |k: &str| m.get(k).copied().unwrap_or(0.0);
    let contrastive = g("contrast_loss") != 0.0 || g("contrast_acc") != 0.0;
    let head = if m.contains_key("distill_loss") {
        format!(
            "distill_loss {:.4}  agreement {:.3}  sup_acc {:.3}  teacher_acc {:.3}",
            g("distill_loss"),
            g("teacher_agreement"),
            g("supervised_acc"),
            g("teacher_acc")
        )
    } else if contrastive {
        format!(
            "contrast_loss {:.4}  contrast_acc {:.3}  probe loss {:.3} acc {:.3}",
            g("contrast_loss"),
            g("contrast_acc"),
            g("supervised_loss"),
            g("supervised_acc")
        )
    } else {
        format!(
            "loss {:.4}  sup_acc {:.3}",
            g("supervised_loss"),
            g("supervised_acc")
        )
    };
    format!("{head}  lr {:.4}  {ips:.1} img/s", g("learning_rate"))
}
