//! File formats other than CIFAR-10: `.npy`, TFRecord + `tf.train.Example`,
//! Fashion-MNIST IDX and image folders. Round trips on small files written
//! to temp dirs, and truncated/corrupted inputs giving the documented errors
//! (proptest over corruptions: no panics).

use std::collections::HashSet;
use std::io::Write;
use std::path::Path;

use proptest::prelude::*;
use prost::Message;
use simclr::data::folder::{BadImages, ImageFolder};
use simclr::data::idx::{self, FashionMnist};
use simclr::data::tfrecord::{self, Subset, TfdsImagenet};
use simclr::data::{open_dataset, Dataset, Error, Split};
use simclr::npy::{self, NpyArray, NpyData};

// ---------------------------------------------------------------- npy

#[test]
fn npy_round_trips_every_supported_type() {
    let arrays = [
        NpyArray::new(
            vec![2, 3],
            NpyData::F32(vec![0.5, -1.0, 2.25, 3.0, 4.0, f32::MAX]),
        )
        .unwrap(),
        NpyArray::new(vec![3], NpyData::F64(vec![1e-300, -2.0, 3.5])).unwrap(),
        NpyArray::new(vec![2, 2, 1], NpyData::U8(vec![0, 1, 254, 255])).unwrap(),
        NpyArray::new(vec![2], NpyData::I32(vec![-7, i32::MAX])).unwrap(),
        NpyArray::new(vec![1, 2], NpyData::I64(vec![i64::MIN, 9])).unwrap(),
        NpyArray::new(vec![], NpyData::Bool(vec![true])).unwrap(),
        NpyArray::new(vec![0, 4], NpyData::F32(vec![])).unwrap(),
    ];
    for a in arrays {
        let bytes = npy::to_bytes(&a);
        assert_eq!(bytes.len() % 64, npy::to_bytes(&a).len() % 64);
        let hdr = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        assert_eq!((10 + hdr) % 64, 0, "header padded to 64 bytes");
        assert_eq!(npy::parse(&bytes, "x.npy").unwrap(), a);
    }
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("a.npy");
    let a = NpyArray::new(vec![2], NpyData::F32(vec![1.0, 2.0])).unwrap();
    npy::write(&p, &a).unwrap();
    assert_eq!(npy::read(&p).unwrap(), a);
}

#[test]
fn npy_reads_version_2_headers_and_rejects_unsupported_content() {
    let mut v2 = b"\x93NUMPY\x02\x00".to_vec();
    let header = "{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }\n";
    v2.extend_from_slice(&(header.len() as u32).to_le_bytes());
    v2.extend_from_slice(header.as_bytes());
    v2.extend_from_slice(&5i32.to_le_bytes());
    v2.extend_from_slice(&(-6i32).to_le_bytes());
    let a = npy::parse(&v2, "v2.npy").unwrap();
    assert_eq!(a.data, NpyData::I32(vec![5, -6]));
    let with = |h: &str| {
        let mut b = b"\x93NUMPY\x01\x00".to_vec();
        b.extend_from_slice(&(h.len() as u16).to_le_bytes());
        b.extend_from_slice(h.as_bytes());
        b.extend_from_slice(&[0u8; 8]);
        b
    };
    let e = npy::parse(
        &with("{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }"),
        "be.npy",
    )
    .unwrap_err();
    assert!(
        matches!(e, npy::Error::Unsupported { .. }) && e.to_string().contains("be.npy"),
        "{e}"
    );
    let e = npy::parse(
        &with("{'descr': '<f4', 'fortran_order': True, 'shape': (2,), }"),
        "f.npy",
    )
    .unwrap_err();
    assert!(e.to_string().contains("Fortran"), "{e}");
    let e = npy::parse(
        &with("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }"),
        "t.npy",
    )
    .unwrap_err();
    assert!(e.to_string().contains("truncated"), "{e}");
    let e = npy::read("/nonexistent/x.npy").unwrap_err();
    assert!(matches!(e, npy::Error::Io { .. }));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]
    #[test]
    fn npy_corruptions_never_panic(cut in 0usize..200, pos in 0usize..200, val in any::<u8>()) {
        let a = NpyArray::new(vec![3, 4], NpyData::F32((0..12).map(|i| i as f32).collect())).unwrap();
        let mut b = npy::to_bytes(&a);
        let p = pos % b.len();
        b[p] = val;
        b.truncate(cut.min(b.len()));
        let _ = npy::parse(&b, "p.npy");
    }
}

// ---------------------------------------------------------------- TFRecord

