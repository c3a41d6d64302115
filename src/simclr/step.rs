//! The step programs: one HLO module per step kind.
//!
//! * **train** (pretrain or finetune): forward on the per-replica batch,
//!   losses, gradients (same graph), cross-replica gradient mean, optimizer
//!   update with the learning rate computed from the step counter, BN
//!   moving-average updates, step + 1; every changed piece of state is an
//!   output aliased to its input, so nothing is copied between steps.
//! * **eval**: forward in inference mode; logits and features per example.
//!
//! Entry parameters, in order: inputs (images, labels), every model
//! variable (creation order), the global step, then optimizer slots.

use super::loss::{nt_xent, one_hot, softmax_cross_entropy, top_k_correct};
use super::optim::{l2_in_loss, update, OptimizerConfig};
use super::schedule::Schedule;
use crate::ir::{Builder, ComparisonDirection, ElementType, Module, ReplicaGroups, Shape, Tensor};
use crate::nn::{self, BnMode, Init, ModelConfig, Store};
use thiserror::Error;

/// `--train_mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrainMode {
    /// Contrastive pretraining on two views.
    Pretrain,
    /// Supervised fine-tuning / linear evaluation on one view.
    Finetune,
}

impl TrainMode {
    /// The flag value: `pretrain` or `finetune`.
    pub fn name(self) -> &'static str {
        match self {
            TrainMode::Pretrain => "pretrain",
            TrainMode::Finetune => "finetune",
        }
    }
}

/// Errors building a step program.
#[derive(Debug, Error)]
pub enum Error {
    /// A flag combination the original refuses.
    #[error("{0}")]
    Config(String),
    /// The model could not be traced.
    #[error(transparent)]
    Model(#[from] nn::Error),
    /// The program is invalid.
    #[error(transparent)]
    Ir(#[from] crate::ir::Error),
    /// Gradients could not be built.
    #[error(transparent)]
    Ad(#[from] crate::ad::Error),
}

/// Everything that shapes a step program.
#[derive(Clone, Debug, PartialEq)]
pub struct StepConfig {
    /// The network.
    pub model: ModelConfig,
    /// Pretrain or finetune.
    pub train_mode: TrainMode,
    /// Examples per replica per step (the global batch divided by the replicas).
    pub per_replica_batch: i64,
    /// Number of replicas R.
    pub num_replicas: usize,
    /// Optimizer and weight decay.
    pub optimizer: OptimizerConfig,
    /// Learning-rate schedule.
    pub schedule: Schedule,
    /// `--temperature`.
    pub temperature: f64,
    /// `--hidden_norm`.
    pub hidden_norm: bool,
    /// `--global_bn`.
    pub global_bn: bool,
    /// `--batch_norm_decay`.
    pub batch_norm_decay: f64,
    /// `--lineareval_while_pretraining`.
    pub lineareval_while_pretraining: bool,
    /// `--fine_tune_after_block`.
    pub fine_tune_after_block: i32,
    /// `--ft_proj_selector`.
    pub ft_proj_selector: i32,
}

/// Names of the entries of the train step's `metrics` output, in order.
pub const TRAIN_METRICS: [&str; 9] = [
    "total_loss",
    "contrast_loss",
    "contrast_acc",
    "contrast_entropy",
    "supervised_loss",
    "supervised_acc",
    "weight_decay",
    "learning_rate",
    "nonfinite",
];

/// One model variable as the step sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct StateVar {
    /// TF1 name.
    pub name: String,
    /// Shape.
    pub shape: Shape,
    /// Trainable in the model (BN moving statistics are not).
    pub trainable: bool,
    /// Updated by the optimizer in this program.
    pub optimized: bool,
    /// Written by this program (optimized, or BN statistics updated).
    pub written: bool,
    /// Initial value rule.
    pub init: Init,
    /// Network part (see `nn::Variable::block`).
    pub block: i32,
}

/// An optimizer slot (`<variable>/Momentum`, …).
#[derive(Clone, Debug, PartialEq)]
pub struct SlotVar {
    /// Name, e.g. `base_model/conv2d/kernel/Momentum`.
    pub name: String,
    /// Index of its variable in [`StepProgram::vars`].
    pub var: usize,
    /// Shape (that of the variable).
    pub shape: Shape,
}

/// A traced step program and the map of its inputs and outputs.
#[derive(Clone, Debug)]
pub struct StepProgram {
    /// The program.
    pub module: Module,
    /// Shapes of the data inputs (parameters 0..k).
    pub inputs: Vec<Shape>,
    /// Model variables; parameter `inputs.len() + i` is variable i.
    pub vars: Vec<StateVar>,
    /// Parameter number of the global step (`s64[]`), train only.
    pub step_param: Option<usize>,
    /// Optimizer slots; parameter `step_param + 1 + j` is slot j.
    pub slots: Vec<SlotVar>,
    /// Output layout: what each output is.
    pub outputs: Vec<Output>,
}

/// What one output of a step program holds.
#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    /// The new value of variable i.
    Var(usize),
    /// The new global step.
    Step,
    /// The new value of slot j.
    Slot(usize),
    /// `f32[TRAIN_METRICS.len()]`.
    Metrics,
    /// A named per-example tensor of the eval program.
    Named(String),
}

impl StepConfig {
    /// Checks combinations the original refuses.
    pub fn validate(&self) -> Result<(), Error> {
        self.model.validate()?;
        if self.train_mode == TrainMode::Pretrain && self.fine_tune_after_block > -1 {
            return Err(Error::Config(format!(
                "--fine_tune_after_block={} only applies to --train_mode=finetune; use -1 when pretraining",
                self.fine_tune_after_block
            )));
        }
        if !(-1..=4).contains(&self.fine_tune_after_block) {
            return Err(Error::Config(format!(
                "--fine_tune_after_block={} must be between -1 and 4",
                self.fine_tune_after_block
            )));
        }
        if self.per_replica_batch < 1 {
            return Err(Error::Config(
                "the per-replica batch must hold at least one example".into(),
            ));
        }
        if self.temperature <= 0.0 {
            return Err(Error::Config(format!(
                "--temperature={} must be positive",
                self.temperature
            )));
        }
        Ok(())
    }

