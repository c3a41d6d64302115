//! The host input pipeline (SIMCLR.md §2.1): example order, augmentation on
//! worker threads with bounded prefetch, per-replica sharding, padded eval
//! batches.
//!
//! Owns the order in which examples are seen and how they are grouped:
//! * training: a TF-style shuffle buffer per epoch (buffer = global batch × 50
//!   when `image_size <= 32`, × 10 otherwise), repeated forever, batches that
//!   run across epoch boundaries, the remainder never dropped because the
//!   stream is infinite;
//! * evaluation: dataset order, no repeat, the last batch padded with zero
//!   images whose `mask` entry is 0 (TF1's weights), so every example is
//!   counted exactly once;
//! * sharding: the global batch of step `t` is split into `R` contiguous
//!   per-replica batches of `n = B / R` examples;
//! * parallelism: each per-replica batch is cut into chunks of
//!   `examples_per_task` examples; worker threads take chunks in step order,
//!   at most `prefetch` steps ahead of the consumer, and write them straight
//!   into the step's buffers, so one large step is spread over all threads.
//!
//! Every random decision is keyed by the seed and the example's coordinates
//! (see [`super::rng`]), so the global batch of a step is identical whatever
//! the number of worker threads or replicas. The only exception is the
//! optional host-side blur: its σ is shared by one view of one *per-replica*
//! batch (§2.5), so with blur on the images depend on `R` as in the original.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use super::augment::{self, AugmentConfig, DeviceTransfer};
use super::rng::{stream, Rng};
use super::{Dataset, Error};

/// Configuration of a [`Pipeline`].
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// Global batch size `B` (`--train_batch_size` or `--eval_batch_size`).
    pub global_batch: usize,
    /// Number of replicas `R`; `B` must be divisible by `R`.
    pub num_replicas: usize,
    /// The replicas this process feeds in a job of several processes
    /// (`None`: all of them). Each batch then holds only these replicas'
    /// shares, and they are the same examples and augmentations that a
    /// single process would give those replicas: the global batch of a step
    /// does not depend on how many processes build it.
    pub local_replicas: Option<std::ops::Range<usize>>,
    /// Views per example: 2 for pretraining, 1 for fine-tuning / eval.
    pub num_views: usize,
    /// Training (shuffle, repeat, random augmentation) or evaluation
    /// (dataset order, one pass, padded, deterministic preprocessing).
    pub train: bool,
    /// Per-view preprocessing options.
    pub augment: AugmentConfig,
    /// Seed of every random stream.
    pub seed: u64,
    /// Shuffle buffer size; `None` picks §2.1's rule.
    pub shuffle_buffer: Option<usize>,
    /// Worker threads (at least 1).
    pub num_workers: usize,
    /// Global batches prepared ahead of the consumer (at least 1). Each
    /// holds `B · views · H · W · 3` floats, so keep this small for large
    /// images.
    pub prefetch: usize,
    /// Examples one worker task augments (a chunk of a per-replica batch);
    /// smaller chunks spread one step over more threads.
    pub examples_per_task: usize,
    /// Apply `batch_random_blur` on the host (pretraining with `--use_blur`):
    /// one σ per view per per-replica batch, each image blurred with
    /// p = 0.5, then clipped (§2.5).
    pub blur: bool,
    /// Augment on the device (`--augment_on_device`, training only): the
    /// workers crop and resize, draw every other random decision into
    /// [`ReplicaBatch::augment_params`] (and the blur filters into
    /// [`ReplicaBatch::blur_filters`]) and leave the rest to the step.
    pub device_augment: Option<DeviceTransfer>,
}

impl PipelineConfig {
    /// Pretraining defaults: 2 views, training order, colour strength `s`.
    pub fn pretrain(
        global_batch: usize,
        num_replicas: usize,
        image_size: usize,
        strength: f32,
        seed: u64,
    ) -> Self {
        PipelineConfig {
            global_batch,
            num_replicas,
            local_replicas: None,
            num_views: 2,
            train: true,
            augment: AugmentConfig::pretrain(image_size, strength),
            seed,
            shuffle_buffer: None,
            num_workers: default_workers(),
            prefetch: 2,
            examples_per_task: 32,
            blur: false,
            device_augment: None,
        }
    }

