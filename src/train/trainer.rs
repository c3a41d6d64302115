//! The training loop as a library: a [`Trainer`] owns a PJRT client, the
//! run's configuration and its place in a job of one or more processes,
//! and runs the step loop with checkpointing (atomic, keep-N, exact
//! resume), TensorBoard summaries and `metrics.jsonl`, the k-NN monitor,
//! NaN detection and preemption; it evaluates checkpoints (`result.json`)
//! and exports the trained network.
//!
//! Not here: flags (the command line turns them into a [`RunConfig`]),
//! the step programs (`simclr`), the files' formats (`ckpt`, `summary`).

use super::config::RunConfig;
use super::preempt;
use super::{compile, default_compile_options, probe, Compiled, DeviceState, Error, HostState};
use super::{InFlight, Uploaded};
use super::{Result, Status};
use crate::ckpt;
use crate::data::augment;
use crate::data::pipeline::{Batch, Pipeline, PipelineConfig};
use crate::data::{self, Dataset};
use crate::dist::Job;
use crate::nn;
use crate::pjrt::{self, Client, ElementType, HostArray};
use crate::simclr::augment_device::DeviceAugment;
use crate::simclr::{
    distill_program, eval_program, train_program, train_program_augmented, TrainMode,
};
use crate::summary::{self, EventWriter, MetricsLog, Throughput};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The k-NN monitor's compiled eval program, memory bank and queries.
type KnnCache = (Compiled, Arc<dyn Dataset>, Arc<dyn Dataset>);

/// Runs training and evaluation for one [`RunConfig`] on one client.
pub struct Trainer {
    cfg: RunConfig,
    client: Client,
    job: Job,
}

impl Trainer {
    /// A trainer for `cfg` on `client`, as process `job.process_id` of a
    /// job of `job.num_processes` (a single-process job: [`Job::single`]).
    pub fn new(cfg: RunConfig, client: Client, job: Job) -> Self {
        Trainer { cfg, client, job }
    }

    /// The configuration.
    pub fn config(&self) -> &RunConfig {
        &self.cfg
    }

    /// The PJRT client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The job this process belongs to.
    pub fn job(&self) -> &Job {
        &self.job
    }

    /// Global replicas (every device of every process in use).
    pub fn replicas(&self) -> usize {
        self.cfg.step.num_replicas
    }

    fn total_steps(&self) -> i64 {
        self.cfg.step.schedule.total_steps
    }

    fn compile_options(&self) -> pjrt::CompileOptions {
        default_compile_options(&self.client, self.replicas())
    }

    /// Whether this process writes the run's shared files (summaries,
    /// `metrics.jsonl`, results, exports, checkpoints): process 0.
    fn writes_outputs(&self) -> bool {
        self.job.process_id == 0
    }

    /// Opens a split of the configured dataset.
    pub fn open_split(&self, split: &str) -> Result<Box<dyn Dataset>> {
        Ok(self.cfg.data.open(split)?)
    }

