//! `simclr model` prints the parameter counts of the SimCLRv2 table, and
//! `simclr ckpt export_tf` turns a simclr checkpoint into a TensorFlow one.

use std::collections::BTreeMap;
use std::process::Command;

fn simclr(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_simclr"))
        .args(args)
        .output()
        .expect("runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn model_json_counts_resnet18_cifar_and_separates_backbone_and_heads() {
    let (ok, out, err) = simclr(&[
        "model",
        "--resnet_depth",
        "18",
        "--image_size",
        "32",
        "--num_classes",
        "10",
        "--json",
    ]);
    assert!(ok, "{err}");
    let j: serde_json::Value = serde_json::from_str(&out).expect("json");
    let vars = j["variables"].as_array().expect("variables");
    let backbone: u64 = vars
        .iter()
        .filter(|v| {
            v["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("base_model/"))
                && v["trainable"] == true
        })
        .map(|v| {
            v["shape"]
                .as_array()
                .map_or(1, |s| s.iter().filter_map(|d| d.as_u64()).product())
        })
        .sum();
    assert_eq!(backbone, 11_173_056);
    let p = &j["params"];
    assert_eq!(
        p["total"].as_u64(),
        Some(p["trainable"].as_u64().unwrap_or(0) + p["non_trainable"].as_u64().unwrap_or(0))
    );
    let (ok, out, _) = simclr(&["model", "--resnet_depth", "50", "--sk_ratio", "0.0625"]);
    assert!(ok);
    assert!(
        out.contains("35.28 M with statistics"),
        "R50-1x-SK backbone is 35.28 M: {out}"
    );
    let (ok, _, err) = simclr(&["model", "--resnet_depth", "42"]);
    assert!(!ok && err.contains("--resnet_depth=42"), "{err}");
}

#[test]
fn export_tf_writes_a_checkpoint_that_reads_back_bit_exact() {
    let dir = std::env::temp_dir().join(format!("simclr-export-tf-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut tensors = BTreeMap::new();
    tensors.insert(
        "base_model/conv2d/kernel".to_string(),
        simclr::ckpt::Tensor::from_f32(&[1, 1, 2, 3], &[0.5, -1.0, 2.0, 3.25, -0.0, 7.0])
            .expect("tensor"),
    );
    tensors.insert(
        "base_model/conv2d/kernel/Momentum".to_string(),
        simclr::ckpt::Tensor::from_f32(&[1, 1, 2, 3], &[0.0; 6]).expect("tensor"),
    );
    tensors.insert(
        "global_step".to_string(),
        simclr::ckpt::Tensor::scalar_i64(7),
    );
    simclr::ckpt::native::save(&dir, 7, &tensors, &serde_json::json!({}), 1).expect("save");
    let prefix = dir.join("tf/model.ckpt-7");
    let (ok, out, err) = simclr(&[
        "ckpt",
        "export_tf",
        dir.to_str().unwrap_or(""),
        prefix.to_str().unwrap_or(""),
    ]);
    assert!(ok, "{err}");
    assert!(
        out.contains("wrote 2 tensors"),
        "slots are left out by default: {out}"
    );
    let r = simclr::ckpt::tf::Reader::open(&prefix).expect("TF checkpoint opens");
    let k = r.read("base_model/conv2d/kernel").expect("kernel");
    assert_eq!(k, tensors["base_model/conv2d/kernel"]);
    assert_eq!(r.read("global_step").expect("step").as_i64(), Some(7));
}
