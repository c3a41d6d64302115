//! Models: the SimCLR ResNet backbones and heads written against the
//! tracing API, with a parameter store that names variables exactly as the
//! original TF1 code does (SPEC §3, §4, §9.1).
//!
//! Not here: the loss, optimizers and step programs (`simclr`), initial
//! values on the host (`init`), checkpoint I/O (`ckpt`).

pub mod heads;
pub mod init;
pub mod layers;
pub mod resnet;
pub mod store;

pub use layers::BnMode;
pub use store::{Init, Store, Variable};

use crate::ir::{Builder, ElementType, Shape, Tensor};
use thiserror::Error;

/// The projection head's form (`--proj_head_mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProjHeadMode {
    /// No head: the output is the backbone feature.
    None,
    /// One linear layer with BN (no bias, no β).
    Linear,
    /// `num_proj_layers` dense+BN layers, ReLU between them (default).
    Nonlinear,
}

impl std::str::FromStr for ProjHeadMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "none" => Ok(ProjHeadMode::None),
            "linear" => Ok(ProjHeadMode::Linear),
            "nonlinear" => Ok(ProjHeadMode::Nonlinear),
            other => Err(Error::Config(format!(
                "--proj_head_mode={other} is not one of none, linear, nonlinear"
            ))),
        }
    }
}

/// The arithmetic of a traced network (`--precision`).
///
/// Under [`Precision::Bfloat16`] convolutions and matmuls take bf16
/// operands (the f32 variables are converted where they are used, so their
/// gradients come back in f32) and the activations between layers are
/// bf16; batch-norm moments and normalisation, the pooled feature `h`, the
/// supervised logits and the projection output handed to the loss stay f32.
/// Variables, optimizer state and checkpoints are f32 in both.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Precision {
    /// Everything in f32 (the default; the programs of the original).
    #[default]
    Float32,
    /// Mixed precision: bf16 compute, f32 master weights and statistics.
    Bfloat16,
}

impl Precision {
    /// The flag spelling: `float32` or `bfloat16`.
    pub fn name(self) -> &'static str {
        match self {
            Precision::Float32 => "float32",
            Precision::Bfloat16 => "bfloat16",
        }
    }

    /// The element type of conv/dot operands and inter-layer activations.
    pub fn compute_type(self) -> ElementType {
        match self {
            Precision::Float32 => ElementType::F32,
            Precision::Bfloat16 => ElementType::Bf16,
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Precision {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "float32" | "f32" => Ok(Precision::Float32),
            "bfloat16" | "bf16" => Ok(Precision::Bfloat16),
            other => Err(Error::Config(format!(
                "--precision={other} is not one of float32, bfloat16"
            ))),
        }
    }
}

/// Invalid model configuration.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum Error {
    /// A flag value the original would also refuse.
    #[error("{0}")]
    Config(String),
    /// The traced program is invalid (a bug or an impossible shape).
    #[error(transparent)]
    Ir(#[from] crate::ir::Error),
}

/// The run flags that shape a model (names as in `run.py`).
#[derive(Clone, Debug, PartialEq)]
pub struct ModelConfig {
    /// `--resnet_depth`: 18, 34, 50, 101, 152 or 200.
    pub resnet_depth: u32,
    /// `--width_multiplier`: 1, 2, 3, 4 …
    pub width_multiplier: u32,
    /// `--sk_ratio`: 0 for plain ResNet, 0.0625 for SK.
    pub sk_ratio: f64,
    /// `--se_ratio`: 0 disables squeeze-and-excitation.
    pub se_ratio: f64,
    /// `--image_size`: ≤ 32 selects the CIFAR stem.
    pub image_size: u32,
    /// `--proj_head_mode`.
    pub proj_head_mode: ProjHeadMode,
    /// `--num_proj_layers`.
    pub num_proj_layers: u32,
    /// `--proj_out_dim`.
    pub proj_out_dim: u32,
    /// `--num_classes` of the supervised head.
    pub num_classes: u32,
}

impl Default for ModelConfig {
    /// The original's defaults: R50-1×, no SK/SE, 224×224, nonlinear head of
    /// 3 layers to 128, 1000 classes.
    fn default() -> Self {
        ModelConfig {
            resnet_depth: 50,
            width_multiplier: 1,
            sk_ratio: 0.0,
            se_ratio: 0.0,
            image_size: 224,
            proj_head_mode: ProjHeadMode::Nonlinear,
            num_proj_layers: 3,
            proj_out_dim: 128,
            num_classes: 1000,
        }
    }
}

impl ModelConfig {
    /// Checks the flags, one clear message per problem.
    pub fn validate(&self) -> Result<(), Error> {
        if resnet::depth_layout(self.resnet_depth).is_none() {
            return Err(Error::Config(format!(
                "--resnet_depth={} is not supported; use 18, 34, 50, 101, 152 or 200",
                self.resnet_depth
            )));
        }
        if self.width_multiplier == 0 {
            return Err(Error::Config(
                "--width_multiplier must be at least 1".into(),
            ));
        }
        if !(0.0..1.0).contains(&self.sk_ratio) || !(0.0..1.0).contains(&self.se_ratio) {
            return Err(Error::Config(format!(
                "--sk_ratio={} and --se_ratio={} must lie in [0, 1)",
                self.sk_ratio, self.se_ratio
            )));
        }
        if self.image_size < 8 {
            return Err(Error::Config(format!(
                "--image_size={} is too small",
                self.image_size
            )));
        }
        if self.proj_head_mode == ProjHeadMode::Nonlinear && self.num_proj_layers == 0 {
            return Err(Error::Config(
                "--num_proj_layers must be at least 1 for a nonlinear head".into(),
            ));
        }
        if self.proj_out_dim == 0 || self.num_classes == 0 {
            return Err(Error::Config(
                "--proj_out_dim and --num_classes must be at least 1".into(),
            ));
        }
        Ok(())
    }

