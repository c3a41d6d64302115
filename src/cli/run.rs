//! `simclr run`: the original `run.py` with the same flags (see
//! [`super::flags`]): pretraining, fine-tuning and evaluation, with
//! checkpoints that resume exactly, restore from TensorFlow or simclr
//! checkpoints, TensorBoard summaries, `metrics.jsonl`, `result.json` and an
//! export of the trained network.

use super::flags::RunFlags;
use crate::ckpt;
use crate::data::pipeline::{Pipeline, PipelineConfig};
use crate::data::{self, folder::BadImages, Dataset};
use crate::nn::{self, ModelConfig, ProjHeadMode};
use crate::pjrt::{self, Client, ClientOptions, ElementType, HostArray};
use crate::simclr::schedule::{epoch_steps, train_steps};
use crate::simclr::{
    eval_program, train_program, LrScaling, OptimizerConfig, OptimizerKind, Schedule, StepConfig,
    TrainMode,
};
use crate::summary::{self, EventWriter, MetricsLog, Throughput};
use crate::train::{compile, default_compile_options, probe, Compiled, DeviceState, HostState};
use anyhow::{anyhow, bail, Context, Result};
use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Arguments of `simclr run`: absl-style flags, parsed by [`RunFlags::parse`].
#[derive(Debug, clap::Args)]
#[command(disable_help_flag = true)]
pub struct RunArgs {
    /// Flags as in run.py, e.g. `--train_mode=pretrain --train_batch_size=512`.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

/// Everything a run needs, resolved once from the flags.
pub struct Run {
    /// The flags.
    pub flags: RunFlags,
    /// The PJRT client.
    pub client: Client,
    /// Replicas in use.
    pub replicas: usize,
    /// The step configuration.
    pub step: StepConfig,
    /// `model_dir`.
    pub model_dir: PathBuf,
}

/// Runs `simclr run` with `args`, writing progress to stderr.
pub fn run(args: &RunArgs) -> Result<()> {
    if args
        .args
        .iter()
        .any(|a| a == "--help" || a == "-h" || a == "--helpfull")
    {
        print!("{}", RunFlags::help());
        return Ok(());
    }
    let flags = RunFlags::parse(&args.args).map_err(|e| anyhow!("{e}"))?;
    for n in flags.notices() {
        eprintln!("note: {n}");
    }
    let run = Run::new(flags)?;
    match run.flags.mode.as_str() {
        "train" => {
            run.train()?;
        }
        "train_then_eval" => {
            run.train()?;
            run.evaluate_latest()?;
        }
        _ => run.watch_and_evaluate()?,
    }
    Ok(())
}

/// The step configuration the flags describe, for `replicas` replicas and a
/// training set of `num_examples` examples in `num_classes` classes
/// (step counts and the schedule follow SPEC §7.4–§7.5).
pub fn step_config(
    flags: &RunFlags,
    replicas: usize,
    num_examples: i64,
    num_classes: u32,
) -> Result<StepConfig> {
    let mut model = model_config(flags)?;
    model.num_classes = num_classes;
    model.validate()?;
    let b = flags.train_batch_size;
    let total = train_steps(flags.train_steps, num_examples, flags.train_epochs, b);
    let scaling = if flags.learning_rate_scaling == "sqrt" {
        LrScaling::Sqrt
    } else {
        LrScaling::Linear
    };
    let step = StepConfig {
        model,
        train_mode: if flags.train_mode == "finetune" {
            TrainMode::Finetune
        } else {
            TrainMode::Pretrain
        },
        per_replica_batch: b / replicas.max(1) as i64,
        num_replicas: replicas,
        optimizer: OptimizerConfig {
            kind: match flags.optimizer.as_str() {
                "momentum" => OptimizerKind::Momentum,
                "adam" => OptimizerKind::Adam,
                _ => OptimizerKind::Lars,
            },
            momentum: flags.momentum,
            weight_decay: flags.weight_decay,
        },
        schedule: Schedule::new(
            flags.learning_rate,
            scaling,
            b,
            flags.warmup_epochs,
            num_examples,
            total,
        ),
        temperature: flags.temperature,
        hidden_norm: flags.hidden_norm,
        global_bn: flags.global_bn,
        batch_norm_decay: flags.batch_norm_decay,
        lineareval_while_pretraining: flags.lineareval_while_pretraining,
        fine_tune_after_block: i32::try_from(flags.fine_tune_after_block)?,
        ft_proj_selector: i32::try_from(flags.ft_proj_selector)?,
    };
    step.validate()?;
    Ok(step)
}

/// The PJRT client the flags select (`--pjrt_plugin`, `--use_tpu`,
/// `--cpu_device_count`, then discovery) and the replicas to use
/// (`--num_replicas`, or every device).
///
/// # Errors
/// A missing plugin, or `--num_replicas` outside `1..=devices`.
pub fn client_and_replicas(flags: &RunFlags) -> Result<(Client, usize)> {
    let mut opts = ClientOptions::from_env();
    if flags.cpu_device_count > 0 {
        opts.cpu_device_count = Some(usize::try_from(flags.cpu_device_count)?);
    }
    let plugin = flags.pjrt_plugin.as_deref().map(Path::new);
    let client = Client::discover(plugin, flags.use_tpu, &opts)?;
    let devices = client.devices().len();
    let replicas = if flags.num_replicas > 0 {
        usize::try_from(flags.num_replicas)?
    } else {
        devices
    };
    if replicas > devices || replicas == 0 {
        bail!(
            "--num_replicas={replicas} but the {} plugin has {devices} device(s); pass --num_replicas between 1 and {devices}",
            client.platform_name()
        );
    }
    Ok((client, replicas))
}

fn model_config(f: &RunFlags) -> Result<ModelConfig> {
    let cfg = ModelConfig {
        resnet_depth: u32::try_from(f.resnet_depth)?,
        width_multiplier: u32::try_from(f.width_multiplier)?,
        sk_ratio: f.sk_ratio,
        se_ratio: f.se_ratio,
        image_size: u32::try_from(f.image_size)?,
        proj_head_mode: f.proj_head_mode.parse::<ProjHeadMode>()?,
        num_proj_layers: u32::try_from(f.num_proj_layers)?,
        proj_out_dim: u32::try_from(f.proj_out_dim)?,
        num_classes: 0,
    };
    Ok(cfg)
}

fn to_ckpt(a: &HostArray) -> Result<ckpt::Tensor> {
    let dtype = match a.element_type {
        ElementType::F32 => ckpt::DType::F32,
        ElementType::S64 => ckpt::DType::I64,
        ElementType::S32 => ckpt::DType::I32,
        other => bail!("cannot checkpoint an array of {other}"),
    };
    let dims = a.dims.iter().map(|&d| d as u64).collect();
    Ok(ckpt::Tensor::new(dtype, dims, a.bytes.clone())?)
}

/// A checkpoint tensor as a host array (f32, i64 or i32).
pub fn from_ckpt(name: &str, t: &ckpt::Tensor) -> Result<HostArray> {
    let ty = match t.dtype {
        ckpt::DType::F32 => ElementType::F32,
        ckpt::DType::I64 => ElementType::S64,
        ckpt::DType::I32 => ElementType::S32,
        other => bail!(
            "checkpoint tensor {name} has dtype {}, expected f32 or i64",
            other.name()
        ),
    };
    let dims: Vec<i64> = t.dims.iter().map(|&d| d as i64).collect();
    Ok(HostArray::from_bytes(ty, &dims, t.bytes.clone())?)
}

impl Run {
    /// Resolves the plugin, the replicas, the dataset size and the step
    /// configuration from the flags, refusing bad combinations before
    /// anything is compiled.
    pub fn new(flags: RunFlags) -> Result<Run> {
        let (client, replicas) = client_and_replicas(&flags)?;
        flags.validate(replicas).map_err(|e| anyhow!("{e}"))?;
        let model_dir = PathBuf::from(flags.model_dir.as_deref().ok_or_else(|| {
            anyhow!("--model_dir is required: checkpoints, summaries and results go there")
        })?);
        let train_ds = open(&flags, &flags.train_split)?;
        let step = step_config(
            &flags,
            replicas,
            train_ds.len() as i64,
            u32::try_from(train_ds.num_classes())?,
        )?;
        Ok(Run {
            flags,
            client,
            replicas,
            step,
            model_dir,
        })
    }

