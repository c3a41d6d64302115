//! Restoring model variables from a checkpoint (SPEC §8.5): every model
//! variable whose TF1 name matches `--variable_schema` — a regex anchored at
//! the start like Python's `re.match`, lookahead included — takes the
//! checkpoint tensor of the same name (shapes must agree); then, with
//! `--zero_init_logits_layer`, every trainable `head_supervised*` variable
//! is zeroed.
//!
//! Names: TF1 checkpoints (the released SimCLR ones) map by exact name.
//! TF2 object paths (`model/resnet_model/block_groups/0/layers/0/…/kernel/
//! .ATTRIBUTES/VARIABLE_VALUE`) are mapped to TF1 names by [`super::tf2`]:
//! the heads by their attribute names, the backbone by the creation order
//! of its layers (tested on checkpoints that real TensorFlow writes for
//! models with the TF2 code's attribute structure).
//!
//! Optimizer slots (`<var>/Momentum`, TF2 `.OPTIMIZER_SLOT`) are ignored
//! unless [`RestoreOptions::include_optimizer_slots`]; other extra tensors
//! (`global_step`, EMA copies, memory buffers, unmapped paths) are ignored
//! and listed in [`Restored::ignored`].

use super::{DType, Error, Result, Source, Tensor};
use crate::nn::Variable;
use std::collections::{BTreeMap, BTreeSet};

/// The schema TF1 intended as its default: everything but the step.
pub const DEFAULT_SCHEMA: &str = "(?!global_step)";
/// `--variable_schema`'s default as TF1's `run.py` spells it.
pub const TF1_DEFAULT_SCHEMA: &str = "?!global_step";
/// README schema for linear evaluation: no step, slots or heads.
pub const LINEAR_EVAL_SCHEMA: &str = "(?!global_step|(?:.*/|^)Momentum|head)";
/// README schema for full fine-tuning: keeps the projection head.
pub const FINETUNE_SCHEMA: &str = "(?!global_step|(?:.*/|^)Momentum|head_supervised)";

/// A compiled `--variable_schema`: matches a name when the pattern matches
/// at its start (Python `re.match`; the end is not anchored).
#[derive(Clone, Debug)]
pub struct Schema {
    pattern: String,
    re: fancy_regex::Regex,
}

impl Schema {
    /// Compiles `pattern` (Python regex syntax; lookahead supported).
    /// TF1's flag default, `?!global_step`, is no regular expression; it is
    /// read as what it means, [`DEFAULT_SCHEMA`].
    pub fn new(pattern: &str) -> Result<Schema> {
        let source = if pattern == TF1_DEFAULT_SCHEMA {
            DEFAULT_SCHEMA
        } else {
            pattern
        };
        let re = fancy_regex::Regex::new(&format!("^(?:{source})")).map_err(|e| {
            let hint = if pattern.starts_with("?!") {
                format!(" (did you mean `({pattern})`? TF1's default `?!global_step` is not a valid regex; use `(?!global_step)`)")
            } else {
                String::new()
            };
            Error::Invalid(format!(
                "--variable_schema={pattern:?} is not a valid regular expression: {e}{hint}"
            ))
        })?;
        Ok(Schema {
            pattern: pattern.to_string(),
            re,
        })
    }

    /// The pattern as given.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// Whether `name` is selected.
    pub fn matches(&self, name: &str) -> Result<bool> {
        self.re.is_match(name).map_err(|e| {
            Error::Invalid(format!(
                "--variable_schema={:?} failed on '{name}': {e}",
                self.pattern
            ))
        })
    }
}

/// How to restore.
#[derive(Clone, Debug)]
pub struct RestoreOptions {
    /// `--variable_schema` (default [`DEFAULT_SCHEMA`]).
    pub variable_schema: String,
    /// `--zero_init_logits_layer`: zero trainable `head_supervised*`
    /// variables after restoring.
    pub zero_init_logits_layer: bool,
    /// Also restore `<var>/Momentum` slots of restored variables (when the
    /// slot name also matches the schema) into [`Restored::slots`].
    pub include_optimizer_slots: bool,
    /// Leave selected variables that the checkpoint lacks at their initial
    /// values (TF2's partial restore) instead of failing (TF1).
    pub allow_missing: bool,
}