    /// Fine-tuning / linear-eval training defaults: 1 view, training order,
    /// crop + flip only (§2.2).
    pub fn finetune(
        global_batch: usize,
        num_replicas: usize,
        image_size: usize,
        seed: u64,
    ) -> Self {
        PipelineConfig {
            num_views: 1,
            augment: AugmentConfig::finetune(image_size),
            ..Self::pretrain(global_batch, num_replicas, image_size, 1.0, seed)
        }
    }

    /// Evaluation defaults: 1 view, dataset order, padded last batch.
    pub fn eval(global_batch: usize, num_replicas: usize, image_size: usize) -> Self {
        PipelineConfig {
            global_batch,
            num_replicas,
            local_replicas: None,
            num_views: 1,
            train: false,
            augment: AugmentConfig::finetune(image_size),
            seed: 0,
            shuffle_buffer: None,
            num_workers: default_workers(),
            prefetch: 2,
            examples_per_task: 32,
            blur: false,
            device_augment: None,
        }
    }

    /// The shuffle buffer size in use (§2.1).
    pub fn shuffle_buffer_size(&self) -> usize {
        self.shuffle_buffer
            .unwrap_or(if self.augment.image_size <= 32 {
                self.global_batch * 50
            } else {
                self.global_batch * 10
            })
    }

    /// The replicas this pipeline builds batches for.
    pub fn replica_range(&self) -> std::ops::Range<usize> {
        self.local_replicas.clone().unwrap_or(0..self.num_replicas)
    }

    /// Per-replica batch `n = B / R`.
    pub fn per_replica_batch(&self) -> usize {
        self.global_batch / self.num_replicas.max(1)
    }

    fn validate(&self) -> Result<(), Error> {
        if self.global_batch == 0 {
            return Err(Error::Config("batch size must be positive".into()));
        }
        if self.num_replicas == 0 || self.global_batch % self.num_replicas != 0 {
            return Err(Error::Config(format!(
                "global batch {} is not divisible by {} replicas; choose a batch size that is a multiple of the replica count",
                self.global_batch, self.num_replicas
            )));
        }
        if self.num_views == 0 {
            return Err(Error::Config("num_views must be at least 1".into()));
        }
        if let Some(r) = &self.local_replicas {
            if r.is_empty() || r.end > self.num_replicas {
                return Err(Error::Config(format!(
                    "local replicas {r:?} are not a part of the {} replicas",
                    self.num_replicas
                )));
            }
        }
        if self.device_augment.is_some() && !self.train {
            return Err(Error::Config(
                "augmentation on the device applies to training batches only".into(),
            ));
        }
        self.augment.validate()
    }
}

fn default_workers() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// One replica's share of a step: images `[num_views, batch, H, W, 3]` in
/// [0, 1], labels `[batch]`, mask `[batch]` (1 = real example, 0 = padding).
#[derive(Debug, Clone, PartialEq)]
pub struct ReplicaBatch {
    /// `num_views * batch * height * width * 3` floats, view-major. With
    /// augmentation on the device: the resized views before the colour
    /// operations (empty with the `uint8` transfer).
    pub images: Vec<f32>,
    /// The resized views as bytes (`uint8` transfer to a device that
    /// augments; empty otherwise).
    pub images_u8: Vec<u8>,
    /// With augmentation on the device: `[num_views * batch, DEVICE_PARAMS]`
    /// (see [`augment::DEVICE_PARAMS`]); empty otherwise.
    pub augment_params: Vec<f32>,
    /// With augmentation on the device and blur: each view's blur filter,
    /// `[num_views, K]`; empty otherwise.
    pub blur_filters: Vec<f32>,
    /// Class indices, `[batch]`; 0 for padding.
    pub labels: Vec<i32>,
    /// 1.0 for real examples, 0.0 for padding (only eval batches pad).
    pub mask: Vec<f32>,
    /// Dataset index of every example (`usize::MAX` for padding).
    pub indices: Vec<usize>,
    /// Number of views.
    pub num_views: usize,
    /// Examples in this replica batch (`n`).
    pub batch: usize,
    /// Image height.
    pub height: usize,
    /// Image width.
    pub width: usize,
}