    fn total_steps(&self) -> i64 {
        self.step.schedule.total_steps
    }

    fn checkpoint_period(&self, n: i64) -> i64 {
        if self.flags.checkpoint_steps > 0 {
            self.flags.checkpoint_steps
        } else {
            (self.flags.checkpoint_epochs * epoch_steps(n, self.flags.train_batch_size)).max(1)
        }
    }

    fn compile_options(&self) -> pjrt::CompileOptions {
        default_compile_options(&self.client, self.replicas)
    }

    /// Trains until the global step reaches the train steps, resuming from
    /// `model_dir` when it holds a checkpoint. Returns the final step.
    pub fn train(&self) -> Result<i64> {
        let f = &self.flags;
        std::fs::create_dir_all(&self.model_dir)
            .with_context(|| format!("cannot create --model_dir={}", self.model_dir.display()))?;
        summary::write_flags(&self.model_dir, &f.to_json())?;
        let ds: Arc<dyn Dataset> = Arc::from(open(f, &f.train_split)?);
        let n = ds.len() as i64;
        eprintln!(
            "simclr: {} on {} ({} examples), {} replica(s) of {} {}, {} steps of batch {}",
            f.train_mode,
            ds.describe(),
            n,
            self.replicas,
            self.client.platform_name(),
            self.client
                .devices()
                .first()
                .map(|d| d.kind.as_str())
                .unwrap_or("?"),
            self.total_steps(),
            f.train_batch_size
        );
        let t = Instant::now();
        let program = train_program(&self.step)?;
        eprintln!(
            "simclr: traced the {} step ({} instructions) in {:.1}s; compiling…",
            f.train_mode,
            program.module.instruction_count(),
            t.elapsed().as_secs_f64()
        );
        let compiled = compile(&self.client, program, &self.compile_options())?;
        eprintln!("simclr: compiled in {:.1}s", compiled.compile_seconds);

        let (mut state, start_step) = self.initial_state(&compiled)?;
        let total = self.total_steps();
        if start_step >= total {
            eprintln!(
                "simclr: {} is already at step {start_step} ≥ {total}; nothing to train",
                self.model_dir.display()
            );
            return Ok(start_step);
        }
        let mut pcfg = match self.step.train_mode {
            TrainMode::Pretrain => {
                let mut c = PipelineConfig::pretrain(
                    f.train_batch_size as usize,
                    self.replicas,
                    f.image_size as usize,
                    f.color_jitter_strength as f32,
                    f.seed as u64,
                );
                c.blur = f.use_blur;
                c
            }
            TrainMode::Finetune => PipelineConfig::finetune(
                f.train_batch_size as usize,
                self.replicas,
                f.image_size as usize,
                f.seed as u64,
            ),
        };
        pcfg.augment.resize = data::augment::ResizeVersion::parse(&f.resize)?;
        let mut pipeline = Pipeline::starting_at(ds.clone(), pcfg, start_step as u64)?;

        let mut events = EventWriter::create(self.model_dir.join("train"))?;
        let mut log = MetricsLog::open(&self.model_dir)?;
        let mut meter = Throughput::new(1, 20);
        let period = self.checkpoint_period(n);
        let summary_every = f.train_summary_steps;
        let tty = std::io::stderr().is_terminal();
        let mut knn = None;
        let mut last_saved = None;
        let started = Instant::now();
        meter.start();
        let mut step = start_step;
        let mut fixed: Option<Vec<Vec<HostArray>>> = None;
        while step < total {
            let inputs = match &fixed {
                Some(inputs) => inputs.clone(),
                None => {
                    let batch = pipeline
                        .next_batch()?
                        .ok_or_else(|| anyhow!("the training data ended at step {step}"))?;
                    let inputs = step_inputs(&batch)?;
                    if f.fixed_batch {
                        fixed = Some(inputs.clone());
                    }
                    inputs
                }
            };
            let metrics = compiled.train_step(&self.client, &mut state, &inputs)?;
            step += 1;
            meter.step(f.train_batch_size as u64);
            let m: BTreeMap<&str, f64> = metrics.iter().copied().collect();
            if m.get("nonfinite").copied().unwrap_or(0.0) > 0.0 {
                let last = last_saved
                    .as_ref()
                    .map(|p: &PathBuf| p.display().to_string())
                    .or_else(|| {
                        ckpt::native::latest(&self.model_dir)
                            .ok()
                            .flatten()
                            .map(|l| l.path.display().to_string())
                    })
                    .unwrap_or_else(|| "none".into());
                bail!(
                    "the loss became {} at step {step} (total_loss = {}); stopping. The last good checkpoint is {last}; \
                     try a lower --learning_rate or check the data",
                    if m["total_loss"].is_nan() { "NaN" } else { "infinite" },
                    m["total_loss"]
                );
            }
            let ips = meter
                .report()
                .map(|r| r.median_images_per_sec)
                .unwrap_or(0.0);
            let is_ckpt = step % period == 0 || step == total;
            if (summary_every > 0 && step % summary_every == 0) || is_ckpt || step == start_step + 1
            {
                let mut scalars: Vec<(String, f32)> = metrics
                    .iter()
                    .filter(|(k, _)| *k != "nonfinite")
                    .map(|(k, v)| (scalar_name(k), *v as f32))
                    .collect();
                scalars.push(("train/images_per_sec".into(), ips as f32));
                let refs: Vec<(&str, f32)> =
                    scalars.iter().map(|(k, v)| (k.as_str(), *v)).collect();
                events.scalars(&refs, step)?;
                let mut values: Vec<(&str, f64)> = metrics
                    .iter()
                    .filter(|(k, _)| *k != "nonfinite")
                    .copied()
                    .collect();
                values.push(("images_per_sec", ips));
                log.log(step, &values)?;
            }
            let eta = if ips > 0.0 {
                Duration::from_secs_f64((total - step) as f64 * f.train_batch_size as f64 / ips)
            } else {
                Duration::ZERO
            };
            let line = format!(
                "step {step}/{total}  loss {:.4}  contrast_acc {:.3}  sup_acc {:.3}  lr {:.4}  {:.1} img/s  ETA {}",
                m["total_loss"],
                m["contrast_acc"],
                m["supervised_acc"],
                m["learning_rate"],
                ips,
                fmt_duration(eta)
            );
            if tty {
                eprint!("\r{line}\x1b[K");
                let _ = std::io::stderr().flush();
            } else if (summary_every > 0 && step % summary_every == 0)
                || is_ckpt
                || step == start_step + 1
            {
                eprintln!("{line}");
            }
            if is_ckpt {
                if tty {
                    eprintln!();
                }
                meter.pause();
                let saved = self.save(&compiled, &state, step)?;
                eprintln!("simclr: saved {}", saved.display());
                last_saved = Some(saved);
                if self.step.train_mode == TrainMode::Pretrain && f.knn_monitor {
                    let acc = self.knn_monitor(&compiled, &state, &mut knn)?;
                    eprintln!(
                        "simclr: k-NN (k=200, cosine) top-1 on {}: {:.4}",
                        f.eval_split, acc
                    );
                    events.scalars(&[("eval/knn_top_1_accuracy", acc as f32)], step)?;
                    log.log(step, &[("knn_top_1_accuracy", acc)])?;
                }
                meter.resume();
            }
        }
        let stats = pipeline.stats();
        eprintln!(
            "simclr: trained to step {step} in {} (input pipeline {:.0} img/s, waited {:.1}s for data)",
            fmt_duration(started.elapsed()),
            stats.images_per_s,
            stats.consumer_wait_s
        );
        Ok(step)
    }

