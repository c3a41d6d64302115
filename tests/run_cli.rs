//! `simclr run` end to end on the real CIFAR-10 copy and on a small image
//! folder, with the original README's commands (step counts overridden):
//! pretraining, linear evaluation from its checkpoint, an ImageNet-style
//! fine-tune, resume after SIGKILL, truncated checkpoints, NaN losses and
//! bad flags.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::run_support;
use run_support::{data_dir, exe, ok, s, simclr};

fn tmp(name: &str) -> PathBuf {
    run_support::tmp("run", name)
}

/// The README's CIFAR-10 pretraining command, shrunk to a few steps.
fn cifar_pretrain(model_dir: &Path, extra: &[&str]) -> Vec<String> {
    let mut a = s(&[
        "--train_mode=pretrain",
        "--train_batch_size=512",
        "--train_epochs=1000",
        "--learning_rate=1.0",
        "--weight_decay=1e-4",
        "--temperature=0.5",
        "--dataset=cifar10",
        "--image_size=32",
        "--eval_split=test",
        "--resnet_depth=18",
        "--use_blur=False",
        "--color_jitter_strength=0.5",
        "--use_tpu=False",
    ]);
    a.push(format!("--model_dir={}", model_dir.display()));
    a.push(format!("--data_dir={}", data_dir()));
    // Overrides that keep the test small.
    a.extend(s(&[
        "--train_batch_size=8",
        "--train_steps=2",
        "--checkpoint_steps=2",
        "--num_replicas=2",
        "--eval_batch_size=16",
        "--eval_steps=1",
        "--knn_bank_size=32",
    ]));
    a.extend(s(extra));
    a
}

fn metrics(model_dir: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(model_dir.join("metrics.jsonl")).expect("metrics.jsonl");
    text.lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect()
}

/// The last logged total loss of every step.
fn losses(model_dir: &Path) -> std::collections::BTreeMap<i64, f64> {
    metrics(model_dir)
        .into_iter()
        .filter_map(|m| Some((m["step"].as_i64()?, m["total_loss"].as_f64()?)))
        .collect()
}

fn safetensors_f32(path: &Path, name: &str) -> Vec<u8> {
    let c = simclr::ckpt::native::load(path).expect("checkpoint loads");
    c.tensors
        .get(name)
        .map(|t| t.bytes.clone())
        .unwrap_or_default()
}

#[test]
fn readme_cifar_pretraining_then_linear_evaluation() {
    let pre = tmp("pretrain");
    let err = ok(&cifar_pretrain(&pre, &[]));
    assert!(err.contains("k-NN (k=200, cosine) top-1"), "{err}");
    for f in [
        "ckpt-2.safetensors",
        "checkpoint.json",
        "flags.json",
        "metrics.jsonl",
    ] {
        assert!(pre.join(f).exists(), "{f} missing in {}", pre.display());
    }
    let m = metrics(&pre);
    let first = &m[0];
    for key in [
        "total_loss",
        "contrast_loss",
        "contrast_acc",
        "learning_rate",
        "images_per_sec",
    ] {
        assert!(first[key].is_number(), "metrics.jsonl lacks {key}: {first}");
    }

    // TensorBoard reads the event files, with the expected tags.
    let tb = Command::new("bash")
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tools/tensorboard_check/run"))
        .arg(pre.join("train"))
        .output()
        .expect("tensorboard check runs");
    assert!(
        tb.status.success(),
        "{}",
        String::from_utf8_lossy(&tb.stderr)
    );
    let tags = String::from_utf8_lossy(&tb.stdout);
    for tag in [
        "train/contrast_loss",
        "train/contrast_acc",
        "learning_rate",
        "train/images_per_sec",
        "eval/knn_top_1_accuracy",
    ] {
        assert!(tags.contains(tag), "TensorBoard does not see {tag}: {tags}");
    }

    // The README's linear evaluation command, from that checkpoint.
    let ft = tmp("lineval");
    let mut a = s(&[
        "--mode=train_then_eval",
        "--train_mode=finetune",
        "--fine_tune_after_block=4",
        "--zero_init_logits_layer=True",
        "--variable_schema=(?!global_step|(?:.*/|^)Momentum|head)",
        "--global_bn=False",
        "--optimizer=momentum",
        "--learning_rate=0.1",
        "--weight_decay=0.0",
        "--train_epochs=100",
        "--train_batch_size=512",
        "--warmup_epochs=0",
        "--dataset=cifar10",
        "--eval_split=test",
        "--resnet_depth=18",
        "--image_size=32",
        "--use_tpu=False",
    ]);
    a.push(format!("--checkpoint={}", pre.display()));
    a.push(format!("--model_dir={}", ft.display()));
    a.push(format!("--data_dir={}", data_dir()));
    a.extend(s(&[
        "--train_batch_size=8",
        "--train_steps=2",
        "--num_replicas=2",
        "--eval_batch_size=16",
        "--eval_steps=2",
    ]));
    let err = ok(&a);
    assert!(err.contains("restored"), "{err}");
    let result: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(ft.join("result.json")).expect("result.json"),
    )
    .expect("json");
    let top1 = result["label_top_1_accuracy"].as_f64().expect("top-1");
    assert!((0.0..=1.0).contains(&top1), "{result}");
    assert_eq!(result["global_step"].as_f64(), Some(2.0), "{result}");
    assert!(ft.join("result_2.json").exists() && ft.join("export/2").exists());

    // Linear evaluation trains only the head: every backbone tensor,
    // moving statistics included, is bit-identical to the pretrained one.
    let pre_ckpt = pre.join("ckpt-2.safetensors");
    let ft_ckpt = ft.join("ckpt-2.safetensors");
    let c = simclr::ckpt::native::load(&ft_ckpt).expect("finetune checkpoint");
    let mut checked = 0;
    for name in c
        .tensors
        .keys()
        .filter(|n| n.starts_with("base_model/") && !n.ends_with("Momentum"))
    {
        assert_eq!(
            safetensors_f32(&pre_ckpt, name),
            safetensors_f32(&ft_ckpt, name),
            "{name} changed"
        );
        checked += 1;
    }
    assert!(checked > 100, "only {checked} backbone tensors compared");
    assert_ne!(
        safetensors_f32(&pre_ckpt, "head_supervised/linear_layer/dense/kernel"),
        safetensors_f32(&ft_ckpt, "head_supervised/linear_layer/dense/kernel"),
        "the supervised head must train"
    );
}

