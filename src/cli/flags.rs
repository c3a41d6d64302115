//! The flags of `simclr run`, with the names, types and defaults of the
//! original `run.py` (SPEC §1; TF1 defaults where TF1 and TF2 differ), in
//! absl syntax: `--flag=value`, `--flag value`, and for booleans `--flag` /
//! `--noflag`. One table defines every flag: the struct field, its type,
//! default and help text, so parsing, `--help` and `flags.json` agree.

use serde_json::{Map, Value};
use thiserror::Error;

/// A bad command line, with one message per problem.
#[derive(Debug, Error, PartialEq)]
#[error("{}", .0.join("\n"))]
pub struct FlagError(pub Vec<String>);

/// The type of a flag's value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    /// `true`/`false` (also `--flag`, `--noflag`).
    Bool,
    /// A signed integer.
    Int,
    /// A floating-point number.
    Float,
    /// Any string.
    Str,
    /// One of a fixed set of strings.
    Enum(&'static [&'static str]),
}

/// One row of the flag table.
#[derive(Clone, Debug)]
pub struct FlagSpec {
    /// Name without dashes.
    pub name: &'static str,
    /// Value type.
    pub kind: Kind,
    /// Default, as it would be typed (`""` for None).
    pub default: &'static str,
    /// Help text.
    pub help: &'static str,
}

macro_rules! flags {
    ($( $name:ident : $ty:ty = $kind:expr, $default:expr, $help:expr; )*) => {
        /// Every flag of `simclr run`, typed. Optional strings are `None`
        /// when unset.
        #[derive(Clone, Debug, PartialEq)]
        pub struct RunFlags {
            $( #[doc = $help] pub $name: $ty, )*
        }

        /// The flag table, in the order of SPEC §1 (then simclr's own flags).
        pub const SPECS: &[FlagSpec] = &[
            $( FlagSpec { name: stringify!($name), kind: $kind, default: $default, help: $help }, )*
        ];

        impl RunFlags {
            fn set(&mut self, name: &str, value: &str) -> Result<(), String> {
                match name {
                    $( stringify!($name) => {
                        self.$name = <$ty as FlagValue>::parse(value, $kind)
                            .map_err(|e| format!("--{}={value}: {e}", stringify!($name)))?;
                        Ok(())
                    } )*
                    _ => Err(format!("unknown flag --{name}")),
                }
            }

            /// All flags as a JSON object (what `flags.json` holds).
            pub fn to_json(&self) -> Value {
                let mut m = Map::new();
                $( m.insert(stringify!($name).to_string(), self.$name.to_json()); )*
                Value::Object(m)
            }
        }

        impl Default for RunFlags {
            fn default() -> Self {
                let mut f = RunFlags { $( $name: <$ty as FlagValue>::zero(), )* };
                for s in SPECS {
                    if !s.default.is_empty() {
                        // The table's defaults are valid by construction
                        // (checked by a unit test).
                        let _ = f.set(s.name, s.default);
                    }
                }
                f
            }
        }
    };
}

trait FlagValue: Sized {
    fn parse(s: &str, kind: Kind) -> Result<Self, String>;
    fn zero() -> Self;
    fn to_json(&self) -> Value;
}

impl FlagValue for bool {
    fn parse(s: &str, _: Kind) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "true" | "t" | "1" | "yes" => Ok(true),
            "false" | "f" | "0" | "no" => Ok(false),
            _ => Err("expected true or false".into()),
        }
    }
    fn zero() -> Self {
        false
    }
    fn to_json(&self) -> Value {
        Value::Bool(*self)
    }
}

impl FlagValue for i64 {
    fn parse(s: &str, _: Kind) -> Result<Self, String> {
        s.parse().map_err(|_| "expected an integer".to_string())
    }
    fn zero() -> Self {
        0
    }
    fn to_json(&self) -> Value {
        Value::from(*self)
    }
}

impl FlagValue for f64 {
    fn parse(s: &str, _: Kind) -> Result<Self, String> {
        let v: f64 = s.parse().map_err(|_| "expected a number".to_string())?;
        if v.is_finite() {
            Ok(v)
        } else {
            Err("expected a finite number".into())
        }
    }
    fn zero() -> Self {
        0.0
    }
    fn to_json(&self) -> Value {
        serde_json::Number::from_f64(*self).map_or(Value::Null, Value::Number)
    }
}

