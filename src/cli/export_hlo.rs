//! `simclr export_hlo --out DIR <flags of simclr run>`: traces every step
//! program the flags describe (pretrain or finetune per `--train_mode`,
//! plus eval), compiles each with the chosen PJRT plugin and writes HLO
//! text, protos, XLA's optimized module, costs, memory and parameters (see
//! [`crate::inspect::export`]). Needs no data and trains nothing: a known
//! `--dataset` whose files are absent is sized from its standard split.
//! `--no_compile` skips XLA entirely.

use super::flags::RunFlags;
use super::run::{client_and_replicas, open, step_config};
use crate::inspect::{self, ExportIndex, Target};
use crate::simclr::{eval_program, train_program, TrainMode};
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
    /// The `simclr run` flags.
    pub flags: RunFlags,
}

const USAGE: &str = "usage: simclr export_hlo --out DIR [--no_compile] [flags of simclr run]\n\n\
Writes DIR/<program>/{module.hlo.txt,module.pb,optimized.hlo.txt,optimized.pb,cost.json,\n\
memory.json,params.tsv,params.json} for the train program (--train_mode) and the eval\n\
program, and DIR/index.json. `simclr run --help` lists the flags.\n";

impl ExportCommand {
    /// Parses the arguments (`--out` and `--no_compile` are taken out, the
    /// rest are `simclr run` flags).
    ///
    /// # Errors
    /// A missing `--out`, or bad flags (one line per problem).
    pub fn parse(args: &[String]) -> Result<ExportCommand> {
        let mut out = None;
        let mut no_compile = false;
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
    flags.validate(replicas).map_err(|e| anyhow!("{e}"))?;
    let (n, classes, dataset) = dataset_size(flags)?;
    let step = step_config(flags, replicas, n, classes)?;
    std::fs::create_dir_all(&cmd.out)
        .with_context(|| format!("cannot create --out={}", cmd.out.display()))?;
    let target = client.as_ref().map(|c| Target {
        client: c,
        options: default_compile_options(c, replicas),
    });
    if step.train_mode == TrainMode::Distill {
        bail!("export_hlo does not export the distill step yet; use --train_mode=finetune to export the student's step");
    }
    let train_name = step.train_mode.name();
    let eval_n = flags.eval_batch_size / replicas as i64;
    if eval_n < 1 {
        bail!(
            "--eval_batch_size={} gives no example per replica",
            flags.eval_batch_size
        );
    }
    let mut programs = Vec::new();
    for name in [train_name, "eval"] {
        let program = if name == "eval" {
            eval_program(&step, eval_n)?
        } else {
            train_program(&step)?
        };
        let entry = inspect::export_program(
            &cmd.out,
            name,
            &program,
            step.optimizer.kind,
            target.as_ref(),
        )?;
        writeln!(
            w,
            "{name}: {} instructions, {:.3} GFLOP per replica, {} per replica, {}{}",
            entry.instructions,
            entry.flops / 1e9,
            human_bytes(entry.memory_bytes),
            entry.status,
            entry
                .message
                .as_deref()
                .map(|m| format!(" ({m})"))
                .unwrap_or_default()
        )?;
        programs.push(entry);
    }
    let index = ExportIndex {
        simclr_version: env!("CARGO_PKG_VERSION").to_string(),
        platform: client.as_ref().map(|c| c.platform_name().to_string()),
        replicas,
        dataset,
        flags: flags.to_json(),
        programs,
    };
    inspect::write_index(&cmd.out, &index)?;
    writeln!(w, "wrote {}", cmd.out.join("index.json").display())?;
    Ok(index)
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
    let cmd = ExportCommand::parse(&args.args)?;
    export(&cmd, &mut std::io::stdout().lock())?;
    Ok(())
}
