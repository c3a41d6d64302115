//! The step programs: one HLO module per step kind.
//!
//! * **train** (pretrain or finetune): forward on the per-replica batch,
//!   losses, gradients (same graph), cross-replica gradient mean, optimizer
//!   update with the learning rate computed from the step counter, BN
//!   moving-average updates, step + 1; every changed piece of state is an
//!   output aliased to its input, so nothing is copied between steps.
//! * **distill**: the train step of SimCLRv2's third stage: a frozen
//!   teacher network, traced in inference mode inside the same program on
//!   the same images, supplies soft targets for the student (see
//!   [`distill_program`]).
//! * **eval**: forward in inference mode; logits and features per example.
//!
//! Entry parameters, in order: inputs (images, labels), every model
//! variable (creation order), the teacher's variables (distill only, named
//! `teacher/<TF1 name>`, never written), the global step, then optimizer
//! slots.

use super::augment_device::DeviceAugment;
use super::loss::{distill_objective, nt_xent, one_hot, softmax_cross_entropy, top_k_correct};
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
    /// Distillation of a frozen teacher into the student on one view
    /// (SimCLRv2's third stage; [`distill_program`]).
    Distill,
}

impl TrainMode {
    /// The `--train_mode` value.
    pub fn name(self) -> &'static str {
        match self {
            TrainMode::Pretrain => "pretrain",
            TrainMode::Finetune => "finetune",
            TrainMode::Distill => "distill",
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
    /// `--precision`: the arithmetic of the network (teacher included).
    /// Losses, metrics, gradients, their all-reduce and the optimizer are
    /// f32 under every precision.
    pub precision: nn::Precision,
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

/// Names of the distill step's `metrics` output, in order. The supervised
/// and teacher accuracies are taken over the labelled examples of the batch
/// (0 when it has none).
pub const DISTILL_METRICS: [&str; 9] = [
    "total_loss",
    "distill_loss",
    "teacher_agreement",
    "supervised_loss",
    "supervised_acc",
    "teacher_acc",
    "weight_decay",
    "learning_rate",
    "nonfinite",
];

/// The teacher and the loss of the distillation step.
#[derive(Clone, Debug, PartialEq)]
pub struct DistillConfig {
    /// The teacher's network (its `image_size` must be the student's, its
    /// classes the dataset's).
    pub teacher: ModelConfig,
    /// Which projection-head output feeds the teacher's supervised head
    /// (its `--ft_proj_selector` when it was fine-tuned).
    pub teacher_ft_proj_selector: i32,
    /// `--distill_temperature` τ.
    pub temperature: f64,
    /// `--distill_label_weight` w: weight of the supervised loss on the
    /// labelled examples; the distillation loss gets 1 − w.
    pub label_weight: f64,
}

impl DistillConfig {
    /// Checks the teacher against the student's configuration.
    pub fn validate(&self, student: &StepConfig) -> Result<(), Error> {
        self.teacher.validate()?;
        if student.train_mode != TrainMode::Distill {
            return Err(Error::Config(format!(
                "a teacher is only used with --train_mode=distill, not {}",
                student.train_mode.name()
            )));
        }
        if self.teacher.num_classes != student.model.num_classes {
            return Err(Error::Config(format!(
                "the teacher has {} classes but the dataset has {}; distill a teacher fine-tuned on this dataset",
                self.teacher.num_classes, student.model.num_classes
            )));
        }
        if self.teacher.image_size != student.model.image_size {
            return Err(Error::Config(format!(
                "the teacher is traced at --image_size={} but the student at {}; both see the same images",
                self.teacher.image_size, student.model.image_size
            )));
        }
        if self.temperature.is_nan() || self.temperature <= 0.0 {
            return Err(Error::Config(format!(
                "--distill_temperature={} must be positive",
                self.temperature
            )));
        }
        if !(0.0..=1.0).contains(&self.label_weight) {
            return Err(Error::Config(format!(
                "--distill_label_weight={} must lie in [0, 1]",
                self.label_weight
            )));
        }
        Ok(())
    }
}

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

impl StateVar {
    /// A variable the program reads but never writes (a frozen teacher's,
    /// or any variable of an inference program).
    pub fn read_only(v: &crate::nn::Variable) -> StateVar {
        StateVar {
            name: v.name.clone(),
            shape: v.shape.clone(),
            trainable: v.trainable,
            optimized: false,
            written: false,
            init: v.init.clone(),
            block: v.block,
        }
    }
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
    /// The distillation teacher's variables (TF1 names), read but never
    /// written; parameter `inputs.len() + vars.len() + i` is teacher
    /// variable i (named `teacher/<name>` in the program). Empty otherwise.
    pub teacher_vars: Vec<StateVar>,
    /// Parameter number of the global step (`s64[]`), train only.
    pub step_param: Option<usize>,
    /// Optimizer slots; parameter `step_param + 1 + j` is slot j.
    pub slots: Vec<SlotVar>,
    /// Output layout: what each output is.
    pub outputs: Vec<Output>,
    /// Names of the entries of the [`Output::Metrics`] output
    /// ([`TRAIN_METRICS`] or [`DISTILL_METRICS`]; empty for eval).
    pub metrics: Vec<&'static str>,
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
    /// `f32[metrics.len()]` (see [`StepProgram::metrics`]).
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
            TrainMode::Finetune | TrainMode::Distill => 1,
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
            TrainMode::Finetune | TrainMode::Distill => match v.block {
                6 => true,
                5 => false,
                b => b > self.fine_tune_after_block,
            },
        }
    }
}

