//! The projection head (`head_contrastive`) and the supervised head
//! (`head_supervised`), SPEC §4.

use super::layers::{batch_norm, dense, BnMode};
use super::store::Store;
use super::{ModelConfig, ProjHeadMode};
use crate::ir::Tensor;

/// The taps of one projection-head layer (the original's
/// `proj_nl_{j}_dense/bn/out`, SPEC §4.2).
#[derive(Clone, Debug)]
pub struct ProjLayer {
    /// Output of the dense layer (no bias).
    pub dense: Tensor,
    /// Output of its batch norm.
    pub bn: Tensor,
    /// The layer's output: after ReLU for hidden layers, `bn` for the last.
    pub out: Tensor,
}

/// Traces the projection head on features `h` (`[n, D]`). Returns the list
/// `[h, out_0, …, out_{L−1}]` that `ft_proj_selector` indexes; the last
/// element is the head's output.
pub fn projection_head(
    store: &mut Store,
    cfg: &ModelConfig,
    h: &Tensor,
    bn: BnMode,
) -> Vec<Tensor> {
    projection_head_layers(store, cfg, h, bn).0
}

/// [`projection_head`], also returning every layer's taps (one per layer:
/// `l_0` for the linear head, `nl_0 …` for the nonlinear one).
pub fn projection_head_layers(
    store: &mut Store,
    cfg: &ModelConfig,
    h: &Tensor,
    bn: BnMode,
) -> (Vec<Tensor>, Vec<ProjLayer>) {
    let b = h.builder().clone();
    let _g = b.scope("head_contrastive");
    store.set_block(5);
    let width = h.dims().get(1).copied().unwrap_or(0);
    let mut outs = vec![h.clone()];
    let mut layers = vec![];
    match cfg.proj_head_mode {
        ProjHeadMode::None => {}
        ProjHeadMode::Linear => {
            let scope = "head_contrastive/l_0";
            let _s = b.scope("l_0");
            let y = dense(store, scope, h, i64::from(cfg.proj_out_dim), false, false);
            let z = batch_norm(store, scope, &y, bn, false, false, false);
            outs.push(z.clone());
            layers.push(ProjLayer {
                dense: y,
                bn: z.clone(),
                out: z,
            });
        }
        ProjHeadMode::Nonlinear => {
            let num_layers = cfg.num_proj_layers;
            let mut x = h.clone();
            for j in 0..num_layers {
                let scope = format!("head_contrastive/nl_{j}");
                let _s = b.scope(&format!("nl_{j}"));
                let last = j + 1 == num_layers;
                let units = if last {
                    i64::from(cfg.proj_out_dim)
                } else {
                    width
                };
                let y = dense(store, &scope, &x, units, false, false);
                let z = batch_norm(store, &scope, &y, bn, false, false, !last);
                x = if last { z.clone() } else { z.relu() };
                outs.push(x.clone());
                layers.push(ProjLayer {
                    dense: y,
                    bn: z,
                    out: x.clone(),
                });
            }
        }
    }
    (outs, layers)
}

/// Traces the supervised head: a dense layer with bias to `num_classes`
/// logits (`logits_sup`).
pub fn supervised_head(
    store: &mut Store,
    cfg: &ModelConfig,
    x: &Tensor,
    zero_init: bool,
) -> Tensor {
    let _g = x.builder().scope("head_supervised");
    store.set_block(6);
    dense(
        store,
        "head_supervised/linear_layer",
        x,
        i64::from(cfg.num_classes),
        true,
        zero_init,
    )
}