#[test]
fn crc32c_matches_known_vectors() {
    assert_eq!(tfrecord::crc32c(b""), 0);
    assert_eq!(tfrecord::crc32c(b"123456789"), 0xE306_9283);
    assert_eq!(tfrecord::crc32c(&[0u8; 32]), 0x8A91_36AA);
    assert_eq!(tfrecord::crc32c(&[0xffu8; 32]), 0x62A8_AB43);
}

fn jpeg(w: u32, h: u32, seed: u8) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x as u8).wrapping_mul(seed), y as u8, seed])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Jpeg).unwrap();
    out.into_inner()
}

fn write_shards(dir: &Path, name: &str, split: &str, shards: usize, per: usize) -> Vec<String> {
    let mut names = Vec::new();
    for s in 0..shards {
        let mut buf = Vec::new();
        for k in 0..per {
            let i = s * per + k;
            let fname = format!("n{:08}_{i}.JPEG", i % 3);
            let ex = tfrecord::image_example(
                &jpeg(20 + i as u32, 16, i as u8),
                (i % 1000) as i64,
                &fname,
            );
            tfrecord::write_record(&mut buf, &ex.encode_to_vec());
            names.push(fname);
        }
        std::fs::write(
            dir.join(tfrecord::tfds_shard_name(name, split, s, shards)),
            buf,
        )
        .unwrap();
    }
    names
}

#[test]
fn tfds_imagenet_shards_are_indexed_and_decoded() {
    let root = tempfile::tempdir().unwrap();
    let vdir = root.path().join("imagenet2012").join("5.1.0");
    std::fs::create_dir_all(&vdir).unwrap();
    write_shards(&vdir, "imagenet2012", "train", 3, 4);
    write_shards(&vdir, "imagenet2012", "validation", 1, 5);
    assert_eq!(
        tfrecord::tfds_shard_name("imagenet2012", "train", 7, 1024),
        "imagenet2012-train.tfrecord-00007-of-01024"
    );
    let train = open_dataset("imagenet2012", Some(root.path()), "train", BadImages::Fail).unwrap();
    assert_eq!(train.len(), 12);
    assert_eq!(train.num_classes(), 1000);
    let ex = train.get(5).unwrap();
    assert_eq!((ex.image.width, ex.image.height, ex.label), (25, 16, 5));
    let val = open_dataset(
        "imagenet2012",
        Some(root.path()),
        "validation",
        BadImages::Fail,
    )
    .unwrap();
    assert_eq!(val.len(), 5);

    // Subsets by file-name list, as the original's 1percent.txt.
    let keep = "n00000000_0.JPEG\nn00000002_5.JPEG\nn00000002_11.JPEG\n";
    std::fs::write(root.path().join("1percent.txt"), keep).unwrap();
    let sub = open_dataset(
        "imagenet2012_subset/1pct",
        Some(root.path()),
        "train",
        BadImages::Fail,
    )
    .unwrap();
    let labels: HashSet<i32> = (0..sub.len()).map(|i| sub.get(i).unwrap().label).collect();
    assert_eq!(labels, HashSet::from([0, 5, 11]));
    let e = TfdsImagenet::open(root.path(), "train", Subset::TenPercent).unwrap_err();
    assert!(e.to_string().contains("10percent.txt"), "{e}");

    // A missing shard is reported.
    std::fs::remove_file(vdir.join(tfrecord::tfds_shard_name("imagenet2012", "train", 1, 3)))
        .unwrap();
    let e = tfrecord::find_shards(&vdir, "imagenet2012", "train").unwrap_err();
    assert!(matches!(e, Error::NotFound { .. }), "{e}");
}

