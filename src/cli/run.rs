//! `simclr run`: the original `run.py` with the same flags (see
//! [`super::flags`]): pretraining, fine-tuning and evaluation, with
//! checkpoints that resume exactly, restore from TensorFlow or simclr
//! checkpoints, TensorBoard summaries, `metrics.jsonl`, `result.json` and an
//! export of the trained network.

use super::flags::RunFlags;
use crate::data::{self, folder::BadImages, Dataset};
use crate::dist::{Job, JobSpec, ProcessDevices};
use crate::nn::{ModelConfig, ProjHeadMode};
use crate::pjrt::client::MultiProcess;
use crate::pjrt::{Client, ClientOptions};
use crate::simclr::schedule::{epoch_steps, train_steps};
use crate::simclr::{LrScaling, OptimizerConfig, OptimizerKind, Schedule, StepConfig, TrainMode};
use crate::train::{DataSpec, Distillation, InitFrom, RunConfig, Trainer};
use anyhow::{anyhow, bail, Result};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Arguments of `simclr run`: absl-style flags, parsed by [`RunFlags::parse`].
#[derive(Debug, clap::Args)]
#[command(disable_help_flag = true)]
pub struct RunArgs {
    /// Flags as in run.py, e.g. `--train_mode=pretrain --train_batch_size=512`.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
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
    let mode = flags.mode.clone();
    let trainer = trainer(flags)?;
    match mode.as_str() {
        "train" => {
            trainer.train()?;
        }
        "train_then_eval" => {
            trainer.train()?;
            trainer.evaluate_latest()?;
        }
        _ => trainer.watch_and_evaluate()?,
    }
    Ok(())
}

/// The job the flags (or the environment) describe; `None` for one process.
///
/// # Errors
/// An incomplete or inconsistent `--coordinator_address` /
/// `--num_processes` / `--process_id`.
pub fn job_spec(flags: &RunFlags) -> Result<Option<JobSpec>> {
    let env = |k: &str| std::env::var(k).ok();
    let n = (flags.num_processes > 0)
        .then(|| usize::try_from(flags.num_processes))
        .transpose()?;
    let id = (flags.process_id >= 0)
        .then(|| usize::try_from(flags.process_id))
        .transpose()?;
    let mut spec = JobSpec::resolve(
        flags.coordinator_address.as_deref(),
        n,
        id,
        flags.use_tpu,
        &env,
    )?;
    if let Some(s) = spec.as_mut() {
        s.initialization_timeout = Duration::from_secs_f64(flags.initialization_timeout.max(1.0));
        s.heartbeat_timeout = Duration::from_secs_f64(flags.heartbeat_timeout_seconds.max(1.0));
    }
    Ok(spec)
}

/// Joins the job (if any), creates the PJRT client with the job's
/// key-value store, and agrees on the global topology.
///
/// # Errors
/// A missing plugin, a process that never joins, mixed platforms.
pub fn client_and_job(flags: &RunFlags) -> Result<(Client, Job)> {
    let cpu = (flags.cpu_device_count > 0)
        .then(|| usize::try_from(flags.cpu_device_count))
        .transpose()?;
    connect(
        job_spec(flags)?.as_ref(),
        flags.pjrt_plugin.as_deref().map(Path::new),
        flags.use_tpu,
        cpu,
    )
}

/// Joins the job `spec` describes (a single process when `None`), creates a
/// client of the discovered plugin with the job's key-value store (and
/// `node_id`/`num_nodes` on GPU), and agrees on the job's topology.
///
/// # Errors
/// As [`Job::join`], [`Client::discover`], [`Job::agree_topology`].
pub fn connect(
    spec: Option<&JobSpec>,
    plugin: Option<&Path>,
    use_tpu: bool,
    cpu_device_count: Option<usize>,
) -> Result<(Client, Job)> {
    let mut job = Job::from_spec(spec)?;
    let mut opts = ClientOptions::from_env();
    opts.cpu_device_count = cpu_device_count;
    if let Some(store) = job.kv_store() {
        opts.multi_process = Some(MultiProcess {
            node_id: job.process_id,
            num_nodes: job.num_processes,
            store,
        });
    }
    let client = Client::discover(plugin, use_tpu, &opts)?;
    let local = ProcessDevices {
        process_id: job.process_id,
        platform: client.platform_name().to_string(),
        devices: client
            .devices()
            .iter()
            .map(|d| (d.id, d.kind.clone()))
            .collect(),
    };
    job.agree_topology(local)?;
    Ok((client, job))
}

/// Builds the trainer the flags describe: joins the job, creates the
/// client, resolves the replicas, the dataset size and the step
/// configuration, refusing bad combinations before anything is compiled.
///
/// # Errors
/// Bad flags, a missing plugin or dataset, a job that cannot form.
pub fn trainer(flags: RunFlags) -> Result<Trainer> {
    let (client, job) = client_and_job(&flags)?;
    let devices = job
        .topology()
        .map_or(client.devices().len(), |t| t.num_devices());
    let replicas = choose_replicas(&flags, client.platform_name(), devices)?;
    if job.num_processes > 1 && client.num_global_devices() < devices {
        // Every process reaches this verdict; let all of them say it before
        // process 0 stops serving the store.
        let _ = job.finished();
        bail!(
            "the {} plugin ran this process on its own ({} devices) but the job has {devices} devices in {} processes: \
             this plugin does not join processes into one runtime. Train across hosts with a plugin that does \
             (CUDA with num_nodes, libtpu on a TPU pod slice); `simclr devices` with the same job flags shows the job's topology",
            client.platform_name(),
            client.num_global_devices(),
            job.num_processes
        );
    }
    flags.validate(replicas).map_err(|e| anyhow!("{e}"))?;
    let cfg = run_config(&flags, replicas)?;
    Ok(Trainer::new(cfg, client, job))
}

