//! `simclr features`: embeds a folder of images with an exported network
//! (`model_dir/export/<step>/`, written after every evaluation) and writes
//! the named intermediates of SPEC §8.6 as `.npy` files: `initial_conv`,
//! `initial_max_pool`, `block_group1`…`block_group4`, `final_avg_pool`
//! (also `default`), `proj_head_input`, `proj_head_output`, `logits_sup`;
//! on request (`--outputs=input,…`) also `input`, the preprocessed images
//! the network saw (NHWC, in [0, 1]), so that another framework can be fed
//! the very same pixels.

use crate::ckpt;
use crate::data::augment::{preprocess_for_eval, AugmentConfig};
use crate::data::folder::decode_image;
use crate::ir::{Builder, ElementType, Shape, Tensor};
use crate::nn::{self, ForwardOptions, ModelConfig, Precision, ProjHeadMode, Store};
use crate::npy::{self, NpyArray, NpyData};
use crate::pjrt::{Client, ClientOptions, HostArray};
use crate::storage::{self, Location};
use crate::train::default_compile_options;
use anyhow::{anyhow, bail, Context, Result};
use std::path::{Path, PathBuf};

/// Arguments of `simclr features`.
#[derive(Debug, clap::Args)]
#[command(rename_all = "snake_case")]
pub struct FeaturesArgs {
    /// An export directory (`model_dir/export/<step>`) or a `model_dir`
    /// (its newest export); local, `gs://…` or `s3://…`.
    #[arg(long)]
    pub export: PathBuf,
    /// Folder of JPEG/PNG images (searched recursively, sorted by path);
    /// local or a bucket prefix.
    #[arg(long)]
    pub images: PathBuf,
    /// Output folder (local or a bucket prefix): one `<name>.npy` per
    /// intermediate plus `files.txt`.
    #[arg(long)]
    pub out: PathBuf,
    /// Intermediates to write (comma-separated; default: all).
    #[arg(long)]
    pub outputs: Option<String>,
    /// Images per batch.
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    /// Path of the PJRT plugin.
    #[arg(long)]
    pub pjrt_plugin: Option<PathBuf>,
    /// Arithmetic of the network: float32 or bfloat16 (bf16 activations;
    /// every intermediate is written as f32).
    #[arg(long, default_value = "float32", value_parser = super::bench::parse_precision)]
    pub precision: Precision,
}

/// The named intermediates, in output order.
pub const INTERMEDIATES: [&str; 10] = [
    "initial_conv",
    "initial_max_pool",
    "block_group1",
    "block_group2",
    "block_group3",
    "block_group4",
    "final_avg_pool",
    "proj_head_input",
    "proj_head_output",
    "logits_sup",
];

fn find_export(path: &Path) -> Result<PathBuf> {
    let loc = Location::from_path(path)?;
    if !ckpt::native::list(path).is_empty()
        && storage::exists(&loc.join("checkpoint.json"))?
        && !storage::is_dir(&loc.join("export"))?
    {
        return Ok(path.to_path_buf());
    }
    let root = loc.join("export");
    let newest = storage::list_dirs(&root)?
        .into_iter()
        .filter_map(|n| n.parse::<u64>().ok())
        .max();
    match newest {
        Some(s) => Ok(root.join(&s.to_string()).to_path_buf()),
        None if !ckpt::native::list(path).is_empty() => Ok(path.to_path_buf()),
        None => bail!(
            "{} is neither an export directory nor a model_dir with exports; run an evaluation first (--mode=train_then_eval)",
            path.display()
        ),
    }
}

fn is_image_name(name: &str) -> bool {
    Path::new(name)
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "jpg" | "jpeg" | "png"))
}

/// The images below `dir` (a local folder or a bucket prefix), sorted by
/// path.
fn list_images(dir: &Path) -> Result<Vec<PathBuf>> {
    let loc = Location::from_path(dir)?;
    if let Location::Local(_) = loc {
        std::fs::read_dir(dir)
            .with_context(|| format!("cannot read the image folder {}", dir.display()))?;
    }
    let mut out: Vec<PathBuf> = storage::list(&loc, true)
        .with_context(|| format!("cannot list the image folder {}", dir.display()))?
        .into_iter()
        .filter(|e| is_image_name(&e.name))
        .map(|e| loc.join(&e.name).to_path_buf())
        .collect();
    out.sort();
    Ok(out)
}

