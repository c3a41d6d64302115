//! The output type of a bf16 convolution on a PJRT plugin: one ResNet 3×3
//! convolution (NHWC `[N,32,32,C]` × HWIO `[3,3,C,C]`, N = 64, C = 64 by
//! default) compiled and timed as
//!
//! * `f32`: f32 operands, f32 result (the float32 program);
//! * `bf16->bf16`: bf16 operands and result (what `--precision=bfloat16`
//!   traces), then widened to f32 for the host;
//! * `bf16->f32`: bf16 operands, f32 result (the `preferred_element_type`
//!   form), the same module with the convolution's result type changed.
//!
//! `cargo run --release --example conv_precision -- [N] [C] [REPS]`
//!
//! Prints one JSON line per variant: compile seconds, median execution
//! seconds over REPS runs (default 10), and the number of convolutions,
//! converts and fusions in XLA's optimized module, so a backend that keeps
//! bf16 can be told from one that widens it.

use std::time::Instant;

use anyhow::{anyhow, Context};
use serde_json::json;
use simclr::ir::{Builder, ConvDims, ElementType, Shape, Window, WindowDim};
use simclr::pjrt::{Client, ClientOptions, HostArray};
use simclr::proto::PrimitiveType;
use simclr::train::default_compile_options;

fn module(n: i64, c: i64, variant: &str) -> anyhow::Result<simclr::proto::HloModuleProto> {
    let b = Builder::new("conv", 1);
    let x = b.parameter("x", Shape::new(ElementType::F32, [n, 32, 32, c]));
    let w = b.parameter("w", Shape::new(ElementType::F32, [3, 3, c, c]));
    let ty = if variant == "f32" {
        ElementType::F32
    } else {
        ElementType::Bf16
    };
    let (x, w) = if ty == ElementType::F32 {
        (x, w)
    } else {
        (x.convert(ty), w.convert(ty))
    };
    let d = WindowDim::new(3).pad(1, 1);
    let y = x.conv_general(&w, Window::new(vec![d.clone(), d]), ConvDims::nhwc(), 1, 1);
    let out = if ty == ElementType::F32 {
        y
    } else {
        y.convert(ElementType::F32)
    };
    let mut proto = b.build(&[&out])?.to_proto();
    if variant == "bf16->f32" {
        // The convolution's own result becomes f32; the convert after it
        // turns into f32 → f32, which XLA removes.
        let conv = proto
            .computations
            .iter_mut()
            .flat_map(|c| c.instructions.iter_mut())
            .find(|i| i.opcode == "convolution")
            .ok_or_else(|| anyhow!("no convolution"))?;
        if let Some(s) = conv.shape.as_mut() {
            s.element_type = PrimitiveType::F32 as i32;
        }
    }
    Ok(proto)
}

fn count(text: &str, what: &str) -> usize {
    text.lines().filter(|l| l.contains(what)).count()
}

fn main() -> anyhow::Result<()> {
    let args: Vec<i64> = std::env::args()
        .skip(1)
        .map(|a| a.parse::<i64>().context("arguments are N C REPS"))
        .collect::<Result<_, _>>()?;
    let n = args.first().copied().unwrap_or(64);
    let c = args.get(1).copied().unwrap_or(64);
    let reps = args.get(2).copied().unwrap_or(10).max(1) as usize;
    let mut copts = ClientOptions::from_env();
    copts.cpu_device_count = Some(1);
    let client = Client::discover(None, false, &copts)?;
    let xs: Vec<f32> = (0..n * 32 * 32 * c)
        .map(|i| ((i * 7919 % 1000) as f32) / 1000.0 - 0.5)
        .collect();
    let ws: Vec<f32> = (0..9 * c * c)
        .map(|i| ((i * 104_729 % 1000) as f32) / 10_000.0 - 0.05)
        .collect();
    let inputs = vec![
        HostArray::from_f32(&[n, 32, 32, c], &xs)?,
        HostArray::from_f32(&[3, 3, c, c], &ws)?,
    ];
    let mut reference: Option<Vec<f32>> = None;
    for variant in ["f32", "bf16->bf16", "bf16->f32"] {
        let proto = module(n, c, variant)?;
        let t = Instant::now();
        let exe = client.compile(&proto, &default_compile_options(&client, 1))?;
        let compile_s = t.elapsed().as_secs_f64();
        let optimized = exe
            .optimized_program()?
            .hlo_module
            .map(|m| simclr::ir::to_text(&m))
            .transpose()?
            .unwrap_or_default();
        let mut times = Vec::with_capacity(reps);
        let mut out = vec![];
        for _ in 0..reps + 1 {
            let t = Instant::now();
            out = exe.execute_host(std::slice::from_ref(&inputs))?[0][0].to_f32()?;
            times.push(t.elapsed().as_secs_f64());
        }
        times.remove(0);
        times.sort_by(f64::total_cmp);
        let median = times[times.len() / 2];
        let scale = out.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-30);
        let diff = reference.as_ref().map(|r| {
            r.iter()
                .zip(&out)
                .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()))
                / scale
        });
        if reference.is_none() {
            reference = Some(out.clone());
        }
        let line = json!({
            "variant": variant,
            "shape": format!("[{n},32,32,{c}] x [3,3,{c},{c}]"),
            "compile_s": compile_s,
            "run_s_median": median,
            "gflop_per_s": 2.0 * (n * 32 * 32 * c * 9 * c) as f64 / median / 1e9,
            "max_rel_diff_vs_f32": diff,
            "optimized": {
                "bf16_convolutions": optimized.lines().filter(|l| l.contains("convolution(") && l.contains("= bf16[")).count(),
                "f32_convolutions": optimized.lines().filter(|l| l.contains("convolution(") && l.contains("= f32[")).count(),
                "converts": count(&optimized, "convert"),
            },
        });
        println!("{line}");
    }
    Ok(())
}
