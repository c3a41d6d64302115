//! `simclr bench`: builds the SimCLR pretraining step for a fixed
//! configuration (ResNet-18 with the CIFAR stem or ResNet-50 at 224×224,
//! projection head D→D→128 with BN, NT-Xent τ 0.5, LARS, f32, random
//! input, one replica), compiles it, times steps after a warm-up and prints
//! JSON lines: one per timed step and a final summary with compile time,
//! step-time statistics, images/s, memory, FLOPs per image (XLA cost
//! analysis and an analytic count) and, with `--peak`, the fraction of the
//! machine's peak f32 FLOP/s measured with a large matmul through the same
//! plugin. With `--input`, the input pipeline that would feed the step is
//! timed too (`bench_input`), so the output shows whether the host keeps up.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{anyhow, Context};
use serde_json::json;

use crate::ir::{Builder, ElementType, Shape};
use crate::nn::{resnet, ModelConfig, Precision, ProjHeadMode};
use crate::pjrt::{Client, ClientOptions, CompileOptions, HostArray, OptionValue};
use crate::simclr::{
    augment_device::DeviceAugment, train_program, train_program_augmented, OptimizerConfig,
    OptimizerKind, Schedule, StepConfig, TrainMode,
};
use crate::train::{compile, default_compile_options, HostState};

/// The benchmarked networks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchModel {
    /// ResNet-18, CIFAR stem (3×3, no max pool), 32×32 images.
    #[value(name = "cifar_r18")]
    CifarR18,
    /// ResNet-50, ImageNet stem, 224×224 images.
    #[value(name = "r50_224")]
    R50At224,
    /// ResNet-18 at 8×8 with a 16-wide projection: a smoke test, not a benchmark.
    #[value(name = "tiny")]
    Tiny,
}

impl BenchModel {
    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            BenchModel::CifarR18 => "cifar_r18",
            BenchModel::R50At224 => "r50_224",
            BenchModel::Tiny => "tiny",
        }
    }
}

/// Arguments of `simclr bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Network and image size.
    #[arg(long, value_enum, default_value = "cifar_r18")]
    pub config: BenchModel,
    /// Examples per step (each gives two views); default 64, 16 for r50_224.
    #[arg(long)]
    pub batch: Option<i64>,
    /// Timed steps.
    #[arg(long, default_value_t = 10)]
    pub steps: usize,
    /// Untimed steps before the timed ones.
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
    /// Extra XLA compiler option `NAME=VALUE` (`true`/`false` as bool, an
    /// integer as int, anything else as string); repeatable.
    #[arg(long = "xla_option", value_name = "NAME=VALUE")]
    pub xla_options: Vec<String>,
    /// Start from no compiler options instead of simclr's defaults.
    #[arg(long = "no_default_options")]
    pub no_default_options: bool,
    /// Also measure the peak f32 FLOP/s with an N³ matmul (N = `--peak_n`).
    #[arg(long)]
    pub peak: bool,
    /// Only measure the peak (no step is built).
    #[arg(long = "peak_only")]
    pub peak_only: bool,
    /// Matmul size for `--peak`.
    #[arg(long = "peak_n", default_value_t = 2048)]
    pub peak_n: i64,
    /// Write the optimized HLO of the step (XLA's text syntax) here.
    #[arg(long = "dump_hlo", value_name = "PATH")]
    pub dump_hlo: Option<PathBuf>,
    /// Path of the PJRT plugin shared library (default: discovered).
    #[arg(long = "pjrt_plugin", value_name = "PATH")]
    pub pjrt_plugin: Option<PathBuf>,
    /// Seed of the initial variables and the random images.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Also time the host input pipeline that feeds this step (CIFAR-10 for
    /// cifar_r18, a JPEG folder for r50_224) and print its examples/s next
    /// to the step's.
    #[arg(long)]
    pub input: bool,
    /// With `--input`: CIFAR-10 folder (cifar_r18) or image folder
    /// (r50_224; default: generated JPEGs).
    #[arg(long = "data_dir", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// With `--input`: pipeline worker threads (default: every core).
    #[arg(long = "input_workers", value_name = "N")]
    pub input_workers: Option<usize>,
    /// Write the initial variables (TF1 names) as `.npy` files with an
    /// `index.json` into DIR, for `tools/bench/jax_step.py --init_from`.
    #[arg(long = "save_init", value_name = "DIR")]
    pub save_init: Option<PathBuf>,
    /// With `--input`: timed batches of the pipeline.
    #[arg(long = "input_batches", value_name = "N", default_value_t = 20)]
    pub input_batches: usize,
    /// With `--input`: time the pipeline for at least this many seconds.
    #[arg(long = "input_seconds", value_name = "S", default_value_t = 3.0)]
    pub input_seconds: f64,
    /// Trace the step with the augmentation on the device (as `simclr run
    /// --augment_on_device`; blur with r50_224) and, with `--input`, time
    /// the pipeline that feeds it (crop and resize only on the host).
    #[arg(long = "augment_on_device")]
    pub augment_on_device: bool,
    /// With `--augment_on_device`: `f32` or `uint8` views.
    #[arg(
        long = "augment_transfer",
        value_name = "f32|uint8",
        default_value = "f32"
    )]
    pub augment_transfer: String,
    /// Arithmetic of the network: float32 or bfloat16 (mixed precision,
    /// as `simclr run --precision`).
    #[arg(long, value_name = "P", default_value = "float32", value_parser = parse_precision)]
    pub precision: Precision,
}

