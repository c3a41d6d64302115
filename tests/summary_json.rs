//! `metrics.jsonl`, `result.json` / `result_<step>.json`, `flags.json` and
//! the throughput meter: contents, key order, NaN handling, appending across
//! runs, atomic replacement, and the images/s figures.

use std::fs;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Value};
use simclr::summary::{
    write_file_atomic, write_flags, write_result, Error, MetricsLog, Throughput,
};

/// A fresh, empty directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("summary_json")
        .join(name);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

fn lines(path: &std::path::Path) -> Vec<String> {
    fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn metrics_jsonl_has_one_object_per_step_in_the_given_key_order() {
    let dir = scratch("metrics");
    let mut log = MetricsLog::open(&dir).unwrap();
    log.log(
        10,
        &[("train/contrast_loss", 4.5), ("images_per_sec", 1234.5)],
    )
    .unwrap();
    log.log(20, &[("train/contrast_loss", f64::NAN)]).unwrap();
    // Visible before the log is dropped.
    let got = lines(log.path());
    assert_eq!(
        got,
        vec![
            r#"{"step":10,"train/contrast_loss":4.5,"images_per_sec":1234.5}"#,
            r#"{"step":20,"train/contrast_loss":null}"#,
        ]
    );
    drop(log);
    // A resumed run appends.
    let mut log = MetricsLog::open(&dir).unwrap();
    log.log(30, &[("learning_rate", 0.1)]).unwrap();
    let got = lines(&dir.join("metrics.jsonl"));
    assert_eq!(got.len(), 3);
    let last: Value = serde_json::from_str(&got[2]).unwrap();
    assert_eq!(last, json!({"step": 30, "learning_rate": 0.1}));
}

#[test]
fn metrics_reject_reserved_and_repeated_names() {
    let dir = scratch("metrics_bad");
    let mut log = MetricsLog::open(&dir).unwrap();
    assert!(matches!(
        log.log(1, &[("step", 1.0)]),
        Err(Error::Invalid { .. })
    ));
    assert!(matches!(
        log.log(1, &[("a", 1.0), ("a", 2.0)]),
        Err(Error::Invalid { .. })
    ));
    assert_eq!(
        fs::read_to_string(log.path()).unwrap(),
        "",
        "nothing written"
    );
}

#[test]
fn result_files_hold_every_metric_as_float_plus_global_step() {
    let dir = scratch("result").join("model_dir");
    let [latest, numbered] = write_result(
        &dir,
        1000,
        &[
            ("label_top_1_accuracy", 0.75),
            ("eval/regularization_loss", 3.0),
        ],
    )
    .unwrap();
    assert_eq!(latest, dir.join("result.json"));
    assert_eq!(numbered, dir.join("result_1000.json"));
    for p in [&latest, &numbered] {
        let v: Value = serde_json::from_slice(&fs::read(p).unwrap()).unwrap();
        assert_eq!(
            v,
            json!({"label_top_1_accuracy": 0.75, "eval/regularization_loss": 3.0, "global_step": 1000.0})
        );
        assert!(
            v["global_step"].is_f64(),
            "global_step is a float, as in the original"
        );
    }
    // A later evaluation replaces result.json and adds result_2000.json.
    write_result(&dir, 2000, &[("label_top_1_accuracy", 0.8)]).unwrap();
    let v: Value = serde_json::from_slice(&fs::read(&latest).unwrap()).unwrap();
    assert_eq!(v["global_step"], json!(2000.0));
    assert!(numbered.exists() && dir.join("result_2000.json").exists());
    let leftovers: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    assert!(matches!(
        write_result(&dir, 1, &[("global_step", 1.0)]),
        Err(Error::Invalid { .. })
    ));
}

#[test]
fn flags_json_is_the_serialized_object() {
    #[derive(serde::Serialize)]
    struct Flags {
        train_mode: &'static str,
        train_batch_size: u32,
        learning_rate: f64,
        use_blur: bool,
    }
    let dir = scratch("flags");
    let path = write_flags(
        &dir,
        &Flags {
            train_mode: "pretrain",
            train_batch_size: 512,
            learning_rate: 0.3,
            use_blur: true,
        },
    )
    .unwrap();
    let v: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    assert_eq!(
        v,
        json!({"train_mode": "pretrain", "train_batch_size": 512, "learning_rate": 0.3, "use_blur": true})
    );
    assert!(matches!(
        write_flags(&dir, &[1, 2]),
        Err(Error::Invalid { .. })
    ));
}

#[test]
fn atomic_write_replaces_and_reports_the_path_on_failure() {
    let dir = scratch("atomic");
    let p = dir.join("f.json");
    write_file_atomic(&p, b"old").unwrap();
    write_file_atomic(&p, b"new").unwrap();
    assert_eq!(fs::read(&p).unwrap(), b"new");
    let err = write_file_atomic(dir.join("no_such_dir").join("f.json"), b"x").unwrap_err();
    assert!(err.to_string().contains("no_such_dir"), "{err}");
}

#[test]
fn throughput_skips_warmup_and_reports_median_and_mean() {
    let mut t = Throughput::new(2, 4);
    assert!(t.report().is_none());
    // Two slow compile steps, then steps of 1 s, 2 s, 1 s, 4 s, 1 s for 100
    // images each; the window keeps the last 4: 2 s, 1 s, 4 s, 1 s.
    t.record(Duration::from_secs(60), 100);
    t.record(Duration::from_secs(30), 100);
    assert!(t.report().is_none(), "warm-up steps are not measured");
    for s in [1, 2, 1, 4, 1] {
        t.record(Duration::from_secs(s), 100);
    }
    let r = t.report().unwrap();
    assert_eq!(r.steps, 4);
    assert_eq!(t.steps_seen(), 7);
    // rates 50, 100, 25, 100 → sorted 25, 50, 100, 100 → median 75
    assert!((r.median_images_per_sec - 75.0).abs() < 1e-9, "{r:?}");
    // 400 images in 8 s
    assert!((r.mean_images_per_sec - 50.0).abs() < 1e-9, "{r:?}");
    let per = r.per_replica(8);
    assert!((per.mean_images_per_sec - 6.25).abs() < 1e-9, "{per:?}");
}

#[test]
fn throughput_clock_does_not_count_paused_time() {
    let mut t = Throughput::new(0, 10);
    t.step(10); // clock not started: untimed
    assert!(t.report().is_none());
    t.start();
    std::thread::sleep(Duration::from_millis(5));
    t.step(10);
    t.pause();
    std::thread::sleep(Duration::from_millis(50));
    t.step(10); // ended while paused: untimed, restarts the clock
    let r = t.report().unwrap();
    assert_eq!(r.steps, 1);
    assert!(
        r.mean_images_per_sec > 10.0 / 0.05,
        "pause was counted: {r:?}"
    );
    assert_eq!(t.steps_seen(), 3);
}
