//! TF2 object-based checkpoint keys → TF1 variable names (SPEC §9.2).
//!
//! A `tf.train.Checkpoint(model=…)` names each variable by the attribute
//! path that reaches it, list elements by their index, ending in
//! `/.ATTRIBUTES/VARIABLE_VALUE`:
//! `model/resnet_model/block_groups/1/layers/0/projection_layers/0/conv2d/kernel/.ATTRIBUTES/VARIABLE_VALUE`.
//!
//! * Heads map one key at a time ([`tf2_to_tf1`]): `_projection_head/
//!   linear_layers/<j>` → `head_contrastive/nl_<j>` (or `l_0`),
//!   `bn_relu/bn` → `batch_normalization`, `supervised_head/linear_layer` →
//!   `head_supervised/linear_layer`.
//! * The backbone's TF1 names are numbered by creation order
//!   (`base_model/conv2d_<k>`, `base_model/batch_normalization_<k>`, two
//!   separate counters), so [`map_keys`] sees every key at once: it orders
//!   the backbone's layers as TF2's constructors create them — the stem list
//!   `initial_conv_relu_max_pool/<i>`, then per `block_groups/<g>/layers/<j>`
//!   the shortcut list (`shortcut_layers` or `projection_layers`), the main
//!   list (`conv2d_bn_layers` or `conv_relu_dropblock_layers`; inside a
//!   selective-kernel layer `conv2d_fixed_padding`, `batch_norm_relu`,
//!   `conv2d_0`, `batch_norm_relu_1`, `conv2d_1`), then `se_layer`
//!   (`se_reduce`, `se_expand`) — which is TF1's creation order — and
//!   numbers convolutions and batch norms in that order. Layers without
//!   variables (padding, pooling, DropBlock) hold list indices but no keys,
//!   so gaps in the indices are expected.

use std::collections::BTreeMap;

/// The ending of every variable's key.
pub const SUFFIX: &str = "/.ATTRIBUTES/VARIABLE_VALUE";

const BN_VARS: [&str; 4] = ["gamma", "beta", "moving_mean", "moving_variance"];

/// Maps a TF2 object path of a head variable to the TF1 names it may
/// correspond to (`nl_<j>` and, for j = 0, `l_0`); empty for anything else.
pub fn tf2_to_tf1(key: &str) -> Vec<String> {
    let Some(path) = model_path(key) else {
        return vec![];
    };
    let parts: Vec<&str> = path.split('/').collect();
    match parts.as_slice() {
        ["_projection_head", "linear_layers", j, "dense", "kernel"] => {
            head_names(j, "dense/kernel")
        }
        ["_projection_head", "linear_layers", j, "bn_relu", _bn, var] if BN_VARS.contains(var) => {
            head_names(j, &format!("batch_normalization/{var}"))
        }
        ["supervised_head", "linear_layer", "dense", var] if matches!(*var, "kernel" | "bias") => {
            vec![format!("head_supervised/linear_layer/dense/{var}")]
        }
        _ => vec![],
    }
}

/// Candidate TF1 names of every mappable TF2 key among `keys` (heads and
/// backbone); keys that are not TF2 variable paths, optimizer slots and
/// unrecognised paths are left out.
pub fn map_keys<'a>(keys: impl IntoIterator<Item = &'a str>) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    // Backbone layers in creation order.
    let mut layers: BTreeMap<LayerPosition, (LayerKind, Vec<VariableKey>)> = BTreeMap::new();
    for key in keys {
        let heads = tf2_to_tf1(key);
        if !heads.is_empty() {
            out.insert(key.to_string(), heads);
            continue;
        }
        let Some(path) = model_path(key) else {
            continue;
        };
        let Some(rest) = path.strip_prefix("resnet_model/") else {
            continue;
        };
        if let Some((position, layer, kind, var)) = backbone_variable(rest) {
            layers
                .entry((position, layer))
                .or_insert((kind, Vec::new()))
                .1
                .push((var.to_string(), key.to_string()));
        }
    }
    let (mut convs, mut bns) = (0usize, 0usize);
    for ((_, _), (kind, vars)) in layers {
        let (base, counter) = match kind {
            LayerKind::Conv => ("conv2d", &mut convs),
            LayerKind::BatchNorm => ("batch_normalization", &mut bns),
        };
        let name = if *counter == 0 {
            format!("base_model/{base}")
        } else {
            format!("base_model/{base}_{counter}")
        };
        *counter += 1;
        for (var, key) in vars {
            out.insert(key, vec![format!("{name}/{var}")]);
        }
    }
    out
}