impl BenchArgs {
    /// The augmentation the step applies (`None` without
    /// `--augment_on_device`).
    ///
    /// # Errors
    /// An unknown `--augment_transfer`.
    pub fn device_augment(&self, batch: i64) -> anyhow::Result<Option<DeviceAugment>> {
        if !self.augment_on_device {
            return Ok(None);
        }
        let transfer = crate::data::augment::DeviceTransfer::parse(&self.augment_transfer)?;
        let cfg = step_config(self.config, batch);
        Ok(Some(DeviceAugment {
            image_size: i64::from(cfg.model.image_size),
            views: 2,
            per_replica_batch: batch,
            blur: self.config == BenchModel::R50At224,
            transfer,
        }))
    }
}

/// Inputs of a step that augments on the device: views in [0, 1] (f32 or
/// bytes), labels, parameters that apply every operation to some views,
/// the blur filters.
fn device_inputs(aug: &DeviceAugment, seed: u64) -> anyhow::Result<Vec<HostArray>> {
    use crate::data::augment::{blur_filter, blur_kernel_size, op_code, DEVICE_PARAMS};
    let n = aug.views * aug.per_replica_batch;
    let images = random_images(n, aug.image_size, seed)?;
    let images = match aug.transfer {
        crate::data::augment::DeviceTransfer::F32 => images,
        crate::data::augment::DeviceTransfer::U8 => {
            let bytes: Vec<u8> = images
                .to_f32()?
                .iter()
                .map(|&v| crate::data::augment::quantize_u8(v))
                .collect();
            HostArray::from_u8(&images.dims, &bytes)?
        }
    };
    let orders = [
        [
            op_code::MUL,
            op_code::CONTRAST,
            op_code::SATURATION,
            op_code::HUE,
        ],
        [
            op_code::HUE,
            op_code::SATURATION,
            op_code::CONTRAST,
            op_code::MUL,
        ],
        [
            op_code::SATURATION,
            op_code::MUL,
            op_code::HUE,
            op_code::CONTRAST,
        ],
        [op_code::NONE; 4],
    ];
    let mut params = Vec::with_capacity(n as usize * DEVICE_PARAMS);
    for i in 0..n as usize {
        let o = orders[i % 4];
        params.push((i % 2) as f32);
        params.extend_from_slice(&o);
        params.extend_from_slice(&[1.2, 0.8, 1.1, 0.05]);
        params.push(if i % 5 == 0 { 1.0 } else { 0.0 });
        params.push((i % 2) as f32);
    }
    let mut list = vec![
        images,
        HostArray::from_s32(
            &[aug.per_replica_batch],
            &vec![0; aug.per_replica_batch as usize],
        )?,
        HostArray::from_f32(&[n, DEVICE_PARAMS as i64], &params)?,
    ];
    if aug.blur {
        let s = aug.image_size as usize;
        let mut f = Vec::new();
        for v in 0..aug.views {
            f.extend(blur_filter(blur_kernel_size(s), 0.5 + v as f32));
        }
        let k = f.len() as i64 / aug.views;
        list.push(HostArray::from_f32(&[aug.views, k], &f)?);
    }
    Ok(list)
}

/// `--precision` of the subcommands with their own argument parser.
pub fn parse_precision(s: &str) -> Result<Precision, String> {
    s.parse::<Precision>().map_err(|e| e.to_string())
}

