//! `simclr ckpt ls PATH` (name, dtype, shape of every tensor) and
//! `simclr ckpt info PATH` (inferred architecture and the flags that build
//! it) for TensorFlow and native checkpoints; `export_tf`, and
//! `export_torch` / `import_torch` (PyTorch state dicts in safetensors).

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
    /// Write the model of any checkpoint `ckpt info` describes as a PyTorch
    /// state dict (`OUT.safetensors`) plus its architecture (`OUT.json`).
    #[command(name = "export_torch")]
    ExportTorch {
        /// A TF checkpoint (TF1 names or TF2 object paths) or a native
        /// `.safetensors` file or model_dir.
        src: PathBuf,
        /// Output `.safetensors` file; the architecture goes beside it as `.json`.
        out: PathBuf,
        /// `torchvision` (torchvision.models.resnet18…152: width 1×, no SK,
        /// ImageNet stem) or `simclr` (tools/torch/simclr_resnet.py: everything).
        #[arg(long, value_enum, default_value = "simclr")]
        layout: crate::ckpt::torch::Layout,
    },
    /// Turn a PyTorch ResNet state dict (torchvision's layout or
    /// `--layout=simclr`'s) into a simclr model_dir that `simclr run
    /// --checkpoint=OUT` and `simclr features --export=OUT` read.
    #[command(name = "import_torch")]
    ImportTorch {
        /// A `.safetensors` state dict.
        src: PathBuf,
        /// Output model_dir.
        out: PathBuf,
        /// The architecture file written by export_torch (default: SRC with
        /// `.json`, when present); it settles the projection-head mode and
        /// the supervised head's input.
        #[arg(long)]
        arch: Option<PathBuf>,
        /// `--image_size` recorded for `simclr features` (default: 32 for the
        /// CIFAR stem, else 224).
        #[arg(long = "image_size")]
        image_size: Option<u32>,
    },
}