impl Default for RestoreOptions {
    fn default() -> Self {
        RestoreOptions {
            variable_schema: DEFAULT_SCHEMA.to_string(),
            zero_init_logits_layer: false,
            include_optimizer_slots: false,
            allow_missing: false,
        }
    }
}

/// What [`restore`] produced and decided.
#[derive(Clone, Debug, Default)]
pub struct Restored {
    /// New values (f32) by model variable name: restored or zeroed ones.
    pub values: BTreeMap<String, Tensor>,
    /// Variables taken from the checkpoint, in model order.
    pub restored: Vec<String>,
    /// Variables zeroed by `zero_init_logits_layer`.
    pub zeroed: Vec<String>,
    /// Model variables the schema did not select (keep their init).
    pub not_selected: Vec<String>,
    /// Selected variables absent from the checkpoint (only with `allow_missing`).
    pub missing: Vec<String>,
    /// Optimizer slots restored (`<var>/Momentum` → value), when asked.
    pub slots: BTreeMap<String, Tensor>,
    /// Checkpoint tensors not used (global step, slots, EMA copies, …).
    pub ignored: Vec<String>,
    /// TF2 object paths that were mapped: (checkpoint key, TF1 name).
    pub renamed: Vec<(String, String)>,
    /// The checkpoint's `global_step`, if it has one.
    pub global_step: Option<i64>,
}

pub use super::tf2::tf2_to_tf1;

fn is_slot(name: &str) -> bool {
    name.ends_with("/Momentum") || name == "Momentum" || name.contains(".OPTIMIZER_SLOT")
}

/// Which flag probably causes a shape mismatch of variable `name`.
pub fn mismatch_hint(name: &str, checkpoint: &[u64], model: &[u64]) -> String {
    let info = "`simclr ckpt info <checkpoint>` prints the flags that build the checkpoint's model";
    let last = |d: &[u64]| d.last().copied().unwrap_or(0);
    let flag = if name.starts_with("head_supervised/") {
        if checkpoint.len() == 2 && model.len() == 2 && checkpoint[0] != model[0] {
            format!("--ft_proj_selector, --proj_out_dim or --width_multiplier (the head's input width is {} in the checkpoint, {} in the model)", checkpoint[0], model[0])
        } else {
            format!("--num_classes (the checkpoint has {} classes: pass --num_classes={}, or keep head_supervised out of --variable_schema and use --zero_init_logits_layer)", last(checkpoint), last(checkpoint))
        }
    } else if name.starts_with("head_contrastive/") {
        let is_last_kernel = name.ends_with("dense/kernel")
            && checkpoint.len() == 2
            && model.len() == 2
            && checkpoint[0] == model[0];
        if is_last_kernel
            || (checkpoint.len() == 1 && !name.contains("nl_0") && !name.ends_with("beta"))
        {
            format!(
                "--proj_out_dim (the checkpoint's projection is {} wide) or --num_proj_layers",
                last(checkpoint)
            )
        } else {
            "--width_multiplier or --resnet_depth (the head's width follows the backbone's), or --num_proj_layers".into()
        }
    } else if name == "base_model/conv2d/kernel"
        && checkpoint.len() == 4
        && model.len() == 4
        && checkpoint[..2] != model[..2]
    {
        format!("--image_size (≤ 32 selects the 3×3 CIFAR stem) or --sk_ratio (0.0625 selects the 3×3 deep stem); the checkpoint's stem kernel is {}×{}", checkpoint[0], checkpoint[1])
    } else if last(model) > 0
        && last(checkpoint) % last(model) == 0
        && checkpoint.len() == model.len()
        && checkpoint[..checkpoint.len().saturating_sub(2)]
            == model[..model.len().saturating_sub(2)]
    {
        let r = last(checkpoint) / last(model);
        format!("--width_multiplier (the checkpoint is {r}× as wide as the model) or --resnet_depth / --sk_ratio (layer numbering shifts)")
    } else if last(checkpoint) > 0
        && last(model) % last(checkpoint) == 0
        && checkpoint.len() == model.len()
    {
        let r = last(model) / last(checkpoint);
        format!("--width_multiplier (the model is {r}× as wide as the checkpoint) or --resnet_depth / --sk_ratio (layer numbering shifts)")
    } else {
        "--resnet_depth, --sk_ratio or --width_multiplier (layer numbering differs between architectures)".into()
    };
    format!("probably {flag}; {info}")
}

