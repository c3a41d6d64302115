//! The storage layer and native checkpoints against real servers: the GCS
//! emulator (fake-gcs-server) and the S3 server (moto), started by
//! `tools/storage/servers` on 127.0.0.1. Every test runs on gs:// and s3://.

use crate::storage_support;

use simclr::ckpt::native;
use simclr::ckpt::{DType, Tensor};
use simclr::storage::{self, Error, Location, ReadAhead};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;
use storage_support::roots;

fn pattern(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn loc(s: &str) -> Location {
    Location::parse(s).expect("valid URL")
}

#[test]
fn objects_round_trip_with_ranges_listing_and_read_ahead() {
    for root in roots("objects") {
        let dir = loc(&root);
        let a = dir.join("a.bin");
        let data = pattern(50_000, 1);
        storage::put(&a, data.clone()).expect("put");
        storage::put(&dir.join("sub/b.txt"), b"bee".to_vec()).expect("put");
        assert_eq!(storage::read(&a).expect("read"), data, "{root}");
        assert_eq!(
            storage::read_range(&a, 1000..1010).expect("range"),
            &data[1000..1010],
            "{root}"
        );
        assert_eq!(storage::size(&a).expect("size"), 50_000);
        assert!(storage::exists(&a).expect("exists"));
        assert!(!storage::exists(&dir.join("nope")).expect("exists"));
        assert!(storage::is_dir(&dir).expect("is_dir"));
        let flat: Vec<_> = storage::list(&dir, false)
            .expect("list")
            .into_iter()
            .map(|e| (e.name, e.size))
            .collect();
        assert_eq!(flat, [("a.bin".to_string(), 50_000)], "{root}");
        let deep: Vec<_> = storage::list(&dir, true)
            .expect("list")
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(deep, ["a.bin", "sub/b.txt"], "{root}");
        // Small chunks, several in flight: the bytes arrive in order.
        let mut r = storage::open_reader(
            &a,
            ReadAhead {
                chunk: 4096,
                depth: 3,
            },
        )
        .expect("reader");
        let mut got = vec![];
        r.read_to_end(&mut got).expect("read all");
        assert_eq!(got, data, "{root}: read-ahead reader");
        // put replaces whole objects.
        storage::put(&a, b"short".to_vec()).expect("put");
        assert_eq!(storage::read(&a).expect("read"), b"short");
        storage::delete(&a).expect("delete");
        storage::delete(&a).expect("deleting a missing object is fine");
        let e = storage::read(&a).expect_err("deleted");
        assert!(e.is_not_found(), "{root}: {e}");
        assert!(e.to_string().contains(&format!("{root}/a.bin")), "{e}");
    }
}

#[test]
fn a_missing_bucket_and_a_range_past_the_end_are_named() {
    for root in roots("errors") {
        let scheme = &root[..2];
        let nob = loc(&format!("{scheme}://no-such-bucket-here/x/y.bin"));
        let e = storage::read(&nob).expect_err("no bucket");
        assert!(matches!(e, Error::NoBucket { .. }), "{root}: {e:?}");
        let msg = e.to_string();
        assert!(
            msg.contains("no-such-bucket-here") && msg.contains("does not exist"),
            "{msg}"
        );
        let e = storage::put(&nob, b"x".to_vec()).expect_err("no bucket");
        assert!(matches!(e, Error::NoBucket { .. }), "{root} put: {e:?}");

        let f = loc(&root).join("short.bin");
        storage::put(&f, vec![7; 100]).expect("put");
        let e = storage::read_range(&f, 50..200).expect_err("past the end");
        assert!(
            e.to_string().contains("short.bin"),
            "{root}: a range past the end: {e}"
        );
    }
}

fn tensors(seed: u64) -> BTreeMap<String, Tensor> {
    let mut m = BTreeMap::new();
    m.insert(
        "base_model/conv2d/kernel".to_string(),
        Tensor::new(DType::F32, vec![3, 3, 3, 8], pattern(4 * 216, seed)).expect("f32"),
    );
    m.insert("global_step".to_string(), Tensor::scalar_i64(seed as i64));
    m
}

#[test]
fn checkpoints_in_a_bucket_commit_by_index_keep_n_and_drop_orphans() {
    for root in roots("ckpt") {
        let dir = PathBuf::from(&root);
        let meta = serde_json::json!({"data": {"epoch": 0}});
        assert!(native::latest(&dir).expect("empty prefix").is_none());
        for step in 1..=3u64 {
            native::save(&dir, step, &tensors(step), &meta, 2).expect("save");
        }
        let steps: Vec<u64> = native::list(&dir).into_iter().map(|(s, _)| s).collect();
        assert_eq!(steps, [2, 3], "{root}: keep 2");
        let names: Vec<String> = storage::list(&loc(&root), false)
            .expect("list")
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(
            names,
            [
                "checkpoint.json",
                "ckpt-2.safetensors",
                "ckpt-3.safetensors"
            ],
            "{root}: the pruned checkpoint's object is deleted"
        );
        let l = native::latest(&dir).expect("latest").expect("some");
        assert_eq!(l.step, 3);
        let c = native::load(&l.path).expect("load");
        assert_eq!(c.tensors, tensors(3), "{root}: bit-exact");
        assert_eq!(c.meta, meta);

        // A save killed after its data and before its index: the object is
        // there, the index does not name it, readers ignore it and the next
        // save deletes it.
        let local = tempfile::tempdir().expect("tmp");
        native::save(local.path(), 4, &tensors(4), &meta, 0).expect("save");
        let orphan = std::fs::read(local.path().join("ckpt-4.safetensors")).expect("read");
        storage::put(&loc(&root).join("ckpt-4.safetensors"), orphan).expect("put");
        let l = native::latest(&dir).expect("latest").expect("some");
        assert_eq!(
            l.step, 3,
            "{root}: an unindexed checkpoint is not committed"
        );
        native::save(&dir, 5, &tensors(5), &meta, 2).expect("save");
        let names: Vec<String> = storage::list(&loc(&root), false)
            .expect("list")
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(
            names,
            [
                "checkpoint.json",
                "ckpt-3.safetensors",
                "ckpt-5.safetensors"
            ],
            "{root}: the orphan ckpt-4 and the pruned ckpt-2 are deleted"
        );

        // A corrupted newest object: latest falls back and says why.
        let newest = loc(&root).join("ckpt-5.safetensors");
        let mut b = storage::read(&newest).expect("read");
        let n = b.len();
        b[n - 3] ^= 0x40;
        storage::put(&newest, b).expect("put");
        let l = native::latest(&dir).expect("latest").expect("some");
        assert_eq!(l.step, 3, "{root}");
        assert_eq!(l.skipped.len(), 1);
        assert!(
            l.skipped[0].reason.contains("checksum") && l.skipped[0].reason.contains("ckpt-5"),
            "{}",
            l.skipped[0].reason
        );
        // A truncated one: named, previous one still readable.
        storage::put(&newest, vec![1, 2, 3]).expect("put");
        let e = native::load(&PathBuf::from(newest.to_string())).expect_err("truncated");
        assert!(e.to_string().contains("too short"), "{e}");
        assert_eq!(native::latest(&dir).expect("latest").expect("some").step, 3);
    }
}

#[test]
fn checkpoints_in_a_missing_bucket_fail_with_the_bucket_named() {
    for root in roots("nobucket") {
        let scheme = &root[..2];
        let dir = PathBuf::from(format!("{scheme}://no-such-bucket-here/run"));
        let e = native::latest(&dir).expect_err("no bucket");
        assert!(e.to_string().contains("no-such-bucket-here"), "{e}");
        let e =
            native::save(&dir, 1, &tensors(1), &serde_json::Value::Null, 0).expect_err("no bucket");
        assert!(e.to_string().contains("does not exist"), "{e}");
    }
}

fn r18_checkpoint() -> BTreeMap<String, Tensor> {
    use simclr::nn::{variables, ModelConfig};
    let cfg = ModelConfig {
        resnet_depth: 18,
        image_size: 32,
        num_classes: 10,
        ..ModelConfig::default()
    };
    let mut m = BTreeMap::new();
    for (i, v) in variables(&cfg).expect("model").iter().enumerate() {
        let dims: Vec<u64> = v.shape.dims.iter().map(|&d| d as u64).collect();
        let vals: Vec<f32> = (0..v.shape.numel())
            .map(|j| (i * 7 + j) as f32 * 0.001)
            .collect();
        m.insert(v.name.clone(), Tensor::from_f32(&dims, &vals).expect("f32"));
    }
    m.insert("global_step".into(), Tensor::scalar_i64(99));
    m
}

fn simclr(args: &[&str]) -> (bool, String) {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_simclr"))
        .args(args)
        .envs(storage_support::child_env())
        .output()
        .expect("simclr runs");
    (
        o.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

#[test]
fn ckpt_info_and_export_tf_work_on_bucket_paths_with_ranged_tf_reads() {
    use simclr::ckpt::{tf, Source};
    let t = r18_checkpoint();
    for root in roots("cli") {
        let model_dir = format!("{root}/model_dir");
        native::save(
            &PathBuf::from(&model_dir),
            99,
            &t,
            &serde_json::json!({}),
            5,
        )
        .expect("save");
        let (ok, text) = simclr(&["ckpt", "info", &model_dir]);
        assert!(ok, "{text}");
        assert!(
            text.contains("(native)")
                && text.contains(
                    "--resnet_depth=18 --width_multiplier=1 --sk_ratio=0 --image_size=32"
                ),
            "{root}: {text}"
        );
        // A TensorFlow checkpoint written into the bucket, then read back by
        // prefix and by directory (its `checkpoint` state object).
        let prefix = format!("{root}/tf/model.ckpt-99");
        let (ok, text) = simclr(&["ckpt", "export_tf", &model_dir, &prefix]);
        assert!(ok, "{text}");
        let (ok, text) = simclr(&["ckpt", "info", &format!("{root}/tf")]);
        assert!(ok, "{text}");
        assert!(
            text.contains("--resnet_depth=18") && !text.contains("(native)"),
            "{root}: {text}"
        );
        let r = tf::Reader::open(&PathBuf::from(&prefix)).expect("open TF prefix");
        let name = "base_model/conv2d/kernel";
        assert_eq!(r.read(name).expect("read"), t[name], "{root}");
        let src = Source::open(&PathBuf::from(format!("{root}/tf"))).expect("open dir");
        assert_eq!(src.format(), "tensorflow");
        // A truncated data object: the tensor past the end is named.
        let data = loc(&format!("{prefix}.data-00000-of-00001"));
        let mut bytes = storage::read(&data).expect("read");
        bytes.truncate(bytes.len() / 2);
        storage::put(&data, bytes).expect("put");
        let r = tf::Reader::open(&PathBuf::from(&prefix)).expect("index still fine");
        let errors: Vec<String> = r
            .entries()
            .iter()
            .filter_map(|e| r.read(&e.name).err().map(|x| x.to_string()))
            .collect();
        assert!(
            errors.iter().any(|e| e.contains("beyond the end")),
            "{root}: {errors:?}"
        );
    }
}