/// The step configuration benchmarked for `model` at `batch` examples.
pub fn step_config(model: BenchModel, batch: i64) -> StepConfig {
    let (depth, image_size, proj_out_dim) = match model {
        BenchModel::CifarR18 => (18, 32, 128),
        BenchModel::R50At224 => (50, 224, 128),
        BenchModel::Tiny => (18, 8, 16),
    };
    StepConfig {
        model: ModelConfig {
            resnet_depth: depth,
            image_size,
            num_classes: 10,
            proj_head_mode: ProjHeadMode::Nonlinear,
            num_proj_layers: 2,
            proj_out_dim,
            ..ModelConfig::default()
        },
        train_mode: TrainMode::Pretrain,
        per_replica_batch: batch,
        num_replicas: 1,
        optimizer: OptimizerConfig {
            kind: OptimizerKind::Lars,
            momentum: 0.9,
            weight_decay: 1e-4,
        },
        schedule: Schedule {
            scaled_lr: 0.3 * batch as f64 / 256.0,
            warmup_steps: 10,
            total_steps: 1000,
        },
        temperature: 0.5,
        hidden_norm: true,
        global_bn: true,
        batch_norm_decay: 0.9,
        lineareval_while_pretraining: false,
        fine_tune_after_block: -1,
        ft_proj_selector: 0,
        precision: Precision::Float32,
    }
}

/// Multiply-accumulates of one forward pass of one image through the
/// backbone's convolutions and the projection head's dense layers.
pub fn forward_macs(cfg: &ModelConfig) -> f64 {
    let w = i64::from(cfg.width_multiplier);
    let (layout, bottleneck) =
        resnet::depth_layout(cfg.resnet_depth).unwrap_or(([2, 2, 2, 2], false));
    let conv = |r: i64, k: i64, cin: i64, cout: i64| (r * r * k * k * cin * cout) as f64;
    let down = |r: i64| (r + 1) / 2;
    let mut r = i64::from(cfg.image_size);
    let mut macs;
    let mut c = 64 * w;
    if cfg.image_size <= 32 {
        macs = conv(r, 3, 3, c);
    } else {
        r = down(r);
        macs = conv(r, 7, 3, c);
        r = down(r);
    }
    for (stage, &blocks) in layout.iter().enumerate() {
        let f = (64 << stage) * w;
        for i in 0..blocks {
            let s = if i == 0 && stage > 0 { 2 } else { 1 };
            let r_out = if s == 2 { down(r) } else { r };
            if bottleneck {
                macs += conv(r, 1, c, f) + conv(r_out, 3, f, f) + conv(r_out, 1, f, 4 * f);
                if i == 0 {
                    macs += conv(r_out, 1, c, 4 * f);
                }
                c = 4 * f;
            } else {
                macs += conv(r_out, 3, c, f) + conv(r_out, 3, f, f);
                if i == 0 {
                    macs += conv(r_out, 1, c, f);
                }
                c = f;
            }
            r = r_out;
        }
    }
    let d = cfg.feature_dim() as f64;
    let layers = cfg.num_proj_layers.max(1);
    macs += d * d * f64::from(layers - 1) + d * f64::from(cfg.proj_out_dim);
    macs
}

/// The analytic training FLOPs per example: forward MACs × 2 FLOPs × 3
/// (forward, input and weight gradients) × 2 views.
pub fn analytic_flops_per_image(cfg: &ModelConfig) -> f64 {
    forward_macs(cfg) * 2.0 * 3.0 * 2.0
}

/// `VmHWM` of `/proc/self/status` in bytes (the process's peak RSS).
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Parses `NAME=VALUE` into a compiler option.
pub fn parse_option(s: &str) -> anyhow::Result<(String, OptionValue)> {
    let (name, value) = s
        .split_once('=')
        .ok_or_else(|| anyhow!("--xla_option {s:?} is not NAME=VALUE"))?;
    let v = match value {
        "true" | "True" => OptionValue::Bool(true),
        "false" | "False" => OptionValue::Bool(false),
        _ => match value.parse::<i64>() {
            Ok(i) => OptionValue::Int(i),
            Err(_) => OptionValue::String(value.to_string()),
        },
    };
    Ok((name.to_string(), v))
}

/// Median, min and max of `xs` (not empty).
fn stats(xs: &[f64]) -> (f64, f64, f64) {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    };
    (median, v[0], v[n - 1])
}