/// Where a backbone layer comes in creation order, and its object path.
type LayerPosition = (Vec<u32>, String);
/// A layer's variable (`kernel`, `gamma`, …) and its checkpoint key.
type VariableKey = (String, String);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LayerKind {
    Conv,
    BatchNorm,
}

/// The path inside the model of a variable key (`model/` and the suffix
/// removed); `None` for optimizer slots and non-variable keys.
fn model_path(key: &str) -> Option<&str> {
    let path = key.strip_suffix(SUFFIX)?;
    if path.contains(".OPTIMIZER_SLOT") {
        return None;
    }
    Some(path.strip_prefix("model/").unwrap_or(path))
}

fn head_names(j: &str, rest: &str) -> Vec<String> {
    let Ok(j) = j.parse::<u32>() else {
        return vec![];
    };
    let mut v = vec![format!("head_contrastive/nl_{j}/{rest}")];
    if j == 0 {
        v.push(format!("head_contrastive/l_0/{rest}"));
    }
    v
}

/// A backbone variable path (below `resnet_model/`) as (creation-order
/// position of its layer, the layer's path, the layer's kind, the variable).
fn backbone_variable(rest: &str) -> Option<(Vec<u32>, String, LayerKind, &str)> {
    let parts: Vec<&str> = rest.split('/').collect();
    let (var, layer_parts) = parts.split_last()?;
    let layer = layer_parts.join("/");
    let index = |s: &str| s.parse::<u32>().ok();
    let (mut position, inner): (Vec<u32>, &[&str]) = match layer_parts {
        ["initial_conv_relu_max_pool", i, inner @ ..] => (vec![0, index(i)?], inner),
        ["block_groups", g, "layers", j, list, inner @ ..] => {
            let (g, j) = (index(g)?, index(j)?);
            match *list {
                "shortcut_layers" | "projection_layers" => match inner {
                    [i, inner @ ..] => (vec![1, g, j, 0, index(i)?], inner),
                    _ => return None,
                },
                "conv2d_bn_layers" | "conv_relu_dropblock_layers" => match inner {
                    [i, inner @ ..] => (vec![1, g, j, 1, index(i)?], inner),
                    _ => return None,
                },
                // ResidualBlock keeps its SE layer as an attribute, after
                // the main list.
                "se_layer" => (vec![1, g, j, 2, 0], inner),
                _ => return None,
            }
        }
        _ => return None,
    };
    // The layer inside a list element: a Conv2dFixedPadding (`conv2d`), a
    // BatchNormRelu (`bn`), a selective-kernel layer or an SE layer.
    let (sub, kind) = match inner {
        ["conv2d"] => (0, LayerKind::Conv),
        ["bn"] => (0, LayerKind::BatchNorm),
        ["conv2d_fixed_padding", "conv2d"] => (0, LayerKind::Conv),
        ["batch_norm_relu", "bn"] => (1, LayerKind::BatchNorm),
        ["conv2d_0"] => (2, LayerKind::Conv),
        ["batch_norm_relu_1", "bn"] => (3, LayerKind::BatchNorm),
        ["conv2d_1"] => (4, LayerKind::Conv),
        ["se_reduce"] => (0, LayerKind::Conv),
        ["se_expand"] => (1, LayerKind::Conv),
        _ => return None,
    };
    let ok = match kind {
        LayerKind::Conv => matches!(*var, "kernel" | "bias"),
        LayerKind::BatchNorm => BN_VARS.contains(var),
    };
    if !ok {
        return None;
    }
    position.push(sub);
    Some((position, layer, kind, var))
}

/// The (name, shape) of every checkpoint entry, each mappable TF2 key
/// renamed to its (first) TF1 name and TF2 keys that map to nothing
/// dropped, so that TF1 tools (architecture inference) read TF2
/// checkpoints too. TF1 checkpoints come back unchanged.
pub fn tf1_view(entries: &[super::Entry]) -> Vec<(String, Vec<u64>)> {
    let map = map_keys(entries.iter().map(|e| e.name.as_str()));
    entries
        .iter()
        .filter_map(|e| {
            let name = if e.name.ends_with(SUFFIX) {
                map.get(&e.name)?.first()?.clone()
            } else {
                e.name.clone()
            };
            Some((name, e.dims.clone()))
        })
        .collect()
}