    /// The state a training run starts from: resumed from `model_dir`,
    /// restored from `--checkpoint`, or freshly initialised.
    fn initial_state(&self, compiled: &Compiled) -> Result<(DeviceState, i64)> {
        let f = &self.flags;
        let start = ckpt::import::start(&self.model_dir, f.checkpoint.as_deref().map(Path::new))?;
        let mut overrides = HostState::new();
        let mut step = 0;
        match start {
            ckpt::import::Start::Resume(latest) => {
                warn_skipped(&latest);
                let c = ckpt::native::load(&latest.path)?;
                for (name, t) in &c.tensors {
                    overrides.insert(name.clone(), from_ckpt(name, t)?);
                }
                step = latest.step as i64;
                eprintln!(
                    "simclr: resuming from {} (step {step})",
                    latest.path.display()
                );
            }
            ckpt::import::Start::Restore(path) => {
                let src = ckpt::source::Source::open(&path)?;
                let vars = nn::variables(&self.step.model)?;
                let opts = ckpt::import::RestoreOptions {
                    variable_schema: f.variable_schema.clone(),
                    zero_init_logits_layer: f.zero_init_logits_layer,
                    ..Default::default()
                };
                let restored = ckpt::import::restore(&vars, &src, &opts)?;
                eprintln!(
                    "simclr: restored {} variables from {} ({} not selected, {} checkpoint tensors ignored{})",
                    restored.restored.len(),
                    path.display(),
                    restored.not_selected.len(),
                    restored.ignored.len(),
                    if restored.zeroed.is_empty() { String::new() } else { format!(", {} zeroed", restored.zeroed.len()) }
                );
                for (name, t) in &restored.values {
                    overrides.insert(name.clone(), from_ckpt(name, t)?);
                }
            }
            ckpt::import::Start::Fresh => {}
        }
        let state = compiled.init_state(&self.client, f.seed as u64, &overrides)?;
        Ok((state, step))
    }

