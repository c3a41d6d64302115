//! `simclr run --train_mode=distill` end to end on the real CIFAR-10 copy:
//! a teacher fine-tuned on the 10 % labelled subset, then a student
//! distilled from it on every training image (labels of the subset mixed
//! in), resumed from its checkpoint and evaluated. The student's agreement
//! with the teacher rises; its checkpoints hold only the student and a
//! record of the teacher.

use std::path::{Path, PathBuf};

use crate::run_support;
use run_support::{data_dir, ok, run};

fn tmp(name: &str) -> PathBuf {
    run_support::tmp("distill", name)
}

fn common(model_dir: &Path, extra: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = [
        "--dataset=cifar10",
        "--image_size=32",
        "--resnet_depth=18",
        "--eval_split=test",
        "--num_replicas=1",
        "--train_batch_size=16",
        "--eval_batch_size=100",
        "--eval_steps=2",
        "--warmup_epochs=0",
        "--optimizer=momentum",
        "--weight_decay=0",
        "--learning_rate=0.2",
        "--train_summary_steps=1",
        "--use_tpu=False",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    a.push(format!("--model_dir={}", model_dir.display()));
    a.push(format!("--data_dir={}", data_dir()));
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

fn metrics(model_dir: &Path, key: &str) -> Vec<(i64, f64)> {
    std::fs::read_to_string(model_dir.join("metrics.jsonl"))
        .expect("metrics.jsonl")
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|m| Some((m["step"].as_i64()?, m[key].as_f64()?)))
        .collect()
}

#[test]
fn cifar_student_agreement_with_a_fine_tuned_teacher_rises() {
    let teacher = tmp("teacher");
    let err = ok(&common(
        &teacher,
        &[
            "--train_mode=finetune",
            "--labeled_percent=10",
            "--train_steps=8",
            "--checkpoint_steps=8",
        ],
    ));
    assert!(err.contains("10 % labelled subset"), "{err}");

    // Distillation without a teacher is refused before anything runs.
    let student = tmp("student");
    let (success, err) = run(&common(
        &student,
        &["--train_mode=distill", "--train_steps=1"],
    ));
    assert!(
        !success && err.contains("needs --teacher_checkpoint"),
        "{err}"
    );

    let t = format!("--teacher_checkpoint={}", teacher.display());
    let distill = |steps: &str, mode: &str| {
        common(
            &student,
            &[
                "--train_mode=distill",
                &t,
                "--labeled_percent=10",
                "--distill_label_weight=0.2",
                "--distill_temperature=1",
                steps,
                "--checkpoint_steps=5",
                mode,
            ],
        )
    };
    let err = ok(&distill("--train_steps=5", "--mode=train"));
    assert!(err.contains("teacher ResNet-18 1×"), "{err}");
    assert!(err.contains("5000 labelled examples"), "{err}");
    // The checkpoint: the student and its optimizer, a record of the teacher.
    let ck = simclr::ckpt::native::load(&student.join("ckpt-5.safetensors")).expect("checkpoint");
    assert!(ck.tensors.keys().all(|k| !k.starts_with("teacher")));
    assert!(ck.tensors.contains_key("base_model/conv2d/kernel/Momentum"));
    assert_eq!(ck.meta["train_mode"], "distill");
    assert_eq!(ck.meta["teacher"]["model"]["resnet_depth"], 18);
    assert!(ck.meta["teacher"]["checkpoint"]
        .as_str()
        .is_some_and(|p| p.contains("ckpt-8")));

    // Resume to step 10, then evaluate the student.
    let err = ok(&distill("--train_steps=10", "--mode=train_then_eval"));
    assert!(err.contains("resuming from"), "{err}");
    assert!(student.join("result.json").exists(), "{err}");

    let agree = metrics(&student, "teacher_agreement");
    assert_eq!(agree.len(), 10, "one entry per step: {agree:?}");
    let mean = |s: &[(i64, f64)]| s.iter().map(|x| x.1).sum::<f64>() / s.len() as f64;
    // Step 1 reports the initial student, before any update.
    let (first, last) = (agree[0].1, mean(&agree[7..]));
    assert!(
        last > first + 0.3,
        "agreement rises: step 1 {first:.3}, last steps {last:.3}: {agree:?}"
    );
    let teacher_acc = metrics(&student, "teacher_acc");
    assert!(teacher_acc.iter().all(|(_, a)| (0.0..=1.0).contains(a)));
    let _ = std::fs::remove_dir_all(&teacher);
    let _ = std::fs::remove_dir_all(&student);
}