impl FlagValue for String {
    fn parse(s: &str, kind: Kind) -> Result<Self, String> {
        if let Kind::Enum(allowed) = kind {
            if !allowed.contains(&s) {
                return Err(format!("expected one of {}", allowed.join(", ")));
            }
        }
        Ok(s.to_string())
    }
    fn zero() -> Self {
        String::new()
    }
    fn to_json(&self) -> Value {
        Value::String(self.clone())
    }
}

impl FlagValue for Option<String> {
    fn parse(s: &str, kind: Kind) -> Result<Self, String> {
        if s.is_empty() {
            return Ok(None);
        }
        String::parse(s, kind).map(Some)
    }
    fn zero() -> Self {
        None
    }
    fn to_json(&self) -> Value {
        self.as_ref()
            .map_or(Value::Null, |s| Value::String(s.clone()))
    }
}

use Kind::{Bool, Float, Int, Str};

flags! {
    learning_rate: f64 = Float, "0.3", "Initial learning rate per batch size of 256.";
    learning_rate_scaling: String = Kind::Enum(&["linear", "sqrt"]), "linear", "How to scale the learning rate as a function of batch size.";
    warmup_epochs: f64 = Float, "10", "Number of epochs of warmup.";
    weight_decay: f64 = Float, "1e-4", "Amount of weight decay to use (TF1 default; TF2's is 1e-6).";
    batch_norm_decay: f64 = Float, "0.9", "Batch norm decay parameter.";
    train_batch_size: i64 = Int, "512", "Global batch size for training.";
    train_split: String = Str, "train", "Split for training.";
    train_epochs: i64 = Int, "100", "Number of epochs to train for.";
    train_steps: i64 = Int, "0", "Number of steps to train for. If provided, overrides train_epochs.";
    eval_steps: i64 = Int, "0", "Number of steps to eval for. If not provided, evals over entire dataset.";
    eval_batch_size: i64 = Int, "256", "Batch size for eval.";
    train_summary_steps: i64 = Int, "100", "Steps before saving training summaries. If 0, will not save.";
    checkpoint_epochs: i64 = Int, "1", "Number of epochs between checkpoints/summaries.";
    checkpoint_steps: i64 = Int, "0", "Number of steps between checkpoints/summaries. If provided, overrides checkpoint_epochs.";
    eval_split: String = Str, "validation", "Split for evaluation.";
    dataset: String = Str, "imagenet2012", "Name of a dataset (cifar10, fashion_mnist, imagenet2012, imagenet2012_subset/1pct|10pct) or the path of an image folder.";
    cache_dataset: bool = Bool, "false", "Whether to cache the entire dataset in memory.";
    mode: String = Kind::Enum(&["train", "eval", "train_then_eval"]), "train", "Whether to perform training or evaluation.";
    train_mode: String = Kind::Enum(&["pretrain", "finetune", "distill"]), "pretrain", "The train mode controls different objectives and trainable components (distill: SimCLRv2's third stage, the student learns the class distribution of a frozen --teacher_checkpoint).";
    lineareval_while_pretraining: bool = Bool, "true", "Whether to finetune supervised head while pretraining.";
    checkpoint: Option<String> = Str, "", "Loading from the given checkpoint for fine-tuning if a finetuning checkpoint does not already exist in model_dir.";
    variable_schema: String = Str, "?!global_step", "This defines whether some variable from the checkpoint should be loaded.";
    zero_init_logits_layer: bool = Bool, "false", "If True, zero initialize layers after avg_pool for supervised learning.";
    fine_tune_after_block: i64 = Int, "-1", "The layers after which block that we will fine-tune. -1 means fine-tuning everything.";
    master: Option<String> = Str, "", "Address/name of the TensorFlow master to use (not needed).";
    model_dir: Option<String> = Str, "", "Model directory for training.";
    data_dir: Option<String> = Str, "", "Directory where dataset is stored.";
    use_tpu: bool = Bool, "false", "Whether to run on TPU (selects the libtpu PJRT plugin; default false, unlike run.py, so that a plain command never probes for a TPU).";
    tpu_name: Option<String> = Str, "", "The Cloud TPU to use (not needed on a TPU VM).";
    tpu_zone: Option<String> = Str, "", "GCE zone of the Cloud TPU (not needed on a TPU VM).";
    gcp_project: Option<String> = Str, "", "Project name for the Cloud TPU (not needed on a TPU VM).";
    optimizer: String = Kind::Enum(&["momentum", "adam", "lars"]), "lars", "Optimizer to use.";
    momentum: f64 = Float, "0.9", "Momentum parameter.";
    eval_name: Option<String> = Str, "", "Name for eval.";
    keep_checkpoint_max: i64 = Int, "5", "Maximum number of checkpoints to keep.";
    keep_hub_module_max: i64 = Int, "1", "Maximum number of exported networks to keep.";
    temperature: f64 = Float, "0.1", "Temperature parameter for contrastive loss.";
    hidden_norm: bool = Bool, "true", "L2-normalize the projections before the contrastive loss.";
    proj_head_mode: String = Kind::Enum(&["none", "linear", "nonlinear"]), "nonlinear", "How the head projection is done.";
    proj_out_dim: i64 = Int, "128", "Number of head projection dimension.";
    num_proj_layers: i64 = Int, "3", "Number of non-linear head layers.";
    ft_proj_selector: i64 = Int, "0", "Which layer of the projection head to use during fine-tuning. 0 means no projection head, and -1 means the final layer.";
    global_bn: bool = Bool, "true", "Whether to aggregate BN statistics across distributed cores.";
    width_multiplier: i64 = Int, "1", "Multiplier to change width of network.";
    resnet_depth: i64 = Int, "50", "Depth of ResNet.";
    sk_ratio: f64 = Float, "0", "If it is bigger than 0, it will enable SK. Recommendation: 0.0625.";
    se_ratio: f64 = Float, "0", "If it is bigger than 0, it will enable SE.";
    image_size: i64 = Int, "224", "Input image size.";
    color_jitter_strength: f64 = Float, "1.0", "The strength of color jittering.";
    use_blur: bool = Bool, "true", "Whether or not to use Gaussian blur for augmentation during pretraining.";
    num_replicas: i64 = Int, "0", "simclr: number of replicas (devices) to run on; 0 means every device of the plugin.";
    pjrt_plugin: Option<String> = Str, "", "simclr: path of the PJRT plugin shared library (else PJRT_PLUGIN_PATH, the project cache, then pip's site-packages).";
    seed: i64 = Int, "0", "simclr: seed of initial weights and data order/augmentations; the same seed and flags give the same run.";
    resize: String = Kind::Enum(&["tf1", "tf2"]), "tf1", "simclr: bicubic resize variant of the crop (TF1 or TF2 code).";
    skip_bad_images: bool = Bool, "false", "simclr: count and skip undecodable images in image folders instead of failing.";
    knn_monitor: bool = Bool, "true", "simclr: report a k-NN accuracy (cosine, k=200) on the eval split at each checkpoint while pretraining.";
    knn_bank_size: i64 = Int, "10000", "simclr: number of training examples whose features form the k-NN memory bank (0: all).";
    fixed_batch: bool = Bool, "false", "simclr: train on the first batch at every step (the same examples and augmentations): a check that the step fits one batch.";
    cpu_device_count: i64 = Int, "0", "simclr: devices of the CPU plugin (0: the plugin's default of 4).";
    augment_on_device: bool = Bool, "false", "simclr: pretraining/fine-tuning: the host only decodes, crops and resizes each view and draws the random flip, colour jitter, grayscale and blur decisions; the step program applies them on the devices (the same views as the host path to 1e-5 with --augment_transfer=f32).";
    augment_transfer: String = Kind::Enum(&["f32", "uint8"]), "f32", "simclr: with --augment_on_device, how the resized views travel to the devices: f32 (the host path's views to 1e-5) or uint8 (4x less traffic; the resized view is rounded to 1/255 before the colour operations).";
    overlap_steps: bool = Bool, "true", "simclr: upload the next batch while a step runs and read each step's metrics one step later (a NaN is still reported at its step); false runs one step at a time.";
    coordinator_address: Option<String> = Str, "", "simclr: host:port of process 0 in a job of several processes (also SIMCLR_COORDINATOR_ADDRESS or JAX_COORDINATOR_ADDRESS; on a TPU VM with --use_tpu, the first of TPU_WORKER_HOSTNAMES, port 8476).";
    num_processes: i64 = Int, "0", "simclr: processes in the job, one per host (0: SIMCLR_NUM_PROCESSES, JAX_NUM_PROCESSES, the TPU VM's worker count, else 1).";
    process_id: i64 = Int, "-1", "simclr: this process, 0 to num_processes-1 (-1: SIMCLR_PROCESS_ID, JAX_PROCESS_ID, the TPU VM's TPU_WORKER_ID).";
    initialization_timeout: f64 = Float, "300", "simclr: seconds to wait for every process of the job to join, and at each checkpoint barrier.";
    heartbeat_timeout_seconds: f64 = Float, "100", "simclr: seconds of silence after which a process of the job counts as dead and the others stop.";
    teacher_checkpoint: Option<String> = Str, "", "simclr: --train_mode=distill: the fine-tuned teacher (a simclr model_dir or .safetensors, or a TensorFlow checkpoint); its architecture is inferred from the tensors as `simclr ckpt info` does. The student is built by the usual model flags.";
    teacher_resnet_depth: i64 = Int, "0", "simclr: the teacher's --resnet_depth (0: inferred from --teacher_checkpoint).";
    teacher_width_multiplier: i64 = Int, "0", "simclr: the teacher's --width_multiplier (0: inferred).";
    teacher_sk_ratio: f64 = Float, "-1", "simclr: the teacher's --sk_ratio (negative: inferred).";
    teacher_se_ratio: f64 = Float, "-1", "simclr: the teacher's --se_ratio (negative: inferred).";
    teacher_proj_head_mode: String = Kind::Enum(&["auto", "none", "linear", "nonlinear"]), "auto", "simclr: the teacher's --proj_head_mode (auto: inferred).";
    teacher_num_proj_layers: i64 = Int, "0", "simclr: the teacher's --num_proj_layers (0: inferred).";
    teacher_proj_out_dim: i64 = Int, "0", "simclr: the teacher's --proj_out_dim (0: inferred).";
    teacher_ft_proj_selector: Option<String> = Str, "", "simclr: the teacher's --ft_proj_selector (unset: as recorded in a simclr checkpoint, else -1 when the supervised head reads the head output, else 0).";
    distill_temperature: f64 = Float, "1.0", "simclr: temperature τ of the distillation loss: cross-entropy between softmax(teacher logits/τ) and softmax(student logits/τ).";
    distill_label_weight: f64 = Float, "0.0", "simclr: weight w of the supervised loss on the labelled examples in distillation: w·supervised + (1−w)·distillation (the paper's α is 1−w; 0: labels unused).";
    precision: String = Kind::Enum(&["float32", "bfloat16"]), "float32", "simclr: arithmetic of the network: float32, or bfloat16 (bf16 convolutions, matmuls and activations; f32 variables, optimizer, batch-norm statistics, losses and metrics; checkpoints stay f32 and load into either).";
    labeled_percent: f64 = Float, "100", "simclr: keep the labels of this percentage of the training split: a fixed per-class subset, the first ceil(p·n_c/100) examples of each class c in dataset order. finetune trains on that subset; distill trains on every example and uses the subset's labels for --distill_label_weight and its accuracy metrics.";
}