    fn save(&self, compiled: &Compiled, state: &DeviceState, step: i64) -> Result<PathBuf> {
        let host = compiled.download_state(state)?;
        let mut tensors = BTreeMap::new();
        for (k, v) in &host {
            tensors.insert(k.clone(), to_ckpt(v)?);
        }
        let meta = serde_json::json!({
            "global_step": step,
            "data_position": {"steps": step, "seed": self.flags.seed},
            "train_mode": self.flags.train_mode,
            "flags": self.flags.to_json(),
        });
        let saved = ckpt::native::save(
            &self.model_dir,
            step as u64,
            &tensors,
            &meta,
            self.flags.keep_checkpoint_max as usize,
        )?;
        Ok(saved.path)
    }

    /// Compiles the eval program (per-replica batch `eval_batch_size / R`).
    pub fn eval_program_compiled(&self) -> Result<Compiled> {
        self.eval_compiled()
    }

    /// Opens a split of `--dataset`.
    pub fn open_split(&self, split: &str) -> Result<Box<dyn Dataset>> {
        open(&self.flags, split)
    }

    /// Features (`final_avg_pool`), logits and labels of every example of `ds`.
    pub fn extract_features(
        &self,
        compiled: &Compiled,
        state: &DeviceState,
        ds: Arc<dyn Dataset>,
    ) -> Result<(Vec<f32>, Vec<f32>, Vec<i32>)> {
        self.extract(compiled, state, ds, None)
    }

