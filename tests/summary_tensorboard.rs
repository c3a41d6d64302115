//! Event files written by `summary::EventWriter` read by the real Python
//! TensorBoard (`EventAccumulator`), through `tools/tensorboard_check/run`,
//! which installs a pinned `tensorboard` into a cached virtual environment on
//! first use (python3 and PyPI needed then). If the script fails, the test
//! fails: it never skips.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use simclr::summary::{EventWriter, Image};

/// A fresh, empty directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("summary_tensorboard")
        .join(name);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// What TensorBoard reads from `dir` (see `tools/tensorboard_check/read_events.py`).
fn tensorboard_reads(dir: &Path) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/tensorboard_check/run");
    let out = Command::new("bash")
        .arg(&script)
        .arg(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{} {} failed ({}):\n{stderr}",
        script.display(),
        dir.display(),
        out.status
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{} printed no JSON ({e}):\n{}\n{stderr}",
            script.display(),
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// `[[step, value], ...]` from TensorBoard as `(step, f32)` pairs.
fn series(v: &Value, tag: &str) -> Vec<(i64, f32)> {
    let Some(list) = v["scalars"][tag].as_array() else {
        panic!(
            "TensorBoard has no scalar tag {tag:?}; it read {}",
            v["scalars"]
        )
    };
    list.iter()
        .map(|p| (p[0].as_i64().unwrap(), p[1].as_f64().unwrap() as f32))
        .collect()
}

#[test]
fn tensorboard_reads_our_scalars_images_and_resumed_files() {
    let dir = scratch("train");
    let loss = |s: i64| 6.0 / (1.0 + s as f32);
    let lr = |s: i64| 0.075 * s as f32 / 3.0;

    // First run: steps 1..=3 and an image; a resumed run: steps 4..=5.
    let mut w = EventWriter::create(&dir).unwrap();
    for s in 1..=3 {
        w.scalars(
            &[("train/contrast_loss", loss(s)), ("learning_rate", lr(s))],
            s,
        )
        .unwrap();
    }
    let pixels: Vec<u8> = (0..3 * 2 * 3).map(|i| (i * 13) as u8).collect();
    let rgb = Image::from_u8(3, 2, 3, pixels.clone()).unwrap();
    w.image("image", &rgb, 3).unwrap();
    let first = w.path().file_name().unwrap().to_string_lossy().into_owned();
    drop(w);
    let mut w = EventWriter::create(&dir).unwrap();
    for s in 4..=5 {
        w.scalars(
            &[("train/contrast_loss", loss(s)), ("learning_rate", lr(s))],
            s,
        )
        .unwrap();
        w.scalar("train/contrast_acc", 0.25 * s as f32, s).unwrap();
    }
    let second = w.path().file_name().unwrap().to_string_lossy().into_owned();

    let tb = tensorboard_reads(&dir);
    assert_eq!(tb["file_version"].as_f64(), Some(2.0), "file version: {tb}");
    let want_loss: Vec<_> = (1..=5).map(|s| (s, loss(s))).collect();
    let want_lr: Vec<_> = (1..=5).map(|s| (s, lr(s))).collect();
    assert_eq!(series(&tb, "train/contrast_loss"), want_loss);
    assert_eq!(series(&tb, "learning_rate"), want_lr);
    assert_eq!(series(&tb, "train/contrast_acc"), vec![(4, 1.0), (5, 1.25)]);

    let images = tb["images"]["image"].as_array().expect("image tag");
    assert_eq!(images.len(), 1);
    let im = &images[0];
    assert_eq!(im["step"], 3);
    assert_eq!(
        (im["width"].as_i64(), im["height"].as_i64()),
        (Some(2), Some(3))
    );
    assert_eq!(im["mode"], "RGB", "Pillow decodes the PNG as RGB");
    let decoded: Vec<u8> = im["pixels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_u64().unwrap() as u8)
        .collect();
    assert_eq!(decoded, pixels, "PNG pixels as decoded by Pillow");

    // file version + 3 scalar events + 1 image; file version + 2 × 2.
    assert_eq!(
        tb["events_per_file"][&first], 5,
        "{}",
        tb["events_per_file"]
    );
    assert_eq!(
        tb["events_per_file"][&second], 5,
        "{}",
        tb["events_per_file"]
    );
}

#[test]
fn tensorboard_drops_a_record_whose_crc_we_broke() {
    // TensorBoard's reader checks the same masked CRC-32C: a flipped byte in
    // the last record makes it stop there, one event short.
    let dir = scratch("corrupt");
    let mut w = EventWriter::create(&dir).unwrap();
    w.scalar("loss", 1.0, 1).unwrap();
    w.scalar("loss", 0.5, 2).unwrap();
    let path = w.path().to_path_buf();
    drop(w);
    let mut bytes = fs::read(&path).unwrap();
    let n = bytes.len();
    bytes[n - 6] ^= 0x40;
    fs::write(&path, &bytes).unwrap();
    let tb = tensorboard_reads(&dir);
    assert_eq!(series(&tb, "loss"), vec![(1, 1.0)], "{tb}");
}