    /// Width of the backbone feature h: 512·w (depth 18/34) or 2048·w.
    pub fn feature_dim(&self) -> i64 {
        let base = match resnet::depth_layout(self.resnet_depth) {
            Some((_, true)) => 2048,
            _ => 512,
        };
        base * i64::from(self.width_multiplier)
    }
}

/// Every named output of one forward pass (SPEC §8.6).
#[derive(Clone, Debug)]
pub struct Outputs {
    /// Backbone taps.
    pub backbone: resnet::BackboneOutputs,
    /// `[h, out_0, …]` of the projection head.
    pub proj_list: Vec<Tensor>,
    /// Dense, BN and output taps of every projection-head layer.
    pub proj_layers: Vec<heads::ProjLayer>,
    /// The projection head's output (`proj_head_output`).
    pub proj_head_output: Tensor,
    /// Supervised logits (`logits_sup`) on `proj_list[ft_proj_selector]`.
    pub logits_sup: Tensor,
}

/// How a forward pass runs: BN modes of the backbone and the heads, the
/// supervised head's input, and where gradients stop.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ForwardOptions {
    /// BN mode of the backbone.
    pub backbone_bn: BnMode,
    /// BN mode of the projection head.
    pub head_bn: BnMode,
    /// `--ft_proj_selector`: which element of the projection list feeds the
    /// supervised head (Python indexing).
    pub ft_proj_selector: i32,
    /// `--fine_tune_after_block` (−1: no gradient stop in the backbone).
    pub fine_tune_after_block: i32,
    /// Stop the gradient at the supervised head's input (linear evaluation
    /// while pretraining, SPEC §8.3).
    pub stop_supervised_input: bool,
}

impl ForwardOptions {
    /// Inference mode everywhere, supervised head on h.
    pub fn inference() -> ForwardOptions {
        ForwardOptions {
            backbone_bn: BnMode::Infer,
            head_bn: BnMode::Infer,
            ft_proj_selector: 0,
            fine_tune_after_block: -1,
            stop_supervised_input: false,
        }
    }
}

/// Traces the whole network (backbone, projection head, supervised head)
/// on `x` (`[n, H, W, 3]`, values in [0, 1]).
pub fn forward(
    store: &mut Store,
    cfg: &ModelConfig,
    x: &Tensor,
    opts: &ForwardOptions,
) -> Result<Outputs, Error> {
    cfg.validate()?;
    let backbone = resnet::backbone(store, cfg, x, opts.backbone_bn, opts.fine_tune_after_block);
    let (proj_list, proj_layers) =
        heads::projection_head_layers(store, cfg, &backbone.final_avg_pool, opts.head_bn);
    let n = proj_list.len() as i32;
    let sel = opts.ft_proj_selector;
    let idx = if sel < 0 { n + sel } else { sel };
    let mut sup_in = usize::try_from(idx)
        .ok()
        .and_then(|i| proj_list.get(i))
        .ok_or_else(|| {
            Error::Config(format!(
                "--ft_proj_selector={sel} is out of range for a projection list of {n} entries"
            ))
        })?
        .clone();
    if opts.stop_supervised_input {
        sup_in = sup_in.stop_gradient();
    }
    let logits_sup = heads::supervised_head(store, cfg, &sup_in, false);
    // The loss reads the projection in f32 under every precision.
    let proj_head_output = layers::cast(
        &proj_list
            .last()
            .cloned()
            .unwrap_or_else(|| backbone.final_avg_pool.clone()),
        ElementType::F32,
    );
    Ok(Outputs {
        backbone,
        proj_list,
        proj_layers,
        proj_head_output,
        logits_sup,
    })
}

/// Traces the model on a batch of one image and returns its variables, for
/// counting and naming without compiling anything.
pub fn variables(cfg: &ModelConfig) -> Result<Vec<Variable>, Error> {
    variables_selecting(cfg, 0)
}

/// [`variables`] of the model whose supervised head reads projection-list
/// entry `ft_proj_selector` (its kernel's input width depends on it).
pub fn variables_selecting(
    cfg: &ModelConfig,
    ft_proj_selector: i32,
) -> Result<Vec<Variable>, Error> {
    cfg.validate()?;
    let b = Builder::new("model", 1);
    let s = i64::from(cfg.image_size);
    let x = b.parameter("images", Shape::new(ElementType::F32, [1, s, s, 3]));
    let mut store = Store::new(&b);
    let opts = ForwardOptions {
        ft_proj_selector,
        ..ForwardOptions::inference()
    };
    forward(&mut store, cfg, &x, &opts)?;
    b.check()?;
    Ok(store.variables().to_vec())
}