    fn eval_compiled(&self) -> Result<Compiled> {
        let n = (self.flags.eval_batch_size as usize / self.replicas) as i64;
        let program = eval_program(&self.step, n)?;
        Ok(compile(&self.client, program, &self.compile_options())?)
    }

    /// Runs the eval program over `ds` (at most `limit` examples), returning
    /// (features `[n, d]`, logits `[n, K]`, labels) of the real examples.
    fn extract(
        &self,
        compiled: &Compiled,
        state: &DeviceState,
        ds: Arc<dyn Dataset>,
        max_batches: Option<u64>,
    ) -> Result<(Vec<f32>, Vec<f32>, Vec<i32>)> {
        let f = &self.flags;
        let mut cfg = PipelineConfig::eval(
            f.eval_batch_size as usize,
            self.replicas,
            f.image_size as usize,
        );
        cfg.augment.resize = data::augment::ResizeVersion::parse(&f.resize)?;
        let mut pipeline = Pipeline::new(ds, cfg)?;
        let (mut feats, mut logits, mut labels) = (vec![], vec![], vec![]);
        let mut batches = 0;
        while let Some(batch) = pipeline.next_batch()? {
            let inputs = batch
                .replicas
                .iter()
                .map(|rb| -> Result<Vec<HostArray>> {
                    Ok(vec![HostArray::from_f32(
                        &[rb.batch as i64, rb.height as i64, rb.width as i64, 3],
                        &rb.images,
                    )?])
                })
                .collect::<Result<Vec<_>>>()?;
            let outs = compiled.eval_step(&self.client, state, &inputs)?;
            for (rb, o) in batch.replicas.iter().zip(&outs) {
                let lg = o[0].to_f32()?;
                let ft = o[1].to_f32()?;
                let k = lg.len() / rb.batch.max(1);
                let d = ft.len() / rb.batch.max(1);
                for i in 0..rb.batch {
                    if rb.mask[i] > 0.0 {
                        logits.extend_from_slice(&lg[i * k..(i + 1) * k]);
                        feats.extend_from_slice(&ft[i * d..(i + 1) * d]);
                        labels.push(rb.labels[i]);
                    }
                }
            }
            batches += 1;
            if max_batches.is_some_and(|m| batches >= m) {
                break;
            }
        }
        Ok((feats, logits, labels))
    }

