//! `--data_dir` in a bucket, on gs:// (the GCS emulator) and s3:// (moto):
//! TFDS TFRecord shards (with and without `dataset_info.json`, with a shard
//! cache small enough that records are also read one at a time with ranged
//! reads) and image folders give exactly the examples of the same files on
//! local disk; a corrupt shard and a missing shard set are reported with
//! the URL.

use crate::storage_support;

use prost::Message;
use simclr::data::folder::{BadImages, ImageFolder};
use simclr::data::{open_dataset, tfrecord, Dataset, Split};
use simclr::storage::{self, Location};
use std::path::Path;

fn jpeg(w: u32, h: u32, seed: u8) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([
            (x as u8).wrapping_mul(7).wrapping_add(seed),
            (y as u8).wrapping_mul(11),
            seed.wrapping_mul(3),
        ])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Jpeg)
        .expect("encode");
    out.into_inner()
}

/// `shards` TFDS shards of `per` records each in `dir`; returns their names
/// and contents.
fn shards(name: &str, split: &str, shards: usize, per: usize) -> Vec<(String, Vec<u8>)> {
    (0..shards)
        .map(|s| {
            let mut buf = Vec::new();
            for k in 0..per {
                let i = s * per + k;
                let ex = tfrecord::image_example(
                    &jpeg(12 + (i % 5) as u32, 10, i as u8),
                    (i % 10) as i64,
                    &format!("img_{i}.JPEG"),
                );
                tfrecord::write_record(&mut buf, &ex.encode_to_vec());
            }
            (tfrecord::tfds_shard_name(name, split, s, shards), buf)
        })
        .collect()
}

/// Writes `files` (relative name, bytes) below a local folder and a bucket
/// prefix.
fn put_both(local: &Path, remote: &Location, files: &[(String, Vec<u8>)]) {
    for (n, b) in files {
        let p = local.join(n);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, b).expect("write");
        storage::put(&remote.join(n), b.clone()).expect("upload");
    }
}

fn same_examples(a: &dyn Dataset, b: &dyn Dataset, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    assert_eq!(a.num_classes(), b.num_classes(), "{what}: classes");
    // Out of order, as a shuffle buffer asks for them.
    let n = a.len();
    for k in 0..n {
        let i = (k * 7 + 3) % n;
        let (x, y) = (a.get(i).expect("local"), b.get(i).expect("bucket"));
        assert_eq!(x, y, "{what}: example {i}");
    }
}

#[test]
fn tfds_shards_in_a_bucket_read_like_local_ones() {
    for root in storage_support::roots("tfds") {
        let local = tempfile::tempdir().expect("tmp");
        let remote = Location::parse(&root).expect("url");
        // cifar10 as TFDS writes it: data_dir/cifar10/3.0.2/, 3 train shards.
        let mut files: Vec<(String, Vec<u8>)> = shards("cifar10", "train", 3, 7)
            .into_iter()
            .map(|(n, b)| (format!("cifar10/3.0.2/{n}"), b))
            .collect();
        files.extend(
            shards("cifar10", "test", 1, 5)
                .into_iter()
                .map(|(n, b)| (format!("cifar10/3.0.2/{n}"), b)),
        );
        put_both(local.path(), &remote, &files);
        let local_ds =
            open_dataset("cifar10", Some(local.path()), "train", BadImages::Fail).expect("local");
        let url = Path::new(&root);

        // Without dataset_info.json every shard is read once on open.
        let ds = open_dataset("cifar10", Some(url), "train", BadImages::Fail).expect("bucket");
        assert!(ds.describe().contains(&root), "{}", ds.describe());
        same_examples(local_ds.as_ref(), ds.as_ref(), &root);

        // With it, nothing is read on open; a cache of one shard makes the
        // reader go back for records of evicted shards with ranged reads.
        let info = serde_json::json!({
            "name": "cifar10",
            "splits": [
                {"name": "test", "shardLengths": ["5"]},
                {"name": "train", "shardLengths": ["7", "7", "7"]},
            ]
        });
        storage::put(
            &remote.join("cifar10/3.0.2/dataset_info.json"),
            info.to_string().into_bytes(),
        )
        .expect("upload");
        std::env::set_var("SIMCLR_SHARD_CACHE_MB", "0");
        let ds = open_dataset("cifar10", Some(url), "train", BadImages::Fail).expect("bucket");
        std::env::remove_var("SIMCLR_SHARD_CACHE_MB");
        same_examples(
            local_ds.as_ref(),
            ds.as_ref(),
            &format!("{root} (no cache)"),
        );
        let test = open_dataset("cifar10", Some(url), "test", BadImages::Fail).expect("test");
        assert_eq!(test.len(), 5);

        // A corrupt byte in a shard's payload: the record's CRC names it.
        let (name, mut bytes) = files[1].clone();
        bytes[40] ^= 0x55;
        storage::put(&remote.join(&name), bytes).expect("upload");
        let ds = open_dataset("cifar10", Some(url), "train", BadImages::Fail).expect("opens");
        let errors: Vec<String> = (0..ds.len())
            .filter_map(|i| ds.get(i).err().map(|e| e.to_string()))
            .collect();
        assert!(
            errors
                .iter()
                .any(|e| e.contains(&name) && e.contains("CRC")),
            "{root}: {errors:?}"
        );

        // No shards at all: the error names the bucket prefix.
        let missing = format!("{root}/nothing-here");
        let e = open_dataset(
            "cifar10",
            Some(Path::new(&missing)),
            "train",
            BadImages::Fail,
        )
        .err()
        .expect("no shards")
        .to_string();
        assert!(e.contains(&missing), "{e}");
    }
}