impl ReplicaBatch {
    /// Shape of `images`: `[num_views, batch, height, width, 3]`.
    pub fn image_shape(&self) -> [usize; 5] {
        [self.num_views, self.batch, self.height, self.width, 3]
    }

    /// The images of view `v`, `[batch, H, W, 3]`.
    pub fn view(&self, v: usize) -> &[f32] {
        let per = self.batch * self.height * self.width * 3;
        &self.images[v * per..(v + 1) * per]
    }
}

/// One global step's input: the per-replica batches in replica order.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// Step (batch) number, from 0.
    pub step: u64,
    /// Replica batches, `replicas[r]` for replica `r`.
    pub replicas: Vec<ReplicaBatch>,
}

impl Batch {
    /// Number of real (unpadded) examples in the whole batch.
    pub fn num_real(&self) -> usize {
        self.replicas
            .iter()
            .map(|r| r.mask.iter().filter(|&&m| m > 0.0).count())
            .sum()
    }
}

/// Throughput figures of a pipeline.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PipelineStats {
    /// Augmented images produced (examples × views), padding excluded.
    pub images: u64,
    /// Seconds since the pipeline started.
    pub elapsed_s: f64,
    /// `images / elapsed_s`.
    pub images_per_s: f64,
    /// Seconds the consumer spent blocked in [`Pipeline::next_batch`]
    /// (non-zero means the step was starved).
    pub consumer_wait_s: f64,
    /// Worker threads.
    pub workers: usize,
    /// Seconds the workers spent building batches, summed over workers.
    pub busy_s: f64,
    /// The pipeline's own rate: images per second of work times the
    /// workers, i.e. what it would deliver if never held back by the
    /// consumer (`images · workers / busy_s`).
    pub capacity_images_per_s: f64,
}

/// Example order for training: per-epoch shuffle-buffer permutations, cached.
struct Order {
    n: usize,
    buffer: usize,
    seed: u64,
    cache: Mutex<HashMap<u64, Arc<Vec<usize>>>>,
}

impl Order {
    fn epoch(&self, epoch: u64) -> Arc<Vec<usize>> {
        let mut c = match self.cache.lock() {
            Ok(c) => c,
            Err(p) => p.into_inner(),
        };
        if let Some(v) = c.get(&epoch) {
            return v.clone();
        }
        let v = Arc::new(shuffle_buffer_order(self.n, self.buffer, self.seed, epoch));
        // Keep only a few epochs around.
        if c.len() > 4 {
            let oldest = *c.keys().min().unwrap_or(&0);
            c.remove(&oldest);
        }
        c.insert(epoch, v.clone());
        v
    }
}

/// The order in which `tf.data.Dataset.shuffle(buffer)` emits `0..n` for one
/// epoch: fill a buffer with the first `buffer` elements, then repeatedly emit
/// a uniformly chosen buffer slot and refill it with the next input element.
/// Deterministic in `(seed, epoch)`.
pub fn shuffle_buffer_order(n: usize, buffer: usize, seed: u64, epoch: u64) -> Vec<usize> {
    let mut rng = Rng::new(seed, &[stream::SHUFFLE, epoch]);
    let k = buffer.max(1).min(n.max(1));
    let mut buf: Vec<usize> = (0..k.min(n)).collect();
    let mut next = buf.len();
    let mut out = Vec::with_capacity(n);
    while !buf.is_empty() {
        let j = rng.below(buf.len() as u64) as usize;
        out.push(buf[j]);
        if next < n {
            buf[j] = next;
            next += 1;
        } else {
            buf.swap_remove(j);
        }
    }
    out
}

