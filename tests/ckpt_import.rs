//! Restoring by `variable_schema` (SPEC §8.5), TF2 → TF1 name mapping,
//! error messages for mismatched flags, and architecture inference over the
//! whole SimCLRv2 model table from `nn::variables` names and shapes.

use simclr::ckpt::import::{self, RestoreOptions, Schema};
use simclr::ckpt::{infer, native, tf, Error, Source, Tensor};
use simclr::nn::{variables, ModelConfig, ProjHeadMode};
use std::collections::BTreeMap;
use std::path::PathBuf;

fn tmpdir(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("ckpt_import_{name}"));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("tmp dir");
    d
}

fn selected(schema: &str, names: &[String]) -> Vec<String> {
    let s = Schema::new(schema).expect("valid schema");
    names
        .iter()
        .filter(|n| s.matches(n).expect("match"))
        .cloned()
        .collect()
}

#[test]
fn readme_schemas_select_what_the_spec_says() {
    let vars = variables(&ModelConfig::default()).expect("R50");
    let model: Vec<String> = vars.iter().map(|v| v.name.clone()).collect();
    let mut all = model.clone();
    all.push("global_step".into());
    all.extend(model.iter().map(|n| format!("{n}/Momentum")));
    all.push("Momentum".into());

    let backbone: Vec<String> = model
        .iter()
        .filter(|n| n.starts_with("base_model/"))
        .cloned()
        .collect();
    let with_proj: Vec<String> = model
        .iter()
        .filter(|n| !n.starts_with("head_supervised"))
        .cloned()
        .collect();
    assert!(backbone.len() > 100 && with_proj.len() > backbone.len());

    // Linear eval: no step, no slots, no heads.
    assert_eq!(selected(import::LINEAR_EVAL_SCHEMA, &all), backbone);
    // Full fine-tune: also the projection head.
    assert_eq!(selected(import::FINETUNE_SCHEMA, &all), with_proj);
    // The intended TF1 default: everything but the step (slots included).
    let mut want: Vec<String> = all.clone();
    want.retain(|n| n != "global_step");
    assert_eq!(selected(import::DEFAULT_SCHEMA, &all), want);
    // re.match anchors at the start only.
    assert_eq!(
        selected("head", &all),
        all.iter()
            .filter(|n| n.starts_with("head"))
            .cloned()
            .collect::<Vec<_>>()
    );
    assert!(selected("conv2d", &all).is_empty());
    assert_eq!(selected("a|base_model/conv2d/kernel$", &all).len(), 1);
    // TF1's literal default is no regex: it reads as what it means, and
    // other patterns of that form get a clear error with the fix.
    let tf1 = selected("?!global_step", &all);
    assert_eq!(tf1, selected("(?!global_step)", &all));
    let err = Schema::new("?!head").expect_err("invalid");
    assert!(err.to_string().contains("(?!head)"), "{err}");
}

fn r18(num_classes: u32) -> ModelConfig {
    ModelConfig {
        resnet_depth: 18,
        image_size: 32,
        num_classes,
        ..ModelConfig::default()
    }
}

fn checkpoint_of(cfg: &ModelConfig, skip_prefix: Option<&str>) -> BTreeMap<String, Tensor> {
    let mut m = BTreeMap::new();
    for (i, v) in variables(cfg).expect("model").iter().enumerate() {
        if skip_prefix.is_some_and(|p| v.name.starts_with(p)) {
            continue;
        }
        let dims: Vec<u64> = v.shape.dims.iter().map(|&d| d as u64).collect();
        let vals: Vec<f32> = (0..v.shape.numel())
            .map(|j| (i * 7 + j) as f32 * 0.001)
            .collect();
        m.insert(v.name.clone(), Tensor::from_f32(&dims, &vals).expect("f32"));
        m.insert(
            format!("{}/Momentum", v.name),
            Tensor::from_f32(&dims, &vals).expect("f32"),
        );
    }
    m.insert("global_step".into(), Tensor::scalar_i64(99));
    m
}