fn missing_hint(missing: &[String], available: &BTreeSet<String>) -> String {
    let heads_only = missing.iter().all(|n| n.starts_with("head_contrastive/"));
    let sup_only = missing.iter().all(|n| n.starts_with("head_supervised/"));
    if heads_only {
        format!("the checkpoint has no projection head (SimCLRv1 checkpoints don't): exclude it with --variable_schema='{LINEAR_EVAL_SCHEMA}'")
    } else if sup_only {
        format!("the checkpoint has no supervised head: exclude it with --variable_schema='{FINETUNE_SCHEMA}' and use --zero_init_logits_layer")
    } else if !available.iter().any(|n| n.starts_with("base_model/")) {
        "the checkpoint holds no backbone variables (neither TF1 names `base_model/…` nor TF2 paths `model/resnet_model/…`)".into()
    } else {
        "--resnet_depth or --sk_ratio probably asks for more layers than the checkpoint has; `simclr ckpt info <checkpoint>` prints the matching flags".into()
    }
}

/// "; the checkpoint's model is built by: --flags…" when inference works.
fn inferred_flags(entries: &[super::Entry]) -> String {
    match super::infer::infer(&super::tf2::tf1_view(entries)) {
        Ok(a) => format!(
            "; the checkpoint's model is built by: {}",
            a.flags().join(" ")
        ),
        Err(_) => String::new(),
    }
}

/// Restores `vars` (from [`crate::nn::variables`]) from `src` as SPEC §8.5
/// describes. Values come back as f32 (f16/bf16/f64 checkpoint tensors are
/// converted). Errors: invalid schema, a shape mismatch (naming the tensor,
/// both shapes and the probable flag), selected variables missing (unless
/// `allow_missing`), unreadable or corrupted tensors.
pub fn restore(vars: &[Variable], src: &Source, opts: &RestoreOptions) -> Result<Restored> {
    let schema = Schema::new(&opts.variable_schema)?;
    let entries = src.entries();
    // checkpoint key by TF1 name
    let mut by_name: BTreeMap<String, String> = BTreeMap::new();
    let mut out = Restored::default();
    let model_names: BTreeSet<&str> = vars.iter().map(|v| v.name.as_str()).collect();
    let tf2 = super::tf2::map_keys(entries.iter().map(|e| e.name.as_str()));
    for e in &entries {
        let mapped = tf2
            .get(&e.name)
            .and_then(|cands| cands.iter().find(|c| model_names.contains(c.as_str())));
        if let Some(c) = mapped {
            out.renamed.push((e.name.clone(), c.clone()));
            by_name.insert(c.clone(), e.name.clone());
        } else {
            by_name.insert(e.name.clone(), e.name.clone());
        }
    }
    let available: BTreeSet<String> = by_name.keys().cloned().collect();
    let mut used: BTreeSet<String> = BTreeSet::new();
    let mut missing = vec![];
    for v in vars {
        if !schema.matches(&v.name)? {
            out.not_selected.push(v.name.clone());
            continue;
        }
        let Some(key) = by_name.get(&v.name) else {
            missing.push(v.name.clone());
            continue;
        };
        let t = src.read(key)?;
        let model_dims: Vec<u64> = v.shape.dims.iter().map(|&d| d.max(0) as u64).collect();
        if t.dims != model_dims {
            return Err(Error::ShapeMismatch {
                name: v.name.clone(),
                hint: mismatch_hint(&v.name, &t.dims, &model_dims) + &inferred_flags(&entries),
                checkpoint: t.dims,
                model: model_dims,
            });
        }
        let t = t.into_f32().map_err(|e| {
            Error::Invalid(format!(
                "checkpoint tensor '{key}' for variable '{}': {e}",
                v.name
            ))
        })?;
        used.insert(key.clone());
        out.restored.push(v.name.clone());
        out.values.insert(v.name.clone(), t);
        if opts.include_optimizer_slots {
            let slot = format!("{}/Momentum", v.name);
            if let Some(sk) = by_name.get(&slot) {
                if schema.matches(&slot)? {
                    let st = src.read(sk)?;
                    if st.dims != model_dims {
                        return Err(Error::ShapeMismatch {
                            name: slot.clone(),
                            hint: mismatch_hint(&v.name, &st.dims, &model_dims),
                            checkpoint: st.dims,
                            model: model_dims,
                        });
                    }
                    used.insert(sk.clone());
                    out.slots.insert(slot, st.into_f32()?);
                }
            }
        }
    }
    if !missing.is_empty() {
        if !opts.allow_missing {
            return Err(Error::MissingVariables {
                path: src.path(),
                count: missing.len(),
                examples: missing
                    .iter()
                    .take(3)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
                hint: missing_hint(&missing, &available) + &inferred_flags(&entries),
            });
        }
        out.missing = missing;
    }
    if opts.zero_init_logits_layer {
        for v in vars
            .iter()
            .filter(|v| v.trainable && v.name.starts_with("head_supervised"))
        {
            let dims: Vec<u64> = v.shape.dims.iter().map(|&d| d.max(0) as u64).collect();
            out.values
                .insert(v.name.clone(), Tensor::zeros(DType::F32, &dims)?);
            out.zeroed.push(v.name.clone());
        }
    }
    for e in &entries {
        if !used.contains(&e.name) {
            if e.name == "global_step"
                || e.name.ends_with("/global_step")
                || e.name.starts_with("global_step/")
            {
                if let Ok(t) = src.read(&e.name) {
                    out.global_step = out.global_step.or(t.as_i64());
                }
            }
            out.ignored.push(e.name.clone());
        }
    }
    Ok(out)
}