/// Traces the training step for `cfg` (pretrain or finetune; distillation
/// needs its teacher: [`distill_program`]).
pub fn train_program(cfg: &StepConfig) -> Result<StepProgram, Error> {
    if cfg.train_mode == TrainMode::Distill {
        return Err(Error::Config(
            "--train_mode=distill needs a teacher: trace it with distill_program".into(),
        ));
    }
    trace_train(cfg, None, None)
}

/// [`train_program`] or [`distill_program`] (with `distill`) whose images
/// are augmented inside the step (`--augment_on_device`, see
/// [`super::augment_device`]); the data inputs are then the raw views, the
/// labels, the augmentation parameters and (with blur) the blur filters.
pub fn train_program_augmented(
    cfg: &StepConfig,
    distill: Option<&DistillConfig>,
    augment: &DeviceAugment,
) -> Result<StepProgram, Error> {
    if cfg.train_mode == TrainMode::Distill && distill.is_none() {
        return Err(Error::Config(
            "--train_mode=distill needs a teacher: trace it with its DistillConfig".into(),
        ));
    }
    let (s, v, n) = (
        i64::from(cfg.model.image_size),
        cfg.views(),
        cfg.per_replica_batch,
    );
    if (augment.image_size, augment.views, augment.per_replica_batch) != (s, v, n) {
        return Err(Error::Config(format!(
            "the device augmentation is for {} views of {} images of {}x{}, the step takes {v} of {n} of {s}x{s}",
            augment.views, augment.per_replica_batch, augment.image_size, augment.image_size
        )));
    }
    trace_train(cfg, distill, Some(augment))
}

/// Traces the distillation step of SimCLRv2 (Chen et al. 2020, "Big
/// Self-Supervised Models are Strong Semi-Supervised Learners", §2, eq. 2–3).
///
/// The teacher `T` (frozen: inference-mode batch norm, no gradient, its
/// variables inputs that are never written) and the student `S` (training
/// mode, like fine-tuning) see the same augmented images `x_i`. With the
/// class distributions softened by the temperature τ
///
/// ```text
/// P(y | x; τ) = exp(f(x)[y] / τ) / Σ_y' exp(f(x)[y'] / τ)
/// ```
///
/// the distillation loss is the cross-entropy of the student against the
/// teacher,
///
/// ```text
/// L_distill = −(1/N) Σ_i Σ_y P_T(y | x_i; τ) · log P_S(y | x_i; τ),
/// ```
///
/// averaged over the N examples of the global batch, labelled or not. With
/// labels (`labels[i] ≥ 0`; −1 marks an unlabelled example) and the label
/// weight w = `--distill_label_weight`, the loss minimised is
///
/// ```text
/// L = w · L_sup + (1 − w) · L_distill + weight decay,
/// L_sup = −(1/N_L) Σ_{i labelled} log P_S(y_i | x_i; 1),
/// ```
///
/// N_L being the labelled examples of the global batch. The paper writes
/// the weighted sum as `(1 − α) L_sup + α L_distill`, so w = 1 − α; w = 0
/// (the default) is the paper's pure distillation on unlabelled data.
/// Every replica computes its share so that the cross-replica mean of the
/// losses and gradients equals the global-batch ones for any R.
///
/// Metrics ([`DISTILL_METRICS`]): the losses, `teacher_agreement` (the
/// fraction of examples whose student top-1 class is the teacher's), the
/// student's and the teacher's top-1 accuracy on the labelled examples.
pub fn distill_program(cfg: &StepConfig, distill: &DistillConfig) -> Result<StepProgram, Error> {
    trace_train(cfg, Some(distill), None)
}