fn option_json(o: &CompileOptions) -> serde_json::Value {
    serde_json::Value::Object(
        o.env_option_overrides
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    OptionValue::String(s) => json!(s),
                    OptionValue::Bool(b) => json!(b),
                    OptionValue::Int(i) => json!(i),
                    OptionValue::Double(d) => json!(d),
                };
                (k.clone(), v)
            })
            .collect(),
    )
}

/// Peak f32 FLOP/s of an `n`³ matmul on the client's first device: the
/// best of 10 runs after 2 warm-up runs.
pub fn measure_peak(client: &Client, options: &CompileOptions, n: i64) -> anyhow::Result<f64> {
    let b = Builder::new("peak_matmul", 1);
    let shape = Shape::new(ElementType::F32, [n, n]);
    let x = b.parameter("x", shape.clone());
    let y = b.parameter("y", shape);
    let module = b.build(&[&x.matmul(&y)])?;
    let exe = client.compile(&module.to_proto(), options)?;
    let count = (n * n) as usize;
    let values: Vec<f32> = (0..count).map(|i| ((i % 17) as f32) * 0.01).collect();
    let host = HostArray::from_f32(&[n, n], &values)?;
    let device = &client.devices()[0];
    let xb = client.buffer_from_host(&host, device)?;
    let yb = client.buffer_from_host(&host, device)?;
    let mut best = f64::INFINITY;
    for i in 0..12 {
        let t = Instant::now();
        let out = exe.execute_keeping_inputs(&[vec![&xb, &yb]])?;
        let dt = t.elapsed().as_secs_f64();
        drop(out);
        if i >= 2 {
            best = best.min(dt);
        }
    }
    Ok(2.0 * (n as f64).powi(3) / best)
}

/// Random images in [0, 1) for `views · batch` examples of `size`².
fn random_images(n: i64, size: i64, seed: u64) -> anyhow::Result<HostArray> {
    let count = (n * size * size * 3) as usize;
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let values: Vec<f32> = (0..count)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 40) as f32 / (1u64 << 24) as f32
        })
        .collect();
    Ok(HostArray::from_f32(&[n, size, size, 3], &values)?)
}