    /// Trains until the global step reaches the train steps, resuming from
    /// `model_dir` when it holds a checkpoint. Returns the final step.
    ///
    /// # Errors
    /// Any failure of the data, the runtime or the files; a non-finite loss
    /// ([`Error::NonFinite`], naming the step and the last good
    /// checkpoint); a stop requested by SIGTERM/SIGINT
    /// ([`Error::Preempted`], after the checkpoint of that step is written).
    pub fn train(&self) -> Result<i64> {
        let c = &self.cfg;
        preempt::install();
        let in_bucket = !crate::storage::Location::from_path(&c.model_dir)
            .map_err(crate::ckpt::Error::from)?
            .is_local();
        if self.writes_outputs() && in_bucket {
            summary::write_flags(&c.model_dir, &c.record)?;
        } else if self.writes_outputs() {
            std::fs::create_dir_all(&c.model_dir).map_err(|e| {
                Error::Io(
                    format!("cannot create --model_dir={}", c.model_dir.display()),
                    e,
                )
            })?;
            summary::write_flags(&c.model_dir, &c.record)?;
        }
        let ds: Arc<dyn Dataset> = c.training_set()?;
        let n = ds.len() as i64;
        // Distillation: which examples keep their labels (None: all).
        let labelled: Option<Vec<bool>> = match &c.distill {
            Some(_) if c.labeled_percent < 100.0 => {
                let mut mask = vec![false; ds.len()];
                for i in data::labelled_subset(ds.as_ref(), c.labeled_percent)? {
                    mask[i] = true;
                }
                Some(mask)
            }
            _ => None,
        };
        eprintln!(
            "simclr: {} on {} ({} examples), {} replica(s) of {} {}{}, {} steps of batch {}",
            self.cfg.step.train_mode.name(),
            ds.describe(),
            n,
            self.replicas(),
            self.client.platform_name(),
            self.client
                .devices()
                .first()
                .map(|d| d.kind.as_str())
                .unwrap_or("?"),
            self.job.describe(),
            self.total_steps(),
            c.train_batch_size
        );
        if let Some(d) = &c.distill {
            eprintln!(
                "simclr: {}; distillation temperature {}, label weight {}{}",
                super::teacher::describe(&d.teacher),
                d.config.temperature,
                d.config.label_weight,
                labelled
                    .as_ref()
                    .map(|m| format!(
                        ", {} labelled examples ({} %)",
                        m.iter().filter(|&&b| b).count(),
                        c.labeled_percent
                    ))
                    .unwrap_or_default()
            );
        }
        let t = Instant::now();
        let program = match (&c.distill, self.device_augment()) {
            (d, Some(a)) => train_program_augmented(&c.step, d.as_ref().map(|d| &d.config), &a)?,
            (Some(d), None) => distill_program(&c.step, &d.config)?,
            (None, None) => train_program(&c.step)?,
        };
        eprintln!(
            "simclr: traced the {} step ({} instructions) in {:.1}s; compiling…",
            c.step.train_mode.name(),
            program.module.instruction_count(),
            t.elapsed().as_secs_f64()
        );
        if let Some(a) = self.device_augment() {
            eprintln!(
                "simclr: augmentation on the device: the host crops and resizes ({} views) and draws the parameters; the step applies flip, colour jitter, grayscale{}",
                a.transfer.name(),
                if a.blur { ", blur" } else { "" }
            );
        }
        let compiled = compile(&self.client, program, &self.compile_options())?;
        if compiled.executable.from_cache() {
            eprintln!(
                "simclr: loaded the compiled step from the compilation cache in {:.1}s",
                compiled.compile_seconds
            );
        } else {
            eprintln!("simclr: compiled in {:.1}s", compiled.compile_seconds);
        }
        // Before anything runs: does one replica's step fit the device?
        // (Only where the plugin reports its memory limit.)
        if let Some(fit) = crate::inspect::fit::check_executable(
            &self.client,
            &compiled.program,
            &compiled.executable,
            None,
            (c.train_batch_size / self.replicas().max(1)) as i64,
        ) {
            eprintln!("simclr: memory: {}", fit.message);
        }

        let (mut state, start_step) = self.initial_state(&compiled)?;
        let total = self.total_steps();
        if start_step >= total {
            eprintln!(
                "simclr: {} is already at step {start_step} ≥ {total}; nothing to train",
                c.model_dir.display()
            );
            return Ok(start_step);
        }
        let mut pipeline =
            Pipeline::starting_at(ds.clone(), self.train_pipeline_config()?, start_step as u64)?;

        let mut out = self.outputs(start_step)?;
        let mut status = Status::new(start_step, total, c.train_batch_size);
        let mut knn = None;
        let mut last_saved: Option<PathBuf> = None;
        let started = Instant::now();
        let mut meter = Throughput::new(1, 20);
        meter.start();
        let mut step = start_step;
        let mut fixed: Option<Vec<Vec<HostArray>>> = None;
        let mut waited = Duration::ZERO;
        // The next step's inputs, uploaded while the current step runs.
        let mut next: Option<Uploaded> = None;
        // The step whose metrics are still to be read (at most one behind).
        let mut in_flight: Option<(i64, InFlight)> = None;
        // The host arrays of the last step, refilled for the next one.
        let mut host: Vec<Vec<HostArray>> = Vec::new();
        let mut fetch = |pipeline: &mut Pipeline, step: i64| -> Result<Uploaded> {
            let t_in = Instant::now();
            let inputs = match &fixed {
                Some(inputs) => inputs,
                None => {
                    let mut batch = pipeline.next_batch()?.ok_or_else(|| {
                        Error::Config(format!("the training data ended at step {step}"))
                    })?;
                    if let Some(mask) = &labelled {
                        for rb in &mut batch.replicas {
                            super::teacher::hide_labels(&mut rb.labels, &rb.indices, mask);
                        }
                    }
                    step_inputs_into(&batch, &mut host)?;
                    pipeline.recycle(batch);
                    if c.fixed_batch {
                        fixed = Some(host.clone());
                    }
                    &host
                }
            };
            waited += t_in.elapsed();
            compiled.upload(&self.client, inputs)
        };
        while step < total {
            let data = match next.take() {
                Some(d) => d,
                None => fetch(&mut pipeline, step)?,
            };
            let running = compiled.dispatch(&mut state, data)?;
            step += 1;
            meter.step(c.train_batch_size as u64);
            let is_ckpt = step % c.checkpoint_every == 0 || step == total;
            let summarize = (c.summary_every > 0 && step % c.summary_every == 0)
                || is_ckpt
                || step == start_step + 1;
            if c.overlap_steps && step < total {
                // Host work while the devices run this step.
                next = Some(fetch(&mut pipeline, step)?);
            }
            // The previous step's metrics (already computed: the devices run
            // steps in order), then this one's when it must be seen now.
            if let Some((s, f)) = in_flight.take() {
                self.step_done(s, f, false, &meter, &mut status, &mut out, &last_saved)?;
            }
            let stop = self.job.preemption(step)?;
            if c.overlap_steps && !(summarize || is_ckpt || stop.is_some()) {
                in_flight = Some((step, running));
            } else {
                self.step_done(
                    step,
                    running,
                    summarize,
                    &meter,
                    &mut status,
                    &mut out,
                    &last_saved,
                )?;
            }
            if is_ckpt || stop.is_some() {
                status.finish_line();
                meter.pause();
                let saved = self.save(&compiled, &state, step)?;
                if let Some(p) = &saved {
                    eprintln!("simclr: saved {}", p.display());
                }
                if in_bucket {
                    // Objects are not appended to: what was logged up to the
                    // checkpoint is uploaded with it.
                    if let Some(o) = out.as_mut() {
                        o.events.sync()?;
                        o.log.sync()?;
                    }
                }
                last_saved = saved.or(last_saved);
                if let Some(sig) = stop {
                    return Err(Error::Preempted {
                        step,
                        signal: preempt::signal_name(sig).to_string(),
                        checkpoint: last_saved
                            .as_ref()
                            .map(|p| p.display().to_string())
                            .unwrap_or_else(|| c.model_dir.display().to_string()),
                    });
                }
                if is_ckpt && c.step.train_mode == TrainMode::Pretrain && c.knn_bank_size.is_some()
                {
                    let acc = self.knn_monitor(&compiled, &state, &mut knn)?;
                    eprintln!(
                        "simclr: k-NN (k=200, cosine) top-1 on {}: {:.4}",
                        c.data.eval_split, acc
                    );
                    if let Some(o) = out.as_mut() {
                        o.knn(acc, step)?;
                    }
                }
                meter.resume();
            }
        }
        if let Some((s, f)) = in_flight.take() {
            self.step_done(s, f, false, &meter, &mut status, &mut out, &last_saved)?;
        }
        status.finish_line();
        let stats = pipeline.stats();
        let train_s = started.elapsed().as_secs_f64();
        eprintln!(
            "simclr: trained to step {step} in {}; input pipeline {:.0} img/s of capacity ({} workers busy {:.0} % of the time), the step waited {:.1}s for data ({:.1} % of the time)",
            fmt_duration(started.elapsed()),
            stats.capacity_images_per_s,
            stats.workers,
            100.0 * stats.busy_s / (stats.elapsed_s * stats.workers as f64).max(1e-9),
            waited.as_secs_f64(),
            100.0 * waited.as_secs_f64() / train_s.max(1e-9)
        );
        self.job.finished()?;
        Ok(step)
    }

