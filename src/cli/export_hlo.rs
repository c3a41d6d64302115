//! `simclr export_hlo --out DIR <flags of simclr run>`: traces every step
//! program the flags describe (pretrain, finetune or distill per
//! `--train_mode`, plus eval; the distillation step's teacher comes from
//! `--teacher_checkpoint`, else it is the student's own network with the
//! `--teacher_*` flags applied; with `--augment_on_device`, the training step
//! that applies the augmentation on the devices, as `simclr run` traces it),
//! compiles each with the chosen PJRT plugin and writes HLO
//! text, protos, XLA's optimized module, costs, memory and parameters (see
//! [`crate::inspect::export`]). Needs no data and trains nothing: a known
//! `--dataset` whose files are absent is sized from its standard split.
//! `--no_compile` skips XLA entirely.

use super::flags::RunFlags;
use super::run::{client_and_replicas, open, step_config};
use crate::inspect::fit::{self, DeviceSpec, NeedModel};
use crate::inspect::{self, ExportIndex, ProgramEntry, Target};
use crate::simclr::augment_device::{DeviceAugment, Transfer};
use crate::simclr::{
    distill_program, eval_program, train_program, train_program_augmented, DistillConfig,
    StepConfig, StepProgram, TrainMode,
};
use crate::storage::{self, Location};
use crate::train::default_compile_options;
use anyhow::{anyhow, bail, Context, Result};
use std::path::PathBuf;

