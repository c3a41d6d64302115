//! `simclr probe`: a quick linear evaluation of a pretrained network.
//! Extracts the backbone feature (`final_avg_pool`, eval preprocessing) of
//! the first examples of the train and eval splits, fits a multinomial
//! logistic regression on the train features and reports its top-1
//! accuracy on the eval features, next to a k-NN accuracy. With
//! `--random_init` the same architecture is evaluated at its random
//! initialisation, the baseline a pretrained network must beat.
//!
//! The original's linear evaluation (`simclr run --train_mode=finetune
//! --fine_tune_after_block=4`) trains the head with augmentations for 90+
//! epochs; this probe is the minutes-scale version for CPU runs.

use super::flags::RunFlags;
use crate::ckpt;
use crate::data::{self, Dataset};
use crate::storage::{self, Location};
use crate::train::{probe, HostState};
use anyhow::{anyhow, Context, Result};
use std::path::PathBuf;
use std::sync::Arc;

/// Arguments of `simclr probe`.
#[derive(Debug, clap::Args)]
#[command(rename_all = "snake_case")]
pub struct ProbeArgs {
    /// The run's `model_dir` (local or a bucket prefix): its `flags.json`
    /// gives the architecture and dataset, its newest checkpoint the weights.
    #[arg(long)]
    pub model_dir: PathBuf,
    /// Evaluate the network at its random initialisation instead.
    #[arg(long)]
    pub random_init: bool,
    /// Training examples for the probe (the first ones of the train split).
    #[arg(long, default_value_t = 10_000)]
    pub train_examples: usize,
    /// Eval examples (the first ones of the eval split; 0: all).
    #[arg(long, default_value_t = 0)]
    pub eval_examples: usize,
    /// Override `--data_dir` of the run.
    #[arg(long)]
    pub data_dir: Option<String>,
    /// Override `--pjrt_plugin` of the run.
    #[arg(long)]
    pub pjrt_plugin: Option<String>,
    /// Write the accuracies as JSON to this file (local or a bucket object).
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Arithmetic of the feature extractor, float32 or bfloat16 (default:
    /// the run's `--precision`).
    #[arg(long, value_parser = super::bench::parse_precision)]
    pub precision: Option<crate::nn::Precision>,
}

fn flags_from_json(v: &serde_json::Value) -> Result<RunFlags> {
    let obj = v
        .as_object()
        .ok_or_else(|| anyhow!("flags.json is not an object"))?;
    let args: Vec<String> = obj
        .iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => format!("--{k}={s}"),
            other => format!("--{k}={other}"),
        })
        .collect();
    RunFlags::parse(&args).map_err(|e| anyhow!("flags.json: {e}"))
}

fn subset(ds: &dyn Dataset, n: usize, name: &str) -> Result<Arc<dyn Dataset>> {
    let n = if n == 0 { ds.len() } else { n.min(ds.len()) };
    let examples = (0..n).map(|i| ds.get(i)).collect::<Result<Vec<_>, _>>()?;
    Ok(Arc::new(data::InMemory::new(
        examples,
        ds.num_classes(),
        name,
    )?))
}

/// Runs `simclr probe`.
pub fn run(args: &ProbeArgs) -> Result<()> {
    let path = Location::from_path(&args.model_dir)?.join("flags.json");
    let text = storage::read_to_string(&path)
        .with_context(|| format!("cannot read {path}; pass the model_dir of a `simclr run`"))?;
    let mut flags = flags_from_json(
        &serde_json::from_str(&text).with_context(|| format!("{path} is not JSON"))?,
    )?;
    if let Some(d) = &args.data_dir {
        flags.data_dir = Some(d.clone());
    }
    if let Some(p) = &args.pjrt_plugin {
        flags.pjrt_plugin = Some(p.clone());
    }
    if let Some(p) = args.precision {
        flags.precision = p.name().to_string();
    }
    flags.model_dir = Some(args.model_dir.display().to_string());
    let seed = flags.seed as u64;
    let (train_split, eval_split) = (flags.train_split.clone(), flags.eval_split.clone());
    let run = super::run::trainer(flags)?;
    let compiled = run.eval_compiled()?;
    let mut overrides = HostState::new();
    let label = if args.random_init {
        format!("random initialisation (seed {seed})")
    } else {
        let latest = ckpt::native::latest(&args.model_dir)?.ok_or_else(|| {
            anyhow!(
                "{} holds no checkpoint; train first or pass --random_init",
                args.model_dir.display()
            )
        })?;
        let c = latest.load()?;
        for (name, t) in &c.tensors {
            overrides.insert(name.clone(), crate::train::from_ckpt(name, t)?);
        }
        format!("{} (step {})", latest.path.display(), latest.step)
    };
    let state = compiled.init_state(run.client(), seed, &overrides)?;
    let train_ds = run.open_split(&train_split)?;
    let eval_ds = run.open_split(&eval_split)?;
    let train = subset(train_ds.as_ref(), args.train_examples, "probe train")?;
    let eval = subset(eval_ds.as_ref(), args.eval_examples, "probe eval")?;
    eprintln!(
        "simclr probe: features of {} train and {} eval examples from {label}",
        train.len(),
        eval.len()
    );
    let (xf, _, xl) = run.extract_features(&compiled, &state, train.clone())?;
    let (qf, _, ql) = run.extract_features(&compiled, &state, eval)?;
    let d = xf.len() / xl.len().max(1);
    let classes = train.num_classes();
    let knn = probe::knn_accuracy((&xf, &xl), (&qf, &ql), d, 200, classes, 0.07);
    let lin = probe::fit_linear_probe(&xf, &xl, d, classes, 1e-4, 300);
    let linear = lin.accuracy(&qf, &ql);
    let train_acc = lin.accuracy(&xf, &xl);
    println!(
        "linear-probe top-1 {linear:.4} (train {train_acc:.4})  k-NN top-1 {knn:.4}  [{label}]"
    );
    if let Some(p) = &args.json {
        let v = serde_json::json!({
            "weights": label,
            "linear_top_1_accuracy": linear,
            "linear_train_accuracy": train_acc,
            "knn_top_1_accuracy": knn,
            "train_examples": train.len(),
            "feature_dim": d,
        });
        storage::put(
            &Location::from_path(p)?,
            serde_json::to_string_pretty(&v)?.into_bytes(),
        )
        .with_context(|| format!("cannot write {}", p.display()))?;
    }
    Ok(())
}