#[test]
fn image_folders_in_a_bucket_read_like_local_ones() {
    for root in storage_support::roots("folder") {
        let local = tempfile::tempdir().expect("tmp");
        let remote = Location::parse(&root).expect("url");
        let mut files = vec![];
        for (split, n) in [("train", 3), ("val", 2)] {
            for (c, class) in ["b", "a", "a-b"].iter().enumerate() {
                for i in 0..n {
                    files.push((
                        format!("{split}/{class}/{i}.jpg"),
                        jpeg(9 + i, 7, (c * 10 + i as usize) as u8),
                    ));
                }
            }
        }
        files.push(("train/a/notes.txt".into(), b"not an image".to_vec()));
        put_both(local.path(), &remote, &files);
        for split in [Split::Train, Split::Eval] {
            let a = ImageFolder::open(local.path(), split, BadImages::Fail).expect("local");
            let b = ImageFolder::open(Path::new(&root), split, BadImages::Fail).expect("bucket");
            assert_eq!(a.classes(), b.classes(), "{root}");
            same_examples(&a, &b, &root);
        }
        // Through --dataset=<url>, and --dataset=<name> under --data_dir.
        let ds = open_dataset(&root, None, "train", BadImages::Fail).expect("url dataset");
        assert_eq!(ds.len(), 9);
        let parent = remote.parent().expect("parent").to_string();
        let name = remote.file_name().expect("name");
        let ds = open_dataset(&name, Some(Path::new(&parent)), "test", BadImages::Fail)
            .expect("folder under data_dir");
        assert_eq!(ds.len(), 6);
    }
}

fn simclr(args: &[&str]) -> String {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_simclr"))
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

/// `simclr export_hlo --out gs://…` (uncompiled, no plugin needed) and
/// `simclr inspect gs://… --out s3://…`: the export and the report are
/// objects in the buckets.
#[test]
fn export_hlo_and_inspect_write_and_read_buckets() {
    let roots = storage_support::roots("hlo");
    let (gs, s3) = (&roots[0], &roots[1]);
    let export = format!("{gs}/export");
    let text = simclr(&[
        "export_hlo",
        "--out",
        &export,
        "--no_compile",
        "--train_mode=finetune",
        "--image_size=32",
        "--resnet_depth=18",
        "--train_batch_size=4",
        "--eval_batch_size=4",
        "--dataset=cifar10",
    ]);
    assert!(text.contains(&format!("{export}/index.json")), "{text}");
    let names: Vec<String> = storage::list(&Location::parse(&export).expect("url"), true)
        .expect("list")
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert!(names.iter().any(|n| n == "index.json"), "{names:?}");
    assert!(
        names
            .iter()
            .any(|n| n.ends_with(".hlo.txt") || n.ends_with(".txt")),
        "{names:?}"
    );
    let report = format!("{s3}/report");
    let text = simclr(&["inspect", &export, "--out", &report]);
    assert!(text.contains(&report), "{text}");
    let page =
        storage::read_to_string(&Location::parse(&report).expect("url").join("finetune.html"))
            .expect("the report's page is in the bucket");
    assert!(page.contains("No optimized module"), "finetune.html");
    // A prefix with no export: a clear error.
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_simclr"))
        .args(["inspect", &format!("{s3}/nothing")])
        .envs(storage_support::child_env())
        .output()
        .expect("simclr runs");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("holds no export"),
        "{err}"
    );
}
