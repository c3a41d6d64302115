//! What a training or evaluation run needs, resolved from the flags by the
//! command line: the step program's configuration, where the data and the
//! run's files live, batch sizes, augmentation, checkpoint and summary
//! cadence, the starting checkpoint and the k-NN monitor.
//!
//! Not here: flag parsing (`cli::flags`) and the loop itself
//! ([`super::Trainer`]).

use crate::data::{self, augment::ResizeVersion, folder::BadImages, Dataset};
use crate::simclr::{DistillConfig, StepConfig};
use std::path::PathBuf;

/// Where the examples come from (`--dataset`, `--data_dir`, splits).
#[derive(Clone, Debug)]
pub struct DataSpec {
    /// `--dataset`: a dataset name or an image folder.
    pub dataset: String,
    /// `--data_dir`.
    pub data_dir: Option<PathBuf>,
    /// `--train_split`.
    pub train_split: String,
    /// `--eval_split`.
    pub eval_split: String,
    /// `--skip_bad_images`: skip undecodable images instead of failing.
    pub bad_images: BadImages,
    /// `--cache_dataset`: hold the decoded split in memory.
    pub cache: bool,
}

impl DataSpec {
    /// Opens `split`.
    ///
    /// # Errors
    /// The reader's error (missing folder, corrupt file, unknown split).
    pub fn open(&self, split: &str) -> Result<Box<dyn Dataset>, data::Error> {
        let ds = data::open_dataset(
            &self.dataset,
            self.data_dir.as_deref(),
            split,
            self.bad_images,
        )?;
        if self.cache {
            return Ok(Box::new(data::InMemory::cache(ds.as_ref())?));
        }
        Ok(ds)
    }
}

/// A checkpoint to initialise a fresh run from (`--checkpoint`), with the
/// variables to take from it.
#[derive(Clone, Debug)]
pub struct InitFrom {
    /// A TensorFlow or simclr checkpoint (file, prefix or `model_dir`).
    pub path: PathBuf,
    /// `--variable_schema`: a regular expression matched like `re.match`.
    pub variable_schema: String,
    /// `--zero_init_logits_layer`.
    pub zero_init_logits_layer: bool,
}

/// Everything the [`super::Trainer`] needs.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// The step program (model, mode, optimizer, schedule, replicas).
    pub step: StepConfig,
    /// `--model_dir`: checkpoints, summaries, results, exports.
    pub model_dir: PathBuf,
    /// The data.
    pub data: DataSpec,
    /// `--train_batch_size` (global).
    pub train_batch_size: usize,
    /// `--eval_batch_size` (global).
    pub eval_batch_size: usize,
    /// `--eval_steps` (`None`: the whole split).
    pub eval_steps: Option<u64>,
    /// `--image_size`.
    pub image_size: usize,
    /// `--color_jitter_strength`.
    pub color_jitter_strength: f32,
    /// `--use_blur`.
    pub use_blur: bool,
    /// `--resize`.
    pub resize: ResizeVersion,
    /// `--seed`: initial weights, data order and augmentations.
    pub seed: u64,
    /// Steps between checkpoints (from `--checkpoint_steps` or
    /// `--checkpoint_epochs`; at least 1).
    pub checkpoint_every: i64,
    /// `--keep_checkpoint_max`.
    pub keep_checkpoint_max: usize,
    /// `--keep_hub_module_max`.
    pub keep_hub_module_max: usize,
    /// `--train_summary_steps` (0: only at checkpoints).
    pub summary_every: i64,
    /// `--checkpoint`.
    pub init_from: Option<InitFrom>,
    /// `--knn_monitor` with `--knn_bank_size` (0: the whole training split);
    /// `None` when off.
    pub knn_bank_size: Option<usize>,
    /// `--fixed_batch`.
    pub fixed_batch: bool,
    /// `--overlap_steps`: upload the next batch while a step runs and read
    /// each step's metrics one step later (false: strictly one at a time).
    pub overlap_steps: bool,
    /// `--augment_on_device` with `--augment_transfer`: the step applies the
    /// colour jitter, grayscale, blur and flip drawn by the host (`None`:
    /// the host augments completely).
    pub augment_on_device: Option<data::augment::DeviceTransfer>,
    /// `--proj_head_mode` as given, recorded in exports.
    pub proj_head_mode: String,
    /// The flags as JSON, written to `flags.json` and into checkpoints.
    pub record: serde_json::Value,
    /// `--labeled_percent`: fine-tuning trains on that per-class subset of
    /// the training split ([`data::labelled_subset`]); distillation hides
    /// the other labels.
    pub labeled_percent: f64,
    /// `--train_mode=distill`: the teacher and the loss.
    pub distill: Option<Distillation>,
}

/// The teacher of a distillation run and its loss.
#[derive(Clone, Debug)]
pub struct Distillation {
    /// The loaded teacher (its variables go to the devices beside the
    /// student's; checkpoints record only where it came from).
    pub teacher: super::teacher::Teacher,
    /// Temperature, label weight and the teacher's network.
    pub config: DistillConfig,
}

impl RunConfig {
    /// The training split as a run reads it: the labelled subset when
    /// fine-tuning with `labeled_percent` < 100, else the whole split.
    ///
    /// # Errors
    /// The reader's errors.
    pub fn training_set(&self) -> Result<std::sync::Arc<dyn Dataset>, data::Error> {
        let ds: std::sync::Arc<dyn Dataset> =
            std::sync::Arc::from(self.data.open(&self.data.train_split)?);
        if self.step.train_mode != crate::simclr::TrainMode::Finetune
            || self.labeled_percent >= 100.0
        {
            return Ok(ds);
        }
        let idx = data::labelled_subset(ds.as_ref(), self.labeled_percent)?;
        let name = format!(
            "{}, {} % labelled subset",
            ds.describe(),
            self.labeled_percent
        );
        Ok(std::sync::Arc::new(data::Subset::new(ds, idx, &name)))
    }
}