#[test]
fn restore_from_native_checkpoint_and_flag_errors() {
    let dir = tmpdir("native");
    let cfg = r18(10);
    let t = checkpoint_of(&cfg, None);
    native::save(&dir, 99, &t, &serde_json::json!({}), 5).expect("save");
    let src = Source::open(&dir).expect("open model_dir");
    assert_eq!(src.format(), "native");
    let vars = variables(&cfg).expect("model");
    let r = import::restore(
        &vars,
        &src,
        &RestoreOptions {
            variable_schema: import::LINEAR_EVAL_SCHEMA.into(),
            zero_init_logits_layer: true,
            ..RestoreOptions::default()
        },
    )
    .expect("restore");
    assert!(r.restored.iter().all(|n| n.starts_with("base_model/")));
    assert_eq!(
        r.not_selected.len(),
        vars.iter().filter(|v| v.name.starts_with("head")).count()
    );
    assert_eq!(r.zeroed.len(), 2, "kernel and bias of head_supervised");
    for n in &r.restored {
        assert_eq!(r.values[n], t[n], "{n}");
    }
    assert_eq!(r.global_step, Some(99));

    // The CLI reads native model_dirs too.
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_simclr"))
        .args(["ckpt", "info"])
        .arg(&dir)
        .output()
        .expect("simclr runs");
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{text}");
    assert!(
        text.contains("(native)")
            && text.contains("--resnet_depth=18 --width_multiplier=1 --sk_ratio=0 --image_size=32"),
        "{text}"
    );

    // Wrong --num_classes: names the tensor, both shapes and the flag.
    let vars100 = variables(&r18(100)).expect("model");
    let err = import::restore(&vars100, &src, &RestoreOptions::default()).expect_err("mismatch");
    let msg = err.to_string();
    assert!(matches!(err, Error::ShapeMismatch { .. }));
    assert!(
        msg.contains("head_supervised/linear_layer/dense/kernel")
            && msg.contains("[512, 10]")
            && msg.contains("[512, 100]")
            && msg.contains("--num_classes"),
        "{msg}"
    );
    assert!(
        msg.contains("the checkpoint's model is built by: --resnet_depth=18 --width_multiplier=1 --sk_ratio=0 --image_size=32 --num_proj_layers=3 --proj_out_dim=128 --num_classes=10"),
        "{msg}"
    );
    // Wrong --resnet_depth: a mismatch or missing layers, with the right flags.
    let vars34 = variables(&ModelConfig {
        resnet_depth: 34,
        ..r18(10)
    })
    .expect("model");
    let msg = import::restore(&vars34, &src, &RestoreOptions::default())
        .expect_err("mismatch")
        .to_string();
    assert!(msg.contains("--resnet_depth=18"), "{msg}");
    // Wrong --width_multiplier.
    let vars2x = variables(&ModelConfig {
        width_multiplier: 2,
        ..r18(10)
    })
    .expect("model");
    let msg = import::restore(&vars2x, &src, &RestoreOptions::default())
        .expect_err("mismatch")
        .to_string();
    assert!(
        msg.contains("base_model/conv2d/kernel") && msg.contains("--width_multiplier"),
        "{msg}"
    );
    // Wrong --image_size (ImageNet stem vs CIFAR stem).
    let vars224 = variables(&ModelConfig {
        image_size: 224,
        ..r18(10)
    })
    .expect("model");
    let msg = import::restore(&vars224, &src, &RestoreOptions::default())
        .expect_err("mismatch")
        .to_string();
    assert!(msg.contains("--image_size"), "{msg}");
    // Wrong --proj_out_dim.
    let vars64 = variables(&ModelConfig {
        proj_out_dim: 64,
        ..r18(10)
    })
    .expect("model");
    let msg = import::restore(&vars64, &src, &RestoreOptions::default())
        .expect_err("mismatch")
        .to_string();
    assert!(msg.contains("--proj_out_dim"), "{msg}");
}