/// The per-step buffers that workers fill chunk by chunk.
struct StepBuf {
    replicas: Vec<Mutex<ReplicaBatch>>,
    remaining: AtomicUsize,
    error: Mutex<Option<Error>>,
}

struct Shared {
    dataset: Arc<dyn Dataset>,
    cfg: PipelineConfig,
    order: Option<Order>,
    total_steps: Option<u64>,
    first_step: u64,
    chunk: usize,
    chunks_per_replica: usize,
    images: AtomicU64,
    /// Nanoseconds the workers spent building chunks.
    busy_ns: AtomicU64,
    steps: Mutex<HashMap<u64, Arc<StepBuf>>>,
    /// Image buffers of consumed batches handed back with
    /// [`Pipeline::recycle`], reused by later steps: a step's images are
    /// megabytes, and fresh ones cost a page fault per 4 KiB.
    pool: Mutex<BufferPool>,
}

/// Replica image buffers waiting to be reused (every one of a pipeline has
/// the same length, and every element is written again before it is read).
#[derive(Default)]
struct BufferPool {
    f32s: Vec<Vec<f32>>,
    u8s: Vec<Vec<u8>>,
    /// At most this many of each kind are kept.
    cap: usize,
}

/// A worker's reusable chunk buffer (`[views, len, H, W, 3]`).
#[derive(Default)]
struct ChunkBufs {
    images: Vec<f32>,
}

impl Shared {
    fn units_per_step(&self) -> u64 {
        (self.cfg.replica_range().len() * self.chunks_per_replica) as u64
    }

    /// (dataset index, epoch) of slot `i` of global batch `step`; `None`
    /// marks padding.
    fn slot(&self, step: u64, i: usize) -> Option<(usize, u64)> {
        let b = self.cfg.global_batch as u64;
        let n = self.dataset.len() as u64;
        let p = step * b + i as u64;
        match &self.order {
            Some(order) => {
                let epoch = p / n;
                let perm = order.epoch(epoch);
                Some((perm[(p % n) as usize], epoch))
            }
            None => (p < n).then_some((p as usize, 0)),
        }
    }

    fn new_step_buf(&self) -> StepBuf {
        let cfg = &self.cfg;
        let size = cfg.augment.image_size;
        let nr = cfg.per_replica_batch();
        let replicas = cfg
            .replica_range()
            .map(|_| {
                let n_img = cfg.num_views * nr * size * size * 3;
                let (f, b) = match cfg.device_augment {
                    Some(DeviceTransfer::U8) => (0, n_img),
                    _ => (n_img, 0),
                };
                let params = if cfg.device_augment.is_some() {
                    cfg.num_views * nr * augment::DEVICE_PARAMS
                } else {
                    0
                };
                let (images, images_u8) = {
                    let mut pool = lock(&self.pool);
                    let images = pool.f32s.pop().filter(|v| v.len() == f);
                    let images_u8 = pool.u8s.pop().filter(|v| v.len() == b);
                    (
                        images.unwrap_or_else(|| vec![0f32; f]),
                        images_u8.unwrap_or_else(|| vec![0u8; b]),
                    )
                };
                Mutex::new(ReplicaBatch {
                    images,
                    images_u8,
                    augment_params: vec![0f32; params],
                    blur_filters: Vec::new(),
                    labels: vec![0; nr],
                    mask: vec![0.0; nr],
                    indices: vec![usize::MAX; nr],
                    num_views: cfg.num_views,
                    batch: nr,
                    height: size,
                    width: size,
                })
            })
            .collect();
        StepBuf {
            replicas,
            remaining: AtomicUsize::new(self.units_per_step() as usize),
            error: Mutex::new(None),
        }
    }

    fn step_buf(&self, step: u64) -> Arc<StepBuf> {
        let mut m = lock(&self.steps);
        m.entry(step)
            .or_insert_with(|| Arc::new(self.new_step_buf()))
            .clone()
    }