/// Writes a class-per-folder dataset of small PNG images (train and val).
fn image_folder(root: &Path, classes: usize, per_class: usize, size: u32) {
    for split in ["train", "val"] {
        for c in 0..classes {
            let dir = root.join(split).join(format!("n{c:08}"));
            std::fs::create_dir_all(&dir).expect("mkdir");
            for i in 0..per_class {
                let img = image::RgbImage::from_fn(size, size + 7, |x, y| {
                    image::Rgb([
                        (x * 7 + c as u32 * 50) as u8,
                        (y * 3 + i as u32 * 20) as u8,
                        ((x + y) * 5) as u8,
                    ])
                });
                img.save(dir.join(format!("img_{i}.png"))).expect("png");
            }
        }
    }
}

#[test]
fn imagenet_style_fine_tuning_on_an_image_folder() {
    let data = tmp("folder");
    image_folder(&data, 3, 4, 48);
    let pre = tmp("folder-pre");
    let common = |dir: &Path| -> Vec<String> {
        let mut a = s(&[
            "--image_size=40",
            "--resnet_depth=18",
            "--num_replicas=1",
            "--train_batch_size=4",
            "--eval_batch_size=4",
            "--noknn_monitor",
        ]);
        a.push(format!("--dataset={}", data.display()));
        a.push(format!("--model_dir={}", dir.display()));
        a
    };
    let mut a = common(&pre);
    a.extend(s(&[
        "--train_mode=pretrain",
        "--train_steps=1",
        "--eval_split=val",
    ]));
    ok(&a);
    // The README's 1% fine-tuning command (keeps the projection head,
    // fine-tunes everything from its first layer).
    let ft = tmp("folder-ft");
    let mut a = s(&[
        "--mode=train_then_eval",
        "--train_mode=finetune",
        "--fine_tune_after_block=-1",
        "--zero_init_logits_layer=True",
        "--variable_schema=(?!global_step|(?:.*/|^)Momentum|head_supervised)",
        "--global_bn=True",
        "--optimizer=lars",
        "--learning_rate=0.005",
        "--learning_rate_scaling=sqrt",
        "--weight_decay=0",
        "--train_epochs=60",
        "--warmup_epochs=0",
        "--eval_split=val",
        "--num_proj_layers=3",
        "--ft_proj_selector=1",
    ]);
    a.push(format!("--checkpoint={}", pre.display()));
    a.extend(common(&ft));
    a.push("--train_steps=2".into());
    let err = ok(&a);
    assert!(err.contains("restored"), "{err}");
    assert!(ft.join("result.json").exists());
    assert!(
        err.contains("on 12 examples of val"),
        "every eval example counted once: {err}"
    );
}

