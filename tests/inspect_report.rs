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
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let cmd = ExportCommand::parse(&args).expect("flags");
    export(&cmd, &mut std::io::sink()).unwrap_or_else(|e| panic!("export failed: {e:#}"));
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
}
