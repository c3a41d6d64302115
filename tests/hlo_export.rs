//! A large program for XLA's own parser and printer: the CIFAR ResNet-18
//! SimCLR pretraining step (2 replicas, 4 examples per replica, 8×8 images)
//! is lowered to `HloModuleProto` and printed. Here the proto must decode
//! back to the same module and print the same text; with
//! `SIMCLR_HLO_DUMP=<dir>` the test also writes `pretrain_step.hlo` and
//! `pretrain_step.pb` there, which `tools/hlo_check/run <dir>` (run by
//! `tools/test`) checks against XLA: XLA must parse our text and print our
//! proto exactly as we do.

use simclr::ir::{
    from_proto_bytes, golden, to_text_with, Builder, ElementType, PrintOptions, Shape,
};
use simclr::nn::{ModelConfig, ProjHeadMode};
use simclr::simclr::{
    train_program, OptimizerConfig, OptimizerKind, Schedule, StepConfig, TrainMode,
};

fn pretrain_config() -> StepConfig {
    StepConfig {
        model: ModelConfig {
            resnet_depth: 18,
            image_size: 8,
            num_classes: 10,
            proj_head_mode: ProjHeadMode::Nonlinear,
            num_proj_layers: 2,
            proj_out_dim: 32,
            ..ModelConfig::default()
        },
        train_mode: TrainMode::Pretrain,
        per_replica_batch: 4,
        num_replicas: 2,
        optimizer: OptimizerConfig {
            kind: OptimizerKind::Lars,
            momentum: 0.9,
            weight_decay: 1e-4,
        },
        schedule: Schedule {
            scaled_lr: 0.5,
            warmup_steps: 10,
            total_steps: 100,
        },
        temperature: 0.5,
        hidden_norm: true,
        global_bn: true,
        batch_norm_decay: 0.9,
        lineareval_while_pretraining: true,
        fine_tune_after_block: -1,
        ft_proj_selector: 0,
        precision: simclr::nn::Precision::Float32,
    }
}

#[test]
fn resnet18_pretrain_step_exports_for_the_xla_check() {
    let program = train_program(&pretrain_config()).expect("the pretraining step traces");
    let m = &program.module;
    assert!(
        m.instruction_count() > 1000,
        "a ResNet-18 step has thousands of instructions, got {}",
        m.instruction_count()
    );
    let text = golden::golden_text(m).expect("the step prints");
    let proto = golden::golden_proto(m);
    let bytes = prost::Message::encode_to_vec(&proto);
    // The bytes decode to the same proto, which prints the same text.
    let decoded = from_proto_bytes(&bytes).expect("our proto bytes decode");
    assert_eq!(decoded, proto, "the proto does not survive encoding");
    let again = to_text_with(
        &decoded,
        &PrintOptions {
            replica_count: m.num_replicas,
            ..PrintOptions::default()
        },
    )
    .expect("the decoded proto prints");
    assert_eq!(again, text, "printing the decoded proto changes the text");
    for op in ["convolution", "all-reduce", "all-gather", "dot", "reduce"] {
        assert!(text.contains(&format!(" {op}(")), "no {op} in the step");
    }
    if let Ok(dir) = std::env::var("SIMCLR_HLO_DUMP") {
        let dir = std::path::PathBuf::from(dir);
        std::fs::create_dir_all(&dir).expect("create the dump directory");
        std::fs::write(dir.join("pretrain_step.hlo"), &text).expect("write the text");
        std::fs::write(dir.join("pretrain_step.pb"), &bytes).expect("write the proto");
    }
}

/// XLA numbers every fifth parameter of `entry_computation_layout`
/// (`/*index=5*/`), as it does in tuples; the step's 189 parameters showed
/// that our header did not.
#[test]
fn entry_layouts_of_many_parameters_carry_index_comments() {
    let b = Builder::new("seven_params", 1);
    let ps: Vec<_> = (0..7)
        .map(|i| b.parameter(&format!("p{i}"), Shape::new(ElementType::F32, [2])))
        .collect();
    let sum = ps[1..].iter().fold(ps[0].clone(), |acc, p| acc + p);
    let m = b.build(&[&sum]).expect("valid");
    let text = golden::golden_text(&m).expect("prints");
    let header = text.lines().next().unwrap_or_default();
    assert_eq!(
        header,
        "HloModule seven_params, entry_computation_layout={(f32[2]{0}, f32[2]{0}, f32[2]{0}, \
         f32[2]{0}, f32[2]{0}, /*index=5*/f32[2]{0}, f32[2]{0})->f32[2]{0}}",
    );
    if let Ok(dir) = std::env::var("SIMCLR_HLO_DUMP") {
        let dir = std::path::PathBuf::from(dir);
        std::fs::create_dir_all(&dir).expect("create the dump directory");
        std::fs::write(dir.join("seven_params.hlo"), &text).expect("write the text");
        let bytes = prost::Message::encode_to_vec(&golden::golden_proto(&m));
        std::fs::write(dir.join("seven_params.pb"), bytes).expect("write the proto");
    }
}