/// Arguments of `simclr export_hlo`: `--out DIR`, `--no_compile`, and the
/// flags of `simclr run`.
#[derive(Debug, clap::Args)]
#[command(disable_help_flag = true)]
pub struct ExportArgs {
    /// `--out DIR [--no_compile]` and run.py flags, e.g. `--resnet_depth=18`.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

/// The parsed command line of `simclr export_hlo`.
#[derive(Debug)]
pub struct ExportCommand {
    /// Output folder.
    pub out: PathBuf,
    /// Skip XLA: unoptimized HLO, params and the analytic estimates only.
    pub no_compile: bool,
    /// `--verbose`: let the plugin's own log lines through.
    pub verbose: bool,
    /// `--device_memory=<bytes|name>`: the device to check the programs
    /// against (else the plugin's memory limit, where it has one).
    pub device_memory: Option<DeviceSpec>,
    /// The `simclr run` flags.
    pub flags: RunFlags,
}

const USAGE: &str =
    "usage: simclr export_hlo --out DIR [--no_compile] [--device_memory=<bytes|name>]\n\
       [--verbose] [flags of simclr run]\n\n\
Writes DIR/<program>/{module.hlo.txt,module.pb,optimized.hlo.txt,optimized.pb,cost.json,\n\
memory.json,params.tsv,params.json} for the train program (--train_mode) and the eval\n\
program, and DIR/index.json. DIR may be gs://bucket/prefix or s3://bucket/prefix (written\n\
locally first, then uploaded). `simclr run --help` lists the flags.\n\n\
--device_memory checks that one replica fits a device: bytes (16GiB, 80GB, 17179869184)\n\
or tpu_v3 (per core), tpu_v4, tpu_v5e, tpu_v5p, a100_40gb, a100_80gb, h100, h200.\n\
Without it the plugin's device memory limit is used where the plugin reports one.\n\
--verbose (or SIMCLR_XLA_LOGS=1) lets the plugin's own log lines through.\n";

impl ExportCommand {
    /// Parses the arguments (`--out` and `--no_compile` are taken out, the
    /// rest are `simclr run` flags).
    ///
    /// # Errors
    /// A missing `--out`, or bad flags (one line per problem).
    pub fn parse(args: &[String]) -> Result<ExportCommand> {
        let mut out = None;
        let mut no_compile = false;
        let mut device_memory = None;
        let mut verbose = false;
        let mut rest = Vec::new();
        let mut i = 0;
        while i < args.len() {
            let a = &args[i];
            i += 1;
            let body = a.trim_start_matches('-');
            if a.starts_with('-') && (body == "out" || body.starts_with("out=")) {
                match body.split_once('=') {
                    Some((_, v)) => out = Some(PathBuf::from(v)),
                    None => {
                        let v = args
                            .get(i)
                            .ok_or_else(|| anyhow!("--out needs a folder\n\n{USAGE}"))?;
                        i += 1;
                        out = Some(PathBuf::from(v));
                    }
                }
            } else if a.starts_with('-')
                && (body == "device_memory" || body.starts_with("device_memory="))
            {
                let v = match body.split_once('=') {
                    Some((_, v)) => v.to_string(),
                    None => {
                        let v = args.get(i).ok_or_else(|| {
                            anyhow!("--device_memory needs bytes or a device name\n\n{USAGE}")
                        })?;
                        i += 1;
                        v.clone()
                    }
                };
                device_memory = Some(fit::parse_device_memory(&v)?);
            } else if a.starts_with('-') && (body == "verbose" || body == "verbose=true") {
                verbose = true;
            } else if a.starts_with('-') && body == "verbose=false" {
                verbose = false;
            } else if a.starts_with('-') && (body == "no_compile" || body == "no_compile=true") {
                no_compile = true;
            } else if a.starts_with('-') && body == "no_compile=false" {
                no_compile = false;
            } else {
                rest.push(a.clone());
            }
        }
        let flags = RunFlags::parse(&rest).map_err(|e| anyhow!("{e}"))?;
        let out = out.ok_or_else(|| anyhow!("--out DIR is required\n\n{USAGE}"))?;
        Ok(ExportCommand {
            out,
            no_compile,
            verbose,
            device_memory,
            flags,
        })
    }
}

/// Standard train-split sizes of the known datasets: (examples, classes).
pub fn standard_size(dataset: &str) -> Option<(i64, u32)> {
    match dataset {
        "cifar10" => Some((50_000, 10)),
        "fashion_mnist" => Some((60_000, 10)),
        "imagenet2012" => Some((1_281_167, 1000)),
        "imagenet2012_subset/1pct" => Some((12_811, 1000)),
        "imagenet2012_subset/10pct" => Some((128_116, 1000)),
        _ => None,
    }
}

/// The training set's size and classes: read from the data when present,
/// else a known dataset's standard size. Returns a JSON description too.
fn dataset_size(flags: &RunFlags) -> Result<(i64, u32, serde_json::Value)> {
    // Only the size is needed: never load the examples.
    let flags = &RunFlags {
        cache_dataset: false,
        ..flags.clone()
    };
    match open(flags, &flags.train_split) {
        Ok(ds) => {
            let (n, k) = (ds.len() as i64, u32::try_from(ds.num_classes())?);
            Ok((
                n,
                k,
                serde_json::json!({"name": flags.dataset, "examples": n, "classes": k, "source": ds.describe()}),
            ))
        }
        Err(e) => match standard_size(&flags.dataset) {
            Some((n, k)) => Ok((
                n,
                k,
                serde_json::json!({"name": flags.dataset, "examples": n, "classes": k, "source": "standard size (data not present)"}),
            )),
            None => Err(e.context(format!(
                "--dataset={} is not a known dataset, so its folder must be readable",
                flags.dataset
            ))),
        },
    }
}

/// Runs `simclr export_hlo`, printing one line per program to `w`.
///
/// # Errors
/// Bad flags, an unreadable dataset folder, a missing plugin (unless
/// `--no_compile`), a program that cannot be traced, or files that cannot
/// be written. A program that fails to compile is reported in its
/// `memory.json`, not as an error.
pub fn export(cmd: &ExportCommand, w: &mut dyn std::io::Write) -> Result<ExportIndex> {
    let flags = &cmd.flags;
    if cmd.verbose {
        crate::pjrt::set_verbose(true);
    }
    let (client, replicas) = if cmd.no_compile {
        let r = if flags.num_replicas > 0 {
            usize::try_from(flags.num_replicas)?
        } else {
            1
        };
        (None, r)
    } else {
        let (c, r) = client_and_replicas(flags)?;
        (Some(c), r)
    };
    flags
        .validate_traced(replicas)
        .map_err(|e| anyhow!("{e}"))?;
    let (n, classes, dataset) = dataset_size(flags)?;
    let step = step_config(flags, replicas, n, classes)?;
    std::fs::create_dir_all(&cmd.out)
        .with_context(|| format!("cannot create --out={}", cmd.out.display()))?;
    let target = client.as_ref().map(|c| Target {
        client: c,
        options: default_compile_options(c, replicas),
    });
    // The distillation step traces its teacher too: from
    // --teacher_checkpoint, else the student's network (self-distillation).
    let distill = match step.train_mode {
        TrainMode::Distill => Some(super::distill::traced_teacher(flags, &step)?),
        _ => None,
    };
    let train_name = step.train_mode.name();
    let eval_n = flags.eval_batch_size / replicas as i64;
    if eval_n < 1 {
        bail!(
            "--eval_batch_size={} gives no example per replica",
            flags.eval_batch_size
        );
    }
    let device = match (&cmd.device_memory, &client) {
        (Some(d), _) => Some(d.clone()),
        (None, Some(c)) => fit::plugin_device(c),
        (None, None) => None,
    };
    let mut programs = Vec::new();
    for name in [train_name, "eval"] {
        let program = match (name, &distill) {
            ("eval", _) => eval_program(&step, eval_n)?,
            (_, d) => train_step(flags, &step, d.as_ref())?,
        };
        let mut entry = inspect::export_program(
            &cmd.out,
            name,
            &program,
            step.optimizer.kind,
            target.as_ref(),
        )?;
        writeln!(
            w,
            "{name} ({}): {} instructions, {:.3} GFLOP per replica, {} per replica ({}), {}{}",
            step.precision,
            entry.instructions,
            entry.flops / 1e9,
            human_bytes(entry.memory_bytes),
            memory_breakdown(&entry),
            entry.status,
            entry
                .message
                .as_deref()
                .map(|m| format!(" ({m})"))
                .unwrap_or_default()
        )?;
        if let Some(dev) = &device {
            let per_replica = if name == "eval" {
                eval_n
            } else {
                flags.train_batch_size / replicas as i64
            };
            let mut check = fit::check(
                dev,
                NeedModel {
                    need_bytes: entry.memory_bytes,
                    fixed_bytes: entry.variable_bytes,
                    per_replica_batch: per_replica,
                },
                replicas,
            );
            if let (false, Some(t), Some(_)) = (check.fits, &target, &entry.compiled_need) {
                let confirmed = fit::confirm(&mut check, |b| {
                    need_at_batch(flags, name, b, replicas, n, classes, t)
                });
                if let Err(e) = confirmed {
                    check.message = format!(
                        "{} (compiling at the suggested batch failed: {e:#})",
                        check.message
                    );
                }
            }
            writeln!(w, "{name}: {}", check.message)?;
            inspect::export::record_fit(&cmd.out, name, &check)?;
            entry.fit = Some(check);
        }
        programs.push(entry);
    }
    let index = ExportIndex {
        simclr_version: env!("CARGO_PKG_VERSION").to_string(),
        platform: client.as_ref().map(|c| c.platform_name().to_string()),
        replicas,
        dataset,
        flags: flags.to_json(),
        device,
        programs,
    };
    inspect::write_index(&cmd.out, &index)?;
    writeln!(w, "wrote {}", cmd.out.join("index.json").display())?;
    Ok(index)
}

/// XLA's per-replica need (arguments + temporaries + outputs − aliased) of
/// program `name` traced at a per-replica batch of `batch`.
///
/// # Errors
/// The batch is not valid for the flags, tracing or compiling fails, or
/// the plugin has no compiled memory statistics.
pub fn need_at_batch(
    flags: &RunFlags,
    name: &str,
    batch: i64,
    replicas: usize,
    examples: i64,
    classes: u32,
    target: &Target<'_>,
) -> Result<u64> {
    let global = batch * replicas as i64;
    let mut f = flags.clone();
    if name == "eval" {
        f.eval_batch_size = global;
    } else {
        f.train_batch_size = global;
    }
    f.validate_traced(replicas).map_err(|e| anyhow!("{e}"))?;
    let step = step_config(&f, replicas, examples, classes)?;
    let program = match (name, step.train_mode) {
        ("eval", _) => eval_program(&step, batch)?,
        (_, TrainMode::Distill) => {
            train_step(&f, &step, Some(&super::distill::traced_teacher(&f, &step)?))?
        }
        _ => train_step(&f, &step, None)?,
    };
    let proto = crate::ir::golden::golden_proto(&program.module);
    let exe = target.client.compile(&proto, &target.options)?;
    let stats = exe.memory_stats()?;
    Ok(inspect::memory::compiled_need(&stats).total_bytes)
}

/// The training step the flags describe (`distill`: the traced teacher of
/// a distillation step): with `--augment_on_device`, the program whose
/// inputs are the resized views and the drawn parameters and which applies
/// the augmentation on the devices, exactly as the trainer traces it.
///
/// # Errors
/// A bad `--augment_transfer`, or tracing fails.
fn train_step(
    flags: &RunFlags,
    step: &StepConfig,
    distill: Option<&DistillConfig>,
) -> Result<StepProgram> {
    if flags.augment_on_device {
        let transfer = Transfer::parse(&flags.augment_transfer)?;
        let augment = DeviceAugment::for_step(step, flags.image_size, flags.use_blur, transfer);
        return Ok(train_program_augmented(step, distill, &augment)?);
    }
    Ok(match distill {
        Some(d) => distill_program(step, d)?,
        None => train_program(step)?,
    })
}

/// What the per-replica memory figure of `entry` is made of, for the
/// summary line.
pub fn memory_breakdown(entry: &ProgramEntry) -> String {
    match &entry.compiled_need {
        Some(n) => format!(
            "XLA buffers: arguments {} + temporaries {} + outputs {} - aliased {}; the plugin's peak figure {}",
            human_bytes(n.argument_bytes),
            human_bytes(n.temporary_bytes),
            human_bytes(n.output_bytes),
            human_bytes(n.alias_bytes),
            human_bytes(n.plugin_peak_bytes)
        ),
        None => "analytic estimate: arguments + activation peak".into(),
    }
}

/// `12.3 MiB`-style sizes.
pub fn human_bytes(b: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < units.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", units[u])
    }
}

/// Runs `simclr export_hlo` from its command-line arguments.
///
/// # Errors
/// As [`export`].
pub fn run(args: &ExportArgs) -> Result<()> {
    if args.args.iter().any(|a| a == "--help" || a == "-h") {
        print!("{USAGE}");
        return Ok(());
    }
    let mut cmd = ExportCommand::parse(&args.args)?;
    let dest = Location::from_path(&cmd.out)?;
    if dest.is_local() {
        export(&cmd, &mut std::io::stdout().lock())?;
        return Ok(());
    }
    // A bucket: export into a local folder, then upload it whole.
    let staging = storage::staging_dir("export")?;
    cmd.out = staging.path().to_path_buf();
    let mut report = Vec::new();
    export(&cmd, &mut report)?;
    let n = storage::upload_dir(staging.path(), &dest)?;
    // The program lines, without the staging folder's "wrote" line.
    for line in String::from_utf8_lossy(&report).lines() {
        if !line.starts_with("wrote ") {
            println!("{line}");
        }
    }
    println!("wrote {} ({n} files)", dest.join("index.json"));
    Ok(())
}