    /// Augments examples `range` of replica `r`'s batch of `step` into the
    /// worker's buffer `[views, len, H, W, 3]` (`bufs.images`), and returns
    /// labels and indices.
    fn build_chunk(
        &self,
        step: u64,
        r: usize,
        range: std::ops::Range<usize>,
        bufs: &mut ChunkBufs,
    ) -> Result<Chunk, Error> {
        let cfg = &self.cfg;
        let size = cfg.augment.image_size;
        let per_img = size * size * 3;
        let nr = cfg.per_replica_batch();
        let len = range.len();
        let images = &mut bufs.images;
        images.resize(cfg.num_views * len * per_img, 0.0);
        let mut labels = vec![0i32; len];
        let mut indices = vec![usize::MAX; len];
        let blur_filters: Vec<Vec<f32>> = if cfg.blur && cfg.train {
            (0..cfg.num_views)
                .map(|v| {
                    let sigma = Rng::new(cfg.seed, &[stream::BLUR, step, r as u64, v as u64])
                        .uniform(0.1, 2.0);
                    augment::blur_filter(augment::blur_kernel_size(size), sigma)
                })
                .collect()
        } else {
            Vec::new()
        };
        let device = cfg.device_augment.is_some() && cfg.train;
        let np = augment::DEVICE_PARAMS;
        let mut params = if device {
            vec![0f32; cfg.num_views * len * np]
        } else {
            Vec::new()
        };
        let mut scratch = if blur_filters.is_empty() || device {
            Vec::new()
        } else {
            vec![0f32; per_img]
        };
        let mut produced = 0u64;
        for (j, i) in range.enumerate() {
            let Some((idx, epoch)) = self.slot(step, r * nr + i) else {
                // Padding: zero images (the buffer holds an earlier chunk).
                for v in 0..cfg.num_views {
                    images[(v * len + j) * per_img..(v * len + j + 1) * per_img].fill(0.0);
                }
                continue;
            };
            let ex = self.dataset.get(idx)?;
            labels[j] = ex.label;
            indices[j] = idx;
            let eval_img = if cfg.train {
                None
            } else {
                Some(
                    augment::preprocess_for_eval(&ex.image, &cfg.augment)
                        .map_err(|e| with_example(e, &*self.dataset, idx))?,
                )
            };
            for v in 0..cfg.num_views {
                let out = &mut images[(v * len + j) * per_img..(v * len + j + 1) * per_img];
                match &eval_img {
                    Some(img) => out.copy_from_slice(&img.data),
                    None => {
                        let mut rng =
                            Rng::new(cfg.seed, &[stream::AUGMENT, epoch, idx as u64, v as u64]);
                        if device {
                            let p = &mut params[(v * len + j) * np..(v * len + j + 1) * np];
                            augment::preprocess_for_device_into(
                                &ex.image,
                                &cfg.augment,
                                &mut rng,
                                out,
                                p,
                            )
                        } else {
                            augment::preprocess_for_train_into(
                                &ex.image,
                                &cfg.augment,
                                &mut rng,
                                out,
                            )
                        }
                        .map_err(|e| with_example(e, &*self.dataset, idx))?;
                    }
                }
                if let Some(filter) = blur_filters.get(v) {
                    let keep = Rng::new(
                        cfg.seed,
                        &[stream::BLUR, step, r as u64, v as u64, i as u64],
                    )
                    .bernoulli(0.5);
                    if device {
                        params[(v * len + j) * np + 10] = if keep { 1.0 } else { 0.0 };
                    } else {
                        augment::blur_one_of_batch(out, size, size, filter, keep, &mut scratch);
                    }
                }
            }
            produced += cfg.num_views as u64;
        }
        self.images.fetch_add(produced, Ordering::Relaxed);
        Ok(Chunk {
            params,
            filters: if device {
                blur_filters.concat()
            } else {
                Vec::new()
            },
            labels,
            indices,
        })
    }

