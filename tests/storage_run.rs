//! `simclr run` with every path in a bucket, on gs:// (the GCS emulator)
//! and s3:// (moto), at the smallest cost that still shows each claim
//! (ResNet-18 on 8×8 crops of a small cut of CIFAR-10, a few steps). On
//! each scheme:
//! - a pretraining run (data, model_dir, checkpoints, events in the
//!   bucket) is SIGKILLed inside the save of a checkpoint, between its data
//!   and its index entry, and resumed: the losses equal an uninterrupted
//!   run's (made once, on gs://) bit for bit; TensorBoard reads the event
//!   objects (on gs:// the uninterrupted run's, on s3:// those of the
//!   killed run and its resumption);
//! - fine-tuning with `--checkpoint` in the bucket, from a TensorFlow
//!   checkpoint (`ckpt export_tf` into the bucket) and from the simclr
//!   model_dir;
//! - on s3:// the fine-tuning also evaluates (results and export in the
//!   bucket), then `simclr features` on the export and `simclr probe` on
//!   the model_dir, inputs and outputs in the bucket.

use crate::storage_support;

use simclr::storage::{self, Location};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

const RECORD: usize = 3073;
const PER_FILE: usize = 32;

fn cifar_dir() -> PathBuf {
    std::env::var("SIMCLR_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/cifar10")
        })
        .join("cifar-10-batches-bin")
}

/// Uploads the first `PER_FILE` images of each CIFAR-10 file.
fn upload_cifar(root: &str) -> String {
    let dest = Location::parse(root)
        .expect("url")
        .join("data/cifar-10-batches-bin");
    let names = [
        "data_batch_1.bin",
        "data_batch_2.bin",
        "data_batch_3.bin",
        "data_batch_4.bin",
        "data_batch_5.bin",
        "test_batch.bin",
    ];
    for n in names {
        let bytes = std::fs::read(cifar_dir().join(n)).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; set SIMCLR_DATA_DIR",
                cifar_dir().join(n).display()
            )
        });
        storage::put(&dest.join(n), bytes[..PER_FILE * RECORD].to_vec()).expect("upload");
    }
    format!("{root}/data")
}

