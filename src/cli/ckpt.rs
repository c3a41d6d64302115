//! `simclr ckpt ls PATH` (name, dtype, shape of every tensor) and
//! `simclr ckpt info PATH` (inferred architecture and the flags that build
//! it) for TensorFlow and native checkpoints.

use std::io::Write;
use std::path::PathBuf;

use crate::ckpt::{infer, Source};

/// Arguments of `simclr ckpt`.
#[derive(Debug, clap::Args)]
pub struct CkptArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: CkptCommand,
}

/// `simclr ckpt` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum CkptCommand {
    /// List every tensor: name, dtype, shape.
    Ls {
        /// A TF checkpoint prefix, .index file or directory, or a native
        /// .safetensors file or model_dir.
        path: PathBuf,
    },
    /// Infer the architecture and print the flags that build it.
    Info {
        /// A TF checkpoint prefix, .index file or directory, or a native
        /// .safetensors file or model_dir.
        path: PathBuf,
    },
    /// Write a simclr checkpoint as a TF1-named TensorFlow checkpoint
    /// (`PREFIX.index`, `PREFIX.data-00000-of-00001`, `checkpoint`), model
    /// variables and `global_step`; `--with_slots` adds `…/Momentum`.
    #[command(name = "export_tf")]
    ExportTf {
        /// A native `.safetensors` file or a model_dir (its newest checkpoint).
        src: PathBuf,
        /// Output prefix, e.g. `/tmp/tf/model.ckpt-1000`.
        prefix: PathBuf,
        /// Also export optimizer slots.
        #[arg(long = "with_slots")]
        with_slots: bool,
    },
}

/// Tells on stderr which newer native checkpoints of a `model_dir` were
/// unreadable and skipped.
fn report_skipped(path: &std::path::Path) {
    if path.is_dir() {
        if let Ok(Some(l)) = crate::ckpt::native::latest(path) {
            for s in &l.skipped {
                eprintln!("warning: skipped {}: {}", s.path.display(), s.reason);
            }
        }
    }
}

/// Runs `simclr ckpt …`, printing to `out`.
pub fn run(args: &CkptArgs, out: &mut impl Write) -> anyhow::Result<()> {
    match &args.command {
        CkptCommand::Ls { path } | CkptCommand::Info { path } => report_skipped(path),
        CkptCommand::ExportTf { src, .. } => report_skipped(src),
    }
    match &args.command {
        CkptCommand::ExportTf {
            src,
            prefix,
            with_slots,
        } => {
            let source = Source::open(src)?;
            let mut tensors = std::collections::BTreeMap::new();
            for e in source.entries() {
                if !with_slots && crate::ckpt::import::is_optimizer_slot(&e.name) {
                    continue;
                }
                tensors.insert(e.name.clone(), source.read(&e.name)?);
            }
            crate::ckpt::tf::write(prefix, &tensors, true)?;
            writeln!(
                out,
                "wrote {} tensors of {} to the TensorFlow checkpoint {}",
                tensors.len(),
                source.path().display(),
                prefix.display()
            )?;
        }
        CkptCommand::Ls { path } => {
            let src = Source::open(path)?;
            let entries = src.entries();
            writeln!(
                out,
                "# {} checkpoint {}: {} tensors",
                src.format(),
                src.path().display(),
                entries.len()
            )?;
            for e in entries {
                writeln!(out, "{}\t{}\t{:?}", e.name, e.dtype_name, e.dims)?;
            }
        }
        CkptCommand::Info { path } => {
            let src = Source::open(path)?;
            let entries = crate::ckpt::tf2::tf1_view(&src.entries());
            let arch = infer::infer(&entries)?;
            writeln!(
                out,
                "checkpoint:        {} ({})",
                src.path().display(),
                src.format()
            )?;
            writeln!(out, "tensors:           {}", entries.len())?;
            writeln!(
                out,
                "backbone:          ResNet-{} {}x{}{} ({} convs, {} batch norms)",
                arch.resnet_depth,
                arch.width_multiplier,
                if arch.sk_ratio > 0.0 { " SK" } else { "" },
                if arch.cifar_stem { ", CIFAR stem" } else { "" },
                arch.backbone_convs,
                arch.backbone_bns
            )?;
            match &arch.projection_head {
                Some(h) => writeln!(
                    out,
                    "projection head:   {:?}, {} layer(s), output {}",
                    h.mode, h.num_proj_layers, h.proj_out_dim
                )?,
                None => writeln!(out, "projection head:   none")?,
            }
            match arch.num_classes {
                Some(n) => writeln!(out, "supervised head:   {n} classes")?,
                None => writeln!(out, "supervised head:   none")?,
            }
            for n in &arch.notes {
                writeln!(out, "note:              {n}")?;
            }
            let v = infer::verify(&arch, &entries)?;
            writeln!(
                out,
                "check:             {} model variables found, {} missing, {} with other shapes",
                v.matched,
                v.missing.len(),
                v.mismatched.len()
            )?;
            for (n, c, m) in v.mismatched.iter().take(5) {
                writeln!(out, "  mismatch {n}: checkpoint {c:?}, model {m:?}")?;
            }
            writeln!(out, "flags:             {}", arch.flags().join(" "))?;
        }
    }
    Ok(())
}