    /// Runs work unit `unit`; returns the step when this unit completed it.
    fn run_unit(&self, unit: u64, bufs: &mut ChunkBufs) -> Option<(u64, Arc<StepBuf>)> {
        let ups = self.units_per_step();
        let step = self.first_step + unit / ups;
        let rem = (unit % ups) as usize;
        let (local, c) = (rem / self.chunks_per_replica, rem % self.chunks_per_replica);
        let r = self.cfg.replica_range().start + local;
        let nr = self.cfg.per_replica_batch();
        let range = (c * self.chunk).min(nr)..((c + 1) * self.chunk).min(nr);
        let buf = self.step_buf(step);
        let t0 = Instant::now();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.build_chunk(step, r, range.clone(), bufs)
        }))
        .unwrap_or_else(|_| {
            Err(Error::Pipeline(format!(
                "worker panicked while building step {step}"
            )))
        });
        self.busy_ns
            .fetch_add(t0.elapsed().as_nanos() as u64, Ordering::Relaxed);
        match result {
            Ok(chunk) => {
                let u8_transfer =
                    self.cfg.train && self.cfg.device_augment == Some(DeviceTransfer::U8);
                let Chunk {
                    params,
                    filters,
                    labels,
                    indices,
                } = chunk;
                let per_img = self.cfg.augment.image_size.pow(2) * 3;
                let np = augment::DEVICE_PARAMS;
                let len = range.len();
                let mut rb = lock(&buf.replicas[local]);
                for v in 0..self.cfg.num_views {
                    let dst = (v * nr + range.start) * per_img;
                    let src = v * len * per_img..(v + 1) * len * per_img;
                    if u8_transfer {
                        // Quantised straight into the batch: no second
                        // buffer, one pass.
                        for (q, &v) in rb.images_u8[dst..dst + len * per_img]
                            .iter_mut()
                            .zip(&bufs.images[src])
                        {
                            *q = augment::quantize_u8(v);
                        }
                    } else {
                        rb.images[dst..dst + len * per_img].copy_from_slice(&bufs.images[src]);
                    }
                    if !params.is_empty() {
                        let dst = (v * nr + range.start) * np;
                        rb.augment_params[dst..dst + len * np]
                            .copy_from_slice(&params[v * len * np..(v + 1) * len * np]);
                    }
                }
                if !filters.is_empty() {
                    rb.blur_filters = filters;
                }
                for (j, i) in range.clone().enumerate() {
                    rb.labels[i] = labels[j];
                    rb.indices[i] = indices[j];
                    rb.mask[i] = if indices[j] == usize::MAX { 0.0 } else { 1.0 };
                }
            }
            Err(e) => {
                lock(&buf.error).get_or_insert(e);
            }
        }
        if buf.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            lock(&self.steps).remove(&step);
            Some((step, buf))
        } else {
            None
        }
    }
}

/// What one worker task produced besides its images: `[views, len, …]` per
/// view.
struct Chunk {
    params: Vec<f32>,
    filters: Vec<f32>,
    labels: Vec<i32>,
    indices: Vec<usize>,
}

fn finish(step: u64, buf: Arc<StepBuf>) -> Result<Batch, Error> {
    let buf = Arc::try_unwrap(buf)
        .map_err(|_| Error::Pipeline(format!("step {step} still referenced after completion")))?;
    if let Some(e) = buf.error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    let replicas = buf
        .replicas
        .into_iter()
        .map(|m| m.into_inner().unwrap_or_else(|p| p.into_inner()))
        .collect();
    Ok(Batch { step, replicas })
}

fn with_example(e: Error, ds: &dyn Dataset, idx: usize) -> Error {
    match e {
        Error::Config(m) => Error::Config(format!("{} example {idx}: {m}", ds.describe())),
        other => other,
    }
}

struct Control {
    next_unit: u64,
    consumed: u64,
    stop: bool,
}

type Done = (u64, Arc<StepBuf>);