fn spec(name: &str) -> Option<&'static FlagSpec> {
    SPECS.iter().find(|s| s.name == name)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

fn unknown(name: &str) -> String {
    let best = SPECS
        .iter()
        .map(|s| (edit_distance(name, s.name), s.name))
        .min();
    match best {
        Some((d, s)) if d <= 3 => format!("unknown flag --{name}; did you mean --{s}?"),
        _ => format!("unknown flag --{name}; `simclr run --help` lists the flags"),
    }
}

impl RunFlags {
    /// Parses absl-style arguments. Every problem is reported, one line
    /// each; nothing is run when any flag is bad.
    pub fn parse(args: &[String]) -> Result<RunFlags, FlagError> {
        let mut flags = RunFlags::default();
        let mut errors = Vec::new();
        let mut i = 0;
        while i < args.len() {
            let arg = &args[i];
            i += 1;
            let Some(body) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
                errors.push(format!(
                    "unexpected argument '{arg}': flags look like --name=value"
                ));
                continue;
            };
            let (name, inline) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (body, None),
            };
            let (name, value) = match (spec(name), inline) {
                (Some(s), Some(v)) => (s.name, v),
                (Some(s), None) if s.kind == Kind::Bool => (s.name, "true".to_string()),
                (Some(s), None) => match args.get(i) {
                    Some(v) => {
                        i += 1;
                        (s.name, v.clone())
                    }
                    None => {
                        errors.push(format!("flag --{} needs a value", s.name));
                        continue;
                    }
                },
                (None, None) => match name.strip_prefix("no").and_then(spec) {
                    Some(s) if s.kind == Kind::Bool => (s.name, "false".to_string()),
                    _ => {
                        errors.push(unknown(name));
                        continue;
                    }
                },
                (None, Some(_)) => {
                    errors.push(unknown(name));
                    continue;
                }
            };
            if let Err(e) = flags.set(name, &value) {
                errors.push(e);
            }
        }
        if errors.is_empty() {
            Ok(flags)
        } else {
            Err(FlagError(errors))
        }
    }

    /// Checks combinations the original refuses, given the number of
    /// replicas the run will use. One message per problem.
    pub fn validate(&self, replicas: usize) -> Result<(), FlagError> {
        self.validate_with(replicas, true)
    }

    /// As [`RunFlags::validate`] for a program that is only traced
    /// (`simclr export_hlo`): a distillation step needs no teacher
    /// checkpoint there (the student's network stands in).
    pub fn validate_traced(&self, replicas: usize) -> Result<(), FlagError> {
        self.validate_with(replicas, false)
    }

    fn validate_with(&self, replicas: usize, needs_teacher: bool) -> Result<(), FlagError> {
        let mut e = Vec::new();
        if ![18, 34, 50, 101, 152, 200].contains(&self.resnet_depth) {
            e.push(format!(
                "--resnet_depth={} is not supported; use 18, 34, 50, 101, 152 or 200",
                self.resnet_depth
            ));
        }
        if self.width_multiplier < 1 {
            e.push(format!(
                "--width_multiplier={} must be at least 1",
                self.width_multiplier
            ));
        }
        if self.train_mode == "pretrain" && self.fine_tune_after_block > -1 {
            e.push(format!(
                "--fine_tune_after_block={} only applies to --train_mode=finetune; use -1 when pretraining",
                self.fine_tune_after_block
            ));
        }
        if !(-1..=4).contains(&self.fine_tune_after_block) {
            e.push(format!(
                "--fine_tune_after_block={} must be between -1 and 4",
                self.fine_tune_after_block
            ));
        }
        for (name, v) in [
            ("train_batch_size", self.train_batch_size),
            ("eval_batch_size", self.eval_batch_size),
        ] {
            if v < 1 {
                e.push(format!("--{name}={v} must be at least 1"));
            } else if replicas > 0 && v % replicas as i64 != 0 {
                e.push(format!(
                    "--{name}={v} does not divide by the {replicas} replicas; use a multiple of {replicas} or set --num_replicas"
                ));
            }
        }
        if self.train_mode == "pretrain" && self.train_batch_size > 0 && replicas > 0 {
            // Fine: every replica holds n ≥ 1 anchors.
        }
        if self.image_size < 8 {
            e.push(format!(
                "--image_size={} is too small (at least 8)",
                self.image_size
            ));
        }
        if self.temperature <= 0.0 {
            e.push(format!(
                "--temperature={} must be positive",
                self.temperature
            ));
        }
        if !(0.0..1.0).contains(&self.sk_ratio) || !(0.0..1.0).contains(&self.se_ratio) {
            e.push("--sk_ratio and --se_ratio must lie in [0, 1)".into());
        }
        if self.proj_out_dim < 1 || (self.proj_head_mode == "nonlinear" && self.num_proj_layers < 1)
        {
            e.push("--proj_out_dim and --num_proj_layers must be at least 1".into());
        }
        if self.keep_checkpoint_max < 1 {
            e.push("--keep_checkpoint_max must be at least 1".into());
        }
        if self.checkpoint_steps < 0
            || self.checkpoint_epochs < 0
            || self.train_steps < 0
            || self.train_epochs < 0
        {
            e.push("step and epoch counts cannot be negative".into());
        }
        if needs_teacher && self.train_mode == "distill" && self.teacher_checkpoint.is_none() {
            e.push("--train_mode=distill needs --teacher_checkpoint: a fine-tuned simclr model_dir or TensorFlow checkpoint (simclr run --train_mode=finetune writes one)".into());
        }
        if self.train_mode != "distill" {
            let set: Vec<&str> = [
                ("teacher_checkpoint", self.teacher_checkpoint.is_some()),
                ("teacher_resnet_depth", self.teacher_resnet_depth != 0),
                (
                    "teacher_width_multiplier",
                    self.teacher_width_multiplier != 0,
                ),
                (
                    "teacher_proj_head_mode",
                    self.teacher_proj_head_mode != "auto",
                ),
                (
                    "teacher_ft_proj_selector",
                    self.teacher_ft_proj_selector.is_some(),
                ),
            ]
            .iter()
            .filter(|(_, s)| *s)
            .map(|(n, _)| *n)
            .collect();
            if !set.is_empty() {
                e.push(format!(
                    "--{} only applies to --train_mode=distill",
                    set.join(", --")
                ));
            }
        }
        if self.distill_temperature <= 0.0 {
            e.push(format!(
                "--distill_temperature={} must be positive",
                self.distill_temperature
            ));
        }
        if !(0.0..=1.0).contains(&self.distill_label_weight) {
            e.push(format!(
                "--distill_label_weight={} must lie in [0, 1]",
                self.distill_label_weight
            ));
        }
        if !(self.labeled_percent > 0.0 && self.labeled_percent <= 100.0) {
            e.push(format!(
                "--labeled_percent={} must lie in (0, 100]",
                self.labeled_percent
            ));
        }
        if self.labeled_percent < 100.0 && self.train_mode == "pretrain" {
            e.push("--labeled_percent only applies to --train_mode=finetune or distill (pretraining uses no labels)".into());
        }
        if let Some(sel) = &self.teacher_ft_proj_selector {
            if sel.parse::<i32>().is_err() {
                e.push(format!(
                    "--teacher_ft_proj_selector={sel}: expected an integer"
                ));
            }
        }
        if self.variable_schema != crate::ckpt::import::TF1_DEFAULT_SCHEMA {
            if let Err(err) = fancy_regex_check(&self.variable_schema) {
                e.push(format!("--variable_schema={}: {err}", self.variable_schema));
            }
        }
        if e.is_empty() {
            Ok(())
        } else {
            Err(FlagError(e))
        }
    }

    /// Flags accepted for compatibility that do nothing here, with why.
    pub fn notices(&self) -> Vec<String> {
        let mut v = Vec::new();
        for (name, val) in [
            ("tpu_name", &self.tpu_name),
            ("tpu_zone", &self.tpu_zone),
            ("gcp_project", &self.gcp_project),
            ("master", &self.master),
        ] {
            if val.is_some() {
                v.push(format!(
                    "--{name} is not needed: simclr talks to the devices of this host through PJRT (on a TPU VM, pass --use_tpu)"
                ));
            }
        }
        v
    }

    /// `--help` text: every flag with its default.
    pub fn help() -> String {
        let mut s = String::from("simclr run: train or evaluate SimCLR (flags as in run.py)\n\n");
        for f in SPECS {
            let kind = match f.kind {
                Kind::Bool => "bool".to_string(),
                Kind::Int => "int".to_string(),
                Kind::Float => "float".to_string(),
                Kind::Str => "string".to_string(),
                Kind::Enum(v) => v.join("|"),
            };
            let default = if f.default.is_empty() {
                "None"
            } else {
                f.default
            };
            s.push_str(&format!(
                "  --{} ({kind}, default {default})\n      {}\n",
                f.name, f.help
            ));
        }
        s
    }
}