    /// Reads the metrics of `step` (waiting for it), stops on a non-finite
    /// loss naming that step, and reports it: summaries when `summarize`,
    /// the status line always.
    #[allow(clippy::too_many_arguments)]
    fn step_done(
        &self,
        step: i64,
        f: InFlight,
        summarize: bool,
        meter: &Throughput,
        status: &mut Status,
        out: &mut Option<TrainOutputs>,
        last_saved: &Option<PathBuf>,
    ) -> Result<()> {
        let metrics = f.metrics()?;
        let m: BTreeMap<&str, f64> = metrics.iter().copied().collect();
        if m.get("nonfinite").copied().unwrap_or(0.0) > 0.0 {
            let last = last_saved
                .as_ref()
                .map(|p| p.display().to_string())
                .or_else(|| {
                    ckpt::native::latest(&self.cfg.model_dir)
                        .ok()
                        .flatten()
                        .map(|l| l.path.display().to_string())
                })
                .unwrap_or_else(|| "none".into());
            return Err(Error::NonFinite {
                step,
                value: m.get("total_loss").copied().unwrap_or(f64::NAN),
                last_checkpoint: last,
            });
        }
        let ips = meter
            .report()
            .map(|r| r.median_images_per_sec)
            .unwrap_or(0.0);
        if summarize {
            if let Some(o) = out.as_mut() {
                o.train_metrics(&metrics, ips, step)?;
            }
        }
        status.update(step, &m, ips, summarize);
        Ok(())
    }

