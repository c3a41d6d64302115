//! `simclr inspect`: the static report of an export of the CIFAR ResNet-18
//! pretraining step, opened from `file://` in headless Chromium (Debian's
//! `chromium` + `chromium-driver`, driven by `tools/browser/run`): typing a
//! layer scope and a parameter name into the search box shows results,
//! and the console has no errors. If the browser cannot be installed or
//! fails, the test fails.

use simclr::cli::export_hlo::{export, ExportCommand};
use simclr::inspect::report;
use std::path::{Path, PathBuf};
use std::process::Command;

fn export_r18(out: &Path, data: &Path) {
    let args: Vec<String> = [
        "--out",
        &out.display().to_string(),
        &format!("--data_dir={}", data.display()),
        "--train_batch_size=4",
        "--eval_batch_size=4",
        "--image_size=32",
        "--resnet_depth=18",
        "--dataset=cifar10",
        "--num_replicas=1",
        "--proj_out_dim=32",
        "--device_memory=h100",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let cmd = ExportCommand::parse(&args).expect("flags");
    export(&cmd, &mut std::io::sink()).unwrap_or_else(|e| panic!("export failed: {e:#}"));
}

/// Runs `tools/browser/page` and returns its JSON.
fn browse(args: &[&str]) -> serde_json::Value {
    let tool = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tools/browser/page");
    let o = Command::new(&tool)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{} does not start: {e}", tool.display()));
    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.success(),
        "the page check failed ({}):\n{stdout}\n{stderr}",
        o.status
    );
    serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("page check output is not JSON ({e}):\n{stdout}\n{stderr}"))
}

/// The residual blocks (`…/block_group<g>/block<j>`) of a `cost.json`.
fn blocks(cost: &serde_json::Value) -> usize {
    cost["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .filter(|l| {
            let name = l["layer"].as_str().unwrap_or("");
            let mut parts = name.rsplit('/');
            let b = parts.next().unwrap_or("");
            let g = parts.next().unwrap_or("");
            b.strip_prefix("block")
                .is_some_and(|d| d.parse::<u32>().is_ok())
                && g.strip_prefix("block_group")
                    .is_some_and(|d| d.parse::<u32>().is_ok())
        })
        .count()
}

