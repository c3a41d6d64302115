//! A TFRecord shard written by real TensorFlow (`tools/tf_ckpt/run
//! write_tfrecord.py`, TensorFlow from PyPI in a private venv) is read back
//! through `--dataset=cifar10`'s TFDS fallback: every record, label and pixel.

use std::process::Command;

#[test]
fn tensorflow_written_tfrecords_read_back() {
    let dir = std::env::temp_dir().join(format!("simclr-tfrecord-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/tf_ckpt/run");
    let out = Command::new("bash")
        .arg(&script)
        .arg("write_tfrecord.py")
        .arg(&dir)
        .arg("12")
        .output()
        .expect("the TensorFlow tool runs");
    assert!(
        out.status.success(),
        "TensorFlow could not write the shard:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let expected: Vec<serde_json::Value> = serde_json::from_str(
        &std::fs::read_to_string(dir.join("expected.json")).expect("expected.json"),
    )
    .expect("json");
    let ds = simclr::data::open_dataset(
        "cifar10",
        Some(&dir),
        "train",
        simclr::data::folder::BadImages::Fail,
    )
    .expect("TFDS shards open");
    assert_eq!(ds.len(), expected.len());
    for (i, e) in expected.iter().enumerate() {
        let ex = ds.get(i).expect("record decodes");
        assert_eq!(
            i64::from(ex.label),
            e["label"].as_i64().unwrap_or(-1),
            "record {i} label"
        );
        let sum: i64 = ex.image.data.iter().map(|&b| i64::from(b)).sum();
        assert_eq!(
            sum,
            e["pixel_sum"].as_i64().unwrap_or(-1),
            "record {i} pixels"
        );
        assert_eq!((ex.image.height, ex.image.width), (32, 32));
    }
}