/// A running input pipeline: worker threads augment chunks of the global
/// batches ahead of the consumer (at most `prefetch` steps ahead), and
/// [`Pipeline::next_batch`] returns complete batches in step order.
pub struct Pipeline {
    shared: Arc<Shared>,
    control: Arc<(Mutex<Control>, Condvar)>,
    rx: Receiver<Done>,
    workers: Vec<JoinHandle<()>>,
    pending: BTreeMap<u64, Arc<StepBuf>>,
    next_out: u64,
    started: Instant,
    wait_s: f64,
    failed: bool,
}

impl Pipeline {
    /// Starts the workers.
    ///
    /// # Errors
    /// [`Error::Config`] for an invalid configuration or an empty dataset.
    pub fn new(dataset: Arc<dyn Dataset>, cfg: PipelineConfig) -> Result<Self, Error> {
        Self::starting_at(dataset, cfg, 0)
    }

    /// Starts the workers with the first batch being step `first_step`
    /// (to resume training where a checkpoint left off; the batches are the
    /// ones an uninterrupted run would have produced).
    ///
    /// # Errors
    /// As [`Pipeline::new`].
    pub fn starting_at(
        dataset: Arc<dyn Dataset>,
        cfg: PipelineConfig,
        first_step: u64,
    ) -> Result<Self, Error> {
        cfg.validate()?;
        if dataset.is_empty() {
            return Err(Error::Config(format!(
                "dataset {} is empty",
                dataset.describe()
            )));
        }
        let n = dataset.len();
        let order = cfg.train.then(|| Order {
            n,
            buffer: cfg.shuffle_buffer_size(),
            seed: cfg.seed,
            cache: Mutex::new(HashMap::new()),
        });
        let total_steps = (!cfg.train).then(|| n.div_ceil(cfg.global_batch) as u64);
        let workers_n = cfg.num_workers.max(1);
        let prefetch = cfg.prefetch.max(1) as u64;
        let nr = cfg.per_replica_batch();
        let replicas = cfg.replica_range().len();
        let chunk = cfg.examples_per_task.clamp(1, nr);
        let chunks_per_replica = nr.div_ceil(chunk);
        let shared = Arc::new(Shared {
            dataset,
            cfg,
            order,
            total_steps,
            first_step,
            chunk,
            chunks_per_replica,
            images: AtomicU64::new(0),
            busy_ns: AtomicU64::new(0),
            steps: Mutex::new(HashMap::new()),
            pool: Mutex::new(BufferPool {
                cap: (prefetch as usize + 2) * replicas,
                ..BufferPool::default()
            }),
        });
        let control = Arc::new((
            Mutex::new(Control {
                next_unit: 0,
                consumed: first_step,
                stop: false,
            }),
            Condvar::new(),
        ));
        let (tx, rx) = channel::<Done>();
        let mut workers = Vec::with_capacity(workers_n);
        for w in 0..workers_n {
            let shared = shared.clone();
            let control = control.clone();
            let tx = tx.clone();
            let h = std::thread::Builder::new()
                .name(format!("data-worker-{w}"))
                .spawn(move || worker_loop(&shared, &control, &tx, prefetch))
                .map_err(|e| Error::Pipeline(format!("cannot start worker thread: {e}")))?;
            workers.push(h);
        }
        Ok(Pipeline {
            shared,
            control,
            rx,
            workers,
            pending: BTreeMap::new(),
            next_out: first_step,
            started: Instant::now(),
            wait_s: 0.0,
            failed: false,
        })
    }

    /// Number of batches in one pass (eval), or `None` for the endless
    /// training stream.
    pub fn num_batches(&self) -> Option<u64> {
        self.shared.total_steps
    }

    /// Number of examples in the dataset.
    pub fn dataset_len(&self) -> usize {
        self.shared.dataset.len()
    }