/// The [`RunConfig`] of `flags` on `replicas` replicas (opens the training
/// split to count its examples).
///
/// # Errors
/// A missing `--model_dir`, an unreadable dataset, an invalid model.
pub fn run_config(flags: &RunFlags, replicas: usize) -> Result<RunConfig> {
    let f = flags;
    let model_dir = PathBuf::from(f.model_dir.as_deref().ok_or_else(|| {
        anyhow!("--model_dir is required: checkpoints, summaries and results go there")
    })?);
    let data = data_spec(f);
    let train_ds = data.open(&f.train_split)?;
    // Fine-tuning on a labelled subset counts its epochs in that subset.
    let n = if f.train_mode == "finetune" && f.labeled_percent < 100.0 {
        data::labelled_subset(train_ds.as_ref(), f.labeled_percent)?.len() as i64
    } else {
        train_ds.len() as i64
    };
    let step = step_config(f, replicas, n, u32::try_from(train_ds.num_classes())?)?;
    // The teacher is read for training only (evaluation needs the student).
    let distill = if step.train_mode == TrainMode::Distill && f.mode != "eval" {
        let (teacher, config) = super::distill::teacher(f, &step)?;
        Some(Distillation { teacher, config })
    } else {
        None
    };
    let checkpoint_every = if f.checkpoint_steps > 0 {
        f.checkpoint_steps
    } else {
        (f.checkpoint_epochs * epoch_steps(n, f.train_batch_size)).max(1)
    };
    Ok(RunConfig {
        step,
        model_dir,
        data,
        train_batch_size: usize::try_from(f.train_batch_size)?,
        eval_batch_size: usize::try_from(f.eval_batch_size)?,
        eval_steps: (f.eval_steps > 0).then_some(f.eval_steps as u64),
        image_size: usize::try_from(f.image_size)?,
        color_jitter_strength: f.color_jitter_strength as f32,
        use_blur: f.use_blur,
        resize: data::augment::ResizeVersion::parse(&f.resize)?,
        seed: f.seed as u64,
        checkpoint_every,
        keep_checkpoint_max: usize::try_from(f.keep_checkpoint_max.max(1))?,
        keep_hub_module_max: usize::try_from(f.keep_hub_module_max.max(1))?,
        summary_every: f.train_summary_steps,
        init_from: f.checkpoint.as_ref().map(|p| InitFrom {
            path: PathBuf::from(p),
            variable_schema: f.variable_schema.clone(),
            zero_init_logits_layer: f.zero_init_logits_layer,
        }),
        knn_bank_size: f
            .knn_monitor
            .then(|| usize::try_from(f.knn_bank_size.max(0)).unwrap_or(0)),
        fixed_batch: f.fixed_batch,
        overlap_steps: f.overlap_steps,
        augment_on_device: if f.augment_on_device {
            Some(data::augment::DeviceTransfer::parse(&f.augment_transfer)?)
        } else {
            None
        },
        proj_head_mode: f.proj_head_mode.clone(),
        record: f.to_json(),
        labeled_percent: f.labeled_percent,
        distill,
    })
}

/// Where the flags say the data is.
pub fn data_spec(f: &RunFlags) -> DataSpec {
    DataSpec {
        dataset: f.dataset.clone(),
        data_dir: f.data_dir.as_deref().map(PathBuf::from),
        train_split: f.train_split.clone(),
        eval_split: f.eval_split.clone(),
        bad_images: if f.skip_bad_images {
            BadImages::Skip
        } else {
            BadImages::Fail
        },
        cache: f.cache_dataset,
    }
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
        train_mode: match flags.train_mode.as_str() {
            "finetune" => TrainMode::Finetune,
            "distill" => TrainMode::Distill,
            _ => TrainMode::Pretrain,
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
        precision: flags.precision.parse()?,
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
    let replicas = choose_replicas(flags, client.platform_name(), client.devices().len())?;
    Ok((client, replicas))
}

/// `--num_replicas`, or every one of `devices`.
fn choose_replicas(flags: &RunFlags, platform: &str, devices: usize) -> Result<usize> {
    let replicas = if flags.num_replicas > 0 {
        usize::try_from(flags.num_replicas)?
    } else {
        devices
    };
    if replicas > devices || replicas == 0 {
        bail!(
            "--num_replicas={replicas} but the {platform} plugin has {devices} device(s); pass --num_replicas between 1 and {devices}"
        );
    }
    Ok(replicas)
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

pub(crate) fn open(f: &RunFlags, split: &str) -> Result<Box<dyn Dataset>> {
    Ok(data_spec(f).open(split)?)
}