fn trace_train(
    cfg: &StepConfig,
    distill: Option<&DistillConfig>,
    augment: Option<&DeviceAugment>,
) -> Result<StepProgram, Error> {
    cfg.validate()?;
    match (cfg.train_mode, distill) {
        (TrainMode::Distill, Some(d)) => d.validate(cfg)?,
        (TrainMode::Distill, None) => {
            return Err(Error::Config(
                "--train_mode=distill needs a teacher (--teacher_checkpoint)".into(),
            ))
        }
        (mode, Some(_)) => {
            return Err(Error::Config(format!(
                "a teacher is only used with --train_mode=distill, not {}",
                mode.name()
            )))
        }
        _ => {}
    }
    let n = cfg.per_replica_batch;
    let views = cfg.views();
    let r = cfg.num_replicas;
    let b = Builder::new(
        match cfg.train_mode {
            TrainMode::Pretrain => "pretrain_step",
            TrainMode::Finetune => "finetune_step",
            TrainMode::Distill => "distill_step",
        },
        r,
    );
    let raw_images = b.parameter(
        "images",
        augment.map_or_else(|| cfg.image_shape(views * n), DeviceAugment::images_shape),
    );
    let labels = b.parameter("labels", Shape::new(ElementType::S32, [n]));
    let mut data_inputs = vec![raw_images.shape(), labels.shape()];
    let images = match augment {
        Some(a) => {
            let extra = a.parameters(&b);
            data_inputs.extend(a.extra_shapes());
            let _s = b.scope("augment");
            a.apply(&raw_images, &extra)
        }
        None => raw_images,
    };
    let mut store = Store::new(&b).with_precision(cfg.precision);
    let backbone_bn = match cfg.train_mode {
        TrainMode::Finetune | TrainMode::Distill if cfg.fine_tune_after_block >= 4 => BnMode::Infer,
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
    let k = i64::from(cfg.model.num_classes);
    // The first five metrics of the mode, then weight decay, lr, nonfinite.
    let (loss, mode_metrics, teacher_vars) = match (cfg.train_mode, distill) {
        (TrainMode::Pretrain, _) => {
            let c = {
                let _s = b.scope("contrastive_loss");
                nt_xent(
                    &out.proj_head_output,
                    cfg.hidden_norm,
                    cfg.temperature,
                    true,
                )
            };
            let (sup_loss, sup_acc) = if cfg.lineareval_while_pretraining {
                // The supervised head sees a stop-gradient copy of the
                // selected projection output of both views (2n rows).
                let _s = b.scope("linear_eval");
                let labels2 = labels.concat(&[&labels], 0);
                let logits = out.logits_sup.clone();
                let loss = softmax_cross_entropy(&logits, &one_hot(&labels2, k), None);
                let acc = top_k_correct(&logits.stop_gradient(), &labels2, 1).mean(&[0]);
                (loss, acc)
            } else {
                (zero.clone(), zero.clone())
            };
            let total = &c.loss + &sup_loss;
            (
                total,
                [c.loss, c.accuracy, c.entropy, sup_loss, sup_acc],
                vec![],
            )
        }
        (TrainMode::Distill, Some(d)) => {
            let mut teacher_store =
                Store::with_param_prefix(&b, "teacher/").with_precision(cfg.precision);
            let teacher = {
                let _s = b.scope("teacher");
                let topts = nn::ForwardOptions {
                    ft_proj_selector: d.teacher_ft_proj_selector,
                    ..nn::ForwardOptions::inference()
                };
                nn::forward(&mut teacher_store, &d.teacher, &images, &topts)?
            };
            let _s = b.scope("distillation_loss");
            let o = distill_objective(
                &out.logits_sup,
                &teacher.logits_sup,
                &labels,
                d.temperature,
                d.label_weight,
                r,
            );
            let tvars = teacher_store
                .variables()
                .iter()
                .map(StateVar::read_only)
                .collect();
            (
                o.loss,
                [
                    o.distill_loss,
                    o.agreement,
                    o.supervised_loss,
                    o.supervised_acc,
                    o.teacher_acc,
                ],
                tvars,
            )
        }
        _ => {
            let _s = b.scope("supervised_loss");
            let logits = &out.logits_sup;
            let loss = softmax_cross_entropy(logits, &one_hot(&labels, k), None);
            let acc = top_k_correct(&logits.stop_gradient(), &labels, 1).mean(&[0]);
            (
                loss.clone(),
                [zero.clone(), zero.clone(), zero.clone(), loss, acc],
                vec![],
            )
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
    let total_loss = &loss + &weight_decay;

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
    let [m0, m1, m2, m3, m4] = &mode_metrics;
    let metrics = [
        &total_loss,
        m0,
        m1,
        m2,
        m3,
        m4,
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
    let num_inputs = data_inputs.len();
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
        inputs: data_inputs,
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
        teacher_vars,
        step_param: Some(step_param),
        slots,
        outputs: outputs.into_iter().map(|(o, _)| o).collect(),
        metrics: if cfg.train_mode == TrainMode::Distill {
            DISTILL_METRICS.to_vec()
        } else {
            TRAIN_METRICS.to_vec()
        },
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
    let mut store = Store::new(&b).with_precision(cfg.precision);
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
        vars: store.variables().iter().map(StateVar::read_only).collect(),
        teacher_vars: vec![],
        step_param: None,
        slots: vec![],
        metrics: vec![],
        outputs: EVAL_OUTPUTS
            .iter()
            .map(|s| Output::Named(s.to_string()))
            .collect(),
    })
}