fn fancy_regex_check(pattern: &str) -> Result<(), String> {
    crate::ckpt::import::Schema::new(pattern)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn defaults_parse_and_match_run_py() {
        for s in SPECS {
            if !s.default.is_empty() {
                let mut f = RunFlags::default();
                assert!(f.set(s.name, s.default).is_ok(), "default of --{}", s.name);
            }
        }
        let f = RunFlags::default();
        assert_eq!(f.learning_rate, 0.3);
        assert_eq!(f.weight_decay, 1e-4);
        assert_eq!(f.temperature, 0.1);
        assert_eq!(f.resnet_depth, 50);
        assert_eq!(f.variable_schema, "?!global_step");
        assert!(f.use_blur && f.hidden_norm && f.global_bn && f.lineareval_while_pretraining);
        assert_eq!(f.checkpoint, None);
    }

    #[test]
    fn absl_forms_are_accepted() {
        let f = RunFlags::parse(&args(&[
            "--train_batch_size=256",
            "--resnet_depth",
            "18",
            "--nouse_blur",
            "--cache_dataset",
            "-temperature=0.5",
            "--global_bn=false",
        ]))
        .expect("valid");
        assert_eq!(f.train_batch_size, 256);
        assert_eq!(f.resnet_depth, 18);
        assert!(!f.use_blur && f.cache_dataset && !f.global_bn);
        assert_eq!(f.temperature, 0.5);
    }

    #[test]
    fn every_problem_is_reported() {
        let e = RunFlags::parse(&args(&[
            "--train_bach_size=3",
            "--optimizer=sgd",
            "--resnet_depth=x",
            "--model_dir",
        ]))
        .expect_err("bad flags");
        assert_eq!(e.0.len(), 4, "{e}");
        assert!(e.0[0].contains("did you mean --train_batch_size"), "{e}");
        assert!(
            e.0[1].contains("expected one of momentum, adam, lars"),
            "{e}"
        );
        assert!(e.0[3].contains("needs a value"), "{e}");
    }

    #[test]
    fn impossible_combinations_are_refused() {
        let f = RunFlags {
            fine_tune_after_block: 2,
            train_batch_size: 30,
            resnet_depth: 42,
            ..Default::default()
        };
        let e = f.validate(4).expect_err("invalid");
        assert!(
            e.0.iter()
                .any(|m| m.contains("only applies to --train_mode=finetune")),
            "{e}"
        );
        assert!(
            e.0.iter()
                .any(|m| m.contains("does not divide by the 4 replicas")),
            "{e}"
        );
        assert!(e.0.iter().any(|m| m.contains("--resnet_depth=42")), "{e}");
    }

    #[test]
    fn distillation_flags_are_checked() {
        let f = RunFlags::parse(&args(&[
            "--train_mode=distill",
            "--distill_temperature=0",
            "--distill_label_weight=1.5",
            "--labeled_percent=0",
            "--teacher_ft_proj_selector=x",
        ]))
        .expect("parses");
        let e = f.validate(1).expect_err("invalid");
        for want in [
            "needs --teacher_checkpoint",
            "--distill_temperature=0 must be positive",
            "--distill_label_weight=1.5 must lie in [0, 1]",
            "--labeled_percent=0 must lie in (0, 100]",
            "--teacher_ft_proj_selector=x: expected an integer",
        ] {
            assert!(e.0.iter().any(|m| m.contains(want)), "{want}: {e}");
        }
        let f = RunFlags::parse(&args(&[
            "--teacher_checkpoint=/t",
            "--teacher_resnet_depth=50",
        ]))
        .expect("parses");
        let e = f.validate(1).expect_err("teacher without distill");
        assert!(
            e.0.iter().any(|m| m.contains(
                "--teacher_checkpoint, --teacher_resnet_depth only applies to --train_mode=distill"
            )),
            "{e}"
        );
        let f = RunFlags::parse(&args(&[
            "--train_mode=distill",
            "--teacher_checkpoint=/t",
            "--distill_label_weight=0.5",
            "--labeled_percent=10",
        ]))
        .expect("parses");
        assert_eq!(f.validate(1), Ok(()));
        assert_eq!(RunFlags::default().distill_temperature, 1.0);
        assert_eq!(RunFlags::default().distill_label_weight, 0.0);
    }
}
