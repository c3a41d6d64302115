//! Smoke test of `simclr bench`: one timed step of the tiny configuration
//! prints step and summary JSON lines with the fields the side-by-side
//! table reads; the analytic FLOP counts match the published figures.

use clap::Parser;
use simclr::cli::bench::{analytic_flops_per_image, step_config, BenchModel};
use simclr::cli::Cli;

#[test]
fn analytic_flops_match_the_published_counts() {
    // BENCHMARKS.md: 6.67 GFLOP (convolutions) for CIFAR ResNet-18, 49.1 for
    // ResNet-50 at 224; ours also counts the projection head.
    let r18 = analytic_flops_per_image(&step_config(BenchModel::CifarR18, 64).model) / 1e9;
    let r50 = analytic_flops_per_image(&step_config(BenchModel::R50At224, 16).model) / 1e9;
    assert!((r18 - 6.72).abs() < 0.01, "{r18}");
    assert!((r50 - 49.1).abs() < 0.05, "{r50}");
}

#[test]
fn one_step_of_the_tiny_config_prints_json_lines() {
    let cli = Cli::try_parse_from([
        "simclr", "bench", "--config", "tiny", "--steps", "1", "--warmup", "0",
    ])
    .expect("arguments parse");
    let Cli::Bench(args) = cli else {
        panic!("not the bench subcommand")
    };
    let mut out = Vec::new();
    simclr::cli::bench::run(&args, &mut out).expect("bench runs");
    let text = String::from_utf8(out).expect("utf-8");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert_eq!(lines[0]["event"], "step");
    let s = &lines[1];
    assert_eq!(s["event"], "summary");
    assert_eq!(s["config"], "tiny");
    assert!(s["compile_s"].as_f64().expect("compile_s") > 0.0);
    assert!(s["images_per_s"]["median"].as_f64().expect("images/s") > 0.0);
    assert!(s["final_loss"].as_f64().expect("loss").is_finite());
    assert!(s["flops_per_image"]["analytic"].as_f64().expect("flops") > 0.0);
}

fn bench_args(argv: &[&str]) -> simclr::cli::bench::BenchArgs {
    let mut all = vec!["simclr", "bench"];
    all.extend_from_slice(argv);
    match Cli::try_parse_from(all).expect("arguments parse") {
        Cli::Bench(args) => args,
        _ => panic!("not the bench subcommand"),
    }
}

fn cifar_dir() -> String {
    std::env::var("SIMCLR_DATA_DIR").unwrap_or_else(|_| {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/data/cifar10")
            .display()
            .to_string()
    })
}

#[test]
fn input_figures_stand_next_to_the_steps() {
    let dir = cifar_dir();
    let args = bench_args(&[
        "--config",
        "tiny",
        "--batch",
        "4",
        "--steps",
        "1",
        "--warmup",
        "0",
        "--input",
        "--input_batches",
        "3",
        "--input_seconds",
        "0",
        "--data_dir",
        &dir,
    ]);
    let mut out = Vec::new();
    simclr::cli::bench::run(&args, &mut out).expect("bench runs");
    let text = String::from_utf8(out).expect("utf-8");
    let input: serde_json::Value = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("JSON"))
        .find(|v| v["event"] == "input")
        .unwrap_or_else(|| panic!("no input line in {text}"));
    assert_eq!(input["views"], 2);
    assert_eq!(input["batches"], 3);
    let feeds = input["examples_per_s"].as_f64().expect("examples_per_s");
    let eats = input["step_examples_per_s"].as_f64().expect("step rate");
    assert!(feeds > 0.0 && eats > 0.0, "{input}");
    assert_eq!(input["host_bound"], feeds < eats, "{input}");
    assert!(input["source"]
        .as_str()
        .expect("source")
        .contains("cifar10"));
}

#[test]
fn the_224_pipeline_reads_a_generated_jpeg_folder() {
    let args = bench_args(&[
        "--config",
        "r50_224",
        "--batch",
        "2",
        "--input_batches",
        "2",
        "--input_seconds",
        "0",
        "--input_workers",
        "2",
    ]);
    let line = simclr::cli::bench_input::measure(&args, 2).expect("pipeline runs");
    assert_eq!(line["batches"], 2, "{line}");
    assert!(line["examples_per_s"].as_f64().expect("rate") > 0.0);
    assert!(line["source"]
        .as_str()
        .expect("source")
        .contains("generated"));
}

#[test]
fn a_missing_cifar_folder_is_named() {
    let args = bench_args(&["--config", "cifar_r18", "--data_dir", "/nonexistent/cifar"]);
    let err = simclr::cli::bench_input::measure(&args, 8).expect_err("no data");
    assert!(format!("{err:#}").contains("/nonexistent/cifar"), "{err:#}");
}