#[test]
fn report_search_finds_layers_and_parameters_in_headless_chromium_without_console_errors() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = tmp.path().join("export");
    let data = tmp.path().join("no-data");
    std::fs::create_dir_all(&data).expect("mkdir");
    export_r18(&out, &data);
    let report_dir = out.join("report");
    let summary = report::build(&out, &report_dir).expect("report builds");
    assert_eq!(summary.programs, 2);
    assert!(summary.search_entries > 1000, "{summary:?}");
    for f in [
        "index.html",
        "pretrain.html",
        "eval.html",
        "report.css",
        "report.js",
        "search_index.js",
    ] {
        assert!(report_dir.join(f).is_file(), "{f} missing");
    }
    let page = std::fs::read_to_string(report_dir.join("pretrain.html")).expect("page");
    for want in [
        "id=\"memory\"",
        "id=\"layers\"",
        "base_model/block_group3",
        "before</h4>",
        "after</h4>",
        " fusion ",
        "LARS + decay",
    ] {
        assert!(page.contains(want), "pretrain.html lacks {want:?}");
    }

    // A convolution kernel of block_group3 (TF1 variable names are flat;
    // conv2d_14 is a convolution of block_group3/block1).
    let param = "base_model/conv2d_14/kernel".to_string();
    let params = std::fs::read_to_string(out.join("pretrain/params.tsv")).expect("params");
    assert!(
        params.contains(&format!("{param}\t")),
        "{param} not in params.tsv"
    );

    // The pictures: one bar per residual block, the memory breakdown, and
    // the roofline of the H100 named at export; rendered, not blank.
    let cost: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("pretrain/cost.json")).expect("cost.json"),
    )
    .expect("cost json");
    let n_blocks = blocks(&cost);
    assert_eq!(n_blocks, 8, "ResNet-18 has 8 residual blocks");
    let shot = tmp.path().join("charts.png");
    let shot_s = shot.display().to_string();
    let page_s = report_dir.join("pretrain.html").display().to_string();
    let r = browse(&[
        &page_s,
        "--count",
        "#chart-block-flops rect.bar",
        "--count",
        "#chart-block-bytes rect.bar",
        "--count",
        "#chart-memory rect.bar",
        "--count",
        "#roofline",
        "--count",
        "#roofline circle.pt",
        "--screenshot",
        &shot_s,
        "--scroll-to",
        "#chart-block-flops",
    ]);
    let count = |sel: &str| r["counts"][sel].as_u64().unwrap_or(0) as usize;
    let visible = |sel: &str| r["visible"][sel].as_u64().unwrap_or(0) as usize;
    assert_eq!(count("#chart-block-flops rect.bar"), n_blocks, "{r}");
    assert_eq!(visible("#chart-block-flops rect.bar"), n_blocks, "{r}");
    assert_eq!(count("#chart-block-bytes rect.bar"), n_blocks, "{r}");
    assert!(count("#chart-memory rect.bar") >= 5, "{r}");
    assert_eq!((count("#roofline"), visible("#roofline")), (1, 1), "{r}");
    assert!(count("#roofline circle.pt") > 20, "{r}");
    let png = image::open(&shot)
        .unwrap_or_else(|e| panic!("{}: {e}", shot.display()))
        .to_rgb8();
    let total = png.pixels().len();
    let blank = png.pixels().filter(|p| p.0 == [255, 255, 255]).count();
    let bar_blue = png
        .pixels()
        .filter(|p| {
            let [r, g, b] = p.0;
            r.abs_diff(0x4a) < 12 && g.abs_diff(0x78) < 12 && b.abs_diff(0xc2) < 12
        })
        .count();
    assert!(
        total - blank > total / 20,
        "the screenshot is nearly blank: {blank} of {total} pixels white"
    );
    assert!(
        bar_blue > 2000,
        "the screenshot shows few bar pixels ({bar_blue})"
    );

    let tool = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tools/browser/run");
    let o = Command::new(&tool)
        .arg(report_dir.join("index.html"))
        .arg("block_group3")
        .arg(&param)
        .output()
        .unwrap_or_else(|e| panic!("{} does not start: {e}", tool.display()));
    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.success(),
        "the browser check failed ({}):\n{stdout}\n{stderr}",
        o.status
    );
    let r: serde_json::Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("browser check output is not JSON ({e}):\n{stdout}\n{stderr}"));
    assert_eq!(r["index_loaded"], true, "{r}");
    assert!(
        r["console"]
            .as_array()
            .is_some_and(|c| c.iter().all(|e| e["level"] != "SEVERE")),
        "{r}"
    );
    assert!(
        r["queries"]["block_group3"]["results"]
            .as_u64()
            .unwrap_or(0)
            > 0,
        "{r}"
    );
    let first = r["queries"][param.as_str()]["first"]
        .as_array()
        .expect("titles");
    assert!(
        first.iter().any(|t| t == param.as_str()),
        "searching {param} does not list it first: {r}"
    );
}

#[test]
fn a_report_of_an_uncompiled_export_shows_the_unoptimized_module_and_the_estimate() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = tmp.path().join("export");
    let args: Vec<String> = [
        "--out",
        &out.display().to_string(),
        "--no_compile",
        "--train_mode=finetune",
        "--image_size=32",
        "--resnet_depth=18",
        "--train_batch_size=4",
        "--eval_batch_size=4",
        "--dataset=cifar10",
        &format!("--data_dir={}", tmp.path().display()),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let cmd = ExportCommand::parse(&args).expect("flags");
    export(&cmd, &mut std::io::sink()).unwrap_or_else(|e| panic!("export failed: {e:#}"));
    let report_dir = tmp.path().join("report");
    let summary = report::build(&out, &report_dir).expect("report builds");
    assert_eq!(summary.programs, 2);
    let page = std::fs::read_to_string(report_dir.join("finetune.html")).expect("page");
    assert!(page.contains("No optimized module"), "finetune.html");
    assert!(
        page.contains(">estimate<"),
        "finetune.html shows the estimate"
    );
    assert!(page.contains("not optimized") || page.contains("not trainable"));
    // Pictures from the unoptimized module; no device, so no roofline.
    assert!(
        page.matches("class=\"bar\"").count() > 8,
        "finetune.html has bar charts"
    );
    assert!(page.contains("id=\"chart-block-flops\""));
    assert!(!page.contains("id=\"roofline\"") && page.contains("No roofline"));
}