    fn knn_monitor(
        &self,
        train: &Compiled,
        state: &DeviceState,
        cache: &mut Option<KnnCache>,
    ) -> Result<f64> {
        if cache.is_none() {
            let eval = self.eval_compiled()?;
            let train_ds = open(&self.flags, &self.flags.train_split)?;
            let bank_n = if self.flags.knn_bank_size > 0 {
                (self.flags.knn_bank_size as usize).min(train_ds.len())
            } else {
                train_ds.len()
            };
            let examples = (0..bank_n)
                .map(|i| train_ds.get(i))
                .collect::<Result<Vec<_>, _>>()?;
            let bank: Arc<dyn Dataset> = Arc::new(data::InMemory::new(
                examples,
                train_ds.num_classes(),
                "knn bank",
            )?);
            let queries: Arc<dyn Dataset> = Arc::from(open(&self.flags, &self.flags.eval_split)?);
            *cache = Some((eval, bank, queries));
        }
        let Some((eval, bank, queries)) = cache.as_ref() else {
            bail!("k-NN monitor could not be prepared");
        };
        // The eval program reads the same variables, in the same order.
        let state_vars: Vec<&str> = train.program.vars.iter().map(|v| v.name.as_str()).collect();
        let eval_vars: Vec<&str> = eval.program.vars.iter().map(|v| v.name.as_str()).collect();
        if state_vars != eval_vars {
            bail!("internal: the eval program's variables differ from the training program's");
        }
        let (bf, _, bl) = self.extract(eval, state, bank.clone(), None)?;
        let max_batches = (self.flags.eval_steps > 0).then_some(self.flags.eval_steps as u64);
        let (qf, _, ql) = self.extract(eval, state, queries.clone(), max_batches)?;
        let d = bf.len() / bl.len().max(1);
        Ok(probe::knn_accuracy(
            (&bf, &bl),
            (&qf, &ql),
            d,
            200,
            bank.num_classes(),
            0.07,
        ))
    }