    /// The next global batch in step order; `Ok(None)` after the last eval
    /// batch.
    ///
    /// # Errors
    /// The first reader or augmentation error of the step (naming the file),
    /// or [`Error::Pipeline`] when the workers are gone. After an error the
    /// pipeline is stopped and every later call fails.
    pub fn next_batch(&mut self) -> Result<Option<Batch>, Error> {
        if self.failed {
            return Err(Error::Pipeline(
                "an earlier batch failed; the pipeline is stopped".into(),
            ));
        }
        if let Some(t) = self.shared.total_steps {
            if self.next_out >= t {
                return Ok(None);
            }
        }
        let t0 = Instant::now();
        let res = loop {
            if let Some(b) = self.pending.remove(&self.next_out) {
                break finish(self.next_out, b);
            }
            match self.rx.recv() {
                Ok((s, b)) => {
                    self.pending.insert(s, b);
                }
                Err(_) => break Err(Error::Pipeline("all worker threads exited".into())),
            }
        };
        self.wait_s += t0.elapsed().as_secs_f64();
        self.next_out += 1;
        {
            let (m, cv) = &*self.control;
            let mut c = lock(m);
            c.consumed = self.next_out;
            cv.notify_all();
        }
        match res {
            Ok(b) => Ok(Some(b)),
            Err(e) => {
                self.failed = true;
                self.shutdown();
                Err(e)
            }
        }
    }

    /// Hands a consumed batch back so that its image buffers are reused by a
    /// later step instead of being allocated again (optional: a batch that
    /// is simply dropped is freed).
    pub fn recycle(&self, batch: Batch) {
        let mut pool = lock(&self.shared.pool);
        for rb in batch.replicas {
            if !rb.images.is_empty() && pool.f32s.len() < pool.cap {
                pool.f32s.push(rb.images);
            }
            if !rb.images_u8.is_empty() && pool.u8s.len() < pool.cap {
                pool.u8s.push(rb.images_u8);
            }
        }
    }

    /// Throughput so far.
    pub fn stats(&self) -> PipelineStats {
        let images = self.shared.images.load(Ordering::Relaxed);
        let busy_s = self.shared.busy_ns.load(Ordering::Relaxed) as f64 * 1e-9;
        let elapsed_s = self.started.elapsed().as_secs_f64();
        PipelineStats {
            images,
            elapsed_s,
            images_per_s: if elapsed_s > 0.0 {
                images as f64 / elapsed_s
            } else {
                0.0
            },
            consumer_wait_s: self.wait_s,
            workers: self.workers.len().max(1),
            busy_s,
            capacity_images_per_s: if busy_s > 0.0 {
                images as f64 * self.workers.len().max(1) as f64 / busy_s
            } else {
                0.0
            },
        }
    }

    fn shutdown(&mut self) {
        {
            let (m, cv) = &*self.control;
            let mut c = lock(m);
            c.stop = true;
            cv.notify_all();
        }
        for h in self.workers.drain(..) {
            let _ = h.join();
        }
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl Iterator for Pipeline {
    type Item = Result<Batch, Error>;
    fn next(&mut self) -> Option<Self::Item> {
        self.next_batch().transpose()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

fn worker_loop(
    shared: &Shared,
    control: &(Mutex<Control>, Condvar),
    tx: &Sender<Done>,
    prefetch: u64,
) {
    let ups = shared.units_per_step();
    let mut bufs = ChunkBufs::default();
    loop {
        let unit = {
            let (m, cv) = control;
            let mut c = lock(m);
            loop {
                if c.stop {
                    return;
                }
                let step = shared.first_step + c.next_unit / ups;
                if let Some(t) = shared.total_steps {
                    if step >= t {
                        return;
                    }
                }
                if step < c.consumed + prefetch {
                    break;
                }
                c = match cv.wait(c) {
                    Ok(g) => g,
                    Err(p) => p.into_inner(),
                };
            }
            let u = c.next_unit;
            c.next_unit += 1;
            u
        };
        if let Some(done) = shared.run_unit(unit, &mut bufs) {
            if tx.send(done).is_err() {
                return;
            }
        }
    }
}