/// Runs `simclr features`.
pub fn run(args: &FeaturesArgs) -> Result<()> {
    let dir = find_export(&args.export)?;
    let latest = ckpt::native::latest(&dir)?
        .ok_or_else(|| anyhow!("{} holds no readable checkpoint", dir.display()))?;
    let c = latest.load()?;
    let m = c.meta.get("model").ok_or_else(|| {
        anyhow!(
            "{} has no model description; use an export written by simclr run",
            latest.path.display()
        )
    })?;
    let num = |k: &str| -> Result<u32> {
        m.get(k)
            .and_then(|v| v.as_u64())
            .and_then(|v| u32::try_from(v).ok())
            .ok_or_else(|| anyhow!("export metadata lacks {k}"))
    };
    let cfg = ModelConfig {
        resnet_depth: num("resnet_depth")?,
        width_multiplier: num("width_multiplier")?,
        sk_ratio: m.get("sk_ratio").and_then(|v| v.as_f64()).unwrap_or(0.0),
        se_ratio: m.get("se_ratio").and_then(|v| v.as_f64()).unwrap_or(0.0),
        image_size: num("image_size")?,
        proj_head_mode: m
            .get("proj_head_mode")
            .and_then(|v| v.as_str())
            .unwrap_or("nonlinear")
            .parse::<ProjHeadMode>()?,
        num_proj_layers: num("num_proj_layers")?,
        proj_out_dim: num("proj_out_dim")?,
        num_classes: num("num_classes")?,
    };
    let selector = m
        .get("ft_proj_selector")
        .and_then(|v| v.as_i64())
        .unwrap_or(0) as i32;
    let wanted: Vec<&str> = match &args.outputs {
        Some(list) => {
            let v: Vec<&str> = list
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect();
            for w in &v {
                if !INTERMEDIATES.contains(w) && *w != "default" && *w != "input" {
                    bail!(
                        "--outputs: unknown intermediate '{w}'; choose from {}, default, input",
                        INTERMEDIATES.join(", ")
                    );
                }
            }
            v
        }
        None => INTERMEDIATES.to_vec(),
    };
    let files = list_images(&args.images)?;
    if files.is_empty() {
        bail!("{} holds no .jpg/.jpeg/.png images", args.images.display());
    }
    let batch = args.batch.max(1);
    let s = i64::from(cfg.image_size);
    let b = Builder::new("features", 1);
    let x = b.parameter(
        "images",
        Shape::new(ElementType::F32, [batch as i64, s, s, 3]),
    );
    let mut store = Store::new(&b).with_precision(args.precision);
    let opts = ForwardOptions {
        ft_proj_selector: selector,
        ..ForwardOptions::inference()
    };
    let o = nn::forward(&mut store, &cfg, &x, &opts)?;
    let taps: Vec<(&str, Tensor)> = vec![
        ("initial_conv", o.backbone.initial_conv.clone()),
        ("initial_max_pool", o.backbone.initial_max_pool.clone()),
        ("block_group1", o.backbone.block_groups[0].clone()),
        ("block_group2", o.backbone.block_groups[1].clone()),
        ("block_group3", o.backbone.block_groups[2].clone()),
        ("block_group4", o.backbone.block_groups[3].clone()),
        ("final_avg_pool", o.backbone.final_avg_pool.clone()),
        ("proj_head_input", o.proj_list[0].clone()),
        ("proj_head_output", o.proj_head_output.clone()),
        ("logits_sup", o.logits_sup.clone()),
    ];
    let chosen: Vec<(&str, Tensor)> = taps
        .into_iter()
        .filter(|(n, _)| {
            wanted.contains(n) || (*n == "final_avg_pool" && wanted.contains(&"default"))
        })
        .collect();
    let wide: Vec<Tensor> = chosen
        .iter()
        .map(|(_, t)| nn::layers::cast(t, ElementType::F32))
        .collect();
    let refs: Vec<&Tensor> = wide.iter().collect();
    let module = b.build(&refs)?;
    let vars = store.variables().to_vec();
    let mut copts = ClientOptions::from_env();
    copts.cpu_device_count = Some(1);
    let client = Client::discover(args.pjrt_plugin.as_deref(), false, &copts)?;
    let exe = client.compile(&module.to_proto(), &default_compile_options(&client, 1))?;
    let device = client
        .devices()
        .first()
        .ok_or_else(|| anyhow!("the plugin has no device"))?
        .clone();
    let mut weights = Vec::with_capacity(vars.len());
    for v in &vars {
        let t = c.tensors.get(&v.name).ok_or_else(|| {
            anyhow!(
                "{} lacks {}; was it exported from a different model?",
                latest.path.display(),
                v.name
            )
        })?;
        let a = crate::train::from_ckpt(&v.name, t)?;
        if a.dims != v.shape.dims {
            bail!(
                "{}: export holds {:?}, the model needs {:?}",
                v.name,
                a.dims,
                v.shape.dims
            );
        }
        weights.push(client.buffer_from_host(&a, &device)?);
    }
    let aug = AugmentConfig::finetune(cfg.image_size as usize);
    let mut outs: Vec<Vec<f32>> = vec![vec![]; chosen.len()];
    let mut shapes: Vec<Vec<usize>> = vec![vec![]; chosen.len()];
    let want_input = wanted.contains(&"input");
    let mut inputs: Vec<f32> = vec![];
    for chunk in files.chunks(batch) {
        let mut pixels = Vec::with_capacity(batch * (s * s * 3) as usize);
        for f in chunk {
            let bytes = storage::read(&Location::from_path(f)?)
                .with_context(|| format!("cannot read {}", f.display()))?;
            let img = decode_image(&bytes, &f.display().to_string())?;
            pixels.extend(preprocess_for_eval(&img, &aug)?.data);
        }
        if want_input {
            inputs.extend_from_slice(&pixels);
        }
        pixels.resize(batch * (s * s * 3) as usize, 0.0);
        let input = client.buffer_from_host(
            &HostArray::from_f32(&[batch as i64, s, s, 3], &pixels)?,
            &device,
        )?;
        let mut args_list = vec![&input];
        args_list.extend(weights.iter());
        let result = exe.execute(&[args_list])?;
        for (k, buf) in result[0].iter().enumerate() {
            let h = buf.to_host()?;
            let per = h.dims.iter().skip(1).product::<i64>() as usize;
            shapes[k] = h.dims.iter().skip(1).map(|&d| d as usize).collect();
            outs[k].extend_from_slice(&h.to_f32()?[..chunk.len() * per]);
        }
    }
    let out = Location::from_path(&args.out)?;
    storage::create_dir_all(&out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let write_npy = |name: &str, arr: &NpyArray| -> Result<()> {
        let dest = out.join(&format!("{name}.npy"));
        storage::put(&dest, npy::to_bytes(arr)).with_context(|| format!("cannot write {dest}"))
    };
    for (k, (name, _)) in chosen.iter().enumerate() {
        let mut shape = vec![files.len()];
        shape.extend(&shapes[k]);
        let arr = NpyArray::new(shape, NpyData::F32(std::mem::take(&mut outs[k])))?;
        write_npy(name, &arr)?;
        if *name == "final_avg_pool" && wanted.contains(&"default") {
            write_npy("default", &arr)?;
        }
    }
    if want_input {
        let arr = NpyArray::new(
            vec![files.len(), s as usize, s as usize, 3],
            NpyData::F32(inputs),
        )?;
        write_npy("input", &arr)?;
    }
    let list: String = files.iter().map(|f| format!("{}\n", f.display())).collect();
    storage::put(&out.join("files.txt"), list.into_bytes())
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    println!(
        "simclr features: {} images through {} → {} ({})",
        files.len(),
        latest.path.display(),
        args.out.display(),
        chosen
            .iter()
            .map(|(n, _)| *n)
            .chain(want_input.then_some("input"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}