#[test]
fn tfrecord_truncation_and_crc_errors_name_record_and_offset() {
    let mut buf = Vec::new();
    for k in 0..3u8 {
        tfrecord::write_record(&mut buf, &vec![k; 10 + k as usize]);
    }
    let recs = tfrecord::parse_records(&buf, "f.tfrecord").unwrap();
    assert_eq!(recs.len(), 3);
    assert_eq!(recs[2], &[2u8; 12][..]);
    let second = 10 + 16;
    match tfrecord::parse_records(&buf[..buf.len() - 3], "f.tfrecord") {
        Err(Error::Truncated { record, offset, .. }) => {
            assert_eq!((record, offset), (2, (second + 11 + 16) as u64))
        }
        other => panic!("expected Truncated, got {other:?}"),
    }
    let mut bad = buf.clone();
    bad[second + 12] ^= 1; // first payload byte of record 1
    match tfrecord::parse_records(&bad, "f.tfrecord") {
        Err(Error::Corrupt {
            record,
            offset,
            reason,
            ..
        }) => {
            assert_eq!((record, offset), (1, second as u64));
            assert!(reason.contains("data CRC"), "{reason}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    let mut bad = buf.clone();
    bad[0] ^= 1;
    let e = tfrecord::parse_records(&bad, "f.tfrecord").unwrap_err();
    assert!(e.to_string().contains("length CRC"), "{e}");
    // On-disk scan sees the same truncation.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("t.tfrecord");
    std::fs::write(&p, &buf[..buf.len() - 3]).unwrap();
    assert!(matches!(
        tfrecord::scan_file(&p),
        Err(Error::Truncated { record: 2, .. })
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]
    #[test]
    fn tfrecord_corruptions_give_documented_errors(cut in 0usize..120, pos in 0usize..120, val in any::<u8>()) {
        let mut buf = Vec::new();
        let ex = tfrecord::image_example(b"not a jpeg", 3, "a.JPEG");
        tfrecord::write_record(&mut buf, &ex.encode_to_vec());
        tfrecord::write_record(&mut buf, b"hello");
        let p = pos % buf.len();
        let flipped = buf[p] != val;
        buf[p] = val;
        let full = cut >= buf.len();
        buf.truncate(cut.min(buf.len()));
        match tfrecord::parse_records(&buf, "p") {
            Ok(recs) => {
                prop_assert!(!flipped || !full || recs.len() < 2);
                for r in recs {
                    let _ = tfrecord::decode_example(r, "p", 0);
                }
            }
            Err(Error::Truncated { .. }) | Err(Error::Corrupt { .. }) => {}
            Err(e) => prop_assert!(false, "unexpected {}", e),
        }
    }
}

// ---------------------------------------------------------------- IDX

fn idx_bytes(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut b = vec![0, 0, 8, dims.len() as u8];
    for d in dims {
        b.extend_from_slice(&d.to_be_bytes());
    }
    b.extend_from_slice(data);
    b
}

fn gz(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

#[test]
fn fashion_mnist_idx_raw_and_gzip_become_rgb() {
    let dir = tempfile::tempdir().unwrap();
    let pixels: Vec<u8> = (0..3 * 28 * 28).map(|i| (i % 256) as u8).collect();
    std::fs::write(
        dir.path().join("t10k-images-idx3-ubyte.gz"),
        gz(&idx_bytes(&[3, 28, 28], &pixels)),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("t10k-labels-idx1-ubyte"),
        idx_bytes(&[3], &[9, 0, 4]),
    )
    .unwrap();
    let ds = FashionMnist::open(dir.path(), Split::Eval).unwrap();
    assert_eq!(ds.len(), 3);
    let ex = ds.get(1).unwrap();
    assert_eq!((ex.image.height, ex.image.width, ex.label), (28, 28, 0));
    let g = pixels[28 * 28 + 5];
    assert_eq!(&ex.image.data[15..18], &[g, g, g]);
    let e = FashionMnist::open(dir.path(), Split::Train).unwrap_err();
    assert!(
        matches!(e, Error::NotFound { .. }) || Path::new(idx::DEBIAN_DIR).is_dir(),
        "{e}"
    );
}

#[test]
fn idx_truncation_and_bad_magic_are_reported() {
    let b = idx_bytes(&[4, 2, 2], &[1u8; 16]);
    match idx::parse(&b[..b.len() - 5], "i") {
        Err(Error::Truncated { record, .. }) => assert_eq!(record, 2),
        other => panic!("{other:?}"),
    }
    let mut bad = b.clone();
    bad[0] = 7;
    assert!(matches!(idx::parse(&bad, "i"), Err(Error::Corrupt { .. })));
    assert!(matches!(
        idx::parse(&gz(&b)[..10], "i"),
        Err(Error::Corrupt { .. })
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]
    #[test]
    fn idx_corruptions_never_panic(cut in 0usize..40, pos in 0usize..40, val in any::<u8>(), zip in any::<bool>()) {
        let mut b = idx_bytes(&[4, 2, 2], &[1u8; 16]);
        if zip {
            b = gz(&b);
        }
        let p = pos % b.len();
        b[p] = val;
        b.truncate(cut.min(b.len()));
        if let Ok(a) = idx::parse(&b, "p") {
            let n: usize = a.dims.iter().product();
            prop_assert_eq!(a.data.len(), n);
        }
    }
}

// ---------------------------------------------------------------- folders

#[test]
fn image_folder_reads_classes_and_splits_and_reports_bad_files() {
    let root = tempfile::tempdir().unwrap();
    for (split, n) in [("train", 3), ("val", 2)] {
        for class in ["cat", "dog"] {
            let d = root.path().join(split).join(class);
            std::fs::create_dir_all(&d).unwrap();
            for i in 0..n {
                std::fs::write(d.join(format!("{i}.jpg")), jpeg(12, 10, i as u8)).unwrap();
            }
        }
    }
    let png = image::RgbImage::from_pixel(5, 7, image::Rgb([1, 2, 3]));
    png.save(root.path().join("train/dog/extra.png")).unwrap();
    std::fs::write(root.path().join("train/dog/notes.txt"), "ignored").unwrap();
    let train = ImageFolder::open(root.path(), Split::Train, BadImages::Fail).unwrap();
    assert_eq!(train.classes(), ["cat", "dog"]);
    assert_eq!(train.len(), 7);
    let last = train.get(3).unwrap(); // dog/0.jpg, dog/1.jpg, dog/2.jpg, dog/extra.png sorted: "0.jpg" < "extra.png"
    assert_eq!(last.label, 1);
    let png_ex = train.get(6).unwrap();
    assert_eq!(
        (
            png_ex.image.width,
            png_ex.image.height,
            &png_ex.image.data[..3]
        ),
        (5, 7, &[1u8, 2, 3][..])
    );
    let val = open_dataset(root.path().to_str().unwrap(), None, "test", BadImages::Skip).unwrap();
    assert_eq!(val.len(), 4);

    std::fs::write(root.path().join("train/cat/1.jpg"), b"\xff\xd8 broken").unwrap();
    let e = train.get(1).unwrap_err();
    assert!(
        matches!(e, Error::Decode { .. }) && e.to_string().contains("cat/1.jpg"),
        "{e}"
    );
    let skipping = ImageFolder::open(root.path(), Split::Train, BadImages::Skip).unwrap();
    let ex = skipping.get(1).unwrap();
    assert_eq!(
        ex.label, 0,
        "replaced by the next decodable image (cat/2.jpg)"
    );
    assert_eq!(skipping.skipped(), 1);

    let empty = tempfile::tempdir().unwrap();
    assert!(matches!(
        ImageFolder::open(empty.path(), Split::Train, BadImages::Fail),
        Err(Error::NotFound { .. })
    ));
    let e = open_dataset("no_such_dataset", None, "train", BadImages::Fail)
        .err()
        .unwrap();
    assert!(e.to_string().contains("--dataset"), "{e}");
}

#[test]
fn cifar10_falls_back_to_tfds_png_shards() {
    let root = tempfile::tempdir().unwrap();
    let vdir = root.path().join("cifar10").join("3.0.2");
    std::fs::create_dir_all(&vdir).unwrap();
    let mut buf = Vec::new();
    for i in 0..3u8 {
        let img = image::RgbImage::from_pixel(32, 32, image::Rgb([i, 2 * i, 3 * i]));
        let mut png = std::io::Cursor::new(Vec::new());
        img.write_to(&mut png, image::ImageFormat::Png).unwrap();
        let ex = tfrecord::image_example(&png.into_inner(), i as i64 + 7, "x");
        tfrecord::write_record(&mut buf, &ex.encode_to_vec());
    }
    std::fs::write(
        vdir.join(tfrecord::tfds_shard_name("cifar10", "test", 0, 1)),
        &buf,
    )
    .unwrap();
    let ds = open_dataset("cifar10", Some(root.path()), "test", BadImages::Fail).unwrap();
    assert_eq!((ds.len(), ds.num_classes()), (3, 10));
    let ex = ds.get(2).unwrap();
    assert_eq!((ex.label, &ex.image.data[..3]), (9, &[2u8, 4, 6][..]));
    // Labels outside the class count are reported, naming the shard.
    let mut buf = Vec::new();
    tfrecord::write_record(
        &mut buf,
        &tfrecord::image_example(b"", 10, "y").encode_to_vec(),
    );
    std::fs::write(
        vdir.join(tfrecord::tfds_shard_name("cifar10", "test", 0, 1)),
        &buf,
    )
    .unwrap();
    let ds = open_dataset("cifar10", Some(root.path()), "test", BadImages::Fail).unwrap();
    let e = ds.get(0).unwrap_err();
    assert!(
        e.to_string().contains("label 10") && e.to_string().contains("cifar10-test.tfrecord"),
        "{e}"
    );
    // Without either format the native reader's error is reported.
    let e = open_dataset("cifar10", Some(root.path()), "train", BadImages::Fail)
        .err()
        .unwrap();
    assert!(e.to_string().contains("cifar-10-batches-bin"), "{e}");
}