    fn image_shape(&self, n: i64) -> Shape {
        let s = i64::from(self.model.image_size);
        Shape::new(ElementType::F32, [n, s, s, 3])
    }

    fn views(&self) -> i64 {
        match self.train_mode {
            TrainMode::Pretrain => 2,
            TrainMode::Finetune => 1,
        }
    }

    fn bn_train(&self) -> BnMode {
        BnMode::Train {
            global: self.global_bn,
            decay: self.batch_norm_decay,
        }
    }

    /// Whether the optimizer updates variable `v` in this mode (TF1
    /// semantics: the projection head is never trained when fine-tuning).
    fn optimized(&self, v: &nn::Variable) -> bool {
        if !v.trainable {
            return false;
        }
        match self.train_mode {
            TrainMode::Pretrain => v.block != 6 || self.lineareval_while_pretraining,
            TrainMode::Finetune => match v.block {
                6 => true,
                5 => false,
                b => b > self.fine_tune_after_block,
            },
        }
    }
}

/// Traces the training step for `cfg`.
pub fn train_program(cfg: &StepConfig) -> Result<StepProgram, Error> {
    cfg.validate()?;
    let n = cfg.per_replica_batch;
    let views = cfg.views();
    let b = Builder::new(
        match cfg.train_mode {
            TrainMode::Pretrain => "pretrain_step",
            TrainMode::Finetune => "finetune_step",
        },
        cfg.num_replicas,
    );
    let images = b.parameter("images", cfg.image_shape(views * n));
    let labels = b.parameter("labels", Shape::new(ElementType::S32, [n]));
    let mut store = Store::new(&b);
    let backbone_bn = match cfg.train_mode {
        TrainMode::Finetune if cfg.fine_tune_after_block >= 4 => BnMode::Infer,
        _ => cfg.bn_train(),
    };
    let opts = nn::ForwardOptions {
        backbone_bn,
        head_bn: cfg.bn_train(),
        ft_proj_selector: cfg.ft_proj_selector,
        fine_tune_after_block: cfg.fine_tune_after_block,
        stop_supervised_input: cfg.train_mode == TrainMode::Pretrain,
    };
    let out = nn::forward(&mut store, &cfg.model, &images, &opts)?;
    let zero = b.scalar(ElementType::F32, 0.0);
    let (contrast_loss, contrast_acc, contrast_entropy, sup_loss, sup_acc) = match cfg.train_mode {
        TrainMode::Pretrain => {
            let c = {
                let _s = b.scope("contrastive_loss");
                nt_xent(
                    &out.proj_head_output,
                    cfg.hidden_norm,
                    cfg.temperature,
                    true,
                )
            };
            if cfg.lineareval_while_pretraining {
                // The supervised head sees a stop-gradient copy of the
                // selected projection output of both views (2n rows).
                let _s = b.scope("linear_eval");
                let labels2 = labels.concat(&[&labels], 0);
                let logits = out.logits_sup.clone();
                let k = i64::from(cfg.model.num_classes);
                let loss = softmax_cross_entropy(&logits, &one_hot(&labels2, k), None);
                let acc = top_k_correct(&logits.stop_gradient(), &labels2, 1).mean(&[0]);
                (c.loss, c.accuracy, c.entropy, loss, acc)
            } else {
                (c.loss, c.accuracy, c.entropy, zero.clone(), zero.clone())
            }
        }
        TrainMode::Finetune => {
            let _s = b.scope("supervised_loss");
            let k = i64::from(cfg.model.num_classes);
            let logits = &out.logits_sup;
            let loss = softmax_cross_entropy(logits, &one_hot(&labels, k), None);
            let acc = top_k_correct(&logits.stop_gradient(), &labels, 1).mean(&[0]);
            (zero.clone(), zero.clone(), zero.clone(), loss, acc)
        }
    };
    let vars: Vec<nn::Variable> = store.variables().to_vec();
    let optimized: Vec<bool> = vars.iter().map(|v| cfg.optimized(v)).collect();
    let weight_decay = {
        let _s = b.scope("weight_decay");
        let mut total = zero.clone();
        for (v, &o) in vars.iter().zip(&optimized) {
            if o && cfg.optimizer.weight_decay != 0.0 && l2_in_loss(cfg.optimizer.kind, &v.name) {
                total =
                    total + (&v.tensor * &v.tensor).sum_all() * (0.5 * cfg.optimizer.weight_decay);
            }
        }
        total
    };
    let total_loss = &contrast_loss + &sup_loss + &weight_decay;

    let wrt: Vec<Tensor> = vars
        .iter()
        .zip(&optimized)
        .filter(|(_, &o)| o)
        .map(|(v, _)| v.tensor.clone())
        .collect();
    let grads = {
        let _s = b.scope("gradients");
        crate::ad::grad(&total_loss, &wrt)?
    };
    let r = cfg.num_replicas;
    let step = b.parameter("global_step", Shape::scalar(ElementType::S64));
    let step_param = b.param_count() - 1;
    let lr = {
        let _s = b.scope("learning_rate");
        cfg.schedule.lr_tensor(&step)
    };
    let mut outputs: Vec<(Output, Tensor)> = Vec::new();
    let mut slots = Vec::new();
    let mut new_vars: Vec<Option<Tensor>> = vec![None; vars.len()];
    {
        let _s = b.scope("optimizer");
        let mut gi = 0;
        for (i, v) in vars.iter().enumerate() {
            if !optimized[i] {
                continue;
            }
            let mut g = grads[gi].clone();
            gi += 1;
            if r > 1 {
                g = g.all_reduce_sum(ReplicaGroups::All) * (1.0 / r as f64);
            }
            let slot_tensors: Vec<Tensor> = cfg
                .optimizer
                .kind
                .slots()
                .iter()
                .map(|suffix| {
                    let name = format!("{}/{suffix}", v.name);
                    slots.push(SlotVar {
                        name: name.clone(),
                        var: i,
                        shape: v.shape.clone(),
                    });
                    b.parameter(&name, v.shape.clone())
                })
                .collect();
            let (w_new, s_new) = update(
                &cfg.optimizer,
                &v.name,
                &v.tensor,
                &g,
                &slot_tensors,
                &lr,
                &step,
            );
            new_vars[i] = Some(w_new);
            let first_slot = slots.len() - s_new.len();
            for (k, s) in s_new.into_iter().enumerate() {
                outputs.push((Output::Slot(first_slot + k), s));
            }
        }
    }
    for (i, value) in store.updates() {
        new_vars[*i] = Some(value.clone());
    }
    for (i, v) in new_vars.iter().enumerate() {
        if let Some(t) = v {
            outputs.push((Output::Var(i), t.clone()));
        }
    }
    outputs.push((Output::Step, &step + 1.0));
    // x − x is 0 for every finite x and NaN for NaN and ±inf.
    let twin = total_loss.clone();
    let nonfinite = (&total_loss - &twin)
        .compare(ComparisonDirection::Ne, &zero)
        .convert(ElementType::F32);
    let metrics = [
        &total_loss,
        &contrast_loss,
        &contrast_acc,
        &contrast_entropy,
        &sup_loss,
        &sup_acc,
        &weight_decay,
        &lr,
        &nonfinite,
    ]
    .iter()
    .map(|t| t.reshape(&[1]))
    .collect::<Vec<_>>();
    let first = metrics[0].clone();
    let rest: Vec<&Tensor> = metrics[1..].iter().collect();
    let mut metrics = first.concat(&rest, 0);
    if r > 1 {
        metrics = metrics.all_reduce_sum(ReplicaGroups::All) * (1.0 / r as f64);
    }
    outputs.push((Output::Metrics, metrics));

    // Donation: each written variable, the step and each slot reuse their input.
    let num_inputs = 2;
    for (k, (o, _)) in outputs.iter().enumerate() {
        match o {
            Output::Var(i) => b.alias(k, num_inputs + i),
            Output::Step => b.alias(k, step_param),
            Output::Slot(j) => b.alias(k, step_param + 1 + j),
            _ => {}
        }
    }
    let refs: Vec<&Tensor> = outputs.iter().map(|(_, t)| t).collect();
    let module = b.build(&refs)?;
    let written: Vec<bool> = new_vars.iter().map(Option::is_some).collect();
    Ok(StepProgram {
        module,
        inputs: vec![images.shape(), labels.shape()],
        vars: vars
            .iter()
            .enumerate()
            .map(|(i, v)| StateVar {
                name: v.name.clone(),
                shape: v.shape.clone(),
                trainable: v.trainable,
                optimized: optimized[i],
                written: written[i],
                init: v.init.clone(),
                block: v.block,
            })
            .collect(),
        step_param: Some(step_param),
        slots,
        outputs: outputs.into_iter().map(|(o, _)| o).collect(),
    })
}

/// Names of the eval program's outputs, in order.
pub const EVAL_OUTPUTS: [&str; 3] = ["logits_sup", "final_avg_pool", "proj_head_output"];

/// Traces the evaluation program: inference-mode forward on `n` images per
/// replica; outputs per example the supervised logits, the backbone
/// feature and the projection output.
pub fn eval_program(cfg: &StepConfig, n: i64) -> Result<StepProgram, Error> {
    cfg.model.validate()?;
    let b = Builder::new("eval_step", cfg.num_replicas);
    let images = b.parameter("images", cfg.image_shape(n));
    let mut store = Store::new(&b);
    let opts = nn::ForwardOptions {
        ft_proj_selector: cfg.ft_proj_selector,
        ..nn::ForwardOptions::inference()
    };
    let out = nn::forward(&mut store, &cfg.model, &images, &opts)?;
    let module = b.build(&[
        &out.logits_sup,
        &out.backbone.final_avg_pool,
        &out.proj_head_output,
    ])?;
    Ok(StepProgram {
        module,
        inputs: vec![images.shape()],
        vars: store
            .variables()
            .iter()
            .map(|v| StateVar {
                name: v.name.clone(),
                shape: v.shape.clone(),
                trainable: v.trainable,
                optimized: false,
                written: false,
                init: v.init.clone(),
                block: v.block,
            })
            .collect(),
        step_param: None,
        slots: vec![],
        outputs: EVAL_OUTPUTS
            .iter()
            .map(|s| Output::Named(s.to_string()))
            .collect(),
    })
}
