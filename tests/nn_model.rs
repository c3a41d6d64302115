//! The model zoo against the original: parameter counts of the SimCLRv2
//! table (SPEC §3.8, fixtures/param_counts.json) and TF1 variable names.

use simclr::nn::{variables, ModelConfig, Variable};
use std::path::PathBuf;

fn shared() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared")
}

fn counts(vars: &[Variable], prefix: &str) -> (usize, usize, usize, usize) {
    let mut out = (0, 0, 0, 0);
    for v in vars.iter().filter(|v| v.name.starts_with(prefix)) {
        out.2 += v.shape.numel();
        out.3 += 1;
        if v.trainable {
            out.0 += v.shape.numel();
            out.1 += 1;
        }
    }
    out
}

#[test]
fn simclr_v2_table_parameter_counts_match_the_original() {
    let path = shared().join("fixtures/tf-reference/param_counts.json");
    let text = std::fs::read_to_string(&path).expect("param_counts.json");
    let json: serde_json::Value = serde_json::from_str(&text).expect("valid json");
    let configs = json["configs"].as_array().expect("configs");
    assert_eq!(configs.len(), 13);
    for c in configs {
        let cfg = ModelConfig {
            resnet_depth: c["depth"].as_u64().expect("depth") as u32,
            width_multiplier: c["width_multiplier"].as_u64().expect("width") as u32,
            sk_ratio: c["sk_ratio"].as_f64().expect("sk"),
            image_size: 224,
            num_classes: 1000,
            ..ModelConfig::default()
        };
        let vars = variables(&cfg).expect("model builds");
        let label = format!(
            "R{}-{}x sk={}",
            cfg.resnet_depth, cfg.width_multiplier, cfg.sk_ratio
        );
        for (prefix, key) in [
            ("base_model/", "base"),
            ("head_contrastive/", "projection_head"),
            ("head_supervised/", "supervised_head_1000_classes"),
        ] {
            let (ts, tv, als, alv) = counts(&vars, prefix);
            let want = &c[key];
            assert_eq!(
                (ts as u64, tv as u64, als as u64, alv as u64),
                (
                    want["trainable_scalars"].as_u64().unwrap_or(0),
                    want["trainable_variables"].as_u64().unwrap_or(0),
                    want["all_scalars"].as_u64().unwrap_or(0),
                    want["all_variables"].as_u64().unwrap_or(0),
                ),
                "{label} {prefix}: (trainable scalars, trainable vars, all scalars, all vars)"
            );
        }
    }
}

#[test]
fn resnet18_cifar_names_and_shapes_match_tf1() {
    let cfg = ModelConfig {
        resnet_depth: 18,
        image_size: 32,
        num_classes: 10,
        ..ModelConfig::default()
    };
    let vars = variables(&cfg).expect("model builds");
    let (trainable, _, _, _) = counts(&vars, "base_model/");
    assert_eq!(
        trainable, 11_173_056,
        "ResNet-18 CIFAR trainable backbone scalars"
    );
    let path = shared().join("fixtures/tf-reference/tf1_resnet18_cifar32/tf1_variables.json");
    let text = std::fs::read_to_string(&path).expect("tf1_variables.json");
    let want: Vec<serde_json::Value> = serde_json::from_str(&text).expect("valid json");
    let got: Vec<(String, Vec<i64>)> = vars
        .iter()
        .map(|v| (v.name.clone(), v.shape.dims.clone()))
        .collect();
    let want: Vec<(String, Vec<i64>)> = want
        .iter()
        .map(|v| {
            (
                v["tf1_name"].as_str().unwrap_or("").to_string(),
                v["shape"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|d| d.as_i64()).collect())
                    .unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(got, want, "TF1 names, shapes and creation order");
}

#[test]
fn r50_names_follow_tf1_creation_order() {
    let vars = variables(&ModelConfig::default()).expect("R50 builds");
    let convs: Vec<&Variable> = vars
        .iter()
        .filter(|v| v.name.starts_with("base_model/conv2d"))
        .collect();
    assert_eq!(
        convs
            .first()
            .map(|v| (v.name.as_str(), v.shape.dims.clone())),
        Some(("base_model/conv2d/kernel", vec![7, 7, 3, 64]))
    );
    assert_eq!(convs[1].name, "base_model/conv2d_1/kernel");
    assert_eq!(
        convs[1].shape.dims,
        vec![1, 1, 64, 256],
        "stage-1 projection shortcut comes first"
    );
    assert_eq!(convs[2].shape.dims, vec![1, 1, 64, 64]);
    assert_eq!(convs[3].shape.dims, vec![3, 3, 64, 64]);
    assert_eq!(
        convs.last().map(|v| v.name.as_str()),
        Some("base_model/conv2d_52/kernel")
    );
    let sk = variables(&ModelConfig {
        sk_ratio: 0.0625,
        ..ModelConfig::default()
    })
    .expect("R50-SK builds");
    let last_conv = sk
        .iter()
        .rfind(|v| v.name.starts_with("base_model/conv2d"))
        .map(|v| v.name.clone());
    let last_bn = sk
        .iter()
        .rfind(|v| v.name.starts_with("base_model/batch_normalization"))
        .map(|v| v.name.clone());
    assert_eq!(last_conv.as_deref(), Some("base_model/conv2d_86/kernel"));
    assert_eq!(
        last_bn.as_deref(),
        Some("base_model/batch_normalization_70/moving_variance")
    );
    let first_bn = sk
        .iter()
        .find(|v| v.name == "base_model/batch_normalization/gamma")
        .map(|v| v.shape.dims.clone());
    assert_eq!(
        first_bn,
        Some(vec![32]),
        "the SK stem's first BN has 32 channels"
    );
}