    /// Evaluates the newest checkpoint of `model_dir` once: label top-1/top-5
    /// accuracy and loss over the eval split; writes `result.json`,
    /// `result_<step>.json` and exports the network.
    pub fn evaluate_latest(&self) -> Result<BTreeMap<String, f64>> {
        let latest = ckpt::native::latest(&self.model_dir)?.ok_or_else(|| {
            anyhow!(
                "{} holds no checkpoint to evaluate; train first (--mode=train)",
                self.model_dir.display()
            )
        })?;
        warn_skipped(&latest);
        self.evaluate(&latest.path)
    }

    fn evaluate(&self, path: &Path) -> Result<BTreeMap<String, f64>> {
        let f = &self.flags;
        let c = ckpt::native::load(path)?;
        let step = c.step as i64;
        let compiled = self.eval_compiled()?;
        let mut overrides = HostState::new();
        for (name, t) in &c.tensors {
            overrides.insert(name.clone(), from_ckpt(name, t)?);
        }
        let state = compiled.init_state(&self.client, f.seed as u64, &overrides)?;
        let ds: Arc<dyn Dataset> = Arc::from(open(f, &f.eval_split)?);
        let max_batches = (f.eval_steps > 0).then_some(f.eval_steps as u64);
        let (_, logits, labels) = self.extract(&compiled, &state, ds, max_batches)?;
        let n = labels.len().max(1);
        let k = logits.len() / n;
        let (mut top1, mut top5, mut loss) = (0.0, 0.0, 0.0);
        for (row, &y) in logits.chunks(k.max(1)).zip(&labels) {
            let target = row.get(y as usize).copied().unwrap_or(f32::NEG_INFINITY);
            let above = row.iter().filter(|&&v| v > target).count();
            top1 += f64::from(u8::from(above < 1));
            top5 += f64::from(u8::from(above < 5));
            let m = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
            let lse = m + row.iter().map(|v| (v - m).exp()).sum::<f32>().ln();
            loss += f64::from(lse - target);
        }
        let mut result = BTreeMap::new();
        result.insert("label_top_1_accuracy".to_string(), top1 / n as f64);
        result.insert("label_top_5_accuracy".to_string(), top5 / n as f64);
        result.insert("loss".to_string(), loss / n as f64);
        let metrics: Vec<(&str, f64)> = result.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        summary::write_result(&self.model_dir, step, &metrics)?;
        let mut ev = EventWriter::create(self.model_dir.join("eval"))?;
        let scalars: Vec<(String, f32)> = result
            .iter()
            .map(|(k, v)| (format!("eval/{k}"), *v as f32))
            .collect();
        let refs: Vec<(&str, f32)> = scalars.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        ev.scalars(&refs, step)?;
        summary::write_flags(&self.model_dir, &f.to_json())?;
        let export = self.export(&c, step)?;
        eprintln!(
            "simclr: eval at step {step} on {} examples of {}: top-1 {:.4}, top-5 {:.4}, loss {:.4}; exported {}",
            labels.len(),
            f.eval_split,
            result["label_top_1_accuracy"],
            result["label_top_5_accuracy"],
            result["loss"],
            export.display()
        );
        Ok(result)
    }