#[test]
fn model_dir_checkpoint_wins_over_checkpoint_flag() {
    let dir = tmpdir("start");
    let md = dir.join("model_dir");
    let other = dir.join("pretrained");
    assert!(matches!(
        import::start(&md, None).expect("start"),
        import::Start::Fresh
    ));
    match import::start(&md, Some(&other)).expect("start") {
        import::Start::Restore(p) => assert_eq!(p, other),
        s => panic!("{s:?}"),
    }
    native::save(
        &md,
        8,
        &checkpoint_of(&r18(10), None),
        &serde_json::json!({}),
        5,
    )
    .expect("save");
    match import::start(&md, Some(&other)).expect("start") {
        import::Start::Resume(l) => assert_eq!(l.step, 8),
        s => panic!("{s:?}"),
    }
}

#[test]
fn checkpoint_without_projection_head_needs_the_linear_eval_schema() {
    let dir = tmpdir("v1");
    let cfg = r18(10);
    let prefix = dir.join("model.ckpt-5");
    tf::write(
        &prefix,
        &checkpoint_of(&cfg, Some("head_contrastive")),
        false,
    )
    .expect("write");
    let src = Source::open(&prefix).expect("open");
    let vars = variables(&cfg).expect("model");
    let err = import::restore(&vars, &src, &RestoreOptions::default()).expect_err("missing");
    let msg = err.to_string();
    assert!(
        msg.contains("no projection head") && msg.contains(import::LINEAR_EVAL_SCHEMA),
        "{msg}"
    );
    let r = import::restore(
        &vars,
        &src,
        &RestoreOptions {
            allow_missing: true,
            ..RestoreOptions::default()
        },
    )
    .expect("partial");
    assert_eq!(
        r.missing.len(),
        vars.iter()
            .filter(|v| v.name.starts_with("head_contrastive"))
            .count()
    );
    let entries: Vec<(String, Vec<u64>)> = src
        .entries()
        .into_iter()
        .map(|e| (e.name, e.dims))
        .collect();
    let arch = infer::infer(&entries).expect("infer");
    assert!(arch.projection_head.is_none());
    assert_eq!(arch.num_classes, Some(10));
}

#[test]
fn tf2_head_paths_map_to_tf1_names() {
    let s = "/.ATTRIBUTES/VARIABLE_VALUE";
    assert_eq!(
        import::tf2_to_tf1(&format!(
            "model/_projection_head/linear_layers/2/dense/kernel{s}"
        )),
        vec!["head_contrastive/nl_2/dense/kernel"]
    );
    assert_eq!(
        import::tf2_to_tf1(&format!(
            "model/_projection_head/linear_layers/0/bn_relu/bn/moving_variance{s}"
        )),
        vec![
            "head_contrastive/nl_0/batch_normalization/moving_variance",
            "head_contrastive/l_0/batch_normalization/moving_variance"
        ]
    );
    assert_eq!(
        import::tf2_to_tf1(&format!("model/supervised_head/linear_layer/dense/bias{s}")),
        vec!["head_supervised/linear_layer/dense/bias"]
    );
    assert!(import::tf2_to_tf1(&format!(
        "model/resnet_model/block_groups/0/layers/0/projection_layers/0/conv2d/kernel{s}"
    ))
    .is_empty());
    assert!(import::tf2_to_tf1(&format!(
        "model/supervised_head/linear_layer/dense/bias/.OPTIMIZER_SLOT/optimizer/Momentum{s}"
    ))
    .is_empty());

    // A TF2-style bundle restores its heads by the mapping.
    let dir = tmpdir("tf2");
    let cfg = r18(10);
    let mut t = BTreeMap::new();
    for v in variables(&cfg).expect("model") {
        let dims: Vec<u64> = v.shape.dims.iter().map(|&d| d as u64).collect();
        let key = if let Some(rest) = v.name.strip_prefix("head_supervised/") {
            format!("model/supervised_head/{rest}{s}")
        } else if let Some(rest) = v.name.strip_prefix("head_contrastive/nl_") {
            let (j, rest) = rest.split_once('/').expect("layer");
            let rest = rest.replace("batch_normalization/", "bn_relu/batch_normalization/");
            format!("model/_projection_head/linear_layers/{j}/{rest}{s}")
        } else {
            continue;
        };
        t.insert(
            key,
            Tensor::zeros(simclr::ckpt::DType::F32, &dims).expect("zeros"),
        );
    }
    let prefix = dir.join("ckpt-1");
    tf::write(&prefix, &t, false).expect("write");
    let src = Source::open(&prefix).expect("open");
    let vars = variables(&cfg).expect("model");
    let r = import::restore(
        &vars,
        &src,
        &RestoreOptions {
            variable_schema: "head".into(),
            ..RestoreOptions::default()
        },
    )
    .expect("restore heads");
    assert_eq!(r.restored.len(), t.len());
    assert_eq!(r.renamed.len(), t.len());
}