    /// The shape of the augmentation the step applies with
    /// `--augment_on_device` (`None` without).
    fn device_augment(&self) -> Option<DeviceAugment> {
        let c = &self.cfg;
        let transfer = c.augment_on_device?;
        Some(DeviceAugment::for_step(
            &c.step,
            c.image_size as i64,
            c.use_blur,
            transfer,
        ))
    }

    fn train_pipeline_config(&self) -> Result<PipelineConfig> {
        let c = &self.cfg;
        let mut p = match c.step.train_mode {
            TrainMode::Pretrain => {
                let mut p = PipelineConfig::pretrain(
                    c.train_batch_size,
                    self.replicas(),
                    c.image_size,
                    c.color_jitter_strength,
                    c.seed,
                );
                p.blur = c.use_blur;
                p
            }
            TrainMode::Finetune | TrainMode::Distill => {
                PipelineConfig::finetune(c.train_batch_size, self.replicas(), c.image_size, c.seed)
            }
        };
        p.augment.resize = c.resize;
        p.device_augment = c.augment_on_device;
        p.local_replicas = self.job.local_replicas(self.replicas())?;
        Ok(p)
    }

    /// The files process 0 writes while training (`None` elsewhere). A run
    /// resumed at `start_step` first drops what an interrupted run logged
    /// after that step: those lines of `metrics.jsonl`, and in TensorBoard
    /// through a `SessionLog.START` event at the next step.
    fn outputs(&self, start_step: i64) -> Result<Option<TrainOutputs>> {
        if !self.writes_outputs() {
            return Ok(None);
        }
        let dir = &self.cfg.model_dir;
        let mut events = EventWriter::create(dir.join("train"))?;
        if start_step > 0 {
            let dropped = summary::truncate_metrics_after(dir, start_step)?;
            if dropped > 0 {
                eprintln!(
                    "simclr: dropped {dropped} line(s) of metrics.jsonl logged after step {start_step} by the interrupted run"
                );
            }
            events.session_start(start_step + 1)?;
        }
        Ok(Some(TrainOutputs {
            events,
            log: MetricsLog::open(dir)?,
        }))
    }