/// Whether a checkpoint tensor name is an optimizer slot.
pub fn is_optimizer_slot(name: &str) -> bool {
    is_slot(name)
}

/// Where a run starts from (SPEC §8.5: a checkpoint in `model_dir` wins
/// over `--checkpoint`).
#[derive(Clone, Debug)]
pub enum Start {
    /// Resume the newest readable native checkpoint of `model_dir`
    /// (parameters, optimizer state, step, data position).
    Resume(super::native::Latest),
    /// Fresh run initialised from `--checkpoint` through [`restore`]
    /// (model weights only; step and optimizer start fresh).
    Restore(std::path::PathBuf),
    /// Fresh run from the initialisers.
    Fresh,
}

/// Decides how a run starts: resume from `model_dir` when it holds a
/// readable checkpoint, else restore from `checkpoint` when given, else
/// start fresh. Unreadable newer checkpoints are listed in the
/// [`super::native::Latest::skipped`] of [`Start::Resume`].
pub fn start(model_dir: &std::path::Path, checkpoint: Option<&std::path::Path>) -> Result<Start> {
    if let Some(l) = super::native::latest(model_dir)? {
        return Ok(Start::Resume(l));
    }
    Ok(match checkpoint {
        Some(p) => Start::Restore(p.to_path_buf()),
        None => Start::Fresh,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tf1_default_schema_selects_everything_but_the_step() {
        let s = Schema::new(TF1_DEFAULT_SCHEMA).expect("the flag's default compiles");
        assert_eq!(s.pattern(), TF1_DEFAULT_SCHEMA);
        assert!(!s.matches("global_step").expect("match"));
        assert!(s.matches("base_model/conv2d/kernel").expect("match"));
        assert!(s
            .matches("head_supervised/linear_layer/dense/bias")
            .expect("match"));
        let e = Schema::new("?!head").expect_err("not a regex").to_string();
        assert!(e.contains("did you mean `(?!head)`"), "{e}");
    }
}