    /// Writes the trained network (variables + the flags that build it) to
    /// `model_dir/export/<step>/`, keeping the newest `keep_hub_module_max`.
    fn export(&self, c: &ckpt::native::Checkpoint, step: i64) -> Result<PathBuf> {
        let root = self.model_dir.join("export");
        let tensors: BTreeMap<String, ckpt::Tensor> = c
            .tensors
            .iter()
            .filter(|(k, _)| {
                !k.contains("/Momentum") && !k.contains("/Adam") && k.as_str() != "global_step"
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let meta = serde_json::json!({
            "global_step": step,
            "model": {
                "resnet_depth": self.step.model.resnet_depth,
                "width_multiplier": self.step.model.width_multiplier,
                "sk_ratio": self.step.model.sk_ratio,
                "se_ratio": self.step.model.se_ratio,
                "image_size": self.step.model.image_size,
                "proj_head_mode": self.flags.proj_head_mode,
                "num_proj_layers": self.step.model.num_proj_layers,
                "proj_out_dim": self.step.model.proj_out_dim,
                "num_classes": self.step.model.num_classes,
                "ft_proj_selector": self.step.ft_proj_selector,
            },
        });
        let dir = root.join(step.to_string());
        ckpt::native::save(&dir, step as u64, &tensors, &meta, 1)?;
        let mut steps: Vec<i64> = std::fs::read_dir(&root)
            .map(|rd| {
                rd.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        steps.sort_unstable();
        let keep = self.flags.keep_hub_module_max.max(1) as usize;
        if steps.len() > keep {
            for s in &steps[..steps.len() - keep] {
                let _ = std::fs::remove_dir_all(root.join(s.to_string()));
            }
        }
        Ok(dir)
    }

    /// `--mode=eval`: evaluates every new checkpoint of `model_dir` (polling
    /// every 15 s) until one at or past the train steps has been evaluated.
    pub fn watch_and_evaluate(&self) -> Result<()> {
        let mut done = None;
        loop {
            if let Some(l) = ckpt::native::latest(&self.model_dir)? {
                warn_skipped(&l);
                if done != Some(l.step) {
                    self.evaluate(&l.path)?;
                    done = Some(l.step);
                    if l.step as i64 >= self.total_steps() {
                        return Ok(());
                    }
                }
            }
            eprintln!(
                "simclr: waiting for a new checkpoint in {}",
                self.model_dir.display()
            );
            std::thread::sleep(Duration::from_secs(15));
        }
    }
}

/// A training batch as the step's inputs: per replica, the views
/// `[views·b, h, w, 3]` and the labels `[b]`.
fn step_inputs(batch: &data::pipeline::Batch) -> Result<Vec<Vec<HostArray>>> {
    batch
        .replicas
        .iter()
        .map(|rb| {
            let dims = [
                (rb.num_views * rb.batch) as i64,
                rb.height as i64,
                rb.width as i64,
                3,
            ];
            Ok(vec![
                HostArray::from_f32(&dims, &rb.images)?,
                HostArray::from_s32(&[rb.batch as i64], &rb.labels)?,
            ])
        })
        .collect()
}

fn warn_skipped(latest: &ckpt::native::Latest) {
    for s in &latest.skipped {
        eprintln!(
            "warning: skipped unreadable checkpoint {}: {}; using {}",
            s.path.display(),
            s.reason,
            latest.path.display()
        );
    }
}

/// The k-NN monitor's compiled eval program, memory bank and queries.
type KnnCache = (Compiled, Arc<dyn Dataset>, Arc<dyn Dataset>);

pub(crate) fn open(f: &RunFlags, split: &str) -> Result<Box<dyn Dataset>> {
    let bad = if f.skip_bad_images {
        BadImages::Skip
    } else {
        BadImages::Fail
    };
    let ds = data::open_dataset(&f.dataset, f.data_dir.as_deref().map(Path::new), split, bad)?;
    if f.cache_dataset {
        return Ok(Box::new(data::InMemory::cache(ds.as_ref())?));
    }
    Ok(ds)
}

fn scalar_name(k: &str) -> String {
    match k {
        "learning_rate" => "learning_rate".into(),
        other => format!("train/{other}"),
    }
}

fn fmt_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}