    /// The state a training run starts from: resumed from `model_dir`,
    /// restored from `--checkpoint`, or freshly initialised.
    fn initial_state(&self, compiled: &Compiled) -> Result<(DeviceState, i64)> {
        let c = &self.cfg;
        let start =
            ckpt::import::start(&c.model_dir, c.init_from.as_ref().map(|i| i.path.as_path()))?;
        let mut overrides = HostState::new();
        let mut step = 0;
        match start {
            ckpt::import::Start::Resume(latest) => {
                warn_skipped(&latest);
                let ck = latest.load()?;
                for (name, t) in &ck.tensors {
                    overrides.insert(name.clone(), from_ckpt(name, t)?);
                }
                step = latest.step as i64;
                eprintln!(
                    "simclr: resuming from {} (step {step})",
                    latest.path.display()
                );
                let now = c.step.precision.name();
                if let Some(was) = ck.meta.get("precision").and_then(|v| v.as_str()) {
                    if was != now {
                        eprintln!(
                            "simclr: the checkpoint was trained with --precision={was}; continuing with --precision={now} (its f32 variables load unchanged)"
                        );
                    }
                }
            }
            ckpt::import::Start::Restore(path) => {
                let src = ckpt::source::Source::open(&path)?;
                let vars = nn::variables(&c.step.model)?;
                let init = c.init_from.as_ref();
                let opts = ckpt::import::RestoreOptions {
                    variable_schema: init.map(|i| i.variable_schema.clone()).unwrap_or_default(),
                    zero_init_logits_layer: init.is_some_and(|i| i.zero_init_logits_layer),
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
        if let Some(d) = &c.distill {
            overrides.extend(d.teacher.values.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        let state = compiled.init_state(&self.client, c.seed, &overrides)?;
        Ok((state, step))
    }

    /// Writes the checkpoint of `step` once for the whole job (the state is
    /// replicated): every process reaches the step, process 0 writes, and
    /// every process waits until it is committed. Returns the file on
    /// process 0.
    fn save(&self, compiled: &Compiled, state: &DeviceState, step: i64) -> Result<Option<PathBuf>> {
        self.job.barrier(&format!("save/{step}/reached"))?;
        let saved = if self.writes_outputs() {
            let host = compiled.download_state(state)?;
            let mut tensors = BTreeMap::new();
            for (k, v) in &host {
                tensors.insert(k.clone(), to_ckpt(v)?);
            }
            let mut meta = serde_json::json!({
                "global_step": step,
                "data_position": {"steps": step, "seed": self.cfg.seed},
                "train_mode": self.cfg.step.train_mode.name(),
                "precision": self.cfg.step.precision.name(),
                "flags": self.cfg.record,
            });
            if let Some(d) = &self.cfg.distill {
                meta["teacher"] = d.teacher.record();
            }
            let saved = ckpt::native::save(
                &self.cfg.model_dir,
                step as u64,
                &tensors,
                &meta,
                self.cfg.keep_checkpoint_max,
            )?;
            Some(saved.path)
        } else {
            None
        };
        self.job.barrier(&format!("save/{step}/committed"))?;
        Ok(saved)
    }

    /// Compiles the eval program (per-replica batch `eval_batch_size / R`).
    pub fn eval_compiled(&self) -> Result<Compiled> {
        let n = (self.cfg.eval_batch_size / self.replicas()) as i64;
        let program = eval_program(&self.cfg.step, n)?;
        compile(&self.client, program, &self.compile_options())
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

    /// Runs the eval program over `ds` (at most `max_batches` batches),
    /// returning (features `[n, d]`, logits `[n, K]`, labels) of the real
    /// examples of this process's replicas.
    fn extract(
        &self,
        compiled: &Compiled,
        state: &DeviceState,
        ds: Arc<dyn Dataset>,
        max_batches: Option<u64>,
    ) -> Result<(Vec<f32>, Vec<f32>, Vec<i32>)> {
        let c = &self.cfg;
        let mut cfg = PipelineConfig::eval(c.eval_batch_size, self.replicas(), c.image_size);
        cfg.augment.resize = c.resize;
        cfg.local_replicas = self.job.local_replicas(self.replicas())?;
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
            pipeline.recycle(batch);
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
        let c = &self.cfg;
        if cache.is_none() {
            let eval = self.eval_compiled()?;
            let train_ds = c.data.open(&c.data.train_split)?;
            let bank_n = match c.knn_bank_size {
                Some(b) if b > 0 => b.min(train_ds.len()),
                _ => train_ds.len(),
            };
            let examples = (0..bank_n)
                .map(|i| train_ds.get(i))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            let bank: Arc<dyn Dataset> = Arc::new(data::InMemory::new(
                examples,
                train_ds.num_classes(),
                "knn bank",
            )?);
            let queries: Arc<dyn Dataset> = Arc::from(c.data.open(&c.data.eval_split)?);
            *cache = Some((eval, bank, queries));
        }
        let Some((eval, bank, queries)) = cache.as_ref() else {
            return Err(Error::Config("k-NN monitor could not be prepared".into()));
        };
        // The eval program reads the same variables, in the same order.
        let state_vars: Vec<&str> = train.program.vars.iter().map(|v| v.name.as_str()).collect();
        let eval_vars: Vec<&str> = eval.program.vars.iter().map(|v| v.name.as_str()).collect();
        if state_vars != eval_vars {
            return Err(Error::Mismatch(
                "internal: the eval program's variables differ from the training program's".into(),
            ));
        }
        let (bf, _, bl) = self.extract(eval, state, bank.clone(), None)?;
        let (qf, _, ql) = self.extract(eval, state, queries.clone(), c.eval_steps)?;
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
        let latest = ckpt::native::latest(&self.cfg.model_dir)?.ok_or_else(|| {
            Error::Config(format!(
                "{} holds no checkpoint to evaluate; train first (--mode=train)",
                self.cfg.model_dir.display()
            ))
        })?;
        warn_skipped(&latest);
        self.evaluate(&latest)
    }

    fn evaluate(&self, latest: &ckpt::native::Latest) -> Result<BTreeMap<String, f64>> {
        let c = &self.cfg;
        let ck = latest.load()?;
        let step = ck.step as i64;
        let compiled = self.eval_compiled()?;
        let mut overrides = HostState::new();
        for (name, t) in &ck.tensors {
            overrides.insert(name.clone(), from_ckpt(name, t)?);
        }
        let state = compiled.init_state(&self.client, c.seed, &overrides)?;
        let ds: Arc<dyn Dataset> = Arc::from(c.data.open(&c.data.eval_split)?);
        let (_, logits, labels) = self.extract(&compiled, &state, ds, c.eval_steps)?;
        let n = labels.len().max(1);
        let k = logits.len() / n;
        let (mut top1, mut top5, mut loss) = (0.0, 0.0, 0.0);
        for (row, &y) in logits.chunks(k.max(1)).zip(&labels) {
            let target = row.get(y as usize).copied().unwrap_or(f32::NEG_INFINITY);
            // The label's rank, ties to the lower index (TF's argmax/top_k).
            let above = row
                .iter()
                .enumerate()
                .filter(|&(j, &v)| v > target || (v == target && j < y as usize))
                .count();
            top1 += f64::from(u8::from(above < 1));
            top5 += f64::from(u8::from(above < 5));
            let m = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
            let lse = m + row.iter().map(|v| (v - m).exp()).sum::<f32>().ln();
            loss += f64::from(lse - target);
        }
        // Every process scored its own replicas' examples: sum the counts.
        let [top1, top5, loss, count] = self.job.sum(
            &format!("eval/{step}"),
            [top1, top5, loss, labels.len() as f64],
        )?;
        let n = count.max(1.0);
        let mut result = BTreeMap::new();
        result.insert("label_top_1_accuracy".to_string(), top1 / n);
        result.insert("label_top_5_accuracy".to_string(), top5 / n);
        result.insert("loss".to_string(), loss / n);
        if !self.writes_outputs() {
            return Ok(result);
        }
        let metrics: Vec<(&str, f64)> = result.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        summary::write_result(&c.model_dir, step, &metrics)?;
        let mut ev = EventWriter::create(c.model_dir.join("eval"))?;
        let scalars: Vec<(String, f32)> = result
            .iter()
            .map(|(k, v)| (format!("eval/{k}"), *v as f32))
            .collect();
        let refs: Vec<(&str, f32)> = scalars.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        ev.scalars(&refs, step)?;
        summary::write_flags(&c.model_dir, &c.record)?;
        let export = self.export(&ck, step)?;
        eprintln!(
            "simclr: eval at step {step} on {} examples of {}: top-1 {:.4}, top-5 {:.4}, loss {:.4}; exported {}",
            count,
            c.data.eval_split,
            result["label_top_1_accuracy"],
            result["label_top_5_accuracy"],
            result["loss"],
            export.display()
        );
        Ok(result)
    }

    /// Writes the trained network (variables + the flags that build it) to
    /// `model_dir/export/<step>/`, keeping the newest `keep_hub_module_max`.
    fn export(&self, ck: &ckpt::native::Checkpoint, step: i64) -> Result<PathBuf> {
        let c = &self.cfg;
        let root = c.model_dir.join("export");
        let tensors: BTreeMap<String, ckpt::Tensor> = ck
            .tensors
            .iter()
            .filter(|(k, _)| {
                !k.contains("/Momentum") && !k.contains("/Adam") && k.as_str() != "global_step"
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let m = &c.step.model;
        let meta = serde_json::json!({
            "global_step": step,
            "model": {
                "resnet_depth": m.resnet_depth,
                "width_multiplier": m.width_multiplier,
                "sk_ratio": m.sk_ratio,
                "se_ratio": m.se_ratio,
                "image_size": m.image_size,
                "proj_head_mode": c.proj_head_mode,
                "num_proj_layers": m.num_proj_layers,
                "proj_out_dim": m.proj_out_dim,
                "num_classes": m.num_classes,
                "ft_proj_selector": c.step.ft_proj_selector,
            },
            "precision": c.step.precision.name(),
        });
        let dir = root.join(step.to_string());
        ckpt::native::save(&dir, step as u64, &tensors, &meta, 1)?;
        let root_loc = crate::storage::Location::from_path(&root).map_err(ckpt::Error::from)?;
        if !root_loc.is_local() {
            let mut steps: Vec<i64> = crate::storage::list(&root_loc, true)
                .map_err(ckpt::Error::from)?
                .iter()
                .filter_map(|e| e.name.split('/').next()?.parse().ok())
                .collect();
            steps.sort_unstable();
            steps.dedup();
            let keep = c.keep_hub_module_max.max(1);
            if steps.len() > keep {
                for s in &steps[..steps.len() - keep] {
                    crate::storage::delete_prefix(&root_loc.join(&s.to_string()))
                        .map_err(ckpt::Error::from)?;
                }
            }
            return Ok(dir);
        }
        let mut steps: Vec<i64> = std::fs::read_dir(&root)
            .map(|rd| {
                rd.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        steps.sort_unstable();
        let keep = c.keep_hub_module_max.max(1);
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
            // The index alone says whether a new checkpoint was committed
            // (reading the newest one to verify it is a download in a
            // bucket).
            let newest = ckpt::native::try_list(&self.cfg.model_dir)?
                .last()
                .map(|(s, _)| *s);
            let fresh = newest.is_some() && newest != done;
            if let Some(l) = fresh
                .then(|| ckpt::native::latest(&self.cfg.model_dir))
                .transpose()?
                .flatten()
            {
                warn_skipped(&l);
                if done != Some(l.step) {
                    self.evaluate(&l)?;
                    done = Some(l.step);
                    if l.step as i64 >= self.total_steps() {
                        return Ok(());
                    }
                }
            }
            eprintln!(
                "simclr: waiting for a new checkpoint in {}",
                self.cfg.model_dir.display()
            );
            std::thread::sleep(Duration::from_secs(15));
        }
    }
}

/// The training files: TensorBoard events under `train/` and `metrics.jsonl`.
struct TrainOutputs {
    events: EventWriter,
    log: MetricsLog,
}

impl TrainOutputs {
    fn train_metrics(&mut self, metrics: &[(&str, f64)], ips: f64, step: i64) -> Result<()> {
        let mut scalars: Vec<(String, f32)> = metrics
            .iter()
            .filter(|(k, _)| *k != "nonfinite")
            .map(|(k, v)| (scalar_name(k), *v as f32))
            .collect();
        scalars.push(("train/images_per_sec".into(), ips as f32));
        let refs: Vec<(&str, f32)> = scalars.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        self.events.scalars(&refs, step)?;
        let mut values: Vec<(&str, f64)> = metrics
            .iter()
            .filter(|(k, _)| *k != "nonfinite")
            .copied()
            .collect();
        values.push(("images_per_sec", ips));
        self.log.log(step, &values)?;
        Ok(())
    }

    fn knn(&mut self, acc: f64, step: i64) -> Result<()> {
        self.events
            .scalars(&[("eval/knn_top_1_accuracy", acc as f32)], step)?;
        self.log.log(step, &[("knn_top_1_accuracy", acc)])?;
        Ok(())
    }
}

/// A host array as a checkpoint tensor (f32, i64 or i32: a checkpoint
/// never holds bf16, whatever precision the run computes in).
///
/// # Errors
/// [`Error::Mismatch`] for another element type.
pub fn to_ckpt(a: &HostArray) -> Result<ckpt::Tensor> {
    let dtype = match a.element_type {
        ElementType::F32 => ckpt::DType::F32,
        ElementType::S64 => ckpt::DType::I64,
        ElementType::S32 => ckpt::DType::I32,
        other => {
            return Err(Error::Mismatch(format!(
                "cannot checkpoint an array of {other}"
            )))
        }
    };
    let dims = a.dims.iter().map(|&d| d as u64).collect();
    Ok(ckpt::Tensor::new(dtype, dims, a.bytes.clone())?)
}

/// A checkpoint tensor as a host array (f32, i64 or i32).
///
/// # Errors
/// [`Error::Mismatch`] for another dtype.
pub fn from_ckpt(name: &str, t: &ckpt::Tensor) -> Result<HostArray> {
    let ty = match t.dtype {
        ckpt::DType::F32 => ElementType::F32,
        ckpt::DType::I64 => ElementType::S64,
        ckpt::DType::I32 => ElementType::S32,
        other => {
            return Err(Error::Mismatch(format!(
                "checkpoint tensor {name} has dtype {}, expected f32 or i64",
                other.name()
            )))
        }
    };
    let dims: Vec<i64> = t.dims.iter().map(|&d| d as i64).collect();
    Ok(HostArray::from_bytes(ty, &dims, t.bytes.clone())?)
}

/// A training batch as the step's inputs: per local replica, the views
/// `[views·b, h, w, 3]` and the labels `[b]`.
pub fn step_inputs(batch: &Batch) -> Result<Vec<Vec<HostArray>>> {
    let mut out = Vec::new();
    step_inputs_into(batch, &mut out)?;
    Ok(out)
}

/// [`step_inputs`] into `out`, reusing the image buffers of the arrays it
/// holds from an earlier step (a step's images are megabytes; fresh ones
/// cost a page fault per 4 KiB on the thread that feeds the devices).
pub fn step_inputs_into(batch: &Batch, out: &mut Vec<Vec<HostArray>>) -> Result<()> {
    let mut spare: Vec<Vec<u8>> = out
        .drain(..)
        .filter_map(|list| list.into_iter().next().map(|a| a.bytes))
        .collect();
    spare.reverse();
    *out = batch
        .replicas
        .iter()
        .map(|rb| {
            let reuse = spare.pop().unwrap_or_default();
            let dims = [
                (rb.num_views * rb.batch) as i64,
                rb.height as i64,
                rb.width as i64,
                3,
            ];
            let images = if rb.images_u8.is_empty() {
                HostArray::from_f32_reusing(&dims, &rb.images, reuse)?
            } else {
                HostArray::from_u8_reusing(&dims, &rb.images_u8, reuse)?
            };
            let mut list = vec![images, HostArray::from_s32(&[rb.batch as i64], &rb.labels)?];
            if !rb.augment_params.is_empty() {
                // Augmentation on the device: its parameters, then the blur filters.
                list.push(HostArray::from_f32(
                    &[dims[0], augment::DEVICE_PARAMS as i64],
                    &rb.augment_params,
                )?);
                if !rb.blur_filters.is_empty() {
                    let views = rb.num_views as i64;
                    list.push(HostArray::from_f32(
                        &[views, rb.blur_filters.len() as i64 / views.max(1)],
                        &rb.blur_filters,
                    )?);
                }
            }
            Ok(list)
        })
        .collect::<Result<_>>()?;
    Ok(())
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

fn scalar_name(k: &str) -> String {
    match k {
        "learning_rate" => "learning_rate".into(),
        other => format!("train/{other}"),
    }
}

/// `1h02m`, `3m07s`, `42s`.
pub fn fmt_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}