fn checkpoint_listed(dir: &Path, step: u64) -> bool {
    simclr::ckpt::native::list(dir)
        .iter()
        .any(|(s, _)| *s == step)
}

/// Flags of the runs that the interruption tests compare with one
/// uninterrupted run (checkpoints at steps 3 and 6, every step logged).
const RESUME_FLAGS: [&str; 5] = [
    "--train_steps=6",
    "--checkpoint_steps=3",
    "--train_summary_steps=1",
    "--noknn_monitor",
    "--seed=5",
];

/// The losses of the uninterrupted run with [`RESUME_FLAGS`] (overlapped
/// steps, the default), computed once for the tests that need them.
fn reference_losses() -> &'static std::collections::BTreeMap<i64, f64> {
    static REFERENCE: std::sync::OnceLock<std::collections::BTreeMap<i64, f64>> =
        std::sync::OnceLock::new();
    REFERENCE.get_or_init(|| {
        let a = tmp("uninterrupted");
        ok(&cifar_pretrain(&a, &RESUME_FLAGS));
        let want = losses(&a);
        assert_eq!(want.len(), 6, "{want:?}");
        want
    })
}

#[test]
fn sigkill_between_checkpoints_resumes_exactly() {
    let extra = RESUME_FLAGS;
    let want = reference_losses();

    let b = tmp("killed");
    let args = cifar_pretrain(&b, &extra);
    let mut child = Command::new(exe())
        .arg("run")
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let t = Instant::now();
    while !checkpoint_listed(&b, 3) {
        assert!(
            t.elapsed() < Duration::from_secs(300),
            "no checkpoint after 300 s"
        );
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the run ended ({status}) before it could be killed");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    let err = ok(&args);
    assert!(err.contains("resuming from"), "{err}");
    // The steps the killed run logged after its checkpoint are dropped, not
    // left beside the resumed run's rows.
    let logged: Vec<i64> = metrics(&b)
        .iter()
        .filter(|m| m.get("total_loss").is_some())
        .filter_map(|m| m["step"].as_i64())
        .collect();
    assert_eq!(
        logged,
        vec![1, 2, 3, 4, 5, 6],
        "one row per step after the resume"
    );
    let got = losses(&b);
    for step in [4, 5, 6] {
        let (x, y) = (got[&step], want[&step]);
        assert!(
            (x - y).abs() <= 1e-6 * y.abs(),
            "step {step}: resumed loss {x} vs uninterrupted {y}"
        );
    }
}

fn sigterm(child: &std::process::Child) {
    let st = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(st.success(), "kill -TERM failed");
}

/// Waits for `ready` while the run is alive, then sends SIGTERM and
/// returns the run's exit code and stderr.
fn terminate_when(args: &[String], ready: impl Fn() -> bool) -> (Option<i32>, String) {
    let mut child = Command::new(exe())
        .arg("run")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let t = Instant::now();
    while !ready() {
        assert!(
            t.elapsed() < Duration::from_secs(300),
            "not ready after 300 s"
        );
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the run ended ({status}) before it could be signalled");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    sigterm(&child);
    let out = child.wait_with_output().expect("wait");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn sigterm_mid_step_and_mid_save_checkpoints_and_resumes_exactly() {
    let extra = RESUME_FLAGS;
    let want = reference_losses();

    let b = tmp("sigterm");
    let args = cifar_pretrain(&b, &extra);
    // Mid-step: as soon as step 1 is logged, step 2 is running.
    let (code, err) = terminate_when(&args, || {
        std::fs::read_to_string(b.join("metrics.jsonl")).is_ok_and(|t| t.lines().count() >= 1)
    });
    assert_eq!(code, Some(75), "exit status after SIGTERM:\n{err}");
    assert!(
        err.contains("stopped by SIGTERM after step") && err.contains("Rerun the same command"),
        "{err}"
    );
    let first = simclr::ckpt::native::latest(&b)
        .expect("index")
        .expect("a checkpoint");
    assert!(
        (1..3).contains(&first.step),
        "checkpoint of the stopped step, got {}",
        first.step
    );

    // Mid-save: signal while the step-3 checkpoint is being written (its
    // temporary file exists), or right after.
    let (code, err) = terminate_when(&args, || {
        std::fs::read_dir(&b).is_ok_and(|rd| {
            rd.filter_map(|e| e.ok()).any(|e| {
                let n = e.file_name().to_string_lossy().to_string();
                n.starts_with("ckpt-3") || (n.starts_with('.') && n.contains("ckpt"))
            })
        })
    });
    assert!(err.contains("resuming from"), "{err}");
    assert_eq!(
        code,
        Some(75),
        "exit status after SIGTERM during a save:\n{err}"
    );
    let second = simclr::ckpt::native::latest(&b)
        .expect("index")
        .expect("a checkpoint");
    assert!(
        second.step >= 3,
        "the step-3 checkpoint must survive, got {}",
        second.step
    );

    let err = ok(&args);
    assert!(err.contains("resuming from"), "{err}");
    let got = losses(&b);
    for (step, y) in want {
        let x = got[step];
        assert!(
            (x - y).abs() <= 1e-6 * y.abs(),
            "step {step}: preempted-and-resumed loss {x} vs uninterrupted {y}"
        );
    }
}

#[test]
fn truncated_checkpoint_is_named_and_the_previous_one_is_used() {
    let dir = tmp("truncated");
    ok(&cifar_pretrain(
        &dir,
        &["--train_steps=2", "--checkpoint_steps=1", "--noknn_monitor"],
    ));
    let newest = dir.join("ckpt-2.safetensors");
    let len = std::fs::metadata(&newest).expect("ckpt-2").len();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&newest)
        .expect("open");
    f.set_len(len / 2).expect("truncate");
    drop(f);
    let out = Command::new(exe())
        .args(["ckpt", "ls"])
        .arg(&newest)
        .output()
        .expect("ckpt ls");
    assert!(!out.status.success());
    let msg = String::from_utf8_lossy(&out.stderr);
    assert!(
        msg.contains("ckpt-2.safetensors"),
        "the error names the file: {msg}"
    );
    // Evaluating the model_dir still works, from the previous checkpoint.
    let err = ok(&cifar_pretrain(
        &dir,
        &["--mode=eval", "--train_steps=1", "--noknn_monitor"],
    ));
    assert!(
        err.contains("ckpt-2.safetensors"),
        "the skipped file is named: {err}"
    );
    assert!(err.contains("eval at step 1"), "{err}");
}

#[test]
fn a_nan_loss_stops_the_run_naming_the_step() {
    let dir = tmp("nan");
    let args = cifar_pretrain(
        &dir,
        &[
            "--train_steps=6",
            "--checkpoint_steps=1",
            "--noknn_monitor",
            "--optimizer=momentum",
            "--learning_rate=1e30",
            "--warmup_epochs=0",
        ],
    );
    let out = simclr(&args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the run must fail: {err}");
    assert!(err.contains("at step"), "{err}");
    assert!(err.contains("last good checkpoint"), "{err}");
    assert!(
        checkpoint_listed(&dir, 1),
        "the checkpoint before the NaN is kept"
    );
}

/// The step a NaN error names (`... at step N ...`).
fn nan_step(err: &str) -> Option<i64> {
    let at = err.find("at step ")? + "at step ".len();
    err[at..]
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

#[test]
fn augmentation_on_the_device_gives_the_host_path_losses() {
    // The first two steps of the reference run, augmented inside the step.
    let dir = tmp("augment-on-device");
    let mut args = cifar_pretrain(&dir, &RESUME_FLAGS);
    args.extend(s(&["--train_steps=2", "--augment_on_device"]));
    let err = ok(&args);
    assert!(
        err.contains("augmentation on the device"),
        "the run does not say where it augments:\n{err}"
    );
    let got = losses(&dir);
    let want = reference_losses();
    assert_eq!(got.len(), 2, "{got:?}");
    for (step, loss) in &got {
        let w = want[step];
        assert!(
            (loss - w).abs() <= 1e-4 * w.abs(),
            "step {step}: loss {loss} with augmentation on the device, {w} on the host"
        );
    }
}

#[test]
fn overlapped_steps_give_the_synchronous_losses_and_name_the_nan_step() {
    let sync_dir = tmp("sync");
    let mut sync_args = cifar_pretrain(&sync_dir, &RESUME_FLAGS);
    sync_args.push("--overlap_steps=false".into());
    ok(&sync_args);
    assert_eq!(
        &losses(&sync_dir),
        reference_losses(),
        "the overlapped loop must give bit-identical losses"
    );

    // A NaN between summaries is read one step late but named at its step.
    let nan = [
        "--train_steps=6",
        "--checkpoint_steps=100",
        "--train_summary_steps=0",
        "--noknn_monitor",
        "--optimizer=momentum",
        "--learning_rate=1e30",
        "--warmup_epochs=0",
    ];
    let mut steps = Vec::new();
    for overlap in ["--overlap_steps=false", "--overlap_steps=true"] {
        let dir = tmp(&format!("nan{overlap}"));
        let mut args = cifar_pretrain(&dir, &nan);
        args.push(overlap.into());
        let out = simclr(&args);
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(!out.status.success(), "the run must fail: {err}");
        steps.push(nan_step(&err).unwrap_or_else(|| panic!("no step named:\n{err}")));
    }
    assert_eq!(steps[0], steps[1], "synchronous vs overlapped NaN step");
    assert!(
        steps[0] > 1,
        "the NaN should come after the first (synchronous) step"
    );
}

#[test]
fn bad_flags_are_refused_with_one_message_each() {
    let dir = tmp("badflags");
    let out = simclr(&s(&["--train_bach_size=8", "--optimizer=sgd"]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("did you mean --train_batch_size"), "{err}");
    assert!(
        err.contains("expected one of momentum, adam, lars"),
        "{err}"
    );
    let out = simclr(&cifar_pretrain(
        &dir,
        &["--fine_tune_after_block=2", "--train_batch_size=7"],
    ));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("only applies to --train_mode=finetune"),
        "{err}"
    );
    assert!(err.contains("does not divide by the 2 replicas"), "{err}");
    assert!(
        !dir.exists(),
        "nothing is written when the flags are refused"
    );
}

/// The README's main command (`tools/main`: the CIFAR-10 recipe scaled to a
/// short run) with a tiny step count on real CIFAR-10 records: the k-NN
/// monitor reports at the checkpoint, the evaluation runs, and on a fixed
/// batch (`--fixed_batch`) the contrastive loss falls step after step.
#[test]
fn main_command_smoke_loss_decreases_on_a_fixed_batch() {
    let md = tmp("main-smoke");
    // The README recipe (`cifar_pretrain`), overridden as tools/main scales it.
    let a = cifar_pretrain(
        &md,
        &[
            "--mode=train_then_eval",
            "--warmup_epochs=0",
            "--train_batch_size=16",
            "--train_steps=6",
            "--checkpoint_steps=6",
            "--train_summary_steps=1",
            "--eval_batch_size=32",
            "--knn_bank_size=64",
            "--fixed_batch",
        ],
    );
    let err = ok(&a);
    assert!(err.contains("k-NN (k=200, cosine) top-1"), "{err}");
    assert!(md.join("result.json").exists(), "{err}");
    let contrast: Vec<f64> = metrics(&md)
        .iter()
        .filter_map(|m| m["contrast_loss"].as_f64())
        .collect();
    assert_eq!(contrast.len(), 6, "one logged loss per step: {contrast:?}");
    for w in contrast.windows(2) {
        assert!(w[1] < w[0], "the loss falls on a fixed batch: {contrast:?}");
    }
}

/// `SIMCLR_COMPILATION_CACHE_DIR`: the second of two identical runs loads
/// its step from the cache instead of compiling it, and its losses are the
/// first run's bit for bit.
#[test]
fn a_second_run_loads_its_step_from_the_compilation_cache() {
    let cache = tmp("xla-cache");
    let extra = ["--train_steps=2", "--noknn_monitor", "--mode=train"];
    let run_in = |dir: &Path| {
        let out = Command::new(exe())
            .arg("run")
            .args(cifar_pretrain(dir, &extra))
            .env("SIMCLR_COMPILATION_CACHE_DIR", &cache)
            .output()
            .expect("simclr runs");
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(out.status.success(), "{err}");
        err
    };
    let (a, b) = (tmp("cache-first"), tmp("cache-second"));
    let first = run_in(&a);
    assert!(first.contains("simclr: compiled in"), "{first}");
    let second = run_in(&b);
    assert!(
        second.contains("loaded the compiled step from the compilation cache"),
        "{second}"
    );
    let (la, lb) = (losses(&a), losses(&b));
    assert_eq!(la.len(), 2, "{la:?}");
    for (step, x) in &la {
        assert_eq!(x.to_bits(), lb[step].to_bits(), "step {step}");
    }
    let _ = std::fs::remove_dir_all(&cache);
}