/// Tells on stderr which newer native checkpoints of a `model_dir` were
/// unreadable and skipped.
fn report_skipped(path: &std::path::Path) {
    let in_bucket = crate::storage::Location::from_path(path).is_ok_and(|l| !l.is_local());
    if in_bucket || path.is_dir() {
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
        CkptCommand::ExportTf { src, .. } | CkptCommand::ExportTorch { src, .. } => {
            report_skipped(src)
        }
        CkptCommand::ImportTorch { .. } => {}
    }
    match &args.command {
        CkptCommand::ExportTorch {
            src,
            out: path,
            layout,
        } => export_torch(src, path, *layout, out)?,
        CkptCommand::ImportTorch {
            src,
            out: dir,
            arch,
            image_size,
        } => import_torch(src, dir, arch.as_deref(), *image_size, out)?,
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
            writeln!(out, "precision:         {}", precision_line(&src))?;
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

/// The precision a native checkpoint was trained with (its metadata), and
/// what is stored.
fn precision_line(src: &Source) -> String {
    match src {
        Source::Native(r) => match r.meta.get("precision").and_then(|v| v.as_str()) {
            Some(p) => format!("{p} (trained with --precision={p}; variables stored as f32)"),
            None => "float32 (written before the precision was recorded)".into(),
        },
        Source::Tf(_) => "not recorded (TensorFlow checkpoint; loads into either precision)".into(),
    }
}

fn export_torch(
    src: &std::path::Path,
    path: &std::path::Path,
    layout: crate::ckpt::torch::Layout,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    use crate::ckpt::torch;
    if path.extension().is_none_or(|e| e != "safetensors") {
        anyhow::bail!(
            "{}: the output must end in .safetensors (the architecture goes beside it as .json)",
            path.display()
        );
    }
    let source = Source::open(src)?;
    let e = torch::export(&source, layout)?;
    torch::write_safetensors(path, &e.tensors)?;
    let json_path = torch::arch_path(path);
    let text = serde_json::to_string_pretty(&e.arch)?;
    std::fs::write(&json_path, text + "\n")
        .map_err(|err| anyhow::anyhow!("cannot write {}: {err}", json_path.display()))?;
    let a = &e.inferred;
    writeln!(
        out,
        "wrote {} tensors of {} (ResNet-{} {}x{}{}) to {} ({} layout) and its architecture to {}",
        e.tensors.len(),
        source.path().display(),
        a.resnet_depth,
        a.width_multiplier,
        if a.sk_ratio > 0.0 { " SK" } else { "" },
        if a.cifar_stem { ", CIFAR stem" } else { "" },
        path.display(),
        layout.name(),
        json_path.display()
    )?;
    let mut by_reason: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
    for l in &e.arch.left_out {
        by_reason.entry(&l.reason).or_default().push(&l.name);
    }
    for (reason, names) in by_reason {
        writeln!(
            out,
            "left out {} tensor(s), {reason}: {}{}",
            names.len(),
            names.iter().take(4).copied().collect::<Vec<_>>().join(", "),
            if names.len() > 4 { ", …" } else { "" }
        )?;
    }
    for n in &a.notes {
        writeln!(out, "note: {n}")?;
    }
    Ok(())
}

fn import_torch(
    src: &std::path::Path,
    dir: &std::path::Path,
    arch: Option<&std::path::Path>,
    image_size: Option<u32>,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    use crate::ckpt::torch;
    let arch_file = match arch {
        Some(p) => Some(p.to_path_buf()),
        None => Some(torch::arch_path(src)).filter(|p| p.exists()),
    };
    let arch: Option<torch::TorchArch> = match &arch_file {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", p.display()))?;
            Some(serde_json::from_str(&text).map_err(|e| {
                anyhow::anyhow!(
                    "{} is not an architecture file of export_torch: {e}",
                    p.display()
                )
            })?)
        }
        None => None,
    };
    if crate::ckpt::native::latest(dir)?.is_some() {
        anyhow::bail!(
            "{} already holds a checkpoint; import into a new directory",
            dir.display()
        );
    }
    let imp = torch::import(src, arch.as_ref())?;
    let c = &imp.cfg;
    let image_size = image_size.unwrap_or(c.image_size);
    if (image_size <= 32) != (c.image_size <= 32) {
        anyhow::bail!(
            "--image_size={image_size} selects the {} stem, but the state dict has the {} stem",
            if image_size <= 32 {
                "CIFAR"
            } else {
                "ImageNet"
            },
            if c.image_size <= 32 {
                "CIFAR"
            } else {
                "ImageNet"
            }
        );
    }
    let meta = serde_json::json!({
        "global_step": imp.step,
        "imported_from": src.display().to_string(),
        "model": {
            "resnet_depth": c.resnet_depth,
            "width_multiplier": c.width_multiplier,
            "sk_ratio": c.sk_ratio,
            "se_ratio": c.se_ratio,
            "image_size": image_size,
            "proj_head_mode": if imp.has_proj {
                match c.proj_head_mode {
                    crate::nn::ProjHeadMode::Linear => "linear",
                    _ => "nonlinear",
                }
            } else {
                "none"
            },
            "num_proj_layers": c.num_proj_layers,
            "proj_out_dim": c.proj_out_dim,
            "num_classes": c.num_classes,
            "ft_proj_selector": imp.ft_proj_selector,
        },
    });
    let step = u64::try_from(imp.step).unwrap_or(0);
    let saved = crate::ckpt::native::save(dir, step, &imp.tensors, &meta, 0)?;
    writeln!(
        out,
        "wrote {} tensors (ResNet-{} {}x{}{}{}{}) of {} to {}",
        imp.tensors.len(),
        c.resnet_depth,
        c.width_multiplier,
        if c.sk_ratio > 0.0 { " SK" } else { "" },
        if c.image_size <= 32 {
            ", CIFAR stem"
        } else {
            ""
        },
        if imp.has_proj {
            ", projection head"
        } else {
            ""
        },
        if imp.has_sup { ", supervised head" } else { "" },
        src.display(),
        saved.path.display()
    )?;
    for n in &imp.notes {
        writeln!(out, "note: {n}")?;
    }
    Ok(())
}