fn pretrain_args(data_dir: &str, model_dir: &str) -> Vec<String> {
    [
        "run",
        "--train_mode=pretrain",
        "--learning_rate=1.0",
        "--weight_decay=1e-4",
        "--temperature=0.5",
        "--dataset=cifar10",
        "--image_size=8",
        "--eval_split=test",
        "--resnet_depth=18",
        "--use_blur=False",
        "--color_jitter_strength=0.5",
        "--train_batch_size=8",
        "--train_steps=4",
        "--checkpoint_steps=2",
        "--train_summary_steps=1",
        "--num_replicas=1",
        "--noknn_monitor",
        "--seed=3",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([
        format!("--data_dir={data_dir}"),
        format!("--model_dir={model_dir}"),
    ])
    .collect()
}

fn run(args: &[String]) -> String {
    let o = Command::new(env!("CARGO_BIN_EXE_simclr"))
        .args(args)
        .envs(storage_support::child_env())
        .output()
        .expect("simclr runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "simclr {args:?} failed:\n{text}");
    text
}

fn losses(model_dir: &str) -> BTreeMap<i64, f64> {
    let text = storage::read_to_string(
        &Location::parse(model_dir)
            .expect("url")
            .join("metrics.jsonl"),
    )
    .expect("metrics.jsonl in the bucket");
    text.lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json line"))
        .filter_map(|m| Some((m["step"].as_i64()?, m["total_loss"].as_f64()?)))
        .collect()
}

/// TensorBoard's own reader (`tools/tensorboard_check/run`) on a download
/// of the bucket's `train/` event objects: every step's scalars, in order.
fn tensorboard_reads_the_events(root: &str, model_dir: &str) {
    let train = Location::parse(model_dir).expect("url").join("train");
    let local = tempfile::tempdir().expect("tmp");
    for e in storage::list(&train, false).expect("list") {
        let bytes = storage::read(&train.join(&e.name)).expect("download");
        std::fs::write(local.path().join(&e.name), bytes).expect("write");
    }
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tools/tensorboard_check/run");
    let o = Command::new(&script)
        .arg(local.path())
        .output()
        .expect("tensorboard_check runs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    let scalars = v["scalars"].as_object().expect("scalars");
    let steps: Vec<i64> = scalars
        .values()
        .next()
        .and_then(|s| s.as_array())
        .expect("a scalar tag")
        .iter()
        .filter_map(|p| p[0].as_i64())
        .collect();
    assert_eq!(steps, [1, 2, 3, 4], "{root}: TensorBoard read {scalars:?}");
}

/// GET requests moto has logged for `key` so far.
fn s3_gets(key: &str) -> usize {
    let log = std::fs::read_to_string(storage_support::servers().dir.join("moto.log"))
        .expect("moto's log");
    log.lines()
        .filter(|l| l.contains("\"GET /") && l.contains(key))
        .count()
}

/// SIGKILLs a run (a checkpoint every step) inside the save of step 3:
/// `SIMCLR_HANG_AFTER_CHECKPOINT_DATA=3` holds it after the checkpoint's
/// data object is written and before the index names it. The index still
/// ends at step 2 and the orphan is ignored; the resumed run starts from
/// step 2, reads that checkpoint once (on s3://, counted in moto's log),
/// and every step's loss equals the uninterrupted run's bit for bit.
fn kill_during_save_and_resume(root: &str, data: &str) -> String {
    let b = format!("{root}/killed-in-save");
    let mut args = pretrain_args(data, &b);
    args.push("--checkpoint_steps=1".into());
    let scheme = &root[..2];
    let log_path = std::env::temp_dir().join(format!(
        "simclr-killed-in-save-{scheme}-{}.log",
        std::process::id()
    ));
    let log = std::fs::File::create(&log_path).expect("log file");
    let mut child = Command::new(env!("CARGO_BIN_EXE_simclr"))
        .args(&args)
        .envs(storage_support::child_env())
        .env("SIMCLR_HANG_AFTER_CHECKPOINT_DATA", "3")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn");
    let t = Instant::now();
    loop {
        let err = std::fs::read_to_string(&log_path).unwrap_or_default();
        if err.contains("the data of checkpoint 3 is written") {
            break;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{root}: the run ended ({status}) before its step-3 save:\n{err}");
        }
        assert!(
            t.elapsed() < Duration::from_secs(300),
            "{root}: not in the step-3 save after 300 s:\n{err}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    let dir = Location::parse(&b).expect("url");
    assert!(
        storage::exists(&dir.join("ckpt-3.safetensors")).expect("HEAD"),
        "{root}: the killed save's data object"
    );
    let committed = simclr::ckpt::native::list(&PathBuf::from(&b))
        .last()
        .map(|(s, _)| *s);
    assert_eq!(
        committed,
        Some(2),
        "{root}: the index after the killed save"
    );
    let key = "killed-in-save/ckpt-2.safetensors";
    let before = (scheme == "s3").then(|| s3_gets(key));
    let text = run(&args);
    assert!(
        text.contains(&format!("resuming from {b}/ckpt-2.safetensors")),
        "{root}: {text}"
    );
    if let Some(before) = before {
        assert_eq!(
            s3_gets(key) - before,
            1,
            "{root}: the resumed checkpoint was fetched more than once"
        );
    }
    let got = losses(&b);
    let want = reference_losses();
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "{root}"
    );
    for (step, w) in &want {
        assert_eq!(
            got[step].to_bits(),
            w.to_bits(),
            "{root}: step {step}: killed and resumed {} vs uninterrupted {w}",
            got[step]
        );
    }
    b
}

/// Fine-tuning with `--checkpoint` in the bucket, from a TensorFlow
/// checkpoint (`ckpt export_tf` of `model_dir` into the bucket) and from
/// the simclr `model_dir` itself; the latter with `extra` arguments.
/// Returns the second run's model_dir.
fn fine_tune_from_the_bucket(root: &str, data: &str, model_dir: &str, extra: &[&str]) -> String {
    let tf = format!("{root}/tf/model.ckpt-4");
    run(&["ckpt".into(), "export_tf".into(), model_dir.into(), tf]);
    let ft = format!("{root}/finetune-tf");
    let mut ftargs = finetune_args(data, &format!("{root}/tf"), &ft);
    ftargs.push("--mode=train".into());
    let text = run(&ftargs);
    assert!(
        text.contains(&format!("restored 105 variables from {root}/tf")),
        "restored from the TF checkpoint:\n{text}"
    );
    assert_eq!(
        simclr::ckpt::native::list(&PathBuf::from(&ft))
            .last()
            .map(|(s, _)| *s),
        Some(1)
    );
    let ft = format!("{root}/finetune");
    let mut ftargs = finetune_args(data, model_dir, &ft);
    for e in extra {
        let flag = e.split('=').next().unwrap_or(e);
        match ftargs
            .iter_mut()
            .find(|a| a.split('=').next() == Some(flag))
        {
            Some(a) => *a = e.to_string(),
            None => ftargs.push(e.to_string()),
        }
    }
    let text = run(&ftargs);
    assert!(
        text.contains(&format!("from {model_dir}")),
        "restored from the simclr checkpoint:\n{text}"
    );
    ft
}

/// `simclr features` and `simclr probe` with every path in the bucket.
fn features_and_probe(root: &str, model_dir: &str) {
    let imgs = Location::parse(root).expect("url").join("images");
    for (i, c) in ["x", "y"].iter().enumerate() {
        let img = image::RgbImage::from_fn(32, 32, |x, y| {
            image::Rgb([(x * 5) as u8, (y * 7) as u8, (i * 90) as u8])
        });
        let mut buf = std::io::Cursor::new(Vec::new());
        img.write_to(&mut buf, image::ImageFormat::Png)
            .expect("png");
        storage::put(&imgs.join(&format!("{c}/{i}.png")), buf.into_inner()).expect("upload");
    }
    let out = format!("{root}/features");
    run(&[
        "features".into(),
        format!("--export={model_dir}"),
        format!("--images={imgs}"),
        format!("--out={out}"),
        "--outputs=final_avg_pool".into(),
        "--batch=2".into(),
    ]);
    let out_loc = Location::parse(&out).expect("url");
    let arr = simclr::npy::parse(
        &storage::read(&out_loc.join("final_avg_pool.npy")).expect("npy in the bucket"),
        "final_avg_pool.npy",
    )
    .expect("npy");
    assert_eq!(arr.shape, [2, 512], "{root}: final_avg_pool of 2 images");
    let files = storage::read_to_string(&out_loc.join("files.txt")).expect("files.txt");
    assert_eq!(files.lines().count(), 2, "{files}");
    assert!(files.starts_with(&imgs.to_string()), "{files}");

    let json = format!("{root}/probe.json");
    run(&[
        "probe".into(),
        format!("--model_dir={model_dir}"),
        "--train_examples=16".into(),
        "--eval_examples=8".into(),
        format!("--json={json}"),
    ]);
    let v: serde_json::Value = serde_json::from_str(
        &storage::read_to_string(&Location::parse(&json).expect("url")).expect("probe json"),
    )
    .expect("json");
    assert_eq!(v["train_examples"], 16, "{v}");
    assert!(
        v["weights"].as_str().is_some_and(|w| w.contains(model_dir)),
        "{v}"
    );
}

fn finetune_args(data: &str, checkpoint: &str, model_dir: &str) -> Vec<String> {
    [
        "run",
        "--train_mode=finetune",
        "--fine_tune_after_block=4",
        "--zero_init_logits_layer=True",
        "--variable_schema=(?!global_step|(?:.*/|^)Momentum|head)",
        "--global_bn=False",
        "--optimizer=momentum",
        "--learning_rate=0.1",
        "--weight_decay=0.0",
        "--warmup_epochs=0",
        "--dataset=cifar10",
        "--eval_split=test",
        "--resnet_depth=18",
        "--image_size=8",
        "--train_batch_size=8",
        "--eval_batch_size=16",
        "--train_steps=1",
        "--num_replicas=1",
        "--noknn_monitor",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([
        format!("--data_dir={data}"),
        format!("--checkpoint={checkpoint}"),
        format!("--model_dir={model_dir}"),
    ])
    .collect()
}

/// The uninterrupted run's losses, which the gs:// test publishes and the
/// s3:// test (running at the same time) compares with: `None` until
/// known, `Some(Err)` when the reference run failed.
static REFERENCE: (Mutex<Option<Reference>>, Condvar) = (Mutex::new(None), Condvar::new());

type Reference = Result<BTreeMap<i64, f64>, String>;

fn publish_reference(r: Reference) {
    let mut g = REFERENCE.0.lock().unwrap_or_else(|e| e.into_inner());
    if g.is_none() {
        *g = Some(r);
    }
    REFERENCE.1.notify_all();
}

fn reference_losses() -> BTreeMap<i64, f64> {
    let g = REFERENCE.0.lock().unwrap_or_else(|e| e.into_inner());
    let (g, _) = REFERENCE
        .1
        .wait_timeout_while(g, Duration::from_secs(900), |r| r.is_none())
        .unwrap_or_else(|e| e.into_inner());
    match g.as_ref() {
        Some(Ok(w)) => w.clone(),
        Some(Err(e)) => panic!("the gs:// reference run failed: {e}"),
        None => panic!("no gs:// reference losses after 900 s"),
    }
}

/// Publishes a failure if the gs:// test panics before the reference.
struct ReferenceGuard;

impl Drop for ReferenceGuard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            publish_reference(Err("the gs:// test panicked".into()));
        }
    }
}

#[test]
fn gs_run_killed_in_a_save_resumes_tensorboard_reads_it_fine_tunes_from_the_bucket() {
    let _guard = ReferenceGuard;
    let gs = &storage_support::roots("run")[0];

    // The uninterrupted run gives the reference losses for both schemes.
    let data = upload_cifar(gs);
    let a = format!("{gs}/uninterrupted");
    run(&pretrain_args(&data, &a));
    let want = losses(&a);
    assert_eq!(
        want.keys().copied().collect::<Vec<_>>(),
        [1, 2, 3, 4],
        "{want:?}"
    );
    publish_reference(Ok(want));
    let names: Vec<String> = storage::list(&Location::parse(&a).expect("url"), true)
        .expect("list")
        .into_iter()
        .map(|e| e.name)
        .collect();
    for want_name in [
        "checkpoint.json",
        "ckpt-4.safetensors",
        "flags.json",
        "metrics.jsonl",
    ] {
        assert!(names.iter().any(|n| n == want_name), "{names:?}");
    }
    assert!(
        names
            .iter()
            .any(|n| n.starts_with("train/events.out.tfevents.")),
        "{names:?}"
    );
    tensorboard_reads_the_events(gs, &a);
    let b = kill_during_save_and_resume(gs, &data);
    let ft = fine_tune_from_the_bucket(gs, &data, &b, &["--mode=train"]);
    assert_eq!(
        simclr::ckpt::native::list(&PathBuf::from(&ft))
            .last()
            .map(|(s, _)| *s),
        Some(1)
    );
}

#[test]
fn s3_run_killed_in_a_save_resumes_fine_tunes_and_serves_features_and_probe() {
    let s3 = &storage_support::roots("run")[1];
    let data = upload_cifar(s3);
    let b = kill_during_save_and_resume(s3, &data);
    // The killed run's events and the resumed run's, read from the bucket:
    // TensorBoard sees every step once.
    tensorboard_reads_the_events(s3, &b);
    // The evaluation takes CIFAR-10's own 32×32 images.
    let ft = fine_tune_from_the_bucket(
        s3,
        &data,
        &b,
        &["--image_size=32", "--mode=train_then_eval"],
    );
    let names: Vec<String> = storage::list(&Location::parse(&ft).expect("url"), true)
        .expect("list")
        .into_iter()
        .map(|e| e.name)
        .collect();
    for want_name in ["result.json", "result_1.json", "export/1/checkpoint.json"] {
        assert!(
            names.iter().any(|n| n == want_name),
            "{want_name}: {names:?}"
        );
    }
    features_and_probe(s3, &ft);
}