fn entries_of(cfg: &ModelConfig) -> Vec<(String, Vec<u64>)> {
    let mut e: Vec<(String, Vec<u64>)> = variables(cfg)
        .expect("model")
        .into_iter()
        .map(|v| (v.name, v.shape.dims.iter().map(|&d| d as u64).collect()))
        .collect();
    // Extra tensors of released checkpoints do not disturb inference.
    let copies: Vec<(String, Vec<u64>)> = e
        .iter()
        .map(|(n, d)| (format!("{n}/Momentum"), d.clone()))
        .chain(e.iter().map(|(n, d)| (format!("ema_model/{n}"), d.clone())))
        .collect();
    e.extend(copies);
    e.push(("global_step".into(), vec![]));
    e
}

#[test]
fn infers_every_simclr_v2_table_model_and_variants() {
    let mut cfgs = vec![];
    for (depth, width, sk) in [
        (50, 1, false),
        (50, 1, true),
        (50, 2, false),
        (50, 2, true),
        (101, 1, false),
        (101, 1, true),
        (101, 2, false),
        (101, 2, true),
        (152, 1, false),
        (152, 1, true),
        (152, 2, false),
        (152, 2, true),
        (152, 3, true),
    ] {
        cfgs.push(ModelConfig {
            resnet_depth: depth,
            width_multiplier: width,
            sk_ratio: if sk { 0.0625 } else { 0.0 },
            ..ModelConfig::default()
        });
    }
    cfgs.push(r18(10));
    cfgs.push(ModelConfig {
        resnet_depth: 34,
        width_multiplier: 2,
        num_classes: 100,
        ..ModelConfig::default()
    });
    cfgs.push(ModelConfig {
        resnet_depth: 200,
        num_proj_layers: 2,
        proj_out_dim: 64,
        ..ModelConfig::default()
    });
    cfgs.push(ModelConfig {
        proj_head_mode: ProjHeadMode::Linear,
        num_proj_layers: 1,
        image_size: 32,
        ..ModelConfig::default()
    });
    cfgs.push(ModelConfig {
        resnet_depth: 18,
        sk_ratio: 0.0625,
        ..ModelConfig::default()
    });
    for cfg in cfgs {
        let entries = entries_of(&cfg);
        let arch = infer::infer(&entries).unwrap_or_else(|e| panic!("{cfg:?}: {e}"));
        assert_eq!(arch.model_config(), cfg, "flags {:?}", arch.flags());
        let v = infer::verify(&arch, &entries).expect("verify");
        assert!(
            v.missing.is_empty() && v.mismatched.is_empty(),
            "{cfg:?}: {v:?}"
        );
    }
    // R152-3x-SK measures its sk_ratio (reduce width 96 = 1536 · 0.0625).
    let arch = infer::infer(&entries_of(&ModelConfig {
        resnet_depth: 152,
        width_multiplier: 3,
        sk_ratio: 0.0625,
        ..ModelConfig::default()
    }))
    .expect("infer");
    assert!(arch.sk_ratio_measured);
    assert!(infer::infer(&[("x".into(), vec![1])]).is_err());
}