/// Runs `simclr bench`, printing JSON lines to `out`.
pub fn run(args: &BenchArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let batch = args.batch.unwrap_or(match args.config {
        BenchModel::R50At224 => 16,
        BenchModel::Tiny => 2,
        BenchModel::CifarR18 => 64,
    });
    if args.steps == 0 {
        return Err(anyhow!("--steps must be at least 1"));
    }
    let cfg = StepConfig {
        precision: args.precision,
        ..step_config(args.config, batch)
    };
    let options = ClientOptions {
        cpu_device_count: Some(1),
        ..ClientOptions::from_env()
    };
    let mut client = Client::discover(args.pjrt_plugin.as_deref(), false, &options)?;
    // The compile time is one of the figures: always compile.
    client.set_compile_cache(None);
    let mut copts = if args.no_default_options {
        CompileOptions::new(1)
    } else {
        default_compile_options(&client, 1)
    };
    for o in &args.xla_options {
        let (k, v) = parse_option(o)?;
        copts = copts.with_override(k, v);
    }

    if args.peak_only {
        let p = measure_peak(&client, &copts, args.peak_n)?;
        let line = json!({
            "event": "peak",
            "side": "simclr",
            "peak_flops_per_s": p,
            "source": format!("{}^3 f32 dot through the same plugin", args.peak_n),
            "plugin": client.plugin().path(),
            "options": option_json(&copts),
            "loadavg": loadavg(),
        });
        writeln!(out, "{line}")?;
        return Ok(());
    }

    let t = Instant::now();
    let augment = args.device_augment(batch)?;
    let program = match &augment {
        Some(a) => train_program_augmented(&cfg, None, a),
        None => train_program(&cfg),
    }
    .context("tracing the pretraining step")?;
    let trace_seconds = t.elapsed().as_secs_f64();
    let compiled = compile(&client, program, &copts).context("compiling the step")?;
    let exe = &compiled.executable;
    let memory = exe.memory_stats().ok();
    let xla_flops = exe.cost_analysis().ok().and_then(|props| {
        props
            .iter()
            .find(|p| p.name == "flops")
            .and_then(|p| p.as_f64())
    });
    if let Some(path) = &args.dump_hlo {
        let optimized = exe.optimized_program()?;
        let module = optimized
            .hlo_module
            .ok_or_else(|| anyhow!("the plugin returned no optimized module"))?;
        std::fs::write(path, crate::ir::to_text(&module)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }

    let mut state = compiled.init_state(&client, args.seed, &HostState::new())?;
    if let Some(dir) = &args.save_init {
        let names: Vec<&str> = compiled
            .program
            .vars
            .iter()
            .map(|v| v.name.as_str())
            .collect();
        save_init(dir, &names, &compiled.download_state(&state)?)?;
    }
    let size = i64::from(cfg.model.image_size);
    let inputs = match &augment {
        Some(a) => vec![device_inputs(a, args.seed)?],
        None => vec![vec![
            random_images(2 * batch, size, args.seed)?,
            HostArray::from_s32(&[batch], &vec![0; batch as usize])?,
        ]],
    };
    let mut times = Vec::with_capacity(args.steps);
    let mut last_loss = f64::NAN;
    for i in 0..args.warmup + args.steps {
        let t = Instant::now();
        let metrics = compiled.train_step(&client, &mut state, &inputs)?;
        let dt = t.elapsed().as_secs_f64();
        last_loss = metrics[0].1;
        if i >= args.warmup {
            times.push(dt);
            let line = json!({
                "event": "step",
                "side": "simclr",
                "step": i - args.warmup,
                "seconds": dt,
                "loss": last_loss,
                "loadavg": loadavg(),
            });
            writeln!(out, "{line}")?;
            out.flush()?;
        }
    }
    let (median, min, max) = stats(&times);
    let b = batch as f64;
    let ips: Vec<f64> = times.iter().map(|t| b / t).collect();
    let (ips_median, ips_min, ips_max) = stats(&ips);
    let analytic = analytic_flops_per_image(&cfg.model);
    let peak = if args.peak {
        Some(measure_peak(&client, &copts, args.peak_n)?)
    } else {
        None
    };
    let summary = json!({
        "event": "summary",
        "side": "simclr",
        "config": args.config.name(),
        "precision": args.precision.name(),
        "batch": batch,
        "views": 2,
        "plugin": client.plugin().path(),
        "options": option_json(&copts),
        "trace_s": trace_seconds,
        "compile_s": compiled.compile_seconds,
        "warmup_steps": args.warmup,
        "timed_steps": args.steps,
        "step_s": {"median": median, "min": min, "max": max},
        "images_per_s": {"median": ips_median, "min": ips_min, "max": ips_max},
        "memory": {
            "compiled": memory,
            "peak_rss_bytes": peak_rss_bytes(),
        },
        "flops_per_image": {
            "xla_cost_analysis": xla_flops.map(|f| f / b),
            "analytic": analytic,
        },
        "achieved_flops_per_s": analytic * ips_median,
        "peak_flops_per_s": peak.map(|p| json!({"value": p, "source": format!("{}^3 f32 dot through the same plugin", args.peak_n)})),
        "fraction_of_peak": peak.map(|p| analytic * ips_median / p),
        "final_loss": last_loss,
        "loadavg": loadavg(),
    });
    writeln!(out, "{summary}")?;
    if args.input {
        let mut line = super::bench_input::measure(args, batch)?;
        let feeds = line["examples_per_s"].as_f64().unwrap_or(0.0);
        line["step_examples_per_s"] = json!(ips_median);
        line["headroom"] = json!(feeds / ips_median);
        // Were the pipeline on cores of its own, the step would wait for
        // this fraction of the time.
        line["projected_wait_fraction"] = json!((1.0 - feeds / ips_median).max(0.0));
        line["host_bound"] = json!(feeds < ips_median);
        line["loadavg"] = json!(loadavg());
        writeln!(out, "{line}")?;
    }
    Ok(())
}

/// Writes the model variables `names` of `state` as `DIR/<k>.npy`, with
/// `DIR/index.json` mapping each TF1 name to its file.
fn save_init(dir: &std::path::Path, names: &[&str], state: &HostState) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut index = serde_json::Map::new();
    for (k, &name) in names.iter().enumerate() {
        let a = state
            .get(name)
            .ok_or_else(|| anyhow!("the downloaded state lacks {name}"))?;
        let dims: Vec<usize> = a.shape().dims.iter().map(|&d| d.max(0) as usize).collect();
        let arr = crate::npy::NpyArray::new(dims, crate::npy::NpyData::F32(a.to_f32()?))?;
        let file = format!("{k}.npy");
        crate::npy::write(dir.join(&file), &arr)?;
        index.insert(name.to_string(), json!(file));
    }
    let path = dir.join("index.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&index)?)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

fn loadavg() -> Option<String> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
}
